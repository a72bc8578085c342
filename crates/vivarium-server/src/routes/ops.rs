//! Health, readiness and metrics, for load balancers and Prometheus, and the `GET /config`
//! OpenObserve's UI reads.

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use serde::Serialize;
use utoipa::ToSchema;

use super::Shared;

/// 200 while the process serves requests.
#[utoipa::path(
    get,
    path = "/healthz",
    tag = "operations",
    operation_id = "healthz",
    summary = "Liveness",
    security(),
    responses(
        (status = 200, description = "The process serves requests", body = String, content_type = "text/plain", example = "ok"),
    ),
)]
pub async fn healthz() -> &'static str {
    "ok"
}

/// 200 when the database answers; 503 otherwise, so a load balancer stops sending traffic.
#[utoipa::path(
    get,
    path = "/readyz",
    tag = "operations",
    operation_id = "readyz",
    summary = "Readiness",
    security(),
    responses(
        (status = 200, description = "The database answers", body = String, content_type = "text/plain", example = "ready"),
        (status = 503, description = "The database does not answer", body = String, content_type = "text/plain"),
    ),
)]
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
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "operations",
    operation_id = "metrics",
    summary = "Prometheus metrics",
    security(),
    responses(
        (status = 200, description = "Prometheus metrics in the OpenMetrics text format", body = String, content_type = "application/openmetrics-text; version=1.0.0; charset=utf-8"),
    ),
)]
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

/// What `GET /config` tells a UI about this service, as OpenObserve's does.
#[derive(Debug, Serialize, ToSchema)]
pub struct ServiceConfig {
    /// Always true: this service runs actions (O2's UI shows its action pages when set).
    actions_enabled: bool,
    /// This service's version.
    version: &'static str,
}

/// `GET /config`: tells OpenObserve's UI that actions are enabled.
#[utoipa::path(
    get,
    path = "/config",
    tag = "operations",
    operation_id = "service_config",
    summary = "What this service offers a UI",
    security(),
    responses(
        (status = 200, description = "Actions are enabled, and the service's version", body = ServiceConfig),
    ),
)]
pub async fn config() -> Json<ServiceConfig> {
    Json(ServiceConfig {
        actions_enabled: true,
        version: env!("CARGO_PKG_VERSION"),
    })
}
