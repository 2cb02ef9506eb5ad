//! The token endpoint's grants, and introspection, validation and revocation.

use std::collections::HashMap;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use ferry_core::identity::{
    GRANT_AUTHORIZATION_CODE, GRANT_CLIENT_CREDENTIALS, GRANT_REFRESH_TOKEN, GRANT_TYPES,
};
use ferry_core::{Client, ClientKind, Scope};
use ferry_proto::auth::{SessionAuthentication, SessionInfo, TokenDoc, TokenResponse};
use ferry_store::{SecretKind, SecretRecord};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::scopes::tree_json;
use crate::secrets;
use crate::service::{Auth, Issue};
use crate::{AuthError, Result};

/// How a client said who it is: HTTP Basic (`client_secret_basic`), form fields (`client_secret_post`), or,
/// for native clients, only its `client_id`.
#[derive(Debug, Clone)]
pub struct ClientCredentials {
    pub id: String,
    pub secret: Option<String>,
}

impl ClientCredentials {
    /// Reads credentials from an `Authorization` header value and the form. Returns None when there are none.
    pub fn from_request(
        authorization: Option<&str>,
        form: &HashMap<String, String>,
    ) -> Result<Option<Self>> {
        if let Some(h) = authorization {
            let Some(b64) = h
                .strip_prefix("Basic ")
                .or_else(|| h.strip_prefix("basic "))
            else {
                return Err(AuthError::InvalidClient);
            };
            let decoded = STANDARD
                .decode(b64.trim())
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
                .ok_or(AuthError::InvalidClient)?;
            let (id, secret) = decoded.split_once(':').ok_or(AuthError::InvalidClient)?;
            // RFC 6749 §2.3.1: both parts are form-encoded before being joined.
            let dec = |s: &str| {
                url::form_urlencoded::parse(format!("x={s}").as_bytes())
                    .next()
                    .map(|(_, v)| v.into_owned())
                    .unwrap_or_default()
            };
            return Ok(Some(Self {
                id: dec(id),
                secret: Some(dec(secret)),
            }));
        }
        Ok(form.get("client_id").map(|id| Self {
            id: id.clone(),
            secret: form.get("client_secret").cloned(),
        }))
    }
}

/// What `POST /v2/oauth2/token` answers: a token response, or for the dependent-token grant a bare list.
#[derive(Debug)]
pub enum TokenReply {
    Tokens(TokenResponse),
    Dependent(Vec<TokenDoc>),
}

/// The answer of introspection: either the active token's claims or exactly `{"active": false}`.
pub type Introspection = Value;

fn required<'a>(form: &'a HashMap<String, String>, key: &str) -> Result<&'a str> {
    form.get(key)
        .map(String::as_str)
        .filter(|v| !v.is_empty())
        .ok_or_else(|| AuthError::InvalidRequest(format!("the '{key}' parameter is required")))
}

fn parse_scopes(s: &str) -> Result<Vec<Scope>> {
    let scopes = Scope::parse_list(s).map_err(|e| AuthError::InvalidScope(e.to_string()))?;
    if scopes.is_empty() {
        return Err(AuthError::InvalidScope("no scope was requested".into()));
    }
    check_known(&scopes)?;
    Ok(scopes)
}

fn check_known(scopes: &[Scope]) -> Result<()> {
    for s in scopes {
        s.resource_server()
            .map_err(|e| AuthError::InvalidScope(e.to_string()))?;
        check_known(&s.dependencies)?;
    }
    Ok(())
}

/// Why a code cannot be exchanged by this client with this request, if it cannot.
fn code_fits(
    rec: &SecretRecord,
    client: &Client,
    redirect_uri: Option<&str>,
    verifier: Option<&str>,
    now: i64,
) -> std::result::Result<(), &'static str> {
    if rec.used_at.is_some() {
        return Err("the authorization code was already used");
    }
    if rec.client_id != Some(client.id) {
        return Err("the authorization code was issued to another client");
    }
    if rec.revoked_at.is_some() || rec.expires_at <= now {
        return Err("the authorization code has expired");
    }
    if redirect_uri != rec.extra["redirect_uri"].as_str() {
        return Err("redirect_uri does not match the one of the authorization request");
    }
    match (rec.extra["code_challenge"].as_str(), verifier) {
        (Some(challenge), Some(v))
            if !secrets::valid_verifier(v) || !secrets::pkce_matches(v, challenge) =>
        {
            Err("the code_verifier does not match the code_challenge")
        }
        (Some(_), None) => Err("code_verifier is required for this code"),
        (None, Some(_)) => Err("a code_verifier was sent but no code_challenge was"),
        _ => Ok(()),
    }
}

