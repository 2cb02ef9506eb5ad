//! Every data door (Transfer ls/stat/mkdir/rename, HTTPS GET/HEAD/PUT/DELETE) goes through the one access
//! check: restricted paths are refused on every operation, symlinks cannot lead out, and nothing outside changes.

use std::collections::BTreeMap;
use std::path::Path;

use ferry_core::ClientKind;
use ferry_tests::TestServer;
use ferry_tests::endpoint::{Api, api, gateway, ls, mapped};
use reqwest::Method as M;
use serde_json::{Value, json};
use uuid::Uuid;

const TRANSFER: &str = "urn:globus:auth:scope:transfer.api.globus.org:all";

/// Everything under `root` (paths and contents, symlink targets), to prove a refusal changed nothing.
fn snapshot(root: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut todo = vec![root.to_path_buf()];
    while let Some(dir) = todo.pop() {
        for e in std::fs::read_dir(&dir).unwrap() {
            let p = e.unwrap().path();
            let key = p.strip_prefix(root).unwrap().display().to_string();
            let md = std::fs::symlink_metadata(&p).unwrap();
            let value = if md.file_type().is_symlink() {
                format!("-> {}", std::fs::read_link(&p).unwrap().display())
            } else if md.is_dir() {
                todo.push(p.clone());
                "dir".into()
            } else {
                String::from_utf8_lossy(&std::fs::read(&p).unwrap()).into_owned()
            };
            out.insert(key, value);
        }
    }
    out
}

/// A server, a gateway over `<tmp>/root` with the given restrictions, a mapped collection on its `/`, and the
/// admin client's Transfer and HTTPS tokens for it.
struct Setup<'a> {
    s: &'a TestServer,
    admin: Api<'a>,
    coll: Uuid,
    transfer: String,
    https: String,
    root: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

async fn setup(s: &TestServer, restrict: Value) -> Setup<'_> {
    let admin_app = s.admin_app();
    let admin = api(s, &admin_app).await;
    let (g, dir) = gateway(&admin, restrict, json!({})).await;
    let root = dir.path().to_path_buf();
    let coll = mapped(&admin, g, json!({})).await;
    let transfer = s.access_token(&admin_app, TRANSFER).await;
    let https = s
        .access_token(
            &admin_app,
            &format!("https://auth.globus.org/scopes/{coll}/https"),
        )
        .await;
    Setup {
        s,
        admin,
        coll,
        transfer,
        https,
        root,
        _dir: dir,
    }
}

impl Setup<'_> {
    fn op(&self, name: &str) -> String {
        format!("/v0.10/operation/endpoint/{}/{name}", self.coll)
    }
    async fn stat(&self, path: &str) -> (u16, Value) {
        let q = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("path", path)
            .finish();
        self.s
            .call(
                M::GET,
                &format!("{}?{q}", self.op("stat")),
                &self.transfer,
                None,
            )
            .await
    }
    async fn mkdir(&self, path: &str) -> (u16, Value) {
        let body = json!({"DATA_TYPE": "mkdir", "path": path});
        self.s
            .call(M::POST, &self.op("mkdir"), &self.transfer, Some(&body))
            .await
    }
    async fn rename(&self, from: &str, to: &str) -> (u16, Value) {
        let body = json!({"DATA_TYPE": "rename", "old_path": from, "new_path": to});
        self.s
            .call(M::POST, &self.op("rename"), &self.transfer, Some(&body))
            .await
    }
    async fn ls(&self, path: &str) -> (u16, Value) {
        ls(self.s, &self.transfer, self.coll, path).await
    }
    /// An HTTPS request on a collection path (already URL-encoded where needed); None: no credentials.
    async fn https(
        &self,
        m: M,
        path: &str,
        token: Option<&str>,
        body: Option<Vec<u8>>,
    ) -> reqwest::Response {
        let mut rb = self
            .s
            .http
            .request(m, format!("{}/data/{}{path}", self.s.url, self.coll));
        if let Some(t) = token {
            rb = rb.bearer_auth(t);
        }
        if let Some(b) = body {
            rb = rb.body(b);
        }
        rb.send().await.unwrap()
    }
    async fn status(&self, m: M, path: &str, body: Option<Vec<u8>>) -> u16 {
        self.https(m, path, Some(&self.https), body)
            .await
            .status()
            .as_u16()
    }
}

/// A request sent byte for byte, so that no client library resolves `..` or `%2e%2e` first; returns the status.
async fn raw_status(s: &TestServer, method: &str, target: &str, token: &str) -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = s.running.addr;
    let mut conn = tokio::net::TcpStream::connect(addr).await.unwrap();
    let req = format!(
        "{method} {target} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    );
    conn.write_all(req.as_bytes()).await.unwrap();
    let mut buf = vec![0u8; 64];
    let n = conn.read(&mut buf).await.unwrap();
    let line = String::from_utf8_lossy(&buf[..n]);
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

fn write(root: &Path, rel: &str, content: &str) {
    let p = root.join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, content).unwrap();
}

