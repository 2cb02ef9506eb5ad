//! A typed HTTP client for Ferry's APIs, used by the `ferry` command and by the integration tests.

use std::time::Duration;

use ferry_proto::auth::{IdentitiesResponse, IdentityDoc, TokenResponse};
use ferry_proto::groups::{GroupCreate, GroupDoc};
use reqwest::{Method, RequestBuilder};
use serde::de::DeserializeOwned;
use serde_json::Value;
use uuid::Uuid;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The server answered with an error; `code` and `message` come from its error body.
    #[error("{status} {code}: {message}")]
    Api {
        status: u16,
        code: String,
        message: String,
    },
    #[error("cannot reach {url}: {reason}")]
    Transport { url: String, reason: String },
    #[error("unexpected answer from the server: {0}")]
    Decode(String),
}

pub type Result<T> = std::result::Result<T, ClientError>;

#[derive(Clone)]
pub struct FerryClient {
    base: String,
    http: reqwest::Client,
    token: Option<String>,
}

/// Pulls the code and message out of any of Ferry's error dialects.
fn api_error(status: u16, body: &str) -> ClientError {
    let v: Value = serde_json::from_str(body).unwrap_or(Value::Null);
    let pick = |keys: &[&str]| {
        keys.iter()
            .find_map(|k| v.get(*k).and_then(Value::as_str))
            .map(str::to_string)
    };
    let first = v.get("errors").and_then(|e| e.get(0));
    let code = pick(&["code", "error"])
        .or_else(|| {
            first
                .and_then(|e| e.get("code"))
                .and_then(Value::as_str)
                .map(str::to_string)
        })
        .unwrap_or_else(|| "Error".into());
    let message = pick(&["message", "error_description", "detail"])
        .or_else(|| {
            first
                .and_then(|e| e.get("detail"))
                .and_then(Value::as_str)
                .map(str::to_string)
        })
        .unwrap_or_else(|| body.chars().take(200).collect());
    ClientError::Api {
        status,
        code,
        message,
    }
}

impl FerryClient {
    pub fn new(base_url: &str) -> Result<Self> {
        Self::with_ca(base_url, None)
    }

    /// A client that also trusts the CA certificate in `ca_pem` (Ferry's self-signed TLS).
    pub fn with_ca(base_url: &str, ca_pem: Option<&[u8]>) -> Result<Self> {
        let mut b = reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .redirect(reqwest::redirect::Policy::none());
        if let Some(pem) = ca_pem {
            let cert = reqwest::Certificate::from_pem(pem)
                .map_err(|e| ClientError::Decode(e.to_string()))?;
            b = b.add_root_certificate(cert);
        }
        let http = b.build().map_err(|e| ClientError::Decode(e.to_string()))?;
        Ok(Self {
            base: base_url.trim_end_matches('/').to_string(),
            http,
            token: None,
        })
    }

    pub fn base_url(&self) -> &str {
        &self.base
    }

    pub fn with_token(&self, token: &str) -> Self {
        Self {
            token: Some(token.to_string()),
            ..self.clone()
        }
    }

    fn request(&self, method: Method, path: &str) -> RequestBuilder {
        let rb = self.http.request(method, format!("{}{path}", self.base));
        match &self.token {
            Some(t) => rb.bearer_auth(t),
            None => rb,
        }
    }

    async fn send<T: DeserializeOwned>(&self, rb: RequestBuilder) -> Result<T> {
        let resp = rb.send().await.map_err(|e| ClientError::Transport {
            url: self.base.clone(),
            reason: e.to_string(),
        })?;
        let status = resp.status().as_u16();
        let body = resp
            .text()
            .await
            .map_err(|e| ClientError::Decode(e.to_string()))?;
        if status >= 400 {
            return Err(api_error(status, &body));
        }
        serde_json::from_str(&body).map_err(|e| {
            ClientError::Decode(format!(
                "{e}: {}",
                body.chars().take(200).collect::<String>()
            ))
        })
    }

    /// `client_credentials` grant with HTTP Basic authentication.
    pub async fn client_credentials(
        &self,
        id: &str,
        secret: &str,
        scopes: &str,
    ) -> Result<TokenResponse> {
        let rb = self
            .http
            .post(format!("{}/v2/oauth2/token", self.base))
            .basic_auth(id, Some(secret))
            .form(&[("grant_type", "client_credentials"), ("scope", scopes)]);
        self.send(rb).await
    }

    /// Any form post to an OAuth2 endpoint, authenticated as a confidential client.
    pub async fn oauth_form(
        &self,
        path: &str,
        id: &str,
        secret: &str,
        form: &[(&str, &str)],
    ) -> Result<Value> {
        let rb = self
            .http
            .post(format!("{}{path}", self.base))
            .basic_auth(id, Some(secret))
            .form(form);
        self.send(rb).await
    }

    pub async fn identities_by_username(&self, usernames: &[&str]) -> Result<Vec<IdentityDoc>> {
        let rb = self
            .request(Method::GET, "/v2/api/identities")
            .query(&[("usernames", usernames.join(","))]);
        Ok(self.send::<IdentitiesResponse>(rb).await?.identities)
    }

    pub async fn userinfo(&self) -> Result<Value> {
        self.send(self.request(Method::GET, "/v2/oauth2/userinfo"))
            .await
    }

    pub async fn create_group(&self, req: &GroupCreate) -> Result<GroupDoc> {
        self.send(self.request(Method::POST, "/v2/groups").json(req))
            .await
    }

    pub async fn my_groups(&self) -> Result<Vec<GroupDoc>> {
        self.send(self.request(Method::GET, "/v2/groups/my_groups"))
            .await
    }

    pub async fn get_group(&self, id: Uuid) -> Result<GroupDoc> {
        let rb = self
            .request(Method::GET, &format!("/v2/groups/{id}"))
            .query(&[("include", "memberships")]);
        self.send(rb).await
    }

    pub async fn delete_group(&self, id: Uuid) -> Result<GroupDoc> {
        self.send(self.request(Method::DELETE, &format!("/v2/groups/{id}")))
            .await
    }

    /// Batch membership action, e.g. `{"add": [{"identity_id": …, "role": "member"}]}`.
    pub async fn group_batch(&self, id: Uuid, actions: &Value) -> Result<Value> {
        self.send(
            self.request(Method::POST, &format!("/v2/groups/{id}"))
                .json(actions),
        )
        .await
    }
}
