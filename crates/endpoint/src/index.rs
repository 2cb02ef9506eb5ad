//! The Transfer API's view of the endpoint and its collections (its "endpoint" documents): search, show,
//! update, delete, the guest collections of a mapped collection, guest creation by host path, and servers.
//!
//! Entity types are the GCSv5 ones (`GCSv5_endpoint`, `GCSv5_mapped_collection`, `GCSv5_guest_collection`) with
//! `gcs_manager_url` set and `owner_id` the endpoint's id, as Globus shows GCS 5 collections: the `globus` CLI
//! then sends collection commands (`globus collection show/update/delete`) to Ferry's manager API, while
//! Transfer commands (`ls`, `mkdir`, `endpoint permission`, `endpoint role`, `endpoint search`) come here.

use ferry_core::endpoint::{CollectionDoc, CollectionType, RoleName};
use ferry_core::roles;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::{Endpoint, EndpointError, Requester, Result, docs};

pub const ENTITY_ENDPOINT: &str = "GCSv5_endpoint";
pub const ENTITY_MAPPED: &str = "GCSv5_mapped_collection";
pub const ENTITY_GUEST: &str = "GCSv5_guest_collection";
const ENTITY_TYPES: &[&str] = &[
    "GCP_mapped_collection",
    "GCP_guest_collection",
    ENTITY_ENDPOINT,
    ENTITY_MAPPED,
    ENTITY_GUEST,
];
const SCOPES: &[&str] = &[
    "all",
    "my-endpoints",
    "my-gcp-endpoints",
    "recently-used",
    "in-use",
    "shared-by-me",
    "shared-with-me",
    "hide-no-permissions",
    "administered-by-me",
];
/// The Transfer service stops endpoint search paging at 1,000 results.
const SEARCH_WINDOW: usize = 1000;

/// `endpoint_search` parameters, as given.
#[derive(Debug, Clone, Default)]
pub struct SearchQuery {
    pub fulltext: Option<String>,
    pub scope: Option<String>,
    pub owner_id: Option<String>,
    pub host_endpoint: Option<String>,
    pub entity_type: Option<String>,
    pub non_functional: Option<String>,
    pub limit: Option<String>,
    pub offset: Option<String>,
}

/// A page of search results.
pub struct SearchPage {
    pub docs: Vec<Value>,
    pub limit: usize,
    pub offset: usize,
    pub has_next_page: bool,
}

/// Fields a Transfer endpoint update may change, and the collection field each one sets.
const UPDATABLE: &[&str] = &[
    "display_name",
    "description",
    "organization",
    "department",
    "keywords",
    "contact_email",
    "contact_info",
    "info_link",
    "public",
    "default_directory",
    "force_encryption",
    "disable_verify",
    "user_message",
    "user_message_link",
];

fn number(field: &str, v: Option<&str>, default: usize, max: usize) -> Result<usize> {
    match v {
        None | Some("") => Ok(default),
        Some(s) => match s.parse::<usize>() {
            Ok(n) if n <= max => Ok(n),
            _ => Err(EndpointError::BadRequest(format!(
                "{field}: {s:?} is not a whole number from 0 to {max}"
            ))),
        },
    }
}

fn flag(field: &str, v: &str) -> Result<bool> {
    match v.to_ascii_lowercase().as_str() {
        "1" | "true" => Ok(true),
        "0" | "false" => Ok(false),
        _ => Err(EndpointError::BadRequest(format!(
            "{field}: {v:?} is not 1/0 or true/false"
        ))),
    }
}

fn uuid_param(field: &str, v: &str) -> Result<Uuid> {
    Uuid::parse_str(v)
        .map_err(|_| EndpointError::BadRequest(format!("{field}: {v:?} is not an id")))
}

