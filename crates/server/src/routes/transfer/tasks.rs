//! Tasks: `submission_id`, `transfer` and `delete` submissions, `task_list`, `task/{id}` (show, update,
//! cancel, events, successful transfers, skipped errors, pause info).

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use ferry_store::tasks::{LabelFilter, TaskFilter, TaskKind, TaskStatus};
use ferry_transfer::doc::{event_doc, skipped_error_doc, successful_transfer_doc};
use ferry_transfer::webhooks::webhook_doc;
use serde_json::{Value, json};
use uuid::Uuid;

use super::{Op, first, list, params};
use crate::error::TransferError;
use crate::routes::AppState;

pub fn router() -> Router<AppState> {
    site_router()
        .route("/v0.10/submission_id", get(submission_id))
        .route("/v0.10/task_list", get(task_list))
        .route("/v0.10/webhook_list", get(webhook_list))
        .route("/v0.10/webhook", post(webhook_add))
        .route("/v0.10/webhook/{id}", axum::routing::delete(webhook_remove))
}

/// What an endpoint answers about the tasks its hub gives it: their submission, and each task (the hub keeps
/// the lists, submission ids and webhooks).
pub fn site_router() -> Router<AppState> {
    Router::new()
        .route("/v0.10/transfer", post(submit_transfer))
        .route("/v0.10/delete", post(submit_delete))
        .route("/v0.10/task/{id}", get(show).put(update))
        .route("/v0.10/task/{id}/cancel", post(cancel))
        .route("/v0.10/task/{id}/event_list", get(events))
        .route("/v0.10/task/{id}/successful_transfers", get(successful))
        .route("/v0.10/task/{id}/skipped_errors", get(skipped))
        .route("/v0.10/task/{id}/pause_info", get(pause_info))
}

impl Op {
    fn task(&self) -> impl Fn(ferry_transfer::TransferError) -> TransferError + '_ {
        |e| TransferError::task(&self.resource, e)
    }

    fn task_id(&self, id: &str) -> Result<Uuid, TransferError> {
        Uuid::parse_str(id).map_err(|_| {
            self.task()(ferry_transfer::TransferError::TaskNotFound(format!(
                "Task {id} not found"
            )))
        })
    }

    fn bad(&self, message: String) -> TransferError {
        self.task()(ferry_transfer::TransferError::bad(message))
    }
}

async fn submission_id(
    State(s): State<AppState>,
    headers: HeaderMap,
) -> Result<Json<Value>, TransferError> {
    let op = Op::at("/submission_id");
    op.caller(&s, &headers).await?;
    Ok(Json(
        json!({"DATA_TYPE": "submission_id", "value": Uuid::new_v4()}),
    ))
}

async fn submit_transfer(
    State(s): State<AppState>,
    headers: HeaderMap,
    raw: Bytes,
) -> Result<(StatusCode, Json<Value>), TransferError> {
    submit(s, headers, raw, TaskKind::Transfer).await
}

async fn submit_delete(
    State(s): State<AppState>,
    headers: HeaderMap,
    raw: Bytes,
) -> Result<(StatusCode, Json<Value>), TransferError> {
    submit(s, headers, raw, TaskKind::Delete).await
}

