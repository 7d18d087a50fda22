//! The system under test: a model of a WEKA cluster's backends and how they keep
//! filesystem data keys (DEKs) safe with an external KMS.
//!
//! Data flows one way: an [`admin::AdminCommand`] reaches a [`node::Node`], which asks
//! the KMS (through a [`kms::KmsConnector`]) and then commits to the Raft-replicated
//! [`config_table`]; every node applies the committed change and reacts to it (for
//! example by unwrapping a new DEK). Nothing here knows whether it runs inside the
//! deterministic simulation or on real sockets: the network comes in through
//! [`net::Dialer`], events go out through [`events::EventSink`].

pub mod admin;
pub mod buggify;
pub mod config_table;
pub mod dek;
pub mod disk;
pub mod events;
pub mod filesystem;
pub mod hooks;
pub mod http;
pub mod kms;
pub mod net;
pub mod node;
pub mod probe;
pub mod rpc;
pub mod secret;
pub mod tls;
pub mod weka_cli;
pub mod weka_print;
