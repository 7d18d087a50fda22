//! `wekasim suite`: every scenario of the library over a range of seeds.

use std::io::IsTerminal;
use std::ops::Range;
use std::path::PathBuf;

use clap::Args;
use scenarios::runner::{RunReport, SimOptions};
use scenarios::scenario::Scenario;
use scenarios::simulated;

use super::{exit_code, usage_error};

#[derive(Args)]
pub struct SuiteArgs {
    /// Seeds to run each scenario with: `A..B` (B excluded), `A..=B`, or one seed.
    #[arg(long, default_value = "0..4", value_parser = parse_seeds)]
    pub seeds: Range<u64>,
    /// Runs at once (default: the number of cores).
    #[arg(long)]
    pub jobs: Option<usize>,
    /// Print one JSON report per run instead of the table.
    #[arg(long)]
    pub json: bool,
    /// Scenario directory (default: ./scenarios, else the project's own).
    #[arg(long, value_name = "DIR")]
    pub scenarios: Option<PathBuf>,
}

/// `0..8`, `0..=7`, or `5`. An empty or reversed range is an error.
pub fn parse_seeds(text: &str) -> Result<Range<u64>, String> {
    let num = |s: &str| {
        s.trim().parse::<u64>().map_err(|_| {
            format!(
                "{s:?} is not a seed (a whole number from 0 to {})",
                u64::MAX
            )
        })
    };
    let range = if let Some((a, b)) = text.split_once("..=") {
        let (a, b) = (num(a)?, num(b)?);
        a..b.checked_add(1).ok_or("seed range end is too large")?
    } else if let Some((a, b)) = text.split_once("..") {
        num(a)?..num(b)?
    } else {
        let a = num(text)?;
        a..a + 1
    };
    if range.start >= range.end {
        return Err(format!("seed range {text} is empty or reversed"));
    }
    Ok(range)
}

pub fn run(args: SuiteArgs) -> i32 {
    let dir = args
        .scenarios
        .unwrap_or_else(scenarios::library::default_dir);
    let files = match scenarios::library::all(&dir) {
        Ok(f) => f,
        Err(e) => return usage_error(e),
    };
    let mut library = Vec::new();
    for path in &files {
        match Scenario::load(path) {
            Ok(s) => library.push(s),
            Err(e) => return usage_error(e),
        }
    }
    // A scenario that names its own seeds (a regression) runs with those.
    let work: Vec<(usize, u64)> = library
        .iter()
        .enumerate()
        .flat_map(|(i, s)| {
            s.scenario
                .seeds_or(args.seeds.clone())
                .into_iter()
                .map(move |seed| (i, seed))
        })
        .collect();
    let progress = std::io::stderr().is_terminal();
    let total = work.len();
    let reports: Vec<RunReport> = super::parallel::run(
        &work,
        super::parallel::jobs(args.jobs),
        |&(s, seed)| simulated::run(&library[s], &SimOptions::new(seed)),
        |finished, report: &RunReport| {
            if progress {
                eprint!(
                    "\r[{finished}/{total}] {} seed {} {}   ",
                    report.scenario,
                    report.seed,
                    if report.passed() { "PASS" } else { "FAIL" }
                );
            }
            false
        },
    )
    .into_iter()
    .flatten()
    .collect();
    if progress {
        eprintln!();
    }

    if args.json {
        for r in &reports {
            println!("{}", serde_json::to_string(r).unwrap_or_default());
        }
    } else {
        print_table(&library, &reports);
    }
    exit_code(&reports)
}

fn print_table(library: &[Scenario], reports: &[RunReport]) {
    println!(
        "{:<28} {:>5} {:>6} {:>6} {:>10} {:>9}",
        "scenario", "seeds", "passed", "failed", "sim-time", "wall-time"
    );
    let (mut total_pass, mut total_fail) = (0, 0);
    for s in library {
        let mine: Vec<&RunReport> = reports
            .iter()
            .filter(|r| r.scenario == s.scenario.name)
            .collect();
        let passed = mine.iter().filter(|r| r.passed()).count();
        let failed = mine.len() - passed;
        total_pass += passed;
        total_fail += failed;
        let sim: u64 = mine.iter().map(|r| r.sim_ms).sum();
        let wall: u64 = mine.iter().map(|r| r.wall_ms).sum();
        println!(
            "{:<28} {:>5} {:>6} {:>6} {:>9.1}s {:>8.2}s",
            s.scenario.name,
            mine.len(),
            passed,
            failed,
            sim as f64 / 1000.0,
            wall as f64 / 1000.0
        );
    }
    for r in reports.iter().filter(|r| !r.passed()) {
        println!("{}", r.verdict_line());
    }
    println!("{total_pass} passed, {total_fail} failed");
}

#[cfg(test)]
mod tests {
    use super::parse_seeds;

    #[test]
    fn seed_ranges() {
        assert_eq!(parse_seeds("0..8").unwrap(), 0..8);
        assert_eq!(parse_seeds("3..=5").unwrap(), 3..6);
        assert_eq!(parse_seeds("7").unwrap(), 7..8);
        assert!(parse_seeds("8..2").is_err());
        assert!(parse_seeds("4..4").is_err());
        assert!(parse_seeds("x").is_err());
    }
}
