//! One run of a claimed task: folders are listed and their files queued as they are found, files are copied by
//! a bounded pool while listing goes on, outcomes are written in batches (after the destination is flushed, so
//! that "done" in the database means durable on disk), and faults are retried with back-off until the task
//! goes INACTIVE, fails, or succeeds.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use ferry_core::access::Action;
use ferry_core::path;
use ferry_endpoint::{CollectionAccess, EndpointError};
use ferry_storage::{Entry, EntryKind, StorageError};
use ferry_store::tasks::{
    ItemKind, ItemOutcome, ItemRow, ItemState, NewItem, StatusChange, TaskCounters, TaskKind,
    TaskRow, TaskStatus,
};
use tokio::task::JoinSet;
use uuid::Uuid;

use crate::copy::{
    BATCH_BYTES, BATCH_FILES, Copied, SMALL, SmallFile, batchable, copy_batch, copy_file,
    copy_small_files,
};
use crate::engine::{Inner, event, options_of, owner_of};
use crate::filter;
use crate::submit::Options;

/// Outcomes are written at least this often, and whenever this many are waiting.
const FLUSH_EVERY: Duration = Duration::from_millis(250);
const FLUSH_BATCH: usize = 512;
/// Pending files fetched from the database at a time.
const FETCH: i64 = 1024;
/// Folders listed at once (each copies its small files: see [`copy_listed`]).
const LISTINGS: usize = 6;
/// Pending folders fetched from the database at a time.
const DIR_FETCH: i64 = 64;
/// Listing stops running ahead of the copies when this many files are queued.
const QUEUE_HIGH: usize = 4096;
/// The caller's groups and rules are read again at least this often during a run.
const ACCESS_REFRESH: Duration = Duration::from_secs(5);

pub(crate) enum RunEnd {
    Succeeded,
    Failed {
        code: String,
        description: String,
    },
    Inactive {
        code: String,
        details: String,
    },
    /// Cancelled, or the lease was lost: someone else decides the task's state.
    Stopped,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FaultKind {
    /// Worth retrying: the cause may go away.
    Retry,
    /// A problem with the source file itself: skipped under `skip_source_errors`, fatal otherwise.
    Source,
    /// Out of space or over quota: fatal under `fail_on_quota_errors`, retried otherwise.
    Quota,
    Fatal,
}

#[derive(Debug, Clone)]
pub(crate) struct Fault {
    pub code: &'static str,
    pub message: String,
    pub kind: FaultKind,
    /// A problem reading the source (missing, refused): what `skip_source_errors` skips.
    pub source: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Side {
    Source,
    Destination,
}

impl Fault {
    pub fn retry(code: &'static str, message: impl Into<String>) -> Self {
        Fault {
            code,
            message: message.into(),
            kind: FaultKind::Retry,
            source: false,
        }
    }

    pub fn fatal(code: &'static str, message: impl Into<String>) -> Self {
        Fault {
            code,
            message: message.into(),
            kind: FaultKind::Fatal,
            source: false,
        }
    }

