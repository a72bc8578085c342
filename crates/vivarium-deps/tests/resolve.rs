//! Resolution against a local Simple-API index: transitive dependencies, extras, markers,
//! version choice, conflicts and refusals by name.

mod common;

use common::{Cache, Index, Served, closed_port_url, wheel};
use vivarium_deps::{
    DepsConfig, DepsError, HeldBack, Lock, ProvidedPackage, Requirements, TargetPython,
    lock_for_action, requirements_from_pyproject, resolve, resolve_cached,
};

const PY312: TargetPython = TargetPython::CPYTHON_3_12;
const PY313: TargetPython = TargetPython::CPYTHON_3_13;

fn reqs(lines: &[&str]) -> Requirements {
    Requirements::parse(lines).unwrap()
}

fn pinned(lock: &Lock) -> Vec<String> {
    lock.packages
        .iter()
        .map(|p| format!("{}=={}", p.name, p.version))
        .collect()
}

#[test]
fn resolves_transitive_dependencies() {
    let index = Index::start();
    index.add(&wheel("app-lib", "1.0").requires("middle>=1"));
    index.add(&wheel("middle", "1.2").requires("leaf"));
    index.add(&wheel("leaf", "0.3"));
    let lock = resolve(&reqs(&["App_Lib"]), &index.config()).unwrap();
    assert_eq!(pinned(&lock), ["app-lib==1.0", "leaf==0.3", "middle==1.2"]);
    for package in &lock.packages {
        assert!(package.wheel.ends_with("-py3-none-any.whl"), "{package:?}");
        assert_eq!(package.sha256.len(), 64);
    }
    assert_eq!(lock.packages[0].wheel, "app_lib-1.0-py3-none-any.whl");
    // PEP 658 metadata is used: resolving downloads no wheel.
    assert_eq!(index.wheel_downloads(), 0, "{:?}", index.requests());
}

#[test]
fn reads_metadata_from_the_wheel_when_no_metadata_file_is_offered() {
    let index = Index::start();
    let top = wheel("top", "1.0").requires("dep");
    let mut served = Served::wheel(&top);
    served.metadata = None;
    served.announced_sha256 = None;
    index.add_file("top", served.clone());
    index.add(&wheel("dep", "2.0"));
    let lock = resolve(&reqs(&["top"]), &index.config()).unwrap();
    assert_eq!(pinned(&lock), ["dep==2.0", "top==1.0"]);
    assert_eq!(lock.packages[1].sha256, common::sha256_hex(&served.bytes));
    assert_eq!(index.wheel_downloads(), 1, "{:?}", index.requests());
}

#[test]
fn honours_extras() {
    let index = Index::start();
    index.add(
        &wheel("tool", "1.0")
            .requires("fast-backend>=2; extra == \"fast\"")
            .requires("other-backend; extra == \"other\"")
            .requires("core"),
    );
    index.add(&wheel("fast-backend", "2.1"));
    index.add(&wheel("core", "1.0"));
    let plain = resolve(&reqs(&["tool"]), &index.config()).unwrap();
    assert_eq!(pinned(&plain), ["core==1.0", "tool==1.0"]);
    let with_extra = resolve(&reqs(&["tool[fast]"]), &index.config()).unwrap();
    assert_eq!(
        pinned(&with_extra),
        ["core==1.0", "fast-backend==2.1", "tool==1.0"]
    );
}

#[test]
fn evaluates_markers_for_the_sandbox() {
    let index = Index::start();
    index.add(
        &wheel("pkg", "1.0")
            .requires("winonly; sys_platform == \"win32\"")
            .requires("modern; python_version >= \"3.8\"")
            .requires("legacy; python_version < \"3\"")
            .requires("wasi-only; sys_platform == \"wasi\" and platform_machine == \"wasm32\""),
    );
    index.add(&wheel("modern", "1.0"));
    index.add(&wheel("wasi-only", "1.0"));
    let lock = resolve(
        &reqs(&["pkg", "hostonly; sys_platform == \"linux\""]),
        &index.config(),
    )
    .unwrap();
    assert_eq!(pinned(&lock), ["modern==1.0", "pkg==1.0", "wasi-only==1.0"]);
    let asked = index.requests();
    assert!(
        !asked
            .iter()
            .any(|p| p.contains("winonly") || p.contains("hostonly")),
        "{asked:?}"
    );
}

