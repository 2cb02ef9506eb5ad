//! Commands on the server host against the data directory: the audit log, `access explain` and
//! `self-diagnostic`. They need no login: reading the data directory is the authority.

use std::collections::HashMap;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;

use anyhow::{Context, bail};
use clap::Subcommand;
use ferry_auth::Auth;
use ferry_endpoint::{AccessReport, Endpoint, Settings};
use ferry_store::{AuditFilter, AuditRecord, Store};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::Global;
use crate::admin::{Local, open_local};
use crate::output::{Format, csv_field, print_list};

#[derive(clap::Args)]
pub struct AuditFilterArgs {
    /// Identity username or id.
    #[arg(long)]
    identity: Option<String>,
    #[arg(long)]
    collection: Option<Uuid>,
    /// A path and everything below it.
    #[arg(long)]
    path_prefix: Option<String>,
    /// From this time on: RFC 3339 (2026-11-22T09:00:00Z) or unix seconds.
    #[arg(long)]
    since: Option<String>,
    /// Before this time.
    #[arg(long)]
    until: Option<String>,
    #[arg(long, value_parser = ["allowed", "refused"])]
    outcome: Option<String>,
}

#[derive(Subcommand)]
pub enum AuditCmd {
    /// The latest management changes and data access decisions (oldest of them first).
    Query {
        #[command(flatten)]
        filter: AuditFilterArgs,
        /// At most this many records.
        #[arg(long, default_value_t = 100)]
        limit: i64,
    },
    /// Every matching record, streamed in pages (any size of log): `--format csv`, or a JSON array otherwise.
    Dump {
        #[command(flatten)]
        filter: AuditFilterArgs,
    },
}

fn time_arg(option: &str, raw: &str) -> anyhow::Result<i64> {
    if let Ok(n) = raw.parse::<i64>() {
        return Ok(n);
    }
    time::OffsetDateTime::parse(raw, &time::format_description::well_known::Rfc3339)
        .map(|t| t.unix_timestamp())
        .with_context(|| format!("{option}: {raw:?} is neither RFC 3339 nor unix seconds"))
}

async fn filter(auth: &Auth, a: &AuditFilterArgs) -> anyhow::Result<AuditFilter> {
    let identity_id = match &a.identity {
        None => None,
        Some(who) => Some(
            auth.resolve_identity(who)
                .await?
                .with_context(|| format!("--identity: no identity {who:?}"))?
                .id,
        ),
    };
    Ok(AuditFilter {
        identity_id,
        collection_id: a.collection,
        path_prefix: a.path_prefix.clone(),
        since: a
            .since
            .as_deref()
            .map(|s| time_arg("--since", s))
            .transpose()?,
        until: a
            .until
            .as_deref()
            .map(|s| time_arg("--until", s))
            .transpose()?,
        allowed: a.outcome.as_deref().map(|o| o == "allowed"),
        ..AuditFilter::default()
    })
}

/// Usernames of the identities records name, looked up once each.
struct Names<'a> {
    store: &'a dyn Store,
    known: HashMap<Uuid, String>,
}

impl Names<'_> {
    async fn of(&mut self, id: Option<Uuid>) -> String {
        let Some(id) = id else {
            return "anonymous".into();
        };
        if let Some(n) = self.known.get(&id) {
            return n.clone();
        }
        let n = match self.store.get_identity(id).await {
            Ok(Some(i)) => i.username,
            _ => id.to_string(),
        };
        self.known.insert(id, n.clone());
        n
    }
}

async fn row(names: &mut Names<'_>, r: &AuditRecord) -> Value {
    json!({
        "seq": r.seq,
        "time": ferry_core::time::rfc3339(r.time),
        "identity": names.of(r.identity_id).await,
        "identity_id": r.identity_id,
        "action": r.action,
        "collection_id": r.collection_id,
        "path": r.path,
        "outcome": if r.allowed { "allowed" } else { "refused" },
        "detail": r.detail,
    })
}

const AUDIT_COLUMNS: &[(&str, &str)] = &[
    ("Time", "time"),
    ("Identity", "identity"),
    ("Action", "action"),
    ("Collection", "collection_id"),
    ("Path", "path"),
    ("Outcome", "outcome"),
    ("Detail", "detail"),
];

