//! The engine: submission (checked, idempotent), the task API, and the dispatcher that claims tasks with a
//! lease and runs them, moving each between ACTIVE, INACTIVE, SUCCEEDED and FAILED.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use ferry_core::access::Action;
use ferry_endpoint::data::client_path;
use ferry_endpoint::{Endpoint, EndpointError, Requester};
use ferry_proto::sites::{TASK_REPORT_ACCEPTED_TYPE, TaskReport, TaskReportAccepted};
use ferry_store::tasks::{
    ItemCounts, ItemKind, ItemOutcome, ItemState, Lease, NewItem, StatusChange, TaskCounters,
    TaskEvent, TaskFilter, TaskKind, TaskRow, TaskStatus,
};
use ferry_store::{Store, StoreError};
use serde_json::Value;
use tokio::sync::{Notify, Semaphore};
use uuid::Uuid;

use crate::error::{Result, TransferError};
use crate::notify::Notifier;
use crate::run::{RunEnd, run_task};
use crate::submit::{self, Options, Submission};

/// How the engine runs tasks.
#[derive(Debug, Clone)]
pub struct EngineSettings {
    /// Tasks run at once by this process.
    pub max_tasks: usize,
    /// Files of one task copied at once (a submission's `perf_cc` overrides it).
    pub file_concurrency: usize,
    /// Ranges of one large file copied at once (`perf_p` overrides it).
    pub range_parallelism: usize,
    /// Bytes of file data held in memory at once, over all tasks.
    pub memory_budget: usize,
    pub lease_secs: i64,
    /// Faults in a row (with no file succeeding in between) after which a task goes INACTIVE.
    pub inactive_after_faults: u32,
    /// First wait before retrying failed files; doubles per fault in a row.
    pub retry_base: Duration,
    /// How long an INACTIVE task waits before it tries again.
    pub inactive_retry: Duration,
    /// The deadline of a task submitted without one.
    pub default_deadline_secs: i64,
    /// Fault injection for the fault tests only: corrupt one byte of the first copy whose destination path
    /// contains this text, after it is written and before it is verified.
    pub corrupt_once: Option<String>,
    /// Make every copy durable (fsync) before it counts as done. Off, a copy counts once written, as with cp or
    /// GridFTP: a killed process loses nothing, and after a machine restart the copies of interrupted tasks
    /// are checked again against their recorded checksums.
    pub durable_writes: bool,
    /// Let webhooks point at this host or private networks (tests; an internal deployment that wants it).
    pub webhooks_allow_private: bool,
    /// Where deadlines, leases and event times come from.
    pub clock: ferry_core::SharedClock,
    /// This node (a machine and its data directory): the first part of every lease this process takes. A
    /// starting process releases its node's leases only (its dead predecessor's), so every process on one
    /// database needs its own node. `/` is not allowed in it (it is replaced).
    pub node: String,
    /// For the lease tests only: every file copy waits for a permit from here first.
    pub copy_gate: Option<Arc<Semaphore>>,
    /// Counters of what the workers move (no-ops unless the server exports metrics).
    pub metrics: EngineMetrics,
}

/// What the engine counts for the operator, as it records it: bytes and files moved, faults, and leases lost.
#[derive(Debug, Clone)]
pub struct EngineMetrics {
    pub bytes: metrics::Counter,
    pub files: metrics::Counter,
    pub faults: metrics::Counter,
    /// A worker found its lease gone while its task was still running (a write refused, or the renewal):
    /// another worker may hold the task.
    pub lease_losses: metrics::Counter,
}

impl Default for EngineMetrics {
    fn default() -> Self {
        Self {
            bytes: metrics::Counter::noop(),
            files: metrics::Counter::noop(),
            faults: metrics::Counter::noop(),
            lease_losses: metrics::Counter::noop(),
        }
    }
}

impl EngineMetrics {
    /// Counts a delta the store has just recorded.
    pub(crate) fn recorded(&self, d: &TaskCounters) {
        self.bytes.increment(d.bytes_transferred.max(0) as u64);
        self.files.increment(d.files_transferred.max(0) as u64);
        self.faults.increment(d.faults.max(0) as u64);
    }
}

impl Default for EngineSettings {
    fn default() -> Self {
        Self {
            max_tasks: 4,
            file_concurrency: 16,
            range_parallelism: 4,
            memory_budget: 64 << 20,
            lease_secs: 30,
            inactive_after_faults: 5,
            retry_base: Duration::from_millis(500),
            inactive_retry: Duration::from_secs(30),
            default_deadline_secs: 7 * 24 * 3600,
            corrupt_once: None,
            durable_writes: false,
            webhooks_allow_private: false,
            clock: ferry_core::clock::system(),
            node: "local".into(),
            copy_gate: None,
            metrics: EngineMetrics::default(),
        }
    }
}

