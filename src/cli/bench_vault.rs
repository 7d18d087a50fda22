//! `wekasim bench-vault`: KMS throughput against a real OpenBao, the harness's connector
//! (`cluster::kms::VaultConnector` over `cluster::http::HttpClient`) against a bare vaultrs
//! loop doing the same calls with the same AppRole credentials and the same key.
//!
//! Live mode only: this talks to a real server over real TCP, so it is not part of any
//! simulated run and nothing it measures enters a trace.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use clap::Args;
use cluster::dek::{Dek, DEK_LEN};
use cluster::http::HttpClient;
use cluster::kms::{KmsConfig, VaultAuth, VaultConfig, WrappedDek};
use cluster::net::TcpDialer;
use cluster::secret::Secret;
use rand::{RngCore, SeedableRng};
use rustify::endpoint::Endpoint;
use rustify::enums::{RequestMethod, RequestType, ResponseType};
use rustify::errors::ClientError as RustifyError;
use scenarios::kms::vault::{SetupPlan, VaultAdmin};
use scenarios::live::openbao::OpenBaoServer;
use scenarios::wall::Stopwatch;
use serde_json::{json, Value};
use vaultrs::client::{Client as _, VaultClient, VaultClientSettingsBuilder};

use super::{EXIT_CORRECTNESS, EXIT_PASS, EXIT_USAGE};

const TRANSIT: &str = "transit";
const KEY: &str = "weka-key";
/// The cluster's connector batches up to this many DEKs per KMS call.
const BATCH: usize = 100;
/// The target: the harness at least this fraction of the bare loop's items/s.
const TARGET: f64 = 0.8;

#[derive(Args)]
pub struct BenchVaultArgs {
    /// The OpenBao binary to start a dev server from (ignored with --vault).
    #[arg(long, default_value = ".venv/bin/bao")]
    pub bao: PathBuf,
    /// Use this running Vault/OpenBao (`http://host:port`) instead of starting one.
    #[arg(long, requires = "token")]
    pub vault: Option<String>,
    /// Root token of the Vault given with --vault.
    #[arg(long, requires = "vault")]
    pub token: Option<String>,
    /// Wrapped DEKs per operation.
    #[arg(long, default_value_t = 1000)]
    pub deks: usize,
    /// Seed of the RNG that draws the DEKs.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
}

pub fn run(args: BenchVaultArgs) -> i32 {
    // vaultrs is built with `rustls-no-provider`: reqwest's client builder wants a process
    // crypto provider even for http://. Installing fails only if one is already there.
    let _ = rustls::crypto::ring::default_provider().install_default();

    let external = match (&args.vault, &args.token) {
        (Some(url), Some(token)) => Some((
            url.trim_end_matches('/').to_string(),
            Secret::new(token.clone()),
        )),
        _ => None,
    };
    if external.is_none() && !args.bao.exists() {
        eprintln!(
            "error: {} is missing: run bash tests/run.sh to install OpenBao",
            args.bao.display()
        );
        return EXIT_USAGE;
    }
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start a tokio runtime: {e}");
            return EXIT_CORRECTNESS;
        }
    };
    rt.block_on(async {
        // The server (when we start one) lives in this guard: it is killed on every way
        // out (on success, on error and on panic unwinding alike).
        let (server, base, root) = match external {
            Some((base, root)) => (None, base, root),
            None => match OpenBaoServer::dev(&args.bao).await {
                Ok(s) => {
                    let (base, root) = (s.base(), s.root_token().clone());
                    (Some(s), base, root)
                }
                Err(e) => {
                    eprintln!("error: {e}");
                    return EXIT_CORRECTNESS;
                }
            },
        };
        let code = match bench(&args, &base, root.expose()).await {
            Ok(()) => EXIT_PASS,
            Err(e) => {
                eprintln!("error: {e}");
                EXIT_CORRECTNESS
            }
        };
        drop(server);
        code
    })
}

/// One measured operation for one client.
struct Sample {
    items: usize,
    wall: Duration,
}

