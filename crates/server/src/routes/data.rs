//! HTTPS access to a collection's files: `<base>/data/<collection id>/<path>` (the collection's `https_url`).
//! GET (with a single byte range) and HEAD, PUT (streamed to a temporary name, renamed only once the whole body
//! arrived) and DELETE. The token is the collection's (`https://auth.globus.org/scopes/<id>/https`). Without an
//! Authorization header, a browser's login session counts for GET and HEAD (never for PUT or DELETE, so that
//! no other site can make a browser change data); with neither, the request is anonymous and only anonymous
//! permissions apply, and a browser that is refused is sent to the login page, which brings it back.
//!
//! Uploaded files are served as `application/octet-stream` with `nosniff` and a sandboxing CSP, so that a file
//! someone uploaded never runs as a page of Ferry's origin.

use axum::Router;
use axum::body::Body;
use axum::extract::{OriginalUri, Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use ferry_endpoint::Requester;
use futures_util::StreamExt;
use serde_json::json;
use uuid::Uuid;

use super::{AppState, parse_params};
use crate::error::DataError;

pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/data/{collection}",
            get(download).put(upload).delete(remove),
        )
        .route(
            "/data/{collection}/{*path}",
            get(download).put(upload).delete(remove),
        )
}

/// The collection named in a URL; an id that is not a UUID names nothing.
pub(super) fn collection_id(id: &str) -> Result<Uuid, DataError> {
    Uuid::parse_str(id)
        .map_err(|_| DataError::new(StatusCode::NOT_FOUND, format!("no collection {id:?}")))
}

/// `(collection, path)` from the URL.
fn target(raw: &std::collections::HashMap<String, String>) -> Result<(Uuid, String), DataError> {
    let coll = collection_id(raw.get("collection").map(String::as_str).unwrap_or(""))?;
    Ok((
        coll,
        format!("/{}", raw.get("path").map(String::as_str).unwrap_or("")),
    ))
}

/// The caller: the bearer of a token for this collection, else (reads only) the browser's login session, else
/// nobody.
async fn caller(
    s: &AppState,
    headers: &HeaderMap,
    collection: Uuid,
    path: &str,
    read: bool,
) -> Result<Option<Requester>, DataError> {
    if let Some(auth) = super::authorization(headers) {
        // Another endpoint reading for a task, with the credential the hub gave it: reads only.
        if let Some(hub) = &s.hub
            && auth.starts_with(ferry_proto::sites::ASSERTION_SCHEME)
        {
            if !read {
                return Err(DataError::new(
                    StatusCode::FORBIDDEN,
                    "a task credential reads; it cannot change anything",
                ));
            }
            let path = ferry_endpoint::data::client_path("path", path)?;
            return Ok(Some(
                hub.task_reader(s.auth.store(), auth, collection, &path)
                    .await?,
            ));
        }
        return Ok(Some(
            super::requester(s, headers, &collection.to_string()).await?,
        ));
    }
    // Browser sessions are the hub's; an endpoint sees only tokens.
    if read
        && s.hub.is_none()
        && let Some(session) = super::web::current_session(s, headers).await?
    {
        return Ok(Some(
            s.endpoint
                .requester(session.identity)
                .await?
                .signed_in_at(Some(session.auth_time)),
        ));
    }
    Ok(None)
}

/// A collection path as it goes in a `/data/` URL: each segment percent-encoded, the slashes kept.
pub(crate) fn url_path(path: &str) -> String {
    path.split('/')
        .map(|seg| {
            url::form_urlencoded::byte_serialize(seg.as_bytes())
                .collect::<String>()
                .replace('+', "%20")
        })
        .collect::<Vec<_>>()
        .join("/")
}

/// A browser navigating (rather than a client fetching bytes).
fn wants_html(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("text/html"))
}

/// A refused anonymous browser goes to the login page, which returns it here.
fn to_login(who: &Option<Requester>, headers: &HeaderMap, uri: &Uri, e: DataError) -> Response {
    let browser = wants_html(headers);
    let refused = matches!(
        e.status(),
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN | StatusCode::NOT_FOUND
    );
    if who.is_some() || !browser || !refused {
        return e.into_response();
    }
    let next = uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
    Redirect::to(&format!(
        "/v2/web/login?next={}",
        url::form_urlencoded::byte_serialize(next.as_bytes()).collect::<String>()
    ))
    .into_response()
}

