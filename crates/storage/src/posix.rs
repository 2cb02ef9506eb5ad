//! The POSIX connector: a folder on this host, reached through cap-std directory handles so that nothing
//! resolves outside it. Every directory on the way to a name is opened without following symlinks, and the
//! final name is used relative to its parent's handle; blocking calls run on tokio's blocking pool.

use std::collections::{HashMap, VecDeque};
use std::ffi::{CStr, CString};
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use bytes::{Bytes, BytesMut};
use cap_fs_ext::{DirExt, FollowSymlinks, OpenOptionsFollowExt, SystemTimeSpec};
use cap_std::fs::{Dir, Metadata, MetadataExt, OpenOptions, OpenOptionsExt};
use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt};

use crate::names::{escape_bytes, join, split};
use crate::{
    At, ByteStream, Commit, Connector, Digest, Entry, EntryKind, FileReader, Listing,
    ListingStream, PartFile, Result, StorageError, Upload, WholeRead, WholeWrite,
};

const CHUNK: usize = 256 * 1024;
/// Names per chunk of a streamed listing.
const LIST_CHUNK: usize = 1024;
/// More symlinks than this on one path is a loop (the kernel's limit is the same order).
const MAX_LINKS: usize = 40;
/// A recursive delete deeper than this stops rather than exhausting the stack.
const MAX_DEPTH: usize = 1024;

/// Maps an OS error on `path` to what the caller can act on; the message names the namespace path only.
fn os_err(path: &str, e: io::Error) -> StorageError {
    let p = path.to_string();
    match e.raw_os_error() {
        Some(libc::ENOENT) => StorageError::NotFound(p),
        Some(libc::EEXIST) => StorageError::Exists(p),
        Some(libc::ENOTDIR) => StorageError::NotADirectory(p),
        Some(libc::EISDIR) => StorageError::IsADirectory(p),
        Some(libc::ENOTEMPTY) => StorageError::DirectoryNotEmpty(p),
        Some(libc::EACCES | libc::EPERM) => StorageError::PermissionDenied(p),
        Some(libc::ENOSPC | libc::EDQUOT) => StorageError::NoSpace(p),
        Some(libc::ELOOP) => StorageError::Symlink(p),
        Some(libc::ENAMETOOLONG) => StorageError::InvalidName(At::new(p, "name too long")),
        _ => match e.kind() {
            io::ErrorKind::NotFound => StorageError::NotFound(p),
            io::ErrorKind::AlreadyExists => StorageError::Exists(p),
            // cap-std's refusal of a path that would leave the root.
            io::ErrorKind::PermissionDenied => StorageError::Escape(p),
            _ => StorageError::Io(At::new(p, e.to_string())),
        },
    }
}

/// A blocking storage task that did not finish (it panicked, or the runtime is shutting down).
fn task_failed(e: tokio::task::JoinError) -> StorageError {
    StorageError::Io(At::nowhere(format!("storage task failed: {e}")))
}

pub struct PosixConnector {
    inner: Arc<Inner>,
}

struct Inner {
    root: PathBuf,
    dir: Dir,
    users: Mutex<HashMap<u32, String>>,
    groups: Mutex<HashMap<u32, String>>,
}

impl PosixConnector {
    /// Opens `root`, a folder on this host: the only use of ambient authority.
    pub fn open(root: &Path) -> Result<Self> {
        let shown = root.display().to_string();
        let root = std::fs::canonicalize(root).map_err(|e| os_err(&shown, e))?;
        if !root.is_dir() {
            return Err(StorageError::NotADirectory(shown));
        }
        let dir = Dir::open_ambient_dir(&root, cap_std::ambient_authority())
            .map_err(|e| os_err(&shown, e))?;
        Ok(Self {
            inner: Arc::new(Inner {
                root,
                dir,
                users: Mutex::default(),
                groups: Mutex::default(),
            }),
        })
    }

    /// The host folder this connector serves.
    pub fn root(&self) -> &Path {
        &self.inner.root
    }

    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Inner) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || f(&inner))
            .await
            .map_err(task_failed)?
    }
}

impl Inner {
    /// Opens the folders of `names` one by one without following symlinks.
    fn open_dirs(&self, path: &str, names: &[&str]) -> Result<Dir> {
        let mut dir = self.dir.try_clone().map_err(|e| os_err("/", e))?;
        for (i, name) in names.iter().enumerate() {
            let partial = join(&names[..=i]);
            dir = match dir.open_dir_nofollow(name) {
                Ok(d) => d,
                Err(e) => {
                    return Err(match dir.symlink_metadata(name) {
                        Ok(md) if md.file_type().is_symlink() => StorageError::Symlink(partial),
                        Ok(md) if !md.is_dir() => StorageError::NotADirectory(partial),
                        _ => os_err(
                            if e.kind() == io::ErrorKind::NotFound {
                                path
                            } else {
                                &partial
                            },
                            e,
                        ),
                    });
                }
            };
        }
        Ok(dir)
    }

    /// The parent folder's handle and the final name (None for the root).
    fn parent_of(&self, path: &str) -> Result<(Dir, Option<String>)> {
        let names = split(path)?;
        match names.split_last() {
            None => Ok((self.open_dirs(path, &[])?, None)),
            Some((last, parents)) => Ok((self.open_dirs(path, parents)?, Some(last.to_string()))),
        }
    }

    fn name_of(
        cache: &Mutex<HashMap<u32, String>>,
        id: u32,
        lookup: fn(u32) -> Option<String>,
    ) -> String {
        if let Ok(c) = cache.lock()
            && let Some(n) = c.get(&id)
        {
            return n.clone();
        }
        let name = lookup(id).unwrap_or_else(|| id.to_string());
        if let Ok(mut c) = cache.lock() {
            c.insert(id, name.clone());
        }
        name
    }

    fn entry(&self, name: String, md: &Metadata, link_target: Option<String>) -> Entry {
        let ft = md.file_type();
        Entry {
            name,
            kind: if ft.is_symlink() {
                EntryKind::Symlink
            } else if ft.is_dir() {
                EntryKind::Dir
            } else if ft.is_file() {
                EntryKind::File
            } else {
                EntryKind::Other
            },
            size: md.len(),
            mtime: md.mtime(),
            mode: md.mode() & 0o7777,
            user: Self::name_of(&self.users, md.uid(), user_name),
            group: Self::name_of(&self.groups, md.gid(), group_name),
            link_target,
        }
    }

    fn stat_in(&self, parent: &Dir, name: &str, path: &str) -> Result<Entry> {
        let md = parent.symlink_metadata(name).map_err(|e| os_err(path, e))?;
        let target = if md.file_type().is_symlink() {
            parent
                .read_link_contents(name)
                .ok()
                .map(|t| escape_bytes(t.as_os_str().as_bytes()))
        } else {
            None
        };
        Ok(self.entry(name.to_string(), &md, target))
    }

    fn resolve(&self, path: &str) -> Result<String> {
        let mut todo: VecDeque<String> = split(path)?.into_iter().map(String::from).collect();
        let mut done: Vec<String> = Vec::new();
        let mut links = 0;
        // Once a name does not exist, the rest is taken as given (it is about to be created, or the operation
        // will report it missing).
        let mut missing = false;
        while let Some(name) = todo.pop_front() {
            match name.as_str() {
                "" | "." => continue,
                ".." => {
                    // Only a link's target can bring `..` here.
                    if done.pop().is_none() {
                        return Err(StorageError::Escape(path.into()));
                    }
                    continue;
                }
                _ => {}
            }
            done.push(name);
            if missing {
                continue;
            }
            let rel = done.join("/");
            match self.dir.symlink_metadata(&rel) {
                Ok(md) if md.file_type().is_symlink() => {
                    links += 1;
                    if links > MAX_LINKS {
                        return Err(StorageError::Loop(path.into()));
                    }
                    let target = self
                        .dir
                        .read_link_contents(&rel)
                        .map_err(|e| os_err(path, e))?;
                    let target = std::str::from_utf8(target.as_os_str().as_bytes())
                        .map_err(|_| StorageError::Escape(path.into()))?
                        .to_string();
                    if target.starts_with('/') {
                        return Err(StorageError::Escape(path.into()));
                    }
                    done.pop();
                    for part in target.split('/').rev() {
                        todo.push_front(part.to_string());
                    }
                }
                Ok(_) => {}
                Err(e)
                    if e.kind() == io::ErrorKind::NotFound
                        || e.raw_os_error() == Some(libc::ENOTDIR) =>
                {
                    missing = true;
                }
                Err(e) => return Err(os_err(path, e)),
            }
        }
        Ok(join(&done))
    }