/// Every term of the query occurs (case-insensitively) in the document's descriptive text.
fn matches_text(doc: &Value, terms: &[String]) -> bool {
    let mut text = String::new();
    for key in [
        "display_name",
        "description",
        "organization",
        "department",
        "keywords",
        "id",
        "owner_string",
    ] {
        if let Some(s) = doc[key].as_str() {
            text.push_str(&s.to_lowercase());
            text.push(' ');
        }
    }
    terms.iter().all(|t| text.contains(t.as_str()))
}

fn role_names(r: &roles::Roles) -> Vec<&'static str> {
    let mut names: Vec<&'static str> = r
        .iter()
        .map(|r| match r {
            // Transfer has no owner role: the endpoint's owner administers it.
            RoleName::Owner => RoleName::Administrator.as_str(),
            other => other.as_str(),
        })
        .collect();
    names.sort_unstable();
    names.dedup();
    names
}

/// How the caller relates to one entity, for the search scopes.
struct Relation {
    doc: Value,
    created_by_me: bool,
    administered: bool,
    has_role: bool,
    permitted: bool,
    guest: bool,
    host: Option<Uuid>,
    creator: Option<Uuid>,
}

impl Endpoint {
    fn manager_url(&self) -> String {
        self.settings.base_url.clone()
    }

    /// The Transfer document of a collection, as `who` sees it.
    async fn collection_entity(&self, who: &Requester, c: &CollectionDoc) -> Result<Value> {
        let (ep, coll) = self.roles_for(who, c).await?;
        let manages = roles::modifies_collection(&ep, &coll);
        let view = self.view_of(c, false).await?;
        let guest = c.collection_type == CollectionType::Guest;
        let mapped_name = match c.mapped_collection_id {
            Some(m) => self.store.get_collection(m).await?.map(|m| m.display_name),
            None => None,
        };
        Ok(json!({
            "DATA_TYPE": "endpoint",
            "id": c.id,
            "display_name": c.display_name,
            "canonical_name": null,
            "name": null,
            "username": null,
            "entity_type": if guest { ENTITY_GUEST } else { ENTITY_MAPPED },
            "owner_id": self.id,
            "owner_string": format!("{}@ferry", self.id),
            "gcs_manager_url": self.manager_url(),
            "gcs_version": crate::info::GCS_VERSION,
            "ferry_version": crate::info::FERRY_VERSION,
            "non_functional": false,
            "non_functional_endpoint_id": self.id,
            "non_functional_endpoint_display_name": self.endpoint_doc().await?.display_name,
            "is_globus_connect": false,
            "gcp_connected": null,
            "gcp_paused": null,
            "host_endpoint_id": if guest { c.mapped_collection_id.map(|m| m.to_string()) } else { None },
            "host_endpoint": null,
            "host_endpoint_display_name": mapped_name,
            "host_path": null,
            "mapped_collection_id": c.mapped_collection_id,
            "mapped_collection_display_name": mapped_name,
            "storage_type": "posix",
            "description": c.description,
            "organization": c.organization,
            "department": c.department,
            "keywords": if c.keywords.is_empty() { Value::Null } else { Value::from(c.keywords.join(",")) },
            "contact_email": c.contact_email,
            "contact_info": c.contact_info,
            "info_link": c.info_link,
            "public": c.public,
            "default_directory": c.default_directory,
            "force_encryption": c.force_encryption,
            "disable_verify": c.disable_verify,
            "force_verify": c.force_verify,
            "high_assurance": false,
            "authentication_assurance_timeout": null,
            "subscription_id": null,
            "subscription_admin_verified": false,
            "my_effective_roles": role_names(&coll),
            "acl_available": guest,
            "acl_editable": guest && roles::manages_permissions(&coll),
            "shareable": !guest && c.allow_guest_collections,
            // The collection's own root, as on Globus: `https_server + path` is the file's URL.
            "https_server": view["https_url"],
            "https_url": view["https_url"],
            "tlsftp_server": null,
            "myproxy_server": null,
            "oauth_server": null,
            "activated": true,
            "expires_in": -1,
            "expire_time": null,
            "in_use": false,
            "is_go_storage": false,
            "local_user_info_available": true,
            "location": null,
            "network_use": null,
            "requester_pays": false,
            "user_message": c.user_message,
            "user_message_link": c.user_message_link,
            "managed": manages,
            "DATA": [],
        }))
    }

