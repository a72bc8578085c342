//! Turns PubGrub's derivation tree into one readable sentence: the chain of requirements that
//! clash, in the order they lead from the action to the package they disagree on, then the
//! conclusion ("the action requires a>=2; a 2.0 requires b<1; the action requires b>=1: no
//! version of b satisfies both b<1 and b>=1").

use std::collections::HashSet;
use std::ops::Bound;

use pep440_rs::Version;
use pubgrub::{DerivationTree, External, Ranges};

use crate::error::DepsError;
use crate::graph::{Pkg, Vs};

/// The usable versions of a package, as far as resolution looked them up.
pub(crate) type KnownVersions<'a> = &'a dyn Fn(&Pkg) -> Vec<Version>;

/// The error for a resolution PubGrub proved impossible.
pub(crate) fn explain(
    mut tree: DerivationTree<Pkg, Vs, String>,
    known: KnownVersions,
) -> DepsError {
    if let Some(error) = direct_no_match(&tree, known) {
        return error;
    }
    tree.collapse_no_versions();
    let mut externals = Vec::new();
    collect(&tree, &mut externals);
    let clauses = order(externals);
    let text: Vec<String> = clauses.iter().map(|c| clause_text(c, known)).collect();
    let mut unique = Vec::new();
    for line in text {
        if !unique.contains(&line) {
            unique.push(line);
        }
    }
    DepsError::Conflict {
        explanation: format!("{}: {}", unique.join("; "), conclusion(&clauses, known)),
    }
}

/// `the action requires x<spec>` where no version of x matches: a plain "no matching version".
fn direct_no_match(
    tree: &DerivationTree<Pkg, Vs, String>,
    known: KnownVersions,
) -> Option<DepsError> {
    let DerivationTree::Derived(derived) = tree else {
        return None;
    };
    let pair = (derived.cause1.as_ref(), derived.cause2.as_ref());
    let (missing, dependency) = match pair {
        (DerivationTree::External(a @ External::NoVersions(..)), DerivationTree::External(b))
        | (DerivationTree::External(b), DerivationTree::External(a @ External::NoVersions(..))) => {
            (a, b)
        }
        _ => return None,
    };
    match (missing, dependency) {
        (External::NoVersions(p, _), External::FromDependencyOf(Pkg::Root, _, dep, range))
            if p == dep =>
        {
            Some(DepsError::NoMatchingVersion {
                package: p.name().map_or_else(|| p.to_string(), ToString::to_string),
                specifier: spec(range),
                available: available(&known(p)),
            })
        }
        _ => None,
    }
}

/// The external incompatibilities of the tree, depth first.
fn collect(tree: &DerivationTree<Pkg, Vs, String>, out: &mut Vec<External<Pkg, Vs, String>>) {
    match tree {
        DerivationTree::External(External::NotRoot(..)) => {}
        DerivationTree::External(external) => out.push(external.clone()),
        DerivationTree::Derived(derived) => {
            collect(&derived.cause1, out);
            collect(&derived.cause2, out);
        }
    }
}

/// Orders clauses as paths from the action: each dependency followed by what it requires.
fn order(clauses: Vec<External<Pkg, Vs, String>>) -> Vec<External<Pkg, Vs, String>> {
    let mut used = vec![false; clauses.len()];
    let mut out = Vec::new();
    visit(&Pkg::Root, &clauses, &mut used, &mut out);
    for i in 0..clauses.len() {
        if !used[i] {
            used[i] = true;
            out.push(clauses[i].clone());
            if let External::FromDependencyOf(_, _, dep, _) = &clauses[i] {
                visit(dep, &clauses, &mut used, &mut out);
            }
        }
    }
    out
}

fn visit(
    parent: &Pkg,
    clauses: &[External<Pkg, Vs, String>],
    used: &mut [bool],
    out: &mut Vec<External<Pkg, Vs, String>>,
) {
    for i in 0..clauses.len() {
        if let External::FromDependencyOf(p, _, dep, _) = &clauses[i]
            && p == parent
            && !used[i]
        {
            used[i] = true;
            out.push(clauses[i].clone());
            visit(dep, clauses, used, out);
        }
    }
}

