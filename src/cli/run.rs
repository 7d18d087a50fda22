//! `wekasim run <scenario> --seed N`, seeded; or live against a real Vault with
//! `--vault URL`, `--openbao [BIN]` or `--vault-container ID`, or against a real KMIP
//! server with `--kmip HOST:PORT` or `--pykmip [BIN]`.

use std::io::Write;
use std::path::PathBuf;

use clap::Args;
use cluster::secret::Secret;
use scenarios::live::{KmipTarget, LiveOptions, Target};
use scenarios::runner::{RunReport, SimOptions, TestHook};
use scenarios::scenario::Scenario;
use scenarios::simulated;

use super::{exit_code, planted, test_hook, usage_error, EXIT_CORRECTNESS, EXIT_USAGE};

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
    /// Also print, on stderr, how long each step took in simulated and in wall time.
    #[arg(long)]
    pub timings: bool,
    /// Scenario directory (default: ./scenarios, else the project's own).
    #[arg(long, value_name = "DIR")]
    pub scenarios: Option<PathBuf>,
    #[command(flatten)]
    pub live: LiveArgs,
}

/// Live runs: the scenario in real time against a real Vault or KMIP server. Secrets are
/// best given through their environment variables, which other users cannot read in `ps`;
/// KMIP's client key is read from a file.
#[derive(Args)]
pub struct LiveArgs {
    /// Run live against the Vault at this URL (it is never stopped or started).
    #[arg(long, value_name = "URL", group = "live_target")]
    pub vault: Option<String>,
    /// Run live against an OpenBao this run starts from BIN, on raft storage, and removes
    /// afterwards.
    #[arg(
        long,
        value_name = "BIN",
        num_args = 0..=1,
        default_missing_value = ".venv/bin/bao",
        group = "live_target"
    )]
    pub openbao: Option<PathBuf>,
    /// Run live against the Vault in this Docker container (port 8200 published); the
    /// run stops and starts it for `kms-stop` and `kms-start`.
    #[arg(long, value_name = "ID", group = "live_target")]
    pub vault_container: Option<String>,
    /// Run a KMIP scenario live against the KMIP server at HOST:PORT (never stopped or
    /// started; the run's keys are revoked and destroyed afterwards). Its certificate must
    /// name HOST.
    #[arg(
        long,
        value_name = "HOST:PORT",
        group = "live_target",
        requires_all = ["client_cert", "client_key"]
    )]
    pub kmip: Option<String>,
    /// Run a KMIP scenario live against a PyKMIP this run starts from BIN, with
    /// certificates made for the run, and removes afterwards.
    #[arg(
        long,
        value_name = "BIN",
        num_args = 0..=1,
        default_missing_value = ".venv/bin/pykmip-server",
        group = "live_target"
    )]
    pub pykmip: Option<PathBuf>,
    /// The cluster's client certificate for --kmip (PEM; its CN owns the run's keys).
    #[arg(long, value_name = "FILE", requires = "kmip")]
    pub client_cert: Option<PathBuf>,
    /// The client certificate's private key for --kmip (PEM).
    #[arg(long, value_name = "FILE", requires = "kmip")]
    pub client_key: Option<PathBuf>,
    /// The CA that signed the KMIP server's certificate, for --kmip (PEM).
    #[arg(long, value_name = "FILE", requires = "kmip")]
    pub ca_cert: Option<PathBuf>,
    /// An existing Active key on the --kmip server to use as the scenario's key, instead
    /// of one the run creates (the run never revokes or destroys it).
    #[arg(long, value_name = "UID", requires = "kmip")]
    pub kmip_key_uid: Option<String>,
    /// The Vault's admin token (mounts, policies, AppRole, seal).
    #[arg(
        long,
        env = "VAULT_TOKEN",
        hide_env_values = true,
        value_name = "TOKEN"
    )]
    pub token: Option<String>,
    /// The Vault's unseal key, for scenarios that seal or restart it.
    #[arg(
        long,
        env = "VAULT_UNSEAL_KEY",
        hide_env_values = true,
        value_name = "KEY"
    )]
    pub unseal_key: Option<String>,
    /// An existing transit mount for the run's keys (default: a mount of the run's own,
    /// removed afterwards).
    #[arg(long, value_name = "MOUNT")]
    pub transit_mount: Option<String>,
    /// An existing AppRole for the cluster to log in with (with --secret-id).
    #[arg(long, value_name = "ID", requires = "secret_id")]
    pub role_id: Option<String>,
    #[arg(
        long,
        env = "WEKA_KMS_SECRET_ID",
        hide_env_values = true,
        value_name = "SECRET",
        requires = "role_id"
    )]
    pub secret_id: Option<String>,
}

