mod common;

use common::*;
use serde_json::json;

const WEKA_POLICY: &str = r#"
# the cluster may use its own key, and nothing else
path "transit/encrypt/weka" { capabilities = ["update"] }
path "transit/decrypt/weka" { capabilities = ["update"] }
"#;

#[tokio::test(start_paused = true)]
async fn approle_login_good_and_bad() {
    let (_sim, app) = dev_vault(4).await;
    post(&app, "/v1/transit/keys/weka", ROOT, json!({})).await;
    post(&app, "/v1/transit/keys/other", ROOT, json!({})).await;
    let token = approle_token(&app, None, "weka", WEKA_POLICY).await;

    let (s, look) = get(&app, "/v1/auth/token/lookup-self", &token).await;
    assert_eq!(s, 200, "{look}");
    assert_eq!(look["data"]["policies"], json!(["default", "weka"]));
    assert_eq!(look["data"]["ttl"], 3600);
    assert_eq!(look["data"]["id"], token.as_str());

    let (s, _) = post(
        &app,
        "/v1/transit/encrypt/weka",
        &token,
        json!({"plaintext": b64("x")}),
    )
    .await;
    assert_eq!(s, 200);
    let (s, e) = post(
        &app,
        "/v1/transit/encrypt/other",
        &token,
        json!({"plaintext": b64("x")}),
    )
    .await;
    // A live token refused by its policies: OpenBao's multierror text.
    assert_eq!(
        (s, errors(&e)),
        (
            403,
            vec!["1 error occurred:\n\t* permission denied\n\n".to_string()]
        )
    );
    assert_eq!(get(&app, "/v1/transit/keys/weka", &token).await.0, 403);

    let (_, rid) = get(&app, "/v1/auth/approle/role/weka/role-id", ROOT).await;
    let role_id = rid["data"]["role_id"].clone();
    let login = |body| {
        req(
            &app,
            "POST",
            "/v1/auth/approle/login",
            None,
            None,
            Some(body),
        )
    };
    let (s, e) = login(json!({"role_id": role_id, "secret_id": "wrong"})).await;
    assert_eq!(
        (s, errors(&e)),
        (400, vec!["invalid role or secret ID".to_string()])
    );
    let (s, e) = login(json!({"role_id": "nope", "secret_id": "wrong"})).await;
    assert_eq!(
        (s, errors(&e)),
        (400, vec!["invalid role or secret ID".to_string()])
    );
    let (s, e) = login(json!({"secret_id": "x"})).await;
    assert_eq!((s, errors(&e)), (400, vec!["missing role_id".to_string()]));

    // A secret-id limited to one use logs in once.
    let (_, sid) = post(
        &app,
        "/v1/auth/approle/role/weka/secret-id",
        ROOT,
        json!({"num_uses": 1}),
    )
    .await;
    let body = json!({"role_id": role_id, "secret_id": sid["data"]["secret_id"]});
    let (s, auth) = login(body.clone()).await;
    assert_eq!(s, 200);
    assert_eq!(auth["data"], serde_json::Value::Null);
    assert_eq!(auth["auth"]["token_policies"], json!(["default", "weka"]));
    assert_eq!(auth["auth"]["metadata"]["role_name"], "weka");
    assert_eq!(auth["auth"]["lease_duration"], 3600);
    assert_eq!(login(body).await.0, 400);
}

#[tokio::test]
async fn create_capability_gates_key_creation() {
    let (_sim, app) = dev_vault(5).await;
    let update_only = approle_token(
        &app,
        None,
        "u",
        r#"path "transit/encrypt/*" { capabilities = ["update"] }"#,
    )
    .await;
    let creator = approle_token(
        &app,
        None,
        "c",
        r#"path "transit/encrypt/*" { capabilities = ["create", "update"] }"#,
    )
    .await;
    let (s, _) = post(
        &app,
        "/v1/transit/encrypt/fresh",
        &update_only,
        json!({"plaintext": b64("x")}),
    )
    .await;
    assert_eq!(s, 403);
    assert_eq!(get(&app, "/v1/transit/keys/fresh", ROOT).await.0, 404);
    let (s, out) = post(
        &app,
        "/v1/transit/encrypt/fresh",
        &creator,
        json!({"plaintext": b64("x")}),
    )
    .await;
    assert_eq!(s, 200, "{out}");
    assert_eq!(get(&app, "/v1/transit/keys/fresh", ROOT).await.0, 200);
    // Once the key exists, `update` is enough.
    assert_eq!(
        post(
            &app,
            "/v1/transit/encrypt/fresh",
            &update_only,
            json!({"plaintext": b64("x")})
        )
        .await
        .0,
        200
    );
    let deny = approle_token(
        &app,
        None,
        "d",
        r#"path "transit/*" { capabilities = ["update"] }
        path "transit/encrypt/fresh" { capabilities = ["deny"] }"#,
    )
    .await;
    assert_eq!(
        post(
            &app,
            "/v1/transit/encrypt/fresh",
            &deny,
            json!({"plaintext": b64("x")})
        )
        .await
        .0,
        403
    );
    assert_eq!(
        post(
            &app,
            "/v1/transit/decrypt/fresh",
            &deny,
            json!({"ciphertext": "vault:v1:AAAA"})
        )
        .await
        .0,
        400
    );
}