    /// A folder's entries in directory order, handed to `sink` in chunks of at most `chunk` names; stops when
    /// `sink` returns false.
    fn read_dir(
        &self,
        path: &str,
        chunk: usize,
        mut sink: impl FnMut(Listing) -> bool,
    ) -> Result<()> {
        let names = split(path)?;
        let dir = self.open_dirs(path, &names)?;
        let mut out = Listing::default();
        for item in dir.entries().map_err(|e| os_err(path, e))? {
            let item = item.map_err(|e| os_err(path, e))?;
            let raw = item.file_name();
            match raw.to_str() {
                None => out.unrepresentable.push(escape_bytes(raw.as_bytes())),
                Some(name) => match self.stat_in(&dir, name, path) {
                    Ok(e) => out.entries.push(e),
                    // Removed while we were listing.
                    Err(StorageError::NotFound(_)) => {}
                    Err(e) => return Err(e),
                },
            }
            if out.entries.len() + out.unrepresentable.len() >= chunk
                && !sink(std::mem::take(&mut out))
            {
                return Ok(());
            }
        }
        if !out.entries.is_empty() || !out.unrepresentable.is_empty() {
            sink(out);
        }
        Ok(())
    }

    fn list(&self, path: &str) -> Result<Listing> {
        let mut all = Listing::default();
        self.read_dir(path, usize::MAX, |l| {
            all.entries.extend(l.entries);
            all.unrepresentable.extend(l.unrepresentable);
            true
        })?;
        all.entries.sort_by(|a, b| a.name.cmp(&b.name));
        all.unrepresentable.sort();
        Ok(all)
    }

    fn remove_tree(parent: &Dir, name: &std::ffi::OsStr, path: &str, depth: usize) -> Result<()> {
        if depth > MAX_DEPTH {
            return Err(StorageError::Io(At::new(
                path,
                "folders nested too deeply to delete",
            )));
        }
        let dir = parent
            .open_dir_nofollow(name)
            .map_err(|e| os_err(path, e))?;
        for item in dir.entries().map_err(|e| os_err(path, e))? {
            let item = item.map_err(|e| os_err(path, e))?;
            let n = item.file_name();
            let md = match dir.symlink_metadata(&n) {
                Ok(md) => md,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(os_err(path, e)),
            };
            if md.is_dir() && !md.file_type().is_symlink() {
                Self::remove_tree(&dir, &n, path, depth + 1)?;
            } else {
                dir.remove_file(&n).map_err(|e| os_err(path, e))?;
            }
        }
        parent.remove_dir(name).map_err(|e| os_err(path, e))
    }
}

/// rename(2) that never replaces an existing target (renameat2 with RENAME_NOREPLACE). Where the file system
/// lacks it, checks first and renames: a narrow race, on file systems that cannot do better.
fn rename_noreplace(from_dir: &Dir, from: &str, to_dir: &Dir, to: &str, path: &str) -> Result<()> {
    let c = |s: &str| {
        CString::new(s).map_err(|_| StorageError::InvalidPath(At::new(path, "contains a NUL")))
    };
    let (cf, ct) = (c(from)?, c(to)?);
    // SAFETY: both descriptors are open directory handles owned by the caller for the duration of the call,
    // and the names are NUL-terminated strings that outlive it.
    let rc = unsafe {
        libc::renameat2(
            from_dir.as_raw_fd(),
            cf.as_ptr(),
            to_dir.as_raw_fd(),
            ct.as_ptr(),
            libc::RENAME_NOREPLACE,
        )
    };
    if rc == 0 {
        return Ok(());
    }
    let e = io::Error::last_os_error();
    if e.raw_os_error() != Some(libc::EINVAL) {
        return Err(os_err(path, e));
    }
    if to_dir.symlink_metadata(to).is_ok() {
        return Err(StorageError::Exists(path.into()));
    }
    from_dir
        .rename(from, to_dir, to)
        .map_err(|e| os_err(path, e))
}

