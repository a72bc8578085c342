//! The structural pass: everything that can be checked from the central directory alone, before
//! any entry is decompressed. It produces a [`Plan`] that the content pass then follows.

use std::collections::HashSet;
use std::io::Cursor;

use sha2::{Digest, Sha256};
use zip::read::ZipFileEntry;
use zip::{CompressionMethod, ZipArchive};

use crate::names::{self, EntryPath, Named};
use crate::{
    DEPENDENCIES_DIR, MAIN_FILE, PYPROJECT_FILE, PackageError, PackageLimits, RATIO_CHECK_MIN_BYTES,
};

/// A ZIP archive read from memory.
pub(crate) type Archive<'a> = ZipArchive<Cursor<&'a [u8]>>;

/// Unix file-type bits of a mode and the value for a symbolic link.
const S_IFMT: u32 = 0o170_000;
const S_IFLNK: u32 = 0o120_000;

/// Signature of a central-directory file header.
const CENTRAL_HEADER: &[u8] = b"PK\x01\x02";
/// Fixed size of a central-directory file header, before its variable fields.
const CENTRAL_HEADER_LEN: usize = 46;

/// What the structural pass decided: which entries to extract and where.
#[derive(Debug)]
pub(crate) struct Plan {
    /// SHA-256 of the archive bytes, lower-case hex.
    pub digest: String,
    /// The stripped top-level folder, or "" for the root layout.
    pub prefix: String,
    /// Entries to extract, in archive order.
    pub entries: Vec<Planned>,
}

/// One entry to extract.
#[derive(Debug)]
pub(crate) struct Planned {
    /// Index in the archive.
    pub index: usize,
    /// The name as written in the archive, escaped for messages.
    pub name: String,
    /// Components relative to the action root (prefix removed); never empty.
    pub components: Vec<String>,
    /// Whether this is a folder entry.
    pub is_dir: bool,
    /// Declared uncompressed size.
    pub size: u64,
    /// Declared compressed size.
    pub compressed: u64,
}

impl Planned {
    /// The path relative to the action root, with `/` separators.
    pub fn relative(&self) -> String {
        self.components.join("/")
    }
}

/// An entry that passed the per-entry checks and is not macOS junk.
struct Candidate {
    index: usize,
    name: String,
    path: EntryPath,
    size: u64,
    compressed: u64,
}

/// Whether the bytes start like a ZIP archive: a local file header, or the end-of-central-
/// directory record of an empty archive.
pub fn looks_like_zip(bytes: &[u8]) -> bool {
    bytes.starts_with(b"PK\x03\x04") || (bytes.starts_with(b"PK\x05\x06") && bytes.len() >= 22)
}

/// Lower-case hex SHA-256 of some bytes.
pub(crate) fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Checks size and signature, then parses the central directory.
pub(crate) fn open<'a>(
    bytes: &'a [u8],
    limits: &PackageLimits,
    input: &str,
) -> Result<Archive<'a>, PackageError> {
    let size = u64::try_from(bytes.len()).unwrap_or(u64::MAX);
    if size > limits.max_archive_bytes {
        return Err(PackageError::ArchiveTooLarge {
            size,
            limit: limits.max_archive_bytes,
        });
    }
    if !looks_like_zip(bytes) {
        return Err(PackageError::NotZip {
            input: input.to_owned(),
        });
    }
    ZipArchive::new(Cursor::new(bytes)).map_err(malformed)
}

/// Wraps a ZIP reader error about the archive as a whole.
fn malformed(error: zip::result::ZipError) -> PackageError {
    PackageError::Malformed {
        reason: error.to_string(),
    }
}

/// Runs every structural check and decides what to extract.
pub(crate) fn plan(
    archive: &mut Archive<'_>,
    bytes: &[u8],
    limits: &PackageLimits,
) -> Result<Plan, PackageError> {
    check_archive_level(archive, bytes, limits)?;
    let candidates = candidates(archive, limits)?;
    let named: Vec<Named<'_>> = candidates
        .iter()
        .map(|c| Named {
            name: &c.name,
            path: &c.path,
        })
        .collect();
    names::check_collisions(&named)?;
    let prefix = find_prefix(&candidates)?;
    let entries = strip_prefix(candidates, &prefix);
    check_declared_total(&entries, limits)?;
    Ok(Plan {
        digest: sha256_hex(bytes),
        prefix,
        entries,
    })
}

