//! kms-sim's KMIP server through its byte interface: what a client sends and reads back.

use kms_sim::kmip::{fixed_clock, Fault, KmipSim, ObjectState};
use proptest::prelude::*;
use ttlv::enums::{
    batch_error_continuation_option, block_cipher_mode, cryptographic_algorithm, key_format_type,
    name_type, object_type, operation as op, padding_method, query_function, result_reason,
    revocation_reason_code, state,
};
use ttlv::tag;
use ttlv::{
    BatchItem, Item, Limits, ProtocolVersion, RequestMessage, ResponseItem, ResponseMessage,
};

const ALICE: &str = "alice";
const BOB: &str = "bob";
const NOW: i64 = 1_767_225_600;
const V14: ProtocolVersion = ProtocolVersion::V1_4;
const V20: ProtocolVersion = ProtocolVersion::V2_0;

fn sim() -> KmipSim {
    KmipSim::new(7, fixed_clock(NOW))
}

fn decode_response(bytes: &[u8]) -> ResponseMessage {
    let item = ttlv::decode(bytes, Limits::default()).expect("a TTLV answer");
    ResponseMessage::from_item(&item).expect("a Response Message")
}

fn send(
    sim: &KmipSim,
    owner: &str,
    version: ProtocolVersion,
    batch: Vec<BatchItem>,
) -> ResponseMessage {
    let bytes = RequestMessage { version, batch }.encode();
    let resp = decode_response(&sim.handle(&bytes, owner));
    assert_eq!(resp.version, version, "answered in the request's version");
    assert_eq!(
        resp.time_stamp, NOW,
        "time stamps come from the given clock"
    );
    resp
}

fn call(
    sim: &KmipSim,
    owner: &str,
    version: ProtocolVersion,
    operation: u32,
    payload: Vec<Item>,
) -> ResponseItem {
    let mut resp = send(
        sim,
        owner,
        version,
        vec![BatchItem::new(operation, payload)],
    );
    assert_eq!(resp.batch.len(), 1);
    let item = resp.batch.remove(0);
    assert_eq!(item.operation, Some(operation));
    item
}

/// The payload of a successful answer.
fn ok(item: ResponseItem) -> Item {
    match item.result {
        Ok(Some(p)) => p,
        other => panic!("expected success with a payload, got {other:?}"),
    }
}

/// The reason and message of a failed answer.
fn failed(item: ResponseItem) -> (u32, String) {
    match item.result {
        Err(f) => {
            assert_eq!(f.status, ttlv::enums::result_status::OPERATION_FAILED);
            (f.reason.expect("a reason"), f.message.expect("a message"))
        }
        Ok(p) => panic!("expected a failure, got {p:?}"),
    }
}

fn uid_item(uid: &str) -> Item {
    Item::text(tag::UNIQUE_IDENTIFIER, uid)
}

fn text(payload: &Item, t: tag::Tag) -> String {
    payload.get(t).unwrap().as_text().unwrap()
}

fn bytes(payload: &Item, t: tag::Tag) -> Vec<u8> {
    payload.get(t).unwrap().as_bytes().unwrap()
}

fn attr_v1(name: &str, value: Item) -> Item {
    Item::structure(
        tag::ATTRIBUTE,
        vec![
            Item::text(tag::ATTRIBUTE_NAME, name),
            Item::new(tag::ATTRIBUTE_VALUE, value.value),
        ],
    )
}

fn name_item(name: &str) -> Item {
    Item::structure(
        tag::NAME,
        vec![
            Item::text(tag::NAME_VALUE, name),
            Item::enumeration(tag::NAME_TYPE, name_type::UNINTERPRETED_TEXT_STRING),
        ],
    )
}

fn key_attrs(name: &str, bits: i32) -> Vec<Item> {
    vec![
        Item::enumeration(tag::CRYPTOGRAPHIC_ALGORITHM, cryptographic_algorithm::AES),
        Item::integer(tag::CRYPTOGRAPHIC_LENGTH, bits),
        Item::integer(tag::CRYPTOGRAPHIC_USAGE_MASK, 0x4 | 0x8),
        name_item(name),
    ]
}

/// A 1.x Create: a Template-Attribute of named Attributes.
fn create_v1(name: &str, bits: i32) -> Vec<Item> {
    let attrs = key_attrs(name, bits)
        .into_iter()
        .map(|a| attr_v1(&ttlv::tag::name(a.tag), a))
        .collect();
    vec![
        Item::enumeration(tag::OBJECT_TYPE, object_type::SYMMETRIC_KEY),
        Item::structure(tag::TEMPLATE_ATTRIBUTE, attrs),
    ]
}

/// A 2.x Create: an Attributes structure of tagged values.
fn create_v2(name: &str, bits: i32) -> Vec<Item> {
    vec![
        Item::enumeration(tag::OBJECT_TYPE, object_type::SYMMETRIC_KEY),
        Item::structure(tag::ATTRIBUTES, key_attrs(name, bits)),
    ]
}

