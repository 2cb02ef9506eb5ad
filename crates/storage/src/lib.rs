//! Storage connectors: the `Connector` trait every data access goes through, and the POSIX connector.
//!
//! Paths are absolute, `/`-separated UTF-8 strings in the connector's namespace (`/` is the root folder).
//! Ferry's access check runs on paths, so the connector makes sure that the path checked is the path used:
//! only [`Connector::resolve`] follows symbolic links (relative ones, inside the root); every other operation
//! refuses to traverse one, so a link swapped in after the check makes the operation fail instead of escaping.

mod names;
mod posix;
mod scoped;

use std::pin::Pin;

use bytes::Bytes;

pub use posix::{HostAccount, PosixConnector, host_account, part_name, posix_groups};
pub use scoped::Scoped;

use names::child;

#[derive(Debug, Clone, thiserror::Error)]
pub enum StorageError {
    #[error("{0}: no such file or folder")]
    NotFound(String),
    #[error("{0}: already exists")]
    Exists(String),
    #[error("{0}: not a folder")]
    NotADirectory(String),
    #[error("{0}: is a folder")]
    IsADirectory(String),
    #[error("{0}: the folder is not empty")]
    DirectoryNotEmpty(String),
    /// The operating system refused (EACCES, EPERM).
    #[error("{0}: the storage refused access")]
    PermissionDenied(String),
    #[error("invalid path {0}")]
    InvalidPath(At),
    #[error("invalid name {0}")]
    InvalidName(At),
    /// A symbolic link (absolute, or relative and climbing above the root) leads outside the root.
    #[error("{0}: a symbolic link leads outside the storage")]
    Escape(String),
    /// A symbolic link where the operation may not follow one.
    #[error(
        "{0}: a symbolic link is in the way (the path changed, or links may not be followed here)"
    )]
    Symlink(String),
    #[error("{0}: too many symbolic links")]
    Loop(String),
    /// Out of space or over quota: the transfer engine tells these apart from other failures.
    #[error("{0}: no space left (or over quota)")]
    NoSpace(String),
    /// A written file read back differently from what was written.
    #[error("{0}: the copy read back differs from what was written")]
    VerifyFailed(String),
    #[error("{0}")]
    Io(At),
}

/// A path and what is wrong there (the path may be empty when the problem has no place).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct At {
    pub path: String,
    pub why: String,
}

impl At {
    pub fn new(path: impl Into<String>, why: impl Into<String>) -> Self {
        Self {
            path: path.into(),
            why: why.into(),
        }
    }

    /// A problem that concerns no path (a failed storage task).
    pub fn nowhere(why: impl Into<String>) -> Self {
        Self::new(String::new(), why)
    }
}

impl std::fmt::Display for At {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.path.is_empty() {
            f.write_str(&self.why)
        } else {
            write!(f, "{}: {}", self.path, self.why)
        }
    }
}

impl StorageError {
    /// The same error with every path it names passed through `f`: how a view of the storage (a collection)
    /// reports errors in its own paths. Text that is not a path (it does not start with `/`) stays as it is.
    pub fn map_paths(self, f: impl Fn(&str) -> String) -> Self {
        let p = |s: String| if s.starts_with('/') { f(&s) } else { s };
        let at = |a: At| At {
            path: p(a.path),
            why: a.why,
        };
        use StorageError as E;
        match self {
            E::NotFound(s) => E::NotFound(p(s)),
            E::Exists(s) => E::Exists(p(s)),
            E::NotADirectory(s) => E::NotADirectory(p(s)),
            E::IsADirectory(s) => E::IsADirectory(p(s)),
            E::DirectoryNotEmpty(s) => E::DirectoryNotEmpty(p(s)),
            E::PermissionDenied(s) => E::PermissionDenied(p(s)),
            E::InvalidPath(a) => E::InvalidPath(at(a)),
            E::InvalidName(a) => E::InvalidName(at(a)),
            E::Escape(s) => E::Escape(p(s)),
            E::Symlink(s) => E::Symlink(p(s)),
            E::Loop(s) => E::Loop(p(s)),
            E::NoSpace(s) => E::NoSpace(p(s)),
            E::VerifyFailed(s) => E::VerifyFailed(p(s)),
            E::Io(a) => E::Io(at(a)),
        }
    }
}

pub type Result<T> = std::result::Result<T, StorageError>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryKind {
    File,
    Dir,
    Symlink,
    Other,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub name: String,
    pub kind: EntryKind,
    pub size: u64,
    /// Unix seconds.
    pub mtime: i64,
    /// Permission bits (`st_mode & 0o7777`).
    pub mode: u32,
    /// Owner names from the uid and gid; the number as text when the system does not know it.
    pub user: String,
    pub group: String,
    /// For symlinks: what the link says (invalid UTF-8 escaped as `\xNN`).
    pub link_target: Option<String>,
}

