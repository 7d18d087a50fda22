use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;

#[tokio::test]
async fn serve_stream_over_duplex_has_no_date_header_and_keeps_alive() {
    let sim = kms_sim::VaultSim::new(9, "root");
    let (client_io, server_io) = tokio::io::duplex(64 * 1024);
    let server = tokio::spawn(kms_sim::serve::serve_stream(sim.router(), server_io));
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(client_io))
        .await
        .unwrap();
    let conn = tokio::spawn(conn);

    for (method, path, body, want) in [
        ("GET", "/v1/sys/health", "", 200),
        (
            "POST",
            "/v1/sys/mounts/transit",
            r#"{"type":"transit"}"#,
            204,
        ),
        ("LIST", "/v1/transit/keys", "", 404),
        (
            "POST",
            "/v1/transit/encrypt/k",
            r#"{"plaintext":"aGk="}"#,
            200,
        ),
    ] {
        let req = hyper::Request::builder()
            .method(method)
            .uri(path)
            .header("host", "vault")
            .header("x-vault-token", "root")
            .body(Full::new(Bytes::from(body)))
            .unwrap();
        let resp = sender.send_request(req).await.unwrap();
        assert_eq!(resp.status().as_u16(), want, "{method} {path}");
        assert!(
            resp.headers().get("date").is_none(),
            "a Date header reads the real clock"
        );
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        if want == 200 {
            assert!(serde_json::from_slice::<serde_json::Value>(&bytes).is_ok());
        }
    }
    assert_eq!(sim.requests_served(), 4);
    drop(sender);
    conn.await.unwrap().unwrap();
    server.await.unwrap();
}
