//! The behaviour every `Store` backend must show, as one suite: SQLite runs it in its unit tests, and the
//! PostgreSQL backend will run the same functions against a real server.

use ferry_core::{Group, GroupRole, Identity, IdentityKind, Membership, MembershipStatus};
use serde_json::json;
use uuid::Uuid;

use ferry_core::acl::{AclPrincipal, AclRule};
use ferry_core::endpoint::{CollectionDoc, RoleDoc, RoleName, StorageGatewayDoc};

use crate::{
    AuditFilter, AuditRecord, CollectionFilter, ConsentRecord, GrantRecord, IssueOutcome,
    ScopeRecord, SecretKind, SecretRecord, Store, StoreError, UploadRecord,
};

fn person(name: &str) -> Identity {
    Identity {
        id: Uuid::new_v4(),
        username: format!("{name}@test.local"),
        name: name.into(),
        email: None,
        organization: None,
        kind: IdentityKind::Person,
        created: 1,
        identity_provider: None,
    }
}

fn secret(hash: &str, grant: Uuid, identity: Uuid) -> SecretRecord {
    SecretRecord {
        hash: hash.into(),
        kind: SecretKind::Refresh,
        grant_id: grant,
        client_id: None,
        identity_id: identity,
        resource_server: Some("rs".into()),
        scopes: "a b".into(),
        extra: json!({"k": 1}),
        issued_at: 10,
        expires_at: 100,
        used_at: None,
        revoked_at: None,
    }
}

/// Runs every check; panics with the name of the first that fails.
pub async fn run(store: &dyn Store) {
    store.ping().await.expect("the database answers");
    meta(store).await;
    identities(store).await;
    passwords(store).await;
    secrets(store).await;
    groups(store).await;
    endpoint(store).await;
    audit(store).await;
    auth_policies(store).await;
    tasks(store).await;
    leases(store).await;
    task_tally(store).await;
    webhook_deliveries(store).await;
    grants(store).await;
    consents_and_scopes(store).await;
    policy_inputs(store).await;
    sites(store).await;
    site_tasks(store).await;
    federation(store).await;
    uploads(store).await;
}

/// Uploads in progress: kept whole, their expiry moved, found once expired (oldest first, bounded), deleted once.
async fn uploads(store: &dyn Store) {
    let up = |expires: i64| UploadRecord {
        id: Uuid::new_v4(),
        owner: Uuid::new_v4(),
        collection: Uuid::new_v4(),
        path: "/data/big ü.bin".into(),
        gateway: Uuid::new_v4(),
        storage_path: "/srv/data/big ü.bin".into(),
        // Beyond 32 bits: a 1 TiB file.
        length: 1 << 40,
        created: 100,
        expires,
    };
    let (a, b, c) = (up(200), up(300), up(400));
    for u in [&a, &b, &c] {
        store.create_upload(u).await.unwrap();
    }
    assert!(store.create_upload(&a).await.is_err(), "one record per id");
    assert_eq!(store.get_upload(a.id).await.unwrap(), Some(a.clone()));
    assert_eq!(store.get_upload(Uuid::new_v4()).await.unwrap(), None);
    let expired = |now, limit| async move {
        store
            .list_expired_uploads(now, limit)
            .await
            .unwrap()
            .into_iter()
            .map(|u| u.id)
            .filter(|id| [a.id, b.id, c.id].contains(id))
            .collect::<Vec<_>>()
    };
    assert_eq!(expired(199, 10).await, Vec::<Uuid>::new());
    assert_eq!(
        expired(300, 10).await,
        vec![a.id, b.id],
        "expiry is inclusive"
    );
    // Activity moves the expiry.
    assert!(store.touch_upload(a.id, 500).await.unwrap());
    assert!(!store.touch_upload(Uuid::new_v4(), 500).await.unwrap());
    assert_eq!(store.get_upload(a.id).await.unwrap().unwrap().expires, 500);
    assert_eq!(expired(450, 10).await, vec![b.id, c.id]);
    assert_eq!(
        store.list_expired_uploads(i64::MAX, 1).await.unwrap().len(),
        1,
        "the limit holds"
    );
    assert!(store.delete_upload(b.id).await.unwrap());
    assert!(!store.delete_upload(b.id).await.unwrap());
    assert_eq!(store.get_upload(b.id).await.unwrap(), None);
    assert_eq!(expired(i64::MAX, 10).await, vec![c.id, a.id]);
    // A length no storage holds is refused, not wrapped.
    let mut huge = up(1);
    huge.length = u64::MAX;
    assert!(store.create_upload(&huge).await.is_err());
    assert_eq!(store.get_upload(huge.id).await.unwrap(), None);
    for u in [&a, &c] {
        store.delete_upload(u.id).await.unwrap();
    }
}

/// Tasks between endpoints: the hub's record of a task an endpoint runs is never claimed here and takes only
/// that endpoint's reports, until it ends; the endpoint reports its hub tasks until the end is acknowledged.
/// Sign-ins through providers, linked sets, and sign-ins waiting for a provider.
async fn federation(store: &dyn Store) {
    let provider = Uuid::new_v4();
    let mut fresh = person("fed-ana");
    fresh.email = Some("ana@uni.example".into());
    let first = store
        .sign_in_external(provider, "sub-1", &fresh)
        .await
        .unwrap();
    assert!(first.created);
    assert_eq!(first.identity.identity_provider, Some(provider));
    assert_eq!(
        store
            .get_identity(fresh.id)
            .await
            .unwrap()
            .unwrap()
            .identity_provider,
        Some(provider)
    );
    // Again: found by subject, whatever the new fields say; the username stays.
    let mut renamed = person("fed-someone-else");
    renamed.name = "Ana B.".into();
    let again = store
        .sign_in_external(provider, "sub-1", &renamed)
        .await
        .unwrap();
    assert!(!again.created);
    assert_eq!(again.identity.id, fresh.id);
    assert_eq!(again.identity.username, fresh.username);
    assert_eq!(again.identity.name, "Ana B.");
    assert_eq!(
        store.external_subject(fresh.id).await.unwrap(),
        Some((provider, "sub-1".to_string()))
    );
    // Another subject claiming a taken username makes nothing.
    let mut squatter = person("fed-ana");
    squatter.id = Uuid::new_v4();
    assert!(matches!(
        store.sign_in_external(provider, "sub-2", &squatter).await,
        Err(StoreError::Conflict(_))
    ));
    assert!(store.get_identity(squatter.id).await.unwrap().is_none());
    // The same subject at another provider is someone else.
    let other = store
        .sign_in_external(Uuid::new_v4(), "sub-1", &person("fed-ana2"))
        .await
        .unwrap();
    assert!(other.created);

    // Linked sets.
    let (a, b, c) = (person("link-a"), person("link-b"), person("link-c"));
    for i in [&a, &b, &c] {
        store.create_identity(i, None).await.unwrap();
    }
    let ids = |set: Vec<Identity>| set.into_iter().map(|i| i.id).collect::<Vec<_>>();
    assert_eq!(ids(store.identity_set(a.id).await.unwrap()), vec![a.id]);
    assert!(store.identity_set(Uuid::new_v4()).await.unwrap().is_empty());
    store.link_identity(a.id, b.id, 10).await.unwrap();
    assert_eq!(
        ids(store.identity_set(b.id).await.unwrap()),
        vec![a.id, b.id]
    );
    // Linking again, or from the other side, changes nothing.
    store.link_identity(b.id, a.id, 11).await.unwrap();
    assert_eq!(
        ids(store.identity_set(a.id).await.unwrap()),
        vec![a.id, b.id]
    );
    // c with a set of its own joins a's set with its members.
    let d = person("link-d");
    store.create_identity(&d, None).await.unwrap();
    store.link_identity(c.id, d.id, 12).await.unwrap();
    store.link_identity(b.id, d.id, 13).await.unwrap();
    assert_eq!(
        ids(store.identity_set(d.id).await.unwrap()),
        vec![a.id, b.id, c.id, d.id]
    );
    assert!(store.link_identity(a.id, a.id, 14).await.is_err());
    // The primary leaves: the longest-linked member takes over.
    store.unlink_identity(a.id).await.unwrap();
    assert_eq!(ids(store.identity_set(a.id).await.unwrap()), vec![a.id]);
    let rest = ids(store.identity_set(c.id).await.unwrap());
    assert_eq!(rest.len(), 3);
    assert!(!rest.contains(&a.id));
    // Down to one: no set is left.
    store.unlink_identity(rest[1]).await.unwrap();
    store.unlink_identity(rest[2]).await.unwrap();
    assert_eq!(
        ids(store.identity_set(rest[0]).await.unwrap()),
        vec![rest[0]]
    );
    // Deleting a member takes it out of its set.
    store.link_identity(b.id, c.id, 15).await.unwrap();
    store.delete_identity(c.id).await.unwrap();
    assert_eq!(ids(store.identity_set(b.id).await.unwrap()), vec![b.id]);

    // Waiting sign-ins: taken once, never after expiry, and no more than the limit at once.
    let keep = |hash: &'static str, expires: i64, now: i64| async move {
        store
            .insert_upstream_login(hash, "uni", "{}", expires, now, 2)
            .await
            .unwrap()
    };
    assert!(keep("st-1", 100, 0).await);
    assert!(keep("st-2", 100, 0).await);
    assert!(!keep("st-3", 100, 0).await, "over the limit");
    assert_eq!(store.take_upstream_login("st-3", 50).await.unwrap(), None);
    assert_eq!(
        store.take_upstream_login("st-1", 50).await.unwrap(),
        Some(("uni".to_string(), "{}".to_string()))
    );
    assert_eq!(store.take_upstream_login("st-1", 50).await.unwrap(), None);
    assert_eq!(store.take_upstream_login("st-2", 100).await.unwrap(), None);
    // Expired ones make room.
    assert!(keep("st-4", 300, 200).await);
    assert!(keep("st-5", 300, 200).await);
}

