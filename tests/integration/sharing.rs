//! Sharing through the Transfer API: the collection index, permissions on a guest collection (who may manage
//! them, what they grant and refuse, expiry, live group membership, anonymous rules, the 1,000-rule limit, bad
//! documents), roles and bookmarks, and the browser's way to shared data.

use ferry_core::ClientKind;
use ferry_tests::endpoint::{Api, api, gateway, ls, mapped};
use ferry_tests::{App, TestServer};
use reqwest::Method as M;
use serde_json::{Value, json};
use uuid::Uuid;

const TRANSFER: &str = "urn:globus:auth:scope:transfer.api.globus.org:all";
const GROUPS: &str = "urn:globus:auth:scope:groups.api.globus.org:all";

/// An application and its Transfer and HTTPS (for `coll`) tokens; applications are principals too.
struct Who {
    app: App,
    transfer: String,
}

impl Who {
    async fn new(s: &TestServer) -> Self {
        let app = s.app(ClientKind::Confidential).await;
        let transfer = s.access_token(&app, TRANSFER).await;
        Self { app, transfer }
    }
    fn id(&self) -> &str {
        &self.app.id
    }
}

struct World<'a> {
    s: &'a TestServer,
    admin: Who,
    manager_api: Api<'a>,
    mapped: Uuid,
    guest: Uuid,
    root: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

/// A gateway that refuses `/shared/secret`; a mapped collection whose guests may write only `/shared/data` and
/// `/shared/pub` (and read the rest of `/shared`); a guest
/// collection on `/shared` made through `POST /v0.10/shared_endpoint` by the administrator's client.
async fn world(s: &TestServer) -> World<'_> {
    let admin_app = s.admin_app();
    let manager_api = api(s, &admin_app).await;
    let (g, dir) = gateway(
        &manager_api,
        json!({"DATA_TYPE": "path_restrictions#1.0.0", "read_write": ["/"], "none": ["/shared/secret"]}),
        json!({}),
    )
    .await;
    let root = dir.path().to_path_buf();
    for d in ["shared/data", "shared/secret", "shared/ro", "shared/pub"] {
        std::fs::create_dir_all(root.join(d)).unwrap();
    }
    std::fs::write(root.join("shared/data/results.csv"), "a,b\n1,2\n").unwrap();
    std::fs::write(root.join("shared/pub/readme.txt"), "public").unwrap();
    std::fs::write(root.join("shared/secret/key"), "k").unwrap();
    let m = mapped(
        &manager_api,
        g,
        json!({"allow_guest_collections": true,
               "sharing_restrict_paths": {"DATA_TYPE": "path_restrictions#1.0.0",
                   "read": ["/shared"], "read_write": ["/shared/data", "/shared/pub"]}}),
    )
    .await;
    let admin_transfer = s.access_token(&admin_app, TRANSFER).await;
    let (st, b) = s
        .call(
            M::POST,
            "/v0.10/shared_endpoint",
            &admin_transfer,
            Some(
                &json!({"DATA_TYPE": "shared_endpoint", "host_endpoint": m, "host_path": "/shared",
                         "display_name": "Cohort 45 share", "description": "raw genomics"}),
            ),
        )
        .await;
    assert_eq!(st, 200, "{b}");
    assert_eq!(b["code"], "Created");
    let guest = Uuid::parse_str(b["id"].as_str().unwrap()).unwrap();
    World {
        s,
        admin: Who {
            app: admin_app,
            transfer: admin_transfer,
        },
        manager_api,
        mapped: m,
        guest,
        root,
        _dir: dir,
    }
}

