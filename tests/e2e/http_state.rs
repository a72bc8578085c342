//! Durable state through the service: counters survive calls, concurrent runs never lose a
//! count, a failed run changes nothing, a compare-and-set conflict fails the run naming the
//! key, quotas raise inside the action, keys expire, no action sees another's state, and the
//! API reads, edits and clears it.

use std::time::Duration;

use serde_json::{Value, json};

use crate::common::api::Api;
use crate::common::client::Creds;
use crate::common::files::data_dir;
use crate::common::forms::service_action;
use crate::common::process::{Options, Server};
use crate::common::wait_for;
use crate::common::zips::zip_main;

const ORG: &str = "default";
const RUNNER: &str = "runner@example.com";

/// Counts its calls; fails after counting when its first record says `fail`.
const COUNTER: &str = r#"from vivarium import state

def main(data, logger):
    count = state.incr("count")
    if data and data[0].get("fail"):
        raise ValueError("failed after counting")
    return [{"count": count}]
"#;

fn server(config: &str) -> (tempfile::TempDir, Server) {
    let data = data_dir();
    let server = Server::start_with(data.path(), Options::default().config(config));
    server.create_runner(ORG, &Creds::root(), RUNNER);
    (data, server)
}

fn action(server: &Server, name: &str, main: &str) -> String {
    server.create_action(
        ORG,
        &Creds::root(),
        &service_action(name, &zip_main(main), RUNNER),
    )
}

fn run(server: &Server, id: &str, inputs: Value) -> Value {
    server.test_run(ORG, &Creds::root(), id, &inputs).ok_json()
}

/// The action's stored state, as `{key: [value, version]}`.
fn stored(server: &Server, id: &str) -> Value {
    let listed = server
        .get(&format!("/api/{ORG}/actions/{id}/state"), &Creds::root())
        .ok_json();
    let entries = listed["data"].as_array().expect("data").iter();
    entries
        .map(|entry| {
            let key = entry["key"].as_str().expect("key").to_string();
            (key, json!([entry["value"], entry["version"]]))
        })
        .collect::<serde_json::Map<_, _>>()
        .into()
}

#[test]
fn counters_survive_calls_and_a_failed_run_changes_nothing() {
    let (_data, server) = server("");
    let id = action(&server, "counter", COUNTER);
    for expected in 1..=3 {
        let answer = run(&server, &id, json!([]));
        assert_eq!(answer["result"], json!([{"count": expected}]), "{answer}");
    }
    let failed = run(&server, &id, json!([{"fail": true}]));
    assert_eq!(failed["outcome"], json!("script_error"), "{failed}");
    assert_eq!(stored(&server, &id), json!({"count": [3, 3]}));
    let next = run(&server, &id, json!([]));
    assert_eq!(
        next["result"],
        json!([{"count": 4}]),
        "the failed run counted nothing"
    );
    let history = server.runs(ORG, &id);
    let runs = history["runs"].as_array().expect("runs");
    assert_eq!(runs[0]["state_changes"], json!(["count"]), "{history}");
    assert_eq!(
        runs[1]["state_changes"],
        json!([]),
        "the failed run changed nothing"
    );
}

#[test]
fn concurrent_runs_never_lose_a_count() {
    let (_data, server) = server("max_concurrent_runs = 2\n");
    let id = action(&server, "counter", COUNTER);
    const RUNS: usize = 12;
    std::thread::scope(|scope| {
        for _ in 0..RUNS {
            scope.spawn(|| {
                let answer = run(&server, &id, json!([]));
                assert_eq!(answer["outcome"], json!("ok"), "{answer}");
            });
        }
    });
    assert_eq!(stored(&server, &id), json!({"count": [RUNS, RUNS]}));
}

