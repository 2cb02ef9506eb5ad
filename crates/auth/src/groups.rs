//! Groups: create, read, update, delete, and batch membership changes, with the member/manager/admin roles.
//! A group that a caller may not see is reported as not found, so group ids do not leak.
//!
//! Invitations: a manager invites an identity (status `invited`); only the invitee accepts (`active`) or
//! declines (`declined`). Only active memberships count anywhere else (roles, ACLs, member lists' rights).

use ferry_core::{Group, GroupRole, Identity, Membership, MembershipStatus};
use ferry_proto::groups::{
    GroupCreate, GroupDoc, GroupPoliciesDoc, MembershipAction, MembershipActionError, MembershipDoc,
};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::service::Auth;
use crate::{AuthError, Result};

const VISIBILITIES: [&str; 2] = ["private", "authenticated"];
const MEMBER_VISIBILITIES: [&str; 2] = ["members", "managers"];

fn membership_doc(m: &Membership) -> MembershipDoc {
    MembershipDoc {
        group_id: m.group_id,
        identity_id: m.identity_id,
        username: m.username.clone(),
        role: m.role.as_str().into(),
        status: m.status.as_str().into(),
    }
}

fn check_policies(p: &GroupPoliciesDoc) -> Result<()> {
    if !VISIBILITIES.contains(&p.group_visibility.as_str()) {
        return Err(AuthError::InvalidRequest(format!(
            "group_visibility must be one of {VISIBILITIES:?}, not '{}'",
            p.group_visibility
        )));
    }
    if !MEMBER_VISIBILITIES.contains(&p.group_members_visibility.as_str()) {
        return Err(AuthError::InvalidRequest(format!(
            "group_members_visibility must be one of {MEMBER_VISIBILITIES:?}, not '{}'",
            p.group_members_visibility
        )));
    }
    Ok(())
}

fn check_name(name: &str) -> Result<String> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 200 {
        return Err(AuthError::InvalidRequest(
            "a group name must have 1 to 200 characters".into(),
        ));
    }
    Ok(name.to_string())
}

/// One change to one membership, as the Groups API's batch (`POST /v2/groups/{id}`) names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemberAction {
    Add,
    Invite,
    Accept,
    Decline,
    ChangeRole,
    Remove,
    Leave,
}

impl MemberAction {
    const ALL: [MemberAction; 7] = [
        MemberAction::Add,
        MemberAction::Invite,
        MemberAction::Accept,
        MemberAction::Decline,
        MemberAction::ChangeRole,
        MemberAction::Remove,
        MemberAction::Leave,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            MemberAction::Add => "add",
            MemberAction::Invite => "invite",
            MemberAction::Accept => "accept",
            MemberAction::Decline => "decline",
            MemberAction::ChangeRole => "change_role",
            MemberAction::Remove => "remove",
            MemberAction::Leave => "leave",
        }
    }

    pub fn parse(name: &str) -> Result<Self> {
        Self::ALL
            .into_iter()
            .find(|a| a.as_str() == name)
            .ok_or_else(|| {
                let known: Vec<&str> = Self::ALL.iter().map(|a| a.as_str()).collect();
                AuthError::InvalidRequest(format!(
                    "membership action '{name}' is not supported; use one of {}",
                    known.join(", ")
                ))
            })
    }
}

/// What a caller may do to a group, from their membership in it.
struct Access {
    group: Group,
    mine: Option<Membership>,
}

impl Access {
    fn role(&self) -> Option<GroupRole> {
        self.mine
            .as_ref()
            .filter(|m| m.status == MembershipStatus::Active)
            .map(|m| m.role)
    }
    fn require(&self, at_least: GroupRole) -> Result<()> {
        match self.role() {
            Some(r) if r >= at_least => Ok(()),
            _ => Err(AuthError::Forbidden(format!(
                "this needs the {} role in the group",
                at_least.as_str()
            ))),
        }
    }
}

impl Auth {
    async fn group_access(&self, caller: &Identity, id: Uuid) -> Result<Access> {
        let not_found = || AuthError::NotFound(format!("no group {id}"));
        let group = self.store.get_group(id).await?.ok_or_else(not_found)?;
        let mine = self.store.membership(id, caller.id).await?;
        // a private group shows itself to its members and to those invited into it
        let inside = mine.as_ref().is_some_and(|m| {
            matches!(
                m.status,
                MembershipStatus::Active | MembershipStatus::Invited
            )
        });
        if !inside && group.visibility != "authenticated" {
            return Err(not_found());
        }
        Ok(Access { group, mine })
    }

