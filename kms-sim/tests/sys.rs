mod common;

use common::*;
use serde_json::json;

#[tokio::test]
async fn sealed_vault_answers_503() {
    let (sim, app) = dev_vault(10).await;
    post(&app, "/v1/transit/keys/k", ROOT, json!({})).await;
    let (s, h) = get(&app, "/v1/sys/health", ROOT).await;
    assert_eq!(
        (s, h["sealed"].clone(), h["standby"].clone()),
        (200, json!(false), json!(false))
    );

    assert_eq!(
        req(&app, "PUT", "/v1/sys/seal", Some(ROOT), None, None)
            .await
            .0,
        204
    );
    assert!(sim.is_sealed());
    let (s, h) = req(&app, "GET", "/v1/sys/health", None, None, None).await;
    assert_eq!(
        (s, h["sealed"].clone(), h["initialized"].clone()),
        (503, json!(true), json!(true))
    );
    let (s, e) = post(
        &app,
        "/v1/transit/encrypt/k",
        ROOT,
        json!({"plaintext": b64("x")}),
    )
    .await;
    assert_eq!((s, errors(&e)), (503, vec!["Vault is sealed".to_string()]));
    let (s, st) = get(&app, "/v1/sys/seal-status", ROOT).await;
    assert_eq!(
        (s, st["sealed"].clone(), st.get("cluster_id").is_none()),
        (200, json!(true), true)
    );

    let (s, _) = req(
        &app,
        "PUT",
        "/v1/sys/unseal",
        None,
        None,
        Some(json!({"key": "wrong"})),
    )
    .await;
    assert_eq!(s, 400);
    assert!(sim.is_sealed());
    let (s, st) = req(
        &app,
        "PUT",
        "/v1/sys/unseal",
        None,
        None,
        Some(json!({"key": sim.unseal_key()})),
    )
    .await;
    assert_eq!((s, st["sealed"].clone()), (200, json!(false)));
    assert_eq!(
        post(
            &app,
            "/v1/transit/encrypt/k",
            ROOT,
            json!({"plaintext": b64("x")})
        )
        .await
        .0,
        200
    );

    sim.seal();
    assert_eq!(get(&app, "/v1/sys/health", ROOT).await.0, 503);
    sim.unseal();
    assert_eq!(get(&app, "/v1/sys/health", ROOT).await.0, 200);
    assert!(sim.requests_served() >= 10);
}

#[tokio::test]
async fn namespaces_isolate_keys_and_tokens() {
    let sim = kms_sim::VaultSim::new(11, ROOT);
    let app = sim.router();
    for ns in ["tenant-a", "tenant-b"] {
        assert_eq!(
            post(&app, &format!("/v1/sys/namespaces/{ns}"), ROOT, json!({}))
                .await
                .0,
            200
        );
        let r =
            |path: &'static str, body| req(&app, "POST", path, Some(ROOT), Some(ns), Some(body));
        assert_eq!(
            r("/v1/sys/mounts/transit", json!({"type": "transit"}))
                .await
                .0,
            204
        );
        assert_eq!(
            r("/v1/sys/auth/approle", json!({"type": "approle"}))
                .await
                .0,
            204
        );
        assert_eq!(r("/v1/transit/keys/fs", json!({})).await.0, 200);
    }
    for bad in ["root", "sys", "has%20space", "auth"] {
        assert_eq!(
            post(&app, &format!("/v1/sys/namespaces/{bad}"), ROOT, json!({}))
                .await
                .0,
            400,
            "{bad}"
        );
    }
    let policy = r#"path "transit/+/fs" { capabilities = ["update"] }"#;
    let token_a = approle_token(&app, Some("tenant-a"), "fs", policy).await;

    let app_ref = &app;
    let enc = |ns, token: String| async move {
        req(
            app_ref,
            "POST",
            "/v1/transit/encrypt/fs",
            Some(&token),
            ns,
            Some(json!({"plaintext": b64("dek")})),
        )
        .await
    };
    let (s, out) = enc(Some("tenant-a"), token_a.clone()).await;
    assert_eq!(s, 200, "{out}");
    let ct = out["data"]["ciphertext"].clone();
    // Same path prefix form as the header.
    let (s, dec) = post(
        &app,
        "/v1/tenant-a/transit/decrypt/fs",
        &token_a,
        json!({"ciphertext": ct}),
    )
    .await;
    assert_eq!(
        (s, unb64(&dec["data"]["plaintext"])),
        (200, "dek".to_string())
    );
    // Tenant B's key of the same name is different key material.
    let (s, e) = req(
        &app,
        "POST",
        "/v1/transit/decrypt/fs",
        Some(ROOT),
        Some("tenant-b"),
        Some(json!({"ciphertext": ct})),
    )
    .await;
    assert_eq!(
        (s, errors(&e)),
        (
            400,
            vec!["cipher: message authentication failed".to_string()]
        )
    );
    // Tenant A's token means nothing in tenant B, nor in the root namespace.
    assert_eq!(enc(Some("tenant-b"), token_a.clone()).await.0, 403);
    assert_eq!(enc(None, token_a.clone()).await.0, 403);
    // The root namespace has no transit mount at all.
    let (s, e) = post(
        &app,
        "/v1/transit/encrypt/fs",
        ROOT,
        json!({"plaintext": b64("x")}),
    )
    .await;
    assert_eq!(s, 404);
    assert!(
        errors(&e)[0].starts_with("no handler for route \"transit/encrypt/fs\""),
        "{e}"
    );
    let (s, e) = req(
        &app,
        "GET",
        "/v1/transit/keys/fs",
        Some(ROOT),
        Some("tenant-z"),
        None,
    )
    .await;
    assert_eq!(s, 404);
    assert!(
        errors(&e)[0].contains("namespace \"tenant-z\" not found"),
        "{e}"
    );
}