/// fsync of a folder. Directory handles may be O_PATH descriptors, which cannot be synced, so the folder is
/// reopened for reading through its handle.
fn sync_dir(dir: &Dir) -> io::Result<()> {
    // SAFETY: the handle is an open directory descriptor for the duration of the call; "." is NUL-terminated.
    let fd = unsafe {
        libc::openat(
            dir.as_raw_fd(),
            c".".as_ptr(),
            libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fd was just opened by us and is owned by the File from here on.
    let f = unsafe { <std::fs::File as std::os::fd::FromRawFd>::from_raw_fd(fd) };
    f.sync_all()
}

/// A host account as the C library's passwd database (files, LDAP through NSS…) describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostAccount {
    pub name: String,
    pub home: String,
    pub uid: u32,
    pub gid: u32,
}

/// The host account named `name`, if there is one. Blocking (NSS may ask a directory server).
pub fn host_account(name: &str) -> Option<HostAccount> {
    passwd_entry(Some(&CString::new(name).ok()?), None)
}

fn passwd_entry(name: Option<&CStr>, uid: Option<u32>) -> Option<HostAccount> {
    let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
    let mut buf = vec![0 as libc::c_char; 16 * 1024];
    let mut result: *mut libc::passwd = std::ptr::null_mut();
    // SAFETY: pwd, buf and result are valid for writes for the whole call, and buf.len() is its size.
    let rc = unsafe {
        match (name, uid) {
            (Some(n), _) => libc::getpwnam_r(
                n.as_ptr(),
                &mut pwd,
                buf.as_mut_ptr(),
                buf.len(),
                &mut result,
            ),
            (None, Some(u)) => {
                libc::getpwuid_r(u, &mut pwd, buf.as_mut_ptr(), buf.len(), &mut result)
            }
            (None, None) => return None,
        }
    };
    if rc != 0 || result.is_null() {
        return None;
    }
    // SAFETY: on success the fields point into buf as NUL-terminated strings.
    let (n, d) = unsafe { (CStr::from_ptr(pwd.pw_name), CStr::from_ptr(pwd.pw_dir)) };
    Some(HostAccount {
        name: n.to_string_lossy().into_owned(),
        home: d.to_string_lossy().into_owned(),
        uid: pwd.pw_uid,
        gid: pwd.pw_gid,
    })
}

/// Account look-ups (the C library's `getpwnam_r`, `getgrouplist`: NSS, which may ask a directory server over
/// the network) at once at most: they run on the blocking pool, so that a slow directory server holds up neither
/// the runtime's threads nor the whole pool.
const LOOKUPS: usize = 8;
static LOOKUP_PERMITS: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(LOOKUPS);

/// Runs an account look-up on the blocking pool, within [`LOOKUPS`]; None if it could not run.
async fn lookup<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Option<T> {
    let _permit = LOOKUP_PERMITS.acquire().await.ok()?;
    tokio::task::spawn_blocking(f).await.ok()
}

/// The POSIX groups (names) an account belongs to on this host, its primary group included; None when the
/// host does not know the account. Looked up off the runtime's threads (see [`LOOKUPS`]).
pub async fn posix_groups(username: &str) -> Option<Vec<String>> {
    let name = username.to_string();
    lookup(move || posix_groups_of(&name)).await?
}

fn posix_groups_of(username: &str) -> Option<Vec<String>> {
    let c = CString::new(username).ok()?;
    let primary = passwd_entry(Some(&c), None)?.gid;
    let mut n: libc::c_int = 64;
    let mut gids: Vec<libc::gid_t> = vec![0; n as usize];
    loop {
        let mut count = n;
        // SAFETY: gids has room for `count` entries; getgrouplist writes at most that many and the needed count.
        let rc = unsafe { libc::getgrouplist(c.as_ptr(), primary, gids.as_mut_ptr(), &mut count) };
        if rc >= 0 {
            gids.truncate(count.max(0) as usize);
            break;
        }
        // Too small: `count` says how many there are (bounded, in case it does not).
        if count <= n || count > 65_536 {
            return None;
        }
        n = count;
        gids.resize(n as usize, 0);
    }
    Some(
        gids.into_iter()
            .map(|g| group_name(g).unwrap_or_else(|| g.to_string()))
            .collect(),
    )
}

fn user_name(uid: u32) -> Option<String> {
    passwd_entry(None, Some(uid)).map(|a| a.name)
}

fn group_name(gid: u32) -> Option<String> {
    let mut grp: libc::group = unsafe { std::mem::zeroed() };
    let mut buf = vec![0 as libc::c_char; 16 * 1024];
    let mut result: *mut libc::group = std::ptr::null_mut();
    // SAFETY: as for getpwuid_r above.
    let rc = unsafe { libc::getgrgid_r(gid, &mut grp, buf.as_mut_ptr(), buf.len(), &mut result) };
    if rc != 0 || result.is_null() {
        return None;
    }
    // SAFETY: on success gr_name points into buf.
    Some(
        unsafe { CStr::from_ptr(grp.gr_name) }
            .to_string_lossy()
            .into_owned(),
    )
}

/// A name for an upload's temporary file: hidden, unique, and within the 255-byte limit.
fn temp_name(name: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut stem = name;
    while stem.len() > 200 {
        let mut cut = 200;
        while !stem.is_char_boundary(cut) {
            cut -= 1;
        }
        stem = &stem[..cut];
    }
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!(
        ".{stem}.{:x}{:x}{:x}.ferry-part",
        std::process::id(),
        nanos,
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// The temporary name under which a transfer attempt `token` writes `name`: hidden, beside it, and the same
/// every time, so that a restarted transfer finds what the last attempt wrote.
pub fn part_name(name: &str, token: &str) -> String {
    let mut stem = name;
    while stem.len() > 180 {
        let mut cut = 180;
        while !stem.is_char_boundary(cut) {
            cut -= 1;
        }
        stem = &stem[..cut];
    }
    format!(".{stem}.{token}.ferry-part")
}

/// What tells a changed file from an unchanged one.
fn stamp(md: &std::fs::Metadata) -> (u64, i64, i64, i64, i64, u64) {
    use std::os::unix::fs::MetadataExt as _;
    (
        md.size(),
        md.mtime(),
        md.mtime_nsec(),
        md.ctime(),
        md.ctime_nsec(),
        md.ino(),
    )
}

/// Reads up to `len` bytes at `offset`: fewer only at the end of the file. The buffer is not zeroed first:
/// for large files that would be one more pass over every byte.
fn pread(file: &std::fs::File, offset: u64, len: usize, path: &str) -> Result<Bytes> {
    let mut buf: Vec<u8> = Vec::with_capacity(len);
    while buf.len() < len {
        let got = buf.len();
        // SAFETY: the pointer and length describe the unfilled part of `buf`'s allocation, which pread only
        // writes to; `set_len` below covers exactly the bytes it reported as read.
        let n = unsafe {
            libc::pread(
                file.as_raw_fd(),
                buf.as_mut_ptr().add(got).cast(),
                len - got,
                (offset + got as u64) as libc::off_t,
            )
        };
        match n {
            0 => break,
            n if n > 0 => {
                // SAFETY: pread initialised n more bytes after the first `got`, within the capacity.
                unsafe { buf.set_len(got + n as usize) }
            }
            _ => {
                let e = io::Error::last_os_error();
                if e.kind() != io::ErrorKind::Interrupted {
                    return Err(os_err(path, e));
                }
            }
        }
    }
    Ok(Bytes::from(buf))
}

/// The most bytes one system call writes, or reads back to compare.
const SLICE: usize = 256 << 10;

/// Writes all of `data` at `offset`, at most 256 KiB per system call. On this project's reference kernel (6.18,
/// ext4 with large folios) one write of 1 MiB or more into the page cache is about 7 times slower than the same
/// bytes in 256 KiB writes (measured with dd: 2 GiB in 6.9 s with bs=1M, 0.8 s with bs=256K).
fn write_at_sliced(file: &std::fs::File, data: &[u8], offset: u64) -> io::Result<()> {
    use std::os::unix::fs::FileExt as _;
    for (i, piece) in data.chunks(SLICE).enumerate() {
        file.write_all_at(piece, offset + (i * SLICE) as u64)?;
    }
    Ok(())
}

/// Reads what the file holds at `offset` back and compares it with `expect` (a difference, or a file too short,
/// is `VerifyFailed`). The bytes come back a slice at a time into one buffer per thread, so that a check
/// allocates nothing and compares each slice while it is still in the CPU's cache.
fn check_at(file: &std::fs::File, offset: u64, expect: &[u8], path: &str) -> Result<()> {
    use std::os::unix::fs::FileExt as _;
    thread_local! {
        static BACK: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
    }
    BACK.with_borrow_mut(|back| {
        back.resize(SLICE, 0);
        for (i, want) in expect.chunks(SLICE).enumerate() {
            let got = &mut back[..want.len()];
            match file.read_exact_at(got, offset + (i * SLICE) as u64) {
                Ok(()) if got == want => {}
                Ok(()) => return Err(StorageError::VerifyFailed(path.into())),
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
                    return Err(StorageError::VerifyFailed(path.into()));
                }
                Err(e) => return Err(os_err(path, e)),
            }
        }
        Ok(())
    })
}

/// How far a copy's page cache runs behind its writes before the pages already on disk are let go.
const BEHIND: usize = 64 << 20;

/// Starts writing `[offset, offset + len)` back to disk, without waiting: see [`forget`].
fn start_writeback(file: &std::fs::File, offset: u64, len: usize) {
    // Advice only: a file system that cannot do it loses nothing.
    // SAFETY: the descriptor is open for the call, which takes plain numbers besides it.
    unsafe {
        libc::sync_file_range(
            file.as_raw_fd(),
            offset as libc::off64_t,
            len as libc::off64_t,
            libc::SYNC_FILE_RANGE_WRITE,
        )
    };
}

/// Lets the page cache drop the pages of `[offset, offset + len)` (to the end when `len` is 0) that are already
/// on disk; pages still dirty or being written stay. A copy written back as it goes and let go of behind its
/// writes keeps a bounded footprint, as a streaming writer should, and its next writes reuse the pages it let
/// go of. On a VM that hands free memory back to its host the difference is large: the first touch of such a
/// page costs the host a fault, and writing 2 GiB into fresh pages took 8.5 s of CPU where reused pages took
/// 1 s (measured here with dd; with writeback and letting go 64 MiB behind, 2 GiB took 1.3 s).
fn forget(file: &std::fs::File, offset: u64, len: usize) {
    // SAFETY: as for `start_writeback`.
    unsafe {
        libc::posix_fadvise(
            file.as_raw_fd(),
            offset as libc::off_t,
            len as libc::off_t,
            libc::POSIX_FADV_DONTNEED,
        )
    };
}

/// The ranges a temporary file has written and not yet let go of, oldest first.
#[derive(Default)]
struct Behind {
    ranges: VecDeque<(u64, usize)>,
    bytes: usize,
}

impl Behind {
    /// Adds a range just written; returns those now more than [`BEHIND`] bytes back, to let go of.
    fn push(&mut self, offset: u64, len: usize) -> Vec<(u64, usize)> {
        self.ranges.push_back((offset, len));
        self.bytes += len;
        let mut old = Vec::new();
        while self.bytes > BEHIND
            && let Some((o, l)) = self.ranges.pop_front()
        {
            self.bytes -= l;
            old.push((o, l));
        }
        old
    }
}

fn to_system_time(secs: i64) -> std::time::SystemTime {
    if secs >= 0 {
        std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs as u64)
    } else {
        std::time::UNIX_EPOCH - std::time::Duration::from_secs(secs.unsigned_abs())
    }
}

impl Inner {
    /// Opens a regular file for reading without following a symlink at its name.
    fn open_regular(&self, path: &str) -> Result<(String, std::fs::File, Metadata)> {
        let (parent, name) = self.parent_of(path)?;
        let name = name.ok_or_else(|| StorageError::IsADirectory(path.into()))?;
        let mut opts = OpenOptions::new();
        opts.read(true).follow(FollowSymlinks::No);
        let f =
            parent
                .open_with(&name, &opts)
                .map_err(|e| match parent.symlink_metadata(&name) {
                    Ok(md) if md.file_type().is_symlink() => StorageError::Symlink(path.into()),
                    _ => os_err(path, e),
                })?;
        let md = f.metadata().map_err(|e| os_err(path, e))?;
        if md.is_dir() {
            return Err(StorageError::IsADirectory(path.into()));
        }
        if !md.is_file() {
            return Err(StorageError::InvalidName(At::new(
                path,
                "not a regular file",
            )));
        }
        Ok((name, f.into_std(), md))
    }
}

impl Inner {
    /// One whole file of an open folder (see [`Connector::read_files`]).
    fn read_whole(
        &self,
        folder: &Dir,
        dir: &str,
        name: &str,
        max: u64,
        digest: Option<&Digest>,
    ) -> Result<WholeRead> {
        let path = crate::names::child(dir, name);
        let mut opts = OpenOptions::new();
        opts.read(true).follow(FollowSymlinks::No);
        let f = folder
            .open_with(name, &opts)
            .map_err(|e| os_err(&path, e))?;
        let md = f.metadata().map_err(|e| os_err(&path, e))?;
        if !md.is_file() {
            return Err(if md.is_dir() {
                StorageError::IsADirectory(path)
            } else {
                StorageError::InvalidName(At::new(path, "not a regular file"))
            });
        }
        let mut entry = self.entry(name.to_string(), &md, None);
        if md.len() > max {
            return Ok(WholeRead {
                entry,
                data: None,
                digest: None,
            });
        }
        // The size the file had when opened: what it gains later belongs to the next copy, as with cp.
        let buf = pread(&f.into_std(), 0, md.len() as usize, &path)?;
        entry.size = buf.len() as u64;
        Ok(WholeRead {
            digest: digest.map(|d| d(&buf)),
            entry,
            data: Some(buf),
        })
    }

    /// One whole file into an open folder (see [`Connector::write_files`]): temporary name, optional read-back
    /// check, rename. Whatever fails leaves nothing behind. Returns the file, still open, and its size.
    fn write_whole(&self, folder: &Dir, dir: &str, f: WholeWrite) -> Result<(std::fs::File, u64)> {
        let path = crate::names::child(dir, &f.name);
        let len = f.data.len() as u64;
        // An unnamed file (O_TMPFILE) has no name at all until it is complete and checked, and vanishes if the
        // process dies; linking it in is cheaper than creating a temporary name and renaming it.
        if let Some(file) = unnamed_file(folder) {
            fill(&file, &f, &path)?;
            let part = part_name(&f.name, &f.token);
            name_unnamed(&file, folder, &f.name, Some(&part), &path)?;
            return Ok((file, len));
        }
        let part = part_name(&f.name, &f.token);
        let mut opts = OpenOptions::new();
        opts.read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .follow(FollowSymlinks::No)
            .mode(0o644);
        let file = folder
            .open_with(&part, &opts)
            .map_err(|e| os_err(&path, e))?
            .into_std();
        let done = fill(&file, &f, &path).and_then(|()| {
            // A folder in the way makes the rename fail (EISDIR); a symlink in the way is replaced, not followed.
            folder
                .rename(&part, folder, &f.name)
                .map_err(|e| os_err(&path, e))
        });
        if let Err(e) = done {
            let _ = folder.remove_file(&part);
            return Err(e);
        }
        Ok((file, len))
    }
}

/// Writes a whole file's bytes, reads them back and compares when asked, and sets its modification time.
fn fill(file: &std::fs::File, f: &WholeWrite, path: &str) -> Result<()> {
    // No writeback started here (as cp and GridFTP start none): a batch of small files is far below what the
    // kernel buffers, and starting it per file made each copy wait for the disk's queue.
    write_at_sliced(file, &f.data, 0).map_err(|e| os_err(path, e))?;
    if f.verify {
        // Nothing else can write an unnamed file, and its size is ours: reading its length back is enough.
        check_at(file, 0, &f.data, path)?;
    }
    if let Some(m) = f.mtime {
        let t = std::fs::FileTimes::new().set_modified(to_system_time(m));
        file.set_times(t).map_err(|e| os_err(path, e))?;
    }
    Ok(())
}

/// A new unnamed regular file in `folder`, where the file system supports O_TMPFILE.
fn unnamed_file(folder: &Dir) -> Option<std::fs::File> {
    // SAFETY: the folder handle is open for the call; "." is NUL-terminated.
    let fd = unsafe {
        libc::openat(
            folder.as_raw_fd(),
            c".".as_ptr(),
            libc::O_TMPFILE | libc::O_RDWR | libc::O_CLOEXEC,
            0o644 as libc::c_uint,
        )
    };
    if fd < 0 {
        return None;
    }
    // SAFETY: fd was just opened by us and is owned by the File from here on.
    Some(unsafe { <std::fs::File as std::os::fd::FromRawFd>::from_raw_fd(fd) })
}

/// Names a finished unnamed file `name` in `folder`. When something has the name already, it is replaced
/// through the temporary name `replace_via`, atomically (a folder in the way is not replaced); without
/// `replace_via` the taken name is an `Exists` error.
fn name_unnamed(
    file: &std::fs::File,
    folder: &Dir,
    name: &str,
    replace_via: Option<&str>,
    path: &str,
) -> Result<()> {
    match link_unnamed(file, folder, name) {
        Ok(()) => Ok(()),
        Err(e) if e.raw_os_error() == Some(libc::EEXIST) => {
            let Some(tmp) = replace_via else {
                return Err(StorageError::Exists(path.into()));
            };
            let _ = folder.remove_file(tmp);
            link_unnamed(file, folder, tmp).map_err(|e| os_err(path, e))?;
            folder.rename(tmp, folder, name).map_err(|e| {
                let _ = folder.remove_file(tmp);
                os_err(path, e)
            })
        }
        Err(e) => Err(os_err(path, e)),
    }
}

/// Gives an unnamed file the name `name` in `folder` (fails with EEXIST if the name is taken).
fn link_unnamed(file: &std::fs::File, folder: &Dir, name: &str) -> io::Result<()> {
    use std::sync::atomic::{AtomicBool, Ordering};
    // AT_EMPTY_PATH links the descriptor itself; it needs CAP_DAC_READ_SEARCH (before Linux 6.10), so where it
    // is refused the /proc/self/fd path does the same, at the cost of resolving that path every time.
    static EMPTY_PATH_WORKS: AtomicBool = AtomicBool::new(true);
    let to = CString::new(name).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    let link = |from_fd: libc::c_int, from: &std::ffi::CStr, flags: libc::c_int| {
        // SAFETY: the descriptors are open for the call and the paths are NUL-terminated strings that outlive it.
        let rc = unsafe {
            libc::linkat(
                from_fd,
                from.as_ptr(),
                folder.as_raw_fd(),
                to.as_ptr(),
                flags,
            )
        };
        if rc == 0 {
            Ok(())
        } else {
            Err(io::Error::last_os_error())
        }
    };
    let empty = || link(file.as_raw_fd(), c"", libc::AT_EMPTY_PATH);
    if EMPTY_PATH_WORKS.load(Ordering::Relaxed) {
        match empty() {
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {}
            r => return r,
        }
    }
    let proc_path = CString::new(format!("/proc/self/fd/{}", file.as_raw_fd()))
        .map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    match link(libc::AT_FDCWD, &proc_path, libc::AT_SYMLINK_FOLLOW) {
        Ok(()) => {
            EMPTY_PATH_WORKS.store(false, Ordering::Relaxed);
            Ok(())
        }
        // No /proc either: the last word is AT_EMPTY_PATH's.
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => empty(),
        Err(e) => Err(e),
    }
}

struct PosixReader {
    file: Arc<std::fs::File>,
    entry: Entry,
    stamp: (u64, i64, i64, i64, i64, u64),
    path: String,
}

#[async_trait::async_trait]
impl FileReader for PosixReader {
    fn entry(&self) -> &Entry {
        &self.entry
    }

    async fn read_at(&self, offset: u64, len: usize) -> Result<Bytes> {
        let (file, path) = (self.file.clone(), self.path.clone());
        tokio::task::spawn_blocking(move || pread(&file, offset, len, &path))
            .await
            .map_err(task_failed)?
    }

    async fn changed(&self) -> Result<bool> {
        let (file, path, before) = (self.file.clone(), self.path.clone(), self.stamp);
        tokio::task::spawn_blocking(move || {
            let md = file.metadata().map_err(|e| os_err(&path, e))?;
            Ok(stamp(&md) != before)
        })
        .await
        .map_err(task_failed)?
    }
}

struct PosixPart {
    inner: Arc<Inner>,
    parent: Dir,
    name: String,
    part: String,
    path: String,
    file: Arc<std::fs::File>,
    initial_len: u64,
    /// Writes to the file one at a time: ext4 serialises them on the inode's lock anyway, and writers waiting
    /// there spin on a CPU (10% of a 2 GiB copy on 2 cores) that could be reading or hashing other ranges.
    writing: tokio::sync::Mutex<()>,
    behind: Mutex<Behind>,
}

impl PosixPart {
    /// Writes `data` at `offset` and starts writing it back to disk; then, outside the writers' lock (so that it
    /// runs beside the next write), compares it with `expect` when given and lets go of what was written
    /// [`BEHIND`] bytes ago (see [`forget`]).
    async fn write(&self, offset: u64, data: Bytes, expect: Option<Bytes>) -> Result<()> {
        let len = data.len();
        {
            let _one = self.writing.lock().await;
            self.blocking(move |f, p| {
                write_at_sliced(f, &data, offset).map_err(|e| os_err(p, e))?;
                start_writeback(f, offset, len);
                Ok(())
            })
            .await?;
        }
        let old = self
            .behind
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(offset, len);
        if expect.is_none() && old.is_empty() {
            return Ok(());
        }
        self.blocking(move |f, p| {
            if let Some(expect) = expect {
                check_at(f, offset, &expect, p)?;
            }
            for (o, l) in old {
                forget(f, o, l);
            }
            Ok(())
        })
        .await
    }

    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&std::fs::File, &str) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let (file, path) = (self.file.clone(), self.path.clone());
        tokio::task::spawn_blocking(move || f(&file, &path))
            .await
            .map_err(task_failed)?
    }
}

