//! Copying one file. The source is read once and hashed on the way; the destination is written under a
//! temporary name, re-read when `verify_checksum` asks and compared byte for byte with the source bytes that
//! were hashed (equal bytes have equal checksums, and a comparison costs a fraction of a second hash), and only
//! then renamed to its real name.
//!
//! Small files are read whole. Large files move as ranges, several at once; with a combinable checksum
//! (BLAKE3, CRC32C, ADLER32) each range is hashed on its own and the digests are combined, and the digests of
//! finished ranges are saved, so that a restart re-checks what the temporary file holds against them instead of
//! trusting it or copying it again. Other checksums (MD5, SHA-*) need the bytes in order: one stream, and a
//! restart begins the file again.

use bytes::Bytes;
use ferry_core::access::Action;
use ferry_endpoint::EndpointError;
use ferry_endpoint::data::Authorized;
use ferry_storage::{Commit, Digest, EntryKind, FileReader, PartFile, StorageError, WholeWrite};
use ferry_store::tasks::{ItemRow, NewItem, TaskCounters};
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};

use crate::checksum::{self, Algorithm, Hasher, RangeDigest, RangeHasher};
use crate::run::{Fault, FaultKind, Shared, Side};
use crate::submit::SyncLevel;

/// Files up to this size are read whole.
pub(crate) const SMALL: u64 = 4 << 20;
/// One read of a large file.
const CHUNK: u64 = 2 << 20;
/// One range of a large file: a power of two, so that a BLAKE3 range is a whole subtree.
pub(crate) const RANGE: u64 = 32 << 20;
/// Hashing less than this is cheaper in place than on the blocking pool.
const INLINE_HASH: usize = 256 << 10;

/// What copying (or checking) one file did.
#[derive(Debug)]
pub(crate) struct Copied {
    /// The destination was already up to date (sync level).
    pub skipped: bool,
    /// A copy made before a machine restart, found intact (it was counted then).
    pub rechecked: bool,
    pub algorithm: Algorithm,
    pub checksum: Option<String>,
    pub bytes_transferred: u64,
    pub bytes_checksummed: u64,
}

/// A large file's finished ranges, saved in the item so that a restart can re-check them.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Progress {
    size: u64,
    mtime: i64,
    algorithm: Algorithm,
    ranges: Vec<RangeDigest>,
}

/// Fault injection for the fault tests: the paths (containing the configured text) whose first copy was
/// corrupted.
static CORRUPTED: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());

/// Whether `path` is to be corrupted now: only when the fault tests ask for it, once per path.
fn corrupt_now(shared: &Shared, path: &str) -> bool {
    let Some(needle) = &shared.inner.settings.corrupt_once else {
        return false;
    };
    if !path.contains(needle.as_str()) {
        return false;
    }
    let mut done = CORRUPTED.lock().unwrap_or_else(|p| p.into_inner());
    if done.iter().any(|p| p == path) {
        return false;
    }
    done.push(path.to_string());
    tracing::warn!(path, "fault injection: corrupting the copy");
    true
}

fn src_err(e: StorageError) -> Fault {
    Fault::from_endpoint(EndpointError::Storage(e), Side::Source)
}

fn dst_err(e: StorageError) -> Fault {
    Fault::from_endpoint(EndpointError::Storage(e), Side::Destination)
}

fn changed(path: &str) -> Fault {
    Fault::retry(
        "FILE_CHANGED",
        format!("{path} changed while it was copied; it will be copied again"),
    )
}

fn unequal_copy(path: &str) -> Fault {
    Fault::retry(
        "CHECKSUM_MISMATCH",
        format!("{path}: the copy read back differs from the source; it will be copied again"),
    )
}

fn mismatch(path: &str, alg: Algorithm) -> Fault {
    Fault::retry(
        "CHECKSUM_MISMATCH",
        format!(
            "{path}: the {} checksum of the copy differs from the source's; it will be copied again",
            alg.name()
        ),
    )
}

async fn hash_all(alg: Algorithm, data: Bytes) -> String {
    if data.len() < INLINE_HASH {
        let mut h = Hasher::new(alg);
        h.update(&data);
        return h.finalize();
    }
    tokio::task::spawn_blocking(move || {
        let mut h = Hasher::new(alg);
        h.update(&data);
        h.finalize()
    })
    .await
    .unwrap_or_default()
}

