//! Signing in through upstream OpenID Connect providers: Ferry is their relying party (authorization code with
//! PKCE, `state` bound to the browser, `nonce`, discovery, JWKS followed through key rotation, `iss`, `aud`,
//! `azp`, `exp` and `iat` checked with a bounded clock skew). A person's first sign-in makes their identity,
//! `<username>@<provider's domain>`; later ones find it by the provider's `sub`, whatever the name says now.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use aws_lc_rs::signature::{self, UnparsedPublicKey};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ferry_core::{Identity, IdentityKind};
use ferry_store::StoreError;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use crate::secrets::{self, b64url};
use crate::{Auth, AuthError, Result};

/// How long a sign-in may stay at the provider before it comes back.
const PENDING_LIFETIME: i64 = 600;
/// Sign-ins waiting for providers at once: a flood of started sign-ins fills no disk.
const PENDING_LIMIT: i64 = 10_000;
/// How far the provider's clock may be from ours for `exp` and `iat`.
pub const CLOCK_SKEW: i64 = 60;
/// Discovery documents are fetched again after this long; keys also whenever a token names an unknown one.
const METADATA_LIFETIME: i64 = 3600;
/// Provider answers are a few kilobytes; more than this is refused unread.
const RESPONSE_LIMIT: usize = 1 << 20;
const TIMEOUT: Duration = Duration::from_secs(10);
/// Claims longer than this are refused (a hostile provider's 10 MB name).
const CLAIM_LIMIT: usize = 1024;
/// Linking needs a sign-in at most this old (seconds).
pub const LINK_FRESHNESS: i64 = 600;
/// Where providers send the browser back to, under the issuer.
pub const CALLBACK_PATH: &str = "/v2/web/login/callback";

/// One upstream provider, as the configuration names it.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderConfig {
    /// Short name used in URLs and commands: letters, digits and '-'.
    pub id: String,
    /// What the login page calls it: "Example University".
    pub display_name: String,
    /// The issuer, exactly as its discovery document states it.
    pub issuer: String,
    pub client_id: String,
    pub client_secret: String,
    #[serde(default = "default_scopes")]
    pub scopes: Vec<String>,
    #[serde(default = "default_username_claim")]
    pub username_claim: String,
    #[serde(default = "default_email_claim")]
    pub email_claim: String,
    #[serde(default = "default_name_claim")]
    pub name_claim: String,
    /// The identity domain: usernames from this provider are `<name>@<domain>`, and no other provider's are.
    pub domain: String,
    /// When set, only people whose verified e-mail is in one of these domains may sign in.
    #[serde(default)]
    pub allowed_email_domains: Vec<String>,
}

fn default_scopes() -> Vec<String> {
    ["openid", "profile", "email"].map(String::from).to_vec()
}
fn default_username_claim() -> String {
    "preferred_username".into()
}
fn default_email_claim() -> String {
    "email".into()
}
fn default_name_claim() -> String {
    "name".into()
}

impl std::fmt::Debug for ProviderConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProviderConfig")
            .field("id", &self.id)
            .field("issuer", &self.issuer)
            .field("client_id", &self.client_id)
            .field("domain", &self.domain)
            .finish_non_exhaustive()
    }
}

/// Ferry's own namespace for provider ids: the same issuer gives the same id on every installation.
const PROVIDER_IDS: Uuid = Uuid::from_u128(0x6c1f_2b47_93d4_4f0e_8a51_0d3c_92e7_b1a8);

impl ProviderConfig {
    /// The provider's identity-provider id (the `identity_provider` of its identities).
    pub fn uuid(&self) -> Uuid {
        Uuid::new_v5(&PROVIDER_IDS, self.issuer.as_bytes())
    }

    /// Whether plain http is acceptable for this URL: only on the loopback interface (a test provider).
    fn url_ok(&self, url: &str) -> bool {
        match url::Url::parse(url) {
            Ok(u) if u.scheme() == "https" => true,
            Ok(u) if u.scheme() == "http" => {
                matches!(
                    u.host(),
                    Some(url::Host::Ipv4(a)) if a.is_loopback()
                ) || matches!(u.host(), Some(url::Host::Ipv6(a)) if a.is_loopback())
                    || u.host_str() == Some("localhost")
            }
            _ => false,
        }
    }
}

