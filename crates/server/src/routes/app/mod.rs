//! The web app: pages a signed-in person works in (file manager, sharing, activity, groups). Server-rendered
//! HTML and plain forms, so every action works without scripts; one small script (`/static/ferry.js`) adds what
//! only a script can do (resumable uploads with progress, live task progress) and says so when it is missing.
//!
//! Every page acts for the browser's login session through the same domain calls, and so the same access
//! check, as the APIs; every form that changes something carries the session's anti-forgery token.

mod activity;
mod bookmarks;
mod console;
mod files;
mod groups;
mod share;

use std::collections::HashMap;
use std::sync::Arc;

use axum::Router;
use axum::extract::{FromRequest, FromRequestParts, OriginalUri, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::get;
use ferry_auth::Session;
use ferry_endpoint::Requester;

pub(crate) use files::folder_url;

use super::AppState;
use super::web::{SignedForm, current_session, escape, signed_form};
use crate::error::AppError;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(home))
        .route("/static/ferry.js", get(script))
        .route("/static/ferry.css", get(stylesheet))
        .merge(files::router())
        .merge(share::router())
        .merge(activity::router())
        .merge(bookmarks::router())
        .merge(console::router())
        .merge(groups::router())
}

/// The person a page acts for: their session, who they are to the access check, and the token their forms
/// carry.
pub(crate) struct Visitor {
    pub session: Session,
    pub who: Requester,
    pub csrf: String,
}

impl Visitor {
    pub fn username(&self) -> &str {
        &self.session.identity.username
    }
}

/// The login page, which brings the browser back to `uri`.
fn to_login(uri: &axum::http::Uri) -> Response {
    let next = uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
    Redirect::to(&link("/v2/web/login", &[("next", next)])).into_response()
}

async fn requester(s: &AppState, session: &Session) -> Result<Requester, AppError> {
    Ok(s.endpoint
        .requester(session.identity.clone())
        .await?
        .signed_in_at(Some(session.auth_time)))
}

/// The visitor of a page, or (`Err`) the login page when nobody is signed in.
async fn visitor(
    s: &AppState,
    headers: &HeaderMap,
    uri: &axum::http::Uri,
) -> Result<Result<Visitor, Response>, AppError> {
    let Some(session) = current_session(s, headers).await? else {
        return Ok(Err(to_login(uri)));
    };
    let who = requester(s, &session).await?;
    let csrf = s.auth.csrf_token(&session);
    Ok(Ok(Visitor { session, who, csrf }))
}

/// A page's handler takes a `Visitor`: nobody signed in goes to the login page, which brings them back.
impl FromRequestParts<AppState> for Visitor {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, s: &AppState) -> Result<Self, Response> {
        let uri = parts
            .extensions
            .get::<OriginalUri>()
            .map_or_else(|| parts.uri.clone(), |u| u.0.clone());
        match visitor(s, &parts.headers, &uri).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(login)) => Err(login),
            Err(e) => Err(e.into_response()),
        }
    }
}

/// A form posted to the app, checked against the session and its anti-forgery token: the visitor and the
/// form's fields. Without a session the browser goes to the login page (then to the file manager: the form
/// itself is not replayed); a forged or stale form is refused and changes nothing.
pub(crate) struct Posted(pub Visitor, pub HashMap<String, String>);

/// Forms are small: names, paths, options (uploads go elsewhere).
const FORM_LIMIT: usize = 1 << 20;

impl FromRequest<AppState> for Posted {
    type Rejection = Response;

    async fn from_request(req: Request, s: &AppState) -> Result<Self, Response> {
        let (parts, body) = req.into_parts();
        let body = axum::body::to_bytes(body, FORM_LIMIT).await.map_err(|_| {
            AppError::new(StatusCode::PAYLOAD_TOO_LARGE, "the form is too large").into_response()
        })?;
        let refused = |e: AppError| e.into_response();
        match signed_form(s, &parts.headers, &body)
            .await
            .map_err(|e| refused(e.into()))?
        {
            SignedForm::Valid(session, form) => {
                let who = requester(s, &session).await.map_err(refused)?;
                let csrf = s.auth.csrf_token(&session);
                let session = *session;
                Ok(Posted(Visitor { session, who, csrf }, form))
            }
            SignedForm::NoSession => Err(Redirect::to(&link(
                "/v2/web/login",
                &[("next", "/file-manager")],
            ))
            .into_response()),
            SignedForm::Forged => Err(refused(AppError::new(
                StatusCode::FORBIDDEN,
                "This form was not sent from a page of this session (it may have been open for too long, \
                 or another site sent it). Nothing was changed: go back, reload the page and try again.",
            ))),
        }
    }
}

/// A collection named in a URL or form; an id that is not a UUID names none.
pub(crate) fn collection_id(raw: &str) -> Result<uuid::Uuid, AppError> {
    uuid::Uuid::parse_str(raw.trim()).map_err(|_| {
        AppError::new(
            StatusCode::NOT_FOUND,
            format!("There is no collection {raw:?}: choose one from the File Manager."),
        )
    })
}

/// A URL of this server with query parameters.
pub(crate) fn link(path: &str, params: &[(&str, &str)]) -> String {
    let mut q = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in params {
        if !v.is_empty() {
            q.append_pair(k, v);
        }
    }
    let q = q.finish();
    if q.is_empty() {
        path.to_string()
    } else {
        format!("{path}?{q}")
    }
}