impl Auth {
    /// Authenticates a client at the token, introspection or revocation endpoint. Every failure is the same
    /// `invalid_client`; repeated failures for one client from one address are refused for a while.
    pub async fn authenticate_client(
        &self,
        creds: Option<&ClientCredentials>,
        peer: &str,
    ) -> Result<Client> {
        let creds = creds.ok_or(AuthError::InvalidClient)?;
        let key = Self::limiter_key("client", &creds.id, peer);
        if let Some(retry_after) = self.limiter.blocked(&key, peer) {
            return Err(AuthError::SlowDown { retry_after });
        }
        let client = match Uuid::parse_str(&creds.id) {
            Ok(id) => self.store.get_client(id).await?,
            Err(_) => None,
        };
        let ok = match (&client, &creds.secret) {
            (Some(c), Some(secret)) if c.kind == ClientKind::Confidential => {
                let hash = self.store.client_secret_hash(c.id).await?;
                self.client_secret_ok(secret, hash).await?
            }
            (Some(c), None) => c.kind == ClientKind::Native,
            _ => {
                // Same work as a real check, so timing does not tell unknown clients apart.
                self.hasher
                    .client_secret_matches(creds.secret.as_deref().unwrap_or_default(), None);
                false
            }
        };
        match client {
            Some(c) if ok => Ok(c),
            _ => {
                self.limiter.record_failure(&key, peer);
                Err(AuthError::InvalidClient)
            }
        }
    }

    /// `POST /v2/oauth2/token`.
    pub async fn token(
        &self,
        form: &HashMap<String, String>,
        creds: Option<&ClientCredentials>,
        peer: &str,
    ) -> Result<TokenReply> {
        let grant_type = required(form, "grant_type")?;
        if !GRANT_TYPES.contains(&grant_type) {
            return Err(AuthError::UnsupportedGrantType(grant_type.to_string()));
        }
        let client = self.authenticate_client(creds, peer).await?;
        if !client.allows_grant(grant_type) {
            return Err(AuthError::UnauthorizedClient(format!(
                "this client may not use the {grant_type} grant"
            )));
        }
        match grant_type {
            GRANT_CLIENT_CREDENTIALS => self
                .client_credentials(&client, form)
                .await
                .map(TokenReply::Tokens),
            GRANT_AUTHORIZATION_CODE => self
                .authorization_code(&client, form)
                .await
                .map(TokenReply::Tokens),
            GRANT_REFRESH_TOKEN => self.refresh(&client, form).await.map(TokenReply::Tokens),
            _ => self
                .dependent(&client, form)
                .await
                .map(TokenReply::Dependent),
        }
    }

    async fn client_credentials(
        &self,
        client: &Client,
        form: &HashMap<String, String>,
    ) -> Result<TokenResponse> {
        if client.kind != ClientKind::Confidential {
            return Err(AuthError::UnauthorizedClient(
                "only confidential clients may use the client_credentials grant".into(),
            ));
        }
        // The application consents for itself to what its scopes depend on now; dependencies declared later
        // are not covered by this token.
        let scopes = self
            .consent_tree(client, &parse_scopes(required(form, "scope")?)?)
            .await?;
        let identity = self
            .store
            .get_identity(client.id)
            .await?
            .ok_or(AuthError::InvalidClient)?;
        self.issue(Issue {
            identity: &identity,
            client,
            scopes: &scopes,
            grant_id: Uuid::new_v4(),
            refresh_family_start: None,
            nonce: None,
            with_id_token: true,
            dependencies: &tree_json(&scopes),
            session: None,
            consume: None,
        })
        .await
    }

