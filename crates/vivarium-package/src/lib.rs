//! Action packages for Vivarium: validation and safe extraction of uploaded ZIP archives.
//!
//! A user uploads an action as a ZIP archive holding `main.py` (at the root, or inside one
//! top-level folder). Before anything reaches the sandbox, the archive is checked against hostile
//! content: path tricks (absolute paths, `..`, backslashes, drive letters, control characters,
//! empty components), symbolic links, duplicate or case-colliding names, encryption, exotic
//! compression, resource exhaustion (archive size, entry count, per-entry and total
//! uncompressed size, compression ratio — on the bytes actually decompressed, never trusting
//! declared sizes), and compiled extension modules (`.so`, `.pyd`, `.dylib`), which the
//! sandbox cannot load. Accepted archives are extracted once into a read-only, content-addressed
//! folder `<cache_root>/actions/<sha256>/` that is mounted at `/action`.
//!
//! Entry points: [`inspect_zip`] (validation only), [`extract_zip`], [`open_folder`] (a plain
//! folder, for the CLI) and [`load_action`] (either, decided by content).

#![warn(missing_docs)]

mod content;
mod error;
mod extensions;
mod extract;
mod folder;
mod imports;
mod names;
mod scan;
#[cfg(test)]
mod testutil;

use std::path::PathBuf;

pub use error::PackageError;
pub use extract::extract_zip;
pub use folder::{load_action, open_folder};
pub use imports::imported_modules;
pub use scan::looks_like_zip;

/// Packages with native code that the runtime provides built into a profile of its own
/// (`vivarium-sandbox`'s profiles): an action imports them without shipping them.
pub const PROVIDED_PACKAGES: &[&str] = &["numpy", "pandas"];
/// The entry point every action must have, at the root of the extracted folder.
pub const MAIN_FILE: &str = "main.py";
/// Folder of vendored Python dependencies, optional, at the root of the action.
pub const DEPENDENCIES_DIR: &str = "dependencies";
/// Project metadata file, optional, at the root of the action.
pub const PYPROJECT_FILE: &str = "pyproject.toml";
/// Sub-folder of the cache root holding one folder per extracted archive digest.
pub const ACTIONS_DIR: &str = "actions";
/// Entries up to this many uncompressed bytes are exempt from the ratio limit: small files of
/// repetitive text legitimately compress very well and cannot exhaust anything.
pub const RATIO_CHECK_MIN_BYTES: u64 = 1024 * 1024;

const MIB: u64 = 1024 * 1024;

/// Limits on an uploaded archive; [`Default`] gives the documented defaults.
///
/// They bound what one upload can cost in memory, disk and CPU.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackageLimits {
    /// Largest accepted archive, in bytes (default 50 MiB).
    pub max_archive_bytes: u64,
    /// Largest sum of uncompressed file sizes, in bytes (default 200 MiB).
    pub max_total_bytes: u64,
    /// Largest uncompressed size of one file, in bytes (default 50 MiB).
    pub max_entry_bytes: u64,
    /// Largest number of entries in the archive, junk included (default 10 000).
    pub max_entries: usize,
    /// Largest uncompressed/compressed ratio of one entry (default 100); applies only to
    /// entries larger than [`RATIO_CHECK_MIN_BYTES`].
    pub max_ratio: u64,
}

impl Default for PackageLimits {
    fn default() -> Self {
        Self {
            max_archive_bytes: 50 * MIB,
            max_total_bytes: 200 * MIB,
            max_entry_bytes: 50 * MIB,
            max_entries: 10_000,
            max_ratio: 100,
        }
    }
}

/// A validated archive: what [`inspect_zip`] found, so callers can report on an upload without
/// extracting it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    /// SHA-256 of the ZIP bytes, lower-case hex; also the name of its cache folder.
    pub digest: String,
    /// The single top-level folder stripped on extraction, or "" when `main.py` is at the root.
    pub prefix: String,
    /// Regular files kept (macOS junk excluded), relative to the action root, `/`-separated,
    /// sorted.
    pub files: Vec<String>,
    /// Sum of the uncompressed sizes of the kept files, as actually decompressed.
    pub total_bytes: u64,
    /// Whether the action root has a `dependencies/` folder.
    pub has_dependencies_dir: bool,
    /// Whether the action root has a `pyproject.toml` file.
    pub has_pyproject: bool,
}

/// An action folder ready to mount read-only at `/action`: `root` holds `main.py`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActionDir {
    /// Absolute path of the folder holding `main.py`.
    pub root: PathBuf,
    /// SHA-256 of the archive it was extracted from; `None` for a plain folder.
    pub digest: Option<String>,
}

/// Validates an archive completely without writing anything to disk.
///
/// Runs the same checks as [`extract_zip`], including decompressing every kept entry (into
/// nothing) so CRCs, real sizes and ratios are verified; a `Manifest` means extraction would
/// succeed, barring disk errors.
///
/// # Errors
///
/// The refusal that applies, checked in this order: [`PackageError::ArchiveTooLarge`],
/// [`PackageError::NotZip`], [`PackageError::Malformed`], archive-wide refusals (entry count,
/// duplicates, overlapping data), per-entry refusals in archive order (path rules, symlink,
/// encryption, compression method, declared size and ratio), name collisions,
/// [`PackageError::MissingMain`], the declared total, [`PackageError::CompiledExtensions`],
/// then while decompressing
/// [`PackageError::CorruptEntry`] and the size limits on the real bytes.
pub fn inspect_zip(bytes: &[u8], limits: &PackageLimits) -> Result<Manifest, PackageError> {
    let mut archive = scan::open(bytes, limits, "the upload")?;
    let plan = scan::plan(&mut archive, bytes, limits)?;
    let total_bytes = content::verify_all(&mut archive, &plan.entries, limits)?;
    let mut files: Vec<String> = plan
        .entries
        .iter()
        .filter(|e| !e.is_dir)
        .map(scan::Planned::relative)
        .collect();
    files.sort();
    Ok(Manifest {
        has_dependencies_dir: scan::has_dependencies_dir(&plan.entries),
        has_pyproject: scan::has_pyproject(&plan.entries),
        digest: plan.digest,
        prefix: plan.prefix,
        files,
        total_bytes,
    })
}
