//! The hub↔endpoint protocol: how an endpoint joins a hub, reports its collections, and how the hub vouches
//! for a caller when it passes a Transfer request on to the endpoint that holds the collection. These are
//! Ferry's own documents (Globus keeps the same exchanges private); their `DATA_TYPE`s say so.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// `POST /v2/ferry/endpoints`, with a person's Auth token: register an endpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EndpointRegistration {
    pub display_name: String,
    /// Where the endpoint will serve `/api` and `/data` (`https://dtn.example.org:8443`).
    pub public_url: String,
}

/// The answer to a registration: the endpoint's identity at the hub. The secret is shown once.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RegisteredEndpoint {
    #[serde(rename = "DATA_TYPE")]
    pub data_type: String,
    /// The endpoint's id, which is also its client id.
    pub endpoint_id: Uuid,
    pub client_secret: String,
    /// The hub's issuer URL: the one authorisation server the endpoint trusts.
    pub hub_url: String,
}

/// One collection in a report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReportedCollection {
    pub id: Uuid,
    pub display_name: String,
    /// `mapped` or `guest`.
    pub collection_type: String,
}

/// `PUT /v2/ferry/endpoints/{id}/report`, with the endpoint's own client credentials: what it holds now.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SiteReport {
    pub public_url: String,
    pub display_name: String,
    pub collections: Vec<ReportedCollection>,
}

/// The hub's answer to a report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReportAccepted {
    #[serde(rename = "DATA_TYPE")]
    pub data_type: String,
    /// How many reports the hub has taken from this endpoint.
    pub version: i64,
}

/// An endpoint as the hub knows it (`GET /v2/ferry/endpoints[/{id}]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SiteDoc {
    #[serde(rename = "DATA_TYPE")]
    pub data_type: String,
    pub id: Uuid,
    pub display_name: String,
    pub public_url: String,
    pub owner_id: Uuid,
    pub version: i64,
    /// Unix seconds of the last report; None before the first.
    pub reported_at: Option<i64>,
    pub collections: Vec<ReportedCollection>,
}

/// The claims of a statement a hub signs (RS256, its `id_token` key) for one endpoint: who the caller is and
/// which groups they are in, and what the statement is good for. `transfer`: a Transfer request the hub passes
/// on (a minute). `task-read`: another endpoint reading, for task `task`, the files of `collection` under
/// `paths` (a few minutes; renewed by the hub while the task runs).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HubAssertion {
    /// The hub's issuer URL.
    pub iss: String,
    /// The endpoint the statement is for.
    pub aud: Uuid,
    /// What the statement is good for: `transfer` (a Transfer request passed on).
    pub purpose: String,
    pub sub: Uuid,
    pub username: String,
    pub name: String,
    pub email: Option<String>,
    pub organization: Option<String>,
    /// `person` or `client`.
    pub identity_type: String,
    /// The groups the caller is an active member of.
    pub groups: Vec<Uuid>,
    /// The other identities linked with the caller's.
    #[serde(default)]
    pub linked: Vec<Uuid>,
    /// When the caller signed in (the session its token descends from), for policies asking for a recent one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_time: Option<i64>,
    pub iat: i64,
    pub exp: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task: Option<Uuid>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub collection: Option<Uuid>,
    /// Canonical collection paths; a path is covered when it is one of them or lies below one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paths: Option<Vec<String>>,
}

impl HubAssertion {
    /// Whether canonical `path` is one of the statement's paths or lies below one.
    pub fn covers(&self, path: &str) -> bool {
        self.paths.as_deref().unwrap_or_default().iter().any(|p| {
            let p = p.trim_end_matches('/');
            p.is_empty() || path == p || path.strip_prefix(p).is_some_and(|r| r.starts_with('/'))
        })
    }
}

/// One task the hub gave an endpoint, as that endpoint reports it: where it stands and what it counted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReportedTask {
    pub id: Uuid,
    /// `ACTIVE`, `INACTIVE`, `SUCCEEDED` or `FAILED`.
    pub status: String,
    pub nice_status: Option<String>,
    pub nice_status_details: Option<String>,
    /// `{code, description}` once FAILED.
    pub fatal_error: Option<serde_json::Value>,
    pub completion_time: Option<i64>,
    pub label: Option<String>,
    pub deadline: Option<i64>,
    pub files: i64,
    pub directories: i64,
    pub symlinks: i64,
    pub files_skipped: i64,
    pub files_transferred: i64,
    pub bytes_transferred: i64,
    pub bytes_checksummed: i64,
    pub faults: i64,
    pub active_secs: f64,
    /// Its files and folders by state (the task document's `subtasks_*`).
    pub items: ReportedItems,
}

/// A task's files and folders by state.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ReportedItems {
    pub total: i64,
    pub pending: i64,
    /// Pending after at least one fault.
    pub retrying: i64,
    pub done: i64,
    pub skipped: i64,
    pub failed: i64,
}

/// `PUT /v2/ferry/endpoints/{id}/tasks`, with the endpoint's client credentials: the tasks it runs for the hub.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TaskReport {
    pub tasks: Vec<ReportedTask>,
}

/// The hub's answer: the tasks whose report it took (an ended one need not be reported again).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskReportAccepted {
    #[serde(rename = "DATA_TYPE")]
    pub data_type: String,
    pub recorded: Vec<Uuid>,
    /// Tasks the hub has no record of for this endpoint: the endpoint stops them.
    #[serde(default)]
    pub unknown: Vec<Uuid>,
}