/// Checks the configured providers against each other and against Ferry's own domains: every provider owns
/// its identity domain alone, so no provider can name an identity that another (or a local account) has.
pub fn validate_providers(providers: &[ProviderConfig], reserved: &[&str]) -> Result<()> {
    let bad = |p: &ProviderConfig, what: String| {
        AuthError::InvalidRequest(format!("identity provider '{}': {what}", p.id))
    };
    let mut domains: HashMap<String, &str> = HashMap::new();
    for p in providers {
        if p.id.is_empty()
            || p.id.len() > 64
            || !p.id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        {
            return Err(bad(p, "id must be letters, digits and '-'".into()));
        }
        if !p.url_ok(&p.issuer) {
            return Err(bad(
                p,
                format!(
                    "issuer {} must be an https URL (plain http only on loopback)",
                    p.issuer
                ),
            ));
        }
        if p.client_id.is_empty() || p.client_secret.is_empty() {
            return Err(bad(p, "client_id and client_secret are required".into()));
        }
        if !p.scopes.iter().any(|s| s == "openid") {
            return Err(bad(p, "scopes must include openid".into()));
        }
        let domain = p.domain.to_ascii_lowercase();
        if Identity::person_username("x", &domain).is_err() || !domain.contains('.') {
            return Err(bad(
                p,
                format!("domain '{}' is not a domain name", p.domain),
            ));
        }
        if reserved.iter().any(|r| r.eq_ignore_ascii_case(&domain)) {
            return Err(bad(
                p,
                format!("domain '{domain}' is this server's own (local accounts or site accounts)"),
            ));
        }
        if let Some(other) = domains.insert(domain.clone(), &p.id) {
            return Err(bad(
                p,
                format!("domain '{domain}' is also provider '{other}''s"),
            ));
        }
        if providers.iter().filter(|q| q.id == p.id).count() > 1 {
            return Err(bad(p, "the id is used twice".into()));
        }
    }
    Ok(())
}

/// What follows a sign-in: an application's authorization request (its raw query), or a page of this server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AfterSignIn {
    Authorize(String),
    Page(String),
}

/// A sign-in sent to a provider, as kept until it comes back.
#[derive(Serialize, Deserialize)]
struct Pending {
    nonce: String,
    verifier: String,
    /// Hash of the secret in the browser's cookie: only the browser that started may finish.
    browser: String,
    after: AfterSignIn,
    /// Linking: the identity (signed in, recently) whose set the provider's identity joins.
    link_to: Option<Uuid>,
}

/// Where to send the browser, and the cookie value that binds the sign-in to it.
pub struct UpstreamStart {
    pub location: String,
    pub browser_secret: String,
}

/// The provider's answer on the callback, as the browser brought it.
pub struct UpstreamAnswer<'a> {
    pub state: &'a str,
    pub code: Option<&'a str>,
    pub error: Option<&'a str>,
    pub error_description: Option<&'a str>,
    /// RFC 9207's `iss`, when the provider sends it.
    pub iss: Option<&'a str>,
    pub browser_secret: Option<&'a str>,
}

/// A finished sign-in.
pub struct UpstreamSignIn {
    pub identity: Identity,
    pub created: bool,
    /// Set when the sign-in linked the identity into this identity's set.
    pub linked_to: Option<Uuid>,
    pub after: AfterSignIn,
}

/// What discovery and the JWKS said, as last fetched.
#[derive(Clone)]
struct Metadata {
    authorization_endpoint: String,
    token_endpoint: String,
    jwks_uri: String,
    keys: Vec<Value>,
    fetched_at: i64,
}

/// The providers and what is known of them.
pub struct Upstream {
    providers: Vec<ProviderConfig>,
    http: reqwest::Client,
    metadata: Mutex<HashMap<String, Metadata>>,
}

