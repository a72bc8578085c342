//! What the numpy and pandas tests share about a package the runtime provides built in: a
//! `pyproject.toml` requirement on it resolves to the provided version without the index, and
//! one the provided version cannot meet is refused naming it.

use serde_json::json;

use crate::common::cli::{run_on, vivarium};
use crate::common::files::write_action;
use crate::common::wheels::{CLOSED_INDEX, pyproject};

/// Runs an action that requires `requirement` on `package` in its `pyproject.toml` and imports
/// it by a computed name (so the requirement alone chooses the profile), against an index with
/// nothing on it: the action sees a version starting with `major`, and the lock lists it under
/// `provided` with no package from the index.
pub fn assert_requirement_resolves_to_the_provided(package: &str, requirement: &str, major: &str) {
    let (head, tail) = package.split_at(package.len() / 2);
    let main = format!(
        "import importlib\n\ndef main(data, logger):\n    \
         package = importlib.import_module({head:?} + {tail:?})\n    \
         return [{{'version': package.__version__}}]\n"
    );
    let action = write_action(&[
        ("main.py", &main),
        (
            "pyproject.toml",
            &pyproject(&[&format!("{package}{requirement}")]),
        ),
    ]);
    let outcome = run_on(action.path(), &json!([{}]), &["--index", CLOSED_INDEX]);
    let version = outcome.success_json()[0]["version"].clone();
    assert!(
        version.as_str().is_some_and(|v| v.starts_with(major)),
        "the requirement alone chooses the {package} profile: {}",
        outcome.dump()
    );
    let locked = vivarium()
        .args(["deps", "lock"])
        .arg(action.path())
        .args(["--index", CLOSED_INDEX])
        .output();
    let lock = locked.success_json();
    assert_eq!(lock["packages"], json!([]), "{}", locked.dump());
    assert_eq!(lock["provided"][0]["name"], json!(package));
    assert_eq!(lock["provided"][0]["version"], version);
}

/// Runs an action requiring `package` below version 2 (which the runtime's is not): refused
/// as bad dependencies, naming the version provided (starting with `major`) and the requirement.
pub fn assert_unmet_requirement_is_refused(package: &str, major: &str) {
    let action = write_action(&[
        ("main.py", "def main(data, logger):\n    return data\n"),
        ("pyproject.toml", &pyproject(&[&format!("{package}<2")])),
    ]);
    let outcome = run_on(action.path(), &json!([{}]), &["--index", CLOSED_INDEX]);
    outcome.assert_failure(
        6,
        &format!("{package}: the runtime provides {package} {major}"),
    );
    outcome.assert_stderr_contains("which does not satisfy \"<2\"");
}