    pub fn from_endpoint(e: EndpointError, side: Side) -> Self {
        let source_kind = match side {
            Side::Source => FaultKind::Source,
            Side::Destination => FaultKind::Retry,
        };
        let message = e.to_string();
        let (code, kind) = match e {
            EndpointError::AccessDenied(_)
            | EndpointError::PermissionDenied(_)
            | EndpointError::Unauthenticated => ("PERMISSION_DENIED", FaultKind::Retry),
            EndpointError::CollectionNotFound(_) => ("ENDPOINT_NOT_FOUND", FaultKind::Fatal),
            EndpointError::Storage(s) => match s {
                StorageError::NotFound(_) => ("FILE_NOT_FOUND", source_kind),
                StorageError::PermissionDenied(_) => ("PERMISSION_DENIED", FaultKind::Retry),
                StorageError::NoSpace(_) => ("QUOTA_EXCEEDED", FaultKind::Quota),
                StorageError::Escape(_) | StorageError::Symlink(_) | StorageError::Loop(_) => {
                    ("PERMISSION_DENIED", source_kind)
                }
                StorageError::IsADirectory(_)
                | StorageError::NotADirectory(_)
                | StorageError::InvalidName(_)
                | StorageError::InvalidPath(_) => ("FILE_TYPE_MISMATCH", FaultKind::Fatal),
                _ => ("ENDPOINT_ERROR", FaultKind::Retry),
            },
            _ => ("ENDPOINT_ERROR", FaultKind::Retry),
        };
        Fault {
            code,
            message,
            kind,
            source: side == Side::Source
                && matches!(
                    code,
                    "FILE_NOT_FOUND" | "PERMISSION_DENIED" | "FILE_TYPE_MISMATCH"
                ),
        }
    }
}

/// What every file and folder operation of one run shares.
pub(crate) struct Shared {
    pub inner: Arc<Inner>,
    pub task: Uuid,
    pub options: Options,
    access: RwLock<Access>,
    /// Ranges of one large file copied at once.
    pub parallelism: usize,
}

#[derive(Clone)]
pub(crate) struct Access {
    pub src: Arc<CollectionAccess>,
    pub dst: Option<Arc<CollectionAccess>>,
}

impl Shared {
    pub fn access(&self) -> Access {
        match self.access.read() {
            Ok(a) => a.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    /// The name under which an attempt writes item `seq` before it is verified: the same across restarts.
    pub fn part_token(&self, seq: i64) -> String {
        format!("{}-{seq}", &self.task.simple().to_string()[..12])
    }
}

async fn build_access(inner: &Inner, task: &TaskRow) -> Result<Access, Fault> {
    let who = owner_of(inner, task)
        .await
        .map_err(|e| Fault::from_endpoint(e, Side::Destination))?;
    let ep = &inner.endpoint;
    // A transfer from another endpoint's collection reads it through that endpoint.
    let remote = task.dest_collection.is_some()
        && ep.reads_remote()
        && !ep
            .holds(task.source_collection)
            .await
            .map_err(|e| Fault::from_endpoint(e, Side::Destination))?;
    let src = if remote {
        ep.task_source(&who, task.id, task.source_collection).await
    } else {
        ep.collection_access(&who, task.source_collection).await
    }
    .map_err(|e| Fault::from_endpoint(e, Side::Source))?;
    let dst = match task.dest_collection {
        Some(d) => Some(Arc::new(
            ep.collection_access(&who, d)
                .await
                .map_err(|e| Fault::from_endpoint(e, Side::Destination))?,
        )),
        None => None,
    };
    Ok(Access {
        src: Arc::new(src),
        dst,
    })
}

pub(crate) async fn run_task(inner: &Arc<Inner>, task: &TaskRow, stop: Arc<AtomicBool>) -> RunEnd {
    let options = match options_of(task) {
        Ok(o) => o,
        Err(e) => {
            return RunEnd::Failed {
                code: "ENDPOINT_ERROR".into(),
                description: e,
            };
        }
    };
    let access = match build_access(inner, task).await {
        Ok(a) => a,
        Err(f) if f.kind == FaultKind::Fatal => {
            return RunEnd::Failed {
                code: f.code.into(),
                description: f.message,
            };
        }
        Err(f) => {
            return RunEnd::Inactive {
                code: f.code.into(),
                details: f.message,
            };
        }
    };
    let store = inner.store.as_ref();
    if task.status == TaskStatus::Active && task.nice_status.as_deref() == Some("Queued") {
        event(
            inner,
            task.id,
            "STARTED",
            false,
            "started",
            "The task started",
        )
        .await;
        let change = StatusChange {
            status: TaskStatus::Active,
            nice_status: Some("OK".into()),
            nice_status_details: None,
            fatal_error: None,
            completion_time: None,
        };
        if let Ok(false) = store.set_task_status(task.id, &change).await {
            return RunEnd::Stopped;
        }
    }
    if task.kind == TaskKind::Delete {
        return crate::delete::run(inner, task, &options, &access, &stop).await;
    }
    let shared = Arc::new(Shared {
        inner: inner.clone(),
        task: task.id,
        parallelism: options
            .parallelism
            .map(|p| p as usize)
            .unwrap_or(inner.settings.range_parallelism)
            .max(1),
        options,
        access: RwLock::new(access),
    });
    let mut run = Run {
        concurrency: shared
            .options
            .concurrency
            .map(|c| c as usize)
            .unwrap_or(inner.settings.file_concurrency)
            .max(1),
        shared,
        task: task.clone(),
        stop,
        inactive: task.status == TaskStatus::Inactive,
        started: Instant::now(),
        last_flush: Instant::now(),
        last_refresh: Instant::now(),
        outcomes: Vec::new(),
        delta: TaskCounters::default(),
        consecutive_faults: 0,
        last_fault: None,
    };
    let end = run.go().await;
    let _ = run.flush().await;
    end
}

struct Run {
    shared: Arc<Shared>,
    task: TaskRow,
    stop: Arc<AtomicBool>,
    concurrency: usize,
    /// The task was INACTIVE when claimed: the first success makes it ACTIVE again.
    inactive: bool,
    started: Instant,
    last_flush: Instant,
    last_refresh: Instant,
    outcomes: Vec<ItemOutcome>,
    delta: TaskCounters,
    consecutive_faults: u32,
    last_fault: Option<Fault>,
}

/// What listing one item found.
enum Listed {
    /// A submitted path that is a file: it becomes one file item.
    File(Entry),
    /// A folder's entries to queue (files and folders) and what was counted.
    Dir(Vec<NewItem>, TaskCounters),
}

impl Run {
    async fn go(&mut self) -> RunEnd {
        let store = self.shared.inner.store.clone();
        let id = self.task.id;
        let mut queue: VecDeque<ItemRow> = VecDeque::new();
        let mut copies: JoinSet<Vec<(ItemRow, Result<Copied, Fault>)>> = JoinSet::new();
        let mut listings: JoinSet<(ItemRow, Result<(), ListFail>)> = JoinSet::new();
        let mut dirs: VecDeque<ItemRow> = VecDeque::new();
        let mut file_cursor = 0i64;
        let mut dir_cursor = 0i64;
        let mut files_exhausted = false;
        let mut dirs_exhausted = false;
        loop {
            if self.stop.load(Ordering::SeqCst) {
                copies.abort_all();
                listings.abort_all();
                return RunEnd::Stopped;
            }
            if let Some(d) = self.task.deadline
                && self.shared.inner.now() > d
            {
                return RunEnd::Failed {
                    code: "DEADLINE".into(),
                    description: "The task did not finish before its deadline".into(),
                };
            }
            if self.last_refresh.elapsed() >= ACCESS_REFRESH || self.stale() {
                self.refresh().await;
            }
            // Folders: a few listings at a time, while the copy queue is not too long.
            if dirs.is_empty() && !dirs_exhausted && queue.len() < QUEUE_HIGH {
                match store
                    .pending_items(id, &[ItemKind::Path, ItemKind::Dir], dir_cursor, DIR_FETCH)
                    .await
                {
                    Ok(rows) => {
                        if (rows.len() as i64) < DIR_FETCH {
                            dirs_exhausted = true;
                        }
                        if let Some(last) = rows.last() {
                            dir_cursor = last.seq;
                        }
                        dirs.extend(rows);
                    }
                    Err(e) => return internal(e),
                }
            }
            while listings.len() < LISTINGS
                && queue.len() < QUEUE_HIGH
                && let Some(item) = dirs.pop_front()
            {
                let shared = self.shared.clone();
                listings.spawn(async move {
                    let r = match list_item(&shared, &item).await {
                        Ok(listed) => record_listing(&shared, &item, listed).await,
                        Err(f) => Err(ListFail::Fault(f)),
                    };
                    (item, r)
                });
            }
            // Files: keep the pool full.
            if queue.is_empty() && !files_exhausted {
                match store
                    .pending_items(id, &[ItemKind::File], file_cursor, FETCH)
                    .await
                {
                    Ok(rows) => {
                        if let Some(last) = rows.last() {
                            file_cursor = last.seq;
                        }
                        if (rows.len() as i64) < FETCH {
                            files_exhausted = true;
                        }
                        queue.extend(rows);
                    }
                    Err(e) => return internal(e),
                }
            }
            while copies.len() < self.concurrency
                && let Some(item) = queue.pop_front()
            {
                let shared = self.shared.clone();
                // Small files of one folder go together, as one batch.
                let mut batch = vec![item];
                let mut bytes = batch[0].size.unwrap_or(0) as u64;
                while batch.len() < BATCH_FILES
                    && bytes < BATCH_BYTES
                    && let Some(next) = queue.front()
                    && batchable(&shared, &batch[0], next)
                {
                    bytes += next.size.unwrap_or(0) as u64;
                    batch.extend(queue.pop_front());
                }
                if batch.len() > 1 {
                    copies.spawn(async move { copy_batch(&shared, batch).await });
                } else {
                    copies.spawn(async move {
                        let item = batch.remove(0);
                        let r = copy_file(&shared, &item).await;
                        vec![(item, r)]
                    });
                }
            }
            if copies.is_empty() && listings.is_empty() && queue.is_empty() && dirs.is_empty() {
                if !(files_exhausted && dirs_exhausted) {
                    continue;
                }
                if let Err(e) = self.flush().await {
                    return internal(e);
                }
                // Anything still pending failed earlier in this run and waits for a retry.
                let left = match store
                    .pending_items(id, &[ItemKind::Path, ItemKind::Dir, ItemKind::File], 0, 1)
                    .await
                {
                    Ok(rows) => rows,
                    Err(e) => return internal(e),
                };
                if left.is_empty() {
                    return RunEnd::Succeeded;
                }
                let wait = self.backoff();
                tokio::time::sleep(wait).await;
                file_cursor = 0;
                dir_cursor = 0;
                files_exhausted = false;
                dirs_exhausted = false;
                continue;
            }
            tokio::select! {
                Some(done) = copies.join_next(), if !copies.is_empty() => {
                    match done {
                        Ok(results) => {
                            for (item, r) in results {
                                if let Some(end) = self.file_done(&item, r) {
                                    return end;
                                }
                            }
                        }
                        Err(e) if e.is_panic() => return RunEnd::Failed {
                            code: "ENDPOINT_ERROR".into(),
                            description: format!("a file copy failed unexpectedly: {e}"),
                        },
                        Err(_) => {}
                    }
                }
                Some(done) = listings.join_next(), if !listings.is_empty() => {
                    match done {
                        Ok((item, r)) => {
                            match r {
                                Ok(()) => self.success(),
                                Err(ListFail::Fault(f)) => {
                                    if let Some(end) = self.fault(&item, f) {
                                        return end;
                                    }
                                }
                                Err(ListFail::Store(e)) => return internal(e),
                            }
                            // New files may have been queued after the cursor.
                            files_exhausted = false;
                            dirs_exhausted = false;
                        }
                        Err(e) if e.is_panic() => return RunEnd::Failed {
                            code: "ENDPOINT_ERROR".into(),
                            description: format!("listing a folder failed unexpectedly: {e}"),
                        },
                        Err(_) => {}
                    }
                }
                _ = tokio::time::sleep(FLUSH_EVERY) => {}
            }
            if (self.outcomes.len() >= FLUSH_BATCH || self.last_flush.elapsed() >= FLUSH_EVERY)
                && let Err(e) = self.flush().await
            {
                return internal(e);
            }
            if self.consecutive_faults >= self.shared.inner.settings.inactive_after_faults {
                let f = self
                    .last_fault
                    .clone()
                    .unwrap_or_else(|| Fault::retry("ENDPOINT_ERROR", ""));
                copies.abort_all();
                listings.abort_all();
                return RunEnd::Inactive {
                    code: f.code.into(),
                    details: f.message,
                };
            }
        }
    }

    /// The wait before a pass that retries failed files: doubling with the faults in a row, at most 30 s.
    fn backoff(&self) -> Duration {
        let base = self.shared.inner.settings.retry_base;
        let n = self.consecutive_faults.min(6);
        (base * 2u32.pow(n)).min(Duration::from_secs(30))
    }

    fn stale(&self) -> bool {
        let a = self.shared.access();
        let ep = &self.shared.inner.endpoint;
        ep.is_stale(&a.src) || a.dst.as_ref().is_some_and(|d| ep.is_stale(d))
    }

    /// Reads the owner's groups and the collections' rules again, so that a change counts during a long task.
    async fn refresh(&mut self) {
        self.last_refresh = Instant::now();
        match build_access(&self.shared.inner, &self.task).await {
            Ok(a) => {
                if let Ok(mut w) = self.shared.access.write() {
                    *w = a;
                }
            }
            Err(f) => {
                tracing::debug!(task = %self.task.id, fault = %f.message, "refreshing access failed");
            }
        }
    }

    /// Records a file's outcome; returns how the run ends when the fault is fatal.
    fn file_done(&mut self, item: &ItemRow, r: Result<Copied, Fault>) -> Option<RunEnd> {
        match r {
            Ok(c) => {
                self.success();
                let d = &mut self.delta;
                if c.skipped {
                    d.files_skipped += 1;
                } else if !c.rechecked {
                    d.files_transferred += 1;
                }
                d.bytes_transferred += c.bytes_transferred as i64;
                d.bytes_checksummed += c.bytes_checksummed as i64;
                self.outcomes.push(ItemOutcome {
                    seq: item.seq,
                    state: if c.skipped {
                        ItemState::Skipped
                    } else {
                        ItemState::Done
                    },
                    attempts: item.attempts,
                    checksum_algorithm: Some(c.algorithm.name().to_string()),
                    checksum: c.checksum,
                    error_code: None,
                    error: None,
                    error_time: None,
                    progress: None,
                });
                None
            }
            Err(f) => self.fault(item, f),
        }
    }

    fn success(&mut self) {
        self.consecutive_faults = 0;
        if self.inactive {
            self.inactive = false;
            let (inner, id) = (self.shared.inner.clone(), self.task.id);
            tokio::spawn(async move {
                let change = StatusChange {
                    status: TaskStatus::Active,
                    nice_status: Some("OK".into()),
                    nice_status_details: None,
                    fatal_error: None,
                    completion_time: None,
                };
                if let Ok(true) = inner.store.set_task_status(id, &change).await {
                    event(
                        &inner,
                        id,
                        "RESUMED",
                        false,
                        "resumed",
                        "The task is making progress again",
                    )
                    .await;
                }
            });
        }
    }

    /// A fault on one item: retried later, skipped, or the end of the run.
    fn fault(&mut self, item: &ItemRow, f: Fault) -> Option<RunEnd> {
        let o = &self.shared.options;
        let t = self.shared.inner.now();
        self.delta.faults += 1;
        let fatal = |f: &Fault| RunEnd::Failed {
            code: f.code.into(),
            description: format!("{}: {}", item.src, f.message),
        };
        match f.kind {
            _ if f.source && o.skip_source_errors => {
                self.outcomes.push(ItemOutcome {
                    seq: item.seq,
                    state: ItemState::Failed,
                    attempts: item.attempts + 1,
                    checksum_algorithm: None,
                    checksum: None,
                    error_code: Some(f.code.into()),
                    error: Some(f.message),
                    error_time: Some(t),
                    progress: None,
                });
                return None;
            }
            FaultKind::Fatal | FaultKind::Source => return Some(fatal(&f)),
            FaultKind::Quota if o.fail_on_quota_errors => return Some(fatal(&f)),
            FaultKind::Retry | FaultKind::Quota => {}
        }
        tracing::debug!(task = %self.task.id, path = %item.src, code = f.code, "fault: {}", f.message);
        self.consecutive_faults += 1;
        let (inner, id) = (self.shared.inner.clone(), self.task.id);
        let (code, message, path) = (f.code, f.message.clone(), item.src.clone());
        tokio::spawn(async move {
            event(
                &inner,
                id,
                code,
                true,
                "fault",
                &format!("{path}: {message}"),
            )
            .await;
        });
        self.outcomes.push(ItemOutcome {
            seq: item.seq,
            state: ItemState::Pending,
            attempts: item.attempts + 1,
            checksum_algorithm: None,
            checksum: None,
            error_code: Some(f.code.into()),
            error: Some(f.message.clone()),
            error_time: Some(t),
            progress: item.progress.clone(),
        });
        self.last_fault = Some(f);
        None
    }

    /// Writes the outcomes so far. Files reported done are made durable first.
    async fn flush(&mut self) -> ferry_store::Result<()> {
        self.last_flush = Instant::now();
        let elapsed = self.started.elapsed().as_secs_f64();
        self.started = Instant::now();
        self.delta.active_secs += elapsed;
        if self.outcomes.is_empty() && self.delta.is_zero() {
            return Ok(());
        }
        if self.shared.inner.settings.durable_writes
            && self.outcomes.iter().any(|o| o.state == ItemState::Done)
            && let Some(c) = self.shared.access().dst.and_then(|d| d.connector())
            && let Err(e) = c.flush().await
        {
            // Not durable yet: leave the outcomes for the next flush rather than claim them done.
            tracing::warn!(task = %self.task.id, error = %e, "flushing the destination failed");
            return Ok(());
        }
        let outcomes = std::mem::take(&mut self.outcomes);
        let delta = std::mem::take(&mut self.delta);
        self.shared
            .inner
            .finish_items(self.task.id, &outcomes, &delta)
            .await
    }
}

/// Why a listing was not recorded.
enum ListFail {
    Fault(Fault),
    Store(ferry_store::StoreError),
}

/// Queues what a listing found and finishes the listed item, in one transaction. Runs beside the other
/// listings, not in the run's loop, so that a slow commit holds up nothing else.
async fn record_listing(shared: &Shared, item: &ItemRow, listed: Listed) -> Result<(), ListFail> {
    let (children, delta) = match listed {
        Listed::File(entry) => (
            vec![NewItem {
                kind: ItemKind::File,
                src: item.src.clone(),
                dst: item.dst.clone(),
                recursive: false,
                size: Some(entry.size as i64),
                mtime: Some(entry.mtime),
                checksum_algorithm: item.checksum_algorithm.clone(),
                external_checksum: item.external_checksum.clone(),
                done_checksum: None,
            }],
            TaskCounters {
                files: 1,
                ..TaskCounters::default()
            },
        ),
        Listed::Dir(children, counted) => (children, counted),
    };
    // Copies recorded done must be durable first when the settings ask for it.
    if shared.inner.settings.durable_writes
        && children.iter().any(|c| c.done_checksum.is_some())
        && let Some(c) = shared.access().dst.and_then(|d| d.connector())
        && let Err(e) = c.flush().await
    {
        let f = Fault::retry(
            "ENDPOINT_ERROR",
            format!("flushing the destination failed: {e}"),
        );
        return Err(ListFail::Fault(f));
    }
    let done = ItemOutcome {
        seq: item.seq,
        state: ItemState::Done,
        attempts: item.attempts,
        checksum_algorithm: None,
        checksum: None,
        error_code: None,
        error: None,
        error_time: None,
        progress: None,
    };
    shared
        .inner
        .add_items(shared.task, &children, Some(&done), &delta)
        .await
        .map_err(ListFail::Store)
}

fn internal(e: ferry_store::StoreError) -> RunEnd {
    tracing::error!(error = %e, "the task's database work failed");
    // The database may come back: stop this run and let the task be claimed again.
    RunEnd::Stopped
}

/// Lists a submitted path or a folder: its files and folders become items; the destination folder is created;
/// with `delete_destination_extra`, what the destination has beyond the source is removed.
async fn list_item(shared: &Shared, item: &ItemRow) -> Result<Listed, Fault> {
    let access = shared.access();
    let src = access
        .src
        .check(&item.src, Action::Read)
        .map_err(|e| Fault::from_endpoint(e, Side::Source))?;
    let ep_err = |s: StorageError, side| Fault::from_endpoint(EndpointError::Storage(s), side);
    let entry = src
        .connector
        .stat(&src.storage_path)
        .await
        .map_err(|e| ep_err(e, Side::Source))?;
    let Some(dst_dir) = &item.dst else {
        return Err(Fault::fatal(
            "ENDPOINT_ERROR",
            "a transfer item without a destination",
        ));
    };
    let dst = access
        .dst
        .as_ref()
        .ok_or_else(|| Fault::fatal("ENDPOINT_ERROR", "no destination collection"))?;
    match entry.kind {
        EntryKind::File => {
            if let Some(parent) = path::parent(dst_dir) {
                make_dirs(dst, parent).await?;
            }
            return Ok(Listed::File(entry));
        }
        EntryKind::Dir if item.kind == ItemKind::Path && !item.recursive => {
            return Err(Fault::fatal(
                "FILE_TYPE_MISMATCH",
                format!("{} is a folder: transfer it with recursive", item.src),
            ));
        }
        EntryKind::Dir => {}
        _ => {
            return Err(Fault {
                code: "FILE_TYPE_MISMATCH",
                message: format!("{} is neither a file nor a folder", item.src),
                kind: FaultKind::Source,
                source: true,
            });
        }
    }
    make_dirs(dst, dst_dir).await?;
    let listing = src
        .connector
        .list(&src.storage_path)
        .await
        .map_err(|e| ep_err(e, Side::Source))?;
    let rules = &shared.options.filter_rules;
    let mut counted = TaskCounters {
        directories: 1,
        ..TaskCounters::default()
    };
    let mut children = Vec::new();
    let mut names = std::collections::HashSet::new();
    for e in listing.entries {
        let is_dir = e.kind == EntryKind::Dir;
        match e.kind {
            EntryKind::Symlink => {
                counted.symlinks += 1;
                continue;
            }
            EntryKind::Other => continue,
            _ => {}
        }
        if !filter::included(rules, &e.name, is_dir) {
            continue;
        }
        names.insert(e.name.clone());
        let leaf = format!("/{}", e.name);
        if !is_dir {
            counted.files += 1;
        }
        children.push(NewItem {
            kind: if is_dir {
                ItemKind::Dir
            } else {
                ItemKind::File
            },
            src: path::join(&item.src, &leaf),
            dst: Some(path::join(dst_dir, &leaf)),
            recursive: true,
            size: (!is_dir).then_some(e.size as i64),
            mtime: Some(e.mtime),
            checksum_algorithm: item.checksum_algorithm.clone(),
            external_checksum: None,
            done_checksum: None,
        });
    }
    if shared.options.delete_destination_extra {
        delete_extra(dst, shared.task, dst_dir, &names, rules).await?;
    }
    copy_listed(shared, item.seq, &mut children, &mut counted).await;
    Ok(Listed::Dir(children, counted))
}

/// Small files of a listed folder copied by the listing itself, and their bytes at most: the listing copies
/// one batch at a time, so bigger files go to the pool, where copies run side by side.
const INLINE_FILES: usize = 1024;
const INLINE_BYTES: u64 = 8 << 20;

/// Copies the small files of a folder just listed, at once, so that their rows are written once, done, with
/// the listing (a row written pending, read back and updated again costs more than copying 4 KiB). If the
/// process dies before that, the folder is listed and its files copied again: a copy only ever gets its real
/// name complete. A file that fails here stays pending, and the per-file path retries it and counts the fault;
/// folders of many files copy the rest that way, so that progress is recorded as it goes.
async fn copy_listed(
    shared: &Shared,
    seq: i64,
    children: &mut [NewItem],
    counted: &mut TaskCounters,
) {
    if shared.options.sync_level.is_some() || shared.inner.settings.corrupt_once.is_some() {
        return;
    }
    let mut inline_bytes = 0;
    let small: Vec<usize> = children
        .iter()
        .enumerate()
        .filter(|(_, c)| c.kind == ItemKind::File && c.size.is_some_and(|s| s as u64 <= SMALL))
        .take_while(|(_, c)| {
            inline_bytes += c.size.unwrap_or(0) as u64;
            inline_bytes <= INLINE_BYTES
        })
        .map(|(i, _)| i)
        .take(INLINE_FILES)
        .collect();
    let mut at = 0;
    while at < small.len() {
        let mut end = at;
        let mut bytes = 0;
        while end < small.len() && end - at < BATCH_FILES && bytes < BATCH_BYTES {
            bytes += children[small[end]].size.unwrap_or(0) as u64;
            end += 1;
        }
        let batch = &small[at..end];
        let files: Vec<SmallFile> = batch
            .iter()
            .map(|&i| SmallFile::of_listed(shared, seq, i, &children[i]))
            .collect();
        let results = copy_small_files(shared, &files).await;
        drop(files);
        for (&i, r) in batch.iter().zip(results) {
            if let Some(Ok(c)) = r {
                counted.files_transferred += 1;
                counted.bytes_transferred += c.bytes_transferred as i64;
                counted.bytes_checksummed += c.bytes_checksummed as i64;
                let child = &mut children[i];
                child.checksum_algorithm = Some(c.algorithm.name().to_string());
                child.done_checksum = c.checksum;
            }
        }
        at = end;
    }
}

/// Creates a destination folder and any missing parents, each through the access check.
async fn make_dirs(dst: &CollectionAccess, dir: &str) -> Result<(), Fault> {
    let mut missing = Vec::new();
    let mut at = dir.to_string();
    loop {
        let a = dst
            .check(&at, Action::Write)
            .map_err(|e| Fault::from_endpoint(e, Side::Destination))?;
        match a.connector.stat(&a.storage_path).await {
            Ok(e) if e.kind == EntryKind::Dir => break,
            Ok(_) => {
                return Err(Fault::fatal(
                    "FILE_TYPE_MISMATCH",
                    format!("{at} exists at the destination and is not a folder"),
                ));
            }
            Err(StorageError::NotFound(_)) => {
                missing.push(a);
                match path::parent(&at) {
                    Some(p) if p != at => at = p.to_string(),
                    _ => break,
                }
            }
            Err(e) => return Err(Fault::from_endpoint(e.into(), Side::Destination)),
        }
    }
    for a in missing.into_iter().rev() {
        match a.connector.mkdir(&a.storage_path).await {
            Ok(()) | Err(StorageError::Exists(_)) => {}
            Err(e) => return Err(Fault::from_endpoint(e.into(), Side::Destination)),
        }
    }
    Ok(())
}

/// Removes what the destination folder holds beyond the source's names (names the filter excludes are left).
async fn delete_extra(
    dst: &CollectionAccess,
    task: Uuid,
    dir: &str,
    keep: &std::collections::HashSet<String>,
    rules: &[filter::FilterRule],
) -> Result<(), Fault> {
    let a = dst
        .check(dir, Action::Write)
        .map_err(|e| Fault::from_endpoint(e, Side::Destination))?;
    let listing = a
        .connector
        .list(&a.storage_path)
        .await
        .map_err(|e| Fault::from_endpoint(e.into(), Side::Destination))?;
    for e in listing.entries {
        if keep.contains(&e.name) || e.name.ends_with(".ferry-part") {
            continue;
        }
        if !filter::included(rules, &e.name, e.kind == EntryKind::Dir) {
            continue;
        }
        let p = path::join(dir, &format!("/{}", e.name));
        let x = dst
            .check_for_task(&p, Action::Write, "delete", task)
            .await
            .map_err(|e| Fault::from_endpoint(e, Side::Destination))?;
        match x.connector.delete(&x.storage_path, true).await {
            Ok(()) | Err(StorageError::NotFound(_)) => {}
            Err(e) => return Err(Fault::from_endpoint(e.into(), Side::Destination)),
        }
    }
    Ok(())
}