impl World<'_> {
    async fn t(&self, m: M, path: &str, who: &Who, body: Option<Value>) -> (u16, Value) {
        self.s
            .call(m, &format!("/v0.10{path}"), &who.transfer, body.as_ref())
            .await
    }
    async fn rule(&self, who: &Who, doc: Value) -> (u16, Value) {
        self.t(
            M::POST,
            &format!("/endpoint/{}/access", self.guest),
            who,
            Some(doc),
        )
        .await
    }
    async fn rules(&self) -> Vec<Value> {
        let (st, b) = self
            .t(
                M::GET,
                &format!("/endpoint/{}/access_list", self.guest),
                &self.admin,
                None,
            )
            .await;
        assert_eq!(st, 200, "{b}");
        b["DATA"].as_array().unwrap().clone()
    }
    async fn ls(&self, who: &Who, path: &str) -> (u16, Value) {
        ls(self.s, &who.transfer, self.guest, path).await
    }
    async fn mkdir(&self, who: &Who, path: &str) -> (u16, Value) {
        self.t(
            M::POST,
            &format!("/operation/endpoint/{}/mkdir", self.guest),
            who,
            Some(json!({"DATA_TYPE": "mkdir", "path": path})),
        )
        .await
    }
}

fn identity_rule(who: &Who, path: &str, perms: &str) -> Value {
    json!({"DATA_TYPE": "access", "principal_type": "identity", "principal": who.id(), "path": path,
           "permissions": perms})
}

#[tokio::test]
async fn permissions_grant_exactly_what_they_say_within_the_restrictions() {
    let s = TestServer::start().await;
    let w = world(&s).await;
    let (reader, writer, stranger, manager) = (
        Who::new(&s).await,
        Who::new(&s).await,
        Who::new(&s).await,
        Who::new(&s).await,
    );

    // Only administrators and access managers manage permissions.
    let (st, b) = w.rule(&stranger, identity_rule(&stranger, "/", "rw")).await;
    assert_eq!(
        (st, b["code"].as_str()),
        (403, Some("PermissionDenied")),
        "{b}"
    );
    let (st, b) = w
        .t(
            M::POST,
            &format!("/endpoint/{}/role", w.guest),
            &w.admin,
            Some(
                json!({"DATA_TYPE": "role", "principal_type": "identity", "principal": manager.id(),
                       "role": "access_manager"}),
            ),
        )
        .await;
    assert_eq!(st, 200, "{b}");
    let role_id = b["id"].as_str().unwrap().to_string();
    let (_, roles) = w
        .t(
            M::GET,
            &format!("/endpoint/{}/role_list", w.guest),
            &manager,
            None,
        )
        .await;
    assert!(
        roles["DATA"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["id"] == role_id.as_str()
                && r["principal"] == manager.id()
                && r["principal_type"] == "identity")
    );

    let (st, b) = w
        .rule(&manager, identity_rule(&reader, "/data/", "r"))
        .await;
    assert_eq!((st, b["code"].as_str()), (200, Some("Created")), "{b}");
    let reader_rule = b["access_id"].as_str().unwrap().to_string();
    let (st, b) = w
        .rule(&manager, identity_rule(&reader, "/data/", "rw"))
        .await;
    assert_eq!(
        (st, b["code"].as_str()),
        (409, Some("Exists")),
        "a second rule for the same principal and path"
    );
    let (st, _) = w.rule(&manager, identity_rule(&writer, "/", "rw")).await;
    assert_eq!(st, 200);

    // Role holders show as implicit rw on / with their role id; rules keep the folder's trailing slash.
    let list = w.rules().await;
    let implicit: Vec<&Value> = list.iter().filter(|r| r["id"].is_null()).collect();
    assert!(implicit.iter().any(|r| r["role_id"] == role_id.as_str()
        && r["role_type"] == "access_manager"
        && r["permissions"] == "rw"
        && r["path"] == "/"));
    assert!(
        implicit
            .iter()
            .any(|r| r["role_type"] == "administrator" && r["principal"] == w.admin.id())
    );
    let mine = list
        .iter()
        .find(|r| r["id"] == reader_rule.as_str())
        .unwrap();
    assert_eq!(
        (mine["path"].as_str(), mine["permissions"].as_str()),
        (Some("/data/"), Some("r"))
    );

    // The reader reads /data and nothing else; cannot write, make folders or rename.
    let (st, b) = w.ls(&reader, "/data/").await;
    assert_eq!(st, 200, "{b}");
    assert_eq!(b["DATA"][0]["name"], "results.csv");
    let (st, b) = w.ls(&reader, "/pub/").await;
    assert_eq!(
        (st, b["code"].as_str()),
        (403, Some("EndpointPermissionDenied")),
        "{b}"
    );
    let (st, b) = w.mkdir(&reader, "/data/new").await;
    assert_eq!(
        (st, b["code"].as_str()),
        (403, Some("EndpointPermissionDenied")),
        "{b}"
    );
    let (st, b) = w
        .t(M::POST, &format!("/operation/endpoint/{}/rename", w.guest), &reader,
           Some(json!({"DATA_TYPE": "rename", "old_path": "/data/results.csv", "new_path": "/data/r.csv"})))
        .await;
    assert_eq!(
        (st, b["code"].as_str()),
        (403, Some("EndpointPermissionDenied")),
        "{b}"
    );
    // An identity without a rule is refused, as the clients expect.
    let (st, b) = w.ls(&stranger, "/data/").await;
    assert_eq!(
        (st, b["code"].as_str()),
        (403, Some("EndpointPermissionDenied")),
        "{b}"
    );

    // A rule never grants more than the gateway and sharing restrictions: rw on / cannot write /ro, nor see
    // /secret at all.
    let (st, b) = w.mkdir(&writer, "/data/new").await;
    assert_eq!(st, 200, "{b}");
    let (st, b) = w.mkdir(&writer, "/ro/new").await;
    assert_eq!(
        (st, b["code"].as_str()),
        (403, Some("EndpointPermissionDenied")),
        "{b}"
    );
    let (st, b) = w.ls(&writer, "/secret/").await;
    assert_eq!(st, 403, "{b}");
    assert!(!w.root.join("shared/ro/new").exists());

    // Downgrading the rule counts at once; deleting the access manager's role takes its rights away.
    let writer_rule = w
        .rules()
        .await
        .into_iter()
        .find(|r| r["principal"] == writer.id())
        .unwrap();
    let (st, b) = w
        .t(
            M::PUT,
            &format!(
                "/endpoint/{}/access/{}",
                w.guest,
                writer_rule["id"].as_str().unwrap()
            ),
            &manager,
            Some(json!({"DATA_TYPE": "access", "permissions": "r"})),
        )
        .await;
    assert_eq!((st, b["code"].as_str()), (200, Some("Updated")), "{b}");
    let (st, _) = w.mkdir(&writer, "/data/again").await;
    assert_eq!(st, 403);
    let (st, _) = w
        .t(
            M::DELETE,
            &format!("/endpoint/{}/role/{role_id}", w.guest),
            &w.admin,
            None,
        )
        .await;
    assert_eq!(st, 200);
    let (st, b) = w.rule(&manager, identity_rule(&stranger, "/", "r")).await;
    assert_eq!(st, 403, "{b}");

    // Delete: the rule is gone and so is the access.
    let (st, b) = w
        .t(
            M::DELETE,
            &format!("/endpoint/{}/access/{reader_rule}", w.guest),
            &w.admin,
            None,
        )
        .await;
    assert_eq!((st, b["code"].as_str()), (200, Some("Deleted")));
    let (st, _) = w.ls(&reader, "/data/").await;
    assert_eq!(st, 403);
    let (st, b) = w
        .t(
            M::GET,
            &format!("/endpoint/{}/access/{reader_rule}", w.guest),
            &w.admin,
            None,
        )
        .await;
    assert_eq!(
        (st, b["code"].as_str()),
        (404, Some("ClientError.NotFound"))
    );
}