#[test]
fn a_compare_and_set_conflict_fails_the_run_naming_the_key_and_changes_nothing() {
    let (_data, server) = server("");
    let main = r#"from vivarium import state

def main(data, logger):
    state.incr("other")
    value, version = state.entry("claim") or (None, 0)
    state.set("claim", "mine", if_version=version + data[0]["skew"])
    return [{"claimed_from": version}]
"#;
    let id = action(&server, "claimer", main);
    let first = run(&server, &id, json!([{"skew": 0}]));
    assert_eq!(first["outcome"], json!("ok"), "{first}");
    let conflicted = run(&server, &id, json!([{"skew": 5}]));
    assert_eq!(
        conflicted["outcome"],
        json!("state_conflict"),
        "{conflicted}"
    );
    assert_eq!(conflicted["result"], Value::Null, "{conflicted}");
    let message = conflicted["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("\"claim\""), "{message}");
    assert!(message.contains("version 1"), "{message}");
    assert_eq!(conflicted["error"]["type"], json!("StateConflict"));
    assert_eq!(
        stored(&server, &id),
        json!({"claim": ["mine", 1], "other": [1, 1]}),
        "nothing of the conflicting run was applied"
    );
    let transform = server.post(
        &format!("/api/{ORG}/actions/{id}/transform"),
        &Creds::root(),
        &json!({"hits": [{"skew": 5}]}),
    );
    let body = transform.expect_status(422).json();
    assert_eq!(body["outcome"], json!("state_conflict"), "{body}");
}

#[test]
fn quotas_raise_inside_the_action_and_keys_expire() {
    let (_data, server) = server("[state]\nkeys_per_action = 2\n");
    let main = r#"from vivarium import state

def main(data, logger):
    written = []
    for key in ("a", "b", "c"):
        try:
            state.set(key, 1, ttl=data[0]["ttl"])
            written.append(key)
        except state.QuotaExceeded as error:
            written.append(str(error))
    return [{"written": written}]
"#;
    let id = action(&server, "filler", main);
    let answer = run(&server, &id, json!([{"ttl": "1s"}]));
    let written = &answer["result"][0]["written"];
    assert_eq!(written[0], json!("a"), "{answer}");
    assert_eq!(written[1], json!("b"), "{answer}");
    assert!(
        written[2]
            .as_str()
            .is_some_and(|m| m.contains("over the 2")),
        "{answer}"
    );
    assert_eq!(stored(&server, &id), json!({"a": [1, 1], "b": [1, 1]}));
    wait_for(Duration::from_secs(15), "the keys to expire", || {
        (stored(&server, &id) == json!({})).then_some(())
    });
}

#[test]
fn no_action_sees_anothers_state_and_the_api_reads_edits_and_clears_it() {
    let (_data, server) = server("");
    let root = Creds::root();
    let writer = action(
        &server,
        "writer",
        "from vivarium import state\n\ndef main(data, logger):\n    state.set('secret', data[0]['v'])\n    return []\n",
    );
    let reader = action(
        &server,
        "reader",
        "from vivarium import state\n\ndef main(data, logger):\n    return [{'seen': state.get('secret', default='nothing'), 'keys': state.keys()}]\n",
    );
    run(&server, &writer, json!([{"v": 42}]));
    let seen = run(&server, &reader, json!([]));
    assert_eq!(
        seen["result"],
        json!([{"seen": "nothing", "keys": []}]),
        "{seen}"
    );

    let path = |id: &str, rest: &str| format!("/api/{ORG}/actions/{id}/state{rest}");
    let put = server
        .put(
            &path(&reader, "/secret"),
            &root,
            &json!({"value": {"set": "by an operator"}}),
        )
        .ok_json();
    assert_eq!(put["version"], json!(1), "{put}");
    let seen = run(&server, &reader, json!([]));
    assert_eq!(
        seen["result"][0]["seen"],
        json!({"set": "by an operator"}),
        "{seen}"
    );
    server
        .put(
            &path(&reader, "/k"),
            &root,
            &json!({"value": 1, "ttl": "soon"}),
        )
        .expect_status(400);
    server
        .put(&path(&reader, "/k"), &root, &json!({"ttl": "1h"}))
        .expect_status(422);
    server.delete(&path(&reader, "/secret"), &root).ok_json();
    server
        .delete(&path(&reader, "/secret"), &root)
        .expect_status(404);
    assert_eq!(stored(&server, &writer), json!({"secret": [42, 1]}));
    let cleared = server.delete(&path(&writer, ""), &root).ok_json();
    assert_eq!(cleared["cleared"], json!(1), "{cleared}");
    assert_eq!(stored(&server, &writer), json!({}));

    let member = server.create_user(ORG, &root, "member@example.com", "member");
    server.get(&path(&writer, ""), &member).expect_status(403);
    server
        .get(&format!("/api/{ORG}/actions/not-a-uuid/state"), &root)
        .expect_status(404);
}
