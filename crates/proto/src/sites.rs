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

/// A statement's purposes.
pub const PURPOSE_TRANSFER: &str = "transfer";
pub const PURPOSE_TASK_READ: &str = "task-read";

pub const REGISTRATION_TYPE: &str = "ferry_endpoint_registration";
pub const REPORT_ACCEPTED_TYPE: &str = "ferry_endpoint_report";
pub const SITE_TYPE: &str = "ferry_endpoint";
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
