//! Reads an action's `pyproject.toml`: the PEP 621 `[project].dependencies` list (PEP 508
//! requirements) and `requires-python`, which must admit the Python the action runs on
//! (checked when resolving, against [`crate::DepsConfig::python`]).

use std::str::FromStr;

use pep440_rs::VersionSpecifiers;
use pep508_rs::{Requirement, VerbatimUrl, VersionOrUrl};
use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::environment::TargetPython;
use crate::error::DepsError;

/// The dependencies an action declares, parsed as PEP 508 requirements, with the project's
/// own `requires-python` when it declares one.
///
/// Built by [`requirements_from_pyproject`] or [`Requirements::parse`]; handed to
/// [`crate::resolve`]. Markers are kept as written and evaluated at resolve time for the
/// Python resolved for ([`crate::DepsConfig::python`]), which `requires-python` must admit.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Requirements {
    items: Vec<Requirement<VerbatimUrl>>,
    requires_python: Option<RequiresPython>,
}

/// A project's `requires-python`: as written (for messages) and parsed.
#[derive(Clone, Debug, PartialEq, Eq)]
struct RequiresPython {
    written: String,
    specifiers: VersionSpecifiers,
}

impl Requirements {
    /// Parses PEP 508 requirement strings, one per item (blank items are skipped).
    ///
    /// Direct URL requirements (`name @ https://...`) are refused: only index and wheelhouse
    /// distributions can be hash-checked and locked.
    pub fn parse<I, S>(lines: I) -> Result<Self, DepsError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut items = Vec::new();
        for line in lines {
            let line = line.as_ref().trim();
            if !line.is_empty() {
                items.push(parse_requirement(line)?);
            }
        }
        Ok(Self {
            items,
            requires_python: None,
        })
    }

    /// Whether no dependency is declared (then no layer is needed).
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// How many requirements are declared.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// The requirements in canonical PEP 508 form, sorted: equal sets give equal lists.
    pub fn canonical(&self) -> Vec<String> {
        let mut lines: Vec<String> = self.items.iter().map(ToString::to_string).collect();
        lines.sort();
        lines.dedup();
        lines
    }

    /// A sha256 (hex) of [`Requirements::canonical`]: a key for caching a lock per distinct set
    /// of requirements (together with the source and the Python resolved for).
    pub fn digest(&self) -> String {
        let mut hasher = Sha256::new();
        for line in self.canonical() {
            hasher.update(line.as_bytes());
            hasher.update(b"\n");
        }
        hex::encode(hasher.finalize())
    }

    /// The project's `[project].requires-python` as written, if it declares one.
    pub fn requires_python(&self) -> Option<&str> {
        self.requires_python.as_ref().map(|r| r.written.as_str())
    }

    /// Whether the project's `requires-python` admits `python` (true when it declares none):
    /// [`crate::resolve`] refuses to resolve for a Python it excludes.
    pub fn admits(&self, python: TargetPython) -> bool {
        self.requires_python
            .as_ref()
            .is_none_or(|r| r.specifiers.contains(&python.version()))
    }

    /// [`DepsError::ProjectRequiresPython`] unless [`Requirements::admits`] `python`.
    pub(crate) fn check_python(&self, python: TargetPython) -> Result<(), DepsError> {
        match &self.requires_python {
            Some(declared) if !self.admits(python) => Err(DepsError::ProjectRequiresPython {
                specifier: declared.written.clone(),
                python,
            }),
            _ => Ok(()),
        }
    }

    /// The parsed requirements.
    pub(crate) fn items(&self) -> &[Requirement<VerbatimUrl>] {
        &self.items
    }
}

/// Parses one PEP 508 requirement as Vivarium accepts it (no direct URLs).
pub(crate) fn parse_requirement(line: &str) -> Result<Requirement<VerbatimUrl>, DepsError> {
    refuse_dangling_name_separator(line)?;
    let requirement =
        Requirement::<VerbatimUrl>::from_str(line).map_err(|error| DepsError::BadRequirement {
            requirement: line.to_string(),
            reason: format!(
                "{} (at character {}); write it as a PEP 508 requirement such as \
                 \"requests>=2.31\"",
                error.message,
                error.start + 1
            ),
        })?;
    if let Some(VersionOrUrl::Url(_)) = requirement.version_or_url {
        return Err(DepsError::BadRequirement {
            requirement: line.to_string(),
            reason: "direct URL requirements are not supported (they cannot be hash-checked); \
                     name a version from the index, or put the wheel in the wheelhouse"
                .to_string(),
        });
    }
    Ok(requirement)
}

