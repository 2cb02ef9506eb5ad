//! Webhooks (a Ferry extension): URLs a person or application registers to receive a JSON event whenever one
//! of their tasks succeeds, fails or goes INACTIVE. Each event is signed as a compact JWS (header
//! `Ferry-Signature`, payload = the request body) with the key published at `/jwk.json` (the OIDC `jwks_uri`), so receivers check it
//! without a secret shared with Ferry — and Ferry stores none. Deliveries are rows, retried with doubling
//! back-off until the receiver answers 2xx or `MAX_ATTEMPTS` are spent, and they survive restarts.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use ferry_endpoint::Requester;
use ferry_store::tasks::{Delivery, TaskRow, Webhook};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::engine::{Engine, Inner};
use crate::error::{Result, TransferError};

/// Attempts per delivery: with the doubling wait (2 s, 4 s, …) about eight and a half minutes in all.
pub const MAX_ATTEMPTS: i64 = 8;
/// Webhooks one identity may hold.
const MAX_PER_OWNER: usize = 20;

/// Signs an event document; returns the compact JWS.
pub type Signer = Arc<dyn Fn(&Value) -> Option<String> + Send + Sync>;

/// Whether an address is this host's or a private network's: a webhook there would let a user make the server
/// send requests inside its own network.
fn private(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v) => {
            v.is_loopback()
                || v.is_private()
                || v.is_link_local()
                || v.is_unspecified()
                || v.is_broadcast()
                || v.octets()[0] == 100 && (64..128).contains(&v.octets()[1])
        }
        IpAddr::V6(v) => {
            v.is_loopback()
                || v.is_unspecified()
                || (v.segments()[0] & 0xfe00) == 0xfc00
                || (v.segments()[0] & 0xffc0) == 0xfe80
                || v.to_ipv4_mapped().is_some_and(|m| private(IpAddr::V4(m)))
        }
    }
}

/// Checks a URL's form, and where it leads unless private addresses are allowed.
async fn check_url(url: &str, allow_private: bool) -> Result<()> {
    let u = url::Url::parse(url).map_err(|e| TransferError::bad(format!("url: {e}")))?;
    if !matches!(u.scheme(), "https" | "http") {
        return Err(TransferError::bad("url: must be http:// or https://"));
    }
    if !u.username().is_empty() || u.password().is_some() {
        return Err(TransferError::bad(
            "url: credentials in the URL are not allowed",
        ));
    }
    let host = u
        .host_str()
        .ok_or_else(|| TransferError::bad("url: no host"))?
        .trim_matches(['[', ']']);
    if allow_private {
        return Ok(());
    }
    let port = u.port_or_known_default().unwrap_or(443);
    let addrs = tokio::net::lookup_host((host, port))
        .await
        .map_err(|e| TransferError::bad(format!("url: {host} does not resolve: {e}")))?;
    for a in addrs {
        if private(a.ip()) {
            return Err(TransferError::bad(format!(
                "url: {host} is a private or local address ({}); webhooks go to public receivers",
                a.ip()
            )));
        }
    }
    Ok(())
}

pub fn webhook_doc(h: &Webhook) -> Value {
    json!({"DATA_TYPE": "webhook", "id": h.id, "url": h.url,
           "created": ferry_core::time::rfc3339(h.created)})
}

impl Engine {
    pub async fn add_webhook(&self, who: &Requester, url: &str) -> Result<Webhook> {
        let store = &self.inner.store;
        if store.list_webhooks(who.identity.id).await?.len() >= MAX_PER_OWNER {
            return Err(TransferError::bad(format!(
                "at most {MAX_PER_OWNER} webhooks per identity"
            )));
        }
        check_url(url, self.inner.settings.webhooks_allow_private).await?;
        let h = Webhook {
            id: Uuid::new_v4(),
            owner: who.identity.id,
            url: url.to_string(),
            created: self.inner.now(),
        };
        store.create_webhook(&h).await?;
        Ok(h)
    }

    pub async fn webhooks(&self, who: &Requester) -> Result<Vec<Webhook>> {
        Ok(self.inner.store.list_webhooks(who.identity.id).await?)
    }

