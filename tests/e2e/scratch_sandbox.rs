//! Each call's scratch folder inside the sandbox, on the pre-initialized interpreter: a fresh,
//! empty, writable `/tmp` that `HOME` and `TMPDIR` point at, where `tempfile` and libraries'
//! caches work; capped in bytes and in files with `ENOSPC`; never seen by the next call; and
//! no way out of it to the read-only mounts.

use std::path::Path;

use serde_json::{Value, json};
use vivarium_sandbox::{
    ActionEnv, Call, Input, Limits, Outcome, OutcomeKind, PrepareOptions, ResultShape, Sandbox,
};

use crate::common::files::write_action;
use crate::common::{CACHE_DIR, ensure_built_runtime};

fn sandbox() -> Sandbox {
    ensure_built_runtime();
    vivarium_sandbox::prepare(
        Path::new(CACHE_DIR),
        &PrepareOptions {
            pool_size: 1,
            max_concurrent_calls: 1,
            ..Default::default()
        },
    )
    .expect("the snapshot sandbox")
}

/// Runs `main` once on `sandbox` with `limits` and answers the outcome.
fn call(sandbox: &Sandbox, main: &str, limits: Limits) -> Outcome {
    let action = write_action(&[("main.py", main)]);
    let env = ActionEnv::default();
    sandbox
        .run(&Call {
            action_dir: action.path(),
            input: Input::Data(json!([])),
            env: &env,
            limits,
            shape: ResultShape::Any,
            dependency_layer: None,
            egress: None,
            cpu_slot: None,
            state: None,
            log_sink: None,
        })
        .expect("the call")
}

fn result(outcome: &Outcome) -> &Value {
    assert_eq!(outcome.kind, OutcomeKind::Ok, "{outcome:?}");
    outcome.result.as_ref().expect("a result")
}

#[test]
fn tempfile_and_a_cache_under_home_work_in_a_fresh_tmp() {
    let main = r#"import os, pathlib, tempfile

def main(data, logger):
    found = sorted(os.listdir("/tmp"))
    home = os.path.expanduser("~")
    cache = pathlib.Path(home, ".cache", "library")
    cache.mkdir(parents=True)
    (cache / "index.json").write_text('{"warm": true}')
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as handle:
        handle.write("hello")
    with tempfile.TemporaryDirectory() as folder:
        pathlib.Path(folder, "inner").write_bytes(b"x" * 10_000)
    return {"found": found, "home": home, "tmpdir": tempfile.gettempdir(),
            "read": open(handle.name).read(), "cache": (cache / "index.json").read_text()}
"#;
    let outcome = call(&sandbox(), main, Limits::DEFAULT);
    assert_eq!(
        result(&outcome),
        &json!({"found": [], "home": "/tmp", "tmpdir": "/tmp", "read": "hello",
                "cache": "{\"warm\": true}"})
    );
    assert_eq!(outcome.scratch.files, 4, "{:?}", outcome.scratch);
    assert!(outcome.scratch.bytes > 0, "{:?}", outcome.scratch);
}

#[test]
fn nothing_of_one_call_s_scratch_is_seen_by_the_next() {
    let sandbox = sandbox();
    let write = "def main(data, logger):\n    open('/tmp/secret', 'w').write('s3cr3t')\n    return ['written']\n";
    assert_eq!(
        result(&call(&sandbox, write, Limits::DEFAULT)),
        &json!(["written"])
    );
    let look = "import os\n\ndef main(data, logger):\n    return {'listed': os.listdir('/tmp'), 'there': os.path.exists('/tmp/secret')}\n";
    for _ in 0..2 {
        assert_eq!(
            result(&call(&sandbox, look, Limits::DEFAULT)),
            &json!({"listed": [], "there": false})
        );
    }
}

#[test]
fn writes_past_the_byte_cap_fail_with_enospc_and_the_cap_holds() {
    let main = r#"import errno

def main(data, logger):
    written = 0
    try:
        with open("/tmp/big", "wb", buffering=0) as handle:
            while True:
                written += handle.write(b"x" * 65536)
    except OSError as error:
        return {"errno": error.errno == errno.ENOSPC, "message": error.strerror, "written": written}
"#;
    let limits = Limits {
        scratch_bytes: 1 << 20,
        ..Limits::DEFAULT
    };
    let outcome = call(&sandbox(), main, limits);
    let found = result(&outcome);
    assert_eq!(found["errno"], json!(true), "{found}");
    let written = found["written"].as_u64().expect("a count");
    assert!(
        (768 << 10..=1 << 20).contains(&written),
        "{written} bytes written under a 1 MiB cap"
    );
    assert!(outcome.scratch.bytes <= 1 << 20, "{:?}", outcome.scratch);
    assert!(
        found["message"]
            .as_str()
            .is_some_and(|text| text.contains("space")),
        "{found}"
    );
}

#[test]
fn files_past_the_file_cap_fail_with_enospc_and_an_uncaught_one_fails_the_run() {
    let main = r#"import errno, os

def main(data, logger):
    made = 0
    try:
        while True:
            open(f"/tmp/f{made}", "w").close()
            made += 1
    except OSError as error:
        refused = error.errno == errno.ENOSPC
    try:
        os.mkdir("/tmp/one-more")
        folder = "made"
    except OSError as error:
        folder = error.errno == errno.ENOSPC
    os.remove("/tmp/f0")
    os.mkdir("/tmp/after-a-delete")
    return {"made": made, "refused": refused, "folder": folder}
"#;
    let limits = Limits {
        scratch_files: 10,
        ..Limits::DEFAULT
    };
    let sandbox = sandbox();
    let outcome = call(&sandbox, main, limits);
    assert_eq!(
        result(&outcome),
        &json!({"made": 10, "refused": true, "folder": true})
    );
    assert_eq!(outcome.scratch.files, 10);
    let uncaught = "def main(data, logger):\n    for n in range(20):\n        open(f'/tmp/f{n}', 'w').close()\n    return []\n";
    let failed = call(&sandbox, uncaught, limits);
    assert_eq!(failed.kind, OutcomeKind::ScriptError, "{failed:?}");
    let error = failed.error.expect("the error");
    assert_eq!(error.type_name, "OSError", "{error:?}");
    assert!(error.message.contains("No space left"), "{error:?}");
}

#[test]
fn the_scratch_is_no_way_into_the_read_only_mounts() {
    let main = r##"import os

def attempt(label, action, results):
    try:
        action()
        results[label] = "allowed"
    except OSError as error:
        results[label] = "refused"

def main(data, logger):
    results = {}
    attempt("write the action", lambda: open("/action/main.py", "a").write("#"), results)
    attempt("hard link into tmp", lambda: os.link("/action/main.py", "/tmp/main.py"), results)
    attempt("link to an absolute path", lambda: os.symlink("/action/main.py", "/tmp/absolute"), results)
    os.symlink("../action/main.py", "/tmp/relative")
    attempt("write through a link out", lambda: open("/tmp/relative", "w").write("#"), results)
    attempt("read through a link out", lambda: open("/tmp/relative").read(), results)
    open("/tmp/moved", "w").write("x")
    attempt("move out of tmp", lambda: os.rename("/tmp/moved", "/action/moved"), results)
    attempt("tmp's parent", lambda: os.listdir("/tmp/.."), results)
    return results
"##;
    let found = call(&sandbox(), main, Limits::DEFAULT);
    let results = result(&found).as_object().expect("an object");
    for (label, verdict) in results {
        assert_eq!(verdict, "refused", "{label}: {results:?}");
    }
    assert_eq!(results.len(), 7);
}
