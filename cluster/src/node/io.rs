//! The data path: each block is encrypted under its filesystem's DEK on the node that
//! writes it, and the ciphertext is stored on `replicas` backends.

use super::replica_read::{first_valid, BlockReadError, ReadLog};
use super::{find_fs, lock, Node};
use crate::admin::{AdminError, AdminOutput};
use crate::dek::{self, Dek};
use crate::disk::{StoredBlock, WriteOutcome};
use crate::events::{Event, KMS_ERROR_ALERT};
use crate::filesystem::{placement, FsRecord};
use crate::hooks::PlantedBug;
use crate::probe::Probe;
use crate::rpc::{self, Request, Response};

impl Node {
    /// The filesystem and its key. A filesystem created a moment ago elsewhere may not be
    /// applied or unwrapped here yet: catch up with the config table, then wait a bounded
    /// time for the key before answering "locked" (at once while the KMS is failing: the
    /// key is not on its way).
    async fn fs_and_key(&self, fs: &str) -> Result<(FsRecord, Option<Dek>), AdminError> {
        match self.fs_and_key_now(fs) {
            Err(AdminError::NoSuchFs(_) | AdminError::FsLocked(_)) => {}
            ready => return ready,
        }
        self.read_barrier().await?;
        let deadline = tokio::time::Instant::now() + self.0.opts.timing.key_wait;
        loop {
            let notified = self.0.keys_changed.notified();
            tokio::pin!(notified);
            // Registered before the check, so a key added in between still wakes us.
            notified.as_mut().enable();
            match self.fs_and_key_now(fs) {
                Err(AdminError::FsLocked(_))
                    if tokio::time::Instant::now() < deadline && !self.kms_failing() => {}
                other => return other,
            }
            tokio::select! {
                _ = notified => {}
                _ = tokio::time::sleep_until(deadline) => {}
            }
        }
    }

    /// Whether this node's unwraps are failing (the `KMSError` alert is raised).
    fn kms_failing(&self) -> bool {
        lock(&self.0.alerts).contains(KMS_ERROR_ALERT)
    }

    fn fs_and_key_now(&self, fs: &str) -> Result<(FsRecord, Option<Dek>), AdminError> {
        let record = find_fs(&self.config(), fs)?;
        if !record.encrypted() {
            return Ok((record, None));
        }
        let dek = lock(&self.0.keys)
            .get(fs)
            .cloned()
            .ok_or_else(|| AdminError::FsLocked(fs.to_string()))?;
        Ok((record, Some(dek)))
    }

    pub(super) fn replicas_of(&self, record: &FsRecord, block: u64) -> Vec<u64> {
        let members: Vec<u64> = self.0.opts.members.keys().copied().collect();
        placement(&members, record.id, block, self.0.opts.replicas)
    }

    /// The associated data that binds a block's ciphertext to its place.
    fn block_aad(&self, data_id: u32, block: u64) -> [u8; 12] {
        if self.planted(PlantedBug::AadIgnoresBlock) {
            return dek::block_aad(data_id, 0);
        }
        dek::block_aad(data_id, block)
    }

    /// The next nonce sequence number, made durable before it is used.
    fn next_nonce_seq(&self) -> u64 {
        let mut disk = self.0.disk.lock();
        disk.nonce_seq += 1;
        disk.nonce_seq
    }

    pub(super) async fn write_block(
        &self,
        fs: &str,
        block: u64,
        data: &[u8],
    ) -> Result<AdminOutput, AdminError> {
        let (record, dek) = self.fs_and_key(fs).await?;
        let stored = match dek {
            Some(dek) => {
                let nonce = dek::block_nonce(self.id(), self.next_nonce_seq());
                let aad = self.block_aad(record.data_id, block);
                StoredBlock::new(record.id, block, nonce, dek::seal(&dek, &nonce, &aad, data))
            }
            None => StoredBlock::new(record.id, block, [0; 12], data.to_vec()),
        };
        let replicas = self.put_replicas(&record, block, &stored).await?;
        self.emit(Event::BlockWritten {
            fs: fs.to_string(),
            block,
            replicas: replicas.clone(),
        });
        Ok(AdminOutput::Written { replicas })
    }

    /// Stores a block on each of its replicas in turn, failing at the first that fails;
    /// returns the replicas.
    pub(super) async fn put_replicas(
        &self,
        record: &FsRecord,
        block: u64,
        stored: &StoredBlock,
    ) -> Result<Vec<u64>, AdminError> {
        let replicas = self.replicas_of(record, block);
        for &target in &replicas {
            self.put_block(target, record.id, block, stored)
                .await
                .map_err(|reason| AdminError::Unavailable {
                    fs: record.name.clone(),
                    block,
                    reason,
                })?;
        }
        Ok(replicas)
    }

