//! Health, readiness and metrics, for load balancers and Prometheus.

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;

use super::Shared;

/// 200 while the process serves requests.
pub async fn healthz() -> &'static str {
    "ok"
}

/// 200 when the database answers; 503 otherwise, so a load balancer stops sending traffic.
pub async fn readyz(State(state): State<Shared>) -> impl IntoResponse {
    match state.meta.list_orgs().await {
        Ok(_) => (StatusCode::OK, "ready".to_string()),
        Err(error) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: {error}"),
        ),
    }
}

/// Prometheus text exposition.
pub async fn metrics(State(state): State<Shared>) -> impl IntoResponse {
    state.executor.refresh_metrics();
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.metrics.encode(),
    )
}
