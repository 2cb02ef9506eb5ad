//! Transfer and delete tasks: `ferry transfer`, `ferry rm` (a delete task), and `ferry task list|show|wait|
//! cancel|events|files`, through the Transfer API.

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use ferry_client::{FerryClient, Method};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::Global;
use crate::files::{CollPath, report};
use crate::output::{Format, print_list, print_record};
use crate::session::{Conn, Connection};

async fn transfer_api(g: &Global, conn: &Connection) -> anyhow::Result<FerryClient> {
    Conn::open(g, conn).await?.transfer().await
}

#[derive(Clone, Copy, clap::ValueEnum)]
pub enum SyncLevel {
    /// Skip files that exist at the destination.
    Exists,
    /// … and have the same size.
    Size,
    /// … and are not older than the source.
    Mtime,
    /// … and have the same checksum.
    Checksum,
}

#[derive(clap::Args)]
pub struct TransferArgs {
    /// Source: COLLECTION_ID:/path (with --batch: COLLECTION_ID or COLLECTION_ID:/base).
    source: CollPath,
    /// Destination: COLLECTION_ID:/path (with --batch: COLLECTION_ID or COLLECTION_ID:/base).
    destination: CollPath,
    /// Copy a folder and everything in it.
    #[arg(short, long)]
    recursive: bool,
    /// Copy only files that are not already up to date at the destination.
    #[arg(long, value_enum)]
    sync_level: Option<SyncLevel>,
    /// Re-read every copy and compare its checksum with the source's before it gets its name (the default).
    #[arg(long, overrides_with = "no_verify")]
    verify: bool,
    /// Do not re-read the copies (faster; the source is still hashed while it is read).
    #[arg(long)]
    no_verify: bool,
    /// The checksum: BLAKE3 (Ferry's default, fastest), MD5 (Globus's), SHA1, SHA256, SHA512, ADLER32, CRC32C.
    #[arg(long)]
    checksum_algorithm: Option<String>,
    /// Give copies the source's modification time.
    #[arg(long)]
    preserve_mtime: bool,
    /// Remove what the destination folder has beyond the source's files (needs --recursive).
    #[arg(long, requires = "recursive")]
    delete_extra: bool,
    /// Skip source files that cannot be read (listed by `ferry task files --errors`) instead of failing.
    #[arg(long)]
    skip_source_errors: bool,
    /// Fail at once when the destination is out of space, instead of waiting for space.
    #[arg(long)]
    fail_on_quota_errors: bool,
    /// Leave out names matching this pattern (repeatable; rules apply in order, first match wins).
    #[arg(long, value_name = "GLOB")]
    exclude: Vec<String>,
    /// A name to keep even if a later --exclude matches it (repeatable).
    #[arg(long, value_name = "GLOB")]
    include: Vec<String>,
    #[arg(long)]
    label: Option<String>,
    /// When to give up (ISO 8601, e.g. 2026-12-01T00:00:00Z).
    #[arg(long)]
    deadline: Option<String>,
    /// Read items from FILE (or - for standard input): one `SOURCE_PATH DESTINATION_PATH [--recursive]` per line,
    /// relative to the bases given as source and destination; # starts a comment.
    #[arg(long, value_name = "FILE")]
    batch: Option<String>,
    /// Files copied at once.
    #[arg(long)]
    concurrency: Option<u32>,
    /// Wait for the task to end, with a progress bar (exit status 0 only if it succeeded).
    #[arg(long)]
    wait: bool,
    #[command(flatten)]
    conn: Connection,
}

/// The items of a `--batch` file.
fn batch_items(text: &str, src_base: &str, dst_base: &str) -> anyhow::Result<Vec<Value>> {
    let join = |base: &str, p: &str| {
        if p.starts_with('/') {
            p.to_string()
        } else {
            format!("{}/{p}", base.trim_end_matches('/'))
        }
    };
    let mut items = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let words: Vec<&str> = line.split_whitespace().collect();
        let (recursive, paths): (bool, Vec<&str>) = (
            words.iter().any(|w| *w == "--recursive" || *w == "-r"),
            words
                .iter()
                .copied()
                .filter(|w| !w.starts_with('-'))
                .collect(),
        );
        let [s, d] = paths[..] else {
            bail!(
                "batch line {}: expected SOURCE_PATH DESTINATION_PATH [--recursive], got {line:?}",
                n + 1
            );
        };
        items.push(
            json!({"DATA_TYPE": "transfer_item", "source_path": join(src_base, s),
            "destination_path": join(dst_base, d), "recursive": recursive}),
        );
    }
    if items.is_empty() {
        bail!("the batch has no items");
    }
    Ok(items)
}

