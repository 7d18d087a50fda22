//! What a run leaves behind: a folder with the scenario as played (knobs included), the
//! trace, the report, and a JUnit XML file that CI systems read.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::runner::{FailureKind, RunReport};
use crate::scenario::Scenario;

/// Writes `<dir>/<scenario>-<seed>/` and returns its path.
pub fn write_run_folder(
    dir: &Path,
    scenario: &Scenario,
    report: &RunReport,
) -> std::io::Result<PathBuf> {
    let folder = dir.join(format!("{}-{}", report.scenario, report.seed));
    fs::create_dir_all(&folder)?;
    let toml = scenario.to_toml().map_err(std::io::Error::other)?;
    fs::write(folder.join("scenario.toml"), toml)?;
    let mut trace = fs::File::create(folder.join("trace.jsonl"))?;
    for line in &report.trace {
        writeln!(trace, "{line}")?;
    }
    fs::write(
        folder.join("report.json"),
        serde_json::to_string_pretty(report).map_err(std::io::Error::other)?,
    )?;
    fs::write(
        folder.join("junit.xml"),
        junit("wekasim run", std::slice::from_ref(report)),
    )?;
    Ok(folder)
}

/// A JUnit XML report: one test case per run.
pub fn junit(suite: &str, reports: &[RunReport]) -> String {
    // A crash is a JUnit error (the harness broke); any other failure is a failure.
    let count = |crash: bool| {
        reports
            .iter()
            .filter_map(|r| r.failure.as_ref())
            .filter(|f| (f.kind == FailureKind::Crash) == crash)
            .count()
    };
    let (failures, errors) = (count(false), count(true));
    let time: f64 = reports.iter().map(|r| r.wall_ms as f64 / 1000.0).sum();
    let mut xml = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuite name=\"{}\" tests=\"{}\" failures=\"{failures}\" errors=\"{errors}\" time=\"{time:.3}\">\n",
        escape(suite),
        reports.len()
    );
    for r in reports {
        xml.push_str(&format!(
            "  <testcase classname=\"{}\" name=\"seed {}\" time=\"{:.3}\">",
            escape(&r.scenario),
            r.seed,
            r.wall_ms as f64 / 1000.0
        ));
        if let Some(f) = &r.failure {
            let tag = if f.kind == FailureKind::Crash {
                "error"
            } else {
                "failure"
            };
            xml.push_str(&format!(
                "\n    <{tag} type=\"{}\" message=\"{}\">{}</{tag}>\n  ",
                escape(f.kind.name()),
                escape(&format!("{}: {}", f.check, f.detail)),
                escape(&r.verdict_line())
            ));
        }
        xml.push_str("</testcase>\n");
    }
    xml.push_str("</testsuite>\n");
    xml
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runner::Failure;

    fn report(seed: u64, failure: Option<Failure>) -> RunReport {
        RunReport {
            live: None,
            scenario: "s".into(),
            target: "s".into(),
            planted: Vec::new(),
            seed,
            sim_ms: 1000,
            wall_ms: 10,
            trace_hash: "00".into(),
            events: 0,
            failure,
            coverage: Default::default(),
            trace: Vec::new(),
        }
    }

    #[test]
    fn junit_counts_and_escapes() {
        let bad = Failure {
            kind: FailureKind::Correctness,
            step: Some(2),
            check: "oracle".into(),
            at_ms: 5,
            detail: "a <b> & \"c\"".into(),
        };
        let xml = junit("suite", &[report(1, None), report(2, Some(bad))]);
        assert!(
            xml.contains("tests=\"2\" failures=\"1\" errors=\"0\""),
            "{xml}"
        );
        assert!(xml.contains("a &lt;b&gt; &amp; &quot;c&quot;"), "{xml}");
        assert!(!xml.contains("<b>"));
    }
}
