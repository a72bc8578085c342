//! The pre-initialized interpreter: every call gets a fresh, never-used instance (nothing one
//! call changes is seen by the next), randomness differs per call although the snapshot was
//! taken once, the environment is the call's own, and the snapshot image holds nothing of the
//! process that made it (its cache path, its environment).

mod common;

use std::path::{Path, PathBuf};

use common::{CACHE_DIR, ensure_shared_runtime, run_on, write_action};
use serde_json::{Value, json};

/// Skips (with a note) when the tests run on the pinned interpreter.
fn on_snapshot_runtime() -> bool {
    if std::env::var("VIVARIUM_RUNTIME").is_ok_and(|runtime| runtime.trim() == "pinned") {
        eprintln!("skipped: these tests are about the pre-initialized interpreter");
        return false;
    }
    ensure_shared_runtime();
    true
}

/// Runs `main` on `records` and answers its result.
fn result_of(main: &str, records: &Value, extra: &[&str]) -> Value {
    let action = write_action(&[("main.py", main)]);
    run_on(action.path(), records, extra).success_json()
}

#[test]
fn state_changed_by_one_call_is_not_seen_by_the_next() {
    if !on_snapshot_runtime() {
        return;
    }
    let main = "import json, sys\n\nCALLS = []\n\ndef main(data, logger):\n    seen = [getattr(json, 'vivarium_mark', None), sys.modules.get('leftover') is not None]\n    json.vivarium_mark = 'set by an earlier call'\n    sys.modules['leftover'] = json\n    CALLS.append(1)\n    return [{'seen': seen, 'calls': len(CALLS)}]\n";
    for _ in 0..3 {
        assert_eq!(
            result_of(main, &json!([]), &[]),
            json!([{"seen": [null, false], "calls": 1}])
        );
    }
}

#[test]
fn randomness_differs_between_calls() {
    if !on_snapshot_runtime() {
        return;
    }
    let main = "import os, random, uuid\n\ndef main(data, logger):\n    return [{'random': random.random(), 'urandom': os.urandom(16).hex(), 'uuid': str(uuid.uuid4())}]\n";
    let first = result_of(main, &json!([]), &[]);
    let second = result_of(main, &json!([]), &[]);
    for key in ["random", "urandom", "uuid"] {
        assert_ne!(first[0][key], second[0][key], "{key}: {first} vs {second}");
    }
}

#[test]
fn the_environment_and_arguments_are_the_calls_own() {
    if !on_snapshot_runtime() {
        return;
    }
    let main = "import os, sys\n\ndef main(data, logger):\n    return [{'env': dict(os.environ), 'argv': sys.argv, 'path': [p for p in sys.path if not p.startswith('/usr/local/lib/python3.13')]}]\n";
    let result = result_of(
        main,
        &json!([]),
        &["--env", "API_URL=https://example.invalid"],
    );
    assert_eq!(
        result[0]["env"],
        json!({"API_URL": "https://example.invalid"})
    );
    assert_eq!(result[0]["argv"], json!(["python"]));
    assert_eq!(
        result[0]["path"],
        json!(["/action", "/action/dependencies"])
    );
}

#[test]
fn the_snapshot_holds_nothing_of_the_process_that_took_it() {
    if !on_snapshot_runtime() {
        return;
    }
    let snapshots = snapshot_files(&Path::new(CACHE_DIR).join("snapshots"));
    assert!(!snapshots.is_empty(), "no snapshot under {CACHE_DIR}");
    let cache = std::fs::canonicalize(CACHE_DIR).expect("the cache folder");
    let mut secrets = vec![cache.display().to_string(), CACHE_DIR.to_string()];
    for name in ["HOME", "PATH", "USER", "CARGO_HOME"] {
        if let Ok(value) = std::env::var(name)
            && value.len() > 4
        {
            secrets.push(format!("{name}={value}"));
        }
    }
    for snapshot in snapshots {
        let image = std::fs::read(&snapshot).expect("reading the snapshot");
        for secret in &secrets {
            assert!(
                !contains(&image, secret.as_bytes()),
                "{} contains {secret:?}",
                snapshot.display()
            );
        }
    }
}

fn snapshot_files(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .map(|entry| entry.path())
                .filter(|path| path.extension().is_some_and(|ext| ext == "wasm"))
                .collect()
        })
        .unwrap_or_default()
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack
        .windows(needle.len())
        .any(|window| window == needle)
}
