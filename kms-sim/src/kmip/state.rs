//! Everything a simulated KMIP server remembers: its objects, the next UID, the request
//! counters, the fault switch, the clock it is given and the one seeded RNG every key and
//! server-made IV comes from.

use std::collections::BTreeMap;

use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha20Rng;

use super::faults::Fault;
use super::objects::{KeyMaterial, ManagedObject};
use super::Clock;

pub struct State {
    pub rng: ChaCha20Rng,
    pub clock: Clock,
    /// Keyed by the numeric UID, so objects iterate in creation order.
    pub objects: BTreeMap<u64, ManagedObject>,
    pub next_uid: u64,
    /// Batch items answered, by operation name; messages answered.
    pub requests: BTreeMap<String, u64>,
    pub messages: u64,
    pub fault: Fault,
    /// A service-wide fault switch whose protocol-level modes (the HTTP status faults)
    /// become KMIP's General Failure here, so one `kms-fault` step serves every KMS kind.
    pub chaos: Option<crate::chaos::Chaos>,
    /// Batch items that met a fault.
    pub fault_hits: u64,
}

impl State {
    pub fn new(seed: u64, clock: Clock) -> Self {
        State {
            rng: ChaCha20Rng::seed_from_u64(seed),
            clock,
            objects: BTreeMap::new(),
            next_uid: 1,
            requests: BTreeMap::new(),
            messages: 0,
            fault: Fault::None,
            chaos: None,
            fault_hits: 0,
        }
    }

    /// The fault a batch item meets: this server's own, else the service switch's.
    pub fn effective_fault(&self) -> Fault {
        use crate::chaos::Fault as Wire;
        match (self.fault, self.chaos.as_ref().map(|c| c.fault())) {
            (Fault::None, Some(Wire::Error500 | Wire::Error503 | Wire::RateLimit)) => {
                Fault::GeneralFailure
            }
            (own, _) => own,
        }
    }

    pub fn now(&self) -> i64 {
        (self.clock)()
    }

    pub fn random_bytes(&mut self, len: usize) -> Vec<u8> {
        let mut bytes = vec![0u8; len];
        self.rng.fill_bytes(&mut bytes);
        bytes
    }

    /// A new Pre-Active AES key of `bits` for `owner`, under the next sequential UID.
    pub fn create_aes(
        &mut self,
        owner: &str,
        bits: i32,
        usage_mask: i32,
        names: Vec<String>,
    ) -> String {
        let material = KeyMaterial::new(self.random_bytes(bits as usize / 8));
        let uid = self.next_uid;
        self.next_uid += 1;
        let now = self.now();
        let object = ManagedObject::new_aes(
            uid.to_string(),
            owner.to_string(),
            material,
            usage_mask,
            names,
            now,
        );
        self.objects.insert(uid, object);
        uid.to_string()
    }

    /// The object `uid` whatever its owner: for the harness, never for a client.
    pub fn object_mut(&mut self, uid: &str) -> Option<&mut ManagedObject> {
        let n: u64 = uid.parse().ok()?;
        // "01" is not "1": a UID is a string, only its lookup is numeric.
        if n.to_string() != uid {
            return None;
        }
        self.objects.get_mut(&n)
    }

    pub fn object(&self, uid: &str) -> Option<&ManagedObject> {
        let n: u64 = uid.parse().ok()?;
        if n.to_string() != uid {
            return None;
        }
        self.objects.get(&n)
    }
}
