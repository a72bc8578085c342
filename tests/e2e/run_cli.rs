//! End-to-end tests of `vivarium run`: the real binary, the real interpreter, the real sandbox.

use std::collections::BTreeSet;
use std::time::Duration;

use crate::common::cli::{run, run_on, run_source, vivarium};
use crate::common::files::{
    k8s_logs, uppercase_distinct, write_action, write_bytes, write_json, write_named,
};
use crate::common::zips::{IDENTITY_MAIN, zip_dir};
use serde_json::{Value, json};

/// One small record, for actions that do not care about their input.
fn one_record() -> Value {
    json!([{"message": "hello"}])
}

fn seed_records() -> Vec<Value> {
    let text = std::fs::read_to_string(k8s_logs()).expect("reading the seed records");
    let records: Value = serde_json::from_str(&text).expect("the seed records are JSON");
    records
        .as_array()
        .expect("the seed records are an array")
        .clone()
}

fn distinct_strings(records: &[Value], key: &str) -> BTreeSet<String> {
    records
        .iter()
        .map(|r| r[key].as_str().expect("a string field").to_string())
        .collect()
}

fn string_set(value: &Value) -> BTreeSet<String> {
    let list = value.as_array().expect("a list");
    let set: BTreeSet<String> = list
        .iter()
        .map(|v| v.as_str().expect("a string").to_string())
        .collect();
    assert_eq!(set.len(), list.len(), "the list {value} has duplicates");
    set
}

/// Checks the seed example's full result against values computed from the records file.
fn check_seed_result(outcome: &crate::common::cli::Outcome) {
    let result = outcome.success_json();
    let records = seed_records();
    let result = result.as_array().expect("the result is an array");
    assert_eq!(
        result.len(),
        records.len() + 1,
        "the records plus one summary{}",
        outcome.dump()
    );

    for (index, (got, original)) in result.iter().zip(&records).enumerate() {
        let original = original.as_object().expect("records are objects");
        let got = got.as_object().expect("result records are objects");
        let expected_keys: Vec<&String> = original.keys().collect();
        let got_keys: Vec<&String> = got.keys().collect();
        assert_eq!(got_keys, expected_keys, "key order of record {index}");
        for (key, value) in original {
            let expected = match value {
                Value::String(s) => Value::String(s.to_uppercase()),
                other => other.clone(),
            };
            assert_eq!(got[key], expected, "record {index}, field {key}");
        }
    }

    let summary = result.last().unwrap().as_object().expect("summary object");
    let keys: Vec<&str> = summary.keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        [
            "distinct_pod_names",
            "distinct_pod_count",
            "distinct_docker_ids",
            "distinct_docker_count",
            "distinct_pod_ids",
            "distinct_pod_id_count"
        ],
        "summary keys in the order the action wrote them"
    );
    for (list, count, field) in [
        (
            "distinct_pod_names",
            "distinct_pod_count",
            "kubernetes_pod_name",
        ),
        (
            "distinct_docker_ids",
            "distinct_docker_count",
            "kubernetes_docker_id",
        ),
        (
            "distinct_pod_ids",
            "distinct_pod_id_count",
            "kubernetes_pod_id",
        ),
    ] {
        let expected = distinct_strings(&records, field);
        assert_eq!(string_set(&summary[list]), expected, "{list}");
        assert_eq!(summary[count], json!(expected.len()), "{count}");
    }

    // The action's own log lines, in the human format.
    let lines = outcome.stderr_lines();
    let starting = lines
        .iter()
        .find(|l| l.ends_with("action: Starting transformation"))
        .unwrap_or_else(|| panic!("no start line{}", outcome.dump()));
    assert_human_log_line(starting, "INFO", "action", "Starting transformation");
    let pods = distinct_strings(&records, "kubernetes_pod_name").len();
    let dockers = distinct_strings(&records, "kubernetes_docker_id").len();
    outcome.assert_stderr_contains(&format!(
        "INFO    action: Distinct pod names: {pods}, docker IDs: {dockers}"
    ));
}

/// Asserts `line` is `{time} {LEVEL:<7} {logger}: {message}` with an RFC 3339 UTC time in
/// milliseconds, like `2026-11-26T05:50:11.154Z INFO    action: Starting transformation`.
#[track_caller]
fn assert_human_log_line(line: &str, level: &str, logger: &str, message: &str) {
    let (time, rest) = line
        .split_once(' ')
        .unwrap_or_else(|| panic!("no time in {line:?}"));
    assert_timestamp(time);
    assert_eq!(
        rest,
        format!("{level:<7} {logger}: {message}"),
        "log line {line:?}"
    );
}

#[track_caller]
fn assert_timestamp(time: &str) {
    let bytes = time.as_bytes();
    let shape_ok = bytes.len() == 24
        && bytes.iter().enumerate().all(|(i, b)| match i {
            4 | 7 => *b == b'-',
            10 => *b == b'T',
            13 | 16 => *b == b':',
            19 => *b == b'.',
            23 => *b == b'Z',
            _ => b.is_ascii_digit(),
        });
    assert!(
        shape_ok,
        "{time:?} is not a time like 2026-11-26T05:50:11.154Z"
    );
}

// ----------------------------------------------------------------------------------------------
// The seed example, as a folder and as ZIPs.

#[test]
fn seed_example_from_the_folder() {
    let outcome = run(&uppercase_distinct(), &k8s_logs(), &[]);
    check_seed_result(&outcome);
}

#[test]
fn seed_example_from_a_zip_with_files_at_the_root() {
    let bytes = zip_dir(&uppercase_distinct(), None);
    let (_dir, path) = write_named("uppercase_distinct.zip", &bytes);
    let outcome = run(&path, &k8s_logs(), &[]);
    check_seed_result(&outcome);
}

