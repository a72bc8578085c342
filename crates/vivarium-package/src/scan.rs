//! The structural pass: everything that can be checked from the central directory alone, before
//! any entry is decompressed. It produces a [`Plan`] that the content pass then follows.

use std::collections::HashSet;
use std::io::Cursor;

use sha2::{Digest, Sha256};
use zip::read::ZipFileEntry;
use zip::{CompressionMethod, ZipArchive};

use crate::extensions::{self, ArchiveFile};
use crate::names::{self, EntryPath, Named};
use crate::{
    DEPENDENCIES_DIR, MAIN_FILE, PYPROJECT_FILE, PackageError, PackageLimits, RATIO_CHECK_MIN_BYTES,
};

/// A ZIP archive read from memory.
pub(crate) type Archive<'a> = ZipArchive<Cursor<&'a [u8]>>;

/// Unix file-type bits of a mode.
const S_IFMT: u32 = 0o170_000;
/// Unix file type of a symbolic link.
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
/// directory record of an empty archive. Inputs are recognised by content, never by file name.
#[must_use]
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
    extensions::check(entries.iter().filter(|e| !e.is_dir).map(|e| ArchiveFile {
        name: &e.name,
        components: &e.components,
    }))?;
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
    check_ratio(
        &candidate.name,
        candidate.size,
        candidate.compressed,
        limits,
    )
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

#[cfg(test)]
mod tests {
    use std::io::{Cursor, Write};

    use zip::ZipWriter;

    use crate::testutil::*;
    use crate::{PackageError, PackageLimits, inspect_zip};

    fn inspect(bytes: &[u8]) -> Result<crate::Manifest, PackageError> {
        inspect_zip(bytes, &PackageLimits::default())
    }

    /// An archive with `main.py` and one more entry called `placeholder`, renamed afterwards to
    /// `hostile` (same length) so the writer cannot normalise or refuse it.
    fn with_renamed_entry(placeholder: &str, hostile: &[u8]) -> Vec<u8> {
        let mut bytes = zip_of(&[("main.py", b"x = 1\n"), (placeholder, b"data")]);
        replace_all(&mut bytes, placeholder.as_bytes(), hostile);
        bytes
    }

    #[test]
    fn root_layout_is_accepted() {
        let bytes = zip_of(&[
            ("main.py", b"print('hi')\n"),
            ("lib/", b""),
            ("lib/util.py", b"X = 1\n"),
        ]);
        let manifest = inspect(&bytes).unwrap();
        assert_eq!(manifest.prefix, "");
        assert_eq!(manifest.files, ["lib/util.py", "main.py"]);
        assert_eq!(manifest.total_bytes, 18);
        assert_eq!(manifest.digest, super::sha256_hex(&bytes));
        assert_eq!(manifest.digest.len(), 64);
        assert!(!manifest.has_dependencies_dir && !manifest.has_pyproject);
    }

    #[test]
    fn single_folder_layout_strips_the_prefix() {
        let bytes = zip_of(&[
            ("real_time_action_script/", b""),
            ("real_time_action_script/main.py", b"print('hi')\n"),
            ("real_time_action_script/helpers/io.py", b"pass\n"),
        ]);
        let manifest = inspect(&bytes).unwrap();
        assert_eq!(manifest.prefix, "real_time_action_script");
        assert_eq!(manifest.files, ["helpers/io.py", "main.py"]);
    }

    #[test]
    fn macos_junk_is_ignored() {
        let bytes = zip_of(&[
            ("action/", b""),
            ("action/main.py", b"print('hi')\n"),
            ("action/.DS_Store", b"junk"),
            ("__MACOSX/", b""),
            ("__MACOSX/action/", b""),
            ("__MACOSX/action/._main.py", b"junk"),
        ]);
        let manifest = inspect(&bytes).unwrap();
        assert_eq!(manifest.prefix, "action");
        assert_eq!(manifest.files, ["main.py"]);
        assert_eq!(manifest.total_bytes, 12);
    }

