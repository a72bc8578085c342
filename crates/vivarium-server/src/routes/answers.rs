//! Answers shared by several routes.

use serde::Serialize;
use utoipa::ToSchema;

/// A confirmation: `code` is 200.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"code": 200, "message": "Action deleted"}))]
pub struct StatusMessage {
    /// Always 200.
    pub code: u16,
    /// What was done.
    pub message: &'static str,
}

impl StatusMessage {
    /// A confirmation saying `message`.
    pub fn done(message: &'static str) -> Self {
        Self { code: 200, message }
    }
}

/// A list in OpenObserve's envelope, `{"data": [...]}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct DataList<T> {
    /// The items.
    pub data: Vec<T>,
}
