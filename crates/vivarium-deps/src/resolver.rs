//! Version solving with PubGrub: the action's requirements are the root's dependencies, each
//! chosen wheel's `Requires-Dist` (markers evaluated for the sandbox's target Python) the
//! dependencies of that
//! version, and extras are virtual packages `name[extra]` pinned to their base package's
//! version. Failures come back as a readable chain (see [`crate::report`]). A solution is then
//! checked against each project's newest release (see [`crate::newest`]).

use std::cell::RefCell;
use std::cmp::Reverse;
use std::collections::HashMap;
use std::rc::Rc;
use std::str::FromStr;

use pep440_rs::Version;
use pep508_rs::{
    ExtraName, MarkerEnvironment, PackageName, Requirement, VerbatimUrl, VersionOrUrl,
};
use pubgrub::{
    Dependencies, DependencyConstraints, DependencyProvider, PackageResolutionStatistics,
    PubGrubError, Ranges,
};

use crate::candidates::Candidates;
use crate::environment::TargetPython;
use crate::error::DepsError;
use crate::graph::{Pkg, Vs};
use crate::index::IndexClient;
use crate::lock::{Lock, LockedPackage, ProvidedPackage};
use crate::metadata;
use crate::newest::{self, Demand};
use crate::progress::Progress;
use crate::pyproject::Requirements;
use crate::report;

/// The requirements of one published version, or why they cannot be used.
type VersionDeps = Rc<Result<Vec<Requirement<VerbatimUrl>>, String>>;

/// Answers PubGrub's questions from the index client.
pub(crate) struct Provider<'a> {
    client: &'a IndexClient,
    /// The packages the runtime provides built in, by name, with their version.
    provided: HashMap<PackageName, Version>,
    python: TargetPython,
    env: MarkerEnvironment,
    root: &'a Requirements,
    progress: &'a Progress,
    candidates: RefCell<HashMap<PackageName, Rc<Candidates>>>,
    version_deps: RefCell<HashMap<(PackageName, Version), VersionDeps>>,
    required_by: RefCell<HashMap<PackageName, String>>,
    discovered: RefCell<HashMap<Pkg, usize>>,
}

impl<'a> Provider<'a> {
    /// A provider resolving `root` against `client` for `python`, which provides `provided`
    /// built in.
    pub fn new(
        client: &'a IndexClient,
        python: TargetPython,
        provided: &[ProvidedPackage],
        root: &'a Requirements,
        progress: &'a Progress,
    ) -> Result<Self, DepsError> {
        Ok(Self {
            client,
            provided: provided_versions(provided)?,
            python,
            env: python.markers()?,
            root,
            progress,
            candidates: RefCell::new(HashMap::new()),
            version_deps: RefCell::new(HashMap::new()),
            required_by: RefCell::new(HashMap::new()),
            discovered: RefCell::new(HashMap::new()),
        })
    }

    /// The candidate versions of `name`, listed once.
    fn candidates(&self, name: &PackageName) -> Result<Rc<Candidates>, DepsError> {
        if let Some(found) = self.candidates.borrow().get(name) {
            return Ok(Rc::clone(found));
        }
        self.progress.message(&format!("looking up {name}"));
        let files = self
            .client
            .project(name)?
            .ok_or_else(|| self.not_found(name))?;
        let candidates = Rc::new(Candidates::new(name, &files, self.python));
        self.candidates
            .borrow_mut()
            .insert(name.clone(), Rc::clone(&candidates));
        Ok(candidates)
    }

    fn not_found(&self, name: &PackageName) -> DepsError {
        DepsError::PackageNotFound {
            package: name.to_string(),
            required_by: self
                .required_by
                .borrow()
                .get(name)
                .cloned()
                .unwrap_or_else(|| "the action".into()),
            index: self.client.index_url().to_string(),
            wheelhouse: match self.client.has_wheelhouse() {
                true => " nor in the wheelhouse".into(),
                false => String::new(),
            },
        }
    }

    /// The usable versions of `package` already looked up (for error reports): the one the
    /// runtime provides, for a provided package.
    pub fn known_versions(&self, package: &Pkg) -> Vec<Version> {
        if let Some(version) = package.name().and_then(|name| self.provided.get(name)) {
            return vec![version.clone()];
        }
        package
            .name()
            .and_then(|name| self.candidates.borrow().get(name).cloned())
            .map(|c| c.usable_versions())
            .unwrap_or_default()
    }