async fn site_tasks(store: &dyn Store) {
    use crate::tasks::*;
    let runner = Uuid::new_v4();
    let row = |runner: Option<Uuid>, reports_to_hub: bool| TaskRow {
        id: Uuid::new_v4(),
        kind: TaskKind::Transfer,
        owner: Uuid::new_v4(),
        submission_id: "site".into(),
        status: TaskStatus::Active,
        label: None,
        source_collection: Uuid::new_v4(),
        dest_collection: Some(Uuid::new_v4()),
        options: json!({}),
        request_time: 100,
        completion_time: None,
        deadline: Some(10_000),
        run_after: 0,
        nice_status: Some("Queued".into()),
        nice_status_details: None,
        fatal_error: None,
        counters: TaskCounters::default(),
        runner,
        reports_to_hub,
    };
    // The hub's record.
    let record = row(Some(runner), false);
    store.create_task(&record, &[]).await.unwrap();
    assert_eq!(store.get_task(record.id).await.unwrap().unwrap(), record);
    assert!(
        store.claim_task("hub", 200, 30).await.unwrap().is_none(),
        "an endpoint's task is not claimed at the hub"
    );
    let mut report = record.clone();
    report.counters.files_transferred = 7;
    let counts = ItemCounts {
        total: 9,
        done: 7,
        pending: 2,
        ..Default::default()
    };
    report.nice_status = Some("OK".into());
    assert!(
        !store
            .record_task_report(Uuid::new_v4(), &report, &counts)
            .await
            .unwrap(),
        "another endpoint's report"
    );
    assert!(
        store
            .record_task_report(runner, &report, &counts)
            .await
            .unwrap()
    );
    let got = store.get_task(record.id).await.unwrap().unwrap();
    assert_eq!(got.counters.files_transferred, 7);
    assert_eq!(
        store.reported_items(record.id).await.unwrap(),
        Some(counts.clone())
    );
    report.status = TaskStatus::Succeeded;
    report.completion_time = Some(300);
    assert!(
        store
            .record_task_report(runner, &report, &counts)
            .await
            .unwrap()
    );
    report.status = TaskStatus::Failed;
    assert!(
        !store
            .record_task_report(runner, &report, &counts)
            .await
            .unwrap(),
        "an ended record stays as it ended"
    );
    store.delete_task(record.id).await.unwrap();
    assert!(store.get_task(record.id).await.unwrap().is_none());
    // An endpoint that leaves ends the records of the tasks it was running.
    let site = crate::Site {
        id: runner,
        owner: Uuid::new_v4(),
        public_url: "https://gone.example.org".into(),
        display_name: "Gone".into(),
        version: 0,
        reported_at: None,
        created: 1,
    };
    store.create_site(&site).await.unwrap();
    let running = row(Some(runner), false);
    store.create_task(&running, &[]).await.unwrap();
    store.delete_site(runner, 900).await.unwrap();
    let ended = store.get_task(running.id).await.unwrap().unwrap();
    assert_eq!(ended.status, TaskStatus::Failed);
    assert_eq!(ended.completion_time, Some(900));
    assert_eq!(ended.fatal_error.unwrap()["code"], "ENDPOINT_NOT_FOUND");
    store.delete_task(running.id).await.unwrap();

    // The endpoint's side.
    let from_hub = row(None, true);
    store.create_task(&from_hub, &[]).await.unwrap();
    let due = store.tasks_to_report(10).await.unwrap();
    assert_eq!(due.iter().map(|t| t.id).collect::<Vec<_>>(), [from_hub.id]);
    assert!(due[0].reports_to_hub);
    store.reports_acknowledged(&[from_hub.id]).await.unwrap();
    assert_eq!(
        store.tasks_to_report(10).await.unwrap().len(),
        1,
        "a running task stays to report"
    );
    let done = StatusChange {
        status: TaskStatus::Succeeded,
        nice_status: None,
        nice_status_details: None,
        fatal_error: None,
        completion_time: Some(400),
    };
    assert!(
        store
            .set_task_status(from_hub.id, &done, None)
            .await
            .unwrap()
    );
    store.reports_acknowledged(&[from_hub.id]).await.unwrap();
    assert!(store.tasks_to_report(10).await.unwrap().is_empty());
    store.delete_task(from_hub.id).await.unwrap();
}

