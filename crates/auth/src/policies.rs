//! Authentication policies (`/v2/api/policies`): documents that mapped collections name as their
//! `guest_auth_policy_id`. Anyone signed in may read them (collections show their id); only the identity that
//! created one may change or delete it, and not while a collection uses it.

use ferry_core::Identity;
use ferry_core::auth_policy::AuthPolicy;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::{Auth, AuthError, Result};

/// The `policy` object of a request body, with the field at fault named when it does not fit.
fn policy_body(body: &Value) -> Result<Value> {
    match body.get("policy") {
        Some(p @ Value::Object(_)) => Ok(p.clone()),
        _ => Err(AuthError::InvalidRequest(
            "the body must be {\"policy\": {...}}".into(),
        )),
    }
}

fn parse(doc: Value) -> Result<AuthPolicy> {
    let p: AuthPolicy = serde_path_to_error::deserialize(doc).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        AuthError::InvalidRequest(if path == "." {
            inner.to_string()
        } else {
            format!("policy.{path}: {inner}")
        })
    })?;
    p.validate()
        .map_err(|m| AuthError::InvalidRequest(format!("policy.{m}")))?;
    Ok(p)
}

fn wrap(p: &AuthPolicy) -> Value {
    json!({ "policy": p })
}

impl Auth {
    pub async fn create_policy(&self, who: &Identity, body: &Value) -> Result<Value> {
        let mut doc = policy_body(body)?;
        if let Value::Object(m) = &mut doc {
            m.remove("id");
        }
        let mut p = parse(doc)?;
        p.id = Uuid::new_v4();
        self.store.create_auth_policy(&p, who.id).await?;
        Ok(wrap(&p))
    }

    pub async fn list_policies(&self) -> Result<Value> {
        let all: Vec<AuthPolicy> = self
            .store
            .list_auth_policies()
            .await?
            .into_iter()
            .map(|(p, _)| p)
            .collect();
        Ok(json!({ "policies": all }))
    }

    async fn policy(&self, id: Uuid) -> Result<(AuthPolicy, Uuid)> {
        self.store
            .get_auth_policy(id)
            .await?
            .ok_or_else(|| AuthError::NotFound(format!("no policy {id}")))
    }

    pub async fn get_policy(&self, id: Uuid) -> Result<Value> {
        Ok(wrap(&self.policy(id).await?.0))
    }

    async fn owned_policy(&self, who: &Identity, id: Uuid) -> Result<AuthPolicy> {
        let (p, owner) = self.policy(id).await?;
        if owner != who.id {
            return Err(AuthError::Forbidden(
                "only the identity that created a policy may change or delete it".into(),
            ));
        }
        Ok(p)
    }

    /// Changes the given fields (the SDK sends only those it was given).
    pub async fn update_policy(&self, who: &Identity, id: Uuid, body: &Value) -> Result<Value> {
        let current = self.owned_policy(who, id).await?;
        let mut doc =
            serde_json::to_value(&current).map_err(|e| AuthError::Internal(e.to_string()))?;
        if let (Value::Object(d), Value::Object(changes)) = (&mut doc, policy_body(body)?) {
            for (k, v) in changes {
                if k != "id" {
                    d.insert(k, v);
                }
            }
        }
        let mut p = parse(doc)?;
        p.id = id;
        self.store.update_auth_policy(&p).await?;
        Ok(wrap(&p))
    }

    pub async fn delete_policy(&self, who: &Identity, id: Uuid) -> Result<Value> {
        let p = self.owned_policy(who, id).await?;
        let users = self
            .store
            .list_collections(&Default::default())
            .await?
            .into_iter()
            .filter(|c| c.guest_auth_policy_id == Some(id))
            .count();
        if users > 0 {
            return Err(AuthError::Conflict(format!(
                "{users} collection(s) use this policy as guest_auth_policy_id"
            )));
        }
        self.store.delete_auth_policy(id).await?;
        Ok(wrap(&p))
    }
}
