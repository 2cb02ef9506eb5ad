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
}

impl AclPrincipal {
    pub fn type_str(&self) -> &'static str {
        match self {
            AclPrincipal::Identity(_) => "identity",
            AclPrincipal::Group(_) => "group",
            AclPrincipal::AllAuthenticatedUsers => "all_authenticated_users",
            AclPrincipal::Anonymous => "anonymous",
        }
    }
    /// The principal id as the wire shows it: a UUID, or `""` for the two collective principals.
    pub fn id_str(&self) -> String {
        match self {
            AclPrincipal::Identity(id) | AclPrincipal::Group(id) => id.to_string(),
            _ => String::new(),
        }
    }
    pub fn from_parts(kind: &str, id: &str) -> Option<Self> {
        match kind {
            "identity" => Uuid::parse_str(id).ok().map(AclPrincipal::Identity),
            "group" => Uuid::parse_str(id).ok().map(AclPrincipal::Group),
            "all_authenticated_users" => Some(AclPrincipal::AllAuthenticatedUsers),
            "anonymous" => Some(AclPrincipal::Anonymous),
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
    pub write: bool,
    pub expires_at: Option<Timestamp>,
    pub created: Timestamp,
    pub notify_email: Option<String>,
    pub notify_message: Option<String>,
}

impl AclRule {
    pub fn is_active(&self, now: Timestamp) -> bool {
        self.expires_at.is_none_or(|e| e > now)
    }
}