#[tokio::test]
async fn expired_rules_and_removed_group_members_lose_access_at_once() {
    let s = TestServer::start().await;
    let w = world(&s).await;
    let (member, visitor) = (Who::new(&s).await, Who::new(&s).await);

    // A group rule follows live membership.
    let groups = s.access_token(&w.admin.app, GROUPS).await;
    let (st, g) = s
        .call(
            M::POST,
            "/v2/groups",
            &groups,
            Some(&json!({"name": "readers"})),
        )
        .await;
    assert_eq!(st, 200, "{g}");
    let gid = g["id"].as_str().unwrap().to_string();
    let (st, b) = s
        .call(
            M::POST,
            &format!("/v2/groups/{gid}"),
            &groups,
            Some(&json!({"add": [{"identity_id": member.id(), "role": "member"}]})),
        )
        .await;
    assert_eq!(st, 200, "{b}");
    let (st, b) = w
        .rule(
            &w.admin,
            json!({"DATA_TYPE": "access", "principal_type": "group", "principal": gid,
                               "path": "/data/", "permissions": "r"}),
        )
        .await;
    assert_eq!(st, 200, "{b}");
    let (st, _) = w.ls(&member, "/data/").await;
    assert_eq!(st, 200);
    let (_, b) = s
        .call(
            M::POST,
            &format!("/v2/groups/{gid}"),
            &groups,
            Some(&json!({"remove": [{"identity_id": member.id()}]})),
        )
        .await;
    assert_eq!(b["remove"][0]["status"], "removed", "{b}");
    let (st, _) = w.ls(&member, "/data/").await;
    assert_eq!(st, 403, "a removed member loses access at the next request");

    // An expired rule stops granting at once.
    let soon = ferry_core::time::rfc3339(s.now() + 3600);
    let mut doc = identity_rule(&visitor, "/data/", "r");
    doc["expiration_date"] = json!(soon);
    let (st, b) = w.rule(&w.admin, doc).await;
    assert_eq!(st, 200, "{b}");
    let (st, _) = w.ls(&visitor, "/data/").await;
    assert_eq!(st, 200);
    s.advance(3601);
    let (st, _) = w.ls(&visitor, "/data/").await;
    assert_eq!(st, 403, "the rule expired");
    let listed = w
        .rules()
        .await
        .into_iter()
        .find(|r| r["principal"] == visitor.id())
        .unwrap();
    assert_eq!(listed["expiration_date"], json!(soon));
}

