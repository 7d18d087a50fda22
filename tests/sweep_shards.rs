//! Sweep shards and their merge, end to end through the binary: `sweep --shard I/N` (or the
//! shard Kubernetes names in `JOB_COMPLETION_INDEX`, with `WEKASIM_SHARD_COUNT`) runs exactly
//! its seeds and writes a manifest; `merge` puts the shards back together into what one sweep
//! of the same seeds gives, refuses folders that do not belong together (exit 2), and names
//! the shards missing (exit 5). The same through containers: tests/shard_containers.rs.

mod common;

use std::path::{Path, PathBuf};

use common::{
    output, sweep_manifest as manifest, sweep_results as results, wekasim, Run, TempDir,
    EXIT_CRASH, EXIT_PASS, EXIT_USAGE,
};
use serde_json::Value;

const EXIT_INCOMPLETE: i32 = 5;

fn run_env(args: &[&str], env: &[(&str, &str)]) -> Run {
    let mut cmd = wekasim(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    output(cmd)
}

fn path(p: &Path) -> &str {
    p.to_str().expect("UTF-8 path")
}

/// `sweep --seeds RANGE --shard I/N --out BASE/shard-I` for every I, with `env`; each must
/// exit `code`. Returns the folders.
fn shards(base: &Path, range: &str, n: u64, env: &[(&str, &str)], code: i32) -> Vec<PathBuf> {
    (0..n)
        .map(|i| {
            let dir = base.join(format!("shard-{i}"));
            let shard = format!("{i}/{n}");
            let r = run_env(
                &[
                    "sweep",
                    "--seeds",
                    range,
                    "--shard",
                    &shard,
                    "--jobs",
                    "2",
                    "--out",
                    path(&dir),
                ],
                env,
            );
            assert_eq!(r.code, Some(code), "shard {shard}\n{}", r.describe());
            dir
        })
        .collect()
}

fn merge(dirs: &[PathBuf], extra: &[&str]) -> Run {
    let mut args = vec!["merge"];
    args.extend(dirs.iter().map(|d| path(d)));
    args.extend(extra);
    output(wekasim(&args))
}

#[test]
fn merged_shards_equal_one_sweep_of_the_same_seeds() {
    let dir = TempDir::new("shards_equal_sweep");
    let single = dir.path().join("single");
    let r = run(&[
        "sweep",
        "--seeds",
        "4..10",
        "--jobs",
        "2",
        "--out",
        path(&single),
    ]);
    assert_eq!(r.code, Some(EXIT_PASS), "{}", r.describe());
    let whole = manifest(&single);
    assert_eq!(whole["shard"], serde_json::json!({"index": 0, "count": 1}));
    assert_eq!(whole["complete"], true);

    let dirs = shards(dir.path(), "4..10", 3, &[], EXIT_PASS);
    // Round-robin from the range's start: shard 1 of 3 holds 5 and 8.
    let one: Vec<u64> = manifest(&dirs[1])["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["seed"].as_u64().unwrap())
        .collect();
    assert_eq!(one, vec![5, 8]);

    let merged = dir.path().join("merged");
    let r = merge(&dirs, &["--out", path(&merged)]);
    assert_eq!(r.code, Some(EXIT_PASS), "{}", r.describe());
    assert!(
        r.stdout.contains("merged 3 of 3 shards of seeds 4..10"),
        "{}",
        r.describe()
    );
    assert_eq!(
        r.stdout.lines().last(),
        Some("6 passed, 0 failed"),
        "{}",
        r.describe()
    );
    let m = manifest(&merged);
    assert_eq!(m["build"], whole["build"]);
    assert_eq!(
        results(&m),
        results(&whole),
        "merged shards differ from one sweep"
    );
    // Coverage is per seed, so the shards' counts add up to the whole sweep's, probe by
    // probe; and six seeds of the swarm reach some of the declared probes, not none.
    assert_eq!(m["coverage"], whole["coverage"], "merged coverage differs");
    let fired = whole["coverage"]
        .as_object()
        .expect("the manifest counts coverage per probe")
        .values()
        .filter(|r| r["runs"].as_u64() > Some(0))
        .count();
    assert!(
        fired > 5,
        "only {fired} probes fired in 6 seeds: {}",
        whole["coverage"]
    );
    assert!(
        r.stdout.contains("required probes fired in 6 seeds"),
        "{}",
        r.describe()
    );
    let junit = std::fs::read_to_string(merged.join("junit.xml")).expect("junit.xml");
    assert_eq!(junit.matches("<testcase").count(), 6, "{junit}");
    for file in ["summary.txt", "summary.json", "failing.txt"] {
        assert!(merged.join(file).is_file(), "{file} missing");
    }
    // A merged folder is itself a complete sweep folder: merging it again gives the same.
    let again = merge(std::slice::from_ref(&merged), &["--json"]);
    assert_eq!(again.code, Some(EXIT_PASS), "{}", again.describe());
    let summary: Value = serde_json::from_str(&again.stdout).expect("merge --json is JSON");
    assert_eq!(summary["complete"], true);
    assert_eq!(summary["totals"]["passed"], 6);
}

fn run(args: &[&str]) -> Run {
    common::run(args)
}

#[test]
fn the_shard_comes_from_the_environment_as_kubernetes_sets_it() {
    let dir = TempDir::new("shard_from_env");
    let out = dir.path().join("shard-1");
    let r = run_env(
        &[
            "sweep",
            "--seeds",
            "0..7",
            "--jobs",
            "2",
            "--out",
            path(&out),
            "--json",
        ],
        &[("JOB_COMPLETION_INDEX", "1"), ("WEKASIM_SHARD_COUNT", "3")],
    );
    assert_eq!(r.code, Some(EXIT_PASS), "{}", r.describe());
    let seeds = seeds_of(&r);
    assert_eq!(seeds, vec![1, 4], "{}", r.describe());
    assert!(
        r.stderr.contains("shard 1/3: 2 of the 7 seeds 0..7"),
        "{}",
        r.describe()
    );
    let m = manifest(&out);
    assert_eq!(m["shard"], serde_json::json!({"index": 1, "count": 3}));
    assert_eq!(m["seeds"], serde_json::json!({"start": 0, "end": 7}));
    // --shard wins over the environment.
    let r = run_env(
        &["sweep", "--seeds", "0..7", "--shard", "2/3", "--json"],
        &[("JOB_COMPLETION_INDEX", "1"), ("WEKASIM_SHARD_COUNT", "3")],
    );
    let seeds = seeds_of(&r);
    assert_eq!(seeds, vec![2, 5], "{}", r.describe());
}

/// The seeds of the JSON reports a `sweep --json` printed, one per line, in order.
fn seeds_of(r: &Run) -> Vec<u64> {
    r.stdout
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).expect("JSON")["seed"]
                .as_u64()
                .unwrap()
        })
        .collect()
}

