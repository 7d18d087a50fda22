//! `report.html`, the page every run folder holds: what it must hold (lanes, the failing
//! step, the check that fired, the repro command), that nothing embedded in it can break
//! it (`</script>`, `<`, quotes from a scenario or an error), and that a real browser draws
//! it without a script error (Debian's `chromium`, headless; tests/prerequisites.sh
//! installs it). The page's screenshot is kept beside it, in `target/report-html/`.
//!
//! The failing run comes from the normal build: a scenario whose last step expects an
//! error from a command that succeeds (`weka security kms`), after a KMS outage that keeps a restarted backend's
//! keys locked for a while.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{one_encrypted_fs_then, run, EXIT_CORRECTNESS};
use serde_json::Value;

/// What the last step expects the command's error to contain: everything a page must
/// escape. It comes back in the failure's detail and in the step as written.
const HOSTILE: &str = r#"</script><script>document.title='pwned'</script><b id=bold>&amp; 'q'"#;
const NAME: &str = "report-page-<i>&'";

/// After the KMS set and `enc-1` created: a write, a KMS that refuses connections while
/// backend 2 restarts (its key stays locked), the KMS back, and the failing step.
fn scenario() -> String {
    let steps = format!(
        r#"
[[step]]
action = "write"
blocks = 2

[[step]]
action = "kms-fault"
mode = "refuse"

[[step]]
action = "restart"
backend = 2

[[step]]
action = "expect-locked"
backends = "backend2"
within = "20s"

[[step]]
action = "idle"
for = "3s"

[[step]]
action = "kms-fault"
mode = "none"

[[step]]
action = "wait-ready"
within = "30s"

[[step]]
action = "weka"
command = "weka security kms"
expect_error = {HOSTILE:?}
"#
    );
    one_encrypted_fs_then(NAME, &steps)
}

/// The run's folder under `target/report-html/<test>/`, kept after the test so a person
/// can look at the page and its screenshot.
fn failing_run_folder(test: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("report-html")
        .join(test);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("cannot create the test's folder");
    let file = dir.join("scenario.toml");
    std::fs::write(&file, scenario()).expect("cannot write the scenario");
    let out = dir.join("out");
    let r = run(&[
        "run",
        file.to_str().expect("UTF-8 path"),
        "--seed",
        "7",
        "--out",
        out.to_str().expect("UTF-8 path"),
    ]);
    assert_eq!(r.code, Some(EXIT_CORRECTNESS), "{}", r.describe());
    assert!(
        r.stdout.contains("[expected-error, step 10]"),
        "{}",
        r.describe()
    );
    out.join(format!("{NAME}-7"))
}

/// The text between `open` and the next `close`.
fn between<'a>(html: &'a str, open: &str, close: &str) -> &'a str {
    let start = html
        .find(open)
        .unwrap_or_else(|| panic!("no {open:?} in the page"))
        + open.len();
    let len = html[start..]
        .find(close)
        .unwrap_or_else(|| panic!("no {close:?} after {open:?}"));
    &html[start..start + len]
}

/// The characters the page writes as entities. The test's own table: it must not trust
/// the code it checks.
const ENTITIES: [(&str, &str); 5] = [
    ("&", "&amp;"),
    ("<", "&lt;"),
    (">", "&gt;"),
    ("\"", "&quot;"),
    ("'", "&#39;"),
];

fn escape(text: &str) -> String {
    ENTITIES
        .iter()
        .fold(text.to_string(), |t, (c, entity)| t.replace(c, entity))
}

/// Element text back from HTML.
fn unescape(text: &str) -> String {
    ENTITIES
        .iter()
        .rev()
        .fold(text.to_string(), |t, (c, entity)| t.replace(entity, c))
}

