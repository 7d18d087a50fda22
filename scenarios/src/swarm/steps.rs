//! How a swarm plan's operations become scenario steps, and the names they give out.

use std::time::Duration;

use cluster::hooks::CrashPoint;
use kms_sim::chaos::Fault;

use super::{Op, Racer};
use crate::runner::derive_seed;
use crate::scenario::{Expect, KmsKind, Step};

/// Names a plan gives out as its operations become steps.
#[derive(Default)]
pub(super) struct Names {
    created: u32,
    /// Whether the last filesystem created was encrypted (a retry asks the same).
    last_encrypted: bool,
    downloads: u32,
    uploads: Vec<String>,
    /// The run's seed, and the crash points armed and the credentials revoked so far:
    /// each draws what it does from them.
    seed: u64,
    crash_points: u32,
    revocations: u32,
    /// Races with a rewrap, on Vault, so far: each draws whether the key rotates during it.
    rewrap_races: u32,
    /// Planned rotations, on Vault, so far: each draws whether the filesystems' own key
    /// rotates too (and the rewrap takes `--all`).
    rotations: u32,
}

impl Names {
    pub(super) fn for_seed(seed: u64) -> Names {
        Names {
            seed,
            ..Names::default()
        }
    }
}

fn weka(command: String) -> Step {
    Step::Weka {
        cluster: None,
        command,
        expect_error: None,
        expect: Expect::Any,
        expect_output: None,
    }
}

/// `fs snapshot upload` of `fs<n>` under the next snapshot name.
fn upload(fs: u32, names: &mut Names) -> Step {
    let snapshot = format!("s{}", names.uploads.len() + 1);
    names.uploads.push(format!("fs{fs}/{snapshot}"));
    weka(format!("weka fs snapshot upload fs{fs} {snapshot}"))
}

/// `fs download` of the latest snapshot uploaded so far into a new filesystem; none
/// before the first upload.
fn download(names: &mut Names) -> Option<Step> {
    let locator = names.uploads.last()?;
    names.downloads += 1;
    Some(weka(format!(
        "weka fs download dl{} default 10GiB 1GiB weka-snapshots {locator}",
        names.downloads
    )))
}

/// The key `fs update --kms-key-identifier` moves filesystems to.
pub(super) const FS_KEY: &str = "fs-key";

