//! Against the real public index (pypi.org's Simple API and files.pythonhosted.org). Reported
//! as ignored unless built with `VIVARIUM_TEST_PUBLIC_INDEX=1`, so that `cargo test` passes
//! offline (`--ignored` runs them anyway):
//!
//! ```sh
//! VIVARIUM_TEST_PUBLIC_INDEX=1 cargo test -p vivarium-deps --test public_index
//! ```

mod common;

use std::process::Command;

use common::Cache;
use vivarium_deps::{DepsConfig, DepsError, Requirements, install, resolve};

#[test]
#[cfg_attr(
    not(vivarium_public_index),
    ignore = "set VIVARIUM_TEST_PUBLIC_INDEX=1"
)]
fn resolves_and_installs_popular_pure_packages() {
    let config = DepsConfig::default();
    let requirements = Requirements::parse([
        "python-dateutil",
        "six",
        "tabulate",
        "jmespath==1.0.1",
        "attrs",
        "idna",
    ])
    .unwrap();
    let lock = resolve(&requirements, &config).unwrap();
    let names: Vec<&str> = lock.packages.iter().map(|p| p.name.as_str()).collect();
    for wanted in [
        "attrs",
        "idna",
        "jmespath",
        "python-dateutil",
        "six",
        "tabulate",
    ] {
        assert!(names.contains(&wanted), "{wanted} missing from {names:?}");
    }
    for package in &lock.packages {
        assert!(package.wheel.ends_with("-none-any.whl"), "{package:?}");
        assert!(package.wheel.contains("py3"), "{package:?}");
        assert_eq!(package.sha256.len(), 64);
    }
    let jmespath = lock.packages.iter().find(|p| p.name == "jmespath").unwrap();
    assert_eq!(jmespath.version, "1.0.1");

    let cache = Cache::new();
    let layer = install(&lock, cache.path(), &config).unwrap();
    for path in [
        "dateutil/__init__.py",
        "six.py",
        "jmespath/__init__.py",
        "attr/__init__.py",
        "idna/__init__.py",
    ] {
        assert!(layer.join(path).is_file(), "{path} missing from the layer");
    }
    let again = install(&lock, cache.path(), &config).unwrap();
    assert_eq!(layer, again);

    let script = "import sys; sys.path.insert(0, sys.argv[1]); \
                  import dateutil.parser, six, tabulate, jmespath, attrs, idna; \
                  print(jmespath.search('a.b', {'a': {'b': 7}}))";
    if let Ok(output) = Command::new("python3")
        .args(["-I", "-S", "-B", "-c", script])
        .arg(&layer)
        .output()
    {
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        assert_eq!(String::from_utf8_lossy(&output.stdout).trim(), "7");
    }
}

#[test]
#[cfg_attr(
    not(vivarium_public_index),
    ignore = "set VIVARIUM_TEST_PUBLIC_INDEX=1"
)]
fn refuses_numpy_by_name() {
    let requirements = Requirements::parse(["numpy"]).unwrap();
    let error = resolve(&requirements, &DepsConfig::default()).unwrap_err();
    assert!(matches!(error, DepsError::NoPureWheel { .. }), "{error}");
    assert!(
        error
            .to_string()
            .starts_with("numpy: no pure-Python wheel (py3-none-any) is published"),
        "{error}"
    );
}
