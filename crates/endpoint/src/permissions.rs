//! Permissions on guest collections (the Transfer API's `access` rules) and e-mail invitations.
//!
//! Only the collection's administrators (its creator, its administrator role holders, endpoint administrators)
//! and access managers manage rules. Administrators and access managers hold an implicit `rw` on `/`, shown
//! in the list with their `role_id`. A rule for an e-mail address (`principal_type: "invitation"`, a Ferry
//! extension) grants nothing until whoever receives the single-use code redeems it; the rule is then bound to
//! their identity.

use ferry_core::acl::{AclPrincipal, AclRule};
use ferry_core::endpoint::{CollectionDoc, CollectionType, RoleName, RolePrincipal};
use ferry_core::roles;
use ferry_core::time::{parse_iso8601, rfc3339};
use ferry_store::Invitation;
use serde_json::{Map, Value, json};
use uuid::Uuid;

use crate::{Endpoint, EndpointError, Requester, Result};

/// At most this many rules per guest collection (as Globus).
pub const MAX_RULES: usize = 1000;

const PRINCIPAL_TYPES: &str = "identity, group, all_authenticated_users, anonymous, invitation";
/// The fields of an access document a client sets.
const RULE_FIELDS: &[&str] = &[
    "principal_type",
    "principal",
    "path",
    "permissions",
    "expiration_date",
    "notify_email",
    "notify_message",
];
/// Fields of the access document; the server-set ones are accepted back unchanged and ignored.
const SERVER_SET: &[&str] = &["id", "role_id", "role_type", "create_time"];

fn bad(msg: impl Into<String>) -> EndpointError {
    EndpointError::BadRequest(msg.into())
}

fn text<'a>(doc: &'a Map<String, Value>, field: &str) -> Result<Option<&'a str>> {
    match doc.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.as_str())),
        Some(other) => Err(bad(format!("{field}: expected a string, got {other}"))),
    }
}

fn permissions(v: &str) -> Result<bool> {
    match v {
        "r" => Ok(false),
        "rw" => Ok(true),
        other => Err(bad(format!(
            "permissions: {other:?} is neither \"r\" nor \"rw\""
        ))),
    }
}

fn expiration(v: Option<&str>, now: i64) -> Result<Option<i64>> {
    let Some(v) = v.filter(|s| !s.is_empty()) else {
        return Ok(None);
    };
    let t = parse_iso8601(v).ok_or_else(|| {
        bad(format!(
            "expiration_date: {v:?} is not an ISO 8601 time (e.g. 2027-01-31T00:00:00Z)"
        ))
    })?;
    if t <= now {
        return Err(bad(format!("expiration_date: {v:?} is in the past")));
    }
    Ok(Some(t))
}

/// A rule's path: absolute, normalised (no `..`), relative to the guest collection's root; a trailing `/`
/// marks a folder.
fn rule_path(v: &str) -> Result<(String, bool)> {
    if !v.starts_with('/') {
        return Err(bad(format!(
            "path: {v:?} must start with \"/\" (it is relative to the guest collection's root)"
        )));
    }
    let normalised = ferry_core::path::normalize(v).map_err(|e| bad(format!("path: {e}")))?;
    Ok((normalised, v.ends_with('/')))
}

fn notify_email(v: Option<&str>) -> Result<Option<String>> {
    match v.map(str::trim).filter(|s| !s.is_empty()) {
        None => Ok(None),
        Some(a) => {
            ferry_mail::mailbox(a).map_err(|e| bad(format!("notify_email: {e}")))?;
            Ok(Some(a.to_string()))
        }
    }
}

fn check_fields(doc: &Map<String, Value>, allowed: &[&str]) -> Result<()> {
    if let Some(t) = doc.get("DATA_TYPE")
        && t != "access"
    {
        return Err(bad(format!("DATA_TYPE: expected \"access\", got {t}")));
    }
    match doc.keys().find(|k| {
        *k != "DATA_TYPE" && !allowed.contains(&k.as_str()) && !SERVER_SET.contains(&k.as_str())
    }) {
        Some(k) => Err(bad(format!("{k}: not a field of an access rule"))),
        None => Ok(()),
    }
}

