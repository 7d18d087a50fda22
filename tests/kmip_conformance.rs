//! Conformance of kms-sim's simulated KMIP server against a real PyKMIP 0.11.
//!
//! The simulated services are checked against the real ones, never the other way round: one
//! list of requests goes to both servers, each over real loopback TCP with mutual TLS from
//! the same PKI (kms-sim served in process by `kms_sim::tls::serve_kmip`, as its binary
//! serves it), from the same client CNs, in the same order, so both hand out the same UIDs.
//! For every request the whole answer is rendered to one line and the lines must be equal:
//! the response's protocol version, and per batch item the operation, result status,
//! result reason, result message and the response payload, field by field with its values
//! (byte strings by length, since keys and ciphertexts differ; date-times as a mark, since
//! the clocks differ). Decrypted plaintexts are compared by value.
//!
//! A difference is allowed only where the list at the top of kms-sim/src/kmip/mod.rs names
//! it: such a case carries both answers' lines, asserted exactly, and the words of that list
//! it rests on, which must be found there. A new difference, documented or not, fails.
//!
//! PyKMIP comes from `bash tests/run.sh`, which installs it into `.venv/`. Without it this
//! test fails (it never skips).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use cluster::net::BoxStream;
use kms_sim::kmip::fixed_clock;
use kms_sim::KmipSim;
use scenarios::kms::kmip::{connect_tls, KmipAdmin, KmipError};
use scenarios::live::pykmip::{LivePki, PyKmip};
use ttlv::enums::{
    block_cipher_mode, cryptographic_algorithm, key_format_type, object_type, operation as op,
    query_function, result_reason, result_status, revocation_reason_code, usage_mask,
};
use ttlv::{attribute, name_attribute};
use ttlv::{tag, BatchItem, Item, ProtocolVersion, RequestMessage, ResponseMessage, Value};

const CLUSTER: &str = "wekasim-cluster";
const OTHER: &str = "wekasim-other-tenant";
/// The cluster's key's name, and one nobody has.
const NAME: &str = "conformance-k1";
const OTHER_NAME: &str = "conformance-other";
const PLAINTEXT: &[u8] = b"a 32-byte data encryption key!!!";
const IV: [u8; 12] = [0x5A; 12];

/// The list of differences this suite may rely on.
const DOCUMENTED: &str = include_str!("../kms-sim/src/kmip/mod.rs");

/// Per-server values carried from one case to later ones: UIDs, ciphertexts, tags.
type Vars = BTreeMap<&'static str, Vec<u8>>;

fn text(v: &Vars, name: &str) -> String {
    String::from_utf8(bytes(v, name)).unwrap()
}

fn bytes(v: &Vars, name: &str) -> Vec<u8> {
    v.get(name)
        .cloned()
        .unwrap_or_else(|| panic!("variable {name} was never saved by an earlier case"))
}

type Build = Box<dyn Fn(&Vars) -> RequestMessage>;

