//! The transit engine: named aes256-gcm96 keys with versions, and encrypt / decrypt / rewrap.

use std::collections::BTreeMap;

use aes_gcm::aead::{Aead, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce};
use axum::http::StatusCode;
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use rand::RngCore;
use rand_chacha::ChaCha20Rng;
use serde_json::{json, Map, Value};

use super::response::{self, no_content, VResult, VaultError};
use super::Op;

const KEY_TYPE: &str = "aes256-gcm96";
const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 16;

#[derive(Default)]
pub struct Transit {
    pub keys: BTreeMap<String, Key>,
}

pub struct Key {
    /// Version number -> (key material, creation time in unix seconds).
    versions: BTreeMap<u32, ([u8; 32], u64)>,
    latest: u32,
    min_decryption_version: u32,
    min_encryption_version: u32,
    deletion_allowed: bool,
}

impl Key {
    fn new(rng: &mut ChaCha20Rng, now: u64) -> Key {
        let mut k = Key {
            versions: BTreeMap::new(),
            latest: 0,
            min_decryption_version: 1,
            min_encryption_version: 0,
            deletion_allowed: false,
        };
        k.rotate(rng, now);
        k
    }

    fn rotate(&mut self, rng: &mut ChaCha20Rng, now: u64) {
        let mut material = [0u8; 32];
        rng.fill_bytes(&mut material);
        self.latest += 1;
        self.versions.insert(self.latest, (material, now));
    }

    fn read_body(&self, name: &str) -> Value {
        let keys: Map<String, Value> = self
            .versions
            .iter()
            .map(|(v, (_, t))| (v.to_string(), json!(t)))
            .collect();
        json!({
            "name": name,
            "type": KEY_TYPE,
            "keys": keys,
            "latest_version": self.latest,
            "min_available_version": 0,
            "min_decryption_version": self.min_decryption_version,
            "min_encryption_version": self.min_encryption_version,
            "deletion_allowed": self.deletion_allowed,
            "derived": false,
            "exportable": false,
            "allow_plaintext_backup": false,
            "supports_encryption": true,
            "supports_decryption": true,
            "supports_derivation": true,
            "supports_signing": false,
            "imported_key": false,
            "auto_rotate_period": 0,
        })
    }

    fn encrypt(&self, rng: &mut ChaCha20Rng, item: &Value) -> Result<Value, String> {
        let plaintext = match item.get("plaintext") {
            Some(Value::String(s)) => B64
                .decode(s)
                .map_err(|_| "failed to base64-decode plaintext".to_string())?,
            Some(_) => return Err("failed to base64-decode plaintext".into()),
            None => return Err("missing plaintext to encrypt".into()),
        };
        let version = match uint_field(item, "key_version")? {
            None | Some(0) => self.latest,
            Some(v) if v > self.latest => {
                return Err(
                    "requested version for encryption is higher than the latest key version".into(),
                )
            }
            Some(v) if v < self.min_encryption_version => return Err(
                "requested version for encryption is less than the minimum encryption key version"
                    .into(),
            ),
            Some(v) => v,
        };
        let (material, _) = self.versions.get(&version).ok_or("invalid key version")?;
        let cipher = Aes256Gcm::new_from_slice(material).map_err(|_| "invalid key material")?;
        let mut nonce = [0u8; NONCE_LEN];
        rng.fill_bytes(&mut nonce);
        let sealed = cipher
            .encrypt(Nonce::from_slice(&nonce), plaintext.as_slice())
            .map_err(|_| "encryption failed".to_string())?;
        let mut blob = nonce.to_vec();
        blob.extend_from_slice(&sealed);
        Ok(json!({
            "ciphertext": format!("vault:v{version}:{}", B64.encode(blob)),
            "key_version": version,
        }))
    }