fn clause_text(clause: &External<Pkg, Vs, String>, known: KnownVersions) -> String {
    match clause {
        External::FromDependencyOf(p, set, dep, dep_set) => {
            format!(
                "{} requires {}",
                who(p, set, known),
                requirement(dep, dep_set)
            )
        }
        External::NoVersions(p, set) => format!(
            "no usable version of {} (usable versions: {})",
            requirement(p, set),
            available(&known(p))
        ),
        External::Custom(p, set, reason) => {
            format!("{} cannot be used: {reason}", who(p, set, known))
        }
        External::NotRoot(p, _) => p.to_string(),
    }
}

/// "the action", "a 2.0" (one known version in the set), "a>=2,<3" or "a".
fn who(p: &Pkg, set: &Vs, known: KnownVersions) -> String {
    if *p == Pkg::Root {
        return p.to_string();
    }
    let versions: Vec<Version> = known(p).into_iter().filter(|v| set.contains(v)).collect();
    match versions.as_slice() {
        [only] => format!("{p} {only}"),
        _ => requirement(p, set),
    }
}

/// The conclusion: the package whose constraints from the chain leave no usable version.
fn conclusion(clauses: &[External<Pkg, Vs, String>], known: KnownVersions) -> String {
    let mut packages: Vec<&Pkg> = Vec::new();
    for clause in clauses {
        if let External::FromDependencyOf(_, _, dep, _) = clause
            && !packages.contains(&dep)
        {
            packages.push(dep);
        }
    }
    let constraints = |pkg: &Pkg| -> Vec<Vs> {
        let mut sets: Vec<Vs> = Vec::new();
        for clause in clauses {
            if let External::FromDependencyOf(_, _, dep, set) = clause
                && dep == pkg
                && !sets.contains(set)
            {
                sets.push(set.clone());
            }
        }
        sets
    };
    let unsatisfiable = |pkg: &Pkg, sets: &[Vs]| {
        let all = sets
            .iter()
            .fold(Ranges::full(), |acc, s| acc.intersection(s));
        all.is_empty() || !known(pkg).iter().any(|v| all.contains(v))
    };
    for wanted_many in [true, false] {
        for pkg in &packages {
            let sets = constraints(pkg);
            if (sets.len() > 1) == wanted_many && unsatisfiable(pkg, &sets) {
                return no_version_text(pkg, &sets, known);
            }
        }
    }
    "these requirements cannot all be met".into()
}

fn no_version_text(pkg: &Pkg, sets: &[Vs], known: KnownVersions) -> String {
    let specs: Vec<String> = sets.iter().map(|s| requirement(pkg, s)).collect();
    match specs.as_slice() {
        [one] => format!(
            "no usable version of {pkg} matches {one} (usable versions: {})",
            available(&known(pkg))
        ),
        [a, b] => format!("no version of {pkg} satisfies both {a} and {b}"),
        [rest @ .., last] => format!(
            "no version of {pkg} satisfies all of {} and {last}",
            rest.join(", ")
        ),
        [] => format!("no version of {pkg} can be used"),
    }
}

/// `name` followed by the PEP 440 form of `set` ("b>=1,<2"); the bare name for any version.
fn requirement(p: &Pkg, set: &Vs) -> String {
    format!("{p}{}", spec(set))
}

/// The PEP 440-like text of a version set: "" for any version, "==1.0", ">=1,<2", "!=1.5",
/// alternatives joined with " or ".
pub(crate) fn spec(set: &Vs) -> String {
    if *set == Ranges::full() {
        return String::new();
    }
    let segments: Vec<(&Bound<Version>, &Bound<Version>)> = set.iter().collect();
    if let [
        (Bound::Unbounded, Bound::Excluded(a)),
        (Bound::Excluded(b), Bound::Unbounded),
    ] = segments.as_slice()
        && a == b
    {
        return format!("!={}", show(a));
    }
    if segments.is_empty() {
        return " (no version)".into();
    }
    let parts: Vec<String> = segments.iter().map(|(lo, hi)| segment(lo, hi)).collect();
    parts.join(" or ")
}

fn segment(lo: &Bound<Version>, hi: &Bound<Version>) -> String {
    if let (Bound::Included(a), Bound::Included(b)) = (lo, hi)
        && a == b
    {
        return format!("=={}", show(a));
    }
    let lower = match lo {
        Bound::Included(a) => Some(format!(">={}", show(a))),
        Bound::Excluded(a) => Some(format!(">{}", show(a))),
        Bound::Unbounded => None,
    };
    let upper = match hi {
        Bound::Included(b) => Some(format!("<={}", show(b))),
        Bound::Excluded(b) => Some(format!("<{}", show(b))),
        Bound::Unbounded => None,
    };
    let parts: Vec<String> = lower.into_iter().chain(upper).collect();
    parts.join(",")
}

