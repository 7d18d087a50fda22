//! Checks on the cluster: waiting for readiness (or for the locked state an outage must
//! leave), reading back acknowledged writes, and the oracles run after every step.

use std::collections::BTreeMap;
use std::time::Duration;

use cluster::admin::{AdminCommand, AdminOutput};
use cluster::config_table::ConfigState;
use cluster::events::KMS_ERROR_ALERT;
use cluster::filesystem::KmsBinding;
use cluster::kms::{KmsConfig, WrappedDek};

use super::world::{lock, World};
use super::{Failure, FailureKind};
use crate::config_agreement::{self, AppliedAt};
use crate::kms::KmsUnderTest;
use crate::oracle::{self, DiskView, Key, Violation};
use crate::scenario::{Expect, KmsKind};
use crate::trace;

/// How much a wait's `lagging` must say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Detail {
    /// Only whether anything lags: asked every tick, so it stops at the first laggard
    /// and describes nothing (a status names every filesystem).
    FirstOnly,
    /// Every laggard and why: for the failure message.
    Full,
}

impl World<'_> {
    /// Every acknowledged block of the selection must read back byte for byte.
    pub(super) fn read_verify(
        &mut self,
        step: Option<usize>,
        fs: &str,
        expect: Expect,
    ) -> Result<(), Failure> {
        let wanted = self.select(step, fs)?;
        let current = self.current;
        let blocks: Vec<((String, u64), Vec<u8>)> = self.books[current]
            .acked
            .iter()
            .filter(|((f, _), _)| wanted.contains(f))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        for ((fs, block), expected) in blocks {
            let cmd = AdminCommand::Read {
                fs: fs.clone(),
                block,
            };
            let Some(out) = self.read_command(step, cmd, expect)? else {
                continue;
            };
            let key = (fs.clone(), block);
            let possible = |data: &Vec<u8>| {
                *data == expected
                    || self.books[current]
                        .unacked
                        .get(&key)
                        .is_some_and(|maybe| maybe.contains(data))
            };
            let same = matches!(&out, AdminOutput::Data { data } if possible(data));
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

    /// Steps the simulation until `lagging` reports nothing, or fails the run as a
    /// liveness failure of `check` once `within` has passed. `lagging` is asked every
    /// tick for [`Detail::FirstOnly`], and for [`Detail::Full`] only to explain a failure.
    fn wait_until(
        &mut self,
        step: Option<usize>,
        within: Duration,
        check: &str,
        lagging: impl Fn(&Self, Detail) -> Vec<String>,
    ) -> Result<(), Failure> {
        let end = self.fabric.elapsed() + within;
        loop {
            self.check_interrupt(step)?;
            if lagging(self, Detail::FirstOnly).is_empty() {
                return Ok(());
            }
            if self.fabric.elapsed() >= end {
                let waiting = lagging(self, Detail::Full);
                return Err(self.fail(
                    FailureKind::Liveness,
                    step,
                    check,
                    format!(
                        "not there after {:.1}s: {}",
                        within.as_secs_f64(),
                        waiting.join("; ")
                    ),
                ));
            }
            self.step_sim();
        }
    }

    /// Steps until every backend is up and serves every filesystem but those of `except`
    /// (which may stay locked, with `KMSError` raised for them).
    pub(super) fn wait_ready(
        &mut self,
        step: Option<usize>,
        within: Duration,
        except: &[String],
    ) -> Result<(), Failure> {
        self.wait_until(step, within, "filesystems-ready", |world, detail| {
            world.not_ready(except, detail)
        })
    }

    fn not_ready(&self, except: &[String], detail: Detail) -> Vec<String> {
        let running = self.running();
        let mut waiting = Vec::new();
        for b in &self.backends {
            if detail == Detail::FirstOnly && !waiting.is_empty() {
                break;
            }
            let expected = &self.books[b.cluster].filesystems;
            let ready = |node: &cluster::node::Node| {
                // Every acknowledged filesystem by name, not by count: a backend whose
                // table has caught up on a filesystem nobody was told of (a download whose
                // answer a crash lost) but not yet on an acknowledged one is not ready.
                let table = node.config();
                if !expected.iter().all(|fs| table.filesystems.contains_key(fs)) {
                    return false;
                }
                if except.is_empty() {
                    return node.is_ready(expected.len());
                }
                let status = node.status();
                status.locked.iter().all(|fs| except.contains(fs))
            };
            match running.iter().find(|(id, _)| *id == b.id) {
                None => waiting.push(format!("{} is not up", b.host)),
                // A backend whose config-table replica stopped on a damaged record is
                // never ready again; it must have said so, and the others serve without it.
                Some((_, node)) if node.config_stopped().is_some() => {
                    if !lock(&self.reported_corrupt).contains(&b.id) {
                        waiting.push(format!(
                            "{} stopped its config-table replica without reporting it",
                            b.host
                        ));
                    }
                }
                Some((_, node)) if !ready(node) && detail == Detail::FirstOnly => {
                    waiting.push(b.host.clone());
                }
                Some((_, node)) if !ready(node) => {
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

    /// Steps until every backend of `only` (all by default) is up, has raised
    /// `KMSError`, keeps every encrypted filesystem locked and serves every unencrypted
    /// one: what a KMS outage at startup must look like.
    pub(super) fn expect_locked(
        &mut self,
        step: Option<usize>,
        within: Duration,
        only: Option<Vec<u64>>,
    ) -> Result<(), Failure> {
        self.wait_until(step, within, "locked-during-outage", |world, _| {
            world.not_locked(only.as_deref())
        })
    }

    fn not_locked(&self, only: Option<&[u64]>) -> Vec<String> {
        let running = self.running();
        let mut waiting = Vec::new();
        let checked = self
            .backends
            .iter()
            .filter(|b| only.is_none_or(|o| o.contains(&b.id)));
        for b in checked {
            let Some((_, node)) = running.iter().find(|(id, _)| *id == b.id) else {
                waiting.push(format!("{} is not up", b.host));
                continue;
            };
            let status = node.status();
            let state = node.config();
            let encrypted = state.members_encrypted().count();
            let alert = status.alerts.iter().any(|a| a == KMS_ERROR_ALERT);
            let plain_ready = state
                .filesystems
                .values()
                .filter(|f| !f.encrypted())
                .all(|f| status.ready.contains(&f.name));
            if !alert || status.locked.len() != encrypted || !plain_ready {
                waiting.push(format!(
                    "{}: alert {} locked {}/{} unencrypted ready {}",
                    b.host,
                    alert,
                    status.locked.len(),
                    encrypted,
                    plain_ready
                ));
            }
        }
        waiting
    }

    /// The oracles that hold after every step.
    pub(super) fn check_oracles(&mut self, step: Option<usize>) -> Result<(), Failure> {
        // Keys are known by `cluster/fs`: two clusters may both have a filesystem "data".
        let running = self.running();
        let held: Vec<(u64, BTreeMap<String, Key>)> = self
            .backends
            .iter()
            .filter_map(|b| {
                let (_, node) = running.iter().find(|(id, _)| *id == b.id)?;
                let cluster = &self.clusters[b.cluster];
                let keys = node.with_keys(|keys| {
                    keys.iter()
                        .map(|(fs, dek)| (format!("{cluster}/{fs}"), *dek.expose()))
                        .collect()
                });
                Some((b.id, keys))
            })
            .collect();
        let views: Vec<DiskView<'_>> = self
            .backends
            .iter()
            .map(|b| DiskView {
                node: b.id,
                cluster: &self.clusters[b.cluster],
                disk: &b.disk,
                applied: &b.applied,
            })
            .collect();
        // Per cluster, the backend with the most advanced config table: what the KMS must
        // still decrypt is what that one holds.
        let newest: Vec<Option<u64>> = (0..self.clusters.len())
            .map(|c| self.most_advanced(c).map(|b| b.id))
            .collect();
        // Every backend's config table, read once, by cluster, and where its state machine
        // stands: the log index it applied and the digest of the table there (none before
        // its first apply).
        let mut by_cluster: Vec<Vec<(u64, ConfigState)>> = Vec::new();
        let mut positions: Vec<Vec<(u64, AppliedAt)>> = Vec::new();
        for c in 0..self.books.len() {
            let (tables, at): (Vec<_>, Vec<_>) = self
                .backends
                .iter()
                .filter(|b| b.cluster == c)
                .map(|b| {
                    let applied = b.applied.get();
                    let at = applied
                        .as_ref()
                        .and_then(|a| a.last_applied().map(|l| (l.index, a.digest())));
                    let state = applied.map(|a| a.machine.state.clone()).unwrap_or_default();
                    ((b.id, state), (b.id, at))
                })
                .unzip();
            by_cluster.push(tables);
            positions.push(at);
        }
        self.probe_oracle_inputs(&held, &by_cluster);
        let agree = positions.iter().enumerate().try_fold(0, |n, (c, at)| {
            config_agreement::config_tables_agree(&mut self.applied, c, at).map(|k| n + k)
        });
        if agree.as_ref().is_ok_and(|n| *n > 0) {
            self.coverage.hit("oracle:config-tables-agree");
        }
        let result = agree
            .and_then(|_| oracle::deks_agree(&held, &mut self.known_deks))
            .and_then(|()| {
                self.crypto.check(&views, &self.known_deks)?;
                for ((c, books), tables) in self.books.iter().enumerate().zip(&by_cluster) {
                    oracle::nothing_half_created(tables, &books.failed_creates)?;
                    if let Some((node, table)) =
                        tables.iter().find(|(id, _)| Some(*id) == newest[c])
                    {
                        let data_key = |fs: &str| {
                            self.known_deks
                                .get(&format!("{}/{fs}", self.clusters[c]))
                                .copied()
                        };
                        oracle::wrapped_deks_unwrappable(
                            *node,
                            table,
                            |config, wrapped| kms_unwraps(self.kms.as_ref(), config, wrapped),
                            data_key,
                        )?;
                    }
                }
                // Across clusters too: a DR cluster may wrap under the same key. Only KMIP
                // wrappings carry a client-chosen IV (Vault picks its own nonces).
                if self.scenario.kms.kind == KmsKind::Kmip {
                    oracle::wrap_ivs_unique(by_cluster.iter().flatten(), &self.objects)?;
                }
                self.leaks.update(&self.known_deks);
                self.leaks.no_plaintext_dek_at_rest(&views)?;
                self.leaks.no_dek_in_objects(&self.objects)?;
                oracle::snapshots_downloadable(&self.objects, &self.safe_trims, |key, wrapped| {
                    self.kms.identify_wrapped(key, wrapped)
                })?;
                let trace = trace::lock(&self.trace);
                self.leaks.no_dek_in_trace(trace.lines())
            });
        result.map_err(|Violation { oracle, detail }| {
            self.fail(FailureKind::Correctness, step, oracle, detail)
        })
    }
}

impl World<'_> {
    /// The coverage probes of the oracles (`oracle:` in `coverage`): each fires when the
    /// oracle is about to judge an input on which it could fail, not an empty cluster.
    fn probe_oracle_inputs(
        &self,
        held: &[(u64, BTreeMap<String, Key>)],
        tables: &[Vec<(u64, ConfigState)>],
    ) {
        let hit = |name: &str| self.coverage.hit(name);
        let mut holders: BTreeMap<&str, usize> = BTreeMap::new();
        for (_, keys) in held {
            for fs in keys.keys() {
                *holders.entry(fs).or_default() += 1;
            }
        }
        if holders.values().any(|&n| n >= 2) {
            hit("oracle:deks-agree");
        }
        if self.books.iter().any(|b| !b.failed_creates.is_empty()) {
            hit("oracle:nothing-half-created");
        }
        let filesystems = || {
            tables
                .iter()
                .flatten()
                .flat_map(|(_, table)| table.filesystems.values())
        };
        if filesystems().any(|f| matches!(f.binding, KmsBinding::OwnKey { .. })) {
            hit("oracle:wrapped-dek-is-the-data-key");
        }
        if self.scenario.kms.kind == KmsKind::Kmip
            && filesystems()
                .filter(|f| f.wrapped_dek.is_some())
                .nth(1)
                .is_some()
        {
            hit("oracle:wrap-iv-unique");
        }
        if !self.snapshots.is_empty() {
            hit("oracle:snapshots-downloadable");
            if self.safe_trims.any() {
                hit("oracle:snapshots-downloadable-after-trim");
            }
        }
        let (dek_sealed_twice, two_deks) = self.crypto.reach();
        if dek_sealed_twice {
            hit("oracle:nonce-never-reused");
        }
        if two_deks {
            hit("oracle:one-dek-per-filesystem");
        }
    }
}

/// Whether the KMS still unwraps `wrapped` under `config`, and to what: its own answer
/// where it can be asked out of band (`Some` DEK); otherwise (live) the versions the run's
/// rotations and trims left of `config`'s key (`None`: unwrappable, to a DEK the harness
/// cannot see).
pub(super) fn kms_unwraps(
    kms: &dyn KmsUnderTest,
    config: &KmsConfig,
    wrapped: &WrappedDek,
) -> Result<Option<Vec<u8>>, String> {
    if let Some(answer) = kms.unwraps(config, wrapped) {
        return answer.map(Some);
    }
    let (key, version) = kms.identify_wrapped(config.key_name(), wrapped);
    let versions = kms.versions(&key);
    if version < versions.min_decryption {
        return Err(format!(
            "versions below {} were retired by this run",
            versions.min_decryption
        ));
    }
    Ok(None)
}
