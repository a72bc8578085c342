//! The pre-initialized interpreter: every call gets a fresh, never-used instance (nothing one
//! call changes is seen by the next), randomness differs per call although the snapshot was
//! taken once, the environment is the call's own, and the snapshot image holds nothing of the
//! process that made it (its cache path, its environment). They run on it whatever
//! `VIVARIUM_RUNTIME` says, building it first when the cache lacks it.

use std::path::{Path, PathBuf};

use crate::common::cli::run_on;
use crate::common::files::write_action;
use crate::common::{CACHE_DIR, ensure_built_runtime};
use serde_json::{Value, json};

/// Runs `main` on `records` on the pre-initialized interpreter (whichever runtime the other
/// tests run on) and answers its result.
fn result_of(main: &str, records: &Value, extra: &[&str]) -> Value {
    ensure_built_runtime();
    let action = write_action(&[("main.py", main)]);
    let extra = [&["--runtime", "snapshot"], extra].concat();
    run_on(action.path(), records, &extra).success_json()
}

#[test]
fn state_changed_by_one_call_is_not_seen_by_the_next() {
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
    let main = "import os, random, uuid\n\ndef main(data, logger):\n    return [{'random': random.random(), 'urandom': os.urandom(16).hex(), 'uuid': str(uuid.uuid4())}]\n";
    let first = result_of(main, &json!([]), &[]);
    let second = result_of(main, &json!([]), &[]);
    for key in ["random", "urandom", "uuid"] {
        assert_ne!(first[0][key], second[0][key], "{key}: {first} vs {second}");
    }
}

#[test]
fn the_environment_and_arguments_are_the_calls_own() {
    let main = "import os, sys\n\ndef main(data, logger):\n    return [{'env': dict(os.environ), 'argv': sys.argv, 'path': [p for p in sys.path if not p.startswith('/usr/local/lib/python3.13')]}]\n";
    let result = result_of(
        main,
        &json!([]),
        &[
            "--env",
            "API_URL=https://example.invalid",
            "--env",
            "HOME=/action",
        ],
    );
    assert_eq!(
        result[0]["env"],
        json!({"TMPDIR": "/tmp", "API_URL": "https://example.invalid", "HOME": "/action"}),
        "the action's own HOME wins over the scratch folder's"
    );
    assert_eq!(result[0]["argv"], json!(["python"]));
    assert_eq!(
        result[0]["path"],
        json!(["/action", "/action/dependencies"])
    );
}

#[test]
fn the_snapshot_holds_nothing_of_the_process_that_took_it() {
    ensure_built_runtime();
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

/// An action's own modules are compiled once, ahead of its calls, and that bytecode serves its
/// later calls; when the source changes, the call runs the new source, never the stale code.
/// (Fuel counts guest instructions exactly, so compiling shows in it as surely as in time.)
#[test]
fn an_actions_bytecode_is_compiled_once_and_never_used_stale() {
    ensure_built_runtime();
    let sandbox = vivarium_sandbox::prepare(
        Path::new(CACHE_DIR),
        &vivarium_sandbox::PrepareOptions {
            pool_size: 1,
            max_concurrent_calls: 2,
            ..Default::default()
        },
    )
    .expect("the snapshot sandbox");
    let marker = format!("marker-{}", std::process::id());
    let main = |version: u32| {
        format!(
            "from helper import greeting\n\ndef main(data, logger):\n    return [{{'version': {version}, 'greeting': greeting(), 'marker': {marker:?}}}]\n"
        )
    };
    let action = write_action(&[
        ("main.py", &main(1)),
        ("helper.py", "def greeting():\n    return 'hello'\n"),
    ]);
    let call = |expected_version: u32| {
        let env = vivarium_sandbox::ActionEnv::default();
        let outcome = sandbox
            .run(&vivarium_sandbox::Call {
                action_dir: action.path(),
                input: vivarium_sandbox::Input::Data(json!([])),
                env: &env,
                limits: vivarium_sandbox::Limits::DEFAULT,
                shape: vivarium_sandbox::ResultShape::Records,
                dependency_layer: None,
                egress: None,
                cpu_slot: None,
                state: None,
                log_sink: None,
            })
            .expect("the call");
        assert_eq!(
            outcome.result,
            Some(json!([{"version": expected_version, "greeting": "hello", "marker": marker}])),
            "{outcome:?}"
        );
        outcome.fuel_used
    };

    let first = call(1);
    let compiled = bytecode_files_containing(marker.as_bytes());
    assert_eq!(
        compiled.len(),
        1,
        "one main.pyc holds the marker: {compiled:?}"
    );
    let folder = compiled[0].parent().expect("the bytecode folder");
    assert!(
        folder.join("helper.pyc").is_file(),
        "helper.py was compiled too"
    );
    let second = call(1);
    assert_eq!(
        bytecode_files_containing(marker.as_bytes()),
        compiled,
        "compiled once"
    );

    std::fs::write(action.path().join("main.py"), main(2)).expect("editing main.py");
    let stale = call(2);
    assert!(
        stale > first.max(second),
        "compiling main.py again costs fuel: {stale} against {first} and {second}"
    );
}

/// The `main.pyc` files in the shared bytecode cache whose bytes contain `needle`.
fn bytecode_files_containing(needle: &[u8]) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let root = Path::new(CACHE_DIR).join("bytecode");
    for snapshot in std::fs::read_dir(&root).into_iter().flatten().flatten() {
        for folder in std::fs::read_dir(snapshot.path())
            .into_iter()
            .flatten()
            .flatten()
        {
            let pyc = folder.path().join("action/main.pyc");
            if std::fs::read(&pyc).is_ok_and(|bytes| contains(&bytes, needle)) {
                found.push(pyc);
            }
        }
    }
    found
}
