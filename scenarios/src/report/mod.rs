//! What a run leaves behind: a folder with the scenario as played (knobs included), the
//! trace, the report, a JUnit XML file that CI systems read, and `report.html`, the page a
//! person looks at instead (see `html`).

pub mod html;
pub mod timeline;

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::runner::{FailureKind, RunReport};
use crate::scenario::Scenario;
use html::escape;

/// The page every run folder holds.
pub const REPORT_HTML: &str = "report.html";

/// The name of a run's folder: `<scenario>-<seed>`.
pub fn run_folder_name(report: &RunReport) -> String {
    format!("{}-{}", report.scenario, report.seed)
}

/// Writes `<dir>/<scenario>-<seed>/` and returns its path.
pub fn write_run_folder(
    dir: &Path,
    scenario: &Scenario,
    report: &RunReport,
) -> std::io::Result<PathBuf> {
    let folder = dir.join(run_folder_name(report));
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
    fs::write(folder.join(REPORT_HTML), html::page(scenario, report))?;
    fs::write(
        folder.join("junit.xml"),
        junit(
            "wekasim run",
            std::slice::from_ref(report),
            RunFolders::This(&folder),
        ),
    )?;
    Ok(folder)
}

/// Where the run folders a JUnit file links to are, as the command was given.
#[derive(Clone, Copy)]
pub enum RunFolders<'a> {
    /// The JUnit file sits in this run's own folder.
    This(&'a Path),
    /// The JUnit file sits in this directory, beside a folder per failing run (a sweep).
    Failing(&'a Path),
}

impl RunFolders<'_> {
    /// `report.html` of `report`'s run folder, if it has one: relative to the JUnit file,
    /// and as the command was given.
    fn page(self, report: &RunReport) -> Option<(String, PathBuf)> {
        match self {
            RunFolders::This(folder) => Some((REPORT_HTML.into(), folder.join(REPORT_HTML))),
            RunFolders::Failing(_) if report.passed() => None,
            RunFolders::Failing(dir) => {
                let name = run_folder_name(report);
                Some((
                    format!("{name}/{REPORT_HTML}"),
                    dir.join(name).join(REPORT_HTML),
                ))
            }
        }
    }
}

/// A JUnit XML report: one test case per run. A run with a run folder links its
/// `report.html` twice: a `report` property (the path relative to this file, for whoever
/// opens the folder) and an `[[ATTACHMENT|path]]` line in `system-out` (the path as the
/// command was given), the convention GitLab's test report, Jenkins' JUnit Attachments
/// and Azure DevOps turn into a link on the test case; any other viewer shows `system-out`
/// as text, so the path is one look away.
pub fn junit(suite: &str, reports: &[RunReport], folders: RunFolders) -> String {
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
        // Its children, each on its own line: the link's property, the verdict, the link
        // again as an attachment.
        let page = folders.page(r);
        let mut children = Vec::new();
        if let Some((relative, _)) = &page {
            children.push(format!(
                "<properties><property name=\"report\" value=\"{}\"/></properties>",
                escape(relative)
            ));
        }
        if let Some(f) = &r.failure {
            let tag = if f.kind == FailureKind::Crash {
                "error"
            } else {
                "failure"
            };
            children.push(format!(
                "<{tag} type=\"{}\" message=\"{}\">{}</{tag}>",
                escape(f.kind.name()),
                escape(&format!("{}: {}", f.check, f.detail)),
                escape(&r.verdict_line())
            ));
        }
        if let Some((_, given)) = &page {
            children.push(format!(
                "<system-out>[[ATTACHMENT|{}]]</system-out>",
                escape(&given.display().to_string())
            ));
        }
        for child in &children {
            xml.push_str(&format!("\n    {child}"));
        }
        if !children.is_empty() {
            xml.push_str("\n  ");
        }
        xml.push_str("</testcase>\n");
    }
    xml.push_str("</testsuite>\n");
    xml
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
            step_times: Vec::new(),
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
        let dir = Path::new("out");
        let xml = junit(
            "suite",
            &[report(1, None), report(2, Some(bad))],
            RunFolders::Failing(dir),
        );
        assert!(
            xml.contains("tests=\"2\" failures=\"1\" errors=\"0\""),
            "{xml}"
        );
        assert!(xml.contains("a &lt;b&gt; &amp; &quot;c&quot;"), "{xml}");
        assert!(!xml.contains("<b>"));
        // Only the failing run has a folder, and so a page to link.
        assert_eq!(xml.matches("<property name=\"report\"").count(), 1, "{xml}");
        assert!(
            xml.contains("<property name=\"report\" value=\"s-2/report.html\"/>"),
            "{xml}"
        );
        let attachment = format!(
            "[[ATTACHMENT|{}]]",
            dir.join("s-2").join("report.html").display()
        );
        assert!(xml.contains(&attachment), "{xml}");
    }
}
