//! An endpoint's side of its hub (`--role endpoint`; `shared/design/sites.md`): the credentials `ferry endpoint
//! setup` stored, bearer tokens checked by introspection at the hub (answers kept for a bounded time), the
//! hub's signed statements about callers it passes on, and the reports of which collections this endpoint
//! holds.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ferry_auth::AuthError;
use ferry_core::access::SignedIn;
use ferry_core::{Identity, IdentityKind, SharedClock};
use ferry_endpoint::Requester;
use ferry_proto::sites::{
    ASSERTION_SCHEME, HubAssertion, PURPOSE_TASK_READ, PURPOSE_TRANSFER, ReportAccepted,
    ReportedCollection, ReportedItems, ReportedTask, SiteReport, TaskCredential, TaskOwner,
    TaskReport, TaskReportAccepted,
};
use ferry_store::Store;
use ferry_store::tasks::{ItemCounts, TaskRow};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use crate::ServerError;

/// The file in the data directory that makes a data directory an endpoint of a hub.
pub const SITE_FILE: &str = "endpoint.json";
/// Tokens whose answers are kept at once; beyond it, expired answers go, then all.
const MAX_CACHED: usize = 50_000;
/// How long the hub's signing keys are kept before they are fetched again.
const KEYS_SECS: i64 = 600;
/// A refused signature fetches the keys again (they may have rotated), at most this often.
const KEYS_REFETCH_SECS: i64 = 30;
/// Clock difference between hub and endpoint that a statement's times may show.
const SKEW_SECS: i64 = 60;

/// The person who set the endpoint up: its first owner and administrator.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SiteOwner {
    pub id: Uuid,
    pub username: String,
    pub name: String,
    pub email: Option<String>,
}

/// What `ferry endpoint setup` stores (0600): who this endpoint is at which hub.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SiteFile {
    pub hub_url: String,
    pub endpoint_id: Uuid,
    pub client_secret: String,
    pub public_url: String,
    pub display_name: String,
    pub owner: SiteOwner,
    /// A CA certificate to trust for the hub (a hub that generated its own certificate).
    #[serde(default)]
    pub hub_ca_file: Option<PathBuf>,
}

impl SiteFile {
    pub fn path(data_dir: &Path) -> PathBuf {
        data_dir.join(SITE_FILE)
    }

    /// The stored file, or None when this data directory never joined a hub.
    pub fn load(data_dir: &Path) -> Result<Option<Self>, String> {
        let path = Self::path(data_dir);
        match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|e| format!("{} is not a valid endpoint file: {e}", path.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(format!("cannot read {}: {e}", path.display())),
        }
    }

    pub fn save(&self, data_dir: &Path) -> std::io::Result<()> {
        let bytes = serde_json::to_vec_pretty(self).map_err(std::io::Error::other)?;
        crate::bootstrap::write_private(&Self::path(data_dir), &bytes)
    }

    pub fn owner_identity(&self, now: i64) -> Identity {
        Identity {
            id: self.owner.id,
            username: self.owner.username.clone(),
            name: self.owner.name.clone(),
            email: self.owner.email.clone(),
            organization: None,
            kind: IdentityKind::Person,
            created: now,
            identity_provider: None,
        }
    }
}

/// An HTTP client for the hub: its own CA when given, no proxy (the hub is named by the administrator), no
/// redirects (a credential must go only where it was meant to).
pub fn hub_http(ca_file: Option<&Path>) -> Result<reqwest::Client, String> {
    let mut b = reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(Duration::from_secs(10))
        .timeout(Duration::from_secs(30));
    if let Some(ca) = ca_file {
        let pem = std::fs::read(ca).map_err(|e| format!("cannot read {}: {e}", ca.display()))?;
        let cert = reqwest::Certificate::from_pem(&pem)
            .map_err(|e| format!("{} is not a PEM certificate: {e}", ca.display()))?;
        b = b.add_root_certificate(cert);
    }
    b.build().map_err(|e| e.to_string())
}

/// Who the hub said a token belongs to.
#[derive(Debug, Clone)]
struct Vouched {
    identity: Identity,
    groups: Vec<Uuid>,
    /// The other identities of the caller's set (ids only: rules and roles name identities by id).
    linked: Vec<Uuid>,
    /// When the caller signed in (the latest authentication of the token's session).
    auth_time: Option<i64>,
    /// The resource servers the token is good for.
    audiences: Vec<String>,
}

