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