    async fn group_doc(&self, a: &Access, with_members: bool) -> Result<GroupDoc> {
        let g = &a.group;
        let sees_members = match a.role() {
            Some(r) => r.may_manage_members() || g.members_visibility == "members",
            None => false,
        };
        let memberships = if with_members && sees_members {
            Some(
                self.store
                    .memberships(g.id)
                    .await?
                    .iter()
                    .map(membership_doc)
                    .collect(),
            )
        } else {
            None
        };
        Ok(GroupDoc {
            id: g.id,
            name: g.name.clone(),
            description: g.description.clone(),
            parent_id: g.parent_id,
            group_type: "regular".into(),
            enforce_session: false,
            session_limit: 28800,
            session_timeouts: Default::default(),
            my_memberships: a.mine.iter().map(membership_doc).collect(),
            policies: GroupPoliciesDoc {
                group_visibility: g.visibility.clone(),
                group_members_visibility: g.members_visibility.clone(),
            },
            subscription_id: None,
            subscription_info: None,
            memberships,
        })
    }

    pub async fn create_group(&self, caller: &Identity, req: GroupCreate) -> Result<GroupDoc> {
        let policies = req.policies.unwrap_or(GroupPoliciesDoc {
            group_visibility: "private".into(),
            group_members_visibility: "managers".into(),
        });
        check_policies(&policies)?;
        if let Some(parent) = req.parent_id {
            self.group_access(caller, parent)
                .await?
                .require(GroupRole::Admin)?;
        }
        let now = self.now();
        let group = Group {
            id: Uuid::new_v4(),
            name: check_name(&req.name)?,
            description: req.description.unwrap_or_default(),
            parent_id: req.parent_id,
            visibility: policies.group_visibility,
            members_visibility: policies.group_members_visibility,
            created: now,
        };
        let owner = Membership {
            group_id: group.id,
            identity_id: caller.id,
            username: caller.username.clone(),
            role: GroupRole::Admin,
            status: MembershipStatus::Active,
            updated: now,
        };
        self.store.create_group(&group, &owner).await?;
        self.group_doc(
            &Access {
                group,
                mine: Some(owner),
            },
            false,
        )
        .await
    }

    /// `GET /v2/groups/{id}`; `include=memberships` adds the member list where the caller may see it.
    pub async fn get_group(&self, caller: &Identity, id: Uuid, include: &str) -> Result<GroupDoc> {
        let a = self.group_access(caller, id).await?;
        let with_members = include.split(',').any(|i| i.trim() == "memberships");
        self.group_doc(&a, with_members).await
    }

    pub async fn update_group(
        &self,
        caller: &Identity,
        id: Uuid,
        req: GroupCreate,
    ) -> Result<GroupDoc> {
        let mut a = self.group_access(caller, id).await?;
        a.require(GroupRole::Admin)?;
        if let Some(p) = &req.policies {
            check_policies(p)?;
            a.group.visibility = p.group_visibility.clone();
            a.group.members_visibility = p.group_members_visibility.clone();
        }
        a.group.name = check_name(&req.name)?;
        if let Some(d) = req.description {
            a.group.description = d;
        }
        self.store.update_group(&a.group).await?;
        self.group_doc(&a, false).await
    }

    pub async fn set_group_policies(
        &self,
        caller: &Identity,
        id: Uuid,
        p: GroupPoliciesDoc,
    ) -> Result<Value> {
        let mut a = self.group_access(caller, id).await?;
        a.require(GroupRole::Admin)?;
        check_policies(&p)?;
        a.group.visibility = p.group_visibility.clone();
        a.group.members_visibility = p.group_members_visibility.clone();
        self.store.update_group(&a.group).await?;
        Ok(json!(p))
    }

    pub async fn get_group_policies(&self, caller: &Identity, id: Uuid) -> Result<Value> {
        let a = self.group_access(caller, id).await?;
        Ok(json!({
            "group_visibility": a.group.visibility,
            "group_members_visibility": a.group.members_visibility,
            "is_high_assurance": false, "authentication_assurance_timeout": 28800,
            "group_type": "regular", "join_requests": false, "signup_fields": [],
        }))
    }

