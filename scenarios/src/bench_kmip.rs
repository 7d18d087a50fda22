//! The KMIP benchmark: DEKs wrapped and unwrapped per wall second by the cluster's KMIP
//! connector, (a) in simulation, against kms-sim's KMIP server in process over an in-memory
//! stream (no TLS: that is the transport's business), and (b) live, against a real PyKMIP
//! over mutual TLS from `cluster::net::TcpDialer`, beside PyKMIP's own Python client doing
//! the same count of Encrypts and Decrypts on a key it creates, in the same run.
//!
//! Numbers for a human: nothing here asserts a speed, and nothing enters a trace. The real
//! clock is read through [`crate::wall::Stopwatch`] only.

use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cluster::dek::{Dek, DEK_LEN};
use cluster::kms::{KmipConfig, KmipRandom, KmipTransport, KmsConfig, KmsConnector, WrappedDek};
use cluster::net::{BoxStream, TcpDialer};
use cluster::secret::Secret;
use kms_sim::kmip::fixed_clock;
use kms_sim::KmipSim;
use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha20Rng;

use crate::kms::kmip::{connect_tls, KmipAdmin};
use crate::live::pykmip::PyKmip;
use crate::wall::Stopwatch;

/// The cluster's client certificate CN, here and in the simulation.
const OWNER: &str = "wekasim-cluster";
/// PyKMIP's own client, run by the Python that has PyKMIP installed.
const PYTHON_CLIENT: &str = include_str!("bench_kmip_client.py");

/// One measured operation: how many items, in how long.
#[derive(Debug, Clone)]
pub struct Rate {
    pub label: String,
    pub items: usize,
    pub wall: Duration,
}

impl Rate {
    pub fn per_sec(&self) -> f64 {
        self.items as f64 / self.wall.as_secs_f64().max(1e-9)
    }
}

/// What a live run measured: the harness's connector, and PyKMIP's own client.
#[derive(Debug, Clone)]
pub struct LiveRates {
    pub harness: Vec<Rate>,
    /// Encrypt then Decrypt, one per message on one connection.
    pub pykmip_client: Vec<Rate>,
    pub pykmip_addr: String,
}

/// `n` DEKs drawn from `seed`.
pub fn deks(n: usize, seed: u64) -> Vec<Dek> {
    let mut rng = ChaCha20Rng::seed_from_u64(seed);
    (0..n)
        .map(|_| {
            let mut b = [0u8; DEK_LEN];
            rng.fill_bytes(&mut b);
            Dek::from_bytes(&b).expect("32 bytes")
        })
        .collect()
}

/// The IVs' source: a ChaCha stream from `seed`, as a seeded run would give.
fn seeded_random(seed: u64) -> KmipRandom {
    let rng = Arc::new(Mutex::new(ChaCha20Rng::seed_from_u64(seed)));
    Arc::new(move |buf: &mut [u8]| {
        rng.lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .fill_bytes(buf)
    })
}

/// Streams to `server` as `OWNER`, one in-memory pipe and one server task per call, as the
/// simulation's KMIP host serves each connection.
fn in_memory(server: &KmipSim) -> KmipTransport {
    let server = server.clone();
    Arc::new(move || {
        let server = server.clone();
        Box::pin(async move {
            let (client, remote) = tokio::io::duplex(1 << 16);
            tokio::spawn(async move { server.serve_connection(remote, OWNER.into()).await });
            Ok(Box::new(client) as BoxStream)
        })
    })
}

/// Wrap and unwrap `deks` one per call, then in batches of `batch`, checking every answer.
async fn measure(kms: &dyn KmsConnector, deks: &[Dek], batch: usize) -> Result<Vec<Rate>, String> {
    let n = deks.len();
    let batch = batch.max(1);
    // The version is agreed and a key is in use before anything is timed.
    kms.probe().await.map_err(|e| format!("probe: {e}"))?;
    let mut rates = Vec::new();
    for (size, what) in [
        (1, "1 per call".to_string()),
        (batch, format!("batched ({batch})")),
    ] {
        let sw = Stopwatch::start();
        let mut wrapped: Vec<WrappedDek> = Vec::with_capacity(n);
        for chunk in deks.chunks(size) {
            wrapped.extend(kms.wrap(chunk).await.map_err(|e| format!("wrap: {e}"))?);
        }
        rates.push(Rate {
            label: format!("wrap, {what}"),
            items: n,
            wall: sw.elapsed(),
        });
        let sw = Stopwatch::start();
        let mut unwrapped = Vec::with_capacity(n);
        for chunk in wrapped.chunks(size) {
            unwrapped.extend(
                kms.unwrap(chunk)
                    .await
                    .map_err(|e| format!("unwrap: {e}"))?,
            );
        }
        rates.push(Rate {
            label: format!("unwrap, {what}"),
            items: n,
            wall: sw.elapsed(),
        });
        if unwrapped != deks {
            return Err(format!(
                "unwrap, {what}: the DEKs differ from the originals"
            ));
        }
    }
    Ok(rates)
}

