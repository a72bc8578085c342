//! The audit log: every change asked of an organization's API, recorded once answered
//! ([`record_changes`]), and read by its administrators (`GET /api/{org}/audit`).

use std::collections::HashMap;
use std::sync::Arc;

use axum::Extension;
use axum::Json;
use axum::extract::{MatchedPath, Path, Query, Request, State};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::Response;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use vivarium_store::AuditEvent;

use super::Shared;
use super::paging::{first_page, store_page};
use super::paths::OrgPath;
use crate::clock::now_micros;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::identity::{Caller, require_admin};

/// Each route's operation id, by method and path template, from the OpenAPI document the
/// routes derive: what an audit event calls the change.
#[derive(Debug, Default)]
pub struct Operations(HashMap<(Method, String), String>);

impl Operations {
    /// The operations of `openapi`.
    pub fn of(openapi: &utoipa::openapi::OpenApi) -> Arc<Self> {
        let mut operations = HashMap::new();
        for (path, item) in &openapi.paths.paths {
            let methods = [
                (Method::POST, &item.post),
                (Method::PUT, &item.put),
                (Method::PATCH, &item.patch),
                (Method::DELETE, &item.delete),
            ];
            for (method, operation) in methods {
                if let Some(id) = operation.as_ref().and_then(|op| op.operation_id.clone()) {
                    operations.insert((method, path.clone()), id);
                }
            }
        }
        Arc::new(Self(operations))
    }

    fn id(&self, method: &Method, template: &str) -> String {
        self.0
            .get(&(method.clone(), template.to_string()))
            .cloned()
            .unwrap_or_else(|| format!("{method} {template}"))
    }
}

/// Records every request that may change something (any method but GET, HEAD and OPTIONS)
/// in the organization's audit log once it is answered, with its status: refusals too,
/// since an operator wants to see who tried. The event names the change by its path, never
/// by its body (which carries passwords, tokens and secret values). A failure to record is
/// logged; the change it describes is already made.
pub async fn record_changes(
    Extension(state): Extension<Shared>,
    Extension(operations): Extension<Arc<Operations>>,
    matched: MatchedPath,
    Path(params): Path<HashMap<String, String>>,
    request: Request,
    next: Next,
) -> Response {
    if request.method().is_safe() {
        return next.run(request).await;
    }
    let Some(caller) = request.extensions().get::<Caller>().cloned() else {
        return next.run(request).await;
    };
    let method = request.method().clone();
    let path = request.uri().path().to_string();
    let response = next.run(request).await;
    let event = AuditEvent {
        id: uuid::Uuid::now_v7().to_string(),
        org: params.get("org").cloned().unwrap_or_default(),
        at: now_micros(),
        actor: caller.email,
        actor_kind: caller.kind.wire_name().to_string(),
        operation: operations.id(&method, matched.as_str()),
        method: method.to_string(),
        path,
        status: response.status().as_u16(),
    };
    if let Err(error) = state.meta.record_audit(&event).await {
        tracing::error!(%error, org = %event.org, operation = %event.operation, "could not record an audit event");
    }
    response
}

/// Paging of the audit log: `?page=1&per_page=50` (at most 500 a page).
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditPaging {
    #[serde(default = "first_page")]
    #[param(minimum = 1, default = 1)]
    page: u32,
    #[serde(default = "default_per_page")]
    #[param(minimum = 1, maximum = 500, default = 50)]
    per_page: u32,
}

fn default_per_page() -> u32 {
    50
}

/// Most events one page holds.
const MOST_PER_PAGE: u32 = 500;

/// One page of the audit log.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditPage {
    /// The events, newest first.
    pub events: Vec<AuditEvent>,
    /// The page number, from 1.
    pub page: u32,
    /// Events a page holds at most.
    pub per_page: u32,
}

/// `GET /api/{org}/audit` (administrators): who changed what in the organization, newest
/// first.
#[utoipa::path(
    get,
    path = "/api/{org}/audit",
    tag = "iam",
    operation_id = "list_audit_events",
    summary = "Read the audit log",
    params(OrgPath, AuditPaging),
    responses(
        (status = 200, description = "One page of the organization's audit log, newest first", body = AuditPage),
        (status = 400, description = "Invalid paging (page starts at 1 and per_page is between 1 and 500)", body = ErrorBody),
        (status = 403, description = "The caller does not administer the organization", body = ErrorBody),
        (status = 404, description = "No such organization", body = ErrorBody),
    ),
)]
pub async fn list(
    State(state): State<Shared>,
    Path(OrgPath { org }): Path<OrgPath>,
    Extension(caller): Extension<Caller>,
    paging: Result<Query<AuditPaging>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Json<AuditPage>> {
    let Query(paging) =
        paging.map_err(|e| ApiError::bad_request(format!("invalid query: {}", e.body_text())))?;
    require_admin(&caller)?;
    let page = store_page(paging.page, paging.per_page, MOST_PER_PAGE)?;
    let events = state.meta.list_audit(&org, page).await?;
    Ok(Json(AuditPage {
        events,
        page: paging.page,
        per_page: paging.per_page,
    }))
}
