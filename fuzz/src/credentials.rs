//! `Authorization: Basic` headers, which every API request may carry.

use base64::Engine;
use vivarium_auth::parse_basic_auth;

/// A header value: read or refused; what is read names a non-empty email and secret, and
/// reads back the same when encoded again.
pub fn run(bytes: &[u8]) {
    let Ok(header) = std::str::from_utf8(bytes) else {
        return;
    };
    let Some(credentials) = parse_basic_auth(header) else {
        return;
    };
    assert!(!credentials.email.is_empty() && !credentials.secret.is_empty());
    assert!(!credentials.email.contains(':'), "the email kept a colon");
    let encoded = base64::engine::general_purpose::STANDARD
        .encode(format!("{}:{}", credentials.email, credentials.secret));
    assert_eq!(
        parse_basic_auth(&format!("Basic {encoded}")),
        Some(credentials)
    );
}
