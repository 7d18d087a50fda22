//! The run itself: setup, each step followed by the oracles, then the liveness phase
//! and the final read-back.

use std::time::Duration;

use cluster::admin::{AdminCommand, AdminError, AdminOutput};
use cluster::rpc::{self, Request, Response};
use cluster::{weka_cli, weka_print};
use rand::{Rng, RngCore};

use super::world::{lock, RunnerEvent, SnapshotContent, World};
use super::{Failure, FailureKind};
use crate::oracle::{self, Violation};
use crate::scenario::{Expect, Scenario, Step};

/// Bound on one admin command as the runner waits for it. Every wait inside the cluster
/// is shorter, so hitting this means an operation hangs instead of failing.
pub(super) const ADMIN_BOUND: Duration = Duration::from_secs(60);

/// What an admin command came to.
pub(super) enum Answer {
    Done(AdminOutput),
    /// The backend answered with a typed error.
    Refused(AdminError),
    /// No answer: the backend crashed or was cut off mid-command.
    Lost(String),
}

impl Answer {
    /// What a backend's reply to an admin command came to.
    pub(super) fn of(backend: u64, reply: Result<Response, rpc::RpcError>) -> Answer {
        match reply {
            Ok(Response::Admin(Ok(out))) => Answer::Done(out),
            Ok(Response::Admin(Err(e))) => Answer::Refused(e),
            Ok(_) => Answer::Lost(format!(
                "backend{backend} answered an admin command with another kind of answer"
            )),
            Err(e) => Answer::Lost(format!("backend{backend}: {e}")),
        }
    }

    /// The backend went down (crashed, powered off) before it answered.
    pub(super) fn went_down(backend: u64) -> Answer {
        Answer::Lost(format!("backend{backend} went down before it answered"))
    }
}

