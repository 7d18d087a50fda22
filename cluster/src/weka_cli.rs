//! WEKA's CLI syntax, parsed into admin commands, so a scenario (and later a person's own
//! runbook) can say `security kms set vault ... --role-id ...` the way an admin types it.
//!
//! Both spellings are accepted where WEKA has two: `security kms set` and the older
//! `kms set`; `fs create <name> <group> <capacity>` and the newer `fs add <name> <capacity>`.
//! A leading `weka` is optional. Values hold no spaces (no shell quoting).
//!
//! `security kms set kmip` names certificate and key files, but a backend wants their
//! contents, so its caller passes a file reader to [`parse_with_files`]. [`parse`] has no
//! file access (a seeded run must not read the host's disk) and refuses that one command.

use crate::admin::{AdminCommand, KmsSetKmip, KmsSetVault, PemKind};
use crate::secret::Secret;
use crate::weka_print::{FsColumn, FsView};

/// Reads the file a flag names. Its error says why it could not (never what the file holds).
pub type ReadFile<'a> = &'a dyn Fn(&str) -> Result<String, String>;

/// Parses one command line; the error says which word is wrong and why.
pub fn parse(line: &str) -> Result<AdminCommand, String> {
    parse_with_files(line, &|_: &str| {
        Err("this parser has no file access; `security kms set kmip` needs one that reads the files it names".into())
    })
}

/// [`parse`], with `read` to fetch the files `security kms set kmip` names.
pub fn parse_with_files(line: &str, read: ReadFile<'_>) -> Result<AdminCommand, String> {
    let words: Vec<&str> = line.split_whitespace().collect();
    let words = match words.first() {
        Some(&"weka") => &words[1..],
        _ => &words[..],
    };
    match words {
        ["security", "kms", "set", rest @ ..] | ["kms", "set", rest @ ..] => kms_set(rest, read),
        ["security", "kms"] | ["security", "kms", "--json"] => Ok(AdminCommand::KmsShow),
        ["security", "kms", "reset" | "unset", rest @ ..] => match split(rest, &[])? {
            (positional, flags) if positional.is_empty() && flags.is_empty() => {
                Ok(AdminCommand::KmsReset)
            }
            _ => Err("usage: security kms reset (older: security kms unset)".into()),
        },
        ["security", "kms", "rewrap"] => Ok(AdminCommand::KmsRewrap),
        ["security", "kms", "rewrap", "--all"] => Ok(AdminCommand::KmsRewrapAll),
        ["security", "kms", "rewrap", "--convert-to-cluster-key-on-fs"]
        | ["security", "kms", "rewrap", "--convert-to-cluster-key-on-fs", "--all"]
        | ["security", "kms", "rewrap", "--all", "--convert-to-cluster-key-on-fs"] => {
            Ok(AdminCommand::KmsRewrapConvert)
        }
        ["security", "kms", "rewrap", rest @ ..]
            if rest.contains(&"--all") && rest.contains(&"--new-key-uid") =>
        {
            Err("--all re-wraps each filesystem's own key by its newest version, which a KMIP \
                 key does not have: give --new-key-uid alone"
                .into())
        }
        // Whether the KMS is KMIP (which needs it) or Vault (which refuses it) only the
        // backend knows; it checks.
        ["security", "kms", "rewrap", "--new-key-uid", uid] if !uid.starts_with("--") => {
            Ok(AdminCommand::KmsRewrapTo {
                new_key_uid: uid.to_string(),
            })
        }
        ["security", "kms", "rewrap", "--new-key-uid"] => Err("--new-key-uid needs a value".into()),
        ["security", "kms", "rewrap", ..] => {
            Err("usage: security kms rewrap [--all] [--convert-to-cluster-key-on-fs] | --new-key-uid <uid> (--all: filesystems on keys of their own too; --convert-to-cluster-key-on-fs: moved to the cluster key; --new-key-uid: the new key UID for a KMIP KMS)".into())
        }
        ["fs", "snapshot", "upload", fs, snapshot] => Ok(AdminCommand::SnapshotUpload {
            fs: fs.to_string(),
            snapshot: snapshot.to_string(),
        }),
        ["fs", "snapshot", "upload", ..] => {
            Err("usage: fs snapshot upload <fs> <snapshot>".into())
        }
        ["fs", "download", rest @ ..] => fs_download(rest),
        ["fs", "snapshot"] | ["fs", "snapshot", "--json"] => Ok(AdminCommand::SnapshotList),
        ["fs", "update", name, "--kms-key-identifier", key] => Ok(AdminCommand::FsUpdate {
            name: name.to_string(),
            kms_key: Some(key.to_string()),
        }),
        ["fs", "update", name, "--use-cluster-kms-key-identifier"] => Ok(AdminCommand::FsUpdate {
            name: name.to_string(),
            kms_key: None,
        }),
        ["fs", "update", ..] => Err(
            "usage: fs update <name> (--kms-key-identifier <key> | --use-cluster-kms-key-identifier); \
             per-filesystem namespaces and roles are not modelled yet"
                .into(),
        ),
        ["fs", "kms-rewrap", name] if !name.starts_with("--") => Ok(AdminCommand::FsKmsRewrap {
            name: name.to_string(),
        }),
        ["fs", "kms-rewrap", ..] => Err("usage: fs kms-rewrap <name>".into()),
        ["fs", "create", rest @ ..] => fs_create(rest, 3),
        ["fs", "add", rest @ ..] => fs_create(rest, 2),
        ["fs"] => Ok(AdminCommand::FsList),
        ["fs", first, ..] if first.starts_with('-') => {
            fs_view_flags(&words[1..])?;
            Ok(AdminCommand::FsList)
        }
        [] => Err("empty command".into()),
        _ => Err(format!(
            "unsupported command {:?}: known are `security kms set vault`, `security kms`, `security kms rewrap`, `fs snapshot upload`, `fs download`, \
             `fs kms-rewrap`, `fs create`, `fs add`, `fs`",
            words.join(" ")
        )),
    }
}

