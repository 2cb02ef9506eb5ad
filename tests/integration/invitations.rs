//! The e-mailed invitation link, as its recipient opens it: what is shared and by whom before any login; a code
//! that expired, was withdrawn or was used says so (410) and asks nothing; a code that never existed reveals
//! nothing (404); accepting still works, once. Invitations are made through the Transfer API and read from a
//! real SMTP sink.

use ferry_endpoint::EndpointError;
use ferry_tests::mail::MailSink;
use ferry_tests::{Person, TestServer, hidden};
use reqwest::Method as M;
use reqwest::StatusCode;
use serde_json::{Value, json};
use uuid::Uuid;

const TRANSFER: &str = "urn:globus:auth:scope:transfer.api.globus.org:all";

struct World {
    s: TestServer,
    sink: MailSink,
    /// The administrator's client, which shares and invites.
    transfer: String,
    inviter: Uuid,
    guest: Uuid,
}

async fn world() -> World {
    let sink = MailSink::start().await;
    let s = TestServer::start_with(|c| sink.configure(c)).await;
    let admin = s.admin_app();
    let transfer = s.access_token(&admin, TRANSFER).await;
    let root = std::path::PathBuf::from(&s.defaults().storage_root);
    for d in [
        "shared/cohort",
        "shared/raw",
        "shared/notes",
        "shared/gone",
        "shared/twice",
    ] {
        std::fs::create_dir_all(root.join(d)).unwrap();
    }
    let (st, b) = s
        .call(
            M::POST,
            "/v0.10/shared_endpoint",
            &transfer,
            Some(
                &json!({"DATA_TYPE": "shared_endpoint", "host_endpoint": s.defaults().collection_id,
                          "host_path": "/shared/", "display_name": "Cohort 45 share"}),
            ),
        )
        .await;
    assert_eq!(st, 200, "{b}");
    let guest = Uuid::parse_str(b["id"].as_str().unwrap()).unwrap();
    World {
        inviter: Uuid::parse_str(&admin.id).unwrap(),
        s,
        sink,
        transfer,
        guest,
    }
}

impl World {
    /// Invites `email` to `path`; the permission's id and the code from the e-mail.
    async fn invite(
        &self,
        email: &str,
        path: &str,
        permissions: &str,
        message: Option<&str>,
    ) -> (String, String) {
        let mut doc = json!({"DATA_TYPE": "access", "principal_type": "invitation", "principal": email,
                             "path": path, "permissions": permissions});
        if let Some(m) = message {
            doc["notify_message"] = json!(m);
        }
        let (st, b) = self.rule(doc).await;
        assert_eq!(st, 200, "{b}");
        let body = self.sink.wait_for(email).await.body();
        let start = body
            .find("/invitation?code=")
            .expect("a link in the e-mail")
            + 17;
        let code = body[start..start + 64].to_string();
        assert!(code.bytes().all(|b| b.is_ascii_hexdigit()), "{body}");
        (b["access_id"].as_str().unwrap().to_string(), code)
    }

    async fn rule(&self, doc: Value) -> (u16, Value) {
        self.s
            .call(
                M::POST,
                &format!("/v0.10/endpoint/{}/access", self.guest),
                &self.transfer,
                Some(&doc),
            )
            .await
    }

    /// Opens the link as a browser does, with a session cookie or none.
    async fn open(&self, code: &str, cookie: Option<&str>) -> (StatusCode, String) {
        let mut rb = self
            .s
            .http
            .get(format!("{}/invitation?code={code}", self.s.url));
        if let Some(c) = cookie {
            rb = rb.header("cookie", c);
        }
        let r = rb.send().await.unwrap();
        (r.status(), r.text().await.unwrap())
    }
}

fn set_cookie(r: &reqwest::Response) -> Option<String> {
    r.headers()
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(str::to_string)
}

