//! The operations, one file per group, and what they share: the per-message context, how a
//! request names its object (with the ID placeholder a Create leaves for the rest of its
//! batch), ownership, and the shapes of errors.

mod create;
pub(crate) mod crypto;
mod lifecycle;
mod read;
pub(crate) mod server;

use ttlv::enums::{operation as op, result_reason};
use ttlv::tag;
use ttlv::{Item, ProtocolVersion, ResultFailure};

use super::objects::ManagedObject;
use super::state::State;

/// What every operation of one request message sees.
pub(crate) struct Ctx<'a> {
    pub st: &'a mut State,
    /// The client certificate's CN.
    pub owner: &'a str,
    pub version: ProtocolVersion,
    /// The UID the last Create of this message made: the UID of a later item without one.
    pub placeholder: Option<String>,
}

pub(crate) type OpResult = Result<Option<Item>, ResultFailure>;

/// The operations this server answers, in Query's order.
pub(crate) const OPERATIONS: [u32; 11] = [
    op::CREATE,
    op::LOCATE,
    op::GET,
    op::GET_ATTRIBUTES,
    op::ACTIVATE,
    op::REVOKE,
    op::DESTROY,
    op::QUERY,
    op::DISCOVER_VERSIONS,
    op::ENCRYPT,
    op::DECRYPT,
];

pub(crate) fn dispatch(ctx: &mut Ctx, operation: u32, payload: &Item) -> OpResult {
    let items = match operation {
        op::CREATE => create::create(ctx, payload),
        op::LOCATE => read::locate(ctx, payload),
        op::GET => read::get(ctx, payload),
        op::GET_ATTRIBUTES => read::get_attributes(ctx, payload),
        op::ACTIVATE => lifecycle::activate(ctx, payload),
        op::REVOKE => lifecycle::revoke(ctx, payload),
        op::DESTROY => lifecycle::destroy(ctx, payload),
        op::QUERY => server::query(ctx, payload),
        op::DISCOVER_VERSIONS => server::discover_versions(payload),
        op::ENCRYPT => crypto::encrypt(ctx, payload),
        op::DECRYPT => crypto::decrypt(ctx, payload),
        other => Err(ResultFailure::new(
            result_reason::OPERATION_NOT_SUPPORTED,
            format!(
                "The {} operation is not supported by the server",
                op::name(other)
            ),
        )),
    }?;
    Ok(Some(Item::structure(tag::RESPONSE_PAYLOAD, items)))
}

pub(crate) fn invalid_field(message: impl Into<String>) -> ResultFailure {
    ResultFailure::new(result_reason::INVALID_FIELD, message)
}

pub(crate) fn permission_denied(message: impl Into<String>) -> ResultFailure {
    ResultFailure::new(result_reason::PERMISSION_DENIED, message)
}

/// What an unknown UID and another owner's object both look like.
pub(crate) fn not_found(uid: &str) -> ResultFailure {
    ResultFailure::new(
        result_reason::ITEM_NOT_FOUND,
        format!("Could not locate object: {uid}"),
    )
}

/// A field of the request payload, or Invalid Field naming it.
pub(crate) fn optional<T>(
    payload: &Item,
    t: tag::Tag,
    read: impl Fn(&Item) -> Result<T, ttlv::ItemError>,
) -> Result<Option<T>, ResultFailure> {
    payload
        .find(t)
        .map(read)
        .transpose()
        .map_err(|e| invalid_field(e.to_string()))
}

/// The UID the item names, or the placeholder of this message's Create.
pub(crate) fn uid_of(ctx: &Ctx, payload: &Item) -> Result<String, ResultFailure> {
    match optional(payload, tag::UNIQUE_IDENTIFIER, Item::as_text)? {
        Some(uid) => Ok(uid),
        None => ctx.placeholder.clone().ok_or_else(|| {
            invalid_field(
                "Request Payload has no Unique Identifier, and no Create earlier in this \
                 batch left one to use",
            )
        }),
    }
}

/// The caller's object `uid`, destroyed or not; anybody else's is "not found".
pub(crate) fn owned<'c>(
    ctx: &'c mut Ctx,
    uid: &str,
) -> Result<&'c mut ManagedObject, ResultFailure> {
    match ctx.st.object_mut(uid) {
        Some(o) if o.owner == ctx.owner => Ok(o),
        _ => Err(not_found(uid)),
    }
}

/// The caller's object `uid` while it still has key material: PyKMIP deletes a destroyed
/// object, so it answers Item Not Found for one, and so does this.
pub(crate) fn owned_live<'c>(
    ctx: &'c mut Ctx,
    uid: &str,
) -> Result<&'c mut ManagedObject, ResultFailure> {
    let o = owned(ctx, uid)?;
    if o.state.is_destroyed() {
        return Err(ResultFailure::new(
            result_reason::ITEM_NOT_FOUND,
            format!(
                "Could not locate object: {uid}: it was destroyed (state {})",
                o.state.name()
            ),
        ));
    }
    Ok(o)
}