pub async fn transfer(g: &Global, a: TransferArgs) -> anyhow::Result<()> {
    let items = match &a.batch {
        Some(f) => {
            let text = if f == "-" {
                std::io::read_to_string(std::io::stdin()).context("reading the batch from stdin")?
            } else {
                std::fs::read_to_string(f).with_context(|| format!("reading {f}"))?
            };
            batch_items(
                &text,
                a.source.path.as_deref().unwrap_or("/"),
                a.destination.path.as_deref().unwrap_or("/"),
            )?
        }
        None => {
            let mut item = json!({"DATA_TYPE": "transfer_item", "source_path": a.source.path(),
                "destination_path": a.destination.path(), "recursive": a.recursive});
            if let Some(alg) = &a.checksum_algorithm {
                item["checksum_algorithm"] = json!(alg.to_ascii_uppercase());
            }
            vec![item]
        }
    };
    let mut rules: Vec<Value> = Vec::new();
    for i in &a.include {
        rules.push(json!({"DATA_TYPE": "filter_rule", "method": "include", "name": i}));
    }
    for e in &a.exclude {
        rules.push(json!({"DATA_TYPE": "filter_rule", "method": "exclude", "name": e}));
    }
    let t = transfer_api(g, &a.conn).await?;
    let sid = t
        .json(Method::GET, "/v0.10/submission_id", &[], None)
        .await?;
    let mut doc = json!({
        "DATA_TYPE": "transfer",
        "submission_id": sid["value"],
        "source_endpoint": a.source.collection,
        "destination_endpoint": a.destination.collection,
        "DATA": items,
        "verify_checksum": !a.no_verify,
        "preserve_timestamp": a.preserve_mtime,
        "delete_destination_extra": a.delete_extra,
        "skip_source_errors": a.skip_source_errors,
        "fail_on_quota_errors": a.fail_on_quota_errors,
    });
    if !rules.is_empty() {
        doc["filter_rules"] = json!(rules);
    }
    if let Some(l) = a.sync_level {
        doc["sync_level"] = json!(l as u8);
    }
    if let Some(l) = &a.label {
        doc["label"] = json!(l);
    }
    if let Some(d) = &a.deadline {
        doc["deadline"] = json!(d);
    }
    if let Some(c) = a.concurrency {
        doc["perf_cc"] = json!(c);
    }
    let r = t
        .json(Method::POST, "/v0.10/transfer", &[], Some(&doc))
        .await?;
    submitted(g, &t, r, a.wait).await
}

/// Reports a submission, and waits for the task when asked.
async fn submitted(g: &Global, t: &FerryClient, r: Value, wait: bool) -> anyhow::Result<()> {
    let id = r["task_id"].as_str().unwrap_or_default().to_string();
    match g.format {
        Format::Json => println!("{}", serde_json::to_string_pretty(&r)?),
        _ if wait => eprintln!("Task {id} submitted."),
        _ => println!("{}\nTask ID: {id}", r["message"].as_str().unwrap_or("")),
    }
    if wait {
        let id = Uuid::parse_str(&id).context("the server returned no task id")?;
        return wait_for(
            g,
            t,
            id,
            None,
            Duration::from_secs_f64(WAIT_EVERY_SECS),
            false,
        )
        .await;
    }
    Ok(())
}

#[derive(clap::Args)]
pub struct RmArgs {
    /// COLLECTION_ID:/path of the file or folder to delete.
    target: CollPath,
    /// Delete a folder and everything in it.
    #[arg(short, long)]
    recursive: bool,
    /// Succeed when the path does not exist.
    #[arg(long)]
    ignore_missing: bool,
    /// Treat *, ? and [...] in the last name of the path as patterns.
    #[arg(long)]
    glob: bool,
    #[arg(long)]
    label: Option<String>,
    /// Submit the delete task and return without waiting for it.
    #[arg(long)]
    no_wait: bool,
    #[command(flatten)]
    conn: Connection,
}

