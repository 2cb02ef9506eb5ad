//! Who holds which role, and what each role allows: the GCS role table, and nothing more.
//!
//! | capability | who |
//! |---|---|
//! | update the endpoint, manage storage gateways, see their private policies, create mapped collections | endpoint owner or administrator |
//! | manage endpoint roles | endpoint administrator |
//! | modify or delete a collection | its administrators (its owner is one), endpoint owner or administrator |
//! | manage a mapped collection's roles | its administrators, endpoint administrator |
//! | manage a guest collection's roles | its administrators (deleting: also the mapped collection's) |
//! | manage a guest collection's permissions | its administrators and access managers |
//! | see a private collection | anyone holding a role on it or on the endpoint |
//!
//! Endpoint administrators are administrators of every collection; endpoint activity managers and monitors are
//! the same on every collection. An administrator has the access manager's and activity manager's rights, and
//! an activity manager the monitor's.

use std::collections::BTreeSet;

use uuid::Uuid;

use crate::endpoint::{CollectionDoc, RoleDoc, RoleName, RolePrincipal};

/// The caller: an identity and the groups it is an active member of.
#[derive(Debug, Clone, Copy)]
pub struct Who<'a> {
    pub identity: Uuid,
    pub groups: &'a [Uuid],
    /// The other identities linked with this one: roles naming any of them are the caller's.
    pub linked: &'a [crate::Identity],
}

impl Who<'_> {
    pub fn is_identity(&self, id: Uuid) -> bool {
        id == self.identity || self.linked.iter().any(|i| i.id == id)
    }

    pub fn is(&self, principal: &str) -> bool {
        match RolePrincipal::parse(principal) {
            Some(RolePrincipal::Identity(id)) => self.is_identity(id),
            Some(RolePrincipal::Group(g)) => self.groups.contains(&g),
            None => false,
        }
    }
}

pub type Roles = BTreeSet<RoleName>;

fn implied(mut roles: Roles) -> Roles {
    if roles.contains(&RoleName::Administrator) {
        roles.extend([RoleName::AccessManager, RoleName::ActivityManager]);
    }
    if roles.contains(&RoleName::ActivityManager) {
        roles.insert(RoleName::ActivityMonitor);
    }
    roles
}

/// The caller's roles on the endpoint.
pub fn endpoint_roles(who: Who, owner: Option<Uuid>, rows: &[RoleDoc]) -> Roles {
    let mut r: Roles = rows
        .iter()
        .filter(|row| row.collection.is_none() && who.is(&row.principal))
        .map(|row| row.role)
        .collect();
    if owner.is_some_and(|o| who.is_identity(o)) {
        r.insert(RoleName::Owner);
    }
    implied(r)
}

/// The caller's roles on a collection, given their endpoint roles.
pub fn collection_roles(
    who: Who,
    endpoint: &Roles,
    collection: &CollectionDoc,
    rows: &[RoleDoc],
) -> Roles {
    let mut r: Roles = rows
        .iter()
        .filter(|row| row.collection == Some(collection.id) && who.is(&row.principal))
        .map(|row| row.role)
        .collect();
    if collection.identity_id.is_some_and(|o| who.is_identity(o)) {
        r.insert(RoleName::Administrator);
    }
    for inherited in [
        RoleName::Administrator,
        RoleName::ActivityManager,
        RoleName::ActivityMonitor,
    ] {
        if endpoint.contains(&inherited) {
            r.insert(inherited);
        }
    }
    implied(r)
}

pub fn manages_endpoint(endpoint: &Roles) -> bool {
    endpoint.contains(&RoleName::Owner) || endpoint.contains(&RoleName::Administrator)
}

pub fn manages_endpoint_roles(endpoint: &Roles) -> bool {
    endpoint.contains(&RoleName::Administrator)
}

pub fn modifies_collection(endpoint: &Roles, collection: &Roles) -> bool {
    manages_endpoint(endpoint) || collection.contains(&RoleName::Administrator)
}

pub fn manages_collection_roles(collection: &Roles) -> bool {
    collection.contains(&RoleName::Administrator)
}

pub fn manages_permissions(collection: &Roles) -> bool {
    collection.contains(&RoleName::AccessManager)
}

