//! Issue 13, authorisation server: the holes an outside audit found, each as the attack (or the broken
//! behaviour) it was found with, and the legitimate use that must keep working.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ferry_auth::NewClient;
use ferry_core::ClientKind;
use ferry_tests::endpoint::manage_scope;
use ferry_tests::{App, Person, TestServer, hidden, query_map};
use reqwest::Method as M;
use serde_json::{Value, json};

const DEPENDENT: &str = "urn:globus:auth:grant_type:dependent_token";
const TRANSFER: &str = "urn:globus:auth:scope:transfer.api.globus.org:all";
const GROUPS: &str = "urn:globus:auth:scope:groups.api.globus.org:all";
const MANAGE_PROJECTS: &str = "urn:globus:auth:scope:auth.globus.org:manage_projects";
const CLI_TEMPLATE: &str = "95fdeba8-fac2-42bd-a357-e068d82ff78e";

/// A browser: keeps its cookies, submits the forms it is shown with every hidden field they carry.
pub(crate) struct Browser<'a> {
    s: &'a TestServer,
    cookies: Vec<(String, String)>,
}

/// Every hidden input of a page, in order, HTML-unescaped.
pub(crate) fn hidden_inputs(page: &str) -> Vec<(String, String)> {
    let marker = "type=\"hidden\" name=\"";
    page.match_indices(marker)
        .filter_map(|(i, _)| {
            let rest = &page[i + marker.len()..];
            let name = &rest[..rest.find('"')?];
            Some((name.to_string(), hidden(&page[i..], name)?))
        })
        .collect()
}

impl<'a> Browser<'a> {
    pub(crate) fn new(s: &'a TestServer) -> Self {
        Self { s, cookies: vec![] }
    }

    pub(crate) fn cookie_header(&self) -> String {
        self.cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    fn has_cookie(&self, name: &str) -> bool {
        self.cookies.iter().any(|(k, _)| k == name)
    }

    fn absorb(&mut self, resp: &reqwest::Response) {
        for v in resp.headers().get_all("set-cookie") {
            let v = v.to_str().unwrap();
            let (kv, attrs) = v.split_once(';').unwrap_or((v, ""));
            let (k, val) = kv.split_once('=').unwrap();
            self.cookies.retain(|(n, _)| n != k);
            if !attrs.contains("Max-Age=0") && !val.is_empty() {
                self.cookies.push((k.to_string(), val.to_string()));
            }
        }
    }

    fn url(&self, path_or_url: &str) -> String {
        if path_or_url.starts_with("http") {
            path_or_url.to_string()
        } else {
            format!("{}{path_or_url}", self.s.url)
        }
    }

    pub(crate) async fn get(&mut self, path: &str) -> reqwest::Response {
        let r = self
            .s
            .http
            .get(self.url(path))
            .header("cookie", self.cookie_header())
            .send()
            .await
            .unwrap();
        self.absorb(&r);
        r
    }

    pub(crate) async fn post(
        &mut self,
        path: &str,
        form: &[(String, String)],
    ) -> reqwest::Response {
        let r = self
            .s
            .http
            .post(self.url(path))
            .header("cookie", self.cookie_header())
            .form(form)
            .send()
            .await
            .unwrap();
        self.absorb(&r);
        r
    }

    /// Submits the login form of `page` as `who`.
    pub(crate) async fn log_in(&mut self, page: &str, who: &Person) -> reqwest::Response {
        let mut form = hidden_inputs(page);
        form.push(("username".into(), who.username.clone()));
        form.push(("password".into(), who.password.clone()));
        self.post("/v2/web/login", &form).await
    }

    /// Opens an authorize URL; logs in when asked to; allows on the consent page. Returns the final redirect.
    pub(crate) async fn authorize(&mut self, query: &[(&str, &str)], who: &Person) -> url::Url {
        let mut u = url::Url::parse(&format!("{}/v2/oauth2/authorize", self.s.url)).unwrap();
        u.query_pairs_mut().extend_pairs(query);
        let mut r = self.get(u.as_str()).await;
        for _ in 0..4 {
            if r.status().is_redirection() {
                let loc = r.headers()["location"].to_str().unwrap().to_string();
                if !loc.starts_with('/') {
                    return url::Url::parse(&loc).unwrap();
                }
                r = self.get(&loc).await;
                continue;
            }
            assert_eq!(r.status(), 200, "unexpected page");
            let page = r.text().await.unwrap();
            r = if page.contains("type=\"password\"") {
                self.log_in(&page, who).await
            } else {
                let mut form = hidden_inputs(&page);
                form.push(("decision".into(), "allow".into()));
                self.post("/v2/web/consent", &form).await
            };
        }
        panic!("the authorization did not finish")
    }
}

fn claims(jwt: &str) -> Value {
    let payload = jwt.split('.').nth(1).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
}

pub(crate) async fn exchange(
    s: &TestServer,
    app: &App,
    back: &url::Url,
    redirect: &str,
) -> (u16, Value) {
    let q = query_map(back);
    let code = q.get("code").unwrap_or_else(|| panic!("no code in {back}"));
    let (st, b) = s
        .oauth(
            "/v2/oauth2/token",
            app,
            &[
                ("grant_type", "authorization_code"),
                ("code", code),
                ("redirect_uri", redirect),
            ],
        )
        .await;
    (st.as_u16(), b)
}

pub(crate) async fn active(s: &TestServer, app: &App, token: &str) -> bool {
    let (st, b) = s
        .oauth("/v2/oauth2/token/introspect", app, &[("token", token)])
        .await;
    assert_eq!(st, 200, "{b}");
    b["active"].as_bool().unwrap()
}

pub(crate) async fn refresh(s: &TestServer, app: &App, rt: &str) -> (u16, Value) {
    let (st, b) = s
        .oauth(
            "/v2/oauth2/token",
            app,
            &[("grant_type", "refresh_token"), ("refresh_token", rt)],
        )
        .await;
    (st.as_u16(), b)
}

fn all_tokens(t: &Value) -> Vec<Value> {
    std::iter::once(t.clone())
        .chain(t["other_tokens"].as_array().cloned().unwrap_or_default())
        .collect()
}

fn token_for<'v>(t: &'v Value, rs: &str) -> &'v Value {
    if t["resource_server"] == rs {
        return t;
    }
    t["other_tokens"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["resource_server"] == rs)
        .unwrap_or_else(|| panic!("no token for {rs} in {t}"))
}