    /// The endpoint itself, as a (non-functional) search entity.
    async fn endpoint_entity(&self, who: &Requester) -> Result<Value> {
        let doc = self.endpoint_doc().await?;
        let ep = self.my_endpoint_roles(who).await?;
        Ok(json!({
            "DATA_TYPE": "endpoint",
            "id": self.id,
            "display_name": doc.display_name,
            "entity_type": ENTITY_ENDPOINT,
            "owner_id": self.id,
            "owner_string": format!("{}@ferry", self.id),
            "gcs_manager_url": self.manager_url(),
            "gcs_version": crate::info::GCS_VERSION,
            "ferry_version": crate::info::FERRY_VERSION,
            "non_functional": true,
            "non_functional_endpoint_id": null,
            "is_globus_connect": false,
            "host_endpoint_id": null,
            "host_path": null,
            "description": doc.description,
            "organization": doc.organization,
            "department": doc.department,
            "keywords": if doc.keywords.is_empty() { Value::Null } else { Value::from(doc.keywords.join(",")) },
            "contact_email": doc.contact_email,
            "contact_info": doc.contact_info,
            "info_link": doc.info_link,
            "public": doc.public,
            "high_assurance": false,
            "subscription_id": doc.subscription_id,
            "my_effective_roles": role_names(&ep),
            "acl_available": false,
            "acl_editable": false,
            "activated": true,
            "expires_in": -1,
            "DATA": [],
        }))
    }

    async fn sees_endpoint(&self, who: &Requester) -> Result<bool> {
        Ok(self.endpoint_doc().await?.public || !self.my_endpoint_roles(who).await?.is_empty())
    }

    /// `GET /v0.10/endpoint/{id}`: the endpoint or one of its collections; what the caller may not see does
    /// not exist for them.
    pub async fn entity(&self, who: &Requester, id: Uuid) -> Result<Value> {
        let missing = || EndpointError::CollectionNotFound(id.to_string());
        if id == self.id {
            return if self.sees_endpoint(who).await? {
                self.endpoint_entity(who).await
            } else {
                Err(missing())
            };
        }
        let c = self.store.get_collection(id).await?.ok_or_else(missing)?;
        if !self.sees(who, &c).await? {
            return Err(missing());
        }
        self.collection_entity(who, &c).await
    }

    /// A collection the caller can see, or EndpointNotFound.
    async fn visible_collection(&self, who: &Requester, id: Uuid) -> Result<CollectionDoc> {
        let missing = || EndpointError::CollectionNotFound(id.to_string());
        let c = self.store.get_collection(id).await?.ok_or_else(missing)?;
        if self.sees(who, &c).await? {
            Ok(c)
        } else {
            Err(missing())
        }
    }

