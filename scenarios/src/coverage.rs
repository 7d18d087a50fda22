//! Coverage: which paths a run reached, as named probes that count. A sweep adds them up
//! and says how often each fired; a sweep long enough to reach them all fails when a
//! declared probe never fired, because a path no schedule reaches is a path whose bugs
//! no oracle can catch.
//!
//! The probes come from four places, each named by its prefix:
//! - `cluster:` the cluster's own code probes (`cluster::probe`);
//! - `event:` cluster events that mark a path worth reaching (a failure, a crash point);
//! - `kms-fault:` / `store-fault:` a fault switched on in front of the KMS or the object
//!   store that met at least one request (a fault nothing met proves nothing);
//! - `disk-fault:` a storage fault on a backend's disk that met a block read or write;
//! - `config-fault:` a storage fault on a backend's disk that met a config-table record's
//!   read or write;
//! - `oracle:` an oracle that judged a non-trivial input (a snapshot to download, two
//!   backends holding one DEK), not just an empty cluster.
//!
//! Counting never changes a run: nothing here is read by the cluster or enters the trace.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use cluster::disk::faults::DiskFaultMode;
use cluster::events::Event;
use cluster::hooks::CrashPoint;
use cluster::probe::{Probe, ProbeSink};
use kms_sim::chaos::Fault;
use serde::{Deserialize, Serialize};

/// Per probe name, how many times it fired in one run.
pub type Counts = BTreeMap<String, u64>;

/// A run's probe counts, shared by the event sink, the nodes' probe sink and the runner.
#[derive(Clone, Default)]
pub struct Coverage(Arc<Mutex<Counts>>);

impl Coverage {
    pub fn hit(&self, name: &str) {
        let mut counts = self.0.lock().unwrap_or_else(|e| e.into_inner());
        match counts.get_mut(name) {
            Some(n) => *n += 1,
            None => {
                counts.insert(name.to_string(), 1);
            }
        }
    }

    /// The probe an event marks, if any (a crash point also marks which one).
    pub fn event(&self, event: &Event) {
        if let Some(name) = event_probe(event) {
            self.hit(name);
        }
        if let Event::CrashPoint { point } = event {
            self.hit(&crash_point_probe(*point));
        }
    }

    /// The sink the nodes' code probes fire into.
    pub fn sink(&self) -> ProbeSink {
        let coverage = self.clone();
        ProbeSink::new(move |probe: Probe| coverage.hit(probe.name()))
    }

