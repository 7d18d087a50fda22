//! `wekasim shrink --seed N`: the smallest swarm schedule that still fails, as a file.

use std::io::IsTerminal;
use std::path::PathBuf;

use clap::Args;
use scenarios::runner::SimOptions;

use super::{exit_code, planted, usage_error, EXIT_PASS, EXIT_USAGE};

#[derive(Args)]
pub struct ShrinkArgs {
    /// The failing sweep seed.
    #[arg(long)]
    pub seed: u64,
    /// Plant a known bug (as the failing sweep did).
    #[arg(long, value_name = "BUG")]
    pub plant: Vec<String>,
    /// At most this many runs while shrinking.
    #[arg(long, default_value_t = 300)]
    pub max_runs: usize,
    /// Where to write the shrunk scenario (default: swarm-<seed>-shrunk.toml). Put it
    /// under scenarios/regressions/ to have the suite run it.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
}

pub fn run(args: ShrinkArgs) -> i32 {
    let mut opts = SimOptions::new(args.seed);
    opts.planted = match planted(&args.plant) {
        Ok(p) => p,
        Err(e) => return usage_error(e),
    };
    let original = scenarios::swarm::draw(args.seed);
    eprintln!(
        "shrinking swarm seed {} ({} operations, {} backends)",
        args.seed,
        original.ops.len(),
        original.knobs.backends
    );
    let tty = std::io::stderr().is_terminal();
    let progress = |runs: usize, ops: usize| {
        if tty {
            eprint!("\r  run {runs}: trying {ops} operations   ");
        } else if runs % 50 == 0 {
            eprintln!("  run {runs}: trying {ops} operations");
        }
    };
    let Some((mut scenario, report, runs)) =
        scenarios::swarm::shrink(args.seed, &opts, args.max_runs.max(1), progress)
    else {
        println!("swarm seed {} passes: nothing to shrink", args.seed);
        return EXIT_PASS;
    };
    if tty {
        eprintln!();
    }
    // Its own name, so it can join scenarios/regressions/ beside others.
    scenario.scenario.name = format!("swarm-{}-shrunk", args.seed);
    let path = args
        .out
        .unwrap_or_else(|| PathBuf::from(format!("swarm-{}-shrunk.toml", args.seed)));
    let failure = report
        .failure
        .as_ref()
        .map(|f| f.check.clone())
        .unwrap_or_default();
    let header = format!(
        "# Shrunk by `wekasim shrink --seed {}{}` in {runs} runs.\n\
         # It fails the `{failure}` check with seed {} ({} steps left).\n\n",
        args.seed,
        args.plant
            .iter()
            .map(|b| format!(" --plant {b}"))
            .collect::<String>(),
        args.seed,
        scenario.steps.len()
    );
    let body = match scenario.to_toml() {
        Ok(b) => b,
        Err(e) => {
            eprintln!("error: cannot write the scenario as TOML: {e}");
            return EXIT_USAGE;
        }
    };
    if let Err(e) = std::fs::write(&path, format!("{header}{body}")) {
        eprintln!("error: cannot write {}: {e}", path.display());
        return EXIT_USAGE;
    }
    println!("{}", report.verdict_line());
    println!(
        "shrunk to {} steps in {runs} runs: {} (replay: wekasim run {} --seed {}{})",
        scenario.steps.len(),
        path.display(),
        path.display(),
        args.seed,
        args.plant
            .iter()
            .map(|b| format!(" --plant {b}"))
            .collect::<String>()
    );
    exit_code([&report])
}
