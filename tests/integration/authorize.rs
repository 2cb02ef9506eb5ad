use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ferry_core::ClientKind;
use ferry_tests::{App, Person, TestServer, pkce, query_map};
use serde_json::Value;

const SCOPES: &str = "openid profile email urn:globus:auth:scope:transfer.api.globus.org:all";

async fn code_for(s: &TestServer, app: &App, who: &Person, challenge: Option<&str>) -> String {
    let redirect = format!("{}/v2/web/auth-code", s.url);
    let mut q = vec![
        ("client_id", app.id.as_str()),
        ("redirect_uri", redirect.as_str()),
        ("scope", SCOPES),
        ("response_type", "code"),
        ("state", "st+/=%"),
        ("access_type", "offline"),
    ];
    if let Some(c) = challenge {
        q.push(("code_challenge", c));
        q.push(("code_challenge_method", "S256"));
    }
    let back = s.browser_authorize(&q, who).await.expect("authorized");
    let params = query_map(&back);
    assert_eq!(params["state"], "st+/=%", "state is echoed byte for byte");
    assert_eq!(params["iss"], s.url);
    assert!(back.as_str().starts_with(&redirect));
    params["code"].clone()
}

async fn exchange(s: &TestServer, app: &App, code: &str, verifier: Option<&str>) -> (u16, Value) {
    let redirect = format!("{}/v2/web/auth-code", s.url);
    let mut form = vec![
        ("grant_type", "authorization_code"),
        ("code", code),
        ("redirect_uri", redirect.as_str()),
    ];
    if let Some(v) = verifier {
        form.push(("code_verifier", v));
    }
    let (st, b) = s.oauth("/v2/oauth2/token", app, &form).await;
    (st.as_u16(), b)
}

fn claims(jwt: &str) -> Value {
    let payload = jwt.split('.').nth(1).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
}

