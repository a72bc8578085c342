//! Dependencies end to end through the real binary: wheels built on the fly in an offline
//! wheelhouse (the index pointed at a closed port), imported inside the sandbox; refusals by
//! name; and, when built with `VIVARIUM_TEST_PUBLIC_INDEX=1` (as `.ci/run` does), real
//! packages from the public Python package index.

use std::path::Path;

use crate::common::cli::vivarium;
use crate::common::files::{write_action, write_json};
use crate::common::wheels::{CLOSED_INDEX, pyproject, wheel, wheelhouse};
use serde_json::{Value, json};

fn run_with_wheelhouse(action: &Path, house: &Path) -> crate::common::cli::Outcome {
    let input = write_json(&json!([{"who": "vivarium"}]));
    vivarium()
        .arg("run")
        .arg(action)
        .arg("--input")
        .arg(input.path())
        .args(["--index", CLOSED_INDEX, "--wheelhouse"])
        .arg(house)
        .output()
}

const GREET_MAIN: &str = "import greeting\n\ndef main(data, logger):\n    return [{'greeting': greeting.greet(data[0]['who']), 'helper': __import__('helper').VERSION}]\n";

#[test]
fn transitive_dependencies_from_an_offline_wheelhouse_import_in_the_sandbox() {
    let house = wheelhouse(&[
        wheel("greeting", "1.0", &["helper>=2"], "py3-none-any"),
        wheel("greeting", "2.0", &["helper>=2"], "py3-none-any"),
        wheel("helper", "1.5", &[], "py3-none-any"),
        wheel("helper", "2.1", &[], "py2.py3-none-any"),
    ]);
    let action = write_action(&[
        ("main.py", GREET_MAIN),
        ("pyproject.toml", &pyproject(&["greeting<2"])),
    ]);
    let outcome = run_with_wheelhouse(action.path(), house.path());
    assert_eq!(
        outcome.success_json(),
        json!([{"greeting": "hello vivarium from greeting", "helper": "2.1"}])
    );
}

#[test]
fn deps_lock_prints_the_resolved_set() {
    let house = wheelhouse(&[
        wheel("greeting", "1.0", &["helper"], "py3-none-any"),
        wheel("helper", "2.1", &[], "py3-none-any"),
    ]);
    let action = write_action(&[
        ("main.py", GREET_MAIN),
        ("pyproject.toml", &pyproject(&["greeting"])),
    ]);
    let outcome = vivarium()
        .args(["deps", "lock"])
        .arg(action.path())
        .args(["--index", CLOSED_INDEX, "--wheelhouse"])
        .arg(house.path())
        .output();
    let lock = outcome.success_json();
    let packages: Vec<(String, String)> = lock["packages"]
        .as_array()
        .expect("packages")
        .iter()
        .map(|p| {
            (
                p["name"].as_str().unwrap_or_default().into(),
                p["version"].as_str().unwrap_or_default().into(),
            )
        })
        .collect();
    assert_eq!(
        packages,
        vec![
            ("greeting".into(), "1.0".into()),
            ("helper".into(), "2.1".into())
        ]
    );
    assert!(
        lock["packages"][0]["sha256"]
            .as_str()
            .is_some_and(|h| h.len() == 64),
        "{lock}"
    );
}

#[test]
fn a_package_with_only_platform_wheels_is_refused_by_name() {
    let house = wheelhouse(&[wheel(
        "fastmath",
        "1.0",
        &[],
        "cp312-cp312-manylinux_2_17_x86_64",
    )]);
    let action = write_action(&[
        ("main.py", "def main(data, logger):\n    return []\n"),
        ("pyproject.toml", &pyproject(&["fastmath"])),
    ]);
    let outcome = run_with_wheelhouse(action.path(), house.path());
    outcome.assert_failure(6, "fastmath: no pure-Python wheel");
    outcome.assert_stderr_contains("compiled extensions cannot run in the sandbox");
}

#[test]
fn a_conflict_is_reported_with_its_chain() {
    let house = wheelhouse(&[
        wheel("greeting", "1.0", &["helper<2"], "py3-none-any"),
        wheel("helper", "1.5", &[], "py3-none-any"),
        wheel("helper", "2.1", &[], "py3-none-any"),
    ]);
    let action = write_action(&[
        ("main.py", GREET_MAIN),
        ("pyproject.toml", &pyproject(&["greeting", "helper>=2"])),
    ]);
    let outcome = run_with_wheelhouse(action.path(), house.path());
    outcome.assert_failure(6, "the dependencies conflict");
    outcome.assert_stderr_contains("helper");
}