#[test]
fn seed_example_from_a_zip_with_one_top_level_folder_and_no_zip_extension() {
    // The archive is recognised by its content, not its name.
    let bytes = zip_dir(&uppercase_distinct(), Some("uppercase_distinct"));
    let (_dir, path) = write_named("upload.bin", &bytes);
    let outcome = run(&path, &k8s_logs(), &[]);
    check_seed_result(&outcome);
}

#[test]
fn seed_example_from_the_committed_fixture_zip() {
    let zip = crate::common::files::fixtures()
        .join("actions")
        .join("uppercase_distinct.zip");
    assert!(zip.is_file(), "{} is missing", zip.display());
    check_seed_result(&run(&zip, &k8s_logs(), &[]));
}

#[test]
fn a_rebuilt_zip_at_the_same_path_runs_its_new_content() {
    let dir = tempfile::TempDir::new().unwrap();
    let path = dir.path().join("action.zip");
    for version in ["first", "second"] {
        let action = write_action(&[(
            "main.py",
            &format!("def main(data, logger):\n    return [{{\"version\": \"{version}\"}}]\n"),
        )]);
        std::fs::write(&path, zip_dir(action.path(), None)).unwrap();
        let result = run_on(&path, &one_record(), &[]).success_json();
        assert_eq!(result, json!([{"version": version}]));
    }
}

// ----------------------------------------------------------------------------------------------
// Imports.

#[test]
fn a_helper_package_next_to_main_is_importable() {
    let action = write_action(&[
        (
            "main.py",
            "from helpers.text import shout\n\
             def main(data, logger):\n    return [{'said': shout(r['message'])} for r in data]\n",
        ),
        ("helpers/__init__.py", ""),
        (
            "helpers/text.py",
            "def shout(text):\n    return text.upper() + '!'\n",
        ),
    ]);
    let result = run_on(
        action.path(),
        &json!([{"message": "hi"}, {"message": "bye"}]),
        &[],
    )
    .success_json();
    assert_eq!(result, json!([{"said": "HI!"}, {"said": "BYE!"}]));
}

const GREETING_MAIN: &str = "\
import greeting
def main(data, logger):
    return [{'greeting': greeting.greet(r['name']), 'module': greeting.__file__} for r in data]
";

const GREETING_PACKAGE: &str = "def greet(name):\n    return f'Hello, {name}!'\n";

#[test]
fn the_dependencies_folder_is_on_sys_path_for_a_folder() {
    let action = write_action(&[
        ("main.py", GREETING_MAIN),
        ("dependencies/greeting/__init__.py", GREETING_PACKAGE),
    ]);
    let result = run_on(action.path(), &json!([{"name": "Ada"}]), &[]).success_json();
    assert_eq!(
        result,
        json!([{"greeting": "Hello, Ada!", "module": "/action/dependencies/greeting/__init__.py"}])
    );
}

#[test]
fn the_dependencies_folder_is_on_sys_path_for_a_zip() {
    let action = write_action(&[
        ("main.py", GREETING_MAIN),
        ("dependencies/greeting/__init__.py", GREETING_PACKAGE),
    ]);
    let (_dir, path) = write_named("greeting.zip", &zip_dir(action.path(), Some("greeting")));
    let result = run_on(&path, &json!([{"name": "Grace"}]), &[]).success_json();
    assert_eq!(
        result,
        json!([{"greeting": "Hello, Grace!", "module": "/action/dependencies/greeting/__init__.py"}])
    );
}

// ----------------------------------------------------------------------------------------------
// Environment variables.

#[test]
fn env_variables_reach_the_action_and_host_variables_do_not() {
    let canary = "canary-value-5c0f1e9b";
    let action = write_action(&[(
        "main.py",
        "import os\ndef main(data, logger):\n    return [{'environ': dict(os.environ)}]\n",
    )]);
    let input = write_json(&one_record());
    let outcome = vivarium()
        .host_env("VIVARIUM_E2E_HOST_SECRET", canary)
        .host_env("AWS_SECRET_ACCESS_KEY", canary)
        .args(["run".as_ref(), action.path().as_os_str()])
        .arg("--input")
        .arg(input.path())
        .args(["--env", "GREETING=hello world", "-e", "EQUATION=a=b=c"])
        .args(["--env", "EMPTY="])
        .output();
    let result = outcome.success_json();
    assert_eq!(
        result,
        json!([{"environ": {"HOME": "/tmp", "TMPDIR": "/tmp", "GREETING": "hello world",
                            "EQUATION": "a=b=c", "EMPTY": ""}}]),
        "os.environ must hold exactly the --env variables and the scratch folder's{}",
        outcome.dump()
    );
    assert!(!outcome.stdout.contains(canary) && !outcome.stderr.contains(canary));
}

#[test]
fn a_lowercase_env_key_is_refused_as_a_usage_error() {
    let action = write_action(&[("main.py", IDENTITY_MAIN)]);
    let outcome = run_on(action.path(), &one_record(), &["--env", "lower=x"]);
    outcome.assert_failure(2, "\"lower\" is not allowed");
}

#[test]
fn an_env_pair_without_equals_is_refused_as_a_usage_error() {
    let action = write_action(&[("main.py", IDENTITY_MAIN)]);
    let outcome = run_on(action.path(), &one_record(), &["--env", "NOVALUE"]);
    outcome.assert_failure(2, "is not KEY=VALUE");
}

#[test]
fn an_out_of_range_limit_is_refused_as_a_usage_error() {
    let action = write_action(&[("main.py", IDENTITY_MAIN)]);
    let outcome = run_on(action.path(), &one_record(), &["--memory", "8GiB"]);
    outcome.assert_failure(2, "out of range");
    let outcome = run_on(action.path(), &one_record(), &["--memory", "lots"]);
    outcome.assert_failure(2, "is not a size");
}

// ----------------------------------------------------------------------------------------------
// The sandbox's walls.

