//! Identities are every principal Ferry knows: people with local accounts, and applications (clients),
//! whose identity id is their client id and whose username lives in the `clients.` sub-domain so that it can
//! never be confused with a person's.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::time::Timestamp;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum IdentityKind {
    Person,
    Client,
}

impl IdentityKind {
    pub fn as_str(self) -> &'static str {
        match self {
            IdentityKind::Person => "person",
            IdentityKind::Client => "client",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "person" => Some(IdentityKind::Person),
            "client" => Some(IdentityKind::Client),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identity {
    pub id: Uuid,
    pub username: String,
    pub name: String,
    pub email: Option<String>,
    pub organization: Option<String>,
    pub kind: IdentityKind,
    pub created: Timestamp,
    /// The upstream provider (or site-account domain) the identity signs in through; None for Ferry's own
    /// local accounts and applications.
    #[serde(default)]
    pub identity_provider: Option<Uuid>,
}

impl Identity {
    /// An identity known here only by its id (another identity's linked one, as a hub named it): enough for
    /// rules and roles, which name identities by id.
    pub fn known_by_id(id: Uuid) -> Self {
        Self {
            id,
            username: String::new(),
            name: String::new(),
            email: None,
            organization: None,
            kind: IdentityKind::Person,
            created: 0,
            identity_provider: None,
        }
    }

    /// The username of a client's identity: `<client id>@clients.<auth domain>`.
    pub fn client_username(client_id: Uuid, domain: &str) -> String {
        format!("{client_id}@clients.{domain}")
    }

    /// A local person's username: a bare name gets the auth domain appended; a name with a domain is kept.
    pub fn person_username(name: &str, domain: &str) -> Result<String, String> {
        let name = name.trim();
        let (local, dom) = match name.split_once('@') {
            Some((l, d)) => (l, d),
            None => (name, domain),
        };
        let valid_local = !local.is_empty()
            && local.len() <= 64
            && local
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '+'));
        let valid_domain = !dom.is_empty()
            && dom.len() <= 190
            && dom
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-'));
        if !valid_local || !valid_domain {
            return Err(format!(
                "'{name}' is not a valid username: use letters, digits, '.', '_', '-' or '+', optionally followed by @domain"
            ));
        }
        if dom.starts_with("clients.") {
            return Err(format!(
                "'{name}' is in the clients. domain, which is reserved for applications"
            ));
        }
        Ok(format!(
            "{}@{}",
            local.to_ascii_lowercase(),
            dom.to_ascii_lowercase()
        ))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ClientKind {
    /// Holds a secret: portals, services, the Globus CLI's per-install client.
    Confidential,
    /// Cannot keep a secret: must use PKCE.
    Native,
}

impl ClientKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ClientKind::Confidential => "confidential",
            ClientKind::Native => "native",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "confidential" => Some(ClientKind::Confidential),
            "native" => Some(ClientKind::Native),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Client {
    /// Also the id of the client's identity.
    pub id: Uuid,
    pub name: String,
    pub kind: ClientKind,
    /// Exact redirect URIs; loopback URIs match on any port (RFC 8252 §7.3).
    pub redirect_uris: Vec<String>,
    /// The identity that created or owns the client, if any.
    pub owner: Option<Uuid>,
    /// The public client this one was registered from, which may also revoke its tokens.
    pub template_id: Option<Uuid>,
    pub created: Timestamp,
    /// Registered by the administrator (`ferry client create`); clients registered through the API or from a
    /// template are not, and the consent page says so.
    pub verified: bool,
    /// The grant types it may use; None: the defaults of its kind.
    pub grant_types: Option<Vec<String>>,
    /// The scopes it may be issued; None: any scope.
    pub allowed_scopes: Option<Vec<String>>,
}

/// The grant types a client may use unless it was registered with its own list.
pub fn default_grant_types(kind: ClientKind) -> &'static [&'static str] {
    match kind {
        ClientKind::Confidential => &[
            GRANT_AUTHORIZATION_CODE,
            GRANT_CLIENT_CREDENTIALS,
            GRANT_REFRESH_TOKEN,
            GRANT_DEPENDENT_TOKEN,
        ],
        ClientKind::Native => &[GRANT_AUTHORIZATION_CODE, GRANT_REFRESH_TOKEN],
    }
}

pub const GRANT_AUTHORIZATION_CODE: &str = "authorization_code";
pub const GRANT_CLIENT_CREDENTIALS: &str = "client_credentials";
pub const GRANT_REFRESH_TOKEN: &str = "refresh_token";
pub const GRANT_DEPENDENT_TOKEN: &str = "urn:globus:auth:grant_type:dependent_token";
/// Every grant type Ferry knows.
pub const GRANT_TYPES: &[&str] = &[
    GRANT_AUTHORIZATION_CODE,
    GRANT_CLIENT_CREDENTIALS,
    GRANT_REFRESH_TOKEN,
    GRANT_DEPENDENT_TOKEN,
];

impl Client {
    /// The grant types this client may use.
    pub fn grant_types(&self) -> Vec<String> {
        match &self.grant_types {
            Some(g) => g.clone(),
            None => default_grant_types(self.kind)
                .iter()
                .map(|g| g.to_string())
                .collect(),
        }
    }

