//! Tasks on SQLite. SQLite has one writer, so claiming with a single `UPDATE … WHERE id = (SELECT … LIMIT 1)
//! RETURNING` is atomic; PostgreSQL will add `FOR UPDATE SKIP LOCKED` to the same statement.
//!
//! A worker's writes are fenced by its lease ([`fence`]): the lease is checked inside the write's own
//! transaction, on the single writer connection, before anything is written.

use async_trait::async_trait;
use sqlx::sqlite::SqliteRow;
use sqlx::{QueryBuilder, Row, Sqlite};
use uuid::Uuid;

use crate::sqlite::{SqliteStore, backend, bad, opt_uuid_col, uuid_col};
use crate::tasks::{
    Delivery, ItemCounts, ItemKind, ItemOutcome, ItemRow, ItemState, LabelFilter, Lease, NewItem,
    StatusChange, TaskCounters, TaskEvent, TaskFilter, TaskKind, TaskRow, TaskStatus, TaskStore,
    TaskTally, Webhook,
};
use crate::{Result, StoreError};

fn task_from(row: &SqliteRow) -> Result<TaskRow> {
    let kind: String = row.try_get("kind").map_err(backend)?;
    let status: String = row.try_get("status").map_err(backend)?;
    let options: String = row.try_get("options").map_err(backend)?;
    let fatal: Option<String> = row.try_get("fatal_error").map_err(backend)?;
    let g = |c: &str| -> Result<i64> { row.try_get(c).map_err(backend) };
    Ok(TaskRow {
        id: uuid_col(row, "id")?,
        kind: TaskKind::parse(&kind).ok_or_else(|| bad("kind", &kind))?,
        owner: uuid_col(row, "owner")?,
        submission_id: row.try_get("submission_id").map_err(backend)?,
        status: TaskStatus::parse(&status).ok_or_else(|| bad("status", &status))?,
        label: row.try_get("label").map_err(backend)?,
        source_collection: uuid_col(row, "source_collection")?,
        dest_collection: opt_uuid_col(row, "dest_collection")?,
        options: serde_json::from_str(&options).map_err(|_| bad("options", &options))?,
        request_time: g("request_time")?,
        completion_time: row.try_get("completion_time").map_err(backend)?,
        deadline: row.try_get("deadline").map_err(backend)?,
        run_after: g("run_after")?,
        nice_status: row.try_get("nice_status").map_err(backend)?,
        nice_status_details: row.try_get("nice_status_details").map_err(backend)?,
        fatal_error: fatal
            .map(|f| serde_json::from_str(&f).map_err(|_| bad("fatal_error", &f)))
            .transpose()?,
        counters: TaskCounters {
            files: g("files")?,
            directories: g("directories")?,
            symlinks: g("symlinks")?,
            files_skipped: g("files_skipped")?,
            files_transferred: g("files_transferred")?,
            bytes_transferred: g("bytes_transferred")?,
            bytes_checksummed: g("bytes_checksummed")?,
            faults: g("faults")?,
            active_secs: row.try_get("active_secs").map_err(backend)?,
        },
        runner: opt_uuid_col(row, "runner")?,
        reports_to_hub: row
            .try_get::<Option<i64>, _>("hub_report")
            .map_err(backend)?
            .is_some(),
    })
}

fn item_from(row: &SqliteRow) -> Result<ItemRow> {
    let kind: String = row.try_get("kind").map_err(backend)?;
    let state: String = row.try_get("state").map_err(backend)?;
    let recursive: i64 = row.try_get("recursive").map_err(backend)?;
    Ok(ItemRow {
        seq: row.try_get("seq").map_err(backend)?,
        kind: ItemKind::parse(&kind).ok_or_else(|| bad("kind", &kind))?,
        src: row.try_get("src").map_err(backend)?,
        dst: row.try_get("dst").map_err(backend)?,
        recursive: recursive != 0,
        size: row.try_get("size").map_err(backend)?,
        mtime: row.try_get("mtime").map_err(backend)?,
        state: ItemState::parse(&state).ok_or_else(|| bad("state", &state))?,
        attempts: row.try_get("attempts").map_err(backend)?,
        checksum_algorithm: row.try_get("checksum_algorithm").map_err(backend)?,
        checksum: row.try_get("checksum").map_err(backend)?,
        external_checksum: row.try_get("external_checksum").map_err(backend)?,
        progress: row.try_get("progress").map_err(backend)?,
        error_code: row.try_get("error_code").map_err(backend)?,
        error: row.try_get("error").map_err(backend)?,
        error_time: row.try_get("error_time").map_err(backend)?,
    })
}