fn gcm(tag_len: i32) -> Item {
    Item::structure(
        tag::CRYPTOGRAPHIC_PARAMETERS,
        vec![
            Item::enumeration(tag::BLOCK_CIPHER_MODE, block_cipher_mode::GCM),
            Item::enumeration(tag::CRYPTOGRAPHIC_ALGORITHM, cryptographic_algorithm::AES),
            Item::integer(tag::TAG_LENGTH, tag_len),
        ],
    )
}

fn encrypt_req(uid: &str, iv: Option<&[u8]>, data: &[u8]) -> Vec<Item> {
    let mut p = vec![uid_item(uid), gcm(16), Item::bytes(tag::DATA, data)];
    if let Some(iv) = iv {
        p.push(Item::bytes(tag::IV_COUNTER_NONCE, iv));
    }
    p
}

fn decrypt_req(uid: &str, iv: &[u8], ct: &[u8], auth_tag: &[u8]) -> Vec<Item> {
    vec![
        uid_item(uid),
        gcm(16),
        Item::bytes(tag::DATA, ct),
        Item::bytes(tag::IV_COUNTER_NONCE, iv),
        Item::bytes(tag::AUTHENTICATED_ENCRYPTION_TAG, auth_tag),
    ]
}

fn revoke_req(uid: &str, code: u32) -> Vec<Item> {
    vec![
        uid_item(uid),
        Item::structure(
            tag::REVOCATION_REASON,
            vec![Item::enumeration(tag::REVOCATION_REASON_CODE, code)],
        ),
    ]
}

fn create_active(sim: &KmipSim, owner: &str, name: &str) -> String {
    let uid = text(
        &ok(call(sim, owner, V14, op::CREATE, create_v1(name, 256))),
        tag::UNIQUE_IDENTIFIER,
    );
    ok(call(sim, owner, V14, op::ACTIVATE, vec![uid_item(&uid)]));
    uid
}

#[test]
fn lifecycle_create_activate_encrypt_decrypt_revoke_destroy() {
    let sim = sim();
    let created = ok(call(&sim, ALICE, V14, op::CREATE, create_v1("fs-key", 256)));
    let uid = text(&created, tag::UNIQUE_IDENTIFIER);
    assert_eq!(uid, "1", "UIDs are sequential decimal strings");
    assert_eq!(
        created.get(tag::OBJECT_TYPE).unwrap().as_enum().unwrap(),
        object_type::SYMMETRIC_KEY
    );
    assert_eq!(sim.state(&uid), Some(ObjectState::PreActive));

    ok(call(&sim, ALICE, V14, op::ACTIVATE, vec![uid_item(&uid)]));
    assert_eq!(sim.state(&uid), Some(ObjectState::Active));

    let iv = [5u8; 12];
    let enc = ok(call(
        &sim,
        ALICE,
        V14,
        op::ENCRYPT,
        encrypt_req(&uid, Some(&iv), b"the dek"),
    ));
    assert!(
        enc.find(tag::IV_COUNTER_NONCE).is_none(),
        "the client's IV is not sent back"
    );
    let ct = bytes(&enc, tag::DATA);
    let auth_tag = bytes(&enc, tag::AUTHENTICATED_ENCRYPTION_TAG);
    assert_eq!((ct.len(), auth_tag.len()), (7, 16));
    assert!(sim.decrypt(ALICE, &uid, &iv, &ct, &auth_tag).is_some());

    let dec = ok(call(
        &sim,
        ALICE,
        V14,
        op::DECRYPT,
        decrypt_req(&uid, &iv, &ct, &auth_tag),
    ));
    assert_eq!(bytes(&dec, tag::DATA), b"the dek");

    // The Get'd key decrypts it with any AES-GCM implementation.
    let got = ok(call(&sim, ALICE, V14, op::GET, vec![uid_item(&uid)]));
    let block = got
        .get(tag::SYMMETRIC_KEY)
        .unwrap()
        .get(tag::KEY_BLOCK)
        .unwrap();
    let key = bytes(block.get(tag::KEY_VALUE).unwrap(), tag::KEY_MATERIAL);
    assert_eq!(key.len(), 32);
    {
        use aes_gcm::aead::{Aead, KeyInit};
        let c = aes_gcm::Aes256Gcm::new_from_slice(&key).unwrap();
        let plain = c
            .decrypt(
                aes_gcm::Nonce::from_slice(&iv),
                [ct.clone(), auth_tag.clone()].concat().as_slice(),
            )
            .unwrap();
        assert_eq!(plain, b"the dek");
    }

    // A wrong tag is a cryptographic failure naming the object.
    let mut bad = auth_tag.clone();
    bad[0] ^= 1;
    let (reason, message) = failed(call(
        &sim,
        ALICE,
        V14,
        op::DECRYPT,
        decrypt_req(&uid, &iv, &ct, &bad),
    ));
    assert_eq!(reason, result_reason::CRYPTOGRAPHIC_FAILURE, "{message}");
    assert!(message.contains("Object 1"), "{message}");
    assert!(sim.decrypt(ALICE, &uid, &iv, &ct, &bad).is_none());

    ok(call(
        &sim,
        ALICE,
        V14,
        op::REVOKE,
        revoke_req(&uid, revocation_reason_code::CESSATION_OF_OPERATION),
    ));
    assert_eq!(sim.state(&uid), Some(ObjectState::Deactivated));
    let (reason, message) = failed(call(
        &sim,
        ALICE,
        V14,
        op::ENCRYPT,
        encrypt_req(&uid, Some(&iv), b"x"),
    ));
    assert_eq!(reason, result_reason::PERMISSION_DENIED);
    assert!(
        message.contains("key 1") && message.contains("Deactivated"),
        "{message}"
    );
    // Deactivated keys still decrypt (KMIP; PyKMIP refuses: an intended difference).
    let dec = ok(call(
        &sim,
        ALICE,
        V14,
        op::DECRYPT,
        decrypt_req(&uid, &iv, &ct, &auth_tag),
    ));
    assert_eq!(bytes(&dec, tag::DATA), b"the dek");
    assert!(sim.decrypt(ALICE, &uid, &iv, &ct, &auth_tag).is_some());

    ok(call(&sim, ALICE, V14, op::DESTROY, vec![uid_item(&uid)]));
    assert_eq!(sim.state(&uid), Some(ObjectState::Destroyed));
    let (reason, message) = failed(call(
        &sim,
        ALICE,
        V14,
        op::DECRYPT,
        decrypt_req(&uid, &iv, &ct, &auth_tag),
    ));
    assert_eq!(reason, result_reason::ITEM_NOT_FOUND);
    assert!(
        message.contains("1") && message.contains("destroyed"),
        "{message}"
    );
    assert!(sim.decrypt(ALICE, &uid, &iv, &ct, &auth_tag).is_none());

    let summary = &sim.objects(ALICE)[0];
    assert_eq!(
        (
            summary.state,
            summary.activation_date,
            summary.deactivation_date,
            summary.destroy_date
        ),
        (ObjectState::Destroyed, Some(NOW), Some(NOW), Some(NOW))
    );
    // Key Compromise still marks a destroyed key.
    ok(call(
        &sim,
        ALICE,
        V14,
        op::REVOKE,
        revoke_req(&uid, revocation_reason_code::KEY_COMPROMISE),
    ));
    assert_eq!(sim.state(&uid), Some(ObjectState::DestroyedCompromised));

    let counts = sim.requests();
    assert_eq!(counts.get("Decrypt"), Some(&4));
    assert_eq!(counts.get("Revoke"), Some(&2));
}