async fn dependent(
    s: &TestServer,
    service: &App,
    token: &str,
    scope: Option<&str>,
) -> (u16, Value) {
    let mut form = vec![("grant_type", DEPENDENT), ("token", token)];
    if let Some(sc) = scope {
        form.push(("scope", sc));
    }
    let (st, b) = s.oauth("/v2/oauth2/token", service, &form).await;
    (st.as_u16(), b)
}

/// The id of a scope string, as `GET /v2/api/scopes?scope_strings=` reports it.
async fn scope_id(s: &TestServer, token: &str, scope: &str) -> String {
    let mut u = url::Url::parse(&format!("{}/v2/api/scopes", s.url)).unwrap();
    u.query_pairs_mut().append_pair("scope_strings", scope);
    let (st, b) = s.get(&u[url::Position::BeforePath..], token).await;
    assert_eq!(st, 200, "{b}");
    assert_eq!(b["scopes"][0]["scope_string"], scope, "{b}");
    b["scopes"][0]["id"].as_str().unwrap().to_string()
}

/// Registers `suffix` as a scope of `app` (as the app itself), depending on `deps`; returns the scope document.
async fn create_scope(s: &TestServer, app: &App, suffix: &str, deps: &[&str]) -> Value {
    let token = s.access_token(app, MANAGE_PROJECTS).await;
    let mut dependent_scopes = vec![];
    for d in deps {
        dependent_scopes.push(
            json!({"scope": scope_id(s, &token, d).await, "optional": false,
            "requires_refresh_token": false}),
        );
    }
    let (st, b) = s
        .call(
            M::POST,
            &format!("/v2/api/clients/{}/scopes", app.id),
            &token,
            Some(&json!({"scope": {"name": format!("{suffix} of the app"),
                "description": "what the app does", "scope_suffix": suffix,
                "dependent_scopes": dependent_scopes}})),
        )
        .await;
    assert_eq!(st, 200, "{b}");
    b["scope"].clone()
}

// ---- 1. the dependent-token grant ----

/// The audit's attack: service B holds the endpoint administrator's application token, issued for B's own
/// scope, and asks for tokens as that application for the endpoint's manage_collections scope.
#[tokio::test]
async fn dependent_grant_cannot_mint_undeclared_scopes_as_the_application() {
    let s = TestServer::start().await;
    let admin = s.admin_app();
    let b = s.app(ClientKind::Confidential).await;
    let b_scope = format!("https://auth.globus.org/scopes/{}/all", b.id);
    let t = s.access_token(&admin, &b_scope).await;

    for scope in [Some(manage_scope(&s)), Some(TRANSFER.to_string()), None] {
        let (st, body) = dependent(&s, &b, &t, scope.as_deref()).await;
        assert_eq!(st, 400, "{scope:?}: {body}");
        assert_eq!(body["error"], "invalid_scope", "{body}");
    }
    // And B did not become an endpoint administrator through anything issued.
    let admin_api = ferry_tests::endpoint::api(&s, &admin).await;
    let (st, roles) = admin_api.call(M::GET, "/api/roles", None).await;
    assert_eq!(st, 200);
    assert!(!roles.to_string().contains(&b.id), "{roles}");
}

