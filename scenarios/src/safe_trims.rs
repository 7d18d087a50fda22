//! The trims the cluster's own snapshot list called safe, by key: what an admin who trusts
//! `weka fs snapshot` retired. A key version means nothing without its key (version 1 of a
//! filesystem's own key is not version 1 of the cluster key), so every question here takes
//! both. What the KMS itself still decrypts is the KMS's to say (`KmsUnderTest`); this is
//! what the runner learnt from the cluster.

use std::collections::BTreeMap;

#[derive(Debug, Clone, Default)]
pub struct SafeTrims {
    /// Per key, the highest `min_decryption_version` a safe trim set.
    below: BTreeMap<String, u64>,
}

impl SafeTrims {
    /// A trim of `key` below `version` that the cluster's snapshot list said no snapshot
    /// needed.
    pub fn record(&mut self, key: &str, version: u64) {
        let below = self.below.entry(key.to_string()).or_default();
        *below = (*below).max(version);
    }

    /// The versions of `key` below this were retired by a trim called safe.
    pub fn below(&self, key: &str) -> u64 {
        self.below.get(key).copied().unwrap_or(0)
    }

    /// Whether any trim was called safe.
    pub fn any(&self) -> bool {
        !self.below.is_empty()
    }

    /// Whether a trim called safe retired `version` of `key`.
    pub fn retired(&self, key: &str, version: u64) -> bool {
        version < self.below(key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_trim_of_one_key_leaves_every_other_key_whole() {
        let mut trims = SafeTrims::default();
        trims.record("weka-key", 3);
        assert!(trims.retired("weka-key", 2));
        assert!(!trims.retired("weka-key", 3));
        assert!(!trims.retired("fs-key", 1));
    }

    #[test]
    fn a_lower_trim_does_not_undo_a_higher_one() {
        let mut trims = SafeTrims::default();
        trims.record("k", 2);
        trims.record("k", 1);
        assert!(trims.retired("k", 1));
    }
}
