//! Mapped and guest collections. A mapped collection exposes part of a storage gateway to the people who have
//! an account there; a guest collection shares a folder of a mapped collection and acts as its creator's account,
//! inside what the mapped collection's sharing restrictions allow.

use std::sync::Arc;

use ferry_core::access::{Account, Action, CollectionPolicy, PolicyInputs};
use ferry_core::endpoint::{CollectionDoc, CollectionType, UserCredentialDoc};
use ferry_core::path;
use ferry_core::restrictions::{Home, PathRestrictions};
use ferry_core::roles::{self, Roles};
use ferry_storage::{Connector, EntryKind, Scoped};
use serde_json::Value;
use uuid::Uuid;

use crate::data::Last;
use crate::policy::mapped_gateway;
use crate::{Endpoint, EndpointError, Requester, Result, account, docs};

/// Computed by the server; ignored when a client sends them back.
const COMPUTED: &[&str] = &[
    "https_url",
    "manager_url",
    "root_path",
    "connector_id",
    "high_assurance",
    "require_mfa",
    "authentication_timeout_mins",
    "created_at",
    "last_access",
    "deleted",
];
const IMMUTABLE: &[&str] = &[
    "id",
    "collection_type",
    "storage_gateway_id",
    "mapped_collection_id",
    "collection_base_path",
    "identity_id",
    "user_credential_id",
];
const MAPPED_ONLY: &[&str] = &[
    "allow_guest_collections",
    "sharing_restrict_paths",
    "sharing_users_allow",
    "sharing_users_deny",
    "disable_anonymous_writes",
    "guest_auth_policy_id",
    "auto_delete_timeout",
];
const GUEST_ONLY: &[&str] = &[
    "mapped_collection_id",
    "user_credential_id",
    "skip_auto_delete",
];
/// Shown only to those who manage the collection, and only when asked for.
const PRIVATE: &[&str] = &[
    "sharing_restrict_paths",
    "sharing_users_allow",
    "sharing_users_deny",
    "policies",
];

/// The list filters of `GET /collections`.
#[derive(Debug, Clone, Default)]
pub struct CollectionQuery {
    pub mapped_collections: bool,
    pub guest_collections: bool,
    pub managed_by_me: bool,
    pub created_by_me: bool,
    pub mapped_collection_id: Option<Uuid>,
    pub storage_gateway_id: Option<Uuid>,
    pub include_private: bool,
}

/// A stand-in account for checking that a mapped base path with `$USER`/`$HOME` makes a valid path.
const PROBE: Account<'static> = Account {
    username: "probe",
    home: Home::At("/home/probe"),
};

fn validate_common(doc: &CollectionDoc) -> Result<()> {
    docs::display_name(&doc.display_name)?;
    for (field, v) in [
        ("description", &doc.description),
        ("organization", &doc.organization),
        ("department", &doc.department),
        ("contact_info", &doc.contact_info),
        ("info_link", &doc.info_link),
        ("user_message", &doc.user_message),
        ("user_message_link", &doc.user_message_link),
    ] {
        if v.as_ref().is_some_and(|s| s.chars().count() > 4096) {
            return Err(EndpointError::BadRequest(format!(
                "{field}: longer than 4096 characters"
            )));
        }
    }
    if doc
        .contact_email
        .as_ref()
        .is_some_and(|e| !e.contains('@') || e.contains(char::is_whitespace))
    {
        return Err(EndpointError::BadRequest(
            "contact_email: not an e-mail address".into(),
        ));
    }
    if let Some(d) = &doc.default_directory
        && d.split('/').any(|s| s == "..")
    {
        return Err(EndpointError::BadRequest(
            "default_directory: may not contain '..'".into(),
        ));
    }
    if doc.keywords.iter().any(|k| k.chars().count() > 128) {
        return Err(EndpointError::BadRequest(
            "keywords: each keyword has at most 128 characters".into(),
        ));
    }
    Ok(())
}

