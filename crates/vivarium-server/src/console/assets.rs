//! The console's style sheet and script, compiled into the binary: hand-written, no build
//! step, no third-party code.

use axum::extract::Path;
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use axum::response::{IntoResponse, Response};

use crate::error::ApiError;

/// The files served under `/console/assets/`: name, media type, content.
const ASSETS: &[(&str, &str, &str)] = &[
    (
        "console.css",
        "text/css; charset=utf-8",
        include_str!("../../assets/console.css"),
    ),
    (
        "console.js",
        "text/javascript; charset=utf-8",
        include_str!("../../assets/console.js"),
    ),
];

/// `GET /console/assets/{file}`.
pub(super) async fn serve(Path(file): Path<String>) -> Response {
    match ASSETS.iter().find(|(name, _, _)| *name == file) {
        Some((_, media_type, content)) => (
            [(CONTENT_TYPE, *media_type), (CACHE_CONTROL, "no-cache")],
            *content,
        )
            .into_response(),
        None => ApiError::not_found(format!("console asset {file}")).into_response(),
    }
}
