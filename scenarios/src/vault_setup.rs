//! Prepares a Vault the way WEKA's documentation asks an admin to: a transit engine, the
//! cluster's key, a policy for it, an AppRole with that policy, and a token. It speaks
//! plain Vault HTTP, so it sets up the simulated Vault and a real OpenBao alike.

use cluster::http::HttpClient;
use cluster::secret::Secret;
use serde_json::{json, Value};

/// The credentials an admin hands to `security kms set vault`.
pub struct VaultCreds {
    pub token: Secret,
    pub role_id: String,
    pub secret_id: Secret,
}

/// The policy WEKA documents: encrypt, decrypt and rewrap with the key, and read it
/// (one such pair of rules per key).
pub fn weka_policy(transit: &str, keys: &[&str]) -> String {
    keys.iter()
        .map(|key| {
            format!(
                "path \"{transit}/+/{key}\" {{\n  capabilities = [\"read\", \"create\", \"update\"]\n}}\n\
                 path \"{transit}/keys/{key}\" {{\n  capabilities = [\"read\"]\n}}\n"
            )
        })
        .collect()
}

pub struct VaultAdmin<'a> {
    pub http: &'a HttpClient,
    /// `http://host:port`
    pub base: &'a str,
    pub root_token: &'a str,
}

impl VaultAdmin<'_> {
    /// One call with the root token. The error names the call, never a credential.
    pub async fn call(
        &self,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value, String> {
        let uri = format!("{}/v1/{path}", self.base);
        let req = http::Request::builder()
            .method(method)
            .uri(&uri)
            .header("X-Vault-Token", self.root_token)
            .body(body.map(|b| b.to_string().into_bytes()).unwrap_or_default())
            .map_err(|e| format!("{method} {path}: {e}"))?;
        let resp = self
            .http
            .send(req)
            .await
            .map_err(|e| format!("{method} {path}: {e}"))?;
        let status = resp.status().as_u16();
        let body: Value = if resp.body().is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(resp.body()).map_err(|_| {
                format!("{method} {path}: HTTP {status} with a body that is not JSON")
            })?
        };
        if !(200..300).contains(&status) {
            let errors = body.get("errors").cloned().unwrap_or(Value::Null);
            return Err(format!("{method} {path}: HTTP {status} {errors}"));
        }
        Ok(body)
    }

    fn field(v: &Value, pointer: &str, what: &str) -> Result<String, String> {
        v.pointer(pointer)
            .and_then(Value::as_str)
            .map(str::to_string)
            .ok_or_else(|| format!("{what}: the answer has no {pointer}"))
    }

    /// Everything WEKA needs, from an empty dev server: `keys` are the transit keys to
    /// create (the cluster key first).
    pub async fn prepare(&self, transit: &str, keys: &[&str]) -> Result<VaultCreds, String> {
        self.call(
            "POST",
            &format!("sys/mounts/{transit}"),
            Some(json!({"type": "transit"})),
        )
        .await?;
        for key in keys {
            self.call(
                "POST",
                &format!("{transit}/keys/{key}"),
                Some(json!({"type": "aes256-gcm96"})),
            )
            .await?;
        }
        self.call(
            "PUT",
            "sys/policies/acl/weka",
            Some(json!({"policy": weka_policy(transit, keys)})),
        )
        .await?;
        self.call("POST", "sys/auth/approle", Some(json!({"type": "approle"})))
            .await?;
        self.call(
            "POST",
            "auth/approle/role/weka",
            Some(json!({"token_policies": ["weka"], "token_ttl": "1h"})),
        )
        .await?;
        let role = self
            .call("GET", "auth/approle/role/weka/role-id", None)
            .await?;
        let role_id = Self::field(&role, "/data/role_id", "role-id")?;
        let secret = self
            .call("POST", "auth/approle/role/weka/secret-id", None)
            .await?;
        let secret_id = Self::field(&secret, "/data/secret_id", "secret-id")?;
        let token = self
            .call(
                "POST",
                "auth/token/create",
                Some(json!({"policies": ["weka"], "ttl": "768h"})),
            )
            .await?;
        let token = Self::field(&token, "/auth/client_token", "token create")?;
        Ok(VaultCreds {
            token: Secret::new(token),
            role_id,
            secret_id: Secret::new(secret_id),
        })
    }
}
