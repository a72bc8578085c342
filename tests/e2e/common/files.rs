//! Files and folders the tests hand to the binary: the workspace's fixtures, and temporary
//! JSON documents, byte files, action folders and data folders.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde_json::Value;
use tempfile::TempDir;

/// The fixtures folder of the workspace.
pub fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures")
}

/// The seed action folder.
pub fn uppercase_distinct() -> PathBuf {
    fixtures().join("actions").join("uppercase_distinct")
}

/// The seed records file.
pub fn k8s_logs() -> PathBuf {
    fixtures().join("records").join("k8s_logs.json")
}

/// Writes a JSON document to a temporary file.
pub fn write_json(value: &Value) -> tempfile::NamedTempFile {
    write_bytes(value.to_string().as_bytes())
}

/// Writes bytes to a temporary file.
pub fn write_bytes(bytes: &[u8]) -> tempfile::NamedTempFile {
    let mut file = tempfile::NamedTempFile::new().expect("temporary file");
    file.write_all(bytes).expect("writing a temporary file");
    file.flush().expect("flushing a temporary file");
    file
}

/// Writes bytes to `name` inside a fresh temporary folder (for names that matter, like x.zip).
pub fn write_named(name: &str, bytes: &[u8]) -> (TempDir, PathBuf) {
    let dir = TempDir::new().expect("temporary folder");
    let path = dir.path().join(name);
    std::fs::write(&path, bytes).expect("writing a temporary file");
    (dir, path)
}

/// Writes a one-off action folder: `(relative path, contents)` pairs, parents created.
pub fn write_action(files: &[(&str, &str)]) -> TempDir {
    let dir = TempDir::new().expect("temporary folder");
    for (name, contents) in files {
        let path = dir.path().join(name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).expect("creating a folder");
        }
        std::fs::write(&path, contents).expect("writing an action file");
    }
    dir
}

/// A fresh data folder for one server (kept across restarts by holding it).
pub fn data_dir() -> TempDir {
    tempfile::Builder::new()
        .prefix("vivarium-server-data-")
        .tempdir()
        .expect("temporary data folder")
}
