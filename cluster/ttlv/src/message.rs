//! The envelope of every KMIP exchange: a request message of batch items, each naming an
//! operation with its payload, and a response message answering each item with a result.

use std::fmt;

use crate::enums::{result_reason, result_status};
use crate::item::{Item, ItemError};
use crate::tag;

/// A KMIP protocol version. Ordered, so the highest common version is a `max`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ProtocolVersion {
    pub major: i32,
    pub minor: i32,
}

impl ProtocolVersion {
    pub const V1_0: ProtocolVersion = ProtocolVersion::new(1, 0);
    pub const V1_1: ProtocolVersion = ProtocolVersion::new(1, 1);
    pub const V1_2: ProtocolVersion = ProtocolVersion::new(1, 2);
    pub const V1_3: ProtocolVersion = ProtocolVersion::new(1, 3);
    pub const V1_4: ProtocolVersion = ProtocolVersion::new(1, 4);
    pub const V2_0: ProtocolVersion = ProtocolVersion::new(2, 0);
    pub const V2_1: ProtocolVersion = ProtocolVersion::new(2, 1);

    pub const fn new(major: i32, minor: i32) -> Self {
        ProtocolVersion { major, minor }
    }

    pub fn to_item(self) -> Item {
        Item::structure(
            tag::PROTOCOL_VERSION,
            vec![
                Item::integer(tag::PROTOCOL_VERSION_MAJOR, self.major),
                Item::integer(tag::PROTOCOL_VERSION_MINOR, self.minor),
            ],
        )
    }

    pub fn from_item(item: &Item) -> Result<Self, ItemError> {
        Ok(ProtocolVersion {
            major: item.get(tag::PROTOCOL_VERSION_MAJOR)?.as_integer()?,
            minor: item.get(tag::PROTOCOL_VERSION_MINOR)?.as_integer()?,
        })
    }
}

impl fmt::Display for ProtocolVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)
    }
}

/// One operation of a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchItem {
    pub operation: u32,
    /// Required by KMIP when a request carries more than one item.
    pub id: Option<Vec<u8>>,
    /// The Request Payload structure.
    pub payload: Item,
}

impl BatchItem {
    pub fn new(operation: u32, payload: Vec<Item>) -> Self {
        BatchItem {
            operation,
            id: None,
            payload: Item::structure(tag::REQUEST_PAYLOAD, payload),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestMessage {
    pub version: ProtocolVersion,
    pub batch: Vec<BatchItem>,
}

impl RequestMessage {
    pub fn to_item(&self) -> Item {
        let header = Item::structure(
            tag::REQUEST_HEADER,
            vec![
                self.version.to_item(),
                Item::integer(tag::BATCH_COUNT, self.batch.len() as i32),
            ],
        );
        let mut items = vec![header];
        for b in &self.batch {
            let mut fields = vec![Item::enumeration(tag::OPERATION, b.operation)];
            if let Some(id) = &b.id {
                fields.push(Item::bytes(tag::UNIQUE_BATCH_ITEM_ID, id.clone()));
            }
            fields.push(b.payload.clone());
            items.push(Item::structure(tag::BATCH_ITEM, fields));
        }
        Item::structure(tag::REQUEST_MESSAGE, items)
    }

    pub fn encode(&self) -> Vec<u8> {
        self.to_item().encode()
    }

    /// Reads a request. The batch count must match the items present.
    pub fn from_item(item: &Item) -> Result<Self, ItemError> {
        if item.tag != tag::REQUEST_MESSAGE {
            return Err(ItemError::Invalid {
                field: tag::name(item.tag),
                why: "a request must be a Request Message".into(),
            });
        }
        let header = item.get(tag::REQUEST_HEADER)?;
        let version = ProtocolVersion::from_item(header.get(tag::PROTOCOL_VERSION)?)?;
        let count = header.get(tag::BATCH_COUNT)?.as_integer()?;
        let mut batch = Vec::new();
        for b in item.all(tag::BATCH_ITEM) {
            batch.push(BatchItem {
                operation: b.get(tag::OPERATION)?.as_enum()?,
                id: b
                    .find(tag::UNIQUE_BATCH_ITEM_ID)
                    .map(|i| i.as_bytes())
                    .transpose()?,
                payload: match b.find(tag::REQUEST_PAYLOAD) {
                    Some(p) => {
                        p.items()?;
                        p.clone()
                    }
                    None => Item::structure(tag::REQUEST_PAYLOAD, Vec::new()),
                },
            });
        }
        if count < 1 || count as usize != batch.len() {
            return Err(ItemError::Invalid {
                field: tag::name(tag::BATCH_COUNT),
                why: format!(
                    "says {count}, but the message holds {} batch items",
                    batch.len()
                ),
            });
        }
        Ok(RequestMessage { version, batch })
    }
}

/// Why an operation failed, as the server said it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResultFailure {
    pub status: u32,
    pub reason: Option<u32>,
    pub message: Option<String>,
}

impl ResultFailure {
    pub fn new(reason: u32, message: impl Into<String>) -> Self {
        ResultFailure {
            status: result_status::OPERATION_FAILED,
            reason: Some(reason),
            message: Some(message.into()),
        }
    }
}

impl fmt::Display for ResultFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", result_status::name(self.status))?;
        if let Some(r) = self.reason {
            write!(f, " ({})", result_reason::name(r))?;
        }
        if let Some(m) = &self.message {
            write!(f, ": {m}")?;
        }
        Ok(())
    }
}

