//! Swarm testing: from one seed, draw a topology, the fault knobs that are on for this
//! run, and a sequence of operations, as a scenario the runner plays like any file.
//!
//! Generation goes through proptest strategies driven by an RNG seeded from the run's
//! seed, so the same seed always draws the same plan, and proptest can shrink a failing
//! plan to the smallest one that still fails.

use std::collections::BTreeMap;

use cluster::disk::faults::{DiskFaultMode, FaultTarget};
use kms_sim::chaos::Fault;
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
use serde::Serialize;

use crate::runner::{derive_seed, RunReport, SimOptions};
use crate::scenario::{ClusterSpec, Expect, KmsKind, KmsSpec, Meta, Scenario, Step};
use crate::simulated;

mod steps;

use steps::{op_steps, Names, FS_KEY};

/// Which kinds of trouble this run may meet (swarm testing: each run turns on a random
/// subset, so rare combinations get runs of their own).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Knobs {
    /// Backend nodes in the cluster: 3 to 7, or 8 to 11 in a large cluster (see
    /// `voters`).
    pub backends: u32,
    /// A large cluster's voter set: 3, 5 or 7 of its backends vote on the config table,
    /// the others are learners (as real clusters run). One run in 64 gets a large
    /// cluster, drawn from the seed apart from the other knobs, so every other run draws
    /// the plan it drew before; shown only then.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub voters: Option<u32>,
    /// The KMS kind: Vault in three runs of four, KMIP in the fourth. Drawn from the seed
    /// apart from the other knobs, so a Vault run draws the same plan it drew before KMIP
    /// existed; shown only when it is KMIP, for the same reason.
    #[serde(skip_serializing_if = "is_vault")]
    pub kms: KmsKind,
    /// Faults on the wire to the KMS (refuse, hang, error status, garbage, cut answers,
    /// slowness) and revoked credentials.
    pub kms_faults: bool,
    /// Vault sealed and unsealed (never on with KMIP, which has no seal).
    pub kms_seal: bool,
    /// Partitions between backends, and between a backend and the KMS.
    pub network: bool,
    /// Backends crashed and started again, alone or all at once.
    pub crashes: bool,
    /// A backend crashes at a named point inside its code (after the KMS answered, before
    /// the commit).
    pub crash_points: bool,
    /// Key rotation, rewrap, and retiring old key versions once the rewrap succeeded.
    pub rotation: bool,
    /// Snapshot uploads to the object store and downloads into new filesystems.
    pub snapshots: bool,
    /// Filesystems moved to a key of their own and back to the cluster key.
    pub key_moves: bool,
    /// KMS outages of minutes rather than seconds, with the backends restarted meanwhile
    /// (on in one run in eight: each costs real time until idle stretches are skipped).
    pub long_outages: bool,
    /// Faults on the wire to the object store (refuse, hang, garbage, cut answers,
    /// slowness) under snapshot uploads and downloads. On in one run in four, drawn from
    /// the seed apart from the other knobs (as `kms` is), so a run without it draws the plan
    /// it drew before the knob existed; shown only when on.
    #[serde(skip_serializing_if = "is_false")]
    pub store_faults: bool,
    /// Operations that reach paths the others rarely do, each self-contained (see
    /// `Op::OwnKeySnapshot`, `Op::KmsSetWrongKey`, `Op::UploadWithBackendsDown`,
    /// `Op::UploadUnderStoreFault`): without them a sweep's coverage probes showed those
    /// paths in no run or in too few. On in one run in four, drawn apart from the other
    /// knobs, so a run without it draws the plan it drew before; shown only when on.
    #[serde(skip_serializing_if = "is_false")]
    pub reach: bool,
    /// Admins racing one another: commands sent at once to different backends (see
    /// `Op::Race`). On in one run in four, drawn apart from the other knobs, so a run
    /// without it draws the plan it drew before; shown only when on.
    #[serde(skip_serializing_if = "is_false")]
    pub racing_admins: bool,
    /// Fault sites inside the cluster's code (`cluster::buggify`: KMS requests held back
    /// or failed before they leave, committed changes proposed again), each active in
    /// about a quarter of these runs and firing in about a quarter of its visits. On in
    /// one run in two, drawn apart from the other knobs; shown only when on.
    #[serde(skip_serializing_if = "is_false")]
    pub buggify: bool,
    /// Storage faults on one backend's disk (bit rot, latent sector errors, misdirected
    /// and lost writes), on its data blocks, its config table's Raft records, or both,
    /// each followed by writes and a read-back of every block (and, for config records, a
    /// config change and a power cycle of every backend); the runner's fault atlases keep
    /// a fault-free replica of every block and a quorum of intact config tables (a backend
    /// that meets a damaged record stops its replica and reports it). On in one run in
    /// four, drawn apart from the other knobs, so a run without it draws the plan it drew
    /// before; shown only when on.
    #[serde(skip_serializing_if = "is_false")]
    pub disk_faults: bool,
    /// One KMS outage of an hour or more (1 to 2 h, log-uniform), every backend
    /// power-cycled in it, put at a place in the plan drawn from the seed: the cluster's
    /// Vault token (1 h TTL) expires meanwhile, and a startup backoff must have kept its
    /// ceiling all along. On in one run in 1,000 (each costs several seconds of wall time
    /// until idle stretches are skipped), drawn apart from the other knobs; its length and
    /// place are drawn apart from the plan too, so the rest of the plan is the one the seed
    /// drew before; shown only when on.
    #[serde(skip_serializing_if = "is_false")]
    pub hour_outage: bool,
}

