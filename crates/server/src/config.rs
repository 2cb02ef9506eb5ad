//! Configuration: defaults, then a TOML file, then `FERRY_*` environment variables, then command-line flags.
//! Unknown keys are errors that name the key (and the variable, for the environment), so a typo never
//! silently falls back to a default.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use toml::{Table, Value};

/// Environment variables that belong to the `ferry` client commands, not to the server's configuration.
pub const CLIENT_ENV: &[&str] = &[
    "FERRY_CONFIG",
    "FERRY_URL",
    "FERRY_CLIENT_ID",
    "FERRY_CLIENT_SECRET",
    "FERRY_CA_FILE",
    "FERRY_LOG",
];

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// What this process serves: `all` (one host: everything), `hub` or `endpoint` (see `shared/design/sites.md`).
    pub role: Role,
    /// Address to listen on.
    pub listen: SocketAddr,
    /// Where the database, keys, certificates and the administrator's credentials live.
    pub data_dir: PathBuf,
    /// The URL clients use to reach this server (issuer of tokens). Default: derived from `listen`.
    pub public_url: Option<String>,
    /// Serve HTTPS with a certificate in the data directory (self-signed and generated on first start
    /// unless `tls_cert`/`tls_key` name one).
    pub tls: bool,
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    /// The folder the default storage gateway serves, created on first start when it does not exist.
    /// Default: `<data_dir>/storage`. Only the first start reads it.
    pub storage_root: Option<PathBuf>,
    pub auth: AuthSection,
    /// The mail server for invitations and notifications (`host` empty: no e-mail).
    pub smtp: ferry_mail::SmtpConfig,
    pub sharing: SharingSection,
    pub transfer: TransferSection,
    pub site: SiteSection,
    pub metrics: MetricsSection,
    /// Upstream OpenID Connect providers people sign in through (`[[identity_providers]]`; see the README).
    pub identity_providers: Vec<ferry_auth::ProviderConfig>,
}

/// The parts of Ferry one process serves.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Hub and endpoint in one process on one database: the single-host server.
    #[default]
    All,
    /// Auth, Groups, Transfer and the web pages; the collections are the joined endpoints'.
    Hub,
    /// The manager API, the data door and the data movers of an endpoint joined to a hub
    /// (`ferry endpoint setup --hub URL` first).
    Endpoint,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::All => "all",
            Role::Hub => "hub",
            Role::Endpoint => "endpoint",
        }
    }
    pub fn serves_hub(self) -> bool {
        self != Role::Endpoint
    }
    pub fn serves_endpoint(self) -> bool {
        self != Role::Hub
    }
}

/// How an endpoint relies on its hub.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct SiteSection {
    /// How long an endpoint keeps the hub's answer about a bearer token: a token revoked at the hub stops
    /// working here within this many seconds.
    pub token_cache_secs: i64,
    /// How often an endpoint reports its collections to the hub when nothing changed (a change is reported at
    /// once).
    pub report_interval_secs: u64,
    /// A CA certificate to trust, beside the system's, for the other side: a hub's endpoints, an endpoint's
    /// hub and peers (sites that made their own certificates).
    pub ca_file: Option<PathBuf>,
}

impl Default for SiteSection {
    fn default() -> Self {
        Self {
            token_cache_secs: 15,
            report_interval_secs: 30,
            ca_file: None,
        }
    }
}

/// Prometheus metrics at `/metrics` (`/healthz` and `/readyz` are always served).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsSection {
    /// Serve `/metrics` (off: 404, and nothing is counted).
    pub enabled: bool,
    /// The peer addresses that may read `/metrics` (others get 403); empty: every address.
    pub allow: Vec<IpAddr>,
}

impl Default for MetricsSection {
    fn default() -> Self {
        Self {
            enabled: false,
            allow: vec![
                IpAddr::V4(Ipv4Addr::LOCALHOST),
                IpAddr::V6(Ipv6Addr::LOCALHOST),
            ],
        }
    }
}