    pub async fn delete_group(&self, caller: &Identity, id: Uuid) -> Result<GroupDoc> {
        let a = self.group_access(caller, id).await?;
        a.require(GroupRole::Admin)?;
        let doc = self.group_doc(&a, false).await?;
        self.store.delete_group(id).await?;
        Ok(doc)
    }

    /// `GET /v2/groups/my_groups`: the caller's groups whose membership status is one of `statuses`
    /// (comma-separated; default `active`).
    pub async fn my_groups(
        &self,
        caller: &Identity,
        statuses: Option<&str>,
    ) -> Result<Vec<GroupDoc>> {
        let wanted: Vec<MembershipStatus> = match statuses.filter(|s| !s.is_empty()) {
            None => vec![MembershipStatus::Active],
            Some(s) => s
                .split(',')
                .map(|x| {
                    MembershipStatus::parse(x.trim()).ok_or_else(|| {
                        AuthError::InvalidRequest(format!("'{x}' is not a membership status"))
                    })
                })
                .collect::<Result<_>>()?,
        };
        let mut out = Vec::new();
        for group in self.store.groups_of(caller.id).await? {
            let mine = self.store.membership(group.id, caller.id).await?;
            if mine.as_ref().is_some_and(|m| wanted.contains(&m.status)) {
                out.push(self.group_doc(&Access { group, mine }, false).await?);
            }
        }
        Ok(out)
    }

    /// `POST /v2/groups/{id}`: batch membership actions. Each item succeeds or fails on its own; the answer
    /// lists the successes per action and the failures under `errors`.
    pub async fn group_batch(&self, caller: &Identity, id: Uuid, body: &Value) -> Result<Value> {
        let a = self.group_access(caller, id).await?;
        let obj = body
            .as_object()
            .ok_or_else(|| AuthError::InvalidRequest("the body must be a JSON object".into()))?;
        let mut done = serde_json::Map::new();
        let mut errors = serde_json::Map::new();
        for (name, items) in obj {
            let action = MemberAction::parse(name)?;
            let items: Vec<MembershipAction> =
                serde_json::from_value(items.clone()).map_err(|e| {
                    AuthError::InvalidRequest(format!(
                        "'{name}' must be a list of {{identity_id, role}}: {e}"
                    ))
                })?;
            let mut ok = Vec::new();
            let mut bad = Vec::new();
            for item in items {
                match self.membership_action(&a, caller, action, &item).await {
                    Ok(m) => ok.push(json!(membership_doc(&m))),
                    Err(e) => bad.push(json!(MembershipActionError {
                        identity_id: item.identity_id,
                        code: error_code(&e).into(),
                        detail: e.to_string(),
                    })),
                }
            }
            done.insert(name.clone(), Value::Array(ok));
            if !bad.is_empty() {
                errors.insert(name.clone(), Value::Array(bad));
            }
        }
        let mut out = Value::Object(done);
        if !errors.is_empty() {
            out["errors"] = Value::Object(errors);
        }
        Ok(out)
    }

    /// One membership change (a web page's form): `action` as the batch names it, checked as one item of
    /// the batch is. `role` is for add, invite and change_role (default member).
    pub async fn change_membership(
        &self,
        caller: &Identity,
        group: Uuid,
        action: &str,
        identity: Uuid,
        role: Option<&str>,
    ) -> Result<Membership> {
        let action = MemberAction::parse(action)?;
        let a = self.group_access(caller, group).await?;
        let item = MembershipAction {
            identity_id: identity,
            role: role.map(str::to_string),
        };
        self.membership_action(&a, caller, action, &item).await
    }

