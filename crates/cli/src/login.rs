//! `ferry login | logout | whoami | session show`: a person's login, as `globus-connect-server login` and
//! `globus login --no-local-server` do it: a per-installation client registered from the template, the
//! authorization-code flow through the browser, the code pasted back here.

use std::collections::BTreeMap;
use std::io::BufRead;

use anyhow::{Context, bail};
use clap::Subcommand;
use ferry_core::scope::{GROUPS_ALL, TRANSFER_ALL, collection_scope, manage_collections_scope};
use serde_json::{Value, json};

use crate::Global;
use crate::output::print_record;
use crate::session::{
    AUTH_SCOPES, Conn, Connection, StoredSession, ca_for, client_for, load_session, now,
    save_session, session_path, stored,
};

/// The Globus CLI's template client id: Ferry registers per-installation clients from it.
const TEMPLATE: &str = "95fdeba8-fac2-42bd-a357-e068d82ff78e";

#[derive(clap::Args)]
pub struct LoginArgs {
    /// The server to log in to [default: the stored login's server, else the administrator's credentials file's
    /// URL (on the server host)].
    #[arg(long, env = "FERRY_URL")]
    url: Option<String>,
    /// The CA certificate that signed the server's certificate (`ferry serve --tls` prints it:
    /// <data dir>/tls/ca.pem) [default: GLOBUS_SDK_VERIFY_SSL when it names a file, the stored login's, or
    /// <data dir>/tls/ca.pem]. Kept with the login for later commands.
    #[arg(long, visible_alias = "ca", env = "FERRY_CA_FILE")]
    ca_file: Option<std::path::PathBuf>,
    /// Also get a token for this collection's files over HTTPS (`ferry get`, `put`, `rm`); repeatable. The
    /// collections a previous login to the same server had are asked for again.
    #[arg(long = "collection", value_name = "COLLECTION_ID")]
    collections: Vec<uuid::Uuid>,
}

#[derive(Subcommand)]
pub enum SessionCmd {
    /// Who is logged in, to which server, and which tokens are held until when.
    Show,
}

pub async fn login(g: &Global, a: LoginArgs) -> anyhow::Result<()> {
    // A new login to the same server (e.g. `ferry login --collection ID`, as `ferry put` suggests) needs no --url.
    let previous = load_session().ok().flatten();
    let url = match (a.url, &previous) {
        (Some(u), _) => u,
        (None, Some(p)) => p.url.clone(),
        (None, None) => {
            let path = g.data_dir.join(ferry_server::bootstrap::CREDENTIALS_FILE);
            let text = std::fs::read_to_string(&path).with_context(|| {
                format!(
                    "--url: give the server's URL (not logged in, and cannot read {})",
                    path.display()
                )
            })?;
            serde_json::from_str::<Value>(&text)?["url"]
                .as_str()
                .context("no url in the credentials file")?
                .to_string()
        }
    };
    let url = url.trim_end_matches('/').to_string();
    let same_server = previous
        .as_ref()
        .filter(|p| p.url.trim_end_matches('/') == url);
    let ca = ca_for(
        g,
        a.ca_file.as_deref(),
        same_server.and_then(|p| p.ca_file.as_deref()),
    )
    .map(|p| std::path::absolute(&p).unwrap_or(p));
    let base = client_for(&url, ca.as_deref())?;
    // A hub serves no endpoint of its own: the login then covers Auth, Transfer and Groups only.
    let endpoint = Conn::endpoint_of(&base).await.ok();
    let (client_id, client_secret) = base
        .register_client(TEMPLATE, "Ferry CLI")
        .await
        .context("cannot register this installation with the server")?;
    let redirect = format!("{url}/v2/web/auth-code");
    let mut scopes = format!("{AUTH_SCOPES} {TRANSFER_ALL} {GROUPS_ALL}");
    if let Some(ep) = endpoint {
        scopes.push(' ');
        scopes.push_str(&manage_collections_scope(ep));
    }
    for c in collections_to_ask(&url, a.collections) {
        scopes.push(' ');
        scopes.push_str(&collection_scope(c, "https"));
    }
    let mut authorize = url::Url::parse(&format!("{url}/v2/oauth2/authorize"))?;
    authorize
        .query_pairs_mut()
        .append_pair("client_id", &client_id)
        .append_pair("redirect_uri", &redirect)
        .append_pair("scope", &scopes)
        .append_pair("response_type", "code")
        .append_pair("access_type", "offline")
        .append_pair("prompt", "login")
        .append_pair("state", "_default");
    eprintln!(
        "Open this link in a browser, log in, and paste the code it shows:\n\n  {authorize}\n"
    );
    eprint!("Code: ");
    let mut code = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut code)
        .context("reading the code from standard input")?;
    let code = code.trim();
    if code.is_empty() {
        bail!("no code given");
    }
    let v = base
        .oauth_form(
            "/v2/oauth2/token",
            &client_id,
            &client_secret,
            &[
                ("grant_type", "authorization_code"),
                ("code", code),
                ("redirect_uri", &redirect),
            ],
        )
        .await
        .context("the code was refused")?;
    let mut tokens = BTreeMap::new();
    for t in std::iter::once(&v).chain(v["other_tokens"].as_array().into_iter().flatten()) {
        if let (Some(rs), Some(tok)) = (t["resource_server"].as_str(), stored(t)) {
            tokens.insert(rs.to_string(), tok);
        }
    }
    let mut session = StoredSession {
        url,
        client_id,
        client_secret,
        username: None,
        tokens,
        ca_file: ca,
    };
    let me = base
        .with_token(
            &session
                .tokens
                .get(ferry_core::scope::AUTH_RS)
                .context("the login gave no identity token")?
                .access_token,
        )
        .userinfo()
        .await?;
    session.username = me["preferred_username"].as_str().map(str::to_string);
    save_session(&session)?;
    println!(
        "Logged in as {} to {}; the session is saved in {}",
        session.username.as_deref().unwrap_or("?"),
        session.url,
        session_path()?.display()
    );
    Ok(())
}