#[test]
fn chooses_the_newest_satisfying_version() {
    let index = Index::start();
    for version in ["1.0", "1.5", "2.0", "3.0b1"] {
        index.add(&wheel("lib", version));
    }
    let newest = resolve(&reqs(&["lib"]), &index.config()).unwrap();
    assert_eq!(
        pinned(&newest),
        ["lib==2.0"],
        "pre-releases are not chosen by default"
    );
    let bounded = resolve(&reqs(&["lib<2"]), &index.config()).unwrap();
    assert_eq!(pinned(&bounded), ["lib==1.5"]);
    let pre = resolve(&reqs(&["lib>=3.0b1"]), &index.config()).unwrap();
    assert_eq!(pinned(&pre), ["lib==3.0b1"]);
}

#[test]
fn transitive_constraints_narrow_the_choice() {
    let index = Index::start();
    index.add(&wheel("a", "1.0").requires("b<2"));
    for version in ["1.0", "1.9", "2.5"] {
        index.add(&wheel("b", version));
    }
    let lock = resolve(&reqs(&["a", "b"]), &index.config()).unwrap();
    assert_eq!(pinned(&lock), ["a==1.0", "b==1.9"]);
}

#[test]
fn skips_yanked_files() {
    let index = Index::start();
    index.add(&wheel("lib", "1.0"));
    let mut yanked = Served::wheel(&wheel("lib", "2.0"));
    yanked.yanked = true;
    index.add_file("lib", yanked);
    let lock = resolve(&reqs(&["lib"]), &index.config()).unwrap();
    assert_eq!(pinned(&lock), ["lib==1.0"]);
}

#[test]
fn reports_a_conflict_with_its_chain() {
    let index = Index::start();
    index.add(&wheel("a", "2.0").requires("b<1"));
    index.add(&wheel("a", "1.0"));
    index.add(&wheel("b", "0.5"));
    index.add(&wheel("b", "1.5"));
    let error = resolve(&reqs(&["a>=2", "b>=1"]), &index.config()).unwrap_err();
    assert!(matches!(error, DepsError::Conflict { .. }), "{error}");
    let message = error.to_string();
    assert!(message.contains("the action requires a>=2"), "{message}");
    assert!(message.contains("a 2.0 requires b<1"), "{message}");
    assert!(message.contains("the action requires b>=1"), "{message}");
    assert!(
        message.contains("no version of b satisfies both b<1 and b>=1"),
        "{message}"
    );
}

#[test]
fn refuses_a_platform_only_package_by_name() {
    let index = Index::start();
    index.add_file(
        "numpy",
        Served::raw(
            "numpy-2.0.0-cp312-cp312-manylinux_2_17_x86_64.whl",
            b"not really",
        ),
    );
    index.add_file("numpy", Served::raw("numpy-2.0.0.tar.gz", b"sdist"));
    let error = resolve(&reqs(&["numpy"]), &index.config()).unwrap_err();
    assert!(matches!(error, DepsError::NoPureWheel { .. }), "{error}");
    assert!(
        error.to_string().starts_with(
            "numpy: no pure-Python wheel (py3-none-any) is published for any matching version; \
             packages with compiled extensions cannot run in the sandbox"
        ),
        "{error}"
    );
}

