//! Commands an administrator runs on the server host: they open the data directory's database directly,
//! so they work before anyone can log in (and while the server runs: SQLite in WAL mode allows it).

use std::io::BufRead;
use std::sync::Arc;

use anyhow::{Context, bail};
use clap::Subcommand;
use ferry_auth::{Auth, AuthError, NewClient};
use ferry_core::{Client, ClientKind, Identity};
use ferry_store::{SqliteStore, Store};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::Global;
use crate::output::{Format, print_list, print_record};

#[derive(Subcommand)]
pub enum IdentityCmd {
    /// Create a local account. A bare name gets the auth domain (alice → alice@ferry.local).
    Create {
        username: String,
        /// Full name shown to others [default: the username].
        #[arg(long)]
        name: Option<String>,
        #[arg(long)]
        email: Option<String>,
        /// The password (visible to other local users in the process list; prefer --password-stdin).
        /// Without either, a password is generated and printed once.
        #[arg(long, conflicts_with = "password_stdin", allow_hyphen_values = true)]
        password: Option<String>,
        /// Read the password from the first line of standard input.
        #[arg(long)]
        password_stdin: bool,
    },
    /// List every identity, people and applications.
    List,
    /// Show one identity, by id or username.
    Show { who: String },
    /// Delete an identity with its tokens and memberships.
    Delete { who: String },
    /// Reset a local account's password (by id or username). Its sessions and tokens are revoked: it must log
    /// in again everywhere. Without --password-stdin, a password is generated and printed once.
    SetPassword {
        who: String,
        /// Read the new password from the first line of standard input (at least 12 characters, not the
        /// username, not a common password).
        #[arg(long)]
        password_stdin: bool,
    },
}

/// The first line of standard input, without its line ending.
fn password_from_stdin() -> anyhow::Result<String> {
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .context("cannot read the password")?;
    Ok(line.trim_end_matches(['\r', '\n']).to_string())
}

#[derive(Subcommand)]
pub enum ClientCmd {
    /// Register an application. Confidential by default (it gets a secret, shown once).
    Create {
        #[arg(long)]
        name: String,
        /// A native application (cannot keep a secret; must use PKCE).
        #[arg(long)]
        native: bool,
        /// An allowed redirect URI (repeatable). Loopback URIs match any port.
        /// [default: this server's /v2/web/auth-code page and http://localhost]
        #[arg(long = "redirect-uri")]
        redirect_uris: Vec<String>,
        /// The identity that owns the client (id or username).
        #[arg(long)]
        owner: Option<String>,
        /// The grant types it may use, comma-separated (authorization_code, refresh_token,
        /// client_credentials, urn:globus:auth:grant_type:dependent_token).
        /// [default: all four for a confidential client, the first two for a native one]
        #[arg(long, value_delimiter = ',')]
        grant_types: Option<Vec<String>>,
        /// The scopes it may be issued, separated by spaces or commas (a token request for any other is
        /// invalid_scope). [default: any scope]
        #[arg(long)]
        scopes: Option<String>,
    },
    /// Every registered application, with its kind, identity and redirect URIs.
    List,
    /// Delete a client: its identity and every token it holds go with it.
    Delete { id: Uuid },
    /// Replace a confidential client's secret (printed once); its tokens are revoked.
    RotateSecret { id: Uuid },
}

/// The data directory's configuration, database and recorded base URL: what local commands work on.
pub struct Local {
    pub cfg: ferry_server::Config,
    pub store: Arc<dyn Store>,
    pub base_url: String,
}

pub async fn open_local(g: &Global) -> anyhow::Result<Local> {
    let cfg = crate::serve::load_config(g, Default::default())?;
    let db = cfg.data_dir.join("ferry.db");
    if !db.exists() {
        bail!(
            "no Ferry database in {}: start the server once with `ferry serve --data-dir {0}`, or pass --data-dir",
            cfg.data_dir.display()
        );
    }
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&db).await?);
    let base_url = store
        .meta_get(ferry_server::BASE_URL_KEY)
        .await?
        .or(cfg.public_url.clone())
        .unwrap_or_else(|| format!("http://{}", cfg.listen));
    Ok(Local {
        cfg,
        store,
        base_url,
    })
}

pub async fn open(g: &Global) -> anyhow::Result<Auth> {
    let l = open_local(g).await?;
    Ok(Auth::open(l.store, l.cfg.auth_config(&l.base_url)).await?)
}

fn identity_json(i: &Identity) -> Value {
    json!({"id": i.id, "username": i.username, "name": i.name, "email": i.email, "kind": i.kind.as_str(),
        "created": ferry_core::time::rfc3339(i.created)})
}

const IDENTITY_FIELDS: &[(&str, &str)] = &[
    ("ID", "id"),
    ("Username", "username"),
    ("Name", "name"),
    ("Email", "email"),
    ("Kind", "kind"),
    ("Created", "created"),
];

async fn find(auth: &Auth, who: &str) -> anyhow::Result<Identity> {
    auth.resolve_identity(who)
        .await?
        .with_context(|| format!("no identity '{who}'"))
}

