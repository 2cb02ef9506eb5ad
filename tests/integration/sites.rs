//! A hub and an endpoint as two servers (`--role hub`, `--role endpoint`) on one clock: an endpoint joins with a
//! person's login, reports its collections, and answers Transfer requests the hub passes on; bearer tokens are
//! checked by introspection at the hub and kept for at most `site.token_cache_secs`; a revoked token, or a hub
//! that cannot be reached, stops access within that bound; the hub's statements are refused when forged,
//! expired, or meant for another endpoint.

use std::time::Duration;

use ferry_core::ClientKind;
use ferry_server::Role;
use ferry_server::site::{SiteFile, SiteOwner};
use ferry_store::tasks::TaskStatus;
use ferry_tests::{App, Person, TestServer};
use reqwest::Method as M;
use serde_json::{Value, json};
use uuid::Uuid;

const TRANSFER: &str = "urn:globus:auth:scope:transfer.api.globus.org:all";
const CACHE_SECS: i64 = 15;

struct Sites {
    hub: TestServer,
    ep: TestServer,
    app: App,
    owner: Person,
    endpoint_id: Uuid,
    /// The endpoint's default mapped collection.
    coll: Uuid,
    /// The owner's Transfer token at the hub.
    transfer: String,
    /// The owner's tokens, by resource server.
    tokens: Value,
    /// The owner's Auth token at the hub.
    auth: String,
}

/// A port free right now on 127.0.0.1 (the endpoint's public URL must be known before it starts).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The token of resource server `rs` in a token response (`other_tokens` included).
fn token_for(t: &Value, rs: &str) -> String {
    std::iter::once(t)
        .chain(t["other_tokens"].as_array().into_iter().flatten())
        .find(|x| x["resource_server"] == rs)
        .and_then(|x| x["access_token"].as_str())
        .unwrap_or_else(|| panic!("no token for {rs} in {t}"))
        .to_string()
}