fn object(request: Value) -> Result<Map<String, Value>> {
    match request {
        Value::Object(m) => Ok(m),
        _ => Err(bad("the body must be an access document (a JSON object)")),
    }
}

/// A fresh single-use code and its stored hash.
fn new_code() -> (String, String) {
    let code = format!("{}{}", Uuid::new_v4().simple(), Uuid::new_v4().simple());
    let hash = blake3::hash(code.as_bytes()).to_hex().to_string();
    (code, hash)
}

pub(crate) fn hash_code(code: &str) -> String {
    blake3::hash(code.trim().as_bytes()).to_hex().to_string()
}

impl Endpoint {
    /// The guest collection whose permissions `who` manages.
    async fn permission_target(&self, who: &Requester, id: Uuid) -> Result<CollectionDoc> {
        let missing = || EndpointError::CollectionNotFound(id.to_string());
        let c = self.store.get_collection(id).await?.ok_or_else(missing)?;
        if !self.sees(who, &c).await? {
            return Err(missing());
        }
        if c.collection_type != CollectionType::Guest {
            return Err(bad(format!(
                "{id} is a mapped collection; permissions are set on guest collections"
            )));
        }
        let (_, coll) = self.roles_for(who, &c).await?;
        if !roles::manages_permissions(&coll) {
            return Err(EndpointError::PermissionDenied(
                "managing permissions needs the guest collection's administrator or access_manager role"
                    .into(),
            ));
        }
        Ok(c)
    }

    fn rule_doc(&self, r: &AclRule, invitations: &[Invitation]) -> Value {
        let principal = match r.principal {
            AclPrincipal::Invitation(id) => invitations
                .iter()
                .find(|i| i.id == id)
                .map(|i| i.email.clone())
                .unwrap_or_default(),
            p => p.id_str(),
        };
        let mut doc = json!({
            "DATA_TYPE": "access",
            "id": r.id,
            "role_id": null,
            "role_type": null,
            "principal_type": r.principal.type_str(),
            "principal": principal,
            "path": r.wire_path(),
            "permissions": if r.write { "rw" } else { "r" },
            "create_time": rfc3339(r.created),
            "expiration_date": r.expires_at.map(rfc3339),
            "notify_email": r.notify_email,
            "notify_message": r.notify_message,
        });
        if let AclPrincipal::Invitation(id) = r.principal
            && let Some(i) = invitations.iter().find(|i| i.id == id)
        {
            doc["invitation_expires"] = json!(rfc3339(i.expires_at));
        }
        doc
    }

    /// Role holders' implicit `rw` on `/`.
    async fn role_rows(&self, c: &CollectionDoc) -> Result<Vec<Value>> {
        let mut rows = self.implicit_roles(Some(c)).await?;
        rows.extend(self.store.list_roles(Some(c.id)).await?);
        Ok(rows
            .iter()
            .filter(|r| matches!(r.role, RoleName::Administrator | RoleName::AccessManager))
            .filter_map(|r| {
                let (kind, id) = match RolePrincipal::parse(&r.principal)? {
                    RolePrincipal::Identity(id) => ("identity", id),
                    RolePrincipal::Group(id) => ("group", id),
                };
                Some(json!({
                    "DATA_TYPE": "access",
                    "id": null,
                    "role_id": r.id,
                    "role_type": r.role.as_str(),
                    "principal_type": kind,
                    "principal": id,
                    "path": "/",
                    "permissions": "rw",
                    "create_time": null,
                    "expiration_date": null,
                    "notify_email": null,
                    "notify_message": null,
                }))
            })
            .collect())
    }

