//! Role assignments on the endpoint and on collections, with who may grant what (the GCS role table in
//! `ferry_core::roles`). The endpoint's owner and a collection's creator hold roles that are not rows: they are
//! shown as role documents with stable ids and cannot be deleted, as GCS shows them.

use ferry_core::endpoint::{CollectionDoc, CollectionType, RoleDoc, RoleName, RolePrincipal};
use ferry_core::roles;
use serde_json::Value;
use uuid::Uuid;

use crate::{Endpoint, EndpointError, Requester, Result, docs};

/// What a caller administers: the endpoint (its owner or an administrator), and the collections they may
/// change (all of them for the endpoint's managers).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Administers {
    pub endpoint: bool,
    pub collections: Vec<Uuid>,
}

impl Administers {
    /// Whether the caller administers anything at all.
    pub fn anything(&self) -> bool {
        self.endpoint || !self.collections.is_empty()
    }
}

impl Endpoint {
    pub async fn administers(&self, who: &Requester) -> Result<Administers> {
        let ep = self.my_endpoint_roles(who).await?;
        let mut collections = Vec::new();
        for c in self.store.list_collections(&Default::default()).await? {
            let coll = self.my_collection_roles(who, &ep, &c).await?;
            if roles::modifies_collection(&ep, &coll) {
                collections.push(c.id);
            }
        }
        Ok(Administers {
            endpoint: roles::manages_endpoint(&ep),
            collections,
        })
    }

    fn implicit_id(&self, what: &str, collection: Option<Uuid>, identity: Uuid) -> Uuid {
        let c = collection.map(|c| c.to_string()).unwrap_or_default();
        Uuid::new_v5(&self.id, format!("{what}:{c}:{identity}").as_bytes())
    }

    /// Role documents that exist by definition: the endpoint's owner, a collection's creator.
    pub(crate) async fn implicit_roles(
        &self,
        collection: Option<&CollectionDoc>,
    ) -> Result<Vec<RoleDoc>> {
        let (who, role, coll) = match collection {
            None => (self.endpoint_doc().await?.owner_id, RoleName::Owner, None),
            Some(c) => (c.identity_id, RoleName::Administrator, Some(c.id)),
        };
        Ok(who
            .map(|id| RoleDoc {
                data_type: "role#1.0.0".into(),
                id: self.implicit_id(role.as_str(), coll, id),
                collection: coll,
                principal: RolePrincipal::Identity(id).urn(),
                role,
            })
            .into_iter()
            .collect())
    }

    /// May `who` grant and revoke roles on `target` (None: the endpoint)?
    async fn manages_roles_of(
        &self,
        who: &Requester,
        target: Option<&CollectionDoc>,
    ) -> Result<bool> {
        let ep = self.my_endpoint_roles(who).await?;
        Ok(match target {
            None => roles::manages_endpoint_roles(&ep),
            Some(c) => {
                let coll = self.my_collection_roles(who, &ep, c).await?;
                roles::manages_collection_roles(&coll)
            }
        })
    }

    async fn role_target(&self, collection: Option<Uuid>) -> Result<Option<CollectionDoc>> {
        match collection {
            None => Ok(None),
            Some(id) => match self.store.get_collection(id).await? {
                Some(c) => Ok(Some(c)),
                None => Err(EndpointError::BadRequest(format!(
                    "collection: no collection {id}"
                ))),
            },
        }
    }

    pub async fn create_role(&self, who: &Requester, request: Value) -> Result<Value> {
        let mut request = request;
        docs::drop_fields(&mut request, &["id"]);
        let mut doc: RoleDoc = docs::parse(request, "role")?;
        let target = self.role_target(doc.collection).await?;
        let allowed_roles: &[RoleName] = match target {
            None => &[
                RoleName::Administrator,
                RoleName::ActivityManager,
                RoleName::ActivityMonitor,
            ],
            Some(_) => &[
                RoleName::Administrator,
                RoleName::AccessManager,
                RoleName::ActivityManager,
                RoleName::ActivityMonitor,
            ],
        };
        if !allowed_roles.contains(&doc.role) {
            return Err(EndpointError::BadRequest(match (doc.role, &target) {
                (RoleName::Owner, _) => {
                    "role: the owner is set with `endpoint set-owner` (PUT /endpoint/owner), not granted"
                        .into()
                }
                (r, None) => format!("role: {} is a collection role", r.as_str()),
                (r, Some(_)) => format!("role: {} is not a collection role", r.as_str()),
            }));
        }
        match RolePrincipal::parse(&doc.principal) {
            Some(RolePrincipal::Identity(id)) => {
                if self.identity(id).await?.is_none() {
                    return Err(EndpointError::BadRequest(format!(
                        "principal: no identity {id}"
                    )));
                }
            }
            Some(RolePrincipal::Group(id)) => {
                if !self.group_known(id).await? {
                    return Err(EndpointError::BadRequest(format!(
                        "principal: no group {id}"
                    )));
                }
            }
            None => {
                return Err(EndpointError::BadRequest(format!(
                    "principal: {:?} is not urn:globus:auth:identity:<id> or urn:globus:auth:group:<id>",
                    doc.principal
                )));
            }
        }
        if !self.manages_roles_of(who, target.as_ref()).await? {
            return Err(EndpointError::PermissionDenied(match target {
                None => "granting endpoint roles needs the endpoint's administrator role".into(),
                Some(_) => "granting roles on a collection needs its administrator role".into(),
            }));
        }
        doc.id = Uuid::new_v4();
        doc.data_type = "role#1.0.0".into();
        self.store.create_role(&doc).await?;
        self.changed();
        self.record(
            who,
            "role.create",
            doc.collection,
            format!("{} {}", doc.role.as_str(), doc.principal),
        )
        .await;
        Ok(docs::to_value(&doc))
    }

