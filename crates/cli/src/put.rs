//! `ferry put`: one file uploaded over HTTPS in the tus 1.0 protocol that the web app's uploads use
//! (`/uploads/<collection>`), in chunks, each checked by the server against its BLAKE3 digest before it is kept.
//! The server keeps the bytes under a hidden temporary name and gives the file its real name only once the last
//! byte arrived, so nothing half-uploaded ever appears there.
//!
//! Resumable: the upload's URL is recorded, with the local file's identity (absolute path, size, modification
//! time) and the destination, in a small state file under the CLI's config folder. The same command run again
//! asks the server how much arrived (`HEAD`) and sends the rest. An upload the server no longer knows, or a file
//! that changed since, starts over, and says so; `--no-resume` starts over whatever was recorded.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, UNIX_EPOCH};

use anyhow::{Context, bail};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use bytes::Bytes;
use ferry_client::{ClientError, FerryClient, Method};
use ferry_proto::tus;
use futures_util::StreamExt;
use indicatif::ProgressBar;
use reqwest::header;
use serde::{Deserialize, Serialize};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncSeekExt};

use crate::Global;
use crate::files::{CollPath, DEFAULT_DIR, https, progress, report, stalled};
use crate::session::{Connection, config_dir};

/// Bytes per `PATCH`: 8 MiB. Each chunk is read into memory and hashed before it is sent (its digest goes in a
/// header ahead of the body), so it must stay small; a request that breaks loses at most one chunk (the server
/// keeps none of a chunk it could not check); and it is large enough that the round trip and access check of each
/// request cost little beside the time the bytes take, even on a fast link. With `--limit-rate`, a chunk is at
/// most one second's worth, so that the pace is kept evenly and an interruption loses little.
const CHUNK: u64 = 8 * 1024 * 1024;
/// Pieces a chunk is handed to the connection in, so that the progress bar moves within a chunk.
const PIECE: usize = 256 * 1024;
/// Chunks refused in a row (409: the server stands at another offset; 460: damaged on the way) before giving up.
const REFUSALS: u32 = 5;
/// Where the state files of unfinished uploads live, in the CLI's config folder.
const STATE_DIR: &str = "uploads";

#[derive(clap::Args)]
pub struct PutArgs {
    /// The local file to upload.
    local: PathBuf,
    /// COLLECTION_ID:/path to upload to. A path ending in / (or COLLECTION_ID alone: the default folder) is a
    /// folder, and the file keeps its name in it. A file already there is replaced once the upload is
    /// complete; an interrupted upload leaves nothing under the name.
    dest: CollPath,
    /// Start a fresh upload, even if an interrupted one of this file to this destination could be resumed (it
    /// is cancelled).
    #[arg(long)]
    no_resume: bool,
    /// Send at most this many bytes per second (suffixes K, M, G: 1024-based), e.g. on a shared link.
    #[arg(long, value_name = "RATE", value_parser = parse_rate)]
    limit_rate: Option<u64>,
    /// No progress bar and no closing message.
    #[arg(short, long)]
    quiet: bool,
    #[command(flatten)]
    conn: Connection,
}

/// `1048576`, `512K`, `2M`, `1G`: bytes per second, more than zero.
fn parse_rate(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let (digits, unit) = match t.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => (&t[..i], c.to_ascii_uppercase()),
        _ => (t, 'B'),
    };
    let shift = match unit {
        'B' => 0,
        'K' => 10,
        'M' => 20,
        'G' => 30,
        _ => return Err(format!("{s:?}: the suffix may be K, M or G")),
    };
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("{s:?} is not a number of bytes per second (e.g. 500K, 2M)"))?;
    n.checked_mul(1 << shift)
        .filter(|&r| r > 0)
        .ok_or_else(|| format!("{s:?}: give a rate above zero, below 16 EiB/s"))
}

/// The local file and where it goes: an upload recorded for another identity is not this file's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Identity {
    /// Absolute, with symbolic links resolved.
    local: PathBuf,
    size: u64,
    /// Modification time, nanoseconds since the Unix epoch (u64: until the year 2554, and serde's flattening
    /// cannot carry a u128).
    mtime_ns: u64,
    /// `COLLECTION_ID:/path` of the file it becomes.
    dest: String,
}

/// What the state file of an unfinished upload holds.
#[derive(Debug, Serialize, Deserialize)]
struct State {
    /// The upload's URL, as the server named it (its `Location`, on the server's URL).
    url: String,
    #[serde(flatten)]
    identity: Identity,
}

impl Identity {
    fn of(local: &Path, meta: &std::fs::Metadata, dest: &str) -> anyhow::Result<Self> {
        let local = std::fs::canonicalize(local)
            .with_context(|| format!("cannot read {}", local.display()))?;
        let mtime_ns = meta
            .modified()
            .ok()
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .and_then(|d| u64::try_from(d.as_nanos()).ok())
            .unwrap_or(0);
        Ok(Identity {
            local,
            size: meta.len(),
            mtime_ns,
            dest: dest.to_string(),
        })
    }

