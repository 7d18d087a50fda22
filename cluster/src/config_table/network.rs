//! Raft's messages between backends, over the node's [`Dialer`].

use std::sync::Arc;

use openraft::error::{InstallSnapshotError, NetworkError, RPCError, RaftError, Unreachable};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use openraft::BasicNode;

use super::{NodeId, TypeConfig};
use crate::net::Dialer;
use crate::rpc::{self, Request, Response, RpcError};

#[derive(Clone)]
pub struct Network {
    dialer: Arc<dyn Dialer>,
}

impl Network {
    pub fn new(dialer: Arc<dyn Dialer>) -> Self {
        Network { dialer }
    }
}

pub struct Peer {
    dialer: Arc<dyn Dialer>,
    addr: String,
}

impl RaftNetworkFactory<TypeConfig> for Network {
    type Network = Peer;

    async fn new_client(&mut self, _target: NodeId, node: &BasicNode) -> Peer {
        Peer {
            dialer: self.dialer.clone(),
            addr: node.addr.clone(),
        }
    }
}

type NetResult<T, E = openraft::error::Infallible> =
    Result<T, RPCError<NodeId, BasicNode, RaftError<NodeId, E>>>;

fn transport_error<E: std::error::Error>(e: RpcError) -> RPCError<NodeId, BasicNode, E> {
    match e {
        // Backing off is right for both: the peer is down or cut off.
        RpcError::Unreachable { .. } | RpcError::Timeout { .. } => {
            RPCError::Unreachable(Unreachable::new(&e))
        }
        RpcError::BadFrame { .. } => RPCError::Network(NetworkError::new(&e)),
    }
}

fn unexpected<E: std::error::Error>(what: &str) -> RPCError<NodeId, BasicNode, E> {
    let e = std::io::Error::new(
        std::io::ErrorKind::InvalidData,
        format!("peer answered a {what} request with another kind of answer"),
    );
    RPCError::Network(NetworkError::new(&e))
}

impl Peer {
    async fn call(&self, req: Request, option: &RPCOption) -> Result<Response, RpcError> {
        rpc::call(self.dialer.as_ref(), &self.addr, &req, option.hard_ttl()).await
    }
}

impl RaftNetwork<TypeConfig> for Peer {
    async fn append_entries(
        &mut self,
        req: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> NetResult<AppendEntriesResponse<NodeId>> {
        match self.call(Request::AppendEntries(req), &option).await {
            Ok(Response::AppendEntries(r)) => {
                r.map_err(|e| RPCError::RemoteError(openraft::error::RemoteError::new(0, e)))
            }
            Ok(_) => Err(unexpected("append-entries")),
            Err(e) => Err(transport_error(e)),
        }
    }

    async fn vote(
        &mut self,
        req: VoteRequest<NodeId>,
        option: RPCOption,
    ) -> NetResult<VoteResponse<NodeId>> {
        match self.call(Request::Vote(req), &option).await {
            Ok(Response::Vote(r)) => {
                r.map_err(|e| RPCError::RemoteError(openraft::error::RemoteError::new(0, e)))
            }
            Ok(_) => Err(unexpected("vote")),
            Err(e) => Err(transport_error(e)),
        }
    }

    async fn install_snapshot(
        &mut self,
        req: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> NetResult<InstallSnapshotResponse<NodeId>, InstallSnapshotError> {
        match self.call(Request::InstallSnapshot(req), &option).await {
            Ok(Response::InstallSnapshot(r)) => {
                r.map_err(|e| RPCError::RemoteError(openraft::error::RemoteError::new(0, e)))
            }
            Ok(_) => Err(unexpected("install-snapshot")),
            Err(e) => Err(transport_error(e)),
        }
    }
}
