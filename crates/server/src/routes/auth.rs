//! Globus Auth: the OAuth2 endpoints, OIDC discovery, and the `/v2/api` identity and client routes.

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use ferry_auth::{ClientCredentials, TokenReply};
use ferry_core::scope::AUTH_RS;
use ferry_proto::auth::{ScopeEnvelope, ScopesResponse};
use serde_json::Value;
use uuid::Uuid;

use super::{AppState, Peer, authorization, parse_form, parse_json, parse_params, principal};
use crate::error::{AuthApiError, OAuthError};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v2/oauth2/token", post(token))
        .route("/v2/oauth2/token/introspect", post(introspect))
        .route("/v2/oauth2/token/validate", post(validate))
        .route("/v2/oauth2/token/revoke", post(revoke))
        .route("/v2/oauth2/userinfo", get(userinfo).post(userinfo))
        .route("/v2/api/identities", get(identities))
        .route("/v2/api/identities/{id}/consents", get(consents))
        .route(
            "/v2/api/identities/{id}/consents/{consent_id}",
            axum::routing::delete(revoke_consent),
        )
        .route("/v2/api/clients", post(create_client))
        .route("/v2/api/clients/{id}", axum::routing::delete(delete_client))
        .route("/v2/api/clients/{id}/scopes", post(create_scope))
        .route("/v2/api/scopes", get(list_scopes))
        .route(
            "/v2/api/scopes/{id}",
            get(show_scope).put(update_scope).delete(delete_scope),
        )
        .route("/v2/api/policies", get(list_policies).post(create_policy))
        .route(
            "/v2/api/policies/{id}",
            get(show_policy).put(update_policy).delete(delete_policy),
        )
        .route("/.well-known/openid-configuration", get(discovery))
        .route("/jwk.json", get(jwks))
}

