//! API errors: every failure answers `{"code": <status>, "message": "..."}` as OpenObserve
//! clients expect, with a message that says what was wrong and what to do. The core's typed
//! errors become statuses here, in one place.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;
use vivarium_store::StoreError;

use crate::catalog::CatalogError;
use crate::executor::RunError;
use crate::validate::Invalid;

/// Every failure's body: the HTTP status again, and what went wrong and what to do.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"code": 404, "message": "action 0197c0de-0000-7000-8000-000000000000 not found"}))]
pub struct ErrorBody {
    /// The HTTP status of the answer.
    pub code: u16,
    /// What went wrong, for the user.
    pub message: String,
    /// The request field the error concerns (its wire name, such as `name` or `cron_expr`),
    /// when one does: a form shows the message beside it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

/// A failed request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// The HTTP status.
    pub status: StatusCode,
    /// What went wrong, for the user.
    pub message: String,
    /// Seconds after which a retry may succeed (429 only).
    pub retry_after: Option<u64>,
    /// The request field it concerns, if one does.
    pub field: Option<&'static str>,
}

impl ApiError {
    /// An error with `status` and `message`.
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
            retry_after: None,
            field: None,
        }
    }

    /// 400: the request is malformed or breaks a rule.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }

    /// 401: no valid credentials. Never says which part was wrong.
    pub fn unauthenticated() -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "Unauthorized Access")
    }

    /// 403: the caller is known but may not do this.
    pub fn forbidden() -> Self {
        Self::new(StatusCode::FORBIDDEN, "Unauthorized Access")
    }

    /// 404: `what` does not exist (in this organization).
    pub fn not_found(what: impl std::fmt::Display) -> Self {
        Self::new(StatusCode::NOT_FOUND, format!("{what} not found"))
    }

    /// 409: the change collides with what exists.
    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, message)
    }

    /// 429: too many requests (runs waiting, failed sign-ins); retry after `seconds`.
    pub fn too_many(message: impl Into<String>, seconds: u64) -> Self {
        Self {
            retry_after: Some(seconds),
            ..Self::new(StatusCode::TOO_MANY_REQUESTS, message)
        }
    }

    /// 500: something broke on our side; details go to the log, not the client.
    pub fn internal(error: impl std::fmt::Display) -> Self {
        tracing::error!(%error, "internal error");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal error; the service log has the details",
        )
    }
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::NotFound(what) => Self::not_found(what),
            StoreError::Conflict(what) => Self::conflict(format!("{what} already exists")),
            StoreError::Backend(_) => Self::internal(error),
        }
    }
}

impl From<Invalid> for ApiError {
    fn from(error: Invalid) -> Self {
        Self {
            field: error.field,
            ..Self::bad_request(error.message)
        }
    }
}

impl From<RunError> for ApiError {
    fn from(error: RunError) -> Self {
        match error {
            RunError::Busy {
                message,
                retry_after_secs,
            } => Self::too_many(message, retry_after_secs),
            RunError::InputTooLarge(message) => Self::new(StatusCode::PAYLOAD_TOO_LARGE, message),
            RunError::Unrunnable(message) => Self::bad_request(message),
            RunError::Secret(error) => {
                Self::new(StatusCode::INTERNAL_SERVER_ERROR, error.to_string())
            }
            RunError::Preparation(error) => Self::internal(format!("{error:#}")),
            RunError::Store(error) => error.into(),
        }
    }
}

impl From<CatalogError> for ApiError {
    fn from(error: CatalogError) -> Self {
        match error {
            CatalogError::Invalid(error) => error.into(),
            CatalogError::NotFound(what) => Self::not_found(what),
            CatalogError::Store(error) => error.into(),
            CatalogError::Internal(error) => Self::internal(format!("{error:#}")),
        }
    }
}

impl ApiError {
    /// The body this error answers with.
    pub fn body(&self) -> ErrorBody {
        ErrorBody {
            code: self.status.as_u16(),
            message: self.message.clone(),
            field: self.field.map(str::to_string),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (self.status, Json(self.body())).into_response();
        if let Some(seconds) = self.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        if self.status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"vivarium\""),
            );
        }
        response
    }
}

/// Result of a handler.
pub type ApiResult<T> = Result<T, ApiError>;