async fn submit(
    s: AppState,
    headers: HeaderMap,
    raw: Bytes,
    kind: TaskKind,
) -> Result<(StatusCode, Json<Value>), TransferError> {
    let (name, data_type) = match kind {
        TaskKind::Transfer => ("transfer", "transfer_result"),
        TaskKind::Delete => ("delete", "delete_result"),
    };
    let op = Op::at(format!("/{name}"));
    let body = op.body(&raw)?;
    let r = match &s.hub {
        // An endpoint takes tasks from its hub only, under the id of the hub's record.
        Some(hub) => {
            let header = super::super::authorization(&headers)
                .ok_or(ferry_auth::AuthError::Unauthenticated)
                .map_err(op.auth())?;
            let (who, task) = hub
                .vouched_submission(s.auth.store(), header)
                .await
                .map_err(op.auth())?;
            s.transfer.submit_from_hub(&who, &body, kind, task).await
        }
        None => {
            let who = op.caller(&s, &headers).await?;
            match kind {
                TaskKind::Transfer => s.transfer.submit_transfer(&who, &body).await,
                TaskKind::Delete => s.transfer.submit_delete(&who, &body).await,
            }
        }
    }
    .map_err(op.task())?;
    let (status, code, message) = if r.created {
        (
            StatusCode::ACCEPTED,
            "Accepted",
            format!(
                "The {name} has been accepted and a task has been created and queued for execution"
            ),
        )
    } else {
        (
            StatusCode::OK,
            "Duplicate",
            format!(
                "A {name} with id '{}' was already accepted",
                r.submission_id
            ),
        )
    };
    let mut doc = op.result_doc(data_type, code, &message);
    doc["submission_id"] = json!(r.submission_id);
    doc["task_id"] = json!(r.task_id);
    doc["task_link"] = json!({
        "DATA_TYPE": "link",
        "href": format!("task/{}?format=json", r.task_id),
        "rel": "related",
        "resource": "task",
        "title": "related task",
    });
    Ok((status, Json(doc)))
}

/// A `limit` (default `default`, at most `max`) and `offset` pair.
fn page(
    op: &Op,
    p: &[(String, String)],
    default: i64,
    max: i64,
) -> Result<(i64, i64), TransferError> {
    let num = |k: &str, d: i64| -> Result<i64, TransferError> {
        match first(p, k) {
            None => Ok(d),
            Some(v) => v
                .parse::<i64>()
                .ok()
                .filter(|n| *n >= 0)
                .ok_or_else(|| op.bad(format!("{k}: '{v}' is not a number"))),
        }
    };
    let limit = num("limit", default)?;
    if limit == 0 || limit > max {
        return Err(op.bad(format!("limit: must be between 1 and {max}")));
    }
    Ok((limit, num("offset", 0)?))
}

/// `filter=k:v1,v2/k2:v` (task_id, status, type, label, request_time, completion_time).
fn task_filter(op: &Op, raw: &str, f: &mut TaskFilter) -> Result<(), TransferError> {
    let time = |v: &str| -> Result<(Option<i64>, Option<i64>), TransferError> {
        let (a, b) = v.split_once(',').unwrap_or((v, ""));
        let one = |t: &str| -> Result<Option<i64>, TransferError> {
            if t.is_empty() {
                return Ok(None);
            }
            ferry_core::time::parse_iso8601(t)
                .map(Some)
                .ok_or_else(|| op.bad(format!("filter: '{t}' is not a time")))
        };
        Ok((one(a)?, one(b)?))
    };
    for part in raw.split('/').filter(|p| !p.is_empty()) {
        let (k, v) = part
            .split_once(':')
            .ok_or_else(|| op.bad(format!("filter: '{part}' is not key:value")))?;
        match k {
            "task_id" => {
                for id in v.split(',') {
                    f.ids.push(
                        Uuid::parse_str(id)
                            .map_err(|_| op.bad(format!("filter: '{id}' is not a task id")))?,
                    );
                }
            }
            "status" => {
                for st in v.split(',') {
                    f.statuses.push(
                        TaskStatus::parse(&st.to_ascii_uppercase())
                            .ok_or_else(|| op.bad(format!("filter: no status '{st}'")))?,
                    );
                }
            }
            "type" => {
                for t in v.split(',') {
                    f.kinds.push(
                        TaskKind::parse(&t.to_ascii_uppercase())
                            .ok_or_else(|| op.bad(format!("filter: no task type '{t}'")))?,
                    );
                }
            }
            "label" => f.labels.push(if let Some(x) = v.strip_prefix("!~") {
                LabelFilter::NotContains(x.into())
            } else if let Some(x) = v.strip_prefix('~') {
                LabelFilter::Contains(x.into())
            } else if let Some(x) = v.strip_prefix('!') {
                LabelFilter::IsNot(x.into())
            } else {
                LabelFilter::Is(v.strip_prefix('=').unwrap_or(v).into())
            }),
            "request_time" => (f.request_after, f.request_before) = time(v)?,
            "completion_time" => (f.completion_after, f.completion_before) = time(v)?,
            "endpoint" => {
                f.collection = Some(
                    Uuid::parse_str(v)
                        .map_err(|_| op.bad(format!("filter: '{v}' is not a collection id")))?,
                )
            }
            _ => return Err(op.bad(format!("filter: tasks cannot be filtered by '{k}'"))),
        }
    }
    Ok(())
}