#[test]
fn another_owner_sees_an_unknown_uid() {
    let sim = sim();
    let uid = create_active(&sim, ALICE, "alice-key");
    let iv = [1u8; 12];
    let enc = ok(call(
        &sim,
        ALICE,
        V14,
        op::ENCRYPT,
        encrypt_req(&uid, Some(&iv), b"dek"),
    ));
    let (ct, auth_tag) = (
        bytes(&enc, tag::DATA),
        bytes(&enc, tag::AUTHENTICATED_ENCRYPTION_TAG),
    );

    let unknown = failed(call(&sim, BOB, V14, op::GET, vec![uid_item("99")]));
    assert_eq!(
        unknown,
        (
            result_reason::ITEM_NOT_FOUND,
            "Could not locate object: 99".into()
        )
    );
    for (operation, payload) in [
        (op::GET, vec![uid_item(&uid)]),
        (op::GET_ATTRIBUTES, vec![uid_item(&uid)]),
        (op::ACTIVATE, vec![uid_item(&uid)]),
        (op::DESTROY, vec![uid_item(&uid)]),
        (
            op::REVOKE,
            revoke_req(&uid, revocation_reason_code::KEY_COMPROMISE),
        ),
        (op::ENCRYPT, encrypt_req(&uid, Some(&iv), b"x")),
        (op::DECRYPT, decrypt_req(&uid, &iv, &ct, &auth_tag)),
    ] {
        let answer = failed(call(&sim, BOB, V14, operation, payload));
        assert_eq!(
            answer,
            (
                result_reason::ITEM_NOT_FOUND,
                format!("Could not locate object: {uid}")
            ),
            "{}",
            op::name(operation)
        );
    }
    let located = ok(call(&sim, BOB, V14, op::LOCATE, vec![]));
    assert_eq!(located.all(tag::UNIQUE_IDENTIFIER).count(), 0);
    assert!(sim.decrypt(BOB, &uid, &iv, &ct, &auth_tag).is_none());
    assert!(sim.decrypt(ALICE, &uid, &iv, &ct, &auth_tag).is_some());
    assert_eq!(
        sim.state(&uid),
        Some(ObjectState::Active),
        "bob changed nothing"
    );
    assert!(sim.objects(BOB).is_empty());
}

