//! Oracles: properties that must hold after every step. A violation names the oracle.

use std::collections::{BTreeMap, BTreeSet};

use aho_corasick::AhoCorasick;
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use cluster::config_table::{AppliedTable, ConfigState};
use cluster::dek::DEK_LEN;
use cluster::disk::{Disk, StoredAt};
use cluster::filesystem::Manifest;
use cluster::kms::{KmsConfig, WrappedDek, Wrapping};
use kms_sim::object_store::ObjectStore;

use crate::safe_trims::SafeTrims;

/// How the name of every snapshot's manifest ends in the object store.
const MANIFEST_SUFFIX: &str = "/manifest.json";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    pub oracle: &'static str,
    pub detail: String,
}

pub type Key = [u8; DEK_LEN];

/// A backend's disk as the checks read it.
pub struct DiskView<'a> {
    pub node: u64,
    /// Its cluster's name: DEKs are known by `cluster/fs`.
    pub cluster: &'a str,
    pub disk: &'a Disk,
    /// What its replica applied of the config table.
    pub applied: &'a AppliedTable,
}

/// Finds DEKs where they must never be: in every form one could leak in (its raw bytes,
/// and base64 or hex text, since the config table and the trace are JSON), with one
/// automaton for all keys. It is rebuilt only when a new key becomes known, and it
/// remembers how much of the trace it has already cleared.
#[derive(Default)]
pub struct LeakScanner {
    names: Vec<String>,
    automaton: Option<AhoCorasick>,
    trace_cleared: usize,
    /// The pieces of each backend's disk found clean since the automaton was built,
    /// with the checksum they had: a piece seen again unchanged is not searched again,
    /// so a step costs what changed on disk, not all that is there.
    disk_cleared: BTreeMap<(u64, StoredAt), [u8; 16]>,
}

const FORMS: [&str; 3] = ["raw bytes", "base64 text", "hex text"];

impl LeakScanner {
    /// Brings the scanner up to `keys` (keys are only ever added during a run).
    pub fn update(&mut self, keys: &BTreeMap<String, Key>) {
        if keys.len() == self.names.len() {
            return;
        }
        let mut patterns: Vec<Vec<u8>> = Vec::new();
        for key in keys.values() {
            patterns.push(key.to_vec());
            patterns.push(B64.encode(key).into_bytes());
            patterns.push(hex(key).into_bytes());
        }
        self.names = keys.keys().cloned().collect();
        self.automaton = AhoCorasick::new(&patterns).ok();
        // New keys: the whole trace and every disk must be searched again.
        self.trace_cleared = 0;
        self.disk_cleared.clear();
    }

    /// The filesystem whose key is in `hay`, and in which form.
    fn find(&self, hay: &[u8]) -> Option<(&str, &'static str)> {
        let m = self.automaton.as_ref()?.find(hay)?;
        let i = m.pattern().as_usize();
        Some((self.names[i / 3].as_str(), FORMS[i % 3]))
    }