#[test]
fn writing_to_the_action_folder_raises_permission_error() {
    let action = write_action(&[(
        "main.py",
        "import os\n\
         def main(data, logger):\n\
         \x20   out = {'cwd': os.getcwd()}\n\
         \x20   for path in ['/action/written.txt', 'written.txt', '/action/main.py']:\n\
         \x20       try:\n\
         \x20           with open(path, 'w') as f:\n\
         \x20               f.write('x')\n\
         \x20           out[path] = 'written'\n\
         \x20       except Exception as e:\n\
         \x20           out[path] = type(e).__name__\n\
         \x20   return [out]\n",
    )]);
    let main_before = std::fs::read(action.path().join("main.py")).unwrap();
    let result = run_on(action.path(), &one_record(), &[]).success_json();
    assert_eq!(
        result,
        json!([{
            "cwd": "/action",
            "/action/written.txt": "PermissionError",
            "written.txt": "PermissionError",
            "/action/main.py": "PermissionError",
        }])
    );
    assert!(!action.path().join("written.txt").exists());
    assert_eq!(
        std::fs::read(action.path().join("main.py")).unwrap(),
        main_before
    );
}

#[test]
fn a_socket_connection_fails_cleanly_with_oserror() {
    let source = "\
import socket
def main(data, logger):
    try:
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.connect(('127.0.0.1', 80))
        return [{'outcome': 'connected'}]
    except OSError as e:
        return [{'outcome': type(e).__name__, 'is_oserror': isinstance(e, OSError), 'text': str(e)}]
";
    let result = run_source(source, &one_record(), &[]).success_json();
    assert_eq!(result[0]["is_oserror"], json!(true), "{result}");
    assert!(
        result[0]["text"]
            .as_str()
            .unwrap()
            .contains("Not supported"),
        "{result}"
    );
}

#[test]
fn an_uncaught_socket_error_is_a_script_error() {
    let source = "\
import socket
def main(data, logger):
    socket.socket(socket.AF_INET, socket.SOCK_STREAM).connect(('127.0.0.1', 80))
    return data
";
    run_source(source, &one_record(), &[])
        .assert_failure(10, "error[script_error]")
        .assert_stderr_contains("OSError");
}

/// On either interpreter the action's `/tmp` is its own: empty, writable, and the host's
/// temporary folder (where the action's own folder was written) is not behind it.
#[test]
fn the_action_gets_an_empty_writable_tmp_of_its_own() {
    let source = "\
import os, tempfile
def main(data, logger):
    found = os.listdir('/tmp')
    with tempfile.TemporaryFile() as handle:
        handle.write(b'scratch')
        handle.seek(0)
        read = handle.read().decode()
    return [{'found': found, 'read': read, 'home': os.path.expanduser('~')}]
";
    let result = run_source(source, &one_record(), &[]).success_json();
    assert_eq!(
        result,
        json!([{"found": [], "read": "scratch", "home": "/tmp"}])
    );
}

#[test]
fn host_files_are_invisible() {
    let action = write_action(&[(
        "main.py",
        "import os, sys\n\
         def main(data, logger):\n\
         \x20   out = {}\n\
         \x20   for path in data[0]['paths']:\n\
         \x20       try:\n\
         \x20           os.stat(path)\n\
         \x20           out[path] = 'visible'\n\
         \x20       except Exception as e:\n\
         \x20           out[path] = type(e).__name__\n\
         \x20   return [out]\n",
    )]);
    let host_folder = action.path().to_string_lossy().into_owned();
    let paths = [
        "/",
        "/etc/passwd",
        "/var/tmp",
        "/proc/self",
        "/root",
        &host_folder,
    ];
    let outcome = run_on(action.path(), &json!([{"paths": paths}]), &[]);
    let result = outcome.success_json();
    for path in paths {
        assert_eq!(
            result[0][path],
            json!("FileNotFoundError"),
            "{path} must not be visible{}",
            outcome.dump()
        );
    }
}

// ----------------------------------------------------------------------------------------------
// Limits.

#[test]
fn an_infinite_loop_runs_out_of_fuel() {
    let outcome = run_source(
        "def main(data, logger):\n    while True:\n        pass\n",
        &one_record(),
        &["--fuel", "2000000000"],
    );
    outcome.assert_failure(14, "error[out_of_fuel]: ");
    outcome.assert_stderr_contains("2000000000 units of fuel");
}

#[test]
fn a_memory_bomb_runs_out_of_memory() {
    let outcome = run_source(
        "def main(data, logger):\n    hoard = []\n    while True:\n        hoard.append(bytearray(1024 * 1024))\n",
        &one_record(),
        &["--memory", "64MiB"],
    );
    outcome.assert_failure(
        15,
        "error[out_of_memory]: the action used more than 64 MiB of memory",
    );
}

#[test]
fn deep_recursion_is_a_script_error_with_recursion_error() {
    let outcome = run_source(
        "def dive(n):\n    return dive(n + 1)\n\ndef main(data, logger):\n    return dive(0)\n",
        &one_record(),
        &[],
    );
    outcome.assert_failure(10, "error[script_error]: maximum recursion depth exceeded");
    assert_eq!(
        outcome.stderr_lines().last().copied(),
        Some("RecursionError: maximum recursion depth exceeded"),
        "{}",
        outcome.dump()
    );
}

#[test]
fn a_huge_result_is_refused_as_too_large() {
    let outcome = run_source(
        "def main(data, logger):\n    return [{'blob': 'x' * 2_000_000}]\n",
        &one_record(),
        &["--max-result", "1MiB"],
    );
    outcome.assert_failure(
        13,
        "error[result_too_large]: the action's result is larger than the 1 MiB result limit",
    );
}

#[test]
fn a_result_just_under_the_limit_is_accepted() {
    let result = run_source(
        "def main(data, logger):\n    return [{'blob': 'x' * 500_000}]\n",
        &one_record(),
        &["--max-result", "1MiB"],
    )
    .success_json();
    assert_eq!(result[0]["blob"].as_str().map(str::len), Some(500_000));
}

const FLOOD: &str = "def main(data, logger):\n    for i in range(20000):\n        print('flood line', i)\n    return [{'done': True}]\n";

