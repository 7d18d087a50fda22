//! The built-in token auth method at `auth/token/`.

use std::collections::BTreeMap;

use serde_json::{json, Value};
use tokio::time::Instant;

use super::acl::cap;
use super::response::{self, no_content, VResult, VaultError};
use super::state::{parse_duration, rfc3339, string_list, Grant, State, DEFAULT_TTL_SECS};
use super::{allowed, Op, Req};

pub fn handle(st: &mut State, req: &Req) -> VResult {
    let sub = req
        .path
        .trim_start_matches("auth/token")
        .trim_start_matches('/');
    match (sub, req.op) {
        ("lookup-self", Op::Read) => lookup_self(st, req),
        ("create" | "create-orphan", Op::Update) => create(st, req, sub == "create-orphan"),
        ("revoke-self", Op::Update) => {
            if let Some(space) = st.namespaces.get_mut(&req.caller.token_ns) {
                space.tokens.remove(&req.caller.token);
            }
            Ok(no_content())
        }
        ("lookup-self" | "create" | "create-orphan" | "revoke-self", _) => {
            Err(VaultError::unsupported())
        }
        _ => Err(VaultError::no_route(req.path)),
    }
}

fn lookup_self(st: &mut State, req: &Req) -> VResult {
    let now = st.now_secs();
    let now_instant = Instant::now();
    let token = st
        .live_token(&req.caller.token_ns, &req.caller.token)
        .ok_or_else(VaultError::denied)?;
    let remaining = token
        .expires
        .map_or(0, |e| e.saturating_duration_since(now_instant).as_secs());
    let expire_time = token.expires.map(|_| rfc3339(now + remaining));
    let meta = if token.meta.is_empty() {
        Value::Null
    } else {
        json!(token.meta)
    };
    let data = json!({
        "accessor": token.accessor,
        "creation_time": token.issued_secs,
        "creation_ttl": token.ttl_secs,
        "display_name": token.display_name,
        "entity_id": token.entity_id,
        "expire_time": expire_time,
        "explicit_max_ttl": 0,
        "id": req.caller.token,
        "issue_time": rfc3339(token.issued_secs),
        "meta": meta,
        "num_uses": 0,
        "orphan": token.orphan,
        "path": token.path,
        "policies": token.policies,
        "renewable": token.renewable,
        "ttl": remaining,
        "type": "service",
    });
    Ok(response::data(&mut st.rng, data))
}

fn create(st: &mut State, req: &Req, orphan: bool) -> VResult {
    let body = &req.body;
    let bad = |e: String| VaultError::bad_request(e);
    let requested = match body.get("policies") {
        None | Some(Value::Null) => None,
        Some(v) => Some(string_list(v).map_err(bad)?),
    };
    let privileged = req.caller.root || allowed(st, req.ns, &req.caller, req.path, cap::SUDO);
    let mut policies = match requested {
        Some(p) if !p.is_empty() => p,
        _ => req.caller.policies.clone(),
    };
    if !privileged
        && policies
            .iter()
            .any(|p| p != "default" && !req.caller.policies.contains(p))
    {
        return Err(VaultError::bad_request(
            "child policies must be subset of parent",
        ));
    }
    if orphan && !privileged {
        return Err(VaultError::acl_denied());
    }
    let is_root = policies.iter().any(|p| p == "root");
    if is_root {
        policies = vec!["root".to_string()];
    } else if body.get("no_default_policy").and_then(Value::as_bool) != Some(true) {
        policies.push("default".to_string());
    }
    let ttl = parse_duration(body.get("ttl").unwrap_or(&Value::Null)).map_err(bad)?;
    let period = parse_duration(body.get("period").unwrap_or(&Value::Null)).map_err(bad)?;
    let ttl_secs = match (period, ttl) {
        (p, _) if p > 0 => p,
        (_, t) if t > 0 => t,
        // A root token made without a ttl never expires, like the dev root token.
        _ if is_root => 0,
        _ => DEFAULT_TTL_SECS,
    };
    let display = body
        .get("display_name")
        .and_then(Value::as_str)
        .unwrap_or("");
    let meta: BTreeMap<String, String> = match body.get("meta") {
        None | Some(Value::Null) => BTreeMap::new(),
        Some(Value::Object(m)) => m
            .iter()
            .map(|(k, v)| v.as_str().map(|s| (k.clone(), s.to_string())))
            .collect::<Option<_>>()
            .ok_or_else(|| VaultError::bad_request("meta values must be strings"))?,
        Some(_) => return Err(VaultError::bad_request("meta must be an object")),
    };
    let grant = Grant {
        policies,
        ttl_secs,
        display_name: if display.is_empty() {
            "token".to_string()
        } else {
            format!("token-{display}")
        },
        path: format!(
            "auth/token/{}",
            if orphan { "create-orphan" } else { "create" }
        ),
        meta,
        renewable: body
            .get("renewable")
            .and_then(Value::as_bool)
            .unwrap_or(true),
        orphan,
        entity_id: String::new(),
    };
    let auth = st.issue_token(req.ns, grant);
    Ok(response::auth(&mut st.rng, auth))
}
