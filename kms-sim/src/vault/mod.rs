//! A simulated Vault: the HTTP API v1 subset the cluster uses, deterministic by seed.
//!
//! Vault routes by path prefix (namespace, then mount, then the engine's own paths) and has a
//! LIST method, so one fallback handler parses the path instead of an axum route table.

pub mod acl;
pub mod approle;
pub mod response;
pub mod state;
mod sys;
mod token;
pub mod transit;

use std::sync::{Arc, Mutex, MutexGuard};

use axum::body::Bytes;
use axum::extract::{Request, State as AxState};
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Router;
use serde_json::{Map, Value};

use self::approle::Outcome;
use self::response::{VResult, VaultError};
use self::state::{Mount, State, ROOT_NS};

/// Vault's own request body limit (`max_request_size`) is 32 MiB; batches of wrapped DEKs
/// stay far below it.
pub const MAX_BODY: usize = 32 << 20;

/// The capability family a request needs, from its HTTP method.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    Read,
    List,
    Update,
    Delete,
}

#[derive(Clone)]
pub struct VaultSim {
    state: Arc<Mutex<State>>,
}

impl VaultSim {
    /// A dev-mode Vault: initialized, unsealed, root token = `root_token`, no mounts but the
    /// defaults (token auth; transit and approle must be enabled via the API like on a real dev
    /// server).
    pub fn new(seed: u64, root_token: &str) -> Self {
        VaultSim {
            state: Arc::new(Mutex::new(State::new(seed, root_token))),
        }
    }

    /// Serves everything under `/v1/...`.
    pub fn router(&self) -> Router {
        Router::new().fallback(handle).with_state(self.clone())
    }

    pub fn seal(&self) {
        self.lock().sealed = true;
    }

    pub fn unseal(&self) {
        self.lock().sealed = false;
    }

    pub fn is_sealed(&self) -> bool {
        self.lock().sealed
    }

    /// The key `sys/unseal` accepts (base64, drawn from the seed).
    pub fn unseal_key(&self) -> String {
        self.lock().unseal_key.clone()
    }

    /// Revokes every token but the root token, in every namespace: what an admin's
    /// `token revoke`, or every token expiring at once, does to the clients. Returns how
    /// many were revoked.
    pub fn revoke_tokens(&self) -> usize {
        let mut st = self.lock();
        let root = st.root_token.clone();
        let mut revoked = 0;
        for space in st.namespaces.values_mut() {
            let before = space.tokens.len();
            space.tokens.retain(|id, _| *id == root);
            revoked += before - space.tokens.len();
        }
        revoked
    }

    /// Whether `ciphertext` (`vault:vN:...`) decrypts now under the transit key `key` of
    /// the root namespace's mount `mount`, as a decrypt request would be answered (the
    /// seal aside): the truth a harness judges wrapped keys against. It is not a request:
    /// it is not counted and draws nothing from the seeded RNG.
    pub fn decrypts(&self, mount: &str, key: &str, ciphertext: &str) -> Result<(), String> {
        self.decrypt(mount, key, ciphertext).map(drop)
    }

    /// What [`VaultSim::decrypts`] would decrypt `ciphertext` to: the plaintext bytes (for a
    /// harness that checks a wrapped key is the key it should be; never to be shown).
    pub fn decrypt(&self, mount: &str, key: &str, ciphertext: &str) -> Result<Vec<u8>, String> {
        self.decrypt_in(None, mount, key, ciphertext)
    }

    /// [`VaultSim::decrypt`] in `namespace` (the root namespace if `None`).
    pub fn decrypt_in(
        &self,
        namespace: Option<&str>,
        mount: &str,
        key: &str,
        ciphertext: &str,
    ) -> Result<Vec<u8>, String> {
        let st = self.lock();
        let ns = namespace.unwrap_or(ROOT_NS);
        let Some(ns_state) = st.namespaces.get(ns) else {
            return Err(format!("no namespace {ns}"));
        };
        let transit = match ns_state.mounts.get(mount) {
            Some(Mount::Transit(t)) => t,
            Some(_) => return Err(format!("{mount}/ is not a transit mount")),
            None => return Err(format!("no mount at {mount}/")),
        };
        let key = transit
            .keys
            .get(key)
            .ok_or_else(|| format!("encryption key {key} not found"))?;
        key.decrypt(&serde_json::json!({ "ciphertext": ciphertext }))
    }

    /// Requests answered so far, whatever their status; for benchmarks.
    pub fn requests_served(&self) -> u64 {
        self.lock().requests
    }

