//! The endpoint manager API (`/api`, the GCS manager API's shapes): every answer is a result envelope whose
//! `data` holds the documents; lists page with `page_size` / `marker` / `has_next_page`.

use std::collections::HashMap;

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::routing::{get, put};
use ferry_endpoint::{CollectionQuery, EndpointError, Requester};
use serde_json::{Value, json};
use uuid::Uuid;

use super::{AppState, parse_json, parse_params};
use crate::error::ManagerError;

type Answer = Result<Json<Value>, ManagerError>;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/info", get(info))
        .route(
            "/api/endpoint",
            get(endpoint_show)
                .put(endpoint_update)
                .patch(endpoint_update),
        )
        .route("/api/endpoint/owner", put(endpoint_owner))
        .route(
            "/api/storage_gateways",
            get(gateway_list).post(gateway_create),
        )
        .route(
            "/api/storage_gateways/{id}",
            get(gateway_show)
                .put(gateway_update)
                .patch(gateway_update)
                .delete(gateway_delete),
        )
        .route(
            "/api/collections",
            get(collection_list).post(collection_create),
        )
        .route(
            "/api/collections/{id}",
            get(collection_show)
                .put(collection_update)
                .patch(collection_update)
                .delete(collection_delete),
        )
        .route("/api/collections/{id}/owner", put(collection_owner))
        .route("/api/roles", get(role_list).post(role_create))
        .route("/api/roles/{id}", get(role_show).delete(role_delete))
        .route(
            "/api/sharing_policies",
            get(sharing_list).post(sharing_create),
        )
        .route(
            "/api/sharing_policies/{id}",
            get(sharing_show).delete(sharing_delete),
        )
        .route(
            "/api/user_credentials",
            get(credential_list).post(credential_create),
        )
        .route(
            "/api/user_credentials/{id}",
            get(credential_show)
                .put(credential_update)
                .patch(credential_update)
                .delete(credential_delete),
        )
}

/// Lists page 100 documents at a time unless the client asks otherwise.
const DEFAULT_PAGE: usize = 100;
const MAX_PAGE: usize = 1000;

/// The GCS result envelope. Every answer has a `message`: the Globus CLI prints it (and fails without it).
fn envelope(data: Vec<Value>) -> Json<Value> {
    Json(json!({
        "DATA_TYPE": "result#1.0.0",
        "http_response_code": 200,
        "code": "success",
        "detail": "success",
        "message": "Operation successful",
        "has_next_page": false,
        "data": data,
    }))
}

/// An envelope whose message says what was done (GCS's wording, e.g. "Deleted User Credential <id>").
fn said(Json(mut v): Json<Value>, message: String) -> Json<Value> {
    v["message"] = json!(message);
    Json(v)
}

fn one(doc: Value) -> Answer {
    Ok(envelope(vec![doc]))
}

fn done() -> Answer {
    Ok(envelope(vec![]))
}

/// A page of `docs`; the marker is the position of the next page's first document.
fn page(docs: Vec<Value>, q: &HashMap<String, String>) -> Answer {
    let size = match q.get("page_size") {
        None => DEFAULT_PAGE,
        Some(v) => v
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=MAX_PAGE).contains(n))
            .ok_or_else(|| {
                EndpointError::BadRequest(format!("page_size: must be 1 to {MAX_PAGE}"))
            })?,
    };
    let start = match q.get("marker") {
        None => 0,
        Some(m) => m
            .parse::<usize>()
            .ok()
            .filter(|n| *n <= docs.len())
            .ok_or_else(|| EndpointError::BadRequest("marker: not a marker of this list".into()))?,
    };
    let end = (start + size).min(docs.len());
    let more = end < docs.len();
    let Json(mut v) = envelope(docs[start..end].to_vec());
    v["has_next_page"] = json!(more);
    if more {
        v["marker"] = json!(end.to_string());
    }
    Ok(Json(v))
}

fn query(raw: Option<String>) -> Result<HashMap<String, String>, ManagerError> {
    Ok(parse_params(raw.as_deref().unwrap_or(""))?)
}

/// The comma-separated values of a parameter (`include`, `filter`).
fn list_param<'a>(q: &'a HashMap<String, String>, key: &str) -> Vec<&'a str> {
    q.get(key)
        .map(|v| {
            v.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .collect()
        })
        .unwrap_or_default()
}

fn uuid_param(field: &str, raw: &str) -> Result<Uuid, ManagerError> {
    Uuid::parse_str(raw)
        .map_err(|_| EndpointError::BadRequest(format!("{field}: {raw:?} is not an id")).into())
}

/// A path id: an id that is not a UUID names nothing.
fn path_id(what: &str, raw: &str) -> Result<Uuid, ManagerError> {
    Uuid::parse_str(raw).map_err(|_| EndpointError::NotFound(format!("no {what} {raw:?}")).into())
}

async fn caller(s: &AppState, headers: &HeaderMap) -> Result<Requester, ManagerError> {
    Ok(super::requester(s, headers, &s.endpoint.id().to_string()).await?)
}

fn body(raw: &Bytes) -> Result<Value, ManagerError> {
    Ok(parse_json::<Value>(raw)?)
}

