//! The authorisation server's state and the operations that are not grants: identities, clients, bearer
//! checks for resource servers, and the documents about identities (userinfo, lookup, consents).

use std::collections::HashMap;
use std::sync::Arc;

use ferry_core::identity::{
    GRANT_AUTHORIZATION_CODE, GRANT_REFRESH_TOKEN, GRANT_TYPES, default_grant_types,
};
use ferry_core::scope::{AUTH_RS, Scope};
use ferry_core::time::rfc3339;
use ferry_core::{Client, ClientKind, Identity, IdentityKind, SharedClock};
use ferry_proto::auth::{IdentityDoc, TokenDoc, TokenResponse};
use ferry_store::{GrantRecord, IssueOutcome, SecretKind, SecretRecord, Store};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::keys::Signer;
use crate::limiter::FailureLimiter;
use crate::secrets::{self, TokenHasher};
use crate::{AuthError, Result};

#[derive(Debug, Clone)]
pub struct AuthConfig {
    /// The public base URL, without a trailing slash; `iss` of every token.
    pub issuer: String,
    /// Usernames of local people are `name@domain`; clients are `id@clients.domain`.
    pub domain: String,
    pub access_token_lifetime: i64,
    /// A refresh token unused for this long expires.
    pub refresh_idle_lifetime: i64,
    /// No refresh family lives longer than this, however often it is used.
    pub refresh_absolute_lifetime: i64,
    pub code_lifetime: i64,
    pub session_lifetime: i64,
    /// Upstream OpenID Connect providers people may sign in through.
    pub providers: Vec<crate::federation::ProviderConfig>,
    /// Whether Ferry's own username-and-password accounts may sign in on the login page.
    pub local_accounts: bool,
    /// Where expiry, issue and login times come from.
    pub clock: SharedClock,
}

impl AuthConfig {
    pub fn new(issuer: &str, domain: &str) -> Self {
        Self {
            issuer: issuer.trim_end_matches('/').to_string(),
            domain: domain.to_string(),
            access_token_lifetime: 2 * 3600,
            refresh_idle_lifetime: 180 * 86400,
            refresh_absolute_lifetime: 365 * 86400,
            code_lifetime: 600,
            session_lifetime: 8 * 3600,
            providers: Vec::new(),
            local_accounts: true,
            clock: ferry_core::clock::system(),
        }
    }
}

/// Who a valid bearer token speaks for.
#[derive(Debug, Clone)]
pub struct Principal {
    pub identity: Identity,
    /// The client the token was issued to.
    pub client_id: Option<Uuid>,
    pub scopes: Vec<String>,
    /// When the person signed in, for a token that descends from a browser sign-in (None: an application's).
    pub auth_time: Option<i64>,
}

#[derive(Debug, Clone)]
pub struct CreatedIdentity {
    pub identity: Identity,
    /// Set only when Ferry generated the password; shown once.
    pub generated_password: Option<String>,
}

#[derive(Debug, Clone)]
pub struct CreatedClient {
    pub client: Client,
    pub identity: Identity,
    /// Confidential clients only; shown once.
    pub secret: Option<String>,
}

pub struct Auth {
    pub(crate) store: Arc<dyn Store>,
    pub(crate) cfg: AuthConfig,
    pub(crate) hasher: TokenHasher,
    pub(crate) signer: Signer,
    pub(crate) limiter: FailureLimiter,
    /// The id of Ferry's own identity provider (local accounts), stable per installation.
    pub(crate) idp_id: Uuid,
    pub(crate) upstream: crate::federation::Upstream,
    /// Argon2 checks running at once; more wait here, off the runtime's threads.
    pub(crate) hashing: tokio::sync::Semaphore,
}

/// Password hashes computed at once (each takes ~19 MiB and tens of milliseconds of one core).
const CONCURRENT_PASSWORD_CHECKS: usize = 2;

/// How a client is registered.
#[derive(Debug, Clone)]
pub struct NewClient {
    pub name: String,
    pub kind: ClientKind,
    pub redirect_uris: Vec<String>,
    pub owner: Option<Uuid>,
    pub template_id: Option<Uuid>,
    /// Registered by the administrator.
    pub verified: bool,
    /// None: the defaults of its kind.
    pub grant_types: Option<Vec<String>>,
    /// None: any scope.
    pub allowed_scopes: Option<Vec<String>>,
}

impl NewClient {
    /// What `ferry client create` registers without restrictions: verified, the defaults of its kind.
    pub fn by_administrator(name: &str, kind: ClientKind, redirect_uris: Vec<String>) -> Self {
        Self {
            name: name.to_string(),
            kind,
            redirect_uris,
            owner: None,
            template_id: None,
            verified: true,
            grant_types: None,
            allowed_scopes: None,
        }
    }
}

