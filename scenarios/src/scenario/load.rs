//! Loading a scenario file: strict parsing, the rules serde cannot express, and errors
//! that name the file, the line and the field.

use std::collections::BTreeSet;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use cluster::admin::AdminCommand;
use kms_sim::chaos::Fault;

use super::{
    host_group, substitute, Expect, KmsKind, Scenario, Step, MAX_BACKENDS, MAX_FILESYSTEMS,
    MAX_VOTERS,
};

/// The filesystems a step creates (`true`: it may create them) or needs to exist
/// (`false`: it must succeed on them).
fn step_filesystems(step: &Step) -> (bool, Vec<String>) {
    match step {
        Step::FsCreate {
            name,
            count,
            expect,
            ..
        } if *expect != Expect::Error => (true, Scenario::fs_names(name, *count)),
        Step::Write {
            fs,
            expect: Expect::Ok,
            ..
        }
        | Step::ReadVerify {
            fs,
            expect: Expect::Ok,
            ..
        } if fs != "all" => (false, vec![fs.clone()]),
        Step::Weka {
            command,
            expect_error,
            expect,
            ..
        } => {
            let may_succeed = expect_error.is_none() && *expect != Expect::Error;
            let must_succeed = expect_error.is_none() && *expect == Expect::Ok;
            match weka_command(command) {
                Ok(AdminCommand::FsCreate { name, .. } | AdminCommand::FsDownload { name, .. })
                    if may_succeed =>
                {
                    (true, vec![name])
                }
                Ok(
                    AdminCommand::FsUpdate { name: fs, .. }
                    | AdminCommand::SnapshotUpload { fs, .. },
                ) if must_succeed => (false, vec![fs]),
                _ => (false, Vec::new()),
            }
        }
        // A racing create may succeed; nothing in a race must.
        Step::Race { commands, .. } => (
            true,
            commands
                .iter()
                .filter_map(|c| match weka_command(c) {
                    Ok(
                        AdminCommand::FsCreate { name, .. } | AdminCommand::FsDownload { name, .. },
                    ) => Some(name),
                    _ => None,
                })
                .collect(),
        ),
        _ => (false, Vec::new()),
    }
}

/// A scenario file that could not be loaded, with where and why.
#[derive(Debug)]
pub struct LoadError {
    pub path: PathBuf,
    pub message: String,
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path.display(), self.message)
    }
}

impl std::error::Error for LoadError {}

impl Scenario {
    pub fn load(path: &Path) -> Result<Scenario, LoadError> {
        let text = std::fs::read_to_string(path).map_err(|e| LoadError {
            path: path.to_path_buf(),
            message: format!("cannot read: {e}"),
        })?;
        Scenario::parse(&text).map_err(|message| LoadError {
            path: path.to_path_buf(),
            message,
        })
    }

    /// The scenario as a file a person can read and `wekasim run` can load.
    pub fn to_toml(&self) -> Result<String, String> {
        toml::to_string(self).map_err(|e| e.to_string())
    }

    /// Parses and checks a scenario; the error says line, column and field.
    pub fn parse(text: &str) -> Result<Scenario, String> {
        let scenario: Scenario = toml::from_str(text).map_err(|e| describe_toml_error(text, &e))?;
        scenario.check()?;
        Ok(scenario)
    }

