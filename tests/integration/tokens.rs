use ferry_core::ClientKind;
use ferry_tests::{App, Person, TestServer};
use serde_json::{Value, json};

const SCOPES: &str = "openid profile email urn:globus:auth:scope:transfer.api.globus.org:all";

/// Logs `who` in through `app` with offline access and returns the token response.
async fn login(s: &TestServer, app: &App, who: &Person) -> Value {
    s.login(app, who, SCOPES).await
}

async fn refresh(s: &TestServer, app: &App, rt: &str) -> (u16, Value) {
    let (st, b) = s
        .oauth(
            "/v2/oauth2/token",
            app,
            &[("grant_type", "refresh_token"), ("refresh_token", rt)],
        )
        .await;
    (st.as_u16(), b)
}

async fn active(s: &TestServer, app: &App, token: &str) -> bool {
    let (st, b) = s
        .oauth("/v2/oauth2/token/introspect", app, &[("token", token)])
        .await;
    assert_eq!(st, 200);
    b["active"].as_bool().unwrap()
}

#[tokio::test]
async fn refresh_rotates_and_reuse_revokes_the_family() {
    let s = TestServer::start().await;
    let app = s.app(ClientKind::Confidential).await;
    let alice = s.person("alice").await;
    let t = login(&s, &app, &alice).await;
    let transfer = &t["other_tokens"][0];
    let rt0 = transfer["refresh_token"].as_str().unwrap();

    let (st, r1) = refresh(&s, &app, rt0).await;
    assert_eq!(st, 200, "{r1}");
    assert_eq!(r1["resource_server"], "transfer.api.globus.org");
    assert_eq!(
        r1["other_tokens"],
        json!([]),
        "a refresh yields exactly one token"
    );
    let rt1 = r1["refresh_token"].as_str().unwrap();
    assert_ne!(rt0, rt1);
    assert!(active(&s, &app, r1["access_token"].as_str().unwrap()).await);

    // The old refresh token is refused, and its reuse revokes the whole family.
    let (st, b) = refresh(&s, &app, rt0).await;
    assert_eq!((st, b["error"].as_str()), (400, Some("invalid_grant")));
    let (st, b) = refresh(&s, &app, rt1).await;
    assert_eq!((st, b["error"].as_str()), (400, Some("invalid_grant")));
    assert!(!active(&s, &app, r1["access_token"].as_str().unwrap()).await);
    assert!(!active(&s, &app, transfer["access_token"].as_str().unwrap()).await);
    assert!(!active(&s, &app, t["access_token"].as_str().unwrap()).await);
}

#[tokio::test]
async fn refresh_is_bound_to_its_client_and_cannot_widen_scope() {
    let s = TestServer::start().await;
    let app = s.app(ClientKind::Confidential).await;
    let thief = s.app(ClientKind::Confidential).await;
    let alice = s.person("alice").await;
    let t = login(&s, &app, &alice).await;
    let rt = t["refresh_token"].as_str().unwrap();
    let (st, b) = refresh(&s, &thief, rt).await;
    assert_eq!((st, b["error"].as_str()), (400, Some("invalid_grant")));
    let (st, b) = s
        .oauth(
            "/v2/oauth2/token",
            &app,
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", rt),
                (
                    "scope",
                    "openid urn:globus:auth:scope:groups.api.globus.org:all",
                ),
            ],
        )
        .await;
    assert_eq!(
        (st.as_u16(), b["error"].as_str()),
        (400, Some("invalid_scope"))
    );
    // The refused attempts did not use the token up.
    let (st, _) = refresh(&s, &app, rt).await;
    assert_eq!(st, 200);
}

#[tokio::test]
async fn revocation() {
    let s = TestServer::start().await;
    let app = s.app(ClientKind::Confidential).await;
    let other = s.app(ClientKind::Confidential).await;
    let alice = s.person("alice").await;
    let t = login(&s, &app, &alice).await;
    let at = t["access_token"].as_str().unwrap();
    assert_eq!(s.get("/v2/oauth2/userinfo", at).await.0, 200);

    // Another client's revocation of this token changes nothing and answers the same.
    let (st, b) = s
        .oauth("/v2/oauth2/token/revoke", &other, &[("token", at)])
        .await;
    assert_eq!((st.as_u16(), b.clone()), (200, json!({"active": false})));
    assert!(active(&s, &app, at).await);
    let (st, b2) = s
        .oauth("/v2/oauth2/token/revoke", &app, &[("token", "garbage")])
        .await;
    assert_eq!((st.as_u16(), b2), (200, b));

    let (st, _) = s
        .oauth("/v2/oauth2/token/revoke", &app, &[("token", at)])
        .await;
    assert_eq!(st, 200);
    assert!(!active(&s, &app, at).await);
    let (st, body) = s.get("/v2/oauth2/userinfo", at).await;
    assert_eq!(st, 401);
    assert_eq!(body["errors"][0]["code"], "UNAUTHORIZED");

    // Revoking a refresh token revokes the access tokens of its grant.
    let transfer_at = t["other_tokens"][0]["access_token"].as_str().unwrap();
    assert!(active(&s, &app, transfer_at).await);
    s.oauth(
        "/v2/oauth2/token/revoke",
        &app,
        &[("token", t["refresh_token"].as_str().unwrap())],
    )
    .await;
    assert!(!active(&s, &app, transfer_at).await);
}

