//! The one use of the real clock: measuring how long a run took, for reports and
//! benchmarks. Nothing measured here enters a trace or its hash.

use std::time::Duration;

#[allow(clippy::disallowed_types)]
pub struct Stopwatch(std::time::Instant);

impl Stopwatch {
    #[allow(clippy::disallowed_methods, clippy::disallowed_types)]
    pub fn start() -> Self {
        Stopwatch(std::time::Instant::now())
    }

    pub fn elapsed(&self) -> Duration {
        self.0.elapsed()
    }
}

/// A suffix that differs from run to run (seconds and nanoseconds of the real clock), for
/// the names a live run gives what it creates in a Vault that outlives it.
#[allow(clippy::disallowed_methods)]
pub fn unique_suffix() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    format!("{:x}{:08x}", now.as_secs(), now.subsec_nanos())
}