    /// No plaintext DEK anywhere at rest: not in the config table (Raft log, state
    /// machine, snapshots) nor in any data block, on any backend's disk.
    pub fn no_plaintext_dek_at_rest(&mut self, disks: &[DiskView<'_>]) -> Result<(), Violation> {
        if self.automaton.is_none() {
            return Ok(());
        }
        for DiskView { node, disk, .. } in disks {
            let mut found = None;
            let mut cleared = std::mem::take(&mut self.disk_cleared);
            disk.for_each_stored(|at, checksum, parts| {
                if found.is_some() || cleared.get(&(*node, at)) == Some(checksum) {
                    return;
                }
                found = parts
                    .iter()
                    .find_map(|bytes| self.find(bytes))
                    .map(|(fs, form)| (fs.to_string(), form));
                if found.is_none() {
                    cleared.insert((*node, at), *checksum);
                }
            });
            self.disk_cleared = cleared;
            if let Some((fs, form)) = found {
                return Err(Violation {
                    oracle: "no-plaintext-dek-at-rest",
                    detail: format!("backend{node}'s disk holds the DEK of {fs} as {form}"),
                });
            }
        }
        Ok(())
    }

    /// No DEK in any object the object store holds (snapshot blocks and manifests).
    pub fn no_dek_in_objects(&self, objects: &ObjectStore) -> Result<(), Violation> {
        if self.automaton.is_none() {
            return Ok(());
        }
        let mut found = None;
        objects.for_each_object(|bucket, key, bytes| {
            if found.is_none() {
                found = self.find(bytes).map(|(fs, form)| {
                    format!("object {bucket}/{key} holds the DEK of {fs} as {form}")
                });
            }
        });
        match found {
            Some(detail) => Err(Violation {
                oracle: "no-plaintext-dek-at-rest",
                detail,
            }),
            None => Ok(()),
        }
    }

    /// No DEK in the trace, in any form. Searches only lines not yet cleared.
    pub fn no_dek_in_trace(&mut self, lines: &[String]) -> Result<(), Violation> {
        if self.automaton.is_some() {
            for (n, line) in lines.iter().enumerate().skip(self.trace_cleared) {
                if let Some((fs, form)) = self.find(line.as_bytes()) {
                    return Err(Violation {
                        oracle: "no-dek-in-trace",
                        detail: format!("trace line {} holds the DEK of {fs} as {form}", n + 1),
                    });
                }
            }
        }
        self.trace_cleared = lines.len();
        Ok(())
    }
}

/// Every backend that holds a filesystem's DEK holds the same one, and it never
/// changes during a run (re-wrapping changes the wrapping, never the key).
pub fn deks_agree(
    held: &[(u64, BTreeMap<String, Key>)],
    known: &mut BTreeMap<String, Key>,
) -> Result<(), Violation> {
    for (node, keys) in held {
        for (fs, key) in keys {
            match known.get(fs) {
                Some(k) if k != key => {
                    return Err(Violation {
                        oracle: "same-dek-on-every-node",
                        detail: format!(
                            "backend{node} holds a different DEK for {fs} than another backend held"
                        ),
                    })
                }
                Some(_) => {}
                None => {
                    known.insert(fs.clone(), *key);
                }
            }
        }
    }
    Ok(())
}

/// Every wrapped DEK a config table holds is one the KMS still unwraps under the
/// configuration the table binds its filesystem to (the committed KMS configuration with
/// the filesystem's key: its kind, key, and a Vault's mount and namespace), as `unwraps`
/// judges (the KMS's own answer, where the harness can ask it): no key or version was
/// retired, no binding moved, and no configuration committed, under a live DEK.
/// Where the KMS's answer shows the DEK and the filesystem's data key is known
/// (`data_key`), the two are the same (`wrapped-dek-is-the-data-key`): a table that wraps
/// any other key loses the filesystem's data at the next unwrap.
pub fn wrapped_deks_unwrappable(
    node: u64,
    table: &ConfigState,
    unwraps: impl Fn(&KmsConfig, &WrappedDek) -> Result<Option<Vec<u8>>, String>,
    data_key: impl Fn(&str) -> Option<Key>,
) -> Result<(), Violation> {
    for fs in table.members_encrypted() {
        let Some(wrapped) = &fs.wrapped_dek else {
            continue;
        };
        let violation = |detail: String| Violation {
            oracle: "wrapped-deks-unwrappable",
            detail,
        };
        let Some(config) = table.kms_for(fs) else {
            return Err(violation(format!(
                "backend{node}'s config table has {} encrypted with no KMS key to unwrap \
                 its DEK",
                fs.name
            )));
        };
        let key = config.key_name();
        let dek = match unwraps(&config, wrapped) {
            Ok(dek) => dek,
            Err(why) => {
                return Err(violation(format!(
                    "backend{node}'s config table has {} wrapped by {key} version {}, which \
                     the KMS no longer unwraps: {why}",
                    fs.name, wrapped.key_version
                )))
            }
        };
        if let (Some(dek), Some(data)) = (dek, data_key(&fs.name)) {
            if dek.as_slice() != data.as_slice() {
                return Err(Violation {
                    oracle: "wrapped-dek-is-the-data-key",
                    detail: format!(
                        "backend{node}'s config table has {} wrapped by {key} version {}, \
                         which unwraps to another DEK than the one its data is encrypted with",
                        fs.name, wrapped.key_version
                    ),
                });
            }
        }
    }
    Ok(())
}

/// Every snapshot kept in the object store is wrapped by a version of its own key (the
/// one its manifest names) that no "safe" trim of that key retired: a trim the cluster's
/// own snapshot list said no snapshot needed.
///
/// `identify` names the key and version that wrapped a DEK as the run's trims name them
/// (see [`crate::kms::KmsUnderTest::identify_wrapped`]).
pub fn snapshots_downloadable(
    objects: &ObjectStore,
    trims: &SafeTrims,
    identify: impl Fn(&str, &WrappedDek) -> (String, u64),
) -> Result<(), Violation> {
    let mut stranded = None;
    objects.for_each_object(|bucket, object, bytes| {
        if stranded.is_some() || !object.ends_with(MANIFEST_SUFFIX) {
            return;
        }
        let Ok(manifest) = serde_json::from_slice::<Manifest>(bytes) else {
            stranded = Some(format!("{bucket}/{object} is not a readable manifest"));
            return;
        };
        let Some(wrapped) = manifest.wrapped_dek else {
            return;
        };
        stranded = match manifest.kms_key {
            None => Some(format!(
                "snapshot {bucket}/{object} is wrapped by version {} of a key it does not name",
                wrapped.key_version
            )),
            Some(key) => match identify(&key, &wrapped) {
                (key, version) if trims.retired(&key, version) => Some(format!(
                    "snapshot {bucket}/{object} is wrapped by {key} version {version}, which a \
                 trim the cluster's snapshot list called safe retired ({key} versions below {})",
                    trims.below(&key)
                )),
                _ => None,
            },
        };
    });
    match stranded {
        Some(detail) => Err(Violation {
            oracle: "snapshots-downloadable",
            detail,
        }),
        None => Ok(()),
    }
}

/// Every KMIP-wrapped DEK the cluster keeps, in any backend's config table or any
/// snapshot manifest, used an IV of its own under its key: AES-GCM under one key with a
/// repeated IV gives away the XOR of the two DEKs and lets an attacker forge tags. The
/// same wrapping seen twice (replicas, a snapshot of it) is one use, not two.
pub fn wrap_ivs_unique<'a>(
    tables: impl IntoIterator<Item = &'a (u64, ConfigState)>,
    objects: &ObjectStore,
) -> Result<(), Violation> {
    // (key UID, IV) -> (the wrapping, where it was seen)
    let mut seen: BTreeMap<(String, Vec<u8>), (String, String)> = BTreeMap::new();
    let mut check = |wrapped: &WrappedDek, place: String| -> Result<(), Violation> {
        let Ok(Wrapping { uid, iv, .. }) = cluster::kms::parse_wrapping(&wrapped.ciphertext) else {
            return Ok(());
        };
        match seen.get(&(uid.clone(), iv.clone())) {
            Some((other, there)) if *other != wrapped.ciphertext => Err(Violation {
                oracle: "wrap-iv-unique",
                detail: format!(
                    "two different DEKs were wrapped under KMIP key {uid} with the same IV: \
                     {there} and {place}"
                ),
            }),
            Some(_) => Ok(()),
            None => {
                seen.insert((uid, iv), (wrapped.ciphertext.clone(), place));
                Ok(())
            }
        }
    };
    for (node, table) in tables {
        for fs in table.members_encrypted() {
            if let Some(wrapped) = &fs.wrapped_dek {
                check(wrapped, format!("{} on backend{node}", fs.name))?;
            }
        }
    }
    let mut result = Ok(());
    objects.for_each_object(|bucket, object, bytes| {
        if result.is_err() || !object.ends_with(MANIFEST_SUFFIX) {
            return;
        }
        if let Ok(Manifest {
            wrapped_dek: Some(wrapped),
            ..
        }) = serde_json::from_slice::<Manifest>(bytes)
        {
            result = check(&wrapped, format!("snapshot {bucket}/{object}"));
        }
    });
    result
}

