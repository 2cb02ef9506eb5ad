//! The hub's endpoint registry (`/v2/ferry/endpoints`): a person registers an endpoint (`ferry endpoint
//! setup`), the endpoint reports its collections with its own credentials, the owner or the endpoint removes
//! it. Ferry's own routes, beside Globus Auth's.

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, put};
use ferry_auth::sites::SiteCaller;
use ferry_auth::{AuthError, ClientCredentials};
use ferry_core::scope::AUTH_RS;
use ferry_proto::sites::{EndpointRegistration, SiteReport, TaskReport};
use uuid::Uuid;

use super::{AppState, Peer, authorization, parse_json, principal};
use crate::error::AuthApiError;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v2/ferry/endpoints", get(list).post(register))
        .route("/v2/ferry/endpoints/{id}", get(show).delete(remove))
        .route("/v2/ferry/endpoints/{id}/report", put(report))
        .route("/v2/ferry/endpoints/{id}/tasks", put(report_tasks))
        .route(
            "/v2/ferry/endpoints/{id}/tasks/{task}/credential",
            axum::routing::post(task_credential),
        )
        .route(
            "/v2/ferry/endpoints/{id}/tasks/{task}/owner",
            get(task_owner),
        )
        .route("/v2/ferry/endpoints/{id}/groups/{group}", get(group))
}

type Answer = Result<Response, AuthApiError>;

fn endpoint_id(raw: &str) -> Result<Uuid, AuthError> {
    Uuid::parse_str(raw).map_err(|_| AuthError::NotFound(format!("no endpoint {raw:?}")))
}

/// Client credentials in the Authorization header (HTTP Basic), if that is what the caller sent.
fn basic(headers: &HeaderMap) -> Result<Option<ClientCredentials>, AuthError> {
    match authorization(headers) {
        Some(h) if h.starts_with("Basic ") => {
            ClientCredentials::from_request(Some(h), &Default::default())
        }
        _ => Ok(None),
    }
}

async fn register(State(s): State<AppState>, headers: HeaderMap, body: Bytes) -> Answer {
    let who = principal(&s, &headers, AUTH_RS).await?;
    let request: EndpointRegistration = parse_json(&body)?;
    let created = s.auth.register_site(&who, request).await?;
    Ok((StatusCode::CREATED, Json(created)).into_response())
}

async fn list(State(s): State<AppState>, headers: HeaderMap) -> Answer {
    principal(&s, &headers, AUTH_RS).await?;
    Ok(Json(serde_json::json!({"endpoints": s.auth.list_sites().await?})).into_response())
}

async fn show(State(s): State<AppState>, headers: HeaderMap, Path(id): Path<String>) -> Answer {
    principal(&s, &headers, AUTH_RS).await?;
    Ok(Json(s.auth.show_site(endpoint_id(&id)?).await?).into_response())
}

async fn remove(
    State(s): State<AppState>,
    Peer(peer): Peer,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Answer {
    let id = endpoint_id(&id)?;
    let creds = basic(&headers)?;
    let owner = match creds {
        Some(_) => None,
        None => Some(principal(&s, &headers, AUTH_RS).await?),
    };
    s.auth
        .delete_site(id, creds.as_ref(), owner.as_ref(), &peer)
        .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// The endpoint `{id}` of the path, calling with its own client credentials (HTTP Basic).
async fn site_caller(
    s: &AppState,
    peer: &str,
    headers: &HeaderMap,
    id: &str,
) -> Result<SiteCaller, AuthError> {
    let id = endpoint_id(id)?;
    let creds = basic(headers)?.ok_or(AuthError::InvalidClient)?;
    s.auth.authenticate_site(Some(&creds), peer, id).await
}

async fn report(
    State(s): State<AppState>,
    Peer(peer): Peer,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> Answer {
    let caller = site_caller(&s, &peer, &headers, &id).await?;
    let report: SiteReport = parse_json(&body)?;
    Ok(Json(s.auth.report_site(&caller, report).await?).into_response())
}

async fn report_tasks(
    State(s): State<AppState>,
    Peer(peer): Peer,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> Answer {
    let caller = site_caller(&s, &peer, &headers, &id).await?;
    let report: TaskReport = parse_json(&body)?;
    let accepted = s
        .transfer
        .take_reports(caller.id(), report)
        .await
        .map_err(|e| match e {
            ferry_transfer::TransferError::BadRequest { message, .. } => {
                AuthError::InvalidRequest(message)
            }
            e => AuthError::Internal(e.to_string()),
        })?;
    Ok(Json(accepted).into_response())
}

/// A task's id from the path.
fn task_id(raw: &str) -> Result<Uuid, AuthError> {
    Uuid::parse_str(raw).map_err(|_| AuthError::NotFound(format!("no task {raw:?}")))
}

async fn task_credential(
    State(s): State<AppState>,
    Peer(peer): Peer,
    headers: HeaderMap,
    Path((id, task)): Path<(String, String)>,
) -> Answer {
    let caller = site_caller(&s, &peer, &headers, &id).await?;
    Ok(Json(s.auth.credential_for_task(&caller, task_id(&task)?).await?).into_response())
}

async fn task_owner(
    State(s): State<AppState>,
    Peer(peer): Peer,
    headers: HeaderMap,
    Path((id, task)): Path<(String, String)>,
) -> Answer {
    let caller = site_caller(&s, &peer, &headers, &id).await?;
    Ok(Json(s.auth.owner_of_task(&caller, task_id(&task)?).await?).into_response())
}

async fn group(
    State(s): State<AppState>,
    Peer(peer): Peer,
    headers: HeaderMap,
    Path((id, group)): Path<(String, String)>,
) -> Answer {
    let caller = site_caller(&s, &peer, &headers, &id).await?;
    let group =
        Uuid::parse_str(&group).map_err(|_| AuthError::NotFound(format!("no group {group:?}")))?;
    s.auth.group_for_site(&caller, group).await?;
    Ok(Json(serde_json::json!({"id": group})).into_response())
}