struct Case {
    name: &'static str,
    cn: &'static str,
    build: Build,
    /// (variable, tag): a field of the first item's payload to keep, per server.
    save: Vec<(&'static str, u32)>,
    /// The first item's Data must be this plaintext on both servers.
    plaintext: Option<&'static [u8]>,
}

/// One batch item in KMIP 1.4, from `cn`.
fn case(
    name: &'static str,
    cn: &'static str,
    operation: u32,
    payload: impl Fn(&Vars) -> Vec<Item> + 'static,
) -> Case {
    case_in(name, cn, ProtocolVersion::V1_4, operation, payload)
}

fn case_in(
    name: &'static str,
    cn: &'static str,
    version: ProtocolVersion,
    operation: u32,
    payload: impl Fn(&Vars) -> Vec<Item> + 'static,
) -> Case {
    Case {
        name,
        cn,
        build: Box::new(move |v| RequestMessage {
            version,
            batch: vec![BatchItem::new(operation, payload(v))],
        }),
        save: Vec::new(),
        plaintext: None,
    }
}

impl Case {
    fn save(mut self, var: &'static str, t: u32) -> Self {
        self.save.push((var, t));
        self
    }
    fn decrypts_to(mut self, plaintext: &'static [u8]) -> Self {
        self.plaintext = Some(plaintext);
        self
    }
}

fn uid(v: &Vars, var: &str) -> Item {
    Item::text(tag::UNIQUE_IDENTIFIER, text(v, var))
}

/// Create's payload in 1.x: an AES-256 key for Encrypt and Decrypt named `name`.
fn create_payload(name: &str) -> Vec<Item> {
    vec![
        Item::enumeration(tag::OBJECT_TYPE, object_type::SYMMETRIC_KEY),
        Item::structure(
            tag::TEMPLATE_ATTRIBUTE,
            vec![
                attribute(
                    "Cryptographic Algorithm",
                    Value::Enumeration(cryptographic_algorithm::AES),
                ),
                attribute("Cryptographic Length", Value::Integer(256)),
                attribute(
                    "Cryptographic Usage Mask",
                    Value::Integer(usage_mask::ENCRYPT | usage_mask::DECRYPT),
                ),
                name_attribute(name),
            ],
        ),
    ]
}

/// AES-GCM parameters; `tag_len` None leaves Tag Length out.
fn gcm(tag_len: Option<i32>) -> Item {
    let mut fields = vec![
        Item::enumeration(tag::BLOCK_CIPHER_MODE, block_cipher_mode::GCM),
        Item::enumeration(tag::CRYPTOGRAPHIC_ALGORITHM, cryptographic_algorithm::AES),
    ];
    if let Some(n) = tag_len {
        fields.push(Item::integer(tag::TAG_LENGTH, n));
    }
    Item::structure(tag::CRYPTOGRAPHIC_PARAMETERS, fields)
}

fn encrypt(v: &Vars, key: &str, iv: Option<&[u8]>) -> Vec<Item> {
    let mut p = vec![
        uid(v, key),
        gcm(Some(16)),
        Item::bytes(tag::DATA, PLAINTEXT),
    ];
    if let Some(iv) = iv {
        p.push(Item::bytes(tag::IV_COUNTER_NONCE, iv));
    }
    p
}

/// Decrypt of the ciphertext in `ct` under `key`, with IV and tag as given.
fn decrypt(v: &Vars, key: &str, ct: &str, iv: &[u8], auth_tag: Option<Vec<u8>>) -> Vec<Item> {
    let mut p = vec![
        uid(v, key),
        gcm(Some(16)),
        Item::bytes(tag::DATA, bytes(v, ct)),
        Item::bytes(tag::IV_COUNTER_NONCE, iv),
    ];
    if let Some(t) = auth_tag {
        p.push(Item::bytes(tag::AUTHENTICATED_ENCRYPTION_TAG, t));
    }
    p
}

fn revoke(v: &Vars, key: &str) -> Vec<Item> {
    vec![
        uid(v, key),
        Item::structure(
            tag::REVOCATION_REASON,
            vec![Item::enumeration(
                tag::REVOCATION_REASON_CODE,
                revocation_reason_code::CESSATION_OF_OPERATION,
            )],
        ),
    ]
}

fn attr_names(v: &Vars, key: &str, names: &[&str]) -> Vec<Item> {
    let mut p = vec![uid(v, key)];
    p.extend(names.iter().map(|n| Item::text(tag::ATTRIBUTE_NAME, *n)));
    p
}

fn versions(list: &[ProtocolVersion]) -> Vec<Item> {
    list.iter().map(|v| v.to_item()).collect()
}

fn flipped(mut t: Vec<u8>) -> Vec<u8> {
    t[0] ^= 1;
    t
}

/// A documented, asserted difference: the case, the words of kms-sim's list of differences
/// it rests on (which must be found there), and each server's answer line.
struct Differs {
    case: &'static str,
    documented: &'static str,
    pykmip: &'static str,
    kms_sim: &'static str,
}

// Quotes from the list at the top of kms-sim/src/kmip/mod.rs.
const VERSIONS: &str = "Versions: 1.2–2.1 here; PyKMIP speaks 1.0–2.0.";
const OLD_VERSIONS: &str =
    "A request in 1.0, 1.1 or any version not listed gets one Invalid Message answer";
const UNPARSED_VERSION: &str = "PyKMIP cannot parse such a message and so answers in version 1.0";
const QUERY: &str = "Query Objects lists Symmetric Key; PyKMIP lists nothing. Query Operations \
                     lists only the operations served here.";
const VENDOR: &str = "Query Server Information names this server in Vendor Identification";
const MESSAGES: &str = "Result messages: the result reasons are PyKMIP's";
const ALL_ATTRIBUTES: &str = "Get Attributes reports Activation, Deactivation, Compromise and \
                              Destroy Dates once they are set; PyKMIP never reports them. Asked \
                              for every attribute, it leaves out PyKMIP's own Operation Policy Name";
const GCM_FAILURE: &str = "A GCM tag that does not verify, or CBC padding that does not strip, \
                           is Cryptographic Failure; in PyKMIP the library's exception escapes as \
                           General Failure.";
const OTHER_CN: &str = "Another CN's object answers Item Not Found";
const DEACTIVATED_DECRYPT: &str = "Decrypt works for a Deactivated key";
const DESTROYED: &str = "with a message saying it was destroyed";
const SHAPE: &str =
    "a field its version does not have, such as a GCM tag in 1.2) gets Invalid Field";
const UNKNOWN_OPERATION: &str =
    "An operation outside KMIP's enumeration answers Operation Not Supported per item";

/// Every case where the answers may differ, and exactly how. Any other difference, or a
/// change in one of these, fails the suite.
const DIFFERENCES: &[Differs] = &[
    Differs {
        case: "discover versions, no list",
        documented: VERSIONS,
        pykmip: "v1.4 | Discover Versions: Success Response Payload{Protocol Version 2.0, Protocol Version 1.4, Protocol Version 1.3, Protocol Version 1.2, Protocol Version 1.1, Protocol Version 1.0}",
        kms_sim: "v1.4 | Discover Versions: Success Response Payload{Protocol Version 2.1, Protocol Version 2.0, Protocol Version 1.4, Protocol Version 1.3, Protocol Version 1.2}",
    },
    Differs {
        case: "discover versions as the connector asks",
        documented: VERSIONS,
        pykmip: "v1.2 | Discover Versions: Success Response Payload{Protocol Version 2.0, Protocol Version 1.4, Protocol Version 1.3, Protocol Version 1.2}",
        kms_sim: "v1.2 | Discover Versions: Success Response Payload{Protocol Version 2.1, Protocol Version 2.0, Protocol Version 1.4, Protocol Version 1.3, Protocol Version 1.2}",
    },
    Differs {
        case: "query operations and objects",
        documented: QUERY,
        pykmip: "v1.4 | Query: Success Response Payload{Operation: Create, Operation: Create Key Pair, Operation: Register, Operation: 0x00000005, Operation: Locate, Operation: Get, Operation: Get Attributes, Operation: 0x0000000C, Operation: Activate, Operation: Revoke, Operation: Destroy, Operation: Query, Operation: Discover Versions, Operation: Encrypt, Operation: Decrypt, Operation: 0x00000021, Operation: 0x00000022, Operation: 0x00000023}",
        kms_sim: "v1.4 | Query: Success Response Payload{Operation: Create, Operation: Locate, Operation: Get, Operation: Get Attributes, Operation: Activate, Operation: Revoke, Operation: Destroy, Operation: Query, Operation: Discover Versions, Operation: Encrypt, Operation: Decrypt, Object Type: Symmetric Key}",
    },
    Differs {
        case: "query server information",
        documented: VENDOR,
        pykmip: "v1.4 | Query: Success Response Payload{Vendor Identification: \"PyKMIP 0.11.0 Software Server\"}",
        kms_sim: "v1.4 | Query: Success Response Payload{Vendor Identification: \"wekasim kms-sim KMIP server\"}",
    },
    Differs {
        case: "encrypt with a pre-active key",
        documented: MESSAGES,
        pykmip: "v1.4 | Encrypt: Operation Failed / Permission Denied \"The encryption key must be in the Active state to be used for encryption.\"",
        kms_sim: "v1.4 | Encrypt: Operation Failed / Permission Denied \"The encryption key 1 must be in the Active state to be used for encryption; it is Pre-Active\"",
    },
    Differs {
        case: "activate again",
        documented: MESSAGES,
        pykmip: "v1.4 | Activate: Operation Failed / Permission Denied \"The object state is not pre-active and cannot be activated.\"",
        kms_sim: "v1.4 | Activate: Operation Failed / Permission Denied \"Object 1 is Active, not Pre-Active, and cannot be activated\"",
    },
    Differs {
        case: "get attributes, all",
        documented: ALL_ATTRIBUTES,
        pykmip: "v1.4 | Get Attributes: Success Response Payload{Unique Identifier: \"1\", Attribute{Attribute Name: \"Unique Identifier\", Attribute Value: \"1\"}, Attribute{Attribute Name: \"Name\", Attribute Index: 0, Attribute Value{Name Value: \"conformance-k1\", Name Type: 0x1}}, Attribute{Attribute Name: \"Object Type\", Attribute Value: 0x2}, Attribute{Attribute Name: \"Cryptographic Algorithm\", Attribute Value: 0x3}, Attribute{Attribute Name: \"Cryptographic Length\", Attribute Value: 256}, Attribute{Attribute Name: \"Operation Policy Name\", Attribute Value: \"default\"}, Attribute{Attribute Name: \"Cryptographic Usage Mask\", Attribute Value: 12}, Attribute{Attribute Name: \"State\", Attribute Value: 0x2}, Attribute{Attribute Name: \"Initial Date\", Attribute Value: <date-time>}, Attribute{Attribute Name: \"Sensitive\", Attribute Value: false}}",
        kms_sim: "v1.4 | Get Attributes: Success Response Payload{Unique Identifier: \"1\", Attribute{Attribute Name: \"Unique Identifier\", Attribute Value: \"1\"}, Attribute{Attribute Name: \"Name\", Attribute Index: 0, Attribute Value{Name Value: \"conformance-k1\", Name Type: 0x1}}, Attribute{Attribute Name: \"Object Type\", Attribute Value: 0x2}, Attribute{Attribute Name: \"Cryptographic Algorithm\", Attribute Value: 0x3}, Attribute{Attribute Name: \"Cryptographic Length\", Attribute Value: 256}, Attribute{Attribute Name: \"Cryptographic Usage Mask\", Attribute Value: 12}, Attribute{Attribute Name: \"State\", Attribute Value: 0x2}, Attribute{Attribute Name: \"Initial Date\", Attribute Value: <date-time>}, Attribute{Attribute Name: \"Activation Date\", Attribute Value: <date-time>}}",
    },
    Differs {
        case: "decrypt in 1.2 with the tag",
        documented: SHAPE,
        pykmip: "v1.0 | -: Operation Failed / Invalid Message \"Error parsing request message. See server logs for more information.\"",
        kms_sim: "v1.2 | Decrypt: Operation Failed / Invalid Field \"Authenticated Encryption Tag is not a field of Decrypt in KMIP 1.2: it came in 1.4\"",
    },
    Differs {
        case: "decrypt in 1.2 without the tag",
        documented: MESSAGES,
        pykmip: "v1.2 | Decrypt: Operation Failed / Invalid Field \"Authenticated tag must be provided in GCM mode.\"",
        kms_sim: "v1.2 | Decrypt: Operation Failed / Invalid Field \"Authenticated Encryption Tag must be provided in GCM mode\"",
    },
    Differs {
        case: "encrypt without tag length",
        documented: MESSAGES,
        pykmip: "v1.4 | Encrypt: Operation Failed / Invalid Field \"Authenticated encryption tag length must be provided in GCM mode only.\"",
        kms_sim: "v1.4 | Encrypt: Operation Failed / Invalid Field \"Authenticated encryption tag length must be provided in GCM mode\"",
    },
    Differs {
        case: "decrypt without the tag",
        documented: MESSAGES,
        pykmip: "v1.4 | Decrypt: Operation Failed / Invalid Field \"Authenticated tag must be provided in GCM mode.\"",
        kms_sim: "v1.4 | Decrypt: Operation Failed / Invalid Field \"Authenticated Encryption Tag must be provided in GCM mode\"",
    },
    Differs {
        case: "decrypt with a wrong tag",
        documented: GCM_FAILURE,
        pykmip: "v1.4 | Decrypt: Operation Failed / General Failure \"Operation failed. See the server logs for more information.\"",
        kms_sim: "v1.4 | Decrypt: Operation Failed / Cryptographic Failure \"Object 1: the Authenticated Encryption Tag does not match: the data, IV or tag is not what this key encrypted\"",
    },
    Differs {
        case: "decrypt with a wrong IV",
        documented: GCM_FAILURE,
        pykmip: "v1.4 | Decrypt: Operation Failed / General Failure \"Operation failed. See the server logs for more information.\"",
        kms_sim: "v1.4 | Decrypt: Operation Failed / Cryptographic Failure \"Object 1: the Authenticated Encryption Tag does not match: the data, IV or tag is not what this key encrypted\"",
    },
    Differs {
        case: "other CN: get attributes",
        documented: OTHER_CN,
        pykmip: "v1.4 | Get Attributes: Operation Failed / Permission Denied \"Could not locate object: 1\"",
        kms_sim: "v1.4 | Get Attributes: Operation Failed / Item Not Found \"Could not locate object: 1\"",
    },
    Differs {
        case: "other CN: encrypt",
        documented: OTHER_CN,
        pykmip: "v1.4 | Encrypt: Operation Failed / Permission Denied \"Could not locate object: 1\"",
        kms_sim: "v1.4 | Encrypt: Operation Failed / Item Not Found \"Could not locate object: 1\"",
    },
    Differs {
        case: "other CN: decrypt",
        documented: OTHER_CN,
        pykmip: "v1.4 | Decrypt: Operation Failed / Permission Denied \"Could not locate object: 1\"",
        kms_sim: "v1.4 | Decrypt: Operation Failed / Item Not Found \"Could not locate object: 1\"",
    },
    Differs {
        case: "other CN: revoke",
        documented: OTHER_CN,
        pykmip: "v1.4 | Revoke: Operation Failed / Permission Denied \"Could not locate object: 1\"",
        kms_sim: "v1.4 | Revoke: Operation Failed / Item Not Found \"Could not locate object: 1\"",
    },
    Differs {
        case: "other CN: destroy",
        documented: OTHER_CN,
        pykmip: "v1.4 | Destroy: Operation Failed / Permission Denied \"Could not locate object: 1\"",
        kms_sim: "v1.4 | Destroy: Operation Failed / Item Not Found \"Could not locate object: 1\"",
    },
    Differs {
        case: "other CN: decrypt with its pre-active key",
        documented: MESSAGES,
        pykmip: "v1.4 | Decrypt: Operation Failed / Permission Denied \"The decryption key must be in the Active state to be used for decryption.\"",
        kms_sim: "v1.4 | Decrypt: Operation Failed / Permission Denied \"The decryption key 2 must be in the Active or Deactivated state to be used for decryption; it is Pre-Active\"",
    },
    Differs {
        case: "other CN: revoke its pre-active key",
        documented: MESSAGES,
        pykmip: "v1.4 | Revoke: Operation Failed / Illegal Operation \"The object is not active and cannot be revoked with reason other than KEY_COMPROMISE\"",
        kms_sim: "v1.4 | Revoke: Operation Failed / Illegal Operation \"Object 2 is Pre-Active, not Active, and can be revoked only for Key Compromise (reason given: Cessation of Operation)\"",
    },
    Differs {
        case: "destroy an active key",
        documented: MESSAGES,
        pykmip: "v1.4 | Destroy: Operation Failed / Permission Denied \"Object is active and cannot be destroyed.\"",
        kms_sim: "v1.4 | Destroy: Operation Failed / Permission Denied \"Object 1 is Active and cannot be destroyed: revoke it first\"",
    },
    Differs {
        case: "encrypt after revoke",
        documented: MESSAGES,
        pykmip: "v1.4 | Encrypt: Operation Failed / Permission Denied \"The encryption key must be in the Active state to be used for encryption.\"",
        kms_sim: "v1.4 | Encrypt: Operation Failed / Permission Denied \"The encryption key 1 must be in the Active state to be used for encryption; it is Deactivated\"",
    },
    Differs {
        case: "decrypt after revoke",
        documented: DEACTIVATED_DECRYPT,
        pykmip: "v1.4 | Decrypt: Operation Failed / Permission Denied \"The decryption key must be in the Active state to be used for decryption.\"",
        kms_sim: "v1.4 | Decrypt: Success Response Payload{Unique Identifier: \"1\", Data: <32 bytes>}",
    },
    Differs {
        case: "get attributes after destroy",
        documented: DESTROYED,
        pykmip: "v1.4 | Get Attributes: Operation Failed / Item Not Found \"Could not locate object: 1\"",
        kms_sim: "v1.4 | Get Attributes: Operation Failed / Item Not Found \"Could not locate object: 1: it was destroyed (state Destroyed)\"",
    },
    Differs {
        case: "destroy again",
        documented: DESTROYED,
        pykmip: "v1.4 | Destroy: Operation Failed / Item Not Found \"Could not locate object: 1\"",
        kms_sim: "v1.4 | Destroy: Operation Failed / Item Not Found \"Could not locate object: 1: it was destroyed (state Destroyed)\"",
    },
    Differs {
        case: "discover versions in 1.1",
        documented: OLD_VERSIONS,
        pykmip: "v1.1 | Discover Versions: Success Response Payload{Protocol Version 2.0, Protocol Version 1.4, Protocol Version 1.3, Protocol Version 1.2, Protocol Version 1.1, Protocol Version 1.0}",
        kms_sim: "v1.1 | -: Operation Failed / Invalid Message \"KMIP 1.1 is not supported by the server (it speaks 1.2, 1.3, 1.4, 2.0, 2.1)\"",
    },
    Differs {
        case: "query in 1.0",
        documented: OLD_VERSIONS,
        pykmip: "v1.0 | Query: Success Response Payload{}",
        kms_sim: "v1.0 | -: Operation Failed / Invalid Message \"KMIP 1.0 is not supported by the server (it speaks 1.2, 1.3, 1.4, 2.0, 2.1)\"",
    },
    Differs {
        case: "encrypt in 1.1",
        documented: OLD_VERSIONS,
        pykmip: "v1.1 | Encrypt: Operation Failed / Operation Not Supported \"Encrypt is not supported by KMIP 1.1\"",
        kms_sim: "v1.1 | -: Operation Failed / Invalid Message \"KMIP 1.1 is not supported by the server (it speaks 1.2, 1.3, 1.4, 2.0, 2.1)\"",
    },
    Differs {
        case: "discover versions in 2.1",
        documented: VERSIONS,
        pykmip: "v1.0 | -: Operation Failed / Invalid Message \"Error parsing request message. See server logs for more information.\"",
        kms_sim: "v2.1 | Discover Versions: Success Response Payload{Protocol Version 2.1, Protocol Version 2.0, Protocol Version 1.4, Protocol Version 1.3, Protocol Version 1.2}",
    },
    Differs {
        case: "discover versions in 3.0",
        documented: UNPARSED_VERSION,
        pykmip: "v1.0 | -: Operation Failed / Invalid Message \"Error parsing request message. See server logs for more information.\"",
        kms_sim: "v3.0 | -: Operation Failed / Invalid Message \"KMIP 3.0 is not supported by the server (it speaks 1.2, 1.3, 1.4, 2.0, 2.1)\"",
    },
    Differs {
        case: "unknown operation 0x99",
        documented: UNKNOWN_OPERATION,
        pykmip: "v1.0 | -: Operation Failed / Invalid Message \"Error parsing request message. See server logs for more information.\"",
        kms_sim: "v1.4 | 0x00000099: Operation Failed / Operation Not Supported \"The 0x00000099 operation is not supported by the server\"",
    },
    Differs {
        case: "still answering after those",
        documented: VERSIONS,
        pykmip: "v1.4 | Discover Versions: Success Response Payload{Protocol Version 2.0, Protocol Version 1.4, Protocol Version 1.3, Protocol Version 1.2, Protocol Version 1.1, Protocol Version 1.0}",
        kms_sim: "v1.4 | Discover Versions: Success Response Payload{Protocol Version 2.1, Protocol Version 2.0, Protocol Version 1.4, Protocol Version 1.3, Protocol Version 1.2}",
    },
];

/// The whole list, in order: later cases use what earlier ones created.
fn cases() -> Vec<Case> {
    use ProtocolVersion as V;
    let v1_2_to_2_0 = [V::V2_0, V::V1_4, V::V1_3, V::V1_2];
    vec![
        // ---- what the servers say about themselves
        case(
            "discover versions, no list",
            CLUSTER,
            op::DISCOVER_VERSIONS,
            |_| vec![],
        ),
        case(
            "discover versions 1.2..2.0",
            CLUSTER,
            op::DISCOVER_VERSIONS,
            move |_| versions(&v1_2_to_2_0),
        ),
        case_in(
            "discover versions 1.2..2.0, in 2.0",
            CLUSTER,
            V::V2_0,
            op::DISCOVER_VERSIONS,
            move |_| versions(&v1_2_to_2_0),
        ),
        case_in(
            "discover versions 1.2..2.0, in 1.2",
            CLUSTER,
            V::V1_2,
            op::DISCOVER_VERSIONS,
            move |_| versions(&v1_2_to_2_0),
        ),
        case_in(
            "discover versions as the connector asks",
            CLUSTER,
            V::V1_2,
            op::DISCOVER_VERSIONS,
            |_| versions(&[V::V2_1, V::V2_0, V::V1_4, V::V1_3, V::V1_2]),
        ),
        case(
            "discover versions 1.2 and 3.0",
            CLUSTER,
            op::DISCOVER_VERSIONS,
            |_| versions(&[V::V1_2, V::new(3, 0)]),
        ),
        case("query operations and objects", CLUSTER, op::QUERY, |_| {
            vec![
                Item::enumeration(tag::QUERY_FUNCTION, query_function::QUERY_OPERATIONS),
                Item::enumeration(tag::QUERY_FUNCTION, query_function::QUERY_OBJECTS),
            ]
        }),
        case("query server information", CLUSTER, op::QUERY, |_| {
            vec![Item::enumeration(
                tag::QUERY_FUNCTION,
                query_function::QUERY_SERVER_INFORMATION,
            )]
        }),
        // ---- a key's life
        case("create", CLUSTER, op::CREATE, |_| create_payload(NAME))
            .save("k1", tag::UNIQUE_IDENTIFIER),
        case("create for the other CN", OTHER, op::CREATE, |_| {
            create_payload(OTHER_NAME)
        })
        .save("k2", tag::UNIQUE_IDENTIFIER),
        case("state: pre-active", CLUSTER, op::GET_ATTRIBUTES, |v| {
            attr_names(v, "k1", &["State"])
        }),
        case("encrypt with a pre-active key", CLUSTER, op::ENCRYPT, |v| {
            encrypt(v, "k1", Some(&IV))
        }),
        case("activate", CLUSTER, op::ACTIVATE, |v| vec![uid(v, "k1")]),
        case("activate again", CLUSTER, op::ACTIVATE, |v| {
            vec![uid(v, "k1")]
        }),
        case("state: active", CLUSTER, op::GET_ATTRIBUTES, |v| {
            attr_names(v, "k1", &["State"])
        }),
        case("get attributes by name", CLUSTER, op::GET_ATTRIBUTES, |v| {
            attr_names(
                v,
                "k1",
                &[
                    "Cryptographic Algorithm",
                    "Cryptographic Length",
                    "Cryptographic Usage Mask",
                    "Name",
                    "Object Type",
                    "State",
                ],
            )
        }),
        case("get attributes, all", CLUSTER, op::GET_ATTRIBUTES, |v| {
            vec![uid(v, "k1")]
        }),
        case("get", CLUSTER, op::GET, |v| vec![uid(v, "k1")]),
        case("get, raw format", CLUSTER, op::GET, |v| {
            vec![
                uid(v, "k1"),
                Item::enumeration(tag::KEY_FORMAT_TYPE, key_format_type::RAW),
            ]
        }),
        case("locate by name", CLUSTER, op::LOCATE, |_| {
            vec![name_attribute(NAME)]
        }),
        case("locate by a name nobody has", CLUSTER, op::LOCATE, |_| {
            vec![name_attribute("conformance-nobody")]
        }),
        // ---- AES-256-GCM, 12-byte IV, 16-byte tag
        case("encrypt", CLUSTER, op::ENCRYPT, |v| {
            encrypt(v, "k1", Some(&IV))
        })
        .save("ct", tag::DATA)
        .save("tag", tag::AUTHENTICATED_ENCRYPTION_TAG),
        case("decrypt", CLUSTER, op::DECRYPT, |v| {
            decrypt(v, "k1", "ct", &IV, Some(bytes(v, "tag")))
        })
        .decrypts_to(PLAINTEXT),
        case_in("encrypt in 2.0", CLUSTER, V::V2_0, op::ENCRYPT, |v| {
            encrypt(v, "k1", Some(&IV))
        })
        .save("ct20", tag::DATA)
        .save("tag20", tag::AUTHENTICATED_ENCRYPTION_TAG),
        case_in("decrypt in 2.0", CLUSTER, V::V2_0, op::DECRYPT, |v| {
            decrypt(v, "k1", "ct20", &IV, Some(bytes(v, "tag20")))
        })
        .decrypts_to(PLAINTEXT),
        // Without an IV both make a 16-byte one (AES's block) and send it back.
        case("encrypt without an IV", CLUSTER, op::ENCRYPT, |v| {
            encrypt(v, "k1", None)
        }),
        case_in("encrypt in 1.2", CLUSTER, V::V1_2, op::ENCRYPT, |v| {
            encrypt(v, "k1", Some(&IV))
        }),
        case_in(
            "decrypt in 1.2 with the tag",
            CLUSTER,
            V::V1_2,
            op::DECRYPT,
            |v| decrypt(v, "k1", "ct", &IV, Some(bytes(v, "tag"))),
        ),
        case_in(
            "decrypt in 1.2 without the tag",
            CLUSTER,
            V::V1_2,
            op::DECRYPT,
            |v| decrypt(v, "k1", "ct", &IV, None),
        ),
        case("encrypt without tag length", CLUSTER, op::ENCRYPT, |v| {
            vec![
                uid(v, "k1"),
                gcm(None),
                Item::bytes(tag::DATA, PLAINTEXT),
                Item::bytes(tag::IV_COUNTER_NONCE, IV),
            ]
        }),
        case("decrypt without the tag", CLUSTER, op::DECRYPT, |v| {
            decrypt(v, "k1", "ct", &IV, None)
        }),
        case("decrypt with a wrong tag", CLUSTER, op::DECRYPT, |v| {
            decrypt(v, "k1", "ct", &IV, Some(flipped(bytes(v, "tag"))))
        }),
        // PyKMIP checks only the tag bytes sent (min_tag_length = their length); kms-sim
        // copies it: a 12-byte prefix of the right tag decrypts on both.
        case(
            "decrypt with the tag cut to 12 bytes",
            CLUSTER,
            op::DECRYPT,
            |v| decrypt(v, "k1", "ct", &IV, Some(bytes(v, "tag")[..12].to_vec())),
        ),
        case("decrypt with a wrong IV", CLUSTER, op::DECRYPT, |v| {
            decrypt(v, "k1", "ct", &[0x5B; 12], Some(bytes(v, "tag")))
        }),
        // ---- another CN's object, unknown UIDs
        case("other CN: get attributes", OTHER, op::GET_ATTRIBUTES, |v| {
            attr_names(v, "k1", &["State"])
        }),
        case("other CN: encrypt", OTHER, op::ENCRYPT, |v| {
            encrypt(v, "k1", Some(&IV))
        }),
        case("other CN: decrypt", OTHER, op::DECRYPT, |v| {
            decrypt(v, "k1", "ct", &IV, Some(bytes(v, "tag")))
        }),
        case("other CN: revoke", OTHER, op::REVOKE, |v| revoke(v, "k1")),
        case("other CN: destroy", OTHER, op::DESTROY, |v| {
            vec![uid(v, "k1")]
        }),
        case(
            "other CN: decrypt with its pre-active key",
            OTHER,
            op::DECRYPT,
            |v| decrypt(v, "k2", "ct", &IV, Some(bytes(v, "tag"))),
        ),
        case(
            "other CN: revoke its pre-active key",
            OTHER,
            op::REVOKE,
            |v| revoke(v, "k2"),
        ),
        case("other CN: locate by name", OTHER, op::LOCATE, |_| {
            vec![name_attribute(NAME)]
        }),
        case("other CN: locate its own", OTHER, op::LOCATE, |_| {
            vec![name_attribute(OTHER_NAME)]
        }),
        case("unknown UID: encrypt", CLUSTER, op::ENCRYPT, |_| {
            vec![
                Item::text(tag::UNIQUE_IDENTIFIER, "999"),
                gcm(Some(16)),
                Item::bytes(tag::DATA, PLAINTEXT),
            ]
        }),
        case(
            "unknown UID: get attributes",
            CLUSTER,
            op::GET_ATTRIBUTES,
            |_| vec![Item::text(tag::UNIQUE_IDENTIFIER, "999")],
        ),
        case("unknown UID: activate", CLUSTER, op::ACTIVATE, |_| {
            vec![Item::text(tag::UNIQUE_IDENTIFIER, "999")]
        }),
        case("unknown UID: destroy", CLUSTER, op::DESTROY, |_| {
            vec![Item::text(tag::UNIQUE_IDENTIFIER, "999")]
        }),
        // ---- revoke and destroy
        case("destroy an active key", CLUSTER, op::DESTROY, |v| {
            vec![uid(v, "k1")]
        }),
        case("revoke", CLUSTER, op::REVOKE, |v| revoke(v, "k1")),
        case("state: deactivated", CLUSTER, op::GET_ATTRIBUTES, |v| {
            attr_names(v, "k1", &["State"])
        }),
        case("encrypt after revoke", CLUSTER, op::ENCRYPT, |v| {
            encrypt(v, "k1", Some(&IV))
        }),
        case("decrypt after revoke", CLUSTER, op::DECRYPT, |v| {
            decrypt(v, "k1", "ct", &IV, Some(bytes(v, "tag")))
        }),
        case("destroy", CLUSTER, op::DESTROY, |v| vec![uid(v, "k1")]),
        case(
            "get attributes after destroy",
            CLUSTER,
            op::GET_ATTRIBUTES,
            |v| attr_names(v, "k1", &["State"]),
        ),
        case("destroy again", CLUSTER, op::DESTROY, |v| {
            vec![uid(v, "k1")]
        }),
        case("locate after destroy", CLUSTER, op::LOCATE, |_| {
            vec![name_attribute(NAME)]
        }),
        // ---- versions and operations one of them does not know
        case_in(
            "discover versions in 1.1",
            CLUSTER,
            V::V1_1,
            op::DISCOVER_VERSIONS,
            |_| vec![],
        ),
        case_in("query in 1.0", CLUSTER, V::V1_0, op::QUERY, |_| {
            vec![Item::enumeration(
                tag::QUERY_FUNCTION,
                query_function::QUERY_OBJECTS,
            )]
        }),
        case_in("encrypt in 1.1", CLUSTER, V::V1_1, op::ENCRYPT, |v| {
            encrypt(v, "k2", Some(&IV))
        }),
        case_in(
            "discover versions in 2.1",
            CLUSTER,
            V::V2_1,
            op::DISCOVER_VERSIONS,
            |_| vec![],
        ),
        case_in(
            "discover versions in 3.0",
            CLUSTER,
            V::new(3, 0),
            op::DISCOVER_VERSIONS,
            |_| vec![],
        ),
        case("unknown operation 0x99", CLUSTER, 0x99, |_| vec![]),
        case(
            "still answering after those",
            CLUSTER,
            op::DISCOVER_VERSIONS,
            |_| vec![],
        ),
    ]
}

/// One value as the comparison sees it: byte strings by length (keys and ciphertexts
/// differ between servers), date-times as a mark (so do their clocks), the rest exactly.
fn render(item: &Item, out: &mut String) {
    out.push_str(&tag::name(item.tag));
    match &item.value {
        Value::Structure(_) if item.tag == tag::PROTOCOL_VERSION => {
            match ProtocolVersion::from_item(item) {
                Ok(v) => out.push_str(&format!(" {v}")),
                Err(e) => out.push_str(&format!(": {e}")),
            }
        }
        Value::Structure(items) => {
            out.push('{');
            for (i, it) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                render(it, out);
            }
            out.push('}');
        }
        Value::ByteString(b) => out.push_str(&format!(": <{} bytes>", b.len())),
        Value::DateTime(_) | Value::DateTimeExtended(_) => out.push_str(": <date-time>"),
        Value::Enumeration(e) => out.push_str(&format!(": {}", enum_name(item.tag, *e))),
        Value::TextString(s) => out.push_str(&format!(": {s:?}")),
        other => out.push_str(&format!(": {other:?}")),
    }
}