    #[test]
    fn dependencies_and_pyproject_are_detected() {
        let bytes = zip_of(&[
            ("pkg/main.py", b""),
            ("pkg/pyproject.toml", b"[project]\n"),
            ("pkg/dependencies/requests/__init__.py", b""),
        ]);
        let manifest = inspect(&bytes).unwrap();
        assert!(manifest.has_dependencies_dir);
        assert!(manifest.has_pyproject);
    }

    #[test]
    fn missing_main_is_refused() {
        let error = inspect(&zip_of(&[("app.py", b"")])).unwrap_err();
        assert!(matches!(error, PackageError::MissingMain));
        assert!(error.to_string().contains(
            "the archive has no main.py at its root or inside a single top-level folder"
        ));
    }

    #[test]
    fn main_too_deep_or_beside_other_top_level_entries_is_refused() {
        let nested = zip_of(&[("a/b/main.py", b"")]);
        assert!(matches!(inspect(&nested), Err(PackageError::MissingMain)));
        let two_tops = zip_of(&[("a/main.py", b""), ("README.md", b"")]);
        assert!(matches!(inspect(&two_tops), Err(PackageError::MissingMain)));
        let folder_named_main = zip_of(&[("main.py/", b""), ("main.py/x.py", b"")]);
        assert!(matches!(
            inspect(&folder_named_main),
            Err(PackageError::MissingMain)
        ));
    }

    #[test]
    fn empty_archive_is_a_zip_without_main() {
        let bytes = zip_of(&[]);
        assert!(crate::looks_like_zip(&bytes));
        assert!(matches!(inspect(&bytes), Err(PackageError::MissingMain)));
    }

    #[test]
    fn text_is_not_a_zip() {
        let error = inspect(b"def main():\n    pass\n").unwrap_err();
        assert!(matches!(error, PackageError::NotZip { .. }));
        assert!(error.to_string().contains("is not a ZIP archive"));
    }

    #[test]
    fn garbage_after_the_signature_is_malformed() {
        let error = inspect(b"PK\x03\x04 not really a zip archive at all").unwrap_err();
        assert!(matches!(error, PackageError::Malformed { .. }), "{error:?}");
    }

    #[test]
    fn absolute_path_is_refused() {
        let bytes = with_renamed_entry("_etc/x.py", b"/etc/x.py");
        let error = inspect(&bytes).unwrap_err();
        assert!(matches!(error, PackageError::AbsolutePath { ref entry } if entry == "/etc/x.py"));
        assert!(error.to_string().contains("/etc/x.py"));
    }

    #[test]
    fn parent_component_is_refused() {
        let bytes = with_renamed_entry("ab/zz/x.py", b"ab/../x.py");
        let error = inspect(&bytes).unwrap_err();
        assert!(
            matches!(error, PackageError::ParentComponent { ref entry } if entry == "ab/../x.py")
        );
    }

    #[test]
    fn backslash_is_refused() {
        let bytes = with_renamed_entry("a_b.py", b"a\\b.py");
        let error = inspect(&bytes).unwrap_err();
        assert!(matches!(error, PackageError::Backslash { ref entry } if entry == "a\\b.py"));
    }

    #[test]
    fn drive_letter_is_refused() {
        let bytes = with_renamed_entry("C_/x.py", b"C:/x.py");
        let error = inspect(&bytes).unwrap_err();
        assert!(matches!(error, PackageError::DriveLetter { ref entry } if entry == "C:/x.py"));
    }

    #[test]
    fn nul_in_a_name_is_refused() {
        let bytes = with_renamed_entry("a_b.py", b"a\0b.py");
        let error = inspect(&bytes).unwrap_err();
        assert!(
            matches!(error, PackageError::ControlCharacter { ref entry } if entry == "a\\u{0}b.py")
        );
    }

