//! `wekasim merge DIR...`: the shard folders of one sweep (`sweep --shard I/N --out DIR`)
//! put back together into one verdict: a summary, one JUnit file, the failing seeds grouped
//! by the check that failed (fastest-failing first, see `triage`) with their repro commands.
//!
//! It refuses (exit 2) folders from different builds, swarms (planted bugs) or seed ranges,
//! shards of different counts, two folders of the same shard and a folder given twice. A
//! merge with shards missing (or a shard stopped early by `--until-fail`) names them and
//! exits 5 (`EXIT_INCOMPLETE`) unless a seed that did run failed: then the worst failure's
//! code, as for a complete merge (0 pass, 1 correctness, 3 liveness, 4 crash). A complete
//! merge of at least 1,000 seeds in which nothing failed exits 6 (`EXIT_COVERAGE`) when a
//! declared coverage probe fired in no shard.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use clap::Args;
use scenarios::coverage::Tally;
use scenarios::runner::{FailureKind, RunReport};
use serde_json::json;

use super::manifest::{Build, Manifest, SeedRange, SeedResult, ShardId, Swarm};
use super::{exit_code, usage_error, EXIT_INCOMPLETE, EXIT_PASS};

#[derive(Args)]
pub struct MergeArgs {
    /// Shard folders written by `wekasim sweep --out` (each holds a manifest.json).
    #[arg(required = true, value_name = "DIR")]
    pub dirs: Vec<PathBuf>,
    /// Write summary.txt, summary.json, junit.xml, failing.txt, manifest.json and the run
    /// folder of each failing seed under DIR.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Print the summary as one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

/// The shards of one sweep, together.
struct Merged {
    build: Build,
    swarm: Swarm,
    seeds: SeedRange,
    count: u64,
    /// Each shard's folder, by shard index.
    shards: Vec<(u64, PathBuf)>,
    missing: Vec<u64>,
    /// Shards that stopped before their last seed: (index, seeds run, seeds in the shard).
    stopped_early: Vec<(u64, u64, u64)>,
    /// Every result, by seed.
    results: Vec<SeedResult>,
    /// The shards' coverage, added up.
    coverage: Tally,
}

pub fn run(args: MergeArgs) -> i32 {
    let merged = match merge(&args.dirs) {
        Ok(m) => m,
        Err(e) => return usage_error(e),
    };
    if let Some(out) = &args.out {
        if let Err(e) = refuse_input_as_out(out, &merged) {
            return usage_error(e);
        }
    }
    let reports: Vec<RunReport> = merged
        .results
        .iter()
        .map(|r| r.report(&merged.swarm))
        .collect();
    let code = match exit_code(&reports) {
        EXIT_PASS if merged.incomplete() => EXIT_INCOMPLETE,
        code => super::coverage::exit_code(code, &merged.coverage, merged.results.len()),
    };
    let text = text(&merged, code);
    let summary = summary_json(&merged, code);
    if let Some(out) = &args.out {
        if let Err(e) = write_out(out, &merged, &reports, &text, &summary) {
            eprintln!("error: cannot write under {}: {e}", out.display());
            return super::EXIT_USAGE;
        }
    }
    if args.json {
        println!("{summary}");
    } else {
        print!("{text}");
    }
    code
}

impl Merged {
    fn incomplete(&self) -> bool {
        !self.missing.is_empty() || !self.stopped_early.is_empty()
    }

    fn total(&self) -> u64 {
        self.seeds.end - self.seeds.start
    }

