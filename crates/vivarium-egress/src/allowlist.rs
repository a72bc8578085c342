//! The allowlist grammar: which origins an action may send requests to.
//!
//! An entry is `[METHODS ]scheme://host[:port]`: the scheme `http` or `https`; a DNS name, or
//! `*.` and a suffix for every name below that suffix (not the suffix itself); the port when
//! it is not the scheme's own; optionally, before it and a space, the methods allowed,
//! separated by commas (`POST,PUT https://hooks.example.com`). No paths, queries, fragments or
//! credentials. Actions may not list IP literals or `localhost` names: what a name resolves
//! to is checked on every request, and only the operator can let a name reach a private
//! address (see [`InternalHosts`](crate::InternalHosts)).

use std::fmt;
use std::net::IpAddr;

use url::{Host, Url};

/// Most entries one action's allowlist may hold.
pub const MAX_RULES: usize = 64;

/// Methods a rule may name.
const KNOWN_METHODS: &[&str] = &["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"];

/// Why an allowlist entry was refused; the message says what to write instead.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("allowed host {entry:?}: {reason}")]
pub struct RuleError {
    /// The entry as given.
    pub entry: String,
    /// What is wrong with it and what would be accepted.
    pub reason: String,
}

/// Who writes a rule: an action's owner, or the operator (who may name IP literals and
/// private names).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Author {
    /// The action's owner: names only, never IP literals or `localhost`.
    Action,
    /// The operator's configuration.
    Operator,
}

/// The host part of a rule.
#[derive(Debug, Clone, PartialEq, Eq)]
enum HostPattern {
    /// Exactly this name (lowercase, as the WHATWG parser writes it) or IP literal.
    Exact(String),
    /// Any name ending in `.` and this suffix.
    Below(String),
}

/// One allowlist entry, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostRule {
    text: String,
    scheme: String,
    host: HostPattern,
    port: u16,
    /// Upper-case method names; empty for any method.
    methods: Vec<String>,
}

impl HostRule {
    /// Parses one entry written by `author`.
    pub fn parse(entry: &str, author: Author) -> Result<Self, RuleError> {
        let refuse = |reason: String| RuleError {
            entry: entry.to_string(),
            reason,
        };
        let trimmed = entry.trim();
        let (methods, origin) = match trimmed.split_once(char::is_whitespace) {
            Some((methods, origin)) => (parse_methods(methods).map_err(refuse)?, origin.trim()),
            None => (Vec::new(), trimmed),
        };
        let (wildcard, parseable) = match origin.split_once("://*.") {
            Some((scheme, rest)) => (true, format!("{scheme}://{rest}")),
            None => (false, origin.to_string()),
        };
        let url = Url::parse(&parseable).map_err(|e| {
            refuse(format!(
                "not a URL origin ({e}); write scheme://host[:port], for example https://hooks.slack.com"
            ))
        })?;
        let scheme = url.scheme().to_string();
        if scheme != "http" && scheme != "https" {
            return Err(refuse(format!(
                "scheme {scheme} is not allowed; use http or https"
            )));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(refuse(
                "credentials do not belong in an allowed host; send them in a header".into(),
            ));
        }
        if url.path() != "/" || url.query().is_some() || url.fragment().is_some() {
            return Err(refuse(
                "paths, queries and fragments are not allowed; give only scheme://host[:port]"
                    .into(),
            ));
        }
        if origin.ends_with('/') {
            return Err(refuse(
                "remove the trailing slash: give only scheme://host[:port]".into(),
            ));
        }
        let host = match url.host() {
            Some(Host::Domain(name)) => name.to_string(),
            Some(Host::Ipv4(_) | Host::Ipv6(_)) if wildcard => {
                return Err(refuse("a wildcard needs a name after *.".into()));
            }
            Some(Host::Ipv4(_) | Host::Ipv6(_)) if author == Author::Action => {
                return Err(refuse(
                    "IP literals cannot be allowed by an action; use the host's name, or ask the operator to list it in egress_internal_hosts".into(),
                ));
            }
            Some(Host::Ipv4(ip)) => ip.to_string(),
            Some(Host::Ipv6(ip)) => ip.to_string(),
            None => return Err(refuse("no host; write scheme://host[:port]".into())),
        };
        if author == Author::Action && is_local_name(&host) {
            return Err(refuse(
                "localhost names cannot be allowed by an action; ask the operator to list the host in egress_internal_hosts".into(),
            ));
        }
        if wildcard && !host.contains('.') {
            return Err(refuse(
                "a wildcard must keep at least two labels (*.example.com, not *.com)".into(),
            ));
        }
        let port = url
            .port_or_known_default()
            .ok_or_else(|| refuse("no port for this scheme".into()))?;
        Ok(Self {
            text: trimmed.to_string(),
            scheme,
            host: if wildcard {
                HostPattern::Below(host)
            } else {
                HostPattern::Exact(host)
            },
            port,
            methods,
        })
    }

