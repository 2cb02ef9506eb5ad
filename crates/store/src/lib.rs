//! Persistence for Ferry. Callers hold an `Arc<dyn Store>` and never see SQL; each backend (SQLite now,
//! PostgreSQL next) implements the trait with its own migrations and passes the same conformance tests.

pub mod conformance;
pub mod federation;
pub mod sites;
mod sqlite;
mod sqlite_auth;
mod sqlite_federation;
mod sqlite_sites;
mod sqlite_tasks;
mod sqlite_uploads;
pub mod tasks;
pub mod uploads;

use async_trait::async_trait;
use ferry_core::acl::AclRule;
use ferry_core::auth_policy::AuthPolicy;
use ferry_core::endpoint::{
    CollectionDoc, CollectionType, RoleDoc, SharingPolicyDoc, StorageGatewayDoc, UserCredentialDoc,
};
use ferry_core::{Client, Group, Identity, Membership};
use uuid::Uuid;

pub use federation::{FederationStore, SignedIn};
pub use sites::{Site, SiteCollection, SiteStore};
pub use sqlite::SqliteStore;
pub use tasks::TaskStore;
pub use uploads::{UploadRecord, UploadStore};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("not found")]
    NotFound,
    /// A uniqueness rule was violated; the text names what already exists.
    #[error("already exists: {0}")]
    Conflict(String),
    #[error("database error: {0}")]
    Backend(String),
    /// A worker's write for a task whose lease it no longer holds (it expired, and perhaps another worker
    /// claimed the task): nothing was written.
    #[error("the task's lease is no longer held by this worker")]
    LeaseLost,
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

/// A grant: the family of secrets one authorisation produced (a login's code and its tokens, a
/// client-credentials request, a dependent-token request). Revoking it stops every secret of the family, and
/// later inserts for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrantRecord {
    pub id: Uuid,
    pub identity_id: Uuid,
    pub client_id: Uuid,
    /// The top-level scopes it was made for, space-separated.
    pub scopes: String,
    pub created: i64,
    pub revoked_at: Option<i64>,
}

/// What [`Store::issue_secrets`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IssueOutcome {
    /// The secrets were inserted (and the secret to consume, if any, consumed).
    Issued,
    /// The secret to consume had been used already: reuse of a rotated refresh token or a replayed code. Its
    /// grant is now revoked.
    Reused,
    /// The secret to consume is unknown, expired, revoked, or neither a refresh token nor a code.
    Invalid,
    /// The grant was revoked; nothing was inserted.
    GrantRevoked,
}

/// A scope a client (a resource server) registered, with the scopes it depends on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScopeRecord {
    pub id: Uuid,
    pub client_id: Uuid,
    pub scope_string: String,
    pub name: String,
    pub description: String,
    pub advertised: bool,
    pub allows_refresh_token: bool,
    pub required_domains: Vec<String>,
    pub dependent_scopes: Vec<ferry_core::scope::ScopeDependency>,
    pub created: i64,
}

/// Which collections to list; every field that is set must hold.
#[derive(Debug, Clone, Default)]
pub struct CollectionFilter {
    pub collection_type: Option<CollectionType>,
    pub storage_gateway_id: Option<Uuid>,
    pub mapped_collection_id: Option<Uuid>,
    pub identity_id: Option<Uuid>,
}

/// One entry of the audit log: a management change or a data access decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditRecord {
    /// Assigned by the store; ascending.
    pub seq: i64,
    pub time: i64,
    pub identity_id: Option<Uuid>,
    pub action: String,
    pub collection_id: Option<Uuid>,
    pub path: Option<String>,
    pub allowed: bool,
    pub detail: String,
}

#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    pub identity_id: Option<Uuid>,
    pub collection_id: Option<Uuid>,
    pub path_prefix: Option<String>,
    pub since: Option<i64>,
    pub until: Option<i64>,
    pub allowed: Option<bool>,
    /// One action (`role.create`), or a family of them without the dot (`role`: `role.create`, `role.delete`).
    pub action: Option<String>,
    /// Only records after this one (for reading the log in pages).
    pub after_seq: Option<i64>,
    /// Only records before this one (for reading the log in pages, newest first).
    pub before_seq: Option<i64>,
    /// The newest first (with `limit`: the latest records).
    pub newest_first: bool,
    pub limit: Option<i64>,
}

/// An e-mail invitation: the permission `rule_id` (principal `invitation`) waits for whoever redeems the code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invitation {
    pub id: Uuid,
    pub collection_id: Uuid,
    pub rule_id: Uuid,
    pub email: String,
    /// BLAKE3 of the code (hex); the code itself is only in the e-mail.
    pub code_hash: String,
    pub invited_by: Uuid,
    pub created: i64,
    pub expires_at: i64,
    pub redeemed_by: Option<Uuid>,
    pub redeemed_at: Option<i64>,
}

