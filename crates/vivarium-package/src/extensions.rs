//! Compiled extension modules (`.so`, `.pyd`, `.dylib`, versioned forms such as `libx.so.1`):
//! CPython on WASI cannot load native code, so an archive shipping any is refused up front,
//! naming the files and the packages they came with, rather than failing at import time.

use std::collections::BTreeSet;

use crate::{DEPENDENCIES_DIR, PackageError};

/// File-name suffixes of native code, compared without regard to ASCII case.
const NATIVE_SUFFIXES: [&str; 3] = ["so", "pyd", "dylib"];

/// A file of an archive: its name as written (for messages) and its path's components
/// relative to the action root.
pub(crate) struct ArchiveFile<'a> {
    /// The name as written in the archive.
    pub name: &'a str,
    /// The path relative to the action root; never empty.
    pub components: &'a [String],
}

/// Refuses an archive holding compiled extension files, naming them (in archive order) and
/// their packages (sorted, without duplicates).
pub(crate) fn check<'a>(
    files: impl IntoIterator<Item = ArchiveFile<'a>>,
) -> Result<(), PackageError> {
    let compiled: Vec<ArchiveFile<'a>> = files
        .into_iter()
        .filter(|file| file.components.last().is_some_and(|name| is_native(name)))
        .collect();
    if compiled.is_empty() {
        return Ok(());
    }
    let packages: BTreeSet<String> = compiled.iter().map(|f| package_of(f.components)).collect();
    Err(PackageError::CompiledExtensions {
        files: compiled.iter().map(|f| f.name.to_owned()).collect(),
        packages: packages.into_iter().collect(),
    })
}

/// Whether a file name is that of native code: after its first `.`-separated part, one part is
/// a native suffix and only version numbers follow it (`x.so`, `m.cpython-311-x86_64-linux-gnu.so`,
/// `libx.so.1.2`, but not `so`, `x.sonnet` or `x.so.bak`).
fn is_native(name: &str) -> bool {
    let parts: Vec<&str> = name.split('.').collect();
    parts.iter().enumerate().skip(1).any(|(at, part)| {
        NATIVE_SUFFIXES.iter().any(|s| part.eq_ignore_ascii_case(s))
            && parts[at + 1..]
                .iter()
                .all(|rest| !rest.is_empty() && rest.bytes().all(|b| b.is_ascii_digit()))
    })
}

/// The package a file belongs to, from its path relative to the action root: under
/// `dependencies/`, the folder there (`numpy`, `numpy.libs` and `numpy-2.0.data` all give
/// `numpy`) or, for a module directly in it, the module's name; elsewhere, the top-level folder,
/// or the module's name for a file at the root.
fn package_of(components: &[String]) -> String {
    match components {
        [top, folder, _, ..] if top == DEPENDENCIES_DIR => distribution_of(folder),
        [top, file] if top == DEPENDENCIES_DIR => module_of(file),
        [file] => module_of(file),
        [top, ..] => distribution_of(top),
        [] => String::new(),
    }
}

/// `numpy.libs` → `numpy`; `foo-1.0.data` or `foo-1.0.dist-info` → `foo`; other names as is.
fn distribution_of(folder: &str) -> String {
    if let Some(stem) = folder.strip_suffix(".libs") {
        return stem.to_owned();
    }
    [".data", ".dist-info"]
        .iter()
        .find_map(|suffix| folder.strip_suffix(suffix))
        .and_then(|stem| stem.split('-').next())
        .filter(|name| !name.is_empty())
        .unwrap_or(folder)
        .to_owned()
}