/// `95fdeba8-fac2-42bd-a357-e068d82ff78e`, the Globus CLI's production template client id.
const GLOBUS_CLI_TEMPLATE: u128 = 0x95fdeba8_fac2_42bd_a357_e068d82ff78e;

impl Auth {
    /// Loads the installation's keys from the store, creating them on first use.
    pub async fn open(store: Arc<dyn Store>, cfg: AuthConfig) -> Result<Self> {
        let token_key = store
            .meta_get_or_insert(
                "auth.token_hash_key",
                &secrets::b64url(&secrets::random_bytes::<32>()?),
            )
            .await?;
        let key_bytes = base64::Engine::decode(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD,
            &token_key,
        )
        .ok()
        .and_then(|b| <[u8; 32]>::try_from(b).ok())
        .ok_or_else(|| AuthError::Internal("stored token hash key is malformed".into()))?;
        let signing = match store.meta_get("auth.signing_key").await? {
            Some(k) => k,
            None => {
                store
                    .meta_get_or_insert("auth.signing_key", &Signer::generate()?)
                    .await?
            }
        };
        let idp = store
            .meta_get_or_insert("auth.identity_provider_id", &Uuid::new_v4().to_string())
            .await?;
        Ok(Self {
            store,
            hasher: TokenHasher::new(key_bytes),
            signer: Signer::from_stored(&signing)?,
            limiter: FailureLimiter::new(10, 60, cfg.clock.clone()),
            idp_id: Uuid::parse_str(&idp).map_err(|e| AuthError::Internal(e.to_string()))?,
            upstream: crate::federation::Upstream::new(cfg.providers.clone())?,
            hashing: tokio::sync::Semaphore::new(CONCURRENT_PASSWORD_CHECKS),
            cfg,
        })
    }

    /// Runs Argon2 work on a blocking thread, at most [`CONCURRENT_PASSWORD_CHECKS`] at once: a flood of
    /// logins queues here instead of occupying the threads every other request needs.
    pub(crate) async fn password_work<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T> {
        let _permit = self
            .hashing
            .acquire()
            .await
            .map_err(|_| AuthError::Internal("the password checker is closed".into()))?;
        tokio::task::spawn_blocking(work)
            .await
            .map_err(|e| AuthError::Internal(format!("password check failed: {e}")))
    }

    /// Checks a password against its stored Argon2id hash (or, with none, a dummy: the same time).
    pub(crate) async fn check_password(
        &self,
        password: &str,
        stored: Option<String>,
    ) -> Result<bool> {
        let password = password.to_string();
        self.password_work(move || secrets::verify_password(&password, stored.as_deref()))
            .await
    }

    /// Checks a client secret: keyed BLAKE3 inline, legacy Argon2id hashes like passwords.
    pub(crate) async fn client_secret_ok(
        &self,
        secret: &str,
        stored: Option<String>,
    ) -> Result<bool> {
        match stored {
            Some(h) if secrets::is_password_hash(&h) => self.check_password(secret, Some(h)).await,
            other => Ok(self.hasher.client_secret_matches(secret, other.as_deref())),
        }
    }

    pub(crate) fn now(&self) -> i64 {
        self.cfg.clock.now()
    }

