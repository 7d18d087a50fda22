//! A backend node: its Raft member of the config table, the DEKs it holds in memory,
//! and its share of the data blocks.

mod admin;
mod io;
mod replica_read;
mod rewrap;
mod snapshot;
mod unwrap;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use openraft::BasicNode;
use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;
use tokio::sync::watch;

use crate::admin::{AdminError, NodeStatus};
use crate::buggify::Site;
use crate::config_table::{
    AppliedTable, ConfigCommand, ConfigResponse, ConfigState, FailStop, LogStore, Network, NodeId,
    Raft, StateMachineStore,
};
use crate::dek::Dek;
use crate::disk::records::{RecordCheck, RecordError};
use crate::disk::Disk;
use crate::events::{Event, EventSink, CONFIG_REPLICA_STOPPED_ALERT};
use crate::filesystem::FsRecord;
use crate::hooks::{CrashPoint, Hooks, PlantedBug};
use crate::kms::{self, KmsConfig, KmsConnector};
use crate::net::{BoxStream, Dialer};
use crate::probe::{Probe, Probed};
use crate::rpc::{self, ProposeError, Request, Response};

/// Everything a node is told at boot. The runner derives every field from the scenario
/// and the run's seed.
#[derive(Debug, Clone)]
pub struct NodeOptions {
    /// This backend's id; ids start at 1.
    pub id: NodeId,
    /// Every backend of the cluster: id and the `host:port` of its RPC listener.
    pub members: BTreeMap<NodeId, String>,
    /// How many members, the first in id order, vote on the config table; the others are
    /// learners, which apply it and forward what they propose (real clusters keep the
    /// voter set small: 3, 5 or 7 of dozens of backends).
    pub voters: usize,
    /// How many backends store each data block.
    pub replicas: usize,
    /// Seeds this node's RNG (DEKs, backoff jitter). Mixed with the boot count, so a
    /// restarted node never repeats a draw.
    pub seed: u64,
    pub timing: Timing,
    /// Crash points and planted bugs; empty outside the harness.
    pub hooks: Hooks,
    /// The object store Snap-To-Object uploads to: `http://host:port` and the bucket.
    pub object_store: Option<ObjectStoreConfig>,
    /// Where this backend's replica shows what it applied of the config table, for
    /// whoever runs it to read (the harness keeps one per backend across its boots).
    pub applied: AppliedTable,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectStoreConfig {
    pub url: String,
    pub bucket: String,
}

/// Timeouts and backoff, in one place so a scenario can tune them.
#[derive(Debug, Clone)]
pub struct Timing {
    pub heartbeat: Duration,
    pub election_min: Duration,
    pub election_max: Duration,
    /// Bound on one backend-to-backend exchange.
    pub rpc_timeout: Duration,
    /// How long a config change may wait for a leader before it fails.
    pub propose_timeout: Duration,
    /// Startup unwrap: first retry delay, doubled per failure up to `unwrap_backoff_max`.
    pub unwrap_backoff_initial: Duration,
    pub unwrap_backoff_max: Duration,
    /// How long I/O on a filesystem whose key this node has not unwrapped yet waits for
    /// it before failing with "locked".
    pub key_wait: Duration,
}

impl Default for Timing {
    fn default() -> Self {
        Timing {
            heartbeat: Duration::from_millis(100),
            election_min: Duration::from_millis(400),
            election_max: Duration::from_millis(800),
            rpc_timeout: Duration::from_millis(1000),
            propose_timeout: Duration::from_secs(10),
            unwrap_backoff_initial: Duration::from_millis(200),
            unwrap_backoff_max: Duration::from_secs(5),
            key_wait: Duration::from_secs(5),
        }
    }
}

#[derive(Clone)]
pub struct Node(Arc<Inner>);

struct Inner {
    opts: NodeOptions,
    disk: Disk,
    dialer: Arc<dyn Dialer>,
    events: EventSink,
    /// This backend's Raft replica of the config table; `None` when it stopped at boot
    /// on a record it could not verify (see `stop`).
    raft: Option<Raft>,
    /// Whether the config-table replica stopped on a bad record, and on which.
    stop: FailStop,
    state: watch::Receiver<Arc<ConfigState>>,
    /// Unwrapped DEKs of the filesystems this node serves. Memory only.
    keys: Mutex<BTreeMap<String, Dek>>,
    /// Woken whenever a key is added to `keys`.
    keys_changed: tokio::sync::Notify,
    /// DEKs of filesystems this node is creating and has not committed yet. The unwrap
    /// loop leaves these filesystems alone; see [`Node::release_parked`].
    creating: Mutex<BTreeMap<String, Dek>>,
    /// Woken whenever a DEK leaves `creating`, so the unwrap loop looks again at a
    /// filesystem it left alone while it was being created.
    parked_released: tokio::sync::Notify,
    rng: Mutex<ChaCha20Rng>,
    /// Connectors for the KMS configurations in use (the cluster key, and filesystems'
    /// own keys), kept because each holds its AppRole login.
    kms: Mutex<Vec<(KmsConfig, Arc<dyn KmsConnector>)>>,
    alerts: Mutex<BTreeSet<String>>,
    /// Snap-To-Object's client, if the cluster has an object store.
    objects: Option<snapshot::ObjectStoreClient>,
}

/// Whether a node holding `keys` serves `fs`: an unencrypted filesystem always, an
/// encrypted one once its DEK is unwrapped.
fn serves(fs: &FsRecord, keys: &BTreeMap<String, Dek>) -> bool {
    !fs.encrypted() || keys.contains_key(&fs.name)
}

/// A filesystem of the config table by name.
fn find_fs(state: &ConfigState, name: &str) -> Result<FsRecord, AdminError> {
    state
        .filesystems
        .get(name)
        .cloned()
        .ok_or_else(|| AdminError::NoSuchFs(name.to_string()))
}

/// DEKs go to the KMS (unwrap, rewrap) in batches of at most this many.
const KMS_BATCH: usize = 100;

/// How many times a command wraps again when the config table refuses its wrapping as
/// left behind by a racing rewrap, and how many rescans a rewrap makes for filesystems
/// that joined the cluster key behind it. Each retry follows a commit that moved the key
/// on, so more than a few means admins rewrapping in a loop.
const STALE_RETRIES: usize = 3;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // The node is single-threaded in simulation; a poisoned lock means a panic already
    // failed the run, so carry on with the data as it is.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Node {
    /// Boots a backend from its disk. On the very first boot of the lowest id, the node
    /// also forms the cluster.
    pub async fn start(
        opts: NodeOptions,
        disk: Disk,
        dialer: Arc<dyn Dialer>,
        events: EventSink,
    ) -> Result<Node, String> {
        let incarnation = {
            let mut d = disk.lock();
            d.boots += 1;
            if opts.hooks.planted(PlantedBug::NonceCounterRestarts) {
                d.nonce_seq = 0;
            }
            d.boots
        };
        events(opts.id, Event::Booted { incarnation });

        let config = openraft::Config {
            cluster_name: "wekasim".into(),
            heartbeat_interval: opts.timing.heartbeat.as_millis() as u64,
            election_timeout_min: opts.timing.election_min.as_millis() as u64,
            election_timeout_max: opts.timing.election_max.as_millis() as u64,
            ..Default::default()
        }
        .validate()
        .map_err(|e| format!("raft config: {e}"))?;
        let stop = {
            let (events, probes, id) = (events.clone(), opts.hooks.probes.clone(), opts.id);
            FailStop::new(move |error: &RecordError| {
                probes.fire(Probe::ConfigRecordCorrupt);
                let record = error.record();
                events(
                    id,
                    Event::ConfigRecordCorrupt {
                        record: record.kind().into(),
                        index: record.index(),
                        fault: match error {
                            RecordError::Corrupt(_) => "checksum",
                            RecordError::Unreadable(_) => "unreadable",
                            RecordError::WriteNotStored(_) => "write-not-stored",
                        }
                        .into(),
                    },
                );
            })
        };
        // Every record is read and checked before Raft sees any: a replica that cannot
        // trust its own log must not vote (see `config_table::fail_stop`).
        let check = if opts.hooks.planted(PlantedBug::RecordSkipsChecksum) {
            RecordCheck::DecodeOnly
        } else {
            RecordCheck::Verify
        };
        if let Err(e) = disk.scrub_records(check) {
            stop.meet(&e);
        }
        let (sm, state) =
            StateMachineStore::new(disk.clone(), stop.clone(), check, opts.applied.clone());
        let raft = match stop.stopped() {
            Some(_) => None,
            None => match Raft::new(
                opts.id,
                Arc::new(config),
                Network::new(dialer.clone()),
                LogStore::new(disk.clone(), stop.clone(), check),
                sm,
            )
            .await
            {
                Ok(raft) => Some(raft),
                // A record that went bad between the scrub and Raft's own reads.
                Err(_) if stop.stopped().is_some() => None,
                Err(e) => return Err(format!("raft start: {e}")),
            },
        };

        let seed = opts.seed ^ incarnation.wrapping_mul(0x9E37_79B9_7F4A_7C15);
        let objects = opts
            .object_store
            .as_ref()
            .map(|c| snapshot::ObjectStoreClient::new(c, dialer.clone()));
        let node = Node(Arc::new(Inner {
            rng: Mutex::new(ChaCha20Rng::seed_from_u64(seed)),
            opts,
            disk,
            dialer,
            events,
            raft,
            stop,
            state,
            keys: Mutex::new(BTreeMap::new()),
            keys_changed: tokio::sync::Notify::new(),
            creating: Mutex::new(BTreeMap::new()),
            parked_released: tokio::sync::Notify::new(),
            kms: Mutex::new(Vec::new()),
            alerts: Mutex::new(BTreeSet::new()),
            objects,
        }));

        let first = node.0.opts.members.keys().next().copied();
        let forms = incarnation == 1 && first == Some(node.id());
        if let Some(raft) = node.0.raft.as_ref().filter(|_| forms) {
            // The voters only: openraft forms a cluster of voters; the leader adds the
            // learners (`add_learners`).
            let members: BTreeMap<NodeId, BasicNode> = node
                .0
                .opts
                .members
                .iter()
                .take(node.0.opts.voters.max(1))
                .map(|(id, addr)| (*id, BasicNode::new(addr)))
                .collect();
            raft.initialize(members)
                .await
                .map_err(|e| format!("forming the cluster: {e}"))?;
        }
        tokio::spawn(node.clone().watch_leadership());
        tokio::spawn(node.clone().unwrap_loop());
        Ok(node)
    }

