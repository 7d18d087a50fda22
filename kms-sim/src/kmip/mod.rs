//! A simulated KMIP server: AES symmetric keys owned by the client certificate's CN, with
//! KMIP's lifecycle, over TTLV from the `ttlv` crate, deterministic by seed and by the clock
//! it is given. It speaks KMIP 1.2, 1.3, 1.4, 2.0 and 2.1 and answers each request in the
//! request's version.
//!
//! It follows PyKMIP 0.11's server (`kmip/services/server/engine.py`) in state checks,
//! result reasons and the order of checks, except where listed here:
//!
//! - Decrypt works for a Deactivated key, as KMIP lets a deactivated key still process
//!   what it protected; PyKMIP wants Active (Permission Denied). Intended: the issue needs it.
//! - Another CN's object answers Item Not Found ("Could not locate object: UID"), exactly
//!   as an unknown UID does; PyKMIP answers Permission Denied with that same message.
//! - Versions: 1.2–2.1 here; PyKMIP speaks 1.0–2.0. A request in 1.0, 1.1 or any version not
//!   listed gets one Invalid Message answer (in the request's version, naming the version
//!   and ours), as PyKMIP answers a version it does not know (2.1, 3.0), except that PyKMIP
//!   cannot parse such a message and so answers in version 1.0, "Error parsing request
//!   message. See server logs for more information." Invalid Message, not 2.0's
//!   Unsupported Protocol Version, because a 1.x client's spec has no such reason.
//! - Result messages: the result reasons are PyKMIP's, and so are its messages for an
//!   object not found, but where PyKMIP's message names neither the object nor its state
//!   (Encrypt or Decrypt with a key that is not Active, Activate of a key that is not
//!   Pre-Active, Destroy of an Active key, Revoke of a key that is not Active, GCM without a
//!   Tag Length or a tag) this one names them, for the harness's reports; clients act on
//!   the reason.
//! - A destroyed object keeps its metadata and its state (Destroyed / Destroyed
//!   Compromised) for the oracle and for Revoke with Key Compromise (Destroyed -> Destroyed
//!   Compromised, the spec's transition); every other operation answers Item Not Found for
//!   it, as PyKMIP does after deleting the row, with a message saying it was destroyed.
//! - A payload that is TTLV but not the operation's shape (missing or mistyped field, or a
//!   field its version does not have, such as a GCM tag in 1.2) gets Invalid Field naming
//!   the field, for that batch item; PyKMIP fails to parse the whole
//!   message and answers Invalid Message in version 1.0 without naming anything.
//! - An operation outside KMIP's enumeration answers Operation Not Supported per item;
//!   PyKMIP cannot parse it and answers Invalid Message.
//! - A GCM tag that does not verify, or CBC padding that does not strip, is Cryptographic
//!   Failure; in PyKMIP the library's exception escapes as General Failure.
//! - Get gives Transparent Symmetric Key on request; PyKMIP refuses any format but Raw.
//! - Get Attributes reports Activation, Deactivation, Compromise and Destroy Dates once they
//!   are set; PyKMIP never reports them. Asked for every attribute, it leaves out PyKMIP's
//!   own Operation Policy Name ("default") and Sensitive (false), which it does not keep.
//! - Query Objects lists Symmetric Key; PyKMIP lists nothing. Query Operations lists only
//!   the operations served here. Query Server Information names this server in Vendor
//!   Identification ([`VENDOR_IDENTIFICATION`]), not PyKMIP.
//! - Create makes AES keys only, and refuses attributes other than Name, Cryptographic
//!   Algorithm, Length and Usage Mask (PyKMIP stores several more).
//! - GCM takes a 12- or 16-byte IV and a Tag Length of 4..=16 (the cryptography library
//!   under PyKMIP takes any IV of 8 bytes or more; it cuts a longer Tag Length to 16).
//! - The ID placeholder (a missing UID meaning the last Create's) lives for one request
//!   message, as the spec says; PyKMIP keeps it across messages.
//! - The request's Time Stamp is not checked against the clock (PyKMIP refuses one more than
//!   60 s old or in the future): simulated clients' clocks are the scenario's business.

mod attributes;
pub mod faults;
mod message;
pub mod objects;
mod ops;
mod state;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};

pub use self::faults::Fault;
pub use self::message::SUPPORTED as SUPPORTED_VERSIONS;
pub use self::objects::ObjectState;
pub use self::ops::server::VENDOR_IDENTIFICATION;
use self::state::State;

/// Unix seconds, from whatever clock the caller runs on (simulated or real).
pub type Clock = Arc<dyn Fn() -> i64 + Send + Sync>;

/// A clock that always says `secs`, for tests.
pub fn fixed_clock(secs: i64) -> Clock {
    Arc::new(move || secs)
}

