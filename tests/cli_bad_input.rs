//! Bad input never runs a simulation: `wekasim` prints one clear error on stderr, names
//! what was wrong (and for a scenario file, the file and the line), exits with code 2,
//! and never panics.

mod common;

use common::{run, Run, TempDir, EXIT_USAGE};

/// Exit code 2, an `error:` message on stderr, nothing on stdout, no panic text.
fn assert_bad_input(r: &Run) {
    assert_eq!(r.code, Some(EXIT_USAGE), "{}", r.describe());
    assert!(
        r.stderr.contains("error"),
        "no error message\n{}",
        r.describe()
    );
    assert!(
        r.stdout.trim().is_empty(),
        "stdout should be empty\n{}",
        r.describe()
    );
    for panic_text in ["panicked", "RUST_BACKTRACE"] {
        assert!(
            !r.stderr.contains(panic_text),
            "stderr has panic text {panic_text:?}\n{}",
            r.describe()
        );
    }
}

/// Asserts that `needle` appears in stderr.
fn assert_stderr_has(r: &Run, needle: &str) {
    assert!(
        r.stderr.contains(needle),
        "stderr should contain {needle:?}\n{}",
        r.describe()
    );
}

#[test]
fn unknown_scenario_is_named_and_known_ones_are_listed() {
    let r = run(&["run", "no-such-scenario"]);
    assert_bad_input(&r);
    assert_stderr_has(&r, "no-such-scenario");
    assert_stderr_has(&r, "startup-unwrap");
}

#[test]
fn unknown_scenario_lists_only_scenario_files() {
    // The list of known scenarios must not offer files that are not scenarios, such as
    // the `scenarios` crate's own Cargo.toml.
    let r = run(&["run", "no-such-scenario"]);
    assert_bad_input(&r);
    let known = r
        .stderr
        .split("known scenarios")
        .nth(1)
        .unwrap_or_else(|| panic!("no list of known scenarios\n{}", r.describe()));
    assert!(
        !known.contains("Cargo"),
        "Cargo.toml is listed as a scenario\n{}",
        r.describe()
    );
}

#[test]
fn non_numeric_seed_is_refused() {
    let r = run(&["run", "startup-unwrap", "--seed", "notanumber"]);
    assert_bad_input(&r);
    assert_stderr_has(&r, "notanumber");
    assert_stderr_has(&r, "--seed");
}

#[test]
fn reversed_seed_range_is_refused() {
    let r = run(&["suite", "--seeds", "5..2"]);
    assert_bad_input(&r);
    assert_stderr_has(&r, "5..2");
    assert_stderr_has(&r, "--seeds");
}

#[test]
fn empty_seed_range_is_refused() {
    let r = run(&["suite", "--seeds", "3..3"]);
    assert_bad_input(&r);
    assert_stderr_has(&r, "3..3");
    assert_stderr_has(&r, "--seeds");
}

#[test]
fn unknown_flag_is_refused() {
    let r = run(&["run", "startup-unwrap", "--frobnicate"]);
    assert_bad_input(&r);
    assert_stderr_has(&r, "--frobnicate");
}

/// Writes `contents` as a scenario file in a fresh temp dir, runs it, and checks the
/// error names the file, `line {line}`, and every one of `mentions`.
fn assert_malformed_file_refused(test_name: &str, contents: &str, line: usize, mentions: &[&str]) {
    let dir = TempDir::new(test_name);
    let path = dir.write(&format!("{test_name}.toml"), contents);
    let path = path.to_str().expect("temp path is UTF-8");
    let r = run(&["run", path]);
    assert_bad_input(&r);
    assert_stderr_has(&r, path);
    for m in mentions {
        assert_stderr_has(&r, m);
    }
    assert_stderr_has(&r, &format!("line {line}:"));
}

#[test]
fn toml_syntax_error_names_file_and_line() {
    let text = r#"[scenario]
name = "bad-syntax"

[[step]]
action = "kms-set"
auth = "token
"#;
    // The unterminated string is on line 6.
    assert_malformed_file_refused("toml_syntax_error", text, 6, &["auth = \"token"]);
}

#[test]
fn unknown_step_field_names_file_line_and_field() {
    let text = r#"[scenario]
name = "bad-field"

[[step]]
action = "write"
blockz = 3
"#;
    // `blockz` is on line 6 (the step's `[[step]]` header is on line 4).
    assert_malformed_file_refused("unknown_step_field", text, 6, &["blockz"]);
}

#[test]
fn wrong_value_type_names_file_line_and_value() {
    let text = r#"[scenario]
name = "bad-type"

[cluster]
backends = "five"
"#;
    assert_malformed_file_refused("wrong_value_type", text, 5, &["backends", "five"]);
}