async fn info(State(s): State<AppState>) -> Answer {
    Ok(envelope(s.endpoint.info()))
}

async fn endpoint_show(State(s): State<AppState>, headers: HeaderMap) -> Answer {
    caller(&s, &headers).await?;
    one(ferry_endpoint::docs::to_value(
        &s.endpoint.get_endpoint().await?,
    ))
}

/// PUT replaces the document, PATCH merges into it.
fn merges(method: &Method) -> bool {
    *method == Method::PATCH
}

async fn endpoint_update(
    State(s): State<AppState>,
    method: Method,
    headers: HeaderMap,
    raw: Bytes,
) -> Answer {
    let who = caller(&s, &headers).await?;
    let doc = s
        .endpoint
        .update_endpoint(&who, body(&raw)?, merges(&method))
        .await?;
    one(ferry_endpoint::docs::to_value(&doc))
}

/// The `identity_id` of an owner document (`endpoint_owner#1.0.0`, `collection_owner#1.0.0`).
fn owner_of(doc: &Value, family: &str) -> Result<Uuid, ManagerError> {
    ferry_endpoint::docs::check_data_type(doc, family)?;
    let raw = doc
        .get("identity_id")
        .and_then(Value::as_str)
        .ok_or_else(|| EndpointError::BadRequest("identity_id: required".into()))?;
    uuid_param("identity_id", raw)
}

async fn endpoint_owner(State(s): State<AppState>, headers: HeaderMap, raw: Bytes) -> Answer {
    let who = caller(&s, &headers).await?;
    let owner = owner_of(&body(&raw)?, "endpoint_owner")?;
    s.endpoint.set_owner(Some(&who), owner).await?;
    done()
}

