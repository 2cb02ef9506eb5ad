//! Guest-collection permissions (ACL rules): who may read or write which folder of a guest collection.
//! Rules are additive; each covers its path and everything below it; an expired rule counts as absent.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::time::Timestamp;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AclPrincipal {
    Identity(Uuid),
    Group(Uuid),
    AllAuthenticatedUsers,
    Anonymous,
    /// An e-mail invitation not yet redeemed (the invitation's id): it grants nothing until someone redeems it,
    /// which rebinds the rule to their identity.
    Invitation(Uuid),
}

impl AclPrincipal {
    pub fn type_str(&self) -> &'static str {
        match self {
            AclPrincipal::Identity(_) => "identity",
            AclPrincipal::Group(_) => "group",
            AclPrincipal::AllAuthenticatedUsers => "all_authenticated_users",
            AclPrincipal::Anonymous => "anonymous",
            AclPrincipal::Invitation(_) => "invitation",
        }
    }
    /// The principal id as the wire shows it: a UUID, or `""` for the two collective principals.
    pub fn id_str(&self) -> String {
        match self {
            AclPrincipal::Identity(id) | AclPrincipal::Group(id) | AclPrincipal::Invitation(id) => {
                id.to_string()
            }
            _ => String::new(),
        }
    }
    pub fn from_parts(kind: &str, id: &str) -> Option<Self> {
        match kind {
            "identity" => Uuid::parse_str(id).ok().map(AclPrincipal::Identity),
            "group" => Uuid::parse_str(id).ok().map(AclPrincipal::Group),
            "all_authenticated_users" => Some(AclPrincipal::AllAuthenticatedUsers),
            "anonymous" => Some(AclPrincipal::Anonymous),
            "invitation" => Uuid::parse_str(id).ok().map(AclPrincipal::Invitation),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AclRule {
    pub id: Uuid,
    pub collection_id: Uuid,
    pub principal: AclPrincipal,
    /// Normalised, relative to the guest collection's root, without a trailing `/` (except `/`).
    pub path: String,
    /// The rule was given for a folder (its wire path ends in `/`), not a single file.
    pub folder: bool,
    pub write: bool,
    pub expires_at: Option<Timestamp>,
    pub created: Timestamp,
    pub notify_email: Option<String>,
    pub notify_message: Option<String>,
}

impl AclRule {
    /// The path as the Transfer API shows it: folders end in `/`.
    pub fn wire_path(&self) -> String {
        if self.folder && self.path != "/" {
            format!("{}/", self.path)
        } else {
            self.path.clone()
        }
    }
    pub fn is_active(&self, now: Timestamp) -> bool {
        self.expires_at.is_none_or(|e| e > now)
    }
}