/// A declared dependency covers a client-credentials token only when it was declared before the token was
/// issued: the application consented to what the scope meant then.
#[tokio::test]
async fn dependencies_declared_after_a_client_token_are_not_covered() {
    let s = TestServer::start().await;
    let a = s.app(ClientKind::Confidential).await;
    let b = s.app(ClientKind::Confidential).await;
    let doc = create_scope(&s, &b, "compute", &[]).await;
    let b_scope = doc["scope_string"].as_str().unwrap().to_string();
    assert_eq!(
        b_scope,
        format!("https://auth.globus.org/scopes/{}/compute", b.id)
    );
    let early = s.access_token(&a, &b_scope).await;

    // B adds transfer as a dependency afterwards.
    let token = s.access_token(&b, MANAGE_PROJECTS).await;
    let transfer_id = scope_id(&s, &token, TRANSFER).await;
    let (st, upd) = s
        .call(
            M::PUT,
            &format!("/v2/api/scopes/{}", doc["id"].as_str().unwrap()),
            &token,
            Some(&json!({"scope": {"dependent_scopes": [
                {"scope": transfer_id, "optional": false, "requires_refresh_token": false}]}})),
        )
        .await;
    assert_eq!(st, 200, "{upd}");
    assert_eq!(upd["scope"]["dependent_scopes"][0]["scope"], transfer_id);

    let (st, body) = dependent(&s, &b, &early, Some(TRANSFER)).await;
    assert_eq!(
        (st, body["error"].as_str()),
        (400, Some("invalid_scope")),
        "{body}"
    );
    // A token issued after the declaration is covered: B acts as A at Transfer.
    let late = s.access_token(&a, &b_scope).await;
    let (st, list) = dependent(&s, &b, &late, None).await;
    assert_eq!(st, 200, "{list}");
    assert_eq!(list[0]["resource_server"], "transfer.api.globus.org");
    let (_, who) = s
        .oauth(
            "/v2/oauth2/token/introspect",
            &b,
            &[("token", list[0]["access_token"].as_str().unwrap())],
        )
        .await;
    assert_eq!(who["sub"], a.id);
    // Another client cannot exchange B's token.
    let (st, body) = dependent(&s, &a, &late, None).await;
    assert_eq!(
        (st, body["error"].as_str()),
        (400, Some("invalid_grant")),
        "{body}"
    );
}

/// The legitimate chain: a portal's scope declares Transfer as a dependency; a person consents (and sees it);
/// the portal's service gets a Transfer token as the person. An undeclared dependency is refused at
/// /authorize; the built-in Transfer → collection data_access rule (what globus-cli asks for) is accepted.
#[tokio::test]
async fn a_declared_dependency_chain_works_and_undeclared_ones_are_invalid_scope() {
    let s = TestServer::start().await;
    let portal = s.app(ClientKind::Confidential).await;
    let web = s.app(ClientKind::Confidential).await;
    let alice = s.person("alice").await;
    let doc = create_scope(&s, &portal, "portal", &[TRANSFER]).await;
    let portal_scope = doc["scope_string"].as_str().unwrap().to_string();
    let redirect = format!("{}/v2/web/auth-code", s.url);
    let q = |scope: &str| {
        vec![
            ("client_id", web.id.clone()),
            ("redirect_uri", redirect.clone()),
            ("scope", scope.to_string()),
            ("response_type", "code".to_string()),
            ("state", "s1".to_string()),
        ]
    };
    let mut br = Browser::new(&s);

    // Undeclared dependencies: an error back to the client, before any page.
    for bad in [
        format!("{portal_scope}[{GROUPS}]"),
        format!("{TRANSFER}[{GROUPS}]"),
        format!("{GROUPS}[{TRANSFER}]"),
    ] {
        let query = q(&bad);
        let pairs: Vec<(&str, &str)> = query.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let back = br.authorize(&pairs, &alice).await;
        let params = query_map(&back);
        assert_eq!(
            params.get("error").map(String::as_str),
            Some("invalid_scope"),
            "{bad}: {back}"
        );
        assert_eq!(params["state"], "s1");
    }

    // The consent page shows the declared dependency.
    let collection = uuid::Uuid::new_v4();
    let requested = format!(
        "openid {portal_scope} {TRANSFER}[*https://auth.globus.org/scopes/{collection}/data_access]"
    );
    let query = q(&requested);
    let pairs: Vec<(&str, &str)> = query.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let mut u = url::Url::parse(&format!("{}/v2/oauth2/authorize", s.url)).unwrap();
    u.query_pairs_mut().extend_pairs(&pairs);
    let page = br.get(u.as_str()).await.text().await.unwrap();
    let r = br.log_in(&page, &alice).await;
    assert_eq!(r.status(), 303);
    let consent_url = r.headers()["location"].to_str().unwrap().to_string();
    let page = br.get(&consent_url).await.text().await.unwrap();
    let portal_at = page.find(&portal_scope).expect("the portal scope is shown");
    assert!(
        page[portal_at..].contains(TRANSFER),
        "the dependency is shown under it"
    );

    let back = br.authorize(&pairs, &alice).await;
    let (st, t) = exchange(&s, &web, &back, &redirect).await;
    assert_eq!(st, 200, "{t}");
    let portal_token = token_for(&t, &portal.id)["access_token"].as_str().unwrap();
    let (st, list) = dependent(&s, &portal, portal_token, Some(TRANSFER)).await;
    assert_eq!(st, 200, "{list}");
    let transfer = list[0]["access_token"].as_str().unwrap();
    let (_, who) = s
        .oauth(
            "/v2/oauth2/token/introspect",
            &portal,
            &[("token", transfer)],
        )
        .await;
    assert_eq!(
        (who["active"].as_bool(), who["sub"].as_str()),
        (Some(true), Some(alice.id.as_str()))
    );
    // Nothing else: not groups, not the endpoint.
    for other in [GROUPS.to_string(), manage_scope(&s)] {
        let (st, b) = dependent(&s, &portal, portal_token, Some(&other)).await;
        assert_eq!(
            (st, b["error"].as_str()),
            (400, Some("invalid_scope")),
            "{other}: {b}"
        );
    }
}

