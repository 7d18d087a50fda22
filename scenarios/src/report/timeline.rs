//! A run's timeline, derived from its trace and the scenario it played: what `report.html`
//! draws. One lane per backend (as the trace names them), one for the KMS and one for the
//! object store; the periods each was faulted or down; per backend, each encrypted
//! filesystem's key state (locked or ready) as the backend's events tell it; and the
//! scenario's steps as spans with their outcome.
//!
//! Output only: it reads the trace and never writes to it, so no trace hash depends on it.
//! Like the trace, it holds no secret: every string in it comes from the trace (which has
//! none), the scenario as written (placeholders, not credentials) or the report's failure.

use std::collections::{BTreeMap, BTreeSet};

use kms_sim::chaos::Fault;
use serde::Serialize;
use serde_json::Value;

use crate::runner::RunReport;
use crate::scenario::{host_group, Expect, Scenario, Step};
use crate::simulated::OBJECT_STORE_HOST;

/// At most this many node events are listed under a step (a write step has one per block).
const EVENTS_PER_STEP: usize = 6;

#[derive(Debug, Serialize)]
pub struct Timeline {
    /// Simulated milliseconds the run lasted: the right edge of every lane.
    pub end_ms: u64,
    pub lanes: Vec<Lane>,
    /// Shaded stretches of a lane: a fault on it, or a backend down.
    pub periods: Vec<Period>,
    /// Instant things: a key rotated, a trim, a latency change (`lane` empty: every lane).
    pub marks: Vec<Mark>,
    /// Per backend and encrypted filesystem, while the backend is up.
    pub keys: Vec<KeySpan>,
    pub steps: Vec<StepSpan>,
    /// Where the setup, the steps and the liveness phase began.
    pub phases: Vec<Mark>,
}

#[derive(Debug, Serialize)]
pub struct Lane {
    /// The host name, as the trace and the scenario's host groups name it.
    pub host: String,
    pub label: String,
    /// `backend`, `kms` or `store`.
    pub kind: &'static str,
    /// For a backend: the encrypted filesystems of its cluster, one key row each.
    pub filesystems: Vec<String>,
}

#[derive(Debug, Serialize)]
pub struct Period {
    pub lane: String,
    pub from_ms: u64,
    pub to_ms: u64,
    /// `fault` or `down`.
    pub kind: &'static str,
    pub what: String,
}

#[derive(Debug, Serialize)]
pub struct Mark {
    pub lane: String,
    pub at_ms: u64,
    pub what: String,
}

#[derive(Debug, Serialize)]
pub struct KeySpan {
    pub lane: String,
    pub fs: String,
    pub from_ms: u64,
    pub to_ms: u64,
    /// `locked` (the backend has not unwrapped the filesystem's key) or `ready`.
    pub state: &'static str,
}

#[derive(Debug, Serialize)]
pub struct StepSpan {
    /// 1-based, as the report's failure names it.
    pub index: usize,
    pub action: String,
    /// The step's fields as written (a `weka` step: its command, with its placeholders).
    pub detail: String,
    pub from_ms: u64,
    pub to_ms: u64,
    /// `admin` (a command to the cluster), `fault` or `other`.
    pub kind: &'static str,
    /// `ok`, `refused as expected`, or `failed`.
    pub outcome: &'static str,
    /// What the backends reported meanwhile about the command (created, refused, ...).
    pub events: Vec<String>,
}

/// One trace line, as far as the timeline needs it.
struct Line<'a> {
    t: u64,
    host: &'a str,
    event: &'a str,
    value: &'a Value,
}

impl Line<'_> {
    fn str(&self, field: &str) -> &str {
        self.value.get(field).and_then(Value::as_str).unwrap_or("")
    }
}

