//! The config table's Raft records as they lie on a backend's disk, each sealed with a
//! checksum that binds what the record is (its kind, and a log entry's index) and its
//! bytes.
//!
//! A flipped bit fails the checksum, and so does a record that a misdirected write put
//! where another belongs (a log entry at another index, a vote where the committed mark
//! goes): the reader finds both before it decodes anything. A lost write is found by the
//! read-back after each write (see `Disk::write_record`). Like a block's checksum this
//! catches damage, not an attacker: it is no MAC.

use std::fmt;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// Which Raft record: what a record's checksum binds besides its bytes. Ordered so that
/// the log entries come last, by index (`Log(a)..=Log(b)` is a range of the log).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum RecordId {
    /// The vote this replica last cast or saw.
    Vote,
    /// The last log id this replica knows committed.
    Committed,
    /// The last log id purged from the log (the snapshot covers it).
    LastPurged,
    /// The last snapshot built or installed.
    Snapshot,
    /// The log entry at this index.
    Log(u64),
}

impl RecordId {
    /// The record's kind, as events and probes name it (`log-entry`).
    pub fn kind(self) -> &'static str {
        match self {
            RecordId::Vote => "vote",
            RecordId::Committed => "committed",
            RecordId::LastPurged => "last-purged",
            RecordId::Snapshot => "snapshot",
            RecordId::Log(_) => "log-entry",
        }
    }

    /// A log entry's index.
    pub fn index(self) -> Option<u64> {
        match self {
            RecordId::Log(i) => Some(i),
            _ => None,
        }
    }
}

impl fmt::Display for RecordId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.index() {
            Some(i) => write!(f, "{} {i}", self.kind()),
            None => f.write_str(self.kind()),
        }
    }
}

/// Whether a read checks a record's checksum before it decodes the record: always, but
/// under the planted bug `record-skips-checksum`, which trusts the decoder to notice damage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordCheck {
    Verify,
    DecodeOnly,
}

/// One record on disk: its bytes (JSON of the value) and the checksum its writer made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealedRecord {
    pub bytes: Vec<u8>,
    pub checksum: [u8; 16],
}

/// A config record a backend could not read or write. It names the record, never its
/// contents (which may hold wrapped DEKs and KMS credentials).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    #[error(
        "config record {0} failed its checksum (damaged, or written where it does not belong)"
    )]
    Corrupt(RecordId),
    #[error("I/O error reading config record {0}: latent sector error")]
    Unreadable(RecordId),
    #[error("I/O error writing config record {0}: the read-back never found it")]
    WriteNotStored(RecordId),
}

impl RecordError {
    /// The record the error is about.
    pub fn record(&self) -> RecordId {
        match self {
            RecordError::Corrupt(id)
            | RecordError::Unreadable(id)
            | RecordError::WriteNotStored(id) => *id,
        }
    }
}

impl SealedRecord {
    /// `value` sealed as record `id`. Serializing a record's own types cannot fail; if it
    /// ever did, the record is stored empty and fails to decode at read, never silently.
    pub fn seal(id: RecordId, value: &impl Serialize) -> Self {
        let bytes = serde_json::to_vec(value).unwrap_or_default();
        let checksum = record_checksum(id, &bytes);
        SealedRecord { bytes, checksum }
    }

    /// Whether this copy is intact and belongs at `id`.
    pub fn verify(&self, id: RecordId) -> bool {
        record_checksum(id, &self.bytes) == self.checksum
    }

    /// The value, if this copy verifies as record `id` (unless `check` says not to) and
    /// decodes.
    pub fn open<T: DeserializeOwned>(
        &self,
        id: RecordId,
        check: RecordCheck,
    ) -> Result<T, RecordError> {
        if check == RecordCheck::Verify && !self.verify(id) {
            return Err(RecordError::Corrupt(id));
        }
        serde_json::from_slice(&self.bytes).map_err(|_| RecordError::Corrupt(id))
    }
}

/// A record's checksum ([`crate::disk::checksum`]): its kind and index, then its bytes;
/// every field but the bytes, which come last, has a fixed length.
fn record_checksum(id: RecordId, bytes: &[u8]) -> [u8; 16] {
    let (kind, index): (u8, u64) = match id {
        RecordId::Vote => (1, 0),
        RecordId::Committed => (2, 0),
        RecordId::LastPurged => (3, 0),
        // 4 was the state machine, which lives in memory now (see
        // `config_table::store`); its number is not reused.
        RecordId::Snapshot => (5, 0),
        RecordId::Log(i) => (6, i),
    };
    crate::disk::checksum(
        b"wekasim config record checksum v1",
        &[&[kind], &index.to_le_bytes(), bytes],
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flipped_bit_is_detected() {
        let id = RecordId::Log(7);
        let sealed = SealedRecord::seal(id, &("fs create data", 42u64));
        assert_eq!(
            sealed
                .open::<(String, u64)>(id, RecordCheck::Verify)
                .unwrap(),
            ("fs create data".to_string(), 42)
        );
        for i in 0..sealed.bytes.len() {
            for bit in 0..8 {
                let mut rotted = sealed.clone();
                rotted.bytes[i] ^= 1 << bit;
                assert!(!rotted.verify(id), "byte {i} bit {bit}");
                assert_eq!(
                    rotted.open::<(String, u64)>(id, RecordCheck::Verify),
                    Err(RecordError::Corrupt(id))
                );
            }
        }
        let mut bad_sum = sealed.clone();
        bad_sum.checksum[3] ^= 0x10;
        assert!(!bad_sum.verify(id));
    }

    #[test]
    fn a_record_at_the_wrong_index_or_kind_is_detected() {
        let sealed = SealedRecord::seal(RecordId::Log(7), &"entry");
        assert!(sealed.verify(RecordId::Log(7)));
        assert!(!sealed.verify(RecordId::Log(8)));
        assert!(!sealed.verify(RecordId::Log(6)));
        assert_eq!(
            sealed.open::<String>(RecordId::Log(8), RecordCheck::Verify),
            Err(RecordError::Corrupt(RecordId::Log(8)))
        );
        // The same bytes as another kind of record.
        let vote = SealedRecord::seal(RecordId::Vote, &Some(3u64));
        assert!(!vote.verify(RecordId::Committed));
        assert!(!vote.verify(RecordId::Log(0)));
    }

    #[test]
    fn an_error_names_the_record_not_its_contents() {
        let e = RecordError::Corrupt(RecordId::Log(12));
        assert_eq!(e.record(), RecordId::Log(12));
        assert!(e.to_string().contains("log-entry 12"), "{e}");
        assert_eq!(RecordId::Snapshot.to_string(), "snapshot");
    }
}