/// `ferry rm`: a delete task (retried on faults, each path through the access check), waited for by default.
pub async fn rm(g: &Global, a: RmArgs) -> anyhow::Result<()> {
    let path = a.target.path.as_deref().with_context(|| {
        format!(
            "rm: name a path in the collection ({}:/path)",
            a.target.collection
        )
    })?;
    let t = transfer_api(g, &a.conn).await?;
    let sid = t
        .json(Method::GET, "/v0.10/submission_id", &[], None)
        .await?;
    let mut doc = json!({
        "DATA_TYPE": "delete",
        "submission_id": sid["value"],
        "endpoint": a.target.collection,
        "recursive": a.recursive,
        "ignore_missing": a.ignore_missing,
        "interpret_globs": a.glob,
        "DATA": [{"DATA_TYPE": "delete_item", "path": path}],
    });
    if let Some(l) = &a.label {
        doc["label"] = json!(l);
    }
    let r = t
        .json(Method::POST, "/v0.10/delete", &[], Some(&doc))
        .await?;
    if a.no_wait {
        return submitted(g, &t, r, false).await;
    }
    let id = r["task_id"].as_str().unwrap_or_default();
    let id = Uuid::parse_str(id).context("the server returned no task id")?;
    wait_for(g, &t, id, None, Duration::from_millis(250), true).await?;
    report(
        g,
        &json!({"code": "Deleted", "path": a.target.to_string(), "task_id": id}),
        &format!("Deleted {}.", a.target),
    );
    Ok(())
}

#[derive(clap::Subcommand)]
pub enum TaskCmd {
    /// Your tasks, newest first.
    List {
        /// How many.
        #[arg(long, default_value_t = 20)]
        limit: u32,
        /// Only tasks in these states (ACTIVE, INACTIVE, SUCCEEDED, FAILED; comma-separated).
        #[arg(long)]
        status: Option<String>,
        /// Only TRANSFER or DELETE tasks.
        #[arg(long = "type")]
        kind: Option<String>,
        #[command(flatten)]
        conn: Connection,
    },
    /// A task's state and counters.
    Show {
        id: Uuid,
        #[command(flatten)]
        conn: Connection,
    },
    /// Wait until a task ends, with a progress bar on a terminal. Exit status 0 only if it SUCCEEDED; 1 if it
    /// FAILED or is INACTIVE when the wait ends (a fault that needs attention), 124 on --timeout.
    Wait {
        id: Uuid,
        /// Give up waiting after this many seconds (the task goes on).
        #[arg(long)]
        timeout: Option<u64>,
        /// Seconds between checks (a check costs the server one small request; the end is seen at most this late).
        #[arg(long, default_value_t = WAIT_EVERY_SECS)]
        interval: f64,
        /// Keep waiting while the task is INACTIVE (it retries by itself) instead of stopping.
        #[arg(long)]
        through_inactive: bool,
        #[command(flatten)]
        conn: Connection,
    },
    /// Cancel a task: files not yet copied are not copied.
    Cancel {
        id: Uuid,
        #[command(flatten)]
        conn: Connection,
    },
    /// What happened to a task, newest first.
    Events {
        id: Uuid,
        #[arg(long, default_value_t = 100)]
        limit: u32,
        #[command(flatten)]
        conn: Connection,
    },
    /// The files a task copied, with their checksums (or, with --errors, the source errors it skipped).
    Files {
        id: Uuid,
        #[arg(long)]
        errors: bool,
        #[command(flatten)]
        conn: Connection,
    },
}

