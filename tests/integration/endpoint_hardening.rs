//! Endpoint state that must agree across processes and under concurrency: a change written by another process
//! (the admin CLI on the same database) counts at the next request, and the per-collection rule limit holds
//! under parallel creates.

use ferry_core::ClientKind;
use ferry_store::{SqliteStore, Store};
use ferry_tests::TestServer;
use ferry_tests::data::Door;
use ferry_tests::endpoint::{api, gateway, mapped};
use reqwest::Method as M;
use serde_json::{Value, json};
use uuid::Uuid;

const GROUPS: &str = "urn:globus:auth:scope:groups.api.globus.org:all";
/// Rules a guest collection holds at most (as on Globus).
const MAX: usize = 1000;

async fn rule(s: &TestServer, owner: &Door<'_>, guest: Uuid, doc: Value) -> Uuid {
    let (st, b) = s
        .call(
            M::POST,
            &format!("/v0.10/endpoint/{guest}/access"),
            &owner.transfer,
            Some(&doc),
        )
        .await;
    assert_eq!(st, 200, "{b}");
    Uuid::parse_str(b["access_id"].as_str().unwrap()).unwrap()
}

#[tokio::test]
async fn a_change_made_by_another_process_counts_at_the_next_request() {
    let s = TestServer::start().await;
    let admin_app = s.admin_app();
    let admin = api(&s, &admin_app).await;
    let (g, dir) = gateway(&admin, json!({"read_write": ["/"]}), json!({})).await;
    std::fs::create_dir_all(dir.path().join("shared")).unwrap();
    std::fs::write(dir.path().join("shared/f.txt"), "f").unwrap();
    let m = mapped(&admin, g, json!({"allow_guest_collections": true})).await;
    // The guest collection's creator is an application, as a portal would be.
    let creator_app = s.app(ClientKind::Confidential).await;
    let creator = Door::new(&s, &creator_app, m).await;
    let (st, b) = s
        .call(
            M::POST,
            "/v0.10/shared_endpoint",
            &creator.transfer,
            Some(
                &json!({"DATA_TYPE": "shared_endpoint", "host_endpoint": m, "host_path": "/shared",
                         "display_name": "share"}),
            ),
        )
        .await;
    assert_eq!(st, 200, "{b}");
    let guest = Uuid::parse_str(b["id"].as_str().unwrap()).unwrap();
    let reader_app = s.app(ClientKind::Confidential).await;
    let reader = Door::new(&s, &reader_app, guest).await;
    let by_identity = json!({"DATA_TYPE": "access", "principal_type": "identity",
                             "principal": reader_app.id, "path": "/", "permissions": "r"});
    let rule_id = rule(&s, &creator, guest, by_identity.clone()).await;
    assert_eq!(reader.ls("/").await.status, 200);

    // What `ferry` admin commands do: open the same database file beside the running server.
    let other = SqliteStore::open(&s.data_dir().join("ferry.db"))
        .await
        .unwrap();

    // A rule deleted by the other process.
    other.delete_acl_rule(rule_id).await.unwrap();
    let a = reader.ls("/").await;
    assert_eq!(a.status, 403, "the deleted rule still grants: {}", a.text);

    // A group membership removed by the other process.
    let groups = s.access_token(&creator_app, GROUPS).await;
    let (st, grp) = s
        .call(
            M::POST,
            "/v2/groups",
            &groups,
            Some(&json!({"name": "readers"})),
        )
        .await;
    assert_eq!(st, 200, "{grp}");
    let gid = Uuid::parse_str(grp["id"].as_str().unwrap()).unwrap();
    let (st, b) = s
        .call(
            M::POST,
            &format!("/v2/groups/{gid}"),
            &groups,
            Some(&json!({"add": [{"identity_id": reader_app.id, "role": "member"}]})),
        )
        .await;
    assert_eq!(st, 200, "{b}");
    rule(
        &s,
        &creator,
        guest,
        json!({"DATA_TYPE": "access", "principal_type": "group", "principal": gid,
               "path": "/", "permissions": "r"}),
    )
    .await;
    assert_eq!(reader.ls("/").await.status, 200);
    other
        .delete_membership(gid, Uuid::parse_str(&reader_app.id).unwrap())
        .await
        .unwrap();
    assert_eq!(
        reader.ls("/").await.status,
        403,
        "the removed member still reads"
    );

    // The creator deleted by the other process (`ferry client delete`): the share stops serving data.
    rule(&s, &creator, guest, by_identity).await;
    assert_eq!(reader.ls("/").await.status, 200);
    assert_eq!(reader.https(M::GET, "/f.txt", None).await.status, 200);
    other
        .delete_identity(Uuid::parse_str(&creator_app.id).unwrap())
        .await
        .unwrap();
    let a = reader.ls("/").await;
    assert_eq!(
        a.status, 403,
        "the deleted creator's share still serves: {}",
        a.text
    );
    assert_eq!(reader.https(M::GET, "/f.txt", None).await.status, 403);
}

