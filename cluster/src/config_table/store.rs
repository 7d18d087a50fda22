//! openraft's log and state-machine storage, kept on the backend's [`Disk`] as sealed
//! records (see `disk::records`). Every read is checked; a record that fails its check,
//! or a write that never lands, stops this replica (see [`FailStop`]): the storage call
//! fails, openraft shuts its core down, and nothing read from a bad record is used.

use std::fmt::Debug;
use std::io::Cursor;
use std::ops::RangeBounds;
use std::sync::Arc;

use openraft::storage::{LogFlushed, LogState, RaftLogStorage, RaftStateMachine, Snapshot};
use openraft::{
    Entry, EntryPayload, LogId, OptionalSend, RaftLogReader, RaftSnapshotBuilder, SnapshotMeta,
    StorageError, StorageIOError, StoredMembership, Vote,
};
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::sync::watch;

use super::fail_stop::FailStop;
use super::{AppliedTable, ConfigResponse, ConfigState, NodeId, TypeConfig};
use crate::disk::records::{RecordCheck, RecordError, RecordId};
use crate::disk::{Disk, MachineRecord, SnapshotRecord};

/// A replica's Raft records on its disk, read and written through the disk's faults,
/// for both stores: once one call fails (or after a stop at boot), every call fails,
/// and the first failure stops the replica.
#[derive(Clone)]
struct Records {
    disk: Disk,
    stop: FailStop,
    check: RecordCheck,
}

impl Records {
    /// Record `id`, checked (`None`: there is none).
    fn read<T: DeserializeOwned>(&self, id: RecordId) -> Result<Option<T>, RecordError> {
        self.stop.check()?;
        self.disk
            .read_record(id, self.check)
            .map_err(|e| self.stop.fail(e))
    }

    /// The log entries in `range`, each checked.
    fn read_log(
        &self,
        range: impl RangeBounds<u64>,
    ) -> Result<Vec<Entry<TypeConfig>>, RecordError> {
        self.stop.check()?;
        self.disk
            .read_log(range, self.check)
            .map_err(|e| self.stop.fail(e))
    }

    fn write(&self, id: RecordId, value: &impl Serialize) -> Result<(), RecordError> {
        self.stop.check()?;
        self.disk
            .write_record(id, value)
            .map_err(|e| self.stop.fail(e))
    }
}

#[derive(Clone)]
pub struct LogStore {
    records: Records,
}

impl LogStore {
    /// `check` is how every read treats a record's checksum (`RecordCheck::Verify` but
    /// under a planted bug).
    pub fn new(disk: Disk, stop: FailStop, check: RecordCheck) -> Self {
        LogStore {
            records: Records { disk, stop, check },
        }
    }

    /// Reads a single-valued record (`Option<T>` on disk).
    fn read_one<T: DeserializeOwned>(&self, id: RecordId) -> Result<Option<T>, RecordError> {
        self.records.read::<Option<T>>(id).map(Option::flatten)
    }

    fn write(&self, id: RecordId, value: &impl Serialize) -> Result<(), RecordError> {
        self.records.write(id, value)
    }

