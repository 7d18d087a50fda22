//! No secret in any artifact of a simulated run: every library scenario and a few swarm
//! seeds, each with `--out DIR`, and every file of the run folder (scenario, trace, report,
//! JUnit) with stdout and stderr searched for anything shaped like what the simulated Vault
//! hands out or a run holds: tokens (`hvs.` and 24 letters and digits), AppRole role-ids and
//! secret-ids (UUIDs), unseal keys and DEKs (44 base64 characters, 64 hex digits). The
//! simulated Vault draws them from the seed inside the run, so the test cannot know their
//! values; `tests/live_run.rs` checks the values themselves for a live run, where it sees
//! them on the wire.

mod docker_support;
mod live;

use std::sync::atomic::{AtomicUsize, Ordering};

use docker_support::ScratchDir;
use live::{files_under, looks_like_a_secret, wekasim};

/// A word shaped like a UUID (8-4-4-4-12 hex digits): how the simulated Vault's role-ids
/// and secret-ids look.
fn looks_like_a_uuid(text: &str) -> Option<String> {
    text.split(|c: char| !(c.is_ascii_hexdigit() || c == '-'))
        .find(|w| {
            let groups: Vec<usize> = w.split('-').map(str::len).collect();
            groups == [8, 4, 4, 4, 12]
        })
        .map(str::to_string)
}

#[test]
fn no_secret_shaped_text_in_any_artifact_of_a_simulated_run() {
    // Every scenario `wekasim list` names (the library and its regressions).
    let list = wekasim(&["list"], &[]);
    assert_eq!(list.code, Some(0), "{}", list.describe());
    let mut targets: Vec<String> = list
        .stdout
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_string)
        .collect();
    assert!(
        targets.len() >= 5,
        "the scenario library looks empty: {targets:?}"
    );
    targets.push("swarm".into());
    let out = ScratchDir::new("run-folder-secrets");
    // Every (target, seed) run, played two at a time (the machines have two cores).
    let runs: Vec<(&str, &str)> = targets
        .iter()
        .flat_map(|target| {
            let seeds: &[&str] = if target == "swarm" {
                &["1", "2", "3"]
            } else {
                &["1"]
            };
            seeds.iter().map(move |seed| (target.as_str(), *seed))
        })
        .collect();
    let next = AtomicUsize::new(0);
    let checked = AtomicUsize::new(0);
    std::thread::scope(|scope| {
        for _ in 0..2 {
            scope.spawn(|| {
                while let Some(&(target, seed)) = runs.get(next.fetch_add(1, Ordering::SeqCst)) {
                    let n = check_run(&out, target, seed);
                    checked.fetch_add(n, Ordering::SeqCst);
                }
            });
        }
    });
    let checked = checked.into_inner();
    println!("{checked} artifacts checked");
}

/// Plays `target` with `seed` into a run folder under `out` and searches every file of it,
/// with stdout and stderr, for a secret's shape; answers how many texts it searched.
fn check_run(out: &ScratchDir, target: &str, seed: &str) -> usize {
    let dir = out.path().join(format!("{target}-{seed}"));
    let dir_text = dir.to_str().expect("a UTF-8 temp path");
    let run = wekasim(&["run", target, "--seed", seed, "--out", dir_text], &[]);
    let mut artifacts = files_under(&dir);
    assert!(
        artifacts.len() >= 4,
        "wekasim run {target} --seed {seed} wrote {} files\n{}",
        artifacts.len(),
        run.describe()
    );
    artifacts.push(("stdout".into(), run.stdout.clone()));
    artifacts.push(("stderr".into(), run.stderr.clone()));
    for (name, text) in &artifacts {
        // Where, and of what shape: the value itself stays out of the test log.
        let found = looks_like_a_secret(text)
            .map(|s| ("a token, unseal key or DEK", s))
            .or_else(|| looks_like_a_uuid(text).map(|s| ("a role-id or secret-id", s)));
        if let Some((shape, value)) = found {
            panic!(
                "{} of `wekasim run {target} --seed {seed}` holds something shaped \
                 like {shape}, at byte {}",
                name.display(),
                text.find(&value).unwrap_or_default()
            );
        }
    }
    artifacts.len()
}