#[tokio::test]
async fn a_path_outside_the_restrictions_is_refused_on_every_operation() {
    let s = TestServer::start().await;
    let t = setup(&s, json!({"read_write": ["/rw"], "read": ["/ro"]})).await;
    write(&t.root, "rw/a.txt", "a");
    write(&t.root, "ro/r.txt", "r");
    write(&t.root, "secret/s.txt", "s");
    write(&t.root, "top.txt", "t");
    let before = snapshot(&t.root);
    let denied = |(st, b): (u16, Value)| {
        assert_eq!(
            (st, b["code"].as_str()),
            (403, Some("EndpointPermissionDenied")),
            "{b}"
        );
    };
    for p in ["/", "/secret", "/secret/s.txt", "/top.txt", "/rwx"] {
        denied(t.ls(p).await);
        denied(t.stat(p).await);
    }
    for p in ["/secret/new", "/ro/new", "/new"] {
        denied(t.mkdir(p).await);
    }
    denied(t.rename("/rw/a.txt", "/secret/a.txt").await);
    denied(t.rename("/secret/s.txt", "/rw/s.txt").await);
    denied(t.rename("/ro/r.txt", "/rw/r.txt").await);
    for p in ["/secret/s.txt", "/top.txt", "/ro/r.txt"] {
        if p != "/ro/r.txt" {
            assert_eq!(t.status(M::GET, p, None).await, 403, "GET {p}");
            assert_eq!(t.status(M::HEAD, p, None).await, 403, "HEAD {p}");
        }
        assert_eq!(
            t.status(M::PUT, p, Some(b"x".to_vec())).await,
            403,
            "PUT {p}"
        );
        assert_eq!(t.status(M::DELETE, p, None).await, 403, "DELETE {p}");
    }
    assert_eq!(snapshot(&t.root), before, "refusals changed nothing");
    // What the restrictions allow works through the same doors.
    let (st, b) = t.ls("/ro").await;
    assert_eq!(
        (st, b["DATA"][0]["name"].as_str()),
        (200, Some("r.txt")),
        "{b}"
    );
    assert_eq!(t.stat("/ro/r.txt").await.1["type"], "file");
    assert_eq!(t.status(M::GET, "/ro/r.txt", None).await, 200);
    assert_eq!(t.mkdir("/rw/sub").await.0, 200);
    assert_eq!(t.rename("/rw/a.txt", "/rw/sub/b.txt").await.0, 200);
    assert_eq!(
        t.status(M::PUT, "/rw/new.txt", Some(b"new".to_vec())).await,
        201
    );
    assert_eq!(t.status(M::DELETE, "/rw/new.txt", None).await, 204);
    assert_eq!(
        std::fs::read_to_string(t.root.join("rw/sub/b.txt")).unwrap(),
        "a"
    );
    let (st, b) = t.stat("/rw/missing").await;
    assert_eq!((st, b["code"].as_str()), (404, Some("NotFound")));
    let (st, b) = t.ls("/rw/missing").await;
    assert_eq!(
        (st, b["code"].as_str()),
        (404, Some("ClientError.NotFound"))
    );
    let (st, b) = t.mkdir("/rw/sub").await;
    assert_eq!(
        (st, b["code"].as_str()),
        (409, Some("ExternalError.MkdirFailed.Exists"))
    );
}