pub(crate) struct Inner {
    pub store: Arc<dyn Store>,
    pub endpoint: Arc<Endpoint>,
    pub settings: EngineSettings,
    pub notifier: Notifier,
    /// Memory for file data in flight, in KiB permits.
    pub budget: Arc<Semaphore>,
    /// Signs webhook events (None: webhooks cannot be delivered).
    pub signer: Option<crate::webhooks::Signer>,
    /// Woken when webhook deliveries are queued.
    pub deliveries_due: Notify,
    wake: Notify,
    /// This process: `<node>/<boot id>/<pid>-<uuid>`; each claim adds `/<n>` to make its lease owner.
    worker_id: String,
    claims: std::sync::atomic::AtomicU64,
    /// The claims of the tasks this process runs: a cancel here stops its task at once (elsewhere, at the
    /// worker's next lease renewal).
    running: std::sync::Mutex<std::collections::HashMap<Uuid, Arc<Claim>>>,
}

impl Inner {
    pub(crate) fn now(&self) -> i64 {
        self.settings.clock.now()
    }
}

#[derive(Clone)]
pub struct Engine {
    pub(crate) inner: Arc<Inner>,
}

/// What a submission returns.
pub struct Submitted {
    pub task_id: Uuid,
    pub submission_id: String,
    /// False when the submission id had been used: the earlier task is returned, nothing new queued.
    pub created: bool,
}

/// This boot of the machine (Linux's boot id): leases name it after the node, so that a restart can tell a
/// crashed process from a restarted machine.
fn boot_id() -> String {
    std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "unknown-boot".into())
}

impl Engine {
    pub fn new(
        store: Arc<dyn Store>,
        endpoint: Arc<Endpoint>,
        settings: EngineSettings,
        notifier: Notifier,
        signer: Option<crate::webhooks::Signer>,
    ) -> Self {
        let permits = (settings.memory_budget / 1024).max(1);
        Self {
            inner: Arc::new(Inner {
                store,
                endpoint,
                budget: Arc::new(Semaphore::new(permits)),
                notifier,
                wake: Notify::new(),
                signer,
                deliveries_due: Notify::new(),
                running: Default::default(),
                worker_id: format!(
                    "{}/{}/{}-{}",
                    settings.node.replace('/', "_"),
                    boot_id(),
                    std::process::id(),
                    Uuid::new_v4().simple()
                ),
                claims: Default::default(),
                settings,
            }),
        }
    }

    /// Starts the dispatcher. The leases this node's previous process left (it died: no other process runs on
    /// this node) are released at once instead of waiting for them to expire; other nodes' leases are theirs.
    pub async fn start(&self) -> Result<tokio::task::JoinHandle<()>> {
        let node = self.inner.settings.node.replace('/', "_");
        let released = self.inner.store.release_node_leases(&node).await?;
        let boot = format!("{node}/{}/", boot_id());
        for (task, owner) in &released {
            // Copies count as done once written, not once on disk (see `durable_writes`): if the machine itself
            // went down since, what it had not written out may be lost, so every copy is checked again.
            if !owner.starts_with(&boot) {
                let n = self.inner.store.recheck_done_files(*task).await?;
                tracing::warn!(%task, files = n, "the machine restarted during the task: checking its copies again");
            }
        }
        if !released.is_empty() {
            tracing::info!(
                tasks = released.len(),
                "resuming tasks left running by this node's last process"
            );
        }
        tokio::spawn(crate::webhooks::deliver_loop(self.inner.clone()));
        let inner = self.inner.clone();
        Ok(tokio::spawn(async move { dispatch(inner).await }))
    }

    pub fn settings(&self) -> &EngineSettings {
        &self.inner.settings
    }

    pub async fn submit_transfer(&self, who: &Requester, body: &Value) -> Result<Submitted> {
        let s = submit::parse_transfer(body, self.inner.now())?;
        self.submit(who, s, TaskKind::Transfer).await
    }

    pub async fn submit_delete(&self, who: &Requester, body: &Value) -> Result<Submitted> {
        let s = submit::parse_delete(body, self.inner.now())?;
        self.submit(who, s, TaskKind::Delete).await
    }

    async fn submit(&self, who: &Requester, s: Submission, kind: TaskKind) -> Result<Submitted> {
        self.create(who, s, kind, Placement::Here).await
    }

    /// Takes a submission the hub passed on (see [`Placement::FromHub`]): run here, its progress reported to
    /// the hub, under the id the hub gave it.
    pub async fn submit_from_hub(
        &self,
        who: &Requester,
        body: &Value,
        kind: TaskKind,
        task: Uuid,
    ) -> Result<Submitted> {
        let s = self.parse(body, kind)?;
        self.create(who, s, kind, Placement::FromHub(task)).await
    }

