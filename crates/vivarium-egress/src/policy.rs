//! The egress policy of one action, deny by default: the action's own allowlist, the cluster
//! it belongs to (`ORIGIN_CLUSTER_URL`, reachable by every action, as in OpenObserve), and the
//! operator's internal hosts, the only names allowed to reach private addresses.

use std::net::IpAddr;
use std::sync::Arc;

use url::{Host, Url};

use crate::address::{AddressClass, classify};
use crate::allowlist::{Allowlist, Author, HostRule, RuleError};
use crate::error::{ErrorCode, Failure};
use crate::limits::EgressLimits;

/// The rule name an audit line gives requests to the origin cluster.
pub const ORIGIN_RULE: &str = "origin_cluster_url";

/// What the operator decides for every action: the internal hosts, the limits and extra
/// TLS roots.
#[derive(Debug, Clone, Default)]
pub struct OperatorEgress {
    /// Origins whose names may resolve to private addresses (never to metadata ones).
    pub internal_hosts: Allowlist,
    /// The caps on every call's requests.
    pub limits: EgressLimits,
}

impl OperatorEgress {
    /// The operator's settings from their configured entries.
    pub fn new(internal_hosts: &[String], limits: EgressLimits) -> Result<Self, String> {
        limits.validate()?;
        let internal_hosts = Allowlist::parse(internal_hosts, Author::Operator)
            .map_err(|e| format!("egress_internal_hosts: {e}"))?;
        Ok(Self {
            internal_hosts,
            limits,
        })
    }
}

/// Where one action may send requests.
#[derive(Debug, Clone)]
pub struct ActionEgress {
    allowlist: Allowlist,
    origin: Option<HostRule>,
    operator: Arc<OperatorEgress>,
}

/// A request the policy let through, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Permit {
    /// The parsed URL (userinfo removed).
    pub url: Url,
    /// The lowercase host name or IP literal.
    pub host: String,
    /// The port, explicit or the scheme's.
    pub port: u16,
    /// The rule that allowed it, as written (or [`ORIGIN_RULE`]).
    pub rule: String,
    /// Whether its addresses may be private (an operator internal host or the origin).
    pub internal: bool,
}

impl ActionEgress {
    /// The policy of an action with `allowlist`, in a cluster at `origin_cluster_url` (when
    /// the operator configured one).
    pub fn new(
        allowlist: Allowlist,
        origin_cluster_url: Option<&str>,
        operator: Arc<OperatorEgress>,
    ) -> Result<Self, RuleError> {
        let origin = origin_cluster_url
            .map(|url| HostRule::parse(&origin_of(url)?, Author::Operator))
            .transpose()?;
        Ok(Self {
            allowlist,
            origin,
            operator,
        })
    }

    /// The operator's settings this policy applies.
    pub fn operator(&self) -> &OperatorEgress {
        &self.operator
    }

    /// Whether this action may make any request at all.
    pub fn allows_any(&self) -> bool {
        !self.allowlist.is_empty() || self.origin.is_some()
    }

    /// Decides whether `method` may be sent to `url`: which rule allows it, or why not and
    /// how to allow it. Addresses are checked again once the name is resolved.
    pub fn decide(&self, method: &str, url: &str) -> Result<Permit, Failure> {
        let mut url = Url::parse(url).map_err(|e| {
            Failure::new(
                ErrorCode::HttpRequestUriInvalid,
                "bad_url",
                format!(
                    "{:?} is not a URL ({e})",
                    url.chars().take(80).collect::<String>()
                ),
            )
        })?;
        let scheme = url.scheme().to_string();
        if scheme != "http" && scheme != "https" {
            return Err(Failure::new(
                ErrorCode::HttpRequestUriInvalid,
                "bad_url",
                format!("scheme {scheme} is not supported; actions send http and https only"),
            ));
        }
        // Credentials in the URL are never sent from it: the library sends them as a header.
        let _ = url.set_username("");
        let _ = url.set_password(None);
        let (host, literal) = match url.host() {
            Some(Host::Domain(name)) => (name.to_string(), None),
            Some(Host::Ipv4(ip)) => (ip.to_string(), Some(IpAddr::V4(ip))),
            Some(Host::Ipv6(ip)) => (ip.to_string(), Some(IpAddr::V6(ip))),
            None => {
                return Err(Failure::new(
                    ErrorCode::HttpRequestUriInvalid,
                    "bad_url",
                    format!("{url} has no host"),
                ));
            }
        };
        let port = url.port_or_known_default().unwrap_or(0);
        let origin = format!("{scheme}://{}", authority(&host, literal, port, &scheme));
        let internal = self
            .operator
            .internal_hosts
            .rule_for(&scheme, &host, port)
            .is_some();
        let rule = self.rule_for(&scheme, &host, port, &origin)?;
        if !rule.allows_method(method) {
            return Err(Failure::new(
                ErrorCode::HttpRequestDenied,
                "method_not_allowed",
                format!(
                    "{method} {origin} refused: the action's allowed host {rule} allows only {}; add {method} to that entry to allow it",
                    rule.methods().join(", ")
                ),
            ));
        }
        let is_origin = self
            .origin
            .as_ref()
            .is_some_and(|o| o.covers(&scheme, &host, port));
        let permit = Permit {
            rule: if is_origin {
                ORIGIN_RULE.to_string()
            } else {
                rule.to_string()
            },
            internal: internal || is_origin,
            url,
            host,
            port,
        };
        if let Some(address) = literal {
            check_address(&permit, address)?;
        }
        Ok(permit)
    }