#[tokio::test]
async fn native_pkce_flow_issues_tokens_and_a_verifiable_id_token() {
    let s = TestServer::start().await;
    let app = s.app(ClientKind::Native).await;
    let alice = s.person("alice").await;
    let (verifier, challenge) = pkce();
    let code = code_for(&s, &app, &alice, Some(&challenge)).await;
    let (st, t) = exchange(&s, &app, &code, Some(&verifier)).await;
    assert_eq!(st, 200, "{t}");
    assert_eq!(t["resource_server"], "auth.globus.org");
    assert_eq!(t["scope"], "openid profile email");
    assert!(t["refresh_token"].as_str().is_some());
    let other = &t["other_tokens"][0];
    assert_eq!(other["resource_server"], "transfer.api.globus.org");
    assert!(other["refresh_token"].as_str().is_some());

    // id_token: RS256 with the JWKS key, aud = client, sub = identity.
    let jwt = t["id_token"].as_str().unwrap();
    let c = claims(jwt);
    assert_eq!(c["sub"], alice.id);
    assert_eq!(c["aud"], app.id);
    assert_eq!(c["iss"], s.url);
    let (st, disco) = s.get("/.well-known/openid-configuration", "").await;
    assert_eq!(st, 200);
    assert_eq!(disco["issuer"], s.url);
    let jwks: Value = s
        .http
        .get(disco["jwks_uri"].as_str().unwrap())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let key = &jwks["keys"][0];
    let header: Value = serde_json::from_slice(
        &URL_SAFE_NO_PAD
            .decode(jwt.split('.').next().unwrap())
            .unwrap(),
    )
    .unwrap();
    assert_eq!(header["alg"], "RS256");
    assert_eq!(header["kid"], key["kid"]);
    let n = URL_SAFE_NO_PAD.decode(key["n"].as_str().unwrap()).unwrap();
    let e = URL_SAFE_NO_PAD.decode(key["e"].as_str().unwrap()).unwrap();
    let (input, sig) = jwt.rsplit_once('.').unwrap();
    aws_lc_rs::signature::RsaPublicKeyComponents { n: &n, e: &e }
        .verify(
            &aws_lc_rs::signature::RSA_PKCS1_2048_8192_SHA256,
            input.as_bytes(),
            &URL_SAFE_NO_PAD.decode(sig).unwrap(),
        )
        .expect("id_token signature verifies");

    // The person's consents are listed with the client.
    let (st, consents) = s
        .get(
            &format!("/v2/api/identities/{}/consents", alice.id),
            t["access_token"].as_str().unwrap(),
        )
        .await;
    assert_eq!(st, 200);
    let names: Vec<&str> = consents["consents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["scope_name"].as_str().unwrap())
        .collect();
    assert!(names.contains(&"urn:globus:auth:scope:transfer.api.globus.org:all"));
}

#[tokio::test]
async fn wrong_verifier_fails_and_consumes_the_code() {
    let s = TestServer::start().await;
    let app = s.app(ClientKind::Native).await;
    let alice = s.person("alice").await;
    let (verifier, challenge) = pkce();
    let code = code_for(&s, &app, &alice, Some(&challenge)).await;
    let (other_verifier, _) = pkce();
    let (st, b) = exchange(&s, &app, &code, Some(&other_verifier)).await;
    assert_eq!((st, b["error"].as_str()), (400, Some("invalid_grant")));
    let (st, b) = exchange(&s, &app, &code, Some(&verifier)).await;
    assert_eq!(
        (st, b["error"].as_str()),
        (400, Some("invalid_grant")),
        "a failed verifier burns the code"
    );
}

#[tokio::test]
async fn missing_verifier_and_downgrade_are_refused() {
    let s = TestServer::start().await;
    let native = s.app(ClientKind::Native).await;
    let conf = s.app(ClientKind::Confidential).await;
    let alice = s.person("alice").await;
    let (_, challenge) = pkce();
    let code = code_for(&s, &native, &alice, Some(&challenge)).await;
    let (st, b) = exchange(&s, &native, &code, None).await;
    assert_eq!((st, b["error"].as_str()), (400, Some("invalid_grant")));

    // A confidential client may skip PKCE, but then must not send a verifier.
    let code = code_for(&s, &conf, &alice, None).await;
    let (verifier, _) = pkce();
    let (st, b) = exchange(&s, &conf, &code, Some(&verifier)).await;
    assert_eq!((st, b["error"].as_str()), (400, Some("invalid_grant")));
}

#[tokio::test]
async fn a_reused_code_is_refused_and_revokes_what_it_produced() {
    let s = TestServer::start().await;
    let app = s.app(ClientKind::Confidential).await;
    let alice = s.person("alice").await;
    let code = code_for(&s, &app, &alice, None).await;
    let (st, first) = exchange(&s, &app, &code, None).await;
    assert_eq!(st, 200);
    let (st, b) = exchange(&s, &app, &code, None).await;
    assert_eq!((st, b["error"].as_str()), (400, Some("invalid_grant")));
    let at = first["access_token"].as_str().unwrap();
    let (_, intro) = s
        .oauth("/v2/oauth2/token/introspect", &app, &[("token", at)])
        .await;
    assert_eq!(intro, serde_json::json!({"active": false}));
    let (_, b) = s
        .oauth(
            "/v2/oauth2/token",
            &app,
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", first["refresh_token"].as_str().unwrap()),
            ],
        )
        .await;
    assert_eq!(b["error"], "invalid_grant");
}

#[tokio::test]
async fn an_expired_code_is_refused() {
    let s = TestServer::start_with(|c| c.auth.code_lifetime_secs = 60).await;
    let app = s.app(ClientKind::Confidential).await;
    let alice = s.person("alice").await;
    let code = code_for(&s, &app, &alice, None).await;
    s.advance(61);
    let (st, b) = exchange(&s, &app, &code, None).await;
    assert_eq!((st, b["error"].as_str()), (400, Some("invalid_grant")));
    assert!(b["error_description"].as_str().unwrap().contains("expired"));
}

