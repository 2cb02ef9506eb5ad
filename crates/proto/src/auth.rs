//! Globus Auth documents.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// One token of a token response (`other_tokens` entries have the same shape minus `id_token`/`state`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TokenDoc {
    pub access_token: String,
    pub scope: String,
    pub expires_in: i64,
    pub token_type: String,
    pub resource_server: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub refresh_token: Option<String>,
}

/// The response of `POST /v2/oauth2/token`: the first token at the top level, the rest in `other_tokens`
/// (always present, possibly empty: the SDK reads it unconditionally).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TokenResponse {
    #[serde(flatten)]
    pub token: TokenDoc,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub id_token: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub state: Option<String>,
    pub other_tokens: Vec<TokenDoc>,
}

impl TokenResponse {
    pub fn all(&self) -> impl Iterator<Item = &TokenDoc> {
        std::iter::once(&self.token).chain(self.other_tokens.iter())
    }
    pub fn for_resource_server(&self, rs: &str) -> Option<&TokenDoc> {
        self.all().find(|t| t.resource_server == rs)
    }
}

/// An identity as `GET /v2/api/identities` returns it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IdentityDoc {
    pub id: Uuid,
    pub username: String,
    pub status: String,
    pub identity_provider: Uuid,
    pub identity_type: String,
    pub name: Option<String>,
    pub email: Option<String>,
    pub organization: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IdentitiesResponse {
    pub identities: Vec<IdentityDoc>,
}

/// An OAuth2 error body (RFC 6749 §5.2), as the token, introspection and revocation endpoints answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OAuthErrorDoc {
    pub error: String,
    pub error_description: String,
}

/// One entry of the Globus Auth API error envelope `{"errors": [...], "error": ..., "error_description": ...}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuthApiErrorItem {
    pub status: String,
    pub id: String,
    pub code: String,
    pub title: String,
    pub detail: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuthApiErrorDoc {
    pub errors: Vec<AuthApiErrorItem>,
    pub error: String,
    pub error_description: String,
}

/// One entry of a scope's `dependent_scopes` (Globus Auth's `DependentScopeSpec`): the dependency's scope id.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DependentScopeDoc {
    /// The dependency's id; Ferry also accepts its scope string.
    pub scope: String,
    #[serde(default)]
    pub optional: bool,
    #[serde(default)]
    pub requires_refresh_token: bool,
}

/// A scope as `/v2/api/scopes` returns it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScopeDoc {
    pub scope_string: String,
    pub allows_refresh_token: bool,
    pub id: Uuid,
    pub advertised: bool,
    pub required_domains: Vec<String>,
    pub name: String,
    pub description: String,
    /// The client (resource server) that registered it; None for Ferry's built-in scopes.
    pub client: Option<Uuid>,
    pub dependent_scopes: Vec<DependentScopeDoc>,
}

/// The `scope` object of `POST /v2/api/clients/{id}/scopes` and `PUT /v2/api/scopes/{id}`: on update only the
/// fields given change.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScopeRequest {
    pub name: Option<String>,
    pub description: Option<String>,
    pub scope_suffix: Option<String>,
    pub advertised: Option<bool>,
    pub allows_refresh_token: Option<bool>,
    pub required_domains: Option<Vec<String>>,
    pub dependent_scopes: Option<Vec<DependentScopeDoc>>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScopeEnvelope<T> {
    pub scope: T,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScopesResponse {
    pub scopes: Vec<ScopeDoc>,
}

/// `introspect` with `include=session_info`: the login session a token came from, as Globus Auth reports it
/// (`globus session show` reads `authentications`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SessionInfo {
    pub session_id: Option<Uuid>,
    pub authentications: std::collections::BTreeMap<Uuid, SessionAuthentication>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SessionAuthentication {
    pub auth_time: i64,
    pub idp: Uuid,
    pub acr: Option<String>,
    pub amr: Option<Vec<String>>,
    pub custom_claims: serde_json::Value,
}

/// The host's own accounts (Unix, or LDAP through the host) as an identity domain: `ferry oidc show`. The
/// counterpart of a Globus Connect Server's OIDC server; passwords are checked through PAM.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SiteAccountsDoc {
    #[serde(rename = "DATA_TYPE")]
    pub data_type: String,
    /// The identity provider id of these identities.
    pub id: Uuid,
    /// Identities are `<account>@<domain>`.
    pub domain: String,
    /// What the login page calls these accounts ("Example Lab accounts").
    pub display_name: String,
    /// The PAM service that checks passwords (`/etc/pam.d/<service>`).
    pub pam_service: String,
}

pub const SITE_ACCOUNTS_TYPE: &str = "site_accounts#1.0.0";