    /// Whether this rule covers the origin (`scheme`, `host`, `port`), whatever the method.
    pub fn covers(&self, scheme: &str, host: &str, port: u16) -> bool {
        self.scheme == scheme
            && self.port == port
            && match &self.host {
                HostPattern::Exact(name) => name == host,
                HostPattern::Below(suffix) => host
                    .strip_suffix(suffix.as_str())
                    .is_some_and(|head| head.len() > 1 && head.ends_with('.')),
            }
    }

    /// Whether this rule lets `method` through.
    pub fn allows_method(&self, method: &str) -> bool {
        self.methods.is_empty() || self.methods.iter().any(|m| m == method)
    }

    /// The methods this rule allows, empty for all.
    pub fn methods(&self) -> &[String] {
        &self.methods
    }

    /// The host the rule names, unless it is a wildcard.
    fn exact_host(&self) -> Option<&str> {
        match &self.host {
            HostPattern::Exact(name) => Some(name),
            HostPattern::Below(_) => None,
        }
    }
}

impl fmt::Display for HostRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// The entries an action may send requests to: empty means no network at all.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Allowlist {
    rules: Vec<HostRule>,
}

impl Allowlist {
    /// Parses an action's entries, refusing the first bad one and more than [`MAX_RULES`].
    pub fn parse<S: AsRef<str>>(entries: &[S], author: Author) -> Result<Self, RuleError> {
        if entries.len() > MAX_RULES {
            return Err(RuleError {
                entry: format!("{} entries", entries.len()),
                reason: format!("at most {MAX_RULES} allowed hosts per list"),
            });
        }
        let rules = entries
            .iter()
            .map(|entry| HostRule::parse(entry.as_ref(), author))
            .collect::<Result<_, _>>()?;
        Ok(Self { rules })
    }

    /// Parses an action's entries as its owner may write them: names only, except that an
    /// origin the operator lists in `internal` may be named as the operator wrote it (an IP
    /// literal or a `localhost` name): owners choose among internal hosts, never add one.
    pub fn parse_action<S: AsRef<str>>(
        entries: &[S],
        internal: &Allowlist,
    ) -> Result<Self, RuleError> {
        let list = Self::parse(entries, Author::Operator)?;
        for (rule, entry) in list.rules.iter().zip(entries) {
            let operator_named = rule.exact_host().is_some_and(|host| {
                internal.rules.iter().any(|i| {
                    i.exact_host() == Some(host) && i.covers(&rule.scheme, host, rule.port)
                })
            });
            if !operator_named {
                HostRule::parse(entry.as_ref(), Author::Action)?;
            }
        }
        Ok(list)
    }

    /// The first rule covering the origin, if any.
    pub fn rule_for(&self, scheme: &str, host: &str, port: u16) -> Option<&HostRule> {
        self.rules
            .iter()
            .find(|rule| rule.covers(scheme, host, port))
    }

    /// Whether the list allows nothing.
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// The entries as written, in order.
    pub fn entries(&self) -> Vec<String> {
        self.rules.iter().map(ToString::to_string).collect()
    }
}

fn parse_methods(list: &str) -> Result<Vec<String>, String> {
    list.split(',')
        .map(|method| {
            let upper = method.trim().to_ascii_uppercase();
            if KNOWN_METHODS.contains(&upper.as_str()) {
                Ok(upper)
            } else {
                Err(format!(
                    "unknown method {method:?}; methods are {} separated by commas, before the origin and a space",
                    KNOWN_METHODS.join(", ")
                ))
            }
        })
        .collect()
}

