//! `sys/`: health and seal, mounts, auth methods, ACL policies and namespaces.

use axum::body::Bytes;
use axum::http::StatusCode;
use serde_json::{json, Map, Value};

use super::acl::Policy;
use super::approle::AppRole;
use super::response::{self, json_response, no_content, VResult, VaultError};
use super::state::{rfc3339, Mount, Namespace, State, ROOT_NS};
use super::transit::Transit;
use super::{parse_body, Op, Req};

const VERSION: &str = "2.5.1";
const CLUSTER_NAME: &str = "vault-cluster-sim";
const RESERVED_NAMESPACES: &[&str] = &["root", "sys", "audit", "auth", "cubbyhole", "identity"];

/// The endpoints that answer without a token and while sealed.
pub fn unauthenticated(st: &mut State, op: Op, rel: &str, bytes: &Bytes) -> Option<VResult> {
    let reply = match (rel, op) {
        ("sys/health", Op::Read) => Ok(health(st)),
        ("sys/seal-status", Op::Read) => Ok(json_response(StatusCode::OK, &seal_status(st))),
        ("sys/unseal", Op::Update) => unseal(st, bytes),
        ("sys/health" | "sys/seal-status" | "sys/unseal", _) => Err(VaultError::unsupported()),
        _ => return None,
    };
    Some(reply)
}

/// OpenBao's health body: a sealed node reports itself standby, with unknown replication
/// modes and no cluster name or id.
fn health(st: &State) -> axum::response::Response {
    let mut body = json!({
        "initialized": true,
        "sealed": st.sealed,
        "standby": st.sealed,
        "replication_performance_mode": if st.sealed { "unknown" } else { "disabled" },
        "replication_dr_mode": if st.sealed { "unknown" } else { "disabled" },
        "server_time_utc": st.now_secs(),
        "version": VERSION,
    });
    add_cluster_identity(st, &mut body);
    let status = if st.sealed {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::OK
    };
    json_response(status, &body)
}

fn seal_status(st: &State) -> Value {
    let mut body = json!({
        "type": "shamir",
        "initialized": true,
        "sealed": st.sealed,
        "t": 1,
        "n": 1,
        "progress": 0,
        "nonce": "",
        "version": VERSION,
        "commit_date": rfc3339(super::state::EPOCH_SECS),
        "migration": false,
        "recovery_seal": false,
        "storage_type": "inmem",
    });
    add_cluster_identity(st, &mut body);
    body
}

/// Health and seal status name the cluster only while it is unsealed, as OpenBao's do.
fn add_cluster_identity(st: &State, body: &mut Value) {
    if !st.sealed {
        body["cluster_name"] = json!(CLUSTER_NAME);
        body["cluster_id"] = json!(st.cluster_id);
    }
}

fn unseal(st: &mut State, bytes: &Bytes) -> VResult {
    let body = parse_body(bytes)?;
    if body.get("reset").and_then(Value::as_bool) == Some(true) {
        return Ok(json_response(StatusCode::OK, &seal_status(st)));
    }
    match body.get("key") {
        Some(Value::String(k)) if !k.is_empty() => {
            if *k != st.unseal_key {
                return Err(VaultError::bad_request("unseal failed: invalid key"));
            }
            st.sealed = false;
            Ok(json_response(StatusCode::OK, &seal_status(st)))
        }
        _ => Err(VaultError::bad_request("missing required 'key' parameter")),
    }
}

pub fn handle(st: &mut State, req: &Req) -> VResult {
    let rest = req.path.strip_prefix("sys/").unwrap_or("");
    let (head, tail) = rest.split_once('/').unwrap_or((rest, ""));
    match (head, req.op) {
        ("seal", Op::Update) if tail.is_empty() => {
            st.sealed = true;
            Ok(no_content())
        }
        ("mounts", _) => mounts(st, req, tail, false),
        ("auth", _) => mounts(st, req, tail, true),
        ("policies", _) if tail == "acl" || tail.starts_with("acl/") => policies(
            st,
            req,
            tail.trim_start_matches("acl").trim_start_matches('/'),
            "policy",
        ),
        ("policy", _) => policies(st, req, tail, "rules"),
        ("namespaces", _) => namespaces(st, req, tail),
        ("seal", _) => Err(VaultError::unsupported()),
        _ => Err(VaultError::no_route(req.path)),
    }
}

fn mounts(st: &mut State, req: &Req, path: &str, auth: bool) -> VResult {
    let prefix = if auth { "auth/" } else { "" };
    let space = st.ns(req.ns);
    if path.is_empty() {
        if req.op != Op::Read {
            return Err(VaultError::unsupported());
        }
        let mut listing = Map::new();
        if auth {
            listing.insert(
                "token/".into(),
                json!({ "type": "token", "description": "token based credentials" }),
            );
        }
        for (m, mount) in &space.mounts {
            if let Some(name) = m
                .strip_prefix(prefix)
                .filter(|_| auth || !m.starts_with("auth/"))
            {
                listing.insert(
                    format!("{name}/"),
                    json!({ "type": mount.type_name(), "description": "" }),
                );
            }
        }
        return Ok(response::data(&mut st.rng, Value::Object(listing)));
    }
    let key = format!("{prefix}{path}");
    match req.op {
        Op::Update => {
            let kind = req.body.get("type").and_then(Value::as_str).unwrap_or("");
            let mount = match (kind, auth) {
                ("transit", false) => Mount::Transit(Transit::default()),
                ("approle", true) => Mount::AppRole(AppRole::default()),
                ("", _) => return Err(VaultError::bad_request("missing type")),
                _ => {
                    return Err(VaultError::bad_request(format!(
                        "plugin not found in the catalog: {kind} (this simulator serves transit and approle)"
                    )))
                }
            };
            let first = path.split('/').next().unwrap_or("");
            let reserved = if auth {
                first == "token"
            } else {
                ["sys", "auth", "cubbyhole", "identity"].contains(&first)
            };
            if reserved || space.mount_conflict(&key) || path.split('/').any(str::is_empty) {
                return Err(VaultError::bad_request(format!(
                    "path is already in use at {key}/"
                )));
            }
            space.mounts.insert(key, mount);
            Ok(no_content())
        }
        Op::Delete => {
            space.mounts.remove(&key);
            Ok(no_content())
        }
        _ => Err(VaultError::unsupported()),
    }
}