#[tokio::test]
async fn anonymous_rules_work_without_a_token_only_where_allowed() {
    let s = TestServer::start().await;
    let w = world(&s).await;
    let http = reqwest::Client::new();
    let url = |p: &str| format!("{}/data/{}{p}", s.url, w.guest);

    let (st, _) = http
        .get(url("/pub/readme.txt"))
        .send()
        .await
        .map(|r| (r.status().as_u16(), ()))
        .unwrap();
    assert_eq!(st, 403, "nothing is public before a rule says so");
    let (st, b) = w
        .rule(
            &w.admin,
            json!({"DATA_TYPE": "access", "principal_type": "anonymous", "principal": "",
                               "path": "/pub/", "permissions": "r"}),
        )
        .await;
    assert_eq!(st, 200, "{b}");
    let r = http.get(url("/pub/readme.txt")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await.unwrap(), "public");
    let r = http.get(url("/data/results.csv")).send().await.unwrap();
    assert_eq!(r.status(), 403, "only /pub is public");
    let r = http
        .put(url("/pub/new.txt"))
        .body("x")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403, "anonymous users only read");
    // A browser that is refused is sent to the login page, which brings it back.
    let nofollow = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let r = nofollow
        .get(url("/data/results.csv"))
        .header("accept", "text/html")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    let location = r.headers()["location"].to_str().unwrap().to_string();
    assert!(
        location.starts_with("/v2/web/login?next=%2Fdata%2F"),
        "{location}"
    );
    let page = nofollow
        .get(format!("{}{location}", s.url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        page.contains("name=\"next\"") && page.contains("results.csv"),
        "{page}"
    );
    let r = nofollow
        .get(format!("{}/v2/web/login?next=//evil.example", s.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400, "never a redirect to another site");

    // The mapped collection can forbid anonymous writes: such rules are refused...
    let (st, b) = w
        .manager_api
        .call(M::GET, &format!("/api/collections/{}", w.guest), None)
        .await;
    assert_eq!(st, 200, "{b}");
    let mapped = b["data"][0]["mapped_collection_id"]
        .as_str()
        .unwrap()
        .to_string();
    let (st, b) = w
        .rule(
            &w.admin,
            json!({"DATA_TYPE": "access", "principal_type": "anonymous", "principal": "",
                               "path": "/data/", "permissions": "rw"}),
        )
        .await;
    assert_eq!(st, 200, "{b}");
    let r = http
        .put(url("/data/anon.txt"))
        .body("x")
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        201,
        "allowed while the mapped collection allows anonymous writes"
    );
    w.manager_api
        .ok(
            M::PATCH,
            &format!("/api/collections/{mapped}"),
            Some(json!({"disable_anonymous_writes": true})),
        )
        .await;
    // ...and rules made before lose their write at once.
    let r = http
        .put(url("/data/anon2.txt"))
        .body("x")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert!(!w.root.join("shared/data/anon2.txt").exists());
    let r = http.get(url("/data/anon.txt")).send().await.unwrap();
    assert_eq!(r.status(), 200, "still readable");
    let (st, b) = w
        .rule(
            &w.admin,
            json!({"DATA_TYPE": "access", "principal_type": "anonymous", "principal": "",
                               "path": "/ro/", "permissions": "rw"}),
        )
        .await;
    assert_eq!(
        (st, b["code"].as_str()),
        (400, Some("ClientError.BadRequest")),
        "{b}"
    );
}