#[tokio::test]
async fn the_rule_limit_holds_under_parallel_creates() {
    let s = TestServer::start().await;
    let admin_app = s.admin_app();
    let admin = api(&s, &admin_app).await;
    let (g, dir) = gateway(&admin, json!({"read_write": ["/"]}), json!({})).await;
    std::fs::create_dir_all(dir.path().join("shared")).unwrap();
    let m = mapped(&admin, g, json!({"allow_guest_collections": true})).await;
    let owner = Door::new(&s, &admin_app, m).await;
    let (st, b) = s
        .call(
            M::POST,
            "/v0.10/shared_endpoint",
            &owner.transfer,
            Some(
                &json!({"DATA_TYPE": "shared_endpoint", "host_endpoint": m, "host_path": "/shared",
                         "display_name": "share"}),
            ),
        )
        .await;
    assert_eq!(st, 200, "{b}");
    let guest = Uuid::parse_str(b["id"].as_str().unwrap()).unwrap();
    let doc = |i: usize| {
        json!({"DATA_TYPE": "access", "principal_type": "all_authenticated_users", "principal": "",
               "path": format!("/p{i}/"), "permissions": "r"})
    };
    // Filled to 10 short of the limit directly (quicker than 990 requests), then 40 creates at once.
    let store = s.running.auth.store();
    let now = s.now();
    for i in 0..MAX - 10 {
        store
            .create_acl_rule(&ferry_core::acl::AclRule {
                id: Uuid::new_v4(),
                collection_id: guest,
                principal: ferry_core::acl::AclPrincipal::AllAuthenticatedUsers,
                path: format!("/f{i}"),
                folder: true,
                write: false,
                expires_at: None,
                created: now,
                notify_email: None,
                notify_message: None,
            })
            .await
            .unwrap();
    }
    // Each request on its own task, all in flight at once.
    let mut handles = Vec::new();
    for i in 0..40 {
        let (http, token, body) = (s.http.clone(), owner.transfer.clone(), doc(i));
        let url = format!("{}/v0.10/endpoint/{guest}/access", s.url);
        handles.push(tokio::spawn(async move {
            let r = http
                .post(url)
                .bearer_auth(token)
                .json(&body)
                .send()
                .await
                .unwrap();
            let st = r.status().as_u16();
            (st, r.json::<Value>().await.unwrap_or(Value::Null))
        }));
    }
    let mut answers = Vec::new();
    for h in handles {
        answers.push(h.await.unwrap());
    }
    let accepted = answers.iter().filter(|(st, _)| *st == 200).count();
    assert_eq!(accepted, 10, "{answers:?}");
    for (st, b) in answers.iter().filter(|(st, _)| *st != 200) {
        assert_eq!(*st, 400, "{b}");
        assert!(b["message"].as_str().unwrap().contains("1000"), "{b}");
    }
    assert_eq!(store.list_acl_rules(guest).await.unwrap().len(), MAX);
}

/// `{"none": ["/"], "read_write": ["$HOME"]}` on a POSIX gateway: an account with no home this gateway can reach
/// (no such user on the host, or a home outside the gateway's folder) reaches nothing through `$HOME` — it
/// used to be read as `/`, handing such accounts the whole gateway — and a collection based on `~` refuses
/// them with a message that says why.
#[tokio::test]
async fn an_account_without_a_home_gets_nothing_through_home() {
    let s = TestServer::start().await;
    let admin = api(&s, &s.admin_app()).await;
    for account in ["no-such-user-on-this-host", "root"] {
        // root's home (/root) is outside the gateway's folder; the other account does not exist at all.
        let mapping = json!([{"DATA_TYPE": "expression_identity_mapping#1.0.0",
            "mappings": [{"source": "{username}", "match": ".*", "output": account}]}]);
        let (g, dir) = gateway(
            &admin,
            json!({"none": ["/"], "read_write": ["$HOME"]}),
            json!({"identity_mappings": mapping}),
        )
        .await;
        std::fs::write(dir.path().join("top.txt"), "everyone's").unwrap();
        let whole = mapped(&admin, g, json!({})).await;
        let homed = mapped(&admin, g, json!({"collection_base_path": "~"})).await;
        let app = s.app(ClientKind::Confidential).await;
        let door = Door::new(&s, &app, whole).await;
        let (st, b) = ferry_tests::endpoint::ls(&s, &door.transfer, whole, "/").await;
        assert_eq!(
            st, 403,
            "{account}: $HOME must not mean the whole gateway: {b}"
        );
        let put = s
            .http
            .put(format!("{}/data/{whole}/planted.txt", s.url))
            .bearer_auth(&door.https)
            .body("x")
            .send()
            .await
            .unwrap();
        assert_eq!(put.status().as_u16(), 403, "{account}");
        assert!(!dir.path().join("planted.txt").exists());
        let (st, b) = ferry_tests::endpoint::ls(&s, &door.transfer, homed, "/").await;
        assert_eq!(st, 403, "{account}: {b}");
        assert!(
            b["message"]
                .as_str()
                .unwrap_or("")
                .contains("no home folder"),
            "{account}: the refusal says why: {b}"
        );
    }
}