#[test]
fn refuses_a_transitive_platform_only_package_by_name() {
    let index = Index::start();
    index.add(&wheel("pure", "1.0").requires("compiled"));
    index.add_file(
        "compiled",
        Served::raw("compiled-1.0-cp312-cp312-win_amd64.whl", b"x"),
    );
    let error = resolve(&reqs(&["pure"]), &index.config()).unwrap_err();
    assert!(
        error
            .to_string()
            .starts_with("compiled: no pure-Python wheel"),
        "{error}"
    );
}

/// An index where `pydantic-core` 0.0.1 is a pure-Python placeholder and the newest release,
/// 2.33.2, has compiled wheels only (seven of them) and an sdist.
fn index_with_a_compiled_newest_release() -> Index {
    let index = Index::start();
    index.add(&wheel("pydantic-core", "0.0.1"));
    for platform in [
        "manylinux_2_17_x86_64",
        "manylinux_2_17_aarch64",
        "musllinux_1_1_x86_64",
        "macosx_10_12_x86_64",
        "macosx_11_0_arm64",
        "win_amd64",
        "win32",
    ] {
        let filename = format!("pydantic_core-2.33.2-cp311-cp311-{platform}.whl");
        index.add_file("pydantic-core", Served::raw(&filename, b"compiled"));
    }
    index.add_file(
        "pydantic-core",
        Served::raw("pydantic_core-2.33.2.tar.gz", b"sdist"),
    );
    index
}

#[test]
fn refuses_a_package_whose_newest_release_is_compiled_only() {
    let index = index_with_a_compiled_newest_release();
    let error = resolve(&reqs(&["pydantic-core"]), &index.config()).unwrap_err();
    assert!(
        matches!(
            &error,
            DepsError::NewestReleaseCompiled { package, newest, wheels, fallback, .. }
                if package == "pydantic-core" && newest == "2.33.2" && wheels.len() == 7
                    && fallback == "0.0.1"
        ),
        "{error:?}"
    );
    let message = error.to_string();
    assert!(
        message.starts_with(
            "pydantic-core (required by the action): its newest release, 2.33.2, has only \
             wheels with compiled extensions (pydantic_core-2.33.2-cp311-cp311-manylinux_2_17_x86_64.whl, \
             pydantic_core-2.33.2-cp311-cp311-manylinux_2_17_aarch64.whl, "
        ),
        "{message}"
    );
    assert!(
        message.contains(
            "pydantic_core-2.33.2-cp311-cp311-macosx_11_0_arm64.whl and 2 more); only \
             pure-Python packages run in the sandbox, so pydantic-core is refused rather than \
             held back to 0.0.1"
        ),
        "{message}"
    );
    assert!(message.contains("\"pydantic-core==0.0.1\""), "{message}");
    assert!(!message.contains("win32"), "the list is capped: {message}");
}

#[test]
fn refuses_a_transitive_package_whose_newest_release_is_compiled_only() {
    let index = index_with_a_compiled_newest_release();
    index.add(&wheel("pydantic", "1.0").requires("pydantic-core>=0.0.1"));
    let error = resolve(&reqs(&["pydantic"]), &index.config()).unwrap_err();
    assert!(
        matches!(error, DepsError::NewestReleaseCompiled { .. }),
        "{error}"
    );
    assert!(
        error
            .to_string()
            .starts_with("pydantic-core (required by pydantic 1.0): its newest release, 2.33.2,"),
        "{error}"
    );
}

#[test]
fn a_constraint_excluding_the_compiled_newest_release_holds_the_package_back() {
    let index = index_with_a_compiled_newest_release();
    let lock = resolve(&reqs(&["pydantic-core<0.0.2"]), &index.config()).unwrap();
    assert_eq!(pinned(&lock), ["pydantic-core==0.0.1"]);
    assert_eq!(
        lock.held_back,
        [HeldBack {
            name: "pydantic-core".into(),
            chosen: "0.0.1".into(),
            newest: "2.33.2".into(),
            reason: "the action requires pydantic-core<0.0.2; 2.33.2, the newest release, has \
                     only wheels with compiled extensions \
                     (pydantic_core-2.33.2-cp311-cp311-manylinux_2_17_x86_64.whl, \
                     pydantic_core-2.33.2-cp311-cp311-manylinux_2_17_aarch64.whl, \
                     pydantic_core-2.33.2-cp311-cp311-musllinux_1_1_x86_64.whl, \
                     pydantic_core-2.33.2-cp311-cp311-macosx_10_12_x86_64.whl, \
                     pydantic_core-2.33.2-cp311-cp311-macosx_11_0_arm64.whl and 2 more)"
                .into(),
        }]
    );
    let json = serde_json::to_value(&lock).unwrap();
    assert_eq!(json["held_back"][0]["newest"], "2.33.2", "{json}");
}

