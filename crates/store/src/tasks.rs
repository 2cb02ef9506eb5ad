//! Transfer and delete tasks as the store keeps them: the task row a worker claims with a lease, the per-file
//! (and per-folder) items that record progress, checksums and errors, and the task's events.

use async_trait::async_trait;
use uuid::Uuid;

use crate::Result;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TaskKind {
    Transfer,
    Delete,
}

impl TaskKind {
    pub fn as_str(self) -> &'static str {
        match self {
            TaskKind::Transfer => "TRANSFER",
            TaskKind::Delete => "DELETE",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "TRANSFER" => Some(TaskKind::Transfer),
            "DELETE" => Some(TaskKind::Delete),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TaskStatus {
    Active,
    /// Paused by repeated faults; still claimed and retried until the cause goes away or the deadline passes.
    Inactive,
    Succeeded,
    Failed,
}

impl TaskStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            TaskStatus::Active => "ACTIVE",
            TaskStatus::Inactive => "INACTIVE",
            TaskStatus::Succeeded => "SUCCEEDED",
            TaskStatus::Failed => "FAILED",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "ACTIVE" => Some(TaskStatus::Active),
            "INACTIVE" => Some(TaskStatus::Inactive),
            "SUCCEEDED" => Some(TaskStatus::Succeeded),
            "FAILED" => Some(TaskStatus::Failed),
            _ => None,
        }
    }
    pub const ALL: [TaskStatus; 4] = [
        TaskStatus::Active,
        TaskStatus::Inactive,
        TaskStatus::Succeeded,
        TaskStatus::Failed,
    ];
    pub fn is_done(self) -> bool {
        matches!(self, TaskStatus::Succeeded | TaskStatus::Failed)
    }
}

/// The task's running totals; also used as a delta added in the same transaction as the items it counts.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TaskCounters {
    pub files: i64,
    pub directories: i64,
    pub symlinks: i64,
    pub files_skipped: i64,
    pub files_transferred: i64,
    pub bytes_transferred: i64,
    pub bytes_checksummed: i64,
    pub faults: i64,
    /// Seconds spent running (summed over leases).
    pub active_secs: f64,
}