#[test]
fn wrong_states_are_refused_with_pykmip_reasons() {
    let sim = sim();
    let uid = text(
        &ok(call(&sim, ALICE, V14, op::CREATE, create_v1("k", 128))),
        tag::UNIQUE_IDENTIFIER,
    );
    let (reason, message) = failed(call(
        &sim,
        ALICE,
        V14,
        op::ENCRYPT,
        encrypt_req(&uid, Some(&[0; 12]), b"x"),
    ));
    assert_eq!(reason, result_reason::PERMISSION_DENIED);
    assert!(message.contains("Pre-Active"), "{message}");
    let (reason, message) = failed(call(
        &sim,
        ALICE,
        V14,
        op::REVOKE,
        revoke_req(&uid, revocation_reason_code::UNSPECIFIED),
    ));
    assert_eq!(reason, result_reason::ILLEGAL_OPERATION, "{message}");
    ok(call(&sim, ALICE, V14, op::ACTIVATE, vec![uid_item(&uid)]));
    let (reason, message) = failed(call(&sim, ALICE, V14, op::ACTIVATE, vec![uid_item(&uid)]));
    assert_eq!(reason, result_reason::PERMISSION_DENIED);
    assert!(message.contains(&format!("Object {uid}")), "{message}");
    let (reason, message) = failed(call(&sim, ALICE, V14, op::DESTROY, vec![uid_item(&uid)]));
    assert_eq!(reason, result_reason::PERMISSION_DENIED);
    assert!(
        message.contains("Active") && message.contains("revoke"),
        "{message}"
    );
    let (reason, message) = failed(call(&sim, ALICE, V14, op::REVOKE, vec![uid_item(&uid)]));
    assert_eq!(reason, result_reason::INVALID_FIELD);
    assert!(message.contains("reason code"), "{message}");
    ok(call(
        &sim,
        ALICE,
        V14,
        op::REVOKE,
        revoke_req(&uid, revocation_reason_code::KEY_COMPROMISE),
    ));
    assert_eq!(sim.state(&uid), Some(ObjectState::Compromised));
    let (reason, _) = failed(call(
        &sim,
        ALICE,
        V14,
        op::DECRYPT,
        decrypt_req(&uid, &[0; 12], b"x", &[0; 16]),
    ));
    assert_eq!(
        reason,
        result_reason::PERMISSION_DENIED,
        "compromised keys do not decrypt"
    );
    ok(call(&sim, ALICE, V14, op::DESTROY, vec![uid_item(&uid)]));
    assert_eq!(sim.state(&uid), Some(ObjectState::DestroyedCompromised));
}

#[test]
fn unsupported_versions_get_invalid_message() {
    let sim = sim();
    for version in [
        ProtocolVersion::V1_1,
        ProtocolVersion::V1_0,
        ProtocolVersion::new(3, 0),
    ] {
        let resp = send(
            &sim,
            ALICE,
            version,
            vec![BatchItem::new(op::QUERY, vec![])],
        );
        assert_eq!(resp.batch.len(), 1);
        assert_eq!(resp.batch[0].operation, None, "a message-level answer");
        let (reason, message) = failed(resp.batch[0].clone());
        assert_eq!(reason, result_reason::INVALID_MESSAGE);
        assert!(
            message.contains(&format!("KMIP {version} is not supported")),
            "{message}"
        );
    }
    assert!(sim.requests().is_empty(), "no operation ran");
}

#[test]
fn unknown_operations_are_not_supported() {
    let sim = sim();
    for operation in [op::REGISTER, 0xFF] {
        let (reason, message) = failed(call(&sim, ALICE, V14, operation, vec![]));
        assert_eq!(reason, result_reason::OPERATION_NOT_SUPPORTED);
        assert!(message.contains(&op::name(operation)), "{message}");
    }
}

#[test]
fn malformed_payloads_name_the_field() {
    let sim = sim();
    let (reason, message) = failed(call(
        &sim,
        ALICE,
        V14,
        op::GET,
        vec![Item::integer(tag::UNIQUE_IDENTIFIER, 1)],
    ));
    assert_eq!(reason, result_reason::INVALID_FIELD);
    assert!(message.contains("Unique Identifier"), "{message}");
    let (reason, message) = failed(call(&sim, ALICE, V14, op::CREATE, vec![]));
    assert_eq!(reason, result_reason::INVALID_FIELD);
    assert!(message.contains("Object Type"), "{message}");
    let mut no_len = create_v1("k", 256);
    no_len[1] = Item::structure(
        tag::TEMPLATE_ATTRIBUTE,
        vec![attr_v1(
            "Cryptographic Algorithm",
            Item::enumeration(0, cryptographic_algorithm::AES),
        )],
    );
    let (reason, message) = failed(call(&sim, ALICE, V14, op::CREATE, no_len));
    assert_eq!(reason, result_reason::INVALID_FIELD);
    assert!(message.contains("cryptographic length"), "{message}");
    let uid = create_active(&sim, ALICE, "k");
    let no_tag_len = vec![
        uid_item(&uid),
        Item::structure(
            tag::CRYPTOGRAPHIC_PARAMETERS,
            vec![
                Item::enumeration(tag::BLOCK_CIPHER_MODE, block_cipher_mode::GCM),
                Item::enumeration(tag::CRYPTOGRAPHIC_ALGORITHM, cryptographic_algorithm::AES),
            ],
        ),
        Item::bytes(tag::DATA, b"x".to_vec()),
    ];
    let (reason, message) = failed(call(&sim, ALICE, V14, op::ENCRYPT, no_tag_len));
    assert_eq!(reason, result_reason::INVALID_FIELD);
    assert!(message.contains("tag length"), "{message}");
    let mut no_auth_tag = decrypt_req(&uid, &[0; 12], b"x", &[0; 16]);
    no_auth_tag.pop();
    let (reason, message) = failed(call(&sim, ALICE, V14, op::DECRYPT, no_auth_tag));
    assert_eq!(reason, result_reason::INVALID_FIELD);
    assert!(
        message.contains("Authenticated Encryption Tag"),
        "{message}"
    );
    // A 2.0 Create in 1.x syntax is refused with the syntax named.
    let (reason, message) = failed(call(&sim, ALICE, V20, op::CREATE, create_v1("k", 256)));
    assert_eq!(reason, result_reason::INVALID_FIELD);
    assert!(message.contains("Template-Attribute"), "{message}");
}

