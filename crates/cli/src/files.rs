//! A person's file commands: `ls`, `stat`, `mkdir` and `rename` through the Transfer API, and `get` through the
//! collection's HTTPS door (`<url>/data/<collection>/<path>`), streamed, with a progress bar (`put`: see put.rs).

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use ferry_client::{ClientError, FerryClient, Method};
use indicatif::{ProgressBar, ProgressStyle};
use reqwest::header;
use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;
use uuid::Uuid;

use crate::Global;
use crate::output::{Format, print_list, print_record};
use crate::session::{Conn, Connection};

/// How long a transfer may go without moving a byte before it is given up.
const STALL: Duration = Duration::from_secs(120);
/// The largest page the Transfer API's `ls` serves.
const LS_PAGE: u64 = 100_000;
/// What `COLLECTION_ID` alone means: the collection's default folder.
pub(crate) const DEFAULT_DIR: &str = "/~/";

/// `COLLECTION_ID:/path`, or `COLLECTION_ID` alone for the collection's default folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CollPath {
    pub collection: Uuid,
    /// None when the collection was named alone.
    pub path: Option<String>,
}

impl std::str::FromStr for CollPath {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let (id, path) = match s.split_once(':') {
            Some((id, p)) => (id, Some(p)),
            None => (s, None),
        };
        let collection = Uuid::parse_str(id).map_err(|_| {
            format!(
                "{id:?} is not a collection id: write COLLECTION_ID:/path, or COLLECTION_ID alone for its \
                 default folder"
            )
        })?;
        match path {
            None | Some("") => Ok(CollPath {
                collection,
                path: None,
            }),
            Some(p) if p.starts_with('/') => Ok(CollPath {
                collection,
                path: Some(p.to_string()),
            }),
            Some(p) => Err(format!(
                "{p:?}: the path after the collection id must start with / (e.g. {collection}:/~/{p} in the \
                 default folder)"
            )),
        }
    }
}

impl std::fmt::Display for CollPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.collection, self.path())
    }
}

impl CollPath {
    pub fn path(&self) -> &str {
        self.path.as_deref().unwrap_or(DEFAULT_DIR)
    }

    /// The path, for commands that must not act on a whole collection's default folder.
    fn named(&self, what: &str) -> anyhow::Result<&str> {
        self.path.as_deref().with_context(|| {
            format!(
                "{what}: name a path in the collection ({}:/path)",
                self.collection
            )
        })
    }

    /// The URL path of this file at the HTTPS door, each segment percent-encoded.
    pub(crate) fn data_url(&self) -> anyhow::Result<String> {
        let mut out = format!("/data/{}", self.collection);
        for seg in self.path().split('/').filter(|s| !s.is_empty()) {
            // URLs resolve dot segments before they are sent: they would name another file than the one meant.
            if seg == "." || seg == ".." {
                bail!(
                    "{}: paths with . or .. segments are not allowed here; write the path out",
                    self
                );
            }
            out.push('/');
            out.push_str(&encode_segment(seg));
        }
        Ok(out)
    }
}

/// Percent-encodes everything but RFC 3986's unreserved characters.
fn encode_segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The last name of a path (`/a/b.txt` → `b.txt`); None for a folder path (`/a/`, `/~/`).
fn last_name(path: &str) -> Option<&str> {
    if path.ends_with('/') {
        return None;
    }
    path.rsplit('/')
        .next()
        .filter(|n| !n.is_empty() && *n != "~")
}

fn ls_path(id: Uuid, op: &str) -> String {
    format!("/v0.10/operation/endpoint/{id}/{op}")
}

async fn transfer(g: &Global, conn: &Connection) -> anyhow::Result<FerryClient> {
    Conn::open(g, conn).await?.transfer().await
}

pub(crate) async fn https(
    g: &Global,
    conn: &Connection,
    collection: Uuid,
) -> anyhow::Result<FerryClient> {
    Conn::open(g, conn)
        .await?
        .collection_https(collection)
        .await
}

// ---- ls, stat, mkdir, rename ----

#[derive(clap::Args)]
pub struct LsArgs {
    /// COLLECTION_ID:/path of a folder (COLLECTION_ID alone: the collection's default folder, /~/).
    target: CollPath,
    /// Also show hidden entries (names starting with a dot).
    #[arg(short, long)]
    all: bool,
    /// A table of name, type, size, modification time, permissions, owner and group, instead of names alone.
    #[arg(short, long)]
    long: bool,
    /// Only names that match: `~*.txt` (wildcards), `=name` (exactly), `!` in front negates; a pattern
    /// with *, ? or [ and no such prefix is taken as wildcards.
    #[arg(long, value_name = "PATTERN")]
    filter: Option<String>,
    /// Show at most N entries.
    #[arg(long, value_name = "N")]
    limit: Option<u64>,
    #[command(flatten)]
    conn: Connection,
}