    #[test]
    fn empty_component_is_refused() {
        let bytes = with_renamed_entry("a/_b.py", b"a//b.py");
        let error = inspect(&bytes).unwrap_err();
        assert!(matches!(error, PackageError::EmptyComponent { ref entry } if entry == "a//b.py"));
    }

    #[test]
    fn symlink_is_refused() {
        let mut writer = ZipWriter::new(Cursor::new(Vec::new()));
        writer.start_file("main.py", deflated()).unwrap();
        writer.write_all(b"x = 1\n").unwrap();
        writer
            .add_symlink("secrets", "/etc/shadow", deflated())
            .unwrap();
        let bytes = writer.finish().unwrap().into_inner();
        let error = inspect(&bytes).unwrap_err();
        assert!(matches!(error, PackageError::Symlink { ref entry } if entry == "secrets"));
    }

    #[test]
    fn exact_duplicate_is_refused() {
        let mut bytes = zip_of(&[("main.py", b""), ("dup1.py", b"a"), ("dup2.py", b"b")]);
        replace_all(&mut bytes, b"dup2.py", b"dup1.py");
        let error = inspect(&bytes).unwrap_err();
        assert!(matches!(error, PackageError::DuplicateEntry { ref entry } if entry == "dup1.py"));
    }

    #[test]
    fn duplicate_after_normalising_is_refused() {
        let bytes = zip_of(&[("main.py", b""), ("./main.py", b"")]);
        let error = inspect(&bytes).unwrap_err();
        assert!(
            matches!(error, PackageError::DuplicateEntry { ref entry } if entry == "./main.py")
        );
    }

    #[test]
    fn case_duplicate_is_refused() {
        let bytes = zip_of(&[("main.py", b""), ("Lib.py", b""), ("lib.py", b"")]);
        let error = inspect(&bytes).unwrap_err();
        assert!(matches!(
            error,
            PackageError::CaseCollision { ref entry, ref other } if entry == "lib.py" && other == "Lib.py"
        ));
    }

    #[test]
    fn file_where_a_folder_is_needed_is_refused() {
        let bytes = zip_of(&[("main.py", b""), ("lib", b""), ("lib/x.py", b"")]);
        let error = inspect(&bytes).unwrap_err();
        assert!(matches!(error, PackageError::PathConflict { ref entry, .. } if entry == "lib"));
    }

    #[test]
    fn encrypted_entry_is_refused() {
        let mut bytes = zip_of(&[("main.py", b""), ("secret.py", b"token = 1\n")]);
        set_u16(&mut bytes, "secret.py", FLAGS, 1);
        let error = inspect(&bytes).unwrap_err();
        assert!(matches!(error, PackageError::Encrypted { ref entry } if entry == "secret.py"));
    }

    #[test]
    fn bzip2_entry_is_refused() {
        let mut bytes = zip_of(&[("main.py", b""), ("data.bin", b"payload")]);
        set_u16(&mut bytes, "data.bin", METHOD, 12);
        let error = inspect(&bytes).unwrap_err();
        assert!(matches!(
            error,
            PackageError::UnsupportedCompression { ref entry, ref method } if entry == "data.bin" && method == "Bzip2"
        ));
    }

    #[test]
    fn archive_size_limit() {
        let bytes = minimal();
        let limits = PackageLimits {
            max_archive_bytes: 20,
            ..PackageLimits::default()
        };
        let error = inspect_zip(&bytes, &limits).unwrap_err();
        assert!(matches!(
            error,
            PackageError::ArchiveTooLarge { limit: 20, .. }
        ));
    }

    #[test]
    fn entry_count_limit() {
        let bytes = zip_of(&[("main.py", b""), ("a.py", b""), ("b.py", b"")]);
        let limits = PackageLimits {
            max_entries: 2,
            ..PackageLimits::default()
        };
        let error = inspect_zip(&bytes, &limits).unwrap_err();
        assert!(matches!(
            error,
            PackageError::TooManyEntries { count: 3, limit: 2 }
        ));
    }