    /// The hub's record of a submission that joined endpoint `runner` runs: checked as far as the hub can
    /// (the document, the paths' form), stored under a new id that the endpoint is to use, never claimed here.
    /// The endpoint checks access when it takes the task.
    pub async fn record_for_endpoint(
        &self,
        who: &Requester,
        body: &Value,
        kind: TaskKind,
        runner: Uuid,
    ) -> Result<Submitted> {
        let s = self.parse(body, kind)?;
        self.create(who, s, kind, Placement::At(runner)).await
    }

    /// A hub takes joined endpoint `runner`'s report of the tasks it runs for it: only the tasks the hub gave that
    /// endpoint are recorded, and an ended record stays as it ended; a record that ends now is announced
    /// (webhooks, e-mail) as a task of this server's would be.
    pub async fn take_reports(
        &self,
        runner: Uuid,
        report: TaskReport,
    ) -> Result<TaskReportAccepted> {
        if report.tasks.len() > MAX_TASKS_REPORTED {
            return Err(TransferError::bad(format!(
                "tasks: at most {MAX_TASKS_REPORTED} in one report"
            )));
        }
        let store = &self.inner.store;
        let (mut recorded, mut unknown) = (Vec::new(), Vec::new());
        for r in report.tasks {
            let row = store.get_task(r.id).await?;
            let Some(mut row) = row.filter(|t| t.runner == Some(runner)) else {
                unknown.push(r.id);
                continue;
            };
            if row.status.is_done() {
                recorded.push(r.id);
                continue;
            }
            row.status = TaskStatus::parse(&r.status).ok_or_else(|| {
                TransferError::bad(format!("tasks: {}: no status {:?}", r.id, r.status))
            })?;
            row.nice_status = r.nice_status;
            row.nice_status_details = r.nice_status_details;
            row.fatal_error = r.fatal_error;
            row.completion_time = r.completion_time;
            row.label = r.label;
            row.deadline = r.deadline;
            row.counters = TaskCounters {
                files: r.files,
                directories: r.directories,
                symlinks: r.symlinks,
                files_skipped: r.files_skipped,
                files_transferred: r.files_transferred,
                bytes_transferred: r.bytes_transferred,
                bytes_checksummed: r.bytes_checksummed,
                faults: r.faults,
                active_secs: r.active_secs,
            };
            let i = &r.items;
            let items = ItemCounts {
                total: i.total,
                pending: i.pending,
                retrying: i.retrying,
                done: i.done,
                skipped: i.skipped,
                failed: i.failed,
            };
            if store.record_task_report(runner, &row, &items).await? {
                recorded.push(r.id);
                if row.status.is_done() {
                    self.inner.notifier.task_finished(&self.inner, &row).await;
                }
            }
        }
        Ok(TaskReportAccepted {
            data_type: TASK_REPORT_ACCEPTED_TYPE.into(),
            recorded,
            unknown,
        })
    }

    /// The joined endpoint that runs task `id`, when this is the hub's record of it.
    pub async fn runner_of(&self, id: Uuid) -> Result<Option<Uuid>> {
        Ok(self.inner.store.get_task(id).await?.and_then(|t| t.runner))
    }

    /// Forgets the hub's record of a submission its endpoint refused.
    pub async fn forget_record(&self, id: Uuid) -> Result<()> {
        Ok(self.inner.store.delete_task(id).await?)
    }

    fn parse(&self, body: &Value, kind: TaskKind) -> Result<Submission> {
        match kind {
            TaskKind::Transfer => submit::parse_transfer(body, self.inner.now()),
            TaskKind::Delete => submit::parse_delete(body, self.inner.now()),
        }
    }