/// The importable name of a module file: what precedes its first `.` (the whole name if that is
/// empty).
fn module_of(file: &str) -> String {
    file.split('.')
        .next()
        .filter(|stem| !stem.is_empty())
        .unwrap_or(file)
        .to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::zip_of;
    use crate::{PackageLimits, inspect_zip};

    fn inspect(entries: &[(&str, &[u8])]) -> Result<crate::Manifest, PackageError> {
        inspect_zip(&zip_of(entries), &PackageLimits::default())
    }

    fn parts(path: &str) -> Vec<String> {
        path.split('/').map(str::to_owned).collect()
    }

    #[test]
    fn native_names_are_recognised() {
        for name in [
            "x.so",
            "X.SO",
            "_core.cpython-311-x86_64-linux-gnu.so",
            "speedups.pyd",
            "_ssl.cp311-win_amd64.pyd",
            "libfoo.dylib",
            "libx.so.1",
            "libgfortran.so.5.0.0",
        ] {
            assert!(is_native(name), "{name}");
        }
        for name in [
            "so",
            "x.sonnet",
            "pyd",
            "x.so.bak",
            "x.so.",
            "so.py",
            "dylib.txt",
            "x.py",
            "notes.so-called.txt",
        ] {
            assert!(!is_native(name), "{name}");
        }
    }

    #[test]
    fn packages_are_named_by_folder_or_module() {
        for (path, package) in [
            ("dependencies/numpy/_core/_multiarray.so", "numpy"),
            ("dependencies/numpy.libs/libopenblas.so.0", "numpy"),
            ("dependencies/PyYAML-6.0.data/purelib/_yaml.so", "PyYAML"),
            (
                "dependencies/_cffi_backend.cpython-311-x86_64-linux-gnu.so",
                "_cffi_backend",
            ),
            ("speedups.pyd", "speedups"),
            ("lib/fast/ext.so", "lib"),
        ] {
            assert_eq!(package_of(&parts(path)), package, "{path}");
        }
    }

    #[test]
    fn a_so_under_dependencies_is_refused_naming_file_and_package() {
        let error = inspect(&[
            ("main.py", b"import numpy\n"),
            ("dependencies/numpy/__init__.py", b""),
            (
                "dependencies/numpy/_core/_multiarray_umath.cpython-311-x86_64-linux-gnu.so",
                b"\x7fELF",
            ),
        ])
        .unwrap_err();
        assert!(
            matches!(
                &error,
                PackageError::CompiledExtensions { files, packages }
                    if files == &["dependencies/numpy/_core/_multiarray_umath.cpython-311-x86_64-linux-gnu.so"]
                        && packages == &["numpy"]
            ),
            "{error:?}"
        );
        let message = error.to_string();
        assert!(
            message.starts_with(
                "the archive holds compiled extension modules, which cannot load in the sandbox \
                 (only pure-Python packages run there): \
                 dependencies/numpy/_core/_multiarray_umath.cpython-311-x86_64-linux-gnu.so \
                 (packages: numpy); "
            ),
            "{message}"
        );
        assert!(message.contains("pyproject.toml"), "{message}");
    }

    #[test]
    fn a_pyd_at_the_root_folder_is_refused() {
        let error = inspect(&[
            ("action/main.py", b"import speedups\n"),
            ("action/speedups.pyd", b"MZ"),
        ])
        .unwrap_err();
        assert!(
            matches!(
                &error,
                PackageError::CompiledExtensions { files, packages }
                    if files == &["action/speedups.pyd"] && packages == &["speedups"]
            ),
            "{error:?}"
        );
    }

    #[test]
    fn extraction_refuses_them_before_writing_anything() {
        let cache = crate::testutil::Cache::new();
        let bytes = zip_of(&[("main.py", b""), ("dependencies/yaml/_yaml.so", b"\x7fELF")]);
        let error =
            crate::extract_zip(&bytes, cache.path(), &PackageLimits::default()).unwrap_err();
        assert!(
            matches!(&error, PackageError::CompiledExtensions { packages, .. } if packages == &["yaml"]),
            "{error:?}"
        );
        assert!(!cache.path().join(crate::ACTIONS_DIR).exists());
    }

    #[test]
    fn a_versioned_so_is_refused() {
        let error = inspect(&[
            ("main.py", b""),
            ("dependencies/scipy.libs/libgfortran.so.5", b"\x7fELF"),
        ])
        .unwrap_err();
        assert!(
            matches!(
                &error,
                PackageError::CompiledExtensions { files, packages }
                    if files == &["dependencies/scipy.libs/libgfortran.so.5"] && packages == &["scipy"]
            ),
            "{error:?}"
        );
    }

    #[test]
    fn names_that_merely_contain_so_are_accepted() {
        let manifest = inspect(&[
            ("main.py", b""),
            ("so", b"a file called so"),
            ("data/x.sonnet", b"shall I compare thee"),
            ("dependencies/so/__init__.py", b""),
            ("dependencies/lib.so/", b""),
        ])
        .unwrap();
        assert_eq!(
            manifest.files,
            [
                "data/x.sonnet",
                "dependencies/so/__init__.py",
                "main.py",
                "so"
            ]
        );
    }

    #[test]
    fn many_files_are_listed_up_to_a_cap_with_every_package() {
        let names: Vec<String> = (0..12)
            .map(|i| format!("dependencies/pkg{}/m{i}.so", i % 3))
            .collect();
        let mut entries: Vec<(&str, &[u8])> = vec![("main.py", b"")];
        entries.extend(names.iter().map(|n| (n.as_str(), &b"\x7fELF"[..])));
        entries.push(("lib/native.dylib", b"\xcf\xfa\xed\xfe"));
        let error = inspect(&entries).unwrap_err();
        let PackageError::CompiledExtensions { files, packages } = &error else {
            panic!("{error:?}");
        };
        assert_eq!(files.len(), 13);
        assert_eq!(packages, &["lib", "pkg0", "pkg1", "pkg2"]);
        let message = error.to_string();
        assert!(
            message.contains("dependencies/pkg0/m0.so, dependencies/pkg1/m1.so"),
            "{message}"
        );
        assert!(
            message.contains("dependencies/pkg0/m9.so and 3 more"),
            "{message}"
        );
        assert!(!message.contains("m10.so"), "{message}");
        assert!(
            message.contains("(packages: lib, pkg0, pkg1, pkg2)"),
            "{message}"
        );
    }
}