    /// The requirements declared by `name` `version` (cached: base and extras share them).
    fn requirements_of(
        &self,
        name: &PackageName,
        version: &Version,
    ) -> Result<VersionDeps, DepsError> {
        if self.provided.contains_key(name) {
            return Ok(Rc::new(Ok(Vec::new())));
        }
        let key = (name.clone(), version.clone());
        if let Some(found) = self.version_deps.borrow().get(&key) {
            return Ok(Rc::clone(found));
        }
        self.progress
            .message(&format!("reading metadata of {name} {version}"));
        let candidates = self.candidates(name)?;
        let file = candidates
            .wheel(version)
            .ok_or_else(|| unpicked(name, version))?;
        let text = self.client.metadata(name, file)?;
        let parsed = Rc::new(requirements_from_metadata(&text, self.python));
        self.version_deps
            .borrow_mut()
            .insert(key, Rc::clone(&parsed));
        Ok(parsed)
    }

    /// PubGrub constraints for `parent`'s requirements that apply with `extras` enabled;
    /// with `only_extra`, those that apply only thanks to the extra.
    fn constraints(
        &self,
        parent: &Pkg,
        parent_version: &Version,
        requirements: &[Requirement<VerbatimUrl>],
        extra: Option<&ExtraName>,
    ) -> Result<DependencyConstraints<Pkg, Vs>, String> {
        let env = &self.env;
        let mut merged: Vec<(Pkg, Vs)> = Vec::new();
        if let (Pkg::Extra(name, _), Some(_)) = (parent, extra) {
            merged.push((
                Pkg::Base(name.clone()),
                Ranges::singleton(parent_version.clone()),
            ));
        }
        for requirement in requirements {
            let applies = match extra {
                None => requirement.evaluate_markers(env, &[]),
                Some(extra) => {
                    requirement.evaluate_markers(env, std::slice::from_ref(extra))
                        && !requirement.evaluate_markers(env, &[])
                }
            };
            if applies {
                self.note_requirer(parent, parent_version, &requirement.name);
                add_requirement(&mut merged, parent, requirement)?;
            }
        }
        Ok(merged.into_iter().collect())
    }

    fn note_requirer(&self, parent: &Pkg, version: &Version, name: &PackageName) {
        self.required_by
            .borrow_mut()
            .entry(name.clone())
            .or_insert_with(|| requirer(parent, version));
    }

    /// The constraints `package` `version` puts on other packages, or why that version
    /// cannot be used.
    fn dependencies_of(
        &self,
        package: &Pkg,
        version: &Version,
    ) -> Result<Result<DependencyConstraints<Pkg, Vs>, String>, DepsError> {
        let (requirements, extra) = match package {
            Pkg::Root => (Rc::new(Ok(self.root.items().to_vec())), None),
            Pkg::Base(name) => (self.requirements_of(name, version)?, None),
            Pkg::Extra(name, extra) => (self.requirements_of(name, version)?, Some(extra)),
        };
        Ok(match requirements.as_ref() {
            Ok(requirements) => self.constraints(package, version, requirements, extra),
            Err(reason) => Err(reason.clone()),
        })
    }

    /// Who requires each distribution of `solution`, with the versions each allows (an extra's
    /// pin to its own base package left out: it is not a requirement anyone declared).
    fn demands(
        &self,
        solution: &[(Pkg, Version)],
    ) -> Result<HashMap<PackageName, Vec<Demand>>, DepsError> {
        let mut demands: HashMap<PackageName, Vec<Demand>> = HashMap::new();
        for (parent, version) in solution {
            let Ok(constraints) = self.dependencies_of(parent, version)? else {
                continue;
            };
            for (target, range) in constraints {
                let Pkg::Base(name) = target else { continue };
                if parent.name() == Some(&name) {
                    continue;
                }
                demands.entry(name).or_default().push(Demand {
                    requirer: requirer(parent, version),
                    range,
                });
            }
        }
        Ok(demands)
    }

