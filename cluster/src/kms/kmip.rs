//! KMIP connector: DEKs wrapped with a KMIP server's Encrypt and Decrypt (AES-GCM under one
//! symmetric key named by its UID), in TTLV over a stream someone else secured.
//!
//! Each call takes a stream from the transport it was given (already TLS, already
//! authenticated by the client certificate), negotiates the protocol version on it if this
//! connector has not yet, and sends its DEKs as one batched request message (a rewrap sends
//! two: decrypt, then encrypt). Live, the stream is kept for the next call (a TLS handshake
//! costs more than a wrap), and a kept stream the server closed meanwhile is replaced once;
//! the simulation opens one per call, so every fault on connections meets every call. The connector never trusts the answer's shape: a wrong
//! batch count, a missing field, another key's UID or a tag of the wrong length is
//! [`KmsError::Malformed`], and nothing is returned unless every item is right.
//!
//! Plaintext DEKs are kept in [`Dek`]s; the request and answer bytes and item trees that
//! carry them are wiped when dropped.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use tokio::io::{AsyncRead, AsyncWriteExt, ReadBuf};
use tokio::sync::OnceCell;
use ttlv::enums::result_reason;
use ttlv::enums::{block_cipher_mode, cryptographic_algorithm, operation, result_status};
use ttlv::{tag, BatchItem, Item, Limits, ProtocolVersion, RequestMessage, ResponseMessage, Value};
use zeroize::{Zeroize, Zeroizing};

use super::{KmipConfig, KmsConnector, KmsError, WrappedDek, KMS_REQUEST_TIMEOUT};
use crate::dek::{Dek, DEK_LEN};
use crate::net::{BoxFuture, BoxStream};

/// Opens one ready-to-use stream to the KMIP server: TLS done, client certificate shown.
pub type KmipTransport = Arc<dyn Fn() -> BoxFuture<'static, io::Result<BoxStream>> + Send + Sync>;

/// Fills a buffer with random bytes (the IVs). In a seeded run, the run's seeded source.
pub type KmipRandom = Arc<dyn Fn(&mut [u8]) + Send + Sync>;

/// The versions this connector speaks, best first. Encrypt and Decrypt need 1.2.
const OFFERED: [ProtocolVersion; 5] = [
    ProtocolVersion::V2_1,
    ProtocolVersion::V2_0,
    ProtocolVersion::V1_4,
    ProtocolVersion::V1_3,
    ProtocolVersion::V1_2,
];

/// AES-GCM's recommended nonce length: the server is told it, never left to choose.
const IV_LEN: usize = 12;
const TAG_LEN: usize = 16;
const PREFIX: &str = "kmip:";

pub struct KmipConnector {
    config: KmipConfig,
    transport: KmipTransport,
    random: KmipRandom,
    /// The protocol version agreed with the server, once.
    version: OnceCell<ProtocolVersion>,
    /// Whether a stream is kept open after a call for the next one (live: a TLS handshake
    /// per call would cost more than the call). The simulation opens one per call, so that
    /// every fault on connections meets every call.
    reuse: bool,
    /// The stream kept from the last call, if any.
    idle: std::sync::Mutex<Option<BoxStream>>,
}

/// One stream to the server, with the version the requests on it carry.
struct Session {
    stream: BoxStream,
    version: ProtocolVersion,
    /// Kept from an earlier call: the server may have closed it since.
    reused: bool,
}

/// A KMIP wrapping taken apart: the key that made it, and its AES-GCM parts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wrapping {
    pub uid: String,
    pub iv: Vec<u8>,
    pub ciphertext: Vec<u8>,
    pub tag: Vec<u8>,
}

impl KmipConnector {
    pub fn new(config: KmipConfig, transport: KmipTransport, random: KmipRandom) -> Self {
        KmipConnector {
            config,
            transport,
            random,
            version: OnceCell::new(),
            reuse: false,
            idle: std::sync::Mutex::new(None),
        }
    }

    /// Keeps a stream open between calls (see [`KmipConnector::reuse`]).
    pub fn reusing_streams(mut self, reuse: bool) -> Self {
        self.reuse = reuse;
        self
    }

    /// The stream kept from the last call, if there is one and a version was agreed on.
    fn take_idle(&self) -> Option<Session> {
        let version = *self.version.get()?;
        let stream = self.idle.lock().unwrap_or_else(|e| e.into_inner()).take()?;
        Some(Session {
            stream,
            version,
            reused: true,
        })
    }

