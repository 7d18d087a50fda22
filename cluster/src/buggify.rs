//! Fault sites inside the cluster's own code (FoundationDB's BUGGIFY): places where a
//! correct cluster must tolerate what the world sometimes does to it, made to happen on
//! purpose in a seeded run. The harness decides which sites are active in a run (each in
//! about a quarter of the runs that ask for sites at all); an active site fires in about a
//! quarter of its visits, drawn from one seeded RNG, so a seed still fixes the run.
//! Outside the harness there are no sites: [`Buggify::default`] never fires.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha20Rng;
use serde::{Deserialize, Serialize};

/// A place in the cluster's code where trouble is made on purpose.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Site {
    /// A KMS request waits before it is sent (a slow path in the client, a GC pause).
    KmsDelay,
    /// A KMS request fails without reaching the KMS (a connection reset, a DNS hiccup):
    /// the command or the unwrap loop must treat it as the transient error it is.
    KmsSpuriousError,
    /// A committed config-table change is proposed once more, as a client whose answer
    /// was lost retries, and the retry's answer is the one the command sees: every change
    /// must then apply exactly once and answer the same.
    DuplicatedProposal,
}

impl Site {
    pub const ALL: [Site; 3] = [
        Site::KmsDelay,
        Site::KmsSpuriousError,
        Site::DuplicatedProposal,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Site::KmsDelay => "kms-delay",
            Site::KmsSpuriousError => "kms-spurious-error",
            Site::DuplicatedProposal => "duplicated-proposal",
        }
    }
}

/// The longest delay [`Site::KmsDelay`] adds: below the KMS request timeout, so a delay
/// alone never fails a request.
pub const KMS_DELAY_MAX: Duration = Duration::from_millis(1500);

/// The run's active sites and the RNG that decides each visit. Shared by every node of a
/// run: turmoil runs them on one thread in a fixed order, so the draws are seeded too.
#[derive(Clone, Default)]
pub struct Buggify(Option<Arc<Mutex<State>>>);

struct State {
    active: BTreeSet<Site>,
    rng: ChaCha20Rng,
}

impl Buggify {
    /// Sites `active` in this run, their visits decided by an RNG seeded with `seed`.
    pub fn new(active: BTreeSet<Site>, seed: u64) -> Self {
        Buggify(Some(Arc::new(Mutex::new(State {
            active,
            rng: ChaCha20Rng::seed_from_u64(seed),
        }))))
    }

    /// Whether `site` fires at this visit: active in this run, and one visit in four.
    pub fn fires(&self, site: Site) -> bool {
        let Some(state) = &self.0 else {
            return false;
        };
        let mut state = state.lock().unwrap_or_else(|e| e.into_inner());
        state.active.contains(&site) && state.rng.gen_ratio(1, 4)
    }

    /// A delay for a site that fired: up to `max`, from the same RNG.
    pub fn delay(&self, max: Duration) -> Duration {
        let Some(state) = &self.0 else {
            return Duration::ZERO;
        };
        let mut state = state.lock().unwrap_or_else(|e| e.into_inner());
        Duration::from_millis(state.rng.gen_range(0..=max.as_millis() as u64))
    }
}

impl std::fmt::Debug for Buggify {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.0 {
            None => f.write_str("Buggify(off)"),
            Some(state) => {
                let state = state.lock().unwrap_or_else(|e| e.into_inner());
                let names: Vec<&str> = state.active.iter().map(|s| s.name()).collect();
                write!(f, "Buggify({})", names.join(", "))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_inactive_site_never_fires_and_an_active_one_sometimes() {
        assert!(!Buggify::default().fires(Site::KmsDelay));
        let b = Buggify::new(BTreeSet::from([Site::KmsDelay]), 7);
        let fired = (0..400).filter(|_| b.fires(Site::KmsDelay)).count();
        assert!((60..140).contains(&fired), "{fired} of 400");
        assert!((0..400).all(|_| !b.fires(Site::KmsSpuriousError)));
        // The same seed, the same visits.
        let again = Buggify::new(BTreeSet::from([Site::KmsDelay]), 7);
        let a: Vec<bool> = (0..50).map(|_| again.fires(Site::KmsDelay)).collect();
        let c = Buggify::new(BTreeSet::from([Site::KmsDelay]), 7);
        let d: Vec<bool> = (0..50).map(|_| c.fires(Site::KmsDelay)).collect();
        assert_eq!(a, d);
    }
}