/// `name:` filter value: wildcards when the pattern looks like one and names no operator.
fn name_filter(pattern: &str) -> String {
    let has_op = pattern.starts_with(['~', '=', '!']);
    if !has_op && pattern.contains(['*', '?', '[']) {
        format!("name:~{pattern}")
    } else {
        format!("name:{pattern}")
    }
}

const FILE_FIELDS: &[(&str, &str)] = &[
    ("Name", "name"),
    ("Type", "type"),
    ("Size", "size"),
    ("Modified", "last_modified"),
    ("Permissions", "permissions"),
    ("User", "user"),
    ("Group", "group"),
    ("Link target", "link_target"),
];

pub async fn ls(g: &Global, a: LsArgs) -> anyhow::Result<()> {
    let t = transfer(g, &a.conn).await?;
    let path = ls_path(a.target.collection, "ls");
    let mut entries: Vec<Value> = Vec::new();
    let mut first: Option<Value> = None;
    let mut offset: u64 = 0;
    loop {
        let want = match a.limit {
            Some(n) => n.saturating_sub(entries.len() as u64).min(LS_PAGE),
            None => LS_PAGE,
        };
        if want == 0 {
            break;
        }
        let mut q = vec![
            ("path", a.target.path().to_string()),
            ("show_hidden", if a.all { "1" } else { "0" }.to_string()),
            ("limit", want.to_string()),
            ("offset", offset.to_string()),
        ];
        if let Some(f) = &a.filter {
            q.push(("filter", name_filter(f)));
        }
        let v = t.json(Method::GET, &path, &q, None).await?;
        let page = v["DATA"].as_array().cloned().unwrap_or_default();
        let n = page.len() as u64;
        entries.extend(page);
        offset += n;
        let total = v["total"].as_u64();
        first.get_or_insert(v);
        if n == 0 || total.is_none_or(|t| offset >= t) {
            break;
        }
    }
    let mut doc = first.unwrap_or_else(|| json!({"DATA_TYPE": "file_list"}));
    if let Some(names) = doc["unlisted_names"].as_array().filter(|n| !n.is_empty()) {
        eprintln!(
            "warning: {} name(s) are not UTF-8 and cannot be listed: {}",
            names.len(),
            names
                .iter()
                .map(|n| n.as_str().unwrap_or("?"))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    match g.format {
        Format::Json => {
            doc["length"] = json!(entries.len());
            doc["DATA"] = Value::Array(entries);
            println!("{}", serde_json::to_string_pretty(&doc)?);
        }
        Format::Table if !a.long => {
            for e in &entries {
                let name = e["name"].as_str().unwrap_or("");
                let slash = if e["type"] == "dir" { "/" } else { "" };
                println!("{name}{slash}");
            }
        }
        _ => print_list(g.format, &entries, FILE_FIELDS),
    }
    Ok(())
}

#[derive(clap::Args)]
pub struct StatArgs {
    /// COLLECTION_ID:/path of a file or folder.
    target: CollPath,
    #[command(flatten)]
    conn: Connection,
}

pub async fn stat(g: &Global, a: StatArgs) -> anyhow::Result<()> {
    let t = transfer(g, &a.conn).await?;
    let doc = t
        .json(
            Method::GET,
            &ls_path(a.target.collection, "stat"),
            &[("path", a.target.path().to_string())],
            None,
        )
        .await?;
    print_record(g.format, &doc, FILE_FIELDS);
    Ok(())
}

#[derive(clap::Args)]
pub struct MkdirArgs {
    /// COLLECTION_ID:/path of the folder to create (its parent must exist).
    target: CollPath,
    #[command(flatten)]
    conn: Connection,
}

pub async fn mkdir(g: &Global, a: MkdirArgs) -> anyhow::Result<()> {
    let path = a.target.named("mkdir")?;
    let t = transfer(g, &a.conn).await?;
    let v = t
        .json(
            Method::POST,
            &ls_path(a.target.collection, "mkdir"),
            &[],
            Some(&json!({"DATA_TYPE": "mkdir", "path": path})),
        )
        .await?;
    report(g, &v, &format!("Created the folder {}.", a.target));
    Ok(())
}

#[derive(clap::Args)]
pub struct RenameArgs {
    /// COLLECTION_ID:/path of the file or folder to rename or move.
    source: CollPath,
    /// Its new path in the same collection: /new/path (or COLLECTION_ID:/new/path with the same collection).
    new_path: String,
    #[command(flatten)]
    conn: Connection,
}

pub async fn rename(g: &Global, a: RenameArgs) -> anyhow::Result<()> {
    let old = a.source.named("rename")?;
    let new = if a.new_path.starts_with('/') {
        a.new_path.clone()
    } else {
        let to: CollPath = a.new_path.parse().map_err(|e| anyhow!("NEW_PATH: {e}"))?;
        if to.collection != a.source.collection {
            bail!(
                "NEW_PATH: rename works within one collection; copying to another collection is a transfer"
            );
        }
        to.named("NEW_PATH")?.to_string()
    };
    let t = transfer(g, &a.conn).await?;
    let v = t
        .json(
            Method::POST,
            &ls_path(a.source.collection, "rename"),
            &[],
            Some(&json!({"DATA_TYPE": "rename", "old_path": old, "new_path": new})),
        )
        .await?;
    report(
        g,
        &v,
        &format!("Renamed {} to {}:{new}.", a.source, a.source.collection),
    );
    Ok(())
}

/// A result document as JSON, or a sentence for people.
pub fn report(g: &Global, v: &Value, sentence: &str) {
    match g.format {
        Format::Json => println!("{}", serde_json::to_string_pretty(v).unwrap_or_default()),
        _ => println!("{sentence}"),
    }
}

// ---- the HTTPS door: get, put ----

/// A bar with bytes, rate and time left on stderr; hidden when stderr is no terminal or when asked to be quiet.
pub(crate) fn progress(len: Option<u64>, quiet: bool, label: &str) -> ProgressBar {
    if quiet || !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let (bar, template) = match len {
        Some(n) => (
            ProgressBar::new(n),
            "{msg} [{bar:30}] {bytes}/{total_bytes} {binary_bytes_per_sec} ETA {eta}",
        ),
        None => (
            ProgressBar::no_length(),
            "{msg} {bytes} {binary_bytes_per_sec}",
        ),
    };
    let style = ProgressStyle::with_template(template)
        .map(|s| s.progress_chars("=> "))
        .unwrap_or_else(|_| ProgressStyle::default_bar());
    bar.set_style(style);
    bar.set_message(label.to_string());
    bar
}

#[derive(clap::Args)]
pub struct GetArgs {
    /// COLLECTION_ID:/path of the file to download.
    source: CollPath,
    /// Where to save it [default: its name, in the current folder]; a folder: saved in it under its name.
    /// A file already there is replaced, but only once the download is complete.
    local: Option<PathBuf>,
    /// Continue an interrupted download from what LOCAL.part holds.
    #[arg(long)]
    resume: bool,
    /// No progress bar and no closing message.
    #[arg(short, long)]
    quiet: bool,
    #[command(flatten)]
    conn: Connection,
}

/// `LOCAL.part` beside LOCAL: the download goes there, and is renamed only once complete.
fn part_path(local: &Path) -> PathBuf {
    let mut name = local.file_name().unwrap_or_default().to_os_string();
    name.push(".part");
    local.with_file_name(name)
}

/// `bytes FIRST-LAST/SIZE` → (FIRST, SIZE).
fn content_range(v: Option<&header::HeaderValue>) -> Option<(u64, u64)> {
    let s = v?.to_str().ok()?.strip_prefix("bytes ")?;
    let (range, size) = s.split_once('/')?;
    let (first, _) = range.split_once('-')?;
    Some((first.trim().parse().ok()?, size.trim().parse().ok()?))
}

pub async fn get(g: &Global, a: GetArgs) -> anyhow::Result<()> {
    let remote = a.source.named("get")?;
    let name = last_name(remote).with_context(|| {
        format!(
            "{}: get downloads one file; name a file, not a folder",
            a.source
        )
    })?;
    let local = match &a.local {
        None => PathBuf::from(name),
        Some(p) if p.is_dir() => p.join(name),
        Some(p) => p.clone(),
    };
    let part = part_path(&local);
    let url = a.source.data_url()?;
    let http = https(g, &a.conn, a.source.collection).await?;

    let mut offset = if a.resume {
        tokio::fs::metadata(&part)
            .await
            .map(|m| m.len())
            .unwrap_or(0)
    } else {
        0
    };
    let mut rb = http.streaming(Method::GET, &url);
    if offset > 0 {
        rb = rb.header(header::RANGE, format!("bytes={offset}-"));
    }
    let mut resp = match http.send_streaming(rb).await {
        Ok(r) => r,
        // The part is as long as the file or longer: it cannot be continued, so start over.
        Err(ClientError::Api { status: 416, .. }) if offset > 0 => {
            offset = 0;
            http.send_streaming(http.streaming(Method::GET, &url))
                .await?
        }
        Err(e) => return Err(e.into()),
    };
    // A partial answer continues the part; a whole one (the server ignored the range) starts over.
    let (start, total) = if resp.status().as_u16() == 206 {
        match content_range(resp.headers().get(header::CONTENT_RANGE)) {
            Some((first, size)) if first == offset => (offset, Some(size)),
            _ => bail!("the server answered with another part of the file than the one asked for"),
        }
    } else {
        (0, resp.content_length())
    };
    let mut file = if start > 0 {
        tokio::fs::OpenOptions::new().append(true).open(&part).await
    } else {
        tokio::fs::File::create(&part).await
    }
    .with_context(|| format!("cannot write {}", part.display()))?;

    let bar = progress(total, a.quiet, name);
    bar.set_position(start);
    let mut got = start;
    let copied: anyhow::Result<()> = async {
        loop {
            let chunk = tokio::time::timeout(STALL, resp.chunk())
                .await
                .map_err(|_| anyhow!("no data for {} s", STALL.as_secs()))?
                .context("the download broke off")?;
            let Some(chunk) = chunk else { break };
            file.write_all(&chunk)
                .await
                .with_context(|| format!("cannot write {}", part.display()))?;
            got += chunk.len() as u64;
            bar.set_position(got);
        }
        file.flush().await?;
        file.sync_all().await?;
        if let Some(t) = total
            && got != t
        {
            bail!("the server sent {got} of {t} bytes");
        }
        Ok(())
    }
    .await;
    bar.finish_and_clear();
    drop(file);
    if let Err(e) = copied {
        if got == 0 {
            let _ = tokio::fs::remove_file(&part).await;
            return Err(e);
        }
        return Err(e.context(format!(
            "{} is incomplete ({got} bytes kept in {}); run the same command with --resume to continue",
            local.display(),
            part.display()
        )));
    }
    tokio::fs::rename(&part, &local)
        .await
        .with_context(|| format!("cannot rename {} to {}", part.display(), local.display()))?;
    if !a.quiet {
        report(
            g,
            &json!({"code": "Downloaded", "source": a.source.to_string(), "local": local, "size": got}),
            &format!(
                "Downloaded {} to {} ({got} bytes).",
                a.source,
                local.display()
            ),
        );
    }
    Ok(())
}

/// Resolves once the upload has not moved for `STALL` (a server that stopped reading), or when the server has
/// not answered long after the last byte (storing a large file may take a while, but not forever).
pub(crate) async fn stalled(bar: &ProgressBar, len: u64) -> anyhow::Error {
    let mut last = bar.position();
    let mut idle = 0;
    loop {
        tokio::time::sleep(STALL).await;
        let now = bar.position();
        idle = if now == last { idle + 1 } else { 0 };
        last = now;
        if idle >= 1 && now < len {
            return anyhow!("no progress for {} s after {now} bytes", STALL.as_secs());
        }
        if idle >= 10 {
            return anyhow!(
                "the server has not answered {} s after the last byte",
                STALL.as_secs() * 10
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn collection_paths() {
        let id = "0f0e0d0c-0b0a-0908-0706-050403020100";
        let p: CollPath = format!("{id}:/a b/c").parse().unwrap();
        assert_eq!(p.path(), "/a b/c");
        assert_eq!(p.data_url().unwrap(), format!("/data/{id}/a%20b/c"));
        let bare: CollPath = id.parse().unwrap();
        assert_eq!(bare.path(), "/~/");
        assert_eq!(bare.data_url().unwrap(), format!("/data/{id}/~"));
        assert!(bare.named("rm").is_err());
        assert_eq!(format!("{id}:").parse::<CollPath>().unwrap().path(), "/~/");
        let e = format!("{id}:rel/x").parse::<CollPath>().unwrap_err();
        assert!(e.contains("must start with /"), "{e}");
        let e = "nope:/x".parse::<CollPath>().unwrap_err();
        assert!(e.contains("not a collection id"), "{e}");
        let dots: CollPath = format!("{id}:/a/../b").parse().unwrap();
        assert!(dots.data_url().is_err());
        let odd: CollPath = format!("{id}:/ü/%?#").parse().unwrap();
        assert_eq!(
            odd.data_url().unwrap(),
            format!("/data/{id}/%C3%BC/%25%3F%23")
        );
    }

    #[test]
    fn names_filters_and_ranges() {
        assert_eq!(last_name("/a/b.txt"), Some("b.txt"));
        assert_eq!(last_name("/a/"), None);
        assert_eq!(last_name("/~"), None);
        assert_eq!(name_filter("*.txt"), "name:~*.txt");
        assert_eq!(name_filter("=a*"), "name:=a*");
        assert_eq!(name_filter("plain"), "name:plain");
        assert_eq!(
            part_path(Path::new("/x/y.bin")),
            PathBuf::from("/x/y.bin.part")
        );
        let v = header::HeaderValue::from_static("bytes 5-9/10");
        assert_eq!(content_range(Some(&v)), Some((5, 10)));
        assert_eq!(content_range(None), None);
    }
}
