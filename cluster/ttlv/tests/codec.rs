//! The codec against KMIP's own encoding examples, round trips, and hostile bytes.

use proptest::prelude::*;
use ttlv::{decode, frame_len, tag, DecodeError, Item, Limits, RequestMessage, Value};

fn hex(s: &str) -> Vec<u8> {
    let s: String = s
        .chars()
        .filter(|c| !c.is_whitespace() && *c != '|')
        .collect();
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

/// Wraps one item in a structure, since a message is always a structure.
fn wrapped(inner: &str) -> Vec<u8> {
    let inner = hex(inner);
    let mut out = hex("420078 01");
    out.extend_from_slice(&(inner.len() as u32).to_be_bytes());
    out.extend_from_slice(&inner);
    out
}

fn only_child(bytes: &[u8]) -> Item {
    let msg = decode(bytes, Limits::default()).expect("decodes");
    msg.items().unwrap()[0].clone()
}

// The encodings of KMIP 1.2's section 9.1.2 examples.
#[test]
fn kmip_examples_decode_and_encode_back() {
    let cases = [
        ("420020 02 00000004 00000008 00000000", Value::Integer(8)),
        (
            "420020 03 00000008 01B69B4BA5749200",
            Value::LongInteger(123_456_789_000_000_000),
        ),
        (
            "420020 05 00000004 000000FF 00000000",
            Value::Enumeration(255),
        ),
        ("420020 06 00000008 0000000000000001", Value::Boolean(true)),
        (
            "420020 07 0000000B 48656C6C6F20576F726C640000000000",
            Value::TextString("Hello World".into()),
        ),
        (
            "420020 08 00000003 01020300000000 00",
            Value::ByteString(vec![1, 2, 3]),
        ),
        (
            "420020 09 00000008 0000000047DA67F8",
            Value::DateTime(1_205_495_800),
        ),
        (
            "420020 0A 00000004 000D2F00 00000000",
            Value::Interval(864_000),
        ),
    ];
    for (bytes, value) in cases {
        let bytes = wrapped(bytes);
        let item = only_child(&bytes);
        assert_eq!(item.value, value, "decoding {bytes:02X?}");
        let again = Item::structure(tag::REQUEST_MESSAGE, vec![item]).encode();
        assert_eq!(again, bytes, "encoding {value:?}");
    }
}

#[test]
fn a_structure_of_an_enumeration_and_an_integer() {
    // KMIP 1.2 section 9.1.2: a structure holding an enumeration 254 and an integer 255.
    let bytes = hex(
        "420020 01 00000020 | 420004 05 00000004 000000FE 00000000 | 420005 02 00000004 000000FF 00000000",
    );
    let item = decode(&bytes, Limits::default()).unwrap();
    assert_eq!(item.items().unwrap().len(), 2);
    assert_eq!(item.get(0x42_0004).unwrap().as_enum(), Ok(254));
    assert_eq!(item.get(0x42_0005).unwrap().as_integer(), Ok(255));
    assert_eq!(item.encode(), bytes);
}

fn kind(bytes: &[u8]) -> String {
    format!("{:?}", decode(bytes, Limits::default()).unwrap_err().kind)
}

#[test]
fn a_length_of_four_gibibytes_is_refused_before_anything_is_read() {
    let bytes = wrapped("420020 08 FFFFFFFF 0000000000000000");
    assert!(kind(&bytes).starts_with("Truncated"), "{}", kind(&bytes));
    let header = hex("420078 01 FFFFFFF8");
    let err = frame_len(&header.try_into().unwrap(), Limits::default()).unwrap_err();
    assert!(err.to_string().contains("over the limit"), "{err}");
}

#[test]
fn ten_thousand_nested_structures_are_refused_without_recursing() {
    let depth = 10_000;
    let mut bytes = Vec::with_capacity(depth * 8);
    for level in 0..depth {
        bytes.extend_from_slice(&hex("420020 01"));
        bytes.extend_from_slice(&(((depth - level - 1) * 8) as u32).to_be_bytes());
    }
    let err = decode(&bytes, Limits::default()).unwrap_err();
    assert!(err.to_string().contains("deeper than 16"), "{err}");
}

#[test]
fn truncated_wrong_type_and_bad_values_are_named() {
    let full = wrapped("420020 02 00000004 00000008 00000000");
    let err = decode(&full[..full.len() - 3], Limits::default()).unwrap_err();
    assert!(err.to_string().contains("truncated"), "{err}");

    assert_eq!(
        kind(&wrapped("420020 0F 00000004 00000008 00000000")),
        "UnknownType(15)"
    );
    assert!(kind(&wrapped("420020 02 00000008 0000000800000000")).starts_with("BadLength"));
    assert!(kind(&wrapped("420020 06 00000008 0000000000000002")).starts_with("BadBoolean"));
    assert!(kind(&wrapped("420020 07 00000002 FFFE000000000000")).starts_with("NotUtf8"));
    assert!(kind(&wrapped("420020 02 00000004 00000008 00000001")).starts_with("BadPadding"));
    let mut trailing = full.clone();
    trailing.extend_from_slice(&[0; 8]);
    assert!(kind(&trailing).starts_with("TrailingBytes"));
    assert!(kind(&hex("420020 02 00000004 00000008 00000000")).starts_with("NotAStructure"));
}

#[test]
fn debug_output_never_shows_byte_strings() {
    let secret = vec![0xAB; 32];
    let item = Item::structure(
        tag::KEY_MATERIAL,
        vec![Item::bytes(tag::KEY_MATERIAL, secret)],
    );
    let shown = format!("{item:?}");
    assert!(shown.contains("<32 bytes>"), "{shown}");
    assert!(
        !shown.to_lowercase().contains("ab, ab") && !shown.contains("171"),
        "{shown}"
    );
}

fn value_strategy() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        any::<i32>().prop_map(Value::Integer),
        any::<i64>().prop_map(Value::LongInteger),
        proptest::collection::vec(any::<u8>(), 0..3)
            .prop_map(|v| Value::BigInteger(v.iter().flat_map(|b| [*b; 8]).collect())),
        any::<u32>().prop_map(Value::Enumeration),
        any::<bool>().prop_map(Value::Boolean),
        ".{0,20}".prop_map(Value::TextString),
        proptest::collection::vec(any::<u8>(), 0..40).prop_map(Value::ByteString),
        any::<i64>().prop_map(Value::DateTime),
        any::<u32>().prop_map(Value::Interval),
        any::<i64>().prop_map(Value::DateTimeExtended),
    ];
    leaf.prop_recursive(4, 32, 6, |inner| {
        proptest::collection::vec(
            (0x42_0000u32..0x42_0200, inner).prop_map(|(tag, value)| Item { tag, value }),
            0..6,
        )
        .prop_map(Value::Structure)
    })
}