#[tokio::test]
async fn bad_permission_documents_get_the_documented_code_and_change_nothing() {
    let s = TestServer::start().await;
    let w = world(&s).await;
    let reader = Who::new(&s).await;
    let before = w.rules().await;
    let base = identity_rule(&reader, "/data/", "r");
    let with = |k: &str, v: Value| {
        let mut d = base.clone();
        d[k] = v;
        d
    };
    for (doc, names) in [
        (with("principal_type", json!("robot")), "principal_type"),
        (with("principal", json!("not-a-uuid")), "principal"),
        (with("principal", json!(Uuid::new_v4())), "no identity"),
        (with("path", json!("/data/../../")), "path"),
        (with("path", json!("data/")), "path"),
        (with("permissions", json!("w")), "permissions"),
        (
            with("expiration_date", json!("2001-01-01T00:00:00Z")),
            "in the past",
        ),
        (
            with("expiration_date", json!("next week")),
            "expiration_date",
        ),
        (with("DATA_TYPE", json!("role")), "DATA_TYPE"),
        (with("colour", json!("red")), "colour"),
        (
            with("notify_email", json!("not an address")),
            "notify_email",
        ),
        (
            json!({"DATA_TYPE": "access", "principal_type": "anonymous", "principal": reader.id(),
                "path": "/", "permissions": "r"}),
            "principal",
        ),
        (
            json!({"DATA_TYPE": "access", "principal_type": "identity", "principal": reader.id()}),
            "permissions",
        ),
    ] {
        let (st, b) = w.rule(&w.admin, doc.clone()).await;
        assert_eq!(
            (st, b["code"].as_str()),
            (400, Some("ClientError.BadRequest")),
            "{doc}: {b}"
        );
        assert!(b["message"].as_str().unwrap().contains(names), "{doc}: {b}");
    }
    let (st, b) = s
        .call(
            M::POST,
            &format!("/v0.10/endpoint/{}/access", Uuid::new_v4()),
            &w.admin.transfer,
            Some(&base),
        )
        .await;
    assert_eq!(
        (st, b["code"].as_str()),
        (404, Some("EndpointNotFound")),
        "{b}"
    );
    let (st, b) = s
        .call(
            M::POST,
            "/v0.10/endpoint/not-an-id/access",
            &w.admin.transfer,
            Some(&base),
        )
        .await;
    assert_eq!(
        (st, b["code"].as_str()),
        (404, Some("EndpointNotFound")),
        "{b}"
    );
    let r = s
        .http
        .post(format!("{}/v0.10/endpoint/{}/access", s.url, w.guest))
        .bearer_auth(&w.admin.transfer)
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    // Permissions exist only on guest collections.
    let (st, b) = w
        .t(M::GET, &format!("/endpoint/{}", w.guest), &w.admin, None)
        .await;
    assert_eq!(st, 200, "{b}");
    let host = b["host_endpoint_id"].as_str().unwrap().to_string();
    let (st, b) = s
        .call(
            M::POST,
            &format!("/v0.10/endpoint/{host}/access"),
            &w.admin.transfer,
            Some(&base),
        )
        .await;
    assert_eq!(
        (st, b["code"].as_str()),
        (400, Some("ClientError.BadRequest")),
        "{b}"
    );
    assert_eq!(w.rules().await, before, "nothing changed");

    // At most 1,000 rules per guest collection.
    let mut made = before.iter().filter(|r| !r["id"].is_null()).count();
    while made < 1000 {
        let (st, b) = w
            .rule(
                &w.admin,
                identity_rule(&reader, &format!("/data/f{made}"), "r"),
            )
            .await;
        assert_eq!(st, 200, "{b}");
        made += 1;
    }
    let (st, b) = w
        .rule(&w.admin, identity_rule(&reader, "/data/one-more", "r"))
        .await;
    assert_eq!(
        (st, b["code"].as_str()),
        (400, Some("ClientError.BadRequest")),
        "{b}"
    );
    assert!(b["message"].as_str().unwrap().contains("1000"), "{b}");
}