pub async fn identity(g: &Global, cmd: IdentityCmd) -> anyhow::Result<()> {
    let auth = open(g).await?;
    match cmd {
        IdentityCmd::Create {
            username,
            name,
            email,
            password,
            password_stdin,
        } => {
            let password = if password_stdin {
                Some(password_from_stdin()?)
            } else {
                password
            };
            let created = auth
                .create_person(
                    &username,
                    name.as_deref(),
                    email.as_deref(),
                    password.as_deref(),
                )
                .await
                .map_err(explain)?;
            let mut v = identity_json(&created.identity);
            if let Some(p) = &created.generated_password {
                v["password"] = json!(p);
            }
            let mut fields = IDENTITY_FIELDS.to_vec();
            if created.generated_password.is_some() {
                fields.push(("Password (shown once)", "password"));
            }
            print_record(g.format, &v, &fields);
        }
        IdentityCmd::List => {
            let rows: Vec<Value> = auth
                .store()
                .list_identities()
                .await?
                .iter()
                .map(identity_json)
                .collect();
            print_list(g.format, &rows, &IDENTITY_FIELDS[..5]);
        }
        IdentityCmd::Show { who } => print_record(
            g.format,
            &identity_json(&find(&auth, &who).await?),
            IDENTITY_FIELDS,
        ),
        IdentityCmd::Delete { who } => {
            let i = find(&auth, &who).await?;
            auth.delete_identity(i.id).await.map_err(explain)?;
            if g.format == Format::Json {
                println!("{}", json!({"deleted": i.id}));
            } else {
                println!("Deleted {} ({})", i.username, i.id);
            }
        }
        IdentityCmd::SetPassword {
            who,
            password_stdin,
        } => {
            let i = find(&auth, &who).await?;
            let chosen = if password_stdin {
                Some(password_from_stdin()?)
            } else {
                None
            };
            let generated = auth
                .set_password(i.id, chosen.as_deref())
                .await
                .map_err(explain)?;
            let mut v =
                json!({"id": i.id, "username": i.username, "sessions_and_tokens": "revoked"});
            let mut fields = vec![
                ("ID", "id"),
                ("Username", "username"),
                ("Sessions and tokens", "sessions_and_tokens"),
            ];
            if let Some(p) = &generated {
                v["password"] = json!(p);
                fields.push(("Password (shown once)", "password"));
            }
            print_record(g.format, &v, &fields);
        }
    }
    Ok(())
}

fn client_json(c: &Client, username: Option<&str>) -> Value {
    json!({"client_id": c.id, "name": c.name, "kind": c.kind.as_str(), "username": username,
        "redirect_uris": c.redirect_uris, "verified": c.verified, "grant_types": c.grant_types(),
        "scopes": c.allowed_scopes.clone().map_or(json!("any"), |s| json!(s))})
}

fn explain(e: AuthError) -> anyhow::Error {
    anyhow::anyhow!("{e}")
}

pub async fn client(g: &Global, cmd: ClientCmd) -> anyhow::Result<()> {
    let auth = open(g).await?;
    let fields: &[(&str, &str)] = &[
        ("Client ID", "client_id"),
        ("Name", "name"),
        ("Kind", "kind"),
        ("Username", "username"),
        ("Redirect URIs", "redirect_uris"),
        ("Verified", "verified"),
        ("Grant types", "grant_types"),
        ("Scopes", "scopes"),
    ];
    match cmd {
        ClientCmd::Create {
            name,
            native,
            redirect_uris,
            owner,
            grant_types,
            scopes,
        } => {
            let kind = if native {
                ClientKind::Native
            } else {
                ClientKind::Confidential
            };
            let redirect_uris = if redirect_uris.is_empty() {
                auth.default_redirect_uris()
            } else {
                redirect_uris
            };
            let owner = match owner {
                Some(o) => Some(find(&auth, &o).await?.id),
                None => None,
            };
            let allowed_scopes = scopes.map(|s| {
                s.split([' ', ','])
                    .filter(|s| !s.is_empty())
                    .map(str::to_string)
                    .collect()
            });
            let c = auth
                .create_client_with(NewClient {
                    owner,
                    grant_types,
                    allowed_scopes,
                    ..NewClient::by_administrator(&name, kind, redirect_uris)
                })
                .await
                .map_err(explain)?;
            let mut v = client_json(&c.client, Some(&c.identity.username));
            let mut fields = fields.to_vec();
            if let Some(s) = &c.secret {
                v["client_secret"] = json!(s);
                fields.push(("Client secret (shown once)", "client_secret"));
            }
            print_record(g.format, &v, &fields);
        }
        ClientCmd::List => {
            let mut rows = Vec::new();
            for c in auth.store().list_clients().await? {
                let username = auth.store().get_identity(c.id).await?.map(|i| i.username);
                rows.push(client_json(&c, username.as_deref()));
            }
            print_list(g.format, &rows, fields);
        }
        ClientCmd::Delete { id } => {
            if auth.store().get_client(id).await?.is_none() {
                bail!("no client {id}");
            }
            auth.delete_identity(id).await.map_err(explain)?;
            println!("Deleted client {id}");
        }
        ClientCmd::RotateSecret { id } => {
            let secret = auth.rotate_client_secret(id).await.map_err(explain)?;
            print_record(
                g.format,
                &json!({"client_id": id, "client_secret": secret}),
                &[
                    ("Client ID", "client_id"),
                    ("New secret (shown once)", "client_secret"),
                ],
            );
        }
    }
    Ok(())
}