    /// `GET /v0.10/endpoint/{id}/access_list`: role-derived rows, then the rules.
    pub async fn access_list(&self, who: &Requester, collection: Uuid) -> Result<Vec<Value>> {
        let c = self.permission_target(who, collection).await?;
        let invitations = self.store.list_invitations(c.id).await?;
        let mut out = self.role_rows(&c).await?;
        out.extend(
            self.store
                .list_acl_rules(c.id)
                .await?
                .iter()
                .map(|r| self.rule_doc(r, &invitations)),
        );
        Ok(out)
    }

    async fn rule_of(&self, c: &CollectionDoc, rule: Uuid) -> Result<AclRule> {
        match self.store.get_acl_rule(rule).await? {
            Some(r) if r.collection_id == c.id => Ok(r),
            _ => Err(EndpointError::NotFound(format!(
                "no access rule {rule} on {}",
                c.id
            ))),
        }
    }

    pub async fn get_access(&self, who: &Requester, collection: Uuid, rule: Uuid) -> Result<Value> {
        let c = self.permission_target(who, collection).await?;
        let r = self.rule_of(&c, rule).await?;
        Ok(self.rule_doc(&r, &self.store.list_invitations(c.id).await?))
    }

    /// `POST /v0.10/endpoint/{id}/access`: returns the new rule's id.
    pub async fn create_access(
        &self,
        who: &Requester,
        collection: Uuid,
        request: Value,
    ) -> Result<Uuid> {
        let c = self.permission_target(who, collection).await?;
        let doc = object(request)?;
        check_fields(&doc, RULE_FIELDS)?;
        let now = self.now();
        let kind = text(&doc, "principal_type")?
            .ok_or_else(|| bad(format!("principal_type: required ({PRINCIPAL_TYPES})")))?;
        let principal_text = text(&doc, "principal")?.unwrap_or("").trim();
        let write = permissions(
            text(&doc, "permissions")?
                .ok_or_else(|| bad("permissions: required (\"r\" or \"rw\")"))?,
        )?;
        let (path, folder) = rule_path(text(&doc, "path")?.ok_or_else(|| bad("path: required"))?)?;
        let expires_at = expiration(text(&doc, "expiration_date")?, now)?;
        let notify = notify_email(text(&doc, "notify_email")?)?;
        let message = text(&doc, "notify_message")?.map(str::to_string);
        if message.as_ref().is_some_and(|m| m.chars().count() > 4096) {
            return Err(bad("notify_message: longer than 4096 characters"));
        }
        let mut invitation_email = None;
        let principal = match kind {
            "identity" | "group" => {
                let id = Uuid::parse_str(principal_text).map_err(|_| {
                    bad(format!("principal: {principal_text:?} is not an {kind} id"))
                })?;
                let known = if kind == "identity" {
                    self.identity(id).await?.is_some()
                } else {
                    self.group_known(id).await?
                };
                if !known {
                    return Err(bad(format!("principal: no {kind} {id}")));
                }
                if kind == "identity" {
                    AclPrincipal::Identity(id)
                } else {
                    AclPrincipal::Group(id)
                }
            }
            "all_authenticated_users" | "anonymous" => {
                if !principal_text.is_empty() {
                    return Err(bad(format!(
                        "principal: must be \"\" for principal_type {kind}"
                    )));
                }
                if kind == "anonymous" {
                    AclPrincipal::Anonymous
                } else {
                    AclPrincipal::AllAuthenticatedUsers
                }
            }
            "invitation" => {
                ferry_mail::mailbox(principal_text).map_err(|e| bad(format!("principal: {e}")))?;
                invitation_email = Some(principal_text.to_string());
                AclPrincipal::Invitation(Uuid::new_v4())
            }
            other => {
                return Err(bad(format!(
                    "principal_type: {other:?} is not one of {PRINCIPAL_TYPES}"
                )));
            }
        };
        self.check_anonymous_writes(&c, principal, write).await?;
        if (notify.is_some() || invitation_email.is_some()) && self.settings.mailer.is_none() {
            return Err(bad(
                "this server sends no e-mail ([smtp] is not configured): drop notify_email, or ask the administrator",
            ));
        }
        let full = || {
            bad(format!(
                "a guest collection has at most {MAX_RULES} permissions; delete some first"
            ))
        };
        let rule = AclRule {
            id: Uuid::new_v4(),
            collection_id: c.id,
            principal,
            path,
            folder,
            write,
            expires_at,
            created: now,
            notify_email: notify.clone(),
            notify_message: message.clone(),
        };
        let mode = if write { "read-write" } else { "read" };
        match (principal, invitation_email) {
            (AclPrincipal::Invitation(id), Some(email)) => {
                let (code, code_hash) = new_code();
                let invitation = Invitation {
                    id,
                    collection_id: c.id,
                    rule_id: rule.id,
                    email: email.clone(),
                    code_hash,
                    invited_by: who.identity.id,
                    created: now,
                    expires_at: now + self.settings.invitation_lifetime_secs,
                    redeemed_by: None,
                    redeemed_at: None,
                };
                if !self
                    .store
                    .create_acl_rule_within(&rule, Some(&invitation), MAX_RULES)
                    .await?
                {
                    return Err(full());
                }
                let body = format!(
                    "{inviter} invited you to {mode} access to {path} on \"{name}\", a collection served by Ferry at {base}.\n\n\
                     To accept, open this link and sign in, with your organization's account (you need no account\n\
                     here beforehand: the first sign-in makes it) or any account you already use with this server:\n\n  {base}/invitation?code={code}\n\n\
                     or run:  ferry invite redeem {code}\n\n\
                     The code works once and expires on {expires}. If you did not expect this, ignore this message.\n{note}",
                    inviter = if who.identity.name.is_empty()
                        || who.identity.name == who.identity.username
                    {
                        who.identity.username.clone()
                    } else {
                        format!("{} ({})", who.identity.name, who.identity.username)
                    },
                    path = rule.wire_path(),
                    name = c.display_name,
                    base = self.settings.base_url,
                    expires = rfc3339(invitation.expires_at),
                    note = message
                        .map(|m| format!("\nMessage from {}:\n{m}\n", who.identity.username))
                        .unwrap_or_default(),
                );
                if let Err(e) = self
                    .send_mail(&email, "You are invited to shared data", &body)
                    .await
                {
                    // Nothing stays behind for an invitation nobody received.
                    let _ = self.store.delete_acl_rule(rule.id).await;
                    return Err(e);
                }
            }
            _ => {
                // Counted and stored in one step: parallel creates cannot pass the limit together.
                if !self
                    .store
                    .create_acl_rule_within(&rule, None, MAX_RULES)
                    .await?
                {
                    return Err(full());
                }
                if let Some(to) = &notify {
                    let body = format!(
                        "{who} gave you {mode} access to {path} on \"{name}\" ({base}/data/{id}{path}).\n{note}",
                        who = who.identity.username,
                        path = rule.wire_path(),
                        name = c.display_name,
                        base = self.settings.base_url,
                        id = c.id,
                        note = message
                            .map(|m| format!("\nMessage:\n{m}\n"))
                            .unwrap_or_default(),
                    );
                    // The permission stands even if the courtesy e-mail fails; the log says so.
                    if let Err(e) = self.send_mail(to, "Data was shared with you", &body).await {
                        tracing::warn!(rule = %rule.id, "the notification e-mail was not sent: {e}");
                    }
                }
            }
        }
        self.changed();
        self.record(
            who,
            "access.create",
            Some(c.id),
            format!(
                "{} {} {} {}",
                rule.id,
                rule.principal.type_str(),
                rule.wire_path(),
                if write { "rw" } else { "r" }
            ),
        )
        .await;
        Ok(rule.id)
    }