    /// Why `name` `version` was ruled out by its metadata during resolution, if it was.
    fn unavailable(&self, name: &PackageName, version: &Version) -> Option<String> {
        let key = (name.clone(), version.clone());
        match self.version_deps.borrow().get(&key)?.as_ref() {
            Err(reason) => Some(reason.clone()),
            Ok(_) => None,
        }
    }

    fn discovery_index(&self, package: &Pkg) -> usize {
        let mut discovered = self.discovered.borrow_mut();
        let next = discovered.len();
        *discovered.entry(package.clone()).or_insert(next)
    }
}

/// Parses a METADATA text into requirements, or the reason the version is unusable on
/// `python`.
fn requirements_from_metadata(
    text: &str,
    python: TargetPython,
) -> Result<Vec<Requirement<VerbatimUrl>>, String> {
    let metadata = metadata::parse(text);
    if let Some(spec) = &metadata.requires_python
        && !python.allows(spec)
    {
        return Err(format!("it requires Python {spec}"));
    }
    metadata
        .requires_dist
        .iter()
        .map(|line| {
            Requirement::<VerbatimUrl>::from_str(line).map_err(|e| {
                format!(
                    "its metadata lists an invalid requirement \"{line}\" ({})",
                    e.message
                )
            })
        })
        .collect()
}

/// Adds one requirement's constraints (base package and each extra), intersecting ranges
/// when the same package is required twice.
fn add_requirement(
    merged: &mut Vec<(Pkg, Vs)>,
    parent: &Pkg,
    requirement: &Requirement<VerbatimUrl>,
) -> Result<(), String> {
    let range = match &requirement.version_or_url {
        None => Ranges::full(),
        Some(VersionOrUrl::VersionSpecifier(specifiers)) => Vs::from(specifiers.clone()),
        Some(VersionOrUrl::Url(_)) => {
            return Err(format!(
                "it depends on {} through a direct URL, which Vivarium does not install",
                requirement.name
            ));
        }
    };
    let name = &requirement.name;
    let mut targets: Vec<Pkg> = requirement
        .extras
        .iter()
        .map(|extra| Pkg::Extra(name.clone(), extra.clone()))
        .collect();
    if parent.name() != Some(name) {
        targets.push(Pkg::Base(name.clone()));
    }
    for target in targets.into_iter().filter(|t| t != parent) {
        match merged.iter_mut().find(|(p, _)| *p == target) {
            Some((_, existing)) => *existing = existing.intersection(&range),
            None => merged.push((target, range.clone())),
        }
    }
    Ok(())
}

impl DependencyProvider for Provider<'_> {
    type P = Pkg;
    type V = Version;
    type VS = Vs;
    type M = String;
    type Err = DepsError;
    type Priority = (u32, Reverse<usize>);

    fn prioritize(
        &self,
        package: &Pkg,
        _range: &Vs,
        stats: &PackageResolutionStatistics,
    ) -> Self::Priority {
        (
            stats.conflict_count(),
            Reverse(self.discovery_index(package)),
        )
    }

    fn choose_version(&self, package: &Pkg, range: &Vs) -> Result<Option<Version>, DepsError> {
        let Some(name) = package.name() else {
            return Ok(Some(root_version()));
        };
        match self.provided.get(name) {
            Some(version) => Ok(range.contains(version).then(|| version.clone())),
            None => self.candidates(name)?.choose(range),
        }
    }

    fn get_dependencies(
        &self,
        package: &Pkg,
        version: &Version,
    ) -> Result<Dependencies<Pkg, Vs, String>, DepsError> {
        Ok(match self.dependencies_of(package, version)? {
            Ok(constraints) => Dependencies::Available(constraints),
            Err(reason) => Dependencies::Unavailable(reason),
        })
    }
}

fn unpicked(name: &PackageName, version: &Version) -> DepsError {
    DepsError::Internal {
        reason: format!("the solver picked {name} {version}, which has no usable wheel"),
    }
}

fn root_version() -> Version {
    Version::new([0])
}

/// How a requirer is named in messages: "the action", or "name version".
fn requirer(parent: &Pkg, version: &Version) -> String {
    match parent {
        Pkg::Root => parent.to_string(),
        _ => format!("{parent} {version}"),
    }
}