    /// One state file per local file and destination: `<config>/uploads/<hash>.json`.
    fn state_path(&self) -> anyhow::Result<PathBuf> {
        let mut key = blake3::Hasher::new();
        key.update(self.local.as_os_str().as_encoded_bytes());
        key.update(b"\0");
        key.update(self.dest.as_bytes());
        let name = format!("{}.json", &key.finalize().to_hex()[..32]);
        Ok(config_dir()?.join(STATE_DIR).join(name))
    }
}

fn load_state(path: &Path) -> Option<State> {
    // A state file that cannot be read or understood is as good as none: the upload starts over.
    serde_json::from_slice(&std::fs::read(path).ok()?).ok()
}

fn save_state(path: &Path, s: &State) -> anyhow::Result<()> {
    let dir = path.parent().context("the state file has no folder")?;
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    ferry_server::bootstrap::write_private(path, &serde_json::to_vec_pretty(s)?)
        .with_context(|| format!("cannot write {}", path.display()))
}

fn forget_state(path: &Path) {
    let _ = std::fs::remove_file(path);
}

/// The destination as a file path: a folder (or the collection alone) gets the local file's name.
fn destination(dest: &CollPath, name: &str) -> CollPath {
    let path = match dest.path.as_deref() {
        None => format!("{DEFAULT_DIR}{name}"),
        Some(p) if p.ends_with('/') => format!("{p}{name}"),
        Some(p) => p.to_string(),
    };
    CollPath {
        collection: dest.collection,
        path: Some(path),
    }
}

/// `key base64` for `Upload-Metadata`.
fn metadata_pair(key: &str, value: &str) -> String {
    format!("{key} {}", BASE64.encode(value))
}

/// The path part of an upload's URL on `http`'s server; None for a URL on another server.
fn upload_path<'u>(http: &FerryClient, url: &'u str) -> Option<&'u str> {
    url.strip_prefix(http.base_url())
        .filter(|p| p.starts_with(tus::UPLOADS))
}

/// A tus request on the collection's server.
fn tus_request(http: &FerryClient, method: Method, path: &str) -> reqwest::RequestBuilder {
    http.streaming(method, path)
        .header(tus::RESUMABLE, tus::VERSION)
}

fn offset_of(resp: &reqwest::Response) -> Option<u64> {
    resp.headers()
        .get(tus::UPLOAD_OFFSET)?
        .to_str()
        .ok()?
        .parse()
        .ok()
}