/// Builds the timeline of `report`, a run of `scenario`. Lines that are not JSON objects
/// (none are, in a trace the harness wrote) are skipped.
pub fn build(scenario: &Scenario, report: &RunReport) -> Timeline {
    let values: Vec<Value> = report
        .trace
        .iter()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let lines: Vec<Line> = values
        .iter()
        .map(|v| Line {
            t: v.get("t_ms").and_then(Value::as_u64).unwrap_or(0),
            host: v.get("host").and_then(Value::as_str).unwrap_or(""),
            event: v.get("event").and_then(Value::as_str).unwrap_or(""),
            value: v,
        })
        .collect();
    let end_ms = lines
        .iter()
        .map(|l| l.t)
        .max()
        .unwrap_or(0)
        .max(report.sim_ms)
        .max(report.failure.as_ref().map_or(0, |f| f.at_ms));
    let mut b = Builder {
        scenario,
        kms: scenario.kms.kind.host(),
        end_ms,
        open: BTreeMap::new(),
        periods: Vec::new(),
        marks: Vec::new(),
        phases: Vec::new(),
        up: BTreeSet::new(),
        encrypted: BTreeMap::new(),
        key_state: BTreeMap::new(),
        keys: Vec::new(),
        steps: Vec::new(),
        step: None,
    };
    let mut backends: BTreeSet<(String, u64, String)> = BTreeSet::new();
    for line in &lines {
        if let Some(host) = b.host_of(line) {
            backends.insert(backend_order(&host));
        }
        b.take(line);
    }
    b.finish(report);
    let mut lanes = vec![
        Lane {
            host: b.kms.to_string(),
            label: format!("KMS ({})", b.kms),
            kind: "kms",
            filesystems: Vec::new(),
        },
        Lane {
            host: OBJECT_STORE_HOST.to_string(),
            label: format!("object store ({OBJECT_STORE_HOST})"),
            kind: "store",
            filesystems: Vec::new(),
        },
    ];
    lanes.extend(backends.into_iter().map(|(cluster, _, host)| Lane {
        filesystems: b.encrypted.get(&cluster).cloned().unwrap_or_default(),
        label: host.clone(),
        host,
        kind: "backend",
    }));
    Timeline {
        end_ms,
        lanes,
        periods: b.periods,
        marks: b.marks,
        keys: b.keys,
        steps: b.steps,
        phases: b.phases,
    }
}

/// Sorts backends by cluster, then by number (`backend10` after `backend9`).
fn backend_order(host: &str) -> (String, u64, String) {
    let cluster = cluster_of(host).to_string();
    let n = host[cluster.len()..]
        .trim_start_matches("backend")
        .parse()
        .unwrap_or(0);
    (cluster, n, host.to_string())
}

/// The cluster a backend host belongs to: `` for `backend3`, `other-` for `other-backend3`.
fn cluster_of(host: &str) -> &str {
    host.rfind("backend").map_or(host, |i| &host[..i])
}

/// A fault that lasts: where it is shaded and what ends it.
type Slot = (String, String);

