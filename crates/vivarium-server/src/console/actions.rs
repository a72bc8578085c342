//! The action pages: the list, the add and edit form, an action with its test run and
//! history, and one run with its logs (streamed while it is in flight).

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, Uri};
use serde::Deserialize;
use vivarium_auth::Verb;
use vivarium_store::{ExecutionKind, Page, RunFilter, RunOutcome, Trigger};

use super::page::{Chrome, PageResult, Section, Shows, Viewer, bytes, render};
use crate::error::ApiError;
use crate::live::LiveRunInfo;
use crate::routes::Shared;
use crate::routes::actions::{ActionDetails, ActionSummary};
use crate::routes::triggers::{RunDetails, RunSummary};

/// Actions a page of the list shows.
const ACTIONS_PER_PAGE: usize = 20;
/// Runs a page of the history shows.
const RUNS_PER_PAGE: u32 = 20;

/// Records the test-run editor starts with: log records as the Logs page sends them.
const SAMPLE_RECORDS: &str = r#"[
  {
    "_timestamp": 1717000000000000,
    "kubernetes_namespace_name": "ziox",
    "kubernetes_pod_name": "ziox-ingester-0",
    "kubernetes_container_name": "ziox",
    "log": "info: flushed 120 records to storage"
  },
  {
    "_timestamp": 1717000001000000,
    "kubernetes_namespace_name": "ziox",
    "kubernetes_pod_name": "ziox-querier-1",
    "kubernetes_container_name": "ziox",
    "log": "warn: slow query took 2.3s"
  }
]"#;

/// Search, sort and paging of the list: `?q=&sort=name&dir=asc&page=1`.
#[derive(Debug, Default, Deserialize)]
pub(super) struct ListQuery {
    #[serde(default)]
    q: String,
    #[serde(default)]
    sort: Option<String>,
    #[serde(default)]
    dir: Option<String>,
    #[serde(default)]
    page: Option<usize>,
}

/// The columns the list sorts by.
const SORTS: &[(&str, &str)] = &[
    ("name", "Name"),
    ("created_by", "Created by"),
    ("created_at", "Created at"),
    ("execution", "Type"),
    ("last_run_at", "Last run"),
    ("last_successful_at", "Last success"),
    ("status", "Status"),
    ("next_run_at", "Next run"),
];

#[derive(Template)]
#[template(path = "actions.html")]
struct ActionsPage {
    chrome: Chrome,
    actions: Vec<ActionSummary>,
    q: String,
    sort: String,
    descending: bool,
    page: usize,
    pages: usize,
    total: usize,
}

impl Shows for ActionsPage {}

impl ActionsPage {
    fn sorts(&self) -> &'static [(&'static str, &'static str)] {
        SORTS
    }

    /// The list's link with `sort` and `page` changed, the search kept.
    fn link(&self, sort: &str, descending: &bool, page: usize) -> String {
        let dir = if *descending { "desc" } else { "asc" };
        format!(
            "?q={}&sort={sort}&dir={dir}&page={page}",
            super::page::encode(&self.q)
        )
    }

    /// The header link of column `sort`: flips the direction when it is the current one.
    fn sort_link(&self, sort: &str) -> String {
        let descending = self.sort == sort && !self.descending;
        self.link(sort, &descending, 1)
    }

    /// `aria-sort` of a column header.
    fn aria_sort(&self, sort: &str) -> &'static str {
        match (self.sort == sort, self.descending) {
            (false, _) => "none",
            (true, false) => "ascending",
            (true, true) => "descending",
        }
    }
}

/// `GET /console/orgs/{org}/actions`.
pub(super) async fn list(
    State(state): State<Shared>,
    Path(org): Path<String>,
    headers: HeaderMap,
    uri: Uri,
    Query(query): Query<ListQuery>,
) -> PageResult {
    let viewer = Viewer::of(&state, &headers, &uri, &org).await?;
    viewer
        .require_on_actions(&state, Verb::List, "list the actions of this organization")
        .await?;
    let stored = state.meta.list_actions(&org).await?;
    let needle = query.q.trim().to_lowercase();
    let mut actions: Vec<ActionSummary> = stored
        .iter()
        .filter(|a| {
            needle.is_empty()
                || a.name.to_lowercase().contains(&needle)
                || a.description.to_lowercase().contains(&needle)
        })
        .map(ActionSummary::of)
        .collect();
    let sort = query
        .sort
        .filter(|s| SORTS.iter().any(|(key, _)| key == s))
        .unwrap_or_else(|| "name".to_string());
    let descending = query.dir.as_deref() == Some("desc");
    sort_actions(&mut actions, &sort, descending);
    let total = actions.len();
    let pages = total.div_ceil(ACTIONS_PER_PAGE).max(1);
    let page = query.page.unwrap_or(1).clamp(1, pages);
    let actions = actions
        .into_iter()
        .skip((page - 1) * ACTIONS_PER_PAGE)
        .take(ACTIONS_PER_PAGE)
        .collect();
    Ok(render(&ActionsPage {
        chrome: viewer.chrome(Section::Actions),
        actions,
        q: query.q,
        sort,
        descending,
        page,
        pages,
        total,
    }))
}