#[async_trait::async_trait]
impl PartFile for PosixPart {
    fn initial_len(&self) -> u64 {
        self.initial_len
    }

    async fn set_len(&self, len: u64) -> Result<()> {
        self.blocking(move |f, p| f.set_len(len).map_err(|e| os_err(p, e)))
            .await
    }

    async fn write_at(&self, offset: u64, data: Bytes) -> Result<()> {
        self.write(offset, data, None).await
    }

    async fn read_at(&self, offset: u64, len: usize) -> Result<Bytes> {
        self.blocking(move |f, p| pread(f, offset, len, p)).await
    }

    async fn write_verified(&self, offset: u64, data: Bytes, expect: Bytes) -> Result<()> {
        self.write(offset, data, Some(expect)).await
    }

    async fn commit(self: Box<Self>, how: Commit) -> Result<Entry> {
        let this = *self;
        tokio::task::spawn_blocking(move || {
            let p = this.path.as_str();
            let moved = (|| {
                if let Some(m) = how.mtime {
                    let t = std::fs::FileTimes::new().set_modified(to_system_time(m));
                    this.file.set_times(t).map_err(|e| os_err(p, e))?;
                }
                if how.durable {
                    // Out-of-space errors may only show here, at the flush.
                    this.file.sync_all().map_err(|e| os_err(p, e))?;
                }
                match this.parent.symlink_metadata(&this.name) {
                    Ok(md) if md.is_dir() => return Err(StorageError::IsADirectory(p.into())),
                    Ok(_) if !how.overwrite => return Err(StorageError::Exists(p.into())),
                    _ => {}
                }
                if how.overwrite {
                    this.parent
                        .rename(&this.part, &this.parent, &this.name)
                        .map_err(|e| os_err(p, e))
                } else {
                    rename_noreplace(&this.parent, &this.part, &this.parent, &this.name, p)
                }
            })();
            if let Err(e) = moved {
                // A commit that fails leaves nothing behind, under either name.
                let _ = this.parent.remove_file(&this.part);
                return Err(e);
            }
            if how.durable {
                sync_dir(&this.parent).map_err(|e| os_err(p, e))?;
            }
            this.inner.stat_in(&this.parent, &this.name, p)
        })
        .await
        .map_err(task_failed)?
    }