    /// Adds unwrapped (or freshly created) keys and wakes I/O waiting for them.
    fn add_keys(&self, keys: impl IntoIterator<Item = (String, Dek)>) {
        lock(&self.0.keys).extend(keys);
        self.0.keys_changed.notify_waiters();
    }

    /// Freezes here if the harness asked for a crash at `point`; it then crashes the
    /// host, so nothing after this line runs.
    async fn crash_point(&self, point: CrashPoint) {
        if let Some(hook) = &self.0.opts.hooks.crash_point {
            if hook(self.id(), point) {
                self.emit(Event::CrashPoint { point });
                std::future::pending::<()>().await;
            }
        }
    }

    /// Takes a filesystem's DEK out of `creating`. A create or download that failed after
    /// its commit (an answer lost, a block that could not be copied) drops the DEK: the
    /// unwrap loop, which skipped the filesystem while it was parked, must look again, or
    /// the committed filesystem stays locked on this node with no alert.
    fn release_parked(&self, name: &str) {
        lock(&self.0.creating).remove(name);
        if !lock(&self.0.keys).contains_key(name) {
            self.0.parked_released.notify_one();
        }
    }

    fn probe(&self, probe: Probe) {
        self.0.opts.hooks.probes.fire(probe);
    }

    fn planted(&self, bug: PlantedBug) -> bool {
        self.0.opts.hooks.planted(bug)
    }