fn validate_mapped(doc: &CollectionDoc) -> Result<()> {
    validate_common(doc)?;
    let base = &doc.collection_base_path;
    if !(base.starts_with('/') || base.starts_with('~') || base.starts_with('$')) {
        return Err(EndpointError::BadRequest(format!(
            "collection_base_path: {base:?} must be an absolute path (it may start with ~, $HOME or $USER)"
        )));
    }
    path::normalize(&ferry_core::access::interpolate_base_path(base, PROBE).unwrap_or_default())
        .map_err(|e| EndpointError::BadRequest(format!("collection_base_path: {e}")))?;
    if let Some(r) = &doc.sharing_restrict_paths {
        PathRestrictions::from_json(r, "sharing_restrict_paths")
            .map_err(|e| EndpointError::BadRequest(e.to_string()))?;
    }
    Ok(())
}

fn view(
    doc: &CollectionDoc,
    base_url: &str,
    mapped: Option<&CollectionDoc>,
    private: bool,
) -> Value {
    let mut d = doc.clone();
    d.https_url = d
        .enable_https
        .then(|| format!("{base_url}/data/{}", doc.id));
    d.manager_url = Some(base_url.to_string());
    d.connector_id = Some(ferry_core::endpoint::POSIX_CONNECTOR_ID);
    d.root_path = Some(match (doc.collection_type, mapped) {
        (CollectionType::Guest, Some(m)) => {
            let base = path::normalize(&doc.collection_base_path).unwrap_or_else(|_| "/".into());
            let mroot = m.collection_base_path.trim_end_matches('/');
            if base == "/" {
                m.collection_base_path.clone()
            } else {
                format!("{mroot}{base}")
            }
        }
        _ => doc.collection_base_path.clone(),
    });
    let mut v = docs::to_value(&d);
    if !private {
        docs::drop_fields(&mut v, PRIVATE);
    }
    v
}

impl Endpoint {
    pub(crate) async fn view_of(&self, doc: &CollectionDoc, private: bool) -> Result<Value> {
        let mapped = match doc.mapped_collection_id {
            Some(m) => self.store.get_collection(m).await?,
            None => None,
        };
        Ok(view(doc, &self.settings.base_url, mapped.as_ref(), private))
    }

    /// The caller's roles on the endpoint and on a collection.
    pub(crate) async fn roles_for(
        &self,
        who: &Requester,
        c: &CollectionDoc,
    ) -> Result<(Roles, Roles)> {
        let ep = self.my_endpoint_roles(who).await?;
        let coll = self.my_collection_roles(who, &ep, c).await?;
        Ok((ep, coll))
    }

    /// Whether `who` may see `c`: public, a role on it or the endpoint, or (guest collections) a permission.
    pub(crate) async fn sees(&self, who: &Requester, c: &CollectionDoc) -> Result<bool> {
        let (ep, coll) = self.roles_for(who, c).await?;
        if roles::sees_collection(&ep, &coll, c.public) {
            return Ok(true);
        }
        if c.collection_type == CollectionType::Guest {
            let now = self.now();
            return Ok(self
                .store
                .list_acl_rules(c.id)
                .await?
                .iter()
                .any(|r| r.is_active(now) && who.named_by(&r.principal)));
        }
        Ok(false)
    }

    pub async fn create_collection(&self, who: &Requester, request: Value) -> Result<Value> {
        let mut request = request;
        docs::drop_fields(&mut request, COMPUTED);
        docs::drop_fields(&mut request, &["id"]);
        match request.get("collection_type").and_then(Value::as_str) {
            Some("mapped") => self.create_mapped(who, request).await,
            Some("guest") => self.create_guest(who, request).await,
            Some(other) => Err(EndpointError::BadRequest(format!(
                "collection_type: {other:?} is neither \"mapped\" nor \"guest\""
            ))),
            None => Err(EndpointError::BadRequest(
                "collection_type: required (\"mapped\" or \"guest\")".into(),
            )),
        }
    }

    /// A mapped collection's `guest_auth_policy_id` must name an existing policy.
    async fn check_auth_policy(&self, doc: &CollectionDoc) -> Result<()> {
        if let Some(id) = doc.guest_auth_policy_id
            && self.store.get_auth_policy(id).await?.is_none()
        {
            return Err(EndpointError::BadRequest(format!(
                "guest_auth_policy_id: no authentication policy {id}"
            )));
        }
        Ok(())
    }

