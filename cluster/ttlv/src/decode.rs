//! Reading TTLV from bytes that may be hostile.
//!
//! Every length is checked against what is left of the input before anything is allocated,
//! structures may nest only [`Limits::depth_max`] deep, and a message may be at most
//! [`Limits::message_len_max`] bytes long, so neither a length field of 4 GiB nor ten
//! thousand nested structures can exhaust memory or the stack.

use std::fmt;
use std::io;

use tokio::io::{AsyncRead, AsyncReadExt};

use crate::item::{Item, Value};
use crate::tag::{self, Tag};

/// Tag (3 bytes), type (1) and length (4).
pub const HEADER_LEN: usize = 8;

/// How much a decoder accepts.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// How deep structures may nest. A KMIP message this project exchanges nests about 6 deep.
    pub depth_max: usize,
    /// The largest message, header included, in bytes.
    pub message_len_max: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            depth_max: 16,
            message_len_max: 1 << 20,
        }
    }
}

/// Why bytes are not a TTLV message, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeError {
    /// Byte offset, from the start of the message, of the item at fault.
    pub offset: usize,
    pub kind: DecodeErrorKind,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecodeErrorKind {
    /// The input ends inside an item.
    Truncated { needed: usize, left: usize },
    /// A type byte KMIP does not define.
    UnknownType(u8),
    /// A fixed-size type with another length.
    BadLength { tag: Tag, type_byte: u8, len: u32 },
    /// The message is longer than the limit.
    TooLarge { len: usize, max: usize },
    /// Structures nest deeper than the limit.
    TooDeep { max: usize },
    /// A text string is not UTF-8.
    NotUtf8 { tag: Tag },
    /// A boolean other than 0 or 1.
    BadBoolean { tag: Tag },
    /// Padding bytes that are not zero.
    BadPadding { tag: Tag },
    /// Bytes after the message.
    TrailingBytes { count: usize },
    /// The outermost item is not a structure.
    NotAStructure { tag: Tag },
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "malformed TTLV at byte {}: ", self.offset)?;
        match &self.kind {
            DecodeErrorKind::Truncated { needed, left } => {
                write!(f, "truncated: {needed} bytes needed, {left} left")
            }
            DecodeErrorKind::UnknownType(t) => write!(f, "unknown item type 0x{t:02X}"),
            DecodeErrorKind::BadLength {
                tag,
                type_byte,
                len,
            } => write!(
                f,
                "{} is a {} of length {len}, which that type cannot have",
                tag::name(*tag),
                Value::type_name(*type_byte)
            ),
            DecodeErrorKind::TooLarge { len, max } => {
                write!(f, "message of {len} bytes is over the limit of {max}")
            }
            DecodeErrorKind::TooDeep { max } => {
                write!(f, "structures nest deeper than {max} levels")
            }
            DecodeErrorKind::NotUtf8 { tag } => {
                write!(f, "{} is not valid UTF-8", tag::name(*tag))
            }
            DecodeErrorKind::BadBoolean { tag } => {
                write!(f, "{} is a boolean other than 0 or 1", tag::name(*tag))
            }
            DecodeErrorKind::BadPadding { tag } => {
                write!(f, "{} has non-zero padding", tag::name(*tag))
            }
            DecodeErrorKind::TrailingBytes { count } => {
                write!(f, "{count} bytes follow the message")
            }
            DecodeErrorKind::NotAStructure { tag } => {
                write!(f, "{} is not a structure", tag::name(*tag))
            }
        }
    }
}

impl std::error::Error for DecodeError {}

/// Decodes one message: a structure that fills `bytes` exactly.
pub fn decode(bytes: &[u8], limits: Limits) -> Result<Item, DecodeError> {
    if bytes.len() > limits.message_len_max {
        return Err(DecodeError {
            offset: 0,
            kind: DecodeErrorKind::TooLarge {
                len: bytes.len(),
                max: limits.message_len_max,
            },
        });
    }
    let mut reader = Reader {
        bytes,
        at: 0,
        limits,
    };
    let item = reader.item(0)?;
    if !matches!(item.value, Value::Structure(_)) {
        return Err(DecodeError {
            offset: 0,
            kind: DecodeErrorKind::NotAStructure { tag: item.tag },
        });
    }
    if reader.at != bytes.len() {
        return Err(DecodeError {
            offset: reader.at,
            kind: DecodeErrorKind::TrailingBytes {
                count: bytes.len() - reader.at,
            },
        });
    }
    Ok(item)
}

/// The whole length of the message whose first 8 bytes are `header`, checked against the
/// limit before anything else is read.
pub fn frame_len(header: &[u8; HEADER_LEN], limits: Limits) -> Result<usize, DecodeError> {
    let tag = u32::from_be_bytes([0, header[0], header[1], header[2]]);
    if header[3] != 0x01 {
        return Err(DecodeError {
            offset: 0,
            kind: DecodeErrorKind::NotAStructure { tag },
        });
    }
    let len = u32::from_be_bytes([header[4], header[5], header[6], header[7]]) as usize;
    let total = HEADER_LEN + len;
    if total > limits.message_len_max {
        return Err(DecodeError {
            offset: 0,
            kind: DecodeErrorKind::TooLarge {
                len: total,
                max: limits.message_len_max,
            },
        });
    }
    Ok(total)
}

