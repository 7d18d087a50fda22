//! `wekasim bench`: simulated seconds per wall second, against bare turmoil.

use std::time::Duration;

use clap::Args;

use super::{EXIT_CORRECTNESS, EXIT_PASS, EXIT_USAGE};

#[derive(Args)]
pub struct BenchArgs {
    /// Backend nodes.
    #[arg(long, default_value_t = 5)]
    pub backends: u32,
    /// Encrypted filesystems created before the power cycle.
    #[arg(long, default_value_t = 64)]
    pub filesystems: u32,
    /// Seeds to run (0..N).
    #[arg(long, default_value_t = 5)]
    pub seeds: u64,
    /// turmoil tick in milliseconds.
    #[arg(long, default_value_t = 10)]
    pub tick_ms: u64,
    /// Print the scale table instead: for each size in `--sizes`, create the
    /// filesystems, power-cycle, rotate and rewrap, power-cycle (seed 0), each size in a
    /// process of its own so that its peak memory is its own.
    #[arg(long)]
    pub scale: bool,
    /// The scale table's sizes, as BACKENDSxFILESYSTEMS.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "5x64,5x1024,5x10000,15x64,15x1024,64x64"
    )]
    pub sizes: Vec<Size>,
    /// With --scale: print each row as a JSON line, not as a table.
    #[arg(long)]
    pub json: bool,
    /// Runs one size of the scale table and prints its row as JSON (what `--scale` runs
    /// in each child process).
    #[arg(long, hide = true)]
    pub scale_row: Option<Size>,
}

/// A size of the scale table: backends and filesystems (`5x1024`).
#[derive(Debug, Clone, Copy)]
pub struct Size {
    pub backends: u32,
    pub filesystems: u32,
}

impl std::str::FromStr for Size {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("{s:?}: expected BACKENDSxFILESYSTEMS, such as 5x1024");
        let (b, f) = s.split_once('x').ok_or_else(bad)?;
        Ok(Size {
            backends: b.trim().parse().map_err(|_| bad())?,
            filesystems: f.trim().parse().map_err(|_| bad())?,
        })
    }
}

impl std::fmt::Display for Size {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}x{}", self.backends, self.filesystems)
    }
}

pub fn run(args: BenchArgs) -> i32 {
    let tick = Duration::from_millis(args.tick_ms.max(1));
    if let Some(size) = args.scale_row {
        return match scenarios::bench::scale_row(size.backends, size.filesystems, tick) {
            Ok(row) => {
                println!("{}", serde_json::to_string(&row).unwrap_or_default());
                EXIT_PASS
            }
            Err(e) => {
                eprintln!("error: {size}: {e}");
                EXIT_CORRECTNESS
            }
        };
    }
    if args.scale {
        return scale_table(&args);
    }
    startup_unwrap(&args, tick)
}

/// The scale table: one child process per size.
fn scale_table(args: &BenchArgs) -> i32 {
    let exe = match std::env::current_exe() {
        Ok(exe) => exe,
        Err(e) => {
            eprintln!("error: cannot find this program to run each size: {e}");
            return EXIT_CORRECTNESS;
        }
    };
    // Every size is checked before the first runs: a bad one is a usage error.
    for size in &args.sizes {
        if let Err(e) = scenarios::bench::scale_scenario(size.backends, size.filesystems) {
            eprintln!("error: --sizes {size}: {e}");
            return EXIT_USAGE;
        }
    }
    if !args.json {
        println!(
            "{:<14} {:>9} {:>8} {:>9} {:>10} {:>11} {:>10} {:>9}",
            "size", "sim", "wall", "sim/wall", "ceiling", "rewrap sim", "rewrap wall", "peak MiB"
        );
    }
    let mut failed = false;
    for size in &args.sizes {
        eprintln!("bench --scale: {size} (backends x filesystems) ...");
        let out = std::process::Command::new(&exe)
            .args(["bench", "--tick-ms", &args.tick_ms.to_string()])
            .args(["--scale-row", &size.to_string()])
            .stderr(std::process::Stdio::inherit())
            .output();
        let row = match out {
            Ok(o) if o.status.success() => {
                serde_json::from_slice::<scenarios::bench::ScaleRow>(&o.stdout)
                    .map_err(|e| format!("unreadable row: {e}"))
            }
            Ok(o) => Err(format!("exited with {}", o.status)),
            Err(e) => Err(format!("cannot start: {e}")),
        };
        match row {
            Ok(row) if args.json => {
                println!("{}", serde_json::to_string(&row).unwrap_or_default())
            }
            Ok(row) => println!(
                "{:<14} {:>8.1}s {:>7.2}s {:>8.0}x {:>9.0}x {:>10.2}s {:>10.2}s {:>9}",
                size.to_string(),
                row.sim_s,
                row.wall_s,
                row.speed(),
                row.ceiling_speed(),
                row.rewrap_sim_s,
                row.rewrap_wall_s,
                row.peak_rss_mib.map_or("?".into(), |m| format!("{m:.0}")),
            ),
            Err(e) => {
                failed = true;
                eprintln!("error: size {size}: {e}");
            }
        }
    }
    if failed {
        EXIT_CORRECTNESS
    } else {
        EXIT_PASS
    }
}

/// The standard benchmark: startup-unwrap, seed by seed, against bare turmoil.
fn startup_unwrap(args: &BenchArgs, tick: Duration) -> i32 {
    eprintln!(
        "bench: startup-unwrap, {} backends, {} encrypted filesystems, {} seeds, {} ms tick",
        args.backends, args.filesystems, args.seeds, args.tick_ms
    );
    let (rows, ceilings) =
        match scenarios::bench::run(args.backends, args.filesystems, args.seeds.max(1), tick) {
            Ok(r) => r,
            Err(e) => {
                eprintln!("error: {e}");
                return EXIT_CORRECTNESS;
            }
        };
    println!(
        "{:<40} {:>9} {:>9} {:>12}",
        "run", "sim", "wall", "sim/wall"
    );
    for r in rows.iter().chain(&ceilings) {
        println!(
            "{:<40} {:>8.2}s {:>8.3}s {:>11.0}x",
            r.label,
            r.sim.as_secs_f64(),
            r.wall.as_secs_f64(),
            r.speed()
        );
    }
    let sim: f64 = rows.iter().map(|r| r.sim.as_secs_f64()).sum();
    let wall: f64 = rows.iter().map(|r| r.wall.as_secs_f64()).sum();
    let speed = sim / wall.max(1e-9);
    let ceiling = ceilings.first().map(|c| c.speed()).unwrap_or(f64::NAN);
    println!(
        "harness: {speed:.0}x real time, {:.3}s wall per seed",
        wall / rows.len() as f64
    );
    println!(
        "ceiling: {ceiling:.0}x (bare turmoil, same hosts and tick); harness at {:.0}% of it",
        100.0 * speed / ceiling
    );
    match scenarios::bench::peak_rss_kib() {
        Some(kib) => println!(
            "peak memory: {:.1} MiB (whole process)",
            kib as f64 / 1024.0
        ),
        None => println!("peak memory: unknown on this platform"),
    }
    EXIT_PASS
}