    fn count(&self, kind: FailureKind) -> usize {
        self.results
            .iter()
            .filter(|r| r.failure.as_ref().is_some_and(|f| f.kind == kind))
            .count()
    }
}

/// Reads and checks every folder; the error says which folders disagree, and on what.
fn merge(dirs: &[PathBuf]) -> Result<Merged, String> {
    let mut seen: Vec<(PathBuf, &PathBuf)> = Vec::new();
    let mut manifests: Vec<(&PathBuf, Manifest)> = Vec::new();
    for dir in dirs {
        let canonical = dir
            .canonicalize()
            .map_err(|e| format!("cannot open shard folder {}: {e}", dir.display()))?;
        if let Some((_, first)) = seen.iter().find(|(c, _)| *c == canonical) {
            return Err(format!(
                "{} is given twice (also as {}): each shard folder is merged once",
                dir.display(),
                first.display()
            ));
        }
        seen.push((canonical, dir));
        manifests.push((dir, Manifest::read(dir)?));
    }
    let (first_dir, first) = &manifests[0];
    let mut shards: Vec<(u64, PathBuf)> = Vec::new();
    let mut stopped_early = Vec::new();
    let mut results = Vec::new();
    let mut coverage = Tally::new();
    for (dir, m) in &manifests {
        let differ = |what: &str, a: &dyn std::fmt::Display, b: &dyn std::fmt::Display| {
            format!(
                "cannot merge {} and {}: they come from different {what}: {a} and {b}",
                first_dir.display(),
                dir.display()
            )
        };
        if m.build != first.build {
            return Err(differ("builds", &first.build, &m.build));
        }
        if m.swarm != first.swarm {
            return Err(differ("swarms", &first.swarm, &m.swarm));
        }
        if m.seeds != first.seeds {
            return Err(differ("seed ranges", &first.seeds, &m.seeds));
        }
        let ShardId { index, count } = m.shard;
        if count != first.shard.count {
            return Err(format!(
                "cannot merge {} (shard {}/{}) and {} (shard {index}/{count}): splits into \
                 different shard counts overlap",
                first_dir.display(),
                first.shard.index,
                first.shard.count,
                dir.display()
            ));
        }
        if let Some((_, other)) = shards.iter().find(|(i, _)| *i == index) {
            return Err(format!(
                "{} and {} are both shard {index}/{count}: shards overlap",
                other.display(),
                dir.display()
            ));
        }
        shards.push((index, dir.to_path_buf()));
        if !m.complete {
            let of = super::shard::Shard::new(index, count, "shard")?.len(&m.seeds.range());
            stopped_early.push((index, m.results.len() as u64, of));
        }
        results.extend(m.results.iter().cloned());
        coverage.merge(&m.coverage);
    }
    shards.sort();
    stopped_early.sort();
    results.sort_by_key(|r| r.seed);
    let count = first.shard.count;
    let missing = missing(count, shards.iter().map(|(i, _)| *i));
    Ok(Merged {
        build: first.build.clone(),
        swarm: first.swarm.clone(),
        seeds: first.seeds,
        count,
        shards,
        missing,
        stopped_early,
        results,
        coverage,
    })
}

/// The shard indices below `count` not among `present` (sorted).
fn missing(count: u64, present: impl Iterator<Item = u64>) -> Vec<u64> {
    let mut present: Vec<u64> = present.collect();
    present.sort_unstable();
    let mut missing = Vec::new();
    let mut next = 0;
    for p in present.into_iter().chain(std::iter::once(count)) {
        missing.extend(next..p);
        next = p + 1;
    }
    missing
}

/// `0, 3-5, 9`: shard numbers, runs of consecutive ones shortened.
fn ranges(numbers: &[u64]) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut i = 0;
    while i < numbers.len() {
        let mut j = i;
        while j + 1 < numbers.len() && numbers[j + 1] == numbers[j] + 1 {
            j += 1;
        }
        parts.push(if j == i {
            numbers[i].to_string()
        } else {
            format!("{}-{}", numbers[i], numbers[j])
        });
        i = j + 1;
    }
    parts.join(", ")
}

/// Seeds listed after a group's fastest, before "and N more".
const LISTED: usize = 10;

