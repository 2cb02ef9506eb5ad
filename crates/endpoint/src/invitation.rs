//! What an invitation link shows before anyone signs in: what is shared, by whom, until when, or why the code
//! no longer works. Read-only: looking changes nothing, and redeeming stays a separate, deliberate step.

use ferry_core::acl::AclPrincipal;
use ferry_core::time::rfc3339;
use uuid::Uuid;

use crate::permissions::hash_code;
use crate::{Endpoint, EndpointError, Result};

/// Who sent an invitation, as the page names them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inviter {
    pub id: Uuid,
    pub name: String,
    pub username: String,
}

/// An invitation that can still be accepted, as its link describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvitationPreview {
    pub collection_id: Uuid,
    pub collection_display_name: String,
    /// The shared path, as the Transfer API shows it (a folder ends with '/').
    pub path: String,
    /// Read-write (true) or read-only.
    pub write: bool,
    /// None when the inviting identity no longer exists.
    pub invited_by: Option<Inviter>,
    /// The address the invitation was sent to.
    pub sent_to: String,
    /// Until when it can be accepted (unix seconds).
    pub expires_at: i64,
    /// When the access it grants ends, if it does.
    pub access_expires_at: Option<i64>,
    /// The inviter's note, if they wrote one.
    pub message: Option<String>,
}

const USED: &str = "This invitation has already been accepted: a code works once. If you accepted it, the \
                    shared folder is in your collections; otherwise ask the person who invited you for a new one.";
const WITHDRAWN: &str = "This invitation was withdrawn by the people who share the folder; nothing can be accepted with it.";

impl Endpoint {
    /// Describes the invitation whose code is `code`. `NotFound` ("no such invitation", nothing more) for a
    /// code that never was one; `Gone` for one used, expired or withdrawn, saying which. The code is a secret:
    /// it is looked up by its hash, as redeeming does, so the database compares hashes, never the code.
    pub async fn invitation_preview(&self, code: &str) -> Result<InvitationPreview> {
        let no_such = || EndpointError::NotFound("no such invitation".into());
        // Real codes are 64 hex digits; anything much longer is not one, and is not hashed at length.
        if code.trim().is_empty() || code.len() > 256 {
            return Err(no_such());
        }
        let hash = hash_code(code);
        let Some(inv) = self.store.find_invitation(&hash).await? else {
            return match self.store.find_removed_invitation(&hash).await? {
                Some(r) if r.redeemed_at.is_some() => Err(EndpointError::Gone(USED.into())),
                Some(_) => Err(EndpointError::Gone(WITHDRAWN.into())),
                None => Err(no_such()),
            };
        };
        if inv.redeemed_by.is_some() {
            return Err(EndpointError::Gone(USED.into()));
        }
        let now = self.now();
        if inv.expires_at <= now {
            return Err(EndpointError::Gone(format!(
                "This invitation expired on {}; ask the person who invited you for a new one.",
                rfc3339(inv.expires_at)
            )));
        }
        // The invitation goes with its rule and collection; either missing now is a withdrawal in progress.
        let rule = self
            .store
            .get_acl_rule(inv.rule_id)
            .await?
            .filter(|r| r.principal == AclPrincipal::Invitation(inv.id))
            .ok_or_else(|| EndpointError::Gone(WITHDRAWN.into()))?;
        if rule.expires_at.is_some_and(|t| t <= now) {
            return Err(EndpointError::Gone(format!(
                "The access this invitation offered ended on {}; ask the person who invited you for a new one.",
                rfc3339(rule.expires_at.unwrap_or_default())
            )));
        }
        let collection = self
            .store
            .get_collection(inv.collection_id)
            .await?
            .ok_or_else(|| EndpointError::Gone(WITHDRAWN.into()))?;
        let invited_by = self.identity(inv.invited_by).await?.map(|i| Inviter {
            id: i.id,
            name: i.name,
            username: i.username,
        });
        Ok(InvitationPreview {
            collection_id: collection.id,
            collection_display_name: collection.display_name,
            path: rule.wire_path(),
            write: rule.write,
            invited_by,
            sent_to: inv.email,
            expires_at: inv.expires_at,
            access_expires_at: rule.expires_at,
            message: rule.notify_message,
        })
    }
}