    /// Returns the raw plaintext; callers base64 it or re-encrypt it.
    fn decrypt(&self, item: &Value) -> Result<Vec<u8>, String> {
        let ciphertext = match item.get("ciphertext") {
            Some(Value::String(s)) => s.as_str(),
            Some(_) => return Err("invalid ciphertext: no prefix".into()),
            None => return Err("missing ciphertext to decrypt".into()),
        };
        let rest = ciphertext
            .strip_prefix("vault:v")
            .ok_or("invalid ciphertext: no prefix")?;
        let (version, body) = rest
            .split_once(':')
            .ok_or("invalid ciphertext: no prefix")?;
        let version: u32 = version
            .parse()
            .map_err(|_| "invalid ciphertext: no prefix")?;
        let blob = B64
            .decode(body)
            .map_err(|_| "invalid ciphertext: failed to decode")?;
        if blob.len() < NONCE_LEN + TAG_LEN {
            return Err("invalid ciphertext: failed to decode".into());
        }
        if version == 0 || version > self.latest {
            return Err("invalid key version".into());
        }
        if version < self.min_decryption_version {
            return Err("ciphertext or signature version is disallowed by policy (too old)".into());
        }
        let (material, _) = self.versions.get(&version).ok_or("invalid key version")?;
        let cipher = Aes256Gcm::new_from_slice(material).map_err(|_| "invalid key material")?;
        let (nonce, sealed) = blob.split_at(NONCE_LEN);
        cipher
            .decrypt(Nonce::from_slice(nonce), sealed)
            .map_err(|_| "cipher: message authentication failed".to_string())
    }

    fn configure(&mut self, body: &Value) -> Result<(), String> {
        let mut min_dec = self.min_decryption_version;
        let mut min_enc = self.min_encryption_version;
        if let Some(v) = uint_field(body, "min_decryption_version")? {
            // Vault numbers versions from 1 and forces 0 up to 1.
            min_dec = v.max(1);
        }
        if let Some(v) = uint_field(body, "min_encryption_version")? {
            min_enc = v;
        }
        if min_dec > self.latest {
            return Err(
                "cannot set min decryption version to a value greater than the latest version"
                    .into(),
            );
        }
        if min_enc > self.latest {
            return Err(
                "cannot set min encryption version to a value greater than the latest version"
                    .into(),
            );
        }
        if min_enc != 0 && min_enc < min_dec {
            return Err(
                "min encryption version should not be less than min decryption version".into(),
            );
        }
        match body.get("deletion_allowed") {
            None | Some(Value::Null) => {}
            Some(Value::Bool(b)) => self.deletion_allowed = *b,
            Some(_) => return Err("deletion_allowed must be a boolean".into()),
        }
        self.min_decryption_version = min_dec;
        self.min_encryption_version = min_enc;
        Ok(())
    }
}

/// Vault accepts integers as JSON numbers or numeric strings.
fn uint_field(body: &Value, name: &str) -> Result<Option<u32>, String> {
    let bad = || format!("invalid value for {name}");
    match body.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => n
            .as_u64()
            .and_then(|v| u32::try_from(v).ok())
            .map(Some)
            .ok_or_else(bad),
        Some(Value::String(s)) => s.parse().map(Some).map_err(|_| bad()),
        Some(_) => Err(bad()),
    }
}

/// True when a write to `sub` would create a key, which needs the `create` capability.
pub fn creates(t: &Transit, sub: &str) -> bool {
    match sub.split('/').collect::<Vec<_>>().as_slice() {
        ["keys", k] | ["encrypt", k] => !k.is_empty() && !t.keys.contains_key(*k),
        _ => false,
    }
}

fn check_type(body: &Value) -> Result<(), VaultError> {
    match body.get("type") {
        None | Some(Value::Null) => Ok(()),
        Some(Value::String(t)) if t == KEY_TYPE => Ok(()),
        Some(Value::String(_)) => Err(VaultError::bad_request(
            "unsupported key type: this simulator supports only aes256-gcm96",
        )),
        Some(_) => Err(VaultError::bad_request("invalid key type")),
    }
}