    /// Anonymous `rw` is refused where the mapped collection disables anonymous writes.
    async fn check_anonymous_writes(
        &self,
        c: &CollectionDoc,
        principal: AclPrincipal,
        write: bool,
    ) -> Result<()> {
        if principal != AclPrincipal::Anonymous || !write {
            return Ok(());
        }
        let mapped = match c.mapped_collection_id {
            Some(m) => self.store.get_collection(m).await?,
            None => None,
        };
        if mapped.is_some_and(|m| m.disable_anonymous_writes) {
            return Err(bad(
                "permissions: the mapped collection disables anonymous writes; anonymous users may only read",
            ));
        }
        Ok(())
    }

    async fn send_mail(&self, to: &str, subject: &str, body: &str) -> Result<()> {
        let Some(m) = &self.settings.mailer else {
            return Err(bad(
                "this server sends no e-mail ([smtp] is not configured)",
            ));
        };
        m.send(to, subject, body)
            .await
            .map_err(|e| EndpointError::Unavailable(e.to_string()))
    }

    /// `PUT /v0.10/endpoint/{id}/access/{rule}`: permissions and expiry change; who and where do not.
    pub async fn update_access(
        &self,
        who: &Requester,
        collection: Uuid,
        rule: Uuid,
        request: Value,
    ) -> Result<()> {
        let c = self.permission_target(who, collection).await?;
        let mut r = self.rule_of(&c, rule).await?;
        let doc = object(request)?;
        check_fields(&doc, RULE_FIELDS)?;
        if let Some(t) = text(&doc, "principal_type")?
            && t != r.principal.type_str()
        {
            return Err(bad(
                "principal_type: cannot be changed; delete the rule and create another",
            ));
        }
        if let Some(p) = text(&doc, "principal")?
            && !matches!(r.principal, AclPrincipal::Invitation(_))
            && p != r.principal.id_str()
        {
            return Err(bad(
                "principal: cannot be changed; delete the rule and create another",
            ));
        }
        if let Some(p) = text(&doc, "path")?
            && rule_path(p)?.0 != r.path
        {
            return Err(bad(
                "path: cannot be changed; delete the rule and create another",
            ));
        }
        if let Some(p) = text(&doc, "permissions")? {
            r.write = permissions(p)?;
        }
        if doc.contains_key("expiration_date") {
            r.expires_at = expiration(text(&doc, "expiration_date")?, self.now())?;
        }
        if doc.contains_key("notify_email") {
            r.notify_email = notify_email(text(&doc, "notify_email")?)?;
        }
        if doc.contains_key("notify_message") {
            r.notify_message = text(&doc, "notify_message")?.map(str::to_string);
        }
        self.check_anonymous_writes(&c, r.principal, r.write)
            .await?;
        self.store.update_acl_rule(&r).await?;
        self.changed();
        self.record(
            who,
            "access.update",
            Some(c.id),
            format!("{} {}", r.id, if r.write { "rw" } else { "r" }),
        )
        .await;
        Ok(())
    }

