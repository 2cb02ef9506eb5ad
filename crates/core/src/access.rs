//! The one access check: may this caller read or write this path of this collection?
//!
//! The answer is the minimum of the layers that apply (path-restrictions.md, "Where the rules are evaluated"):
//! 1. the storage gateway's `restrict_paths`, on the absolute path in the gateway's namespace;
//! 2. for a guest collection: its mapped collection must still allow guest collections, and the mapped
//!    collection's `sharing_restrict_paths` together with the sharing policies that apply to the guest
//!    collection's creator (their union), on the path relative to the mapped collection's root;
//! 3. for a guest collection: its permissions (ACL rules, additive, expired ones absent) and its roles (owner,
//!    administrators and access managers have `rw` on `/`), on the path relative to the guest collection's root.
//!
//! What the storage itself allows comes last, from the connector. A [`CollectionPolicy`] is compiled once per
//! collection (and per storage account on mapped collections) and then answers each check without touching
//! anything else; the endpoint caches it and rebuilds it when the configuration changes.

use std::collections::{HashMap, HashSet};
use std::fmt;

use uuid::Uuid;

use crate::acl::{AclPrincipal, AclRule};
use crate::auth_policy::AuthPolicy;
use crate::endpoint::{
    CollectionDoc, CollectionType, RoleDoc, RoleName, RolePrincipal, SharingPolicyDoc,
    StorageGatewayDoc,
};
use crate::path;
use crate::restrictions::{Access, Compiled, Home, PathRestrictions, Vars, names_home};
use crate::time::Timestamp;

/// Who asks: an identity with the groups it is an active member of, or nobody (an anonymous request).
#[derive(Debug, Clone, Copy)]
pub struct Caller<'a> {
    pub identity: Option<Uuid>,
    /// `name@domain`: authentication policies admit callers by domain.
    pub username: Option<&'a str>,
    pub groups: &'a [Uuid],
    /// The other identities linked with this one: rules and roles naming any of them apply.
    pub linked: &'a [crate::Identity],
    /// When the person behind the request signed in, for policies that ask for a recent sign-in.
    pub signed_in: SignedIn,
}

/// When the caller signed in, as far as the request shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignedIn {
    /// The sign-in (the browser session, or the one the token descends from) happened then.
    At(Timestamp),
    /// No sign-in stands behind the request: anonymous, or an application's own token.
    NoSession,
    /// A task running for its owner: the owner's sign-in was checked when the task was submitted.
    TaskOfOwner,
}

impl SignedIn {
    /// The sign-in's time, when the request shows one.
    pub fn time(self) -> Option<Timestamp> {
        match self {
            SignedIn::At(t) => Some(t),
            _ => None,
        }
    }

    /// Whether the sign-in counts for a policy asking for one within `limit` seconds of `now`.
    pub fn within(self, now: Timestamp, limit: i64) -> bool {
        match self {
            SignedIn::At(t) => now - t <= limit,
            SignedIn::NoSession => false,
            SignedIn::TaskOfOwner => true,
        }
    }
}

impl Caller<'_> {
    pub const ANONYMOUS: Caller<'static> = Caller {
        identity: None,
        username: None,
        groups: &[],
        linked: &[],
        signed_in: SignedIn::NoSession,
    };

    /// Whether `id` is the caller or one of its linked identities.
    pub fn is_identity(&self, id: Uuid) -> bool {
        self.identity == Some(id) || self.linked.iter().any(|i| i.id == id)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// list, stat, read, checksum
    Read,
    /// write, mkdir, rename, delete, set times
    Write,
}

impl Action {
    pub fn needs(self) -> Access {
        match self {
            Action::Read => Access::Read,
            Action::Write => Access::ReadWrite,
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Read => "read",
            Action::Write => "write",
        }
    }
}

/// The layers of the check, in the order they are applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layer {
    /// The storage gateway's `restrict_paths`.
    Gateway,
    /// The mapped collection no longer allows guest collections.
    GuestsDisallowed,
    /// The mapped collection's sharing restrictions and sharing policies.
    Sharing,
    /// The guest collection's permissions and roles.
    Permissions,
    /// The guest authentication policy asks for a sign-in within this many seconds, and the caller's is older.
    SignIn { within_secs: i64 },
}

impl Layer {
    pub fn as_str(self) -> &'static str {
        match self {
            Layer::Gateway => "storage gateway restrict_paths",
            Layer::GuestsDisallowed => "mapped collection allow_guest_collections",
            Layer::Sharing => "mapped collection sharing restrictions",
            Layer::Permissions => "guest collection permissions",
            Layer::SignIn { .. } => "guest authentication policy's sign-in timeout",
        }
    }
}

