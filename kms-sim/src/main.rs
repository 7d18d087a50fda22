//! `kms-sim vault --listen ADDR [--seed N] [--root-token T]`: the simulated Vault on a real port.

use std::net::SocketAddr;
use std::process::ExitCode;

use kms_sim::serve::serve_stream;
use kms_sim::VaultSim;

const USAGE: &str = "usage: kms-sim vault --listen ADDR [--seed N] [--root-token TOKEN]";

struct Args {
    listen: SocketAddr,
    seed: u64,
    root_token: String,
}

fn parse_args(mut args: impl Iterator<Item = String>) -> Result<Args, String> {
    match args.next().as_deref() {
        Some("vault") => {}
        Some(other) => return Err(format!("unknown service {other:?}")),
        None => return Err("missing service".into()),
    }
    let (mut listen, mut seed, mut root_token) = (None, 0u64, "root".to_string());
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
            "--root-token" => {
                root_token = value()?;
                if root_token.is_empty() {
                    return Err("--root-token must not be empty".into());
                }
            }
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    let listen = listen.ok_or("missing --listen")?;
    Ok(Args {
        listen,
        seed,
        root_token,
    })
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
    let listener = match tokio::net::TcpListener::bind(args.listen).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("kms-sim: cannot listen on {}: {e}", args.listen);
            return ExitCode::FAILURE;
        }
    };
    let vault = VaultSim::new(args.seed, &args.root_token);
    let addr = listener.local_addr().unwrap_or(args.listen);
    // Like `bao server -dev`, the unseal key goes to the operator's terminal, never to a log.
    eprintln!("Unseal Key: {}", vault.unseal_key());
    println!("kms-sim vault listening on http://{addr}");
    let app = vault.router();
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
                Ok((stream, _)) => {
                    let _ = stream.set_nodelay(true);
                    tokio::spawn(serve_stream(app.clone(), stream));
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
        assert_eq!(
            (a.listen.port(), a.seed, a.root_token.as_str()),
            (8200, 7, "t")
        );
        assert_eq!(
            parse("vault --listen 127.0.0.1:0").unwrap().root_token,
            "root"
        );
        assert!(parse("vault").is_err());
        assert!(parse("kmip --listen 127.0.0.1:1").is_err());
        assert!(parse("vault --listen nowhere").is_err());
        assert!(parse("vault --listen 127.0.0.1:1 --seed").is_err());
        assert!(parse("vault --listen 127.0.0.1:1 --bogus").is_err());
    }
}