    /// A call succeeded on `session`: keep its stream for the next call, or close it.
    async fn done(&self, session: Session) {
        if self.reuse {
            let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
            if idle.is_none() {
                *idle = Some(session.stream);
                return;
            }
        }
        close(session).await;
    }

    /// The version agreed with the server, if it has been.
    pub fn negotiated(&self) -> Option<ProtocolVersion> {
        self.version.get().copied()
    }

    fn address(&self) -> &str {
        &self.config.address
    }

    fn timed_out(&self, what: &str) -> KmsError {
        KmsError::Timeout(format!(
            "KMIP server {} did not answer {what} within {}s",
            self.address(),
            KMS_REQUEST_TIMEOUT.as_secs()
        ))
    }

    /// A stream: the one kept from the last call, else a new one, with the version
    /// negotiated on it if this is the first.
    async fn open(&self) -> Result<Session, KmsError> {
        if let Some(session) = self.take_idle() {
            return Ok(session);
        }
        self.open_new().await
    }

    async fn open_new(&self) -> Result<Session, KmsError> {
        let mut stream = tokio::time::timeout(KMS_REQUEST_TIMEOUT, (self.transport)())
            .await
            .map_err(|_| self.timed_out("the connection"))?
            .map_err(|e| KmsError::Unreachable(format!("KMIP server {}: {e}", self.address())))?;
        let version = *self
            .version
            .get_or_try_init(|| self.discover(&mut stream))
            .await?;
        Ok(Session {
            stream,
            version,
            reused: false,
        })
    }

    /// Discover Versions: our list in a 1.2 message; the server's first answer we offered.
    async fn discover(&self, stream: &mut BoxStream) -> Result<ProtocolVersion, KmsError> {
        let offered = OFFERED.iter().map(|v| v.to_item()).collect();
        let answer = self.discover_with(stream, offered).await?;
        if let Some(v) = answer.iter().find(|v| OFFERED.contains(v)) {
            return Ok(*v);
        }
        // A server that follows the standard answers only versions we listed, so an empty
        // answer does not say what it does speak: ask again with no list, which it answers
        // with all of them, so the error can name them.
        let spoken = if answer.is_empty() {
            self.discover_with(stream, Vec::new()).await?
        } else {
            answer
        };
        let names: Vec<String> = spoken.iter().map(|v| v.to_string()).collect();
        Err(KmsError::Unsupported(format!(
            "KMIP server {} speaks {}; this cluster needs 1.2 or later",
            self.address(),
            if names.is_empty() {
                "no protocol version it would name".to_string()
            } else {
                format!("only {}", names.join(", "))
            }
        )))
    }

    async fn discover_with(
        &self,
        stream: &mut BoxStream,
        versions: Vec<Item>,
    ) -> Result<Vec<ProtocolVersion>, KmsError> {
        let item = BatchItem::new(operation::DISCOVER_VERSIONS, versions);
        let mut payloads = self
            .exchange(
                stream,
                ProtocolVersion::V1_2,
                operation::DISCOVER_VERSIONS,
                vec![item],
            )
            .await?;
        let payload = payloads
            .pop()
            .ok_or_else(|| malformed("Discover Versions", "no answer"))?;
        payload
            .0
            .all(tag::PROTOCOL_VERSION)
            .map(ProtocolVersion::from_item)
            .collect::<Result<_, _>>()
            .map_err(|e| malformed("Discover Versions", e))
    }