#[test]
fn report_html_holds_lanes_failure_check_and_repro_and_escapes_everything() {
    let folder = failing_run_folder("holds");
    let html = std::fs::read_to_string(folder.join("report.html")).expect("report.html");

    // Self-contained: nothing that would fetch anything (the KMS's URL appears, as text).
    for fetch in [
        "src=",
        "href=",
        "<link",
        "<img",
        "<iframe",
        "@import",
        "url(http",
        "fetch(",
        "XMLHttpRequest",
    ] {
        assert!(!html.contains(fetch), "{fetch:?} in report.html");
    }

    // Nothing embedded ends a script early or opens a tag: the page has exactly its own
    // three scripts, and the hostile text appears only escaped.
    assert_eq!(html.matches("<script").count(), 3, "script openings");
    assert_eq!(html.matches("</script>").count(), 3, "script closings");
    assert!(
        !html.contains("<b id=bold>"),
        "an unescaped tag from the scenario"
    );
    assert!(!html.contains("<i>&"), "the scenario's name unescaped");
    assert!(html.contains(&escape(HOSTILE)), "the hostile text, escaped");
    assert!(
        html.contains(&format!("<title>{} seed 7: FAIL</title>", escape(NAME))),
        "title"
    );

    // The failure: kind, the check that fired, the step, the detail, the repro command.
    let check = unescape(between(&html, "<dd id=\"failure-check\">", "</dd>"));
    assert_eq!(check, "expected-error");
    let step = unescape(between(&html, "<dd id=\"failure-step\">", "</dd>"));
    assert_eq!(step, "step 10 (weka)");
    let detail = unescape(between(&html, "<dd id=\"failure-detail\">", "</dd>"));
    assert!(detail.contains(HOSTILE), "{detail}");
    let report: Value = serde_json::from_str(
        &std::fs::read_to_string(folder.join("report.json")).expect("report.json"),
    )
    .expect("report.json is JSON");
    assert_eq!(report["failure"]["check"], "expected-error");
    let repro = unescape(between(&html, "<code id=\"repro\">", "</code>"));
    let file = folder.parent().and_then(Path::parent).expect("test folder");
    assert_eq!(
        repro,
        format!(
            "wekasim run {} --seed 7",
            file.join("scenario.toml").display()
        )
    );
    let failing_row = between(
        &html,
        "<tr class=\"admin failed\" id=\"failing-step\">",
        "</tr>",
    );
    assert!(failing_row.starts_with("<td>10</td>"), "{failing_row}");

    // The data the timeline is drawn from: JSON, with the hostile text intact in it.
    let json = between(
        &html,
        "<script type=\"application/json\" id=\"timeline-data\">",
        "</script>",
    );
    let data: Value = serde_json::from_str(json).expect("the embedded JSON parses");
    let timeline = &data["timeline"];
    let lanes: Vec<&str> = timeline["lanes"]
        .as_array()
        .expect("lanes")
        .iter()
        .map(|l| l["host"].as_str().expect("host"))
        .collect();
    assert_eq!(lanes, ["vault", "s3", "backend1", "backend2", "backend3"]);
    assert_eq!(
        timeline["lanes"][3]["filesystems"],
        serde_json::json!(["enc"])
    );
    assert_eq!(data["failure"]["step"], 10);
    assert_eq!(data["failure"]["check"], "expected-error");
    let steps = timeline["steps"].as_array().expect("steps");
    assert_eq!(steps.len(), 10);
    assert_eq!(steps[9]["outcome"], "failed");
    assert!(
        steps[9]["detail"]
            .as_str()
            .expect("detail")
            .contains(HOSTILE),
        "{}",
        steps[9]
    );
    assert!(steps[..9].iter().all(|s| s["outcome"] == "ok"), "{steps:?}");

    // The KMS refused connections from step 4 to step 8: one fault period on its lane.
    let periods = timeline["periods"].as_array().expect("periods");
    let kms_faults: Vec<&Value> = periods.iter().filter(|p| p["lane"] == "vault").collect();
    assert_eq!(kms_faults.len(), 1, "{periods:?}");
    assert_eq!(kms_faults[0]["from_ms"], steps[3]["from_ms"]);
    assert_eq!(kms_faults[0]["to_ms"], steps[7]["from_ms"]);
    // Backend 2 restarted (down, if only for an instant), then was locked until the KMS
    // came back, then ready again.
    let states = |host: &str, fs: &str| -> Vec<String> {
        timeline["keys"]
            .as_array()
            .expect("keys")
            .iter()
            .filter(|k| k["lane"] == host && k["fs"] == fs)
            .map(|k| k["state"].as_str().expect("state").to_string())
            .collect()
    };
    let backend2 = states("backend2", "enc");
    assert!(
        backend2.ends_with(&["locked".into(), "ready".into()]),
        "{backend2:?}"
    );
    assert!(backend2.contains(&"ready".into()), "{backend2:?}");
    let down = periods
        .iter()
        .find(|p| p["lane"] == "backend2" && p["kind"] == "down")
        .unwrap_or_else(|| panic!("backend2 never down: {periods:?}"));
    assert_eq!(down["from_ms"], steps[4]["from_ms"]);

    // The JUnit file links the page.
    let junit = std::fs::read_to_string(folder.join("junit.xml")).expect("junit.xml");
    assert!(
        junit.contains("<property name=\"report\" value=\"report.html\"/>"),
        "{junit}"
    );
    assert!(
        junit.contains(&format!(
            "[[ATTACHMENT|{}]]",
            escape(&folder.join("report.html").display().to_string())
        )),
        "{junit}"
    );
}