impl Sample {
    fn new(items: usize, wall: Duration) -> Self {
        Sample { items, wall }
    }

    fn per_sec(&self) -> f64 {
        self.items as f64 / self.wall.as_secs_f64().max(1e-9)
    }
}

/// Runs `f` once: how long it took, and what it returned (checked outside the timing).
async fn timed<T>(f: impl AsyncFnOnce() -> Result<T, String>) -> Result<(Duration, T), String> {
    let sw = Stopwatch::start();
    let out = f().await?;
    Ok((sw.elapsed(), out))
}

async fn bench(args: &BenchVaultArgs, base: &str, root: &str) -> Result<(), String> {
    let admin_http = HttpClient::new(Arc::new(TcpDialer), Duration::from_secs(10));
    let admin = VaultAdmin {
        http: &admin_http,
        base,
        root_token: root,
    };
    let creds = admin
        .prepare(&SetupPlan::fresh(), &[KEY])
        .await
        .map_err(|e| format!("preparing the Vault: {e}"))?;

    // The harness: the cluster's own connector, AppRole auth, its own HTTP client.
    let config = KmsConfig::Vault(VaultConfig {
        url: base.to_string(),
        key_name: KEY.into(),
        transit_path: TRANSIT.into(),
        auth_path: "approle".into(),
        namespace: None,
        auth: VaultAuth::AppRole {
            role_id: creds.role_id.clone(),
            secret_id: Secret::new(creds.secret_id.expose().to_string()),
        },
    });
    let harness = cluster::kms::connect(&config, Arc::new(TcpDialer));

    // The bare loop: vaultrs's VaultClient, logged in with the same AppRole.
    let mut bare = VaultClient::new(
        VaultClientSettingsBuilder::default()
            .address(base)
            .build()
            .map_err(|e| format!("vaultrs settings: {e}"))?,
    )
    .map_err(|e| format!("vaultrs client: {e}"))?;
    let login =
        vaultrs::auth::approle::login(&bare, "approle", &creds.role_id, creds.secret_id.expose())
            .await
            .map_err(|e| format!("vaultrs approle login: {e}"))?;
    bare.set_token(&login.client_token);

    // 1,000 DEKs from a seeded RNG, wrapped once (batched) by the connector.
    let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(args.seed);
    let deks: Vec<Dek> = (0..args.deks)
        .map(|_| {
            let mut b = [0u8; DEK_LEN];
            rng.fill_bytes(&mut b);
            Dek::from_bytes(&b).expect("32 bytes")
        })
        .collect();
    let mut wrapped: Vec<WrappedDek> = Vec::with_capacity(deks.len());
    for chunk in deks.chunks(BATCH) {
        wrapped.extend(
            harness
                .wrap(chunk)
                .await
                .map_err(|e| format!("wrapping the DEKs: {e}"))?,
        );
    }
    // Warm both clients up (login done, a connection open) outside the measurement.
    harness
        .unwrap(&wrapped[..1])
        .await
        .map_err(|e| format!("harness warm-up: {e}"))?;
    vaultrs::transit::data::decrypt(&bare, TRANSIT, KEY, &wrapped[0].ciphertext, None)
        .await
        .map_err(|e| format!("bare warm-up: {e}"))?;

    let n = wrapped.len();
    let mut rows: Vec<(&str, Sample, Sample)> = Vec::new();

    // (a) unwrap, one KMS call per DEK.
    let (h, got) = timed(async || {
        let mut got = Vec::with_capacity(n);
        for w in &wrapped {
            got.extend(
                harness
                    .unwrap(std::slice::from_ref(w))
                    .await
                    .map_err(|e| format!("harness unwrap: {e}"))?,
            );
        }
        Ok(got)
    })
    .await?;
    check_deks("harness unwrap x1", &got, &deks)?;
    let (b, got) = timed(async || {
        let mut got = Vec::with_capacity(n);
        for w in &wrapped {
            let r = vaultrs::transit::data::decrypt(&bare, TRANSIT, KEY, &w.ciphertext, None)
                .await
                .map_err(|e| format!("bare decrypt: {e}"))?;
            got.push(dek_from_b64(&r.plaintext)?);
        }
        Ok(got)
    })
    .await?;
    check_deks("bare unwrap x1", &got, &deks)?;
    rows.push(("unwrap, 1 per call", Sample::new(n, h), Sample::new(n, b)));

    // Batched calls are few and short (10 calls of 100 items): each is timed over
    // ROUNDS rounds, harness and bare in turn, and the best round of each counts.
    const ROUNDS: usize = 7;

    // (b) unwrap, batched.
    let (mut h_best, mut b_best) = (Duration::MAX, Duration::MAX);
    for _ in 0..ROUNDS {
        let (h, got) = timed(async || {
            let mut got = Vec::with_capacity(n);
            for chunk in wrapped.chunks(BATCH) {
                got.extend(
                    harness
                        .unwrap(chunk)
                        .await
                        .map_err(|e| format!("harness unwrap batch: {e}"))?,
                );
            }
            Ok(got)
        })
        .await?;
        h_best = h_best.min(h);
        check_deks("harness unwrap batch", &got, &deks)?;
        let (b, got) = timed(async || {
            let mut got = Vec::with_capacity(n);
            for chunk in wrapped.chunks(BATCH) {
                for r in bare_batch(&bare, "decrypt", chunk).await? {
                    got.push(dek_from_b64(field(&r, "plaintext")?)?);
                }
            }
            Ok(got)
        })
        .await?;
        b_best = b_best.min(b);
        check_deks("bare unwrap batch", &got, &deks)?;
    }
    rows.push((
        "unwrap, batched (best of 7)",
        Sample::new(n, h_best),
        Sample::new(n, b_best),
    ));

    // (c) rewrap after a key rotation, batched. Both rewrap the same v1 ciphertexts.
    admin
        .call("POST", &format!("{TRANSIT}/keys/{KEY}/rotate"), None)
        .await
        .map_err(|e| format!("rotating the key: {e}"))?;
    let (mut h_best, mut b_best) = (Duration::MAX, Duration::MAX);
    for _ in 0..ROUNDS {
        let (h, rewrapped) = timed(async || {
            let mut rewrapped = Vec::with_capacity(n);
            for chunk in wrapped.chunks(BATCH) {
                rewrapped.extend(
                    harness
                        .rewrap(chunk)
                        .await
                        .map_err(|e| format!("harness rewrap: {e}"))?,
                );
            }
            Ok(rewrapped)
        })
        .await?;
        h_best = h_best.min(h);
        check_versions("harness rewrap", rewrapped.iter().map(|w| w.key_version), n)?;
        let (b, versions) = timed(async || {
            let mut versions = Vec::with_capacity(n);
            for chunk in wrapped.chunks(BATCH) {
                for r in bare_batch(&bare, "rewrap", chunk).await? {
                    let ct = field(&r, "ciphertext")?;
                    versions.push(
                        r.get("key_version")
                            .and_then(Value::as_u64)
                            .unwrap_or_else(|| version_of(ct)),
                    );
                }
            }
            Ok(versions)
        })
        .await?;
        b_best = b_best.min(b);
        check_versions("bare rewrap", versions.into_iter(), n)?;
    }
    rows.push((
        "rewrap after rotation, batched (best of 7)",
        Sample::new(n, h_best),
        Sample::new(n, b_best),
    ));

    println!(
        "bench-vault: OpenBao at {base}, key {TRANSIT}/{KEY}, AppRole token for both clients, \
         {n} DEKs, batches of {BATCH}"
    );
    println!(
        "harness: cluster::kms::VaultConnector over cluster::http::HttpClient (TcpDialer); \
         1-per-call = unwrap(&[one]) (a batch_input of 1)"
    );
    println!(
        "bare:    vaultrs 0.8 VaultClient (reqwest); 1-per-call = vaultrs::transit::data::decrypt; \
         batched = vaultrs::api::exec_with_result with a rustify Endpoint POSTing \
         {{\"batch_input\":[...]}} over the same VaultClient"
    );
    println!(
        "{:<44} {:>6} {:>10} {:>10} {:>10} {:>10} {:>8}",
        "operation", "items", "harness s", "harness/s", "bare s", "bare/s", "h/b"
    );
    for (op, h, b) in &rows {
        println!(
            "{:<44} {:>6} {:>10.3} {:>10.0} {:>10.3} {:>10.0} {:>8.2}",
            op,
            h.items,
            h.wall.as_secs_f64(),
            h.per_sec(),
            b.wall.as_secs_f64(),
            b.per_sec(),
            h.per_sec() / b.per_sec()
        );
    }
    for (op, h, b) in &rows {
        let ratio = h.per_sec() / b.per_sec();
        println!(
            "{op}: within 80% of bare: {} ({:.0}%)",
            if ratio >= TARGET { "yes" } else { "no" },
            ratio * 100.0
        );
    }
    Ok(())
}

