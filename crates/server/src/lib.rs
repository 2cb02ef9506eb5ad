//! Ferry's HTTP services in one process: Auth, Groups, the endpoint manager and the login pages, on one port.

pub mod bootstrap;
pub mod config;
mod error;
pub mod ops;
pub mod pull;
mod routes;
pub mod site;
pub mod tls;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{ConnectInfo, DefaultBodyLimit};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use ferry_auth::{Auth, AuthError};
pub use ferry_endpoint::Defaults;
use ferry_endpoint::{Endpoint, EndpointError, Settings as EndpointSettings};
use ferry_store::{SqliteStore, Store};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tower::ServiceExt;

pub use bootstrap::{AdminCredentials, Bootstrap};
pub use config::{Config, ConfigError, Overrides, Role};
use routes::AppState;

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("cannot use the data directory {0}: {1}")]
    DataDir(PathBuf, std::io::Error),
    #[error("cannot listen on {0}: {1}")]
    Listen(SocketAddr, std::io::Error),
    #[error("database: {0}")]
    Store(#[from] ferry_store::StoreError),
    #[error("{0}")]
    Auth(#[from] AuthError),
    #[error("TLS: {0}")]
    Tls(String),
    #[error("endpoint: {0}")]
    Endpoint(#[from] EndpointError),
    #[error("{0}")]
    Site(String),
}

/// Where the running server records the URL it is reached at.
pub const BASE_URL_KEY: &str = "server.base_url";

/// A started server.
pub struct Running {
    pub addr: SocketAddr,
    /// The URL clients use (the token issuer), without a trailing slash.
    pub base_url: String,
    pub role: Role,
    /// The administrator of a hub or single-host server (an endpoint's administrators are the hub's people).
    pub bootstrap: Option<Bootstrap>,
    /// The default storage gateway and mapped collection (created on the first start; a hub has none).
    pub defaults: Option<Defaults>,
    /// The CA file clients should trust, when Ferry generated its own certificate.
    pub tls_ca: Option<PathBuf>,
    pub auth: Arc<Auth>,
    pub endpoint: Arc<Endpoint>,
    /// The transfer engine (the API's and the workers').
    pub transfer: ferry_transfer::Engine,
    shutdown: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl Running {
    /// Stops accepting, lets requests in flight finish (up to 10 s), and returns.
    pub async fn shutdown(self) {
        let _ = self.shutdown.send(true);
        let _ = self.task.await;
    }

    /// Waits until the server stops (it stops only through `shutdown`).
    pub async fn wait(self) {
        let _ = self.task.await;
    }

    pub fn stop_handle(&self) -> watch::Sender<bool> {
        self.shutdown.clone()
    }
}

/// What Ferry's own tests set and no configuration file or variable can: the clock, and fault injection.
#[derive(Debug, Clone, Default)]
pub struct TestHooks {
    /// The clock every part of the server reads (default: the system's).
    pub clock: Option<ferry_core::SharedClock>,
    /// Corrupt one byte of the first transfer copy whose destination path contains this text, after it is
    /// written and before it is verified.
    pub corrupt_once: Option<String>,
    /// Every transfer file copy waits for a permit from here first (the lease tests hold copies back).
    pub copy_gate: Option<Arc<tokio::sync::Semaphore>>,
}

/// Opens the data directory and database, makes sure the administrator exists, binds, and serves.
pub async fn start(cfg: Config) -> Result<Running, ServerError> {
    start_with_hooks(cfg, TestHooks::default()).await
}

/// [`start`], with the clock and faults of a test.
pub async fn start_with_hooks(cfg: Config, hooks: TestHooks) -> Result<Running, ServerError> {
    cfg.validate()?;
    let clock = hooks.clock.unwrap_or_else(ferry_core::clock::system);
    create_private_dir(&cfg.data_dir)?;
    let listener = TcpListener::bind(cfg.listen)
        .await
        .map_err(|e| ServerError::Listen(cfg.listen, e))?;
    let addr = listener
        .local_addr()
        .map_err(|e| ServerError::Listen(cfg.listen, e))?;
    let scheme = if cfg.tls { "https" } else { "http" };
    let base_url = cfg
        .public_url
        .clone()
        .unwrap_or_else(|| format!("{scheme}://{addr}"))
        .trim_end_matches('/')
        .to_string();

    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&cfg.data_dir.join("ferry.db")).await?);
    // Admin commands run beside the server read this to build URLs (e.g. native clients' redirect).
    store.meta_set(BASE_URL_KEY, &base_url).await?;
    let site = match cfg.role {
        Role::Endpoint => {
            let file = site::SiteFile::load(&cfg.data_dir)
                .map_err(ServerError::Site)?
                .ok_or_else(|| {
                    ServerError::Site(format!(
                        "{} has not joined a hub: run `ferry endpoint setup --hub URL` with this data directory \
                         first",
                        cfg.data_dir.display()
                    ))
                })?;
            // The endpoint's id is the one the hub registered.
            store
                .meta_set(
                    ferry_endpoint::ENDPOINT_ID_KEY,
                    &file.endpoint_id.to_string(),
                )
                .await?;
            store
                .mirror_identity(&file.owner_identity(clock.now()))
                .await?;
            Some(Arc::new(site::HubLink::open(
                file,
                clock.clone(),
                cfg.site.token_cache_secs,
            )?))
        }
        _ => None,
    };
    let auth = Arc::new(
        Auth::open(
            store,
            ferry_auth::AuthConfig {
                clock: clock.clone(),
                ..cfg.auth_config(&base_url)
            },
        )
        .await?,
    );
    let bootstrap = if cfg.role.serves_hub() {
        let b = bootstrap::ensure_admin(&auth, &cfg.data_dir).await?;
        auth.ensure_globus_cli_template().await?;
        Some(b)
    } else {
        None
    };
    let mailer = ferry_mail::Mailer::from_config(&cfg.smtp)
        .map_err(|e| ServerError::Config(ConfigError::Invalid(e.to_string())))?
        .map(Arc::new);
    let endpoint = Arc::new(
        Endpoint::open(
            auth.store().clone(),
            EndpointSettings {
                invitation_lifetime_secs: cfg.sharing.invitation_lifetime_secs,
                mailer: mailer.clone(),
                clock: clock.clone(),
                directory: site
                    .clone()
                    .map(|l| l as Arc<dyn ferry_endpoint::IdentityDirectory>),
                remote: match &site {
                    Some(link) => Some(Arc::new(
                        pull::Peers::new(link.clone(), cfg.site.ca_file.as_deref(), clock.clone())
                            .map_err(ServerError::Tls)?,
                    )
                        as Arc<dyn ferry_endpoint::RemoteCollections>),
                    None => None,
                },
                display_name: site.as_ref().map_or_else(
                    || ferry_endpoint::DEFAULT_NAME.into(),
                    |link| link.file().display_name.clone(),
                ),
                ..EndpointSettings::new(&base_url)
            },
        )
        .await?,
    );
    let defaults = match (cfg.role, &site) {
        (Role::All, _) => Some(bootstrap::ensure_endpoint(&auth, &endpoint, &cfg).await?),
        (Role::Endpoint, Some(link)) => {
            Some(bootstrap::ensure_site_endpoint(link.file(), &endpoint, &cfg).await?)
        }
        _ => None,
    };
    let metrics = cfg
        .metrics
        .enabled
        .then(|| Arc::new(ops::Metrics::new(cfg.metrics.allow.clone())));
    let transfer = ferry_transfer::Engine::new(
        auth.store().clone(),
        endpoint.clone(),
        ferry_transfer::EngineSettings {
            clock: clock.clone(),
            corrupt_once: hooks.corrupt_once,
            copy_gate: hooks.copy_gate,
            node: bootstrap::node_id(&cfg.data_dir)?,
            metrics: metrics.as_ref().map(|m| m.engine()).unwrap_or_default(),
            ..cfg.transfer.engine_settings()
        },
        ferry_transfer::Notifier::new(mailer, &base_url),
        Some({
            let auth = auth.clone();
            Arc::new(move |doc: &serde_json::Value| auth.sign_document(doc).ok())
        }),
    );
    // A hub's workers run this server's own tasks (none, for a hub alone); an endpoint's run the ones its
    // hub gives it.
    let workers = transfer
        .start()
        .await
        .map_err(|e| ServerError::Config(ConfigError::Invalid(format!("transfer engine: {e}"))))?;
    let sweeper = cfg
        .role
        .serves_endpoint()
        .then(|| spawn_upload_sweeper(endpoint.clone()));
    let task_reporter = site.as_ref().map(|link| {
        link.clone()
            .spawn_task_reporter(auth.store().clone(), transfer.clone())
    });
    let reporter = site.as_ref().map(|link| {
        link.clone().spawn_reporter(
            auth.store().clone(),
            Duration::from_secs(cfg.site.report_interval_secs),
        )
    });

    let (acceptor, tls_ca) = if cfg.tls {
        let (cert, key, ca) = match (&cfg.tls_cert, &cfg.tls_key) {
            (Some(c), Some(k)) => (c.clone(), k.clone(), None),
            _ => {
                let host = url::Url::parse(&base_url)
                    .ok()
                    .and_then(|u| u.host_str().map(str::to_string));
                let f = tls::ensure_self_signed(&cfg.data_dir, addr, host.as_deref())
                    .map_err(ServerError::Tls)?;
                (f.cert, f.key, f.ca)
            }
        };
        (
            Some(tls::acceptor(&cert, &key).map_err(ServerError::Tls)?),
            ca,
        )
    } else {
        (None, None)
    };

    let state = AppState {
        auth: auth.clone(),
        endpoint: endpoint.clone(),
        transfer: transfer.clone(),
        secure_cookies: base_url.starts_with("https://"),
        hub: site,
        role: cfg.role,
        sites_http: site::hub_http(cfg.site.ca_file.as_deref()).map_err(ServerError::Tls)?,
        metrics: metrics.clone(),
    };
    let upkeep = metrics.as_ref().map(ops::Metrics::spawn_upkeep);
    let app = router(state);
    let auth_for_serve = auth.clone();
    let (shutdown, rx) = watch::channel(false);
    let task = tokio::spawn(async move {
        serve(listener, app, acceptor, rx, auth_for_serve).await;
        // Tasks in flight keep their leases' state in the database; the next start resumes them.
        workers.abort();
        if let Some(s) = sweeper {
            s.abort();
        }
        if let Some(r) = task_reporter {
            r.abort();
        }
        if let Some(r) = reporter {
            r.abort();
        }
        if let Some(u) = upkeep {
            u.abort();
        }
    });
    Ok(Running {
        addr,
        base_url,
        role: cfg.role,
        bootstrap,
        defaults,
        tls_ca,
        auth,
        endpoint,
        transfer,
        shutdown,
        task,
    })
}

/// Removes abandoned resumable uploads every few minutes (see [`ferry_endpoint::UPLOAD_IDLE_SECS`]): their
/// temporary files would otherwise fill the storage.
fn spawn_upload_sweeper(endpoint: Arc<Endpoint>) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut every = tokio::time::interval(Duration::from_secs(300));
        loop {
            every.tick().await;
            match endpoint.sweep_uploads().await {
                Ok(0) => {}
                Ok(n) => tracing::info!(swept = n, "abandoned uploads removed"),
                Err(e) => tracing::warn!(error = %e, "sweeping abandoned uploads failed"),
            }
        }
    })
}

