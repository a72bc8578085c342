//! Request extractors that answer malformed bodies in the API's error shape.

use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;
use serde::de::DeserializeOwned;

use crate::error::ApiError;

/// A JSON body; a malformed, mistyped or oversized one is a clear `{"code", "message"}` error.
pub struct ApiJson<T>(pub T);

impl<S, T> FromRequest<S> for ApiJson<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        axum::Json::<T>::from_request(request, state)
            .await
            .map(|axum::Json(value)| ApiJson(value))
            .map_err(json_error)
    }
}

fn json_error(rejection: JsonRejection) -> ApiError {
    let status = rejection.status();
    let message = match status {
        StatusCode::PAYLOAD_TOO_LARGE => {
            "the request body is larger than the service accepts".to_string()
        }
        StatusCode::UNSUPPORTED_MEDIA_TYPE => {
            "Invalid Content-Type: send application/json".to_string()
        }
        _ => format!("invalid JSON body: {}", rejection.body_text()),
    };
    ApiError::new(status, message)
}