    async fn discard(self: Box<Self>) -> Result<()> {
        let this = *self;
        tokio::task::spawn_blocking(move || match this.parent.remove_file(&this.part) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(os_err(&this.path, e)),
            _ => Ok(()),
        })
        .await
        .map_err(task_failed)?
    }
}

#[async_trait::async_trait]
impl Connector for PosixConnector {
    async fn resolve(&self, path: &str) -> Result<String> {
        let path = path.to_string();
        self.blocking(move |i| i.resolve(&path)).await
    }

    async fn stat(&self, path: &str) -> Result<Entry> {
        let path = path.to_string();
        self.blocking(move |i| match i.parent_of(&path)? {
            (dir, None) => {
                let md = dir.dir_metadata().map_err(|e| os_err("/", e))?;
                Ok(i.entry("/".into(), &md, None))
            }
            (parent, Some(name)) => i.stat_in(&parent, &name, &path),
        })
        .await
    }

    async fn list(&self, path: &str) -> Result<Listing> {
        let path = path.to_string();
        self.blocking(move |i| i.list(&path)).await
    }

    async fn list_chunks(&self, path: &str) -> Result<ListingStream> {
        // One chunk read ahead: the reader waits for the consumer, so memory stays at two chunks.
        let (tx, rx) = tokio::sync::mpsc::channel::<Result<Listing>>(1);
        let (inner, path) = (self.inner.clone(), path.to_string());
        tokio::task::spawn_blocking(move || {
            let r = inner.read_dir(&path, LIST_CHUNK, |chunk| {
                tx.blocking_send(Ok(chunk)).is_ok()
            });
            if let Err(e) = r {
                let _ = tx.blocking_send(Err(e));
            }
        });
        Ok(Box::pin(futures_util::stream::unfold(
            rx,
            |mut rx| async move { rx.recv().await.map(|item| (item, rx)) },
        )))
    }

    async fn read(&self, path: &str, offset: u64, len: Option<u64>) -> Result<ByteStream> {
        let p = path.to_string();
        let file = self
            .blocking(move |i| {
                let (parent, name) = i.parent_of(&p)?;
                let name = name.ok_or_else(|| StorageError::IsADirectory(p.clone()))?;
                let mut opts = OpenOptions::new();
                opts.read(true).follow(FollowSymlinks::No);
                let f = parent.open_with(&name, &opts).map_err(|e| os_err(&p, e))?;
                let md = f.metadata().map_err(|e| os_err(&p, e))?;
                if md.is_dir() {
                    return Err(StorageError::IsADirectory(p));
                }
                if !md.is_file() {
                    return Err(StorageError::InvalidName(At::new(p, "not a regular file")));
                }
                Ok(f.into_std())
            })
            .await?;
        let mut file = tokio::fs::File::from_std(file);
        let shown = path.to_string();
        file.seek(io::SeekFrom::Start(offset))
            .await
            .map_err(|e| os_err(&shown, e))?;
        let state = (file, len, shown);
        Ok(Box::pin(futures_util::stream::try_unfold(
            state,
            |(mut file, left, shown)| async move {
                let want = left.map_or(CHUNK, |l| CHUNK.min(l as usize));
                if want == 0 {
                    return Ok(None);
                }
                let mut buf = BytesMut::with_capacity(want);
                while buf.len() < want {
                    let n = (&mut file)
                        .take((want - buf.len()) as u64)
                        .read_buf(&mut buf)
                        .await
                        .map_err(|e| os_err(&shown, e))?;
                    if n == 0 {
                        break;
                    }
                }
                if buf.is_empty() {
                    return Ok(None);
                }
                let left = left.map(|l| l - buf.len() as u64);
                Ok(Some((buf.freeze(), (file, left, shown))))
            },
        )))
    }

    async fn write(&self, path: &str, overwrite: bool) -> Result<Box<dyn Upload>> {
        let p = path.to_string();
        let inner = self.inner.clone();
        let (parent, name, tmp, file) = self
            .blocking(move |i| {
                let (parent, name) = i.parent_of(&p)?;
                let name = name.ok_or_else(|| StorageError::IsADirectory(p.clone()))?;
                match parent.symlink_metadata(&name) {
                    Ok(md) if md.is_dir() => return Err(StorageError::IsADirectory(p)),
                    Ok(_) if !overwrite => return Err(StorageError::Exists(p)),
                    _ => {}
                }
                // Unnamed (O_TMPFILE) where the file system allows: a server killed mid-upload leaves nothing.
                if let Some(f) = unnamed_file(&parent) {
                    return Ok((parent, name, None, f));
                }
                let mut opts = OpenOptions::new();
                opts.write(true)
                    .create_new(true)
                    .follow(FollowSymlinks::No)
                    .mode(0o644);
                loop {
                    let tmp = temp_name(&name);
                    match parent.open_with(&tmp, &opts) {
                        Ok(f) => return Ok((parent, name, Some(tmp), f.into_std())),
                        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                        Err(e) => return Err(os_err(&p, e)),
                    }
                }
            })
            .await?;
        Ok(Box::new(PosixUpload {
            inner,
            parent: Some(parent),
            name,
            tmp,
            path: path.to_string(),
            file: Some(tokio::fs::File::from_std(file)),
            overwrite,
        }))
    }

    async fn mkdir(&self, path: &str) -> Result<()> {
        let p = path.to_string();
        self.blocking(move |i| match i.parent_of(&p)? {
            (_, None) => Err(StorageError::Exists(p)),
            (parent, Some(name)) => parent.create_dir(&name).map_err(|e| os_err(&p, e)),
        })
        .await
    }

    async fn rename(&self, from: &str, to: &str) -> Result<()> {
        let (from, to) = (from.to_string(), to.to_string());
        self.blocking(move |i| {
            let (fp, fname) = i.parent_of(&from)?;
            let (tp, tname) = i.parent_of(&to)?;
            let fname = fname.ok_or_else(|| {
                StorageError::InvalidPath(At::new(&from, "the root cannot be renamed"))
            })?;
            let tname = tname.ok_or_else(|| StorageError::Exists(to.clone()))?;
            fp.symlink_metadata(&fname).map_err(|e| os_err(&from, e))?;
            rename_noreplace(&fp, &fname, &tp, &tname, &to)
        })
        .await
    }

    async fn delete(&self, path: &str, recursive: bool) -> Result<()> {
        let p = path.to_string();
        self.blocking(move |i| {
            let (parent, name) = i.parent_of(&p)?;
            let name = name.ok_or_else(|| {
                StorageError::InvalidPath(At::new(&p, "the root cannot be deleted"))
            })?;
            let md = parent.symlink_metadata(&name).map_err(|e| os_err(&p, e))?;
            if md.is_dir() && !md.file_type().is_symlink() {
                if recursive {
                    Inner::remove_tree(&parent, std::ffi::OsStr::new(&name), &p, 0)
                } else {
                    parent.remove_dir(&name).map_err(|e| os_err(&p, e))
                }
            } else {
                parent.remove_file(&name).map_err(|e| os_err(&p, e))
            }
        })
        .await
    }

