//! A simulated object store: the S3 subset Snap-To-Object needs (put, get, head and
//! list of objects in buckets), in memory, served over HTTP like the Vault.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use axum::body::{to_bytes, Body};
use axum::extract::{Request, State};
use axum::http::{Method, StatusCode};
use axum::response::Response;
use axum::Router;

/// Objects larger than this are refused, like a store's own upload limit.
const MAX_OBJECT: usize = 64 << 20;

/// Objects by bucket and key.
type Objects = BTreeMap<(String, String), Vec<u8>>;

#[derive(Clone, Default)]
pub struct ObjectStore {
    objects: Arc<Mutex<Objects>>,
}

impl ObjectStore {
    fn lock(&self) -> MutexGuard<'_, Objects> {
        self.objects.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Serves `PUT|GET|HEAD /<bucket>/<key>` and `GET /<bucket>?prefix=...`.
    pub fn router(&self) -> Router {
        Router::new().fallback(handle).with_state(self.clone())
    }

    /// Every stored object, for oracles that scan what is at rest.
    pub fn for_each_object(&self, mut f: impl FnMut(&str, &str, &[u8])) {
        for ((bucket, key), bytes) in self.lock().iter() {
            f(bucket, key, bytes);
        }
    }

    /// The object `key` of `bucket`, if the store holds it.
    pub fn get(&self, bucket: &str, key: &str) -> Option<Vec<u8>> {
        self.lock()
            .get(&(bucket.to_string(), key.to_string()))
            .cloned()
    }

    /// Stores `bytes` as the object `key` of `bucket`, replacing any object there.
    pub fn put(&self, bucket: &str, key: &str, bytes: Vec<u8>) {
        self.lock()
            .insert((bucket.to_string(), key.to_string()), bytes);
    }

    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.lock().is_empty()
    }
}

fn answer(status: StatusCode, body: impl Into<Body>) -> Response {
    Response::builder()
        .status(status)
        .body(body.into())
        .unwrap_or_default()
}

async fn handle(State(store): State<ObjectStore>, req: Request) -> Response {
    let method = req.method().clone();
    let path = req.uri().path().trim_start_matches('/').to_string();
    let query = req.uri().query().unwrap_or_default().to_string();
    let (bucket, key) = match path.split_once('/') {
        Some((b, k)) if !b.is_empty() => (b.to_string(), k.to_string()),
        _ if !path.is_empty() => (path.clone(), String::new()),
        _ => return answer(StatusCode::BAD_REQUEST, "missing bucket"),
    };
    match (method, key.is_empty()) {
        (Method::PUT, false) => {
            let Ok(body) = to_bytes(req.into_body(), MAX_OBJECT).await else {
                return answer(StatusCode::PAYLOAD_TOO_LARGE, "object too large");
            };
            store.put(&bucket, &key, body.to_vec());
            answer(StatusCode::OK, "")
        }
        (Method::GET, false) => match store.get(&bucket, &key) {
            Some(bytes) => answer(StatusCode::OK, bytes),
            None => answer(StatusCode::NOT_FOUND, "NoSuchKey"),
        },
        (Method::HEAD, false) => match store.lock().get(&(bucket, key)) {
            Some(_) => answer(StatusCode::OK, ""),
            None => answer(StatusCode::NOT_FOUND, ""),
        },
        (Method::GET, true) => {
            let prefix = query
                .split('&')
                .find_map(|p| p.strip_prefix("prefix="))
                .unwrap_or_default()
                .to_string();
            let keys: Vec<String> = store
                .lock()
                .keys()
                .filter(|(b, k)| *b == bucket && k.starts_with(&prefix))
                .map(|(_, k)| k.clone())
                .collect();
            answer(StatusCode::OK, keys.join("\n"))
        }
        _ => answer(StatusCode::METHOD_NOT_ALLOWED, "unsupported operation"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn call(store: &ObjectStore, method: Method, uri: &str, body: &[u8]) -> (u16, Vec<u8>) {
        let req = Request::builder()
            .method(method)
            .uri(uri)
            .body(Body::from(body.to_vec()))
            .unwrap();
        crate::testing::call(store.router(), req).await
    }

    #[tokio::test]
    async fn put_get_list() {
        let store = ObjectStore::default();
        assert_eq!(call(&store, Method::PUT, "/b/snap/1", b"abc").await.0, 200);
        assert_eq!(call(&store, Method::PUT, "/b/other", b"x").await.0, 200);
        assert_eq!(
            call(&store, Method::GET, "/b/snap/1", b"").await,
            (200, b"abc".to_vec())
        );
        assert_eq!(call(&store, Method::GET, "/b/missing", b"").await.0, 404);
        assert_eq!(
            call(&store, Method::GET, "/b?prefix=snap/", b"").await.1,
            b"snap/1".to_vec()
        );
        assert_eq!(store.len(), 2);
    }
}
