//! The harness's KMIP admin against a real PyKMIP 0.11 (tests/run.sh installs it into
//! .venv): versions, a key's life from Create to Destroy, AES-256-GCM with the client's
//! 12-byte IV and a 16-byte tag checked against an independent AES-GCM, tenant isolation by
//! certificate CN, and the answers to wrong requests that kms-sim must give alike (see
//! "Observed from PyKMIP" in the KMIP notes). The test starts its own PyKMIP and fails if it
//! cannot; it never skips.

use std::path::{Path, PathBuf};

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use scenarios::kms::kmip::{connect_tls, KmipAdmin, KmipError};
use scenarios::live::pykmip::PyKmip;
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use ttlv::enums::{
    block_cipher_mode, cryptographic_algorithm, operation, result_reason, revocation_reason_code,
    state,
};
use ttlv::{tag, BatchItem, Item, ProtocolVersion, RequestMessage};

const CLUSTER: &str = "wekasim-cluster";
const OTHER: &str = "wekasim-other-tenant";

type Admin = KmipAdmin<TlsStream<TcpStream>>;

fn pykmip_bin() -> PathBuf {
    let bin = Path::new(env!("CARGO_MANIFEST_DIR")).join("../.venv/bin/pykmip-server");
    assert!(
        bin.is_file(),
        "{} is missing: this live test needs PyKMIP 0.11.0. Install it with \
         `bash tests/run.sh` (or `python3 -m venv .venv && .venv/bin/pip install \
         pykmip==0.11.0 cryptography==50.0.2 sqlalchemy==2.1.9`)",
        bin.display()
    );
    bin
}

async fn open(kmip: &PyKmip, cn: &str) -> Admin {
    let id = kmip.client(cn).unwrap();
    let stream = connect_tls(
        kmip.addr(),
        &kmip.server_name(),
        kmip.ca_pem(),
        &id.cert_pem,
        &id.key_pem,
    )
    .await
    .unwrap_or_else(|e| panic!("{cn} cannot connect to PyKMIP: {e}"));
    KmipAdmin::new(stream)
}

/// The value, or the test fails with the whole KMIP error (operation, reason, message).
fn ok<T>(r: Result<T, KmipError>) -> T {
    r.unwrap_or_else(|e| panic!("{e}"))
}

/// The call failed with `reason` and `message`.
fn refused<T: std::fmt::Debug>(r: Result<T, KmipError>, reason: u32, message: &str) {
    let e = r.expect_err("PyKMIP accepted a request it must refuse");
    assert_eq!(
        (e.reason(), e.message()),
        (Some(reason), Some(message)),
        "{e}"
    );
}

/// The key's bytes, read with Get: only to check PyKMIP's GCM against another one.
async fn key_bytes(admin: &mut Admin, uid: &str) -> Vec<u8> {
    let payload = ok(admin
        .call(
            operation::GET,
            vec![Item::text(tag::UNIQUE_IDENTIFIER, uid)],
        )
        .await);
    let material = [
        tag::SYMMETRIC_KEY,
        tag::KEY_BLOCK,
        tag::KEY_VALUE,
        tag::KEY_MATERIAL,
    ]
    .iter()
    .try_fold(&payload, |item, t| item.get(*t))
    .and_then(Item::as_bytes)
    .unwrap_or_else(|e| panic!("Get {uid}: {e}"));
    assert_eq!(material.len(), 32, "an AES-256 key");
    material
}