// ---- 2. refresh rotation under a race ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parallel_refreshes_leave_no_survivor() {
    let s = TestServer::start().await;
    let app = s.app(ClientKind::Confidential).await;
    let alice = s.person("alice").await;
    let redirect = format!("{}/v2/web/auth-code", s.url);
    let q = [
        ("client_id", app.id.as_str()),
        ("redirect_uri", redirect.as_str()),
        (
            "scope",
            "openid urn:globus:auth:scope:transfer.api.globus.org:all",
        ),
        ("response_type", "code"),
        ("access_type", "offline"),
    ];
    let mut br = Browser::new(&s);
    let mut survivors = 0;
    for trial in 0..100 {
        let back = br.authorize(&q, &alice).await;
        let (st, t) = exchange(&s, &app, &back, &redirect).await;
        assert_eq!(st, 200, "{t}");
        let rt0 = t["refresh_token"].as_str().unwrap().to_string();
        let (a, b) = tokio::join!(refresh(&s, &app, &rt0), refresh(&s, &app, &rt0));
        let mut access: Vec<String> = all_tokens(&t)
            .iter()
            .map(|x| x["access_token"].as_str().unwrap().to_string())
            .collect();
        let mut fresh = vec![];
        for (st, body) in [a, b] {
            if st == 200 {
                access.push(body["access_token"].as_str().unwrap().to_string());
                fresh.push(body["refresh_token"].as_str().unwrap().to_string());
            } else {
                assert_eq!(body["error"], "invalid_grant", "{body}");
            }
        }
        let mut alive = false;
        for rt in &fresh {
            alive |= refresh(&s, &app, rt).await.0 == 200;
        }
        for at in &access {
            alive |= active(&s, &app, at).await;
        }
        if alive {
            survivors += 1;
            eprintln!("trial {trial}: a token of the family survived");
        }
    }
    println!("refresh race: {survivors} survivors in 100 trials");
    assert_eq!(survivors, 0);
}

// ---- 3. client registration from a template ----