#[tokio::test]
async fn policies_crud_and_bad_hcl() {
    let (_sim, app) = dev_vault(6).await;
    let (s, e) = post(
        &app,
        "/v1/sys/policies/acl/bad",
        ROOT,
        json!({"policy": "path \"a\" { capabilities = [\"fly\"] }"}),
    )
    .await;
    assert_eq!(s, 400);
    assert!(errors(&e)[0].starts_with("failed to parse policy: "), "{e}");
    let (s, _) = req(
        &app,
        "PUT",
        "/v1/sys/policies/acl/p1",
        Some(ROOT),
        None,
        Some(json!({"policy": WEKA_POLICY})),
    )
    .await;
    assert_eq!(s, 204);
    let (s, p) = get(&app, "/v1/sys/policies/acl/p1", ROOT).await;
    assert_eq!(
        (s, p["data"]["name"].clone(), p["data"]["policy"].clone()),
        (200, json!("p1"), json!(WEKA_POLICY))
    );
    let (s, p) = get(&app, "/v1/sys/policy/p1", ROOT).await;
    assert_eq!((s, p["data"]["rules"].clone()), (200, json!(WEKA_POLICY)));
    assert_eq!(
        req(
            &app,
            "DELETE",
            "/v1/sys/policies/acl/p1",
            Some(ROOT),
            None,
            None
        )
        .await
        .0,
        204
    );
    assert_eq!(get(&app, "/v1/sys/policies/acl/p1", ROOT).await.0, 404);
    assert_eq!(
        req(
            &app,
            "DELETE",
            "/v1/sys/policies/acl/default",
            Some(ROOT),
            None,
            None
        )
        .await
        .0,
        400
    );
}

#[tokio::test(start_paused = true)]
async fn tokens_expire_in_simulated_time() {
    let (_sim, app) = dev_vault(7).await;
    let (s, created) = post(
        &app,
        "/v1/auth/token/create",
        ROOT,
        json!({"policies": ["weka"], "ttl": "1h"}),
    )
    .await;
    assert_eq!(s, 200, "{created}");
    assert_eq!(created["auth"]["policies"], json!(["default", "weka"]));
    let token = created["auth"]["client_token"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(get(&app, "/v1/auth/token/lookup-self", &token).await.0, 200);
    tokio::time::advance(std::time::Duration::from_secs(3599)).await;
    let (_, look) = get(&app, "/v1/auth/token/lookup-self", &token).await;
    assert_eq!(look["data"]["ttl"], 1);
    tokio::time::advance(std::time::Duration::from_secs(2)).await;
    let (s, e) = get(&app, "/v1/auth/token/lookup-self", &token).await;
    assert_eq!(
        (s, errors(&e)),
        (403, vec!["permission denied".to_string()])
    );
    // A non-root token cannot mint tokens with policies it does not hold.
    let weak = approle_token(
        &app,
        None,
        "weak",
        r#"path "auth/token/create" { capabilities = ["update"] }"#,
    )
    .await;
    let (s, _) = post(
        &app,
        "/v1/auth/token/create",
        &weak,
        json!({"policies": ["root"]}),
    )
    .await;
    assert_eq!(s, 400);
}

#[tokio::test]
async fn tokens_via_bearer_and_missing_tokens() {
    let (_sim, app) = dev_vault(8).await;
    assert_eq!(
        req(&app, "GET", "/v1/auth/token/lookup-self", None, None, None)
            .await
            .0,
        403
    );
    assert_eq!(
        get(&app, "/v1/auth/token/lookup-self", "forged").await.0,
        403
    );
    let request = axum::http::Request::builder()
        .uri("/v1/auth/token/lookup-self")
        .header("Authorization", "Bearer root")
        .body(axum::body::Body::empty())
        .unwrap();
    let resp = tower::ServiceExt::oneshot(app.clone(), request)
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
}
