//! Storage faults on the backends' disks, placed by a fault atlas: the runner owns the
//! disks, so it is the runner, never the cluster, that damages them, and it chooses the
//! disks so that every block keeps one replica no fault touches.
//!
//! The atlas is per run and per disk: at most `replicas - 1` disks of the main cluster
//! ever get faults in a run. Per disk rather than per block because a block's replicas
//! follow its placement, which the runner would have to mirror; with fewer faulty disks
//! than replicas, no placement lies wholly on faulty disks, whatever it is. "Ever",
//! because damage outlives the fault: a disk healed mid-run may still hold rotted copies,
//! so a later step may not pick a second disk (it is skipped, and the trace says so).
//! A crashed backend can still leave a block with no readable copy for a while: a read
//! then fails with a typed error, which a step under faults accepts; the liveness phase
//! starts every backend and must read every acknowledged block back.

use std::collections::BTreeSet;

use super::derive_seed;
use super::world::{RunnerEvent, World};
use crate::coverage::Counts;
use crate::scenario::Step;

/// How often a disk fault meets a block read or write when the step does not say.
pub const DEFAULT_PROBABILITY: f64 = 0.25;

impl World<'_> {
    /// A `disk-fault` or `disk-heal` step on the main cluster's backends.
    pub(super) fn disk_fault(&mut self, at: Option<usize>, step: &Step) {
        let what = match step {
            Step::DiskFault {
                backend,
                mode,
                probability,
            } => {
                let seed = derive_seed(
                    self.opts.seed,
                    &format!("disk fault {}", at.unwrap_or_default()),
                );
                match self.atlas(*backend, seed) {
                    Ok(index) => {
                        self.faulty_disks.insert(index);
                        let p = probability.unwrap_or(DEFAULT_PROBABILITY);
                        self.backends[index].disk.inject(*mode, p, seed);
                        format!(
                            "disk {} p={p} on {}",
                            mode.name(),
                            self.backends[index].host
                        )
                    }
                    Err(why) => format!("disk {} skipped: {why}", mode.name()),
                }
            }
            Step::DiskHeal { backend } => {
                for b in self.backends.iter().filter(|b| b.cluster == 0) {
                    if backend.is_none_or(|n| b.host == format!("backend{n}")) {
                        b.disk.heal();
                    }
                }
                match backend {
                    Some(n) => format!("disk faults healed on backend{n}"),
                    None => "disk faults healed".into(),
                }
            }
            _ => unreachable!("disk_fault() is only called with disk steps"),
        };
        self.record(&RunnerEvent::Fault { what });
    }

    /// The main-cluster backend (by index) a disk fault may go to: the one named, if the
    /// atlas allows it, else why not; unnamed, one drawn from `seed` among those allowed
    /// (any, while fewer than `replicas - 1` disks have had faults; else those that have).
    fn atlas(&self, named: Option<u32>, seed: u64) -> Result<usize, String> {
        let replicas = self.scenario.cluster.replicas;
        let budget = (replicas as usize).saturating_sub(1);
        let main: Vec<usize> = (0..self.backends.len())
            .filter(|&i| self.backends[i].cluster == 0)
            .collect();
        let allowed: Vec<usize> = if self.faulty_disks.len() < budget {
            main
        } else {
            self.faulty_disks.iter().copied().collect()
        };
        let faulty = || {
            let hosts: Vec<&str> = self
                .faulty_disks
                .iter()
                .map(|&i| self.backends[i].host.as_str())
                .collect();
            if hosts.is_empty() {
                format!("with {replicas} replica, no disk may have faults")
            } else {
                format!(
                    "{} already had faults ({replicas} replicas)",
                    hosts.join(", ")
                )
            }
        };
        match named {
            Some(n) => {
                let host = format!("backend{n}");
                allowed
                    .into_iter()
                    .find(|&i| self.backends[i].host == host)
                    .ok_or_else(|| {
                        format!(
                            "{host} would leave some block without a fault-free replica: {}",
                            faulty()
                        )
                    })
            }
            None if allowed.is_empty() => Err(faulty()),
            None => Ok(allowed[(seed % allowed.len() as u64) as usize]),
        }
    }

    /// No more storage faults on any disk, for the liveness phase (damage stays: reads
    /// repair it from the good replica the atlas kept).
    pub(super) fn heal_disks(&self) {
        for b in &self.backends {
            b.disk.heal();
        }
    }

    /// Adds to `counts` each disk fault mode that met a block read or write on some
    /// disk: once per run, as `disk-fault:<mode>`.
    pub(super) fn add_disk_faults_met(&self, counts: &mut Counts) {
        let met: BTreeSet<_> = self
            .backends
            .iter()
            .flat_map(|b| b.disk.faults_met())
            .collect();
        for mode in met {
            *counts
                .entry(format!("disk-fault:{}", mode.name()))
                .or_default() += 1;
        }
    }
}
