//! Everything a simulated Vault remembers: namespaces, their mounts, policies and tokens, the
//! seal, and the one seeded rng every random value comes from.

use std::collections::BTreeMap;

use rand::{Rng, RngCore, SeedableRng};
use rand_chacha::ChaCha20Rng;
use serde_json::{json, Value};
use tokio::time::{Duration, Instant};

use super::acl::{self, Policy};
use super::approle::AppRole;
use super::response::uuid;
use super::transit::Transit;

/// Simulated wall clock starts here (2026-01-01T00:00:00Z), so timestamps replay by seed.
pub const EPOCH_SECS: u64 = 1_767_225_600;
/// Vault's default max TTL (768h), used when a token is created without a ttl.
pub const DEFAULT_TTL_SECS: u64 = 768 * 3600;

pub enum Mount {
    Transit(Transit),
    AppRole(AppRole),
}

impl Mount {
    pub fn type_name(&self) -> &'static str {
        match self {
            Mount::Transit(_) => "transit",
            Mount::AppRole(_) => "approle",
        }
    }
}

pub struct Token {
    pub accessor: String,
    /// Sorted and deduplicated, as Vault reports them.
    pub policies: Vec<String>,
    pub display_name: String,
    pub path: String,
    pub meta: BTreeMap<String, String>,
    pub issued_secs: u64,
    pub ttl_secs: u64,
    /// None means the token never expires (the root token).
    pub expires: Option<Instant>,
    pub renewable: bool,
    pub orphan: bool,
    pub entity_id: String,
}

/// What an auth method hands over for a token to be issued.
pub struct Grant {
    pub policies: Vec<String>,
    pub ttl_secs: u64,
    pub display_name: String,
    pub path: String,
    pub meta: BTreeMap<String, String>,
    pub renewable: bool,
    pub orphan: bool,
    pub entity_id: String,
}

pub struct Namespace {
    /// OpenBao's short namespace id (6 base62 characters) and its uuid.
    pub id: String,
    pub uuid: String,
    /// Keyed by path without trailing slash; auth methods live under `auth/<path>`.
    pub mounts: BTreeMap<String, Mount>,
    pub policies: BTreeMap<String, Policy>,
    pub tokens: BTreeMap<String, Token>,
}

impl Namespace {
    pub fn new(id: String) -> Self {
        let mut policies = BTreeMap::new();
        if let Ok(p) = Policy::parse(acl::DEFAULT_POLICY) {
            policies.insert("default".to_string(), p);
        }
        Namespace {
            id,
            uuid: String::new(),
            mounts: BTreeMap::new(),
            policies,
            tokens: BTreeMap::new(),
        }
    }

    /// The mount serving `path`: the longest mount path that is `path` or a parent of it.
    pub fn mount_for(&self, path: &str) -> Option<(&str, &Mount)> {
        self.mounts
            .iter()
            .filter(|(m, _)| path == m.as_str() || path.starts_with(&format!("{m}/")))
            .max_by_key(|(m, _)| m.len())
            .map(|(m, v)| (m.as_str(), v))
    }

    /// Vault refuses a mount that overlaps an existing one in either direction.
    pub fn mount_conflict(&self, path: &str) -> bool {
        self.mounts.keys().any(|m| {
            m == path || path.starts_with(&format!("{m}/")) || m.starts_with(&format!("{path}/"))
        })
    }
}

/// The namespace a request runs in; the root namespace is the empty string.
pub const ROOT_NS: &str = "";

pub struct State {
    pub rng: ChaCha20Rng,
    pub sealed: bool,
    pub unseal_key: String,
    pub root_token: String,
    pub started: Instant,
    pub cluster_id: String,
    pub requests: u64,
    pub namespaces: BTreeMap<String, Namespace>,
}

