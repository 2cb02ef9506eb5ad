//! Globus scope strings and the resource servers they belong to.
//!
//! Clients ask for the scope strings they always ask for (`urn:globus:auth:scope:transfer.api.globus.org:all`, …),
//! possibly with dependent scopes (`parent[child *optional]`). Every scope belongs to exactly one resource server,
//! and Ferry issues one token per resource server, valid only there.

use std::fmt;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

pub const AUTH_RS: &str = "auth.globus.org";
pub const TRANSFER_RS: &str = "transfer.api.globus.org";
pub const GROUPS_RS: &str = "groups.api.globus.org";
pub const SEARCH_RS: &str = "search.api.globus.org";
pub const FLOWS_RS: &str = "flows.globus.org";
/// The Globus Flows service's scopes are named after this id but its resource server is `flows.globus.org`.
const FLOWS_SCOPE_ID: &str = "eec9b274-0c81-4334-bdc2-54e90e689b9a";

pub const TRANSFER_ALL: &str = "urn:globus:auth:scope:transfer.api.globus.org:all";
pub const GROUPS_ALL: &str = "urn:globus:auth:scope:groups.api.globus.org:all";
pub const VIEW_IDENTITY_SET: &str = "urn:globus:auth:scope:auth.globus.org:view_identity_set";
pub const VIEW_IDENTITIES: &str = "urn:globus:auth:scope:auth.globus.org:view_identities";
pub const VIEW_CONSENTS: &str = "urn:globus:auth:scope:auth.globus.org:view_consents";
/// Needed to manage a client's scopes (`/v2/api/clients/{id}/scopes`, `/v2/api/scopes`).
pub const MANAGE_PROJECTS: &str = "urn:globus:auth:scope:auth.globus.org:manage_projects";
/// Globus Timers' scope: `globus login` asks for it with Transfer as its dependency.
pub const TIMER: &str = "https://auth.globus.org/scopes/524230d7-ea86-4a52-8312-86065a9e0417/timer";

/// The scopes Ferry defines itself (not counting the per-endpoint and per-collection ones).
pub const BUILTIN_SCOPES: &[&str] = &[
    "openid",
    "profile",
    "email",
    VIEW_IDENTITY_SET,
    VIEW_IDENTITIES,
    VIEW_CONSENTS,
    MANAGE_PROJECTS,
    TRANSFER_ALL,
    "urn:globus:auth:scope:transfer.api.globus.org:gcp_install",
    GROUPS_ALL,
    "urn:globus:auth:scope:groups.api.globus.org:view_my_groups_and_memberships",
    TIMER,
];

/// A resource server name, e.g. `transfer.api.globus.org` or a GCS endpoint/collection id.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ResourceServer(pub String);

impl ResourceServer {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ResourceServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScopeError {
    #[error("the scope string is malformed: {0}")]
    Malformed(String),
    #[error("unknown scope '{0}'")]
    Unknown(String),
    #[error("no scope was requested")]
    Empty,
}

/// One requested scope and the scopes it depends on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scope {
    pub name: String,
    pub optional: bool,
    pub dependencies: Vec<Scope>,
}

impl Scope {
    /// Parses a space-separated scope list with the dependent-scope syntax `a[b *c[d]] e`.
    pub fn parse_list(input: &str) -> Result<Vec<Scope>, ScopeError> {
        let mut p = Parser {
            chars: input.chars().collect(),
            pos: 0,
        };
        let list = p.list()?;
        if p.pos != p.chars.len() {
            return Err(ScopeError::Malformed(format!(
                "unexpected '{}' at position {}",
                p.chars[p.pos], p.pos
            )));
        }
        Ok(list)
    }

    /// The resource server this scope belongs to, if Ferry knows the scope.
    pub fn resource_server(&self) -> Result<ResourceServer, ScopeError> {
        resource_server_of(&self.name).ok_or_else(|| ScopeError::Unknown(self.name.clone()))
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.optional {
            f.write_str("*")?;
        }
        f.write_str(&self.name)?;
        if !self.dependencies.is_empty() {
            f.write_str("[")?;
            for (i, d) in self.dependencies.iter().enumerate() {
                if i > 0 {
                    f.write_str(" ")?;
                }
                write!(f, "{d}")?;
            }
            f.write_str("]")?;
        }
        Ok(())
    }
}

struct Parser {
    chars: Vec<char>,
    pos: usize,
}

impl Parser {
    fn skip_ws(&mut self) {
        while self.pos < self.chars.len() && self.chars[self.pos].is_whitespace() {
            self.pos += 1;
        }
    }

    fn list(&mut self) -> Result<Vec<Scope>, ScopeError> {
        let mut out = Vec::new();
        loop {
            self.skip_ws();
            match self.chars.get(self.pos) {
                None | Some(']') => return Ok(out),
                _ => out.push(self.scope()?),
            }
        }
    }

