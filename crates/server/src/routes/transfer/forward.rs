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
    if matches!(req.uri().path(), "/v0.10/transfer" | "/v0.10/delete") {
        let (req, ids) = task_collections(req).await;
        for id in ids {
            if matches!(s.endpoint.holds(id).await, Ok(false))
                && let Ok(Some(site)) = s.auth.site_of(id).await
            {
                // Said plainly rather than "no such collection": the collection exists, at a joined endpoint.
                return TransferError::auth(
                    TransferOp::Other,
                    req.uri().path().trim_start_matches("/v0.10"),
                    AuthError::InvalidRequest(format!(
                        "collection {id} is at endpoint {} ({}): tasks that read or write an endpoint's \
                         collections from the hub are not available yet; run the task on a server that \
                         holds both collections",
                        site.display_name, site.id
                    )),
                )
                .into_response();
            }
        }
        return next.run(req).await;
    }
    let (req, id) = if req.uri().path() == "/v0.10/shared_endpoint" {
        host_in(req).await
    } else {
        let id = collection_in(req.uri().path());
        (req, id)
    };
    let Some(id) = id else {
        return next.run(req).await;
    };
    let resource = req.uri().path().trim_start_matches("/v0.10").to_string();
    let fail = |e: AuthError| TransferError::auth(TransferOp::Other, &resource, e).into_response();
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
    let vouch = s.auth.vouch(site.id, &who.identity, &who.groups)?;
    let (parts, body) = req.into_parts();
    let body = to_bytes(body, MAX_BODY).await.map_err(|_| {
        AuthError::InvalidRequest(format!("the body is larger than {MAX_BODY} bytes"))
    })?;
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
            let vouch = s.auth.vouch(site.id, &who.identity, &who.groups)?;
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
