//! Whether each locked package is its project's newest release, and if not, why.
//!
//! Choosing the newest version that has a usable wheel would quietly turn a requirement on a
//! package that now ships compiled wheels only into an ancient release that happened to be pure
//! (`pydantic-core` into a 0.0.1 placeholder). So when the newest release publishes wheels but
//! no pure-Python one, the package is refused by name, unless a requirement on it excludes that
//! release itself (`pydantic-core<0.1`): then the older release is what was asked for. A newest
//! release that is ruled out otherwise (source distributions only, a `requires-python` that
//! excludes the target, conflicting requirements) is skipped as before. Every package locked
//! below its newest release is recorded in the lock with the reason.

use pep440_rs::Version;
use pep508_rs::PackageName;

use crate::candidates::Candidates;
use crate::error::DepsError;
use crate::graph::Vs;
use crate::lock::HeldBack;
use crate::report;

/// One requirement on a package in a solution: who declares it and the versions it allows.
pub(crate) struct Demand {
    /// "the action", or the requiring package and version ("a 1.0", "tool[fast] 2.0").
    pub requirer: String,
    /// The versions it allows.
    pub range: Vs,
}

/// Judges `name` `chosen`, required by `demands`: `None` when it is the newest release (or a
/// pre-release newer than it), the held-back entry otherwise, or the refusal when the newest
/// release has wheels, compiled ones only, and no demand excludes it. `unavailable` says why a usable
/// version's metadata ruled it out during resolution, if it did.
pub(crate) fn judge(
    name: &PackageName,
    chosen: &Version,
    candidates: &Candidates,
    demands: &[Demand],
    unavailable: &dyn Fn(&Version) -> Option<String>,
) -> Result<Option<HeldBack>, DepsError> {
    let Some(newest) = candidates.newest_release() else {
        return Ok(None);
    };
    if chosen >= newest {
        return Ok(None);
    }
    let excluding: Vec<&Demand> = demands
        .iter()
        .filter(|demand| !demand.range.contains(newest))
        .collect();
    if let Some(wheels) = candidates.only_compiled_wheels(newest)
        && excluding.is_empty()
    {
        return Err(DepsError::NewestReleaseCompiled {
            package: name.to_string(),
            required_by: requirers(demands),
            newest: newest.to_string(),
            wheels: wheels.to_vec(),
            fallback: chosen.to_string(),
        });
    }
    let mut reasons: Vec<String> = excluding
        .iter()
        .map(|demand| {
            format!(
                "{} requires {name}{}",
                demand.requirer,
                report::spec(&demand.range)
            )
        })
        .collect();
    if !excluding.is_empty()
        && let Some(why) = candidates.unusable_reason(newest)
    {
        reasons.push(format!("{newest}, the newest release, {why}"));
    }
    let allowed_range = demands
        .iter()
        .fold(Vs::full(), |all, demand| all.intersection(&demand.range));
    if let Some(allowed) = candidates.newest_in(&allowed_range)
        && allowed > chosen
    {
        let which = match excluding.is_empty() {
            true => "the newest release",
            false => "the newest release they allow",
        };
        let why = candidates
            .unusable_reason(allowed)
            .or_else(|| unavailable(allowed).map(|reason| format!("cannot be used ({reason})")))
            .unwrap_or_else(|| "cannot be combined with the other requirements".into());
        reasons.push(format!("{allowed}, {which}, {why}"));
    }
    Ok(Some(HeldBack {
        name: name.to_string(),
        chosen: chosen.to_string(),
        newest: newest.to_string(),
        reason: reasons.join("; "),
    }))
}

/// The requirers of `demands`, comma-separated, each once.
fn requirers(demands: &[Demand]) -> String {
    let mut names: Vec<&str> = Vec::new();
    for demand in demands {
        if !names.contains(&demand.requirer.as_str()) {
            names.push(&demand.requirer);
        }
    }
    names.join(", ")
}

#[cfg(test)]
mod tests {
    use std::str::FromStr;

    use pep440_rs::VersionSpecifiers;

    use super::*;
    use crate::candidates::tests::file;
    use crate::environment::TargetPython;
    use crate::index::DistFile;

    /// What holds lib 1.0 back when the action requires lib without a version.
    fn held_back_by_action(
        lib: &Candidates,
        unavailable: &dyn Fn(&Version) -> Option<String>,
    ) -> HeldBack {
        judge(
            &name("lib"),
            &v("1.0"),
            lib,
            &[demand("the action", "")],
            unavailable,
        )
        .unwrap()
        .unwrap()
    }

    fn name(text: &str) -> PackageName {
        PackageName::from_str(text).unwrap()
    }

    fn v(text: &str) -> Version {
        Version::from_str(text).unwrap()
    }

    fn candidates(project: &str, filenames: &[&str], python: TargetPython) -> Candidates {
        let files: Vec<DistFile> = filenames.iter().map(|f| file(project, f, None)).collect();
        Candidates::new(&name(project), &files, python)
    }

