//! The endpoint manager API (`/api`): documents, validation, the role table, guest collections inside the
//! sharing restrictions, and `access explain` on every path-restriction vector.

use ferry_core::ClientKind;
use ferry_tests::endpoint::{Api, api, endpoint_id, gateway, ls, mapped};
use ferry_tests::{App, TestServer};
use reqwest::Method as M;
use serde_json::{Value, json};
use uuid::Uuid;

const TRANSFER: &str = "urn:globus:auth:scope:transfer.api.globus.org:all";

#[tokio::test]
async fn info_endpoint_and_authentication() {
    let s = TestServer::start().await;
    let (st, b) = s.call(M::GET, "/api/info", "", None).await;
    assert_eq!(st, 200);
    assert_eq!(b["data"][0]["endpoint_id"], endpoint_id(&s).to_string());
    assert_eq!(b["data"][1]["display_name"], "POSIX");
    // No token, or a token for another resource server: 401 in the result envelope.
    let (st, b) = s.call(M::GET, "/api/endpoint", "nope", None).await;
    assert_eq!((st, b["code"].as_str()), (401, Some("unauthorized")));
    let admin = s.admin_app();
    let transfer = s.access_token(&admin, TRANSFER).await;
    let (st, _) = s.call(M::GET, "/api/collections", &transfer, None).await;
    assert_eq!(st, 401, "a Transfer token is not valid at the manager API");
    let a = api(&s, &admin).await;
    let ep = a.ok(M::GET, "/api/endpoint", None).await;
    assert_eq!(ep["DATA_TYPE"], "endpoint#1.2.0");
    let ep = a
        .ok(
            M::PATCH,
            "/api/endpoint",
            Some(json!({"display_name": "Lab DTN", "keywords": ["x"]})),
        )
        .await;
    assert_eq!(
        (ep["display_name"].as_str(), ep["keywords"][0].as_str()),
        (Some("Lab DTN"), Some("x"))
    );
    let (st, b) = a
        .call(M::PATCH, "/api/endpoint", Some(json!({"colour": "red"})))
        .await;
    assert_eq!(st, 400);
    assert!(b["message"].as_str().unwrap().contains("colour"), "{b}");
    // The default gateway and collection from the first start are there.
    assert_eq!(a.count("/api/storage_gateways").await, 1);
    let c = a
        .ok(
            M::GET,
            &format!("/api/collections/{}", s.defaults().collection_id),
            None,
        )
        .await;
    assert_eq!(c["collection_type"], "mapped");
    assert!(
        c["https_url"]
            .as_str()
            .unwrap()
            .ends_with(&c["id"].as_str().unwrap().to_string())
    );
}