    /// Rules serde cannot express.
    fn check(&self) -> Result<(), String> {
        let c = &self.cluster;
        if !(1..=MAX_BACKENDS).contains(&c.backends) {
            return Err(format!(
                "[cluster] backends = {}: must be 1 to {MAX_BACKENDS}",
                c.backends
            ));
        }
        if let Some(voters) = c.voters {
            let most = c.backends.min(MAX_VOTERS);
            if !(1..=most).contains(&voters) {
                return Err(format!(
                    "[cluster] voters = {voters}: must be 1 to {most} (at most backends, {}, and at most {MAX_VOTERS})",
                    c.backends
                ));
            }
        }
        if c.replicas == 0 || c.replicas > c.backends {
            return Err(format!(
                "[cluster] replicas = {}: must be 1 to backends ({})",
                c.replicas, c.backends
            ));
        }
        if !(16..=65536).contains(&c.block_size) {
            return Err(format!(
                "[cluster] block_size = {}: must be 16 to 65536 bytes",
                c.block_size
            ));
        }
        for (i, extra) in self.extra_clusters.iter().enumerate() {
            let at = format!("[[extra_cluster]] {}", i + 1);
            if extra.name.is_empty()
                || !extra
                    .name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-')
                || extra.name == "main"
            {
                return Err(format!(
                    "{at}: name {:?} must be letters, digits and '-', and not \"main\"",
                    extra.name
                ));
            }
            if self.extra_clusters[..i]
                .iter()
                .any(|e| e.name == extra.name)
            {
                return Err(format!(
                    "{at}: a cluster named {:?} already exists",
                    extra.name
                ));
            }
            if !(1..=9).contains(&extra.backends)
                || extra.replicas == 0
                || extra.replicas > extra.backends
            {
                return Err(format!(
                    "{at}: backends must be 1 to 9 and replicas 1 to backends"
                ));
            }
        }
        // Filesystems created so far, by cluster: a step that must succeed cannot name one
        // that no earlier step creates.
        let mut created: BTreeSet<(String, String)> = BTreeSet::new();
        for (i, step) in self.steps.iter().enumerate() {
            let at = format!("step {} ({})", i + 1, step.action());
            if let Some(name) = step.cluster() {
                if name != "main" && !self.extra_clusters.iter().any(|e| e.name == name) {
                    return Err(format!("{at}: no cluster named {name:?}"));
                }
            }
            let cluster = step.cluster().unwrap_or("main").to_string();
            let (makes, names) = step_filesystems(step);
            for fs in names {
                let known = created.contains(&(cluster.clone(), fs.clone()));
                if makes {
                    created.insert((cluster.clone(), fs));
                } else if !known {
                    return Err(format!(
                        "{at}: no earlier step creates a filesystem named {fs:?} on cluster {cluster:?}"
                    ));
                }
            }
            self.check_step(step).map_err(|e| format!("{at}: {e}"))?;
        }
        Ok(())
    }

