//! Vault transit connector: vaultrs's request types for the calls it has, our own
//! rustify endpoints for the batched forms it lacks, over the node's [`HttpClient`].

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use rustify::endpoint::{Endpoint, MiddleWare};
use rustify::enums::{RequestMethod, RequestType, ResponseType};
use rustify::errors::ClientError as RustifyError;
use serde::{Deserialize, Serialize};
use tokio::sync::Mutex;
use vaultrs::api::auth::approle::requests::LoginWithApproleRequest;
use vaultrs::api::transit::requests::{DecryptDataRequest, EncryptDataRequest};
use vaultrs::api::{EndpointMiddleware, EndpointResult};

use super::{KmsConnector, KmsError, VaultAuth, VaultConfig, WrappedDek};
use crate::dek::Dek;
use crate::http::HttpClient;
use crate::net::BoxFuture;

pub struct VaultConnector {
    config: VaultConfig,
    http: HttpClient,
    /// The AppRole login token, fetched on first use and again after a 403.
    login: Mutex<Option<String>>,
}

impl VaultConnector {
    pub fn new(config: VaultConfig, http: HttpClient) -> Self {
        VaultConnector {
            config,
            http,
            login: Mutex::new(None),
        }
    }

    fn base(&self) -> &str {
        self.config.url.trim_end_matches('/')
    }

    fn middleware(&self, token: String) -> EndpointMiddleware {
        EndpointMiddleware {
            token,
            version: "v1".into(),
            wrap: None,
            namespace: self.config.namespace.clone(),
        }
    }

    async fn token(&self) -> Result<String, KmsError> {
        match &self.config.auth {
            VaultAuth::Token { token } => Ok(token.expose().to_string()),
            VaultAuth::AppRole { role_id, secret_id } => {
                let mut cached = self.login.lock().await;
                if let Some(token) = cached.as_ref() {
                    return Ok(token.clone());
                }
                let login = LoginWithApproleRequest::builder()
                    .mount(self.config.auth_path.clone())
                    .role_id(role_id.clone())
                    .secret_id(secret_id.expose().to_string())
                    .build()
                    .map_err(|e| KmsError::Malformed(e.to_string()))?;
                let body = self.send(&login, String::new()).await?;
                let result: EndpointResult<serde_json::Value> = serde_json::from_slice(&body)
                    .map_err(|e| KmsError::Malformed(format!("approle login answer: {e}")))?;
                let token = result.auth.map(|a| a.client_token).ok_or_else(|| {
                    KmsError::Malformed("approle login answer has no auth".into())
                })?;
                *cached = Some(token.clone());
                Ok(token)
            }
        }
    }

    /// One request; returns the body of a 2xx answer, or the KMS's error as typed.
    async fn send<E: Endpoint>(&self, endpoint: &E, token: String) -> Result<Vec<u8>, KmsError> {
        let middleware = self.middleware(token);
        let mut req = endpoint
            .request(self.base())
            .map_err(|e| KmsError::Malformed(redact_rustify(&e)))?;
        middleware
            .request(endpoint, &mut req)
            .map_err(|e| KmsError::Malformed(redact_rustify(&e)))?;
        let resp = self.http.send(req).await?;
        let status = resp.status().as_u16();
        if (200..300).contains(&status) {
            return Ok(resp.into_body());
        }
        Err(error_from_answer(status, resp.body()))
    }

    /// A data call: authenticates, and after a 403 on an AppRole login logs in once more
    /// (the token may have expired or been revoked).
    async fn call<E: Endpoint>(&self, endpoint: &E) -> Result<E::Response, KmsError> {
        let mut relogged = false;
        loop {
            let token = self.token().await?;
            match self.send(endpoint, token).await {
                Err(KmsError::Auth(_))
                    if !relogged && matches!(self.config.auth, VaultAuth::AppRole { .. }) =>
                {
                    relogged = true;
                    *self.login.lock().await = None;
                }
                Err(e) => return Err(e),
                Ok(body) => {
                    let result: EndpointResult<E::Response> = serde_json::from_slice(&body)
                        .map_err(|e| KmsError::Malformed(format!("{}: {e}", endpoint.path())))?;
                    return result.data.ok_or_else(|| {
                        KmsError::Malformed(format!("{}: answer has no data", endpoint.path()))
                    });
                }
            }
        }
    }

    /// `sys/health` read by status code: vaultrs cannot parse OpenBao's health body.
    async fn health(&self) -> Result<(), KmsError> {
        let uri = format!("{}/v1/sys/health", self.base());
        let req = http::Request::get(uri)
            .body(Vec::new())
            .map_err(|e| KmsError::Malformed(e.to_string()))?;
        let resp = self.http.send(req).await?;
        match resp.status().as_u16() {
            200 | 429 | 472 | 473 => Ok(()),
            503 => Err(KmsError::Sealed),
            501 => Err(KmsError::Refused {
                status: 501,
                message: "Vault is not initialized".into(),
            }),
            status => Err(error_from_answer(status, resp.body())),
        }
    }