    async fn create_mapped(&self, who: &Requester, request: Value) -> Result<Value> {
        // Endpoint managers only: they may also name another owner.
        self.require_endpoint_manager(who).await?;
        docs::refuse_fields(
            &request,
            GUEST_ONLY,
            "only guest collections have this field",
        )?;
        let mut doc: CollectionDoc = docs::parse(request, "collection")?;
        validate_mapped(&doc)?;
        self.check_auth_policy(&doc).await?;
        let gw = doc.storage_gateway_id.ok_or_else(|| {
            EndpointError::BadRequest("storage_gateway_id: required for a mapped collection".into())
        })?;
        if self.store.get_gateway(gw).await?.is_none() {
            return Err(EndpointError::BadRequest(format!(
                "storage_gateway_id: no storage gateway {gw}"
            )));
        }
        match doc.identity_id {
            Some(owner) if owner != who.identity.id => {
                if self.identity(owner).await?.is_none() {
                    return Err(EndpointError::BadRequest(format!(
                        "identity_id: no identity {owner}"
                    )));
                }
            }
            _ => doc.identity_id = Some(who.identity.id),
        }
        doc.id = Uuid::new_v4();
        doc.data_type = "collection#1.13.0".into();
        doc.created_at = Some(ferry_core::time::rfc3339(self.now()));
        self.store.create_collection(&doc).await?;
        self.changed();
        self.record(who, "collection.create", Some(doc.id), "mapped".into())
            .await;
        self.view_of(&doc, true).await
    }

    pub(crate) async fn create_guest(&self, who: &Requester, request: Value) -> Result<Value> {
        docs::refuse_fields(
            &request,
            MAPPED_ONLY,
            "only mapped collections have this field",
        )?;
        let mut doc: CollectionDoc = docs::parse(request, "collection")?;
        validate_common(&doc)?;
        let mapped_id = doc.mapped_collection_id.ok_or_else(|| {
            EndpointError::BadRequest(
                "mapped_collection_id: required for a guest collection".into(),
            )
        })?;
        let mapped = match self.store.get_collection(mapped_id).await? {
            Some(m) if m.collection_type == CollectionType::Mapped => m,
            _ => {
                return Err(EndpointError::BadRequest(format!(
                    "mapped_collection_id: no mapped collection {mapped_id}"
                )));
            }
        };
        if !mapped.allow_guest_collections {
            return Err(EndpointError::PermissionDenied(
                "the mapped collection does not allow guest collections".into(),
            ));
        }
        let base = path::normalize(&doc.collection_base_path)
            .map_err(|e| EndpointError::BadRequest(format!("collection_base_path: {e}")))?;
        let gateway = self.gateway(mapped_gateway(&mapped)?).await?;
        let username = account::account_for(&gateway, &who.identity)
            .await
            .map_err(EndpointError::PermissionDenied)?;
        if mapped.sharing_users_deny.contains(&username)
            || (!mapped.sharing_users_allow.is_empty()
                && !mapped.sharing_users_allow.contains(&username))
        {
            return Err(EndpointError::PermissionDenied(format!(
                "account {username} may not share from this mapped collection (sharing_users_allow/deny)"
            )));
        }
        let credential = self
            .credential_for_guest(who, &gateway, &username, doc.user_credential_id)
            .await?;
        doc.id = Uuid::new_v4();
        doc.data_type = "collection#1.13.0".into();
        doc.collection_base_path = base;
        doc.identity_id = Some(who.identity.id);
        doc.user_credential_id = Some(credential);
        doc.storage_gateway_id = Some(gateway.id);
        doc.created_at = Some(ferry_core::time::rfc3339(self.now()));

        // The creator must be able to reach the folder through the gateway and sharing restrictions, and it
        // must exist: the same check any data access makes, applied to the collection about to exist.
        let storage = self.connector(&gateway)?;
        let found = storage.home_of(&username).await;
        let home = Home::from_lookup(storage.has_homes(), found.as_deref());
        if let Some(why) = crate::policy::homeless(&mapped, &username, home) {
            return Err(EndpointError::AccessDenied(why));
        }
        let sharing_policies = self.store.list_sharing_policies(mapped.id).await?;
        let policy = CollectionPolicy::build(&PolicyInputs {
            collection: &doc,
            mapped: Some(&mapped),
            gateway: &gateway,
            account: Account {
                username: &username,
                home,
            },
            sharing_policies: &sharing_policies,
            acl_rules: &[],
            roles: &[],
            guest_auth_policy: None,
        })?;
        let caller = who.caller();
        // The creator names the folder in the mapped collection's paths: so do the messages.
        let connector: Arc<dyn Connector> =
            Arc::new(Scoped::new(storage, policy.mapped_root().unwrap_or("/")));
        let checked = self
            .check_on(
                &policy,
                &connector,
                gateway.id,
                &caller,
                "/",
                Action::Read,
                Last::Follow,
            )
            .await;
        let place = match checked {
            Ok(a) => a,
            Err(e) => {
                self.audit
                    .record(
                        Some(who.identity.id),
                        "collection.create",
                        Some(mapped.id),
                        Some(&doc.collection_base_path),
                        false,
                        e.to_string(),
                    )
                    .await;
                return Err(match e {
                    EndpointError::AccessDenied(m) => EndpointError::PermissionDenied(format!(
                        "a guest collection at {} is not allowed: {m}",
                        doc.collection_base_path
                    )),
                    other => other,
                });
            }
        };
        match connector.stat(&place.storage_path).await {
            Ok(e) if e.kind == EntryKind::Dir => {}
            Ok(_) => {
                return Err(EndpointError::BadRequest(format!(
                    "collection_base_path: {} is not a folder",
                    doc.collection_base_path
                )));
            }
            Err(ferry_storage::StorageError::NotFound(_)) => {
                return Err(EndpointError::BadRequest(format!(
                    "collection_base_path: {} does not exist",
                    doc.collection_base_path
                )));
            }
            Err(e) => return Err(e.into()),
        }
        self.store.create_collection(&doc).await?;
        self.changed();
        self.record(
            who,
            "collection.create",
            Some(doc.id),
            format!("guest of {}", mapped.id),
        )
        .await;
        self.view_of(&doc, true).await
    }