/// Why a check failed: the first layer that gives less than the action needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refusal {
    pub layer: Layer,
    pub have: Access,
    pub action: Action,
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.layer {
            Layer::GuestsDisallowed => f.write_str(
                "the mapped collection of this guest collection no longer allows guest collections",
            ),
            Layer::SignIn { within_secs } => write!(
                f,
                "this collection's authentication policy asks for a sign-in within the last {} minutes; \
                 sign in again (`globus login --force`, `ferry login`, or the login page) and retry",
                (within_secs + 59) / 60
            ),
            layer => write!(
                f,
                "{} allow {} here, and {} needs {}",
                layer.as_str(),
                match self.have {
                    Access::None => "no access",
                    Access::Read => "only reading",
                    Access::ReadWrite => "reading and writing",
                },
                self.action.as_str(),
                self.action.needs().as_str()
            ),
        }
    }
}

impl std::error::Error for Refusal {}

/// One layer's verdict, for `ferry access explain`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerReport {
    pub layer: Layer,
    pub access: Access,
    /// The rule that decided this layer, in words.
    pub because: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Explanation {
    /// The path in the storage gateway's namespace.
    pub storage_path: String,
    pub layers: Vec<LayerReport>,
    pub access: Access,
    /// The layer that limited the result (the first one at the minimum).
    pub limited_by: Option<Layer>,
}

/// The storage account data is reached with: `$USER` and `$HOME` in restrictions and base paths.
#[derive(Debug, Clone, Copy)]
pub struct Account<'a> {
    pub username: &'a str,
    pub home: Home<'a>,
}

/// Everything a policy is compiled from. For a guest collection, `account` is its creator's account and `mapped`
/// its mapped collection; `roles` holds the endpoint's roles and the collection's.
pub struct PolicyInputs<'a> {
    pub collection: &'a CollectionDoc,
    pub mapped: Option<&'a CollectionDoc>,
    pub gateway: &'a StorageGatewayDoc,
    pub account: Account<'a>,
    pub sharing_policies: &'a [SharingPolicyDoc],
    pub acl_rules: &'a [AclRule],
    pub roles: &'a [RoleDoc],
    /// The mapped collection's `guest_auth_policy_id` document, for guest collections.
    pub guest_auth_policy: Option<&'a AuthPolicy>,
}

/// A stored document that no longer compiles; stored documents are validated on the way in, so this is an
/// inconsistency in the database, reported rather than guessed around.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct PolicyError(pub String);

#[derive(Debug, Clone)]
struct AclEntry {
    rule_id: Uuid,
    principal: AclPrincipal,
    write: bool,
    expires_at: Option<Timestamp>,
}

#[derive(Debug, Clone)]
struct GuestLayers {
    mapped_root: String,
    guests_allowed: bool,
    /// None: the mapped collection sets no sharing restrictions.
    sharing: Option<Compiled>,
    /// The sharing policies that apply to the creator's account, with their ids.
    policies: Vec<(Uuid, Compiled)>,
    /// Rules by their path (relative to the guest collection's root).
    acl: HashMap<String, Vec<AclEntry>>,
    /// Identities and groups holding a role that implies `rw` on `/`.
    manager_ids: HashSet<Uuid>,
    manager_groups: HashSet<Uuid>,
    /// Permissions count only for callers this policy admits (roles are not filtered).
    auth_policy: Option<AuthPolicy>,
    anonymous_writes: bool,
}

#[derive(Debug, Clone)]
pub struct CollectionPolicy {
    pub collection_id: Uuid,
    /// The collection's root in the gateway's namespace.
    pub root: String,
    /// None: the gateway sets no path restrictions.
    gateway: Option<Compiled>,
    guest: Option<GuestLayers>,
}

/// Replaces `$USER`, `$HOME` and a leading `~` in a base path (these are paths, not patterns). None when the
/// path names the home and the account has none on this storage.
pub fn interpolate_base_path(base: &str, account: Account<'_>) -> Option<String> {
    let home = match account.home {
        Home::NoConcept => "/",
        Home::At(h) => h,
        Home::Missing if names_home(base) => return None,
        Home::Missing => "/",
    };
    let mut out = base.replace("$USER", account.username);
    out = out.replace("$HOME", home);
    if out == "~" {
        out = home.to_string();
    } else if let Some(rest) = out.strip_prefix("~/") {
        out = format!("{}/{rest}", home.trim_end_matches('/'));
    }
    Some(out)
}

fn compile_doc(
    doc: Option<&serde_json::Value>,
    field: &str,
    vars: &Vars<'_>,
) -> Result<Option<Compiled>, PolicyError> {
    doc.map(|v| {
        PathRestrictions::from_json(v, field)
            .map(|r| r.compile(vars))
            .map_err(|e| PolicyError(format!("stored {e}")))
    })
    .transpose()
}

fn root_of(doc: &CollectionDoc, account: Account<'_>) -> Result<String, PolicyError> {
    let base = interpolate_base_path(&doc.collection_base_path, account).ok_or_else(|| {
        PolicyError(format!(
            "collection {} is based on the home folder, and account {} has none on this storage gateway",
            doc.id, account.username
        ))
    })?;
    path::normalize(&base).map_err(|e| {
        PolicyError(format!(
            "collection {} has an unusable base path: {e}",
            doc.id
        ))
    })
}

