//! Endpoints joined to this hub: registration by a person (the endpoint becomes a confidential client whose id
//! is the endpoint id), the reports in which an endpoint says which collections it holds, and the signed
//! statements with which the hub vouches for a caller when it passes a request on to an endpoint.

use ferry_core::{ClientKind, Identity};
use ferry_proto::sites::{
    ASSERTION_SCHEME, EndpointRegistration, HubAssertion, PURPOSE_TASK_READ, PURPOSE_TRANSFER,
    REGISTRATION_TYPE, REPORT_ACCEPTED_TYPE, RegisteredEndpoint, ReportAccepted,
    ReportedCollection, SITE_TYPE, SiteDoc, SiteReport, TASK_CREDENTIAL_TYPE, TASK_OWNER_TYPE,
    TaskCredential, TaskOwner,
};
use ferry_store::tasks::{ItemKind, ItemState, TaskRow};
use ferry_store::{Site, SiteCollection};
use uuid::Uuid;

use crate::grants::ClientCredentials;
use crate::service::NewClient;
use crate::{Auth, AuthError, Principal, Result};

/// The one scope an endpoint's client may be issued.
pub const VIEW_IDENTITIES: &str = "urn:globus:auth:scope:auth.globus.org:view_identities";
/// How long a statement vouching for a caller is good for: one request passed on, with room for clock skew.
pub const ASSERTION_SECS: i64 = 60;
/// How long a task credential is good for: long enough for a batch of files, short enough that a cancelled
/// task's credential is soon useless.
pub const TASK_CREDENTIAL_SECS: i64 = 600;
/// Collections one endpoint may report.
const MAX_REPORTED: usize = 100_000;

/// An endpoint's public URL: http(s), a host, nothing after the path.
fn check_public_url(raw: &str) -> Result<String> {
    let bad = |why: &str| AuthError::InvalidRequest(format!("public_url {raw:?}: {why}"));
    let u = url::Url::parse(raw.trim()).map_err(|e| bad(&e.to_string()))?;
    if !matches!(u.scheme(), "https" | "http") {
        return Err(bad("must be an http or https URL"));
    }
    if u.host_str().is_none_or(str::is_empty) {
        return Err(bad("needs a host"));
    }
    if u.query().is_some() || u.fragment().is_some() || !u.username().is_empty() {
        return Err(bad("must have no query, fragment or user name"));
    }
    Ok(u.as_str().trim_end_matches('/').to_string())
}

fn check_name(raw: &str) -> Result<String> {
    let name = raw.trim();
    if name.is_empty() || name.len() > 200 || name.chars().any(char::is_control) {
        return Err(AuthError::InvalidRequest(
            "display_name: 1 to 200 characters on one line".into(),
        ));
    }
    Ok(name.to_string())
}

impl Auth {
    /// `POST /v2/ferry/endpoints`: a person registers an endpoint and becomes its owner.
    pub async fn register_site(
        &self,
        who: &Principal,
        request: EndpointRegistration,
    ) -> Result<RegisteredEndpoint> {
        if who.identity.kind != ferry_core::IdentityKind::Person {
            return Err(AuthError::Forbidden(
                "an endpoint is registered by a person who logged in, not by an application".into(),
            ));
        }
        let display_name = check_name(&request.display_name)?;
        let public_url = check_public_url(&request.public_url)?;
        let created = self
            .create_client_with(NewClient {
                owner: Some(who.identity.id),
                // Its own tokens only, to look up the identities its people name in permissions and roles;
                // it asks for nothing on anyone's behalf.
                grant_types: Some(vec![ferry_core::identity::GRANT_CLIENT_CREDENTIALS.into()]),
                allowed_scopes: Some(vec![VIEW_IDENTITIES.into()]),
                ..NewClient::by_administrator(
                    &format!("Endpoint: {display_name}"),
                    ClientKind::Confidential,
                    vec![],
                )
            })
            .await?;
        let id = created.client.id;
        let site = Site {
            id,
            owner: who.identity.id,
            public_url,
            display_name,
            version: 0,
            reported_at: None,
            created: self.now(),
        };
        if let Err(e) = self.store.create_site(&site).await {
            // No client without its endpoint.
            let _ = self.store.delete_identity(id).await;
            return Err(e.into());
        }
        tracing::info!(endpoint = %id, owner = %who.identity.id, "endpoint registered");
        Ok(RegisteredEndpoint {
            data_type: REGISTRATION_TYPE.into(),
            endpoint_id: id,
            client_secret: created.secret.ok_or_else(|| {
                AuthError::Internal("a confidential client without a secret".into())
            })?,
            hub_url: self.cfg.issuer.clone(),
        })
    }

