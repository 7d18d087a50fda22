//! A backend's config-table replica stops for good when its storage meets a record it
//! cannot verify (bit rot, a record written where another belongs, a bad sector) or
//! cannot write (a write the read-back never found).
//!
//! Why stop, and not drop the damaged suffix of the log and catch up from the leader:
//! this replica may already have acknowledged the entries it lost (its vote, an append
//! the leader counted toward a commit). A voter that forgets what it acknowledged can
//! let a committed entry be lost: with it, a minority that never had the entry can form
//! a majority and elect a leader that overwrites it. Recovering safely needs a
//! protocol-aware repair (asking the other replicas what was committed before voting
//! again), which is out of scope. So the replica stops voting, appending and applying;
//! the backend stays up, reports which record failed (never its contents), and refuses
//! what needs the config table with a typed error. The runner's atlas keeps a quorum of
//! intact replicas, so the cluster goes on without it.

use std::sync::{Arc, Mutex};

use openraft::{StorageError, StorageIOError};

use super::NodeId;
use crate::disk::records::{RecordError, RecordId};

/// Whether this replica has stopped, and on which record; shared by the node and its
/// Raft storage.
#[derive(Clone)]
pub struct FailStop(Arc<Inner>);

struct Inner {
    stopped: Mutex<Option<RecordError>>,
    /// Tells the world, once: an event and a probe.
    report: Box<dyn Fn(&RecordError) + Send + Sync>,
}

impl FailStop {
    /// A replica that runs, and calls `report` the one time it stops.
    pub fn new(report: impl Fn(&RecordError) + Send + Sync + 'static) -> Self {
        FailStop(Arc::new(Inner {
            stopped: Mutex::new(None),
            report: Box::new(report),
        }))
    }

    /// The replica met `error`: it stops (if it had not already) and reports it.
    pub fn meet(&self, error: &RecordError) {
        let first = {
            let mut stopped = self.0.stopped.lock().unwrap_or_else(|e| e.into_inner());
            if stopped.is_some() {
                false
            } else {
                *stopped = Some(error.clone());
                true
            }
        };
        if first {
            (self.0.report)(error);
        }
    }

    /// The record this replica stopped on, if it has.
    pub fn stopped(&self) -> Option<RecordId> {
        self.error().map(|e| e.record())
    }

    /// The error this replica stopped on, if it has.
    pub fn error(&self) -> Option<RecordError> {
        self.0
            .stopped
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// `Err` once stopped: storage refuses every read and write after the first failure,
    /// so nothing this replica does afterwards rests on a record it could not trust.
    pub fn check(&self) -> Result<(), RecordError> {
        match self.error() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Stops on `error` and hands it back, for the storage call to fail with: openraft,
    /// given the storage error it becomes, shuts its Raft core down (a fatal storage
    /// error), which is the stop itself.
    pub fn fail(&self, error: RecordError) -> RecordError {
        self.meet(&error);
        error
    }
}

/// The storage error openraft is given for a record this replica could not read or
/// write: it names the record, never its contents.
impl From<RecordError> for StorageError<NodeId> {
    fn from(error: RecordError) -> Self {
        match error {
            RecordError::WriteNotStored(_) => StorageIOError::<NodeId>::write(&error).into(),
            _ => StorageIOError::<NodeId>::read(&error).into(),
        }
    }
}

impl std::fmt::Debug for FailStop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.stopped() {
            Some(r) => write!(f, "FailStop(stopped on {r})"),
            None => f.write_str("FailStop(running)"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn stops_once_and_refuses_everything_after() {
        let reports = Arc::new(AtomicUsize::new(0));
        let counted = reports.clone();
        let stop = FailStop::new(move |_| {
            counted.fetch_add(1, Ordering::SeqCst);
        });
        assert!(stop.check().is_ok());
        let _ = stop.fail(RecordError::Corrupt(RecordId::Log(4)));
        let _ = stop.fail(RecordError::Unreadable(RecordId::Vote));
        assert_eq!(reports.load(Ordering::SeqCst), 1);
        assert_eq!(stop.stopped(), Some(RecordId::Log(4)));
        assert!(stop.check().is_err());
    }
}