/// The provided packages by name, with their versions parsed.
fn provided_versions(
    provided: &[ProvidedPackage],
) -> Result<HashMap<PackageName, Version>, DepsError> {
    provided
        .iter()
        .map(|package| {
            let bad = |what: String| DepsError::Internal {
                reason: format!("the runtime's provided package {}: {what}", package.name),
            };
            let name = PackageName::from_str(&package.name).map_err(|e| bad(e.to_string()))?;
            let version = Version::from_str(&package.version).map_err(|e| bad(e.to_string()))?;
            Ok((name, version))
        })
        .collect()
}

/// Refuses an action requirement on a provided package whose specifier excludes the version
/// the runtime has, naming both (the solver alone would only say that no version matches).
fn check_provided(
    requirements: &Requirements,
    provided: &HashMap<PackageName, Version>,
    env: &MarkerEnvironment,
) -> Result<(), DepsError> {
    for requirement in requirements.items() {
        let Some(version) = provided.get(&requirement.name) else {
            continue;
        };
        if !requirement.evaluate_markers(env, &[]) {
            continue;
        }
        if let Some(VersionOrUrl::VersionSpecifier(specifiers)) = &requirement.version_or_url
            && !specifiers.contains(version)
        {
            return Err(DepsError::ProvidedVersionExcluded {
                package: requirement.name.to_string(),
                provided: version.to_string(),
                specifier: specifiers.to_string(),
            });
        }
    }
    Ok(())
}

/// Resolves `requirements` into a lock for `python`, which provides `provided` built in, or
/// explains why that is impossible.
pub(crate) fn resolve(
    requirements: &Requirements,
    python: TargetPython,
    provided: &[ProvidedPackage],
    client: &IndexClient,
    progress: &Progress,
    max_packages: usize,
) -> Result<Lock, DepsError> {
    let provider = Provider::new(client, python, provided, requirements, progress)?;
    check_provided(requirements, &provider.provided, &provider.env)?;
    let solution = match pubgrub::resolve(&provider, Pkg::Root, root_version()) {
        Ok(solution) => solution,
        Err(PubGrubError::NoSolution(tree)) => {
            return Err(report::explain(tree, &|p| provider.known_versions(p)));
        }
        Err(PubGrubError::ErrorChoosingVersion { source, .. })
        | Err(PubGrubError::ErrorRetrievingDependencies { source, .. })
        | Err(PubGrubError::ErrorInShouldCancel(source)) => return Err(source),
    };
    let mut chosen: Vec<(Pkg, Version)> = solution.into_iter().collect();
    chosen.sort_by(|a, b| a.0.name().cmp(&b.0.name()));
    let demands = provider.demands(&chosen)?;
    let mut packages = Vec::new();
    let mut held_back = Vec::new();
    let mut provided = Vec::new();
    for (package, version) in &chosen {
        let Pkg::Base(name) = package else { continue };
        if provider.provided.contains_key(name) {
            provided.push(ProvidedPackage {
                name: name.to_string(),
                version: version.to_string(),
            });
            continue;
        }
        let candidates = provider.candidates(name)?;
        let demands = demands.get(name).map_or(&[][..], Vec::as_slice);
        let unavailable = |v: &Version| provider.unavailable(name, v);
        held_back.extend(newest::judge(
            name,
            version,
            &candidates,
            demands,
            &unavailable,
        )?);
        packages.push(provider.locked(name, version)?);
    }
    let lock = Lock::for_python(python, packages)
        .with_held_back(held_back)
        .with_provided(provided);
    if lock.packages.len() > max_packages {
        return Err(DepsError::TooManyPackages {
            count: lock.packages.len(),
            limit: max_packages,
        });
    }
    Ok(lock)
}

impl Provider<'_> {
    /// The lock entry of the wheel chosen for `name` `version`.
    fn locked(&self, name: &PackageName, version: &Version) -> Result<LockedPackage, DepsError> {
        let candidates = self.candidates(name)?;
        let file = candidates
            .wheel(version)
            .ok_or_else(|| unpicked(name, version))?;
        Ok(LockedPackage {
            name: name.to_string(),
            version: file.version.to_string(),
            wheel: file.filename.clone(),
            sha256: self.client.sha256(file)?,
        })
    }
}