    fn demand(requirer: &str, spec: &str) -> Demand {
        Demand {
            requirer: requirer.into(),
            range: match spec {
                "" => Vs::full(),
                spec => Vs::from(VersionSpecifiers::from_str(spec).unwrap()),
            },
        }
    }

    fn none(_: &Version) -> Option<String> {
        None
    }

    const LIB: [&str; 3] = [
        "lib-1.0-py3-none-any.whl",
        "lib-2.0-cp311-cp311-manylinux_2_17_x86_64.whl",
        "lib-2.0.tar.gz",
    ];

    #[test]
    fn the_newest_release_is_not_held_back() {
        let lib = candidates(
            "lib",
            &["lib-1.0-py3-none-any.whl"],
            TargetPython::default(),
        );
        let judged = judge(
            &name("lib"),
            &v("1.0"),
            &lib,
            &[demand("the action", "")],
            &none,
        );
        assert!(judged.unwrap().is_none());
    }

    #[test]
    fn a_compiled_newest_release_is_refused_unless_excluded() {
        let lib = candidates("lib", &LIB, TargetPython::default());
        let demands = [demand("the action", ""), demand("a 1.0", ">=1")];
        let error = judge(&name("lib"), &v("1.0"), &lib, &demands, &none).unwrap_err();
        assert!(
            matches!(
                &error,
                DepsError::NewestReleaseCompiled { required_by, newest, fallback, .. }
                    if required_by == "the action, a 1.0" && newest == "2.0" && fallback == "1.0"
            ),
            "{error}"
        );
        let demands = [demand("the action", ""), demand("a 1.0", "<2")];
        let held = judge(&name("lib"), &v("1.0"), &lib, &demands, &none)
            .unwrap()
            .unwrap();
        assert_eq!((held.chosen.as_str(), held.newest.as_str()), ("1.0", "2.0"));
        assert_eq!(
            held.reason,
            "a 1.0 requires lib<2; 2.0, the newest release, has only wheels with compiled \
             extensions (lib-2.0-cp311-cp311-manylinux_2_17_x86_64.whl)"
        );
    }

    #[test]
    fn the_reason_says_why_the_newest_allowed_release_was_skipped() {
        let lib = candidates(
            "lib",
            &[
                "lib-1.0-py3-none-any.whl",
                "lib-1.5-cp311-cp311-win_amd64.whl",
                "lib-2.0-py3-none-any.whl",
            ],
            TargetPython::default(),
        );
        let demands = [demand("the action", "<2")];
        let held = judge(&name("lib"), &v("1.0"), &lib, &demands, &none)
            .unwrap()
            .unwrap();
        assert_eq!(
            held.reason,
            "the action requires lib<2; 1.5, the newest release they allow, has only wheels \
             with compiled extensions (lib-1.5-cp311-cp311-win_amd64.whl)"
        );
        let metadata = |_: &Version| Some("it requires Python >=3.14".to_string());
        let lib = candidates(
            "lib",
            &["lib-1.0-py3-none-any.whl", "lib-2.0-py3-none-any.whl"],
            TargetPython::default(),
        );
        let held = held_back_by_action(&lib, &metadata);
        assert_eq!(
            held.reason,
            "2.0, the newest release, cannot be used (it requires Python >=3.14)"
        );
        let held = held_back_by_action(&lib, &none);
        assert_eq!(
            held.reason,
            "2.0, the newest release, cannot be combined with the other requirements"
        );
    }

    #[test]
    fn a_newest_release_for_another_python_holds_back_without_refusing() {
        let files = [
            file("lib", "lib-1.0-py3-none-any.whl", None),
            file("lib", "lib-2.0-py3-none-any.whl", Some(">=3.13")),
        ];
        let lib = Candidates::new(&name("lib"), &files, TargetPython::CPYTHON_3_12);
        let held = held_back_by_action(&lib, &none);
        assert_eq!(
            held.reason,
            "2.0, the newest release, requires Python \">=3.13\", which excludes CPython 3.12.0"
        );
    }

    #[test]
    fn a_newest_release_with_sources_only_holds_back_without_refusing() {
        let lib = candidates(
            "lib",
            &["lib-1.0-py3-none-any.whl", "lib-2.0.tar.gz"],
            TargetPython::default(),
        );
        let held = held_back_by_action(&lib, &none);
        assert_eq!(
            held.reason,
            "2.0, the newest release, has no wheel, only source distributions (lib-2.0.tar.gz)"
        );
    }

    #[test]
    fn a_pre_release_newer_than_the_newest_final_is_not_held_back() {
        let lib = candidates(
            "lib",
            &[
                "lib-1.0-cp311-cp311-win_amd64.whl",
                "lib-2.0b1-py3-none-any.whl",
            ],
            TargetPython::default(),
        );
        let judged = judge(
            &name("lib"),
            &v("2.0b1"),
            &lib,
            &[demand("the action", "")],
            &none,
        );
        assert!(judged.unwrap().is_none());
    }
}
