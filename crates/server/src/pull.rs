//! Reading another endpoint's collection for a task (the endpoint that runs a transfer pulls its source): a
//! read-only [`Connector`] whose every call is a request to the source endpoint, which runs the access check
//! for the task owner itself. The credential comes from the hub, is bound to the task, its source collection
//! and paths, and is renewed before it expires. Folders come from `/site/pull/…/list`, whole small files of a
//! folder in one `/site/pull/…/files` request, and large files as byte ranges from the source's HTTPS door.

use std::sync::Arc;
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use ferry_core::SharedClock;
use ferry_endpoint::{EndpointError, RemoteCollections};
use ferry_proto::sites::{
    PULL_FILES_MAX, PullFailure, PullFiles, PulledEntry, PulledFile, PulledListing, TaskCredential,
    pull_failure,
};
use ferry_storage::{
    At, ByteStream, Connector, Digest, Entry, EntryKind, FileReader, Listing, ListingStream,
    PartFile, Result, StorageError, Upload, WholeRead,
};
use futures_util::StreamExt;
use reqwest::StatusCode;
use uuid::Uuid;

use crate::site::HubLink;

/// A credential is renewed when less than this is left of it.
const RENEW_SECS: i64 = 120;
/// Nothing heard from the source for this long is a fault (the task retries).
const READ_TIMEOUT: Duration = Duration::from_secs(60);

/// The collections of other endpoints this endpoint reads for tasks, found through its hub.
pub struct Peers {
    link: Arc<HubLink>,
    /// Endpoint to endpoint: HTTP/1.1, one connection per request in flight, so that parallel ranges use
    /// parallel TCP streams.
    http: reqwest::Client,
    clock: SharedClock,
    /// Task credentials by task, shared by the views a task makes of its source (it makes one anew whenever
    /// it reads its access again), so that the hub is asked once per credential lifetime.
    credentials: Credentials,
    /// The names of the source collections read so far (for task documents), as the hub gave them.
    names: Names,
}

type Names = Arc<std::sync::Mutex<std::collections::HashMap<Uuid, String>>>;

/// Task credentials by task.
type Credentials = Arc<std::sync::Mutex<std::collections::HashMap<Uuid, TaskCredential>>>;

impl Peers {
    pub fn new(
        link: Arc<HubLink>,
        ca_file: Option<&std::path::Path>,
        clock: SharedClock,
    ) -> std::result::Result<Self, String> {
        let mut b = reqwest::Client::builder()
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .http1_only()
            .connect_timeout(Duration::from_secs(10))
            .read_timeout(READ_TIMEOUT)
            .pool_max_idle_per_host(64)
            .tcp_nodelay(true);
        if let Some(ca) = ca_file.or(link.file().hub_ca_file.as_deref()) {
            let pem =
                std::fs::read(ca).map_err(|e| format!("cannot read {}: {e}", ca.display()))?;
            let cert = reqwest::Certificate::from_pem(&pem)
                .map_err(|e| format!("{} is not a PEM certificate: {e}", ca.display()))?;
            b = b.add_root_certificate(cert);
        }
        Ok(Self {
            link,
            http: b.build().map_err(|e| e.to_string())?,
            clock,
            credentials: Default::default(),
            names: Default::default(),
        })
    }
}

#[async_trait::async_trait]
impl RemoteCollections for Peers {
    async fn owner_now(&self, task: Uuid) -> ferry_endpoint::Result<ferry_endpoint::OwnerNow> {
        match self.link.task_owner(task).await {
            Ok(owner) => Ok(ferry_endpoint::OwnerNow {
                groups: owner.groups,
                linked: owner.linked,
            }),
            Err(ferry_auth::AuthError::NotFound(m) | ferry_auth::AuthError::Forbidden(m)) => {
                Err(EndpointError::AccessDenied(m))
            }
            Err(e) => Err(EndpointError::Unavailable(e.to_string())),
        }
    }

    fn display_name(&self, collection: Uuid) -> Option<String> {
        let names = self.names.lock().unwrap_or_else(|p| p.into_inner());
        names.get(&collection).cloned()
    }

    async fn task_source(
        &self,
        task: Uuid,
        collection: Uuid,
    ) -> ferry_endpoint::Result<Arc<dyn Connector>> {
        let source = Source {
            link: self.link.clone(),
            http: self.http.clone(),
            clock: self.clock.clone(),
            task,
            collection,
            credentials: self.credentials.clone(),
            names: self.names.clone(),
        };
        // The first credential now: a task whose source the hub does not know fails at once, with the reason.
        source.credential().await.map_err(|e| match e {
            StorageError::NotFound(_) => EndpointError::CollectionNotFound(format!(
                "no endpoint holds collection {collection}"
            )),
            e => EndpointError::Storage(e),
        })?;
        Ok(Arc::new(RemoteSource(Arc::new(source))))
    }
}