/// Fails with `LeaseLost` unless `lease` (when given) still holds an unexpired lease on `task`. Called first in
/// the write's transaction: every write of this process goes through the one writer connection, so nothing
/// (no claim, no renewal) commits between this check and the write; and should another process write to the
/// file, SQLite's snapshot isolation refuses the write of a transaction whose snapshot is older than that
/// commit (`SQLITE_BUSY_SNAPSHOT`), so a write never stands on a stale check. PostgreSQL needs the row
/// locked: `SELECT … FOR SHARE` here, which a concurrent claim's `UPDATE` waits for.
async fn fence(
    tx: &mut sqlx::SqliteConnection,
    task: Uuid,
    lease: Option<&Lease<'_>>,
) -> Result<()> {
    let Some(l) = lease else {
        return Ok(());
    };
    let held: Option<i64> = sqlx::query_scalar(
        "SELECT 1 FROM tasks WHERE id = ? AND lease_owner = ? AND lease_expires_at >= ?",
    )
    .bind(task.to_string())
    .bind(l.worker)
    .bind(l.now)
    .fetch_optional(&mut *tx)
    .await
    .map_err(backend)?;
    match held {
        Some(_) => Ok(()),
        None => Err(StoreError::LeaseLost),
    }
}

/// Adds counters to a task inside a transaction.
async fn add_counters(tx: &mut sqlx::SqliteConnection, task: Uuid, d: &TaskCounters) -> Result<()> {
    if d.is_zero() {
        return Ok(());
    }
    sqlx::query(
        "UPDATE tasks SET files = files + ?, directories = directories + ?, symlinks = symlinks + ?,
         files_skipped = files_skipped + ?, files_transferred = files_transferred + ?,
         bytes_transferred = bytes_transferred + ?, bytes_checksummed = bytes_checksummed + ?,
         faults = faults + ?, active_secs = active_secs + ? WHERE id = ?",
    )
    .bind(d.files)
    .bind(d.directories)
    .bind(d.symlinks)
    .bind(d.files_skipped)
    .bind(d.files_transferred)
    .bind(d.bytes_transferred)
    .bind(d.bytes_checksummed)
    .bind(d.faults)
    .bind(d.active_secs)
    .bind(task.to_string())
    .execute(&mut *tx)
    .await
    .map_err(backend)?;
    Ok(())
}

/// Inserts items with consecutive sequence numbers taken from the task's counter.
async fn insert_items(
    tx: &mut sqlx::SqliteConnection,
    task: Uuid,
    items: &[NewItem],
) -> Result<()> {
    if items.is_empty() {
        return Ok(());
    }
    let first: i64 = sqlx::query_scalar(
        "UPDATE tasks SET next_seq = next_seq + ? WHERE id = ? RETURNING next_seq",
    )
    .bind(items.len() as i64)
    .bind(task.to_string())
    .fetch_one(&mut *tx)
    .await
    .map_err(backend)?;
    // Sequence numbers start at 1: 0 is the cursor before the first item.
    let first = first - items.len() as i64 + 1;
    // SQLite allows 32766 bound parameters; 12 per row.
    for (chunk_no, chunk) in items.chunks(1000).enumerate() {
        let mut q: QueryBuilder<Sqlite> = QueryBuilder::new(
            "INSERT INTO task_items(task_id, seq, kind, src, dst, recursive, size, mtime, state, \
             checksum_algorithm, external_checksum, checksum) ",
        );
        q.push_values(chunk.iter().enumerate(), |mut b, (i, it)| {
            b.push_bind(task.to_string())
                .push_bind(first + (chunk_no * 1000 + i) as i64)
                .push_bind(it.kind.as_str())
                .push_bind(&it.src)
                .push_bind(&it.dst)
                .push_bind(it.recursive as i64)
                .push_bind(it.size)
                .push_bind(it.mtime)
                .push_bind(match it.done_checksum {
                    Some(_) => ItemState::Done.as_str(),
                    None => ItemState::Pending.as_str(),
                })
                .push_bind(&it.checksum_algorithm)
                .push_bind(&it.external_checksum)
                .push_bind(&it.done_checksum);
        });
        q.build().execute(&mut *tx).await.map_err(backend)?;
    }
    Ok(())
}

async fn record_outcome(
    tx: &mut sqlx::SqliteConnection,
    task: Uuid,
    o: &ItemOutcome,
) -> Result<()> {
    sqlx::query(
        "UPDATE task_items SET state = ?, attempts = ?, checksum_algorithm = COALESCE(?, checksum_algorithm),
         checksum = ?, error_code = ?, error = ?, error_time = ?, progress = ? WHERE task_id = ? AND seq = ?",
    )
    .bind(o.state.as_str())
    .bind(o.attempts)
    .bind(&o.checksum_algorithm)
    .bind(&o.checksum)
    .bind(&o.error_code)
    .bind(&o.error)
    .bind(o.error_time)
    .bind(&o.progress)
    .bind(task.to_string())
    .bind(o.seq)
    .execute(&mut *tx)
    .await
    .map_err(backend)?;
    Ok(())
}

