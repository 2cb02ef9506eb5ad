//! The scope registry (Globus Auth's scope API) and what it decides: which scopes a scope depends on.
//!
//! A client that is a resource server registers its scopes (`https://auth.globus.org/scopes/<client>/<suffix>`)
//! with the scopes each depends on. Built-in scopes declare nothing; fixed rules say what they may depend on
//! (`ferry_core::scope::builtin_dependency`). A request may name only allowed dependencies; consent covers the
//! requested ones and every declared one; and the dependent-token grant issues only covered dependencies that
//! are still allowed. The tree a grant was consented with travels in its tokens' `extra.dependencies`.

use std::collections::BTreeMap;

use ferry_core::scope::{
    self, BUILTIN_SCOPES, MANAGE_PROJECTS, ScopeDependency, builtin_dependency, builtin_scope_id,
    client_scope, resource_server_of, valid_scope_suffix,
};
use ferry_core::{Client, Scope};
use ferry_proto::auth::{DependentScopeDoc, ScopeDoc, ScopeRequest};
use ferry_store::{CollectionFilter, ScopeRecord};
use serde_json::{Map, Value};
use uuid::Uuid;

use crate::{Auth, AuthError, Principal, Result};

/// How deep dependencies may nest (a portal → Transfer → a collection is three).
const MAX_DEPTH: usize = 6;
/// Where the endpoint keeps its id (its `manage_collections` scope can be a declared dependency).
const ENDPOINT_ID_KEY: &str = "endpoint.id";

fn bad(msg: impl Into<String>) -> AuthError {
    AuthError::InvalidRequest(msg.into())
}

/// The JSON form of consented dependency trees: `{scope: {dependency: {...}}}`.
pub(crate) fn tree_json(scopes: &[Scope]) -> Value {
    let mut m = Map::new();
    for s in scopes {
        let entry = m
            .entry(s.name.clone())
            .or_insert_with(|| Value::Object(Map::new()));
        if let (Value::Object(into), Value::Object(children)) = (entry, tree_json(&s.dependencies))
        {
            into.extend(children);
        }
    }
    Value::Object(m)
}

/// The part of a tree for `names`.
pub(crate) fn subtree(tree: &Value, names: &[String]) -> Value {
    Value::Object(
        names
            .iter()
            .map(|n| {
                (
                    n.clone(),
                    tree.get(n).cloned().unwrap_or(Value::Object(Map::new())),
                )
            })
            .collect(),
    )
}

impl Auth {
    /// The dependencies a registered scope declares (none for built-in and unregistered scopes).
    async fn declared(&self, scope: &str) -> Result<Vec<ScopeDependency>> {
        Ok(self
            .store
            .find_scope(scope)
            .await?
            .map(|s| s.dependent_scopes)
            .unwrap_or_default())
    }

    /// May `child` be consented and issued as a dependency of `parent`, now?
    pub(crate) async fn dependency_allowed(&self, parent: &str, child: &str) -> Result<bool> {
        Ok(builtin_dependency(parent, child)
            || self
                .declared(parent)
                .await?
                .iter()
                .any(|d| d.scope_string == child))
    }

    /// Checks a requested scope list (every scope known, every named dependency allowed, the client allowed
    /// each top-level scope) and completes it with the declared dependencies: the tree consent covers.
    pub(crate) async fn consent_tree(
        &self,
        client: &Client,
        requested: &[Scope],
    ) -> Result<Vec<Scope>> {
        if requested.is_empty() {
            return Err(AuthError::InvalidScope("no scope was requested".into()));
        }
        if let Some(s) = requested.iter().find(|s| !client.allows_scope(&s.name)) {
            return Err(AuthError::InvalidScope(format!(
                "'{}' is not among the scopes this client may be issued",
                s.name
            )));
        }
        let mut out = Vec::new();
        for s in requested {
            out.push(self.complete(s, 0).await?);
        }
        Ok(out)
    }