fn enum_name(t: u32, e: u32) -> String {
    match t {
        tag::OPERATION => op::name(e),
        tag::OBJECT_TYPE => object_type::name(e),
        tag::STATE => ttlv::enums::state::name(e),
        tag::CRYPTOGRAPHIC_ALGORITHM => cryptographic_algorithm::name(e),
        _ => format!("0x{e:X}"),
    }
}

/// The answer as one line: version, then per item operation, status, reason, message and
/// payload.
fn summary(r: &Result<ResponseMessage, KmipError>) -> String {
    let m = match r {
        Ok(m) => m,
        // The transport's own words differ per server; that it failed is what counts.
        Err(KmipError::Transport { .. }) => return "no answer".into(),
        Err(e) => return format!("unreadable answer: {e}"),
    };
    let mut out = format!("v{}", m.version);
    for b in &m.batch {
        out.push_str(" | ");
        out.push_str(&b.operation.map_or("-".into(), op::name));
        if let Some(id) = &b.id {
            out.push_str(&format!(" id <{} bytes>", id.len()));
        }
        match &b.result {
            Ok(payload) => {
                out.push_str(": Success ");
                match payload {
                    Some(p) => render(p, &mut out),
                    None => out.push_str("(no payload)"),
                }
            }
            Err(f) => {
                out.push_str(&format!(": {}", result_status::name(f.status)));
                if let Some(reason) = f.reason {
                    out.push_str(&format!(" / {}", result_reason::name(reason)));
                }
                if let Some(msg) = &f.message {
                    out.push_str(&format!(" {msg:?}"));
                }
            }
        }
    }
    out
}