async fn register(s: &TestServer, doc: Value) -> (u16, Value) {
    let r = s
        .http
        .post(format!("{}/v2/api/clients", s.url))
        .json(&json!({ "client": doc }))
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn a_template_instance_gets_only_what_the_template_allows() {
    let s = TestServer::start().await;
    // The phishing kit: a client named like Globus's web app that sends people to another host.
    let (st, b) = register(
        &s,
        json!({"template_id": CLI_TEMPLATE, "name": "Globus Web App",
            "redirect_uris": ["https://evil.example/cb"]}),
    )
    .await;
    assert_eq!(st, 400, "{b}");
    assert!(
        b["errors"][0]["detail"]
            .as_str()
            .unwrap()
            .contains("redirect"),
        "the error names the redirect URIs: {b}"
    );

    let (st, b) = register(
        &s,
        json!({"template_id": CLI_TEMPLATE, "name": "Globus Web App"}),
    )
    .await;
    assert_eq!(st, 200, "{b}");
    let c = &b["client"];
    assert_eq!(
        c["grant_types"],
        json!(["authorization_code", "refresh_token"])
    );
    assert!(!c["redirect_uris"].to_string().contains("evil"), "{c}");
    let cred = &b["included"]["client_credential"];
    let instance = App {
        id: cred["client"].as_str().unwrap().into(),
        secret: Some(cred["secret"].as_str().unwrap().into()),
    };
    let (st, body) = s
        .oauth(
            "/v2/oauth2/token",
            &instance,
            &[("grant_type", "client_credentials"), ("scope", "openid")],
        )
        .await;
    assert_eq!(
        (st.as_u16(), body["error"].as_str()),
        (400, Some("unauthorized_client")),
        "{body}"
    );

    // The consent page says which application asks, that it is not verified, and where it sends the person.
    let alice = s.person("alice").await;
    let redirect = format!("{}/v2/web/auth-code", s.url);
    let page = consent_page(&s, &instance, &alice, &redirect).await;
    assert!(page.contains("an instance of"), "{page}");
    assert!(page.contains("Globus CLI"), "{page}");
    assert!(page.contains("Globus Web App"), "its own name is shown too");
    assert!(page.contains("not verified"), "{page}");
    let origin = url::Url::parse(&s.url)
        .unwrap()
        .origin()
        .ascii_serialization();
    assert!(
        page.contains(&format!("sent to <strong>{origin}</strong>")),
        "{page}"
    );

    // A client the administrator registered is verified.
    let app = s.app(ClientKind::Confidential).await;
    let page = consent_page(&s, &app, &alice, "http://127.0.0.1:7777/cb").await;
    assert!(page.contains("verified by the administrator"), "{page}");
    assert!(!page.contains("not verified"), "{page}");
    assert!(
        page.contains("sent to <strong>http://127.0.0.1:7777</strong>"),
        "{page}"
    );
}

/// The consent page `who` sees for `app` after logging in.
async fn consent_page(s: &TestServer, app: &App, who: &Person, redirect: &str) -> String {
    let mut br = Browser::new(s);
    let mut u = url::Url::parse(&format!("{}/v2/oauth2/authorize", s.url)).unwrap();
    u.query_pairs_mut().extend_pairs([
        ("client_id", app.id.as_str()),
        ("redirect_uri", redirect),
        ("scope", "openid"),
        ("response_type", "code"),
    ]);
    let page = br.get(u.as_str()).await.text().await.unwrap();
    let r = br.log_in(&page, who).await;
    assert_eq!(r.status(), 303);
    let loc = r.headers()["location"].to_str().unwrap().to_string();
    br.get(&loc).await.text().await.unwrap()
}

// ---- 4. the browser side ----

fn authorize_url(s: &TestServer, app: &App, extra: &[(&str, &str)]) -> String {
    let mut u = url::Url::parse(&format!("{}/v2/oauth2/authorize", s.url)).unwrap();
    u.query_pairs_mut().extend_pairs([
        ("client_id", app.id.as_str()),
        ("redirect_uri", "http://127.0.0.1/cb"),
        ("scope", "openid"),
        ("response_type", "code"),
    ]);
    u.query_pairs_mut().extend_pairs(extra);
    u.to_string()
}

/// Login CSRF: a cross-site form post (no pre-login cookie, or another browser's) must not log anyone in.
#[tokio::test]
async fn the_login_form_is_bound_to_a_pre_login_cookie() {
    let s = TestServer::start().await;
    let app = s.app(ClientKind::Confidential).await;
    let mallory = s.person("mallory").await;
    let url = authorize_url(&s, &app, &[]);
    let request = url.split_once('?').unwrap().1.to_string();

    // The attacker's page posts the attacker's credentials into the victim's browser.
    let r = s
        .http
        .post(format!("{}/v2/web/login", s.url))
        .form(&[
            ("username", mallory.username.as_str()),
            ("password", mallory.password.as_str()),
            ("request", request.as_str()),
        ])
        .send()
        .await
        .unwrap();
    assert_ne!(r.status(), 303);
    assert!(
        r.headers()
            .get("set-cookie")
            .is_none_or(|c| !c.to_str().unwrap().starts_with("ferry_session="))
    );

    // Even with a token the attacker got from their own visit, the victim's browser lacks the cookie.
    let mut attacker = Browser::new(&s);
    let page = attacker.get(&url).await.text().await.unwrap();
    let mut victim = Browser::new(&s);
    victim.get(&url).await;
    let mut form = hidden_inputs(&page);
    form.push(("username".into(), mallory.username.clone()));
    form.push(("password".into(), mallory.password.clone()));
    let r = victim.post("/v2/web/login", &form).await;
    assert_ne!(r.status(), 303);
    assert!(!victim.has_cookie("ferry_session"));

    // The attacker's own browser, with its cookie and token, logs in.
    let r = attacker.log_in(&page, &mallory).await;
    assert_eq!(r.status(), 303);
    assert!(attacker.has_cookie("ferry_session"));
}

#[tokio::test]
async fn logout_takes_a_post_with_the_sessions_csrf_token() {
    let s = TestServer::start().await;
    let app = s.app(ClientKind::Confidential).await;
    let alice = s.person("alice").await;
    let mut br = Browser::new(&s);
    let url = authorize_url(&s, &app, &[]);
    let page = br.get(&url).await.text().await.unwrap();
    assert_eq!(br.log_in(&page, &alice).await.status(), 303);
    let logged_in = |r: &reqwest::Response| {
        r.status() == 303
            && r.headers()["location"]
                .to_str()
                .unwrap()
                .starts_with("/v2/web/consent")
    };

    // A GET (an <img> on another site) shows a form and changes nothing.
    let r = br.get("/v2/web/logout").await;
    assert_eq!(r.status(), 200);
    let page = r.text().await.unwrap();
    assert!(page.contains("method=\"post\""), "{page}");
    assert!(logged_in(&br.get(&url).await));
    // A POST without the token changes nothing either.
    let r = br.post("/v2/web/logout", &[]).await;
    assert_eq!(r.status(), 403);
    assert!(logged_in(&br.get(&url).await));
    // The form logs out.
    let r = br.post("/v2/web/logout", &hidden_inputs(&page)).await;
    assert_eq!(r.status(), 200);
    assert!(!br.has_cookie("ferry_session"));
    assert_eq!(br.get(&url).await.status(), 200, "the login page again");
}

#[tokio::test]
async fn hsts_on_every_response_over_tls_only() {
    let s = TestServer::start_with(|c| c.tls = true).await;
    let pem = std::fs::read(s.running.tls_ca.clone().unwrap()).unwrap();
    let http = reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(&pem).unwrap()])
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    for (m, path) in [
        (M::GET, "/jwk.json"),
        (M::GET, "/no/such/route"),
        (M::POST, "/v2/oauth2/token"),
        (M::GET, "/v2/oauth2/authorize"),
        (M::GET, "/v2/web/login?next=/"),
    ] {
        let r = http
            .request(m, format!("{}{path}", s.url))
            .send()
            .await
            .unwrap();
        let hsts = r.headers().get("strict-transport-security");
        assert!(
            hsts.is_some_and(|v| v.to_str().unwrap().starts_with("max-age=")),
            "{path}: {:?}",
            r.headers()
        );
    }
    let plain = TestServer::start().await;
    let r = plain
        .http
        .get(format!("{}/jwk.json", plain.url))
        .send()
        .await
        .unwrap();
    assert!(r.headers().get("strict-transport-security").is_none());
}