#[derive(Debug, Clone, Default)]
pub struct Listing {
    /// Sorted by name.
    pub entries: Vec<Entry>,
    /// Names that are not valid UTF-8 cannot travel on the JSON wire unchanged; they are reported here,
    /// escaped (`\xNN`), rather than silently altered or dropped.
    pub unrepresentable: Vec<String>,
}

pub type ByteStream = Pin<Box<dyn futures_util::Stream<Item = Result<Bytes>> + Send>>;

/// A folder's entries in chunks, in the order the storage gives them (not sorted).
pub type ListingStream = Pin<Box<dyn futures_util::Stream<Item = Result<Listing>> + Send>>;

#[async_trait::async_trait]
pub trait Connector: Send + Sync + 'static {
    /// The canonical path: symlinks followed (relative ones, inside the root only). Components that do not
    /// exist are kept as given, so that a path about to be created resolves too.
    async fn resolve(&self, path: &str) -> Result<String>;
    /// lstat semantics: a symlink is reported as one. The name of `/` is `/`.
    async fn stat(&self, path: &str) -> Result<Entry>;
    async fn list(&self, path: &str) -> Result<Listing>;
    /// Bytes `[offset, offset+len)` (to the end when `len` is None) in chunks of at most 256 KiB.
    async fn read(&self, path: &str, offset: u64, len: Option<u64>) -> Result<ByteStream>;
    /// Writes through a temporary name in the same folder; nothing appears under `path` until `commit`.
    /// With `overwrite` false, an existing name makes the start (or, if it appeared since, the commit) fail.
    async fn write(&self, path: &str, overwrite: bool) -> Result<Box<dyn Upload>>;
    async fn mkdir(&self, path: &str) -> Result<()>;
    /// Refuses to replace an existing `to`.
    async fn rename(&self, from: &str, to: &str) -> Result<()>;
    /// A folder needs `recursive` unless empty; symlinks are removed, never followed.
    async fn delete(&self, path: &str, recursive: bool) -> Result<()>;
    async fn set_mtime(&self, path: &str, mtime: i64) -> Result<()>;
    /// The user's home folder in this namespace, where the storage has that concept (see [`Self::has_homes`])
    /// and the account has a home it can reach.
    async fn home_of(&self, username: &str) -> Option<String>;
    /// Whether accounts on this storage have home folders at all. Where they do, an account without one
    /// reaches nothing through `~` or `$HOME`; where they do not, those mean the root.
    fn has_homes(&self) -> bool {
        false
    }

    /// A folder's entries in chunks as they are read, unsorted: a folder of millions of entries is never held
    /// whole. Reading stops when the stream is dropped.
    async fn list_chunks(&self, path: &str) -> Result<ListingStream> {
        let all = self.list(path).await?;
        Ok(Box::pin(futures_util::stream::iter([Ok(all)])))
    }

    /// A whole file of at most `max` bytes, read in one go with the entry it had (None when it is larger).
    async fn read_small(&self, path: &str, max: u64) -> Result<(Entry, Option<Bytes>)>;
    /// Opens a file for reading at any offset; the handle stays on the file that was opened.
    async fn open_reader(&self, path: &str) -> Result<Box<dyn FileReader>>;
    /// Opens (creating it if needed, keeping what it holds) the temporary file that becomes `path` on commit.
    /// The same `token` finds the same temporary file again, so that a restarted transfer can re-check and keep
    /// what an earlier attempt wrote. `initial`, if given, replaces the content.
    async fn open_part(
        &self,
        path: &str,
        token: &str,
        initial: Option<Bytes>,
    ) -> Result<Box<dyn PartFile>>;
    /// Removes the temporary file of `path` and `token`, if there is one.
    async fn remove_part(&self, path: &str, token: &str) -> Result<()>;
    /// Makes every completed write durable (after a batch of uncommitted-to-disk commits).
    async fn flush(&self) -> Result<()>;

    /// Reads whole files of one folder in one go (many small files cost one trip to the storage, not one
    /// each): each file's entry and, if it has at most `max` bytes, its content and `digest` of it.
    async fn read_files(
        &self,
        dir: &str,
        names: Vec<String>,
        max: u64,
        digest: Option<Digest>,
    ) -> Vec<Result<WholeRead>> {
        let mut out = Vec::with_capacity(names.len());
        for name in names {
            let path = child(dir, &name);
            out.push(self.read_small(&path, max).await.map(|(entry, data)| {
                let digest = data.as_ref().zip(digest.as_ref()).map(|(d, f)| f(d));
                WholeRead {
                    entry,
                    data,
                    digest,
                }
            }));
        }
        out
    }

    /// Writes whole files into one folder in one go: each under its temporary name, read back and compared with
    /// its data when `verify` asks (a difference is `VerifyFailed` and leaves nothing), then renamed over its
    /// real name. Not durable until [`Connector::flush`]. Returns the bytes written.
    async fn write_files(&self, dir: &str, files: Vec<WholeWrite>) -> Vec<Result<u64>> {
        let mut out = Vec::with_capacity(files.len());
        for f in files {
            let path = child(dir, &f.name);
            let r = async {
                let part = self
                    .open_part(&path, &f.token, Some(f.data.clone()))
                    .await?;
                if f.verify {
                    let back = part.read_at(0, f.data.len() + 1).await?;
                    if back != f.data {
                        let _ = part.discard().await;
                        return Err(StorageError::VerifyFailed(path.clone()));
                    }
                }
                part.commit(Commit {
                    overwrite: true,
                    mtime: f.mtime,
                    durable: false,
                })
                .await
                .map(|e| e.size)
            }
            .await;
            out.push(r);
        }
        out
    }
}