    fn batch(&self, op: &'static str, items: Vec<BatchItem>) -> BatchRequest {
        BatchRequest {
            mount: self.config.transit_path.clone(),
            name: self.config.key_name.clone(),
            op,
            batch_input: items,
        }
    }

    async fn run_batch(&self, req: BatchRequest) -> Result<Vec<BatchResult>, KmsError> {
        let expected = req.batch_input.len();
        let resp = self.call(&req).await?;
        if resp.batch_results.len() != expected {
            return Err(KmsError::Malformed(format!(
                "{} answered {} results for {} inputs",
                req.path(),
                resp.batch_results.len(),
                expected
            )));
        }
        for r in &resp.batch_results {
            if let Some(err) = &r.error {
                return Err(KmsError::Refused {
                    status: 400,
                    message: err.clone(),
                });
            }
        }
        Ok(resp.batch_results)
    }
}

fn wrapped_from(ciphertext: String, key_version: Option<u64>) -> Result<WrappedDek, KmsError> {
    let key_version = match key_version {
        Some(v) => v,
        None => version_of(&ciphertext)?,
    };
    Ok(WrappedDek {
        ciphertext,
        key_version,
    })
}

/// The key version Vault put in the ciphertext prefix `vault:v<N>:`.
fn version_of(ciphertext: &str) -> Result<u64, KmsError> {
    ciphertext
        .strip_prefix("vault:v")
        .and_then(|rest| rest.split(':').next())
        .and_then(|n| n.parse().ok())
        .ok_or_else(|| KmsError::Malformed("ciphertext without a vault:v<N>: prefix".into()))
}

fn dek_from_b64(plaintext: &str) -> Result<Dek, KmsError> {
    let bytes = B64
        .decode(plaintext)
        .map_err(|_| KmsError::Malformed("plaintext is not base64".into()))?;
    Dek::from_bytes(&bytes).ok_or_else(|| {
        KmsError::Malformed(format!("unwrapped key has {} bytes, not 32", bytes.len()))
    })
}

/// Maps Vault's `{"errors": [...]}` answers to typed errors.
fn error_from_answer(status: u16, body: &[u8]) -> KmsError {
    // A failed batch item comes back as a 400 whose body still holds
    // `data.batch_results`, each with its own `error`.
    #[derive(Deserialize)]
    struct Answer {
        #[serde(default)]
        errors: Vec<String>,
        data: Option<BatchResponse>,
    }
    let message = match serde_json::from_slice::<Answer>(body) {
        Ok(a) if !a.errors.is_empty() => a.errors.join("; "),
        Ok(Answer { data: Some(d), .. }) => d
            .batch_results
            .into_iter()
            .find_map(|r| r.error)
            .unwrap_or_else(|| "batch failed without an error text".into()),
        _ => format!("unreadable error body of {} bytes", body.len()),
    };
    match status {
        503 if message.contains("sealed") => KmsError::Sealed,
        403 => KmsError::Auth(message),
        400 if message.contains("invalid role or secret ID") => KmsError::Auth(message),
        _ => KmsError::Refused { status, message },
    }
}

/// rustify's errors can quote a request body; keep only their kind.
fn redact_rustify(e: &RustifyError) -> String {
    match e {
        RustifyError::UrlParseError { .. } | RustifyError::UrlBuildError { .. } => {
            "the KMS URL is not valid".into()
        }
        _ => "could not build the KMS request".into(),
    }
}

