//! A typed HTTP client for Ferry's APIs, used by the `ferry` command and by the integration tests.

use std::time::Duration;

use ferry_proto::auth::{IdentitiesResponse, IdentityDoc, TokenResponse};
use ferry_proto::groups::{GroupCreate, GroupDoc};
pub use reqwest::Method;
use reqwest::RequestBuilder;
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
    /// TLS refused the server's certificate (e.g. one signed by a CA this client was not told to trust).
    #[error("the certificate of {url} is not trusted: {reason}")]
    Untrusted { url: String, reason: String },
    #[error("unexpected answer from the server: {0}")]
    Decode(String),
}

pub type Result<T> = std::result::Result<T, ClientError>;

/// A request that got no answer, with the whole chain of causes (reqwest's own message omits the TLS reason).
fn transport(url: &str, e: &reqwest::Error) -> ClientError {
    let mut reason = e.to_string();
    let mut cause = std::error::Error::source(e);
    let mut certificate = false;
    while let Some(c) = cause {
        let text = c.to_string();
        // rustls's words for a certificate it refused (`invalid peer certificate: UnknownIssuer`, …).
        certificate |= text.contains("invalid peer certificate");
        if !reason.contains(&text) {
            reason = format!("{reason}: {text}");
        }
        cause = c.source();
    }
    if certificate {
        ClientError::Untrusted {
            url: url.to_string(),
            reason,
        }
    } else {
        ClientError::Transport {
            url: url.to_string(),
            reason,
        }
    }
}

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

    /// The same client (token, trusted CAs) for another server: a collection's files are at its endpoint.
    pub fn at(&self, base_url: &str) -> Self {
        Self {
            base: base_url.trim_end_matches('/').to_string(),
            ..self.clone()
        }
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
        let resp = rb.send().await.map_err(|e| transport(&self.base, &e))?;
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

    /// A request with this client's token for a streamed body (file data): without the overall time limit of
    /// the API calls, since a large file may take hours; the caller watches for stalls itself.
    pub fn streaming(&self, method: Method, path: &str) -> RequestBuilder {
        self.request(method, path)
            .timeout(Duration::from_secs(30 * 24 * 3600))
    }

    /// Sends a request built by [`Self::streaming`]: the response with its body unread, or the server's error.
    pub async fn send_streaming(&self, rb: RequestBuilder) -> Result<reqwest::Response> {
        let resp = rb.send().await.map_err(|e| transport(&self.base, &e))?;
        let status = resp.status().as_u16();
        if status >= 400 {
            let body = resp.text().await.unwrap_or_default();
            return Err(api_error(status, &body));
        }
        Ok(resp)
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

    /// Any JSON API call; the parsed body of a successful answer.
    pub async fn json(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<&Value>,
    ) -> Result<Value> {
        let mut rb = self.request(method, path).query(query);
        if let Some(b) = body {
            rb = rb.json(b);
        }
        self.send(rb).await
    }

    /// `POST /v2/ferry/endpoints` at a hub, with a person's Auth token.
    pub async fn register_endpoint(
        &self,
        req: &ferry_proto::sites::EndpointRegistration,
    ) -> Result<ferry_proto::sites::RegisteredEndpoint> {
        self.send(self.request(Method::POST, "/v2/ferry/endpoints").json(req))
            .await
    }

    /// `DELETE /v2/ferry/endpoints/{id}` at a hub, as the endpoint itself.
    pub async fn leave_hub(&self, id: uuid::Uuid, secret: &str) -> Result<()> {
        let rb = self
            .http
            .delete(format!("{}/v2/ferry/endpoints/{id}", self.base))
            .basic_auth(id, Some(secret));
        let resp = rb.send().await.map_err(|e| transport(&self.base, &e))?;
        let status = resp.status().as_u16();
        if status >= 400 {
            let body = resp.text().await.unwrap_or_default();
            return Err(api_error(status, &body));
        }
        Ok(())
    }

    /// A manager API (`/api`) call: the documents in the result envelope's `data`.
    pub async fn manager(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<&Value>,
    ) -> Result<Vec<Value>> {
        let v = self
            .json(method, &format!("/api{path}"), query, body)
            .await?;
        match v.get("data") {
            Some(Value::Array(docs)) => Ok(docs.clone()),
            _ => Err(ClientError::Decode(format!(
                "a manager API answer without data: {v}"
            ))),
        }
    }

    /// Every document of a paged manager API list, following `marker` while `has_next_page`.
    pub async fn manager_list(&self, path: &str, query: &[(&str, String)]) -> Result<Vec<Value>> {
        let mut out = Vec::new();
        let mut marker: Option<String> = None;
        loop {
            let mut q = query.to_vec();
            if let Some(m) = &marker {
                q.push(("marker", m.clone()));
            }
            let v = self
                .json(Method::GET, &format!("/api{path}"), &q, None)
                .await?;
            out.extend(v["data"].as_array().cloned().unwrap_or_default());
            match (v["has_next_page"].as_bool(), v["marker"].as_str()) {
                (Some(true), Some(m)) => marker = Some(m.to_string()),
                _ => return Ok(out),
            }
        }
    }

    /// Registers a per-installation confidential client from a template, as `globus login` does (no token needed).
    pub async fn register_client(&self, template: &str, name: &str) -> Result<(String, String)> {
        let body = serde_json::json!({"client": {"template_id": template, "name": name}});
        let v: Value = self
            .send(
                self.http
                    .post(format!("{}/v2/api/clients", self.base))
                    .json(&body),
            )
            .await?;
        let cred = &v["included"]["client_credential"];
        match (cred["client"].as_str(), cred["secret"].as_str()) {
            (Some(id), Some(secret)) => Ok((id.to_string(), secret.to_string())),
            _ => Err(ClientError::Decode(format!("no client credential in {v}"))),
        }
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