/// `transit/<op>/<key>` with `batch_input`: vaultrs has no batched request type, so this
/// is a rustify endpoint run by vaultrs's own `exec_with_result` over the same client.
struct BareBatch {
    op: &'static str,
    body: Vec<u8>,
}

impl Endpoint for BareBatch {
    type Response = Value;
    const REQUEST_BODY_TYPE: RequestType = RequestType::JSON;
    const RESPONSE_BODY_TYPE: ResponseType = ResponseType::JSON;

    fn path(&self) -> String {
        format!("{TRANSIT}/{}/{KEY}", self.op)
    }

    fn method(&self) -> RequestMethod {
        RequestMethod::POST
    }

    fn body(&self) -> Result<Option<Vec<u8>>, RustifyError> {
        Ok(Some(self.body.clone()))
    }
}

async fn bare_batch(
    client: &VaultClient,
    op: &'static str,
    chunk: &[WrappedDek],
) -> Result<Vec<Value>, String> {
    let items: Vec<Value> = chunk
        .iter()
        .map(|w| json!({"ciphertext": w.ciphertext}))
        .collect();
    let body = serde_json::to_vec(&json!({ "batch_input": items })).map_err(|e| e.to_string())?;
    let data = vaultrs::api::exec_with_result(client, BareBatch { op, body })
        .await
        .map_err(|e| format!("bare batch {op}: {e}"))?;
    let results = match data.get("batch_results").and_then(Value::as_array) {
        Some(r) if r.len() == chunk.len() => r.clone(),
        _ => return Err(format!("bare batch {op}: wrong or missing batch_results")),
    };
    if let Some(err) = results.iter().find_map(|r| r.get("error")?.as_str()) {
        if !err.is_empty() {
            return Err(format!("bare batch {op}: {err}"));
        }
    }
    Ok(results)
}