/// An acknowledged `fs snapshot upload` wrote a manifest that lists, and an object for,
/// every block acknowledged for the filesystem before it: a snapshot that claims to be
/// complete holds every acknowledged write.
pub fn snapshot_holds_acknowledged_writes(
    objects: &ObjectStore,
    bucket: &str,
    locator: &str,
    acked: impl IntoIterator<Item = u64>,
) -> Result<(), Violation> {
    let violation = |detail: String| Violation {
        oracle: "snapshot-holds-acknowledged-writes",
        detail,
    };
    let manifest = objects
        .get(bucket, &format!("{locator}{MANIFEST_SUFFIX}"))
        .and_then(|bytes| serde_json::from_slice::<Manifest>(&bytes).ok())
        .ok_or_else(|| {
            violation(format!(
                "the upload of snapshot {bucket}/{locator} was acknowledged, but it has no \
                 readable manifest"
            ))
        })?;
    let listed: BTreeSet<u64> = manifest.blocks.iter().copied().collect();
    for block in acked {
        let stored = objects
            .get(bucket, &format!("{locator}/blocks/{block}"))
            .is_some();
        if !listed.contains(&block) || !stored {
            return Err(violation(format!(
                "the upload of snapshot {bucket}/{locator} was acknowledged without block \
                 {block} of {}, whose write was acknowledged before it",
                manifest.fs
            )));
        }
    }
    Ok(())
}