#[tokio::test]
async fn pykmip_keys_gcm_tenants_and_refusals() {
    let mut kmip = PyKmip::start(&pykmip_bin(), &[CLUSTER, OTHER])
        .await
        .unwrap_or_else(|e| panic!("cannot start PyKMIP: {e}"));
    let run = format!("wekasim-live-{}", std::process::id());
    let name = format!("{run}-k1");
    let mut admin = open(&kmip, CLUSTER).await;

    // Discover Versions: everything from 2.0 down to 1.0, the newest first, in any version
    // asked; and the intersection when the client lists its own.
    let offered = ok(admin.discover_versions().await);
    assert!(offered.contains(&ProtocolVersion::V2_0) && offered.contains(&ProtocolVersion::V1_2));
    let all =
        [(2, 0), (1, 4), (1, 3), (1, 2), (1, 1), (1, 0)].map(|(a, b)| ProtocolVersion::new(a, b));
    assert_eq!(offered, all);
    let answer = ok(admin
        .call(
            operation::DISCOVER_VERSIONS,
            vec![
                ProtocolVersion::V1_2.to_item(),
                ProtocolVersion::new(3, 0).to_item(),
            ],
        )
        .await);
    let common: Vec<_> = answer
        .all(tag::PROTOCOL_VERSION)
        .map(|v| ProtocolVersion::from_item(v).unwrap())
        .collect();
    assert_eq!(common, [ProtocolVersion::V1_2]);

    // A key is born Pre-Active, and cannot encrypt until activated.
    let uid = ok(admin.create_aes256(&name).await);
    assert_eq!(ok(admin.state(&uid).await), state::PRE_ACTIVE);
    refused(
        admin.encrypt_gcm(&uid, Some(&[1; 12]), b"x").await,
        result_reason::PERMISSION_DENIED,
        "The encryption key must be in the Active state to be used for encryption.",
    );
    ok(admin.activate(&uid).await);
    assert_eq!(ok(admin.state(&uid).await), state::ACTIVE);
    refused(
        admin.activate(&uid).await,
        result_reason::PERMISSION_DENIED,
        "The object state is not pre-active and cannot be activated.",
    );
    assert_eq!(ok(admin.locate_by_name(&name).await), [uid.as_str()]);

    // GCM at the TTLV level: the client's 12-byte IV is used as is (and not sent back), the
    // tag is 16 bytes, and both agree with an independent AES-256-GCM under the key's bytes.
    let plaintext = b"a 32-byte data encryption key!!!";
    let iv = [0x5A; 12];
    let sealed = ok(admin.encrypt_gcm(&uid, Some(&iv), plaintext).await);
    assert_eq!((sealed.iv.as_slice(), sealed.tag.len()), (&iv[..], 16));
    assert_eq!(sealed.ciphertext.len(), plaintext.len());
    let raw = ok(admin
        .call(
            operation::ENCRYPT,
            vec![
                Item::text(tag::UNIQUE_IDENTIFIER, uid.clone()),
                Item::structure(
                    tag::CRYPTOGRAPHIC_PARAMETERS,
                    vec![
                        Item::enumeration(tag::BLOCK_CIPHER_MODE, block_cipher_mode::GCM),
                        Item::enumeration(
                            tag::CRYPTOGRAPHIC_ALGORITHM,
                            cryptographic_algorithm::AES,
                        ),
                        Item::integer(tag::TAG_LENGTH, 16),
                    ],
                ),
                Item::bytes(tag::DATA, plaintext.to_vec()),
                Item::bytes(tag::IV_COUNTER_NONCE, iv.to_vec()),
            ],
        )
        .await);
    assert!(raw.find(tag::IV_COUNTER_NONCE).is_none(), "{raw:?}");
    let key = key_bytes(&mut admin, &uid).await;
    let aes = Aes256Gcm::new_from_slice(&key).unwrap();
    let mut ours = aes
        .encrypt(Nonce::from_slice(&iv), Payload::from(&plaintext[..]))
        .unwrap();
    let our_tag = ours.split_off(plaintext.len());
    assert!(
        ours == sealed.ciphertext && our_tag == sealed.tag,
        "PyKMIP's GCM differs from AES-256-GCM"
    );
    assert_eq!(ok(admin.decrypt_gcm(&uid, &sealed).await), plaintext);

    // A wrong tag fails as a General Failure; a truncated one is accepted (PyKMIP checks only
    // the bytes it is given).
    let mut forged = sealed.clone();
    forged.tag[0] ^= 1;
    refused(
        admin.decrypt_gcm(&uid, &forged).await,
        result_reason::GENERAL_FAILURE,
        "Operation failed. See the server logs for more information.",
    );
    let mut short = sealed.clone();
    short.tag.truncate(12);
    assert_eq!(ok(admin.decrypt_gcm(&uid, &short).await), plaintext);

    // GCM needs the Tag Length on Encrypt and the tag back on Decrypt.
    let aes_gcm = |tag_length: Option<i32>| {
        let mut params = vec![
            Item::enumeration(tag::BLOCK_CIPHER_MODE, block_cipher_mode::GCM),
            Item::enumeration(tag::CRYPTOGRAPHIC_ALGORITHM, cryptographic_algorithm::AES),
        ];
        params.extend(tag_length.map(|n| Item::integer(tag::TAG_LENGTH, n)));
        Item::structure(tag::CRYPTOGRAPHIC_PARAMETERS, params)
    };
    let uid_item = Item::text(tag::UNIQUE_IDENTIFIER, uid.clone());
    refused(
        admin
            .call(
                operation::ENCRYPT,
                vec![
                    uid_item.clone(),
                    aes_gcm(None),
                    Item::bytes(tag::DATA, plaintext.to_vec()),
                    Item::bytes(tag::IV_COUNTER_NONCE, iv.to_vec()),
                ],
            )
            .await,
        result_reason::INVALID_FIELD,
        "Authenticated encryption tag length must be provided in GCM mode only.",
    );
    refused(
        admin
            .call(
                operation::DECRYPT,
                vec![
                    uid_item.clone(),
                    aes_gcm(Some(16)),
                    Item::bytes(tag::DATA, sealed.ciphertext.clone()),
                    Item::bytes(tag::IV_COUNTER_NONCE, iv.to_vec()),
                ],
            )
            .await,
        result_reason::INVALID_FIELD,
        "Authenticated tag must be provided in GCM mode.",
    );

    // Without an IV, PyKMIP makes a 16-byte one (AES's block size) and returns it.
    let made = ok(admin.encrypt_gcm(&uid, None, plaintext).await);
    assert_eq!((made.iv.len(), made.tag.len()), (16, 16));
    assert_eq!(ok(admin.decrypt_gcm(&uid, &made).await), plaintext);

    // Another tenant cannot use the key, nor see it.
    let mut other = open(&kmip, OTHER).await;
    let not_yours = format!("Could not locate object: {uid}");
    refused(
        other.decrypt_gcm(&uid, &sealed).await,
        result_reason::PERMISSION_DENIED,
        &not_yours,
    );
    refused(
        other.state(&uid).await,
        result_reason::PERMISSION_DENIED,
        &not_yours,
    );
    assert!(ok(other.locate_by_name(&name).await).is_empty());

    // Refusals: an Active key cannot be destroyed; an unknown UID is not found; Encrypt does
    // not exist in KMIP 1.1 (answered in 1.1); an unknown operation is an unparseable
    // message, answered in 1.0 without an Operation, and the connection stays usable.
    refused(
        admin.destroy(&uid).await,
        result_reason::PERMISSION_DENIED,
        "Object is active and cannot be destroyed.",
    );
    refused(
        admin.encrypt_gcm("999999", Some(&iv), b"x").await,
        result_reason::ITEM_NOT_FOUND,
        "Could not locate object: 999999",
    );
    let old = ok(admin
        .exchange(&RequestMessage {
            version: ProtocolVersion::V1_1,
            batch: vec![BatchItem::new(
                operation::ENCRYPT,
                vec![
                    Item::text(tag::UNIQUE_IDENTIFIER, uid.clone()),
                    Item::bytes(tag::DATA, b"x".to_vec()),
                ],
            )],
        })
        .await);
    assert_eq!(old.version, ProtocolVersion::V1_1);
    let failure = old.batch[0].result.clone().unwrap_err();
    assert_eq!(
        (failure.reason, failure.message.as_deref()),
        (
            Some(result_reason::OPERATION_NOT_SUPPORTED),
            Some("Encrypt is not supported by KMIP 1.1")
        )
    );
    let unknown = ok(admin
        .exchange(&RequestMessage {
            version: ProtocolVersion::V1_4,
            batch: vec![BatchItem::new(0x99, Vec::new())],
        })
        .await);
    assert_eq!(
        (unknown.version, unknown.batch[0].operation),
        (ProtocolVersion::V1_0, None)
    );
    let failure = unknown.batch[0].result.clone().unwrap_err();
    assert_eq!(
        (failure.reason, failure.message.as_deref()),
        (
            Some(result_reason::INVALID_MESSAGE),
            Some("Error parsing request message. See server logs for more information.")
        )
    );
    assert_eq!(ok(admin.discover_versions().await), all);
    // A version it does not know fails to parse the same way.
    let future = ok(admin
        .exchange(&RequestMessage {
            version: ProtocolVersion::new(3, 0),
            batch: vec![BatchItem::new(operation::DISCOVER_VERSIONS, Vec::new())],
        })
        .await);
    assert_eq!(future.version, ProtocolVersion::V1_0);
    let failure = future.batch[0].result.clone().unwrap_err();
    assert_eq!(failure.reason, Some(result_reason::INVALID_MESSAGE));

    // A client certificate of a CA PyKMIP does not trust fails the handshake (TLS 1.2: the
    // server's alert arrives before the client's handshake completes).
    let stranger = &kmip.pki().unknown_ca_client;
    let refused_tls = match connect_tls(
        kmip.addr(),
        &kmip.server_name(),
        kmip.ca_pem(),
        &stranger.cert_pem,
        &stranger.key_pem,
    )
    .await
    {
        Err(e) => e,
        Ok(stream) => KmipAdmin::new(stream)
            .discover_versions()
            .await
            .expect_err("PyKMIP answered a client of an unknown CA")
            .to_string(),
    };
    assert!(
        refused_tls.contains("TLS handshake") && refused_tls.contains("UnknownCA"),
        "{refused_tls}"
    );

    // Revoke, then the key decrypts no more; Destroy removes it outright.
    ok(admin
        .revoke(&uid, revocation_reason_code::CESSATION_OF_OPERATION)
        .await);
    assert_eq!(ok(admin.state(&uid).await), state::DEACTIVATED);
    refused(
        admin.decrypt_gcm(&uid, &sealed).await,
        result_reason::PERMISSION_DENIED,
        "The decryption key must be in the Active state to be used for decryption.",
    );
    ok(admin.destroy(&uid).await);
    refused(
        admin.state(&uid).await,
        result_reason::ITEM_NOT_FOUND,
        &not_yours,
    );

    // Nothing of the run is left, as either tenant sees it.
    for a in [&mut admin, &mut other] {
        assert!(ok(a.locate_by_name(&name).await).is_empty());
    }
    drop((admin, other));
    let group = kmip.pid().unwrap();
    assert!(
        group_members(group).len() > 1,
        "PyKMIP forks helper processes"
    );
    kmip.stop().await.unwrap();
    assert!(kmip.pid().is_none());
    assert_eq!(
        group_gone(group).await,
        [0u32; 0],
        "left running after the stop"
    );
    assert!(!kmip.dir().exists());
}