#[test]
fn a_batch_of_three_answers_each_item_with_its_id() {
    let sim = sim();
    let mut items = vec![
        BatchItem::new(op::CREATE, create_v1("batch", 256)),
        // No UID: the Create's, via the ID placeholder.
        BatchItem::new(op::ACTIVATE, vec![]),
        BatchItem::new(op::ENCRYPT, {
            let mut p = encrypt_req("", Some(&[2; 12]), b"dek");
            p.remove(0);
            p
        }),
    ];
    for (i, b) in items.iter_mut().enumerate() {
        b.id = Some(vec![0xA0 + i as u8]);
    }
    let resp = send(&sim, ALICE, V14, items);
    assert_eq!(resp.batch.len(), 3);
    for (i, item) in resp.batch.iter().enumerate() {
        assert_eq!(item.id, Some(vec![0xA0 + i as u8]));
        assert!(item.result.is_ok(), "{item:?}");
    }
    assert_eq!(
        resp.batch
            .iter()
            .map(|b| b.operation.unwrap())
            .collect::<Vec<_>>(),
        vec![op::CREATE, op::ACTIVATE, op::ENCRYPT]
    );
    assert_eq!(sim.state("1"), Some(ObjectState::Active));

    // Without IDs a batch of several is refused as a whole.
    let resp = send(
        &sim,
        ALICE,
        V14,
        vec![
            BatchItem::new(op::QUERY, vec![]),
            BatchItem::new(op::QUERY, vec![]),
        ],
    );
    let (reason, message) = failed(resp.batch[0].clone());
    assert_eq!(reason, result_reason::INVALID_MESSAGE);
    assert!(message.contains("Unique Batch Item ID"), "{message}");
}

#[test]
fn batch_error_continuation_stop_and_continue() {
    let sim = sim();
    let batch = || {
        let mut items = vec![
            BatchItem::new(op::QUERY, vec![]),
            BatchItem::new(op::GET, vec![uid_item("42")]),
            BatchItem::new(op::QUERY, vec![]),
        ];
        for (i, b) in items.iter_mut().enumerate() {
            b.id = Some(vec![i as u8]);
        }
        items
    };
    // Stop (the default): the failing item is the last answered.
    let resp = send(&sim, ALICE, V14, batch());
    assert_eq!(resp.batch.len(), 2);
    assert!(resp.batch[1].result.is_err());

    let mut message = RequestMessage {
        version: V14,
        batch: batch(),
    }
    .to_item();
    if let ttlv::Value::Structure(items) = &mut message.value {
        if let ttlv::Value::Structure(header) = &mut items[0].value {
            header.push(Item::enumeration(
                tag::BATCH_ERROR_CONTINUATION_OPTION,
                batch_error_continuation_option::CONTINUE,
            ));
        }
    }
    let resp = decode_response(&sim.handle(&message.encode(), ALICE));
    assert_eq!(resp.batch.len(), 3);
    assert!(
        resp.batch[0].result.is_ok()
            && resp.batch[1].result.is_err()
            && resp.batch[2].result.is_ok()
    );
    assert_eq!(resp.batch[2].id, Some(vec![2]));
}