    async fn put_block(
        &self,
        target: u64,
        fs_id: u32,
        block: u64,
        stored: &StoredBlock,
    ) -> Result<(), String> {
        if target == self.id() {
            return self.store_here(fs_id, block, stored);
        }
        let req = Request::PutBlock {
            fs_id,
            block,
            stored: stored.clone(),
        };
        match self.call(target, &req).await? {
            Response::Stored => Ok(()),
            Response::DiskError(e) => Err(format!("backend {target}: {e}")),
            _ => Err(format!("backend {target} answered a block write oddly")),
        }
    }

    /// Writes a block to this backend's disk, which reads it back (see
    /// [`crate::disk::Disk::write_block`]); a write that never landed is an error.
    pub(super) fn store_here(
        &self,
        fs_id: u32,
        block: u64,
        stored: &StoredBlock,
    ) -> Result<(), String> {
        match self.0.disk.write_block(fs_id, block, stored) {
            WriteOutcome::Stored { rewrites } => {
                if rewrites > 0 {
                    self.probe(Probe::WriteRewritten);
                }
                Ok(())
            }
            WriteOutcome::Failed(e) => Err(e.to_string()),
        }
    }

    /// The block from the first of its replicas that holds a copy that verifies, and
    /// which one that is; else why none gave one (see [`super::replica_read`]). The
    /// replicas whose copy was bad are repaired from the good copy once one is found.
    pub(super) async fn first_replica(
        &self,
        record: &FsRecord,
        block: u64,
    ) -> Result<(u64, StoredBlock), String> {
        let replicas = self.replicas_of(record, block);
        let mut log = ReadLog::default();
        // The planted bug's fast path: the first replica's copy is trusted as it comes.
        let trust_first = self.planted(PlantedBug::ReadSkipsChecksum);
        let get = |target| self.get_block(target, record.id, block);
        let found = first_valid(record.id, block, &replicas, trust_first, get, &mut log).await;
        for _ in 0..log.mismatches {
            self.probe(Probe::BlockChecksumMismatch);
        }
        for _ in 0..log.io_errors {
            self.probe(Probe::BlockReadIoError);
        }
        let (tried, from, stored) = found.map_err(|e| e.to_string())?;
        if tried > 0 {
            self.probe(Probe::ReadFromAnotherReplica);
        }
        self.repair(&log.bad, record.id, block, &stored).await;
        Ok((from, stored))
    }

    /// Writes a good copy over the bad ones of `targets`, best effort: a replica that
    /// does not take it is repaired by a later read. Each replica keeps a copy of its
    /// own that verifies (a newer write may have landed meanwhile).
    async fn repair(&self, targets: &[u64], fs_id: u32, block: u64, good: &StoredBlock) {
        for &target in targets {
            let repaired = if target == self.id() {
                self.0.disk.repair_block(fs_id, block, good)
            } else {
                let req = Request::RepairBlock {
                    fs_id,
                    block,
                    stored: good.clone(),
                };
                matches!(self.call(target, &req).await, Ok(Response::Repaired(true)))
            };
            if repaired {
                self.probe(Probe::BlockRepaired);
            }
        }
    }

    async fn get_block(
        &self,
        target: u64,
        fs_id: u32,
        block: u64,
    ) -> Result<Option<StoredBlock>, BlockReadError> {
        if target == self.id() {
            return self
                .0
                .disk
                .read_block(fs_id, block)
                .map_err(|e| BlockReadError::Disk(format!("backend {target}: {e}")));
        }
        match self
            .call(target, &Request::GetBlock { fs_id, block })
            .await
            .map_err(BlockReadError::Unreachable)?
        {
            Response::Block(b) => Ok(b),
            Response::DiskError(e) => Err(BlockReadError::Disk(format!("backend {target}: {e}"))),
            _ => Err(BlockReadError::Unreachable(format!(
                "backend {target} answered a block read oddly"
            ))),
        }
    }

    pub(super) async fn call(&self, target: u64, req: &Request) -> Result<Response, String> {
        let addr = self
            .0
            .opts
            .members
            .get(&target)
            .ok_or_else(|| format!("backend {target} is not a member"))?;
        rpc::call(
            self.0.dialer.as_ref(),
            addr,
            req,
            self.0.opts.timing.rpc_timeout,
        )
        .await
        .map_err(|e| e.to_string())
    }

    /// Reads from the first replica that has the block.
    pub(super) async fn read_block(&self, fs: &str, block: u64) -> Result<AdminOutput, AdminError> {
        let (record, dek) = self.fs_and_key(fs).await?;
        let (from, stored) =
            self.first_replica(&record, block)
                .await
                .map_err(|reason| AdminError::Unavailable {
                    fs: fs.to_string(),
                    block,
                    reason,
                })?;
        let data = match &dek {
            Some(dek) => dek::open(
                dek,
                &stored.nonce,
                &self.block_aad(record.data_id, block),
                &stored.ciphertext,
            )
            .ok_or_else(|| AdminError::Corrupt {
                fs: fs.to_string(),
                block,
            })?,
            None => stored.ciphertext,
        };
        self.emit(Event::BlockRead {
            fs: fs.to_string(),
            block,
            from,
        });
        Ok(AdminOutput::Data { data })
    }
}
