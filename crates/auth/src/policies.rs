//! Authentication policies (`/v2/api/policies`): documents that mapped collections name as their
//! `guest_auth_policy_id`. A policy is managed by the identity that created it (Ferry has no Globus projects):
//! only it reads, lists, changes or deletes the policy, and deletes it only while no collection uses it. The
//! endpoint applies policies from the database, so endpoint administrators need no read access here; others
//! get no policy of someone else, not even whether it exists.

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

    /// The policies the caller manages.
    pub async fn list_policies(&self, who: &Identity) -> Result<Value> {
        let mine: Vec<AuthPolicy> = self
            .store
            .list_auth_policies()
            .await?
            .into_iter()
            .filter(|(_, owner)| *owner == who.id)
            .map(|(p, _)| p)
            .collect();
        Ok(json!({ "policies": mine }))
    }

    pub async fn get_policy(&self, who: &Identity, id: Uuid) -> Result<Value> {
        Ok(wrap(&self.managed_policy(who, id).await?))
    }

    /// A policy the caller manages; any other is "not found", so that ids cannot be probed.
    async fn managed_policy(&self, who: &Identity, id: Uuid) -> Result<AuthPolicy> {
        match self.store.get_auth_policy(id).await? {
            Some((p, owner)) if owner == who.id => Ok(p),
            _ => Err(AuthError::NotFound(format!("no policy {id}"))),
        }
    }

    /// Changes the given fields (the SDK sends only those it was given).
    pub async fn update_policy(&self, who: &Identity, id: Uuid, body: &Value) -> Result<Value> {
        let current = self.managed_policy(who, id).await?;
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
        let p = self.managed_policy(who, id).await?;
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