    pub fn config(&self) -> &AuthConfig {
        &self.cfg
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    pub fn jwks(&self) -> Value {
        self.signer.jwks()
    }

    /// Signs a document (a webhook event) as a compact JWS with the key published at the JWKS URL, so that
    /// receivers can check it without any secret shared with them.
    pub fn sign_document(&self, doc: &Value) -> Result<String> {
        self.signer.sign(doc)
    }

    /// OpenID Connect discovery metadata.
    pub fn discovery(&self) -> Value {
        let i = &self.cfg.issuer;
        json!({
            "issuer": i,
            "authorization_endpoint": format!("{i}/v2/oauth2/authorize"),
            "token_endpoint": format!("{i}/v2/oauth2/token"),
            "userinfo_endpoint": format!("{i}/v2/oauth2/userinfo"),
            "jwks_uri": format!("{i}/jwk.json"),
            "introspection_endpoint": format!("{i}/v2/oauth2/token/introspect"),
            "revocation_endpoint": format!("{i}/v2/oauth2/token/revoke"),
            "response_types_supported": ["code"],
            "grant_types_supported": ["authorization_code", "refresh_token", "client_credentials",
                "urn:globus:auth:grant_type:dependent_token"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "none"],
            "code_challenge_methods_supported": ["S256"],
            "scopes_supported": ["openid", "profile", "email",
                "urn:globus:auth:scope:auth.globus.org:view_identity_set",
                "urn:globus:auth:scope:transfer.api.globus.org:all",
                "urn:globus:auth:scope:groups.api.globus.org:all"],
            "claims_supported": ["sub", "iss", "aud", "exp", "iat", "auth_time", "nonce", "preferred_username",
                "name", "email", "organization", "identity_provider", "identity_set"],
            "authorization_response_iss_parameter_supported": true,
        })
    }

    // ---- identities and clients (administration) ----

    pub async fn create_person(
        &self,
        username: &str,
        name: Option<&str>,
        email: Option<&str>,
        password: Option<&str>,
    ) -> Result<CreatedIdentity> {
        let username = Identity::person_username(username, &self.cfg.domain)
            .map_err(AuthError::InvalidRequest)?;
        if let Some(p) = password {
            crate::accounts::check_strength(p, &username).map_err(AuthError::InvalidRequest)?;
        }
        let generated = match password {
            Some(_) => None,
            None => Some(secrets::random_password()?),
        };
        let chosen = password
            .or(generated.as_deref())
            .unwrap_or_default()
            .to_string();
        let hash = self
            .password_work(move || secrets::hash_password(&chosen))
            .await??;
        let identity = Identity {
            id: Uuid::new_v4(),
            name: name
                .map(str::to_string)
                .unwrap_or_else(|| username.split('@').next().unwrap_or_default().to_string()),
            username,
            email: email.map(str::to_string),
            organization: None,
            kind: IdentityKind::Person,
            created: self.now(),
            identity_provider: None,
        };
        self.store.create_identity(&identity, Some(&hash)).await?;
        Ok(CreatedIdentity {
            identity,
            generated_password: generated,
        })
    }

    /// Registers a client as the administrator does: verified, with the grant types of its kind.
    pub async fn create_client(
        &self,
        name: &str,
        kind: ClientKind,
        redirect_uris: Vec<String>,
        owner: Option<Uuid>,
    ) -> Result<CreatedClient> {
        self.create_client_with(NewClient {
            owner,
            ..NewClient::by_administrator(name, kind, redirect_uris)
        })
        .await
    }

    /// Registers a client with everything said (`ferry client create --grant-types … --scopes …`).
    pub async fn create_client_with(&self, new: NewClient) -> Result<CreatedClient> {
        self.create_client_as(Uuid::new_v4(), new).await
    }

    async fn create_client_as(&self, id: Uuid, new: NewClient) -> Result<CreatedClient> {
        let name = new.name.trim();
        if name.is_empty() || name.len() > 200 || name.chars().any(char::is_control) {
            return Err(AuthError::InvalidRequest(
                "a client needs a name of 1 to 200 characters on one line".into(),
            ));
        }
        for uri in &new.redirect_uris {
            validate_redirect_uri(uri, &self.cfg.issuer)?;
        }
        if let Some(grants) = &new.grant_types {
            validate_grant_types(grants, new.kind)?;
        }
        if let Some(scopes) = &new.allowed_scopes {
            for s in scopes {
                if ferry_core::scope::resource_server_of(s).is_none() {
                    return Err(AuthError::InvalidRequest(format!(
                        "scopes: unknown scope '{s}'"
                    )));
                }
            }
        }
        let client = Client {
            id,
            name: name.to_string(),
            kind: new.kind,
            redirect_uris: new.redirect_uris,
            owner: new.owner,
            template_id: new.template_id,
            created: self.now(),
            verified: new.verified,
            grant_types: new.grant_types,
            allowed_scopes: new.allowed_scopes,
        };
        let identity = Identity {
            id,
            username: Identity::client_username(id, &self.cfg.domain),
            name: name.to_string(),
            email: None,
            organization: None,
            kind: IdentityKind::Client,
            created: client.created,
            identity_provider: None,
        };
        let secret = match new.kind {
            ClientKind::Confidential => Some(secrets::random_secret("")?),
            ClientKind::Native => None,
        };
        let hash = secret.as_deref().map(|s| self.hasher.hash_client_secret(s));
        self.store
            .create_client(&identity, &client, hash.as_deref())
            .await?;
        Ok(CreatedClient {
            client,
            identity,
            secret,
        })
    }

    /// Replaces a confidential client's secret; every token it holds is revoked.
    pub async fn rotate_client_secret(&self, id: Uuid) -> Result<String> {
        let client = self
            .store
            .get_client(id)
            .await?
            .ok_or_else(|| AuthError::NotFound(format!("no client {id}")))?;
        if client.kind != ClientKind::Confidential {
            return Err(AuthError::InvalidRequest(
                "native clients have no secret to rotate".into(),
            ));
        }
        let secret = secrets::random_secret("")?;
        self.store
            .set_client_secret_hash(id, &self.hasher.hash_client_secret(&secret))
            .await?;
        self.store.revoke_client_secrets(id, self.now()).await?;
        Ok(secret)
    }

    pub async fn delete_identity(&self, id: Uuid) -> Result<()> {
        self.store.delete_identity(id).await.map_err(|e| match e {
            ferry_store::StoreError::NotFound => AuthError::NotFound(format!("no identity {id}")),
            other => other.into(),
        })
    }

    /// Finds an identity by id or by username (a bare name gets the auth domain).
    pub async fn resolve_identity(&self, who: &str) -> Result<Option<Identity>> {
        if let Ok(id) = Uuid::parse_str(who) {
            return Ok(self.store.get_identity(id).await?);
        }
        let username = if who.contains('@') {
            who.to_ascii_lowercase()
        } else {
            format!("{}@{}", who.to_ascii_lowercase(), self.cfg.domain)
        };
        Ok(self.store.find_identity(&username).await?)
    }

    /// `POST /v2/api/clients`. With a caller, the client is owned by them and may be native
    /// (`public_client: true`). Without one, only the template registration that `globus login` performs is
    /// accepted; such clients are untrusted, so consent is always asked, and registrations per address are
    /// limited.
    pub async fn register_client(
        &self,
        owner: Option<&Principal>,
        body: &Value,
        peer: &str,
    ) -> Result<Value> {
        let doc = body
            .get("client")
            .and_then(Value::as_object)
            .ok_or_else(|| {
                AuthError::InvalidRequest("the body must be {\"client\": {...}}".into())
            })?;
        let name = doc
            .get("name")
            .and_then(Value::as_str)
            .ok_or_else(|| AuthError::InvalidRequest("client.name is required".into()))?;
        let public = match doc.get("public_client") {
            None | Some(Value::Null) => false,
            Some(Value::Bool(b)) => *b,
            Some(_) => {
                return Err(AuthError::InvalidRequest(
                    "client.public_client must be a boolean".into(),
                ));
            }
        };
        let redirect_uris: Vec<String> = match doc.get("redirect_uris") {
            None | Some(Value::Null) => vec![],
            Some(v) => serde_json::from_value(v.clone()).map_err(|_| {
                AuthError::InvalidRequest("client.redirect_uris must be a list of strings".into())
            })?,
        };
        let template = match (owner, doc.get("template_id").and_then(Value::as_str)) {
            (Some(_), _) => None,
            (None, None) => return Err(AuthError::Unauthenticated),
            (None, Some(t)) => Some(
                match Uuid::parse_str(t) {
                    Ok(id) => self.store.get_client(id).await?,
                    Err(_) => None,
                }
                .filter(|c| c.kind == ClientKind::Native)
                .ok_or_else(|| {
                    AuthError::InvalidRequest(format!("'{t}' is not a client template known here"))
                })?,
            ),
        };
        if owner.is_none() {
            let key = Self::limiter_key("register", "", peer);
            if let Some(retry_after) = self.limiter.blocked(&key, peer) {
                return Err(AuthError::SlowDown { retry_after });
            }
            self.limiter.record_failure(&key, peer);
        }
        let kind = if public {
            ClientKind::Native
        } else {
            ClientKind::Confidential
        };
        let new = match &template {
            // Anyone may make an instance of a template, so an instance has only what the template allows:
            // its redirect URIs, the interactive grants, its scopes. It is never verified, and the consent page
            // names the template first.
            Some(t) => {
                if let Some(u) = redirect_uris.iter().find(|u| !t.redirect_uris.contains(u)) {
                    return Err(AuthError::InvalidRequest(format!(
                        "client.redirect_uris: an instance of '{}' may only use the template's redirect URIs \
                         ({}); '{u}' is not one of them",
                        t.name,
                        t.redirect_uris.join(", ")
                    )));
                }
                NewClient {
                    name: name.to_string(),
                    kind,
                    redirect_uris: if redirect_uris.is_empty() {
                        t.redirect_uris.clone()
                    } else {
                        redirect_uris
                    },
                    owner: None,
                    template_id: Some(t.id),
                    verified: false,
                    grant_types: Some(vec![
                        GRANT_AUTHORIZATION_CODE.into(),
                        GRANT_REFRESH_TOKEN.into(),
                    ]),
                    allowed_scopes: t.allowed_scopes.clone(),
                }
            }
            None => NewClient {
                owner: owner.map(|p| p.identity.id),
                verified: false,
                ..NewClient::by_administrator(
                    name,
                    kind,
                    if redirect_uris.is_empty() {
                        self.default_redirect_uris()
                    } else {
                        redirect_uris
                    },
                )
            },
        };
        let created = self.create_client_as(Uuid::new_v4(), new).await?;
        let c = &created.client;
        let mut out = json!({"client": {
            "id": c.id, "name": c.name, "public_client": public, "redirect_uris": c.redirect_uris,
            "grant_types": c.grant_types(),
            "fqdns": [], "visibility": "private", "project": Value::Null, "required_idp": Value::Null,
            "preselect_idp": Value::Null, "parent_client": Value::Null, "scopes": [],
            "userinfo_from_effective_identity": true, "prompt_for_named_grant": true,
        }});
        if let Some(secret) = &created.secret {
            out["included"] = json!({"client_credential": {
                "client": c.id, "id": Uuid::new_v4(), "name": "auto-created", "secret": secret,
                "created": rfc3339(c.created),
            }});
        }
        Ok(out)
    }

    /// Where a client registered without redirect URIs may send people back to: this server's code page
    /// and loopback (any port).
    pub fn default_redirect_uris(&self) -> Vec<String> {
        vec![
            format!("{}/v2/web/auth-code", self.cfg.issuer),
            "http://localhost".to_string(),
            "http://127.0.0.1".to_string(),
        ]
    }

    /// The Globus CLI's public template client (the id it uses for production and for any environment it
    /// does not know), so that `globus login` and `globus logout` work unchanged. Idempotent.
    pub async fn ensure_globus_cli_template(&self) -> Result<()> {
        let id = Uuid::from_u128(GLOBUS_CLI_TEMPLATE);
        if self.store.get_client(id).await?.is_none() {
            let uris = self.default_redirect_uris();
            self.create_client_as(
                id,
                NewClient::by_administrator(
                    "Globus CLI (native template)",
                    ClientKind::Native,
                    uris,
                ),
            )
            .await?;
        }
        Ok(())
    }

    /// `DELETE /v2/api/clients/{id}`: by the client itself (its credentials) or by its owner (a token).
    pub async fn delete_client(
        &self,
        id: Uuid,
        by_client: Option<&Client>,
        by_owner: Option<&Principal>,
    ) -> Result<Value> {
        let client = self
            .store
            .get_client(id)
            .await?
            .ok_or_else(|| AuthError::NotFound(format!("no client {id}")))?;
        let allowed = by_client.is_some_and(|c| c.id == id)
            || by_owner.is_some_and(|p| client.owner == Some(p.identity.id));
        if !allowed {
            return Err(AuthError::Forbidden(
                "only the client itself or its owner may delete it".into(),
            ));
        }
        self.store.delete_identity(id).await?;
        Ok(json!({"client": {"id": client.id, "name": client.name}}))
    }

    // ---- bearer tokens at resource servers ----

    /// Checks a bearer token presented to `resource_server`. Tokens of other resource servers, expired,
    /// revoked or unknown tokens are all refused the same way.
    pub async fn authenticate_bearer(
        &self,
        token: &str,
        resource_server: &str,
    ) -> Result<Principal> {
        let rec = self
            .store
            .get_secret(&self.hasher.hash(token))
            .await?
            .filter(|r| r.kind == SecretKind::Access && r.is_live(self.now()))
            .filter(|r| r.resource_server.as_deref() == Some(resource_server))
            .ok_or(AuthError::Unauthenticated)?;
        let identity = self
            .store
            .get_identity(rec.identity_id)
            .await?
            .ok_or(AuthError::Unauthenticated)?;
        Ok(Principal {
            identity,
            client_id: rec.client_id,
            scopes: rec.scopes.split_whitespace().map(str::to_string).collect(),
            auth_time: rec.extra["session"]["auth_time"].as_i64(),
        })
    }

    // ---- documents about identities ----

    pub fn identity_doc(&self, i: &Identity) -> IdentityDoc {
        IdentityDoc {
            id: i.id,
            username: i.username.clone(),
            status: "used".into(),
            identity_provider: i.identity_provider.unwrap_or(self.idp_id),
            identity_type: "login".into(),
            name: Some(i.name.clone()),
            email: i.email.clone(),
            organization: i.organization.clone(),
        }
    }

    /// `GET /v2/api/identities`: by usernames or ids (comma-separated; exactly one of the two).
    pub async fn lookup_identities(
        &self,
        usernames: Option<&str>,
        ids: Option<&str>,
    ) -> Result<Vec<IdentityDoc>> {
        let mut out = Vec::new();
        match (usernames, ids) {
            (Some(u), None) => {
                let names = split_list(u);
                if names.len() > 100 {
                    return Err(AuthError::InvalidRequest(
                        "at most 100 usernames per request".into(),
                    ));
                }
                for name in names {
                    if let Some(i) = self.store.find_identity(&name).await? {
                        out.push(self.identity_doc(&i));
                    }
                }
            }
            (None, Some(i)) => {
                let ids = split_list(i);
                if ids.len() > 100 {
                    return Err(AuthError::InvalidRequest(
                        "at most 100 ids per request".into(),
                    ));
                }
                for id in ids {
                    let id = Uuid::parse_str(&id).map_err(|_| {
                        AuthError::InvalidRequest(format!("'{id}' is not an identity id"))
                    })?;
                    if let Some(i) = self.store.get_identity(id).await? {
                        out.push(self.identity_doc(&i));
                    }
                }
            }
            (Some(_), Some(_)) => {
                return Err(AuthError::InvalidRequest(
                    "give either usernames or ids, not both".into(),
                ));
            }
            (None, None) => {
                return Err(AuthError::InvalidRequest("give usernames or ids".into()));
            }
        }
        Ok(out)
    }

    /// The provider an identity signs in through, and what to call it.
    pub fn provider_of<'a>(&'a self, i: &'a Identity) -> (Uuid, &'a str) {
        match i.identity_provider {
            // Site accounts' provider: their organization is the display name given at `ferry oidc create`.
            Some(p) => (
                p,
                self.upstream
                    .display_name(p)
                    .or(i.organization.as_deref())
                    .unwrap_or("Ferry"),
            ),
            None => (self.idp_id, "Ferry"),
        }
    }

