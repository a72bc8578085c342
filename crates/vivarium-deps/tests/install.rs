//! Installing locks as layers: layout, read-only files, reuse, concurrency, limits, hash and
//! safety refusals, and the offline wheelhouse path.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Barrier};

use common::{Cache, Index, Served, closed_port_url, layer_entries, tree, wheel};
use vivarium_deps::{
    DepsConfig, DepsError, Lock, Requirements, TargetPython, install, layer_path, resolve,
    resolve_cached,
};

fn reqs(lines: &[&str]) -> Requirements {
    Requirements::parse(lines).unwrap()
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// Asserts that the layers folder holds nothing at all (no layer, no staging folder).
fn assert_nothing_installed(cache: &Cache) {
    assert_eq!(layer_entries(cache.path()), Vec::<String>::new());
}

fn demo_index() -> Index {
    let index = Index::start();
    index.add(
        &wheel("demo-app", "1.0")
            .requires("helper>=1")
            .file(
                "demo_app/core.py",
                b"from helper.greet import greet\nVALUE = greet()\n",
            )
            .file("demo_app-1.0.data/purelib/demo_extra.py", b"EXTRA = True\n")
            .file("demo_app-1.0.data/scripts/demo", b"#!python\nprint('hi')\n")
            .file("demo_app-1.0.data/headers/demo.h", b"int x;\n"),
    );
    index.add(
        &wheel("helper", "1.2").file("helper/greet.py", b"def greet():\n    return 'hello'\n"),
    );
    index
}

#[test]
fn installs_a_read_only_layer_laid_out_for_sys_path() {
    let index = demo_index();
    let cache = Cache::new();
    let config = index.config();
    let lock = resolve(&reqs(&["demo-app"]), &config).unwrap();
    let layer = install(&lock, cache.path(), &config).unwrap();
    assert_eq!(layer, cache.path().join("layers").join(lock.digest()));
    assert_eq!(layer, layer_path(&lock, cache.path()));
    assert_eq!(
        tree(&layer),
        [
            "demo_app-1.0.dist-info/",
            "demo_app-1.0.dist-info/METADATA",
            "demo_app-1.0.dist-info/RECORD",
            "demo_app-1.0.dist-info/WHEEL",
            "demo_app/",
            "demo_app/__init__.py",
            "demo_app/core.py",
            "demo_extra.py",
            "helper-1.2.dist-info/",
            "helper-1.2.dist-info/METADATA",
            "helper-1.2.dist-info/RECORD",
            "helper-1.2.dist-info/WHEEL",
            "helper/",
            "helper/__init__.py",
            "helper/greet.py",
        ]
    );
    assert_eq!(mode(&layer), 0o555);
    assert_eq!(mode(&layer.join("demo_app")), 0o555);
    assert_eq!(mode(&layer.join("demo_app/core.py")), 0o444);
    assert_eq!(mode(&layer.join("helper-1.2.dist-info/METADATA")), 0o444);
    assert!(
        !tree(&layer)
            .iter()
            .any(|p| p.ends_with(".pyc") || p.contains("__pycache__"))
    );
    assert_eq!(layer_entries(cache.path()), [lock.digest()]);
}

/// Imports the installed packages with a real Python when the host has one (`python3`), the
/// way the sandbox will: isolated, no site, no bytecode, the layer on sys.path.
#[test]
fn the_layer_is_importable_by_python() {
    let index = demo_index();
    let cache = Cache::new();
    let config = index.config();
    let lock = resolve(&reqs(&["demo-app"]), &config).unwrap();
    let layer = install(&lock, cache.path(), &config).unwrap();
    let script = "import sys; sys.path.insert(0, sys.argv[1]); \
                  import demo_app.core, demo_extra; \
                  from importlib.metadata import version; \
                  print(demo_app.core.VALUE, demo_extra.EXTRA, version('helper'), version('demo-app'))";
    let output = Command::new("python3")
        .args(["-I", "-S", "-B", "-c", script])
        .arg(&layer)
        .output()
        .unwrap_or_else(|error| {
            panic!(
                "this test imports the layer with python3, which is missing ({error}); \
                 install it (Debian: apt-get install -y python3; the interpreter build needs it too)"
            )
        });
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(stdout.trim(), "hello True 1.2 1.0");
    assert!(!tree(&layer).iter().any(|p| p.contains("__pycache__")));
}

#[test]
fn reuses_an_installed_layer_without_downloading() {
    let index = demo_index();
    let cache = Cache::new();
    let config = index.config();
    let lock = resolve(&reqs(&["demo-app"]), &config).unwrap();
    let first = install(&lock, cache.path(), &config).unwrap();
    let downloads = index.wheel_downloads();
    assert_eq!(downloads, 2);
    let requests = index.requests().len();
    let second = install(&lock, cache.path(), &config).unwrap();
    assert_eq!(first, second);
    assert_eq!(
        index.requests().len(),
        requests,
        "no request at all the second time"
    );
}

#[test]
fn the_same_set_resolves_once_per_source() {
    let index = demo_index();
    let cache = Cache::new();
    let config = index.config();
    let first = resolve_cached(&reqs(&["demo-app"]), cache.path(), &config).unwrap();
    let requests = index.requests().len();
    assert!(requests > 0);
    let again = resolve_cached(&reqs(&["demo-app"]), cache.path(), &config).unwrap();
    assert_eq!(again, first);
    assert_eq!(
        index.requests().len(),
        requests,
        "the second resolution asked nothing"
    );
    let other = index.config();
    let elsewhere = DepsConfig {
        index_url: format!("{}/", other.index_url.trim_end_matches('/')),
        ..other
    };
    resolve_cached(&reqs(&["demo-app"]), cache.path(), &elsewhere).unwrap();
    assert!(
        index.requests().len() > requests,
        "another source resolves afresh"
    );
}

#[test]
fn a_new_layer_reuses_cached_wheels() {
    let index = demo_index();
    index.add(&wheel("extra-lib", "1.0"));
    let cache = Cache::new();
    let config = index.config();
    let small = resolve(&reqs(&["helper"]), &config).unwrap();
    install(&small, cache.path(), &config).unwrap();
    assert_eq!(index.wheel_downloads(), 1);
    let big = resolve(&reqs(&["helper", "extra-lib"]), &config).unwrap();
    install(&big, cache.path(), &config).unwrap();
    assert_eq!(
        index.wheel_downloads(),
        2,
        "helper came from the wheel cache"
    );
}

#[test]
fn concurrent_installs_of_one_lock_make_one_layer() {
    let index = demo_index();
    let cache = Cache::new();
    let config = index.config();
    let lock = resolve(&reqs(&["demo-app"]), &config).unwrap();
    let threads = 6;
    let barrier = Arc::new(Barrier::new(threads));
    let handles: Vec<_> = (0..threads)
        .map(|_| {
            let (lock, config, barrier) = (lock.clone(), config.clone(), Arc::clone(&barrier));
            let root = cache.path().to_path_buf();
            std::thread::spawn(move || {
                barrier.wait();
                install(&lock, &root, &config)
            })
        })
        .collect();
    let paths: Vec<_> = handles
        .into_iter()
        .map(|h| h.join().unwrap().unwrap())
        .collect();
    assert!(paths.iter().all(|p| *p == paths[0]));
    assert_eq!(
        layer_entries(cache.path()),
        [lock.digest()],
        "no staging folder is left"
    );
    assert!(tree(&paths[0]).contains(&"helper/greet.py".to_string()));
}

#[test]
fn refuses_a_wheel_whose_hash_differs_and_installs_nothing() {
    let index = Index::start();
    index.add(&wheel("good", "1.0"));
    let mut served = Served::wheel(&wheel("tampered", "1.0"));
    served.announced_sha256 = Some(common::sha256_hex(b"what the publisher uploaded"));
    index.add_file("tampered", served);
    let cache = Cache::new();
    let config = index.config();
    let lock = resolve(&reqs(&["good", "tampered"]), &config).unwrap();
    let error = install(&lock, cache.path(), &config).unwrap_err();
    assert!(matches!(error, DepsError::HashMismatch { .. }), "{error}");
    assert!(
        error.to_string().contains("tampered-1.0-py3-none-any.whl"),
        "{error}"
    );
    assert!(
        error.to_string().contains("nothing was installed"),
        "{error}"
    );
    assert_nothing_installed(&cache);
}

#[test]
fn refuses_a_lock_whose_hash_differs_from_the_wheel() {
    let index = demo_index();
    let cache = Cache::new();
    let config = index.config();
    let mut lock = resolve(&reqs(&["helper"]), &config).unwrap();
    lock.packages[0].sha256 = "a".repeat(64);
    let error = install(&lock, cache.path(), &config).unwrap_err();
    assert!(matches!(error, DepsError::HashMismatch { .. }), "{error}");
    assert_nothing_installed(&cache);
}

#[test]
fn refuses_a_wheel_whose_record_does_not_match() {
    let index = Index::start();
    index.add(&wheel("liar", "1.0").with_bad_record());
    let cache = Cache::new();
    let config = index.config();
    let lock = resolve(&reqs(&["liar"]), &config).unwrap();
    let error = install(&lock, cache.path(), &config).unwrap_err();
    assert!(matches!(error, DepsError::BadWheel { .. }), "{error}");
    assert!(error.to_string().contains("RECORD"), "{error}");
    assert_nothing_installed(&cache);
}

#[test]
fn refuses_unsafe_wheel_entries() {
    let cases = [
        (
            "dotdot",
            wheel("dotdot", "1.0").file("../escaped.py", b"x = 1\n"),
            "`..`",
        ),
        (
            "nested",
            wheel("nested", "1.0").file("nested/../../escaped.py", b"x\n"),
            "`..`",
        ),
        (
            "absolute",
            wheel("absolute", "1.0").file("/tmp/escaped.py", b"x\n"),
            "absolute",
        ),
        (
            "backslash",
            wheel("backslash", "1.0").file("..\\escaped.py", b"x\n"),
            "backslash",
        ),
        (
            "linked",
            wheel("linked", "1.0").symlink("linked/passwd", "/etc/passwd"),
            "symbolic link",
        ),
    ];
    for (name, bad, reason) in cases {
        let index = Index::start();
        index.add(&bad);
        let cache = Cache::new();
        let config = index.config();
        let lock = resolve(&reqs(&[name]), &config).unwrap();
        let error = install(&lock, cache.path(), &config).unwrap_err();
        assert!(
            matches!(error, DepsError::UnsafeWheel { .. }),
            "{name}: {error}"
        );
        assert!(error.to_string().contains(reason), "{name}: {error}");
        assert_nothing_installed(&cache);
        assert!(!cache.path().join("escaped.py").exists());
        assert!(!cache.path().parent().unwrap().join("escaped.py").exists());
    }
}

#[test]
fn enforces_the_layer_size_limit() {
    let index = Index::start();
    index.add(&wheel("big", "1.0").file("big/data.txt", &vec![b'x'; 64 * 1024]));
    let cache = Cache::new();
    let config = DepsConfig {
        max_layer_bytes: 16 * 1024,
        ..index.config()
    };
    let lock = resolve(&reqs(&["big"]), &config).unwrap();
    let error = install(&lock, cache.path(), &config).unwrap_err();
    assert!(
        matches!(error, DepsError::LayerTooLarge { limit: 16384, .. }),
        "{error}"
    );
    assert!(error.to_string().contains("big"), "{error}");
    assert_nothing_installed(&cache);
}

#[test]
fn enforces_the_package_limit_when_installing() {
    let index = demo_index();
    let cache = Cache::new();
    let lock = resolve(&reqs(&["demo-app"]), &index.config()).unwrap();
    let config = DepsConfig {
        max_packages: 1,
        ..index.config()
    };
    let error = install(&lock, cache.path(), &config).unwrap_err();
    assert!(
        matches!(error, DepsError::TooManyPackages { count: 2, limit: 1 }),
        "{error}"
    );
    assert_nothing_installed(&cache);
}

#[test]
fn works_offline_from_the_wheelhouse() {
    let wheelhouse = tempfile::tempdir().unwrap();
    let wheels = [
        wheel("local-app", "1.0").requires("local-dep>=2"),
        wheel("local-dep", "2.0"),
        wheel("local-dep", "2.1").requires_python(">=3.14"),
        wheel("local-dep", "1.0"),
    ];
    for w in &wheels {
        std::fs::write(wheelhouse.path().join(w.filename()), w.build()).unwrap();
    }
    std::fs::write(wheelhouse.path().join("local_dep-3.0.tar.gz"), b"sdist").unwrap();
    let config = DepsConfig {
        index_url: closed_port_url(),
        wheelhouse: Some(wheelhouse.path().to_path_buf()),
        ..DepsConfig::default()
    };
    let lock = resolve(&reqs(&["local-app"]), &config).unwrap();
    let pinned: Vec<String> = lock
        .packages
        .iter()
        .map(|p| format!("{}=={}", p.name, p.version))
        .collect();
    assert_eq!(
        pinned,
        ["local-app==1.0", "local-dep==2.0"],
        "2.1 needs Python 3.14"
    );
    assert_eq!(
        lock.packages[1].sha256,
        common::sha256_hex(&wheels[1].build()),
        "the hash is computed from the wheelhouse file"
    );
    let cache = Cache::new();
    let layer = install(&lock, cache.path(), &config).unwrap();
    assert!(layer.join("local_dep/__init__.py").is_file());
    assert!(layer.join("local_app-1.0.dist-info/METADATA").is_file());
}

#[test]
fn the_wheelhouse_is_checked_before_the_index() {
    let index = Index::start();
    index.add(&wheel("remote-only", "1.0"));
    let shared = wheel("shared", "1.0");
    index.add(&shared);
    let wheelhouse = tempfile::tempdir().unwrap();
    std::fs::write(wheelhouse.path().join(shared.filename()), shared.build()).unwrap();
    let config = DepsConfig {
        wheelhouse: Some(wheelhouse.path().to_path_buf()),
        ..index.config()
    };
    let lock = resolve(&reqs(&["shared", "remote-only"]), &config).unwrap();
    let cache = Cache::new();
    install(&lock, cache.path(), &config).unwrap();
    let downloads: Vec<String> = index
        .requests()
        .into_iter()
        .filter(|p| p.ends_with(".whl"))
        .collect();
    assert_eq!(downloads, ["/files/remote_only-1.0-py3-none-any.whl"]);
}

#[test]
fn refuses_a_forged_lock() {
    let cache = Cache::new();
    let config = DepsConfig {
        index_url: closed_port_url(),
        ..DepsConfig::default()
    };
    let forged = [
        ("../evil", "evil-1.0-py3-none-any.whl"),
        ("numpy", "numpy-2.0-cp312-cp312-manylinux_2_17_x86_64.whl"),
        ("six", "../six-1.0-py3-none-any.whl"),
    ];
    for (name, wheel) in forged {
        let lock = Lock::new(vec![vivarium_deps::LockedPackage {
            name: name.into(),
            version: "1.0".into(),
            wheel: wheel.into(),
            sha256: "0".repeat(64),
        }]);
        let error = install(&lock, cache.path(), &config).unwrap_err();
        assert!(
            matches!(error, DepsError::BadLock { .. }),
            "{name}: {error}"
        );
    }
    assert_nothing_installed(&cache);
}

#[test]
fn each_target_python_gets_its_own_layer() {
    let index = demo_index();
    let cache = Cache::new();
    let on_3_13 = index.config_for(TargetPython::CPYTHON_3_13);
    let on_3_12 = index.config_for(TargetPython::CPYTHON_3_12);
    let lock_3_13 = resolve(&reqs(&["demo-app"]), &on_3_13).unwrap();
    let lock_3_12 = resolve(&reqs(&["demo-app"]), &on_3_12).unwrap();
    assert_eq!(lock_3_13.packages, lock_3_12.packages);
    let layer_3_13 = install(&lock_3_13, cache.path(), &on_3_13).unwrap();
    // The lock says which Python it is for; the config's target does not matter to install.
    let layer_3_12 = install(&lock_3_12, cache.path(), &on_3_13).unwrap();
    assert_ne!(layer_3_13, layer_3_12);
    assert_eq!(layer_3_12, layer_path(&lock_3_12, cache.path()));
    assert_eq!(tree(&layer_3_13), tree(&layer_3_12));
    assert_eq!(
        index.wheel_downloads(),
        2,
        "the second layer reuses cached wheels"
    );
}

#[test]
fn a_lock_is_checked_against_the_python_it_names() {
    let index = Index::start();
    let tagged = wheel("tagged", "1.0").tag("py313-none-any");
    index.add(&tagged);
    let cache = Cache::new();
    let config = index.config_for(TargetPython::CPYTHON_3_13);
    let lock = resolve(&reqs(&["tagged"]), &config).unwrap();
    assert_eq!(lock.packages[0].wheel, tagged.filename());
    let layer = install(&lock, cache.path(), &config).unwrap();
    assert!(layer.join("tagged/__init__.py").is_file());
    let for_3_12 = Lock::for_python(TargetPython::CPYTHON_3_12, lock.packages.clone());
    let error = install(&for_3_12, cache.path(), &config).unwrap_err();
    assert!(matches!(error, DepsError::BadLock { .. }), "{error}");
    assert!(error.to_string().contains("Python 3.12.0"), "{error}");
}

#[test]
fn an_empty_lock_installs_an_empty_layer() {
    let cache = Cache::new();
    let layer = install(&Lock::default(), cache.path(), &DepsConfig::default()).unwrap();
    assert!(layer.is_dir());
    assert!(tree(&layer).is_empty());
}

#[test]
fn removes_staging_folders_left_by_crashed_installs() {
    let index = demo_index();
    let cache = Cache::new();
    let layers = cache.path().join("layers");
    let stale = layers.join(".staging-crashed");
    let fresh = layers.join(".staging-running");
    for dir in [&stale, &fresh] {
        std::fs::create_dir_all(dir.join("pkg")).unwrap();
        std::fs::write(dir.join("pkg/__init__.py"), b"").unwrap();
    }
    std::fs::set_permissions(stale.join("pkg"), std::fs::Permissions::from_mode(0o555)).unwrap();
    let two_days_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(2 * 86400);
    std::fs::File::open(&stale)
        .unwrap()
        .set_modified(two_days_ago)
        .unwrap();
    let config = index.config();
    let lock = resolve(&reqs(&["helper"]), &config).unwrap();
    install(&lock, cache.path(), &config).unwrap();
    assert_eq!(
        layer_entries(cache.path()),
        [".staging-running".to_string(), lock.digest()]
    );
}
