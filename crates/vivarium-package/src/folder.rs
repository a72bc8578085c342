//! Inputs given as paths: a plain action folder, or a file that must be a ZIP archive.

use std::fs::{self, File};
use std::io::Read;
use std::path::Path;

use crate::extract::extract_zip;
use crate::scan::looks_like_zip;
use crate::{ActionDir, MAIN_FILE, PackageError, PackageLimits};

/// Uses a plain folder holding `main.py` as the action root, as is (no copy, no digest).
///
/// `main.py` must be a regular file: not a folder, and not a symbolic link, which the sandbox
/// could not follow if it pointed outside the folder. The returned root is absolute.
///
/// # Errors
///
/// [`PackageError::NotAFolder`], [`PackageError::FolderMissingMain`],
/// [`PackageError::MainNotRegularFile`], or [`PackageError::Io`] if the path cannot be read.
pub fn open_folder(path: &Path) -> Result<ActionDir, PackageError> {
    let metadata = fs::metadata(path)
        .map_err(|error| PackageError::io(format!("could not open {}", path.display()), error))?;
    if !metadata.is_dir() {
        return Err(PackageError::NotAFolder {
            path: path.to_path_buf(),
        });
    }
    check_main(path)?;
    let root = fs::canonicalize(path).map_err(|error| {
        PackageError::io(format!("could not resolve {}", path.display()), error)
    })?;
    Ok(ActionDir { root, digest: None })
}

/// Checks that `folder/main.py` exists and is a regular file.
fn check_main(folder: &Path) -> Result<(), PackageError> {
    let main = folder.join(MAIN_FILE);
    match fs::symlink_metadata(&main) {
        Ok(metadata) if metadata.is_file() => Ok(()),
        Ok(_) => Err(PackageError::MainNotRegularFile { path: main }),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            Err(PackageError::FolderMissingMain {
                path: folder.to_path_buf(),
            })
        }
        Err(error) => Err(PackageError::io(
            format!("could not inspect {}", main.display()),
            error,
        )),
    }
}

/// Prepares an action from a path: a folder is used as is ([`open_folder`]); a file is read
/// (refusing it before reading if it exceeds `max_archive_bytes`) and extracted with
/// [`extract_zip`]. Whether a file is a ZIP is decided by its content, never its name.
///
/// # Errors
///
/// Those of [`open_folder`] for a folder; for a file [`PackageError::ArchiveTooLarge`],
/// [`PackageError::NotZip`] (naming the path) and those of [`extract_zip`];
/// [`PackageError::UnsupportedInput`] for anything else; [`PackageError::Io`] if the path
/// cannot be read.
pub fn load_action(
    path: &Path,
    cache_root: &Path,
    limits: &PackageLimits,
) -> Result<ActionDir, PackageError> {
    let metadata = fs::metadata(path)
        .map_err(|error| PackageError::io(format!("could not open {}", path.display()), error))?;
    if metadata.is_dir() {
        return open_folder(path);
    }
    if !metadata.is_file() {
        return Err(PackageError::UnsupportedInput {
            path: path.to_path_buf(),
        });
    }
    let bytes = read_archive(path, metadata.len(), limits)?;
    if !looks_like_zip(&bytes) {
        return Err(PackageError::NotZip {
            input: path.display().to_string(),
        });
    }
    extract_zip(&bytes, cache_root, limits)
}

/// Reads a file of at most `max_archive_bytes`, checking the size before and while reading (the
/// file may grow in between).
fn read_archive(path: &Path, size: u64, limits: &PackageLimits) -> Result<Vec<u8>, PackageError> {
    let limit = limits.max_archive_bytes;
    if size > limit {
        return Err(PackageError::ArchiveTooLarge { size, limit });
    }
    let failed = |error| PackageError::io(format!("could not read {}", path.display()), error);
    let file = File::open(path).map_err(failed)?;
    let mut bytes = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
    file.take(limit.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(failed)?;
    let read = u64::try_from(bytes.len()).unwrap_or(u64::MAX);
    if read > limit {
        return Err(PackageError::ArchiveTooLarge { size: read, limit });
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{Cache, minimal};

    fn folder_with_main() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join(MAIN_FILE), b"print('hi')\n").unwrap();
        dir
    }

    #[test]
    fn folder_with_main_is_used_in_place() {
        let dir = folder_with_main();
        let action = open_folder(dir.path()).unwrap();
        assert_eq!(action.root, dir.path().canonicalize().unwrap());
        assert_eq!(action.digest, None);
    }

    #[test]
    fn folder_without_main_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let error = open_folder(dir.path()).unwrap_err();
        assert!(
            matches!(error, PackageError::FolderMissingMain { ref path } if path == dir.path())
        );
    }

    #[test]
    fn main_that_is_a_folder_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir(dir.path().join(MAIN_FILE)).unwrap();
        let error = open_folder(dir.path()).unwrap_err();
        assert!(matches!(error, PackageError::MainNotRegularFile { .. }));
    }

    #[cfg(unix)]
    #[test]
    fn main_that_is_a_symlink_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink("/etc/hostname", dir.path().join(MAIN_FILE)).unwrap();
        let error = open_folder(dir.path()).unwrap_err();
        assert!(matches!(error, PackageError::MainNotRegularFile { .. }));
    }

    #[test]
    fn a_file_is_not_a_folder() {
        let dir = folder_with_main();
        let error = open_folder(&dir.path().join(MAIN_FILE)).unwrap_err();
        assert!(matches!(error, PackageError::NotAFolder { .. }));
    }

    #[test]
    fn load_action_opens_folders_in_place() {
        let dir = folder_with_main();
        let cache = Cache::new();
        let action = load_action(dir.path(), cache.path(), &PackageLimits::default()).unwrap();
        assert_eq!(action.digest, None);
        assert!(!cache.path().join(crate::ACTIONS_DIR).exists());
    }

    #[test]
    fn load_action_recognises_a_zip_by_content_not_name() {
        let dir = Cache::new();
        let path = dir.path().join("action.txt");
        fs::write(&path, minimal()).unwrap();
        let action = load_action(&path, dir.path(), &PackageLimits::default()).unwrap();
        assert!(action.digest.is_some());
        assert!(action.root.join(MAIN_FILE).is_file());
    }

    #[test]
    fn load_action_refuses_text_named_zip() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("action.zip");
        fs::write(&path, b"print('not a zip')\n").unwrap();
        let error = load_action(&path, dir.path(), &PackageLimits::default()).unwrap_err();
        assert!(
            matches!(error, PackageError::NotZip { ref input } if input == &path.display().to_string())
        );
        assert!(
            error
                .to_string()
                .contains("action.zip is not a ZIP archive")
        );
    }

    #[test]
    fn load_action_checks_size_before_reading() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("action.zip");
        fs::write(&path, minimal()).unwrap();
        let limits = PackageLimits {
            max_archive_bytes: 10,
            ..PackageLimits::default()
        };
        let error = load_action(&path, dir.path(), &limits).unwrap_err();
        assert!(matches!(
            error,
            PackageError::ArchiveTooLarge { limit: 10, .. }
        ));
    }

    #[test]
    fn load_action_reports_a_missing_path() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nope.zip");
        let error = load_action(&path, dir.path(), &PackageLimits::default()).unwrap_err();
        assert!(
            matches!(error, PackageError::Io { ref error, .. } if error.kind() == std::io::ErrorKind::NotFound)
        );
        assert!(error.to_string().contains("nope.zip"));
    }
}
