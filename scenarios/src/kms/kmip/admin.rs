//! The harness's own KMIP client: the admin's hands on a KMIP server, not the cluster's
//! connector. It creates, activates, revokes and destroys keys, reads their state, finds
//! them by name, and encrypts and decrypts with AES-GCM, to prepare a run, to inspect what
//! a run left, and to hold a real server and a simulated one to the same answers.
//!
//! It speaks TTLV (crate `ttlv`) over any byte stream, one request at a time, so the same
//! client runs over real TLS ([`connect_tls`]) and over a simulated stream. Requests go in
//! KMIP 1.4 unless a call says otherwise. Every failure names the operation; a failure the
//! server reported also carries its result reason and message.

use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use cluster::secret::Secret;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, RootCertStore};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;
use ttlv::enums::{block_cipher_mode, cryptographic_algorithm, object_type, operation, usage_mask};
use ttlv::{attribute, name_attribute};
use ttlv::{
    tag, BatchItem, Item, Limits, ProtocolVersion, RequestMessage, ResponseMessage, ResultFailure,
    Value,
};

/// How long one request may take, answer included, before the admin gives up on it.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(10);
/// The AES-GCM tag every call here asks for and expects.
pub const GCM_TAG_LEN: usize = 16;

/// Why a KMIP call failed, always naming the operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KmipError {
    /// The stream failed, closed, or the answer took longer than the call's timeout.
    Transport { operation: String, why: String },
    /// The answer is not a KMIP response this client can read.
    BadAnswer { operation: String, why: String },
    /// The server answered with a failure.
    Failed {
        operation: String,
        failure: ResultFailure,
    },
}

impl KmipError {
    /// The result reason the server gave, if it answered with a failure that had one.
    pub fn reason(&self) -> Option<u32> {
        match self {
            KmipError::Failed { failure, .. } => failure.reason,
            _ => None,
        }
    }

    /// The result message the server gave, if it answered with a failure that had one.
    pub fn message(&self) -> Option<&str> {
        match self {
            KmipError::Failed { failure, .. } => failure.message.as_deref(),
            _ => None,
        }
    }
}

impl fmt::Display for KmipError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KmipError::Transport { operation, why } => write!(f, "KMIP {operation}: {why}"),
            KmipError::BadAnswer { operation, why } => {
                write!(f, "KMIP {operation}: unreadable answer: {why}")
            }
            KmipError::Failed { operation, failure } => {
                write!(f, "KMIP {operation} failed: {failure}")
            }
        }
    }
}

impl std::error::Error for KmipError {}

/// An AES-GCM ciphertext as a KMIP server returned it. The byte fields print by length only.
#[derive(Clone, PartialEq, Eq)]
pub struct GcmSealed {
    pub ciphertext: Vec<u8>,
    /// The IV sent, or the one the server made and returned when none was sent.
    pub iv: Vec<u8>,
    pub tag: Vec<u8>,
}

impl fmt::Debug for GcmSealed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "GcmSealed {{ ciphertext: <{} bytes>, iv: <{} bytes>, tag: <{} bytes> }}",
            self.ciphertext.len(),
            self.iv.len(),
            self.tag.len()
        )
    }
}

/// A KMIP client over one stream, for the harness's own use.
pub struct KmipAdmin<S> {
    stream: S,
    version: ProtocolVersion,
    timeout: Duration,
    limits: Limits,
}

