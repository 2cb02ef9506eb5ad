//! Which credentials a command that goes through Ferry's APIs uses, and its tokens.
//!
//! In order: `--client-id/--client-secret` (or `FERRY_CLIENT_ID/FERRY_CLIENT_SECRET`): an application's client
//! credentials; else the session `ferry login` stored; else the administrator's credentials file in the data
//! directory (on the server host). Tokens are per resource server, as Ferry issues them. A login session's
//! refresh tokens rotate at every use, so the new one is saved before the command goes on.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use ferry_client::FerryClient;
use ferry_core::scope::{
    AUTH_RS, TRANSFER_ALL, TRANSFER_RS, VIEW_IDENTITY_SET, collection_scope,
    manage_collections_scope,
};
use ferry_server::AdminCredentials;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use crate::Global;

/// The scopes a login asks for besides the endpoint's: identity, Transfer and Groups.
pub const AUTH_SCOPES: &str =
    "openid profile email urn:globus:auth:scope:auth.globus.org:view_identity_set";

#[derive(clap::Args, Clone, Default)]
pub struct Connection {
    /// The server's URL [default: the login session's, or the administrator's credentials file's].
    #[arg(long, env = "FERRY_URL")]
    pub url: Option<String>,
    /// Act as this application (client credentials) instead of the stored login.
    #[arg(long, env = "FERRY_CLIENT_ID", requires = "client_secret")]
    pub client_id: Option<String>,
    /// Its secret (base64url: it may begin with '-', which is taken as the value, not an option).
    #[arg(
        long,
        env = "FERRY_CLIENT_SECRET",
        hide_env_values = true,
        allow_hyphen_values = true
    )]
    pub client_secret: Option<String>,
    /// A CA certificate to trust (a server with a self-signed certificate, e.g. the <data dir>/tls/ca.pem that
    /// `ferry serve --tls` prints) [default: GLOBUS_SDK_VERIFY_SSL when it names a file, the login's CA, or
    /// <data dir>/tls/ca.pem when it exists].
    #[arg(long, visible_alias = "ca", env = "FERRY_CA_FILE")]
    pub ca_file: Option<PathBuf>,
}

/// One token of a stored login.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StoredToken {
    pub access_token: String,
    pub refresh_token: Option<String>,
    /// Unix seconds.
    pub expires_at: i64,
    pub scope: String,
}

/// What `ferry login` stores: the per-installation client and a token per resource server.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StoredSession {
    pub url: String,
    pub client_id: String,
    pub client_secret: String,
    pub username: Option<String>,
    pub tokens: BTreeMap<String, StoredToken>,
    /// The CA file the login trusted (a server with its own CA), so later commands trust it too.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<PathBuf>,
}

/// The CLI's own folder: `$XDG_CONFIG_HOME/ferry`, or `~/.config/ferry`.
pub fn config_dir() -> anyhow::Result<PathBuf> {
    let base = match std::env::var_os("XDG_CONFIG_HOME") {
        Some(d) if !d.is_empty() => PathBuf::from(d),
        _ => PathBuf::from(std::env::var_os("HOME").context("HOME is not set")?).join(".config"),
    };
    Ok(base.join("ferry"))
}

/// `session.json` in [`config_dir`].
pub fn session_path() -> anyhow::Result<PathBuf> {
    Ok(config_dir()?.join("session.json"))
}

