//! The KMIP connector against a small KMIP server written here: TTLV over an in-memory
//! duplex stream, Discover Versions, and AES-256-GCM Encrypt and Decrypt by key UID, with
//! a hook to spoil its answers.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use aes_gcm::aead::{Aead, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce};
use tokio::io::{AsyncWriteExt, DuplexStream};
use ttlv::enums::result_reason;
use ttlv::{ResponseItem, ResultFailure};

use super::*;
use crate::secret::Secret;

/// What the server sends back: its answer (perhaps spoiled), or raw bytes then a hang-up.
enum Reply {
    Message(ResponseMessage),
    Bytes(Vec<u8>),
}

type Tamper = Arc<dyn Fn(&RequestMessage, ResponseMessage) -> Reply + Send + Sync>;

#[derive(Clone)]
struct FakeKms {
    /// The versions it speaks, best first.
    versions: Vec<ProtocolVersion>,
    keys: BTreeMap<String, [u8; 32]>,
    /// Every request message it read, in order.
    seen: Arc<Mutex<Vec<RequestMessage>>>,
    tamper: Tamper,
}

impl FakeKms {
    /// Speaks what PyKMIP 0.11 does (1.0 to 2.0), with keys "1" and "2".
    fn new() -> Self {
        FakeKms {
            versions: vec![
                ProtocolVersion::V2_0,
                ProtocolVersion::V1_4,
                ProtocolVersion::V1_3,
                ProtocolVersion::V1_2,
                ProtocolVersion::V1_1,
                ProtocolVersion::V1_0,
            ],
            keys: [("1".to_string(), [0x11; 32]), ("2".to_string(), [0x22; 32])]
                .into_iter()
                .collect(),
            seen: Arc::new(Mutex::new(Vec::new())),
            tamper: Arc::new(|_, response| Reply::Message(response)),
        }
    }

    fn with_versions(mut self, versions: &[ProtocolVersion]) -> Self {
        self.versions = versions.to_vec();
        self
    }

    fn with_tamper(
        mut self,
        tamper: impl Fn(&RequestMessage, ResponseMessage) -> Reply + Send + Sync + 'static,
    ) -> Self {
        self.tamper = Arc::new(tamper);
        self
    }

    fn transport(&self) -> KmipTransport {
        let server = self.clone();
        Arc::new(move || {
            let server = server.clone();
            Box::pin(async move {
                let (client, remote) = tokio::io::duplex(1 << 16);
                tokio::spawn(server.serve(remote));
                Ok(Box::new(client) as BoxStream)
            })
        })
    }

    fn seen(&self) -> Vec<RequestMessage> {
        self.seen.lock().unwrap().clone()
    }

    /// The request messages of one operation.
    fn seen_op(&self, op: u32) -> Vec<RequestMessage> {
        self.seen()
            .into_iter()
            .filter(|r| r.batch.iter().all(|b| b.operation == op))
            .collect()
    }

    async fn serve(self, mut stream: DuplexStream) {
        while let Ok(Some(frame)) = ttlv::read_frame(&mut stream, Limits::default()).await {
            let item = ttlv::decode(&frame, Limits::default()).expect("the client sends TTLV");
            let request = RequestMessage::from_item(&item).expect("the client sends requests");
            self.seen.lock().unwrap().push(request.clone());
            let response = ResponseMessage {
                version: request.version,
                time_stamp: 0,
                batch: request
                    .batch
                    .iter()
                    .map(|b| ResponseItem {
                        operation: Some(b.operation),
                        id: b.id.clone(),
                        result: self.run(b),
                    })
                    .collect(),
            };
            match (self.tamper)(&request, response) {
                Reply::Message(m) => {
                    if stream.write_all(&m.encode()).await.is_err() {
                        return;
                    }
                }
                Reply::Bytes(b) => {
                    let _ = stream.write_all(&b).await;
                    return;
                }
            }
        }
    }