/// One task's view of its source collection at another endpoint.
struct RemoteSource(Arc<Source>);

impl std::ops::Deref for RemoteSource {
    type Target = Source;
    fn deref(&self) -> &Source {
        &self.0
    }
}

struct Source {
    link: Arc<HubLink>,
    http: reqwest::Client,
    clock: SharedClock,
    task: Uuid,
    collection: Uuid,
    credentials: Credentials,
    names: Names,
}

fn unreachable(url: &str, e: impl std::error::Error) -> StorageError {
    // The causes too: "error sending request" alone hides an untrusted certificate or a refused connection.
    let mut why = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        why.push_str(": ");
        why.push_str(&c.to_string());
        cause = c.source();
    }
    StorageError::Io(At::nowhere(format!(
        "the source endpoint ({url}) cannot be reached: {why}"
    )))
}

fn read_only(path: &str) -> StorageError {
    StorageError::PermissionDenied(format!(
        "{path} (another endpoint's collection is read-only for the task that reads it)"
    ))
}

/// The storage error a source endpoint's refusal stands for.
fn failed(f: PullFailure) -> StorageError {
    let path = f.path;
    match f.kind.as_str() {
        pull_failure::NOT_FOUND => StorageError::NotFound(path),
        pull_failure::NOT_A_DIRECTORY => StorageError::NotADirectory(path),
        pull_failure::IS_A_DIRECTORY => StorageError::IsADirectory(path),
        pull_failure::REFUSED => StorageError::PermissionDenied(format!(
            "{path} (at the source endpoint: {})",
            f.message
        )),
        _ => StorageError::Io(At::new(
            path,
            format!("at the source endpoint: {}", f.message),
        )),
    }
}

fn entry_of(e: PulledEntry) -> Entry {
    Entry {
        name: e.name,
        kind: match e.kind.as_str() {
            "file" => EntryKind::File,
            "dir" => EntryKind::Dir,
            "symlink" => EntryKind::Symlink,
            _ => EntryKind::Other,
        },
        size: e.size,
        mtime: e.mtime,
        mode: e.mode,
        user: e.user,
        group: e.group,
        link_target: e.link_target,
    }
}

impl Source {
    /// The task credential and the source endpoint's URL, fetched from the hub when missing or nearly expired.
    async fn credential(&self) -> Result<(String, String)> {
        let now = self.clock.now();
        if let Some(c) = self.held().get(&self.task)
            && c.expires_at - now > RENEW_SECS
        {
            return Ok((c.credential.clone(), c.source_url.clone()));
        }
        let c = self
            .link
            .task_credential(self.task)
            .await
            .map_err(|e| match e {
                ferry_auth::AuthError::NotFound(m) => StorageError::NotFound(m),
                ferry_auth::AuthError::Forbidden(m) => StorageError::PermissionDenied(m),
                e => StorageError::Io(At::nowhere(e.to_string())),
            })?;
        let out = (c.credential.clone(), c.source_url.clone());
        self.names
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(self.collection, c.source_display_name.clone());
        let mut held = self.held();
        held.retain(|_, c| c.expires_at > now);
        held.insert(self.task, c);
        Ok(out)
    }

    fn held(&self) -> std::sync::MutexGuard<'_, std::collections::HashMap<Uuid, TaskCredential>> {
        self.credentials.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A refused credential is fetched anew next time (the source may have seen it expire first).
    fn drop_credential(&self) {
        self.held().remove(&self.task);
    }

    fn pull_url(&self, base: &str, what: &str) -> String {
        format!("{base}/site/pull/{}/{what}", self.collection)
    }

    fn data_url(&self, base: &str, path: &str) -> String {
        format!(
            "{base}/data/{}{}",
            self.collection,
            crate::routes::data::url_path(path)
        )
    }

