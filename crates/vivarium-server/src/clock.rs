//! The service's clock: every stored timestamp is microseconds since the Unix epoch, as
//! OpenObserve's API reports them.

use std::time::{SystemTime, UNIX_EPOCH};

/// Microseconds since the Unix epoch, the unit of every stored timestamp.
pub fn now_micros() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}
