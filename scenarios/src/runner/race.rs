//! Racing admins: several admin sessions send commands at the same moment, each to a
//! different backend, as admins of a real cluster do from their own consoles. Any of the
//! commands may succeed or fail (a compare-and-set lost to a racing change is a correct
//! refusal); what each acknowledged must then be in the config table, exactly once, and no
//! acknowledged change may have been overwritten by another that never saw it.

use std::future::Future;
use std::pin::Pin;
use std::task::Poll;
use std::time::Duration;

use cluster::admin::{AdminCommand, AdminError, AdminOutput};
use cluster::config_table::ConfigState;
use cluster::filesystem::KmsBinding;
use cluster::kms;
use cluster::rpc::{self, Request};
use rand::seq::SliceRandom;
use rand::Rng;

use super::checks::kms_unwraps;
use super::faults::KMS_ADMIN_BOUND;
use super::steps::{command_name, Answer, ADMIN_BOUND};
use super::world::{lock, RunnerEvent};
use super::{Failure, FailureKind, World};

/// The check that judges a race.
const ORACLE: &str = "acknowledged-effects";

/// The latest a race's key rotation starts, after the commands are sent: about the time a
/// command takes to reach its backend and the KMS, so that the rotation lands between one
/// command's wrap and another's.
pub const RACE_ROTATION_DELAY_MAX: Duration = Duration::from_millis(400);

/// A race's key rotation: what came of it, if there was one.
type Rotation = Pin<Box<dyn Future<Output = Option<Result<(), String>>>>>;

/// One command of a race and what came of it.
struct Raced {
    backend: u64,
    cmd: AdminCommand,
    answer: Answer,
}

