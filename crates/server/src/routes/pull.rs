//! The pull API (`/site/pull/{collection}/…` at an endpoint): the endpoint that runs a task whose source is a
//! collection here reads it with the task credential the hub gave it. Every path goes through the one access
//! check for the task owner (and must lie under the task's source paths); byte ranges of large files come from
//! the HTTPS door (`/data/…`), which takes the same credential.

use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use ferry_auth::AuthError;
use ferry_core::access::Action;
use ferry_endpoint::Requester;
use ferry_endpoint::data::client_path;
use ferry_proto::sites::{
    HubAssertion, PULL_FILES_MAX, PullFailure, PullFiles, PulledEntry, PulledFile, PulledListing,
    pull_failure,
};
use ferry_storage::{Entry, EntryKind};
use futures_util::StreamExt;
use uuid::Uuid;

use super::{AppState, authorization, parse_json, parse_params};
use crate::error::PullError;
use crate::site::HubLink;

/// Data in one answer of `files`: files past it come without their bytes (the reader fetches them in ranges).
const FILES_ANSWER_BYTES: u64 = 64 << 20;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/pull/{collection}/stat", get(stat))
        .route("/pull/{collection}/list", get(list))
        .route("/pull/{collection}/files", post(files))
}

fn pulled(e: Entry) -> PulledEntry {
    PulledEntry {
        name: e.name,
        kind: match e.kind {
            EntryKind::File => "file",
            EntryKind::Dir => "dir",
            EntryKind::Symlink => "symlink",
            EntryKind::Other => "other",
        }
        .into(),
        size: e.size,
        mtime: e.mtime,
        mode: e.mode,
        user: e.user,
        group: e.group,
        link_target: e.link_target,
    }
}

fn refused(path: &str) -> PullError {
    PullError::at(
        ferry_endpoint::EndpointError::AccessDenied(format!(
            "{path} is not among the paths of this task"
        )),
        path,
    )
}

/// The task owner and the credential, for reading `collection` here.
async fn reader(
    s: &AppState,
    headers: &HeaderMap,
    collection: &str,
) -> Result<(Arc<HubLink>, Uuid, Requester, HubAssertion), PullError> {
    let hub = s
        .hub
        .clone()
        .ok_or_else(|| AuthError::NotFound("not an endpoint of a hub".into()))?;
    let collection = Uuid::parse_str(collection)
        .map_err(|_| AuthError::NotFound(format!("no collection {collection:?}")))?;
    let header = authorization(headers).ok_or(AuthError::Unauthenticated)?;
    let (who, reading) = hub.task_reading(s.auth.store(), header, collection).await?;
    Ok((hub, collection, who, reading))
}

/// The `path` parameter, in its normal form, if the credential covers it.
fn covered_path(q: Option<&str>, reading: &HubAssertion) -> Result<String, PullError> {
    let q = parse_params(q.unwrap_or(""))?;
    let raw = q
        .get("path")
        .ok_or_else(|| AuthError::InvalidRequest("path: missing".into()))?;
    let path = client_path("path", raw).map_err(|e| PullError::at(e, raw))?;
    if !reading.covers(&path) {
        return Err(refused(&path));
    }
    Ok(path)
}

async fn stat(
    State(s): State<AppState>,
    Path(collection): Path<String>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
) -> Result<Json<PulledEntry>, PullError> {
    let (_, collection, who, reading) = reader(&s, &headers, &collection).await?;
    let path = covered_path(q.as_deref(), &reading)?;
    let (_, listed) = s
        .endpoint
        .stat(Some(&who), collection, &path)
        .await
        .map_err(|e| PullError::at(e, &path))?;
    Ok(Json(pulled(listed.entry)))
}

/// A folder's entries as JSON lines, read as a stream; the last line says `end` (or the failure).
async fn list(
    State(s): State<AppState>,
    Path(collection): Path<String>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
) -> Result<Response, PullError> {
    let (_, collection, who, reading) = reader(&s, &headers, &collection).await?;
    let path = covered_path(q.as_deref(), &reading)?;
    let a = s
        .endpoint
        .authorize(Some(&who), collection, &path, Action::Read, "list")
        .await
        .map_err(|e| PullError::at(e, &path))?;
    let chunks = a
        .connector
        .list_chunks(&a.storage_path)
        .await
        .map_err(|e| PullError::at(e.into(), &path))?;
    let line = |chunk: &PulledListing| {
        let mut v = serde_json::to_vec(chunk).unwrap_or_default();
        v.push(b'\n');
        Ok::<_, std::convert::Infallible>(Bytes::from(v))
    };
    let body = chunks
        .map(move |c| match c {
            Ok(listing) => PulledListing {
                entries: listing.entries.into_iter().map(pulled).collect(),
                unrepresentable: listing.unrepresentable,
                ..Default::default()
            },
            Err(e) => PulledListing {
                failure: Some(PullError::at(e.into(), &path).failure().clone()),
                ..Default::default()
            },
        })
        .chain(futures_util::stream::iter([PulledListing {
            end: true,
            ..Default::default()
        }]))
        .map(move |c| line(&c));
    Ok((
        [(header::CONTENT_TYPE, "application/x-ndjson")],
        Body::from_stream(body),
    )
        .into_response())
}