    pub fn counts(&self) -> Counts {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// Adds to `counts` the faults that met a request at a switch (`kms` or `store`): once
/// each, as a run's fault probes.
pub fn add_faults_met(counts: &mut Counts, switch: &str, met: impl IntoIterator<Item = Fault>) {
    for fault in met.into_iter().filter(|f| *f != Fault::None) {
        *counts.entry(fault_probe(switch, fault)).or_default() += 1;
    }
}

/// The events that mark a path worth reaching, by probe name.
fn event_probe(event: &Event) -> Option<&'static str> {
    Some(match event {
        Event::KmsSetRefused { .. } => "event:kms-set-refused",
        Event::FsCreateFailed { .. } => "event:fs-create-failed",
        Event::UnwrapFailed { .. } => "event:unwrap-failed",
        Event::CrashPoint { .. } => "event:crash-point",
        Event::RewrapFailed { .. } => "event:rewrap-failed",
        Event::Rewrapped { .. } => "event:rewrapped",
        Event::RewrappedToKey { .. } => "event:rewrapped-to-key",
        Event::FsKeyMoved { .. } => "event:fs-key-moved",
        Event::SnapshotUploaded { .. } => "event:snapshot-uploaded",
        Event::FsDownloaded { .. } => "event:fs-downloaded",
        _ => return None,
    })
}

const EVENT_PROBES: [&str; 10] = [
    "event:kms-set-refused",
    "event:fs-create-failed",
    "event:unwrap-failed",
    "event:crash-point",
    "event:rewrap-failed",
    "event:rewrapped",
    "event:rewrapped-to-key",
    "event:fs-key-moved",
    "event:snapshot-uploaded",
    "event:fs-downloaded",
];

fn crash_point_probe(point: CrashPoint) -> String {
    format!("event:crash-point:{}", point.name())
}

/// The faults the swarm puts in front of the KMS (Vault and KMIP alike: KMIP answers
/// the HTTP status faults with General Failure) and in front of the object store (the
/// byte-level ones: it has no protocol faults).
const KMS_FAULTS: [Fault; 8] = [
    Fault::Refuse,
    Fault::Hang,
    Fault::Error500,
    Fault::Error503,
    Fault::RateLimit,
    Fault::Slow,
    Fault::Malformed,
    Fault::Truncated,
];

fn fault_probe(switch: &str, fault: Fault) -> String {
    let mode = serde_json::to_value(fault)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_else(|| format!("{fault:?}"));
    format!("{switch}-fault:{mode}")
}

/// The oracles that say when their input was non-trivial (see `check_oracles`).
pub const ORACLE_PROBES: [&str; 10] = [
    "oracle:acknowledged-effects",
    "oracle:config-tables-agree",
    "oracle:deks-agree",
    "oracle:nothing-half-created",
    "oracle:wrapped-dek-is-the-data-key",
    "oracle:wrap-iv-unique",
    "oracle:snapshots-downloadable",
    "oracle:snapshots-downloadable-after-trim",
    "oracle:nonce-never-reused",
    "oracle:one-dek-per-filesystem",
];

/// Declared probes no swarm schedule can reach yet, each with what it waits for: every
/// summary lists them, and they fail no sweep until the swarm can reach them (a summary
/// says so when one fires, so it can leave this list).
pub const NOT_YET_REACHABLE: [(&str, &str); 0] = [];

/// Every probe a swarm sweep must reach, sorted by name.
pub fn declared() -> Vec<String> {
    let mut names: Vec<String> = Probe::ALL.iter().map(|p| p.name().to_string()).collect();
    names.extend(EVENT_PROBES.iter().map(|n| n.to_string()));
    names.extend(CrashPoint::ALL.into_iter().map(crash_point_probe));
    names.extend(KMS_FAULTS.iter().map(|f| fault_probe("kms", *f)));
    names.extend(
        KMS_FAULTS
            .iter()
            .filter(|f| f.is_byte_level())
            .map(|f| fault_probe("store", *f)),
    );
    names.extend(ORACLE_PROBES.iter().map(|n| n.to_string()));
    names.extend(
        DiskFaultMode::ALL
            .iter()
            .map(|m| format!("disk-fault:{}", m.name())),
    );
    names.extend(
        DiskFaultMode::ALL
            .iter()
            .map(|m| format!("config-fault:{}", m.name())),
    );
    names.sort();
    names
}

/// A probe over many runs: in how many it fired, and how often in all.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reach {
    pub runs: u64,
    pub hits: u64,
}

/// The probes of many runs, by name; every declared probe is present (`runs` 0 if it
/// never fired), and so is any probe that fired undeclared.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tally(pub BTreeMap<String, Reach>);

impl Tally {
    pub fn new() -> Self {
        Tally(
            declared()
                .into_iter()
                .map(|n| (n, Reach::default()))
                .collect(),
        )
    }

    pub fn add_run(&mut self, counts: &Counts) {
        for (name, &hits) in counts {
            let reach = self.0.entry(name.clone()).or_default();
            reach.runs += 1;
            reach.hits += hits;
        }
    }

    /// Another tally's runs (a shard's), added to these.
    pub fn merge(&mut self, other: &Tally) {
        for (name, r) in &other.0 {
            let reach = self.0.entry(name.clone()).or_default();
            reach.runs += r.runs;
            reach.hits += r.hits;
        }
    }

