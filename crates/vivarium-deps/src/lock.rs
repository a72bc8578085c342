//! The lock: the exact wheels (name, version, file name, sha256) a resolution chose. Its digest
//! names the installed layer, so equal locks share one layer.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Prefix of the canonical serialization; bump it if the layer layout ever changes so that old
/// layers are not reused for new semantics.
const CANONICAL_HEADER: &str = "vivarium-deps lock v1 cpython-3.12-wasi\n";

/// One installed distribution of a lock.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
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

/// The result of resolving an action's requirements: what to install, exactly.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
pub struct Lock {
    /// The packages, sorted by name.
    pub packages: Vec<LockedPackage>,
}

impl Lock {
    /// A lock of `packages`, sorted by name.
    pub fn new(mut packages: Vec<LockedPackage>) -> Self {
        packages.sort_by(|a, b| a.name.cmp(&b.name).then_with(|| a.version.cmp(&b.version)));
        Self { packages }
    }

    /// Whether the lock installs nothing.
    pub fn is_empty(&self) -> bool {
        self.packages.is_empty()
    }

    /// sha256 (hex) of a canonical serialization (header, then one sorted line per package):
    /// the key of the installed layer, equal for equal sets of wheels whatever their order.
    pub fn digest(&self) -> String {
        let mut lines: Vec<String> = self
            .packages
            .iter()
            .map(|p| format!("{}\t{}\t{}\t{}\n", p.name, p.version, p.wheel, p.sha256))
            .collect();
        lines.sort();
        let mut hasher = Sha256::new();
        hasher.update(CANONICAL_HEADER.as_bytes());
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
            packages: vec![package("b"), package("a")],
        };
        assert_eq!(a.packages[0].name, "a");
        assert_eq!(a.digest(), b.digest());
        let c = Lock::new(vec![package("a")]);
        assert_ne!(a.digest(), c.digest());
        assert_eq!(a.digest().len(), 64);
    }

    #[test]
    fn round_trips_through_json() {
        let lock = Lock::new(vec![package("six")]);
        let json = serde_json::to_string(&lock).unwrap();
        assert_eq!(serde_json::from_str::<Lock>(&json).unwrap(), lock);
    }
}