    /// Sends a request built by `make` (given the credential and the source's URL) and returns the answer if
    /// it succeeded; otherwise the failure it carries, or what its status means for `path`.
    async fn send(
        &self,
        path: &str,
        make: impl Fn(&reqwest::Client, &str, &str) -> reqwest::RequestBuilder,
    ) -> Result<reqwest::Response> {
        let (credential, base) = self.credential().await?;
        let answer = make(&self.http, &credential, &base)
            .send()
            .await
            .map_err(|e| unreachable(&base, e))?;
        let status = answer.status();
        if status.is_success() {
            return Ok(answer);
        }
        if status == StatusCode::UNAUTHORIZED {
            self.drop_credential();
        }
        let body = answer.bytes().await.unwrap_or_default();
        if let Ok(f) = serde_json::from_slice::<PullFailure>(&body) {
            return Err(failed(f));
        }
        let message = serde_json::from_slice::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| v["message"].as_str().map(str::to_string))
            .unwrap_or_else(|| status.to_string());
        Err(match status {
            StatusCode::NOT_FOUND => StorageError::NotFound(path.to_string()),
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => StorageError::PermissionDenied(
                format!("{path} (at the source endpoint: {message})"),
            ),
            _ => StorageError::Io(At::new(
                path,
                format!("at the source endpoint ({status}): {message}"),
            )),
        })
    }

    async fn stat(&self, path: &str) -> Result<Entry> {
        let answer = self
            .send(path, |http, cred, base| {
                http.get(self.pull_url(base, "stat"))
                    .query(&[("path", path)])
                    .header(reqwest::header::AUTHORIZATION, cred)
            })
            .await?;
        let base = answer.url().to_string();
        let e: PulledEntry = answer.json().await.map_err(|e| unreachable(&base, e))?;
        Ok(entry_of(e))
    }

    async fn range(&self, path: &str, offset: u64, len: Option<u64>) -> Result<reqwest::Response> {
        let range = match len {
            Some(0) => return Err(StorageError::Io(At::new(path, "an empty range"))),
            Some(n) => format!("bytes={offset}-{}", offset + n - 1),
            None => format!("bytes={offset}-"),
        };
        self.send(path, |http, cred, base| {
            http.get(self.data_url(base, path))
                .header(reqwest::header::AUTHORIZATION, cred)
                .header(reqwest::header::RANGE, &range)
        })
        .await
    }

    async fn pull_files(
        &self,
        dir: &str,
        names: Vec<String>,
        max: u64,
    ) -> Result<Vec<(PulledFile, Bytes)>> {
        let n = names.len();
        let ask = PullFiles {
            dir: dir.to_string(),
            names,
            max,
        };
        let answer = self
            .send(dir, |http, cred, base| {
                http.post(self.pull_url(base, "files"))
                    .header(reqwest::header::AUTHORIZATION, cred)
                    .json(&ask)
            })
            .await?;
        let base = answer.url().to_string();
        let mut body = answer.bytes().await.map_err(|e| unreachable(&base, e))?;
        let cut = || StorageError::Io(At::new(dir, "the source endpoint's answer was cut short"));
        let mut out = Vec::with_capacity(n);
        for _ in 0..n {
            if body.remaining() < 4 {
                return Err(cut());
            }
            let head_len = body.get_u32() as usize;
            if body.remaining() < head_len {
                return Err(cut());
            }
            let head: PulledFile =
                serde_json::from_slice(&body.split_to(head_len)).map_err(|_| cut())?;
            let len = head.len.unwrap_or(0) as usize;
            if body.remaining() < len {
                return Err(cut());
            }
            let data = body.split_to(len);
            out.push((head, data));
        }
        Ok(out)
    }
}

#[async_trait::async_trait]
impl Connector for RemoteSource {
    async fn resolve(&self, path: &str) -> Result<String> {
        Ok(path.to_string())
    }

    async fn stat(&self, path: &str) -> Result<Entry> {
        self.0.stat(path).await
    }

    async fn list(&self, path: &str) -> Result<Listing> {
        let mut all = Listing::default();
        let mut chunks = self.list_chunks(path).await?;
        while let Some(c) = chunks.next().await {
            let c = c?;
            all.entries.extend(c.entries);
            all.unrepresentable.extend(c.unrepresentable);
        }
        all.entries.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(all)
    }

