//! Checks before a live run starts: is the Vault there, a version WEKA supports, unsealed,
//! does the admin token work, is the transit engine mounted, does the AppRole log in. Each
//! failure is its own [`PreflightError`] with a message that names the Vault and what to fix
//! (the CLI exits 2 with it). No token, role-id or secret-id is ever part of a message.

use std::time::Duration;

use cluster::http::HttpClient;
use cluster::net::TcpDialer;
use cluster::secret::Secret;
use serde_json::{json, Value};

use super::vault::{check_base, exchange, health, Answer, HealthError, SendError};

/// What the preflight learned about the Vault.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VaultInfo {
    /// As `sys/health` reports it, e.g. `2.7.2` or `1.14.8+ent`.
    pub version: String,
    pub flavour: Flavour,
}

/// Which server: major version 1 is HashiCorp Vault, 2 and later OpenBao.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavour {
    Vault,
    OpenBao,
}

/// The versions WEKA supports, as the messages say it.
pub const SUPPORTED: &str = "WEKA supports Vault 1.1.5–1.14.x and OpenBao 2.5.1 or later";

/// The auth path [`check`] logs in at with an AppRole.
pub const DEFAULT_APPROLE_PATH: &str = "approle";

/// A version string judged against WEKA's window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VersionVerdict {
    pub flavour: Flavour,
    pub supported: bool,
}

/// WEKA's window: Vault 1.1.5 ≤ v < 1.15.0, OpenBao ≥ 2.5.1. The numeric prefix counts
/// (`1.14.8+ent`, `2.5.1-beta`, `v1.13.0`); a missing minor or patch is 0. Major 0 is an
/// (unsupported) Vault. `Err` names a string that is not a version.
pub fn version_window(version: &str) -> Result<VersionVerdict, String> {
    let not_a_version = || format!("{version:?} is not a version number");
    let trimmed = version.trim();
    let trimmed = trimmed.strip_prefix(['v', 'V']).unwrap_or(trimmed);
    let end = trimmed
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(trimmed.len());
    let numeric = trimmed[..end].trim_end_matches('.');
    if numeric.is_empty() {
        return Err(not_a_version());
    }
    let mut parts = [0u64; 3];
    for (i, p) in numeric.split('.').enumerate() {
        if i >= 3 {
            break;
        }
        parts[i] = p.parse().map_err(|_| not_a_version())?;
    }
    let v = (parts[0], parts[1], parts[2]);
    Ok(if v.0 >= 2 {
        VersionVerdict {
            flavour: Flavour::OpenBao,
            supported: v >= (2, 5, 1),
        }
    } else {
        VersionVerdict {
            flavour: Flavour::Vault,
            supported: ((1, 1, 5)..(1, 15, 0)).contains(&v),
        }
    })
}

/// Why the preflight refused the Vault. Every variant has its own message (see `Display`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PreflightError {
    #[error("{0}")]
    BadUrl(String),
    #[error("Vault at {url} does not answer: {reason}")]
    NoAnswer { url: String, reason: String },
    /// A request that cannot be built, e.g. a token with a newline in it.
    #[error("cannot send a request to Vault at {url}: {what}")]
    Unsendable { url: String, what: String },
    #[error("{url} does not look like a Vault: {what}")]
    NotVault { url: String, what: String },
    #[error(
        "Vault at {url} reports version {version:?}, which is not a version number; {SUPPORTED}"
    )]
    BadVersion { url: String, version: String },
    #[error("Vault at {url} reports version {version}; {SUPPORTED}")]
    UnsupportedVersion { url: String, version: String },
    #[error(
        "Vault at {url} is not initialised: initialise it (operator init) and unseal it first"
    )]
    Uninitialised { url: String },
    #[error("Vault at {url} is sealed: unseal it first")]
    Sealed { url: String },
    #[error("Vault at {url} refused the admin token (HTTP {status}): the token was refused (wrong or expired token)")]
    TokenRefused { url: String, status: u16 },
    #[error("Vault at {url} does not let the admin token list its secrets engines (GET sys/mounts: {what}): the token needs read on sys/mounts")]
    MountsUnreadable { url: String, what: String },
    #[error("no transit engine is mounted at {mount}/ on {url} (mounted: {})", mounted.join(", "))]
    NoTransitMount {
        url: String,
        mount: String,
        mounted: Vec<String>,
    },
    #[error("the engine mounted at {mount}/ on {url} is of type {kind}, not transit")]
    NotTransit {
        url: String,
        mount: String,
        kind: String,
    },
    #[error("the AppRole login at {url} was refused: wrong role-id or secret-id")]
    AppRoleRefused { url: String },
    #[error("the AppRole login at {url} (POST auth/{path}/login) was refused with HTTP 403: is the AppRole auth method enabled at auth/{path}/?")]
    AppRoleNotEnabled { url: String, path: String },
    /// Any other answer: the request and what came back.
    #[error("Vault at {url}: {what}")]
    Unexpected { url: String, what: String },
}