    /// The identities linked with `i` (the identity itself first when it is alone), as Globus lists them in
    /// `identity_set`.
    pub async fn identity_set(&self, i: &Identity) -> Result<Vec<Identity>> {
        let set = self.store.identity_set(i.id).await?;
        Ok(if set.is_empty() { vec![i.clone()] } else { set })
    }

    fn identity_set_entries(&self, set: &[Identity]) -> Value {
        set.iter()
            .map(|i| {
                let (idp, idp_name) = self.provider_of(i);
                json!({
                    "sub": i.id, "username": i.username, "name": i.name, "email": i.email,
                    "organization": i.organization, "identity_provider": idp,
                    "identity_provider_display_name": idp_name, "status": "used",
                    "last_authentication": Value::Null,
                })
            })
            .collect()
    }

    /// OIDC userinfo, Globus flavour (with `identity_set`). Needs a token with `openid`.
    pub async fn userinfo(&self, p: &Principal) -> Result<Value> {
        if !p.scopes.iter().any(|s| s == "openid") {
            return Err(AuthError::Forbidden(
                "userinfo needs a token with the openid scope".into(),
            ));
        }
        let i = &p.identity;
        let (idp, idp_name) = self.provider_of(i);
        let set = self.identity_set(i).await?;
        Ok(json!({
            "sub": i.id, "preferred_username": i.username, "name": i.name, "email": i.email,
            "organization": i.organization, "identity_provider": idp,
            "identity_provider_display_name": idp_name,
            "identity_set": self.identity_set_entries(&set),
        }))
    }

