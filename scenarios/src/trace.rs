//! The trace: every event of a run, stamped with simulated time and host, as JSON lines.
//! Its hash is the run's fingerprint: the same seed must give the same hash anywhere.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;
use sha2::{Digest, Sha256};

#[derive(Default)]
pub struct Trace {
    lines: Vec<String>,
    hasher: Sha256,
}

pub type SharedTrace = Arc<Mutex<Trace>>;

impl Trace {
    /// Appends one event. `event` must serialize to a JSON object; its keys are sorted
    /// (serde_json's map is ordered), so the line is the same on every machine.
    pub fn record(&mut self, at: Duration, host: &str, event: &impl Serialize) {
        let mut value = serde_json::to_value(event).unwrap_or_else(
            |e| serde_json::json!({ "event": "unserializable", "reason": e.to_string() }),
        );
        if let Some(map) = value.as_object_mut() {
            map.insert("t_ms".into(), (at.as_millis() as u64).into());
            map.insert("host".into(), host.into());
        }
        let line = value.to_string();
        self.hasher.update(line.as_bytes());
        self.hasher.update(b"\n");
        self.lines.push(line);
    }

    pub fn lines(&self) -> &[String] {
        &self.lines
    }

    /// The first 16 hex digits of SHA-256 over every line.
    pub fn hash(&self) -> String {
        let digest = self.hasher.clone().finalize();
        digest[..8].iter().map(|b| format!("{b:02x}")).collect()
    }
}

pub fn lock(trace: &SharedTrace) -> std::sync::MutexGuard<'_, Trace> {
    trace.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_events_same_hash_and_order_matters() {
        let ev = |n: u64| serde_json::json!({"event": "x", "n": n});
        let mut a = Trace::default();
        let mut b = Trace::default();
        a.record(Duration::from_millis(10), "h", &ev(1));
        a.record(Duration::from_millis(20), "h", &ev(2));
        b.record(Duration::from_millis(10), "h", &ev(1));
        b.record(Duration::from_millis(20), "h", &ev(2));
        assert_eq!(a.hash(), b.hash());
        let mut c = Trace::default();
        c.record(Duration::from_millis(20), "h", &ev(2));
        c.record(Duration::from_millis(10), "h", &ev(1));
        assert_ne!(a.hash(), c.hash());
        assert_eq!(a.lines()[0], r#"{"event":"x","host":"h","n":1,"t_ms":10}"#);
    }
}