#[tokio::test]
async fn the_collection_index_search_roles_and_bookmarks() {
    let s = TestServer::start().await;
    let w = world(&s).await;
    let (reader, stranger) = (Who::new(&s).await, Who::new(&s).await);
    let (st, _) = w
        .rule(&w.admin, identity_rule(&reader, "/data/", "r"))
        .await;
    assert_eq!(st, 200);

    // The document the clients read: GCSv5 types, owner_id is the endpoint (the CLI finds the GCS endpoint
    // there), gcs_manager_url, and the caller's roles.
    let (st, doc) = w
        .t(M::GET, &format!("/endpoint/{}", w.guest), &w.admin, None)
        .await;
    assert_eq!(st, 200, "{doc}");
    assert_eq!(doc["entity_type"], "GCSv5_guest_collection");
    assert_eq!(doc["is_globus_connect"], false);
    assert_eq!(doc["owner_id"], s.running.endpoint.id().to_string());
    assert_eq!(doc["gcs_manager_url"], s.url.as_str());
    assert!(
        doc["my_effective_roles"]
            .as_array()
            .unwrap()
            .contains(&json!("administrator"))
    );
    let host = doc["host_endpoint_id"].as_str().unwrap().to_string();
    let (_, hdoc) = w
        .t(M::GET, &format!("/endpoint/{host}"), &w.admin, None)
        .await;
    assert_eq!(hdoc["entity_type"], "GCSv5_mapped_collection");
    let (_, edoc) = w
        .t(
            M::GET,
            &format!("/endpoint/{}", s.running.endpoint.id()),
            &w.admin,
            None,
        )
        .await;
    assert_eq!(
        (
            edoc["entity_type"].as_str(),
            edoc["non_functional"].as_bool()
        ),
        (Some("GCSv5_endpoint"), Some(true))
    );
    let (st, b) = w
        .t(
            M::GET,
            &format!("/endpoint/{}", Uuid::new_v4()),
            &w.admin,
            None,
        )
        .await;
    assert_eq!((st, b["code"].as_str()), (404, Some("EndpointNotFound")));

    // Search: full text, scopes, entity types, paging.
    let search = |who: &Who, q: &str| {
        let path = format!("/endpoint_search?{q}");
        let t = who.transfer.clone();
        let s = &s;
        async move { s.call(M::GET, &format!("/v0.10{path}"), &t, None).await }
    };
    let (st, b) = search(&reader, "filter_fulltext=cohort%20genomics").await;
    assert_eq!(st, 200, "{b}");
    assert_eq!(b["DATA"].as_array().unwrap().len(), 1, "{b}");
    assert_eq!(b["DATA"][0]["id"], w.guest.to_string());
    let (_, b) = search(&reader, "filter_scope=shared-with-me").await;
    assert_eq!(b["DATA"].as_array().unwrap().len(), 1);
    let (_, b) = search(&stranger, "filter_scope=shared-with-me").await;
    assert_eq!(b["DATA"], json!([]));
    let (_, b) = search(&w.admin, "filter_scope=shared-by-me").await;
    assert_eq!(b["DATA"][0]["id"], w.guest.to_string());
    let (_, b) = search(&w.admin, &format!("filter_host_endpoint={host}")).await;
    assert_eq!(b["DATA"].as_array().unwrap().len(), 1);
    let (_, b) = search(
        &w.admin,
        "filter_entity_type=GCSv5_mapped_collection&limit=1",
    )
    .await;
    assert!(
        b["DATA"]
            .as_array()
            .unwrap()
            .iter()
            .all(|d| d["entity_type"] == "GCSv5_mapped_collection")
    );
    assert_eq!(b["DATA"].as_array().unwrap().len(), 1);
    assert_eq!(
        b["has_next_page"], true,
        "the default collection and the test's mapped collection: {b}"
    );
    for bad in [
        "filter_scope=everything",
        "filter_entity_type=GCSv9",
        "limit=101",
        "offset=990&limit=20",
        "filter_owner_id=x",
    ] {
        let (st, b) = search(&w.admin, bad).await;
        assert_eq!(
            (st, b["code"].as_str()),
            (400, Some("ClientError.BadRequest")),
            "{bad}: {b}"
        );
    }
    let (_, b) = w
        .t(
            M::GET,
            &format!("/endpoint/{host}/my_shared_endpoint_list"),
            &w.admin,
            None,
        )
        .await;
    assert_eq!(b["DATA"][0]["id"], w.guest.to_string());
    let (st, b) = w
        .t(
            M::GET,
            &format!("/endpoint/{host}/shared_endpoint_list"),
            &reader,
            None,
        )
        .await;
    assert_eq!(st, 403, "{b}");
    let (_, b) = w
        .t(
            M::GET,
            &format!("/endpoint/{}/server_list", w.guest),
            &reader,
            None,
        )
        .await;
    assert_eq!(b["DATA"][0]["scheme"], "http");

    // Update and delete go through the collection's administrators.
    let (st, b) = w
        .t(
            M::PUT,
            &format!("/endpoint/{}", w.guest),
            &reader,
            Some(json!({"display_name": "mine"})),
        )
        .await;
    assert_eq!(st, 403, "{b}");
    let (st, b) = w
        .t(
            M::PUT,
            &format!("/endpoint/{}", w.guest),
            &w.admin,
            Some(json!({"DATA_TYPE": "endpoint", "display_name": "Renamed", "keywords": "a, b"})),
        )
        .await;
    assert_eq!((st, b["code"].as_str()), (200, Some("Updated")), "{b}");
    let (_, doc) = w
        .t(M::GET, &format!("/endpoint/{}", w.guest), &reader, None)
        .await;
    assert_eq!(
        (doc["display_name"].as_str(), doc["keywords"].as_str()),
        (Some("Renamed"), Some("a,b"))
    );
    let (st, b) = w
        .t(
            M::PUT,
            &format!("/endpoint/{}", w.guest),
            &w.admin,
            Some(json!({"owner_id": "x"})),
        )
        .await;
    assert_eq!(st, 400, "{b}");

    // Bookmarks are their owner's alone.
    let (st, bm) = w
        .t(M::POST, "/bookmark", &reader,
           Some(json!({"DATA_TYPE": "bookmark", "name": "results", "endpoint_id": w.guest, "path": "/data/"})))
        .await;
    assert_eq!(st, 200, "{bm}");
    let id = bm["id"].as_str().unwrap().to_string();
    let (st, b) = w
        .t(
            M::POST,
            "/bookmark",
            &reader,
            Some(json!({"name": "results", "endpoint_id": w.guest, "path": "/data/"})),
        )
        .await;
    assert_eq!((st, b["code"].as_str()), (409, Some("Exists")));
    let (_, b) = w.t(M::GET, "/bookmark_list", &reader, None).await;
    assert_eq!(b["DATA"][0]["name"], "results");
    let (st, _) = w
        .t(M::GET, &format!("/bookmark/{id}"), &stranger, None)
        .await;
    assert_eq!(st, 404);
    let (st, b) = w
        .t(
            M::PUT,
            &format!("/bookmark/{id}"),
            &reader,
            Some(json!({"name": "renamed"})),
        )
        .await;
    assert_eq!((st, b["name"].as_str()), (200, Some("renamed")));
    let (st, b) = w
        .t(
            M::POST,
            "/bookmark",
            &stranger,
            Some(json!({"name": "x", "endpoint_id": Uuid::new_v4(), "path": "/"})),
        )
        .await;
    assert_eq!((st, b["code"].as_str()), (404, Some("EndpointNotFound")));
    let (st, _) = w
        .t(M::DELETE, &format!("/bookmark/{id}"), &reader, None)
        .await;
    assert_eq!(st, 200);
    let (_, b) = w.t(M::GET, "/bookmark_list", &reader, None).await;
    assert_eq!(b["DATA"], json!([]));

    // Deleting the guest collection through Transfer.
    let (st, b) = w
        .t(M::DELETE, &format!("/endpoint/{}", w.guest), &w.admin, None)
        .await;
    assert_eq!((st, b["code"].as_str()), (200, Some("Deleted")), "{b}");
    let (st, _) = w.ls(&reader, "/data/").await;
    assert_eq!(st, 404);
}

