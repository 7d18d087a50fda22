//! Snap-To-Object: a filesystem's ciphertext blocks and a manifest with its wrapped DEK
//! go to the object store; `fs download` builds a new filesystem from them, on this
//! cluster or another, if its KMS can unwrap that DEK.

use std::collections::BTreeSet;
use std::sync::Arc;

use super::{find_fs, lock, Node, ObjectStoreConfig, STALE_RETRIES};
use crate::admin::{AdminError, AdminOutput};
use crate::config_table::ConfigCommand;
use crate::dek::Dek;
use crate::disk::StoredBlock;
use crate::events::Event;
use crate::filesystem::{placement_within, FsRecord, KmsBinding, Manifest, SnapshotRecord};
use crate::hooks::{CrashPoint, PlantedBug};
use crate::http::HttpClient;
use crate::kms::KMS_REQUEST_TIMEOUT;
use crate::net::Dialer;
use crate::probe::Probe;
use crate::rpc::{Request, Response};

const MANIFEST: &str = "manifest.json";

/// The node's way to the object store, made once at boot.
pub(super) struct ObjectStoreClient {
    http: HttpClient,
    /// `http://host:port`, without a trailing `/`.
    url: String,
    bucket: String,
}

impl ObjectStoreClient {
    pub(super) fn new(config: &ObjectStoreConfig, dialer: Arc<dyn Dialer>) -> Self {
        ObjectStoreClient {
            http: HttpClient::new(dialer, KMS_REQUEST_TIMEOUT),
            url: config.url.trim_end_matches('/').to_string(),
            bucket: config.bucket.clone(),
        }
    }
}

impl Node {
    fn store(&self) -> Result<&ObjectStoreClient, AdminError> {
        self.0.objects.as_ref().ok_or_else(|| {
            AdminError::ObjectStore("this cluster has no object store configured".into())
        })
    }

    /// One request for the object `key` of `bucket`; `None` if the store has no such
    /// object.
    async fn object(
        &self,
        method: &str,
        bucket: &str,
        key: &str,
        body: Vec<u8>,
    ) -> Result<Option<Vec<u8>>, AdminError> {
        let store = self.store()?;
        let http = &store.http;
        let url = format!("{}/{bucket}/{key}", store.url);
        let req = http::Request::builder()
            .method(method)
            .uri(&url)
            .body(body)
            .map_err(|e| AdminError::ObjectStore(e.to_string()))?;
        let resp = http
            .send(req)
            .await
            .map_err(|e| AdminError::ObjectStore(e.to_string()))?;
        match resp.status().as_u16() {
            200..=299 => Ok(Some(resp.into_body())),
            404 => Ok(None),
            status => Err(AdminError::ObjectStore(format!(
                "{method} {url}: HTTP {status}"
            ))),
        }
    }

    /// Every block of a filesystem, from whichever backend stores it. A backend that
    /// does not answer is tolerated while every block still has a replica that does;
    /// when some block's replicas may all be silent, the list could miss an acknowledged
    /// block, so this fails rather than let a snapshot claim to be complete.
    async fn all_blocks(
        &self,
        record: &FsRecord,
        locator: &str,
    ) -> Result<Vec<(u64, StoredBlock)>, AdminError> {
        let mut ids = BTreeSet::new();
        let mut silent = BTreeSet::new();
        for &member in self.0.opts.members.keys() {
            if member == self.id() {
                ids.extend(self.0.disk.block_ids(record.id));
                continue;
            }
            match self
                .call(member, &Request::ListBlocks { fs_id: record.id })
                .await
            {
                Ok(Response::Blocks(listed)) => ids.extend(listed),
                _ => {
                    silent.insert(member);
                }
            }
        }
        let members: Vec<u64> = self.0.opts.members.keys().copied().collect();
        if let Some(hidden) = placement_within(&members, record.id, self.0.opts.replicas, &silent) {
            self.probe(Probe::SnapshotBlocksUnlisted);
            let names: Vec<String> = hidden.iter().map(|m| format!("backend{m}")).collect();
            return Err(AdminError::Snapshot {
                locator: locator.to_string(),
                reason: format!(
                    "cannot list every block of {}: {} did not answer, and a block placed \
                     on them would have no other replica to list it; nothing was uploaded",
                    record.name,
                    names.join(" and ")
                ),
            });
        }
        let mut blocks = Vec::new();
        for block in ids {
            // Verified like any read: a damaged copy is never uploaded.
            let (_, stored) = self.first_replica(record, block).await.map_err(|reason| {
                AdminError::Unavailable {
                    fs: record.name.clone(),
                    block,
                    reason,
                }
            })?;
            blocks.push((block, stored));
        }
        Ok(blocks)
    }