/// Exit 2, an error naming `needle`, nothing on stdout, no panic.
fn assert_refused(r: &Run, needle: &str) {
    assert_eq!(r.code, Some(EXIT_USAGE), "{}", r.describe());
    assert!(r.stderr.contains("error"), "{}", r.describe());
    assert!(
        r.stderr.contains(needle),
        "stderr should name {needle:?}\n{}",
        r.describe()
    );
    assert!(r.stdout.trim().is_empty(), "{}", r.describe());
    assert!(!r.stderr.contains("panicked"), "{}", r.describe());
}

#[test]
fn bad_shards_are_refused() {
    for (shard, needle) in [
        ("3/2", "out of range for 2 shards"),
        ("0/0", "at least 1"),
        ("x/4", "\"x\" is not a shard index"),
        ("4", "I/N"),
    ] {
        let r = run(&["sweep", "--seeds", "0..4", "--shard", shard]);
        assert_refused(&r, needle);
        assert_refused(&r, "--shard");
    }
    for (env, needle) in [
        (
            &[("JOB_COMPLETION_INDEX", "3")][..],
            "WEKASIM_SHARD_COUNT is not",
        ),
        (
            &[("WEKASIM_SHARD_COUNT", "3")][..],
            "JOB_COMPLETION_INDEX is not",
        ),
        (
            &[("JOB_COMPLETION_INDEX", "3"), ("WEKASIM_SHARD_COUNT", "2")][..],
            "out of range for 2 shards",
        ),
        (
            &[("JOB_COMPLETION_INDEX", "x"), ("WEKASIM_SHARD_COUNT", "4")][..],
            "JOB_COMPLETION_INDEX",
        ),
        (
            &[("JOB_COMPLETION_INDEX", "0"), ("WEKASIM_SHARD_COUNT", "0")][..],
            "at least 1",
        ),
    ] {
        let r = run_env(&["sweep", "--seeds", "0..4"], env);
        assert_refused(&r, needle);
    }
}

/// Shards of `4..8` in two, clean (the folders the refusal tests start from).
fn two_shards(dir: &TempDir) -> Vec<PathBuf> {
    shards(dir.path(), "4..8", 2, &[], EXIT_PASS)
}

/// A copy of `from` at `to` with its manifest edited by `edit`.
fn edited(from: &Path, to: &Path, edit: impl Fn(&mut Value)) -> PathBuf {
    std::fs::create_dir_all(to).expect("mkdir");
    let mut m = manifest(from);
    edit(&mut m);
    std::fs::write(to.join("manifest.json"), m.to_string()).expect("write manifest");
    to.to_path_buf()
}