pub(crate) async fn copy_file(shared: &Shared, item: &ItemRow) -> Result<Copied, Fault> {
    let access = shared.access();
    let dst_access = access
        .dst
        .as_ref()
        .ok_or_else(|| Fault::fatal("ENDPOINT_ERROR", "no destination collection"))?;
    let dst_path = item
        .dst
        .as_deref()
        .ok_or_else(|| Fault::fatal("ENDPOINT_ERROR", "a transfer item without a destination"))?;
    let src = access
        .src
        .check_for_task(&item.src, Action::Read, "read", shared.task)
        .await
        .map_err(|e| Fault::from_endpoint(e, Side::Source))?;
    let dst = dst_access
        .check_for_task(dst_path, Action::Write, "write", shared.task)
        .await
        .map_err(|e| Fault::from_endpoint(e, Side::Destination))?;
    let alg = item
        .checksum_algorithm
        .as_deref()
        .and_then(Algorithm::parse)
        .unwrap_or(Algorithm::DEFAULT);
    let o = &shared.options;
    // Copied before the machine restarted: counted then; copied again only if it did not survive.
    if let Some(want) = &item.checksum
        && let Ok(d) = dst.connector.stat(&dst.storage_path).await
        && Some(d.size as i64) == item.size
        && file_checksum(shared, &dst, alg, Side::Destination)
            .await
            .ok()
            .as_ref()
            == Some(want)
    {
        return Ok(Copied {
            skipped: false,
            rechecked: true,
            algorithm: alg,
            checksum: Some(want.clone()),
            bytes_transferred: 0,
            bytes_checksummed: d.size,
        });
    }
    if let Some(level) = o.sync_level
        && let Some(c) = up_to_date(shared, &src, &dst, level, alg).await?
    {
        return Ok(c);
    }
    let size = item.size.unwrap_or(0).max(0) as u64;
    if size <= SMALL {
        let permits = shared
            .inner
            .budget
            .clone()
            .acquire_many_owned(kib(size, &shared.inner))
            .await
            .map_err(|_| Fault::retry("ENDPOINT_ERROR", "shutting down"))?;
        let (entry, data) = src
            .connector
            .read_small(&src.storage_path, SMALL)
            .await
            .map_err(src_err)?;
        if let Some(data) = data {
            let r = copy_small(shared, item, &dst, alg, entry.mtime, data).await;
            drop(permits);
            return r;
        }
        drop(permits);
    }
    copy_large(shared, item, &src, &dst, alg).await
}

/// Files a batch holds at most, and bytes.
pub(crate) const BATCH_FILES: usize = 64;
pub(crate) const BATCH_BYTES: u64 = 8 << 20;

/// Whether `item` can join a batch of small files led by `first`: both small, in the same source and
/// destination folders, with the same checksum, and no per-file work (sync checks, fault injection) to do.
pub(crate) fn batchable(shared: &Shared, first: &ItemRow, item: &ItemRow) -> bool {
    let small = |i: &ItemRow| i.size.is_some_and(|s| (0..=SMALL as i64).contains(&s));
    let parent = |p: &Option<String>| {
        p.as_deref()
            .and_then(ferry_core::path::parent)
            .map(str::to_string)
    };
    shared.options.sync_level.is_none()
        && shared.inner.settings.corrupt_once.is_none()
        && first.checksum.is_none()
        && item.checksum.is_none()
        && small(first)
        && small(item)
        && ferry_core::path::parent(&first.src) == ferry_core::path::parent(&item.src)
        && parent(&first.dst) == parent(&item.dst)
        && first.checksum_algorithm == item.checksum_algorithm
}

/// One small file of a batch: what [`copy_small_files`] needs of an item, queued or just listed.
pub(crate) struct SmallFile<'a> {
    pub src: &'a str,
    pub dst: &'a str,
    pub size: u64,
    pub checksum_algorithm: Option<&'a str>,
    pub external_checksum: Option<&'a str>,
    /// Names the temporary file where the file system needs one (see [`Shared::part_token`]).
    pub token: String,
}

impl<'a> SmallFile<'a> {
    /// A queued file, from its row.
    pub fn of_item(shared: &Shared, item: &'a ItemRow) -> Self {
        let token = shared.part_token(item.seq);
        Self::new(
            &item.src,
            &item.dst,
            item.size,
            &item.checksum_algorithm,
            &item.external_checksum,
            token,
        )
    }