    fn complete<'a>(
        &'a self,
        s: &'a Scope,
        depth: usize,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<Scope>> + Send + 'a>> {
        Box::pin(async move {
            if resource_server_of(&s.name).is_none() {
                return Err(AuthError::InvalidScope(format!(
                    "unknown scope '{}'",
                    s.name
                )));
            }
            if depth >= MAX_DEPTH {
                return Err(AuthError::InvalidScope(format!(
                    "the dependencies of '{}' nest more than {MAX_DEPTH} deep",
                    s.name
                )));
            }
            let mut children = Vec::new();
            for c in &s.dependencies {
                if !self.dependency_allowed(&s.name, &c.name).await? {
                    return Err(AuthError::InvalidScope(format!(
                        "'{}' is not a dependency that '{}' declares",
                        c.name, s.name
                    )));
                }
                children.push(self.complete(c, depth + 1).await?);
            }
            for d in self.declared(&s.name).await? {
                if !children.iter().any(|c| c.name == d.scope_string) {
                    let declared = Scope {
                        name: d.scope_string,
                        optional: d.optional,
                        dependencies: vec![],
                    };
                    children.push(self.complete(&declared, depth + 1).await?);
                }
            }
            Ok(Scope {
                name: s.name.clone(),
                optional: s.optional,
                dependencies: children,
            })
        })
    }

    // ---- the scope API ----

    fn needs_manage_projects(p: &Principal) -> Result<()> {
        if p.scopes.iter().any(|s| s == MANAGE_PROJECTS) {
            Ok(())
        } else {
            Err(AuthError::Forbidden(format!(
                "managing scopes needs a token with the {MANAGE_PROJECTS} scope"
            )))
        }
    }

    /// A client's scopes are managed by the client itself or by its owner.
    async fn managed_client(&self, p: &Principal, client_id: Uuid) -> Result<Client> {
        let client = self
            .store
            .get_client(client_id)
            .await?
            .ok_or_else(|| AuthError::NotFound(format!("no client {client_id}")))?;
        if !self.manages(p, client.id).await? {
            return Err(AuthError::Forbidden(
                "only the client itself or its owner may manage its scopes".into(),
            ));
        }
        Ok(client)
    }

    fn scope_doc(s: &ScopeRecord) -> ScopeDoc {
        ScopeDoc {
            scope_string: s.scope_string.clone(),
            allows_refresh_token: s.allows_refresh_token,
            id: s.id,
            advertised: s.advertised,
            required_domains: s.required_domains.clone(),
            name: s.name.clone(),
            description: s.description.clone(),
            client: Some(s.client_id),
            dependent_scopes: s
                .dependent_scopes
                .iter()
                .map(|d| DependentScopeDoc {
                    scope: d.scope_id.to_string(),
                    optional: d.optional,
                    requires_refresh_token: d.requires_refresh_token,
                })
                .collect(),
        }
    }

    /// A scope no client registered, described from its string.
    fn builtin_doc(scope: &str) -> ScopeDoc {
        let name = scope.rsplit([':', '/']).next().unwrap_or(scope).to_string();
        ScopeDoc {
            scope_string: scope.to_string(),
            allows_refresh_token: true,
            id: builtin_scope_id(scope),
            advertised: true,
            required_domains: vec![],
            name,
            description: "A scope defined by this server".into(),
            client: None,
            dependent_scopes: vec![],
        }
    }

    /// Scope strings whose ids are derived rather than stored: the built-ins, the endpoint's, the collections'.
    async fn derived_scopes(&self) -> Result<Vec<String>> {
        let mut out: Vec<String> = BUILTIN_SCOPES.iter().map(|s| s.to_string()).collect();
        if let Some(id) = self
            .store
            .meta_get(ENDPOINT_ID_KEY)
            .await?
            .and_then(|e| Uuid::parse_str(&e).ok())
        {
            out.push(scope::manage_collections_scope(id));
        }
        for c in self
            .store
            .list_collections(&CollectionFilter::default())
            .await?
        {
            out.push(scope::collection_scope(c.id, "data_access"));
            out.push(scope::collection_scope(c.id, "https"));
        }
        Ok(out)
    }

    /// A dependency named by id (as the SDK sends it) or by scope string, resolved to both.
    async fn resolve_dependency(&self, d: &DependentScopeDoc) -> Result<ScopeDependency> {
        let (id, string) = match Uuid::parse_str(&d.scope) {
            Ok(id) => match self.store.get_scope(id).await? {
                Some(s) => (id, s.scope_string),
                None => {
                    let found = self
                        .derived_scopes()
                        .await?
                        .into_iter()
                        .find(|s| builtin_scope_id(s) == id);
                    (
                        id,
                        found.ok_or_else(|| {
                            bad(format!("scope.dependent_scopes: no scope with the id {id}"))
                        })?,
                    )
                }
            },
            Err(_) => {
                if resource_server_of(&d.scope).is_none() {
                    return Err(bad(format!(
                        "scope.dependent_scopes: unknown scope '{}'",
                        d.scope
                    )));
                }
                let id = match self.store.find_scope(&d.scope).await? {
                    Some(s) => s.id,
                    None => builtin_scope_id(&d.scope),
                };
                (id, d.scope.clone())
            }
        };
        Ok(ScopeDependency {
            scope_id: id,
            scope_string: string,
            optional: d.optional,
            requires_refresh_token: d.requires_refresh_token,
        })
    }

    /// Applies the fields of `req` to `rec`.
    async fn apply(&self, rec: &mut ScopeRecord, req: ScopeRequest) -> Result<()> {
        if let Some(suffix) = req.scope_suffix {
            if !valid_scope_suffix(&suffix) {
                return Err(bad(
                    "scope.scope_suffix: use lowercase letters, digits and underscores",
                ));
            }
            rec.scope_string = client_scope(rec.client_id, &suffix);
        }
        if let Some(n) = req.name {
            rec.name = n;
        }
        if let Some(d) = req.description {
            rec.description = d;
        }
        if rec.name.trim().is_empty() || rec.name.chars().count() > 100 {
            return Err(bad("scope.name: 1 to 100 characters"));
        }
        if rec.description.chars().count() > 5000 {
            return Err(bad("scope.description: at most 5000 characters"));
        }
        if let Some(a) = req.advertised {
            rec.advertised = a;
        }
        if let Some(a) = req.allows_refresh_token {
            rec.allows_refresh_token = a;
        }
        if let Some(r) = req.required_domains {
            rec.required_domains = r;
        }
        if let Some(deps) = req.dependent_scopes {
            if deps.len() > 50 {
                return Err(bad("scope.dependent_scopes: at most 50"));
            }
            let mut resolved = Vec::new();
            for d in &deps {
                let r = self.resolve_dependency(d).await?;
                if r.scope_string == rec.scope_string {
                    return Err(bad(
                        "scope.dependent_scopes: a scope cannot depend on itself",
                    ));
                }
                resolved.push(r);
            }
            rec.dependent_scopes = resolved;
        }
        Ok(())
    }

    fn scope_request(body: &Value) -> Result<ScopeRequest> {
        let doc = body
            .get("scope")
            .filter(|v| v.is_object())
            .ok_or_else(|| bad("the body must be {\"scope\": {...}}"))?;
        serde_path_to_error::deserialize(doc.clone()).map_err(|e| {
            let path = e.path().to_string();
            bad(format!("scope.{path}: {}", e.into_inner()))
        })
    }

    /// `POST /v2/api/clients/{client_id}/scopes`.
    pub async fn create_scope(
        &self,
        p: &Principal,
        client_id: Uuid,
        body: &Value,
    ) -> Result<ScopeDoc> {
        Self::needs_manage_projects(p)?;
        let client = self.managed_client(p, client_id).await?;
        let req = Self::scope_request(body)?;
        if req.scope_suffix.is_none() || req.name.is_none() || req.description.is_none() {
            return Err(bad(
                "scope.name, scope.description and scope.scope_suffix are required",
            ));
        }
        let mut rec = ScopeRecord {
            id: Uuid::new_v4(),
            client_id: client.id,
            scope_string: String::new(),
            name: String::new(),
            description: String::new(),
            advertised: false,
            allows_refresh_token: true,
            required_domains: vec![],
            dependent_scopes: vec![],
            created: self.now(),
        };
        self.apply(&mut rec, req).await?;
        self.store.create_scope(&rec).await?;
        Ok(Self::scope_doc(&rec))
    }

    async fn managed_scope(&self, p: &Principal, id: Uuid) -> Result<ScopeRecord> {
        Self::needs_manage_projects(p)?;
        let rec = self
            .store
            .get_scope(id)
            .await?
            .ok_or_else(|| AuthError::NotFound(format!("no scope {id}")))?;
        self.managed_client(p, rec.client_id).await?;
        Ok(rec)
    }

    /// `PUT /v2/api/scopes/{id}`: changes the fields given.
    pub async fn update_scope(&self, p: &Principal, id: Uuid, body: &Value) -> Result<ScopeDoc> {
        let mut rec = self.managed_scope(p, id).await?;
        self.apply(&mut rec, Self::scope_request(body)?).await?;
        self.store.update_scope(&rec).await?;
        Ok(Self::scope_doc(&rec))
    }

    pub async fn delete_scope(&self, p: &Principal, id: Uuid) -> Result<ScopeDoc> {
        let rec = self.managed_scope(p, id).await?;
        self.store.delete_scope(id).await?;
        Ok(Self::scope_doc(&rec))
    }

    /// `GET /v2/api/scopes/{id}`: a scope the caller manages, an advertised one, or a derived one.
    pub async fn get_scope(&self, p: &Principal, id: Uuid) -> Result<ScopeDoc> {
        let mut found = self.lookup_scopes(p, &[id.to_string()], true).await?;
        found
            .pop()
            .ok_or_else(|| AuthError::NotFound(format!("no scope {id}")))
    }

    /// `GET /v2/api/scopes`: without a filter the scopes of the clients the caller manages; with `ids` or
    /// `scope_strings` (comma-separated, not both) those of them the caller may see.
    pub async fn list_scopes(
        &self,
        p: &Principal,
        ids: Option<&str>,
        scope_strings: Option<&str>,
    ) -> Result<Vec<ScopeDoc>> {
        let split = crate::service::split_list;
        match (ids, scope_strings) {
            (Some(_), Some(_)) => Err(bad("give either ids or scope_strings, not both")),
            (Some(i), None) => self.lookup_scopes(p, &split(i), true).await,
            (None, Some(s)) => self.lookup_scopes(p, &split(s), false).await,
            (None, None) => {
                let mut out = Vec::new();
                for s in self.store.list_scopes(None).await? {
                    if self.manages(p, s.client_id).await? {
                        out.push(Self::scope_doc(&s));
                    }
                }
                Ok(out)
            }
        }
    }

    /// Is the caller the client itself or its owner?
    async fn manages(&self, p: &Principal, client_id: Uuid) -> Result<bool> {
        if client_id == p.identity.id {
            return Ok(true);
        }
        Ok(self
            .store
            .get_client(client_id)
            .await?
            .is_some_and(|c| c.owner == Some(p.identity.id)))
    }

    async fn may_see(&self, p: &Principal, s: &ScopeRecord) -> Result<bool> {
        Ok(s.advertised || self.manages(p, s.client_id).await?)
    }

    async fn lookup_scopes(
        &self,
        p: &Principal,
        keys: &[String],
        by_id: bool,
    ) -> Result<Vec<ScopeDoc>> {
        if keys.len() > 100 {
            return Err(bad("at most 100 scopes per request"));
        }
        let derived = self.derived_scopes().await?;
        let mut out = Vec::new();
        for k in keys {
            let registered = if by_id {
                let id = Uuid::parse_str(k).map_err(|_| bad(format!("'{k}' is not a scope id")))?;
                self.store.get_scope(id).await?
            } else {
                self.store.find_scope(k).await?
            };
            match registered {
                Some(s) if self.may_see(p, &s).await? => out.push(Self::scope_doc(&s)),
                Some(_) => {}
                None => {
                    let hit = derived.iter().find(|d| {
                        if by_id {
                            builtin_scope_id(d).to_string() == *k
                        } else {
                            *d == k
                        }
                    });
                    if let Some(d) = hit {
                        out.push(Self::builtin_doc(d));
                    }
                }
            }
        }
        Ok(out)
    }

    /// For the dependent-token grant: of the dependencies a token's scopes were consented with, those still
    /// allowed now, each with the tree under it.
    pub(crate) async fn covered_dependencies(
        &self,
        scopes: &str,
        tree: &Value,
    ) -> Result<BTreeMap<String, Value>> {
        let mut out = BTreeMap::new();
        for s in scopes.split_whitespace() {
            let Some(Value::Object(children)) = tree.get(s) else {
                continue;
            };
            for (child, under) in children {
                if self.dependency_allowed(s, child).await? {
                    out.insert(child.clone(), under.clone());
                }
            }
        }
        Ok(out)
    }
}