#[test]
fn create_and_get_attributes_in_2_0_syntax() {
    let sim = sim();
    let uid = text(
        &ok(call(&sim, ALICE, V20, op::CREATE, create_v2("v2-key", 192))),
        tag::UNIQUE_IDENTIFIER,
    );
    ok(call(&sim, ALICE, V20, op::ACTIVATE, vec![uid_item(&uid)]));
    let attrs = ok(call(
        &sim,
        ALICE,
        V20,
        op::GET_ATTRIBUTES,
        vec![
            uid_item(&uid),
            Item::enumeration(tag::ATTRIBUTE_REFERENCE, tag::STATE),
            Item::enumeration(tag::ATTRIBUTE_REFERENCE, tag::CRYPTOGRAPHIC_LENGTH),
        ],
    ));
    let a = attrs.get(tag::ATTRIBUTES).unwrap();
    assert_eq!(a.items().unwrap().len(), 2);
    assert_eq!(a.get(tag::STATE).unwrap().as_enum().unwrap(), state::ACTIVE);
    assert_eq!(
        a.get(tag::CRYPTOGRAPHIC_LENGTH)
            .unwrap()
            .as_integer()
            .unwrap(),
        192
    );

    // All attributes, in 1.4 syntax for the same key.
    let all = ok(call(
        &sim,
        ALICE,
        V14,
        op::GET_ATTRIBUTES,
        vec![uid_item(&uid)],
    ));
    let names: Vec<String> = all
        .all(tag::ATTRIBUTE)
        .map(|a| text(a, tag::ATTRIBUTE_NAME))
        .collect();
    for want in [
        "Name",
        "Cryptographic Algorithm",
        "Cryptographic Length",
        "Cryptographic Usage Mask",
        "State",
        "Initial Date",
        "Activation Date",
    ] {
        assert!(
            names.iter().any(|n| n == want),
            "{want} missing from {names:?}"
        );
    }
    assert!(!names.iter().any(|n| n == "Destroy Date"), "{names:?}");
    let name = all
        .all(tag::ATTRIBUTE)
        .find(|a| text(a, tag::ATTRIBUTE_NAME) == "Name")
        .unwrap();
    assert_eq!(
        text(name.get(tag::ATTRIBUTE_VALUE).unwrap(), tag::NAME_VALUE),
        "v2-key"
    );
    let one = ok(call(
        &sim,
        ALICE,
        V14,
        op::GET_ATTRIBUTES,
        vec![uid_item(&uid), Item::text(tag::ATTRIBUTE_NAME, "State")],
    ));
    assert_eq!(one.all(tag::ATTRIBUTE).count(), 1);

    // Transparent Symmetric Key on request.
    let got = ok(call(
        &sim,
        ALICE,
        V20,
        op::GET,
        vec![
            uid_item(&uid),
            Item::enumeration(
                tag::KEY_FORMAT_TYPE,
                key_format_type::TRANSPARENT_SYMMETRIC_KEY,
            ),
        ],
    ));
    let material = got
        .get(tag::SYMMETRIC_KEY)
        .unwrap()
        .get(tag::KEY_BLOCK)
        .unwrap()
        .get(tag::KEY_VALUE)
        .unwrap()
        .get(tag::KEY_MATERIAL)
        .unwrap();
    assert_eq!(bytes(material, tag::KEY).len(), 24);
}

#[test]
fn locate_by_name_and_state_finds_only_the_owners_objects() {
    let sim = sim();
    let a = create_active(&sim, ALICE, "shared-name");
    let _pre = text(
        &ok(call(&sim, ALICE, V14, op::CREATE, create_v1("other", 256))),
        tag::UNIQUE_IDENTIFIER,
    );
    let _bobs = create_active(&sim, BOB, "shared-name");
    let by_name = ok(call(
        &sim,
        ALICE,
        V14,
        op::LOCATE,
        vec![attr_v1("Name", name_item("shared-name"))],
    ));
    assert_eq!(
        by_name
            .all(tag::UNIQUE_IDENTIFIER)
            .map(|u| u.as_text().unwrap())
            .collect::<Vec<_>>(),
        vec![a.clone()]
    );
    let active = ok(call(
        &sim,
        ALICE,
        V20,
        op::LOCATE,
        vec![Item::structure(
            tag::ATTRIBUTES,
            vec![
                Item::enumeration(tag::STATE, state::ACTIVE),
                Item::enumeration(tag::OBJECT_TYPE, object_type::SYMMETRIC_KEY),
            ],
        )],
    ));
    assert_eq!(
        active
            .all(tag::UNIQUE_IDENTIFIER)
            .map(|u| u.as_text().unwrap())
            .collect::<Vec<_>>(),
        vec![a]
    );
    let all = ok(call(&sim, ALICE, V14, op::LOCATE, vec![]));
    assert_eq!(all.all(tag::UNIQUE_IDENTIFIER).count(), 2);
}

#[test]
fn discover_versions_and_query() {
    let sim = sim();
    let versions = |p: &Item| {
        p.all(tag::PROTOCOL_VERSION)
            .map(|v| ProtocolVersion::from_item(v).unwrap())
            .collect::<Vec<_>>()
    };
    let theirs = vec![
        ProtocolVersion::V1_1,
        ProtocolVersion::V2_1,
        ProtocolVersion::V1_4,
    ]
    .into_iter()
    .map(ProtocolVersion::to_item)
    .collect();
    let answer = ok(call(&sim, ALICE, V14, op::DISCOVER_VERSIONS, theirs));
    assert_eq!(
        versions(&answer),
        vec![ProtocolVersion::V2_1, ProtocolVersion::V1_4],
        "theirs, filtered, their order"
    );
    let answer = ok(call(&sim, ALICE, V14, op::DISCOVER_VERSIONS, vec![]));
    assert_eq!(
        versions(&answer),
        vec![
            ProtocolVersion::V2_1,
            ProtocolVersion::V2_0,
            ProtocolVersion::V1_4,
            ProtocolVersion::V1_3,
            ProtocolVersion::V1_2
        ]
    );

    let q = ok(call(
        &sim,
        ALICE,
        V14,
        op::QUERY,
        vec![
            Item::enumeration(tag::QUERY_FUNCTION, query_function::QUERY_OPERATIONS),
            Item::enumeration(tag::QUERY_FUNCTION, query_function::QUERY_OBJECTS),
            Item::enumeration(
                tag::QUERY_FUNCTION,
                query_function::QUERY_SERVER_INFORMATION,
            ),
        ],
    ));
    let ops: Vec<u32> = q
        .all(tag::OPERATION)
        .map(|o| o.as_enum().unwrap())
        .collect();
    assert!(
        ops.contains(&op::ENCRYPT) && ops.contains(&op::DECRYPT) && ops.len() == 11,
        "{ops:?}"
    );
    assert_eq!(
        q.get(tag::OBJECT_TYPE).unwrap().as_enum().unwrap(),
        object_type::SYMMETRIC_KEY
    );
    assert_eq!(
        text(&q, tag::VENDOR_IDENTIFICATION),
        kms_sim::kmip::VENDOR_IDENTIFICATION
    );
}