/// Polls (bounded) until the hub lists what the endpoint reported: reporting is the endpoint's background work.
async fn reported(hub: &TestServer, token: &str, id: Uuid, n: usize) -> Value {
    for _ in 0..200 {
        let (st, doc) = hub
            .call(M::GET, &format!("/v2/ferry/endpoints/{id}"), token, None)
            .await;
        assert_eq!(st, 200, "{doc}");
        if doc["collections"].as_array().map_or(0, Vec::len) >= n {
            return doc;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the endpoint never reported {n} collections");
}

/// An endpoint registered at the hub by `owner` (whose Auth token is `auth`), started on its own port and
/// joined: its id and its default mapped collection.
async fn join(
    hub: &TestServer,
    auth: &str,
    owner: &Person,
    name: &str,
) -> (TestServer, Uuid, Uuid) {
    let port = free_port();
    let public_url = format!("http://127.0.0.1:{port}");
    let (st, reg) = hub
        .call(
            M::POST,
            "/v2/ferry/endpoints",
            auth,
            Some(&json!({"display_name": name, "public_url": public_url})),
        )
        .await;
    assert_eq!(st, 201, "{reg}");
    let endpoint_id = Uuid::parse_str(reg["endpoint_id"].as_str().unwrap()).unwrap();
    let file = SiteFile {
        hub_url: reg["hub_url"].as_str().unwrap().into(),
        endpoint_id,
        client_secret: reg["client_secret"].as_str().unwrap().into(),
        public_url: public_url.clone(),
        display_name: name.into(),
        owner: SiteOwner {
            id: Uuid::parse_str(&owner.id).unwrap(),
            username: owner.username.clone(),
            name: "Olive".into(),
            email: None,
        },
        hub_ca_file: None,
    };
    let ep = TestServer::start_clocked(
        hub.clock.clone(),
        |c| {
            c.role = Role::Endpoint;
            c.listen = format!("127.0.0.1:{port}").parse().unwrap();
            c.public_url = Some(public_url.clone());
            c.site.token_cache_secs = CACHE_SECS;
            ferry_server::create_private_dir(&c.data_dir).unwrap();
            file.save(&c.data_dir).unwrap();
        },
        Default::default(),
    )
    .await;
    assert_eq!(ep.running.endpoint.id(), endpoint_id);
    let doc = reported(hub, auth, endpoint_id, 1).await;
    let coll = Uuid::parse_str(doc["collections"][0]["id"].as_str().unwrap()).unwrap();
    (ep, endpoint_id, coll)
}

async fn sites() -> Sites {
    let hub = TestServer::start_with(|c| c.role = Role::Hub).await;
    let app = hub.app(ClientKind::Confidential).await;
    let owner = hub.person("olive").await;
    let t = hub
        .login(&app, &owner, &format!("openid profile email {TRANSFER}"))
        .await;
    let auth = token_for(&t, "auth.globus.org");
    let (ep, endpoint_id, coll) = join(&hub, &auth, &owner, "Beamline").await;
    // A login that also covers the collection's files and the endpoint's manager API.
    let tokens = hub
        .login(
            &app,
            &owner,
            &format!(
                "openid {TRANSFER} https://auth.globus.org/scopes/{coll}/https \
                 urn:globus:auth:scope:{endpoint_id}:manage_collections"
            ),
        )
        .await;
    Sites {
        transfer: token_for(&tokens, "transfer.api.globus.org"),
        hub,
        ep,
        app,
        owner,
        endpoint_id,
        coll,
        tokens,
        auth,
    }
}

impl Sites {
    fn storage(&self) -> std::path::PathBuf {
        self.ep.data_dir().join("storage")
    }

    /// A guest collection on `host_path` of the endpoint's collection, made through the hub.
    async fn share(&self, host_path: &str, name: &str) -> Uuid {
        self.share_on(self.coll, host_path, name).await
    }

    /// A guest collection on `host_path` of mapped collection `host` (either endpoint's), made through the hub.
    async fn share_on(&self, host: Uuid, host_path: &str, name: &str) -> Uuid {
        let (st, made) = self
            .hub
            .call(
                M::POST,
                "/v0.10/shared_endpoint",
                &self.transfer,
                Some(
                    &json!({"DATA_TYPE": "shared_endpoint", "host_endpoint": host,
                             "host_path": host_path, "display_name": name}),
                ),
            )
            .await;
        assert_eq!(st, 200, "{made}");
        Uuid::parse_str(made["id"].as_str().unwrap()).unwrap()
    }

    /// A permission on the whole of guest collection `coll`, given through the hub by its owner.
    async fn permit(&self, coll: Uuid, principal_type: &str, principal: &str, perms: &str) {
        let (st, rule) = self
            .hub
            .call(
                M::POST,
                &format!("/v0.10/endpoint/{coll}/access"),
                &self.transfer,
                Some(
                    &json!({"DATA_TYPE": "access", "principal_type": principal_type,
                             "principal": principal, "path": "/", "permissions": perms}),
                ),
            )
            .await;
        assert_eq!(st, 200, "{rule}");
    }

    /// Submits a one-file transfer through the hub with `token` (not the owner's): the status and answer.
    async fn try_submit_as(&self, token: &str, from: Uuid, into: Uuid, path: &str) -> (u16, Value) {
        let (st, sub) = self
            .hub
            .call(M::GET, "/v0.10/submission_id", token, None)
            .await;
        assert_eq!(st, 200, "{sub}");
        let (st, done) = self
            .hub
            .call(
                M::POST,
                "/v0.10/transfer",
                token,
                Some(
                    &json!({"DATA_TYPE": "transfer", "submission_id": sub["value"],
                             "source_endpoint": from, "destination_endpoint": into,
                             "DATA": [{"DATA_TYPE": "transfer_item", "source_path": path,
                                       "destination_path": path}]}),
                ),
            )
            .await;
        (st, done)
    }

    /// [`Sites::try_submit_as`], accepted: the task's id.
    async fn submit_as(&self, token: &str, from: Uuid, into: Uuid, path: &str) -> String {
        let (st, done) = self.try_submit_as(token, from, into, path).await;
        assert_eq!(st, 202, "{done}");
        done["task_id"].as_str().unwrap().to_string()
    }

    async fn https_get(&self, path: &str, token: &str) -> (u16, String) {
        let r = self
            .ep
            .http
            .get(format!("{}/data/{}{path}", self.ep.url, self.coll))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.text().await.unwrap())
    }
}

#[tokio::test]
async fn an_endpoint_joins_reports_and_is_found_through_the_hub() {
    let s = sites().await;
    assert_eq!(
        s.endpoint_id.to_string(),
        s.ep.running.endpoint.id().to_string()
    );
    // Transfer's index at the hub shows the endpoint's collection, pointing at the endpoint itself.
    let (st, found) = s
        .hub
        .call(
            M::GET,
            "/v0.10/endpoint_search?filter_fulltext=&filter_scope=all",
            &s.transfer,
            None,
        )
        .await;
    assert_eq!(st, 200, "{found}");
    let doc = found["DATA"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["id"] == s.coll.to_string())
        .unwrap_or_else(|| panic!("the endpoint's collection is not found: {found}"))
        .clone();
    assert_eq!(doc["gcs_manager_url"], s.ep.url, "{doc}");
    assert!(
        doc["https_server"]
            .as_str()
            .unwrap()
            .starts_with(&format!("{}/data/{}", s.ep.url, s.coll)),
        "{doc}"
    );
    // The collection's own document, and a listing of its files, come from the endpoint.
    std::fs::write(s.storage().join("hello.txt"), b"from the beamline").unwrap();
    let (st, one) = s
        .hub
        .call(
            M::GET,
            &format!("/v0.10/endpoint/{}", s.coll),
            &s.transfer,
            None,
        )
        .await;
    assert_eq!(st, 200, "{one}");
    assert_eq!(one["display_name"], doc["display_name"]);
    let (st, ls) = s
        .hub
        .call(
            M::GET,
            &format!("/v0.10/operation/endpoint/{}/ls?path=/", s.coll),
            &s.transfer,
            None,
        )
        .await;
    assert_eq!(st, 200, "{ls}");
    assert!(
        ls["DATA"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["name"] == "hello.txt"),
        "{ls}"
    );
    // A folder made through the hub is made at the endpoint.
    let (st, made) = s
        .hub
        .call(
            M::POST,
            &format!("/v0.10/operation/endpoint/{}/mkdir", s.coll),
            &s.transfer,
            Some(&json!({"DATA_TYPE": "mkdir", "path": "/runs"})),
        )
        .await;
    assert_eq!(st, 200, "{made}");
    assert!(s.storage().join("runs").is_dir());
}

#[tokio::test]
async fn bearer_tokens_are_the_hubs_and_a_revoked_one_stops_within_the_bound() {
    let s = sites().await;
    std::fs::write(s.storage().join("data.bin"), b"0123456789").unwrap();
    let https = token_for(&s.tokens, &s.coll.to_string());
    assert_eq!(
        s.https_get("/data.bin", &https).await,
        (200, "0123456789".into())
    );
    // The manager API takes the endpoint's own token.
    let manage = token_for(&s.tokens, &s.endpoint_id.to_string());
    let (st, info) = s.ep.call(M::GET, "/api/endpoint", &manage, None).await;
    assert_eq!(st, 200, "{info}");
    // Tokens of other resource servers, and tokens the hub never issued, are refused.
    assert_eq!(s.https_get("/data.bin", &s.transfer).await.0, 401);
    assert_eq!(s.https_get("/data.bin", "made-up").await.0, 401);
    let (st, _) = s.ep.call(M::GET, "/api/endpoint", &https, None).await;
    assert_eq!(st, 401);

    // Revoked at the hub: the endpoint's answer is kept for at most the bound, then the token is refused.
    let (st, body) = s
        .hub
        .oauth(
            "/v2/oauth2/token/revoke",
            &s.app,
            &[("token", https.as_str())],
        )
        .await;
    assert_eq!(st, 200, "{body}");
    // (The kit's clock also moves with real time: a margin of a few seconds keeps "within" within.)
    s.hub.advance(CACHE_SECS - 5);
    assert_eq!(
        s.https_get("/data.bin", &https).await.0,
        200,
        "within the bound"
    );
    s.hub.advance(5);
    assert_eq!(
        s.https_get("/data.bin", &https).await.0,
        401,
        "after the bound"
    );
    let _ = &s.owner;
}

#[tokio::test]
async fn an_endpoint_cut_off_from_its_hub_refuses_after_the_bound() {
    let s = sites().await;
    std::fs::write(s.storage().join("data.bin"), b"abc").unwrap();
    let https = token_for(&s.tokens, &s.coll.to_string());
    assert_eq!(s.https_get("/data.bin", &https).await.0, 200);
    let Sites { hub, ep, coll, .. } = s;
    let clock = hub.clock.clone();
    hub.running.shutdown().await;
    let get = |token: String| {
        let ep = &ep;
        async move {
            ep.http
                .get(format!("{}/data/{coll}/data.bin", ep.url))
                .bearer_auth(token)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    assert_eq!(
        get(https.clone()).await,
        200,
        "a kept answer counts within the bound"
    );
    clock.advance(CACHE_SECS);
    let st = get(https.clone()).await;
    assert_eq!(st, 503, "no answer from the hub: refused, and said why");
}

#[tokio::test]
async fn the_hubs_statements_are_refused_when_forged_expired_or_for_another_endpoint() {
    let s = sites().await;
    let me = s
        .hub
        .running
        .auth
        .store()
        .get_identity(Uuid::parse_str(&s.owner.id).unwrap())
        .await
        .unwrap()
        .unwrap();
    let search = format!("{}/site/v0.10/endpoint_search", s.ep.url);
    let ask = |auth: String| {
        let http = s.ep.http.clone();
        let url = search.clone();
        async move {
            http.get(url)
                .header("authorization", auth)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    let good = s
        .hub
        .running
        .auth
        .vouch(s.endpoint_id, &me, &[], None)
        .await
        .unwrap();
    assert_eq!(ask(good.clone()).await, 200);
    // Tasks and bookmarks are the hub's: an endpoint serves none of them, vouched for or not.
    for path in ["/site/v0.10/task_list", "/site/v0.10/bookmark_list"] {
        let r =
            s.ep.http
                .get(format!("{}{path}", s.ep.url))
                .header("authorization", good.clone())
                .send()
                .await
                .unwrap();
        assert_eq!(r.status().as_u16(), 404, "{path}");
    }
    // For another endpoint.
    let other = s
        .hub
        .running
        .auth
        .vouch(Uuid::new_v4(), &me, &[], None)
        .await
        .unwrap();
    assert_eq!(ask(other).await, 401);
    // Tampered: another identity's claims under the same signature.
    let (head, rest) = good.split_once('.').unwrap();
    let (claims, sig) = rest.split_once('.').unwrap();
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let mut c: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(claims).unwrap()).unwrap();
    c["sub"] = json!(Uuid::new_v4());
    let forged = format!(
        "{head}.{}.{sig}",
        URL_SAFE_NO_PAD.encode(c.to_string().as_bytes())
    );
    assert_eq!(ask(forged).await, 401);
    // Unsigned.
    let none = format!(
        "Ferry-Hub {}.{}.",
        URL_SAFE_NO_PAD.encode(br#"{"alg":"none"}"#),
        claims
    );
    assert_eq!(ask(none).await, 401);
    // A person's bearer token is no statement.
    assert_eq!(ask(format!("Bearer {}", s.transfer)).await, 401);
    // Expired.
    s.hub.advance(ferry_auth::sites::ASSERTION_SECS);
    assert_eq!(ask(good).await, 401);
}

#[tokio::test]
async fn an_endpoint_cannot_claim_what_is_not_its_own() {
    let s = sites().await;
    let file = SiteFile::load(&s.ep.data_dir()).unwrap().unwrap();
    let report = |collections: Value| {
        let http = s.hub.http.clone();
        let url = format!("{}/v2/ferry/endpoints/{}/report", s.hub.url, s.endpoint_id);
        let secret = file.client_secret.clone();
        let id = s.endpoint_id;
        async move {
            http.put(url)
                .basic_auth(id, Some(secret))
                .json(
                    &json!({"public_url": "http://127.0.0.1:9", "display_name": "x",
                              "collections": collections}),
                )
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    // An identity's id (here the owner's) is never a collection to route to.
    let st =
        report(json!([{"id": s.owner.id, "display_name": "x", "collection_type": "mapped"}])).await;
    assert_eq!(st, 409);
    // Another endpoint's report needs that endpoint's secret.
    let (st, _) = s
        .hub
        .call(
            M::PUT,
            &format!("/v2/ferry/endpoints/{}/report", s.endpoint_id),
            &s.transfer,
            Some(&json!({"public_url": "http://x", "display_name": "x", "collections": []})),
        )
        .await;
    assert_eq!(st, 401);
    // Nothing changed: the collection still routes to the endpoint.
    let (st, _) = s
        .hub
        .call(
            M::GET,
            &format!("/v0.10/endpoint/{}", s.coll),
            &s.transfer,
            None,
        )
        .await;
    assert_eq!(st, 200);
}

#[tokio::test]
async fn a_guest_collection_at_the_endpoint_is_shared_through_the_hub() {
    let s = sites().await;
    std::fs::create_dir_all(s.storage().join("shared")).unwrap();
    std::fs::write(s.storage().join("shared/result.csv"), b"a,b\n1,2\n").unwrap();
    std::fs::write(s.storage().join("private.txt"), b"not shared").unwrap();
    let guest = s.share("/shared", "Results").await.to_string();
    // Made at the endpoint, and reported to the hub at once.
    let auth = token_for(&s.tokens, "auth.globus.org");
    let doc = reported(&s.hub, &auth, s.endpoint_id, 2).await;
    assert!(
        doc["collections"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["id"] == guest),
        "{doc}"
    );

    // A collaborator at the hub is given read access there, and reads over HTTPS from the endpoint.
    let bob = s.hub.person("bob").await;
    let (st, rule) = s
        .hub
        .call(
            M::POST,
            &format!("/v0.10/endpoint/{guest}/access"),
            &s.transfer,
            Some(&json!({"DATA_TYPE": "access", "principal_type": "identity",
                         "principal": bob.id, "path": "/", "permissions": "r"})),
        )
        .await;
    assert_eq!(st, 200, "{rule}");
    let rule_id = rule["access_id"].as_str().unwrap().to_string();
    let t = s
        .hub
        .login(
            &s.app,
            &bob,
            &format!("openid https://auth.globus.org/scopes/{guest}/https"),
        )
        .await;
    let bobs = token_for(&t, &guest);
    let get = |path: &'static str| {
        let http = s.ep.http.clone();
        let url = format!("{}/data/{guest}{path}", s.ep.url);
        let token = bobs.clone();
        async move {
            let r = http.get(url).bearer_auth(token).send().await.unwrap();
            (r.status().as_u16(), r.text().await.unwrap())
        }
    };
    assert_eq!(get("/result.csv").await, (200, "a,b\n1,2\n".into()));
    // The guest collection's root is the shared folder: nothing above it is reachable.
    assert_eq!(get("/../private.txt").await.0 / 100, 4);
    // The rule removed through the hub: refused at once, before any cache bound.
    let (st, gone) = s
        .hub
        .call(
            M::DELETE,
            &format!("/v0.10/endpoint/{guest}/access/{rule_id}"),
            &s.transfer,
            None,
        )
        .await;
    assert_eq!(st, 200, "{gone}");
    assert_eq!(get("/result.csv").await.0, 403);
}

#[tokio::test]
async fn a_task_credential_reads_only_its_paths_of_its_collection_until_it_expires() {
    let s = sites().await;
    let st = s.storage();
    std::fs::create_dir_all(st.join("runs/42")).unwrap();
    std::fs::create_dir_all(st.join("runs/43")).unwrap();
    std::fs::write(st.join("runs/42/a.h5"), b"run 42").unwrap();
    std::fs::write(st.join("runs/43/b.h5"), b"run 43").unwrap();
    std::fs::write(st.join("top.txt"), b"top").unwrap();
    let auth = &s.hub.running.auth;
    let me = auth
        .store()
        .get_identity(Uuid::parse_str(&s.owner.id).unwrap())
        .await
        .unwrap()
        .unwrap();
    let task = Uuid::new_v4();
    let cred = auth
        .task_credential(
            s.endpoint_id,
            &me,
            &[],
            task,
            s.coll,
            vec!["/runs/42".into()],
        )
        .await
        .unwrap();
    let read = |coll: Uuid, path: &'static str, cred: String| {
        let http = s.ep.http.clone();
        let url = format!("{}/data/{coll}{path}", s.ep.url);
        async move {
            let r = http
                .get(url)
                .header("authorization", cred)
                .send()
                .await
                .unwrap();
            (r.status().as_u16(), r.text().await.unwrap())
        }
    };
    assert_eq!(
        read(s.coll, "/runs/42/a.h5", cred.clone()).await,
        (200, "run 42".into())
    );
    // Another path, also by way of `..`, and a path above the credential's.
    assert_eq!(read(s.coll, "/runs/43/b.h5", cred.clone()).await.0, 401);
    assert_eq!(
        read(s.coll, "/runs/42/../43/b.h5", cred.clone()).await.0 / 100,
        4
    );
    assert_eq!(read(s.coll, "/top.txt", cred.clone()).await.0, 401);
    // Another collection of the same endpoint: a guest collection over the same folder.
    let guest = s.share("/runs", "Runs").await;
    assert_eq!(read(guest, "/42/a.h5", cred.clone()).await.0, 401);
    // It reads; it never writes.
    let put =
        s.ep.http
            .put(format!("{}/data/{}/runs/42/new.h5", s.ep.url, s.coll))
            .header("authorization", cred.clone())
            .body("x")
            .send()
            .await
            .unwrap();
    assert_eq!(put.status().as_u16(), 403);
    assert!(!st.join("runs/42/new.h5").exists());
    // Useless at the hub, in either form.
    let jws = cred.strip_prefix("Ferry-Hub ").unwrap();
    for h in [cred.clone(), format!("Bearer {jws}")] {
        let r = s
            .hub
            .http
            .get(format!("{}/v0.10/task_list", s.hub.url))
            .header("authorization", h)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 401);
    }
    // Made for another endpoint.
    let other = auth
        .task_credential(Uuid::new_v4(), &me, &[], task, s.coll, vec!["/".into()])
        .await
        .unwrap();
    assert_eq!(read(s.coll, "/runs/42/a.h5", other).await.0, 401);
    // A statement for passing Transfer requests on is no task credential.
    let vouch = auth.vouch(s.endpoint_id, &me, &[], None).await.unwrap();
    assert_eq!(read(s.coll, "/runs/42/a.h5", vouch).await.0, 401);
    // Expired.
    s.hub.advance(ferry_auth::sites::TASK_CREDENTIAL_SECS);
    assert_eq!(read(s.coll, "/runs/42/a.h5", cred).await.0, 401);
}

/// Polls the hub (bounded) until task `id` ends; its document.
async fn ended(s: &Sites, id: &str) -> Value {
    ended_for(s, id, &s.transfer).await
}

/// [`ended`], asked with `token` (the task owner's Transfer token).
async fn ended_for(s: &Sites, id: &str, token: &str) -> Value {
    for _ in 0..1200 {
        let (st, doc) = s
            .hub
            .call(M::GET, &format!("/v0.10/task/{id}"), token, None)
            .await;
        assert_eq!(st, 200, "{doc}");
        let record = s
            .hub
            .running
            .auth
            .store()
            .get_task(Uuid::parse_str(id).unwrap())
            .await
            .unwrap()
            .unwrap();
        // Ended at the endpoint (the document), and the hub's record heard of it.
        if matches!(doc["status"].as_str(), Some("SUCCEEDED" | "FAILED")) && record.status.is_done()
        {
            return doc;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("task {id} did not end");
}

impl Sites {
    /// A second endpoint of the same owner.
    async fn second(&self, name: &str) -> (TestServer, Uuid, Uuid) {
        join(&self.hub, &self.auth, &self.owner, name).await
    }

    /// Submits a task through the hub; its id.
    async fn submit(&self, kind: &str, doc: Value) -> String {
        let (st, sub) = self
            .hub
            .call(M::GET, "/v0.10/submission_id", &self.transfer, None)
            .await;
        assert_eq!(st, 200, "{sub}");
        let mut doc = doc;
        doc["submission_id"] = sub["value"].clone();
        let (st, done) = self
            .hub
            .call(
                M::POST,
                &format!("/v0.10/{kind}"),
                &self.transfer,
                Some(&doc),
            )
            .await;
        assert_eq!(st, 202, "{done}");
        done["task_id"].as_str().unwrap().to_string()
    }
}

/// What a folder holds, path -> bytes.
fn tree(root: &std::path::Path) -> std::collections::BTreeMap<String, Vec<u8>> {
    let mut out = std::collections::BTreeMap::new();
    let mut todo = vec![root.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            let p = e.path();
            let rel = p.strip_prefix(root).unwrap().to_string_lossy().to_string();
            if e.file_type().unwrap().is_dir() {
                out.insert(format!("{rel}/"), vec![]);
                todo.push(p);
            } else {
                out.insert(rel, std::fs::read(&p).unwrap());
            }
        }
    }
    out
}

#[tokio::test]
async fn a_transfer_between_two_endpoints_goes_from_one_to_the_other_and_the_hub_records_it() {
    let s = sites().await;
    let (b, b_id, b_coll) = s.second("Campus").await;
    // Small files in folders (batched), a file just over the small-file size and one of several ranges.
    let src = s.storage().join("runs");
    for d in 0..3 {
        std::fs::create_dir_all(src.join(format!("scan{d}"))).unwrap();
        for f in 0..40 {
            std::fs::write(
                src.join(format!("scan{d}/frame {f}.tif")),
                format!("frame {d}/{f}").repeat(f + 1),
            )
            .unwrap();
        }
    }
    std::fs::create_dir_all(src.join("empty")).unwrap();
    let medium: Vec<u8> = (0..(5 << 20) as u32).map(|i| (i % 251) as u8).collect();
    std::fs::write(src.join("medium.h5"), &medium).unwrap();
    let large: Vec<u8> = (0..(70 << 20) as u32).map(|i| (i % 253) as u8).collect();
    std::fs::write(src.join("large.h5"), &large).unwrap();
    let id = s
        .submit(
            "transfer",
            json!({"DATA_TYPE": "transfer", "source_endpoint": s.coll, "destination_endpoint": b_coll,
                   "verify_checksum": true, "label": "Beamline to campus",
                   "DATA": [{"DATA_TYPE": "transfer_item", "source_path": "/runs",
                             "destination_path": "/incoming/runs", "recursive": true}]}),
        )
        .await;
    let doc = ended(&s, &id).await;
    assert_eq!(doc["status"], "SUCCEEDED", "{doc}");
    assert_eq!(doc["files"], 122, "{doc}");
    assert_eq!(doc["files_transferred"], 122, "{doc}");
    assert_eq!(doc["label"], "Beamline to campus");
    let dst = b.data_dir().join("storage/incoming/runs");
    assert_eq!(tree(&src), tree(&dst), "the destination equals the source");
    // The hub's record names the endpoint that ran it, and lists with the owner's tasks.
    let task = Uuid::parse_str(&id).unwrap();
    let record = s
        .hub
        .running
        .auth
        .store()
        .get_task(task)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(record.runner, Some(b_id));
    assert_eq!(record.status, TaskStatus::Succeeded);
    let (st, list) = s
        .hub
        .call(M::GET, "/v0.10/task_list", &s.transfer, None)
        .await;
    assert_eq!(st, 200, "{list}");
    let listed = list["DATA"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["task_id"] == id)
        .unwrap_or_else(|| panic!("{list}"))
        .clone();
    // The record and the running endpoint's document agree, names of both collections included.
    for k in [
        "status",
        "files",
        "bytes_transferred",
        "subtasks_total",
        "subtasks_succeeded",
        "source_endpoint_display_name",
        "destination_endpoint_display_name",
    ] {
        assert_eq!(listed[k], doc[k], "{k}: {listed} / {doc}");
    }
    assert!(doc["source_endpoint_display_name"].is_string(), "{doc}");
    assert_eq!(doc["subtasks_succeeded"], doc["subtasks_total"], "{doc}");
    // Each endpoint is known by the name it was set up with.
    let (st, ep) = s
        .hub
        .call(
            M::GET,
            &format!("/v0.10/endpoint/{b_id}"),
            &s.transfer,
            None,
        )
        .await;
    assert_eq!(st, 200, "{ep}");
    assert_eq!(ep["display_name"], "Campus", "{ep}");
    // Per-file results and events come from the endpoint that ran it.
    let (st, files) = s
        .hub
        .call(
            M::GET,
            &format!("/v0.10/task/{id}/successful_transfers"),
            &s.transfer,
            None,
        )
        .await;
    assert_eq!(st, 200, "{files}");
    assert!(
        files["DATA"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["destination_path"] == "/incoming/runs/large.h5"),
        "{files}"
    );
    let (st, events) = s
        .hub
        .call(
            M::GET,
            &format!("/v0.10/task/{id}/event_list"),
            &s.transfer,
            None,
        )
        .await;
    assert_eq!(st, 200, "{events}");
    assert!(
        events["DATA"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["code"] == "SUCCEEDED"),
        "{events}"
    );
    // The source endpoint saw each file read by the task owner for the task (its audit log is written behind).
    let mut seen = false;
    for _ in 0..100 {
        let audit =
            s.ep.running
                .auth
                .store()
                .query_audit(&ferry_store::AuditFilter {
                    path_prefix: Some("/runs/scan0/".into()),
                    ..Default::default()
                })
                .await
                .unwrap();
        seen = audit.iter().any(|r| r.action == "task.read" && r.allowed);
        if seen {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(seen, "no task.read at the source");
    // A delete task runs at the endpoint that holds the files.
    let del = s
        .submit(
            "delete",
            json!({"DATA_TYPE": "delete", "endpoint": b_coll, "recursive": true,
                   "DATA": [{"DATA_TYPE": "delete_item", "path": "/incoming/runs/scan1"}]}),
        )
        .await;
    let doc = ended(&s, &del).await;
    assert_eq!(doc["status"], "SUCCEEDED", "{doc}");
    assert!(!dst.join("scan1").exists());
    assert!(dst.join("scan0").is_dir());
}

#[tokio::test]
async fn a_source_the_owner_cannot_read_fails_the_task_with_the_reason() {
    let s = sites().await;
    let (_b, _, b_coll) = s.second("Campus").await;
    let id = s
        .submit(
            "transfer",
            json!({"DATA_TYPE": "transfer", "source_endpoint": s.coll, "destination_endpoint": b_coll,
                   "DATA": [{"DATA_TYPE": "transfer_item", "source_path": "/no/such/run",
                             "destination_path": "/x"}]}),
        )
        .await;
    let doc = ended(&s, &id).await;
    assert_eq!(doc["status"], "FAILED", "{doc}");
    assert_eq!(doc["fatal_error"]["code"], "FILE_NOT_FOUND", "{doc}");
}

#[tokio::test]
async fn only_the_endpoint_running_a_task_gets_its_credential_and_only_while_it_runs() {
    let s = sites().await;
    let (b, b_id, b_coll) = s.second("Campus").await;
    std::fs::create_dir_all(s.storage().join("runs")).unwrap();
    std::fs::write(s.storage().join("runs/a.h5"), b"a").unwrap();
    std::fs::write(s.storage().join("secret.txt"), b"s").unwrap();
    let secret = |c: &str| serde_json::from_str::<Value>(c).unwrap();
    let file_of = |ep: &TestServer| {
        secret(&std::fs::read_to_string(ep.data_dir().join("endpoint.json")).unwrap())
    };
    let (a_file, b_file) = (file_of(&s.ep), file_of(&b));
    let ask = |file: &Value, task: &str| {
        let http = s.hub.http.clone();
        let url = format!(
            "{}/v2/ferry/endpoints/{}/tasks/{task}/credential",
            s.hub.url,
            file["endpoint_id"].as_str().unwrap()
        );
        let (user, pass) = (
            file["endpoint_id"].as_str().unwrap().to_string(),
            file["client_secret"].as_str().unwrap().to_string(),
        );
        async move {
            let r = http
                .post(url)
                .basic_auth(user, Some(pass))
                .send()
                .await
                .unwrap();
            (
                r.status().as_u16(),
                r.json::<Value>().await.unwrap_or_default(),
            )
        }
    };
    let id = s
        .submit(
            "transfer",
            json!({"DATA_TYPE": "transfer", "source_endpoint": s.coll, "destination_endpoint": b_coll,
                   "DATA": [{"DATA_TYPE": "transfer_item", "source_path": "/runs",
                             "destination_path": "/runs", "recursive": true}]}),
        )
        .await;
    // The source endpoint is not the one running it; a task that does not exist has no credential.
    assert_eq!(ask(&a_file, &id).await.0, 404);
    assert_eq!(ask(&b_file, &Uuid::new_v4().to_string()).await.0, 404);
    // Endpoint B cannot ask in A's name.
    let r = s
        .hub
        .http
        .post(format!(
            "{}/v2/ferry/endpoints/{}/tasks/{id}/credential",
            s.hub.url, s.endpoint_id
        ))
        .basic_auth(
            b_id.to_string(),
            Some(b_file["client_secret"].as_str().unwrap()),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 403);
    let doc = ended(&s, &id).await;
    assert_eq!(doc["status"], "SUCCEEDED", "{doc}");
    // Once the hub heard that it ended (the endpoint reports twice a second), none.
    let task = Uuid::parse_str(&id).unwrap();
    for _ in 0..100 {
        let record = s
            .hub
            .running
            .auth
            .store()
            .get_task(task)
            .await
            .unwrap()
            .unwrap();
        if record.status == TaskStatus::Succeeded {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(ask(&b_file, &id).await.0, 403);
    // While it ran, the credential it got read the task's paths only.
    let (st, _) = s
        .hub
        .call(M::GET, &format!("/v0.10/task/{id}"), &s.transfer, None)
        .await;
    assert_eq!(st, 200);
    assert!(!b.data_dir().join("storage/secret.txt").exists());
}

/// The pull API at an endpoint, as an attacker holding a task credential (or something else) would try it:
/// only the credential's collection and paths, only names in a folder, nothing through a symbolic link.
#[tokio::test]
async fn the_pull_api_gives_only_what_the_task_credential_covers() {
    let s = sites().await;
    let st = s.storage();
    std::fs::create_dir_all(st.join("runs/42")).unwrap();
    std::fs::create_dir_all(st.join("runs/43")).unwrap();
    std::fs::write(st.join("runs/42/a.h5"), b"run 42").unwrap();
    std::fs::write(st.join("runs/43/b.h5"), b"run 43").unwrap();
    std::os::unix::fs::symlink(st.join("runs/43/b.h5"), st.join("runs/42/link.h5")).unwrap();
    let auth = &s.hub.running.auth;
    let me = auth
        .store()
        .get_identity(Uuid::parse_str(&s.owner.id).unwrap())
        .await
        .unwrap()
        .unwrap();
    let cred = auth
        .task_credential(
            s.endpoint_id,
            &me,
            &[],
            Uuid::new_v4(),
            s.coll,
            vec!["/runs/42".into()],
        )
        .await
        .unwrap();
    let pull = |method: M, what: &str, query: &str, body: Option<Value>, header: String| {
        let mut r =
            s.ep.http
                .request(
                    method,
                    format!("{}/site/pull/{}/{what}?{query}", s.ep.url, s.coll),
                )
                .header("authorization", header);
        if let Some(b) = body {
            r = r.json(&b);
        }
        async move {
            let r = r.send().await.unwrap();
            (r.status().as_u16(), r.bytes().await.unwrap())
        }
    };
    let (code, body) = pull(M::GET, "stat", "path=/runs/42/a.h5", None, cred.clone()).await;
    assert_eq!(code, 200, "{body:?}");
    assert_eq!(serde_json::from_slice::<Value>(&body).unwrap()["size"], 6);
    // Outside the credential's paths, also by `..`; the bearer token of the owner is no credential here.
    for q in [
        "path=/runs/43/b.h5",
        "path=/runs/42/../43/b.h5",
        "path=/",
        "path=/runs",
    ] {
        let (code, _) = pull(M::GET, "stat", q, None, cred.clone()).await;
        assert_eq!(code / 100, 4, "{q}");
        let (code, _) = pull(M::GET, "list", q, None, cred.clone()).await;
        assert_eq!(code / 100, 4, "{q}");
    }
    let https = token_for(&s.tokens, &s.coll.to_string());
    let (code, _) = pull(
        M::GET,
        "stat",
        "path=/runs/42/a.h5",
        None,
        format!("Bearer {https}"),
    )
    .await;
    assert_eq!(code, 401);
    // The folder's listing ends with its `end` line; the link is listed as a link, never followed.
    let (code, body) = pull(M::GET, "list", "path=/runs/42", None, cred.clone()).await;
    assert_eq!(code, 200);
    let lines: Vec<Value> = body
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| serde_json::from_slice(l).unwrap())
        .collect();
    assert_eq!(lines.last().unwrap()["end"], true);
    let kinds: std::collections::BTreeMap<String, String> = lines
        .iter()
        .flat_map(|l| l["entries"].as_array().cloned().unwrap_or_default())
        .map(|e| {
            (
                e["name"].as_str().unwrap().to_string(),
                e["type"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(kinds["a.h5"], "file");
    assert_eq!(kinds["link.h5"], "symlink");
    // Whole files: names only (no `/`, `.` or `..`), a name through a link gives nothing of its target.
    for bad in ["../43/b.h5", "..", "", "x/y"] {
        let (code, _) = pull(
            M::POST,
            "files",
            "",
            Some(json!({"dir": "/runs/42", "names": [bad], "max": 1024})),
            cred.clone(),
        )
        .await;
        assert_eq!(code, 400, "{bad:?}");
    }
    let (code, body) = pull(
        M::POST,
        "files",
        "",
        Some(json!({"dir": "/runs/42", "names": ["a.h5", "link.h5"], "max": 1024})),
        cred.clone(),
    )
    .await;
    assert_eq!(code, 200);
    assert!(
        body.windows(6).any(|w| w == b"run 42"),
        "the covered file comes whole"
    );
    assert!(
        !body.windows(6).any(|w| w == b"run 43"),
        "nothing of what the link leads to"
    );
    // A folder above the credential's paths: each name is refused on its own, with its path.
    let (code, body) = pull(
        M::POST,
        "files",
        "",
        Some(json!({"dir": "/runs/43", "names": ["b.h5"], "max": 1024})),
        cred.clone(),
    )
    .await;
    assert_eq!(code, 200);
    let head: Value = serde_json::from_slice(&body[4..]).unwrap();
    assert_eq!(head["failure"]["kind"], "refused", "{head}");
    assert_eq!(head["failure"]["path"], "/runs/43/b.h5", "{head}");
    assert!(!body.windows(6).any(|w| w == b"run 43"));
}

/// Two endpoints: a guest collection on A's `/runs` (holding `r.dat`) and one on a second endpoint B's
/// `/incoming`, both reported to the hub; B's server and the two collections.
async fn runs_to_incoming() -> (Sites, TestServer, Uuid, Uuid) {
    let s = sites().await;
    let (b, b_id, b_coll) = s.second("Campus").await;
    std::fs::create_dir_all(s.storage().join("runs")).unwrap();
    std::fs::write(s.storage().join("runs/r.dat"), b"run data").unwrap();
    std::fs::create_dir_all(b.data_dir().join("storage/incoming")).unwrap();
    let from = s.share_on(s.coll, "/runs", "runs").await;
    let into = s.share_on(b_coll, "/incoming", "incoming").await;
    reported(&s.hub, &s.auth, s.endpoint_id, 2).await;
    reported(&s.hub, &s.auth, b_id, 2).await;
    (s, b, from, into)
}

/// `r.dat` copied A -> B by the holder of `token`: the task succeeds and the bytes are at B.
async fn lands(s: &Sites, b: &TestServer, token: &str, from: Uuid, into: Uuid) {
    let id = s.submit_as(token, from, into, "/r.dat").await;
    let last = ended_for(s, &id, token).await;
    assert_eq!(last["status"], "SUCCEEDED", "{last}");
    assert_eq!(
        std::fs::read(b.data_dir().join("storage/incoming/r.dat")).unwrap(),
        b"run data"
    );
}

/// A collaborator moves data from a guest collection on A (shared with them) into one on B that is shared with
/// a group they belong to: memberships are the hub's, and B's checks for the task see them.
#[tokio::test]
async fn a_group_permission_at_the_destination_reaches_the_task() {
    const GROUPS: &str = "urn:globus:auth:scope:groups.api.globus.org:all";
    let (s, b, from, into) = runs_to_incoming().await;
    let bob = s.hub.person("bob").await;
    let groups = token_for(
        &s.hub
            .login(&s.app, &s.owner, &format!("openid {GROUPS}"))
            .await,
        "groups.api.globus.org",
    );
    let (st, g) = s
        .hub
        .call(
            M::POST,
            "/v2/groups",
            &groups,
            Some(&json!({"name": "Beam team"})),
        )
        .await;
    assert_eq!(st, 200, "{g}");
    let gid = g["id"].as_str().unwrap().to_string();
    let (st, added) = s
        .hub
        .call(
            M::POST,
            &format!("/v2/groups/{gid}"),
            &groups,
            Some(&json!({"add": [{"identity_id": bob.id, "role": "member"}]})),
        )
        .await;
    assert_eq!(st, 200, "{added}");
    s.permit(from, "identity", &bob.id, "r").await;
    s.permit(into, "group", &gid, "rw").await;
    let bobs = token_for(
        &s.hub
            .login(&s.app, &bob, &format!("openid {TRANSFER}"))
            .await,
        "transfer.api.globus.org",
    );
    lands(&s, &b, &bobs, from, into).await;
}

/// A permission at the destination given to an identity linked with the task owner's reaches the task run
/// there, and the owner's token reads what a rule names the linked identity for, at the endpoint that holds it.
#[tokio::test]
async fn a_linked_identitys_permission_counts_for_the_owner_at_the_endpoints() {
    let (s, b, from, into) = runs_to_incoming().await;
    // Bob at his university, and the same Bob's other identity; the rules name only the other one.
    let bob = s.hub.person("bob").await;
    let other = s.hub.person("bob-orcid").await;
    s.permit(from, "identity", &other.id, "r").await;
    s.permit(into, "identity", &other.id, "rw").await;
    let bobs = token_for(
        &s.hub
            .login(&s.app, &bob, &format!("openid {TRANSFER}"))
            .await,
        "transfer.api.globus.org",
    );
    // Not linked yet: the hub refuses the submission (the destination's permission is not Bob's).
    let (st, refused) = s.try_submit_as(&bobs, from, into, "/r.dat").await;
    assert_eq!(st, 403, "{refused}");
    s.hub
        .running
        .auth
        .store()
        .link_identity(
            Uuid::parse_str(&bob.id).unwrap(),
            Uuid::parse_str(&other.id).unwrap(),
            s.hub.now(),
        )
        .await
        .unwrap();
    lands(&s, &b, &bobs, from, into).await;
    // Bob's own token at B's HTTPS door: B learns his set from the hub's introspection.
    let https = token_for(
        &s.hub
            .login(
                &s.app,
                &bob,
                &format!("https://auth.globus.org/scopes/{into}/https"),
            )
            .await,
        &into.to_string(),
    );
    let r = b
        .http
        .get(format!("{}/data/{into}/r.dat", b.url))
        .bearer_auth(&https)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.bytes().await.unwrap().as_ref(), b"run data");
}