    async fn membership_action(
        &self,
        a: &Access,
        caller: &Identity,
        action: MemberAction,
        item: &MembershipAction,
    ) -> Result<Membership> {
        let gid = a.group.id;
        let role = match item.role.as_deref() {
            None => GroupRole::Member,
            Some(r) => GroupRole::parse(r).ok_or_else(|| {
                AuthError::InvalidRequest(format!("'{r}' is not a role (member, manager, admin)"))
            })?,
        };
        let existing = self.store.membership(gid, item.identity_id).await?;
        let now = self.now();
        match action {
            MemberAction::Add | MemberAction::Invite => {
                a.require(GroupRole::Manager)?;
                if role == GroupRole::Admin {
                    a.require(GroupRole::Admin)?;
                }
                match existing.as_ref().map(|m| m.status) {
                    Some(MembershipStatus::Active) => {
                        return Err(AuthError::Conflict(
                            "the identity is already an active member".into(),
                        ));
                    }
                    Some(MembershipStatus::Invited) if action == MemberAction::Invite => {
                        return Err(AuthError::Conflict(
                            "the identity is already invited; they accept or decline the invitation".into(),
                        ));
                    }
                    _ => {}
                }
                let who = self
                    .store
                    .get_identity(item.identity_id)
                    .await?
                    .ok_or_else(|| {
                        AuthError::NotFound(format!("no identity {}", item.identity_id))
                    })?;
                let m = Membership {
                    group_id: gid,
                    identity_id: who.id,
                    username: who.username,
                    role,
                    status: if action == MemberAction::Add {
                        MembershipStatus::Active
                    } else {
                        MembershipStatus::Invited
                    },
                    updated: now,
                };
                self.store.put_membership(&m).await?;
                Ok(m)
            }
            MemberAction::Accept | MemberAction::Decline => {
                if item.identity_id != caller.id {
                    return Err(AuthError::Forbidden(
                        "only the invited person can accept or decline their invitation".into(),
                    ));
                }
                let mut m = existing
                    .filter(|m| m.status == MembershipStatus::Invited)
                    .ok_or_else(|| {
                        AuthError::NotFound("there is no invitation to this group for you".into())
                    })?;
                m.status = if action == MemberAction::Accept {
                    MembershipStatus::Active
                } else {
                    MembershipStatus::Declined
                };
                m.updated = now;
                self.store.put_membership(&m).await?;
                Ok(m)
            }
            MemberAction::Remove | MemberAction::Leave => {
                let leave = action == MemberAction::Leave;
                if leave && item.identity_id != caller.id {
                    return Err(AuthError::Forbidden(
                        "you can only leave a group yourself".into(),
                    ));
                }
                if !leave {
                    a.require(GroupRole::Manager)?;
                }
                let mut m = existing
                    .ok_or_else(|| AuthError::NotFound("the identity is not a member".into()))?;
                if m.role == GroupRole::Admin {
                    if !leave {
                        a.require(GroupRole::Admin)?;
                    }
                    self.keep_an_admin(gid, m.identity_id).await?;
                }
                self.store.delete_membership(gid, m.identity_id).await?;
                m.status = if leave {
                    MembershipStatus::Left
                } else {
                    MembershipStatus::Removed
                };
                m.updated = now;
                Ok(m)
            }
            MemberAction::ChangeRole => {
                a.require(GroupRole::Manager)?;
                let mut m = existing
                    .ok_or_else(|| AuthError::NotFound("the identity is not a member".into()))?;
                if role == GroupRole::Admin || m.role == GroupRole::Admin {
                    a.require(GroupRole::Admin)?;
                }
                if m.role == GroupRole::Admin && role != GroupRole::Admin {
                    self.keep_an_admin(gid, m.identity_id).await?;
                }
                m.role = role;
                m.updated = now;
                self.store.put_membership(&m).await?;
                Ok(m)
            }
        }
    }

    /// A group must keep at least one active admin.
    async fn keep_an_admin(&self, group: Uuid, leaving: Uuid) -> Result<()> {
        let others = self
            .store
            .memberships(group)
            .await?
            .into_iter()
            .filter(|m| {
                m.identity_id != leaving
                    && m.role == GroupRole::Admin
                    && m.status == MembershipStatus::Active
            })
            .count();
        if others == 0 {
            return Err(AuthError::Conflict(
                "a group must keep at least one admin".into(),
            ));
        }
        Ok(())
    }

    /// Ids of the groups in which the identity is an active member (for ACLs and roles).
    pub async fn active_group_ids(&self, identity: Uuid) -> Result<Vec<Uuid>> {
        let mut out = Vec::new();
        for g in self.store.groups_of(identity).await? {
            if let Some(m) = self.store.membership(g.id, identity).await?
                && m.status == MembershipStatus::Active
            {
                out.push(g.id);
            }
        }
        Ok(out)
    }
}

/// The Groups API's error code for a failure.
pub fn error_code(e: &AuthError) -> &'static str {
    match e {
        AuthError::NotFound(_) => "NOT_FOUND",
        AuthError::Forbidden(_) => "FORBIDDEN",
        AuthError::Conflict(_) => "CONFLICT",
        AuthError::Unauthenticated => "UNAUTHORIZED",
        AuthError::Internal(_) => "INTERNAL_ERROR",
        _ => "INVALID_REQUEST",
    }
}