    #[test]
    fn entry_size_limit() {
        let bytes = zip_of(&[("main.py", b""), ("big.txt", &[b'x'; 15])]);
        let limits = PackageLimits {
            max_entry_bytes: 10,
            ..PackageLimits::default()
        };
        let error = inspect_zip(&bytes, &limits).unwrap_err();
        assert!(matches!(
            error,
            PackageError::EntryTooLarge { ref entry, size: 15, limit: 10 } if entry == "big.txt"
        ));
    }

    #[test]
    fn total_size_limit() {
        let bytes = zip_of(&[("main.py", &[b'#'; 15]), ("more.py", &[b'#'; 15])]);
        let limits = PackageLimits {
            max_total_bytes: 20,
            ..PackageLimits::default()
        };
        let error = inspect_zip(&bytes, &limits).unwrap_err();
        assert!(matches!(
            error,
            PackageError::TotalTooLarge { ref entry, total: 30, limit: 20 } if entry == "more.py"
        ));
    }

    #[test]
    fn compression_ratio_limit_catches_a_bomb() {
        let zeros = vec![0_u8; 2 * 1024 * 1024];
        let bytes = zip_of(&[("main.py", b""), ("bomb.bin", &zeros)]);
        let error = inspect(&bytes).unwrap_err();
        assert!(matches!(
            error,
            PackageError::RatioTooHigh { ref entry, limit: 100, .. } if entry == "bomb.bin"
        ));
    }

    #[test]
    fn small_entries_are_exempt_from_the_ratio_limit() {
        let zeros = vec![0_u8; 512 * 1024];
        let bytes = zip_of(&[("main.py", b""), ("zeros.bin", &zeros)]);
        assert_eq!(inspect(&bytes).unwrap().total_bytes, 512 * 1024);
    }

    #[test]
    fn entry_larger_than_declared_is_refused() {
        let mut bytes = zip_with(&[("main.py", b""), ("data.bin", &[7_u8; 5000])], stored());
        set_u32(&mut bytes, "data.bin", UNCOMPRESSED, 10);
        let error = inspect(&bytes).unwrap_err();
        assert!(
            matches!(error, PackageError::CorruptEntry { ref entry, .. } if entry == "data.bin")
        );
    }

    #[test]
    fn entry_smaller_than_declared_is_refused() {
        let mut bytes = zip_with(&[("main.py", b""), ("data.bin", &[7_u8; 5000])], stored());
        set_u32(&mut bytes, "data.bin", UNCOMPRESSED, 6000);
        let error = inspect(&bytes).unwrap_err();
        assert!(matches!(
            error,
            PackageError::CorruptEntry { ref entry, ref reason }
                if entry == "data.bin" && reason.contains("declares 6000 bytes but holds 5000")
        ));
    }

    #[test]
    fn bad_crc_is_refused() {
        let mut bytes = zip_with(&[("main.py", b""), ("data.txt", b"hello world")], stored());
        replace_all(&mut bytes, b"hello world", b"hellO world");
        let error = inspect(&bytes).unwrap_err();
        assert!(
            matches!(error, PackageError::CorruptEntry { ref entry, .. } if entry == "data.txt")
        );
    }

    #[test]
    fn overlapping_entries_are_refused() {
        let mut writer = ZipWriter::new(Cursor::new(Vec::new()));
        writer.start_file("main.py", deflated()).unwrap();
        writer.write_all(b"x = 1\n").unwrap();
        writer.start_file("kernel.bin", deflated()).unwrap();
        writer.write_all(&[1_u8; 1000]).unwrap();
        writer.shallow_copy_file("kernel.bin", "copy.bin").unwrap();
        let bytes = writer.finish().unwrap().into_inner();
        let error = inspect(&bytes).unwrap_err();
        assert!(matches!(error, PackageError::OverlappingEntries));
    }
}