pub(super) fn op_steps(op: &Op, kms: KmsKind, names: &mut Names) -> Vec<Step> {
    let any = Expect::Any;
    match op {
        Op::MoveKey { fs, own: true } => {
            let key = match kms {
                KmsKind::Vault => FS_KEY.to_string(),
                KmsKind::Kmip => format!("$KMIP_KEY_UID({FS_KEY})"),
            };
            vec![weka(format!(
                "weka fs update fs{fs} --kms-key-identifier {key}"
            ))]
        }
        Op::MoveKey { fs, own: false } => vec![weka(format!(
            "weka fs update fs{fs} --use-cluster-kms-key-identifier"
        ))],
        Op::SnapshotUpload { fs } => vec![upload(*fs, names)],
        Op::Download => download(names).into_iter().collect(),
        Op::OwnKeySnapshot { fs } => {
            let mut steps = op_steps(&Op::MoveKey { fs: *fs, own: true }, kms, names);
            // Every filesystem: `fs<n>` may not exist (then the move and upload fail).
            steps.push(Step::Write {
                fs: "all".into(),
                blocks: 1,
                cluster: None,
                via: None,
                expect: any,
            });
            steps.push(upload(*fs, names));
            steps.extend(download(names));
            steps
        }
        Op::KmsSetWrongKey => {
            let command = match kms {
                KmsKind::Vault => "weka security kms set vault $VAULT_URL no-such-key --role-id $ROLE_ID --secret-id $SECRET_ID",
                KmsKind::Kmip => "weka security kms set kmip $KMIP_ADDRESS no-such-uid --client-cert $KMIP_CLIENT_CERT --client-key $KMIP_CLIENT_KEY --ca-cert $KMIP_CA_CERT",
            };
            vec![weka(command.into())]
        }
        Op::UploadWithBackendsDown { a, b, fs } => vec![
            Step::Crash { backend: *a },
            Step::Crash { backend: *b },
            upload(*fs, names),
            Step::Start { backend: None },
        ],
        Op::UploadUnderStoreFault { mode, fs } => {
            let mut steps = op_steps(&Op::StoreFault(*mode), kms, names);
            steps.push(upload(*fs, names));
            steps.extend(download(names));
            steps.extend(op_steps(&Op::StoreHeal, kms, names));
            steps
        }
        Op::CreateFs { encrypted } => {
            names.created += 1;
            names.last_encrypted = *encrypted;
            vec![Step::FsCreate {
                name: format!("fs{}", names.created),
                count: 1,
                encrypted: *encrypted,
                capacity_gib: 10,
                expect: any,
            }]
        }
        Op::RetryCreate if names.created == 0 => Vec::new(),
        Op::RetryCreate => vec![Step::FsCreate {
            name: format!("fs{}", names.created),
            count: 1,
            encrypted: names.last_encrypted,
            capacity_gib: 10,
            expect: any,
        }],
        Op::Outage { secs, restart } => {
            let mut steps = vec![Step::KmsFault {
                mode: Fault::Refuse,
                delay: None,
                key: None,
            }];
            if *restart {
                steps.push(Step::RestartAll);
            }
            steps.push(Step::Idle {
                duration: Duration::from_secs(*secs),
            });
            steps.push(Step::KmsFault {
                mode: Fault::None,
                delay: None,
                key: None,
            });
            steps
        }
        Op::Write { blocks } => vec![Step::Write {
            fs: "all".into(),
            blocks: *blocks,
            cluster: None,
            via: None,
            expect: any,
        }],
        Op::ReadVerify => vec![Step::ReadVerify {
            fs: "all".into(),
            cluster: None,
            via: None,
            expect: any,
        }],
        Op::KmsFault(mode) => vec![Step::KmsFault {
            mode: *mode,
            delay: (*mode == Fault::Slow).then_some(Duration::from_millis(800)),
            key: None,
        }],
        Op::KmsHeal => vec![Step::KmsFault {
            mode: Fault::None,
            delay: None,
            key: None,
        }],
        Op::StoreFault(mode) => vec![Step::ObjectStoreFault {
            mode: *mode,
            delay: (*mode == Fault::Slow).then_some(Duration::from_millis(800)),
        }],
        Op::StoreHeal => vec![Step::ObjectStoreFault {
            mode: Fault::None,
            delay: None,
        }],
        Op::Seal => vec![Step::KmsSeal],
        Op::RevokeTokens => {
            // With Vault, one revocation in four destroys the cluster's secret-id too (a
            // leaked credential): its logins are refused until a `kms set` with the new
            // one, which a later `kms-set` op or the liveness phase gives. Drawn beside
            // the plan, as crash points are, so the plans stay as they were drawn.
            names.revocations += 1;
            let label = format!("swarm revocation {}", names.revocations);
            let secret_id =
                kms == KmsKind::Vault && derive_seed(names.seed, &label).is_multiple_of(4);
            if secret_id {
                vec![Step::KmsRevokeSecretId]
            } else {
                vec![Step::KmsRevokeTokens]
            }
        }
        Op::RevokeKey => vec![Step::KmsRevokeKey],
        Op::Unseal => vec![Step::KmsUnseal],
        Op::Partition { a, b } => vec![Step::Partition {
            a: format!("backend{a}"),
            b: format!("backend{b}"),
            oneway: false,
        }],
        Op::IsolateKms { backend } => vec![Step::Partition {
            a: format!("backend{backend}"),
            b: "kms".into(),
            oneway: false,
        }],
        Op::Heal => vec![Step::Heal],
        Op::Crash { backend } => vec![Step::Crash { backend: *backend }],
        Op::StartAll => vec![Step::Start { backend: None }],
        Op::RestartAll => vec![Step::RestartAll],
        Op::CrashPoint => {
            // Drawn from the seed beside the plan, not by proptest: the plans stay as
            // they were drawn before there were several points.
            names.crash_points += 1;
            let label = format!("swarm crash point {}", names.crash_points);
            let all = CrashPoint::ALL;
            let point = all[(derive_seed(names.seed, &label) % all.len() as u64) as usize];
            let mut steps = vec![Step::CrashAt {
                backend: None,
                point,
            }];
            // The points inside snapshot commands are met only by the command itself, which
            // a plan may never draw after the crash is armed: it follows at once. (Creates
            // and rewraps, where the other points are, come often enough.)
            match point {
                CrashPoint::MidDownload => {
                    steps.push(Step::Write {
                        fs: "all".into(),
                        blocks: 2,
                        cluster: None,
                        via: None,
                        expect: any,
                    });
                    steps.push(upload(1, names));
                    steps.extend(download(names));
                }
                CrashPoint::BetweenBlocksAndManifest => steps.push(upload(1, names)),
                CrashPoint::AfterKmsBeforeCommit | CrashPoint::AfterCommitBeforeKeyInMemory => {}
            }
            steps
        }
        Op::RotateRewrapTrim => {
            let cluster_key = Step::KmsRotate { key: None };
            let mut steps = match kms {
                // Rotation is an admin's planned operation: Vault is unsealed for it.
                KmsKind::Vault => vec![Step::KmsUnseal, cluster_key],
                // A KMIP key has no versions: a new key, and the cluster told its UID.
                KmsKind::Kmip => vec![
                    cluster_key,
                    weka("weka security kms rewrap --new-key-uid $KMIP_KEY_UID".into()),
                ],
            };
            // On Vault, half the rotations (drawn from the seed) put `fs1` on the
            // filesystems' own key and rotate that key too, rewrap `fs1` alone with `fs
            // kms-rewrap`, then the rest with `--all` or, in half of these, move them all
            // to the cluster key with `--convert-to-cluster-key-on-fs`; then trim both keys.
            let mut own_key = false;
            if kms == KmsKind::Vault {
                names.rotations += 1;
                let label = format!("swarm rotation {} of every key", names.rotations);
                own_key = derive_seed(names.seed, &label).is_multiple_of(2);
                if own_key {
                    // (`fs1` may be gone or unencrypted: then these two are refused.)
                    steps.extend(op_steps(&Op::MoveKey { fs: 1, own: true }, kms, names));
                    steps.push(Step::KmsRotate {
                        key: Some(FS_KEY.into()),
                    });
                    steps.push(weka("weka fs kms-rewrap fs1".into()));
                    let label = format!("swarm rotation {} converts", names.rotations);
                    steps.push(weka(if derive_seed(names.seed, &label).is_multiple_of(2) {
                        "weka security kms rewrap --convert-to-cluster-key-on-fs".into()
                    } else {
                        "weka security kms rewrap --all".into()
                    }));
                } else {
                    steps.push(weka("weka security kms rewrap".into()));
                }
            }
            // An admin retires old versions only after the cluster said the rewrap
            // succeeded.
            steps.push(Step::KmsTrim {
                key: None,
                min_decryption_version: None,
                only_after_rewrap: true,
            });
            if own_key {
                steps.push(Step::KmsTrim {
                    key: Some(FS_KEY.into()),
                    min_decryption_version: None,
                    only_after_rewrap: true,
                });
            }
            steps
        }
        Op::Idle { ms } => vec![Step::Idle {
            duration: Duration::from_millis(*ms),
        }],
        Op::DiskFault {
            mode,
            percent,
            target,
        } => {
            let mut steps = vec![Step::DiskFault {
                backend: None,
                mode: *mode,
                probability: Some(f64::from(*percent) / 100.0),
                target: *target,
            }];
            if target.config() {
                // A config change, for the record faults to meet (appends, applies), and
                // a power cycle: each backend reads every record back at boot.
                names.created += 1;
                names.last_encrypted = false;
                steps.push(Step::FsCreate {
                    name: format!("fs{}", names.created),
                    count: 1,
                    encrypted: false,
                    capacity_gib: 10,
                    expect: any,
                });
                steps.push(Step::RestartAll);
            }
            // A write, for the write faults to meet, and a read-back of every block.
            steps.push(Step::Write {
                fs: "all".into(),
                blocks: 2,
                cluster: None,
                via: None,
                expect: any,
            });
            steps.push(Step::ReadVerify {
                fs: "all".into(),
                cluster: None,
                via: None,
                expect: any,
            });
            steps
        }
        Op::DiskHeal => vec![Step::DiskHeal { backend: None }],
        Op::Race(racers) => race_steps(racers, kms, names),
    }
}