    /// The credential a new guest collection acts through: the one named (it must be the caller's, on this
    /// gateway, for the caller's account), else the caller's credential for that account, created if missing.
    async fn credential_for_guest(
        &self,
        who: &Requester,
        gateway: &ferry_core::endpoint::StorageGatewayDoc,
        username: &str,
        named: Option<Uuid>,
    ) -> Result<Uuid> {
        if let Some(id) = named {
            return match self.store.get_user_credential(id).await? {
                Some(c)
                    if c.identity_id == Some(who.identity.id)
                        && c.storage_gateway_id == gateway.id
                        && c.username.as_deref() == Some(username) =>
                {
                    Ok(c.id)
                }
                _ => Err(EndpointError::BadRequest(format!(
                    "user_credential_id: {id} is not your credential for account {username} on this storage gateway"
                ))),
            };
        }
        let mine = self
            .store
            .list_user_credentials(Some(who.identity.id), Some(gateway.id))
            .await?;
        if let Some(c) = mine
            .iter()
            .find(|c| c.username.as_deref() == Some(username))
        {
            return Ok(c.id);
        }
        let cred = UserCredentialDoc {
            data_type: "user_credential#1.0.0".into(),
            id: Uuid::new_v4(),
            identity_id: Some(who.identity.id),
            storage_gateway_id: gateway.id,
            connector_id: Some(gateway.connector_id),
            username: Some(username.to_string()),
            display_name: None,
            policies: None,
            invalid: false,
            provisioned: true,
        };
        self.store.create_user_credential(&cred).await?;
        self.record(who, "user_credential.create", None, cred.id.to_string())
            .await;
        Ok(cred.id)
    }

    pub async fn list_collections(
        &self,
        who: &Requester,
        q: &CollectionQuery,
    ) -> Result<Vec<Value>> {
        let filter = ferry_store::CollectionFilter {
            collection_type: match (q.mapped_collections, q.guest_collections) {
                (true, false) => Some(CollectionType::Mapped),
                (false, true) => Some(CollectionType::Guest),
                _ => None,
            },
            storage_gateway_id: q.storage_gateway_id,
            mapped_collection_id: q.mapped_collection_id,
            identity_id: q.created_by_me.then_some(who.identity.id),
        };
        let ep = self.my_endpoint_roles(who).await?;
        let mut out = Vec::new();
        for c in self.store.list_collections(&filter).await? {
            let coll = self.my_collection_roles(who, &ep, &c).await?;
            let manages = roles::modifies_collection(&ep, &coll);
            if q.managed_by_me && !manages {
                continue;
            }
            if !self.sees(who, &c).await? {
                continue;
            }
            out.push(self.view_of(&c, q.include_private && manages).await?);
        }
        Ok(out)
    }