    /// Ids of the groups any identity of `i`'s set is an active member of: memberships count for the person.
    pub async fn group_ids_of_set(&self, i: &Identity) -> Result<Vec<Uuid>> {
        let mut out = Vec::new();
        for member in self.identity_set(i).await? {
            for g in self.store.active_group_ids(member.id).await? {
                if !out.contains(&g) {
                    out.push(g);
                }
            }
        }
        Ok(out)
    }

    /// `GET /v2/api/identities/{id}/consents`: only an identity's own consents are visible to it.
    pub async fn consents(&self, p: &Principal, identity_id: Uuid) -> Result<Value> {
        if p.identity.id != identity_id {
            return Err(AuthError::Forbidden(
                "you may only list your own consents".into(),
            ));
        }
        self.consents_of(identity_id).await
    }

    /// An identity's consents, as `/v2/api/identities/{id}/consents` shows them (for the person's own pages).
    pub async fn consents_of(&self, identity_id: Uuid) -> Result<Value> {
        let rows = self.store.list_consents(identity_id).await?;
        let by_id: HashMap<Uuid, &ferry_store::ConsentRecord> =
            rows.iter().map(|c| (c.id, c)).collect();
        let consents: Vec<Value> = rows
            .iter()
            .map(|c| {
                let mut path = vec![c.id];
                let mut cur = c.parent_id;
                while let Some(pid) = cur {
                    path.insert(0, pid);
                    cur = by_id.get(&pid).and_then(|p| p.parent_id);
                }
                json!({
                    "id": c.id, "scope_name": c.scope,
                    "scope": Uuid::new_v5(&Uuid::NAMESPACE_URL, c.scope.as_bytes()),
                    "client": c.client_id, "status": "approved", "dependency_path": path,
                    "effective_identity": c.identity_id, "allows_refresh": true,
                    "atomically_revocable": c.parent_id.is_some(), "auto_approved": false,
                    "created": rfc3339(c.created), "updated": rfc3339(c.last_used),
                    "last_used": rfc3339(c.last_used),
                })
            })
            .collect();
        Ok(json!({ "consents": consents }))
    }