#[tokio::test]
async fn symlinks_cannot_lead_out_of_the_storage_or_the_restrictions() {
    let s = TestServer::start().await;
    let t = setup(&s, json!({"read_write": ["/rw"], "read": ["/ro"]})).await;
    write(&t.root, "ro/r.txt", "r");
    write(&t.root, "secret/s.txt", "s");
    let outside = t
        .root
        .parent()
        .unwrap()
        .join(format!("outside-{}", Uuid::new_v4()));
    write(&outside, "canary", "CANARY");
    std::fs::create_dir_all(t.root.join("rw")).unwrap();
    use std::os::unix::fs::symlink;
    symlink("/etc", t.root.join("rw/abs")).unwrap();
    symlink(
        format!("../../{}", outside.file_name().unwrap().to_str().unwrap()),
        t.root.join("rw/up"),
    )
    .unwrap();
    symlink("../secret", t.root.join("rw/inner")).unwrap();
    symlink("../ro", t.root.join("rw/ok")).unwrap();
    let before = snapshot(&t.root);
    for link in ["/rw/abs", "/rw/up", "/rw/inner"] {
        assert_eq!(t.ls(link).await.0, 403, "ls {link}");
        assert_eq!(
            t.stat(&format!("{link}/x")).await.0,
            403,
            "stat through {link}"
        );
        assert_eq!(
            t.mkdir(&format!("{link}/new")).await.0,
            403,
            "mkdir through {link}"
        );
        assert_eq!(
            t.rename(&format!("{link}/canary"), "/rw/stolen").await.0,
            403
        );
        for f in ["/passwd", "/canary", "/s.txt"] {
            let p = format!("{link}{f}");
            assert_eq!(t.status(M::GET, &p, None).await, 403, "GET {p}");
            assert_eq!(
                t.status(M::PUT, &p, Some(b"x".to_vec())).await,
                403,
                "PUT {p}"
            );
            assert_eq!(t.status(M::DELETE, &p, None).await, 403, "DELETE {p}");
        }
    }
    // `access explain` says the same: a link out of the storage gives no access.
    let admin = s
        .running
        .auth
        .resolve_identity(&s.admin_app().id)
        .await
        .unwrap()
        .unwrap();
    let r = s
        .running
        .endpoint
        .explain(t.coll, "/rw/up/canary", Some(admin.clone()))
        .await
        .unwrap();
    assert_eq!(r.access, ferry_core::restrictions::Access::None, "{r:?}");
    assert!(r.decided_by.contains("outside the storage"), "{r:?}");
    let r = s
        .running
        .endpoint
        .explain(t.coll, "/rw/ok/r.txt", Some(admin))
        .await
        .unwrap();
    assert_eq!(
        r.access,
        ferry_core::restrictions::Access::Read,
        "through the link: read only"
    );
    // A link to a readable place reads, and does not write.
    let (st, b) = t.ls("/rw/ok").await;
    assert_eq!((st, b["DATA"][0]["name"].as_str()), (200, Some("r.txt")));
    assert_eq!(t.status(M::GET, "/rw/ok/r.txt", None).await, 200);
    assert_eq!(t.status(M::PUT, "/rw/ok/x", Some(b"x".to_vec())).await, 403);
    // The listing shows which links lead nowhere reachable.
    let (_, b) = t.ls("/rw").await;
    let kinds: BTreeMap<String, String> = b["DATA"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["name"].as_str().unwrap().into(),
                f["type"].as_str().unwrap().into(),
            )
        })
        .collect();
    assert_eq!(kinds["abs"], "invalid_symlink");
    assert_eq!(kinds["up"], "invalid_symlink");
    assert_eq!(kinds["ok"], "dir");
    assert_eq!(snapshot(&t.root), before);
    assert_eq!(
        std::fs::read_to_string(outside.join("canary")).unwrap(),
        "CANARY"
    );
    assert_eq!(std::fs::read_dir(&outside).unwrap().count(), 1);
    std::fs::remove_dir_all(outside).unwrap();
}