    /// `PUT /v0.10/endpoint/{id}`: the descriptive fields of a collection.
    pub async fn update_entity(&self, who: &Requester, id: Uuid, request: Value) -> Result<()> {
        if id == self.id {
            return Err(EndpointError::BadRequest(
                "the endpoint's own document is changed through the manager API (PATCH /api/endpoint, `ferry endpoint update`)".into(),
            ));
        }
        self.visible_collection(who, id).await?;
        let Value::Object(fields) = request else {
            return Err(EndpointError::BadRequest(
                "the body must be an endpoint document (a JSON object)".into(),
            ));
        };
        let mut patch = serde_json::Map::new();
        for (k, v) in fields {
            match k.as_str() {
                "DATA_TYPE" => {
                    if v != "endpoint" {
                        return Err(EndpointError::BadRequest(format!(
                            "DATA_TYPE: expected \"endpoint\", got {v}"
                        )));
                    }
                }
                "id" => {
                    if v.as_str() != Some(&id.to_string()) {
                        return Err(EndpointError::BadRequest("id: cannot be changed".into()));
                    }
                }
                "keywords" => {
                    let list: Vec<String> = match &v {
                        Value::Null => vec![],
                        Value::String(s) => s
                            .split(',')
                            .map(|k| k.trim().to_string())
                            .filter(|k| !k.is_empty())
                            .collect(),
                        _ => {
                            return Err(EndpointError::BadRequest(
                                "keywords: a comma-separated string".into(),
                            ));
                        }
                    };
                    patch.insert(k, json!(list));
                }
                f if UPDATABLE.contains(&f) => {
                    patch.insert(k, v);
                }
                other => {
                    return Err(EndpointError::BadRequest(format!(
                        "{other}: not a field a Transfer endpoint update can change"
                    )));
                }
            }
        }
        self.update_collection(who, id, Value::Object(patch), true)
            .await
            .map(|_| ())
    }

    /// `DELETE /v0.10/endpoint/{id}`.
    pub async fn delete_entity(&self, who: &Requester, id: Uuid) -> Result<()> {
        if id == self.id {
            return Err(EndpointError::BadRequest(
                "the endpoint itself cannot be deleted; delete its collections".into(),
            ));
        }
        self.visible_collection(who, id).await?;
        self.delete_collection(who, id).await
    }

    async fn relations(&self, who: &Requester) -> Result<Vec<Relation>> {
        let mut out = Vec::new();
        if self.sees_endpoint(who).await? {
            let ep = self.my_endpoint_roles(who).await?;
            out.push(Relation {
                doc: self.endpoint_entity(who).await?,
                created_by_me: self.endpoint_doc().await?.owner_id == Some(who.identity.id),
                administered: roles::manages_endpoint(&ep),
                has_role: !ep.is_empty(),
                permitted: false,
                guest: false,
                host: None,
                creator: None,
            });
        }
        let now = self.now();
        for c in self.store.list_collections(&Default::default()).await? {
            if !self.sees(who, &c).await? {
                continue;
            }
            let (ep, coll) = self.roles_for(who, &c).await?;
            let guest = c.collection_type == CollectionType::Guest;
            let permitted = guest
                && self
                    .store
                    .list_acl_rules(c.id)
                    .await?
                    .iter()
                    .any(|r| r.is_active(now) && who.named_by(&r.principal));
            out.push(Relation {
                doc: self.collection_entity(who, &c).await?,
                created_by_me: c.identity_id == Some(who.identity.id),
                administered: roles::modifies_collection(&ep, &coll),
                has_role: !coll.is_empty(),
                permitted,
                guest,
                host: c.mapped_collection_id,
                creator: c.identity_id,
            });
        }
        Ok(out)
    }

    /// The collections the caller's tasks read or write: those of running tasks (`in-use`), or of tasks
    /// submitted in the last 30 days (`recently-used`).
    async fn used_by_tasks(
        &self,
        who: &Requester,
        running: bool,
    ) -> Result<std::collections::HashSet<Uuid>> {
        use ferry_store::tasks::{TaskFilter, TaskStatus};
        let filter = TaskFilter {
            owner: Some(who.identity.id),
            statuses: if running {
                vec![TaskStatus::Active, TaskStatus::Inactive]
            } else {
                vec![]
            },
            request_after: (!running).then(|| self.now() - 30 * 24 * 3600),
            limit: 1000,
            ..TaskFilter::default()
        };
        let (tasks, _) = self.store.list_tasks(&filter).await?;
        Ok(tasks
            .iter()
            .flat_map(|t| std::iter::once(t.source_collection).chain(t.dest_collection))
            .collect())
    }

