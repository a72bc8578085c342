//! Distribution file names (wheel spec, sdist conventions) and which wheels the sandbox can
//! load: pure-Python ones only (`py3`, `py3X` with X up to the target's minor version, or
//! `cp3X` for exactly the target's, e.g. `cp313` on CPython 3.13; ABI `none`; platform `any`),
//! since CPython on WASI cannot load compiled extension modules.

use std::str::FromStr;

use pep440_rs::Version;
use pep508_rs::PackageName;

use crate::environment::TargetPython;

/// A parsed wheel file name: `{name}-{version}(-{build})?-{python}-{abi}-{platform}.whl`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct WheelName {
    /// Normalized distribution name.
    pub name: PackageName,
    /// The version in the file name.
    pub version: Version,
    /// The optional build tag's leading number (higher wins among equal tags).
    pub build: u64,
    /// Python tags (the compressed set split on `.`).
    pub python: Vec<String>,
    /// ABI tags.
    pub abi: Vec<String>,
    /// Platform tags.
    pub platform: Vec<String>,
}

impl WheelName {
    /// Parses a wheel file name; `None` if it is not one.
    pub fn parse(filename: &str) -> Option<Self> {
        let stem = filename.strip_suffix(".whl")?;
        if stem.contains('/') || stem.contains('\\') {
            return None;
        }
        let parts: Vec<&str> = stem.split('-').collect();
        let (name, version, build, tags) = match parts.as_slice() {
            [name, version, py, abi, plat] => (*name, *version, None, [*py, *abi, *plat]),
            [name, version, build, py, abi, plat] => {
                (*name, *version, Some(*build), [*py, *abi, *plat])
            }
            _ => return None,
        };
        let split = |tag: &str| tag.split('.').map(str::to_ascii_lowercase).collect();
        Some(Self {
            name: PackageName::from_str(name).ok()?,
            version: Version::from_str(version).ok()?,
            build: build.map_or(Some(0), parse_build)?,
            python: split(tags[0]),
            abi: split(tags[1]),
            platform: split(tags[2]),
        })
    }

    /// How well the wheel suits the sandbox running `python`: `None` if it cannot load there,
    /// else a rank where more specific tags (`cp313`, `py313`) beat generic ones (`py3`).
    pub fn sandbox_rank(&self, python: TargetPython) -> Option<u32> {
        if !self.is_pure() {
            return None;
        }
        self.python
            .iter()
            .filter_map(|tag| python_tag_rank(tag, python))
            .max()
    }

    /// Whether the wheel holds no compiled code (ABI `none`, platform `any`), whichever Python
    /// it is tagged for.
    pub fn is_pure(&self) -> bool {
        self.abi.iter().any(|a| a == "none") && self.platform.iter().any(|p| p == "any")
    }

    /// Whether the wheel is pure Python and loads in the sandbox running `python`.
    pub fn fits_sandbox(&self, python: TargetPython) -> bool {
        self.sandbox_rank(python).is_some()
    }
}

fn parse_build(build: &str) -> Option<u64> {
    let digits: String = build.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

/// Rank of one Python tag for the sandbox running `python`, `None` if it does not satisfy it.
fn python_tag_rank(tag: &str, python: TargetPython) -> Option<u32> {
    let major = python.major().to_string();
    if tag
        .strip_prefix("cp")
        .and_then(|rest| rest.strip_prefix(major.as_str()))
        .is_some_and(|minor| minor == python.minor().to_string())
    {
        return Some(100);
    }
    let digits = tag.strip_prefix("py")?.strip_prefix(major.as_str())?;
    if digits.is_empty() {
        return Some(10);
    }
    let minor: u32 = digits.parse().ok()?;
    (minor <= u32::from(python.minor()) && digits.chars().all(|c| c.is_ascii_digit()))
        .then_some(20 + minor)
}

/// What kind of distribution a file of a project's listing is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum DistKind {
    /// A wheel, with its parsed name.
    Wheel(WheelName),
    /// A source distribution (never installed).
    Sdist,
}

/// Reads the version and kind of a distribution file of `project`; `None` for files that are
/// neither a wheel nor an sdist of it (eggs, installers, other projects' files).
pub(crate) fn classify(filename: &str, project: &PackageName) -> Option<(Version, DistKind)> {
    if let Some(wheel) = WheelName::parse(filename) {
        if &wheel.name != project {
            return None;
        }
        return Some((wheel.version.clone(), DistKind::Wheel(wheel)));
    }
    let version = sdist_version(filename, project)?;
    Some((version, DistKind::Sdist))
}

