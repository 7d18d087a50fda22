//! `wekasim bench`: simulated seconds per wall second, against bare turmoil.

use std::time::Duration;

use clap::Args;

use super::{EXIT_CORRECTNESS, EXIT_PASS};

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
}

pub fn run(args: BenchArgs) -> i32 {
    let tick = Duration::from_millis(args.tick_ms.max(1));
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