    pub async fn get_collection(&self, who: &Requester, id: Uuid, private: bool) -> Result<Value> {
        let c = self.collection(id).await?;
        if !self.sees(who, &c).await? {
            // Not "forbidden": a private collection's existence is not disclosed.
            return Err(EndpointError::CollectionNotFound(id.to_string()));
        }
        let (ep, coll) = self.roles_for(who, &c).await?;
        let manages = roles::modifies_collection(&ep, &coll);
        if private && !manages {
            return Err(EndpointError::PermissionDenied(
                "include=private_policies needs the collection's administrator role".into(),
            ));
        }
        self.view_of(&c, private).await
    }

    pub(crate) async fn require_modify(&self, who: &Requester, c: &CollectionDoc) -> Result<()> {
        let (ep, coll) = self.roles_for(who, c).await?;
        if roles::modifies_collection(&ep, &coll) {
            return Ok(());
        }
        if !self.sees(who, c).await? {
            return Err(EndpointError::CollectionNotFound(c.id.to_string()));
        }
        Err(EndpointError::PermissionDenied(
            "this needs the collection's administrator role".into(),
        ))
    }

    pub async fn update_collection(
        &self,
        who: &Requester,
        id: Uuid,
        request: Value,
        merge: bool,
    ) -> Result<Value> {
        let current = self.collection(id).await?;
        self.require_modify(who, &current).await?;
        match current.collection_type {
            CollectionType::Mapped => docs::refuse_fields(
                &request,
                GUEST_ONLY,
                "only guest collections have this field",
            )?,
            CollectionType::Guest => docs::refuse_fields(
                &request,
                MAPPED_ONLY,
                "only mapped collections have this field",
            )?,
        }
        let mut doc: CollectionDoc = docs::updated(
            &docs::to_value(&current),
            request,
            "collection",
            docs::Fields {
                computed: COMPUTED,
                immutable: IMMUTABLE,
            },
            merge,
        )?;
        match doc.collection_type {
            CollectionType::Mapped => {
                validate_mapped(&doc)?;
                self.check_auth_policy(&doc).await?;
            }
            CollectionType::Guest => validate_common(&doc)?,
        }
        doc.data_type = "collection#1.13.0".into();
        doc.created_at = current.created_at.clone();
        self.store.update_collection(&doc).await?;
        self.changed();
        self.record(who, "collection.update", Some(id), String::new())
            .await;
        self.view_of(&doc, true).await
    }

    pub async fn delete_collection(&self, who: &Requester, id: Uuid) -> Result<()> {
        let c = self.collection(id).await?;
        self.require_modify(who, &c).await?;
        if c.delete_protected && c.collection_type == CollectionType::Mapped {
            return Err(EndpointError::Conflict(
                "delete_protected is set on this collection; update it to false first".into(),
            ));
        }
        self.store.delete_collection(id).await?;
        self.changed();
        self.record(who, "collection.delete", Some(id), String::new())
            .await;
        Ok(())
    }

    /// Gives a mapped collection to another owner (endpoint owners and administrators).
    pub async fn set_collection_owner(&self, who: &Requester, id: Uuid, owner: Uuid) -> Result<()> {
        self.require_endpoint_manager(who).await?;
        let mut c = self.collection(id).await?;
        if c.collection_type != CollectionType::Mapped {
            return Err(EndpointError::BadRequest(
                "only a mapped collection's owner can be changed".into(),
            ));
        }
        if self.identity(owner).await?.is_none() {
            return Err(EndpointError::BadRequest(format!(
                "identity_id: no identity {owner}"
            )));
        }
        c.identity_id = Some(owner);
        self.store.update_collection(&c).await?;
        self.changed();
        self.record(who, "collection.set_owner", Some(id), owner.to_string())
            .await;
        Ok(())
    }
}