pub async fn audit(g: &Global, cmd: AuditCmd) -> anyhow::Result<()> {
    let l = open_local(g).await?;
    let auth = Auth::open(l.store.clone(), l.cfg.auth_config(&l.base_url)).await?;
    let mut names = Names {
        store: l.store.as_ref(),
        known: HashMap::new(),
    };
    match cmd {
        AuditCmd::Query { filter: f, limit } => {
            let mut q = filter(&auth, &f).await?;
            q.limit = Some(limit);
            // The latest `limit` records, shown oldest first.
            q.newest_first = true;
            let mut records = l.store.query_audit(&q).await?;
            records.reverse();
            let mut rows = Vec::new();
            for r in &records {
                rows.push(row(&mut names, r).await);
            }
            print_list(g.format, &rows, AUDIT_COLUMNS);
        }
        AuditCmd::Dump { filter: f } => {
            let csv = g.format == Format::Csv;
            let mut q = filter(&auth, &f).await?;
            q.limit = Some(10_000);
            let out = std::io::stdout();
            let mut out = std::io::BufWriter::new(out.lock());
            let keys = [
                "seq",
                "time",
                "identity",
                "identity_id",
                "action",
                "collection_id",
                "path",
                "outcome",
                "detail",
            ];
            if csv {
                writeln!(out, "{}", keys.join(","))?;
            } else {
                write!(out, "[")?;
            }
            let mut first = true;
            loop {
                let page = l.store.query_audit(&q).await?;
                let Some(last) = page.last() else { break };
                q.after_seq = Some(last.seq);
                for r in &page {
                    let v = row(&mut names, r).await;
                    if csv {
                        let cells: Vec<String> = keys
                            .iter()
                            .map(|k| match &v[*k] {
                                Value::Null => String::new(),
                                Value::String(s) => csv_field(s),
                                other => csv_field(&other.to_string()),
                            })
                            .collect();
                        writeln!(out, "{}", cells.join(","))?;
                    } else {
                        write!(out, "{}\n{}", if first { "" } else { "," }, v)?;
                    }
                    first = false;
                }
            }
            if !csv {
                writeln!(out, "]")?;
            }
            out.flush()?;
        }
    }
    Ok(())
}

/// `ferry access explain COLLECTION PATH [--identity WHO]`.
#[derive(clap::Args)]
pub struct ExplainArgs {
    collection: Uuid,
    path: String,
    /// The caller, by username or id [default: anonymous].
    #[arg(long)]
    identity: Option<String>,
}

#[derive(Subcommand)]
pub enum AccessCmd {
    /// Why a caller can or cannot reach a path: every layer of the access check and the rule that decided it.
    Explain(ExplainArgs),
}

fn print_report(r: &AccessReport, indent: &str) {
    println!(
        "{indent}collection  {} ({})",
        r.collection_id, r.collection_type
    );
    println!("{indent}caller      {}", r.caller);
    println!(
        "{indent}account     {}",
        r.account.as_deref().unwrap_or("(none)")
    );
    println!("{indent}path        {}", r.path);
    if let Some(sp) = &r.storage_path {
        println!("{indent}storage     {sp}");
    }
    for l in &r.layers {
        println!(
            "{indent}  {:<40} {:<10} {}",
            l.layer,
            l.access.as_str(),
            l.because
        );
    }
    println!("{indent}access      {}", r.access.as_str());
    println!("{indent}decided by  {}", r.decided_by);
    if let Some(t) = &r.symlink_target {
        println!("{indent}through a symbolic link to:");
        print_report(t, &format!("{indent}    "));
    }
}

pub async fn access(g: &Global, cmd: AccessCmd) -> anyhow::Result<()> {
    let AccessCmd::Explain(a) = cmd;
    let l = open_local(g).await?;
    let auth = Auth::open(l.store.clone(), l.cfg.auth_config(&l.base_url)).await?;
    let identity = match &a.identity {
        None => None,
        Some(who) => Some(
            auth.resolve_identity(who)
                .await?
                .with_context(|| format!("--identity: no identity {who:?}"))?,
        ),
    };
    let ep = Endpoint::open(l.store.clone(), Settings::new(&l.base_url)).await?;
    let report = ep.explain(a.collection, &a.path, identity).await?;
    match g.format {
        Format::Json => println!("{}", serde_json::to_string_pretty(&report)?),
        Format::Table | Format::Csv => print_report(&report, ""),
    }
    Ok(())
}

/// One check of `self-diagnostic`.
struct Check {
    name: &'static str,
    result: Result<String, String>,
}

