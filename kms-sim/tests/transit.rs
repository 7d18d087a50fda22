mod common;

use common::*;
use serde_json::json;

#[tokio::test]
async fn encrypt_decrypt_rotate_rewrap_and_min_decryption_version() {
    let (_sim, app) = dev_vault(1).await;
    let (s, body) = post(
        &app,
        "/v1/transit/keys/weka",
        ROOT,
        json!({"type": "aes256-gcm96"}),
    )
    .await;
    // OpenBao 2.x answers a create with the key, as a read does.
    assert_eq!(
        (
            s,
            body["data"]["name"].clone(),
            body["data"]["latest_version"].clone()
        ),
        (200, json!("weka"), json!(1))
    );
    // Creating it again changes nothing.
    let (s, again) = post(&app, "/v1/transit/keys/weka", ROOT, json!({})).await;
    assert_eq!(
        (s, again["data"]["latest_version"].clone()),
        (200, json!(1))
    );

    let (s, enc) = post(
        &app,
        "/v1/transit/encrypt/weka",
        ROOT,
        json!({"plaintext": b64("dek-1")}),
    )
    .await;
    assert_eq!(s, 200, "{enc}");
    for field in [
        "request_id",
        "lease_id",
        "renewable",
        "lease_duration",
        "wrap_info",
        "warnings",
        "auth",
    ] {
        assert!(enc.get(field).is_some(), "envelope lacks {field}");
    }
    let v1 = enc["data"]["ciphertext"].as_str().unwrap().to_string();
    assert!(v1.starts_with("vault:v1:"), "{v1}");
    assert_eq!(enc["data"]["key_version"], 1);

    let (s, dec) = post(
        &app,
        "/v1/transit/decrypt/weka",
        ROOT,
        json!({"ciphertext": v1}),
    )
    .await;
    assert_eq!(s, 200);
    assert_eq!(unb64(&dec["data"]["plaintext"]), "dek-1");

    let (s, rot) = post(&app, "/v1/transit/keys/weka/rotate", ROOT, json!({})).await;
    assert_eq!(s, 200);
    assert_eq!(rot["data"]["latest_version"], 2);
    let (_, enc2) = post(
        &app,
        "/v1/transit/encrypt/weka",
        ROOT,
        json!({"plaintext": b64("dek-2")}),
    )
    .await;
    assert!(enc2["data"]["ciphertext"]
        .as_str()
        .unwrap()
        .starts_with("vault:v2:"));
    // An explicit older version still encrypts.
    let (_, old) = post(
        &app,
        "/v1/transit/encrypt/weka",
        ROOT,
        json!({"plaintext": b64("x"), "key_version": 1}),
    )
    .await;
    assert_eq!(old["data"]["key_version"], 1);

    let (s, rw) = post(
        &app,
        "/v1/transit/rewrap/weka",
        ROOT,
        json!({"ciphertext": v1}),
    )
    .await;
    assert_eq!(s, 200);
    let v2 = rw["data"]["ciphertext"].as_str().unwrap().to_string();
    assert!(v2.starts_with("vault:v2:"));
    assert_eq!(rw["data"]["key_version"], 2);

    let (s, cfg) = post(
        &app,
        "/v1/transit/keys/weka/config",
        ROOT,
        json!({"min_decryption_version": 3}),
    )
    .await;
    assert_eq!(s, 400);
    assert_eq!(
        errors(&cfg),
        vec!["cannot set min decryption version of 3, latest key version is 2".to_string()]
    );
    let (s, cfg) = post(
        &app,
        "/v1/transit/keys/weka/config",
        ROOT,
        json!({"min_decryption_version": 2}),
    )
    .await;
    assert_eq!(s, 200);
    assert_eq!(cfg["data"]["min_decryption_version"], 2);

    let (s, e) = post(
        &app,
        "/v1/transit/decrypt/weka",
        ROOT,
        json!({"ciphertext": v1}),
    )
    .await;
    assert_eq!(s, 400);
    assert_eq!(
        errors(&e),
        ["ciphertext or signature version is disallowed by policy (too old)"]
    );
    let (s, dec) = post(
        &app,
        "/v1/transit/decrypt/weka",
        ROOT,
        json!({"ciphertext": v2}),
    )
    .await;
    assert_eq!(s, 200);
    assert_eq!(unb64(&dec["data"]["plaintext"]), "dek-1");

    let (s, read) = get(&app, "/v1/transit/keys/weka", ROOT).await;
    assert_eq!(s, 200);
    let d = &read["data"];
    assert_eq!(
        (
            d["name"].as_str(),
            d["type"].as_str(),
            d["latest_version"].as_u64()
        ),
        (Some("weka"), Some("aes256-gcm96"), Some(2))
    );
    // min_decryption_version is 2: OpenBao lists only the versions that still decrypt.
    assert_eq!(d["keys"].as_object().unwrap().len(), 1);
    assert_eq!(d["keys"]["2"], 1_767_225_600u64);

    let (s, list) = get(&app, "/v1/transit/keys?list=true", ROOT).await;
    assert_eq!((s, list["data"]["keys"].clone()), (200, json!(["weka"])));
    let (s, list) = req(&app, "LIST", "/v1/transit/keys", Some(ROOT), None, None).await;
    assert_eq!((s, list["data"]["keys"].clone()), (200, json!(["weka"])));

    let (s, missing) = get(&app, "/v1/transit/keys/nope", ROOT).await;
    assert_eq!((s, missing), (404, json!({"errors": []})));
}