/// One request's timeout.
const TIMEOUT: Duration = Duration::from_secs(10);
/// How long an unsealed node that is not active yet gets to become active: 60 polls
/// 500 ms apart.
const ELECTION_POLLS: u32 = 60;
const ELECTION_POLL: Duration = Duration::from_millis(500);

/// All checks, in order: (a) the URL answers, like a Vault; (b) its version is in WEKA's
/// window; (c) it is initialised and unsealed; (d) the admin token works (`lookup-self`);
/// (e) with `transit_mount`, a transit engine is mounted there; (f) with `approle`
/// (role-id, secret-id), an AppRole login at `auth/approle` succeeds (the token it yields is
/// revoked again; a secret-id limited in uses loses one).
pub async fn check(
    base: &str,
    admin_token: &Secret,
    transit_mount: Option<&str>,
    approle: Option<(&str, &Secret)>,
) -> Result<VaultInfo, PreflightError> {
    let url = check_base(base).map_err(PreflightError::BadUrl)?;
    let http = HttpClient::new(std::sync::Arc::new(TcpDialer), TIMEOUT);

    // (a) anything there, and a Vault?
    let h = health(&url).await.map_err(|e| match e {
        HealthError::NoAnswer { url, reason } => PreflightError::NoAnswer { url, reason },
        HealthError::NotVault { url, what } => PreflightError::NotVault { url, what },
    })?;

    // (b) the version window.
    let verdict = version_window(&h.version).map_err(|_| PreflightError::BadVersion {
        url: url.clone(),
        version: h.version.clone(),
    })?;
    if !verdict.supported {
        return Err(PreflightError::UnsupportedVersion {
            url,
            version: h.version,
        });
    }

    // (c) initialised and unsealed. A node unsealed a moment ago (raft) elects itself
    // before it serves: wait for that rather than refuse it.
    let mut h = h;
    for _ in 0..ELECTION_POLLS {
        if h.is_active() || h.sealed || !h.initialized {
            break;
        }
        tokio::time::sleep(ELECTION_POLL).await;
        h = health(&url).await.map_err(|e| PreflightError::Unexpected {
            url: url.clone(),
            what: e.to_string(),
        })?;
    }
    if h.status_code == 501 || !h.initialized {
        return Err(PreflightError::Uninitialised { url });
    }
    if h.status_code == 503 || h.sealed {
        return Err(PreflightError::Sealed { url });
    }

    // (d) the admin token. (lookup-self's answer holds the token itself: only its status
    // is used.)
    let a = call(
        &http,
        &url,
        "GET",
        "auth/token/lookup-self",
        Some(admin_token),
        None,
    )
    .await?;
    match a.status {
        200..=299 => {}
        // 403 "permission denied" for a wrong or expired token; 400 "missing client token"
        // for an empty one.
        400 | 401 | 403 => {
            return Err(PreflightError::TokenRefused {
                url,
                status: a.status,
            })
        }
        _ => {
            return Err(unexpected(
                &url,
                "GET auth/token/lookup-self",
                &a,
                &[admin_token],
            ))
        }
    }

    // (e) the transit engine.
    if let Some(mount) = transit_mount {
        check_transit(&http, &url, admin_token, mount).await?;
    }

    // (f) the AppRole.
    if let Some((role_id, secret_id)) = approle {
        check_approle(&url, DEFAULT_APPROLE_PATH, role_id, secret_id).await?;
    }

    Ok(VaultInfo {
        version: h.version,
        flavour: verdict.flavour,
    })
}

