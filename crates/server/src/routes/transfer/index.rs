//! The collection index: search, show, update, delete, guest collections of a mapped collection, guest creation
//! by host path, servers.

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::HeaderMap;
use axum::routing::{get, post};
use ferry_endpoint::SearchQuery;
use serde_json::{Value, json};

use super::{Op, first, list, params};
use crate::error::TransferError;
use crate::routes::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v0.10/endpoint_search", get(search))
        .route("/v0.10/endpoint/{id}", get(show).put(update).delete(remove))
        .route(
            "/v0.10/endpoint/{id}/my_shared_endpoint_list",
            get(my_shared),
        )
        .route("/v0.10/endpoint/{id}/shared_endpoint_list", get(shared))
        .route("/v0.10/endpoint/{id}/server_list", get(servers))
        .route(
            "/v0.10/endpoint/{id}/my_effective_pause_rule_list",
            get(pause_rules),
        )
        .route("/v0.10/shared_endpoint", post(create_shared))
}

async fn search(
    State(s): State<AppState>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> Result<Json<Value>, TransferError> {
    let op = Op::at("/endpoint_search");
    let who = op.caller(&s, &headers).await?;
    let p = params(q.as_deref());
    let get = |k: &str| first(&p, k).map(str::to_string);
    let query = SearchQuery {
        fulltext: get("filter_fulltext"),
        scope: get("filter_scope"),
        owner_id: get("filter_owner_id"),
        host_endpoint: get("filter_host_endpoint"),
        entity_type: get("filter_entity_type"),
        non_functional: get("filter_non_functional"),
        limit: get("limit"),
        offset: get("offset"),
    };
    let (mut hits, limit, offset) = s
        .endpoint
        .search_hits(&who, &query)
        .await
        .map_err(op.endpoint())?;
    if s.role.serves_hub() {
        hits.extend(
            super::forward::search_sites(&s, &who, q.as_deref().unwrap_or(""), offset + limit)
                .await,
        );
        ferry_endpoint::index::sort_hits(&mut hits);
    }
    let page = ferry_endpoint::index::page_of(hits, limit, offset);
    Ok(list(
        "endpoint_list",
        page.docs,
        json!({"limit": page.limit, "offset": page.offset, "has_next_page": page.has_next_page}),
    ))
}

async fn show(
    State(s): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<Value>, TransferError> {
    let op = Op::at(format!("/endpoint/{id}"));
    let (who, id) = op.start(&s, &headers, &id).await?;
    Ok(Json(
        s.endpoint.entity(&who, id).await.map_err(op.endpoint())?,
    ))
}

async fn update(
    State(s): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    raw: Bytes,
) -> Result<Json<Value>, TransferError> {
    let op = Op::at(format!("/endpoint/{id}"));
    let (who, id) = op.start(&s, &headers, &id).await?;
    let body = op.body(&raw)?;
    s.endpoint
        .update_entity(&who, id, body)
        .await
        .map_err(op.endpoint())?;
    Ok(op.result("result", "Updated", "Endpoint updated successfully"))
}

async fn remove(
    State(s): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<Value>, TransferError> {
    let op = Op::at(format!("/endpoint/{id}"));
    let (who, id) = op.start(&s, &headers, &id).await?;
    s.endpoint
        .delete_entity(&who, id)
        .await
        .map_err(op.endpoint())?;
    Ok(op.result("result", "Deleted", "Endpoint deleted successfully"))
}

async fn my_shared(
    State(s): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<Value>, TransferError> {
    let op = Op::at(format!("/endpoint/{id}/my_shared_endpoint_list"));
    let (who, id) = op.start(&s, &headers, &id).await?;
    let docs = s
        .endpoint
        .my_guest_collections(&who, id)
        .await
        .map_err(op.endpoint())?;
    Ok(list("endpoint_list", docs, json!({})))
}

/// Paged by `next_token`; Ferry answers with every guest collection at once.
async fn shared(
    State(s): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<Value>, TransferError> {
    let op = Op::at(format!("/endpoint/{id}/shared_endpoint_list"));
    let (who, id) = op.start(&s, &headers, &id).await?;
    let docs = s
        .endpoint
        .guest_collections(&who, id)
        .await
        .map_err(op.endpoint())?;
    Ok(Json(json!({
        "DATA_TYPE": "shared_endpoint_list",
        "shared_endpoints": docs,
        "next_token": null,
    })))
}

async fn servers(
    State(s): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<Value>, TransferError> {
    let op = Op::at(format!("/endpoint/{id}/server_list"));
    let (who, id) = op.start(&s, &headers, &id).await?;
    Ok(Json(
        s.endpoint.servers(&who, id).await.map_err(op.endpoint())?,
    ))
}

/// Ferry has no pause rules; the list exists so that clients asking for it get an answer.
async fn pause_rules(
    State(s): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<Value>, TransferError> {
    let op = Op::at(format!("/endpoint/{id}/my_effective_pause_rule_list"));
    let (who, id) = op.start(&s, &headers, &id).await?;
    s.endpoint.entity(&who, id).await.map_err(op.endpoint())?;
    Ok(list("pause_rule_list", vec![], json!({})))
}

async fn create_shared(
    State(s): State<AppState>,
    headers: HeaderMap,
    raw: Bytes,
) -> Result<Json<Value>, TransferError> {
    let op = Op::at("/shared_endpoint");
    let who = op.caller(&s, &headers).await?;
    let body = op.body(&raw)?;
    let id = s
        .endpoint
        .create_shared_endpoint(&who, body)
        .await
        .map_err(op.endpoint())?;
    let mut doc = op.result_doc(
        "endpoint_create_result",
        "Created",
        "Shared endpoint created",
    );
    doc["id"] = json!(id);
    Ok(Json(doc))
}