    async fn create(
        &self,
        who: &Requester,
        s: Submission,
        kind: TaskKind,
        place: Placement,
    ) -> Result<Submitted> {
        let store = &self.inner.store;
        if let Some(earlier) = self.earlier(who, &s.submission_id).await? {
            return Ok(earlier);
        }
        let items = match place {
            Placement::At(_) => paths_only(&s)?,
            _ => self.check_items(who, &s).await?,
        };
        let t = self.inner.now();
        let (id, runner, reports_to_hub) = match place {
            Placement::Here => (Uuid::new_v4(), None, false),
            Placement::FromHub(id) => (id, None, true),
            // The same submission gets the same id, so that a submission retried after the endpoint's answer
            // was lost meets the task the endpoint already made.
            Placement::At(runner) => (
                Uuid::new_v5(
                    &RECORD_IDS,
                    format!("{}/{}", who.identity.id, s.submission_id).as_bytes(),
                ),
                Some(runner),
                false,
            ),
        };
        let task = TaskRow {
            id,
            kind,
            owner: who.identity.id,
            submission_id: s.submission_id.clone(),
            status: TaskStatus::Active,
            label: s.label,
            source_collection: s.source,
            dest_collection: s.destination,
            options: serde_json::to_value(&s.options)
                .map_err(|e| TransferError::Internal(e.to_string()))?,
            request_time: t,
            completion_time: None,
            deadline: Some(
                s.deadline
                    .unwrap_or(t + self.inner.settings.default_deadline_secs),
            ),
            run_after: 0,
            nice_status: Some("Queued".into()),
            nice_status_details: None,
            fatal_error: None,
            counters: TaskCounters::default(),
            runner,
            reports_to_hub,
        };
        match store.create_task(&task, &items).await {
            Ok(()) => {}
            // Two submissions with one id at the same moment: the first one stored wins.
            Err(ferry_store::StoreError::Conflict(_)) => {
                if let Some(earlier) = self.earlier(who, &s.submission_id).await? {
                    return Ok(earlier);
                }
            }
            Err(e) => return Err(e.into()),
        }
        self.inner.wake.notify_one();
        Ok(Submitted {
            task_id: task.id,
            submission_id: s.submission_id,
            created: true,
        })
    }

    /// The task an earlier submission with this id created, if any.
    async fn earlier(&self, who: &Requester, submission_id: &str) -> Result<Option<Submitted>> {
        Ok(self
            .inner
            .store
            .find_task_by_submission(who.identity.id, submission_id)
            .await?
            .map(|t| Submitted {
                task_id: t.id,
                submission_id: submission_id.to_string(),
                created: false,
            }))
    }

    /// The access check of every submitted path (read at the source, write at the destination), before anything
    /// is queued; the items keep the canonical paths the check saw.
    async fn check_items(&self, who: &Requester, s: &Submission) -> Result<Vec<NewItem>> {
        let ep = &self.inner.endpoint;
        let mut items = Vec::with_capacity(s.items.len());
        for (i, it) in s.items.iter().enumerate() {
            let action = if s.destination.is_some() {
                Action::Read
            } else {
                Action::Write
            };
            // Another endpoint's collection: it checks the owner's access to each path when the task reads.
            if s.destination.is_some() && !ep.holds(s.source).await? && ep.reads_remote() {
                let mut item = item_of(it, client_path("source_path", &it.source_path)?, None);
                if let (Some(d), Some(p)) = (s.destination, &it.destination_path) {
                    item.dst = Some(
                        ep.authorize(Some(who), d, p, Action::Write, "submit")
                            .await?
                            .path,
                    );
                }
                items.push(item);
                continue;
            }
            // A delete acts on what the path names: a symlink is removed, never what it points to.
            let src = if s.destination.is_some() {
                ep.authorize(Some(who), s.source, &it.source_path, action, "submit")
                    .await?
            } else {
                ep.authorize_entry(Some(who), s.source, &it.source_path, action, "submit")
                    .await?
            };
            let dst = match (s.destination, &it.destination_path) {
                (Some(d), Some(p)) => {
                    let a = ep
                        .authorize(Some(who), d, p, Action::Write, "submit")
                        .await?;
                    if d == s.source || a.same_storage(&src) {
                        let (sp, dp) = (&src.storage_path, &a.storage_path);
                        if sp == dp {
                            return Err(TransferError::bad(format!(
                                "DATA[{i}]: the source and the destination are the same path"
                            )));
                        }
                        if it.recursive && ferry_core::path::is_within(sp, dp) {
                            return Err(TransferError::bad(format!(
                                "DATA[{i}]: the destination {} lies inside the source {}",
                                a.path, src.path
                            )));
                        }
                    }
                    Some(a.path)
                }
                _ => None,
            };
            items.push(item_of(it, src.path, dst));
        }
        Ok(items)
    }

    /// The caller's task (others' tasks are not found).
    pub async fn task(&self, who: &Requester, id: Uuid) -> Result<TaskRow> {
        match self.inner.store.get_task(id).await? {
            Some(t) if t.owner == who.identity.id => Ok(t),
            _ => Err(TransferError::TaskNotFound(format!("Task {id} not found"))),
        }
    }

    pub async fn list(
        &self,
        who: &Requester,
        mut filter: TaskFilter,
    ) -> Result<(Vec<TaskRow>, i64)> {
        filter.owner = Some(who.identity.id);
        Ok(self.inner.store.list_tasks(&filter).await?)
    }

