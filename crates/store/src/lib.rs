//! Persistence for Ferry. Callers hold an `Arc<dyn Store>` and never see SQL; each backend (SQLite now,
//! PostgreSQL next) implements the trait with its own migrations and passes the same conformance tests.

pub mod conformance;
mod sqlite;

use async_trait::async_trait;
use ferry_core::{Client, Group, Identity, Membership};
use uuid::Uuid;

pub use sqlite::SqliteStore;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("not found")]
    NotFound,
    /// A uniqueness rule was violated; the text names what already exists.
    #[error("already exists: {0}")]
    Conflict(String),
    #[error("database error: {0}")]
    Backend(String),
}

pub type Result<T> = std::result::Result<T, StoreError>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecretKind {
    Code,
    Access,
    Refresh,
    Session,
}

impl SecretKind {
    pub fn as_str(self) -> &'static str {
        match self {
            SecretKind::Code => "code",
            SecretKind::Access => "access",
            SecretKind::Refresh => "refresh",
            SecretKind::Session => "session",
        }
    }
    fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "code" => SecretKind::Code,
            "access" => SecretKind::Access,
            "refresh" => SecretKind::Refresh,
            "session" => SecretKind::Session,
            _ => return None,
        })
    }
}

/// An issued secret (authorisation code, token or browser session), keyed by its hash; the plaintext is never stored.
#[derive(Debug, Clone, PartialEq)]
pub struct SecretRecord {
    pub hash: String,
    pub kind: SecretKind,
    /// The family of secrets one authorisation produced.
    pub grant_id: Uuid,
    pub client_id: Option<Uuid>,
    pub identity_id: Uuid,
    pub resource_server: Option<String>,
    /// Space-separated scope strings.
    pub scopes: String,
    /// Kind-specific data (PKCE challenge and redirect URI of a code, a refresh family's start, …).
    pub extra: serde_json::Value,
    pub issued_at: i64,
    pub expires_at: i64,
    pub used_at: Option<i64>,
    pub revoked_at: Option<i64>,
}

impl SecretRecord {
    /// Not revoked, not expired, and for the single-use kinds (codes, refresh tokens) not used yet.
    pub fn is_live(&self, now: i64) -> bool {
        let used_up =
            matches!(self.kind, SecretKind::Code | SecretKind::Refresh) && self.used_at.is_some();
        self.revoked_at.is_none() && self.expires_at > now && !used_up
    }
}

/// A scope an identity consented to let a client use, possibly under a parent scope (dependent scopes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsentRecord {
    pub id: Uuid,
    pub identity_id: Uuid,
    pub client_id: Uuid,
    pub scope: String,
    pub parent_id: Option<Uuid>,
    pub created: i64,
    pub last_used: i64,
}

#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Returns the stored value of `key`, storing `value` first if the key was absent (first writer wins).
    async fn meta_get_or_insert(&self, key: &str, value: &str) -> Result<String>;
    async fn meta_get(&self, key: &str) -> Result<Option<String>>;
    async fn meta_set(&self, key: &str, value: &str) -> Result<()>;

    async fn create_identity(&self, identity: &Identity, password_hash: Option<&str>)
    -> Result<()>;
    async fn get_identity(&self, id: Uuid) -> Result<Option<Identity>>;
    async fn find_identity(&self, username: &str) -> Result<Option<Identity>>;
    async fn list_identities(&self) -> Result<Vec<Identity>>;
    /// Deletes an identity with everything it holds (client registration, tokens, memberships).
    async fn delete_identity(&self, id: Uuid) -> Result<()>;
    async fn password_hash(&self, id: Uuid) -> Result<Option<String>>;

    /// Creates a client and its identity together.
    async fn create_client(
        &self,
        identity: &Identity,
        client: &Client,
        secret_hash: Option<&str>,
    ) -> Result<()>;
    async fn get_client(&self, id: Uuid) -> Result<Option<Client>>;
    async fn list_clients(&self) -> Result<Vec<Client>>;
    async fn client_secret_hash(&self, id: Uuid) -> Result<Option<String>>;
    async fn set_client_secret_hash(&self, id: Uuid, hash: &str) -> Result<()>;

    async fn insert_secret(&self, secret: &SecretRecord) -> Result<()>;
    async fn get_secret(&self, hash: &str) -> Result<Option<SecretRecord>>;
    /// Marks a secret used, atomically. Returns the record and whether this call was the first use.
    async fn consume_secret(&self, hash: &str, now: i64) -> Result<Option<(SecretRecord, bool)>>;
    async fn revoke_secret(&self, hash: &str, now: i64) -> Result<()>;
    /// Revokes every secret of a grant.
    async fn revoke_grant(&self, grant_id: Uuid, now: i64) -> Result<()>;
    /// Revokes every secret a client holds or was issued (used when its credentials change or it is deleted).
    async fn revoke_client_secrets(&self, client_id: Uuid, now: i64) -> Result<()>;
    /// Deletes secrets that expired more than `grace` seconds ago; returns how many.
    async fn purge_expired(&self, now: i64, grace: i64) -> Result<u64>;

    async fn upsert_consent(&self, consent: &ConsentRecord) -> Result<Uuid>;
    async fn list_consents(&self, identity_id: Uuid) -> Result<Vec<ConsentRecord>>;

    async fn create_group(&self, group: &Group, owner: &Membership) -> Result<()>;
    async fn get_group(&self, id: Uuid) -> Result<Option<Group>>;
    async fn update_group(&self, group: &Group) -> Result<()>;
    async fn delete_group(&self, id: Uuid) -> Result<()>;
    /// Groups in which the identity has a membership row of any status.
    async fn groups_of(&self, identity_id: Uuid) -> Result<Vec<Group>>;
    async fn memberships(&self, group_id: Uuid) -> Result<Vec<Membership>>;
    async fn membership(&self, group_id: Uuid, identity_id: Uuid) -> Result<Option<Membership>>;
    async fn put_membership(&self, membership: &Membership) -> Result<()>;
    async fn delete_membership(&self, group_id: Uuid, identity_id: Uuid) -> Result<()>;
}