    /// Declared probes that fired in no run, but those not reachable yet.
    pub fn never_fired(&self) -> Vec<String> {
        self.never_fired_but(&NOT_YET_REACHABLE)
    }

    fn never_fired_but(&self, gaps: &[(&str, &str)]) -> Vec<String> {
        declared()
            .into_iter()
            .filter(|n| self.0.get(n).is_none_or(|r| r.runs == 0))
            .filter(|n| gaps.iter().all(|(gap, _)| gap != n))
            .collect()
    }

    /// The probes not reachable yet, with why and whether one fired after all.
    pub fn known_gaps(&self) -> Vec<(&'static str, &'static str, bool)> {
        self.gaps_among(&NOT_YET_REACHABLE)
    }

    fn gaps_among(
        &self,
        gaps: &[(&'static str, &'static str)],
    ) -> Vec<(&'static str, &'static str, bool)> {
        gaps.iter()
            .map(|&(name, why)| (name, why, self.0.get(name).is_some_and(|r| r.runs > 0)))
            .collect()
    }

    /// Probes that fired but are not declared: a probe added without its declaration.
    pub fn undeclared(&self) -> Vec<&str> {
        let declared = declared();
        self.0
            .iter()
            .filter(|(n, r)| r.runs > 0 && declared.binary_search(n).is_err())
            .map(|(n, _)| n.as_str())
            .collect()
    }

    /// The `n` declared probes that fired in the fewest runs (but fired).
    pub fn rarest(&self, n: usize) -> Vec<(&str, Reach)> {
        let mut fired: Vec<(&str, Reach)> = self
            .0
            .iter()
            .filter(|(_, r)| r.runs > 0)
            .map(|(k, r)| (k.as_str(), *r))
            .collect();
        fired.sort_by_key(|(name, r)| (r.runs, *name));
        fired.truncate(n);
        fired
    }
}

/// A sweep shorter than this is not expected to reach every probe; from this many seeds
/// on, a declared probe that never fired fails the sweep.
pub const SEEDS_TO_REACH_ALL: usize = 1000;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn declared_names_are_unique_and_sorted() {
        let names = declared();
        for (gap, _) in NOT_YET_REACHABLE {
            assert!(names.iter().any(|n| n == gap), "{gap} is not declared");
        }
        let mut sorted = names.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(names, sorted);
        assert!(names.contains(&"kms-fault:error-500".to_string()));
        assert!(names.contains(&"store-fault:truncated".to_string()));
        assert!(!names.contains(&"store-fault:rate-limit".to_string()));
    }

    #[test]
    fn a_tally_names_what_never_fired_and_what_fired_undeclared() {
        let mut tally = Tally::new();
        let mut counts = Counts::new();
        for name in declared().iter().skip(1) {
            counts.insert(name.clone(), 2);
        }
        // A declared probe on the list of those not reachable yet (none is, today).
        let gaps = [("oracle:deks-agree", "a reason")];
        let gap = gaps[0].0;
        counts.remove(gap);
        counts.insert("cluster:not-declared".into(), 1);
        tally.add_run(&counts);
        tally.add_run(&counts);
        let first = declared()[0].clone();
        assert_eq!(tally.never_fired_but(&gaps), vec![first.clone()]);
        assert_eq!(
            tally.never_fired(),
            vec![first.clone(), gap.to_string()],
            "off the list, a probe that never fired is missing"
        );
        assert_eq!(tally.undeclared(), vec!["cluster:not-declared"]);
        assert!(tally.gaps_among(&gaps).contains(&(gap, gaps[0].1, false)));
        let some = &declared()[1];
        assert_eq!(tally.0[some], Reach { runs: 2, hits: 4 });
        let mut other = Tally::new();
        other.merge(&tally);
        other.merge(&tally);
        assert_eq!(other.0[some], Reach { runs: 4, hits: 8 });
        assert_eq!(other.never_fired_but(&gaps), vec![first]);
    }
}
