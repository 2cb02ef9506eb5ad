//! Resumable uploads (tus 1.0) at `/uploads/<collection>`: a file sent in pieces takes its name only when whole,
//! a broken connection keeps what arrived, every request passes the access check (a withdrawn permission stops
//! the upload), an upload is its owner's alone, browsers need their anti-forgery token, abandoned uploads are
//! swept, and hostile input is refused without leaving anything behind.

use std::path::PathBuf;

use ferry_core::ClientKind;
use ferry_tests::endpoint::{api, gateway, ls, mapped};
use ferry_tests::{App, TestServer, names, random};
use reqwest::Method as M;
use serde_json::{Value, json};
use uuid::Uuid;

const TRANSFER: &str = "urn:globus:auth:scope:transfer.api.globus.org:all";
const OFFSET_STREAM: &str = "application/offset+octet-stream";

fn https_scope(coll: Uuid) -> String {
    format!("https://auth.globus.org/scopes/{coll}/https")
}

/// Standard base64, as tus metadata carries it.
fn b64(s: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(s)
}

/// A tus client of one collection, with a bearer token or a browser's cookie and anti-forgery token.
struct Tus<'a> {
    s: &'a TestServer,
    coll: Uuid,
    token: Option<String>,
    /// `Cookie` and `X-CSRF-Token` values, for a browser.
    browser: Option<(String, Option<String>)>,
}

/// What an answer said, in tus terms.
#[derive(Default)]
struct Said {
    status: u16,
    offset: Option<u64>,
    length: Option<u64>,
    location: Option<String>,
    headers: reqwest::header::HeaderMap,
    body: Value,
}

impl<'a> Tus<'a> {
    async fn bearer(s: &'a TestServer, app: &App, coll: Uuid) -> Self {
        Tus {
            s,
            coll,
            token: Some(s.access_token(app, &https_scope(coll)).await),
            browser: None,
        }
    }

    fn request(&self, m: M, url: &str) -> reqwest::RequestBuilder {
        let mut rb = self
            .s
            .http
            .request(m, format!("{}{url}", self.s.url))
            .header("tus-resumable", "1.0.0");
        if let Some(t) = &self.token {
            rb = rb.bearer_auth(t);
        }
        if let Some((cookie, csrf)) = &self.browser {
            rb = rb.header("cookie", cookie);
            if let Some(c) = csrf {
                rb = rb.header("x-csrf-token", c);
            }
        }
        rb
    }

    async fn said(rb: reqwest::RequestBuilder) -> Said {
        let r = rb.send().await.expect("request sent");
        let h = r.headers().clone();
        let num = |name: &str| h.get(name).and_then(|v| v.to_str().ok()?.parse().ok());
        Said {
            status: r.status().as_u16(),
            offset: num("upload-offset"),
            length: num("upload-length"),
            location: h.get("location").map(|v| v.to_str().unwrap().to_string()),
            body: r.json().await.unwrap_or(Value::Null),
            headers: h,
        }
    }

    /// `POST` with this `Upload-Metadata` and `Upload-Length`.
    async fn create_raw(&self, metadata: &str, length: &str) -> Said {
        Self::said(
            self.request(M::POST, &format!("/uploads/{}", self.coll))
                .header("upload-metadata", metadata)
                .header("upload-length", length),
        )
        .await
    }

    async fn create(&self, path: &str, length: usize) -> Said {
        self.create_raw(
            &format!("filename eA==,path {}", b64(path)),
            &length.to_string(),
        )
        .await
    }

    /// Creates an upload that must be accepted; its URL.
    async fn begin(&self, path: &str, length: usize) -> String {
        let c = self.create(path, length).await;
        assert_eq!(c.status, 201, "{}", c.body);
        assert_eq!(c.headers["tus-resumable"], "1.0.0");
        let at = c.location.expect("a Location");
        assert!(at.starts_with(&format!("/uploads/{}/", self.coll)), "{at}");
        at
    }

    async fn head(&self, at: &str) -> Said {
        Self::said(self.request(M::HEAD, at)).await
    }