impl CollectionPolicy {
    pub fn build(inputs: &PolicyInputs<'_>) -> Result<Self, PolicyError> {
        let vars = Vars {
            user: Some(inputs.account.username),
            home: inputs.account.home,
        };
        let gateway = compile_doc(
            inputs.gateway.restrict_paths.as_ref(),
            "restrict_paths",
            &vars,
        )?;
        let c = inputs.collection;
        match c.collection_type {
            CollectionType::Mapped => Ok(Self {
                collection_id: c.id,
                root: root_of(c, inputs.account)?,
                gateway,
                guest: None,
            }),
            CollectionType::Guest => {
                let mapped = inputs.mapped.ok_or_else(|| {
                    PolicyError(format!(
                        "guest collection {} has no mapped collection",
                        c.id
                    ))
                })?;
                let mapped_root = root_of(mapped, inputs.account)?;
                let base = path::normalize(&c.collection_base_path).map_err(|e| {
                    PolicyError(format!("guest collection {} base path: {e}", c.id))
                })?;
                let root = path::join(&mapped_root, &base);
                let sharing = compile_doc(
                    mapped.sharing_restrict_paths.as_ref(),
                    "sharing_restrict_paths",
                    &vars,
                )?;
                let mut policies = Vec::new();
                for p in inputs.sharing_policies.iter().filter(|p| {
                    p.collection_id == mapped.id
                        && p.users
                            .as_ref()
                            .is_none_or(|u| u.iter().any(|u| u == inputs.account.username))
                }) {
                    if let Some(compiled) = compile_doc(
                        Some(&p.sharing_restrict_paths),
                        "sharing_policy.sharing_restrict_paths",
                        &vars,
                    )? {
                        policies.push((p.id, compiled));
                    }
                }
                let mut acl: HashMap<String, Vec<AclEntry>> = HashMap::new();
                for r in inputs.acl_rules.iter().filter(|r| r.collection_id == c.id) {
                    acl.entry(r.path.clone()).or_default().push(AclEntry {
                        rule_id: r.id,
                        principal: r.principal,
                        write: r.write,
                        expires_at: r.expires_at,
                    });
                }
                let mut manager_ids: HashSet<Uuid> = c.identity_id.into_iter().collect();
                let mut manager_groups = HashSet::new();
                for r in inputs.roles {
                    let grants_rw = match r.collection {
                        // Endpoint administrators administer every collection.
                        None => r.role == RoleName::Administrator,
                        Some(id) if id == c.id => {
                            matches!(r.role, RoleName::Administrator | RoleName::AccessManager)
                        }
                        Some(_) => false,
                    };
                    if !grants_rw {
                        continue;
                    }
                    match RolePrincipal::parse(&r.principal) {
                        Some(RolePrincipal::Identity(id)) => {
                            manager_ids.insert(id);
                        }
                        Some(RolePrincipal::Group(id)) => {
                            manager_groups.insert(id);
                        }
                        None => {}
                    }
                }
                Ok(Self {
                    collection_id: c.id,
                    root,
                    gateway,
                    guest: Some(GuestLayers {
                        mapped_root,
                        guests_allowed: mapped.allow_guest_collections,
                        sharing,
                        policies,
                        acl,
                        manager_ids,
                        manager_groups,
                        auth_policy: inputs.guest_auth_policy.cloned(),
                        anonymous_writes: !mapped.disable_anonymous_writes,
                    }),
                })
            }
        }
    }

    /// For a guest collection, its mapped collection's root in the gateway's namespace.
    pub fn mapped_root(&self) -> Option<&str> {
        self.guest.as_ref().map(|g| g.mapped_root.as_str())
    }

    /// The storage path of a (normalised) path of this collection.
    pub fn storage_path(&self, path: &str) -> String {
        path::join(&self.root, path)
    }

    /// The collection path of a storage path; None when it lies outside the collection.
    pub fn collection_path(&self, storage_path: &str) -> Option<String> {
        path::strip_base(&self.root, storage_path)
    }

    /// Checks `action` on `path` (normalised, relative to the collection's root). Returns the access the caller has
    /// there, or the first layer that refuses.
    pub fn check(
        &self,
        caller: &Caller<'_>,
        path: &str,
        action: Action,
        now: Timestamp,
    ) -> Result<Access, Refusal> {
        let need = action.needs();
        let refuse = |layer, have| Refusal {
            layer,
            have,
            action,
        };
        let storage = self.storage_path(path);
        let mut have = Access::ReadWrite;
        if let Some(g) = &self.gateway {
            let a = g.access(&storage).unwrap_or(Access::None);
            if a < need {
                return Err(refuse(Layer::Gateway, a));
            }
            have = have.min(a);
        }
        if let Some(guest) = &self.guest {
            if !guest.guests_allowed {
                return Err(refuse(Layer::GuestsDisallowed, Access::None));
            }
            let a = guest.sharing_access(&storage);
            if a < need {
                return Err(refuse(Layer::Sharing, a));
            }
            have = have.min(a);
            let (a, why) = guest.permission(caller, path, now);
            if a < need {
                let layer = match why {
                    PermissionSource::SignInTooOld(_, within_secs) => Layer::SignIn { within_secs },
                    _ => Layer::Permissions,
                };
                return Err(refuse(layer, a));
            }
            have = have.min(a);
        }
        Ok(have)
    }

