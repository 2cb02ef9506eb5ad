//! A hub passes Transfer requests about a joined endpoint's collections on to that endpoint (`/site/v0.10/…`
//! there), with a signed statement of who the caller is: the endpoint, where the data and its permissions
//! live, answers them with the same code a single-host server runs. A search asks every endpoint and merges.

use axum::body::{Body, to_bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use ferry_auth::AuthError;
use ferry_core::scope::TRANSFER_RS;
use ferry_endpoint::Requester;
use ferry_store::Site;
use ferry_store::tasks::TaskKind;
use serde_json::Value;
use uuid::Uuid;

use super::super::{AppState, principal};
use crate::error::{TransferError, TransferOp};

/// Largest request body passed on (the Transfer API's own limit).
const MAX_BODY: usize = 1024 * 1024;
/// Largest answer taken from an endpoint.
const MAX_ANSWER: usize = 64 * 1024 * 1024;

/// The collection (or endpoint) a Transfer path is about, if it names one.
fn collection_in(path: &str) -> Option<Uuid> {
    let rest = path
        .strip_prefix("/v0.10/operation/endpoint/")
        .or_else(|| path.strip_prefix("/v0.10/endpoint/"))?;
    Uuid::parse_str(rest.split('/').next()?).ok()
}

/// The mapped collection a guest collection is to be made on (`POST /v0.10/shared_endpoint`), which is where
/// the request must go; the body is read and put back.
async fn host_in(req: Request) -> (Request, Option<Uuid>) {
    let (parts, body) = req.into_parts();
    let Ok(bytes) = to_bytes(body, MAX_BODY).await else {
        return (Request::from_parts(parts, Body::empty()), None);
    };
    let host = serde_json::from_slice::<Value>(&bytes).ok().and_then(|v| {
        v["host_endpoint"]
            .as_str()
            .and_then(|h| Uuid::parse_str(h).ok())
    });
    (Request::from_parts(parts, Body::from(bytes)), host)
}

/// The collections a task submission names (`source_endpoint`, `destination_endpoint`, `endpoint`); the body is
/// read and put back.
async fn task_collections(req: Request) -> (Request, Vec<Uuid>) {
    let (parts, body) = req.into_parts();
    let Ok(bytes) = to_bytes(body, MAX_BODY).await else {
        return (Request::from_parts(parts, Body::empty()), vec![]);
    };
    let doc = serde_json::from_slice::<Value>(&bytes).unwrap_or_default();
    let ids = ["source_endpoint", "destination_endpoint", "endpoint"]
        .iter()
        .filter_map(|k| doc[*k].as_str().and_then(|v| Uuid::parse_str(v).ok()))
        .collect();
    (Request::from_parts(parts, Body::from(bytes)), ids)
}

/// Middleware on the hub's Transfer routes.
pub async fn to_site(State(s): State<AppState>, req: Request, next: Next) -> Response {
    let path = req.uri().path().to_string();
    let resource = path.trim_start_matches("/v0.10").to_string();
    let fail = |e: AuthError| TransferError::auth(TransferOp::Other, &resource, e).into_response();
    if let Some(kind) = submission_kind(&path) {
        let (req, ids) = task_collections(req).await;
        return match runner_of(&s, kind, &ids).await {
            Ok(None) => next.run(req).await,
            Ok(Some(site)) => match submit_at(&s, &site, kind, req).await {
                Ok(r) => r,
                Err(e) => fail(e),
            },
            Err(e) => fail(e),
        };
    }
    if let Some(task) = task_in(&path) {
        let site = match s.transfer.runner_of(task).await {
            Ok(Some(runner)) => s.auth.site_of(runner).await,
            Ok(None) => return next.run(req).await,
            Err(e) => return fail(AuthError::Internal(e.to_string())),
        };
        let site = match site {
            Ok(Some(site)) => site,
            // The endpoint left: what the hub recorded is all there is.
            Ok(None) => return next.run(req).await,
            Err(e) => return fail(e),
        };
        // A task's document is the hub's record when its endpoint cannot be asked.
        let shown = req.method() == axum::http::Method::GET && path.ends_with(&task.to_string());
        let (req, again) = if shown {
            let (parts, body) = req.into_parts();
            let again = Request::from_parts(parts.clone(), Body::empty());
            (Request::from_parts(parts, body), Some(again))
        } else {
            (req, None)
        };
        return match (pass_on(&s, &site, req).await, again) {
            (Ok(r), _) => r,
            (Err(AuthError::Unavailable(_)), Some(again)) => next.run(again).await,
            (Err(e), _) => fail(e),
        };
    }
    let (req, id) = if path == "/v0.10/shared_endpoint" {
        host_in(req).await
    } else {
        (req, collection_in(&path))
    };
    let Some(id) = id else {
        return next.run(req).await;
    };
    // What this process holds itself is answered here.
    match s.endpoint.holds(id).await {
        Ok(true) => return next.run(req).await,
        Ok(false) => {}
        Err(e) => return fail(AuthError::Internal(e.to_string())),
    }
    let site = match s.auth.site_of(id).await {
        Ok(Some(site)) => site,
        Ok(None) => return next.run(req).await,
        Err(e) => return fail(e),
    };
    match pass_on(&s, &site, req).await {
        Ok(r) => r,
        Err(e) => fail(e),
    }
}

fn submission_kind(path: &str) -> Option<TaskKind> {
    match path {
        "/v0.10/transfer" => Some(TaskKind::Transfer),
        "/v0.10/delete" => Some(TaskKind::Delete),
        _ => None,
    }
}

/// The task a `/v0.10/task/{id}[/…]` path is about.
fn task_in(path: &str) -> Option<Uuid> {
    Uuid::parse_str(path.strip_prefix("/v0.10/task/")?.split('/').next()?).ok()
}

/// The joined endpoint that runs a task between `ids` (source and destination, or the one collection of a
/// delete): the destination's for a transfer, the holder's for a delete. None when the task is this server's.
async fn runner_of(s: &AppState, kind: TaskKind, ids: &[Uuid]) -> Result<Option<Site>, AuthError> {
    let mut sites = Vec::with_capacity(ids.len());
    for id in ids {
        let here = s
            .endpoint
            .holds(*id)
            .await
            .map_err(|e| AuthError::Internal(e.to_string()))?;
        sites.push(if here {
            None
        } else {
            s.auth.site_of(*id).await?
        });
    }
    if sites.iter().all(Option::is_none) {
        return Ok(None);
    }
    if let Some(i) = sites.iter().position(Option::is_none) {
        return Err(AuthError::InvalidRequest(format!(
            "collection {} is on this server and the other at a joined endpoint: a task runs between \
             collections of joined endpoints, or of this server only",
            ids[i]
        )));
    }
    let runner = match kind {
        TaskKind::Transfer => sites.pop(),
        TaskKind::Delete => sites.into_iter().next(),
    };
    Ok(runner.flatten())
}

/// A submission whose task runs at joined endpoint `site`: the hub records it (under an id the endpoint is to
/// use) and passes it on; the record is dropped again when the endpoint refuses it or cannot be reached, so
/// that nothing is left waiting for a task that does not exist (a retry with the same submission id meets the
/// same id).
async fn submit_at(
    s: &AppState,
    site: &Site,
    kind: TaskKind,
    req: Request,
) -> Result<Response, AuthError> {
    let who = caller(s, req.headers()).await?;
    let (parts, body) = req.into_parts();
    let body = to_bytes(body, MAX_BODY).await.map_err(|_| {
        AuthError::InvalidRequest(format!("the body is larger than {MAX_BODY} bytes"))
    })?;
    let doc: Value = serde_json::from_slice(&body)
        .map_err(|e| AuthError::InvalidRequest(format!("the body is not JSON: {e}")))?;
    let recorded = match s
        .transfer
        .record_for_endpoint(&who, &doc, kind, site.id)
        .await
    {
        Ok(r) => r,
        Err(e) => {
            let resource = parts.uri.path().trim_start_matches("/v0.10");
            return Ok(TransferError::task(resource, e).into_response());
        }
    };
    let vouch = s
        .auth
        .vouch_for_task(
            site.id,
            &who.identity,
            &who.groups,
            who.signed_in.time(),
            recorded.task_id,
        )
        .await?;
    let answer = send(s, site, parts, body, vouch).await;
    let keep = matches!(&answer, Ok(r) if r.status().is_success());
    if !keep
        && recorded.created
        && let Err(e) = s.transfer.forget_record(recorded.task_id).await
    {
        tracing::warn!(task = %recorded.task_id, error = %e, "cannot drop the record of a refused task");
    }
    answer
}

/// The caller of a hub request, with a Transfer token.
async fn caller(s: &AppState, headers: &HeaderMap) -> Result<Requester, AuthError> {
    let p = principal(s, headers, TRANSFER_RS).await?;
    s.endpoint
        .requester(p.identity)
        .await
        .map_err(|e| AuthError::Internal(e.to_string()))
}

fn unreachable(site: &Site, e: impl std::fmt::Display) -> AuthError {
    tracing::warn!(endpoint = %site.id, url = %site.public_url, error = %e, "endpoint unreachable");
    AuthError::Unavailable(format!(
        "endpoint {} ({}) cannot be reached now; try again later",
        site.display_name, site.id
    ))
}

async fn pass_on(s: &AppState, site: &Site, req: Request) -> Result<Response, AuthError> {
    let who = caller(s, req.headers()).await?;
    let vouch = s
        .auth
        .vouch(site.id, &who.identity, &who.groups, who.signed_in.time())
        .await?;
    let (parts, body) = req.into_parts();
    let body = to_bytes(body, MAX_BODY).await.map_err(|_| {
        AuthError::InvalidRequest(format!("the body is larger than {MAX_BODY} bytes"))
    })?;
    send(s, site, parts, body, vouch).await
}

/// Sends a request on to `{site}/site…` with the hub's statement and gives back the endpoint's answer.
async fn send(
    s: &AppState,
    site: &Site,
    parts: axum::http::request::Parts,
    body: axum::body::Bytes,
    vouch: String,
) -> Result<Response, AuthError> {
    let target = format!(
        "{}/site{}",
        site.public_url,
        parts
            .uri
            .path_and_query()
            .map(|p| p.as_str())
            .unwrap_or("/")
    );
    let mut out = s
        .sites_http
        .request(parts.method, target)
        .header(header::AUTHORIZATION, vouch)
        .body(body);
    if let Some(ct) = parts.headers.get(header::CONTENT_TYPE) {
        out = out.header(header::CONTENT_TYPE, ct);
    }
    let answer = out.send().await.map_err(|e| unreachable(site, e))?;
    let status = StatusCode::from_u16(answer.status().as_u16())
        .map_err(|e| AuthError::Internal(e.to_string()))?;
    let content_type = answer.headers().get(header::CONTENT_TYPE).cloned();
    let bytes = answer.bytes().await.map_err(|e| unreachable(site, e))?;
    if bytes.len() > MAX_ANSWER {
        return Err(AuthError::Internal(format!(
            "endpoint {} answered {} bytes",
            site.id,
            bytes.len()
        )));
    }
    let mut r = (status, Body::from(bytes)).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        content_type.unwrap_or(HeaderValue::from_static("application/json")),
    );
    Ok(r)
}

