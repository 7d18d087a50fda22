//! A Vault in a container that someone else started (testcontainers, compose, a user), for
//! a live run against it (`--vault-container`): `kms-stop` and `kms-start` stop and start
//! the container with the `docker` CLI.
//!
//! Live mode only: a real container and real waits, never inside a seeded simulation.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use super::vault::{wait_answers, wait_silent, ANSWER_POLLS};

/// A Vault in a container that someone else started (testcontainers, compose, a user),
/// controlled with the `docker` CLI. Its base is `http://127.0.0.1:<host port of 8200/tcp>`,
/// resolved again after every start (the host port may change).
#[derive(Debug, Clone)]
pub struct DockerVault {
    docker: PathBuf,
    id: String,
    base: String,
}

/// `docker stop` grace period, seconds.
const DOCKER_STOP_GRACE: u32 = 10;
/// Any one `docker` command.
const DOCKER_TIMEOUT: Duration = Duration::from_secs(60);

impl DockerVault {
    /// The container `id` (or name), with `docker` from PATH; resolves its port.
    pub async fn attach(id: &str) -> Result<DockerVault, String> {
        Self::attach_with(Path::new("docker"), id).await
    }

    /// As [`DockerVault::attach`], with the given `docker` binary.
    pub async fn attach_with(docker: &Path, id: &str) -> Result<DockerVault, String> {
        let mut v = DockerVault {
            docker: docker.to_path_buf(),
            id: id.to_string(),
            base: String::new(),
        };
        v.resolve_base().await?;
        Ok(v)
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    pub fn base(&self) -> String {
        self.base.clone()
    }

    /// `docker stop -t 10 ID`; then waits until the old port no longer answers.
    pub async fn stop(&mut self) -> Result<(), String> {
        let grace = DOCKER_STOP_GRACE.to_string();
        self.docker(&["stop", "-t", &grace, &self.id]).await?;
        wait_silent(&self.base, 100).await
    }

    /// `docker start ID`, the host port of 8200/tcp again, then waits until it answers.
    pub async fn start(&mut self) -> Result<(), String> {
        self.docker(&["start", &self.id]).await?;
        self.resolve_base().await?;
        wait_answers(&self.base, ANSWER_POLLS, || Ok(())).await?;
        Ok(())
    }

    async fn resolve_base(&mut self) -> Result<(), String> {
        let out = self.docker(&["port", &self.id, "8200/tcp"]).await?;
        let port = parse_docker_port(&out).ok_or_else(|| {
            format!(
                "container {} publishes no host port for 8200/tcp (docker port said: {:?})",
                self.id,
                out.trim()
            )
        })?;
        self.base = format!("http://127.0.0.1:{port}");
        Ok(())
    }

    /// Runs `docker ARGS`; its stdout, or an error naming the command and its stderr.
    async fn docker(&self, args: &[&str]) -> Result<String, String> {
        let shown = format!("{} {}", self.docker.display(), args.join(" "));
        let run = tokio::process::Command::new(&self.docker)
            .args(args)
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .output();
        let out = tokio::time::timeout(DOCKER_TIMEOUT, run)
            .await
            .map_err(|_| format!("{shown} did not finish within {DOCKER_TIMEOUT:?}"))?
            .map_err(|e| format!("cannot run {shown}: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "{shown} failed ({}): {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }
}

/// The host port in `docker port ID 8200/tcp` output: lines like `0.0.0.0:49153` and
/// `[::]:49153`; an IPv4 line is preferred.
pub fn parse_docker_port(output: &str) -> Option<u16> {
    let mut v4 = None;
    let mut v6 = None;
    for line in output.lines().map(str::trim).filter(|l| !l.is_empty()) {
        // Old docker versions print "8200/tcp -> 0.0.0.0:49153" when no port is named.
        let addr = line.rsplit("->").next().unwrap_or(line).trim();
        let Some((host, port)) = addr.rsplit_once(':') else {
            continue;
        };
        let Ok(port) = port.trim().parse::<u16>() else {
            continue;
        };
        if host.starts_with('[') || host.contains(':') {
            v6.get_or_insert(port);
        } else {
            v4.get_or_insert(port);
        }
    }
    v4.or(v6)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_port_output() {
        assert_eq!(
            parse_docker_port("0.0.0.0:49153\n[::]:49153\n"),
            Some(49153)
        );
        assert_eq!(
            parse_docker_port("[::]:49154\n0.0.0.0:49153\n"),
            Some(49153)
        );
        assert_eq!(parse_docker_port("[::]:49154\n"), Some(49154));
        assert_eq!(
            parse_docker_port("8200/tcp -> 0.0.0.0:32768\n"),
            Some(32768)
        );
        assert_eq!(parse_docker_port(""), None);
        assert_eq!(parse_docker_port("Error: No public port"), None);
        assert_eq!(parse_docker_port("0.0.0.0:notaport"), None);
    }
}

#[cfg(test)]
mod process_tests {
    use super::tests_support::*;
    use super::*;
    use crate::live::vault::{health, VaultProcess};

    /// Needs Docker and the image `bash tests/images.sh` builds (tests/run.sh builds it
    /// first); fails loudly without them.
    #[tokio::test]
    async fn docker_stop_and_start() {
        let container = Container::run("wekasim/openbao:2.7.2").await;
        let mut vault = VaultProcess::Container(DockerVault::attach(&container.0).await.unwrap());
        assert!(vault.can_restart());
        let base = vault.base();
        wait_answers(&base, ANSWER_POLLS, || Ok(())).await.unwrap();
        vault.stop().await.unwrap();
        assert!(health(&base).await.is_err());
        vault.start().await.unwrap();
        let h = health(&vault.base()).await.unwrap();
        assert_eq!((h.status_code, h.version.as_str()), (200, "2.7.2"));
    }
}

#[cfg(test)]
mod tests_support {
    use std::process::Command;

    /// A container removed (`docker rm -f`) when dropped.
    pub struct Container(pub String);

    impl Container {
        pub async fn run(image: &str) -> Container {
            let out = tokio::process::Command::new("docker")
                .args(["run", "-d", "-p", "127.0.0.1::8200", image])
                .output()
                .await
                .expect("docker runs");
            assert!(
                out.status.success(),
                "docker run {image}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            Container(String::from_utf8_lossy(&out.stdout).trim().to_string())
        }
    }

    impl Drop for Container {
        fn drop(&mut self) {
            let _ = Command::new("docker").args(["rm", "-f", &self.0]).output();
        }
    }
}