    pub fn allows_grant(&self, grant_type: &str) -> bool {
        self.grant_types().iter().any(|g| g == grant_type)
    }

    /// May this client be issued a token for `scope`?
    pub fn allows_scope(&self, scope: &str) -> bool {
        self.allowed_scopes
            .as_ref()
            .is_none_or(|allowed| allowed.iter().any(|a| a == scope))
    }

    /// Does `uri` match one of the registered redirect URIs exactly (loopback: any port)?
    pub fn accepts_redirect(&self, uri: &str) -> bool {
        self.redirect_uris
            .iter()
            .any(|r| r == uri || loopback_equal_but_port(r, uri))
    }
}

/// `http://127.0.0.1:PORT/path` and `http://localhost:PORT/path` match the registration on any port,
/// and nothing else about them may differ.
fn loopback_equal_but_port(registered: &str, uri: &str) -> bool {
    fn split(u: &str) -> Option<(&str, &str, &str)> {
        let rest = u.strip_prefix("http://")?;
        let (hostport, path) = match rest.find(['/', '?', '#']) {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, ""),
        };
        let (host, port) = match hostport.rsplit_once(':') {
            Some((h, p)) if !p.is_empty() && p.chars().all(|c| c.is_ascii_digit()) => (h, p),
            Some(_) => return None,
            None => (hostport, ""),
        };
        matches!(host, "127.0.0.1" | "localhost" | "[::1]").then_some((host, port, path))
    }
    match (split(registered), split(uri)) {
        (Some((h1, _, p1)), Some((h2, _, p2))) => h1 == h2 && p1 == p2,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(uris: &[&str]) -> Client {
        Client {
            id: Uuid::nil(),
            name: "t".into(),
            kind: ClientKind::Native,
            redirect_uris: uris.iter().map(|s| s.to_string()).collect(),
            owner: None,
            template_id: None,
            created: 0,
            verified: true,
            grant_types: None,
            allowed_scopes: None,
        }
    }

    #[test]
    fn redirect_uris_match_exactly() {
        let c = client(&["https://app.example/cb"]);
        assert!(c.accepts_redirect("https://app.example/cb"));
        for bad in [
            "https://app.example/cb/",
            "https://APP.example/cb",
            "https://app.example/cb?x=1",
            "https://app.example/cb#f",
            "https://app.example/cb/../x",
            "https://app.example@evil.example/cb",
            "https://evil.app.example/cb",
            "http://app.example/cb",
            "https://app.example:443/cb",
            "javascript:alert(1)",
        ] {
            assert!(!c.accepts_redirect(bad), "{bad} must not match");
        }
    }

    #[test]
    fn loopback_matches_any_port_only() {
        let c = client(&["http://127.0.0.1/cb", "http://localhost"]);
        assert!(c.accepts_redirect("http://127.0.0.1:5555/cb"));
        assert!(c.accepts_redirect("http://127.0.0.1/cb"));
        assert!(c.accepts_redirect("http://localhost:41234"));
        assert!(!c.accepts_redirect("http://127.0.0.1.evil.example/cb"));
        assert!(!c.accepts_redirect("http://127.0.0.1:5555/other"));
        assert!(!c.accepts_redirect("http://localhost:1@evil.example"));
    }

    #[test]
    fn grant_types_and_scopes() {
        let mut c = client(&[]);
        assert!(c.allows_grant(GRANT_AUTHORIZATION_CODE));
        assert!(!c.allows_grant(GRANT_CLIENT_CREDENTIALS), "native");
        c.kind = ClientKind::Confidential;
        assert!(c.allows_grant(GRANT_CLIENT_CREDENTIALS));
        c.grant_types = Some(vec![GRANT_CLIENT_CREDENTIALS.into()]);
        assert!(!c.allows_grant(GRANT_AUTHORIZATION_CODE));
        assert!(c.allows_scope("openid"));
        c.allowed_scopes = Some(vec!["openid".into()]);
        assert!(c.allows_scope("openid"));
        assert!(!c.allows_scope("email"));
    }

    #[test]
    fn usernames() {
        assert_eq!(
            Identity::person_username("Alice", "ferry.local").unwrap(),
            "alice@ferry.local"
        );
        assert_eq!(
            Identity::person_username("bob@uni.edu", "ferry.local").unwrap(),
            "bob@uni.edu"
        );
        assert!(Identity::person_username("a b", "ferry.local").is_err());
        assert!(Identity::person_username("x@clients.ferry.local", "ferry.local").is_err());
        assert!(Identity::person_username("", "ferry.local").is_err());
    }
}