impl Upstream {
    pub fn new(providers: Vec<ProviderConfig>) -> Result<Self> {
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(TIMEOUT)
            .connect_timeout(TIMEOUT)
            .user_agent(concat!("ferry/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| AuthError::Internal(format!("HTTP client: {e}")))?;
        Ok(Self {
            providers,
            http,
            metadata: Mutex::new(HashMap::new()),
        })
    }

    pub fn providers(&self) -> &[ProviderConfig] {
        &self.providers
    }

    pub fn provider(&self, id: &str) -> Option<&ProviderConfig> {
        self.providers.iter().find(|p| p.id == id)
    }

    /// The display name of an identity provider id, if it is one of these providers.
    pub fn display_name(&self, uuid: Uuid) -> Option<&str> {
        self.providers
            .iter()
            .find(|p| p.uuid() == uuid)
            .map(|p| p.display_name.as_str())
    }

    /// GET a JSON document from a provider, bounded in time and size, following no redirect.
    async fn get_json(&self, p: &ProviderConfig, url: &str) -> Result<Value> {
        if !p.url_ok(url) {
            return Err(AuthError::Upstream(format!(
                "{} names {url}, which is not https",
                p.display_name
            )));
        }
        let resp = self
            .http
            .get(url)
            .header("accept", "application/json")
            .send()
            .await
            .map_err(|e| unreachable_provider(p, &e))?;
        read_json(p, resp).await
    }

    /// Discovery and keys, from the cache unless stale (or `refresh_keys`: a token named a key we lack).
    async fn metadata(&self, p: &ProviderConfig, now: i64, refresh_keys: bool) -> Result<Metadata> {
        let cached = self
            .metadata
            .lock()
            .ok()
            .and_then(|m| m.get(&p.id).cloned());
        let mut meta = match cached {
            Some(m) if now - m.fetched_at < METADATA_LIFETIME => m,
            _ => {
                let url = format!(
                    "{}/.well-known/openid-configuration",
                    p.issuer.trim_end_matches('/')
                );
                let doc = self.get_json(p, &url).await?;
                // OpenID Connect Discovery 4.3: the document must name exactly the issuer it was fetched for.
                if doc["issuer"].as_str() != Some(p.issuer.as_str()) {
                    return Err(AuthError::Upstream(format!(
                        "{}'s discovery document names issuer {}, not the configured {}",
                        p.display_name, doc["issuer"], p.issuer
                    )));
                }
                let field = |k: &str| -> Result<String> {
                    doc[k]
                        .as_str()
                        .filter(|u| p.url_ok(u))
                        .map(str::to_string)
                        .ok_or_else(|| {
                            AuthError::Upstream(format!(
                                "{}'s discovery document has no usable {k}",
                                p.display_name
                            ))
                        })
                };
                Metadata {
                    authorization_endpoint: field("authorization_endpoint")?,
                    token_endpoint: field("token_endpoint")?,
                    jwks_uri: field("jwks_uri")?,
                    keys: Vec::new(),
                    fetched_at: now,
                }
            }
        };
        if meta.keys.is_empty() || refresh_keys {
            let jwks = self.get_json(p, &meta.jwks_uri).await?;
            meta.keys = jwks["keys"].as_array().cloned().unwrap_or_default();
        }
        if let Ok(mut m) = self.metadata.lock() {
            m.insert(p.id.clone(), meta.clone());
        }
        Ok(meta)
    }
}

fn unreachable_provider(p: &ProviderConfig, e: &reqwest::Error) -> AuthError {
    let why = if e.is_timeout() {
        "did not answer in time".to_string()
    } else if e.is_connect() {
        "cannot be reached".to_string()
    } else {
        format!("failed: {e}")
    };
    AuthError::Upstream(format!(
        "{}'s sign-in service {why}. Try again later, or choose another way to sign in.",
        p.display_name
    ))
}

async fn read_json(p: &ProviderConfig, mut resp: reqwest::Response) -> Result<Value> {
    let status = resp.status();
    let mut body = Vec::new();
    while let Some(chunk) = resp
        .chunk()
        .await
        .map_err(|e| unreachable_provider(p, &e))?
    {
        if body.len() + chunk.len() > RESPONSE_LIMIT {
            return Err(AuthError::Upstream(format!(
                "{} answered with more than {RESPONSE_LIMIT} bytes",
                p.display_name
            )));
        }
        body.extend_from_slice(&chunk);
    }
    let doc: Value = serde_json::from_slice(&body).map_err(|_| {
        AuthError::Upstream(format!(
            "{} answered {status} with something that is not JSON",
            p.display_name
        ))
    })?;
    if !status.is_success() {
        let detail = doc["error_description"]
            .as_str()
            .or(doc["error"].as_str())
            .unwrap_or("no reason given");
        return Err(AuthError::Upstream(format!(
            "{} refused: {status}: {}",
            p.display_name,
            clip(detail)
        )));
    }
    Ok(doc)
}

/// A provider's text, shortened for a message.
fn clip(s: &str) -> String {
    s.chars().take(200).collect()
}

fn pkce_challenge(verifier: &str) -> String {
    b64url(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, verifier.as_bytes()).as_ref())
}

impl Auth {
    /// The providers a person may sign in through.
    pub fn upstream(&self) -> &Upstream {
        &self.upstream
    }

