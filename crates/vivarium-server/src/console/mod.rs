//! The web console, served by `vivarium serve` beside the API: pages rendered on the server
//! from templates compiled into the binary, over the same core the API calls. Reading pages
//! load what they show through the stores and the permission checks the API uses; every
//! change is made by the console's script calling the JSON API itself (with the session's
//! CSRF token), so no rule has a second implementation here.

mod actions;
mod assets;
mod charts;
mod checks;
mod dashboard;
mod identities;
mod page;
mod sign_in;

use axum::Router;
use axum::http::HeaderValue;
use axum::http::header::{
    CACHE_CONTROL, CONTENT_SECURITY_POLICY, REFERRER_POLICY, X_CONTENT_TYPE_OPTIONS,
    X_FRAME_OPTIONS,
};
use axum::middleware::{self, Next};
use axum::response::{Redirect, Response};
use axum::routing::{get, post};

use crate::routes::Shared;

/// Where the console starts.
pub const HOME: &str = "/console";
/// Where the sign-in form is served and posted.
const SIGN_IN_PATH: &str = "/console/sign-in";

/// What a console page may load and do: its own script and style only (no inline code), no
/// framing, forms and requests to this origin only.
const CONTENT_SECURITY_POLICY_VALUE: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self'; \
     frame-ancestors 'none'; base-uri 'none'";

/// The console's pages, their script and style, and the checks its forms ask as you type.
pub fn router() -> Router<Shared> {
    Router::new()
        .route("/", get(|| async { Redirect::to(HOME) }))
        .route(HOME, get(sign_in::home))
        .route(SIGN_IN_PATH, get(sign_in::form).post(sign_in::submit))
        .route("/console/sign-out", post(sign_in::sign_out))
        .route("/console/go", get(sign_in::switch_org))
        .route("/console/assets/{file}", get(assets::serve))
        .route("/console/check/name", get(checks::name))
        .route("/console/check/cron", get(checks::cron))
        .route("/console/orgs/{org}/actions", get(actions::list))
        .route("/console/orgs/{org}/actions/new", get(actions::new_form))
        .route("/console/orgs/{org}/actions/{id}", get(actions::show))
        .route(
            "/console/orgs/{org}/actions/{id}/edit",
            get(actions::edit_form),
        )
        .route(
            "/console/orgs/{org}/actions/{id}/runs/{run_id}",
            get(actions::run),
        )
        .route("/console/orgs/{org}/identities", get(identities::page))
        .route("/console/orgs/{org}/dashboard", get(dashboard::page))
        .layer(middleware::from_fn(security_headers))
}

/// Adds the headers every console answer carries: the content policy, no framing
/// (clickjacking), no type sniffing, no referrer beyond this origin, and no caching of pages
/// that show an organization's data.
async fn security_headers(request: axum::extract::Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    headers.insert(
        CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY_VALUE),
    );
    headers.insert(X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    headers
        .entry(CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
    response
}
