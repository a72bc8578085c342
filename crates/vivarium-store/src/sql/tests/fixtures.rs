//! Records for tests, with every field set to something recognisable.

use std::collections::BTreeMap;

use vivarium_auth::{Grant, ObjectScope, ResourceKind, Sealed, Verb};
use vivarium_sandbox::{LogLine, OutcomeKind};

use crate::{
    Action, ActionStatus, ExecutionKind, MetadataStore, Run, SecretRecord, ServiceAccount, Trigger,
    User,
};

/// The first test organization.
pub(crate) const ACME: &str = "acme";
/// The second test organization, which must never see the first one's records.
pub(crate) const GLOBEX: &str = "globex";

/// Creates both test organizations.
pub(crate) async fn two_orgs(store: &dyn MetadataStore) {
    store.ensure_org(ACME).await.expect("create acme");
    store.ensure_org(GLOBEX).await.expect("create globex");
}

/// A user who is not root.
pub(crate) fn user(email: &str) -> User {
    User {
        email: email.to_string(),
        password_hash: format!("hash-of-{email}"),
        is_root: false,
        created_at: 1_000,
    }
}

/// A service account of `org`.
pub(crate) fn account(org: &str, email: &str) -> ServiceAccount {
    ServiceAccount {
        org: org.to_string(),
        email: email.to_string(),
        first_name: "Bot".to_string(),
        last_name: format!("of {org}"),
        token_hash: format!("token-of-{email}-in-{org}"),
        created_at: 2_000,
    }
}

/// A grant on action scripts.
pub(crate) fn grant(verb: Verb, object: ObjectScope) -> Grant {
    Grant {
        resource: ResourceKind::ActionScripts,
        object,
        verb,
    }
}

/// A grant on one action script.
pub(crate) fn one(id: &str) -> ObjectScope {
    ObjectScope::One(id.to_string())
}

/// A `service` action of `org` created at `created_at`, with every optional field unset.
pub(crate) fn action(org: &str, id: &str, name: &str, created_at: i64) -> Action {
    Action {
        id: id.to_string(),
        org: org.to_string(),
        name: name.to_string(),
        description: format!("{name} of {org}"),
        execution: ExecutionKind::Service,
        cron_expr: None,
        environment_variables: BTreeMap::from([
            (
                "API_URL".to_string(),
                "https://example.invalid/api".to_string(),
            ),
            ("MODE".to_string(), "strict \"quoted\" ✓".to_string()),
        ]),
        zip_file_name: format!("{name}.zip"),
        zip_digest: format!("digest-{id}"),
        zip_size: 4_096,
        service_account: "bot@example.com".to_string(),
        owner: "owner@example.com".to_string(),
        created_by: "creator@example.com".to_string(),
        created_at,
        updated_at: created_at,
        last_run_at: None,
        last_successful_at: None,
        status: ActionStatus::Ready,
        paused: false,
        next_run_at: None,
        dependency_lock: None,
        allowed_hosts: Vec::new(),
    }
}

/// A scheduled action of `org`, due at `next_run_at`.
pub(crate) fn scheduled(
    org: &str,
    id: &str,
    execution: ExecutionKind,
    next_run_at: Option<i64>,
) -> Action {
    Action {
        execution,
        cron_expr: Some("*/5 * * * *".to_string()),
        next_run_at,
        ..action(org, id, id, 100)
    }
}

/// A successful run of an action started at `started_at`.
pub(crate) fn run(org: &str, action_id: &str, id: &str, started_at: i64) -> Run {
    Run {
        id: id.to_string(),
        org: org.to_string(),
        action_id: action_id.to_string(),
        trigger: Trigger::Manual,
        trace_id: None,
        started_at,
        duration_ms: 12.5,
        fuel_used: 812_000_000,
        peak_memory_bytes: 33_554_432,
        outcome: OutcomeKind::Ok.into(),
        error_type: None,
        error_message: None,
        traceback: Vec::new(),
        logs: vec![LogLine {
            time: Some("2026-12-02T10:00:00Z".to_string()),
            ..LogLine::host("INFO", "started".to_string())
        }],
        logs_truncated: false,
        input_count: 3,
        output_count: Some(2),
        state_changes: vec!["seen".to_string()],
        scratch_bytes: 8192,
        scratch_files: 2,
    }
}

/// A failed run of an action started at `started_at`, with every optional field set.
pub(crate) fn failed_run(org: &str, action_id: &str, id: &str, started_at: i64) -> Run {
    Run {
        trigger: Trigger::Alert,
        trace_id: Some("trace-7f3a".to_string()),
        outcome: OutcomeKind::ScriptError.into(),
        error_type: Some("ValueError".to_string()),
        error_message: Some("bad record: {\"k\": 1}".to_string()),
        traceback: vec![
            "File \"main.py\", line 3, in main".to_string(),
            "ValueError".to_string(),
        ],
        logs: vec![LogLine {
            logger: "root".to_string(),
            exc: Some("ValueError".to_string()),
            ..LogLine::host("ERROR", "boom".to_string())
        }],
        logs_truncated: true,
        output_count: None,
        ..run(org, action_id, id, started_at)
    }
}

/// A sealed value told apart by `tag` (the store never opens it, so any text does).
pub(crate) fn sealed(tag: &str) -> Sealed {
    Sealed {
        key_id: "0123456789abcdef".to_string(),
        nonce: format!("nonce-{tag}"),
        ciphertext: format!("ciphertext-{tag}"),
    }
}

/// A secret of `org` (of the action `action_id`, or of the organization when empty) stored at
/// `at`, its value told apart by `tag`.
pub(crate) fn secret(org: &str, action_id: &str, name: &str, tag: &str, at: i64) -> SecretRecord {
    SecretRecord {
        org: org.to_string(),
        action_id: action_id.to_string(),
        name: name.to_string(),
        sealed: sealed(tag),
        created_at: at,
        updated_at: at,
    }
}