fn push_in<T>(
    q: &mut QueryBuilder<Sqlite>,
    col: &str,
    values: impl IntoIterator<Item = T>,
    f: impl Fn(T) -> String,
) {
    q.push(format!(" AND {col} IN ("));
    let mut sep = q.separated(", ");
    for v in values {
        sep.push_bind(f(v));
    }
    q.push(")");
}

/// The WHERE clause of a task listing.
fn task_where(q: &mut QueryBuilder<Sqlite>, f: &TaskFilter) {
    q.push(" WHERE 1 = 1");
    if let Some(o) = f.owner {
        q.push(" AND owner = ").push_bind(o.to_string());
    }
    if !f.ids.is_empty() {
        push_in(q, "id", &f.ids, |i| i.to_string());
    }
    if !f.statuses.is_empty() {
        push_in(q, "status", &f.statuses, |s| s.as_str().to_string());
    }
    if !f.kinds.is_empty() {
        push_in(q, "kind", &f.kinds, |k| k.as_str().to_string());
    }
    for l in &f.labels {
        match l {
            LabelFilter::Is(v) => q.push(" AND label = ").push_bind(v.clone()),
            LabelFilter::IsNot(v) => q.push(" AND label IS NOT ").push_bind(v.clone()),
            LabelFilter::Contains(v) => q
                .push(" AND instr(lower(COALESCE(label, '')), lower(")
                .push_bind(v.clone())
                .push(")) > 0"),
            LabelFilter::NotContains(v) => q
                .push(" AND instr(lower(COALESCE(label, '')), lower(")
                .push_bind(v.clone())
                .push(")) = 0"),
        };
    }
    if let Some(t) = f.request_after {
        q.push(" AND request_time >= ").push_bind(t);
    }
    if let Some(t) = f.request_before {
        q.push(" AND request_time <= ").push_bind(t);
    }
    if let Some(t) = f.completion_after {
        q.push(" AND completion_time >= ").push_bind(t);
    }
    if let Some(t) = f.completion_before {
        q.push(" AND completion_time <= ").push_bind(t);
    }
    if let Some(c) = f.collection {
        q.push(" AND (source_collection = ")
            .push_bind(c.to_string())
            .push(" OR dest_collection = ")
            .push_bind(c.to_string())
            .push(")");
    }
}

#[async_trait]
impl TaskStore for SqliteStore {
    async fn create_task(&self, t: &TaskRow, items: &[NewItem]) -> Result<()> {
        let mut tx = self.writer.begin().await.map_err(backend)?;
        sqlx::query(
            "INSERT INTO tasks(id, kind, owner, submission_id, status, label, source_collection, dest_collection,
             options, request_time, deadline, run_after, nice_status, runner, hub_report)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(t.id.to_string())
        .bind(t.kind.as_str())
        .bind(t.owner.to_string())
        .bind(&t.submission_id)
        .bind(t.status.as_str())
        .bind(&t.label)
        .bind(t.source_collection.to_string())
        .bind(t.dest_collection.map(|d| d.to_string()))
        .bind(t.options.to_string())
        .bind(t.request_time)
        .bind(t.deadline)
        .bind(t.run_after)
        .bind(&t.nice_status)
        .bind(t.runner.map(|r| r.to_string()))
        .bind(t.reports_to_hub.then_some(1i64))
        .execute(&mut *tx)
        .await
        .map_err(backend)?;
        insert_items(&mut tx, t.id, items).await?;
        tx.commit().await.map_err(backend)
    }

    async fn find_task_by_submission(
        &self,
        owner: Uuid,
        submission_id: &str,
    ) -> Result<Option<TaskRow>> {
        sqlx::query("SELECT * FROM tasks WHERE owner = ? AND submission_id = ?")
            .bind(owner.to_string())
            .bind(submission_id)
            .fetch_optional(&self.pool)
            .await
            .map_err(backend)?
            .map(|r| task_from(&r))
            .transpose()
    }

    async fn get_task(&self, id: Uuid) -> Result<Option<TaskRow>> {
        sqlx::query("SELECT * FROM tasks WHERE id = ?")
            .bind(id.to_string())
            .fetch_optional(&self.pool)
            .await
            .map_err(backend)?
            .map(|r| task_from(&r))
            .transpose()
    }

