//! The Transfer API's documents for tasks, events and per-file results, in the shapes the Globus clients read.

use ferry_core::time::rfc3339;
use ferry_store::tasks::{ItemRow, TaskEvent, TaskKind, TaskRow, TaskStatus};
use serde_json::{Value, json};

use crate::engine::{Engine, options_of};
use crate::error::Result;

impl Engine {
    /// The task document (`DATA_TYPE: task`).
    pub async fn task_doc(&self, t: &TaskRow) -> Result<Value> {
        let counts = self.item_counts(t.id).await?;
        let o = options_of(t).ok();
        let src_name = self.collection_name(t.source_collection).await;
        let dst_name = match t.dest_collection {
            Some(d) => self.collection_name(d).await,
            None => None,
        };
        let username = self.username(t.owner).await;
        let c = &t.counters;
        let rate = if c.active_secs > 0.0 {
            (c.bytes_transferred as f64 / c.active_secs) as i64
        } else {
            0
        };
        let done = t.status.is_done();
        let canceled = t
            .fatal_error
            .as_ref()
            .is_some_and(|f| f["code"] == "CANCELED");
        let (sync_level, verify, preserve, encrypt, dde, skip, quota, rules) = match &o {
            Some(o) if t.kind == TaskKind::Transfer => (
                o.sync_level.map(|l| json!(l as u8)).unwrap_or(Value::Null),
                json!(o.verify_checksum),
                json!(o.preserve_timestamp),
                json!(o.encrypt_data),
                json!(o.delete_destination_extra),
                json!(o.skip_source_errors),
                json!(o.fail_on_quota_errors),
                json!(o.filter_rules),
            ),
            _ => (
                Value::Null,
                json!(false),
                json!(false),
                json!(false),
                json!(false),
                json!(false),
                json!(false),
                Value::Null,
            ),
        };
        Ok(json!({
            "DATA_TYPE": "task",
            "task_id": t.id,
            "type": t.kind.as_str(),
            "status": t.status.as_str(),
            "label": t.label,
            "owner_id": t.owner,
            "username": username,
            "owner_string": username,
            "request_time": rfc3339(t.request_time),
            "completion_time": t.completion_time.map(rfc3339),
            "deadline": t.deadline.map(rfc3339),
            "source_endpoint": t.source_collection,
            "source_endpoint_id": t.source_collection,
            "source_endpoint_display_name": src_name,
            "destination_endpoint": t.dest_collection,
            "destination_endpoint_id": t.dest_collection,
            "destination_endpoint_display_name": dst_name,
            "sync_level": sync_level,
            "verify_checksum": verify,
            "encrypt_data": encrypt,
            "preserve_timestamp": preserve,
            "delete_destination_extra": dde,
            "skip_source_errors": skip,
            "fail_on_quota_errors": quota,
            "recursive_symlinks": if t.kind == TaskKind::Transfer { json!("ignore") } else { Value::Null },
            "filter_rules": rules,
            "command": "API 0.10",
            "history_deleted": false,
            "faults": c.faults,
            "files": c.files,
            "directories": c.directories,
            "symlinks": c.symlinks,
            "files_skipped": c.files_skipped,
            "files_transferred": c.files_transferred,
            "subtasks_total": counts.total,
            "subtasks_pending": if done { 0 } else { counts.pending },
            "subtasks_retrying": if done { 0 } else { counts.retrying },
            "subtasks_succeeded": counts.done + counts.skipped,
            "subtasks_expired": if t.fatal_error.as_ref().is_some_and(|f| f["code"] == "DEADLINE") { counts.failed } else { 0 },
            "subtasks_canceled": if canceled { counts.failed } else { 0 },
            "subtasks_failed": if canceled { 0 } else { counts.failed },
            "subtasks_skipped_errors": if o.as_ref().is_some_and(|o| o.skip_source_errors) { counts.failed } else { 0 },
            "bytes_transferred": c.bytes_transferred,
            "bytes_checksummed": c.bytes_checksummed,
            "effective_bytes_per_second": rate,
            "fatal_error": t.fatal_error,
            "is_ok": match t.status { TaskStatus::Active => json!(true), TaskStatus::Inactive => json!(false), _ => Value::Null },
            "is_paused": false,
            "nice_status": if done { Value::Null } else { json!(t.nice_status.clone().unwrap_or_else(|| "OK".into())) },
            "nice_status_short_description": if done { Value::Null } else { json!(t.nice_status.clone().unwrap_or_else(|| "OK".into())) },
            "nice_status_details": if done { Value::Null } else { json!(t.nice_status_details) },
            "nice_status_expires_in": if done { Value::Null } else { json!(-1) },
            "canceled_by_admin": Value::Null,
            "canceled_by_admin_message": Value::Null,
        }))
    }
}

pub fn event_doc(e: &TaskEvent) -> Value {
    json!({
        "DATA_TYPE": "event",
        "code": e.code,
        "description": e.description,
        "details": e.details,
        "is_error": e.is_error,
        "time": rfc3339(e.time),
    })
}

pub fn successful_transfer_doc(i: &ItemRow) -> Value {
    json!({
        "DATA_TYPE": "successful_transfer",
        "source_path": i.src,
        "destination_path": i.dst,
        "checksum": i.checksum,
        "checksum_algorithm": i.checksum_algorithm,
        "size": i.size,
        "dynamic": false,
    })
}

pub fn skipped_error_doc(i: &ItemRow) -> Value {
    json!({
        "DATA_TYPE": "skipped_error",
        "error_code": i.error_code,
        "error_details": i.error,
        "error_time": i.error_time.map(rfc3339),
        "source_path": i.src,
        "destination_path": i.dst,
        "is_directory": i.kind != ferry_store::tasks::ItemKind::File,
        "is_symlink": false,
        "is_delete_destination_extra": false,
        "external_checksum": i.external_checksum,
        "checksum_algorithm": i.checksum_algorithm,
    })
}