/// How transfer and delete tasks run.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct TransferSection {
    /// Tasks run at once.
    pub max_tasks: usize,
    /// Files of one task copied at once (a submission's `perf_cc` overrides it).
    pub file_concurrency: usize,
    /// Ranges of one large file copied at once (`perf_p` overrides it).
    pub range_parallelism: usize,
    /// File data held in memory at once, over all tasks (MiB).
    pub memory_budget_mib: usize,
    /// Faults in a row after which a task goes INACTIVE.
    pub inactive_after_faults: u32,
    /// The first wait before failed files are tried again (doubling per fault in a row), in milliseconds.
    pub retry_base_ms: u64,
    /// How long an INACTIVE task waits before trying again, in seconds.
    pub inactive_retry_secs: u64,
    /// The deadline of a task submitted without one, in seconds.
    pub default_deadline_secs: i64,
    /// fsync every copy before it counts as done (power-cut durability at the disk's speed). Off: a copy counts
    /// once written, as with cp or GridFTP; a killed server loses nothing, and after a machine restart the
    /// copies of interrupted tasks are checked again.
    pub durable_writes: bool,
    /// Let webhooks point at this host or private networks (refused by default: a user could otherwise make
    /// the server send requests inside its own network).
    pub webhooks_allow_private: bool,
}

impl Default for TransferSection {
    fn default() -> Self {
        let d = ferry_transfer::EngineSettings::default();
        Self {
            max_tasks: d.max_tasks,
            file_concurrency: d.file_concurrency,
            range_parallelism: d.range_parallelism,
            memory_budget_mib: d.memory_budget >> 20,
            inactive_after_faults: d.inactive_after_faults,
            retry_base_ms: d.retry_base.as_millis() as u64,
            inactive_retry_secs: d.inactive_retry.as_secs(),
            default_deadline_secs: d.default_deadline_secs,
            durable_writes: d.durable_writes,
            webhooks_allow_private: d.webhooks_allow_private,
        }
    }
}

impl TransferSection {
    /// Each key below its minimum, named with its value: refused at load, never silently raised.
    fn below_minimum(&self) -> Option<String> {
        let t = self;
        [
            ("transfer.max_tasks", t.max_tasks as i64, 1),
            ("transfer.file_concurrency", t.file_concurrency as i64, 1),
            ("transfer.range_parallelism", t.range_parallelism as i64, 1),
            // Room for one range of a large file and a batch of small ones.
            ("transfer.memory_budget_mib", t.memory_budget_mib as i64, 8),
            (
                "transfer.inactive_after_faults",
                i64::from(t.inactive_after_faults),
                1,
            ),
            (
                "transfer.inactive_retry_secs",
                t.inactive_retry_secs as i64,
                1,
            ),
            (
                "transfer.default_deadline_secs",
                t.default_deadline_secs,
                60,
            ),
        ]
        .into_iter()
        .find(|(_, v, min)| v < min)
        .map(|(key, v, min)| format!("{key} is {v}, below its minimum of {min}"))
    }