pub fn load_session() -> anyhow::Result<Option<StoredSession>> {
    let path = session_path()?;
    match std::fs::read_to_string(&path) {
        Ok(text) => Ok(Some(serde_json::from_str(&text).with_context(|| {
            format!(
                "{} is not a Ferry session; remove it or run `ferry login`",
                path.display()
            )
        })?)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
    }
}

/// Written atomically, readable only by the owner: it holds refresh tokens and a client secret.
pub fn save_session(s: &StoredSession) -> anyhow::Result<()> {
    let path = session_path()?;
    let dir = path.parent().context("session path has no folder")?;
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    ferry_server::bootstrap::write_private(&path, &serde_json::to_vec_pretty(s)?)
        .with_context(|| format!("cannot write {}", path.display()))
}

pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

enum Who {
    App { id: String, secret: String },
    Login(StoredSession),
}

/// A connection to a server with the caller's credentials.
pub struct Conn {
    pub base: FerryClient,
    who: Who,
    /// The auth domain, once learnt: bare usernames are `name@domain`.
    domain: Option<String>,
}

fn read_admin(data_dir: &Path) -> anyhow::Result<AdminCredentials> {
    let path = data_dir.join(ferry_server::bootstrap::CREDENTIALS_FILE);
    let text = std::fs::read_to_string(&path).with_context(|| {
        format!(
            "no credentials: give --client-id/--client-secret, run `ferry login`, or run this on the server host \
             (cannot read {})",
            path.display()
        )
    })?;
    Ok(serde_json::from_str(&text)?)
}

/// The CA file to trust, in order: the one given (`--ca-file`/`FERRY_CA_FILE`), `GLOBUS_SDK_VERIFY_SSL` when it
/// names a file (what `ferry serve --tls` tells Globus SDK users to set), the one a login stored, or the
/// generated one of the data directory (on the server host).
pub fn ca_for(g: &Global, given: Option<&Path>, stored: Option<&Path>) -> Option<PathBuf> {
    if let Some(p) = given {
        return Some(p.to_path_buf());
    }
    let sdk = std::env::var_os("GLOBUS_SDK_VERIFY_SSL")
        .map(PathBuf::from)
        .filter(|p| p.is_file());
    sdk.or_else(|| stored.map(Path::to_path_buf)).or_else(|| {
        let generated = g.data_dir.join("tls").join("ca.pem");
        generated.is_file().then_some(generated)
    })
}

/// A client for `url` trusting `ca` (see [`ca_for`]) besides the system's roots.
pub fn client_for(url: &str, ca: Option<&Path>) -> anyhow::Result<FerryClient> {
    let pem = match ca {
        Some(p) => Some(
            std::fs::read(p).with_context(|| format!("--ca-file: cannot read {}", p.display()))?,
        ),
        None => None,
    };
    Ok(FerryClient::with_ca(url, pem.as_deref())?)
}

impl Conn {
    pub async fn open(g: &Global, c: &Connection) -> anyhow::Result<Conn> {
        let (who, default_url) = match (&c.client_id, &c.client_secret) {
            (Some(id), Some(secret)) => (
                Who::App {
                    id: id.clone(),
                    secret: secret.clone(),
                },
                None,
            ),
            _ => match load_session()? {
                Some(s) => {
                    let url = s.url.clone();
                    (Who::Login(s), Some(url))
                }
                None => {
                    let a = read_admin(&g.data_dir)?;
                    (
                        Who::App {
                            id: a.client_id,
                            secret: a.client_secret,
                        },
                        Some(a.url),
                    )
                }
            },
        };
        let url = match (&c.url, default_url) {
            (Some(u), _) => u.clone(),
            (None, Some(u)) => u,
            (None, None) => read_admin(&g.data_dir)
                .map(|a| a.url)
                .context("--url: no server URL given and none known")?,
        };
        let stored_ca = match &who {
            Who::Login(s) => s.ca_file.clone(),
            Who::App { .. } => None,
        };
        let ca = ca_for(g, c.ca_file.as_deref(), stored_ca.as_deref());
        Ok(Conn {
            base: client_for(&url, ca.as_deref())?,
            who,
            domain: None,
        })
    }

    /// The identity id of a UUID or a username; a bare name (no `@`) is a person of this server's auth domain,
    /// as `ferry identity create alice` makes `alice@<domain>`.
    pub async fn identity_id(&mut self, raw: &str) -> anyhow::Result<Uuid> {
        if let Ok(id) = Uuid::parse_str(raw) {
            return Ok(id);
        }
        let username = if raw.contains('@') {
            raw.to_ascii_lowercase()
        } else {
            format!("{}@{}", raw.to_ascii_lowercase(), self.domain().await?)
        };
        let found = self
            .auth()
            .await?
            .identities_by_username(&[&username])
            .await?;
        found
            .iter()
            .find(|i| i.username.eq_ignore_ascii_case(&username))
            .map(|i| i.id)
            .with_context(|| format!("no identity with username {username:?}"))
    }

    /// The auth domain: that of the caller's own username (`me@domain`, or `<client id>@clients.domain`).
    async fn domain(&mut self) -> anyhow::Result<String> {
        if let Some(d) = &self.domain {
            return Ok(d.clone());
        }
        let me = self.auth().await?.userinfo().await?;
        let username = me["preferred_username"].as_str().unwrap_or_default();
        let domain = username
            .rsplit_once('@')
            .map(|(_, d)| d.strip_prefix("clients.").unwrap_or(d).to_string())
            .with_context(|| {
                format!("cannot tell the server's auth domain from your username {username:?}; give a full username (name@domain)")
            })?;
        self.domain = Some(domain.clone());
        Ok(domain)
    }

    /// A client whose token is for resource server `rs`, obtained with `scope` (client credentials), or taken
    /// from the login (refreshed when it is about to expire).
    pub async fn for_rs(&mut self, rs: &str, scope: &str) -> anyhow::Result<FerryClient> {
        let token = match &mut self.who {
            Who::App { id, secret } => {
                let t = self
                    .base
                    .client_credentials(id, secret, scope)
                    .await
                    .with_context(|| format!("cannot get a token for {scope}"))?;
                t.for_resource_server(rs)
                    .with_context(|| format!("the server issued no token for {rs}"))?
                    .access_token
                    .clone()
            }
            Who::Login(s) => {
                let Some(t) = s.tokens.get(rs).cloned() else {
                    bail!("your login does not cover {rs}; run `ferry login` again");
                };
                if t.expires_at > now() + 60 {
                    t.access_token
                } else {
                    let refresh = t
                        .refresh_token
                        .context("your login has expired; run `ferry login` again")?;
                    let v = self
                        .base
                        .oauth_form(
                            "/v2/oauth2/token",
                            &s.client_id,
                            &s.client_secret,
                            &[("grant_type", "refresh_token"), ("refresh_token", &refresh)],
                        )
                        .await
                        .context("refreshing your login failed; run `ferry login` again")?;
                    let fresh = stored(&v).context("the refresh answer has no token")?;
                    let access = fresh.access_token.clone();
                    s.tokens.insert(rs.to_string(), fresh);
                    // The old refresh token is spent: save the new one before anything else can fail.
                    save_session(s)?;
                    access
                }
            }
        };
        Ok(self.base.with_token(&token))
    }

    pub async fn auth(&mut self) -> anyhow::Result<FerryClient> {
        self.for_rs(AUTH_RS, &format!("openid {VIEW_IDENTITY_SET}"))
            .await
    }

    /// A client for the Transfer API (`/v0.10`).
    pub async fn transfer(&mut self) -> anyhow::Result<FerryClient> {
        self.for_rs(TRANSFER_RS, TRANSFER_ALL).await
    }

    /// A client for a collection's files over HTTPS (`/data/<id>`): its token is the collection's own, whose
    /// resource server is the collection id. A login only holds it when it asked for it.
    pub async fn collection_https(&mut self, collection: Uuid) -> anyhow::Result<FerryClient> {
        let rs = collection.to_string();
        if let Who::Login(s) = &self.who
            && !s.tokens.contains_key(&rs)
        {
            bail!(
                "your login holds no token for the files of collection {collection}; run \
                 `ferry login --collection {collection}` (the collections you added before are kept)"
            );
        }
        let files = self
            .for_rs(&rs, &collection_scope(collection, "https"))
            .await?;
        // A collection of the server itself is reached through the URL given (which may be a proxy's); one of
        // another endpoint (the server is its hub) where its document says (`https_server`: `<server>/data/<id>`).
        let own = Self::endpoint_of(&self.base).await.ok();
        let doc = self
            .transfer()
            .await?
            .json(
                ferry_client::Method::GET,
                &format!("/v0.10/endpoint/{collection}"),
                &[],
                None,
            )
            .await
            .with_context(|| format!("cannot read collection {collection}"))?;
        let holder = doc["non_functional_endpoint_id"]
            .as_str()
            .and_then(|e| Uuid::parse_str(e).ok());
        if holder.is_some() && holder == own {
            return Ok(files);
        }
        let suffix = format!("/data/{collection}");
        Ok(
            match doc["https_server"]
                .as_str()
                .and_then(|h| h.strip_suffix(&suffix))
            {
                Some(server) => files.at(server),
                None => files,
            },
        )
    }

    /// The endpoint's id, from the unauthenticated `/api/info`.
    pub async fn endpoint_of(base: &FerryClient) -> anyhow::Result<Uuid> {
        let info = base
            .manager(ferry_client::Method::GET, "/info", &[], None)
            .await
            .context("cannot read the endpoint's /api/info")?;
        info.first()
            .and_then(|d| d["endpoint_id"].as_str())
            .and_then(|s| Uuid::parse_str(s).ok())
            .context("/api/info names no endpoint id")
    }

    /// A client for the manager API (`/api`).
    pub async fn manager(&mut self) -> anyhow::Result<FerryClient> {
        let ep = Self::endpoint_of(&self.base).await?;
        self.for_rs(&ep.to_string(), &manage_collections_scope(ep))
            .await
    }
}

/// A token of a token response as stored.
pub fn stored(v: &Value) -> Option<StoredToken> {
    Some(StoredToken {
        access_token: v["access_token"].as_str()?.to_string(),
        refresh_token: v["refresh_token"].as_str().map(str::to_string),
        expires_at: now() + v["expires_in"].as_i64().unwrap_or(0),
        scope: v["scope"].as_str().unwrap_or("").to_string(),
    })
}
