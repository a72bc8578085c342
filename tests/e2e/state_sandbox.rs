//! `vivarium.state` inside the sandbox, on the pre-initialized interpreter, over a state
//! reader held in memory (the service's store is tested with the service): reads see the
//! call's own writes, the writes come back with the outcome in order, quota and type errors
//! raise inside the action, and a call without state says so.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

use serde_json::{Value, json};
use vivarium_sandbox::{
    ActionEnv, Call, Input, Limits, Outcome, OutcomeKind, PrepareOptions, ResultShape, StateAccess,
    StateEntry, StateFuture, StateQuotas, StateReader, StateUsage, StateWrite, value_bytes,
};

use crate::common::files::write_action;
use crate::common::{CACHE_DIR, ensure_built_runtime};

/// An action's stored state, held in memory.
#[derive(Default)]
struct Stored(Mutex<BTreeMap<String, StateEntry>>);

impl StateReader for Stored {
    fn get<'a>(&'a self, key: &'a str) -> StateFuture<'a, Option<StateEntry>> {
        let found = self.0.lock().expect("the map").get(key).cloned();
        Box::pin(async move { Ok(found) })
    }

    fn keys<'a>(&'a self, prefix: &'a str) -> StateFuture<'a, Vec<String>> {
        let keys = self
            .0
            .lock()
            .expect("the map")
            .keys()
            .filter(|key| key.starts_with(prefix))
            .cloned()
            .collect();
        Box::pin(async move { Ok(keys) })
    }

    fn usage(&self) -> StateFuture<'_, StateUsage> {
        let map = self.0.lock().expect("the map");
        let usage = StateUsage {
            keys: map.len() as u64,
            bytes: map
                .iter()
                .map(|(key, entry)| key.len() as u64 + value_bytes(&entry.value))
                .sum(),
        };
        Box::pin(async move { Ok(usage) })
    }
}

/// Runs `main` once with `state` (none: no state) and answers the outcome.
fn call(main: &str, state: Option<StateAccess>) -> Outcome {
    ensure_built_runtime();
    let sandbox = vivarium_sandbox::prepare(
        Path::new(CACHE_DIR),
        &PrepareOptions {
            pool_size: 1,
            max_concurrent_calls: 1,
            ..Default::default()
        },
    )
    .expect("the snapshot sandbox");
    let action = write_action(&[("main.py", main)]);
    let env = ActionEnv::default();
    sandbox
        .run(&Call {
            action_dir: action.path(),
            input: Input::Data(json!([{"alert_name": "cpu"}])),
            env: &env,
            limits: Limits::DEFAULT,
            shape: ResultShape::Any,
            dependency_layer: None,
            egress: None,
            cpu_slot: None,
            state,
            log_sink: None,
        })
        .expect("the call")
}

fn access(stored: &[(&str, Value, i64)], quotas: StateQuotas) -> StateAccess {
    let map = stored
        .iter()
        .map(|(key, value, version)| {
            let entry = StateEntry {
                value: value.clone(),
                version: *version,
            };
            (key.to_string(), entry)
        })
        .collect();
    StateAccess {
        reader: Arc::new(Stored(Mutex::new(map))),
        quotas,
    }
}

#[test]
fn reads_see_the_calls_writes_and_the_writes_come_back_in_order() {
    let main = r#"from vivarium import state

def main(data, logger):
    fired = state.incr("fired:" + data[0]["alert_name"])
    before = state.get("last_seen", default="never")
    version = state.set("last_seen", "12:00", ttl="1h")
    value, seen_version = state.entry("last_seen")
    gone = state.delete("old")
    return {"fired": fired, "before": before, "version": version, "value": value,
            "seen_version": seen_version, "gone": gone, "keys": state.keys("")}
"#;
    let stored = access(
        &[("fired:cpu", json!(41), 3), ("old", json!([1]), 1)],
        StateQuotas::DEFAULT,
    );
    let outcome = call(main, Some(stored));
    assert_eq!(outcome.kind, OutcomeKind::Ok, "{outcome:?}");
    assert_eq!(
        outcome.result,
        Some(json!({
            "fired": 42, "before": "never", "version": 1, "value": "12:00",
            "seen_version": 1, "gone": true, "keys": ["fired:cpu", "last_seen"]
        }))
    );
    let keys: Vec<&str> = outcome.state_writes.iter().map(StateWrite::key).collect();
    assert_eq!(keys, ["fired:cpu", "last_seen", "old"]);
    assert!(matches!(
        &outcome.state_writes[1],
        StateWrite::Set { ttl: Some(ttl), .. } if ttl.as_secs() == 3600
    ));
}

#[test]
fn quota_and_type_errors_raise_inside_the_action() {
    let main = r#"from vivarium import state

def main(data, logger):
    caught = []
    for attempt in (lambda: state.set("big", "x" * 100),
                    lambda: state.incr("name"),
                    lambda: state.set("k", {1, 2}),
                    lambda: state.set("", 1),
                    lambda: state.set("k", 1, ttl="soon")):
        try:
            attempt()
            caught.append(None)
        except state.QuotaExceeded as error:
            caught.append(["quota", str(error)])
        except state.StateError as error:
            caught.append(["state", str(error)])
        except TypeError as error:
            caught.append(["type", str(error)])
    return caught
"#;
    let quotas = StateQuotas {
        value_bytes: 64,
        ..StateQuotas::DEFAULT
    };
    let outcome = call(main, Some(access(&[("name", json!("a"), 1)], quotas)));
    assert_eq!(outcome.kind, OutcomeKind::Ok, "{outcome:?}");
    let caught = outcome.result.expect("a result");
    let kinds: Vec<&Value> = caught
        .as_array()
        .expect("a list")
        .iter()
        .map(|c| &c[0])
        .collect();
    assert_eq!(
        kinds,
        [
            &json!("quota"),
            &json!("state"),
            &json!("type"),
            &json!("state"),
            &json!("state")
        ],
        "{caught}"
    );
    assert!(
        caught[0][1].as_str().is_some_and(|m| m.contains("64")),
        "{caught}"
    );
    assert!(
        caught[1][1].as_str().is_some_and(|m| m.contains("integer")),
        "{caught}"
    );
    assert!(
        outcome.state_writes.is_empty(),
        "refused writes are not kept"
    );
}

#[test]
fn a_call_without_state_says_so() {
    let main = "from vivarium import state\n\ndef main(data, logger):\n    state.get('k')\n";
    let outcome = call(main, None);
    assert_eq!(outcome.kind, OutcomeKind::ScriptError, "{outcome:?}");
    let error = outcome.error.expect("an error");
    assert_eq!(error.type_name, "StateError");
    assert!(error.message.contains("no state"), "{}", error.message);
}

#[test]
fn nothing_of_one_calls_state_module_is_seen_by_the_next() {
    let main = r#"from vivarium import state

def main(data, logger):
    seen = getattr(state, "left_behind", None)
    state.left_behind = "by an earlier call"
    state.set("k", 1)
    return {"seen": seen}
"#;
    for _ in 0..2 {
        let outcome = call(main, Some(access(&[], StateQuotas::DEFAULT)));
        assert_eq!(outcome.result, Some(json!({"seen": null})), "{outcome:?}");
        assert_eq!(
            outcome.state_writes.len(),
            1,
            "each call hands back only its own writes"
        );
    }
}