fn is_vault(kind: &KmsKind) -> bool {
    *kind == KmsKind::Vault
}

fn is_false(on: &bool) -> bool {
    !on
}

/// Whether a knob drawn apart from the others (`store_faults`, `reach`, ...) is on for a
/// seed: one run in `one_in`, from the seed and the knob's label alone, so adding a knob
/// leaves every other draw as it was.
fn drawn_apart(seed: u64, label: &str, one_in: u64) -> bool {
    derive_seed(seed, label).is_multiple_of(one_in)
}

/// A large cluster for one seed in 64: (backends, voters), 8 to 11 backends of which 3,
/// 5 or 7 vote. Rare because every backend costs every tick: such a run takes 2 to 4
/// times the wall time of a small one (`wekasim bench --scale` shows the trend).
fn large_cluster(seed: u64) -> Option<(u32, u32)> {
    if !drawn_apart(seed, "swarm large cluster", 64) {
        return None;
    }
    let d = derive_seed(seed, "swarm large cluster size");
    Some((8 + (d % 4) as u32, [3, 5, 7][(d / 4 % 3) as usize]))
}

/// The KMS kind of a seed's swarm run.
fn kms_kind(seed: u64) -> KmsKind {
    if derive_seed(seed, "swarm kms kind").is_multiple_of(4) {
        KmsKind::Kmip
    } else {
        KmsKind::Vault
    }
}

