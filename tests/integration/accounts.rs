//! Local accounts' passwords: the change page (`/v2/web/password`) and the administrator's reset, as a browser
//! and the admin functions use them: strength rules named, the login throttle kept, and a new password ending
//! every other session and token.

use ferry_core::ClientKind;
use ferry_tests::{App, Person, TestServer, hidden};
use reqwest::StatusCode;
use uuid::Uuid;

const TRANSFER: &str = "urn:globus:auth:scope:transfer.api.globus.org:all";
const PAGE: &str = "/v2/web/password";

fn enc(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

fn set_cookie(r: &reqwest::Response) -> Option<String> {
    r.headers()
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(str::to_string)
}

/// The login form posted as a browser does, for `next`: the response (303 with a session cookie on success).
async fn post_login(
    s: &TestServer,
    username: &str,
    password: &str,
    next: &str,
) -> reqwest::Response {
    let r = s
        .http
        .get(format!("{}/v2/web/login?next={}", s.url, enc(next)))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let prelogin = set_cookie(&r).expect("a pre-login cookie");
    let csrf = hidden(&r.text().await.unwrap(), "csrf").expect("a login form");
    s.http
        .post(format!("{}/v2/web/login", s.url))
        .header("cookie", prelogin)
        .form(&[
            ("username", username),
            ("password", password),
            ("next", next),
            ("csrf", &csrf),
        ])
        .send()
        .await
        .unwrap()
}

/// A logged-in browser: its session cookie.
async fn session(s: &TestServer, who: &Person) -> String {
    let r = post_login(s, &who.username, &who.password, PAGE).await;
    assert_eq!(
        r.status(),
        StatusCode::SEE_OTHER,
        "login as {}",
        who.username
    );
    set_cookie(&r).expect("a session cookie")
}

async fn get_page(s: &TestServer, cookie: &str) -> (StatusCode, String) {
    let r = s
        .http
        .get(format!("{}{PAGE}", s.url))
        .header("cookie", cookie)
        .send()
        .await
        .unwrap();
    (r.status(), r.text().await.unwrap())
}

/// Posts the change form with the session's own anti-forgery token.
async fn change(
    s: &TestServer,
    cookie: &str,
    current: &str,
    new: &str,
    again: &str,
) -> reqwest::Response {
    let (st, page) = get_page(s, cookie).await;
    assert_eq!(st, 200, "{page}");
    let csrf = hidden(&page, "csrf").expect("the form's token");
    s.http
        .post(format!("{}{PAGE}", s.url))
        .header("cookie", cookie)
        .form(&[
            ("csrf", csrf.as_str()),
            ("current", current),
            ("new", new),
            ("again", again),
        ])
        .send()
        .await
        .unwrap()
}

async fn active(s: &TestServer, app: &App, token: &str) -> bool {
    let (st, b) = s
        .oauth("/v2/oauth2/token/introspect", app, &[("token", token)])
        .await;
    assert_eq!(st, 200, "{b}");
    b["active"].as_bool().unwrap()
}

#[tokio::test]
async fn the_page_asks_for_a_login_first() {
    let s = TestServer::start().await;
    for r in [
        s.http.get(format!("{}{PAGE}", s.url)).send().await.unwrap(),
        s.http
            .post(format!("{}{PAGE}", s.url))
            .form(&[("current", "x"), ("new", "y"), ("again", "y")])
            .send()
            .await
            .unwrap(),
    ] {
        assert_eq!(r.status(), StatusCode::SEE_OTHER);
        assert_eq!(
            r.headers()["location"],
            "/v2/web/login?next=/v2/web/password"
        );
    }
}

#[tokio::test]
async fn weak_or_mistyped_new_passwords_are_refused_with_the_rule() {
    let s = TestServer::start().await;
    let alice = s.person("alice").await;
    let cookie = session(&s, &alice).await;
    for (new, rule) in [
        ("short-pw-7", "at least 12 characters"),
        ("alice-in-wonderland", "must not be or contain the username"),
        ("Password1234", "one of the most common passwords"),
        ("abababababababab", "5 different characters"),
        ("abcdefghijklmn", "consecutive"),
    ] {
        let r = change(&s, &cookie, &alice.password, new, new).await;
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{new}");
        let page = r.text().await.unwrap();
        assert!(page.contains(rule), "{new}: {page}");
        // The form comes back, to try again.
        assert!(hidden(&page, "csrf").is_some());
    }
    let r = change(
        &s,
        &cookie,
        &alice.password,
        "tide-harbour-4471",
        "tide-harbour-4472",
    )
    .await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert!(r.text().await.unwrap().contains("two new passwords differ"));
    let r = change(
        &s,
        &cookie,
        &alice.password,
        &alice.password,
        &alice.password,
    )
    .await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert!(
        r.text()
            .await
            .unwrap()
            .contains("must differ from the current one")
    );
    // Nothing changed: the old password still logs in, and this session still works.
    assert_eq!(
        post_login(&s, &alice.username, &alice.password, "/")
            .await
            .status(),
        StatusCode::SEE_OTHER
    );
    assert_eq!(get_page(&s, &cookie).await.0, 200);
    // A forged post (no token of this session) changes nothing either.
    let r = s
        .http
        .post(format!("{}{PAGE}", s.url))
        .header("cookie", &cookie)
        .form(&[
            ("csrf", "forged"),
            ("current", alice.password.as_str()),
            ("new", "tide-harbour-4471"),
            ("again", "tide-harbour-4471"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert_eq!(
        post_login(&s, &alice.username, &alice.password, "/")
            .await
            .status(),
        StatusCode::SEE_OTHER
    );
}

/// A wrong current password is a failed login: after the login limit (10 a minute per person and address)
/// the change page and the login page both answer 429, and neither takes even the right password until the
/// window passes.
#[tokio::test]
async fn a_wrong_current_password_is_refused_and_counted_by_the_login_throttle() {
    let s = TestServer::start().await;
    let alice = s.person("alice").await;
    let cookie = session(&s, &alice).await;
    for i in 0..10 {
        let r = change(
            &s,
            &cookie,
            "not-her-password",
            "tide-harbour-4471",
            "tide-harbour-4471",
        )
        .await;
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "attempt {i}");
        assert!(
            r.text()
                .await
                .unwrap()
                .contains("The current password is incorrect")
        );
    }
    let r = change(
        &s,
        &cookie,
        &alice.password,
        "tide-harbour-4471",
        "tide-harbour-4471",
    )
    .await;
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(r.headers().contains_key("retry-after"));
    let r = post_login(&s, &alice.username, &alice.password, "/").await;
    assert_eq!(
        r.status(),
        StatusCode::TOO_MANY_REQUESTS,
        "the login page counts the same failures"
    );
    s.advance(61);
    let r = change(
        &s,
        &cookie,
        &alice.password,
        "tide-harbour-4471",
        "tide-harbour-4471",
    )
    .await;
    assert_eq!(r.status(), StatusCode::OK, "{}", r.text().await.unwrap());
}

#[tokio::test]
async fn a_new_password_works_and_ends_every_other_session_and_token() {
    let s = TestServer::start().await;
    let app = s.app(ClientKind::Confidential).await;
    let alice = s.person("alice").await;
    let bob = s.person("bob").await;
    let here = session(&s, &alice).await;
    let elsewhere = session(&s, &alice).await;
    let bobs = session(&s, &bob).await;
    let tokens = s.login(&app, &alice, TRANSFER).await;
    let access = tokens["access_token"].as_str().unwrap().to_string();
    let refresh = tokens["refresh_token"].as_str().unwrap().to_string();
    assert!(active(&s, &app, &access).await);

    let new = "tide-harbour-4471";
    let r = change(&s, &here, &alice.password, new, new).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert!(r.text().await.unwrap().contains("Password changed"));

    assert_eq!(
        get_page(&s, &here).await.0,
        200,
        "the session that changed it stays"
    );
    let (st, _) = get_page(&s, &elsewhere).await;
    assert_eq!(st, StatusCode::SEE_OTHER, "another session of hers ended");
    assert_eq!(get_page(&s, &bobs).await.0, 200, "someone else's did not");
    assert!(
        !active(&s, &app, &access).await,
        "her access token is revoked"
    );
    let (st, b) = s
        .oauth(
            "/v2/oauth2/token",
            &app,
            &[("grant_type", "refresh_token"), ("refresh_token", &refresh)],
        )
        .await;
    assert_eq!(st, StatusCode::BAD_REQUEST, "{b}");
    assert_eq!(b["error"], "invalid_grant");

    let r = post_login(&s, &alice.username, &alice.password, "/").await;
    assert_eq!(
        r.status(),
        StatusCode::UNAUTHORIZED,
        "the old password no longer logs in"
    );
    let r = post_login(&s, &alice.username, new, "/").await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER, "the new one does");
}

/// The administrator's reset (what `ferry identity set-password` calls): a generated or chosen password,
/// checked for strength, every session of the person ended; applications are refused.
#[tokio::test]
async fn an_administrators_reset_replaces_the_password_and_ends_sessions() {
    let s = TestServer::start().await;
    let auth = &s.running.auth;
    let alice = s.person("alice").await;
    let id = Uuid::parse_str(&alice.id).unwrap();
    let cookie = session(&s, &alice).await;

    let generated = auth
        .set_password(id, None)
        .await
        .unwrap()
        .expect("a generated password");
    assert_eq!(generated.len(), 20);
    assert_eq!(get_page(&s, &cookie).await.0, StatusCode::SEE_OTHER);
    assert_eq!(
        post_login(&s, &alice.username, &alice.password, "/")
            .await
            .status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        post_login(&s, &alice.username, &generated, "/")
            .await
            .status(),
        StatusCode::SEE_OTHER
    );

    let e = auth
        .set_password(id, Some("alice12345678"))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("username"), "{e}");
    assert_eq!(
        post_login(&s, &alice.username, &generated, "/")
            .await
            .status(),
        StatusCode::SEE_OTHER,
        "a refused reset changes nothing"
    );
    assert_eq!(
        auth.set_password(id, Some("tide-harbour-4471"))
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        post_login(&s, &alice.username, "tide-harbour-4471", "/")
            .await
            .status(),
        StatusCode::SEE_OTHER
    );

    let app = s.app(ClientKind::Confidential).await;
    let e = auth
        .set_password(Uuid::parse_str(&app.id).unwrap(), None)
        .await
        .unwrap_err();
    assert!(e.to_string().contains("is an application"), "{e}");
    let e = auth.set_password(Uuid::new_v4(), None).await.unwrap_err();
    assert!(e.to_string().contains("no identity"), "{e}");

    // New accounts get the same rules.
    let e = auth
        .create_person("carol", None, None, Some("carol-2026-pw"))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("username"), "{e}");
    assert!(auth.resolve_identity("carol").await.unwrap().is_none());
}