    fn check_step(&self, step: &Step) -> Result<(), String> {
        let n = self.cluster.backends;
        let kms_host = self.kms.kind.host();
        let backend_ok = |b: u32| {
            if b == 0 || b > n {
                Err(format!(
                    "backend = {b}, but the cluster has backends 1 to {n}"
                ))
            } else {
                Ok(())
            }
        };
        match step {
            Step::Restart { backend } | Step::Crash { backend } => backend_ok(*backend),
            Step::CrashAt {
                backend: Some(b), ..
            }
            | Step::Start { backend: Some(b) }
            | Step::DiskHeal { backend: Some(b) } => backend_ok(*b),
            Step::DiskFault {
                backend,
                probability,
                ..
            } => {
                backend.map_or(Ok(()), backend_ok)?;
                match probability {
                    Some(p) if !(*p > 0.0 && *p <= 1.0) => Err(format!(
                        "probability = {p}: a disk fault meets a read or write with a \
                         probability above 0 and at most 1"
                    )),
                    _ => Ok(()),
                }
            }
            Step::FsCreate { count: 0, .. } => Err("count must be at least 1".into()),
            Step::FsCreate { count, .. } if *count > MAX_FILESYSTEMS => Err(format!(
                "count = {count}: a step creates at most {MAX_FILESYSTEMS} filesystems"
            )),
            Step::KmsRotate { key: Some(key) } | Step::KmsTrim { key: Some(key), .. } => {
                if self.kms.kind != KmsKind::Vault {
                    return Err(format!(
                        "key = {key:?}: only a Vault key of a filesystem's own is rotated or \
                         trimmed by name (a KMIP key does not version)"
                    ));
                }
                if !self.kms.extra_keys.contains(key) {
                    return Err(format!(
                        "key = {key:?} is not one of [kms] extra_keys {:?}: the KMS has no \
                         such key (leave key out for the cluster key)",
                        self.kms.extra_keys
                    ));
                }
                Ok(())
            }
            Step::KmsRevokeKey if self.kms.kind == KmsKind::Vault => Err(
                "kms-revoke-key is KMIP's (a revoked, deactivated key): Vault has no such state"
                    .into(),
            ),
            Step::KmsRevokeSecretId if self.kms.kind == KmsKind::Kmip => Err(
                "kms-revoke-secret-id is Vault's (an AppRole secret-id): a KMIP client has a \
                 certificate"
                    .into(),
            ),
            Step::KmsSeal | Step::KmsUnseal if self.kms.kind == KmsKind::Kmip => {
                Err("a KMIP server has no seal: use kms-stop and kms-start, or kms-fault".into())
            }
            Step::Weka {
                command,
                expect_error,
                expect,
                expect_output,
                ..
            } => {
                if expect_error.is_some() && *expect != Expect::Ok {
                    return Err(format!(
                        "expect_error already says the command fails; drop expect = {:?}",
                        expect
                    ));
                }
                let cmd = weka_command(command).map_err(|e| format!("command {command:?}: {e}"))?;
                if expect_output.is_some() {
                    if !matches!(cmd, AdminCommand::FsList | AdminCommand::KmsShow) {
                        return Err(format!(
                            "expect_output: only `weka fs` and `weka security kms` print an \
                             answer to check, not {command:?}"
                        ));
                    }
                    if expect_error.is_some() || *expect != Expect::Ok {
                        return Err("expect_output checks an answer: it does not go with \
                                    expect_error or expect"
                            .into());
                    }
                }
                Ok(())
            }
            Step::Race {
                commands,
                kms_rotate,
            } => {
                if *kms_rotate && self.kms.kind != KmsKind::Vault {
                    return Err("kms_rotate: only a Vault key rotates (a KMIP key does not \
                                version)"
                        .into());
                }
                if commands.len() < 2 {
                    return Err(format!(
                        "a race needs at least 2 commands, not {}",
                        commands.len()
                    ));
                }
                for (i, command) in commands.iter().enumerate() {
                    weka_command(command).map_err(|e| format!("commands[{i}] {command:?}: {e}"))?;
                }
                Ok(())
            }
            Step::KmsFault {
                mode,
                delay,
                key: Some(_),
            } => key_scope(*mode, self.kms.kind).and_then(|()| fault_delay(*mode, *delay)),
            Step::KmsFault { mode, delay, .. } => fault_delay(*mode, *delay),
            Step::ObjectStoreFault { mode, .. }
                if *mode != Fault::None && !mode.is_byte_level() =>
            {
                Err(format!(
                    "the object store takes the byte-level faults only (none, refuse, hang, \
                     slow, malformed, truncated), not {:?}",
                    kebab(mode)
                ))
            }
            Step::ObjectStoreFault { mode, delay } => fault_delay(*mode, *delay),
            Step::Write { via: Some(g), .. }
            | Step::ReadVerify { via: Some(g), .. }
            | Step::ExpectLocked {
                backends: Some(g), ..
            } => {
                let hosts = host_group(g, n, kms_host)?;
                if hosts.iter().any(|h| h == kms_host) {
                    return Err(format!("{g:?} must name backends only"));
                }
                Ok(())
            }
            Step::Partition { a, b, .. } | Step::Hold { a, b } | Step::Release { a, b } => {
                let (a, b) = (host_group(a, n, kms_host)?, host_group(b, n, kms_host)?);
                if a.iter().any(|h| b.contains(h)) {
                    return Err("a host cannot be on both sides".into());
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }

    /// The filesystem names a `fs-create` step makes.
    pub fn fs_names(name: &str, count: u32) -> Vec<String> {
        if count == 1 {
            vec![name.to_string()]
        } else {
            (1..=count).map(|i| format!("{name}-{i}")).collect()
        }
    }
}

/// `key = ...` on a `kms-fault` step: a Vault protocol fault answers on one key only.
fn key_scope(mode: Fault, kind: KmsKind) -> Result<(), String> {
    if kind == KmsKind::Vault && !mode.is_byte_level() && mode != Fault::None {
        return Ok(());
    }
    Err(format!(
        "key = ... scopes a Vault protocol fault (error-500, error-503, rate-limit) to one \
         key; it does not go with {} on a {} KMS",
        kebab(&mode),
        if kind == KmsKind::Kmip {
            "KMIP"
        } else {
            "Vault"
        }
    ))
}

/// A fault's delay goes with `slow`, and only with it.
fn fault_delay(mode: Fault, delay: Option<Duration>) -> Result<(), String> {
    match (mode, delay) {
        (Fault::Slow, None) => Err("mode = \"slow\" needs a delay".into()),
        (Fault::Slow, Some(_)) | (_, None) => Ok(()),
        (other, Some(_)) => Err(format!(
            "delay only goes with mode = \"slow\", not {other:?}"
        )),
    }
}

/// A fault as scenario files spell it (`error-500`).
fn kebab(fault: &Fault) -> String {
    match serde_json::to_value(fault) {
        Ok(serde_json::Value::String(name)) => name,
        _ => format!("{fault:?}"),
    }
}

/// A `weka` step's command as it will run, with stand-ins for what the Vault setup
/// produces (the placeholders' values do not change what parses).
fn weka_command(command: &str) -> Result<AdminCommand, String> {
    // Placeholders stand for what the KMS setup creates; any file a command names reads
    // as a certificate-shaped placeholder (its contents are the KMS under test's).
    let line = substitute(command, "http://vault:8200", "t", "r", "s")
        .replace("$KMIP_ADDRESS", "kmip:5696")
        .replace("$KMIP_KEY_UID", "1")
        .replace("$KMIP_OTHER_CLIENT_CERT", "client.crt")
        .replace("$KMIP_OTHER_CLIENT_KEY", "client.key")
        .replace("$KMIP_CLIENT_CERT", "client.crt")
        .replace("$KMIP_CLIENT_KEY", "client.key")
        .replace("$KMIP_CA_CERT", "ca.crt");
    let read = |path: &str| {
        Ok(match path {
            "client.key" => "-----BEGIN PRIVATE KEY-----\n-----END PRIVATE KEY-----\n",
            _ => "-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n",
        }
        .to_string())
    };
    cluster::weka_cli::parse_with_files(&line, &read)
}

/// Puts the line number first so a person and a script both find it. Inside a
/// `[[step]]`, toml reports the line where the steps begin (the action decides a step's
/// type, and the field positions are lost on the way); when the message names a field or
/// quotes a value found further down, point at the line that holds it instead.
fn describe_toml_error(text: &str, e: &toml::de::Error) -> String {
    let message = e.message().trim().to_string();
    let Some(span) = e.span() else {
        return message;
    };
    let lines: Vec<&str> = text.lines().collect();
    let mut line = text[..span.start.min(text.len())].matches('\n').count() + 1;
    if let Some(token) = offending_token(&message) {
        let later = lines.iter().enumerate().skip(line).find(|(_, l)| {
            let l = l.trim_start();
            l.starts_with(&format!("{token} "))
                || l.starts_with(&format!("{token}="))
                || l.contains(&format!("\"{token}\""))
        });
        if let Some((i, _)) = later {
            line = i + 1;
        }
    }
    let snippet = lines.get(line - 1).map(|l| l.trim()).unwrap_or("");
    format!("line {line}: {message} (at `{snippet}`)")
}

/// The field in "unknown field `x`", the value in "unknown variant `x`" or in
/// `duration "x" ...`.
fn offending_token(message: &str) -> Option<&str> {
    for prefix in ["unknown field `", "unknown variant `"] {
        if let Some(rest) = message.strip_prefix(prefix) {
            return rest.split('`').next();
        }
    }
    let start = message.find('"')? + 1;
    let len = message[start..].find('"')?;
    Some(&message[start..start + len])
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::super::parse_duration;
    use super::*;

    const GOOD: &str = r#"
[scenario]
name = "t"
[[step]]
action = "kms-set"
auth = "token"
[[step]]
action = "wait-ready"
within = "5s"
"#;

    #[test]
    fn parses_a_small_scenario() {
        let s = Scenario::parse(GOOD).unwrap();
        assert_eq!(s.cluster.backends, 5);
        assert_eq!(s.steps.len(), 2);
        assert_eq!(
            s.steps[1],
            Step::WaitReady {
                within: Duration::from_secs(5),
                except: Vec::new(),
            }
        );
    }

    #[test]
    fn cluster_sizes_outside_their_ranges_are_refused_with_the_range() {
        let with = |cluster: &str| {
            Scenario::parse(&GOOD.replacen(
                "[[step]]",
                &format!("[cluster]\n{cluster}\n[[step]]"),
                1,
            ))
        };
        for (cluster, want) in [
            ("backends = 0", "backends = 0: must be 1 to 64"),
            ("backends = 1000", "backends = 1000: must be 1 to 64"),
            ("backends = 3\nvoters = 5", "voters = 5: must be 1 to 3"),
            ("backends = 15\nvoters = 9", "voters = 9: must be 1 to 7"),
            ("backends = 15\nvoters = 0", "voters = 0: must be 1 to 7"),
        ] {
            let err = with(cluster).expect_err(cluster);
            assert!(err.contains(want), "{cluster}: {err}");
        }
        let s = with("backends = 64\nvoters = 5").unwrap();
        assert_eq!((s.cluster.backends, s.cluster.voter_count()), (64, 5));
        // Unset: every backend votes, up to seven.
        assert_eq!(with("backends = 5").unwrap().cluster.voter_count(), 5);
        assert_eq!(with("backends = 15").unwrap().cluster.voter_count(), 7);
    }

    #[test]
    fn a_race_rotates_only_a_vault_key() {
        let with = |kind: &str| {
            Scenario::parse(&format!(
                "[scenario]\nname = \"t\"\n[kms]\ntype = \"{kind}\"\n[[step]]\n\
                 action = \"race\"\nkms_rotate = true\ncommands = [\"weka security kms \
                 rewrap\", \"weka fs create a default 1GiB --encrypted\"]\n"
            ))
        };
        let parsed = with("vault").unwrap();
        assert!(matches!(
            parsed.steps.last(),
            Some(Step::Race {
                kms_rotate: true,
                ..
            })
        ));
        let err = with("kmip").unwrap_err();
        assert!(
            err.contains("kms_rotate: only a Vault key rotates"),
            "{err}"
        );
    }

    #[test]
    fn ten_million_filesystems_are_refused() {
        let bad =
            format!("{GOOD}\n[[step]]\naction = \"fs-create\"\nname = \"x\"\ncount = 10000000\n");
        let err = Scenario::parse(&bad).unwrap_err();
        assert!(err.contains("count = 10000000"), "{err}");
        assert!(err.contains("at most 100000"), "{err}");
    }

    #[test]
    fn unknown_field_names_line_and_field() {
        let bad = GOOD.replace("auth = \"token\"", "auth = \"token\"\nauthh = 1");
        let err = Scenario::parse(&bad).unwrap_err();
        assert!(err.contains("line 7"), "{err}");
        assert!(err.contains("authh"), "{err}");
    }

    #[test]
    fn mistyped_value_is_reported() {
        let bad = GOOD.replace("within = \"5s\"", "within = \"5 parsecs\"");
        let err = Scenario::parse(&bad).unwrap_err();
        assert!(err.contains("line 9"), "{err}");
        assert!(err.contains("unit"), "{err}");
    }

    #[test]
    fn unknown_action_is_reported() {
        let bad = GOOD.replace("kms-set", "kms-sett");
        let err = Scenario::parse(&bad).unwrap_err();
        assert!(err.contains("kms-sett"), "{err}");
    }

    #[test]
    fn restart_of_missing_backend_is_refused() {
        let bad = format!("{GOOD}\n[[step]]\naction = \"restart\"\nbackend = 9\n");
        let err = Scenario::parse(&bad).unwrap_err();
        assert!(err.contains("step 3"), "{err}");
    }

    /// A disk fault's `target` defaults to the data blocks; `config` and `both` reach the
    /// config table's records; anything else is a load error that names the choices.
    #[test]
    fn disk_fault_target_defaults_to_blocks_and_a_bad_one_is_refused() {
        use cluster::disk::faults::FaultTarget;
        let step = |target: &str| {
            format!("{GOOD}\n[[step]]\naction = \"disk-fault\"\nmode = \"bit-rot\"\n{target}")
        };
        let target_of = |s: &Scenario| match &s.steps[2] {
            Step::DiskFault { target, .. } => *target,
            other => panic!("{other:?}"),
        };
        assert_eq!(
            target_of(&Scenario::parse(&step("")).unwrap()),
            FaultTarget::Blocks
        );
        for (name, target) in [("config", FaultTarget::Config), ("both", FaultTarget::Both)] {
            let s = Scenario::parse(&step(&format!("target = \"{name}\"\n"))).unwrap();
            assert_eq!(target_of(&s), target);
            // Written back, it reads the same; a default target is left out.
            let text = toml::to_string(&s).unwrap();
            assert_eq!(Scenario::parse(&text).unwrap(), s);
        }
        assert!(!toml::to_string(&Scenario::parse(&step("")).unwrap())
            .unwrap()
            .contains("target"));
        let err = Scenario::parse(&step("target = \"raft\"\n")).unwrap_err();
        assert!(err.contains("raft") && err.contains("config"), "{err}");
    }

    /// The object store has no protocol of faults: an HTTP status fault is refused at load,
    /// by name and step; a delay goes with `slow` only, as for the KMS.
    #[test]
    fn object_store_faults_are_the_byte_level_ones() {
        let step = |mode: &str, extra: &str| {
            format!("{GOOD}\n[[step]]\naction = \"object-store-fault\"\nmode = \"{mode}\"\n{extra}")
        };
        for mode in ["refuse", "hang", "malformed", "truncated", "none"] {
            Scenario::parse(&step(mode, "")).unwrap_or_else(|e| panic!("{mode}: {e}"));
        }
        Scenario::parse(&step("slow", "delay = \"1s\"\n")).unwrap();
        for mode in ["error-500", "error-503", "rate-limit"] {
            let err = Scenario::parse(&step(mode, "")).unwrap_err();
            assert!(err.contains("step 3"), "{err}");
            assert!(err.contains("byte-level faults only"), "{err}");
            assert!(err.contains(mode), "{err}");
        }
        let err = Scenario::parse(&step("slow", "")).unwrap_err();
        assert!(err.contains("needs a delay"), "{err}");
        let err = Scenario::parse(&step("hang", "delay = \"1s\"\n")).unwrap_err();
        assert!(err.contains("delay only goes with"), "{err}");
    }

    /// A KMS fault scoped to one key is a Vault protocol answer: refused with a byte-level
    /// mode, with `none`, and on a KMIP KMS.
    #[test]
    fn a_fault_on_one_key_is_a_vault_protocol_fault() {
        let step = |mode: &str| {
            format!("{GOOD}\n[[step]]\naction = \"kms-fault\"\nmode = \"{mode}\"\nkey = \"tenant-key\"\n")
        };
        for mode in ["error-500", "error-503", "rate-limit"] {
            Scenario::parse(&step(mode)).unwrap_or_else(|e| panic!("{mode}: {e}"));
        }
        for mode in ["hang", "refuse", "none"] {
            let err = Scenario::parse(&step(mode)).unwrap_err();
            assert!(err.contains("scopes a Vault protocol fault"), "{err}");
        }
        let kmip = step("error-503").replace("[scenario]", "[kms]\ntype = \"kmip\"\n\n[scenario]");
        let err = Scenario::parse(&kmip).unwrap_err();
        assert!(err.contains("KMIP KMS"), "{err}");
    }

    /// A rotation or trim of a filesystem's own key names a key the KMS was given, and
    /// only on Vault.
    #[test]
    fn an_own_key_rotated_or_trimmed_is_a_vault_extra_key() {
        let with = |kms: &str, action: &str, key: &str| {
            format!("[kms]\n{kms}\n{GOOD}\n[[step]]\naction = \"{action}\"\nkey = \"{key}\"\n")
        };
        let vault = "type = \"vault\"\nextra_keys = [\"fs-key\"]";
        for action in ["kms-rotate", "kms-trim"] {
            let s = Scenario::parse(&with(vault, action, "fs-key"))
                .unwrap_or_else(|e| panic!("{action}: {e}"));
            assert!(matches!(
                s.steps.last(),
                Some(Step::KmsRotate { key: Some(k) } | Step::KmsTrim { key: Some(k), .. }) if k == "fs-key"
            ));
            let err = Scenario::parse(&with(vault, action, "other")).unwrap_err();
            assert!(
                err.contains("\"other\" is not one of [kms] extra_keys"),
                "{err}"
            );
            let kmip = "type = \"kmip\"\nextra_keys = [\"fs-key\"]";
            let err = Scenario::parse(&with(kmip, action, "fs-key")).unwrap_err();
            assert!(err.contains("only a Vault key"), "{err}");
        }
    }

    /// Only the commands that print an answer take `expect_output`, and a column the
    /// model has no data for is refused at load.
    #[test]
    fn expect_output_goes_with_the_listing_commands() {
        let with = |command: &str, extra: &str| {
            format!("{GOOD}\n[[step]]\naction = \"weka\"\ncommand = \"{command}\"\n{extra}")
        };
        let ok = with("weka fs -o name --no-header", "expect_output = \"fs1\"\n");
        Scenario::parse(&ok).unwrap();
        Scenario::parse(&with("weka security kms", "expect_output = \"Token\"\n")).unwrap();
        let err = Scenario::parse(&with("weka security kms rewrap", "expect_output = \"x\"\n"))
            .unwrap_err();
        assert!(
            err.contains("only `weka fs` and `weka security kms`"),
            "{err}"
        );
        let err = Scenario::parse(&with(
            "weka fs",
            "expect_output = \"x\"\nexpect = \"any\"\n",
        ))
        .unwrap_err();
        assert!(err.contains("does not go with"), "{err}");
        let err = Scenario::parse(&with("weka fs -o name,usedTotal", "")).unwrap_err();
        assert!(err.contains("\"usedTotal\" is a WEKA column"), "{err}");
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert!(parse_duration("5").is_err());
        assert!(parse_duration("s").is_err());
        assert_eq!(parse_duration("3h").unwrap(), Duration::from_secs(3 * 3600));
        let err = parse_duration("99999999999999999h").unwrap_err();
        assert!(err.contains("too long"), "{err}");
        let err = parse_duration("2d").unwrap_err();
        assert!(err.contains("use ms, s, m or h"), "{err}");
    }
}
