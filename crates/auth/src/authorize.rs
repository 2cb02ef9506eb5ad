//! The browser side: the authorization request, logging in, consenting, and issuing the code.

use std::collections::HashMap;

use ferry_core::identity::GRANT_AUTHORIZATION_CODE;
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
    /// `prompt=none`: show no page; answer `login_required` or `consent_required` instead.
    pub prompt_none: bool,
    /// `max_age`: a session older than this many seconds must log in again.
    pub max_age: Option<i64>,
}

/// Why an authorization request cannot go on.
#[derive(Debug, Clone, PartialEq)]
pub enum AuthorizeRejection {
    /// The client or redirect URI cannot be trusted: show an error page, never redirect (no open redirector).
    Page(String),
    /// The client is known and the redirect URI registered: send the error back to it.
    Redirect(String),
}

/// What the consent page says about the application that asks: which one (a template instance is named
/// after its template first: anyone can make one and call it anything), whether the administrator
/// registered it, and where the person will be sent.
#[derive(Debug, Clone)]
pub struct ClientPresentation {
    /// The name the client gave itself.
    pub name: String,
    /// For an instance of a template: the template's name.
    pub template_name: Option<String>,
    pub verified: bool,
    /// Who registered an unverified client through the API, if anyone.
    pub registered_by: Option<String>,
    /// The origin of the redirect URI (`https://host:port`).
    pub destination: String,
}

