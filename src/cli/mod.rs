//! Commands: `run`, `suite`, `sweep`, `merge`, `shrink`, `bench`, `bench-vault`,
//! `bench-kmip`, `list`.
//!
//! Exit codes: 0 all passed; 1 a correctness failure; 2 bad input (unknown scenario,
//! malformed file, bad flag); 3 a liveness failure; 4 a crash (panic); 5 a merge of sweep
//! shards with shards missing (and no failure among the seeds that ran).

mod bench;
mod bench_kmip;
mod bench_vault;
mod coverage;
mod manifest;
mod merge;
mod parallel;
mod run;
mod shard;
mod shrink;
mod suite;
mod sweep;
mod triage;

use std::collections::BTreeSet;
use std::path::PathBuf;

use clap::{Parser, Subcommand};

pub const EXIT_PASS: i32 = 0;
pub const EXIT_CORRECTNESS: i32 = 1;
pub const EXIT_USAGE: i32 = 2;
pub const EXIT_LIVENESS: i32 = 3;
pub const EXIT_CRASH: i32 = 4;
/// `merge`: shards missing or stopped early, and no seed that ran failed.
pub const EXIT_INCOMPLETE: i32 = 5;
/// `sweep` or `merge` of at least 1,000 seeds: nothing failed, but a declared coverage
/// probe never fired (the schedules no longer reach a path).
pub const EXIT_COVERAGE: i32 = 6;
/// A live run stopped by Ctrl-C (128 + SIGINT, as shells report it).
pub const EXIT_INTERRUPTED: i32 = 130;

#[derive(Parser)]
#[command(
    name = "wekasim",
    version,
    about = "Deterministic simulation of a WEKA cluster's KMS key management",
    long_about = "Simulates WEKA backends, their Raft-replicated config table and encrypted \
                  filesystems against a simulated Vault, from one seed. Every run ends with a \
                  verdict line and the command that reproduces it."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run one scenario with one seed and print its verdict.
    Run(Box<run::RunArgs>),
    /// Run every scenario of the library over a range of seeds and print a table.
    Suite(suite::SuiteArgs),
    /// Run the swarm (a topology, fault knobs and operations drawn per seed) over seeds.
    Sweep(sweep::SweepArgs),
    /// Merge the shard folders of one sweep (`sweep --shard I/N --out DIR`) into one verdict.
    Merge(merge::MergeArgs),
    /// Shrink a failing sweep seed to the smallest schedule that still fails.
    Shrink(shrink::ShrinkArgs),
    /// Measure simulated seconds per wall second against bare turmoil.
    Bench(bench::BenchArgs),
    /// Measure KMS throughput against a real OpenBao: harness vs bare vaultrs.
    BenchVault(bench_vault::BenchVaultArgs),
    /// Measure KMIP wraps and unwraps per second: simulated, and live against PyKMIP.
    BenchKmip(bench_kmip::BenchKmipArgs),
    /// List the scenarios of the library.
    List {
        /// Scenario directory (default: ./scenarios, else the project's own).
        #[arg(long)]
        scenarios: Option<PathBuf>,
        /// List the plantable bugs instead, each with the check that must catch it and
        /// the failure kind: `BUG CHECK KIND` per line.
        #[arg(long, conflicts_with = "scenarios")]
        bugs: bool,
    },
}

pub fn main() -> i32 {
    init_logging();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() {
                EXIT_USAGE
            } else {
                EXIT_PASS
            };
        }
    };
    // A seeded run needs a build whose seed fixes it; a live run does not.
    let seeded = match &cli.command {
        Command::Run(args) => !args.is_live(),
        Command::Suite(_) | Command::Sweep(_) | Command::Shrink(_) | Command::Bench(_) => true,
        Command::BenchVault(_)
        | Command::BenchKmip(_)
        | Command::Merge(_)
        | Command::List { .. } => false,
    };
    if seeded {
        if let Err(refusal) = scenarios::runner::seeded_build() {
            return usage_error(refusal);
        }
    }
    match cli.command {
        Command::Run(args) => run::run(*args),
        Command::Suite(args) => suite::run(args),
        Command::Bench(args) => bench::run(args),
        Command::BenchVault(args) => bench_vault::run(args),
        Command::BenchKmip(args) => bench_kmip::run(args),
        Command::Sweep(args) => sweep::run(args),
        Command::Merge(args) => merge::run(args),
        Command::Shrink(args) => shrink::run(args),
        Command::List { bugs: true, .. } => list_bugs(),
        Command::List { scenarios, .. } => list(scenarios),
    }
}

