//! Profiles: which pre-initialized interpreter an action runs on. Every profile is the same
//! CPython with the same limits, mounts and fresh instance per call; they differ in the
//! extension modules built into the reactor and the modules loaded into its snapshot, so that
//! an action using numpy does not pay numpy's import on every call, and the others do not
//! carry numpy at all.

use std::str::FromStr;

use vivarium_runtime::{BuiltInterpreter, Reactor};

/// The interpreter image an action runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Profile {
    /// The standard library and the `vivarium` package.
    #[default]
    Standard,
    /// The standard profile with numpy built in and imported into the snapshot.
    Numpy,
}

/// numpy's modules loaded into the numpy profile's snapshot: the package and the submodules
/// its own import leaves for later.
const NUMPY_PRELOADED: &[&str] = &["numpy", "numpy.fft", "numpy.linalg", "numpy.random"];

/// Run once while the standard profile's snapshot is taken: numpy's Python files are in the
/// standard library folder of both reactors, but its extension modules only in the numpy
/// one, so an import of numpy that Vivarium could not see coming (a computed name given to
/// `importlib`) would fail here with numpy's own advice about broken installations. This
/// says what to do instead.
const STANDARD_INIT: &str = r#"
class _VivariumNumpyElsewhere:
    """Refuses numpy on the standard profile, saying how an action gets the numpy one."""

    @staticmethod
    def find_spec(name, path=None, target=None):
        if name == "numpy" or name.startswith("numpy."):
            raise ModuleNotFoundError(
                "numpy runs on the numpy profile, which an action gets by importing numpy in "
                "one of its .py files (an import statement Vivarium can read) or by listing "
                "numpy in pyproject.toml", name=name)
        return None

import sys as _vivarium_sys
_vivarium_sys.meta_path.insert(0, _VivariumNumpyElsewhere)
del _vivarium_sys, _VivariumNumpyElsewhere
"#;

/// Run once while the numpy profile's snapshot is taken: what actions over records commonly
/// call, so that what numpy sets up on first use (modules it imports then, dispatch and
/// type-promotion caches) is in the image rather than redone by every call. The first
/// `np.percentile` of a fresh instance cost 12 ms without it, the next 0.3 ms.
const NUMPY_WARM_UP: &str = r#"
def _vivarium_warm_numpy():
    import io
    import numpy as np
    values = np.fromiter((float(n % 97) for n in range(256)), dtype=np.float64, count=256)
    labels = np.array(["info", "warn", "error", "info"] * 64)
    np.percentile(values, [50, 90, 99])
    np.quantile(values, 0.5)
    np.median(values)
    np.histogram(values, bins=10, range=(0, 100))
    np.unique(labels, return_counts=True)
    np.unique(values)
    np.sort(values), np.argsort(values), np.cumsum(values), np.diff(values)
    values.mean(), values.std(), values.min(), values.max(), values.sum()
    np.where(values > 50, values, 0.0), np.clip(values, 0, 10), np.round(values / 3, 2)
    np.concatenate([values, values]).reshape(2, -1).T.astype(np.int64).tolist()
    np.nanmean(values), np.isnan(values).any(), np.bincount(values.astype(np.int64))
    matrix = np.eye(4) * 2.0 + 1.0
    np.linalg.solve(matrix, np.ones(4)), np.linalg.inv(matrix), np.linalg.det(matrix)
    np.linalg.eigvalsh(matrix), np.linalg.norm(matrix), matrix @ matrix
    np.fft.rfft(values), np.fft.fft(values[:64])
    rng = np.random.default_rng(0)
    rng.random(4), rng.normal(size=4), rng.integers(0, 10, size=4), rng.choice(labels, 2)
    np.random.random(4), np.random.normal(size=4)
    buffer = io.BytesIO()
    np.save(buffer, values)
    buffer.seek(0)
    np.load(buffer)

_vivarium_warm_numpy()
del _vivarium_warm_numpy
"#;

impl Profile {
    /// Every profile.
    pub const ALL: [Self; 2] = [Self::Standard, Self::Numpy];

    /// The name reports and configurations use.
    pub fn name(self) -> &'static str {
        match self {
            Self::Standard => "standard",
            Self::Numpy => "numpy",
        }
    }

    /// The package this profile adds to the standard library, if any.
    pub fn package(self) -> Option<&'static str> {
        match self {
            Self::Standard => None,
            Self::Numpy => Some("numpy"),
        }
    }

    /// The profile an action needs that imports `modules` (top-level names; from its
    /// sources, and the packages its dependencies ask the runtime for): the one whose
    /// package is among them, the standard one otherwise.
    pub fn needed_by<'a>(modules: impl IntoIterator<Item = &'a str>) -> Self {
        let modules: Vec<&str> = modules.into_iter().collect();
        Self::ALL
            .into_iter()
            .find(|profile| {
                profile
                    .package()
                    .is_some_and(|name| modules.contains(&name))
            })
            .unwrap_or_default()
    }

    /// The packages `built` provides through its profiles, with their versions: what a
    /// dependency on one of them resolves to.
    pub fn provided_by(built: &BuiltInterpreter) -> Vec<(&'static str, String)> {
        Self::ALL
            .into_iter()
            .filter_map(|profile| Some((profile.package()?, profile.version_in(built)?)))
            .collect()
    }

    /// The version of this profile's package in `built`.
    fn version_in(self, built: &BuiltInterpreter) -> Option<String> {
        match self {
            Self::Standard => None,
            Self::Numpy => Some(built.numpy_version.clone()),
        }
    }

    /// The reactor of `built` this profile runs on.
    pub(crate) fn reactor(self, built: &BuiltInterpreter) -> &Reactor {
        match self {
            Self::Standard => &built.reactor,
            Self::Numpy => &built.numpy_reactor,
        }
    }

    /// Code run once at the end of this profile's initialization, before the snapshot is
    /// settled: what the profile sets up in the image.
    pub(crate) fn init_code(self) -> &'static str {
        match self {
            Self::Standard => STANDARD_INIT,
            Self::Numpy => NUMPY_WARM_UP,
        }
    }

    /// The modules loaded into this profile's snapshot besides the standard ones.
    pub(crate) fn preloaded(self) -> &'static [&'static str] {
        match self {
            Self::Standard => &[],
            Self::Numpy => NUMPY_PRELOADED,
        }
    }
}

impl FromStr for Profile {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|profile| profile.name() == text.trim())
            .ok_or_else(|| format!("unknown profile {text:?}: choose \"standard\" or \"numpy\""))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn profiles_parse_from_their_names_and_nothing_else() {
        for profile in Profile::ALL {
            assert_eq!(profile.name().parse::<Profile>().unwrap(), profile);
        }
        assert!(
            "pandas"
                .parse::<Profile>()
                .unwrap_err()
                .contains("standard")
        );
    }

    #[test]
    fn an_action_importing_numpy_needs_the_numpy_profile() {
        assert_eq!(Profile::needed_by(["json", "numpy"]), Profile::Numpy);
        assert_eq!(Profile::needed_by(["json", "numpyx"]), Profile::Standard);
        assert_eq!(Profile::needed_by([]), Profile::Standard);
    }

    #[test]
    fn only_the_numpy_profile_preloads_numpy() {
        assert!(Profile::Standard.preloaded().is_empty());
        assert!(Profile::Numpy.preloaded().contains(&"numpy"));
    }
}