/// The matches of a search at every joined endpoint, up to `want` from each: endpoints that cannot be reached
/// are left out (and logged), so one endpoint down does not hide the others.
pub async fn search_sites(s: &AppState, who: &Requester, query: &str, want: usize) -> Vec<Value> {
    let sites = match s.auth.store().list_sites().await {
        Ok(sites) => sites,
        Err(e) => {
            tracing::warn!(error = %e, "cannot list endpoints");
            return vec![];
        }
    };
    let asks = sites
        .iter()
        .map(|site| search_one(s, site, who, query, want));
    futures_util::future::join_all(asks)
        .await
        .into_iter()
        .flatten()
        .collect()
}

async fn search_one(
    s: &AppState,
    site: &Site,
    who: &Requester,
    query: &str,
    want: usize,
) -> Vec<Value> {
    let mut docs = Vec::new();
    // Pages of 100 (the most one search answers), as far as the caller's page reaches.
    while docs.len() < want {
        let asked: Vec<(String, String)> = url::form_urlencoded::parse(query.as_bytes())
            .filter(|(k, _)| k != "offset" && k != "limit")
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .chain([
                ("offset".into(), docs.len().to_string()),
                ("limit".into(), "100".into()),
            ])
            .collect();
        let page = async {
            let vouch = s
                .auth
                .vouch(site.id, &who.identity, &who.groups, who.signed_in.time())
                .await?;
            let answer = s
                .sites_http
                .get(format!("{}/site/v0.10/endpoint_search", site.public_url))
                .query(&asked)
                .header(header::AUTHORIZATION, vouch)
                .send()
                .await
                .map_err(|e| unreachable(site, e))?
                .error_for_status()
                .map_err(|e| unreachable(site, e))?;
            answer
                .json::<Value>()
                .await
                .map_err(|e| unreachable(site, e))
        }
        .await;
        let Ok(page) = page else {
            break;
        };
        let got = page["DATA"].as_array().cloned().unwrap_or_default();
        let more = page["has_next_page"] == true && !got.is_empty();
        docs.extend(got);
        if !more {
            break;
        }
    }
    docs
}
