//! Resumable uploads at an endpoint, in the tus 1.0 protocol (core, with the creation, termination and checksum
//! extensions): `POST /uploads/<collection id>` begins an upload of `Upload-Length` bytes to the collection path
//! given as `path` in `Upload-Metadata`; `HEAD`, `PATCH` and `DELETE` on the `Location` it answers ask how much
//! arrived, send more from there, and cancel. The file takes its name once the last byte arrived. A `PATCH` with
//! `Upload-Checksum: blake3 <base64 digest>` is kept only if its body matches (else 460, nothing kept). Header
//! names and values: `ferry_proto::tus`, which `ferry put` uses too.
//!
//! Who calls: the bearer of a token for the collection (`https://auth.globus.org/scopes/<id>/https`), or a
//! browser signed in to this server's pages with its session's anti-forgery token in `X-CSRF-Token`: another
//! site's page cannot set that header without a CORS preflight, which is never allowed here.
//!
//! Every answer carries `Tus-Resumable: 1.0.0`; every request but `OPTIONS` must too (else 412).

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{head, post};
use base64::Engine;
use ferry_endpoint::{Requester, UploadProgress};
use ferry_proto::tus;
use tower_http::set_header::SetResponseHeaderLayer;
use uuid::Uuid;

use super::AppState;
use super::data::collection_id;
use crate::error::DataError;

const TUS_VERSION: &str = tus::VERSION;
const TUS_RESUMABLE: HeaderName = HeaderName::from_static(tus::RESUMABLE);
const TUS_VERSIONS: HeaderName = HeaderName::from_static(tus::VERSIONS);
const UPLOAD_OFFSET: HeaderName = HeaderName::from_static(tus::UPLOAD_OFFSET);
const UPLOAD_LENGTH: HeaderName = HeaderName::from_static(tus::UPLOAD_LENGTH);
const CSRF_HEADER: &str = "x-csrf-token";

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/uploads/{collection}", post(create).options(options))
        .route(
            "/uploads/{collection}/{id}",
            head(progress).patch(append).delete(terminate),
        )
        .layer(axum::middleware::from_fn(resumable))
        .layer(SetResponseHeaderLayer::overriding(
            TUS_RESUMABLE,
            HeaderValue::from_static(TUS_VERSION),
        ))
}

/// A request must say it speaks this version of tus (discovery, `OPTIONS`, need not).
async fn resumable(req: Request, next: Next) -> Response {
    let spoken = req.headers().get(&TUS_RESUMABLE).map(HeaderValue::as_bytes);
    if req.method() == Method::OPTIONS || spoken == Some(TUS_VERSION.as_bytes()) {
        return next.run(req).await;
    }
    let mut r = DataError::new(
        StatusCode::PRECONDITION_FAILED,
        format!("this server speaks tus {TUS_VERSION}: send Tus-Resumable: {TUS_VERSION}"),
    )
    .into_response();
    r.headers_mut()
        .insert(TUS_VERSIONS, HeaderValue::from_static(TUS_VERSION));
    r
}

/// The caller: a token's bearer, or a browser whose request carries its session's anti-forgery token.
async fn caller(
    s: &AppState,
    headers: &HeaderMap,
    collection: Uuid,
) -> Result<Requester, DataError> {
    if super::authorization(headers).is_some() {
        return Ok(super::requester(s, headers, &collection.to_string()).await?);
    }
    // Browser sessions are the hub's; an endpoint sees only tokens.
    if s.hub.is_none()
        && let Some(session) = super::web::current_session(s, headers).await?
    {
        let presented = headers
            .get(CSRF_HEADER)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        if !s.auth.csrf_ok(&session, presented) {
            return Err(DataError::new(
                StatusCode::FORBIDDEN,
                "a browser's upload needs its session's anti-forgery token in X-CSRF-Token",
            ));
        }
        return Ok(s
            .endpoint
            .requester(session.identity)
            .await?
            .signed_in_at(Some(session.auth_time)));
    }
    Err(DataError::new(
        StatusCode::UNAUTHORIZED,
        "an upload needs a token for the collection, or a signed-in browser",
    ))
}

/// A header's value as a byte count: digits only (no sign, no spaces), within 64 bits.
fn byte_count(headers: &HeaderMap, name: &HeaderName) -> Result<u64, DataError> {
    let bad = |why: &str| DataError::new(StatusCode::BAD_REQUEST, format!("{name}: {why}"));
    let raw = headers.get(name).ok_or_else(|| bad("missing"))?.as_bytes();
    if raw.is_empty() || !raw.iter().all(u8::is_ascii_digit) {
        return Err(bad("must be a whole number of bytes"));
    }
    std::str::from_utf8(raw)
        .ok()
        .and_then(|t| t.parse().ok())
        .ok_or_else(|| bad("too large"))
}