    /// File `i` of the folder listed by item `seq`, before it has a row of its own.
    pub fn of_listed(shared: &Shared, seq: i64, i: usize, c: &'a NewItem) -> Self {
        let token = format!("{}-{i}", shared.part_token(seq));
        Self::new(
            &c.src,
            &c.dst,
            c.size,
            &c.checksum_algorithm,
            &c.external_checksum,
            token,
        )
    }

    fn new(
        src: &'a str,
        dst: &'a Option<String>,
        size: Option<i64>,
        checksum_algorithm: &'a Option<String>,
        external_checksum: &'a Option<String>,
        token: String,
    ) -> Self {
        SmallFile {
            src,
            dst: dst.as_deref().unwrap_or(""),
            size: size.unwrap_or(0).max(0) as u64,
            checksum_algorithm: checksum_algorithm.as_deref(),
            external_checksum: external_checksum.as_deref(),
            token,
        }
    }
}

/// Copies queued small files of one folder (see [`batchable`]) as one batch; a file that grew past the
/// small-file size since it was listed goes the large-file way.
pub(crate) async fn copy_batch(
    shared: &Shared,
    items: Vec<ItemRow>,
) -> Vec<(ItemRow, Result<Copied, Fault>)> {
    let files: Vec<SmallFile> = items
        .iter()
        .map(|i| SmallFile::of_item(shared, i))
        .collect();
    let results = copy_small_files(shared, &files).await;
    drop(files);
    let mut out = Vec::with_capacity(items.len());
    for (item, r) in items.into_iter().zip(results) {
        let r = match r {
            Some(r) => r,
            None => copy_file(shared, &item).await,
        };
        out.push((item, r));
    }
    out
}