    async fn list_chunks(&self, path: &str) -> Result<ListingStream> {
        let answer = self
            .send(path, |http, cred, base| {
                http.get(self.pull_url(base, "list"))
                    .query(&[("path", path)])
                    .header(reqwest::header::AUTHORIZATION, cred)
            })
            .await?;
        let base = answer.url().to_string();
        let dir = path.to_string();
        let lines = answer.bytes_stream();
        // One chunk per line; a stream that ends without the `end` line is a fault, never a shorter folder.
        let stream = futures_util::stream::unfold(
            (lines, BytesMut::new(), false),
            move |(mut lines, mut buf, done)| {
                let base = base.clone();
                let dir = dir.clone();
                async move {
                    if done {
                        return None;
                    }
                    loop {
                        if let Some(i) = buf.iter().position(|b| *b == b'\n') {
                            let line = buf.split_to(i + 1);
                            let chunk: PulledListing = match serde_json::from_slice(&line) {
                                Ok(c) => c,
                                Err(e) => {
                                    let err = StorageError::Io(At::new(
                                        &dir,
                                        format!(
                                            "the source endpoint sent an unreadable listing: {e}"
                                        ),
                                    ));
                                    return Some((Err(err), (lines, buf, true)));
                                }
                            };
                            if let Some(f) = chunk.failure {
                                return Some((Err(failed(f)), (lines, buf, true)));
                            }
                            let end = chunk.end;
                            let listing = Listing {
                                entries: chunk.entries.into_iter().map(entry_of).collect(),
                                unrepresentable: chunk.unrepresentable,
                            };
                            return Some((Ok(listing), (lines, buf, end)));
                        }
                        match lines.next().await {
                            Some(Ok(b)) => buf.extend_from_slice(&b),
                            Some(Err(e)) => {
                                return Some((Err(unreachable(&base, e)), (lines, buf, true)));
                            }
                            None => {
                                let err = StorageError::Io(At::new(
                                    &dir,
                                    "the source endpoint's listing was cut short",
                                ));
                                return Some((Err(err), (lines, buf, true)));
                            }
                        }
                    }
                }
            },
        );
        Ok(Box::pin(stream))
    }

    async fn read(&self, path: &str, offset: u64, len: Option<u64>) -> Result<ByteStream> {
        let answer = self.range(path, offset, len).await?;
        let base = answer.url().to_string();
        Ok(Box::pin(
            answer
                .bytes_stream()
                .map(move |r| r.map_err(|e| unreachable(&base, e))),
        ))
    }

    async fn write(&self, path: &str, _overwrite: bool) -> Result<Box<dyn Upload>> {
        Err(read_only(path))
    }

    async fn mkdir(&self, path: &str) -> Result<()> {
        Err(read_only(path))
    }

    async fn rename(&self, from: &str, _to: &str) -> Result<()> {
        Err(read_only(from))
    }

    async fn delete(&self, path: &str, _recursive: bool) -> Result<()> {
        Err(read_only(path))
    }

    async fn set_mtime(&self, path: &str, _mtime: i64) -> Result<()> {
        Err(read_only(path))
    }

    async fn home_of(&self, _username: &str) -> Option<String> {
        None
    }

    async fn read_small(&self, path: &str, max: u64) -> Result<(Entry, Option<Bytes>)> {
        let (dir, name) = match path.rsplit_once('/') {
            Some((d, n)) if !n.is_empty() => (if d.is_empty() { "/" } else { d }, n),
            _ => return Err(StorageError::IsADirectory(path.to_string())),
        };
        let mut got = self.pull_files(dir, vec![name.to_string()], max).await?;
        let (head, data) = got
            .pop()
            .ok_or_else(|| StorageError::NotFound(path.into()))?;
        if let Some(f) = head.failure {
            return Err(failed(f));
        }
        let entry = head
            .entry
            .map(entry_of)
            .ok_or_else(|| StorageError::NotFound(path.into()))?;
        Ok((entry, head.len.map(|_| data)))
    }

    async fn open_reader(&self, path: &str) -> Result<Box<dyn FileReader>> {
        let entry = self.stat(path).await?;
        if entry.kind != EntryKind::File {
            return Err(StorageError::IsADirectory(path.to_string()));
        }
        Ok(Box::new(RemoteReader {
            source: self.0.clone(),
            entry,
            path: path.to_string(),
            open: Default::default(),
        }))
    }

    async fn open_part(
        &self,
        path: &str,
        _token: &str,
        _initial: Option<Bytes>,
    ) -> Result<Box<dyn PartFile>> {
        Err(read_only(path))
    }

    async fn remove_part(&self, path: &str, _token: &str) -> Result<()> {
        Err(read_only(path))
    }

    async fn flush(&self) -> Result<()> {
        Ok(())
    }