#[test]
fn a_dependents_constraint_excluding_the_compiled_newest_release_is_enough() {
    let index = index_with_a_compiled_newest_release();
    index.add(&wheel("pinned-app", "1.0").requires("pydantic-core<1"));
    let lock = resolve(&reqs(&["pinned-app", "pydantic-core"]), &index.config()).unwrap();
    assert_eq!(pinned(&lock), ["pinned-app==1.0", "pydantic-core==0.0.1"]);
    assert_eq!(lock.held_back.len(), 1, "{:?}", lock.held_back);
    assert!(
        lock.held_back[0]
            .reason
            .starts_with("pinned-app 1.0 requires pydantic-core<1; 2.33.2, the newest release,"),
        "{:?}",
        lock.held_back
    );
}

#[test]
fn only_packages_below_their_newest_release_are_listed_as_held_back() {
    let index = Index::start();
    index.add(&wheel("app-lib", "1.0").requires("middle>=1"));
    index.add(&wheel("middle", "1.2"));
    for version in ["1.0", "1.5", "2.0", "3.0b1"] {
        index.add(&wheel("lib", version));
    }
    let newest = resolve(&reqs(&["app-lib", "lib"]), &index.config()).unwrap();
    assert_eq!(pinned(&newest), ["app-lib==1.0", "lib==2.0", "middle==1.2"]);
    assert!(newest.held_back.is_empty(), "{:?}", newest.held_back);
    let pre = resolve(&reqs(&["lib>=3.0b1"]), &index.config()).unwrap();
    assert!(
        pre.held_back.is_empty(),
        "a pre-release above the newest release"
    );
    let bounded = resolve(&reqs(&["app-lib", "lib<2"]), &index.config()).unwrap();
    assert_eq!(
        bounded.held_back,
        [HeldBack {
            name: "lib".into(),
            chosen: "1.5".into(),
            newest: "2.0".into(),
            reason: "the action requires lib<2".into(),
        }]
    );
}

#[test]
fn a_newest_release_for_another_python_holds_back_without_refusing() {
    let index = Index::start();
    index.add(&wheel("lib", "2.0").requires_python(">=3.13"));
    index.add(&wheel("lib", "1.0"));
    let lock = resolve(&reqs(&["lib"]), &index.config_for(PY312)).unwrap();
    assert_eq!(pinned(&lock), ["lib==1.0"]);
    assert_eq!(
        lock.held_back[0].reason,
        "2.0, the newest release, requires Python \">=3.13\", which excludes CPython 3.12.0"
    );
}

#[test]
fn refuses_an_sdist_only_package_by_name() {
    let index = Index::start();
    index.add_file("sdonly", Served::raw("sdonly-1.0.tar.gz", b"sdist"));
    let error = resolve(&reqs(&["sdonly"]), &index.config()).unwrap_err();
    assert!(matches!(error, DepsError::SdistOnly { .. }), "{error}");
    assert!(
        error.to_string().starts_with(
            "sdonly: only source distributions are published; Vivarium installs wheels only"
        ),
        "{error}"
    );
}