    fn scope(&mut self) -> Result<Scope, ScopeError> {
        let optional = self.chars.get(self.pos) == Some(&'*');
        if optional {
            self.pos += 1;
        }
        let start = self.pos;
        while let Some(&c) = self.chars.get(self.pos) {
            if c.is_whitespace() || c == '[' || c == ']' || c == '*' {
                break;
            }
            self.pos += 1;
        }
        let name: String = self.chars[start..self.pos].iter().collect();
        if name.is_empty() {
            return Err(ScopeError::Malformed(format!(
                "a scope name is missing at position {start}"
            )));
        }
        let mut dependencies = Vec::new();
        if self.chars.get(self.pos) == Some(&'[') {
            self.pos += 1;
            dependencies = self.list()?;
            if self.chars.get(self.pos) != Some(&']') {
                return Err(ScopeError::Malformed(format!(
                    "'[' after '{name}' is not closed"
                )));
            }
            self.pos += 1;
        }
        Ok(Scope {
            name,
            optional,
            dependencies,
        })
    }
}

fn is_uuid(s: &str) -> bool {
    Uuid::try_parse(s).is_ok()
}

/// The resource server of a scope string, or None when Ferry does not know the scope.
pub fn resource_server_of(scope: &str) -> Option<ResourceServer> {
    let rs = |s: &str| Some(ResourceServer(s.to_string()));
    match scope {
        "openid" | "profile" | "email" => return rs(AUTH_RS),
        _ => {}
    }
    if let Some(rest) = scope.strip_prefix("urn:globus:auth:scope:") {
        let (server, name) = rest.rsplit_once(':')?;
        return match (server, name) {
            (
                AUTH_RS,
                "view_identity_set" | "view_identities" | "view_consents" | "manage_projects",
            ) => rs(AUTH_RS),
            (TRANSFER_RS, "all" | "gcp_install") => rs(TRANSFER_RS),
            (GROUPS_RS, "all" | "view_my_groups_and_memberships") => rs(GROUPS_RS),
            (SEARCH_RS, "all" | "search" | "ingest") => rs(SEARCH_RS),
            (id, "manage_collections") if is_uuid(id) => rs(id),
            _ => None,
        };
    }
    if let Some(rest) = scope.strip_prefix("https://auth.globus.org/scopes/") {
        let (id, name) = rest.split_once('/')?;
        if !is_uuid(id)
            || name.is_empty()
            || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        {
            return None;
        }
        return if id == FLOWS_SCOPE_ID {
            rs(FLOWS_RS)
        } else {
            rs(id)
        };
    }
    None
}

/// A dependency a client declared for one of its scopes (Globus Auth's `dependent_scopes` entry), with the
/// dependency's scope string resolved when it was declared.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScopeDependency {
    pub scope_id: Uuid,
    pub scope_string: String,
    pub optional: bool,
    pub requires_refresh_token: bool,
}

/// The id of a scope no client registered (a built-in, endpoint or collection scope): derived from its
/// string, so it is the same on every installation and needs no table.
pub fn builtin_scope_id(scope: &str) -> Uuid {
    Uuid::new_v5(&Uuid::NAMESPACE_URL, scope.as_bytes())
}

/// The scope string of a client's scope: `https://auth.globus.org/scopes/<client id>/<suffix>`.
pub fn client_scope(client_id: Uuid, suffix: &str) -> String {
    format!("https://auth.globus.org/scopes/{client_id}/{suffix}")
}