fn sort_actions(actions: &mut [ActionSummary], sort: &str, descending: bool) {
    actions.sort_by(|a, b| {
        let order = match sort {
            "created_by" => a.created_by.cmp(&b.created_by),
            "created_at" => a.created_at.cmp(&b.created_at),
            "execution" => a
                .execution_details_type
                .to_string()
                .cmp(&b.execution_details_type.to_string()),
            "last_run_at" => a.last_run_at.cmp(&b.last_run_at),
            "last_successful_at" => a.last_successful_at.cmp(&b.last_successful_at),
            "status" => a.status.to_string().cmp(&b.status.to_string()),
            "next_run_at" => a.next_run_at.cmp(&b.next_run_at),
            _ => a.name.to_lowercase().cmp(&b.name.to_lowercase()),
        };
        let order = order.then_with(|| a.name.cmp(&b.name));
        if descending { order.reverse() } else { order }
    });
}

#[derive(Template)]
#[template(path = "action_form.html")]
struct ActionForm {
    chrome: Chrome,
    action: Option<ActionDetails>,
    accounts: Vec<String>,
    max_name_chars: usize,
    limits: Limits,
}

impl ActionForm {
    fn kind_is(&self, kind: &str) -> bool {
        let current = self
            .action
            .as_ref()
            .map_or(ExecutionKind::Service, |a| a.execution_details);
        current.to_string() == kind
    }

    fn cron(&self) -> String {
        self.action
            .as_ref()
            .and_then(|a| a.cron_expr.clone())
            .unwrap_or_default()
    }

    fn env_rows(&self) -> Vec<(String, String)> {
        self.action
            .as_ref()
            .map(|a| a.environment_variables.clone().into_iter().collect())
            .unwrap_or_default()
    }

    fn hosts(&self) -> String {
        self.action
            .as_ref()
            .map(|a| a.allowed_hosts.join("\n"))
            .unwrap_or_default()
    }

    fn chosen_account(&self) -> String {
        self.action
            .as_ref()
            .map(|a| a.service_account.clone())
            .unwrap_or_default()
    }
}

/// The per-run limits of this service, shown with every action.
struct Limits {
    fuel: u64,
    memory: String,
    timeout: String,
    logs: String,
}

impl Limits {
    fn of(state: &Shared) -> Self {
        let config = &state.config;
        Self {
            fuel: config.run_fuel,
            memory: bytes(i64::try_from(config.run_memory_bytes).unwrap_or(i64::MAX)),
            timeout: humantime::format_duration(config.run_timeout).to_string(),
            logs: bytes(i64::try_from(config.run_log_bytes).unwrap_or(i64::MAX)),
        }
    }
}

/// The service accounts the form offers, when the viewer may see them (administrators);
/// others type the email.
async fn account_choices(state: &Shared, viewer: &Viewer) -> Vec<String> {
    if !viewer.caller.is_admin() {
        return Vec::new();
    }
    match state.meta.list_service_accounts(&viewer.org).await {
        Ok(accounts) => accounts.into_iter().map(|a| a.email).collect(),
        Err(error) => {
            tracing::warn!(%error, "listing service accounts for the action form");
            Vec::new()
        }
    }
}

/// `GET /console/orgs/{org}/actions/new`.
pub(super) async fn new_form(
    State(state): State<Shared>,
    Path(org): Path<String>,
    headers: HeaderMap,
    uri: Uri,
) -> PageResult {
    let viewer = Viewer::of(&state, &headers, &uri, &org).await?;
    viewer
        .require_on_actions(&state, Verb::Post, "create actions in this organization")
        .await?;
    Ok(render(&ActionForm {
        accounts: account_choices(&state, &viewer).await,
        chrome: viewer.chrome(Section::Actions),
        action: None,
        max_name_chars: crate::validate::MAX_NAME_CHARS,
        limits: Limits::of(&state),
    }))
}

/// `GET /console/orgs/{org}/actions/{id}/edit`.
pub(super) async fn edit_form(
    State(state): State<Shared>,
    Path((org, id)): Path<(String, String)>,
    headers: HeaderMap,
    uri: Uri,
) -> PageResult {
    let viewer = Viewer::of(&state, &headers, &uri, &org).await?;
    let action = viewer
        .action(&state, Verb::Put, &id, "change this action")
        .await?;
    Ok(render(&ActionForm {
        accounts: account_choices(&state, &viewer).await,
        chrome: viewer.chrome(Section::Actions),
        action: Some(ActionDetails::of(&action)),
        max_name_chars: crate::validate::MAX_NAME_CHARS,
        limits: Limits::of(&state),
    }))
}

/// The history's filters and page: `?outcome=&trigger=&page=`.
#[derive(Debug, Default, Deserialize)]
pub(super) struct HistoryQuery {
    #[serde(default)]
    outcome: Option<String>,
    #[serde(default)]
    trigger: Option<String>,
    #[serde(default)]
    page: Option<u32>,
}