    /// A panic elsewhere must not turn every later request into a panic too.
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

async fn handle(AxState(vs): AxState<VaultSim>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let bytes = match axum::body::to_bytes(body, MAX_BODY).await {
        Ok(b) => b,
        Err(_) => return VaultError::bad_request("failed to read request body").into_response(),
    };
    let mut st = vs.lock();
    st.requests += 1;
    let method = parts.method.as_str();
    let path = parts.uri.path();
    let result = dispatch(
        &mut st,
        &parts.method,
        path,
        parts.uri.query(),
        &parts.headers,
        &bytes,
    );
    let response = result.unwrap_or_else(IntoResponse::into_response);
    // Paths and statuses only: bodies and headers may carry tokens or plaintext.
    tracing::debug!(
        method,
        path,
        status = response.status().as_u16(),
        "vault request"
    );
    response
}

/// Who is asking: the policies of a live token, looked up in the request's namespace.
pub(crate) struct Caller {
    pub token: String,
    /// The namespace holding the token (the root token serves every namespace).
    pub token_ns: String,
    pub policies: Vec<String>,
    pub root: bool,
}

/// A request after namespace selection and authentication.
pub(crate) struct Req<'a> {
    pub op: Op,
    pub ns: &'a str,
    /// Relative to the namespace, without `/v1/` and trailing slashes.
    pub path: &'a str,
    pub body: Value,
    pub caller: Caller,
}

fn parse_op(method: &Method, query: Option<&str>) -> Result<Op, VaultError> {
    let list_query =
        query.is_some_and(|q| q.split('&').any(|kv| kv == "list=true" || kv == "list=1"));
    match *method {
        Method::GET if list_query => Ok(Op::List),
        Method::GET => Ok(Op::Read),
        Method::POST | Method::PUT => Ok(Op::Update),
        Method::DELETE => Ok(Op::Delete),
        _ if method.as_str() == "LIST" => Ok(Op::List),
        _ => Err(VaultError::unsupported()),
    }
}

pub(crate) fn parse_body(bytes: &Bytes) -> Result<Value, VaultError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(Value::Object(Map::new()));
    }
    // serde_json's messages name a position, never the input, so they are safe to return.
    match serde_json::from_slice::<Value>(bytes) {
        Ok(v @ Value::Object(_)) => Ok(v),
        Ok(_) => Err(VaultError::bad_request(
            "failed to parse JSON input: expected a JSON object",
        )),
        Err(e) => Err(VaultError::bad_request(format!(
            "failed to parse JSON input: {e}"
        ))),
    }
}

fn header_str(headers: &HeaderMap, name: impl header::AsHeaderName) -> Option<&str> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|s| !s.is_empty())
}

fn request_token(headers: &HeaderMap) -> Option<&str> {
    header_str(headers, "x-vault-token").or_else(|| {
        header_str(headers, header::AUTHORIZATION)
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim)
    })
}

fn dispatch(
    st: &mut State,
    method: &Method,
    path: &str,
    query: Option<&str>,
    headers: &HeaderMap,
    bytes: &Bytes,
) -> VResult {
    let path = percent_decode(path)?;
    let Some(rel) = path.strip_prefix("/v1/") else {
        return Err(VaultError::no_route(path.trim_start_matches('/')));
    };
    let rel = rel.trim_end_matches('/');
    let op = parse_op(method, query)?;
    if let Some(reply) = sys::unauthenticated(st, op, rel, bytes) {
        return reply;
    }
    if st.sealed {
        return Err(VaultError::sealed());
    }
    let body = if op == Op::Update {
        parse_body(bytes)?
    } else {
        Value::Object(Map::new())
    };

    let (ns, rel) = select_namespace(st, headers, rel)?;
    if let Some(Mount::AppRole(_)) = mount_of(st, &ns, rel) {
        let (mount, sub) = split_mount(st, &ns, rel);
        if sub == "login" && op == Op::Update {
            return mount_request(st, &ns, &mount, op, rel, &body);
        }
    }

    let token = request_token(headers)
        .ok_or_else(VaultError::denied)?
        .to_string();
    let caller = resolve_caller(st, &ns, &token)?;
    let need = required_caps(st, &ns, op, rel);
    if !allowed(st, &ns, &caller, rel, need) {
        return Err(VaultError::acl_denied());
    }
    let req = Req {
        op,
        ns: &ns,
        path: rel,
        body,
        caller,
    };
    if rel == "sys" || rel.starts_with("sys/") {
        return sys::handle(st, &req);
    }
    if rel == "auth/token" || rel.starts_with("auth/token/") {
        return token::handle(st, &req);
    }
    if mount_of(st, &ns, rel).is_some() {
        let (mount, _) = split_mount(st, &ns, rel);
        return mount_request(st, &ns, &mount, op, rel, &req.body);
    }
    Err(VaultError::no_route(rel))
}

/// Vault matches policies and names against the decoded path, so `%20` is a space here too.
fn percent_decode(path: &str) -> Result<String, VaultError> {
    let bad = || VaultError::bad_request("invalid escape in request path");
    let bytes = path.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes.get(i + 1..i + 3).ok_or_else(bad)?;
            let hex = std::str::from_utf8(hex).map_err(|_| bad())?;
            out.push(u8::from_str_radix(hex, 16).map_err(|_| bad())?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| bad())
}

