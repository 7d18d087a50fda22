//! Faults a scenario switches on and off inside the KMIP server, and the hand of the KMIP
//! administrator: what a real server's operators do to keys behind the clients' backs.
//!
//! These act at the protocol level: the server answers, with a KMIP error. Faults below the
//! protocol (refused connections, hangs, truncated or garbage bytes) belong to whatever
//! carries the bytes, not here. Every fault is deterministic: it applies to every batch item
//! while it is on.

use ttlv::enums::result_reason;
use ttlv::ResultFailure;

use super::objects::{ObjectState, Revocation};
use super::KmipSim;

/// What the server does to each batch item while the fault is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Fault {
    /// Serves normally.
    #[default]
    None,
    /// Every operation answers Operation Failed / General Failure, as a server whose
    /// database or HSM is down does.
    GeneralFailure,
    /// Only this operation (a `ttlv::enums::operation` value) fails so; the rest are served.
    GeneralFailureOn(u32),
}

impl Fault {
    /// The answer a batch item of `operation` gets instead of being served, if any.
    pub(crate) fn failure(self, operation: u32) -> Option<ResultFailure> {
        let hit = match self {
            Fault::None => false,
            Fault::GeneralFailure => true,
            Fault::GeneralFailureOn(op) => op == operation,
        };
        hit.then(|| {
            ResultFailure::new(
                result_reason::GENERAL_FAILURE,
                "Operation failed: the server could not process the request (its key store \
                 is unavailable)",
            )
        })
    }
}

/// The administrator's operations: not requests, not counted, no owner check.
impl KmipSim {
    pub fn set_fault(&self, fault: Fault) {
        self.lock().fault = fault;
    }

    /// Follows a service-wide fault switch too: its HTTP status faults (500, 503, 429)
    /// answer General Failure, KMIP's nearest kin. Its byte-level faults are
    /// [`crate::wire::Faulty`]'s.
    pub fn follow(&self, chaos: crate::chaos::Chaos) {
        self.lock().chaos = Some(chaos);
    }

    pub fn fault(&self) -> Fault {
        self.lock().fault
    }

    /// Batch items that met a fault.
    pub fn fault_hits(&self) -> u64 {
        self.lock().fault_hits
    }

    /// A new Active AES-256 key for `owner`, usable for Encrypt and Decrypt, named `name`.
    pub fn create_key(&self, owner: &str, name: &str) -> String {
        use ttlv::enums::usage_mask;
        let mut st = self.lock();
        let uid = st.create_aes(
            owner,
            256,
            usage_mask::ENCRYPT | usage_mask::DECRYPT,
            vec![name.to_string()],
        );
        let now = st.now();
        if let Some(object) = st.object_mut(&uid) {
            // A fresh key is Pre-Active, so this cannot be refused.
            let _ = object.activate(now);
        }
        uid
    }

    /// Revokes `uid` for a reason other than compromise: Active -> Deactivated.
    pub fn revoke(&self, uid: &str) -> Result<ObjectState, String> {
        self.admin(uid, |o, now| o.revoke(Revocation::Deactivate, now))
    }

    /// Revokes `uid` for Key Compromise: -> Compromised (Destroyed Compromised if destroyed).
    pub fn compromise(&self, uid: &str) -> Result<ObjectState, String> {
        self.admin(uid, |o, now| o.revoke(Revocation::Compromise, now))
    }

    /// Destroys `uid`'s key material; refused for an Active key, as for a client.
    pub fn destroy(&self, uid: &str) -> Result<ObjectState, String> {
        self.admin(uid, |o, now| o.destroy(now))
    }

    fn admin(
        &self,
        uid: &str,
        change: impl FnOnce(
            &mut super::objects::ManagedObject,
            i64,
        ) -> Result<(), super::objects::StateError>,
    ) -> Result<ObjectState, String> {
        let mut st = self.lock();
        let now = st.now();
        let object = st
            .object_mut(uid)
            .ok_or_else(|| format!("no object {uid}"))?;
        change(object, now).map_err(|e| format!("object {uid} {}", e.0))?;
        Ok(object.state)
    }
}
