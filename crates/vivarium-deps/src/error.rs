//! The one error type of this crate: every refusal names the package (or file) concerned, says
//! what was wrong and what to do about it, so the message can be shown to the action's author
//! as it is.

use std::io;
use std::path::PathBuf;

use crate::environment::TargetPython;

/// Why the dependencies of an action could not be read, resolved or installed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DepsError {
    /// `pyproject.toml` is not valid TOML, or `[project]` has a field of the wrong shape.
    #[error("pyproject.toml cannot be read: {reason}; fix the file and submit the action again")]
    BadPyproject {
        /// The TOML parser's message, or which field has the wrong shape.
        reason: String,
    },

    /// One entry of `[project].dependencies` is not a PEP 508 requirement Vivarium can install.
    #[error("dependency \"{requirement}\" is not valid: {reason}")]
    BadRequirement {
        /// The offending line as written.
        requirement: String,
        /// What the PEP 508 parser (or Vivarium) objected to.
        reason: String,
    },

    /// `[project].requires-python` excludes the Python the dependencies are resolved for.
    #[error(
        "pyproject.toml declares requires-python \"{specifier}\", which excludes CPython \
         {python}, the Python the action is to run on; allow Python {} in requires-python, or \
         run the action on a Python it admits",
        .python.python_version()
    )]
    ProjectRequiresPython {
        /// The `requires-python` value as written.
        specifier: String,
        /// The interpreter it excludes (`DepsConfig::python`).
        python: TargetPython,
    },

    /// Neither the index nor the wheelhouse knows the package.
    #[error(
        "{package}: not found on the package index {index}{wheelhouse} (required by {required_by}); \
         check the name in [project].dependencies"
    )]
    PackageNotFound {
        /// Normalized package name.
        package: String,
        /// Who asked for it ("the action" or "name version").
        required_by: String,
        /// The index URL that was asked.
        index: String,
        /// " nor in the wheelhouse" when one is configured, else empty.
        wheelhouse: String,
    },

    /// The package exists but no version matches the requested specifier.
    #[error(
        "{package}: no version matches \"{specifier}\" (versions with a usable wheel: {available}); \
         relax the version constraint"
    )]
    NoMatchingVersion {
        /// Normalized package name.
        package: String,
        /// The specifier that matched nothing.
        specifier: String,
        /// The newest usable versions, or "none".
        available: String,
    },

    /// The action requires a version of a package the runtime provides built in that the
    /// provided version does not satisfy.
    #[error(
        "{package}: the runtime provides {package} {provided} built in, which does not satisfy \
         \"{specifier}\" (required by the action); {package} cannot be installed in another \
         version, so relax the constraint to admit {provided}"
    )]
    ProvidedVersionExcluded {
        /// Normalized package name.
        package: String,
        /// The version the runtime has.
        provided: String,
        /// The action's specifier that excludes it.
        specifier: String,
    },

    /// Matching versions publish wheels, but only platform-specific (compiled) ones.
    #[error(
        "{package}: no pure-Python wheel (py3-none-any) is published for any matching version; \
         packages with compiled extensions cannot run in the sandbox"
    )]
    NoPureWheel {
        /// Normalized package name.
        package: String,
    },

    /// The newest release of a package publishes wheels, compiled ones only, and no
    /// requirement on the package excludes that release: an older release that happens to have
    /// a pure-Python wheel (often an ancient placeholder) is not chosen silently in its place.
    #[error(
        "{package} (required by {required_by}): its newest release, {newest}, has only wheels \
         with compiled extensions ({}); only pure-Python packages run in the sandbox, so \
         {package} is refused rather than held back to {fallback}, its newest release with a \
         pure-Python wheel; remove {package} (or what requires it) from \
         [project].dependencies, or, if {package} {fallback} really is what the action needs, \
         require it with a version constraint that excludes {newest}, e.g. \
         \"{package}=={fallback}\"",
        crate::candidates::listed(wheels)
    )]
    NewestReleaseCompiled {
        /// Normalized package name.
        package: String,
        /// Who requires it ("the action", "name version"), comma-separated.
        required_by: String,
        /// The newest release (pre-releases aside, unless there are only those).
        newest: String,
        /// The file names of its wheels (the message names the first few).
        wheels: Vec<String>,
        /// The version resolution would otherwise have chosen.
        fallback: String,
    },

    /// Matching versions publish source distributions only.
    #[error(
        "{package}: only source distributions are published; Vivarium installs wheels only \
         (build a pure-Python wheel with `pip wheel --no-deps {package}` and put it in the \
         wheelhouse, or choose another package)"
    )]
    SdistOnly {
        /// Normalized package name.
        package: String,
    },

    /// Every matching version of the package declares a `Requires-Python` that excludes the
    /// Python the dependencies are resolved for.
    #[error(
        "{package}: every matching version requires Python \"{specifier}\", but the action \
         runs on CPython {python}; choose a version of {package} that supports Python {}",
        .python.python_version()
    )]
    PackageRequiresPython {
        /// Normalized package name.
        package: String,
        /// The newest matching version's `Requires-Python`.
        specifier: String,
        /// The interpreter it excludes (`DepsConfig::python`).
        python: TargetPython,
    },

    /// Version solving proved that the requirements cannot all hold at once.
    #[error("the dependencies conflict: {explanation}; loosen one of these constraints")]
    Conflict {
        /// The chain of requirements that clash, ending with the package they disagree on.
        explanation: String,
    },

    /// A downloaded file's sha256 differs from the one the index or the lock announced.
    #[error(
        "{file}: sha256 mismatch (expected {expected}, got {actual}); the download is corrupt or \
         was tampered with, so nothing was installed; try again, and report it if it persists"
    )]
    HashMismatch {
        /// The file name (wheel or metadata file).
        file: String,
        /// The announced digest (hex).
        expected: String,
        /// The digest of the bytes received (hex).
        actual: String,
    },

    /// An HTTP request failed (connection, status, protocol).
    #[error(
        "download of {url} failed: {reason}; check the network and the index URL, or put the \
         wheels in the wheelhouse to work offline"
    )]
    Download {
        /// The URL asked.
        url: String,
        /// What went wrong.
        reason: String,
    },

    /// An HTTP request did not finish within `DepsConfig::download_timeout`.
    #[error(
        "download of {url} did not finish within {seconds} s; try again later or raise the \
         download timeout"
    )]
    Timeout {
        /// The URL asked.
        url: String,
        /// The timeout in force, in seconds.
        seconds: u64,
    },

    /// The index answered with a page this crate cannot understand.
    #[error("the package index answered {url} with a page that cannot be read: {reason}")]
    BadIndexPage {
        /// The page URL.
        url: String,
        /// What was wrong with it.
        reason: String,
    },

    /// The installed files would exceed `DepsConfig::max_layer_bytes`.
    #[error(
        "the dependencies would take more than {limit} bytes once installed (reached while \
         installing {package}); drop some dependencies or raise the layer size limit"
    )]
    LayerTooLarge {
        /// The package being installed when the limit was crossed.
        package: String,
        /// The limit in force.
        limit: u64,
    },

    /// The resolution needs more packages than `DepsConfig::max_packages`.
    #[error(
        "the dependencies need {count} packages, more than the limit of {limit}; drop some \
         dependencies or raise the package limit"
    )]
    TooManyPackages {
        /// How many packages the lock holds.
        count: usize,
        /// The limit in force.
        limit: usize,
    },

    /// A wheel holds an entry that would escape the layer or is not a plain file.
    #[error(
        "wheel {wheel} was refused: entry \"{entry}\" {reason}; such wheels are never installed"
    )]
    UnsafeWheel {
        /// The wheel file name.
        wheel: String,
        /// The entry name, with control characters escaped.
        entry: String,
        /// Why it is unsafe.
        reason: String,
    },

    /// A wheel (or its metadata) is damaged or inconsistent.
    #[error("wheel {wheel} is damaged or inconsistent: {reason}; the package cannot be installed")]
    BadWheel {
        /// The wheel file name.
        wheel: String,
        /// What is wrong with it.
        reason: String,
    },

    /// A lock handed to `install` is not one `resolve` could have produced.
    #[error("the lock is not valid: {reason}; resolve the dependencies again")]
    BadLock {
        /// What is wrong with it.
        reason: String,
    },

    /// A wheel named in the lock is no longer offered by the index or the wheelhouse.
    #[error(
        "{package}: wheel {wheel} named in the lock is no longer offered by the index or the \
         wheelhouse; resolve the dependencies again"
    )]
    WheelNotAvailable {
        /// Normalized package name.
        package: String,
        /// The wheel file name.
        wheel: String,
    },

    /// A fact this crate relies on did not hold (a bug, not a user error).
    #[error("internal error in vivarium-deps: {reason}; please report it")]
    Internal {
        /// What did not hold.
        reason: String,
    },

    /// A local file operation failed.
    #[error("{action} {path} failed: {error}")]
    Io {
        /// What was being done ("creating", "reading", ...).
        action: &'static str,
        /// The path concerned.
        path: PathBuf,
        /// The underlying error (part of the message, so not repeated as a cause).
        error: io::Error,
    },
}

impl DepsError {
    /// A closure turning an `io::Error` into [`DepsError::Io`] for `path`, for `map_err`.
    pub(crate) fn io(
        action: &'static str,
        path: &std::path::Path,
    ) -> impl FnOnce(io::Error) -> Self {
        let path = path.to_path_buf();
        move |error| DepsError::Io {
            action,
            path,
            error,
        }
    }

    /// A [`DepsError::BadWheel`] for `wheel`.
    pub(crate) fn bad_wheel(wheel: &str, reason: impl ToString) -> Self {
        DepsError::BadWheel {
            wheel: wheel.to_string(),
            reason: reason.to_string(),
        }
    }
}