/// Globus's rule for a scope suffix: lowercase letters, digits and underscores.
pub fn valid_scope_suffix(suffix: &str) -> bool {
    !suffix.is_empty()
        && suffix.len() <= 100
        && suffix
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

/// The collection whose data a `data_access` or `https` scope opens.
pub fn collection_of(scope: &str) -> Option<Uuid> {
    let rest = scope.strip_prefix("https://auth.globus.org/scopes/")?;
    let (id, name) = rest.split_once('/')?;
    matches!(name, "data_access" | "https")
        .then(|| Uuid::try_parse(id).ok())
        .flatten()
}

/// Built-in scopes declare no dependencies; instead fixed rules say what they may depend on: Transfer acts at
/// any collection (`transfer:all[*…/C/data_access]`, as globus-cli asks), Globus Timers through Transfer, and
/// an endpoint's manager reaches a mapped collection's data to create guest collections on it
/// (`…:manage_collections[…/C/data_access]`, as the SDK's guest-collection example asks).
pub fn builtin_dependency(parent: &str, child: &str) -> bool {
    match parent {
        TRANSFER_ALL => collection_of(child).is_some(),
        TIMER => child == TRANSFER_ALL,
        p if is_manage_collections(p) => {
            child.ends_with("/data_access") && collection_of(child).is_some()
        }
        _ => false,
    }
}

fn is_manage_collections(scope: &str) -> bool {
    scope
        .strip_prefix("urn:globus:auth:scope:")
        .and_then(|r| r.strip_suffix(":manage_collections"))
        .is_some_and(is_uuid)
}

/// The scope string that grants management of a GCS endpoint.
pub fn manage_collections_scope(endpoint_id: Uuid) -> String {
    format!("urn:globus:auth:scope:{endpoint_id}:manage_collections")
}

/// The scope string that grants data access to a collection (`data_access` or `https`).
pub fn collection_scope(collection_id: Uuid, name: &str) -> String {
    format!("https://auth.globus.org/scopes/{collection_id}/{name}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_dependent_scopes() {
        let s = "openid https://auth.globus.org/scopes/524230d7-ea86-4a52-8312-86065a9e0417/timer[urn:globus:auth:scope:transfer.api.globus.org:all[*https://auth.globus.org/scopes/11111111-2222-3333-4444-555555555555/data_access]] email";
        let l = Scope::parse_list(s).unwrap();
        assert_eq!(l.len(), 3);
        assert_eq!(l[1].dependencies[0].name, TRANSFER_ALL);
        assert!(l[1].dependencies[0].dependencies[0].optional);
        let round: Vec<String> = l.iter().map(|s| s.to_string()).collect();
        assert_eq!(round.join(" "), s);
    }

    #[test]
    fn builtin_dependency_rules() {
        let c = "https://auth.globus.org/scopes/11111111-2222-3333-4444-555555555555";
        assert!(builtin_dependency(
            TRANSFER_ALL,
            &format!("{c}/data_access")
        ));
        assert!(builtin_dependency(TRANSFER_ALL, &format!("{c}/https")));
        assert!(!builtin_dependency(TRANSFER_ALL, &format!("{c}/all")));
        assert!(!builtin_dependency(TRANSFER_ALL, GROUPS_ALL));
        assert!(builtin_dependency(TIMER, TRANSFER_ALL));
        let manage =
            "urn:globus:auth:scope:0f0e0d0c-0b0a-0908-0706-050403020100:manage_collections";
        assert!(builtin_dependency(manage, &format!("{c}/data_access")));
        assert!(!builtin_dependency(manage, &format!("{c}/https")));
        assert!(!builtin_dependency(manage, TRANSFER_ALL));
        assert!(!builtin_dependency(GROUPS_ALL, TRANSFER_ALL));
        assert!(!builtin_dependency("openid", TRANSFER_ALL));
        assert_eq!(
            builtin_scope_id(TRANSFER_ALL),
            builtin_scope_id(TRANSFER_ALL)
        );
        assert_ne!(builtin_scope_id(TRANSFER_ALL), builtin_scope_id(GROUPS_ALL));
        assert!(valid_scope_suffix("manage_2"));
        assert!(!valid_scope_suffix("Manage"));
        assert!(!valid_scope_suffix("a/b"));
        assert!(!valid_scope_suffix(""));
    }

    #[test]
    fn rejects_malformed() {
        assert!(Scope::parse_list("a[b").is_err());
        assert!(Scope::parse_list("a]").is_err());
        assert!(Scope::parse_list("*").is_err());
        assert_eq!(Scope::parse_list("  ").unwrap(), vec![]);
    }

    #[test]
    fn resource_servers() {
        let rs = |s: &str| resource_server_of(s).map(|r| r.0);
        assert_eq!(rs("openid").as_deref(), Some(AUTH_RS));
        assert_eq!(rs(VIEW_IDENTITY_SET).as_deref(), Some(AUTH_RS));
        assert_eq!(rs(TRANSFER_ALL).as_deref(), Some(TRANSFER_RS));
        assert_eq!(rs(GROUPS_ALL).as_deref(), Some(GROUPS_RS));
        assert_eq!(
            rs("https://auth.globus.org/scopes/eec9b274-0c81-4334-bdc2-54e90e689b9a/all")
                .as_deref(),
            Some(FLOWS_RS)
        );
        let id = "0f0e0d0c-0b0a-0908-0706-050403020100";
        assert_eq!(
            rs(&manage_collections_scope(id.parse().unwrap())).as_deref(),
            Some(id)
        );
        assert_eq!(
            rs(&collection_scope(id.parse().unwrap(), "https")).as_deref(),
            Some(id)
        );
        assert_eq!(
            rs("urn:globus:auth:scope:transfer.api.globus.org:nope"),
            None
        );
        assert_eq!(
            rs("urn:globus:auth:scope:not-a-uuid:manage_collections"),
            None
        );
        assert_eq!(rs("https://auth.globus.org/scopes/x/all"), None);
        assert_eq!(rs("admin"), None);
    }
}