#[tokio::test]
async fn names_ranges_uploads_and_traversal() {
    let s = TestServer::start().await;
    let t = setup(&s, json!({"read_write": ["/"]})).await;
    let name = "sp ace ü #1.txt";
    let encoded = "sp%20ace%20%C3%BC%20%231.txt";
    assert_eq!(
        t.status(M::PUT, &format!("/{encoded}"), Some(b"0123456789".to_vec()))
            .await,
        201
    );
    assert_eq!(std::fs::read(t.root.join(name)).unwrap(), b"0123456789");
    let (_, b) = t.ls("/").await;
    assert_eq!(b["DATA"][0]["name"], name);
    assert_eq!(b["DATA"][0]["size"], 10);
    let get = |range: &'static str| {
        let t = &t;
        async move {
            let r =
                t.s.http
                    .get(format!("{}/data/{}/{encoded}?download", t.s.url, t.coll))
                    .bearer_auth(&t.https)
                    .header("range", range)
                    .send()
                    .await
                    .unwrap();
            let h = r.headers().clone();
            (r.status().as_u16(), h, r.bytes().await.unwrap())
        }
    };
    let (st, h, body) = get("bytes=2-5").await;
    assert_eq!((st, &body[..]), (206, &b"2345"[..]));
    assert_eq!(h["content-range"], "bytes 2-5/10");
    assert_eq!(h["x-content-type-options"], "nosniff");
    assert!(
        h["content-disposition"]
            .to_str()
            .unwrap()
            .starts_with("attachment;")
    );
    let (st, _, body) = get("bytes=-3").await;
    assert_eq!((st, &body[..]), (206, &b"789"[..]));
    let (st, h, _) = get("bytes=10-").await;
    assert_eq!(
        (st, h["content-range"].to_str().unwrap()),
        (416, "bytes */10")
    );
    let (st, _, body) = get("bytes=0-1,3-4").await;
    assert_eq!(
        (st, body.len()),
        (200, 10),
        "several ranges: the whole file"
    );

    // An upload whose client goes away midway leaves nothing, under the name or beside it.
    {
        use tokio::io::AsyncWriteExt;
        let addr = s.running.addr;
        let mut conn = tokio::net::TcpStream::connect(addr).await.unwrap();
        let head = format!(
            "PUT /data/{}/broken.bin HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {}\r\nContent-Length: 1000000\r\n\r\n",
            t.coll, t.https
        );
        conn.write_all(head.as_bytes()).await.unwrap();
        conn.write_all(&[b'x'; 64 * 1024]).await.unwrap();
        conn.flush().await.unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        drop(conn);
    }
    // The server may notice the broken body just after the client gives up.
    for _ in 0..50 {
        if std::fs::read_dir(&t.root).unwrap().count() == 1 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let left: Vec<String> = std::fs::read_dir(&t.root)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(left, vec![name.to_string()], "no partial or temporary file");

    // `..` is refused before anything is looked at, however it is spelled.
    let before = snapshot(&t.root);
    for p in [
        "/a/../b",
        "/%2e%2e/etc/passwd",
        "/x/%2E%2E/%2e%2e/y",
        "/a/%2F../b",
    ] {
        let target = format!("/data/{}{p}", t.coll);
        for m in ["GET", "PUT", "DELETE"] {
            assert_eq!(raw_status(&s, m, &target, &t.https).await, 400, "{m} {p}");
        }
    }
    let (st, b) = t.ls("/a/../..").await;
    assert_eq!(
        (st, b["code"].as_str()),
        (400, Some("ClientError.BadRequest")),
        "{b}"
    );
    assert_eq!(t.mkdir("../x").await.0, 400);
    assert_eq!(snapshot(&t.root), before);
    // A folder is not a file; the root is never deleted.
    std::fs::create_dir(t.root.join("d")).unwrap();
    assert_eq!(t.status(M::GET, "/d", None).await, 400);
    assert_eq!(t.status(M::DELETE, "", None).await, 400);
}

#[tokio::test]
async fn guest_collections_reach_their_folder_only_and_strangers_nothing() {
    let s = TestServer::start().await;
    let t = setup(&s, json!({"read_write": ["/"]})).await;
    write(&t.root, "share/in.txt", "inside");
    write(&t.root, "private.txt", "outside");
    t.admin
        .ok(
            M::PATCH,
            &format!("/api/collections/{}", t.coll),
            Some(json!({"allow_guest_collections": true})),
        )
        .await;
    let g = t
        .admin
        .ok(
            M::POST,
            "/api/collections",
            Some(json!({"collection_type": "guest", "display_name": "share",
                        "mapped_collection_id": t.coll, "collection_base_path": "/share"})),
        )
        .await;
    let gid = Uuid::parse_str(g["id"].as_str().unwrap()).unwrap();
    let (st, b) = ls(&s, &t.transfer, gid, "/").await;
    assert_eq!(
        (st, b["DATA"][0]["name"].as_str()),
        (200, Some("in.txt")),
        "{b}"
    );
    let owner_https = s
        .access_token(
            &s.admin_app(),
            &format!("https://auth.globus.org/scopes/{gid}/https"),
        )
        .await;
    let url = |p: &str| format!("{}/data/{gid}{p}", s.url);
    let r = s
        .http
        .get(url("/in.txt"))
        .bearer_auth(&owner_https)
        .send()
        .await
        .unwrap();
    assert_eq!(r.text().await.unwrap(), "inside");
    let r = s
        .http
        .put(url("/up.txt"))
        .bearer_auth(&owner_https)
        .body("u")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    assert_eq!(
        std::fs::read_to_string(t.root.join("share/up.txt")).unwrap(),
        "u"
    );
    // Nothing above the guest collection's folder can be named.
    let up = format!("/data/{gid}/%2e%2e/private.txt");
    assert_eq!(raw_status(&s, "GET", &up, &owner_https).await, 400);
    // A stranger, and an anonymous caller, get nothing.
    let stranger = s.app(ClientKind::Confidential).await;
    let st_transfer = s.access_token(&stranger, TRANSFER).await;
    let (st, b) = ls(&s, &st_transfer, gid, "/").await;
    assert_eq!(
        (st, b["code"].as_str()),
        (403, Some("EndpointPermissionDenied"))
    );
    assert_eq!(
        s.http.get(url("/in.txt")).send().await.unwrap().status(),
        403
    );
    // A token for another collection is not valid here.
    let r = s
        .http
        .get(url("/in.txt"))
        .bearer_auth(&t.https)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let (st, _) = ls(&s, &st_transfer, Uuid::new_v4(), "/").await;
    assert_eq!(st, 404, "an unknown collection");
}