    pub fn id(&self) -> NodeId {
        self.0.opts.id
    }

    fn emit(&self, event: Event) {
        (self.0.events)(self.id(), event)
    }

    /// The committed config table as this node has applied it.
    pub fn config(&self) -> Arc<ConfigState> {
        self.0.state.borrow().clone()
    }

    /// Lets an oracle look at the DEKs in this node's memory.
    pub fn with_keys<R>(&self, f: impl FnOnce(&BTreeMap<String, Dek>) -> R) -> R {
        f(&lock(&self.0.keys))
    }

    /// Whether this node serves every filesystem of its config table, with no alert
    /// raised, and knows of at least `filesystems` of them. Cheap enough to ask every tick.
    pub fn is_ready(&self, filesystems: usize) -> bool {
        let state = self.config();
        let keys = lock(&self.0.keys);
        self.config_stopped().is_none()
            && state.filesystems.len() >= filesystems
            && lock(&self.0.alerts).is_empty()
            && state.filesystems.values().all(|f| serves(f, &keys))
    }

    pub fn status(&self) -> NodeStatus {
        let state = self.config();
        let keys = lock(&self.0.keys);
        let (ready, locked): (Vec<_>, Vec<_>) =
            state.filesystems.values().partition(|f| serves(f, &keys));
        let mut alerts: Vec<String> = lock(&self.0.alerts).iter().cloned().collect();
        if self.config_stopped().is_some() {
            alerts.push(CONFIG_REPLICA_STOPPED_ALERT.to_string());
        }
        NodeStatus {
            node: self.id(),
            leader: self
                .live_raft()
                .and_then(|raft| raft.metrics().borrow().current_leader),
            ready: ready.into_iter().map(|f| f.name.clone()).collect(),
            locked: locked.into_iter().map(|f| f.name.clone()).collect(),
            alerts,
        }
    }