/// What is kept of an invitation whose row was deleted (its permission withdrawn, its collection deleted, or
/// its rule merged into one the redeemer already held): enough to tell a later visitor why the code no longer
/// works, instead of "no such invitation".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemovedInvitation {
    pub id: Uuid,
    pub collection_id: Uuid,
    pub invited_by: Uuid,
    pub expires_at: i64,
    /// Set when it had been redeemed before it went.
    pub redeemed_at: Option<i64>,
}

/// A person's bookmark: a named place in a collection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bookmark {
    pub id: Uuid,
    pub owner: Uuid,
    pub name: String,
    pub collection_id: Uuid,
    pub path: String,
    pub pinned: bool,
    pub created: i64,
}

#[async_trait]
pub trait Store:
    TaskStore + SiteStore + FederationStore + UploadStore + Send + Sync + 'static
{
    /// Answers when the database does: a trivial read, for the readiness check. The caller bounds the wait.
    async fn ping(&self) -> Result<()>;

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
    /// Replaces a person's password hash and, in the same transaction, revokes every secret issued to them
    /// (sessions, codes, access and refresh tokens) except the session whose hash is `keep_session`: a new
    /// password ends every other way in. `NotFound` when no person has this id.
    async fn set_password_hash(
        &self,
        identity_id: Uuid,
        hash: &str,
        keep_session: Option<&str>,
        now: i64,
    ) -> Result<()>;

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
    /// Deletes secrets that expired more than `grace` seconds ago (and grants older than that with no secret
    /// left); returns how many secrets.
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
    /// Ids of the groups in which the identity is an active member: what group principals in roles and
    /// permissions are matched against, read at every check so that membership changes count at once.
    async fn active_group_ids(&self, identity_id: Uuid) -> Result<Vec<Uuid>>;

    async fn create_gateway(&self, doc: &StorageGatewayDoc) -> Result<()>;
    async fn get_gateway(&self, id: Uuid) -> Result<Option<StorageGatewayDoc>>;
    async fn list_gateways(&self) -> Result<Vec<StorageGatewayDoc>>;
    async fn update_gateway(&self, doc: &StorageGatewayDoc) -> Result<()>;
    /// Refused with `Conflict` while collections use the gateway.
    async fn delete_gateway(&self, id: Uuid) -> Result<()>;

    async fn create_collection(&self, doc: &CollectionDoc) -> Result<()>;
    async fn get_collection(&self, id: Uuid) -> Result<Option<CollectionDoc>>;
    async fn list_collections(&self, filter: &CollectionFilter) -> Result<Vec<CollectionDoc>>;
    async fn update_collection(&self, doc: &CollectionDoc) -> Result<()>;
    /// Deletes a collection with its guest collections, roles, sharing policies and ACL rules.
    async fn delete_collection(&self, id: Uuid) -> Result<()>;

    /// `Conflict` if the same principal already has the same role there.
    async fn create_role(&self, role: &RoleDoc) -> Result<()>;
    async fn get_role(&self, id: Uuid) -> Result<Option<RoleDoc>>;
    /// Roles on one collection, or on the endpoint when `collection` is None.
    async fn list_roles(&self, collection: Option<Uuid>) -> Result<Vec<RoleDoc>>;
    async fn delete_role(&self, id: Uuid) -> Result<()>;

    async fn create_sharing_policy(&self, doc: &SharingPolicyDoc) -> Result<()>;
    async fn get_sharing_policy(&self, id: Uuid) -> Result<Option<SharingPolicyDoc>>;
    async fn list_sharing_policies(&self, collection: Uuid) -> Result<Vec<SharingPolicyDoc>>;
    async fn delete_sharing_policy(&self, id: Uuid) -> Result<()>;

    async fn create_user_credential(&self, doc: &UserCredentialDoc) -> Result<()>;
    async fn get_user_credential(&self, id: Uuid) -> Result<Option<UserCredentialDoc>>;
    /// Credentials of one identity (all when None), optionally on one gateway.
    async fn list_user_credentials(
        &self,
        identity: Option<Uuid>,
        gateway: Option<Uuid>,
    ) -> Result<Vec<UserCredentialDoc>>;
    async fn update_user_credential(&self, doc: &UserCredentialDoc) -> Result<()>;
    async fn delete_user_credential(&self, id: Uuid) -> Result<()>;

    /// `Conflict` if a rule for the same principal and path exists.
    async fn create_acl_rule(&self, rule: &AclRule) -> Result<()>;
    async fn list_acl_rules(&self, collection: Uuid) -> Result<Vec<AclRule>>;
    async fn delete_acl_rule(&self, id: Uuid) -> Result<()>;
    async fn get_acl_rule(&self, id: Uuid) -> Result<Option<AclRule>>;
    /// Replaces the rule with this id (principal, path, permissions, expiry, notification fields).
    async fn update_acl_rule(&self, rule: &AclRule) -> Result<()>;

    /// Stores a pending permission and its invitation together.
    async fn create_invitation(&self, invitation: &Invitation, rule: &AclRule) -> Result<()>;
    async fn find_invitation(&self, code_hash: &str) -> Result<Option<Invitation>>;
    async fn list_invitations(&self, collection: Uuid) -> Result<Vec<Invitation>>;
    /// Marks the invitation redeemed by `identity` if it is neither redeemed nor expired at `now`; false
    /// otherwise (a code works once, even when two redeem it at the same moment).
    async fn claim_invitation(&self, id: Uuid, identity: Uuid, now: i64) -> Result<bool>;
    /// An invitation deleted with its permission or collection, by its code's hash. Every deletion of an
    /// invitation, however it happens (cascades included), is kept.
    async fn find_removed_invitation(&self, code_hash: &str) -> Result<Option<RemovedInvitation>>;

    async fn create_bookmark(&self, bookmark: &Bookmark) -> Result<()>;
    async fn get_bookmark(&self, id: Uuid) -> Result<Option<Bookmark>>;
    async fn list_bookmarks(&self, owner: Uuid) -> Result<Vec<Bookmark>>;
    async fn update_bookmark(&self, bookmark: &Bookmark) -> Result<()>;
    async fn delete_bookmark(&self, id: Uuid) -> Result<()>;

    /// Appends records in one transaction (the audit writer batches them); `seq` is assigned by the store.
    /// Authentication policies with the identity that owns each.
    async fn create_auth_policy(&self, policy: &AuthPolicy, owner: Uuid) -> Result<()>;
    async fn get_auth_policy(&self, id: Uuid) -> Result<Option<(AuthPolicy, Uuid)>>;
    async fn list_auth_policies(&self) -> Result<Vec<(AuthPolicy, Uuid)>>;
    async fn update_auth_policy(&self, policy: &AuthPolicy) -> Result<()>;
    async fn delete_auth_policy(&self, id: Uuid) -> Result<()>;

    async fn append_audit(&self, records: &[AuditRecord]) -> Result<()>;
    async fn query_audit(&self, filter: &AuditFilter) -> Result<Vec<AuditRecord>>;

    // ---- grants, consents and the scope registry (authorisation server) ----

    /// In one transaction: consumes `consume` when given (a refresh token or code not used, revoked or expired at
    /// `now`; an already used one revokes its grant instead), records the grant if new, refuses if the grant
    /// is revoked, and inserts `secrets`. Rotation, reuse detection and revocation cannot interleave, so no
    /// token of a revoked family survives.
    async fn issue_secrets(
        &self,
        grant: &GrantRecord,
        consume: Option<&str>,
        secrets: &[SecretRecord],
        now: i64,
    ) -> Result<IssueOutcome>;
    /// Grants of one identity through one client, newest first.
    async fn list_grants(&self, identity_id: Uuid, client_id: Uuid) -> Result<Vec<GrantRecord>>;
    async fn get_consent(&self, id: Uuid) -> Result<Option<ConsentRecord>>;
    /// Deletes a consent with the consents under it.
    async fn delete_consent(&self, id: Uuid) -> Result<()>;

    /// `Conflict` if the scope string exists.
    async fn create_scope(&self, scope: &ScopeRecord) -> Result<()>;
    async fn get_scope(&self, id: Uuid) -> Result<Option<ScopeRecord>>;
    async fn find_scope(&self, scope_string: &str) -> Result<Option<ScopeRecord>>;
    /// The scopes of one client, or of every client.
    async fn list_scopes(&self, client_id: Option<Uuid>) -> Result<Vec<ScopeRecord>>;
    async fn update_scope(&self, scope: &ScopeRecord) -> Result<()>;
    async fn delete_scope(&self, id: Uuid) -> Result<()>;

    /// A number that moves forward with every change, by any process, to what access policies are compiled
    /// from (gateways, collections, roles, sharing and authentication policies, credentials, permissions,
    /// identities, clients, groups, memberships): compiled policies built at another value are out of date.
    async fn policy_generation(&self) -> Result<i64>;
    /// Stores a permission (and, for an e-mail invitation, the invitation) only if its collection holds fewer
    /// than `max` rules, counted and inserted in one step; false (nothing stored) when it is full.
    async fn create_acl_rule_within(
        &self,
        rule: &AclRule,
        invitation: Option<&Invitation>,
        max: usize,
    ) -> Result<bool>;
}
