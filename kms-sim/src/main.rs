//! `kms-sim vault --listen ADDR [--seed N] [--root-token T]`: the simulated Vault on a real port.
//! `kms-sim kmip --listen ADDR --cert F --key F --ca F [--seed N]`: the simulated KMIP server
//! on a real port, over mutual TLS (clients need a certificate of the CA in `--ca`; their
//! Common Name owns the keys they make), with ring and the system clock.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use kms_sim::serve::serve_stream;
use kms_sim::{KmipSim, VaultSim};

const USAGE: &str = "usage: kms-sim vault --listen ADDR [--seed N] [--root-token TOKEN]\n       \
                     kms-sim kmip --listen ADDR --cert PEM --key PEM --ca PEM [--seed N]";

/// What to serve, with the flags only that service takes.
enum Service {
    Vault {
        root_token: String,
    },
    /// PEM files: the server's certificate (leaf first), its private key, and the CA that
    /// client certificates must chain to.
    Kmip {
        cert: PathBuf,
        key: PathBuf,
        ca: PathBuf,
    },
}

struct Args {
    listen: SocketAddr,
    seed: u64,
    service: Service,
}

fn parse_args(mut args: impl Iterator<Item = String>) -> Result<Args, String> {
    let kmip = match args.next().as_deref() {
        Some("vault") => false,
        Some("kmip") => true,
        Some(other) => return Err(format!("unknown service {other:?}")),
        None => return Err("missing service".into()),
    };
    let (mut listen, mut seed, mut root_token) = (None, 0u64, None);
    let (mut cert, mut key, mut ca) = (None, None, None);
    while let Some(flag) = args.next() {
        let mut value = || args.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--listen" => {
                let v = value()?;
                listen = Some(
                    v.parse()
                        .map_err(|_| format!("--listen: not an address: {v:?}"))?,
                );
            }
            "--seed" => {
                let v = value()?;
                seed = v
                    .parse()
                    .map_err(|_| format!("--seed: not a number: {v:?}"))?;
            }
            "--root-token" if !kmip => {
                let v = value()?;
                if v.is_empty() {
                    return Err("--root-token must not be empty".into());
                }
                root_token = Some(v);
            }
            "--cert" if kmip => cert = Some(PathBuf::from(value()?)),
            "--key" if kmip => key = Some(PathBuf::from(value()?)),
            "--ca" if kmip => ca = Some(PathBuf::from(value()?)),
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    let listen = listen.ok_or("missing --listen")?;
    let service = if kmip {
        Service::Kmip {
            cert: cert.ok_or("kmip: missing --cert")?,
            key: key.ok_or("kmip: missing --key")?,
            ca: ca.ok_or("kmip: missing --ca")?,
        }
    } else {
        Service::Vault {
            root_token: root_token.unwrap_or_else(|| "root".to_string()),
        }
    };
    Ok(Args {
        listen,
        seed,
        service,
    })
}

/// A PEM file's text, or an error naming the flag and the file (never its contents: it
/// may be a private key).
fn read_pem(flag: &str, path: &PathBuf) -> Result<String, String> {
    std::fs::read_to_string(path).map_err(|e| format!("{flag} {}: {e}", path.display()))
}

/// The KMIP server's TLS configuration from the files the flags name: ring, the real clock.
fn kmip_tls(
    cert: &PathBuf,
    key: &PathBuf,
    ca: &PathBuf,
) -> Result<Arc<rustls::ServerConfig>, String> {
    let (cert, key, ca) = (
        read_pem("--cert", cert)?,
        read_pem("--key", key)?,
        read_pem("--ca", ca)?,
    );
    kms_sim::tls::server_config(
        Arc::new(rustls::crypto::ring::default_provider()),
        Arc::new(rustls::time_provider::DefaultTimeProvider),
        &ca,
        &cert,
        &key,
    )
    .map_err(|e| e.to_string())
}

/// Unix seconds from the system clock: this binary serves real clients on a real port, so
/// the KMIP server's dates and time stamps are real ones (the library never reads a clock
/// of its own; simulated runs hand it simulated time).
fn system_clock() -> kms_sim::kmip::Clock {
    Arc::new(|| {
        // The real clock is the point here: see above.
        #[allow(clippy::disallowed_methods)]
        let now = std::time::SystemTime::now();
        now.duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
    })
}

