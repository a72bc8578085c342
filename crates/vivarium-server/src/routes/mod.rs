//! The HTTP routes. Every organization-scoped route lives under `/api/{org}`.

pub(crate) mod actions;
pub(crate) mod iam;
pub(crate) mod ops;
pub(crate) mod secrets;
pub(crate) mod triggers;

use std::sync::Arc;

use std::collections::HashMap;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::extract::{Path, Request, State};
use axum::http::HeaderMap;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post, put};
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::trace::TraceLayer;

use crate::AppState;
use crate::error::{ApiError, ApiResult};
use crate::identity::{Caller, require};
use vivarium_auth::{ResourceKind, Verb};

/// The shared state as handlers receive it.
pub type Shared = Arc<AppState>;

/// Every route of the service.
pub fn router(state: Shared) -> Router {
    let body_limit = state.config.max_body_bytes;
    let org_routes = Router::new()
        .route("/actions", get(actions::list))
        .route("/actions/upload", post(actions::upload))
        .route("/actions/bulk", delete(actions::bulk_delete))
        .route("/actions/download/{id}", get(actions::download))
        .route("/actions/test/{id}", post(triggers::test_run))
        .route(
            "/actions/{id}",
            get(actions::get)
                .put(actions::update)
                .delete(actions::delete),
        )
        .route("/actions/{id}/pause", post(actions::pause))
        .route("/actions/{id}/resume", post(actions::resume))
        .route("/actions/{id}/alert", post(triggers::alert))
        .route("/actions/{id}/transform", post(triggers::transform))
        .route("/actions/{id}/runs", get(triggers::list_runs))
        .route("/actions/{id}/runs/{run_id}", get(triggers::get_run))
        .route("/actions/{id}/secrets", get(secrets::list_action))
        .route(
            "/actions/{id}/secrets/{name}",
            put(secrets::put_action).delete(secrets::delete_action),
        )
        .route("/secrets", get(secrets::list_org))
        .route(
            "/secrets/{name}",
            put(secrets::put_org).delete(secrets::delete_org),
        )
        .route(
            "/service_accounts",
            get(iam::list_service_accounts).post(iam::create_service_account),
        )
        .route(
            "/service_accounts/{email}",
            get(iam::get_service_account)
                .put(iam::rotate_service_account)
                .delete(iam::delete_service_account),
        )
        .route("/roles", get(iam::list_roles).post(iam::create_role))
        .route(
            "/roles/{role}",
            get(iam::get_role)
                .put(iam::update_role)
                .delete(iam::delete_role),
        )
        .route("/users", get(iam::list_users).post(iam::create_user))
        .route("/users/{email}", delete(iam::delete_user))
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            authenticate_org_caller,
        ));
    let root_routes = Router::new()
        .route(
            "/api/organizations",
            get(iam::list_orgs).post(iam::create_org),
        )
        .route("/api/organizations/{org}", put(iam::update_org))
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            authenticate_root,
        ));
    Router::new()
        .route("/healthz", get(ops::healthz))
        .route("/readyz", get(ops::readyz))
        .route("/metrics", get(ops::metrics))
        .route("/api/openapi.json", get(crate::openapi::document))
        .merge(root_routes)
        .nest("/api/{org}", org_routes)
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(TraceLayer::new_for_http())
        .layer(CatchPanicLayer::new())
        .with_state(state)
}

/// Authenticates every organization-scoped request before its body or query is read, so that
/// an unauthenticated client learns nothing but 401; handlers receive the [`Caller`].
async fn authenticate_org_caller(
    State(state): State<Shared>,
    Path(params): Path<HashMap<String, String>>,
    mut request: Request,
    next: Next,
) -> Response {
    let org = params.get("org").map(String::as_str).unwrap_or_default();
    match state.caller(request.headers(), org).await {
        Ok(caller) => {
            request.extensions_mut().insert(caller);
            next.run(request).await
        }
        Err(error) => error.into_response(),
    }
}

/// Lets only the root user through to the routes outside any organization.
async fn authenticate_root(State(state): State<Shared>, request: Request, next: Next) -> Response {
    let caller = state
        .authenticator
        .authenticate_root(state.meta.as_ref(), request.headers())
        .await;
    match caller {
        Ok(_) => next.run(request).await,
        Err(error) => error.into_response(),
    }
}

impl AppState {
    /// 403 unless `caller` may do `verb` on action scripts: on the one with id `object`, or
    /// on the kind as a whole (listing, creating).
    pub async fn require_on_actions(
        &self,
        org: &str,
        caller: &Caller,
        verb: Verb,
        object: Option<&str>,
    ) -> ApiResult<()> {
        require(
            self.meta.as_ref(),
            org,
            caller,
            verb,
            ResourceKind::ActionScripts,
            object,
        )
        .await
    }

    /// The authenticated caller of a request to `org`: 401 without valid credentials, 404 when
    /// the organization does not exist.
    pub async fn caller(&self, headers: &HeaderMap, org: &str) -> ApiResult<Caller> {
        let caller = self
            .authenticator
            .authenticate(self.meta.as_ref(), headers, org)
            .await?;
        if !self.meta.org_exists(org).await? {
            return Err(ApiError::not_found(format!("organization {org}")));
        }
        Ok(caller)
    }
}
