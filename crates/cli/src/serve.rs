//! `ferry serve`.

use std::net::SocketAddr;

use std::io::IsTerminal;

use anyhow::Context;
use ferry_server::{Bootstrap, Config, Overrides};

use crate::Global;

#[derive(clap::Args)]
pub struct ServeArgs {
    /// Address and port to listen on [default: 127.0.0.1:8400].
    #[arg(long, env = "FERRY_LISTEN")]
    listen: Option<SocketAddr>,
    /// Serve HTTPS. Without tls_cert/tls_key in the configuration, a private CA and a certificate are
    /// generated into the data directory on first start.
    #[arg(long)]
    tls: bool,
    /// The folder the default storage gateway serves (used on the first start only)
    /// [default: <data dir>/storage].
    #[arg(long, env = "FERRY_STORAGE_ROOT")]
    storage_root: Option<std::path::PathBuf>,
    /// What this process serves: all (one host), hub (Auth, Groups, Transfer, web pages) or endpoint (the
    /// manager API, the data door and the data movers; after `ferry endpoint setup`) [default: all].
    #[arg(long, value_enum)]
    role: Option<RoleArg>,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum RoleArg {
    All,
    Hub,
    Endpoint,
}

impl From<RoleArg> for ferry_server::Role {
    fn from(r: RoleArg) -> Self {
        match r {
            RoleArg::All => ferry_server::Role::All,
            RoleArg::Hub => ferry_server::Role::Hub,
            RoleArg::Endpoint => ferry_server::Role::Endpoint,
        }
    }
}

pub fn load_config(g: &Global, overrides: Overrides) -> anyhow::Result<Config> {
    let overrides = Overrides {
        data_dir: Some(g.data_dir.clone()),
        ..overrides
    };
    // These arrive through flags; the rest of FERRY_* is configuration.
    let flags = ["FERRY_LISTEN", "FERRY_DATA_DIR", "FERRY_STORAGE_ROOT"];
    let env = std::env::vars().filter(|(k, _)| !flags.contains(&k.as_str()));
    Ok(Config::load(g.config.as_deref(), env, &overrides)?)
}

pub async fn run(g: &Global, args: ServeArgs) -> anyhow::Result<()> {
    let cfg = load_config(
        g,
        Overrides {
            listen: args.listen,
            tls: args.tls,
            storage_root: args.storage_root,
            data_dir: None,
            role: args.role.map(Into::into),
        },
    )?;
    let running = ferry_server::start(cfg.clone())
        .await
        .context("cannot start the server")?;
    let url = &running.base_url;
    println!("Ferry {} is serving on {url}", env!("CARGO_PKG_VERSION"));
    println!("Data directory: {}", cfg.data_dir.display());
    if running.role != ferry_server::Role::All {
        println!("Role: {}", running.role.as_str());
    }
    match &running.bootstrap {
        None => {}
        Some(Bootstrap::Created {
            path,
            credentials: c,
        }) => {
            println!();
            println!("First start: created the administrator and a client for it.");
            println!("  username       {}", c.username);
            println!("  client id      {}", c.client_id);
            // A terminal is a person reading once; anything else is a log that keeps what it is given.
            if std::io::stdout().is_terminal() {
                println!("  password       {}", c.password);
                println!("  client secret  {}", c.client_secret);
                println!(
                    "These are shown once; they are saved in {} (readable only by you).",
                    path.display()
                );
            } else {
                println!(
                    "The password and client secret are in {} (readable only by you); they are not written \
                     to this output, which is not a terminal.",
                    path.display()
                );
            }
        }
        Some(Bootstrap::Existing { path }) => {
            println!("The administrator's credentials are in {}", path.display());
        }
    }
    if let Some(ca) = &running.tls_ca {
        println!("TLS certificate authority to trust: {}", ca.display());
        println!(
            "  (ferry commands elsewhere: --ca-file {0} or FERRY_CA_FILE={0})",
            ca.display()
        );
    }
    if let Some(d) = &running.defaults {
        print_storage(&running, d);
    }
    if running.role == ferry_server::Role::Endpoint {
        println!(
            "Collections are reported to the hub; people use the hub's URL with the Globus SDK and CLI."
        );
        println!("Stop with Ctrl-C.");
    } else {
        print_sdk_hints(&running);
    }

    let stop = running.stop_handle();
    tokio::spawn(async move {
        let mut term =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = async { match term.as_mut() { Some(t) => { t.recv().await; } None => std::future::pending().await } } => {}
        }
        tracing::info!("stopping");
        let _ = stop.send(true);
    });
    running.wait().await;
    Ok(())
}

fn print_storage(running: &ferry_server::Running, d: &ferry_server::Defaults) {
    let url = &running.base_url;
    println!();
    println!(
        "{} {}",
        if d.created {
            "Created the endpoint's default storage:"
        } else {
            "The endpoint's default storage:"
        },
        d.storage_root
    );
    println!("  endpoint id          {}", running.endpoint.id());
    println!("  storage gateway id   {}", d.storage_gateway_id);
    println!("  mapped collection id {}", d.collection_id);
    println!("  manager API          {url}/api");
}

fn print_sdk_hints(running: &ferry_server::Running) {
    let url = &running.base_url;
    println!();
    println!("To use the Globus SDK and CLI with this server:");
    println!("  export GLOBUS_SDK_ENVIRONMENT=ferry");
    for service in ["AUTH", "TRANSFER", "GROUPS"] {
        println!("  export GLOBUS_SDK_SERVICE_URL_{service}={url}/");
    }
    if let Some(ca) = &running.tls_ca {
        println!("  export GLOBUS_SDK_VERIFY_SSL={}", ca.display());
    }
    println!(
        "Then act as the administrator's client with GLOBUS_CLI_CLIENT_ID and GLOBUS_CLI_CLIENT_SECRET set from"
    );
    println!("that file, or log in as a person with `globus login --no-local-server`.");
    println!("Stop with Ctrl-C.");
}