    /// `GET /v0.10/endpoint_search`.
    pub async fn search(&self, who: &Requester, q: &SearchQuery) -> Result<SearchPage> {
        let (hits, limit, offset) = self.search_hits(who, q).await?;
        Ok(page_of(hits, limit, offset))
    }

    /// Every match of a search, in display order, with the page asked for (checked): a hub merges these with
    /// the matches of its endpoints before it cuts the page.
    pub async fn search_hits(
        &self,
        who: &Requester,
        q: &SearchQuery,
    ) -> Result<(Vec<Value>, usize, usize)> {
        let scope = q
            .scope
            .as_deref()
            .filter(|s| !s.is_empty())
            .unwrap_or("all");
        if !SCOPES.contains(&scope) {
            return Err(EndpointError::BadRequest(format!(
                "filter_scope: {scope:?} is not one of {}",
                SCOPES.join(", ")
            )));
        }
        let entity_types: Vec<&str> = match q.entity_type.as_deref().filter(|s| !s.is_empty()) {
            None => vec![],
            Some(list) => {
                let v: Vec<&str> = list.split(',').map(str::trim).collect();
                if let Some(bad) = v.iter().find(|t| !ENTITY_TYPES.contains(t)) {
                    return Err(EndpointError::BadRequest(format!(
                        "filter_entity_type: {bad:?} is not one of {}",
                        ENTITY_TYPES.join(", ")
                    )));
                }
                v
            }
        };
        let owner = q
            .owner_id
            .as_deref()
            .filter(|s| !s.is_empty())
            .map(|s| uuid_param("filter_owner_id", s))
            .transpose()?;
        let host = q
            .host_endpoint
            .as_deref()
            .filter(|s| !s.is_empty())
            .map(|s| uuid_param("filter_host_endpoint", s))
            .transpose()?;
        let non_functional = q
            .non_functional
            .as_deref()
            .filter(|s| !s.is_empty())
            .map(|s| flag("filter_non_functional", s))
            .transpose()?;
        let limit = number("limit", q.limit.as_deref(), 25, 100)?;
        let offset = number("offset", q.offset.as_deref(), 0, SEARCH_WINDOW)?;
        if offset + limit > SEARCH_WINDOW {
            return Err(EndpointError::BadRequest(format!(
                "offset + limit: at most {SEARCH_WINDOW} results can be paged through; narrow the search"
            )));
        }
        let terms: Vec<String> = q
            .fulltext
            .as_deref()
            .unwrap_or("")
            .split_whitespace()
            .map(str::to_lowercase)
            .collect();
        let used = match scope {
            "recently-used" | "in-use" => Some(self.used_by_tasks(who, scope == "in-use").await?),
            _ => None,
        };
        let mut hits: Vec<Value> = self
            .relations(who)
            .await?
            .into_iter()
            .filter(|r| match scope {
                "my-endpoints" => r.created_by_me,
                "shared-by-me" => r.guest && r.created_by_me,
                "shared-with-me" => r.guest && r.permitted && !r.created_by_me,
                "hide-no-permissions" => r.has_role || r.permitted,
                "administered-by-me" => r.administered,
                "recently-used" | "in-use" => used.as_ref().is_some_and(|u| {
                    r.doc["id"]
                        .as_str()
                        .and_then(|i| Uuid::parse_str(i).ok())
                        .is_some_and(|i| u.contains(&i))
                }),
                // Ferry runs no Globus Connect Personal.
                "my-gcp-endpoints" => false,
                _ => true,
            })
            .filter(|r| {
                entity_types.is_empty()
                    || r.doc["entity_type"]
                        .as_str()
                        .is_some_and(|t| entity_types.contains(&t))
            })
            .filter(|r| owner.is_none_or(|o| r.doc["owner_id"] == json!(o) || r.creator == Some(o)))
            .filter(|r| host.is_none_or(|h| r.host == Some(h)))
            .filter(|r| non_functional.is_none_or(|n| r.doc["non_functional"] == json!(n)))
            .filter(|r| matches_text(&r.doc, &terms))
            .map(|r| r.doc)
            .collect();
        sort_hits(&mut hits);
        Ok((hits, limit, offset))
    }

