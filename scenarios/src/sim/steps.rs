//! The run itself: setup, each step followed by the oracles, then the liveness phase
//! and the final read-back.

use std::collections::BTreeMap;
use std::time::Duration;

use cluster::admin::{AdminCommand, AdminError, AdminOutput, KmsSetVault};
use cluster::http::HttpClient;
use cluster::rpc::{self, Request, Response};
use rand::{Rng, RngCore};

use super::world::{RunnerEvent, World, BACKEND_PORT, ROOT_TOKEN, VAULT_HOST, VAULT_PORT};
use super::{Failure, FailureKind};
use crate::net::TurmoilDialer;
use crate::oracle::{self, Key, Violation};
use crate::scenario::{Auth, Scenario, Step};
use crate::trace;
use crate::vault_setup::VaultAdmin;

/// Bound on one admin command as the runner waits for it (the cluster's own timeouts are
/// shorter, so hitting this means something hangs).
const ADMIN_BOUND: Duration = Duration::from_secs(60);
const SETUP_BOUND: Duration = Duration::from_secs(30);

impl World<'_> {
    fn fail(&self, kind: FailureKind, step: Option<usize>, check: &str, detail: String) -> Failure {
        Failure {
            kind,
            step,
            check: check.to_string(),
            at_ms: self.sim.elapsed().as_millis() as u64,
            detail,
        }
    }

    /// Plays the scenario to its end, or to the first failure.
    pub fn play(&mut self) -> Result<(), Failure> {
        let result = self.play_inner();
        let check = result.as_ref().err().map(|f| f.check.clone());
        self.record(&RunnerEvent::Verdict {
            pass: result.is_ok(),
            check: check.as_deref(),
            kms_requests: self.vault.requests_served(),
        });
        result
    }

    fn play_inner(&mut self) -> Result<(), Failure> {
        self.record(&RunnerEvent::Phase { name: "setup" });
        self.setup_vault()?;
        let steps = self.scenario.steps.clone();
        for (i, step) in steps.iter().enumerate() {
            let index = i + 1;
            self.record(&RunnerEvent::Step {
                index,
                action: step.action(),
            });
            self.take(index, step)?;
            self.check_oracles(Some(index))?;
        }
        self.record(&RunnerEvent::Phase { name: "liveness" });
        let bound = self.opts.liveness_bound;
        self.wait_ready(None, bound)?;
        self.read_verify(None, "all")?;
        self.check_oracles(None)
    }

    /// The Vault an admin would prepare before `security kms set`.
    fn setup_vault(&mut self) -> Result<(), Failure> {
        // The job borrows nothing from `self` once built.
        let key = self.scenario.kms.key.clone();
        let job = async move {
            let http = HttpClient::new(std::sync::Arc::new(TurmoilDialer), Duration::from_secs(5));
            let base = format!("http://{VAULT_HOST}:{VAULT_PORT}");
            VaultAdmin {
                http: &http,
                base: &base,
                root_token: ROOT_TOKEN,
            }
            .prepare("transit", &key)
            .await
        };
        match self.driver.run(&mut self.sim, SETUP_BOUND, job) {
            Ok(Ok(creds)) => {
                self.creds = Some(creds);
                Ok(())
            }
            Ok(Err(e)) => Err(self.fail(FailureKind::Correctness, None, "vault-setup", e)),
            Err(_) => Err(self.fail(
                FailureKind::Liveness,
                None,
                "vault-setup",
                format!("Vault setup did not finish within {SETUP_BOUND:?}"),
            )),
        }
    }

    /// Sends one admin command to a backend and waits for its answer.
    fn admin(
        &mut self,
        step: Option<usize>,
        backend: u64,
        cmd: AdminCommand,
    ) -> Result<Result<AdminOutput, AdminError>, Failure> {
        let addr = format!("backend{backend}:{BACKEND_PORT}");
        let job = async move {
            rpc::call(&TurmoilDialer, &addr, &Request::Admin(cmd), ADMIN_BOUND / 2).await
        };
        match self.driver.run(&mut self.sim, ADMIN_BOUND, job) {
            Ok(Ok(Response::Admin(answer))) => Ok(answer),
            Ok(Ok(_)) => Err(self.fail(
                FailureKind::Correctness,
                step,
                "admin",
                format!("backend{backend} answered an admin command with another kind of answer"),
            )),
            Ok(Err(e)) => Err(self.fail(
                FailureKind::Liveness,
                step,
                "admin",
                format!("admin command to backend{backend} failed: {e}"),
            )),
            Err(_) => Err(self.fail(
                FailureKind::Liveness,
                step,
                "admin",
                format!("backend{backend} did not answer within {ADMIN_BOUND:?}"),
            )),
        }
    }

    /// A backend chosen by the seed among those running.
    fn pick_backend(&mut self) -> u64 {
        let running: Vec<u64> = self.running().into_iter().map(|(id, _)| id).collect();
        if running.is_empty() {
            return self.backends[0].id;
        }
        running[self.rng.gen_range(0..running.len())]
    }

    /// An admin command that must succeed.
    fn must(&mut self, step: Option<usize>, cmd: AdminCommand) -> Result<AdminOutput, Failure> {
        let what = command_name(&cmd);
        let backend = self.pick_backend();
        match self.admin(step, backend, cmd)? {
            Ok(out) => Ok(out),
            Err(e) => Err(self.fail(
                FailureKind::Correctness,
                step,
                what,
                format!("backend{backend}: {e}"),
            )),
        }
    }

    fn take(&mut self, index: usize, step: &Step) -> Result<(), Failure> {
        let at = Some(index);
        match step {
            Step::KmsSet { auth } => {
                let creds = self.creds.as_ref().expect("setup ran");
                let (token, role_id, secret_id) = match auth {
                    Auth::Token => (Some(creds.token.clone()), None, None),
                    Auth::Approle => (
                        None,
                        Some(creds.role_id.clone()),
                        Some(creds.secret_id.clone()),
                    ),
                };
                let mut args = KmsSetVault::new(
                    format!("http://{VAULT_HOST}:{VAULT_PORT}"),
                    self.scenario.kms.key.clone(),
                );
                (args.token, args.role_id, args.secret_id) = (token, role_id, secret_id);
                self.must(at, AdminCommand::KmsSet(args))?;
            }
            Step::FsCreate {
                name,
                count,
                encrypted,
                capacity_gib,
            } => {
                for fs in Scenario::fs_names(name, *count) {
                    self.must(
                        at,
                        AdminCommand::FsCreate {
                            name: fs.clone(),
                            capacity_gib: *capacity_gib,
                            encrypted: *encrypted,
                        },
                    )?;
                    self.filesystems.push(fs);
                }
            }
            Step::Write { fs, blocks } => {
                let targets = self.select(at, fs)?;
                let size = self.scenario.cluster.block_size;
                for fs in targets {
                    for block in 0..*blocks {
                        let mut data = vec![0u8; size];
                        self.rng.fill_bytes(&mut data);
                        self.must(
                            at,
                            AdminCommand::Write {
                                fs: fs.clone(),
                                block,
                                data: data.clone(),
                            },
                        )?;
                        self.acked.insert((fs.clone(), block), data);
                    }
                }
            }
            Step::ReadVerify { fs } => self.read_verify(at, fs)?,
            Step::RestartAll => {
                for i in 0..self.backends.len() {
                    self.restart(i);
                }
            }
            Step::Restart { backend } => self.restart(*backend as usize - 1),
            Step::WaitReady { within } => self.wait_ready(at, *within)?,
            Step::Weka {
                command,
                expect_error,
            } => {
                let creds = self.creds.as_ref().expect("setup ran");
                let line = crate::scenario::substitute(
                    command,
                    &format!("http://{VAULT_HOST}:{VAULT_PORT}"),
                    creds.token.expose(),
                    &creds.role_id,
                    creds.secret_id.expose(),
                );
                // Checked at load time; a failure here can only come from a substitution.
                let cmd = cluster::weka_cli::parse(&line)
                    .map_err(|e| self.fail(FailureKind::Correctness, at, "weka", e))?;
                let created = match &cmd {
                    AdminCommand::FsCreate { name, .. } => Some(name.clone()),
                    _ => None,
                };
                match expect_error {
                    None => {
                        self.must(at, cmd)?;
                        self.filesystems.extend(created);
                    }
                    Some(text) => {
                        let backend = self.pick_backend();
                        match self.admin(at, backend, cmd)? {
                            Err(e) if e.to_string().contains(text.as_str()) => {}
                            other => {
                                return Err(self.fail(
                                    FailureKind::Correctness,
                                    at,
                                    "expected-error",
                                    format!(
                                        "expected an error containing {text:?}, got {}",
                                        match other {
                                            Ok(_) => "success".to_string(),
                                            Err(e) => e.to_string(),
                                        }
                                    ),
                                ))
                            }
                        }
                    }
                }
            }
            Step::Idle { duration } => {
                let end = self.sim.elapsed() + *duration;
                while self.sim.elapsed() < end {
                    self.step_sim();
                }
            }
        }
        Ok(())
    }

    fn step_sim(&mut self) {
        if let Err(e) = self.sim.step() {
            panic!("the simulation stopped: {e}");
        }
    }

    /// `all`, or one filesystem the scenario created.
    fn select(&self, step: Option<usize>, fs: &str) -> Result<Vec<String>, Failure> {
        if fs == "all" {
            return Ok(self.filesystems.clone());
        }
        if self.filesystems.iter().any(|f| f == fs) {
            return Ok(vec![fs.to_string()]);
        }
        Err(self.fail(
            FailureKind::Correctness,
            step,
            "scenario",
            format!("no filesystem named {fs} was created before this step"),
        ))
    }

    /// Every acknowledged block of the selection must read back byte for byte.
    fn read_verify(&mut self, step: Option<usize>, fs: &str) -> Result<(), Failure> {
        let wanted = self.select(step, fs)?;
        let blocks: Vec<((String, u64), Vec<u8>)> = self
            .acked
            .iter()
            .filter(|((f, _), _)| wanted.contains(f))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        for ((fs, block), expected) in blocks {
            let out = self.must(
                step,
                AdminCommand::Read {
                    fs: fs.clone(),
                    block,
                },
            )?;
            let same = matches!(&out, AdminOutput::Data { data } if *data == expected);
            if !same {
                return Err(self.fail(
                    FailureKind::Correctness,
                    step,
                    "acknowledged-writes-read-back",
                    format!("block {block} of {fs} does not read back as written"),
                ));
            }
        }
        Ok(())
    }

    /// Steps until every backend is up and serves every filesystem with no `KMSError`.
    fn wait_ready(&mut self, step: Option<usize>, within: Duration) -> Result<(), Failure> {
        let end = self.sim.elapsed() + within;
        loop {
            let waiting = self.not_ready();
            if waiting.is_empty() {
                return Ok(());
            }
            if self.sim.elapsed() >= end {
                return Err(self.fail(
                    FailureKind::Liveness,
                    step,
                    "filesystems-ready",
                    format!(
                        "not ready after {:.1}s: {}",
                        within.as_secs_f64(),
                        waiting.join("; ")
                    ),
                ));
            }
            self.step_sim();
        }
    }

    fn not_ready(&self) -> Vec<String> {
        let running = self.running();
        let expected = self.filesystems.len();
        let mut waiting = Vec::new();
        for b in &self.backends {
            match running.iter().find(|(id, _)| *id == b.id) {
                None => waiting.push(format!("{} is not up", b.host)),
                Some((_, node)) if !node.is_ready(expected) => {
                    let status = node.status();
                    waiting.push(format!(
                        "{} locked [{}] alerts [{}]",
                        b.host,
                        status.locked.join(","),
                        status.alerts.join(",")
                    ));
                }
                Some(_) => {}
            }
        }
        waiting
    }

    /// The oracles that hold after every step.
    fn check_oracles(&mut self, step: Option<usize>) -> Result<(), Failure> {
        let held: Vec<(u64, BTreeMap<String, Key>)> = self
            .running()
            .into_iter()
            .map(|(id, node)| {
                let keys = node.with_keys(|keys| {
                    keys.iter()
                        .map(|(fs, dek)| (fs.clone(), *dek.expose()))
                        .collect()
                });
                (id, keys)
            })
            .collect();
        let disks: Vec<_> = self
            .backends
            .iter()
            .map(|b| (b.id, b.disk.clone()))
            .collect();
        let result = oracle::deks_agree(&held, &mut self.known_deks).and_then(|()| {
            self.leaks.update(&self.known_deks);
            self.leaks.no_plaintext_dek_at_rest(&disks)?;
            let trace = trace::lock(&self.trace);
            self.leaks.no_dek_in_trace(trace.lines())
        });
        result.map_err(|Violation { oracle, detail }| {
            self.fail(FailureKind::Correctness, step, oracle, detail)
        })
    }
}

fn command_name(cmd: &AdminCommand) -> &'static str {
    match cmd {
        AdminCommand::KmsSet(_) => "security kms set",
        AdminCommand::KmsShow => "security kms",
        AdminCommand::FsCreate { .. } => "fs create",
        AdminCommand::FsList => "fs",
        AdminCommand::Write { .. } => "write",
        AdminCommand::Read { .. } => "read",
        AdminCommand::Status => "status",
    }
}