impl TaskCounters {
    pub fn add(&mut self, o: &TaskCounters) {
        self.files += o.files;
        self.directories += o.directories;
        self.symlinks += o.symlinks;
        self.files_skipped += o.files_skipped;
        self.files_transferred += o.files_transferred;
        self.bytes_transferred += o.bytes_transferred;
        self.bytes_checksummed += o.bytes_checksummed;
        self.faults += o.faults;
        self.active_secs += o.active_secs;
    }
    pub fn is_zero(&self) -> bool {
        *self == TaskCounters::default()
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct TaskRow {
    pub id: Uuid,
    pub kind: TaskKind,
    pub owner: Uuid,
    pub submission_id: String,
    pub status: TaskStatus,
    pub label: Option<String>,
    pub source_collection: Uuid,
    pub dest_collection: Option<Uuid>,
    /// The validated submission, as the transfer crate wrote it.
    pub options: serde_json::Value,
    pub request_time: i64,
    pub completion_time: Option<i64>,
    pub deadline: Option<i64>,
    pub run_after: i64,
    pub nice_status: Option<String>,
    pub nice_status_details: Option<String>,
    pub fatal_error: Option<serde_json::Value>,
    pub counters: TaskCounters,
    /// On a hub: the joined endpoint that runs the task (the row is the hub's record of it, kept current by the
    /// endpoint's reports, and no worker here claims it). None: this process's workers run it.
    pub runner: Option<Uuid>,
    /// On an endpoint: the task came from the hub, which hears of its progress until it acknowledges the end.
    pub reports_to_hub: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ItemKind {
    /// A path as submitted: a file or (with `recursive`) a folder; what it is shows when the worker looks.
    Path,
    Dir,
    File,
}

impl ItemKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ItemKind::Path => "path",
            ItemKind::Dir => "dir",
            ItemKind::File => "file",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "path" => Some(ItemKind::Path),
            "dir" => Some(ItemKind::Dir),
            "file" => Some(ItemKind::File),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ItemState {
    Pending,
    Done,
    /// Not copied because the destination was already up to date (sync level).
    Skipped,
    /// Given up on: a fatal error, or a source error skipped under `skip_source_errors`.
    Failed,
}

impl ItemState {
    pub fn as_str(self) -> &'static str {
        match self {
            ItemState::Pending => "pending",
            ItemState::Done => "done",
            ItemState::Skipped => "skipped",
            ItemState::Failed => "failed",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "pending" => Some(ItemState::Pending),
            "done" => Some(ItemState::Done),
            "skipped" => Some(ItemState::Skipped),
            "failed" => Some(ItemState::Failed),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct NewItem {
    pub kind: ItemKind,
    pub src: String,
    pub dst: Option<String>,
    pub recursive: bool,
    pub size: Option<i64>,
    pub mtime: Option<i64>,
    pub checksum_algorithm: Option<String>,
    pub external_checksum: Option<String>,
    /// A file already copied when its row is written (a listing copies small files at once): the row is
    /// inserted done, with this checksum (of `checksum_algorithm`).
    pub done_checksum: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ItemRow {
    pub seq: i64,
    pub kind: ItemKind,
    pub src: String,
    pub dst: Option<String>,
    pub recursive: bool,
    pub size: Option<i64>,
    pub mtime: Option<i64>,
    pub state: ItemState,
    pub attempts: i64,
    pub checksum_algorithm: Option<String>,
    pub checksum: Option<String>,
    pub external_checksum: Option<String>,
    pub progress: Option<String>,
    pub error_code: Option<String>,
    pub error: Option<String>,
    pub error_time: Option<i64>,
}

/// What happened to one item: its new state (pending again, with one more attempt, after a fault).
#[derive(Debug, Clone, PartialEq)]
pub struct ItemOutcome {
    pub seq: i64,
    pub state: ItemState,
    pub attempts: i64,
    pub checksum_algorithm: Option<String>,
    pub checksum: Option<String>,
    pub error_code: Option<String>,
    pub error: Option<String>,
    pub error_time: Option<i64>,
    /// Cleared when the item is finished.
    pub progress: Option<String>,
}

/// How many items are in each condition: the task document's `subtasks_*`.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ItemCounts {
    pub total: i64,
    pub pending: i64,
    /// Pending after at least one fault.
    pub retrying: i64,
    pub done: i64,
    pub skipped: i64,
    pub failed: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskEvent {
    pub time: i64,
    pub code: String,
    pub is_error: bool,
    pub description: String,
    pub details: String,
}

/// A worker's hold on a task it runs. Every write the worker makes for the task carries it and happens only
/// while `worker` still holds an unexpired lease on the task (`lease_expires_at >= now`), checked in the same
/// transaction as the write; otherwise nothing is written and the call fails with `StoreError::LeaseLost`.
///
/// A lease owner is `<node>/<rest>`: `node` names the machine-and-data-directory the worker runs on (no `/`
/// in it), so that a starting process can release the leases its node's dead process left
/// ([`TaskStore::release_node_leases`]) without touching another node's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lease<'a> {
    pub worker: &'a str,
    pub now: i64,
}

/// A task leaving the running states (or entering INACTIVE and back).
#[derive(Debug, Clone, PartialEq)]
pub struct StatusChange {
    pub status: TaskStatus,
    pub nice_status: Option<String>,
    pub nice_status_details: Option<String>,
    pub fatal_error: Option<serde_json::Value>,
    pub completion_time: Option<i64>,
}

/// `label` filter operators of `task_list`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LabelFilter {
    Is(String),
    IsNot(String),
    Contains(String),
    NotContains(String),
}

/// Which tasks to list (every field that is set must hold), newest first unless `oldest_first`.
#[derive(Debug, Clone, Default)]
pub struct TaskFilter {
    pub owner: Option<Uuid>,
    pub ids: Vec<Uuid>,
    pub statuses: Vec<TaskStatus>,
    pub kinds: Vec<TaskKind>,
    pub labels: Vec<LabelFilter>,
    pub request_after: Option<i64>,
    pub request_before: Option<i64>,
    pub completion_after: Option<i64>,
    pub completion_before: Option<i64>,
    /// A collection the task reads or writes.
    pub collection: Option<Uuid>,
    pub oldest_first: bool,
    pub offset: i64,
    pub limit: i64,
}

/// How many tasks there are in each status, and how many wait to be claimed: what the metrics report.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TaskTally {
    /// Every status, zeros included, in the order of [`TaskStatus::ALL`].
    pub by_status: Vec<(TaskStatus, i64)>,
    /// Running tasks (ACTIVE or INACTIVE) this process's workers could claim now: due, not leased (or the lease
    /// expired), and not run by a joined endpoint.
    pub queued: i64,
}

/// A URL told about its owner's task changes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Webhook {
    pub id: Uuid,
    pub owner: Uuid,
    pub url: String,
    pub created: i64,
}

/// An event owed to a webhook.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    pub id: Uuid,
    pub webhook_id: Uuid,
    pub url: String,
    pub body: String,
    pub attempts: i64,
}

#[async_trait]
pub trait TaskStore: Send + Sync {
    /// Stores a task with its submitted items. `Conflict` if the owner already used the submission id.
    async fn create_task(&self, task: &TaskRow, items: &[NewItem]) -> Result<()>;
    async fn find_task_by_submission(
        &self,
        owner: Uuid,
        submission_id: &str,
    ) -> Result<Option<TaskRow>>;
    async fn get_task(&self, id: Uuid) -> Result<Option<TaskRow>>;
    /// One page and the number of matching tasks.
    async fn list_tasks(&self, filter: &TaskFilter) -> Result<(Vec<TaskRow>, i64)>;
    async fn set_task_label_deadline(
        &self,
        id: Uuid,
        label: Option<&str>,
        deadline: Option<i64>,
    ) -> Result<()>;