const TASK_FIELDS: &[(&str, &str)] = &[
    ("Task ID", "task_id"),
    ("Type", "type"),
    ("Label", "label"),
    ("Status", "status"),
    ("Details", "details"),
    ("Source", "source_endpoint_display_name"),
    ("Destination", "destination_endpoint_display_name"),
    ("Requested", "request_time"),
    ("Completed", "completion_time"),
    ("Deadline", "deadline"),
    ("Files", "files"),
    ("Files transferred", "files_transferred"),
    ("Files skipped (up to date)", "files_skipped"),
    ("Directories", "directories"),
    ("Bytes transferred", "bytes_transferred"),
    ("Bytes/second", "effective_bytes_per_second"),
    ("Faults", "faults"),
    ("Error", "error"),
];

/// The task document with what a person reads first: `details` (why it is as it is: the nice status and its
/// details while it runs, the fatal error's code once it failed) and `error` (the fatal error's description).
fn task_view(v: &Value) -> Value {
    let mut out = v.clone();
    let text = |x: &Value| x.as_str().filter(|s| !s.is_empty()).map(str::to_string);
    let details = match (
        text(&v["nice_status"]),
        text(&v["nice_status_details"]),
        text(&v["fatal_error"]["code"]),
    ) {
        (Some(n), Some(d), _) if n != d => Some(format!("{n}: {d}")),
        (Some(n), _, _) => Some(n),
        (None, Some(d), _) => Some(d),
        (None, None, code) => code,
    };
    out["details"] = json!(details);
    out["error"] = json!(text(&v["fatal_error"]["description"]));
    out
}

pub async fn task(g: &Global, cmd: TaskCmd) -> anyhow::Result<()> {
    match cmd {
        TaskCmd::List {
            limit,
            status,
            kind,
            conn,
        } => {
            let t = transfer_api(g, &conn).await?;
            let mut filter = Vec::new();
            if let Some(s) = status {
                filter.push(format!("status:{}", s.to_ascii_uppercase()));
            }
            if let Some(k) = kind {
                filter.push(format!("type:{}", k.to_ascii_uppercase()));
            }
            let mut q = vec![("limit", limit.to_string())];
            if !filter.is_empty() {
                q.push(("filter", filter.join("/")));
            }
            let v = t.json(Method::GET, "/v0.10/task_list", &q, None).await?;
            let rows = v["DATA"].as_array().cloned().unwrap_or_default();
            print_list(
                g.format,
                &rows,
                &[
                    ("Task ID", "task_id"),
                    ("Type", "type"),
                    ("Status", "status"),
                    ("Label", "label"),
                    ("Requested", "request_time"),
                    ("Files", "files"),
                    ("Bytes", "bytes_transferred"),
                ],
            );
        }
        TaskCmd::Show { id, conn } => {
            let t = transfer_api(g, &conn).await?;
            let v = t
                .json(Method::GET, &format!("/v0.10/task/{id}"), &[], None)
                .await?;
            print_record(g.format, &task_view(&v), TASK_FIELDS);
        }
        TaskCmd::Wait {
            id,
            timeout,
            interval,
            through_inactive,
            conn,
        } => {
            let t = transfer_api(g, &conn).await?;
            let every = Duration::from_secs_f64(interval.max(0.1));
            wait_for(
                g,
                &t,
                id,
                timeout.map(Duration::from_secs),
                every,
                through_inactive,
            )
            .await?;
        }
        TaskCmd::Cancel { id, conn } => {
            let t = transfer_api(g, &conn).await?;
            let v = t
                .json(Method::POST, &format!("/v0.10/task/{id}/cancel"), &[], None)
                .await?;
            report(g, &v, v["message"].as_str().unwrap_or("Cancelled."));
        }
        TaskCmd::Events { id, limit, conn } => {
            let t = transfer_api(g, &conn).await?;
            let v = t
                .json(
                    Method::GET,
                    &format!("/v0.10/task/{id}/event_list"),
                    &[("limit", limit.min(1000).to_string())],
                    None,
                )
                .await?;
            let rows = v["DATA"].as_array().cloned().unwrap_or_default();
            print_list(
                g.format,
                &rows,
                &[
                    ("Time", "time"),
                    ("Code", "code"),
                    ("Error", "is_error"),
                    ("Details", "details"),
                ],
            );
        }
        TaskCmd::Files { id, errors, conn } => {
            let t = transfer_api(g, &conn).await?;
            let what = if errors {
                "skipped_errors"
            } else {
                "successful_transfers"
            };
            let mut rows = Vec::new();
            let mut marker: Option<String> = None;
            loop {
                let q: Vec<(&str, String)> = marker.iter().map(|m| ("marker", m.clone())).collect();
                let v = t
                    .json(Method::GET, &format!("/v0.10/task/{id}/{what}"), &q, None)
                    .await?;
                rows.extend(v["DATA"].as_array().cloned().unwrap_or_default());
                match &v["next_marker"] {
                    Value::Null => break,
                    m => marker = Some(m.to_string().trim_matches('"').to_string()),
                }
            }
            let columns: &[(&str, &str)] = if errors {
                &[
                    ("Source", "source_path"),
                    ("Error", "error_code"),
                    ("Details", "error_details"),
                ]
            } else {
                &[
                    ("Source", "source_path"),
                    ("Destination", "destination_path"),
                    ("Size", "size"),
                    ("Algorithm", "checksum_algorithm"),
                    ("Checksum", "checksum"),
                ]
            };
            print_list(g.format, &rows, columns);
        }
    }
    Ok(())
}