/// Copies small files of one source folder into one destination folder with one read of the source folder
/// and one write of the destination folder: the storage does the per-file work in one go, hashing what it
/// reads and, with `verify_checksum`, what it wrote. One result per file, in order; `None` for a file that is
/// no longer small (nothing was written for it).
pub(crate) async fn copy_small_files(
    shared: &Shared,
    files: &[SmallFile<'_>],
) -> Vec<Option<Result<Copied, Fault>>> {
    let access = shared.access();
    let mut out: Vec<Option<Result<Copied, Fault>>> = (0..files.len()).map(|_| None).collect();
    let Some(dst_access) = access.dst.as_ref() else {
        for o in &mut out {
            *o = Some(Err(Fault::fatal(
                "ENDPOINT_ERROR",
                "no destination collection",
            )));
        }
        return out;
    };
    let mut ready = Vec::with_capacity(files.len());
    for (i, f) in files.iter().enumerate() {
        let src = match access
            .src
            .check_for_task(f.src, Action::Read, "read", shared.task)
            .await
        {
            Ok(s) => s,
            Err(e) => {
                out[i] = Some(Err(Fault::from_endpoint(e, Side::Source)));
                continue;
            }
        };
        match dst_access
            .check_for_task(f.dst, Action::Write, "write", shared.task)
            .await
        {
            Ok(d) => ready.push((i, src, d)),
            Err(e) => out[i] = Some(Err(Fault::from_endpoint(e, Side::Destination))),
        }
    }
    let Some((first, s0, d0)) = ready.first() else {
        return out;
    };
    let (src_conn, dst_conn) = (s0.connector.clone(), d0.connector.clone());
    let parent = |p: &str| ferry_core::path::parent(p).unwrap_or("/").to_string();
    let (src_dir, dst_dir) = (parent(&s0.storage_path), parent(&d0.storage_path));
    let alg = files[*first]
        .checksum_algorithm
        .and_then(Algorithm::parse)
        .unwrap_or(Algorithm::DEFAULT);
    let digest: Digest = std::sync::Arc::new(move |b: &[u8]| {
        let mut h = Hasher::new(alg);
        h.update(b);
        h.finalize()
    });
    let total: u64 = ready.iter().map(|(i, _, _)| files[*i].size).sum();
    let _permits = match budget(shared, total).await {
        Ok(p) => p,
        Err(f) => {
            for (i, _, _) in ready {
                out[i] = Some(Err(f.clone()));
            }
            return out;
        }
    };
    let leaf = |p: &str| ferry_core::path::file_name(p).unwrap_or("").to_string();
    let names = ready
        .iter()
        .map(|(_, s, _)| leaf(&s.storage_path))
        .collect();
    let reads = src_conn
        .read_files(&src_dir, names, SMALL, Some(digest))
        .await;
    let o = &shared.options;
    let mut writes = Vec::new();
    let mut written = Vec::new();
    for ((i, _, d), r) in ready.into_iter().zip(reads) {
        match r {
            Err(e) => out[i] = Some(Err(src_err(e))),
            // It grew past the small-file size since it was listed.
            Ok(w) if w.data.is_none() => {}
            Ok(w) => {
                let sum = w.digest.unwrap_or_default();
                if let Err(f) = check_external(files[i].src, files[i].external_checksum, alg, &sum)
                {
                    out[i] = Some(Err(f));
                    continue;
                }
                writes.push(WholeWrite {
                    name: leaf(&d.storage_path),
                    token: files[i].token.clone(),
                    data: w.data.unwrap_or_default(),
                    mtime: o.preserve_timestamp.then_some(w.entry.mtime),
                    verify: o.verify_checksum,
                });
                written.push((i, sum, w.entry.size));
            }
        }
    }
    let results = dst_conn.write_files(&dst_dir, writes).await;
    for ((i, sum, size), r) in written.into_iter().zip(results) {
        out[i] = Some(match r {
            Ok(_) => Ok(Copied {
                skipped: false,
                rechecked: false,
                algorithm: alg,
                checksum: Some(sum),
                bytes_transferred: size,
                bytes_checksummed: if o.verify_checksum { size } else { 0 },
            }),
            Err(StorageError::VerifyFailed(_)) => Err(mismatch(files[i].src, alg)),
            Err(e) => Err(dst_err(e)),
        });
    }
    out
}

/// Budget permits (KiB) for `bytes` of data in memory, at least one and at most the whole budget.
fn kib(bytes: u64, inner: &crate::engine::Inner) -> u32 {
    let all = (inner.settings.memory_budget / 1024).max(1) as u64;
    (bytes / 1024).clamp(1, all) as u32
}

/// With a sync level, whether the destination already matches the source (then nothing is copied).
async fn up_to_date(
    shared: &Shared,
    src: &Authorized,
    dst: &Authorized,
    level: SyncLevel,
    alg: Algorithm,
) -> Result<Option<Copied>, Fault> {
    let d = match dst.connector.stat(&dst.storage_path).await {
        Ok(d) if d.kind == EntryKind::File => d,
        Ok(_) | Err(StorageError::NotFound(_)) => return Ok(None),
        Err(e) => return Err(dst_err(e)),
    };
    let s = src
        .connector
        .stat(&src.storage_path)
        .await
        .map_err(src_err)?;
    let skip = |checksum, checked| {
        Some(Copied {
            skipped: true,
            rechecked: false,
            algorithm: alg,
            checksum,
            bytes_transferred: 0,
            bytes_checksummed: checked,
        })
    };
    Ok(match level {
        SyncLevel::Exists => skip(None, 0),
        SyncLevel::Size if d.size == s.size => skip(None, 0),
        SyncLevel::Mtime if d.mtime >= s.mtime => skip(None, 0),
        SyncLevel::Checksum if d.size == s.size => {
            let a = file_checksum(shared, src, alg, Side::Source).await?;
            let b = file_checksum(shared, dst, alg, Side::Destination).await?;
            if a == b {
                skip(Some(a), 2 * s.size)
            } else {
                None
            }
        }
        _ => None,
    })
}

/// The checksum of a whole file, read in chunks.
async fn file_checksum(
    shared: &Shared,
    at: &Authorized,
    alg: Algorithm,
    side: Side,
) -> Result<String, Fault> {
    let err = |e| Fault::from_endpoint(EndpointError::Storage(e), side);
    let r = at
        .connector
        .open_reader(&at.storage_path)
        .await
        .map_err(err)?;
    let read = |off: u64, n: usize| r.read_at(off, n);
    stream_hash(shared, &read, None, alg, r.entry().size, &at.path).await
}

async fn budget(shared: &Shared, bytes: u64) -> Result<tokio::sync::OwnedSemaphorePermit, Fault> {
    shared
        .inner
        .budget
        .clone()
        .acquire_many_owned(kib(bytes, &shared.inner))
        .await
        .map_err(|_| Fault::retry("ENDPOINT_ERROR", "shutting down"))
}

/// Flips one byte of a temporary file when the fault tests ask for it (never otherwise).
async fn maybe_corrupt(shared: &Shared, dst_path: &str, part: &dyn PartFile) {
    if corrupt_now(shared, dst_path)
        && let Ok(b) = part.read_at(0, 1).await
        && let Some(x) = b.first()
    {
        let _ = part.write_at(0, Bytes::from(vec![x ^ 0xff])).await;
    }
}

/// The bytes to write for a chunk: the chunk itself, or under fault injection a copy with its first byte
/// flipped, standing in for a write that went wrong.
fn to_write(shared: &Shared, dst_path: &str, chunk: &Bytes) -> Bytes {
    if chunk.is_empty() || !corrupt_now(shared, dst_path) {
        return chunk.clone();
    }
    let mut bad = chunk.to_vec();
    bad[0] ^= 0xff;
    Bytes::from(bad)
}

fn check_external(src: &str, want: Option<&str>, alg: Algorithm, sum: &str) -> Result<(), Fault> {
    match want {
        Some(want) if want != sum => Err(Fault {
            code: "CHECKSUM_MISMATCH",
            message: format!(
                "{src}: the source's {} checksum {sum} is not the external_checksum {want}",
                alg.name()
            ),
            kind: FaultKind::Source,
            source: true,
        }),
        _ => Ok(()),
    }
}

async fn copy_small(
    shared: &Shared,
    item: &ItemRow,
    dst: &Authorized,
    alg: Algorithm,
    mtime: i64,
    data: Bytes,
) -> Result<Copied, Fault> {
    let o = &shared.options;
    let len = data.len() as u64;
    let sum = hash_all(alg, data.clone()).await;
    check_external(&item.src, item.external_checksum.as_deref(), alg, &sum)?;
    let token = shared.part_token(item.seq);
    let part = dst
        .connector
        .open_part(&dst.storage_path, &token, Some(data.clone()))
        .await
        .map_err(dst_err)?;
    maybe_corrupt(shared, &dst.path, part.as_ref()).await;
    let mut checked = 0;
    if o.verify_checksum {
        let back = match part.read_at(0, len as usize + 1).await {
            Ok(b) => b,
            Err(e) => {
                let _ = part.discard().await;
                return Err(dst_err(e));
            }
        };
        checked = back.len() as u64;
        // The bytes the source's checksum was computed over: equal bytes, equal checksums.
        if back != data {
            let _ = part.discard().await;
            return Err(mismatch(&item.src, alg));
        }
    }
    // A failed commit removes its temporary file itself.
    part.commit(Commit {
        overwrite: true,
        mtime: o.preserve_timestamp.then_some(mtime),
        durable: false,
    })
    .await
    .map_err(dst_err)?;
    Ok(Copied {
        skipped: false,
        rechecked: false,
        algorithm: alg,
        checksum: Some(sum),
        bytes_transferred: len,
        bytes_checksummed: checked,
    })
}

/// The ranges of a file of `size` bytes.
fn ranges(size: u64) -> Vec<(u64, u64)> {
    let mut v = Vec::new();
    let mut off = 0;
    while off < size {
        let len = RANGE.min(size - off);
        v.push((off, len));
        off += len;
    }
    v
}

type ReadFn<'a> = dyn Fn(u64, usize) -> futures_util::future::BoxFuture<'a, ferry_storage::Result<Bytes>>
    + Sync
    + 'a;

/// Something that takes bytes in order: a whole-file hasher or a range hasher.
trait Absorb: Send + 'static {
    fn absorb(&mut self, data: &[u8]);
}

