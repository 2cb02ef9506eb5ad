//! Signing in through one's organization (an upstream OpenID Connect provider), and one's linked identities:
//! the choice on the login page, the redirect out, the callback, and the page that links and unlinks.

use std::collections::HashMap;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use ferry_auth::federation::CALLBACK_PATH;
use ferry_auth::{AfterSignIn, ProviderConfig, UpstreamAnswer, UpstreamStart};

use super::web::{
    SESSION_COOKIE, SignedForm, checked, cookie, cookie_value, current_session, error_page, escape,
    local_path, page, signed_form,
};
use super::{AppState, parse_params};
use crate::error::PageError;

/// Binds a sign-in sent to a provider to the browser that started it.
const UPSTREAM_COOKIE: &str = "ferry_upstream";
/// Up to this many providers get a button each; more get a type-ahead field.
const BUTTONS: usize = 6;
const IDENTITIES: &str = "/v2/web/identities";

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v2/web/login/upstream", get(begin))
        .route(CALLBACK_PATH, get(callback))
        .route(IDENTITIES, get(identities))
        .route("/v2/web/identities/link", post(link))
        .route("/v2/web/identities/unlink", post(unlink))
        .route("/v2/web/identities/consents/revoke", post(revoke_consent))
}

/// The login page's "sign in with your organization" part (empty when no provider is configured). `field`
/// and `value` carry what follows the login (an authorization request, or a page).
pub(crate) fn organization_choice(s: &AppState, field: &str, value: &str) -> String {
    let providers = s.auth.upstream().providers();
    if providers.is_empty() {
        return String::new();
    }
    let hidden = format!(
        "<input type=\"hidden\" name=\"{field}\" value=\"{}\">",
        escape(value)
    );
    format!(
        "<h2>Sign in with your organization</h2>\
         <form method=\"get\" action=\"/v2/web/login/upstream\">{hidden}{}</form>",
        provider_inputs(providers)
    )
}

/// A button per provider, or for many a field that completes their names as one types.
fn provider_inputs(providers: &[ProviderConfig]) -> String {
    if providers.len() <= BUTTONS {
        return providers
            .iter()
            .map(|p| {
                format!(
                    "<p><button type=\"submit\" name=\"provider\" value=\"{}\">{}</button></p>",
                    escape(&p.id),
                    escape(&p.display_name)
                )
            })
            .collect();
    }
    let options: String = providers
        .iter()
        .map(|p| format!("<option value=\"{}\">", escape(&p.display_name)))
        .collect();
    format!(
        "<label for=\"provider\">Your organization</label>\
         <input id=\"provider\" name=\"provider\" list=\"organizations\" autocomplete=\"off\" required>\
         <datalist id=\"organizations\">{options}</datalist><button type=\"submit\">Continue</button>"
    )
}

/// A provider by id or by the name the page showed (any case).
fn provider_named<'a>(s: &'a AppState, name: &str) -> Option<&'a ProviderConfig> {
    let name = name.trim();
    s.auth
        .upstream()
        .providers()
        .iter()
        .find(|p| p.id == name || p.display_name.eq_ignore_ascii_case(name))
}

/// Sends the browser to the provider, with the cookie that only this browser can finish the sign-in with.
fn to_provider(s: &AppState, start: UpstreamStart) -> Result<Response, PageError> {
    let mut r = Redirect::to(&start.location).into_response();
    r.headers_mut().append(
        header::SET_COOKIE,
        cookie(
            s,
            UPSTREAM_COOKIE,
            &start.browser_secret,
            CALLBACK_PATH,
            Some(600),
        )?,
    );
    Ok(r)
}

/// `GET /v2/web/login/upstream?provider=…&request=…|next=…`: off to the provider.
async fn begin(State(s): State<AppState>, RawQuery(q): RawQuery) -> Result<Response, PageError> {
    let q = parse_params(q.as_deref().unwrap_or(""))?;
    let after = match (q.get("request"), q.get("next")) {
        (Some(raw), _) => {
            if let Err(resp) = checked(&s, raw).await {
                return Ok(resp);
            }
            AfterSignIn::Authorize(raw.clone())
        }
        (None, next) => match local_path(next.map(String::as_str).unwrap_or("/")) {
            Some(n) => AfterSignIn::Page(n.to_string()),
            None => {
                return Ok(error_page(
                    "next: only a path of this server can follow a login",
                ));
            }
        },
    };
    let name = q.get("provider").map(String::as_str).unwrap_or("");
    let Some(p) = provider_named(&s, name) else {
        return Ok(page(
            StatusCode::BAD_REQUEST,
            "Unknown organization",
            &format!(
                "<p class=\"err\">No organization here is called “{}”. Go back and choose one from the list.</p>",
                escape(name)
            ),
        ));
    };
    let start = s.auth.begin_upstream(&p.id, after, None).await?;
    to_provider(&s, start)
}

