//! Storage gateways: one connector each, with the policies that decide who reaches it as which account and
//! which paths may be reached at all (`restrict_paths`).

use ferry_core::endpoint::{POSIX_CONNECTOR_ID, StorageGatewayDoc};
use ferry_core::mapping;
use ferry_core::restrictions::PathRestrictions;
use serde_json::Value;
use uuid::Uuid;

use crate::docs;
use crate::{Endpoint, EndpointError, Requester, Result};

/// Shown only to the endpoint's owner and administrators, and only when asked for (`include=private_policies`).
const PRIVATE: &[&str] = &[
    "identity_mappings",
    "restrict_paths",
    "users_allow",
    "users_deny",
    "root",
];
/// Computed or fixed at creation.
const IMMUTABLE: &[&str] = &["id", "connector_id", "high_assurance"];

fn validate(doc: &StorageGatewayDoc) -> Result<()> {
    docs::display_name(&doc.display_name)?;
    if doc.connector_id != POSIX_CONNECTOR_ID {
        return Err(EndpointError::BadRequest(format!(
            "connector_id: only the POSIX connector ({POSIX_CONNECTOR_ID}) is available"
        )));
    }
    if doc.high_assurance || doc.require_mfa {
        return Err(EndpointError::BadRequest(
            "high_assurance: high-assurance storage gateways are not supported".into(),
        ));
    }
    if let Some(root) = &doc.root {
        let p = std::path::Path::new(root);
        if !p.is_absolute() || !p.is_dir() {
            return Err(EndpointError::BadRequest(format!(
                "root: {root} is not an existing folder on the server"
            )));
        }
    }
    if let Some(r) = &doc.restrict_paths {
        PathRestrictions::from_json(r, "restrict_paths")
            .map_err(|e| EndpointError::BadRequest(e.to_string()))?;
    }
    for (i, m) in doc.identity_mappings.iter().enumerate() {
        mapping::validate(m)
            .map_err(|e| EndpointError::BadRequest(format!("identity_mappings[{i}]: {e}")))?;
    }
    for (field, list) in [
        ("allowed_domains", &doc.allowed_domains),
        ("users_allow", &doc.users_allow),
        ("users_deny", &doc.users_deny),
        ("policies.groups_allow", &doc.policies.groups_allow),
        ("policies.groups_deny", &doc.policies.groups_deny),
    ] {
        if let Some(bad) = list
            .iter()
            .find(|v| v.trim().is_empty() || v.contains('\n'))
        {
            return Err(EndpointError::BadRequest(format!(
                "{field}: {bad:?} is not a valid entry"
            )));
        }
    }
    // Ferry does not track when a session last authenticated yet: refused rather than stored and ignored.
    if doc.authentication_timeout_mins.is_some() {
        return Err(EndpointError::BadRequest(
            "authentication_timeout_mins: re-authentication timeouts are not supported yet".into(),
        ));
    }
    docs::check_data_type(
        &serde_json::json!({"DATA_TYPE": doc.policies.data_type}),
        "posix_storage_policies",
    )
    .map_err(|e| EndpointError::BadRequest(format!("policies.{e}")))?;
    Ok(())
}

impl Endpoint {
    pub(crate) fn gateway_view(doc: &StorageGatewayDoc, private: bool) -> Value {
        let mut v = docs::to_value(doc);
        if !private {
            docs::drop_fields(&mut v, PRIVATE);
        }
        v
    }

    async fn sees_private(&self, who: &Requester, asked: bool) -> Result<bool> {
        if !asked {
            return Ok(false);
        }
        let roles = self.my_endpoint_roles(who).await?;
        if ferry_core::roles::manages_endpoint(&roles) {
            Ok(true)
        } else {
            Err(EndpointError::PermissionDenied(
                "include=private_policies needs the endpoint's owner or administrator role".into(),
            ))
        }
    }

    pub async fn create_gateway(&self, who: &Requester, request: Value) -> Result<Value> {
        self.require_endpoint_manager(who).await?;
        let mut request = request;
        docs::drop_fields(&mut request, &["id"]);
        let mut doc: StorageGatewayDoc = docs::parse(request, "storage_gateway")?;
        validate(&doc)?;
        doc.id = Uuid::new_v4();
        doc.data_type = "storage_gateway#1.3.0".into();
        self.store.create_gateway(&doc).await?;
        self.changed();
        self.record(who, "storage_gateway.create", None, doc.id.to_string())
            .await;
        Ok(Self::gateway_view(&doc, true))
    }

    pub async fn list_gateways(&self, who: &Requester, private: bool) -> Result<Vec<Value>> {
        let private = self.sees_private(who, private).await?;
        Ok(self
            .store
            .list_gateways()
            .await?
            .iter()
            .map(|g| Self::gateway_view(g, private))
            .collect())
    }

    pub async fn get_gateway(&self, who: &Requester, id: Uuid, private: bool) -> Result<Value> {
        let private = self.sees_private(who, private).await?;
        Ok(Self::gateway_view(&self.gateway(id).await?, private))
    }

    pub async fn update_gateway(
        &self,
        who: &Requester,
        id: Uuid,
        request: Value,
        merge: bool,
    ) -> Result<Value> {
        self.require_endpoint_manager(who).await?;
        let current = self.gateway(id).await?;
        let mut doc: StorageGatewayDoc = docs::updated(
            &docs::to_value(&current),
            request,
            "storage_gateway",
            docs::Fields {
                computed: &[],
                immutable: IMMUTABLE,
            },
            merge,
        )?;
        doc.id = current.id;
        doc.connector_id = current.connector_id;
        doc.data_type = "storage_gateway#1.3.0".into();
        validate(&doc)?;
        self.store.update_gateway(&doc).await?;
        self.changed();
        self.record(who, "storage_gateway.update", None, id.to_string())
            .await;
        Ok(Self::gateway_view(&doc, true))
    }

    pub async fn delete_gateway(&self, who: &Requester, id: Uuid) -> Result<()> {
        self.require_endpoint_manager(who).await?;
        self.gateway(id).await?;
        self.store.delete_gateway(id).await?;
        self.changed();
        self.record(who, "storage_gateway.delete", None, id.to_string())
            .await;
        Ok(())
    }
}
