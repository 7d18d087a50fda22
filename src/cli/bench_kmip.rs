//! `wekasim bench-kmip`: DEKs wrapped and unwrapped per wall second with KMIP, by the
//! cluster's KMIP connector against kms-sim's KMIP server in process; with `--pykmip`, also
//! live against a real PyKMIP (over mutual TLS), beside PyKMIP's own Python client doing the
//! same count of Encrypts and Decrypts in the same run. Prints a table; asserts no speed.

use std::path::PathBuf;

use clap::Args;
use scenarios::bench_kmip::{self, Rate};

use super::{EXIT_CORRECTNESS, EXIT_PASS, EXIT_USAGE};

#[derive(Args)]
pub struct BenchKmipArgs {
    /// DEKs per operation, in simulation.
    #[arg(long, default_value_t = 20000)]
    pub deks: usize,
    /// DEKs per batched call (the cluster's connector sends one KMIP message per call).
    #[arg(long, default_value_t = 100)]
    pub batch: usize,
    /// Also run live against a PyKMIP started from this `pykmip-server`.
    #[arg(long, num_args = 0..=1, default_missing_value = ".venv/bin/pykmip-server")]
    pub pykmip: Option<PathBuf>,
    /// DEKs per operation against PyKMIP (it does a few hundred Encrypts a second).
    #[arg(long, default_value_t = 200)]
    pub live_deks: usize,
    /// The Python PyKMIP is installed in, for its own client.
    #[arg(long, default_value = ".venv/bin/python")]
    pub python: PathBuf,
    /// Seed of the DEKs, the simulated server and the simulated IVs.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
}

pub fn run(args: BenchKmipArgs) -> i32 {
    if args.deks == 0 || args.live_deks == 0 || args.batch == 0 {
        return super::usage_error("--deks, --live-deks and --batch must be at least 1");
    }
    if let Some(bin) = &args.pykmip {
        for (what, path) in [("--pykmip", bin), ("--python", &args.python)] {
            if !path.is_file() {
                eprintln!(
                    "error: {what} {} is missing: run bash tests/run.sh to install PyKMIP",
                    path.display()
                );
                return EXIT_USAGE;
            }
        }
    }
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start a tokio runtime: {e}");
            return EXIT_CORRECTNESS;
        }
    };
    rt.block_on(async {
        let deks = bench_kmip::deks(args.deks, args.seed);
        let sim = match bench_kmip::simulated(&deks, args.batch, args.seed).await {
            Ok(r) => r,
            Err(e) => {
                eprintln!("error: simulated: {e}");
                return EXIT_CORRECTNESS;
            }
        };
        println!(
            "bench-kmip (a) simulated: cluster::kms::connect_kmip over an in-memory stream \
             (no TLS) to kms_sim::KmipSim in process, AES-256-GCM, {} DEKs",
            args.deks
        );
        table(&[("harness", &sim)]);
        let Some(bin) = &args.pykmip else {
            return EXIT_PASS;
        };
        let deks = bench_kmip::deks(args.live_deks, args.seed);
        let live = match bench_kmip::live(bin, &args.python, &deks, args.batch).await {
            Ok(r) => r,
            Err(e) => {
                eprintln!("error: live: {e}");
                return EXIT_CORRECTNESS;
            }
        };
        println!();
        println!(
            "bench-kmip (b) live: PyKMIP 0.11 at {}, mutual TLS 1.2, {} DEKs",
            live.pykmip_addr, args.live_deks
        );
        println!(
            "harness: cluster::kms::connect (KmsConfig::Kmip, TcpDialer): one TLS connection kept \
             between calls, a KMIP message per call, KMIP 2.0"
        );
        println!(
            "pykmip:  PyKMIP's Python client (ProxyKmipClient's KMIPProxy), one connection, \
             one Encrypt or Decrypt per message, KMIP 2.0, on a key it created"
        );
        table(&[("harness", &live.harness), ("pykmip", &live.pykmip_client)]);
        EXIT_PASS
    })
}

fn table(groups: &[(&str, &Vec<Rate>)]) {
    println!(
        "{:<8} {:<26} {:>6} {:>9} {:>10}",
        "client", "operation", "items", "wall s", "items/s"
    );
    for (client, rates) in groups {
        for r in rates.iter() {
            println!(
                "{:<8} {:<26} {:>6} {:>9.3} {:>10.0}",
                client,
                r.label,
                r.items,
                r.wall.as_secs_f64(),
                r.per_sec()
            );
        }
    }
}
