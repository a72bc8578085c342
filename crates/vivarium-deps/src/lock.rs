//! The lock: the exact wheels (name, version, file name, sha256) a resolution chose, the
//! Python it chose them for, and which of them are held back below their project's newest
//! release, and why. Its digest names the installed layer, so equal locks share one layer.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::environment::TargetPython;

/// Prefix of the canonical serialization: names the layer format (bump `v1` if the layer
/// layout ever changes, so that old layers are not reused for new semantics) and the target's
/// `major.minor`, so that the same wheels locked for 3.12 and for 3.13 get distinct layers.
///
/// The patch level is left out on purpose: a layer holds the wheels' files as they are, so
/// equal wheels make equal layers for any 3.13.x (what a patch level changes, through
/// `python_full_version` markers or `requires-python`, shows in the wheels chosen). For 3.12
/// this is the header used before locks recorded their target, so those layers keep their
/// names.
fn canonical_header(python: TargetPython) -> String {
    format!(
        "vivarium-deps lock v1 cpython-{}-wasi\n",
        python.python_version()
    )
}

/// The target of a lock stored without one: locks were resolved for the pinned CPython 3.12
/// before they recorded their target.
fn unrecorded_python() -> TargetPython {
    TargetPython::CPYTHON_3_12
}

/// One installed distribution of a lock.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, utoipa::ToSchema)]
pub struct LockedPackage {
    /// Normalized (PEP 503) distribution name.
    pub name: String,
    /// Version, as in the wheel's file name.
    pub version: String,
    /// The wheel's file name (pure-Python: `*-none-any.whl`).
    pub wheel: String,
    /// sha256 of the wheel, lowercase hex; checked on every download.
    pub sha256: String,
}

/// A package the runtime provides built in (numpy, in its own profile): satisfied without a
/// wheel, never installed in the layer.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Hash, utoipa::ToSchema)]
pub struct ProvidedPackage {
    /// Normalized (PEP 503) distribution name.
    pub name: String,
    /// The version the runtime has.
    pub version: String,
}

/// A locked package that is not its project's newest release, and why.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, utoipa::ToSchema)]
pub struct HeldBack {
    /// Normalized (PEP 503) distribution name.
    pub name: String,
    /// The version locked.
    pub chosen: String,
    /// The project's newest release (pre-releases aside, unless it has only those).
    pub newest: String,
    /// Why a newer release was not chosen, in parts separated by "; ": the requirements whose
    /// version constraints exclude the newest release ("the action requires lib<2",
    /// "a 1.0 requires lib<2"), why the newest release could not have been used anyway if that
    /// is so, and why the newest release the requirements allow was not chosen if it was not
    /// (compiled wheels only, Python excluded, conflicting requirements).
    pub reason: String,
}

/// The result of resolving an action's requirements: what to install, exactly, and for which
/// Python.
///
/// [`Lock::default`] is an empty lock for [`TargetPython::default`].
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
pub struct Lock {
    /// The interpreter the lock was resolved for (markers, `requires-python`, wheel tags): the
    /// one that should mount its layer. Part of the digest. In JSON, a version string
    /// (`"3.13.5"`); a lock stored before this field existed has none and reads as
    /// [`TargetPython::CPYTHON_3_12`], which it was resolved for.
    #[serde(default = "unrecorded_python")]
    pub python: TargetPython,
    /// The packages, sorted by name.
    pub packages: Vec<LockedPackage>,
    /// The packages locked below their project's newest release, sorted by name, with the
    /// reason. Not part of the digest: it changes nothing that is installed. A lock stored
    /// before this field existed has none and reads as holding nothing back.
    #[serde(default)]
    pub held_back: Vec<HeldBack>,
    /// The packages the requirements asked for that the runtime provides, sorted by name:
    /// they are not installed, and an action whose lock names one runs on the runtime's
    /// profile that has it. Not part of the digest. A lock stored before this field existed
    /// has none.
    #[serde(default)]
    pub provided: Vec<ProvidedPackage>,
}

impl Lock {
    /// A lock of `packages`, sorted by name, for the default Python
    /// ([`TargetPython::default`]); see [`Lock::for_python`].
    pub fn new(packages: Vec<LockedPackage>) -> Self {
        Self::for_python(TargetPython::default(), packages)
    }

    /// A lock of `packages`, sorted by name, resolved for `python`.
    pub fn for_python(python: TargetPython, mut packages: Vec<LockedPackage>) -> Self {
        packages.sort_by(|a, b| a.name.cmp(&b.name).then_with(|| a.version.cmp(&b.version)));
        Self {
            python,
            packages,
            held_back: Vec::new(),
            provided: Vec::new(),
        }
    }

    /// This lock, recording `provided` (sorted by name) as what the runtime provides of it.
    pub fn with_provided(mut self, mut provided: Vec<ProvidedPackage>) -> Self {
        provided.sort_by(|a, b| a.name.cmp(&b.name));
        self.provided = provided;
        self
    }

    /// This lock, recording `held_back` (sorted by name) as the packages held back below
    /// their newest release.
    pub fn with_held_back(mut self, mut held_back: Vec<HeldBack>) -> Self {
        held_back.sort_by(|a, b| a.name.cmp(&b.name));
        self.held_back = held_back;
        self
    }

    /// Whether the lock installs nothing.
    pub fn is_empty(&self) -> bool {
        self.packages.is_empty()
    }