    async fn site(&self, id: Uuid) -> Result<Site> {
        self.store
            .get_site(id)
            .await?
            .ok_or_else(|| AuthError::NotFound(format!("no endpoint {id} is joined to this hub")))
    }

    async fn site_doc(&self, site: Site) -> Result<SiteDoc> {
        let collections = self
            .store
            .site_collections(site.id)
            .await?
            .into_iter()
            .map(|c| ReportedCollection {
                id: c.id,
                display_name: c.display_name,
                collection_type: c.kind,
            })
            .collect();
        Ok(SiteDoc {
            data_type: SITE_TYPE.into(),
            id: site.id,
            display_name: site.display_name,
            public_url: site.public_url,
            owner_id: site.owner,
            version: site.version,
            reported_at: site.reported_at,
            collections,
        })
    }

    /// `GET /v2/ferry/endpoints/{id}`: any signed-in caller may see where an endpoint is and what it holds, as
    /// Transfer's collection index shows it to them anyway.
    pub async fn show_site(&self, id: Uuid) -> Result<SiteDoc> {
        let site = self.site(id).await?;
        self.site_doc(site).await
    }

    pub async fn list_sites(&self) -> Result<Vec<SiteDoc>> {
        let mut out = Vec::new();
        for s in self.store.list_sites().await? {
            out.push(self.site_doc(s).await?);
        }
        Ok(out)
    }

    /// `DELETE /v2/ferry/endpoints/{id}`: by its owner, or by the endpoint itself. Its client, tokens and
    /// reported collections go with it.
    pub async fn delete_site(
        &self,
        id: Uuid,
        by_client: Option<&ClientCredentials>,
        by_owner: Option<&Principal>,
        peer: &str,
    ) -> Result<()> {
        let site = self.site(id).await?;
        let allowed = match (by_owner, by_client) {
            (Some(p), _) => p.identity.id == site.owner,
            (None, Some(c)) => self.authenticate_client(Some(c), peer).await?.id == id,
            (None, None) => false,
        };
        if !allowed {
            return Err(AuthError::Forbidden(
                "only the endpoint's owner or the endpoint itself may remove it".into(),
            ));
        }
        self.store.delete_site(id, self.now()).await?;
        self.store.delete_identity(id).await?;
        tracing::info!(endpoint = %id, "endpoint removed");
        Ok(())
    }

    /// `PUT /v2/ferry/endpoints/{id}/report`, with the endpoint's client credentials.
    pub async fn report_site(
        &self,
        caller: &SiteCaller,
        report: SiteReport,
    ) -> Result<ReportAccepted> {
        let id = caller.id;
        let display_name = check_name(&report.display_name)?;
        let public_url = check_public_url(&report.public_url)?;
        if report.collections.len() > MAX_REPORTED {
            return Err(AuthError::InvalidRequest(format!(
                "collections: at most {MAX_REPORTED} in one report"
            )));
        }
        let mut collections = Vec::with_capacity(report.collections.len());
        for c in report.collections {
            if !matches!(c.collection_type.as_str(), "mapped" | "guest") {
                return Err(AuthError::InvalidRequest(format!(
                    "collections: {}: collection_type must be mapped or guest",
                    c.id
                )));
            }
            // An id this hub serves itself, or the id of a client or person, is never an endpoint's to claim:
            // it would route others' requests, and let the endpoint introspect their tokens.
            if c.id == id
                || self.store.get_collection(c.id).await?.is_some()
                || self.store.get_identity(c.id).await?.is_some()
            {
                return Err(AuthError::Conflict(format!(
                    "collection {} is not this endpoint's to report",
                    c.id
                )));
            }
            collections.push(SiteCollection {
                id: c.id,
                site: id,
                display_name: check_name(&c.display_name)?,
                kind: c.collection_type,
            });
        }
        let version = self
            .store
            .report_site(id, &public_url, &display_name, &collections, self.now())
            .await?;
        Ok(ReportAccepted {
            data_type: REPORT_ACCEPTED_TYPE.into(),
            version,
        })
    }