    fn run(&self, b: &BatchItem) -> Result<Option<Item>, ResultFailure> {
        let payload = |items| Ok(Some(Item::structure(tag::RESPONSE_PAYLOAD, items)));
        match b.operation {
            operation::DISCOVER_VERSIONS => {
                let asked: Vec<ProtocolVersion> = b
                    .payload
                    .all(tag::PROTOCOL_VERSION)
                    .map(|v| ProtocolVersion::from_item(v).unwrap())
                    .collect();
                payload(
                    self.versions
                        .iter()
                        .filter(|v| asked.is_empty() || asked.contains(v))
                        .map(|v| v.to_item())
                        .collect(),
                )
            }
            operation::ENCRYPT | operation::DECRYPT => {
                self.crypt(b).map(|items| payload(items).unwrap())
            }
            other => Err(ResultFailure::new(
                result_reason::OPERATION_NOT_SUPPORTED,
                format!("operation {} is not supported", operation::name(other)),
            )),
        }
    }

    fn crypt(&self, b: &BatchItem) -> Result<Vec<Item>, ResultFailure> {
        let invalid =
            |e: ttlv::ItemError| ResultFailure::new(result_reason::INVALID_FIELD, e.to_string());
        let p = &b.payload;
        let uid = p
            .get(tag::UNIQUE_IDENTIFIER)
            .and_then(Item::as_text)
            .map_err(invalid)?;
        let key = self.keys.get(&uid).ok_or_else(|| {
            ResultFailure::new(
                result_reason::ITEM_NOT_FOUND,
                format!("Could not locate object: {uid}"),
            )
        })?;
        let params = p.get(tag::CRYPTOGRAPHIC_PARAMETERS).map_err(invalid)?;
        let mode = params
            .get(tag::BLOCK_CIPHER_MODE)
            .and_then(Item::as_enum)
            .map_err(invalid)?;
        let algorithm = params
            .get(tag::CRYPTOGRAPHIC_ALGORITHM)
            .and_then(Item::as_enum)
            .map_err(invalid)?;
        let tag_len = params
            .get(tag::TAG_LENGTH)
            .and_then(Item::as_integer)
            .map_err(|_| {
                ResultFailure::new(
                    result_reason::INVALID_FIELD,
                    "Authenticated encryption tag length must be provided.",
                )
            })?;
        assert_eq!(
            (mode, algorithm, tag_len),
            (block_cipher_mode::GCM, cryptographic_algorithm::AES, 16)
        );
        let data = p.get(tag::DATA).and_then(Item::as_bytes).map_err(invalid)?;
        let iv = p
            .get(tag::IV_COUNTER_NONCE)
            .and_then(Item::as_bytes)
            .map_err(invalid)?;
        assert_eq!(iv.len(), 12, "the connector always sends a 12-byte IV");
        let cipher = Aes256Gcm::new_from_slice(key).unwrap();
        let uid_item = Item::text(tag::UNIQUE_IDENTIFIER, uid);
        if b.operation == operation::ENCRYPT {
            let mut sealed = cipher
                .encrypt(Nonce::from_slice(&iv), data.as_slice())
                .unwrap();
            let gcm_tag = sealed.split_off(sealed.len() - 16);
            Ok(vec![
                uid_item,
                Item::bytes(tag::DATA, sealed),
                Item::bytes(tag::AUTHENTICATED_ENCRYPTION_TAG, gcm_tag),
            ])
        } else {
            let mut sealed = data;
            sealed.extend(
                p.get(tag::AUTHENTICATED_ENCRYPTION_TAG)
                    .and_then(Item::as_bytes)
                    .map_err(invalid)?,
            );
            let plain = cipher
                .decrypt(Nonce::from_slice(&iv), sealed.as_slice())
                .map_err(|_| {
                    ResultFailure::new(
                        result_reason::CRYPTOGRAPHIC_FAILURE,
                        "Decryption failed: bad tag",
                    )
                })?;
            Ok(vec![uid_item, Item::bytes(tag::DATA, plain)])
        }
    }
}

/// Applies `edit` to the items of every successful payload of the answer.
fn edit_payloads(mut response: ResponseMessage, edit: impl Fn(&mut Vec<Item>)) -> ResponseMessage {
    for item in &mut response.batch {
        if let Ok(Some(Item {
            value: Value::Structure(items),
            ..
        })) = &mut item.result
        {
            edit(items);
        }
    }
    response
}

fn is_op(request: &RequestMessage, op: u32) -> bool {
    request.batch.first().map(|b| b.operation) == Some(op)
}