/// (e) alone: `GET sys/mounts` with the admin token, and `mount/` must be a transit engine.
pub async fn check_transit(
    http: &HttpClient,
    url: &str,
    admin_token: &Secret,
    mount: &str,
) -> Result<(), PreflightError> {
    let mount = mount.trim().trim_matches('/').to_string();
    let a = call(http, url, "GET", "sys/mounts", Some(admin_token), None).await?;
    if !a.is_success() {
        return Err(PreflightError::MountsUnreadable {
            url: url.to_string(),
            what: a.describe(&[admin_token]),
        });
    }
    let v = a.json().unwrap_or(Value::Null);
    // Mounts are under `data` (and, in older servers, at the top level too).
    let table = v
        .get("data")
        .and_then(Value::as_object)
        .or_else(|| v.as_object())
        .ok_or_else(|| PreflightError::Unexpected {
            url: url.to_string(),
            what: "GET sys/mounts answered without a mount table".into(),
        })?;
    let mut mounted: Vec<(String, String)> = table
        .iter()
        .filter_map(|(path, m)| {
            let kind = m.get("type")?.as_str()?;
            Some((path.clone(), kind.to_string()))
        })
        .collect();
    mounted.sort();
    let wanted = format!("{mount}/");
    match mounted.iter().find(|(path, _)| *path == wanted) {
        Some((_, kind)) if kind == "transit" => Ok(()),
        Some((_, kind)) => Err(PreflightError::NotTransit {
            url: url.to_string(),
            mount,
            kind: kind.clone(),
        }),
        None => Err(PreflightError::NoTransitMount {
            url: url.to_string(),
            mount,
            mounted: mounted.into_iter().map(|(p, _)| p).collect(),
        }),
    }
}

/// (f) alone: `POST auth/<path>/login` with the role-id and secret-id; on success the token
/// it yields is revoked again (best effort). A secret-id limited in uses loses one.
pub async fn check_approle(
    url: &str,
    path: &str,
    role_id: &str,
    secret_id: &Secret,
) -> Result<(), PreflightError> {
    let http = HttpClient::new(std::sync::Arc::new(TcpDialer), TIMEOUT);
    let path = path.trim().trim_matches('/');
    let role = Secret::new(role_id);
    let secrets = [&role, secret_id];
    let login = format!("auth/{path}/login");
    let a = call(
        &http,
        url,
        "POST",
        &login,
        None,
        Some(&json!({"role_id": role_id, "secret_id": secret_id.expose()})),
    )
    .await?;
    match a.status {
        200..=299 => {
            let token = a
                .json()
                .and_then(|v| v.pointer("/auth/client_token")?.as_str().map(Secret::new));
            match token {
                Some(token) => {
                    // Not to leave a token behind per preflight; its failure changes nothing.
                    let _ = call(
                        &http,
                        url,
                        "POST",
                        "auth/token/revoke-self",
                        Some(&token),
                        None,
                    )
                    .await;
                    Ok(())
                }
                None => Err(PreflightError::Unexpected {
                    url: url.to_string(),
                    what: format!("POST {login} answered HTTP {} without a token", a.status),
                }),
            }
        }
        // 400 "invalid role or secret ID" (also "missing secret_id" for an empty one).
        400 => Err(PreflightError::AppRoleRefused {
            url: url.to_string(),
        }),
        // What a path with no AppRole mounted answers.
        403 => Err(PreflightError::AppRoleNotEnabled {
            url: url.to_string(),
            path: path.to_string(),
        }),
        _ => Err(unexpected(url, &format!("POST {login}"), &a, &secrets)),
    }
}

/// One request; no answer at all is [`PreflightError::NoAnswer`].
async fn call(
    http: &HttpClient,
    url: &str,
    method: &str,
    path: &str,
    token: Option<&Secret>,
    body: Option<&Value>,
) -> Result<Answer, PreflightError> {
    exchange(http, url, method, path, token, body)
        .await
        .map_err(|e| match e {
            SendError::NoAnswer { url, reason } => PreflightError::NoAnswer { url, reason },
            SendError::Unsendable { url, what } => PreflightError::Unsendable { url, what },
        })
}

fn unexpected(url: &str, request: &str, a: &Answer, secrets: &[&Secret]) -> PreflightError {
    PreflightError::Unexpected {
        url: url.to_string(),
        what: format!("{request} answered {}", a.describe(secrets)),
    }
}

#[cfg(test)]
mod tests {
    use super::super::openbao::{free_port_pair, OpenBaoServer};
    use super::*;

    fn verdict(v: &str) -> (Flavour, bool) {
        let r = version_window(v).unwrap_or_else(|e| panic!("{v}: {e}"));
        (r.flavour, r.supported)
    }