fn policies(st: &mut State, req: &Req, name: &str, text_field: &str) -> VResult {
    let now = st.now_secs();
    let space = st.ns(req.ns);
    if name.is_empty() {
        let names: Vec<String> = space
            .policies
            .keys()
            .cloned()
            .chain(["root".to_string()])
            .collect();
        return match req.op {
            Op::List | Op::Read => Ok(response::data(
                &mut st.rng,
                json!({ "keys": names, "policies": names }),
            )),
            _ => Err(VaultError::unsupported()),
        };
    }
    // Vault stores policy names lowercased.
    let name = name.to_lowercase();
    match req.op {
        Op::Update => {
            if name == "root" {
                return Err(VaultError::bad_request("cannot update \"root\" policy"));
            }
            let text = req
                .body
                .get("policy")
                .or_else(|| req.body.get("rules"))
                .and_then(Value::as_str)
                .unwrap_or("");
            if text.trim().is_empty() {
                return Err(VaultError::bad_request(
                    "'policy' parameter not supplied or empty",
                ));
            }
            let mut policy = Policy::parse(text)
                .map_err(|e| VaultError::bad_request(format!("failed to parse policy: {e}")))?;
            policy.version = space.policies.get(&name).map_or(1, |old| old.version + 1);
            policy.modified_secs = now;
            space.policies.insert(name, policy);
            Ok(no_content())
        }
        Op::Read => {
            let policy = space
                .policies
                .get(&name)
                .ok_or_else(VaultError::not_found)?;
            let mut data = json!({
                "name": name,
                "version": policy.version,
                "modified": rfc3339(policy.modified_secs),
                "cas_required": false,
                "allow_slashes_in_identity_templates": false,
                "allow_wildcards_in_identity_templates": false,
            });
            data[text_field] = json!(policy.text);
            if text_field == "rules" {
                // The legacy `sys/policy/NAME` answers its fields at the top level too.
                let mut body = response::envelope(&mut st.rng, data.clone(), Value::Null);
                if let (Some(top), Value::Object(fields)) = (body.as_object_mut(), data) {
                    top.extend(fields);
                }
                return Ok(json_response(StatusCode::OK, &body));
            }
            Ok(response::data(&mut st.rng, data))
        }
        Op::Delete => {
            if name == "root" || name == "default" {
                return Err(VaultError::bad_request(format!(
                    "cannot delete \"{name}\" policy"
                )));
            }
            space.policies.remove(&name);
            Ok(no_content())
        }
        Op::List => Err(VaultError::unsupported()),
    }
}

fn namespaces(st: &mut State, req: &Req, name: &str) -> VResult {
    // Namespaces nest in Vault; here they are one level under root, enough for tenant isolation.
    if req.ns != ROOT_NS || !req.caller.root {
        return Err(VaultError::acl_denied());
    }
    let info = |name: &str, space: &Namespace| {
        json!({
            "id": space.id,
            "uuid": space.uuid,
            "path": format!("{name}/"),
            "custom_metadata": {},
            "locked": false,
            "tainted": false,
        })
    };
    if name.is_empty() {
        if req.op != Op::List {
            return Err(VaultError::unsupported());
        }
        let keys: Vec<String> = st
            .namespaces
            .keys()
            .filter(|k| !k.is_empty())
            .map(|k| format!("{k}/"))
            .collect();
        if keys.is_empty() {
            return Err(VaultError::not_found());
        }
        let key_info: Map<String, Value> = st
            .namespaces
            .iter()
            .filter(|(k, _)| !k.is_empty())
            .map(|(k, s)| (format!("{k}/"), info(k, s)))
            .collect();
        return Ok(response::data(
            &mut st.rng,
            json!({ "keys": keys, "key_info": key_info }),
        ));
    }
    match req.op {
        Op::Update => {
            let valid = !name.contains('/')
                && !name.chars().any(char::is_whitespace)
                && !RESERVED_NAMESPACES.contains(&name);
            if !valid {
                return Err(VaultError::bad_request(format!(
                    "{name:?} is not a valid namespace name"
                )));
            }
            if st.namespaces.contains_key(name) {
                return Err(VaultError::bad_request(format!(
                    "namespace {name:?} already exists"
                )));
            }
            let id = super::state::random_b62(&mut st.rng, 6);
            let mut space = Namespace::new(id);
            space.uuid = response::uuid(&mut st.rng);
            let data = info(name, &space);
            st.namespaces.insert(name.to_string(), space);
            Ok(response::data(&mut st.rng, data))
        }
        Op::Read => {
            let data = info(
                name,
                st.namespaces.get(name).ok_or_else(VaultError::not_found)?,
            );
            Ok(response::data(&mut st.rng, data))
        }
        Op::Delete => {
            st.namespaces.remove(name);
            Ok(no_content())
        }
        Op::List => Err(VaultError::unsupported()),
    }
}
