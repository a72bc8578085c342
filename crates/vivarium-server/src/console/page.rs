//! What every console page shares: who is looking (from the session cookie), the frame
//! around the content (navigation, organization switcher, CSRF token), rendering, and the
//! pages shown instead when the viewer is not signed in or not allowed.

use askama::Template;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{Html, IntoResponse, Redirect, Response};
use chrono::DateTime;
use vivarium_auth::Verb;

use crate::error::ApiError;
use crate::identity::Caller;
use crate::routes::Shared;
use crate::sessions::Session;

/// A signed-in viewer of one organization's pages.
pub(super) struct Viewer {
    /// Their session.
    pub session: Session,
    /// Who they are in the organization (admin, member or root), as the API sees them.
    pub caller: Caller,
    /// The organization the page is about.
    pub org: String,
    /// The organizations they may switch to.
    pub orgs: Vec<String>,
}

impl Viewer {
    /// The viewer of `org` that the request's session names: to the sign-in page without a
    /// live session, a refusal page when the user is no member of `org`.
    pub async fn of(
        state: &Shared,
        headers: &HeaderMap,
        uri: &Uri,
        org: &str,
    ) -> Result<Self, PageError> {
        let session = signed_in(state, headers, uri).await?;
        let meta = state.meta.as_ref();
        if !meta.org_exists(org).await? {
            return Err(PageError::api(ApiError::not_found(format!(
                "organization {org}"
            ))));
        }
        let caller = state
            .authenticator
            .user_caller(meta, &session.email, org)
            .await
            .map_err(|error| {
                PageError::refused(error, &session.email, &format!("open organization {org}"))
            })?;
        let orgs = organizations_of(state, &session.email).await?;
        Ok(Self {
            session,
            caller,
            org: org.to_string(),
            orgs,
        })
    }

    /// The frame of a page of this viewer's organization, in `section` of the navigation.
    pub fn chrome(&self, section: Section) -> Chrome {
        Chrome {
            csrf: self.session.csrf(),
            email: self.session.email.clone(),
            org: self.org.clone(),
            orgs: self.orgs.clone(),
            section,
            admin: self.caller.is_admin(),
        }
    }

    /// A refusal page unless the viewer may `verb` on the organization's action scripts as
    /// a whole (listing, creating); `what` says what they tried.
    pub async fn require_on_actions(
        &self,
        state: &Shared,
        verb: Verb,
        what: &str,
    ) -> Result<(), PageError> {
        state
            .require_on_actions(&self.org, &self.caller, verb, None)
            .await
            .map_err(|e| self.refused(e, what))
    }

    /// Action `id`, once the viewer may `verb` on it; else the refusal (or not-found) page,
    /// `what` saying what they tried.
    pub async fn action(
        &self,
        state: &Shared,
        verb: Verb,
        id: &str,
        what: &str,
    ) -> Result<vivarium_store::Action, PageError> {
        state
            .action_for(&self.org, &self.caller, verb, id)
            .await
            .map_err(|e| self.refused(e, what))
    }

    /// The refusal page for `error`, saying what the viewer tried to do.
    pub fn refused(&self, error: ApiError, what: &str) -> PageError {
        PageError::refused(error, &self.session.email, what)
    }
}

/// The live session of the request, or a redirect to the sign-in page that comes back here.
pub(super) async fn signed_in(
    state: &Shared,
    headers: &HeaderMap,
    uri: &Uri,
) -> Result<Session, PageError> {
    state
        .authenticator
        .session(state.meta.as_ref(), headers)
        .await
        .map_err(PageError::api)?
        .ok_or_else(|| PageError::SignIn {
            next: uri
                .path_and_query()
                .map_or_else(|| super::HOME.to_string(), ToString::to_string),
        })
}

/// The organizations `email` may open: every one for the root user, else those they are a
/// member of.
pub(super) async fn organizations_of(
    state: &Shared,
    email: &str,
) -> Result<Vec<String>, PageError> {
    let meta = state.meta.as_ref();
    let is_root = meta
        .find_user(email)
        .await?
        .is_some_and(|user| user.is_root);
    let mut orgs = Vec::new();
    for org in meta.list_orgs().await? {
        if is_root || meta.membership(&org.name, email).await?.is_some() {
            orgs.push(org.name);
        }
    }
    Ok(orgs)
}

/// The parts of the navigation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Section {
    Actions,
    Identities,
    Dashboard,
}

/// The frame around a page's content.
pub(super) struct Chrome {
    /// The session's CSRF token, which the script sends with every change.
    pub csrf: String,
    /// The signed-in user.
    pub email: String,
    /// The organization shown.
    pub org: String,
    /// The organizations the switcher offers.
    pub orgs: Vec<String>,
    /// Where in the navigation the page is.
    pub section: Section,
    /// Whether the viewer administers the organization (identities are theirs to manage).
    pub admin: bool,
}

impl Chrome {
    /// Whether the page is in `section` (for the navigation's current item).
    pub fn is(&self, section: Section) -> bool {
        self.section == section
    }