/// The answer to one batch item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResponseItem {
    pub operation: Option<u32>,
    pub id: Option<Vec<u8>>,
    /// The Response Payload on success (some operations have none).
    pub result: Result<Option<Item>, ResultFailure>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResponseMessage {
    pub version: ProtocolVersion,
    /// Seconds since the Unix epoch, by the server's clock.
    pub time_stamp: i64,
    pub batch: Vec<ResponseItem>,
}

impl ResponseMessage {
    pub fn to_item(&self) -> Item {
        let header = Item::structure(
            tag::RESPONSE_HEADER,
            vec![
                self.version.to_item(),
                Item::date_time(tag::TIME_STAMP, self.time_stamp),
                Item::integer(tag::BATCH_COUNT, self.batch.len() as i32),
            ],
        );
        let mut items = vec![header];
        for b in &self.batch {
            let mut fields = Vec::new();
            if let Some(op) = b.operation {
                fields.push(Item::enumeration(tag::OPERATION, op));
            }
            if let Some(id) = &b.id {
                fields.push(Item::bytes(tag::UNIQUE_BATCH_ITEM_ID, id.clone()));
            }
            match &b.result {
                Ok(payload) => {
                    fields.push(Item::enumeration(
                        tag::RESULT_STATUS,
                        result_status::SUCCESS,
                    ));
                    if let Some(p) = payload {
                        fields.push(p.clone());
                    }
                }
                Err(f) => {
                    fields.push(Item::enumeration(tag::RESULT_STATUS, f.status));
                    if let Some(r) = f.reason {
                        fields.push(Item::enumeration(tag::RESULT_REASON, r));
                    }
                    if let Some(m) = &f.message {
                        fields.push(Item::text(tag::RESULT_MESSAGE, m.clone()));
                    }
                }
            }
            items.push(Item::structure(tag::BATCH_ITEM, fields));
        }
        Item::structure(tag::RESPONSE_MESSAGE, items)
    }

    pub fn encode(&self) -> Vec<u8> {
        self.to_item().encode()
    }

    pub fn from_item(item: &Item) -> Result<Self, ItemError> {
        if item.tag != tag::RESPONSE_MESSAGE {
            return Err(ItemError::Invalid {
                field: tag::name(item.tag),
                why: "an answer must be a Response Message".into(),
            });
        }
        let header = item.get(tag::RESPONSE_HEADER)?;
        let version = ProtocolVersion::from_item(header.get(tag::PROTOCOL_VERSION)?)?;
        let time_stamp = header.get(tag::TIME_STAMP)?.as_date_time()?;
        let count = header.get(tag::BATCH_COUNT)?.as_integer()?;
        let mut batch = Vec::new();
        for b in item.all(tag::BATCH_ITEM) {
            let status = b.get(tag::RESULT_STATUS)?.as_enum()?;
            let result = if status == result_status::SUCCESS {
                Ok(b.find(tag::RESPONSE_PAYLOAD).cloned())
            } else {
                Err(ResultFailure {
                    status,
                    reason: b
                        .find(tag::RESULT_REASON)
                        .map(|i| i.as_enum())
                        .transpose()?,
                    message: b
                        .find(tag::RESULT_MESSAGE)
                        .map(|i| i.as_text())
                        .transpose()?,
                })
            };
            batch.push(ResponseItem {
                operation: b.find(tag::OPERATION).map(|i| i.as_enum()).transpose()?,
                id: b
                    .find(tag::UNIQUE_BATCH_ITEM_ID)
                    .map(|i| i.as_bytes())
                    .transpose()?,
                result,
            });
        }
        if count as usize != batch.len() {
            return Err(ItemError::Invalid {
                field: tag::name(tag::BATCH_COUNT),
                why: format!(
                    "says {count}, but the message holds {} batch items",
                    batch.len()
                ),
            });
        }
        Ok(ResponseMessage {
            version,
            time_stamp,
            batch,
        })
    }
}

/// A KMIP 1.x Attribute: its name and value (inside a Template-Attribute, or naming what
/// Locate looks for).
pub fn attribute(name: &str, value: crate::Value) -> Item {
    Item::structure(
        tag::ATTRIBUTE,
        vec![
            Item::text(tag::ATTRIBUTE_NAME, name),
            Item::new(tag::ATTRIBUTE_VALUE, value),
        ],
    )
}

/// The 1.x Name attribute: `name` as an uninterpreted text string.
pub fn name_attribute(name: &str) -> Item {
    attribute(
        "Name",
        crate::Value::Structure(vec![
            Item::text(tag::NAME_VALUE, name),
            Item::enumeration(
                tag::NAME_TYPE,
                crate::enums::name_type::UNINTERPRETED_TEXT_STRING,
            ),
        ]),
    )
}
