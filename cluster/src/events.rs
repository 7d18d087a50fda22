//! What a node reports about itself. The runner stamps each event with simulated time
//! and writes it to the trace, so an event must never carry a secret.

use std::sync::Arc;

use serde::Serialize;

use crate::config_table::{ConfigResponse, NodeId};
use crate::hooks::CrashPoint;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    Booted {
        incarnation: u64,
    },
    BecameLeader {
        term: u64,
    },
    /// A KMS configured where the cluster had none (`security kms set`). Named as WEKA
    /// names the event, so a search for WEKA's name finds it in a trace.
    #[serde(rename = "KmsConfigurationAdded")]
    KmsConfigurationAdded {
        kms: String,
    },
    /// A KMS configuration replaced by another (`security kms set` again, or a KMIP
    /// rewrap moving the cluster to its new key). WEKA's name.
    #[serde(rename = "KmsConfigurationUpdated")]
    KmsConfigurationUpdated {
        kms: String,
    },
    /// The KMS configuration removed (`security kms reset`). WEKA's name.
    #[serde(rename = "KmsConfigurationRemoved")]
    KmsConfigurationRemoved {
        kms: String,
    },
    KmsSetRefused {
        error: String,
    },
    FsCreated {
        fs: String,
        id: u32,
        encrypted: bool,
        key_version: Option<u64>,
    },
    FsCreateFailed {
        fs: String,
        error: String,
    },
    DekUnwrapped {
        fs: String,
        key_version: u64,
    },
    UnwrapFailed {
        attempt: u32,
        pending: usize,
        error: String,
        retry_in_ms: u64,
    },
    AlertRaised {
        alert: String,
    },
    AlertCleared {
        alert: String,
    },
    BlockWritten {
        fs: String,
        block: u64,
        replicas: Vec<u64>,
    },
    BlockRead {
        fs: String,
        block: u64,
        from: u64,
    },
    CrashPoint {
        point: CrashPoint,
    },
    Rewrapped {
        fs: String,
        /// A key of the filesystem's own (`security kms rewrap --all`, `fs kms-rewrap`);
        /// `None` for the cluster key, and then left out of the trace.
        #[serde(skip_serializing_if = "Option::is_none")]
        key: Option<String>,
        from_version: u64,
        to_version: u64,
    },
    /// A KMIP rewrap moved a filesystem's DEK from one key (UID) to another.
    RewrappedToKey {
        fs: String,
        from_key: String,
        to_key: String,
    },
    FsKeyMoved {
        fs: String,
        key: String,
        key_version: u64,
    },
    SnapshotUploaded {
        fs: String,
        locator: String,
        blocks: usize,
    },
    FsDownloaded {
        fs: String,
        locator: String,
        key_version: Option<u64>,
    },
    RewrapFailed {
        error: String,
        done: usize,
        left: usize,
    },
    /// This backend met a config-table record it could not verify (or write) and stopped
    /// its config-table replica (see `config_table::fail_stop`). Names the record, never
    /// its contents.
    ConfigRecordCorrupt {
        /// The record's kind (`log-entry`, `vote`, `snapshot`, ...).
        record: String,
        /// A log entry's index.
        #[serde(skip_serializing_if = "Option::is_none")]
        index: Option<u64>,
        /// What the disk did: `checksum`, `unreadable` or `write-not-stored`.
        fault: String,
    },
}

impl Event {
    /// The event a committed `SetKms` reports, by the config table's `answer`: added where
    /// the cluster had no KMS, updated where it replaced one.
    pub fn kms_configured(answer: &ConfigResponse, kms: String) -> Event {
        match answer {
            ConfigResponse::KmsSet { replaced: false } => Event::KmsConfigurationAdded { kms },
            _ => Event::KmsConfigurationUpdated { kms },
        }
    }
}

/// Where a node's events go.
pub type EventSink = Arc<dyn Fn(NodeId, Event) + Send + Sync>;

/// The alert a backend raises once its config-table replica has stopped on a record it
/// could not verify: it stays raised (the replica does not come back in this model).
pub const CONFIG_REPLICA_STOPPED_ALERT: &str = "ConfigReplicaStopped";

/// The alert WEKA raises while a filesystem key cannot be unwrapped.
pub const KMS_ERROR_ALERT: &str = "KMSError";