/// A single byte range of a file of `size` bytes (RFC 9110 §14).
#[derive(Debug, PartialEq, Eq)]
enum Range {
    Whole,
    /// First and last byte, inclusive.
    Part(u64, u64),
    Unsatisfiable,
}

fn range(header: Option<&str>, size: u64) -> Range {
    let Some(spec) = header.and_then(|h| h.trim().strip_prefix("bytes=")) else {
        return Range::Whole;
    };
    // Several ranges: answering with the whole file is allowed, and spares a multipart body.
    if spec.contains(',') {
        return Range::Whole;
    }
    let Some((a, b)) = spec.trim().split_once('-') else {
        return Range::Whole;
    };
    let num = |s: &str| s.trim().parse::<u64>().ok();
    match (a.trim().is_empty(), num(a), num(b)) {
        // Suffix: the last n bytes.
        (true, _, Some(n)) => {
            if n == 0 || size == 0 {
                Range::Unsatisfiable
            } else {
                Range::Part(size.saturating_sub(n), size - 1)
            }
        }
        (false, Some(first), last) if b.trim().is_empty() || last.is_some() => {
            if last.is_some_and(|l| l < first) {
                return Range::Whole;
            }
            if first >= size {
                return Range::Unsatisfiable;
            }
            Range::Part(first, last.map_or(size - 1, |l| l.min(size - 1)))
        }
        _ => Range::Whole,
    }
}

/// RFC 6266 / 8187: an ASCII fallback and the exact UTF-8 name.
fn disposition(kind: &str, name: &str) -> String {
    let fallback: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_graphic() && c != '"' && c != '\\' || c == ' ' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let mut encoded = String::new();
    for b in name.bytes() {
        if b.is_ascii_alphanumeric() || b"!#$&+-.^_`|~".contains(&b) {
            encoded.push(b as char);
        } else {
            encoded.push_str(&format!("%{b:02X}"));
        }
    }
    format!("{kind}; filename=\"{fallback}\"; filename*=UTF-8''{encoded}")
}

fn set(h: &mut HeaderMap, name: header::HeaderName, value: &str) {
    if let Ok(v) = HeaderValue::from_str(value) {
        h.insert(name, v);
    }
}

async fn download(
    State(s): State<AppState>,
    Path(raw): Path<std::collections::HashMap<String, String>>,
    RawQuery(q): RawQuery,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
) -> Result<Response, DataError> {
    let (coll, path) = target(&raw)?;
    let q = parse_params(q.as_deref().unwrap_or(""))?;
    let who = caller(&s, &headers, coll, &path, true).await?;
    let file = match s.endpoint.open_file(who.as_ref(), coll, &path).await {
        Ok(f) => f,
        // A folder's URL opened in a browser shows the folder in the file manager (where the pages are).
        Err(ferry_endpoint::EndpointError::Storage(ferry_storage::StorageError::IsADirectory(
            _,
        ))) if s.role.serves_hub() && wants_html(&headers) => {
            return Ok(Redirect::to(&super::app::folder_url(coll, &path)).into_response());
        }
        Err(e) => return Ok(to_login(&who, &headers, &uri, e.into())),
    };
    let size = file.entry.size;
    let asked = headers.get(header::RANGE).and_then(|v| v.to_str().ok());
    let (status, first, len) = match range(asked, size) {
        Range::Whole => (StatusCode::OK, 0, size),
        Range::Part(a, b) => (StatusCode::PARTIAL_CONTENT, a, b - a + 1),
        Range::Unsatisfiable => {
            let mut r = DataError::new(
                StatusCode::RANGE_NOT_SATISFIABLE,
                format!("the file has {size} bytes"),
            )
            .into_response();
            set(
                r.headers_mut(),
                header::CONTENT_RANGE,
                &format!("bytes */{size}"),
            );
            return Ok(r);
        }
    };
    let stream = file.bytes(first, Some(len)).await?;
    let mut r = Response::new(Body::from_stream(stream));
    *r.status_mut() = status;
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'none'; sandbox"),
    );
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    set(h, header::CONTENT_LENGTH, &len.to_string());
    if status == StatusCode::PARTIAL_CONTENT {
        set(
            h,
            header::CONTENT_RANGE,
            &format!("bytes {first}-{}/{size}", first + len - 1),
        );
    }
    let name = ferry_core::path::file_name(file.path()).unwrap_or("download");
    let kind = if q.contains_key("download") {
        "attachment"
    } else {
        "inline"
    };
    set(h, header::CONTENT_DISPOSITION, &disposition(kind, name));
    Ok(r)
}