/// A guest authentication policy that asks for a sign-in within 10 minutes: a person's token counts while the
/// sign-in behind it is that recent, then not until they sign in again; an application's own token (no sign-in)
/// never; a task submitted in time runs to its end.
#[tokio::test]
async fn a_high_assurance_policy_asks_for_a_recent_sign_in() {
    let s = TestServer::start().await;
    let w = world(&s).await;
    let auth = s.access_token(&w.admin.app, "openid").await;
    let (st, p) = s
        .call(
            M::POST,
            "/v2/api/policies",
            &auth,
            Some(
                &json!({"policy": {"display_name": "recent sign-in", "high_assurance": true,
                                    "authentication_assurance_timeout": 600}}),
            ),
        )
        .await;
    assert_eq!(st, 200, "{p}");
    w.manager_api
        .ok(
            M::PATCH,
            &format!("/api/collections/{}", w.mapped),
            Some(json!({"guest_auth_policy_id": p["policy"]["id"]})),
        )
        .await;
    let ana = s.person("ana").await;
    let app = s.app(ClientKind::Confidential).await;
    let application = Who::new(&s).await;
    for id in [ana.id.as_str(), application.id()] {
        let (st, b) = w
            .rule(
                &w.admin,
                json!({"DATA_TYPE": "access", "principal_type": "identity", "principal": id,
                       "path": "/data/", "permissions": "rw"}),
            )
            .await;
        assert_eq!(st, 200, "{b}");
    }
    let sign_in = || async {
        let t = s.login(&app, &ana, TRANSFER).await;
        t["access_token"].as_str().unwrap().to_string()
    };
    let first = sign_in().await;
    assert_eq!(ls(&s, &first, w.guest, "/data/").await.0, 200);
    // An application's token has no sign-in behind it.
    let (st, b) = w.ls(&application, "/data/").await;
    assert_eq!(st, 403, "{b}");
    assert!(
        b["message"].as_str().unwrap().contains("sign in again"),
        "{b}"
    );
    s.advance(601);
    let (st, b) = ls(&s, &first, w.guest, "/data/").await;
    assert_eq!(st, 403, "{b}");
    assert!(
        b["message"]
            .as_str()
            .unwrap()
            .contains("within the last 10 minutes"),
        "{b}"
    );
    // Signed in again: the new token counts, and a task submitted with it runs on past the timeout.
    let again = sign_in().await;
    assert_eq!(ls(&s, &again, w.guest, "/data/").await.0, 200);
    let (st, sub) = s.call(M::GET, "/v0.10/submission_id", &again, None).await;
    assert_eq!(st, 200, "{sub}");
    let (st, done) = s
        .call(
            M::POST,
            "/v0.10/transfer",
            &again,
            Some(
                &json!({"DATA_TYPE": "transfer", "submission_id": sub["value"],
                         "source_endpoint": w.guest, "destination_endpoint": w.guest,
                         "DATA": [{"DATA_TYPE": "transfer_item", "source_path": "/data/results.csv",
                                   "destination_path": "/data/copy.csv"}]}),
            ),
        )
        .await;
    assert_eq!(st, 202, "{done}");
    s.advance(601);
    let id = done["task_id"].as_str().unwrap();
    let mut last = Value::Null;
    for _ in 0..600 {
        let (_, t) = s
            .call(M::GET, &format!("/v0.10/task/{id}"), &again, None)
            .await;
        last = t.clone();
        if t["status"] == "SUCCEEDED" {
            assert_eq!(
                std::fs::read(w.root.join("shared/data/copy.csv")).unwrap(),
                b"a,b\n1,2\n"
            );
            return;
        }
        assert_ne!(t["status"], "FAILED", "{t}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("the task did not end: {last}");
}
