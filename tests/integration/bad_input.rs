use ferry_core::ClientKind;
use ferry_tests::TestServer;
use serde_json::Value;

#[tokio::test]
async fn malformed_token_requests_get_clear_errors() {
    let s = TestServer::start().await;
    let app = s.app(ClientKind::Confidential).await;
    let url = format!("{}/v2/oauth2/token", s.url);
    let secret = app.secret.clone().unwrap();

    // JSON instead of a form.
    let r = s
        .http
        .post(&url)
        .basic_auth(&app.id, Some(&secret))
        .json(&serde_json::json!({"grant_type": "client_credentials"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let b: Value = r.json().await.unwrap();
    assert_eq!(b["error"], "invalid_request");
    assert!(
        b["error_description"]
            .as_str()
            .unwrap()
            .contains("x-www-form-urlencoded")
    );

    // A parameter given twice.
    let r = s
        .http
        .post(&url)
        .basic_auth(&app.id, Some(&secret))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("grant_type=client_credentials&scope=openid&scope=email")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let b: Value = r.json().await.unwrap();
    assert!(b["error_description"].as_str().unwrap().contains("scope"));

    // A malformed scope string.
    let r = s
        .http
        .post(&url)
        .basic_auth(&app.id, Some(&secret))
        .form(&[
            ("grant_type", "client_credentials"),
            ("scope", "openid[email"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(r.json::<Value>().await.unwrap()["error"], "invalid_scope");

    // Basic credentials that are not base64.
    let r = s
        .http
        .post(&url)
        .header("authorization", "Basic !!!")
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);

    // A huge body is refused before it is read whole.
    let huge = "a".repeat(2 * 1024 * 1024);
    let r = s
        .http
        .post(&url)
        .basic_auth(&app.id, Some(&secret))
        .form(&[
            ("grant_type", "client_credentials"),
            ("scope", huge.as_str()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);

    // Token responses and errors are never cached.
    let r = s
        .http
        .post(&url)
        .basic_auth(&app.id, Some(&secret))
        .form(&[("grant_type", "nope")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["cache-control"], "no-store");

    // None of this created tokens: only a good request does.
    let intro = s
        .oauth(
            "/v2/oauth2/token/introspect",
            &app,
            &[("token", "anything")],
        )
        .await
        .1;
    assert_eq!(intro["active"], false);
}

#[tokio::test]
async fn unknown_routes_and_bad_registrations() {
    let s = TestServer::start().await;
    let r = s
        .http
        .get(format!("{}/v2/nothing/here", s.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    // Registration without a token is only the template flow of `globus login`.
    let r = s
        .http
        .post(format!("{}/v2/api/clients", s.url))
        .json(&serde_json::json!({"client": {"name": "x"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let r = s
        .http
        .post(format!("{}/v2/api/clients", s.url))
        .json(&serde_json::json!({"name": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let r = s
        .http
        .post(format!("{}/v2/api/clients", s.url))
        .header("content-type", "application/json")
        .body("[")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let b: Value = r.json().await.unwrap();
    assert_eq!(b["errors"][0]["code"], "BAD_REQUEST");
}
