//! One TTLV item — a tag and a typed value, where a structure holds more items — with its
//! encoding and the accessors both sides read messages with.

use std::fmt;

use crate::tag::{self, Tag};

/// A TTLV value. The variants are KMIP's item types, in the order of their type bytes.
#[derive(Clone, PartialEq, Eq)]
pub enum Value {
    Structure(Vec<Item>),
    Integer(i32),
    LongInteger(i64),
    /// Two's complement, big-endian, a multiple of 8 bytes long.
    BigInteger(Vec<u8>),
    Enumeration(u32),
    Boolean(bool),
    TextString(String),
    ByteString(Vec<u8>),
    /// Seconds since the Unix epoch.
    DateTime(i64),
    /// Seconds.
    Interval(u32),
    /// Microseconds since the Unix epoch (KMIP 2.0).
    DateTimeExtended(i64),
}

impl Value {
    /// The type byte on the wire.
    pub fn type_byte(&self) -> u8 {
        match self {
            Value::Structure(_) => 0x01,
            Value::Integer(_) => 0x02,
            Value::LongInteger(_) => 0x03,
            Value::BigInteger(_) => 0x04,
            Value::Enumeration(_) => 0x05,
            Value::Boolean(_) => 0x06,
            Value::TextString(_) => 0x07,
            Value::ByteString(_) => 0x08,
            Value::DateTime(_) => 0x09,
            Value::Interval(_) => 0x0A,
            Value::DateTimeExtended(_) => 0x0B,
        }
    }

    /// The name of a type byte, for messages.
    pub fn type_name(byte: u8) -> &'static str {
        match byte {
            0x01 => "Structure",
            0x02 => "Integer",
            0x03 => "Long Integer",
            0x04 => "Big Integer",
            0x05 => "Enumeration",
            0x06 => "Boolean",
            0x07 => "Text String",
            0x08 => "Byte String",
            0x09 => "Date-Time",
            0x0A => "Interval",
            0x0B => "Date-Time Extended",
            _ => "unknown type",
        }
    }
}

/// A tagged value.
#[derive(Clone, PartialEq, Eq)]
pub struct Item {
    pub tag: Tag,
    pub value: Value,
}

/// Byte strings are shown by length only: they carry key material, ciphertext and IVs, and
/// a message that prints an item must never print a key.
impl fmt::Debug for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Structure(items) => f.debug_list().entries(items).finish(),
            Value::Integer(v) => write!(f, "{v}"),
            Value::LongInteger(v) => write!(f, "{v}L"),
            Value::BigInteger(b) => write!(f, "<big integer, {} bytes>", b.len()),
            Value::Enumeration(v) => write!(f, "enum 0x{v:08X}"),
            Value::Boolean(v) => write!(f, "{v}"),
            Value::TextString(s) => write!(f, "{s:?}"),
            Value::ByteString(b) => write!(f, "<{} bytes>", b.len()),
            Value::DateTime(v) => write!(f, "date-time {v}"),
            Value::Interval(v) => write!(f, "interval {v}s"),
            Value::DateTimeExtended(v) => write!(f, "date-time {v}us"),
        }
    }
}

impl fmt::Debug for Item {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {:?}", tag::name(self.tag), self.value)
    }
}

/// A message was well-formed TTLV but not the shape the reader expected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ItemError {
    /// A required field is absent.
    Missing { field: String, within: String },
    /// A field has another type than the one KMIP gives it.
    WrongType {
        field: String,
        expected: &'static str,
        found: &'static str,
    },
    /// A field's value is not one this reader accepts.
    Invalid { field: String, why: String },
}

impl fmt::Display for ItemError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ItemError::Missing { field, within } => write!(f, "{within} has no {field}"),
            ItemError::WrongType {
                field,
                expected,
                found,
            } => {
                write!(f, "{field} is a {found}, expected a {expected}")
            }
            ItemError::Invalid { field, why } => write!(f, "{field}: {why}"),
        }
    }
}

impl std::error::Error for ItemError {}

macro_rules! accessor {
    ($fn:ident, $variant:ident, $ty:ty, $expected:expr) => {
        pub fn $fn(&self) -> Result<$ty, ItemError> {
            match &self.value {
                Value::$variant(v) => Ok(v.clone()),
                other => Err(ItemError::WrongType {
                    field: tag::name(self.tag),
                    expected: $expected,
                    found: Value::type_name(other.type_byte()),
                }),
            }
        }
    };
}