async fn gateway_list(
    State(s): State<AppState>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> Answer {
    let who = caller(&s, &headers).await?;
    let q = query(q)?;
    let private = list_param(&q, "include").contains(&"private_policies");
    page(s.endpoint.list_gateways(&who, private).await?, &q)
}

async fn gateway_create(State(s): State<AppState>, headers: HeaderMap, raw: Bytes) -> Answer {
    let who = caller(&s, &headers).await?;
    one(s.endpoint.create_gateway(&who, body(&raw)?).await?)
}

async fn gateway_show(
    State(s): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
) -> Answer {
    let who = caller(&s, &headers).await?;
    let private = list_param(&query(q)?, "include").contains(&"private_policies");
    one(s
        .endpoint
        .get_gateway(&who, path_id("storage gateway", &id)?, private)
        .await?)
}

async fn gateway_update(
    State(s): State<AppState>,
    method: Method,
    headers: HeaderMap,
    Path(id): Path<String>,
    raw: Bytes,
) -> Answer {
    let merge = merges(&method);
    let who = caller(&s, &headers).await?;
    let id = path_id("storage gateway", &id)?;
    one(s
        .endpoint
        .update_gateway(&who, id, body(&raw)?, merge)
        .await?)
}

async fn gateway_delete(
    State(s): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Answer {
    let who = caller(&s, &headers).await?;
    s.endpoint
        .delete_gateway(&who, path_id("storage gateway", &id)?)
        .await?;
    done()
}

async fn collection_list(
    State(s): State<AppState>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> Answer {
    let who = caller(&s, &headers).await?;
    let q = query(q)?;
    let filters = list_param(&q, "filter");
    for f in &filters {
        if ![
            "mapped_collections",
            "guest_collections",
            "managed_by_me",
            "created_by_me",
        ]
        .contains(f)
        {
            return Err(EndpointError::BadRequest(format!("filter: unknown filter {f:?}")).into());
        }
    }
    let opt_id = |k: &str| q.get(k).map(|v| uuid_param(k, v)).transpose();
    let cq = CollectionQuery {
        mapped_collections: filters.contains(&"mapped_collections"),
        guest_collections: filters.contains(&"guest_collections"),
        managed_by_me: filters.contains(&"managed_by_me"),
        created_by_me: filters.contains(&"created_by_me"),
        mapped_collection_id: opt_id("mapped_collection_id")?,
        storage_gateway_id: opt_id("storage_gateway_id")?,
        include_private: list_param(&q, "include").contains(&"private_policies"),
    };
    page(s.endpoint.list_collections(&who, &cq).await?, &q)
}

async fn collection_create(State(s): State<AppState>, headers: HeaderMap, raw: Bytes) -> Answer {
    let who = caller(&s, &headers).await?;
    one(s.endpoint.create_collection(&who, body(&raw)?).await?)
}

async fn collection_show(
    State(s): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
) -> Answer {
    let who = caller(&s, &headers).await?;
    let private = list_param(&query(q)?, "include").contains(&"private_policies");
    one(s
        .endpoint
        .get_collection(&who, path_id("collection", &id)?, private)
        .await?)
}

async fn collection_update(
    State(s): State<AppState>,
    method: Method,
    headers: HeaderMap,
    Path(id): Path<String>,
    raw: Bytes,
) -> Answer {
    let merge = merges(&method);
    let who = caller(&s, &headers).await?;
    let id = path_id("collection", &id)?;
    one(s
        .endpoint
        .update_collection(&who, id, body(&raw)?, merge)
        .await?)
}

async fn collection_delete(
    State(s): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Answer {
    let who = caller(&s, &headers).await?;
    s.endpoint
        .delete_collection(&who, path_id("collection", &id)?)
        .await?;
    done()
}

async fn collection_owner(
    State(s): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    raw: Bytes,
) -> Answer {
    let who = caller(&s, &headers).await?;
    let owner = owner_of(&body(&raw)?, "collection_owner")?;
    s.endpoint
        .set_collection_owner(&who, path_id("collection", &id)?, owner)
        .await?;
    done()
}

async fn role_list(State(s): State<AppState>, headers: HeaderMap, RawQuery(q): RawQuery) -> Answer {
    let who = caller(&s, &headers).await?;
    let q = query(q)?;
    let collection = q
        .get("collection_id")
        .map(|v| uuid_param("collection_id", v))
        .transpose()?;
    let all = list_param(&q, "include").contains(&"all_roles");
    page(s.endpoint.list_roles(&who, collection, all).await?, &q)
}

async fn role_create(State(s): State<AppState>, headers: HeaderMap, raw: Bytes) -> Answer {
    let who = caller(&s, &headers).await?;
    one(s.endpoint.create_role(&who, body(&raw)?).await?)
}

async fn role_show(
    State(s): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Answer {
    let who = caller(&s, &headers).await?;
    one(s.endpoint.get_role(&who, path_id("role", &id)?).await?)
}

async fn role_delete(
    State(s): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Answer {
    let who = caller(&s, &headers).await?;
    s.endpoint.delete_role(&who, path_id("role", &id)?).await?;
    done()
}

async fn sharing_list(
    State(s): State<AppState>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> Answer {
    let who = caller(&s, &headers).await?;
    let q = query(q)?;
    let collection = q
        .get("collection_id")
        .ok_or_else(|| EndpointError::BadRequest("collection_id: required".into()))?;
    let collection = uuid_param("collection_id", collection)?;
    page(
        s.endpoint
            .list_sharing_policies(&who, collection, q.get("username").map(String::as_str))
            .await?,
        &q,
    )
}

async fn sharing_create(State(s): State<AppState>, headers: HeaderMap, raw: Bytes) -> Answer {
    let who = caller(&s, &headers).await?;
    one(s.endpoint.create_sharing_policy(&who, body(&raw)?).await?)
}

async fn sharing_show(
    State(s): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Answer {
    let who = caller(&s, &headers).await?;
    one(s
        .endpoint
        .get_sharing_policy(&who, path_id("sharing policy", &id)?)
        .await?)
}

async fn sharing_delete(
    State(s): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Answer {
    let who = caller(&s, &headers).await?;
    s.endpoint
        .delete_sharing_policy(&who, path_id("sharing policy", &id)?)
        .await?;
    done()
}

async fn credential_list(
    State(s): State<AppState>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> Answer {
    let who = caller(&s, &headers).await?;
    let q = query(q)?;
    let gateway = q
        .get("storage_gateway")
        .or_else(|| q.get("storage_gateway_id"))
        .map(|v| uuid_param("storage_gateway", v))
        .transpose()?;
    let all = list_param(&q, "include").contains(&"all");
    page(
        s.endpoint.list_user_credentials(&who, gateway, all).await?,
        &q,
    )
}

/// `201 created`, as GCS answers a new credential.
async fn credential_create(
    State(s): State<AppState>,
    headers: HeaderMap,
    raw: Bytes,
) -> Result<(StatusCode, Json<Value>), ManagerError> {
    let who = caller(&s, &headers).await?;
    let doc = s.endpoint.create_user_credential(&who, body(&raw)?).await?;
    let id = doc["id"].as_str().unwrap_or_default().to_string();
    let Json(mut v) = said(envelope(vec![doc]), format!("Created User Credential {id}"));
    v["http_response_code"] = json!(201);
    v["detail"] = json!("created");
    Ok((StatusCode::CREATED, Json(v)))
}

async fn credential_show(
    State(s): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Answer {
    let who = caller(&s, &headers).await?;
    one(s
        .endpoint
        .get_user_credential(&who, path_id("user credential", &id)?)
        .await?)
}

async fn credential_update(
    State(s): State<AppState>,
    method: Method,
    headers: HeaderMap,
    Path(id): Path<String>,
    raw: Bytes,
) -> Answer {
    let merge = merges(&method);
    let who = caller(&s, &headers).await?;
    let id = path_id("user credential", &id)?;
    let doc = s
        .endpoint
        .update_user_credential(&who, id, body(&raw)?, merge)
        .await?;
    Ok(said(
        envelope(vec![doc]),
        format!("Updated User Credential {id}"),
    ))
}

async fn credential_delete(
    State(s): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Answer {
    let who = caller(&s, &headers).await?;
    let id = path_id("user credential", &id)?;
    s.endpoint.delete_user_credential(&who, id).await?;
    Ok(said(
        envelope(vec![]),
        format!("Deleted User Credential {id}"),
    ))
}