impl World<'_> {
    /// Sends `commands` at once, each to its own backend, waits for every answer, books
    /// what was acknowledged, and judges the race.
    pub(super) fn race(
        &mut self,
        at: Option<usize>,
        commands: &[String],
        kms_rotate: bool,
    ) -> Result<(), Failure> {
        let mut cmds = Vec::with_capacity(commands.len());
        for command in commands {
            cmds.push(self.parse_weka(at, command)?);
        }
        let targets = self.race_targets(cmds.len());
        let dialer = self.fabric.dialer();
        let calls: Vec<_> = cmds
            .iter()
            .zip(&targets)
            .map(|(cmd, &backend)| {
                let (addr, dialer, req) = (self.addr_of(backend), dialer.clone(), cmd.clone());
                Box::pin(self.unless_down(backend, async move {
                    rpc::call(dialer.as_ref(), &addr, &Request::Admin(req), ADMIN_BOUND).await
                })) as Pin<Box<dyn Future<Output = _>>>
            })
            .collect();
        let rotation = self.rotation(kms_rotate, dialer.clone());
        let replies = self.run_job(
            ADMIN_BOUND + Duration::from_secs(1),
            join2(join_all(calls), rotation),
        );
        if let Ok((_, Some(rotated))) = &replies {
            let what = match rotated {
                Ok(()) => format!(
                    "key rotated to v{} during the race",
                    self.kms.versions(&self.scenario.kms.key).latest
                ),
                Err(e) => format!("the key rotation during the race failed: {e}"),
            };
            self.record(&RunnerEvent::Fault { what });
        }
        let replies = replies.map(|(replies, _)| replies);
        let raced: Vec<Raced> = match replies {
            Ok(replies) => cmds
                .into_iter()
                .zip(targets)
                .zip(replies)
                .map(|((cmd, backend), reply)| Raced {
                    backend,
                    answer: match reply {
                        Some(reply) => Answer::of(backend, reply),
                        None => Answer::went_down(backend),
                    },
                    cmd,
                })
                .collect(),
            Err(_) => {
                return Err(self.fail(
                    FailureKind::Liveness,
                    at,
                    "race",
                    format!("the racing commands did not all answer within {ADMIN_BOUND:?}"),
                ))
            }
        };
        for r in &raced {
            self.record(&RunnerEvent::Raced {
                backend: r.backend,
                command: command_name(&r.cmd),
                outcome: match &r.answer {
                    Answer::Done(_) => "acknowledged",
                    Answer::Refused(_) => "refused",
                    Answer::Lost(_) => "no answer",
                },
            });
        }
        // A race the check can fail: two commands acknowledged at once.
        if raced
            .iter()
            .filter(|r| matches!(r.answer, Answer::Done(_)))
            .count()
            >= 2
        {
            self.coverage.hit("oracle:acknowledged-effects");
        }
        self.book_race(at, &raced)?;
        self.judge_race(&raced)
            .map_err(|detail| self.fail(FailureKind::Correctness, at, ORACLE, detail))
    }

    /// The same check for a command that ran alone and was acknowledged: its effect must
    /// stand too (a rewrap that skipped a filesystem is caught when it answers, not when a
    /// trim later strands the filesystem).
    pub(super) fn judge_acknowledged(
        &self,
        at: Option<usize>,
        backend: u64,
        cmd: AdminCommand,
        out: AdminOutput,
    ) -> Result<(), Failure> {
        let alone = [Raced {
            backend,
            cmd,
            answer: Answer::Done(out),
        }];
        self.judge_race(&alone)
            .map_err(|detail| self.fail(FailureKind::Correctness, at, ORACLE, detail))
    }

    /// The cluster key's rotation in a race (`None` at once without `kms_rotate`), after a
    /// seeded delay of at most [`RACE_ROTATION_DELAY_MAX`]. The KMS's admin reaches it out
    /// of band, as for a `kms-rotate` step: a fault on the wire is lifted for the call (the
    /// racing commands meet no fault meanwhile either); a KMS stopped or sealed refuses it,
    /// and a rotation refused is one that did not happen.
    fn rotation(
        &mut self,
        kms_rotate: bool,
        dialer: std::sync::Arc<dyn cluster::net::Dialer>,
    ) -> Rotation {
        if !kms_rotate {
            return Box::pin(async { None });
        }
        let max = RACE_ROTATION_DELAY_MAX.as_millis() as u64;
        let delay = Duration::from_millis(self.rng.gen_range(0..=max));
        let key = self.scenario.kms.key.clone();
        let job = self.kms.rotate(dialer, &key);
        let chaos = self.fabric.chaos().clone();
        Box::pin(async move {
            tokio::time::sleep(delay).await;
            let fault = chaos.fault();
            chaos.set(kms_sim::chaos::Fault::None);
            let rotated = tokio::time::timeout(KMS_ADMIN_BOUND, job)
                .await
                .unwrap_or_else(|_| Err(format!("no answer within {KMS_ADMIN_BOUND:?}")));
            chaos.set(fault);
            Some(rotated)
        })
    }

    /// A backend per command, all different while there are enough running: the seed
    /// shuffles the running backends and the commands take them in turn.
    fn race_targets(&mut self, n: usize) -> Vec<u64> {
        let mut running: Vec<u64> = self
            .backends
            .iter()
            .filter(|b| b.cluster == self.current && lock(&b.slot).is_some())
            .map(|b| b.id)
            .collect();
        if running.is_empty() {
            // Every command then fails to connect, which is what a race against a cluster
            // that is down comes to.
            running = vec![self.pick_backend()];
        }
        running.shuffle(&mut self.rng);
        (0..n).map(|i| running[i % running.len()]).collect()
    }

    /// What the runner must remember of a race, as for the same commands alone: created
    /// and downloaded filesystems join the books, uploads are remembered, a create refused
    /// with a KMS error must never appear (unless a racing create of the name succeeded).
    fn book_race(&mut self, at: Option<usize>, raced: &[Raced]) -> Result<(), Failure> {
        let current = self.current;
        let created: Vec<&str> = raced
            .iter()
            .filter(|r| matches!(r.answer, Answer::Done(_)))
            .filter_map(|r| created_name(&r.cmd))
            .collect();
        for r in raced {
            match (&r.cmd, &r.answer) {
                (AdminCommand::FsCreate { name, .. }, Answer::Done(_)) => {
                    self.book_created(name.clone(), None)
                }
                (AdminCommand::FsDownload { name, locator, .. }, Answer::Done(_)) => {
                    self.book_created(name.clone(), Some(locator))
                }
                (
                    AdminCommand::FsCreate { name, .. } | AdminCommand::FsDownload { name, .. },
                    Answer::Refused(
                        AdminError::Kms(_)
                        | AdminError::KmsNotConfigured
                        | AdminError::Snapshot { .. },
                    ),
                ) if !created.contains(&name.as_str()) => {
                    self.books[current].failed_creates.insert(name.clone());
                }
                // No answer: the create may have committed (see `create`).
                (
                    AdminCommand::FsCreate { name, .. } | AdminCommand::FsDownload { name, .. },
                    Answer::Lost(_),
                ) => {
                    self.books[current].failed_creates.remove(name);
                }
                (AdminCommand::FsCreate { .. }, Answer::Refused(AdminError::FsExists(fs)))
                    if !self.exists(current, fs) =>
                {
                    return Err(self.fail(
                        FailureKind::Correctness,
                        at,
                        "errors-tell-the-truth",
                        format!(
                            "backend{} refused {fs} as existing, but no config table of its \
                             cluster has it",
                            r.backend
                        ),
                    ));
                }
                (
                    AdminCommand::SnapshotUpload { fs, .. },
                    Answer::Done(AdminOutput::SnapshotUploaded {
                        bucket, locator, ..
                    }),
                ) => self.remember_snapshot(at, fs, bucket, locator.clone())?,
                (AdminCommand::KmsRewrap | AdminCommand::KmsRewrapTo { .. }, answer) => {
                    self.rewrapped(false, matches!(answer, Answer::Done(_)));
                }
                (AdminCommand::KmsRewrapAll | AdminCommand::KmsRewrapConvert, answer) => {
                    self.rewrapped(true, matches!(answer, Answer::Done(_)));
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// The `acknowledged-effects` check: every acknowledged command's effect stands in the
    /// most advanced config table of the cluster. Where two acknowledged commands of a
    /// race change the same thing, either may have the last word.
    fn judge_race(&self, raced: &[Raced]) -> Result<(), String> {
        let Some(state) = self.most_advanced(self.current).map(|b| b.applied.state()) else {
            return Ok(());
        };
        let acked: Vec<&Raced> = raced
            .iter()
            .filter(|r| matches!(r.answer, Answer::Done(_)))
            .collect();
        // Whether another acknowledged command of the race also set `what`.
        let contested = |me: &Raced, what: &dyn Fn(&AdminCommand) -> bool| {
            acked
                .iter()
                .any(|other| !std::ptr::eq(*other, me) && what(&other.cmd))
        };
        let sets_kms = |c: &AdminCommand| {
            matches!(
                c,
                AdminCommand::KmsSet(_)
                    | AdminCommand::KmsSetKmip(_)
                    | AdminCommand::KmsRewrapTo { .. }
                    | AdminCommand::KmsReset
            )
        };
        for r in &acked {
            let who = format!(
                "{} acknowledged by backend{}",
                command_name(&r.cmd),
                r.backend
            );
            match (&r.cmd, &r.answer) {
                (
                    AdminCommand::FsCreate {
                        name,
                        encrypted,
                        kms_key,
                        ..
                    },
                    _,
                ) => match state.filesystems.get(name) {
                    None => return Err(format!("{who} ({name}): no such filesystem in the table")),
                    Some(rec) if rec.encrypted() != *encrypted => {
                        return Err(format!(
                            "{who} ({name}, encrypted {encrypted}): the table has it with \
                             encrypted {}",
                            rec.encrypted()
                        ))
                    }
                    Some(rec)
                        if kms_key.is_some()
                            && !contested(r, &|c| moves(c, name))
                            && rec.binding != own_binding(kms_key.as_deref()) =>
                    {
                        return Err(format!(
                            "{who} ({name} on key {}): the table has it bound to {:?}",
                            kms_key.as_deref().unwrap_or_default(),
                            rec.binding
                        ))
                    }
                    Some(_) => {}
                },
                (
                    AdminCommand::FsKmsRewrap { name },
                    Answer::Done(AdminOutput::Rewrapped {
                        key_version: Some(version),
                        ..
                    }),
                ) if !contested(r, &|c| moves(c, name)) => {
                    let wrapped = state
                        .filesystems
                        .get(name)
                        .and_then(|rec| rec.wrapped_dek.as_ref())
                        .map_or(0, |w| w.key_version);
                    if wrapped < *version {
                        return Err(format!(
                            "{who} ({name} to key version {version}): the table has it wrapped \
                             by version {wrapped}: the rewrap was lost"
                        ));
                    }
                }
                (AdminCommand::FsDownload { name, .. }, _)
                    if !state.filesystems.contains_key(name) =>
                {
                    return Err(format!("{who} ({name}): no such filesystem in the table"))
                }
                (AdminCommand::FsUpdate { name, kms_key }, _)
                    if !contested(r, &|c| moves(c, name)) =>
                {
                    self.judge_move(&state, &who, name, kms_key.as_deref())?
                }
                (
                    cmd @ (AdminCommand::KmsRewrap
                    | AdminCommand::KmsRewrapAll
                    | AdminCommand::KmsRewrapConvert),
                    Answer::Done(AdminOutput::Rewrapped {
                        key_version: Some(version),
                        ..
                    }),
                ) => {
                    for rec in state.members_encrypted() {
                        // An acknowledged conversion left no filesystem on a key of its
                        // own, but for one a racing command put there.
                        if *cmd == AdminCommand::KmsRewrapConvert
                            && matches!(rec.binding, KmsBinding::OwnKey { .. })
                            && !contested(r, &|c| onto_own_key(c, &rec.name))
                        {
                            return Err(format!(
                                "{who}, but {} is still on {:?}: a conversion was lost",
                                rec.name, rec.binding
                            ));
                        }
                        let wrapped = rec.wrapped_dek.as_ref().map_or(0, |w| w.key_version);
                        // `--all` moves each key of a filesystem's own to its newest
                        // version, which only the run's own rotations change.
                        let (key, newest) = match &rec.binding {
                            KmsBinding::ClusterKey => ("the cluster key".to_string(), *version),
                            KmsBinding::OwnKey { key } if *cmd == AdminCommand::KmsRewrapAll => {
                                (format!("key {key}"), self.kms.versions(key).latest)
                            }
                            _ => continue,
                        };
                        if wrapped < newest {
                            return Err(format!(
                                "{who} up to key version {newest}, but {} (on {key}) is \
                                 wrapped by version {wrapped}: a change was lost",
                                rec.name
                            ));
                        }
                    }
                }
                (AdminCommand::KmsReset, _) if !contested(r, &sets_kms) => {
                    if let Some(kms) = &state.kms {
                        return Err(format!(
                            "{who}: the table still has a KMS configured ({})",
                            kms.describe()
                        ));
                    }
                }
                (AdminCommand::KmsRewrapTo { new_key_uid }, _) if !contested(r, &sets_kms) => {
                    if state.kms_key() != Some(new_key_uid.as_str()) {
                        return Err(format!(
                            "{who} (to key {new_key_uid}): the cluster's key is {:?}",
                            state.kms_key()
                        ));
                    }
                    for rec in state.members_encrypted() {
                        let by = rec
                            .wrapped_dek
                            .as_ref()
                            .and_then(|w| kms::wrapping_key(&w.ciphertext));
                        if rec.binding == KmsBinding::ClusterKey && by != Some(new_key_uid) {
                            return Err(format!(
                                "{who} (to key {new_key_uid}), but {} (on the cluster key) is \
                                 wrapped by key {}",
                                rec.name,
                                by.unwrap_or("(unknown)")
                            ));
                        }
                    }
                }
                (cmd, _)
                    if kms_set_key(cmd).is_some_and(|k| state.kms_key() != Some(k))
                        && !contested(r, &sets_kms) =>
                {
                    return Err(format!(
                        "{who} (key {}): the cluster's key is {:?}",
                        kms_set_key(cmd).unwrap_or_default(),
                        state.kms_key()
                    ));
                }
                (
                    AdminCommand::SnapshotUpload { fs, .. },
                    Answer::Done(AdminOutput::SnapshotUploaded { locator, .. }),
                ) if !state.snapshots.contains_key(locator) => {
                    return Err(format!(
                        "{who} ({fs} as {locator}): the table lists no such snapshot"
                    ))
                }
                _ => {}
            }
        }
        exactly_once(&state)
    }

    /// An acknowledged `fs update` (uncontested in its race): the filesystem is bound as
    /// asked, and its committed wrapping unwraps under that binding (a wrapping written by
    /// a change that never saw the move would not).
    fn judge_move(
        &self,
        state: &ConfigState,
        who: &str,
        name: &str,
        kms_key: Option<&str>,
    ) -> Result<(), String> {
        let Some(rec) = state.filesystems.get(name) else {
            return Err(format!("{who} ({name}): no such filesystem in the table"));
        };
        let asked = own_binding(kms_key);
        if rec.binding != asked {
            return Err(format!(
                "{who} ({name} to {asked:?}): the table has it bound to {:?}: the move was lost",
                rec.binding
            ));
        }
        let (Some(config), Some(wrapped)) = (state.kms_for(rec), rec.wrapped_dek.as_ref()) else {
            return Ok(());
        };
        kms_unwraps(self.kms.as_ref(), &config, wrapped)
            .map(|_| ())
            .map_err(|why| {
                format!(
                    "{who} ({name} to {asked:?}): its committed wrapping (key version {}) does \
                     not unwrap under that key ({why}): a racing change overwrote the move",
                    wrapped.key_version
                )
            })
    }
}

/// The key a `security kms set` names.
fn kms_set_key(cmd: &AdminCommand) -> Option<&str> {
    match cmd {
        AdminCommand::KmsSet(set) => Some(&set.key_name),
        AdminCommand::KmsSetKmip(set) => Some(&set.key_uid),
        _ => None,
    }
}

/// The name a create or download makes.
fn created_name(cmd: &AdminCommand) -> Option<&str> {
    match cmd {
        AdminCommand::FsCreate { name, .. } | AdminCommand::FsDownload { name, .. } => Some(name),
        _ => None,
    }
}

/// No effect applied twice: every filesystem has an id of its own.
/// Whether `cmd` moves filesystem `name` to another key (`fs update`).
fn moves(cmd: &AdminCommand, name: &str) -> bool {
    matches!(cmd, AdminCommand::FsUpdate { name: n, .. } if n == name)
}

/// Whether `cmd` puts filesystem `name` on a key of its own (`fs create` or `fs update`
/// with `--kms-key-identifier`).
fn onto_own_key(cmd: &AdminCommand, name: &str) -> bool {
    matches!(
        cmd,
        AdminCommand::FsUpdate { name: n, kms_key: Some(_) }
            | AdminCommand::FsCreate { name: n, kms_key: Some(_), .. } if n == name
    )
}

/// The binding a filesystem created or moved with `kms_key` (`--kms-key-identifier`) has.
fn own_binding(kms_key: Option<&str>) -> KmsBinding {
    match kms_key {
        Some(key) => KmsBinding::OwnKey {
            key: key.to_string(),
        },
        None => KmsBinding::ClusterKey,
    }
}

fn exactly_once(state: &ConfigState) -> Result<(), String> {
    let mut ids = std::collections::BTreeMap::new();
    for rec in state.filesystems.values() {
        if let Some(other) = ids.insert(rec.id, &rec.name) {
            return Err(format!(
                "filesystems {other} and {} share id {}: one create applied twice",
                rec.name, rec.id
            ));
        }
    }
    Ok(())
}

/// Waits for every future and gives their outputs in order (the runner's admin host
/// needs nothing more than this, so no executor crate for it).
async fn join_all<T>(futures: Vec<Pin<Box<dyn Future<Output = T>>>>) -> Vec<T> {
    let mut pending: Vec<Option<Pin<Box<dyn Future<Output = T>>>>> =
        futures.into_iter().map(Some).collect();
    let mut done: Vec<Option<T>> = pending.iter().map(|_| None).collect();
    std::future::poll_fn(move |cx| {
        for (slot, out) in pending.iter_mut().zip(done.iter_mut()) {
            if let Some(fut) = slot {
                if let Poll::Ready(value) = fut.as_mut().poll(cx) {
                    *out = Some(value);
                    *slot = None;
                }
            }
        }
        if pending.iter().all(Option::is_none) {
            Poll::Ready(done.iter_mut().filter_map(Option::take).collect())
        } else {
            Poll::Pending
        }
    })
    .await
}

/// Both futures to the end, polled in this order (determinism), with both outputs.
async fn join2<A, B>(a: impl Future<Output = A>, b: impl Future<Output = B>) -> (A, B) {
    let (mut a, mut b) = (Box::pin(a), Box::pin(b));
    let (mut out_a, mut out_b) = (None, None);
    std::future::poll_fn(move |cx| {
        if out_a.is_none() {
            if let Poll::Ready(value) = a.as_mut().poll(cx) {
                out_a = Some(value);
            }
        }
        if out_b.is_none() {
            if let Poll::Ready(value) = b.as_mut().poll(cx) {
                out_b = Some(value);
            }
        }
        match (&out_a, &out_b) {
            (Some(_), Some(_)) => Poll::Ready((out_a.take().unwrap(), out_b.take().unwrap())),
            _ => Poll::Pending,
        }
    })
    .await
}