    async fn patch(&self, at: &str, offset: u64, body: &[u8]) -> Said {
        Self::said(
            self.request(M::PATCH, at)
                .header("content-type", OFFSET_STREAM)
                .header("upload-offset", offset.to_string())
                .body(body.to_vec()),
        )
        .await
    }

    /// Begins a `PATCH` of `length` bytes from 0 on a connection of its own (with these extra header lines) and
    /// sends `part` of the body; the connection, to be dropped mid-body.
    async fn raw_patch(
        &self,
        at: &str,
        extra: &str,
        length: usize,
        part: &[u8],
    ) -> tokio::net::TcpStream {
        use tokio::io::AsyncWriteExt;
        let addr = self.s.running.addr;
        let mut conn = tokio::net::TcpStream::connect(addr).await.unwrap();
        let head = format!(
            "PATCH {at} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {}\r\nTus-Resumable: 1.0.0\r\n\
             Content-Type: {OFFSET_STREAM}\r\nUpload-Offset: 0\r\n{extra}Content-Length: {length}\r\n\r\n",
            self.token.as_ref().unwrap(),
        );
        conn.write_all(head.as_bytes()).await.unwrap();
        conn.write_all(part).await.unwrap();
        conn.flush().await.unwrap();
        conn
    }

    /// `PATCH` (with this `Upload-Checksum`, if any), asked again while a broken request of the same upload
    /// still holds it (409), a bounded number of times.
    async fn patch_when_free(
        &self,
        at: &str,
        offset: u64,
        body: &[u8],
        checksum: Option<&str>,
    ) -> Said {
        let mut p = Said::default();
        for _ in 0..100 {
            p = match checksum {
                Some(c) => self.patch_checked(at, offset, body, c).await,
                None => self.patch(at, offset, body).await,
            };
            if p.status != 409 {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        p
    }

    /// `PATCH` with this `Upload-Checksum`.
    async fn patch_checked(&self, at: &str, offset: u64, body: &[u8], checksum: &str) -> Said {
        Self::said(
            self.request(M::PATCH, at)
                .header("content-type", OFFSET_STREAM)
                .header("upload-offset", offset.to_string())
                .header("upload-checksum", checksum)
                .body(body.to_vec()),
        )
        .await
    }

    async fn delete(&self, at: &str) -> Said {
        Self::said(self.request(M::DELETE, at)).await
    }
}

/// A server, a gateway over a temporary folder, a mapped collection on its `/`, and the administrator's
/// client with a tus client of the collection and a Transfer token.
struct Mapped {
    s: TestServer,
    coll: Uuid,
    gateway: Uuid,
    admin: App,
    transfer: String,
    root: PathBuf,
    _dir: tempfile::TempDir,
}

async fn mapped_collection() -> Mapped {
    let s = TestServer::start().await;
    let admin = s.admin_app();
    let a = api(&s, &admin).await;
    let (g, dir) = gateway(&a, json!({"read_write": ["/"]}), json!({})).await;
    let coll = mapped(&a, g, json!({"allow_guest_collections": true})).await;
    let transfer = s.access_token(&admin, TRANSFER).await;
    let root = dir.path().to_path_buf();
    Mapped {
        s,
        coll,
        gateway: g,
        admin,
        transfer,
        root,
        _dir: dir,
    }
}

impl Mapped {
    /// The `PATCH` answered with `p` ended the upload, and `name` (alone in the root) holds `data`.
    fn assert_whole(&self, p: &Said, name: &str, data: &[u8]) {
        assert_eq!(
            (p.status, p.offset),
            (204, Some(data.len() as u64)),
            "{}",
            p.body
        );
        assert_eq!(
            blake3::hash(&std::fs::read(self.root.join(name)).unwrap()),
            blake3::hash(data)
        );
        assert_eq!(names(&self.root), vec![name]);
    }

    async fn tus(&self) -> Tus<'_> {
        Tus::bearer(&self.s, &self.admin, self.coll).await
    }

    /// The names the Transfer API lists in `path`.
    async fn listed(&self, path: &str) -> Vec<String> {
        let (st, b) = ls(&self.s, &self.transfer, self.coll, path).await;
        assert_eq!(st, 200, "{b}");
        b["DATA"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["name"].as_str().unwrap().to_string())
            .collect()
    }

    /// A guest collection on `/share` and a rule giving `principal` read-write on it; the collection and the
    /// rule's id.
    async fn share_with(&self, principal: &str) -> (Uuid, String) {
        std::fs::create_dir_all(self.root.join("share")).unwrap();
        let a = api(&self.s, &self.admin).await;
        let g = a
            .ok(
                M::POST,
                "/api/collections",
                Some(json!({"collection_type": "guest", "display_name": "share",
                            "mapped_collection_id": self.coll, "collection_base_path": "/share"})),
            )
            .await;
        let guest = Uuid::parse_str(g["id"].as_str().unwrap()).unwrap();
        let rule = json!({"DATA_TYPE": "access", "principal_type": "identity", "principal": principal,
                          "path": "/", "permissions": "rw"});
        let (st, b) = self
            .s
            .call(
                M::POST,
                &format!("/v0.10/endpoint/{guest}/access"),
                &self.transfer,
                Some(&rule),
            )
            .await;
        assert_eq!(st, 200, "{b}");
        (guest, b["access_id"].as_str().unwrap().to_string())
    }
}

#[tokio::test]
async fn a_file_sent_in_pieces_takes_its_name_only_when_whole() {
    let m = mapped_collection().await;
    std::fs::create_dir(m.root.join("in")).unwrap();
    let tus = m.tus().await;
    let data = random(3 * 1024 * 1024 + 17);
    let half = data.len() / 2;

    // Discovery needs no credentials, nor Tus-Resumable.
    let r =
        m.s.http
            .request(M::OPTIONS, format!("{}/uploads/{}", m.s.url, m.coll))
            .send()
            .await
            .unwrap();
    assert_eq!(r.status(), 204);
    assert_eq!(r.headers()["tus-resumable"], "1.0.0");
    assert_eq!(r.headers()["tus-version"], "1.0.0");
    assert_eq!(
        r.headers()["tus-extension"],
        "creation,termination,checksum"
    );
    assert_eq!(r.headers()["tus-checksum-algorithm"], "blake3");
    assert!(r.headers().get("tus-max-size").is_none());

    let at = tus.begin("/in/big ü.bin", data.len()).await;
    let p = tus.patch(&at, 0, &data[..half]).await;
    assert_eq!((p.status, p.offset), (204, Some(half as u64)), "{}", p.body);
    assert_eq!(p.headers["tus-resumable"], "1.0.0");

    let h = tus.head(&at).await;
    assert_eq!(h.status, 200);
    assert_eq!(
        (h.offset, h.length),
        (Some(half as u64), Some(data.len() as u64))
    );
    assert_eq!(h.headers["cache-control"], "no-store");
    assert_eq!(h.headers["tus-resumable"], "1.0.0");

    // Mid-upload nothing has the name, through the API or on disk.
    assert!(!m.listed("/in").await.contains(&"big ü.bin".to_string()));
    assert!(!m.root.join("in/big ü.bin").exists());

    // Bytes sent again from the start are refused: the offset is where the upload stands.
    let p = tus.patch(&at, 0, &data[..10]).await;
    assert_eq!(p.status, 409, "{}", p.body);
    let p = tus.patch(&at, half as u64 + 1, &data[half + 1..]).await;
    assert_eq!(p.status, 409, "{}", p.body);
    assert_eq!(tus.head(&at).await.offset, Some(half as u64));

    let p = tus.patch(&at, half as u64, &data[half..]).await;
    assert_eq!(
        (p.status, p.offset),
        (204, Some(data.len() as u64)),
        "{}",
        p.body
    );
    let written = std::fs::read(m.root.join("in/big ü.bin")).unwrap();
    assert_eq!(blake3::hash(&written), blake3::hash(&data));
    assert_eq!(
        names(&m.root.join("in")),
        vec!["big ü.bin"],
        "no temporary file remains"
    );
    assert!(m.listed("/in").await.contains(&"big ü.bin".to_string()));
    // The upload is over.
    assert_eq!(tus.head(&at).await.status, 404);
    assert_eq!(tus.patch(&at, 0, b"x").await.status, 404);

    // A second upload replaces the file, once whole; a cancelled one leaves nothing.
    let at = tus.begin("/in/big ü.bin", 4).await;
    assert_eq!(tus.patch(&at, 0, b"ne").await.status, 204);
    assert_eq!(
        blake3::hash(&std::fs::read(m.root.join("in/big ü.bin")).unwrap()),
        blake3::hash(&data)
    );
    assert_eq!(tus.patch(&at, 2, b"w!").await.status, 204);
    assert_eq!(std::fs::read(m.root.join("in/big ü.bin")).unwrap(), b"new!");
    let at = tus.begin("/in/cancelled.bin", 10).await;
    assert_eq!(tus.patch(&at, 0, b"12345").await.status, 204);
    assert_eq!(tus.delete(&at).await.status, 204);
    assert_eq!(tus.head(&at).await.status, 404);
    assert_eq!(tus.delete(&at).await.status, 404);
    assert_eq!(names(&m.root.join("in")), vec!["big ü.bin"]);
    // An empty file is whole at once.
    let c = tus.create("/in/empty", 0).await;
    assert_eq!(c.status, 201, "{}", c.body);
    assert_eq!(std::fs::read(m.root.join("in/empty")).unwrap(), b"");
}

#[tokio::test]
async fn a_broken_connection_keeps_what_arrived() {
    let m = mapped_collection().await;
    let tus = m.tus().await;
    let data = random(2 * 1024 * 1024);
    let at = tus.begin("/broken.bin", data.len()).await;
    let sent = 700 * 1024 + 3;
    {
        let _conn = tus.raw_patch(&at, "", data.len(), &data[..sent]).await;
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    // The server notices the broken body just after the client gives up; a client asks until it is told, and
    // its next request waits for the broken one to let go of the upload.
    let mut kept = None;
    for _ in 0..100 {
        kept = tus.head(&at).await.offset;
        if kept == Some(sent as u64) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(kept, Some(sent as u64), "what arrived is kept");
    assert!(!m.root.join("broken.bin").exists());
    let p = tus
        .patch_when_free(&at, sent as u64, &data[sent..], None)
        .await;
    m.assert_whole(&p, "broken.bin", &data);
}

/// `blake3 <base64 digest>`, as `Upload-Checksum` carries it.
fn blake3_checksum(body: &[u8]) -> String {
    use base64::Engine;
    let digest = blake3::hash(body);
    format!(
        "blake3 {}",
        base64::engine::general_purpose::STANDARD.encode(digest.as_bytes())
    )
}

#[tokio::test]
async fn a_checked_body_is_kept_only_when_it_matches() {
    let m = mapped_collection().await;
    let tus = m.tus().await;
    // More than the server's write buffer in each body: a mismatch is found after bytes were written.
    let data = random(3 * 1024 * 1024 + 9);
    let half = 3 * 1024 * 1024 / 2;
    let at = tus.begin("/checked.bin", data.len()).await;
    let p = tus
        .patch_checked(&at, 0, &data[..half], &blake3_checksum(&data[..half]))
        .await;
    assert_eq!((p.status, p.offset), (204, Some(half as u64)), "{}", p.body);

    // A body that does not match its checksum: 460, and none of it kept.
    let wrong = blake3_checksum(&data[..half]);
    let p = tus
        .patch_checked(&at, half as u64, &data[half..], &wrong)
        .await;
    assert_eq!(p.status, 460, "{}", p.body);
    assert!(
        p.body["message"].as_str().unwrap().contains("checksum"),
        "{}",
        p.body
    );
    assert_eq!(tus.head(&at).await.offset, Some(half as u64));
    assert!(!m.root.join("checked.bin").exists());

    // An algorithm the server does not check, or a malformed digest: refused before any byte is kept.
    for bad in [
        "sha1 Kq5sNclPz7QV2+lfQIuc6R7oRu0=".to_string(),
        "blake3 !!!".to_string(),
        "blake3 AAAA".to_string(),
        "blake3".to_string(),
    ] {
        let p = tus
            .patch_checked(&at, half as u64, &data[half..], &bad)
            .await;
        assert_eq!(p.status, 400, "{bad}: {}", p.body);
    }
    assert_eq!(tus.head(&at).await.offset, Some(half as u64));

    let p = tus
        .patch_checked(
            &at,
            half as u64,
            &data[half..],
            &blake3_checksum(&data[half..]),
        )
        .await;
    m.assert_whole(&p, "checked.bin", &data);
}

#[tokio::test]
async fn a_checked_body_in_flight_is_not_reported_and_not_kept_when_it_breaks() {
    let m = mapped_collection().await;
    let tus = m.tus().await;
    let data = random(3 * 1024 * 1024);
    let at = tus.begin("/flight.bin", data.len()).await;
    let sum = blake3_checksum(&data);
    let conn = tus
        .raw_patch(
            &at,
            &format!("Upload-Checksum: {sum}\r\n"),
            data.len(),
            &data[..2 * 1024 * 1024 + 5],
        )
        .await;
    // Once the server wrote some of it to the temporary file, the upload is still reported where the body began.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        assert!(std::time::Instant::now() < deadline, "nothing written");
        let part = names(&m.root).into_iter().find(|n| n.starts_with('.'));
        if part.is_some_and(|p| std::fs::metadata(m.root.join(p)).unwrap().len() > 0) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert_eq!(tus.head(&at).await.offset, Some(0));
    drop(conn);
    // None of the broken body was kept: the whole file is taken from 0 (once the broken request let go).
    let p = tus.patch_when_free(&at, 0, &data, Some(&sum)).await;
    m.assert_whole(&p, "flight.bin", &data);
}

#[tokio::test]
async fn an_upload_is_its_owners_alone() {
    let m = mapped_collection().await;
    let tus = m.tus().await;
    let at = tus.begin("/mine.bin", 10).await;
    assert_eq!(tus.patch(&at, 0, b"12345").await.status, 204);
    let stranger = m.s.app(ClientKind::Confidential).await;
    let other = Tus::bearer(&m.s, &stranger, m.coll).await;
    for said in [
        other.head(&at).await,
        other.patch(&at, 5, b"67890").await,
        other.delete(&at).await,
    ] {
        assert_eq!(said.status, 404, "{}", said.body);
        assert!(said.offset.is_none() && said.length.is_none());
    }
    // Unknown and malformed ids say the same.
    let unknown = format!("/uploads/{}/{}", m.coll, Uuid::new_v4());
    assert_eq!(tus.head(&unknown).await.status, 404);
    let malformed = format!("/uploads/{}/not-an-id", m.coll);
    assert_eq!(tus.patch(&malformed, 0, b"x").await.status, 404);
    // The same upload under another collection's URL is not found either (with a token for that one).
    let a = api(&m.s, &m.admin).await;
    let second = mapped(&a, m.gateway, json!({})).await;
    let there = Tus::bearer(&m.s, &m.admin, second).await;
    let elsewhere = at.replace(&m.coll.to_string(), &second.to_string());
    assert_eq!(there.head(&elsewhere).await.status, 404);
    assert_eq!(there.patch(&elsewhere, 5, b"67890").await.status, 404);
    // A token is for one collection.
    assert_eq!(tus.head(&elsewhere).await.status, 401);
    // Without credentials: refused.
    let anonymous = Tus {
        s: &m.s,
        coll: m.coll,
        token: None,
        browser: None,
    };
    assert_eq!(anonymous.head(&at).await.status, 401);
    assert_eq!(anonymous.create("/x", 1).await.status, 401);
    // The owner goes on.
    assert_eq!(tus.head(&at).await.offset, Some(5));
}

#[tokio::test]
async fn a_withdrawn_permission_stops_the_upload() {
    let m = mapped_collection().await;
    let writer = m.s.app(ClientKind::Confidential).await;
    let (guest, rule) = m.share_with(&writer.id).await;
    let tus = Tus::bearer(&m.s, &writer, guest).await;
    let at = tus.begin("/report.pdf", 10).await;
    assert_eq!(tus.patch(&at, 0, b"12345").await.status, 204);
    let (st, b) =
        m.s.call(
            M::DELETE,
            &format!("/v0.10/endpoint/{guest}/access/{rule}"),
            &m.transfer,
            None,
        )
        .await;
    assert_eq!(st, 200, "{b}");
    let p = tus.patch(&at, 5, b"67890").await;
    assert_eq!(p.status, 403, "{}", p.body);
    assert!(
        !p.body["message"]
            .as_str()
            .unwrap()
            .contains(&*m.root.to_string_lossy()),
        "no host path: {}",
        p.body
    );
    assert_eq!(tus.head(&at).await.status, 403);
    assert!(!m.root.join("share/report.pdf").exists());
    assert!(
        !names(&m.root.join("share")).contains(&"report.pdf".to_string()),
        "nothing under the name"
    );
}

#[tokio::test]
async fn a_browser_uploads_with_its_anti_forgery_token_only() {
    let m = mapped_collection().await;
    let dana = m.s.person("dana").await;
    let (guest, _) = m.share_with(&dana.id).await;
    let cookie = m.s.browser_session(&dana).await;
    let value = cookie.split_once('=').unwrap().1;
    let session = m.s.running.auth.session(value).await.unwrap().unwrap();
    let csrf = m.s.running.auth.csrf_token(&session);
    let browser = |token: Option<&str>| Tus {
        s: &m.s,
        coll: guest,
        token: None,
        browser: Some((cookie.clone(), token.map(str::to_string))),
    };
    // What another site's page could send: the cookie alone, or with a token it guessed.
    for forged in [browser(None), browser(Some("guess"))] {
        let c = forged.create("/photo.jpg", 3).await;
        assert_eq!(c.status, 403, "{}", c.body);
    }
    assert!(names(&m.root.join("share")).is_empty());
    let real = browser(Some(&csrf));
    let at = real.begin("/photo.jpg", 3).await;
    // Each request needs the token, not just the first.
    assert_eq!(browser(None).patch(&at, 0, b"abc").await.status, 403);
    assert_eq!(browser(None).head(&at).await.status, 403);
    assert_eq!(real.patch(&at, 0, b"abc").await.status, 204);
    assert_eq!(
        std::fs::read(m.root.join("share/photo.jpg")).unwrap(),
        b"abc"
    );
}

#[tokio::test]
async fn an_abandoned_upload_is_swept() {
    let m = mapped_collection().await;
    let tus = m.tus().await;
    let at = tus.begin("/left.bin", 100).await;
    assert_eq!(tus.patch(&at, 0, &[7u8; 40]).await.status, 204);
    let kept = tus.begin("/kept.bin", 100).await;
    assert_eq!(names(&m.root).len(), 2, "two temporary files");
    // A day without activity, less an hour: nothing is swept.
    m.s.advance(23 * 3600);
    assert_eq!(m.s.running.endpoint.sweep_uploads().await.unwrap(), 0);
    // Activity keeps an upload alive (asked with a token of the day: the first one expired).
    let tus = m.tus().await;
    assert_eq!(tus.head(&kept).await.offset, Some(0));
    m.s.advance(3600 + 1);
    let tus = m.tus().await;
    assert_eq!(tus.head(&at).await.status, 404, "expired: gone for clients");
    assert_eq!(m.s.running.endpoint.sweep_uploads().await.unwrap(), 1);
    assert_eq!(names(&m.root).len(), 1, "its temporary file is removed");
    assert_eq!(tus.head(&kept).await.offset, Some(0));
    m.s.advance(24 * 3600);
    assert_eq!(m.s.running.endpoint.sweep_uploads().await.unwrap(), 1);
    assert_eq!(m.tus().await.head(&kept).await.status, 404);
    assert!(names(&m.root).is_empty());
}

#[tokio::test]
async fn hostile_requests_are_refused_and_leave_nothing() {
    let m = mapped_collection().await;
    let tus = m.tus().await;
    std::fs::create_dir(m.root.join("dir")).unwrap();
    let outside = m
        .root
        .parent()
        .unwrap()
        .join(format!("outside-{}", Uuid::new_v4()));
    std::fs::create_dir(&outside).unwrap();
    std::os::unix::fs::symlink(
        format!("../{}", outside.file_name().unwrap().to_str().unwrap()),
        m.root.join("up"),
    )
    .unwrap();
    std::os::unix::fs::symlink("/etc", m.root.join("abs")).unwrap();
    let before = names(&m.root);

    let refused = |c: Said, status: u16, what: &str| {
        assert_eq!(c.status, status, "{what}: {}", c.body);
        assert_eq!(c.headers["tus-resumable"], "1.0.0", "{what}");
        let message = c.body["message"].as_str().unwrap_or("").to_string();
        assert!(!message.is_empty(), "{what}: a message says why");
        assert!(
            !message.contains(&*m.root.to_string_lossy()),
            "{what}: no host path in {message}"
        );
    };
    refused(tus.create("/a/../b", 5).await, 400, "..");
    refused(tus.create("/up/stolen", 5).await, 403, "a link out");
    refused(tus.create("/abs/stolen", 5).await, 403, "a link to /etc");
    refused(tus.create("/", 5).await, 400, "the root");
    refused(tus.create("/dir", 5).await, 400, "a folder");
    refused(tus.create("/missing/x", 5).await, 404, "no parent folder");
    refused(tus.create_raw("filename eA==", "5").await, 400, "no path");
    refused(tus.create_raw("", "5").await, 400, "no metadata");
    refused(tus.create_raw("path !!!", "5").await, 400, "bad base64");
    refused(tus.create_raw("path /w==", "5").await, 400, "not UTF-8");
    let meta = format!("path {}", b64("/ok"));
    for length in [
        "-1",
        "+5",
        "1.5",
        "",
        "99999999999999999999999",
        "18446744073709551615",
    ] {
        refused(tus.create_raw(&meta, length).await, 400, length);
    }
    let no_length = Tus::said(
        tus.request(M::POST, &format!("/uploads/{}", m.coll))
            .header("upload-metadata", &meta),
    )
    .await;
    refused(no_length, 400, "no Upload-Length");

    let at = tus.begin("/ok", 5).await;
    for offset in ["-1", "x", "", "99999999999999999999999"] {
        let p = Tus::said(
            tus.request(M::PATCH, &at)
                .header("content-type", OFFSET_STREAM)
                .header("upload-offset", offset)
                .body("12"),
        )
        .await;
        refused(p, 400, offset);
    }
    let wrong_type = Tus::said(
        tus.request(M::PATCH, &at)
            .header("content-type", "application/octet-stream")
            .header("upload-offset", "0")
            .body("12"),
    )
    .await;
    refused(wrong_type, 415, "Content-Type");
    // More than the length: refused, and the upload is not complete.
    refused(tus.patch(&at, 0, b"123456").await, 400, "beyond the length");
    assert!(!m.root.join("ok").exists());
    // Without Tus-Resumable (or with another version): 412, naming the version spoken.
    for version in [None, Some("0.2.2")] {
        let mut rb =
            m.s.http
                .request(M::HEAD, format!("{}{at}", m.s.url))
                .bearer_auth(tus.token.as_ref().unwrap());
        if let Some(v) = version {
            rb = rb.header("tus-resumable", v);
        }
        let r = rb.send().await.unwrap();
        assert_eq!(r.status(), 412, "{version:?}");
        assert_eq!(r.headers()["tus-version"], "1.0.0");
        assert_eq!(r.headers()["tus-resumable"], "1.0.0");
    }
    assert_eq!(tus.delete(&at).await.status, 204);
    assert_eq!(names(&m.root), before, "nothing was left behind");
    assert!(names(&outside).is_empty(), "nothing outside");
    std::fs::remove_dir_all(outside).unwrap();
}