    /// Every layer's verdict on `path`, with the rule that decided it.
    pub fn explain(&self, caller: &Caller<'_>, path: &str, now: Timestamp) -> Explanation {
        let storage = self.storage_path(path);
        let mut layers = Vec::new();
        layers.push(match &self.gateway {
            None => LayerReport {
                layer: Layer::Gateway,
                access: Access::ReadWrite,
                because: "the storage gateway sets no restrict_paths".into(),
            },
            Some(g) => {
                let e = g.evaluate(&storage);
                LayerReport {
                    layer: Layer::Gateway,
                    access: e.effective(),
                    because: match &e.decided_by {
                        Some(r) => describe_rule("restrict_paths", r),
                        None => format!("no restrict_paths rule applies to {storage}"),
                    },
                }
            }
        });
        if let Some(guest) = &self.guest {
            if !guest.guests_allowed {
                layers.push(LayerReport {
                    layer: Layer::GuestsDisallowed,
                    access: Access::None,
                    because: "allow_guest_collections is false on the mapped collection".into(),
                });
            }
            layers.push(guest.explain_sharing(&storage));
            let (access, because) = guest.permission(caller, path, now);
            layers.push(LayerReport {
                layer: Layer::Permissions,
                access,
                because: because.describe(),
            });
        }
        let access = layers
            .iter()
            .map(|l| l.access)
            .min()
            .unwrap_or(Access::None);
        let limited_by = layers.iter().find(|l| l.access == access).map(|l| l.layer);
        Explanation {
            storage_path: storage,
            layers,
            access,
            limited_by,
        }
    }
}

fn describe_rule(field: &str, r: &crate::restrictions::RuleRef) -> String {
    let mut s = format!("{field} {} rule \"{}\"", r.list.as_str(), r.pattern);
    if r.interpolated != r.pattern {
        s.push_str(&format!(" (as \"{}\")", r.interpolated));
    }
    s
}

/// Why the permissions layer gave what it gave.
enum PermissionSource {
    Role,
    Rule(Uuid, AclPrincipal, String),
    /// The guest authentication policy does not admit the caller's domain.
    PolicyRefused(Uuid),
    /// The guest authentication policy asks for a sign-in within this many seconds; the caller's is older.
    SignInTooOld(Uuid, i64),
    Nothing,
}

impl PermissionSource {
    fn describe(self) -> String {
        match self {
            PermissionSource::Role => {
                "the caller owns, administers or manages access to the guest collection (rw on /)"
                    .into()
            }
            PermissionSource::Rule(id, p, path) => {
                let who = match p {
                    AclPrincipal::Identity(x)
                    | AclPrincipal::Group(x)
                    | AclPrincipal::Invitation(x) => {
                        format!("{} {x}", p.type_str())
                    }
                    _ => p.type_str().to_string(),
                };
                format!("permission {id} for {who} on {path}")
            }
            PermissionSource::PolicyRefused(id) => format!(
                "the mapped collection's authentication policy {id} does not admit the caller's identity domain"
            ),
            PermissionSource::SignInTooOld(id, limit) => format!(
                "the mapped collection's authentication policy {id} asks for a sign-in within {limit} seconds, \
                 and the caller's is older (or there is none)"
            ),
            PermissionSource::Nothing => {
                "no permission of the guest collection covers this path for the caller".into()
            }
        }
    }
}