#[test]
fn server_made_ivs_and_keys_come_from_the_seed() {
    let run = |seed| {
        let sim = KmipSim::new(seed, fixed_clock(NOW));
        let uid = create_active(&sim, ALICE, "k");
        let enc = ok(call(
            &sim,
            ALICE,
            V14,
            op::ENCRYPT,
            encrypt_req(&uid, None, b"dek"),
        ));
        let iv = bytes(&enc, tag::IV_COUNTER_NONCE);
        assert_eq!(iv.len(), 16, "PyKMIP's block-sized IV");
        let (ct, t) = (
            bytes(&enc, tag::DATA),
            bytes(&enc, tag::AUTHENTICATED_ENCRYPTION_TAG),
        );
        let dec = ok(call(
            &sim,
            ALICE,
            V14,
            op::DECRYPT,
            decrypt_req(&uid, &iv, &ct, &t),
        ));
        assert_eq!(bytes(&dec, tag::DATA), b"dek");
        (iv, ct, t)
    };
    assert_eq!(run(1), run(1));
    assert_ne!(run(1), run(2));
}

#[test]
fn cbc_with_pkcs5_round_trips() {
    let sim = sim();
    let uid = create_active(&sim, ALICE, "cbc");
    let params = Item::structure(
        tag::CRYPTOGRAPHIC_PARAMETERS,
        vec![
            Item::enumeration(tag::BLOCK_CIPHER_MODE, block_cipher_mode::CBC),
            Item::enumeration(tag::CRYPTOGRAPHIC_ALGORITHM, cryptographic_algorithm::AES),
            Item::enumeration(tag::PADDING_METHOD, padding_method::PKCS5),
        ],
    );
    let iv = vec![3u8; 16];
    let enc = ok(call(
        &sim,
        ALICE,
        V14,
        op::ENCRYPT,
        vec![
            uid_item(&uid),
            params.clone(),
            Item::bytes(tag::DATA, b"twenty bytes of dek!".to_vec()),
            Item::bytes(tag::IV_COUNTER_NONCE, iv.clone()),
        ],
    ));
    let ct = bytes(&enc, tag::DATA);
    assert_eq!(ct.len(), 32);
    let dec = ok(call(
        &sim,
        ALICE,
        V14,
        op::DECRYPT,
        vec![
            uid_item(&uid),
            params,
            Item::bytes(tag::DATA, ct),
            Item::bytes(tag::IV_COUNTER_NONCE, iv),
        ],
    ));
    assert_eq!(bytes(&dec, tag::DATA), b"twenty bytes of dek!");
}

#[test]
fn faults_and_the_administrator() {
    let sim = sim();
    let uid = sim.create_key(ALICE, "admin-made");
    assert_eq!(sim.state(&uid), Some(ObjectState::Active));
    sim.set_fault(Fault::GeneralFailure);
    let (reason, _) = failed(call(&sim, ALICE, V14, op::GET, vec![uid_item(&uid)]));
    assert_eq!(reason, result_reason::GENERAL_FAILURE);
    sim.set_fault(Fault::GeneralFailureOn(op::ENCRYPT));
    ok(call(&sim, ALICE, V14, op::GET, vec![uid_item(&uid)]));
    let (reason, _) = failed(call(
        &sim,
        ALICE,
        V14,
        op::ENCRYPT,
        encrypt_req(&uid, Some(&[0; 12]), b"x"),
    ));
    assert_eq!(reason, result_reason::GENERAL_FAILURE);
    assert_eq!(sim.fault_hits(), 2);
    sim.set_fault(Fault::None);
    let enc = ok(call(
        &sim,
        ALICE,
        V14,
        op::ENCRYPT,
        encrypt_req(&uid, Some(&[0; 12]), b"x"),
    ));
    let (ct, t) = (
        bytes(&enc, tag::DATA),
        bytes(&enc, tag::AUTHENTICATED_ENCRYPTION_TAG),
    );

    assert!(sim.destroy(&uid).is_err(), "active keys are revoked first");
    assert_eq!(sim.revoke(&uid), Ok(ObjectState::Deactivated));
    assert!(sim.decrypt(ALICE, &uid, &[0; 12], &ct, &t).is_some());
    assert_eq!(sim.destroy(&uid), Ok(ObjectState::Destroyed));
    assert!(sim.decrypt(ALICE, &uid, &[0; 12], &ct, &t).is_none());
    assert!(sim.revoke("77").is_err());
    let other = sim.create_key(ALICE, "second");
    assert_eq!(sim.compromise(&other), Ok(ObjectState::Compromised));
    let (reason, message) = failed(call(
        &sim,
        ALICE,
        V14,
        op::ENCRYPT,
        encrypt_req(&other, Some(&[0; 12]), b"x"),
    ));
    assert_eq!(reason, result_reason::PERMISSION_DENIED);
    assert!(message.contains("Compromised"), "{message}");
    // The admin's acts are not requests.
    assert_eq!(sim.requests().values().sum::<u64>(), 5);
}