    /// The config-table record this backend's replica stopped on, if it did: it then
    /// votes, appends and applies nothing more, and refuses what needs the config table.
    pub fn config_stopped(&self) -> Option<crate::disk::records::RecordId> {
        self.0.stop.stopped()
    }

    /// The Raft replica, unless it stopped (at boot or since).
    fn live_raft(&self) -> Option<&Raft> {
        self.raft().ok()
    }

    /// What a Raft call's failure means: the replica's stop, if it stopped (the call that
    /// met the bad record fails with openraft's fatal storage error), else the error.
    fn failed(&self, e: impl std::fmt::Display) -> ProposeError {
        match self.config_stopped() {
            Some(record) => ProposeError::ReplicaStopped(record.to_string()),
            None => ProposeError::Failed(e.to_string()),
        }
    }

    /// The Raft replica, or the typed refusal of a stopped one.
    fn raft(&self) -> Result<&Raft, ProposeError> {
        match (self.config_stopped(), self.0.raft.as_ref()) {
            (None, Some(raft)) => Ok(raft),
            (Some(record), _) => Err(ProposeError::ReplicaStopped(record.to_string())),
            (None, None) => Err(ProposeError::ReplicaStopped("unknown".into())),
        }
    }

    /// Serves one connection: frames in, frames out, until the peer closes it.
    pub async fn serve(&self, mut stream: BoxStream) {
        while let Ok(Some(req)) = rpc::read_frame::<Request>(&mut stream).await {
            let resp = self.handle(req).await;
            if rpc::write_frame(&mut stream, &resp).await.is_err() {
                break;
            }
        }
    }

    async fn handle(&self, req: Request) -> Response {
        use openraft::error::{Fatal, RaftError};
        // A stopped replica answers its peers as a Raft that has shut down.
        fn stopped<E>() -> RaftError<NodeId, E> {
            RaftError::Fatal(Fatal::Stopped)
        }
        match req {
            Request::AppendEntries(r) => Response::AppendEntries(match self.live_raft() {
                Some(raft) => raft.append_entries(r).await,
                None => Err(stopped()),
            }),
            Request::Vote(r) => Response::Vote(match self.live_raft() {
                Some(raft) => raft.vote(r).await,
                None => Err(stopped()),
            }),
            Request::InstallSnapshot(r) => Response::InstallSnapshot(match self.live_raft() {
                Some(raft) => raft.install_snapshot(r).await,
                None => Err(stopped()),
            }),
            Request::Propose(cmd) => Response::Proposed(self.propose_here(cmd).await),
            Request::ReadIndex => Response::ReadIndex(self.read_index_here().await),
            Request::PutBlock {
                fs_id,
                block,
                stored,
            } => match self.store_here(fs_id, block, &stored) {
                Ok(()) => Response::Stored,
                Err(e) => Response::DiskError(e),
            },
            Request::RepairBlock {
                fs_id,
                block,
                stored,
            } => Response::Repaired(self.0.disk.repair_block(fs_id, block, &stored)),
            Request::ListBlocks { fs_id } => Response::Blocks(self.0.disk.block_ids(fs_id)),
            Request::GetBlock { fs_id, block } => match self.0.disk.read_block(fs_id, block) {
                Ok(b) => Response::Block(b),
                Err(e) => Response::DiskError(e.to_string()),
            },
            Request::Admin(cmd) => Response::Admin(self.admin(cmd).await),
        }
    }

