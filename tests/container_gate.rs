//! The CI gate against a real Vault: OpenBao 2.7.2 in a container (image
//! `wekasim/openbao:2.7.2`, built locally by `bash tests/images.sh`; it is never pulled),
//! started with testcontainers as a dev server, prepared the way WEKA's documentation asks
//! (transit engine, `weka-key`, policy, AppRole, token), and then the cluster's own Vault
//! connector, over real TCP: probe, wrap, unwrap, rewrap after a key rotation, by AppRole and
//! by token.
//!
//! A missing image fails the test (it never skips) with a message to run
//! `bash tests/images.sh`. The container is removed when the test ends, also on failure.

mod docker_support;

use std::sync::Arc;
use std::time::Duration;

use cluster::dek::Dek;
use cluster::http::HttpClient;
use cluster::kms::{connect, KmsConfig, KmsConnector, VaultAuth, VaultConfig, WrappedDek};
use cluster::net::TcpDialer;
use docker_support::OpenBaoContainer;
use scenarios::vault_setup::VaultAdmin;
use testcontainers::clients::Cli;

const TRANSIT: &str = "transit";
const KEY: &str = "weka-key";

#[test]
fn connector_round_trips_against_openbao_in_a_container() {
    let docker = Cli::default();
    // Dropped after the runtime (locals drop in reverse order): the container goes away also
    // when an assertion below panics.
    let bao = OpenBaoContainer::start(&docker);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    rt.block_on(gate(bao.base_url(), bao.root_token()));
}

/// Four distinct DEKs.
fn deks() -> Vec<Dek> {
    (1..=4u8)
        .map(|i| Dek::from_bytes(&[i.wrapping_mul(37); 32]).expect("32 bytes make a DEK"))
        .collect()
}

fn vault_config(base: &str, auth: VaultAuth) -> KmsConfig {
    KmsConfig::Vault(VaultConfig {
        url: base.to_string(),
        key_name: KEY.to_string(),
        transit_path: TRANSIT.to_string(),
        auth_path: "approle".to_string(),
        namespace: None,
        auth,
    })
}

fn assert_wrapped(wrapped: &[WrappedDek], deks: &[Dek], version: u64) {
    assert_eq!(wrapped.len(), deks.len(), "one wrapped DEK per DEK");
    for (w, d) in wrapped.iter().zip(deks) {
        assert_eq!(w.key_version, version, "key version of {}", w.ciphertext);
        assert!(
            w.ciphertext.starts_with(&format!("vault:v{version}:")),
            "not a Vault v{version} ciphertext: {}",
            w.ciphertext
        );
        let hex: String = d.expose().iter().map(|b| format!("{b:02x}")).collect();
        assert!(
            !w.ciphertext.contains(&hex),
            "a wrapped DEK carries its plaintext"
        );
    }
}

async fn assert_unwraps(kms: &dyn KmsConnector, wrapped: &[WrappedDek], deks: &[Dek], what: &str) {
    let back = kms
        .unwrap(wrapped)
        .await
        .unwrap_or_else(|e| panic!("unwrap {what}: {e}"));
    assert_eq!(
        back.len(),
        deks.len(),
        "unwrap {what}: one DEK per wrapped DEK"
    );
    for (i, (b, d)) in back.iter().zip(deks).enumerate() {
        assert!(b == d, "unwrap {what}: DEK {i} did not come back as itself");
    }
}

async fn gate(base: &str, root_token: &str) {
    let http = HttpClient::new(Arc::new(TcpDialer), Duration::from_secs(10));
    let admin = VaultAdmin {
        http: &http,
        base,
        root_token,
    };
    let creds = admin
        .prepare(TRANSIT, &[KEY])
        .await
        .unwrap_or_else(|e| panic!("preparing OpenBao at {base} the way WEKA expects: {e}"));

    // AppRole, as `weka security kms set vault URL weka-key --role-id .. --secret-id ..`.
    let approle = connect(
        &vault_config(
            base,
            VaultAuth::AppRole {
                role_id: creds.role_id.clone(),
                secret_id: creds.secret_id.clone(),
            },
        ),
        Arc::new(TcpDialer),
    );
    approle
        .probe()
        .await
        .unwrap_or_else(|e| panic!("probe by AppRole: {e}"));

    let deks = deks();
    let wrapped = approle
        .wrap(&deks)
        .await
        .unwrap_or_else(|e| panic!("wrap by AppRole: {e}"));
    assert_wrapped(&wrapped, &deks, 1);
    let distinct: std::collections::BTreeSet<&str> =
        wrapped.iter().map(|w| w.ciphertext.as_str()).collect();
    assert_eq!(distinct.len(), deks.len(), "distinct DEKs wrap distinctly");
    assert_unwraps(approle.as_ref(), &wrapped, &deks, "by AppRole").await;

    // Rotate the key (an admin's `transit/keys/weka-key/rotate`): rewrap moves every DEK to
    // version 2, and both the old and the new wrapped forms still unwrap.
    admin
        .call("POST", &format!("{TRANSIT}/keys/{KEY}/rotate"), None)
        .await
        .unwrap_or_else(|e| panic!("rotating {KEY}: {e}"));
    let rewrapped = approle
        .rewrap(&wrapped)
        .await
        .unwrap_or_else(|e| panic!("rewrap by AppRole: {e}"));
    assert_wrapped(&rewrapped, &deks, 2);
    assert_unwraps(approle.as_ref(), &rewrapped, &deks, "rewrapped, by AppRole").await;
    assert_unwraps(
        approle.as_ref(),
        &wrapped,
        &deks,
        "version 1, after rotation",
    )
    .await;
    // New wraps use the newest version.
    let fresh = approle
        .wrap(&deks[..1])
        .await
        .unwrap_or_else(|e| panic!("wrap after rotation: {e}"));
    assert_wrapped(&fresh, &deks[..1], 2);

    // Token, as `weka security kms set vault URL weka-key --token ..`: the same keys.
    let token = connect(
        &vault_config(
            base,
            VaultAuth::Token {
                token: creds.token.clone(),
            },
        ),
        Arc::new(TcpDialer),
    );
    token
        .probe()
        .await
        .unwrap_or_else(|e| panic!("probe by token: {e}"));
    assert_unwraps(token.as_ref(), &rewrapped, &deks, "by token").await;
}
