//! Items of the authorisation-server checklist (`../shared/reference/oauth-security.md` §1) that held when
//! it was walked for issue 13 and had no test of their own: each test is named after its item.

use ferry_core::ClientKind;
use ferry_tests::{App, Person, TestServer, query_map};
use reqwest::Method as M;
use serde_json::{Value, json};

use crate::auth_hardening::{Browser, active, exchange, refresh};

/// Logs alice in through `app` (offline) with a browser that keeps its session; returns the browser, alice
/// and the authorization request.
async fn consenting_browser<'a>(
    s: &'a TestServer,
    app: &App,
) -> (Browser<'a>, Person, Vec<(&'static str, String)>) {
    let alice = s.person("alice").await;
    let q = vec![
        ("client_id", app.id.clone()),
        ("redirect_uri", "http://127.0.0.1/cb".to_string()),
        ("scope", "openid".to_string()),
        ("response_type", "code".to_string()),
        ("access_type", "offline".to_string()),
    ];
    let mut br = Browser::new(s);
    let pairs: Vec<(&str, &str)> = q.iter().map(|(k, v)| (*k, v.as_str())).collect();
    br.authorize(&pairs, &alice).await;
    (br, alice, q)
}

/// AS-10/AS-11: of 20 parallel redemptions of one code, at most one succeeds, and since the others are
/// replays, whatever it got is revoked (25 trials). When a replay's revocation lands before the first
/// redemption has stored its tokens, that redemption is refused too: no trial leaves a live token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn as11_a_code_is_redeemed_once_under_a_20_way_race() {
    let s = std::sync::Arc::new(TestServer::start().await);
    let app = s.app(ClientKind::Confidential).await;
    let (id, secret) = (app.id.clone(), app.secret.clone());
    let alice = s.person("alice").await;
    let mut br = Browser::new(&s);
    let q = [
        ("client_id", app.id.as_str()),
        ("redirect_uri", "http://127.0.0.1/cb"),
        ("scope", "openid"),
        ("response_type", "code"),
    ];
    let mut wrong = 0;
    for _ in 0..25 {
        let back = br.authorize(&q, &alice).await;
        let mut set = tokio::task::JoinSet::new();
        for _ in 0..20 {
            let (s, back) = (s.clone(), back.clone());
            let app = App {
                id: id.clone(),
                secret: secret.clone(),
            };
            set.spawn(async move { exchange(&s, &app, &back, "http://127.0.0.1/cb").await });
        }
        let results = set.join_all().await;
        assert!(
            results
                .iter()
                .all(|(st, b)| *st == 200 || b["error"] == "invalid_grant")
        );
        let won: Vec<&Value> = results
            .iter()
            .filter(|(st, _)| *st == 200)
            .map(|(_, b)| b)
            .collect();
        // Exactly one exchange wins (it spends the code in the step that stores its tokens); the replays then
        // revoke what it got.
        wrong += usize::from(won.len() != 1);
        for t in won {
            wrong += usize::from(active(&s, &app, t["access_token"].as_str().unwrap()).await);
        }
    }
    println!(
        "code race: {wrong} trials without exactly one winner, or with live tokens, of 25 trials of 20"
    );
    assert_eq!(wrong, 0);
}

/// AS-26: a refresh token expires when unused for the idle lifetime, and a family ends at the absolute
/// lifetime however often it is used.
#[tokio::test]
async fn as26_refresh_tokens_have_idle_and_absolute_lifetimes() {
    let s = TestServer::start_with(|c| {
        c.auth.refresh_idle_lifetime_secs = 100;
        c.auth.refresh_absolute_lifetime_secs = 250;
    })
    .await;
    let app = s.app(ClientKind::Confidential).await;
    let (mut br, alice, q) = consenting_browser(&s, &app).await;
    let pairs: Vec<(&str, &str)> = q.iter().map(|(k, v)| (*k, v.as_str())).collect();

    // Idle: unused for longer than 100 s.
    let back = br.authorize(&pairs, &alice).await;
    let (_, t) = exchange(&s, &app, &back, "http://127.0.0.1/cb").await;
    s.advance(101);
    let (st, b) = refresh(&s, &app, t["refresh_token"].as_str().unwrap()).await;
    assert_eq!(
        (st, b["error"].as_str()),
        (400, Some("invalid_grant")),
        "{b}"
    );

    // Absolute: used every 90 s, the family still ends 250 s after it began.
    let back = br.authorize(&pairs, &alice).await;
    let (_, t) = exchange(&s, &app, &back, "http://127.0.0.1/cb").await;
    let mut rt = t["refresh_token"].as_str().unwrap().to_string();
    for _ in 0..2 {
        s.advance(90);
        let (st, b) = refresh(&s, &app, &rt).await;
        assert_eq!(st, 200, "{b}");
        rt = b["refresh_token"].as_str().unwrap().to_string();
    }
    s.advance(90);
    let (st, b) = refresh(&s, &app, &rt).await;
    assert_eq!(
        (st, b["error"].as_str()),
        (400, Some("invalid_grant")),
        "{b}"
    );
}

