//! The HTTP routes. Every organization-scoped route lives under `/api/{org}`.

pub(crate) mod actions;
pub(crate) mod answers;
pub(crate) mod audit;
pub(crate) mod extract;
pub(crate) mod iam;
pub(crate) mod live_logs;
pub(crate) mod ops;
pub(crate) mod paging;
pub(crate) mod paths;
pub(crate) mod secrets;
pub(crate) mod state;
pub(crate) mod triggers;

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, Path, Request};
use axum::http::header::AUTHORIZATION;
use axum::http::{HeaderMap, Method};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Router};
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::trace::TraceLayer;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::AppState;
use crate::error::{ApiError, ApiResult};
use crate::identity::{Caller, client_address, require};
use crate::sessions::has_session_cookie;
use vivarium_auth::{ResourceKind, Verb};

/// The shared state as handlers receive it.
pub type Shared = Arc<AppState>;

/// Every route of the service, each registered once with its documentation: the router
/// serves them and the OpenAPI document is derived from the same list.
pub fn api() -> OpenApiRouter<Shared> {
    let changes = OpenApiRouter::new()
        .routes(routes!(actions::list))
        .routes(routes!(actions::upload))
        .routes(routes!(actions::bulk_delete))
        .routes(routes!(actions::download))
        .routes(routes!(actions::get, actions::update, actions::delete))
        .routes(routes!(actions::pause))
        .routes(routes!(actions::resume))
        .routes(routes!(actions::pause_o2))
        .routes(routes!(actions::resume_o2))
        .routes(routes!(secrets::list_action))
        .routes(routes!(secrets::put_action, secrets::delete_action))
        .routes(routes!(state::list, state::clear))
        .routes(routes!(state::put, state::delete_key))
        .routes(routes!(secrets::list_org))
        .routes(routes!(secrets::put_org, secrets::delete_org))
        .routes(routes!(
            iam::list_service_accounts,
            iam::create_service_account
        ))
        .routes(routes!(
            iam::get_service_account,
            iam::rotate_service_account,
            iam::delete_service_account
        ))
        .routes(routes!(iam::list_roles, iam::create_role))
        .routes(routes!(iam::get_role, iam::update_role, iam::delete_role))
        .routes(routes!(iam::list_users, iam::create_user))
        .routes(routes!(iam::delete_user))
        .routes(routes!(audit::list))
        .route_layer(middleware::from_fn(audit::record_changes));
    // Runs are not changes of the organization: their history is the run log.
    let runs = OpenApiRouter::new()
        .routes(routes!(triggers::test_run))
        .routes(routes!(triggers::alert))
        .routes(routes!(triggers::webhook))
        .routes(routes!(triggers::transform))
        .routes(routes!(triggers::list_runs))
        .routes(routes!(triggers::get_run))
        .routes(routes!(live_logs::run_logs));
    let org_routes = changes
        .merge(runs)
        .route_layer(middleware::from_fn(authenticate_org_caller));
    let root_routes = OpenApiRouter::new()
        .routes(routes!(iam::list_orgs, iam::create_org))
        .routes(routes!(iam::update_org))
        .route_layer(middleware::from_fn(authenticate_root));
    OpenApiRouter::with_openapi(crate::openapi::ApiDoc::openapi())
        .routes(routes!(ops::healthz))
        .routes(routes!(ops::readyz))
        .routes(routes!(ops::metrics))
        .routes(routes!(ops::config))
        .routes(routes!(crate::openapi::document))
        .merge(root_routes)
        .merge(org_routes)
}

/// The service's router over `state`, with the OpenAPI document [`api`] derives served at
/// `GET /api/openapi.json`.
pub fn router(state: Shared) -> Router {
    let body_limit = state.config.max_body_bytes;
    let (router, document) = api().split_for_parts();
    let operations = audit::Operations::of(&document);
    router
        .merge(crate::console::router())
        .layer(Extension(operations))
        .layer(Extension(crate::openapi::Document::new(document)))
        .layer(Extension(state.clone()))
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(TraceLayer::new_for_http())
        .layer(CatchPanicLayer::new())
        .with_state(state)
}

/// Authenticates every organization-scoped request before its body or query is read, so that
/// an unauthenticated client learns nothing but 401; handlers receive the [`Caller`].
async fn authenticate_org_caller(
    Extension(state): Extension<Shared>,
    Path(params): Path<HashMap<String, String>>,
    mut request: Request,
    next: Next,
) -> Response {
    let org = params.get("org").map(String::as_str).unwrap_or_default();
    let client = client_address(request.extensions());
    match state
        .caller(request.headers(), request.method(), org, client)
        .await
    {
        Ok(caller) => {
            request.extensions_mut().insert(caller);
            next.run(request).await
        }
        Err(error) => error.into_response(),
    }
}

/// Lets only the root user through to the routes outside any organization.
async fn authenticate_root(
    Extension(state): Extension<Shared>,
    request: Request,
    next: Next,
) -> Response {
    let caller = state
        .authenticator
        .authenticate_root(
            state.meta.as_ref(),
            request.headers(),
            client_address(request.extensions()),
        )
        .await;
    match caller {
        Ok(_) => next.run(request).await,
        Err(error) => error.into_response(),
    }
}

impl AppState {
    /// 403 unless `caller` may do `verb` on action scripts: on the one with id `object`, or
    /// on the kind as a whole (listing, creating). A malformed id is 404, as in OpenObserve.
    pub async fn require_on_actions(
        &self,
        org: &str,
        caller: &Caller,
        verb: Verb,
        object: Option<&str>,
    ) -> ApiResult<()> {
        if let Some(id) = object.filter(|id| uuid::Uuid::try_parse(id).is_err()) {
            return Err(ApiError::not_found(format!("action {id}")));
        }
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

    /// Action `id` of `org`, once `caller` is known to be allowed `verb` on it: 403 when not
    /// allowed, 404 when it does not exist.
    pub async fn action_for(
        &self,
        org: &str,
        caller: &Caller,
        verb: Verb,
        id: &str,
    ) -> ApiResult<vivarium_store::Action> {
        self.require_on_actions(org, caller, verb, Some(id)).await?;
        Ok(self.catalog.find(org, id).await?)
    }

    /// The authenticated caller of a `method` request from `client` to `org`: by its
    /// credentials, else by its console session (with the CSRF token when it changes
    /// something); 401 without either, 404 when the organization does not exist.
    pub async fn caller(
        &self,
        headers: &HeaderMap,
        method: &Method,
        org: &str,
        client: Option<IpAddr>,
    ) -> ApiResult<Caller> {
        let meta = self.meta.as_ref();
        let caller = if !headers.contains_key(AUTHORIZATION) && has_session_cookie(headers) {
            self.authenticator
                .session_caller(meta, headers, method, org)
                .await?
        } else {
            self.authenticator
                .authenticate(meta, headers, org, client)
                .await?
        };
        if !self.meta.org_exists(org).await? {
            return Err(ApiError::not_found(format!("organization {org}")));
        }
        Ok(caller)
    }
}