/// WEKA's switches (flags without a value) that no command here accepts yet.
const UNMODELLED_SWITCHES: [&str; 4] = [
    "allow-no-kms",
    "convert-to-cluster-key-on-fs",
    "allow-downgrade",
    "force",
];

/// How `line` prints its answer, if it is `weka fs` (its `-o/--output`, `--filter`,
/// `--no-header` and `--json`); `None` for any other command. The scenario runner and any
/// other printer of answers take the view from here, so a command is parsed one way.
pub fn fs_view(line: &str) -> Result<Option<FsView>, String> {
    let words: Vec<&str> = line.split_whitespace().collect();
    let words = match words.first() {
        Some(&"weka") => &words[1..],
        _ => &words[..],
    };
    match words {
        ["fs"] => Ok(Some(FsView::default())),
        ["fs", first, rest @ ..] if first.starts_with('-') => {
            let mut flags = vec![*first];
            flags.extend_from_slice(rest);
            fs_view_flags(&flags).map(Some)
        }
        _ => Ok(None),
    }
}

/// `weka fs`'s flags, as a view.
fn fs_view_flags(words: &[&str]) -> Result<FsView, String> {
    let mut view = FsView::default();
    let mut i = 0;
    while i < words.len() {
        let flag = words[i];
        let value = || {
            words
                .get(i + 1)
                .filter(|v| !v.starts_with('-'))
                .copied()
                .ok_or_else(|| format!("{flag} needs a value"))
        };
        match flag {
            "-o" | "--output" => {
                view.columns = value()?
                    .split(',')
                    .map(FsColumn::parse)
                    .collect::<Result<_, _>>()
                    .map_err(|e| format!("{flag}: {e}"))?;
                i += 2;
            }
            "--filter" => {
                let (key, wanted) = value()?
                    .split_once('=')
                    .ok_or_else(|| format!("--filter takes column=value, not {:?}", words[i + 1]))?;
                let column = FsColumn::parse(key).map_err(|e| format!("--filter: {e}"))?;
                view.filters.push((column, wanted.to_string()));
                i += 2;
            }
            "--no-header" => {
                view.header = false;
                i += 1;
            }
            "--json" => {
                view.json = true;
                i += 1;
            }
            other => {
                return Err(format!(
                    "unknown flag {other} for `fs`: known are -o/--output, --filter, --no-header, --json"
                ))
            }
        }
    }
    Ok(view)
}