#[tokio::test]
async fn serve_connection_answers_until_eof_and_closes_after_garbage() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let sim = sim();
    let (mut client, server) = tokio::io::duplex(1 << 16);
    let task = tokio::spawn({
        let sim = sim.clone();
        async move { sim.serve_connection(server, ALICE.to_string()).await }
    });
    let query = RequestMessage {
        version: V14,
        batch: vec![BatchItem::new(op::QUERY, vec![])],
    }
    .encode();
    for _ in 0..2 {
        client.write_all(&query).await.unwrap();
        let frame = ttlv::read_frame(&mut client, Limits::default())
            .await
            .unwrap()
            .unwrap();
        assert!(decode_response(&frame).batch[0].result.is_ok());
    }
    // A structure whose inner item has an unknown type byte: framed, but not TTLV.
    let mut garbage = query.clone();
    garbage[8 + 3] = 0x7F;
    client.write_all(&garbage).await.unwrap();
    let frame = ttlv::read_frame(&mut client, Limits::default())
        .await
        .unwrap()
        .unwrap();
    let (reason, message) = failed(decode_response(&frame).batch[0].clone());
    assert_eq!(reason, result_reason::INVALID_MESSAGE);
    assert!(message.contains("unknown item type"), "{message}");
    let mut rest = Vec::new();
    client.read_to_end(&mut rest).await.unwrap();
    assert!(rest.is_empty(), "closed after the answer");
    task.await.unwrap();
    assert_eq!(sim.messages_served(), 3);
}

#[tokio::test]
async fn serve_connection_ends_at_eof() {
    let sim = sim();
    let (client, server) = tokio::io::duplex(1024);
    drop(client);
    sim.serve_connection(server, ALICE.to_string()).await;
    assert_eq!(sim.messages_served(), 0);
}

/// A valid request of each kind, for mutation.
fn seeds() -> Vec<Vec<u8>> {
    let uid = "1";
    [
        (V14, op::CREATE, create_v1("k", 256)),
        (V20, op::CREATE, create_v2("k", 128)),
        (V14, op::ENCRYPT, encrypt_req(uid, Some(&[1; 12]), b"dek")),
        (
            V14,
            op::DECRYPT,
            decrypt_req(uid, &[1; 12], b"dek", &[0; 16]),
        ),
        (
            V20,
            op::GET_ATTRIBUTES,
            vec![
                uid_item(uid),
                Item::enumeration(tag::ATTRIBUTE_REFERENCE, tag::STATE),
            ],
        ),
        (V14, op::LOCATE, vec![attr_v1("Name", name_item("k"))]),
        (
            V14,
            op::REVOKE,
            revoke_req(uid, revocation_reason_code::KEY_COMPROMISE),
        ),
        (
            V14,
            op::DISCOVER_VERSIONS,
            vec![ProtocolVersion::V1_2.to_item()],
        ),
    ]
    .into_iter()
    .map(|(v, o, p)| {
        RequestMessage {
            version: v,
            batch: vec![BatchItem::new(o, p)],
        }
        .encode()
    })
    .collect()
}

/// Where the Request Header ends: mutations past it leave the header decodable.
fn header_end(request: &[u8]) -> usize {
    let len = u32::from_be_bytes(request[12..16].try_into().unwrap()) as usize;
    16 + len
}

fn version_of(request: &[u8]) -> ProtocolVersion {
    let item = ttlv::decode(&request[8..header_end(request)], Limits::default()).unwrap();
    ProtocolVersion::from_item(item.get(tag::PROTOCOL_VERSION).unwrap()).unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn random_bytes_never_panic_and_get_a_response(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let sim = sim();
        let answer = sim.handle(&bytes, ALICE);
        decode_response(&answer);
    }

    #[test]
    fn mutated_requests_get_a_response_in_their_version(
        which in 0usize..8,
        flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6),
        cut in proptest::option::of(any::<prop::sample::Index>()),
    ) {
        let sim = sim();
        sim.create_key(ALICE, "k");
        let mut request = seeds().swap_remove(which);
        let start = header_end(&request);
        let version = version_of(&request);
        for (at, byte) in flips {
            let i = start + at.index(request.len() - start);
            request[i] = byte;
        }
        if let Some(cut) = cut {
            request.truncate(start + cut.index(request.len() - start));
        }
        let resp = decode_response(&sim.handle(&request, ALICE));
        prop_assert_eq!(resp.version, version);
        prop_assert!(!resp.batch.is_empty());
    }
}
