//! KMIP's wire format, TTLV (tag, type, length, value), and the few message shapes a KMIP
//! client and server exchange.
//!
//! One codec serves both sides: the cluster's KMIP connector and kms-sim's KMIP server build
//! and read messages with it, so a disagreement between them is a disagreement with the
//! standard, not between two encoders. It is a generic item tree rather than serde types
//! because a server must read any request — including unknown operations and fields of the
//! wrong type — far enough to answer it with KMIP's own result reason.
//!
//! The decoder treats its input as hostile: it never panics, never recurses deeper than
//! [`Limits::depth_max`], and never allocates more than the input it was given.

mod decode;
pub mod enums;
mod item;
mod message;
pub mod tag;

pub use decode::{decode, frame_len, read_frame, DecodeError, Limits, HEADER_LEN};
pub use item::{Item, ItemError, Value};
pub use message::{
    attribute, name_attribute, BatchItem, ProtocolVersion, RequestMessage, ResponseItem,
    ResponseMessage, ResultFailure,
};