/// `GET /v2/web/login/callback`: the provider's answer. A sign-in opens a session and goes on; a link goes
/// back to the identities page with the session unchanged.
async fn callback(
    State(s): State<AppState>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> Result<Response, PageError> {
    let q = parse_params(q.as_deref().unwrap_or(""))?;
    let get = |k: &str| q.get(k).map(String::as_str);
    let Some(state) = get("state") else {
        return Ok(error_page(
            "The answer from the sign-in service has no state; start again from the login page.",
        ));
    };
    let signed = s
        .auth
        .finish_upstream(UpstreamAnswer {
            state,
            code: get("code"),
            error: get("error"),
            error_description: get("error_description"),
            iss: get("iss"),
            browser_secret: cookie_value(&headers, UPSTREAM_COOKIE),
        })
        .await?;
    let mut r = match (signed.linked_to, signed.after) {
        (Some(_), _) => Redirect::to(IDENTITIES).into_response(),
        (None, after) => {
            let token = s.auth.open_session(&signed.identity).await?;
            let location = match after {
                AfterSignIn::Authorize(raw) => format!("/v2/web/consent?{raw}"),
                AfterSignIn::Page(p) => p,
            };
            let mut r = Redirect::to(&location).into_response();
            r.headers_mut().append(
                header::SET_COOKIE,
                cookie(&s, SESSION_COOKIE, &token, "/", None)?,
            );
            r
        }
    };
    r.headers_mut().append(
        header::SET_COOKIE,
        cookie(&s, UPSTREAM_COOKIE, "", CALLBACK_PATH, Some(0))?,
    );
    Ok(r)
}

fn login_first() -> Response {
    Redirect::to(&format!(
        "/v2/web/login?next={}",
        url::form_urlencoded::byte_serialize(IDENTITIES.as_bytes()).collect::<String>()
    ))
    .into_response()
}

/// `GET /v2/web/identities`: the identities of the person signed in, with "link another" and "unlink".
#[derive(Debug, Default, serde::Deserialize)]
#[serde(default)]
struct IdentitiesPlace {
    done: String,
}

/// `GET /v2/web/identities`: the person's linked identities (link, unlink) and the applications they
/// allowed to act for them (revoke).
async fn identities(
    State(s): State<AppState>,
    headers: HeaderMap,
    axum::extract::Query(place): axum::extract::Query<IdentitiesPlace>,
) -> Result<Response, PageError> {
    let Some(session) = current_session(&s, &headers).await? else {
        return Ok(login_first());
    };
    let csrf = s.auth.csrf_token(&session);
    let set = s.auth.identity_set(&session.identity).await?;
    let rows: String = set
        .iter()
        .enumerate()
        .map(|(n, i)| {
            let (_, provider) = s.auth.provider_of(i);
            let action = if i.id == session.identity.id {
                "signed in now".to_string()
            } else {
                format!(
                    "<form method=\"post\" action=\"/v2/web/identities/unlink\">\
                     <input type=\"hidden\" name=\"csrf\" value=\"{csrf}\">\
                     <input type=\"hidden\" name=\"identity\" value=\"{}\">\
                     <button type=\"submit\">Unlink {}</button></form>",
                    i.id,
                    escape(&i.username)
                )
            };
            format!(
                "<tr><th scope=\"row\">{}{}</th><td>{}</td><td>{action}</td></tr>",
                escape(&i.username),
                if n == 0 && set.len() > 1 {
                    " (primary)"
                } else {
                    ""
                },
                escape(provider)
            )
        })
        .collect();
    let providers = s.auth.upstream().providers();
    let link = if providers.is_empty() {
        "<p>No organizations are configured here, so there is nothing to link.</p>".to_string()
    } else {
        format!(
            "<h2>Link another identity</h2><p>Sign in with the other identity; it then counts as yours \
             everywhere here (permissions, groups, roles).</p>\
             <form method=\"post\" action=\"/v2/web/identities/link\">\
             <input type=\"hidden\" name=\"csrf\" value=\"{csrf}\">{}</form>",
            provider_inputs(providers)
        )
    };
    let consents = consents_table(&s, &session, &csrf).await?;
    let done = match place.done.as_str() {
        "revoked" => super::app::notice(
            "ok",
            "Access withdrawn: the application's tokens no longer work; it must ask you again.",
        ),
        _ => String::new(),
    };
    Ok(super::app::shell(
        StatusCode::OK,
        Some(&session.identity.username),
        super::app::Section::Identities,
        "Your identities and applications",
        &format!(
            "{done}<table class=\"listing\"><caption>Identities that are you here</caption><thead><tr>\
             <th scope=\"col\">Identity</th><th scope=\"col\">Signs in through</th>\
             <th scope=\"col\"><span class=\"visually-hidden\">Action</span></th></tr></thead>\
             <tbody>{rows}</tbody></table>{link}\
             <h2>Applications you allowed</h2>{consents}\
             <p><a href=\"/v2/web/password\">Change your password</a> (local accounts)</p>"
        ),
    ))
}

/// The person's consents: which application may do what for them, with a button to withdraw each.
async fn consents_table(
    s: &AppState,
    session: &ferry_auth::Session,
    csrf: &str,
) -> Result<String, PageError> {
    let doc = s.auth.consents_of(session.identity.id).await?;
    let mut rows = String::new();
    for c in doc["consents"].as_array().into_iter().flatten() {
        // a dependent consent goes with the one it depends on
        if c["dependency_path"].as_array().is_some_and(|p| p.len() > 1) {
            continue;
        }
        let client = c["client"]
            .as_str()
            .and_then(|id| uuid::Uuid::parse_str(id).ok());
        let name = match client {
            Some(id) => s
                .auth
                .store()
                .get_client(id)
                .await
                .ok()
                .flatten()
                .map_or_else(|| id.to_string(), |c| c.name),
            None => String::new(),
        };
        let scope = c["scope_name"].as_str().unwrap_or("");
        rows.push_str(&format!(
            "<tr><th scope=\"row\">{name}</th><td>{scope}</td><td>{used}</td><td>\
             <form method=\"post\" action=\"/v2/web/identities/consents/revoke\">\
             <input type=\"hidden\" name=\"csrf\" value=\"{csrf}\">\
             <input type=\"hidden\" name=\"consent\" value=\"{id}\">\
             <button type=\"submit\" aria-label=\"Revoke {name} ({scope})\">Revoke</button></form></td></tr>",
            name = escape(&name),
            scope = escape(scope),
            used = escape(c["last_used"].as_str().unwrap_or("")),
            id = escape(c["id"].as_str().unwrap_or("")),
        ));
    }
    Ok(if rows.is_empty() {
        "<p>None: no application acts for you.</p>".into()
    } else {
        format!(
            "<table class=\"listing\"><caption>Applications and what they may do</caption><thead><tr>\
             <th scope=\"col\">Application</th><th scope=\"col\">Access</th><th scope=\"col\">Last used</th>\
             <th scope=\"col\"><span class=\"visually-hidden\">Revoke</span></th></tr></thead>\
             <tbody>{rows}</tbody></table>"
        )
    })
}

/// The id a form of the identities page names in `field`.
fn form_id(form: &HashMap<String, String>, field: &str) -> Option<uuid::Uuid> {
    form.get(field).and_then(|i| uuid::Uuid::parse_str(i).ok())
}

/// `POST /v2/web/identities/consents/revoke`: withdraws a consent (and every token it covered).
async fn revoke_consent(
    State(s): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, PageError> {
    let (session, form) = match identities_form(&s, &headers, &body).await? {
        Ok(signed) => signed,
        Err(page) => return Ok(page),
    };
    let Some(consent) = form_id(&form, "consent") else {
        return Ok(error_page("consent: not a consent id"));
    };
    s.auth
        .withdraw_consent(session.identity.id, consent)
        .await?;
    Ok(Redirect::to(&format!("{IDENTITIES}?done=revoked")).into_response())
}

/// A form of the identities page, from the person signed in, with the page's token; else the page to show.
async fn identities_form(
    s: &AppState,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Result<(ferry_auth::Session, HashMap<String, String>), Response>, PageError> {
    Ok(match signed_form(s, headers, body).await? {
        SignedForm::Valid(session, form) => Ok((*session, form)),
        SignedForm::NoSession => Err(login_first()),
        SignedForm::Forged => Err(error_page(
            "This form has expired; open the identities page again.",
        )),
    })
}

/// `POST /v2/web/identities/link`: sign in at a provider, after a recent sign-in here.
async fn link(
    State(s): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, PageError> {
    let (session, form) = match identities_form(&s, &headers, &body).await? {
        Ok(signed) => signed,
        Err(page) => return Ok(page),
    };
    if !s.auth.may_link(&session) {
        return Ok(page(
            StatusCode::FORBIDDEN,
            "Sign in again first",
            &format!(
                "<p>Linking an identity needs a sign-in from the last {} minutes. \
                 <a href=\"/v2/web/login?next={}\">Sign in again</a>, then link.</p>",
                ferry_auth::federation::LINK_FRESHNESS / 60,
                url::form_urlencoded::byte_serialize(IDENTITIES.as_bytes()).collect::<String>()
            ),
        ));
    }
    let name = form.get("provider").map(String::as_str).unwrap_or("");
    let Some(p) = provider_named(&s, name) else {
        return Ok(error_page(&format!(
            "No organization here is called “{name}”."
        )));
    };
    let start = s
        .auth
        .begin_upstream(
            &p.id,
            AfterSignIn::Page(IDENTITIES.into()),
            Some(session.identity.id),
        )
        .await?;
    to_provider(&s, start)
}

/// `POST /v2/web/identities/unlink`.
async fn unlink(
    State(s): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, PageError> {
    let (session, form) = match identities_form(&s, &headers, &body).await? {
        Ok(signed) => signed,
        Err(page) => return Ok(page),
    };
    let Some(other) = form_id(&form, "identity") else {
        return Ok(error_page("identity: not an identity id"));
    };
    s.auth.unlink_identity(&session.identity, other).await?;
    Ok(Redirect::to(IDENTITIES).into_response())
}
