//! The KMIP connector against kms-sim's KMIP server, over an in-memory stream (TLS is the
//! transport's business): the two sides share only the standard and the `ttlv` codec, so
//! this is where a disagreement between them shows.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use cluster::dek::Dek;
use cluster::kms::{
    wrapping_key, KmipConfig, KmipConnector, KmipRandom, KmipTransport, KmsConnector, KmsError,
};
use cluster::net::BoxStream;
use cluster::secret::Secret;
use kms_sim::kmip::{fixed_clock, Fault};
use kms_sim::KmipSim;
use ttlv::ProtocolVersion;

const OWNER: &str = "weka-cluster";

fn transport(server: &KmipSim) -> KmipTransport {
    let server = server.clone();
    Arc::new(move || {
        let server = server.clone();
        Box::pin(async move {
            let (client, remote) = tokio::io::duplex(1 << 16);
            tokio::spawn(async move { server.serve_connection(remote, OWNER.into()).await });
            Ok(Box::new(client) as BoxStream)
        })
    })
}

fn counter() -> KmipRandom {
    let next = Arc::new(AtomicU64::new(1));
    Arc::new(move |buf: &mut [u8]| {
        for chunk in buf.chunks_mut(8) {
            let n = next.fetch_add(1, Ordering::SeqCst).to_be_bytes();
            chunk.copy_from_slice(&n[..chunk.len()]);
        }
    })
}

fn connector(server: &KmipSim, uid: &str) -> KmipConnector {
    let config = KmipConfig {
        address: "kms:5696".into(),
        key_uid: uid.into(),
        client_cert_pem: String::new(),
        client_key_pem: Secret::new(""),
        ca_cert_pem: None,
    };
    KmipConnector::new(config, transport(server), counter())
}

fn dek(n: u8) -> Dek {
    Dek::from_bytes(&[n; 32]).unwrap()
}

#[tokio::test]
async fn wrap_unwrap_and_rewrap_against_kms_sim() {
    let server = KmipSim::new(7, fixed_clock(1_700_000_000));
    let old = server.create_key(OWNER, "weka-key");
    let new = server.create_key(OWNER, "weka-key-2");
    let kms = connector(&server, &old);
    kms.probe().await.unwrap();
    assert_eq!(kms.negotiated(), Some(ProtocolVersion::V2_1));

    let deks = [dek(1), dek(2), dek(3)];
    let wrapped = kms.wrap(&deks).await.unwrap();
    assert!(wrapped
        .iter()
        .all(|w| wrapping_key(&w.ciphertext) == Some(old.as_str())));
    assert_eq!(kms.unwrap(&wrapped).await.unwrap(), deks.to_vec());
    // The server agrees the wrapping is under the old key.
    let rewrapped = connector(&server, &new).rewrap(&wrapped).await.unwrap();
    assert!(rewrapped
        .iter()
        .all(|w| wrapping_key(&w.ciphertext) == Some(new.as_str())));
    assert_eq!(kms.unwrap(&rewrapped).await.unwrap(), deks.to_vec());
}

#[tokio::test]
async fn kms_sim_failures_become_kmip_failures() {
    let server = KmipSim::new(7, fixed_clock(1_700_000_000));
    let uid = server.create_key(OWNER, "weka-key");
    let kms = connector(&server, &uid);
    let wrapped = kms.wrap(&[dek(9)]).await.unwrap();

    server.set_fault(Fault::GeneralFailure);
    let err = kms.unwrap(&wrapped).await.unwrap_err();
    assert!(
        matches!(&err, KmsError::KmipFailure { operation, reason, .. }
            if operation == "Decrypt" && reason == "General Failure"),
        "{err:?}"
    );
    server.set_fault(Fault::None);

    // Another client's key (or none) is not found.
    let err = connector(&server, "no-such-key")
        .wrap(&[dek(1)])
        .await
        .unwrap_err();
    assert!(
        matches!(&err, KmsError::KmipFailure { reason, .. } if reason == "Item Not Found"),
        "{err:?}"
    );
    // A revoked key still unwraps what it wrapped (kms-sim's stated difference from
    // PyKMIP); a destroyed one does not.
    server.revoke(&uid).unwrap();
    assert_eq!(kms.unwrap(&wrapped).await.unwrap(), vec![dek(9)]);
    server.destroy(&uid).unwrap();
    assert!(matches!(
        kms.unwrap(&wrapped).await,
        Err(KmsError::KmipFailure { .. })
    ));
}
