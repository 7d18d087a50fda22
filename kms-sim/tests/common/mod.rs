//! Drives the router in-process: no sockets, no sleeps.

#![allow(dead_code)]

use axum::body::Body;
use axum::http::Request;
use axum::Router;
use serde_json::Value;
use tower::ServiceExt;

pub const ROOT: &str = "root";

pub struct Call<'a> {
    pub method: &'a str,
    pub path: &'a str,
    pub token: Option<&'a str>,
    pub ns: Option<&'a str>,
    pub body: Option<String>,
}

pub async fn raw(app: &Router, c: Call<'_>) -> (u16, String) {
    let mut req = Request::builder().method(c.method).uri(c.path);
    if let Some(t) = c.token {
        req = req.header("X-Vault-Token", t);
    }
    if let Some(ns) = c.ns {
        req = req.header("X-Vault-Namespace", ns);
    }
    let req = req
        .body(c.body.map(Body::from).unwrap_or_else(Body::empty))
        .unwrap();
    let resp = app.clone().oneshot(req).await.unwrap();
    let status = resp.status().as_u16();
    let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX)
        .await
        .unwrap();
    (status, String::from_utf8(bytes.to_vec()).unwrap())
}

pub async fn req(
    app: &Router,
    method: &str,
    path: &str,
    token: Option<&str>,
    ns: Option<&str>,
    body: Option<Value>,
) -> (u16, Value) {
    let call = Call {
        method,
        path,
        token,
        ns,
        body: body.map(|b| b.to_string()),
    };
    let (status, text) = raw(app, call).await;
    let v = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap()
    };
    (status, v)
}

pub async fn get(app: &Router, path: &str, token: &str) -> (u16, Value) {
    req(app, "GET", path, Some(token), None, None).await
}

pub async fn post(app: &Router, path: &str, token: &str, body: Value) -> (u16, Value) {
    req(app, "POST", path, Some(token), None, Some(body)).await
}

pub fn errors(v: &Value) -> Vec<String> {
    serde_json::from_value(v["errors"].clone()).unwrap_or_default()
}

pub fn b64(s: &str) -> String {
    base64::Engine::encode(&base64::engine::general_purpose::STANDARD, s)
}

pub fn unb64(s: &Value) -> String {
    let bytes = base64::Engine::decode(
        &base64::engine::general_purpose::STANDARD,
        s.as_str().unwrap(),
    )
    .unwrap();
    String::from_utf8(bytes).unwrap()
}

/// A Vault with transit at `transit` and approle at `approle`, like a prepared dev server.
pub async fn dev_vault(seed: u64) -> (kms_sim::VaultSim, Router) {
    let sim = kms_sim::VaultSim::new(seed, ROOT);
    let app = sim.router();
    assert_eq!(
        post(
            &app,
            "/v1/sys/mounts/transit",
            ROOT,
            serde_json::json!({"type": "transit"})
        )
        .await
        .0,
        204
    );
    assert_eq!(
        post(
            &app,
            "/v1/sys/auth/approle",
            ROOT,
            serde_json::json!({"type": "approle"})
        )
        .await
        .0,
        204
    );
    (sim, app)
}

/// Creates policy `name`, an approle role bound to it, and logs in; returns the client token.
pub async fn approle_token(app: &Router, ns: Option<&str>, name: &str, hcl: &str) -> String {
    let p = |path: String, body: Value| async move {
        req(app, "POST", &path, Some(ROOT), ns, Some(body)).await
    };
    assert_eq!(
        p(
            format!("/v1/sys/policies/acl/{name}"),
            serde_json::json!({"policy": hcl})
        )
        .await
        .0,
        204
    );
    let role = format!("/v1/auth/approle/role/{name}");
    assert_eq!(
        p(
            role.clone(),
            serde_json::json!({"token_policies": [name], "token_ttl": "1h"})
        )
        .await
        .0,
        204
    );
    let (s, r) = req(app, "GET", &format!("{role}/role-id"), Some(ROOT), ns, None).await;
    assert_eq!(s, 200, "{r}");
    let (s, sid) = p(format!("{role}/secret-id"), serde_json::json!({})).await;
    assert_eq!(s, 200, "{sid}");
    let login =
        serde_json::json!({"role_id": r["data"]["role_id"], "secret_id": sid["data"]["secret_id"]});
    let (s, auth) = req(app, "POST", "/v1/auth/approle/login", None, ns, Some(login)).await;
    assert_eq!(s, 200, "{auth}");
    auth["auth"]["client_token"].as_str().unwrap().to_string()
}