fn config(uid: &str) -> KmipConfig {
    KmipConfig {
        address: "kms:5696".into(),
        key_uid: uid.into(),
        client_cert_pem: "-----BEGIN CERTIFICATE-----\nY2VydA==\n-----END CERTIFICATE-----\n"
            .into(),
        client_key_pem: Secret::new(
            "-----BEGIN PRIVATE KEY-----\nc2VjcmV0\n-----END PRIVATE KEY-----\n",
        ),
        ca_cert_pem: None,
    }
}

/// A counter, not random: runs repeat, and IVs still never repeat.
fn counter() -> KmipRandom {
    let next = Arc::new(AtomicU64::new(1));
    Arc::new(move |buf: &mut [u8]| {
        for chunk in buf.chunks_mut(8) {
            let n = next.fetch_add(1, Ordering::SeqCst).to_be_bytes();
            chunk.copy_from_slice(&n[..chunk.len()]);
        }
    })
}

fn connector(server: &FakeKms, uid: &str) -> KmipConnector {
    KmipConnector::new(config(uid), server.transport(), counter())
}

fn dek(n: u8) -> Dek {
    Dek::from_bytes(&[n; 32]).unwrap()
}

fn malformed(result: Result<impl std::fmt::Debug, KmsError>) -> String {
    match result {
        Err(KmsError::Malformed(why)) => why,
        other => panic!("expected Malformed, got {other:?}"),
    }
}

#[tokio::test]
async fn wrap_unwrap_round_trip() {
    let server = FakeKms::new();
    let kms = connector(&server, "1");
    let wrapped = kms.wrap(&[dek(7)]).await.unwrap();
    assert_eq!(wrapped.len(), 1);
    assert_eq!(wrapped[0].key_version, 0);
    let blob = wrapped[0]
        .ciphertext
        .strip_prefix("kmip:1:")
        .expect("names key 1");
    assert_eq!(B64.decode(blob).unwrap().len(), 12 + 32 + 16);
    assert_eq!(wrapping_key(&wrapped[0].ciphertext), Some("1"));
    // Not the DEK in the clear, and the server's key opens it.
    assert!(!B64.decode(blob).unwrap().windows(32).any(|w| w == [7; 32]));
    assert_eq!(kms.unwrap(&wrapped).await.unwrap(), vec![dek(7)]);
    // A second wrap of the same DEK uses a fresh IV.
    let again = kms.wrap(&[dek(7)]).await.unwrap();
    assert_ne!(again, wrapped);
}

#[tokio::test]
async fn a_batch_of_three_is_one_message() {
    let server = FakeKms::new();
    let kms = connector(&server, "1");
    let deks = [dek(1), dek(2), dek(3)];
    let wrapped = kms.wrap(&deks).await.unwrap();
    let encrypts = server.seen_op(operation::ENCRYPT);
    assert_eq!(encrypts.len(), 1, "one request message");
    assert_eq!(encrypts[0].batch.len(), 3);
    let ids: std::collections::BTreeSet<_> = encrypts[0]
        .batch
        .iter()
        .map(|b| b.id.clone().unwrap())
        .collect();
    assert_eq!(ids.len(), 3, "unique batch item IDs");
    assert_eq!(kms.unwrap(&wrapped).await.unwrap(), deks.to_vec());
    let decrypts = server.seen_op(operation::DECRYPT);
    assert_eq!(decrypts.len(), 1);
    assert_eq!(decrypts[0].batch.len(), 3);
}

#[tokio::test]
async fn answers_in_another_order_are_matched_by_id() {
    let server = FakeKms::new().with_tamper(|_, mut response| {
        response.batch.reverse();
        Reply::Message(response)
    });
    let kms = connector(&server, "1");
    let deks = [dek(1), dek(2), dek(3)];
    let wrapped = kms.wrap(&deks).await.unwrap();
    assert_eq!(kms.unwrap(&wrapped).await.unwrap(), deks.to_vec());
}