impl GuestLayers {
    fn relative_to_mapped<'p>(&self, storage: &'p str) -> std::borrow::Cow<'p, str> {
        // The storage path always lies inside the mapped root (the guest root is below it), so stripping cannot
        // fail; "/" is the safe answer if it ever did.
        match path::strip_base(&self.mapped_root, storage) {
            Some(p) => p.into(),
            None => "/".into(),
        }
    }

    fn sharing_access(&self, storage: &str) -> Access {
        let Some(sharing) = &self.sharing else {
            return Access::ReadWrite;
        };
        let rel = self.relative_to_mapped(storage);
        let mut a = sharing.access(&rel).unwrap_or(Access::None);
        for (_, p) in &self.policies {
            if a == Access::ReadWrite {
                break;
            }
            a = a.max(p.access(&rel).unwrap_or(Access::None));
        }
        a
    }

    fn explain_sharing(&self, storage: &str) -> LayerReport {
        let Some(sharing) = &self.sharing else {
            return LayerReport {
                layer: Layer::Sharing,
                access: Access::ReadWrite,
                because: "the mapped collection sets no sharing_restrict_paths".into(),
            };
        };
        let rel = self.relative_to_mapped(storage);
        let e = sharing.evaluate(&rel);
        let mut best = (
            e.effective(),
            match &e.decided_by {
                Some(r) => describe_rule("sharing_restrict_paths", r),
                None => format!("no sharing_restrict_paths rule applies to {rel}"),
            },
        );
        for (id, p) in &self.policies {
            let e = p.evaluate(&rel);
            if e.effective() > best.0 {
                let rule = e
                    .decided_by
                    .as_ref()
                    .map(|r| describe_rule("sharing_restrict_paths", r))
                    .unwrap_or_default();
                best = (e.effective(), format!("sharing policy {id}: {rule}"));
            }
        }
        LayerReport {
            layer: Layer::Sharing,
            access: best.0,
            because: best.1,
        }
    }

    fn is_manager(&self, caller: &Caller<'_>) -> bool {
        caller.identity.is_some_and(|id| {
            self.manager_ids.contains(&id)
                || caller
                    .linked
                    .iter()
                    .any(|i| self.manager_ids.contains(&i.id))
                || caller
                    .groups
                    .iter()
                    .any(|g| self.manager_groups.contains(g))
        })
    }

    /// The caller's access from roles and rules: the highest of what applies.
    fn permission(
        &self,
        caller: &Caller<'_>,
        path: &str,
        now: Timestamp,
    ) -> (Access, PermissionSource) {
        if self.is_manager(caller) {
            return (Access::ReadWrite, PermissionSource::Role);
        }
        if let Some(p) = &self.auth_policy
            && !p.admits(caller.username)
            && !caller.linked.iter().any(|i| p.admits(Some(&i.username)))
        {
            return (Access::None, PermissionSource::PolicyRefused(p.id));
        }
        if let Some(p) = &self.auth_policy
            && let Some(limit) = p.assurance_timeout()
            && !caller.signed_in.within(now, limit)
        {
            return (Access::None, PermissionSource::SignInTooOld(p.id, limit));
        }
        let mut best: (Access, Option<(&AclEntry, &str)>) = (Access::None, None);
        for at in path::ancestors(path) {
            let Some(entries) = self.acl.get(at) else {
                continue;
            };
            for e in entries {
                if e.expires_at.is_some_and(|t| t <= now) || !applies(&e.principal, caller) {
                    continue;
                }
                // The mapped collection's disable_anonymous_writes caps anonymous rules at read, also for rules
                // made before it was set.
                let a = if e.write
                    && (self.anonymous_writes || e.principal != AclPrincipal::Anonymous)
                {
                    Access::ReadWrite
                } else {
                    Access::Read
                };
                if a > best.0 {
                    best = (a, Some((e, at)));
                    if a == Access::ReadWrite {
                        break;
                    }
                }
            }
            if best.0 == Access::ReadWrite {
                break;
            }
        }
        match best.1 {
            Some((e, at)) => (
                best.0,
                PermissionSource::Rule(e.rule_id, e.principal, at.to_string()),
            ),
            None => (Access::None, PermissionSource::Nothing),
        }
    }
}