#[tokio::test]
async fn a_code_is_bound_to_client_and_redirect_uri() {
    let s = TestServer::start().await;
    let app = s.app(ClientKind::Confidential).await;
    let other = s.app(ClientKind::Confidential).await;
    let alice = s.person("alice").await;
    let code = code_for(&s, &app, &alice, None).await;
    let (st, b) = exchange(&s, &other, &code, None).await;
    assert_eq!((st, b["error"].as_str()), (400, Some("invalid_grant")));
    let code = code_for(&s, &app, &alice, None).await;
    let (st, b) = s
        .oauth(
            "/v2/oauth2/token",
            &app,
            &[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("redirect_uri", "http://127.0.0.1/cb"),
            ],
        )
        .await;
    assert_eq!(
        (st.as_u16(), b["error"].as_str()),
        (400, Some("invalid_grant"))
    );
}

#[tokio::test]
async fn untrusted_requests_never_redirect() {
    let s = TestServer::start().await;
    let app = s.app(ClientKind::Native).await;
    let get = |q: Vec<(&'static str, String)>| {
        let s = &s;
        async move {
            let mut u = url::Url::parse(&format!("{}/v2/oauth2/authorize", s.url)).unwrap();
            u.query_pairs_mut().extend_pairs(q);
            let r = s.http.get(u).send().await.unwrap();
            (
                r.status().as_u16(),
                r.headers()
                    .get("location")
                    .map(|l| l.to_str().unwrap().to_string()),
            )
        }
    };
    let base = |client: &str, redirect: &str| {
        vec![
            ("client_id", client.to_string()),
            ("redirect_uri", redirect.to_string()),
            ("scope", "openid".into()),
            ("response_type", "code".into()),
        ]
    };
    // Unknown client, foreign redirect URIs: an error page, no Location.
    for (client, redirect) in [
        (
            uuid::Uuid::new_v4().to_string(),
            "http://127.0.0.1/cb".to_string(),
        ),
        (app.id.clone(), "https://evil.example/cb".to_string()),
        (app.id.clone(), "http://127.0.0.1/cb/../x".to_string()),
        (
            app.id.clone(),
            "http://127.0.0.1.evil.example/cb".to_string(),
        ),
        (app.id.clone(), format!("{}/v2/web/auth-code?x=1", s.url)),
    ] {
        let (st, loc) = get(base(&client, &redirect)).await;
        assert_eq!((st, loc), (400, None), "{client} {redirect}");
    }
    // A registered loopback redirect on another port is fine; errors go back to it.
    let (_, challenge) = pkce();
    let mut q = base(&app.id, "http://127.0.0.1:4567/cb");
    q.push(("code_challenge", challenge.clone()));
    q.push(("code_challenge_method", "plain".into()));
    let (st, loc) = get(q).await;
    assert_eq!(st, 303);
    assert!(loc.unwrap().contains("error=invalid_request"));
    // Native clients must use PKCE.
    let (st, loc) = get(base(&app.id, "http://127.0.0.1:4567/cb")).await;
    assert_eq!(st, 303);
    assert!(loc.unwrap().contains("error=invalid_request"));
    // Only response_type=code.
    let mut q = base(&app.id, "http://127.0.0.1/cb");
    q[3] = ("response_type", "token".into());
    let (_, loc) = get(q).await;
    assert!(loc.unwrap().contains("error=unsupported_response_type"));
}

