//! The checks the action form asks as the user types: the rules of an action name, and the
//! next firings of a cron expression. Both answer with the very functions uploads are
//! checked with, so the form shows what the API will say.

use axum::Json;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, Uri};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

use super::page::{PageError, signed_in, when};
use crate::clock::now_micros;
use crate::routes::Shared;
use crate::scheduler::Schedule;
use crate::validate;

/// Firings a cron preview lists.
const PREVIEWED_FIRINGS: usize = 5;

/// The value to check.
#[derive(Debug, Deserialize)]
pub(super) struct Checked {
    #[serde(default)]
    value: String,
}

/// What a check answers: whether the value passes, why not, and for a cron expression its
/// next firings in UTC.
#[derive(Debug, Serialize, PartialEq)]
pub(super) struct Verdict {
    ok: bool,
    message: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    firings: Vec<String>,
}

/// `GET /console/check/name?value=...`: the action-name rules.
pub(super) async fn name(
    State(state): State<Shared>,
    headers: HeaderMap,
    uri: Uri,
    Query(query): Query<Checked>,
) -> Response {
    answer(&state, &headers, &uri, || name_verdict(&query.value)).await
}

/// `GET /console/check/cron?value=...`: whether the expression parses, and its next firings.
pub(super) async fn cron(
    State(state): State<Shared>,
    headers: HeaderMap,
    uri: Uri,
    Query(query): Query<Checked>,
) -> Response {
    answer(&state, &headers, &uri, || {
        cron_verdict(&query.value, now_micros())
    })
    .await
}

/// The verdict for a signed-in user; 401 for anyone else.
async fn answer(
    state: &Shared,
    headers: &HeaderMap,
    uri: &Uri,
    verdict: impl FnOnce() -> Verdict,
) -> Response {
    match signed_in(state, headers, uri).await {
        Ok(_) => Json(verdict()).into_response(),
        Err(PageError::SignIn { .. }) => crate::ApiError::unauthenticated().into_response(),
        Err(other) => other.into_response(),
    }
}

fn name_verdict(name: &str) -> Verdict {
    match validate::action_name(name) {
        Ok(()) => Verdict {
            ok: true,
            message: None,
            firings: Vec::new(),
        },
        Err(invalid) => Verdict {
            ok: false,
            message: Some(invalid.message),
            firings: Vec::new(),
        },
    }
}

fn cron_verdict(expression: &str, now: i64) -> Verdict {
    let schedule = match Schedule::parse(expression) {
        Ok(schedule) => schedule,
        Err(message) => {
            return Verdict {
                ok: false,
                message: Some(message),
                firings: Vec::new(),
            };
        }
    };
    let mut firings = Vec::new();
    let mut after = now;
    while firings.len() < PREVIEWED_FIRINGS {
        let Some(next) = schedule.next_after(after) else {
            break;
        };
        firings.push(when(next));
        after = next;
    }
    let message = firings
        .is_empty()
        .then(|| "This expression never fires.".to_string());
    Verdict {
        ok: !firings.is_empty(),
        message,
        firings,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_name_is_judged_by_the_upload_rules() {
        assert!(name_verdict("uppercase_distinct").ok);
        let refused = name_verdict("has space");
        assert!(!refused.ok);
        assert!(refused.message.unwrap().contains("spaces"));
    }

    #[test]
    fn a_cron_preview_lists_the_next_firings_in_utc() {
        let midnight = 1_767_225_600_000_000;
        let verdict = cron_verdict("0 */6 * * *", midnight);
        assert!(verdict.ok);
        assert_eq!(
            verdict.firings,
            [
                "2026-01-01 06:00:00 UTC",
                "2026-01-01 12:00:00 UTC",
                "2026-01-01 18:00:00 UTC",
                "2026-01-02 00:00:00 UTC",
                "2026-01-02 06:00:00 UTC"
            ]
        );
        let broken = cron_verdict("every day", midnight);
        assert!(!broken.ok);
        assert!(broken.message.unwrap().contains("Invalid cron expression"));
    }
}
