//! The browser side: the authorization request, logging in, consenting, and issuing the code.

use std::collections::HashMap;

use ferry_core::{Client, ClientKind, Identity, IdentityKind, Scope};
use ferry_store::{ConsentRecord, SecretKind, SecretRecord};
use serde_json::json;
use uuid::Uuid;

use crate::secrets;
use crate::service::Auth;
use crate::{AuthError, Result};

/// A validated authorization request.
#[derive(Debug, Clone)]
pub struct AuthorizeRequest {
    pub client: Client,
    pub redirect_uri: String,
    pub scopes: Vec<Scope>,
    pub state: Option<String>,
    pub code_challenge: Option<String>,
    pub nonce: Option<String>,
    pub offline: bool,
    /// `prompt=login`: authenticate again even with a live session.
    pub prompt_login: bool,
}

/// Why an authorization request cannot go on.
#[derive(Debug, Clone, PartialEq)]
pub enum AuthorizeRejection {
    /// The client or redirect URI cannot be trusted: show an error page, never redirect (no open redirector).
    Page(String),
    /// The client is known and the redirect URI registered: send the error back to it.
    Redirect(String),
}

/// A logged-in browser.
#[derive(Debug, Clone)]
pub struct Session {
    pub identity: Identity,
    pub hash: String,
    pub auth_time: i64,
}

impl Auth {
    fn redirect_with(
        &self,
        redirect_uri: &str,
        state: Option<&str>,
        pairs: &[(&str, &str)],
    ) -> String {
        let mut url = match url::Url::parse(redirect_uri) {
            Ok(u) => u,
            Err(_) => return redirect_uri.to_string(),
        };
        {
            let mut q = url.query_pairs_mut();
            for (k, v) in pairs {
                q.append_pair(k, v);
            }
            if let Some(s) = state {
                q.append_pair("state", s);
            }
            q.append_pair("iss", &self.cfg.issuer);
        }
        url.to_string()
    }

    /// Validates the query of `/v2/oauth2/authorize`.
    pub async fn check_authorize(
        &self,
        q: &HashMap<String, String>,
    ) -> std::result::Result<AuthorizeRequest, AuthorizeRejection> {
        let page = |m: &str| AuthorizeRejection::Page(m.to_string());
        let client_id = q
            .get("client_id")
            .ok_or_else(|| page("The request names no client_id."))?;
        let client = match Uuid::parse_str(client_id) {
            Ok(id) => self
                .store
                .get_client(id)
                .await
                .map_err(|_| page("Try again later."))?,
            Err(_) => None,
        }
        .ok_or_else(|| {
            page("The application that sent you here is not registered with this server.")
        })?;
        let redirect_uri = q
            .get("redirect_uri")
            .ok_or_else(|| page("The request names no redirect_uri."))?;
        if !client.accepts_redirect(redirect_uri) {
            return Err(page(
                "The redirect_uri of this request is not registered for the application.",
            ));
        }
        let state = q.get("state").cloned();
        let fail = |error: &str, desc: &str| {
            AuthorizeRejection::Redirect(self.redirect_with(
                redirect_uri,
                state.as_deref(),
                &[("error", error), ("error_description", desc)],
            ))
        };
        if q.get("response_type").map(String::as_str) != Some("code") {
            return Err(fail(
                "unsupported_response_type",
                "only response_type=code is supported",
            ));
        }
        let scopes = Scope::parse_list(q.get("scope").map(String::as_str).unwrap_or(""))
            .map_err(|e| fail("invalid_scope", &e.to_string()))?;
        if scopes.is_empty() {
            return Err(fail("invalid_scope", "no scope was requested"));
        }
        fn unknown(scopes: &[Scope]) -> Option<&Scope> {
            scopes.iter().find_map(|s| {
                s.resource_server()
                    .err()
                    .map(|_| s)
                    .or_else(|| unknown(&s.dependencies))
            })
        }
        if let Some(s) = unknown(&scopes) {
            return Err(fail(
                "invalid_scope",
                &format!("unknown scope '{}'", s.name),
            ));
        }
        let code_challenge = match (
            q.get("code_challenge"),
            q.get("code_challenge_method").map(String::as_str),
        ) {
            (Some(c), Some("S256")) if secrets::valid_challenge(c) => Some(c.clone()),
            (Some(_), Some("S256")) => {
                return Err(fail(
                    "invalid_request",
                    "code_challenge must be 43 base64url characters",
                ));
            }
            (Some(_), _) => {
                return Err(fail(
                    "invalid_request",
                    "code_challenge_method must be S256",
                ));
            }
            (None, Some(_)) => {
                return Err(fail(
                    "invalid_request",
                    "code_challenge_method without code_challenge",
                ));
            }
            (None, None) if client.kind == ClientKind::Native => {
                return Err(fail(
                    "invalid_request",
                    "native clients must use PKCE (S256)",
                ));
            }
            (None, None) => None,
        };
        Ok(AuthorizeRequest {
            redirect_uri: redirect_uri.clone(),
            scopes,
            state,
            code_challenge,
            nonce: q.get("nonce").cloned(),
            offline: q.get("access_type").map(String::as_str) == Some("offline"),
            prompt_login: q.get("prompt").map(String::as_str) == Some("login"),
            client,
        })
    }

