//! Activity: a person's tasks, newest first; a task's overview, progress, event log and per-file results;
//! cancelling. The task page shows its state as rendered; the script refreshes the progress from
//! `/activity/{id}/progress` while the task runs (and the page says how to refresh without it).

use axum::Json;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use ferry_store::tasks::TaskFilter;
use serde_json::{Value, json};
use uuid::Uuid;

use super::{Done, Posted, Section, Visitor, link, notice, shell, size};
use crate::error::AppError;
use crate::routes::AppState;
use crate::routes::web::escape;

const PER_PAGE: i64 = 25;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/activity", get(list))
        .route("/activity/{id}", get(show))
        .route("/activity/{id}/progress", get(progress))
        .route("/activity/{id}/cancel", post(cancel))
}

#[derive(Debug, Default, serde::Deserialize)]
#[serde(default)]
struct ListPlace {
    page: String,
}

pub(super) fn text<'a>(doc: &'a Value, key: &str) -> &'a str {
    doc.get(key).and_then(Value::as_str).unwrap_or("")
}

fn number(doc: &Value, key: &str) -> u64 {
    doc.get(key).and_then(Value::as_u64).unwrap_or(0)
}

/// A task's status as a person reads it: what it is doing or how it ended.
fn status_text(doc: &Value) -> String {
    let status = text(doc, "status");
    let nice = text(doc, "nice_status");
    let canceled = doc
        .get("canceled_by_admin")
        .is_some_and(|v| !v.is_null() && v != &json!(false));
    match status {
        "ACTIVE" if nice.is_empty() || nice == "Queued" || nice == "OK" => {
            "Active: in progress".into()
        }
        "ACTIVE" => format!("Active: {nice}"),
        "INACTIVE" => format!(
            "Paused after repeated faults ({}); it resumes on its own when they clear",
            if nice.is_empty() {
                "see the events"
            } else {
                nice
            }
        ),
        "SUCCEEDED" => "Succeeded".into(),
        "FAILED" if canceled => "Cancelled by an administrator".into(),
        "FAILED" => {
            let fatal = doc.get("fatal_error");
            let field = |k: &str| fatal.and_then(|f| f.get(k)).and_then(Value::as_str);
            // Globus records a cancelled task as FAILED; a person asked for it, so it is not shown as a failure
            if field("code") == Some("CANCELED") {
                return "Cancelled by its owner".into();
            }
            format!("Failed: {}", field("description").unwrap_or(nice))
        }
        other => other.to_string(),
    }
}

fn endpoints(doc: &Value) -> String {
    let src = text(doc, "source_endpoint_display_name");
    match text(doc, "type") {
        "DELETE" => format!("delete on {src}"),
        _ => format!("{src} → {}", text(doc, "destination_endpoint_display_name")),
    }
}

fn title_of(doc: &Value) -> String {
    let label = text(doc, "label");
    if label.is_empty() {
        format!(
            "{} task {}",
            text(doc, "type").to_lowercase(),
            text(doc, "task_id")
        )
    } else {
        label.to_string()
    }
}