/// A filesystem whose creation failed because of the KMS left nothing behind.
pub fn nothing_half_created(
    tables: &[(u64, ConfigState)],
    failed: &BTreeSet<String>,
) -> Result<(), Violation> {
    for (node, table) in tables {
        if let Some(fs) = failed.iter().find(|f| table.filesystems.contains_key(*f)) {
            return Err(Violation {
                oracle: "nothing-half-created",
                detail: format!(
                    "fs create {fs} failed with a KMS error, yet backend{node}'s config table holds it"
                ),
            });
        }
    }
    Ok(())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use cluster::disk::StoredBlock;

    fn view<'a>(disk: &'a Disk, applied: &'a AppliedTable) -> DiskView<'a> {
        DiskView {
            node: 1,
            cluster: "main",
            disk,
            applied,
        }
    }
    use cluster::filesystem::{FsRecord, KmsBinding};

    /// Vault's naming: the cluster's key name and version are the run's.
    fn same_names(key: &str, wrapped: &WrappedDek) -> (String, u64) {
        (key.to_string(), wrapped.key_version)
    }

    fn key(b: u8) -> Key {
        let mut k = [b; 32];
        k[0] = 0xEE;
        k
    }

    #[test]
    fn finds_a_raw_key_in_a_block() {
        let disk = Disk::default();
        let mut data = vec![0u8; 100];
        data[40..72].copy_from_slice(&key(7));
        disk.lock()
            .blocks
            .insert((1, 0), StoredBlock::new(1, 0, [0; 12], data));
        let mut scanner = LeakScanner::default();
        scanner.update(&BTreeMap::from([("fs".to_string(), key(7))]));
        let v = scanner
            .no_plaintext_dek_at_rest(&[view(&disk, &AppliedTable::default())])
            .unwrap_err();
        assert_eq!(v.oracle, "no-plaintext-dek-at-rest");
        let mut other = LeakScanner::default();
        other.update(&BTreeMap::from([("fs".to_string(), key(8))]));
        assert!(other
            .no_plaintext_dek_at_rest(&[view(&disk, &AppliedTable::default())])
            .is_ok());
    }

    #[test]
    fn finds_an_encoded_key_in_the_trace() {
        let mut scanner = LeakScanner::default();
        scanner.update(&BTreeMap::from([("fs".to_string(), key(9))]));
        assert!(scanner.no_dek_in_trace(&["{}".into()]).is_ok());
        // A key that shows up later in the trace, and a key learned after its line
        // was first cleared, are both found.
        let line = format!("{{\"x\":\"{}\"}}", B64.encode(key(9)));
        assert!(scanner
            .no_dek_in_trace(&["{}".into(), line.clone()])
            .is_err());
        let mut late = LeakScanner::default();
        late.update(&BTreeMap::from([("a".to_string(), key(1))]));
        late.no_dek_in_trace(std::slice::from_ref(&line)).unwrap();
        late.update(&BTreeMap::from([
            ("a".to_string(), key(1)),
            ("b".to_string(), key(9)),
        ]));
        assert!(late.no_dek_in_trace(&[line]).is_err());
    }

    fn wrapped(version: u64) -> cluster::kms::WrappedDek {
        cluster::kms::WrappedDek {
            ciphertext: format!("vault:v{version}:AAAA"),
            key_version: version,
        }
    }

    fn manifest(fs: &str, kms_key: &str, version: u64, blocks: Vec<u64>) -> Vec<u8> {
        let binding = if kms_key == "weka-key" {
            KmsBinding::ClusterKey
        } else {
            KmsBinding::OwnKey {
                key: kms_key.to_string(),
            }
        };
        serde_json::to_vec(&Manifest {
            fs: fs.to_string(),
            snapshot: "s1".into(),
            data_id: 1,
            capacity_gib: 10,
            wrapped_dek: Some(wrapped(version)),
            binding,
            kms_key: Some(kms_key.to_string()),
            blocks,
        })
        .unwrap()
    }

    /// The cluster key rotated to v3 and trimmed below v2 by a trim called safe.
    fn cluster_key_trimmed() -> SafeTrims {
        let mut trims = SafeTrims::default();
        trims.record("weka-key", 2);
        trims
    }

    #[test]
    fn a_snapshot_is_judged_by_the_trims_of_its_own_key() {
        let trims = cluster_key_trimmed();
        let objects = ObjectStore::default();
        // Version 1 of a filesystem's own key: the cluster key's trim says nothing of it.
        objects.put(
            "b",
            "fs1/s1/manifest.json",
            manifest("fs1", "fs-key", 1, vec![]),
        );
        snapshots_downloadable(&objects, &trims, same_names).unwrap();
        // Version 1 of the cluster key itself was retired under it.
        objects.put(
            "b",
            "fs2/s1/manifest.json",
            manifest("fs2", "weka-key", 1, vec![]),
        );
        let v = snapshots_downloadable(&objects, &trims, same_names).unwrap_err();
        assert_eq!(v.oracle, "snapshots-downloadable");
        assert!(v.detail.contains("fs2/s1") && v.detail.contains("weka-key version 1"));
    }

    /// A config table whose cluster key is the Vault key `weka-key`, with no filesystems.
    fn table_on_vault() -> ConfigState {
        let vault = cluster::kms::VaultConfig {
            url: "http://vault:8200".into(),
            key_name: "weka-key".into(),
            transit_path: "transit".into(),
            auth_path: "approle".into(),
            namespace: None,
            auth: cluster::kms::VaultAuth::Token {
                token: cluster::secret::Secret::new("t"),
            },
        };
        ConfigState {
            kms: Some(cluster::kms::KmsConfig::Vault(vault)),
            ..ConfigState::default()
        }
    }

    #[test]
    fn a_wrapped_dek_is_judged_by_the_trims_of_its_own_key() {
        // The KMS retired versions of weka-key below 2, and nothing of fs-key.
        let unwraps = |config: &KmsConfig, wrapped: &WrappedDek| match config.key_name() {
            "weka-key" if wrapped.key_version < 2 => Err("too old".to_string()),
            _ => Ok(None),
        };
        let mut table = table_on_vault();
        let fs = |name: &str, version: u64, binding: KmsBinding| FsRecord {
            name: name.into(),
            id: 1,
            data_id: 1,
            capacity_gib: 10,
            wrapped_dek: Some(wrapped(version)),
            binding,
        };
        let own = KmsBinding::OwnKey {
            key: "fs-key".into(),
        };
        table
            .filesystems
            .insert("own".into(), fs("own", 1, own.clone()));
        table
            .filesystems
            .insert("main".into(), fs("main", 2, KmsBinding::ClusterKey));
        let unknown = |_: &str| None;
        wrapped_deks_unwrappable(1, &table, unwraps, unknown).unwrap();
        table
            .filesystems
            .insert("old".into(), fs("old", 1, KmsBinding::ClusterKey));
        let v = wrapped_deks_unwrappable(1, &table, unwraps, unknown).unwrap_err();
        assert_eq!(v.oracle, "wrapped-deks-unwrappable");
        assert!(
            v.detail.contains("old wrapped by weka-key version 1"),
            "{}",
            v.detail
        );
        assert!(v.detail.ends_with("too old"), "{}", v.detail);
    }

    /// [`table_on_vault`] with `data` on the cluster key, wrapped by version 1.
    fn table_with_data() -> ConfigState {
        let mut table = table_on_vault();
        table.filesystems.insert(
            "data".into(),
            FsRecord {
                name: "data".into(),
                id: 1,
                data_id: 1,
                capacity_gib: 10,
                wrapped_dek: Some(wrapped(1)),
                binding: KmsBinding::ClusterKey,
            },
        );
        table
    }

    /// A DEK is judged under the configuration the table commits, not a key name alone:
    /// the same key in another mount is another key.
    #[test]
    fn a_wrapped_dek_is_judged_under_the_committed_configuration() {
        let unwraps = |config: &KmsConfig, _: &WrappedDek| match config {
            KmsConfig::Vault(v) if v.transit_path == "transit" => Ok(None),
            other => Err(format!(
                "nothing to decrypt with under {}",
                other.describe()
            )),
        };
        let mut table = table_with_data();
        wrapped_deks_unwrappable(1, &table, unwraps, |_| None).unwrap();
        if let Some(KmsConfig::Vault(v)) = &mut table.kms {
            v.transit_path = "elsewhere".into();
        }
        let v = wrapped_deks_unwrappable(1, &table, unwraps, |_| None).unwrap_err();
        assert_eq!(v.oracle, "wrapped-deks-unwrappable");
        assert!(
            v.detail.contains("data wrapped by weka-key"),
            "{}",
            v.detail
        );
    }

    #[test]
    fn a_snapshot_without_an_acknowledged_block_is_caught() {
        let objects = ObjectStore::default();
        objects.put(
            "b",
            "fs1/s1/manifest.json",
            manifest("fs1", "k", 1, vec![1]),
        );
        objects.put("b", "fs1/s1/blocks/1", vec![0; 20]);
        snapshot_holds_acknowledged_writes(&objects, "b", "fs1/s1", [1]).unwrap();
        let v = snapshot_holds_acknowledged_writes(&objects, "b", "fs1/s1", [0, 1]).unwrap_err();
        assert_eq!(v.oracle, "snapshot-holds-acknowledged-writes");
        assert!(v.detail.contains("block 0 of fs1"));
        // Listed in the manifest but never stored is as incomplete.
        objects.put(
            "b",
            "fs1/s2/manifest.json",
            manifest("fs1", "k", 1, vec![0]),
        );
        assert!(snapshot_holds_acknowledged_writes(&objects, "b", "fs1/s2", [0]).is_err());
        assert!(snapshot_holds_acknowledged_writes(&objects, "b", "fs1/s3", []).is_err());
    }

    /// A wrapped DEK that unwraps, but to another key than the filesystem's data was
    /// written with, is caught; the same DEK, or one the harness cannot see, is not.
    #[test]
    fn a_wrapped_dek_must_be_the_data_key() {
        let table = table_with_data();
        let to = |b: u8| move |_: &KmsConfig, _: &WrappedDek| Ok(Some(key(b).to_vec()));
        let data_key = |fs: &str| (fs == "data").then_some(key(7));
        wrapped_deks_unwrappable(1, &table, to(7), data_key).unwrap();
        wrapped_deks_unwrappable(1, &table, |_, _| Ok(None), data_key).unwrap();
        wrapped_deks_unwrappable(1, &table, to(8), |_| None).unwrap();
        let v = wrapped_deks_unwrappable(1, &table, to(8), data_key).unwrap_err();
        assert_eq!(v.oracle, "wrapped-dek-is-the-data-key");
        assert!(
            v.detail.contains("data wrapped by weka-key version 1"),
            "{}",
            v.detail
        );
    }

    #[test]
    fn a_changed_dek_is_caught() {
        let mut known = BTreeMap::new();
        let a = vec![(1, BTreeMap::from([("fs".to_string(), key(1))]))];
        deks_agree(&a, &mut known).unwrap();
        let b = vec![(2, BTreeMap::from([("fs".to_string(), key(2))]))];
        assert!(deks_agree(&b, &mut known).is_err());
    }
}