#[tokio::test]
async fn introspection() {
    // Times are whole seconds, so a 1 s token can expire before the next request under load: 3 s leaves room.
    let s = TestServer::start_with(|c| c.auth.access_token_lifetime_secs = 600).await;
    let app = s.app(ClientKind::Confidential).await;
    let other = s.app(ClientKind::Confidential).await;
    let alice = s.person("alice").await;
    let t = login(&s, &app, &alice).await;
    let at = t["access_token"].as_str().unwrap();
    let (_, b) = s
        .oauth(
            "/v2/oauth2/token/introspect",
            &app,
            &[("token", at), ("include", "identity_set")],
        )
        .await;
    assert_eq!(b["active"], true);
    assert_eq!(b["sub"], alice.id);
    assert_eq!(b["username"], alice.username);
    assert_eq!(b["client_id"], app.id);
    assert_eq!(b["scope"], "openid profile email");
    assert_eq!(b["aud"], json!(["auth.globus.org", app.id]));
    assert_eq!(b["identity_set"], json!([alice.id]));
    assert!(b["exp"].as_i64().unwrap() > b["iat"].as_i64().unwrap());

    // Not for this caller, unknown, unauthenticated.
    let (_, b) = s
        .oauth("/v2/oauth2/token/introspect", &other, &[("token", at)])
        .await;
    assert_eq!(b, json!({"active": false}));
    let (_, b) = s
        .oauth("/v2/oauth2/token/introspect", &app, &[("token", "nope")])
        .await;
    assert_eq!(b, json!({"active": false}));
    let r = s
        .http
        .post(format!("{}/v2/oauth2/token/introspect", s.url))
        .form(&[("token", at)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);

    // Expired.
    s.advance(601);
    let (_, b) = s
        .oauth("/v2/oauth2/token/introspect", &app, &[("token", at)])
        .await;
    assert_eq!(b, json!({"active": false}));
    let (st, b) = s.get("/v2/oauth2/userinfo", at).await;
    assert_eq!(st, 401);
    assert_eq!(b["errors"][0]["status"], "401");
    // The refresh token outlives it, and validate says so.
    let (_, v) = s
        .oauth(
            "/v2/oauth2/token/validate",
            &app,
            &[("token", t["refresh_token"].as_str().unwrap())],
        )
        .await;
    assert_eq!(v, json!({"active": true}));
}

#[tokio::test]
async fn tokens_work_only_at_their_resource_server() {
    let s = TestServer::start().await;
    let app = s.app(ClientKind::Confidential).await;
    let t = s
        .client_token(&app, "urn:globus:auth:scope:transfer.api.globus.org:all")
        .await;
    let at = t["access_token"].as_str().unwrap();
    let (st, b) = s
        .get("/v2/api/identities?usernames=x@ferry.local", at)
        .await;
    assert_eq!(st, 401);
    assert_eq!(b["errors"][0]["code"], "UNAUTHORIZED");
    let (st, _) = s.get("/v2/groups/my_groups", at).await;
    assert_eq!(st, 401);
    // And a token in the URL is never looked at.
    let r = s
        .http
        .get(format!("{}/v2/oauth2/userinfo?access_token={at}", s.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
}

#[tokio::test]
async fn identity_lookup() {
    let s = TestServer::start().await;
    let app = s.app(ClientKind::Confidential).await;
    let alice = s.person("alice").await;
    let bob = s.person("bob").await;
    let t = s
        .client_token(
            &app,
            "urn:globus:auth:scope:auth.globus.org:view_identity_set",
        )
        .await;
    let at = t["access_token"].as_str().unwrap();
    let (st, b) = s
        .get(
            &format!(
                "/v2/api/identities?usernames={},{},nobody@ferry.local",
                alice.username, bob.username
            ),
            at,
        )
        .await;
    assert_eq!(st, 200);
    let ids: Vec<&str> = b["identities"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [alice.id.as_str(), bob.id.as_str()]);
    assert_eq!(b["identities"][0]["username"], "alice@ferry.local");
    assert_eq!(b["identities"][0]["email"], "alice@example.org");
    let (_, b) = s
        .get(&format!("/v2/api/identities?ids={}", bob.id), at)
        .await;
    assert_eq!(b["identities"][0]["username"], bob.username);
    let (_, b) = s
        .get("/v2/api/identities?usernames=nobody@ferry.local", at)
        .await;
    assert_eq!(b, json!({"identities": []}));
    let (st, b) = s.get("/v2/api/identities?ids=not-a-uuid", at).await;
    assert_eq!(st, 400);
    assert!(
        b["errors"][0]["detail"]
            .as_str()
            .unwrap()
            .contains("not-a-uuid")
    );
    let (st, _) = s
        .get(
            &format!("/v2/api/identities?ids={}&usernames=x", bob.id),
            at,
        )
        .await;
    assert_eq!(st, 400);
    // A client's identity is found by its username.
    let (_, b) = s
        .get(
            &format!(
                "/v2/api/identities?usernames={}@clients.ferry.local",
                app.id
            ),
            at,
        )
        .await;
    assert_eq!(b["identities"][0]["id"], app.id);
}

#[tokio::test]
async fn a_rotated_refresh_token_is_no_longer_active() {
    let s = TestServer::start().await;
    let app = s.app(ClientKind::Confidential).await;
    let alice = s.person("alice").await;
    let t = login(&s, &app, &alice).await;
    let rt0 = t["refresh_token"].as_str().unwrap();
    let (_, v) = s
        .oauth("/v2/oauth2/token/validate", &app, &[("token", rt0)])
        .await;
    assert_eq!(v, json!({"active": true}));
    let (st, _) = refresh(&s, &app, rt0).await;
    assert_eq!(st, 200);
    let (_, v) = s
        .oauth("/v2/oauth2/token/validate", &app, &[("token", rt0)])
        .await;
    assert_eq!(v, json!({"active": false}));
    let (_, v) = s
        .oauth("/v2/oauth2/token/introspect", &app, &[("token", rt0)])
        .await;
    assert_eq!(v, json!({"active": false}));
}

/// What `globus logout` does: delete its per-install client with that client's credentials, and revoke
/// tokens through the public template client.
#[tokio::test]
async fn globus_logout_sequence() {
    let s = TestServer::start().await;
    let template = App {
        id: "95fdeba8-fac2-42bd-a357-e068d82ff78e".into(),
        secret: None,
    };
    let r = s
        .http
        .post(format!("{}/v2/api/clients", s.url))
        .json(&json!({"client": {"template_id": template.id, "name": "Globus CLI"}}))
        .send()
        .await
        .unwrap();
    let b: Value = r.json().await.unwrap();
    let cred = &b["included"]["client_credential"];
    let cli = App {
        id: cred["client"].as_str().unwrap().into(),
        secret: Some(cred["secret"].as_str().unwrap().into()),
    };
    let alice = s.person("alice").await;
    let t = login(&s, &cli, &alice).await;
    let at = t["access_token"].as_str().unwrap();

    // The template revokes a token of the client registered from it; an unrelated client cannot.
    let other = s.app(ClientKind::Native).await;
    s.oauth("/v2/oauth2/token/revoke", &other, &[("token", at)])
        .await;
    assert!(active(&s, &cli, at).await);
    let (st, b) = s
        .oauth("/v2/oauth2/token/revoke", &template, &[("token", at)])
        .await;
    assert_eq!((st.as_u16(), b), (200, json!({"active": false})));
    assert!(!active(&s, &cli, at).await);

    // Deleting the client takes its tokens with it; only the client itself may do it.
    let rt = t["refresh_token"].as_str().unwrap().to_string();
    let del = |id: &str, secret: &str| {
        s.http
            .delete(format!("{}/v2/api/clients/{}", s.url, cli.id))
            .basic_auth(id, Some(secret))
            .send()
    };
    let r = del(&other.id, "x").await.unwrap();
    assert_eq!(r.status(), 401);
    let r = del(&cli.id, cli.secret.as_deref().unwrap()).await.unwrap();
    assert_eq!(r.status(), 200);
    let (st, b) = refresh(&s, &template, &rt).await;
    assert_eq!((st, b["error"].as_str()), (400, Some("invalid_grant")));
    let (st, _) = s
        .oauth(
            "/v2/oauth2/token",
            &cli,
            &[("grant_type", "client_credentials"), ("scope", "openid")],
        )
        .await;
    assert_eq!(st, 401);
}