/// `localhost` and the names below it, which always mean this machine.
fn is_local_name(host: &str) -> bool {
    host == "localhost" || host.ends_with(".localhost") || host.parse::<IpAddr>().is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(entry: &str) -> HostRule {
        HostRule::parse(entry, Author::Action).unwrap()
    }

    fn refused(entry: &str) -> String {
        HostRule::parse(entry, Author::Action).unwrap_err().reason
    }

    #[test]
    fn an_origin_covers_its_scheme_host_and_default_port_only() {
        let slack = rule("https://hooks.slack.com");
        assert!(slack.covers("https", "hooks.slack.com", 443));
        assert!(!slack.covers("http", "hooks.slack.com", 80));
        assert!(!slack.covers("https", "hooks.slack.com", 8443));
        assert!(!slack.covers("https", "evil.hooks.slack.com", 443));
        assert!(slack.allows_method("POST"));
    }

    #[test]
    fn names_are_normalised_by_the_whatwg_parser() {
        let upper = rule("HTTPS://Hooks.Slack.COM:443");
        assert!(upper.covers("https", "hooks.slack.com", 443));
        let idn = rule("https://bücher.example");
        assert!(idn.covers("https", "xn--bcher-kva.example", 443));
    }

    #[test]
    fn a_wildcard_covers_names_below_its_suffix_not_the_suffix() {
        let rule = rule("https://*.example.com:8443");
        assert!(rule.covers("https", "a.example.com", 8443));
        assert!(rule.covers("https", "a.b.example.com", 8443));
        assert!(!rule.covers("https", "example.com", 8443));
        assert!(!rule.covers("https", "badexample.com", 8443));
        assert!(!rule.covers("https", "a.example.com", 443));
    }

    #[test]
    fn methods_restrict_a_rule() {
        let rule = rule("post,PUT https://api.example.com");
        assert!(rule.allows_method("POST"));
        assert!(rule.allows_method("PUT"));
        assert!(!rule.allows_method("GET"));
        assert!(refused("FETCH https://api.example.com").contains("unknown method"));
    }

    #[test]
    fn bad_entries_say_what_to_write() {
        assert!(refused("hooks.slack.com").contains("scheme://host"));
        assert!(refused("ftp://files.example.com").contains("use http or https"));
        assert!(refused("https://hooks.slack.com/services").contains("paths"));
        assert!(refused("https://hooks.slack.com/").contains("trailing slash"));
        assert!(refused("https://hooks.slack.com?x=1").contains("paths"));
        assert!(refused("https://user:pw@hooks.slack.com").contains("credentials"));
        assert!(refused("https://*.com").contains("two labels"));
    }

    #[test]
    fn actions_cannot_list_ip_literals_or_localhost() {
        for entry in [
            "http://127.0.0.1",
            "http://2130706433",
            "http://0x7f.1",
            "http://[::1]",
            "http://169.254.169.254",
            "http://localhost:8080",
            "http://db.localhost",
        ] {
            let reason = refused(entry);
            assert!(
                reason.contains("egress_internal_hosts"),
                "{entry}: {reason}"
            );
        }
    }

    #[test]
    fn the_operator_may_list_ip_literals_and_local_names() {
        let rule = HostRule::parse("http://127.0.0.1:5080", Author::Operator).unwrap();
        assert!(rule.covers("http", "127.0.0.1", 5080));
        assert!(HostRule::parse("http://localhost:5080", Author::Operator).is_ok());
    }

    #[test]
    fn an_action_may_name_an_internal_host_as_the_operator_wrote_it() {
        let internal = Allowlist::parse(
            &["http://localhost:5080", "http://10.0.0.9"],
            Author::Operator,
        )
        .unwrap();
        let list = Allowlist::parse_action(
            &["http://localhost:5080", "https://a.example.com"],
            &internal,
        )
        .unwrap();
        assert!(list.rule_for("http", "localhost", 5080).is_some());
        assert!(Allowlist::parse_action(&["http://localhost:5081"], &internal).is_err());
        assert!(Allowlist::parse_action(&["http://10.0.0.9"], &internal).is_ok());
        assert!(Allowlist::parse_action(&["http://10.0.0.8"], &internal).is_err());
        let bad = Allowlist::parse_action(&["ftp://x.example.com"], &internal).unwrap_err();
        assert!(bad.reason.contains("http or https"));
    }

    #[test]
    fn a_list_finds_the_first_covering_rule_and_is_capped() {
        let list = Allowlist::parse(
            &["GET https://api.example.com", "https://*.example.com"],
            Author::Action,
        )
        .unwrap();
        let found = list.rule_for("https", "api.example.com", 443).unwrap();
        assert_eq!(found.to_string(), "GET https://api.example.com");
        assert!(list.rule_for("https", "other.org", 443).is_none());
        let many: Vec<String> = (0..=MAX_RULES)
            .map(|i| format!("https://h{i}.example.com"))
            .collect();
        assert!(Allowlist::parse(&many, Author::Action).is_err());
        assert!(Allowlist::default().is_empty());
    }
}