/// Follows the page's "Sign in to accept" link to the login form and logs in: the session cookie, and where
/// the login sent the browser.
async fn sign_in_from(s: &TestServer, page: &str, who: &Person) -> (String, String) {
    let marker = "id=\"sign-in\" href=\"";
    let start = page.find(marker).expect("a sign-in link") + marker.len();
    let href = page[start..start + page[start..].find('"').unwrap()].replace("&amp;", "&");
    let r = s.http.get(format!("{}{href}", s.url)).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let prelogin = set_cookie(&r).expect("a pre-login cookie");
    let login = r.text().await.unwrap();
    let next = hidden(&login, "next").expect("the login form returns to the invitation");
    let r = s
        .http
        .post(format!("{}/v2/web/login", s.url))
        .header("cookie", prelogin)
        .form(&[
            ("username", who.username.as_str()),
            ("password", who.password.as_str()),
            ("next", &next),
            ("csrf", &hidden(&login, "csrf").unwrap()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let location = r.headers()["location"].to_str().unwrap().to_string();
    (set_cookie(&r).expect("a session"), location)
}

/// Nothing on a refusal page asks for anything or names the share.
fn asks_nothing(page: &str) {
    for asked in ["<form", "type=\"password\"", "sign-in", "Cohort 45 share"] {
        assert!(!page.contains(asked), "{asked:?} in {page}");
    }
}

#[tokio::test]
async fn the_link_says_what_is_shared_and_by_whom_before_any_login_then_accepts_once() {
    let w = world().await;
    let s = &w.s;
    let (access_id, code) = w
        .invite(
            "dana@example.net",
            "/cohort/",
            "rw",
            Some("For the <b>paper</b>:\nraw data is under /raw."),
        )
        .await;

    // The typed preview.
    let p = s.running.endpoint.invitation_preview(&code).await.unwrap();
    let inviter = s
        .running
        .auth
        .store()
        .get_identity(w.inviter)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(p.collection_id, w.guest);
    assert_eq!(p.collection_display_name, "Cohort 45 share");
    assert_eq!(p.path, "/cohort/");
    assert!(p.write);
    let by = p.invited_by.clone().expect("the inviter");
    assert_eq!(
        (by.id, by.name.as_str(), by.username.as_str()),
        (inviter.id, inviter.name.as_str(), inviter.username.as_str())
    );
    assert_eq!(p.sent_to, "dana@example.net");
    assert!(
        (p.expires_at - (s.now() + 7 * 86400)).abs() < 60,
        "{}",
        p.expires_at
    );
    assert_eq!(p.access_expires_at, None);
    assert_eq!(
        p.message.as_deref(),
        Some("For the <b>paper</b>:\nraw data is under /raw.")
    );

    // The page, to anyone with the link: what, by whom, until when, and a way to sign in; no form.
    let (st, page) = w.open(&code, None).await;
    assert_eq!(st, 200, "{page}");
    let expires_day = &ferry_core::time::rfc3339(p.expires_at)[..10];
    // The administrator's client is "Ferry administrator's client": the page escapes the apostrophe.
    let inviter_name = inviter.name.replace('\'', "&#39;");
    for shown in [
        "Cohort 45 share",
        "<code>/cohort/</code>",
        "read-write",
        inviter_name.as_str(),
        inviter.username.as_str(),
        "dana@example.net",
        expires_day,
        "For the &lt;b&gt;paper&lt;/b&gt;:\nraw data is under /raw.",
        "Sign in to accept",
    ] {
        assert!(page.contains(shown), "{shown:?} not in {page}");
    }
    assert!(!page.contains("<b>paper"), "the message is escaped");
    assert!(!page.contains("<form"), "nothing is asked before login");
    // Looking changed nothing.
    let (_, rule) = s
        .call(
            M::GET,
            &format!("/v0.10/endpoint/{}/access/{access_id}", w.guest),
            &w.transfer,
            None,
        )
        .await;
    assert_eq!(rule["principal_type"], "invitation");

    // Signing in from the page comes back to it, now with the form that accepts.
    let dana = s.person("dana").await;
    let (cookie, location) = sign_in_from(s, &page, &dana).await;
    assert_eq!(location, format!("/invitation?code={code}"));
    let (st, page) = w.open(&code, Some(&cookie)).await;
    assert_eq!(st, 200);
    assert!(page.contains("Accept the invitation?") && page.contains("Cohort 45 share"));
    let csrf = hidden(&page, "csrf").expect("the accept form");
    let r = s
        .http
        .post(format!("{}/invitation", s.url))
        .header("cookie", &cookie)
        .form(&[("code", code.as_str()), ("csrf", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.text().await.unwrap().contains("Invitation accepted"));
    let (_, rule) = s
        .call(
            M::GET,
            &format!("/v0.10/endpoint/{}/access/{access_id}", w.guest),
            &w.transfer,
            None,
        )
        .await;
    assert_eq!(
        (rule["principal_type"].as_str(), rule["principal"].as_str()),
        (Some("identity"), Some(dana.id.as_str()))
    );

    // Used: the link says so, to her and to anyone else, and asks nothing.
    for cookie in [Some(cookie.as_str()), None] {
        let (st, page) = w.open(&code, cookie).await;
        assert_eq!(st, StatusCode::GONE);
        assert!(page.contains("already been accepted"), "{page}");
        asks_nothing(&page);
    }
    assert!(matches!(
        s.running.endpoint.invitation_preview(&code).await,
        Err(EndpointError::Gone(m)) if m.contains("already been accepted")
    ));
}

#[tokio::test]
async fn expired_withdrawn_and_used_codes_say_so_and_unknown_ones_reveal_nothing() {
    let w = world().await;
    let s = &w.s;
    let (_, expiring) = w.invite("erin@example.net", "/raw/", "r", None).await;
    let (withdrawn_id, withdrawn) = w.invite("fay@example.net", "/notes/", "r", None).await;
    let (_, merged) = w.invite("gus@example.net", "/twice/", "rw", None).await;

    // Withdrawn: the permission deleted.
    let (st, b) = s
        .call(
            M::DELETE,
            &format!("/v0.10/endpoint/{}/access/{withdrawn_id}", w.guest),
            &w.transfer,
            None,
        )
        .await;
    assert_eq!(st, 200, "{b}");
    let (st, page) = w.open(&withdrawn, None).await;
    assert_eq!(st, StatusCode::GONE);
    assert!(page.contains("withdrawn"), "{page}");
    asks_nothing(&page);

    // Used, by someone who already held a permission on that path: the invitation's own rule is merged
    // away (and its row with it), and the link still says "used", not "withdrawn" or "no such".
    let gus = s.person("gus").await;
    let (st, b) = w
        .rule(
            json!({"DATA_TYPE": "access", "principal_type": "identity", "principal": gus.id,
                      "path": "/twice/", "permissions": "r"}),
        )
        .await;
    assert_eq!(st, 200, "{b}");
    let who = requester_of(s, &gus).await;
    s.running
        .endpoint
        .redeem_invitation(&who, &merged)
        .await
        .unwrap();
    let (st, page) = w.open(&merged, None).await;
    assert_eq!(st, StatusCode::GONE);
    assert!(page.contains("already been accepted"), "{page}");
    asks_nothing(&page);

    // Expired: a week later.
    let (st, _) = w.open(&expiring, None).await;
    assert_eq!(st, 200);
    s.advance(7 * 86400 + 1);
    let (st, page) = w.open(&expiring, None).await;
    assert_eq!(st, StatusCode::GONE);
    assert!(page.contains("expired on"), "{page}");
    asks_nothing(&page);

    // Never an invitation: 404 and the same page whatever the code, naming nothing.
    let mut pages = Vec::new();
    for code in [
        "0".repeat(64),
        Uuid::new_v4().simple().to_string().repeat(2),
        expiring[..63].to_string(),
        format!("{expiring}0"),
        "../../etc/passwd".to_string(),
        "x".repeat(10_000),
    ] {
        let (st, page) = w.open(&url_encode(&code), None).await;
        assert_eq!(st, StatusCode::NOT_FOUND, "{code:.80}");
        asks_nothing(&page);
        for hidden_word in ["expired", "withdrawn", "accepted", "example.net", "/raw/"] {
            assert!(!page.contains(hidden_word), "{hidden_word:?} in {page}");
        }
        pages.push(page);
    }
    assert!(
        pages.windows(2).all(|p| p[0] == p[1]),
        "one page for every wrong code"
    );
    assert!(matches!(
        s.running.endpoint.invitation_preview(&"0".repeat(64)).await,
        Err(EndpointError::NotFound(m)) if m == "no such invitation"
    ));
    // No code at all.
    let r = s
        .http
        .get(format!("{}/invitation", s.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);

    // Redeeming what the page refuses is refused too (nothing is bound).
    let erin = s.person("erin").await;
    let who = requester_of(s, &erin).await;
    assert!(
        s.running
            .endpoint
            .redeem_invitation(&who, &expiring)
            .await
            .is_err()
    );
    assert!(
        s.running
            .endpoint
            .redeem_invitation(&who, &withdrawn)
            .await
            .is_err()
    );
}

fn url_encode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// The endpoint's requester for a person of the test server (as the pages build it from a session).
async fn requester_of(s: &TestServer, who: &Person) -> ferry_endpoint::Requester {
    let identity = s
        .running
        .auth
        .store()
        .get_identity(Uuid::parse_str(&who.id).unwrap())
        .await
        .unwrap()
        .unwrap();
    s.running.endpoint.requester(identity).await.unwrap()
}
