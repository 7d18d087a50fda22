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
        // OpenBao lists only the versions that can still decrypt.
        let keys: Map<String, Value> = self
            .versions
            .range(self.min_decryption_version..)
            .map(|(v, (_, t))| (v.to_string(), json!(t)))
            .collect();
        json!({
            "name": name,
            "soft_deleted": false,
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
            Some(Value::String(s)) => go_b64_decode(s).map_err(illegal_base64)?,
            // OpenBao reads a number as its decimal text; refusing it is stricter.
            Some(Value::Null) | None => return Err("missing plaintext to encrypt".into()),
            Some(_) => return Err(illegal_base64(0)),
        };
        self.seal(rng, &plaintext, item)
    }

    /// Encrypts `plaintext` with the version `item` asks for (its `key_version`, else the
    /// latest). Rewrap calls it with the plaintext it just decrypted, so it need not base64
    /// it for `encrypt` to decode again.
    fn seal(&self, rng: &mut ChaCha20Rng, plaintext: &[u8], item: &Value) -> Result<Value, String> {
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
            .encrypt(Nonce::from_slice(&nonce), plaintext)
            .map_err(|_| "encryption failed".to_string())?;
        let mut blob = nonce.to_vec();
        blob.extend_from_slice(&sealed);
        Ok(json!({
            "ciphertext": format!("vault:v{version}:{}", B64.encode(blob)),
            "key_version": version,
        }))
    }

    /// Returns the raw plaintext; callers base64 it or re-encrypt it.
    pub(crate) fn decrypt(&self, item: &Value) -> Result<Vec<u8>, String> {
        let ciphertext = match item.get("ciphertext") {
            Some(Value::String(s)) => s.as_str(),
            Some(_) => return Err("invalid ciphertext: no prefix".into()),
            None => return Err("missing ciphertext to decrypt".into()),
        };
        // OpenBao's checks, in its order: prefix, fields, version number, version range
        // (v0 is an alias of v1), then base64, then length, then the AEAD tag.
        let rest = ciphertext
            .strip_prefix("vault:v")
            .ok_or("invalid ciphertext: no prefix")?;
        let (version, body) = rest
            .split_once(':')
            .ok_or("invalid ciphertext: wrong number of fields")?;
        let version: i64 = version
            .parse()
            .map_err(|_| "invalid ciphertext: version number could not be decoded")?;
        let version = if version == 0 { 1 } else { version };
        if version > i64::from(self.latest) {
            return Err("invalid ciphertext: version is too new".into());
        }
        if version < i64::from(self.min_decryption_version) {
            return Err("ciphertext or signature version is disallowed by policy (too old)".into());
        }
        let version = u32::try_from(version).map_err(|_| "invalid key version")?;
        let blob =
            go_b64_decode(body).map_err(|_| "invalid ciphertext: could not decode base64")?;
        if blob.len() < NONCE_LEN {
            return Err("invalid ciphertext length".into());
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
        let latest = self.latest;
        if min_dec > latest {
            return Err(format!(
                "cannot set min decryption version of {min_dec}, latest key version is {latest}"
            ));
        }
        if min_enc > latest {
            return Err(format!(
                "cannot set min encryption version of {min_enc}, latest key version is {latest}"
            ));
        }
        if min_enc != 0 && min_enc < min_dec {
            return Err(format!(
                "cannot set min encryption/decryption values; min encryption version of \
                 {min_enc} must be greater than or equal to min decryption version of {min_dec}"
            ));
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
        Some(key) => Ok(response::data(rng, key.read_body(k))),
        None => Err(VaultError::not_found()),
    };
    match (parts.as_slice(), op) {
        (["keys"], Op::List) => {
            let keys: Vec<&String> = t.keys.keys().collect();
            if keys.is_empty() {
                return Err(VaultError::not_found());
            }
            Ok(response::data(rng, json!({ "keys": keys })))
        }
        (["keys", k], Op::Update) if !k.is_empty() => {
            check_type(body)?;
            if !t.keys.contains_key(*k) {
                t.keys.insert(k.to_string(), Key::new(rng, now));
            }
            // OpenBao 2.x answers a create (new or existing key) with the key, like a read.
            read(t, rng, k)
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
            let key = t.keys.get_mut(*k).ok_or_else(|| {
                VaultError::bad_request(format!("no existing key named {k} could be found"))
            })?;
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
                    _ => key.seal(rng, &key.decrypt(item)?, item),
                }
            };
            batch_or_single(rng, verb, body, one)
        }
        (["keys"] | ["keys", _] | ["keys", _, "rotate" | "config"], _)
        | (["encrypt" | "decrypt" | "rewrap", _], _) => Err(VaultError::unsupported()),
        _ => Err(VaultError::no_route(full)),
    }
}

/// OpenBao's answer when it cannot even parse a batch: a 500 with its multierror text.
fn batch_parse_error(msg: String) -> VaultError {
    VaultError::multierror(
        StatusCode::INTERNAL_SERVER_ERROR,
        format!("failed to parse batch input: {msg}"),
    )
}

/// How Go names the type of a decoded JSON value in mapstructure's messages.
fn go_type(v: &Value, quoted_nil: bool) -> &'static str {
    match v {
        Value::Null if quoted_nil => "<nil>",
        Value::Null => "nil",
        Value::Bool(_) => "bool",
        Value::Number(_) => "json.Number",
        Value::String(_) => "string",
        Value::Array(_) => "[]interface {}",
        Value::Object(_) => "map[string]interface {}",
    }
}

