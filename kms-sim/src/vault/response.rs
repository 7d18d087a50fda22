//! Vault's response shapes: the data envelope, the `auth` block and `{"errors": [...]}`.

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use rand::RngCore;
use rand_chacha::ChaCha20Rng;
use serde_json::{json, Value};

/// An error answer. Messages are fixed strings or carry names only: never a token, secret-id,
/// plaintext or key material, since clients log them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VaultError {
    pub status: StatusCode,
    pub errors: Vec<String>,
}

impl VaultError {
    pub fn new(status: StatusCode, msg: impl Into<String>) -> Self {
        VaultError {
            status,
            errors: vec![msg.into()],
        }
    }
    pub fn bad_request(msg: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, msg)
    }
    /// No token, or one that is unknown or expired.
    pub fn denied() -> Self {
        Self::new(StatusCode::FORBIDDEN, "permission denied")
    }
    /// One error in the text OpenBao's multierror wraps some of its answers in.
    pub fn multierror(status: StatusCode, msg: impl std::fmt::Display) -> Self {
        Self::new(status, format!("1 error occurred:\n\t* {msg}\n\n"))
    }
    /// A live token whose policies do not grant the path: OpenBao wraps this one in its
    /// multierror text.
    pub fn acl_denied() -> Self {
        Self::multierror(StatusCode::FORBIDDEN, "permission denied")
    }
    pub fn sealed() -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, "Vault is sealed")
    }
    pub fn unsupported() -> Self {
        Self::new(StatusCode::METHOD_NOT_ALLOWED, "unsupported operation")
    }
    pub fn no_route(path: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            format!("no handler for route \"{path}\". route entry not found."),
        )
    }
    /// Vault answers a read of a missing object with 404 and an empty error list.
    pub fn not_found() -> Self {
        VaultError {
            status: StatusCode::NOT_FOUND,
            errors: Vec::new(),
        }
    }
}

impl IntoResponse for VaultError {
    fn into_response(self) -> Response {
        json_response(self.status, &json!({ "errors": self.errors }))
    }
}

pub type VResult = Result<Response, VaultError>;

pub fn json_response(status: StatusCode, body: &Value) -> Response {
    let bytes = serde_json::to_vec(body).unwrap_or_default();
    (status, [(header::CONTENT_TYPE, "application/json")], bytes).into_response()
}

pub fn no_content() -> Response {
    StatusCode::NO_CONTENT.into_response()
}

/// A uuid-v4-shaped id drawn from the simulation's rng, so request ids replay by seed.
pub fn uuid(rng: &mut ChaCha20Rng) -> String {
    let mut b = [0u8; 16];
    rng.fill_bytes(&mut b);
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// Every field vaultrs's `EndpointResult` requires is present, even when null; and no more
/// than OpenBao sends (it has no `mount_type`).
pub fn envelope(rng: &mut ChaCha20Rng, data: Value, auth: Value) -> Value {
    json!({
        "request_id": uuid(rng),
        "lease_id": "",
        "renewable": false,
        "lease_duration": 0,
        "data": data,
        "wrap_info": null,
        "warnings": null,
        "auth": auth,
    })
}

pub fn data(rng: &mut ChaCha20Rng, data: Value) -> Response {
    data_with_status(rng, StatusCode::OK, data)
}

pub fn data_with_status(rng: &mut ChaCha20Rng, status: StatusCode, data: Value) -> Response {
    json_response(status, &envelope(rng, data, Value::Null))
}

pub fn auth(rng: &mut ChaCha20Rng, auth: Value) -> Response {
    json_response(StatusCode::OK, &envelope(rng, Value::Null, auth))
}