fn text(m: &Merged, code: i32) -> String {
    let mut t = String::new();
    let _ = writeln!(
        t,
        "merged {} of {} shard{} of seeds {} ({}), run by {}",
        m.shards.len(),
        m.count,
        if m.count == 1 { "" } else { "s" },
        m.seeds,
        m.swarm,
        m.build
    );
    let passed = m.results.iter().filter(|r| r.passed).count();
    let sim: u64 = m.results.iter().map(|r| r.sim_ms).sum();
    let wall: u64 = m.results.iter().map(|r| r.wall_ms).sum();
    let _ = writeln!(
        t,
        "{:>8} {:>8} {:>7} {:>12} {:>9} {:>6} {:>11} {:>11}",
        "seeds", "ran", "passed", "correctness", "liveness", "crash", "sim-time", "wall-time"
    );
    let _ = writeln!(
        t,
        "{:>8} {:>8} {:>7} {:>12} {:>9} {:>6} {:>10.1}s {:>10.1}s",
        m.total(),
        m.results.len(),
        passed,
        m.count(FailureKind::Correctness),
        m.count(FailureKind::Liveness),
        m.count(FailureKind::Crash),
        sim as f64 / 1000.0,
        wall as f64 / 1000.0
    );
    let groups = super::triage::groups(&m.results);
    if !groups.is_empty() {
        let _ = writeln!(
            t,
            "failures by check, fastest-failing seed first (least simulated time to the failure):"
        );
    }
    for g in &groups {
        let f = g.fastest();
        let failure = f.failure.as_ref().expect("a group holds failures");
        let _ = writeln!(
            t,
            "  {} ({}): {} seed{}",
            g.check,
            g.kind.name(),
            g.seeds.len(),
            if g.seeds.len() == 1 { "" } else { "s" }
        );
        let _ = writeln!(
            t,
            "    seed {} failed at {:.3}s{}: {}",
            f.seed,
            failure.at_ms as f64 / 1000.0,
            failure
                .step
                .map(|s| format!(", step {s}"))
                .unwrap_or_default(),
            failure.detail
        );
        let _ = writeln!(t, "    repro: {}", f.repro);
        if g.seeds.len() > 1 {
            let rest: Vec<String> = g.seeds[1..]
                .iter()
                .take(LISTED)
                .map(|r| r.seed.to_string())
                .collect();
            let more = g.seeds.len() - 1 - rest.len();
            let _ = writeln!(
                t,
                "    also: seed{} {}{}",
                if rest.len() == 1 { "" } else { "s" },
                rest.join(", "),
                if more > 0 {
                    format!(" and {more} more (failing.txt lists them all)")
                } else {
                    String::new()
                }
            );
        }
    }
    if !m.missing.is_empty() {
        let _ = writeln!(
            t,
            "missing shard{}: {} (of {}): {} seeds did not run",
            if m.missing.len() == 1 { "" } else { "s" },
            ranges(&m.missing),
            m.count,
            if m.missing.len() == 1 { "its" } else { "their" }
        );
    }
    for (index, ran, of) in &m.stopped_early {
        let _ = writeln!(
            t,
            "shard {index}/{} stopped early: {ran} of its {of} seeds ran",
            m.count
        );
    }
    if m.incomplete() {
        let _ = writeln!(
            t,
            "INCOMPLETE: {} of {} seeds ran (exit {code})",
            m.results.len(),
            m.total()
        );
    }
    t.push_str(&super::coverage::text(&m.coverage, m.results.len(), false));
    let _ = writeln!(t, "{} passed, {} failed", passed, m.results.len() - passed);
    t
}

fn failing_json(r: &SeedResult) -> serde_json::Value {
    let f = r.failure.as_ref();
    json!({
        "seed": r.seed,
        "kind": f.map(|f| f.kind),
        "check": f.map(|f| &f.check),
        "step": f.and_then(|f| f.step),
        "at_ms": f.map(|f| f.at_ms),
        "detail": f.map(|f| &f.detail),
        "sim_ms": r.sim_ms,
        "wall_ms": r.wall_ms,
        "trace_hash": r.trace_hash,
        "repro": r.repro,
    })
}