/// A flag and its value (`None` for a bare switch).
type Flag<'a> = (&'a str, Option<&'a str>);

/// Splits positional words from `--flag value` pairs and bare `--switch`es.
fn split<'a>(
    words: &[&'a str],
    switches: &[&str],
) -> Result<(Vec<&'a str>, Vec<Flag<'a>>), String> {
    let mut positional = Vec::new();
    let mut flags = Vec::new();
    let mut i = 0;
    while i < words.len() {
        let w = words[i];
        if let Some(flag) = w.strip_prefix("--") {
            if UNMODELLED_SWITCHES.contains(&flag) && !switches.contains(&flag) {
                // Said plainly: read as a flag wanting a value, it would be refused with
                // "needs a value", which sends the admin looking for the wrong mistake.
                return Err(format!(
                    "--{flag} is a WEKA switch this model does not support yet"
                ));
            }
            if switches.contains(&flag) {
                flags.push((flag, None));
                i += 1;
            } else {
                let value = words
                    .get(i + 1)
                    .filter(|v| !v.starts_with("--"))
                    .ok_or_else(|| format!("--{flag} needs a value"))?;
                flags.push((flag, Some(*value)));
                i += 2;
            }
        } else {
            positional.push(w);
            i += 1;
        }
    }
    Ok((positional, flags))
}

fn kms_set(words: &[&str], read: ReadFile<'_>) -> Result<AdminCommand, String> {
    let (pos, flags) = split(words, &[])?;
    let (url, key) = match pos.as_slice() {
        ["vault", url, key] => (url.to_string(), key.to_string()),
        ["kmip", address, key_uid] => return kmip_set(address, key_uid, &flags, read),
        ["kmip", ..] => {
            return Err(
                "usage: security kms set kmip <host:port> <key-uid> --client-cert F --client-key F [--ca-cert F]"
                    .into(),
            )
        }
        _ => {
            return Err(
                "usage: security kms set vault <url> <key-name> (--token T | --role-id R --secret-id S)"
                    .into(),
            )
        }
    };
    let mut args = KmsSetVault::new(url, key);
    for (flag, value) in flags {
        let value = value.unwrap_or_default().to_string();
        match flag {
            "token" => args.token = Some(Secret::new(value)),
            "role-id" => args.role_id = Some(value),
            "secret-id" => args.secret_id = Some(Secret::new(value)),
            "namespace" => args.namespace = Some(value),
            "transit-path" => args.transit_path = Some(value),
            "auth-path" => args.auth_path = Some(value),
            "client-cert" | "client-key" | "ca-cert" => {
                return Err(format!(
                    "--{flag} is a KMIP flag; a Vault KMS does not take it"
                ))
            }
            other => {
                return Err(format!(
                    "unknown flag --{other} for `security kms set vault`"
                ))
            }
        }
    }
    // The same rules `security kms set` enforces on a backend, checked before anything runs.
    args.clone().into_config().map_err(|e| e.to_string())?;
    Ok(AdminCommand::KmsSet(args))
}

