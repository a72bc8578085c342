//! The naming rules of the contract, each with the message OpenObserve clients know.

use std::collections::BTreeMap;

use vivarium_egress::Allowlist;

/// A rule the input breaks, with a message that says which one and what to do, and the
/// field of the request it concerns when there is one. The core returns it; the HTTP edge
/// answers it as 400, naming the field so that a form can show the message beside it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct Invalid {
    /// What is wrong and what to do.
    pub message: String,
    /// The wire name of the field it concerns (`name`, `cron_expr`, ...), if one does.
    pub field: Option<&'static str>,
}

impl Invalid {
    /// A broken rule described by `message`.
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            field: None,
        }
    }

    /// A broken rule of the field named `field` on the wire, described by `message`.
    pub fn of(field: &'static str, message: impl Into<String>) -> Self {
        Self {
            field: Some(field),
            ..Self::new(message)
        }
    }
}

/// What a rule check answers.
pub type Checked<T> = Result<T, Invalid>;

/// Longest action name.
pub const MAX_NAME_CHARS: usize = 32;
/// Characters an action name may not contain (besides white space).
const FORBIDDEN_NAME_CHARS: &[char] = &[':', '#', '?', '&', '%', '\'', '"', '/'];

/// An action name: non-empty, at most 32 characters, none of `: # ? & % ' " /` or white space.
pub fn action_name(name: &str) -> Checked<()> {
    if name.trim().is_empty() {
        return Err(Invalid::of("name", "Name field is missing or empty"));
    }
    if name.chars().count() > MAX_NAME_CHARS {
        return Err(Invalid::of(
            "name",
            format!("Name must be at most {MAX_NAME_CHARS} characters long"),
        ));
    }
    if name
        .chars()
        .any(|c| c.is_whitespace() || FORBIDDEN_NAME_CHARS.contains(&c))
    {
        return Err(Invalid::of(
            "name",
            "Name cannot contain spaces or any of these characters: : # ? & % ' \" /",
        ));
    }
    Ok(())
}

/// Environment variables given as a JSON object encoded in a string (the upload form's field).
pub fn environment_json(text: &str) -> Checked<BTreeMap<String, String>> {
    if text.trim().is_empty() {
        return Ok(BTreeMap::new());
    }
    let vars: BTreeMap<String, String> = serde_json::from_str(text).map_err(|_| {
        Invalid::of(
            "environment_variables",
            "Invalid JSON in environment variables",
        )
    })?;
    environment(&vars)?;
    Ok(vars)
}

/// Allowed hosts given as a JSON list of strings encoded in a string (the upload form's
/// field), not yet checked against the grammar ([`allowed_hosts`]); blank means none.
pub fn allowed_hosts_json(text: &str) -> Checked<Vec<String>> {
    if text.trim().is_empty() {
        return Ok(Vec::new());
    }
    let entries: Vec<String> = serde_json::from_str(text).map_err(|_| {
        Invalid::of("allowed_hosts", 
            r#"Invalid JSON in allowed_hosts: give a list of strings such as ["https://hooks.slack.com", "POST https://api.example.com:8443"]"#,
        )
    })?;
    Ok(entries)
}

/// Allowed hosts follow the allowlist grammar (`[METHODS ]scheme://host[:port]`, `*.suffix`
/// wildcards, no IP literals or localhost names but the operator's `internal` hosts);
/// returns them trimmed, as stored.
pub fn allowed_hosts(entries: &[String], internal: &Allowlist) -> Checked<Vec<String>> {
    let list = Allowlist::parse_action(entries, internal)
        .map_err(|e| Invalid::of("allowed_hosts", format!("Invalid allowed_hosts: {e}")))?;
    Ok(list.entries())
}

/// Environment variable keys match `^[A-Z][A-Z0-9_]*$`.
pub fn environment(vars: &BTreeMap<String, String>) -> Checked<()> {
    if vars.keys().all(|key| vivarium_sandbox::is_valid_key(key))
        && vars.values().all(|v| !v.contains('\0'))
    {
        return Ok(());
    }
    Err(Invalid::of(
        "environment_variables",
        "Environment variable keys must be uppercase and alphanumeric",
    ))
}

/// An email: one `@` with text on both sides, no white space, at most 254 characters.
/// Returns it lower-cased: logins are matched without regard to case.
pub fn email(email: &str) -> Checked<String> {
    let valid = email.len() <= 254
        && !email.chars().any(|c| c.is_whitespace() || c.is_control())
        && matches!(email.split_once('@'), Some((local, domain)) if !local.is_empty() && !domain.is_empty() && !domain.contains('@'));
    if valid {
        Ok(email.to_lowercase())
    } else {
        Err(Invalid::of(
            "email",
            format!("{email:?} is not a valid email address"),
        ))
    }
}

/// A role or organization name: 1 to 64 letters, digits, `_` or `-`.
pub fn identifier(kind: &str, name: &str) -> Checked<()> {
    let valid = (1..=64).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if valid {
        Ok(())
    } else {
        Err(Invalid::new(format!(
            "{kind} name {name:?} is not valid: use 1 to 64 letters, digits, '_' or '-'"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn action_names_follow_the_contract() {
        action_name("uppercase_distinct").unwrap();
        action_name(&"a".repeat(32)).unwrap();
        assert_eq!(
            action_name("").unwrap_err().message,
            "Name field is missing or empty"
        );
        assert!(
            action_name(&"a".repeat(33))
                .unwrap_err()
                .message
                .contains("32")
        );
        for bad in [
            "a b", "a:b", "a#b", "a?b", "a&b", "a%b", "a'b", "a\"b", "a/b", "a\tb",
        ] {
            assert!(action_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn environment_json_is_checked() {
        assert_eq!(environment_json(r#"{"API_KEY": "x"}"#).unwrap().len(), 1);
        assert_eq!(environment_json("").unwrap().len(), 0);
        assert_eq!(
            environment_json("{nope").unwrap_err().message,
            "Invalid JSON in environment variables"
        );
        assert_eq!(
            environment_json(r#"{"lower": "x"}"#).unwrap_err().message,
            "Environment variable keys must be uppercase and alphanumeric"
        );
        assert_eq!(
            environment_json(r#"{"KEY": 1}"#).unwrap_err().message,
            "Invalid JSON in environment variables"
        );
    }

    #[test]
    fn emails_and_identifiers() {
        assert_eq!(
            email("Action_Script@Gmail.com").unwrap(),
            "action_script@gmail.com"
        );
        for bad in ["", "no-at", "@x", "x@", "a b@c", "a@b@c"] {
            assert!(email(bad).is_err(), "{bad}");
        }
        identifier("role", "action-runners_1").unwrap();
        assert!(identifier("role", "no spaces").is_err());
        assert!(identifier("role", "").is_err());
    }
}