/// AS-29: `token_type_hint` is only a hint. AS-36: userinfo answers POST as well as GET, and needs `openid`.
#[tokio::test]
async fn as29_as36_introspection_hint_and_userinfo_post() {
    let s = TestServer::start().await;
    let app = s.app(ClientKind::Confidential).await;
    let at = s.access_token(&app, "openid email").await;
    let (_, b) = s
        .oauth(
            "/v2/oauth2/token/introspect",
            &app,
            &[("token", &at), ("token_type_hint", "refresh_token")],
        )
        .await;
    assert_eq!(b["active"], true, "{b}");
    let r = s
        .http
        .post(format!("{}/v2/oauth2/userinfo", s.url))
        .bearer_auth(&at)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let no_openid = s.access_token(&app, "email").await;
    let (st, _) = s.get("/v2/oauth2/userinfo", &no_openid).await;
    assert_eq!(st, 403);
}

/// AS-06: every page of the login flow forbids framing, and the authorization endpoint answers no CORS.
#[tokio::test]
async fn as06_login_pages_cannot_be_framed_and_have_no_cors() {
    let s = TestServer::start().await;
    let app = s.app(ClientKind::Confidential).await;
    let (br, _, q) = consenting_browser(&s, &app).await;
    let mut u = url::Url::parse(&format!("{}/v2/oauth2/authorize", s.url)).unwrap();
    u.query_pairs_mut()
        .extend_pairs(q.iter().map(|(k, v)| (*k, v.as_str())));
    let consent = format!("/v2/web/consent?{}", u.query().unwrap());
    for path in [
        "/v2/web/login?next=/".to_string(),
        consent,
        "/v2/web/logout".to_string(),
        "/v2/web/auth-code?code=x".to_string(),
        "/v2/oauth2/authorize?client_id=nope".to_string(),
    ] {
        let r = s
            .http
            .get(format!("{}{path}", s.url))
            .header("origin", "https://evil.example")
            .header("cookie", br.cookie_header())
            .send()
            .await
            .unwrap();
        let h = r.headers();
        assert_eq!(h["x-frame-options"], "DENY", "{path}");
        assert!(
            h["content-security-policy"]
                .to_str()
                .unwrap()
                .contains("frame-ancestors 'none'"),
            "{path}"
        );
        assert!(h.get("access-control-allow-origin").is_none(), "{path}");
    }
}

/// AS-40: forwarded headers change neither the issuer nor the limiter's key.
#[tokio::test]
async fn as40_forwarded_headers_are_not_trusted() {
    let s = TestServer::start().await;
    let d: Value = s
        .http
        .get(format!("{}/.well-known/openid-configuration", s.url))
        .header("x-forwarded-proto", "http")
        .header("x-forwarded-host", "evil.example")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(d["issuer"], s.url);
    let app = s.app(ClientKind::Confidential).await;
    let mut last = 0;
    for i in 0..11 {
        let r = s
            .http
            .post(format!("{}/v2/oauth2/token", s.url))
            .basic_auth(&app.id, Some("wrong"))
            .header("x-forwarded-for", format!("10.0.0.{i}"))
            .form(&[("grant_type", "client_credentials"), ("scope", "openid")])
            .send()
            .await
            .unwrap();
        last = r.status().as_u16();
    }
    assert_eq!(
        last, 429,
        "a spoofed X-Forwarded-For does not reset the count"
    );
}

/// AS-37: registration refuses bad redirect URIs (other schemes, fragments, plain http off loopback).
#[tokio::test]
async fn as37_registration_refuses_bad_redirect_uris() {
    let s = TestServer::start().await;
    let owner = s.app(ClientKind::Confidential).await;
    let token = s.access_token(&owner, "openid").await;
    for uri in [
        "javascript:alert(1)",
        "JavaScript:alert(1)",
        "data:text/html,x",
        "https://app.example/cb#frag",
        "http://app.example/cb",
        "ftp://app.example/cb",
    ] {
        let (st, b) = s
            .call(
                M::POST,
                "/v2/api/clients",
                &token,
                Some(&json!({"client": {"name": "x", "redirect_uris": [uri]}})),
            )
            .await;
        assert_eq!(st, 400, "{uri}: {b}");
    }
    let (st, b) = s
        .call(
            M::POST,
            "/v2/api/clients",
            &token,
            Some(&json!({"client": {"name": "x", "redirect_uris": ["https://app.example/cb"]}})),
        )
        .await;
    assert_eq!(st, 200, "{b}");
    assert_eq!(
        b["client"]["redirect_uris"],
        json!(["https://app.example/cb"])
    );
    // An API-registered client is not verified; a prompt=none request for it always needs consent.
    let app = App {
        id: b["client"]["id"].as_str().unwrap().into(),
        secret: b["included"]["client_credential"]["secret"]
            .as_str()
            .map(str::to_string),
    };
    let other = s.app(ClientKind::Confidential).await;
    let (mut br, _, _) = consenting_browser(&s, &other).await;
    let mut u = url::Url::parse(&format!("{}/v2/oauth2/authorize", s.url)).unwrap();
    u.query_pairs_mut().extend_pairs([
        ("client_id", app.id.as_str()),
        ("redirect_uri", "https://app.example/cb"),
        ("scope", "openid"),
        ("response_type", "code"),
        ("prompt", "none"),
    ]);
    let r = br.get(u.as_str()).await;
    let back = url::Url::parse(r.headers()["location"].to_str().unwrap()).unwrap();
    assert_eq!(query_map(&back)["error"], "consent_required");
}
