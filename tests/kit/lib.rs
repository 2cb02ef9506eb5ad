//! The test kit: a real Ferry server on 127.0.0.1:0 with its own data directory, and the small HTTP
//! helpers the integration tests share (a browser that logs in and consents, form posts, PKCE pairs).

use std::collections::HashMap;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use std::sync::Arc;

use ferry_core::{ClientKind, ManualClock};
use ferry_server::{Config, Running, TestHooks};
use reqwest::StatusCode;
use serde_json::Value;

pub use ferry_server;

pub mod data;
pub mod endpoint;
pub mod mail;

pub struct TestServer {
    pub running: Running,
    /// The server's clock: tests move it instead of waiting for something to expire.
    pub clock: Arc<ManualClock>,
    pub url: String,
    pub http: reqwest::Client,
    _dir: tempfile::TempDir,
}

pub struct Person {
    pub id: String,
    pub username: String,
    pub password: String,
}

pub struct App {
    pub id: String,
    pub secret: Option<String>,
}

impl TestServer {
    pub async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    /// Starts a server with a configuration adjusted by `tweak` (short lifetimes, TLS, …).
    pub async fn start_with(tweak: impl FnOnce(&mut Config)) -> Self {
        Self::start_hooked(tweak, TestHooks::default()).await
    }

    /// Starts a server with a configuration adjusted by `tweak` and test hooks (fault injection); the clock is
    /// always the kit's own movable one.
    pub async fn start_hooked(tweak: impl FnOnce(&mut Config), hooks: TestHooks) -> Self {
        Self::start_clocked(ManualClock::new(), tweak, hooks).await
    }