    async fn host_collection(&self, who: &Requester, host: Uuid) -> Result<CollectionDoc> {
        let c = self.visible_collection(who, host).await?;
        if c.collection_type != CollectionType::Mapped {
            return Err(EndpointError::BadRequest(format!(
                "{host} is a guest collection; guest collections are hosted by mapped collections"
            )));
        }
        Ok(c)
    }

    /// `GET /v0.10/endpoint/{id}/my_shared_endpoint_list`: the caller's guest collections on a mapped one.
    pub async fn my_guest_collections(&self, who: &Requester, host: Uuid) -> Result<Vec<Value>> {
        self.host_collection(who, host).await?;
        let mut out = Vec::new();
        for c in self
            .store
            .list_collections(&ferry_store::CollectionFilter {
                mapped_collection_id: Some(host),
                identity_id: Some(who.identity.id),
                ..Default::default()
            })
            .await?
        {
            out.push(self.collection_entity(who, &c).await?);
        }
        Ok(out)
    }

    /// `GET /v0.10/endpoint/{id}/shared_endpoint_list`: every guest collection on a mapped one (its
    /// administrators only).
    pub async fn guest_collections(&self, who: &Requester, host: Uuid) -> Result<Vec<Value>> {
        let c = self.host_collection(who, host).await?;
        let (ep, coll) = self.roles_for(who, &c).await?;
        if !roles::modifies_collection(&ep, &coll) {
            return Err(EndpointError::PermissionDenied(
                "listing every guest collection of a mapped collection needs its administrator role"
                    .into(),
            ));
        }
        let mut out = Vec::new();
        for g in self
            .store
            .list_collections(&ferry_store::CollectionFilter {
                mapped_collection_id: Some(host),
                ..Default::default()
            })
            .await?
        {
            out.push(self.collection_entity(who, &g).await?);
        }
        Ok(out)
    }

    /// `POST /v0.10/shared_endpoint`: a guest collection of `host_endpoint` at `host_path`.
    pub async fn create_shared_endpoint(&self, who: &Requester, request: Value) -> Result<Uuid> {
        let Value::Object(mut fields) = request else {
            return Err(EndpointError::BadRequest(
                "the body must be a shared_endpoint document (a JSON object)".into(),
            ));
        };
        match fields.remove("DATA_TYPE") {
            None => {}
            Some(v) if v == "shared_endpoint" => {}
            Some(v) => {
                return Err(EndpointError::BadRequest(format!(
                    "DATA_TYPE: expected \"shared_endpoint\", got {v}"
                )));
            }
        }
        let host = match fields.remove("host_endpoint") {
            Some(Value::String(s)) => uuid_param("host_endpoint", &s)?,
            _ => {
                return Err(EndpointError::BadRequest(
                    "host_endpoint: required (the mapped collection's id)".into(),
                ));
            }
        };
        self.host_collection(who, host).await?;
        let host_path = match fields.remove("host_path") {
            Some(Value::String(s)) => s,
            _ => {
                return Err(EndpointError::BadRequest(
                    "host_path: required (the folder of the mapped collection to share)".into(),
                ));
            }
        };
        let mut doc = serde_json::Map::new();
        for (k, v) in fields {
            match k.as_str() {
                "keywords" => {
                    let list: Vec<String> = v
                        .as_str()
                        .unwrap_or("")
                        .split(',')
                        .map(|k| k.trim().to_string())
                        .filter(|k| !k.is_empty())
                        .collect();
                    doc.insert(k, json!(list));
                }
                f if UPDATABLE.contains(&f) => {
                    doc.insert(k, v);
                }
                // Accepted and not acted on, as for guest collections made through the manager API.
                "guest_collection_activity_notification_policy" => {}
                other => {
                    return Err(EndpointError::BadRequest(format!(
                        "{other}: not a field of a shared endpoint"
                    )));
                }
            }
        }
        doc.insert("DATA_TYPE".into(), json!("collection#1.13.0"));
        doc.insert("collection_type".into(), json!("guest"));
        doc.insert("mapped_collection_id".into(), json!(host));
        doc.insert("collection_base_path".into(), json!(host_path));
        let created = self.create_guest(who, Value::Object(doc)).await?;
        docs::id_of(&created)
    }