    /// `fs snapshot upload`: blocks first, then the config table records the snapshot, then
    /// the manifest (a manifest means a complete snapshot).
    pub(super) async fn snapshot_upload(
        &self,
        fs: &str,
        snapshot: &str,
    ) -> Result<AdminOutput, AdminError> {
        self.read_barrier().await?;
        let state = self.config();
        let record = find_fs(&state, fs)?;
        let bucket = self.store()?.bucket.clone();
        let locator = format!("{fs}/{snapshot}");
        let blocks = self.all_blocks(&record, &locator).await?;
        for (block, stored) in &blocks {
            let mut body = stored.nonce.to_vec();
            body.extend_from_slice(&stored.ciphertext);
            self.object("PUT", &bucket, &format!("{locator}/blocks/{block}"), body)
                .await?;
        }
        // Only an encrypted filesystem's DEK is wrapped by a key.
        let kms_key = record
            .encrypted()
            .then(|| state.kms_key_for(&record).map(str::to_string))
            .flatten();
        let manifest = Manifest {
            fs: fs.to_string(),
            snapshot: snapshot.to_string(),
            data_id: record.data_id,
            capacity_gib: record.capacity_gib,
            wrapped_dek: record.wrapped_dek.clone(),
            binding: record.binding.clone(),
            kms_key: kms_key.clone(),
            blocks: blocks.iter().map(|(b, _)| *b).collect(),
        };
        let body = serde_json::to_vec_pretty(&manifest)
            .map_err(|e| AdminError::ObjectStore(e.to_string()))?;
        // The config table lists the snapshot before its manifest is written: a manifest
        // that may be in the store is always in the cluster's list, with the key version it
        // needs. A manifest PUT whose answer is lost (the store took it, then hung or cut the
        // answer) fails the upload but leaves a snapshot a DR site can download; listed, it
        // keeps a careful admin from retiring its key version. A retry replaces the entry.
        self.propose(ConfigCommand::AddSnapshot {
            record: SnapshotRecord {
                fs: fs.to_string(),
                snapshot: snapshot.to_string(),
                bucket: bucket.clone(),
                locator: locator.clone(),
                kms_key,
                key_version: record.key_version(),
            },
        })
        .await?;
        self.crash_point(CrashPoint::BetweenBlocksAndManifest).await;
        self.object("PUT", &bucket, &format!("{locator}/{MANIFEST}"), body)
            .await?;
        self.emit(Event::SnapshotUploaded {
            fs: fs.to_string(),
            locator: locator.clone(),
            blocks: blocks.len(),
        });
        Ok(AdminOutput::SnapshotUploaded {
            bucket,
            locator,
            blocks: blocks.len(),
        })
    }

    /// Commits a downloaded filesystem. The snapshot's wrapping may be behind the cluster
    /// key (a version a rewrap since left behind, or, with KMIP, another key): then the
    /// table refuses it, and the DEK is wrapped again by the cluster key as it stands.
    async fn commit_download(
        &self,
        record: &mut FsRecord,
        dek: Option<&Dek>,
    ) -> Result<u32, AdminError> {
        let mut tries = 0;
        loop {
            match (self.try_commit_fs(record.clone()).await?, dek) {
                (Ok(id), _) => return Ok(id),
                (Err(_), Some(dek)) if tries < STALE_RETRIES => {
                    tries += 1;
                    let config = self.current_kms().await?;
                    record.wrapped_dek = Some(self.wrap_one(&config, dek).await?);
                }
                (Err(reason), _) => return Err(AdminError::NotCommitted(reason)),
            }
        }
    }