    /// Starts a server on a clock another server shares (a hub and its endpoints see the same time).
    pub async fn start_clocked(
        clock: Arc<ManualClock>,
        tweak: impl FnOnce(&mut Config),
        hooks: TestHooks,
    ) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut cfg = Config {
            listen: "127.0.0.1:0".parse().unwrap(),
            data_dir: dir.path().join("data"),
            ..Config::default()
        };
        tweak(&mut cfg);
        let hooks = TestHooks {
            clock: Some(clock.clone()),
            ..hooks
        };
        let running = ferry_server::start_with_hooks(cfg, hooks)
            .await
            .expect("server starts");
        let url = running.base_url.clone();
        Self {
            running,
            clock,
            url,
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            _dir: dir,
        }
    }

    /// The default storage gateway and mapped collection of a server that holds storage (not a hub).
    pub fn defaults(&self) -> &ferry_server::Defaults {
        self.running
            .defaults
            .as_ref()
            .expect("this server has default storage")
    }

    /// Moves the server's clock forward.
    pub fn advance(&self, secs: i64) {
        self.clock.advance(secs);
    }

    /// The server's time now (unix seconds).
    pub fn now(&self) -> i64 {
        use ferry_core::Clock;
        self.clock.now()
    }

    pub fn data_dir(&self) -> std::path::PathBuf {
        self._dir.path().join("data")
    }

    pub async fn person(&self, name: &str) -> Person {
        let c = self
            .running
            .auth
            .create_person(
                name,
                None,
                Some(&format!("{name}@example.org")),
                Some("password-of-test"),
            )
            .await
            .expect("person created");
        Person {
            id: c.identity.id.to_string(),
            username: c.identity.username,
            password: "password-of-test".into(),
        }
    }

    pub async fn app(&self, kind: ClientKind) -> App {
        let c = self
            .running
            .auth
            .create_client(
                "test app",
                kind,
                vec![
                    format!("{}/v2/web/auth-code", self.url),
                    "http://127.0.0.1/cb".into(),
                ],
                None,
            )
            .await
            .expect("client created");
        App {
            id: c.client.id.to_string(),
            secret: c.secret,
        }
    }

    /// POSTs a form to an OAuth2 endpoint, authenticating as `app` (Basic for confidential, client_id in the
    /// form for native clients). Returns status and JSON body.
    pub async fn oauth(&self, path: &str, app: &App, form: &[(&str, &str)]) -> (StatusCode, Value) {
        let mut form: Vec<(&str, &str)> = form.to_vec();
        let mut rb = self.http.post(format!("{}{path}", self.url));
        match &app.secret {
            Some(s) => rb = rb.basic_auth(&app.id, Some(s)),
            None => form.push(("client_id", &app.id)),
        }
        let resp = rb.form(&form).send().await.expect("request sent");
        let status = resp.status();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    pub async fn get(&self, path: &str, token: &str) -> (StatusCode, Value) {
        let resp = self
            .http
            .get(format!("{}{path}", self.url))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        let status = resp.status();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    /// Any JSON API call with a bearer token; returns status and JSON body (Null when the body is not JSON).
    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        token: &str,
        body: Option<&Value>,
    ) -> (u16, Value) {
        let mut rb = self
            .http
            .request(method, format!("{}{path}", self.url))
            .bearer_auth(token);
        if let Some(b) = body {
            rb = rb.json(b);
        }
        let r = rb.send().await.expect("request sent");
        let st = r.status().as_u16();
        (st, r.json().await.unwrap_or(Value::Null))
    }

    /// The access token of a client-credentials grant for `scope`.
    pub async fn access_token(&self, app: &App, scope: &str) -> String {
        self.client_token(app, scope).await["access_token"]
            .as_str()
            .expect("an access token")
            .to_string()
    }

    /// The administrator's confidential client, as the first start created it.
    pub fn admin_app(&self) -> App {
        let text = std::fs::read_to_string(self.data_dir().join("admin-credentials.json"))
            .expect("admin credentials");
        let v: Value = serde_json::from_str(&text).expect("credentials JSON");
        App {
            id: v["client_id"].as_str().unwrap().to_string(),
            secret: v["client_secret"].as_str().map(str::to_string),
        }
    }

    pub async fn client_token(&self, app: &App, scope: &str) -> Value {
        let (status, body) = self
            .oauth(
                "/v2/oauth2/token",
                app,
                &[("grant_type", "client_credentials"), ("scope", scope)],
            )
            .await;
        assert_eq!(status, 200, "{body}");
        body
    }

    /// Logs `who` in through `app` (authorization code, offline access) for `scope`; the token response.
    pub async fn login(&self, app: &App, who: &Person, scope: &str) -> Value {
        let redirect = format!("{}/v2/web/auth-code", self.url);
        let back = self
            .browser_authorize(
                &[
                    ("client_id", app.id.as_str()),
                    ("redirect_uri", &redirect),
                    ("scope", scope),
                    ("response_type", "code"),
                    ("access_type", "offline"),
                ],
                who,
            )
            .await
            .expect("authorized");
        let code = query_map(&back)["code"].clone();
        let (st, t) = self
            .oauth(
                "/v2/oauth2/token",
                app,
                &[
                    ("grant_type", "authorization_code"),
                    ("code", &code),
                    ("redirect_uri", &redirect),
                ],
            )
            .await;
        assert_eq!(st, 200, "{t}");
        t
    }

    /// Plays a person's browser: opens the authorize URL, logs in, allows, and returns where the server
    /// finally redirected (the redirect URI with `code` or `error`).
    pub async fn browser_authorize(
        &self,
        query: &[(&str, &str)],
        who: &Person,
    ) -> Result<url::Url, String> {
        let mut authorize = url::Url::parse(&format!("{}/v2/oauth2/authorize", self.url)).unwrap();
        authorize.query_pairs_mut().extend_pairs(query);
        let resp = self.http.get(authorize.clone()).send().await.unwrap();
        if resp.status().is_redirection() {
            return Ok(location(&resp));
        }
        if resp.status() != 200 {
            return Err(format!("authorize answered {}", resp.status()));
        }
        // The login form's anti-forgery token is bound to the pre-login cookie set with it.
        let prelogin = first_cookie(&resp).unwrap_or_default();
        let page = resp.text().await.unwrap();
        let request = hidden(&page, "request").ok_or("no login form")?;
        let csrf = hidden(&page, "csrf").unwrap_or_default();
        let resp = self
            .http
            .post(format!("{}/v2/web/login", self.url))
            .header("cookie", prelogin)
            .form(&[
                ("username", who.username.as_str()),
                ("password", who.password.as_str()),
                ("request", &request),
                ("csrf", &csrf),
            ])
            .send()
            .await
            .unwrap();
        if resp.status() != StatusCode::SEE_OTHER {
            return Err(format!("login answered {}", resp.status()));
        }
        let cookie = first_cookie(&resp).ok_or("no session cookie")?;
        let consent_url = location_from(&self.url, &resp);
        let page = self
            .http
            .get(consent_url)
            .header("cookie", &cookie)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let request = hidden(&page, "request").ok_or("no consent form")?;
        let csrf = hidden(&page, "csrf").ok_or("no csrf field")?;
        let resp = self
            .http
            .post(format!("{}/v2/web/consent", self.url))
            .header("cookie", &cookie)
            .form(&[
                ("request", request.as_str()),
                ("csrf", csrf.as_str()),
                ("decision", "allow"),
            ])
            .send()
            .await
            .unwrap();
        if resp.status() != StatusCode::SEE_OTHER {
            return Err(format!("consent answered {}", resp.status()));
        }
        Ok(location(&resp))
    }
}

