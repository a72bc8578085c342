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
pub fn open_folder(path: &Path) -> Result<ActionDir, PackageError> {
    let metadata = fs::metadata(path)
        .map_err(|error| PackageError::io(format!("could not open {}", path.display()), error))?;
    if !metadata.is_dir() {
        return Err(PackageError::NotAFolder {
            path: path.to_path_buf(),
        });
    }
    check_main(path)?;
    let root = fs::canonicalize(path)
        .map_err(|error| PackageError::io(format!("could not resolve {}", path.display()), error))?;
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