/// One operation of a swarm run; each becomes one or a few scenario steps.
#[derive(Debug, Clone, PartialEq)]
pub enum Op {
    CreateFs {
        encrypted: bool,
    },
    /// Creates the last filesystem created again, under the same name: refused if the
    /// first try succeeded, a retry if it failed.
    RetryCreate,
    Write {
        blocks: u64,
    },
    ReadVerify,
    KmsFault(Fault),
    KmsHeal,
    /// A byte-level fault on the wire to the object store.
    StoreFault(Fault),
    StoreHeal,
    Seal,
    Unseal,
    RevokeTokens,
    /// KMIP: the cluster key is revoked (deactivated) under live DEKs.
    RevokeKey,
    Partition {
        a: u32,
        b: u32,
    },
    IsolateKms {
        backend: u32,
    },
    Heal,
    Crash {
        backend: u32,
    },
    StartAll,
    RestartAll,
    CrashPoint,
    RotateRewrapTrim,
    /// Uploads a snapshot of `fs<n>` (which may not exist: then the command fails).
    SnapshotUpload {
        fs: u32,
    },
    /// Downloads the latest snapshot uploaded so far into a new filesystem.
    Download,
    /// Moves `fs<n>` to its own key, or back to the cluster key.
    MoveKey {
        fs: u32,
        own: bool,
    },
    Idle {
        ms: u64,
    },
    /// `fs<n>` moves to its own key, every filesystem gets a block, `fs<n>` is uploaded as a snapshot, and the
    /// snapshot is downloaded into a new filesystem (which must unwrap with that key).
    OwnKeySnapshot {
        fs: u32,
    },
    /// `security kms set` names a key the KMS does not have: the cluster's probe of the
    /// new configuration must fail and the set be refused, leaving the old one in force.
    KmsSetWrongKey,
    /// Two backends crash, `fs<n>` is uploaded as a snapshot (which must copy every block
    /// or fail), and every backend starts again.
    UploadWithBackendsDown {
        a: u32,
        b: u32,
        fs: u32,
    },
    /// A byte-level fault in front of the object store under an upload of `fs<n>` and a
    /// download of it, then the store is healed.
    UploadUnderStoreFault {
        mode: Fault,
        fs: u32,
    },
    /// The KMS refuses every connection for `secs`; with `restart`, every backend
    /// power-cycles while it is gone.
    Outage {
        secs: u64,
        restart: bool,
    },
    /// Admins send these commands at once, each to a different backend; with a rewrap
    /// among them, the key is rotated first so that the rewrap has work to race.
    Race(Vec<Racer>),
    /// Storage faults of `mode` on a disk the runner's atlas picks, meeting `percent` of
    /// the reads and writes of what `target` names (its blocks, its config records, or
    /// both), then two blocks written to every filesystem and a read-back of every
    /// acknowledged block; with config records in the target, first a filesystem created
    /// (a config change, for the faults to meet) and every backend power-cycled (each
    /// checks its records at boot).
    DiskFault {
        mode: DiskFaultMode,
        percent: u32,
        target: FaultTarget,
    },
    /// No more storage faults on any disk (damage done stays until a read repairs it).
    DiskHeal,
}

/// One admin's command in a race.
#[derive(Debug, Clone, PartialEq)]
pub enum Racer {
    Create { encrypted: bool },
    Rewrap,
    MoveKey { fs: u32, own: bool },
    Upload { fs: u32 },
    Download,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    pub knobs: Knobs,
    pub ops: Vec<Op>,
}

fn fault_mode() -> impl Strategy<Value = Fault> {
    prop_oneof![
        Just(Fault::Refuse),
        Just(Fault::Hang),
        Just(Fault::Error500),
        Just(Fault::Error503),
        Just(Fault::RateLimit),
        Just(Fault::Malformed),
        Just(Fault::Truncated),
        Just(Fault::Slow),
    ]
}

/// The faults the object store can meet: the byte-level ones (it has no protocol faults).
fn store_fault_mode() -> impl Strategy<Value = Fault> {
    prop_oneof![
        Just(Fault::Refuse),
        Just(Fault::Hang),
        Just(Fault::Malformed),
        Just(Fault::Truncated),
        Just(Fault::Slow),
    ]
}

