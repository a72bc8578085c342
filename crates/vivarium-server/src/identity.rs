//! Who is calling, and may they: HTTP Basic credentials checked against users (passwords)
//! and the organization's service accounts (tokens), or a console session (`sessions`), then
//! the caller's rights.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::extract::ConnectInfo;
use axum::http::header::AUTHORIZATION;
use axum::http::{Extensions, HeaderMap};
use sha2::{Digest, Sha256};
use vivarium_auth::{
    Credentials, ResourceKind, TokenHash, Verb, parse_basic_auth, verify_password, verify_token,
};
use vivarium_store::{MetadataStore, OrgRole, User};

use crate::error::{ApiError, ApiResult};
use crate::throttle::{SignInLimits, SignInThrottle, Throttled};

/// An authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The email they authenticated as.
    pub email: String,
    /// What kind of identity they are.
    pub kind: CallerKind,
}

/// The kinds of callers, from most to least powerful.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallerKind {
    /// The root user: everything, in every organization.
    Root,
    /// An administrator of the organization in the path.
    OrgAdmin,
    /// A member of the organization, limited to their roles' grants.
    Member,
    /// A service account of the organization, limited to its roles' grants.
    ServiceAccount,
}

impl CallerKind {
    /// The kind's name in the audit log: `root`, `admin`, `member` or `service_account`.
    pub fn wire_name(self) -> &'static str {
        match self {
            Self::Root => "root",
            Self::OrgAdmin => "admin",
            Self::Member => "member",
            Self::ServiceAccount => "service_account",
        }
    }
}

impl Caller {
    /// Whether the caller may manage identities, roles and everything else in the organization.
    pub fn is_admin(&self) -> bool {
        matches!(self.kind, CallerKind::Root | CallerKind::OrgAdmin)
    }
}

/// How long a verified password stays verified in memory, so that Argon2's deliberate cost
/// is paid once per client and minute, not once per request.
const PASSWORD_CACHE_TTL: Duration = Duration::from_secs(60);
const PASSWORD_CACHE_CAPACITY: usize = 1024;

/// Verifies credentials; remembers recent successful password checks (by a digest of the
/// email, the secret and the stored hash, so a changed password invalidates them) and
/// throttles failed ones.
#[derive(Default)]
pub struct Authenticator {
    verified_passwords: Mutex<HashMap<[u8; 32], Instant>>,
    throttle: SignInThrottle,
}

impl Authenticator {
    /// An authenticator throttling failed sign-ins within `limits`.
    pub fn new(limits: SignInLimits) -> Self {
        Self {
            verified_passwords: Mutex::default(),
            throttle: SignInThrottle::new(limits),
        }
    }

    /// The caller of a request from `client` to organization `org`: a service account by its
    /// token, else a user by their password; 401 without saying what was wrong, 429 while
    /// failed sign-ins for the email or from the address are throttled.
    pub async fn authenticate(
        &self,
        store: &dyn MetadataStore,
        headers: &HeaderMap,
        org: &str,
        client: Option<IpAddr>,
    ) -> ApiResult<Caller> {
        let credentials = basic_credentials(headers)?;
        if let Some(account) = store.get_service_account(org, &credentials.email).await?
            && verify_token(&credentials.secret, &TokenHash(account.token_hash))
        {
            return Ok(Caller {
                email: account.email,
                kind: CallerKind::ServiceAccount,
            });
        }
        match self.as_user(store, &credentials, org, client).await? {
            Some(caller) => Ok(caller),
            None => Err(ApiError::unauthenticated()),
        }
    }

    /// The root user, whatever the organization (for routes outside any organization).
    pub async fn authenticate_root(
        &self,
        store: &dyn MetadataStore,
        headers: &HeaderMap,
        client: Option<IpAddr>,
    ) -> ApiResult<Caller> {
        let credentials = basic_credentials(headers)?;
        match self.as_user(store, &credentials, "", client).await? {
            Some(caller) if caller.kind == CallerKind::Root => Ok(caller),
            Some(_) => Err(ApiError::forbidden()),
            None => Err(ApiError::unauthenticated()),
        }
    }

    async fn as_user(
        &self,
        store: &dyn MetadataStore,
        credentials: &Credentials,
        org: &str,
        client: Option<IpAddr>,
    ) -> ApiResult<Option<Caller>> {
        match self
            .verified_user(store, &credentials.email, &credentials.secret, client)
            .await?
        {
            Some(user) => Ok(Some(user_in_org(store, user, org).await?)),
            None => Ok(None),
        }
    }

    /// The user `email` if `password` is theirs; 429 while failed sign-ins for the email or
    /// from `client` are throttled (before any password is checked).
    pub(crate) async fn verified_user(
        &self,
        store: &dyn MetadataStore,
        email: &str,
        password: &str,
        client: Option<IpAddr>,
    ) -> ApiResult<Option<User>> {
        let credentials = Credentials {
            email: email.to_string(),
            secret: password.to_string(),
        };
        let user = store.find_user(email).await?;
        // An unknown email gets the same Argon2 work as a wrong password, so that the
        // answer's time does not tell which emails belong to users.
        let stored = user
            .as_ref()
            .map_or(decoy_password_hash(), |user| user.password_hash.as_str());
        let matches = self.password_matches(&credentials, stored, client).await?;
        Ok(user.filter(|_| matches))
    }