struct Cached {
    /// None: the hub said the token is not active.
    answer: Option<Vouched>,
    until: i64,
}

pub struct HubLink {
    /// The endpoint's own token for looking identities up at the hub, and when it expires.
    service_token: tokio::sync::Mutex<Option<(String, i64)>>,
    file: SiteFile,
    http: reqwest::Client,
    clock: SharedClock,
    cache_secs: i64,
    tokens: Mutex<HashMap<[u8; 32], Cached>>,
    /// The hub's JWKS and when it was fetched.
    keys: tokio::sync::Mutex<Option<(Value, i64)>>,
}

/// A request to the hub whose JSON answer is wanted: any failure on the way is the hub being unreachable for
/// `what`.
trait AskHub {
    async fn ask(self, what: &str) -> Result<Value, AuthError>;
}

impl AskHub for reqwest::RequestBuilder {
    async fn ask(self, what: &str) -> Result<Value, AuthError> {
        self.send()
            .await
            .map_err(|e| unreachable(what, e))?
            .error_for_status()
            .map_err(|e| unreachable(what, e))?
            .json()
            .await
            .map_err(|e| unreachable(what, e))
    }
}

fn unreachable(what: &str, e: impl std::fmt::Display) -> AuthError {
    tracing::warn!(error = %e, "{what}");
    AuthError::Unavailable(format!(
        "the hub this endpoint relies on cannot be reached ({what}); try again shortly"
    ))
}

impl HubLink {
    pub fn open(file: SiteFile, clock: SharedClock, cache_secs: i64) -> Result<Self, ServerError> {
        let http = hub_http(file.hub_ca_file.as_deref()).map_err(ServerError::Tls)?;
        Ok(Self {
            service_token: tokio::sync::Mutex::new(None),
            file,
            http,
            clock,
            cache_secs,
            tokens: Mutex::new(HashMap::new()),
            keys: tokio::sync::Mutex::new(None),
        })
    }

    pub fn file(&self) -> &SiteFile {
        &self.file
    }

    fn hub(&self, path: &str) -> String {
        format!("{}{path}", self.file.hub_url.trim_end_matches('/'))
    }

    /// The caller behind a bearer token presented for `resource_server` (this endpoint or one of its
    /// collections), as the hub says; the identity is kept in this endpoint's store for names and mapping.
    pub async fn requester(
        &self,
        store: &Arc<dyn Store>,
        token: &str,
        resource_server: &str,
    ) -> Result<Requester, AuthError> {
        let vouched = self
            .introspect(token)
            .await?
            .filter(|v| v.audiences.iter().any(|a| a == resource_server))
            .ok_or(AuthError::Unauthenticated)?;
        store.mirror_identity(&vouched.identity).await?;
        let linked = vouched
            .linked
            .iter()
            .copied()
            .map(Identity::known_by_id)
            .collect();
        Ok(Requester {
            identity: vouched.identity,
            groups: vouched.groups,
            linked,
            signed_in: SignedIn::NoSession,
        }
        .signed_in_at(vouched.auth_time))
    }

