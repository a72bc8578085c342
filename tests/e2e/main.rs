//! The end-to-end tests, in one binary with a module per concern. Most drive the real
//! `vivarium` binary, over its command line or as a `vivarium serve` process over HTTP;
//! [`validation`] calls the service's router in-process. Helpers are in [`common`].
//!
//! Run one concern with its module path as a filter: `cargo test --test e2e -- http_secrets::`.

mod common;

mod conformance;
mod console_browser;
mod crash_consistency;
mod deps_cli;
mod egress;
mod http_deps;
mod http_egress;
mod http_identities;
mod http_isolation;
mod http_o2_client;
mod http_operations;
mod http_permissions;
mod http_replicas;
mod http_secrets;
mod http_state;
mod http_validation;
mod http_walkthrough;
mod malicious_zips;
mod numpy_sandbox;
mod overload;
mod pandas_sandbox;
mod run_cli;
mod runtime_cli;
mod scratch_sandbox;
mod snapshot_runtime;
mod state_cli;
mod state_sandbox;
mod validation;