/// Whole files of one folder: per name, a 4-byte length, the [`PulledFile`] as JSON, and the file's bytes.
async fn files(
    State(s): State<AppState>,
    Path(collection): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, PullError> {
    let (_, collection, who, reading) = reader(&s, &headers, &collection).await?;
    let ask: PullFiles = parse_json(&body)?;
    if ask.names.len() > PULL_FILES_MAX {
        return Err(AuthError::InvalidRequest(format!(
            "names: at most {PULL_FILES_MAX} in one request"
        ))
        .into());
    }
    if let Some(bad) = ask
        .names
        .iter()
        .find(|n| n.is_empty() || n.contains('/') || *n == "." || *n == "..")
    {
        return Err(AuthError::InvalidRequest(format!("names: {bad:?} is not a file name")).into());
    }
    let dir = client_path("dir", &ask.dir).map_err(|e| PullError::at(e, &ask.dir))?;
    let folder = s
        .endpoint
        .authorize(Some(&who), collection, &dir, Action::Read, "read")
        .await
        .map_err(|e| PullError::at(e, &dir))?;
    let access = s
        .endpoint
        .collection_access(&who, collection)
        .await
        .map_err(|e| PullError::at(e, &dir))?;
    let task = reading.task.unwrap_or_default();
    // Each file: under the task's paths, and readable by the task owner (recorded as task.read here).
    let mut heads: Vec<Option<PulledFile>> = Vec::with_capacity(ask.names.len());
    let mut allowed = Vec::with_capacity(ask.names.len());
    for name in &ask.names {
        let path = ferry_core::path::join(&folder.path, &format!("/{name}"));
        let check = if reading.covers(&path) {
            access
                .check_for_task(&path, Action::Read, "read", task)
                .await
                .map(|_| ())
                .map_err(|e| PullError::at(e, &path).failure().clone())
        } else {
            Err(refused(&path).failure().clone())
        };
        match check {
            Ok(()) => {
                allowed.push(name.clone());
                heads.push(None);
            }
            Err(failure) => heads.push(Some(PulledFile {
                entry: None,
                len: None,
                failure: Some(failure),
            })),
        }
    }
    let mut read = folder
        .connector
        .read_files(&folder.storage_path, allowed, ask.max, None)
        .await
        .into_iter();
    let mut out: Vec<Bytes> = Vec::with_capacity(heads.len() * 2);
    let mut sent = 0u64;
    for (name, head) in ask.names.iter().zip(heads) {
        let (head, data) = match head {
            Some(refused) => (refused, None),
            None => match read.next() {
                Some(Ok(w)) => {
                    let data = w
                        .data
                        .filter(|d| sent + d.len() as u64 <= FILES_ANSWER_BYTES);
                    sent += data.as_ref().map_or(0, |d| d.len() as u64);
                    (
                        PulledFile {
                            entry: Some(pulled(w.entry)),
                            len: data.as_ref().map(|d| d.len() as u64),
                            failure: None,
                        },
                        data,
                    )
                }
                Some(Err(e)) => {
                    let path = ferry_core::path::join(&folder.path, &format!("/{name}"));
                    (
                        PulledFile {
                            entry: None,
                            len: None,
                            failure: Some(PullError::at(e.into(), &path).failure().clone()),
                        },
                        None,
                    )
                }
                None => (
                    PulledFile {
                        entry: None,
                        len: None,
                        failure: Some(PullFailure {
                            kind: pull_failure::OTHER.into(),
                            path: name.clone(),
                            message: "not read".into(),
                        }),
                    },
                    None,
                ),
            },
        };
        let json = serde_json::to_vec(&head).unwrap_or_default();
        out.push(Bytes::copy_from_slice(&(json.len() as u32).to_be_bytes()));
        out.push(Bytes::from(json));
        if let Some(d) = data {
            out.push(d);
        }
    }
    let stream = futures_util::stream::iter(out.into_iter().map(Ok::<_, std::convert::Infallible>));
    Ok((
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/octet-stream")],
        Body::from_stream(stream),
    )
        .into_response())
}