/// The data directory holds the administrator's credentials, keys and the database: only its owner may enter
/// it. An existing directory that others can read is tightened (and said so).
pub fn create_private_dir(dir: &std::path::Path) -> Result<(), ServerError> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    if dir.is_dir() {
        let mode = std::fs::metadata(dir)
            .map_err(|e| ServerError::DataDir(dir.to_path_buf(), e))?
            .permissions()
            .mode();
        if mode & 0o077 != 0 {
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(mode & 0o700))
                .map_err(|e| ServerError::DataDir(dir.to_path_buf(), e))?;
            tracing::warn!(dir = %dir.display(), "the data directory was readable by others; it is now 0700");
        }
        return Ok(());
    }
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| ServerError::DataDir(dir.to_path_buf(), e))
}

/// Every API on one router.
pub fn router(state: AppState) -> Router {
    // Served at an https base URL: browsers must never fall back to plain http (HSTS on every response).
    let hsts = state.secure_cookies;
    let role = state.role;
    let metrics = state.metrics.clone();
    // Health on every role; the metrics when configured.
    let mut app = Router::new().merge(routes::ops::router(metrics.is_some()));
    if role.serves_hub() {
        app = app
            .merge(routes::auth::router())
            .merge(routes::sites::router())
            .merge(routes::groups::router())
            .merge(
                routes::transfer::router().layer(axum::middleware::from_fn_with_state(
                    state.clone(),
                    routes::transfer::forward::to_site,
                )),
            )
            .merge(routes::web::router())
            .merge(routes::account::router())
            .merge(routes::invitation::router())
            .merge(routes::upstream::router())
            .merge(
                routes::app::router().layer(axum::middleware::from_fn_with_state(
                    state.clone(),
                    routes::app::errors_name_the_visitor,
                )),
            );
    }
    if role.serves_endpoint() {
        app = app
            .merge(routes::manager::router())
            .merge(routes::data::router())
            .merge(routes::uploads::router());
    }
    if role == Role::Endpoint {
        // The hub passes Transfer requests for this endpoint's collections on here, vouching for the caller.
        app = app.nest("/site", routes::transfer::site_router());
    }
    let app = app
        .fallback(|| async {
            (
                StatusCode::NOT_FOUND,
                axum::Json(serde_json::json!({
                    "code": "ClientError.NotFound", "message": "no such route"
                })),
            )
                .into_response()
        })
        // Auth and Groups bodies are small; data uploads get their own limit on their own routes.
        .layer(DefaultBodyLimit::max(1024 * 1024));
    // Counted by route template: a layer on the routes sees which one matched.
    let app = match metrics {
        Some(m) => app.layer(axum::middleware::from_fn_with_state(m, ops::track)),
        None => app,
    }
    .with_state(state);
    if hsts {
        app.layer(tower_http::set_header::SetResponseHeaderLayer::overriding(
            axum::http::header::STRICT_TRANSPORT_SECURITY,
            axum::http::HeaderValue::from_static("max-age=31536000"),
        ))
    } else {
        app
    }
}