    /// Checks a person's username and password and opens a browser session; returns the session secret.
    pub async fn login(&self, username: &str, password: &str, peer: &str) -> Result<String> {
        let key = Self::limiter_key("login", &username.to_ascii_lowercase(), peer);
        if let Some(retry_after) = self.limiter.blocked(&key) {
            return Err(AuthError::SlowDown { retry_after });
        }
        let identity = self
            .resolve_identity(username.trim())
            .await?
            .filter(|i| i.kind == IdentityKind::Person);
        let hash = match &identity {
            Some(i) => self.store.password_hash(i.id).await?,
            None => None,
        };
        let identity = match identity {
            Some(i) if secrets::verify_password(password, hash.as_deref()) => i,
            _ => {
                if identity.is_none() {
                    secrets::verify_password(password, None);
                }
                self.limiter.record_failure(&key);
                return Err(AuthError::LoginFailed);
            }
        };
        let token = secrets::random_secret("fss_")?;
        let now = self.now();
        self.store
            .insert_secret(&SecretRecord {
                hash: self.hasher.hash(&token),
                kind: SecretKind::Session,
                grant_id: Uuid::new_v4(),
                client_id: None,
                identity_id: identity.id,
                resource_server: None,
                scopes: String::new(),
                extra: json!({}),
                issued_at: now,
                expires_at: now + self.cfg.session_lifetime,
                used_at: None,
                revoked_at: None,
            })
            .await?;
        Ok(token)
    }

    pub async fn session(&self, token: &str) -> Result<Option<Session>> {
        let Some(rec) = self
            .store
            .get_secret(&self.hasher.hash(token))
            .await?
            .filter(|r| r.kind == SecretKind::Session && r.is_live(self.now()))
        else {
            return Ok(None);
        };
        Ok(self
            .store
            .get_identity(rec.identity_id)
            .await?
            .map(|identity| Session {
                identity,
                hash: rec.hash,
                auth_time: rec.issued_at,
            }))
    }

    pub async fn logout(&self, session: &Session) -> Result<()> {
        Ok(self.store.revoke_secret(&session.hash, self.now()).await?)
    }

    /// A per-session anti-forgery token for the consent form.
    pub fn csrf_token(&self, session: &Session) -> String {
        self.hasher.hash(&format!("csrf:{}", session.hash))
    }

    pub fn csrf_ok(&self, session: &Session, presented: &str) -> bool {
        let expected = self.csrf_token(session);
        aws_lc_rs::constant_time::verify_slices_are_equal(expected.as_bytes(), presented.as_bytes())
            .is_ok()
    }

    /// The person approved: record the consents, issue a single-use code, and return where to send the browser.
    pub async fn approve(&self, session: &Session, req: &AuthorizeRequest) -> Result<String> {
        let now = self.now();
        for s in &req.scopes {
            self.record_consent(session.identity.id, req.client.id, s, None, now)
                .await?;
        }
        let code = secrets::random_secret("fac_")?;
        let scope_string = req
            .scopes
            .iter()
            .map(|s| s.to_string())
            .collect::<Vec<_>>()
            .join(" ");
        self.store
            .insert_secret(&SecretRecord {
                hash: self.hasher.hash(&code),
                kind: SecretKind::Code,
                grant_id: Uuid::new_v4(),
                client_id: Some(req.client.id),
                identity_id: session.identity.id,
                resource_server: None,
                scopes: scope_string,
                extra: json!({
                    "redirect_uri": req.redirect_uri,
                    "code_challenge": req.code_challenge,
                    "nonce": req.nonce,
                    "access_type": if req.offline { "offline" } else { "online" },
                }),
                issued_at: now,
                expires_at: now + self.cfg.code_lifetime,
                used_at: None,
                revoked_at: None,
            })
            .await?;
        Ok(self.redirect_with(&req.redirect_uri, req.state.as_deref(), &[("code", &code)]))
    }

    /// The person declined.
    pub fn deny(&self, req: &AuthorizeRequest) -> String {
        self.redirect_with(
            &req.redirect_uri,
            req.state.as_deref(),
            &[
                ("error", "access_denied"),
                ("error_description", "the request was declined"),
            ],
        )
    }

    fn record_consent<'a>(
        &'a self,
        identity: Uuid,
        client: Uuid,
        scope: &'a Scope,
        parent: Option<Uuid>,
        now: i64,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<()>> + Send + 'a>> {
        Box::pin(async move {
            let id = self
                .store
                .upsert_consent(&ConsentRecord {
                    id: Uuid::new_v4(),
                    identity_id: identity,
                    client_id: client,
                    scope: scope.name.clone(),
                    parent_id: parent,
                    created: now,
                    last_used: now,
                })
                .await?;
            for d in &scope.dependencies {
                self.record_consent(identity, client, d, Some(id), now)
                    .await?;
            }
            Ok(())
        })
    }
}
