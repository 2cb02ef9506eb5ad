//! Globus Groups documents (`/v2/groups`).

use serde::{Deserialize, Serialize};
use uuid::Uuid;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MembershipDoc {
    pub group_id: Uuid,
    pub identity_id: Uuid,
    pub username: String,
    pub role: String,
    pub status: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GroupPoliciesDoc {
    pub group_visibility: String,
    pub group_members_visibility: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GroupDoc {
    pub id: Uuid,
    pub name: String,
    pub description: String,
    pub parent_id: Option<Uuid>,
    pub group_type: String,
    pub enforce_session: bool,
    pub session_limit: i64,
    pub session_timeouts: serde_json::Map<String, serde_json::Value>,
    pub my_memberships: Vec<MembershipDoc>,
    pub policies: GroupPoliciesDoc,
    pub subscription_id: Option<Uuid>,
    pub subscription_info: Option<serde_json::Value>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub memberships: Option<Vec<MembershipDoc>>,
}

/// `POST /v2/groups` and `PUT /v2/groups/{id}` bodies.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroupCreate {
    pub name: String,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub parent_id: Option<Uuid>,
    #[serde(default)]
    pub policies: Option<GroupPoliciesDoc>,
}

/// One item of a batch membership action: `{"identity_id": ..., "role": ...}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MembershipAction {
    pub identity_id: Uuid,
    #[serde(default)]
    pub role: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MembershipActionError {
    pub identity_id: Uuid,
    pub code: String,
    pub detail: String,
}