#[test]
fn unknown_action_names_file_line_and_action() {
    let text = r#"[scenario]
name = "bad-action"

[[step]]
action = "explode"
"#;
    assert_malformed_file_refused("unknown_action", text, 5, &["explode"]);
}

#[test]
fn bad_duration_names_file_line_and_value() {
    let text = r#"[scenario]
name = "bad-duration"

[[step]]
action = "wait-ready"
within = "5 parsecs"
"#;
    // `within` is on line 6 (the step's `[[step]]` header is on line 4).
    assert_malformed_file_refused("bad_duration", text, 6, &["5 parsecs"]);
}

#[test]
fn suite_refuses_a_library_with_a_malformed_file() {
    let dir = TempDir::new("suite_malformed_library");
    let path = dir.write(
        "wrong-type.toml",
        "[scenario]\nname = \"wrong-type\"\n\n[cluster]\nbackends = \"five\"\n",
    );
    let r = run(&[
        "suite",
        "--seeds",
        "0..1",
        "--scenarios",
        dir.path().to_str().expect("temp path is UTF-8"),
    ]);
    assert_bad_input(&r);
    assert_stderr_has(&r, path.to_str().expect("temp path is UTF-8"));
    assert_stderr_has(&r, "five");
}

#[test]
fn kms_set_with_token_and_role_id_is_refused_before_running() {
    let dir = TempDir::new("kms_set_token_and_role_id");
    let text = r#"[scenario]
name = "both-credentials"

[[step]]
action = "weka"
command = "weka security kms set vault $VAULT_URL weka-key --token $TOKEN --role-id $ROLE_ID --secret-id $SECRET_ID"
"#;
    let path = dir.write("both.toml", text);
    let path = path.to_str().expect("temp path is UTF-8");
    let r = run(&["run", path]);
    assert_bad_input(&r);
    assert_stderr_has(&r, path);
    assert_stderr_has(&r, "step 1");
    assert_stderr_has(&r, "--token and --role-id exclude each other");
}

#[test]
fn a_normal_build_refuses_to_plant_bugs() {
    let r = run(&["run", "startup-unwrap", "--plant", "skip-one-rewrap"]);
    assert_bad_input(&r);
    assert_stderr_has(&r, "cannot plant bugs");
    assert_stderr_has(&r, "--features planted-bugs");
}

#[test]
fn sweep_refuses_a_reversed_seed_range() {
    let r = run(&["sweep", "--seeds", "9..3"]);
    assert_bad_input(&r);
    assert_stderr_has(&r, "empty or reversed");
}

#[test]
fn unknown_fault_mode_and_host_are_named() {
    let dir = TempDir::new("unknown_fault_and_host");
    let fault = dir.write(
        "fault.toml",
        "[scenario]\nname = \"f\"\n\n[[step]]\naction = \"kms-fault\"\nmode = \"meltdown\"\n",
    );
    let r = run(&["run", fault.to_str().expect("UTF-8 path")]);
    assert_bad_input(&r);
    assert_stderr_has(&r, "meltdown");
    assert_stderr_has(&r, "line 6:");
    let host = dir.write(
        "host.toml",
        "[scenario]\nname = \"h\"\n\n[[step]]\naction = \"partition\"\na = \"backend9\"\nb = \"kms\"\n",
    );
    let r = run(&["run", host.to_str().expect("UTF-8 path")]);
    assert_bad_input(&r);
    assert_stderr_has(&r, "unknown host \"backend9\"");
    assert_stderr_has(&r, "step 1 (partition)");
}

#[test]
fn contradictory_expectations_are_refused() {
    let dir = TempDir::new("contradictory_expectations");
    let path = dir.write(
        "both2.toml",
        "[scenario]\nname = \"c\"\n\n[[step]]\naction = \"weka\"\ncommand = \"weka fs create a default 1GiB\"\nexpect_error = \"x\"\nexpect = \"any\"\n",
    );
    let r = run(&["run", path.to_str().expect("UTF-8 path")]);
    assert_bad_input(&r);
    assert_stderr_has(&r, "expect_error already says");
}

#[test]
fn a_step_on_a_filesystem_nothing_creates_is_refused() {
    let dir = TempDir::new("unknown_filesystem");
    let path = dir.write(
        "ghost.toml",
        "[scenario]\nname = \"g\"\n\n[[step]]\naction = \"write\"\nfs = \"ghost\"\nblocks = 1\n",
    );
    let r = run(&["run", path.to_str().expect("UTF-8 path")]);
    assert_bad_input(&r);
    assert_stderr_has(&r, "step 1 (write)");
    assert_stderr_has(&r, "\"ghost\"");
}
