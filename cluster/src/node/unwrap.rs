//! Startup unwrap: a node unwraps the DEK of every encrypted filesystem in the config
//! table, at boot and whenever a filesystem appears. Until a key unwraps, its
//! filesystem stays locked on this node and the `KMSError` alert stays raised.
//!
//! Retries never stop (the KMS may come back at any time, and WEKA keeps retrying), but
//! each wait is bounded: it doubles from `unwrap_backoff_initial` up to
//! `unwrap_backoff_max`, with seeded jitter so backends do not retry in lockstep.
//!
//! Tenants are isolated: each round asks for every key group's DEKs, and a batch one bad
//! DEK fails is split, so one filesystem's broken key (its own key trimmed or destroyed,
//! its namespace out of reach) never keeps another filesystem locked.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use imbl::ordmap::DiffItem;
use rand::Rng;

use super::{lock, Node, KMS_BATCH};
use crate::config_table::ConfigState;
use crate::dek::Dek;
use crate::events::{Event, KMS_ERROR_ALERT};
use crate::hooks::PlantedBug;
use crate::kms::{unwrap_each, KmsConfig, KmsError, WrappedDek};
use crate::net::BoxFuture;
use crate::probe::Probe;

impl Node {
    pub(super) async fn unwrap_loop(self) {
        let mut state_rx = self.0.state.clone();
        let mut failures: u32 = 0;
        // Every encrypted filesystem whose key this node may lack: all of them at first,
        // then only those the table changed since the last round, and those still locked.
        // (Keys are never dropped, so a filesystem with its key never needs another
        // look until the table changes it.) Without this, each change would cost a scan
        // of the whole table, and creating n filesystems would cost O(n^2).
        let mut maybe_locked: BTreeSet<String> = BTreeSet::new();
        let mut last: Option<Arc<ConfigState>> = None;
        loop {
            let state = state_rx.borrow_and_update().clone();
            match last.replace(state.clone()) {
                None => maybe_locked.extend(state.filesystems.keys().cloned()),
                // imbl's diff skips what the two tables share: O(changes), not O(table).
                Some(before) => {
                    for change in before.filesystems.diff(&state.filesystems) {
                        match change {
                            DiffItem::Add(name, _) | DiffItem::Update { new: (name, _), .. } => {
                                maybe_locked.insert(name.clone());
                            }
                            DiffItem::Remove(name, _) => {
                                maybe_locked.remove(name);
                            }
                        }
                    }
                }
            }
            // Grouped by the KMS configuration that wraps them (the cluster key, or a
            // filesystem's own key), in name order.
            let pending = {
                let keys = lock(&self.0.keys);
                let creating = lock(&self.0.creating);
                maybe_locked.retain(|name| {
                    state.filesystems.get(name).is_some_and(|f| f.encrypted())
                        && !keys.contains_key(name)
                });
                let missing = maybe_locked
                    .iter()
                    .filter(|name| !creating.contains_key(*name))
                    .filter_map(|name| state.filesystems.get(name));
                by_config(missing.filter_map(|f| {
                    Some((state.kms_for(f)?, f.name.clone(), f.wrapped_dek.clone()?))
                }))
            };
            let waiting: usize = pending.iter().map(|(_, g)| g.len()).sum();
            if waiting == 0 {
                failures = 0;
                self.set_alert(KMS_ERROR_ALERT, false);
                // Biased: no draw from the runtime's RNG, so runs where neither fires
                // early replay as before.
                tokio::select! {
                    biased;
                    changed = state_rx.changed() => if changed.is_err() { return },
                    () = self.0.parked_released.notified() => {}
                }
                continue;
            }

            // Every group, every round, at once; each DEK on its own answer, and each
            // group's keys in use as soon as its answer is in.
            let mut error = None;
            let mut still_locked = 0;
            self.unwrap_groups(&pending, |group, results| {
                let mut unlocked = Vec::new();
                for ((fs, w), result) in pending[group].1.iter().zip(results) {
                    match result {
                        Ok(dek) => {
                            self.emit(Event::DekUnwrapped {
                                fs: fs.clone(),
                                key_version: w.key_version,
                            });
                            unlocked.push((fs.clone(), dek));
                        }
                        Err(e) => {
                            still_locked += 1;
                            error.get_or_insert(e);
                        }
                    }
                }
                if !unlocked.is_empty() {
                    self.add_keys(unlocked);
                }
            })
            .await;

            match error {
                None => {
                    failures = 0;
                    self.set_alert(KMS_ERROR_ALERT, false);
                }
                Some(e) => {
                    failures = failures.saturating_add(1);
                    self.set_alert(KMS_ERROR_ALERT, true);
                    let delay = self.backoff(failures);
                    self.emit(Event::UnwrapFailed {
                        attempt: failures,
                        pending: still_locked,
                        error: e.to_string(),
                        retry_in_ms: delay.as_millis() as u64,
                    });
                    if self.planted(PlantedBug::GiveUpUnwrap) {
                        return;
                    }
                    // A config change (a new KMS configuration, say) cuts the wait short.
                    tokio::select! {
                        biased;
                        changed = state_rx.changed() => if changed.is_err() { return },
                        _ = tokio::time::sleep(delay) => {}
                    }
                }
            }
        }
    }