#[test]
fn a_flood_of_prints_is_truncated_with_a_marker_and_the_call_succeeds() {
    let outcome = run_source(FLOOD, &one_record(), &["--max-logs", "64KiB"]);
    assert_eq!(outcome.success_json(), json!([{"done": true}]));
    let lines = outcome.stderr_lines();
    let first = lines.first().expect("some log lines");
    assert_human_log_line(first, "INFO", "print", "flood line 0");
    let last = lines.last().unwrap();
    assert!(
        last.contains("WARNING vivarium: log output truncated: ")
            && last.contains("past the 64 KiB log limit were dropped"),
        "last line {last:?}{}",
        outcome.dump()
    );
    assert!(
        !outcome.stderr.contains("flood line 19999"),
        "the tail of the flood must be dropped"
    );
    // The kept lines are a gap-free prefix of what was printed.
    let kept: Vec<&&str> = lines.iter().filter(|l| l.contains("print: ")).collect();
    for (i, line) in kept.iter().enumerate() {
        assert!(
            line.ends_with(&format!("print: flood line {i}")),
            "{line:?}"
        );
    }
    assert!(
        outcome.stderr.len() < 256 * 1024,
        "stderr holds {} bytes for a 64 KiB log limit",
        outcome.stderr.len()
    );
}

