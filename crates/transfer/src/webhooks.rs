//! Webhooks (a Ferry extension): URLs a person or application registers to receive a JSON event whenever one
//! of their tasks succeeds, fails or goes INACTIVE. Each event is signed as a compact JWS (header
//! `Ferry-Signature`, payload = the request body) with the key published at `/jwk.json` (the OIDC `jwks_uri`), so receivers check it
//! without a secret shared with Ferry — and Ferry stores none. Deliveries are rows, retried with doubling
//! back-off until the receiver answers 2xx or `MAX_ATTEMPTS` are spent, and they survive restarts.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use ferry_core::net::is_public;
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
/// One attempt's limit (the HTTP client's timeout)...
const ATTEMPT_SECS: u64 = 10;
/// ...and how long a claimed delivery is held for its attempt: past it, a delivery whose worker died is due
/// again. Deliveries are claimed one at a time, so the hold covers one attempt, with room to record it.
const DELIVERY_HOLD_SECS: i64 = 6 * ATTEMPT_SECS as i64;

/// Signs an event document; returns the compact JWS.
pub type Signer = Arc<dyn Fn(&Value) -> Option<String> + Send + Sync>;

/// Resolves a webhook's host for the connection itself, keeping only public addresses: the address that was
/// checked is the one connected to, so a name that answers differently the second time (DNS rebinding) gains
/// nothing.
struct PublicOnly;

impl reqwest::dns::Resolve for PublicOnly {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let host = name.as_str().to_string();
        Box::pin(async move {
            let addrs = public_addresses(&host, 0)
                .await
                .map_err(|e| -> Box<dyn std::error::Error + Send + Sync> { e.into() })?;
            Ok(Box::new(addrs.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

/// The addresses of `host` when every one of them is public; otherwise an error that names the first one that
/// is not (a name with one private address among public ones is refused outright).
async fn public_addresses(host: &str, port: u16) -> std::result::Result<Vec<SocketAddr>, String> {
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host, port))
        .await
        .map_err(|e| format!("{host} does not resolve: {e}"))?
        .collect();
    only_public(host, addrs)
}

fn only_public(host: &str, addrs: Vec<SocketAddr>) -> std::result::Result<Vec<SocketAddr>, String> {
    if let Some(a) = addrs.iter().find(|a| !is_public(a.ip())) {
        return Err(format!(
            "{host} is a private or local address ({}); webhooks go to public receivers",
            a.ip()
        ));
    }
    if addrs.is_empty() {
        return Err(format!("{host} has no address"));
    }
    Ok(addrs)
}

/// Checks a URL's form and, unless private addresses are allowed, that a literal address in it is public.
/// Names are checked where they are resolved: by [`registration_check`] for an early answer, and by
/// [`PublicOnly`] for the connection itself.
fn check_form(url: &str, allow_private: bool) -> Result<url::Url> {
    let u = url::Url::parse(url).map_err(|e| TransferError::bad(format!("url: {e}")))?;
    if !matches!(u.scheme(), "https" | "http") {
        return Err(TransferError::bad("url: must be http:// or https://"));
    }
    if !u.username().is_empty() || u.password().is_some() {
        return Err(TransferError::bad(
            "url: credentials in the URL are not allowed",
        ));
    }
    // The URL parser has already turned decimal, octal, hex and shortened IPv4 forms into addresses.
    let literal: Option<IpAddr> = match u.host() {
        Some(url::Host::Ipv4(ip)) => Some(ip.into()),
        Some(url::Host::Ipv6(ip)) => Some(ip.into()),
        Some(url::Host::Domain(_)) => None,
        None => return Err(TransferError::bad("url: no host")),
    };
    match literal {
        Some(ip) if !allow_private && !is_public(ip) => Err(TransferError::bad(format!(
            "url: {ip} is a private or local address; webhooks go to public receivers"
        ))),
        _ => Ok(u),
    }
}

/// What a new webhook must pass: its form, and that its name leads to public addresses only now.
async fn registration_check(url: &str, allow_private: bool) -> Result<()> {
    let u = check_form(url, allow_private)?;
    match u.host() {
        Some(url::Host::Domain(name)) if !allow_private => public_addresses(name, 0)
            .await
            .map(drop)
            .map_err(|e| TransferError::bad(format!("url: {e}"))),
        _ => Ok(()),
    }
}

/// The HTTP client of deliveries: no redirects (a receiver could send it inward), no proxy from the
/// environment, and unless private targets are allowed, names resolved to public addresses only.
fn delivery_client(allow_private: bool) -> reqwest::Result<reqwest::Client> {
    let b = reqwest::Client::builder()
        .timeout(Duration::from_secs(ATTEMPT_SECS))
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy();
    if allow_private {
        b.build()
    } else {
        b.dns_resolver(PublicOnly).build()
    }
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
        registration_check(url, self.inner.settings.webhooks_allow_private).await?;
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
    let http = match delivery_client(inner.settings.webhooks_allow_private) {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "webhooks disabled: no HTTP client");
            return;
        }
    };
    loop {
        while let Some(d) = inner
            .store
            .claim_deliveries(inner.now(), DELIVERY_HOLD_SECS, MAX_ATTEMPTS, 1)
            .await
            .unwrap_or_default()
            .pop()
        {
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
    if let Err(e) = check_form(&d.url, inner.settings.webhooks_allow_private) {
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

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::dns::Resolve;

    #[test]
    fn a_name_with_any_private_address_is_refused() {
        let a = |s: &str| -> SocketAddr { s.parse().unwrap() };
        assert!(only_public("x", vec![a("8.8.8.8:0"), a("10.0.0.1:0")]).is_err());
        assert!(only_public("x", vec![a("[::ffff:127.0.0.1]:0")]).is_err());
        assert!(only_public("x", vec![]).is_err());
        assert_eq!(
            only_public("x", vec![a("8.8.8.8:0")]).unwrap(),
            vec![a("8.8.8.8:0")]
        );
    }

    /// The resolver the connection itself uses refuses a name that leads inward, so a name that passed the
    /// registration check and then changes its answer (DNS rebinding) is not connected to.
    #[tokio::test]
    async fn the_connection_resolver_refuses_local_names() {
        let r = PublicOnly.resolve("localhost".parse().unwrap()).await;
        let e = r.err().expect("localhost refused").to_string();
        assert!(e.contains("private or local"), "{e}");
    }

    #[test]
    fn literal_forms_are_judged_after_parsing() {
        for url in [
            "http://2130706433/",
            "http://0x7f000001/",
            "http://0177.0.0.1/",
            "http://127.1/",
            "http://[::ffff:7f00:1]/",
            "http://[64:ff9b::a9fe:a9fe]/",
            "http://[2002:a00:1::1]/",
            "http://[fec0::1]/",
            "http://0.0.0.0/",
            "http://198.18.0.1/",
        ] {
            assert!(check_form(url, false).is_err(), "{url}");
            assert!(check_form(url, true).is_ok(), "{url}");
        }
        assert!(check_form("https://8.8.8.8/hook", false).is_ok());
        assert!(check_form("https://user:pw@8.8.8.8/hook", false).is_err());
    }
}