/// Refuses non-ASCII text, and a package name or an extra that ends in `.`, `-` or `_`
/// before more text (`a-<1`, `a[b.]`), which pep508_rs 0.9 answers with a panic instead of
/// an error (found by the `pyproject` fuzz target).
fn refuse_dangling_name_separator(line: &str) -> Result<(), DepsError> {
    // pep508_rs 0.9 also slices non-ASCII text off a char boundary (a third panic the fuzz
    // target found); nothing a requirement names is outside ASCII.
    if let Some(c) = line.chars().find(|c| !c.is_ascii()) {
        return Err(DepsError::BadRequirement {
            requirement: line.to_string(),
            reason: format!(
                "{c:?} is not ASCII; package names, versions and markers are written in ASCII"
            ),
        });
    }
    let text = line.trim_start();
    let (name, rest) = text.split_at(name_run(text));
    if dangles(name, rest) {
        return Err(dangling(line, "package name", name));
    }
    let Some(extras) = rest.trim_start().strip_prefix('[') else {
        return Ok(());
    };
    let inside = extras.split(']').next().unwrap_or(extras);
    for extra in inside.split(',') {
        let extra = extra.trim_start();
        let (run, after) = extra.split_at(name_run(extra));
        // An extra is always followed by `,` or `]` (split off here), or by blanks.
        let followed = after.chars().next().is_none_or(char::is_whitespace);
        if ends_in_separator(run) && followed {
            return Err(dangling(line, "extra", run));
        }
    }
    Ok(())
}

