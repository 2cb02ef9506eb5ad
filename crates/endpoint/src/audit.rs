//! The audit log: every management change and every data access decision, written to the store.
//!
//! Data access decisions come at the rate files move, so records are queued and written in batches by one
//! background task instead of one transaction each; `flush` waits until everything queued so far is stored.

use std::sync::Arc;
use std::time::Duration;

use ferry_store::{AuditRecord, Store};
use tokio::sync::{mpsc, oneshot};
use uuid::Uuid;

/// Records queued beyond this make writers wait: memory stays bounded if the database falls behind.
const QUEUE: usize = 10_000;
const BATCH: usize = 500;
/// How long a record may wait for companions before it is written.
const LINGER: Duration = Duration::from_millis(100);

enum Msg {
    Record(AuditRecord),
    Flush(oneshot::Sender<()>),
}

#[derive(Clone)]
pub struct AuditLog {
    tx: mpsc::Sender<Msg>,
    clock: ferry_core::SharedClock,
}

impl AuditLog {
    /// Starts the writer task; it ends when the last `AuditLog` clone is dropped, after writing what is queued.
    pub fn start(store: Arc<dyn Store>, clock: ferry_core::SharedClock) -> Self {
        let (tx, rx) = mpsc::channel(QUEUE);
        tokio::spawn(writer(store, rx));
        Self { tx, clock }
    }

    pub async fn record(
        &self,
        identity: Option<Uuid>,
        action: &str,
        collection: Option<Uuid>,
        path: Option<&str>,
        allowed: bool,
        detail: String,
    ) {
        let rec = AuditRecord {
            seq: 0,
            time: self.clock.now(),
            identity_id: identity,
            action: action.to_string(),
            collection_id: collection,
            path: path.map(str::to_string),
            allowed,
            detail,
        };
        if self.tx.send(Msg::Record(rec)).await.is_err() {
            tracing::error!(action, "the audit writer has stopped; a record was lost");
        }
    }

    /// Returns once every record queued before the call is in the store.
    pub async fn flush(&self) {
        let (done, wait) = oneshot::channel();
        if self.tx.send(Msg::Flush(done)).await.is_ok() {
            let _ = wait.await;
        }
    }
}

async fn writer(store: Arc<dyn Store>, mut rx: mpsc::Receiver<Msg>) {
    let mut batch: Vec<AuditRecord> = Vec::with_capacity(BATCH);
    let mut waiting: Vec<oneshot::Sender<()>> = Vec::new();
    loop {
        // Block for the first message, then collect what arrives within the linger time.
        let Some(first) = rx.recv().await else {
            break;
        };
        let mut next = Some(first);
        let deadline = tokio::time::Instant::now() + LINGER;
        while let Some(msg) = next.take() {
            match msg {
                Msg::Record(r) => batch.push(r),
                Msg::Flush(done) => {
                    waiting.push(done);
                    break;
                }
            }
            if batch.len() >= BATCH {
                break;
            }
            next = tokio::time::timeout_at(deadline, rx.recv())
                .await
                .ok()
                .flatten();
        }
        write(&store, &mut batch).await;
        for done in waiting.drain(..) {
            let _ = done.send(());
        }
    }
    write(&store, &mut batch).await;
}

async fn write(store: &Arc<dyn Store>, batch: &mut Vec<AuditRecord>) {
    if batch.is_empty() {
        return;
    }
    // One retry: a busy database should not cost records.
    for attempt in 0..2 {
        match store.append_audit(batch).await {
            Ok(()) => {
                batch.clear();
                return;
            }
            Err(e) if attempt == 0 => {
                tracing::warn!(error = %e, "writing the audit log failed; retrying");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => {
                tracing::error!(error = %e, lost = batch.len(), "audit records could not be written");
            }
        }
    }
    batch.clear();
}

/// What an administrator asks of the log: the newest records first, a page at a time.
#[derive(Debug, Clone, Default)]
pub struct AuditQuery {
    /// One action (`role.create`) or a family of them (`role`).
    pub action: Option<String>,
    pub identity: Option<Uuid>,
    /// One collection's records; without it, the whole log (the endpoint's managers only).
    pub collection: Option<Uuid>,
    /// Records older than this one (the `next` of the page before).
    pub before: Option<i64>,
    pub limit: i64,
}

/// A page of the log, newest first; `next` reads the older records after it.
#[derive(Debug, Clone)]
pub struct AuditPage {
    pub records: Vec<AuditRecord>,
    pub next: Option<i64>,
}

impl crate::Endpoint {
    /// The audit log as its readers may see it: the endpoint's owner and administrators all of it, a
    /// collection's administrators that collection's records.
    pub async fn read_audit(
        &self,
        who: &crate::Requester,
        q: &AuditQuery,
    ) -> crate::Result<AuditPage> {
        match q.collection {
            None => {
                self.require_endpoint_manager(who).await?;
            }
            Some(id) => {
                let c = self.collection(id).await?;
                self.require_modify(who, &c).await?;
            }
        }
        let limit = q.limit.clamp(1, 1000);
        // One record beyond the page says whether there are older ones.
        let mut records = self
            .store
            .query_audit(&ferry_store::AuditFilter {
                identity_id: q.identity,
                collection_id: q.collection,
                action: q.action.clone().filter(|a| !a.is_empty()),
                before_seq: q.before,
                newest_first: true,
                limit: Some(limit + 1),
                ..Default::default()
            })
            .await?;
        let more = records.len() as i64 > limit;
        records.truncate(limit as usize);
        let next = if more {
            records.last().map(|r| r.seq)
        } else {
            None
        };
        Ok(AuditPage { records, next })
    }
}
