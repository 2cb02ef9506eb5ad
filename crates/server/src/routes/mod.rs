//! One module per API. Handlers parse the request, call the domain, and map the outcome; nothing else.

pub mod account;
pub mod app;
pub mod auth;
pub mod data;
pub mod groups;
pub mod invitation;
pub mod manager;
pub mod ops;
pub mod pull;
pub mod sites;
pub mod transfer;
pub mod uploads;
pub mod upstream;
pub mod web;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{HeaderMap, header};
use ferry_auth::{Auth, AuthError, Principal};
use ferry_endpoint::Endpoint;
use serde::de::DeserializeOwned;

#[derive(Clone)]
pub struct AppState {
    pub auth: Arc<Auth>,
    pub endpoint: Arc<Endpoint>,
    pub transfer: ferry_transfer::Engine,
    /// Browser cookies get `Secure` when the server is reached over https.
    pub secure_cookies: bool,
    /// An endpoint's hub (`--role endpoint`): tokens are the hub's to vouch for.
    pub hub: Option<Arc<crate::site::HubLink>>,
    pub role: crate::Role,
    /// How a hub reaches its endpoints.
    pub sites_http: reqwest::Client,
    /// The metrics, when `[metrics] enabled`.
    pub metrics: Option<Arc<crate::ops::Metrics>>,
}

/// The caller's address, used to key the brute-force limiter.
pub struct Peer(pub String);

impl<S: Send + Sync> FromRequestParts<S> for Peer {
    type Rejection = std::convert::Infallible;
    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Peer(
            parts
                .extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map(|c| c.0.ip().to_string())
                .unwrap_or_else(|| "unknown".into()),
        ))
    }
}

/// Parses a query string. A parameter given twice is refused (RFC 6749 §3.1).
pub fn parse_params(raw: &str) -> Result<HashMap<String, String>, AuthError> {
    let mut out = HashMap::new();
    for (k, v) in url::form_urlencoded::parse(raw.as_bytes()) {
        if out.insert(k.to_string(), v.into_owned()).is_some() {
            return Err(AuthError::InvalidRequest(format!(
                "the '{k}' parameter is given more than once"
            )));
        }
    }
    Ok(out)
}

/// Parses an `application/x-www-form-urlencoded` body.
pub fn parse_form(headers: &HeaderMap, body: &[u8]) -> Result<HashMap<String, String>, AuthError> {
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !ct.starts_with("application/x-www-form-urlencoded") {
        return Err(AuthError::InvalidRequest(
            "the body must be application/x-www-form-urlencoded".into(),
        ));
    }
    let text = std::str::from_utf8(body)
        .map_err(|_| AuthError::InvalidRequest("the form is not valid UTF-8".into()))?;
    parse_params(text)
}

/// Parses a JSON body into `T`, naming what is wrong when it does not fit.
pub fn parse_json<T: DeserializeOwned>(body: &[u8]) -> Result<T, AuthError> {
    if body.is_empty() {
        return Err(AuthError::InvalidRequest(
            "the request needs a JSON body".into(),
        ));
    }
    serde_json::from_slice(body)
        .map_err(|e| AuthError::InvalidRequest(format!("invalid JSON body: {e}")))
}

/// The bearer token of the request. Tokens in the URL are never looked at.
pub fn bearer(headers: &HeaderMap) -> Result<&str, AuthError> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or(AuthError::Unauthenticated)
}

pub async fn principal(
    state: &AppState,
    headers: &HeaderMap,
    resource_server: &str,
) -> Result<Principal, AuthError> {
    state
        .auth
        .authenticate_bearer(bearer(headers)?, resource_server)
        .await
}

/// The caller behind a bearer token for `resource_server`, with their groups: asked of the hub on an
/// endpoint, looked up in this process's own Auth otherwise.
pub async fn requester(
    state: &AppState,
    headers: &HeaderMap,
    resource_server: &str,
) -> Result<ferry_endpoint::Requester, AuthError> {
    let token = bearer(headers)?;
    if let Some(hub) = &state.hub {
        return hub
            .requester(state.auth.store(), token, resource_server)
            .await;
    }
    let p = state
        .auth
        .authenticate_bearer(token, resource_server)
        .await?;
    state
        .endpoint
        .requester(p.identity)
        .await
        .map(|r| r.signed_in_at(p.auth_time))
        .map_err(|e| AuthError::Internal(e.to_string()))
}

pub fn authorization(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
}
