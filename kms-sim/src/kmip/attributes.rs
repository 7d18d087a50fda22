//! KMIP attributes both ways: the ones a request carries (1.x `Attribute` structures of
//! Attribute Name / Index / Value, or a 2.x `Attributes` structure of tagged values) read into
//! one form, and an object's attributes written in the syntax of the request's version.

use ttlv::enums::{name_type, object_type};
use ttlv::tag::{self, Tag};
use ttlv::{Item, ProtocolVersion, ResultFailure};

use super::objects::ManagedObject;
use super::ops::invalid_field;

/// The attributes this server knows, by KMIP name and by the tag 2.x names them with.
pub const KNOWN: &[(&str, Tag)] = &[
    ("Unique Identifier", tag::UNIQUE_IDENTIFIER),
    ("Name", tag::NAME),
    ("Object Type", tag::OBJECT_TYPE),
    ("Cryptographic Algorithm", tag::CRYPTOGRAPHIC_ALGORITHM),
    ("Cryptographic Length", tag::CRYPTOGRAPHIC_LENGTH),
    ("Cryptographic Usage Mask", tag::CRYPTOGRAPHIC_USAGE_MASK),
    ("State", tag::STATE),
    ("Initial Date", tag::INITIAL_DATE),
    ("Activation Date", tag::ACTIVATION_DATE),
    ("Deactivation Date", tag::DEACTIVATION_DATE),
    ("Compromise Date", tag::COMPROMISE_DATE),
    ("Destroy Date", tag::DESTROY_DATE),
];

pub fn tag_of(name: &str) -> Option<Tag> {
    KNOWN.iter().find(|(n, _)| *n == name).map(|(_, t)| *t)
}

pub fn name_of(t: Tag) -> String {
    KNOWN
        .iter()
        .find(|(_, k)| *k == t)
        .map(|(n, _)| n.to_string())
        .unwrap_or_else(|| tag::name(t))
}

/// 2.0 moved from named attributes to tagged ones.
pub fn is_v2(version: ProtocolVersion) -> bool {
    version >= ProtocolVersion::V2_0
}

/// One attribute of a request.
#[derive(Debug, Clone)]
pub struct RequestAttr {
    pub name: String,
    pub index: Option<i32>,
    /// In 1.x the Attribute Value item, in 2.x the attribute's own item.
    pub value: Item,
}

impl RequestAttr {
    fn wrong(&self, e: ttlv::ItemError) -> ResultFailure {
        invalid_field(format!("attribute {}: {e}", self.name))
    }
    pub fn enumeration(&self) -> Result<u32, ResultFailure> {
        self.value.as_enum().map_err(|e| self.wrong(e))
    }
    pub fn integer(&self) -> Result<i32, ResultFailure> {
        self.value.as_integer().map_err(|e| self.wrong(e))
    }
    /// The Name Value of a Name.
    pub fn name_value(&self) -> Result<String, ResultFailure> {
        self.value
            .get(tag::NAME_VALUE)
            .and_then(Item::as_text)
            .map_err(|e| self.wrong(e))
    }
}

/// The 1.x `Attribute` structures among `items`.
pub fn from_v1<'a>(
    items: impl Iterator<Item = &'a Item>,
) -> Result<Vec<RequestAttr>, ResultFailure> {
    let mut out = Vec::new();
    for a in items {
        let name = a
            .get(tag::ATTRIBUTE_NAME)
            .and_then(Item::as_text)
            .map_err(|e| invalid_field(e.to_string()))?;
        let index = a
            .find(tag::ATTRIBUTE_INDEX)
            .map(Item::as_integer)
            .transpose()
            .map_err(|e| invalid_field(format!("attribute {name}: {e}")))?;
        let value = a
            .get(tag::ATTRIBUTE_VALUE)
            .map_err(|e| invalid_field(format!("attribute {name}: {e}")))?
            .clone();
        out.push(RequestAttr { name, index, value });
    }
    Ok(out)
}

/// The tagged values of a 2.x `Attributes` structure.
pub fn from_v2(attributes: &Item) -> Result<Vec<RequestAttr>, ResultFailure> {
    let items = attributes
        .items()
        .map_err(|e| invalid_field(e.to_string()))?;
    Ok(items
        .iter()
        .map(|i| RequestAttr {
            name: name_of(i.tag),
            index: None,
            value: i.clone(),
        })
        .collect())
}

/// An object's attributes that have a value, each as an item tagged as 2.x tags it.
pub fn of_object(o: &ManagedObject) -> Vec<Item> {
    let mut out = vec![Item::text(tag::UNIQUE_IDENTIFIER, o.uid.clone())];
    for n in &o.names {
        out.push(Item::structure(
            tag::NAME,
            vec![
                Item::text(tag::NAME_VALUE, n.clone()),
                Item::enumeration(tag::NAME_TYPE, name_type::UNINTERPRETED_TEXT_STRING),
            ],
        ));
    }
    out.push(Item::enumeration(
        tag::OBJECT_TYPE,
        object_type::SYMMETRIC_KEY,
    ));
    out.push(Item::enumeration(tag::CRYPTOGRAPHIC_ALGORITHM, o.algorithm));
    out.push(Item::integer(tag::CRYPTOGRAPHIC_LENGTH, o.length));
    out.push(Item::integer(tag::CRYPTOGRAPHIC_USAGE_MASK, o.usage_mask));
    out.push(Item::enumeration(tag::STATE, o.state.to_enum()));
    out.push(Item::date_time(tag::INITIAL_DATE, o.initial_date));
    for (t, date) in [
        (tag::ACTIVATION_DATE, o.activation_date),
        (tag::DEACTIVATION_DATE, o.deactivation_date),
        (tag::COMPROMISE_DATE, o.compromise_date),
        (tag::DESTROY_DATE, o.destroy_date),
    ] {
        if let Some(d) = date {
            out.push(Item::date_time(t, d));
        }
    }
    out
}

/// `attrs` (from [`of_object`]) in the version's syntax: 1.x `Attribute` structures, with an
/// index on every Name as multi-valued attributes have, or one 2.x `Attributes` structure.
pub fn render(version: ProtocolVersion, attrs: Vec<Item>) -> Vec<Item> {
    if is_v2(version) {
        return vec![Item::structure(tag::ATTRIBUTES, attrs)];
    }
    let mut name_index = 0;
    attrs
        .into_iter()
        .map(|a| {
            let mut fields = vec![Item::text(tag::ATTRIBUTE_NAME, name_of(a.tag))];
            if a.tag == tag::NAME {
                fields.push(Item::integer(tag::ATTRIBUTE_INDEX, name_index));
                name_index += 1;
            }
            fields.push(Item::new(tag::ATTRIBUTE_VALUE, a.value));
            Item::structure(tag::ATTRIBUTE, fields)
        })
        .collect()
}