impl Item {
    pub fn new(tag: Tag, value: Value) -> Item {
        Item { tag, value }
    }
    pub fn structure(tag: Tag, items: Vec<Item>) -> Item {
        Item::new(tag, Value::Structure(items))
    }
    pub fn integer(tag: Tag, v: i32) -> Item {
        Item::new(tag, Value::Integer(v))
    }
    pub fn enumeration(tag: Tag, v: u32) -> Item {
        Item::new(tag, Value::Enumeration(v))
    }
    pub fn text(tag: Tag, v: impl Into<String>) -> Item {
        Item::new(tag, Value::TextString(v.into()))
    }
    pub fn bytes(tag: Tag, v: impl Into<Vec<u8>>) -> Item {
        Item::new(tag, Value::ByteString(v.into()))
    }
    pub fn boolean(tag: Tag, v: bool) -> Item {
        Item::new(tag, Value::Boolean(v))
    }
    pub fn date_time(tag: Tag, v: i64) -> Item {
        Item::new(tag, Value::DateTime(v))
    }

    accessor!(as_integer, Integer, i32, "Integer");
    accessor!(as_long, LongInteger, i64, "Long Integer");
    accessor!(as_enum, Enumeration, u32, "Enumeration");
    accessor!(as_bool, Boolean, bool, "Boolean");
    accessor!(as_text, TextString, String, "Text String");
    accessor!(as_bytes, ByteString, Vec<u8>, "Byte String");
    accessor!(as_date_time, DateTime, i64, "Date-Time");

    /// The items of a structure.
    pub fn items(&self) -> Result<&[Item], ItemError> {
        match &self.value {
            Value::Structure(items) => Ok(items),
            other => Err(ItemError::WrongType {
                field: tag::name(self.tag),
                expected: "Structure",
                found: Value::type_name(other.type_byte()),
            }),
        }
    }

    /// The first child with `tag`, if this is a structure that has one.
    pub fn find(&self, tag: Tag) -> Option<&Item> {
        match &self.value {
            Value::Structure(items) => items.iter().find(|i| i.tag == tag),
            _ => None,
        }
    }

    /// The first child with `tag`, or an error naming it and this structure.
    pub fn get(&self, tag: Tag) -> Result<&Item, ItemError> {
        self.items()?
            .iter()
            .find(|i| i.tag == tag)
            .ok_or_else(|| ItemError::Missing {
                field: tag::name(tag),
                within: tag::name(self.tag),
            })
    }

    /// Every child with `tag`, in order.
    pub fn all(&self, tag: Tag) -> impl Iterator<Item = &Item> {
        let items: &[Item] = match &self.value {
            Value::Structure(items) => items,
            _ => &[],
        };
        items.iter().filter(move |i| i.tag == tag)
    }

    /// The encoded bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(64);
        self.encode_into(&mut out);
        out
    }

    /// Appends the encoded bytes to `out`. A caller that sends key material encodes into a
    /// buffer it sized (and wipes) itself, so no grown-out-of copy is left behind.
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.tag.to_be_bytes()[1..]);
        out.push(self.value.type_byte());
        let len_at = out.len();
        out.extend_from_slice(&[0; 4]);
        let start = out.len();
        match &self.value {
            Value::Structure(items) => items.iter().for_each(|i| i.encode_into(out)),
            Value::Integer(v) => out.extend_from_slice(&v.to_be_bytes()),
            Value::LongInteger(v) | Value::DateTime(v) | Value::DateTimeExtended(v) => {
                out.extend_from_slice(&v.to_be_bytes())
            }
            Value::BigInteger(b) | Value::ByteString(b) => out.extend_from_slice(b),
            Value::Enumeration(v) | Value::Interval(v) => out.extend_from_slice(&v.to_be_bytes()),
            Value::Boolean(v) => out.extend_from_slice(&u64::from(*v).to_be_bytes()),
            Value::TextString(s) => out.extend_from_slice(s.as_bytes()),
        }
        let len = (out.len() - start) as u32;
        out[len_at..len_at + 4].copy_from_slice(&len.to_be_bytes());
        // Every item ends on an 8-byte boundary; the padding is not counted in the length.
        out.resize(start + (len as usize).div_ceil(8) * 8, 0);
    }
}
