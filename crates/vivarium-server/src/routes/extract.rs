//! Request extractors that answer malformed bodies in the API's error shape.

use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;
use serde::de::DeserializeOwned;

use super::Shared;
use crate::error::ApiError;

/// A JSON body; a malformed, mistyped or oversized one is a clear `{"code", "message"}` error.
pub struct ApiJson<T>(pub T);

impl<T> FromRequest<Shared> for ApiJson<T>
where
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &Shared) -> Result<Self, Self::Rejection> {
        axum::Json::<T>::from_request(request, state)
            .await
            .map(|axum::Json(value)| ApiJson(value))
            .map_err(|rejection| json_error(rejection, state.config.max_body_bytes))
    }
}

fn json_error(rejection: JsonRejection, body_limit: usize) -> ApiError {
    let status = rejection.status();
    let message = match status {
        StatusCode::PAYLOAD_TOO_LARGE => format!(
            "the request body is larger than the {} request limit of this service",
            vivarium_sandbox::human_bytes(body_limit as u64)
        ),
        StatusCode::UNSUPPORTED_MEDIA_TYPE => {
            "Invalid Content-Type: send application/json".to_string()
        }
        _ => format!("invalid JSON body: {}", rejection.body_text()),
    };
    ApiError::new(status, message)
}
