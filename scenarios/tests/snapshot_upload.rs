//! `fs snapshot upload` with backends down: it copies every acknowledged block, or fails
//! with a clear error and leaves no manifest behind.

use scenarios::runner::SimOptions;
use scenarios::scenario::Scenario;
use scenarios::simulated;

/// Five backends, two replicas: fs1 (the first filesystem, id 1) places its blocks 0..5
/// on backends 3-4, 4-5, 5-1, 1-2 and 2-3. Five blocks are written, `crashed` go down,
/// `fs snapshot upload fs1 s1` runs (with `expect`, TOML keys of its step), then the
/// steps in `then`.
fn upload_with_backends_down(crashed: &[u32], expect: &str, then: &str) -> Scenario {
    let crashes: String = crashed
        .iter()
        .map(|b| format!("[[step]]\naction = \"crash\"\nbackend = {b}\n\n"))
        .collect();
    let text = format!(
        r#"
[scenario]
name = "snapshot-upload-backends-down"
description = "snapshot upload with backends down"

[cluster]
backends = 5
replicas = 2

[kms]
type = "vault"
key = "weka-key"

[[step]]
action = "weka"
command = "weka security kms set vault $VAULT_URL weka-key --role-id $ROLE_ID --secret-id $SECRET_ID"

[[step]]
action = "weka"
command = "weka fs create fs1 default 10GiB --encrypted"

[[step]]
action = "write"
fs = "fs1"
blocks = 5

{crashes}[[step]]
action = "weka"
command = "weka fs snapshot upload fs1 s1"
{expect}
{then}"#
    );
    Scenario::parse(&text).expect("the test's scenario parses")
}

fn assert_passes(scenario: &Scenario) {
    for seed in 0..3 {
        let report = simulated::run(scenario, &SimOptions::new(seed));
        assert!(report.passed(), "{}", report.verdict_line());
    }
}

#[test]
fn an_upload_that_cannot_reach_every_block_fails_and_writes_no_manifest() {
    // Backends 2 and 3 hold both replicas of block 4: no other backend can list it.
    let scenario = upload_with_backends_down(
        &[2, 3],
        r#"expect_error = "cannot list every block of fs1: backend2 and backend3 did not answer""#,
        r#"
[[step]]
action = "weka"
command = "weka fs download dl1 default 10GiB 1GiB weka-snapshots fs1/s1"
expect_error = "no snapshot in bucket weka-snapshots"
"#,
    );
    assert_passes(&scenario);
}

#[test]
fn an_upload_with_a_replica_of_every_block_up_copies_them_all() {
    // Backends 2 and 4 are never both replicas of one block.
    let scenario = upload_with_backends_down(
        &[2, 4],
        "",
        r#"
[[step]]
action = "start"

[[step]]
action = "wait-ready"
within = "30s"

[[step]]
action = "weka"
command = "weka fs download dl1 default 10GiB 1GiB weka-snapshots fs1/s1"

[[step]]
action = "read-verify"
fs = "dl1"
"#,
    );
    assert_passes(&scenario);
}
