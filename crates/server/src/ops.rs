//! Health and metrics, for a load balancer and an operator: liveness, readiness (the database answers), and
//! Prometheus metrics counted by this server's own recorder and rendered from its own router.
//!
//! The recorder belongs to the server, not to the process (no global recorder): each server counts its own
//! requests and transfers, also when several run in one process (the tests).

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{Method, StatusCode};
use axum::middleware::Next;
use axum::response::Response;
use ferry_store::Store;
use ferry_store::tasks::TaskStatus;
use metrics::{Counter, Gauge, Key, KeyName, Label, Level, Metadata, Recorder, SharedString, Unit};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle, PrometheusRecorder};
use tokio::task::JoinHandle;

/// How long the readiness check waits for the database.
pub const READY_TIMEOUT: Duration = Duration::from_secs(2);

/// What readiness found wrong; the details go to the log, never to the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unready {
    /// The database answered with an error.
    DatabaseFailed,
    /// The database did not answer within [`READY_TIMEOUT`].
    DatabaseSlow,
}

/// Ready when the database answers a trivial read within [`READY_TIMEOUT`].
pub async fn ready(store: &dyn Store) -> Result<(), Unready> {
    match tokio::time::timeout(READY_TIMEOUT, store.ping()).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "not ready: the database check failed");
            Err(Unready::DatabaseFailed)
        }
        Err(_) => {
            tracing::warn!(
                secs = READY_TIMEOUT.as_secs(),
                "not ready: the database did not answer"
            );
            Err(Unready::DatabaseSlow)
        }
    }
}

const REQUESTS: &str = "ferry_http_requests_total";
const REQUEST_SECONDS: &str = "ferry_http_request_duration_seconds";
const TASKS: &str = "ferry_tasks";
const QUEUED: &str = "ferry_tasks_queued";
const BYTES: &str = "ferry_transfer_bytes_total";
const FILES: &str = "ferry_transfer_files_total";
const FAULTS: &str = "ferry_task_faults_total";
const LEASE_LOSSES: &str = "ferry_task_lease_losses_total";

/// Request latency buckets, in seconds: API calls take milliseconds, data requests up to minutes.
const BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 120.0,
];

static META: Metadata<'static> = Metadata::new(module_path!(), Level::INFO, Some(module_path!()));

/// This server's metrics: the recorder they are counted in, and the gauges read from the store at each scrape.
pub struct Metrics {
    recorder: PrometheusRecorder,
    handle: PrometheusHandle,
    tasks: Vec<(TaskStatus, Gauge)>,
    queued: Gauge,
    allow: Vec<IpAddr>,
}

impl Metrics {
    /// Metrics readable from the `allow` addresses (every address when empty).
    pub fn new(allow: Vec<IpAddr>) -> Self {
        let recorder = PrometheusBuilder::new()
            .set_buckets(BUCKETS)
            .unwrap_or_else(|_| PrometheusBuilder::new())
            .build_recorder();
        for (name, unit, help) in [
            (
                REQUESTS,
                None,
                "HTTP requests by method, route template and status code",
            ),
            (
                BYTES,
                Some(Unit::Bytes),
                "Bytes copied by this process's transfer workers",
            ),
            (
                FILES,
                None,
                "Files copied by this process's transfer workers",
            ),
            (
                FAULTS,
                None,
                "Faults met by this process's workers (retried, skipped or fatal)",
            ),
            (
                LEASE_LOSSES,
                None,
                "Task leases a worker here found gone (a renewal or a write refused) while its task ran on",
            ),
        ] {
            recorder.describe_counter(
                KeyName::from_const_str(name),
                unit,
                SharedString::const_str(help),
            );
        }
        for (name, help) in [
            (
                TASKS,
                "Transfer and delete tasks by status, as the database holds them",
            ),
            (
                QUEUED,
                "Running tasks that are due and not leased: waiting for a worker",
            ),
        ] {
            recorder.describe_gauge(
                KeyName::from_const_str(name),
                None,
                SharedString::const_str(help),
            );
        }
        recorder.describe_histogram(
            KeyName::from_const_str(REQUEST_SECONDS),
            Some(Unit::Seconds),
            SharedString::const_str("Time to answer an HTTP request, until its headers"),
        );
        let tasks = TaskStatus::ALL
            .iter()
            .map(|s| {
                let key = Key::from_parts(TASKS, vec![Label::new("status", s.as_str())]);
                (*s, recorder.register_gauge(&key, &META))
            })
            .collect();
        let queued = recorder.register_gauge(&Key::from_static_name(QUEUED), &META);
        let handle = recorder.handle();
        Self {
            recorder,
            handle,
            tasks,
            queued,
            allow,
        }
    }