fn field<'v>(v: &'v Value, name: &str) -> Result<&'v str, String> {
    v.get(name)
        .and_then(Value::as_str)
        .ok_or_else(|| format!("batch result without {name}"))
}

fn dek_from_b64(plaintext: &str) -> Result<Dek, String> {
    let bytes = B64
        .decode(plaintext)
        .map_err(|_| "plaintext is not base64".to_string())?;
    Dek::from_bytes(&bytes).ok_or_else(|| format!("unwrapped key has {} bytes", bytes.len()))
}

fn version_of(ciphertext: &str) -> u64 {
    ciphertext
        .strip_prefix("vault:v")
        .and_then(|rest| rest.split(':').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

fn check_deks(what: &str, got: &[Dek], want: &[Dek]) -> Result<(), String> {
    if got == want {
        Ok(())
    } else {
        Err(format!(
            "{what}: the unwrapped DEKs differ from the originals"
        ))
    }
}

fn check_versions(what: &str, versions: impl Iterator<Item = u64>, n: usize) -> Result<(), String> {
    let v: Vec<u64> = versions.collect();
    if v.len() == n && v.iter().all(|&v| v == 2) {
        Ok(())
    } else {
        Err(format!(
            "{what}: not every DEK was rewrapped to key version 2"
        ))
    }
}