fn op(knobs: &Knobs) -> BoxedStrategy<Op> {
    let n = knobs.backends;
    let mut ops: Vec<(u32, BoxedStrategy<Op>)> = vec![
        (
            6,
            prop::bool::weighted(0.8)
                .prop_map(|encrypted| Op::CreateFs { encrypted })
                .boxed(),
        ),
        (6, (1u64..4).prop_map(|blocks| Op::Write { blocks }).boxed()),
        (3, Just(Op::ReadVerify).boxed()),
        (2, (100u64..3000).prop_map(|ms| Op::Idle { ms }).boxed()),
        (3, Just(Op::RetryCreate).boxed()),
    ];
    if knobs.long_outages {
        // Log-uniform from 10 s to 10 min: most outages short, some long enough for an
        // unbounded backoff to show.
        let secs = (1.0f64..2.778).prop_map(|e| 10f64.powf(e) as u64);
        ops.push((
            2,
            (secs, prop::bool::weighted(0.75))
                .prop_map(|(secs, restart)| Op::Outage { secs, restart })
                .boxed(),
        ));
    }
    if knobs.kms_faults {
        ops.push((3, fault_mode().prop_map(Op::KmsFault).boxed()));
        ops.push((3, Just(Op::KmsHeal).boxed()));
        ops.push((1, Just(Op::RevokeTokens).boxed()));
        if knobs.kms == KmsKind::Kmip {
            // The admin deactivates the cluster key under live DEKs (no destroy: a key
            // destroyed under a live DEK is a violation whoever did it).
            ops.push((1, Just(Op::RevokeKey).boxed()));
        }
    }
    if knobs.kms_seal {
        ops.push((2, Just(Op::Seal).boxed()));
        ops.push((2, Just(Op::Unseal).boxed()));
    }
    if knobs.network {
        ops.push((
            2,
            (1..=n, 1..=n)
                .prop_filter("distinct", |(a, b)| a != b)
                .prop_map(|(a, b)| Op::Partition { a, b })
                .boxed(),
        ));
        ops.push((
            2,
            (1..=n)
                .prop_map(|backend| Op::IsolateKms { backend })
                .boxed(),
        ));
        ops.push((3, Just(Op::Heal).boxed()));
    }
    if knobs.crashes {
        ops.push((2, (1..=n).prop_map(|backend| Op::Crash { backend }).boxed()));
        ops.push((2, Just(Op::StartAll).boxed()));
        ops.push((1, Just(Op::RestartAll).boxed()));
    }
    if knobs.crash_points {
        ops.push((2, Just(Op::CrashPoint).boxed()));
    }
    if knobs.rotation {
        ops.push((2, Just(Op::RotateRewrapTrim).boxed()));
    }
    if knobs.key_moves {
        ops.push((
            2,
            (1u32..4, any::<bool>())
                .prop_map(|(fs, own)| Op::MoveKey { fs, own })
                .boxed(),
        ));
    }
    if knobs.snapshots {
        ops.push((
            2,
            (1u32..4).prop_map(|fs| Op::SnapshotUpload { fs }).boxed(),
        ));
        ops.push((2, Just(Op::Download).boxed()));
    }
    if knobs.store_faults {
        // Pushed last, so a run without the knob draws from the same union as before it.
        ops.push((2, store_fault_mode().prop_map(Op::StoreFault).boxed()));
        ops.push((2, Just(Op::StoreHeal).boxed()));
    }
    if knobs.reach {
        // Last again, for the same reason.
        ops.push((
            2,
            (1u32..4).prop_map(|fs| Op::OwnKeySnapshot { fs }).boxed(),
        ));
        ops.push((1, Just(Op::KmsSetWrongKey).boxed()));
        ops.push((
            2,
            (1..=n, 1..=n, 1u32..4)
                .prop_filter("distinct", |(a, b, _)| a != b)
                .prop_map(|(a, b, fs)| Op::UploadWithBackendsDown { a, b, fs })
                .boxed(),
        ));
        ops.push((
            2,
            (store_fault_mode(), 1u32..4)
                .prop_map(|(mode, fs)| Op::UploadUnderStoreFault { mode, fs })
                .boxed(),
        ));
    }
    if knobs.racing_admins {
        // Last again, for the same reason.
        ops.push((
            3,
            proptest::collection::vec(racer(), 2..=4)
                .prop_map(Op::Race)
                .boxed(),
        ));
    }
    if knobs.disk_faults {
        // Last again, for the same reason.
        let mode = prop_oneof![
            Just(DiskFaultMode::BitRot),
            Just(DiskFaultMode::LatentSectorError),
            Just(DiskFaultMode::MisdirectedWrite),
            Just(DiskFaultMode::LostWrite),
        ];
        let percent = prop_oneof![Just(25u32), Just(50), Just(100)];
        let target = prop_oneof![
            2 => Just(FaultTarget::Blocks),
            1 => Just(FaultTarget::Config),
            1 => Just(FaultTarget::Both),
        ];
        ops.push((
            3,
            (mode, percent, target)
                .prop_map(|(mode, percent, target)| Op::DiskFault {
                    mode,
                    percent,
                    target,
                })
                .boxed(),
        ));
        ops.push((1, Just(Op::DiskHeal).boxed()));
    }
    proptest::strategy::Union::new_weighted(ops).boxed()
}

