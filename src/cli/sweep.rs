//! `wekasim sweep --seeds A..B`: the swarm over many seeds, or one shard of them
//! (`--shard I/N`, or `JOB_COMPLETION_INDEX` and `WEKASIM_SHARD_COUNT`: see `shard`).

use std::io::IsTerminal;
use std::ops::Range;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};

use clap::Args;
use scenarios::coverage::Tally;
use scenarios::runner::{FailureKind, RunReport, SimOptions, TestHook};
use scenarios::wall::Stopwatch;

use super::manifest::{Build, Manifest, SeedRange, SeedResult, Swarm};
use super::shard::Shard;
use super::suite::parse_seeds;
use super::{exit_code, planted, usage_error};

#[derive(Args)]
pub struct SweepArgs {
    /// Seeds: `A..B` (B excluded), `A..=B`, or one seed.
    #[arg(long, value_parser = parse_seeds)]
    pub seeds: Range<u64>,
    /// Run only shard I of N: seed s when (s - A) mod N = I. Default: the shard named by
    /// JOB_COMPLETION_INDEX and WEKASIM_SHARD_COUNT when set, else every seed.
    #[arg(long, value_name = "I/N", value_parser = Shard::parse)]
    pub shard: Option<Shard>,
    /// Runs at once (default: the number of cores).
    #[arg(long)]
    pub jobs: Option<usize>,
    /// Stop at the first failing seed.
    #[arg(long)]
    pub until_fail: bool,
    /// Plant a known bug (repeatable; needs a build with `--features planted-bugs`).
    #[arg(long, value_name = "BUG")]
    pub plant: Vec<String>,
    /// Write manifest.json (for `wekasim merge`), junit.xml, and a run folder per failing
    /// seed, under DIR.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Print one JSON report per seed instead of the summary.
    #[arg(long)]
    pub json: bool,
    /// Print every coverage probe's counts, not only the rarest and the missing.
    #[arg(long)]
    pub coverage: bool,
}

pub fn run(args: SweepArgs) -> i32 {
    let planted = match planted(&args.plant) {
        Ok(p) => p,
        Err(e) => return usage_error(e),
    };
    let hook = match super::test_hook() {
        Ok(h) => h.filter(|h| *h == TestHook::PanicInHost),
        Err(e) => return usage_error(e),
    };
    let shard = match args.shard {
        Some(s) => s,
        None => match Shard::from_env(|name| std::env::var(name).ok()) {
            Ok(s) => s.unwrap_or(Shard::WHOLE),
            Err(e) => return usage_error(e),
        },
    };
    // Named before any seed runs: a build that cannot say what it is cannot be merged.
    let build = match args.out.as_ref().map(|_| Build::current()).transpose() {
        Ok(b) => b,
        Err(e) => return usage_error(e),
    };
    let seeds: Vec<u64> = shard.seeds(&args.seeds).collect();
    if shard != Shard::WHOLE {
        eprintln!(
            "shard {shard}: {} of the {} seeds {}..{} (seed s when (s - {}) mod {} = {})",
            seeds.len(),
            args.seeds.end - args.seeds.start,
            args.seeds.start,
            args.seeds.end,
            args.seeds.start,
            shard.count,
            shard.index
        );
    }
    let clock = Stopwatch::start();
    let failed = AtomicUsize::new(0);
    let tty = std::io::stderr().is_terminal();
    let every = (seeds.len() / 10).max(1);
    let reports: Vec<RunReport> = super::parallel::run(
        &seeds,
        super::parallel::jobs(args.jobs),
        |&seed| {
            let mut opts = SimOptions::new(seed);
            opts.planted = planted.clone();
            opts.test_hook = hook;
            scenarios::swarm::run(seed, &opts).1
        },
        |n, report: &RunReport| {
            let failures = failed.fetch_add(usize::from(!report.passed()), Ordering::SeqCst)
                + usize::from(!report.passed());
            let rate = n as f64 / clock.elapsed().as_secs_f64().max(1e-9);
            let line = format!("[{n}/{}] {failures} failed, {rate:.1} seeds/s", seeds.len());
            if tty {
                eprint!("\r{line}   ");
            } else if n % every == 0 || n == seeds.len() {
                eprintln!("{line}");
            }
            args.until_fail && !report.passed()
        },
    )
    .into_iter()
    .flatten()
    .collect();
    if tty {
        eprintln!();
    }
    let wall = clock.elapsed();
    let mut tally = Tally::new();
    for r in &reports {
        tally.add_run(&r.coverage);
    }

    if let (Some(dir), Some(build)) = (&args.out, build) {
        let manifest = Manifest {
            format: super::manifest::FORMAT.into(),
            build,
            swarm: Swarm {
                scenario: "swarm".into(),
                planted: planted.iter().map(|b| b.name().to_string()).collect(),
                test_hook: hook.map(|_| "panic-in-host".to_string()),
            },
            seeds: SeedRange {
                start: args.seeds.start,
                end: args.seeds.end,
            },
            shard: shard.into(),
            complete: reports.len() == seeds.len(),
            results: reports.iter().map(SeedResult::of).collect(),
            coverage: tally.clone(),
        };
        if let Err(e) = write_out(dir, &reports, &manifest) {
            eprintln!("error: cannot write under {}: {e}", dir.display());
            return super::EXIT_USAGE;
        }
    }
    if args.json {
        for r in &reports {
            println!("{}", serde_json::to_string(r).unwrap_or_default());
        }
    } else {
        let coverage = super::coverage::text(&tally, reports.len(), args.coverage);
        summary(&reports, wall, &coverage);
    }
    // Coverage is the whole sweep's: a shard's gap is judged when the shards merge.
    if shard == Shard::WHOLE {
        super::coverage::exit_code(exit_code(&reports), &tally, reports.len())
    } else {
        exit_code(&reports)
    }
}