    /// Roles on one collection, or on the endpoint; with `all`, every role everywhere (administrators only).
    pub async fn list_roles(
        &self,
        who: &Requester,
        collection: Option<Uuid>,
        all: bool,
    ) -> Result<Vec<Value>> {
        let ep = self.my_endpoint_roles(who).await?;
        if all {
            if !roles::manages_endpoint_roles(&ep) {
                return Err(EndpointError::PermissionDenied(
                    "include=all_roles needs the endpoint's administrator role".into(),
                ));
            }
            let mut out = self.implicit_roles(None).await?;
            out.extend(self.store.list_roles(None).await?);
            for c in self.store.list_collections(&Default::default()).await? {
                out.extend(self.implicit_roles(Some(&c)).await?);
                out.extend(self.store.list_roles(Some(c.id)).await?);
            }
            return Ok(out.iter().map(docs::to_value).collect());
        }
        let target = match collection {
            None => None,
            Some(id) => Some(self.collection(id).await?),
        };
        let visible = match &target {
            None => !ep.is_empty(),
            Some(c) => !self.my_collection_roles(who, &ep, c).await?.is_empty(),
        };
        if !visible {
            return Err(EndpointError::PermissionDenied(
                "listing roles needs a role on the endpoint or the collection".into(),
            ));
        }
        let mut out = self.implicit_roles(target.as_ref()).await?;
        out.extend(self.store.list_roles(collection).await?);
        Ok(out.iter().map(docs::to_value).collect())
    }

    /// Finds a role by id, stored or implicit.
    pub(crate) async fn find_role(&self, id: Uuid) -> Result<(RoleDoc, bool)> {
        if let Some(r) = self.store.get_role(id).await? {
            return Ok((r, false));
        }
        for r in self.implicit_roles(None).await? {
            if r.id == id {
                return Ok((r, true));
            }
        }
        for c in self.store.list_collections(&Default::default()).await? {
            for r in self.implicit_roles(Some(&c)).await? {
                if r.id == id {
                    return Ok((r, true));
                }
            }
        }
        Err(EndpointError::NotFound(format!("no role {id}")))
    }

    pub async fn get_role(&self, who: &Requester, id: Uuid) -> Result<Value> {
        let (role, _) = self.find_role(id).await?;
        let ep = self.my_endpoint_roles(who).await?;
        let visible = match role.collection {
            None => !ep.is_empty(),
            Some(c) => {
                let c = self.collection(c).await?;
                !self.my_collection_roles(who, &ep, &c).await?.is_empty()
            }
        };
        if !visible && !who.is_principal(&role.principal) {
            return Err(EndpointError::NotFound(format!("no role {id}")));
        }
        Ok(docs::to_value(&role))
    }

    pub async fn delete_role(&self, who: &Requester, id: Uuid) -> Result<()> {
        let (role, implicit) = self.find_role(id).await?;
        let target = self.role_target(role.collection).await?;
        let mut allowed = self.manages_roles_of(who, target.as_ref()).await?;
        // A guest collection's roles may also be removed by its mapped collection's administrators.
        if !allowed
            && let Some(c) = &target
            && c.collection_type == CollectionType::Guest
            && let Some(m) = c.mapped_collection_id
        {
            let mapped = self.collection(m).await?;
            allowed = self.manages_roles_of(who, Some(&mapped)).await?;
        }
        if !allowed {
            return Err(EndpointError::PermissionDenied(
                "removing this role needs the administrator role where it is held".into(),
            ));
        }
        if implicit {
            return Err(EndpointError::Conflict(match role.role {
                RoleName::Owner => {
                    "the endpoint owner's role cannot be deleted; set another owner".into()
                }
                _ => "a collection creator's administrator role cannot be deleted".into(),
            }));
        }
        self.store.delete_role(id).await?;
        self.changed();
        self.record(
            who,
            "role.delete",
            role.collection,
            format!("{} {}", role.role.as_str(), role.principal),
        )
        .await;
        Ok(())
    }
}

