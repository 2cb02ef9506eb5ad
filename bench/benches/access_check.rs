//! The cost of one access check on a guest collection whose gateway has 100 restriction patterns and which has
//! 1,000 permissions: the work every `ls`, HTTPS request and transferred file pays before touching storage.

use criterion::{Criterion, criterion_group, criterion_main};
use ferry_core::access::{Account, Action, Caller, CollectionPolicy, PolicyInputs};
use ferry_core::acl::{AclPrincipal, AclRule};
use ferry_core::endpoint::{CollectionDoc, StorageGatewayDoc};
use serde_json::json;
use std::hint::black_box;
use uuid::Uuid;

/// 100 patterns of every kind: literals, `$USER`, brackets, `?` and `*`, over many top-level folders.
fn restrictions() -> serde_json::Value {
    let (mut none, mut read, mut rw) = (vec![], vec![], vec!["/".to_string()]);
    for i in 0..33 {
        rw.push(format!("/proj{i}/$USER"));
        read.push(format!("/proj{i}/shared/[a-m]*"));
        none.push(format!("/proj{i}/shared/secret?"));
    }
    none.push("/etc".into());
    assert_eq!(none.len() + read.len() + rw.len(), 101);
    rw.pop();
    json!({"none": none, "read": read, "read_write": rw})
}

fn setup() -> (CollectionPolicy, Uuid, Vec<Uuid>) {
    let mut gateway: StorageGatewayDoc =
        serde_json::from_value(json!({"display_name": "g", "restrict_paths": restrictions()}))
            .unwrap();
    gateway.id = Uuid::new_v4();
    let mut mapped: CollectionDoc = serde_json::from_value(json!({
        "collection_type": "mapped", "display_name": "m", "collection_base_path": "/",
        "allow_guest_collections": true,
        "sharing_restrict_paths": {"read_write": ["/proj7"], "none": ["/proj7/ana/private"]},
    }))
    .unwrap();
    mapped.id = Uuid::new_v4();
    let mut guest: CollectionDoc = serde_json::from_value(json!({
        "collection_type": "guest", "display_name": "g", "collection_base_path": "/proj7/ana",
    }))
    .unwrap();
    guest.id = Uuid::new_v4();
    guest.mapped_collection_id = Some(mapped.id);
    guest.identity_id = Some(Uuid::new_v4());
    // 1,000 permissions: per-user folders, group folders, a few collective ones.
    let caller = Uuid::new_v4();
    let groups: Vec<Uuid> = (0..5).map(|_| Uuid::new_v4()).collect();
    let mut rules = Vec::new();
    for i in 0..1000 {
        let principal = match i % 10 {
            0..=6 => AclPrincipal::Identity(if i == 775 { caller } else { Uuid::new_v4() }),
            7 | 8 => AclPrincipal::Group(if i == 888 { groups[2] } else { Uuid::new_v4() }),
            _ => AclPrincipal::AllAuthenticatedUsers,
        };
        rules.push(AclRule {
            id: Uuid::new_v4(),
            collection_id: guest.id,
            principal,
            path: format!("/run{}/job{}", i % 50, i),
            folder: true,
            write: i % 2 == 1,
            expires_at: (i % 3 == 0).then_some(i64::MAX),
            created: 0,
            notify_email: None,
            notify_message: None,
        });
    }
    let policy = CollectionPolicy::build(&PolicyInputs {
        collection: &guest,
        mapped: Some(&mapped),
        gateway: &gateway,
        account: Account {
            username: "ana",
            home: ferry_core::restrictions::Home::NoConcept,
        },
        sharing_policies: &[],
        acl_rules: &rules,
        roles: &[],
        guest_auth_policy: None,
    })
    .unwrap();
    (policy, caller, groups)
}

fn access_check(c: &mut Criterion) {
    let (policy, caller, groups) = setup();
    let who = Caller {
        identity: Some(caller),
        username: Some("bench@uni.edu"),
        groups: &groups,
        linked: &[],
        signed_in: ferry_core::access::SignedIn::NoSession,
    };
    // Allowed through the caller's own rule, four levels down.
    let mine = "/run25/job775/output/part-0001.h5";
    assert!(policy.check(&who, mine, Action::Write, 1).is_ok());
    // Allowed through a group rule.
    let group = "/run38/job888/in.dat";
    assert!(policy.check(&who, group, Action::Read, 1).is_ok());
    // Refused: no rule covers it (every layer before the permissions is evaluated first).
    let refused = "/run3/job3/x";
    assert!(policy.check(&who, refused, Action::Read, 1).is_err());
    let mut g = c.benchmark_group("access check (100 patterns, 1000 permissions)");
    for (name, path, action) in [
        ("allowed by the caller's rule", mine, Action::Write),
        ("allowed by a group rule", group, Action::Read),
        ("refused", refused, Action::Read),
    ] {
        g.bench_function(name, |b| {
            b.iter(|| {
                policy
                    .check(black_box(&who), black_box(path), action, 1)
                    .is_ok()
            })
        });
    }
    g.finish();
}

criterion_group!(benches, access_check);
criterion_main!(benches);
