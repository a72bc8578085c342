//! Tokens and passwords: generated with the OS's random source, stored only as hashes,
//! compared in constant time.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use base64::Engine;
use rand::RngCore;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// Prefix of every service-account token, so leaked tokens are easy to recognise and scan for.
const TOKEN_PREFIX: &str = "viv_";

/// A token's SHA-256, lowercase hex. Tokens carry 256 random bits, so a fast hash is enough:
/// no dictionary can guess them, and a stolen hash cannot be turned back into a token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenHash(pub String);

/// A new service-account token: `viv_` and 43 base64url characters (256 random bits).
pub fn generate_token() -> String {
    format!("{TOKEN_PREFIX}{}", random_base64(32))
}

/// A new password for a generated root user: 24 base64url characters (144 random bits).
pub fn generate_password() -> String {
    random_base64(18)
}

/// A new console session secret: 43 base64url characters (256 random bits). Stored only as
/// its [`hash_token`], like a token.
pub fn generate_session_secret() -> String {
    random_base64(32)
}

/// The CSRF token of the session whose secret is `session_secret`: derived from it (so it
/// needs no storage) through a one-way hash (so a page that shows it reveals nothing of the
/// cookie). A cross-site page can read neither, so a request that carries it comes from the
/// console's own pages.
pub fn csrf_token(session_secret: &str) -> String {
    let mut hasher = Sha256::new();
    hasher.update(b"vivarium console csrf\0");
    hasher.update(session_secret.as_bytes());
    hex::encode(hasher.finalize())
}

/// Whether `presented` is the CSRF token of the session `session_secret`, compared in
/// constant time.
pub fn csrf_matches(presented: &str, session_secret: &str) -> bool {
    presented
        .as_bytes()
        .ct_eq(csrf_token(session_secret).as_bytes())
        .into()
}

fn random_base64(bytes: usize) -> String {
    let mut buffer = vec![0u8; bytes];
    rand::rngs::OsRng.fill_bytes(&mut buffer);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(buffer)
}

/// The stored form of a token.
pub fn hash_token(token: &str) -> TokenHash {
    TokenHash(hex::encode(Sha256::digest(token.as_bytes())))
}

/// Whether `presented` is the token behind `stored`, in time independent of where they differ.
pub fn verify_token(presented: &str, stored: &TokenHash) -> bool {
    let presented = hash_token(presented);
    presented.0.as_bytes().ct_eq(stored.0.as_bytes()).into()
}

/// A password could not be hashed.
#[derive(Debug, thiserror::Error)]
#[error("the password could not be hashed: {0}")]
pub struct PasswordError(String);

/// The stored form of a password: Argon2id in PHC string format, salted.
pub fn hash_password(password: &str) -> Result<String, PasswordError> {
    let salt = SaltString::generate(&mut rand::rngs::OsRng);
    argon2::Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|hash| hash.to_string())
        .map_err(|e| PasswordError(e.to_string()))
}

/// Whether `password` matches the stored Argon2 hash; a malformed hash matches nothing.
pub fn verify_password(password: &str, stored: &str) -> bool {
    PasswordHash::new(stored)
        .map(|hash| {
            argon2::Argon2::default()
                .verify_password(password.as_bytes(), &hash)
                .is_ok()
        })
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_long_random_and_prefixed() {
        let (a, b) = (generate_token(), generate_token());
        assert_ne!(a, b);
        assert!(a.starts_with("viv_") && a.len() == 4 + 43, "{a}");
    }

    #[test]
    fn a_csrf_token_belongs_to_its_session_only() {
        let (one, two) = (generate_session_secret(), generate_session_secret());
        assert_ne!(one, two);
        assert!(csrf_matches(&csrf_token(&one), &one));
        assert!(!csrf_matches(&csrf_token(&two), &one));
        assert!(!csrf_matches("", &one));
        assert!(!csrf_token(&one).contains(&one));
    }

    #[test]
    fn a_token_verifies_against_its_hash_only() {
        let token = generate_token();
        let stored = hash_token(&token);
        assert!(verify_token(&token, &stored));
        assert!(!verify_token(&generate_token(), &stored));
        assert!(!stored.0.contains(&token));
    }

    #[test]
    fn passwords_are_salted_and_verified() {
        let first = hash_password("correct horse").unwrap();
        let second = hash_password("correct horse").unwrap();
        assert_ne!(first, second);
        assert!(first.starts_with("$argon2id$"));
        assert!(verify_password("correct horse", &first));
        assert!(!verify_password("wrong", &first));
        assert!(!verify_password("correct horse", "not a hash"));
    }
}
