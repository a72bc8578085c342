//! Profiles: which pre-initialized interpreter an action runs on. Every profile is the same
//! CPython with the same limits, mounts and fresh instance per call; they differ in the
//! extension modules built into the reactor and the modules loaded into its snapshot, so that
//! an action using numpy or pandas does not pay their import on every call, and the others do
//! not carry them at all. Each profile provides the packages of the one before it and one more.

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
    /// The numpy profile with pandas built in and imported into the snapshot too.
    Pandas,
}

/// numpy's modules loaded into the numpy profile's snapshot: the package and the submodules
/// its own import leaves for later.
const NUMPY_PRELOADED: &[&str] = &["numpy", "numpy.fft", "numpy.linalg", "numpy.random"];
/// pandas' module loaded into the pandas profile's snapshot (after numpy's).
const PANDAS_PRELOADED: &[&str] = &["pandas"];

/// Refuses, in a profile's snapshot, the packages other profiles provide and it lacks:
/// their Python files are in the standard library folder of every reactor, but their
/// extension modules only in their own, so an import Vivarium could not see coming (a
/// computed name given to `importlib`) would fail with the package's own advice about broken
/// installations. This says what to do instead. Formatted with the refused names' dict.
const REFUSE_ELSEWHERE: &str = r#"
class _VivariumElsewhere:
    """Refuses packages this profile lacks, saying how an action gets the profile with them."""

    profiles = {REFUSED}

    @classmethod
    def find_spec(cls, name, path=None, target=None):
        package = name.partition(".")[0]
        if package in cls.profiles:
            raise ModuleNotFoundError(
                "%s runs on the %s profile, which an action gets by importing %s in one of "
                "its .py files (an import statement Vivarium can read) or by listing %s in "
                "pyproject.toml" % (package, cls.profiles[package], package, package),
                name=name)
        return None

import sys as _vivarium_sys
_vivarium_sys.meta_path.insert(0, _VivariumElsewhere)
del _vivarium_sys, _VivariumElsewhere
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

/// Run once while the pandas profile's snapshot is taken, after [`NUMPY_WARM_UP`]: what
/// actions over log records commonly do with a DataFrame, so that what pandas sets up on
/// first use (its lazily imported modules, groupby and resample machinery, dtype caches) is
/// in the image.
const PANDAS_WARM_UP: &str = r#"
def _vivarium_warm_pandas():
    import pandas as pd
    records = [
        {"_timestamp": 1700000000000000 + n * 7_000_000, "pod": "pod-%d" % (n % 3),
         "level": ("info", "warn", "error")[n % 3], "took_ms": float(n % 17) if n % 5 else None,
         "message": "request %d" % n}
        for n in range(64)
    ]
    frame = pd.DataFrame(records)
    frame["time"] = pd.to_datetime(frame["_timestamp"], unit="us", utc=True)
    frame.groupby("pod").size().to_dict()
    frame.groupby(["pod", "level"])["took_ms"].agg(["count", "mean", "max"]).reset_index()
    frame["took_ms"].quantile([0.5, 0.9, 0.99]).tolist()
    frame["took_ms"].describe().to_dict()
    frame["level"].value_counts().to_dict()
    frame.set_index("time").resample("1min")["took_ms"].mean().reset_index()
    frame.set_index("time").resample("1min").size()
    frame.sort_values(["pod", "took_ms"], ascending=[True, False]).head(5)
    frame[frame["message"].str.contains("request 1")].shape
    frame["took_ms"].fillna(0).astype("int64").sum()
    pods = pd.DataFrame([{"pod": "pod-%d" % n, "node": "node-%d" % n} for n in range(3)])
    merged = frame.merge(pods, on="pod", how="left")
    merged.pivot_table(index="pod", columns="level", values="took_ms", aggfunc="count")
    merged.to_dict("records")
    merged.astype(object).where(merged.notna(), None).to_dict("records")
    pd.Timestamp("2026-01-01T00:00:00Z").isoformat(), pd.Timedelta("5min").total_seconds()
    pd.concat([frame.head(2), frame.tail(2)]).drop_duplicates().to_json(orient="records")

_vivarium_warm_pandas()
del _vivarium_warm_pandas
"#;

impl Profile {
    /// Every profile, each providing the packages of the one before it and one more.
    pub const ALL: [Self; 3] = [Self::Standard, Self::Numpy, Self::Pandas];