    #[test]
    fn the_version_window() {
        use Flavour::{OpenBao, Vault};
        assert_eq!(verdict("1.1.4"), (Vault, false));
        assert_eq!(verdict("1.1.5"), (Vault, true));
        assert_eq!(verdict("1.9.0"), (Vault, true));
        assert_eq!(verdict("1.14.9"), (Vault, true));
        assert_eq!(verdict("1.14.8+ent"), (Vault, true));
        assert_eq!(verdict("v1.13.2"), (Vault, true));
        assert_eq!(verdict("1.15.0"), (Vault, false));
        assert_eq!(verdict("1.15"), (Vault, false));
        assert_eq!(verdict("1.0.9"), (Vault, false));
        assert_eq!(verdict("0.11.0"), (Vault, false));
        assert_eq!(verdict("2.5.0"), (OpenBao, false));
        assert_eq!(verdict("2.5.1"), (OpenBao, true));
        assert_eq!(verdict("2.5.1-beta"), (OpenBao, true));
        assert_eq!(verdict("2.7.2"), (OpenBao, true));
        assert_eq!(verdict("3.0.0"), (OpenBao, true));
        assert_eq!(verdict("2.10.0"), (OpenBao, true));
        for bad in ["garbage", "", "x1.2.3", "1..2", "99999999999999999999.1"] {
            let e = version_window(bad).unwrap_err();
            assert!(e.contains(&format!("{bad:?}")), "{bad}: {e}");
        }
    }

    #[test]
    fn messages() {
        let e = PreflightError::UnsupportedVersion {
            url: "http://v:8200".into(),
            version: "1.15.0".into(),
        };
        assert_eq!(
            e.to_string(),
            "Vault at http://v:8200 reports version 1.15.0; WEKA supports Vault 1.1.5–1.14.x \
             and OpenBao 2.5.1 or later"
        );
        let e = PreflightError::NoTransitMount {
            url: "http://v:8200".into(),
            mount: "weka".into(),
            mounted: vec!["cubbyhole/".into(), "secret/".into()],
        };
        assert_eq!(
            e.to_string(),
            "no transit engine is mounted at weka/ on http://v:8200 (mounted: cubbyhole/, secret/)"
        );
    }

    /// A dev OpenBao with transit at `transit/`, a kv engine at `kv/`, and an AppRole.
    struct Fixture {
        server: OpenBaoServer,
        role_id: String,
        secret_id: Secret,
    }

    async fn fixture() -> Fixture {
        let server = OpenBaoServer::dev(&super::super::openbao::test_bao_bin())
            .await
            .unwrap();
        let base = server.base();
        let http = HttpClient::new(std::sync::Arc::new(TcpDialer), TIMEOUT);
        let root = server.root_token().clone();
        let admin = |method: &'static str, path: &'static str, body: Option<Value>| {
            let (http, base, root) = (&http, &base, &root);
            async move {
                let a = exchange(http, base, method, path, Some(root), body.as_ref())
                    .await
                    .unwrap();
                assert!(a.is_success(), "{method} {path}: {}", a.describe(&[]));
                a.json().unwrap_or(Value::Null)
            }
        };
        admin(
            "POST",
            "sys/mounts/transit",
            Some(json!({"type": "transit"})),
        )
        .await;
        admin("POST", "sys/mounts/kv", Some(json!({"type": "kv"}))).await;
        admin("POST", "sys/auth/approle", Some(json!({"type": "approle"}))).await;
        admin(
            "POST",
            "auth/approle/role/weka",
            Some(json!({"token_ttl": "1h"})),
        )
        .await;
        let r = admin("GET", "auth/approle/role/weka/role-id", None).await;
        let role_id = r["data"]["role_id"].as_str().unwrap().to_string();
        let s = admin("POST", "auth/approle/role/weka/secret-id", None).await;
        let secret_id = Secret::new(s["data"]["secret_id"].as_str().unwrap());
        Fixture {
            server,
            role_id,
            secret_id,
        }
    }

    /// The error, checked for the secrets it must never show.
    fn no_secrets(e: PreflightError, secrets: &[&str]) -> String {
        let msg = e.to_string();
        let dbg = format!("{e:?}");
        for s in secrets {
            assert!(
                !msg.contains(s) && !dbg.contains(s),
                "secret {s} in {msg} / {dbg}"
            );
        }
        msg
    }

    #[tokio::test]
    async fn a_good_vault_passes() {
        let f = fixture().await;
        let root = f.server.root_token();
        let info = check(
            &f.server.base(),
            root,
            Some("transit"),
            Some((&f.role_id, &f.secret_id)),
        )
        .await
        .unwrap();
        assert_eq!(
            info,
            VaultInfo {
                version: "2.7.2".into(),
                flavour: Flavour::OpenBao
            }
        );
        // Also with a trailing slash on the URL and the mount.
        check(
            &format!("{}/", f.server.base()),
            root,
            Some("transit/"),
            None,
        )
        .await
        .unwrap();
    }