impl RunArgs {
    /// Whether the flags ask for a live run against a real KMS.
    pub fn is_live(&self) -> bool {
        self.live.is_live()
    }
}

impl LiveArgs {
    fn is_live(&self) -> bool {
        self.vault.is_some()
            || self.openbao.is_some()
            || self.vault_container.is_some()
            || self.kmip.is_some()
            || self.pykmip.is_some()
    }

    /// The live run these flags ask for, if any; `Err` names a file that cannot be read
    /// or a Vault flag given with a KMIP target.
    fn options(&self, seed: u64) -> Result<Option<LiveOptions>, String> {
        let target = if let Some(url) = &self.vault {
            Target::Url(url.clone())
        } else if let Some(bin) = &self.openbao {
            Target::OpenBao(bin.clone())
        } else if let Some(id) = &self.vault_container {
            Target::Container(id.clone())
        } else if let Some(address) = &self.kmip {
            Target::Kmip(self.kmip_target(address)?)
        } else if let Some(bin) = &self.pykmip {
            Target::PyKmip(bin.clone())
        } else {
            return Ok(None);
        };
        if matches!(target, Target::Kmip(_) | Target::PyKmip(_)) {
            // The env-backed Vault secrets may be set for other runs: only the flags that
            // are given on the command line alone are refused.
            let vault_only = [
                ("--transit-mount", self.transit_mount.is_some()),
                ("--role-id", self.role_id.is_some()),
            ];
            if let Some((flag, _)) = vault_only.iter().find(|(_, given)| *given) {
                return Err(format!(
                    "{flag} is for a live run against a Vault, not a KMIP server"
                ));
            }
        }
        let mut opts = LiveOptions::new(target);
        opts.seed = seed;
        opts.show_progress = true;
        opts.stop_on_ctrl_c = true;
        opts.admin_token = self.token.clone().map(Secret::new);
        opts.unseal_key = self.unseal_key.clone().map(Secret::new);
        opts.transit_mount = self.transit_mount.clone();
        opts.approle = self
            .role_id
            .clone()
            .zip(self.secret_id.clone().map(Secret::new));
        Ok(Some(opts))
    }

    /// `--kmip` with the certificate files read.
    fn kmip_target(&self, address: &str) -> Result<KmipTarget, String> {
        scenarios::live::preflight_kmip::host_of(address).map_err(|e| format!("--kmip: {e}"))?;
        let read = |flag: &str, path: &Option<PathBuf>| -> Result<Option<String>, String> {
            path.as_ref()
                .map(|p| {
                    std::fs::read_to_string(p).map_err(|e| format!("{flag} {}: {e}", p.display()))
                })
                .transpose()
        };
        let missing = |flag: &str| format!("--kmip needs {flag}");
        Ok(KmipTarget {
            address: address.to_string(),
            client_cert_pem: read("--client-cert", &self.client_cert)?
                .ok_or_else(|| missing("--client-cert FILE"))?,
            client_key_pem: Secret::new(
                read("--client-key", &self.client_key)?
                    .ok_or_else(|| missing("--client-key FILE"))?,
            ),
            ca_cert_pem: read("--ca-cert", &self.ca_cert)?,
            key_uid: self.kmip_key_uid.clone(),
        })
    }
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
    let mut report = simulated::run(&scenario, opts);
    if name.ends_with(".toml") {
        report.target = name.to_string();
    }
    Ok((scenario, report))
}

