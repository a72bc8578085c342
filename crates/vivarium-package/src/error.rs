//! The one error type of this crate: every refusal has its own variant whose message says what
//! was wrong, names the offending entry where there is one, and says what to do about it.

use std::io;
use std::path::PathBuf;

/// Why an action package (a ZIP archive or a folder) was refused or could not be prepared.
///
/// Entry names in the variants are shown with control characters escaped, so a hostile name
/// cannot garble a terminal or a log line.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PackageError {
    /// The input does not start with the ZIP signature (and is not an empty ZIP either).
    #[error(
        "{input} is not a ZIP archive (it does not start with the ZIP signature `PK\\x03\\x04`); \
         package the action folder with a zip tool, e.g. `cd my_action && zip -r ../action.zip .`"
    )]
    NotZip {
        /// What was read: a file path or "the upload".
        input: String,
    },

    /// The archive starts like a ZIP but its structure (central directory) cannot be parsed.
    #[error(
        "the ZIP archive is damaged and cannot be read ({reason}); \
         re-create it with a standard zip tool"
    )]
    Malformed {
        /// What the ZIP reader reported.
        reason: String,
    },

    /// The archive itself is larger than `PackageLimits::max_archive_bytes`.
    #[error(
        "the archive is {size} bytes, more than the limit of {limit} bytes; \
         remove files the action does not need (or raise the archive size limit)"
    )]
    ArchiveTooLarge {
        /// Size of the archive in bytes.
        size: u64,
        /// The limit in force.
        limit: u64,
    },

    /// The archive lists more entries than `PackageLimits::max_entries`.
    #[error(
        "the archive has {count} entries, more than the limit of {limit}; \
         remove files the action does not need (or raise the entry limit)"
    )]
    TooManyEntries {
        /// Number of entries in the central directory.
        count: usize,
        /// The limit in force.
        limit: usize,
    },

    /// One entry is (or declares to be) larger than `PackageLimits::max_entry_bytes`.
    #[error(
        "entry `{entry}` is at least {size} bytes uncompressed, more than the per-file limit of \
         {limit} bytes; remove it from the archive (or raise the per-file limit)"
    )]
    EntryTooLarge {
        /// The offending entry.
        entry: String,
        /// Its declared size, or the bytes read before the limit was crossed.
        size: u64,
        /// The limit in force.
        limit: u64,
    },

    /// All entries together expand beyond `PackageLimits::max_total_bytes`.
    #[error(
        "the archive expands to more than {limit} bytes (reached {total} bytes at entry \
         `{entry}`); remove files the action does not need (or raise the total size limit)"
    )]
    TotalTooLarge {
        /// The entry at which the running total crossed the limit.
        entry: String,
        /// The running total at that point.
        total: u64,
        /// The limit in force.
        limit: u64,
    },

    /// An entry expands far more than real files do: the signature of a zip bomb.
    #[error(
        "entry `{entry}` expands to {size} bytes from {compressed} compressed bytes, a ratio above \
         the limit of {limit}:1 (a zip-bomb pattern); remove it (or raise the ratio limit)"
    )]
    RatioTooHigh {
        /// The offending entry.
        entry: String,
        /// Its (declared or observed) uncompressed size.
        size: u64,
        /// Its compressed size.
        compressed: u64,
        /// The ratio limit in force.
        limit: u64,
    },

    /// An entry path starts with `/`.
    #[error(
        "entry `{entry}` has an absolute path; paths in the archive must be relative to the \
         action root — re-create the archive from inside the action folder"
    )]
    AbsolutePath {
        /// The offending entry.
        entry: String,
    },

    /// An entry path has a `..` component, which could escape the extraction folder.
    #[error(
        "entry `{entry}` contains a `..` component, which could escape the action folder; \
         re-create the archive without it"
    )]
    ParentComponent {
        /// The offending entry.
        entry: String,
    },

    /// An entry path contains `\`, which ZIP does not use as a separator.
    #[error(
        "entry `{entry}` contains a backslash; ZIP paths must use `/` between folders — \
         re-create the archive with a standard zip tool"
    )]
    Backslash {
        /// The offending entry.
        entry: String,
    },

    /// An entry path starts with a Windows drive letter such as `C:`.
    #[error(
        "entry `{entry}` starts with a drive letter; paths in the archive must be relative to \
         the action root — re-create the archive from inside the action folder"
    )]
    DriveLetter {
        /// The offending entry.
        entry: String,
    },

    /// An entry path contains NUL or another control character.
    #[error("entry `{entry}` contains a NUL or control character in its name; rename that file")]
    ControlCharacter {
        /// The offending entry (control characters escaped).
        entry: String,
    },

    /// An entry path is empty or has an empty component (`a//b`).
    #[error(
        "entry `{entry}` has an empty path component (an empty name or `//`); \
         re-create the archive with a standard zip tool"
    )]
    EmptyComponent {
        /// The offending entry.
        entry: String,
    },

    /// An entry is a symbolic link (unix mode `S_IFLNK`).
    #[error(
        "entry `{entry}` is a symbolic link, which action packages may not contain; \
         put the file it points to in the archive instead"
    )]
    Symlink {
        /// The offending entry.
        entry: String,
    },

    /// Two entries have the same path (after removing a trailing `/` and `./` components).
    #[error("the archive contains `{entry}` more than once; remove the duplicate")]
    DuplicateEntry {
        /// The duplicated path.
        entry: String,
    },

    /// Two entries differ only in ASCII letter case, so they would collide on
    /// case-insensitive file systems.
    #[error(
        "entries `{entry}` and `{other}` differ only in letter case and would collide on \
         case-insensitive file systems; rename one of them"
    )]
    CaseCollision {
        /// The later entry.
        entry: String,
        /// The earlier entry it collides with.
        other: String,
    },

    /// A file entry has the same path as a folder another entry needs.
    #[error(
        "entry `{entry}` is a file, but entry `{other}` needs a folder of that name; \
         rename one of them"
    )]
    PathConflict {
        /// The file entry.
        entry: String,
        /// The entry that needs a folder at the same path.
        other: String,
    },

    /// An entry is encrypted (general-purpose flag bit 0).
    #[error(
        "entry `{entry}` is encrypted, which is not supported; \
         re-create the archive without a password"
    )]
    Encrypted {
        /// The offending entry.
        entry: String,
    },

    /// An entry uses a compression method other than Stored or Deflated.
    #[error(
        "entry `{entry}` uses the {method} compression method; only Stored and Deflated are \
         supported — re-create the archive with a standard zip tool and default settings"
    )]
    UnsupportedCompression {
        /// The offending entry.
        entry: String,
        /// The method's name (or number).
        method: String,
    },

    /// An entry's data does not match its headers: bad CRC, broken deflate stream, or more or
    /// fewer bytes than declared.
    #[error(
        "entry `{entry}` is corrupt ({reason}); the archive is damaged or was crafted — \
         re-create it with a standard zip tool"
    )]
    CorruptEntry {
        /// The offending entry.
        entry: String,
        /// What did not match.
        reason: String,
    },

    /// Several entries share compressed data, a technique of non-recursive zip bombs that no
    /// ordinary zip tool produces.
    #[error(
        "the archive has entries that share the same compressed data (a zip-bomb technique); \
         re-create it with a standard zip tool"
    )]
    OverlappingEntries,

    /// No `main.py` at the archive root nor inside a single top-level folder.
    #[error(
        "the archive has no main.py at its root or inside a single top-level folder; \
         zip the action folder so that main.py is at the top of the archive \
         (or inside one folder that holds everything)"
    )]
    MissingMain,

    /// Files of native code (`.so`, `.pyd`, `.dylib`, or versioned like `libx.so.1`): CPython on
    /// WASI cannot load compiled extension modules.
    #[error(
        "the archive holds compiled extension modules, which cannot load in the sandbox (only \
         pure-Python packages run there): {} (packages: {}); remove them, and list the packages \
         in pyproject.toml under [project].dependencies instead of shipping them, so that \
         Vivarium installs pure-Python wheels of them or says why there are none \
         (pyproject.toml dependencies are installed only when the archive has no dependencies/ \
         folder){}",
        listed(files),
        listed(packages),
        provided_hint(packages)
    )]
    CompiledExtensions {
        /// Every compiled file, as named in the archive, in archive order.
        files: Vec<String>,
        /// The packages they belong to (their folder under `dependencies/`, else their
        /// top-level folder or module name), sorted, without duplicates.
        packages: Vec<String>,
    },

    /// A path given as an action folder is not a folder.
    #[error("{} is not a folder; pass a folder holding main.py", path.display())]
    NotAFolder {
        /// The path given.
        path: PathBuf,
    },

    /// An action folder has no `main.py`.
    #[error(
        "the folder {} has no main.py; put the action's entry point in main.py at the top of \
         the folder",
        path.display()
    )]
    FolderMissingMain {
        /// The folder.
        path: PathBuf,
    },

    /// An action folder's `main.py` is a folder, a symbolic link or a special file.
    #[error(
        "{} is not a regular file (it is a folder, a symbolic link or a special file); \
         main.py must be a plain file",
        path.display()
    )]
    MainNotRegularFile {
        /// The path of the offending `main.py`.
        path: PathBuf,
    },

    /// A path given to `load_action` is neither a regular file nor a folder.
    #[error(
        "{} is neither a regular file nor a folder; pass a folder holding main.py or a ZIP \
         archive",
        path.display()
    )]
    UnsupportedInput {
        /// The path given.
        path: PathBuf,
    },

    /// A file-system operation failed (reading the input, writing the cache).
    #[error("{context}: {error}")]
    Io {
        /// What was being done, including the path involved.
        context: String,
        /// The underlying error (shown in the message, so not also reported as a source).
        error: io::Error,
    },
}

/// How many names a message lists before summing up the rest.
const MAX_LISTED: usize = 10;

/// The first [`MAX_LISTED`] names, comma-separated, then "and N more" for the others.
/// What to say of the refused packages the runtime provides built in: they need no copy.
fn provided_hint(packages: &[String]) -> String {
    let provided: Vec<&str> = packages
        .iter()
        .map(String::as_str)
        .filter(|name| crate::PROVIDED_PACKAGES.contains(name))
        .collect();
    if provided.is_empty() {
        return String::new();
    }
    format!(
        "; the snapshot runtime (the default) provides {} built in: an action that imports one runs with it, no copy needed",
        provided.join(", ")
    )
}

fn listed(names: &[String]) -> String {
    let shown = names.get(..MAX_LISTED).unwrap_or(names).join(", ");
    match names.len().saturating_sub(MAX_LISTED) {
        0 => shown,
        more => format!("{shown} and {more} more"),
    }
}

impl PackageError {
    /// Wraps an I/O error with a description of what was being done.
    pub(crate) fn io(context: impl Into<String>, error: io::Error) -> Self {
        Self::Io {
            context: context.into(),
            error,
        }
    }
}
