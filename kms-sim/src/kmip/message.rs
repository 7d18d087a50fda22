//! One request message in, one response message out: decoding, the protocol version and
//! header checks, the batch with its error continuation option, and the envelope of the
//! answer. Operations themselves are in `ops`.

use ttlv::enums::{batch_error_continuation_option as continuation, operation, result_reason};
use ttlv::tag;
use ttlv::{
    Item, Limits, ProtocolVersion, RequestMessage, ResponseItem, ResponseMessage, ResultFailure,
};

use super::ops::{self, Ctx};
use super::state::State;

/// The versions this server speaks, highest first (Discover Versions answers in this order).
pub const SUPPORTED: [ProtocolVersion; 5] = [
    ProtocolVersion::V2_1,
    ProtocolVersion::V2_0,
    ProtocolVersion::V1_4,
    ProtocolVersion::V1_3,
    ProtocolVersion::V1_2,
];

/// The version of an answer to a request whose own version could not be read: PyKMIP's.
const FALLBACK_VERSION: ProtocolVersion = ProtocolVersion::V1_0;

/// The bytes of a response, and whether the connection must close after it (the request
/// was not TTLV, so where the next message starts is unknown).
pub struct Answer {
    pub bytes: Vec<u8>,
    pub close: bool,
}

pub fn answer(st: &mut State, bytes: &[u8], owner: &str) -> Answer {
    st.messages += 1;
    let item = match ttlv::decode(bytes, Limits::default()) {
        Ok(item) => item,
        Err(e) => {
            let version = salvage_version(bytes).unwrap_or(FALLBACK_VERSION);
            let failure = ResultFailure::new(
                result_reason::INVALID_MESSAGE,
                format!("The request is not a KMIP message: {e}"),
            );
            return Answer {
                bytes: message_error(st, version, failure),
                close: true,
            };
        }
    };
    let bytes = match request(st, &item, owner) {
        Ok(response) => response.encode(),
        Err((version, failure)) => message_error(st, version, failure),
    };
    Answer {
        bytes,
        close: false,
    }
}

/// A whole-message failure: one batch item with no operation, as PyKMIP answers.
fn message_error(st: &State, version: ProtocolVersion, failure: ResultFailure) -> Vec<u8> {
    ResponseMessage {
        version,
        time_stamp: st.now(),
        batch: vec![ResponseItem {
            operation: None,
            id: None,
            result: Err(failure),
        }],
    }
    .encode()
}

type MessageFailure = (ProtocolVersion, ResultFailure);

fn invalid_message(version: ProtocolVersion, message: String) -> MessageFailure {
    (
        version,
        ResultFailure::new(result_reason::INVALID_MESSAGE, message),
    )
}

fn request(st: &mut State, item: &Item, owner: &str) -> Result<ResponseMessage, MessageFailure> {
    let header_version = item
        .find(tag::REQUEST_HEADER)
        .and_then(|h| h.find(tag::PROTOCOL_VERSION))
        .and_then(|v| ProtocolVersion::from_item(v).ok());
    let version = header_version.unwrap_or(FALLBACK_VERSION);
    let request = RequestMessage::from_item(item)
        .map_err(|e| invalid_message(version, format!("Invalid request message: {e}")))?;
    let version = request.version;
    if !SUPPORTED.contains(&version) {
        let ours: Vec<String> = SUPPORTED.iter().rev().map(|v| v.to_string()).collect();
        return Err(invalid_message(
            version,
            format!(
                "KMIP {version} is not supported by the server (it speaks {})",
                ours.join(", ")
            ),
        ));
    }
    // Both are in the header, which RequestMessage::from_item has already found.
    let header = item
        .get(tag::REQUEST_HEADER)
        .map_err(|e| invalid_message(version, e.to_string()))?;
    if let Some(a) = header.find(tag::ASYNCHRONOUS_INDICATOR) {
        let on = a
            .as_bool()
            .map_err(|e| invalid_message(version, e.to_string()))?;
        if on {
            return Err(invalid_message(
                version,
                "Asynchronous operations are not supported".into(),
            ));
        }
    }
    let option = match header.find(tag::BATCH_ERROR_CONTINUATION_OPTION) {
        None => continuation::STOP,
        Some(o) => o
            .as_enum()
            .map_err(|e| invalid_message(version, e.to_string()))?,
    };
    match option {
        continuation::STOP | continuation::CONTINUE => {}
        continuation::UNDO => {
            return Err(invalid_message(
                version,
                "The Undo option for batch handling is not supported".into(),
            ))
        }
        other => {
            return Err(invalid_message(
                version,
                format!(
                    "Batch Error Continuation Option {} is not Continue, Stop or Undo",
                    continuation::name(other)
                ),
            ))
        }
    }
    let count = request.batch.len();
    if count > 1 {
        if let Some(at) = request.batch.iter().position(|b| b.id.is_none()) {
            return Err(invalid_message(
                version,
                format!(
                    "Batch item {} of {count} has no Unique Batch Item ID, which a batch of \
                     several items requires",
                    at + 1
                ),
            ));
        }
    }

    let mut ctx = Ctx {
        st,
        owner,
        version,
        placeholder: None,
    };
    let mut batch = Vec::with_capacity(count);
    for b in &request.batch {
        *ctx.st
            .requests
            .entry(operation::name(b.operation))
            .or_default() += 1;
        let result = match ctx.st.effective_fault().failure(b.operation) {
            Some(failure) => {
                ctx.st.fault_hits += 1;
                if ctx.st.fault == super::faults::Fault::None {
                    // The failure stands for the service-wide switch's HTTP fault.
                    if let Some(chaos) = &ctx.st.chaos {
                        chaos.met_by_protocol();
                    }
                }
                Err(failure)
            }
            None => ops::dispatch(&mut ctx, b.operation, &b.payload),
        };
        let failed = result.is_err();
        // Operations, UIDs and reasons only: payloads carry keys and plaintext.
        tracing::debug!(
            owner,
            operation = %operation::name(b.operation),
            failed,
            "kmip batch item"
        );
        batch.push(ResponseItem {
            operation: Some(b.operation),
            id: b.id.clone(),
            result,
        });
        if failed && option == continuation::STOP {
            break;
        }
    }
    Ok(ResponseMessage {
        version,
        time_stamp: ctx.st.now(),
        batch,
    })
}

