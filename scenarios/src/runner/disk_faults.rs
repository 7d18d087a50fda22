//! Storage faults on the backends' disks, placed by fault atlases: the runner owns the
//! disks, so it is the runner, never the cluster, that damages them, and it chooses the
//! disks so that every block keeps one replica no fault touches, and a quorum of
//! backends keeps a config table no fault touches.
//!
//! The block atlas is per run and per disk: at most `replicas - 1` disks of the main
//! cluster ever get block faults in a run. Per disk rather than per block because a
//! block's replicas follow its placement, which the runner would have to mirror; with
//! fewer faulty disks than replicas, no placement lies wholly on faulty disks, whatever it
//! is. "Ever", because damage outlives the fault: a disk healed mid-run may still hold
//! rotted copies, so a later step may not pick a second disk (it is skipped, and the trace
//! says so). A crashed backend can still leave a block with no readable copy for a while:
//! a read then fails with a typed error, which a step under faults accepts; the liveness
//! phase starts every backend and must read every acknowledged block back.
//!
//! The config atlas does the same for the config table's records, with a budget of
//! `(voters - 1) / 2` disks, voters' or learners' alike (conservative: only a voter's
//! loss counts against the quorum, but a budget of disks needs no placement): a backend that
//! meets a damaged record stops its replica for good, so the faulty ones must stay a
//! minority for a quorum of intact replicas to commit and elect. The liveness phase does
//! not wait for a stopped replica's backend to be ready, only for it to have reported
//! the record it stopped on.

use std::collections::BTreeSet;