/// The first item's payload field `t`, as bytes (a text field by its UTF-8).
fn field(r: &Result<ResponseMessage, KmipError>, t: u32) -> Option<Vec<u8>> {
    let payload = r
        .as_ref()
        .ok()?
        .batch
        .first()?
        .result
        .as_ref()
        .ok()?
        .as_ref()?;
    let item = payload.find(t)?;
    match &item.value {
        Value::ByteString(b) => Some(b.clone()),
        Value::TextString(s) => Some(s.clone().into_bytes()),
        _ => None,
    }
}

/// One server under comparison: a connection per client CN.
struct Target {
    label: &'static str,
    addr: std::net::SocketAddr,
    pki: LivePki,
    conns: BTreeMap<&'static str, KmipAdmin<BoxStream>>,
    vars: Vars,
}

impl Target {
    fn new(label: &'static str, addr: std::net::SocketAddr, pki: LivePki) -> Target {
        Target {
            label,
            addr,
            pki,
            conns: BTreeMap::new(),
            vars: Vars::new(),
        }
    }

    async fn send(
        &mut self,
        cn: &'static str,
        request: &RequestMessage,
    ) -> Result<ResponseMessage, KmipError> {
        if !self.conns.contains_key(cn) {
            let id = &self.pki.clients[cn];
            let tls = connect_tls(
                self.addr,
                "127.0.0.1",
                &self.pki.ca_pem,
                &id.cert_pem,
                &id.key_pem,
            )
            .await
            .unwrap_or_else(|e| panic!("{}: {cn} cannot connect: {e}", self.label));
            self.conns
                .insert(cn, KmipAdmin::new(Box::new(tls) as BoxStream));
        }
        let conn = self.conns.get_mut(cn).expect("connected above");
        let answer = conn.exchange(request).await;
        if answer.is_err() {
            // The next case gets a fresh connection.
            self.conns.remove(cn);
        }
        answer
    }
}

