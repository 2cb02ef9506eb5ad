use ferry_core::ClientKind;
use ferry_tests::TestServer;

const TRANSFER: &str = "urn:globus:auth:scope:transfer.api.globus.org:all";
const AUTH_SCOPES: &str =
    "openid profile email urn:globus:auth:scope:auth.globus.org:view_identity_set";

#[tokio::test]
async fn one_token_per_resource_server() {
    let s = TestServer::start().await;
    let app = s.app(ClientKind::Confidential).await;

    let t = s.client_token(&app, TRANSFER).await;
    assert_eq!(t["resource_server"], "transfer.api.globus.org");
    assert_eq!(t["token_type"], "Bearer");
    assert_eq!(t["other_tokens"], serde_json::json!([]));
    assert!(t.get("refresh_token").is_none());

    // The CLI's auth scopes must come back as exactly one token.
    let t = s.client_token(&app, AUTH_SCOPES).await;
    assert_eq!(t["resource_server"], "auth.globus.org");
    assert_eq!(t["scope"], AUTH_SCOPES);
    assert_eq!(t["other_tokens"].as_array().unwrap().len(), 0);

    let t = s
        .client_token(
            &app,
            &format!("{TRANSFER} {AUTH_SCOPES} urn:globus:auth:scope:groups.api.globus.org:all"),
        )
        .await;
    let rs: Vec<&str> = std::iter::once(&t)
        .chain(t["other_tokens"].as_array().unwrap())
        .map(|x| x["resource_server"].as_str().unwrap())
        .collect();
    assert_eq!(
        rs,
        [
            "transfer.api.globus.org",
            "auth.globus.org",
            "groups.api.globus.org"
        ]
    );
}

#[tokio::test]
async fn client_identity_is_the_client() {
    let s = TestServer::start().await;
    let app = s.app(ClientKind::Confidential).await;
    let t = s.client_token(&app, AUTH_SCOPES).await;
    let (status, me) = s
        .get("/v2/oauth2/userinfo", t["access_token"].as_str().unwrap())
        .await;
    assert_eq!(status, 200);
    assert_eq!(me["sub"], app.id);
    assert_eq!(
        me["preferred_username"],
        format!("{}@clients.ferry.local", app.id)
    );
}

#[tokio::test]
async fn refusals() {
    let s = TestServer::start().await;
    let app = s.app(ClientKind::Confidential).await;
    let native = s.app(ClientKind::Native).await;

    let (st, b) = s
        .oauth(
            "/v2/oauth2/token",
            &app,
            &[
                ("grant_type", "client_credentials"),
                ("scope", "urn:globus:auth:scope:nope:all"),
            ],
        )
        .await;
    assert_eq!(
        (st.as_u16(), b["error"].as_str()),
        (400, Some("invalid_scope"))
    );
    let (st, b) = s
        .oauth(
            "/v2/oauth2/token",
            &app,
            &[("grant_type", "client_credentials")],
        )
        .await;
    assert_eq!(
        (st.as_u16(), b["error"].as_str()),
        (400, Some("invalid_request"))
    );
    assert!(b["error_description"].as_str().unwrap().contains("scope"));
    let (st, b) = s
        .oauth(
            "/v2/oauth2/token",
            &app,
            &[("grant_type", "password"), ("username", "x")],
        )
        .await;
    assert_eq!(
        (st.as_u16(), b["error"].as_str()),
        (400, Some("unsupported_grant_type"))
    );
    let (st, b) = s
        .oauth("/v2/oauth2/token", &app, &[("scope", TRANSFER)])
        .await;
    assert_eq!(
        (st.as_u16(), b["error"].as_str()),
        (400, Some("invalid_request"))
    );
    let (st, b) = s
        .oauth(
            "/v2/oauth2/token",
            &native,
            &[("grant_type", "client_credentials"), ("scope", TRANSFER)],
        )
        .await;
    assert_eq!(
        (st.as_u16(), b["error"].as_str()),
        (400, Some("unauthorized_client"))
    );
}

#[tokio::test]
async fn wrong_secret_does_not_say_which_part_was_wrong() {
    let s = TestServer::start().await;
    let app = s.app(ClientKind::Confidential).await;
    let form = [("grant_type", "client_credentials"), ("scope", TRANSFER)];
    let post = |id: String, secret: String| {
        let s = &s;
        async move {
            let r = s
                .http
                .post(format!("{}/v2/oauth2/token", s.url))
                .basic_auth(id, Some(secret))
                .form(&form)
                .send()
                .await
                .unwrap();
            (
                r.status().as_u16(),
                r.headers().get("www-authenticate").is_some(),
                r.text().await.unwrap(),
            )
        }
    };
    let wrong_secret = post(app.id.clone(), "not-the-secret".into()).await;
    let unknown_client = post(uuid::Uuid::new_v4().to_string(), "x".into()).await;
    let garbage_id = post("not-a-uuid".into(), "x".into()).await;
    assert_eq!(wrong_secret.0, 401);
    assert!(wrong_secret.1, "401 must carry WWW-Authenticate");
    assert_eq!(wrong_secret, unknown_client);
    assert_eq!(wrong_secret, garbage_id);
    assert!(wrong_secret.2.contains("invalid_client"));
}

#[tokio::test]
async fn repeated_failures_are_slowed_down_per_client_and_address() {
    let s = TestServer::start().await;
    let app = s.app(ClientKind::Confidential).await;
    let form = [("grant_type", "client_credentials"), ("scope", TRANSFER)];
    let mut statuses = Vec::new();
    for _ in 0..15 {
        let r = s
            .http
            .post(format!("{}/v2/oauth2/token", s.url))
            .basic_auth(&app.id, Some("wrong"))
            .form(&form)
            .send()
            .await
            .unwrap();
        if r.status() == 429 {
            assert!(r.headers().get("retry-after").is_some());
        }
        statuses.push(r.status().as_u16());
    }
    assert_eq!(&statuses[..10], &[401; 10]);
    assert_eq!(&statuses[10..], &[429; 5]);
    // Even the right secret waits, from this address...
    let r = s
        .http
        .post(format!("{}/v2/oauth2/token", s.url))
        .basic_auth(&app.id, app.secret.as_ref())
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 429);
    // ...but from another address the client is not locked out.
    let other = reqwest::Client::builder()
        .local_address("127.0.0.2".parse::<std::net::IpAddr>().unwrap())
        .build()
        .unwrap();
    let r = other
        .post(format!("{}/v2/oauth2/token", s.url))
        .basic_auth(&app.id, app.secret.as_ref())
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn client_secret_post_and_url_encoded_basic_credentials_work() {
    let s = TestServer::start().await;
    let app = s.app(ClientKind::Confidential).await;
    let secret = app.secret.clone().unwrap();
    let r = s
        .http
        .post(format!("{}/v2/oauth2/token", s.url))
        .form(&[
            ("grant_type", "client_credentials"),
            ("scope", TRANSFER),
            ("client_id", &app.id),
            ("client_secret", &secret),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // Secrets are base64url, so form-encoding leaves them unchanged except for '-' and '_' which stay; encode anyway.
    let encoded: String = url::form_urlencoded::byte_serialize(secret.as_bytes()).collect();
    let r = s
        .http
        .post(format!("{}/v2/oauth2/token", s.url))
        .basic_auth(&app.id, Some(encoded))
        .form(&[("grant_type", "client_credentials"), ("scope", TRANSFER)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}