#[test]
fn refuses_a_pyproject_whose_requires_python_excludes_3_12() {
    let index = Index::start();
    index.add(&wheel("six", "1.0"));
    let text = "[project]\nname = \"x\"\nrequires-python = \">=3.13\"\ndependencies = [\"six\"]\n";
    let requirements = requirements_from_pyproject(text).unwrap();
    let error = resolve(&requirements, &index.config_for(PY312)).unwrap_err();
    assert!(
        matches!(
            error,
            DepsError::ProjectRequiresPython { python: PY312, .. }
        ),
        "{error}"
    );
    assert!(error.to_string().contains(">=3.13"), "{error}");
    assert!(error.to_string().contains("CPython 3.12.0"), "{error}");
    assert!(
        index.requests().is_empty(),
        "refused before asking the index"
    );
}

#[test]
fn a_pyproject_requiring_3_13_resolves_for_3_13_only() {
    let index = Index::start();
    index.add(&wheel("six", "1.0"));
    let text = "[project]\nname = \"x\"\nrequires-python = \">=3.13\"\ndependencies = [\"six\"]\n";
    let requirements = requirements_from_pyproject(text).unwrap();
    let lock = resolve(&requirements, &index.config_for(PY313)).unwrap();
    assert_eq!(pinned(&lock), ["six==1.0"]);
    assert_eq!(lock.python, PY313);
    assert_eq!(index.config().python, PY313, "3.13 is the default");
    let error = resolve(&requirements, &index.config_for(PY312)).unwrap_err();
    assert!(
        matches!(error, DepsError::ProjectRequiresPython { .. }),
        "{error}"
    );
    let cache = Cache::new();
    let error = resolve_cached(&requirements, cache.path(), &index.config_for(PY312)).unwrap_err();
    assert!(
        matches!(error, DepsError::ProjectRequiresPython { .. }),
        "{error}"
    );
    let lock = resolve_cached(&requirements, cache.path(), &index.config_for(PY313)).unwrap();
    assert_eq!(pinned(&lock), ["six==1.0"]);
}

#[test]
fn lock_for_action_checks_requires_python_even_without_dependencies() {
    let action = tempfile::tempdir().unwrap();
    let cache = Cache::new();
    std::fs::write(
        action.path().join("pyproject.toml"),
        "[project]\nname = \"x\"\nrequires-python = \"<3.13\"\n",
    )
    .unwrap();
    let config = DepsConfig {
        index_url: closed_port_url(),
        ..DepsConfig::default()
    };
    let error = lock_for_action(action.path(), cache.path(), &config).unwrap_err();
    assert!(
        matches!(
            error,
            DepsError::ProjectRequiresPython { python: PY313, .. }
        ),
        "{error}"
    );
    let on_3_12 = DepsConfig {
        python: PY312,
        ..config
    };
    assert_eq!(
        lock_for_action(action.path(), cache.path(), &on_3_12).unwrap(),
        None
    );
}

#[test]
fn refuses_a_package_whose_requires_python_excludes_3_12() {
    let index = Index::start();
    index.add(&wheel("future-only", "1.0").requires_python(">=3.13"));
    let error = resolve(&reqs(&["future-only"]), &index.config_for(PY312)).unwrap_err();
    assert!(
        matches!(
            error,
            DepsError::PackageRequiresPython { python: PY312, .. }
        ),
        "{error}"
    );
    assert!(error.to_string().contains("future-only"), "{error}");
    assert!(error.to_string().contains(">=3.13"), "{error}");
    let lock = resolve(&reqs(&["future-only"]), &index.config_for(PY313)).unwrap();
    assert_eq!(pinned(&lock), ["future-only==1.0"]);
}

#[test]
fn refuses_a_package_whose_requires_python_excludes_3_13() {
    let index = Index::start();
    index.add(&wheel("past-only", "1.0").requires_python("<3.13"));
    let error = resolve(&reqs(&["past-only"]), &index.config()).unwrap_err();
    assert!(
        matches!(
            error,
            DepsError::PackageRequiresPython { python: PY313, .. }
        ),
        "{error}"
    );
    assert!(error.to_string().contains("CPython 3.13.5"), "{error}");
    let lock = resolve(&reqs(&["past-only"]), &index.config_for(PY312)).unwrap();
    assert_eq!(pinned(&lock), ["past-only==1.0"]);
}