    /// Sends one request message of `batch` (all the same operation) and returns each
    /// item's Response Payload, in the order asked. Any failure result fails the whole call.
    async fn exchange(
        &self,
        stream: &mut BoxStream,
        version: ProtocolVersion,
        op: u32,
        mut batch: Vec<BatchItem>,
    ) -> Result<Vec<Wiped>, KmsError> {
        let name = operation::name(op);
        let count = batch.len();
        for (i, item) in batch.iter_mut().enumerate() {
            item.id = Some(batch_id(i));
        }
        let request = encode_wiping(RequestMessage { version, batch });
        let frame = tokio::time::timeout(KMS_REQUEST_TIMEOUT, async {
            let sent = async {
                stream.write_all(&request).await?;
                stream.flush().await
            };
            sent.await.map_err(|e| {
                KmsError::Unreachable(format!(
                    "KMIP server {}: sending {name}: {e}",
                    self.address()
                ))
            })?;
            // A TLS stream reports a peer that hung up as an error, not an end: whether
            // any of the answer came tells a cut-short answer from a lost connection.
            let mut counted = Counted {
                inner: stream,
                read: 0,
            };
            match ttlv::read_frame(&mut counted, Limits::default()).await {
                Ok(Some(frame)) => Ok(Zeroizing::new(frame)),
                Ok(None) => Err(KmsError::Unreachable(format!(
                    "KMIP server {} closed the connection without answering {name}",
                    self.address()
                ))),
                Err(e) if counted.read == 0 => Err(KmsError::Unreachable(format!(
                    "KMIP server {} closed the connection without answering {name}: {e}",
                    self.address()
                ))),
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::UnexpectedEof | io::ErrorKind::InvalidData
                    ) =>
                {
                    Err(malformed(&name, e))
                }
                Err(e) => Err(KmsError::Unreachable(format!(
                    "KMIP server {}: reading the answer to {name}: {e}",
                    self.address()
                ))),
            }
        })
        .await
        .map_err(|_| self.timed_out(&name))??;
        let decoded =
            Wiped(ttlv::decode(&frame, Limits::default()).map_err(|e| malformed(&name, e))?);
        let response = ResponseMessage::from_item(&decoded.0).map_err(|e| malformed(&name, e))?;
        answers_in_order(&name, op, count, response)
    }

    /// Encrypts each DEK under the configured key, each with a fresh IV.
    async fn encrypt(
        &self,
        session: &mut Session,
        deks: &[Dek],
    ) -> Result<Vec<WrappedDek>, KmsError> {
        if deks.is_empty() {
            return Ok(Vec::new());
        }
        let uid = &self.config.key_uid;
        let ivs: Vec<[u8; IV_LEN]> = deks
            .iter()
            .map(|_| {
                let mut iv = [0u8; IV_LEN];
                (self.random)(&mut iv);
                iv
            })
            .collect();
        let batch = deks
            .iter()
            .zip(&ivs)
            .map(|(dek, iv)| {
                BatchItem::new(
                    operation::ENCRYPT,
                    vec![
                        Item::text(tag::UNIQUE_IDENTIFIER, uid.clone()),
                        gcm_parameters(),
                        Item::bytes(tag::DATA, dek.expose().to_vec()),
                        Item::bytes(tag::IV_COUNTER_NONCE, iv.to_vec()),
                    ],
                )
            })
            .collect();
        let answers = self
            .exchange(
                &mut session.stream,
                session.version,
                operation::ENCRYPT,
                batch,
            )
            .await?;
        answers
            .iter()
            .zip(&ivs)
            .map(|(answer, iv)| wrapped_from(&answer.0, uid, iv))
            .collect()
    }

    /// Decrypts each wrapping with the key its ciphertext names.
    async fn decrypt(
        &self,
        session: &mut Session,
        parts: &[Wrapping],
    ) -> Result<Vec<Dek>, KmsError> {
        if parts.is_empty() {
            return Ok(Vec::new());
        }
        let batch = parts
            .iter()
            .map(|p| {
                BatchItem::new(
                    operation::DECRYPT,
                    vec![
                        Item::text(tag::UNIQUE_IDENTIFIER, p.uid.clone()),
                        gcm_parameters(),
                        Item::bytes(tag::DATA, p.ciphertext.clone()),
                        Item::bytes(tag::IV_COUNTER_NONCE, p.iv.clone()),
                        Item::bytes(tag::AUTHENTICATED_ENCRYPTION_TAG, p.tag.clone()),
                    ],
                )
            })
            .collect();
        let answers = self
            .exchange(
                &mut session.stream,
                session.version,
                operation::DECRYPT,
                batch,
            )
            .await?;
        answers
            .iter()
            .zip(parts)
            .map(|(answer, p)| dek_from(&answer.0, &p.uid))
            .collect()
    }
}

/// Closes a session politely (a TLS close_notify), not caring whether the server heard.
async fn close(mut session: Session) {
    let _ = tokio::time::timeout(KMS_REQUEST_TIMEOUT, session.stream.shutdown()).await;
}

