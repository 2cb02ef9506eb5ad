//! Wire shapes Globus's own example scripts rely on (issue 13, item 12), and the bounds of one submission
//! (item 11): a collection's `https_server` is its own HTTPS root, `gcs_version` is a GCS 5 version, GCS
//! documents take booleans as the strings "True"/"False", the manager API's answers carry a `message`, and a
//! task submission holds a bounded number of items.

use ferry_tests::TestServer;
use ferry_tests::endpoint::{api, endpoint_id, gateway, mapped};
use reqwest::Method as M;
use serde_json::{Value, json};
use uuid::Uuid;

const TRANSFER: &str = "urn:globus:auth:scope:transfer.api.globus.org:all";

/// The default mapped collection (over `<data dir>/storage`), which the administrator's client can use.
fn default_collection(s: &TestServer) -> Uuid {
    s.defaults().collection_id
}

#[tokio::test]
async fn https_server_is_the_collections_own_root() {
    let s = TestServer::start().await;
    let admin = s.admin_app();
    let coll = default_collection(&s);
    std::fs::write(s.data_dir().join("storage/hello.txt"), b"hello, globus\n").unwrap();

    let transfer = s.access_token(&admin, TRANSFER).await;
    let (st, ep) = s
        .call(M::GET, &format!("/v0.10/endpoint/{coll}"), &transfer, None)
        .await;
    assert_eq!(st, 200, "{ep}");
    let a = api(&s, &admin).await;
    let gcs = a
        .ok(M::GET, &format!("/api/collections/{coll}"), None)
        .await;
    // As on Globus: the GCS document's https_url is Transfer's https_server.
    assert_eq!(ep["https_server"], gcs["https_url"], "{ep}");
    let server = ep["https_server"].as_str().unwrap();
    assert!(server.ends_with(&format!("/data/{coll}")), "{server}");

    // The Globus HTTPS example: GET https_server + path with the collection's https token.
    let token = s
        .access_token(
            &admin,
            &format!("https://auth.globus.org/scopes/{coll}/https"),
        )
        .await;
    let r = s
        .http
        .get(format!("{server}/hello.txt"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await.unwrap(), "hello, globus\n");
}

/// The Globus documentation tells GCS 5 collections from other kinds by `gcs_version`'s major number.
#[tokio::test]
async fn gcs_version_is_a_gcs5_version_and_ferrys_own_is_kept() {
    let s = TestServer::start().await;
    let admin = s.admin_app();
    let transfer = s.access_token(&admin, TRANSFER).await;
    let major = |v: &Value| {
        let parts: Vec<&str> = v.as_str().unwrap_or("").split('.').collect();
        assert_eq!(parts.len(), 3, "{v}");
        parts[0].to_string()
    };
    for id in [endpoint_id(&s), default_collection(&s)] {
        let (st, doc) = s
            .call(M::GET, &format!("/v0.10/endpoint/{id}"), &transfer, None)
            .await;
        assert_eq!(st, 200, "{doc}");
        assert_eq!(major(&doc["gcs_version"]), "5", "{doc}");
        assert_eq!(doc["ferry_version"], env!("CARGO_PKG_VERSION"));
    }
    let info: Value = s
        .http
        .get(format!("{}/api/info", s.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(major(&info["data"][0]["manager_version"]), "5", "{info}");
    assert_eq!(info["data"][0]["ferry_version"], env!("CARGO_PKG_VERSION"));
}

/// The SDK's guest-collection example sends `public="True"`: GCS takes "True"/"False" (any case) for booleans.
#[tokio::test]
async fn gcs_documents_take_booleans_as_strings() {
    let s = TestServer::start().await;
    let admin = s.admin_app();
    let a = api(&s, &admin).await;
    let (g, dir) = gateway(&a, Value::Null, json!({"high_assurance": "False"})).await;
    std::fs::create_dir(dir.path().join("shared")).unwrap();
    let m = mapped(
        &a,
        g,
        json!({"allow_guest_collections": "true", "public": "False", "delete_protected": "FALSE"}),
    )
    .await;
    let doc = a.ok(M::GET, &format!("/api/collections/{m}"), None).await;
    assert_eq!(doc["allow_guest_collections"], true, "{doc}");
    assert_eq!(doc["public"], false, "{doc}");
    assert_eq!(doc["delete_protected"], false, "{doc}");

    let guest = a
        .ok(
            M::POST,
            "/api/collections",
            Some(json!({"DATA_TYPE": "collection#1.0.0", "collection_type": "guest", "public": "True",
                    "collection_base_path": "/shared", "display_name": "guest_collection",
                    "mapped_collection_id": m})),
        )
        .await;
    assert_eq!(guest["public"], true, "{guest}");
    // A PATCH may send them too, also for a field that cannot change (sent unchanged).
    let patched = a
        .ok(
            M::PATCH,
            &format!("/api/storage_gateways/{g}"),
            Some(json!({"high_assurance": "False", "display_name": "renamed"})),
        )
        .await;
    assert_eq!(patched["display_name"], "renamed");

    // Anything else is still refused, naming the field.
    let (st, b) = a
        .call(
            M::PATCH,
            &format!("/api/collections/{m}"),
            Some(json!({"public": "yes"})),
        )
        .await;
    assert_eq!(st, 400, "{b}");
    assert!(b["message"].as_str().unwrap().contains("public"), "{b}");
}

/// `globus endpoint user-credential create` prints the answer's `message`: GCS's envelope has one.
#[tokio::test]
async fn user_credential_answers_have_the_gcs_envelope() {
    let s = TestServer::start().await;
    let a = api(&s, &s.admin_app()).await;
    let g = s.defaults().storage_gateway_id;
    let (st, b) = a
        .call(
            M::POST,
            "/api/user_credentials",
            Some(json!({"DATA_TYPE": "user_credential#1.0.0", "storage_gateway_id": g})),
        )
        .await;
    assert_eq!(st, 201, "{b}");
    let id = b["data"][0]["id"].as_str().unwrap().to_string();
    assert_eq!(b["code"], "success");
    assert_eq!(b["http_response_code"], 201);
    assert_eq!(b["message"], format!("Created User Credential {id}"));
    let (st, b) = a
        .call(
            M::PATCH,
            &format!("/api/user_credentials/{id}"),
            Some(json!({"display_name": "mine"})),
        )
        .await;
    assert_eq!(st, 200, "{b}");
    assert_eq!(b["message"], format!("Updated User Credential {id}"));
    let (st, b) = a.call(M::GET, "/api/user_credentials", None).await;
    assert_eq!(st, 200);
    assert!(b["message"].is_string(), "{b}");
    let (st, b) = a
        .call(M::DELETE, &format!("/api/user_credentials/{id}"), None)
        .await;
    assert_eq!(st, 200, "{b}");
    assert_eq!(b["message"], format!("Deleted User Credential {id}"));
}

/// One item more than the cap: refused as a bad request naming the cap, and nothing is queued.
#[tokio::test]
async fn a_submission_holds_a_bounded_number_of_items() {
    let s = TestServer::start().await;
    let admin = s.admin_app();
    let token = s.access_token(&admin, TRANSFER).await;
    let coll = default_collection(&s);
    let cap = ferry_transfer_cap();
    let items: Vec<Value> = (0..=cap)
        .map(|i| json!({"source_path": format!("/{i}"), "destination_path": format!("/c{i}")}))
        .collect();
    let dels: Vec<Value> = (0..=cap)
        .map(|i| json!({"path": format!("/{i}")}))
        .collect();
    for (route, doc) in [
        (
            "transfer",
            json!({"DATA_TYPE": "transfer", "source_endpoint": coll, "destination_endpoint": coll,
                   "DATA": items}),
        ),
        (
            "delete",
            json!({"DATA_TYPE": "delete", "endpoint": coll, "DATA": dels}),
        ),
    ] {
        let (st, b) = s
            .call(M::POST, &format!("/v0.10/{route}"), &token, Some(&doc))
            .await;
        assert_eq!(st, 400, "{route}: {b}");
        assert_eq!(b["code"], "ClientError.BadRequest", "{b}");
        let msg = b["message"].as_str().unwrap();
        assert!(msg.contains(&format!("at most {cap}")), "{msg}");
    }
    let (st, list) = s.call(M::GET, "/v0.10/task_list", &token, None).await;
    assert_eq!(st, 200);
    assert_eq!(list["total"], 0, "nothing was queued: {list}");
    // At the cap itself, a submission is taken.
    let items: Vec<Value> = (0..cap)
        .map(|i| json!({"path": format!("/n{i}")}))
        .collect();
    let (st, b) = s
        .call(
            M::POST,
            "/v0.10/delete",
            &token,
            Some(
                &json!({"DATA_TYPE": "delete", "endpoint": coll, "DATA": items,
                         "ignore_missing": true}),
            ),
        )
        .await;
    assert_eq!(st, 202, "{b}");
}

/// The cap as documented in the README (a submission of more items is refused).
fn ferry_transfer_cap() -> usize {
    10_000
}