    /// sha256 (hex) of a canonical serialization (a header naming the format and the target's
    /// `major.minor`, then one sorted line per package): the key of the installed layer, equal
    /// for equal sets of wheels whatever their order, different for different Python minor
    /// versions.
    pub fn digest(&self) -> String {
        let mut lines: Vec<String> = self
            .packages
            .iter()
            .map(|p| format!("{}\t{}\t{}\t{}\n", p.name, p.version, p.wheel, p.sha256))
            .collect();
        lines.sort();
        let mut hasher = Sha256::new();
        hasher.update(canonical_header(self.python).as_bytes());
        for line in lines {
            hasher.update(line.as_bytes());
        }
        hex::encode(hasher.finalize())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn package(name: &str) -> LockedPackage {
        LockedPackage {
            name: name.into(),
            version: "1.0".into(),
            wheel: format!("{name}-1.0-py3-none-any.whl"),
            sha256: "0".repeat(64),
        }
    }

    #[test]
    fn digest_ignores_order_and_changes_with_content() {
        let a = Lock::new(vec![package("b"), package("a")]);
        let b = Lock {
            python: TargetPython::default(),
            packages: vec![package("b"), package("a")],
            held_back: Vec::new(),
            provided: Vec::new(),
        };
        assert_eq!(a.packages[0].name, "a");
        assert_eq!(a.digest(), b.digest());
        let c = Lock::new(vec![package("a")]);
        assert_ne!(a.digest(), c.digest());
        assert_eq!(a.digest().len(), 64);
    }

    #[test]
    fn round_trips_through_json() {
        for python in [TargetPython::CPYTHON_3_13, TargetPython::CPYTHON_3_12] {
            let lock = Lock::for_python(python, vec![package("six")]);
            let json = serde_json::to_string(&lock).unwrap();
            assert!(json.contains(&format!("\"python\":\"{python}\"")), "{json}");
            assert_eq!(serde_json::from_str::<Lock>(&json).unwrap(), lock);
        }
    }

    #[test]
    fn the_target_is_part_of_the_digest() {
        let packages = vec![package("six"), package("attrs")];
        let on_3_13 = Lock::for_python(TargetPython::CPYTHON_3_13, packages.clone());
        let on_3_12 = Lock::for_python(TargetPython::CPYTHON_3_12, packages.clone());
        assert_ne!(on_3_13.digest(), on_3_12.digest());
        assert_eq!(Lock::new(packages.clone()), on_3_13);
        assert_eq!(Lock::default().python, TargetPython::CPYTHON_3_13);
        let empty_3_13 = Lock::for_python(TargetPython::CPYTHON_3_13, Vec::new());
        let empty_3_12 = Lock::for_python(TargetPython::CPYTHON_3_12, Vec::new());
        assert_ne!(empty_3_13.digest(), empty_3_12.digest());
        // Same wheels on another 3.13 patch release: the same layer.
        let patched = Lock::for_python(TargetPython::new(3, 13, 6), packages);
        assert_eq!(patched.digest(), on_3_13.digest());
    }

    #[test]
    fn a_3_12_lock_keeps_the_digest_it_had_before_targets_were_recorded() {
        let lock = Lock::for_python(TargetPython::CPYTHON_3_12, vec![package("six")]);
        let mut hasher = Sha256::new();
        hasher.update(b"vivarium-deps lock v1 cpython-3.12-wasi\n");
        hasher.update(format!(
            "six\t1.0\tsix-1.0-py3-none-any.whl\t{}\n",
            "0".repeat(64)
        ));
        assert_eq!(lock.digest(), hex::encode(hasher.finalize()));
    }

    #[test]
    fn held_back_packages_round_trip_and_leave_the_digest_alone() {
        let plain = Lock::new(vec![package("lib")]);
        let json = serde_json::to_string(&plain).unwrap();
        assert!(json.contains("\"held_back\":[]"), "{json}");
        let held = plain.clone().with_held_back(vec![HeldBack {
            name: "lib".into(),
            chosen: "1.0".into(),
            newest: "2.0".into(),
            reason: "the action requires lib<2".into(),
        }]);
        assert_eq!(held.digest(), plain.digest());
        let json = serde_json::to_string(&held).unwrap();
        assert!(
            json.contains(
                r#""held_back":[{"name":"lib","chosen":"1.0","newest":"2.0","reason":"the action requires lib<2"}]"#
            ),
            "{json}"
        );
        assert_eq!(serde_json::from_str::<Lock>(&json).unwrap(), held);
    }

    #[test]
    fn provided_packages_round_trip_and_leave_the_digest_alone() {
        let plain = Lock::new(vec![package("lib")]);
        let numpy = ProvidedPackage {
            name: "numpy".into(),
            version: "2.4.6".into(),
        };
        let with = plain.clone().with_provided(vec![numpy.clone()]);
        assert_eq!(with.digest(), plain.digest());
        let json = serde_json::to_string(&with).unwrap();
        assert_eq!(
            serde_json::from_str::<Lock>(&json).unwrap().provided,
            [numpy]
        );
        let old = r#"{"python":"3.13.5","packages":[]}"#;
        assert!(
            serde_json::from_str::<Lock>(old)
                .unwrap()
                .provided
                .is_empty()
        );
    }

    #[test]
    fn a_lock_stored_without_a_target_reads_as_3_12() {
        let json = format!(
            r#"{{"packages":[{{"name":"six","version":"1.0","wheel":"six-1.0-py3-none-any.whl","sha256":"{}"}}]}}"#,
            "0".repeat(64)
        );
        let lock: Lock = serde_json::from_str(&json).unwrap();
        assert_eq!(lock.python, TargetPython::CPYTHON_3_12);
        assert!(lock.held_back.is_empty());
        assert_eq!(
            lock,
            Lock::for_python(TargetPython::CPYTHON_3_12, vec![package("six")])
        );
        let bad = r#"{"python":"3.13","packages":[]}"#;
        assert!(serde_json::from_str::<Lock>(bad).is_err());
    }
}
