//! Throttling of failed sign-ins, so that guessing passwords costs an attacker time and costs
//! the service no unbounded Argon2 work.
//!
//! Failures are counted per account (the email, as given, lower-cased) and per client address,
//! in a window that opens with the first failure. Once either count reaches its limit, every
//! attempt for that account or from that address is refused before any password is checked,
//! until the window closes. A success does not clear the counts: an attacker who holds one
//! account cannot use it to reset the throttle on guesses at another from the same address.
//! Credentials verified in the last minute (the password cache) are let through without
//! consulting the throttle, so clients already signed in keep working while an account is
//! being attacked.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

/// The throttle's limits (the configuration's `sign_in` table).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SignInLimits {
    /// Failed sign-ins one account may have in a window. Default 10.
    pub failures_per_account: u32,
    /// Failed sign-ins one client address may have in a window, whatever the accounts.
    /// Default 30.
    pub failures_per_address: u32,
    /// How long a window lasts, from its first failure. Default 15 minutes.
    #[serde(with = "humantime_serde")]
    pub window: Duration,
}

impl SignInLimits {
    /// The defaults.
    pub const DEFAULT: Self = Self {
        failures_per_account: 10,
        failures_per_address: 30,
        window: Duration::from_secs(15 * 60),
    };

    /// Refuses limits that would lock everyone out or never close.
    pub fn validate(&self) -> Result<(), String> {
        if self.failures_per_account == 0 || self.failures_per_address == 0 {
            return Err(
                "sign_in.failures_per_account and failures_per_address must be at least 1".into(),
            );
        }
        if self.window.is_zero() || self.window > Duration::from_secs(24 * 3600) {
            return Err("sign_in.window must be between 1s and 24h".into());
        }
        Ok(())
    }
}

impl Default for SignInLimits {
    fn default() -> Self {
        Self::DEFAULT
    }
}
/// Most accounts and addresses tracked at once, so that memory stays bounded whatever an
/// attacker sends: past it, closed windows are dropped, and while every tracked window is
/// still open a failure of a new subject goes uncounted (it still cost its sender a full
/// password check, and each address is held to its own limit).
const MOST_SUBJECTS: usize = 100_000;

/// Who failed to sign in.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Subject {
    Account(String),
    Address(IpAddr),
}

#[derive(Debug, Clone, Copy)]
struct Window {
    opened: Instant,
    failures: u32,
}

/// A refused attempt: how long until the window closes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Throttled {
    /// Time until attempts are accepted again.
    pub retry_after: Duration,
}

/// The failed sign-ins of the last window.
#[derive(Debug, Default)]
pub struct SignInThrottle {
    limits: SignInLimits,
    windows: Mutex<HashMap<Subject, Window>>,
}

impl SignInThrottle {
    /// A throttle with `limits` and no failure counted.
    pub fn new(limits: SignInLimits) -> Self {
        Self {
            limits,
            windows: Mutex::default(),
        }
    }

    /// Whether an attempt for `email` from `client` may have its password checked now.
    pub fn admit(&self, email: &str, client: Option<IpAddr>) -> Result<(), Throttled> {
        self.admit_at(email, client, Instant::now())
    }

    /// Counts a failed attempt for `email` from `client`.
    pub fn record_failure(&self, email: &str, client: Option<IpAddr>) {
        self.record_failure_at(email, client, Instant::now());
    }

    fn admit_at(&self, email: &str, client: Option<IpAddr>, now: Instant) -> Result<(), Throttled> {
        let windows = self.windows.lock().unwrap_or_else(|p| p.into_inner());
        let wait = self
            .subjects(email, client)
            .filter_map(|(subject, limit)| {
                let window = windows.get(&subject)?;
                let closes = window.opened + self.limits.window;
                (window.failures >= limit && closes > now).then(|| closes - now)
            })
            .max();
        match wait {
            Some(retry_after) => Err(Throttled { retry_after }),
            None => Ok(()),
        }
    }