    /// `fs download`: the snapshot's DEK must unwrap with this cluster's KMS before
    /// anything is created; then the filesystem is committed and its blocks copied.
    pub(super) async fn fs_download(
        &self,
        name: String,
        capacity_gib: u64,
        bucket: &str,
        locator: &str,
    ) -> Result<AdminOutput, AdminError> {
        self.read_barrier().await?;
        let state = self.config();
        if state.filesystems.contains_key(&name) {
            return Err(AdminError::FsExists(name));
        }
        let snapshot_error = |reason: String| AdminError::Snapshot {
            locator: locator.to_string(),
            reason,
        };
        let manifest: Manifest = match self
            .object("GET", bucket, &format!("{locator}/{MANIFEST}"), Vec::new())
            .await?
        {
            Some(bytes) => serde_json::from_slice(&bytes)
                .map_err(|e| snapshot_error(format!("the manifest is not readable: {e}")))?,
            None => return Err(snapshot_error(format!("no snapshot in bucket {bucket}"))),
        };
        let dek = match &manifest.wrapped_dek {
            None => None,
            Some(wrapped) => {
                if manifest.binding != KmsBinding::ClusterKey {
                    self.probe(Probe::DownloadOwnKeySnapshot);
                }
                // The key the snapshot names, reached with this cluster's KMS.
                let config = state
                    .kms_for_binding(&manifest.binding)
                    .ok_or(AdminError::KmsNotConfigured)?;
                let dek = self.unwrap_one(&config, wrapped).await.map_err(|e| {
                    snapshot_error(format!(
                        "this cluster's KMS cannot unwrap its key (wrapped by {} version {}): {e}",
                        manifest.kms_key.as_deref().unwrap_or("an unknown key"),
                        wrapped.key_version
                    ))
                })?;
                Some(dek)
            }
        };
        let mut record = FsRecord {
            name: name.clone(),
            id: 0,
            data_id: manifest.data_id,
            capacity_gib: capacity_gib.max(manifest.capacity_gib),
            wrapped_dek: manifest.wrapped_dek.clone(),
            binding: if self.planted(PlantedBug::DownloadIgnoresOwnKey) && dek.is_some() {
                KmsBinding::ClusterKey
            } else {
                manifest.binding.clone()
            },
        };
        // Parked so the unwrap loop does not ask the KMS again for this key.
        if let Some(dek) = &dek {
            lock(&self.0.creating).insert(name.clone(), dek.clone());
        }
        let committed = self.commit_download(&mut record, dek.as_ref()).await;
        if committed.is_ok() {
            self.crash_point(CrashPoint::AfterCommitBeforeKeyInMemory)
                .await;
        }
        if let (Ok(_), Some(dek)) = (&committed, &dek) {
            // Held from the commit on: a block that cannot be copied fails the download,
            // but leaves the committed filesystem with its key, not locked.
            self.add_keys([(name.clone(), dek.clone())]);
        }
        self.release_parked(&name);
        let id = committed?;
        let record = FsRecord { id, ..record };
        for (copied, &block) in manifest.blocks.iter().enumerate() {
            let bytes = self
                .object(
                    "GET",
                    bucket,
                    &format!("{locator}/blocks/{block}"),
                    Vec::new(),
                )
                .await?
                .ok_or_else(|| snapshot_error(format!("block {block} is missing")))?;
            if bytes.len() < 12 {
                return Err(snapshot_error(format!("block {block} is truncated")));
            }
            // Checksummed for its new address: the copy's bytes are the snapshot's.
            let stored = StoredBlock::new(
                record.id,
                block,
                bytes[..12].try_into().expect("12 bytes"),
                bytes[12..].to_vec(),
            );
            self.put_replicas(&record, block, &stored).await?;
            if copied == 0 && manifest.blocks.len() > 1 {
                self.crash_point(CrashPoint::MidDownload).await;
            }
        }
        let key_version = record.key_version();
        self.emit(Event::FsDownloaded {
            fs: name.clone(),
            locator: locator.to_string(),
            key_version,
        });
        Ok(AdminOutput::FsCreated {
            name,
            id,
            key_version,
        })
    }
}
