//! `manifest.json`: what a sweep's `--out` folder holds, for a machine. Which build ran
//! which seeds of what, and per seed the verdict, the trace hash, the times and the command
//! that replays it. `wekasim merge` reads it to put shards back together; a merged folder
//! has one too (the whole range as shard 0/1), so a merge can be merged again.

use std::ops::Range;
use std::path::Path;

use scenarios::coverage::Tally;
use scenarios::runner::{Failure, RunReport};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::shard::Shard;

pub const FILE: &str = "manifest.json";
/// The format's name and version; a reader refuses any other.
pub const FORMAT: &str = "wekasim-sweep/1";

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Manifest {
    pub format: String,
    pub build: Build,
    pub swarm: Swarm,
    /// `A..B`, B excluded: the whole sweep the shards split.
    pub seeds: SeedRange,
    pub shard: ShardId,
    /// Every seed of the shard ran (`false`: `--until-fail` stopped it early).
    pub complete: bool,
    /// One per seed that ran, by seed.
    pub results: Vec<SeedResult>,
    /// How often each coverage probe fired over these seeds (absent in a folder written
    /// before probes were counted: then nothing fired).
    #[serde(default)]
    pub coverage: Tally,
}

/// The binary that ran the seeds. Shards merge only when the same binary ran them: the
/// hash names it exactly, whatever machine or image it ran on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Build {
    pub version: String,
    /// sha256 of the `wekasim` executable.
    pub binary_sha256: String,
    /// Built with `--features planted-bugs`.
    pub planted_bugs: bool,
}

impl std::fmt::Display for Build {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "wekasim {} (binary sha256 {}{})",
            self.version,
            self.binary_sha256.get(..16).unwrap_or(&self.binary_sha256),
            if self.planted_bugs {
                ", planted-bugs"
            } else {
                ""
            }
        )
    }
}

impl Build {
    /// This process's build.
    pub fn current() -> Result<Build, String> {
        let exe = std::env::current_exe()
            .map_err(|e| format!("cannot find this wekasim executable to hash it: {e}"))?;
        let mut file = std::fs::File::open(&exe)
            .map_err(|e| format!("cannot read {} to hash it: {e}", exe.display()))?;
        let mut hasher = Sha256::new();
        std::io::copy(&mut file, &mut hasher)
            .map_err(|e| format!("cannot read {} to hash it: {e}", exe.display()))?;
        Ok(Build {
            version: env!("CARGO_PKG_VERSION").to_string(),
            binary_sha256: hex(&hasher.finalize()),
            planted_bugs: scenarios::CAN_PLANT,
        })
    }
}

/// What the seeds were run on: the swarm, with the bugs planted in it (and the hidden test
/// hook, when a test set one). Two shards of one sweep agree on all of it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Swarm {
    pub scenario: String,
    pub planted: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub test_hook: Option<String>,
}

impl std::fmt::Display for Swarm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.scenario)?;
        for bug in &self.planted {
            write!(f, " --plant {bug}")?;
        }
        if let Some(hook) = &self.test_hook {
            write!(f, " (test hook {hook})")?;
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeedRange {
    pub start: u64,
    pub end: u64,
}

impl SeedRange {
    pub fn range(&self) -> Range<u64> {
        self.start..self.end
    }
}

impl std::fmt::Display for SeedRange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}..{}", self.start, self.end)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardId {
    pub index: u64,
    pub count: u64,
}

impl From<Shard> for ShardId {
    fn from(s: Shard) -> Self {
        ShardId {
            index: s.index,
            count: s.count,
        }
    }
}

/// One seed's outcome.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeedResult {
    pub seed: u64,
    pub passed: bool,
    pub trace_hash: String,
    pub sim_ms: u64,
    pub wall_ms: u64,
    pub events: usize,
    pub failure: Option<Failure>,
    /// The command that replays this seed.
    pub repro: String,
}

impl SeedResult {
    pub fn of(r: &RunReport) -> SeedResult {
        SeedResult {
            seed: r.seed,
            passed: r.passed(),
            trace_hash: r.trace_hash.clone(),
            sim_ms: r.sim_ms,
            wall_ms: r.wall_ms,
            events: r.events,
            failure: r.failure.clone(),
            repro: r.repro(),
        }
    }

    /// The report a sweep would have made (without its trace), for JUnit and exit codes.
    pub fn report(&self, swarm: &Swarm) -> RunReport {
        RunReport {
            scenario: swarm.scenario.clone(),
            target: swarm.scenario.clone(),
            planted: swarm.planted.clone(),
            seed: self.seed,
            sim_ms: self.sim_ms,
            wall_ms: self.wall_ms,
            trace_hash: self.trace_hash.clone(),
            events: self.events,
            live: None,
            failure: self.failure.clone(),
            coverage: Default::default(),
            trace: Vec::new(),
            step_times: Vec::new(),
        }
    }
}

impl Manifest {
    pub fn write(&self, dir: &Path) -> std::io::Result<()> {
        let json = serde_json::to_string_pretty(self).map_err(std::io::Error::other)?;
        std::fs::write(dir.join(FILE), json + "\n")
    }

    /// Reads `dir/manifest.json`; the error names the folder and what is wrong.
    pub fn read(dir: &Path) -> Result<Manifest, String> {
        let path = dir.join(FILE);
        let text = std::fs::read_to_string(&path).map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                format!(
                    "{} has no {FILE}: it is not a folder written by `wekasim sweep --out`",
                    dir.display()
                )
            } else {
                format!("cannot read {}: {e}", path.display())
            }
        })?;
        let manifest: Manifest = serde_json::from_str(&text)
            .map_err(|e| format!("{} is not a sweep manifest: {e}", path.display()))?;
        if manifest.format != FORMAT {
            return Err(format!(
                "{} has format {:?}; this wekasim reads {FORMAT:?}",
                path.display(),
                manifest.format
            ));
        }
        manifest
            .check()
            .map_err(|e| format!("{}: {e}", path.display()))?;
        Ok(manifest)
    }

    /// The manifest agrees with itself: a valid shard of a non-empty range, results that are
    /// seeds of that shard, each once and in order, and `complete` saying whether all ran.
    fn check(&self) -> Result<(), String> {
        let range = self.seeds.range();
        if range.is_empty() {
            return Err(format!("seed range {} is empty", self.seeds));
        }
        let shard = Shard::new(self.shard.index, self.shard.count, "shard")?;
        let mut last = None;
        for r in &self.results {
            if !shard.owns(&range, r.seed) {
                return Err(format!(
                    "seed {} is not in shard {shard} of {}",
                    r.seed, self.seeds
                ));
            }
            if last.is_some_and(|l| l >= r.seed) {
                return Err(format!("seed {} is listed twice or out of order", r.seed));
            }
            if r.passed != r.failure.is_none() {
                return Err(format!("seed {}: passed and failure disagree", r.seed));
            }
            last = Some(r.seed);
        }
        let all = self.results.len() as u64 == shard.len(&range);
        if self.complete != all {
            return Err(format!(
                "says complete={} but lists {} of the shard's {} seeds",
                self.complete,
                self.results.len(),
                shard.len(&range)
            ));
        }
        Ok(())
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