    /// The signed-in user `email` as a caller in `org`: 401 when the user is gone, 403 when
    /// they are no member of it.
    pub(crate) async fn user_caller(
        &self,
        store: &dyn MetadataStore,
        email: &str,
        org: &str,
    ) -> ApiResult<Caller> {
        let user = store
            .find_user(email)
            .await?
            .ok_or_else(ApiError::unauthenticated)?;
        user_in_org(store, user, org).await
    }

    async fn password_matches(
        &self,
        credentials: &Credentials,
        stored: &str,
        client: Option<IpAddr>,
    ) -> ApiResult<bool> {
        let key = cache_key(credentials, stored);
        if self.recently_verified(&key) {
            return Ok(true);
        }
        self.throttle
            .admit(&credentials.email, client)
            .map_err(too_many_failures)?;
        let (password, stored_hash) = (credentials.secret.clone(), stored.to_string());
        let verified =
            tokio::task::spawn_blocking(move || verify_password(&password, &stored_hash))
                .await
                .unwrap_or(false);
        if verified {
            self.remember(key);
        } else {
            self.throttle.record_failure(&credentials.email, client);
        }
        Ok(verified)
    }

    fn recently_verified(&self, key: &[u8; 32]) -> bool {
        let cache = self
            .verified_passwords
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        cache
            .get(key)
            .is_some_and(|at| at.elapsed() < PASSWORD_CACHE_TTL)
    }

    fn remember(&self, key: [u8; 32]) {
        let mut cache = self
            .verified_passwords
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if cache.len() >= PASSWORD_CACHE_CAPACITY {
            cache.retain(|_, at| at.elapsed() < PASSWORD_CACHE_TTL);
        }
        if cache.len() < PASSWORD_CACHE_CAPACITY {
            cache.insert(key, Instant::now());
        }
    }
}

/// The address a request came from: the server records it on every connection (a router
/// called without a server, as some tests do, has none).
pub(crate) fn client_address(extensions: &Extensions) -> Option<IpAddr> {
    extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(address)| address.ip())
}

/// 429 for a throttled sign-in, saying when to try again.
fn too_many_failures(throttled: Throttled) -> ApiError {
    let seconds = throttled.retry_after.as_secs().max(1);
    ApiError::too_many(
        format!(
            "too many failed sign-ins for this account or from this address; try again in \
             {seconds} seconds"
        ),
        seconds,
    )
}

/// A hash no password matches in practice (of a random secret), verified against when the
/// email is no user's.
fn decoy_password_hash() -> &'static str {
    static DECOY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DECOY.get_or_init(|| {
        vivarium_auth::hash_password(&vivarium_auth::generate_session_secret()).unwrap_or_default()
    })
}

/// `user` as a caller in `org`: root everywhere, else as their membership says; 403 when
/// they are no member.
async fn user_in_org(store: &dyn MetadataStore, user: User, org: &str) -> ApiResult<Caller> {
    let kind = if user.is_root {
        CallerKind::Root
    } else {
        match store.membership(org, &user.email).await? {
            Some(OrgRole::Admin) => CallerKind::OrgAdmin,
            Some(OrgRole::Member) => CallerKind::Member,
            None => return Err(ApiError::forbidden()),
        }
    };
    Ok(Caller {
        email: user.email,
        kind,
    })
}

/// The request's Basic credentials, with the email lower-cased as logins are stored; 401
/// when there are none.
fn basic_credentials(headers: &HeaderMap) -> ApiResult<Credentials> {
    headers
        .get(AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(parse_basic_auth)
        .map(|credentials| Credentials {
            email: credentials.email.to_lowercase(),
            ..credentials
        })
        .ok_or_else(ApiError::unauthenticated)
}

fn cache_key(credentials: &Credentials, stored: &str) -> [u8; 32] {
    let mut hasher = Sha256::new();
    for part in [
        credentials.email.as_bytes(),
        credentials.secret.as_bytes(),
        stored.as_bytes(),
    ] {
        hasher.update((part.len() as u64).to_le_bytes());
        hasher.update(part);
    }
    hasher.finalize().into()
}

/// 403 unless `caller` may do `verb` on `resource`: administrators may do everything, others
/// what their roles grant.
pub async fn require(
    store: &dyn MetadataStore,
    org: &str,
    caller: &Caller,
    verb: Verb,
    resource: ResourceKind,
    object: Option<&str>,
) -> ApiResult<()> {
    if caller.is_admin()
        || store
            .principal_may(org, &caller.email, verb, resource, object)
            .await?
    {
        return Ok(());
    }
    Err(ApiError::forbidden())
}

/// 403 unless `caller` administers the organization.
pub fn require_admin(caller: &Caller) -> ApiResult<()> {
    if caller.is_admin() {
        Ok(())
    } else {
        Err(ApiError::forbidden())
    }
}
