//! The dashboard: an organization's runs per minute by outcome and their p50 and p99
//! durations over the last hour and day, the actions failing most, and how many runs were in
//! flight, drawn from the run history.

use std::collections::{BTreeMap, HashMap};

use askama::Template;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Uri};
use vivarium_auth::Verb;
use vivarium_sandbox::OutcomeKind;
use vivarium_store::{RunOutcome, RunPoint};

use super::charts::{Drawn, LineChart, Series, bars};
use super::page::{Chrome, PageResult, Section, Viewer, render};
use crate::clock::now_micros;
use crate::routes::Shared;

const MINUTE: i64 = 60 * 1_000_000;
const HOUR: i64 = 60 * MINUTE;
const DAY: i64 = 24 * HOUR;
/// Runs the dashboard reads at most (the newest of the last day).
const MAX_POINTS: u32 = 100_000;
/// Actions the failing chart names.
const FAILING_SHOWN: usize = 8;

/// One chart of the page, with the text that stands for it.
struct Chart {
    image: Drawn,
    alt: String,
}

#[derive(Template)]
#[template(path = "dashboard.html")]
struct DashboardPage {
    chrome: Chrome,
    charts: Vec<Chart>,
    runs_last_hour: usize,
    runs_last_day: usize,
    in_flight_now: usize,
    truncated: bool,
}

/// `GET /console/orgs/{org}/dashboard` (LIST on action scripts, as the list needs).
pub(super) async fn page(
    State(state): State<Shared>,
    Path(org): Path<String>,
    headers: HeaderMap,
    uri: Uri,
) -> PageResult {
    let viewer = Viewer::of(&state, &headers, &uri, &org).await?;
    viewer
        .require_on_actions(
            &state,
            Verb::List,
            "see this organization's dashboard (it needs LIST on action scripts)",
        )
        .await?;
    let now = now_micros();
    let points = state.meta.run_points(&org, now - DAY, MAX_POINTS).await?;
    let names: HashMap<String, String> = state
        .meta
        .list_actions(&org)
        .await?
        .into_iter()
        .map(|a| (a.id, a.name))
        .collect();
    let in_flight_now = state.executor.live().in_flight_in_org(&org);
    let last_hour: Vec<&RunPoint> = points
        .iter()
        .filter(|p| p.started_at >= now - HOUR)
        .collect();
    let all: Vec<&RunPoint> = points.iter().collect();
    let charts = vec![
        rate_chart(
            "Runs per minute by outcome, last hour",
            &last_hour,
            now,
            Window::HOUR,
        ),
        duration_chart(
            "Duration p50 and p99, last hour",
            &last_hour,
            now,
            Window::HOUR,
        ),
        rate_chart(
            "Runs per minute by outcome, last day",
            &all,
            now,
            Window::DAY,
        ),
        duration_chart("Duration p50 and p99, last day", &all, now, Window::DAY),
        failing_chart(&all, &names),
        in_flight_chart(&last_hour, now, in_flight_now),
    ];
    Ok(render(&DashboardPage {
        chrome: viewer.chrome(Section::Dashboard),
        charts,
        runs_last_hour: last_hour.len(),
        runs_last_day: points.len(),
        in_flight_now,
        truncated: points.len() >= MAX_POINTS as usize,
    }))
}

/// A span of time cut into buckets, the x axis counting back from now in `unit`s.
#[derive(Clone, Copy)]
struct Window {
    span: i64,
    bucket: i64,
    /// The wider bucket percentiles are taken over (a divisor of `span`).
    duration_bucket: i64,
    unit: i64,
    unit_name: &'static str,
}

impl Window {
    const HOUR: Self = Self {
        span: HOUR,
        bucket: MINUTE,
        duration_bucket: 5 * MINUTE,
        unit: MINUTE,
        unit_name: "min",
    };
    const DAY: Self = Self {
        span: DAY,
        bucket: 15 * MINUTE,
        duration_bucket: HOUR,
        unit: HOUR,
        unit_name: "h",
    };

    fn buckets(&self) -> usize {
        usize::try_from(self.span / self.bucket).unwrap_or(0)
    }

    /// The bucket of a run that started at `at`, if it falls in the window.
    fn bucket_of(&self, at: i64, now: i64) -> Option<usize> {
        let age = now - at;
        if !(0..self.span).contains(&age) {
            return None;
        }
        let from_start = self.span - 1 - age;
        usize::try_from(from_start / self.bucket).ok()
    }