#[tokio::test]
async fn prompt_none_without_a_session_is_login_required() {
    let s = TestServer::start().await;
    let app = s.app(ClientKind::Confidential).await;
    let state = "a+b/c=%&d";
    let r = s
        .http
        .get(authorize_url(
            &s,
            &app,
            &[("prompt", "none"), ("state", state)],
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    let back = url::Url::parse(r.headers()["location"].to_str().unwrap()).unwrap();
    assert!(back.as_str().starts_with("http://127.0.0.1/cb?"));
    let q = query_map(&back);
    assert_eq!(q["error"], "login_required");
    assert_eq!(q["iss"], s.url);
    assert_eq!(q["state"], state);
}

#[tokio::test]
async fn auth_time_is_the_login_and_max_age_asks_again() {
    let s = TestServer::start().await;
    let app = s.app(ClientKind::Confidential).await;
    let alice = s.person("alice").await;
    let mut br = Browser::new(&s);
    // The clock keeps ticking between moves: the login happens within [before, after].
    let before = s.now();
    let back = br
        .authorize(
            &[
                ("client_id", &app.id),
                ("redirect_uri", "http://127.0.0.1/cb"),
                ("scope", "openid"),
                ("response_type", "code"),
            ],
            &alice,
        )
        .await;
    assert!(query_map(&back).contains_key("code"));
    let after = s.now();

    s.advance(100);
    // Within max_age the session counts; the id_token names the login's time.
    let q = [
        ("client_id", app.id.as_str()),
        ("redirect_uri", "http://127.0.0.1/cb"),
        ("scope", "openid"),
        ("response_type", "code"),
        ("max_age", "500"),
        ("nonce", "n-1"),
    ];
    let back = br.authorize(&q, &alice).await;
    let (st, t) = exchange(&s, &app, &back, "http://127.0.0.1/cb").await;
    assert_eq!(st, 200, "{t}");
    let c = claims(t["id_token"].as_str().unwrap());
    let auth_time = c["auth_time"].as_i64().unwrap();
    assert!((before..=after).contains(&auth_time), "{c}");
    assert!(c["iat"].as_i64().unwrap() >= auth_time + 100, "{c}");
    assert_eq!(c["nonce"], "n-1");

    // A session older than max_age: log in again.
    let r = br.get(&authorize_url(&s, &app, &[("max_age", "50")])).await;
    assert_eq!(r.status(), 200, "the login page, not the consent page");
    assert!(r.text().await.unwrap().contains("type=\"password\""));
    // prompt=none cannot show that page.
    let r = br
        .get(&authorize_url(
            &s,
            &app,
            &[("max_age", "50"), ("prompt", "none")],
        ))
        .await;
    assert_eq!(r.status(), 303);
    let back = url::Url::parse(r.headers()["location"].to_str().unwrap()).unwrap();
    assert_eq!(query_map(&back)["error"], "login_required");
}

#[tokio::test]
async fn redirect_uris_with_spaces_or_control_characters_are_refused() {
    let s = TestServer::start().await;
    let bad = [
        " https://app.example/cb",
        "https://app.example/cb ",
        "\thttps://app.example/cb",
        "https://app.example/cb\n",
        "https://app.example/c\u{0}b",
        "https://app.example/c b",
    ];
    for uri in bad {
        let r = s
            .running
            .auth
            .create_client("x", ClientKind::Confidential, vec![uri.to_string()], None)
            .await;
        assert!(r.is_err(), "{uri:?} was accepted");
    }
    // The same through the API, as an owner.
    let owner = s.app(ClientKind::Confidential).await;
    let token = s.access_token(&owner, "openid").await;
    for uri in bad {
        let (st, b) = s
            .call(
                M::POST,
                "/v2/api/clients",
                &token,
                Some(&json!({"client": {"name": "x", "redirect_uris": [uri]}})),
            )
            .await;
        assert_eq!(st, 400, "{uri:?}: {b}");
    }
}

#[tokio::test]
async fn a_person_revokes_a_consent_and_its_tokens_stop() {
    let s = TestServer::start().await;
    let app = s.app(ClientKind::Confidential).await;
    let alice = s.person("alice").await;
    let bob = s.person("bob").await;
    let redirect = format!("{}/v2/web/auth-code", s.url);
    let q = [
        ("client_id", app.id.as_str()),
        ("redirect_uri", redirect.as_str()),
        (
            "scope",
            "openid urn:globus:auth:scope:transfer.api.globus.org:all",
        ),
        ("response_type", "code"),
        ("access_type", "offline"),
    ];
    let back = Browser::new(&s).authorize(&q, &alice).await;
    let (_, t) = exchange(&s, &app, &back, &redirect).await;
    let back = Browser::new(&s).authorize(&q, &bob).await;
    let (_, tb) = exchange(&s, &app, &back, &redirect).await;
    let auth_token = t["access_token"].as_str().unwrap();
    let transfer = token_for(&t, "transfer.api.globus.org");

    let (st, list) = s
        .get(
            &format!("/v2/api/identities/{}/consents", alice.id),
            auth_token,
        )
        .await;
    assert_eq!(st, 200, "{list}");
    let consent = list["consents"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["scope_name"] == TRANSFER)
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let path = format!("/v2/api/identities/{}/consents/{consent}", alice.id);
    // Bob cannot revoke Alice's consent.
    let (st, _) = s
        .call(M::DELETE, &path, tb["access_token"].as_str().unwrap(), None)
        .await;
    assert!(st == 403 || st == 404, "{st}");
    assert!(active(&s, &app, transfer["access_token"].as_str().unwrap()).await);

    let (st, b) = s.call(M::DELETE, &path, auth_token, None).await;
    assert_eq!(st, 200, "{b}");
    assert!(!active(&s, &app, transfer["access_token"].as_str().unwrap()).await);
    let (st, b) = refresh(&s, &app, transfer["refresh_token"].as_str().unwrap()).await;
    assert_eq!((st, b["error"].as_str()), (400, Some("invalid_grant")));
    // Bob's grant is untouched.
    assert!(
        active(
            &s,
            &app,
            token_for(&tb, "transfer.api.globus.org")["access_token"]
                .as_str()
                .unwrap()
        )
        .await
    );
}

#[tokio::test]
async fn introspection_reports_the_session() {
    let s = TestServer::start().await;
    let app = s.app(ClientKind::Confidential).await;
    let alice = s.person("alice").await;
    let before = s.now();
    let q = [
        ("client_id", app.id.as_str()),
        ("redirect_uri", "http://127.0.0.1/cb"),
        ("scope", "openid profile"),
        ("response_type", "code"),
        ("access_type", "offline"),
    ];
    let back = Browser::new(&s).authorize(&q, &alice).await;
    let (_, t) = exchange(&s, &app, &back, "http://127.0.0.1/cb").await;
    let after = s.now();
    s.advance(30);
    let (_, r) = refresh(&s, &app, t["refresh_token"].as_str().unwrap()).await;
    for at in [
        t["access_token"].as_str().unwrap(),
        r["access_token"].as_str().unwrap(),
    ] {
        let (_, b) = s
            .oauth(
                "/v2/oauth2/token/introspect",
                &app,
                &[("token", at), ("include", "session_info")],
            )
            .await;
        let info = &b["session_info"];
        assert!(
            uuid::Uuid::parse_str(info["session_id"].as_str().unwrap_or("")).is_ok(),
            "{b}"
        );
        let entry = &info["authentications"][&alice.id];
        let auth_time = entry["auth_time"].as_i64().unwrap_or(0);
        assert!((before..=after).contains(&auth_time), "{b}");
        assert!(entry["idp"].as_str().is_some(), "{b}");
    }
    // An application's own token has no login session.
    let cc = s.access_token(&app, "openid").await;
    let (_, b) = s
        .oauth(
            "/v2/oauth2/token/introspect",
            &app,
            &[("token", &cc), ("include", "session_info")],
        )
        .await;
    assert_eq!(b["session_info"]["authentications"], json!({}), "{b}");
}

// ---- 5. authentication policies ----

#[tokio::test]
async fn policies_are_visible_to_their_managers_only() {
    let s = TestServer::start().await;
    let owner = s.app(ClientKind::Confidential).await;
    let stranger = s.app(ClientKind::Confidential).await;
    let mine = s.access_token(&owner, "openid").await;
    let theirs = s.access_token(&stranger, "openid").await;
    let (st, p) = s
        .call(
            M::POST,
            "/v2/api/policies",
            &mine,
            Some(
                &json!({"policy": {"display_name": "unis", "description": "",
                "domain_constraints_include": ["uni.edu"]}}),
            ),
        )
        .await;
    assert_eq!(st, 200, "{p}");
    let id = p["policy"]["id"].as_str().unwrap();

    let (st, list) = s.get("/v2/api/policies", &mine).await;
    assert_eq!(st, 200);
    assert_eq!(list["policies"].as_array().unwrap().len(), 1);
    let (st, _) = s.get(&format!("/v2/api/policies/{id}"), &mine).await;
    assert_eq!(st, 200);

    let (st, list) = s.get("/v2/api/policies", &theirs).await;
    assert_eq!(st, 200);
    assert_eq!(list["policies"], json!([]), "{list}");
    let (st, b) = s.get(&format!("/v2/api/policies/{id}"), &theirs).await;
    assert!(st == 403 || st == 404, "{st} {b}");
    assert!(!b.to_string().contains("uni.edu"), "{b}");
}

// ---- 6. password hashing does not starve the server ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_login_flood_does_not_starve_other_requests() {
    let s = Arc::new(TestServer::start().await);
    let app = s.app(ClientKind::Confidential).await;
    let mut br = Browser::new(&s);
    let page = br.get("/v2/web/login?next=/").await.text().await.unwrap();
    let form = hidden_inputs(&page);
    let cookie = br.cookie_header();
    let done = Arc::new(AtomicUsize::new(0));
    let first = Arc::new(tokio::sync::Notify::new());
    let mut tasks = vec![];
    for i in 0..50 {
        let (s, done, first, cookie) = (s.clone(), done.clone(), first.clone(), cookie.clone());
        let mut form = form.clone();
        form.push(("username".into(), format!("nobody{i}")));
        form.push(("password".into(), "wrong-password".into()));
        tasks.push(tokio::spawn(async move {
            let r = s
                .http
                .post(format!("{}/v2/web/login", s.url))
                .header("cookie", cookie)
                .form(&form)
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 401);
            done.fetch_add(1, Ordering::SeqCst);
            first.notify_one();
        }));
    }
    // Once the flood is being worked on, a token request must not wait for it to drain.
    first.notified().await;
    let t = s.client_token(&app, "openid").await;
    assert!(t["access_token"].is_string());
    let finished = done.load(Ordering::SeqCst);
    println!("login flood: {finished} of 50 wrong logins had finished when the token came back");
    assert!(
        finished <= 25,
        "the token waited for {finished} password checks"
    );
    for t in tasks {
        t.await.unwrap();
    }
}