    /// Starts a sign-in at provider `id`: keeps what the answer will be checked against and returns where
    /// to send the browser. A provider that cannot be reached is `Upstream`, before anything is kept.
    pub async fn begin_upstream(
        &self,
        id: &str,
        after: AfterSignIn,
        link_to: Option<Uuid>,
    ) -> Result<UpstreamStart> {
        let p = self
            .upstream
            .provider(id)
            .ok_or_else(|| AuthError::NotFound(format!("no identity provider '{id}'")))?;
        let now = self.now();
        let meta = self.upstream.metadata(p, now, false).await?;
        let state = secrets::random_secret("")?;
        let browser_secret = secrets::random_secret("fus_")?;
        let pending = Pending {
            nonce: secrets::random_secret("")?,
            verifier: secrets::random_secret("")?,
            browser: self.hasher.hash(&browser_secret),
            after,
            link_to,
        };
        let mut location = url::Url::parse(&meta.authorization_endpoint)
            .map_err(|e| AuthError::Upstream(format!("{}: {e}", p.display_name)))?;
        location
            .query_pairs_mut()
            .append_pair("response_type", "code")
            .append_pair("client_id", &p.client_id)
            .append_pair("redirect_uri", &self.callback_url())
            .append_pair("scope", &p.scopes.join(" "))
            .append_pair("state", &state)
            .append_pair("nonce", &pending.nonce)
            .append_pair("code_challenge", &pkce_challenge(&pending.verifier))
            .append_pair("code_challenge_method", "S256");
        if link_to.is_some() {
            // Linking proves control of the provider's identity now, not through an old provider session.
            location.query_pairs_mut().append_pair("prompt", "login");
        }
        let doc =
            serde_json::to_string(&pending).map_err(|e| AuthError::Internal(e.to_string()))?;
        let kept = self
            .store
            .insert_upstream_login(
                &self.hasher.hash(&state),
                &p.id,
                &doc,
                now + PENDING_LIFETIME,
                now,
                PENDING_LIMIT,
            )
            .await?;
        if !kept {
            return Err(AuthError::Unavailable(
                "Too many sign-ins are waiting for their organizations right now; try again in a few minutes."
                    .into(),
            ));
        }
        Ok(UpstreamStart {
            location: location.into(),
            browser_secret,
        })
    }

    pub fn callback_url(&self) -> String {
        format!("{}{CALLBACK_PATH}", self.cfg.issuer)
    }

    /// Finishes a sign-in from the provider's answer: every check passes, or nothing is made.
    pub async fn finish_upstream(&self, answer: UpstreamAnswer<'_>) -> Result<UpstreamSignIn> {
        let now = self.now();
        let restart =
            "This sign-in has expired or was already used; start it again from the login page.";
        let (id, doc) = self
            .store
            .take_upstream_login(&self.hasher.hash(answer.state), now)
            .await?
            .ok_or_else(|| AuthError::Forbidden(restart.into()))?;
        let pending: Pending =
            serde_json::from_str(&doc).map_err(|e| AuthError::Internal(e.to_string()))?;
        if !answer
            .browser_secret
            .is_some_and(|b| secrets::equal(&self.hasher.hash(b), &pending.browser))
        {
            return Err(AuthError::Forbidden(
                "This sign-in was started in another browser (or its cookie is gone); start it again here."
                    .into(),
            ));
        }
        let p = self.upstream.provider(&id).ok_or_else(|| {
            AuthError::Forbidden(format!(
                "The identity provider '{id}' is no longer configured."
            ))
        })?;
        if let Some(error) = answer.error {
            return Err(AuthError::Forbidden(format!(
                "{} did not sign you in ({}{}).",
                p.display_name,
                clip(error),
                answer
                    .error_description
                    .map(|d| format!(": {}", clip(d)))
                    .unwrap_or_default()
            )));
        }
        // RFC 9207: an answer naming another issuer is a mix-up attack.
        if let Some(iss) = answer.iss
            && iss != p.issuer
        {
            return Err(AuthError::Forbidden(format!(
                "The answer claims to come from {}, not {}.",
                clip(iss),
                p.display_name
            )));
        }
        let code = answer
            .code
            .filter(|c| !c.is_empty())
            .ok_or_else(|| AuthError::Forbidden(format!("{} sent no code.", p.display_name)))?;
        let claims = self.redeem_code(p, code, &pending, now).await?;
        let fresh = identity_from_claims(p, &claims, now)?;
        let subject = claims["sub"].as_str().unwrap_or_default();
        let signed = self
            .store
            .sign_in_external(p.uuid(), subject, &fresh)
            .await
            .map_err(|e| match e {
                StoreError::Conflict(_) => AuthError::Conflict(format!(
                    "The username {} already belongs to another identity; ask this server's administrators.",
                    fresh.username
                )),
                e => e.into(),
            })?;
        if let Some(primary) = pending.link_to {
            self.link_signed_in(primary, &signed.identity, now).await?;
        }
        Ok(UpstreamSignIn {
            identity: signed.identity,
            created: signed.created,
            linked_to: pending.link_to,
            after: pending.after,
        })
    }

