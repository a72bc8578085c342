//! The sandbox as PEP 508 markers and `Requires-Python` see it: CPython 3.12.0 on
//! `wasm32-wasi`. Every marker and every `requires-python` is evaluated against this, never
//! against the host that resolves.

use std::str::FromStr;
use std::sync::OnceLock;

use pep440_rs::{Version, VersionSpecifiers};
use pep508_rs::{MarkerEnvironment, MarkerEnvironmentBuilder};

use crate::error::DepsError;

/// The sandbox's Python version as `python_full_version` reports it.
pub(crate) const PYTHON_FULL_VERSION: &str = "3.12.0";

/// The marker environment of the sandbox's interpreter.
pub(crate) fn sandbox_markers() -> Result<&'static MarkerEnvironment, DepsError> {
    static ENV: OnceLock<Result<MarkerEnvironment, String>> = OnceLock::new();
    ENV.get_or_init(build_markers)
        .as_ref()
        .map_err(|reason| DepsError::Internal {
            reason: reason.clone(),
        })
}

fn build_markers() -> Result<MarkerEnvironment, String> {
    let builder = MarkerEnvironmentBuilder {
        implementation_name: "cpython",
        implementation_version: PYTHON_FULL_VERSION,
        os_name: "posix",
        platform_machine: "wasm32",
        platform_python_implementation: "CPython",
        platform_release: "",
        platform_system: "",
        platform_version: "",
        python_full_version: PYTHON_FULL_VERSION,
        python_version: "3.12",
        sys_platform: "wasi",
    };
    MarkerEnvironment::try_from(builder)
        .map_err(|error| format!("the sandbox marker environment is invalid: {error}"))
}

/// The sandbox's Python version as a PEP 440 version.
pub(crate) fn python_version() -> &'static Version {
    static VERSION: OnceLock<Version> = OnceLock::new();
    VERSION.get_or_init(|| Version::new([3, 12, 0]))
}

/// Whether a `Requires-Python` / `requires-python` value admits the sandbox's Python.
///
/// Values that do not parse are taken as admitting it (as pip does), since refusing a package
/// over a malformed declaration would block installs that work.
pub(crate) fn python_allows(specifier: &str) -> bool {
    let trimmed = specifier.trim();
    if trimmed.is_empty() {
        return true;
    }
    match VersionSpecifiers::from_str(trimmed) {
        Ok(specifiers) => specifiers.contains(python_version()),
        Err(error) => {
            tracing::debug!(%specifier, %error, "ignoring an unparsable requires-python");
            true
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requires_python_is_checked_against_3_12() {
        assert!(python_allows(">=3.8"));
        assert!(python_allows(">=3.7, <4"));
        assert!(python_allows(""));
        assert!(python_allows("~=3.12"));
        assert!(!python_allows(">=3.13"));
        assert!(!python_allows("<3.12"));
        assert!(!python_allows("==2.7.*"));
        assert!(python_allows("not a specifier"));
    }

    #[test]
    fn markers_describe_wasi_cpython() {
        let env = sandbox_markers().unwrap();
        assert_eq!(env.sys_platform(), "wasi");
        assert_eq!(env.platform_machine(), "wasm32");
        assert_eq!(env.python_version().to_string(), "3.12");
    }
}
