//! Outbound HTTP for actions, deny by default: the allowlist grammar ([`allowlist`]), the
//! address classes ([`address`]), the per-action policy ([`policy`]), the limits, and the
//! HTTP client that enforces them ([`client`]), with a per-call budget and audit ([`call`]).
//!
//! The policy is pure logic; only [`client`] touches the network. The rules it follows are
//! the SSRF rules that hold up: WHATWG parsing, names resolved on the host, non-global
//! addresses dropped after unwrapping embedded IPv4, connections only to the checked
//! addresses, metadata addresses always blocked, no proxies, no redirects, `Host` from the
//! URL, hop-by-hop headers dropped, no decompression.

pub mod address;
pub mod allowlist;
pub mod call;
pub mod client;
mod error;
mod exchange;
mod limits;
pub mod policy;

pub use allowlist::{Allowlist, Author, HostRule, RuleError};
pub use call::{AuditRecord, CallEgress, Egress, origin_of};
pub use client::{EgressClient, Lookup, SystemLookup, Traffic};
pub use error::{ErrorCode, Failure, FailureClass};
pub use exchange::{GuestRequest, GuestResponse};
pub use limits::EgressLimits;
pub use policy::{ActionEgress, ORIGIN_RULE, OperatorEgress, Permit};