/// A `file://` URL for `path`, every byte but letters, digits, `/`, `-`, `_` and `.`
/// percent-encoded (the run folder's name holds the scenario's `<i>&'`).
fn file_url(path: &Path) -> String {
    let mut url = String::from("file://");
    for b in path.to_str().expect("UTF-8 path").bytes() {
        if b.is_ascii_alphanumeric() || b"/-_.".contains(&b) {
            url.push(b as char);
        } else {
            url.push_str(&format!("%{b:02X}"));
        }
    }
    url
}

/// Runs Debian's chromium headless on `page` with `args`; fails loudly if it cannot start.
fn chromium(page: &Path, profile: &Path, args: &[&str]) -> String {
    let out = Command::new("chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--window-size=1400,1400",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(args)
        .arg(file_url(page))
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "cannot start chromium ({e}): install it with `apt-get install -y chromium` \
                 (tests/prerequisites.sh does)"
            )
        });
    assert!(
        out.status.success(),
        "chromium {args:?} failed: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn report_html_draws_in_headless_chromium_without_a_script_error() {
    let folder = failing_run_folder("browser");
    let page = folder.join("report.html");
    let profile = folder.join("chromium-profile");
    let dom = chromium(&page, &profile, &["--dump-dom"]);

    // The script ran to its end and no error reached window.onerror.
    let status = between(&dom, "<span id=\"render-status\"", "</span>");
    assert!(status.ends_with(">rendered"), "render status: {status}");
    assert!(
        dom.contains("<div id=\"script-error\" class=\"script-error\" hidden=\"\"></div>"),
        "a script error is shown: {}",
        between(&dom, "<div id=\"script-error\"", "</div>")
    );
    // The title the hostile text tries to set is not set.
    assert!(!dom.contains("pwned</title>"), "the hostile script ran");
    assert!(
        !dom.contains("<b id=\"bold\">"),
        "the hostile tag became an element"
    );
    // The timeline was drawn: a lane label per host, the failing step's span and the line
    // at the moment of failure; the failure box names the step and the check.
    for lane in [
        "KMS (vault)",
        "object store (s3)",
        "backend1",
        "backend2",
        "backend3",
    ] {
        assert!(dom.contains(&format!(">{lane}</text>")), "no lane {lane}");
    }
    assert!(dom.contains("id=\"failing-span\""), "no failing step span");
    assert!(dom.contains("id=\"failure-line\""), "no failure line");
    assert!(
        dom.contains("step 10 (weka)"),
        "the failing step is not shown"
    );
    assert!(
        dom.contains(">failed: expected-error at "),
        "no failure label"
    );

    // The screenshot, kept beside the page for a person to look at.
    let png = folder.join("report.png");
    chromium(
        &page,
        &profile,
        &[&format!("--screenshot={}", png.display())],
    );
    let bytes = std::fs::read(&png).expect("report.png");
    assert!(
        bytes.starts_with(b"\x89PNG") && bytes.len() > 10_000,
        "report.png is no screenshot ({} bytes)",
        bytes.len()
    );
    let _ = std::fs::remove_dir_all(&profile);
}