    async fn introspect(&self, token: &str) -> Result<Option<Vouched>, AuthError> {
        let key = *blake3::hash(token.as_bytes()).as_bytes();
        let now = self.clock.now();
        if let Some(c) = self.lock().get(&key).filter(|c| c.until > now) {
            return Ok(c.answer.clone());
        }
        let reply: Value = self
            .http
            .post(self.hub("/v2/oauth2/token/introspect"))
            .basic_auth(self.file.endpoint_id, Some(&self.file.client_secret))
            .form(&[
                ("token", token),
                ("include", "identity_set,session_info,ferry_groups"),
            ])
            .ask("introspection")
            .await?;
        let answer = vouched(&reply, now);
        // Kept for the bound, never past the token's own expiry.
        let until = answer
            .as_ref()
            .and_then(|_| reply["exp"].as_i64())
            .map_or(now + self.cache_secs, |exp| exp.min(now + self.cache_secs));
        let mut cache = self.lock();
        if cache.len() >= MAX_CACHED {
            cache.retain(|_, c| c.until > now);
            if cache.len() >= MAX_CACHED {
                cache.clear();
            }
        }
        cache.insert(
            key,
            Cached {
                answer: answer.clone(),
                until,
            },
        );
        Ok(answer)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<[u8; 32], Cached>> {
        self.tokens.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The caller the hub vouches for in `header` (an `Authorization: Ferry-Hub <jws>` value) when it passes a
    /// Transfer request on.
    pub async fn vouched_caller(
        &self,
        store: &Arc<dyn Store>,
        header: &str,
    ) -> Result<Requester, AuthError> {
        let a = self.statement(header).await?;
        if a.purpose != PURPOSE_TRANSFER {
            return Err(AuthError::Unauthenticated);
        }
        self.requester_of(store, a).await
    }

    /// The task owner on whose behalf another endpoint reads canonical `path` of `collection` with the task
    /// credential in `header`: refused for another collection, a path outside the credential's, or any other
    /// purpose.
    pub async fn task_reader(
        &self,
        store: &Arc<dyn Store>,
        header: &str,
        collection: Uuid,
        path: &str,
    ) -> Result<Requester, AuthError> {
        let (who, reading) = self.task_reading(store, header, collection).await?;
        if !reading.covers(path) {
            tracing::debug!(task = ?reading.task, %collection, path, "task credential refused for this path");
            return Err(AuthError::Unauthenticated);
        }
        Ok(who)
    }

    /// The task owner and the task credential in `header`, good for reading `collection` here: each path read
    /// with it must be one the credential [`HubAssertion::covers`].
    pub async fn task_reading(
        &self,
        store: &Arc<dyn Store>,
        header: &str,
        collection: Uuid,
    ) -> Result<(Requester, HubAssertion), AuthError> {
        let a = self.statement(header).await?;
        if a.purpose != PURPOSE_TASK_READ || a.collection != Some(collection) {
            tracing::debug!(task = ?a.task, %collection, "task credential refused for this collection");
            return Err(AuthError::Unauthenticated);
        }
        let who = self.requester_of(store, a.clone()).await?;
        Ok((who, a))
    }

    /// The caller of a task submission the hub passes on, and the id the hub gave the task.
    pub async fn vouched_submission(
        &self,
        store: &Arc<dyn Store>,
        header: &str,
    ) -> Result<(Requester, Uuid), AuthError> {
        let a = self.statement(header).await?;
        let task = match (a.purpose.as_str(), a.task) {
            (PURPOSE_TRANSFER, Some(task)) => task,
            _ => return Err(AuthError::Unauthenticated),
        };
        Ok((self.requester_of(store, a).await?, task))
    }

    /// A statement signed by the hub's key, for this endpoint, not expired.
    async fn statement(&self, header: &str) -> Result<HubAssertion, AuthError> {
        let jws = header
            .strip_prefix(ASSERTION_SCHEME)
            .and_then(|r| r.strip_prefix(' '))
            .ok_or(AuthError::Unauthenticated)?
            .trim();
        let claims = match ferry_auth::verify_jws(&self.hub_keys(false).await?, jws) {
            Ok(c) => c,
            Err(AuthError::Unauthenticated) => {
                ferry_auth::verify_jws(&self.hub_keys(true).await?, jws)?
            }
            Err(e) => return Err(e),
        };
        let a: HubAssertion =
            serde_json::from_value(claims).map_err(|_| AuthError::Unauthenticated)?;
        let now = self.clock.now();
        if a.iss.trim_end_matches('/') != self.file.hub_url.trim_end_matches('/')
            || a.aud != self.file.endpoint_id
            || a.exp <= now
            || a.iat > now + SKEW_SECS
        {
            return Err(AuthError::Unauthenticated);
        }
        Ok(a)
    }

    async fn requester_of(
        &self,
        store: &Arc<dyn Store>,
        a: HubAssertion,
    ) -> Result<Requester, AuthError> {
        let identity = Identity {
            id: a.sub,
            username: a.username,
            name: a.name,
            email: a.email,
            organization: a.organization,
            kind: IdentityKind::parse(&a.identity_type).unwrap_or(IdentityKind::Person),
            created: self.clock.now(),
            identity_provider: None,
        };
        store.mirror_identity(&identity).await?;
        // A task's reading is the owner's, checked at submission; a passed-on request is the caller's now.
        let signed_in = match (a.purpose.as_str(), a.auth_time) {
            (PURPOSE_TASK_READ, _) => SignedIn::TaskOfOwner,
            (_, Some(t)) => SignedIn::At(t),
            (_, None) => SignedIn::NoSession,
        };
        Ok(Requester {
            identity,
            groups: a.groups,
            linked: a.linked.into_iter().map(Identity::known_by_id).collect(),
            signed_in,
        })
    }

    /// The hub's signing keys; `again`: the cached ones refused a signature, fetch anew (rate-limited).
    async fn hub_keys(&self, again: bool) -> Result<Value, AuthError> {
        let now = self.clock.now();
        let mut keys = self.keys.lock().await;
        if let Some((k, at)) = keys.as_ref() {
            let fresh = now - at < KEYS_SECS;
            if fresh && (!again || now - at < KEYS_REFETCH_SECS) {
                return Ok(k.clone());
            }
        }
        let fetched: Value = self
            .http
            .get(self.hub("/jwk.json"))
            .ask("signing keys")
            .await?;
        *keys = Some((fetched.clone(), now));
        Ok(fetched)
    }

    /// Tells the hub which collections this endpoint holds now; returns the hub's report version.
    pub async fn report(&self, store: &Arc<dyn Store>) -> Result<i64, AuthError> {
        let collections = store
            .list_collections(&Default::default())
            .await?
            .into_iter()
            .map(|c| ReportedCollection {
                id: c.id,
                display_name: c.display_name,
                collection_type: c.collection_type.as_str().to_string(),
            })
            .collect();
        let report = SiteReport {
            public_url: self.file.public_url.clone(),
            display_name: self.file.display_name.clone(),
            collections,
        };
        let answer = self
            .http
            .put(self.hub(&format!(
                "/v2/ferry/endpoints/{}/report",
                self.file.endpoint_id
            )))
            .basic_auth(self.file.endpoint_id, Some(&self.file.client_secret))
            .json(&report)
            .send()
            .await
            .map_err(|e| unreachable("report", e))?;
        let status = answer.status();
        if !status.is_success() {
            let body = answer.text().await.unwrap_or_default();
            return Err(AuthError::Unavailable(format!(
                "the hub refused this endpoint's report ({status}): {body}"
            )));
        }
        let accepted: ReportAccepted = answer
            .json()
            .await
            .map_err(|e| unreachable("report answer", e))?;
        Ok(accepted.version)
    }

    /// Reports at once, then whenever the store's configuration changes (by this process or an admin command
    /// on the same database), and every `interval` in any case.
    pub fn spawn_reporter(
        self: Arc<Self>,
        store: Arc<dyn Store>,
        interval: Duration,
    ) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            let mut reported: Option<i64> = None;
            let mut last = tokio::time::Instant::now();
            loop {
                let generation = store.policy_generation().await.ok();
                let due = last.elapsed() >= interval;
                if reported.is_none() || generation != reported || due {
                    match self.report(&store).await {
                        Ok(version) => {
                            tracing::debug!(version, "collections reported to the hub");
                            reported = generation;
                            last = tokio::time::Instant::now();
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, "cannot report to the hub; trying again");
                            reported = None;
                        }
                    }
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        })
    }
}

