//! The environment an action sees: its own variables and nothing of the host's.

use std::collections::BTreeMap;

use crate::error::SandboxError;

/// The variable OpenObserve gives every action: the URL of the cluster it belongs to. Its
/// origin is reachable by every action, as in OpenObserve.
pub const ORIGIN_CLUSTER_URL: &str = "ORIGIN_CLUSTER_URL";
/// The variable OpenObserve gives every action: base64 of `email:password` for HTTP Basic
/// auth against the cluster's API.
pub const ORIGIN_CLUSTER_TOKEN: &str = "ORIGIN_CLUSTER_TOKEN";

/// Validated environment variables for one action: keys match `^[A-Z][A-Z0-9_]*$`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ActionEnv(BTreeMap<String, String>);

impl ActionEnv {
    /// Validates every key and value; the first bad one is reported.
    pub fn new(vars: impl IntoIterator<Item = (String, String)>) -> Result<Self, SandboxError> {
        let mut map = BTreeMap::new();
        for (key, value) in vars {
            if !is_valid_key(&key) {
                return Err(SandboxError::InvalidEnvKey { key });
            }
            if value.contains('\0') {
                return Err(SandboxError::InvalidEnvValue { key });
            }
            map.insert(key, value);
        }
        Ok(Self(map))
    }

    /// The variables in key order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// Number of variables.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Whether `key` follows the rule OpenObserve enforces: `^[A-Z][A-Z0-9_]*$`.
pub fn is_valid_key(key: &str) -> bool {
    let mut chars = key.chars();
    matches!(chars.next(), Some(first) if first.is_ascii_uppercase())
        && chars.all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_follow_the_uppercase_rule() {
        for good in ["A", "API_TOKEN", "X1", "ORIGIN_CLUSTER_URL"] {
            assert!(is_valid_key(good), "{good}");
        }
        for bad in ["", "a", "1A", "_A", "API-TOKEN", "Api", "A B", "É"] {
            assert!(!is_valid_key(bad), "{bad}");
        }
    }

    #[test]
    fn a_bad_key_is_named_in_the_error() {
        let err = ActionEnv::new([("lower".to_string(), "x".to_string())]).unwrap_err();
        assert!(err.to_string().contains("\"lower\""), "{err}");
    }

    #[test]
    fn a_nul_in_a_value_is_refused() {
        let err = ActionEnv::new([("KEY".to_string(), "a\0b".to_string())]).unwrap_err();
        assert!(matches!(err, SandboxError::InvalidEnvValue { .. }));
    }
}