    /// Whether `session` is recent enough to link another identity into its set: linking hands the other
    /// identity's access to whoever holds this session, so an old or stolen session must sign in again first.
    pub fn may_link(&self, session: &crate::Session) -> bool {
        self.now() - session.auth_time <= LINK_FRESHNESS
    }

    /// Takes `other` out of `me`'s set. The identity signed in cannot take itself out.
    pub async fn unlink_identity(&self, me: &Identity, other: Uuid) -> Result<()> {
        if other == me.id {
            return Err(AuthError::Forbidden(
                "You are signed in as that identity; sign in as another of your identities to unlink it."
                    .into(),
            ));
        }
        if !self.identity_set(me).await?.iter().any(|i| i.id == other) {
            return Err(AuthError::NotFound(
                "That identity is not linked with yours.".into(),
            ));
        }
        Ok(self.store.unlink_identity(other).await?)
    }

    /// Links an identity someone just proved they control into the set of the one they are signed in as.
    async fn link_signed_in(&self, primary: Uuid, other: &Identity, now: i64) -> Result<()> {
        if primary == other.id {
            return Err(AuthError::Conflict(format!(
                "{} is the identity you are signed in as.",
                other.username
            )));
        }
        let theirs = self.store.identity_set(other.id).await?;
        let ours = self.store.identity_set(primary).await?;
        if ours.iter().any(|i| i.id == other.id) {
            return Ok(());
        }
        if theirs.len() > 1 {
            return Err(AuthError::Conflict(format!(
                "{} is already linked with another account; unlink it there first.",
                other.username
            )));
        }
        Ok(self.store.link_identity(primary, other.id, now).await?)
    }

    /// The code for tokens at the provider, and the ID token's claims once every check holds.
    async fn redeem_code(
        &self,
        p: &ProviderConfig,
        code: &str,
        pending: &Pending,
        now: i64,
    ) -> Result<Value> {
        let meta = self.upstream.metadata(p, now, false).await?;
        let form = [
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", &self.callback_url()),
            ("code_verifier", &pending.verifier),
        ];
        // client_secret_basic: RFC 6749 2.3.1 form-encodes both parts first.
        let enc = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
        let resp = self
            .upstream
            .http
            .post(&meta.token_endpoint)
            .basic_auth(enc(&p.client_id), Some(enc(&p.client_secret)))
            .header("accept", "application/json")
            .form(&form)
            .send()
            .await
            .map_err(|e| unreachable_provider(p, &e))?;
        let tokens = read_json(p, resp).await?;
        let id_token = tokens["id_token"].as_str().ok_or_else(|| {
            AuthError::Upstream(format!("{} returned no ID token", p.display_name))
        })?;
        let claims = self.verified_claims(p, id_token, meta).await?;
        check_claims(p, &claims, &pending.nonce, now)?;
        Ok(claims)
    }