#[tokio::test]
async fn negotiates_once_the_highest_common_version() {
    let server = FakeKms::new();
    let kms = connector(&server, "1");
    kms.wrap(&[dek(1)]).await.unwrap();
    kms.wrap(&[dek(2)]).await.unwrap();
    let discovers = server.seen_op(operation::DISCOVER_VERSIONS);
    assert_eq!(discovers.len(), 1, "negotiated once per connector");
    assert_eq!(discovers[0].version, ProtocolVersion::V1_2);
    let listed: Vec<_> = discovers[0].batch[0]
        .payload
        .all(tag::PROTOCOL_VERSION)
        .map(|v| ProtocolVersion::from_item(v).unwrap())
        .collect();
    assert_eq!(listed, OFFERED.to_vec());
    // PyKMIP's range tops out at 2.0.
    assert_eq!(kms.negotiated(), Some(ProtocolVersion::V2_0));
    for request in server.seen_op(operation::ENCRYPT) {
        assert_eq!(request.version, ProtocolVersion::V2_0);
    }

    let older = FakeKms::new().with_versions(&[
        ProtocolVersion::V1_4,
        ProtocolVersion::V1_3,
        ProtocolVersion::V1_2,
        ProtocolVersion::V1_1,
    ]);
    let kms = connector(&older, "1");
    kms.probe().await.unwrap();
    assert_eq!(kms.negotiated(), Some(ProtocolVersion::V1_4));
    assert!(older
        .seen_op(operation::ENCRYPT)
        .iter()
        .all(|r| r.version == ProtocolVersion::V1_4));
}

#[tokio::test]
async fn a_server_of_only_1_0_and_1_1_is_refused() {
    let server = FakeKms::new().with_versions(&[ProtocolVersion::V1_1, ProtocolVersion::V1_0]);
    let kms = connector(&server, "1");
    let err = kms.wrap(&[dek(1)]).await.unwrap_err();
    let KmsError::Unsupported(why) = &err else {
        panic!("expected Unsupported, got {err:?}");
    };
    assert!(why.contains("1.1, 1.0"), "{why}");
    assert!(server.seen_op(operation::ENCRYPT).is_empty());
    assert_eq!(kms.negotiated(), None);

    // One that ignores our list and names its own versions is refused the same way.
    let careless = FakeKms::new()
        .with_versions(&[ProtocolVersion::V1_1, ProtocolVersion::V1_0])
        .with_tamper(|request, response| {
            if is_op(request, operation::DISCOVER_VERSIONS) {
                return Reply::Message(edit_payloads(response, |items| {
                    *items = vec![
                        ProtocolVersion::V1_1.to_item(),
                        ProtocolVersion::V1_0.to_item(),
                    ]
                }));
            }
            Reply::Message(response)
        });
    let err = connector(&careless, "1").probe().await.unwrap_err();
    assert!(err.to_string().contains("only 1.1, 1.0"), "{err}");
}

#[tokio::test]
async fn a_failure_result_names_operation_reason_and_message() {
    let server = FakeKms::new().with_tamper(|request, mut response| {
        if is_op(request, operation::ENCRYPT) {
            for item in &mut response.batch {
                item.result = Err(ResultFailure::new(
                    result_reason::PERMISSION_DENIED,
                    "The encryption key must be in the Active state to be used for encryption.",
                ));
            }
        }
        Reply::Message(response)
    });
    let err = connector(&server, "1")
        .wrap(&[dek(1), dek(2)])
        .await
        .unwrap_err();
    assert_eq!(
        err,
        KmsError::KmipFailure {
            operation: "Encrypt".into(),
            reason: "Permission Denied".into(),
            message: "The encryption key must be in the Active state to be used for encryption."
                .into(),
        }
    );
    let text = err.to_string();
    assert!(
        text.contains("Encrypt")
            && text.contains("Permission Denied")
            && text.contains("Active state"),
        "{text}"
    );

    // The real thing: a key the server does not have.
    let err = connector(&FakeKms::new(), "9")
        .wrap(&[dek(1)])
        .await
        .unwrap_err();
    assert!(
        matches!(&err, KmsError::KmipFailure { reason, .. } if reason == "Item Not Found"),
        "{err:?}"
    );
}