/// The protocol version of a request that is not valid TTLV as a whole, if its Request
/// Header (the message's first item) still decodes on its own.
fn salvage_version(bytes: &[u8]) -> Option<ProtocolVersion> {
    let outer = bytes.get(..ttlv::HEADER_LEN)?;
    if outer[..3] != tag::REQUEST_MESSAGE.to_be_bytes()[1..] {
        return None;
    }
    let inner = bytes.get(ttlv::HEADER_LEN..2 * ttlv::HEADER_LEN)?;
    let len = u32::from_be_bytes([inner[4], inner[5], inner[6], inner[7]]) as usize;
    let end = (2 * ttlv::HEADER_LEN).checked_add(len)?;
    let header = ttlv::decode(bytes.get(ttlv::HEADER_LEN..end)?, Limits::default()).ok()?;
    if header.tag != tag::REQUEST_HEADER {
        return None;
    }
    ProtocolVersion::from_item(header.find(tag::PROTOCOL_VERSION)?).ok()
}

/// The answer to a frame whose header already shows it is no request (not a structure, or
/// longer than the limit): Invalid Message in the fallback version, since no request header
/// was read.
pub fn frame_error(st: &mut State, why: &str) -> Vec<u8> {
    st.messages += 1;
    let failure = ResultFailure::new(
        result_reason::INVALID_MESSAGE,
        format!("The request is not a KMIP message: {why}"),
    );
    message_error(st, FALLBACK_VERSION, failure)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ttlv::BatchItem;

    fn query(version: ProtocolVersion) -> Vec<u8> {
        RequestMessage {
            version,
            batch: vec![BatchItem::new(operation::QUERY, vec![])],
        }
        .encode()
    }

    #[test]
    fn the_version_of_a_broken_request_is_read_from_its_header() {
        let mut bytes = query(ProtocolVersion::V1_3);
        assert_eq!(salvage_version(&bytes), Some(ProtocolVersion::V1_3));
        // Break the batch item, past the header: still readable.
        let last = bytes.len() - 1;
        bytes[last] = 0xFF;
        assert!(ttlv::decode(&bytes, Limits::default()).is_err());
        assert_eq!(salvage_version(&bytes), Some(ProtocolVersion::V1_3));
        // Cut inside the header: not.
        assert_eq!(salvage_version(&bytes[..20]), None);
        assert_eq!(salvage_version(b"garbage"), None);
    }

    #[test]
    fn an_undecodable_request_closes_the_connection_after_its_answer() {
        let mut st = State::new(1, super::super::fixed_clock(5));
        let good = answer(&mut st, &query(ProtocolVersion::V2_0), "a");
        assert!(!good.close);
        let whole = query(ProtocolVersion::V2_0);
        // Cut in the batch item, past the header.
        let bad = answer(&mut st, &whole[..whole.len() - 8], "a");
        assert!(bad.close);
        let resp =
            ResponseMessage::from_item(&ttlv::decode(&bad.bytes, Limits::default()).unwrap())
                .unwrap();
        assert_eq!(resp.version, ProtocolVersion::V2_0);
        let failure = resp.batch[0].result.clone().unwrap_err();
        assert_eq!(failure.reason, Some(result_reason::INVALID_MESSAGE));
        assert_eq!(st.messages, 2);
    }
}