    #[tokio::test]
    async fn each_failure_has_its_message() {
        let f = fixture().await;
        let base = f.server.base();
        let root = f.server.root_token();
        let wrong_token = Secret::new("s.WrongTokenXYZ123");
        let wrong_secret = Secret::new("bad-secret-id-QQQ987");
        let secrets = [
            wrong_token.expose(),
            wrong_secret.expose(),
            f.secret_id.expose(),
            f.role_id.as_str(),
        ];

        let e = check(&base, &wrong_token, Some("transit"), None)
            .await
            .unwrap_err();
        assert!(
            matches!(e, PreflightError::TokenRefused { status: 403, .. }),
            "{e:?}"
        );
        let msg = no_secrets(e, &secrets);
        assert!(
            msg.contains("wrong or expired token") && msg.contains(&base),
            "{msg}"
        );

        let e = check(&base, root, Some("weka-transit"), None)
            .await
            .unwrap_err();
        let msg = no_secrets(e, &secrets);
        assert!(
            msg.starts_with(&format!(
                "no transit engine is mounted at weka-transit/ on {base} (mounted: "
            )) && msg.contains("transit/")
                && msg.contains("kv/"),
            "{msg}"
        );

        let e = check(&base, root, Some("kv"), None).await.unwrap_err();
        let msg = no_secrets(e, &secrets);
        assert!(msg.contains("of type kv, not transit"), "{msg}");

        let e = check(
            &base,
            root,
            Some("transit"),
            Some((&f.role_id, &wrong_secret)),
        )
        .await
        .unwrap_err();
        assert!(matches!(e, PreflightError::AppRoleRefused { .. }), "{e:?}");
        let msg = no_secrets(e, &secrets);
        assert!(msg.contains("wrong role-id or secret-id"), "{msg}");

        let e = check(&base, root, None, Some(("no-such-role", &f.secret_id)))
            .await
            .unwrap_err();
        assert!(matches!(e, PreflightError::AppRoleRefused { .. }), "{e:?}");
        no_secrets(e, &secrets);

        let e = check_approle(&base, "not-approle", &f.role_id, &f.secret_id)
            .await
            .unwrap_err();
        let msg = no_secrets(e, &secrets);
        assert!(msg.contains("auth/not-approle/"), "{msg}");

        let e = check(&base, &Secret::new("bad\ntoken-WWW"), None, None)
            .await
            .unwrap_err();
        assert!(matches!(e, PreflightError::Unsendable { .. }), "{e:?}");
        let msg = no_secrets(e, &["token-WWW"]);
        assert!(msg.contains("cannot carry"), "{msg}");

        // Sealed.
        super::super::vault::seal(&base, root).await.unwrap();
        let e = check(&base, root, None, None).await.unwrap_err();
        assert_eq!(
            e.to_string(),
            format!("Vault at {base} is sealed: unseal it first")
        );
    }

    #[tokio::test]
    async fn nothing_listening() {
        let port = free_port_pair().unwrap();
        let base = format!("http://127.0.0.1:{port}");
        let token = Secret::new("s.SomeToken42");
        let e = check(&base, &token, None, None).await.unwrap_err();
        assert!(matches!(e, PreflightError::NoAnswer { .. }), "{e:?}");
        let msg = no_secrets(e, &[token.expose()]);
        assert!(
            msg.starts_with(&format!("Vault at {base} does not answer: "))
                && msg.contains("refused"),
            "{msg}"
        );
    }

    #[tokio::test]
    async fn not_a_vault_and_bad_urls() {
        // A listener that answers HTTP but not like a Vault.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = tokio::spawn(async move {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            while let Ok((mut s, _)) = listener.accept().await {
                let mut buf = [0u8; 4096];
                let _ = s.read(&mut buf).await;
                let _ = s
                    .write_all(
                        b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\nconnection: close\r\n\r\nhello",
                    )
                    .await;
            }
        });
        let base = format!("http://127.0.0.1:{port}");
        let e = check(&base, &Secret::new("t"), None, None)
            .await
            .unwrap_err();
        assert!(matches!(e, PreflightError::NotVault { .. }), "{e:?}");
        assert!(e.to_string().contains("does not look like a Vault"), "{e}");
        server.abort();

        for bad in ["vault:8200", "https://127.0.0.1:8200", "http://127.0.0.1"] {
            let e = check(bad, &Secret::new("t"), None, None).await.unwrap_err();
            assert!(matches!(e, PreflightError::BadUrl(_)), "{bad}: {e:?}");
        }
    }
}