fn message_strategy() -> impl Strategy<Value = Item> {
    proptest::collection::vec(
        (0x42_0000u32..0x42_0200, value_strategy()).prop_map(|(tag, value)| Item { tag, value }),
        0..6,
    )
    .prop_map(|items| Item::structure(tag::REQUEST_MESSAGE, items))
}

/// Decoding must end in a value or an error: never a panic, and never more memory than
/// the input (the allocation bound is structural: see decode.rs).
fn decode_any(bytes: &[u8]) -> Result<Item, DecodeError> {
    let item = decode(bytes, Limits::default())?;
    // Whatever decodes encodes back to the very bytes: the format has one encoding.
    assert_eq!(item.encode(), bytes);
    let _ = RequestMessage::from_item(&item);
    let _ = ttlv::ResponseMessage::from_item(&item);
    Ok(item)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn every_message_round_trips(msg in message_strategy()) {
        let bytes = msg.encode();
        prop_assert_eq!(bytes.len() % 8, 0);
        prop_assert_eq!(decode(&bytes, Limits::default()), Ok(msg));
    }

    #[test]
    fn mutated_messages_never_panic(
        msg in message_strategy(),
        flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6),
        cut in any::<prop::sample::Index>(),
    ) {
        let mut bytes = msg.encode();
        for (at, byte) in flips {
            let i = at.index(bytes.len());
            bytes[i] = byte;
        }
        let _ = decode_any(&bytes);
        let _ = decode_any(&bytes[..cut.index(bytes.len() + 1)]);
    }

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
        let _ = decode_any(&bytes);
    }
}