/// A bar of files done out of files found, with bytes and rate; hidden when stderr is not a terminal.
fn task_bar(quiet: bool) -> ProgressBar {
    if quiet || !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(0);
    if let Ok(s) = ProgressStyle::with_template(
        "{spinner} [{bar:30}] {pos}/{len} files  {msg}  elapsed {elapsed}  ETA {eta}",
    ) {
        bar.set_style(s.progress_chars("=> "));
    }
    bar
}

fn human_bytes(n: f64) -> String {
    const UNITS: [&str; 5] = ["B", "KB", "MB", "GB", "TB"];
    let mut v = n;
    let mut i = 0;
    while v >= 1000.0 && i < UNITS.len() - 1 {
        v /= 1000.0;
        i += 1;
    }
    format!("{v:.1} {}", UNITS[i])
}

/// Polls a task until it ends (or is INACTIVE, unless `through_inactive`), showing progress.
/// How often a wait asks about its task once it settled: a late poll adds to what the user waits (at 1 s, half a
/// second on average: 2.7% of a 20 s transfer).
const WAIT_EVERY_SECS: f64 = 0.25;

async fn wait_for(
    g: &Global,
    t: &FerryClient,
    id: Uuid,
    timeout: Option<Duration>,
    every: Duration,
    through_inactive: bool,
) -> anyhow::Result<()> {
    let bar = task_bar(g.format == Format::Json);
    let start = Instant::now();
    let path = format!("/v0.10/task/{id}");
    loop {
        let v = t.json(Method::GET, &path, &[], None).await?;
        let status = v["status"].as_str().unwrap_or("").to_string();
        let n = |k: &str| v[k].as_u64().unwrap_or(0);
        bar.set_length(n("files"));
        bar.set_position(n("files_transferred") + n("files_skipped"));
        bar.set_message(format!(
            "{} ({}/s){}",
            human_bytes(n("bytes_transferred") as f64),
            human_bytes(n("effective_bytes_per_second") as f64),
            match v["nice_status"].as_str() {
                Some(s) if s != "OK" && s != "Queued" => format!("  [{s}]"),
                _ => String::new(),
            }
        ));
        bar.tick();
        let done = match status.as_str() {
            "SUCCEEDED" | "FAILED" => true,
            "INACTIVE" => !through_inactive,
            _ => false,
        };
        if done {
            bar.finish_and_clear();
            if g.format == Format::Json {
                println!("{}", serde_json::to_string_pretty(&v)?);
            } else {
                print_record(g.format, &task_view(&v), TASK_FIELDS);
            }
            return match status.as_str() {
                "SUCCEEDED" => Ok(()),
                "INACTIVE" => Err(crate::Exit(
                    1,
                    format!(
                        "task {id} is INACTIVE ({}): it retries by itself; `ferry task wait --through-inactive` waits on",
                        v["nice_status_details"].as_str().or(v["nice_status"].as_str()).unwrap_or("")
                    ),
                )
                .into()),
                _ => Err(crate::Exit(
                    1,
                    format!(
                        "task {id} failed ({}): {}",
                        v["fatal_error"]["code"].as_str().unwrap_or("FAILED"),
                        v["fatal_error"]["description"].as_str().unwrap_or("see `ferry task events`")
                    ),
                )
                .into()),
            };
        }
        if let Some(limit) = timeout
            && start.elapsed() >= limit
        {
            bar.finish_and_clear();
            return Err(crate::Exit(
                124,
                format!("task {id} is still {status} after the timeout"),
            )
            .into());
        }
        // Short tasks end within a poll or two: start fast (a late poll adds up to its interval to what the user
        // waits), then settle at the asked interval: about 16 polls in the first second, 5 in the next.
        let waited = start.elapsed();
        tokio::time::sleep(every.min(Duration::from_millis(20) + waited / 8)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_task_shows_its_details_and_error() {
        let failed = json!({"status": "FAILED", "nice_status": null,
            "fatal_error": {"code": "NOT_FOUND", "description": "/run42 does not exist"}});
        let v = task_view(&failed);
        assert_eq!(v["details"], "NOT_FOUND");
        assert_eq!(v["error"], "/run42 does not exist");
        let stalled = json!({"status": "INACTIVE", "nice_status": "PERMISSION_DENIED",
            "nice_status_details": "no write access to /dst", "fatal_error": null});
        let v = task_view(&stalled);
        assert_eq!(v["details"], "PERMISSION_DENIED: no write access to /dst");
        assert!(v["error"].is_null());
        // Each field the table shows is a plain key of the document it prints.
        for (_, key) in TASK_FIELDS {
            assert!(!key.contains('.'), "{key}");
        }
    }

    #[test]
    fn batch_lines_join_the_bases() {
        let items =
            batch_items("# c\n a.txt b.txt\n/abs /x --recursive\n", "/src", "/dst/").unwrap();
        assert_eq!(items[0]["source_path"], "/src/a.txt");
        assert_eq!(items[0]["destination_path"], "/dst/b.txt");
        assert_eq!(items[1]["source_path"], "/abs");
        assert_eq!(items[1]["recursive"], true);
        assert!(batch_items("one\n", "/", "/").is_err());
        assert!(batch_items("# only\n", "/", "/").is_err());
    }
}

#[derive(clap::Subcommand)]
pub enum WebhookCmd {
    /// Call URL with a signed JSON event whenever one of your tasks succeeds, fails or goes INACTIVE.
    /// The `Ferry-Signature` header is a JWS of the body, checkable with the server's /jwk.json.
    Add {
        /// The webhook's URL (https://…).
        #[arg(value_name = "URL")]
        webhook_url: String,
        #[command(flatten)]
        conn: Connection,
    },
    /// Your webhooks.
    List {
        #[command(flatten)]
        conn: Connection,
    },
    /// Stop calling a webhook.
    Remove {
        id: Uuid,
        #[command(flatten)]
        conn: Connection,
    },
}

pub async fn webhook(g: &Global, cmd: WebhookCmd) -> anyhow::Result<()> {
    match cmd {
        WebhookCmd::Add {
            webhook_url: url,
            conn,
        } => {
            let t = transfer_api(g, &conn).await?;
            let v = t
                .json(
                    Method::POST,
                    "/v0.10/webhook",
                    &[],
                    Some(&json!({"url": url})),
                )
                .await?;
            print_record(
                g.format,
                &v,
                &[("Webhook ID", "id"), ("URL", "url"), ("Keys", "jwks_uri")],
            );
        }
        WebhookCmd::List { conn } => {
            let t = transfer_api(g, &conn).await?;
            let v = t
                .json(Method::GET, "/v0.10/webhook_list", &[], None)
                .await?;
            let rows = v["DATA"].as_array().cloned().unwrap_or_default();
            print_list(
                g.format,
                &rows,
                &[("Webhook ID", "id"), ("URL", "url"), ("Created", "created")],
            );
        }
        WebhookCmd::Remove { id, conn } => {
            let t = transfer_api(g, &conn).await?;
            let v = t
                .json(Method::DELETE, &format!("/v0.10/webhook/{id}"), &[], None)
                .await?;
            report(g, &v, "Removed.");
        }
    }
    Ok(())
}
