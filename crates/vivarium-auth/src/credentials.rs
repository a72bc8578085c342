//! HTTP Basic credentials, as OpenObserve clients send them: `email:token` or `email:password`.

use base64::Engine;

/// An identity claim: an email and the secret offered for it. The secret is never logged.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    /// Who claims to be calling.
    pub email: String,
    /// The token or password offered.
    pub secret: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("email", &self.email)
            .field("secret", &"<redacted>")
            .finish()
    }
}

/// Reads an `Authorization: Basic ...` header value; `None` when it is anything else.
pub fn parse_basic_auth(header: &str) -> Option<Credentials> {
    let (scheme, encoded) = header.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (email, secret) = text.split_once(':')?;
    if email.is_empty() || secret.is_empty() {
        return None;
    }
    Some(Credentials {
        email: email.to_string(),
        secret: secret.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(text: &str) -> String {
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(text)
        )
    }

    #[test]
    fn basic_credentials_are_read() {
        let credentials = parse_basic_auth(&header("a@b.c:s3cr:et")).unwrap();
        assert_eq!(credentials.email, "a@b.c");
        assert_eq!(credentials.secret, "s3cr:et");
    }

    #[test]
    fn other_schemes_and_garbage_are_not_credentials() {
        assert!(parse_basic_auth("Bearer abc").is_none());
        assert!(parse_basic_auth("Basic !!!").is_none());
        assert!(parse_basic_auth(&header("no-colon")).is_none());
        assert!(parse_basic_auth(&header(":secret")).is_none());
        assert!(parse_basic_auth(&header("email:")).is_none());
    }

    #[test]
    fn the_secret_never_shows_in_debug_output() {
        let credentials = parse_basic_auth(&header("a@b.c:hunter2")).unwrap();
        assert!(!format!("{credentials:?}").contains("hunter2"));
    }
}
