//! A logged-in person's own account: changing their password.

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use ferry_auth::{AuthError, Session};

use super::web::{current_session, escape, page};
use super::{AppState, Peer, parse_form};
use crate::error::PageError;

const PASSWORD_PAGE: &str = "/v2/web/password";

pub fn router() -> Router<AppState> {
    Router::new().route(PASSWORD_PAGE, get(password_form).post(change_password))
}

fn to_login() -> Response {
    Redirect::to(&format!("/v2/web/login?next={PASSWORD_PAGE}")).into_response()
}

fn form(s: &AppState, session: &Session, error: Option<&str>, status: StatusCode) -> Response {
    let err = error
        .map(|e| format!("<p class=\"err\" id=\"error\">{}</p>", escape(e)))
        .unwrap_or_default();
    page(
        status,
        "Change your password",
        &format!(
            "{err}<p>Logged in as <strong>{user}</strong>. A new password ends your other sessions and the \
             access of the applications you allowed (they ask again); this browser stays logged in.</p>\
             <form method=\"post\" action=\"{PASSWORD_PAGE}\">\
             <input type=\"hidden\" name=\"csrf\" value=\"{csrf}\">\
             <label for=\"current\">Current password</label>\
             <input id=\"current\" name=\"current\" type=\"password\" autocomplete=\"current-password\" required>\
             <label for=\"new\">New password</label>\
             <input id=\"new\" name=\"new\" type=\"password\" autocomplete=\"new-password\" minlength=\"{min}\" required>\
             <label for=\"again\">New password again</label>\
             <input id=\"again\" name=\"again\" type=\"password\" autocomplete=\"new-password\" minlength=\"{min}\" required>\
             <p>At least {min} characters; not your username, not a common password, not a simple pattern.</p>\
             <button type=\"submit\">Change password</button></form>",
            user = escape(&session.identity.username),
            csrf = s.auth.csrf_token(session),
            min = ferry_auth::accounts::MIN_PASSWORD_CHARS,
        ),
    )
}

/// `GET /v2/web/password`: the form (to the login page first when not logged in).
async fn password_form(
    State(s): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, PageError> {
    Ok(match current_session(&s, &headers).await? {
        Some(session) => form(&s, &session, None, StatusCode::OK),
        None => to_login(),
    })
}

/// `POST /v2/web/password` with the session's anti-forgery token: current password, new one twice.
async fn change_password(
    State(s): State<AppState>,
    Peer(peer): Peer,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, PageError> {
    let form_data = parse_form(&headers, &body)?;
    let Some(session) = current_session(&s, &headers).await? else {
        return Ok(to_login());
    };
    let field = |k: &str| form_data.get(k).map(String::as_str).unwrap_or("");
    if !s.auth.csrf_ok(&session, field("csrf")) {
        return Err(AuthError::Forbidden(
            "the form has expired; open /v2/web/password again".into(),
        )
        .into());
    }
    if field("new") != field("again") {
        return Ok(form(
            &s,
            &session,
            Some("The two new passwords differ; type the same one twice."),
            StatusCode::BAD_REQUEST,
        ));
    }
    match s
        .auth
        .change_password(&session, field("current"), field("new"), &peer)
        .await
    {
        Ok(()) => Ok(page(
            StatusCode::OK,
            "Password changed",
            "<p>Your password is changed. Your other sessions and the applications' access were ended; this \
             browser stays logged in.</p>",
        )),
        Err(AuthError::LoginFailed) => Ok(form(
            &s,
            &session,
            Some("The current password is incorrect."),
            StatusCode::UNAUTHORIZED,
        )),
        Err(AuthError::InvalidRequest(rule)) => {
            Ok(form(&s, &session, Some(&rule), StatusCode::BAD_REQUEST))
        }
        // Throttled (429 with Retry-After) and the rest: the error page of their status.
        Err(e) => Err(e.into()),
    }
}
