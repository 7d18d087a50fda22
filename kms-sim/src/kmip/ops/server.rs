//! Query and Discover Versions: what the server says about itself.

use ttlv::enums::{object_type, query_function};
use ttlv::tag;
use ttlv::{Item, ProtocolVersion, ResultFailure};

use super::{invalid_field, Ctx, OPERATIONS};
use crate::kmip::message::SUPPORTED;

pub const VENDOR_IDENTIFICATION: &str = "wekasim kms-sim KMIP server";

pub(super) fn query(_ctx: &mut Ctx, payload: &Item) -> Result<Vec<Item>, ResultFailure> {
    let mut functions = Vec::new();
    for f in payload.all(tag::QUERY_FUNCTION) {
        functions.push(f.as_enum().map_err(|e| invalid_field(e.to_string()))?);
    }
    let mut out = Vec::new();
    if functions.contains(&query_function::QUERY_OPERATIONS) {
        out.extend(
            OPERATIONS
                .iter()
                .map(|op| Item::enumeration(tag::OPERATION, *op)),
        );
    }
    if functions.contains(&query_function::QUERY_OBJECTS) {
        out.push(Item::enumeration(
            tag::OBJECT_TYPE,
            object_type::SYMMETRIC_KEY,
        ));
    }
    if functions.contains(&query_function::QUERY_SERVER_INFORMATION) {
        out.push(Item::text(
            tag::VENDOR_IDENTIFICATION,
            VENDOR_IDENTIFICATION,
        ));
    }
    // Other query functions (namespaces, extensions, ...) have nothing to list here.
    Ok(out)
}

/// The client's versions that this server speaks, in the client's order; all of this
/// server's, highest first, if the client named none.
pub(super) fn discover_versions(payload: &Item) -> Result<Vec<Item>, ResultFailure> {
    let mut theirs = Vec::new();
    for v in payload.all(tag::PROTOCOL_VERSION) {
        theirs.push(ProtocolVersion::from_item(v).map_err(|e| invalid_field(e.to_string()))?);
    }
    let answer: Vec<ProtocolVersion> = if theirs.is_empty() {
        SUPPORTED.to_vec()
    } else {
        theirs
            .into_iter()
            .filter(|v| SUPPORTED.contains(v))
            .collect()
    };
    Ok(answer.into_iter().map(ProtocolVersion::to_item).collect())
}