/// A command for a race: the moves and rewraps that contend for one filesystem's wrapping
/// weigh most, creates and snapshots race beside them.
fn racer() -> impl Strategy<Value = Racer> {
    prop_oneof![
        2 => prop::bool::weighted(0.8).prop_map(|encrypted| Racer::Create { encrypted }),
        3 => Just(Racer::Rewrap),
        4 => (1u32..4, prop::bool::weighted(0.7)).prop_map(|(fs, own)| Racer::MoveKey { fs, own }),
        1 => (1u32..4).prop_map(|fs| Racer::Upload { fs }),
        1 => Just(Racer::Download),
    ]
}

/// The hour-long outage of a seed whose `hour_outage` knob is on: where in the plan it goes
/// (an index into the drawn operations, wrapped to their count) and the operation itself.
fn hour_outage(seed: u64) -> Option<(usize, Op)> {
    if !drawn_apart(seed, "swarm hour outage", 1000) {
        return None;
    }
    let draw = derive_seed(seed, "swarm hour outage draw");
    // Log-uniform from 3,600 to 7,200 s, from the draw's low 32 bits.
    let fraction = (draw & 0xffff_ffff) as f64 / u32::MAX as f64;
    let secs = (3600.0 * 2f64.powf(fraction)) as u64;
    Some((
        (draw >> 32) as usize,
        Op::Outage {
            secs,
            restart: true,
        },
    ))
}

/// What a seed draws apart from its plan (each from the seed and its own label), so that
/// adding one leaves every other draw as it was.
struct DrawnApart {
    kms: KmsKind,
    store_faults: bool,
    reach: bool,
    racing_admins: bool,
    buggify: bool,
    disk_faults: bool,
    large: Option<(u32, u32)>,
    hour: Option<(usize, Op)>,
}

impl DrawnApart {
    fn for_seed(seed: u64) -> Self {
        DrawnApart {
            kms: kms_kind(seed),
            store_faults: drawn_apart(seed, "swarm store faults", 4),
            reach: drawn_apart(seed, "swarm reach", 4),
            racing_admins: drawn_apart(seed, "swarm racing admins", 4),
            buggify: drawn_apart(seed, "swarm buggify", 2),
            disk_faults: drawn_apart(seed, "swarm disk faults", 4),
            large: large_cluster(seed),
            hour: hour_outage(seed),
        }
    }
}