#[tokio::test]
async fn invalid_documents_are_refused_naming_the_field_and_change_nothing() {
    let s = TestServer::start().await;
    let a = api(&s, &s.admin_app()).await;
    let (g, _dir) = gateway(&a, json!({"read_write": ["/data"]}), json!({})).await;
    let gateways = a.count("/api/storage_gateways").await;
    let collections = a.count("/api/collections").await;
    let base = json!({"display_name": "bad", "root_path": "/tmp"});
    let with = |k: &str, v: Value| {
        let mut d = base.clone();
        d[k] = v;
        d
    };
    for (doc, field) in [
        (
            with("restrict_paths", json!({"read": ["data"]})),
            "restrict_paths.read[0]",
        ),
        (
            with("restrict_paths", json!({"read": ["/x"], "none": ["/x"]})),
            "restrict_paths",
        ),
        (
            with(
                "restrict_paths",
                json!({"DATA_TYPE": "path_restrictions#9.0.0"}),
            ),
            "DATA_TYPE",
        ),
        (with("restrict_paths", json!({"write": ["/x"]})), "write"),
        (with("colour", json!("red")), "colour"),
        (with("DATA_TYPE", json!("collection#1.0.0")), "DATA_TYPE"),
        (with("root", json!("/no/such/folder")), "root"),
        (
            with(
                "connector_id",
                json!("7643e831-5f6c-4b47-a07f-8ee90f401d23"),
            ),
            "connector_id",
        ),
        (with("allowed_domains", json!("uni.edu")), "allowed_domains"),
        (
            with(
                "identity_mappings",
                json!([{"DATA_TYPE": "expression_identity_mapping#1.0.0",
                        "mappings": [{"source": "{username}", "match": "*x", "output": "u"}]}]),
            ),
            "identity_mappings[0]",
        ),
        (json!({"root_path": "/tmp"}), "display_name"),
    ] {
        let (st, b) = a
            .call(M::POST, "/api/storage_gateways", Some(doc.clone()))
            .await;
        assert_eq!(st, 400, "{doc}: {b}");
        assert_eq!(b["code"], "bad_request");
        let msg = b["message"].as_str().unwrap();
        assert!(msg.contains(field), "{doc}: expected {field} in {msg:?}");
    }
    let path = format!("/api/storage_gateways/{g}");
    for (doc, field) in [
        (
            json!({"connector_id": "7643e831-5f6c-4b47-a07f-8ee90f401d23"}),
            "connector_id",
        ),
        (
            json!({"restrict_paths": {"read": ["relative"]}}),
            "restrict_paths.read[0]",
        ),
        (json!({"high_assurance": true}), "high_assurance"),
        (
            json!({"authentication_timeout_mins": 60}),
            "authentication_timeout_mins",
        ),
    ] {
        let (st, b) = a.call(M::PATCH, &path, Some(doc.clone())).await;
        assert_eq!(st, 400, "{doc}: {b}");
        assert!(b["message"].as_str().unwrap().contains(field), "{b}");
    }
    let coll = |base_path: &str| {
        json!({"collection_type": "mapped", "display_name": "c", "storage_gateway_id": g,
               "collection_base_path": base_path})
    };
    for (doc, field) in [
        (coll("/data/../etc"), "collection_base_path"),
        (coll("relative"), "collection_base_path"),
        (
            json!({"collection_type": "mapped", "display_name": "c", "collection_base_path": "/"}),
            "storage_gateway_id",
        ),
        (
            json!({"collection_type": "shared", "display_name": "c"}),
            "collection_type",
        ),
        (
            {
                let mut d = coll("/");
                d["sharing_restrict_paths"] = json!({"none": ["nope"]});
                d
            },
            "sharing_restrict_paths",
        ),
        (
            {
                let mut d = coll("/");
                d["mapped_collection_id"] = json!(g);
                d
            },
            "mapped_collection_id",
        ),
        (
            {
                let mut d = coll("/");
                d["display_name"] = json!("two\nlines");
                d
            },
            "display_name",
        ),
        (
            {
                let mut d = coll("/");
                d["public"] = json!("yes");
                d
            },
            "public",
        ),
    ] {
        let (st, b) = a.call(M::POST, "/api/collections", Some(doc.clone())).await;
        assert_eq!(st, 400, "{doc}: {b}");
        assert!(b["message"].as_str().unwrap().contains(field), "{doc}: {b}");
    }
    let (st, b) = a
        .call(M::POST, "/api/collections", Some(json!([1, 2])))
        .await;
    assert_eq!(st, 400, "{b}");
    let (st, _) = a.call(M::GET, "/api/collections?page_size=0", None).await;
    assert_eq!(st, 400);
    let (st, _) = a
        .call(M::GET, "/api/collections?filter=everything", None)
        .await;
    assert_eq!(st, 400);
    let (st, _) = a.call(M::GET, "/api/collections/not-an-id", None).await;
    assert_eq!(st, 404);
    // Nothing changed.
    assert_eq!(a.count("/api/storage_gateways").await, gateways);
    assert_eq!(a.count("/api/collections").await, collections);
    let stored = a
        .ok(M::GET, &format!("{path}?include=private_policies"), None)
        .await;
    assert_eq!(stored["restrict_paths"]["read_write"], json!(["/data"]));
    // Without asking, private policies are not shown.
    let shown = a.ok(M::GET, &path, None).await;
    assert!(shown.get("restrict_paths").is_none() && shown.get("root").is_none());
    // Paging.
    for _ in 0..3 {
        gateway(&a, Value::Null, json!({})).await;
    }
    let (_, p1) = a
        .call(M::GET, "/api/storage_gateways?page_size=2", None)
        .await;
    assert_eq!(
        (
            p1["data"].as_array().unwrap().len(),
            p1["has_next_page"].as_bool()
        ),
        (2, Some(true))
    );
    let marker = p1["marker"].as_str().unwrap();
    let (_, p2) = a
        .call(
            M::GET,
            &format!("/api/storage_gateways?page_size=2&marker={marker}"),
            None,
        )
        .await;
    assert_eq!(p2["data"].as_array().unwrap().len(), 2);
    // 5 gateways: the default, the test's, and three more.
    let marker = p2["marker"].as_str().unwrap();
    let (_, p3) = a
        .call(
            M::GET,
            &format!("/api/storage_gateways?page_size=2&marker={marker}"),
            None,
        )
        .await;
    assert_eq!(p3["data"].as_array().unwrap().len(), 1);
    assert_eq!(p3["has_next_page"], false);
    assert!(p3.get("marker").is_none());
}