/// What each accepted connection is handed to.
enum Server {
    Vault(axum::Router),
    Kmip(KmipSim, Arc<rustls::ServerConfig>),
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = match parse_args(std::env::args().skip(1)) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("kms-sim: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    // Bad certificate files are bad input too: said before anything listens.
    let server = match &args.service {
        Service::Vault { root_token } => {
            let vault = VaultSim::new(args.seed, root_token);
            // Like `bao server -dev`, the unseal key goes to the operator's terminal, never to a log.
            eprintln!("Unseal Key: {}", vault.unseal_key());
            Server::Vault(vault.router())
        }
        Service::Kmip { cert, key, ca } => match kmip_tls(cert, key, ca) {
            Ok(tls) => Server::Kmip(KmipSim::new(args.seed, system_clock()), tls),
            Err(e) => {
                eprintln!("kms-sim: kmip TLS: {e}\n{USAGE}");
                return ExitCode::from(2);
            }
        },
    };
    let listener = match tokio::net::TcpListener::bind(args.listen).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("kms-sim: cannot listen on {}: {e}", args.listen);
            return ExitCode::FAILURE;
        }
    };
    let addr = listener.local_addr().unwrap_or(args.listen);
    match &server {
        Server::Vault(_) => println!("kms-sim vault listening on http://{addr}"),
        Server::Kmip(..) => println!("kms-sim kmip listening on {addr} (mutual TLS)"),
    }
    // Stop on SIGTERM (`docker stop`) or ctrl-c instead of waiting to be killed.
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("kms-sim: cannot watch for SIGTERM: {e}");
            return ExitCode::FAILURE;
        }
    };
    // One future for the whole loop: made anew at each accept, it would re-register, and a
    // ctrl-c arriving between two polls could be missed.
    let mut ctrl_c = std::pin::pin!(tokio::signal::ctrl_c());
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let _ = stream.set_nodelay(true);
                    match &server {
                        Server::Vault(app) => {
                            tokio::spawn(serve_stream(app.clone(), stream));
                        }
                        Server::Kmip(kmip, tls) => {
                            let (kmip, tls) = (kmip.clone(), tls.clone());
                            tokio::spawn(async move {
                                if let Err(e) = kms_sim::tls::serve_kmip(kmip, tls, stream).await {
                                    eprintln!("kms-sim: kmip connection from {peer}: {e}");
                                }
                            });
                        }
                    }
                }
                Err(e) => eprintln!("kms-sim: accept failed: {e}"),
            },
            _ = term.recv() => return ExitCode::SUCCESS,
            _ = &mut ctrl_c => return ExitCode::SUCCESS,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<Args, String> {
        parse_args(s.split_whitespace().map(String::from))
    }

    #[test]
    fn args() {
        let a = parse("vault --listen 127.0.0.1:8200 --seed 7 --root-token t").unwrap();
        let Service::Vault { root_token } = &a.service else {
            panic!("not vault")
        };
        assert_eq!(
            (a.listen.port(), a.seed, root_token.as_str()),
            (8200, 7, "t")
        );
        assert!(matches!(
            parse("vault --listen 127.0.0.1:0").unwrap().service,
            Service::Vault { root_token } if root_token == "root"
        ));
        assert!(parse("vault").is_err());
        assert!(parse("vault --listen nowhere").is_err());
        assert!(parse("vault --listen 127.0.0.1:1 --seed").is_err());
        assert!(parse("vault --listen 127.0.0.1:1 --bogus").is_err());
        assert!(parse("vault --listen 127.0.0.1:1 --cert c.pem").is_err());
        assert!(parse("ldap --listen 127.0.0.1:1").is_err());
    }

    #[test]
    fn kmip_args() {
        let a = parse("kmip --listen 127.0.0.1:5696 --cert s.pem --key s.key --ca ca.pem --seed 3")
            .unwrap();
        let Service::Kmip { cert, key, ca } = &a.service else {
            panic!("not kmip")
        };
        assert_eq!((a.listen.port(), a.seed), (5696, 3));
        assert_eq!(
            (cert.to_str(), key.to_str(), ca.to_str()),
            (Some("s.pem"), Some("s.key"), Some("ca.pem"))
        );
        assert_eq!(
            parse("kmip --listen 127.0.0.1:1 --cert c --key k")
                .err()
                .as_deref(),
            Some("kmip: missing --ca")
        );
        assert!(parse("kmip --listen 127.0.0.1:1").is_err());
        assert!(parse("kmip --listen 127.0.0.1:1 --cert c --key k --ca a --root-token t").is_err());
        assert!(parse("kmip --cert c --key k --ca a").is_err());
    }

    #[test]
    fn missing_files_are_named() {
        let e = kmip_tls(
            &PathBuf::from("/nonexistent/s.pem"),
            &PathBuf::from("k"),
            &PathBuf::from("c"),
        )
        .unwrap_err();
        assert!(e.starts_with("--cert /nonexistent/s.pem: "), "{e}");
    }
}