#[test]
fn a_dependencies_folder_takes_precedence_and_needs_no_network() {
    let house = tempfile::tempdir().expect("empty wheelhouse");
    let action = write_action(&[
        (
            "main.py",
            "import greeting\n\ndef main(data, logger):\n    return [{'from': greeting.SOURCE}]\n",
        ),
        ("pyproject.toml", &pyproject(&["greeting"])),
        (
            "dependencies/greeting/__init__.py",
            "SOURCE = 'the dependencies folder'\n",
        ),
    ]);
    let outcome = run_with_wheelhouse(action.path(), house.path());
    assert_eq!(
        outcome.success_json(),
        json!([{"from": "the dependencies folder"}])
    );
}

#[test]
fn the_layer_is_read_only_inside_the_sandbox() {
    let house = wheelhouse(&[wheel("greeting", "1.0", &[], "py3-none-any")]);
    let main = "import greeting, os\n\ndef main(data, logger):\n    try:\n        open(os.path.join(os.path.dirname(greeting.__file__), 'x.py'), 'w')\n        return [{'wrote': True}]\n    except OSError as e:\n        return [{'error': type(e).__name__, 'path': greeting.__file__}]\n";
    let action = write_action(&[
        ("main.py", main),
        ("pyproject.toml", &pyproject(&["greeting"])),
    ]);
    let result = run_with_wheelhouse(action.path(), house.path()).success_json();
    assert_eq!(result[0]["error"], json!("PermissionError"), "{result}");
    assert_eq!(
        result[0]["path"],
        json!("/deps/greeting/__init__.py"),
        "{result}"
    );
}

/// Real packages from the public index: ignored unless the tests were built with
/// `VIVARIUM_TEST_PUBLIC_INDEX=1`.
#[test]
#[cfg_attr(
    not(vivarium_public_index),
    ignore = "installs from the public package index: set VIVARIUM_TEST_PUBLIC_INDEX=1"
)]
fn real_packages_from_the_public_index_run_in_the_sandbox() {
    let main = r#"import dateutil.parser, six, tabulate, jmespath, attrs, idna


@attrs.define
class Point:
    x: int


def main(data, logger):
    when = dateutil.parser.isoparse("2026-11-26T05:38:50Z")
    return [{"year": when.year, "six": six.PY3, "table": tabulate.tabulate([[1]], headers=["a"]),
             "name": jmespath.search("a.b", {"a": {"b": "found"}}), "point": Point(3).x,
             "idna": idna.encode("bücher.example").decode()}]
"#;
    let deps = [
        "python-dateutil>=2.8",
        "six",
        "tabulate",
        "jmespath==1.0.1",
        "attrs",
        "idna",
    ];
    let action = write_action(&[("main.py", main), ("pyproject.toml", &pyproject(&deps))]);
    let input = write_json(&json!([{}]));
    let outcome = vivarium()
        .arg("run")
        .arg(action.path())
        .arg("--input")
        .arg(input.path())
        .output();
    let result: Value = outcome.success_json();
    assert_eq!(result[0]["year"], json!(2026), "{result}");
    assert_eq!(result[0]["name"], json!("found"), "{result}");
    assert_eq!(result[0]["point"], json!(3), "{result}");
    assert_eq!(
        result[0]["idna"],
        json!("xn--bcher-kva.example"),
        "{result}"
    );
    // A package with compiled wheels only is refused by name (numpy is not one: the runtime
    // provides it, see numpy_sandbox).
    let compiled = write_action(&[
        ("main.py", "def main(data, logger):\n    return []\n"),
        ("pyproject.toml", &pyproject(&["orjson"])),
    ]);
    let refused = vivarium()
        .arg("run")
        .arg(compiled.path())
        .arg("--input")
        .arg(input.path())
        .output();
    refused.assert_failure(6, "orjson: no pure-Python wheel");
}

/// A library from the public index that makes a folder under `~` when it is imported (the
/// `openobserve` client: `~/.openobserve/logs`) imports, in the call's own `/tmp`.
#[test]
#[cfg_attr(
    not(vivarium_public_index),
    ignore = "installs from the public package index: set VIVARIUM_TEST_PUBLIC_INDEX=1"
)]
fn a_library_writing_under_home_at_import_imports() {
    let main = r#"import os
import openobserve


def main(data, logger):
    return [{"logs_dir": openobserve.logs_dir, "made": os.path.isdir(openobserve.logs_dir)}]
"#;
    let action = write_action(&[
        ("main.py", main),
        ("pyproject.toml", &pyproject(&["openobserve==1.0.2"])),
    ]);
    let outcome = crate::common::cli::run_on(action.path(), &json!([{}]), &[]);
    assert_eq!(
        outcome.success_json(),
        json!([{"logs_dir": "/tmp/.openobserve/logs", "made": true}])
    );
}