    async fn authorization_code(
        &self,
        client: &Client,
        form: &HashMap<String, String>,
    ) -> Result<TokenResponse> {
        let code = required(form, "code")?;
        let redirect_uri = form.get("redirect_uri").map(String::as_str);
        let verifier = form.get("code_verifier").map(String::as_str);
        let now = self.now();
        let bad = |why: &str| AuthError::InvalidGrant(why.to_string());
        let hash = self.hasher.hash(code);
        let rec = self
            .store
            .get_secret(&hash)
            .await?
            .filter(|r| r.kind == SecretKind::Code)
            .ok_or_else(|| bad("the authorization code is invalid"))?;
        if let Err(why) = code_fits(&rec, client, redirect_uri, verifier, now) {
            // A failed exchange spends the code (a verifier cannot be guessed by retrying), and a replayed one
            // revokes what it produced: whoever holds it may have stolen it.
            if let Some((_, false)) = self.store.consume_secret(&hash, now).await? {
                self.store.revoke_grant(rec.grant_id, now).await?;
            }
            return Err(bad(why));
        }
        let identity = self
            .store
            .get_identity(rec.identity_id)
            .await?
            .ok_or_else(|| bad("the identity of this code no longer exists"))?;
        // The code holds the consented tree (`parent[dependency ...]`).
        let scopes =
            Scope::parse_list(&rec.scopes).map_err(|e| AuthError::Internal(e.to_string()))?;
        let offline = rec.extra["access_type"].as_str() == Some("offline");
        let session = rec.extra.get("session").filter(|v| v.is_object());
        self.issue(Issue {
            identity: &identity,
            client,
            scopes: &scopes,
            grant_id: rec.grant_id,
            refresh_family_start: offline.then_some(now),
            nonce: rec.extra["nonce"].as_str(),
            with_id_token: true,
            dependencies: &tree_json(&scopes),
            session,
            // Spent in the same step as the tokens are stored: of exchanges racing each other exactly one
            // wins, and the others find it used and revoke the grant.
            consume: Some(&hash),
        })
        .await
    }

    async fn refresh(
        &self,
        client: &Client,
        form: &HashMap<String, String>,
    ) -> Result<TokenResponse> {
        let token = required(form, "refresh_token")?;
        let now = self.now();
        let bad = |why: &str| AuthError::InvalidGrant(why.to_string());
        let hash = self.hasher.hash(token);
        let rec = self
            .store
            .get_secret(&hash)
            .await?
            .filter(|r| r.kind == SecretKind::Refresh && r.client_id == Some(client.id))
            .ok_or_else(|| bad("the refresh token is invalid"))?;
        if rec.revoked_at.is_some() {
            return Err(bad("the refresh token has been revoked"));
        }
        if rec.expires_at <= now {
            return Err(bad("the refresh token has expired"));
        }
        let granted: Vec<&str> = rec.scopes.split_whitespace().collect();
        let scopes = match form.get("scope").filter(|s| !s.trim().is_empty()) {
            Some(asked) => {
                let asked = parse_scopes(asked)?;
                if let Some(extra) = asked.iter().find(|s| !granted.contains(&s.name.as_str())) {
                    return Err(AuthError::InvalidScope(format!(
                        "'{}' was not granted to this refresh token",
                        extra.name
                    )));
                }
                asked
            }
            None => {
                Scope::parse_list(&rec.scopes).map_err(|e| AuthError::Internal(e.to_string()))?
            }
        };
        let identity = self
            .store
            .get_identity(rec.identity_id)
            .await?
            .ok_or_else(|| bad("the identity of this token no longer exists"))?;
        let started = rec.extra["family_started"]
            .as_i64()
            .unwrap_or(rec.issued_at);
        // Consuming the old token (or, if it was used already, revoking the family), checking the family is not
        // revoked, and storing the new tokens are one step: of two parallel refreshes, the loser's revocation
        // reaches the winner's tokens whichever commits first.
        self.issue(Issue {
            identity: &identity,
            client,
            scopes: &scopes,
            grant_id: rec.grant_id,
            refresh_family_start: Some(started),
            nonce: None,
            with_id_token: false,
            dependencies: &rec.extra["dependencies"],
            session: rec.extra.get("session").filter(|v| v.is_object()),
            consume: Some(&hash),
        })
        .await
    }