#[test]
fn falls_back_to_an_older_version_that_supports_3_12() {
    let index = Index::start();
    index.add(&wheel("lib", "2.0").requires_python(">=3.13"));
    index.add(&wheel("lib", "1.0").requires_python(">=3.8"));
    let lock = resolve(&reqs(&["lib"]), &index.config_for(PY312)).unwrap();
    assert_eq!(pinned(&lock), ["lib==1.0"]);
    let lock = resolve(&reqs(&["lib"]), &index.config_for(PY313)).unwrap();
    assert_eq!(pinned(&lock), ["lib==2.0"]);
}

#[test]
fn markers_follow_the_target_python() {
    let index = Index::start();
    index.add(
        &wheel("pkg", "1.0")
            .requires("backport; python_version < \"3.13\"")
            .requires("modern; python_full_version >= \"3.13.5\"")
            .requires("exact; implementation_version == \"3.12.0\""),
    );
    index.add(&wheel("backport", "1.0"));
    index.add(&wheel("modern", "1.0"));
    index.add(&wheel("exact", "1.0"));
    let on_3_12 = resolve(&reqs(&["pkg"]), &index.config_for(PY312)).unwrap();
    assert_eq!(
        pinned(&on_3_12),
        ["backport==1.0", "exact==1.0", "pkg==1.0"]
    );
    assert_eq!(on_3_12.python, PY312);
    let on_3_13 = resolve(&reqs(&["pkg"]), &index.config_for(PY313)).unwrap();
    assert_eq!(pinned(&on_3_13), ["modern==1.0", "pkg==1.0"]);
    assert_eq!(on_3_13.python, PY313);
    let root = reqs(&["backport; python_version < \"3.13\""]);
    assert_eq!(
        pinned(&resolve(&root, &index.config_for(PY312)).unwrap()),
        ["backport==1.0"]
    );
    assert!(resolve(&root, &index.config_for(PY313)).unwrap().is_empty());
}

#[test]
fn version_specific_wheels_follow_the_target_python() {
    let index = Index::start();
    index.add(&wheel("tagged", "2.0").tag("py313-none-any"));
    index.add(&wheel("tagged", "1.0").tag("cp312-none-any"));
    let on_3_13 = resolve(&reqs(&["tagged"]), &index.config_for(PY313)).unwrap();
    assert_eq!(on_3_13.packages[0].wheel, "tagged-2.0-py313-none-any.whl");
    let on_3_12 = resolve(&reqs(&["tagged"]), &index.config_for(PY312)).unwrap();
    assert_eq!(on_3_12.packages[0].wheel, "tagged-1.0-cp312-none-any.whl");
}

#[test]
fn the_targets_get_their_own_cached_lock_and_layer() {
    let index = Index::start();
    index.add(&wheel("six", "1.0"));
    let cache = Cache::new();
    let six = reqs(&["six"]);
    let on_3_13 = resolve_cached(&six, cache.path(), &index.config_for(PY313)).unwrap();
    let requests = index.requests().len();
    let on_3_12 = resolve_cached(&six, cache.path(), &index.config_for(PY312)).unwrap();
    assert!(
        index.requests().len() > requests,
        "the other target resolves afresh"
    );
    assert_eq!(on_3_13.python, PY313);
    assert_eq!(on_3_12.python, PY312);
    assert_eq!(on_3_13.packages, on_3_12.packages);
    assert_ne!(on_3_13.digest(), on_3_12.digest());
    let requests = index.requests().len();
    for (python, expected) in [(PY313, &on_3_13), (PY312, &on_3_12)] {
        let again = resolve_cached(&six, cache.path(), &index.config_for(python)).unwrap();
        assert_eq!(&again, expected);
    }
    assert_eq!(
        index.requests().len(),
        requests,
        "each target's lock is reused"
    );
    let locks = std::fs::read_dir(cache.path().join("locks"))
        .unwrap()
        .count();
    assert_eq!(locks, 2);
}