async fn serve(
    listener: TcpListener,
    app: Router,
    tls: Option<tokio_rustls::TlsAcceptor>,
    mut stop: watch::Receiver<bool>,
    auth: Arc<Auth>,
) {
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    let mut gc = tokio::time::interval(Duration::from_secs(3600));
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(x) => x,
                    Err(e) => {
                        // Out of file descriptors and the like: back off instead of spinning.
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                };
                let app = app.clone();
                let svc = hyper::service::service_fn(move |mut req: hyper::Request<hyper::body::Incoming>| {
                    req.extensions_mut().insert(ConnectInfo(peer));
                    app.clone().oneshot(req.map(axum::body::Body::new))
                });
                let builder = builder.clone();
                let watcher = graceful.watcher();
                let tls = tls.clone();
                tokio::spawn(async move {
                    let result = match tls {
                        None => watcher.watch(builder.serve_connection_with_upgrades(TokioIo::new(stream), svc).into_owned()).await,
                        Some(acceptor) => match acceptor.accept(stream).await {
                            Ok(s) => watcher.watch(builder.serve_connection_with_upgrades(TokioIo::new(s), svc).into_owned()).await,
                            Err(e) => {
                                tracing::debug!(%peer, error = %e, "TLS handshake failed");
                                return;
                            }
                        },
                    };
                    if let Err(e) = result {
                        tracing::debug!(%peer, error = %e, "connection ended with an error");
                    }
                });
            }
            _ = gc.tick() => {
                let now = auth.config().clock.now();
                match auth.store().purge_expired(now, 86400).await {
                    Ok(n) if n > 0 => tracing::info!(purged = n, "expired secrets removed"),
                    Ok(_) => {}
                    Err(e) => tracing::warn!(error = %e, "purging expired secrets failed"),
                }
            }
            _ = stop.changed() => break,
        }
    }
    drop(listener);
    let _ = tokio::time::timeout(Duration::from_secs(10), graceful.shutdown()).await;
}
