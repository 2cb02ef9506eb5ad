//! The e-mailed invitation link. Before anyone is asked to sign in it says what is shared and by whom (or why
//! the code no longer works); a signed-in person then accepts with a form, so that merely opening a link
//! changes nothing.

use axum::Router;
use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::get;
use ferry_auth::AuthError;
use ferry_core::time::rfc3339;
use ferry_endpoint::{EndpointError, InvitationPreview};

use super::web::{SignedForm, current_session, error_page, escape, page, signed_form};
use super::{AppState, parse_params};
use crate::error::{PageError, endpoint_message, endpoint_status};

pub fn router() -> Router<AppState> {
    Router::new().route("/invitation", get(invitation).post(redeem))
}

/// `2026-12-10T18:00:00Z` as people read it: `2026-12-10 18:00 UTC`.
fn when(t: i64) -> String {
    let s = rfc3339(t);
    match s.split_once('T') {
        Some((date, time)) => format!("{date} {} UTC", time.get(..5).unwrap_or(time)),
        None => s,
    }
}

fn url_encode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// What is shared, by whom, until when, and the inviter's note.
fn describe(p: &InvitationPreview) -> String {
    let from = match &p.invited_by {
        Some(i) => format!(
            "<strong>{}</strong> ({})",
            escape(&i.name),
            escape(&i.username)
        ),
        None => "Someone who no longer has an account here".into(),
    };
    let note = p
        .message
        .as_deref()
        .map(|m| {
            format!(
                "<p>Their message:</p><blockquote id=\"message\" style=\"white-space:pre-wrap\">{}</blockquote>",
                escape(m)
            )
        })
        .unwrap_or_default();
    let access_ends = p
        .access_expires_at
        .map(|t| format!(" The access itself ends on {}.", when(t)))
        .unwrap_or_default();
    format!(
        "<p>{from} invited <strong>{to}</strong> to <strong>{mode}</strong> access to the folder \
         <code>{path}</code> of <strong>{name}</strong>.</p>{note}\
         <p>The invitation can be accepted once, until {expires}.{access_ends}</p>",
        to = escape(&p.sent_to),
        mode = if p.write { "read-write" } else { "read" },
        path = escape(&p.path),
        name = escape(&p.collection_display_name),
        expires = when(p.expires_at),
    )
}

/// `GET /invitation?code=…`: the invitation, described. Not signed in: a link to sign in and come back;
/// signed in: the form that accepts it. A code that no longer works says why (410), one that never worked
/// says only that (404); neither asks anything.
async fn invitation(
    State(s): State<AppState>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> Result<Response, PageError> {
    let raw = q.unwrap_or_default();
    let q = parse_params(&raw)?;
    let code = q.get("code").map(String::as_str).unwrap_or("");
    if code.is_empty() {
        return Ok(error_page("the link has no invitation code"));
    }
    let preview = match s.endpoint.invitation_preview(code).await {
        Ok(p) => p,
        Err(EndpointError::NotFound(_)) => {
            return Ok(page(
                StatusCode::NOT_FOUND,
                "No such invitation",
                "<p class=\"err\">This link does not match any invitation. Check that the whole link was copied \
                 from the e-mail.</p>",
            ));
        }
        Err(EndpointError::Gone(why)) => {
            return Ok(page(
                StatusCode::GONE,
                "This invitation no longer works",
                &format!("<p class=\"err\">{}</p>", escape(&why)),
            ));
        }
        Err(e) => {
            return Ok(page(
                endpoint_status(&e),
                "Cannot show the invitation",
                &format!("<p class=\"err\">{}</p>", escape(&endpoint_message(&e))),
            ));
        }
    };
    let about = describe(&preview);
    let Some(session) = current_session(&s, &headers).await? else {
        let next = format!("/invitation?code={}", url_encode(code));
        return Ok(page(
            StatusCode::OK,
            "You are invited to shared data",
            &format!(
                "{about}<p>Sign in with the account you use here to accept it (nothing changes until you \
                 accept).</p><p><a id=\"sign-in\" href=\"/v2/web/login?next={next}\">Sign in to accept</a></p>",
                next = escape(&url_encode(&next)),
            ),
        ));
    };
    Ok(page(
        StatusCode::OK,
        "Accept the invitation?",
        &format!(
            "{about}<p>Logged in as <strong>{user}</strong>. Accepting binds the shared folder to this account.</p>\
             <form method=\"post\" action=\"/invitation\">\
             <input type=\"hidden\" name=\"code\" value=\"{code}\"><input type=\"hidden\" name=\"csrf\" value=\"{csrf}\">\
             <button type=\"submit\">Accept</button></form>\
             <p>Not you? <a href=\"/v2/web/logout\">Log out</a> first.</p>",
            user = escape(&session.identity.username),
            code = escape(code),
            csrf = s.auth.csrf_token(&session),
        ),
    ))
}

/// `POST /invitation`: a signed-in person accepts (with the session's anti-forgery token).
async fn redeem(
    State(s): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, PageError> {
    let (session, form) = match signed_form(&s, &headers, &body).await? {
        SignedForm::Valid(session, form) => (*session, form),
        SignedForm::NoSession => {
            return Ok(error_page(
                "Your session has ended; open the invitation link again.",
            ));
        }
        SignedForm::Forged => {
            return Err(AuthError::Forbidden(
                "the form has expired; open the invitation link again".into(),
            )
            .into());
        }
    };
    let who = s
        .endpoint
        .requester(session.identity)
        .await
        .map_err(|e| AuthError::Internal(e.to_string()))?;
    let code = form.get("code").map(String::as_str).unwrap_or("");
    match s.endpoint.redeem_invitation(&who, code).await {
        Ok(done) => Ok(page(
            StatusCode::OK,
            "Invitation accepted",
            &format!(
                "<p>You now have {mode} access to <code>{path}</code> on <strong>{name}</strong>.</p>\
                 <p><a id=\"open-shared\" href=\"{open}\">Open the shared folder</a></p>\
                 <p>Collection id: <code>{id}</code>. Use it with <code>ferry ls {id}:{path}</code>, \
                 <code>globus ls {id}:{path}</code>, or open files at <code>{base}/data/{id}{path}</code>.</p>",
                open = escape(&super::app::link(
                    "/file-manager",
                    &[
                        ("origin_id", done["collection_id"].as_str().unwrap_or("")),
                        ("origin_path", done["path"].as_str().unwrap_or("/")),
                    ]
                )),
                mode = if done["permissions"] == "rw" {
                    "read-write"
                } else {
                    "read"
                },
                path = escape(done["path"].as_str().unwrap_or("/")),
                name = escape(done["collection_display_name"].as_str().unwrap_or("")),
                id = escape(done["collection_id"].as_str().unwrap_or("")),
                base = escape(&s.auth.config().issuer),
            ),
        )),
        Err(e) => Ok(error_page(&endpoint_message(&e))),
    }
}
