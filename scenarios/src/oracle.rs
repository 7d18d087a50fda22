//! Oracles: properties that must hold after every step. A violation names the oracle.

use std::collections::BTreeMap;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use cluster::dek::DEK_LEN;
use cluster::disk::Disk;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    pub oracle: &'static str,
    pub detail: String,
}

pub type Key = [u8; DEK_LEN];

/// Searches `hay` for any of `keys`: an 8-byte prefix filter, then a full compare.
fn find_any(hay: &[u8], prefixes: &[(u64, usize)], keys: &[Key]) -> Option<usize> {
    if hay.len() < DEK_LEN {
        return None;
    }
    for start in 0..=hay.len() - DEK_LEN {
        let head = u64::from_le_bytes(hay[start..start + 8].try_into().expect("8 bytes"));
        if let Ok(i) = prefixes.binary_search_by_key(&head, |(p, _)| *p) {
            // Neighbours can share a prefix: check every entry with this head.
            let mut j = i;
            while j > 0 && prefixes[j - 1].0 == head {
                j -= 1;
            }
            while j < prefixes.len() && prefixes[j].0 == head {
                if hay[start..start + DEK_LEN] == keys[prefixes[j].1] {
                    return Some(prefixes[j].1);
                }
                j += 1;
            }
        }
    }
    None
}

/// No plaintext DEK anywhere at rest: not in the config table (Raft log, state machine,
/// snapshots) nor in any data block, on any backend's disk.
pub fn no_plaintext_dek_at_rest(
    disks: &[(u64, Disk)],
    keys: &BTreeMap<String, Key>,
) -> Result<(), Violation> {
    let names: Vec<&String> = keys.keys().collect();
    let raw: Vec<Key> = keys.values().copied().collect();
    let mut prefixes: Vec<(u64, usize)> = raw
        .iter()
        .enumerate()
        .map(|(i, k)| (u64::from_le_bytes(k[..8].try_into().expect("8 bytes")), i))
        .collect();
    prefixes.sort();
    // Text forms too: the config table is JSON, where a key could hide as base64 or hex.
    let encoded: Vec<(String, String)> = raw.iter().map(|k| (B64.encode(k), hex(k))).collect();
    for (node, disk) in disks {
        let mut found = None;
        disk.for_each_stored(|bytes| {
            if found.is_some() {
                return;
            }
            if let Some(i) = find_any(bytes, &prefixes, &raw) {
                found = Some((i, "raw bytes"));
                return;
            }
            if let Ok(text) = std::str::from_utf8(bytes) {
                for (i, (b64, hx)) in encoded.iter().enumerate() {
                    if text.contains(b64.as_str()) || text.contains(hx.as_str()) {
                        found = Some((i, "base64 or hex text"));
                        return;
                    }
                }
            }
        });
        if let Some((i, form)) = found {
            return Err(Violation {
                oracle: "no-plaintext-dek-at-rest",
                detail: format!(
                    "backend{node}'s disk holds the DEK of {} as {form}",
                    names[i]
                ),
            });
        }
    }
    Ok(())
}

/// No DEK in the trace, in any text form.
pub fn no_dek_in_trace(lines: &[String], keys: &BTreeMap<String, Key>) -> Result<(), Violation> {
    for (name, key) in keys {
        let (b64, hx) = (B64.encode(key), hex(key));
        if let Some(n) = lines
            .iter()
            .position(|l| l.contains(b64.as_str()) || l.contains(hx.as_str()))
        {
            return Err(Violation {
                oracle: "no-dek-in-trace",
                detail: format!("trace line {} holds the DEK of {name}", n + 1),
            });
        }
    }
    Ok(())
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

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use cluster::disk::StoredBlock;

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
        disk.lock().blocks.insert(
            (1, 0),
            StoredBlock {
                nonce: [0; 12],
                ciphertext: data,
            },
        );
        let keys = BTreeMap::from([("fs".to_string(), key(7))]);
        let v = no_plaintext_dek_at_rest(&[(1, disk.clone())], &keys).unwrap_err();
        assert_eq!(v.oracle, "no-plaintext-dek-at-rest");
        let other = BTreeMap::from([("fs".to_string(), key(8))]);
        assert!(no_plaintext_dek_at_rest(&[(1, disk)], &other).is_ok());
    }

    #[test]
    fn finds_an_encoded_key_in_the_trace() {
        let keys = BTreeMap::from([("fs".to_string(), key(9))]);
        let line = format!("{{\"x\":\"{}\"}}", B64.encode(key(9)));
        assert!(no_dek_in_trace(&[line], &keys).is_err());
        assert!(no_dek_in_trace(&["{}".into()], &keys).is_ok());
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