/// Reads one whole message from a stream: the header, then exactly the length it gives.
/// `Ok(None)` when the stream ends cleanly before a message starts.
pub async fn read_frame<R: AsyncRead + Unpin>(
    reader: &mut R,
    limits: Limits,
) -> io::Result<Option<Vec<u8>>> {
    let mut header = [0u8; HEADER_LEN];
    let mut got = 0;
    while got < HEADER_LEN {
        let n = reader.read(&mut header[got..]).await?;
        if n == 0 {
            return if got == 0 {
                Ok(None)
            } else {
                Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!("the stream ended {got} bytes into a KMIP message header"),
                ))
            };
        }
        got += n;
    }
    let total =
        frame_len(&header, limits).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
    let mut message = vec![0u8; total];
    message[..HEADER_LEN].copy_from_slice(&header);
    reader.read_exact(&mut message[HEADER_LEN..]).await?;
    Ok(Some(message))
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
    limits: Limits,
}

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8], DecodeError> {
        let left = self.bytes.len() - self.at;
        if n > left {
            return Err(DecodeError {
                offset: self.at,
                kind: DecodeErrorKind::Truncated { needed: n, left },
            });
        }
        let slice = &self.bytes[self.at..self.at + n];
        self.at += n;
        Ok(slice)
    }

    fn item(&mut self, depth: usize) -> Result<Item, DecodeError> {
        let offset = self.at;
        let fail = |kind| Err(DecodeError { offset, kind });
        let header = self.take(HEADER_LEN)?;
        let tag = u32::from_be_bytes([0, header[0], header[1], header[2]]);
        let type_byte = header[3];
        let len = u32::from_be_bytes([header[4], header[5], header[6], header[7]]);
        let fixed = match type_byte {
            0x02 | 0x05 | 0x0A => Some(4),
            0x03 | 0x06 | 0x09 | 0x0B => Some(8),
            0x01 | 0x04 | 0x07 | 0x08 => None,
            other => return fail(DecodeErrorKind::UnknownType(other)),
        };
        let bad_length = (fixed.is_some() && fixed != Some(len))
            || ((type_byte == 0x01 || type_byte == 0x04) && len % 8 != 0);
        if bad_length {
            return fail(DecodeErrorKind::BadLength {
                tag,
                type_byte,
                len,
            });
        }
        let len = len as usize;
        let padded = len.div_ceil(8) * 8;
        // Checked before the value is read, so a huge length costs nothing.
        let left = self.bytes.len() - self.at;
        if padded > left {
            return fail(DecodeErrorKind::Truncated {
                needed: padded,
                left,
            });
        }
        let value = if type_byte == 0x01 {
            if depth >= self.limits.depth_max {
                return fail(DecodeErrorKind::TooDeep {
                    max: self.limits.depth_max,
                });
            }
            let end = self.at + len;
            let mut items = Vec::new();
            while self.at < end {
                let child = self.item(depth + 1)?;
                items.push(child);
            }
            if self.at != end {
                return fail(DecodeErrorKind::BadLength {
                    tag,
                    type_byte,
                    len: len as u32,
                });
            }
            Value::Structure(items)
        } else {
            let raw = self.take(padded)?;
            let (body, pad) = raw.split_at(len);
            if pad.iter().any(|b| *b != 0) {
                return fail(DecodeErrorKind::BadPadding { tag });
            }
            let be4 = |b: &[u8]| [b[0], b[1], b[2], b[3]];
            let be8 = |b: &[u8]| [b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]];
            match type_byte {
                0x02 => Value::Integer(i32::from_be_bytes(be4(body))),
                0x03 => Value::LongInteger(i64::from_be_bytes(be8(body))),
                0x04 => Value::BigInteger(body.to_vec()),
                0x05 => Value::Enumeration(u32::from_be_bytes(be4(body))),
                0x06 => match u64::from_be_bytes(be8(body)) {
                    0 => Value::Boolean(false),
                    1 => Value::Boolean(true),
                    _ => return fail(DecodeErrorKind::BadBoolean { tag }),
                },
                0x07 => match std::str::from_utf8(body) {
                    Ok(s) => Value::TextString(s.to_string()),
                    Err(_) => return fail(DecodeErrorKind::NotUtf8 { tag }),
                },
                0x08 => Value::ByteString(body.to_vec()),
                0x09 => Value::DateTime(i64::from_be_bytes(be8(body))),
                0x0A => Value::Interval(u32::from_be_bytes(be4(body))),
                _ => Value::DateTimeExtended(i64::from_be_bytes(be8(body))),
            }
        };
        Ok(Item { tag, value })
    }
}