#[test]
fn reads_pep503_html_when_the_index_has_no_json() {
    let index = Index::start();
    index.set_html_only(true);
    index.add(&wheel("a", "1.0").requires("b").requires_python(">=3.8"));
    index.add(&wheel("b", "1.0"));
    index.add(&wheel("old", "1.0").requires_python("<3"));
    let lock = resolve(&reqs(&["a"]), &index.config()).unwrap();
    assert_eq!(pinned(&lock), ["a==1.0", "b==1.0"]);
    assert_eq!(index.json_pages(), 0);
    assert!(index.html_pages() >= 2);
    assert_eq!(
        index.wheel_downloads(),
        0,
        "PEP 658 metadata is read from the HTML too"
    );
    let error = resolve(&reqs(&["old"]), &index.config()).unwrap_err();
    assert!(
        matches!(error, DepsError::PackageRequiresPython { .. }),
        "{error}"
    );
}

#[test]
fn names_a_missing_package() {
    let index = Index::start();
    index.add(&wheel("a", "1.0").requires("ghost>=1"));
    let error = resolve(&reqs(&["a"]), &index.config()).unwrap_err();
    assert!(
        matches!(error, DepsError::PackageNotFound { .. }),
        "{error}"
    );
    let message = error.to_string();
    assert!(message.starts_with("ghost: not found"), "{message}");
    assert!(message.contains("required by a 1.0"), "{message}");
}

#[test]
fn names_a_specifier_that_matches_nothing() {
    let index = Index::start();
    index.add(&wheel("lib", "1.0"));
    index.add(&wheel("lib", "1.1"));
    let error = resolve(&reqs(&["lib>=9"]), &index.config()).unwrap_err();
    assert!(
        matches!(error, DepsError::NoMatchingVersion { .. }),
        "{error}"
    );
    let message = error.to_string();
    assert!(
        message.contains("lib: no version matches \">=9\""),
        "{message}"
    );
    assert!(message.contains("1.1, 1.0"), "{message}");
}

#[test]
fn refuses_a_metadata_file_whose_hash_differs() {
    let index = Index::start();
    let mut served = Served::wheel(&wheel("lib", "1.0"));
    served.metadata = None;
    served.announced_sha256 = Some("0".repeat(64));
    index.add_file("lib", served);
    let error = resolve(&reqs(&["lib"]), &index.config()).unwrap_err();
    assert!(matches!(error, DepsError::HashMismatch { .. }), "{error}");
    assert!(
        error.to_string().contains("lib-1.0-py3-none-any.whl"),
        "{error}"
    );
}

#[test]
fn enforces_the_package_limit_when_resolving() {
    let index = Index::start();
    index.add(&wheel("a", "1.0").requires("b"));
    index.add(&wheel("b", "1.0"));
    let config = DepsConfig {
        max_packages: 1,
        ..index.config()
    };
    let error = resolve(&reqs(&["a"]), &config).unwrap_err();
    assert!(
        matches!(error, DepsError::TooManyPackages { count: 2, limit: 1 }),
        "{error}"
    );
}

#[test]
fn empty_requirements_need_no_index() {
    let config = DepsConfig {
        index_url: closed_port_url(),
        ..DepsConfig::default()
    };
    let lock = resolve(&Requirements::default(), &config).unwrap();
    assert!(lock.packages.is_empty());
}

#[test]
fn an_unreachable_index_without_wheelhouse_is_a_download_error() {
    let config = DepsConfig {
        index_url: closed_port_url(),
        ..DepsConfig::default()
    };
    let error = resolve(&reqs(&["six"]), &config).unwrap_err();
    assert!(matches!(error, DepsError::Download { .. }), "{error}");
}