impl<S> fmt::Debug for KmipAdmin<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KmipAdmin")
            .field("version", &self.version)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin + Send> KmipAdmin<S> {
    /// A client sending KMIP 1.4, each call given [`CALL_TIMEOUT`].
    pub fn new(stream: S) -> Self {
        KmipAdmin {
            stream,
            version: ProtocolVersion::V1_4,
            timeout: CALL_TIMEOUT,
            limits: Limits::default(),
        }
    }

    /// The same client sending `version` instead.
    pub fn with_version(mut self, version: ProtocolVersion) -> Self {
        self.version = version;
        self
    }

    /// The same client giving each call `timeout`.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The version its requests carry.
    pub fn version(&self) -> ProtocolVersion {
        self.version
    }

    /// Sends `request` as it is and returns the server's answer as it is, failures
    /// included: for probing what a server says to odd requests.
    pub async fn exchange(
        &mut self,
        request: &RequestMessage,
    ) -> Result<ResponseMessage, KmipError> {
        let operation = match request.batch.as_slice() {
            [one] => operation::name(one.operation),
            items => format!("batch of {}", items.len()),
        };
        let bytes = request.encode();
        let limits = self.limits;
        let stream = &mut self.stream;
        let answer = async {
            stream.write_all(&bytes).await?;
            stream.flush().await?;
            ttlv::read_frame(stream, limits).await
        };
        let frame = match tokio::time::timeout(self.timeout, answer).await {
            Err(_) => {
                return Err(KmipError::Transport {
                    operation,
                    why: format!("no answer within {} s", self.timeout.as_secs_f64()),
                })
            }
            Ok(Err(e)) => {
                return Err(KmipError::Transport {
                    operation,
                    why: e.to_string(),
                })
            }
            Ok(Ok(None)) => {
                return Err(KmipError::Transport {
                    operation,
                    why: "the server closed the connection without answering".into(),
                })
            }
            Ok(Ok(Some(frame))) => frame,
        };
        let bad = |why: String| KmipError::BadAnswer {
            operation: operation.clone(),
            why,
        };
        let item = ttlv::decode(&frame, limits).map_err(|e| bad(format!("{e:?}")))?;
        ResponseMessage::from_item(&item).map_err(|e| bad(e.to_string()))
    }

    /// One operation in this client's version; its response payload (an empty one if the
    /// server sent none), or the failure the server answered with.
    pub async fn call(&mut self, op: u32, payload: Vec<Item>) -> Result<Item, KmipError> {
        self.call_in(self.version, op, payload).await
    }

    /// One operation in `version`.
    pub async fn call_in(
        &mut self,
        version: ProtocolVersion,
        op: u32,
        payload: Vec<Item>,
    ) -> Result<Item, KmipError> {
        let request = RequestMessage {
            version,
            batch: vec![BatchItem::new(op, payload)],
        };
        let response = self.exchange(&request).await?;
        let operation = operation::name(op);
        let [item] = <[_; 1]>::try_from(response.batch).map_err(|b| KmipError::BadAnswer {
            operation: operation.clone(),
            why: format!("{} batch items for one request", b.len()),
        })?;
        match item.result {
            Ok(payload) => {
                Ok(payload.unwrap_or_else(|| Item::structure(tag::RESPONSE_PAYLOAD, Vec::new())))
            }
            Err(failure) => Err(KmipError::Failed { operation, failure }),
        }
    }

    /// The versions the server offers, its preferred first.
    pub async fn discover_versions(&mut self) -> Result<Vec<ProtocolVersion>, KmipError> {
        let payload = self.call(operation::DISCOVER_VERSIONS, Vec::new()).await?;
        payload
            .all(tag::PROTOCOL_VERSION)
            .map(ProtocolVersion::from_item)
            .collect::<Result<_, _>>()
            .map_err(|e| bad_answer(operation::DISCOVER_VERSIONS, e))
    }

    /// Creates an AES-256 key for encrypting and decrypting, named `name`, Pre-Active.
    /// Returns its Unique Identifier.
    pub async fn create_aes256(&mut self, name: &str) -> Result<String, KmipError> {
        let template = Item::structure(
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
        );
        let payload = self
            .call(
                operation::CREATE,
                vec![
                    Item::enumeration(tag::OBJECT_TYPE, object_type::SYMMETRIC_KEY),
                    template,
                ],
            )
            .await?;
        uid_of(operation::CREATE, &payload)
    }

    pub async fn activate(&mut self, uid: &str) -> Result<(), KmipError> {
        self.call(operation::ACTIVATE, vec![uid_item(uid)])
            .await
            .map(drop)
    }

    /// Revokes with a Revocation Reason Code (`ttlv::enums::revocation_reason_code`).
    pub async fn revoke(&mut self, uid: &str, reason: u32) -> Result<(), KmipError> {
        let reason = Item::structure(
            tag::REVOCATION_REASON,
            vec![Item::enumeration(tag::REVOCATION_REASON_CODE, reason)],
        );
        self.call(operation::REVOKE, vec![uid_item(uid), reason])
            .await
            .map(drop)
    }

    pub async fn destroy(&mut self, uid: &str) -> Result<(), KmipError> {
        self.call(operation::DESTROY, vec![uid_item(uid)])
            .await
            .map(drop)
    }

    /// The key's State (`ttlv::enums::state`), read with Get Attributes.
    pub async fn state(&mut self, uid: &str) -> Result<u32, KmipError> {
        let op = operation::GET_ATTRIBUTES;
        let payload = self
            .call(
                op,
                vec![uid_item(uid), Item::text(tag::ATTRIBUTE_NAME, "State")],
            )
            .await?;
        let state = payload
            .all(tag::ATTRIBUTE)
            .find(|a| {
                a.find(tag::ATTRIBUTE_NAME)
                    .and_then(|n| n.as_text().ok())
                    .is_some_and(|n| n == "State")
            })
            .ok_or_else(|| KmipError::BadAnswer {
                operation: operation::name(op),
                why: format!("no State attribute for {uid}"),
            })?;
        state
            .get(tag::ATTRIBUTE_VALUE)
            .and_then(Item::as_enum)
            .map_err(|e| bad_answer(op, e))
    }

    /// The Unique Identifiers of the objects named `name` that this client may see.
    pub async fn locate_by_name(&mut self, name: &str) -> Result<Vec<String>, KmipError> {
        let op = operation::LOCATE;
        let payload = self.call(op, vec![name_attribute(name)]).await?;
        payload
            .all(tag::UNIQUE_IDENTIFIER)
            .map(Item::as_text)
            .collect::<Result<_, _>>()
            .map_err(|e| bad_answer(op, e))
    }

    /// AES-GCM with a 16-byte tag and no additional data, under `iv` if given (else the
    /// server makes one and returns it).
    pub async fn encrypt_gcm(
        &mut self,
        uid: &str,
        iv: Option<&[u8]>,
        plaintext: &[u8],
    ) -> Result<GcmSealed, KmipError> {
        let op = operation::ENCRYPT;
        let mut request = vec![
            uid_item(uid),
            gcm_parameters(),
            Item::bytes(tag::DATA, plaintext),
        ];
        if let Some(iv) = iv {
            request.push(Item::bytes(tag::IV_COUNTER_NONCE, iv));
        }
        let payload = self.call(op, request).await?;
        let field = |t| {
            payload
                .get(t)
                .and_then(Item::as_bytes)
                .map_err(|e| bad_answer(op, e))
        };
        let ciphertext = field(tag::DATA)?;
        let tag_bytes = field(tag::AUTHENTICATED_ENCRYPTION_TAG)?;
        let iv = match payload.find(tag::IV_COUNTER_NONCE) {
            Some(i) => i.as_bytes().map_err(|e| bad_answer(op, e))?,
            None => iv.map(<[u8]>::to_vec).ok_or_else(|| KmipError::BadAnswer {
                operation: operation::name(op),
                why: "no IV was sent and none came back".into(),
            })?,
        };
        Ok(GcmSealed {
            ciphertext,
            iv,
            tag: tag_bytes,
        })
    }

    /// The plaintext of `sealed` under the key `uid`.
    pub async fn decrypt_gcm(
        &mut self,
        uid: &str,
        sealed: &GcmSealed,
    ) -> Result<Vec<u8>, KmipError> {
        let op = operation::DECRYPT;
        let payload = self
            .call(
                op,
                vec![
                    uid_item(uid),
                    gcm_parameters(),
                    Item::bytes(tag::DATA, sealed.ciphertext.clone()),
                    Item::bytes(tag::IV_COUNTER_NONCE, sealed.iv.clone()),
                    Item::bytes(tag::AUTHENTICATED_ENCRYPTION_TAG, sealed.tag.clone()),
                ],
            )
            .await?;
        payload
            .get(tag::DATA)
            .and_then(Item::as_bytes)
            .map_err(|e| bad_answer(op, e))
    }
}

