//! The Transfer API v0.10: file operations, the collection index, permissions and roles, bookmarks. The
//! Transfer API calls collections "endpoints"; an id in a path is a collection's (or the endpoint's).

mod bookmarks;
mod files;
pub mod forward;
mod index;
mod sharing;
mod tasks;

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::http::HeaderMap;
use ferry_core::scope::TRANSFER_RS;
use ferry_endpoint::{EndpointError, Requester};
use serde_json::{Value, json};
use uuid::Uuid;

use super::{AppState, parse_json, principal};
use crate::error::{TransferError, TransferOp};

pub fn router() -> Router<AppState> {
    collections()
        .merge(bookmarks::router())
        .merge(tasks::router())
}

/// What an endpoint answers for its hub (under `/site`): its collections' files, documents, permissions and
/// guest collections, the tasks the hub gives it, and reads of its collections for other endpoints' tasks.
/// Bookmarks are the hub's own.
pub fn site_router() -> Router<AppState> {
    collections()
        .merge(tasks::site_router())
        .merge(crate::routes::pull::router())
}

/// Routes about collections and their files, on a hub and an endpoint alike.
fn collections() -> Router<AppState> {
    Router::new()
        .merge(files::router())
        .merge(index::router())
        .merge(sharing::router())
}

/// The request's context: which operation on which resource, for the error's `code` and `resource`.
pub(crate) struct Op {
    op: TransferOp,
    resource: String,
}

impl Op {
    /// A file operation on collection `id`.
    fn file(op: TransferOp, id: &str) -> Self {
        Self {
            op,
            resource: format!("/v0.10/operation/endpoint/{id}/{}", op.as_str()),
        }
    }

    /// Any other request, named by its path below `/v0.10`.
    fn at(resource: impl Into<String>) -> Self {
        Self {
            op: TransferOp::Other,
            resource: resource.into(),
        }
    }

    fn endpoint(&self) -> impl Fn(EndpointError) -> TransferError + '_ {
        |e| TransferError::endpoint(self.op, &self.resource, e)
    }
    fn auth(&self) -> impl Fn(ferry_auth::AuthError) -> TransferError + '_ {
        |e| TransferError::auth(self.op, &self.resource, e)
    }

    /// The caller, with a Transfer token; on an endpoint, the caller the hub vouches for when it passes a
    /// request on.
    async fn caller(&self, s: &AppState, headers: &HeaderMap) -> Result<Requester, TransferError> {
        if let Some(hub) = &s.hub {
            let header =
                super::authorization(headers).ok_or(ferry_auth::AuthError::Unauthenticated);
            return match header {
                Ok(h) => hub.vouched_caller(s.auth.store(), h).await,
                Err(e) => Err(e),
            }
            .map_err(self.auth());
        }
        let p = principal(s, headers, TRANSFER_RS)
            .await
            .map_err(self.auth())?;
        s.endpoint
            .requester(p.identity)
            .await
            .map(|r| r.signed_in_at(p.auth_time))
            .map_err(self.endpoint())
    }

    /// The caller and a collection id; an id that is not a UUID names no collection.
    async fn start(
        &self,
        s: &AppState,
        headers: &HeaderMap,
        id: &str,
    ) -> Result<(Requester, Uuid), TransferError> {
        let who = self.caller(s, headers).await?;
        Ok((who, self.collection_id(id)?))
    }

    fn collection_id(&self, id: &str) -> Result<Uuid, TransferError> {
        Uuid::parse_str(id)
            .map_err(|_| self.endpoint()(EndpointError::CollectionNotFound(id.to_string())))
    }

    /// Another id in the path (a rule, role or bookmark); one that is not a UUID names nothing.
    fn id(&self, what: &str, id: &str) -> Result<Uuid, TransferError> {
        Uuid::parse_str(id)
            .map_err(|_| self.endpoint()(EndpointError::NotFound(format!("no {what} {id:?}"))))
    }

    /// A JSON body.
    fn body(&self, raw: &Bytes) -> Result<Value, TransferError> {
        parse_json(raw).map_err(self.auth())
    }

    /// The success document of a change: `{DATA_TYPE, code, message, request_id, resource}`.
    fn result(&self, data_type: &str, code: &str, message: &str) -> Json<Value> {
        Json(self.result_doc(data_type, code, message))
    }

    fn result_doc(&self, data_type: &str, code: &str, message: &str) -> Value {
        json!({
            "DATA_TYPE": data_type,
            "code": code,
            "message": message,
            "request_id": Uuid::new_v4().simple().to_string(),
            "resource": self.resource,
        })
    }
}

/// Query parameters, keeping repeated ones (`filter`).
fn params(raw: Option<&str>) -> Vec<(String, String)> {
    url::form_urlencoded::parse(raw.unwrap_or("").as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

fn first<'a>(p: &'a [(String, String)], key: &str) -> Option<&'a str> {
    p.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
}

/// A list document: `{DATA_TYPE, DATA, length, ...extra}`.
fn list(data_type: &str, data: Vec<Value>, extra: Value) -> Json<Value> {
    let mut doc = json!({
        "DATA_TYPE": data_type,
        "length": data.len(),
        "DATA": data,
    });
    if let (Some(d), Value::Object(e)) = (doc.as_object_mut(), extra) {
        d.extend(e);
    }
    Json(doc)
}