/// The collection path in `Upload-Metadata` (`key base64,key base64,...`): the value of `path`, given once.
fn metadata_path(headers: &HeaderMap) -> Result<String, DataError> {
    let bad =
        |why: String| DataError::new(StatusCode::BAD_REQUEST, format!("Upload-Metadata: {why}"));
    let raw = match headers.get(tus::UPLOAD_METADATA) {
        Some(v) => v.to_str().map_err(|_| bad("not ASCII text".into()))?,
        None => "",
    };
    let mut found = None;
    for pair in raw.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once(' ').unwrap_or((pair, ""));
        if key != tus::METADATA_PATH {
            continue;
        }
        if found.is_some() {
            return Err(bad("path is given more than once".into()));
        }
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(value.trim())
            .map_err(|e| bad(format!("path is not base64: {e}")))?;
        found = Some(String::from_utf8(bytes).map_err(|_| bad("path is not UTF-8".into()))?);
    }
    found.ok_or_else(|| bad("needs path: the collection path of the file, base64-encoded".into()))
}

/// The BLAKE3 digest `Upload-Checksum` gives for a `PATCH` body (`blake3 <base64>`), if any; another algorithm
/// is refused (tus: 400), so that a body is never kept unchecked when its sender asked for a check.
fn upload_checksum(headers: &HeaderMap) -> Result<Option<[u8; 32]>, DataError> {
    let bad =
        |why: String| DataError::new(StatusCode::BAD_REQUEST, format!("Upload-Checksum: {why}"));
    let Some(raw) = headers.get(tus::UPLOAD_CHECKSUM) else {
        return Ok(None);
    };
    let raw = raw.to_str().map_err(|_| bad("not ASCII text".into()))?;
    let (algorithm, digest) = raw.trim().split_once(' ').unwrap_or((raw.trim(), ""));
    if !algorithm.eq_ignore_ascii_case(tus::BLAKE3) {
        return Err(bad(format!(
            "{algorithm:?} is not an algorithm this server checks; it checks {}",
            tus::BLAKE3
        )));
    }
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(digest.trim())
        .map_err(|e| bad(format!("the digest is not base64: {e}")))?;
    let digest = <[u8; 32]>::try_from(bytes.as_slice())
        .map_err(|_| bad(format!("a {} digest is 32 bytes", tus::BLAKE3)))?;
    Ok(Some(digest))
}