    pub async fn update(
        &self,
        who: &Requester,
        id: Uuid,
        label: Option<&str>,
        deadline: Option<i64>,
    ) -> Result<()> {
        let t = self.task(who, id).await?;
        if t.status.is_done() {
            return Err(TransferError::Conflict(format!(
                "Task {id} is already {}",
                t.status.as_str()
            )));
        }
        if let Some(d) = deadline
            && d <= self.inner.now()
        {
            return Err(TransferError::bad("deadline: the time is in the past"));
        }
        Ok(self
            .inner
            .store
            .set_task_label_deadline(id, label, deadline)
            .await?)
    }

    /// Cancels a running task: it is FAILED with `CANCELED` at once; its worker notices at its next lease
    /// renewal and stops. Returns false when the task had already finished (nothing changes then).
    pub async fn cancel(&self, who: &Requester, id: Uuid) -> Result<bool> {
        self.task(who, id).await?;
        self.stop(id, "CANCELED", "The task was cancelled by its owner")
            .await
    }

    /// Ends a running task as FAILED with `code`: its pending files are given up, its worker stops. False when
    /// it had already ended.
    pub async fn stop(&self, id: Uuid, code: &str, description: &str) -> Result<bool> {
        let Some(t) = self.inner.store.get_task(id).await? else {
            return Ok(false);
        };
        if t.status.is_done() {
            return Ok(false);
        }
        let change = StatusChange {
            status: TaskStatus::Failed,
            nice_status: None,
            nice_status_details: None,
            fatal_error: Some(serde_json::json!({"code": code, "description": description})),
            completion_time: Some(self.inner.now()),
        };
        // The owner's (or the hub's) decision: not fenced by the worker's lease.
        if !self.inner.store.set_task_status(id, &change, None).await? {
            return Ok(false);
        }
        if let Ok(r) = self.inner.running.lock()
            && let Some(claim) = r.get(&id)
        {
            claim.stop();
        }
        let store = &self.inner.store;
        store
            .fail_pending_items(id, code, self.inner.now(), None)
            .await?;
        event(
            &self.inner,
            id,
            code,
            false,
            &code.to_ascii_lowercase(),
            description,
        )
        .await;
        if let Some(t) = store.get_task(id).await? {
            self.inner.notifier.task_finished(&self.inner, &t).await;
        }
        Ok(true)
    }

    pub async fn events(
        &self,
        who: &Requester,
        id: Uuid,
        offset: i64,
        limit: i64,
    ) -> Result<(Vec<TaskEvent>, i64)> {
        self.task(who, id).await?;
        Ok(self.inner.store.list_task_events(id, offset, limit).await?)
    }

    /// Files copied (or found up to date), after `marker`: the page and the next marker (None at the end).
    pub async fn successful_transfers(
        &self,
        who: &Requester,
        id: Uuid,
        marker: i64,
        limit: i64,
    ) -> Result<(Vec<ferry_store::tasks::ItemRow>, Option<i64>)> {
        self.items_page(
            who,
            id,
            ItemState::Done,
            Some(ItemKind::File),
            marker,
            limit,
        )
        .await
    }

    /// Source errors skipped under `skip_source_errors`, after `marker`.
    pub async fn skipped_errors(
        &self,
        who: &Requester,
        id: Uuid,
        marker: i64,
        limit: i64,
    ) -> Result<(Vec<ferry_store::tasks::ItemRow>, Option<i64>)> {
        let (rows, next) = self
            .items_page(who, id, ItemState::Failed, None, marker, limit)
            .await?;
        let rows = rows
            .into_iter()
            .filter(|r| r.error_code.as_deref() != Some("CANCELED"))
            .collect();
        Ok((rows, next))
    }

    async fn items_page(
        &self,
        who: &Requester,
        id: Uuid,
        state: ItemState,
        kind: Option<ItemKind>,
        marker: i64,
        limit: i64,
    ) -> Result<(Vec<ferry_store::tasks::ItemRow>, Option<i64>)> {
        self.task(who, id).await?;
        let rows = self
            .inner
            .store
            .list_items(id, state, kind, marker, limit + 1)
            .await?;
        let more = rows.len() as i64 > limit;
        let rows: Vec<_> = rows.into_iter().take(limit as usize).collect();
        let next = if more {
            rows.last().map(|r| r.seq)
        } else {
            None
        };
        Ok((rows, next))
    }

    /// The task document's `subtasks_*` come from the items.
    /// A task's files and folders by state: counted here, or as the endpoint running it last reported them.
    pub async fn item_counts(&self, id: Uuid) -> Result<ItemCounts> {
        let store = &self.inner.store;
        match store.reported_items(id).await? {
            Some(reported) => Ok(reported),
            None => Ok(store.count_items(id).await?),
        }
    }