    fn record_failure_at(&self, email: &str, client: Option<IpAddr>, now: Instant) {
        let mut windows = self.windows.lock().unwrap_or_else(|p| p.into_inner());
        let length = self.limits.window;
        for (subject, _) in self.subjects(email, client) {
            if !windows.contains_key(&subject) && windows.len() >= MOST_SUBJECTS {
                windows.retain(|_, window| window.opened + length > now);
            }
            if !windows.contains_key(&subject) && windows.len() >= MOST_SUBJECTS {
                tracing::warn!("sign-in throttle full: a failure went uncounted");
                continue;
            }
            let window = windows.entry(subject).or_insert(Window {
                opened: now,
                failures: 0,
            });
            if window.opened + length <= now {
                *window = Window {
                    opened: now,
                    failures: 0,
                };
            }
            window.failures = window.failures.saturating_add(1);
        }
    }

    /// The subjects an attempt counts against, with their limits.
    fn subjects(
        &self,
        email: &str,
        client: Option<IpAddr>,
    ) -> impl Iterator<Item = (Subject, u32)> + use<> {
        let account = (
            Subject::Account(email.trim().to_lowercase()),
            self.limits.failures_per_account,
        );
        let per_address = self.limits.failures_per_address;
        let address = client.map(|address| (Subject::Address(address), per_address));
        std::iter::once(account).chain(address)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FAILURES_PER_ACCOUNT: u32 = SignInLimits::DEFAULT.failures_per_account;
    const FAILURES_PER_ADDRESS: u32 = SignInLimits::DEFAULT.failures_per_address;
    const WINDOW: Duration = SignInLimits::DEFAULT.window;

    const ATTACKER: Option<IpAddr> = Some(IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 1)));
    const USER: Option<IpAddr> = Some(IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 2)));

    fn fail(
        throttle: &SignInThrottle,
        email: &str,
        client: Option<IpAddr>,
        times: u32,
        at: Instant,
    ) {
        for _ in 0..times {
            throttle.record_failure_at(email, client, at);
        }
    }

    #[test]
    fn an_account_is_refused_after_its_limit_until_the_window_closes() {
        let throttle = SignInThrottle::default();
        let start = Instant::now();
        fail(
            &throttle,
            "root@example.com",
            ATTACKER,
            FAILURES_PER_ACCOUNT - 1,
            start,
        );
        assert_eq!(throttle.admit_at("root@example.com", USER, start), Ok(()));
        fail(&throttle, "Root@Example.com", ATTACKER, 1, start);
        let later = start + Duration::from_secs(60);
        let refused = throttle
            .admit_at("root@example.com", USER, later)
            .unwrap_err();
        assert_eq!(refused.retry_after, WINDOW - Duration::from_secs(60));
        assert_eq!(throttle.admit_at("other@example.com", USER, later), Ok(()));
        assert_eq!(
            throttle.admit_at("root@example.com", USER, start + WINDOW),
            Ok(())
        );
    }

    #[test]
    fn an_address_is_refused_after_its_limit_whatever_the_account() {
        let throttle = SignInThrottle::default();
        let start = Instant::now();
        for n in 0..FAILURES_PER_ADDRESS {
            throttle.record_failure_at(&format!("user{n}@example.com"), ATTACKER, start);
        }
        assert!(
            throttle
                .admit_at("new@example.com", ATTACKER, start)
                .is_err()
        );
        assert_eq!(throttle.admit_at("new@example.com", USER, start), Ok(()));
        assert_eq!(throttle.admit_at("new@example.com", None, start), Ok(()));
    }

    #[test]
    fn a_closed_window_starts_counting_again() {
        let throttle = SignInThrottle::default();
        let start = Instant::now();
        fail(
            &throttle,
            "a@example.com",
            None,
            FAILURES_PER_ACCOUNT,
            start,
        );
        let next = start + WINDOW;
        fail(&throttle, "a@example.com", None, 1, next);
        assert_eq!(throttle.admit_at("a@example.com", None, next), Ok(()));
    }

    #[test]
    fn memory_stays_bounded_under_a_flood_of_new_subjects() {
        let throttle = SignInThrottle::default();
        let start = Instant::now();
        for n in 0..(MOST_SUBJECTS + 10) {
            throttle.record_failure_at(&format!("u{n}@example.com"), None, start);
        }
        let tracked = throttle.windows.lock().unwrap().len();
        assert_eq!(tracked, MOST_SUBJECTS);
        throttle.record_failure_at("late@example.com", None, start + WINDOW);
        assert_eq!(throttle.windows.lock().unwrap().len(), 1);
    }
}