    pub async fn remove_webhook(&self, who: &Requester, id: Uuid) -> Result<()> {
        if self.inner.store.delete_webhook(id, who.identity.id).await? {
            Ok(())
        } else {
            Err(TransferError::TaskNotFound(format!("no webhook {id}")))
        }
    }
}

/// Queues the event of a task's new state for each of its owner's webhooks.
pub(crate) async fn task_event(inner: &Inner, task: &TaskRow) {
    let store = &inner.store;
    let hooks = match store.list_webhooks(task.owner).await {
        Ok(h) if !h.is_empty() => h,
        _ => return,
    };
    let t = inner.now();
    let deliveries: Vec<Delivery> = hooks
        .iter()
        .map(|h| {
            let id = Uuid::new_v4();
            let body = json!({
                "DATA_TYPE": "task_event",
                "event": format!("task.{}", task.status.as_str().to_lowercase()),
                "delivery_id": id,
                "webhook_id": h.id,
                "time": ferry_core::time::rfc3339(t),
                "task_id": task.id,
                "type": task.kind.as_str(),
                "status": task.status.as_str(),
                "label": task.label,
                "nice_status": task.nice_status,
                "nice_status_details": task.nice_status_details,
                "fatal_error": task.fatal_error,
                "files": task.counters.files,
                "files_transferred": task.counters.files_transferred,
                "bytes_transferred": task.counters.bytes_transferred,
            });
            Delivery {
                id,
                webhook_id: h.id,
                url: h.url.clone(),
                body: body.to_string(),
                attempts: 0,
            }
        })
        .collect();
    if let Err(e) = store.queue_deliveries(&deliveries, t).await {
        tracing::warn!(task = %task.id, error = %e, "queueing webhook deliveries failed");
    }
    inner.deliveries_due.notify_one();
}

/// Delivers what is due, forever: woken when events are queued, and every second for retries.
pub(crate) async fn deliver_loop(inner: Arc<Inner>) {
    let http = match reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .redirect(reqwest::redirect::Policy::none())
        .build()
    {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "webhooks disabled: no HTTP client");
            return;
        }
    };
    loop {
        let due = inner
            .store
            .due_deliveries(inner.now(), MAX_ATTEMPTS, 50)
            .await
            .unwrap_or_default();
        for d in due {
            let (delivered, error) = deliver(&inner, &http, &d).await;
            let t = inner.now();
            let next = t + 2i64.pow((d.attempts + 1).min(12) as u32);
            if let Err(e) = inner
                .store
                .delivery_attempted(d.id, delivered.then_some(t), next, error.as_deref())
                .await
            {
                tracing::warn!(delivery = %d.id, error = %e, "recording a webhook delivery failed");
            }
        }
        let _ = tokio::time::timeout(Duration::from_secs(1), inner.deliveries_due.notified()).await;
    }
}

/// One attempt: POST the body with its signature. Returns whether it was delivered, and why not.
async fn deliver(inner: &Inner, http: &reqwest::Client, d: &Delivery) -> (bool, Option<String>) {
    if !inner.settings.webhooks_allow_private
        && let Err(e) = check_url(&d.url, false).await
    {
        return (false, Some(e.to_string()));
    }
    let Ok(doc) = serde_json::from_str::<Value>(&d.body) else {
        return (false, Some("the stored event is not JSON".into()));
    };
    let Some(signature) = inner.signer.as_ref().and_then(|s| s(&doc)) else {
        return (false, Some("no signing key".into()));
    };
    let r = http
        .post(&d.url)
        .header("content-type", "application/json")
        .header("ferry-signature", signature)
        .header("ferry-delivery", d.id.to_string())
        .body(d.body.clone())
        .send()
        .await;
    match r {
        Ok(resp) if resp.status().is_success() => (true, None),
        Ok(resp) => (
            false,
            Some(format!("the receiver answered {}", resp.status())),
        ),
        Err(e) => (false, Some(format!("cannot reach the receiver: {e}"))),
    }
}