fn plan(apart: DrawnApart) -> impl Strategy<Value = Plan> {
    let DrawnApart {
        kms,
        store_faults,
        reach,
        racing_admins,
        buggify,
        disk_faults,
        large,
        hour,
    } = apart;
    let hour_outage = hour.is_some();
    // A large cluster replaces the drawn size after the draw, so the draws stay as they were.
    (3u32..=7, any::<[bool; 8]>(), prop::bool::weighted(0.125))
        .prop_map(move |(backends, k, long_outages)| Knobs {
            backends: large.map_or(backends, |(b, _)| b),
            voters: large.map(|(_, v)| v),
            kms,
            kms_faults: k[0],
            kms_seal: k[1] && kms == KmsKind::Vault,
            network: k[2],
            crashes: k[3],
            crash_points: k[4],
            rotation: k[5],
            snapshots: k[6],
            key_moves: k[7],
            long_outages,
            store_faults,
            reach,
            racing_admins,
            buggify,
            disk_faults,
            hour_outage,
        })
        .prop_flat_map(|knobs| {
            let ops = proptest::collection::vec(op(&knobs), 4..24);
            (Just(knobs), ops)
        })
        .prop_map(move |(knobs, mut ops)| {
            // Put in after the draw (and after each shrink), so it costs the plan no draws.
            if let Some((at, outage)) = &hour {
                ops.insert(at % (ops.len() + 1), outage.clone());
            }
            Plan { knobs, ops }
        })
}

/// The proptest runner for a seed: its RNG is seeded from the seed alone.
fn runner(seed: u64) -> TestRunner {
    let mut bytes = [0u8; 32];
    bytes[..8].copy_from_slice(&derive_seed(seed, "swarm").to_le_bytes());
    TestRunner::new_with_rng(
        Config::default(),
        TestRng::from_seed(RngAlgorithm::ChaCha, &bytes),
    )
}

fn tree(seed: u64) -> impl ValueTree<Value = Plan> {
    plan(DrawnApart::for_seed(seed))
        .new_tree(&mut runner(seed))
        .expect("the swarm strategy always produces a plan")
}

/// The plan a seed draws.
pub fn draw(seed: u64) -> Plan {
    tree(seed).current()
}

impl Plan {
    /// The plan as a scenario the runner plays (and a file a person can read).
    pub fn scenario(&self, seed: u64) -> Scenario {
        let k = &self.knobs;
        // Every field of `Knobs` by its name, so a knob added there shows up in the
        // scenario file and the trace without being listed again here.
        let knobs: BTreeMap<String, String> = match serde_json::to_value(k) {
            Ok(serde_json::Value::Object(fields)) => fields
                .into_iter()
                .map(|(name, value)| (name, value.to_string()))
                .collect(),
            _ => unreachable!("Knobs serializes to a map of booleans and numbers"),
        };
        let kms_set = match k.kms {
            KmsKind::Vault => "weka security kms set vault $VAULT_URL weka-key --role-id $ROLE_ID --secret-id $SECRET_ID",
            KmsKind::Kmip => "weka security kms set kmip $KMIP_ADDRESS $KMIP_KEY_UID --client-cert $KMIP_CLIENT_CERT --client-key $KMIP_CLIENT_KEY --ca-cert $KMIP_CA_CERT",
        };
        let mut steps = vec![Step::Weka {
            cluster: None,
            command: kms_set.into(),
            expect_error: None,
            expect: Expect::Ok,
            expect_output: None,
        }];
        let mut names = Names::for_seed(seed);
        for op in &self.ops {
            steps.extend(op_steps(op, k.kms, &mut names));
        }
        Scenario {
            scenario: Meta {
                name: "swarm".into(),
                description: format!("swarm run drawn from seed {seed}"),
                seeds: vec![seed],
                knobs,
            },
            cluster: ClusterSpec {
                backends: k.backends,
                replicas: 2,
                block_size: 256,
                voters: k.voters,
            },
            kms: KmsSpec {
                kind: k.kms,
                extra_keys: vec![FS_KEY.into()],
                ..KmsSpec::default()
            },
            extra_clusters: Vec::new(),
            steps,
        }
    }
}

/// Runs the swarm plan of `seed`.
pub fn run(seed: u64, opts: &SimOptions) -> (Scenario, RunReport) {
    let scenario = draw(seed).scenario(seed);
    let mut report = simulated::run(&scenario, opts);
    report.target = "swarm".into();
    (scenario, report)
}

