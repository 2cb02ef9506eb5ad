//! Identities from upstream providers, linked identity sets, and sign-ins waiting for a provider's answer.

use async_trait::async_trait;
use ferry_core::Identity;
use uuid::Uuid;

use crate::Result;

/// What a sign-in through a provider found or made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedIn {
    pub identity: Identity,
    /// The first sign-in of this subject: the identity was made now.
    pub created: bool,
}

#[async_trait]
pub trait FederationStore: Send + Sync {
    /// The identity of `subject` at `provider`: found (its name, e-mail and organization refreshed from
    /// `fresh`), or made from `fresh` on the first sign-in. One step, so two first sign-ins at once make one
    /// identity. A username taken by another identity is `Conflict`, and nothing is made.
    async fn sign_in_external(
        &self,
        provider: Uuid,
        subject: &str,
        fresh: &Identity,
    ) -> Result<SignedIn>;
    /// The subject an identity stands for at its provider, if it came from one.
    async fn external_subject(&self, identity: Uuid) -> Result<Option<(Uuid, String)>>;

    /// The identities linked with `identity`, its set's primary first, then by username; just the identity
    /// itself when it is linked with none (empty when it does not exist).
    async fn identity_set(&self, identity: Uuid) -> Result<Vec<Identity>>;
    /// Links `other` (and any identities already linked with it) into `identity`'s set, whose primary stays.
    async fn link_identity(&self, identity: Uuid, other: Uuid, now: i64) -> Result<()>;
    /// Takes `identity` out of its set; when it was the primary, the longest-linked member becomes primary.
    async fn unlink_identity(&self, identity: Uuid) -> Result<()>;

    /// Keeps a sign-in sent to a provider until it comes back (or `expires_at`), unless `limit` of them are
    /// already waiting at `now` (false: nothing kept). Expired ones are dropped first.
    async fn insert_upstream_login(
        &self,
        state_hash: &str,
        provider: &str,
        document: &str,
        expires_at: i64,
        now: i64,
        limit: i64,
    ) -> Result<bool>;
    /// Takes a waiting sign-in (at most once) if it has not expired; returns its provider and document.
    async fn take_upstream_login(
        &self,
        state_hash: &str,
        now: i64,
    ) -> Result<Option<(String, String)>>;
}