    async fn read_files(
        &self,
        dir: &str,
        names: Vec<String>,
        max: u64,
        digest: Option<Digest>,
    ) -> Vec<Result<WholeRead>> {
        let mut out = Vec::with_capacity(names.len());
        for part in names.chunks(PULL_FILES_MAX) {
            let files = match self.pull_files(dir, part.to_vec(), max).await {
                Ok(files) => files,
                Err(e) => {
                    out.extend(part.iter().map(|_| Err(e.clone())));
                    continue;
                }
            };
            let (dir, digest) = (dir.to_string(), digest.clone());
            // Hashed here, as the bytes arrive (what is written is compared with these bytes), on the blocking
            // pool: a batch is megabytes.
            let read = tokio::task::spawn_blocking(move || {
                files
                    .into_iter()
                    .map(|(head, data)| whole(&dir, head, data, digest.as_ref()))
                    .collect::<Vec<_>>()
            })
            .await;
            match read {
                Ok(read) => out.extend(read),
                Err(e) => out.extend(
                    part.iter()
                        .map(|_| Err(StorageError::Io(At::nowhere(e.to_string())))),
                ),
            }
        }
        out
    }
}

/// A file of a [`PullFiles`] answer as [`Connector::read_files`] gives it, its bytes hashed with `digest`.
fn whole(dir: &str, head: PulledFile, data: Bytes, digest: Option<&Digest>) -> Result<WholeRead> {
    if let Some(f) = head.failure {
        return Err(failed(f));
    }
    let entry = head
        .entry
        .map(entry_of)
        .ok_or_else(|| StorageError::Io(At::new(dir, "no entry")))?;
    let data = head.len.map(|_| data);
    let digest = data.as_ref().zip(digest).map(|(d, f)| f(d));
    Ok(WholeRead {
        entry,
        data,
        digest,
    })
}

/// A large file of the source, read in ranges (several at once). Each range is read in chunks; one request
/// covers a whole window of it, and the chunks are taken from its answer as they arrive, so that a chunk does not
/// cost a round trip (at 20 ms, a request per 2 MiB chunk left each stream idle one round trip in every chunk).
struct RemoteReader {
    source: Arc<Source>,
    entry: Entry,
    path: String,
    /// Answers still streaming, each with the offset its next bytes are at.
    open: std::sync::Mutex<Vec<Window>>,
}

/// What one request asks for at most: the engine's range size, so that a range is one request.
const WINDOW: u64 = 32 << 20;
/// Answers kept open at once (the engine reads a few ranges of a file at a time).
const OPEN_WINDOWS: usize = 16;

type Body = std::pin::Pin<Box<dyn futures_util::Stream<Item = reqwest::Result<Bytes>> + Send>>;

/// An answer to a ranged request, read up to `next`; it ends at `end`.
struct Window {
    next: u64,
    end: u64,
    body: Body,
    /// Bytes received past `next`.
    held: BytesMut,
    url: String,
}

impl RemoteReader {
    fn take_window(&self, offset: u64) -> Option<Window> {
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        let i = open.iter().position(|w| w.next == offset)?;
        Some(open.swap_remove(i))
    }

    fn keep_window(&self, w: Window) {
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        if open.len() >= OPEN_WINDOWS {
            open.remove(0);
        }
        open.push(w);
    }
}

#[async_trait::async_trait]
impl FileReader for RemoteReader {
    fn entry(&self) -> &Entry {
        &self.entry
    }

    async fn read_at(&self, offset: u64, len: usize) -> Result<Bytes> {
        let size = self.entry.size;
        if len == 0 || offset >= size {
            return Ok(Bytes::new());
        }
        let mut w = match self.take_window(offset) {
            Some(w) => w,
            None => {
                let end = size.min(offset + WINDOW.max(len as u64));
                let answer = self
                    .source
                    .range(&self.path, offset, Some(end - offset))
                    .await?;
                let url = answer.url().to_string();
                Window {
                    next: offset,
                    end,
                    body: Box::pin(answer.bytes_stream()),
                    held: BytesMut::new(),
                    url,
                }
            }
        };
        let want = (len as u64).min(w.end - w.next) as usize;
        while w.held.len() < want {
            match w.body.next().await {
                Some(Ok(b)) => w.held.extend_from_slice(&b),
                Some(Err(e)) => return Err(unreachable(&w.url, e)),
                None => {
                    return Err(StorageError::Io(At::new(
                        &self.path,
                        "the source endpoint's answer was cut short",
                    )));
                }
            }
        }
        let out = w.held.split_to(want).freeze();
        w.next += want as u64;
        if w.next < w.end {
            self.keep_window(w);
        }
        Ok(out)
    }

    /// The source's size or modification time differ from when the file was opened.
    async fn changed(&self) -> Result<bool> {
        let now = self.source.stat(&self.path).await?;
        Ok(now.size != self.entry.size || now.mtime != self.entry.mtime)
    }
}
