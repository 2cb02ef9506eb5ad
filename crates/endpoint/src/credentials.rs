//! User credentials: which storage account an identity uses on a gateway. For POSIX the account comes from the
//! identity mapping, so a credential records the mapping's answer; guest collections act through one.

use ferry_core::endpoint::UserCredentialDoc;
use serde_json::Value;
use uuid::Uuid;

use crate::{Endpoint, EndpointError, Requester, Result, account, docs};

const IMMUTABLE: &[&str] = &[
    "id",
    "identity_id",
    "storage_gateway_id",
    "connector_id",
    "username",
];
const COMPUTED: &[&str] = &["connector_id", "invalid", "provisioned"];

impl Endpoint {
    pub async fn create_user_credential(&self, who: &Requester, request: Value) -> Result<Value> {
        let mut request = request;
        docs::drop_fields(&mut request, &["id"]);
        docs::drop_fields(&mut request, COMPUTED);
        let mut doc: UserCredentialDoc = docs::parse(request, "user_credential")?;
        if doc.identity_id.is_some_and(|i| i != who.identity.id) {
            return Err(EndpointError::PermissionDenied(
                "identity_id: a credential can only be registered for yourself".into(),
            ));
        }
        let gateway = match self.store.get_gateway(doc.storage_gateway_id).await? {
            Some(g) => g,
            None => {
                return Err(EndpointError::BadRequest(format!(
                    "storage_gateway_id: no storage gateway {}",
                    doc.storage_gateway_id
                )));
            }
        };
        let account = account::account_for(&gateway, &who.identity)
            .await
            .map_err(EndpointError::PermissionDenied)?;
        if let Some(u) = &doc.username
            && *u != account
        {
            return Err(EndpointError::BadRequest(format!(
                "username: your identity maps to account {account} on this storage gateway, not {u}"
            )));
        }
        if let Some(p) = &doc.policies {
            docs::check_data_type(p, "posix_user_credential_policies")
                .map_err(|e| EndpointError::BadRequest(format!("policies.{e}")))?;
        }
        let mine = self
            .store
            .list_user_credentials(Some(who.identity.id), Some(gateway.id))
            .await?;
        if mine
            .iter()
            .any(|c| c.username.as_deref() == Some(account.as_str()))
        {
            return Err(EndpointError::Conflict(format!(
                "you already have a credential for account {account} on this storage gateway"
            )));
        }
        doc.id = Uuid::new_v4();
        doc.data_type = "user_credential#1.0.0".into();
        doc.identity_id = Some(who.identity.id);
        doc.connector_id = Some(gateway.connector_id);
        doc.username = Some(account);
        doc.provisioned = true;
        self.store.create_user_credential(&doc).await?;
        self.record(who, "user_credential.create", None, doc.id.to_string())
            .await;
        Ok(docs::to_value(&doc))
    }

    /// The caller's credentials; with `all`, everyone's (endpoint owners and administrators).
    pub async fn list_user_credentials(
        &self,
        who: &Requester,
        gateway: Option<Uuid>,
        all: bool,
    ) -> Result<Vec<Value>> {
        let identity = if all {
            self.require_endpoint_manager(who).await?;
            None
        } else {
            Some(who.identity.id)
        };
        Ok(self
            .store
            .list_user_credentials(identity, gateway)
            .await?
            .iter()
            .map(docs::to_value)
            .collect())
    }

    /// A credential the caller owns; endpoint managers may also read and delete others'.
    async fn credential(
        &self,
        who: &Requester,
        id: Uuid,
        write: bool,
    ) -> Result<UserCredentialDoc> {
        let c = self
            .store
            .get_user_credential(id)
            .await?
            .ok_or_else(|| EndpointError::NotFound(format!("no user credential {id}")))?;
        if c.identity_id == Some(who.identity.id) {
            return Ok(c);
        }
        if !write {
            let roles = self.my_endpoint_roles(who).await?;
            if ferry_core::roles::manages_endpoint(&roles) {
                return Ok(c);
            }
        }
        Err(EndpointError::NotFound(format!("no user credential {id}")))
    }

    pub async fn get_user_credential(&self, who: &Requester, id: Uuid) -> Result<Value> {
        Ok(docs::to_value(&self.credential(who, id, false).await?))
    }

    pub async fn update_user_credential(
        &self,
        who: &Requester,
        id: Uuid,
        request: Value,
        merge: bool,
    ) -> Result<Value> {
        let current = self.credential(who, id, true).await?;
        let mut doc: UserCredentialDoc = docs::updated(
            &docs::to_value(&current),
            request,
            "user_credential",
            docs::Fields {
                computed: COMPUTED,
                immutable: IMMUTABLE,
            },
            merge,
        )?;
        doc.connector_id = current.connector_id;
        doc.provisioned = current.provisioned;
        self.store.update_user_credential(&doc).await?;
        self.changed();
        self.record(who, "user_credential.update", None, id.to_string())
            .await;
        Ok(docs::to_value(&doc))
    }

    pub async fn delete_user_credential(&self, who: &Requester, id: Uuid) -> Result<()> {
        self.credential(who, id, false).await?;
        self.store.delete_user_credential(id).await?;
        // Guest collections acting through it lose their account at once.
        self.changed();
        self.record(who, "user_credential.delete", None, id.to_string())
            .await;
        Ok(())
    }
}
