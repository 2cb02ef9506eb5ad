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

/// The claims of the statement a hub signs (RS256, its `id_token` key) when it passes a caller's request on to
/// an endpoint: who the caller is and which groups they are in, for this endpoint only, for a minute.
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
}

pub const REGISTRATION_TYPE: &str = "ferry_endpoint_registration";
pub const REPORT_ACCEPTED_TYPE: &str = "ferry_endpoint_report";
pub const SITE_TYPE: &str = "ferry_endpoint";
/// The `Authorization` scheme of a hub's statement.
pub const ASSERTION_SCHEME: &str = "Ferry-Hub";