    async fn list_tasks(&self, f: &TaskFilter) -> Result<(Vec<TaskRow>, i64)> {
        let mut count: QueryBuilder<Sqlite> = QueryBuilder::new("SELECT COUNT(*) FROM tasks");
        task_where(&mut count, f);
        let total: i64 = count
            .build_query_scalar()
            .fetch_one(&self.pool)
            .await
            .map_err(backend)?;
        let mut q: QueryBuilder<Sqlite> = QueryBuilder::new("SELECT * FROM tasks");
        task_where(&mut q, f);
        q.push(if f.oldest_first {
            " ORDER BY request_time ASC, id ASC"
        } else {
            " ORDER BY request_time DESC, id DESC"
        });
        q.push(" LIMIT ")
            .push_bind(f.limit)
            .push(" OFFSET ")
            .push_bind(f.offset);
        let rows = q.build().fetch_all(&self.pool).await.map_err(backend)?;
        Ok((rows.iter().map(task_from).collect::<Result<_>>()?, total))
    }

    async fn set_task_label_deadline(
        &self,
        id: Uuid,
        label: Option<&str>,
        deadline: Option<i64>,
    ) -> Result<()> {
        let r = sqlx::query(
            "UPDATE tasks SET label = COALESCE(?, label), deadline = COALESCE(?, deadline) WHERE id = ?",
        )
        .bind(label)
        .bind(deadline)
        .bind(id.to_string())
        .execute(&self.writer)
        .await
        .map_err(backend)?;
        if r.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }

    async fn task_tally(&self, now: i64) -> Result<TaskTally> {
        // The claim's condition, counted per status (done tasks never count as queued).
        let rows = sqlx::query(
            "SELECT status, COUNT(*) AS n,
                SUM(CASE WHEN status IN ('ACTIVE', 'INACTIVE') AND run_after <= ? AND runner IS NULL
                    AND (lease_owner IS NULL OR lease_expires_at < ?) THEN 1 ELSE 0 END) AS queued
             FROM tasks GROUP BY status",
        )
        .bind(now)
        .bind(now)
        .fetch_all(&self.pool)
        .await
        .map_err(backend)?;
        let mut tally = TaskTally {
            by_status: TaskStatus::ALL.iter().map(|s| (*s, 0)).collect(),
            queued: 0,
        };
        for r in &rows {
            let status: String = r.try_get("status").map_err(backend)?;
            let status = TaskStatus::parse(&status).ok_or_else(|| bad("status", &status))?;
            let n: i64 = r.try_get("n").map_err(backend)?;
            if let Some(slot) = tally.by_status.iter_mut().find(|(s, _)| *s == status) {
                slot.1 = n;
            }
            tally.queued += r.try_get::<i64, _>("queued").map_err(backend)?;
        }
        Ok(tally)
    }