#[tokio::test]
async fn garbage_and_truncated_answers_are_malformed() {
    let garbage = FakeKms::new().with_tamper(|request, response| {
        if is_op(request, operation::ENCRYPT) {
            return Reply::Bytes(b"HTTP/1.1 400 Bad Request\r\n\r\n".to_vec());
        }
        Reply::Message(response)
    });
    let why = malformed(connector(&garbage, "1").wrap(&[dek(1)]).await);
    assert!(why.contains("Encrypt"), "{why}");

    // A well-formed header over a body that is not TTLV.
    let bad_body = FakeKms::new().with_tamper(|request, response| {
        if is_op(request, operation::ENCRYPT) {
            let mut bytes = vec![0x42, 0x00, 0x7B, 0x01, 0, 0, 0, 16];
            bytes.extend([0xFF; 16]);
            return Reply::Bytes(bytes);
        }
        Reply::Message(response)
    });
    malformed(connector(&bad_body, "1").wrap(&[dek(1)]).await);

    let truncated = FakeKms::new().with_tamper(|request, response| {
        if is_op(request, operation::DECRYPT) {
            let bytes = response.encode();
            return Reply::Bytes(bytes[..bytes.len() / 2].to_vec());
        }
        Reply::Message(response)
    });
    let kms = connector(&truncated, "1");
    let wrapped = kms.wrap(&[dek(1)]).await.unwrap();
    let why = malformed(kms.unwrap(&wrapped).await);
    assert!(why.contains("Decrypt"), "{why}");
}

#[tokio::test]
async fn spoiled_answers_are_malformed_never_half_results() {
    type Spoil = fn(ResponseMessage) -> ResponseMessage;
    let spoils: [(&str, Spoil); 5] = [
        ("batch count", |mut r| {
            r.batch.pop();
            r
        }),
        ("wrong UID", |r| {
            edit_payloads(r, |items| {
                items[0] = Item::text(tag::UNIQUE_IDENTIFIER, "2")
            })
        }),
        ("short tag", |r| {
            edit_payloads(r, |items| {
                items[2] = Item::bytes(tag::AUTHENTICATED_ENCRYPTION_TAG, vec![0; 8])
            })
        }),
        ("missing data", |r| {
            edit_payloads(r, |items| items.retain(|i| i.tag != tag::DATA))
        }),
        ("duplicate id", |mut r| {
            r.batch[1].id = r.batch[0].id.clone();
            r
        }),
    ];
    for (what, spoil) in spoils {
        let server = FakeKms::new().with_tamper(move |request, response| {
            Reply::Message(if is_op(request, operation::ENCRYPT) {
                spoil(response)
            } else {
                response
            })
        });
        let result = connector(&server, "1")
            .wrap(&[dek(1), dek(2), dek(3)])
            .await;
        let why = malformed(result);
        assert!(why.starts_with("KMIP Encrypt answer"), "{what}: {why}");
    }

    // A Decrypt answer of the wrong length is not a key.
    let server = FakeKms::new().with_tamper(|request, response| {
        Reply::Message(if is_op(request, operation::DECRYPT) {
            edit_payloads(response, |items| {
                items[1] = Item::bytes(tag::DATA, vec![1; 31])
            })
        } else {
            response
        })
    });
    let kms = connector(&server, "1");
    let wrapped = kms.wrap(&[dek(1)]).await.unwrap();
    assert!(malformed(kms.unwrap(&wrapped).await).contains("31 bytes"));
}

#[tokio::test]
async fn rewrap_moves_a_dek_from_key_1_to_key_2() {
    let server = FakeKms::new();
    let old_key = connector(&server, "1");
    let wrapped = old_key.wrap(&[dek(5)]).await.unwrap();
    let new_key = connector(&server, "2");
    let rewrapped = new_key.rewrap(&wrapped).await.unwrap();
    assert_eq!(wrapping_key(&rewrapped[0].ciphertext), Some("2"));
    assert_eq!(rewrapped[0].key_version, 0);
    let decrypt = server.seen_op(operation::DECRYPT);
    let encrypt = server.seen_op(operation::ENCRYPT);
    let uid = |r: &RequestMessage| {
        r.batch[0]
            .payload
            .get(tag::UNIQUE_IDENTIFIER)
            .unwrap()
            .as_text()
            .unwrap()
    };
    assert_eq!(
        uid(&decrypt[0]),
        "1",
        "decrypted with the key that wrapped it"
    );
    assert_eq!(
        uid(encrypt.last().unwrap()),
        "2",
        "encrypted with the new key"
    );
    // Both wrappings unwrap through either connector: the key is named in the ciphertext.
    assert_eq!(new_key.unwrap(&rewrapped).await.unwrap(), vec![dek(5)]);
    assert_eq!(new_key.unwrap(&wrapped).await.unwrap(), vec![dek(5)]);
    assert_eq!(old_key.unwrap(&rewrapped).await.unwrap(), vec![dek(5)]);
}