    /// `POST /v2/ferry/endpoints/{id}/tasks/{task}/credential`, with the endpoint's client credentials: the
    /// credential with which the endpoint running `task` reads its source at the endpoint that holds it. Only
    /// for the endpoint the task was given to, while it runs; good for the task's source paths only, with the
    /// owner's groups as they are now.
    pub async fn credential_for_task(
        &self,
        caller: &SiteCaller,
        task: Uuid,
    ) -> Result<TaskCredential> {
        let (t, owner, groups) = self.running_at(caller, task).await?;
        let source = self
            .store
            .site_of(t.source_collection)
            .await?
            .ok_or_else(|| {
                AuthError::NotFound(format!(
                    "no endpoint holds collection {}",
                    t.source_collection
                ))
            })?;
        let paths = self
            .store
            .list_items(task, ItemState::Pending, Some(ItemKind::Path), 0, i64::MAX)
            .await?
            .into_iter()
            .map(|i| i.src)
            .collect();
        let credential = self
            .task_credential(source.id, &owner, &groups, task, t.source_collection, paths)
            .await?;
        let source_display_name = self
            .store
            .site_collection(t.source_collection)
            .await?
            .map(|c| c.display_name)
            .unwrap_or_default();
        Ok(TaskCredential {
            data_type: TASK_CREDENTIAL_TYPE.into(),
            credential,
            source_url: source.public_url,
            source_display_name,
            expires_at: self.now() + TASK_CREDENTIAL_SECS,
        })
    }

    /// `GET /v2/ferry/endpoints/{id}/tasks/{task}/owner`, with the endpoint's client credentials: the groups of
    /// the owner of a task the endpoint runs, as they are now (its access checks on its own side need them).
    pub async fn owner_of_task(&self, caller: &SiteCaller, task: Uuid) -> Result<TaskOwner> {
        let (_, owner, groups) = self.running_at(caller, task).await?;
        let linked = self
            .identity_set(&owner)
            .await?
            .into_iter()
            .map(|i| i.id)
            .filter(|id| *id != owner.id)
            .collect();
        Ok(TaskOwner {
            data_type: TASK_OWNER_TYPE.into(),
            id: owner.id,
            groups,
            linked,
        })
    }

    /// `GET /v2/ferry/endpoints/{id}/groups/{group}`, with the endpoint's client credentials: whether a group
    /// exists (a permission or role at the endpoint may name it). Says nothing else of the group.
    pub async fn group_for_site(&self, _caller: &SiteCaller, group: Uuid) -> Result<()> {
        match self.store.get_group(group).await? {
            Some(_) => Ok(()),
            None => Err(AuthError::NotFound(format!("no group {group}"))),
        }
    }

    /// Task `task` as endpoint `id` (calling with its credentials) runs it, with its owner and the owner's
    /// groups now: refused for a task of another endpoint, or one that ended.
    async fn running_at(
        &self,
        caller: &SiteCaller,
        task: Uuid,
    ) -> Result<(TaskRow, Identity, Vec<Uuid>)> {
        let id = caller.id;
        let not_yours = || AuthError::NotFound(format!("no task {task} runs at endpoint {id}"));
        let t = self.store.get_task(task).await?.ok_or_else(not_yours)?;
        if t.runner != Some(id) {
            return Err(not_yours());
        }
        if t.status.is_done() {
            return Err(AuthError::Forbidden(format!("task {task} has ended")));
        }
        let owner = self
            .store
            .get_identity(t.owner)
            .await?
            .ok_or_else(|| AuthError::Forbidden(format!("the owner of task {task} is gone")))?;
        // Active memberships only (an invitation not yet accepted gives nothing), of the owner's whole set.
        let groups = self.group_ids_of_set(&owner).await?;
        Ok((t, owner, groups))
    }

    /// The endpoint `id` of a request, calling with its own client credentials: what the calls only an endpoint
    /// makes (reports, task credentials, lookups) take.
    pub async fn authenticate_site(
        &self,
        creds: Option<&ClientCredentials>,
        peer: &str,
        id: Uuid,
    ) -> Result<SiteCaller> {
        let caller = self.authenticate_client(creds, peer).await?;
        if caller.id != id {
            return Err(AuthError::Forbidden(
                "an endpoint speaks only for itself".into(),
            ));
        }
        self.site(id).await?;
        Ok(SiteCaller { id })
    }