    /// The ID token's claims if its signature is one of the provider's keys (fetched again once when the
    /// token names a key not seen yet: the provider rotated).
    async fn verified_claims(
        &self,
        p: &ProviderConfig,
        token: &str,
        meta: Metadata,
    ) -> Result<Value> {
        let refused = |why: &str| {
            AuthError::Forbidden(format!("{}'s ID token was refused: {why}.", p.display_name))
        };
        let mut parts = token.split('.');
        let (Some(h), Some(c), Some(s), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(refused("it is not a signed JWT"));
        };
        let decode = |part: &str| {
            URL_SAFE_NO_PAD
                .decode(part)
                .map_err(|_| refused("bad base64"))
        };
        let header: Value =
            serde_json::from_slice(&decode(h)?).map_err(|_| refused("its header is not JSON"))?;
        let sig = decode(s)?;
        let alg = header["alg"].as_str().unwrap_or("");
        // Only asymmetric algorithms: `none` and HS256 (a public key used as an HMAC secret) never pass.
        let scheme: &'static dyn signature::VerificationAlgorithm = match alg {
            "RS256" => &signature::RSA_PKCS1_2048_8192_SHA256,
            "ES256" => &signature::ECDSA_P256_SHA256_FIXED,
            _ => {
                return Err(refused(&format!(
                    "algorithm '{}' is not accepted",
                    clip(alg)
                )));
            }
        };
        let kid = header["kid"].as_str();
        let mut keys = meta.keys;
        if kid.is_some_and(|k| !keys.iter().any(|j| j["kid"].as_str() == Some(k))) {
            keys = self.upstream.metadata(p, self.now(), true).await?.keys;
        }
        let candidates: Vec<&Value> = keys
            .iter()
            .filter(|j| kid.is_none() || j["kid"].as_str() == kid)
            .filter(|j| j["use"].as_str().is_none_or(|u| u == "sig"))
            .collect();
        let input = format!("{h}.{c}");
        let ok = candidates.iter().any(|jwk| {
            public_key(jwk, alg).is_some_and(|key| {
                UnparsedPublicKey::new(scheme, key)
                    .verify(input.as_bytes(), &sig)
                    .is_ok()
            })
        });
        if !ok {
            return Err(refused(
                "its signature is not from the provider's published keys",
            ));
        }
        serde_json::from_slice(&decode(c)?).map_err(|_| refused("its claims are not JSON"))
    }
}

/// A JWK's public key in the form aws-lc-rs verifies with: DER RSAPublicKey, or an uncompressed P-256 point.
fn public_key(jwk: &Value, alg: &str) -> Option<Vec<u8>> {
    let field = |k: &str| jwk[k].as_str().and_then(|v| URL_SAFE_NO_PAD.decode(v).ok());
    match (alg, jwk["kty"].as_str()?) {
        ("RS256", "RSA") => Some(rsa_public_der(&field("n")?, &field("e")?)),
        ("ES256", "EC") if jwk["crv"].as_str() == Some("P-256") => {
            let (x, y) = (field("x")?, field("y")?);
            (x.len() == 32 && y.len() == 32).then(|| [&[4u8][..], &x, &y].concat())
        }
        _ => None,
    }
}

/// DER of RSAPublicKey ::= SEQUENCE { modulus INTEGER, publicExponent INTEGER }.
fn rsa_public_der(n: &[u8], e: &[u8]) -> Vec<u8> {
    fn integer(bytes: &[u8]) -> Vec<u8> {
        let trimmed: &[u8] = {
            let start = bytes.iter().position(|b| *b != 0).unwrap_or(bytes.len());
            &bytes[start..]
        };
        let mut v = Vec::with_capacity(trimmed.len() + 1);
        if trimmed.first().is_none_or(|b| b & 0x80 != 0) {
            v.push(0);
        }
        v.extend_from_slice(trimmed);
        tlv(0x02, &v)
    }
    fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
        let mut out = vec![tag];
        let len = content.len();
        if len < 0x80 {
            out.push(len as u8);
        } else {
            let bytes = len.to_be_bytes();
            let skip = bytes
                .iter()
                .position(|b| *b != 0)
                .unwrap_or(bytes.len() - 1);
            out.push(0x80 | (bytes.len() - skip) as u8);
            out.extend_from_slice(&bytes[skip..]);
        }
        out.extend_from_slice(content);
        out
    }
    tlv(0x30, &[integer(n), integer(e)].concat())
}

