//! The managed objects a simulated KMIP server keeps: AES symmetric keys with their owner,
//! lifecycle state, names and dates, and the state transitions KMIP allows between them.

use std::fmt;

use ttlv::enums::{cryptographic_algorithm, state};

/// Key bytes. Debug shows the length only, so no log, trace or panic message can carry a key.
#[derive(Clone, PartialEq, Eq)]
pub struct KeyMaterial(Vec<u8>);

impl KeyMaterial {
    pub fn new(bytes: Vec<u8>) -> Self {
        KeyMaterial(bytes)
    }

    /// The bytes themselves, for the cipher and for Get.
    pub fn expose(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for KeyMaterial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "<key material, {} bytes>", self.0.len())
    }
}

/// KMIP's object states (the values of `ttlv::enums::state`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum ObjectState {
    PreActive,
    Active,
    Deactivated,
    Compromised,
    Destroyed,
    DestroyedCompromised,
}

impl ObjectState {
    pub fn to_enum(self) -> u32 {
        match self {
            ObjectState::PreActive => state::PRE_ACTIVE,
            ObjectState::Active => state::ACTIVE,
            ObjectState::Deactivated => state::DEACTIVATED,
            ObjectState::Compromised => state::COMPROMISED,
            ObjectState::Destroyed => state::DESTROYED,
            ObjectState::DestroyedCompromised => state::DESTROYED_COMPROMISED,
        }
    }

    pub fn name(self) -> String {
        state::name(self.to_enum())
    }

    /// Whether the key material is gone: a destroyed object keeps only its metadata.
    pub fn is_destroyed(self) -> bool {
        matches!(
            self,
            ObjectState::Destroyed | ObjectState::DestroyedCompromised
        )
    }
}

/// How a revocation ends, from its Revocation Reason Code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Revocation {
    /// Key Compromise: the object becomes Compromised (or Destroyed Compromised).
    Compromise,
    /// Any other reason: an Active object becomes Deactivated.
    Deactivate,
}

/// A transition KMIP does not allow from the object's current state; the message names
/// the state, the caller adds the object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateError(pub String);

/// One symmetric key.
#[derive(Debug, Clone)]
pub struct ManagedObject {
    pub uid: String,
    /// The client certificate CN that created it; nobody else can see it.
    pub owner: String,
    pub names: Vec<String>,
    /// Always AES here.
    pub algorithm: u32,
    /// Bits: 128, 192 or 256.
    pub length: i32,
    pub usage_mask: i32,
    pub state: ObjectState,
    pub material: KeyMaterial,
    pub initial_date: i64,
    pub activation_date: Option<i64>,
    pub deactivation_date: Option<i64>,
    pub compromise_date: Option<i64>,
    pub destroy_date: Option<i64>,
}

impl ManagedObject {
    pub fn new_aes(
        uid: String,
        owner: String,
        material: KeyMaterial,
        usage_mask: i32,
        names: Vec<String>,
        now: i64,
    ) -> Self {
        ManagedObject {
            uid,
            owner,
            names,
            algorithm: cryptographic_algorithm::AES,
            length: (material.expose().len() * 8) as i32,
            usage_mask,
            state: ObjectState::PreActive,
            material,
            initial_date: now,
            activation_date: None,
            deactivation_date: None,
            compromise_date: None,
            destroy_date: None,
        }
    }

    /// Pre-Active -> Active. Refused from any other state, as PyKMIP does.
    pub fn activate(&mut self, now: i64) -> Result<(), StateError> {
        if self.state != ObjectState::PreActive {
            return Err(StateError(format!(
                "is {}, not Pre-Active, and cannot be activated",
                self.state.name()
            )));
        }
        self.state = ObjectState::Active;
        self.activation_date = Some(now);
        Ok(())
    }

    /// Key Compromise takes any live object to Compromised and a destroyed one to Destroyed
    /// Compromised; any other reason takes only an Active object to Deactivated.
    pub fn revoke(&mut self, how: Revocation, now: i64) -> Result<(), StateError> {
        match how {
            Revocation::Compromise => {
                self.state = match self.state {
                    ObjectState::Destroyed | ObjectState::DestroyedCompromised => {
                        ObjectState::DestroyedCompromised
                    }
                    _ => ObjectState::Compromised,
                };
                self.compromise_date.get_or_insert(now);
            }
            Revocation::Deactivate => {
                if self.state != ObjectState::Active {
                    return Err(StateError(format!(
                        "is {}, not Active, and can be revoked only for Key Compromise",
                        self.state.name()
                    )));
                }
                self.state = ObjectState::Deactivated;
                self.deactivation_date = Some(now);
            }
        }
        Ok(())
    }

    /// Any state but Active (revoke first) and the destroyed ones goes to Destroyed, or to
    /// Destroyed Compromised from Compromised. The key material is dropped; the metadata stays.
    pub fn destroy(&mut self, now: i64) -> Result<(), StateError> {
        self.state = match self.state {
            ObjectState::Active => {
                return Err(StateError(
                    "is Active and cannot be destroyed: revoke it first".into(),
                ))
            }
            ObjectState::Destroyed | ObjectState::DestroyedCompromised => {
                return Err(StateError("is already destroyed".into()))
            }
            ObjectState::Compromised => ObjectState::DestroyedCompromised,
            ObjectState::PreActive | ObjectState::Deactivated => ObjectState::Destroyed,
        };
        self.material = KeyMaterial::new(Vec::new());
        self.destroy_date = Some(now);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> ManagedObject {
        ManagedObject::new_aes(
            "1".into(),
            "alice".into(),
            KeyMaterial::new(vec![7; 32]),
            12,
            vec!["k".into()],
            100,
        )
    }

    #[test]
    fn debug_never_shows_key_material() {
        let k = key();
        let shown = format!("{k:?}");
        assert!(shown.contains("<key material, 32 bytes>"), "{shown}");
        assert!(!shown.contains("7, 7"), "{shown}");
    }

    #[test]
    fn transitions_follow_kmip() {
        let mut k = key();
        assert!(k.revoke(Revocation::Deactivate, 1).is_err(), "pre-active");
        assert!(k.destroy(1).is_ok(), "pre-active may be destroyed");
        assert_eq!(k.state, ObjectState::Destroyed);
        assert!(k.material.expose().is_empty());
        k.revoke(Revocation::Compromise, 2).unwrap();
        assert_eq!(k.state, ObjectState::DestroyedCompromised);

        let mut k = key();
        k.activate(5).unwrap();
        assert!(k.activate(6).is_err());
        assert!(k.destroy(6).is_err(), "active keys are revoked first");
        k.revoke(Revocation::Deactivate, 7).unwrap();
        assert_eq!(
            (k.state, k.activation_date, k.deactivation_date),
            (ObjectState::Deactivated, Some(5), Some(7))
        );
        k.revoke(Revocation::Compromise, 8).unwrap();
        assert_eq!(k.state, ObjectState::Compromised);
        k.destroy(9).unwrap();
        assert_eq!(
            (k.state, k.destroy_date),
            (ObjectState::DestroyedCompromised, Some(9))
        );
        assert!(k.destroy(10).is_err());
    }
}