/// The length of the run of name characters `text` starts with.
fn name_run(text: &str) -> usize {
    text.find(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_')))
        .unwrap_or(text.len())
}

/// Whether `run`, a package name, ends in a separator with `after` following it.
fn dangles(run: &str, after: &str) -> bool {
    ends_in_separator(run) && !after.is_empty()
}

/// Whether `run` starts with a letter or a digit, as a name does, and ends in a separator.
fn ends_in_separator(run: &str) -> bool {
    run.ends_with(['.', '-', '_']) && run.starts_with(|c: char| c.is_ascii_alphanumeric())
}

fn dangling(line: &str, what: &str, run: &str) -> DepsError {
    DepsError::BadRequirement {
        requirement: line.to_string(),
        reason: format!(
            "the {what} {run:?} must end with a letter or a digit; write it as a PEP 508 \
             requirement such as \"requests[socks]>=2.31\""
        ),
    }
}

#[derive(Deserialize)]
struct Pyproject {
    project: Option<Project>,
}

#[derive(Deserialize)]
struct Project {
    #[serde(default)]
    dependencies: Option<Vec<String>>,
    #[serde(default, rename = "requires-python")]
    requires_python: Option<String>,
    #[serde(default)]
    dynamic: Vec<String>,
}

/// Reads `[project].dependencies` and `[project].requires-python` from the text of a
/// `pyproject.toml`.
///
/// No `[project]` table, or no or an empty `dependencies` list, gives empty [`Requirements`].
/// A `requires-python` that is not a valid PEP 440 specifier set is refused here; whether it
/// admits the Python the action runs on is checked by [`crate::resolve`] (and
/// [`crate::lock_for_action`]), which know it, or asked with [`Requirements::admits`].
/// Dependencies declared `dynamic` are refused since Vivarium runs no build backend.
pub fn requirements_from_pyproject(text: &str) -> Result<Requirements, DepsError> {
    let parsed: Pyproject = toml::from_str(text).map_err(|error| DepsError::BadPyproject {
        reason: toml_error(text, &error),
    })?;
    let Some(project) = parsed.project else {
        return Ok(Requirements::default());
    };
    let requires_python = project
        .requires_python
        .as_deref()
        .map(parse_requires_python)
        .transpose()?;
    if project.dynamic.iter().any(|field| field == "dependencies") {
        return Err(DepsError::BadPyproject {
            reason: "[project].dynamic lists \"dependencies\", but Vivarium runs no build \
                     backend; list the dependencies in [project].dependencies instead"
                .to_string(),
        });
    }
    let mut requirements = Requirements::parse(project.dependencies.unwrap_or_default())?;
    requirements.requires_python = requires_python;
    Ok(requirements)
}

/// "line L, column C: message" for a TOML error (its own text spans several lines).
fn toml_error(text: &str, error: &toml::de::Error) -> String {
    let message = error.message().trim().replace('\n', " ");
    let Some(span) = error.span() else {
        return message;
    };
    let before = &text.as_bytes()[..span.start.min(text.len())];
    let line = before.iter().filter(|b| **b == b'\n').count() + 1;
    let column = before.iter().rev().take_while(|b| **b != b'\n').count() + 1;
    format!("line {line}, column {column}: {message}")
}

fn parse_requires_python(specifier: &str) -> Result<RequiresPython, DepsError> {
    let specifiers =
        VersionSpecifiers::from_str(specifier.trim()).map_err(|error| DepsError::BadPyproject {
            reason: format!("[project].requires-python \"{specifier}\" is not valid: {error}"),
        })?;
    Ok(RequiresPython {
        written: specifier.to_string(),
        specifiers,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_dependencies() {
        let text = r#"
            [project]
            name = "demo"
            requires-python = ">=3.10"
            dependencies = ["requests>=2", "attrs[tests] ; python_version >= '3.8'", ""]
        "#;
        let reqs = requirements_from_pyproject(text).unwrap();
        assert_eq!(reqs.len(), 2);
        assert!(!reqs.is_empty());
    }

    #[test]
    fn no_project_table_means_no_dependencies() {
        assert!(
            requirements_from_pyproject("[tool.x]\na = 1\n")
                .unwrap()
                .is_empty()
        );
        assert!(requirements_from_pyproject("").unwrap().is_empty());
        assert!(
            requirements_from_pyproject("[project]\nname = \"x\"\ndependencies = []\n")
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn bad_toml_is_reported() {
        let err = requirements_from_pyproject("[project]\nname = 1\n[project\n").unwrap_err();
        assert!(matches!(err, DepsError::BadPyproject { .. }), "{err}");
        assert!(err.to_string().contains("line 3, column 9: "), "{err}");
        let err = requirements_from_pyproject("[project]\ndependencies = \"x\"\n").unwrap_err();
        assert!(matches!(err, DepsError::BadPyproject { .. }), "{err}");
    }

    #[test]
    fn bad_requirement_names_the_line() {
        let err = requirements_from_pyproject("[project]\ndependencies = [\"requests >>= 2\"]\n")
            .unwrap_err();
        let message = err.to_string();
        assert!(message.contains("requests >>= 2"), "{message}");
    }

    #[test]
    fn url_requirements_are_refused() {
        let err = Requirements::parse(["pkg @ https://example.invalid/pkg-1.0-py3-none-any.whl"])
            .unwrap_err();
        assert!(err.to_string().contains("direct URL"), "{err}");
    }

    #[test]
    fn a_name_ending_in_a_separator_is_refused_not_a_panic() {
        for line in [
            "requests.=>331",
            "a-<1",
            "a_ ; python_version > '3'",
            "p[extra. >= '3.8'",
            "p[a, b_]",
            "p[a.]>=1",
        ] {
            let err = Requirements::parse([line]).unwrap_err();
            assert!(err.to_string().contains("must end with a letter"), "{err}");
        }
        let err = Requirements::parse(["pkg @ https://e.x/ء ; python_version >= '3'"]).unwrap_err();
        assert!(err.to_string().contains("is not ASCII"), "{err}");
        assert!(Requirements::parse(["a-b.c_d>=1", "a.b", "p[x.y, z]>=1"]).is_ok());
    }

    #[test]
    fn requires_python_is_checked_against_the_target() {
        let reqs = requirements_from_pyproject(
            "[project]\nrequires-python = \">=3.13\"\ndependencies = [\"six\"]\n",
        )
        .unwrap();
        assert_eq!(reqs.requires_python(), Some(">=3.13"));
        assert!(reqs.admits(TargetPython::CPYTHON_3_13));
        assert!(reqs.check_python(TargetPython::CPYTHON_3_13).is_ok());
        assert!(!reqs.admits(TargetPython::CPYTHON_3_12));
        let err = reqs.check_python(TargetPython::CPYTHON_3_12).unwrap_err();
        assert!(matches!(err, DepsError::ProjectRequiresPython { .. }));
        assert!(err.to_string().contains("CPython 3.12.0"), "{err}");
        assert!(err.to_string().contains("allow Python 3.12"), "{err}");

        let old_only =
            requirements_from_pyproject("[project]\nrequires-python = \"<3.13\"\n").unwrap();
        assert!(old_only.admits(TargetPython::CPYTHON_3_12));
        assert!(!old_only.admits(TargetPython::CPYTHON_3_13));

        let any = Requirements::parse(["six"]).unwrap();
        assert_eq!(any.requires_python(), None);
        assert!(any.admits(TargetPython::CPYTHON_3_12) && any.admits(TargetPython::CPYTHON_3_13));
    }

    #[test]
    fn an_invalid_requires_python_is_refused() {
        let err =
            requirements_from_pyproject("[project]\nrequires-python = \">>3\"\n").unwrap_err();
        assert!(matches!(err, DepsError::BadPyproject { .. }), "{err}");
        assert!(err.to_string().contains("requires-python"), "{err}");
    }

    #[test]
    fn dynamic_dependencies_are_refused() {
        let err =
            requirements_from_pyproject("[project]\ndynamic = [\"dependencies\"]\n").unwrap_err();
        assert!(err.to_string().contains("dynamic"), "{err}");
    }

    #[test]
    fn digest_ignores_order() {
        let a = Requirements::parse(["six", "idna>=3"]).unwrap();
        let b = Requirements::parse(["idna>=3", "six"]).unwrap();
        assert_eq!(a.digest(), b.digest());
    }
}