    /// Globus's dependent-token grant: a resource server exchanges a token issued for one of its scopes for
    /// tokens, as the same identity, for the scopes that scope depends on. Only dependencies the token was
    /// consented with (a person's consent, or the application's own at issuance) and that the scope still
    /// declares are issued.
    async fn dependent(
        &self,
        client: &Client,
        form: &HashMap<String, String>,
    ) -> Result<Vec<TokenDoc>> {
        let token = required(form, "token")?;
        let now = self.now();
        let rec = self
            .store
            .get_secret(&self.hasher.hash(token))
            .await?
            .filter(|r| r.kind == SecretKind::Access && r.is_live(now))
            .ok_or_else(|| AuthError::InvalidGrant("the token is invalid or expired".into()))?;
        if rec.resource_server.as_deref() != Some(client.id.to_string().as_str()) {
            return Err(AuthError::InvalidGrant(
                "dependent tokens need a token issued for this client as a resource server".into(),
            ));
        }
        let covered = self
            .covered_dependencies(&rec.scopes, &rec.extra["dependencies"])
            .await?;
        let names: Vec<String> = match form.get("scope").filter(|s| !s.trim().is_empty()) {
            Some(s) => parse_scopes(s)?.into_iter().map(|s| s.name).collect(),
            None => covered.keys().cloned().collect(),
        };
        if names.is_empty() {
            return Err(AuthError::InvalidScope(
                "the scopes of this token have no dependencies it was consented with".into(),
            ));
        }
        if let Some(n) = names.iter().find(|n| !covered.contains_key(*n)) {
            return Err(AuthError::InvalidScope(format!(
                "'{n}' is not a dependency that the token's scopes declare and that was consented to"
            )));
        }
        let scopes: Vec<Scope> = names
            .iter()
            .map(|name| Scope {
                name: name.clone(),
                optional: false,
                dependencies: vec![],
            })
            .collect();
        let tree = Value::Object(
            names
                .iter()
                .filter_map(|n| covered.get(n).map(|t| (n.clone(), t.clone())))
                .collect(),
        );
        let identity = self
            .store
            .get_identity(rec.identity_id)
            .await?
            .ok_or_else(|| AuthError::InvalidGrant("the identity no longer exists".into()))?;
        let offline = form.get("access_type").map(String::as_str) == Some("offline");
        // Same grant as the token exchanged: revoking the person's consent (or a compromised family) reaches
        // what the resource server obtained with it.
        let reply = self
            .issue(Issue {
                identity: &identity,
                client,
                scopes: &scopes,
                grant_id: rec.grant_id,
                refresh_family_start: offline.then_some(now),
                nonce: None,
                with_id_token: false,
                dependencies: &tree,
                session: rec.extra.get("session").filter(|v| v.is_object()),
                consume: None,
            })
            .await?;
        Ok(std::iter::once(reply.token)
            .chain(reply.other_tokens)
            .collect())
    }

    /// Finds a token the calling client may ask about: one issued to it, or one issued for it as a
    /// resource server.
    async fn visible_token(&self, caller: &Client, token: &str) -> Result<Option<SecretRecord>> {
        let rec = self.store.get_secret(&self.hasher.hash(token)).await?;
        let Some(rec) = rec.filter(|r| matches!(r.kind, SecretKind::Access | SecretKind::Refresh))
        else {
            return Ok(None);
        };
        if rec.client_id == Some(caller.id)
            || rec.resource_server.as_deref() == Some(caller.id.to_string().as_str())
        {
            return Ok(Some(rec));
        }
        // A joined endpoint also answers for the collections it reported.
        let held = match rec.resource_server.as_deref().map(Uuid::parse_str) {
            Some(Ok(rs)) => self
                .store
                .site_of(rs)
                .await?
                .is_some_and(|s| s.id == caller.id),
            _ => false,
        };
        Ok(held.then_some(rec))
    }

