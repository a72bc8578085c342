//! Which versions of a project the sandbox can use: a version is usable when it publishes a
//! pure-Python wheel that loads on the target Python and whose `requires-python` admits it;
//! otherwise the reason is kept so a refusal can say why (compiled wheels only, sdists only,
//! Python excluded).

use std::collections::BTreeMap;

use pep440_rs::Version;
use pep508_rs::PackageName;
use pubgrub::Ranges;

use crate::environment::TargetPython;
use crate::error::DepsError;
use crate::index::DistFile;
use crate::tags::{DistKind, WheelName};

/// How many file names a reason lists before summing up the rest.
const MAX_LISTED_FILES: usize = 5;

/// Why a published version cannot be used.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Unusable {
    /// Only wheels for specific platforms (compiled extensions): their file names.
    PlatformOnly(Vec<String>),
    /// Pure-Python wheels, but only for other Pythons (`py2`, a later `py3X`): their file names.
    OtherPython(Vec<String>),
    /// Only source distributions: their file names.
    SdistOnly(Vec<String>),
    /// Pure wheels exist, but their `requires-python` excludes the target Python.
    PythonExcluded(String),
}

#[derive(Clone, Debug)]
enum Entry {
    Usable(Box<DistFile>),
    Unusable(Unusable),
}

/// The versions of one project as the sandbox running one target Python sees them.
#[derive(Clone, Debug)]
pub(crate) struct Candidates {
    name: PackageName,
    python: TargetPython,
    versions: BTreeMap<Version, Entry>,
}

impl Candidates {
    /// Sorts the files of `name` into usable and unusable versions on `python`.
    pub fn new(name: &PackageName, files: &[DistFile], python: TargetPython) -> Self {
        let mut by_version: BTreeMap<Version, Vec<&DistFile>> = BTreeMap::new();
        for file in files {
            by_version
                .entry(file.version.clone())
                .or_default()
                .push(file);
        }
        let versions = by_version
            .into_iter()
            .map(|(version, files)| (version, entry_for(&files, python)))
            .collect();
        Self {
            name: name.clone(),
            python,
            versions,
        }
    }

    /// The newest usable version in `range` (final releases before pre-releases); `Ok(None)`
    /// when no published version is in `range` at all; an error naming the package when
    /// versions are in range but none of them is usable.
    pub fn choose(&self, range: &Ranges<Version>) -> Result<Option<Version>, DepsError> {
        let in_range: Vec<(&Version, &Entry)> = self
            .versions
            .iter()
            .rev()
            .filter(|(version, _)| range.contains(*version))
            .collect();
        let usable = || {
            in_range
                .iter()
                .filter(|(_, entry)| matches!(entry, Entry::Usable(_)))
                .map(|(version, _)| *version)
        };
        if let Some(version) = usable()
            .find(|v| !v.any_prerelease())
            .or_else(|| usable().next())
        {
            return Ok(Some(version.clone()));
        }
        match in_range.is_empty() {
            true => Ok(None),
            false => Err(self.refusal(&in_range)),
        }
    }

    /// The error for versions in range of which none is usable.
    fn refusal(&self, in_range: &[(&Version, &Entry)]) -> DepsError {
        let package = self.name.to_string();
        let reasons = || {
            in_range.iter().filter_map(|(_, entry)| match entry {
                Entry::Unusable(reason) => Some(reason),
                Entry::Usable(_) => None,
            })
        };
        if reasons().any(|r| matches!(r, Unusable::PlatformOnly(_) | Unusable::OtherPython(_))) {
            return DepsError::NoPureWheel { package };
        }
        if reasons().any(|r| matches!(r, Unusable::SdistOnly(_))) {
            return DepsError::SdistOnly { package };
        }
        let specifier = reasons()
            .find_map(|r| match r {
                Unusable::PythonExcluded(spec) => Some(spec.clone()),
                _ => None,
            })
            .unwrap_or_default();
        DepsError::PackageRequiresPython {
            package,
            specifier,
            python: self.python,
        }
    }

    /// The wheel chosen for `version`, if that version is usable.
    pub fn wheel(&self, version: &Version) -> Option<&DistFile> {
        match self.versions.get(version) {
            Some(Entry::Usable(file)) => Some(file),
            _ => None,
        }
    }

    /// The newest release: the newest final version published (yanked files are never listed),
    /// or the newest pre-release when there is no final one; `None` if nothing is published.
    pub fn newest_release(&self) -> Option<&Version> {
        self.newest_where(|_| true)
    }