/// A version as a person wrote it (PubGrub-internal min/max markers dropped).
fn show(version: &Version) -> String {
    version.clone().with_min(None).with_max(None).to_string()
}

/// The newest few usable versions, newest first, or "none".
fn available(versions: &[Version]) -> String {
    let unique: HashSet<&Version> = versions.iter().collect();
    let mut sorted: Vec<&Version> = unique.into_iter().collect();
    sorted.sort();
    let newest: Vec<String> = sorted.iter().rev().take(8).map(|v| v.to_string()).collect();
    match newest.is_empty() {
        true => "none".into(),
        false => newest.join(", "),
    }
}

#[cfg(test)]
mod tests {
    use std::str::FromStr;

    use pep440_rs::VersionSpecifiers;
    use pep508_rs::PackageName;
    use pubgrub::{OfflineDependencyProvider, PubGrubError};

    use super::*;

    fn v(s: &str) -> Version {
        Version::from_str(s).unwrap()
    }

    fn vs(s: &str) -> Vs {
        Vs::from(VersionSpecifiers::from_str(s).unwrap())
    }

    fn pkg(name: &str) -> Pkg {
        Pkg::Base(PackageName::from_str(name).unwrap())
    }

    #[test]
    fn specs_read_like_pep440() {
        assert_eq!(spec(&vs(">=1")), ">=1");
        assert_eq!(spec(&vs("<1")), "<1");
        assert_eq!(spec(&vs(">=1,<2")), ">=1,<2");
        assert_eq!(spec(&vs("==1.0")), "==1.0");
        assert_eq!(spec(&vs("!=1.5")), "!=1.5");
        assert_eq!(spec(&vs(">1")), ">1");
        assert_eq!(spec(&Ranges::full()), "");
    }

    fn solve(p: &OfflineDependencyProvider<Pkg, Vs>) -> DepsError {
        let known = |package: &Pkg| -> Vec<Version> {
            p.versions(package).into_iter().flatten().cloned().collect()
        };
        match pubgrub::resolve(p, Pkg::Root, v("0")) {
            Err(PubGrubError::NoSolution(tree)) => explain(tree, &known),
            other => panic!("expected no solution, got {other:?}"),
        }
    }

    #[test]
    fn a_conflict_reads_as_a_chain() {
        let mut p = OfflineDependencyProvider::<Pkg, Vs>::new();
        p.add_dependencies(
            Pkg::Root,
            v("0"),
            [(pkg("a"), vs(">=2")), (pkg("b"), vs(">=1"))],
        );
        p.add_dependencies(pkg("a"), v("2.0"), [(pkg("b"), vs("<1"))]);
        p.add_dependencies(pkg("a"), v("1.0"), []);
        p.add_dependencies(pkg("b"), v("0.5"), []);
        p.add_dependencies(pkg("b"), v("1.5"), []);
        let message = solve(&p).to_string();
        assert!(
            message.contains(
                "the action requires a>=2; a 2.0 requires b<1; the action requires b>=1: \
                 no version of b satisfies both b<1 and b>=1"
            ),
            "{message}"
        );
    }

    #[test]
    fn a_missing_version_is_no_match() {
        let mut p = OfflineDependencyProvider::<Pkg, Vs>::new();
        p.add_dependencies(Pkg::Root, v("0"), [(pkg("a"), vs(">=9"))]);
        p.add_dependencies(pkg("a"), v("1.0"), []);
        let error = solve(&p);
        assert!(
            matches!(error, DepsError::NoMatchingVersion { .. }),
            "{error}"
        );
        let message = error.to_string();
        assert!(
            message.contains("a: no version matches \">=9\""),
            "{message}"
        );
        assert!(message.contains("1.0"), "{message}");
    }

    #[test]
    fn a_transitive_missing_version_names_the_chain() {
        let mut p = OfflineDependencyProvider::<Pkg, Vs>::new();
        p.add_dependencies(Pkg::Root, v("0"), [(pkg("a"), Ranges::full())]);
        p.add_dependencies(pkg("a"), v("1.0"), [(pkg("c"), vs(">=5"))]);
        p.add_dependencies(pkg("c"), v("3.0"), []);
        let message = solve(&p).to_string();
        assert!(
            message.contains("the action requires a; a 1.0 requires c>=5"),
            "{message}"
        );
        assert!(
            message.contains("no usable version of c matches c>=5"),
            "{message}"
        );
    }
}
