//! Telling a task's owner what became of it: an e-mail when it succeeds, fails or goes INACTIVE, as the
//! submission's `notify_on_*` fields ask, and an event to each of the owner's webhooks. A notification that cannot be sent is logged; it never changes the task.

use std::sync::Arc;

use ferry_mail::Mailer;
use ferry_store::tasks::{TaskRow, TaskStatus};

use crate::engine::{Inner, options_of};

#[derive(Clone, Default)]
pub struct Notifier {
    mailer: Option<Arc<Mailer>>,
    /// The server's public URL, for the link in messages.
    base_url: String,
}

impl Notifier {
    pub fn new(mailer: Option<Arc<Mailer>>, base_url: &str) -> Self {
        Self {
            mailer,
            base_url: base_url.trim_end_matches('/').to_string(),
        }
    }

    pub(crate) async fn task_finished(&self, inner: &Inner, task: &TaskRow) {
        crate::webhooks::task_event(inner, task).await;
        let Ok(o) = options_of(task) else { return };
        let wanted = match task.status {
            TaskStatus::Succeeded => o.notify_on_succeeded,
            TaskStatus::Failed => o.notify_on_failed,
            _ => false,
        };
        if wanted {
            self.mail(inner, task).await;
        }
    }

    pub(crate) async fn task_inactive(&self, inner: &Inner, task: &TaskRow) {
        crate::webhooks::task_event(inner, task).await;
        if options_of(task).is_ok_and(|o| o.notify_on_inactive) {
            self.mail(inner, task).await;
        }
    }

    async fn mail(&self, inner: &Inner, task: &TaskRow) {
        let Some(mailer) = &self.mailer else { return };
        let to = match inner.store.get_identity(task.owner).await {
            Ok(Some(i)) => i.email,
            _ => None,
        };
        let Some(to) = to else { return };
        let (subject, body) = message(task, &self.base_url);
        if let Err(e) = mailer.send(&to, &subject, &body).await {
            tracing::warn!(task = %task.id, error = %e, "the task notification could not be sent");
        }
    }
}

/// The subject and text of a task's notification.
pub(crate) fn message(task: &TaskRow, base_url: &str) -> (String, String) {
    let kind = task.kind.as_str().to_lowercase();
    let name = task.label.clone().unwrap_or_else(|| task.id.to_string());
    let c = &task.counters;
    let subject = match task.status {
        TaskStatus::Succeeded => format!("Ferry: {kind} task \"{name}\" succeeded"),
        TaskStatus::Failed => format!("Ferry: {kind} task \"{name}\" failed"),
        _ => format!("Ferry: {kind} task \"{name}\" is inactive"),
    };
    let mut body = format!(
        "Task {id} ({kind}) is now {status}.\n\nFiles: {files} ({transferred} transferred, {skipped} already up to date)\nBytes transferred: {bytes}\nFaults: {faults}\n",
        id = task.id,
        status = task.status.as_str(),
        files = c.files,
        transferred = c.files_transferred,
        skipped = c.files_skipped,
        bytes = c.bytes_transferred,
        faults = c.faults,
    );
    if let Some(f) = &task.fatal_error {
        body.push_str(&format!(
            "Error: {} {}\n",
            f["code"].as_str().unwrap_or(""),
            f["description"].as_str().unwrap_or("")
        ));
    }
    if let Some(s) = &task.nice_status_details {
        body.push_str(&format!("Why: {s}\n"));
    }
    body.push_str(&format!(
        "\nDetails: {base_url}/v0.10/task/{} (or `ferry task show {}`)\n",
        task.id, task.id
    ));
    (subject, body)
}