#[tokio::test]
async fn probe_round_trips_and_catches_a_lying_server() {
    let server = FakeKms::new();
    connector(&server, "1").probe().await.unwrap();
    assert_eq!(server.seen_op(operation::ENCRYPT).len(), 1);
    assert_eq!(server.seen_op(operation::DECRYPT).len(), 1);

    let liar = FakeKms::new().with_tamper(|request, response| {
        Reply::Message(if is_op(request, operation::DECRYPT) {
            edit_payloads(response, |items| {
                items[1] = Item::bytes(tag::DATA, vec![0; 32])
            })
        } else {
            response
        })
    });
    assert_eq!(
        connector(&liar, "1").probe().await,
        Err(KmsError::ProbeMismatch)
    );
}

#[tokio::test]
async fn a_wrapping_that_is_not_kmip_is_malformed_without_asking() {
    let server = FakeKms::new();
    let kms = connector(&server, "1");
    for ciphertext in [
        "vault:v1:abcd",
        "kmip:1:not base64!",
        "kmip::AAAA",
        "kmip:1:AAAA",
    ] {
        let w = WrappedDek {
            ciphertext: ciphertext.into(),
            key_version: 0,
        };
        malformed(kms.unwrap(&[w]).await);
    }
    assert!(server.seen().is_empty());
}

#[tokio::test]
async fn a_closed_connection_is_unreachable_and_no_key_leaks_into_errors() {
    let server = FakeKms::new().with_tamper(|request, response| {
        if is_op(request, operation::ENCRYPT) {
            return Reply::Bytes(Vec::new());
        }
        Reply::Message(response)
    });
    let err = connector(&server, "1")
        .wrap(&[dek(0xAB)])
        .await
        .unwrap_err();
    assert!(matches!(err, KmsError::Unreachable(_)), "{err:?}");
    let shown = format!("{err} {err:?} {:?}", config("1"));
    assert!(
        !shown.contains("c2VjcmV0") && !shown.to_lowercase().contains("abab"),
        "{shown}"
    );
    // A peer that hangs up with an error (as TLS reports it) before answering, likewise.
    let transport: KmipTransport =
        Arc::new(|| Box::pin(async { Ok(Box::new(hang_up::HangsUp) as BoxStream) }));
    let err = KmipConnector::new(config("1"), transport, counter())
        .probe()
        .await
        .unwrap_err();
    assert!(matches!(err, KmsError::Unreachable(_)), "{err:?}");
}

mod hang_up {
    use std::io;
    use std::pin::Pin;
    use std::task::{Context, Poll};

    use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

    /// Takes every write, then fails the first read as rustls does when the peer closes
    /// without a close_notify.
    pub struct HangsUp;

    impl AsyncRead for HangsUp {
        fn poll_read(
            self: Pin<&mut Self>,
            _: &mut Context<'_>,
            _: &mut ReadBuf<'_>,
        ) -> Poll<io::Result<()>> {
            Poll::Ready(Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "peer closed connection without sending TLS close_notify",
            )))
        }
    }

    impl AsyncWrite for HangsUp {
        fn poll_write(
            self: Pin<&mut Self>,
            _: &mut Context<'_>,
            b: &[u8],
        ) -> Poll<io::Result<usize>> {
            Poll::Ready(Ok(b.len()))
        }
        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
        fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
    }
}

/// A transport that counts the streams it opened, and can close the last one from the
/// server's side.
fn counting_transport(server: &FakeKms, opened: Arc<Mutex<u32>>) -> KmipTransport {
    let server = server.clone();
    Arc::new(move || {
        let (server, opened) = (server.clone(), opened.clone());
        Box::pin(async move {
            *opened.lock().unwrap() += 1;
            let (client, remote) = tokio::io::duplex(1 << 16);
            tokio::spawn(server.serve(remote));
            Ok(Box::new(client) as BoxStream)
        })
    })
}

