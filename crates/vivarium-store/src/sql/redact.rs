//! Database URLs made safe to print: passwords never reach a log or an error message.

/// Query parameters that carry secrets in PostgreSQL URLs.
const SECRET_PARAMS: &[&str] = &["password", "sslpassword"];

/// What replaces a secret.
const MASK: &str = "***";

/// `url` with its password (in the user-info part or a `password=` parameter) replaced by
/// `***`. A URL that does not parse is reduced to its scheme, since its secret cannot be
/// located reliably.
pub(crate) fn redact_url(url: &str) -> String {
    let Ok(mut parsed) = url::Url::parse(url) else {
        return match url.split_once(':') {
            Some((scheme, _)) => format!("{scheme}:<unparseable URL>"),
            None => "<unparseable URL>".to_string(),
        };
    };
    if parsed.password().is_some() {
        // Fails only for URLs that cannot hold credentials, which then have none.
        let _ = parsed.set_password(Some(MASK));
    }
    mask_secret_params(&mut parsed);
    parsed.to_string()
}

/// Replaces the values of secret query parameters, keeping the others in order.
fn mask_secret_params(url: &mut url::Url) {
    let has_secret = url.query_pairs().any(|(key, _)| is_secret(&key));
    if !has_secret {
        return;
    }
    let pairs: Vec<(String, String)> = url
        .query_pairs()
        .map(|(key, value)| {
            let value = if is_secret(&key) {
                MASK.to_string()
            } else {
                value.into_owned()
            };
            (key.into_owned(), value)
        })
        .collect();
    url.query_pairs_mut().clear().extend_pairs(pairs);
}

/// Whether a query parameter holds a secret.
fn is_secret(key: &str) -> bool {
    SECRET_PARAMS
        .iter()
        .any(|secret| key.eq_ignore_ascii_case(secret))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_in_user_info_are_masked() {
        assert_eq!(
            redact_url("postgres://vivarium:s3cret@db.internal:5432/state"),
            "postgres://vivarium:***@db.internal:5432/state"
        );
    }

    #[test]
    fn password_parameters_are_masked() {
        assert_eq!(
            redact_url("postgres://db/state?user=v&password=s3cret&sslmode=require"),
            "postgres://db/state?user=v&password=***&sslmode=require"
        );
    }

    #[test]
    fn urls_without_secrets_are_unchanged() {
        assert_eq!(
            redact_url("sqlite:///var/lib/vivarium/state.db?mode=rwc"),
            "sqlite:///var/lib/vivarium/state.db?mode=rwc"
        );
        assert_eq!(redact_url("sqlite::memory:"), "sqlite::memory:");
        assert_eq!(
            redact_url("postgres://vivarium@db/state"),
            "postgres://vivarium@db/state"
        );
    }

    #[test]
    fn unparseable_urls_keep_only_their_scheme() {
        assert_eq!(
            redact_url("postgres://user:pa ss@[bad/state"),
            "postgres:<unparseable URL>"
        );
        assert_eq!(redact_url("no scheme at all"), "<unparseable URL>");
    }
}