async fn upload(
    State(s): State<AppState>,
    Path(raw): Path<std::collections::HashMap<String, String>>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, DataError> {
    let (coll, path) = target(&raw)?;
    let who = caller(&s, &headers, coll, &path, false).await?;
    let mut up = s.endpoint.write(who.as_ref(), coll, &path, true).await?;
    let mut chunks = body.into_data_stream();
    let mut written: u64 = 0;
    loop {
        match chunks.next().await {
            Some(Ok(chunk)) => {
                written += chunk.len() as u64;
                if let Err(e) = up.write(chunk).await {
                    let _ = up.abort().await;
                    return Err(ferry_endpoint::EndpointError::from(e).into());
                }
            }
            Some(Err(e)) => {
                // The client went away or the body broke: nothing is left under the name.
                let _ = up.abort().await;
                return Err(DataError::new(
                    StatusCode::BAD_REQUEST,
                    format!("the upload was interrupted after {written} bytes: {e}"),
                ));
            }
            None => break,
        }
    }
    let entry = up
        .commit()
        .await
        .map_err(ferry_endpoint::EndpointError::from)?;
    Ok((
        StatusCode::CREATED,
        axum::Json(json!({"code": "Created", "name": entry.name, "size": entry.size})),
    )
        .into_response())
}

async fn remove(
    State(s): State<AppState>,
    Path(raw): Path<std::collections::HashMap<String, String>>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
) -> Result<Response, DataError> {
    let (coll, path) = target(&raw)?;
    let q = parse_params(q.as_deref().unwrap_or(""))?;
    let recursive = matches!(q.get("recursive").map(String::as_str), Some("true" | "1"));
    let who = caller(&s, &headers, coll, &path, false).await?;
    s.endpoint
        .delete(who.as_ref(), coll, &path, recursive)
        .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        assert_eq!(range(None, 10), Range::Whole);
        assert_eq!(range(Some("bytes=0-0"), 10), Range::Part(0, 0));
        assert_eq!(range(Some("bytes=2-"), 10), Range::Part(2, 9));
        assert_eq!(range(Some("bytes=2-100"), 10), Range::Part(2, 9));
        assert_eq!(range(Some("bytes=-3"), 10), Range::Part(7, 9));
        assert_eq!(range(Some("bytes=-30"), 10), Range::Part(0, 9));
        assert_eq!(range(Some("bytes=10-"), 10), Range::Unsatisfiable);
        assert_eq!(range(Some("bytes=-0"), 10), Range::Unsatisfiable);
        assert_eq!(range(Some("bytes=0-"), 0), Range::Unsatisfiable);
        assert_eq!(range(Some("bytes=5-2"), 10), Range::Whole);
        assert_eq!(range(Some("bytes=0-1,4-5"), 10), Range::Whole);
        assert_eq!(range(Some("items=0-1"), 10), Range::Whole);
        assert_eq!(range(Some("bytes=x-1"), 10), Range::Whole);
    }

    #[test]
    fn dispositions_encode_names() {
        assert_eq!(
            disposition("attachment", "a b.txt"),
            "attachment; filename=\"a b.txt\"; filename*=UTF-8''a%20b.txt"
        );
        assert_eq!(
            disposition("inline", "ü\"\r\n.h5"),
            "inline; filename=\"____.h5\"; filename*=UTF-8''%C3%BC%22%0D%0A.h5"
        );
    }
}