    /// Unwraps every group at once, each with its own configuration's connector, and
    /// hands `done` each group's results (by its index) as soon as they are in. Every
    /// group is asked, whatever another's answer and however long it takes: one key's
    /// failure (its own key trimmed or destroyed, its credentials revoked, its namespace
    /// hanging) must not keep or hold another's filesystems locked. Within a group, a
    /// batch that one bad DEK fails is split so the others unlock (see [`unwrap_each`]).
    pub(super) async fn unwrap_groups(
        &self,
        groups: &[(KmsConfig, Vec<(String, WrappedDek)>)],
        mut done: impl FnMut(usize, GroupResults),
    ) {
        let mut asks: Vec<Option<BoxFuture<'_, GroupResults>>> = groups
            .iter()
            .map(|(config, group)| {
                let connector = self.connector(config);
                let wrapped: Vec<WrappedDek> = group.iter().map(|(_, w)| w.clone()).collect();
                let ask: BoxFuture<'_, _> =
                    Box::pin(
                        async move { unwrap_each(connector.as_ref(), &wrapped, KMS_BATCH).await },
                    );
                Some(ask)
            })
            .collect();
        // Polled in group order at every wake-up, so a seed replays the same run.
        std::future::poll_fn(|cx| {
            for (i, slot) in asks.iter_mut().enumerate() {
                if let Some(ask) = slot {
                    if let Poll::Ready(results) = ask.as_mut().poll(cx) {
                        *slot = None;
                        done(i, results);
                    }
                }
            }
            if asks.iter().all(Option::is_none) {
                Poll::Ready(())
            } else {
                Poll::Pending
            }
        })
        .await;
    }

    fn backoff(&self, failures: u32) -> Duration {
        let t = &self.0.opts.timing;
        let exp = t
            .unwrap_backoff_initial
            .saturating_mul(1u32 << failures.saturating_sub(1).min(16));
        let capped = if self.planted(PlantedBug::BackoffWithoutCeiling) {
            exp
        } else {
            exp.min(t.unwrap_backoff_max)
        };
        if exp >= t.unwrap_backoff_max {
            self.probe(Probe::UnwrapBackoffAtCeiling);
        }
        // Up to a quarter off, so backends spread out.
        let jitter = lock(&self.0.rng).gen_range(0..=capped.as_millis() as u64 / 4);
        capped - Duration::from_millis(jitter)
    }
}

/// One group's answers: each DEK, or why it did not unwrap, in the group's order.
pub(super) type GroupResults = Vec<Result<Dek, KmsError>>;

/// Wrapped DEKs grouped by the KMS configuration that unwraps them, each group in the
/// order its items came, the groups in the order each first appeared.
pub(super) fn by_config(
    items: impl IntoIterator<Item = (KmsConfig, String, WrappedDek)>,
) -> Vec<(KmsConfig, Vec<(String, WrappedDek)>)> {
    let mut groups: Vec<(KmsConfig, Vec<(String, WrappedDek)>)> = Vec::new();
    for (config, fs, wrapped) in items {
        match groups.iter_mut().find(|(c, _)| *c == config) {
            Some((_, group)) => group.push((fs, wrapped)),
            None => groups.push((config, vec![(fs, wrapped)])),
        }
    }
    groups
}