/// A hub's endpoints: a report replaces what the endpoint holds in one step and counts up; a collection another
/// endpoint holds is a conflict that changes nothing; an endpoint's removal takes its collections. An
/// identity mirrored as it already is changes nothing (so compiled policies survive).
async fn sites(store: &dyn Store) {
    use crate::{Site, SiteCollection};
    let owner = Uuid::new_v4();
    let site = |name: &str| Site {
        id: Uuid::new_v4(),
        owner,
        public_url: format!("https://{name}.example.org"),
        display_name: name.into(),
        version: 0,
        reported_at: None,
        created: 5,
    };
    let (a, b) = (site("a"), site("b"));
    store.create_site(&a).await.unwrap();
    store.create_site(&b).await.unwrap();
    assert_eq!(store.get_site(a.id).await.unwrap(), Some(a.clone()));
    assert_eq!(store.list_sites().await.unwrap().len(), 2);
    let coll = |site: Uuid, name: &str| SiteCollection {
        id: Uuid::new_v4(),
        site,
        display_name: name.into(),
        kind: "mapped".into(),
    };
    let (c1, c2) = (coll(a.id, "one"), coll(a.id, "two"));
    let v1 = store
        .report_site(
            a.id,
            "https://a2.example.org",
            "A",
            &[c1.clone(), c2.clone()],
            9,
        )
        .await
        .unwrap();
    assert_eq!(v1, 1);
    let got = store.get_site(a.id).await.unwrap().unwrap();
    assert_eq!(
        (got.public_url.as_str(), got.reported_at),
        ("https://a2.example.org", Some(9))
    );
    assert_eq!(
        store.site_collections(a.id).await.unwrap(),
        vec![c1.clone(), c2.clone()]
    );
    assert_eq!(
        store.site_of(c2.id).await.unwrap().map(|s| s.id),
        Some(a.id)
    );
    assert_eq!(store.site_of(a.id).await.unwrap().map(|s| s.id), Some(a.id));
    assert_eq!(store.site_of(Uuid::new_v4()).await.unwrap(), None);
    // A collection of a's claimed by b: refused, and neither report changed.
    let stolen = SiteCollection {
        site: b.id,
        ..c1.clone()
    };
    assert!(matches!(
        store
            .report_site(b.id, &b.public_url, "B", &[stolen], 10)
            .await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(store.get_site(b.id).await.unwrap().unwrap().version, 0);
    assert_eq!(
        store.site_of(c1.id).await.unwrap().map(|s| s.id),
        Some(a.id)
    );
    // A later report replaces the earlier one.
    let v2 = store
        .report_site(
            a.id,
            "https://a2.example.org",
            "A",
            std::slice::from_ref(&c2),
            11,
        )
        .await
        .unwrap();
    assert_eq!(v2, 2);
    assert_eq!(
        store.site_collections(a.id).await.unwrap(),
        vec![c2.clone()]
    );
    assert_eq!(store.site_of(c1.id).await.unwrap(), None);
    assert!(matches!(
        store
            .report_site(Uuid::new_v4(), "https://x", "x", &[], 1)
            .await,
        Err(StoreError::NotFound)
    ));
    store.delete_site(a.id, 500).await.unwrap();
    assert_eq!(store.get_site(a.id).await.unwrap(), None);
    assert_eq!(store.site_of(c2.id).await.unwrap(), None);
    assert!(matches!(
        store.delete_site(a.id, 500).await,
        Err(StoreError::NotFound)
    ));

    let mut visitor = person("visitor");
    store.mirror_identity(&visitor).await.unwrap();
    assert_eq!(
        store.get_identity(visitor.id).await.unwrap(),
        Some(visitor.clone())
    );
    let g = store.policy_generation().await.unwrap();
    store.mirror_identity(&visitor).await.unwrap();
    assert_eq!(
        store.policy_generation().await.unwrap(),
        g,
        "nothing changed"
    );
    visitor.name = "Visitor Renamed".into();
    store.mirror_identity(&visitor).await.unwrap();
    assert_eq!(
        store.get_identity(visitor.id).await.unwrap().unwrap().name,
        "Visitor Renamed"
    );
    assert!(store.policy_generation().await.unwrap() > g);
}

/// Every change to what a policy is built from moves the generation forward; reads and unrelated writes do
/// not. A collection's rules are capped, counted and inserted in one step.
async fn policy_inputs(store: &dyn Store) {
    let g0 = store.policy_generation().await.unwrap();
    let mut gw: StorageGatewayDoc =
        serde_json::from_value(json!({"display_name": "posix"})).unwrap();
    gw.id = Uuid::new_v4();
    store.create_gateway(&gw).await.unwrap();
    let g1 = store.policy_generation().await.unwrap();
    assert!(g1 > g0, "a new gateway");
    let mapped = collection("mapped", gw.id, None);
    store.create_collection(&mapped).await.unwrap();
    let guest = collection("guest", gw.id, Some(mapped.id));
    store.create_collection(&guest).await.unwrap();
    store
        .list_collections(&CollectionFilter::default())
        .await
        .unwrap();
    store.meta_set("unrelated", "x").await.unwrap();
    let g2 = store.policy_generation().await.unwrap();
    assert!(g2 > g1, "new collections");
    assert_eq!(
        store.policy_generation().await.unwrap(),
        g2,
        "reads move nothing"
    );
    let rule = |i: usize| AclRule {
        id: Uuid::new_v4(),
        collection_id: guest.id,
        principal: AclPrincipal::AllAuthenticatedUsers,
        path: format!("/r{i}"),
        folder: true,
        write: false,
        expires_at: None,
        created: 5,
        notify_email: None,
        notify_message: None,
    };
    let first = rule(0);
    assert!(store.create_acl_rule_within(&first, None, 2).await.unwrap());
    let g3 = store.policy_generation().await.unwrap();
    assert!(g3 > g2, "a new rule");
    assert!(
        store
            .create_acl_rule_within(&rule(1), None, 2)
            .await
            .unwrap()
    );
    assert!(
        !store
            .create_acl_rule_within(&rule(2), None, 2)
            .await
            .unwrap(),
        "full"
    );
    assert_eq!(store.list_acl_rules(guest.id).await.unwrap().len(), 2);
    store.delete_acl_rule(first.id).await.unwrap();
    let g4 = store.policy_generation().await.unwrap();
    assert!(g4 > g3, "a deleted rule");
    let who = person("gen");
    store.create_identity(&who, None).await.unwrap();
    let g5 = store.policy_generation().await.unwrap();
    store.delete_identity(who.id).await.unwrap();
    assert!(
        store.policy_generation().await.unwrap() > g5,
        "a deleted identity"
    );
}

/// Tasks: one per owner and submission id, claimed by one worker at a time, leases that expire and are
/// released, items in order with outcomes and counters written together, events newest first.
async fn tasks(store: &dyn Store) {
    use crate::tasks::*;
    let owner = Uuid::new_v4();
    let task = task_row(owner, "s1", 100);
    let item = file_item;
    store
        .create_task(&task, &[item("/a"), item("/b")])
        .await
        .unwrap();
    let again = TaskRow {
        id: Uuid::new_v4(),
        ..task.clone()
    };
    assert!(matches!(
        store.create_task(&again, &[]).await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(
        store
            .find_task_by_submission(owner, "s1")
            .await
            .unwrap()
            .unwrap()
            .id,
        task.id
    );
    assert_eq!(store.get_task(task.id).await.unwrap().unwrap(), task);

    // One worker at a time; an expired lease can be taken over; a released one at once.
    let claimed = store.claim_task("n1/w1", 200, 30).await.unwrap().unwrap();
    assert_eq!(claimed.id, task.id);
    assert!(store.claim_task("n1/w2", 210, 30).await.unwrap().is_none());
    assert!(store.renew_lease(task.id, "n1/w1", 220, 30).await.unwrap());
    assert!(!store.renew_lease(task.id, "n1/w2", 220, 30).await.unwrap());
    assert_eq!(
        store
            .claim_task("n1/w2", 260, 30)
            .await
            .unwrap()
            .unwrap()
            .id,
        task.id
    );
    assert_eq!(store.release_node_leases("n").await.unwrap(), vec![]);
    let released = store.release_node_leases("n1").await.unwrap();
    assert_eq!(released, vec![(task.id, "n1/w2".to_string())]);
    store.release_lease(task.id, "nobody", 0).await.unwrap();
    assert!(store.claim_task("n2/w3", 270, 30).await.unwrap().is_some());
    store.release_lease(task.id, "n2/w3", 500).await.unwrap();
    assert!(
        store.claim_task("n2/w3", 400, 30).await.unwrap().is_none(),
        "not before run_after"
    );
    // The worker that writes below holds the lease.
    assert!(
        store
            .claim_task("n2/w4", 500, 1_000)
            .await
            .unwrap()
            .is_some()
    );
    let lease = Lease {
        worker: "n2/w4",
        now: 510,
    };

    // Items come in order, after a cursor; outcomes and counters land together.
    let pending = store
        .pending_items(task.id, &[ItemKind::File], 0, 10)
        .await
        .unwrap();
    assert_eq!(
        pending.iter().map(|i| i.src.as_str()).collect::<Vec<_>>(),
        ["/a", "/b"]
    );
    assert!(pending[0].seq >= 1 && pending[1].seq == pending[0].seq + 1);
    let done = done_outcome(pending[0].seq);
    let delta = TaskCounters {
        files_transferred: 1,
        bytes_transferred: 10,
        ..TaskCounters::default()
    };
    store
        .finish_items(task.id, std::slice::from_ref(&done), &delta, &lease)
        .await
        .unwrap();
    // The second file stands in for a listed folder: its outcome and the items found come in together.
    let listed = ItemOutcome {
        seq: pending[1].seq,
        checksum_algorithm: None,
        checksum: None,
        ..done.clone()
    };
    store
        .add_items(
            task.id,
            &[item("/c")],
            Some(&listed),
            &TaskCounters {
                files: 1,
                ..TaskCounters::default()
            },
            &lease,
        )
        .await
        .unwrap();
    let t = store.get_task(task.id).await.unwrap().unwrap();
    assert_eq!(
        (
            t.counters.files,
            t.counters.files_transferred,
            t.counters.bytes_transferred
        ),
        (1, 1, 10)
    );
    let ok = store
        .list_items(task.id, ItemState::Done, Some(ItemKind::File), 0, 10)
        .await
        .unwrap();
    assert_eq!(ok.len(), 2);
    assert_eq!(ok[0].checksum.as_deref(), Some("ab"));
    let counts = store.count_items(task.id).await.unwrap();
    assert_eq!((counts.total, counts.done, counts.pending), (3, 2, 1));
    assert_eq!(store.recheck_done_files(task.id).await.unwrap(), 2);
    assert_eq!(
        store
            .fail_pending_items(task.id, "CANCELED", 300, Some(&lease))
            .await
            .unwrap(),
        3
    );

    // A finished task's status no longer changes.
    let fail = cancelled(300);
    assert!(store.set_task_status(task.id, &fail, None).await.unwrap());
    assert!(
        !store
            .set_task_status(
                task.id,
                &StatusChange {
                    status: TaskStatus::Succeeded,
                    ..fail.clone()
                },
                Some(&lease)
            )
            .await
            .unwrap()
    );
    let (rows, total) = store
        .list_tasks(&TaskFilter {
            owner: Some(owner),
            statuses: vec![TaskStatus::Failed],
            labels: vec![LabelFilter::Contains("run".into())],
            limit: 10,
            ..TaskFilter::default()
        })
        .await
        .unwrap();
    assert_eq!((rows.len(), total), (1, 1));

    for code in ["STARTED", "FAILED"] {
        let e = TaskEvent {
            time: 1,
            code: code.into(),
            is_error: false,
            description: String::new(),
            details: String::new(),
        };
        store
            .add_task_event(task.id, &e, Some(&lease))
            .await
            .unwrap();
    }
    let (events, total) = store.list_task_events(task.id, 0, 10).await.unwrap();
    assert_eq!((events[0].code.as_str(), total), ("FAILED", 2));
}

/// A queued transfer task.
fn task_row(owner: Uuid, submission: &str, request_time: i64) -> crate::tasks::TaskRow {
    use crate::tasks::*;
    TaskRow {
        id: Uuid::new_v4(),
        kind: TaskKind::Transfer,
        owner,
        submission_id: submission.into(),
        status: TaskStatus::Active,
        label: Some("Run 42".into()),
        source_collection: Uuid::new_v4(),
        dest_collection: Some(Uuid::new_v4()),
        options: json!({"verify_checksum": true}),
        request_time,
        completion_time: None,
        deadline: Some(10_000),
        run_after: 0,
        nice_status: Some("Queued".into()),
        nice_status_details: None,
        fatal_error: None,
        counters: TaskCounters::default(),
        runner: None,
        reports_to_hub: false,
    }
}

/// A file of 10 bytes to copy to `/d<src>`.
fn file_item(src: &str) -> crate::tasks::NewItem {
    crate::tasks::NewItem {
        kind: crate::tasks::ItemKind::File,
        src: src.into(),
        dst: Some(format!("/d{src}")),
        recursive: false,
        size: Some(10),
        mtime: Some(5),
        checksum_algorithm: None,
        external_checksum: None,
        done_checksum: None,
    }
}

/// Item `seq` copied and verified.
fn done_outcome(seq: i64) -> crate::tasks::ItemOutcome {
    crate::tasks::ItemOutcome {
        seq,
        state: crate::tasks::ItemState::Done,
        attempts: 0,
        checksum_algorithm: Some("BLAKE3".into()),
        checksum: Some("ab".into()),
        error_code: None,
        error: None,
        error_time: None,
        progress: None,
    }
}

/// The owner's cancel at `time`.
fn cancelled(time: i64) -> crate::tasks::StatusChange {
    crate::tasks::StatusChange {
        status: crate::tasks::TaskStatus::Failed,
        nice_status: None,
        nice_status_details: None,
        fatal_error: Some(json!({"code": "CANCELED"})),
        completion_time: Some(time),
    }
}

/// Everything the store holds of a task: the row, its items in every state, its events (for tests that check
/// a write changed nothing).
pub async fn task_state(
    store: &dyn Store,
    id: Uuid,
) -> (
    crate::tasks::TaskRow,
    Vec<crate::tasks::ItemRow>,
    Vec<crate::tasks::TaskEvent>,
) {
    use crate::tasks::ItemState;
    let mut items = Vec::new();
    for state in [
        ItemState::Pending,
        ItemState::Done,
        ItemState::Skipped,
        ItemState::Failed,
    ] {
        items.extend(store.list_items(id, state, None, 0, 1_000).await.unwrap());
    }
    let (events, _) = store.list_task_events(id, 0, 1_000).await.unwrap();
    (store.get_task(id).await.unwrap().unwrap(), items, events)
}

/// Fenced writes: a worker writes for its task only while it holds an unexpired lease on it. Once the lease
/// expired (taken over by another worker or not), every write it makes fails with `LeaseLost` and changes
/// nothing; the owner's writes are not fenced. A starting node releases its own leases and no other node's.
async fn leases(store: &dyn Store) {
    use crate::tasks::*;
    let new_task =
        |submission: &str, request_time: i64| task_row(Uuid::new_v4(), submission, request_time);
    let file = file_item;
    let task = new_task("lease-1", 1_000);
    store
        .create_task(&task, &[file("/a"), file("/big"), file("/c")])
        .await
        .unwrap();
    let claimed = store
        .claim_task("na/old", 1_000, 30)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(claimed.id, task.id);
    let seqs: Vec<i64> = store
        .pending_items(task.id, &[ItemKind::File], 0, 10)
        .await
        .unwrap()
        .iter()
        .map(|i| i.seq)
        .collect();
    let outcome = done_outcome;
    let one = |bytes: i64| TaskCounters {
        files_transferred: 1,
        bytes_transferred: bytes,
        ..TaskCounters::default()
    };
    let event = |code: &str| TaskEvent {
        time: 1_000,
        code: code.into(),
        is_error: false,
        description: String::new(),
        details: String::new(),
    };
    let running = StatusChange {
        status: TaskStatus::Active,
        nice_status: Some("OK".into()),
        nice_status_details: None,
        fatal_error: None,
        completion_time: None,
    };

    // With the lease, every kind of write lands.
    let old = Lease {
        worker: "na/old",
        now: 1_010,
    };
    store
        .finish_items(task.id, &[outcome(seqs[0])], &one(100), &old)
        .await
        .unwrap();
    store
        .set_item_progress(task.id, seqs[1], "{\"ranges\":[]}", &one(0), &old)
        .await
        .unwrap();
    store
        .add_items(task.id, &[file("/d")], None, &one(0), &old)
        .await
        .unwrap();
    store
        .add_task_event(task.id, &event("STARTED"), Some(&old))
        .await
        .unwrap();
    assert!(
        store
            .set_task_status(task.id, &running, Some(&old))
            .await
            .unwrap()
    );
    // The last second of the lease still counts.
    let last = Lease { now: 1_030, ..old };
    store
        .add_task_event(task.id, &event("LAST"), Some(&last))
        .await
        .unwrap();
    let before = task_state(store, task.id).await;
    assert_eq!(before.0.counters.files_transferred, 3);
    assert_eq!(before.1.len(), 4);
    assert_eq!(
        before.1.iter().find(|i| i.seq == seqs[1]).unwrap().progress,
        Some("{\"ranges\":[]}".into())
    );

    // Every fenced write of `lease` fails with LeaseLost, and the task is as it was.
    let refused = |lease: Lease<'static>| {
        let (task, seqs) = (task.clone(), seqs.clone());
        let (outcome, one, event, running) = (&outcome, &one, &event, &running);
        async move {
            let lost = |r: Result<(), StoreError>, what: &str| {
                assert!(
                    matches!(r, Err(StoreError::LeaseLost)),
                    "{what} by {} at {}: {r:?}",
                    lease.worker,
                    lease.now
                );
            };
            lost(
                store
                    .finish_items(task.id, &[outcome(seqs[2])], &one(100), &lease)
                    .await,
                "finish_items",
            );
            lost(
                store
                    .set_item_progress(task.id, seqs[1], "{}", &one(50), &lease)
                    .await,
                "set_item_progress",
            );
            lost(
                store
                    .add_items(
                        task.id,
                        &[file("/e")],
                        Some(&outcome(seqs[2])),
                        &one(1),
                        &lease,
                    )
                    .await,
                "add_items",
            );
            lost(
                store
                    .add_task_event(task.id, &event("STALE"), Some(&lease))
                    .await,
                "add_task_event",
            );
            lost(
                store
                    .fail_pending_items(task.id, "STALE", lease.now, Some(&lease))
                    .await
                    .map(|_| ()),
                "fail_pending_items",
            );
            let done = StatusChange {
                status: TaskStatus::Succeeded,
                completion_time: Some(lease.now),
                ..running.clone()
            };
            lost(
                store
                    .set_task_status(task.id, &done, Some(&lease))
                    .await
                    .map(|_| ()),
                "set_task_status",
            );
        }
    };

    // The lease expired and nobody claimed the task yet: the old worker can no longer write.
    refused(Lease {
        worker: "na/old",
        now: 1_031,
    })
    .await;
    assert_eq!(task_state(store, task.id).await, before);

    // Another worker claimed it: the old worker's writes still change nothing, the new worker's land.
    let taken = store
        .claim_task("nb/new", 1_040, 30)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(taken.id, task.id);
    refused(Lease {
        worker: "na/old",
        now: 1_041,
    })
    .await;
    // A worker that never held the lease either.
    refused(Lease {
        worker: "nb/other",
        now: 1_041,
    })
    .await;
    let after_claim = task_state(store, task.id).await;
    assert_eq!((&after_claim.1, &after_claim.2), (&before.1, &before.2));
    assert_eq!(after_claim.0.counters, before.0.counters);
    assert!(
        !store
            .renew_lease(task.id, "na/old", 1_041, 30)
            .await
            .unwrap()
    );
    let new = Lease {
        worker: "nb/new",
        now: 1_045,
    };
    store
        .finish_items(task.id, &[outcome(seqs[2])], &one(100), &new)
        .await
        .unwrap();
    assert_eq!(
        store
            .get_task(task.id)
            .await
            .unwrap()
            .unwrap()
            .counters
            .files_transferred,
        4
    );

    // A starting node releases its own leases, expired or live, and leaves another node's live lease alone.
    let other = new_task("lease-2", 1_001);
    store.create_task(&other, &[]).await.unwrap();
    let dead = store
        .claim_task("na/dead", 1_050, 600)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(dead.id, other.id);
    assert_eq!(
        store.release_node_leases("na").await.unwrap(),
        vec![(other.id, "na/dead".to_string())]
    );
    assert!(
        store
            .renew_lease(task.id, "nb/new", 1_050, 30)
            .await
            .unwrap()
    );
    assert_eq!(
        store
            .claim_task("na/next", 1_051, 30)
            .await
            .unwrap()
            .map(|t| t.id),
        Some(other.id),
        "the node's released task is free at once, the other node's is not"
    );
    assert!(
        store
            .claim_task("na/next", 1_051, 30)
            .await
            .unwrap()
            .is_none()
    );

    // The owner's cancel is not fenced: it ends the task whoever holds the lease.
    let cancel = cancelled(1_060);
    assert!(store.set_task_status(task.id, &cancel, None).await.unwrap());
    assert_eq!(
        store
            .fail_pending_items(task.id, "CANCELED", 1_060, None)
            .await
            .unwrap(),
        2
    );
    store
        .add_task_event(task.id, &event("CANCELED"), None)
        .await
        .unwrap();
    for id in [task.id, other.id] {
        store.delete_task(id).await.unwrap();
    }
}

/// Deliveries are claimed: a claim holds what it returns, so a second claim (another worker or process) takes
/// other deliveries or none; an attempt that was never recorded is due again once the hold passes; a delivered one
/// or one out of attempts is never claimed again.
async fn webhook_deliveries(store: &dyn Store) {
    use crate::tasks::{Delivery, Webhook};
    let hook = Webhook {
        id: Uuid::new_v4(),
        owner: Uuid::new_v4(),
        url: "https://receiver.example/hook".into(),
        created: 1,
    };
    store.create_webhook(&hook).await.unwrap();
    let delivery = |n: usize| Delivery {
        id: Uuid::new_v4(),
        webhook_id: hook.id,
        url: hook.url.clone(),
        body: format!("{{\"n\": {n}}}"),
        attempts: 0,
    };
    let queued: Vec<Delivery> = (0..3).map(delivery).collect();
    // far in the future of the other checks' rows, so that only these are due
    let t = 1_000_000_000;
    store.queue_deliveries(&queued, t).await.unwrap();
    let ids = |ds: &[Delivery]| ds.iter().map(|d| d.id).collect::<Vec<_>>();

    let first = store.claim_deliveries(t, 60, 8, 2).await.unwrap();
    assert_eq!(first.len(), 2, "a claim takes at most its limit");
    let second = store.claim_deliveries(t, 60, 8, 2).await.unwrap();
    assert_eq!(
        second.len(),
        1,
        "a second claim takes only what the first did not hold"
    );
    assert!(!ids(&first).contains(&second[0].id));
    assert!(
        store
            .claim_deliveries(t + 59, 60, 8, 10)
            .await
            .unwrap()
            .is_empty(),
        "held until the hold passes"
    );

    // one delivered, one failed (due again in 2 s), one whose worker died (never recorded)
    store
        .delivery_attempted(first[0].id, Some(t + 1), t + 1, None)
        .await
        .unwrap();
    store
        .delivery_attempted(first[1].id, None, t + 2, Some("the receiver answered 500"))
        .await
        .unwrap();
    let retried = store.claim_deliveries(t + 2, 60, 8, 10).await.unwrap();
    assert_eq!(
        ids(&retried),
        vec![first[1].id],
        "the failed one is due again, the delivered one never"
    );
    assert_eq!(retried[0].attempts, 1);
    let orphan = store.claim_deliveries(t + 60, 60, 8, 10).await.unwrap();
    assert_eq!(
        ids(&orphan),
        vec![second[0].id],
        "an attempt never recorded is due again after the hold"
    );

    // out of attempts: never claimed again
    store
        .delivery_attempted(second[0].id, None, t + 61, Some("no answer"))
        .await
        .unwrap();
    assert!(
        store
            .claim_deliveries(t + 1_000, 60, 1, 10)
            .await
            .unwrap()
            .is_empty()
    );
    store.delete_webhook(hook.id, hook.owner).await.unwrap();
}

/// Tasks counted by status and queue; the counts are compared before and after, since other checks leave tasks.
async fn task_tally(store: &dyn Store) {
    use crate::tasks::*;
    let now = 10_000;
    let before = store.task_tally(now).await.unwrap();
    let statuses: Vec<TaskStatus> = before.by_status.iter().map(|(s, _)| *s).collect();
    assert_eq!(statuses, TaskStatus::ALL, "every status, in order");
    let task = |n: usize, status, run_after, runner| TaskRow {
        id: Uuid::new_v4(),
        kind: TaskKind::Transfer,
        owner: Uuid::new_v4(),
        submission_id: format!("tally-{n}"),
        status,
        label: None,
        source_collection: Uuid::new_v4(),
        dest_collection: Some(Uuid::new_v4()),
        options: json!({}),
        request_time: 1,
        completion_time: None,
        deadline: None,
        run_after,
        nice_status: None,
        nice_status_details: None,
        fatal_error: None,
        counters: TaskCounters::default(),
        runner,
        reports_to_hub: false,
    };
    let rows = [
        // Due and free: queued.
        task(0, TaskStatus::Active, 0, None),
        task(1, TaskStatus::Inactive, now, None),
        // Backing off, or run by a joined endpoint: running, not queued.
        task(2, TaskStatus::Inactive, now + 60, None),
        task(3, TaskStatus::Active, 0, Some(Uuid::new_v4())),
        // Leased below: running, not queued.
        task(4, TaskStatus::Active, 0, None),
        task(5, TaskStatus::Succeeded, 0, None),
        task(6, TaskStatus::Failed, 0, None),
        task(7, TaskStatus::Failed, 0, None),
    ];
    for r in &rows {
        store.create_task(r, &[]).await.unwrap();
    }
    // Claims every due task, then gives back all but one (other checks' tasks with their own run_after).
    let mut claimed = Vec::new();
    while let Some(t) = store.claim_task("tally", now, 30).await.unwrap() {
        claimed.push(t);
    }
    assert!(claimed.iter().any(|t| t.id == rows[4].id));
    for t in claimed.iter().filter(|t| t.id != rows[4].id) {
        store
            .release_lease(t.id, "tally", t.run_after)
            .await
            .unwrap();
    }
    let after = store.task_tally(now).await.unwrap();
    let grew = |s: TaskStatus| {
        let n = |t: &TaskTally| t.by_status.iter().find(|(x, _)| *x == s).unwrap().1;
        n(&after) - n(&before)
    };
    assert_eq!(grew(TaskStatus::Active), 3);
    assert_eq!(grew(TaskStatus::Inactive), 2);
    assert_eq!(grew(TaskStatus::Succeeded), 1);
    assert_eq!(grew(TaskStatus::Failed), 2);
    assert_eq!(after.queued - before.queued, 2, "{before:?} -> {after:?}");
    // An expired lease counts as queued again.
    let later = store.task_tally(now + 31).await.unwrap();
    assert!(later.queued > after.queued, "{after:?} -> {later:?}");
    // The checks after this one claim tasks of their own.
    for r in &rows {
        store.delete_task(r.id).await.unwrap();
    }
    assert_eq!(store.task_tally(now).await.unwrap(), before);
}

fn collection(kind: &str, gateway: Uuid, mapped: Option<Uuid>) -> CollectionDoc {
    let mut v = json!({"collection_type": kind, "display_name": kind, "collection_base_path": "/",
        "storage_gateway_id": gateway});
    if let Some(m) = mapped {
        v["mapped_collection_id"] = json!(m);
    }
    let mut doc: CollectionDoc = serde_json::from_value(v).unwrap();
    doc.id = Uuid::new_v4();
    doc
}

async fn endpoint(store: &dyn Store) {
    let mut gw: StorageGatewayDoc =
        serde_json::from_value(json!({"display_name": "posix"})).unwrap();
    gw.id = Uuid::new_v4();
    store.create_gateway(&gw).await.unwrap();
    assert_eq!(store.get_gateway(gw.id).await.unwrap(), Some(gw.clone()));
    let mapped = collection("mapped", gw.id, None);
    store.create_collection(&mapped).await.unwrap();
    let guest = collection("guest", gw.id, Some(mapped.id));
    store.create_collection(&guest).await.unwrap();
    let guests = CollectionFilter {
        mapped_collection_id: Some(mapped.id),
        ..Default::default()
    };
    assert_eq!(
        store.list_collections(&guests).await.unwrap(),
        vec![guest.clone()]
    );
    assert!(
        matches!(
            store.delete_gateway(gw.id).await,
            Err(StoreError::Conflict(_))
        ),
        "gateway in use"
    );

    let role = RoleDoc {
        data_type: "role#1.0.0".into(),
        id: Uuid::new_v4(),
        collection: Some(guest.id),
        principal: format!("urn:globus:auth:identity:{}", Uuid::new_v4()),
        role: RoleName::AccessManager,
    };
    store.create_role(&role).await.unwrap();
    let dup = RoleDoc {
        id: Uuid::new_v4(),
        ..role.clone()
    };
    assert!(matches!(
        store.create_role(&dup).await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(
        store.list_roles(Some(guest.id)).await.unwrap(),
        vec![role.clone()]
    );
    assert_eq!(
        store.list_roles(None).await.unwrap(),
        vec![],
        "endpoint roles are apart"
    );

    let rule = AclRule {
        id: Uuid::new_v4(),
        collection_id: guest.id,
        principal: AclPrincipal::AllAuthenticatedUsers,
        path: "/shared".into(),
        folder: true,
        write: false,
        expires_at: None,
        created: 5,
        notify_email: Some("a@b.c".into()),
        notify_message: None,
    };
    store.create_acl_rule(&rule).await.unwrap();
    assert!(matches!(
        store
            .create_acl_rule(&AclRule {
                id: Uuid::new_v4(),
                ..rule.clone()
            })
            .await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(
        store.list_acl_rules(guest.id).await.unwrap(),
        vec![rule.clone()]
    );
    assert_eq!(
        store.get_acl_rule(rule.id).await.unwrap(),
        Some(rule.clone())
    );
    let mut changed = rule.clone();
    changed.write = true;
    changed.path = "/shared/sub".into();
    changed.folder = false;
    store.update_acl_rule(&changed).await.unwrap();
    assert_eq!(
        store.get_acl_rule(rule.id).await.unwrap(),
        Some(changed.clone())
    );
    store.update_acl_rule(&rule).await.unwrap();

    // An invitation and its pending rule are stored together; a code is claimed once, and not after expiry.
    let pending = AclRule {
        id: Uuid::new_v4(),
        principal: AclPrincipal::Invitation(Uuid::new_v4()),
        ..rule.clone()
    };
    let invitation = crate::Invitation {
        id: match pending.principal {
            AclPrincipal::Invitation(id) => id,
            _ => unreachable!(),
        },
        collection_id: guest.id,
        rule_id: pending.id,
        email: "new@example.org".into(),
        code_hash: "h1".into(),
        invited_by: Uuid::new_v4(),
        created: 10,
        expires_at: 100,
        redeemed_by: None,
        redeemed_at: None,
    };
    store
        .create_invitation(&invitation, &pending)
        .await
        .unwrap();
    assert_eq!(
        store.find_invitation("h1").await.unwrap(),
        Some(invitation.clone())
    );
    assert_eq!(store.find_invitation("h2").await.unwrap(), None);
    assert_eq!(
        store.list_invitations(guest.id).await.unwrap(),
        vec![invitation.clone()]
    );
    let redeemer = Uuid::new_v4();
    assert!(
        !store
            .claim_invitation(invitation.id, redeemer, 100)
            .await
            .unwrap(),
        "expired"
    );
    assert!(
        store
            .claim_invitation(invitation.id, redeemer, 50)
            .await
            .unwrap()
    );
    assert!(
        !store
            .claim_invitation(invitation.id, redeemer, 51)
            .await
            .unwrap(),
        "single use"
    );
    let claimed = store.find_invitation("h1").await.unwrap().unwrap();
    assert_eq!(
        (claimed.redeemed_by, claimed.redeemed_at),
        (Some(redeemer), Some(50))
    );
    // Withdrawing the permission withdraws the invitation.
    store.delete_acl_rule(pending.id).await.unwrap();
    assert_eq!(store.find_invitation("h1").await.unwrap(), None);
    // What went is kept, to tell a removed code from a wrong one, whether it had been redeemed or not, and
    // however it went (the collection's deletion below takes the last one).
    let removed = store.find_removed_invitation("h1").await.unwrap().unwrap();
    assert_eq!(
        (
            removed.id,
            removed.invited_by,
            removed.expires_at,
            removed.redeemed_at
        ),
        (invitation.id, invitation.invited_by, 100, Some(50))
    );
    assert_eq!(store.find_removed_invitation("h2").await.unwrap(), None);
    let mut later = Vec::new();
    for hash in ["h3", "h4"] {
        let id = Uuid::new_v4();
        let rule = AclRule {
            id: Uuid::new_v4(),
            principal: AclPrincipal::Invitation(id),
            path: format!("/{hash}"),
            ..rule.clone()
        };
        let inv = crate::Invitation {
            id,
            rule_id: rule.id,
            code_hash: hash.into(),
            ..invitation.clone()
        };
        store.create_invitation(&inv, &rule).await.unwrap();
        later.push(rule.id);
    }
    assert_eq!(store.find_removed_invitation("h3").await.unwrap(), None);
    store.delete_acl_rule(later[0]).await.unwrap();
    assert_eq!(
        store
            .find_removed_invitation("h3")
            .await
            .unwrap()
            .map(|r| r.redeemed_at),
        Some(None)
    );

    // Bookmarks: names are unique per owner.
    let owner = Uuid::new_v4();
    let mark = crate::Bookmark {
        id: Uuid::new_v4(),
        owner,
        name: "results".into(),
        collection_id: guest.id,
        path: "/shared/".into(),
        pinned: false,
        created: 3,
    };
    store.create_bookmark(&mark).await.unwrap();
    assert!(matches!(
        store
            .create_bookmark(&crate::Bookmark {
                id: Uuid::new_v4(),
                ..mark.clone()
            })
            .await,
        Err(StoreError::Conflict(_))
    ));
    store
        .create_bookmark(&crate::Bookmark {
            id: Uuid::new_v4(),
            owner: Uuid::new_v4(),
            ..mark.clone()
        })
        .await
        .unwrap();
    let renamed = crate::Bookmark {
        name: "renamed".into(),
        pinned: true,
        ..mark.clone()
    };
    store.update_bookmark(&renamed).await.unwrap();
    assert_eq!(
        store.list_bookmarks(owner).await.unwrap(),
        vec![renamed.clone()]
    );
    assert_eq!(store.get_bookmark(mark.id).await.unwrap(), Some(renamed));
    store.delete_bookmark(mark.id).await.unwrap();
    assert!(matches!(
        store.delete_bookmark(mark.id).await,
        Err(StoreError::NotFound)
    ));

    // Deleting the mapped collection takes its guests, their roles and rules along.
    store.delete_collection(mapped.id).await.unwrap();
    assert_eq!(store.get_collection(guest.id).await.unwrap(), None);
    assert_eq!(store.get_role(role.id).await.unwrap(), None);
    assert_eq!(store.list_acl_rules(guest.id).await.unwrap(), vec![]);
    assert_eq!(
        store
            .find_removed_invitation("h4")
            .await
            .unwrap()
            .map(|r| r.collection_id),
        Some(guest.id),
        "an invitation that went with its collection is kept too"
    );
    store.delete_gateway(gw.id).await.unwrap();
}

async fn audit(store: &dyn Store) {
    let who = Uuid::new_v4();
    // The actions: one, another of its family, one whose name merely starts alike, the family's bare name.
    let records: Vec<AuditRecord> = [
        ("/a", "role.create"),
        ("/a/b", "role.delete"),
        ("/ab", "roles.create"),
        ("/c", "role"),
    ]
    .iter()
    .enumerate()
    .map(|(i, (path, action))| AuditRecord {
        seq: 0,
        time: 100 + i as i64,
        identity_id: Some(who),
        action: action.to_string(),
        collection_id: None,
        path: Some(path.to_string()),
        allowed: i % 2 == 0,
        detail: String::new(),
    })
    .collect();
    store.append_audit(&records[..1]).await.unwrap();
    store.append_audit(&records[1..]).await.unwrap();
    let seqs: Vec<i64> = store
        .query_audit(&AuditFilter::default())
        .await
        .unwrap()
        .iter()
        .map(|r| r.seq)
        .collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{seqs:?}");
    // Reading in pages: after a record, at most `limit`.
    let page = store
        .query_audit(&AuditFilter {
            after_seq: Some(seqs[0]),
            limit: Some(2),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(page.iter().map(|r| r.seq).collect::<Vec<_>>(), seqs[1..3]);
    let latest = store
        .query_audit(&AuditFilter {
            newest_first: true,
            limit: Some(1),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(latest[0].seq, *seqs.last().unwrap());
    let paths = |f: AuditFilter| async move {
        store
            .query_audit(&f)
            .await
            .unwrap()
            .into_iter()
            .map(|r| r.path.unwrap())
            .collect::<Vec<_>>()
    };
    assert_eq!(
        paths(AuditFilter {
            path_prefix: Some("/a".into()),
            ..Default::default()
        })
        .await,
        ["/a", "/a/b"]
    );
    assert_eq!(
        paths(AuditFilter {
            allowed: Some(false),
            ..Default::default()
        })
        .await,
        ["/a/b", "/c"]
    );
    assert_eq!(
        paths(AuditFilter {
            since: Some(101),
            until: Some(103),
            ..Default::default()
        })
        .await,
        ["/a/b", "/ab"]
    );
    assert_eq!(
        paths(AuditFilter {
            identity_id: Some(Uuid::new_v4()),
            ..Default::default()
        })
        .await,
        Vec::<String>::new()
    );
    let action = |a: &str| AuditFilter {
        identity_id: Some(who),
        action: Some(a.into()),
        ..Default::default()
    };
    assert_eq!(paths(action("role.create")).await, ["/a"]);
    assert_eq!(paths(action("role")).await, ["/a", "/a/b", "/c"]);
    assert_eq!(paths(action("rol")).await, Vec::<String>::new());
    // Reading newest first in pages: before a record, at most `limit`.
    let older = store
        .query_audit(&AuditFilter {
            before_seq: Some(seqs[2]),
            newest_first: true,
            limit: Some(1),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(older.iter().map(|r| r.seq).collect::<Vec<_>>(), [seqs[1]]);
}

async fn auth_policies(store: &dyn Store) {
    let owner = Uuid::new_v4();
    let mut p: ferry_core::auth_policy::AuthPolicy =
        serde_json::from_value(json!({"display_name": "edu only",
            "domain_constraints_include": ["*.edu"]}))
        .unwrap();
    p.id = Uuid::new_v4();
    store.create_auth_policy(&p, owner).await.unwrap();
    assert_eq!(
        store.get_auth_policy(p.id).await.unwrap(),
        Some((p.clone(), owner))
    );
    p.description = "changed".into();
    store.update_auth_policy(&p).await.unwrap();
    assert_eq!(
        store.list_auth_policies().await.unwrap(),
        vec![(p.clone(), owner)]
    );
    store.delete_auth_policy(p.id).await.unwrap();
    assert!(matches!(
        store.delete_auth_policy(p.id).await,
        Err(StoreError::NotFound)
    ));
    assert_eq!(store.get_auth_policy(p.id).await.unwrap(), None);
}

async fn meta(store: &dyn Store) {
    assert_eq!(store.meta_get("k").await.unwrap(), None);
    assert_eq!(
        store.meta_get_or_insert("k", "first").await.unwrap(),
        "first"
    );
    assert_eq!(
        store.meta_get_or_insert("k", "second").await.unwrap(),
        "first",
        "first writer wins"
    );
    store.meta_set("k", "third").await.unwrap();
    assert_eq!(store.meta_get("k").await.unwrap().as_deref(), Some("third"));
}

async fn identities(store: &dyn Store) {
    let a = person("ann");
    store.create_identity(&a, Some("hash")).await.unwrap();
    let dup = Identity {
        id: Uuid::new_v4(),
        ..a.clone()
    };
    assert!(matches!(
        store.create_identity(&dup, None).await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(
        store.find_identity("ANN@test.local").await.unwrap(),
        Some(a.clone()),
        "usernames are case-insensitive"
    );
    assert_eq!(
        store.password_hash(a.id).await.unwrap().as_deref(),
        Some("hash")
    );
    store.delete_identity(a.id).await.unwrap();
    assert!(matches!(
        store.delete_identity(a.id).await,
        Err(StoreError::NotFound)
    ));
}

/// A new password replaces the hash and revokes every secret of the person but the session kept; other
/// people's secrets and applications are untouched.
async fn passwords(store: &dyn Store) {
    let paula = person("pwd-paula");
    let other = person("pwd-otto");
    store.create_identity(&paula, Some("old")).await.unwrap();
    store.create_identity(&other, Some("theirs")).await.unwrap();
    let grant = Uuid::new_v4();
    let mut session = secret("pw-session", grant, paula.id);
    session.kind = SecretKind::Session;
    let mut other_session = secret("pw-other-session", Uuid::new_v4(), paula.id);
    other_session.kind = SecretKind::Session;
    let mut access = secret("pw-access", grant, paula.id);
    access.kind = SecretKind::Access;
    for s in [
        &session,
        &other_session,
        &access,
        &secret("pw-refresh", grant, paula.id),
        &secret("pw-otto", Uuid::new_v4(), other.id),
    ] {
        store.insert_secret(s).await.unwrap();
    }
    store
        .set_password_hash(paula.id, "new", Some("pw-session"), 50)
        .await
        .unwrap();
    assert_eq!(
        store.password_hash(paula.id).await.unwrap().as_deref(),
        Some("new")
    );
    let revoked =
        |h: &'static str| async move { store.get_secret(h).await.unwrap().unwrap().revoked_at };
    assert_eq!(revoked("pw-session").await, None, "the session kept");
    for h in ["pw-other-session", "pw-access", "pw-refresh"] {
        assert_eq!(revoked(h).await, Some(50), "{h}");
    }
    assert_eq!(revoked("pw-otto").await, None, "someone else's");
    assert_eq!(
        store.password_hash(other.id).await.unwrap().as_deref(),
        Some("theirs")
    );
    // A reset keeps nothing.
    store
        .set_password_hash(paula.id, "newer", None, 60)
        .await
        .unwrap();
    assert_eq!(revoked("pw-session").await, Some(60));
    assert!(matches!(
        store.set_password_hash(Uuid::new_v4(), "x", None, 70).await,
        Err(StoreError::NotFound)
    ));
    store.delete_identity(paula.id).await.unwrap();
    store.delete_identity(other.id).await.unwrap();
}

async fn secrets(store: &dyn Store) {
    let who = person("sam");
    store.create_identity(&who, None).await.unwrap();
    let grant = Uuid::new_v4();
    store
        .insert_secret(&secret("h1", grant, who.id))
        .await
        .unwrap();
    store
        .insert_secret(&secret("h2", grant, who.id))
        .await
        .unwrap();
    assert_eq!(
        store.get_secret("h1").await.unwrap().unwrap().extra,
        json!({"k": 1})
    );
    let (_, first) = store.consume_secret("h1", 20).await.unwrap().unwrap();
    let (rec, again) = store.consume_secret("h1", 21).await.unwrap().unwrap();
    assert!(first && !again, "a secret is consumed once");
    assert_eq!(rec.used_at, Some(20));
    assert!(store.consume_secret("nope", 20).await.unwrap().is_none());
    store.revoke_grant(grant, 30).await.unwrap();
    assert_eq!(
        store.get_secret("h2").await.unwrap().unwrap().revoked_at,
        Some(30)
    );
    assert!(!store.get_secret("h2").await.unwrap().unwrap().is_live(40));
    assert_eq!(store.purge_expired(1000, 0).await.unwrap(), 2);
}

/// Issuing for a grant: a refresh token is consumed once, in the same step as the new secrets are inserted;
/// its reuse revokes the grant; a revoked grant takes no new secrets, and nothing of the step is kept.
async fn grants(store: &dyn Store) {
    let who = person("gina");
    store.create_identity(&who, None).await.unwrap();
    let client = Uuid::new_v4();
    let grant = GrantRecord {
        id: Uuid::new_v4(),
        identity_id: who.id,
        client_id: client,
        scopes: "a".into(),
        created: 5,
        revoked_at: None,
    };
    let rt = |h: &str| SecretRecord {
        client_id: Some(client),
        ..secret(h, grant.id, who.id)
    };
    let issue = |consume: Option<&'static str>, h: &'static str, now: i64| {
        let (grant, rec) = (grant.clone(), rt(h));
        async move {
            store
                .issue_secrets(&grant, consume, &[rec], now)
                .await
                .unwrap()
        }
    };
    assert_eq!(issue(None, "g0", 10).await, IssueOutcome::Issued);
    assert_eq!(issue(Some("g0"), "g1", 11).await, IssueOutcome::Issued);
    assert_eq!(
        store.get_secret("g0").await.unwrap().unwrap().used_at,
        Some(11)
    );
    assert_eq!(issue(Some("nope"), "gx", 12).await, IssueOutcome::Invalid);
    assert!(store.get_secret("gx").await.unwrap().is_none());
    // An expired refresh token is not consumed.
    assert_eq!(issue(Some("g1"), "gy", 1000).await, IssueOutcome::Invalid);
    assert!(store.get_secret("gy").await.unwrap().is_none());
    // Reuse of g0: the grant is revoked, g1 with it, and later inserts are refused.
    assert_eq!(issue(Some("g0"), "g2", 13).await, IssueOutcome::Reused);
    assert!(store.get_secret("g2").await.unwrap().is_none());
    assert_eq!(
        store.get_secret("g1").await.unwrap().unwrap().revoked_at,
        Some(13)
    );
    assert_eq!(issue(Some("g1"), "g3", 14).await, IssueOutcome::Invalid);
    assert_eq!(issue(None, "g4", 14).await, IssueOutcome::GrantRevoked);
    assert!(store.get_secret("g4").await.unwrap().is_none());
    let listed = store.list_grants(who.id, client).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(
        (listed[0].scopes.as_str(), listed[0].revoked_at),
        ("a", Some(13))
    );
    // A grant is kept while a secret of it is; then purged with them.
    store.purge_expired(99, 0).await.unwrap();
    assert_eq!(store.list_grants(who.id, client).await.unwrap().len(), 1);
    store.purge_expired(1000, 0).await.unwrap();
    assert!(store.list_grants(who.id, client).await.unwrap().is_empty());
    // Revoking a grant no secret was issued for yet (a replayed code) still stops later inserts.
    let early = GrantRecord {
        id: Uuid::new_v4(),
        ..grant.clone()
    };
    store.revoke_grant(early.id, 20).await.unwrap();
    let rec = SecretRecord {
        grant_id: early.id,
        ..rt("g5")
    };
    assert_eq!(
        store.issue_secrets(&early, None, &[rec], 21).await.unwrap(),
        IssueOutcome::GrantRevoked
    );
}

/// Consents are found by id and deleted with the consents under them; scopes are unique by string, found by
/// id or string, listed per client, and go with their client.
async fn consents_and_scopes(store: &dyn Store) {
    let who = person("cora");
    store.create_identity(&who, None).await.unwrap();
    let client = Uuid::new_v4();
    let consent = |scope: &str, parent: Option<Uuid>| ConsentRecord {
        id: Uuid::new_v4(),
        identity_id: who.id,
        client_id: client,
        scope: scope.into(),
        parent_id: parent,
        created: 1,
        last_used: 1,
    };
    let root = store.upsert_consent(&consent("p", None)).await.unwrap();
    let child = store
        .upsert_consent(&consent("c", Some(root)))
        .await
        .unwrap();
    assert_eq!(
        store.get_consent(child).await.unwrap().unwrap().parent_id,
        Some(root)
    );
    store.delete_consent(root).await.unwrap();
    assert!(store.get_consent(child).await.unwrap().is_none());
    assert!(matches!(
        store.delete_consent(root).await,
        Err(StoreError::NotFound)
    ));

    let app = Identity {
        kind: IdentityKind::Client,
        ..person("scoped-app")
    };
    let c = ferry_core::Client {
        id: app.id,
        name: "app".into(),
        kind: ferry_core::ClientKind::Confidential,
        redirect_uris: vec![],
        owner: None,
        template_id: None,
        created: 1,
        verified: false,
        grant_types: Some(vec!["client_credentials".into()]),
        allowed_scopes: Some(vec!["openid".into()]),
    };
    store.create_client(&app, &c, None).await.unwrap();
    assert_eq!(store.get_client(app.id).await.unwrap().unwrap(), c);
    let scope = ScopeRecord {
        id: Uuid::new_v4(),
        client_id: app.id,
        scope_string: format!("https://auth.globus.org/scopes/{}/all", app.id),
        name: "all".into(),
        description: "d".into(),
        advertised: false,
        allows_refresh_token: true,
        required_domains: vec!["uni.edu".into()],
        dependent_scopes: vec![ferry_core::scope::ScopeDependency {
            scope_id: Uuid::new_v4(),
            scope_string: "urn:x".into(),
            optional: true,
            requires_refresh_token: false,
        }],
        created: 3,
    };
    store.create_scope(&scope).await.unwrap();
    assert!(matches!(
        store
            .create_scope(&ScopeRecord {
                id: Uuid::new_v4(),
                ..scope.clone()
            })
            .await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(store.get_scope(scope.id).await.unwrap().unwrap(), scope);
    assert_eq!(
        store
            .find_scope(&scope.scope_string)
            .await
            .unwrap()
            .unwrap(),
        scope
    );
    let changed = ScopeRecord {
        dependent_scopes: vec![],
        ..scope.clone()
    };
    store.update_scope(&changed).await.unwrap();
    assert_eq!(
        store.list_scopes(Some(app.id)).await.unwrap(),
        vec![changed]
    );
    assert!(
        store
            .list_scopes(Some(Uuid::new_v4()))
            .await
            .unwrap()
            .is_empty()
    );
    store.delete_identity(app.id).await.unwrap();
    assert!(
        store.get_scope(scope.id).await.unwrap().is_none(),
        "scopes go with their client"
    );
    assert!(matches!(
        store.delete_scope(scope.id).await,
        Err(StoreError::NotFound)
    ));
}

async fn groups(store: &dyn Store) {
    let owner = person("olga");
    store.create_identity(&owner, None).await.unwrap();
    let g = Group {
        id: Uuid::new_v4(),
        name: "g".into(),
        description: String::new(),
        parent_id: None,
        visibility: "private".into(),
        members_visibility: "managers".into(),
        created: 1,
    };
    let m = Membership {
        group_id: g.id,
        identity_id: owner.id,
        username: owner.username.clone(),
        role: GroupRole::Admin,
        status: MembershipStatus::Active,
        updated: 1,
    };
    store.create_group(&g, &m).await.unwrap();
    assert_eq!(store.memberships(g.id).await.unwrap(), vec![m.clone()]);
    assert_eq!(store.active_group_ids(owner.id).await.unwrap(), vec![g.id]);
    store
        .put_membership(&Membership {
            status: MembershipStatus::Left,
            ..m.clone()
        })
        .await
        .unwrap();
    assert_eq!(
        store.active_group_ids(owner.id).await.unwrap(),
        Vec::<Uuid>::new(),
        "only active memberships count"
    );
    for status in [MembershipStatus::Invited, MembershipStatus::Declined] {
        let stored = Membership {
            status,
            ..m.clone()
        };
        store.put_membership(&stored).await.unwrap();
        assert_eq!(
            store.membership(g.id, owner.id).await.unwrap(),
            Some(stored),
            "the {} status is kept",
            status.as_str()
        );
        assert!(store.active_group_ids(owner.id).await.unwrap().is_empty());
    }
    store.put_membership(&m).await.unwrap();
    assert_eq!(store.groups_of(owner.id).await.unwrap(), vec![g.clone()]);
    let ghost = Membership {
        identity_id: Uuid::new_v4(),
        ..m.clone()
    };
    assert!(
        matches!(
            store.put_membership(&ghost).await,
            Err(StoreError::NotFound)
        ),
        "members must exist"
    );
    store.delete_group(g.id).await.unwrap();
    assert!(
        store.membership(g.id, owner.id).await.unwrap().is_none(),
        "memberships go with the group"
    );
}

#[cfg(test)]
mod tests {
    #[tokio::test]
    async fn sqlite_passes_the_conformance_suite() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("t.db");
        let store = crate::SqliteStore::open(&db).await.unwrap();
        super::run(&store).await;
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&db).unwrap().permissions().mode();
        assert_eq!(mode & 0o077, 0, "the database is private: {mode:o}");
    }

    /// Processes starting on one new database at once (a server and an admin command, two nodes): the
    /// migrations run once, one opener after the other, and every opener gets a working store.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn openers_at_once_migrate_one_after_the_other() {
        for _ in 0..5 {
            let dir = tempfile::tempdir().unwrap();
            let db = dir.path().join("t.db");
            let opens = (0..4).map(|_| {
                let db = db.clone();
                tokio::spawn(async move { crate::SqliteStore::open(&db).await.map(|_| ()) })
            });
            for r in futures_join(opens).await {
                r.unwrap().unwrap();
            }
        }
    }

    async fn futures_join<T>(
        hs: impl Iterator<Item = tokio::task::JoinHandle<T>>,
    ) -> Vec<Result<T, tokio::task::JoinError>> {
        let mut out = Vec::new();
        for h in hs.collect::<Vec<_>>() {
            out.push(h.await);
        }
        out
    }
}
