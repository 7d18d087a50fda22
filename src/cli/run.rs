//! `wekasim run <scenario> --seed N`

use std::io::Write;
use std::path::PathBuf;

use clap::Args;
use scenarios::scenario::Scenario;
use scenarios::sim::{self, RunReport, SimOptions};

use super::{exit_code, planted, usage_error, EXIT_CORRECTNESS, EXIT_USAGE};

#[derive(Args)]
pub struct RunArgs {
    /// Scenario name (e.g. startup-unwrap), a path to a .toml file, or `swarm` for the
    /// run a sweep draws from the seed.
    pub scenario: String,
    /// The seed that fixes the whole run.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Write the trace as JSON lines to this file.
    #[arg(long, value_name = "FILE")]
    pub trace: Option<PathBuf>,
    /// Write a run folder (scenario as played, trace, report, JUnit XML) under DIR.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Run the seed twice in this process and fail on any difference.
    #[arg(long)]
    pub check_determinism: bool,
    /// Print the report as one JSON object instead of the verdict line.
    #[arg(long)]
    pub json: bool,
    /// Plant a known bug (repeatable; needs a build with `--features planted-bugs`).
    #[arg(long, value_name = "BUG")]
    pub plant: Vec<String>,
    /// Scenario directory (default: ./scenarios, else the project's own).
    #[arg(long, value_name = "DIR")]
    pub scenarios: Option<PathBuf>,
}

pub fn load(name: &str, dir: Option<PathBuf>) -> Result<Scenario, String> {
    let dir = dir.unwrap_or_else(scenarios::library::default_dir);
    let path = scenarios::library::find(name, &dir)?;
    Scenario::load(&path).map_err(|e| e.to_string())
}

/// Plays `name` (a library scenario, a file, or `swarm`) with `opts`.
fn play(
    name: &str,
    dir: Option<PathBuf>,
    opts: &SimOptions,
) -> Result<(Scenario, RunReport), String> {
    if name == "swarm" {
        return Ok(scenarios::swarm::run(opts.seed, opts));
    }
    let scenario = load(name, dir)?;
    let mut report = sim::run(&scenario, opts);
    if name.ends_with(".toml") {
        report.target = name.to_string();
    }
    Ok((scenario, report))
}

pub fn run(args: RunArgs) -> i32 {
    let mut opts = SimOptions::new(args.seed);
    opts.planted = match planted(&args.plant) {
        Ok(p) => p,
        Err(e) => return usage_error(e),
    };
    let (scenario, report) = match play(&args.scenario, args.scenarios.clone(), &opts) {
        Ok(r) => r,
        Err(e) => return usage_error(e),
    };

    if let Some(path) = &args.trace {
        let write = std::fs::File::create(path).and_then(|mut f| {
            for line in &report.trace {
                writeln!(f, "{line}")?;
            }
            f.flush()
        });
        if let Err(e) = write {
            eprintln!("error: cannot write trace to {}: {e}", path.display());
            return EXIT_USAGE;
        }
    }
    if let Some(dir) = &args.out {
        match scenarios::report::write_run_folder(dir, &scenario, &report) {
            Ok(folder) => eprintln!("run folder: {}", folder.display()),
            Err(e) => {
                eprintln!(
                    "error: cannot write the run folder under {}: {e}",
                    dir.display()
                );
                return EXIT_USAGE;
            }
        }
    }
    if args.json {
        println!("{}", serde_json::to_string(&report).unwrap_or_default());
    } else {
        println!("{}", report.verdict_line());
    }
    let mut code = exit_code([&report]);
    if args.check_determinism {
        let again = match play(&args.scenario, args.scenarios, &opts) {
            Ok((_, r)) => r,
            Err(e) => return usage_error(e),
        };
        if again.trace_hash != report.trace_hash || again.trace != report.trace {
            let first_diff = report
                .trace
                .iter()
                .zip(&again.trace)
                .position(|(a, b)| a != b)
                .unwrap_or(report.trace.len().min(again.trace.len()));
            eprintln!(
                "NONDETERMINISTIC: seed {} gave hash {} then {}; traces first differ at line {}",
                args.seed,
                report.trace_hash,
                again.trace_hash,
                first_diff + 1
            );
            let line = |t: &[String]| t.get(first_diff).cloned().unwrap_or_else(|| "(end)".into());
            eprintln!("  first run:  {}", line(&report.trace));
            eprintln!("  second run: {}", line(&again.trace));
            code = EXIT_CORRECTNESS;
        } else {
            eprintln!(
                "determinism: seed {} replayed to the same hash {} ({} events)",
                args.seed, report.trace_hash, report.events
            );
        }
    }
    code
}