impl KmsConnector for VaultConnector {
    fn probe(&self) -> BoxFuture<'_, Result<(), KmsError>> {
        Box::pin(async move {
            self.health().await?;
            self.token().await?;
            // A fixed, non-secret test value: proves encrypt and decrypt both work with
            // this key and these credentials.
            let test = [0x5Au8; 32];
            let enc = EncryptDataRequest::builder()
                .mount(self.config.transit_path.clone())
                .name(self.config.key_name.clone())
                .plaintext(B64.encode(test))
                .build()
                .map_err(|e| KmsError::Malformed(e.to_string()))?;
            let wrapped = self.call(&enc).await?;
            let dec = DecryptDataRequest::builder()
                .mount(self.config.transit_path.clone())
                .name(self.config.key_name.clone())
                .ciphertext(wrapped.ciphertext)
                .build()
                .map_err(|e| KmsError::Malformed(e.to_string()))?;
            let plain = self.call(&dec).await?;
            match B64.decode(plain.plaintext) {
                Ok(bytes) if bytes == test => Ok(()),
                _ => Err(KmsError::ProbeMismatch),
            }
        })
    }

    fn wrap<'a>(&'a self, deks: &'a [Dek]) -> BoxFuture<'a, Result<Vec<WrappedDek>, KmsError>> {
        Box::pin(async move {
            if let [dek] = deks {
                let enc = EncryptDataRequest::builder()
                    .mount(self.config.transit_path.clone())
                    .name(self.config.key_name.clone())
                    .plaintext(B64.encode(dek.expose()))
                    .build()
                    .map_err(|e| KmsError::Malformed(e.to_string()))?;
                let resp = self.call(&enc).await?;
                return Ok(vec![wrapped_from(resp.ciphertext, None)?]);
            }
            let items = deks
                .iter()
                .map(|d| BatchItem::plaintext(B64.encode(d.expose())))
                .collect();
            self.run_batch(self.batch("encrypt", items))
                .await?
                .into_iter()
                .map(|r| wrapped_from(r.ciphertext.unwrap_or_default(), r.key_version))
                .collect()
        })
    }

    fn unwrap<'a>(
        &'a self,
        wrapped: &'a [WrappedDek],
    ) -> BoxFuture<'a, Result<Vec<Dek>, KmsError>> {
        Box::pin(async move {
            let items = wrapped
                .iter()
                .map(|w| BatchItem::ciphertext(w.ciphertext.clone()))
                .collect();
            self.run_batch(self.batch("decrypt", items))
                .await?
                .into_iter()
                .map(|r| dek_from_b64(r.plaintext.as_deref().unwrap_or_default()))
                .collect()
        })
    }

    fn rewrap<'a>(
        &'a self,
        wrapped: &'a [WrappedDek],
    ) -> BoxFuture<'a, Result<Vec<WrappedDek>, KmsError>> {
        Box::pin(async move {
            let items = wrapped
                .iter()
                .map(|w| BatchItem::ciphertext(w.ciphertext.clone()))
                .collect();
            self.run_batch(self.batch("rewrap", items))
                .await?
                .into_iter()
                .map(|r| wrapped_from(r.ciphertext.unwrap_or_default(), r.key_version))
                .collect()
        })
    }
}

/// `batch_input` for `transit/{encrypt,decrypt,rewrap}/<key>`: vaultrs has no batched
/// request types, so this one follows the shape of theirs.
#[derive(Debug, Serialize)]
struct BatchRequest {
    #[serde(skip)]
    mount: String,
    #[serde(skip)]
    name: String,
    #[serde(skip)]
    op: &'static str,
    batch_input: Vec<BatchItem>,
}

#[derive(Debug, Serialize)]
struct BatchItem {
    #[serde(skip_serializing_if = "Option::is_none")]
    plaintext: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    ciphertext: Option<String>,
}

impl BatchItem {
    fn plaintext(p: String) -> Self {
        BatchItem {
            plaintext: Some(p),
            ciphertext: None,
        }
    }
    fn ciphertext(c: String) -> Self {
        BatchItem {
            plaintext: None,
            ciphertext: Some(c),
        }
    }
}

#[derive(Debug, Deserialize)]
struct BatchResponse {
    batch_results: Vec<BatchResult>,
}

#[derive(Debug, Deserialize)]
struct BatchResult {
    ciphertext: Option<String>,
    plaintext: Option<String>,
    key_version: Option<u64>,
    error: Option<String>,
}

impl Endpoint for BatchRequest {
    type Response = BatchResponse;
    const REQUEST_BODY_TYPE: RequestType = RequestType::JSON;
    const RESPONSE_BODY_TYPE: ResponseType = ResponseType::JSON;

    fn path(&self) -> String {
        format!("{}/{}/{}", self.mount, self.op, self.name)
    }

    fn method(&self) -> RequestMethod {
        RequestMethod::POST
    }

    fn body(&self) -> Result<Option<Vec<u8>>, RustifyError> {
        serde_json::to_vec(self)
            .map(Some)
            .map_err(|e| RustifyError::DataParseError { source: e.into() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_prefix() {
        assert_eq!(version_of("vault:v3:abcd").unwrap(), 3);
        assert!(version_of("v3:abcd").is_err());
    }

    #[test]
    fn a_request_that_cannot_be_built_names_its_kind_only() {
        // rustify's own texts may quote what it was given; ours name the kind alone.
        let bad_url = RustifyError::UrlBuildError {
            source: "http://vault:8200/\n?token=s.secret"
                .parse::<http::Uri>()
                .unwrap_err(),
        };
        assert_eq!(redact_rustify(&bad_url), "the KMS URL is not valid");
        let bad_body = RustifyError::ServerResponseError {
            code: 400,
            content: Some("s.secret".into()),
        };
        assert_eq!(redact_rustify(&bad_body), "could not build the KMS request");
    }

    #[test]
    fn errors_are_typed() {
        assert_eq!(
            error_from_answer(503, br#"{"errors":["Vault is sealed"]}"#),
            KmsError::Sealed
        );
        assert!(matches!(
            error_from_answer(400, br#"{"errors":["invalid role or secret ID"]}"#),
            KmsError::Auth(_)
        ));
        assert!(matches!(
            error_from_answer(500, b"<html>"),
            KmsError::Refused { status: 500, .. }
        ));
    }
}
