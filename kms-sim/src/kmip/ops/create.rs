//! Create: a new AES symmetric key in state Pre-Active, from 1.x Template-Attribute or 2.x
//! Attributes syntax. Algorithm, length and usage mask are required, as PyKMIP requires them.

use ttlv::enums::{cryptographic_algorithm, object_type, result_reason};
use ttlv::tag;
use ttlv::{Item, ResultFailure};

use super::{invalid_field, Ctx};
use crate::kmip::attributes::{self, RequestAttr};

pub(super) fn create(ctx: &mut Ctx, payload: &Item) -> Result<Vec<Item>, ResultFailure> {
    let kind = payload
        .get(tag::OBJECT_TYPE)
        .and_then(Item::as_enum)
        .map_err(|e| invalid_field(e.to_string()))?;
    if kind != object_type::SYMMETRIC_KEY {
        return Err(invalid_field(format!(
            "Cannot create a {} object with the Create operation",
            object_type::name(kind)
        )));
    }
    let attrs = request_attributes(ctx, payload)?;

    let mut algorithm = None;
    let mut length = None;
    let mut mask = None;
    let mut names = Vec::new();
    for a in &attrs {
        if a.name == "Name" {
            // PyKMIP's rule for a multi-valued attribute: every instance after the first
            // carries its index.
            if !names.is_empty() && a.index.is_none() {
                return Err(invalid_field(
                    "Attribute index missing from multivalued attribute Name",
                ));
            }
            names.push(a.name_value()?);
            continue;
        }
        let slot = match a.name.as_str() {
            "Cryptographic Algorithm" => &mut algorithm,
            "Cryptographic Length" => &mut length,
            "Cryptographic Usage Mask" => &mut mask,
            other => {
                return Err(invalid_field(format!(
                    "The {other} attribute is not supported by Create on this server"
                )))
            }
        };
        if a.index.is_some_and(|i| i != 0) {
            return Err(invalid_field(format!(
                "Non-zero attribute index for the single-valued attribute {}",
                a.name
            )));
        }
        if slot.is_some() {
            return Err(ResultFailure::new(
                result_reason::INDEX_OUT_OF_BOUNDS,
                format!("Cannot set multiple instances of the {} attribute", a.name),
            ));
        }
        *slot = Some(a);
    }

    let algorithm = required(algorithm, "cryptographic algorithm")?.enumeration()?;
    let length = required(length, "cryptographic length")?.integer()?;
    let mask = required(mask, "cryptographic usage mask")?.integer()?;
    if algorithm != cryptographic_algorithm::AES {
        return Err(invalid_field(format!(
            "Cryptographic Algorithm {} is not supported: this server makes AES keys only",
            cryptographic_algorithm::name(algorithm)
        )));
    }
    if ![128, 192, 256].contains(&length) {
        return Err(invalid_field(format!(
            "Cryptographic Length {length} is not an AES key length (128, 192 or 256)"
        )));
    }

    let uid = ctx.st.create_aes(ctx.owner, length, mask, names);
    ctx.placeholder = Some(uid.clone());
    Ok(vec![
        Item::enumeration(tag::OBJECT_TYPE, object_type::SYMMETRIC_KEY),
        Item::text(tag::UNIQUE_IDENTIFIER, uid),
    ])
}

/// 1.x carries a Template-Attribute of named Attributes, 2.x an Attributes structure; each
/// version's payload must use its own.
fn request_attributes(ctx: &Ctx, payload: &Item) -> Result<Vec<RequestAttr>, ResultFailure> {
    let v2 = attributes::is_v2(ctx.version);
    let (ours, theirs) = if v2 {
        (tag::ATTRIBUTES, tag::TEMPLATE_ATTRIBUTE)
    } else {
        (tag::TEMPLATE_ATTRIBUTE, tag::ATTRIBUTES)
    };
    if payload.find(theirs).is_some() {
        return Err(invalid_field(format!(
            "A KMIP {} Create carries {}, not {}",
            ctx.version,
            tag::name(ours),
            tag::name(theirs)
        )));
    }
    let Some(container) = payload.find(ours) else {
        return Ok(Vec::new());
    };
    if v2 {
        return attributes::from_v2(container);
    }
    if container.find(tag::NAME).is_some() {
        return Err(ResultFailure::new(
            result_reason::ITEM_NOT_FOUND,
            "Attribute templates are not supported",
        ));
    }
    container
        .items()
        .map_err(|e| invalid_field(e.to_string()))?;
    attributes::from_v1(container.all(tag::ATTRIBUTE))
}

fn required<'a>(a: Option<&'a RequestAttr>, name: &str) -> Result<&'a RequestAttr, ResultFailure> {
    a.ok_or_else(|| invalid_field(format!("The {name} must be specified as an attribute")))
}
