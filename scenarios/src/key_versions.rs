//! What the runner's own rotations and trims did to each KMS key, by key name. A key
//! version means nothing without its key (version 1 of a filesystem's own key is not
//! version 1 of the cluster key), so every question here takes both.

use std::collections::BTreeMap;

/// The versions of every key the runner rotated or trimmed; a key it never touched has
/// only version 1, all of it decryptable.
#[derive(Debug, Clone, Default)]
pub struct KeyVersions {
    keys: BTreeMap<String, KeyHistory>,
}

#[derive(Debug, Clone, Copy)]
struct KeyHistory {
    latest: u64,
    min_decryption: u64,
    /// The highest `min_decryption_version` set by a trim the cluster's snapshot list
    /// said was safe: no kept snapshot on this key may be wrapped below it.
    safe_trim_min: u64,
}

impl Default for KeyHistory {
    fn default() -> Self {
        KeyHistory {
            latest: 1,
            min_decryption: 1,
            safe_trim_min: 0,
        }
    }
}

impl KeyVersions {
    fn of(&self, key: &str) -> KeyHistory {
        self.keys.get(key).copied().unwrap_or_default()
    }

    /// The newest version of `key`.
    pub fn latest(&self, key: &str) -> u64 {
        self.of(key).latest
    }

    /// `key` rotated: its new newest version.
    pub fn rotate(&mut self, key: &str) -> u64 {
        let history = self.keys.entry(key.to_string()).or_default();
        history.latest += 1;
        history.latest
    }

    /// The KMS no longer decrypts `key` below `version`; `safe` when the cluster's
    /// snapshot list said no snapshot on `key` needed the versions below.
    pub fn trim(&mut self, key: &str, version: u64, safe: bool) {
        let history = self.keys.entry(key.to_string()).or_default();
        history.min_decryption = version;
        if safe {
            history.safe_trim_min = history.safe_trim_min.max(version);
        }
    }

    /// The lowest version of `key` the KMS still decrypts.
    pub fn min_decryption(&self, key: &str) -> u64 {
        self.of(key).min_decryption
    }

    /// Whether the KMS still decrypts `version` of `key`.
    pub fn decrypts(&self, key: &str, version: u64) -> bool {
        version >= self.min_decryption(key)
    }

    /// The versions of `key` below this were retired by a trim called safe.
    pub fn safe_trim_min(&self, key: &str) -> u64 {
        self.of(key).safe_trim_min
    }

    /// Whether a trim the cluster's snapshot list called safe retired `version` of `key`.
    pub fn safely_retired(&self, key: &str, version: u64) -> bool {
        version < self.safe_trim_min(key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_trim_of_one_key_leaves_every_other_key_whole() {
        let mut keys = KeyVersions::default();
        assert_eq!(keys.rotate("weka-key"), 2);
        assert_eq!(keys.rotate("weka-key"), 3);
        keys.trim("weka-key", 3, true);
        assert!(!keys.decrypts("weka-key", 2));
        assert!(keys.safely_retired("weka-key", 2));
        assert!(keys.decrypts("weka-key", 3));
        // Version 1 of another key is untouched by the cluster key's trims.
        assert!(keys.decrypts("fs-key", 1));
        assert!(!keys.safely_retired("fs-key", 1));
        assert_eq!(keys.latest("fs-key"), 1);
    }

    #[test]
    fn only_a_safe_trim_marks_versions_safely_retired() {
        let mut keys = KeyVersions::default();
        keys.rotate("k");
        keys.trim("k", 2, false);
        assert!(!keys.decrypts("k", 1));
        assert!(!keys.safely_retired("k", 1));
        keys.trim("k", 2, true);
        assert!(keys.safely_retired("k", 1));
        // A later unsafe trim lower down does not undo what a safe one retired.
        keys.trim("k", 1, false);
        assert!(keys.decrypts("k", 1));
        assert!(keys.safely_retired("k", 1));
    }
}