    /// Tasks by status and the queue, counted in one grouped query (read at every metrics scrape).
    async fn task_tally(&self, now: i64) -> Result<TaskTally>;

    /// Claims one running task (ACTIVE or INACTIVE) that is due and not leased (or whose lease expired).
    async fn claim_task(&self, worker: &str, now: i64, lease_secs: i64) -> Result<Option<TaskRow>>;
    /// Extends the lease; false when the worker lost it or the task stopped running (cancelled, say).
    async fn renew_lease(&self, id: Uuid, worker: &str, now: i64, lease_secs: i64) -> Result<bool>;
    /// Gives the task back, to be claimed again from `run_after`.
    async fn release_lease(&self, id: Uuid, worker: &str, run_after: i64) -> Result<()>;
    /// Drops the leases of node `node` (owners `<node>/…`, expired or not): a starting process's, whose node's
    /// previous process died holding them. Other nodes' leases stay. Returns the tasks released, with the
    /// worker that held each.
    async fn release_node_leases(&self, node: &str) -> Result<Vec<(Uuid, String)>>;
    /// Makes a task's finished files pending again, keeping their checksums, so that each is checked at the
    /// destination (and copied again only if it differs). Returns how many.
    async fn recheck_done_files(&self, task: Uuid) -> Result<i64>;
    /// Changes the status of a running task; false (and nothing changed) when it is no longer running. A
    /// worker's change carries its lease (`LeaseLost` when it no longer holds it); the owner's cancel does not.
    async fn set_task_status(
        &self,
        id: Uuid,
        change: &StatusChange,
        lease: Option<&Lease<'_>>,
    ) -> Result<bool>;
    /// Removes a task with its items and events (a hub's record of a submission its endpoint refused).
    async fn delete_task(&self, id: Uuid) -> Result<()>;