    /// `DELETE /v2/api/identities/{id}/consents/{consent_id}`: a person withdraws a consent (with the consents
    /// under it). Every grant it covered is revoked at once: the client's access and refresh tokens stop, and
    /// so do the dependent tokens obtained with them.
    pub async fn revoke_consent(
        &self,
        p: &Principal,
        identity_id: Uuid,
        consent_id: Uuid,
    ) -> Result<Value> {
        if p.identity.id != identity_id {
            return Err(AuthError::Forbidden(
                "you may only revoke your own consents".into(),
            ));
        }
        self.withdraw_consent(identity_id, consent_id).await
    }

    /// Withdraws one of `identity_id`'s consents (see [`Self::revoke_consent`]); for the person's own pages.
    pub async fn withdraw_consent(&self, identity_id: Uuid, consent_id: Uuid) -> Result<Value> {
        let not_found = || AuthError::NotFound(format!("no consent {consent_id}"));
        let consent = self
            .store
            .get_consent(consent_id)
            .await?
            .filter(|c| c.identity_id == identity_id)
            .ok_or_else(not_found)?;
        let mut root = consent.clone();
        while let Some(parent) = root.parent_id {
            root = self
                .store
                .get_consent(parent)
                .await?
                .ok_or_else(not_found)?;
        }
        let now = self.now();
        for g in self
            .store
            .list_grants(identity_id, consent.client_id)
            .await?
        {
            if g.revoked_at.is_none() && g.scopes.split_whitespace().any(|s| s == root.scope) {
                self.store.revoke_grant(g.id, now).await?;
            }
        }
        self.store.delete_consent(consent_id).await?;
        Ok(json!({"consent": {
            "id": consent.id, "scope_name": consent.scope, "client": consent.client_id,
            "effective_identity": consent.identity_id, "status": "revoked",
        }}))
    }