    /// A collection's name: this server's, a joined endpoint's (on a hub), or another endpoint's that a task
    /// reads (on an endpoint).
    pub async fn collection_name(&self, id: Uuid) -> Option<String> {
        if let Ok(Some(name)) = self.inner.endpoint.collection_name(id).await {
            return Some(name);
        }
        match self.inner.store.site_collection(id).await {
            Ok(Some(c)) => Some(c.display_name),
            _ => self.inner.endpoint.remote_collection_name(id),
        }
    }

    /// Whether this process is running task `id` now.
    pub fn runs(&self, id: Uuid) -> bool {
        self.inner
            .running
            .lock()
            .map(|r| r.contains_key(&id))
            .unwrap_or(false)
    }

    pub async fn username(&self, id: Uuid) -> Option<String> {
        self.inner
            .store
            .get_identity(id)
            .await
            .ok()
            .flatten()
            .map(|i| i.username)
    }
}

/// Appends an event that is not a worker's (a cancel); a failure to record one is logged, never fatal.
pub(crate) async fn event(
    inner: &Inner,
    task: Uuid,
    code: &str,
    is_error: bool,
    description: &str,
    details: &str,
) {
    let e = TaskEvent {
        time: inner.now(),
        code: code.into(),
        is_error,
        description: description.into(),
        details: details.into(),
    };
    if let Err(err) = inner.store.add_task_event(task, &e, None).await {
        tracing::warn!(%task, error = %err, "could not record a task event");
    }
}

/// A task this process claimed, and the one way its worker writes for it: each write carries the claim's lease,
/// and the store refuses it (`LeaseLost`) once the lease is gone (it expired, and another worker may have
/// claimed the task). The first refusal stops the run at once: in-flight work is cancelled, nothing more is
/// written, the lease (no longer ours) is not released, and whoever holds it now carries on.
pub(crate) struct Claim {
    inner: Arc<Inner>,
    pub task: Uuid,
    /// The lease owner: the worker id and the claim's number.
    owner: String,
    stop: AtomicBool,
    /// Wakes a run waiting on its copies when it is to stop.
    stopped: Notify,
    lost: AtomicBool,
}

impl Claim {
    fn new(inner: &Arc<Inner>, task: Uuid, owner: String) -> Self {
        Self {
            inner: inner.clone(),
            task,
            owner,
            stop: AtomicBool::new(false),
            stopped: Notify::new(),
            lost: AtomicBool::new(false),
        }
    }

    /// Asks the run to stop (a cancel, a lost lease).
    pub(crate) fn stop(&self) {
        self.stop.store(true, Ordering::SeqCst);
        self.stopped.notify_one();
    }

    pub(crate) fn stopping(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }

    /// Resolves once the run is asked to stop.
    pub(crate) async fn stop_asked(&self) {
        if !self.stopping() {
            self.stopped.notified().await;
        }
    }

    /// The lease was found gone: the run writes nothing more.
    pub(crate) fn lost(&self) -> bool {
        self.lost.load(Ordering::SeqCst)
    }

    /// Makes one write for the task under the claim's lease: refused without asking the store once the lease
    /// was found gone, and the first `LeaseLost` the store answers stops the run (the one place that does).
    async fn fenced<'a, T, F>(
        &'a self,
        write: impl FnOnce(&'a dyn Store, Lease<'a>) -> F,
    ) -> ferry_store::Result<T>
    where
        F: std::future::Future<Output = ferry_store::Result<T>> + 'a,
    {
        if self.lost() {
            return Err(StoreError::LeaseLost);
        }
        let lease = Lease {
            worker: &self.owner,
            now: self.inner.now(),
        };
        let r = write(self.inner.store.as_ref(), lease).await;
        if matches!(r, Err(StoreError::LeaseLost)) {
            self.lease_lost();
        }
        r
    }

    /// The lease is gone while the task runs on (a write refused, or its renewal): the run stops, writes
    /// nothing more, and leaves the lease alone. Logged and counted once per claim.
    pub(crate) fn lease_lost(&self) {
        if !self.lost.swap(true, Ordering::SeqCst) {
            self.inner.settings.metrics.lease_losses.increment(1);
            tracing::warn!(
                task = %self.task,
                worker = %self.owner,
                "this worker lost the task's lease (another worker may hold it now): it stops and writes nothing more"
            );
        }
        self.stop();
    }

    pub(crate) async fn add_items(
        &self,
        items: &[NewItem],
        listed: Option<&ItemOutcome>,
        delta: &TaskCounters,
    ) -> ferry_store::Result<()> {
        self.fenced(|store, l| async move {
            store.add_items(self.task, items, listed, delta, &l).await
        })
        .await?;
        self.inner.settings.metrics.recorded(delta);
        Ok(())
    }

    pub(crate) async fn finish_items(
        &self,
        outcomes: &[ItemOutcome],
        delta: &TaskCounters,
    ) -> ferry_store::Result<()> {
        self.fenced(
            |store, l| async move { store.finish_items(self.task, outcomes, delta, &l).await },
        )
        .await?;
        self.inner.settings.metrics.recorded(delta);
        Ok(())
    }

    pub(crate) async fn set_item_progress(
        &self,
        seq: i64,
        progress: &str,
        delta: &TaskCounters,
    ) -> ferry_store::Result<()> {
        self.fenced(|store, l| async move {
            store
                .set_item_progress(self.task, seq, progress, delta, &l)
                .await
        })
        .await?;
        self.inner.settings.metrics.recorded(delta);
        Ok(())
    }

    pub(crate) async fn fail_pending_items(&self, code: &str) -> ferry_store::Result<i64> {
        self.fenced(|store, l| async move {
            store
                .fail_pending_items(self.task, code, l.now, Some(&l))
                .await
        })
        .await
    }

    pub(crate) async fn set_status(&self, change: &StatusChange) -> ferry_store::Result<bool> {
        self.fenced(
            |store, l| async move { store.set_task_status(self.task, change, Some(&l)).await },
        )
        .await
    }

    /// Appends an event; a failure to record one is logged (a lost lease once, by [`Claim::fenced`]), never
    /// fatal to the task.
    pub(crate) async fn event(&self, code: &str, is_error: bool, description: &str, details: &str) {
        let e = TaskEvent {
            time: self.inner.now(),
            code: code.into(),
            is_error,
            description: description.into(),
            details: details.into(),
        };
        let r = self
            .fenced(|store, l| async move { store.add_task_event(self.task, &e, Some(&l)).await })
            .await;
        match r {
            Ok(()) | Err(StoreError::LeaseLost) => {}
            Err(err) => {
                tracing::warn!(task = %self.task, error = %err, "could not record a task event")
            }
        }
    }
}