#[test]
fn merge_refuses_folders_that_do_not_belong_together() {
    let dir = TempDir::new("merge_refuses");
    let s = two_shards(&dir);
    // The same folder twice, however spelled.
    let twice = merge(&[s[0].clone(), s[1].clone(), s[0].join(".")], &[]);
    assert_refused(&twice, "given twice");
    // Two folders of one shard overlap.
    let copy = edited(&s[1], &dir.path().join("copy-of-1"), |_| {});
    assert_refused(
        &merge(&[s[0].clone(), s[1].clone(), copy], &[]),
        "both shard 1/2",
    );
    // Another split of the same range overlaps too.
    let other = edited(&s[1], &dir.path().join("of-3"), |m| {
        m["shard"] = serde_json::json!({"index": 1, "count": 3});
        m["results"] = serde_json::json!([]);
        m["complete"] = false.into();
    });
    assert_refused(
        &merge(&[s[0].clone(), other], &[]),
        "different shard counts",
    );
    // Another seed range.
    let range = edited(&s[1], &dir.path().join("range"), |m| {
        m["seeds"]["end"] = 10.into();
        m["complete"] = false.into();
    });
    assert_refused(&merge(&[s[0].clone(), range], &[]), "different seed ranges");
    // Another build.
    let build = edited(&s[1], &dir.path().join("build"), |m| {
        m["build"]["binary_sha256"] = "00".repeat(32).into();
    });
    assert_refused(&merge(&[s[0].clone(), build], &[]), "different builds");
    // Another swarm (a bug planted in one shard only).
    let swarm = edited(&s[1], &dir.path().join("swarm"), |m| {
        m["swarm"]["planted"] = serde_json::json!(["skip-one-rewrap"]);
    });
    assert_refused(&merge(&[s[0].clone(), swarm], &[]), "different swarms");
    // Not a sweep folder, and a manifest that lies about its shard.
    let empty = dir.path().join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    assert_refused(&merge(&[empty], &[]), "has no manifest.json");
    let liar = edited(&s[1], &dir.path().join("liar"), |m| {
        m["results"][0]["seed"] = 6.into();
    });
    assert_refused(&merge(&[liar], &[]), "not in shard 1/2");
    // --out must not overwrite an input.
    assert_refused(
        &merge(&s, &["--out", path(&s[0])]),
        "one of the folders being merged",
    );
    assert_refused(&merge(&[dir.path().join("nowhere")], &[]), "nowhere");
}

#[test]
fn missing_shards_are_named_by_number_and_fail_the_merge() {
    let dir = TempDir::new("merge_missing");
    let s = shards(dir.path(), "4..9", 5, &[], EXIT_PASS);
    let r = merge(&[s[0].clone(), s[2].clone(), s[4].clone()], &["--json"]);
    assert_eq!(r.code, Some(EXIT_INCOMPLETE), "{}", r.describe());
    let summary: Value = serde_json::from_str(&r.stdout).expect("JSON");
    assert_eq!(summary["shards"]["missing"], serde_json::json!([1, 3]));
    assert_eq!(summary["complete"], false);
    assert_eq!(summary["exit_code"], EXIT_INCOMPLETE);
    let r = merge(&[s[0].clone(), s[4].clone()], &[]);
    assert_eq!(r.code, Some(EXIT_INCOMPLETE), "{}", r.describe());
    assert!(
        r.stdout.contains("missing shards: 1-3 (of 5)"),
        "{}",
        r.describe()
    );
    assert!(
        r.stdout.contains("INCOMPLETE: 2 of 5 seeds ran"),
        "{}",
        r.describe()
    );
}

#[test]
fn failures_are_grouped_by_check_across_shards_with_repro_commands() {
    // The hidden test hook makes every seed crash: failures in a normal build.
    let dir = TempDir::new("merge_failures");
    let hook = [("WEKASIM_TEST_HOOK", "panic-in-host")];
    let s = shards(dir.path(), "0..4", 2, &hook, EXIT_CRASH);
    let merged = dir.path().join("merged");
    let r = merge(&s, &["--out", path(&merged)]);
    assert_eq!(r.code, Some(EXIT_CRASH), "{}", r.describe());
    assert!(r.stdout.contains("(crash): 4 seeds"), "{}", r.describe());
    assert!(
        r.stdout.contains("repro: wekasim run swarm --seed"),
        "{}",
        r.describe()
    );
    assert_eq!(r.stdout.lines().last(), Some("0 passed, 4 failed"));
    let failing = std::fs::read_to_string(merged.join("failing.txt")).expect("failing.txt");
    assert_eq!(failing.lines().count(), 4, "{failing}");
    for seed in 0..4 {
        assert!(
            merged.join(format!("swarm-{seed}/trace.jsonl")).is_file(),
            "run folder of {seed}"
        );
    }
    // A clean shard does not merge with a hooked one.
    let clean = edited(&s[1], &dir.path().join("clean"), |m| {
        m["swarm"].as_object_mut().unwrap().remove("test_hook");
    });
    assert_refused(&merge(&[s[0].clone(), clean], &[]), "different swarms");
    // A shard stopped by --until-fail is incomplete; the failure it found is the verdict.
    let early = dir.path().join("early");
    let r = run_env(
        &[
            "sweep",
            "--seeds",
            "0..4",
            "--shard",
            "0/2",
            "--jobs",
            "1",
            "--until-fail",
            "--out",
            path(&early),
        ],
        &hook,
    );
    assert_eq!(r.code, Some(EXIT_CRASH), "{}", r.describe());
    let r = merge(&[early, s[1].clone()], &[]);
    assert_eq!(r.code, Some(EXIT_CRASH), "{}", r.describe());
    assert!(
        r.stdout
            .contains("shard 0/2 stopped early: 1 of its 2 seeds ran"),
        "{}",
        r.describe()
    );
}