    // ---- issuing tokens (shared by the grants) ----

    /// Issues one access token per resource server named by `scopes` (in the order first named), with
    /// refresh tokens when `offline`, and an `id_token` when `openid` is among them. The tokens are stored in
    /// one step with the grant check (and the consumption of the refresh token they replace).
    pub(crate) async fn issue(&self, req: Issue<'_>) -> Result<TokenResponse> {
        let now = self.now();
        let mut by_rs: Vec<(String, Vec<String>)> = Vec::new();
        for s in req.scopes {
            if !req.client.allows_scope(&s.name) {
                return Err(AuthError::InvalidScope(format!(
                    "'{}' is not among the scopes this client may be issued",
                    s.name
                )));
            }
            let rs = s
                .resource_server()
                .map_err(|e| AuthError::InvalidScope(e.to_string()))?;
            match by_rs.iter_mut().find(|(r, _)| *r == rs.0) {
                Some((_, names)) if !names.contains(&s.name) => names.push(s.name.clone()),
                Some(_) => {}
                None => by_rs.push((rs.0, vec![s.name.clone()])),
            }
        }
        if by_rs.is_empty() {
            return Err(AuthError::InvalidScope("no scope was requested".into()));
        }
        let mut records = Vec::new();
        let mut docs = Vec::new();
        for (rs, names) in &by_rs {
            let scope = names.join(" ");
            let extra = json!({
                "dependencies": crate::scopes::subtree(req.dependencies, names),
                "session": req.session,
            });
            let access = secrets::random_secret("fat_")?;
            let record =
                |hash: String, kind: SecretKind, extra: Value, expires_at: i64| SecretRecord {
                    hash,
                    kind,
                    grant_id: req.grant_id,
                    client_id: Some(req.client.id),
                    identity_id: req.identity.id,
                    resource_server: Some(rs.clone()),
                    scopes: scope.clone(),
                    extra,
                    issued_at: now,
                    expires_at,
                    used_at: None,
                    revoked_at: None,
                };
            records.push(record(
                self.hasher.hash(&access),
                SecretKind::Access,
                extra.clone(),
                now + self.cfg.access_token_lifetime,
            ));
            let refresh = match req.refresh_family_start {
                Some(started) => {
                    let refresh = secrets::random_secret("frt_")?;
                    let mut extra = extra.clone();
                    extra["family_started"] = json!(started);
                    records.push(record(
                        self.hasher.hash(&refresh),
                        SecretKind::Refresh,
                        extra,
                        (now + self.cfg.refresh_idle_lifetime)
                            .min(started + self.cfg.refresh_absolute_lifetime),
                    ));
                    Some(refresh)
                }
                None => None,
            };
            docs.push(TokenDoc {
                access_token: access,
                scope,
                expires_in: self.cfg.access_token_lifetime,
                token_type: "Bearer".into(),
                resource_server: rs.clone(),
                refresh_token: refresh,
            });
        }
        let grant = GrantRecord {
            id: req.grant_id,
            identity_id: req.identity.id,
            client_id: req.client.id,
            scopes: req
                .scopes
                .iter()
                .map(|s| s.name.as_str())
                .collect::<Vec<_>>()
                .join(" "),
            created: now,
            revoked_at: None,
        };
        let bad = |m: &str| AuthError::InvalidGrant(m.to_string());
        match self
            .store
            .issue_secrets(&grant, req.consume, &records, now)
            .await?
        {
            IssueOutcome::Issued => {}
            IssueOutcome::Reused => {
                return Err(bad(
                    "the code or refresh token was already used; its grant has been revoked",
                ));
            }
            IssueOutcome::Invalid => {
                return Err(bad("the code or refresh token is invalid or expired"));
            }
            IssueOutcome::GrantRevoked => return Err(bad("this authorization has been revoked")),
        }
        let wants_openid = by_rs
            .iter()
            .any(|(rs, names)| rs == AUTH_RS && names.iter().any(|n| n == "openid"));
        let id_token = if wants_openid && req.with_id_token {
            let auth_time = req
                .session
                .and_then(|s| s["auth_time"].as_i64())
                .unwrap_or(now);
            Some(
                self.id_token(req.identity, req.client.id, req.nonce, now, auth_time)
                    .await?,
            )
        } else {
            None
        };
        let mut docs = docs.into_iter();
        let token = docs
            .next()
            .ok_or_else(|| AuthError::Internal("no token issued".into()))?;
        Ok(TokenResponse {
            token,
            id_token,
            state: None,
            other_tokens: docs.collect(),
        })
    }