    /// The name reports and configurations use.
    pub fn name(self) -> &'static str {
        match self {
            Self::Standard => "standard",
            Self::Numpy => "numpy",
            Self::Pandas => "pandas",
        }
    }

    /// The package this profile adds to the one before it, if any.
    pub fn package(self) -> Option<&'static str> {
        match self {
            Self::Standard => None,
            Self::Numpy => Some("numpy"),
            Self::Pandas => Some("pandas"),
        }
    }

    /// This profile and those before it, whose packages it provides, in order.
    fn lineage(self) -> impl Iterator<Item = Self> {
        Self::ALL
            .into_iter()
            .take_while(move |profile| *profile != self)
            .chain([self])
    }

    /// The packages this profile provides: its own and those of the profiles before it.
    fn packages(self) -> impl Iterator<Item = &'static str> {
        self.lineage().filter_map(Self::package)
    }

    /// The profile an action needs that imports `modules` (top-level names; from its
    /// sources, and the packages its dependencies ask the runtime for): the first one
    /// providing every package among them that a profile provides.
    pub fn needed_by<'a>(modules: impl IntoIterator<Item = &'a str>) -> Self {
        let modules: Vec<&str> = modules.into_iter().collect();
        let wanted: Vec<&str> = Self::ALL
            .into_iter()
            .filter_map(Self::package)
            .filter(|name| modules.contains(name))
            .collect();
        Self::ALL
            .into_iter()
            .find(|profile| {
                wanted
                    .iter()
                    .all(|name| profile.packages().any(|p| p == *name))
            })
            .unwrap_or(Self::Pandas)
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
            Self::Pandas => Some(built.pandas_version.clone()),
        }
    }

    /// The reactor of `built` this profile runs on.
    pub(crate) fn reactor(self, built: &BuiltInterpreter) -> &Reactor {
        match self {
            Self::Standard => &built.reactor,
            Self::Numpy => &built.numpy_reactor,
            Self::Pandas => &built.pandas_reactor,
        }
    }

    /// The folders, relative to the standard library, this profile puts first on `sys.path`
    /// before it loads its modules: the pandas profile's stand-ins for what WASI lacks (ahead
    /// of the standard library's `ctypes`, which needs the `_ctypes` WASI cannot have; the
    /// action's own folders still come first in a call).
    pub(crate) fn path_additions(self, built: &BuiltInterpreter) -> Vec<&str> {
        match self {
            Self::Standard | Self::Numpy => Vec::new(),
            Self::Pandas => vec![built.standins.as_str()],
        }
    }

    /// Code run once at the end of this profile's initialization, before the snapshot is
    /// settled: what the profile sets up in the image (the refusal of the packages other
    /// profiles provide, and warm-ups of its own).
    pub(crate) fn init_code(self) -> String {
        let refused: Vec<String> = Self::ALL
            .into_iter()
            .filter_map(|profile| Some((profile.package()?, profile)))
            .filter(|(name, _)| !self.packages().any(|p| p == *name))
            .map(|(name, profile)| format!("{name:?}: {:?}", profile.name()))
            .collect();
        let mut code = String::new();
        if !refused.is_empty() {
            let refused = format!("{{{}}}", refused.join(", "));
            code.push_str(&REFUSE_ELSEWHERE.replace("{REFUSED}", &refused));
        }
        for profile in self.lineage() {
            code.push_str(profile.own_warm_up());
        }
        code
    }

    /// The modules loaded into this profile's snapshot besides the standard ones: those of
    /// its package and of the packages before it.
    pub(crate) fn preloaded(self) -> Vec<&'static str> {
        self.lineage()
            .flat_map(|profile| profile.own_preloaded().iter().copied())
            .collect()
    }

    /// The modules of this profile's own package loaded into its snapshot.
    fn own_preloaded(self) -> &'static [&'static str] {
        match self {
            Self::Standard => &[],
            Self::Numpy => NUMPY_PRELOADED,
            Self::Pandas => PANDAS_PRELOADED,
        }
    }

    /// The warm-up of this profile's own package.
    fn own_warm_up(self) -> &'static str {
        match self {
            Self::Standard => "",
            Self::Numpy => NUMPY_WARM_UP,
            Self::Pandas => PANDAS_WARM_UP,
        }
    }
}

impl FromStr for Profile {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|profile| profile.name() == text.trim())
            .ok_or_else(|| {
                let names: Vec<&str> = Self::ALL.into_iter().map(Self::name).collect();
                format!(
                    "unknown profile {text:?}: choose one of {}",
                    names.join(", ")
                )
            })
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
        let error = "scipy".parse::<Profile>().unwrap_err();
        assert!(error.contains("standard, numpy, pandas"), "{error}");
    }

    #[test]
    fn an_action_gets_the_first_profile_providing_what_it_imports() {
        assert_eq!(Profile::needed_by(["json", "numpy"]), Profile::Numpy);
        assert_eq!(Profile::needed_by(["json", "numpyx"]), Profile::Standard);
        assert_eq!(Profile::needed_by([]), Profile::Standard);
        assert_eq!(Profile::needed_by(["pandas"]), Profile::Pandas);
        assert_eq!(Profile::needed_by(["numpy", "pandas"]), Profile::Pandas);
        assert_eq!(Profile::needed_by(["pandas", "json"]), Profile::Pandas);
    }

    #[test]
    fn each_profile_provides_the_packages_of_the_one_before_it() {
        let provided = |profile: Profile| profile.packages().collect::<Vec<_>>();
        assert!(provided(Profile::Standard).is_empty());
        assert_eq!(provided(Profile::Numpy), ["numpy"]);
        assert_eq!(provided(Profile::Pandas), ["numpy", "pandas"]);
    }

    #[test]
    fn a_profile_refuses_exactly_the_packages_it_lacks() {
        let standard = Profile::Standard.init_code();
        assert!(
            standard.contains(r#"{"numpy": "numpy", "pandas": "pandas"}"#),
            "{standard}"
        );
        let numpy = Profile::Numpy.init_code();
        assert!(numpy.contains(r#"{"pandas": "pandas"}"#), "{numpy}");
        assert!(!Profile::Pandas.init_code().contains("_VivariumElsewhere"));
    }

    #[test]
    fn only_the_profiles_with_a_package_preload_it() {
        assert!(Profile::Standard.preloaded().is_empty());
        assert_eq!(Profile::Numpy.preloaded(), NUMPY_PRELOADED);
        assert!(Profile::Pandas.preloaded().starts_with(NUMPY_PRELOADED));
        assert!(Profile::Pandas.preloaded().ends_with(&["pandas"]));
    }
}
