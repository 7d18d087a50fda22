//! Activate, Revoke and Destroy: the client-driven state transitions of an object, with
//! PyKMIP's result reasons for refusals (Permission Denied for Activate and Destroy, Illegal
//! Operation for Revoke).

use ttlv::enums::{result_reason, revocation_reason_code};
use ttlv::tag;
use ttlv::{Item, ResultFailure};

use super::{invalid_field, owned, owned_live, permission_denied, uid_of, Ctx};
use crate::kmip::objects::Revocation;

fn uid_answer(uid: String) -> Vec<Item> {
    vec![Item::text(tag::UNIQUE_IDENTIFIER, uid)]
}

pub(super) fn activate(ctx: &mut Ctx, payload: &Item) -> Result<Vec<Item>, ResultFailure> {
    let uid = uid_of(ctx, payload)?;
    let now = ctx.st.now();
    let o = owned_live(ctx, &uid)?;
    o.activate(now)
        .map_err(|e| permission_denied(format!("Object {uid} {}", e.0)))?;
    Ok(uid_answer(uid))
}

pub(super) fn revoke(ctx: &mut Ctx, payload: &Item) -> Result<Vec<Item>, ResultFailure> {
    // Checked before the object, as PyKMIP does.
    let code = payload
        .find(tag::REVOCATION_REASON)
        .and_then(|r| r.find(tag::REVOCATION_REASON_CODE))
        .ok_or_else(|| invalid_field("Revocation reason code must be specified"))?
        .as_enum()
        .map_err(|e| invalid_field(e.to_string()))?;
    let how = if code == revocation_reason_code::KEY_COMPROMISE {
        Revocation::Compromise
    } else {
        Revocation::Deactivate
    };
    let uid = uid_of(ctx, payload)?;
    let now = ctx.st.now();
    // A destroyed object can still be marked compromised (Destroyed Compromised), so this
    // looks past destruction; any other reason finds it gone.
    let o = match how {
        Revocation::Compromise => owned(ctx, &uid)?,
        Revocation::Deactivate => owned_live(ctx, &uid)?,
    };
    o.revoke(how, now).map_err(|e| {
        ResultFailure::new(
            result_reason::ILLEGAL_OPERATION,
            format!(
                "Object {uid} {} (reason given: {})",
                e.0,
                revocation_reason_code::name(code)
            ),
        )
    })?;
    Ok(uid_answer(uid))
}

pub(super) fn destroy(ctx: &mut Ctx, payload: &Item) -> Result<Vec<Item>, ResultFailure> {
    let uid = uid_of(ctx, payload)?;
    let now = ctx.st.now();
    let o = owned_live(ctx, &uid)?;
    o.destroy(now)
        .map_err(|e| permission_denied(format!("Object {uid} {}", e.0)))?;
    Ok(uid_answer(uid))
}
