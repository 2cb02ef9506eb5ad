//! The pages a person sees: login (for an application asking for access, or to open shared data in the
//! browser), consent, and the page that shows an authorization code to paste into a command-line client.
//! (The invitation pages are in `invitation.rs`.)

use axum::Router;
use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::get;
use ferry_auth::{AuthError, AuthorizeRejection, AuthorizeRequest, Session};

use super::{AppState, Peer, parse_form, parse_params};
use crate::error::PageError;

pub(crate) const SESSION_COOKIE: &str = "ferry_session";
/// Set with the login form; its anti-forgery token is bound to it (login CSRF).
const PRELOGIN_COOKIE: &str = "ferry_login";

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v2/oauth2/authorize", get(authorize))
        .route("/v2/web/login", get(login_form).post(login))
        .route("/v2/web/consent", get(consent).post(decide))
        .route("/v2/web/auth-code", get(auth_code))
        .route("/v2/web/logout", get(logout_form).post(logout))
}

pub(crate) fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Every page forbids framing (clickjacking) and caching.
pub(crate) fn page(status: StatusCode, title: &str, body: &str) -> Response {
    let html = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>{t} · Ferry</title>\
         <style>body{{font-family:system-ui,sans-serif;max-width:32rem;margin:4rem auto;padding:0 1rem;color:#1b2733}}\
         h1{{font-size:1.4rem}}h2{{font-size:1.15rem}}label{{display:block;margin:.8rem 0 .2rem}}input{{width:100%;padding:.5rem;font-size:1rem}}\
         button{{margin-top:1rem;padding:.5rem 1.2rem;font-size:1rem}}.err{{color:#a00}}code{{font-size:1.1rem;\
         word-break:break-all;background:#eef;padding:.3rem}}li{{margin:.2rem 0}}</style></head>\
         <body><main><h1>{t}</h1>{body}</main></body></html>",
        t = escape(title)
    );
    let mut r = (status, Html(html)).into_response();
    page_headers(
        &mut r,
        "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'",
    );
    r
}

/// What every page carries: no framing (clickjacking), no caching, no referrer, and its content policy.
pub(crate) fn page_headers(r: &mut Response, csp: &'static str) {
    let h = r.headers_mut();
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(csp),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
}

pub fn error_page(message: &str) -> Response {
    page(
        StatusCode::BAD_REQUEST,
        "Cannot continue",
        &format!("<p class=\"err\">{}</p>", escape(message)),
    )
}

/// What a login leads to: an application's authorization request, or a page of this server.
pub(crate) enum After<'a> {
    Authorize(&'a str),
    Next(&'a str),
}

/// A place on this server to return to after login: a path, never another site (`//host`, `/\\host`).
pub(crate) fn local_path(next: &str) -> Option<&str> {
    let ok = next.starts_with('/')
        && !next.starts_with("//")
        && !next.starts_with("/\\")
        && !next.chars().any(|c| c.is_control());
    ok.then_some(next)
}

/// The login form, with an anti-forgery token bound to the browser's pre-login cookie (set here when the
/// browser has none): a form posted from another site carries neither, so it cannot log a browser in.
pub(crate) async fn login_page(
    s: &AppState,
    headers: &HeaderMap,
    after: After<'_>,
    error: Option<&str>,
    status: StatusCode,
) -> Result<Response, AuthError> {
    let err = error
        .map(|e| format!("<p class=\"err\">{}</p>", escape(e)))
        .unwrap_or_default();
    let (field, value) = match after {
        After::Authorize(r) => ("request", r),
        After::Next(n) => ("next", n),
    };
    let (prelogin, fresh) = match cookie_value(headers, PRELOGIN_COOKIE) {
        Some(p) if p.starts_with("fpl_") => (p.to_string(), false),
        _ => (ferry_auth::Auth::new_prelogin()?, true),
    };
    let organizations = super::upstream::organization_choice(s, field, value);
    let csrf = s.auth.login_csrf_token(&prelogin);
    let site = match s.auth.site_accounts().await? {
        Some(site) => format!(
            "<h2>Sign in with your {name} account</h2><form method=\"post\" action=\"/v2/web/login\">\
             <input type=\"hidden\" name=\"{field}\" value=\"{v}\">\
             <input type=\"hidden\" name=\"csrf\" value=\"{csrf}\">\
             <input type=\"hidden\" name=\"method\" value=\"site\">\
             <label for=\"site-username\">{name} username</label>\
             <input id=\"site-username\" name=\"username\" autocomplete=\"username\" required>\
             <label for=\"site-password\">Password</label>\
             <input id=\"site-password\" name=\"password\" type=\"password\" autocomplete=\"current-password\" required>\
             <button type=\"submit\">Sign in</button></form>",
            name = escape(&site.display_name),
            v = escape(value),
        ),
        None => String::new(),
    };
    let local = if s.auth.config().local_accounts {
        format!(
            "{heading}<form method=\"post\" action=\"/v2/web/login\">\
             <input type=\"hidden\" name=\"{field}\" value=\"{v}\">\
             <input type=\"hidden\" name=\"csrf\" value=\"{csrf}\">\
             <label for=\"username\">Username</label><input id=\"username\" name=\"username\" autocomplete=\"username\" required>\
             <label for=\"password\">Password</label><input id=\"password\" name=\"password\" type=\"password\" autocomplete=\"current-password\" required>\
             <button type=\"submit\">Log in</button></form>",
            heading = if organizations.is_empty() && site.is_empty() {
                ""
            } else {
                "<h2>Or use an account of this server</h2>"
            },
            v = escape(value),
        )
    } else {
        String::new()
    };
    let mut r = page(
        status,
        "Log in to Ferry",
        &format!("{err}{organizations}{site}{local}"),
    );
    if fresh {
        r.headers_mut().append(
            header::SET_COOKIE,
            cookie(s, PRELOGIN_COOKIE, &prelogin, "/v2/web/login", Some(3600))?,
        );
    }
    Ok(r)
}

pub(crate) fn cookie_value<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

pub(crate) async fn current_session(
    s: &AppState,
    headers: &HeaderMap,
) -> Result<Option<Session>, AuthError> {
    match cookie_value(headers, SESSION_COOKIE) {
        Some(token) => s.auth.session(token).await,
        None => Ok(None),
    }
}

/// A form a browser posted to a page that acts for the person signed in.
pub(crate) enum SignedForm {
    /// The session, and the form's fields; its anti-forgery token matched the session's.
    Valid(Box<Session>, std::collections::HashMap<String, String>),
    /// No (live) session: the person is not signed in (any more).
    NoSession,
    /// The token is missing or not this session's: a cross-site post, or a page kept too long.
    Forged,
}

/// Parses a posted form and checks it against the browser's session and its anti-forgery token.
pub(crate) async fn signed_form(
    s: &AppState,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<SignedForm, PageError> {
    let form = parse_form(headers, body)?;
    let Some(session) = current_session(s, headers).await? else {
        return Ok(SignedForm::NoSession);
    };
    let token = form.get("csrf").map(String::as_str).unwrap_or("");
    Ok(if s.auth.csrf_ok(&session, token) {
        SignedForm::Valid(Box::new(session), form)
    } else {
        SignedForm::Forged
    })
}

/// Validates the authorization request carried in `raw`; a rejection is either a page or a redirect back.
pub(crate) async fn checked(s: &AppState, raw: &str) -> Result<AuthorizeRequest, Response> {
    let q = parse_params(raw).map_err(|e| error_page(&e.to_string()))?;
    s.auth.check_authorize(&q).await.map_err(|r| match r {
        AuthorizeRejection::Page(m) => error_page(&m),
        AuthorizeRejection::Redirect(location) => Redirect::to(&location).into_response(),
    })
}

/// `GET /v2/oauth2/authorize`: log in (always, with `prompt=login`; again, for a session older than
/// `max_age`), then ask for consent. With `prompt=none` no page is shown: the answer goes back to the client.
async fn authorize(
    State(s): State<AppState>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> Result<Response, PageError> {
    let raw = q.unwrap_or_default();
    let req = match checked(&s, &raw).await {
        Ok(r) => r,
        Err(resp) => return Ok(resp),
    };
    let session = current_session(&s, &headers)
        .await?
        .filter(|sess| s.auth.session_is_fresh(&req, sess));
    if req.prompt_none {
        let location = match &session {
            Some(sess) => s.auth.approve_silently(sess, &req).await?,
            None => s.auth.error_redirect(
                &req,
                "login_required",
                "the person is not logged in (or logged in too long ago)",
            ),
        };
        return Ok(Redirect::to(&location).into_response());
    }
    if !req.prompt_login && session.is_some() {
        return Ok(Redirect::to(&format!("/v2/web/consent?{raw}")).into_response());
    }
    Ok(login_page(&s, &headers, After::Authorize(&raw), None, StatusCode::OK).await?)
}

/// `GET /v2/web/login?next=/path`: log in to open a page of this server (shared data, an invitation).
async fn login_form(
    State(s): State<AppState>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> Result<Response, PageError> {
    let q = parse_params(q.as_deref().unwrap_or(""))?;
    let next = q.get("next").map(String::as_str).unwrap_or("/");
    match local_path(next) {
        Some(n) => Ok(login_page(&s, &headers, After::Next(n), None, StatusCode::OK).await?),
        None => Ok(error_page(
            "next: only a path of this server can follow a login",
        )),
    }
}

/// A cookie for this server's pages: HttpOnly, SameSite=Lax, Secure over https.
pub(crate) fn cookie(
    s: &AppState,
    name: &str,
    value: &str,
    path: &str,
    max_age: Option<i64>,
) -> Result<HeaderValue, AuthError> {
    let secure = if s.secure_cookies { "; Secure" } else { "" };
    let age = max_age
        .map(|a| format!("; Max-Age={a}"))
        .unwrap_or_default();
    HeaderValue::from_str(&format!(
        "{name}={value}; Path={path}; HttpOnly; SameSite=Lax{age}{secure}"
    ))
    .map_err(|e| AuthError::Internal(e.to_string()))
}

async fn login(
    State(s): State<AppState>,
    Peer(peer): Peer,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, PageError> {
    let form = parse_form(&headers, &body)?;
    let raw = form.get("request").cloned().unwrap_or_default();
    let next = form.get("next").map(String::as_str);
    let after = match next {
        Some(n) => match local_path(n) {
            Some(n) => After::Next(n),
            None => {
                return Ok(error_page(
                    "next: only a path of this server can follow a login",
                ));
            }
        },
        None => {
            if let Err(resp) = checked(&s, &raw).await {
                return Ok(resp);
            }
            After::Authorize(&raw)
        }
    };
    // Checked before the password: a forged post costs no password check either.
    if !s.auth.login_csrf_ok(
        cookie_value(&headers, PRELOGIN_COOKIE),
        form.get("csrf").map(String::as_str).unwrap_or(""),
    ) {
        return Ok(login_page(
            &s,
            &headers,
            after,
            Some(
                "This login form has expired or did not come from this server; please log in again.",
            ),
            StatusCode::FORBIDDEN,
        )
        .await?);
    }
    let username = form.get("username").map(String::as_str).unwrap_or("");
    let password = form.get("password").map(String::as_str).unwrap_or("");
    let signed_in = if form.get("method").is_some_and(|m| m == "site") {
        s.auth.site_login(username, password, &peer).await
    } else {
        s.auth.login(username, password, &peer).await
    };
    match signed_in {
        Ok(token) => {
            let location = match after {
                After::Next(n) => n.to_string(),
                After::Authorize(r) => format!("/v2/web/consent?{r}"),
            };
            // 303, never 307: the browser must not repeat the POST with the password elsewhere.
            let mut r = Redirect::to(&location).into_response();
            r.headers_mut().insert(
                header::SET_COOKIE,
                cookie(&s, SESSION_COOKIE, &token, "/", None)?,
            );
            Ok(r)
        }
        Err(AuthError::LoginFailed) => Ok(login_page(
            &s,
            &headers,
            after,
            Some("The username or password is incorrect."),
            StatusCode::UNAUTHORIZED,
        )
        .await?),
        Err(e) => Err(e.into()),
    }
}

fn scope_list(req: &AuthorizeRequest) -> String {
    fn walk(scopes: &[ferry_core::Scope], out: &mut String) {
        for sc in scopes {
            out.push_str(&format!("<li><code>{}</code>", escape(&sc.name)));
            if !sc.dependencies.is_empty() {
                out.push_str("<ul>");
                walk(&sc.dependencies, out);
                out.push_str("</ul>");
            }
            out.push_str("</li>");
        }
    }
    let mut out = String::from("<ul>");
    walk(&req.scopes, &mut out);
    out.push_str("</ul>");
    out
}

/// The current session if it satisfies the request (`max_age`).
async fn fresh_session(
    s: &AppState,
    headers: &HeaderMap,
    req: &AuthorizeRequest,
) -> Result<Option<Session>, AuthError> {
    Ok(current_session(s, headers)
        .await?
        .filter(|sess| s.auth.session_is_fresh(req, sess)))
}

async fn consent(
    State(s): State<AppState>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> Result<Response, PageError> {
    let raw = q.unwrap_or_default();
    let req = match checked(&s, &raw).await {
        Ok(r) => r,
        Err(resp) => return Ok(resp),
    };
    let Some(session) = fresh_session(&s, &headers, &req).await? else {
        return Ok(login_page(&s, &headers, After::Authorize(&raw), None, StatusCode::OK).await?);
    };
    let who = s.auth.present_client(&req).await?;
    let asks = match &who.template_name {
        Some(t) => format!(
            "The application is <strong>an instance of {}</strong>, which calls itself “{}”. It asks",
            escape(t),
            escape(&who.name)
        ),
        None => format!(
            "The application <strong>{}</strong> asks",
            escape(&who.name)
        ),
    };
    let trust = if who.verified {
        "<p>This application was registered and verified by the administrator of this server.</p>"
            .to_string()
    } else {
        format!(
            "<p class=\"err\">This application is not verified: it was registered {} without the \
             administrator's review. Allow it only if you started this yourself.</p>",
            match (&who.template_name, &who.registered_by) {
                (Some(_), _) => "from a public template, which anyone can do".to_string(),
                (None, Some(by)) => format!("by {}", escape(by)),
                (None, None) => "through the API".to_string(),
            }
        )
    };
    let body = format!(
        "<p>Logged in as <strong>{user}</strong>.</p>\
         <p>{asks} to act on your behalf with:</p>{scopes}{trust}\
         <p>{refresh}</p>\
         <p>After you decide, you will be sent to <strong>{dest}</strong>.</p>\
         <form method=\"post\" action=\"/v2/web/consent\">\
         <input type=\"hidden\" name=\"request\" value=\"{r}\"><input type=\"hidden\" name=\"csrf\" value=\"{csrf}\">\
         <button type=\"submit\" name=\"decision\" value=\"allow\">Allow</button> \
         <button type=\"submit\" name=\"decision\" value=\"deny\">Deny</button></form>",
        user = escape(&session.identity.username),
        scopes = scope_list(&req),
        refresh = if req.offline {
            "It will keep this access until you revoke it."
        } else {
            ""
        },
        dest = escape(&who.destination),
        r = escape(&raw),
        csrf = s.auth.csrf_token(&session),
    );
    Ok(page(StatusCode::OK, "Allow access?", &body))
}

async fn decide(
    State(s): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, PageError> {
    let form = parse_form(&headers, &body)?;
    let raw = form.get("request").cloned().unwrap_or_default();
    let req = match checked(&s, &raw).await {
        Ok(r) => r,
        Err(resp) => return Ok(resp),
    };
    let Some(session) = fresh_session(&s, &headers, &req).await? else {
        return Ok(login_page(
            &s,
            &headers,
            After::Authorize(&raw),
            Some("Your session has ended; log in again."),
            StatusCode::UNAUTHORIZED,
        )
        .await?);
    };
    if !s
        .auth
        .csrf_ok(&session, form.get("csrf").map(String::as_str).unwrap_or(""))
    {
        return Err(AuthError::Forbidden(
            "the form has expired; start again from the application".into(),
        )
        .into());
    }
    let location = match form.get("decision").map(String::as_str) {
        Some("allow") => s.auth.approve(&session, &req).await?,
        _ => s.auth.deny(&req),
    };
    Ok(Redirect::to(&location).into_response())
}

/// The default redirect of native applications: shows the code for the person to paste.
async fn auth_code(RawQuery(q): RawQuery) -> Result<Response, PageError> {
    let q = parse_params(q.as_deref().unwrap_or(""))?;
    if let Some(code) = q.get("code") {
        return Ok(page(
            StatusCode::OK,
            "Authorization code",
            &format!(
                "<p>Copy this code and paste it into the application that asked for it:</p>\
                 <p><code id=\"auth-code\">{}</code></p><p>It can be used once, within a few minutes.</p>",
                escape(code)
            ),
        ));
    }
    let why = q
        .get("error_description")
        .or(q.get("error"))
        .cloned()
        .unwrap_or_else(|| "no authorization code was given".into());
    Ok(error_page(&why))
}

/// `GET /v2/web/logout` changes nothing (a link or an image on another site must not log anyone out): it
/// shows the form that does.
async fn logout_form(State(s): State<AppState>, headers: HeaderMap) -> Result<Response, PageError> {
    let Some(session) = current_session(&s, &headers).await? else {
        return Ok(page(
            StatusCode::OK,
            "Log out",
            "<p>You are not logged in to Ferry.</p>",
        ));
    };
    Ok(page(
        StatusCode::OK,
        "Log out",
        &format!(
            "<p>Logged in as <strong>{user}</strong>.</p>\
             <form method=\"post\" action=\"/v2/web/logout\">\
             <input type=\"hidden\" name=\"csrf\" value=\"{csrf}\">\
             <button type=\"submit\">Log out</button></form>",
            user = escape(&session.identity.username),
            csrf = s.auth.csrf_token(&session),
        ),
    ))
}

/// `POST /v2/web/logout` with the session's anti-forgery token.
async fn logout(
    State(s): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, PageError> {
    let form = parse_form(&headers, &body)?;
    if let Some(session) = current_session(&s, &headers).await? {
        if !s
            .auth
            .csrf_ok(&session, form.get("csrf").map(String::as_str).unwrap_or(""))
        {
            return Err(AuthError::Forbidden(
                "the logout form has expired; open /v2/web/logout again".into(),
            )
            .into());
        }
        s.auth.logout(&session).await?;
    }
    let mut r = page(
        StatusCode::OK,
        "Logged out",
        "<p>You are logged out of Ferry.</p>",
    );
    r.headers_mut().insert(
        header::SET_COOKIE,
        cookie(&s, SESSION_COOKIE, "", "/", Some(0))?,
    );
    Ok(r)
}