/// How often an endpoint tells the hub where the tasks it runs for it stand.
const TASK_REPORT_EVERY: Duration = Duration::from_millis(500);
/// Tasks in one report.
const TASK_REPORT_BATCH: i64 = 500;

impl HubLink {
    /// The credential with which this endpoint reads the source of task `task` at the endpoint holding it.
    pub async fn task_credential(&self, task: Uuid) -> Result<TaskCredential, AuthError> {
        self.about_task(reqwest::Method::POST, task, "credential")
            .await
    }

    /// The owner of task `task` and the owner's groups now.
    pub async fn task_owner(&self, task: Uuid) -> Result<TaskOwner, AuthError> {
        self.about_task(reqwest::Method::GET, task, "owner").await
    }

    /// Asks the hub `what` about a task this endpoint runs: the hub's refusal keeps its meaning (no such task
    /// here: NotFound; ended: Forbidden), anything else is the hub being unreachable.
    async fn about_task<T: serde::de::DeserializeOwned>(
        &self,
        method: reqwest::Method,
        task: Uuid,
        what: &str,
    ) -> Result<T, AuthError> {
        let path = format!(
            "/v2/ferry/endpoints/{}/tasks/{task}/{what}",
            self.file.endpoint_id
        );
        let answer = self
            .http
            .request(method, self.hub(&path))
            .basic_auth(self.file.endpoint_id, Some(&self.file.client_secret))
            .send()
            .await
            .map_err(|e| unreachable(what, e))?;
        let status = answer.status();
        if !status.is_success() {
            let body: Value = answer.json().await.unwrap_or_default();
            let message = body["errors"][0]["detail"]
                .as_str()
                .or(body["error_description"].as_str())
                .unwrap_or("refused")
                .to_string();
            return Err(match status.as_u16() {
                404 => AuthError::NotFound(message),
                403 => AuthError::Forbidden(message),
                _ => unreachable(what, format!("{status}: {message}")),
            });
        }
        answer.json().await.map_err(|e| unreachable(what, e))
    }

