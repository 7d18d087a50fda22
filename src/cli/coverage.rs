//! The coverage verdict of a sweep or a merge: how often each declared probe fired (see
//! `scenarios::coverage`), and the exit code a long sweep gets when one never fired.

use std::fmt::Write as _;

use scenarios::coverage::{Tally, SEEDS_TO_REACH_ALL};

use super::{EXIT_COVERAGE, EXIT_PASS};

/// `code`, or `EXIT_COVERAGE` when everything else passed, the sweep ran enough seeds to
/// be expected to reach every probe, and one never fired.
pub fn exit_code(code: i32, tally: &Tally, seeds: usize) -> i32 {
    if code == EXIT_PASS && seeds >= SEEDS_TO_REACH_ALL && !tally.never_fired().is_empty() {
        EXIT_COVERAGE
    } else {
        code
    }
}

/// What a person reads: one line of totals, the rarest probes, and each probe that never
/// fired (an error from `SEEDS_TO_REACH_ALL` seeds on); `full` adds every probe's counts.
pub fn text(tally: &Tally, seeds: usize, full: bool) -> String {
    let mut t = String::new();
    let never = tally.never_fired();
    let gaps = scenarios::coverage::NOT_YET_REACHABLE.len();
    let required = scenarios::coverage::declared().len() - gaps;
    let rarest: Vec<String> = tally
        .rarest(3)
        .iter()
        .map(|(name, r)| format!("{name} in {} seeds", r.runs))
        .collect();
    let _ = writeln!(
        t,
        "coverage: {} of {required} required probes fired in {seeds} seeds{} (rarest: {})",
        required - never.len(),
        match gaps {
            0 => String::new(),
            n => format!(", {n} not reachable yet"),
        },
        if rarest.is_empty() {
            "none fired".to_string()
        } else {
            rarest.join(", ")
        }
    );
    if full {
        let _ = writeln!(t, "{:>8} {:>10}  probe", "seeds", "hits");
        for (name, r) in &tally.0 {
            let _ = writeln!(t, "{:>8} {:>10}  {name}", r.runs, r.hits);
        }
    }
    if !never.is_empty() {
        let verdict = if seeds >= SEEDS_TO_REACH_ALL {
            format!("NOT REACHED (exit {EXIT_COVERAGE} if nothing failed)")
        } else {
            format!("not reached (not an error below {SEEDS_TO_REACH_ALL} seeds)")
        };
        let _ = writeln!(t, "{verdict}: {}", never.join(", "));
    }
    for (name, why, fired) in tally.known_gaps() {
        let _ = if fired {
            writeln!(
                t,
                "reached now: {name} fired; take it off NOT_YET_REACHABLE (scenarios::coverage)"
            )
        } else {
            writeln!(t, "not reachable yet: {name} ({why})")
        };
    }
    for name in tally.undeclared() {
        let _ = writeln!(
            t,
            "probe {name} fired but is not declared (scenarios::coverage::declared)"
        );
    }
    t
}

/// The machine's view: every probe's counts and the ones that never fired.
pub fn json(tally: &Tally, seeds: usize) -> serde_json::Value {
    serde_json::json!({
        "seeds": seeds,
        "declared": scenarios::coverage::declared().len(),
        "never_fired": tally.never_fired(),
        "not_reachable_yet": tally.known_gaps().iter().map(|(n, why, fired)| serde_json::json!({"probe": n, "why": why, "fired": fired})).collect::<Vec<_>>(),
        "undeclared": tally.undeclared(),
        "probes": tally.0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use scenarios::coverage::{declared, Counts};

    fn tally(runs: usize, skip: usize) -> Tally {
        let mut t = Tally::new();
        let counts: Counts = declared().into_iter().skip(skip).map(|n| (n, 1)).collect();
        for _ in 0..runs {
            t.add_run(&counts);
        }
        t
    }

    #[test]
    fn a_long_sweep_that_missed_a_probe_fails_with_its_own_code() {
        assert_eq!(exit_code(EXIT_PASS, &tally(1000, 1), 1000), EXIT_COVERAGE);
        assert_eq!(exit_code(EXIT_PASS, &tally(1000, 0), 1000), EXIT_PASS);
        // Too short to be expected to reach them all.
        assert_eq!(exit_code(EXIT_PASS, &tally(999, 1), 999), EXIT_PASS);
        // A failure says more than a gap in coverage.
        assert_eq!(exit_code(1, &tally(1000, 1), 1000), 1);
        let text = text(&tally(1000, 1), 1000, false);
        assert!(text.contains("NOT REACHED"), "{text}");
        assert!(text.contains(&declared()[0]), "{text}");
    }
}
