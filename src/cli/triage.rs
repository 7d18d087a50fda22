//! Failure triage: failing seeds grouped by the check that failed (and its kind), and in
//! each group the fastest-failing seed first, the one to debug. "Fastest" is the least
//! simulated time to the failure (`at_ms`): it fixes the shortest trace to read, and unlike
//! wall time it is the same on every machine a shard ran on. Ties go to the run with fewer
//! trace events, then to the lower seed.

use scenarios::runner::FailureKind;

use super::manifest::SeedResult;

pub struct Group<'a> {
    pub check: &'a str,
    pub kind: FailureKind,
    /// Fastest-failing first.
    pub seeds: Vec<&'a SeedResult>,
}

impl Group<'_> {
    pub fn fastest(&self) -> &SeedResult {
        self.seeds[0]
    }
}

/// Crashes first (the harness broke), then correctness, then liveness.
fn severity(kind: FailureKind) -> u8 {
    match kind {
        FailureKind::Crash => 0,
        FailureKind::Correctness => 1,
        FailureKind::Liveness => 2,
        FailureKind::Interrupted => 3,
    }
}

/// The groups of the failing results, most severe kind first, then the largest group, then
/// by check name.
pub fn groups(results: &[SeedResult]) -> Vec<Group<'_>> {
    let mut groups: Vec<Group<'_>> = Vec::new();
    for r in results {
        let Some(f) = &r.failure else { continue };
        match groups
            .iter_mut()
            .find(|g| g.check == f.check && g.kind == f.kind)
        {
            Some(g) => g.seeds.push(r),
            None => groups.push(Group {
                check: &f.check,
                kind: f.kind,
                seeds: vec![r],
            }),
        }
    }
    for g in &mut groups {
        g.seeds.sort_by_key(|r| {
            let at = r.failure.as_ref().map_or(u64::MAX, |f| f.at_ms);
            (at, r.events, r.seed)
        });
    }
    groups.sort_by(|a, b| {
        (severity(a.kind), std::cmp::Reverse(a.seeds.len()), a.check).cmp(&(
            severity(b.kind),
            std::cmp::Reverse(b.seeds.len()),
            b.check,
        ))
    });
    groups
}

#[cfg(test)]
mod tests {
    use super::*;
    use scenarios::runner::Failure;

    fn result(seed: u64, fail: Option<(&str, FailureKind, u64)>, events: usize) -> SeedResult {
        SeedResult {
            seed,
            passed: fail.is_none(),
            trace_hash: "00".into(),
            sim_ms: 1,
            wall_ms: 1,
            events,
            failure: fail.map(|(check, kind, at_ms)| Failure {
                kind,
                step: None,
                check: check.into(),
                at_ms,
                detail: String::new(),
            }),
            repro: format!("wekasim run swarm --seed {seed}"),
        }
    }

    #[test]
    fn groups_by_check_with_the_fastest_failing_seed_first() {
        use FailureKind::{Correctness, Crash, Liveness};
        let results = vec![
            result(1, Some(("oracle-a", Correctness, 900)), 10),
            result(2, None, 10),
            result(3, Some(("ready", Liveness, 50)), 10),
            result(4, Some(("oracle-a", Correctness, 300)), 10),
            result(5, Some(("oracle-a", Correctness, 300)), 5),
            result(6, Some(("ready", Liveness, 40)), 10),
            result(7, Some(("ready", Liveness, 45)), 10),
            result(8, Some(("panic", Crash, 0)), 10),
            result(9, Some(("oracle-b", Correctness, 1)), 10),
        ];
        let groups = groups(&results);
        let shape: Vec<(&str, Vec<u64>)> = groups
            .iter()
            .map(|g| (g.check, g.seeds.iter().map(|r| r.seed).collect()))
            .collect();
        assert_eq!(
            shape,
            vec![
                ("panic", vec![8]),
                // Same time to failure: fewer events first.
                ("oracle-a", vec![5, 4, 1]),
                ("oracle-b", vec![9]),
                ("ready", vec![6, 7, 3]),
            ]
        );
        assert_eq!(groups[1].fastest().seed, 5);
    }
}