async fn task_list(
    State(s): State<AppState>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> Result<Json<Value>, TransferError> {
    let op = Op::at("/task_list");
    let who = op.caller(&s, &headers).await?;
    let p = params(q.as_deref());
    let (limit, offset) = page(&op, &p, 10, 1000)?;
    let mut f = TaskFilter {
        limit,
        offset,
        ..TaskFilter::default()
    };
    for (k, v) in &p {
        if k == "filter" {
            task_filter(&op, v, &mut f)?;
        }
    }
    if let Some(o) = first(&p, "orderby") {
        f.oldest_first = o.to_ascii_uppercase().ends_with("ASC");
    }
    let (rows, total) = s.transfer.list(&who, f).await.map_err(op.task())?;
    let mut docs = Vec::with_capacity(rows.len());
    for t in &rows {
        docs.push(s.transfer.task_doc(t).await.map_err(op.task())?);
    }
    Ok(list(
        "task_list",
        docs,
        json!({"limit": limit, "offset": offset, "total": total}),
    ))
}

async fn show(
    State(s): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<Value>, TransferError> {
    let op = Op::at(format!("/task/{id}"));
    let who = op.caller(&s, &headers).await?;
    let id = op.task_id(&id)?;
    let t = s.transfer.task(&who, id).await.map_err(op.task())?;
    Ok(Json(s.transfer.task_doc(&t).await.map_err(op.task())?))
}

async fn update(
    State(s): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    raw: Bytes,
) -> Result<Json<Value>, TransferError> {
    let op = Op::at(format!("/task/{id}"));
    let who = op.caller(&s, &headers).await?;
    let id = op.task_id(&id)?;
    let body = op.body(&raw)?;
    let obj = body
        .as_object()
        .ok_or_else(|| op.bad("the body must be a task document".into()))?;
    let mut label = None;
    let mut deadline = None;
    for (k, v) in obj {
        match (k.as_str(), v) {
            ("DATA_TYPE", Value::String(t)) if t == "task" => {}
            ("label", Value::String(l)) => label = Some(l.as_str()),
            ("deadline", Value::String(d)) => {
                deadline =
                    Some(ferry_core::time::parse_iso8601(d).ok_or_else(|| {
                        op.bad(format!("deadline: '{d}' is not an ISO 8601 time"))
                    })?)
            }
            (k, _) => {
                return Err(op.bad(format!(
                    "{k}: only label and deadline of a task can be changed"
                )));
            }
        }
    }
    s.transfer
        .update(&who, id, label, deadline)
        .await
        .map_err(op.task())?;
    Ok(op.result("result", "Updated", "Task updated successfully"))
}

async fn cancel(
    State(s): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<Value>, TransferError> {
    let op = Op::at(format!("/task/{id}/cancel"));
    let who = op.caller(&s, &headers).await?;
    let id = op.task_id(&id)?;
    Ok(if s.transfer.cancel(&who, id).await.map_err(op.task())? {
        op.result(
            "result",
            "Canceled",
            "The task has been cancelled successfully.",
        )
    } else {
        op.result("result", "TaskComplete", "The task had already finished.")
    })
}

async fn events(
    State(s): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
) -> Result<Json<Value>, TransferError> {
    let op = Op::at(format!("/task/{id}/event_list"));
    let who = op.caller(&s, &headers).await?;
    let id = op.task_id(&id)?;
    let p = params(q.as_deref());
    let (limit, offset) = page(&op, &p, 10, 1000)?;
    let (rows, total) = s
        .transfer
        .events(&who, id, offset, limit)
        .await
        .map_err(op.task())?;
    Ok(list(
        "event_list",
        rows.iter().map(event_doc).collect(),
        json!({"limit": limit, "offset": offset, "total": total}),
    ))
}

/// `marker` of the marker-paged lists: the last item of the previous page (0: the start).
fn marker(op: &Op, p: &[(String, String)]) -> Result<i64, TransferError> {
    match first(p, "marker") {
        None | Some("") => Ok(0),
        Some(m) => m
            .parse()
            .map_err(|_| op.bad(format!("marker: '{m}' is not a marker from this list"))),
    }
}

/// The per-file lists of a task, paged by marker.
#[derive(Clone, Copy)]
enum FileList {
    Successful,
    Skipped,
}

async fn file_list(
    s: AppState,
    headers: HeaderMap,
    id: String,
    q: Option<String>,
    which: FileList,
) -> Result<Json<Value>, TransferError> {
    let name = match which {
        FileList::Successful => "successful_transfers",
        FileList::Skipped => "skipped_errors",
    };
    let op = Op::at(format!("/task/{id}/{name}"));
    let who = op.caller(&s, &headers).await?;
    let id = op.task_id(&id)?;
    let m = marker(&op, &params(q.as_deref()))?;
    let (rows, next) = match which {
        FileList::Successful => s.transfer.successful_transfers(&who, id, m, 1000).await,
        FileList::Skipped => s.transfer.skipped_errors(&who, id, m, 1000).await,
    }
    .map_err(op.task())?;
    let doc = match which {
        FileList::Successful => successful_transfer_doc,
        FileList::Skipped => skipped_error_doc,
    };
    Ok(list(
        name,
        rows.iter().map(doc).collect(),
        json!({"marker": m, "next_marker": next}),
    ))
}

async fn successful(
    State(s): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
) -> Result<Json<Value>, TransferError> {
    file_list(s, headers, id, q, FileList::Successful).await
}

async fn skipped(
    State(s): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
) -> Result<Json<Value>, TransferError> {
    file_list(s, headers, id, q, FileList::Skipped).await
}

async fn pause_info(
    State(s): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<Value>, TransferError> {
    let op = Op::at(format!("/task/{id}/pause_info"));
    let who = op.caller(&s, &headers).await?;
    let id = op.task_id(&id)?;
    s.transfer.task(&who, id).await.map_err(op.task())?;
    // Ferry has no pause rules yet: nothing pauses a task.
    Ok(Json(json!({
        "DATA_TYPE": "pause_info_limited",
        "pause_rules": [],
        "source_pause_message": null,
        "destination_pause_message": null,
        "source_pause_message_share": null,
        "destination_pause_message_share": null,
    })))
}

// ---- webhooks (a Ferry extension) ----

async fn webhook_list(
    State(s): State<AppState>,
    headers: HeaderMap,
) -> Result<Json<Value>, TransferError> {
    let op = Op::at("/webhook_list");
    let who = op.caller(&s, &headers).await?;
    let hooks = s.transfer.webhooks(&who).await.map_err(op.task())?;
    Ok(list(
        "webhook_list",
        hooks.iter().map(webhook_doc).collect(),
        json!({}),
    ))
}

async fn webhook_add(
    State(s): State<AppState>,
    headers: HeaderMap,
    raw: Bytes,
) -> Result<Json<Value>, TransferError> {
    let op = Op::at("/webhook");
    let who = op.caller(&s, &headers).await?;
    let body = op.body(&raw)?;
    let url = body["url"]
        .as_str()
        .ok_or_else(|| op.bad("url: a webhook needs the URL to call".into()))?;
    let h = s.transfer.add_webhook(&who, url).await.map_err(op.task())?;
    let mut doc = webhook_doc(&h);
    doc["code"] = json!("Created");
    doc["jwks_uri"] = s.auth.discovery()["jwks_uri"].clone();
    Ok(Json(doc))
}

async fn webhook_remove(
    State(s): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<Value>, TransferError> {
    let op = Op::at(format!("/webhook/{id}"));
    let who = op.caller(&s, &headers).await?;
    let id = Uuid::parse_str(&id).map_err(|_| {
        op.task()(ferry_transfer::TransferError::TaskNotFound(format!(
            "no webhook {id}"
        )))
    })?;
    s.transfer
        .remove_webhook(&who, id)
        .await
        .map_err(op.task())?;
    Ok(op.result("result", "Deleted", "The webhook was removed"))
}