const SDIST_SUFFIXES: [&str; 6] = [".tar.gz", ".zip", ".tar.bz2", ".tgz", ".tar.xz", ".tar"];

fn sdist_version(filename: &str, project: &PackageName) -> Option<Version> {
    let stem = SDIST_SUFFIXES
        .iter()
        .find_map(|suffix| filename.strip_suffix(suffix))?;
    stem.match_indices('-').find_map(|(at, _)| {
        let name = PackageName::from_str(&stem[..at]).ok()?;
        if &name != project {
            return None;
        }
        Version::from_str(&stem[at + 1..]).ok()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rank(filename: &str) -> Option<u32> {
        rank_for(filename, TargetPython::CPYTHON_3_12)
    }

    fn rank_for(filename: &str, python: TargetPython) -> Option<u32> {
        WheelName::parse(filename).and_then(|w| w.sandbox_rank(python))
    }

    #[test]
    fn pure_wheels_fit() {
        assert!(rank("six-1.16.0-py2.py3-none-any.whl").is_some());
        assert!(rank("attrs-23.1.0-py3-none-any.whl").is_some());
        assert!(rank("x-1.0-py38-none-any.whl").is_some());
        assert!(rank("x-1.0-py312-none-any.whl").is_some());
        assert!(rank("x-1.0-cp312-none-any.whl").is_some());
        assert!(rank("x-1.0-1build-py3-none-any.whl").is_some());
    }

    #[test]
    fn other_wheels_do_not_fit() {
        assert!(rank("numpy-2.0.0-cp312-cp312-manylinux_2_17_x86_64.whl").is_none());
        assert!(rank("x-1.0-py2-none-any.whl").is_none());
        assert!(rank("x-1.0-py313-none-any.whl").is_none());
        assert!(rank("x-1.0-cp311-none-any.whl").is_none());
        assert!(rank("x-1.0-cp312-abi3-any.whl").is_none());
        assert!(rank("x-1.0-py3-none-win_amd64.whl").is_none());
        assert!(WheelName::parse("x-1.0.whl").is_none());
        assert!(WheelName::parse("x-notaversion-py3-none-any.whl").is_none());
    }

    #[test]
    fn specific_tags_rank_higher() {
        assert!(rank("x-1.0-cp312-none-any.whl") > rank("x-1.0-py312-none-any.whl"));
        assert!(rank("x-1.0-py312-none-any.whl") > rank("x-1.0-py3-none-any.whl"));
    }

    #[test]
    fn version_specific_tags_follow_the_target() {
        let py313 = TargetPython::CPYTHON_3_13;
        assert!(rank_for("x-1.0-py313-none-any.whl", py313).is_some());
        assert!(rank_for("x-1.0-cp313-none-any.whl", py313).is_some());
        assert!(rank_for("x-1.0-py312-none-any.whl", py313).is_some());
        assert!(rank_for("x-1.0-py3-none-any.whl", py313).is_some());
        assert!(rank_for("x-1.0-cp312-none-any.whl", py313).is_none());
        assert!(rank_for("x-1.0-py314-none-any.whl", py313).is_none());
        assert!(rank_for("x-1.0-cp313-cp313-manylinux_2_17_x86_64.whl", py313).is_none());
        assert!(rank_for("x-1.0-cp31-none-any.whl", py313).is_none());
        assert!(
            rank_for("x-1.0-cp313-none-any.whl", py313)
                > rank_for("x-1.0-py313-none-any.whl", py313)
        );
        assert!(
            rank_for("x-1.0-py313-none-any.whl", py313)
                > rank_for("x-1.0-py312-none-any.whl", py313)
        );
    }

    #[test]
    fn classifies_files_of_a_project() {
        let project = PackageName::from_str("python-dateutil").unwrap();
        let (v, kind) =
            classify("python_dateutil-2.9.0.post0-py2.py3-none-any.whl", &project).unwrap();
        assert_eq!(v.to_string(), "2.9.0.post0");
        assert!(matches!(kind, DistKind::Wheel(_)));
        let (v, kind) = classify("python-dateutil-2.8.2.tar.gz", &project).unwrap();
        assert_eq!(v.to_string(), "2.8.2");
        assert_eq!(kind, DistKind::Sdist);
        assert!(classify("other-1.0-py3-none-any.whl", &project).is_none());
        assert!(classify("python-dateutil-2.8.2.exe", &project).is_none());
    }
}