/// The largest request accepted, header included.
pub const MESSAGE_LEN_MAX: usize = 1 << 20;

/// One object as the harness sees it; no key material.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectSummary {
    pub uid: String,
    pub names: Vec<String>,
    pub state: ObjectState,
    pub length: i32,
    pub initial_date: i64,
    pub activation_date: Option<i64>,
    pub deactivation_date: Option<i64>,
    pub compromise_date: Option<i64>,
    pub destroy_date: Option<i64>,
}

#[derive(Clone)]
pub struct KmipSim {
    state: Arc<Mutex<State>>,
}

impl KmipSim {
    /// An empty server. Key material and server-made IVs come from a ChaCha RNG seeded with
    /// `seed`; dates and time stamps from `clock`.
    pub fn new(seed: u64, clock: Clock) -> Self {
        KmipSim {
            state: Arc::new(Mutex::new(State::new(seed, clock))),
        }
    }

    /// Answers one request message from the client whose certificate CN is `owner`. Always
    /// returns a Response Message, whatever the bytes.
    pub fn handle(&self, bytes: &[u8], owner: &str) -> Vec<u8> {
        message::answer(&mut self.lock(), bytes, owner).bytes
    }

    /// Serves one connection (plain bytes: TLS, if any, is the caller's, and so is reading
    /// the CN from the client's certificate) until the client closes it. A request that is
    /// not TTLV gets one Invalid Message answer and the connection is closed, since where the
    /// next message would start is unknown; so does a frame header that is not a structure or
    /// announces more than [`MESSAGE_LEN_MAX`] bytes.
    pub async fn serve_connection<S>(&self, mut stream: S, owner_cn: String)
    where
        S: AsyncRead + AsyncWrite + Unpin + Send,
    {
        let limits = ttlv::Limits {
            message_len_max: MESSAGE_LEN_MAX,
            ..ttlv::Limits::default()
        };
        loop {
            let (bytes, close) = match ttlv::read_frame(&mut stream, limits).await {
                Ok(None) => break,
                Ok(Some(frame)) => {
                    let answer = message::answer(&mut self.lock(), &frame, &owner_cn);
                    (answer.bytes, answer.close)
                }
                Err(e) if e.kind() == std::io::ErrorKind::InvalidData => {
                    let answer = message::frame_error(&mut self.lock(), &e.to_string());
                    (answer, true)
                }
                Err(e) => {
                    // The peer went away mid-message: nobody to answer.
                    tracing::debug!(owner = %owner_cn, error = %e, "kmip connection ended");
                    break;
                }
            };
            if stream.write_all(&bytes).await.is_err() || stream.flush().await.is_err() {
                break;
            }
            if close {
                break;
            }
        }
        let _ = stream.shutdown().await;
    }

    /// The state of `uid`, whoever owns it; `None` if no such object was ever made.
    pub fn state(&self, uid: &str) -> Option<ObjectState> {
        self.lock().object(uid).map(|o| o.state)
    }

    /// What a Decrypt by `owner` of AES-GCM `ciphertext` under `uid` with `iv` and
    /// `auth_tag` (no additional data) would answer now, if it would succeed. Not a request:
    /// not counted, draws nothing from the RNG, ignores faults. The plaintext is for a
    /// harness that checks a wrapped key is the key it should be; never to be shown.
    pub fn decrypt(
        &self,
        owner: &str,
        uid: &str,
        iv: &[u8],
        ciphertext: &[u8],
        auth_tag: &[u8],
    ) -> Option<Vec<u8>> {
        let st = self.lock();
        match st.object(uid) {
            Some(o) if o.owner == owner => ops::crypto::decrypt_now(o, iv, ciphertext, auth_tag),
            _ => None,
        }
    }

    /// `owner`'s objects, destroyed ones included, in UID order.
    pub fn objects(&self, owner: &str) -> Vec<ObjectSummary> {
        self.lock()
            .objects
            .values()
            .filter(|o| o.owner == owner)
            .map(|o| ObjectSummary {
                uid: o.uid.clone(),
                names: o.names.clone(),
                state: o.state,
                length: o.length,
                initial_date: o.initial_date,
                activation_date: o.activation_date,
                deactivation_date: o.deactivation_date,
                compromise_date: o.compromise_date,
                destroy_date: o.destroy_date,
            })
            .collect()
    }

    /// Batch items answered so far, by KMIP operation name ("Encrypt", ...; an unknown
    /// operation by its hex value), faulted ones included.
    pub fn requests(&self) -> BTreeMap<String, u64> {
        self.lock().requests.clone()
    }

    /// Request messages answered so far, undecodable ones included.
    pub fn messages_served(&self) -> u64 {
        self.lock().messages
    }

    /// A panic elsewhere must not turn every later request into a panic too.
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}
