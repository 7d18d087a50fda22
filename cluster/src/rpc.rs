//! Backend-to-backend and admin messages: length-prefixed JSON frames over a stream.

use std::time::Duration;

use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::admin::{AdminCommand, AdminError, AdminOutput};
use crate::config_table::{ConfigCommand, ConfigResponse, NodeId, TypeConfig};
use crate::disk::StoredBlock;
use crate::net::{BoxStream, Dialer};

/// Frames larger than this are refused: a peer sending garbage must not make a node
/// allocate gigabytes.
const MAX_FRAME: u32 = 64 << 20;

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Request {
    AppendEntries(AppendEntriesRequest<TypeConfig>),
    Vote(VoteRequest<NodeId>),
    InstallSnapshot(InstallSnapshotRequest<TypeConfig>),
    /// A config change forwarded to the node that believes it leads.
    Propose(ConfigCommand),
    /// Asks the leader for the log index a linearizable read must wait for.
    ReadIndex,
    PutBlock {
        fs_id: u32,
        block: u64,
        stored: StoredBlock,
    },
    GetBlock {
        fs_id: u32,
        block: u64,
    },
    /// A good copy of a block, for a replica whose own copy a read found bad: stored
    /// only if the copy there still fails its checksum or cannot be read.
    RepairBlock {
        fs_id: u32,
        block: u64,
        stored: StoredBlock,
    },
    /// The blocks of a filesystem this backend stores.
    ListBlocks {
        fs_id: u32,
    },
    Admin(AdminCommand),
}

type RaftResult<T, E = openraft::error::Infallible> =
    Result<T, openraft::error::RaftError<NodeId, E>>;

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Response {
    AppendEntries(RaftResult<AppendEntriesResponse<NodeId>>),
    Vote(RaftResult<VoteResponse<NodeId>>),
    InstallSnapshot(
        RaftResult<InstallSnapshotResponse<NodeId>, openraft::error::InstallSnapshotError>,
    ),
    Proposed(Result<ConfigResponse, ProposeError>),
    ReadIndex(Result<Option<u64>, ProposeError>),
    Stored,
    Block(Option<StoredBlock>),
    Blocks(Vec<u64>),
    /// The disk failed a block read or write (a bad sector, a write that never landed).
    DiskError(String),
    /// Whether a `RepairBlock` replaced the copy.
    Repaired(bool),
    Admin(Result<AdminOutput, AdminError>),
}

/// Why a proposal did not commit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum ProposeError {
    #[error("no leader is known yet")]
    NoLeader,
    #[error("node {0} is not the leader")]
    NotLeader(NodeId),
    #[error("the config table could not commit: {0}")]
    Failed(String),
    /// The backend asked has stopped its config-table replica on a record (named) that
    /// failed verification on its disk.
    #[error("this backend's config-table replica is stopped: its {0} record failed verification")]
    ReplicaStopped(String),
}

impl ProposeError {
    /// What a node that does not lead answers, from the leader openraft knows of, if any.
    pub fn forward_to(leader: Option<NodeId>) -> ProposeError {
        match leader {
            Some(leader) => ProposeError::NotLeader(leader),
            None => ProposeError::NoLeader,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RpcError {
    #[error("cannot reach {addr}: {reason}")]
    Unreachable { addr: String, reason: String },
    #[error("{addr} did not answer within {ms} ms")]
    Timeout { addr: String, ms: u64 },
    #[error("{addr} sent a bad frame: {reason}")]
    BadFrame { addr: String, reason: String },
}

pub async fn write_frame(stream: &mut BoxStream, msg: &impl Serialize) -> std::io::Result<()> {
    let bytes = serde_json::to_vec(msg)?;
    stream.write_u32(bytes.len() as u32).await?;
    stream.write_all(&bytes).await?;
    stream.flush().await
}

/// `Ok(None)` on a clean end of stream.
pub async fn read_frame<T: DeserializeOwned>(stream: &mut BoxStream) -> std::io::Result<Option<T>> {
    let len = match stream.read_u32().await {
        Ok(len) => len,
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    };
    if len > MAX_FRAME {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("frame of {len} bytes is over the {MAX_FRAME}-byte limit"),
        ));
    }
    let mut buf = vec![0u8; len as usize];
    stream.read_exact(&mut buf).await?;
    serde_json::from_slice(&buf)
        .map(Some)
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
}

/// One request, one answer, on a fresh connection, within `timeout`.
pub async fn call(
    dialer: &dyn Dialer,
    addr: &str,
    req: &Request,
    timeout: Duration,
) -> Result<Response, RpcError> {
    let ms = timeout.as_millis() as u64;
    let exchange = async {
        let mut stream = dialer.dial(addr).await.map_err(|e| RpcError::Unreachable {
            addr: addr.to_string(),
            reason: e.to_string(),
        })?;
        write_frame(&mut stream, req)
            .await
            .map_err(|e| RpcError::Unreachable {
                addr: addr.to_string(),
                reason: e.to_string(),
            })?;
        match read_frame(&mut stream).await {
            Ok(Some(resp)) => Ok(resp),
            Ok(None) => Err(RpcError::Unreachable {
                addr: addr.to_string(),
                reason: "connection closed before the answer".into(),
            }),
            Err(e) => Err(RpcError::BadFrame {
                addr: addr.to_string(),
                reason: e.to_string(),
            }),
        }
    };
    match tokio::time::timeout(timeout, exchange).await {
        Ok(r) => r,
        Err(_) => Err(RpcError::Timeout {
            addr: addr.to_string(),
            ms,
        }),
    }
}
