//! Startup unwrap: a node unwraps the DEK of every encrypted filesystem in the config
//! table, at boot and whenever a filesystem appears. Until a key unwraps, its
//! filesystem stays locked on this node and the `KMSError` alert stays raised.
//!
//! Retries never stop (the KMS may come back at any time, and WEKA keeps retrying), but
//! each wait is bounded: it doubles from `unwrap_backoff_initial` up to
//! `unwrap_backoff_max`, with seeded jitter so backends do not retry in lockstep.

use std::time::Duration;

use rand::Rng;

use super::{lock, Node, KMS_BATCH};
use crate::events::{Event, KMS_ERROR_ALERT};
use crate::hooks::PlantedBug;
use crate::kms::{KmsConfig, WrappedDek};
use crate::probe::Probe;

impl Node {
    pub(super) async fn unwrap_loop(self) {
        let mut state_rx = self.0.state.clone();
        let mut failures: u32 = 0;
        loop {
            let state = state_rx.borrow_and_update().clone();
            // Grouped by the KMS configuration that wraps them (the cluster key, or a
            // filesystem's own key).
            let mut pending: Vec<(KmsConfig, Vec<(String, WrappedDek)>)> = Vec::new();
            {
                let keys = lock(&self.0.keys);
                let creating = lock(&self.0.creating);
                let missing = state
                    .members_encrypted()
                    .filter(|f| !keys.contains_key(&f.name) && !creating.contains_key(&f.name));
                for f in missing {
                    let (Some(config), Some(wrapped)) = (state.kms_for(f), f.wrapped_dek.clone())
                    else {
                        continue;
                    };
                    match pending.iter_mut().find(|(c, _)| *c == config) {
                        Some((_, group)) => group.push((f.name.clone(), wrapped)),
                        None => pending.push((config, vec![(f.name.clone(), wrapped)])),
                    }
                }
            }
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

            let mut error = None;
            'groups: for (config, group) in &pending {
                let connector = self.connector(config);
                for chunk in group.chunks(KMS_BATCH) {
                    let wrapped: Vec<WrappedDek> = chunk.iter().map(|(_, w)| w.clone()).collect();
                    match connector.unwrap(&wrapped).await {
                        Ok(deks) => {
                            for ((fs, w), _) in chunk.iter().zip(&deks) {
                                self.emit(Event::DekUnwrapped {
                                    fs: fs.clone(),
                                    key_version: w.key_version,
                                });
                            }
                            self.add_keys(chunk.iter().map(|(fs, _)| fs.clone()).zip(deks));
                        }
                        Err(e) => {
                            error = Some(e);
                            break 'groups;
                        }
                    }
                }
            }

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
                        pending: waiting,
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