/// Dropping a server (a test that fails, a run that errs) kills it and every process it
/// forked at once, and removes its temp dir.
#[tokio::test]
async fn pykmip_drop_leaves_nothing_behind() {
    let kmip = PyKmip::start(&pykmip_bin(), &[CLUSTER])
        .await
        .unwrap_or_else(|e| panic!("cannot start PyKMIP: {e}"));
    let group = kmip.pid().unwrap();
    let dir = kmip.dir().to_path_buf();
    assert!(dir.join("server.key").is_file());
    assert!(
        group_members(group).len() > 1,
        "PyKMIP forks helper processes"
    );
    drop(kmip);
    assert_eq!(
        group_gone(group).await,
        [0u32; 0],
        "left running after the drop"
    );
    assert!(!dir.exists());
}

/// The members of group `pgid` still alive 2 s after it was sent SIGKILL: none, unless
/// the kill missed some (a SIGKILL is delivered asynchronously, so this looks again).
async fn group_gone(pgid: u32) -> Vec<u32> {
    let mut left = group_members(pgid);
    for _ in 0..40 {
        if left.is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        left = group_members(pgid);
    }
    left
}

/// The live (not zombie) processes of process group `pgid`, from /proc.
fn group_members(pgid: u32) -> Vec<u32> {
    let mut members = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // pid (comm) state ppid pgrp ...: comm may hold spaces, so count from its ')'.
        let after = &stat[stat.rfind(')').map_or(0, |i| i + 1)..];
        let fields: Vec<&str> = after.split_whitespace().take(3).collect();
        if fields.len() == 3 && fields[0] != "Z" && fields[2] == pgid.to_string() {
            members.push(pid);
        }
    }
    members
}
