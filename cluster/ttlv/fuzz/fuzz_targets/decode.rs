//! Any bytes: the decoder answers a message or an error, never panics, and what it
//! accepts encodes back to the same bytes; a message it accepts reads as a request or a
//! response, or fails with an error.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ttlv::{decode, Limits, RequestMessage, ResponseMessage};

fuzz_target!(|bytes: &[u8]| {
    if let Ok(item) = decode(bytes, Limits::default()) {
        assert_eq!(item.encode(), bytes);
        let _ = RequestMessage::from_item(&item);
        let _ = ResponseMessage::from_item(&item);
    }
});