#[test]
fn a_truncated_json_log_ends_with_a_vivarium_warning_object() {
    let outcome = run_source(
        FLOOD,
        &one_record(),
        &["--max-logs", "64KiB", "--json-logs"],
    );
    assert_eq!(outcome.success_json(), json!([{"done": true}]));
    let lines = outcome.stderr_json_lines();
    let last = lines.last().expect("some log lines");
    assert_eq!(last["level"], json!("WARNING"), "{last}");
    assert_eq!(last["logger"], json!("vivarium"), "{last}");
    assert!(
        last["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("log output truncated: ")),
        "{last}"
    );
}

#[test]
fn sleeping_past_the_timeout_times_out() {
    let outcome = run_source(
        "import time\ndef main(data, logger):\n    time.sleep(30)\n    return data\n",
        &one_record(),
        &["--timeout", "2s"],
    );
    outcome.assert_failure(
        16,
        "error[timeout]: the action ran longer than its 2s time limit",
    );
    assert!(
        outcome.elapsed < Duration::from_secs(20),
        "the 2 s limit did not stop a 30 s sleep{}",
        outcome.dump()
    );
}

// ----------------------------------------------------------------------------------------------
// Bad actions.

#[test]
fn a_folder_without_main_py_is_refused() {
    let action = write_action(&[("helper.py", "x = 1\n")]);
    let outcome = run_on(action.path(), &one_record(), &[]);
    outcome.assert_failure(4, "has no main.py");
    assert!(outcome.stderr.starts_with("error: "), "{}", outcome.dump());
}

#[test]
fn an_action_path_that_does_not_exist_is_refused() {
    let dir = tempfile::TempDir::new().unwrap();
    let outcome = run_on(&dir.path().join("missing"), &one_record(), &[]);
    outcome.assert_failure(4, "missing");
}

#[test]
fn main_py_without_main_is_a_bad_action() {
    run_source("x = 1\n", &one_record(), &[]).assert_failure(
        11,
        "error[bad_action]: main.py does not define main(data, logger)",
    );
}

#[test]
fn a_main_that_is_not_callable_is_a_bad_action() {
    run_source("main = 5\n", &one_record(), &[]).assert_failure(
        11,
        "error[bad_action]: main in main.py is not a function (it is of type int)",
    );
}

#[test]
fn a_main_with_the_wrong_arity_is_a_bad_action() {
    run_source("def main(data):\n    return data\n", &one_record(), &[]).assert_failure(
        11,
        "error[bad_action]: main must be defined as main(data, logger); it is defined as main(data)",
    );
}

#[test]
fn an_exception_in_a_helper_module_shows_the_helpers_frame() {
    let action = write_action(&[
        (
            "main.py",
            "from helper import boom\n\ndef main(data, logger):\n    return boom()\n",
        ),
        (
            "helper.py",
            "def boom():\n    raise ValueError('kaboom in helper')\n",
        ),
    ]);
    let outcome = run_on(action.path(), &one_record(), &[]);
    outcome.assert_failure(10, "error[script_error]: kaboom in helper");
    let stderr = &outcome.stderr;
    let at = |needle: &str| {
        stderr
            .find(needle)
            .unwrap_or_else(|| panic!("stderr lacks {needle:?}{}", outcome.dump()))
    };
    let header = at("Traceback (most recent call last):");
    let main_frame = at("  File \"/action/main.py\", line 4, in main");
    let helper_frame = at("  File \"/action/helper.py\", line 2, in boom");
    assert!(
        header < main_frame && main_frame < helper_frame,
        "frames out of order{}",
        outcome.dump()
    );
    assert_eq!(
        outcome.stderr_lines().last().copied(),
        Some("ValueError: kaboom in helper")
    );
    // Only the action's own frames are shown, never Vivarium's runner or host paths.
    for line in outcome.stderr.lines().filter(|l| l.starts_with("  File ")) {
        assert!(
            line.starts_with("  File \"/action/"),
            "foreign frame {line:?}"
        );
    }
}

#[test]
fn an_exception_as_json_logs_carries_type_and_traceback() {
    let action = write_action(&[
        (
            "main.py",
            "from helper import boom\n\ndef main(data, logger):\n    logger.info('about to fail')\n    return boom()\n",
        ),
        (
            "helper.py",
            "def boom():\n    raise KeyError('missing-key')\n",
        ),
    ]);
    let outcome = run_on(action.path(), &one_record(), &["--json-logs"]);
    outcome.assert_code(10);
    assert!(outcome.stdout.is_empty());
    let lines = outcome.stderr_json_lines();
    assert_eq!(lines[0]["message"], json!("about to fail"));
    let last = lines.last().unwrap();
    assert_eq!(last["level"], json!("ERROR"), "{last}");
    assert_eq!(last["logger"], json!("vivarium"), "{last}");
    assert_eq!(last["outcome"], json!("script_error"), "{last}");
    assert_eq!(last["error"]["type"], json!("KeyError"), "{last}");
    assert_eq!(last["error"]["message"], json!("'missing-key'"), "{last}");
    let frames: Vec<&str> = last["error"]["traceback"]
        .as_array()
        .expect("a traceback list")
        .iter()
        .map(|f| f.as_str().expect("frames are strings"))
        .collect();
    assert!(
        frames
            .last()
            .is_some_and(|f| f.starts_with("  File \"/action/helper.py\", line 2, in boom")),
        "{frames:?}"
    );
}

// ----------------------------------------------------------------------------------------------
// Bad results.

#[test]
fn a_non_serializable_result_is_a_bad_result() {
    run_source(
        "def main(data, logger):\n    return [{'name': 'a', 'tags': {'x', 'y'}}]\n",
        &one_record(),
        &[],
    )
    .assert_failure(
        12,
        "error[bad_result]: main() returned a value that is not JSON-serializable: set at result[0]['tags']",
    );
}

#[test]
fn results_leave_main_exactly_as_json_dumps_writes_them() {
    // What json.dumps makes of each value: numbers keep Python's spelling, tuples become
    // lists, keys become strings, subclasses of int and dict are written as their base.
    let source = r#"import collections, enum
class Level(enum.IntEnum):
    HIGH = 3
def main(data, logger):
    shared = {"k": "v"}
    return [
        {"floats": [0.0, -0.0, 1.5, 1e16, 1e15, 1e-05, 0.1, 5e-324, 1.7976931348623157e308, 123456789.12345679]},
        {"ints": [0, -1, 2**31, -2**31 - 1, 2**63 - 1, -2**63, 2**64 - 1, 2**64 + 1, -(2**100)]},
        {"tuple": (1, "two", (3.0,)), "shared": [shared, shared], "order": {"z": 1, "a": 2}},
        {1: "int key", 2.5: "float key", True: "bool key", None: "none key"},
        {"text": "\u00e9 \u2713 \U0001f389 \"q\" \\ \n \x00 \x7f", "enum": Level.HIGH, "od": collections.OrderedDict(b=1, a=2)},
    ]
"#;
    // python3 -c 'print(json.dumps(main(None, None), separators=(",", ":")))'
    let written = r#"[{"floats":[0.0,-0.0,1.5,1e+16,1000000000000000.0,1e-05,0.1,5e-324,1.7976931348623157e+308,123456789.12345679]},{"ints":[0,-1,2147483648,-2147483649,9223372036854775807,-9223372036854775808,18446744073709551615,18446744073709551617,-1267650600228229401496703205376]},{"tuple":[1,"two",[3.0]],"shared":[{"k":"v"},{"k":"v"}],"order":{"z":1,"a":2}},{"1":"bool key","2.5":"float key","null":"none key"},{"text":"\u00e9 \u2713 \ud83c\udf89 \"q\" \\ \n \u0000 \u007f","enum":3,"od":{"b":1,"a":2}}]"#;
    let outcome = run_source(source, &one_record(), &[]);
    let expected: Value = serde_json::from_str(written).expect("the expected JSON");
    assert_eq!(outcome.success_json(), expected, "{}", outcome.dump());
}

#[test]
fn results_json_cannot_encode_are_bad_results_with_the_reason() {
    for (returned, reason) in [
        (
            "[{'x': float('inf')}]",
            "is not JSON-serializable: float inf at result[0]['x']",
        ),
        (
            "[{'took': __import__('datetime').timedelta(seconds=5)}]",
            "is not JSON-serializable: timedelta at result[0]['took']",
        ),
        (
            "[{(1, 2): 'pair'}]",
            "is not JSON-serializable: tuple at result[0] key (1, 2)",
        ),
        (
            "[{'b': b'bytes'}]",
            "is not JSON-serializable: bytes at result[0]['b']",
        ),
        (
            "(lambda loop: (loop.append(loop), [{'loop': loop}])[1])([])",
            "cannot be encoded as JSON: Circular reference detected",
        ),
    ] {
        let source = format!("def main(data, logger):\n    return {returned}\n");
        run_source(&source, &one_record(), &[]).assert_failure(
            12,
            &format!("error[bad_result]: main() returned a value that {reason}"),
        );
    }
}

#[test]
fn missing_values_dates_and_times_in_a_result_follow_the_result_rules() {
    let source = r#"
import datetime

def main(data, logger):
    moment = datetime.datetime(2026, 12, 4, 5, 30, 15, 250000, tzinfo=datetime.timezone.utc)
    return [{
        "missing": float("nan"),
        "nested": [1.5, float("nan")],
        "moment": moment,
        "day": moment.date(),
        "clock": moment.time(),
        "naive": moment.replace(tzinfo=None),
        moment: "keyed by a datetime",
    }]
"#;
    let outcome = run_source(source, &one_record(), &[]);
    assert_eq!(
        outcome.success_json(),
        json!([{
            "missing": null,
            "nested": [1.5, null],
            "moment": "2026-12-04T05:30:15.250000+00:00",
            "day": "2026-12-04",
            "clock": "05:30:15.250000",
            "naive": "2026-12-04T05:30:15.250000",
            "2026-12-04T05:30:15.250000+00:00": "keyed by a datetime",
        }]),
        "{}",
        outcome.dump()
    );
}

#[test]
fn a_non_list_result_is_a_bad_result() {
    run_source(
        "def main(data, logger):\n    return 'done'\n",
        &one_record(),
        &[],
    )
    .assert_failure(
        12,
        "error[bad_result]: main() must return a list of dicts (records); it returned a str",
    );
}

#[test]
fn a_none_result_is_a_bad_result() {
    // The seed's user-guide listing forgets its `return`: that must be reported, not accepted.
    run_source("def main(data, logger):\n    data\n", &one_record(), &[]).assert_failure(
        12,
        "main() must return a list of dicts (records); it returned None",
    );
}

#[test]
fn a_list_of_non_dicts_is_a_bad_result() {
    run_source(
        "def main(data, logger):\n    return [1, 2]\n",
        &one_record(),
        &[],
    )
    .assert_failure(12, "main() must return a list of dicts (records)");
}

#[test]
fn an_empty_list_is_a_valid_result() {
    let outcome = run_source(
        "def main(data, logger):\n    return []\n",
        &one_record(),
        &[],
    );
    assert_eq!(outcome.success_json(), json!([]));
}

#[test]
fn result_keys_keep_their_order_and_unicode_survives() {
    let source = "def main(data, logger):\n    return [{'zeta': 1, 'alpha': r['text'].upper(), 'mid': None} for r in data]\n";
    let outcome = run_source(source, &json!([{"text": "grüße ✓ 😀"}]), &[]);
    let result = outcome.success_json();
    let keys: Vec<&String> = result[0].as_object().unwrap().keys().collect();
    assert_eq!(keys, ["zeta", "alpha", "mid"]);
    assert_eq!(result[0]["alpha"], json!("GRÜSSE ✓ 😀"));
    assert_eq!(result[0]["mid"], Value::Null);
}

// ----------------------------------------------------------------------------------------------
// Input.

fn identity_action() -> tempfile::TempDir {
    write_action(&[("main.py", IDENTITY_MAIN)])
}

#[test]
fn an_input_that_is_not_an_array_is_refused() {
    let action = identity_action();
    run_on(action.path(), &json!({"message": "hi"}), &[])
        .assert_failure(3, "must be a JSON array of records");
}

#[test]
fn an_input_that_is_not_json_is_refused() {
    let action = identity_action();
    let input = write_bytes(b"[{\"message\": ");
    run(action.path(), input.path(), &[]).assert_failure(3, "is not valid JSON");
}

#[test]
fn a_missing_input_file_is_refused() {
    let action = identity_action();
    let dir = tempfile::TempDir::new().unwrap();
    let missing = dir.path().join("nope.json");
    run(action.path(), &missing, &[])
        .assert_failure(3, "cannot read the input")
        .assert_stderr_contains("nope.json");
}

#[test]
fn an_input_larger_than_max_input_is_refused() {
    let action = identity_action();
    let records: Vec<Value> = (0..300).map(|i| json!({"n": i})).collect();
    run_on(
        action.path(),
        &Value::Array(records),
        &["--max-input", "1KiB"],
    )
    .assert_failure(3, "larger than the 1 KiB input limit");
}

#[test]
fn input_is_read_from_stdin_with_a_dash() {
    let action = identity_action();
    let outcome = vivarium()
        .arg("run")
        .arg(action.path())
        .args(["--input", "-"])
        .stdin(r#"[{"from": "stdin", "n": 1}, {"from": "stdin", "n": 2}]"#)
        .output();
    assert_eq!(
        outcome.success_json(),
        json!([{"from": "stdin", "n": 1}, {"from": "stdin", "n": 2}])
    );
}

#[test]
fn too_much_stdin_is_refused() {
    let action = identity_action();
    let big = format!("[{}]", vec![r#"{"k": 1}"#; 1000].join(","));
    vivarium()
        .arg("run")
        .arg(action.path())
        .args(["--input", "-", "--max-input", "1KiB"])
        .stdin(big)
        .output()
        .assert_failure(3, "standard input is larger than the 1 KiB input limit");
}

// ----------------------------------------------------------------------------------------------
// Logs.

const CHATTY: &str = "\
import sys
def main(data, logger):
    print('PRINTED-ONE')
    logger.info('logged two')
    sys.stderr.write('stderr three\\n')
    print('PRINTED-FOUR')
    logger.warning('logged five')
    try:
        1 / 0
    except ZeroDivisionError:
        logger.exception('caught six')
    return [{'ok': True}]
";

#[test]
fn print_goes_to_the_logs_never_to_stdout() {
    let outcome = run_source(CHATTY, &one_record(), &[]);
    assert_eq!(outcome.success_json(), json!([{"ok": true}]));
    assert!(!outcome.stdout.contains("PRINTED"), "{}", outcome.dump());
    let lines = outcome.stderr_lines();
    let expected = [
        ("INFO", "print", "PRINTED-ONE"),
        ("INFO", "action", "logged two"),
        ("WARNING", "stderr", "stderr three"),
        ("INFO", "print", "PRINTED-FOUR"),
        ("WARNING", "action", "logged five"),
        ("ERROR", "action", "caught six"),
    ];
    let messages: Vec<&&str> = lines.iter().filter(|l| !l.starts_with(' ')).collect();
    assert_eq!(messages.len(), expected.len(), "{}", outcome.dump());
    for (line, (level, logger, message)) in messages.iter().zip(expected) {
        assert_human_log_line(line, level, logger, message);
    }
    // The exception logged with logger.exception follows, indented.
    outcome.assert_stderr_contains("\n    Traceback (most recent call last):\n");
    outcome.assert_stderr_contains("\n    ZeroDivisionError: division by zero\n");
}

#[test]
fn json_logs_lines_all_parse_as_json() {
    let outcome = run_source(CHATTY, &one_record(), &["--json-logs"]);
    assert_eq!(outcome.success_json(), json!([{"ok": true}]));
    let lines = outcome.stderr_json_lines();
    let summary: Vec<(String, String, String)> = lines
        .iter()
        .map(|l| {
            (
                l["level"].as_str().unwrap_or_default().to_string(),
                l["logger"].as_str().unwrap_or_default().to_string(),
                l["message"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    let expected: Vec<(String, String, String)> = [
        ("INFO", "print", "PRINTED-ONE"),
        ("INFO", "action", "logged two"),
        ("WARNING", "stderr", "stderr three"),
        ("INFO", "print", "PRINTED-FOUR"),
        ("WARNING", "action", "logged five"),
        ("ERROR", "action", "caught six"),
    ]
    .iter()
    .map(|(a, b, c)| (a.to_string(), b.to_string(), c.to_string()))
    .collect();
    assert_eq!(summary, expected, "{}", outcome.dump());
    for line in &lines {
        if let Some(time) = line.get("time") {
            assert_timestamp(time.as_str().expect("time is a string"));
        }
    }
    let exc = lines[5]["exc"].as_str().expect("the exception text");
    assert!(exc.contains("ZeroDivisionError: division by zero"), "{exc}");
}

#[test]
fn a_failure_before_the_call_as_json_logs_has_an_exit_status() {
    let action = identity_action();
    let outcome = run_on(action.path(), &json!({"not": "an array"}), &["--json-logs"]);
    outcome.assert_code(3);
    let lines = outcome.stderr_json_lines();
    assert_eq!(lines.len(), 1, "{}", outcome.dump());
    assert_eq!(lines[0]["level"], json!("ERROR"));
    assert_eq!(lines[0]["logger"], json!("vivarium"));
    assert_eq!(lines[0]["exit_status"], json!(3));
    assert!(
        lines[0]["message"]
            .as_str()
            .is_some_and(|m| m.contains("must be a JSON array")),
        "{}",
        lines[0]
    );
}

#[test]
fn a_bad_action_as_json_logs_names_its_outcome() {
    let outcome = run_source("main = 5\n", &one_record(), &["--json-logs"]);
    outcome.assert_code(11);
    let lines = outcome.stderr_json_lines();
    let last = lines.last().expect("an error line");
    assert_eq!(last["outcome"], json!("bad_action"), "{last}");
    assert_eq!(
        last["message"],
        json!("main in main.py is not a function (it is of type int)")
    );
}

// ----------------------------------------------------------------------------------------------
// The host survives.

#[test]
fn a_normal_run_works_right_after_hostile_ones() {
    let hostile = [
        (
            "def main(data, logger):\n    while True:\n        pass\n",
            "2000000000",
            14,
        ),
        (
            "def main(data, logger):\n    x = []\n    while True:\n        x.append(bytearray(1 << 20))\n",
            "10000000000",
            15,
        ),
    ];
    for (source, fuel, code) in hostile {
        run_source(
            source,
            &one_record(),
            &["--fuel", fuel, "--memory", "64MiB"],
        )
        .assert_code(code);
    }
    check_seed_result(&run(&uppercase_distinct(), &k8s_logs(), &[]));
}

// ----------------------------------------------------------------------------------------------
// More walls and edges.

#[test]
fn a_zip_action_cannot_write_to_its_extracted_folder() {
    let action = write_action(&[(
        "main.py",
        "def main(data, logger):\n\
         \x20   try:\n\
         \x20       open('main.py', 'a').write('# ' + 'TAMP' + 'ERED')\n\
         \x20       return [{'write': 'ok'}]\n\
         \x20   except PermissionError:\n\
         \x20       return [{'write': 'PermissionError', 'source': open('main.py').read().count('TAMP' + 'ERED')}]\n",
    )]);
    let (_dir, path) = write_named("tamper.zip", &zip_dir(action.path(), None));
    // Twice: the second run would see the first one's change if the cached copy were writable.
    for _ in 0..2 {
        let result = run_on(&path, &one_record(), &[]).success_json();
        assert_eq!(result, json!([{"write": "PermissionError", "source": 0}]));
    }
}

#[test]
fn subprocesses_are_unavailable() {
    let source = "\
import subprocess
def main(data, logger):
    subprocess.run(['ls', '/'])
    return data
";
    run_source(source, &one_record(), &[])
        .assert_failure(10, "error[script_error]: ")
        .assert_stderr_contains("OSError: ");
}

#[test]
fn a_busy_loop_with_ample_fuel_hits_the_timeout() {
    let outcome = run_source(
        "def main(data, logger):\n    while True:\n        pass\n",
        &one_record(),
        &["--fuel", "1000000000000", "--timeout", "1s"],
    );
    outcome.assert_failure(
        16,
        "error[timeout]: the action ran longer than its 1s time limit",
    );
    assert!(
        outcome.elapsed < Duration::from_secs(20),
        "{}",
        outcome.dump()
    );
}

#[test]
fn a_sleep_at_import_time_hits_the_timeout() {
    let outcome = run_source(
        "import time\ntime.sleep(30)\n\ndef main(data, logger):\n    return data\n",
        &one_record(),
        &["--timeout", "1s"],
    );
    outcome.assert_failure(16, "error[timeout]: ");
    assert!(
        outcome.elapsed < Duration::from_secs(20),
        "{}",
        outcome.dump()
    );
}

#[test]
fn writing_to_file_descriptor_1_cannot_corrupt_stdout() {
    let outcome = run_source(
        "import os\ndef main(data, logger):\n    os.write(1, b'GARBAGE-ON-FD1')\n    return data\n",
        &one_record(),
        &[],
    );
    // The bytes written past Python's stdout never reach the host's stdout (it stays empty), and
    // the user is told what went wrong.
    outcome
        .assert_failure(17, "error[runtime_fault]: ")
        .assert_stderr_contains("file descriptor 1");
}

#[test]
fn deeply_nested_input_is_refused_as_bad_input() {
    let action = identity_action();
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    let input = write_bytes(deep.as_bytes());
    run(action.path(), input.path(), &[]).assert_failure(3, "is not valid JSON");
}

#[test]
fn a_nested_but_valid_result_is_not_reported_as_an_interpreter_fault() {
    // 200 levels: within Python's json limits and far under the result size limit. The binary
    // may return it or refuse it as bad_result, but the interpreter did not fail (status 17 and
    // "did the action write to file descriptor 1 directly?" would send the user hunting for a
    // write that never happened).
    let outcome = run_source(
        "def main(data, logger):\n    x = 1\n    for _ in range(200):\n        x = [x]\n    return [{'nested': x}]\n",
        &one_record(),
        &[],
    );
    match outcome.code {
        Some(0) => {
            let mut value = &outcome.stdout_json()[0]["nested"];
            let mut depth = 0;
            while let Value::Array(items) = value {
                value = &items[0];
                depth += 1;
            }
            assert_eq!((depth, value), (200, &json!(1)), "{}", outcome.dump());
        }
        Some(12) => {
            outcome.assert_failure(12, "error[bad_result]: ");
        }
        _ => panic!(
            "a 200-level nested result must succeed or be a bad_result{}",
            outcome.dump()
        ),
    }
}

#[test]
fn integers_beyond_64_bits_round_trip_exactly() {
    // Python integers are unbounded; a record id such as 2**64 + 1 must reach the action as an
    // int and come back unchanged, not as the float 1.8446744073709552e+19.
    let action = write_action(&[(
        "main.py",
        "def main(data, logger):\n\
         \x20   r = data[0]\n\
         \x20   return [{'id': r['id'], 'id_type': type(r['id']).__name__, 'made': 2**64 + 1}]\n",
    )]);
    let input = write_bytes(br#"[{"id": 18446744073709551617}]"#);
    let outcome = run(action.path(), input.path(), &[]);
    let result = outcome.success_json();
    assert_eq!(result[0]["id_type"], json!("int"), "{}", outcome.dump());
    assert!(
        outcome.stdout.contains("\"id\": 18446744073709551617")
            && outcome.stdout.contains("\"made\": 18446744073709551617"),
        "integers were altered{}",
        outcome.dump()
    );
}

// ----------------------------------------------------------------------------------------------
// Vivarium's own diagnostics (first extraction of an archive) follow the log formats too.

/// A ZIP no run has seen yet, so the binary extracts it (and says so) on this run.
fn fresh_zip() -> (tempfile::TempDir, std::path::PathBuf) {
    let nonce = format!(
        "{}-{:?}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
    );
    let action = write_action(&[(
        "main.py",
        &format!(
            "# nonce {nonce}\ndef main(data, logger):\n    logger.info('fresh')\n    return data\n"
        ),
    )]);
    write_named("fresh.zip", &zip_dir(action.path(), None))
}

#[test]
fn json_logs_of_a_first_extraction_are_all_log_objects() {
    let (_dir, path) = fresh_zip();
    let outcome = run_on(&path, &one_record(), &["--json-logs"]);
    assert_eq!(outcome.success_json(), one_record());
    for line in outcome.stderr_json_lines() {
        for key in ["level", "logger", "message"] {
            assert!(
                line.get(key).is_some_and(Value::is_string),
                "log line without a string {key:?}: {line}{}",
                outcome.dump()
            );
        }
    }
}

#[test]
fn human_logs_written_to_a_pipe_hold_no_terminal_escapes() {
    let (_dir, path) = fresh_zip();
    let outcome = run_on(&path, &one_record(), &[]);
    assert_eq!(outcome.success_json(), one_record());
    assert!(
        !outcome.stderr.contains('\u{1b}'),
        "ANSI escape sequences in piped stderr{}",
        outcome.dump()
    );
    let fresh = outcome
        .stderr_lines()
        .into_iter()
        .find(|l| l.ends_with("action: fresh"))
        .unwrap_or_else(|| panic!("no action line{}", outcome.dump()));
    assert_human_log_line(fresh, "INFO", "action", "fresh");
}

/// The records reach `main` as exactly the objects `json.loads` makes of them, whichever form
/// the host sends them in: marshal (the usual one) or JSON (used when an integer is wider than
/// 64 bits). Python's `repr` tells int from float, `-0.0` from `0.0` and shows every string.
#[test]
fn records_reach_main_exactly_as_json_loads_reads_them() {
    let long = "y".repeat(300);
    let records = format!(
        r#"[{{"s": "", "a": "ascii", "u": "é ✓ 日本 🎉", "long": "{long}", "n": null, "t": true, "f": false}},
 {{"i": [0, -1, 1, 2147483647, -2147483648, 2147483648, -2147483649, 9007199254740993, 9223372036854775807, -9223372036854775808]}},
 {{"x": [0.0, -0.0, 1.5, 1e300, 5e-324, 1E400, -1e400, 1.0, 2.50, 1e5, 123456789.123456789]}},
 {{"nested": {{"deeper": [[], {{}}, [{{"s": "k"}}]], "s": "again"}}, "esc": "quote\" back\\ nl\n tab\t nul\u0000"}},
 {{"s": "the same key in another record"}}"#
    );
    let expected = format!(
        r#"[{{'s': '', 'a': 'ascii', 'u': 'é ✓ 日本 🎉', 'long': '{long}', 'n': None, 't': True, 'f': False}}, {{'i': [0, -1, 1, 2147483647, -2147483648, 2147483648, -2147483649, 9007199254740993, 9223372036854775807, -9223372036854775808]}}, {{'x': [0.0, -0.0, 1.5, 1e+300, 5e-324, inf, -inf, 1.0, 2.5, 100000.0, 123456789.12345679]}}, {{'nested': {{'deeper': [[], {{}}, [{{'s': 'k'}}]], 's': 'again'}}, 'esc': 'quote" back\\ nl\n tab\t nul\x00'}}, {{'s': 'the same key in another record'}}"#
    );
    let action = write_action(&[(
        "main.py",
        "def main(data, logger):\n    return [{'repr': repr(data)}]\n",
    )]);
    for (tail, wide) in [
        ("]", ""),
        (
            r#", {"wide": 123456789012345678901234567890}]"#,
            ", {'wide': 123456789012345678901234567890}]",
        ),
    ] {
        let input = write_bytes(format!("{records}{tail}").as_bytes());
        let outcome = run(action.path(), input.path(), &[]);
        let expected = format!("{expected}{}", if wide.is_empty() { "]" } else { wide });
        assert_eq!(
            outcome.success_json(),
            json!([{"repr": expected}]),
            "{}",
            outcome.dump()
        );
    }
}