impl Absorb for Hasher {
    fn absorb(&mut self, data: &[u8]) {
        self.update(data)
    }
}

impl Absorb for RangeHasher {
    fn absorb(&mut self, data: &[u8]) {
        self.update(data)
    }
}

/// Reads `[off, end)` chunk by chunk into `h` (hashing on the blocking pool); with `write_to` (a copy, reading
/// the source) each chunk is written there at the same time, otherwise it is a re-read of the copy. With
/// `verify_checksum` each chunk written is read back and compared with the source bytes that were hashed:
/// equal bytes throughout mean equal checksums, for a byte comparison instead of a second hash of the file.
async fn pump<H: Absorb>(
    shared: &Shared,
    read: &ReadFn<'_>,
    write_to: Option<(&dyn PartFile, &str)>,
    mut h: H,
    (off, end): (u64, u64),
    path: &str,
) -> Result<H, Fault> {
    let mut at = off;
    while at < end {
        let n = CHUNK.min(end - at) as usize;
        let _permits = budget(shared, n as u64).await?;
        let b = read(at, n).await.map_err(|e| match write_to {
            Some(_) => src_err(e),
            None => dst_err(e),
        })?;
        if b.len() != n {
            return Err(changed(path));
        }
        let hashing = {
            let b = b.clone();
            tokio::task::spawn_blocking(move || {
                h.absorb(&b);
                h
            })
        };
        if let Some((part, dst_path)) = write_to {
            if shared.options.verify_checksum {
                let data = to_write(shared, dst_path, &b);
                part.write_verified(at, data, b)
                    .await
                    .map_err(|e| match e {
                        StorageError::VerifyFailed(_) => unequal_copy(path),
                        e => dst_err(e),
                    })?;
            } else {
                part.write_at(at, b).await.map_err(dst_err)?;
            }
        }
        h = hashing
            .await
            .map_err(|e| Fault::retry("ENDPOINT_ERROR", e.to_string()))?;
        at += n as u64;
    }
    Ok(h)
}