/// A connector to key "1" of `server` that keeps its stream between calls, and the count
/// of streams it opened.
fn reusing(server: &FakeKms) -> (KmipConnector, Arc<Mutex<u32>>) {
    let opened = Arc::new(Mutex::new(0));
    let kms = KmipConnector::new(
        config("1"),
        counting_transport(server, opened.clone()),
        counter(),
    )
    .reusing_streams(true);
    (kms, opened)
}

#[tokio::test]
async fn a_reusing_connector_keeps_one_stream_and_retries_once_on_a_closed_one() {
    let server = FakeKms::new();
    let (kms, opened) = reusing(&server);
    let wrapped = kms.wrap(&[dek(1)]).await.unwrap();
    kms.unwrap(&wrapped).await.unwrap();
    kms.wrap(&[dek(2)]).await.unwrap();
    assert_eq!(*opened.lock().unwrap(), 1, "three calls, one stream");

    // The server closes every stream after one answer from now on: the kept stream is
    // found closed, and the call is made once more on a new one.
    let closing = FakeKms::new().with_tamper(|request, response| {
        if is_op(request, operation::DISCOVER_VERSIONS) {
            Reply::Message(response)
        } else {
            Reply::Bytes(response.encode())
        }
    });
    let (kms, opened) = reusing(&closing);
    let wrapped = kms.wrap(&[dek(3)]).await.unwrap();
    assert_eq!(kms.unwrap(&wrapped).await.unwrap(), vec![dek(3)]);
    assert_eq!(
        *opened.lock().unwrap(),
        2,
        "the closed stream was replaced once"
    );

    // Without reuse (the simulation's dialers), every call opens its own stream.
    let opened = Arc::new(Mutex::new(0));
    let kms = KmipConnector::new(
        config("1"),
        counting_transport(&server, opened.clone()),
        counter(),
    );
    let wrapped = kms.wrap(&[dek(4)]).await.unwrap();
    kms.unwrap(&wrapped).await.unwrap();
    assert_eq!(*opened.lock().unwrap(), 2);
}

#[tokio::test]
async fn a_rewrap_on_a_kept_stream_found_closed_is_made_once_more_on_a_new_one() {
    // The server hangs up after its first Encrypt answer only: the wrap's stream is kept,
    // and the rewrap finds it closed.
    let hung_up = Arc::new(Mutex::new(false));
    let flag = hung_up.clone();
    let server = FakeKms::new().with_tamper(move |request, response| {
        let mut hung_up = flag.lock().unwrap();
        if is_op(request, operation::ENCRYPT) && !*hung_up {
            *hung_up = true;
            Reply::Bytes(response.encode())
        } else {
            Reply::Message(response)
        }
    });
    let (kms, opened) = reusing(&server);
    let wrapped = kms.wrap(&[dek(6)]).await.unwrap();
    let rewrapped = kms.rewrap(&wrapped).await.unwrap();
    assert_eq!(kms.unwrap(&rewrapped).await.unwrap(), vec![dek(6)]);
    assert!(*hung_up.lock().unwrap());
    assert_eq!(
        *opened.lock().unwrap(),
        2,
        "the closed stream was replaced once"
    );
}

#[tokio::test]
async fn a_rewrap_on_new_streams_that_keep_closing_fails_rather_than_retrying_forever() {
    // Every Decrypt is answered with a hang-up: only a kept stream earns a second try,
    // so the rewrap gives up on the first new stream that fails.
    let server = FakeKms::new().with_tamper(|request, response| {
        if is_op(request, operation::DECRYPT) {
            Reply::Bytes(Vec::new())
        } else {
            Reply::Message(response)
        }
    });
    let kms = connector(&server, "1");
    let wrapped = kms.wrap(&[dek(7)]).await.unwrap();
    let rewrap = tokio::time::timeout(std::time::Duration::from_secs(5), kms.rewrap(&wrapped));
    let result = rewrap.await.expect("the rewrap gave up in time");
    assert!(
        matches!(result, Err(KmsError::Unreachable(_))),
        "{result:?}"
    );
    assert_eq!(server.seen_op(operation::DECRYPT).len(), 1);
}