#[derive(Template)]
#[template(path = "action.html")]
struct ActionPage {
    chrome: Chrome,
    action: ActionDetails,
    secrets: Vec<String>,
    in_flight: Vec<LiveRunInfo>,
    runs: Vec<RunSummary>,
    outcome: String,
    trigger: String,
    outcomes: Vec<String>,
    triggers: Vec<String>,
    page: u32,
    pages: u32,
    total: u64,
    sample: &'static str,
    limits: Limits,
}

impl Shows for ActionPage {}

impl ActionPage {
    fn scheduled(&self) -> bool {
        self.action.execution_details != ExecutionKind::Service
    }

    /// The history's link for `page`, the filters kept.
    fn page_link(&self, page: u32) -> String {
        format!(
            "?outcome={}&trigger={}&page={page}#history",
            super::page::encode(&self.outcome),
            super::page::encode(&self.trigger)
        )
    }
}

/// `GET /console/orgs/{org}/actions/{id}`.
pub(super) async fn show(
    State(state): State<Shared>,
    Path((org, id)): Path<(String, String)>,
    headers: HeaderMap,
    uri: Uri,
    Query(query): Query<HistoryQuery>,
) -> PageResult {
    let viewer = Viewer::of(&state, &headers, &uri, &org).await?;
    let action = viewer
        .action(&state, Verb::Get, &id, "see this action")
        .await?;
    let filter = RunFilter {
        outcome: parse_choice::<RunOutcome>(query.outcome.as_deref(), "outcome")?,
        trigger: parse_choice::<Trigger>(query.trigger.as_deref(), "trigger")?,
    };
    let page = query.page.unwrap_or(1).max(1);
    let window = Page {
        offset: (page - 1).saturating_mul(RUNS_PER_PAGE),
        limit: RUNS_PER_PAGE,
    };
    let meta = state.meta.as_ref();
    let (runs, total) = meta.list_runs(&org, &id, filter, window).await?;
    let secrets = meta
        .list_secrets(&org, &id)
        .await?
        .into_iter()
        .map(|secret| secret.name)
        .collect();
    let pages = u32::try_from(total.div_ceil(u64::from(RUNS_PER_PAGE)))
        .unwrap_or(u32::MAX)
        .max(1);
    Ok(render(&ActionPage {
        chrome: viewer.chrome(Section::Actions),
        in_flight: state.executor.live().in_flight(&org, &id),
        action: ActionDetails::of(&action),
        secrets,
        runs: runs.into_iter().map(RunSummary::of).collect(),
        outcome: query.outcome.unwrap_or_default(),
        trigger: query.trigger.unwrap_or_default(),
        outcomes: RunOutcome::all().map(|o| o.to_string()).collect(),
        triggers: TRIGGERS.iter().map(ToString::to_string).collect(),
        page,
        pages,
        total,
        sample: SAMPLE_RECORDS,
        limits: Limits::of(&state),
    }))
}

/// Every trigger, for the history's filter.
const TRIGGERS: [Trigger; 5] = [
    Trigger::Manual,
    Trigger::Alert,
    Trigger::Logs,
    Trigger::Schedule,
    Trigger::Webhook,
];

/// A filter's choice read by its wire name; empty means any, an unknown one is a 400 that
/// names the field.
fn parse_choice<T: std::str::FromStr>(
    value: Option<&str>,
    field: &'static str,
) -> Result<Option<T>, ApiError> {
    match value.filter(|v| !v.is_empty()) {
        None => Ok(None),
        Some(text) => text.parse().map(Some).map_err(|_| {
            ApiError::bad_request(format!(
                "there is no {field} {text:?}; pick one from the list"
            ))
        }),
    }
}

#[derive(Template)]
#[template(path = "run.html")]
struct RunPage {
    chrome: Chrome,
    action: ActionDetails,
    run_id: String,
    run: Option<RunDetails>,
    live: Option<LiveRunInfo>,
    logs_url: String,
}

impl Shows for RunPage {}

/// `GET /console/orgs/{org}/actions/{id}/runs/{run_id}`: the run as recorded, or, while it
/// is in flight, a page that streams its lines and shows the record when it ends.
pub(super) async fn run(
    State(state): State<Shared>,
    Path((org, id, run_id)): Path<(String, String, String)>,
    headers: HeaderMap,
    uri: Uri,
) -> PageResult {
    let viewer = Viewer::of(&state, &headers, &uri, &org).await?;
    let action = viewer
        .action(&state, Verb::Get, &id, "see the runs of this action")
        .await?;
    let live = state
        .executor
        .live()
        .in_flight(&org, &id)
        .into_iter()
        .find(|info| info.id == run_id);
    let run = match live {
        Some(_) => None,
        None => Some(
            state
                .meta
                .get_run(&org, &id, &run_id)
                .await?
                .map(RunDetails::of)
                .ok_or_else(|| ApiError::not_found(format!("run {run_id}")))?,
        ),
    };
    Ok(render(&RunPage {
        chrome: viewer.chrome(Section::Actions),
        logs_url: format!("/api/{org}/actions/{id}/runs/{run_id}/logs"),
        action: ActionDetails::of(&action),
        run_id,
        run,
        live,
    }))
}