impl KmsConnector for KmipConnector {
    fn probe(&self) -> BoxFuture<'_, Result<(), KmsError>> {
        Box::pin(async move {
            // Always a new connection: the probe proves the server can be reached now.
            let mut session = self.open_new().await?;
            // A random test value, so a server that echoes or caches cannot pass.
            let mut test = Zeroizing::new([0u8; DEK_LEN]);
            (self.random)(test.as_mut());
            let dek = Dek::from_bytes(test.as_ref()).ok_or(KmsError::ProbeMismatch)?;
            let wrapped = self
                .encrypt(&mut session, std::slice::from_ref(&dek))
                .await?;
            let parts = parse_all(&wrapped)?;
            let back = self.decrypt(&mut session, &parts).await?;
            close(session).await;
            match back.as_slice() {
                [b] if *b == dek => Ok(()),
                _ => Err(KmsError::ProbeMismatch),
            }
        })
    }

    fn wrap<'a>(&'a self, deks: &'a [Dek]) -> BoxFuture<'a, Result<Vec<WrappedDek>, KmsError>> {
        Box::pin(async move {
            if deks.is_empty() {
                return Ok(Vec::new());
            }
            loop {
                let mut session = self.open().await?;
                let reused = session.reused;
                match self.encrypt(&mut session, deks).await {
                    Ok(wrapped) => {
                        self.done(session).await;
                        return Ok(wrapped);
                    }
                    // A kept stream the server closed meanwhile: once more, on a new one.
                    Err(KmsError::Unreachable(_)) if reused => continue,
                    Err(e) => return Err(e),
                }
            }
        })
    }

    fn unwrap<'a>(
        &'a self,
        wrapped: &'a [WrappedDek],
    ) -> BoxFuture<'a, Result<Vec<Dek>, KmsError>> {
        Box::pin(async move {
            if wrapped.is_empty() {
                return Ok(Vec::new());
            }
            // Checked before the server is asked anything.
            let parts = parse_all(wrapped)?;
            loop {
                let mut session = self.open().await?;
                let reused = session.reused;
                match self.decrypt(&mut session, &parts).await {
                    Ok(deks) => {
                        self.done(session).await;
                        return Ok(deks);
                    }
                    Err(KmsError::Unreachable(_)) if reused => continue,
                    Err(e) => return Err(e),
                }
            }
        })
    }

    /// Decrypt with each wrapping's own key, encrypt with this connector's: KMIP keys do
    /// not version, so moving to a new key is a new UID.
    fn rewrap<'a>(
        &'a self,
        wrapped: &'a [WrappedDek],
    ) -> BoxFuture<'a, Result<Vec<WrappedDek>, KmsError>> {
        Box::pin(async move {
            if wrapped.is_empty() {
                return Ok(Vec::new());
            }
            // Checked before the server is asked anything.
            let parts = parse_all(wrapped)?;
            loop {
                let mut session = self.open().await?;
                let reused = session.reused;
                let deks = match self.decrypt(&mut session, &parts).await {
                    Ok(deks) => deks,
                    Err(KmsError::Unreachable(_)) if reused => continue,
                    Err(e) => return Err(e),
                };
                let rewrapped = self.encrypt(&mut session, &deks).await?;
                self.done(session).await;
                return Ok(rewrapped);
            }
        })
    }
}

/// The key UID a KMIP wrapping names, if `ciphertext` is one.
pub fn wrapping_key(ciphertext: &str) -> Option<&str> {
    ciphertext
        .strip_prefix(PREFIX)
        .and_then(|rest| rest.rsplit_once(':'))
        .map(|(uid, _)| uid)
}

/// AES in GCM mode with a 16-byte tag: what both servers need to do authenticated
/// encryption (PyKMIP refuses GCM without the tag length).
fn gcm_parameters() -> Item {
    Item::structure(
        tag::CRYPTOGRAPHIC_PARAMETERS,
        vec![
            Item::enumeration(tag::BLOCK_CIPHER_MODE, block_cipher_mode::GCM),
            Item::enumeration(tag::CRYPTOGRAPHIC_ALGORITHM, cryptographic_algorithm::AES),
            Item::integer(tag::TAG_LENGTH, TAG_LEN as i32),
        ],
    )
}

/// Batch item IDs are the item's index, so an answer finds its request in any order.
fn batch_id(index: usize) -> Vec<u8> {
    (index as u32).to_be_bytes().to_vec()
}