/// A role as the Transfer API shows it: `principal_type` and a bare id instead of a URN; Transfer has no owner
/// role (the endpoint's owner is shown as an administrator).
fn transfer_doc(r: &RoleDoc) -> Value {
    let (kind, id) = match RolePrincipal::parse(&r.principal) {
        Some(RolePrincipal::Identity(id)) => ("identity", id.to_string()),
        Some(RolePrincipal::Group(id)) => ("group", id.to_string()),
        None => ("identity", r.principal.clone()),
    };
    let role = match r.role {
        RoleName::Owner => RoleName::Administrator,
        other => other,
    };
    serde_json::json!({
        "DATA_TYPE": "role",
        "id": r.id,
        "principal_type": kind,
        "principal": id,
        "role": role.as_str(),
    })
}

impl Endpoint {
    /// The Transfer API names the endpoint or a collection by id; roles on the endpoint have no collection.
    async fn transfer_role_target(&self, who: &Requester, id: Uuid) -> Result<Option<Uuid>> {
        if id == self.id {
            return Ok(None);
        }
        let missing = || EndpointError::CollectionNotFound(id.to_string());
        let c = self.store.get_collection(id).await?.ok_or_else(missing)?;
        if !self.sees(who, &c).await? {
            return Err(missing());
        }
        Ok(Some(c.id))
    }

    /// `GET /v0.10/endpoint/{id}/role_list`.
    pub async fn transfer_roles(&self, who: &Requester, id: Uuid) -> Result<Vec<Value>> {
        let target = self.transfer_role_target(who, id).await?;
        let docs = self.list_roles(who, target, false).await?;
        Ok(docs
            .into_iter()
            .filter_map(|v| serde_json::from_value::<RoleDoc>(v).ok())
            .map(|r| transfer_doc(&r))
            .collect())
    }

    /// `POST /v0.10/endpoint/{id}/role` with `{principal_type, principal, role}`.
    pub async fn create_transfer_role(
        &self,
        who: &Requester,
        id: Uuid,
        request: Value,
    ) -> Result<Value> {
        let target = self.transfer_role_target(who, id).await?;
        let Value::Object(m) = request else {
            return Err(EndpointError::BadRequest(
                "the body must be a role document (a JSON object)".into(),
            ));
        };
        if let Some(t) = m.get("DATA_TYPE")
            && t != "role"
        {
            return Err(EndpointError::BadRequest(format!(
                "DATA_TYPE: expected \"role\", got {t}"
            )));
        }
        if let Some(k) = m.keys().find(|k| {
            !["DATA_TYPE", "id", "principal_type", "principal", "role"].contains(&k.as_str())
        }) {
            return Err(EndpointError::BadRequest(format!(
                "{k}: not a field of a role"
            )));
        }
        let principal = m.get("principal").and_then(Value::as_str).unwrap_or("");
        let principal = Uuid::parse_str(principal).map_err(|_| {
            EndpointError::BadRequest(format!("principal: {principal:?} is not an id"))
        })?;
        let urn = match m.get("principal_type").and_then(Value::as_str) {
            Some("identity") => RolePrincipal::Identity(principal).urn(),
            Some("group") => RolePrincipal::Group(principal).urn(),
            other => {
                return Err(EndpointError::BadRequest(format!(
                    "principal_type: {} is neither \"identity\" nor \"group\"",
                    other
                        .map(|s| format!("{s:?}"))
                        .unwrap_or_else(|| "missing".into())
                )));
            }
        };
        let role = m.get("role").cloned().unwrap_or(Value::Null);
        let created = self
            .create_role(
                who,
                serde_json::json!({"collection": target, "principal": urn, "role": role}),
            )
            .await?;
        let doc: RoleDoc =
            serde_json::from_value(created).map_err(|e| EndpointError::Internal(e.to_string()))?;
        Ok(transfer_doc(&doc))
    }

    async fn transfer_role(&self, who: &Requester, id: Uuid, role: Uuid) -> Result<RoleDoc> {
        let target = self.transfer_role_target(who, id).await?;
        let doc: RoleDoc = serde_json::from_value(self.get_role(who, role).await?)
            .map_err(|e| EndpointError::Internal(e.to_string()))?;
        if doc.collection != target {
            return Err(EndpointError::NotFound(format!("no role {role} on {id}")));
        }
        Ok(doc)
    }

    pub async fn get_transfer_role(&self, who: &Requester, id: Uuid, role: Uuid) -> Result<Value> {
        Ok(transfer_doc(&self.transfer_role(who, id, role).await?))
    }

    pub async fn delete_transfer_role(&self, who: &Requester, id: Uuid, role: Uuid) -> Result<()> {
        self.transfer_role(who, id, role).await?;
        self.delete_role(who, role).await
    }
}

impl Requester {
    fn is_principal(&self, urn: &str) -> bool {
        self.who().is(urn)
    }
}
