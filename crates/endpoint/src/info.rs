//! The endpoint itself: `/info`, the endpoint document, its owner, and what a first start creates.

use std::path::Path;

use ferry_core::endpoint::{CollectionDoc, EndpointDoc, POSIX_CONNECTOR_ID, StorageGatewayDoc};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::docs;
use crate::{ENDPOINT_DOC_KEY, Endpoint, EndpointError, Requester, Result};

const DEFAULTS_KEY: &str = "endpoint.defaults";

/// The GCS version Ferry's endpoint reports (`gcs_version` in Transfer, `manager_version` in `/api/info`): clients
/// tell GCS 5 collections from older kinds by its major number, so it is a 5.4 release whose API Ferry follows.
pub const GCS_VERSION: &str = "5.4.76";
/// Ferry's own version, reported beside the GCS one.
pub const FERRY_VERSION: &str = env!("CARGO_PKG_VERSION");

/// What a first start created (or found): the default storage gateway and mapped collection.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Defaults {
    pub storage_gateway_id: Uuid,
    pub collection_id: Uuid,
    /// The host folder the default gateway serves.
    pub storage_root: String,
    /// True when this call created them.
    #[serde(skip)]
    pub created: bool,
}

impl Endpoint {
    /// The unauthenticated `/info` documents: the manager's identity and the connectors it offers.
    pub fn info(&self) -> Vec<Value> {
        vec![
            json!({
                "DATA_TYPE": "info#1.0.0",
                "api_version": "1.29.0",
                "client_id": self.id,
                "endpoint_id": self.id,
                "domain_name": url_host(&self.settings.base_url),
                "manager_version": GCS_VERSION,
                "ferry_version": FERRY_VERSION,
            }),
            json!({
                "DATA_TYPE": "connector#1.1.0",
                "display_name": "POSIX",
                "id": POSIX_CONNECTOR_ID,
                "is_baa": false,
                "is_ha": false,
            }),
        ]
    }

    pub async fn get_endpoint(&self) -> Result<EndpointDoc> {
        let mut doc = self.endpoint_doc().await?;
        doc.id = self.id;
        doc.gcs_manager_url = Some(self.settings.base_url.clone());
        Ok(doc)
    }

    /// PUT (replace) or PATCH (merge) of the endpoint document; the owner changes only through `set_owner`.
    pub async fn update_endpoint(
        &self,
        who: &Requester,
        request: Value,
        merge: bool,
    ) -> Result<EndpointDoc> {
        self.require_endpoint_manager(who).await?;
        let current = self.endpoint_doc().await?;
        let mut doc: EndpointDoc = docs::updated(
            &docs::to_value(&current),
            request,
            "endpoint",
            docs::Fields {
                computed: &["id", "gcs_manager_url"],
                immutable: &["owner_id"],
            },
            merge,
        )?;
        docs::display_name(&doc.display_name)?;
        doc.data_type = "endpoint#1.2.0".into();
        doc.owner_id = current.owner_id;
        self.save_endpoint(&doc).await?;
        self.record(who, "endpoint.update", None, String::new())
            .await;
        self.get_endpoint().await
    }

    /// Makes `identity` the endpoint's owner (the owner role). Needs the administrator role, or no owner yet
    /// (first start).
    pub async fn set_owner(&self, who: Option<&Requester>, identity: Uuid) -> Result<()> {
        let mut doc = self.endpoint_doc().await?;
        match who {
            Some(w) => {
                let roles = self.my_endpoint_roles(w).await?;
                if !ferry_core::roles::manages_endpoint_roles(&roles) {
                    return Err(EndpointError::PermissionDenied(
                        "setting the endpoint's owner needs the administrator role".into(),
                    ));
                }
            }
            None if doc.owner_id.is_some() => {
                return Err(EndpointError::PermissionDenied(
                    "the endpoint already has an owner".into(),
                ));
            }
            None => {}
        }
        if self.identity(identity).await?.is_none() {
            return Err(EndpointError::BadRequest(format!(
                "identity_id: no identity {identity}"
            )));
        }
        doc.owner_id = Some(identity);
        self.save_endpoint(&doc).await?;
        self.changed();
        if let Some(w) = who {
            self.record(w, "endpoint.set_owner", None, identity.to_string())
                .await;
        }
        Ok(())
    }

    async fn save_endpoint(&self, doc: &EndpointDoc) -> Result<()> {
        self.store
            .meta_set(ENDPOINT_DOC_KEY, &docs::to_value(doc).to_string())
            .await?;
        Ok(())
    }

    /// First start: owner, administrators, a POSIX storage gateway over `storage_root` reachable by the given
    /// accounts only, and a mapped collection on it that allows guest collections. Later calls return what the
    /// first created.
    pub async fn ensure_defaults(
        &self,
        owner: Uuid,
        administrators: &[Uuid],
        storage_root: &Path,
        accounts: &[String],
    ) -> Result<Defaults> {
        if let Some(raw) = self.store.meta_get(DEFAULTS_KEY).await? {
            return serde_json::from_str(&raw)
                .map_err(|e| EndpointError::Internal(format!("stored defaults: {e}")));
        }
        std::fs::create_dir_all(storage_root).map_err(|e| {
            EndpointError::BadRequest(format!(
                "cannot create the storage folder {}: {e}",
                storage_root.display()
            ))
        })?;
        let root = storage_root.canonicalize().map_err(|e| {
            EndpointError::BadRequest(format!("storage folder {}: {e}", storage_root.display()))
        })?;
        if self.endpoint_doc().await?.owner_id.is_none() {
            self.set_owner(None, owner).await?;
        }
        for admin in administrators {
            let role = ferry_core::endpoint::RoleDoc {
                data_type: "role#1.0.0".into(),
                id: Uuid::new_v4(),
                collection: None,
                principal: format!("urn:globus:auth:identity:{admin}"),
                role: ferry_core::endpoint::RoleName::Administrator,
            };
            match self.store.create_role(&role).await {
                Ok(()) | Err(ferry_store::StoreError::Conflict(_)) => {}
                Err(e) => return Err(e.into()),
            }
        }
        let mut gateway: StorageGatewayDoc = serde_json::from_value(json!({
            "display_name": "Local storage",
            "root": root.to_string_lossy(),
            "users_allow": accounts,
        }))
        .map_err(|e| EndpointError::Internal(e.to_string()))?;
        gateway.id = Uuid::new_v4();
        self.store.create_gateway(&gateway).await?;
        let mut collection: CollectionDoc = serde_json::from_value(json!({
            "collection_type": "mapped",
            "display_name": "Ferry local storage",
            "collection_base_path": "/",
            "storage_gateway_id": gateway.id,
            "allow_guest_collections": true,
            "public": true,
        }))
        .map_err(|e| EndpointError::Internal(e.to_string()))?;
        collection.id = Uuid::new_v4();
        collection.identity_id = Some(owner);
        collection.created_at = Some(ferry_core::time::rfc3339(self.now()));
        self.store.create_collection(&collection).await?;
        let defaults = Defaults {
            storage_gateway_id: gateway.id,
            collection_id: collection.id,
            storage_root: root.to_string_lossy().into_owned(),
            created: true,
        };
        self.store
            .meta_set(
                DEFAULTS_KEY,
                &serde_json::to_string(&defaults)
                    .map_err(|e| EndpointError::Internal(e.to_string()))?,
            )
            .await?;
        self.changed();
        Ok(defaults)
    }
}

fn url_host(url: &str) -> String {
    let rest = url.split_once("://").map(|(_, r)| r).unwrap_or(url);
    rest.split(['/', ':']).next().unwrap_or("").to_string()
}