#[tokio::test]
async fn routing_errors() {
    let (_sim, app) = dev_vault(12).await;
    let (s, e) = post(
        &app,
        "/v1/sys/mounts/transit",
        ROOT,
        json!({"type": "transit"}),
    )
    .await;
    assert_eq!(
        (s, errors(&e)),
        (400, vec!["path is already in use at transit/".to_string()])
    );
    assert_eq!(
        post(
            &app,
            "/v1/sys/mounts/weka-transit",
            ROOT,
            json!({"type": "transit"})
        )
        .await
        .0,
        204
    );
    assert_eq!(
        post(&app, "/v1/weka-transit/keys/k", ROOT, json!({}))
            .await
            .0,
        200
    );
    let (s, e) = get(&app, "/v1/nothing/here", ROOT).await;
    assert_eq!(
        (s, errors(&e)),
        (
            404,
            vec!["no handler for route \"nothing/here\". route entry not found.".to_string()]
        )
    );
    let (s, e) = get(&app, "/v1/transit/encrypt/k", ROOT).await;
    assert_eq!(
        (s, errors(&e)),
        (405, vec!["unsupported operation".to_string()])
    );
    assert_eq!(
        req(&app, "PATCH", "/v1/transit/keys/k", Some(ROOT), None, None)
            .await
            .0,
        405
    );
    // Raw bodies: one that is not JSON, one that is JSON but not an object.
    let encrypt_text = |body: &str| {
        let call = Call {
            method: "POST",
            path: "/v1/transit/encrypt/k",
            token: Some(ROOT),
            ns: None,
            body: Some(body.into()),
        };
        raw(&app, call)
    };
    let (s, text) = encrypt_text("{not json").await;
    assert_eq!(s, 400);
    assert!(text.contains("failed to parse JSON input: "), "{text}");
    let (s, text) = encrypt_text("[1]").await;
    assert_eq!(s, 400, "{text}");
    let (s, m) = get(&app, "/v1/sys/mounts", ROOT).await;
    assert_eq!(
        (s, m["data"]["weka-transit/"]["type"].clone()),
        (200, json!("transit"))
    );
}

async fn script(seed: u64) -> Vec<String> {
    let sim = kms_sim::VaultSim::new(seed, ROOT);
    let app = sim.router();
    let calls: Vec<(&str, &str, Option<serde_json::Value>)> = vec![
        (
            "POST",
            "/v1/sys/mounts/transit",
            Some(json!({"type": "transit"})),
        ),
        (
            "POST",
            "/v1/sys/auth/approle",
            Some(json!({"type": "approle"})),
        ),
        ("POST", "/v1/transit/keys/k", None),
        (
            "POST",
            "/v1/transit/encrypt/k",
            Some(json!({"plaintext": b64("dek")})),
        ),
        ("POST", "/v1/transit/keys/k/rotate", None),
        (
            "POST",
            "/v1/transit/encrypt/k",
            Some(json!({"batch_input": [{"plaintext": b64("a")}, {"plaintext": b64("b")}]})),
        ),
        (
            "POST",
            "/v1/auth/approle/role/r",
            Some(json!({"token_policies": ["p"]})),
        ),
        ("GET", "/v1/auth/approle/role/r/role-id", None),
        ("POST", "/v1/auth/approle/role/r/secret-id", None),
        ("POST", "/v1/auth/token/create", Some(json!({"ttl": "1h"}))),
        ("GET", "/v1/sys/health", None),
    ];
    let mut out = Vec::new();
    for (method, path, body) in calls {
        let call = Call {
            method,
            path,
            token: Some(ROOT),
            ns: None,
            body: body.map(|b| b.to_string()),
        };
        let (status, text) = raw(&app, call).await;
        out.push(format!("{status} {text}"));
    }
    out
}

#[tokio::test(start_paused = true)]
async fn same_seed_same_bytes_other_seed_other_ciphertext() {
    let a = script(42).await;
    let b = script(42).await;
    assert_eq!(a, b);
    let c = script(43).await;
    assert_ne!(a[3], c[3], "ciphertext must depend on the seed");
    assert!(a[3].contains("vault:v1:"));
}