fn pykmip_bin() -> PathBuf {
    let bin = Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/pykmip-server");
    assert!(
        bin.is_file(),
        "{} is missing: the KMIP conformance test needs a real PyKMIP 0.11.0. Run \
         `bash tests/run.sh` once (it installs it into .venv/).",
        bin.display()
    );
    bin
}

/// kms-sim's KMIP server on a real loopback port with PyKMIP's certificates, one task per
/// accepted connection, served as the `kms-sim kmip` binary serves it.
async fn start_sim(pki: &LivePki) -> (KmipSim, std::net::SocketAddr) {
    let kmip = KmipSim::new(7, fixed_clock(1_700_000_000));
    let tls = kms_sim::tls::server_config(
        Arc::new(rustls::crypto::ring::default_provider()),
        Arc::new(rustls::time_provider::DefaultTimeProvider),
        &pki.ca_pem,
        &pki.server.cert_pem,
        pki.server.key_pem.expose(),
    )
    .expect("kms-sim's TLS from PyKMIP's certificates");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let served = kmip.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let (kmip, tls) = (served.clone(), tls.clone());
            tokio::spawn(async move {
                let _ = kms_sim::tls::serve_kmip(kmip, tls, stream).await;
            });
        }
    });
    (kmip, addr)
}

/// `s` with runs of whitespace and `//! ` line starts folded, to find a quote in a doc comment.
fn folded(s: &str) -> String {
    s.replace("//!", " ")
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

#[tokio::test]
async fn kms_sim_kmip_matches_pykmip() {
    let started = tokio::time::Instant::now();
    let pykmip = PyKmip::start(&pykmip_bin(), &[CLUSTER, OTHER])
        .await
        .unwrap_or_else(|e| panic!("cannot start PyKMIP: {e}"));
    let pki = pykmip.pki().clone();
    let (sim, sim_addr) = start_sim(&pki).await;
    let mut real = Target::new("pykmip", pykmip.addr(), pki.clone());
    let mut simulated = Target::new("kms-sim", sim_addr, pki);
    let documented = folded(DOCUMENTED);

    let cases = cases();
    let mut failures = Vec::new();
    for d in DIFFERENCES {
        if !cases.iter().any(|c| c.name == d.case) {
            failures.push(format!("the difference for {:?} names no case", d.case));
        }
    }
    let mut exceptions = 0;
    for case in &cases {
        let r = real.send(case.cn, &(case.build)(&real.vars)).await;
        let s = simulated
            .send(case.cn, &(case.build)(&simulated.vars))
            .await;
        let (rl, sl) = (summary(&r), summary(&s));
        let mut problems = Vec::new();
        let differs = DIFFERENCES.iter().find(|d| d.case == case.name);
        match differs {
            None => {
                if rl != sl {
                    problems.push("the answers differ".to_string());
                }
            }
            Some(d) => {
                exceptions += 1;
                if !documented.contains(&folded(d.documented)) {
                    problems.push(format!(
                        "the difference is not in kms-sim/src/kmip/mod.rs's list: {:?}",
                        d.documented
                    ));
                }
                if rl != d.pykmip {
                    problems.push(format!(
                        "pykmip's answer is not the documented {:?}",
                        d.pykmip
                    ));
                }
                if sl != d.kms_sim {
                    problems.push(format!(
                        "kms-sim's answer is not the documented {:?}",
                        d.kms_sim
                    ));
                }
            }
        }
        if let Some(want) = case.plaintext {
            for (label, a) in [("pykmip", &r), ("kms-sim", &s)] {
                if field(a, tag::DATA).as_deref() != Some(want) {
                    problems.push(format!("{label} did not decrypt to the plaintext"));
                }
            }
        }
        for (var, t) in &case.save {
            for (target, a) in [(&mut real, &r), (&mut simulated, &s)] {
                match field(a, *t) {
                    Some(v) => {
                        target.vars.insert(var, v);
                    }
                    None => problems.push(format!(
                        "{}: no {} to save as {var}",
                        target.label,
                        tag::name(*t)
                    )),
                }
            }
        }
        let verdict = match (differs, problems.is_empty()) {
            (_, false) => "DIFF",
            (Some(_), true) => "EXCEPTION (documented)",
            (None, true) => "same",
        };
        eprintln!("{:<48} {verdict}", case.name);
        if !problems.is_empty() || differs.is_some() {
            eprintln!("    pykmip:  {rl}");
            eprintln!("    kms-sim: {sl}");
        }
        for p in &problems {
            eprintln!("    {p}");
        }
        if !problems.is_empty() {
            failures.push(format!("{}: {}", case.name, problems.join("; ")));
        }
    }
    // The sim's own record agrees with what it answered.
    assert_eq!(sim.objects(CLUSTER).len(), 1, "kms-sim's cluster objects");
    eprintln!(
        "{} cases compared ({} documented differences), {} differ; {:.1}s",
        cases.len(),
        exceptions,
        failures.len(),
        started.elapsed().as_secs_f64()
    );
    drop(pykmip);
    assert!(
        failures.is_empty(),
        "kms-sim differs from PyKMIP in {} cases:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