fn bad_answer(op: u32, e: impl fmt::Display) -> KmipError {
    KmipError::BadAnswer {
        operation: operation::name(op),
        why: e.to_string(),
    }
}

fn uid_item(uid: &str) -> Item {
    Item::text(tag::UNIQUE_IDENTIFIER, uid)
}

fn uid_of(op: u32, payload: &Item) -> Result<String, KmipError> {
    payload
        .get(tag::UNIQUE_IDENTIFIER)
        .and_then(Item::as_text)
        .map_err(|e| bad_answer(op, e))
}

/// AES in GCM mode with a 16-byte tag, in the field order KMIP 1.4 gives them.
fn gcm_parameters() -> Item {
    Item::structure(
        tag::CRYPTOGRAPHIC_PARAMETERS,
        vec![
            Item::enumeration(tag::BLOCK_CIPHER_MODE, block_cipher_mode::GCM),
            Item::enumeration(tag::CRYPTOGRAPHIC_ALGORITHM, cryptographic_algorithm::AES),
            Item::integer(tag::TAG_LENGTH, GCM_TAG_LEN as i32),
        ],
    )
}

/// A TCP connection to `addr` with mutual TLS (1.2 or 1.3): the server's certificate must
/// be signed by `ca_pem` and name `server_name` (a DNS name or an IP address); the client
/// presents `cert_pem` with its PKCS#8 `key_pem`. The crypto provider is ring, given here,
/// so nothing depends on a process-wide default provider.
pub async fn connect_tls(
    addr: SocketAddr,
    server_name: &str,
    ca_pem: &str,
    cert_pem: &str,
    key_pem: &Secret,
) -> Result<TlsStream<TcpStream>, String> {
    let mut roots = RootCertStore::empty();
    for ca in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        let ca = ca.map_err(|e| format!("the CA PEM: {e}"))?;
        roots
            .add(ca)
            .map_err(|e| format!("the CA certificate: {e}"))?;
    }
    if roots.is_empty() {
        return Err("the CA PEM holds no certificate".into());
    }
    let chain = CertificateDer::pem_slice_iter(cert_pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("the client certificate PEM: {e}"))?;
    // The key's parse error names no key bytes.
    let key = PrivateKeyDer::from_pem_slice(key_pem.expose().as_bytes())
        .map_err(|e| format!("the client key PEM: {e}"))?;
    let config =
        ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("TLS client config: {e}"))?
            .with_root_certificates(roots)
            .with_client_auth_cert(chain, key)
            .map_err(|e| format!("the client certificate and key: {e}"))?;
    let name = ServerName::try_from(server_name.to_string())
        .map_err(|e| format!("server name {server_name:?}: {e}"))?;
    let tcp = tokio::time::timeout(CALL_TIMEOUT, TcpStream::connect(addr))
        .await
        .map_err(|_| format!("connecting to {addr}: no answer within {CALL_TIMEOUT:?}"))?
        .map_err(|e| format!("connecting to {addr}: {e}"))?;
    let tls = TlsConnector::from(Arc::new(config));
    tokio::time::timeout(CALL_TIMEOUT, tls.connect(name, tcp))
        .await
        .map_err(|_| format!("TLS handshake with {addr}: no answer within {CALL_TIMEOUT:?}"))?
        .map_err(|e| format!("TLS handshake with {addr} as {server_name:?}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ttlv::enums::{result_reason, state};

    /// A one-request server over an in-memory stream: reads a request, checks it with
    /// `check`, answers `answer`.
    async fn serve_once(
        mut server: tokio::io::DuplexStream,
        check: impl FnOnce(RequestMessage),
        answer: ResponseMessage,
    ) {
        let frame = ttlv::read_frame(&mut server, Limits::default())
            .await
            .unwrap()
            .unwrap();
        let item = ttlv::decode(&frame, Limits::default()).unwrap();
        check(RequestMessage::from_item(&item).unwrap());
        server.write_all(&answer.encode()).await.unwrap();
    }

    fn answer(op: u32, result: Result<Option<Item>, ResultFailure>) -> ResponseMessage {
        ResponseMessage {
            version: ProtocolVersion::V1_4,
            time_stamp: 0,
            batch: vec![ttlv::ResponseItem {
                operation: Some(op),
                id: None,
                result,
            }],
        }
    }

    #[tokio::test]
    async fn a_failure_names_operation_reason_and_message() {
        let (client, server) = tokio::io::duplex(4096);
        let failure = ResultFailure::new(result_reason::PERMISSION_DENIED, "not Active");
        let srv = serve_once(
            server,
            |r| {
                assert_eq!(r.version, ProtocolVersion::V1_4);
                assert_eq!(r.batch[0].operation, operation::ENCRYPT);
                let p = &r.batch[0].payload;
                let params = p.get(tag::CRYPTOGRAPHIC_PARAMETERS).unwrap();
                assert_eq!(params.get(tag::TAG_LENGTH).unwrap().as_integer(), Ok(16));
                assert_eq!(
                    p.get(tag::IV_COUNTER_NONCE).unwrap().as_bytes(),
                    Ok(vec![7; 12])
                );
            },
            answer(operation::ENCRYPT, Err(failure)),
        );
        let mut admin = KmipAdmin::new(client);
        let (e, ()) = tokio::join!(admin.encrypt_gcm("k1", Some(&[7; 12]), b"x"), srv);
        let e = e.unwrap_err();
        assert_eq!(e.reason(), Some(result_reason::PERMISSION_DENIED));
        assert_eq!(
            e.to_string(),
            "KMIP Encrypt failed: Operation Failed (Permission Denied): not Active"
        );
    }

    #[tokio::test]
    async fn state_is_read_from_get_attributes() {
        let (client, server) = tokio::io::duplex(4096);
        let payload = Item::structure(
            tag::RESPONSE_PAYLOAD,
            vec![
                uid_item("k1"),
                attribute("State", Value::Enumeration(state::ACTIVE)),
            ],
        );
        let srv = serve_once(
            server,
            |r| {
                let p = &r.batch[0].payload;
                assert_eq!(
                    p.get(tag::ATTRIBUTE_NAME).unwrap().as_text().unwrap(),
                    "State"
                );
            },
            answer(operation::GET_ATTRIBUTES, Ok(Some(payload))),
        );
        let mut admin = KmipAdmin::new(client);
        let (s, ()) = tokio::join!(admin.state("k1"), srv);
        assert_eq!(s, Ok(state::ACTIVE));
    }

    #[tokio::test]
    async fn a_closed_stream_and_a_silent_server_are_transport_errors() {
        let (client, server) = tokio::io::duplex(4096);
        drop(server);
        let e = KmipAdmin::new(client).activate("k").await.unwrap_err();
        assert!(
            matches!(&e, KmipError::Transport { operation, .. } if operation == "Activate"),
            "{e}"
        );

        let (client, _server) = tokio::io::duplex(4096);
        let mut admin = KmipAdmin::new(client).with_timeout(Duration::from_millis(20));
        let e = admin.destroy("k").await.unwrap_err();
        assert!(e.to_string().contains("KMIP Destroy: no answer"), "{e}");
    }
}