async fn diagnose(g: &Global) -> Vec<Check> {
    let mut checks = Vec::new();
    let mut add = |name, result| checks.push(Check { name, result });
    let local: Result<Local, String> = open_local(g).await.map_err(|e| format!("{e:#}"));
    let cfg_ok = crate::serve::load_config(g, Default::default()).map_err(|e| format!("{e:#}"));
    add(
        "configuration",
        cfg_ok
            .as_ref()
            .map(|_| "loads".to_string())
            .map_err(Clone::clone),
    );
    add(
        "data directory",
        std::fs::metadata(&g.data_dir)
            .map_err(|e| format!("{}: {e}", g.data_dir.display()))
            .and_then(|m| {
                let mode = m.permissions().mode() & 0o777;
                if mode & 0o077 == 0 {
                    Ok(format!("{} is private ({mode:o})", g.data_dir.display()))
                } else {
                    Err(format!(
                        "{} is readable by others ({mode:o}); chmod 700 it",
                        g.data_dir.display()
                    ))
                }
            }),
    );
    let Ok(l) = local else {
        add("database", local.map(|_| String::new()));
        return checks;
    };
    add("database", Ok("opens, migrations applied".into()));
    match l.store.list_gateways().await {
        Ok(gateways) => {
            for gw in gateways {
                let root = gw.root.clone().unwrap_or_else(|| "/".into());
                let r = std::fs::read_dir(&root)
                    .map(|_| format!("{} ({root}) is reachable", gw.display_name))
                    .map_err(|e| format!("{} ({root}): {e}", gw.display_name));
                add("storage gateway", r);
            }
        }
        Err(e) => add("storage gateway", Err(e.to_string())),
    }
    let now = crate::session::now();
    let newest = l
        .store
        .query_audit(&AuditFilter {
            since: Some(now + 300),
            limit: Some(1),
            ..Default::default()
        })
        .await;
    add(
        "clock",
        match newest {
            Ok(r) if r.is_empty() => Ok(format!(
                "{} (no audit record is in the future)",
                ferry_core::time::rfc3339(now)
            )),
            Ok(_) => Err(
                "audit records lie more than 5 minutes in the future: the clock went back".into(),
            ),
            Err(e) => Err(e.to_string()),
        },
    );
    if l.cfg.tls {
        let cert = l
            .cfg
            .tls_cert
            .clone()
            .unwrap_or_else(|| l.cfg.data_dir.join("tls").join("server.pem"));
        add("certificate", certificate(&cert));
    }
    add("server", answers(g, &l.base_url).await);
    // The administrator's commands call the URL of the credentials file: it must be the one that answers.
    let path = l
        .cfg
        .data_dir
        .join(ferry_server::bootstrap::CREDENTIALS_FILE);
    let stored = std::fs::read_to_string(&path)
        .map_err(|e| format!("{}: {e}", path.display()))
        .and_then(|t| {
            serde_json::from_str::<ferry_server::AdminCredentials>(&t)
                .map_err(|e| format!("{}: {e}", path.display()))
        });
    let admin_url = match stored {
        Ok(c) if c.url == l.base_url => Ok(format!(
            "{} names the server's URL",
            path.display()
        )),
        Ok(c) => answers(g, &c.url).await.and_then(|_| {
            Err(format!(
                "{} names {}, but the server last started at {}: start `ferry serve` again to record it",
                path.display(),
                c.url,
                l.base_url
            ))
        }),
        Err(e) => Err(e),
    };
    add("admin credentials", admin_url);
    checks
}

/// Whether `url` answers the manager API's `/info` (trusting the CA the commands would).
async fn answers(g: &Global, url: &str) -> Result<String, String> {
    let ca = crate::session::ca_for(g, None, None);
    let client = crate::session::client_for(url, ca.as_deref()).map_err(|e| format!("{e:#}"))?;
    client
        .manager(ferry_client::Method::GET, "/info", &[], None)
        .await
        .map(|_| format!("{url} answers"))
        .map_err(|e| format!("{url} does not answer: {e} (is `ferry serve` running?)"))
}

/// The certificate parses and how long until it expires.
fn certificate(path: &std::path::Path) -> Result<String, String> {
    let pem = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let days =
        ferry_server::tls::days_left(&pem).map_err(|e| format!("{}: {e}", path.display()))?;
    if days < 0 {
        Err(format!("{} expired {} days ago", path.display(), -days))
    } else if days < 14 {
        Err(format!("{} expires in {days} days", path.display()))
    } else {
        Ok(format!("{} valid for {days} more days", path.display()))
    }
}

pub async fn self_diagnostic(g: &Global) -> anyhow::Result<()> {
    let checks = diagnose(g).await;
    let rows: Vec<Value> = checks
        .iter()
        .map(|c| match &c.result {
            Ok(m) => json!({"check": c.name, "status": "OK", "detail": m}),
            Err(m) => json!({"check": c.name, "status": "FAIL", "detail": m}),
        })
        .collect();
    match g.format {
        Format::Json => println!("{}", serde_json::to_string_pretty(&rows)?),
        Format::Table | Format::Csv => {
            for r in &rows {
                println!(
                    "{:<4}  {:<18} {}",
                    r["status"].as_str().unwrap_or(""),
                    r["check"].as_str().unwrap_or(""),
                    r["detail"].as_str().unwrap_or("")
                );
            }
        }
    }
    let failed = checks.iter().filter(|c| c.result.is_err()).count();
    if failed > 0 {
        bail!("{failed} check(s) failed");
    }
    Ok(())
}