impl TestServer {
    /// Signs `who` in through the login page, as a browser; the session's cookie (`name=value`).
    pub async fn browser_session(&self, who: &Person) -> String {
        let r = self
            .http
            .get(format!("{}/v2/web/login?next=/", self.url))
            .send()
            .await
            .unwrap();
        let prelogin = first_cookie(&r).expect("a pre-login cookie");
        let page = r.text().await.unwrap();
        let form = [
            ("username", who.username.as_str()),
            ("password", who.password.as_str()),
            ("next", "/"),
            ("csrf", &hidden(&page, "csrf").expect("a login form")),
        ];
        let url = format!("{}/v2/web/login", self.url);
        let r = self.http.post(url).header("cookie", prelogin).form(&form);
        let r = r.send().await.unwrap();
        assert_eq!(r.status(), StatusCode::SEE_OTHER, "signed in");
        first_cookie(&r).expect("a session cookie")
    }
}

/// `name=value` of the first cookie a response sets.
fn first_cookie(resp: &reqwest::Response) -> Option<String> {
    resp.headers()
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(str::to_string)
}

fn location(resp: &reqwest::Response) -> url::Url {
    url::Url::parse(resp.headers()["location"].to_str().unwrap()).unwrap()
}

fn location_from(base: &str, resp: &reqwest::Response) -> url::Url {
    url::Url::parse(base)
        .unwrap()
        .join(resp.headers()["location"].to_str().unwrap())
        .unwrap()
}

/// The value of a hidden input, HTML-unescaped.
pub fn hidden(page: &str, name: &str) -> Option<String> {
    let marker = format!("name=\"{name}\" value=\"");
    let start = page.find(&marker)? + marker.len();
    let end = start + page[start..].find('"')?;
    Some(
        page[start..end]
            .replace("&quot;", "\"")
            .replace("&#39;", "'")
            .replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&amp;", "&"),
    )
}

pub fn query_map(u: &url::Url) -> HashMap<String, String> {
    u.query_pairs()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

/// A PKCE verifier and its S256 challenge.
pub fn pkce() -> (String, String) {
    let mut raw = [0u8; 32];
    aws_lc_rs::rand::fill(&mut raw).unwrap();
    let verifier = URL_SAFE_NO_PAD.encode(raw);
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, verifier.as_bytes());
    (verifier, URL_SAFE_NO_PAD.encode(digest.as_ref()))
}

/// `len` random bytes.
pub fn random(len: usize) -> Vec<u8> {
    let mut v = vec![0u8; len];
    aws_lc_rs::rand::fill(&mut v).expect("random bytes");
    v
}

/// Every name in `dir`, hidden temporary files too, sorted.
pub fn names(dir: &std::path::Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .expect("a readable folder")
        .map(|e| {
            e.expect("an entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    v.sort();
    v
}