/// Apps are principals: each test principal is a confidential client with its own token.
async fn principal(s: &TestServer) -> (App, String) {
    let app = s.app(ClientKind::Confidential).await;
    let urn = format!("urn:globus:auth:identity:{}", app.id);
    (app, urn)
}

#[tokio::test]
async fn roles_grant_exactly_what_the_role_table_says() {
    let s = TestServer::start().await;
    let admin = api(&s, &s.admin_app()).await;
    let (g, _dir) = gateway(&admin, Value::Null, json!({})).await;
    let c = mapped(&admin, g, json!({"public": false})).await;
    let other = mapped(&admin, g, json!({"public": false})).await;
    let (none_app, _) = principal(&s).await;
    let (monitor_app, monitor) = principal(&s).await;
    let (coll_admin_app, coll_admin) = principal(&s).await;
    let (am_app, am) = principal(&s).await;
    let (ep_admin_app, ep_admin) = principal(&s).await;
    let grant = |principal: &str, role: &str, collection: Option<Uuid>| {
        let mut d = json!({"DATA_TYPE": "role#1.0.0", "principal": principal, "role": role});
        if let Some(c) = collection {
            d["collection"] = json!(c);
        }
        d
    };
    admin
        .ok(
            M::POST,
            "/api/roles",
            Some(grant(&monitor, "activity_monitor", None)),
        )
        .await;
    admin
        .ok(
            M::POST,
            "/api/roles",
            Some(grant(&coll_admin, "administrator", Some(c))),
        )
        .await;
    admin
        .ok(
            M::POST,
            "/api/roles",
            Some(grant(&am, "access_manager", Some(c))),
        )
        .await;
    admin
        .ok(
            M::POST,
            "/api/roles",
            Some(grant(&ep_admin, "administrator", None)),
        )
        .await;
    let (st, _) = admin
        .call(
            M::POST,
            "/api/roles",
            Some(grant(&am, "access_manager", Some(c))),
        )
        .await;
    assert_eq!(st, 409, "the same role twice");
    let (st, b) = admin
        .call(
            M::POST,
            "/api/roles",
            Some(grant(&am, "access_manager", None)),
        )
        .await;
    assert_eq!(st, 400, "access_manager is a collection role: {b}");
    let (st, _) = admin
        .call(
            M::POST,
            "/api/roles",
            Some(grant(
                "urn:globus:auth:identity:nobody",
                "administrator",
                None,
            )),
        )
        .await;
    assert_eq!(st, 400);

    let none = api(&s, &none_app).await;
    let monitor = api(&s, &monitor_app).await;
    let coll_admin = api(&s, &coll_admin_app).await;
    let am = api(&s, &am_app).await;
    let ep_admin = api(&s, &ep_admin_app).await;
    let new_gateway = json!({"display_name": "g2", "root_path": "/tmp"});
    let cpath = format!("/api/collections/{c}");
    let opath = format!("/api/collections/{other}");
    let rename = json!({"description": "changed"});
    let (probe, probe_urn) = principal(&s).await;
    let _ = probe;

    // (caller, [manage gateways, see private c, modify c, modify other, grant on c, grant on endpoint, list endpoint roles])
    let table: [(&Api, [bool; 7]); 5] = [
        (&none, [false, false, false, false, false, false, false]),
        (&monitor, [false, true, false, false, false, false, true]),
        (&coll_admin, [false, true, true, false, true, false, false]),
        (&am, [false, true, false, false, false, false, false]),
        (&ep_admin, [true, true, true, true, true, true, true]),
    ];
    for (i, (who, expect)) in table.iter().enumerate() {
        let ok = |st: u16| (200..300).contains(&st);
        let (st, _) = who
            .call(M::POST, "/api/storage_gateways", Some(new_gateway.clone()))
            .await;
        assert_eq!(ok(st), expect[0], "row {i}: create gateway ({st})");
        let (st, _) = who.call(M::GET, &cpath, None).await;
        assert_eq!(ok(st), expect[1], "row {i}: see private collection ({st})");
        if !expect[1] {
            assert_eq!(st, 404, "a private collection is not disclosed");
        }
        let (st, _) = who.call(M::PATCH, &cpath, Some(rename.clone())).await;
        assert_eq!(ok(st), expect[2], "row {i}: modify collection ({st})");
        let (st, _) = who.call(M::PATCH, &opath, Some(rename.clone())).await;
        assert_eq!(ok(st), expect[3], "row {i}: modify other collection ({st})");
        let (st, r) = who
            .call(
                M::POST,
                "/api/roles",
                Some(grant(&probe_urn, "activity_monitor", Some(c))),
            )
            .await;
        assert_eq!(
            ok(st),
            expect[4],
            "row {i}: grant a role on the collection ({st})"
        );
        if ok(st) {
            admin
                .ok(
                    M::DELETE,
                    &format!("/api/roles/{}", r["data"][0]["id"].as_str().unwrap()),
                    None,
                )
                .await;
        }
        let (st, r) = who
            .call(
                M::POST,
                "/api/roles",
                Some(grant(&probe_urn, "activity_monitor", None)),
            )
            .await;
        assert_eq!(ok(st), expect[5], "row {i}: grant an endpoint role ({st})");
        if ok(st) {
            admin
                .ok(
                    M::DELETE,
                    &format!("/api/roles/{}", r["data"][0]["id"].as_str().unwrap()),
                    None,
                )
                .await;
        }
        let (st, _) = who.call(M::GET, "/api/roles", None).await;
        assert_eq!(ok(st), expect[6], "row {i}: list endpoint roles ({st})");
    }
    // The owner's role and a creator's role are shown and cannot be deleted.
    let (_, roles) = admin.call(M::GET, "/api/roles", None).await;
    let owner_role = roles["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["role"] == "owner")
        .expect("the owner role is listed")
        .clone();
    let (st, _) = admin
        .call(
            M::DELETE,
            &format!("/api/roles/{}", owner_role["id"].as_str().unwrap()),
            None,
        )
        .await;
    assert_eq!(st, 409);
    // A mapped collection is delete-protected by default.
    let (st, b) = coll_admin.call(M::DELETE, &cpath, None).await;
    assert_eq!(st, 409, "{b}");
    coll_admin
        .ok(M::PATCH, &cpath, Some(json!({"delete_protected": false})))
        .await;
    let (st, _) = none.call(M::DELETE, &cpath, None).await;
    assert_eq!(st, 404);
    coll_admin.ok(M::DELETE, &cpath, None).await;
    let (st, _) = admin.call(M::GET, &cpath, None).await;
    assert_eq!(st, 404);
}

/// The admin client's account on a gateway without identity mapping: its client id.
async fn admin_setup(s: &TestServer) -> (Api<'_>, String) {
    let admin = s.admin_app();
    let a = api(s, &admin).await;
    let transfer = s.access_token(&admin, TRANSFER).await;
    (a, transfer)
}

#[tokio::test]
async fn guest_collections_stay_inside_the_sharing_restrictions_and_are_cut_off_at_once() {
    let s = TestServer::start().await;
    let (a, transfer) = admin_setup(&s).await;
    let (g, dir) = gateway(
        &a,
        json!({"read_write": ["/"], "none": ["/private"]}),
        json!({}),
    )
    .await;
    for d in ["shared/a", "private", "other"] {
        std::fs::create_dir_all(dir.path().join(d)).unwrap();
    }
    std::fs::write(dir.path().join("shared/a/f.txt"), b"data").unwrap();
    let m = mapped(
        &a,
        g,
        json!({"allow_guest_collections": true,
               "sharing_restrict_paths": {"DATA_TYPE": "path_restrictions#1.0.0", "read_write": ["/shared"]}}),
    )
    .await;
    let guest = |base: &str| {
        json!({"DATA_TYPE": "collection#1.0.0", "collection_type": "guest", "display_name": "share",
               "mapped_collection_id": m, "collection_base_path": base})
    };
    let before = a.count("/api/collections").await;
    for (base, status) in [
        ("/other", 403),
        ("/private", 403),
        ("/shared/missing", 400),
        ("/shared/../other", 400),
        ("/shared/a/f.txt", 400),
    ] {
        let (st, b) = a.call(M::POST, "/api/collections", Some(guest(base))).await;
        assert_eq!(st, status, "{base}: {b}");
    }
    assert_eq!(
        a.count("/api/collections").await,
        before,
        "refusals create nothing"
    );
    let gc = a
        .ok(M::POST, "/api/collections", Some(guest("/shared/a")))
        .await;
    let gid = Uuid::parse_str(gc["id"].as_str().unwrap()).unwrap();
    assert_eq!(gc["root_path"], "/shared/a");
    assert!(
        gc["user_credential_id"].is_string(),
        "a credential was made for the creator: {gc}"
    );

    let (st, b) = ls(&s, &transfer, gid, "/").await;
    assert_eq!(st, 200, "{b}");
    assert_eq!(b["DATA"][0]["name"], "f.txt");
    // Removing allow_guest_collections cuts the existing guest collection off at once...
    a.ok(
        M::PATCH,
        &format!("/api/collections/{m}"),
        Some(json!({"allow_guest_collections": false})),
    )
    .await;
    let (st, b) = ls(&s, &transfer, gid, "/").await;
    assert_eq!(
        (st, b["code"].as_str()),
        (403, Some("EndpointPermissionDenied")),
        "{b}"
    );
    let (st, _) = a
        .call(M::POST, "/api/collections", Some(guest("/shared")))
        .await;
    assert_eq!(st, 403, "and no new ones");
    // ... and restoring it restores access, as narrowing the sharing restrictions narrows it.
    a.ok(
        M::PATCH,
        &format!("/api/collections/{m}"),
        Some(json!({"allow_guest_collections": true})),
    )
    .await;
    assert_eq!(ls(&s, &transfer, gid, "/").await.0, 200);
    a.ok(
        M::PATCH,
        &format!("/api/collections/{m}"),
        Some(json!({"sharing_restrict_paths": {"read_write": ["/other"]}})),
    )
    .await;
    assert_eq!(ls(&s, &transfer, gid, "/").await.0, 403);
    a.ok(
        M::PATCH,
        &format!("/api/collections/{m}"),
        Some(json!({"sharing_restrict_paths": null})),
    )
    .await;
    assert_eq!(ls(&s, &transfer, gid, "/").await.0, 200);
    // The creator denied on the gateway: the share acts as their account, so it stops too.
    let admin_account = s.admin_app().id;
    a.ok(
        M::PATCH,
        &format!("/api/storage_gateways/{g}"),
        Some(json!({"users_deny": [admin_account]})),
    )
    .await;
    let (st, b) = ls(&s, &transfer, gid, "/").await;
    assert_eq!(st, 403, "{b}");
    assert!(b["message"].as_str().unwrap().contains("users_deny"), "{b}");
    // Deleting the mapped collection deletes its guest collections.
    a.ok(
        M::PATCH,
        &format!("/api/collections/{m}"),
        Some(json!({"delete_protected": false})),
    )
    .await;
    a.ok(M::DELETE, &format!("/api/collections/{m}"), None)
        .await;
    assert_eq!(
        a.call(M::GET, &format!("/api/collections/{gid}"), None)
            .await
            .0,
        404
    );
}

#[tokio::test]
async fn sharing_policies_and_credentials() {
    let s = TestServer::start().await;
    let (a, _) = admin_setup(&s).await;
    let (g, dir) = gateway(&a, Value::Null, json!({})).await;
    std::fs::create_dir_all(dir.path().join("proj/x")).unwrap();
    let m = mapped(
        &a,
        g,
        json!({"allow_guest_collections": true, "sharing_restrict_paths": {"none": ["/"]}}),
    )
    .await;
    let me = s.admin_app().id;
    let guest = json!({"collection_type": "guest", "display_name": "p", "mapped_collection_id": m,
                       "collection_base_path": "/proj/x"});
    assert_eq!(
        a.call(M::POST, "/api/collections", Some(guest.clone()))
            .await
            .0,
        403
    );
    // A policy for another account does not help; one for the creator's account does.
    let policy = |users: Value| {
        json!({"DATA_TYPE": "sharing_policy#1.0.0", "collection_id": m, "users": users,
               "sharing_restrict_paths": {"read_write": ["/proj"]}})
    };
    a.ok(
        M::POST,
        "/api/sharing_policies",
        Some(policy(json!(["someone-else"]))),
    )
    .await;
    assert_eq!(
        a.call(M::POST, "/api/collections", Some(guest.clone()))
            .await
            .0,
        403
    );
    let p = a
        .ok(M::POST, "/api/sharing_policies", Some(policy(json!([me]))))
        .await;
    a.ok(M::POST, "/api/collections", Some(guest.clone())).await;
    assert_eq!(
        a.count(&format!("/api/sharing_policies?collection_id={m}"))
            .await,
        2
    );
    assert_eq!(
        a.count(&format!(
            "/api/sharing_policies?collection_id={m}&username={me}"
        ))
        .await,
        1
    );
    let (st, b) = a
        .call(
            M::POST,
            "/api/sharing_policies",
            Some(json!({"collection_id": m, "sharing_restrict_paths": {"read": ["x"]}})),
        )
        .await;
    assert_eq!(st, 400, "{b}");
    a.ok(
        M::DELETE,
        &format!("/api/sharing_policies/{}", p["id"].as_str().unwrap()),
        None,
    )
    .await;
    assert_eq!(
        a.call(M::GET, "/api/sharing_policies", None).await.0,
        400,
        "collection_id is required"
    );
    // Credentials: the guest collection made one; a second for the same account conflicts.
    let creds = a
        .count(&format!("/api/user_credentials?storage_gateway={g}"))
        .await;
    assert_eq!(creds, 1);
    let (st, _) = a
        .call(
            M::POST,
            "/api/user_credentials",
            Some(json!({"DATA_TYPE": "user_credential#1.0.0", "storage_gateway_id": g})),
        )
        .await;
    assert_eq!(st, 409);
    let (st, b) = a
        .call(
            M::POST,
            "/api/user_credentials",
            Some(json!({"storage_gateway_id": g, "username": "root"})),
        )
        .await;
    assert_eq!(
        st, 400,
        "a credential names the account the identity maps to: {b}"
    );
    // Another app cannot see or delete it.
    let (stranger, _) = principal(&s).await;
    let other = api(&s, &stranger).await;
    let (_, list) = a.call(M::GET, "/api/user_credentials", None).await;
    let cid = list["data"][0]["id"].as_str().unwrap().to_string();
    assert_eq!(
        other
            .call(M::GET, &format!("/api/user_credentials/{cid}"), None)
            .await
            .0,
        404
    );
    assert_eq!(
        other
            .call(M::DELETE, &format!("/api/user_credentials/{cid}"), None)
            .await
            .0,
        404
    );
}

/// (vector, restrictions, account the identity maps to, path, access, deciding pattern or None)
type Vector = (
    u32,
    Value,
    &'static str,
    &'static str,
    &'static str,
    Option<&'static str>,
);

/// `access explain` (the function `ferry access explain` prints) on each path-restriction vector: the final
/// access and the rule that decided it.
#[tokio::test]
async fn explain_names_the_deciding_rule_for_every_vector() {
    let s = TestServer::start().await;
    let (a, _) = admin_setup(&s).await;
    let admin_identity = s
        .running
        .auth
        .store()
        .get_identity(Uuid::parse_str(&s.admin_app().id).unwrap())
        .await
        .unwrap()
        .unwrap();
    let rw = |p: &[&str]| json!({"read_write": p});
    let cases: Vec<Vector> = vec![
        (
            1,
            rw(&["/data"]),
            "ana",
            "/data",
            "read_write",
            Some("/data"),
        ),
        (
            2,
            rw(&["/data"]),
            "ana",
            "/data/x/y",
            "read_write",
            Some("/data"),
        ),
        (3, rw(&["/data"]), "ana", "/database", "none", None),
        (4, rw(&["/data"]), "ana", "/", "none", None),
        (
            5,
            json!({"none": ["/"], "read_write": ["$HOME"]}),
            "root",
            "/root/f",
            "read_write",
            Some("$HOME"),
        ),
        (
            6,
            json!({"none": ["/"], "read_write": ["$HOME"]}),
            "root",
            "/home/bob/f",
            "none",
            Some("/"),
        ),
        (
            7,
            json!({"read_write": ["/data"], "read": ["/data/ref"]}),
            "ana",
            "/data/ref/x",
            "read_write",
            Some("/data"),
        ),
        (
            8,
            json!({"read_write": ["/data"], "none": ["/data/ref"]}),
            "ana",
            "/data/ref/x",
            "none",
            Some("/data/ref"),
        ),
        (
            9,
            json!({"none": ["/data"], "read": ["/data/pub"]}),
            "ana",
            "/data/pub/x",
            "read",
            Some("/data/pub"),
        ),
        (
            10,
            json!({"none": ["/data"], "read_write": ["/data/pub"]}),
            "ana",
            "/data/pub/x",
            "read_write",
            Some("/data/pub"),
        ),
        (
            11,
            json!({"read": ["/data"], "none": ["/data/priv"]}),
            "ana",
            "/data/priv",
            "none",
            Some("/data/priv"),
        ),
        (
            12,
            json!({"read_write": ["/a"], "none": ["/a/b"], "read": ["/a/b/c"]}),
            "ana",
            "/a/b/c/f",
            "read",
            Some("/a/b/c"),
        ),
        (
            13,
            json!({"read_write": ["/a"], "none": ["/a/b"], "read": ["/a/b/c"]}),
            "ana",
            "/a/b/x",
            "none",
            Some("/a/b"),
        ),
        (
            14,
            json!({"read_write": ["/a"], "none": ["/a/b"], "read": ["/a/b/c"]}),
            "ana",
            "/a/x",
            "read_write",
            Some("/a"),
        ),
        (
            15,
            json!({"read_write": ["/proj/*"], "none": ["/proj/secret"]}),
            "ana",
            "/proj/secret/f",
            "none",
            Some("/proj/secret"),
        ),
        (
            16,
            json!({"read_write": ["/proj/*"], "none": ["/proj/secret"]}),
            "ana",
            "/proj/open/f",
            "read_write",
            Some("/proj/*"),
        ),
        (
            17,
            json!({"none": ["*"], "read": ["/opt/out"], "read_write": ["/opt/in"]}),
            "ana",
            "/opt/in/a",
            "read_write",
            Some("/opt/in"),
        ),
        (
            18,
            json!({"none": ["*"], "read": ["/opt/out"], "read_write": ["/opt/in"]}),
            "ana",
            "/etc/passwd",
            "none",
            Some("*"),
        ),
        (
            19,
            json!({"read": ["/d/[ab]*"], "none": ["/d/a?"]}),
            "ana",
            "/d/ax",
            "none",
            Some("/d/a?"),
        ),
        (
            20,
            json!({"read": ["/d/a?"], "none": ["/d/[ab]x"]}),
            "ana",
            "/d/ax",
            "read",
            Some("/d/a?"),
        ),
        (
            21,
            rw(&["/u/$USER"]),
            "ana",
            "/u/ana/x",
            "read_write",
            Some("/u/$USER"),
        ),
        (22, rw(&["/u/$USER"]), "ana", "/u/bob/x", "none", None),
        // Vector 23 (`~` is `/`) holds where storage has no home folders (the core's vector test). A POSIX gateway
        // has them, and `ana` has none on this host: `~` names nothing, never the whole gateway.
        (23, rw(&["~"]), "ana", "/anything", "none", None),
        (
            26,
            rw(&["/data\\*"]),
            "ana",
            "/data*",
            "read_write",
            Some("/data\\*"),
        ),
        (27, rw(&["/data\\*"]), "ana", "/datax", "none", None),
        (
            29,
            json!({"none": ["/"], "read": ["/[[:digit:]]*"]}),
            "ana",
            "/2024/run",
            "read",
            Some("/[[:digit:]]*"),
        ),
        (
            30,
            json!({"none": ["/"], "read": ["/[!a]*"]}),
            "ana",
            "/abc",
            "none",
            Some("/"),
        ),
    ];
    for (n, restrict, account, path, access, decider) in cases {
        // The identity maps to `account`; a gateway rooted at "/" gives `$HOME` the account's passwd home.
        let mapping = json!([{"DATA_TYPE": "expression_identity_mapping#1.0.0",
            "mappings": [{"source": "{username}", "match": ".*", "output": account}]}]);
        let g = a
            .ok(
                M::POST,
                "/api/storage_gateways",
                Some(
                    json!({"display_name": format!("vector {n}"), "root_path": "/",
                            "restrict_paths": restrict, "identity_mappings": mapping}),
                ),
            )
            .await;
        let c = mapped(
            &a,
            Uuid::parse_str(g["id"].as_str().unwrap()).unwrap(),
            json!({}),
        )
        .await;
        let r = s
            .running
            .endpoint
            .explain(c, path, Some(admin_identity.clone()))
            .await
            .unwrap();
        assert_eq!(r.account.as_deref(), Some(account), "vector {n}");
        assert_eq!(r.layers[0].access.as_str(), access, "vector {n}: {r:?}");
        match decider {
            Some(p) => assert!(
                r.layers[0].because.contains(&format!("rule \"{p}\"")),
                "vector {n}: expected rule {p:?} in {:?}",
                r.layers[0].because
            ),
            None => assert!(
                r.layers[0]
                    .because
                    .starts_with("no restrict_paths rule applies"),
                "vector {n}: {:?}",
                r.layers[0].because
            ),
        }
        if access == "none" {
            assert!(
                r.decided_by.contains("restrict_paths"),
                "vector {n}: {}",
                r.decided_by
            );
        }
    }
    // Vectors 24, 25 and 28: refused before any evaluation.
    for (n, restrict) in [
        (24, json!({"read": ["/x"], "none": ["/x"]})),
        (25, json!({"read": ["data"]})),
    ] {
        let (st, _) = a
            .call(
                M::POST,
                "/api/storage_gateways",
                Some(json!({"display_name": "v", "restrict_paths": restrict})),
            )
            .await;
        assert_eq!(st, 400, "vector {n}");
    }
    let e = s
        .running
        .endpoint
        .explain(
            s.defaults().collection_id,
            "/data/../etc",
            Some(admin_identity),
        )
        .await
        .unwrap_err();
    assert!(e.to_string().contains(".."), "vector 28: {e}");
}

#[tokio::test]
async fn every_change_and_decision_is_audited() {
    let s = TestServer::start().await;
    let (a, transfer) = admin_setup(&s).await;
    let (g, _dir) = gateway(&a, json!({"read": ["/"], "none": ["/secret"]}), json!({})).await;
    let c = mapped(&a, g, json!({})).await;
    assert_eq!(ls(&s, &transfer, c, "/").await.0, 200);
    assert_eq!(ls(&s, &transfer, c, "/secret").await.0, 403);
    s.running.endpoint.audit().flush().await;
    let records = s
        .running
        .auth
        .store()
        .query_audit(&ferry_store::AuditFilter {
            collection_id: Some(c),
            ..Default::default()
        })
        .await
        .unwrap();
    let me = Uuid::parse_str(&s.admin_app().id).unwrap();
    let find = |action: &str, allowed: bool, path: Option<&str>| {
        records.iter().any(|r| {
            r.action == action
                && r.allowed == allowed
                && r.identity_id == Some(me)
                && (path.is_none() || r.path.as_deref() == path)
        })
    };
    assert!(find("collection.create", true, None), "{records:?}");
    assert!(find("data.list", true, Some("/")), "{records:?}");
    assert!(find("data.list", false, Some("/secret")), "{records:?}");
}

#[tokio::test]
async fn auth_policies_are_managed_by_their_creator_and_named_by_collections() {
    let s = TestServer::start().await;
    let (a, _) = admin_setup(&s).await;
    let admin = s.admin_app();
    let auth = s
        .access_token(
            &admin,
            "openid urn:globus:auth:scope:auth.globus.org:view_identity_set",
        )
        .await;
    let (st, b) = s
        .call(
            M::POST,
            "/v2/api/policies",
            &auth,
            Some(&json!({"policy": {
            "project_id": Uuid::new_v4(), "display_name": "edu only", "description": "",
            "domain_constraints_include": ["*.edu"]}})),
        )
        .await;
    assert_eq!(st, 200, "{b}");
    let pid = b["policy"]["id"].as_str().unwrap().to_string();
    for (doc, field) in [
        (
            json!({"policy": {"display_name": "x", "high_assurance": true}}),
            "high_assurance",
        ),
        (
            json!({"policy": {"display_name": "x", "authentication_assurance_timeout": 5}}),
            "authentication_assurance_timeout",
        ),
        (
            json!({"policy": {"display_name": "x", "required_mfa": true}}),
            "required_mfa",
        ),
        (
            json!({"policy": {"display_name": "x", "colour": 1}}),
            "colour",
        ),
        (json!({"display_name": "x"}), "policy"),
    ] {
        let (st, b) = s.call(M::POST, "/v2/api/policies", &auth, Some(&doc)).await;
        assert_eq!(st, 400, "{doc}: {b}");
        assert!(b.to_string().contains(field), "{b}");
    }
    let (_, list) = s.call(M::GET, "/v2/api/policies", &auth, None).await;
    assert_eq!(list["policies"].as_array().unwrap().len(), 1);
    // Another identity neither reads nor changes it, nor learns that it exists (issue 13, item 9).
    let (other, _) = principal(&s).await;
    let other_auth = s.access_token(&other, "openid").await;
    let path = format!("/v2/api/policies/{pid}");
    assert_eq!(s.call(M::GET, &path, &other_auth, None).await.0, 404);
    let change = json!({"policy": {"description": "mine now"}});
    assert_eq!(
        s.call(M::PUT, &path, &other_auth, Some(&change)).await.0,
        404
    );
    let (st, b) = s.call(M::PUT, &path, &auth, Some(&change)).await;
    assert_eq!(
        (st, b["policy"]["description"].as_str()),
        (200, Some("mine now"))
    );
    // Collections name existing policies only, and a policy in use cannot be deleted.
    let (g, _dir) = gateway(&a, Value::Null, json!({})).await;
    let (st, b) = a
        .call(M::POST, "/api/collections", Some(json!({"collection_type": "mapped", "display_name": "m",
            "storage_gateway_id": g, "collection_base_path": "/", "guest_auth_policy_id": Uuid::new_v4()})))
        .await;
    assert_eq!(st, 400, "{b}");
    let m = mapped(&a, g, json!({"guest_auth_policy_id": pid})).await;
    assert_eq!(s.call(M::DELETE, &path, &auth, None).await.0, 409);
    a.ok(
        M::PATCH,
        &format!("/api/collections/{m}"),
        Some(json!({"guest_auth_policy_id": null})),
    )
    .await;
    assert_eq!(s.call(M::DELETE, &path, &auth, None).await.0, 200);
    assert_eq!(s.call(M::GET, &path, &auth, None).await.0, 404);
}