    fn rule_for(
        &self,
        scheme: &str,
        host: &str,
        port: u16,
        origin: &str,
    ) -> Result<&HostRule, Failure> {
        if let Some(rule) = self
            .origin
            .as_ref()
            .filter(|o| o.covers(scheme, host, port))
        {
            return Ok(rule);
        }
        self.allowlist.rule_for(scheme, host, port).ok_or_else(|| {
            let how = if host.parse::<IpAddr>().is_ok() {
                format!(
                    "the service's actions allow names, not IP literals (vivarium run --allow-host {origin} allows it locally)"
                )
            } else {
                format!(
                    "add \"{origin}\" to the action's allowed_hosts (the upload's allowed_hosts field, PUT /api/{{org}}/actions/{{id}}, or vivarium run --allow-host {origin})"
                )
            };
            Failure::new(
                ErrorCode::HttpRequestDenied,
                "not_allowed",
                format!("{origin} is not in this action's allowed hosts; {how}"),
            )
        })
    }
}

/// Whether `permit` may connect to `address`: metadata never, non-global addresses only
/// for internal hosts.
pub fn check_address(permit: &Permit, address: IpAddr) -> Result<(), Failure> {
    match classify(address) {
        AddressClass::Global => Ok(()),
        AddressClass::NonGlobal if permit.internal => Ok(()),
        AddressClass::Metadata => Err(Failure::new(
            ErrorCode::DestinationIpProhibited,
            "metadata_address",
            format!(
                "{} is a cloud metadata address, which actions can never reach",
                address
            ),
        )),
        AddressClass::NonGlobal => Err(Failure::new(
            ErrorCode::DestinationIpProhibited,
            "private_address",
            format!(
                "{} is a private or reserved address; only hosts the operator lists in egress_internal_hosts may reach one",
                address
            ),
        )),
    }
}

/// `host:port`, bracketing IPv6 literals and leaving out the scheme's default port.
fn authority(host: &str, literal: Option<IpAddr>, port: u16, scheme: &str) -> String {
    let host = match literal {
        Some(IpAddr::V6(_)) => format!("[{host}]"),
        _ => host.to_string(),
    };
    let default = if scheme == "https" { 443 } else { 80 };
    if port == default {
        host
    } else {
        format!("{host}:{port}")
    }
}