/// OpenID Connect Core 3.1.3.7: issuer, audience, authorized party, expiry, issue time, nonce.
fn check_claims(p: &ProviderConfig, claims: &Value, nonce: &str, now: i64) -> Result<()> {
    let refused = |why: String| {
        AuthError::Forbidden(format!("{}'s ID token was refused: {why}.", p.display_name))
    };
    if claims["iss"].as_str() != Some(p.issuer.as_str()) {
        return Err(refused(format!(
            "it was issued by {}, not {}",
            clip(&claims["iss"].to_string()),
            p.issuer
        )));
    }
    let audiences: Vec<&str> = match &claims["aud"] {
        Value::String(a) => vec![a.as_str()],
        Value::Array(a) => a.iter().filter_map(Value::as_str).collect(),
        _ => vec![],
    };
    if !audiences.contains(&p.client_id.as_str()) {
        return Err(refused("it was issued to another application".into()));
    }
    if audiences.len() > 1 && claims["azp"].as_str() != Some(p.client_id.as_str()) {
        return Err(refused(
            "it names several audiences but not us as its authorized party".into(),
        ));
    }
    let exp = claims["exp"]
        .as_i64()
        .ok_or_else(|| refused("it has no exp".into()))?;
    if exp + CLOCK_SKEW <= now {
        return Err(refused(format!("it expired {} seconds ago", now - exp)));
    }
    let iat = claims["iat"]
        .as_i64()
        .ok_or_else(|| refused("it has no iat".into()))?;
    if iat > now + CLOCK_SKEW {
        return Err(refused(
            "it was issued in the future (check the clocks)".into(),
        ));
    }
    if !claims["nonce"]
        .as_str()
        .is_some_and(|n| secrets::equal(n, nonce))
    {
        return Err(refused("its nonce is not the one this sign-in sent".into()));
    }
    Ok(())
}