/// (a) The cluster's KMIP connector against kms-sim's KMIP server, in process.
pub async fn simulated(deks: &[Dek], batch: usize, seed: u64) -> Result<Vec<Rate>, String> {
    let server = KmipSim::new(seed, fixed_clock(1_700_000_000));
    let uid = server.create_key(OWNER, "weka-key");
    let config = KmipConfig {
        address: "kms-sim:5696".into(),
        key_uid: uid,
        client_cert_pem: String::new(),
        client_key_pem: Secret::new(""),
        ca_cert_pem: None,
    };
    let kms = cluster::kms::connect_kmip(&config, in_memory(&server), seeded_random(seed));
    measure(kms.as_ref(), deks, batch).await
}

/// (b) A PyKMIP started from `pykmip_bin`: the cluster's connector (its own TLS over
/// `TcpDialer`), then PyKMIP's Python client run by `python` for the same count.
pub async fn live(
    pykmip_bin: &Path,
    python: &Path,
    deks: &[Dek],
    batch: usize,
) -> Result<LiveRates, String> {
    if !python.is_file() {
        return Err(format!(
            "{} does not exist: PyKMIP's client needs the Python PyKMIP is installed in",
            python.display()
        ));
    }
    // The server lives in this guard: dropped (killed, its temp dir removed) on every way out.
    let server = PyKmip::start(pykmip_bin, &[OWNER]).await?;
    let id = server.client(OWNER)?.clone();
    let addr = server.addr();

    // A key for the harness, made by the harness's admin client as an operator would.
    let tls = connect_tls(
        addr,
        &server.server_name(),
        server.ca_pem(),
        &id.cert_pem,
        &id.key_pem,
    )
    .await?;
    let mut admin = KmipAdmin::new(tls);
    let uid = admin
        .create_aes256("wekasim-bench-kmip")
        .await
        .map_err(|e| e.to_string())?;
    admin.activate(&uid).await.map_err(|e| e.to_string())?;
    drop(admin);

    let config = KmsConfig::Kmip(KmipConfig {
        address: addr.to_string(),
        key_uid: uid,
        client_cert_pem: id.cert_pem.clone(),
        client_key_pem: id.key_pem.clone(),
        ca_cert_pem: Some(server.ca_pem().to_string()),
    });
    let kms = cluster::kms::connect(&config, Arc::new(TcpDialer));
    let harness = measure(kms.as_ref(), deks, batch).await?;

    let pykmip_client = python_client(&server, python, &id, deks.len())?;
    Ok(LiveRates {
        harness,
        pykmip_client,
        pykmip_addr: addr.to_string(),
    })
}

/// Runs [`PYTHON_CLIENT`] against `server` with the client identity `id`, whose files go
/// into the server's temp dir (removed with it), the key readable by this user only.
fn python_client(
    server: &PyKmip,
    python: &Path,
    id: &crate::live::pykmip::Identity,
    count: usize,
) -> Result<Vec<Rate>, String> {
    let write = |name: &str, text: &str, mode: u32| {
        crate::live::pykmip::write_new_file(server.dir(), name, text, mode)
    };
    let ca = write("bench-ca.pem", server.ca_pem(), 0o644)?;
    let cert = write("bench-client.pem", &id.cert_pem, 0o644)?;
    let key = write("bench-client.key", id.key_pem.expose(), 0o600)?;
    let out = Command::new(python)
        .arg("-c")
        .arg(PYTHON_CLIENT)
        .arg(server.addr().ip().to_string())
        .arg(server.addr().port().to_string())
        .args([&ca, &cert, &key])
        .arg(count.to_string())
        .env("HOME", server.dir())
        .output()
        .map_err(|e| format!("cannot run {}: {e}", python.display()))?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        let tail: Vec<&str> = stderr.lines().rev().take(15).collect();
        return Err(format!(
            "PyKMIP's client exited with {}: {}",
            out.status,
            tail.into_iter().rev().collect::<Vec<_>>().join("\n")
        ));
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout
        .lines()
        .last()
        .ok_or("PyKMIP's client printed nothing")?;
    let v: serde_json::Value =
        serde_json::from_str(line).map_err(|e| format!("PyKMIP's client printed {line:?}: {e}"))?;
    let secs = |k: &str| {
        v.get(k)
            .and_then(serde_json::Value::as_f64)
            .map(Duration::from_secs_f64)
            .ok_or_else(|| format!("PyKMIP's client printed no {k}: {line}"))
    };
    Ok(vec![
        Rate {
            label: "encrypt, 1 per call".into(),
            items: count,
            wall: secs("encrypt_s")?,
        },
        Rate {
            label: "decrypt, 1 per call".into(),
            items: count,
            wall: secs("decrypt_s")?,
        },
    ])
}