/// A race's steps: a rotation first if a rewrap races (so it has something to do), then
/// the commands at once. On Vault, half such races (drawn from the seed) rotate the key
/// once more while they run, so a racing wrap may land under the version before the one
/// the rewrap moves to: what the rewrap's rescan is for.
fn race_steps(racers: &[Racer], kms: KmsKind, names: &mut Names) -> Vec<Step> {
    let mut steps = Vec::new();
    let mut kms_rotate = false;
    if racers.contains(&Racer::Rewrap) {
        if kms == KmsKind::Vault {
            steps.push(Step::KmsUnseal);
            names.rewrap_races += 1;
            let label = format!("swarm race rotation {}", names.rewrap_races);
            kms_rotate = derive_seed(names.seed, &label).is_multiple_of(2);
        }
        steps.push(Step::KmsRotate { key: None });
    }
    let mut commands = Vec::new();
    for racer in racers {
        let op = match racer {
            Racer::Create { encrypted } => {
                names.created += 1;
                names.last_encrypted = *encrypted;
                let flag = if *encrypted { " --encrypted" } else { "" };
                commands.push(format!(
                    "weka fs create fs{} default 10GiB{flag}",
                    names.created
                ));
                continue;
            }
            Racer::Rewrap => {
                commands.push(
                    match kms {
                        KmsKind::Vault => "weka security kms rewrap",
                        KmsKind::Kmip => "weka security kms rewrap --new-key-uid $KMIP_KEY_UID",
                    }
                    .to_string(),
                );
                continue;
            }
            Racer::MoveKey { fs, own } => Op::MoveKey { fs: *fs, own: *own },
            Racer::Upload { fs } => Op::SnapshotUpload { fs: *fs },
            Racer::Download => Op::Download,
        };
        for step in op_steps(&op, kms, names) {
            if let Step::Weka { command, .. } = step {
                commands.push(command);
            }
        }
    }
    match commands.len() {
        // A download before any upload has no command: a race of one is a plain step.
        0 => {}
        1 => steps.push(weka(commands.remove(0))),
        _ => steps.push(Step::Race {
            commands,
            kms_rotate,
        }),
    }
    steps
}
