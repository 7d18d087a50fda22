//! `report.html`: one self-contained page per run folder that a person looks at instead of
//! reading the trace. The verdict, the failure (the step, the check or oracle that fired,
//! the detail) and the repro command are plain HTML; the timeline is data (JSON in a
//! `<script type="application/json">` block) that a small inline script draws as SVG. No
//! network, no external file: the page opens from a CI artifact or a laptop alike.
//!
//! Everything embedded is escaped: text in HTML with [`escape`], the JSON with every `<`,
//! `>` and `&` written as a `\u` escape, so no string from a scenario or an error can end
//! the script block or open a tag.

use super::timeline::{self, StepSpan, Timeline};
use crate::runner::RunReport;
use crate::scenario::Scenario;

const STYLE: &str = include_str!("page.css");
const SCRIPT: &str = include_str!("page.js");

/// The id of the element the page's script fills with "rendered" once the timeline is
/// drawn (and with "failed" if it throws); tests look for it.
pub const RENDERED_MARKER: &str = "render-status";

/// The whole page for `report`, a run of `scenario`.
pub fn page(scenario: &Scenario, report: &RunReport) -> String {
    let timeline = timeline::build(scenario, report);
    let data = serde_json::json!({
        "failure": report.failure.as_ref().map(|f| serde_json::json!({
            "at_ms": f.at_ms,
            "step": f.step,
            "check": f.check,
        })),
        "timeline": timeline,
    });
    let verdict = if report.passed() { "PASS" } else { "FAIL" };
    let title = escape(&format!(
        "{} seed {}: {verdict}",
        report.scenario, report.seed
    ));
    format!(
        r#"<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{title}</title>
<style>{STYLE}</style>
<script>
window.onerror = function (message, source, line) {{
  var box = document.getElementById("script-error");
  box.hidden = false;
  box.textContent = "The page's script failed: " + message + " (line " + line + ")";
  var status = document.getElementById("{RENDERED_MARKER}");
  if (status) {{ status.textContent = "failed"; }}
}};
</script>
</head>
<body>
<header>
<h1>{scenario} <span class="seed">seed {seed}</span> <span class="verdict {verdict_class}">{verdict}</span></h1>
<p class="meta">{meta}</p>
</header>
<div id="script-error" class="script-error" hidden></div>
{failure}
<section>
<h2>Timeline <span class="hint">(simulated seconds; hover for details)</span></h2>
{LEGEND}
<div id="timeline"></div>
<p class="status">timeline: <span id="{RENDERED_MARKER}">not drawn (this page draws it with JavaScript)</span></p>
</section>
<section>
<h2>Steps</h2>
{steps}
</section>
<script type="application/json" id="timeline-data">{json}</script>
<script>{SCRIPT}</script>
</body>
</html>
"#,
        scenario = escape(&report.scenario),
        seed = report.seed,
        verdict_class = verdict.to_lowercase(),
        meta = escape(&format!(
            "{:.3} s simulated, {} trace events, trace hash {}{}",
            report.sim_ms as f64 / 1000.0,
            report.events,
            report.trace_hash,
            report
                .live
                .as_ref()
                .map(|v| format!(", live against {v}"))
                .unwrap_or_default()
        )),
        failure = failure_box(report, &timeline),
        steps = steps_table(&timeline.steps),
        json = script_json(&data),
    )
}

const LEGEND: &str = r#"<ul class="legend">
<li><span class="swatch fault"></span>fault on that host (KMS wire, seal, stop, partition, ...)</li>
<li><span class="swatch down"></span>backend down</li>
<li><span class="swatch ready"></span>filesystem key ready (unwrapped)</li>
<li><span class="swatch locked"></span>filesystem key locked (not unwrapped)</li>
<li><span class="swatch admin"></span>admin command</li>
<li><span class="swatch faultstep"></span>fault step</li>
<li><span class="swatch other"></span>other step</li>
<li><span class="swatch failed"></span>failing step / moment of failure</li>
<li><span class="swatch mark"></span>KMS admin action (rotate, trim, revoke)</li>
</ul>"#;

/// The failure, highlighted, with the command that replays it; for a passing run, the
/// command alone.
fn failure_box(report: &RunReport, timeline: &Timeline) -> String {
    let repro = format!(
        "<p>Replay: <code id=\"repro\">{}</code></p>",
        escape(&report.repro())
    );
    let Some(f) = &report.failure else {
        return format!("<section class=\"passed\">{repro}</section>");
    };
    let step = match f.step {
        Some(i) => {
            let action = timeline
                .steps
                .iter()
                .find(|s| s.index == i)
                .map(|s| format!(" ({})", s.action))
                .unwrap_or_default();
            format!("step {i}{action}")
        }
        None => "not in a step (setup, liveness phase or final read-back)".into(),
    };
    format!(
        r#"<section id="failure" class="failure">
<h2>Failed: {kind} at {at:.3} s</h2>
<dl>
<dt>check (oracle)</dt><dd id="failure-check">{check}</dd>
<dt>where</dt><dd id="failure-step">{step}</dd>
<dt>detail</dt><dd id="failure-detail">{detail}</dd>
</dl>
{repro}
</section>"#,
        kind = escape(f.kind.name()),
        at = f.at_ms as f64 / 1000.0,
        check = escape(&f.check),
        step = escape(&step),
        detail = escape(&f.detail),
    )
}

fn steps_table(steps: &[StepSpan]) -> String {
    let mut rows = String::new();
    for s in steps {
        let failed = s.outcome == "failed";
        rows.push_str(&format!(
            "<tr class=\"{kind}{failed_class}\"{id}><td>{index}</td><td>{from:.3}</td><td>{to:.3}</td><td>{action}</td><td>{detail}</td><td>{outcome}</td><td>{events}</td></tr>\n",
            kind = s.kind,
            failed_class = if failed { " failed" } else { "" },
            id = if failed { " id=\"failing-step\"" } else { "" },
            index = s.index,
            from = s.from_ms as f64 / 1000.0,
            to = s.to_ms as f64 / 1000.0,
            action = escape(&s.action),
            detail = escape(&s.detail),
            outcome = escape(s.outcome),
            events = s
                .events
                .iter()
                .map(|e| escape(e))
                .collect::<Vec<_>>()
                .join("<br>"),
        ));
    }
    format!(
        "<table class=\"steps\">\n<thead><tr><th>#</th><th>from s</th><th>to s</th><th>action</th><th>as written</th><th>outcome</th><th>backends said</th></tr></thead>\n<tbody>\n{rows}</tbody>\n</table>"
    )
}

/// Text for HTML: element content and quoted attribute values alike.
pub(crate) fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

/// JSON that can sit inside a `<script>` element: outside strings JSON has no `<`, `>` or
/// `&`, and inside them `\u003c` and friends mean the same character to `JSON.parse`.
fn script_json(value: &serde_json::Value) -> String {
    value
        .to_string()
        .replace('<', "\\u003c")
        .replace('>', "\\u003e")
        .replace('&', "\\u0026")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_json_cannot_end_its_script_and_still_parses() {
        let hostile = "</script><script>alert(1)</script> & <!-- '\"";
        let json = script_json(&serde_json::json!({ "detail": hostile }));
        assert!(
            !json.contains('<') && !json.contains('>') && !json.contains('&'),
            "{json}"
        );
        let back: serde_json::Value = serde_json::from_str(&json).expect("still JSON");
        assert_eq!(back["detail"], hostile);
    }

    #[test]
    fn html_text_escapes_tags_quotes_and_ampersands() {
        assert_eq!(
            escape(r#"<a href="x">&'"#),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
    }
}