    /// Where bucket `index` sits on the x axis (its end, in units before now).
    fn x_of(&self, index: usize) -> f64 {
        let end = (index as i64 + 1) * self.bucket - self.span;
        end as f64 / self.unit as f64
    }

    fn range(&self) -> (f64, f64) {
        (-(self.span as f64) / self.unit as f64, 0.0)
    }

    fn label(&self) -> impl Fn(&f64) -> String + '_ {
        move |x| {
            if *x >= 0.0 {
                "now".to_string()
            } else {
                format!("{:.0} {} ago", -x, self.unit_name)
            }
        }
    }
}

fn rate_chart(title: &str, points: &[&RunPoint], now: i64, window: Window) -> Chart {
    let mut counts: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    let minutes_per_bucket = window.bucket as f64 / MINUTE as f64;
    for point in points {
        if let Some(index) = window.bucket_of(point.started_at, now) {
            let row = counts
                .entry(point.outcome.to_string())
                .or_insert_with(|| vec![0.0; window.buckets()]);
            row[index] += 1.0 / minutes_per_bucket;
        }
    }
    let series = counts
        .into_iter()
        .map(|(name, rates)| Series {
            name,
            points: rates
                .into_iter()
                .enumerate()
                .map(|(i, r)| (window.x_of(i), r))
                .collect(),
        })
        .collect::<Vec<_>>();
    let alt = format!("{title}: {} runs", points.len());
    let label = window.label();
    let chart = LineChart {
        title,
        y_label: "runs per minute",
        x_range: window.range(),
        x_label: &label,
        series,
    };
    Chart {
        image: chart.draw(),
        alt,
    }
}

fn duration_chart(title: &str, points: &[&RunPoint], now: i64, window: Window) -> Chart {
    let coarse = Window {
        bucket: window.duration_bucket,
        ..window
    };
    let mut durations = vec![Vec::new(); coarse.buckets()];
    for point in points {
        if let Some(index) = coarse.bucket_of(point.started_at, now) {
            durations[index].push(point.duration_ms);
        }
    }
    let mut p50 = Vec::new();
    let mut p99 = Vec::new();
    for (index, bucket) in durations.iter_mut().enumerate() {
        if let (Some(median), Some(tail)) = (percentile(bucket, 0.50), percentile(bucket, 0.99)) {
            p50.push((coarse.x_of(index), median));
            p99.push((coarse.x_of(index), tail));
        }
    }
    let overall = percentile(
        &mut points.iter().map(|p| p.duration_ms).collect::<Vec<_>>(),
        0.99,
    );
    let alt = match overall {
        Some(tail) => format!("{title}: p99 {tail:.1} ms over {} runs", points.len()),
        None => format!("{title}: no runs"),
    };
    let label = coarse.label();
    let chart = LineChart {
        title,
        y_label: "milliseconds",
        x_range: coarse.range(),
        x_label: &label,
        series: vec![
            Series {
                name: "p50".into(),
                points: p50,
            },
            Series {
                name: "p99".into(),
                points: p99,
            },
        ],
    };
    Chart {
        image: chart.draw(),
        alt,
    }
}

/// The `q` quantile of `values` (nearest rank), `None` when there are none.
fn percentile(values: &mut [f64], q: f64) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    values.sort_by(f64::total_cmp);
    let rank = ((q * values.len() as f64).ceil() as usize).clamp(1, values.len());
    Some(values[rank - 1])
}

fn failing_chart(points: &[&RunPoint], names: &HashMap<String, String>) -> Chart {
    let mut failures: HashMap<&str, usize> = HashMap::new();
    for point in points
        .iter()
        .filter(|p| p.outcome != RunOutcome::Ran(OutcomeKind::Ok))
    {
        *failures.entry(point.action_id.as_str()).or_default() += 1;
    }
    let mut ranked: Vec<(String, f64)> = failures
        .into_iter()
        .map(|(id, count)| {
            let name = names
                .get(id)
                .cloned()
                .unwrap_or_else(|| format!("{id} (deleted)"));
            (name, count as f64)
        })
        .collect();
    ranked.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    ranked.truncate(FAILING_SHOWN);
    let alt = if ranked.is_empty() {
        "No action failed in the last day".to_string()
    } else {
        let named: Vec<String> = ranked.iter().map(|(n, c)| format!("{n} ({c})")).collect();
        format!("Actions failing most in the last day: {}", named.join(", "))
    };
    Chart {
        image: bars("Actions failing most, last day", "failed runs", &ranked),
        alt,
    }
}

