//! The AppRole auth method: roles with a role-id, secret-ids, and login.

use std::collections::BTreeMap;

use axum::response::Response;
use rand_chacha::ChaCha20Rng;
use serde_json::{json, Value};
use tokio::time::{Duration, Instant};

use super::response::{self, no_content, uuid, VaultError};
use super::state::{parse_duration, string_list, Grant, DEFAULT_TTL_SECS};
use super::Op;

#[derive(Default)]
pub struct AppRole {
    roles: BTreeMap<String, Role>,
}

struct Role {
    role_id: String,
    /// One identity per role, as Vault's entity alias keyed on the role-id gives.
    entity_id: String,
    config: RoleConfig,
    secret_ids: BTreeMap<String, SecretId>,
}

/// The writable part of a role, cloned and validated before it replaces the old one, so a
/// refused update leaves the role unchanged.
#[derive(Clone)]
struct RoleConfig {
    policies: Vec<String>,
    token_ttl: u64,
    token_max_ttl: u64,
    secret_id_ttl: u64,
    secret_id_num_uses: u64,
    bind_secret_id: bool,
}

impl Default for RoleConfig {
    fn default() -> Self {
        RoleConfig {
            policies: Vec::new(),
            token_ttl: 0,
            token_max_ttl: 0,
            secret_id_ttl: 0,
            secret_id_num_uses: 0,
            bind_secret_id: true,
        }
    }
}

struct SecretId {
    expires: Option<Instant>,
    /// None: unlimited.
    uses_left: Option<u64>,
}

pub enum Outcome {
    Reply(Response),
    Login(Grant),
}

const INVALID: &str = "invalid role or secret ID";

/// True when a write to `sub` would create a role, which needs the `create` capability.
pub fn creates(a: &AppRole, sub: &str) -> bool {
    match sub.split('/').collect::<Vec<_>>().as_slice() {
        ["role", name] => !name.is_empty() && !a.roles.contains_key(*name),
        _ => false,
    }
}

fn dur(body: &Value, name: &str) -> Result<Option<u64>, VaultError> {
    match body.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => parse_duration(v)
            .map(Some)
            .map_err(|e| VaultError::bad_request(format!("{name}: {e}"))),
    }
}

fn write_role(role: &mut RoleConfig, body: &Value) -> Result<(), VaultError> {
    let bad = |e: String| VaultError::bad_request(e);
    // `policies` is the deprecated spelling of `token_policies`; accept either.
    if let Some(p) = body.get("token_policies").or_else(|| body.get("policies")) {
        role.policies = string_list(p).map_err(bad)?;
    }
    if let Some(v) = dur(body, "token_ttl")? {
        role.token_ttl = v;
    }
    if let Some(v) = dur(body, "token_max_ttl")? {
        role.token_max_ttl = v;
    }
    if let Some(v) = dur(body, "secret_id_ttl")? {
        role.secret_id_ttl = v;
    }
    match body.get("secret_id_num_uses") {
        None | Some(Value::Null) => {}
        Some(v) => {
            role.secret_id_num_uses = parse_duration(v)
                .map_err(|_| VaultError::bad_request("invalid secret_id_num_uses"))?
        }
    }
    match body.get("bind_secret_id") {
        None | Some(Value::Null) => {}
        Some(Value::Bool(b)) => role.bind_secret_id = *b,
        Some(_) => return Err(VaultError::bad_request("bind_secret_id must be a boolean")),
    }
    if role.token_max_ttl > 0 && role.token_ttl > role.token_max_ttl {
        return Err(VaultError::bad_request(
            "token_ttl should not be greater than token_max_ttl",
        ));
    }
    if !role.bind_secret_id {
        // Vault refuses a role with no credential constraint at all; so do we.
        return Err(VaultError::bad_request(
            "at least one constraint should be enabled on the role",
        ));
    }
    Ok(())
}