    /// On a hub: takes endpoint `runner`'s report of a task it runs (status, counters, label, deadline, and the
    /// per-file counts); false when no task of that endpoint has the id, or the record already ended.
    async fn record_task_report(
        &self,
        runner: Uuid,
        report: &TaskRow,
        items: &ItemCounts,
    ) -> Result<bool>;
    /// On a hub: the per-file counts an endpoint last reported for a task it runs.
    async fn reported_items(&self, task: Uuid) -> Result<Option<ItemCounts>>;
    /// On an endpoint: tasks from the hub whose progress (or end) the hub has yet to hear of, oldest first.
    async fn tasks_to_report(&self, limit: i64) -> Result<Vec<TaskRow>>;
    /// On an endpoint: the hub heard of the end of these tasks (running ones stay to report).
    async fn reports_acknowledged(&self, ids: &[Uuid]) -> Result<()>;

    /// Pending items of the given kinds, in order, after `after_seq`.
    async fn pending_items(
        &self,
        task: Uuid,
        kinds: &[ItemKind],
        after_seq: i64,
        limit: i64,
    ) -> Result<Vec<ItemRow>>;
    /// Adds items found by listing a folder, finishes the listed item (`listed`) and adds `delta`, atomically,
    /// while the worker holds `lease`.
    async fn add_items(
        &self,
        task: Uuid,
        items: &[NewItem],
        listed: Option<&ItemOutcome>,
        delta: &TaskCounters,
        lease: &Lease<'_>,
    ) -> Result<()>;
    /// Records outcomes and adds `delta`, atomically, while the worker holds `lease`.
    async fn finish_items(
        &self,
        task: Uuid,
        outcomes: &[ItemOutcome],
        delta: &TaskCounters,
        lease: &Lease<'_>,
    ) -> Result<()>;
    /// Saves a large file's progress and adds `delta`, while the worker holds `lease`.
    async fn set_item_progress(
        &self,
        task: Uuid,
        seq: i64,
        progress: &str,
        delta: &TaskCounters,
        lease: &Lease<'_>,
    ) -> Result<()>;
    /// Items in one state (of one kind), in order after `after_seq`: successful transfers, skipped errors.
    async fn list_items(
        &self,
        task: Uuid,
        state: ItemState,
        kind: Option<ItemKind>,
        after_seq: i64,
        limit: i64,
    ) -> Result<Vec<ItemRow>>;
    async fn count_items(&self, task: Uuid) -> Result<ItemCounts>;
    /// Marks every pending item failed (a cancelled or expired task); returns how many. The worker's carries
    /// its lease; the owner's cancel does not.
    async fn fail_pending_items(
        &self,
        task: Uuid,
        code: &str,
        now: i64,
        lease: Option<&Lease<'_>>,
    ) -> Result<i64>;

    /// Appends an event. The worker's carries its lease; the owner's cancel does not.
    async fn add_task_event(
        &self,
        task: Uuid,
        event: &TaskEvent,
        lease: Option<&Lease<'_>>,
    ) -> Result<()>;
    /// One page of events, newest first, and their number.
    async fn list_task_events(
        &self,
        task: Uuid,
        offset: i64,
        limit: i64,
    ) -> Result<(Vec<TaskEvent>, i64)>;

    async fn create_webhook(&self, hook: &Webhook) -> Result<()>;
    async fn list_webhooks(&self, owner: Uuid) -> Result<Vec<Webhook>>;
    /// False when the owner has no such webhook.
    async fn delete_webhook(&self, id: Uuid, owner: Uuid) -> Result<bool>;
    /// Queues deliveries (their `attempts` are ignored), due at `now`.
    async fn queue_deliveries(&self, deliveries: &[Delivery], now: i64) -> Result<()>;
    /// Claims up to `limit` deliveries due at `now` (not delivered, fewer than `max_attempts` tried) for one
    /// attempt each: in the same step they stop being due until `now + hold_secs`, so a second worker (or
    /// process) on the database takes others, and an attempt whose worker died is due again after the hold.
    /// The hold must outlast an attempt.
    async fn claim_deliveries(
        &self,
        now: i64,
        hold_secs: i64,
        max_attempts: i64,
        limit: i64,
    ) -> Result<Vec<Delivery>>;
    /// Records an attempt: delivered, or failed and due again at `next_attempt`.
    async fn delivery_attempted(
        &self,
        id: Uuid,
        delivered_at: Option<i64>,
        next_attempt: i64,
        error: Option<&str>,
    ) -> Result<()>;
}