/// The `scheme://host[:port]` of a configured URL such as `ORIGIN_CLUSTER_URL`.
fn origin_of(url: &str) -> Result<String, RuleError> {
    let parsed = Url::parse(url).map_err(|e| RuleError {
        entry: url.to_string(),
        reason: format!("not a URL ({e})"),
    })?;
    Ok(parsed.origin().ascii_serialization())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(entries: &[&str], internal: &[&str], origin: Option<&str>) -> ActionEgress {
        let internal: Vec<String> = internal.iter().map(ToString::to_string).collect();
        let operator = OperatorEgress::new(&internal, EgressLimits::DEFAULT).unwrap();
        let allowlist = Allowlist::parse(entries, Author::Action).unwrap();
        ActionEgress::new(allowlist, origin, Arc::new(operator)).unwrap()
    }

    fn refusal(policy: &ActionEgress, method: &str, url: &str) -> Failure {
        policy.decide(method, url).unwrap_err()
    }

    #[test]
    fn an_empty_allowlist_allows_nothing() {
        let none = policy(&[], &[], None);
        assert!(!none.allows_any());
        let failure = refusal(&none, "GET", "https://example.com/");
        assert_eq!(failure.code, ErrorCode::HttpRequestDenied);
        assert!(failure.message.contains("add \"https://example.com\""));
    }

    #[test]
    fn an_allowed_origin_passes_with_its_rule() {
        let slack = policy(&["https://hooks.slack.com"], &[], None);
        let permit = slack
            .decide("POST", "https://hooks.slack.com/services/T/B/X?y=1")
            .unwrap();
        assert_eq!(permit.rule, "https://hooks.slack.com");
        assert_eq!(permit.port, 443);
        assert!(!permit.internal);
        let other = refusal(&slack, "POST", "https://hooks.slack.com.evil.io/");
        assert_eq!(other.reason, "not_allowed");
        let port = refusal(&slack, "POST", "https://hooks.slack.com:8443/");
        assert!(port.message.contains("https://hooks.slack.com:8443"));
    }

    #[test]
    fn userinfo_does_not_change_the_host() {
        let slack = policy(&["https://hooks.slack.com"], &[], None);
        let permit = slack
            .decide("GET", "https://hooks.slack.com@127.0.0.1/")
            .unwrap_err();
        assert_eq!(permit.code, ErrorCode::HttpRequestDenied);
        let permit = slack
            .decide("GET", "https://user:pw@hooks.slack.com/")
            .unwrap();
        assert_eq!(permit.url.as_str(), "https://hooks.slack.com/");
    }

    #[test]
    fn methods_are_enforced() {
        let list = policy(&["GET https://api.example.com"], &[], None);
        assert!(list.decide("GET", "https://api.example.com/x").is_ok());
        let failure = refusal(&list, "DELETE", "https://api.example.com/x");
        assert_eq!(failure.reason, "method_not_allowed");
        assert!(failure.message.contains("allows only GET"));
    }

    #[test]
    fn only_http_and_https_urls_with_a_host_are_sent() {
        let list = policy(&["https://api.example.com"], &[], None);
        for url in [
            "file:///etc/passwd",
            "gopher://api.example.com/",
            "not a url",
        ] {
            assert_eq!(
                refusal(&list, "GET", url).code,
                ErrorCode::HttpRequestUriInvalid,
                "{url}"
            );
        }
    }

    #[test]
    fn ip_literals_in_every_spelling_are_refused_for_actions() {
        let list = policy(&["https://api.example.com"], &[], None);
        for url in [
            "http://127.0.0.1/",
            "http://2130706433/",
            "http://0x7f.1/",
            "http://0177.0.0.1/",
            "http://[::ffff:127.0.0.1]/",
            "http://169.254.169.254/latest/meta-data",
        ] {
            let failure = refusal(&list, "GET", url);
            assert_eq!(failure.code, ErrorCode::HttpRequestDenied, "{url}");
            assert!(failure.message.contains("IP literals"), "{url}");
        }
    }

    #[test]
    fn the_origin_cluster_is_allowed_and_internal() {
        let list = policy(&[], &[], Some("http://o2.internal:5080/"));
        assert!(list.allows_any());
        let permit = list
            .decide("POST", "http://o2.internal:5080/api/default/logs/_json")
            .unwrap();
        assert_eq!(permit.rule, ORIGIN_RULE);
        assert!(permit.internal);
        let literal = policy(&[], &[], Some("http://127.0.0.1:5080"));
        assert!(
            literal
                .decide("GET", "http://127.0.0.1:5080/healthz")
                .is_ok()
        );
    }

    #[test]
    fn internal_hosts_may_reach_private_but_never_metadata_addresses() {
        let list = policy(
            &["http://o2.corp.example:5080"],
            &["http://o2.corp.example:5080", "http://169.254.169.254"],
            None,
        );
        let permit = list.decide("GET", "http://o2.corp.example:5080/").unwrap();
        assert!(permit.internal);
        assert!(check_address(&permit, "10.0.0.7".parse().unwrap()).is_ok());
        let metadata = check_address(&permit, "169.254.169.254".parse().unwrap()).unwrap_err();
        assert_eq!(metadata.reason, "metadata_address");
        let origin = policy(&[], &[], Some("http://169.254.169.254"));
        let failure = refusal(&origin, "GET", "http://169.254.169.254/");
        assert_eq!(failure.code, ErrorCode::DestinationIpProhibited);
    }

    #[test]
    fn other_hosts_may_reach_only_global_addresses() {
        let list = policy(&["https://api.example.com"], &[], None);
        let permit = list.decide("GET", "https://api.example.com/").unwrap();
        assert!(check_address(&permit, "93.184.216.34".parse().unwrap()).is_ok());
        let failure = check_address(&permit, "192.168.1.1".parse().unwrap()).unwrap_err();
        assert_eq!(failure.reason, "private_address");
        assert!(failure.message.contains("egress_internal_hosts"));
    }
}