/// Shrinks the plan of a failing seed: proptest simplifies it step by step, keeping each
/// simpler plan that still fails the same check. Returns the smallest failing scenario,
/// its report, and how many runs it took; `None` if the seed does not fail.
pub fn shrink(
    seed: u64,
    opts: &SimOptions,
    max_runs: usize,
    mut progress: impl FnMut(usize, usize),
) -> Option<(Scenario, RunReport, usize)> {
    let mut tree = tree(seed);
    let first = simulated::run(&tree.current().scenario(seed), opts);
    let check = first.failure.as_ref()?.check.clone();
    let fails = |plan: &Plan| {
        let report = simulated::run(&plan.scenario(seed), opts);
        let same = report.failure.as_ref().is_some_and(|f| f.check == check);
        (same, report)
    };
    let mut best = (tree.current(), first);
    let mut runs = 1;
    if tree.simplify() {
        while runs < max_runs {
            let candidate = tree.current();
            let (failed, report) = fails(&candidate);
            runs += 1;
            progress(runs, candidate.ops.len());
            let more = if failed {
                best = (candidate, report);
                tree.simplify()
            } else {
                tree.complicate()
            };
            if !more {
                break;
            }
        }
    }
    let (plan, mut report) = best;
    report.target = "swarm".into();
    Some((plan.scenario(seed), report, runs))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A seed with an hour-long outage draws the plan it would draw without one, with the
    /// outage put in: the knob costs the other draws nothing.
    #[test]
    fn an_hour_outage_leaves_the_rest_of_the_plan_as_drawn() {
        let seed = (0..5000u64)
            .find(|&s| hour_outage(s).is_some())
            .expect("one seed in 1,000 has an hour-long outage");
        let with = draw(seed);
        assert!(with.knobs.hour_outage, "seed {seed}");
        let mut apart = DrawnApart::for_seed(seed);
        apart.hour = None;
        let without = plan(apart)
            .new_tree(&mut runner(seed))
            .expect("a plan")
            .current();
        let mut ops = with.ops.clone();
        let at = ops
            .iter()
            .position(|op| matches!(op, Op::Outage { secs, restart: true } if *secs >= 3600))
            .expect("the hour-long outage is in the plan");
        ops.remove(at);
        assert_eq!(ops, without.ops);
        let knobs = Knobs {
            hour_outage: false,
            ..with.knobs
        };
        assert_eq!(knobs, without.knobs);
    }

    #[test]
    fn a_seed_always_draws_the_same_plan() {
        assert_eq!(draw(7), draw(7));
        let distinct: std::collections::BTreeSet<String> =
            (0..20).map(|s| format!("{:?}", draw(s))).collect();
        assert!(distinct.len() >= 18);
    }

    /// Every operation is drawn only when its knob is on, with arguments in range; the
    /// match has no catch-all, so a new operation must say what it needs here. Over 300
    /// seeds every operation is drawn at least once.
    #[test]
    fn plans_respect_their_knobs() {
        let mut drawn = std::collections::BTreeSet::new();
        for seed in 0..300 {
            let plan = draw(seed);
            let k = &plan.knobs;
            let n = k.backends;
            match k.voters {
                None => assert!((3..=7).contains(&n), "seed {seed}: {n} backends"),
                Some(v) => assert!(
                    (8..=11).contains(&n) && [3, 5, 7].contains(&v),
                    "seed {seed}: {n} backends, {v} voters"
                ),
            }
            let drawn_ops = plan.ops.len() - usize::from(k.hour_outage);
            assert!((4..24).contains(&drawn_ops), "seed {seed}");
            let backend = |b: u32| (1..=n).contains(&b);
            for op in &plan.ops {
                let (name, allowed) = match *op {
                    Op::CreateFs { .. } => ("create-fs", true),
                    Op::Write { blocks } => ("write", (1..4).contains(&blocks)),
                    Op::ReadVerify => ("read-verify", true),
                    Op::Idle { ms } => ("idle", (100..3000).contains(&ms)),
                    Op::KmsFault(f) => ("kms-fault", k.kms_faults && f != Fault::None),
                    Op::KmsHeal => ("kms-heal", k.kms_faults),
                    Op::StoreFault(f) => ("store-fault", k.store_faults && f.is_byte_level()),
                    Op::StoreHeal => ("store-heal", k.store_faults),
                    Op::RevokeTokens => ("revoke-tokens", k.kms_faults),
                    Op::RevokeKey => ("revoke-key", k.kms_faults && k.kms == KmsKind::Kmip),
                    Op::Seal => ("seal", k.kms_seal),
                    Op::Unseal => ("unseal", k.kms_seal),
                    Op::Partition { a, b } => {
                        ("partition", k.network && a != b && backend(a) && backend(b))
                    }
                    Op::IsolateKms { backend: b } => ("isolate-kms", k.network && backend(b)),
                    Op::Heal => ("heal", k.network),
                    Op::Crash { backend: b } => ("crash", k.crashes && backend(b)),
                    Op::StartAll => ("start-all", k.crashes),
                    Op::RestartAll => ("restart-all", k.crashes),
                    Op::CrashPoint => ("crash-point", k.crash_points),
                    Op::RotateRewrapTrim => ("rotate-rewrap-trim", k.rotation),
                    Op::SnapshotUpload { fs } => {
                        ("snapshot-upload", k.snapshots && (1..4).contains(&fs))
                    }
                    Op::Download => ("download", k.snapshots),
                    Op::MoveKey { fs, .. } => ("move-key", k.key_moves && (1..4).contains(&fs)),
                    Op::RetryCreate => ("retry-create", true),
                    Op::Outage { secs, .. } => {
                        let long = k.long_outages && (10..=600).contains(&secs);
                        let hour = k.hour_outage && (3600..=7200).contains(&secs);
                        ("outage", long || hour)
                    }
                    Op::OwnKeySnapshot { fs } => {
                        ("own-key-snapshot", k.reach && (1..4).contains(&fs))
                    }
                    Op::KmsSetWrongKey => ("kms-set-wrong-key", k.reach),
                    Op::UploadWithBackendsDown { a, b, fs } => (
                        "upload-with-backends-down",
                        k.reach && a != b && backend(a) && backend(b) && (1..4).contains(&fs),
                    ),
                    Op::UploadUnderStoreFault { mode, fs } => (
                        "upload-under-store-fault",
                        k.reach && mode.is_byte_level() && (1..4).contains(&fs),
                    ),
                    Op::Race(ref racers) => (
                        "race",
                        k.racing_admins
                            && (2..=4).contains(&racers.len())
                            && racers.iter().all(|r| match *r {
                                Racer::MoveKey { fs, .. } | Racer::Upload { fs } => {
                                    (1..4).contains(&fs)
                                }
                                _ => true,
                            }),
                    ),
                    Op::DiskFault { percent, .. } => (
                        "disk-fault",
                        k.disk_faults && [25, 50, 100].contains(&percent),
                    ),
                    Op::DiskHeal => ("disk-heal", k.disk_faults),
                };
                assert!(allowed, "seed {seed}: {op:?} with knobs {k:?}");
                drawn.insert(name);
            }
        }
        assert_eq!(
            drawn.len(),
            32,
            "operations never drawn in 300 seeds: {drawn:?}"
        );
    }

    #[test]
    fn swarm_scenarios_pass_the_loader_rules() {
        for seed in 0..20 {
            let s = draw(seed).scenario(seed);
            let text = toml::to_string(&s).expect("serializes");
            let back =
                Scenario::parse(&text).unwrap_or_else(|e| panic!("seed {seed}: {e}\n{text}"));
            assert_eq!(back, s);
        }
    }
}