#[tokio::test]
async fn wrong_password_shows_the_form_again_and_pages_cannot_be_framed() {
    let s = TestServer::start().await;
    let app = s.app(ClientKind::Confidential).await;
    let mut alice = s.person("alice").await;
    let redirect = format!("{}/v2/web/auth-code", s.url);
    let r = s
        .http
        .get(format!("{}/v2/oauth2/authorize", s.url))
        .query(&[
            ("client_id", app.id.as_str()),
            ("redirect_uri", &redirect),
            ("scope", "openid"),
            ("response_type", "code"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["x-frame-options"], "DENY");
    assert!(
        r.headers()["content-security-policy"]
            .to_str()
            .unwrap()
            .contains("frame-ancestors 'none'")
    );
    alice.password = "not-her-password".into();
    let err = s
        .browser_authorize(
            &[
                ("client_id", app.id.as_str()),
                ("redirect_uri", &redirect),
                ("scope", "openid"),
                ("response_type", "code"),
            ],
            &alice,
        )
        .await;
    assert_eq!(err.unwrap_err(), "login answered 401 Unauthorized");
}

#[tokio::test]
async fn dependent_tokens_follow_consented_dependencies() {
    let s = TestServer::start().await;
    // A service client acting as a resource server, and an app whose scope depends on transfer.
    let service = s.app(ClientKind::Confidential).await;
    let app = s.app(ClientKind::Confidential).await;
    let alice = s.person("alice").await;
    // The service declares that its scope depends on Transfer (issue 13: only declared dependencies count).
    let manage = s
        .access_token(
            &service,
            "urn:globus:auth:scope:auth.globus.org:manage_projects",
        )
        .await;
    let (st, b) = s
        .call(
            reqwest::Method::POST,
            &format!("/v2/api/clients/{}/scopes", service.id),
            &manage,
            Some(
                &serde_json::json!({"scope": {"name": "all", "description": "everything",
                "scope_suffix": "all", "dependent_scopes": [{"scope":
                    "urn:globus:auth:scope:transfer.api.globus.org:all", "optional": false,
                    "requires_refresh_token": true}]}}),
            ),
        )
        .await;
    assert_eq!(st, 200, "{b}");
    let service_scope = format!("https://auth.globus.org/scopes/{}/all", service.id);
    let scope = format!("{service_scope}[urn:globus:auth:scope:transfer.api.globus.org:all]");
    let redirect = format!("{}/v2/web/auth-code", s.url);
    let back = s
        .browser_authorize(
            &[
                ("client_id", app.id.as_str()),
                ("redirect_uri", &redirect),
                ("scope", &scope),
                ("response_type", "code"),
            ],
            &alice,
        )
        .await
        .unwrap();
    let code = query_map(&back)["code"].clone();
    let (st, t) = exchange(&s, &app, &code, None).await;
    assert_eq!(st, 200, "{t}");
    assert_eq!(t["resource_server"], service.id);
    let token = t["access_token"].as_str().unwrap();

    let (st, list) = s
        .oauth(
            "/v2/oauth2/token",
            &service,
            &[
                ("grant_type", "urn:globus:auth:grant_type:dependent_token"),
                ("token", token),
                ("access_type", "offline"),
            ],
        )
        .await;
    assert_eq!(st, 200, "{list}");
    let list = list.as_array().unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0]["resource_server"], "transfer.api.globus.org");
    assert!(list[0]["refresh_token"].as_str().is_some());
    // A scope that was not consented to as a dependency is refused.
    let (st, b) = s
        .oauth(
            "/v2/oauth2/token",
            &service,
            &[
                ("grant_type", "urn:globus:auth:grant_type:dependent_token"),
                ("token", token),
                ("scope", "urn:globus:auth:scope:groups.api.globus.org:all"),
            ],
        )
        .await;
    assert_eq!(
        (st.as_u16(), b["error"].as_str()),
        (400, Some("invalid_scope"))
    );
    // Another client cannot exchange the token.
    let (st, b) = s
        .oauth(
            "/v2/oauth2/token",
            &app,
            &[
                ("grant_type", "urn:globus:auth:grant_type:dependent_token"),
                ("token", token),
            ],
        )
        .await;
    assert_eq!(
        (st.as_u16(), b["error"].as_str()),
        (400, Some("invalid_grant"))
    );
}