/// A function from bytes to their digest (hex), run where the bytes are.
pub type Digest = std::sync::Arc<dyn Fn(&[u8]) -> String + Send + Sync>;

/// A whole file read by [`Connector::read_files`].
#[derive(Debug, Clone)]
pub struct WholeRead {
    pub entry: Entry,
    /// None when the file is larger than asked.
    pub data: Option<Bytes>,
    pub digest: Option<String>,
}

/// A whole file for [`Connector::write_files`].
#[derive(Debug, Clone)]
pub struct WholeWrite {
    pub name: String,
    /// Names the temporary file (see [`Connector::open_part`]).
    pub token: String,
    /// The bytes the source's checksum covers.
    pub data: Bytes,
    pub mtime: Option<i64>,
    /// Read the copy back and compare it with `data` before it gets its name: equal bytes carry the source's
    /// checksum, so no second hash is needed (one costs 2-3 times a comparison).
    pub verify: bool,
}

/// A file open for reading at offsets, for copies that read ranges in parallel.
#[async_trait::async_trait]
pub trait FileReader: Send + Sync {
    /// The file as it was when opened.
    fn entry(&self) -> &Entry;
    /// Up to `len` bytes at `offset` (fewer only at the end of the file).
    async fn read_at(&self, offset: u64, len: usize) -> Result<Bytes>;
    /// Whether the file changed since it was opened (size, or modification or change time to the nanosecond).
    async fn changed(&self) -> Result<bool>;
}

/// What committing a temporary file does.
#[derive(Debug, Clone, Copy)]
pub struct Commit {
    /// Replace an existing file of the name.
    pub overwrite: bool,
    /// Set the modification time (Unix seconds) before the rename.
    pub mtime: Option<i64>,
    /// fsync the file and its folder now; otherwise a later [`Connector::flush`] makes it durable.
    pub durable: bool,
}

/// A temporary file that becomes a real name only on commit; writes at any offset, from several tasks at once.
#[async_trait::async_trait]
pub trait PartFile: Send + Sync {
    /// Its length when opened (what an earlier attempt left).
    fn initial_len(&self) -> u64;
    async fn set_len(&self, len: u64) -> Result<()>;
    async fn write_at(&self, offset: u64, data: Bytes) -> Result<()>;
    async fn read_at(&self, offset: u64, len: usize) -> Result<Bytes>;
    /// Writes `data` at `offset`, reads the range back and compares it with `expect` (the same bytes, unless a
    /// fault test stands in for a bad write): a difference is [`StorageError::VerifyFailed`]. Reading a chunk
    /// back right after writing it finds it still in the CPU's caches.
    async fn write_verified(&self, offset: u64, data: Bytes, expect: Bytes) -> Result<()> {
        self.write_at(offset, data).await?;
        let back = self.read_at(offset, expect.len()).await?;
        if back != expect {
            return Err(StorageError::VerifyFailed(format!(
                "bytes at offset {offset}"
            )));
        }
        Ok(())
    }
    /// Moves the data to its real name and returns the final entry.
    async fn commit(self: Box<Self>, how: Commit) -> Result<Entry>;
    /// Removes the temporary file.
    async fn discard(self: Box<Self>) -> Result<()>;
}

#[async_trait::async_trait]
pub trait Upload: Send {
    async fn write(&mut self, chunk: Bytes) -> Result<()>;
    /// Flushes to disk and moves the data to its real name; returns the final entry.
    async fn commit(self: Box<Self>) -> Result<Entry>;
    /// Discards what was written. Dropping an upload without committing does the same.
    async fn abort(self: Box<Self>) -> Result<()>;
}