fn no_store(v: impl IntoResponse) -> Response {
    let mut r = v.into_response();
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

type Form = std::collections::HashMap<String, String>;

fn client_form(
    headers: &HeaderMap,
    body: &[u8],
) -> Result<(Form, Option<ClientCredentials>), OAuthError> {
    let form = parse_form(headers, body)?;
    let creds = ClientCredentials::from_request(authorization(headers), &form)?;
    Ok((form, creds))
}

async fn token(
    State(s): State<AppState>,
    Peer(peer): Peer,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, OAuthError> {
    let (form, creds) = client_form(&headers, &body)?;
    Ok(match s.auth.token(&form, creds.as_ref(), &peer).await? {
        TokenReply::Tokens(t) => no_store(Json(t)),
        TokenReply::Dependent(list) => no_store(Json(list)),
    })
}

async fn introspect(
    State(s): State<AppState>,
    Peer(peer): Peer,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, OAuthError> {
    let (form, creds) = client_form(&headers, &body)?;
    Ok(no_store(Json(
        s.auth.introspect(creds.as_ref(), &peer, &form).await?,
    )))
}

async fn validate(
    State(s): State<AppState>,
    Peer(peer): Peer,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, OAuthError> {
    let (form, creds) = client_form(&headers, &body)?;
    Ok(no_store(Json(
        s.auth.validate(creds.as_ref(), &peer, &form).await?,
    )))
}

async fn revoke(
    State(s): State<AppState>,
    Peer(peer): Peer,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, OAuthError> {
    let (form, creds) = client_form(&headers, &body)?;
    Ok(no_store(Json(
        s.auth.revoke(creds.as_ref(), &peer, &form).await?,
    )))
}

async fn userinfo(State(s): State<AppState>, headers: HeaderMap) -> Result<Response, AuthApiError> {
    let p = principal(&s, &headers, AUTH_RS).await?;
    Ok(no_store(Json(s.auth.userinfo(&p).await?)))
}

async fn identities(
    State(s): State<AppState>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> Result<Response, AuthApiError> {
    principal(&s, &headers, AUTH_RS).await?;
    let q = parse_params(q.as_deref().unwrap_or(""))?;
    let found = s
        .auth
        .lookup_identities(
            q.get("usernames").map(String::as_str),
            q.get("ids").map(String::as_str),
        )
        .await?;
    Ok(Json(ferry_proto::auth::IdentitiesResponse { identities: found }).into_response())
}

fn uuid_of(raw: &str, what: &str) -> Result<Uuid, ferry_auth::AuthError> {
    Uuid::parse_str(raw).map_err(|_| ferry_auth::AuthError::NotFound(format!("no {what} '{raw}'")))
}

async fn consents(
    State(s): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, AuthApiError> {
    let p = principal(&s, &headers, AUTH_RS).await?;
    let id = Uuid::parse_str(&id).map_err(|_| {
        ferry_auth::AuthError::InvalidRequest(format!("'{id}' is not an identity id"))
    })?;
    Ok(Json(s.auth.consents(&p, id).await?).into_response())
}

/// A person withdraws a consent; the tokens of the grants it covered stop at once.
async fn revoke_consent(
    State(s): State<AppState>,
    headers: HeaderMap,
    Path((id, consent)): Path<(String, String)>,
) -> Result<Response, AuthApiError> {
    let p = principal(&s, &headers, AUTH_RS).await?;
    let (id, consent) = (uuid_of(&id, "identity")?, uuid_of(&consent, "consent")?);
    Ok(Json(s.auth.revoke_consent(&p, id, consent).await?).into_response())
}

async fn create_scope(
    State(s): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, AuthApiError> {
    let p = principal(&s, &headers, AUTH_RS).await?;
    let doc = s
        .auth
        .create_scope(&p, uuid_of(&id, "client")?, &parse_json(&body)?)
        .await?;
    Ok(Json(ScopeEnvelope { scope: doc }).into_response())
}

async fn list_scopes(
    State(s): State<AppState>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> Result<Response, AuthApiError> {
    let p = principal(&s, &headers, AUTH_RS).await?;
    let q = parse_params(q.as_deref().unwrap_or(""))?;
    let scopes = s
        .auth
        .list_scopes(
            &p,
            q.get("ids").map(String::as_str),
            q.get("scope_strings").map(String::as_str),
        )
        .await?;
    Ok(Json(ScopesResponse { scopes }).into_response())
}

async fn show_scope(
    State(s): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, AuthApiError> {
    let p = principal(&s, &headers, AUTH_RS).await?;
    let doc = s.auth.get_scope(&p, uuid_of(&id, "scope")?).await?;
    Ok(Json(ScopeEnvelope { scope: doc }).into_response())
}

async fn update_scope(
    State(s): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, AuthApiError> {
    let p = principal(&s, &headers, AUTH_RS).await?;
    let doc = s
        .auth
        .update_scope(&p, uuid_of(&id, "scope")?, &parse_json(&body)?)
        .await?;
    Ok(Json(ScopeEnvelope { scope: doc }).into_response())
}

async fn delete_scope(
    State(s): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, AuthApiError> {
    let p = principal(&s, &headers, AUTH_RS).await?;
    let doc = s.auth.delete_scope(&p, uuid_of(&id, "scope")?).await?;
    Ok(Json(ScopeEnvelope { scope: doc }).into_response())
}

async fn create_client(
    State(s): State<AppState>,
    Peer(peer): Peer,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, AuthApiError> {
    // Registration with a token creates a client owned by the caller; without one, only the template-based
    // registration that `globus login` performs is allowed.
    let owner = match authorization(&headers) {
        Some(_) => Some(principal(&s, &headers, AUTH_RS).await?),
        None => None,
    };
    let req: Value = parse_json(&body)?;
    Ok(Json(s.auth.register_client(owner.as_ref(), &req, &peer).await?).into_response())
}

/// Deleting a client: with its own credentials (Basic, as `globus logout` does) or its owner's token.
async fn delete_client(
    State(s): State<AppState>,
    Peer(peer): Peer,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, AuthApiError> {
    let id = Uuid::parse_str(&id)
        .map_err(|_| ferry_auth::AuthError::NotFound(format!("no client '{id}'")))?;
    let auth_header = authorization(&headers).unwrap_or("");
    let (by_client, by_owner) =
        if auth_header.starts_with("Basic ") || auth_header.starts_with("basic ") {
            let creds = ClientCredentials::from_request(Some(auth_header), &Default::default())?;
            (
                Some(s.auth.authenticate_client(creds.as_ref(), &peer).await?),
                None,
            )
        } else {
            (None, Some(principal(&s, &headers, AUTH_RS).await?))
        };
    Ok(Json(
        s.auth
            .delete_client(id, by_client.as_ref(), by_owner.as_ref())
            .await?,
    )
    .into_response())
}

async fn discovery(State(s): State<AppState>) -> Json<Value> {
    Json(s.auth.discovery())
}

async fn jwks(State(s): State<AppState>) -> Json<Value> {
    Json(s.auth.jwks())
}

fn policy_id(raw: &str) -> Result<Uuid, AuthApiError> {
    Ok(uuid_of(raw, "policy")?)
}

async fn list_policies(
    State(s): State<AppState>,
    headers: HeaderMap,
) -> Result<Json<Value>, AuthApiError> {
    let p = principal(&s, &headers, AUTH_RS).await?;
    Ok(Json(s.auth.list_policies(&p.identity).await?))
}

async fn create_policy(
    State(s): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Value>, AuthApiError> {
    let p = principal(&s, &headers, AUTH_RS).await?;
    Ok(Json(
        s.auth
            .create_policy(&p.identity, &parse_json(&body)?)
            .await?,
    ))
}

async fn show_policy(
    State(s): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<Value>, AuthApiError> {
    let p = principal(&s, &headers, AUTH_RS).await?;
    Ok(Json(s.auth.get_policy(&p.identity, policy_id(&id)?).await?))
}

async fn update_policy(
    State(s): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<Value>, AuthApiError> {
    let p = principal(&s, &headers, AUTH_RS).await?;
    Ok(Json(
        s.auth
            .update_policy(&p.identity, policy_id(&id)?, &parse_json(&body)?)
            .await?,
    ))
}

async fn delete_policy(
    State(s): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<Value>, AuthApiError> {
    let p = principal(&s, &headers, AUTH_RS).await?;
    Ok(Json(
        s.auth.delete_policy(&p.identity, policy_id(&id)?).await?,
    ))
}