/// The collections given, plus those whose HTTPS token the stored login to the same server holds, so that a
/// new login for one more collection does not lose the others.
fn collections_to_ask(url: &str, given: Vec<uuid::Uuid>) -> std::collections::BTreeSet<uuid::Uuid> {
    let mut all: std::collections::BTreeSet<uuid::Uuid> = given.into_iter().collect();
    if let Ok(Some(s)) = load_session()
        && s.url.trim_end_matches('/') == url
    {
        all.extend(s.tokens.iter().filter_map(|(rs, t)| {
            let id = uuid::Uuid::parse_str(rs).ok()?;
            t.scope
                .split_whitespace()
                .any(|sc| sc == collection_scope(id, "https"))
                .then_some(id)
        }));
    }
    all
}

pub async fn logout(g: &Global) -> anyhow::Result<()> {
    let Some(s) = load_session()? else {
        println!("Not logged in.");
        return Ok(());
    };
    let base = client_for(&s.url, ca_for(g, None, s.ca_file.as_deref()).as_deref())?;
    let mut failed = 0;
    for t in s.tokens.values() {
        for tok in std::iter::once(&t.access_token).chain(t.refresh_token.iter()) {
            if base
                .oauth_form(
                    "/v2/oauth2/token/revoke",
                    &s.client_id,
                    &s.client_secret,
                    &[("token", tok)],
                )
                .await
                .is_err()
            {
                failed += 1;
            }
        }
    }
    std::fs::remove_file(session_path()?).context("cannot remove the session file")?;
    if failed > 0 {
        eprintln!("warning: {failed} token(s) could not be revoked at the server (unreachable?)");
    }
    println!("Logged out of {}.", s.url);
    Ok(())
}

pub async fn whoami(g: &Global, conn: Connection) -> anyhow::Result<()> {
    let mut c = Conn::open(g, &conn).await?;
    let me = c.auth().await?.userinfo().await?;
    let v = json!({"username": me["preferred_username"], "name": me["name"], "id": me["sub"], "email": me["email"]});
    print_record(
        g.format,
        &v,
        &[
            ("Username", "username"),
            ("Name", "name"),
            ("ID", "id"),
            ("Email", "email"),
        ],
    );
    Ok(())
}

pub fn session(g: &Global, cmd: SessionCmd) -> anyhow::Result<()> {
    match cmd {
        SessionCmd::Show => {
            let Some(s) = load_session()? else {
                bail!("not logged in (no {})", session_path()?.display());
            };
            let tokens: Vec<Value> = s
                .tokens
                .iter()
                .map(|(rs, t)| {
                    json!({"resource_server": rs, "scope": t.scope,
                           "expires_in": (t.expires_at - now()).max(0),
                           "refreshable": t.refresh_token.is_some()})
                })
                .collect();
            let v = json!({"url": s.url, "username": s.username, "client_id": s.client_id, "tokens": tokens});
            match g.format {
                crate::output::Format::Json => println!("{}", serde_json::to_string_pretty(&v)?),
                crate::output::Format::Table | crate::output::Format::Csv => {
                    print_record(
                        g.format,
                        &v,
                        &[
                            ("Server", "url"),
                            ("Username", "username"),
                            ("Client", "client_id"),
                        ],
                    );
                    crate::output::print_list(
                        g.format,
                        &tokens,
                        &[
                            ("Resource server", "resource_server"),
                            ("Expires in (s)", "expires_in"),
                            ("Refreshable", "refreshable"),
                        ],
                    );
                }
            }
            Ok(())
        }
    }
}