pub fn handle(
    a: &mut AppRole,
    rng: &mut ChaCha20Rng,
    mount: &str,
    op: Op,
    sub: &str,
    full: &str,
    body: &Value,
) -> Result<Outcome, VaultError> {
    let parts: Vec<&str> = sub.split('/').collect();
    let reply = Outcome::Reply;
    match (parts.as_slice(), op) {
        (["login"], Op::Update) => login(a, mount, body).map(Outcome::Login),
        (["role"], Op::List) => {
            let keys: Vec<&String> = a.roles.keys().collect();
            if keys.is_empty() {
                return Err(VaultError::not_found());
            }
            Ok(reply(response::data(rng, json!({ "keys": keys }))))
        }
        (["role", name], Op::Update) if !name.is_empty() => {
            let mut config = a
                .roles
                .get(*name)
                .map(|r| r.config.clone())
                .unwrap_or_default();
            write_role(&mut config, body)?;
            match a.roles.get_mut(*name) {
                Some(role) => role.config = config,
                None => {
                    let role = Role {
                        role_id: uuid(rng),
                        entity_id: uuid(rng),
                        config,
                        secret_ids: BTreeMap::new(),
                    };
                    a.roles.insert(name.to_string(), role);
                }
            }
            Ok(reply(no_content()))
        }
        (["role", name], Op::Read) => {
            let r = &a.roles.get(*name).ok_or_else(VaultError::not_found)?.config;
            let data = json!({
                "token_policies": r.policies,
                "policies": r.policies,
                "token_ttl": r.token_ttl,
                "token_max_ttl": r.token_max_ttl,
                "secret_id_ttl": r.secret_id_ttl,
                "secret_id_num_uses": r.secret_id_num_uses,
                "bind_secret_id": r.bind_secret_id,
                "token_type": "default",
            });
            Ok(reply(response::data(rng, data)))
        }
        (["role", name], Op::Delete) => {
            a.roles.remove(*name);
            Ok(reply(no_content()))
        }
        (["role", name, "role-id"], Op::Read) => {
            let r = a.roles.get(*name).ok_or_else(VaultError::not_found)?;
            let data = json!({ "role_id": r.role_id });
            Ok(reply(response::data(rng, data)))
        }
        (["role", name, "role-id"], Op::Update) => {
            let new_id = match body.get("role_id") {
                Some(Value::String(s)) if !s.is_empty() => s.clone(),
                _ => return Err(VaultError::bad_request("missing role_id")),
            };
            let r = a
                .roles
                .get_mut(*name)
                .ok_or_else(|| VaultError::bad_request("role not found"))?;
            r.role_id = new_id;
            Ok(reply(no_content()))
        }
        (["role", name, "secret-id"], Op::Update) => {
            let r = a
                .roles
                .get_mut(*name)
                .ok_or_else(|| VaultError::bad_request("role not found"))?;
            let ttl = dur(body, "ttl")?.unwrap_or(r.config.secret_id_ttl);
            let uses = match body.get("num_uses") {
                None | Some(Value::Null) => r.config.secret_id_num_uses,
                Some(v) => {
                    parse_duration(v).map_err(|_| VaultError::bad_request("invalid num_uses"))?
                }
            };
            let secret_id = uuid(rng);
            let accessor = uuid(rng);
            r.secret_ids.insert(
                secret_id.clone(),
                SecretId {
                    expires: (ttl > 0).then(|| Instant::now() + Duration::from_secs(ttl)),
                    uses_left: (uses > 0).then_some(uses),
                },
            );
            let data = json!({
                "secret_id": secret_id,
                "secret_id_accessor": accessor,
                "secret_id_ttl": ttl,
                "secret_id_num_uses": uses,
            });
            Ok(reply(response::data(rng, data)))
        }
        (["role", name, "secret-id", "destroy"], Op::Update | Op::Delete) => {
            let secret_id = match body.get("secret_id") {
                Some(Value::String(s)) if !s.is_empty() => s.as_str(),
                _ => return Err(VaultError::bad_request("missing secret_id")),
            };
            let r = a
                .roles
                .get_mut(*name)
                .ok_or_else(|| VaultError::bad_request("role not found"))?;
            // Destroying a secret-id that is gone already is no error.
            r.secret_ids.remove(secret_id);
            Ok(reply(no_content()))
        }
        (["login"] | ["role"] | ["role", _] | ["role", _, "role-id" | "secret-id"], _) => {
            Err(VaultError::unsupported())
        }
        _ => Err(VaultError::no_route(full)),
    }
}

fn login(a: &mut AppRole, mount: &str, body: &Value) -> Result<Grant, VaultError> {
    let field = |name: &str| match body.get(name) {
        Some(Value::String(s)) if !s.is_empty() => Some(s.as_str()),
        _ => None,
    };
    let role_id = field("role_id").ok_or_else(|| VaultError::bad_request("missing role_id"))?;
    let (name, role) = a
        .roles
        .iter_mut()
        .find(|(_, r)| r.role_id == role_id)
        .ok_or_else(|| VaultError::bad_request(INVALID))?;
    if role.config.bind_secret_id {
        let secret_id =
            field("secret_id").ok_or_else(|| VaultError::bad_request("missing secret_id"))?;
        let now = Instant::now();
        let entry = role
            .secret_ids
            .get_mut(secret_id)
            .ok_or_else(|| VaultError::bad_request(INVALID))?;
        if entry.expires.is_some_and(|e| now >= e) {
            role.secret_ids.remove(secret_id);
            return Err(VaultError::bad_request(INVALID));
        }
        if let Some(left) = entry.uses_left.as_mut() {
            *left -= 1;
            if *left == 0 {
                role.secret_ids.remove(secret_id);
            }
        }
    }
    let cfg = &role.config;
    let mut ttl = if cfg.token_ttl > 0 {
        cfg.token_ttl
    } else {
        DEFAULT_TTL_SECS
    };
    if cfg.token_max_ttl > 0 {
        ttl = ttl.min(cfg.token_max_ttl);
    }
    let mut policies = vec!["default".to_string()];
    policies.extend(cfg.policies.iter().cloned());
    Ok(Grant {
        policies,
        ttl_secs: ttl,
        // OpenBao names the token after the mount path, without `auth/`.
        display_name: mount.trim_start_matches("auth/").replace('/', "-"),
        path: format!("{mount}/login"),
        meta: BTreeMap::from([("role_name".to_string(), name.clone())]),
        renewable: true,
        orphan: true,
        entity_id: role.entity_id.clone(),
    })
}