/// Which part of the app a page belongs to (the navigation marks it).
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Section {
    Files,
    Bookmarks,
    Activity,
    Groups,
    Identities,
    Console,
    None,
}

/// A page of the app: the header with navigation, the content in `<main>`, a live region for announcements.
pub(crate) fn shell(
    status: StatusCode,
    user: Option<&str>,
    section: Section,
    title: &str,
    body: &str,
) -> Response {
    let nav = [
        (Section::Files, "/file-manager", "File Manager"),
        (Section::Bookmarks, "/bookmarks", "Bookmarks"),
        (Section::Activity, "/activity", "Activity"),
        (Section::Groups, "/groups", "Groups"),
        (Section::Identities, "/v2/web/identities", "Identities"),
        (Section::Console, "/console", "Console"),
    ]
    .iter()
    .map(|(s, href, label)| {
        let current = if *s == section {
            " aria-current=\"page\""
        } else {
            ""
        };
        format!("<li><a href=\"{href}\"{current}>{label}</a></li>")
    })
    .collect::<String>();
    let account = match user {
        Some(u) => format!(
            "<span class=\"who\">Signed in as <strong>{}</strong></span> \
             <a href=\"/v2/web/logout\">Sign out</a>",
            escape(u)
        ),
        None => "<a href=\"/v2/web/login?next=/\">Sign in</a>".into(),
    };
    let html = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{t} · Ferry</title><link rel=\"stylesheet\" href=\"/static/ferry.css\">\
         <script src=\"/static/ferry.js\" defer></script></head><body>\
         <a class=\"skip\" href=\"#content\">Skip to content</a>\
         <header><nav aria-label=\"Main\"><a class=\"brand\" href=\"/\">Ferry</a><ul>{nav}</ul></nav>\
         <div class=\"account\">{account}</div></header>\
         <main id=\"content\" tabindex=\"-1\"><h1>{t}</h1>{body}</main>\
         <div id=\"announce\" class=\"visually-hidden\" role=\"status\" aria-live=\"polite\"></div>\
         </body></html>",
        t = escape(title)
    );
    let mut r = (status, Html(html)).into_response();
    // scripts and styles from this server only: nothing inline, so injected markup cannot run
    super::web::page_headers(
        &mut r,
        "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; \
         img-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'",
    );
    r
}

/// The query of a page that a form sends back to after a change: which change it reports (each page has its
/// fixed set of messages, so nothing a link carries is shown as text).
#[derive(Debug, Default, serde::Deserialize)]
#[serde(default)]
pub(crate) struct Done {
    pub done: String,
}

/// A message box: what happened, shown at the top of a page.
pub(crate) fn notice(kind: &str, text: &str) -> String {
    let role = if kind == "err" { "alert" } else { "status" };
    format!(
        "<p class=\"notice {kind}\" role=\"{role}\" id=\"notice\">{}</p>",
        escape(text)
    )
}

/// `/`: the file manager for a signed-in person, the login page (which returns here) for anyone else.
async fn home(_: Visitor) -> Response {
    Redirect::to("/file-manager").into_response()
}

fn asset(kind: &'static str, body: &'static str) -> Response {
    let mut r = body.into_response();
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(kind));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=300"),
    );
    r
}

async fn script() -> Response {
    asset(
        "text/javascript; charset=utf-8",
        include_str!("../../../static/ferry.js"),
    )
}

async fn stylesheet() -> Response {
    asset(
        "text/css; charset=utf-8",
        include_str!("../../../static/ferry.css"),
    )
}

/// A byte count as people read it.
pub(crate) fn size(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KB", "MB", "GB", "TB"];
    let mut v = n as f64;
    let mut unit = 0;
    while v >= 1000.0 && unit < UNITS.len() - 1 {
        v /= 1000.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

/// An error page says who is signed in, as every other page does: errors are made where the session is not at
/// hand, so the page is drawn again here, once, when the browser has a live session (the lookup happens only for
/// error pages).
pub(crate) async fn errors_name_the_visitor(
    State(s): State<AppState>,
    req: Request,
    next: Next,
) -> Response {
    let cookies: HeaderMap = req
        .headers()
        .get_all(header::COOKIE)
        .iter()
        .map(|v| (header::COOKIE, v.clone()))
        .collect();
    let r = next.run(req).await;
    let Some(error) = r.extensions().get::<Arc<AppError>>().cloned() else {
        return r;
    };
    match current_session(&s, &cookies).await {
        Ok(Some(session)) => error.page(Some(&session.identity.username)),
        _ => r,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_like_file_managers() {
        assert_eq!(size(0), "0 B");
        assert_eq!(size(999), "999 B");
        assert_eq!(size(1500), "1.5 KB");
        assert_eq!(size(1_073_741_824), "1.1 GB");
    }

    #[test]
    fn links_encode_and_drop_empty_parameters() {
        assert_eq!(
            link(
                "/file-manager",
                &[("origin_path", "/a b/&c"), ("filter", "")]
            ),
            "/file-manager?origin_path=%2Fa+b%2F%26c"
        );
        assert_eq!(link("/activity", &[]), "/activity");
    }
}