fn malformed(operation: &str, why: impl std::fmt::Display) -> KmsError {
    KmsError::Malformed(format!("KMIP {operation} answer: {why}"))
}

/// Each item's Response Payload, in request order; the first failure result as a
/// [`KmsError::KmipFailure`].
fn answers_in_order(
    name: &str,
    op: u32,
    count: usize,
    response: ResponseMessage,
) -> Result<Vec<Wiped>, KmsError> {
    if response.batch.len() != count {
        return Err(malformed(
            name,
            format!("{} batch items answer {count} asked", response.batch.len()),
        ));
    }
    // A failed item stops the batch; the items after it come back undone. The failed one
    // says why.
    let failure = response
        .batch
        .iter()
        .filter_map(|r| r.result.as_ref().err())
        .min_by_key(|f| f.status != result_status::OPERATION_FAILED);
    if let Some(f) = failure {
        return Err(KmsError::KmipFailure {
            operation: name.to_string(),
            reason: match f.reason {
                Some(r) => result_reason::name(r),
                None => result_status::name(f.status),
            },
            message: f
                .message
                .clone()
                .unwrap_or_else(|| "the server gave no message".into()),
        });
    }
    let mut slots: Vec<Option<Wiped>> = (0..count).map(|_| None).collect();
    for (at, item) in response.batch.into_iter().enumerate() {
        if let Some(answered) = item.operation {
            if answered != op {
                return Err(malformed(
                    name,
                    format!("item {at} answers {}", operation::name(answered)),
                ));
            }
        }
        let index = match &item.id {
            Some(id) => (0..count).find(|i| batch_id(*i) == *id).ok_or_else(|| {
                malformed(name, format!("item {at} has a batch item ID never sent"))
            })?,
            None if count == 1 => 0,
            None => {
                return Err(malformed(
                    name,
                    format!("item {at} of a batch has no Unique Batch Item ID"),
                ))
            }
        };
        let payload = match item.result {
            Ok(Some(p)) => Wiped(p),
            _ => {
                return Err(malformed(
                    name,
                    format!("item {at} has no Response Payload"),
                ))
            }
        };
        if slots[index].replace(payload).is_some() {
            return Err(malformed(
                name,
                format!("item {at} answers a batch item twice"),
            ));
        }
    }
    // Every slot is filled: as many answers as requests, none twice.
    Ok(slots.into_iter().flatten().collect())
}

/// Checks an Encrypt answer and forms the wrapping the config table stores.
fn wrapped_from(payload: &Item, uid: &str, iv: &[u8; IV_LEN]) -> Result<WrappedDek, KmsError> {
    let bad = |why: String| malformed("Encrypt", why);
    check_uid(payload, uid, "Encrypt")?;
    let data = payload
        .get(tag::DATA)
        .and_then(Item::as_bytes)
        .map_err(|e| bad(e.to_string()))?;
    if data.len() != DEK_LEN {
        return Err(bad(format!(
            "ciphertext of {} bytes for a {DEK_LEN}-byte key",
            data.len()
        )));
    }
    if let Some(answered) = payload.find(tag::IV_COUNTER_NONCE) {
        if answered.as_bytes().ok().as_deref() != Some(iv.as_slice()) {
            return Err(bad("the server used another IV than the one sent".into()));
        }
    }
    let gcm_tag = payload
        .get(tag::AUTHENTICATED_ENCRYPTION_TAG)
        .and_then(Item::as_bytes)
        .map_err(|e| bad(e.to_string()))?;
    if gcm_tag.len() != TAG_LEN {
        return Err(bad(format!(
            "authentication tag of {} bytes, not {TAG_LEN}",
            gcm_tag.len()
        )));
    }
    let mut blob = Vec::with_capacity(IV_LEN + DEK_LEN + TAG_LEN);
    blob.extend_from_slice(iv);
    blob.extend_from_slice(&data);
    blob.extend_from_slice(&gcm_tag);
    Ok(WrappedDek {
        ciphertext: format!("{PREFIX}{uid}:{}", B64.encode(blob)),
        key_version: 0,
    })
}

/// Checks a Decrypt answer and takes its plaintext as a DEK.
fn dek_from(payload: &Item, uid: &str) -> Result<Dek, KmsError> {
    check_uid(payload, uid, "Decrypt")?;
    let data = Zeroizing::new(
        payload
            .get(tag::DATA)
            .and_then(Item::as_bytes)
            .map_err(|e| malformed("Decrypt", e))?,
    );
    Dek::from_bytes(&data).ok_or_else(|| {
        malformed(
            "Decrypt",
            format!("unwrapped key has {} bytes, not {DEK_LEN}", data.len()),
        )
    })
}

