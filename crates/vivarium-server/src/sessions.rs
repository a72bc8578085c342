//! Console sessions: a user signs in with email and password and gets a cookie that carries a
//! random secret (the store keeps only its hash); every request that changes something must
//! also carry the session's CSRF token, which a cross-site page cannot read.

use std::net::IpAddr;

use axum::http::{HeaderMap, Method};
use axum_extra::extract::cookie::{Cookie, CookieJar, SameSite};
use vivarium_auth::{csrf_matches, csrf_token, generate_session_secret, hash_token};
use vivarium_store::{ConsoleSession, MetadataStore};

use crate::clock::now_micros;
use crate::error::{ApiError, ApiResult};
use crate::identity::{Authenticator, Caller};

/// The cookie that carries the session's secret.
pub const SESSION_COOKIE: &str = "vivarium_session";
/// The header the console's scripts send the CSRF token in.
pub const CSRF_HEADER: &str = "x-csrf-token";
/// The form field the console's forms send the CSRF token in.
pub const CSRF_FIELD: &str = "csrf";

/// A signed-in user's session, as a request presents it.
#[derive(Debug, Clone)]
pub struct Session {
    secret: String,
    /// The signed-in user.
    pub email: String,
    /// When it stops holding (µs since the epoch).
    pub expires_at: i64,
}

impl Session {
    /// The token every changing request of this session must carry.
    pub fn csrf(&self) -> String {
        csrf_token(&self.secret)
    }

    /// Whether `presented` is this session's CSRF token.
    pub fn csrf_matches(&self, presented: &str) -> bool {
        csrf_matches(presented, &self.secret)
    }

    /// The cookie that keeps this session in the browser: HttpOnly, SameSite=Strict, for the
    /// whole site, expiring with the session, and Secure when the service is reached over TLS.
    pub fn cookie(&self, secure: bool) -> Cookie<'static> {
        let seconds = (self.expires_at - now_micros()).max(0) / 1_000_000;
        Cookie::build((SESSION_COOKIE, self.secret.clone()))
            .http_only(true)
            .same_site(SameSite::Strict)
            .secure(secure)
            .path("/")
            .max_age(cookie::time::Duration::seconds(seconds))
            .build()
    }
}

/// The cookie that tells the browser to forget the session.
pub fn removal_cookie(secure: bool) -> Cookie<'static> {
    let mut cookie = Cookie::build((SESSION_COOKIE, ""))
        .http_only(true)
        .same_site(SameSite::Strict)
        .secure(secure)
        .path("/")
        .build();
    cookie.make_removal();
    cookie
}

impl Authenticator {
    /// Signs `email` in from `client` with `password` for `ttl_micros`: 401 (saying nothing
    /// of which part was wrong) unless they match a user, 429 while failed sign-ins are
    /// throttled.
    pub async fn sign_in(
        &self,
        store: &dyn MetadataStore,
        email: &str,
        password: &str,
        client: Option<IpAddr>,
        ttl_micros: i64,
    ) -> ApiResult<Session> {
        let email = email.trim().to_lowercase();
        let user = self
            .verified_user(store, &email, password, client)
            .await?
            .ok_or_else(ApiError::unauthenticated)?;
        let secret = generate_session_secret();
        let now = now_micros();
        let record = ConsoleSession {
            secret_hash: hash_token(&secret).0,
            email: user.email.clone(),
            created_at: now,
            expires_at: now.saturating_add(ttl_micros),
        };
        store.create_session(&record).await?;
        Ok(Session {
            secret,
            email: user.email,
            expires_at: record.expires_at,
        })
    }

    /// The live session the request's cookie names, if it names one.
    pub async fn session(
        &self,
        store: &dyn MetadataStore,
        headers: &HeaderMap,
    ) -> ApiResult<Option<Session>> {
        let Some(secret) = session_secret(headers) else {
            return Ok(None);
        };
        let found = store
            .find_session(&hash_token(&secret).0, now_micros())
            .await?;
        Ok(found.map(|record| Session {
            secret,
            email: record.email,
            expires_at: record.expires_at,
        }))
    }

    /// Ends the request's session, if it has one.
    pub async fn sign_out(&self, store: &dyn MetadataStore, headers: &HeaderMap) -> ApiResult<()> {
        if let Some(secret) = session_secret(headers) {
            store.delete_session(&hash_token(&secret).0).await?;
        }
        Ok(())
    }

    /// The caller a request to `org` authenticated by its session cookie is: 401 without a
    /// live session; 403 when it changes something (`method` not safe) without the
    /// session's CSRF token in [`CSRF_HEADER`].
    pub async fn session_caller(
        &self,
        store: &dyn MetadataStore,
        headers: &HeaderMap,
        method: &Method,
        org: &str,
    ) -> ApiResult<Caller> {
        let session = self
            .session(store, headers)
            .await?
            .ok_or_else(ApiError::unauthenticated)?;
        if !method.is_safe() {
            let presented = headers
                .get(CSRF_HEADER)
                .and_then(|value| value.to_str().ok())
                .unwrap_or_default();
            if !session.csrf_matches(presented) {
                return Err(missing_csrf());
            }
        }
        self.user_caller(store, &session.email, org).await
    }
}

/// Whether the request presents a session cookie (and so is the console's, not a client's
/// with credentials).
pub fn has_session_cookie(headers: &HeaderMap) -> bool {
    session_secret(headers).is_some()
}

/// 403 for a changing request without the session's CSRF token.
pub fn missing_csrf() -> ApiError {
    ApiError::new(
        axum::http::StatusCode::FORBIDDEN,
        "this request did not carry the console's CSRF token, so it was refused; reload the page and try again",
    )
}

fn session_secret(headers: &HeaderMap) -> Option<String> {
    CookieJar::from_headers(headers)
        .get(SESSION_COOKIE)
        .map(|cookie| cookie.value().to_string())
        .filter(|secret| !secret.is_empty())
}