/// How much of the upload at `path` arrived, and its length; None when the server no longer knows it.
async fn ask_offset(http: &FerryClient, path: &str) -> anyhow::Result<Option<(u64, u64)>> {
    let resp = match http
        .send_streaming(tus_request(http, Method::HEAD, path))
        .await
    {
        Ok(r) => r,
        Err(ClientError::Api {
            status: 404 | 410, ..
        }) => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let length = resp
        .headers()
        .get(tus::UPLOAD_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse().ok());
    match (offset_of(&resp), length) {
        (Some(o), Some(l)) => Ok(Some((o, l))),
        _ => bail!(
            "the server's answer gives no {} and {}",
            tus::UPLOAD_OFFSET,
            tus::UPLOAD_LENGTH
        ),
    }
}

/// Begins an upload of `size` bytes to `dest`; the path of its URL.
async fn create(http: &FerryClient, dest: &CollPath, size: u64) -> anyhow::Result<String> {
    let name = dest.path().rsplit('/').next().unwrap_or_default();
    let metadata = format!(
        "{},{}",
        metadata_pair(tus::METADATA_PATH, dest.path()),
        metadata_pair("filename", name)
    );
    let rb = tus_request(http, Method::POST, &tus::uploads_path(dest.collection))
        .header(tus::UPLOAD_LENGTH, size)
        .header(tus::UPLOAD_METADATA, metadata);
    let resp = http.send_streaming(rb).await?;
    let location = resp
        .headers()
        .get(header::LOCATION)
        .and_then(|v| v.to_str().ok())
        .context("the server began the upload but gave no Location for it")?;
    Ok(match location.strip_prefix(http.base_url()) {
        Some(path) => path.to_string(),
        None => location.to_string(),
    })
}

/// Cancels an upload that will not be continued, so that its bytes do not wait a day on the server for the
/// sweep. Best effort: it may be gone already.
async fn cancel(http: &FerryClient, path: &str) {
    let _ = http
        .send_streaming(tus_request(http, Method::DELETE, path))
        .await;
}

/// A chunk the server refused but would take again from where it stands.
fn is_refusal(e: &anyhow::Error) -> bool {
    matches!(
        e.downcast_ref::<ClientError>(),
        Some(ClientError::Api { status, .. })
            if *status == 409 || *status == tus::CHECKSUM_MISMATCH
    )
}

/// Sends one chunk at `offset`, with its digest; the new offset.
async fn send_chunk(
    http: &FerryClient,
    path: &str,
    offset: u64,
    chunk: Bytes,
    bar: &ProgressBar,
) -> anyhow::Result<u64> {
    let len = chunk.len() as u64;
    let digest = BASE64.encode(blake3::hash(&chunk).as_bytes());
    let counted = bar.clone();
    let pieces: Vec<std::io::Result<Bytes>> = (0..chunk.len())
        .step_by(PIECE)
        .map(|at| Ok(chunk.slice(at..(at + PIECE).min(chunk.len()))))
        .collect();
    let stream = futures_util::stream::iter(pieces).inspect(move |p| {
        if let Ok(b) = p {
            counted.inc(b.len() as u64);
        }
    });
    let rb = tus_request(http, Method::PATCH, path)
        .header(tus::UPLOAD_OFFSET, offset)
        .header(tus::UPLOAD_CHECKSUM, format!("{} {digest}", tus::BLAKE3))
        .header(header::CONTENT_TYPE, tus::OFFSET_STREAM)
        .header(header::CONTENT_LENGTH, len)
        .body(reqwest::Body::wrap_stream(stream));
    let sent = tokio::select! {
        r = http.send_streaming(rb) => r.map_err(anyhow::Error::from),
        e = stalled(bar, offset + len) => Err(e),
    };
    let resp = match sent {
        Ok(r) => r,
        Err(e) => {
            // What the bar counted of this chunk was not kept.
            bar.set_position(offset);
            return Err(e);
        }
    };
    let now = offset_of(&resp).context("the server's answer gives no Upload-Offset")?;
    if now != offset + len {
        bail!(
            "the server stands at byte {now} after a chunk from {offset} to {}",
            offset + len
        );
    }
    Ok(now)
}

pub async fn put(g: &Global, a: PutArgs) -> anyhow::Result<()> {
    let meta = tokio::fs::metadata(&a.local)
        .await
        .with_context(|| format!("cannot read {}", a.local.display()))?;
    if !meta.is_file() {
        bail!(
            "{}: put uploads one file; this is not a file",
            a.local.display()
        );
    }
    let name = a
        .local
        .file_name()
        .and_then(|n| n.to_str())
        .with_context(|| format!("{}: the name is not UTF-8", a.local.display()))?;
    let dest = destination(&a.dest, name);
    // Checked here, before anything is sent: the upload path is the collection path as written.
    dest.data_url()?;
    let me = Identity::of(&a.local, &meta, &dest.to_string())?;
    let state_path = me.state_path()?;
    let say = |line: String| {
        if !a.quiet {
            eprintln!("{line}");
        }
    };
    let http = https(g, &a.conn, dest.collection).await?;

    // An upload begun earlier: continued where the server stands, or given up (and said so).
    let recorded = load_state(&state_path);
    let mut resumed = None;
    if let Some(st) = recorded {
        let path = upload_path(&http, &st.url).map(str::to_string);
        match path {
            Some(path) if a.no_resume => {
                cancel(&http, &path).await;
                say(format!(
                    "Starting a fresh upload of {name} to {dest} (--no-resume)."
                ));
            }
            Some(path) if st.identity != me => {
                cancel(&http, &path).await;
                say(format!(
                    "{} changed since its upload to {dest} was interrupted; starting over.",
                    a.local.display()
                ));
            }
            Some(path) => match ask_offset(&http, &path)
                .await
                .with_context(|| format!("cannot ask how much of {dest} arrived"))?
            {
                Some((offset, length)) if length == me.size && offset <= length => {
                    resumed = Some((path, offset));
                }
                Some(_) => {
                    cancel(&http, &path).await;
                    say(format!(
                        "The server's interrupted upload to {dest} has another length; starting over."
                    ));
                }
                None => say(format!(
                    "The server no longer knows the interrupted upload to {dest}; starting over."
                )),
            },
            None => say(format!(
                "The interrupted upload to {dest} was begun at another server; starting over."
            )),
        }
        if resumed.is_none() {
            forget_state(&state_path);
        }
    }
    let (path, start) = match resumed {
        Some((path, offset)) => {
            say(format!(
                "Resuming the upload of {name} to {dest} at byte {offset} of {}.",
                me.size
            ));
            (path, offset)
        }
        None => {
            let path = create(&http, &dest, me.size)
                .await
                .with_context(|| format!("cannot upload to {dest}"))?;
            // An empty file is complete at once; any other is recorded before its first byte is sent.
            if me.size > 0 {
                let url = format!("{}{path}", http.base_url());
                save_state(
                    &state_path,
                    &State {
                        url,
                        identity: me.clone(),
                    },
                )?;
            }
            (path, 0)
        }
    };

    let bar = progress(Some(me.size), a.quiet, name);
    bar.set_position(start);
    // Ctrl-C clears the bar and says how to go on, rather than leaving the terminal mid-line.
    let sent = tokio::select! {
        r = send_from(&a, &http, &path, start, &me, &bar) => r,
        _ = tokio::signal::ctrl_c() => Err(anyhow::Error::new(crate::Exit(130, "interrupted".into()))),
    };
    bar.finish_and_clear();
    let end = match sent {
        Ok(end) => end,
        Err(e) => {
            return Err(e.context(format!(
                "the upload of {} to {dest} was interrupted; run the same command again to resume it",
                a.local.display()
            )));
        }
    };
    forget_state(&state_path);
    if !a.quiet {
        let size = me.size;
        let sent = end - start;
        let how = if start > 0 {
            format!("{size} bytes; resumed at byte {start}, {sent} sent now")
        } else {
            format!("{size} bytes")
        };
        report(
            g,
            &json!({
                "code": "Uploaded",
                "local": a.local,
                "destination": dest.to_string(),
                "size": size,
                "resumed_at": start,
                "sent": sent,
            }),
            &format!("Uploaded {} to {dest} ({how}).", a.local.display()),
        );
    }
    Ok(())
}

/// Reads the file from `start` and sends it chunk by chunk; the offset reached (the file's size). Each chunk is
/// sent only if the file is still the one the upload began with once the chunk was read: a file changed mid-way
/// never takes its name on the server as a mix of two versions.
async fn send_from(
    a: &PutArgs,
    http: &FerryClient,
    path: &str,
    start: u64,
    me: &Identity,
    bar: &ProgressBar,
) -> anyhow::Result<u64> {
    let size = me.size;
    let chunk_size = a.limit_rate.map_or(CHUNK, |r| r.min(CHUNK));
    let mut file = tokio::fs::File::open(&a.local)
        .await
        .with_context(|| format!("cannot read {}", a.local.display()))?;
    file.seek(std::io::SeekFrom::Start(start))
        .await
        .with_context(|| format!("cannot read {}", a.local.display()))?;
    let began = Instant::now();
    let mut offset = start;
    let mut refused = 0;
    while offset < size {
        let want = chunk_size.min(size - offset);
        let mut buf = vec![0u8; want as usize];
        let read = file.read_exact(&mut buf).await;
        let same = match tokio::fs::metadata(&a.local).await {
            Ok(m) => Identity::of(&a.local, &m, &me.dest)? == *me,
            Err(_) => false,
        };
        if read.is_err() || !same {
            bail!(
                "{} changed while it was uploaded to {}; run the same command again to upload it anew",
                a.local.display(),
                me.dest
            );
        }
        match send_chunk(http, path, offset, Bytes::from(buf), bar).await {
            Ok(next) => {
                offset = next;
                refused = 0;
            }
            // The server stands elsewhere (a broken request of ours it had not let go of yet), or the chunk was
            // damaged on the way: ask where it stands, and go on from there.
            Err(e) if refused < REFUSALS && is_refusal(&e) => {
                refused += 1;
                tokio::time::sleep(Duration::from_millis(100 << refused)).await;
                let (at, _) = ask_offset(http, path)
                    .await?
                    .context("the server no longer knows the upload")?;
                offset = at;
                file.seek(std::io::SeekFrom::Start(at)).await?;
                bar.set_position(at);
                continue;
            }
            Err(e) => return Err(e),
        }
        if let Some(rate) = a.limit_rate {
            let due = Duration::from_secs_f64((offset - start) as f64 / rate as f64);
            tokio::time::sleep_until((began + due).into()).await;
        }
    }
    Ok(offset)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates() {
        assert_eq!(parse_rate("1000"), Ok(1000));
        assert_eq!(parse_rate("512K"), Ok(512 * 1024));
        assert_eq!(parse_rate("2m"), Ok(2 << 20));
        assert_eq!(parse_rate("1G"), Ok(1 << 30));
        for bad in ["", "0", "K", "1.5M", "3T", "-1"] {
            assert!(parse_rate(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn destinations() {
        let id = "0f0e0d0c-0b0a-0908-0706-050403020100";
        let d = |s: &str| destination(&s.parse().unwrap(), "a.bin").to_string();
        assert_eq!(d(id), format!("{id}:/~/a.bin"));
        assert_eq!(d(&format!("{id}:/up/")), format!("{id}:/up/a.bin"));
        assert_eq!(d(&format!("{id}:/up/b.bin")), format!("{id}:/up/b.bin"));
    }
}