    fn disk(&self) -> &Disk {
        &self.records.disk
    }
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry<TypeConfig>>, StorageError<NodeId>> {
        Ok(self.records.read_log(range)?)
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = Self;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError<NodeId>> {
        let last_purged: Option<LogId<NodeId>> = self.read_one(RecordId::LastPurged)?;
        let last = match self.disk().log_indexes(..).last() {
            Some(&i) => self.read_one::<Entry<TypeConfig>>(RecordId::Log(i))?,
            None => None,
        };
        Ok(LogState {
            last_purged_log_id: last_purged,
            last_log_id: last.map(|e| e.log_id).or(last_purged),
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote<NodeId>) -> Result<(), StorageError<NodeId>> {
        Ok(self.write(RecordId::Vote, &Some(*vote))?)
    }

    async fn read_vote(&mut self) -> Result<Option<Vote<NodeId>>, StorageError<NodeId>> {
        Ok(self.read_one(RecordId::Vote)?)
    }

    async fn save_committed(
        &mut self,
        committed: Option<LogId<NodeId>>,
    ) -> Result<(), StorageError<NodeId>> {
        Ok(self.write(RecordId::Committed, &committed)?)
    }

    async fn read_committed(&mut self) -> Result<Option<LogId<NodeId>>, StorageError<NodeId>> {
        Ok(self.read_one(RecordId::Committed)?)
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: LogFlushed<TypeConfig>,
    ) -> Result<(), StorageError<NodeId>>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        for entry in entries {
            if let Err(e) = self.write(RecordId::Log(entry.log_id.index), &entry) {
                callback.log_io_completed(Err(std::io::Error::other(e.to_string())));
                return Err(e.into());
            }
        }
        // The simulated disk is durable as soon as the write returns.
        callback.log_io_completed(Ok(()));
        Ok(())
    }

    async fn truncate(&mut self, log_id: LogId<NodeId>) -> Result<(), StorageError<NodeId>> {
        self.records.stop.check()?;
        for i in self.disk().log_indexes(log_id.index..) {
            self.disk().remove_record(RecordId::Log(i));
        }
        Ok(())
    }

    async fn purge(&mut self, log_id: LogId<NodeId>) -> Result<(), StorageError<NodeId>> {
        self.write(RecordId::LastPurged, &Some(log_id))?;
        for i in self.disk().log_indexes(..=log_id.index) {
            self.disk().remove_record(RecordId::Log(i));
        }
        Ok(())
    }
}

/// The applied config table, in memory. Every change is published on `published`,
/// which is how the node learns that, say, a new encrypted filesystem needs its DEK
/// unwrapped, and shown on `applied`, which is how the harness sees it.
///
/// Why in memory, with only snapshots on disk: a state machine written to disk after
/// every apply costs the whole table per change, so a cluster that creates n filesystems
/// one by one writes O(n^2) bytes. The log already holds every change durably; at boot
/// openraft replays the committed entries after the snapshot (`applied_state` says
/// where it stands), and a snapshot every few thousand entries keeps that replay short.
pub struct StateMachineStore {
    records: Records,
    machine: MachineRecord,
    published: watch::Sender<Arc<ConfigState>>,
    applied: AppliedTable,
}

impl StateMachineStore {
    /// The store, with the state machine as the last snapshot on disk left it (nothing
    /// on a fresh disk), published and shown on `applied`. A snapshot that cannot be
    /// read stops the replica, as any bad record does (the node checked every record at
    /// boot, see `Disk::scrub_records`).
    pub fn new(
        disk: Disk,
        stop: FailStop,
        check: RecordCheck,
        applied: AppliedTable,
    ) -> (Self, watch::Receiver<Arc<ConfigState>>) {
        let records = Records { disk, stop, check };
        let machine = records
            .read::<SnapshotRecord>(RecordId::Snapshot)
            .ok()
            .flatten()
            .and_then(|s| serde_json::from_slice::<MachineRecord>(&s.data).ok())
            .unwrap_or_default();
        applied.set(&machine);
        let (published, rx) = watch::channel(Arc::new(machine.state.clone()));
        (
            StateMachineStore {
                records,
                machine,
                published,
                applied,
            },
            rx,
        )
    }

    /// Tells the node and the harness what is now applied.
    fn publish(&self) {
        self.published
            .send_replace(Arc::new(self.machine.state.clone()));
        self.applied.set(&self.machine);
    }

    fn write(&self, id: RecordId, value: &impl Serialize) -> Result<(), RecordError> {
        self.records.write(id, value)
    }
}

fn io_error(e: &(impl std::error::Error + 'static)) -> StorageError<NodeId> {
    StorageIOError::read_state_machine(e).into()
}

impl RaftSnapshotBuilder<TypeConfig> for StateMachineStore {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, StorageError<NodeId>> {
        self.records.stop.check()?;
        let machine = &self.machine;
        let boots = self.records.disk.lock().boots;
        let data = serde_json::to_vec(machine).map_err(|e| io_error(&e))?;
        let snapshot_id = match machine.last_applied {
            Some(l) => format!("{}-{}-{}", l.leader_id, l.index, boots),
            None => format!("empty-{boots}"),
        };
        let meta = SnapshotMeta {
            last_log_id: machine.last_applied,
            last_membership: machine.membership.clone(),
            snapshot_id,
        };
        self.write(
            RecordId::Snapshot,
            &SnapshotRecord {
                meta: meta.clone(),
                data: data.clone(),
            },
        )?;
        Ok(Snapshot {
            meta,
            snapshot: Box::new(Cursor::new(data)),
        })
    }
}

impl RaftStateMachine<TypeConfig> for StateMachineStore {
    type SnapshotBuilder = Self;

    async fn applied_state(
        &mut self,
    ) -> Result<
        (
            Option<LogId<NodeId>>,
            StoredMembership<NodeId, openraft::BasicNode>,
        ),
        StorageError<NodeId>,
    > {
        self.records.stop.check()?;
        Ok((self.machine.last_applied, self.machine.membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<ConfigResponse>, StorageError<NodeId>>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        self.records.stop.check()?;
        let machine = &mut self.machine;
        let mut responses = Vec::new();
        for entry in entries {
            machine.last_applied = Some(entry.log_id);
            let response = match &entry.payload {
                EntryPayload::Blank => ConfigResponse::Ok,
                EntryPayload::Normal(cmd) => machine.state.apply(cmd),
                EntryPayload::Membership(m) => {
                    machine.membership = StoredMembership::new(Some(entry.log_id), m.clone());
                    ConfigResponse::Ok
                }
            };
            responses.push(response);
        }
        self.publish();
        Ok(responses)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        StateMachineStore {
            records: self.records.clone(),
            machine: self.machine.clone(),
            published: self.published.clone(),
            applied: self.applied.clone(),
        }
    }

    async fn begin_receiving_snapshot(
        &mut self,
    ) -> Result<Box<Cursor<Vec<u8>>>, StorageError<NodeId>> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta<NodeId, openraft::BasicNode>,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), StorageError<NodeId>> {
        let data = snapshot.into_inner();
        let machine: MachineRecord = serde_json::from_slice(&data).map_err(|e| io_error(&e))?;
        self.write(
            RecordId::Snapshot,
            &SnapshotRecord {
                meta: meta.clone(),
                data,
            },
        )?;
        self.machine = machine;
        self.publish();
        Ok(())
    }

    async fn get_current_snapshot(
        &mut self,
    ) -> Result<Option<Snapshot<TypeConfig>>, StorageError<NodeId>> {
        let snapshot = self.records.read::<SnapshotRecord>(RecordId::Snapshot)?;
        Ok(snapshot.map(|s| Snapshot {
            meta: s.meta,
            snapshot: Box::new(Cursor::new(s.data)),
        }))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use openraft::CommittedLeaderId;

    use super::*;
    use crate::disk::faults::{DiskFaultMode, FaultTarget};

    fn entry(index: u64) -> Entry<TypeConfig> {
        Entry {
            log_id: LogId::new(CommittedLeaderId::new(1, 1), index),
            payload: EntryPayload::Blank,
        }
    }

    /// A disk holding log entries 1 to `last`.
    fn disk_with_log(last: u64) -> Disk {
        let disk = Disk::default();
        for i in 1..=last {
            disk.write_record(RecordId::Log(i), &entry(i)).unwrap();
        }
        disk
    }

    /// A store over `disk` whose stops are counted.
    fn store(disk: &Disk) -> (LogStore, FailStop, Arc<AtomicUsize>) {
        let reports = Arc::new(AtomicUsize::new(0));
        let counted = reports.clone();
        let stop = FailStop::new(move |_| {
            counted.fetch_add(1, Ordering::SeqCst);
        });
        (
            LogStore::new(disk.clone(), stop.clone(), RecordCheck::Verify),
            stop,
            reports,
        )
    }

    /// A rotted log entry is never handed to Raft: the read fails, the replica stops once
    /// (one report), and every storage call after it fails too, without a panic.
    #[tokio::test]
    async fn a_rotted_entry_stops_the_replica() {
        let disk = disk_with_log(3);
        let (mut log, stop, reports) = store(&disk);
        assert_eq!(log.try_get_log_entries(1..=3).await.unwrap().len(), 3);
        disk.inject_on(FaultTarget::Config, DiskFaultMode::BitRot, 1.0, 7);
        assert!(log.try_get_log_entries(2..3).await.is_err());
        assert_eq!(stop.stopped(), Some(RecordId::Log(2)));
        assert!(log.read_vote().await.is_err());
        assert!(log.get_log_state().await.is_err());
        assert_eq!(reports.load(Ordering::SeqCst), 1);
        assert_eq!(disk.record_faults_met(), vec![DiskFaultMode::BitRot]);
        // Block faults were not turned on: the block side met nothing.
        assert!(disk.faults_met().is_empty());
    }

    /// A truncation removes the entries from its index on, so a boot never finds a stale
    /// suffix of an older term; a purge removes those up to its index and remembers it.
    #[tokio::test]
    async fn truncate_and_purge_remove_their_entries() {
        let disk = disk_with_log(5);
        let (mut log, _, _) = store(&disk);
        log.truncate(entry(4).log_id).await.unwrap();
        assert_eq!(disk.log_indexes(..), vec![1, 2, 3]);
        let state = log.get_log_state().await.unwrap();
        assert_eq!(state.last_log_id, Some(entry(3).log_id));

        log.purge(entry(2).log_id).await.unwrap();
        assert_eq!(disk.log_indexes(..), vec![3]);
        let state = log.get_log_state().await.unwrap();
        assert_eq!(state.last_purged_log_id, Some(entry(2).log_id));
        assert_eq!(state.last_log_id, Some(entry(3).log_id));

        log.purge(entry(3).log_id).await.unwrap();
        let state = log.get_log_state().await.unwrap();
        assert!(disk.log_indexes(..).is_empty());
        assert_eq!(
            state.last_log_id,
            Some(entry(3).log_id),
            "the purge mark stands in"
        );
    }

    /// A record that a misdirected write put at another index fails there, and a write
    /// that never lands is refused after its rewrites: both stop the replica.
    #[tokio::test]
    async fn a_misplaced_or_lost_record_stops_the_replica() {
        let disk = Disk::default();
        disk.write_record(RecordId::Log(1), &entry(1)).unwrap();
        let stray = disk.lock().raft.records[&RecordId::Log(1)].clone();
        disk.lock().raft.records.insert(RecordId::Log(2), stray);
        let (mut log, stop, _) = store(&disk);
        assert!(log.try_get_log_entries(1..=2).await.is_err());
        assert_eq!(stop.stopped(), Some(RecordId::Log(2)));

        let disk = Disk::default();
        disk.inject_on(FaultTarget::Config, DiskFaultMode::LostWrite, 1.0, 7);
        let (mut log, stop, _) = store(&disk);
        assert!(log.save_vote(&Vote::new(1, 1)).await.is_err());
        assert_eq!(stop.stopped(), Some(RecordId::Vote));
        assert!(disk.lock().raft.records.is_empty());
    }
}