impl State {
    pub fn new(seed: u64, root_token: &str) -> Self {
        let mut rng = ChaCha20Rng::seed_from_u64(seed);
        let mut key = [0u8; 32];
        rng.fill_bytes(&mut key);
        let unseal_key = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, key);
        let cluster_id = uuid(&mut rng);
        let mut st = State {
            rng,
            sealed: false,
            unseal_key,
            root_token: root_token.to_string(),
            started: Instant::now(),
            cluster_id,
            requests: 0,
            namespaces: BTreeMap::new(),
        };
        let mut root = Namespace::new("root".to_string());
        let accessor = random_b62(&mut st.rng, 24);
        root.tokens.insert(
            root_token.to_string(),
            Token {
                accessor,
                policies: vec!["root".to_string()],
                // The dev server creates its root token through the token store.
                display_name: "token".to_string(),
                path: "auth/token/create".to_string(),
                meta: BTreeMap::new(),
                issued_secs: EPOCH_SECS,
                ttl_secs: 0,
                expires: None,
                renewable: false,
                orphan: true,
                entity_id: String::new(),
            },
        );
        st.namespaces.insert(ROOT_NS.to_string(), root);
        st
    }

    /// Simulated unix time: the pinned epoch plus tokio time elapsed since creation.
    pub fn now_secs(&self) -> u64 {
        EPOCH_SECS
            + Instant::now()
                .saturating_duration_since(self.started)
                .as_secs()
    }

    pub fn ns(&mut self, ns: &str) -> &mut Namespace {
        self.namespaces
            .entry(ns.to_string())
            .or_insert_with(|| Namespace::new(String::new()))
    }

    /// Drops the token if it has expired, so an expired token is as unknown as a forged one.
    pub fn live_token(&mut self, ns: &str, id: &str) -> Option<&Token> {
        let now = Instant::now();
        let space = self.namespaces.get_mut(ns)?;
        if space.tokens.get(id)?.expires.is_some_and(|e| now >= e) {
            space.tokens.remove(id);
            return None;
        }
        space.tokens.get(id)
    }

    /// Issues a service token in `ns` and returns Vault's `auth` block for it.
    pub fn issue_token(&mut self, ns: &str, grant: Grant) -> Value {
        let id = format!("hvs.{}", random_b62(&mut self.rng, 24));
        let accessor = random_b62(&mut self.rng, 24);
        let mut policies = grant.policies;
        policies.sort();
        policies.dedup();
        let issued_secs = self.now_secs();
        let expires =
            (grant.ttl_secs > 0).then(|| Instant::now() + Duration::from_secs(grant.ttl_secs));
        let auth = json!({
            "client_token": id,
            "accessor": accessor,
            "policies": policies,
            "token_policies": policies,
            "metadata": grant.meta,
            "lease_duration": grant.ttl_secs,
            "renewable": grant.renewable,
            "entity_id": grant.entity_id,
            "token_type": "service",
            "orphan": grant.orphan,
            "mfa_requirement": null,
            "num_uses": 0,
        });
        let token = Token {
            accessor,
            policies,
            display_name: grant.display_name,
            path: grant.path,
            meta: grant.meta,
            issued_secs,
            ttl_secs: grant.ttl_secs,
            expires,
            renewable: grant.renewable,
            orphan: grant.orphan,
            entity_id: grant.entity_id,
        };
        self.ns(ns).tokens.insert(id, token);
        auth
    }
}

const B62: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

pub fn random_b62(rng: &mut ChaCha20Rng, n: usize) -> String {
    (0..n)
        .map(|_| B62[rng.gen_range(0..B62.len())] as char)
        .collect()
}

/// Vault durations: an integer number of seconds, or a string like "90", "30m", "1h30m", "24h".
pub fn parse_duration(v: &Value) -> Result<u64, String> {
    match v {
        Value::Null => Ok(0),
        Value::Number(n) => n.as_u64().ok_or_else(|| "invalid duration".to_string()),
        Value::String(s) => parse_duration_str(s),
        _ => Err("invalid duration".to_string()),
    }
}

fn parse_duration_str(s: &str) -> Result<u64, String> {
    let s = s.trim();
    if s.is_empty() {
        return Ok(0);
    }
    if let Ok(n) = s.parse::<u64>() {
        return Ok(n);
    }
    let bad = || format!("invalid duration {s:?}");
    let mut total: u64 = 0;
    let mut num = String::new();
    for c in s.chars() {
        if c.is_ascii_digit() {
            num.push(c);
            continue;
        }
        let unit = match c {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86400,
            _ => return Err(bad()),
        };
        let n: u64 = num.parse().map_err(|_| bad())?;
        total = n
            .checked_mul(unit)
            .and_then(|x| total.checked_add(x))
            .ok_or_else(bad)?;
        num.clear();
    }
    if !num.is_empty() {
        return Err(bad());
    }
    Ok(total)
}

/// Vault's list parameters: a JSON array of strings, or one comma-separated string.
pub fn string_list(v: &Value) -> Result<Vec<String>, String> {
    match v {
        Value::Null => Ok(Vec::new()),
        Value::String(s) => Ok(s
            .split(',')
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .map(String::from)
            .collect()),
        Value::Array(items) => items
            .iter()
            .map(|i| {
                i.as_str()
                    .map(|s| s.trim().to_string())
                    .ok_or("expected a list of strings")
            })
            .filter(|r| r.as_ref().map_or(true, |s| !s.is_empty()))
            .collect::<Result<_, _>>()
            .map_err(String::from),
        _ => Err("expected a list of strings".to_string()),
    }
}

/// RFC 3339 in UTC, computed by hand because the simulated clock is only a number of seconds.
pub fn rfc3339(secs: u64) -> String {
    let days = (secs / 86400) as i64;
    let rem = secs % 86400;
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration(&json!("1h")), Ok(3600));
        assert_eq!(parse_duration(&json!("1h30m")), Ok(5400));
        assert_eq!(parse_duration(&json!("90")), Ok(90));
        assert_eq!(parse_duration(&json!(15)), Ok(15));
        assert_eq!(parse_duration(&json!("0")), Ok(0));
        assert!(parse_duration(&json!("1x")).is_err());
        assert!(parse_duration(&json!("h")).is_err());
        assert!(parse_duration(&json!("10m5")).is_err());
    }

    #[test]
    fn rfc3339_of_epoch() {
        assert_eq!(rfc3339(EPOCH_SECS), "2026-01-01T00:00:00Z");
        assert_eq!(
            rfc3339(EPOCH_SECS + 59 * 86400 + 3661),
            "2026-03-01T01:01:01Z"
        );
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
    }
}
