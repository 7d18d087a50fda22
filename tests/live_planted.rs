//! The teeth of a gate against a real Vault: with a wekasim built with planted bugs
//! (`cargo build --release --features planted-bugs`) named by `WEKASIM_PLANTED_BIN`, and
//! these tests asked for (`cargo test --test live_planted -- --ignored`, which `bash
//! tests/run.sh` does), each library scenario played live against an OpenBao the run starts (`--openbao`, from
//! `.venv/bin/bao`) fails for a bug it reaches, and fails by the check meant for that bug,
//! with the failure kind and step the simulation reports for the same seed:
//!
//! | scenario       | bug                       | caught by                          |
//! | -------------- | ------------------------- | ---------------------------------- |
//! | rewrap-all     | `skip-one-rewrap`         | correctness, acknowledged-effects at step 9 (the rewrap's answer) |
//! | startup-unwrap | `give-up-unwrap`          | liveness, filesystems-ready at step 16 (wait-ready after the outage) |
//! | rewrap-all     | `plaintext-dek-rare-path` | correctness, no-plaintext-dek-at-rest at step 2 (fs-create) |
//! | kms-outage     | `commit-before-kms`       | correctness, nothing-half-created at step 8 (fs-create while the KMS hangs) |
//!
//! Each run must also print no secret and leave no OpenBao process or temp dir behind. The
//! tests are ignored in a plain `cargo test`: the binary it builds refuses `--plant` (as
//! tests/live_run.rs checks), and a build of the test harness with the feature would
//! compile the workspace once more only to run another binary.

mod live;

use live::{openbao_leftovers, wekasim_planted, EXIT_CORRECTNESS, EXIT_LIVENESS};
use serde_json::Value;

/// One live run at a time: each has real-time bounds and five backends on runtimes of their
/// own, and the machine may have two cores; a starved run could fail by another check than
/// the one under test.
static ONE_LIVE_RUN_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// What a planted bug must be caught by.
struct Caught {
    kind: &'static str,
    check: &'static str,
    /// The steps it may fire at: where the bug shows, and where else it can show on a slow
    /// machine (a KMS call that timed out).
    steps: &'static [u64],
}

/// Plays `scenario` live against a fresh OpenBao with `bug` planted and requires the run to
/// fail as `want` says.
fn caught_live(scenario: &str, bug: &str, want: Caught) {
    let _turn = ONE_LIVE_RUN_AT_A_TIME
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let run = wekasim_planted(
        &[
            "run",
            scenario,
            "--openbao",
            "--seed",
            "1",
            "--plant",
            bug,
            "--json",
        ],
        &[],
    );
    println!(
        "--openbao {scenario} --plant {bug}: exit {:?} in {:.1} s",
        run.code,
        run.wall.as_secs_f64()
    );
    run.assert_nothing_secret_shaped();
    let report: Value = serde_json::from_str(run.stdout.trim())
        .unwrap_or_else(|e| panic!("stdout is not one JSON report ({e})\n{}", run.describe()));
    let failure = &report["failure"];
    println!("  failure: {failure}");
    assert!(
        report["live"]
            .as_str()
            .is_some_and(|l| l.contains("OpenBao 2.7.2")),
        "not a live run against OpenBao: {report}"
    );
    assert_eq!(report["planted"], serde_json::json!([bug]), "{report}");
    assert!(
        failure["kind"].as_str() == Some(want.kind)
            && failure["check"].as_str() == Some(want.check)
            && failure["step"]
                .as_u64()
                .is_some_and(|s| want.steps.contains(&s)),
        "{bug} in {scenario} must be caught by {} [{}, step {:?}]\n{}",
        want.kind,
        want.check,
        want.steps,
        run.describe()
    );
    let code = match want.kind {
        "liveness" => EXIT_LIVENESS,
        _ => EXIT_CORRECTNESS,
    };
    assert_eq!(run.code, Some(code), "{}", run.describe());
    let left = openbao_leftovers(run.pid);
    assert!(left.is_empty(), "the run left behind: {left:#?}");
}

#[test]
#[ignore = "needs a wekasim built with planted bugs: WEKASIM_PLANTED_BIN=<it> cargo test -- --ignored"]
fn live_rewrap_all_catches_skip_one_rewrap() {
    caught_live(
        "rewrap-all",
        "skip-one-rewrap",
        Caught {
            kind: "correctness",
            check: "acknowledged-effects",
            steps: &[9],
        },
    );
}

#[test]
#[ignore = "needs a wekasim built with planted bugs: WEKASIM_PLANTED_BIN=<it> cargo test -- --ignored"]
fn live_startup_unwrap_catches_give_up_unwrap() {
    caught_live(
        "startup-unwrap",
        "give-up-unwrap",
        Caught {
            kind: "liveness",
            check: "filesystems-ready",
            // 16: the wait after the outage; 8: the first wait, had a KMS call timed out.
            steps: &[16, 8],
        },
    );
}

#[test]
#[ignore = "needs a wekasim built with planted bugs: WEKASIM_PLANTED_BIN=<it> cargo test -- --ignored"]
fn live_rewrap_all_catches_plaintext_dek_rare_path() {
    caught_live(
        "rewrap-all",
        "plaintext-dek-rare-path",
        Caught {
            kind: "correctness",
            check: "no-plaintext-dek-at-rest",
            steps: &[2],
        },
    );
}

#[test]
#[ignore = "needs a wekasim built with planted bugs: WEKASIM_PLANTED_BIN=<it> cargo test -- --ignored"]
fn live_kms_outage_catches_commit_before_kms() {
    caught_live(
        "kms-outage",
        "commit-before-kms",
        Caught {
            kind: "correctness",
            check: "nothing-half-created",
            steps: &[8],
        },
    );
}