/// An answer must be about the key asked for.
fn check_uid(payload: &Item, uid: &str, operation: &str) -> Result<(), KmsError> {
    let answered = payload
        .get(tag::UNIQUE_IDENTIFIER)
        .and_then(Item::as_text)
        .map_err(|e| malformed(operation, e))?;
    if answered != uid {
        return Err(malformed(
            operation,
            format!("answered for key {answered:?}, asked for {uid:?}"),
        ));
    }
    Ok(())
}

fn parse_all(wrapped: &[WrappedDek]) -> Result<Vec<Wrapping>, KmsError> {
    wrapped
        .iter()
        .map(|w| parse_wrapping(&w.ciphertext))
        .collect()
}

/// `kmip:<uid>:<base64(iv || ciphertext || tag)>` taken apart.
pub fn parse_wrapping(ciphertext: &str) -> Result<Wrapping, KmsError> {
    let bad = |why: &str| KmsError::Malformed(format!("wrapped DEK is not a KMIP wrapping: {why}"));
    let rest = ciphertext
        .strip_prefix(PREFIX)
        .ok_or_else(|| bad("it does not start with kmip:"))?;
    let (uid, blob) = rest
        .rsplit_once(':')
        .ok_or_else(|| bad("no ':' between the key UID and the ciphertext"))?;
    if uid.is_empty() {
        return Err(bad("the key UID is empty"));
    }
    let blob = B64
        .decode(blob)
        .map_err(|_| bad("the ciphertext is not base64"))?;
    if blob.len() != IV_LEN + DEK_LEN + TAG_LEN {
        return Err(bad(&format!(
            "{} bytes of IV, ciphertext and tag, not {}",
            blob.len(),
            IV_LEN + DEK_LEN + TAG_LEN
        )));
    }
    Ok(Wrapping {
        uid: uid.to_string(),
        iv: blob[..IV_LEN].to_vec(),
        ciphertext: blob[IV_LEN..IV_LEN + DEK_LEN].to_vec(),
        tag: blob[IV_LEN + DEK_LEN..].to_vec(),
    })
}

/// A stream's reading half that counts the bytes read through it.
struct Counted<'a> {
    inner: &'a mut BoxStream,
    read: usize,
}

impl AsyncRead for Counted<'_> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let poll = Pin::new(&mut *self.inner).poll_read(cx, buf);
        self.read += buf.filled().len() - before;
        poll
    }
}

/// An item tree whose byte strings (keys, ciphertext) are zeroed when it is dropped.
struct Wiped(Item);

impl Drop for Wiped {
    fn drop(&mut self) {
        wipe(&mut self.0);
    }
}

fn wipe(item: &mut Item) {
    match &mut item.value {
        Value::ByteString(b) | Value::BigInteger(b) => b.zeroize(),
        Value::Structure(items) => items.iter_mut().for_each(wipe),
        _ => {}
    }
}

/// A request's bytes, in a buffer sized once (so no copy is left where it grew) and wiped
/// on drop; the item trees that held the DEKs are wiped here.
fn encode_wiping(message: RequestMessage) -> Zeroizing<Vec<u8>> {
    let item = Wiped(message.to_item());
    let mut out = Zeroizing::new(Vec::with_capacity(encoded_len(&item.0)));
    item.0.encode_into(&mut out);
    for b in message.batch {
        drop(Wiped(b.payload));
    }
    out
}

/// The length of an item's encoding, padding included.
fn encoded_len(item: &Item) -> usize {
    let value = match &item.value {
        Value::Structure(items) => items.iter().map(encoded_len).sum(),
        Value::BigInteger(b) | Value::ByteString(b) => b.len(),
        Value::TextString(s) => s.len(),
        Value::Integer(_) | Value::Enumeration(_) | Value::Interval(_) => 4,
        Value::LongInteger(_)
        | Value::Boolean(_)
        | Value::DateTime(_)
        | Value::DateTimeExtended(_) => 8,
    };
    ttlv::HEADER_LEN + value.div_ceil(8) * 8
}

#[cfg(test)]
#[path = "kmip_tests.rs"]
mod tests;