/// `X-Vault-Namespace` wins; otherwise a first path segment naming a namespace selects it.
fn select_namespace<'p>(
    st: &State,
    headers: &HeaderMap,
    rel: &'p str,
) -> Result<(String, &'p str), VaultError> {
    if let Some(v) = headers.get("x-vault-namespace") {
        let name = v
            .to_str()
            .map_err(|_| VaultError::bad_request("invalid namespace header"))?;
        let name = name.trim().trim_matches('/');
        if !name.is_empty() && name != "root" {
            if !st.namespaces.contains_key(name) {
                return Err(VaultError::new(
                    StatusCode::NOT_FOUND,
                    format!("no handler for route \"{rel}\". namespace \"{name}\" not found."),
                ));
            }
            return Ok((name.to_string(), rel));
        }
    }
    match rel.split_once('/') {
        Some((first, rest)) if first != ROOT_NS && st.namespaces.contains_key(first) => {
            Ok((first.to_string(), rest))
        }
        _ => Ok((ROOT_NS.to_string(), rel)),
    }
}

fn resolve_caller(st: &mut State, ns: &str, token: &str) -> Result<Caller, VaultError> {
    let caller = |t: &state::Token, token_ns: &str| Caller {
        token: token.to_string(),
        token_ns: token_ns.to_string(),
        policies: t.policies.clone(),
        root: t.policies.iter().any(|p| p == "root"),
    };
    if let Some(t) = st.live_token(ns, token) {
        return Ok(caller(t, ns));
    }
    // Only root tokens cross namespaces here. OpenBao also lets a parent namespace's token
    // into a child namespace, where its parent policies apply to the child-prefixed paths; the
    // sim refuses it as OpenBao does when those policies grant nothing there (stricter).
    if ns != ROOT_NS {
        if let Some(t) = st.live_token(ROOT_NS, token) {
            let c = caller(t, ROOT_NS);
            if c.root {
                return Ok(c);
            }
            return Err(VaultError::acl_denied());
        }
    }
    Err(VaultError::denied())
}

fn mount_of<'s>(st: &'s State, ns: &str, rel: &str) -> Option<&'s Mount> {
    st.namespaces.get(ns)?.mount_for(rel).map(|(_, m)| m)
}

/// The mount path serving `rel` and the rest of the path below it.
fn split_mount<'p>(st: &State, ns: &str, rel: &'p str) -> (String, &'p str) {
    match st.namespaces.get(ns).and_then(|s| s.mount_for(rel)) {
        Some((m, _)) => (m.to_string(), rel[m.len()..].trim_start_matches('/')),
        None => (String::new(), rel),
    }
}

/// Writes that would create an object need `create` instead of `update`, as in Vault.
fn required_caps(st: &State, ns: &str, op: Op, rel: &str) -> u8 {
    use acl::cap;
    let base = match op {
        Op::Read => cap::READ,
        Op::List => cap::LIST,
        Op::Delete => cap::DELETE,
        Op::Update => {
            let (_, sub) = split_mount(st, ns, rel);
            let creates = match mount_of(st, ns, rel) {
                Some(Mount::Transit(t)) => transit::creates(t, sub),
                Some(Mount::AppRole(a)) => approle::creates(a, sub),
                None => false,
            };
            if creates {
                cap::CREATE
            } else {
                cap::UPDATE
            }
        }
    };
    let sudo =
        rel == "sys/seal" || rel.starts_with("sys/auth/") || rel.starts_with("sys/namespaces");
    if sudo {
        base | cap::SUDO
    } else {
        base
    }
}

pub(crate) fn allowed(st: &State, ns: &str, caller: &Caller, path: &str, need: u8) -> bool {
    if caller.root {
        return true;
    }
    let Some(space) = st.namespaces.get(ns) else {
        return false;
    };
    let policies = caller.policies.iter().filter_map(|p| space.policies.get(p));
    acl::capabilities(policies, path) & need == need
}

fn mount_request(
    st: &mut State,
    ns: &str,
    mount: &str,
    op: Op,
    rel: &str,
    body: &Value,
) -> VResult {
    let now = st.now_secs();
    let sub = rel[mount.len()..].trim_start_matches('/');
    let State {
        rng, namespaces, ..
    } = &mut *st;
    let outcome = match namespaces.get_mut(ns).and_then(|s| s.mounts.get_mut(mount)) {
        Some(Mount::Transit(t)) => return transit::handle(t, rng, now, op, sub, rel, body),
        Some(Mount::AppRole(a)) => approle::handle(a, rng, mount, op, sub, rel, body)?,
        None => return Err(VaultError::no_route(rel)),
    };
    match outcome {
        Outcome::Reply(r) => Ok(r),
        Outcome::Login(grant) => {
            let auth = st.issue_token(ns, grant);
            Ok(response::auth(&mut st.rng, auth))
        }
    }
}
