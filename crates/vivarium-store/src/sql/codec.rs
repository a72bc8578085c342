//! Records to and from columns: enums as their wire names, JSON as text, booleans as 0/1.

use serde::Serialize;
use serde::de::DeserializeOwned;
use sqlx::any::AnyRow;
use sqlx::{Any, Decode, Row, Type};

use crate::error::StoreError;

/// A column of `row`, decoded; a type mismatch is a backend failure naming the column.
pub(super) fn column<T>(row: &AnyRow, name: &str) -> Result<T, StoreError>
where
    T: for<'r> Decode<'r, Any> + Type<Any>,
{
    row.try_get(name)
        .map_err(|err| StoreError::Backend(format!("reading column {name}: {err}")))
}

/// A 0/1 column as a boolean.
pub(super) fn flag(row: &AnyRow, name: &str) -> Result<bool, StoreError> {
    Ok(column::<i64>(row, name)? != 0)
}

/// A boolean as the 0/1 stored for it.
pub(super) fn flag_value(value: bool) -> i64 {
    i64::from(value)
}

/// A `COUNT(*)` column as an unsigned count.
pub(super) fn count(row: &AnyRow) -> Result<u64, StoreError> {
    let n: i64 = column(row, "n")?;
    u64::try_from(n).map_err(|_| StoreError::Backend(format!("negative count {n}")))
}

/// A value's serde wire name (such as `"GET"` for a verb), which is what the database keeps,
/// so stored rows read like the API.
pub(super) fn wire_name<T: Serialize>(value: &T) -> Result<String, StoreError> {
    serde_plain::to_string(value)
        .map_err(|err| StoreError::Backend(format!("encoding a wire name: {err}")))
}

/// The value whose serde wire name is `name`.
pub(super) fn from_wire_name<T: DeserializeOwned>(name: String) -> Result<T, StoreError> {
    serde_plain::from_str(&name)
        .map_err(|err| StoreError::Backend(format!("unknown stored value {name:?}: {err}")))
}

/// A value as JSON text.
pub(super) fn to_json<T: Serialize>(value: &T) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(|err| StoreError::Backend(format!("encoding JSON: {err}")))
}

/// A JSON text column, parsed.
pub(super) fn json_column<T: DeserializeOwned>(row: &AnyRow, name: &str) -> Result<T, StoreError> {
    let text: String = column(row, name)?;
    serde_json::from_str(&text)
        .map_err(|err| StoreError::Backend(format!("column {name} holds bad JSON: {err}")))
}