pub fn sees_collection(endpoint: &Roles, collection: &Roles, public: bool) -> bool {
    public || !endpoint.is_empty() || !collection.is_empty()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(collection: Option<Uuid>, principal: String, role: RoleName) -> RoleDoc {
        RoleDoc {
            data_type: "role#1.0.0".into(),
            id: Uuid::new_v4(),
            collection,
            principal,
            role,
        }
    }

    fn coll(owner: Uuid) -> CollectionDoc {
        let mut c: CollectionDoc = serde_json::from_value(serde_json::json!({
            "collection_type": "guest", "display_name": "g", "collection_base_path": "/"
        }))
        .unwrap();
        c.id = Uuid::new_v4();
        c.identity_id = Some(owner);
        c
    }

    #[test]
    fn the_role_table() {
        let (ana, bob, grp) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
        let groups = [grp];
        let ana_w = Who {
            identity: ana,
            groups: &[],
            linked: &[],
        };
        let bob_w = Who {
            identity: bob,
            groups: &groups,
            linked: &[],
        };
        let c = coll(ana);
        let rows = vec![
            row(
                None,
                format!("urn:globus:auth:group:{grp}"),
                RoleName::ActivityMonitor,
            ),
            row(
                Some(c.id),
                format!("urn:globus:auth:identity:{bob}"),
                RoleName::AccessManager,
            ),
        ];
        // Owner of the endpoint: manages it, but not its role assignments.
        let ep_owner = endpoint_roles(ana_w, Some(ana), &rows);
        assert!(manages_endpoint(&ep_owner) && !manages_endpoint_roles(&ep_owner));
        // Bob, a group member with an endpoint monitor role and a collection access manager role.
        let ep_bob = endpoint_roles(bob_w, Some(ana), &rows);
        assert_eq!(ep_bob, Roles::from([RoleName::ActivityMonitor]));
        let c_bob = collection_roles(bob_w, &ep_bob, &c, &rows);
        assert!(manages_permissions(&c_bob));
        assert!(!modifies_collection(&ep_bob, &c_bob));
        assert!(!manages_collection_roles(&c_bob));
        assert!(sees_collection(&ep_bob, &c_bob, false));
        // The collection's owner administers it, with everything that implies.
        let c_ana = collection_roles(ana_w, &Roles::new(), &c, &rows);
        assert!(manages_collection_roles(&c_ana) && manages_permissions(&c_ana));
        assert!(c_ana.contains(&RoleName::ActivityMonitor));
        // A stranger holds nothing and sees only public collections.
        let s = Who {
            identity: Uuid::new_v4(),
            groups: &[],
            linked: &[],
        };
        let ep_s = endpoint_roles(s, Some(ana), &rows);
        let c_s = collection_roles(s, &ep_s, &c, &rows);
        assert!(
            c_s.is_empty()
                && !sees_collection(&ep_s, &c_s, false)
                && sees_collection(&ep_s, &c_s, true)
        );
        // Signed in as another identity linked with Bob's: Bob's roles are the caller's; so is ownership.
        let bobs = [crate::Identity {
            id: bob,
            username: "bob@uni.example".into(),
            name: "Bob".into(),
            email: None,
            organization: None,
            kind: crate::IdentityKind::Person,
            created: 0,
            identity_provider: None,
        }];
        let linked = Who {
            identity: Uuid::new_v4(),
            groups: &[],
            linked: &bobs,
        };
        let c_linked = collection_roles(linked, &Roles::new(), &c, &rows);
        assert!(manages_permissions(&c_linked));
        let mut owned = c.clone();
        owned.identity_id = Some(bob);
        assert!(manages_collection_roles(&collection_roles(
            linked,
            &Roles::new(),
            &owned,
            &rows
        )));
        // Endpoint administrators administer every collection.
        let admin = Uuid::new_v4();
        let rows2 = vec![row(
            None,
            format!("urn:globus:auth:identity:{admin}"),
            RoleName::Administrator,
        )];
        let a = Who {
            identity: admin,
            groups: &[],
            linked: &[],
        };
        let ep_a = endpoint_roles(a, Some(ana), &rows2);
        assert!(manages_endpoint_roles(&ep_a));
        assert!(manages_collection_roles(&collection_roles(
            a, &ep_a, &c, &rows2
        )));
    }
}