/// Runs in flight (running or waiting for a slot) in each minute of the last hour, from the
/// records' start and duration, ending at the count in flight now.
fn in_flight_chart(points: &[&RunPoint], now: i64, in_flight_now: usize) -> Chart {
    let window = Window::HOUR;
    let mut busy = vec![0.0; window.buckets()];
    for point in points {
        let end = point.started_at + (point.duration_ms * 1000.0) as i64;
        let first = window.bucket_of(point.started_at, now);
        let last = window.bucket_of(end.min(now - 1), now);
        if let (Some(first), Some(last)) = (first, last) {
            for slot in &mut busy[first..=last] {
                *slot += 1.0;
            }
        }
    }
    let mut series: Vec<(f64, f64)> = busy
        .into_iter()
        .enumerate()
        .map(|(i, n)| (window.x_of(i), n))
        .collect();
    series.push((0.0, in_flight_now as f64));
    let label = window.label();
    let chart = LineChart {
        title: "Runs in flight per minute, last hour",
        y_label: "runs",
        x_range: window.range(),
        x_label: &label,
        series: vec![Series {
            name: "in flight".into(),
            points: series,
        }],
    };
    Chart {
        image: chart.draw(),
        alt: format!("Runs in flight per minute over the last hour; {in_flight_now} now"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_take_the_nearest_rank() {
        let mut values: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&mut values, 0.5), Some(50.0));
        assert_eq!(percentile(&mut values, 0.99), Some(99.0));
        assert_eq!(percentile(&mut [], 0.5), None);
    }

    #[test]
    fn runs_fall_in_the_bucket_of_their_start() {
        let now = 10 * HOUR;
        let window = Window::HOUR;
        assert_eq!(window.bucket_of(now, now), Some(59));
        assert_eq!(window.bucket_of(now - MINUTE / 2, now), Some(59));
        assert_eq!(window.bucket_of(now - HOUR + 1, now), Some(0));
        assert_eq!(window.bucket_of(now - HOUR, now), None);
        assert_eq!(window.bucket_of(now + 1, now), None);
        assert_eq!(window.x_of(59), 0.0);
    }

    #[test]
    fn every_chart_draws_with_runs_and_without() {
        let now = 10 * DAY;
        let points: Vec<RunPoint> = (0..50)
            .map(|i| RunPoint {
                action_id: "a".into(),
                started_at: now - i * 7 * MINUTE,
                duration_ms: 1.5 + i as f64,
                outcome: if i % 3 == 0 {
                    OutcomeKind::Timeout.into()
                } else {
                    OutcomeKind::Ok.into()
                },
            })
            .collect();
        for points in [points.iter().collect::<Vec<_>>(), Vec::new()] {
            let hour: Vec<&RunPoint> = points
                .iter()
                .copied()
                .filter(|p| p.started_at >= now - HOUR)
                .collect();
            for chart in [
                rate_chart("rate", &hour, now, Window::HOUR),
                duration_chart("p", &hour, now, Window::HOUR),
                rate_chart("rate", &points, now, Window::DAY),
                duration_chart("p", &points, now, Window::DAY),
                failing_chart(&points, &HashMap::new()),
                in_flight_chart(&hour, now, 2),
            ] {
                assert!(chart.image.is_ok(), "{}: {:?}", chart.alt, chart.image);
            }
        }
    }

    #[test]
    fn the_failing_chart_ranks_actions_by_their_failures() {
        let point = |id: &str, kind: OutcomeKind| RunPoint {
            action_id: id.into(),
            started_at: 0,
            duration_ms: 1.0,
            outcome: kind.into(),
        };
        let points = [
            point("a", OutcomeKind::ScriptError),
            point("b", OutcomeKind::Timeout),
            point("b", OutcomeKind::ScriptError),
            point("c", OutcomeKind::Ok),
        ];
        let refs: Vec<&RunPoint> = points.iter().collect();
        let names = HashMap::from([("a".to_string(), "alpha".to_string())]);
        let chart = failing_chart(&refs, &names);
        assert_eq!(
            chart.alt,
            "Actions failing most in the last day: b (deleted) (2), alpha (1)"
        );
        assert!(chart.image.is_ok());
    }
}
