//! The cron schedules of Vivarium's scheduled actions (`once` and `repeat`): an expression
//! checked once, in UTC, and the firing that follows a moment. A crate of its own, apart from
//! the service, so that the fuzz targets reach the parser without building the service.

#![warn(missing_docs)]

use chrono::{DateTime, Utc};
use croner::Cron;

/// A cron expression that was checked: five fields (minute to weekday) or six (with seconds).
#[derive(Debug, Clone)]
pub struct Schedule(Cron);

impl Schedule {
    /// Parses `expression`, refusing a blank one with the message OpenObserve users need.
    pub fn parse(expression: &str) -> Result<Self, String> {
        let expression = expression.trim();
        if expression.is_empty() {
            return Err(
                "Cron expression is required for scheduled actions (once or repeat)".into(),
            );
        }
        check_time_fields(expression)?;
        check_lists(expression)?;
        Cron::new(expression)
            .with_seconds_optional()
            .parse()
            .map(Schedule)
            .map_err(|e| format!("Invalid cron expression {expression:?}: {e}"))
    }

    /// The first firing strictly after `after_micros`, in microseconds; `None` if it never fires.
    pub fn next_after(&self, after_micros: i64) -> Option<i64> {
        let after = DateTime::<Utc>::from_timestamp_micros(after_micros)?;
        self.0
            .find_next_occurrence(&after, false)
            .ok()
            .map(|next| next.timestamp_micros())
    }
}

/// Refuses letters (`L`, `W`, names) in the second, minute and hour fields. croner accepts
/// `L` there, as a "last" that never matches, and then searches years for a firing: seconds
/// of CPU for each look (found by the `cron` fuzz target with `1 L * * * *`).
fn check_time_fields(expression: &str) -> Result<(), String> {
    if expression.starts_with('@') {
        return Ok(());
    }
    let fields: Vec<&str> = expression.split_whitespace().collect();
    let time_fields = match fields.len() {
        6 => &fields[..3],
        5 => &fields[..2],
        _ => return Ok(()),
    };
    let plain = |field: &&str| {
        field
            .chars()
            .all(|c| c.is_ascii_digit() || matches!(c, '*' | ',' | '-' | '/'))
    };
    match time_fields.iter().find(|field| !plain(field)) {
        None => Ok(()),
        Some(field) => Err(format!(
            "Invalid cron expression {expression:?}: {field:?} is not a second, minute or hour \
             field (digits, *, ranges a-b, lists a,b and steps */n only)"
        )),
    }
}

/// Refuses a list with an empty item (`1,,2`, `,5`, `,,`). croner reads one as a field that
/// never matches, and then searches years for a firing: half a minute of CPU for each look at
/// `,, * 2 ,, * 2` (found by the `cron` fuzz target).
fn check_lists(expression: &str) -> Result<(), String> {
    match expression
        .split_whitespace()
        .find(|field| field.contains(',') && field.split(',').any(str::is_empty))
    {
        None => Ok(()),
        Some(field) => Err(format!(
            "Invalid cron expression {expression:?}: the list {field:?} has an empty item; \
             separate values with single commas, as in 1,15,30"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Asserts that every one of `expressions` is refused with `reason` in its message.
    fn assert_refused(expressions: &[&str], reason: &str) {
        for expression in expressions {
            let refused = Schedule::parse(expression).unwrap_err();
            assert!(refused.contains(reason), "{expression}: {refused}");
        }
    }

    #[test]
    fn lists_with_empty_items_are_refused_in_every_field() {
        assert_refused(
            &[",, * 2 ,, * 2", "0 0 ,, * *", "0 1, * * *", "0 0 * * ,1"],
            "has an empty item",
        );
        assert!(Schedule::parse("0,30 0 * * 1,5").is_ok());
    }

    #[test]
    fn blank_and_invalid_expressions_are_refused_with_reasons() {
        assert!(Schedule::parse("  ").unwrap_err().contains("required"));
        assert!(
            Schedule::parse("not a cron")
                .unwrap_err()
                .contains("Invalid cron expression")
        );
    }

    #[test]
    fn five_and_six_field_expressions_give_the_next_firing() {
        let start = DateTime::parse_from_rfc3339("2026-01-01T00:00:30Z")
            .unwrap()
            .timestamp_micros();
        let every_minute = Schedule::parse("* * * * *").unwrap();
        let next = every_minute.next_after(start).unwrap();
        assert_eq!(next - start, 30_000_000);
        let every_ten_seconds = Schedule::parse("*/10 * * * * *").unwrap();
        assert_eq!(
            every_ten_seconds.next_after(start).unwrap() - start,
            10_000_000
        );
    }

    #[test]
    fn letters_in_the_time_fields_are_refused_before_croner_searches_for_years() {
        assert_refused(
            &["1 L * * * *", "0 L * * *", "L * * * *", " 1 L * 2 * 2"],
            "is not a second, minute or hour field",
        );
        for fine in ["0 0 L * *", "0 9 * * MON-FRI", "*/15 1-5,7 * * *", "@daily"] {
            assert!(Schedule::parse(fine).is_ok(), "{fine}");
        }
    }
}