    /// `POST /v2/oauth2/token/introspect` (RFC 7662). Anything not active and visible is `{"active": false}`.
    pub async fn introspect(
        &self,
        creds: Option<&ClientCredentials>,
        peer: &str,
        form: &HashMap<String, String>,
    ) -> Result<Introspection> {
        let caller = self.authenticate_client(creds, peer).await?;
        let token = required(form, "token")?;
        let now = self.now();
        let Some(rec) = self
            .visible_token(&caller, token)
            .await?
            .filter(|r| r.is_live(now))
        else {
            return Ok(json!({"active": false}));
        };
        let Some(identity) = self.store.get_identity(rec.identity_id).await? else {
            return Ok(json!({"active": false}));
        };
        let mut aud: Vec<String> = rec.resource_server.iter().cloned().collect();
        if let Some(c) = rec.client_id {
            aud.push(c.to_string());
        }
        let mut out = json!({
            "active": true, "token_type": "Bearer", "scope": rec.scopes,
            "client_id": rec.client_id, "sub": identity.id, "username": identity.username,
            "name": identity.name, "email": identity.email,
            "exp": rec.expires_at, "iat": rec.issued_at, "nbf": rec.issued_at,
            "aud": aud, "iss": self.cfg.issuer,
        });
        let include = form.get("include").map(String::as_str).unwrap_or("");
        let included = |what: &str| include.split(',').any(|i| i.trim() == what);
        if included("identity_set") {
            let set = self.identity_set(&identity).await?;
            out["identity_set"] = json!(set.iter().map(|i| i.id).collect::<Vec<_>>());
        }
        if included("session_info") {
            out["session_info"] = json!(self.session_info(&rec, &identity));
        }
        // Ferry's own: the groups an endpoint checks permissions against, told only to joined endpoints.
        if included("ferry_groups") && self.store.get_site(caller.id).await?.is_some() {
            out["ferry_groups"] = json!(self.group_ids_of_set(&identity).await?);
        }
        Ok(out)
    }

    /// The login session a token descends from, in Globus's `session_info` shape; an application's own tokens
    /// have none.
    fn session_info(&self, rec: &SecretRecord, identity: &ferry_core::Identity) -> SessionInfo {
        let session = &rec.extra["session"];
        let mut authentications = std::collections::BTreeMap::new();
        if let Some(auth_time) = session["auth_time"].as_i64() {
            authentications.insert(
                rec.identity_id,
                SessionAuthentication {
                    auth_time,
                    // The provider the person signed in through (the password was checked there, not here).
                    idp: self.provider_of(identity).0,
                    acr: None,
                    // A password checked here (local or site accounts); an upstream provider's method is its own.
                    amr: identity
                        .identity_provider
                        .is_none_or(|p| self.upstream.display_name(p).is_none())
                        .then(|| vec!["pwd".into()]),
                    custom_claims: json!({}),
                },
            );
        }
        SessionInfo {
            session_id: session["session_id"]
                .as_str()
                .and_then(|s| Uuid::parse_str(s).ok()),
            authentications,
        }
    }

    /// `POST /v2/oauth2/token/validate`: is this token (of the calling client) still usable?
    pub async fn validate(
        &self,
        creds: Option<&ClientCredentials>,
        peer: &str,
        form: &HashMap<String, String>,
    ) -> Result<Value> {
        let caller = self.authenticate_client(creds, peer).await?;
        let token = required(form, "token")?;
        let rec = self.visible_token(&caller, token).await?;
        let active = rec.is_some_and(|r| r.is_live(self.now()) && r.client_id == Some(caller.id));
        Ok(json!({"active": active}))
    }

    /// `POST /v2/oauth2/token/revoke` (RFC 7009). Revoking a refresh token revokes its whole grant. An
    /// unknown token, or one of another client, changes nothing and gets the same answer.
    pub async fn revoke(
        &self,
        creds: Option<&ClientCredentials>,
        peer: &str,
        form: &HashMap<String, String>,
    ) -> Result<Value> {
        let caller = self.authenticate_client(creds, peer).await?;
        let token = required(form, "token")?;
        let rec = self
            .store
            .get_secret(&self.hasher.hash(token))
            .await?
            .filter(|r| matches!(r.kind, SecretKind::Access | SecretKind::Refresh));
        let issued_to = match rec.as_ref().and_then(|r| r.client_id) {
            Some(id) => self.store.get_client(id).await?,
            None => None,
        };
        // A client revokes its own tokens; a public template (the Globus CLI's) also those of the clients
        // registered from it, as `globus logout` does.
        let mine = issued_to.is_some_and(|c| c.id == caller.id || c.template_id == Some(caller.id));
        if let Some(rec) = rec.filter(|_| mine) {
            match rec.kind {
                SecretKind::Refresh => self.store.revoke_grant(rec.grant_id, self.now()).await?,
                _ => self.store.revoke_secret(&rec.hash, self.now()).await?,
            }
        }
        Ok(json!({"active": false}))
    }
}