/// Entry count, exact duplicate names and shared compressed data.
fn check_archive_level(
    archive: &mut Archive<'_>,
    bytes: &[u8],
    limits: &PackageLimits,
) -> Result<(), PackageError> {
    if archive.len() > limits.max_entries {
        return Err(PackageError::TooManyEntries {
            count: archive.len(),
            limit: limits.max_entries,
        });
    }
    if archive.has_duplicate_names() {
        let entry = first_duplicate_name(bytes, archive.central_directory_start())
            .unwrap_or_else(|| "(name not recoverable)".to_owned());
        return Err(PackageError::DuplicateEntry { entry });
    }
    if archive.has_overlapping_files().map_err(malformed)? {
        return Err(PackageError::OverlappingEntries);
    }
    Ok(())
}

/// Walks the raw central directory for the first name listed twice. The ZIP reader merges
/// entries with equal names, so the raw headers are the only place the duplicate is visible.
fn first_duplicate_name(bytes: &[u8], start: u64) -> Option<String> {
    let mut position = usize::try_from(start).ok()?;
    let mut seen = HashSet::new();
    while bytes.get(position..position.checked_add(4)?)? == CENTRAL_HEADER {
        let field = |offset: usize| -> Option<usize> {
            let at = position.checked_add(offset)?;
            let raw: [u8; 2] = bytes.get(at..at.checked_add(2)?)?.try_into().ok()?;
            Some(usize::from(u16::from_le_bytes(raw)))
        };
        let (name_len, extra_len, comment_len) = (field(28)?, field(30)?, field(32)?);
        let name_start = position.checked_add(CENTRAL_HEADER_LEN)?;
        let name = bytes.get(name_start..name_start.checked_add(name_len)?)?;
        if !seen.insert(name) {
            return Some(names::shown(&String::from_utf8_lossy(name)));
        }
        position = name_start
            .checked_add(name_len)?
            .checked_add(extra_len)?
            .checked_add(comment_len)?;
    }
    None
}

/// Checks every entry and keeps those that are not macOS junk or the root itself.
fn candidates(
    archive: &Archive<'_>,
    limits: &PackageLimits,
) -> Result<Vec<Candidate>, PackageError> {
    let mut kept = Vec::new();
    for index in 0..archive.len() {
        let entry = archive.by_index_data(index).map_err(malformed)?;
        let name = entry.name().map_err(malformed)?.into_owned();
        let path = names::parse(&name)?;
        check_entry_kind(&entry, &name)?;
        if names::is_junk(&path) || path.components.is_empty() {
            continue;
        }
        let candidate = Candidate {
            index,
            name: names::shown(&name),
            path,
            size: entry.size(),
            compressed: entry.compressed_size(),
        };
        check_declared_size(&candidate, limits)?;
        kept.push(candidate);
    }
    Ok(kept)
}

/// Refuses symbolic links, encrypted entries and unsupported compression methods.
fn check_entry_kind(entry: &ZipFileEntry<'_>, name: &str) -> Result<(), PackageError> {
    let entry_name = || names::shown(name);
    let mode = entry.external_attributes() >> 16;
    if mode & S_IFMT == S_IFLNK || entry.is_symlink() {
        return Err(PackageError::Symlink {
            entry: entry_name(),
        });
    }
    if entry.encrypted() {
        return Err(PackageError::Encrypted {
            entry: entry_name(),
        });
    }
    match entry.compression() {
        CompressionMethod::Stored | CompressionMethod::Deflated => Ok(()),
        other => Err(PackageError::UnsupportedCompression {
            entry: entry_name(),
            method: other.to_string(),
        }),
    }
}