/// One range as a digest (see [`pump`]).
async fn pass_range(
    shared: &Shared,
    read: &ReadFn<'_>,
    write_to: Option<(&dyn PartFile, &str)>,
    alg: Algorithm,
    (off, len): (u64, u64),
    path: &str,
) -> Result<RangeDigest, Fault> {
    let h =
        RangeHasher::new(alg, off).map_err(|e| Fault::fatal("ENDPOINT_ERROR", e.to_string()))?;
    Ok(pump(shared, read, write_to, h, (off, off + len), path)
        .await?
        .finish())
}

async fn copy_large(
    shared: &Shared,
    item: &ItemRow,
    src: &Authorized,
    dst: &Authorized,
    alg: Algorithm,
) -> Result<Copied, Fault> {
    let o = &shared.options;
    let reader = src
        .connector
        .open_reader(&src.storage_path)
        .await
        .map_err(src_err)?;
    let entry = reader.entry().clone();
    let size = entry.size;
    let token = shared.part_token(item.seq);
    let part = dst
        .connector
        .open_part(&dst.storage_path, &token, None)
        .await
        .map_err(dst_err)?;
    let sink = (part.as_ref(), dst.path.as_str());
    let result = if alg.combinable() {
        copy_ranges(shared, item, reader.as_ref(), sink, alg, &entry).await
    } else {
        copy_stream(shared, item, reader.as_ref(), sink, alg, size).await
    };
    let (sum, mut copied) = match result {
        Ok(r) => r,
        Err(f) => {
            // A changed source or a bad copy is not worth keeping; other faults keep the ranges for a retry.
            // Out of space: what was written is given back, so that the space shows up as free again.
            if matches!(
                f.code,
                "FILE_CHANGED" | "CHECKSUM_MISMATCH" | "QUOTA_EXCEEDED"
            ) || !alg.combinable()
            {
                let _ = part.discard().await;
            }
            return Err(f);
        }
    };
    if reader.changed().await.map_err(src_err)? {
        let _ = part.discard().await;
        return Err(changed(&item.src));
    }
    check_external(&item.src, item.external_checksum.as_deref(), alg, &sum)?;
    // Verified chunk by chunk as it was written (see `pump`), or re-checked against the saved digests.
    if o.verify_checksum {
        copied.bytes_checksummed += size;
    }
    part.commit(Commit {
        overwrite: true,
        mtime: o.preserve_timestamp.then_some(entry.mtime),
        durable: shared.inner.settings.durable_writes,
    })
    .await
    .map_err(dst_err)?;
    copied.checksum = Some(sum);
    Ok(copied)
}

