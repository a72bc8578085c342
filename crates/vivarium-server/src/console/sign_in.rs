//! Signing in and out, the console's start, and the organization switcher.
//!
//! The sign-in form has no session to tie a CSRF token to yet, so it uses a double-submit
//! token: a random value in an HttpOnly, SameSite=Strict cookie, whose digest the form
//! carries; a cross-site page can neither read the cookie nor make the browser send it.

use askama::Template;
use axum::Form;
use axum::extract::{Query, State};
use axum::http::{Extensions, HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Redirect, Response};
use axum_extra::extract::cookie::{Cookie, CookieJar, SameSite};
use serde::Deserialize;
use vivarium_auth::{csrf_matches, csrf_token, generate_session_secret};

use super::page::{PageError, PageResult, org_href, organizations_of, render, signed_in};
use super::{HOME, SIGN_IN_PATH};
use crate::error::ApiError;
use crate::identity::client_address;
use crate::routes::Shared;
use crate::sessions::{CSRF_FIELD, missing_csrf, removal_cookie};

/// The cookie that carries the sign-in form's double-submit token.
const SIGN_IN_COOKIE: &str = "vivarium_sign_in";

/// `GET /console`: the first organization the user may open, or a page saying there is none.
pub(super) async fn home(State(state): State<Shared>, headers: HeaderMap, uri: Uri) -> PageResult {
    let session = signed_in(&state, &headers, &uri).await?;
    let orgs = organizations_of(&state, &session.email).await?;
    match orgs.first() {
        Some(org) => Ok(Redirect::to(&org_href(org, "actions")).into_response()),
        None => Err(PageError::api(ApiError::not_found(format!(
            "an organization for {} (an administrator adds users to organizations with POST /api/{{org}}/users)",
            session.email
        )))),
    }
}

/// Where to go after signing in.
#[derive(Debug, Deserialize)]
pub(super) struct Next {
    #[serde(default)]
    next: Option<String>,
}

/// The sign-in page.
#[derive(Template)]
#[template(path = "sign_in.html")]
struct SignInPage {
    csrf_field: &'static str,
    csrf: String,
    next: String,
    email: String,
    error: Option<String>,
}

/// `GET /console/sign-in`: the form, with a fresh double-submit token.
pub(super) async fn form(State(state): State<Shared>, Query(query): Query<Next>) -> Response {
    let secure = state.config.console_secure_cookies;
    sign_in_page(
        safe_next(query.next),
        String::new(),
        None,
        secure,
        StatusCode::OK,
    )
}

/// What the sign-in form posts.
#[derive(Debug, Deserialize)]
pub(super) struct SignIn {
    email: String,
    password: String,
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    next: Option<String>,
}

/// `POST /console/sign-in`: checks the token and the password, then sets the session cookie
/// and goes where the user was headed.
pub(super) async fn submit(
    State(state): State<Shared>,
    extensions: Extensions,
    jar: CookieJar,
    Form(form): Form<SignIn>,
) -> PageResult {
    let token = jar.get(SIGN_IN_COOKIE).map(|c| c.value().to_string());
    if !token.is_some_and(|token| csrf_matches(&form.csrf, &token)) {
        return Err(PageError::api(missing_csrf()));
    }
    let next = safe_next(form.next);
    let ttl = i64::try_from(state.config.console_session_ttl.as_micros()).unwrap_or(i64::MAX);
    let signed = state
        .authenticator
        .sign_in(
            state.meta.as_ref(),
            &form.email,
            &form.password,
            client_address(&extensions),
            ttl,
        )
        .await;
    let session = match signed {
        Ok(session) => session,
        Err(error) if error.status == StatusCode::UNAUTHORIZED => {
            let message = "The email or the password is wrong.".to_string();
            let secure = state.config.console_secure_cookies;
            let page = sign_in_page(
                next,
                form.email,
                Some(message),
                secure,
                StatusCode::UNAUTHORIZED,
            );
            return Ok(page);
        }
        Err(error) => return Err(PageError::api(error)),
    };
    let secure = state.config.console_secure_cookies;
    let jar = jar
        .remove(sign_in_cookie(String::new(), secure))
        .add(session.cookie(secure));
    Ok((jar, Redirect::to(&next)).into_response())
}

/// What the sign-out form posts.
#[derive(Debug, Deserialize)]
pub(super) struct SignOut {
    #[serde(default)]
    csrf: String,
}

/// `POST /console/sign-out`: ends the session (the form must carry its CSRF token).
pub(super) async fn sign_out(
    State(state): State<Shared>,
    headers: HeaderMap,
    uri: Uri,
    jar: CookieJar,
    Form(form): Form<SignOut>,
) -> PageResult {
    let session = signed_in(&state, &headers, &uri).await?;
    if !session.csrf_matches(&form.csrf) {
        return Err(PageError::api(missing_csrf()));
    }
    state
        .authenticator
        .sign_out(state.meta.as_ref(), &headers)
        .await?;
    let jar = jar.add(removal_cookie(state.config.console_secure_cookies));
    Ok((jar, Redirect::to(SIGN_IN_PATH)).into_response())
}

/// The organization switcher's choice.
#[derive(Debug, Deserialize)]
pub(super) struct Switch {
    org: String,
}

/// `GET /console/go?org=...`: the chosen organization's actions.
pub(super) async fn switch_org(Query(switch): Query<Switch>) -> Redirect {
    Redirect::to(&org_href(&switch.org, "actions"))
}

fn sign_in_page(
    next: String,
    email: String,
    error: Option<String>,
    secure: bool,
    status: StatusCode,
) -> Response {
    let token = generate_session_secret();
    let page = SignInPage {
        csrf_field: CSRF_FIELD,
        csrf: csrf_token(&token),
        next,
        email,
        error,
    };
    let mut response = render(&page);
    *response.status_mut() = status;
    let jar = CookieJar::new().add(sign_in_cookie(token, secure));
    (jar, response).into_response()
}

/// The double-submit cookie, for the sign-in path only.
fn sign_in_cookie(token: String, secure: bool) -> Cookie<'static> {
    Cookie::build((SIGN_IN_COOKIE, token))
        .http_only(true)
        .same_site(SameSite::Strict)
        .secure(secure)
        .path(SIGN_IN_PATH)
        .build()
}

/// `next` when it is a console path of this site, else the console's start: a sign-in link
/// cannot send the user elsewhere.
fn safe_next(next: Option<String>) -> String {
    next.filter(|path| {
        path.starts_with("/console") && !path.starts_with("//") && !path.contains('\\')
    })
    .unwrap_or_else(|| HOME.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sign_in_goes_back_only_to_console_pages() {
        assert_eq!(
            safe_next(Some("/console/orgs/acme/actions".into())),
            "/console/orgs/acme/actions"
        );
        for elsewhere in [
            "https://evil.example",
            "//evil.example",
            "/api/x",
            "/console\\..\\x",
        ] {
            assert_eq!(safe_next(Some(elsewhere.into())), HOME, "{elsewhere}");
        }
        assert_eq!(safe_next(None), HOME);
    }
}