fn applies(p: &AclPrincipal, caller: &Caller<'_>) -> bool {
    match p {
        AclPrincipal::Anonymous => true,
        AclPrincipal::AllAuthenticatedUsers => caller.identity.is_some(),
        AclPrincipal::Identity(id) => caller.is_identity(*id),
        AclPrincipal::Group(g) => caller.identity.is_some() && caller.groups.contains(g),
        AclPrincipal::Invitation(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn gateway(restrict: serde_json::Value) -> StorageGatewayDoc {
        let mut g: StorageGatewayDoc =
            serde_json::from_value(json!({"display_name": "g", "restrict_paths": restrict}))
                .unwrap();
        g.id = Uuid::new_v4();
        g
    }

    fn mapped(sharing: serde_json::Value) -> CollectionDoc {
        let mut c: CollectionDoc = serde_json::from_value(json!({
            "collection_type": "mapped", "display_name": "m", "collection_base_path": "/data",
            "allow_guest_collections": true, "sharing_restrict_paths": sharing,
        }))
        .unwrap();
        c.id = Uuid::new_v4();
        c
    }

    fn guest(mapped: &CollectionDoc, base: &str, owner: Uuid) -> CollectionDoc {
        let mut c: CollectionDoc = serde_json::from_value(json!({
            "collection_type": "guest", "display_name": "g", "collection_base_path": base,
        }))
        .unwrap();
        c.id = Uuid::new_v4();
        c.mapped_collection_id = Some(mapped.id);
        c.identity_id = Some(owner);
        c
    }

    fn rule(
        c: &CollectionDoc,
        p: AclPrincipal,
        path: &str,
        write: bool,
        exp: Option<i64>,
    ) -> AclRule {
        AclRule {
            id: Uuid::new_v4(),
            collection_id: c.id,
            principal: p,
            path: path.into(),
            folder: true,
            write,
            expires_at: exp,
            created: 0,
            notify_email: None,
            notify_message: None,
        }
    }

    const ANA: Account<'static> = Account {
        username: "ana",
        home: Home::NoConcept,
    };

    #[test]
    fn mapped_collections_apply_the_gateway_with_the_callers_account() {
        let g = gateway(json!({"read_write": ["/data/$USER"], "read": ["/data/pub"]}));
        let mut m = mapped(serde_json::Value::Null);
        m.collection_base_path = "/data".into();
        let p = CollectionPolicy::build(&PolicyInputs {
            collection: &m,
            mapped: None,
            gateway: &g,
            account: ANA,
            sharing_policies: &[],
            acl_rules: &[],
            roles: &[],
            guest_auth_policy: None,
        })
        .unwrap();
        let me = Caller {
            identity: Some(Uuid::new_v4()),
            username: None,
            groups: &[],
            linked: &[],
            signed_in: SignedIn::NoSession,
        };
        assert_eq!(
            p.check(&me, "/ana/x", Action::Write, 0),
            Ok(Access::ReadWrite)
        );
        assert_eq!(p.check(&me, "/pub/x", Action::Read, 0), Ok(Access::Read));
        let r = p.check(&me, "/pub/x", Action::Write, 0).unwrap_err();
        assert_eq!((r.layer, r.have), (Layer::Gateway, Access::Read));
        assert!(p.check(&me, "/bob", Action::Read, 0).is_err());
        assert_eq!(p.storage_path("/ana"), "/data/ana");
        assert_eq!(p.collection_path("/data/ana/f").as_deref(), Some("/ana/f"));
        assert_eq!(p.collection_path("/database"), None);
        let e = p.explain(&me, "/pub/x", 0);
        assert_eq!(e.access, Access::Read);
        assert!(
            e.layers[0].because.contains("\"/data/pub\""),
            "{:?}",
            e.layers
        );
    }

    #[test]
    fn guest_collections_take_the_minimum_of_every_layer() {
        let owner = Uuid::new_v4();
        let (reader, member, stranger, group) = (
            Uuid::new_v4(),
            Uuid::new_v4(),
            Uuid::new_v4(),
            Uuid::new_v4(),
        );
        let g = gateway(json!({"read_write": ["/data"], "none": ["/data/proj/secret"]}));
        let m = mapped(json!({"read_write": ["/proj/rw"], "read": ["/proj"]}));
        let c = guest(&m, "/proj", owner);
        let rules = vec![
            rule(&c, AclPrincipal::Identity(reader), "/shared", true, None),
            rule(&c, AclPrincipal::Group(group), "/", false, None),
            rule(&c, AclPrincipal::Identity(stranger), "/", true, Some(100)),
            rule(&c, AclPrincipal::Anonymous, "/public", false, None),
        ];
        let build = |m: &CollectionDoc, policies: &[SharingPolicyDoc]| {
            CollectionPolicy::build(&PolicyInputs {
                collection: &c,
                mapped: Some(m),
                gateway: &g,
                account: ANA,
                sharing_policies: policies,
                acl_rules: &rules,
                roles: &[],
                guest_auth_policy: None,
            })
            .unwrap()
        };
        let p = build(&m, &[]);
        assert_eq!(p.root, "/data/proj");
        let who = |id: Uuid, groups: &'static [Uuid]| Caller {
            identity: Some(id),
            username: None,
            groups,
            linked: &[],
            signed_in: SignedIn::NoSession,
        };
        let o = who(owner, &[]);
        // The owner has rw on /, bounded by the sharing restrictions and the gateway.
        assert_eq!(
            p.check(&o, "/rw/x", Action::Write, 0),
            Ok(Access::ReadWrite)
        );
        assert_eq!(p.check(&o, "/x", Action::Read, 0), Ok(Access::Read));
        let r = p.check(&o, "/x", Action::Write, 0).unwrap_err();
        assert_eq!((r.layer, r.have), (Layer::Sharing, Access::Read));
        let r = p.check(&o, "/secret", Action::Read, 0).unwrap_err();
        assert_eq!(r.layer, Layer::Gateway);
        // Rules cover their path and below, never a sibling that merely starts alike.
        let rd = who(reader, &[]);
        assert!(p.check(&rd, "/shared/f", Action::Read, 0).is_ok());
        let r = p.check(&rd, "/shared/f", Action::Write, 0).unwrap_err();
        assert_eq!(
            r.layer,
            Layer::Sharing,
            "a rule never grants more than sharing allows"
        );
        assert!(p.check(&rd, "/sharedx", Action::Read, 0).is_err());
        // A group rule follows the caller's groups as given at the check.
        let groups: &'static [Uuid] = Box::leak(Box::new([group]));
        assert!(p.check(&who(member, groups), "/a", Action::Read, 0).is_ok());
        let r = p
            .check(&who(member, &[]), "/a", Action::Read, 0)
            .unwrap_err();
        assert_eq!(r.layer, Layer::Permissions);
        // An expired rule grants nothing from its expiry on.
        assert!(
            p.check(&who(stranger, &[]), "/rw/a", Action::Write, 99)
                .is_ok()
        );
        assert!(
            p.check(&who(stranger, &[]), "/rw/a", Action::Read, 100)
                .is_err()
        );
        // Anonymous rules work without an identity; identity rules do not.
        assert!(
            p.check(&Caller::ANONYMOUS, "/public/f", Action::Read, 0)
                .is_ok()
        );
        assert!(
            p.check(&Caller::ANONYMOUS, "/shared", Action::Read, 0)
                .is_err()
        );
        // A sharing policy for the creator's account adds to the collection's sharing restrictions.
        let pol = SharingPolicyDoc {
            data_type: "sharing_policy#1.0.0".into(),
            id: Uuid::new_v4(),
            collection_id: m.id,
            sharing_restrict_paths: json!({"read_write": ["/proj"]}),
            users: Some(vec!["ana".into()]),
        };
        assert!(
            build(&m, std::slice::from_ref(&pol))
                .check(&o, "/x", Action::Write, 0)
                .is_ok()
        );
        let other = SharingPolicyDoc {
            users: Some(vec!["bob".into()]),
            ..pol
        };
        assert!(
            build(&m, &[other])
                .check(&o, "/x", Action::Write, 0)
                .is_err()
        );
        // When the mapped collection stops allowing guests, nothing passes.
        let mut closed = m.clone();
        closed.allow_guest_collections = false;
        let r = build(&closed, &[])
            .check(&o, "/x", Action::Read, 0)
            .unwrap_err();
        assert_eq!(r.layer, Layer::GuestsDisallowed);
        let e = build(&closed, &[]).explain(&o, "/x", 0);
        assert_eq!(
            (e.access, e.limited_by),
            (Access::None, Some(Layer::GuestsDisallowed))
        );
    }

    #[test]
    fn roles_grant_read_write_on_guest_collections() {
        let owner = Uuid::new_v4();
        let (am, admin, monitor, group) = (
            Uuid::new_v4(),
            Uuid::new_v4(),
            Uuid::new_v4(),
            Uuid::new_v4(),
        );
        let g = gateway(serde_json::Value::Null);
        let m = mapped(serde_json::Value::Null);
        let c = guest(&m, "/", owner);
        let role = |collection: Option<Uuid>, principal: RolePrincipal, role: RoleName| RoleDoc {
            data_type: "role#1.0.0".into(),
            id: Uuid::new_v4(),
            collection,
            principal: principal.urn(),
            role,
        };
        let roles = vec![
            role(
                Some(c.id),
                RolePrincipal::Group(group),
                RoleName::AccessManager,
            ),
            role(
                None,
                RolePrincipal::Identity(admin),
                RoleName::Administrator,
            ),
            role(
                Some(c.id),
                RolePrincipal::Identity(monitor),
                RoleName::ActivityMonitor,
            ),
        ];
        let p = CollectionPolicy::build(&PolicyInputs {
            collection: &c,
            mapped: Some(&m),
            gateway: &g,
            account: ANA,
            sharing_policies: &[],
            acl_rules: &[],
            roles: &roles,
            guest_auth_policy: None,
        })
        .unwrap();
        let groups = [group];
        let check = |id: Uuid, groups: &[Uuid]| {
            p.check(
                &Caller {
                    identity: Some(id),
                    username: None,
                    groups,
                    linked: &[],
                    signed_in: SignedIn::NoSession,
                },
                "/f",
                Action::Write,
                0,
            )
            .is_ok()
        };
        assert!(check(owner, &[]), "the owner");
        assert!(check(am, &groups), "an access manager through a group");
        assert!(check(admin, &[]), "an endpoint administrator");
        assert!(
            !check(monitor, &[]),
            "an activity monitor has no data access"
        );
        assert!(!check(am, &[]), "without the group, no role");
    }

    /// A guest collection on `/` of a plain mapped collection, owned by `owner`, whose one rule gives
    /// `principal` read on `/`, under the authentication policy `policy` (a policy document) if any.
    fn one_rule_guest(
        owner: Uuid,
        principal: AclPrincipal,
        policy: Option<serde_json::Value>,
    ) -> CollectionPolicy {
        let g = gateway(serde_json::Value::Null);
        let m = mapped(serde_json::Value::Null);
        let c = guest(&m, "/", owner);
        let policy: Option<AuthPolicy> = policy.map(|p| serde_json::from_value(p).unwrap());
        CollectionPolicy::build(&PolicyInputs {
            collection: &c,
            mapped: Some(&m),
            gateway: &g,
            account: ANA,
            sharing_policies: &[],
            acl_rules: &[rule(&c, principal, "/", false, None)],
            roles: &[],
            guest_auth_policy: policy.as_ref(),
        })
        .unwrap()
    }

    #[test]
    fn a_guest_auth_policy_filters_permissions_by_domain() {
        let owner = Uuid::new_v4();
        let p = one_rule_guest(
            owner,
            AclPrincipal::AllAuthenticatedUsers,
            Some(json!({"display_name": "edu", "domain_constraints_include": ["*.edu"]})),
        );
        let caller = |id: Uuid, username: &'static str| Caller {
            identity: Some(id),
            username: Some(username),
            groups: &[],
            linked: &[],
            signed_in: SignedIn::NoSession,
        };
        assert!(
            p.check(
                &caller(Uuid::new_v4(), "ana@uni.edu"),
                "/f",
                Action::Read,
                0
            )
            .is_ok()
        );
        let who = caller(Uuid::new_v4(), "eve@corp.com");
        let r = p.check(&who, "/f", Action::Read, 0).unwrap_err();
        assert_eq!(r.layer, Layer::Permissions);
        assert!(
            p.explain(&who, "/f", 0).layers[2]
                .because
                .contains("authentication policy")
        );
        // Roles are not filtered: the owner keeps access whatever its domain.
        assert!(
            p.check(&caller(owner, "o@corp.com"), "/f", Action::Write, 0)
                .is_ok()
        );
        // Eve signed in at corp.com with an identity at uni.edu linked: the policy admits her set.
        let uni = [crate::Identity {
            id: Uuid::new_v4(),
            username: "eve@uni.edu".into(),
            name: "Eve".into(),
            email: None,
            organization: None,
            kind: crate::IdentityKind::Person,
            created: 0,
            identity_provider: None,
        }];
        let linked = Caller {
            linked: &uni,
            ..who
        };
        assert!(p.check(&linked, "/f", Action::Read, 0).is_ok());
        // A rule naming the linked identity applies to the caller too.
        let named = one_rule_guest(owner, AclPrincipal::Identity(uni[0].id), None);
        assert!(named.check(&linked, "/f", Action::Read, 0).is_ok());
        assert!(named.check(&who, "/f", Action::Read, 0).is_err());
    }

    #[test]
    fn a_high_assurance_policy_asks_for_a_recent_sign_in() {
        let owner = Uuid::new_v4();
        let doc = json!({"display_name": "ha", "high_assurance": true, "authentication_assurance_timeout": 600});
        let policy: AuthPolicy = serde_json::from_value(doc.clone()).unwrap();
        assert!(policy.validate().is_ok());
        let p = one_rule_guest(owner, AclPrincipal::AllAuthenticatedUsers, Some(doc));
        let now = 10_000;
        let at = |signed_in| Caller {
            identity: Some(Uuid::from_u128(7)),
            username: Some("ana@uni.edu"),
            groups: &[],
            linked: &[],
            signed_in,
        };
        assert!(
            p.check(&at(SignedIn::At(now - 600)), "/f", Action::Read, now)
                .is_ok()
        );
        assert!(
            p.check(&at(SignedIn::TaskOfOwner), "/f", Action::Read, now)
                .is_ok()
        );
        for old in [SignedIn::At(now - 601), SignedIn::NoSession] {
            let r = p.check(&at(old), "/f", Action::Read, now).unwrap_err();
            assert_eq!(r.layer, Layer::SignIn { within_secs: 600 });
            assert!(r.to_string().contains("within the last 10 minutes"), "{r}");
        }
        // The owner's role is not a permission: no sign-in timeout applies to it.
        let mut owner_call = at(SignedIn::NoSession);
        owner_call.identity = Some(owner);
        assert!(p.check(&owner_call, "/f", Action::Write, now).is_ok());
    }

    #[test]
    fn base_paths_interpolate_the_account() {
        let a = Account {
            username: "ana",
            home: Home::At("/home/ana"),
        };
        let b = |base: &str, a| interpolate_base_path(base, a);
        assert_eq!(b("/u/$USER", a).as_deref(), Some("/u/ana"));
        assert_eq!(b("~", a).as_deref(), Some("/home/ana"));
        assert_eq!(b("~/x", a).as_deref(), Some("/home/ana/x"));
        assert_eq!(b("$HOME/x", a).as_deref(), Some("/home/ana/x"));
        assert_eq!(b("~/x", ANA).as_deref(), Some("/x"));
        let homeless = Account {
            username: "ana",
            home: Home::Missing,
        };
        assert_eq!(b("~/x", homeless), None);
        assert_eq!(b("$HOME", homeless), None);
        assert_eq!(b("/u/$USER", homeless).as_deref(), Some("/u/ana"));
    }
}
