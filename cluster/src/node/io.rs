//! The data path: each block is encrypted under its filesystem's DEK on the node that
//! writes it, and the ciphertext is stored on `replicas` backends.

use super::{find_fs, lock, Node};
use crate::admin::{AdminError, AdminOutput};
use crate::dek::{self, Dek};
use crate::disk::StoredBlock;
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
                StoredBlock {
                    nonce,
                    ciphertext: dek::seal(&dek, &nonce, &aad, data),
                }
            }
            None => StoredBlock {
                nonce: [0; 12],
                ciphertext: data.to_vec(),
            },
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
            self.0
                .disk
                .lock()
                .blocks
                .insert((fs_id, block), stored.clone());
            return Ok(());
        }
        let req = Request::PutBlock {
            fs_id,
            block,
            stored: stored.clone(),
        };
        match self.call(target, &req).await? {
            Response::Stored => Ok(()),
            _ => Err(format!("backend {target} answered a block write oddly")),
        }
    }

    /// The block from the first of its replicas that holds it, and which one that is;
    /// else why none gave it.
    pub(super) async fn first_replica(
        &self,
        record: &FsRecord,
        block: u64,
    ) -> Result<(u64, StoredBlock), String> {
        let mut last_error = String::from("no replica holds it");
        for (tried, target) in self.replicas_of(record, block).into_iter().enumerate() {
            match self.get_block(target, record.id, block).await {
                Ok(Some(stored)) => {
                    if tried > 0 {
                        self.probe(Probe::ReadFromAnotherReplica);
                    }
                    return Ok((target, stored));
                }
                Ok(None) => {}
                Err(e) => last_error = e,
            }
        }
        Err(last_error)
    }

    async fn get_block(
        &self,
        target: u64,
        fs_id: u32,
        block: u64,
    ) -> Result<Option<StoredBlock>, String> {
        if target == self.id() {
            return Ok(self.0.disk.lock().blocks.get(&(fs_id, block)).cloned());
        }
        match self
            .call(target, &Request::GetBlock { fs_id, block })
            .await?
        {
            Response::Block(b) => Ok(b),
            _ => Err(format!("backend {target} answered a block read oddly")),
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