#[tokio::test]
async fn decrypt_errors_are_vault_shaped() {
    let (_sim, app) = dev_vault(2).await;
    for k in ["a", "b"] {
        assert_eq!(
            post(&app, &format!("/v1/transit/keys/{k}"), ROOT, json!({}))
                .await
                .0,
            200
        );
    }
    let (_, enc) = post(
        &app,
        "/v1/transit/encrypt/a",
        ROOT,
        json!({"plaintext": b64("secret")}),
    )
    .await;
    let ct = enc["data"]["ciphertext"].as_str().unwrap();
    let cases = [
        ("b", json!(ct), "cipher: message authentication failed"),
        ("nokey", json!(ct), "encryption key not found"),
        ("a", json!("v1:abc"), "invalid ciphertext: no prefix"),
        (
            "a",
            json!("vault:v1:!!notbase64!!"),
            "invalid ciphertext: could not decode base64",
        ),
        (
            "a",
            json!(ct.replacen("vault:v1:", "vault:v9:", 1)),
            "invalid ciphertext: version is too new",
        ),
        (
            "a",
            json!("vault:v1"),
            "invalid ciphertext: wrong number of fields",
        ),
        ("a", json!("vault:v1:AAAA"), "invalid ciphertext length"),
        ("a", json!(42), "invalid ciphertext: no prefix"),
    ];
    for (key, ciphertext, want) in cases {
        let (s, e) = post(
            &app,
            &format!("/v1/transit/decrypt/{key}"),
            ROOT,
            json!({"ciphertext": ciphertext}),
        )
        .await;
        assert_eq!(
            (s, errors(&e)),
            (400, vec![want.to_string()]),
            "key {key}, ciphertext {ciphertext}"
        );
    }
    // v0 is OpenBao's alias of v1.
    let (s, dec) = post(
        &app,
        "/v1/transit/decrypt/a",
        ROOT,
        json!({"ciphertext": ct.replacen("vault:v1:", "vault:v0:", 1)}),
    )
    .await;
    assert_eq!(
        (s, unb64(&dec["data"]["plaintext"])),
        (200, "secret".into())
    );
    let (s, e) = post(
        &app,
        "/v1/transit/encrypt/a",
        ROOT,
        json!({"plaintext": "not base64!"}),
    )
    .await;
    assert_eq!(
        (s, errors(&e)),
        (400, vec!["illegal base64 data at input byte 3".to_string()])
    );
    let (s, e) = post(
        &app,
        "/v1/transit/keys/c",
        ROOT,
        json!({"type": "rsa-2048"}),
    )
    .await;
    assert_eq!(s, 400, "{e}");
    let (s, e) = post(
        &app,
        "/v1/transit/rewrap/nokey",
        ROOT,
        json!({"ciphertext": ct}),
    )
    .await;
    assert_eq!(
        (s, errors(&e)),
        (400, vec!["encryption key not found".to_string()])
    );
    // Errors never echo what was sent.
    let (_, e) = post(
        &app,
        "/v1/transit/decrypt/a",
        ROOT,
        json!({"ciphertext": "vault:v1:c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0"}),
    )
    .await;
    assert!(!e.to_string().contains("c2VjcmV0"), "{e}");
}

#[tokio::test]
async fn batch_with_a_failing_item() {
    let (_sim, app) = dev_vault(3).await;
    let batch = json!({"batch_input": [
        {"plaintext": b64("one")}, {"plaintext": "%%%"}, {"plaintext": b64("three"), "reference": "r3"}
    ]});
    let (s, out) = post(&app, "/v1/transit/encrypt/k", ROOT, batch).await;
    assert_eq!(s, 400, "{out}");
    let results = out["data"]["batch_results"].as_array().unwrap();
    assert_eq!(results.len(), 3);
    assert!(results[0]["ciphertext"]
        .as_str()
        .unwrap()
        .starts_with("vault:v1:"));
    assert_eq!(results[1]["error"], "illegal base64 data at input byte 0");
    assert_eq!(results[0]["reference"], "");
    assert_eq!(results[2]["reference"], "r3");

    let good = json!({"batch_input": [{"ciphertext": results[2]["ciphertext"]}, {"ciphertext": results[0]["ciphertext"]}]});
    let (s, out) = post(&app, "/v1/transit/decrypt/k", ROOT, good).await;
    assert_eq!(s, 200, "{out}");
    let r = &out["data"]["batch_results"];
    assert_eq!(
        (unb64(&r[0]["plaintext"]), unb64(&r[1]["plaintext"])),
        ("three".to_string(), "one".to_string())
    );

    post(&app, "/v1/transit/keys/k/rotate", ROOT, json!({})).await;
    let rewrap = json!({"batch_input": [{"ciphertext": results[0]["ciphertext"]}, {"ciphertext": "garbage"}]});
    let (s, out) = post(&app, "/v1/transit/rewrap/k", ROOT, rewrap).await;
    // OpenBao answers 200 to a rewrap batch even when items fail.
    assert_eq!(s, 200);
    assert_eq!(out["data"]["batch_results"][0]["key_version"], 2);
    assert_eq!(
        out["data"]["batch_results"][1]["error"],
        "invalid ciphertext: no prefix"
    );

    let (s, e) = post(
        &app,
        "/v1/transit/encrypt/k",
        ROOT,
        json!({"batch_input": []}),
    )
    .await;
    assert_eq!(
        (s, errors(&e)),
        (400, vec!["missing batch input to process".to_string()])
    );
}