    /// The newest release in `range`, by the same rule as [`Candidates::newest_release`].
    pub fn newest_in(&self, range: &Ranges<Version>) -> Option<&Version> {
        self.newest_where(|version| range.contains(version))
    }

    fn newest_where(&self, keep: impl Fn(&Version) -> bool) -> Option<&Version> {
        let kept = || self.versions.keys().rev().filter(|version| keep(version));
        kept()
            .find(|version| !version.any_prerelease())
            .or_else(|| kept().next())
    }

    /// The wheels of `version` if it publishes some but no pure-Python one: the mark of a
    /// project with compiled extensions. (A release with source distributions only says
    /// nothing about that.)
    pub fn only_compiled_wheels(&self, version: &Version) -> Option<&[String]> {
        match self.versions.get(version)? {
            Entry::Unusable(Unusable::PlatformOnly(wheels)) => Some(wheels),
            _ => None,
        }
    }

    /// Why `version` cannot be used, as words that follow the version ("has only wheels with
    /// compiled extensions (…)"); `None` if it can be used or is not published.
    pub fn unusable_reason(&self, version: &Version) -> Option<String> {
        match self.versions.get(version)? {
            Entry::Usable(_) => None,
            Entry::Unusable(Unusable::PlatformOnly(files)) => Some(format!(
                "has only wheels with compiled extensions ({})",
                listed(files)
            )),
            Entry::Unusable(Unusable::OtherPython(files)) => Some(format!(
                "has pure-Python wheels only for Pythons other than CPython {} ({})",
                self.python,
                listed(files)
            )),
            Entry::Unusable(Unusable::SdistOnly(files)) => Some(format!(
                "has no wheel, only source distributions ({})",
                listed(files)
            )),
            Entry::Unusable(Unusable::PythonExcluded(spec)) => Some(format!(
                "requires Python \"{spec}\", which excludes CPython {}",
                self.python
            )),
        }
    }

    /// The usable versions, oldest first.
    pub fn usable_versions(&self) -> Vec<Version> {
        self.versions
            .iter()
            .filter(|(_, entry)| matches!(entry, Entry::Usable(_)))
            .map(|(version, _)| version.clone())
            .collect()
    }
}

/// Decides whether one version (its files) is usable on `python`, and with which wheel.
fn entry_for(files: &[&DistFile], python: TargetPython) -> Entry {
    let pure: Vec<(&DistFile, u32, u64)> = files
        .iter()
        .filter_map(|file| match &file.kind {
            DistKind::Wheel(wheel) => wheel
                .sandbox_rank(python)
                .map(|rank| (*file, rank, wheel.build)),
            DistKind::Sdist => None,
        })
        .collect();
    let allowed = pure
        .iter()
        .filter(|(file, _, _)| {
            file.requires_python
                .as_deref()
                .is_none_or(|spec| python.allows(spec))
        })
        .max_by(|a, b| (a.1, a.2, &b.0.filename).cmp(&(b.1, b.2, &a.0.filename)));
    if let Some((file, _, _)) = allowed {
        return Entry::Usable(Box::new((*file).clone()));
    }
    if let Some((file, _, _)) = pure.first() {
        let spec = file.requires_python.clone().unwrap_or_default();
        return Entry::Unusable(Unusable::PythonExcluded(spec));
    }
    let wheels: Vec<&WheelName> = files
        .iter()
        .filter_map(|file| match &file.kind {
            DistKind::Wheel(wheel) => Some(wheel),
            DistKind::Sdist => None,
        })
        .collect();
    if wheels.is_empty() {
        let sdists = files.iter().map(|file| file.filename.clone()).collect();
        Entry::Unusable(Unusable::SdistOnly(sdists))
    } else if wheels.iter().any(|wheel| wheel.is_pure()) {
        Entry::Unusable(Unusable::OtherPython(wheel_names(files)))
    } else {
        Entry::Unusable(Unusable::PlatformOnly(wheel_names(files)))
    }
}

/// The file names of the wheels among `files`.
fn wheel_names(files: &[&DistFile]) -> Vec<String> {
    files
        .iter()
        .filter(|file| matches!(file.kind, DistKind::Wheel(_)))
        .map(|file| file.filename.clone())
        .collect()
}