/// A logged-in browser.
#[derive(Debug, Clone)]
pub struct Session {
    pub identity: Identity,
    /// Public id of the session (its grant id), reported by introspection as `session_id`.
    pub id: Uuid,
    pub hash: String,
    /// When the person logged in.
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
        if !client.allows_grant(GRANT_AUTHORIZATION_CODE) {
            return Err(fail(
                "unauthorized_client",
                "this client may not use the authorization_code grant",
            ));
        }
        let requested = Scope::parse_list(q.get("scope").map(String::as_str).unwrap_or(""))
            .map_err(|e| fail("invalid_scope", &e.to_string()))?;
        // Every named dependency must be one the scope declares (or a built-in rule allows); the declared ones
        // are added: the person consents to the whole tree.
        let scopes = match self.consent_tree(&client, &requested).await {
            Ok(t) => t,
            Err(AuthError::InvalidScope(m)) => return Err(fail("invalid_scope", &m)),
            Err(_) => return Err(fail("server_error", "try again later")),
        };
        let prompt: Vec<&str> = q
            .get("prompt")
            .map(|p| p.split_whitespace().collect())
            .unwrap_or_default();
        if prompt.contains(&"none") && prompt.len() > 1 {
            return Err(fail(
                "invalid_request",
                "prompt=none cannot be combined with other prompt values",
            ));
        }
        let max_age = match q.get("max_age") {
            None => None,
            Some(v) => match v.parse::<i64>() {
                Ok(n) if n >= 0 => Some(n),
                _ => {
                    return Err(fail(
                        "invalid_request",
                        "max_age must be a non-negative number of seconds",
                    ));
                }
            },
        };
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
            prompt_login: prompt.contains(&"login"),
            prompt_none: prompt.contains(&"none"),
            max_age,
            client,
        })
    }

    pub async fn present_client(&self, req: &AuthorizeRequest) -> Result<ClientPresentation> {
        let c = &req.client;
        let template_name = match c.template_id {
            Some(t) => Some(
                self.store
                    .get_client(t)
                    .await?
                    .map(|t| t.name)
                    .unwrap_or_else(|| format!("a deleted template ({t})")),
            ),
            None => None,
        };
        let registered_by = match c.owner {
            Some(o) if !c.verified => self.store.get_identity(o).await?.map(|i| i.username),
            _ => None,
        };
        let destination = url::Url::parse(&req.redirect_uri)
            .map(|u| u.origin().ascii_serialization())
            .unwrap_or_else(|_| req.redirect_uri.clone());
        Ok(ClientPresentation {
            name: c.name.clone(),
            template_name,
            verified: c.verified,
            registered_by,
            destination,
        })
    }

    /// Does this session satisfy the request (`max_age`)? A session that does not must log in again.
    pub fn session_is_fresh(&self, req: &AuthorizeRequest, session: &Session) -> bool {
        req.max_age
            .is_none_or(|age| self.now() - session.auth_time <= age)
    }

    /// Where to send the browser back with an OpenID Connect error such as `login_required`.
    pub fn error_redirect(&self, req: &AuthorizeRequest, error: &str, description: &str) -> String {
        self.redirect_with(
            &req.redirect_uri,
            req.state.as_deref(),
            &[("error", error), ("error_description", description)],
        )
    }

    /// `prompt=none` with a session: issue the code when the person already consented to the whole tree for
    /// this (verified) client; otherwise `consent_required`, since no page may be shown.
    pub async fn approve_silently(
        &self,
        session: &Session,
        req: &AuthorizeRequest,
    ) -> Result<String> {
        let consents = self.store.list_consents(session.identity.id).await?;
        fn covered(
            consents: &[ConsentRecord],
            client: Uuid,
            parent: Option<Uuid>,
            scopes: &[Scope],
        ) -> bool {
            scopes.iter().all(|s| {
                consents
                    .iter()
                    .find(|c| c.client_id == client && c.parent_id == parent && c.scope == s.name)
                    .is_some_and(|c| covered(consents, client, Some(c.id), &s.dependencies))
            })
        }
        if req.client.verified && covered(&consents, req.client.id, None, &req.scopes) {
            self.approve(session, req).await
        } else {
            Ok(self.error_redirect(
                req,
                "consent_required",
                "the person has not consented to this request",
            ))
        }
    }

    /// Checks a person's username and password and opens a browser session; returns the session secret.
    pub async fn login(&self, username: &str, password: &str, peer: &str) -> Result<String> {
        if !self.cfg.local_accounts {
            return Err(AuthError::Forbidden(
                "Accounts of this server are switched off; sign in through your organization."
                    .into(),
            ));
        }
        let key = Self::limiter_key("login", &username.to_ascii_lowercase(), peer);
        if let Some(retry_after) = self.limiter.blocked(&key, peer) {
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
        // An unknown username is checked against a dummy hash: the same work, the same time.
        let ok = self.check_password(password, hash).await?;
        let identity = match identity {
            Some(i) if ok => i,
            _ => {
                self.limiter.record_failure(&key, peer);
                return Err(AuthError::LoginFailed);
            }
        };
        self.open_session(&identity).await
    }

    /// Opens a browser session for an identity that just proved who it is; returns the session secret.
    pub async fn open_session(&self, identity: &Identity) -> Result<String> {
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
                id: rec.grant_id,
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
        secrets::equal(&self.csrf_token(session), presented)
    }

    /// A fresh value for the pre-login cookie, which the login form's anti-forgery token is bound to.
    pub fn new_prelogin() -> Result<String> {
        secrets::random_secret("fpl_")
    }

    /// The login form's anti-forgery token for a browser holding the pre-login cookie `prelogin`: a
    /// cross-site page can neither read it nor plant the cookie it belongs to (login CSRF).
    pub fn login_csrf_token(&self, prelogin: &str) -> String {
        self.hasher.hash(&format!("login-csrf:{prelogin}"))
    }

    pub fn login_csrf_ok(&self, prelogin: Option<&str>, presented: &str) -> bool {
        prelogin.is_some_and(|p| {
            p.starts_with("fpl_") && secrets::equal(&self.login_csrf_token(p), presented)
        })
    }

    /// The person approved: record the consents, issue a single-use code, and return where to send the browser.
    pub async fn approve(&self, session: &Session, req: &AuthorizeRequest) -> Result<String> {
        if !self.session_is_fresh(req, session) {
            return Err(AuthError::Forbidden(
                "the login is older than the application allows; log in again".into(),
            ));
        }
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
                    "session": {"session_id": session.id, "auth_time": session.auth_time},
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
