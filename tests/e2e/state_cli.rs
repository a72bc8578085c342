//! `vivarium run`'s state file: an action's `vivarium.state` kept between runs in a JSON file
//! (`--state FILE`, or the action's own under the cache folder), committed only by runs that
//! succeed, by the service's rules, never losing a count to a run beside it.

use std::path::Path;

use serde_json::{Value, json};

use crate::common::cli::{Outcome, run_on};
use crate::common::files::write_action;
use crate::common::{CACHE_DIR, ensure_built_runtime};

const COUNTER: &str = r#"from vivarium import state

def main(data, logger):
    return [{"runs": state.incr("runs")}]
"#;

/// Runs the action in `folder` with `extra` arguments on the snapshot runtime (the one
/// `vivarium.state` is part of).
fn run_with(folder: &Path, extra: &[&str]) -> Outcome {
    ensure_built_runtime();
    let mut args = vec!["--runtime", "snapshot"];
    args.extend_from_slice(extra);
    run_on(folder, &json!([{}]), &args)
}

fn state_file(folder: &Path) -> String {
    folder.join("state.json").display().to_string()
}

fn stored(path: &str) -> Value {
    serde_json::from_slice(&std::fs::read(path).expect("the state file")).expect("JSON")
}

#[test]
fn a_counter_survives_runs_in_the_state_file() {
    let action = write_action(&[("main.py", COUNTER)]);
    let kept = tempfile::tempdir().expect("a folder");
    let file = state_file(kept.path());
    for expected in [1, 2] {
        let outcome = run_with(action.path(), &["--state", &file]);
        assert_eq!(outcome.success_json(), json!([{"runs": expected}]));
        outcome.assert_stderr_contains(&format!("state: changed runs in {file}"));
    }
    let entry = &stored(&file)["entries"]["runs"];
    assert_eq!((&entry["value"], &entry["version"]), (&json!(2), &json!(2)));
}

#[test]
fn the_default_file_is_the_action_s_own_under_the_cache() {
    let action = write_action(&[("main.py", COUNTER)]);
    for expected in [1, 2] {
        let outcome = run_with(action.path(), &[]);
        assert_eq!(outcome.success_json(), json!([{"runs": expected}]));
    }
    let other = write_action(&[("main.py", COUNTER)]);
    assert_eq!(
        run_with(other.path(), &[]).success_json(),
        json!([{"runs": 1}])
    );
    let name = action
        .path()
        .file_name()
        .and_then(|name| name.to_str())
        .expect("a folder name");
    let kept = std::fs::read_dir(Path::new(CACHE_DIR).join("state"))
        .expect("the cache's state folder")
        .filter_map(Result::ok)
        .any(|entry| entry.file_name().to_string_lossy().starts_with(name));
    assert!(kept, "no state file named after {name}");
}

#[test]
fn a_failing_run_changes_nothing() {
    let failing = "from vivarium import state\n\ndef main(data, logger):\n    state.incr('runs')\n    raise ValueError('no')\n";
    let action = write_action(&[("main.py", failing)]);
    let kept = tempfile::tempdir().expect("a folder");
    let file = state_file(kept.path());
    run_with(action.path(), &["--state", &file]).assert_failure(10, "ValueError");
    assert!(!Path::new(&file).exists(), "a failed run wrote {file}");
}

#[test]
fn a_conflicting_compare_and_set_withholds_the_result_and_stores_nothing() {
    let swap = "from vivarium import state\n\ndef main(data, logger):\n    state.incr('other')\n    state.set('k', 'mine', if_version=1)\n    return [{'done': True}]\n";
    let action = write_action(&[("main.py", swap)]);
    let kept = tempfile::tempdir().expect("a folder");
    let file = state_file(kept.path());
    let before = r#"{"entries": {"k": {"value": "theirs", "version": 3, "updated_at": 0}}}"#;
    std::fs::write(&file, before).expect("writing the state");
    let outcome = run_with(action.path(), &["--state", &file]);
    // A failure prints nothing on stdout: the result is withheld.
    outcome.assert_failure(
        18,
        "error[state_conflict]: the state key \"k\" is at version 3",
    );
    assert_eq!(std::fs::read_to_string(&file).expect("the file"), before);
}

#[test]
fn a_broken_state_file_is_refused_and_kept() {
    let action = write_action(&[("main.py", COUNTER)]);
    let kept = tempfile::tempdir().expect("a folder");
    let file = state_file(kept.path());
    std::fs::write(&file, "{\"runs\": 1}").expect("writing the state");
    let outcome = run_with(action.path(), &["--state", &file]);
    outcome.assert_failure(7, &format!("the state file {file} is not a state file"));
    outcome.assert_stderr_contains("delete it to start from no state");
    assert_eq!(
        std::fs::read_to_string(&file).expect("the file"),
        "{\"runs\": 1}"
    );
}

#[test]
fn runs_at_once_never_lose_a_count() {
    let action = write_action(&[("main.py", COUNTER)]);
    let kept = tempfile::tempdir().expect("a folder");
    let file = state_file(kept.path());
    ensure_built_runtime();
    std::thread::scope(|scope| {
        let runs: Vec<_> = (0..4)
            .map(|_| scope.spawn(|| run_with(action.path(), &["--state", &file])))
            .collect();
        for run in runs {
            run.join().expect("a run").assert_code(0);
        }
    });
    assert_eq!(stored(&file)["entries"]["runs"]["value"], json!(4));
}