    /// The joined endpoint that holds a collection (or is the endpoint `id`), if any.
    pub async fn site_of(&self, id: Uuid) -> Result<Option<Site>> {
        Ok(self.store.site_of(id).await?)
    }

    /// The `Authorization` header value with which the hub passes a caller's request on to endpoint `site`.
    pub async fn vouch(
        &self,
        site: Uuid,
        identity: &Identity,
        groups: &[Uuid],
        auth_time: Option<i64>,
    ) -> Result<String> {
        self.statement(site, identity, groups, auth_time, Reading::Nothing)
            .await
    }

    /// [`Self::vouch`] for a task submission the hub passes on: the endpoint creates the task under `task`, the
    /// id of the hub's record of it.
    pub async fn vouch_for_task(
        &self,
        site: Uuid,
        identity: &Identity,
        groups: &[Uuid],
        auth_time: Option<i64>,
        task: Uuid,
    ) -> Result<String> {
        self.statement(site, identity, groups, auth_time, Reading::Task(task))
            .await
    }

    /// The credential with which one endpoint reads, for `task` and its owner, the files of `collection` under
    /// `paths` at endpoint `site`: good there only, for those paths only, for [`TASK_CREDENTIAL_SECS`].
    pub async fn task_credential(
        &self,
        site: Uuid,
        owner: &Identity,
        groups: &[Uuid],
        task: Uuid,
        collection: Uuid,
        paths: Vec<String>,
    ) -> Result<String> {
        self.statement(
            site,
            owner,
            groups,
            None,
            Reading::Paths(task, collection, paths),
        )
        .await
    }

    async fn statement(
        &self,
        site: Uuid,
        identity: &Identity,
        groups: &[Uuid],
        auth_time: Option<i64>,
        reading: Reading,
    ) -> Result<String> {
        // A passed-on request lives seconds; a task's reading credential as long as the task needs renewing it.
        let (purpose, lifetime) = match reading {
            Reading::Paths(..) => (PURPOSE_TASK_READ, TASK_CREDENTIAL_SECS),
            Reading::Task(_) | Reading::Nothing => (PURPOSE_TRANSFER, ASSERTION_SECS),
        };
        let now = self.now();
        // The caller's linked identities go with it: rules at the endpoint may name any of them.
        let linked = self
            .identity_set(identity)
            .await?
            .into_iter()
            .map(|i| i.id)
            .filter(|id| *id != identity.id)
            .collect();
        let (task, collection, paths) = match reading {
            Reading::Paths(t, c, p) => (Some(t), Some(c), Some(p)),
            Reading::Task(t) => (Some(t), None, None),
            Reading::Nothing => (None, None, None),
        };
        let claims = HubAssertion {
            iss: self.cfg.issuer.clone(),
            aud: site,
            purpose: purpose.into(),
            sub: identity.id,
            username: identity.username.clone(),
            name: identity.name.clone(),
            email: identity.email.clone(),
            organization: identity.organization.clone(),
            identity_type: identity.kind.as_str().into(),
            groups: groups.to_vec(),
            linked,
            auth_time,
            iat: now,
            exp: now + lifetime,
            task,
            collection,
            paths,
        };
        let value =
            serde_json::to_value(&claims).map_err(|e| AuthError::Internal(e.to_string()))?;
        Ok(format!(
            "{ASSERTION_SCHEME} {}",
            self.sign_document(&value)?
        ))
    }
}

/// A joined endpoint that proved who it is (see [`Auth::authenticate_site`]); only this module makes one.
pub struct SiteCaller {
    id: Uuid,
}

impl SiteCaller {
    pub fn id(&self) -> Uuid {
        self.id
    }
}

/// What a statement says of a task.
enum Reading {
    Nothing,
    /// A submission passed on: the id its task takes.
    Task(Uuid),
    /// A task credential: the task, its source collection and paths.
    Paths(Uuid, Uuid, Vec<String>),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn public_urls_are_checked() {
        assert_eq!(
            check_public_url("https://dtn.example.org:8443/").unwrap(),
            "https://dtn.example.org:8443"
        );
        assert!(check_public_url("ftp://x").is_err());
        assert!(check_public_url("https://x/?a=1").is_err());
        assert!(check_public_url("https://u@x/").is_err());
        assert!(check_public_url("not a url").is_err());
    }
}