/// The identity a provider's claims describe, refused when they break the provider's rules.
fn identity_from_claims(p: &ProviderConfig, claims: &Value, now: i64) -> Result<Identity> {
    let refused = |why: String| AuthError::Forbidden(format!("{}: {why}", p.display_name));
    let text = |name: &str| -> Result<Option<String>> {
        match &claims[name] {
            Value::Null => Ok(None),
            Value::String(s) if s.len() <= CLAIM_LIMIT => Ok(Some(s.trim().to_string())),
            Value::String(_) => Err(refused(format!("the {name} claim is too long"))),
            _ => Err(refused(format!("the {name} claim is not a string"))),
        }
    };
    let subject = text("sub")?.unwrap_or_default();
    if subject.is_empty() || subject.len() > 255 || subject.chars().any(char::is_control) {
        return Err(refused("the sub claim is missing or unusable".into()));
    }
    let email = text(&p.email_claim)?.filter(|e| !e.is_empty());
    if !p.allowed_email_domains.is_empty() {
        let verified = claims["email_verified"] == Value::Bool(true);
        let domain = email
            .as_deref()
            .and_then(|e| e.rsplit_once('@'))
            .map(|(_, d)| d.to_ascii_lowercase());
        let allowed = domain.as_deref().is_some_and(|d| {
            p.allowed_email_domains
                .iter()
                .any(|a| a.eq_ignore_ascii_case(d))
        });
        if !verified || !allowed {
            return Err(refused(format!(
                "only people with a verified e-mail address at {} may sign in here{}",
                p.allowed_email_domains.join(", "),
                match (&email, verified) {
                    (Some(e), true) => format!(" ({} is not)", clip(e)),
                    (Some(_), false) => " (the provider does not say yours is verified)".into(),
                    (None, _) => " (the provider gave no e-mail address)".into(),
                }
            )));
        }
    }
    let raw = text(&p.username_claim)?
        .filter(|u| !u.is_empty())
        .ok_or_else(|| {
            refused(format!(
                "the {} claim (the username) is missing",
                p.username_claim
            ))
        })?;
    let local = match raw.rsplit_once('@') {
        Some((l, d)) if d.eq_ignore_ascii_case(&p.domain) => l.to_string(),
        Some(_) => {
            return Err(refused(format!(
                "the username {} is outside this provider's domain {}",
                clip(&raw),
                p.domain
            )));
        }
        None => raw,
    };
    let username = Identity::person_username(&local, &p.domain).map_err(refused)?;
    let name = text(&p.name_claim)?
        .filter(|n| !n.is_empty() && !n.chars().any(char::is_control))
        .unwrap_or_else(|| local.clone());
    Ok(Identity {
        id: Uuid::new_v4(),
        username,
        name,
        email,
        organization: Some(p.display_name.clone()),
        kind: IdentityKind::Person,
        created: now,
        identity_provider: Some(p.uuid()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn provider() -> ProviderConfig {
        ProviderConfig {
            id: "uni".into(),
            display_name: "Example University".into(),
            issuer: "https://idp.uni.example".into(),
            client_id: "ferry".into(),
            client_secret: "s".into(),
            scopes: default_scopes(),
            username_claim: default_username_claim(),
            email_claim: default_email_claim(),
            name_claim: default_name_claim(),
            domain: "uni.example".into(),
            allowed_email_domains: vec![],
        }
    }

    fn claims() -> Value {
        json!({"iss": "https://idp.uni.example", "aud": "ferry", "sub": "248289761001", "exp": 1_000_100,
               "iat": 1_000_000, "nonce": "n-1", "preferred_username": "Ana", "email": "ana@uni.example",
               "email_verified": true, "name": "Ana Lima"})
    }

    #[test]
    fn claims_are_checked_as_oidc_core_says() {
        let p = provider();
        assert!(check_claims(&p, &claims(), "n-1", 1_000_050).is_ok());
        // The skew is bounded both ways.
        assert!(check_claims(&p, &claims(), "n-1", 1_000_100 + CLOCK_SKEW - 1).is_ok());
        assert!(check_claims(&p, &claims(), "n-1", 1_000_100 + CLOCK_SKEW).is_err());
        assert!(check_claims(&p, &claims(), "n-1", 1_000_000 - CLOCK_SKEW - 1).is_err());
        for (k, v) in [
            ("iss", json!("https://evil.example")),
            ("aud", json!("someone-else")),
            ("aud", json!(["ferry", "other"])),
            ("nonce", json!("n-2")),
            ("exp", Value::Null),
        ] {
            let mut c = claims();
            c[k] = v;
            assert!(check_claims(&p, &c, "n-1", 1_000_050).is_err(), "{k}");
        }
        let mut c = claims();
        c["aud"] = json!(["ferry", "other"]);
        c["azp"] = json!("ferry");
        assert!(check_claims(&p, &c, "n-1", 1_000_050).is_ok());
    }

    #[test]
    fn usernames_stay_in_the_providers_domain() {
        let p = provider();
        let i = identity_from_claims(&p, &claims(), 5).unwrap();
        assert_eq!(i.username, "ana@uni.example");
        assert_eq!(i.identity_provider, Some(p.uuid()));
        let mut c = claims();
        c["preferred_username"] = json!("ana@UNI.example");
        assert_eq!(
            identity_from_claims(&p, &c, 5).unwrap().username,
            "ana@uni.example"
        );
        for bad in [
            json!("root@other.example"),
            json!("a/b"),
            json!(""),
            json!(12),
            json!("x".repeat(5000)),
        ] {
            let mut c = claims();
            c["preferred_username"] = bad.clone();
            assert!(identity_from_claims(&p, &c, 5).is_err(), "{bad}");
        }
    }

    #[test]
    fn allowed_email_domains_need_a_verified_address() {
        let mut p = provider();
        p.allowed_email_domains = vec!["uni.example".into()];
        assert!(identity_from_claims(&p, &claims(), 5).is_ok());
        for (k, v) in [
            ("email", json!("ana@gmail.example")),
            ("email_verified", json!("true")),
            ("email_verified", json!(false)),
            ("email", Value::Null),
        ] {
            let mut c = claims();
            c[k] = v;
            assert!(identity_from_claims(&p, &c, 5).is_err(), "{k}");
        }
    }

    #[test]
    fn provider_domains_are_owned_once() {
        let a = provider();
        let mut b = provider();
        b.id = "other".into();
        b.issuer = "https://other.example".into();
        assert!(validate_providers(&[a.clone(), b.clone()], &[]).is_err());
        b.domain = "other.example".into();
        assert!(validate_providers(&[a.clone(), b.clone()], &[]).is_ok());
        assert!(validate_providers(std::slice::from_ref(&a), &["uni.example"]).is_err());
        let mut http = provider();
        http.issuer = "http://idp.uni.example".into();
        assert!(validate_providers(&[http.clone()], &[]).is_err());
        http.issuer = "http://127.0.0.1:4000".into();
        assert!(validate_providers(&[http], &[]).is_ok());
    }

    #[test]
    fn rsa_keys_from_jwk_verify() {
        let signer =
            crate::keys::Signer::from_stored(&crate::keys::Signer::generate().unwrap()).unwrap();
        let token = signer.sign(&json!({"a": 1})).unwrap();
        let jwk = &signer.jwks()["keys"][0];
        let key = public_key(jwk, "RS256").unwrap();
        let (input, sig) = token.rsplit_once('.').unwrap();
        let sig = URL_SAFE_NO_PAD.decode(sig).unwrap();
        assert!(
            UnparsedPublicKey::new(&signature::RSA_PKCS1_2048_8192_SHA256, &key)
                .verify(input.as_bytes(), &sig)
                .is_ok()
        );
        assert!(public_key(jwk, "ES256").is_none());
    }
}