    fn counter(&self, name: &'static str) -> Counter {
        self.recorder
            .register_counter(&Key::from_static_name(name), &META)
    }

    /// The transfer engine's counters, registered here (so that they show, at 0, before anything moves).
    pub fn engine(&self) -> ferry_transfer::EngineMetrics {
        ferry_transfer::EngineMetrics {
            bytes: self.counter(BYTES),
            files: self.counter(FILES),
            faults: self.counter(FAULTS),
            lease_losses: self.counter(LEASE_LOSSES),
        }
    }

    /// May `peer` read the metrics?
    pub fn allows(&self, peer: IpAddr) -> bool {
        let peer = peer.to_canonical();
        self.allow.is_empty() || self.allow.iter().any(|a| a.to_canonical() == peer)
    }

    /// Counts one answered request. `route` is a route template, never a request's own path.
    fn request(&self, method: &Method, route: String, status: StatusCode, took: Duration) {
        let method = method_label(method);
        let labels = vec![
            Label::new("method", method),
            Label::new("route", route.clone()),
            Label::new("status", status.as_str().to_string()),
        ];
        self.recorder
            .register_counter(&Key::from_parts(REQUESTS, labels), &META)
            .increment(1);
        let labels = vec![Label::new("method", method), Label::new("route", route)];
        self.recorder
            .register_histogram(&Key::from_parts(REQUEST_SECONDS, labels), &META)
            .record(took.as_secs_f64());
    }

    /// The metrics in Prometheus's text format, with the task gauges read from the store now.
    pub async fn scrape(
        &self,
        store: &dyn Store,
        now: i64,
    ) -> Result<String, ferry_store::StoreError> {
        let tally = store.task_tally(now).await?;
        for (status, n) in &tally.by_status {
            if let Some((_, g)) = self.tasks.iter().find(|(s, _)| s == status) {
                g.set(*n as f64);
            }
        }
        self.queued.set(tally.queued as f64);
        Ok(self.handle.render())
    }

    /// Folds recorded latencies into their histograms every few seconds, so that memory stays bounded between
    /// scrapes.
    pub fn spawn_upkeep(self: &Arc<Self>) -> JoinHandle<()> {
        let me = self.clone();
        tokio::spawn(async move {
            let mut every = tokio::time::interval(Duration::from_secs(5));
            loop {
                every.tick().await;
                me.handle.run_upkeep();
            }
        })
    }
}

/// The standard methods by name; any other is `other`, so that a caller cannot add label values at will.
fn method_label(m: &Method) -> &'static str {
    match *m {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

/// Middleware: counts every request by its route template (`unmatched` when no route matched).
pub async fn track(State(m): State<Arc<Metrics>>, req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_string(), |p| p.as_str().to_string());
    let method = req.method().clone();
    let start = std::time::Instant::now();
    let response = next.run(req).await;
    m.request(&method, route, response.status(), start.elapsed());
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_allowed_peers_read_and_mapped_addresses_count_as_theirs() {
        let m = Metrics::new(vec!["127.0.0.1".parse().unwrap()]);
        assert!(m.allows("127.0.0.1".parse().unwrap()));
        assert!(m.allows("::ffff:127.0.0.1".parse().unwrap()));
        assert!(!m.allows("10.1.2.3".parse().unwrap()));
        assert!(Metrics::new(vec![]).allows("10.1.2.3".parse().unwrap()));
    }

    #[test]
    fn odd_methods_share_one_label() {
        let odd = Method::from_bytes(b"BREW").unwrap();
        assert_eq!(method_label(&odd), "other");
        assert_eq!(method_label(&Method::GET), "GET");
    }
}