struct Builder<'a> {
    scenario: &'a Scenario,
    kms: &'static str,
    end_ms: u64,
    /// Faults and downtimes not yet over, by (lane, slot): when they began and what they are.
    open: BTreeMap<Slot, (u64, &'static str, String)>,
    periods: Vec<Period>,
    marks: Vec<Mark>,
    phases: Vec<Mark>,
    /// Backends up now.
    up: BTreeSet<String>,
    /// Encrypted filesystems per cluster (see `cluster_of`), in the order they appeared.
    encrypted: BTreeMap<String, Vec<String>>,
    /// Key state per (backend, filesystem) since when, while the backend is up.
    key_state: BTreeMap<(String, String), (&'static str, u64)>,
    keys: Vec<KeySpan>,
    steps: Vec<StepSpan>,
    /// The index of the step being played.
    step: Option<usize>,
}

impl Builder<'_> {
    /// The backend a line is about: a node's own events, or the runner's crash and restart.
    fn host_of(&self, line: &Line) -> Option<String> {
        if line.host != "runner" {
            return (!line.host.is_empty()).then(|| line.host.to_string());
        }
        let id = line.value.get("backend").and_then(Value::as_u64)?;
        let (cluster, i) = (id / 100, id % 100);
        if cluster == 0 {
            return Some(format!("backend{i}"));
        }
        let name = &self.scenario.extra_clusters.get(cluster as usize - 1)?.name;
        Some(format!("{name}-backend{i}"))
    }

    fn take(&mut self, line: &Line) {
        match (line.host, line.event) {
            ("runner", "phase") => {
                self.end_step(line.t);
                self.phases.push(Mark {
                    lane: String::new(),
                    at_ms: line.t,
                    what: line.str("name").to_string(),
                });
            }
            ("runner", "step") => {
                self.end_step(line.t);
                let index = line.value.get("index").and_then(Value::as_u64).unwrap_or(0) as usize;
                self.begin_step(index, line.str("action"), line.t);
            }
            ("runner", "verdict") => self.end_step(line.t),
            ("runner", "crash") => {
                if let Some(host) = self.host_of(line) {
                    self.down(&host, line.t);
                }
            }
            ("runner", "restart") => {
                if let Some(host) = self.host_of(line) {
                    self.close(&(host, "down".into()), line.t);
                }
            }
            ("runner", "fault") => self.fault(line.t, line.str("what")),
            ("runner", _) => {}
            (host, event) => self.node_event(host, event, line),
        }
    }

    fn begin_step(&mut self, index: usize, action: &str, t: u64) {
        self.step = Some(self.steps.len());
        let step = index
            .checked_sub(1)
            .and_then(|i| self.scenario.steps.get(i));
        let expects_error = step.is_some_and(|s| {
            matches!(
                s,
                Step::FsCreate {
                    expect: Expect::Error,
                    ..
                } | Step::Write {
                    expect: Expect::Error,
                    ..
                } | Step::ReadVerify {
                    expect: Expect::Error,
                    ..
                } | Step::Weka {
                    expect: Expect::Error,
                    ..
                } | Step::Weka {
                    expect_error: Some(_),
                    ..
                }
            )
        });
        self.steps.push(StepSpan {
            index,
            action: action.to_string(),
            detail: step.map(detail).unwrap_or_default(),
            from_ms: t,
            to_ms: t,
            kind: step.map_or("other", kind),
            outcome: if expects_error {
                "refused as expected"
            } else {
                "ok"
            },
            events: Vec::new(),
        });
    }

    fn end_step(&mut self, t: u64) {
        if let Some(i) = self.step.take() {
            self.steps[i].to_ms = t;
        }
    }

    fn current_step(&self) -> Option<&Step> {
        let span = &self.steps[self.step?];
        self.scenario.steps.get(span.index.checked_sub(1)?)
    }

    /// A fault step carried out (or the liveness phase healing everything).
    fn fault(&mut self, t: u64, what: &str) {
        let kms = self.kms.to_string();
        let store = OBJECT_STORE_HOST.to_string();
        if what == "all healed" {
            let slots: Vec<Slot> = self
                .open
                .keys()
                .filter(|(_, slot)| slot != "down")
                .cloned()
                .collect();
            for slot in slots {
                self.close(&slot, t);
            }
            return;
        }
        let backends = self.scenario.cluster.backends;
        match self.current_step().cloned() {
            Some(Step::KmsFault { mode, .. }) => {
                self.replace((kms, "wire".into()), t, mode != Fault::None, what);
            }
            Some(Step::ObjectStoreFault { mode, .. }) => {
                self.replace((store, "wire".into()), t, mode != Fault::None, what);
            }
            Some(Step::KmsSeal | Step::KmsStop) => {
                self.replace((kms, "state".into()), t, true, what)
            }
            Some(Step::KmsUnseal) => self.replace((kms, "state".into()), t, false, what),
            // A Vault on persistent storage comes back sealed.
            Some(Step::KmsStart) => {
                self.replace((kms, "state".into()), t, what.contains("sealed"), what)
            }
            Some(Step::Partition { a, b, .. } | Step::Hold { a, b }) => {
                for host in [a, b].iter().flat_map(|g| hosts(g, backends, self.kms)) {
                    self.open((host, format!("net {what}")), t, "fault", what);
                }
            }
            Some(Step::Release { a, b }) => {
                let hold = format!("net hold {a} <-> {b}");
                for host in [a, b].iter().flat_map(|g| hosts(g, backends, self.kms)) {
                    self.close(&(host, hold.clone()), t);
                }
            }
            Some(Step::Heal) => {
                let cuts: Vec<Slot> = self
                    .open
                    .keys()
                    .filter(|(_, slot)| slot.starts_with("net "))
                    .cloned()
                    .collect();
                for slot in cuts {
                    self.close(&slot, t);
                }
            }
            Some(Step::Latency { .. }) => self.mark(String::new(), t, what),
            // Key changes by the KMS's admin, skipped trims, revoked credentials.
            _ => self.mark(kms, t, what),
        }
    }

    fn mark(&mut self, lane: String, at_ms: u64, what: &str) {
        self.marks.push(Mark {
            lane,
            at_ms,
            what: what.to_string(),
        });
    }

    /// Ends the fault in `slot` and, if `on`, begins `what` there.
    fn replace(&mut self, slot: Slot, t: u64, on: bool, what: &str) {
        self.close(&slot, t);
        if on {
            self.open(slot, t, "fault", what);
        }
    }

    fn open(&mut self, slot: Slot, t: u64, kind: &'static str, what: &str) {
        self.open
            .entry(slot)
            .or_insert_with(|| (t, kind, what.to_string()));
    }

    fn close(&mut self, slot: &Slot, t: u64) {
        if let Some((from_ms, kind, what)) = self.open.remove(slot) {
            self.periods.push(Period {
                lane: slot.0.clone(),
                from_ms,
                to_ms: t,
                kind,
                what,
            });
        }
    }

    /// A backend crashed: down until it restarts, and every key it held gone with its memory.
    fn down(&mut self, host: &str, t: u64) {
        self.open((host.to_string(), "down".into()), t, "down", "down");
        self.up.remove(host);
        let held: Vec<String> = self
            .key_state
            .keys()
            .filter(|(h, _)| h == host)
            .map(|(_, fs)| fs.clone())
            .collect();
        for fs in held {
            self.set_key(host, &fs, None, t);
        }
    }

    fn node_event(&mut self, host: &str, event: &str, line: &Line) {
        let t = line.t;
        let cluster = cluster_of(host).to_string();
        match event {
            // A boot starts from the disk: every encrypted filesystem locked until unwrapped.
            "booted" => {
                self.up.insert(host.to_string());
                let known = self.encrypted.get(&cluster).cloned().unwrap_or_default();
                for fs in known {
                    self.set_key(host, &fs, Some("locked"), t);
                }
            }
            "dek_unwrapped" => {
                let fs = line.str("fs");
                self.know(cluster, fs);
                self.set_key(host, fs, Some("ready"), t);
            }
            // The backend that created (or downloaded) it holds its key; the others have
            // yet to unwrap it.
            "fs_created" | "fs_downloaded" => {
                let encrypted = line.value.get("encrypted").and_then(Value::as_bool) == Some(true)
                    || line.value.get("key_version").is_some_and(|v| !v.is_null());
                let fs = line.str("fs");
                if encrypted {
                    self.know(cluster.clone(), fs);
                    let others: Vec<String> = self
                        .up
                        .iter()
                        .filter(|h| cluster_of(h) == cluster && *h != host)
                        .cloned()
                        .collect();
                    for other in others {
                        if !self
                            .key_state
                            .contains_key(&(other.clone(), fs.to_string()))
                        {
                            self.set_key(&other, fs, Some("locked"), t);
                        }
                    }
                    self.set_key(host, fs, Some("ready"), t);
                }
                self.step_event(host, line);
            }
            "KmsConfigurationAdded"
            | "KmsConfigurationUpdated"
            | "KmsConfigurationRemoved"
            | "kms_set_refused"
            | "fs_create_failed"
            | "rewrapped"
            | "rewrapped_to_key"
            | "rewrap_failed"
            | "fs_key_moved"
            | "snapshot_uploaded" => self.step_event(host, line),
            _ => {}
        }
    }

    fn know(&mut self, cluster: String, fs: &str) {
        let known = self.encrypted.entry(cluster).or_default();
        if !known.iter().any(|f| f == fs) {
            known.push(fs.to_string());
        }
    }

    /// A backend's word on the command of the current step, for its outcome.
    fn step_event(&mut self, host: &str, line: &Line) {
        let Some(i) = self.step else { return };
        let fields: Vec<String> = ["fs", "kms", "error", "locator"]
            .iter()
            .filter_map(|f| line.value.get(*f).and_then(Value::as_str))
            .map(str::to_string)
            .collect();
        let text = format!("{host}: {} {}", line.event, fields.join(" "));
        let events = &mut self.steps[i].events;
        if events.len() < EVENTS_PER_STEP {
            events.push(text.trim_end().to_string());
        } else if events.len() == EVENTS_PER_STEP {
            events.push("...".into());
        }
    }

    /// Ends the key span of `fs` on `host` and begins `state` (none: the backend is down).
    fn set_key(&mut self, host: &str, fs: &str, state: Option<&'static str>, t: u64) {
        let key = (host.to_string(), fs.to_string());
        if let Some((old, _)) = self.key_state.get(&key) {
            if Some(*old) == state {
                return;
            }
        }
        if let Some((old, from_ms)) = self.key_state.remove(&key) {
            self.keys.push(KeySpan {
                lane: key.0.clone(),
                fs: key.1.clone(),
                from_ms,
                to_ms: t,
                state: old,
            });
        }
        if let Some(state) = state {
            self.key_state.insert(key, (state, t));
        }
    }

    /// Closes everything still open at the end of the run and marks the failing step.
    fn finish(&mut self, report: &RunReport) {
        let end = self.end_ms;
        self.end_step(end);
        let slots: Vec<Slot> = self.open.keys().cloned().collect();
        for slot in slots {
            self.close(&slot, end);
        }
        let held: Vec<(String, String)> = self.key_state.keys().cloned().collect();
        for (host, fs) in held {
            self.set_key(&host, &fs, None, end);
        }
        if let Some(step) = report.failure.as_ref().and_then(|f| f.step) {
            for span in self.steps.iter_mut().filter(|s| s.index == step) {
                span.outcome = "failed";
            }
        }
    }
}