    async fn claim_task(&self, worker: &str, now: i64, lease_secs: i64) -> Result<Option<TaskRow>> {
        sqlx::query(
            "UPDATE tasks SET lease_owner = ?, lease_expires_at = ? WHERE id = (
                SELECT id FROM tasks WHERE status IN ('ACTIVE', 'INACTIVE') AND run_after <= ? AND runner IS NULL
                AND (lease_owner IS NULL OR lease_expires_at < ?)
                ORDER BY run_after, request_time LIMIT 1)
             RETURNING *",
        )
        .bind(worker)
        .bind(now + lease_secs)
        .bind(now)
        .bind(now)
        .fetch_optional(&self.writer)
        .await
        .map_err(backend)?
        .map(|r| task_from(&r))
        .transpose()
    }

    async fn renew_lease(&self, id: Uuid, worker: &str, now: i64, lease_secs: i64) -> Result<bool> {
        let r = sqlx::query(
            "UPDATE tasks SET lease_expires_at = ? WHERE id = ? AND lease_owner = ?
             AND status IN ('ACTIVE', 'INACTIVE')",
        )
        .bind(now + lease_secs)
        .bind(id.to_string())
        .bind(worker)
        .execute(&self.writer)
        .await
        .map_err(backend)?;
        Ok(r.rows_affected() == 1)
    }

    async fn release_lease(&self, id: Uuid, worker: &str, run_after: i64) -> Result<()> {
        sqlx::query(
            "UPDATE tasks SET lease_owner = NULL, lease_expires_at = NULL, run_after = ?
             WHERE id = ? AND lease_owner = ?",
        )
        .bind(run_after)
        .bind(id.to_string())
        .bind(worker)
        .execute(&self.writer)
        .await
        .map_err(backend)?;
        Ok(())
    }

    async fn release_node_leases(&self, node: &str) -> Result<Vec<(Uuid, String)>> {
        let prefix = format!("{node}/");
        // A prefix compared as text (not LIKE, where `_` and `%` in a name would match more). RETURNING
        // would show the owner already cleared, so the rows are read first, in the same transaction.
        let mut tx = self.writer.begin().await.map_err(backend)?;
        let rows = sqlx::query(
            "SELECT id, lease_owner AS owner FROM tasks WHERE substr(lease_owner, 1, length(?1)) = ?1",
        )
        .bind(&prefix)
        .fetch_all(&mut *tx)
        .await
        .map_err(backend)?;
        sqlx::query(
            "UPDATE tasks SET lease_owner = NULL, lease_expires_at = NULL
             WHERE substr(lease_owner, 1, length(?1)) = ?1",
        )
        .bind(&prefix)
        .execute(&mut *tx)
        .await
        .map_err(backend)?;
        tx.commit().await.map_err(backend)?;
        rows.iter()
            .map(|r| Ok((uuid_col(r, "id")?, r.try_get("owner").map_err(backend)?)))
            .collect()
    }

    async fn recheck_done_files(&self, task: Uuid) -> Result<i64> {
        let r = sqlx::query(
            "UPDATE task_items SET state = 'pending' WHERE task_id = ? AND state = 'done' AND kind = 'file'",
        )
        .bind(task.to_string())
        .execute(&self.writer)
        .await
        .map_err(backend)?;
        Ok(r.rows_affected() as i64)
    }

    async fn set_task_status(
        &self,
        id: Uuid,
        c: &StatusChange,
        lease: Option<&Lease<'_>>,
    ) -> Result<bool> {
        let mut tx = self.writer.begin().await.map_err(backend)?;
        fence(&mut tx, id, lease).await?;
        let r = sqlx::query(
            "UPDATE tasks SET status = ?, nice_status = ?, nice_status_details = ?, fatal_error = ?,
             completion_time = ? WHERE id = ? AND status IN ('ACTIVE', 'INACTIVE')",
        )
        .bind(c.status.as_str())
        .bind(&c.nice_status)
        .bind(&c.nice_status_details)
        .bind(c.fatal_error.as_ref().map(|f| f.to_string()))
        .bind(c.completion_time)
        .bind(id.to_string())
        .execute(&mut *tx)
        .await
        .map_err(backend)?;
        tx.commit().await.map_err(backend)?;
        Ok(r.rows_affected() == 1)
    }

    async fn delete_task(&self, id: Uuid) -> Result<()> {
        let mut tx = self.writer.begin().await.map_err(backend)?;
        for q in [
            "DELETE FROM task_items WHERE task_id = ?",
            "DELETE FROM task_events WHERE task_id = ?",
            "DELETE FROM tasks WHERE id = ?",
        ] {
            sqlx::query(q)
                .bind(id.to_string())
                .execute(&mut *tx)
                .await
                .map_err(backend)?;
        }
        tx.commit().await.map_err(backend)
    }

    async fn record_task_report(
        &self,
        runner: Uuid,
        t: &TaskRow,
        items: &ItemCounts,
    ) -> Result<bool> {
        let c = &t.counters;
        let r = sqlx::query(
            "UPDATE tasks SET status = ?, nice_status = ?, nice_status_details = ?, fatal_error = ?,
             completion_time = ?, label = ?, deadline = ?, files = ?, directories = ?, symlinks = ?,
             files_skipped = ?, files_transferred = ?, bytes_transferred = ?, bytes_checksummed = ?, faults = ?,
             active_secs = ?, reported_items = ? WHERE id = ? AND runner = ? AND status IN ('ACTIVE', 'INACTIVE')",
        )
        .bind(t.status.as_str())
        .bind(&t.nice_status)
        .bind(&t.nice_status_details)
        .bind(t.fatal_error.as_ref().map(|f| f.to_string()))
        .bind(t.completion_time)
        .bind(&t.label)
        .bind(t.deadline)
        .bind(c.files)
        .bind(c.directories)
        .bind(c.symlinks)
        .bind(c.files_skipped)
        .bind(c.files_transferred)
        .bind(c.bytes_transferred)
        .bind(c.bytes_checksummed)
        .bind(c.faults)
        .bind(c.active_secs)
        .bind(serde_json::to_string(items).map_err(|e| StoreError::Backend(e.to_string()))?)
        .bind(t.id.to_string())
        .bind(runner.to_string())
        .execute(&self.writer)
        .await
        .map_err(backend)?;
        Ok(r.rows_affected() == 1)
    }

    async fn reported_items(&self, task: Uuid) -> Result<Option<ItemCounts>> {
        let raw: Option<Option<String>> =
            sqlx::query_scalar("SELECT reported_items FROM tasks WHERE id = ?")
                .bind(task.to_string())
                .fetch_optional(&self.pool)
                .await
                .map_err(backend)?;
        raw.flatten()
            .map(|r| serde_json::from_str(&r).map_err(|_| bad("reported_items", &r)))
            .transpose()
    }

    async fn tasks_to_report(&self, limit: i64) -> Result<Vec<TaskRow>> {
        sqlx::query("SELECT * FROM tasks WHERE hub_report = 1 ORDER BY request_time LIMIT ?")
            .bind(limit)
            .fetch_all(&self.pool)
            .await
            .map_err(backend)?
            .iter()
            .map(task_from)
            .collect()
    }

    async fn reports_acknowledged(&self, ids: &[Uuid]) -> Result<()> {
        let mut tx = self.writer.begin().await.map_err(backend)?;
        for id in ids {
            sqlx::query(
                "UPDATE tasks SET hub_report = 0 WHERE id = ? AND hub_report = 1
                 AND status IN ('SUCCEEDED', 'FAILED')",
            )
            .bind(id.to_string())
            .execute(&mut *tx)
            .await
            .map_err(backend)?;
        }
        tx.commit().await.map_err(backend)
    }

    async fn pending_items(
        &self,
        task: Uuid,
        kinds: &[ItemKind],
        after_seq: i64,
        limit: i64,
    ) -> Result<Vec<ItemRow>> {
        let mut q: QueryBuilder<Sqlite> =
            QueryBuilder::new("SELECT * FROM task_items WHERE task_id = ");
        q.push_bind(task.to_string())
            .push(" AND state = 'pending' AND seq > ")
            .push_bind(after_seq);
        push_in(&mut q, "kind", kinds, |k| k.as_str().to_string());
        q.push(" ORDER BY seq LIMIT ").push_bind(limit);
        let rows = q.build().fetch_all(&self.pool).await.map_err(backend)?;
        rows.iter().map(item_from).collect()
    }

    async fn add_items(
        &self,
        task: Uuid,
        items: &[NewItem],
        listed: Option<&ItemOutcome>,
        delta: &TaskCounters,
        lease: &Lease<'_>,
    ) -> Result<()> {
        let mut tx = self.writer.begin().await.map_err(backend)?;
        fence(&mut tx, task, Some(lease)).await?;
        insert_items(&mut tx, task, items).await?;
        if let Some(o) = listed {
            record_outcome(&mut tx, task, o).await?;
        }
        add_counters(&mut tx, task, delta).await?;
        tx.commit().await.map_err(backend)
    }

    async fn finish_items(
        &self,
        task: Uuid,
        outcomes: &[ItemOutcome],
        delta: &TaskCounters,
        lease: &Lease<'_>,
    ) -> Result<()> {
        let mut tx = self.writer.begin().await.map_err(backend)?;
        fence(&mut tx, task, Some(lease)).await?;
        // One statement for the whole batch: a statement per row costs a round trip to SQLite's thread each.
        let rows: Vec<serde_json::Value> = outcomes
            .iter()
            .map(|o| {
                serde_json::json!([
                    o.seq,
                    o.state.as_str(),
                    o.attempts,
                    o.checksum_algorithm,
                    o.checksum,
                    o.error_code,
                    o.error,
                    o.error_time,
                    o.progress
                ])
            })
            .collect();
        for chunk in rows.chunks(5000) {
            // An upsert driven by the batch finds each row by its key (an UPDATE … FROM json_each lets the
            // planner scan the task's items once per outcome). Every row exists: the insert part never runs.
            sqlx::query(
                "INSERT INTO task_items(task_id, seq, kind, src, state, attempts, checksum_algorithm, checksum,
                 error_code, error, error_time, progress)
                 SELECT ?, value ->> 0, '', '', value ->> 1, value ->> 2, value ->> 3, value ->> 4, value ->> 5,
                 value ->> 6, value ->> 7, value ->> 8 FROM json_each(?) WHERE true
                 ON CONFLICT(task_id, seq) DO UPDATE SET state = excluded.state, attempts = excluded.attempts,
                 checksum_algorithm = COALESCE(excluded.checksum_algorithm, task_items.checksum_algorithm),
                 checksum = excluded.checksum, error_code = excluded.error_code, error = excluded.error,
                 error_time = excluded.error_time, progress = excluded.progress",
            )
            .bind(task.to_string())
            .bind(serde_json::Value::Array(chunk.to_vec()).to_string())
            .execute(&mut *tx)
            .await
            .map_err(backend)?;
        }
        add_counters(&mut tx, task, delta).await?;
        tx.commit().await.map_err(backend)
    }

    async fn set_item_progress(
        &self,
        task: Uuid,
        seq: i64,
        progress: &str,
        delta: &TaskCounters,
        lease: &Lease<'_>,
    ) -> Result<()> {
        let mut tx = self.writer.begin().await.map_err(backend)?;
        fence(&mut tx, task, Some(lease)).await?;
        sqlx::query("UPDATE task_items SET progress = ? WHERE task_id = ? AND seq = ?")
            .bind(progress)
            .bind(task.to_string())
            .bind(seq)
            .execute(&mut *tx)
            .await
            .map_err(backend)?;
        add_counters(&mut tx, task, delta).await?;
        tx.commit().await.map_err(backend)
    }

    async fn list_items(
        &self,
        task: Uuid,
        state: ItemState,
        kind: Option<ItemKind>,
        after_seq: i64,
        limit: i64,
    ) -> Result<Vec<ItemRow>> {
        let mut q: QueryBuilder<Sqlite> =
            QueryBuilder::new("SELECT * FROM task_items WHERE task_id = ");
        q.push_bind(task.to_string())
            .push(" AND state = ")
            .push_bind(state.as_str())
            .push(" AND seq > ")
            .push_bind(after_seq);
        if let Some(k) = kind {
            q.push(" AND kind = ").push_bind(k.as_str());
        }
        q.push(" ORDER BY seq LIMIT ").push_bind(limit);
        let rows = q.build().fetch_all(&self.pool).await.map_err(backend)?;
        rows.iter().map(item_from).collect()
    }

    async fn count_items(&self, task: Uuid) -> Result<ItemCounts> {
        let rows = sqlx::query(
            "SELECT state, attempts > 0 AS retried, COUNT(*) AS n FROM task_items WHERE task_id = ?
             GROUP BY state, attempts > 0",
        )
        .bind(task.to_string())
        .fetch_all(&self.pool)
        .await
        .map_err(backend)?;
        let mut c = ItemCounts::default();
        for r in rows {
            let state: String = r.try_get("state").map_err(backend)?;
            let retried: bool = r.try_get("retried").map_err(backend)?;
            let n: i64 = r.try_get("n").map_err(backend)?;
            c.total += n;
            match ItemState::parse(&state).ok_or_else(|| bad("state", &state))? {
                ItemState::Pending => {
                    c.pending += n;
                    if retried {
                        c.retrying += n;
                    }
                }
                ItemState::Done => c.done += n,
                ItemState::Skipped => c.skipped += n,
                ItemState::Failed => c.failed += n,
            }
        }
        Ok(c)
    }

    async fn fail_pending_items(
        &self,
        task: Uuid,
        code: &str,
        now: i64,
        lease: Option<&Lease<'_>>,
    ) -> Result<i64> {
        let mut tx = self.writer.begin().await.map_err(backend)?;
        fence(&mut tx, task, lease).await?;
        let r = sqlx::query(
            "UPDATE task_items SET state = 'failed', error_code = ?, error_time = ?
             WHERE task_id = ? AND state = 'pending'",
        )
        .bind(code)
        .bind(now)
        .bind(task.to_string())
        .execute(&mut *tx)
        .await
        .map_err(backend)?;
        tx.commit().await.map_err(backend)?;
        Ok(r.rows_affected() as i64)
    }

    async fn add_task_event(
        &self,
        task: Uuid,
        e: &TaskEvent,
        lease: Option<&Lease<'_>>,
    ) -> Result<()> {
        let mut tx = self.writer.begin().await.map_err(backend)?;
        fence(&mut tx, task, lease).await?;
        sqlx::query(
            "INSERT INTO task_events(task_id, seq, time, code, is_error, description, details)
             VALUES (?, (SELECT COALESCE(MAX(seq), 0) + 1 FROM task_events WHERE task_id = ?), ?, ?, ?, ?, ?)",
        )
        .bind(task.to_string())
        .bind(task.to_string())
        .bind(e.time)
        .bind(&e.code)
        .bind(e.is_error as i64)
        .bind(&e.description)
        .bind(&e.details)
        .execute(&mut *tx)
        .await
        .map_err(backend)?;
        tx.commit().await.map_err(backend)
    }

    async fn list_task_events(
        &self,
        task: Uuid,
        offset: i64,
        limit: i64,
    ) -> Result<(Vec<TaskEvent>, i64)> {
        let total: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM task_events WHERE task_id = ?")
            .bind(task.to_string())
            .fetch_one(&self.pool)
            .await
            .map_err(backend)?;
        let rows = sqlx::query(
            "SELECT * FROM task_events WHERE task_id = ? ORDER BY seq DESC LIMIT ? OFFSET ?",
        )
        .bind(task.to_string())
        .bind(limit)
        .bind(offset)
        .fetch_all(&self.pool)
        .await
        .map_err(backend)?;
        let events = rows
            .iter()
            .map(|r| {
                let is_error: i64 = r.try_get("is_error").map_err(backend)?;
                Ok(TaskEvent {
                    time: r.try_get("time").map_err(backend)?,
                    code: r.try_get("code").map_err(backend)?,
                    is_error: is_error != 0,
                    description: r.try_get("description").map_err(backend)?,
                    details: r.try_get("details").map_err(backend)?,
                })
            })
            .collect::<Result<_>>()?;
        Ok((events, total))
    }

    async fn create_webhook(&self, h: &Webhook) -> Result<()> {
        sqlx::query("INSERT INTO webhooks(id, owner, url, created) VALUES (?, ?, ?, ?)")
            .bind(h.id.to_string())
            .bind(h.owner.to_string())
            .bind(&h.url)
            .bind(h.created)
            .execute(&self.writer)
            .await
            .map_err(backend)?;
        Ok(())
    }

    async fn list_webhooks(&self, owner: Uuid) -> Result<Vec<Webhook>> {
        let rows = sqlx::query("SELECT * FROM webhooks WHERE owner = ? ORDER BY created, id")
            .bind(owner.to_string())
            .fetch_all(&self.pool)
            .await
            .map_err(backend)?;
        rows.iter()
            .map(|r| {
                Ok(Webhook {
                    id: uuid_col(r, "id")?,
                    owner: uuid_col(r, "owner")?,
                    url: r.try_get("url").map_err(backend)?,
                    created: r.try_get("created").map_err(backend)?,
                })
            })
            .collect()
    }

    async fn delete_webhook(&self, id: Uuid, owner: Uuid) -> Result<bool> {
        let r = sqlx::query("DELETE FROM webhooks WHERE id = ? AND owner = ?")
            .bind(id.to_string())
            .bind(owner.to_string())
            .execute(&self.writer)
            .await
            .map_err(backend)?;
        Ok(r.rows_affected() == 1)
    }

    async fn queue_deliveries(&self, deliveries: &[Delivery], now: i64) -> Result<()> {
        let mut tx = self.writer.begin().await.map_err(backend)?;
        for d in deliveries {
            sqlx::query(
                "INSERT INTO webhook_deliveries(id, webhook_id, url, body, next_attempt) VALUES (?, ?, ?, ?, ?)",
            )
            .bind(d.id.to_string())
            .bind(d.webhook_id.to_string())
            .bind(&d.url)
            .bind(&d.body)
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(backend)?;
        }
        tx.commit().await.map_err(backend)
    }

    async fn claim_deliveries(
        &self,
        now: i64,
        hold_secs: i64,
        max_attempts: i64,
        limit: i64,
    ) -> Result<Vec<Delivery>> {
        // One statement on the one writer: the rows chosen are the rows held.
        let rows = sqlx::query(
            "UPDATE webhook_deliveries SET next_attempt = ? WHERE id IN (
                SELECT id FROM webhook_deliveries
                WHERE delivered_at IS NULL AND next_attempt <= ? AND attempts < ?
                ORDER BY next_attempt LIMIT ?)
             RETURNING *",
        )
        .bind(now + hold_secs)
        .bind(now)
        .bind(max_attempts)
        .bind(limit)
        .fetch_all(&self.writer)
        .await
        .map_err(backend)?;
        rows.iter()
            .map(|r| {
                Ok(Delivery {
                    id: uuid_col(r, "id")?,
                    webhook_id: uuid_col(r, "webhook_id")?,
                    url: r.try_get("url").map_err(backend)?,
                    body: r.try_get("body").map_err(backend)?,
                    attempts: r.try_get("attempts").map_err(backend)?,
                })
            })
            .collect()
    }

    async fn delivery_attempted(
        &self,
        id: Uuid,
        delivered_at: Option<i64>,
        next_attempt: i64,
        error: Option<&str>,
    ) -> Result<()> {
        sqlx::query(
            "UPDATE webhook_deliveries SET attempts = attempts + 1, delivered_at = ?, next_attempt = ?,
             last_error = ? WHERE id = ?",
        )
        .bind(delivered_at)
        .bind(next_attempt)
        .bind(error)
        .bind(id.to_string())
        .execute(&self.writer)
        .await
        .map_err(backend)?;
        Ok(())
    }
}