    /// Commits on this node if it leads; never forwards again (no forwarding chains).
    async fn propose_here(&self, cmd: ConfigCommand) -> Result<ConfigResponse, ProposeError> {
        use openraft::error::{ClientWriteError, RaftError};
        match self.raft()?.client_write(cmd).await {
            Ok(resp) => Ok(resp.data),
            Err(RaftError::APIError(ClientWriteError::ForwardToLeader(f))) => {
                Err(ProposeError::forward_to(f.leader_id))
            }
            Err(e) => Err(self.failed(e)),
        }
    }

    /// Commits a change through whichever node leads, waiting out an election.
    pub(crate) async fn propose(&self, cmd: ConfigCommand) -> Result<ConfigResponse, ProposeError> {
        let first = self.propose_once(&cmd).await?;
        // The fault site of a retry whose first answer was lost: the change goes again,
        // and the retry's answer is the one the command sees.
        if self.0.opts.hooks.buggify.fires(Site::DuplicatedProposal) {
            self.probe(Probe::BuggifyDuplicatedProposal);
            return self.propose_once(&cmd).await;
        }
        Ok(first)
    }

    async fn propose_once(&self, cmd: &ConfigCommand) -> Result<ConfigResponse, ProposeError> {
        let deadline = tokio::time::Instant::now() + self.0.opts.timing.propose_timeout;
        self.via_leader(
            deadline,
            || self.propose_here(cmd.clone()),
            &Request::Propose(cmd.clone()),
            |resp| match resp {
                Response::Proposed(r) => Some(r),
                _ => None,
            },
        )
        .await
    }

    /// Asks `here` on this node; if another node leads, sends it `forward` and reads its
    /// answer with `answer`. While no leader is known (or the leader is unreachable),
    /// tries again every heartbeat until `deadline`.
    async fn via_leader<T, Fut>(
        &self,
        deadline: tokio::time::Instant,
        here: impl Fn() -> Fut,
        forward: &Request,
        answer: fn(Response) -> Option<Result<T, ProposeError>>,
    ) -> Result<T, ProposeError>
    where
        Fut: std::future::Future<Output = Result<T, ProposeError>>,
    {
        loop {
            let attempt = match here().await {
                Err(ProposeError::NotLeader(leader)) => {
                    self.call_leader(leader, forward, answer).await
                }
                other => other,
            };
            match attempt {
                Err(ProposeError::NoLeader | ProposeError::NotLeader(_))
                    if tokio::time::Instant::now() < deadline =>
                {
                    tokio::time::sleep(self.0.opts.timing.heartbeat).await;
                }
                other => return other,
            }
        }
    }

    async fn call_leader<T>(
        &self,
        leader: NodeId,
        req: &Request,
        answer: fn(Response) -> Option<Result<T, ProposeError>>,
    ) -> Result<T, ProposeError> {
        let Some(addr) = self.0.opts.members.get(&leader) else {
            return Err(ProposeError::NoLeader);
        };
        match rpc::call(
            self.0.dialer.as_ref(),
            addr,
            req,
            self.0.opts.timing.rpc_timeout,
        )
        .await
        .map(answer)
        {
            Ok(Some(r)) => r,
            // The leader is unreachable from here: wait for the cluster to sort it out.
            Ok(None) | Err(_) => Err(ProposeError::NoLeader),
        }
    }

    /// The index up to which the leader has committed, confirmed by a quorum; only the
    /// leader answers.
    async fn read_index_here(&self) -> Result<Option<u64>, ProposeError> {
        use openraft::error::{CheckIsLeaderError, RaftError};
        match self.raft()?.ensure_linearizable().await {
            Ok(log_id) => Ok(log_id.map(|l| l.index)),
            Err(RaftError::APIError(CheckIsLeaderError::ForwardToLeader(f))) => {
                Err(ProposeError::forward_to(f.leader_id))
            }
            Err(e) => Err(self.failed(e)),
        }
    }

