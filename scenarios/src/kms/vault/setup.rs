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

/// Where the setup puts things, and what it creates rather than finds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetupPlan {
    /// The transit mount the keys go in.
    pub mount: String,
    /// Whether the setup mounts it (an empty Vault) or finds it mounted.
    pub create_mount: bool,
    /// Whether the setup enables AppRole at `auth/approle` (it may be enabled already).
    pub enable_approle: bool,
    /// The name of the policy and of the AppRole role.
    pub name: String,
}

impl SetupPlan {
    /// An empty Vault, as WEKA's documentation sets it up: `transit`, role `weka`.
    pub fn fresh() -> SetupPlan {
        SetupPlan {
            mount: "transit".into(),
            create_mount: true,
            enable_approle: true,
            name: "weka".into(),
        }
    }
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

    /// Everything WEKA needs, as `plan` says: `keys` are the transit keys to create (the
    /// cluster key first).
    pub async fn prepare(&self, plan: &SetupPlan, keys: &[&str]) -> Result<VaultCreds, String> {
        let transit = plan.mount.as_str();
        let name = plan.name.as_str();
        if plan.create_mount {
            self.call(
                "POST",
                &format!("sys/mounts/{transit}"),
                Some(json!({"type": "transit"})),
            )
            .await?;
        }
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
            &format!("sys/policies/acl/{name}"),
            Some(json!({"policy": weka_policy(transit, keys)})),
        )
        .await?;
        if plan.enable_approle {
            self.call("POST", "sys/auth/approle", Some(json!({"type": "approle"})))
                .await?;
        }
        self.call(
            "POST",
            &format!("auth/approle/role/{name}"),
            Some(json!({"token_policies": [name], "token_ttl": "1h"})),
        )
        .await?;
        let role = self
            .call("GET", &format!("auth/approle/role/{name}/role-id"), None)
            .await?;
        let role_id = Self::field(&role, "/data/role_id", "role-id")?;
        let secret = self
            .call("POST", &format!("auth/approle/role/{name}/secret-id"), None)
            .await?;
        let secret_id = Self::field(&secret, "/data/secret_id", "secret-id")?;
        let token = self
            .call(
                "POST",
                "auth/token/create",
                Some(json!({"policies": [name], "ttl": "768h"})),
            )
            .await?;
        let token = Self::field(&token, "/auth/client_token", "token create")?;
        Ok(VaultCreds {
            token: Secret::new(token),
            role_id,
            secret_id: Secret::new(secret_id),
        })
    }

    /// Destroys `old`, a secret-id of AppRole role `role`, and mints a new one: what an
    /// admin does to a leaked secret-id.
    pub async fn replace_secret_id(&self, role: &str, old: &Secret) -> Result<Secret, String> {
        self.call(
            "POST",
            &format!("auth/approle/role/{role}/secret-id/destroy"),
            Some(json!({"secret_id": old.expose()})),
        )
        .await?;
        let secret = self
            .call("POST", &format!("auth/approle/role/{role}/secret-id"), None)
            .await?;
        Self::field(&secret, "/data/secret_id", "secret-id").map(Secret::new)
    }

    /// Undoes [`VaultAdmin::prepare`] on a Vault that outlives the run: the token it
    /// created, the role, the policy, AppRole if the setup enabled it, and the keys (with
    /// the mount, if the setup mounted it). Every step is tried; the first error is
    /// returned.
    pub async fn remove(
        &self,
        plan: &SetupPlan,
        keys: &[String],
        token: Option<&Secret>,
    ) -> Result<(), String> {
        let name = &plan.name;
        let transit = &plan.mount;
        if let Some(token) = token {
            // A `kms-revoke-tokens` step may have revoked it already: no error either way.
            let body = json!({"token": token.expose()});
            let _ = self.call("POST", "auth/token/revoke", Some(body)).await;
        }
        let mut first = Ok(());
        if !plan.enable_approle {
            // AppRole stays enabled, so the tokens the cluster got by logging in with the
            // run's role outlive the role: revoke them (disabling AppRole would do it).
            first = self.revoke_role_tokens(name).await;
        }
        let mut calls: Vec<(&str, String, Option<Value>)> = Vec::new();
        calls.push(("DELETE", format!("auth/approle/role/{name}"), None));
        calls.push(("DELETE", format!("sys/policies/acl/{name}"), None));
        if plan.enable_approle {
            calls.push(("DELETE", "sys/auth/approle".into(), None));
        }
        if plan.create_mount {
            calls.push(("DELETE", format!("sys/mounts/{transit}"), None));
        } else {
            for key in keys {
                calls.push((
                    "POST",
                    format!("{transit}/keys/{key}/config"),
                    Some(json!({"deletion_allowed": true})),
                ));
                calls.push(("DELETE", format!("{transit}/keys/{key}"), None));
            }
        }
        for (method, path, body) in calls {
            if let Err(e) = self.call(method, &path, body).await {
                if first.is_ok() {
                    first = Err(format!("cleaning up the Vault: {e}"));
                }
            }
        }
        first
    }

    /// Revokes every token issued by an AppRole login with role `role`.
    async fn revoke_role_tokens(&self, role: &str) -> Result<(), String> {
        let cleaning = |e: String| format!("cleaning up the Vault: {e}");
        for accessor in self.token_accessors().await.map_err(cleaning)? {
            let body = json!({ "accessor": accessor });
            // A token may expire between the list and the lookup: skip it.
            let Ok(token) = self
                .call("POST", "auth/token/lookup-accessor", Some(body))
                .await
            else {
                continue;
            };
            if token
                .pointer("/data/meta/role_name")
                .and_then(Value::as_str)
                == Some(role)
            {
                self.revoke_accessor(&accessor).await.map_err(cleaning)?;
            }
        }
        Ok(())
    }

    /// The accessor of every token the Vault holds (`LIST auth/token/accessors`; the admin
    /// token needs `sudo` there).
    pub async fn token_accessors(&self) -> Result<Vec<String>, String> {
        let list = self
            .call("GET", "auth/token/accessors?list=true", None)
            .await?;
        let keys = list
            .pointer("/data/keys")
            .and_then(Value::as_array)
            .ok_or("GET auth/token/accessors answered without data.keys")?;
        Ok(keys
            .iter()
            .filter_map(|k| k.as_str().map(str::to_string))
            .collect())
    }

    /// Revokes the token behind `accessor`, and its children. `false` when it was gone
    /// already (Vault answers 200 with a warning then, instead of 204).
    pub async fn revoke_accessor(&self, accessor: &str) -> Result<bool, String> {
        let answer = self
            .call(
                "POST",
                "auth/token/revoke-accessor",
                Some(json!({ "accessor": accessor })),
            )
            .await?;
        let says_gone = |field: &str| {
            answer
                .get(field)
                .and_then(Value::as_array)
                .is_some_and(|texts| {
                    texts.iter().any(|t| {
                        t.as_str()
                            .is_some_and(|t| t.contains("No token found with this accessor"))
                    })
                })
        };
        Ok(!(says_gone("errors") || says_gone("warnings")))
    }
}
