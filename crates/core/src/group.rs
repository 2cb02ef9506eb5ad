//! Groups: sets of identities with roles, usable as principals in ACLs and roles.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::time::Timestamp;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Group {
    pub id: Uuid,
    pub name: String,
    pub description: String,
    pub parent_id: Option<Uuid>,
    /// `private` or `authenticated`: who may see that the group exists.
    pub visibility: String,
    /// `members` or `managers`: who may see the member list.
    pub members_visibility: String,
    pub created: Timestamp,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum GroupRole {
    Member,
    Manager,
    Admin,
}

impl GroupRole {
    pub fn as_str(self) -> &'static str {
        match self {
            GroupRole::Member => "member",
            GroupRole::Manager => "manager",
            GroupRole::Admin => "admin",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "member" => Some(GroupRole::Member),
            "manager" => Some(GroupRole::Manager),
            "admin" => Some(GroupRole::Admin),
            _ => None,
        }
    }
    /// Managers and admins manage membership; only admins change the group itself or grant admin.
    pub fn may_manage_members(self) -> bool {
        self >= GroupRole::Manager
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MembershipStatus {
    Active,
    Invited,
    /// The invitee turned the invitation down.
    Declined,
    Left,
    Removed,
}

impl MembershipStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            MembershipStatus::Active => "active",
            MembershipStatus::Invited => "invited",
            MembershipStatus::Declined => "declined",
            MembershipStatus::Left => "left",
            MembershipStatus::Removed => "removed",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "active" => Some(MembershipStatus::Active),
            "invited" => Some(MembershipStatus::Invited),
            "declined" => Some(MembershipStatus::Declined),
            "left" => Some(MembershipStatus::Left),
            "removed" => Some(MembershipStatus::Removed),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Membership {
    pub group_id: Uuid,
    pub identity_id: Uuid,
    pub username: String,
    pub role: GroupRole,
    pub status: MembershipStatus,
    pub updated: Timestamp,
}