    async fn set_mtime(&self, path: &str, mtime: i64) -> Result<()> {
        let p = path.to_string();
        self.blocking(move |i| {
            let (parent, name) = i.parent_of(&p)?;
            let name = name.ok_or_else(|| {
                StorageError::InvalidPath(At::new(&p, "the root's times are not set"))
            })?;
            let spec = SystemTimeSpec::Absolute(cap_std::time::SystemTime::from_std(
                to_system_time(mtime),
            ));
            parent
                .set_symlink_times(&name, None, Some(spec))
                .map_err(|e| os_err(&p, e))
        })
        .await
    }

    async fn read_small(&self, path: &str, max: u64) -> Result<(Entry, Option<Bytes>)> {
        let p = path.to_string();
        self.blocking(move |i| {
            use std::io::Read as _;
            let (name, f, md) = i.open_regular(&p)?;
            let entry = i.entry(name, &md, None);
            if md.len() > max {
                return Ok((entry, None));
            }
            let mut buf = Vec::with_capacity(md.len() as usize + 1);
            (&f).take(max + 1)
                .read_to_end(&mut buf)
                .map_err(|e| os_err(&p, e))?;
            if buf.len() as u64 > max {
                return Ok((entry, None));
            }
            Ok((entry, Some(Bytes::from(buf))))
        })
        .await
    }

    async fn open_reader(&self, path: &str) -> Result<Box<dyn FileReader>> {
        let p = path.to_string();
        let (entry, file, st) = self
            .blocking(move |i| {
                let (name, f, md) = i.open_regular(&p)?;
                let st = stamp(&f.metadata().map_err(|e| os_err(&p, e))?);
                Ok((i.entry(name, &md, None), f, st))
            })
            .await?;
        Ok(Box::new(PosixReader {
            file: Arc::new(file),
            entry,
            stamp: st,
            path: path.to_string(),
        }))
    }

    async fn open_part(
        &self,
        path: &str,
        token: &str,
        initial: Option<Bytes>,
    ) -> Result<Box<dyn PartFile>> {
        let (p, token) = (path.to_string(), token.to_string());
        let inner = self.inner.clone();
        self.blocking(move |i| {
            let (parent, name) = i.parent_of(&p)?;
            let name = name.ok_or_else(|| StorageError::IsADirectory(p.clone()))?;
            if let Ok(md) = parent.symlink_metadata(&name)
                && md.is_dir()
            {
                return Err(StorageError::IsADirectory(p));
            }
            let part = part_name(&name, &token);
            let mut opts = OpenOptions::new();
            opts.read(true)
                .write(true)
                .create(true)
                .follow(FollowSymlinks::No)
                .mode(0o644);
            let f = parent
                .open_with(&part, &opts)
                .map_err(|e| os_err(&p, e))?
                .into_std();
            if let Some(data) = initial {
                let written = f.set_len(0).and_then(|()| write_at_sliced(&f, &data, 0));
                if let Err(e) = written {
                    // Out of space, say: nothing half-written stays behind, not even under the temporary name.
                    let _ = parent.remove_file(&part);
                    return Err(os_err(&p, e));
                }
            }
            let initial_len = f.metadata().map_err(|e| os_err(&p, e))?.len();
            Ok(Box::new(PosixPart {
                inner,
                parent,
                name,
                part,
                path: p,
                file: Arc::new(f),
                initial_len,
                writing: tokio::sync::Mutex::new(()),
                behind: Mutex::default(),
            }) as Box<dyn PartFile>)
        })
        .await
    }

    async fn remove_part(&self, path: &str, token: &str) -> Result<()> {
        let (p, token) = (path.to_string(), token.to_string());
        self.blocking(move |i| {
            let (parent, name) = match i.parent_of(&p) {
                Ok((d, Some(n))) => (d, n),
                Ok((_, None)) | Err(StorageError::NotFound(_)) => return Ok(()),
                Err(e) => return Err(e),
            };
            match parent.remove_file(part_name(&name, &token)) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => Err(os_err(&p, e)),
                _ => Ok(()),
            }
        })
        .await
    }

    async fn read_files(
        &self,
        dir: &str,
        names: Vec<String>,
        max: u64,
        digest: Option<Digest>,
    ) -> Vec<Result<WholeRead>> {
        let d = dir.to_string();
        let n = names.len();
        let r = self
            .blocking(move |i| {
                let folder = i.open_dirs(&d, &split(&d)?)?;
                Ok(names
                    .iter()
                    .map(|name| i.read_whole(&folder, &d, name, max, digest.as_ref()))
                    .collect())
            })
            .await;
        r.unwrap_or_else(|e| (0..n).map(|_| Err(e.clone())).collect())
    }

    async fn write_files(&self, dir: &str, files: Vec<WholeWrite>) -> Vec<Result<u64>> {
        let d = dir.to_string();
        let n = files.len();
        let r = self
            .blocking(move |i| {
                let folder = i.open_dirs(&d, &split(&d)?)?;
                let mut written = Vec::with_capacity(files.len());
                let out = files
                    .into_iter()
                    .map(|f| {
                        let (file, len) = i.write_whole(&folder, &d, f)?;
                        written.push(file);
                        Ok(len)
                    })
                    .collect();
                // Written back while the rest of the batch was written: what is on disk leaves the page cache.
                for file in &written {
                    forget(file, 0, 0);
                }
                Ok(out)
            })
            .await;
        r.unwrap_or_else(|e| (0..n).map(|_| Err(e.clone())).collect())
    }

    async fn flush(&self) -> Result<()> {
        self.blocking(|i| {
            // SAFETY: the root handle is open for the duration of the call; "." is NUL-terminated.
            let fd = unsafe {
                libc::openat(
                    i.dir.as_raw_fd(),
                    c".".as_ptr(),
                    libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC,
                )
            };
            if fd < 0 {
                return Err(os_err("/", io::Error::last_os_error()));
            }
            // SAFETY: fd was just opened by us and is owned by the File from here on.
            let f = unsafe { <std::fs::File as std::os::fd::FromRawFd>::from_raw_fd(fd) };
            // SAFETY: f is an open descriptor for the duration of the call.
            if unsafe { libc::syncfs(f.as_raw_fd()) } != 0 {
                return Err(os_err("/", io::Error::last_os_error()));
            }
            Ok(())
        })
        .await
    }

    /// POSIX accounts have homes; one outside the gateway's folder is one this storage cannot reach.
    fn has_homes(&self) -> bool {
        true
    }

    async fn home_of(&self, username: &str) -> Option<String> {
        let c = CString::new(username).ok()?;
        let home = lookup(move || passwd_entry(Some(&c), None)).await??.home;
        let rel = Path::new(&home).strip_prefix(&self.inner.root).ok()?;
        let mut out = String::new();
        for part in rel.components() {
            out.push('/');
            out.push_str(part.as_os_str().to_str()?);
        }
        Some(if out.is_empty() { "/".into() } else { out })
    }
}

struct PosixUpload {
    inner: Arc<Inner>,
    /// None once committed or aborted.
    parent: Option<Dir>,
    name: String,
    /// The hidden temporary name the bytes go to; None when the file has no name until committed.
    tmp: Option<String>,
    path: String,
    file: Option<tokio::fs::File>,
    overwrite: bool,
}

#[async_trait::async_trait]
impl Upload for PosixUpload {
    async fn write(&mut self, chunk: Bytes) -> Result<()> {
        let f = self
            .file
            .as_mut()
            .ok_or_else(|| StorageError::Io(At::new(&self.path, "upload already finished")))?;
        f.write_all(&chunk).await.map_err(|e| os_err(&self.path, e))
    }

    async fn commit(mut self: Box<Self>) -> Result<Entry> {
        let mut f = self
            .file
            .take()
            .ok_or_else(|| StorageError::Io(At::new(&self.path, "upload already finished")))?;
        f.flush().await.map_err(|e| os_err(&self.path, e))?;
        f.sync_all().await.map_err(|e| os_err(&self.path, e))?;
        let file = f.into_std().await;
        let parent = self
            .parent
            .take()
            .ok_or_else(|| StorageError::Io(At::new(&self.path, "upload already finished")))?;
        let (name, tmp, path, overwrite, inner) = (
            self.name.clone(),
            self.tmp.take(),
            self.path.clone(),
            self.overwrite,
            self.inner.clone(),
        );
        tokio::task::spawn_blocking(move || {
            let moved = match &tmp {
                None => {
                    let via = overwrite.then(|| temp_name(&name));
                    name_unnamed(&file, &parent, &name, via.as_deref(), &path)
                }
                Some(tmp) if overwrite => parent
                    .rename(tmp, &parent, &name)
                    .map_err(|e| os_err(&path, e)),
                Some(tmp) => rename_noreplace(&parent, tmp, &parent, &name, &path),
            };
            drop(file);
            if let Err(e) = moved {
                if let Some(tmp) = &tmp {
                    let _ = parent.remove_file(tmp);
                }
                return Err(e);
            }
            // The rename is durable only once the folder is synced.
            sync_dir(&parent).map_err(|e| os_err(&path, e))?;
            inner.stat_in(&parent, &name, &path)
        })
        .await
        .map_err(task_failed)?
    }