/// `GET /activity`: the person's tasks, newest first.
async fn list(
    State(s): State<AppState>,
    v: Visitor,
    Query(place): Query<ListPlace>,
) -> Result<Response, AppError> {
    let page = place.page.parse::<i64>().unwrap_or(1).max(1);
    let filter = TaskFilter {
        limit: PER_PAGE,
        offset: (page - 1) * PER_PAGE,
        ..TaskFilter::default()
    };
    let (tasks, total) = s.transfer.list(&v.who, filter).await?;
    let mut rows = String::new();
    for t in &tasks {
        let doc = s.transfer.task_doc(t).await?;
        let id = text(&doc, "task_id");
        rows.push_str(&format!(
            "<tr><th scope=\"row\"><a href=\"/activity/{id}\">{title}</a></th><td>{kind}</td>\
             <td class=\"status-{status_class}\">{status}</td><td>{route}</td>\
             <td class=\"num\">{files} of {all}</td><td class=\"num\">{bytes}</td><td>{requested}</td></tr>",
            title = escape(&title_of(&doc)),
            kind = escape(&text(&doc, "type").to_lowercase()),
            status_class = escape(&text(&doc, "status").to_lowercase()),
            status = escape(&status_text(&doc)),
            route = escape(&endpoints(&doc)),
            files = number(&doc, "files_transferred"),
            all = number(&doc, "files"),
            bytes = size(number(&doc, "bytes_transferred")),
            requested = escape(text(&doc, "request_time")),
        ));
    }
    let pages = (total + PER_PAGE - 1) / PER_PAGE;
    let mut paging = String::new();
    if page > 1 {
        paging.push_str(&format!(
            "<a href=\"{}\" rel=\"prev\">Newer tasks</a> ",
            escape(&link("/activity", &[("page", &(page - 1).to_string())]))
        ));
    }
    if page < pages {
        paging.push_str(&format!(
            "<a href=\"{}\" rel=\"next\">Older tasks</a>",
            escape(&link("/activity", &[("page", &(page + 1).to_string())]))
        ));
    }
    let body = if tasks.is_empty() && page == 1 {
        "<p id=\"no-tasks\">No tasks yet. Start a transfer from the <a href=\"/file-manager\">File Manager</a>.</p>"
            .to_string()
    } else {
        format!(
            "<p><a href=\"/activity\">Refresh</a></p>\
             <table class=\"listing\"><caption>Your tasks, newest first ({total})</caption><thead><tr>\
             <th scope=\"col\">Task</th><th scope=\"col\">Type</th><th scope=\"col\">Status</th>\
             <th scope=\"col\">From → to</th><th scope=\"col\">Files</th><th scope=\"col\">Bytes</th>\
             <th scope=\"col\">Requested</th></tr></thead><tbody>{rows}</tbody></table>\
             <nav aria-label=\"Pages\" class=\"pages\">{paging}</nav>"
        )
    };
    Ok(shell(
        StatusCode::OK,
        Some(v.username()),
        Section::Activity,
        "Activity",
        &body,
    ))
}

fn task_id(raw: &str) -> Result<Uuid, AppError> {
    Uuid::parse_str(raw).map_err(|_| {
        AppError::new(
            StatusCode::NOT_FOUND,
            format!("There is no task {raw:?}: pick one from Activity."),
        )
    })
}

/// The numbers the progress bar and the script show.
fn progress_doc(doc: &Value) -> Value {
    json!({
        "status": text(doc, "status"),
        "status_text": status_text(doc),
        "files": number(doc, "files"),
        "files_transferred": number(doc, "files_transferred"),
        "files_skipped": number(doc, "files_skipped"),
        "bytes_transferred": number(doc, "bytes_transferred"),
        "bytes": size(number(doc, "bytes_transferred")),
        "rate": format!("{}/s", size(number(doc, "effective_bytes_per_second"))),
        "faults": number(doc, "faults"),
    })
}

