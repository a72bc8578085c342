//! The interpreter cache: warming the shared one, listing its files, and private copies for
//! tests that damage a cache.

use std::path::{Path, PathBuf};

use tempfile::TempDir;

use super::CACHE_DIR;
use super::cli::run_on;
use super::files::write_action;
use super::zips::IDENTITY_MAIN;

/// Makes sure the shared cache holds the interpreter and its compiled module (a trivial run).
pub fn warm_shared_cache() {
    let action = write_action(&[("main.py", IDENTITY_MAIN)]);
    let outcome = run_on(
        action.path(),
        &serde_json::json!([{"warm": true}]),
        &["--runtime", "pinned"],
    );
    assert_eq!(
        outcome.success_json(),
        serde_json::json!([{"warm": true}]),
        "warming the shared cache failed{}",
        outcome.dump()
    );
}

/// Files of the shared cache's sub-folder `sub` whose names end with one of `suffixes`.
pub fn shared_cache_files(sub: &str, suffixes: &[&str]) -> Vec<PathBuf> {
    let dir = Path::new(CACHE_DIR).join(sub);
    let mut found: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("listing {}: {e}", dir.display()))
        .map(|entry| entry.expect("listing the cache").path())
        .filter(|path| {
            let name = path.file_name().unwrap_or_default().to_string_lossy();
            !name.starts_with('.') && suffixes.iter().any(|s| name.ends_with(s))
        })
        .collect();
    found.sort();
    found
}

/// The interpreter installed in the shared cache (warm it first).
pub fn shared_interpreter() -> PathBuf {
    let found = shared_cache_files("runtime", &[".wasm"]);
    assert_eq!(
        found.len(),
        1,
        "one interpreter in the shared cache: {found:?}"
    );
    found.into_iter().next().unwrap()
}

/// A private cache folder (under the target's temporary folder) holding a copy of the shared
/// cache's interpreter and, when asked, of its compiled module and digest. The shared cache is
/// only read.
pub fn private_cache(with_compiled: bool) -> TempDir {
    warm_shared_cache();
    let dir = tempfile::Builder::new()
        .prefix("private-cache-")
        .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
        .expect("temporary cache folder");
    let copy = |sub: &str, suffixes: &[&str]| {
        let target = dir.path().join(sub);
        std::fs::create_dir_all(&target).expect("creating a cache sub-folder");
        for file in shared_cache_files(sub, suffixes) {
            std::fs::copy(&file, target.join(file.file_name().unwrap()))
                .expect("copying a cache file");
        }
    };
    copy("runtime", &[".wasm"]);
    if with_compiled {
        copy("compiled", &[".cwasm", ".cwasm.sha256"]);
    }
    dir
}