    /// Tells the hub where the tasks it gave this endpoint stand; returns the hub's answer.
    async fn report_tasks(
        &self,
        tasks: &[(TaskRow, ItemCounts)],
    ) -> Result<TaskReportAccepted, AuthError> {
        let report = TaskReport {
            tasks: tasks
                .iter()
                .map(|(t, i)| {
                    let c = &t.counters;
                    ReportedTask {
                        id: t.id,
                        status: t.status.as_str().into(),
                        nice_status: t.nice_status.clone(),
                        nice_status_details: t.nice_status_details.clone(),
                        fatal_error: t.fatal_error.clone(),
                        completion_time: t.completion_time,
                        label: t.label.clone(),
                        deadline: t.deadline,
                        files: c.files,
                        directories: c.directories,
                        symlinks: c.symlinks,
                        files_skipped: c.files_skipped,
                        files_transferred: c.files_transferred,
                        bytes_transferred: c.bytes_transferred,
                        bytes_checksummed: c.bytes_checksummed,
                        faults: c.faults,
                        active_secs: c.active_secs,
                        items: ReportedItems {
                            total: i.total,
                            pending: i.pending,
                            retrying: i.retrying,
                            done: i.done,
                            skipped: i.skipped,
                            failed: i.failed,
                        },
                    }
                })
                .collect(),
        };
        let reply = self
            .http
            .put(self.hub(&format!(
                "/v2/ferry/endpoints/{}/tasks",
                self.file.endpoint_id
            )))
            .basic_auth(self.file.endpoint_id, Some(&self.file.client_secret))
            .json(&report)
            .ask("task report")
            .await?;
        serde_json::from_value(reply).map_err(|e| unreachable("task report answer", e))
    }

    /// Reports the tasks the hub gave this endpoint, twice a second while any has news, until the hub has
    /// taken each one's end; a task the hub has no record of is stopped.
    pub fn spawn_task_reporter(
        self: Arc<Self>,
        store: Arc<dyn Store>,
        engine: ferry_transfer::Engine,
    ) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(TASK_REPORT_EVERY).await;
                let due = match store.tasks_to_report(TASK_REPORT_BATCH).await {
                    Ok(due) if !due.is_empty() => due,
                    Ok(_) => continue,
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot read the tasks to report");
                        continue;
                    }
                };
                let mut counted = Vec::with_capacity(due.len());
                for t in due {
                    let items = store.count_items(t.id).await.unwrap_or_default();
                    counted.push((t, items));
                }
                let answer = match self.report_tasks(&counted).await {
                    Ok(a) => a,
                    Err(e) => {
                        tracing::debug!(error = %e, "task report not delivered; trying again");
                        continue;
                    }
                };
                for id in &answer.unknown {
                    tracing::warn!(task = %id, "the hub has no record of this task; stopping it");
                    if let Err(e) = engine
                        .stop(*id, "CANCELED", "The hub has no record of this task")
                        .await
                    {
                        tracing::warn!(task = %id, error = %e, "cannot stop the task");
                    }
                }
                let done: Vec<Uuid> = answer.recorded.into_iter().chain(answer.unknown).collect();
                if let Err(e) = store.reports_acknowledged(&done).await {
                    tracing::warn!(error = %e, "cannot record the hub's acknowledgement");
                }
            }
        })
    }

    /// The endpoint's own token at the hub (client credentials), renewed a minute before it expires.
    async fn service_token(&self) -> Result<String, AuthError> {
        let now = self.clock.now();
        let mut held = self.service_token.lock().await;
        if let Some((t, until)) = held.as_ref()
            && *until > now + 60
        {
            return Ok(t.clone());
        }
        let reply: Value = self
            .http
            .post(self.hub("/v2/oauth2/token"))
            .basic_auth(self.file.endpoint_id, Some(&self.file.client_secret))
            .form(&[
                ("grant_type", "client_credentials"),
                ("scope", ferry_auth::sites::VIEW_IDENTITIES),
            ])
            .ask("token")
            .await?;
        let token = reply["access_token"]
            .as_str()
            .ok_or_else(|| unreachable("token answer", "no access_token"))?
            .to_string();
        let until = now + reply["expires_in"].as_i64().unwrap_or(0);
        *held = Some((token.clone(), until));
        Ok(token)
    }
}