/// `POST /v2/ferry/endpoints/{id}/tasks/{task}/credential`, with the endpoint's client credentials: what the
/// endpoint that runs a task shows the endpoint holding its source.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskCredential {
    #[serde(rename = "DATA_TYPE")]
    pub data_type: String,
    /// An `Authorization` header value (`Ferry-Hub <statement>`) good at the source endpoint, for the task's
    /// source collection and paths, until `expires_at`.
    pub credential: String,
    /// Where the source endpoint serves (`https://dtn.example.org:8443`).
    pub source_url: String,
    /// The source collection's name, for the task's documents.
    pub source_display_name: String,
    pub expires_at: i64,
}

/// `GET /v2/ferry/endpoints/{id}/tasks/{task}/owner`, with the endpoint's client credentials: the owner of a task
/// the endpoint runs, and the owner's groups now.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskOwner {
    #[serde(rename = "DATA_TYPE")]
    pub data_type: String,
    pub id: Uuid,
    /// The groups any identity of the owner's set is an active member of.
    pub groups: Vec<Uuid>,
    /// The other identities linked with the owner's: rules and roles naming them are the owner's too.
    #[serde(default)]
    pub linked: Vec<Uuid>,
}

/// A file or folder as the source endpoint tells the endpoint that reads it for a task.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PulledEntry {
    pub name: String,
    /// `file`, `dir`, `symlink` or `other`.
    #[serde(rename = "type")]
    pub kind: String,
    pub size: u64,
    pub mtime: i64,
    pub mode: u32,
    pub user: String,
    pub group: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link_target: Option<String>,
}

/// `GET /site/pull/{collection}/list?path=…`: a folder's entries, one of these per line (JSON lines) as the
/// folder is read; the last line has `end` (or a `failure`), so that a cut answer is never taken for a whole.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PulledListing {
    #[serde(default)]
    pub entries: Vec<PulledEntry>,
    #[serde(default)]
    pub unrepresentable: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<PullFailure>,
    #[serde(default)]
    pub end: bool,
}

/// Why the source endpoint did not give what was asked: `kind` is one of the [`pull_failure`] names.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PullFailure {
    pub kind: String,
    /// The path in the collection, where the failure has one.
    pub path: String,
    pub message: String,
}

/// The kinds of [`PullFailure`].
pub mod pull_failure {
    pub const NOT_FOUND: &str = "not_found";
    pub const NOT_A_DIRECTORY: &str = "not_a_directory";
    pub const IS_A_DIRECTORY: &str = "is_a_directory";
    /// The task owner may not read it, or a symbolic link is in the way.
    pub const REFUSED: &str = "refused";
    pub const OTHER: &str = "other";
}

/// `POST /site/pull/{collection}/files`: whole files of one folder in one answer. The answer is, per name in
/// order, a 4-byte big-endian length, that many bytes of JSON [`PulledFile`], and then its `len` bytes of data.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PullFiles {
    pub dir: String,
    pub names: Vec<String>,
    /// Files larger than this come without data.
    pub max: u64,
}

/// One file of a [`PullFiles`] answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PulledFile {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entry: Option<PulledEntry>,
    /// The bytes that follow; None when the file is larger than asked (or failed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub len: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<PullFailure>,
}

/// Most names in one [`PullFiles`].
pub const PULL_FILES_MAX: usize = 1024;

/// A statement's purposes.
pub const PURPOSE_TRANSFER: &str = "transfer";
pub const PURPOSE_TASK_READ: &str = "task-read";

pub const REGISTRATION_TYPE: &str = "ferry_endpoint_registration";
pub const REPORT_ACCEPTED_TYPE: &str = "ferry_endpoint_report";
pub const SITE_TYPE: &str = "ferry_endpoint";
pub const TASK_REPORT_ACCEPTED_TYPE: &str = "ferry_task_report";
pub const TASK_CREDENTIAL_TYPE: &str = "ferry_task_credential";
pub const TASK_OWNER_TYPE: &str = "ferry_task_owner";
/// The `Authorization` scheme of a hub's statement.
pub const ASSERTION_SCHEME: &str = "Ferry-Hub";

#[cfg(test)]
mod tests {
    use super::*;

    fn with_paths(paths: &[&str]) -> HubAssertion {
        HubAssertion {
            iss: String::new(),
            aud: Uuid::nil(),
            purpose: PURPOSE_TASK_READ.into(),
            sub: Uuid::nil(),
            username: String::new(),
            name: String::new(),
            email: None,
            organization: None,
            identity_type: "person".into(),
            groups: vec![],
            linked: vec![],
            auth_time: None,
            iat: 0,
            exp: 0,
            task: None,
            collection: None,
            paths: Some(paths.iter().map(|p| p.to_string()).collect()),
        }
    }

    #[test]
    fn paths_cover_themselves_and_what_is_below() {
        let a = with_paths(&["/runs/42", "/one.txt"]);
        assert!(a.covers("/runs/42"));
        assert!(a.covers("/runs/42/x/y.h5"));
        assert!(a.covers("/one.txt"));
        assert!(!a.covers("/runs/421"));
        assert!(!a.covers("/runs"));
        assert!(!a.covers("/one.txt.bak"));
        assert!(with_paths(&["/"]).covers("/anything"));
        assert!(!with_paths(&[]).covers("/"));
    }
}
