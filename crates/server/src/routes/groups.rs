//! Globus Groups (`/v2/groups`).

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::HeaderMap;
use axum::routing::{get, post};
use ferry_auth::AuthError;
use ferry_core::Identity;
use ferry_core::scope::GROUPS_RS;
use ferry_proto::groups::{GroupDoc, GroupPoliciesDoc};
use serde_json::Value;
use uuid::Uuid;

use super::{AppState, parse_json, parse_params, principal};
use crate::error::GroupsError;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v2/groups", post(create))
        .route("/v2/groups/my_groups", get(my_groups))
        .route(
            "/v2/groups/{id}",
            get(show).put(update).delete(delete).post(batch),
        )
        .route("/v2/groups/{id}/policies", get(policies).put(set_policies))
}

async fn caller(s: &AppState, headers: &HeaderMap) -> Result<Identity, GroupsError> {
    Ok(principal(s, headers, GROUPS_RS).await?.identity)
}

fn group_id(raw: &str) -> Result<Uuid, GroupsError> {
    Uuid::parse_str(raw).map_err(|_| AuthError::NotFound(format!("no group '{raw}'")).into())
}

async fn create(
    State(s): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<GroupDoc>, GroupsError> {
    let me = caller(&s, &headers).await?;
    Ok(Json(s.auth.create_group(&me, parse_json(&body)?).await?))
}

async fn my_groups(
    State(s): State<AppState>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> Result<Json<Vec<GroupDoc>>, GroupsError> {
    let me = caller(&s, &headers).await?;
    let q = parse_params(q.as_deref().unwrap_or(""))?;
    Ok(Json(
        s.auth
            .my_groups(&me, q.get("statuses").map(String::as_str))
            .await?,
    ))
}

async fn show(
    State(s): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
) -> Result<Json<GroupDoc>, GroupsError> {
    let me = caller(&s, &headers).await?;
    let q = parse_params(q.as_deref().unwrap_or(""))?;
    let include = q.get("include").map(String::as_str).unwrap_or("");
    Ok(Json(s.auth.get_group(&me, group_id(&id)?, include).await?))
}

async fn update(
    State(s): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<GroupDoc>, GroupsError> {
    let me = caller(&s, &headers).await?;
    Ok(Json(
        s.auth
            .update_group(&me, group_id(&id)?, parse_json(&body)?)
            .await?,
    ))
}

async fn delete(
    State(s): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<GroupDoc>, GroupsError> {
    let me = caller(&s, &headers).await?;
    Ok(Json(s.auth.delete_group(&me, group_id(&id)?).await?))
}

async fn batch(
    State(s): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<Value>, GroupsError> {
    let me = caller(&s, &headers).await?;
    let body: Value = parse_json(&body)?;
    Ok(Json(s.auth.group_batch(&me, group_id(&id)?, &body).await?))
}

async fn policies(
    State(s): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<Value>, GroupsError> {
    let me = caller(&s, &headers).await?;
    Ok(Json(s.auth.get_group_policies(&me, group_id(&id)?).await?))
}

async fn set_policies(
    State(s): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<Value>, GroupsError> {
    let me = caller(&s, &headers).await?;
    let p: GroupPoliciesDoc = parse_json(&body)?;
    Ok(Json(
        s.auth.set_group_policies(&me, group_id(&id)?, p).await?,
    ))
}
