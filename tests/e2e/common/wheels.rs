//! Pure-Python wheels built on the fly, for dependency tests that never touch the network.

use super::zips::zip_entries;

/// A pure-Python wheel of `name` `version` whose module exposes `VERSION` and `greet()`.
pub fn wheel(name: &str, version: &str, requires: &[&str], tag: &str) -> (String, Vec<u8>) {
    let dist_info = format!("{name}-{version}.dist-info");
    let mut metadata = format!("Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n");
    for requirement in requires {
        metadata.push_str(&format!("Requires-Dist: {requirement}\n"));
    }
    let module = format!(
        "VERSION = {version:?}\n\ndef greet(who):\n    return 'hello ' + who + ' from {name}'\n"
    );
    let wheel_file = format!(
        "Wheel-Version: 1.0\nGenerator: vivarium-tests\nRoot-Is-Purelib: true\nTag: {tag}\n"
    );
    let entries: Vec<(String, Vec<u8>)> = vec![
        (format!("{name}/__init__.py"), module.into_bytes()),
        (format!("{dist_info}/METADATA"), metadata.into_bytes()),
        (format!("{dist_info}/WHEEL"), wheel_file.into_bytes()),
    ];
    let refs: Vec<(&str, &[u8])> = entries
        .iter()
        .map(|(n, b)| (n.as_str(), b.as_slice()))
        .collect();
    (
        format!("{name}-{version}-{tag}.whl"),
        zip_entries(&refs, zip::CompressionMethod::Deflated),
    )
}

/// A folder holding `wheels` (file name, bytes), to serve as an offline wheelhouse.
pub fn wheelhouse(wheels: &[(String, Vec<u8>)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("wheelhouse");
    for (name, bytes) in wheels {
        std::fs::write(dir.path().join(name), bytes).expect("writing a wheel");
    }
    dir
}

/// An index nobody listens on: what is resolved must come from elsewhere (a wheelhouse, the
/// runtime).
pub const CLOSED_INDEX: &str = "http://127.0.0.1:9/simple";

/// A `pyproject.toml` declaring `dependencies`.
pub fn pyproject(dependencies: &[&str]) -> String {
    let list: Vec<String> = dependencies.iter().map(|d| format!("{d:?}")).collect();
    format!(
        "[project]\nname = \"demo\"\nversion = \"0.1.0\"\nrequires-python = \">=3.8\"\ndependencies = [{}]\n",
        list.join(", ")
    )
}