/// Plays `name` live; `Err` when it could not start (a usage error).
fn play_live(
    name: &str,
    dir: Option<PathBuf>,
    opts: &LiveOptions,
) -> Result<(Scenario, RunReport), String> {
    if name == "swarm" {
        return Err("the swarm runs only simulated: name a scenario to run live".into());
    }
    let scenario = load(name, dir)?;
    eprintln!(
        "live: {} against {}, in real time",
        scenario.scenario.name,
        match &opts.target {
            Target::Url(url) => url.clone(),
            Target::OpenBao(bin) => format!("an OpenBao started from {}", bin.display()),
            Target::Container(id) => format!("the Vault in container {id}"),
            Target::Kmip(t) => format!("the KMIP server at {}", t.address),
            Target::PyKmip(bin) => format!("a PyKMIP started from {}", bin.display()),
        }
    );
    let mut report = scenarios::live::run(&scenario, opts).map_err(|e| e.to_string())?;
    if name.ends_with(".toml") {
        report.target = name.to_string();
    }
    Ok((scenario, report))
}

pub fn run(args: RunArgs) -> i32 {
    let live = match args.live.options(args.seed) {
        Ok(live) => live,
        Err(e) => return usage_error(e),
    };
    if let Some(mut live) = live {
        if args.check_determinism {
            return usage_error("--check-determinism is for seeded runs, not live ones");
        }
        // A planted bug in a live run proves a gate against a real Vault catches it.
        live.planted = match planted(&args.plant) {
            Ok(p) => p,
            Err(e) => return usage_error(e),
        };
        return match play_live(&args.scenario, args.scenarios.clone(), &live) {
            Ok((scenario, report)) => finish(&args, &scenario, &report),
            Err(e) => usage_error(e),
        };
    }
    let mut opts = SimOptions::new(args.seed);
    opts.planted = match planted(&args.plant) {
        Ok(p) => p,
        Err(e) => return usage_error(e),
    };
    let hook = match test_hook() {
        Ok(h) => h,
        Err(e) => return usage_error(e),
    };
    // `perturb-second-run` leaves the first run alone: only the replay differs.
    opts.test_hook = hook.filter(|h| *h != TestHook::PerturbLatency);
    let (scenario, report) = match play(&args.scenario, args.scenarios.clone(), &opts) {
        Ok(r) => r,
        Err(e) => return usage_error(e),
    };
    let mut code = finish(&args, &scenario, &report);
    if code == EXIT_USAGE {
        return code;
    }

    if args.check_determinism {
        opts.test_hook = hook;
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

/// Writes what the flags ask for (trace, run folder) and prints the report; the exit code
/// of the verdict, or a usage error when a file cannot be written.
fn finish(args: &RunArgs, scenario: &Scenario, report: &RunReport) -> i32 {
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
        match scenarios::report::write_run_folder(dir, scenario, report) {
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
    if args.timings {
        print_timings(report);
    }
    if args.json {
        println!("{}", serde_json::to_string(report).unwrap_or_default());
    } else {
        println!("{}", report.verdict_line());
    }
    exit_code([report])
}

/// Each step's simulated and wall time (to the next step's start, or the run's end), on
/// stderr so the verdict line stays the last line of stdout.
fn print_timings(report: &scenarios::runner::RunReport) {
    eprintln!(
        "{:>5}  {:<16} {:>10} {:>10}",
        "step", "action", "sim", "wall"
    );
    for (t, sim, wall) in report.step_spans() {
        let step = if t.index == 0 {
            "-".to_string()
        } else {
            t.index.to_string()
        };
        eprintln!(
            "{step:>5}  {:<16} {:>9.3}s {:>9.3}s",
            t.action,
            sim.as_secs_f64(),
            wall.as_secs_f64()
        );
    }
}