/// The hosts a step's host group names (none if it names none; the scenario was checked
/// when it was loaded).
fn hosts(group: &str, backends: u32, kms: &str) -> Vec<String> {
    host_group(group, backends, kms).unwrap_or_default()
}

fn kind(step: &Step) -> &'static str {
    match step {
        Step::KmsSet { .. }
        | Step::FsCreate { .. }
        | Step::Write { .. }
        | Step::ReadVerify { .. }
        | Step::Weka { .. }
        | Step::Race { .. } => "admin",
        // Waiting, watching, starting what is down; every other step breaks something.
        Step::Start { .. }
        | Step::WaitReady { .. }
        | Step::ExpectLocked { .. }
        | Step::Idle { .. } => "other",
        _ => "fault",
    }
}

/// A step's fields but its action, as `key=value` (a `weka` step: its command first).
fn detail(step: &Step) -> String {
    let Ok(Value::Object(fields)) = serde_json::to_value(step) else {
        return String::new();
    };
    let mut parts: Vec<String> = Vec::new();
    if let Some(Value::String(command)) = fields.get("command") {
        parts.push(command.clone());
    }
    for (k, v) in &fields {
        if k == "action" || k == "command" {
            continue;
        }
        match v {
            Value::String(s) => parts.push(format!("{k}={s}")),
            other => parts.push(format!("{k}={other}")),
        }
    }
    parts.join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    const SCENARIO: &str = r#"
[scenario]
name = "t"
description = "a partition, a seal and a restart"

[cluster]
backends = 2
replicas = 2

[kms]
type = "vault"
key = "weka-key"

[[step]]
action = "fs-create"
name = "enc"
encrypted = true

[[step]]
action = "partition"
a = "backend1"
b = "kms"

[[step]]
action = "kms-seal"

[[step]]
action = "restart"
backend = 2
"#;

    /// The trace such a run writes, cut down to what the timeline reads.
    const TRACE: &[&str] = &[
        r#"{"event":"booted","host":"backend1","t_ms":0}"#,
        r#"{"event":"booted","host":"backend2","t_ms":0}"#,
        r#"{"event":"phase","host":"runner","name":"steps","t_ms":100}"#,
        r#"{"action":"fs-create","event":"step","host":"runner","index":1,"t_ms":100}"#,
        r#"{"encrypted":true,"event":"fs_created","fs":"enc-1","host":"backend1","t_ms":200}"#,
        r#"{"event":"dek_unwrapped","fs":"enc-1","host":"backend2","t_ms":250}"#,
        r#"{"action":"partition","event":"step","host":"runner","index":2,"t_ms":300}"#,
        r#"{"event":"fault","host":"runner","t_ms":300,"what":"partition backend1 <-> kms"}"#,
        r#"{"action":"kms-seal","event":"step","host":"runner","index":3,"t_ms":400}"#,
        r#"{"event":"fault","host":"runner","t_ms":400,"what":"kms sealed"}"#,
        r#"{"action":"restart","event":"step","host":"runner","index":4,"t_ms":500}"#,
        r#"{"backend":2,"event":"crash","host":"runner","t_ms":500}"#,
        r#"{"backend":2,"event":"restart","host":"runner","t_ms":600}"#,
        r#"{"event":"booted","host":"backend2","t_ms":600}"#,
        r#"{"event":"phase","host":"runner","name":"liveness","t_ms":700}"#,
        r#"{"event":"fault","host":"runner","t_ms":700,"what":"all healed"}"#,
        r#"{"event":"dek_unwrapped","fs":"enc-1","host":"backend2","t_ms":800}"#,
        r#"{"check":"filesystems-ready","event":"verdict","host":"runner","pass":false,"t_ms":900}"#,
    ];

    fn timeline() -> Timeline {
        let scenario = Scenario::parse(SCENARIO).expect("the test's scenario");
        let report = RunReport {
            live: None,
            scenario: "t".into(),
            target: "t".into(),
            planted: Vec::new(),
            seed: 1,
            sim_ms: 1000,
            wall_ms: 1,
            trace_hash: "00".into(),
            events: TRACE.len(),
            failure: Some(crate::runner::Failure {
                kind: crate::runner::FailureKind::Liveness,
                step: Some(4),
                check: "filesystems-ready".into(),
                at_ms: 900,
                detail: String::new(),
            }),
            coverage: Default::default(),
            step_times: Vec::new(),
            trace: TRACE.iter().map(|l| l.to_string()).collect(),
        };
        build(&scenario, &report)
    }

    #[test]
    fn lanes_are_the_kms_the_store_and_the_backends_the_trace_names() {
        let t = timeline();
        let lanes: Vec<(&str, &str)> = t.lanes.iter().map(|l| (l.host.as_str(), l.kind)).collect();
        assert_eq!(
            lanes,
            [
                ("vault", "kms"),
                ("s3", "store"),
                ("backend1", "backend"),
                ("backend2", "backend")
            ]
        );
        assert_eq!(t.lanes[3].filesystems, ["enc-1"]);
        assert_eq!(t.end_ms, 1000);
    }

    #[test]
    fn faults_last_until_healed_and_a_restart_is_down_time() {
        let t = timeline();
        let mut periods: Vec<(&str, u64, u64, &str)> = t
            .periods
            .iter()
            .map(|p| (p.lane.as_str(), p.from_ms, p.to_ms, p.kind))
            .collect();
        periods.sort();
        // The partition shades both of its sides, the seal the KMS, until "all healed".
        assert_eq!(
            periods,
            [
                ("backend1", 300, 700, "fault"),
                ("backend2", 500, 600, "down"),
                ("vault", 300, 700, "fault"),
                ("vault", 400, 700, "fault"),
            ]
        );
    }

    #[test]
    fn a_key_is_ready_once_unwrapped_gone_while_down_and_locked_after_a_boot() {
        let t = timeline();
        let spans = |host: &str| -> Vec<(u64, u64, &str)> {
            t.keys
                .iter()
                .filter(|k| k.lane == host && k.fs == "enc-1")
                .map(|k| (k.from_ms, k.to_ms, k.state))
                .collect()
        };
        assert_eq!(spans("backend1"), [(200, 1000, "ready")]);
        assert_eq!(
            spans("backend2"),
            [
                (200, 250, "locked"),
                (250, 500, "ready"),
                (600, 800, "locked"),
                (800, 1000, "ready")
            ]
        );
    }

    #[test]
    fn steps_are_spans_with_their_outcome() {
        let t = timeline();
        let steps: Vec<(usize, u64, u64, &str, &str)> = t
            .steps
            .iter()
            .map(|s| (s.index, s.from_ms, s.to_ms, s.kind, s.outcome))
            .collect();
        assert_eq!(
            steps,
            [
                (1, 100, 300, "admin", "ok"),
                (2, 300, 400, "fault", "ok"),
                (3, 400, 500, "fault", "ok"),
                (4, 500, 700, "fault", "failed"),
            ]
        );
        assert_eq!(t.steps[0].detail, "capacity_gib=10 encrypted=true name=enc");
        assert_eq!(t.steps[0].events, ["backend1: fs_created enc-1"]);
        let phases: Vec<&str> = t.phases.iter().map(|p| p.what.as_str()).collect();
        assert_eq!(phases, ["steps", "liveness"]);
    }
}