fn write_out(
    dir: &std::path::Path,
    reports: &[RunReport],
    manifest: &Manifest,
) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    manifest.write(dir)?;
    std::fs::write(
        dir.join("junit.xml"),
        scenarios::report::junit(
            "wekasim sweep",
            reports,
            scenarios::report::RunFolders::Failing(dir),
        ),
    )?;
    for r in reports.iter().filter(|r| !r.passed()) {
        let scenario = scenarios::swarm::draw(r.seed).scenario(r.seed);
        scenarios::report::write_run_folder(dir, &scenario, r)?;
    }
    Ok(())
}

/// The totals, a repro line per failure, the coverage, and the verdict as the last line.
fn summary(reports: &[RunReport], wall: std::time::Duration, coverage: &str) {
    let count = |kind: FailureKind| {
        reports
            .iter()
            .filter(|r| r.failure.as_ref().is_some_and(|f| f.kind == kind))
            .count()
    };
    let passed = reports.iter().filter(|r| r.passed()).count();
    let sim: f64 = reports.iter().map(|r| r.sim_ms as f64 / 1000.0).sum();
    let secs = wall.as_secs_f64().max(1e-9);
    println!(
        "{:>6} {:>7} {:>12} {:>9} {:>6} {:>9} {:>9} {:>9}",
        "seeds", "passed", "correctness", "liveness", "crash", "wall", "seeds/s", "sim/wall"
    );
    println!(
        "{:>6} {:>7} {:>12} {:>9} {:>6} {:>8.1}s {:>9.1} {:>8.0}x",
        reports.len(),
        passed,
        count(FailureKind::Correctness),
        count(FailureKind::Liveness),
        count(FailureKind::Crash),
        secs,
        reports.len() as f64 / secs,
        sim / secs
    );
    for r in reports.iter().filter(|r| !r.passed()) {
        println!("{}", r.verdict_line());
    }
    print!("{coverage}");
    println!("{} passed, {} failed", passed, reports.len() - passed);
}
