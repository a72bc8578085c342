//! Identities, secrets and permissions for the actions service.
//!
//! Pure logic with no storage: how secrets are made, hashed and checked, how stored secrets
//! are sealed and opened, how a request's credentials are read, and whether a set of grants
//! allows an operation. The store keeps the data; the server asks this crate for every
//! decision.

mod credentials;
mod grants;
mod o2_grants;
mod sealing;
mod secrets;

pub use credentials::{Credentials, parse_basic_auth};
pub use grants::{Grant, GrantError, ObjectScope, ResourceKind, Verb, allows};
pub use o2_grants::{GrantForm, O2Grant, O2Permission};
pub use sealing::{KeyError, Keyring, SECRET_KEY_BYTES, SealError, Sealed, SecretKey, SecretPlace};
pub use secrets::{
    PasswordError, TokenHash, csrf_matches, csrf_token, generate_password, generate_session_secret,
    generate_token, hash_password, hash_token, verify_password, verify_token,
};