    async fn id_token(
        &self,
        i: &Identity,
        client_id: Uuid,
        nonce: Option<&str>,
        now: i64,
        auth_time: i64,
    ) -> Result<String> {
        let (idp, idp_name) = self.provider_of(i);
        let set = self.identity_set(i).await?;
        let mut claims = json!({
            "iss": self.cfg.issuer, "sub": i.id, "aud": client_id.to_string(), "azp": client_id.to_string(),
            "iat": now, "exp": now + self.cfg.access_token_lifetime, "auth_time": auth_time,
            "preferred_username": i.username, "name": i.name, "email": i.email,
            "organization": i.organization, "identity_provider": idp,
            "identity_provider_display_name": idp_name,
            "identity_set": self.identity_set_entries(&set),
        });
        if let Some(n) = nonce {
            claims["nonce"] = json!(n);
        }
        self.signer.sign(&claims)
    }

    pub(crate) fn limiter_key(kind: &str, who: &str, peer: &str) -> String {
        format!("{kind}\u{0}{who}\u{0}{peer}")
    }
}

/// The items of a comma-separated query parameter, trimmed, empty ones dropped.
pub(crate) fn split_list(s: &str) -> Vec<String> {
    s.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

/// What to issue: for whom, through which client, which scopes, and whether to add refresh tokens.
pub(crate) struct Issue<'a> {
    pub identity: &'a Identity,
    pub client: &'a Client,
    /// Top-level scopes; their dependencies are in `dependencies`.
    pub scopes: &'a [Scope],
    pub grant_id: Uuid,
    /// `Some(start of the refresh family)` to issue refresh tokens.
    pub refresh_family_start: Option<i64>,
    pub nonce: Option<&'a str>,
    pub with_id_token: bool,
    /// The dependency trees the scopes were consented with (`scopes::tree_json`), kept in each token for the
    /// dependent-token grant.
    pub dependencies: &'a Value,
    /// A person's login session (`{"session_id", "auth_time"}`), kept in each token.
    pub session: Option<&'a Value>,
    /// The hash of the refresh token these tokens replace, consumed in the same step.
    pub consume: Option<&'a str>,
}

/// Known grant types, and none a native client cannot use (it has no secret).
fn validate_grant_types(grants: &[String], kind: ClientKind) -> Result<()> {
    for g in grants {
        if !GRANT_TYPES.contains(&g.as_str()) {
            return Err(AuthError::InvalidRequest(format!(
                "grant_types: unknown grant type '{g}' (known: {})",
                GRANT_TYPES.join(", ")
            )));
        }
        if kind == ClientKind::Native && !default_grant_types(kind).contains(&g.as_str()) {
            return Err(AuthError::InvalidRequest(format!(
                "grant_types: a native client cannot use '{g}'"
            )));
        }
    }
    Ok(())
}

/// Redirect URIs are stored verbatim: https, or http on loopback or on Ferry's own (plain-http development)
/// address; no fragment; no other schemes.
fn validate_redirect_uri(uri: &str, issuer: &str) -> Result<()> {
    // The URL parser forgives surrounding spaces and control characters; a stored URI must be exactly what is
    // compared later, so they are refused.
    if uri.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(AuthError::InvalidRequest(format!(
            "redirect URI {uri:?} contains spaces or control characters"
        )));
    }
    let parsed = url::Url::parse(uri)
        .map_err(|_| AuthError::InvalidRequest(format!("redirect URI '{uri}' is not a URL")))?;
    if parsed.fragment().is_some() {
        return Err(AuthError::InvalidRequest(format!(
            "redirect URI '{uri}' must not have a fragment"
        )));
    }
    let loopback = matches!(parsed.host_str(), Some("127.0.0.1" | "localhost" | "[::1]"));
    match parsed.scheme() {
        "https" => Ok(()),
        "http" if loopback || uri.starts_with(&format!("{issuer}/")) => Ok(()),
        "http" => Err(AuthError::InvalidRequest(format!(
            "redirect URI '{uri}' must use https (plain http is allowed on loopback only)"
        ))),
        other => Err(AuthError::InvalidRequest(format!(
            "redirect URI scheme '{other}' is not allowed; use https"
        ))),
    }
}