    /// The organization's console path for `rest` (`actions`, `identities`, ...).
    pub fn href(&self, rest: &str) -> String {
        org_href(&self.org, rest)
    }
}

/// The console path of `rest` within organization `org`.
pub(super) fn org_href(org: &str, rest: &str) -> String {
    format!("/console/orgs/{}/{rest}", encode(org))
}

/// `text` encoded as a query value (organization names, the only path segments built
/// here besides UUIDs, are identifiers that need no encoding).
pub(super) fn encode(text: &str) -> String {
    url::form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

/// What a page shows instead of its content.
pub(super) enum PageError {
    /// Not signed in: the sign-in page, coming back to `next` after.
    SignIn { next: String },
    /// The request failed as the API would answer it; for a refusal, who was refused what.
    Failed {
        error: ApiError,
        refused: Option<(String, String)>,
    },
}

impl PageError {
    /// The page for an API error.
    pub fn api(error: ApiError) -> Self {
        Self::Failed {
            error,
            refused: None,
        }
    }

    /// The page for `error`; a 403 says that `email` may not `what`.
    pub fn refused(error: ApiError, email: &str, what: &str) -> Self {
        let refused =
            (error.status == StatusCode::FORBIDDEN).then(|| (email.to_string(), what.to_string()));
        Self::Failed { error, refused }
    }
}

impl From<ApiError> for PageError {
    fn from(error: ApiError) -> Self {
        Self::api(error)
    }
}

impl From<vivarium_store::StoreError> for PageError {
    fn from(error: vivarium_store::StoreError) -> Self {
        Self::api(error.into())
    }
}

/// The page of a failed request.
#[derive(Template)]
#[template(path = "problem.html")]
struct Problem {
    status: u16,
    title: String,
    message: String,
    refused: Option<(String, String)>,
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        match self {
            Self::SignIn { next } => {
                let href = format!("{}?next={}", super::SIGN_IN_PATH, encode(&next));
                Redirect::to(&href).into_response()
            }
            Self::Failed { error, refused } => {
                let page = Problem {
                    status: error.status.as_u16(),
                    title: problem_title(error.status),
                    message: error.message,
                    refused,
                };
                let mut response = render(&page);
                *response.status_mut() = error.status;
                response
            }
        }
    }
}

fn problem_title(status: StatusCode) -> String {
    match status {
        StatusCode::FORBIDDEN => "Not allowed".to_string(),
        StatusCode::NOT_FOUND => "Not found".to_string(),
        _ => status
            .canonical_reason()
            .unwrap_or("Something went wrong")
            .to_string(),
    }
}

/// A rendered page; a template that fails to render is a bug, answered as a 500.
pub(super) fn render(page: &impl Template) -> Response {
    match page.render() {
        Ok(html) => Html(html).into_response(),
        Err(error) => {
            ApiError::internal(format!("rendering a console page: {error}")).into_response()
        }
    }
}

/// What a console handler answers.
pub(super) type PageResult = Result<Response, PageError>;

/// How templates show times and sizes (`self.when(run.started_at)`); askama hands the
/// values over by reference.
pub(super) trait Shows {
    /// A time, in UTC.
    fn when(&self, micros: &i64) -> String {
        when(*micros)
    }

    /// An optional time, `absent` when there is none.
    fn when_or(&self, micros: &Option<i64>, absent: &str) -> String {
        when_or(*micros, absent)
    }

    /// A byte count.
    fn bytes(&self, count: &i64) -> String {
        bytes(*count)
    }
}

/// A time (µs since the epoch) as the console shows it, in UTC.
pub(super) fn when(micros: i64) -> String {
    DateTime::from_timestamp_micros(micros).map_or_else(
        || "—".to_string(),
        |at| at.format("%Y-%m-%d %H:%M:%S UTC").to_string(),
    )
}

/// An optional time, `absent` when there is none (O2 shows "Never" for a last success).
pub(super) fn when_or(micros: Option<i64>, absent: &str) -> String {
    micros.map_or_else(|| absent.to_string(), when)
}

/// A byte count for people: `1.5 MiB`.
pub(super) fn bytes(count: i64) -> String {
    const UNITS: [&str; 4] = ["B", "KiB", "MiB", "GiB"];
    let mut value = count as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{count} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_and_sizes_read_as_people_write_them() {
        assert_eq!(when(1_767_225_600_000_000), "2026-01-01 00:00:00 UTC");
        assert_eq!(when_or(None, "Never"), "Never");
        assert_eq!(bytes(512), "512 B");
        assert_eq!(bytes(1536), "1.5 KiB");
        assert_eq!(bytes(3 * 1024 * 1024), "3.0 MiB");
    }

    #[test]
    fn query_values_are_encoded() {
        assert_eq!(
            encode("/console/orgs/a?b=c&d"),
            "%2Fconsole%2Forgs%2Fa%3Fb%3Dc%26d"
        );
        assert_eq!(org_href("acme", "actions"), "/console/orgs/acme/actions");
    }
}