#[async_trait::async_trait]
impl ferry_endpoint::IdentityDirectory for HubLink {
    async fn group_exists(&self, id: Uuid) -> ferry_endpoint::Result<bool> {
        let path = format!("/v2/ferry/endpoints/{}/groups/{id}", self.file.endpoint_id);
        let unavailable = |e: String| {
            ferry_endpoint::EndpointError::Unavailable(unreachable("group lookup", e).to_string())
        };
        let answer = self
            .http
            .get(self.hub(&path))
            .basic_auth(self.file.endpoint_id, Some(&self.file.client_secret))
            .send()
            .await
            .map_err(|e| unavailable(e.to_string()))?;
        match answer.status().as_u16() {
            200 => Ok(true),
            404 => Ok(false),
            s => Err(unavailable(format!("status {s}"))),
        }
    }

    async fn identity(&self, id: Uuid) -> ferry_endpoint::Result<Option<Identity>> {
        let lookup = async {
            let token = self.service_token().await?;
            let reply: Value = self
                .http
                .get(self.hub("/v2/api/identities"))
                .query(&[("ids", id.to_string())])
                .bearer_auth(token)
                .ask("identity lookup")
                .await?;
            Ok::<_, AuthError>(reply)
        };
        let reply = lookup
            .await
            .map_err(|e| ferry_endpoint::EndpointError::Unavailable(e.to_string()))?;
        let Some(doc) = reply["identities"]
            .as_array()
            .and_then(|l| l.iter().find(|d| d["id"] == id.to_string()))
        else {
            return Ok(None);
        };
        let Some(username) = doc["username"].as_str() else {
            return Ok(None);
        };
        Ok(Some(Identity {
            id,
            username: username.to_string(),
            name: doc["name"].as_str().unwrap_or_default().to_string(),
            email: doc["email"].as_str().map(str::to_string),
            organization: doc["organization"].as_str().map(str::to_string),
            kind: if username.contains("@clients.") {
                IdentityKind::Client
            } else {
                IdentityKind::Person
            },
            created: self.clock.now(),
            identity_provider: None,
        }))
    }
}

/// The caller an introspection answer describes, if the token is active.
fn vouched(reply: &Value, now: i64) -> Option<Vouched> {
    if reply["active"] != true {
        return None;
    }
    let id = Uuid::parse_str(reply["sub"].as_str()?).ok()?;
    let is_client = reply["client_id"].as_str() == Some(id.to_string().as_str());
    let audiences = reply["aud"]
        .as_array()?
        .iter()
        .filter_map(|a| a.as_str().map(str::to_string))
        .collect();
    let groups = reply["ferry_groups"]
        .as_array()
        .map(|g| {
            g.iter()
                .filter_map(|v| v.as_str().and_then(|s| Uuid::parse_str(s).ok()))
                .collect()
        })
        .unwrap_or_default();
    let linked = reply["identity_set"]
        .as_array()
        .map(|set| {
            set.iter()
                .filter_map(|v| v.as_str().and_then(|s| Uuid::parse_str(s).ok()))
                .filter(|other| *other != id)
                .collect()
        })
        .unwrap_or_default();
    let auth_time = reply["session_info"]["authentications"]
        .as_object()
        .and_then(|a| a.values().filter_map(|v| v["auth_time"].as_i64()).max());
    Some(Vouched {
        linked,
        auth_time,
        identity: Identity {
            id,
            username: reply["username"].as_str()?.to_string(),
            name: reply["name"].as_str().unwrap_or_default().to_string(),
            email: reply["email"].as_str().map(str::to_string),
            organization: None,
            kind: if is_client {
                IdentityKind::Client
            } else {
                IdentityKind::Person
            },
            created: now,
            identity_provider: None,
        },
        groups,
        audiences,
    })
}