use super::derive_seed;
use super::world::{RunnerEvent, World};
use crate::coverage::Counts;
use crate::scenario::Step;
use cluster::disk::faults::{DiskFaultMode, FaultTarget};

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
                target,
            } => {
                let seed = derive_seed(
                    self.opts.seed,
                    &format!("disk fault {}", at.unwrap_or_default()),
                );
                let whom = match target {
                    FaultTarget::Blocks => self.atlas(*backend, seed),
                    FaultTarget::Config => self.config_atlas(*backend, seed),
                    FaultTarget::Both => self.both_atlases(*backend, seed),
                };
                // The block-only wording is the one traces always had.
                let what = match target {
                    FaultTarget::Blocks => format!("disk {}", mode.name()),
                    t => format!("disk {} on {} records", mode.name(), t.name()),
                };
                match whom {
                    Ok(index) => {
                        if target.blocks() {
                            self.faulty_disks.insert(index);
                        }
                        if target.config() {
                            self.config_faulty_disks.insert(index);
                        }
                        let p = probability.unwrap_or(DEFAULT_PROBABILITY);
                        self.backends[index].disk.inject_on(*target, *mode, p, seed);
                        format!("{what} p={p} on {}", self.backends[index].host)
                    }
                    Err(why) => format!("{what} skipped: {why}"),
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

    /// The main-cluster backend (by index) a block fault may go to: the one named, if the
    /// atlas allows it, else why not; unnamed, one drawn from `seed` among those allowed
    /// (any, while fewer than `replicas - 1` disks have had faults; else those that have).
    fn atlas(&self, named: Option<u32>, seed: u64) -> Result<usize, String> {
        let budget = (self.scenario.cluster.replicas as usize).saturating_sub(1);
        let allowed = self.allowed(&self.faulty_disks, budget);
        pick(&allowed, named, seed, BLOCK_LEFT, || self.block_faulty())
    }

    /// The main-cluster backend (by index) a config-record fault may go to, as
    /// [`World::atlas`] picks one, within a budget of `(voters - 1) / 2` disks: a quorum
    /// of config tables no fault ever touched stays.
    fn config_atlas(&self, named: Option<u32>, seed: u64) -> Result<usize, String> {
        let allowed = self.allowed(&self.config_faulty_disks, config_budget(self.voters()));
        pick(&allowed, named, seed, CONFIG_LEFT, || self.config_faulty())
    }

    /// A backend both atlases allow, for a fault on its blocks and its records.
    fn both_atlases(&self, named: Option<u32>, seed: u64) -> Result<usize, String> {
        let budget = (self.scenario.cluster.replicas as usize).saturating_sub(1);
        let blocks = self.allowed(&self.faulty_disks, budget);
        let config = self.allowed(&self.config_faulty_disks, config_budget(self.voters()));
        let both: Vec<usize> = blocks.into_iter().filter(|i| config.contains(i)).collect();
        let left = format!("{BLOCK_LEFT}, or {CONFIG_LEFT}");
        pick(&both, named, seed, &left, || {
            format!("{}; {}", self.block_faulty(), self.config_faulty())
        })
    }

    /// How many of the main cluster's backends vote on its config table.
    fn voters(&self) -> usize {
        self.scenario.cluster.voter_count() as usize
    }

    /// The main-cluster backends a fault may go to, given those that already had one
    /// (`faulty`) and how many may ever have one (`budget`).
    fn allowed(&self, faulty: &BTreeSet<usize>, budget: usize) -> Vec<usize> {
        if faulty.len() < budget {
            (0..self.backends.len())
                .filter(|&i| self.backends[i].cluster == 0)
                .collect()
        } else {
            faulty.iter().copied().collect()
        }
    }

    /// The disks that had block faults, as a skipped step's trace line says it.
    fn block_faulty(&self) -> String {
        let replicas = self.scenario.cluster.replicas;
        match self.hosts(&self.faulty_disks) {
            None => format!("with {replicas} replica, no disk may have faults"),
            Some(hosts) => format!("{hosts} already had faults ({replicas} replicas)"),
        }
    }

    /// The disks that had config-record faults, as a skipped step's trace line says it.
    fn config_faulty(&self) -> String {
        let voters = self.voters();
        match self.hosts(&self.config_faulty_disks) {
            None => format!("with {voters} voters, no config table may have faults"),
            Some(hosts) => format!(
                "{hosts} already had config-record faults ({voters} voters: at most {} may)",
                config_budget(voters)
            ),
        }
    }

    fn hosts(&self, disks: &BTreeSet<usize>) -> Option<String> {
        let hosts: Vec<&str> = disks
            .iter()
            .map(|&i| self.backends[i].host.as_str())
            .collect();
        (!hosts.is_empty()).then(|| hosts.join(", "))
    }

    /// No more storage faults on any disk, for the liveness phase (damage stays: reads
    /// repair it from the good replica the atlas kept).
    pub(super) fn heal_disks(&self) {
        for b in &self.backends {
            b.disk.heal();
        }
    }

    /// Adds to `counts` each disk fault mode that met a block read or write on some
    /// disk, once per run, as `disk-fault:<mode>`; and each that met a config record, as
    /// `config-fault:<mode>`.
    pub(super) fn add_disk_faults_met(&self, counts: &mut Counts) {
        let blocks = self.backends.iter().flat_map(|b| b.disk.faults_met());
        count_once(counts, "disk-fault", blocks);
        let records = self
            .backends
            .iter()
            .flat_map(|b| b.disk.record_faults_met());
        count_once(counts, "config-fault", records);
    }
}

/// Adds one to `<prefix>:<mode>` for each distinct mode in `met`.
fn count_once(counts: &mut Counts, prefix: &str, met: impl Iterator<Item = DiskFaultMode>) {
    for mode in met.collect::<BTreeSet<_>>() {
        *counts
            .entry(format!("{prefix}:{}", mode.name()))
            .or_default() += 1;
    }
}

/// How many backends' config records may ever have faults in a run: a minority,
/// `(voters - 1) / 2`, so a quorum of intact replicas always remains.
pub fn config_budget(voters: usize) -> usize {
    voters.saturating_sub(1) / 2
}

/// What a block fault on one disk too many would leave.
const BLOCK_LEFT: &str = "some block without a fault-free replica";
/// What a config-record fault on one disk too many would leave.
const CONFIG_LEFT: &str = "too few intact config tables for a quorum";

/// Of `allowed` (backend indexes), the one `named` (`backendN`), or one drawn from
/// `seed`; else why not: what it would `leave`, and which disks already had faults.
fn pick(
    allowed: &[usize],
    named: Option<u32>,
    seed: u64,
    leave: &str,
    faulty: impl Fn() -> String,
) -> Result<usize, String> {
    match named {
        // Main-cluster backends come first, in order: backendN is index N - 1.
        Some(n) => {
            let index = (n as usize).wrapping_sub(1);
            if allowed.contains(&index) {
                Ok(index)
            } else {
                Err(format!("backend{n} would leave {leave}: {}", faulty()))
            }
        }
        None if allowed.is_empty() => Err(faulty()),
        None => Ok(allowed[(seed % allowed.len() as u64) as usize]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_config_budget_keeps_a_quorum() {
        for voters in 1..=9usize {
            let quorum = voters / 2 + 1;
            let budget = config_budget(voters);
            assert!(
                voters - budget >= quorum,
                "{voters} voters, budget {budget}"
            );
            // And it is the largest such budget.
            assert!(voters - (budget + 1) < quorum, "{voters} voters");
        }
        assert_eq!(config_budget(3), 1);
        assert_eq!(config_budget(5), 2);
        assert_eq!(config_budget(1), 0);
    }

    #[test]
    fn a_full_atlas_allows_only_the_disks_already_faulty() {
        // Five main backends, two already had faults, a budget of two: only those two.
        let why = || "b1, b3 had".to_string();
        assert_eq!(pick(&[1, 3], Some(2), 0, "x", why), Ok(1));
        assert_eq!(
            pick(&[1, 3], Some(3), 0, "x", why),
            Err("backend3 would leave x: b1, b3 had".into())
        );
        assert_eq!(pick(&[1, 3], None, 5, "x", why), Ok(3));
        assert_eq!(pick(&[], None, 5, "x", why), Err("b1, b3 had".into()));
        assert!(pick(&[0], Some(0), 0, "x", why).is_err());
    }
}
