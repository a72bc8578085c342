//! The egress policy: the allowlist entries an action's owner writes, and the method and URL
//! the guest asks for.

use std::net::IpAddr;
use std::sync::Arc;

use vivarium_egress::policy::check_address;
use vivarium_egress::{ActionEgress, Allowlist, EgressLimits, ORIGIN_RULE, OperatorEgress, Permit};

/// The operator's internal host and the cluster's origin every fuzzed policy has.
const INTERNAL_HOST: &str = "https://internal.example";
const ORIGIN_CLUSTER_URL: &str = "https://o2.example:5080/web/";

/// Lines of hostile text: the action's allowlist entries, then the method, then the URL.
/// What the policy lets through is http or https without credentials, to an origin a rule
/// covers with the method allowed, and never to a metadata address; a private address only
/// for an internal host or the origin.
pub fn run(bytes: &[u8]) {
    let Ok(text) = std::str::from_utf8(bytes) else {
        return;
    };
    let mut lines: Vec<&str> = text.split('\n').collect();
    let (Some(url), Some(method)) = (lines.pop(), lines.pop()) else {
        return;
    };
    let Ok(operator) = OperatorEgress::new(&[INTERNAL_HOST.into()], EgressLimits::default()) else {
        panic!("the fixed operator settings are refused");
    };
    let Ok(allowlist) = Allowlist::parse_action(&lines, &operator.internal_hosts) else {
        return;
    };
    for entry in allowlist.entries() {
        let again = Allowlist::parse_action(&[entry.as_str()], &operator.internal_hosts);
        assert!(again.is_ok(), "the written form {entry:?} is refused");
    }
    let internal_hosts = operator.internal_hosts.clone();
    let policy = ActionEgress::new(
        allowlist.clone(),
        Some(ORIGIN_CLUSTER_URL),
        Arc::new(operator),
    )
    .unwrap_or_else(|e| panic!("the fixed origin is refused: {e}"));
    if let Ok(permit) = policy.decide(method, url) {
        check_permit(&permit, method, &allowlist, &internal_hosts);
    }
}

fn check_permit(permit: &Permit, method: &str, allowlist: &Allowlist, internal: &Allowlist) {
    let url = &permit.url;
    let scheme = url.scheme();
    assert!(scheme == "http" || scheme == "https", "{url}");
    assert!(
        url.username().is_empty() && url.password().is_none(),
        "{url}"
    );
    assert_eq!(url.port_or_known_default(), Some(permit.port), "{url}");
    let is_origin = permit.rule == ORIGIN_RULE;
    if !is_origin {
        let rule = allowlist
            .rule_for(scheme, &permit.host, permit.port)
            .unwrap_or_else(|| panic!("{url} passed with no rule covering it"));
        assert!(rule.allows_method(method), "{method} {url} passed {rule}");
    }
    let is_internal = internal
        .rule_for(scheme, &permit.host, permit.port)
        .is_some();
    assert_eq!(permit.internal, is_internal || is_origin, "{url}");
    let metadata: IpAddr = [169, 254, 169, 254].into();
    let private: IpAddr = [10, 0, 0, 1].into();
    assert!(
        check_address(permit, metadata).is_err(),
        "{url} may reach metadata"
    );
    assert_eq!(
        check_address(permit, private).is_ok(),
        permit.internal,
        "{url}"
    );
}