/// Claims tasks while there is room, and runs each until it ends, goes INACTIVE or is taken away.
async fn dispatch(inner: Arc<Inner>) {
    let running = Arc::new(Semaphore::new(inner.settings.max_tasks.max(1)));
    loop {
        let permit = match running.clone().acquire_owned().await {
            Ok(p) => p,
            Err(_) => return,
        };
        // Each claim is its own lease owner, so that a run of this process that lost its lease never writes
        // under a later claim of the same task by this process.
        let n = inner.claims.fetch_add(1, Ordering::Relaxed);
        let owner = format!("{}/{n}", inner.worker_id);
        match inner
            .store
            .claim_task(&owner, inner.now(), inner.settings.lease_secs)
            .await
        {
            Ok(Some(task)) => {
                let inner = inner.clone();
                tokio::spawn(async move {
                    supervise(&inner, task, owner).await;
                    drop(permit);
                    inner.wake.notify_one();
                });
            }
            Ok(None) => {
                drop(permit);
                // New submissions wake the dispatcher; the timeout picks up tasks whose back-off ended.
                let _ = tokio::time::timeout(Duration::from_secs(1), inner.wake.notified()).await;
            }
            Err(e) => {
                drop(permit);
                tracing::error!(error = %e, "claiming a task failed");
                tokio::time::sleep(Duration::from_secs(2)).await;
            }
        }
    }
}