impl World<'_> {
    pub(super) fn fail(
        &self,
        kind: FailureKind,
        step: Option<usize>,
        check: &str,
        detail: String,
    ) -> Failure {
        let at_ms = self.fabric.elapsed().as_millis() as u64;
        if self.fabric.interrupted() {
            // Whatever failed after Ctrl-C failed because of it.
            return Failure {
                kind: FailureKind::Interrupted,
                step,
                check: "interrupted".into(),
                at_ms,
                detail: "the run was stopped by Ctrl-C".into(),
            };
        }
        Failure {
            kind,
            step,
            check: check.to_string(),
            at_ms,
            detail,
        }
    }

    /// Ends the run if the user stopped it.
    pub(super) fn check_interrupt(&self, step: Option<usize>) -> Result<(), Failure> {
        if self.fabric.interrupted() {
            return Err(self.fail(FailureKind::Interrupted, step, "interrupted", String::new()));
        }
        Ok(())
    }

    /// Lets `duration` of simulated time pass.
    pub(super) fn idle(&mut self, step: Option<usize>, duration: Duration) -> Result<(), Failure> {
        let end = self.fabric.elapsed() + duration;
        while self.fabric.elapsed() < end {
            self.check_interrupt(step)?;
            self.step_sim();
        }
        Ok(())
    }

    /// Plays the scenario to its end, or to the first failure.
    pub fn play(&mut self) -> Result<(), Failure> {
        let result = self.play_inner();
        let check = result.as_ref().err().map(|f| f.check.clone());
        self.record(&RunnerEvent::Verdict {
            pass: result.is_ok(),
            check: check.as_deref(),
            kms_requests: self.kms.requests(),
        });
        result
    }

    fn play_inner(&mut self) -> Result<(), Failure> {
        self.record(&RunnerEvent::Phase { name: "setup" });
        self.setup_kms()?;
        self.record(&RunnerEvent::Phase { name: "steps" });
        let steps = self.scenario.steps.clone();
        for (i, step) in steps.iter().enumerate() {
            let index = i + 1;
            self.record(&RunnerEvent::Step {
                index,
                action: step.action(),
            });
            self.step_begins(index, steps.len(), step.action());
            self.check_interrupt(Some(index))?;
            self.take(index, step)?;
            self.check_oracles(Some(index))?;
        }
        // Liveness: with every fault healed and every backend up, every filesystem must
        // become ready within the bound, and every acknowledged write read back.
        self.record(&RunnerEvent::Phase { name: "liveness" });
        self.step_begins(0, steps.len(), "liveness");
        self.heal_all();
        self.give_new_secret_id()?;
        let bound = self.opts.liveness_bound;
        self.wait_ready(None, bound, &[])?;
        for cluster in 0..self.clusters.len() {
            self.current = cluster;
            self.read_verify(None, "all", Expect::Ok)?;
        }
        self.check_oracles(None)
    }

    /// Sends one admin command to a backend and waits for its answer. A command that
    /// gets no answer is an [`Answer::Lost`]: what that means is up to the step.
    pub(super) fn admin(&mut self, backend: u64, cmd: AdminCommand) -> Answer {
        let addr = self.addr_of(backend);
        let dialer = self.fabric.dialer();
        let job = self.unless_down(backend, async move {
            rpc::call(dialer.as_ref(), &addr, &Request::Admin(cmd), ADMIN_BOUND).await
        });
        match self.run_job(ADMIN_BOUND + Duration::from_secs(1), job) {
            Ok(Some(reply)) => Answer::of(backend, reply),
            Ok(None) => Answer::went_down(backend),
            Err(_) => Answer::Lost(format!(
                "backend{backend} did not answer within {ADMIN_BOUND:?}"
            )),
        }
    }

    /// A backend's address (empty for an unknown id: the call then fails to connect).
    pub(super) fn addr_of(&self, backend: u64) -> String {
        self.backends
            .iter()
            .find(|b| b.id == backend)
            .map(|b| b.addr.clone())
            .unwrap_or_default()
    }

    /// A backend of the current cluster chosen by the seed among those running (and in
    /// `via`, if set). A backend whose config-table replica stopped refuses every
    /// command, so an admin goes to another, unless `via` leaves no other.
    pub(super) fn pick_backend(&mut self) -> u64 {
        let mine = self.backends.iter().filter(|b| b.cluster == self.current);
        let up: Vec<(u64, bool)> = mine
            .clone()
            .filter(|b| self.via.as_ref().is_none_or(|v| v.contains(&b.id)))
            .filter_map(|b| {
                let stopped = lock(&b.slot).as_ref()?.config_stopped().is_some();
                Some((b.id, stopped))
            })
            .collect();
        let serving: Vec<u64> = up.iter().filter(|(_, s)| !s).map(|(id, _)| *id).collect();
        let running: Vec<u64> = if serving.is_empty() {
            up.iter().map(|(id, _)| *id).collect()
        } else {
            serving
        };
        match running.len() {
            0 => mine
                .map(|b| b.id)
                .next()
                .expect("every cluster has a backend"),
            n => running[self.rng.gen_range(0..n)],
        }
    }

    /// Sends `cmd` to a backend the seed picks and holds the answer to `expect`.
    /// Returns the output when the command succeeded.
    pub(super) fn command(
        &mut self,
        step: Option<usize>,
        cmd: AdminCommand,
        expect: Expect,
    ) -> Result<Option<AdminOutput>, Failure> {
        let backend = self.pick_backend();
        self.command_on(step, backend, cmd, expect)
    }

    /// Sends `cmd` to `backend` and holds the answer to `expect`.
    pub(super) fn command_on(
        &mut self,
        step: Option<usize>,
        backend: u64,
        cmd: AdminCommand,
        expect: Expect,
    ) -> Result<Option<AdminOutput>, Failure> {
        let what = command_name(&cmd);
        let gives_secret_id = matches!(&cmd, AdminCommand::KmsSet(a) if a.secret_id.is_some());
        let answer = self.admin(backend, cmd);
        let judged = self.judge(step, what, backend, answer, expect);
        if gives_secret_id && matches!(judged, Ok(Some(_))) {
            // The cluster has the admin's newest secret-id (`kms_set` gives no other).
            self.secret_id_replaced = false;
        }
        judged
    }

    /// A block read, judged as any command is, but for one answer: a read refused as
    /// corrupt fails the read-back check whatever the step expects. A read checks each
    /// copy's checksum before it decrypts, and skips a damaged one, so a copy that gets as
    /// far as failing to decrypt was served as the block: wrong data, caught only by the
    /// cipher. (A read that found no good copy is refused as unavailable instead.)
    pub(super) fn read_command(
        &mut self,
        step: Option<usize>,
        cmd: AdminCommand,
        expect: Expect,
    ) -> Result<Option<AdminOutput>, Failure> {
        let what = command_name(&cmd);
        let backend = self.pick_backend();
        let answer = self.admin(backend, cmd);
        if let Answer::Refused(e @ AdminError::Corrupt { .. }) = &answer {
            return Err(self.fail(
                FailureKind::Correctness,
                step,
                "acknowledged-writes-read-back",
                format!("backend{backend}: {e}"),
            ));
        }
        self.judge(step, what, backend, answer, expect)
    }

    /// A command's answer against what the step expects of it.
    fn judge(
        &mut self,
        step: Option<usize>,
        what: &'static str,
        backend: u64,
        answer: Answer,
        expect: Expect,
    ) -> Result<Option<AdminOutput>, Failure> {
        match (answer, expect) {
            (Answer::Done(out), Expect::Ok | Expect::Any) => Ok(Some(out)),
            (Answer::Refused(_) | Answer::Lost(_), Expect::Error | Expect::Any) => Ok(None),
            (Answer::Done(_), Expect::Error) => Err(self.fail(
                FailureKind::Correctness,
                step,
                what,
                format!("backend{backend} carried it out, but the step expects it to fail"),
            )),
            (Answer::Refused(e), Expect::Ok) => Err(self.fail(
                FailureKind::Correctness,
                step,
                what,
                format!("backend{backend}: {e}"),
            )),
            (Answer::Lost(e), Expect::Ok) => Err(self.fail(FailureKind::Liveness, step, what, e)),
        }
    }

    /// The backend ids a group names (`None` for all).
    fn backend_ids(&self, group: Option<&str>) -> Option<Vec<u64>> {
        let hosts = crate::scenario::host_group(
            group?,
            self.scenario.cluster.backends,
            self.scenario.kms.kind.host(),
        )
        .ok()?;
        Some(
            self.backends
                .iter()
                .filter(|b| hosts.contains(&b.host))
                .map(|b| b.id)
                .collect(),
        )
    }

    fn take(&mut self, index: usize, step: &Step) -> Result<(), Failure> {
        let at = Some(index);
        // A step's `via` and `cluster` apply to that step only.
        self.via = None;
        self.current = step
            .cluster()
            .and_then(|name| self.clusters.iter().position(|c| c == name))
            .unwrap_or(0);
        match step {
            Step::KmsSet { auth } => {
                let cmd = self.kms.kms_set(&self.scenario.kms.key, *auth);
                self.command(at, cmd, Expect::Ok)?;
            }
            Step::FsCreate {
                name,
                count,
                encrypted,
                capacity_gib,
                expect,
            } => {
                for fs in Scenario::fs_names(name, *count) {
                    let cmd = AdminCommand::FsCreate {
                        kms_key: None,
                        name: fs,
                        capacity_gib: *capacity_gib,
                        encrypted: *encrypted,
                    };
                    self.create(at, cmd, *expect, None)?;
                }
            }
            Step::Write {
                fs,
                blocks,
                via,
                expect,
                ..
            } => {
                self.via = self.backend_ids(via.as_deref());
                let targets = self.select(at, fs)?;
                let size = self.scenario.cluster.block_size;
                for fs in targets {
                    for block in 0..*blocks {
                        let mut data = vec![0u8; size];
                        self.rng.fill_bytes(&mut data);
                        let cmd = AdminCommand::Write {
                            fs: fs.clone(),
                            block,
                            data: data.clone(),
                        };
                        let key = (fs.clone(), block);
                        let acked = self.command(at, cmd, *expect)?.is_some();
                        let books = &mut self.books[self.current];
                        if acked {
                            books.unacked.remove(&key);
                            books.acked.insert(key, data);
                        } else {
                            books.unacked.entry(key).or_default().push(data);
                        }
                    }
                }
            }
            Step::ReadVerify {
                fs, via, expect, ..
            } => {
                self.via = self.backend_ids(via.as_deref());
                self.read_verify(at, fs, *expect)?;
            }
            Step::Weka {
                command,
                expect_error,
                expect,
                expect_output,
                ..
            } => {
                let out = self.weka(at, command, expect_error.as_deref(), *expect)?;
                if let Some(text) = expect_output {
                    self.judge_output(at, command, out, text)?;
                }
            }
            Step::Race {
                commands,
                kms_rotate,
            } => self.race(at, commands, *kms_rotate)?,
            Step::RestartAll => {
                for i in 0..self.backends.len() {
                    self.restart(i);
                }
            }
            Step::Restart { backend } => self.restart(*backend as usize - 1),
            Step::Crash { backend } => {
                if self.is_up(*backend as usize - 1) {
                    self.crash(*backend as usize - 1);
                }
            }
            Step::Start { backend } => {
                for i in 0..self.backends.len() {
                    let named = backend.is_none_or(|b| b as usize == i + 1);
                    if named && !self.is_up(i) {
                        self.start(i);
                    }
                }
            }
            Step::CrashAt { backend, point } => {
                self.crashes.arm(backend.map(u64::from), *point);
            }
            Step::WaitReady { within, except } => self.wait_ready(at, *within, except)?,
            Step::ExpectLocked { within, backends } => {
                let only = self.backend_ids(backends.as_deref());
                self.expect_locked(at, *within, only)?;
            }
            Step::Idle { duration } => self.idle(at, *duration)?,
            Step::DiskFault { .. } | Step::DiskHeal { .. } => self.disk_fault(at, step),
            Step::KmsFault { .. }
            | Step::ObjectStoreFault { .. }
            | Step::KmsSeal
            | Step::KmsRevokeTokens
            | Step::KmsRevokeSecretId
            | Step::KmsRevokeKey
            | Step::KmsUnseal
            | Step::KmsStop
            | Step::KmsStart
            | Step::KmsRotate { .. }
            | Step::KmsTrim { .. }
            | Step::Partition { .. }
            | Step::Hold { .. }
            | Step::Release { .. }
            | Step::Heal
            | Step::Latency { .. } => self.fault(at, step)?,
        }
        Ok(())
    }

    /// `fs create`: an acknowledged filesystem joins the list every later check covers;
    /// one refused with a KMS error must never appear.
    fn create(
        &mut self,
        at: Option<usize>,
        cmd: AdminCommand,
        expect: Expect,
        expect_error: Option<&str>,
    ) -> Result<(), Failure> {
        let (name, download) = match &cmd {
            AdminCommand::FsCreate { name, .. } => (name.clone(), None),
            AdminCommand::FsDownload { name, locator, .. } => (name.clone(), Some(locator.clone())),
            _ => unreachable!("create is only called with fs create or fs download"),
        };
        let backend = self.pick_backend();
        let current = self.current;
        match self.admin(backend, cmd.clone()) {
            Answer::Done(out) if expect != Expect::Error && expect_error.is_none() => {
                self.judge_acknowledged(at, backend, cmd, out)?;
                self.book_created(name, download.as_deref());
                Ok(())
            }
            Answer::Refused(AdminError::FsExists(fs)) if !self.exists(current, &fs) => Err(self
                .fail(
                    FailureKind::Correctness,
                    at,
                    "errors-tell-the-truth",
                    format!(
                        "backend{backend} refused {fs} as existing, but no config table of \
                         its cluster has it"
                    ),
                )),
            Answer::Refused(e) if expect != Expect::Ok || expect_error.is_some() => {
                if expect_error.is_some_and(|t| !e.to_string().contains(t)) {
                    return Err(self.expected_error(at, expect_error, &e.to_string()));
                }
                if matches!(
                    e,
                    AdminError::Kms(_) | AdminError::KmsNotConfigured | AdminError::Snapshot { .. }
                ) {
                    self.books[current].failed_creates.insert(name);
                }
                Ok(())
            }
            Answer::Lost(_) if expect == Expect::Any => {
                // No answer: this try may have committed (a crash after the commit), so an
                // earlier failure under the name no longer means it must not exist.
                self.books[current].failed_creates.remove(&name);
                Ok(())
            }
            Answer::Done(_) => Err(self.fail(
                FailureKind::Correctness,
                at,
                "fs create",
                format!("backend{backend} created {name}, but the step expects a failure"),
            )),
            Answer::Refused(e) => Err(self.fail(
                FailureKind::Correctness,
                at,
                "fs create",
                format!("backend{backend}: {e}"),
            )),
            Answer::Lost(e) => Err(self.fail(FailureKind::Liveness, at, "fs create", e)),
        }
    }

    /// An acknowledged create (or, with the snapshot's locator, download) of `name` on the
    /// current cluster: it joins the books, and a downloaded one must read back as its
    /// snapshot was.
    pub(super) fn book_created(&mut self, name: String, download: Option<&str>) {
        let content = download.and_then(|l| self.snapshots.get(l).cloned());
        let books = &mut self.books[self.current];
        for (block, (expected, maybe)) in content.unwrap_or_default() {
            books.acked.insert((name.clone(), block), expected);
            books.unacked.insert((name.clone(), block), maybe);
        }
        // A create retried under a name whose first try failed.
        books.failed_creates.remove(&name);
        books.filesystems.push(name);
    }

    /// Whether the most advanced config table of cluster `cluster` has filesystem `fs`.
    pub(super) fn exists(&self, cluster: usize, fs: &str) -> bool {
        self.most_advanced(cluster)
            .is_some_and(|b| b.applied.state().filesystems.contains_key(fs))
    }

    /// A `weka fs` or `weka security kms` step's `expect_output`: the answer, printed as
    /// WEKA prints it, contains `text`.
    fn judge_output(
        &self,
        at: Option<usize>,
        command: &str,
        out: Option<AdminOutput>,
        text: &str,
    ) -> Result<(), Failure> {
        let printed = match (out, weka_cli::fs_view(command)) {
            (Some(AdminOutput::Filesystems { filesystems, kms }), Ok(Some(view))) => {
                view.print(&filesystems, kms.as_ref())
            }
            (Some(AdminOutput::Kms { kms }), _) => weka_print::kms_text(kms.as_ref()),
            (other, _) => format!("(no answer to print: {other:?})"),
        };
        if printed.contains(text) {
            return Ok(());
        }
        Err(self.fail(
            FailureKind::Correctness,
            at,
            "expected-output",
            format!("expected the output to contain {text:?}, got:\n{printed}"),
        ))
    }

    fn expected_error(&self, at: Option<usize>, text: Option<&str>, got: &str) -> Failure {
        self.fail(
            FailureKind::Correctness,
            at,
            "expected-error",
            format!(
                "expected an error containing {:?}, got {got}",
                text.unwrap_or_default()
            ),
        )
    }

    /// A WEKA CLI command, with the KMS's address and credentials filled in; answers what
    /// an acknowledged command (other than a create) answered.
    fn weka(
        &mut self,
        at: Option<usize>,
        command: &str,
        expect_error: Option<&str>,
        expect: Expect,
    ) -> Result<Option<AdminOutput>, Failure> {
        let cmd = self.parse_weka(at, command)?;
        if matches!(
            cmd,
            AdminCommand::FsCreate { .. } | AdminCommand::FsDownload { .. }
        ) {
            return self.create(at, cmd, expect, expect_error).map(|()| None);
        }
        let Some(text) = expect_error else {
            let rewrap = match cmd {
                AdminCommand::KmsRewrap | AdminCommand::KmsRewrapTo { .. } => Some(false),
                AdminCommand::KmsRewrapAll | AdminCommand::KmsRewrapConvert => Some(true),
                _ => None,
            };
            let upload = match &cmd {
                AdminCommand::SnapshotUpload { fs, .. } => Some(fs.clone()),
                _ => None,
            };
            let backend = self.pick_backend();
            let out = self.command_on(at, backend, cmd.clone(), expect)?;
            if let Some(all) = rewrap {
                self.rewrapped(all, out.is_some());
            }
            if let Some(out) = &out {
                self.judge_acknowledged(at, backend, cmd, out.clone())?;
            }
            if let (
                Some(fs),
                Some(AdminOutput::SnapshotUploaded {
                    bucket, locator, ..
                }),
            ) = (upload, &out)
            {
                self.remember_snapshot(at, &fs, bucket, locator.clone())?;
            }
            return Ok(out);
        };
        let backend = self.pick_backend();
        match self.admin(backend, cmd) {
            Answer::Refused(e) if e.to_string().contains(text) => Ok(None),
            Answer::Refused(e) => Err(self.expected_error(at, Some(text), &e.to_string())),
            Answer::Done(_) => Err(self.expected_error(at, Some(text), "success")),
            Answer::Lost(e) => Err(self.expected_error(at, Some(text), &e)),
        }
    }

    /// A WEKA CLI command as the cluster gets it: the KMS's address, credentials and
    /// files filled in.
    pub(super) fn parse_weka(
        &mut self,
        at: Option<usize>,
        command: &str,
    ) -> Result<AdminCommand, Failure> {
        let line = self.kms.substitute(command);
        // Checked at load time; a failure here can only come from a substitution.
        // Files a command names (`--client-cert F`) are the KMS under test's to give.
        let kms = self.kms.as_ref();
        let read = |path: &str| {
            kms.read_file(path)
                .ok_or_else(|| format!("no such file: {path}"))
        };
        let mut cmd = cluster::weka_cli::parse_with_files(&line, &read)
            .map_err(|e| self.fail(FailureKind::Correctness, at, "weka", e))?;
        self.kms.complete(&mut cmd);
        Ok(cmd)
    }

    /// What a snapshot of `fs` must read back as: the blocks as they stand now. The
    /// upload was acknowledged, so it must hold every one of them already.
    pub(super) fn remember_snapshot(
        &mut self,
        at: Option<usize>,
        fs: &str,
        bucket: &str,
        locator: String,
    ) -> Result<(), Failure> {
        let books = &self.books[self.current];
        let blocks: SnapshotContent = books
            .acked
            .iter()
            .filter(|((f, _), _)| f == fs)
            .map(|((_, block), data)| {
                let maybe = books
                    .unacked
                    .get(&(fs.to_string(), *block))
                    .cloned()
                    .unwrap_or_default();
                (*block, (data.clone(), maybe))
            })
            .collect();
        let complete = oracle::snapshot_holds_acknowledged_writes(
            &self.objects,
            bucket,
            &locator,
            blocks.keys().copied(),
        );
        self.snapshots.insert(locator, blocks);
        complete.map_err(|Violation { oracle, detail }| {
            self.fail(FailureKind::Correctness, at, oracle, detail)
        })
    }

    /// `all`, or one filesystem the scenario created on the current cluster.
    pub(super) fn select(&self, step: Option<usize>, fs: &str) -> Result<Vec<String>, Failure> {
        let filesystems = &self.books[self.current].filesystems;
        if fs == "all" {
            return Ok(filesystems.clone());
        }
        if filesystems.iter().any(|f| f == fs) {
            return Ok(vec![fs.to_string()]);
        }
        Err(self.fail(
            FailureKind::Correctness,
            step,
            "scenario",
            format!("no filesystem named {fs} was created before this step"),
        ))
    }
}

pub(super) fn command_name(cmd: &AdminCommand) -> &'static str {
    match cmd {
        AdminCommand::KmsSet(_) | AdminCommand::KmsSetKmip(_) => "security kms set",
        AdminCommand::KmsShow => "security kms",
        AdminCommand::KmsReset => "security kms reset",
        AdminCommand::KmsRewrap | AdminCommand::KmsRewrapTo { .. } => "security kms rewrap",
        AdminCommand::KmsRewrapAll => "security kms rewrap --all",
        AdminCommand::KmsRewrapConvert => "security kms rewrap --convert-to-cluster-key-on-fs",
        AdminCommand::FsKmsRewrap { .. } => "fs kms-rewrap",
        AdminCommand::SnapshotUpload { .. } => "fs snapshot upload",
        AdminCommand::SnapshotList => "fs snapshot",
        AdminCommand::FsDownload { .. } => "fs download",
        AdminCommand::FsCreate { .. } => "fs create",
        AdminCommand::FsList => "fs",
        AdminCommand::FsUpdate { .. } => "fs update",
        AdminCommand::Write { .. } => "write",
        AdminCommand::Read { .. } => "read",
        AdminCommand::Status => "status",
    }
}