    /// Waits until this node has applied everything the cluster had committed when the
    /// call began, so an admin command sees every change acknowledged before it (a
    /// `security kms set` answered by the leader, say) whichever backend it lands on.
    pub(crate) async fn read_barrier(&self) -> Result<(), ProposeError> {
        let deadline = tokio::time::Instant::now() + self.0.opts.timing.propose_timeout;
        let index = self
            .via_leader(
                deadline,
                || self.read_index_here(),
                &Request::ReadIndex,
                |resp| match resp {
                    Response::ReadIndex(r) => Some(r),
                    _ => None,
                },
            )
            .await?;
        let Some(index) = index else {
            return Ok(());
        };
        // The same deadline bounds the wait for this node to apply up to the index.
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        self.raft()?
            .wait(Some(left))
            .applied_index_at_least(Some(index), "read barrier")
            .await
            .map(|_| ())
            .map_err(|e| self.failed(e))
    }

    async fn watch_leadership(self) {
        let Some(raft) = self.0.raft.as_ref() else {
            return;
        };
        let mut metrics = raft.metrics();
        let mut leading = false;
        loop {
            let (now_leading, term) = {
                let m = metrics.borrow_and_update();
                (m.current_leader == Some(self.id()), m.current_term)
            };
            if now_leading && !leading {
                self.emit(Event::BecameLeader { term });
                if self.0.opts.voters < self.0.opts.members.len() {
                    tokio::spawn(self.clone().add_learners());
                }
            }
            leading = now_leading;
            if metrics.changed().await.is_err() {
                return;
            }
        }
    }

    /// Makes every member that does not vote a learner. The cluster forms with its voters
    /// alone, so its first leader adds the learners; a leader that took over before they
    /// were all added adds the rest. One at a time, each a committed membership change,
    /// tried again each heartbeat while an earlier change is still in flight; a leader
    /// that loses its place stops, and the next one goes on.
    async fn add_learners(self) {
        let Some(raft) = self.0.raft.as_ref() else {
            return;
        };
        let mut metrics = raft.metrics();
        loop {
            let (leading, known) = {
                let m = metrics.borrow_and_update();
                let known: BTreeSet<NodeId> =
                    m.membership_config.nodes().map(|(id, _)| *id).collect();
                (m.current_leader == Some(self.id()), known)
            };
            if !leading {
                return;
            }
            let missing = self
                .0
                .opts
                .members
                .iter()
                .find(|(id, _)| !known.contains(id));
            let Some((id, addr)) = missing else { return };
            let added = raft.add_learner(*id, BasicNode::new(addr), false).await;
            if added.is_err() {
                tokio::time::sleep(self.0.opts.timing.heartbeat).await;
            }
        }
    }

    /// The connector for `config`, reused while the configuration is the same (it
    /// holds the AppRole login).
    fn connector(&self, config: &KmsConfig) -> Arc<dyn KmsConnector> {
        /// A handful of keys at most are in use at once; forget the oldest beyond that.
        const KEEP: usize = 8;
        let mut cached = lock(&self.0.kms);
        if let Some((_, conn)) = cached.iter().find(|(c, _)| c == config) {
            return conn.clone();
        }
        let iv_counter = self.planted(PlantedBug::KmipIvCounter);
        let conn: Arc<dyn KmsConnector> = Arc::new(Probed {
            inner: kms::connect_planted(config, self.0.dialer.clone(), iv_counter),
            probes: self.0.opts.hooks.probes.clone(),
            buggify: self.0.opts.hooks.buggify.clone(),
        });
        if cached.len() == KEEP {
            cached.remove(0);
        }
        cached.push((config.clone(), conn.clone()));
        conn
    }

    fn set_alert(&self, alert: &str, raised: bool) {
        let changed = {
            let mut alerts = lock(&self.0.alerts);
            if raised {
                alerts.insert(alert.to_string())
            } else {
                alerts.remove(alert)
            }
        };
        if changed {
            let alert = alert.to_string();
            self.emit(if raised {
                Event::AlertRaised { alert }
            } else {
                Event::AlertCleared { alert }
            });
        }
    }
}