/// `GET /activity/{id}`: overview, progress, cancel, events, per-file results.
async fn show(
    State(s): State<AppState>,
    v: Visitor,
    Path(raw): Path<String>,
    Query(place): Query<Done>,
) -> Result<Response, AppError> {
    let id = task_id(&raw)?;
    let task = s.transfer.task(&v.who, id).await?;
    let doc = s.transfer.task_doc(&task).await?;
    let running = matches!(text(&doc, "status"), "ACTIVE" | "INACTIVE");
    let p = progress_doc(&doc);
    let files = number(&doc, "files");
    let done_files = number(&doc, "files_transferred") + number(&doc, "files_skipped");
    let cancel = if running {
        format!(
            "<form method=\"post\" action=\"/activity/{id}/cancel\"><input type=\"hidden\" name=\"csrf\" value=\"{}\">\
             <button type=\"submit\" class=\"danger\">Cancel this task</button></form>",
            v.csrf
        )
    } else {
        String::new()
    };
    let (events, _) = s.transfer.events(&v.who, id, 0, 100).await?;
    let event_rows: String = events
        .iter()
        .map(|e| {
            format!(
                "<tr{cls}><td>{time}</td><td>{code}</td><td>{desc}</td><td>{details}</td></tr>",
                cls = if e.is_error { " class=\"error\"" } else { "" },
                time = escape(&ferry_core::time::rfc3339(e.time)),
                code = escape(&e.code),
                desc = escape(&e.description),
                details = escape(&e.details),
            )
        })
        .collect();
    let (items, _) = s.transfer.successful_transfers(&v.who, id, 0, 100).await?;
    let item_rows: String = items
        .iter()
        .map(|i| {
            format!(
                "<tr><td>{}</td><td>{}</td><td class=\"num\">{}</td></tr>",
                escape(&i.src),
                escape(i.dst.as_deref().unwrap_or("")),
                size(i.size.unwrap_or(0).max(0) as u64)
            )
        })
        .collect();
    let done = match place.done.as_str() {
        "cancel" => notice("ok", "The task was cancelled."),
        "finished" => notice(
            "ok",
            "The task had already finished; nothing was cancelled.",
        ),
        _ => String::new(),
    };
    let dd = |k: &str, v: &str| format!("<dt>{k}</dt><dd>{}</dd>", escape(v));
    let overview = [
        dd("Task id", text(&doc, "task_id")),
        dd("Type", &text(&doc, "type").to_lowercase()),
        dd("Route", &endpoints(&doc)),
        dd("Requested", text(&doc, "request_time")),
        dd("Completed", text(&doc, "completion_time")),
        dd(
            "Verify checksums",
            if doc["verify_checksum"] == json!(true) {
                "yes"
            } else {
                "no"
            },
        ),
        dd("Faults so far", &number(&doc, "faults").to_string()),
    ]
    .concat();
    let body = format!(
        "{done}<section aria-labelledby=\"progress-h\" class=\"progress\" data-task=\"{id}\" data-running=\"{running}\">\
         <h2 id=\"progress-h\">Progress</h2>\
         <p id=\"status\" class=\"status-{status_class}\">{status}</p>\
         <progress id=\"bar\" max=\"{max}\" value=\"{value}\" aria-labelledby=\"progress-h\">{value} of {max}</progress>\
         <p><span id=\"files\">{value} of {files}</span> files · <span id=\"bytes\">{bytes}</span> · \
         <span id=\"rate\">{rate}</span></p>{refresh}{cancel}</section>\
         <section aria-labelledby=\"overview-h\"><h2 id=\"overview-h\">Overview</h2><dl>{overview}</dl></section>\
         <section aria-labelledby=\"events-h\"><h2 id=\"events-h\">Event log</h2>\
         <table class=\"listing\"><caption>Events, newest first</caption><thead><tr><th scope=\"col\">Time</th>\
         <th scope=\"col\">Code</th><th scope=\"col\">What happened</th><th scope=\"col\">Details</th></tr></thead>\
         <tbody>{event_rows}</tbody></table></section>\
         <section aria-labelledby=\"files-h\"><h2 id=\"files-h\">Files transferred</h2>{items}</section>",
        status_class = escape(&text(&doc, "status").to_lowercase()),
        status = escape(&status_text(&doc)),
        max = files.max(1),
        value = done_files,
        bytes = escape(p["bytes"].as_str().unwrap_or("")),
        rate = escape(p["rate"].as_str().unwrap_or("")),
        refresh = if running {
            format!(
                "<p><a href=\"/activity/{id}\">Refresh</a> (the page updates itself while scripts run)</p>"
            )
        } else {
            String::new()
        },
        items = if item_rows.is_empty() {
            "<p>None yet.</p>".to_string()
        } else {
            format!(
                "<table class=\"listing\"><caption>The first 100 files transferred</caption><thead><tr>\
                 <th scope=\"col\">Source</th><th scope=\"col\">Destination</th><th scope=\"col\">Size</th>\
                 </tr></thead><tbody>{item_rows}</tbody></table>"
            )
        },
    );
    Ok(shell(
        StatusCode::OK,
        Some(v.username()),
        Section::Activity,
        &format!("Task: {}", title_of(&doc)),
        &body,
    ))
}

/// `GET /activity/{id}/progress`: the task's numbers for the page's script (same session, same owner check).
async fn progress(
    State(s): State<AppState>,
    v: Result<Visitor, Response>,
    Path(raw): Path<String>,
) -> Result<Response, AppError> {
    // the script asks: it gets a status it understands, not the login page
    let v = match v {
        Ok(v) => v,
        Err(_) => {
            return Ok((
                StatusCode::UNAUTHORIZED,
                Json(json!({"message": "sign in again"})),
            )
                .into_response());
        }
    };
    let id = task_id(&raw)?;
    let task = s.transfer.task(&v.who, id).await?;
    let doc = s.transfer.task_doc(&task).await?;
    let mut r = Json(progress_doc(&doc)).into_response();
    r.headers_mut().insert(
        axum::http::header::CACHE_CONTROL,
        axum::http::HeaderValue::from_static("no-store"),
    );
    Ok(r)
}

async fn cancel(
    State(s): State<AppState>,
    Path(raw): Path<String>,
    Posted(v, _): Posted,
) -> Result<Response, AppError> {
    let id = task_id(&raw)?;
    let back = format!("/activity/{id}");
    let done = if s.transfer.cancel(&v.who, id).await? {
        "cancel"
    } else {
        "finished"
    };
    Ok(Redirect::to(&link(&back, &[("done", done)])).into_response())
}