/// Per-entry size and ratio limits, on the sizes the headers declare.
fn check_declared_size(candidate: &Candidate, limits: &PackageLimits) -> Result<(), PackageError> {
    if candidate.path.is_dir {
        return Ok(());
    }
    check_entry_size(&candidate.name, candidate.size, limits)?;
    check_ratio(&candidate.name, candidate.size, candidate.compressed, limits)
}

/// Refuses an entry of more than `max_entry_bytes`.
pub(crate) fn check_entry_size(
    name: &str,
    size: u64,
    limits: &PackageLimits,
) -> Result<(), PackageError> {
    if size > limits.max_entry_bytes {
        return Err(PackageError::EntryTooLarge {
            entry: name.to_owned(),
            size,
            limit: limits.max_entry_bytes,
        });
    }
    Ok(())
}

/// Refuses an entry above [`RATIO_CHECK_MIN_BYTES`] that expands more than `max_ratio` times.
pub(crate) fn check_ratio(
    name: &str,
    size: u64,
    compressed: u64,
    limits: &PackageLimits,
) -> Result<(), PackageError> {
    if size > RATIO_CHECK_MIN_BYTES && size > compressed.saturating_mul(limits.max_ratio) {
        return Err(PackageError::RatioTooHigh {
            entry: name.to_owned(),
            size,
            compressed,
            limit: limits.max_ratio,
        });
    }
    Ok(())
}

/// Refuses a running total of more than `max_total_bytes`.
pub(crate) fn check_total(
    name: &str,
    total: u64,
    limits: &PackageLimits,
) -> Result<(), PackageError> {
    if total > limits.max_total_bytes {
        return Err(PackageError::TotalTooLarge {
            entry: name.to_owned(),
            total,
            limit: limits.max_total_bytes,
        });
    }
    Ok(())
}

/// The sum of declared sizes of the files to extract must stay within `max_total_bytes`.
fn check_declared_total(entries: &[Planned], limits: &PackageLimits) -> Result<(), PackageError> {
    let mut total: u64 = 0;
    for entry in entries.iter().filter(|e| !e.is_dir) {
        total = total.saturating_add(entry.size);
        check_total(&entry.name, total, limits)?;
    }
    Ok(())
}

/// "" when `main.py` is at the root; the folder's name when everything sits in one top-level
/// folder holding `main.py`; otherwise the archive has no entry point.
fn find_prefix(candidates: &[Candidate]) -> Result<String, PackageError> {
    let is_file_at = |c: &Candidate, wanted: &[&str]| !c.path.is_dir && c.path.components == wanted;
    if candidates.iter().any(|c| is_file_at(c, &[MAIN_FILE])) {
        return Ok(String::new());
    }
    let top = candidates
        .first()
        .and_then(|c| c.path.components.first())
        .ok_or(PackageError::MissingMain)?;
    let single_top = candidates
        .iter()
        .all(|c| c.path.components.first() == Some(top));
    if single_top && candidates.iter().any(|c| is_file_at(c, &[top, MAIN_FILE])) {
        return Ok(top.clone());
    }
    Err(PackageError::MissingMain)
}

/// Removes the prefix folder from every path and drops the entry for the folder itself.
fn strip_prefix(candidates: Vec<Candidate>, prefix: &str) -> Vec<Planned> {
    let skip = usize::from(!prefix.is_empty());
    candidates
        .into_iter()
        .filter(|c| c.path.components.len() > skip)
        .map(|c| Planned {
            index: c.index,
            name: c.name,
            components: c.path.components[skip..].to_vec(),
            is_dir: c.path.is_dir,
            size: c.size,
            compressed: c.compressed,
        })
        .collect()
}

/// Whether the extracted root will hold a `dependencies/` folder.
pub(crate) fn has_dependencies_dir(entries: &[Planned]) -> bool {
    entries.iter().any(|e| {
        e.components.first().map(String::as_str) == Some(DEPENDENCIES_DIR)
            && (e.is_dir || e.components.len() > 1)
    })
}

/// Whether the extracted root will hold a `pyproject.toml` file.
pub(crate) fn has_pyproject(entries: &[Planned]) -> bool {
    entries
        .iter()
        .any(|e| !e.is_dir && e.components == [PYPROJECT_FILE])
}
