//! Synchronous file operations on a collection: `ls`, `stat`, `mkdir`, `rename`, each through the one access
//! check.

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::HeaderMap;
use axum::routing::{get, post};
use ferry_endpoint::EndpointError;
use ferry_endpoint::listing::{ListQuery, Listed};
use ferry_storage::Entry;
use serde::Deserialize;
use serde_json::{Value, json};

use super::{Op, first, params};
use crate::error::{TransferError, TransferOp};
use crate::routes::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v0.10/operation/endpoint/{id}/ls", get(ls))
        .route("/v0.10/operation/endpoint/{id}/stat", get(stat))
        .route("/v0.10/operation/endpoint/{id}/mkdir", post(mkdir))
        .route("/v0.10/operation/endpoint/{id}/rename", post(rename))
}

fn file_doc(e: &Entry, kind: &str) -> Value {
    json!({
        "DATA_TYPE": "file",
        "name": e.name,
        "type": kind,
        "size": e.size,
        "last_modified": ferry_core::time::transfer_time(e.mtime),
        "permissions": format!("{:04o}", e.mode),
        "user": e.user,
        "group": e.group,
        "link_target": e.link_target,
        "link_size": null,
        "link_user": null,
        "link_group": null,
        "link_last_modified": null,
    })
}

fn listed_doc(l: &Listed) -> Value {
    file_doc(&l.entry, l.kind)
}

fn with_slash(p: &str) -> String {
    if p.ends_with('/') {
        p.to_string()
    } else {
        format!("{p}/")
    }
}

async fn ls(
    State(s): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
) -> Result<Json<Value>, TransferError> {
    let op = Op::file(TransferOp::Ls, &id);
    let (who, coll) = op.start(&s, &headers, &id).await?;
    let p = params(q.as_deref());
    let filters: Vec<&str> = p
        .iter()
        .filter(|(k, _)| k == "filter")
        .map(|(_, v)| v.as_str())
        .collect();
    let query = ListQuery::parse(
        first(&p, "show_hidden"),
        first(&p, "orderby"),
        &filters,
        first(&p, "limit"),
        first(&p, "offset"),
    )
    .map_err(op.endpoint())?;
    let path = first(&p, "path").unwrap_or("/~/");
    let (place, page, total, unrepresentable) = s
        .endpoint
        .list(Some(&who), coll, path, &query)
        .await
        .map_err(op.endpoint())?;
    let dir = with_slash(&place.path);
    Ok(Json(json!({
        "DATA_TYPE": "file_list",
        "endpoint": coll,
        "path": dir,
        "absolute_path": dir,
        "rename_supported": true,
        "symlink_supported": false,
        "length": page.len(),
        "total": total,
        "limit": query.limit,
        "offset": query.offset,
        "DATA": page.iter().map(listed_doc).collect::<Vec<_>>(),
        // Ferry: names that are not UTF-8 cannot be listed unchanged; they are named here (escaped) instead.
        "unlisted_names": unrepresentable,
    })))
}

async fn stat(
    State(s): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
) -> Result<Json<Value>, TransferError> {
    let op = Op::file(TransferOp::Stat, &id);
    let (who, coll) = op.start(&s, &headers, &id).await?;
    let p = params(q.as_deref());
    let path = first(&p, "path")
        .ok_or_else(|| op.endpoint()(EndpointError::BadRequest("path: required".into())))?;
    let (_, listed) = s
        .endpoint
        .stat(Some(&who), coll, path)
        .await
        .map_err(op.endpoint())?;
    Ok(Json(listed_doc(&listed)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MkdirDoc {
    #[serde(rename = "DATA_TYPE", default)]
    data_type: Option<String>,
    path: String,
    /// Accepted for the clients' sake; Ferry maps the caller's identity itself.
    #[serde(default)]
    #[allow(dead_code)]
    local_user: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RenameDoc {
    #[serde(rename = "DATA_TYPE", default)]
    data_type: Option<String>,
    old_path: String,
    new_path: String,
    #[serde(default)]
    #[allow(dead_code)]
    local_user: Option<String>,
}

fn document<T: serde::de::DeserializeOwned>(
    op: &Op,
    raw: &Bytes,
    data_type: impl Fn(&T) -> Option<&str>,
    expected: &str,
) -> Result<T, TransferError> {
    let v = op.body(raw)?;
    let doc: T = serde_json::from_value(v).map_err(|e| {
        op.endpoint()(EndpointError::BadRequest(format!(
            "invalid {expected} document: {e}"
        )))
    })?;
    match data_type(&doc) {
        None => Ok(doc),
        Some(t) if t == expected => Ok(doc),
        Some(t) => Err(op.endpoint()(EndpointError::BadRequest(format!(
            "DATA_TYPE: expected {expected:?}, got {t:?}"
        )))),
    }
}

async fn mkdir(
    State(s): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    raw: Bytes,
) -> Result<Json<Value>, TransferError> {
    let op = Op::file(TransferOp::Mkdir, &id);
    let (who, coll) = op.start(&s, &headers, &id).await?;
    let doc: MkdirDoc = document(&op, &raw, |d: &MkdirDoc| d.data_type.as_deref(), "mkdir")?;
    s.endpoint
        .mkdir(Some(&who), coll, &doc.path)
        .await
        .map_err(op.endpoint())?;
    Ok(op.result(
        "mkdir_result",
        "DirectoryCreated",
        "The directory was created successfully",
    ))
}

async fn rename(
    State(s): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    raw: Bytes,
) -> Result<Json<Value>, TransferError> {
    let op = Op::file(TransferOp::Rename, &id);
    let (who, coll) = op.start(&s, &headers, &id).await?;
    let doc: RenameDoc = document(&op, &raw, |d: &RenameDoc| d.data_type.as_deref(), "rename")?;
    s.endpoint
        .rename(Some(&who), coll, &doc.old_path, &doc.new_path)
        .await
        .map_err(op.endpoint())?;
    Ok(op.result(
        "result",
        "FileRenamed",
        "File or directory renamed successfully",
    ))
}
