//! Bookmarks: `bookmark_list` and `bookmark` CRUD, each a person's own.

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::routing::get;
use serde_json::{Value, json};

use super::{Op, list};
use crate::error::TransferError;
use crate::routes::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v0.10/bookmark_list", get(list_bookmarks))
        .route("/v0.10/bookmark", axum::routing::post(create))
        .route("/v0.10/bookmark/{id}", get(show).put(update).delete(remove))
}

async fn list_bookmarks(
    State(s): State<AppState>,
    headers: HeaderMap,
) -> Result<Json<Value>, TransferError> {
    let op = Op::at("/bookmark_list");
    let who = op.caller(&s, &headers).await?;
    let docs = s.endpoint.bookmarks(&who).await.map_err(op.endpoint())?;
    Ok(list("bookmark_list", docs, json!({})))
}

async fn create(
    State(s): State<AppState>,
    headers: HeaderMap,
    raw: Bytes,
) -> Result<Json<Value>, TransferError> {
    let op = Op::at("/bookmark");
    let who = op.caller(&s, &headers).await?;
    let body = op.body(&raw)?;
    Ok(Json(
        s.endpoint
            .create_bookmark(&who, body)
            .await
            .map_err(op.endpoint())?,
    ))
}

async fn show(
    State(s): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<Value>, TransferError> {
    let op = Op::at(format!("/bookmark/{id}"));
    let who = op.caller(&s, &headers).await?;
    let id = op.id("bookmark", &id)?;
    Ok(Json(
        s.endpoint
            .get_bookmark(&who, id)
            .await
            .map_err(op.endpoint())?,
    ))
}

async fn update(
    State(s): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    raw: Bytes,
) -> Result<Json<Value>, TransferError> {
    let op = Op::at(format!("/bookmark/{id}"));
    let who = op.caller(&s, &headers).await?;
    let id = op.id("bookmark", &id)?;
    let body = op.body(&raw)?;
    Ok(Json(
        s.endpoint
            .update_bookmark(&who, id, body)
            .await
            .map_err(op.endpoint())?,
    ))
}

async fn remove(
    State(s): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<Value>, TransferError> {
    let op = Op::at(format!("/bookmark/{id}"));
    let who = op.caller(&s, &headers).await?;
    let id = op.id("bookmark", &id)?;
    s.endpoint
        .delete_bookmark(&who, id)
        .await
        .map_err(op.endpoint())?;
    Ok(op.result("result", "Deleted", "Bookmark deleted successfully"))
}