    pub async fn delete_access(&self, who: &Requester, collection: Uuid, rule: Uuid) -> Result<()> {
        let c = self.permission_target(who, collection).await?;
        let r = self.rule_of(&c, rule).await?;
        self.store.delete_acl_rule(r.id).await?;
        self.changed();
        self.record(who, "access.delete", Some(c.id), r.id.to_string())
            .await;
        Ok(())
    }

    /// The invitations of a guest collection (for those who manage its permissions).
    pub async fn invitations(&self, who: &Requester, collection: Uuid) -> Result<Vec<Value>> {
        let c = self.permission_target(who, collection).await?;
        Ok(self
            .store
            .list_invitations(c.id)
            .await?
            .iter()
            .map(|i| {
                json!({
                    "DATA_TYPE": "invitation",
                    "id": i.id,
                    "email": i.email,
                    "access_id": i.rule_id,
                    "invited_by": i.invited_by,
                    "created": rfc3339(i.created),
                    "expires": rfc3339(i.expires_at),
                    "redeemed": i.redeemed_by.is_some(),
                    "redeemed_by": i.redeemed_by,
                    "redeemed_at": i.redeemed_at.map(rfc3339),
                })
            })
            .collect())
    }

    /// Redeems an invitation code: its permission is bound to `who`. A code works once and not after it expires.
    pub async fn redeem_invitation(&self, who: &Requester, code: &str) -> Result<Value> {
        let gone = || {
            EndpointError::NotFound(
                "no such invitation: the code is wrong, or the invitation was withdrawn".into(),
            )
        };
        let inv = self
            .store
            .find_invitation(&hash_code(code))
            .await?
            .ok_or_else(gone)?;
        let now = self.now();
        if inv.redeemed_by.is_some() {
            return Err(EndpointError::Conflict(
                "this invitation has already been redeemed".into(),
            ));
        }
        if inv.expires_at <= now {
            return Err(bad(format!(
                "this invitation expired on {}; ask for a new one",
                rfc3339(inv.expires_at)
            )));
        }
        if !self
            .store
            .claim_invitation(inv.id, who.identity.id, now)
            .await?
        {
            return Err(EndpointError::Conflict(
                "this invitation has already been redeemed".into(),
            ));
        }
        let mut rule = self
            .store
            .get_acl_rule(inv.rule_id)
            .await?
            .ok_or_else(gone)?;
        let pending_id = rule.id;
        rule.principal = AclPrincipal::Identity(who.identity.id);
        let bound = match self.store.update_acl_rule(&rule).await {
            Ok(()) => rule,
            // The person already holds a rule on this path: keep that one, raised to the invitation's rights.
            Err(ferry_store::StoreError::Conflict(_)) => {
                let mut held = self
                    .store
                    .list_acl_rules(inv.collection_id)
                    .await?
                    .into_iter()
                    .find(|r| r.principal == rule.principal && r.path == rule.path)
                    .ok_or_else(gone)?;
                if rule.write && !held.write {
                    held.write = true;
                    self.store.update_acl_rule(&held).await?;
                }
                self.store.delete_acl_rule(pending_id).await?;
                held
            }
            Err(e) => return Err(e.into()),
        };
        self.changed();
        self.record(
            who,
            "invitation.redeem",
            Some(inv.collection_id),
            format!("{} {}", inv.id, bound.id),
        )
        .await;
        let c = self.collection(inv.collection_id).await?;
        Ok(json!({
            "DATA_TYPE": "invitation_redeemed",
            "collection_id": c.id,
            "collection_display_name": c.display_name,
            "access_id": bound.id,
            "path": bound.wire_path(),
            "permissions": if bound.write { "rw" } else { "r" },
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documents_are_checked() {
        assert_eq!(rule_path("/a/b/").unwrap(), ("/a/b".into(), true));
        assert_eq!(rule_path("/a/f.txt").unwrap(), ("/a/f.txt".into(), false));
        assert_eq!(rule_path("/").unwrap(), ("/".into(), true));
        assert!(rule_path("a/").is_err());
        assert!(rule_path("/a/../b/").is_err());
        assert!(permissions("r").is_ok() && permissions("rw").is_ok());
        assert!(permissions("w").is_err());
        assert!(expiration(Some("2000-01-01T00:00:00Z"), 1_000_000_000).is_err());
        assert_eq!(
            expiration(Some("2100-01-01"), 1_000_000_000).unwrap(),
            Some(4_102_444_800)
        );
        assert!(expiration(Some("soon"), 0).is_err());
        assert_eq!(expiration(None, 0).unwrap(), None);
        let m = object(json!({"DATA_TYPE": "access", "principal_type": "identity", "color": 1}))
            .unwrap();
        assert!(
            check_fields(&m, &["principal_type"])
                .unwrap_err()
                .to_string()
                .contains("color")
        );
        let m = object(json!({"DATA_TYPE": "role"})).unwrap();
        assert!(check_fields(&m, &[]).is_err());
    }

    #[test]
    fn codes_are_random_and_stored_hashed() {
        let (a, ha) = new_code();
        let (b, _) = new_code();
        assert_ne!(a, b);
        assert_eq!(a.len(), 64);
        assert_eq!(hash_code(&a), ha);
        assert_ne!(ha, a);
    }
}