// ---- 4 (last part). per-client grant types and scopes ----

/// AS-15: a client may use only its registered grant types and be issued only its registered scopes. (The
/// registration API for this is new, so before the fix this test did not compile: every client could use
/// every grant and scope.)
#[tokio::test]
async fn per_client_grant_types_and_scopes_are_enforced() {
    let s = TestServer::start().await;
    let auth = &s.running.auth;
    let batch = auth
        .create_client_with(NewClient {
            grant_types: Some(vec!["client_credentials".into()]),
            allowed_scopes: Some(vec![TRANSFER.into()]),
            ..NewClient::by_administrator(
                "batch",
                ClientKind::Confidential,
                vec!["http://127.0.0.1/cb".into()],
            )
        })
        .await
        .unwrap();
    let app = App {
        id: batch.client.id.to_string(),
        secret: batch.secret.clone(),
    };
    assert_eq!(s.client_token(&app, TRANSFER).await["scope"], TRANSFER);
    for scope in ["openid", &format!("{TRANSFER} {GROUPS}")] {
        let (st, b) = s
            .oauth(
                "/v2/oauth2/token",
                &app,
                &[("grant_type", "client_credentials"), ("scope", scope)],
            )
            .await;
        assert_eq!(
            (st.as_u16(), b["error"].as_str()),
            (400, Some("invalid_scope")),
            "{b}"
        );
    }
    for grant in [
        vec![("grant_type", "authorization_code"), ("code", "x")],
        vec![("grant_type", "refresh_token"), ("refresh_token", "x")],
        vec![("grant_type", DEPENDENT), ("token", "x")],
    ] {
        let (st, b) = s.oauth("/v2/oauth2/token", &app, &grant).await;
        assert_eq!(
            (st.as_u16(), b["error"].as_str()),
            (400, Some("unauthorized_client")),
            "{grant:?}: {b}"
        );
    }
    let r = s
        .http
        .get(authorize_url(&s, &app, &[]))
        .send()
        .await
        .unwrap();
    let back = url::Url::parse(r.headers()["location"].to_str().unwrap()).unwrap();
    assert_eq!(query_map(&back)["error"], "unauthorized_client");

    // A web client limited to openid: /authorize refuses more, with the error sent back.
    let web = auth
        .create_client_with(NewClient {
            allowed_scopes: Some(vec!["openid".into()]),
            ..NewClient::by_administrator(
                "web",
                ClientKind::Confidential,
                vec!["http://127.0.0.1/cb".into()],
            )
        })
        .await
        .unwrap();
    let web = App {
        id: web.client.id.to_string(),
        secret: web.secret,
    };
    let mut u = url::Url::parse(&format!("{}/v2/oauth2/authorize", s.url)).unwrap();
    let scope = format!("openid {TRANSFER}");
    u.query_pairs_mut().extend_pairs([
        ("client_id", web.id.as_str()),
        ("redirect_uri", "http://127.0.0.1/cb"),
        ("scope", scope.as_str()),
        ("response_type", "code"),
    ]);
    let r = s.http.get(u).send().await.unwrap();
    let back = url::Url::parse(r.headers()["location"].to_str().unwrap()).unwrap();
    assert_eq!(query_map(&back)["error"], "invalid_scope");

    // Registrations that cannot work are refused, naming what is wrong.
    for (kind, grants, scopes) in [
        (ClientKind::Native, Some(vec!["client_credentials"]), None),
        (ClientKind::Confidential, Some(vec!["password"]), None),
        (ClientKind::Confidential, None, Some(vec!["urn:nope"])),
    ] {
        let r = auth
            .create_client_with(NewClient {
                grant_types: grants.map(|g| g.into_iter().map(str::to_string).collect()),
                allowed_scopes: scopes.map(|g| g.into_iter().map(str::to_string).collect()),
                ..NewClient::by_administrator("x", kind, vec![])
            })
            .await;
        assert!(r.is_err(), "{kind:?} {r:?}");
    }
}