/// The first [`MAX_LISTED_FILES`] names, comma-separated, then "and N more" for the others.
pub(crate) fn listed(names: &[String]) -> String {
    let shown = names.get(..MAX_LISTED_FILES).unwrap_or(names).join(", ");
    match names.len().saturating_sub(MAX_LISTED_FILES) {
        0 => shown,
        more => format!("{shown} and {more} more"),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use std::str::FromStr;

    use super::*;
    use crate::index::Source;
    use crate::simple::MetadataOffer;
    use crate::tags::classify;

    /// A file of project `name` as an index lists it (shared with the other modules' tests).
    pub(crate) fn file(name: &str, filename: &str, requires_python: Option<&str>) -> DistFile {
        let project = PackageName::from_str(name).unwrap();
        let (version, kind) = classify(filename, &project).unwrap();
        DistFile {
            filename: filename.into(),
            version,
            kind,
            source: Source::Remote {
                url: format!("https://x.invalid/{filename}"),
                metadata: MetadataOffer::Absent,
            },
            sha256: None,
            requires_python: requires_python.map(str::to_string),
        }
    }

    fn candidates(name: &str, files: &[DistFile]) -> Candidates {
        candidates_for(name, files, TargetPython::CPYTHON_3_12)
    }

    fn candidates_for(name: &str, files: &[DistFile], python: TargetPython) -> Candidates {
        Candidates::new(&PackageName::from_str(name).unwrap(), files, python)
    }

    #[test]
    fn newest_usable_final_release_wins() {
        let c = candidates(
            "a",
            &[
                file("a", "a-1.0-py3-none-any.whl", None),
                file("a", "a-2.0-cp312-cp312-manylinux_2_17_x86_64.whl", None),
                file("a", "a-1.5-py3-none-any.whl", None),
                file("a", "a-1.6-py3-none-any.whl", Some(">=3.13")),
                file("a", "a-1.7b1-py3-none-any.whl", None),
            ],
        );
        let full = Ranges::full();
        assert_eq!(c.choose(&full).unwrap().unwrap().to_string(), "1.5");
        let pre = Ranges::higher_than(Version::from_str("1.7a0").unwrap());
        assert_eq!(c.choose(&pre).unwrap().unwrap().to_string(), "1.7b1");
        let none = Ranges::higher_than(Version::from_str("9").unwrap());
        assert!(c.choose(&none).unwrap().is_none());
    }

    #[test]
    fn requires_python_is_checked_against_the_target() {
        let files = [
            file("a", "a-1.0-py3-none-any.whl", None),
            file("a", "a-1.6-py3-none-any.whl", Some(">=3.13")),
            file("a", "a-1.7-py313-none-any.whl", None),
        ];
        let full = Ranges::full();
        let on_3_12 = candidates_for("a", &files, TargetPython::CPYTHON_3_12);
        assert_eq!(on_3_12.choose(&full).unwrap().unwrap().to_string(), "1.0");
        let on_3_13 = candidates_for("a", &files, TargetPython::CPYTHON_3_13);
        assert_eq!(on_3_13.choose(&full).unwrap().unwrap().to_string(), "1.7");
        let excluded = candidates_for(
            "b",
            &[file("b", "b-1.0-py3-none-any.whl", Some("<3.13"))],
            TargetPython::CPYTHON_3_13,
        );
        let error = excluded.choose(&full).unwrap_err();
        assert!(
            matches!(
                &error,
                DepsError::PackageRequiresPython { python, .. }
                    if *python == TargetPython::CPYTHON_3_13
            ),
            "{error}"
        );
        assert!(error.to_string().contains("CPython 3.13.5"), "{error}");
    }

    #[test]
    fn refusals_name_the_reason() {
        let platform = candidates("n", &[file("n", "n-1.0-cp312-cp312-win_amd64.whl", None)]);
        assert!(matches!(
            platform.choose(&Ranges::full()),
            Err(DepsError::NoPureWheel { .. })
        ));
        let sdist = candidates("s", &[file("s", "s-1.0.tar.gz", None)]);
        assert!(matches!(
            sdist.choose(&Ranges::full()),
            Err(DepsError::SdistOnly { .. })
        ));
        let old = candidates("o", &[file("o", "o-1.0-py3-none-any.whl", Some("<3"))]);
        assert!(matches!(
            old.choose(&Ranges::full()),
            Err(DepsError::PackageRequiresPython { .. })
        ));
    }

    #[test]
    fn specific_tags_are_preferred() {
        let c = candidates(
            "a",
            &[
                file("a", "a-1.0-py3-none-any.whl", None),
                file("a", "a-1.0-py312-none-any.whl", None),
            ],
        );
        let version = c.choose(&Ranges::full()).unwrap().unwrap();
        assert_eq!(
            c.wheel(&version).unwrap().filename,
            "a-1.0-py312-none-any.whl"
        );
    }
}