/// Runs one claimed task with its lease renewed in the background, then records how the run ended (unless the
/// lease was lost: then whoever holds it now decides).
async fn supervise(inner: &Arc<Inner>, task: TaskRow, owner: String) {
    let id = task.id;
    let claim = Arc::new(Claim::new(inner, id, owner));
    if let Ok(mut r) = inner.running.lock() {
        r.insert(id, claim.clone());
    }
    let heartbeat = {
        let (inner, claim) = (inner.clone(), claim.clone());
        tokio::spawn(async move {
            let every = Duration::from_secs((inner.settings.lease_secs / 3).max(1) as u64);
            loop {
                tokio::time::sleep(every).await;
                match inner
                    .store
                    .renew_lease(id, &claim.owner, inner.now(), inner.settings.lease_secs)
                    .await
                {
                    Ok(true) => {}
                    Ok(false) => {
                        // Refused: the task ended (a cancel), or the lease is gone while it runs on.
                        let running = inner.store.get_task(id).await.ok().flatten();
                        if running.is_some_and(|t| !t.status.is_done()) {
                            claim.lease_lost();
                        }
                        claim.stop();
                        return;
                    }
                    Err(e) => tracing::warn!(%id, error = %e, "renewing a task lease failed"),
                }
            }
        })
    };
    let end = run_task(inner, &task, &claim).await;
    heartbeat.abort();
    if let Ok(mut r) = inner.running.lock() {
        r.remove(&id);
    }
    let store = inner.store.as_ref();
    let t = inner.now();
    let mut run_after = 0;
    match end {
        _ if claim.lost() => {}
        RunEnd::Succeeded => {
            let change = StatusChange {
                status: TaskStatus::Succeeded,
                nice_status: None,
                nice_status_details: None,
                fatal_error: None,
                completion_time: Some(t),
            };
            if let Ok(true) = claim.set_status(&change).await {
                claim
                    .event("SUCCEEDED", false, "succeeded", "The task completed")
                    .await;
                notify_done(inner, id).await;
            }
        }
        RunEnd::Failed { code, description } => {
            let change = StatusChange {
                status: TaskStatus::Failed,
                nice_status: None,
                nice_status_details: None,
                fatal_error: Some(serde_json::json!({"code": code, "description": description})),
                completion_time: Some(t),
            };
            if let Ok(true) = claim.set_status(&change).await {
                let _ = claim.fail_pending_items(&code).await;
                claim.event(&code, true, "failed", &description).await;
                notify_done(inner, id).await;
            }
        }
        RunEnd::Inactive { code, details } => {
            run_after = t + inner.settings.inactive_retry.as_secs().max(1) as i64;
            let change = StatusChange {
                status: TaskStatus::Inactive,
                nice_status: Some(code.clone()),
                nice_status_details: Some(details.clone()),
                fatal_error: None,
                completion_time: None,
            };
            let was_active = store
                .get_task(id)
                .await
                .ok()
                .flatten()
                .is_some_and(|t| t.status == TaskStatus::Active);
            if let Ok(true) = claim.set_status(&change).await
                && was_active
            {
                claim.event(&code, true, "inactive", &details).await;
                if let Ok(Some(t)) = store.get_task(id).await {
                    inner.notifier.task_inactive(inner, &t).await;
                }
            }
        }
        RunEnd::Stopped => {}
    }
    // A lease found gone (now, or by a write of the run) is not ours to release.
    if claim.lost() {
        return;
    }
    if let Err(e) = store.release_lease(id, &claim.owner, run_after).await {
        tracing::warn!(%id, error = %e, "releasing a task lease failed");
    }
}

async fn notify_done(inner: &Arc<Inner>, id: Uuid) {
    if let Ok(Some(t)) = inner.store.get_task(id).await {
        inner.notifier.task_finished(inner, &t).await;
    }
}

/// The options a task was submitted with.
pub(crate) fn options_of(task: &TaskRow) -> std::result::Result<Options, String> {
    serde_json::from_value(task.options.clone()).map_err(|e| format!("stored task options: {e}"))
}

/// Reads the requester (with current groups) of a task's owner.
pub(crate) async fn owner_of(
    inner: &Inner,
    task: &TaskRow,
) -> std::result::Result<Requester, EndpointError> {
    let identity =
        inner.store.get_identity(task.owner).await?.ok_or_else(|| {
            EndpointError::AccessDenied("the task's owner no longer exists".into())
        })?;
    if task.reports_to_hub {
        return inner.endpoint.task_owner(identity, task.id).await;
    }
    // The owner's sign-in was checked when the task was submitted; it runs on after that.
    Ok(Requester {
        signed_in: ferry_core::access::SignedIn::TaskOfOwner,
        ..inner.endpoint.requester(identity).await?
    })
}

/// Tasks in one endpoint's report.
const MAX_TASKS_REPORTED: usize = 1_000;

/// The namespace of the ids of tasks that run at joined endpoints.
const RECORD_IDS: Uuid = Uuid::from_u128(0x6a0f_57c4_2b1e_4f5e_9d3c_8e21_7f40_b9a1);

/// Where a new task runs.
#[derive(Clone, Copy)]
enum Placement {
    /// Here, by this process's workers.
    Here,
    /// Here, under the id the hub gave it, reporting to the hub.
    FromHub(Uuid),
    /// At joined endpoint `.0`: the hub's record.
    At(Uuid),
}

/// A submitted item with the paths it is to keep.
fn item_of(it: &submit::Item, src: String, dst: Option<String>) -> NewItem {
    NewItem {
        kind: ItemKind::Path,
        src,
        dst,
        recursive: it.recursive,
        size: None,
        mtime: None,
        checksum_algorithm: it.checksum_algorithm.map(|a| a.name().to_string()),
        external_checksum: it.external_checksum.clone(),
        done_checksum: None,
    }
}

/// The items of a submission in their normal form, for a record of a task that runs elsewhere.
fn paths_only(s: &Submission) -> Result<Vec<NewItem>> {
    s.items
        .iter()
        .map(|it| {
            let dst = it
                .destination_path
                .as_deref()
                .map(|p| client_path("destination_path", p))
                .transpose()?;
            Ok(item_of(
                it,
                client_path("source_path", &it.source_path)?,
                dst,
            ))
        })
        .collect()
}