/// Logs go to stderr, filtered by `RUST_LOG` (default: warnings). They never feed the
/// trace, so `RUST_LOG` cannot change a run's hash.
fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn,openraft=off"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .without_time()
        .try_init();
}

/// The bugs `--plant` names; refused unless this build can plant them.
pub fn planted(names: &[String]) -> Result<BTreeSet<scenarios::PlantedBug>, String> {
    if names.is_empty() {
        return Ok(BTreeSet::new());
    }
    if !scenarios::CAN_PLANT {
        return Err("this build cannot plant bugs: build with `--features planted-bugs`".into());
    }
    names
        .iter()
        .map(|n| {
            scenarios::PlantedBug::parse(n).ok_or_else(|| {
                let known: Vec<&str> = scenarios::PlantedBug::ALL
                    .iter()
                    .map(|b| b.name())
                    .collect();
                format!("unknown bug {n:?}; known: {}", known.join(", "))
            })
        })
        .collect()
}

/// The hidden `WEKASIM_TEST_HOOK` (see `TestHook`): `panic-in-host` makes a simulated
/// host panic, `perturb-second-run` makes `--check-determinism`'s replay draw latency from
/// another seed. It exists only so tests/failure_paths.rs can show the crash and the
/// nondeterminism reports, which a correct build never produces (`sweep` takes
/// `panic-in-host`, so a normal build has failing seeds to stop at and write out).
pub fn test_hook() -> Result<Option<scenarios::runner::TestHook>, String> {
    let Ok(name) = std::env::var("WEKASIM_TEST_HOOK") else {
        return Ok(None);
    };
    match name.as_str() {
        "perturb-second-run" => Ok(Some(scenarios::runner::TestHook::PerturbLatency)),
        "panic-in-host" => Ok(Some(scenarios::runner::TestHook::PanicInHost)),
        _ => Err(format!(
            "WEKASIM_TEST_HOOK={name:?} is not a test hook (panic-in-host, perturb-second-run)"
        )),
    }
}

pub fn usage_error(message: impl std::fmt::Display) -> i32 {
    eprintln!("error: {message}");
    EXIT_USAGE
}

fn list(dir: Option<PathBuf>) -> i32 {
    let dir = dir.unwrap_or_else(scenarios::library::default_dir);
    let files = match scenarios::library::all(&dir) {
        Ok(f) => f,
        Err(e) => return usage_error(e),
    };
    for path in files {
        match scenarios::scenario::Scenario::load(&path) {
            Ok(s) => println!("{:<24} {}", s.scenario.name, s.scenario.description),
            Err(e) => return usage_error(e),
        }
    }
    EXIT_PASS
}

/// Every plantable bug with the check meant to catch it, for the planted-bug proof.
fn list_bugs() -> i32 {
    for bug in scenarios::PlantedBug::ALL {
        let catch = bug.caught_by();
        println!("{} {} {}", bug.name(), catch.check, catch.kind);
    }
    EXIT_PASS
}

/// The exit code for a set of reports: the worst failure wins.
pub fn exit_code<'a>(reports: impl IntoIterator<Item = &'a scenarios::runner::RunReport>) -> i32 {
    use scenarios::runner::FailureKind;
    let mut code = EXIT_PASS;
    for r in reports {
        let c = match r.failure.as_ref().map(|f| f.kind) {
            None => EXIT_PASS,
            Some(FailureKind::Correctness) => EXIT_CORRECTNESS,
            Some(FailureKind::Liveness) => EXIT_LIVENESS,
            Some(FailureKind::Crash) => EXIT_CRASH,
            Some(FailureKind::Interrupted) => EXIT_INTERRUPTED,
        };
        let rank = |c: i32| match c {
            EXIT_INTERRUPTED => 4,
            EXIT_CRASH => 3,
            EXIT_CORRECTNESS => 2,
            EXIT_LIVENESS => 1,
            _ => 0,
        };
        if rank(c) > rank(code) {
            code = c;
        }
    }
    code
}
