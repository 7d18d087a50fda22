//! openraft's log and state-machine storage, kept on the backend's [`Disk`].

use std::fmt::Debug;
use std::io::Cursor;
use std::ops::RangeBounds;
use std::sync::Arc;

use openraft::storage::{LogFlushed, LogState, RaftLogStorage, RaftStateMachine, Snapshot};
use openraft::{
    Entry, EntryPayload, LogId, OptionalSend, RaftLogReader, RaftSnapshotBuilder, SnapshotMeta,
    StorageError, StorageIOError, StoredMembership, Vote,
};
use tokio::sync::watch;

use super::{ConfigResponse, ConfigState, NodeId, TypeConfig};
use crate::disk::{Disk, MachineRecord, SnapshotRecord};

#[derive(Clone)]
pub struct LogStore {
    disk: Disk,
}

impl LogStore {
    pub fn new(disk: Disk) -> Self {
        LogStore { disk }
    }
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry<TypeConfig>>, StorageError<NodeId>> {
        let disk = self.disk.lock();
        Ok(disk.raft.log.range(range).map(|(_, e)| e.clone()).collect())
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = Self;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError<NodeId>> {
        let disk = self.disk.lock();
        let last_purged = disk.raft.last_purged;
        let last = disk
            .raft
            .log
            .values()
            .next_back()
            .map(|e| e.log_id)
            .or(last_purged);
        Ok(LogState {
            last_purged_log_id: last_purged,
            last_log_id: last,
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote<NodeId>) -> Result<(), StorageError<NodeId>> {
        self.disk.lock().raft.vote = Some(*vote);
        Ok(())
    }

    async fn read_vote(&mut self) -> Result<Option<Vote<NodeId>>, StorageError<NodeId>> {
        Ok(self.disk.lock().raft.vote)
    }

    async fn save_committed(
        &mut self,
        committed: Option<LogId<NodeId>>,
    ) -> Result<(), StorageError<NodeId>> {
        self.disk.lock().raft.committed = committed;
        Ok(())
    }

    async fn read_committed(&mut self) -> Result<Option<LogId<NodeId>>, StorageError<NodeId>> {
        Ok(self.disk.lock().raft.committed)
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
        {
            let mut disk = self.disk.lock();
            for entry in entries {
                disk.raft.log.insert(entry.log_id.index, entry);
            }
        }
        // The simulated disk is durable as soon as the write returns.
        callback.log_io_completed(Ok(()));
        Ok(())
    }

    async fn truncate(&mut self, log_id: LogId<NodeId>) -> Result<(), StorageError<NodeId>> {
        let mut disk = self.disk.lock();
        let doomed: Vec<u64> = disk
            .raft
            .log
            .range(log_id.index..)
            .map(|(k, _)| *k)
            .collect();
        for k in doomed {
            disk.raft.log.remove(&k);
        }
        Ok(())
    }

    async fn purge(&mut self, log_id: LogId<NodeId>) -> Result<(), StorageError<NodeId>> {
        let mut disk = self.disk.lock();
        disk.raft.last_purged = Some(log_id);
        let doomed: Vec<u64> = disk
            .raft
            .log
            .range(..=log_id.index)
            .map(|(k, _)| *k)
            .collect();
        for k in doomed {
            disk.raft.log.remove(&k);
        }
        Ok(())
    }
}

/// The applied config table. Every change is published on `published`, which is how
/// the node learns that, say, a new encrypted filesystem needs its DEK unwrapped.
pub struct StateMachineStore {
    disk: Disk,
    published: watch::Sender<Arc<ConfigState>>,
}

impl StateMachineStore {
    pub fn new(disk: Disk) -> (Self, watch::Receiver<Arc<ConfigState>>) {
        let state = Arc::new(disk.config_state());
        let (published, rx) = watch::channel(state);
        (StateMachineStore { disk, published }, rx)
    }

    fn publish(&self) {
        let state = Arc::new(self.disk.config_state());
        self.published.send_replace(state);
    }
}

fn io_error(e: &(impl std::error::Error + 'static)) -> StorageError<NodeId> {
    StorageIOError::read_state_machine(e).into()
}

impl RaftSnapshotBuilder<TypeConfig> for StateMachineStore {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, StorageError<NodeId>> {
        let (machine, boots) = {
            let disk = self.disk.lock();
            (disk.raft.machine.clone(), disk.boots)
        };
        let data = serde_json::to_vec(&machine).map_err(|e| io_error(&e))?;
        let snapshot_id = match machine.last_applied {
            Some(l) => format!("{}-{}-{}", l.leader_id, l.index, boots),
            None => format!("empty-{boots}"),
        };
        let meta = SnapshotMeta {
            last_log_id: machine.last_applied,
            last_membership: machine.membership.clone(),
            snapshot_id,
        };
        self.disk.lock().raft.snapshot = Some(SnapshotRecord {
            meta: meta.clone(),
            data: data.clone(),
        });
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
        let disk = self.disk.lock();
        Ok((
            disk.raft.machine.last_applied,
            disk.raft.machine.membership.clone(),
        ))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<ConfigResponse>, StorageError<NodeId>>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut responses = Vec::new();
        {
            let mut disk = self.disk.lock();
            let machine = &mut disk.raft.machine;
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
        }
        self.publish();
        Ok(responses)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        StateMachineStore {
            disk: self.disk.clone(),
            published: self.published.clone(),
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
        {
            let mut disk = self.disk.lock();
            disk.raft.machine = machine;
            disk.raft.snapshot = Some(SnapshotRecord {
                meta: meta.clone(),
                data,
            });
        }
        self.publish();
        Ok(())
    }

    async fn get_current_snapshot(
        &mut self,
    ) -> Result<Option<Snapshot<TypeConfig>>, StorageError<NodeId>> {
        let disk = self.disk.lock();
        Ok(disk.raft.snapshot.as_ref().map(|s| Snapshot {
            meta: s.meta.clone(),
            snapshot: Box::new(Cursor::new(s.data.clone())),
        }))
    }
}