fn with_progress(status: StatusCode, p: UploadProgress, length: bool) -> Response {
    let mut r = status.into_response();
    let h = r.headers_mut();
    h.insert(UPLOAD_OFFSET, HeaderValue::from(p.offset));
    if length {
        h.insert(UPLOAD_LENGTH, HeaderValue::from(p.length));
    }
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

/// `OPTIONS /uploads/<collection>`: what this server speaks.
async fn options() -> Response {
    let mut r = StatusCode::NO_CONTENT.into_response();
    let h = r.headers_mut();
    h.insert(TUS_VERSIONS, HeaderValue::from_static(TUS_VERSION));
    h.insert(
        HeaderName::from_static(tus::EXTENSION),
        HeaderValue::from_static(tus::EXTENSIONS),
    );
    h.insert(
        HeaderName::from_static(tus::CHECKSUM_ALGORITHM),
        HeaderValue::from_static(tus::BLAKE3),
    );
    r
}

/// `POST /uploads/<collection>`: begins an upload; 201 with its `Location`.
async fn create(
    State(s): State<AppState>,
    Path(collection): Path<String>,
    headers: HeaderMap,
) -> Result<Response, DataError> {
    let coll = collection_id(&collection)?;
    let length = byte_count(&headers, &UPLOAD_LENGTH)?;
    let path = metadata_path(&headers)?;
    let who = caller(&s, &headers, coll).await?;
    let id = s
        .endpoint
        .create_upload(Some(&who), coll, &path, length)
        .await?;
    let mut r = StatusCode::CREATED.into_response();
    if let Ok(v) = HeaderValue::from_str(&format!("{}/{id}", tus::uploads_path(coll))) {
        r.headers_mut().insert(header::LOCATION, v);
    }
    Ok(r)
}

/// The collection and upload the URL names (an id that is not a UUID names no upload), and the caller.
async fn upload_caller(
    s: &AppState,
    headers: &HeaderMap,
    collection: &str,
    id: &str,
) -> Result<(Uuid, Uuid, Requester), DataError> {
    let coll = collection_id(collection)?;
    let id = Uuid::parse_str(id)
        .map_err(|_| DataError::new(StatusCode::NOT_FOUND, format!("no upload {id:?}")))?;
    Ok((coll, id, caller(s, headers, coll).await?))
}

/// `HEAD /uploads/<collection>/<id>`: how much arrived.
async fn progress(
    State(s): State<AppState>,
    Path((collection, id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, DataError> {
    let (coll, id, who) = upload_caller(&s, &headers, &collection, &id).await?;
    let p = s.endpoint.upload_progress(Some(&who), coll, id).await?;
    Ok(with_progress(StatusCode::OK, p, true))
}

/// `PATCH /uploads/<collection>/<id>`: more bytes, from `Upload-Offset`; 204 with the new offset.
async fn append(
    State(s): State<AppState>,
    Path((collection, id)): Path<(String, String)>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, DataError> {
    let media = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(str::trim);
    if !media.is_some_and(|m| m.eq_ignore_ascii_case(tus::OFFSET_STREAM)) {
        return Err(DataError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!("the body of a PATCH must be {}", tus::OFFSET_STREAM),
        ));
    }
    let offset = byte_count(&headers, &UPLOAD_OFFSET)?;
    let checksum = upload_checksum(&headers)?;
    let (coll, id, who) = upload_caller(&s, &headers, &collection, &id).await?;
    let p = s
        .endpoint
        .append_upload(
            Some(&who),
            coll,
            id,
            offset,
            checksum,
            body.into_data_stream(),
        )
        .await?;
    Ok(with_progress(StatusCode::NO_CONTENT, p, false))
}

/// `DELETE /uploads/<collection>/<id>`: cancels the upload; its bytes are removed.
async fn terminate(
    State(s): State<AppState>,
    Path((collection, id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, DataError> {
    let (coll, id, who) = upload_caller(&s, &headers, &collection, &id).await?;
    s.endpoint.terminate_upload(Some(&who), coll, id).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    #[test]
    fn byte_counts_are_plain_digits() {
        let n = |v: &str| byte_count(&headers(&[("upload-length", v)]), &UPLOAD_LENGTH).ok();
        assert_eq!(n("0"), Some(0));
        assert_eq!(n("1073741824"), Some(1 << 30));
        assert_eq!(n("18446744073709551615"), Some(u64::MAX));
        for bad in [
            "",
            "+5",
            "-1",
            " 5",
            "5 ",
            "1e9",
            "18446744073709551616",
            "0x10",
        ] {
            assert_eq!(n(bad), None, "{bad:?}");
        }
        assert!(byte_count(&HeaderMap::new(), &UPLOAD_LENGTH).is_err());
    }

    #[test]
    fn checksums_are_blake3_digests() {
        let sum = |v: &str| upload_checksum(&headers(&[("upload-checksum", v)]));
        let digest = [7u8; 32];
        let b64 = base64::engine::general_purpose::STANDARD.encode(digest);
        assert_eq!(sum(&format!("blake3 {b64}")).ok(), Some(Some(digest)));
        assert_eq!(sum(&format!("BLAKE3 {b64}")).ok(), Some(Some(digest)));
        assert_eq!(upload_checksum(&HeaderMap::new()).ok(), Some(None));
        for bad in [
            format!("sha256 {b64}"),
            "blake3".into(),
            "blake3 AAAA".into(),
            "blake3 !!!".into(),
        ] {
            assert!(sum(&bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn metadata_gives_the_path_once() {
        let path = |v: &str| metadata_path(&headers(&[("upload-metadata", v)])).ok();
        // "/d/ü.bin" and "x.bin" in base64.
        assert_eq!(
            path("filename eC5iaW4=,path L2Qvw7wuYmlu").as_deref(),
            Some("/d/ü.bin")
        );
        assert_eq!(path("path L2Qvw7wuYmlu,empty").as_deref(), Some("/d/ü.bin"));
        assert_eq!(path("filename eC5iaW4="), None);
        assert_eq!(path("path"), Some(String::new()));
        assert_eq!(path("path !!!"), None);
        assert_eq!(path("path /w=="), None, "not UTF-8");
        assert_eq!(path("path eA==,path eQ=="), None);
        assert!(metadata_path(&HeaderMap::new()).is_err());
    }
}
