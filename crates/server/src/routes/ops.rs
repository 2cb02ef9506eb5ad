//! `/healthz` (the process serves), `/readyz` (the database answers) and `/metrics` (Prometheus text), on
//! every role and without authentication; `/metrics` only when configured, to the allowed addresses.

use std::net::SocketAddr;

use axum::Router;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use super::AppState;
use crate::error::OpsError;

pub fn router(metrics: bool) -> Router<AppState> {
    let r = Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz));
    if metrics {
        r.route("/metrics", get(scrape))
    } else {
        r
    }
}

async fn healthz() -> &'static str {
    "ok"
}

async fn readyz(State(s): State<AppState>) -> Result<&'static str, OpsError> {
    crate::ops::ready(s.auth.store().as_ref())
        .await
        .map(|()| "ok")
        .map_err(OpsError::unready)
}

async fn scrape(
    State(s): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
) -> Result<Response, OpsError> {
    let Some(m) = s.metrics.as_ref().filter(|m| m.allows(peer.ip())) else {
        return Err(OpsError::not_allowed());
    };
    let now = s.auth.config().clock.now();
    let text = m
        .scrape(s.auth.store().as_ref(), now)
        .await
        .map_err(|e| OpsError::store(&e))?;
    let mut r = text.into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    Ok(r)
}