/// `security kms set kmip`: the flags checked first, then the files read, then the
/// backend's own rules applied, so a mistake is reported before any file is touched.
fn kmip_set(
    address: &str,
    key_uid: &str,
    flags: &[Flag<'_>],
    read: ReadFile<'_>,
) -> Result<AdminCommand, String> {
    let mut args = KmsSetKmip::new(address, key_uid);
    let mut files: Vec<(&str, &str)> = Vec::new();
    for (flag, value) in flags {
        match *flag {
            "client-cert" | "client-key" | "ca-cert" => {
                files.retain(|(f, _)| f != flag);
                files.push((flag, value.unwrap_or_default()));
            }
            "token" | "role-id" | "secret-id" | "namespace" | "transit-path" | "auth-path" => {
                args.vault_flags.push(flag.to_string())
            }
            other => {
                return Err(format!(
                    "unknown flag --{other} for `security kms set kmip`"
                ))
            }
        }
    }
    // A Vault flag is refused (by the backend's rule, which names it) before any file is read.
    if !args.vault_flags.is_empty() {
        args.clone().into_config().map_err(|e| e.to_string())?;
    }
    for (flag, path) in files {
        let text = read(path).map_err(|why| format!("--{flag} {path}: {why}"))?;
        let kind = match flag {
            "client-key" => PemKind::PrivateKey,
            _ => PemKind::Certificate,
        };
        kind.check(&text)
            .map_err(|why| format!("--{flag} {path} {why}"))?;
        match flag {
            "client-cert" => args.client_cert_pem = Some(text),
            "client-key" => args.client_key_pem = Some(Secret::new(text)),
            _ => args.ca_cert_pem = Some(text),
        }
    }
    // The same rules `security kms set` enforces on a backend, checked before anything runs.
    args.clone().into_config().map_err(|e| e.to_string())?;
    Ok(AdminCommand::KmsSetKmip(args))
}

fn fs_create(words: &[&str], positional: usize) -> Result<AdminCommand, String> {
    let (pos, flags) = split(words, &["encrypted"])?;
    let (name, capacity) = match (positional, pos.as_slice()) {
        (3, [name, _, capacity]) | (2, [name, capacity]) => (*name, *capacity),
        (3, _) => return Err(
            "usage: fs create <name> <group> <capacity> [--encrypted [--kms-key-identifier <key>]]"
                .into(),
        ),
        _ => {
            return Err(
                "usage: fs add <name> <capacity> [--encrypted [--kms-key-identifier <key>]]".into(),
            )
        }
    };
    let mut encrypted = false;
    let mut kms_key = None;
    for (flag, value) in flags {
        match (flag, value) {
            ("encrypted", _) => encrypted = true,
            ("kms-key-identifier", Some(key)) => kms_key = Some(key.to_string()),
            ("kms-namespace" | "kms-role-id" | "kms-secret-id", _) => {
                return Err(format!(
                    "--{flag}: per-filesystem namespaces and credentials are not modelled yet \
                     (a filesystem's own key is reached with the cluster's)"
                ))
            }
            (other, _) => return Err(format!("unknown flag --{other} for `fs create`")),
        }
    }
    if kms_key.is_some() && !encrypted {
        return Err("--kms-key-identifier needs --encrypted: only an encrypted filesystem has a key to wrap".into());
    }
    Ok(AdminCommand::FsCreate {
        name: name.to_string(),
        capacity_gib: parse_capacity(capacity)?,
        encrypted,
        kms_key,
    })
}

fn fs_download(words: &[&str]) -> Result<AdminCommand, String> {
    match words {
        [name, _group, capacity, _ssd_capacity, bucket, locator] => Ok(AdminCommand::FsDownload {
            name: name.to_string(),
            capacity_gib: parse_capacity(capacity)?,
            bucket: bucket.to_string(),
            locator: locator.to_string(),
        }),
        _ => Err(
            "usage: fs download <name> <group> <capacity> <ssd-capacity> <obs-bucket> <locator>"
                .into(),
        ),
    }
}

/// `10GiB`, `1TiB`, `500GB`, `2TB`, rounded up to whole GiB.
fn parse_capacity(text: &str) -> Result<u64, String> {
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (num, unit) = text.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("capacity {text:?} must start with a whole number"))?;
    let bytes: u128 = match unit {
        "GiB" => n as u128 * (1 << 30),
        "TiB" => n as u128 * (1 << 40),
        "GB" => n as u128 * 1_000_000_000,
        "TB" => n as u128 * 1_000_000_000_000,
        _ => return Err(format!("capacity {text:?}: use GiB, TiB, GB or TB")),
    };
    Ok(bytes.div_ceil(1 << 30) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kms_set_both_spellings() {
        for line in [
            "weka security kms set vault http://v:8200 weka-key --token t",
            "kms set vault http://v:8200 weka-key --token t",
        ] {
            assert!(matches!(parse(line), Ok(AdminCommand::KmsSet(_))), "{line}");
        }
    }

    #[test]
    fn token_with_role_id_is_refused() {
        let err =
            parse("security kms set vault http://v:8200 k --token t --role-id r --secret-id s")
                .unwrap_err();
        assert!(err.contains("--token and --role-id"), "{err}");
    }

    #[test]
    fn kmip_flags_refused_for_vault() {
        let err =
            parse("security kms set vault http://v:8200 k --token t --client-cert c").unwrap_err();
        assert!(err.contains("KMIP"), "{err}");
    }

    #[test]
    fn fs_create_and_add() {
        assert_eq!(
            parse("fs create data default 1TiB --encrypted").unwrap(),
            AdminCommand::FsCreate {
                name: "data".into(),
                capacity_gib: 1024,
                encrypted: true,
                kms_key: None,
            }
        );
        assert_eq!(
            parse("weka fs add logs 10GB").unwrap(),
            AdminCommand::FsCreate {
                name: "logs".into(),
                capacity_gib: 10,
                encrypted: false,
                kms_key: None,
            }
        );
        assert!(parse("fs create data 1TiB").is_err());
        assert!(parse("fs create data default 1PB").is_err());
    }

    #[test]
    fn snapshot_upload_and_download() {
        assert_eq!(
            parse("weka fs snapshot upload data nightly").unwrap(),
            AdminCommand::SnapshotUpload {
                fs: "data".into(),
                snapshot: "nightly".into()
            }
        );
        assert_eq!(
            parse("fs download copy default 10GiB 1GiB weka-snapshots data/nightly").unwrap(),
            AdminCommand::FsDownload {
                name: "copy".into(),
                capacity_gib: 10,
                bucket: "weka-snapshots".into(),
                locator: "data/nightly".into()
            }
        );
        assert!(parse("fs download copy default 10GiB").is_err());
    }

    #[test]
    fn unknown_command() {
        assert!(parse("cluster destroy")
            .unwrap_err()
            .contains("unsupported"));
    }

    use std::cell::Cell;

    const CERT: &str = "-----BEGIN CERTIFICATE-----\nY2VydA==\n-----END CERTIFICATE-----\n";
    const KEY: &str =
        "-----BEGIN EC PRIVATE KEY-----\nc2VjcmV0LWtleQ==\n-----END EC PRIVATE KEY-----\n";

    /// Files by name, counting the reads.
    fn files<'a>(reads: &'a Cell<usize>) -> impl Fn(&str) -> Result<String, String> + 'a {
        move |path: &str| {
            reads.set(reads.get() + 1);
            match path {
                "/pki/client.pem" | "/pki/ca.pem" => Ok(CERT.into()),
                "/pki/client.key" => Ok(KEY.into()),
                _ => Err("No such file or directory".into()),
            }
        }
    }

    fn kmip(line: &str) -> Result<AdminCommand, String> {
        let reads = Cell::new(0);
        let read = files(&reads);
        parse_with_files(line, &read)
    }

    #[test]
    fn kms_set_kmip_both_spellings() {
        for line in [
            "weka security kms set kmip kms.example:5696 1 --client-cert /pki/client.pem --client-key /pki/client.key --ca-cert /pki/ca.pem",
            "kms set kmip kms.example 1 --client-key /pki/client.key --client-cert /pki/client.pem --ca-cert /pki/ca.pem",
        ] {
            let Ok(AdminCommand::KmsSetKmip(args)) = kmip(line) else {
                panic!("{line}: {:?}", kmip(line));
            };
            assert_eq!(args.client_cert_pem.as_deref(), Some(CERT));
            assert_eq!(args.client_key_pem.as_ref().map(|k| k.expose()), Some(KEY));
            assert_eq!(args.ca_cert_pem.as_deref(), Some(CERT));
            let config = args.into_config().unwrap();
            assert_eq!(config.describe(), "kmip kms.example:5696 key 1");
        }
    }

    #[test]
    fn kms_set_kmip_refusals() {
        let err = kmip("security kms set kmip https://kms:5696 1 --client-cert /pki/client.pem --client-key /pki/client.key").unwrap_err();
        assert!(err.contains("no scheme"), "{err}");
        let err =
            kmip("security kms set kmip kms:5696 1 --client-cert /pki/client.pem").unwrap_err();
        assert!(
            err.contains("--client-key") && err.contains("required"),
            "{err}"
        );
        let err = kmip("security kms set kmip kms 1").unwrap_err();
        assert!(err.contains("--client-cert"), "{err}");
        let err = kmip("security kms set kmip kms 1 --client-cert /pki/client.pem --client-key /pki/client.key --bogus x").unwrap_err();
        assert!(err.contains("--bogus"), "{err}");
        assert!(kmip("security kms set kmip kms")
            .unwrap_err()
            .starts_with("usage"));
    }

    #[test]
    fn vault_flags_with_kmip_are_refused_before_any_file_is_read() {
        for flag in [
            "--token t",
            "--role-id r",
            "--secret-id s",
            "--namespace n",
            "--transit-path p",
        ] {
            let reads = Cell::new(0);
            let line = format!("security kms set kmip kms 1 --client-cert /pki/client.pem --client-key /pki/client.key {flag}");
            let err = parse_with_files(&line, &files(&reads)).unwrap_err();
            let name = flag.split(' ').next().unwrap();
            assert!(err.contains(name) && err.contains("Vault"), "{err}");
            assert_eq!(reads.get(), 0, "{flag}");
        }
    }

    #[test]
    fn file_errors_name_flag_and_path_never_contents() {
        let err = kmip("security kms set kmip kms 1 --client-cert /pki/missing.pem --client-key /pki/client.key").unwrap_err();
        assert!(
            err.contains("--client-cert") && err.contains("/pki/missing.pem"),
            "{err}"
        );
        // The key file given as the certificate: named, not quoted.
        let err = kmip("security kms set kmip kms 1 --client-cert /pki/client.key --client-key /pki/client.key").unwrap_err();
        assert!(err.contains("--client-cert /pki/client.key"), "{err}");
        assert!(!err.contains("c2VjcmV0"), "{err}");
        // The certificate given as the key.
        let err = kmip("security kms set kmip kms 1 --client-cert /pki/client.pem --client-key /pki/client.pem").unwrap_err();
        assert!(
            err.contains("--client-key /pki/client.pem") && !err.contains("Y2VydA"),
            "{err}"
        );
    }

    #[test]
    fn parse_alone_reads_no_files() {
        let err = parse("security kms set kmip kms 1 --client-cert /pki/client.pem --client-key /pki/client.key").unwrap_err();
        assert!(
            err.contains("/pki/client.pem") && err.contains("file access"),
            "{err}"
        );
        // Every other command is unchanged.
        assert!(matches!(
            parse("weka security kms set vault http://v:8200 k --token t"),
            Ok(AdminCommand::KmsSet(_))
        ));
    }

    #[test]
    fn rewrap_forms() {
        assert_eq!(
            parse("weka security kms rewrap").unwrap(),
            AdminCommand::KmsRewrap
        );
        assert_eq!(
            parse("security kms rewrap --new-key-uid 2").unwrap(),
            AdminCommand::KmsRewrapTo {
                new_key_uid: "2".into()
            }
        );
        assert!(parse("security kms rewrap --new-key-uid")
            .unwrap_err()
            .contains("needs a value"));
        for line in [
            "fs create fs1 default 1GiB --encrypted --allow-no-kms",
            "security kms set vault http://v:8200 k --token t --convert-to-cluster-key-on-fs",
        ] {
            let err = parse(line).unwrap_err();
            assert!(err.contains("does not support yet"), "{line}: {err}");
            assert!(!err.contains("needs a value"), "{line}: {err}");
        }
        assert!(parse("security kms rewrap --new-key-uid --all").is_err());
        assert!(parse("security kms rewrap --bogus").is_err());
    }

    #[test]
    fn fs_listing_flags() {
        let line = "weka fs --output name,group,availableTotal,status,encrypted --filter encrypted=True --no-header";
        assert_eq!(parse(line).unwrap(), AdminCommand::FsList);
        let view = fs_view(line).unwrap().unwrap();
        assert_eq!(view.columns.len(), 5);
        assert_eq!(view.filters, vec![(FsColumn::Encrypted, "True".into())]);
        assert!(!view.header && !view.json);
        assert!(fs_view("fs -o kmsKey --json").unwrap().unwrap().json);
        assert_eq!(fs_view("weka fs").unwrap(), Some(FsView::default()));
        assert_eq!(fs_view("weka security kms").unwrap(), None);
        for (line, wanted) in [
            ("fs -o", "-o needs a value"),
            ("fs --filter encrypted", "column=value"),
            ("fs -o name,usedSSD", "no data for"),
            ("fs --filter colour=red", "unknown column \"colour\""),
            ("fs --bogus", "unknown flag --bogus"),
        ] {
            let err = parse(line).unwrap_err();
            assert!(err.contains(wanted), "{line}: {err}");
        }
    }

    #[test]
    fn rewrap_all_and_one() {
        assert_eq!(
            parse("weka security kms rewrap --all").unwrap(),
            AdminCommand::KmsRewrapAll
        );
        for line in [
            "security kms rewrap --convert-to-cluster-key-on-fs",
            "security kms rewrap --all --convert-to-cluster-key-on-fs",
            "weka security kms rewrap --convert-to-cluster-key-on-fs --all",
        ] {
            assert_eq!(
                parse(line).unwrap(),
                AdminCommand::KmsRewrapConvert,
                "{line}"
            );
        }
        let err = parse("security kms rewrap --all --new-key-uid 2").unwrap_err();
        assert!(err.contains("--all") && err.contains("KMIP"), "{err}");
        assert_eq!(
            parse("weka fs kms-rewrap data").unwrap(),
            AdminCommand::FsKmsRewrap {
                name: "data".into()
            }
        );
        for line in ["weka security kms reset", "security kms unset"] {
            assert_eq!(parse(line).unwrap(), AdminCommand::KmsReset, "{line}");
        }
        for flag in ["--force", "--allow-downgrade"] {
            let err = parse(&format!("security kms reset {flag}")).unwrap_err();
            assert!(err.contains("does not support yet"), "{flag}: {err}");
        }
        let err = parse("security kms reset now").unwrap_err();
        assert!(err.starts_with("usage: security kms reset"), "{err}");
        for line in ["fs kms-rewrap", "fs kms-rewrap a b", "fs kms-rewrap --all"] {
            let err = parse(line).unwrap_err();
            assert!(err.starts_with("usage: fs kms-rewrap"), "{line}: {err}");
        }
    }

    #[test]
    fn fs_create_with_a_key_of_its_own() {
        assert_eq!(
            parse("fs add data 1TiB --encrypted --kms-key-identifier tenant-key").unwrap(),
            AdminCommand::FsCreate {
                name: "data".into(),
                capacity_gib: 1024,
                encrypted: true,
                kms_key: Some("tenant-key".into()),
            }
        );
        let err = parse("fs add data 1TiB --kms-key-identifier tenant-key").unwrap_err();
        assert!(err.contains("needs --encrypted"), "{err}");
        let err = parse("fs add data 1TiB --encrypted --kms-key-identifier").unwrap_err();
        assert!(err.contains("needs a value"), "{err}");
        let err = parse("fs add data 1TiB --encrypted --kms-secret-id s").unwrap_err();
        assert!(
            err.contains("--kms-secret-id") && err.contains("not modelled"),
            "{err}"
        );
        // The secret itself is never echoed back.
        assert!(!err.contains(" s "), "{err}");
    }
}
