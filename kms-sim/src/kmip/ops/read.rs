//! Get, Get Attributes and Locate: reading the caller's objects, never anybody else's.

use ttlv::enums::{key_format_type, object_type, result_reason};
use ttlv::tag;
use ttlv::{Item, ResultFailure, Value};

use super::{invalid_field, optional, owned_live, uid_of, Ctx};
use crate::kmip::attributes::{self, RequestAttr};
use crate::kmip::objects::ManagedObject;

pub(super) fn get(ctx: &mut Ctx, payload: &Item) -> Result<Vec<Item>, ResultFailure> {
    let uid = uid_of(ctx, payload)?;
    let format = optional(payload, tag::KEY_FORMAT_TYPE, Item::as_enum)?;
    if payload.find(tag::KEY_COMPRESSION_TYPE).is_some() {
        return Err(ResultFailure::new(
            result_reason::KEY_COMPRESSION_TYPE_NOT_SUPPORTED,
            "Key compression is not supported",
        ));
    }
    let o = owned_live(ctx, &uid)?;
    let material = match format.unwrap_or(key_format_type::RAW) {
        key_format_type::RAW => Item::bytes(tag::KEY_MATERIAL, o.material.expose()),
        key_format_type::TRANSPARENT_SYMMETRIC_KEY => Item::structure(
            tag::KEY_MATERIAL,
            vec![Item::bytes(tag::KEY, o.material.expose())],
        ),
        other => {
            return Err(ResultFailure::new(
                result_reason::KEY_FORMAT_TYPE_NOT_SUPPORTED,
                format!(
                    "Object {uid} cannot be given as {}: this server gives symmetric keys as \
                     Raw or Transparent Symmetric Key",
                    key_format_type::name(other)
                ),
            ))
        }
    };
    let format = format.unwrap_or(key_format_type::RAW);
    let key_block = Item::structure(
        tag::KEY_BLOCK,
        vec![
            Item::enumeration(tag::KEY_FORMAT_TYPE, format),
            Item::structure(tag::KEY_VALUE, vec![material]),
            Item::enumeration(tag::CRYPTOGRAPHIC_ALGORITHM, o.algorithm),
            Item::integer(tag::CRYPTOGRAPHIC_LENGTH, o.length),
        ],
    );
    Ok(vec![
        Item::enumeration(tag::OBJECT_TYPE, object_type::SYMMETRIC_KEY),
        Item::text(tag::UNIQUE_IDENTIFIER, uid),
        Item::structure(tag::SYMMETRIC_KEY, vec![key_block]),
    ])
}

pub(super) fn get_attributes(ctx: &mut Ctx, payload: &Item) -> Result<Vec<Item>, ResultFailure> {
    let uid = uid_of(ctx, payload)?;
    let wanted = requested_names(ctx, payload)?;
    let version = ctx.version;
    let o = owned_live(ctx, &uid)?;
    let mut attrs = attributes::of_object(o);
    // Names this server does not know, or attributes without a value, are left out, as the
    // spec and PyKMIP do.
    // In the order asked, as PyKMIP answers; a name asked twice is answered once.
    if !wanted.is_empty() {
        let mut tags: Vec<_> = Vec::new();
        for t in wanted.iter().filter_map(|n| attributes::tag_of(n)) {
            if !tags.contains(&t) {
                tags.push(t);
            }
        }
        attrs = tags
            .iter()
            .flat_map(|t| attrs.iter().filter(move |a| a.tag == *t).cloned())
            .collect();
    }
    let mut out = vec![Item::text(tag::UNIQUE_IDENTIFIER, uid)];
    out.extend(attributes::render(version, attrs));
    Ok(out)
}

/// 1.x names attributes by Attribute Name; 2.x by Attribute Reference, an enumeration of the
/// attribute's tag or a structure holding its name.
fn requested_names(ctx: &Ctx, payload: &Item) -> Result<Vec<String>, ResultFailure> {
    let field = |e: ttlv::ItemError| invalid_field(e.to_string());
    if !attributes::is_v2(ctx.version) {
        return payload
            .all(tag::ATTRIBUTE_NAME)
            .map(|n| n.as_text().map_err(field))
            .collect();
    }
    payload
        .all(tag::ATTRIBUTE_REFERENCE)
        .map(|r| match &r.value {
            Value::Enumeration(t) => Ok(attributes::name_of(*t)),
            Value::Structure(_) => r
                .get(tag::ATTRIBUTE_NAME)
                .and_then(Item::as_text)
                .map_err(field),
            _ => Err(invalid_field(
                "Attribute Reference is neither an Enumeration nor a Structure",
            )),
        })
        .collect()
}

pub(super) fn locate(ctx: &mut Ctx, payload: &Item) -> Result<Vec<Item>, ResultFailure> {
    let max = optional(payload, tag::MAXIMUM_ITEMS, Item::as_integer)?;
    let offset = optional(payload, tag::OFFSET_ITEMS, Item::as_integer)?;
    let filters = if attributes::is_v2(ctx.version) {
        match payload.find(tag::ATTRIBUTES) {
            Some(a) => attributes::from_v2(a)?,
            None => Vec::new(),
        }
    } else {
        attributes::from_v1(payload.all(tag::ATTRIBUTE))?
    };
    let mut found = Vec::new();
    for o in ctx.st.objects.values() {
        if o.owner != ctx.owner || o.state.is_destroyed() {
            continue;
        }
        if matches_all(o, &filters)? {
            found.push(o);
        }
    }
    // PyKMIP's order: newest first, creation order among equals.
    found.sort_by_key(|o| std::cmp::Reverse(o.initial_date));
    let skip = offset.unwrap_or(0).max(0) as usize;
    let take = max.map_or(usize::MAX, |m| m.max(0) as usize);
    Ok(found
        .into_iter()
        .skip(skip)
        .take(take)
        .map(|o| Item::text(tag::UNIQUE_IDENTIFIER, o.uid.clone()))
        .collect())
}

/// Attributes this server does not keep are ignored, as PyKMIP ignores them.
fn matches_all(o: &ManagedObject, filters: &[RequestAttr]) -> Result<bool, ResultFailure> {
    for f in filters {
        let hit = match f.name.as_str() {
            "Name" => o.names.contains(&f.name_value()?),
            "Object Type" => f.enumeration()? == object_type::SYMMETRIC_KEY,
            "State" => f.enumeration()? == o.state.to_enum(),
            "Cryptographic Algorithm" => f.enumeration()? == o.algorithm,
            "Cryptographic Length" => f.integer()? == o.length,
            _ => true,
        };
        if !hit {
            return Ok(false);
        }
    }
    Ok(true)
}