fn summary_json(m: &Merged, code: i32) -> serde_json::Value {
    let groups = super::triage::groups(&m.results);
    json!({
        "format": "wekasim-merge/1",
        "build": m.build,
        "swarm": m.swarm,
        "seeds": m.seeds,
        "shards": {
            "count": m.count,
            "merged": m.shards.iter().map(|(i, dir)| json!({"index": i, "dir": dir})).collect::<Vec<_>>(),
            "missing": m.missing,
            "stopped_early": m.stopped_early.iter().map(|(i, ran, of)| json!({"index": i, "ran": ran, "of": of})).collect::<Vec<_>>(),
        },
        "complete": !m.incomplete(),
        "totals": {
            "seeds": m.total(),
            "ran": m.results.len(),
            "passed": m.results.iter().filter(|r| r.passed).count(),
            "correctness": m.count(FailureKind::Correctness),
            "liveness": m.count(FailureKind::Liveness),
            "crash": m.count(FailureKind::Crash),
            "sim_ms": m.results.iter().map(|r| r.sim_ms).sum::<u64>(),
            "wall_ms": m.results.iter().map(|r| r.wall_ms).sum::<u64>(),
        },
        "exit_code": code,
        "coverage": super::coverage::json(&m.coverage, m.results.len()),
        "groups": groups.iter().map(|g| json!({
            "check": g.check,
            "kind": g.kind,
            "count": g.seeds.len(),
            "fastest": failing_json(g.fastest()),
            "seeds": g.seeds.iter().map(|r| r.seed).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
    })
}

/// `--out` must not be one of the folders merged: the merge would overwrite its manifest.
fn refuse_input_as_out(out: &Path, m: &Merged) -> Result<(), String> {
    let Ok(out) = out.canonicalize() else {
        return Ok(()); // does not exist yet
    };
    for (_, dir) in &m.shards {
        if dir.canonicalize().is_ok_and(|d| d == out) {
            return Err(format!(
                "--out {} is one of the folders being merged; write the merge elsewhere",
                dir.display()
            ));
        }
    }
    Ok(())
}

fn write_out(
    out: &Path,
    m: &Merged,
    reports: &[RunReport],
    text: &str,
    summary: &serde_json::Value,
) -> std::io::Result<()> {
    std::fs::create_dir_all(out)?;
    std::fs::write(out.join("summary.txt"), text)?;
    std::fs::write(
        out.join("summary.json"),
        serde_json::to_string_pretty(summary).map_err(std::io::Error::other)? + "\n",
    )?;
    std::fs::write(
        out.join("junit.xml"),
        scenarios::report::junit(
            "wekasim sweep",
            reports,
            scenarios::report::RunFolders::Failing(out),
        ),
    )?;
    let mut failing = String::new();
    for g in super::triage::groups(&m.results) {
        for r in &g.seeds {
            let f = r.failure.as_ref().expect("a group holds failures");
            let _ = writeln!(
                failing,
                "{} {} {} at={:.3}s hash={}  repro: {}",
                r.seed,
                f.kind.name(),
                f.check,
                f.at_ms as f64 / 1000.0,
                r.trace_hash,
                r.repro
            );
        }
    }
    std::fs::write(out.join("failing.txt"), failing)?;
    Manifest {
        format: super::manifest::FORMAT.into(),
        build: m.build.clone(),
        swarm: m.swarm.clone(),
        seeds: m.seeds,
        shard: ShardId { index: 0, count: 1 },
        complete: !m.incomplete(),
        results: m.results.clone(),
        coverage: m.coverage.clone(),
    }
    .write(out)?;
    // Each failing seed's run folder, from the shard that ran it.
    for r in m.results.iter().filter(|r| !r.passed) {
        let name = format!("{}-{}", m.swarm.scenario, r.seed);
        let owner = m
            .shards
            .iter()
            .find(|(i, _)| (r.seed - m.seeds.start) % m.count == *i);
        if let Some((_, dir)) = owner {
            if dir.join(&name).is_dir() {
                copy_dir(&dir.join(&name), &out.join(&name))?;
            }
        }
    }
    Ok(())
}

fn copy_dir(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        if entry.file_type()?.is_dir() {
            copy_dir(&entry.path(), &to.join(entry.file_name()))?;
        } else {
            std::fs::copy(entry.path(), to.join(entry.file_name()))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::{missing, ranges};

    #[test]
    fn missing_shards_are_named_by_number() {
        assert_eq!(missing(8, [0, 1, 2, 4, 7].into_iter()), vec![3, 5, 6]);
        assert_eq!(missing(3, [2].into_iter()), vec![0, 1]);
        assert!(missing(2, [1, 0].into_iter()).is_empty());
        assert_eq!(ranges(&[0, 3, 4, 5, 9]), "0, 3-5, 9");
        assert_eq!(ranges(&[7]), "7");
    }
}
