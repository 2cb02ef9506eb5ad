//! Sharing: permissions (`access_list`, `access` CRUD), e-mail invitations (a Ferry extension), and roles.

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::routing::{get, post};
use serde_json::{Value, json};

use super::{Op, list};
use crate::error::TransferError;
use crate::routes::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v0.10/endpoint/{id}/access_list", get(access_list))
        .route("/v0.10/endpoint/{id}/access", post(create_access))
        .route(
            "/v0.10/endpoint/{id}/access/{rule}",
            get(show_access).put(update_access).delete(delete_access),
        )
        .route("/v0.10/endpoint/{id}/invitation_list", get(invitations))
        .route("/v0.10/invitation/redeem", post(redeem))
        .route("/v0.10/endpoint/{id}/role_list", get(role_list))
        .route("/v0.10/endpoint/{id}/role", post(create_role))
        .route(
            "/v0.10/endpoint/{id}/role/{role}",
            get(show_role).delete(delete_role),
        )
}

async fn access_list(
    State(s): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<Value>, TransferError> {
    let op = Op::at(format!("/endpoint/{id}/access_list"));
    let (who, id) = op.start(&s, &headers, &id).await?;
    let docs = s
        .endpoint
        .access_list(&who, id)
        .await
        .map_err(op.endpoint())?;
    Ok(list("access_list", docs, json!({"endpoint": id})))
}

async fn create_access(
    State(s): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    raw: Bytes,
) -> Result<Json<Value>, TransferError> {
    let op = Op::at(format!("/endpoint/{id}/access"));
    let (who, id) = op.start(&s, &headers, &id).await?;
    let body = op.body(&raw)?;
    let rule = s
        .endpoint
        .create_access(&who, id, body)
        .await
        .map_err(op.endpoint())?;
    let mut doc = op.result_doc(
        "access_create_result",
        "Created",
        "Access rule created successfully.",
    );
    doc["access_id"] = json!(rule);
    Ok(Json(doc))
}

async fn show_access(
    State(s): State<AppState>,
    headers: HeaderMap,
    Path((id, rule)): Path<(String, String)>,
) -> Result<Json<Value>, TransferError> {
    let op = Op::at(format!("/endpoint/{id}/access/{rule}"));
    let (who, id) = op.start(&s, &headers, &id).await?;
    let rule = op.id("access rule", &rule)?;
    Ok(Json(
        s.endpoint
            .get_access(&who, id, rule)
            .await
            .map_err(op.endpoint())?,
    ))
}

async fn update_access(
    State(s): State<AppState>,
    headers: HeaderMap,
    Path((id, rule)): Path<(String, String)>,
    raw: Bytes,
) -> Result<Json<Value>, TransferError> {
    let op = Op::at(format!("/endpoint/{id}/access/{rule}"));
    let (who, id) = op.start(&s, &headers, &id).await?;
    let rule = op.id("access rule", &rule)?;
    let body = op.body(&raw)?;
    s.endpoint
        .update_access(&who, id, rule, body)
        .await
        .map_err(op.endpoint())?;
    Ok(op.result("result", "Updated", "Access rule updated successfully"))
}

async fn delete_access(
    State(s): State<AppState>,
    headers: HeaderMap,
    Path((id, rule)): Path<(String, String)>,
) -> Result<Json<Value>, TransferError> {
    let op = Op::at(format!("/endpoint/{id}/access/{rule}"));
    let (who, id) = op.start(&s, &headers, &id).await?;
    let rule = op.id("access rule", &rule)?;
    s.endpoint
        .delete_access(&who, id, rule)
        .await
        .map_err(op.endpoint())?;
    Ok(op.result("result", "Deleted", "Access rule deleted successfully"))
}

async fn invitations(
    State(s): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<Value>, TransferError> {
    let op = Op::at(format!("/endpoint/{id}/invitation_list"));
    let (who, id) = op.start(&s, &headers, &id).await?;
    let docs = s
        .endpoint
        .invitations(&who, id)
        .await
        .map_err(op.endpoint())?;
    Ok(list("invitation_list", docs, json!({"endpoint": id})))
}

async fn redeem(
    State(s): State<AppState>,
    headers: HeaderMap,
    raw: Bytes,
) -> Result<Json<Value>, TransferError> {
    let op = Op::at("/invitation/redeem");
    let who = op.caller(&s, &headers).await?;
    let body = op.body(&raw)?;
    let code = body["code"].as_str().ok_or_else(|| {
        op.endpoint()(ferry_endpoint::EndpointError::BadRequest(
            "code: required (the code from the invitation e-mail)".into(),
        ))
    })?;
    Ok(Json(
        s.endpoint
            .redeem_invitation(&who, code)
            .await
            .map_err(op.endpoint())?,
    ))
}

async fn role_list(
    State(s): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<Value>, TransferError> {
    let op = Op::at(format!("/endpoint/{id}/role_list"));
    let (who, id) = op.start(&s, &headers, &id).await?;
    let docs = s
        .endpoint
        .transfer_roles(&who, id)
        .await
        .map_err(op.endpoint())?;
    Ok(list("role_list", docs, json!({})))
}

async fn create_role(
    State(s): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    raw: Bytes,
) -> Result<Json<Value>, TransferError> {
    let op = Op::at(format!("/endpoint/{id}/role"));
    let (who, id) = op.start(&s, &headers, &id).await?;
    let body = op.body(&raw)?;
    Ok(Json(
        s.endpoint
            .create_transfer_role(&who, id, body)
            .await
            .map_err(op.endpoint())?,
    ))
}

async fn show_role(
    State(s): State<AppState>,
    headers: HeaderMap,
    Path((id, role)): Path<(String, String)>,
) -> Result<Json<Value>, TransferError> {
    let op = Op::at(format!("/endpoint/{id}/role/{role}"));
    let (who, id) = op.start(&s, &headers, &id).await?;
    let role = op.id("role", &role)?;
    Ok(Json(
        s.endpoint
            .get_transfer_role(&who, id, role)
            .await
            .map_err(op.endpoint())?,
    ))
}

async fn delete_role(
    State(s): State<AppState>,
    headers: HeaderMap,
    Path((id, role)): Path<(String, String)>,
) -> Result<Json<Value>, TransferError> {
    let op = Op::at(format!("/endpoint/{id}/role/{role}"));
    let (who, id) = op.start(&s, &headers, &id).await?;
    let role = op.id("role", &role)?;
    s.endpoint
        .delete_transfer_role(&who, id, role)
        .await
        .map_err(op.endpoint())?;
    Ok(op.result("result", "Deleted", "Role deleted successfully"))
}