#[test]
fn a_silent_index_times_out() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    // Accept connections and never answer; the thread ends with the test process.
    std::thread::spawn(move || {
        let held: Vec<_> = listener.incoming().take(4).collect();
        std::thread::sleep(std::time::Duration::from_secs(10));
        drop(held);
    });
    let config = DepsConfig {
        index_url: format!("http://127.0.0.1:{port}/simple"),
        download_timeout: std::time::Duration::from_secs(1),
        ..DepsConfig::default()
    };
    let error = resolve(&reqs(&["six"]), &config).unwrap_err();
    assert!(
        matches!(error, DepsError::Timeout { seconds: 1, .. }),
        "{error}"
    );
    assert!(
        error.to_string().contains("did not finish within 1 s"),
        "{error}"
    );
}

#[test]
fn an_unreadable_index_page_is_reported() {
    let index = Index::start();
    index.add(&wheel("lib", "1.0"));
    index.set_broken_json(true);
    let error = resolve(&reqs(&["lib"]), &index.config()).unwrap_err();
    assert!(matches!(error, DepsError::BadIndexPage { .. }), "{error}");
    assert!(error.to_string().contains("/simple/lib/"), "{error}");
}

/// numpy on `index` as the package index has it: compiled wheels only.
fn serve_compiled_numpy(index: &Index) {
    index.add_file(
        "numpy",
        Served::raw("numpy-2.4.6-cp313-cp313-manylinux_2_17_x86_64.whl", b"x"),
    );
}

/// A config for `index` whose runtime provides numpy 2.4.6 built in.
fn with_numpy(index: &Index) -> DepsConfig {
    DepsConfig {
        provided: vec![ProvidedPackage {
            name: "numpy".into(),
            version: "2.4.6".into(),
        }],
        ..index.config()
    }
}

#[test]
fn a_provided_package_resolves_to_the_runtimes_version_without_the_index() {
    let index = Index::start();
    serve_compiled_numpy(&index);
    index.add(&wheel("stats-helper", "1.0").requires("NumPy>=2"));
    let lock = resolve(&reqs(&["numpy>=2.0", "stats-helper"]), &with_numpy(&index)).unwrap();
    assert_eq!(pinned(&lock), ["stats-helper==1.0"]);
    assert_eq!(
        lock.provided,
        [ProvidedPackage {
            name: "numpy".into(),
            version: "2.4.6".into()
        }]
    );
    assert!(
        !index.requests().iter().any(|path| path.contains("numpy")),
        "numpy is never looked up: {:?}",
        index.requests()
    );
}

#[test]
fn a_requirement_the_provided_version_does_not_satisfy_is_refused_naming_it() {
    let index = Index::start();
    let refused = resolve(&reqs(&["numpy<2"]), &with_numpy(&index)).unwrap_err();
    assert!(
        matches!(refused, DepsError::ProvidedVersionExcluded { .. }),
        "{refused:?}"
    );
    let message = refused.to_string();
    assert!(
        message.starts_with(
            "numpy: the runtime provides numpy 2.4.6 built in, which does not satisfy \"<2\""
        ),
        "{message}"
    );
}

#[test]
fn a_dependency_excluding_the_provided_version_is_a_conflict() {
    let index = Index::start();
    index.add(&wheel("old-helper", "1.0").requires("numpy<2"));
    let refused = resolve(&reqs(&["old-helper"]), &with_numpy(&index)).unwrap_err();
    let message = refused.to_string();
    assert!(message.contains("numpy"), "{message}");
    assert!(message.contains("2.4.6"), "{message}");
}

#[test]
fn without_it_provided_numpy_is_refused_as_compiled() {
    let index = Index::start();
    serve_compiled_numpy(&index);
    let refused = resolve(&reqs(&["numpy"]), &index.config()).unwrap_err();
    assert!(refused.to_string().contains("compiled"), "{refused}");
}