pub fn handle(
    t: &mut Transit,
    rng: &mut ChaCha20Rng,
    now: u64,
    op: Op,
    sub: &str,
    full: &str,
    body: &Value,
) -> VResult {
    let parts: Vec<&str> = sub.split('/').collect();
    let read = |t: &Transit, rng: &mut ChaCha20Rng, k: &str| match t.keys.get(k) {
        Some(key) => Ok(response::data(rng, "transit", key.read_body(k))),
        None => Err(VaultError::not_found()),
    };
    match (parts.as_slice(), op) {
        (["keys"], Op::List) => {
            let keys: Vec<&String> = t.keys.keys().collect();
            if keys.is_empty() {
                return Err(VaultError::not_found());
            }
            Ok(response::data(rng, "transit", json!({ "keys": keys })))
        }
        (["keys", k], Op::Update) if !k.is_empty() => {
            check_type(body)?;
            if !t.keys.contains_key(*k) {
                t.keys.insert(k.to_string(), Key::new(rng, now));
            }
            Ok(no_content())
        }
        (["keys", k], Op::Read) => read(t, rng, k),
        (["keys", k], Op::Delete) => match t.keys.get(*k) {
            None => Ok(no_content()),
            Some(key) if !key.deletion_allowed => Err(VaultError::bad_request(
                "deletion is not allowed for this key",
            )),
            Some(_) => {
                t.keys.remove(*k);
                Ok(no_content())
            }
        },
        (["keys", k, "rotate"], Op::Update) => {
            let key = t
                .keys
                .get_mut(*k)
                .ok_or_else(|| VaultError::bad_request("key not found"))?;
            key.rotate(rng, now);
            read(t, rng, k)
        }
        (["keys", k, "config"], Op::Update) => {
            let key = t
                .keys
                .get_mut(*k)
                .ok_or_else(|| VaultError::bad_request("no such key"))?;
            key.configure(body).map_err(VaultError::bad_request)?;
            read(t, rng, k)
        }
        ([verb @ ("encrypt" | "decrypt" | "rewrap"), k], Op::Update) if !k.is_empty() => {
            if *verb == "encrypt" && !t.keys.contains_key(*k) {
                // The router only lets this through when the caller holds `create`.
                check_type(body)?;
                t.keys.insert(k.to_string(), Key::new(rng, now));
            }
            let key = t
                .keys
                .get(*k)
                .ok_or_else(|| VaultError::bad_request("encryption key not found"))?;
            let one = |rng: &mut ChaCha20Rng, item: &Value| -> Result<Value, String> {
                match *verb {
                    "encrypt" => key.encrypt(rng, item),
                    "decrypt" => Ok(json!({ "plaintext": B64.encode(key.decrypt(item)?) })),
                    _ => {
                        let plaintext = B64.encode(key.decrypt(item)?);
                        let mut again = json!({ "plaintext": plaintext });
                        if let Some(v) = item.get("key_version") {
                            again["key_version"] = v.clone();
                        }
                        key.encrypt(rng, &again)
                    }
                }
            };
            batch_or_single(rng, body, one)
        }
        (["keys"] | ["keys", _] | ["keys", _, "rotate" | "config"], _)
        | (["encrypt" | "decrypt" | "rewrap", _], _) => Err(VaultError::unsupported()),
        _ => Err(VaultError::no_route(full)),
    }
}

/// Batch items fail one by one; any failure turns the status to 400 but the results still come
/// back, in input order, as Vault does.
fn batch_or_single(
    rng: &mut ChaCha20Rng,
    body: &Value,
    mut one: impl FnMut(&mut ChaCha20Rng, &Value) -> Result<Value, String>,
) -> VResult {
    let Some(batch) = body.get("batch_input") else {
        let data = one(rng, body).map_err(VaultError::bad_request)?;
        return Ok(response::data(rng, "transit", data));
    };
    let items = match batch {
        Value::Array(items) if !items.is_empty() => items,
        Value::Array(_) | Value::Null => {
            return Err(VaultError::bad_request("missing batch input to process"))
        }
        _ => return Err(VaultError::bad_request("batch_input must be a list")),
    };
    let mut failed = false;
    let results: Vec<Value> = items
        .iter()
        .map(|item| {
            let mut out = match item {
                Value::Object(_) => one(rng, item),
                _ => Err("batch item must be an object".to_string()),
            }
            .unwrap_or_else(|e| {
                failed = true;
                json!({ "error": e })
            });
            if let Some(r) = item.get("reference") {
                out["reference"] = r.clone();
            }
            out
        })
        .collect();
    let status = if failed {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::OK
    };
    Ok(response::data_with_status(
        rng,
        status,
        "transit",
        json!({ "batch_results": results }),
    ))
}
