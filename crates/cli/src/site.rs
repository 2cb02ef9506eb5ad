//! `ferry endpoint setup` and `ferry endpoint delete`: joining a data directory to a hub as an endpoint, and
//! leaving it (the counterparts of `globus-connect-server endpoint setup` and `endpoint cleanup`).

use std::path::PathBuf;

use anyhow::{Context, bail};
use ferry_proto::sites::EndpointRegistration;
use ferry_server::site::{SiteFile, SiteOwner};

use crate::Global;
use crate::session::{Conn, Connection};

#[derive(clap::Args)]
pub struct SetupArgs {
    /// The hub's URL (where you ran `ferry login`).
    #[arg(long)]
    hub: String,
    /// The URL at which this endpoint will be reached by people and by other endpoints, e.g.
    /// https://dtn.example.org:8443 (what `ferry serve --role endpoint` listens behind).
    #[arg(long)]
    public_url: String,
    /// The endpoint's name at the hub [default: the public URL's host].
    #[arg(long)]
    display_name: Option<String>,
    /// A CA certificate to trust for the hub (a hub that made its own, e.g. its <data dir>/tls/ca.pem).
    #[arg(long, env = "FERRY_CA_FILE")]
    ca_file: Option<PathBuf>,
}

pub async fn setup(g: &Global, args: SetupArgs) -> anyhow::Result<()> {
    let dir = &g.data_dir;
    if SiteFile::path(dir).exists() {
        bail!(
            "{} already belongs to an endpoint ({}); `ferry endpoint delete` leaves its hub first",
            dir.display(),
            SiteFile::path(dir).display()
        );
    }
    if dir.join("ferry.db").exists() {
        bail!(
            "{} already holds a Ferry database; set an endpoint up in a new data directory (--data-dir)",
            dir.display()
        );
    }
    let hub = args.hub.trim_end_matches('/').to_string();
    let display_name = match args.display_name {
        Some(n) => n,
        None => url::Url::parse(&args.public_url)
            .ok()
            .and_then(|u| u.host_str().map(str::to_string))
            .context("--public-url is not a URL with a host")?,
    };
    let mut conn = Conn::open(
        g,
        &Connection {
            url: Some(hub.clone()),
            ca_file: args.ca_file.clone(),
            ..Default::default()
        },
    )
    .await?;
    let auth = conn
        .auth()
        .await
        .context("setting an endpoint up needs a person's login at the hub: run `ferry login --url HUB` first")?;
    let me = auth
        .userinfo()
        .await
        .context("cannot read your identity at the hub")?;
    let registered = auth
        .register_endpoint(&EndpointRegistration {
            display_name: display_name.clone(),
            public_url: args.public_url.clone(),
        })
        .await
        .context("the hub refused to register the endpoint")?;
    let owner = SiteOwner {
        id: me["sub"]
            .as_str()
            .and_then(|s| uuid::Uuid::parse_str(s).ok())
            .context("the hub's userinfo names no identity")?,
        username: me["preferred_username"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
        name: me["name"].as_str().unwrap_or_default().to_string(),
        email: me["email"].as_str().map(str::to_string),
    };
    let file = SiteFile {
        hub_url: registered.hub_url,
        endpoint_id: registered.endpoint_id,
        client_secret: registered.client_secret,
        public_url: args.public_url.trim_end_matches('/').to_string(),
        display_name,
        owner,
        hub_ca_file: args.ca_file.map(|p| std::fs::canonicalize(&p).unwrap_or(p)),
    };
    ferry_server::create_private_dir(dir)?;
    file.save(dir)
        .with_context(|| format!("cannot write {}", SiteFile::path(dir).display()))?;
    println!("Registered endpoint {} at {hub}.", file.endpoint_id);
    println!(
        "Its credentials are in {} (readable only by you).",
        SiteFile::path(dir).display()
    );
    println!("Start it with:");
    // HTTPS exactly when the public URL says so.
    let tls = if file.public_url.starts_with("https://") {
        " --tls"
    } else {
        ""
    };
    println!(
        "  ferry serve --role endpoint --data-dir {} --listen ADDRESS:PORT{tls}",
        dir.display()
    );
    println!(
        "It must be reachable at {} by people and by other endpoints; it reaches the hub at {hub}.",
        file.public_url
    );
    Ok(())
}

/// Removes this data directory's endpoint from its hub and forgets the hub; the data and the local database
/// stay.
pub async fn delete(g: &Global) -> anyhow::Result<()> {
    let file = SiteFile::load(&g.data_dir)
        .map_err(anyhow::Error::msg)?
        .with_context(|| {
            format!(
                "{} is not an endpoint of a hub (no {})",
                g.data_dir.display(),
                ferry_server::site::SITE_FILE
            )
        })?;
    let hub = crate::session::client_for(&file.hub_url, file.hub_ca_file.as_deref())?;
    hub.leave_hub(file.endpoint_id, &file.client_secret)
        .await
        .context("the hub did not remove the endpoint")?;
    std::fs::remove_file(SiteFile::path(&g.data_dir))?;
    println!(
        "Endpoint {} left {}; its collections are no longer listed there.",
        file.endpoint_id, file.hub_url
    );
    Ok(())
}