    /// The engine's settings; `Config::load` has already refused values below their minimums.
    pub fn engine_settings(&self) -> ferry_transfer::EngineSettings {
        use std::time::Duration;
        ferry_transfer::EngineSettings {
            max_tasks: self.max_tasks,
            file_concurrency: self.file_concurrency,
            range_parallelism: self.range_parallelism,
            memory_budget: self.memory_budget_mib << 20,
            inactive_after_faults: self.inactive_after_faults,
            retry_base: Duration::from_millis(self.retry_base_ms),
            inactive_retry: Duration::from_secs(self.inactive_retry_secs),
            default_deadline_secs: self.default_deadline_secs,
            durable_writes: self.durable_writes,
            webhooks_allow_private: self.webhooks_allow_private,
            ..ferry_transfer::EngineSettings::default()
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct SharingSection {
    /// How long an e-mail invitation's code can be redeemed.
    pub invitation_lifetime_secs: i64,
}

impl Default for SharingSection {
    fn default() -> Self {
        Self {
            invitation_lifetime_secs: 7 * 24 * 3600,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct AuthSection {
    /// Local usernames are `name@domain`; applications are `id@clients.domain`.
    pub domain: String,
    pub access_token_lifetime_secs: i64,
    pub refresh_idle_lifetime_secs: i64,
    pub refresh_absolute_lifetime_secs: i64,
    pub code_lifetime_secs: i64,
    pub session_lifetime_secs: i64,
    /// Whether the login page offers Ferry's own username-and-password accounts (with providers configured,
    /// a site may switch them off).
    pub local_accounts: bool,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8400)),
            data_dir: PathBuf::from("./ferry-data"),
            public_url: None,
            tls: false,
            tls_cert: None,
            tls_key: None,
            storage_root: None,
            auth: AuthSection::default(),
            smtp: ferry_mail::SmtpConfig::default(),
            sharing: SharingSection::default(),
            transfer: TransferSection::default(),
            site: SiteSection::default(),
            metrics: MetricsSection::default(),
            identity_providers: Vec::new(),
            role: Role::All,
        }
    }
}

impl Default for AuthSection {
    fn default() -> Self {
        let d = ferry_auth::AuthConfig::new("", "ferry.local");
        Self {
            domain: d.domain,
            access_token_lifetime_secs: d.access_token_lifetime,
            refresh_idle_lifetime_secs: d.refresh_idle_lifetime,
            refresh_absolute_lifetime_secs: d.refresh_absolute_lifetime,
            code_lifetime_secs: d.code_lifetime,
            session_lifetime_secs: d.session_lifetime,
            local_accounts: true,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read the configuration file {0}: {1}")]
    Read(PathBuf, std::io::Error),
    #[error("the configuration file {0} is not valid TOML: {1}")]
    Syntax(PathBuf, String),
    #[error("unknown configuration key '{key}' (from {source_name})")]
    UnknownKey { key: String, source_name: String },
    #[error("invalid configuration: {0}")]
    Invalid(String),
}

/// Values given on the command line; they win over everything else.
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    pub listen: Option<SocketAddr>,
    pub data_dir: Option<PathBuf>,
    pub tls: bool,
    pub storage_root: Option<PathBuf>,
    pub role: Option<Role>,
}

impl Config {
    /// Loads the configuration from `file` (if any), the given environment, and `overrides`.
    pub fn load(
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
        overrides: &Overrides,
    ) -> Result<Self, ConfigError> {
        let known =
            Value::try_from(Config::default()).map_err(|e| ConfigError::Invalid(e.to_string()))?;
        let mut table = Table::new();
        if let Some(path) = file {
            let text =
                std::fs::read_to_string(path).map_err(|e| ConfigError::Read(path.into(), e))?;
            let parsed: Table = text
                .parse()
                .map_err(|e: toml::de::Error| ConfigError::Syntax(path.into(), e.to_string()))?;
            check_keys(&parsed, known.as_table(), "", &path.display().to_string())?;
            table = parsed;
        }
        for (var, raw) in env {
            let Some(rest) = var.strip_prefix("FERRY_") else {
                continue;
            };
            if CLIENT_ENV.contains(&var.as_str()) {
                continue;
            }
            let path: Vec<String> = rest.split("__").map(|p| p.to_ascii_lowercase()).collect();
            if !key_known(known.as_table(), &path) {
                return Err(ConfigError::UnknownKey {
                    key: path.join("."),
                    source_name: format!("environment variable {var}"),
                });
            }
            insert(&mut table, &path, env_value(&raw));
        }
        if let Some(l) = overrides.listen {
            table.insert("listen".into(), Value::String(l.to_string()));
        }
        if let Some(d) = &overrides.data_dir {
            table.insert("data_dir".into(), Value::String(d.display().to_string()));
        }
        if overrides.tls {
            table.insert("tls".into(), Value::Boolean(true));
        }
        if let Some(r) = overrides.role {
            table.insert("role".into(), Value::String(r.as_str().into()));
        }
        if let Some(r) = &overrides.storage_root {
            table.insert(
                "storage_root".into(),
                Value::String(r.display().to_string()),
            );
        }
        let cfg: Config = Value::Table(table)
            .try_into()
            .map_err(|e: toml::de::Error| ConfigError::Invalid(e.message().to_string()))?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Refuses what no server can run with; `load` calls it, and so does `start` for a configuration built in code.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let a = &self.auth;
        for (name, v) in [
            (
                "auth.access_token_lifetime_secs",
                a.access_token_lifetime_secs,
            ),
            (
                "auth.refresh_idle_lifetime_secs",
                a.refresh_idle_lifetime_secs,
            ),
            (
                "auth.refresh_absolute_lifetime_secs",
                a.refresh_absolute_lifetime_secs,
            ),
            ("auth.code_lifetime_secs", a.code_lifetime_secs),
            ("auth.session_lifetime_secs", a.session_lifetime_secs),
        ] {
            if v <= 0 {
                return Err(ConfigError::Invalid(format!(
                    "{name} must be positive, not {v}"
                )));
            }
        }
        if let Some(e) = self.transfer.below_minimum() {
            return Err(ConfigError::Invalid(e));
        }
        // Longer would let a revoked token live on at endpoints; shorter than a second is no cache.
        if !(1..=300).contains(&self.site.token_cache_secs) {
            return Err(ConfigError::Invalid(format!(
                "site.token_cache_secs is {}; it must be 1 to 300",
                self.site.token_cache_secs
            )));
        }
        if !(1..=3600).contains(&self.site.report_interval_secs) {
            return Err(ConfigError::Invalid(format!(
                "site.report_interval_secs is {}; it must be 1 to 3600",
                self.site.report_interval_secs
            )));
        }
        if let Some(u) = &self.public_url {
            let parsed = url::Url::parse(u)
                .map_err(|e| ConfigError::Invalid(format!("public_url '{u}' is not a URL: {e}")))?;
            if !matches!(parsed.scheme(), "http" | "https") || parsed.query().is_some() {
                return Err(ConfigError::Invalid(format!(
                    "public_url '{u}' must be an http(s) URL without a query"
                )));
            }
        }
        ferry_auth::federation::validate_providers(&self.identity_providers, &[&a.domain])
            .map_err(|e| ConfigError::Invalid(e.to_string()))?;
        if !a.local_accounts && self.identity_providers.is_empty() {
            return Err(ConfigError::Invalid(
                "auth.local_accounts is false and no identity_providers are configured: nobody could sign in"
                    .into(),
            ));
        }
        if self.tls_cert.is_some() != self.tls_key.is_some() {
            return Err(ConfigError::Invalid(
                "tls_cert and tls_key go together".into(),
            ));
        }
        Ok(())
    }

    pub fn auth_config(&self, issuer: &str) -> ferry_auth::AuthConfig {
        let a = &self.auth;
        let mut c = ferry_auth::AuthConfig::new(issuer, &a.domain);
        c.access_token_lifetime = a.access_token_lifetime_secs;
        c.refresh_idle_lifetime = a.refresh_idle_lifetime_secs;
        c.refresh_absolute_lifetime = a.refresh_absolute_lifetime_secs;
        c.code_lifetime = a.code_lifetime_secs;
        c.session_lifetime = a.session_lifetime_secs;
        c.providers = self.identity_providers.clone();
        c.local_accounts = a.local_accounts;
        c
    }
}

fn check_keys(
    t: &Table,
    known: Option<&Table>,
    prefix: &str,
    source: &str,
) -> Result<(), ConfigError> {
    for (k, v) in t {
        let full = if prefix.is_empty() {
            k.clone()
        } else {
            format!("{prefix}.{k}")
        };
        // Optional keys are absent from the serialised defaults, so only sections are checked recursively
        // here; the typed deserialisation below names any remaining unknown field.
        let known_here =
            known.map(|kt| kt.contains_key(k) || OPTIONAL_KEYS.contains(&full.as_str()));
        if known_here == Some(false) {
            return Err(ConfigError::UnknownKey {
                key: full,
                source_name: source.to_string(),
            });
        }
        if let (Value::Table(sub), Some(kt)) = (v, known) {
            check_keys(sub, kt.get(k).and_then(Value::as_table), &full, source)?;
        }
    }
    Ok(())
}

/// Keys whose default is "unset", so they do not appear when the defaults are serialised.
const OPTIONAL_KEYS: &[&str] = &[
    "public_url",
    "tls_cert",
    "tls_key",
    "storage_root",
    "site.ca_file",
];

fn key_known(known: Option<&Table>, path: &[String]) -> bool {
    fn walk(t: Option<&Table>, rest: &[String], full: &[String]) -> bool {
        let Some(t) = t else { return false };
        match rest {
            [] => false,
            [k] => t.contains_key(k) || OPTIONAL_KEYS.contains(&full.join(".").as_str()),
            [k, more @ ..] => walk(t.get(k).and_then(Value::as_table), more, full),
        }
    }
    walk(known, path, path)
}

fn insert(t: &mut Table, path: &[String], v: Value) {
    match path {
        [] => {}
        [k] => {
            t.insert(k.clone(), v);
        }
        [k, rest @ ..] => {
            let sub = t
                .entry(k.clone())
                .or_insert_with(|| Value::Table(Table::new()));
            if let Value::Table(st) = sub {
                insert(st, rest, v);
            }
        }
    }
}

/// Environment values are strings; numbers and booleans are recognised so typed keys accept them.
fn env_value(raw: &str) -> Value {
    if let Ok(i) = raw.parse::<i64>() {
        return Value::Integer(i);
    }
    match raw {
        "true" => Value::Boolean(true),
        "false" => Value::Boolean(false),
        _ => Value::String(raw.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn defaults() {
        let c = Config::load(None, env(&[]), &Overrides::default()).unwrap();
        assert_eq!(c, Config::default());
        assert_eq!(c.listen.to_string(), "127.0.0.1:8400");
    }

    #[test]
    fn layers_file_env_flags() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("ferry.toml");
        std::fs::write(&f, "listen = \"127.0.0.1:9000\"\n[auth]\ndomain = \"uni.edu\"\naccess_token_lifetime_secs = 60\n").unwrap();
        let c = Config::load(
            Some(&f),
            env(&[
                ("FERRY_AUTH__ACCESS_TOKEN_LIFETIME_SECS", "30"),
                ("FERRY_URL", "x"),
                ("PATH", "/bin"),
            ]),
            &Overrides {
                data_dir: Some("/tmp/x".into()),
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(c.listen.port(), 9000);
        assert_eq!(c.auth.domain, "uni.edu");
        assert_eq!(c.auth.access_token_lifetime_secs, 30);
        assert_eq!(c.data_dir, PathBuf::from("/tmp/x"));
    }

    #[test]
    fn optional_keys_are_known_only_where_they_belong() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("ferry.toml");
        std::fs::write(&f, "role = \"hub\"\n[site]\nca_file = \"/etc/ca.pem\"\n").unwrap();
        let c = Config::load(Some(&f), env(&[]), &Overrides::default()).unwrap();
        assert_eq!(c.role, Role::Hub);
        assert_eq!(c.site.ca_file.as_deref(), Some(Path::new("/etc/ca.pem")));
        let c = Config::load(
            None,
            env(&[("FERRY_SITE__CA_FILE", "/x.pem")]),
            &Overrides::default(),
        )
        .unwrap();
        assert_eq!(c.site.ca_file.as_deref(), Some(Path::new("/x.pem")));
        // An optional key of one section is unknown in another.
        let e = Config::load(
            None,
            env(&[("FERRY_AUTH__CA_FILE", "/x.pem")]),
            &Overrides::default(),
        );
        assert!(e.is_err());
        std::fs::write(&f, "[site]\ntoken_cache_secs = 0\n").unwrap();
        let e = Config::load(Some(&f), env(&[]), &Overrides::default())
            .unwrap_err()
            .to_string();
        assert!(e.contains("site.token_cache_secs"), "{e}");
    }

    #[test]
    fn metrics_are_off_and_loopback_only_by_default() {
        let c = Config::load(None, env(&[]), &Overrides::default()).unwrap();
        assert!(!c.metrics.enabled);
        assert!(c.metrics.allow.iter().all(|a| a.is_loopback()));
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("ferry.toml");
        std::fs::write(
            &f,
            "[metrics]\nenabled = true\nallow = [\"10.0.0.5\", \"::1\"]\n",
        )
        .unwrap();
        let c = Config::load(
            Some(&f),
            env(&[("FERRY_METRICS__ENABLED", "true")]),
            &Overrides::default(),
        )
        .unwrap();
        assert!(c.metrics.enabled);
        assert_eq!(c.metrics.allow.len(), 2);
        std::fs::write(&f, "[metrics]\nenabeld = true\n").unwrap();
        let e = Config::load(Some(&f), env(&[]), &Overrides::default())
            .unwrap_err()
            .to_string();
        assert!(e.contains("metrics.enabeld"), "{e}");
        std::fs::write(&f, "[metrics]\nallow = [\"localhost\"]\n").unwrap();
        assert!(Config::load(Some(&f), env(&[]), &Overrides::default()).is_err());
    }

    #[test]
    fn unknown_keys_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("ferry.toml");
        std::fs::write(&f, "[auth]\ndomian = \"x\"\n").unwrap();
        let e = Config::load(Some(&f), env(&[]), &Overrides::default())
            .unwrap_err()
            .to_string();
        assert!(e.contains("auth.domian"), "{e}");
        let e = Config::load(None, env(&[("FERRY_LISTNE", "x")]), &Overrides::default())
            .unwrap_err()
            .to_string();
        assert!(e.contains("FERRY_LISTNE") && e.contains("listne"), "{e}");
        std::fs::write(&f, "listen = 5\n").unwrap();
        let e = Config::load(Some(&f), env(&[]), &Overrides::default())
            .unwrap_err()
            .to_string();
        assert!(e.contains("invalid"), "{e}");
        std::fs::write(&f, "listen = [").unwrap();
        assert!(matches!(
            Config::load(Some(&f), env(&[]), &Overrides::default()),
            Err(ConfigError::Syntax(..))
        ));
        assert!(
            Config::load(
                None,
                env(&[("FERRY_AUTH__CODE_LIFETIME_SECS", "0")]),
                &Overrides::default()
            )
            .is_err()
        );
    }
}