    /// `GET /v0.10/endpoint/{id}/server_list`: Ferry serves every collection itself, over HTTPS.
    pub async fn servers(&self, who: &Requester, id: Uuid) -> Result<Value> {
        self.entity(who, id).await?;
        let url = url_parts(&self.settings.base_url);
        Ok(json!({
            "DATA_TYPE": "endpoint_server_list",
            "endpoint": id,
            "DATA": [{
                "DATA_TYPE": "server",
                "id": 1,
                "hostname": url.0,
                "port": url.1,
                "scheme": url.2,
                "uri": self.settings.base_url,
                "subject": null,
                "is_connected": true,
                "is_paused": false,
                "incoming_data_port_start": null,
                "incoming_data_port_end": null,
                "outgoing_data_port_start": null,
                "outgoing_data_port_end": null,
            }],
        }))
    }
}

/// Search results in display order: by name, without regard to case.
pub fn sort_hits(hits: &mut [Value]) {
    hits.sort_by_cached_key(|d| d["display_name"].as_str().unwrap_or("").to_lowercase());
}

/// One page of ordered search results.
pub fn page_of(hits: Vec<Value>, limit: usize, offset: usize) -> SearchPage {
    let has_next_page = hits.len() > offset + limit;
    SearchPage {
        docs: hits.into_iter().skip(offset).take(limit).collect(),
        limit,
        offset,
        has_next_page,
    }
}

/// Host, port and scheme of a base URL (a URL Ferry built itself, so the fallbacks never matter in practice).
fn url_parts(base: &str) -> (String, u16, String) {
    let (scheme, rest) = base.split_once("://").unwrap_or(("https", base));
    let hostport = rest.split('/').next().unwrap_or(rest);
    let default = if scheme == "https" { 443 } else { 80 };
    match hostport.rsplit_once(':') {
        Some((h, p)) if !h.ends_with(']') || p.parse::<u16>().is_ok() => (
            h.to_string(),
            p.parse().unwrap_or(default),
            scheme.to_string(),
        ),
        _ => (hostport.to_string(), default, scheme.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameters_are_checked() {
        assert_eq!(number("limit", None, 25, 100).unwrap(), 25);
        assert_eq!(number("limit", Some("100"), 25, 100).unwrap(), 100);
        assert!(number("limit", Some("101"), 25, 100).is_err());
        assert!(number("limit", Some("-1"), 25, 100).is_err());
        assert!(flag("f", "1").unwrap());
        assert!(!flag("f", "false").unwrap());
        assert!(flag("f", "maybe").is_err());
        assert_eq!(
            url_parts("https://127.0.0.1:8443"),
            ("127.0.0.1".into(), 8443, "https".into())
        );
        assert_eq!(
            url_parts("https://ferry.example.org"),
            ("ferry.example.org".into(), 443, "https".into())
        );
    }

    #[test]
    fn full_text_needs_every_term() {
        let d = json!({"display_name": "Cohort 045 results", "keywords": "genomics,raw"});
        assert!(matches_text(&d, &["cohort".into(), "genomics".into()]));
        assert!(!matches_text(&d, &["cohort".into(), "imaging".into()]));
        assert!(matches_text(&d, &[]));
    }
}
