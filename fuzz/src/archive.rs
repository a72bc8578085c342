//! Uploaded ZIP archives: the scanner and the extractor take the upload's bytes.

use std::fs;
use std::mem::discriminant;
use std::path::Path;
use std::sync::OnceLock;

use tempfile::TempDir;
use vivarium_package::{PackageLimits, extract_zip, inspect_zip};

/// Limits small enough that fuzzed archives reach every size refusal.
fn limits() -> PackageLimits {
    PackageLimits {
        max_archive_bytes: 1 << 20,
        max_total_bytes: 1 << 18,
        max_entry_bytes: 1 << 16,
        max_entries: 64,
        max_ratio: 100,
    }
}

/// One cache for the whole run: extractions are content-addressed, so a repeated archive
/// takes the reuse path, as it does in the service.
fn cache_root() -> &'static Path {
    static ROOT: OnceLock<TempDir> = OnceLock::new();
    ROOT.get_or_init(|| {
        tempfile::Builder::new()
            .prefix("vivarium-fuzz-archive-")
            .tempdir()
            .unwrap_or_else(|error| panic!("no temporary folder for extractions: {error}"))
    })
    .path()
}

/// An upload's bytes: validation and extraction agree on whether it is accepted (and on the
/// refusal), and an accepted archive extracts to exactly the files its manifest lists.
pub fn run(bytes: &[u8]) {
    let limits = limits();
    match (
        inspect_zip(bytes, &limits),
        extract_zip(bytes, cache_root(), &limits),
    ) {
        (Ok(manifest), Ok(action)) => {
            let mut found = Vec::new();
            list_files(&action.root, "", &mut found);
            found.sort();
            assert_eq!(
                found, manifest.files,
                "extracted files differ from the manifest"
            );
            assert_eq!(action.digest.as_deref(), Some(manifest.digest.as_str()));
        }
        (Err(inspected), Err(extracted)) => assert_eq!(
            discriminant(&inspected),
            discriminant(&extracted),
            "validation said {inspected}, extraction said {extracted}"
        ),
        (inspected, extracted) => {
            panic!("validation gave {inspected:?} but extraction gave {extracted:?}")
        }
    }
}

/// Every regular file below `folder`, `/`-separated from the action root; anything that is
/// neither a file nor a folder breaks the extractor's promise.
fn list_files(folder: &Path, prefix: &str, found: &mut Vec<String>) {
    let entries = fs::read_dir(folder).unwrap_or_else(|e| panic!("{}: {e}", folder.display()));
    for entry in entries {
        let entry = entry.unwrap_or_else(|e| panic!("{}: {e}", folder.display()));
        let name = entry.file_name().to_string_lossy().into_owned();
        let relative = format!("{prefix}{name}");
        let kind = entry
            .file_type()
            .unwrap_or_else(|e| panic!("{relative}: {e}"));
        if kind.is_dir() {
            list_files(&entry.path(), &format!("{relative}/"), found);
        } else {
            assert!(kind.is_file(), "{relative} is neither a file nor a folder");
            found.push(relative);
        }
    }
}