/// OpenBao parses the whole batch before it processes an item: a non-list, a non-object item,
/// a non-string reference, or (for encrypt and decrypt) an item without its input fails the
/// whole request.
fn check_batch(verb: &str, items: &[Value]) -> Result<(), VaultError> {
    let required = match verb {
        "encrypt" => Some(("plaintext", "missing plaintext to encrypt")),
        "decrypt" => Some(("ciphertext", "missing ciphertext to decrypt")),
        _ => None,
    };
    for (i, item) in items.iter().enumerate() {
        let Value::Object(fields) = item else {
            return Err(batch_parse_error(format!(
                "[{i}] expected a map, got '{}'",
                go_type(item, true)
            )));
        };
        match fields.get("reference") {
            None | Some(Value::Null) | Some(Value::String(_)) => {}
            Some(other) => {
                return Err(batch_parse_error(format!(
                    "'[{i}].reference' expected type 'string', got unconvertible type '{}'",
                    go_type(other, false)
                )))
            }
        }
        if let Some((field, msg)) = required {
            if fields.get(field).is_none_or(Value::is_null) {
                return Err(batch_parse_error(format!("'[{i}].{field}' {msg}")));
            }
        }
    }
    Ok(())
}

/// Batch items fail one by one; a failed encrypt or decrypt item turns the status to 400 (a
/// failed rewrap item does not, as in OpenBao), and the results still come back, in input
/// order, each with its `reference` ("" when none was given).
fn batch_or_single(
    rng: &mut ChaCha20Rng,
    verb: &str,
    body: &Value,
    mut one: impl FnMut(&mut ChaCha20Rng, &Value) -> Result<Value, String>,
) -> VResult {
    let Some(batch) = body.get("batch_input").filter(|b| !b.is_null()) else {
        let data = one(rng, body).map_err(VaultError::bad_request)?;
        return Ok(response::data(rng, data));
    };
    let items = match batch {
        Value::Array(items) if !items.is_empty() => items,
        Value::Array(_) => return Err(VaultError::bad_request("missing batch input to process")),
        other => {
            return Err(batch_parse_error(format!(
                "source data must be an array or slice, got {}",
                go_type(other, false)
            )))
        }
    };
    check_batch(verb, items)?;
    let mut failed = false;
    let results: Vec<Value> = items
        .iter()
        .map(|item| {
            let mut out = one(rng, item).unwrap_or_else(|e| {
                failed = true;
                if verb == "decrypt" {
                    json!({ "error": e, "plaintext": "" })
                } else {
                    json!({ "error": e })
                }
            });
            out["reference"] = match item.get("reference") {
                Some(Value::String(r)) => json!(r),
                _ => json!(""),
            };
            out
        })
        .collect();
    let status = if failed && verb != "rewrap" {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::OK
    };
    Ok(response::data_with_status(
        rng,
        status,
        json!({ "batch_results": results }),
    ))
}

fn illegal_base64(at: usize) -> String {
    format!("illegal base64 data at input byte {at}")
}

/// Go's `base64.StdEncoding.DecodeString`, which OpenBao uses: padding required, non-zero
/// trailing bits accepted, `\r` and `\n` skipped. On failure, the offset Go reports.
fn go_b64_decode(s: &str) -> Result<Vec<u8>, usize> {
    let src = s.as_bytes();
    let skip_newlines = |mut i: usize| {
        while i < src.len() && (src[i] == b'\n' || src[i] == b'\r') {
            i += 1;
        }
        i
    };
    let sextet = |c: u8| -> Option<u32> {
        Some(u32::from(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        }))
    };
    let mut out = Vec::with_capacity(src.len() / 4 * 3);
    let mut si = 0;
    while si < src.len() {
        let mut quantum = [0u32; 4];
        let mut len = 4;
        let mut j = 0;
        while j < 4 {
            if si == src.len() {
                if j == 0 {
                    return Ok(out);
                }
                // Standard encoding needs padding: a short final quantum is corrupt.
                return Err(si - j);
            }
            let c = src[si];
            si += 1;
            if let Some(v) = sextet(c) {
                quantum[j] = v;
                j += 1;
                continue;
            }
            if c == b'\n' || c == b'\r' {
                continue;
            }
            if c != b'=' || j < 2 {
                return Err(si - 1);
            }
            if j == 2 {
                si = skip_newlines(si);
                if si == src.len() {
                    return Err(src.len());
                }
                if src[si] != b'=' {
                    return Err(si - 1);
                }
                si += 1;
            }
            si = skip_newlines(si);
            if si < src.len() {
                return Err(si);
            }
            len = j;
            break;
        }
        let v = quantum[0] << 18 | quantum[1] << 12 | quantum[2] << 6 | quantum[3];
        let bytes = [(v >> 16) as u8, (v >> 8) as u8, v as u8];
        out.extend_from_slice(&bytes[..len - 1]);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::go_b64_decode;

    #[test]
    fn base64_like_go() {
        assert_eq!(go_b64_decode("QUJD"), Ok(b"ABC".to_vec()));
        assert_eq!(go_b64_decode("QUJD\nRA=="), Ok(b"ABCD".to_vec()));
        assert_eq!(go_b64_decode("AB=="), Ok(vec![0]));
        assert_eq!(go_b64_decode(""), Ok(vec![]));
        // Offsets as OpenBao 2.7.2 reports them.
        assert_eq!(go_b64_decode("!!!"), Err(0));
        assert_eq!(go_b64_decode("AAA"), Err(0));
        assert_eq!(go_b64_decode("A"), Err(0));
        assert_eq!(go_b64_decode("AAAA===="), Err(4));
        assert_eq!(go_b64_decode("AA=A"), Err(2));
        assert_eq!(go_b64_decode("AAAAAA!A"), Err(6));
        assert_eq!(go_b64_decode("AAAA=AAA"), Err(4));
    }
}