    async fn abort(mut self: Box<Self>) -> Result<()> {
        self.file.take();
        if let (Some(parent), Some(tmp)) = (self.parent.take(), self.tmp.take()) {
            let path = self.path.clone();
            tokio::task::spawn_blocking(move || {
                parent.remove_file(&tmp).map_err(|e| os_err(&path, e))
            })
            .await
            .map_err(task_failed)??;
        }
        Ok(())
    }
}

impl Drop for PosixUpload {
    fn drop(&mut self) {
        // Neither committed nor aborted: a broken upload leaves nothing behind (an unnamed one vanishes with
        // its descriptor).
        self.file.take();
        if let (Some(parent), Some(tmp)) = (self.parent.take(), self.tmp.take()) {
            let _ = parent.remove_file(&tmp);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::TryStreamExt;
    use std::os::unix::ffi::OsStringExt;
    use std::os::unix::fs::symlink;

    /// A root folder and, beside it, a canary folder with a secret that no operation may touch.
    struct Fixture {
        _tmp: tempfile::TempDir,
        root: PathBuf,
        canary: PathBuf,
        c: PosixConnector,
    }

    fn fixture() -> Fixture {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("root");
        let canary = tmp.path().join("canary");
        std::fs::create_dir_all(root.join("d/sub")).unwrap();
        std::fs::create_dir_all(&canary).unwrap();
        std::fs::write(canary.join("secret"), b"SECRET").unwrap();
        std::fs::write(root.join("d/f.txt"), b"0123456789").unwrap();
        let c = PosixConnector::open(&root).unwrap();
        Fixture {
            _tmp: tmp,
            root,
            canary,
            c,
        }
    }

    impl Fixture {
        fn canary_intact(&self) {
            assert_eq!(
                std::fs::read(self.canary.join("secret")).unwrap(),
                b"SECRET"
            );
            assert_eq!(std::fs::read_dir(&self.canary).unwrap().count(), 1);
        }
    }

    async fn read_all(c: &PosixConnector, p: &str, off: u64, len: Option<u64>) -> Result<Vec<u8>> {
        let chunks: Vec<Bytes> = c.read(p, off, len).await?.try_collect().await?;
        Ok(chunks.concat())
    }

    #[tokio::test]
    async fn symlinks_out_of_the_root_are_refused_everywhere() {
        let f = fixture();
        symlink("/etc/passwd", f.root.join("abssym")).unwrap();
        symlink(f.canary.join("secret"), f.root.join("abscanary")).unwrap();
        symlink("../../canary/secret", f.root.join("d/dotdotlink")).unwrap();
        symlink("../canary", f.root.join("outdir")).unwrap();
        for p in [
            "/abssym",
            "/abscanary",
            "/d/dotdotlink",
            "/outdir",
            "/outdir/secret",
        ] {
            assert!(
                matches!(f.c.resolve(p).await, Err(StorageError::Escape(_))),
                "resolve {p}"
            );
            assert!(read_all(&f.c, p, 0, None).await.is_err(), "read {p}");
            assert!(f.c.list(p).await.is_err(), "list {p}");
        }
        assert!(f.c.write("/outdir/new", true).await.is_err());
        assert!(f.c.mkdir("/outdir/new").await.is_err());
        assert!(f.c.delete("/outdir/secret", false).await.is_err());
        assert!(f.c.rename("/outdir/secret", "/stolen").await.is_err());
        // Deleting the links removes the links, never their targets.
        f.c.delete("/abscanary", false).await.unwrap();
        f.c.delete("/outdir", true).await.unwrap();
        assert!(!f.root.join("outdir").exists());
        f.canary_intact();
    }

    #[tokio::test]
    async fn links_inside_are_followed_by_resolve_only() {
        let f = fixture();
        symlink("d", f.root.join("alias")).unwrap();
        symlink("sub/../f.txt", f.root.join("d/ln")).unwrap();
        assert_eq!(f.c.resolve("/alias/f.txt").await.unwrap(), "/d/f.txt");
        assert_eq!(f.c.resolve("/d/ln").await.unwrap(), "/d/f.txt");
        assert_eq!(
            f.c.resolve("/alias/new/deeper").await.unwrap(),
            "/d/new/deeper"
        );
        assert!(matches!(
            f.c.list("/alias").await,
            Err(StorageError::Symlink(_))
        ));
        assert!(matches!(
            read_all(&f.c, "/alias/f.txt", 0, None).await,
            Err(StorageError::Symlink(_))
        ));
        assert!(matches!(
            read_all(&f.c, "/d/ln", 0, None).await,
            Err(StorageError::Symlink(_))
        ));
        let e = f.c.stat("/alias").await.unwrap();
        assert_eq!(
            (e.kind, e.link_target.as_deref()),
            (EntryKind::Symlink, Some("d"))
        );
        symlink("loop2", f.root.join("loop1")).unwrap();
        symlink("loop1", f.root.join("loop2")).unwrap();
        assert!(matches!(
            f.c.resolve("/loop1").await,
            Err(StorageError::Loop(_))
        ));
    }

    #[tokio::test]
    async fn a_folder_swapped_for_a_symlink_after_resolve_is_not_traversed() {
        let f = fixture();
        let resolved = f.c.resolve("/d/sub").await.unwrap();
        std::fs::remove_dir(f.root.join("d/sub")).unwrap();
        symlink(&f.canary, f.root.join("d/sub")).unwrap();
        let inside = format!("{resolved}/secret");
        assert!(matches!(
            f.c.list(&resolved).await,
            Err(StorageError::Symlink(_))
        ));
        assert!(matches!(
            read_all(&f.c, &inside, 0, None).await,
            Err(StorageError::Symlink(_))
        ));
        assert!(f.c.write(&inside, true).await.is_err());
        assert!(f.c.delete(&inside, false).await.is_err());
        assert!(f.c.set_mtime(&inside, 0).await.is_err());
        f.c.delete("/d", true).await.unwrap();
        f.canary_intact();
    }

    #[tokio::test]
    async fn bad_paths_are_refused() {
        let f = fixture();
        for p in ["", "d", "/d/../..", "/d/./f.txt", "//d", "/d/", "/d\0"] {
            assert!(
                matches!(f.c.stat(p).await, Err(StorageError::InvalidPath(_))),
                "{p:?}"
            );
        }
        assert!(matches!(
            f.c.delete("/", true).await,
            Err(StorageError::InvalidPath(_))
        ));
        assert!(matches!(
            f.c.mkdir("/d").await,
            Err(StorageError::Exists(_))
        ));
        assert!(matches!(
            f.c.mkdir("/none/x").await,
            Err(StorageError::NotFound(_))
        ));
        assert!(matches!(
            f.c.list("/d/f.txt").await,
            Err(StorageError::NotADirectory(_))
        ));
        assert!(matches!(
            f.c.delete("/d", false).await,
            Err(StorageError::DirectoryNotEmpty(_))
        ));
    }

    #[tokio::test]
    async fn odd_names_round_trip_and_undecodable_ones_are_reported() {
        let f = fixture();
        for name in [
            "sp ace",
            "trailing ",
            "new\nline",
            "back\\slash",
            "c:olon",
            "-dash",
            "ünï ☃",
            "dot.",
        ] {
            let p = format!("/d/{name}");
            let mut u = f.c.write(&p, false).await.unwrap();
            u.write(Bytes::from(name.as_bytes().to_vec()))
                .await
                .unwrap();
            u.commit().await.unwrap();
            assert_eq!(read_all(&f.c, &p, 0, None).await.unwrap(), name.as_bytes());
            assert!(
                f.c.list("/d")
                    .await
                    .unwrap()
                    .entries
                    .iter()
                    .any(|e| e.name == name)
            );
            let q = format!("/d/{name}2");
            f.c.rename(&p, &q).await.unwrap();
            assert_eq!(f.c.stat(&q).await.unwrap().name, format!("{name}2"));
            f.c.delete(&q, false).await.unwrap();
        }
        let raw = std::ffi::OsString::from_vec(b"caf\xe9".to_vec());
        std::fs::write(f.root.join("d").join(raw), b"x").unwrap();
        let l = f.c.list("/d").await.unwrap();
        assert_eq!(l.unrepresentable, vec!["caf\\xe9".to_string()]);
        assert!(l.entries.iter().all(|e| !e.name.starts_with("caf")));
        // A recursive delete removes what cannot be named on the wire too.
        f.c.delete("/d", true).await.unwrap();
        assert!(!f.root.join("d").exists());
    }

    #[tokio::test]
    async fn uploads_appear_only_when_committed() {
        let f = fixture();
        let names = || std::fs::read_dir(f.root.join("d")).unwrap().count();
        let before = names();
        let mut u = f.c.write("/d/up", false).await.unwrap();
        u.write(Bytes::from_static(b"partial")).await.unwrap();
        assert!(
            !f.root.join("d/up").exists(),
            "nothing under the real name yet"
        );
        u.abort().await.unwrap();
        assert_eq!(names(), before, "no temporary file left");
        let mut u = f.c.write("/d/up", false).await.unwrap();
        u.write(Bytes::from_static(b"partial")).await.unwrap();
        drop(u);
        assert_eq!(names(), before, "a dropped upload leaves nothing");
        // A process killed mid-upload runs no destructor at all: still nothing may be left under any name.
        let mut u = f.c.write("/d/killed", false).await.unwrap();
        u.write(Bytes::from_static(b"partial")).await.unwrap();
        std::mem::forget(u);
        assert_eq!(names(), before, "a killed upload leaves nothing");
        assert!(matches!(
            f.c.write("/d/f.txt", false).await,
            Err(StorageError::Exists(_))
        ));
        // A name that appears while the upload runs is not replaced without overwrite.
        let mut u = f.c.write("/d/race", false).await.unwrap();
        u.write(Bytes::from_static(b"mine")).await.unwrap();
        std::fs::write(f.root.join("d/race"), b"theirs").unwrap();
        assert!(matches!(u.commit().await, Err(StorageError::Exists(_))));
        assert_eq!(std::fs::read(f.root.join("d/race")).unwrap(), b"theirs");
        assert_eq!(names(), before + 1);
        let mut u = f.c.write("/d/f.txt", true).await.unwrap();
        u.write(Bytes::from_static(b"new")).await.unwrap();
        let e = u.commit().await.unwrap();
        assert_eq!((e.size, e.kind), (3, EntryKind::File));
        assert!(matches!(
            f.c.rename("/d/race", "/d/f.txt").await,
            Err(StorageError::Exists(_))
        ));
    }

    #[tokio::test]
    async fn ranges_and_bounded_chunks() {
        let f = fixture();
        assert_eq!(
            read_all(&f.c, "/d/f.txt", 3, Some(4)).await.unwrap(),
            b"3456"
        );
        assert_eq!(read_all(&f.c, "/d/f.txt", 7, None).await.unwrap(), b"789");
        assert_eq!(read_all(&f.c, "/d/f.txt", 100, None).await.unwrap(), b"");
        assert!(matches!(
            read_all(&f.c, "/d", 0, None).await,
            Err(StorageError::IsADirectory(_))
        ));
        let big = vec![7u8; 64 << 20];
        std::fs::write(f.root.join("big"), &big).unwrap();
        let mut total = 0;
        let mut s = f.c.read("/big", 0, None).await.unwrap();
        while let Some(chunk) = s.try_next().await.unwrap() {
            assert!(chunk.len() <= CHUNK);
            total += chunk.len();
        }
        assert_eq!(total, big.len());
        let e = f.c.stat("/").await.unwrap();
        assert_eq!((e.name.as_str(), e.kind), ("/", EntryKind::Dir));
        f.c.set_mtime("/big", 1_000_000).await.unwrap();
        assert_eq!(f.c.stat("/big").await.unwrap().mtime, 1_000_000);
    }

    #[test]
    fn a_check_reads_back_every_slice_and_the_length() {
        let tmp = tempfile::tempdir().unwrap();
        let data: Vec<u8> = (0..(2 * SLICE + 1000)).map(|i| (i % 253) as u8).collect();
        let path = tmp.path().join("f");
        std::fs::write(&path, &data).unwrap();
        let file = std::fs::File::open(&path).unwrap();
        check_at(&file, 0, &data, "/f").unwrap();
        check_at(&file, 7, &data[7..SLICE + 9], "/f").unwrap();
        // A difference in the last slice, and a file shorter than expected.
        let mut bad = data.clone();
        bad[2 * SLICE + 999] ^= 1;
        let mut long = data.clone();
        long.push(0);
        for expect in [&bad, &long] {
            assert!(matches!(
                check_at(&file, 0, expect, "/f"),
                Err(StorageError::VerifyFailed(_))
            ));
        }
    }

    #[test]
    fn written_ranges_are_let_go_of_behind_the_writes() {
        let mut b = Behind::default();
        let mib = 1 << 20;
        let old: Vec<_> = (0..80u64)
            .flat_map(|i| b.push(i * mib as u64, mib))
            .collect();
        // The newest BEHIND bytes stay; the rest go, oldest first.
        let want: Vec<_> = (0..(80 - BEHIND / mib) as u64)
            .map(|i| (i * mib as u64, mib))
            .collect();
        assert_eq!(old, want);
        assert_eq!(b.bytes, BEHIND);
    }

    #[tokio::test]
    async fn whole_files_are_written_checked_and_named() {
        let f = fixture();
        let data = Bytes::from((0..(SLICE + 5)).map(|i| i as u8).collect::<Vec<u8>>());
        let files = ["a", "b"].map(|name| WholeWrite {
            name: name.into(),
            token: format!("t-{name}"),
            data: data.clone(),
            mtime: Some(1_000_000),
            verify: name == "a",
        });
        let r = f.c.write_files("/d/sub", files.to_vec()).await;
        assert!(
            r.iter()
                .all(|r| r.as_ref().ok() == Some(&(data.len() as u64)))
        );
        for name in ["a", "b"] {
            assert_eq!(
                std::fs::read(f.root.join("d/sub").join(name)).unwrap(),
                data
            );
            assert_eq!(
                f.c.stat(&format!("/d/sub/{name}")).await.unwrap().mtime,
                1_000_000
            );
        }
        let mut names: Vec<_> = std::fs::read_dir(f.root.join("d/sub"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        names.sort();
        assert_eq!(names, ["a", "b"], "no temporary names are left");
    }

    #[tokio::test]
    async fn posix_groups_of_accounts() {
        let root = posix_groups("root").await.unwrap();
        assert!(root.iter().any(|g| g == "root"), "{root:?}");
        assert_eq!(posix_groups("no-such-user-here").await, None);
    }

    #[tokio::test]
    async fn homes_outside_the_root_are_not_shown() {
        let f = fixture();
        // root's home (/root) is not inside a temporary folder.
        assert_eq!(f.c.home_of("root").await, None);
        assert_eq!(f.c.home_of("no-such-user-here").await, None);
        let whole = PosixConnector::open(Path::new("/")).unwrap();
        assert_eq!(whole.home_of("root").await.as_deref(), Some("/root"));
    }

    /// Account look-ups leave the runtime's thread free: on a single-threaded runtime, other work goes on while
    /// many of them run (they used to run on that thread, one after the other, with everything else waiting).
    #[tokio::test(flavor = "current_thread")]
    async fn account_lookups_do_not_run_on_the_runtime_thread() {
        let runtime_thread = std::thread::current().id();
        let ran_on = lookup(|| std::thread::current().id()).await.unwrap();
        assert_ne!(ran_on, runtime_thread);
        let many: Vec<_> = (0..4 * LOOKUPS).map(|_| posix_groups("root")).collect();
        for g in futures_util::future::join_all(many).await {
            assert!(g.is_some());
        }
    }

    #[tokio::test]
    async fn a_listing_streams_in_chunks() {
        use futures_util::StreamExt;
        let f = fixture();
        for i in 0..(2 * LIST_CHUNK + 5) {
            std::fs::write(f.root.join(format!("d/n{i}")), b"").unwrap();
        }
        let mut chunks = f.c.list_chunks("/d").await.unwrap();
        let mut sizes = Vec::new();
        while let Some(c) = chunks.next().await {
            sizes.push(c.unwrap().entries.len());
        }
        // f.txt and sub are there too.
        assert_eq!(sizes, [LIST_CHUNK, LIST_CHUNK, 7]);
        let mut missing = f.c.list_chunks("/nope").await.unwrap();
        assert!(matches!(
            missing.next().await,
            Some(Err(StorageError::NotFound(_)))
        ));
        // Dropping the stream stops the reading (the reader's send fails and it ends).
        let mut early = f.c.list_chunks("/d").await.unwrap();
        assert!(early.next().await.is_some());
        drop(early);
    }
}
