//! The sandbox as PEP 508 markers, `Requires-Python` and wheel tags see it: a [`TargetPython`]
//! (one of the CPython interpreters Vivarium runs) on `wasm32-wasi`. Every marker and every
//! `requires-python` is evaluated against the target a resolution is for, never against the
//! host that resolves.

use std::fmt;
use std::str::FromStr;

use pep440_rs::{Version, VersionSpecifiers};
use pep508_rs::{MarkerEnvironment, MarkerEnvironmentBuilder};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::DepsError;

/// The CPython interpreter that will import the dependencies, for which they are resolved.
///
/// Vivarium runs actions on more than one interpreter (see the constants), and what a set of
/// requirements resolves to depends on which: markers such as `python_version < "3.13"`,
/// every package's `Requires-Python` and the project's own `requires-python`, and which
/// version-specific wheel tags (`py313`, `cp313`) load. A [`crate::Lock`] records the target
/// it was resolved for, and only that interpreter should mount its layer.
///
/// Shown (and stored in a lock's JSON) as its full version, `3.13.5`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TargetPython {
    major: u16,
    minor: u16,
    patch: u16,
}

impl TargetPython {
    /// CPython 3.13.5 built from source for WASI: Vivarium's default interpreter.
    pub const CPYTHON_3_13: Self = Self::new(3, 13, 5);

    /// The pinned prebuilt CPython 3.12.0 for WASI; locks stored before the target was
    /// recorded were resolved for it.
    pub const CPYTHON_3_12: Self = Self::new(3, 12, 0);

    /// CPython `major.minor.patch` (final release) on `wasm32-wasi`.
    pub const fn new(major: u16, minor: u16, patch: u16) -> Self {
        Self {
            major,
            minor,
            patch,
        }
    }

    /// The major version (`3`).
    pub const fn major(self) -> u16 {
        self.major
    }

    /// The minor version (`13` for 3.13.5).
    pub const fn minor(self) -> u16 {
        self.minor
    }

    /// The micro (patch) version (`5` for 3.13.5).
    pub const fn patch(self) -> u16 {
        self.patch
    }

    /// `major.minor`, as the `python_version` marker reports it (`"3.13"`).
    pub fn python_version(self) -> String {
        format!("{}.{}", self.major, self.minor)
    }

    /// The full version as a PEP 440 version, for `requires-python` checks.
    pub(crate) fn version(self) -> Version {
        Version::new([
            u64::from(self.major),
            u64::from(self.minor),
            u64::from(self.patch),
        ])
    }

    /// The marker environment of this interpreter in the sandbox.
    pub(crate) fn markers(self) -> Result<MarkerEnvironment, DepsError> {
        let full = self.to_string();
        let short = self.python_version();
        let builder = MarkerEnvironmentBuilder {
            implementation_name: "cpython",
            implementation_version: &full,
            os_name: "posix",
            platform_machine: "wasm32",
            platform_python_implementation: "CPython",
            platform_release: "",
            platform_system: "",
            platform_version: "",
            python_full_version: &full,
            python_version: &short,
            sys_platform: "wasi",
        };
        MarkerEnvironment::try_from(builder).map_err(|error| DepsError::Internal {
            reason: format!("the marker environment of Python {self} is invalid: {error}"),
        })
    }

    /// Whether a `Requires-Python` / `requires-python` value admits this interpreter.
    ///
    /// Values that do not parse are taken as admitting it (as pip does), since refusing a
    /// package over a malformed declaration would block installs that work.
    pub(crate) fn allows(self, specifier: &str) -> bool {
        let trimmed = specifier.trim();
        if trimmed.is_empty() {
            return true;
        }
        match VersionSpecifiers::from_str(trimmed) {
            Ok(specifiers) => specifiers.contains(&self.version()),
            Err(error) => {
                tracing::debug!(%specifier, %error, "ignoring an unparsable requires-python");
                true
            }
        }
    }

    /// Reads `major.minor.patch` (three decimal numbers), as [`fmt::Display`] writes it.
    fn parse(text: &str) -> Option<Self> {
        let mut parts = text.split('.').map(|part| {
            (!part.is_empty() && part.bytes().all(|b| b.is_ascii_digit()))
                .then(|| part.parse::<u16>().ok())
                .flatten()
        });
        let target = Self::new(parts.next()??, parts.next()??, parts.next()??);
        parts.next().is_none().then_some(target)
    }
}

impl Default for TargetPython {
    /// [`TargetPython::CPYTHON_3_13`], the interpreter actions run on unless told otherwise.
    fn default() -> Self {
        Self::CPYTHON_3_13
    }
}

impl fmt::Display for TargetPython {
    /// The full version, `3.13.5`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)
    }
}

impl Serialize for TargetPython {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for TargetPython {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Self::parse(&text).ok_or_else(|| {
            serde::de::Error::custom(format!(
                "\"{text}\" is not a Python version such as \"3.13.5\""
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requires_python_is_checked_against_3_12() {
        let python = TargetPython::CPYTHON_3_12;
        assert!(python.allows(">=3.8"));
        assert!(python.allows(">=3.7, <4"));
        assert!(python.allows(""));
        assert!(python.allows("~=3.12"));
        assert!(!python.allows(">=3.13"));
        assert!(!python.allows("<3.12"));
        assert!(!python.allows("==2.7.*"));
        assert!(python.allows("not a specifier"));
    }

    #[test]
    fn requires_python_is_checked_against_3_13() {
        let python = TargetPython::CPYTHON_3_13;
        assert!(python.allows(">=3.8"));
        assert!(python.allows(">=3.13"));
        assert!(python.allows("~=3.12"));
        assert!(python.allows(">=3.13.5"));
        assert!(!python.allows(">=3.13.6"));
        assert!(!python.allows("<3.13"));
        assert!(!python.allows("==3.12.*"));
        assert!(!python.allows(">=3.14"));
    }

    #[test]
    fn markers_describe_wasi_cpython() {
        for (python, short, full) in [
            (TargetPython::CPYTHON_3_12, "3.12", "3.12.0"),
            (TargetPython::CPYTHON_3_13, "3.13", "3.13.5"),
        ] {
            let env = python.markers().unwrap();
            assert_eq!(env.sys_platform(), "wasi");
            assert_eq!(env.platform_machine(), "wasm32");
            assert_eq!(env.implementation_name(), "cpython");
            assert_eq!(env.python_version().to_string(), short);
            assert_eq!(env.python_full_version().to_string(), full);
            assert_eq!(env.implementation_version().to_string(), full);
        }
    }

    #[test]
    fn shows_and_reads_the_full_version() {
        assert_eq!(TargetPython::CPYTHON_3_13.to_string(), "3.13.5");
        assert_eq!(TargetPython::CPYTHON_3_12.to_string(), "3.12.0");
        assert_eq!(TargetPython::CPYTHON_3_13.python_version(), "3.13");
        assert_eq!(TargetPython::default(), TargetPython::CPYTHON_3_13);
        assert_eq!(
            serde_json::to_string(&TargetPython::CPYTHON_3_13).unwrap(),
            "\"3.13.5\""
        );
        assert_eq!(
            serde_json::from_str::<TargetPython>("\"3.12.0\"").unwrap(),
            TargetPython::CPYTHON_3_12
        );
        for bad in [
            "\"3.12\"",
            "\"3.12.0.1\"",
            "\"3..0\"",
            "\"+3.12.0\"",
            "\"x\"",
            "312",
        ] {
            assert!(serde_json::from_str::<TargetPython>(bad).is_err(), "{bad}");
        }
    }
}