/// A large file by ranges, resuming from the ranges an earlier attempt saved if the copy still holds them.
async fn copy_ranges(
    shared: &Shared,
    item: &ItemRow,
    reader: &dyn FileReader,
    sink: (&dyn PartFile, &str),
    alg: Algorithm,
    entry: &ferry_storage::Entry,
) -> Result<(String, Copied), Fault> {
    let part = sink.0;
    let size = entry.size;
    let all = ranges(size);
    let mut done: Vec<Option<RangeDigest>> = vec![None; all.len()];
    let mut checked = 0;
    let saved: Option<Progress> = item
        .progress
        .as_deref()
        .and_then(|p| serde_json::from_str(p).ok());
    if let Some(p) = saved
        && p.size == size
        && p.mtime == entry.mtime
        && p.algorithm == alg
        && part.initial_len() == size
    {
        // Re-check what the earlier attempt wrote against the digests of the source bytes it read.
        let read = |off: u64, n: usize| part.read_at(off, n);
        for d in p.ranges {
            let Some(i) = all.iter().position(|r| r.0 == d.offset && r.1 == d.len) else {
                continue;
            };
            let again = pass_range(shared, &read, None, alg, all[i], &item.src).await?;
            checked += d.len;
            if again == d {
                done[i] = Some(d);
            }
        }
    }
    part.set_len(size).await.map_err(dst_err)?;
    let todo: Vec<(u64, u64)> = all
        .iter()
        .zip(&done)
        .filter(|(_, d)| d.is_none())
        .map(|(r, _)| *r)
        .collect();
    let read = |off: u64, n: usize| reader.read_at(off, n);
    let mut s = futures_util::stream::iter(todo.iter().copied())
        .map(|r| pass_range(shared, &read, Some(sink), alg, r, &item.src))
        .buffer_unordered(shared.parallelism);
    while let Some(d) = s.next().await {
        let d = d?;
        let i = all
            .iter()
            .position(|r| r.0 == d.offset)
            .ok_or_else(|| Fault::fatal("ENDPOINT_ERROR", "a range out of place"))?;
        done[i] = Some(d.clone());
        let p = Progress {
            size,
            mtime: entry.mtime,
            algorithm: alg,
            ranges: done.iter().flatten().cloned().collect(),
        };
        let json = serde_json::to_string(&p).unwrap_or_default();
        let delta = TaskCounters {
            bytes_transferred: d.len as i64,
            ..TaskCounters::default()
        };
        if let Err(e) = shared
            .inner
            .set_item_progress(shared.task, item.seq, &json, &delta)
            .await
        {
            tracing::warn!(error = %e, "saving a large file's progress failed");
        }
    }
    let digests: Vec<RangeDigest> = done.into_iter().flatten().collect();
    let sum = checksum::combine(alg, size, &digests)
        .map_err(|e| Fault::fatal("ENDPOINT_ERROR", e.to_string()))?;
    Ok((
        sum,
        Copied {
            skipped: false,
            rechecked: false,
            algorithm: alg,
            checksum: None,
            // Counted range by range as progress, so that a restart does not count them twice.
            bytes_transferred: 0,
            bytes_checksummed: checked,
        },
    ))
}

/// Hashes (and with `write_to`, copies) a file in order, one chunk after the other.
async fn stream_hash(
    shared: &Shared,
    read: &ReadFn<'_>,
    write_to: Option<(&dyn PartFile, &str)>,
    alg: Algorithm,
    size: u64,
    path: &str,
) -> Result<String, Fault> {
    Ok(
        pump(shared, read, write_to, Hasher::new(alg), (0, size), path)
            .await?
            .finalize(),
    )
}

/// A large file with an in-order checksum: one stream from the start (an earlier attempt's bytes are dropped).
async fn copy_stream(
    shared: &Shared,
    item: &ItemRow,
    reader: &dyn FileReader,
    sink: (&dyn PartFile, &str),
    alg: Algorithm,
    size: u64,
) -> Result<(String, Copied), Fault> {
    sink.0.set_len(0).await.map_err(dst_err)?;
    let read = |off: u64, n: usize| reader.read_at(off, n);
    let sum = stream_hash(shared, &read, Some(sink), alg, size, &item.src).await?;
    Ok((
        sum,
        Copied {
            skipped: false,
            rechecked: false,
            algorithm: alg,
            checksum: None,
            bytes_transferred: size,
            bytes_checksummed: 0,
        },
    ))
}
