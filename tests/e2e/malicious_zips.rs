//! Hostile ZIP archives given to the real binary: each is refused with exit status 4 and a
//! message naming the problem, before any Python runs and without writing outside the cache.

use std::io::Write;
use std::path::Path;

use crate::common::CACHE_DIR;
use crate::common::cli::{Outcome, run_on};
use crate::common::files::write_named;
use crate::common::zips::{IDENTITY_MAIN, zip_entries};
use serde_json::json;
use zip::CompressionMethod;
use zip::write::SimpleFileOptions;

/// Exit status of a refused package.
const BAD_PACKAGE: i32 = 4;

const MAIN: &[u8] = IDENTITY_MAIN.as_bytes();

/// Runs the binary on `bytes` saved as `name`.
fn run_zip_named(name: &str, bytes: &[u8]) -> Outcome {
    let (_dir, path) = write_named(name, bytes);
    run_on(&path, &json!([{"message": "hi"}]), &[])
}

/// Runs the binary on `bytes` saved as `action.zip`.
fn run_zip(bytes: &[u8]) -> Outcome {
    run_zip_named("action.zip", bytes)
}

/// Asserts a refusal: status 4, nothing on stdout, a one-line `error:` message with `needle`.
#[track_caller]
fn assert_refused(outcome: &Outcome, needle: &str) {
    outcome.assert_failure(BAD_PACKAGE, needle);
    assert!(
        outcome.stderr.starts_with("error: "),
        "a package refusal is reported before any call{}",
        outcome.dump()
    );
    assert!(
        !outcome.stderr.contains("Traceback"),
        "no Python ran{}",
        outcome.dump()
    );
}

/// A stored ZIP with a valid main.py plus `entries`.
fn zip_with_main(entries: &[(&str, &[u8])], method: CompressionMethod) -> Vec<u8> {
    let mut all: Vec<(&str, &[u8])> = vec![("main.py", MAIN)];
    all.extend_from_slice(entries);
    zip_entries(&all, method)
}

/// Offsets of the local and central headers whose file name is `name`.
fn header_offsets(bytes: &[u8], name: &str) -> (Vec<usize>, Vec<usize>) {
    let name = name.as_bytes();
    let u16_at = |at: usize| usize::from(u16::from_le_bytes([bytes[at], bytes[at + 1]]));
    let mut local = Vec::new();
    let mut central = Vec::new();
    for at in 0..bytes.len().saturating_sub(46) {
        match &bytes[at..at + 4] {
            b"PK\x03\x04" => {
                let len = u16_at(at + 26);
                if bytes.get(at + 30..at + 30 + len) == Some(name) {
                    local.push(at);
                }
            }
            b"PK\x01\x02" => {
                let len = u16_at(at + 28);
                if bytes.get(at + 46..at + 46 + len) == Some(name) {
                    central.push(at);
                }
            }
            _ => {}
        }
    }
    (local, central)
}

/// The offsets of the one local and one central header of `name`.
#[track_caller]
fn one_entry(bytes: &[u8], name: &str) -> (usize, usize) {
    let (local, central) = header_offsets(bytes, name);
    assert_eq!(
        (local.len(), central.len()),
        (1, 1),
        "expected one local and one central header for {name}"
    );
    (local[0], central[0])
}

/// Lists the names of everything under `dir`, recursively.
fn names_under(dir: &Path) -> Vec<String> {
    let mut names = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return names;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        names.push(entry.file_name().to_string_lossy().into_owned());
        if path.is_dir() && !path.is_symlink() {
            names.extend(names_under(&path));
        }
    }
    names
}

/// Asserts no file named `name` exists anywhere in the shared cache.
#[track_caller]
fn assert_not_in_cache(name: &str) {
    assert!(
        !names_under(Path::new(CACHE_DIR)).iter().any(|n| n == name),
        "{name} was written into the cache"
    );
}

#[test]
fn a_text_file_named_zip_is_refused() {
    let outcome = run_zip_named("x.zip", b"this is just text, not an archive\n");
    assert_refused(&outcome, "is not a ZIP archive");
    outcome.assert_stderr_contains("x.zip");
}

#[test]
fn an_empty_file_is_refused() {
    let outcome = run_zip_named("empty.zip", b"");
    outcome.assert_code(BAD_PACKAGE);
    assert!(outcome.stdout.is_empty(), "{}", outcome.dump());
}

#[test]
fn a_damaged_zip_is_refused() {
    // The ZIP signature followed by garbage: starts like a ZIP, has no central directory.
    let mut bytes = b"PK\x03\x04".to_vec();
    bytes.extend(std::iter::repeat_n(0xA5u8, 2000));
    assert_refused(&run_zip(&bytes), "damaged");
}

#[test]
fn an_absolute_path_is_refused() {
    let name = "/tmp/vivarium-e2e-absolute-9f2c.py";
    let bytes = zip_with_main(&[(name, b"x = 1\n")], CompressionMethod::Stored);
    assert_refused(&run_zip(&bytes), "has an absolute path");
    assert!(!Path::new(name).exists(), "{name} was written");
}

#[test]
fn a_parent_traversal_is_refused() {
    let bytes = zip_with_main(
        &[
            ("../escaped-e2e-4b7d.py", b"x = 1\n"),
            ("lib/../../../escaped-e2e-4b7d-deep.py", b"x = 2\n"),
        ],
        CompressionMethod::Deflated,
    );
    let outcome = run_zip(&bytes);
    assert_refused(&outcome, "contains a `..` component");
    outcome.assert_stderr_contains("escaped-e2e-4b7d");
    assert_not_in_cache("escaped-e2e-4b7d.py");
    assert_not_in_cache("escaped-e2e-4b7d-deep.py");
}

#[test]
fn a_backslash_path_is_refused() {
    let bytes = zip_with_main(
        &[("lib\\..\\evil.py", b"x = 1\n")],
        CompressionMethod::Stored,
    );
    assert_refused(&run_zip(&bytes), "contains a backslash");
}

#[test]
fn a_drive_letter_path_is_refused() {
    let bytes = zip_with_main(
        &[("C:/Windows/evil.py", b"x = 1\n")],
        CompressionMethod::Stored,
    );
    assert_refused(&run_zip(&bytes), "starts with a drive letter");
}

#[test]
fn a_symlink_entry_is_refused() {
    let mut writer = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let options = SimpleFileOptions::default().compression_method(CompressionMethod::Stored);
    writer.start_file("main.py", options).unwrap();
    writer.write_all(MAIN).unwrap();
    writer
        .add_symlink("passwd.txt", "/etc/passwd", options)
        .unwrap();
    let bytes = writer.finish().unwrap().into_inner();
    let outcome = run_zip(&bytes);
    assert_refused(&outcome, "is a symbolic link");
    outcome.assert_stderr_contains("passwd.txt");
}

#[test]
fn a_symlink_made_with_unix_mode_bits_is_refused() {
    // main.py itself marked as a symbolic link (S_IFLNK in the unix mode of the central header's
    // external attributes), its content the link target. `unix_permissions` keeps only the
    // permission bits, so the mode is patched in.
    let mut bytes = zip_entries(
        &[("helper.py", b"x = 1\n"), ("main.py", b"/etc/passwd")],
        CompressionMethod::Stored,
    );
    let (_, central) = one_entry(&bytes, "main.py");
    bytes[central + 5] = 3; // version made by: Unix
    let attributes = 0o120777u32 << 16;
    bytes[central + 38..central + 42].copy_from_slice(&attributes.to_le_bytes());
    let outcome = run_zip(&bytes);
    assert_refused(&outcome, "is a symbolic link");
    outcome.assert_stderr_contains("main.py");
}

#[test]
fn duplicate_names_are_refused() {
    // The zip writer refuses duplicates, so write two names of equal length and patch one.
    let mut bytes = zip_with_main(
        &[("util.py", b"A = 1\n"), ("utilXpy", b"A = 2\n")],
        CompressionMethod::Stored,
    );
    let (local, central) = one_entry(&bytes, "utilXpy");
    bytes[local + 30..local + 37].copy_from_slice(b"util.py");
    bytes[central + 46..central + 53].copy_from_slice(b"util.py");
    let outcome = run_zip(&bytes);
    assert_refused(&outcome, "more than once");
    outcome.assert_stderr_contains("util.py");
}

#[test]
fn names_differing_only_in_case_are_refused() {
    let bytes = zip_with_main(
        &[("Util.py", b"A = 1\n"), ("util.py", b"A = 2\n")],
        CompressionMethod::Stored,
    );
    assert_refused(&run_zip(&bytes), "differ only in letter case");
}

#[test]
fn an_encrypted_entry_is_refused() {
    let mut bytes = zip_with_main(&[("secret.py", b"KEY = 42\n")], CompressionMethod::Stored);
    let (local, central) = one_entry(&bytes, "secret.py");
    bytes[local + 6] |= 1; // general-purpose flag, bit 0: encrypted
    bytes[central + 8] |= 1;
    let outcome = run_zip(&bytes);
    assert_refused(&outcome, "is encrypted");
    outcome.assert_stderr_contains("secret.py");
}

#[test]
fn an_unsupported_compression_method_is_refused() {
    let mut bytes = zip_with_main(&[("packed.py", b"X = 1\n")], CompressionMethod::Stored);
    let (local, central) = one_entry(&bytes, "packed.py");
    bytes[local + 8..local + 10].copy_from_slice(&12u16.to_le_bytes()); // 12 = bzip2
    bytes[central + 10..central + 12].copy_from_slice(&12u16.to_le_bytes());
    let outcome = run_zip(&bytes);
    assert_refused(
        &outcome,
        "compression method; only Stored and Deflated are supported",
    );
    outcome.assert_stderr_contains("packed.py");
}

#[test]
fn a_zip_bomb_over_the_size_limit_is_refused() {
    let zeros = vec![0u8; 60 * 1024 * 1024];
    let bytes = zip_with_main(&[("bomb.bin", &zeros)], CompressionMethod::Deflated);
    assert!(bytes.len() < 1024 * 1024, "the bomb compresses well");
    let outcome = run_zip(&bytes);
    outcome.assert_failure(BAD_PACKAGE, "entry `bomb.bin`");
    assert!(
        outcome.stderr.contains("zip-bomb") || outcome.stderr.contains("per-file limit"),
        "{}",
        outcome.dump()
    );
    assert_not_in_cache("bomb.bin");
}

#[test]
fn a_zip_bomb_under_the_size_limit_but_over_the_ratio_is_refused() {
    let zeros = vec![0u8; 8 * 1024 * 1024];
    let bytes = zip_with_main(&[("ratio.bin", &zeros)], CompressionMethod::Deflated);
    let outcome = run_zip(&bytes);
    assert_refused(&outcome, "a zip-bomb pattern");
    outcome.assert_stderr_contains("ratio.bin");
}

#[test]
fn a_zip_bomb_that_lies_about_its_size_is_refused() {
    // 8 MiB of zeros whose headers claim 100 bytes: only the decompressed bytes tell the truth.
    let zeros = vec![0u8; 8 * 1024 * 1024];
    let mut bytes = zip_with_main(&[("liar.bin", &zeros)], CompressionMethod::Deflated);
    let (local, central) = one_entry(&bytes, "liar.bin");
    bytes[local + 22..local + 26].copy_from_slice(&100u32.to_le_bytes());
    bytes[central + 24..central + 28].copy_from_slice(&100u32.to_le_bytes());
    let outcome = run_zip(&bytes);
    outcome.assert_failure(BAD_PACKAGE, "entry `liar.bin`");
    assert_not_in_cache("liar.bin");
}

#[test]
fn a_corrupt_entry_is_refused() {
    let mut bytes = zip_with_main(
        &[("data.txt", b"some honest content\n")],
        CompressionMethod::Stored,
    );
    let (local, _) = one_entry(&bytes, "data.txt");
    let data = local + 30 + "data.txt".len(); // no extra field in a stored entry
    bytes[data] ^= 0xFF; // the CRC no longer matches
    let outcome = run_zip(&bytes);
    assert_refused(&outcome, "is corrupt");
    outcome.assert_stderr_contains("data.txt");
}

#[test]
fn too_many_entries_are_refused() {
    let mut writer = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let options = SimpleFileOptions::default().compression_method(CompressionMethod::Stored);
    writer.start_file("main.py", options).unwrap();
    writer.write_all(MAIN).unwrap();
    for i in 0..10_001 {
        writer
            .start_file(format!("many/{i:05}.txt"), options)
            .unwrap();
    }
    let bytes = writer.finish().unwrap().into_inner();
    assert_refused(&run_zip(&bytes), "more than the limit of 10000");
}

#[test]
fn an_archive_over_the_size_limit_is_refused() {
    // The file is refused on its size alone (50 MiB limit), before it is parsed.
    let mut bytes = b"PK\x03\x04".to_vec();
    bytes.resize(51 * 1024 * 1024, 0);
    assert_refused(&run_zip(&bytes), "more than the limit of 52428800 bytes");
}

#[test]
fn an_archive_without_main_py_is_refused() {
    let bytes = zip_entries(
        &[("helper.py", b"x = 1\n"), ("README.md", b"# no main\n")],
        CompressionMethod::Deflated,
    );
    assert_refused(
        &run_zip(&bytes),
        "has no main.py at its root or inside a single top-level folder",
    );
}

#[test]
fn main_py_two_folders_deep_is_not_found() {
    let bytes = zip_entries(
        &[("outer/inner/main.py", MAIN)],
        CompressionMethod::Deflated,
    );
    assert_refused(&run_zip(&bytes), "has no main.py");
}

#[test]
fn main_py_in_one_of_two_top_level_folders_is_not_found() {
    let bytes = zip_entries(
        &[("first/main.py", MAIN), ("second/helper.py", b"x = 1\n")],
        CompressionMethod::Deflated,
    );
    assert_refused(&run_zip(&bytes), "has no main.py");
}

#[test]
fn a_compiled_extension_is_refused() {
    let bytes = zip_with_main(
        &[
            ("dependencies/numpy/__init__.py", b""),
            (
                "dependencies/numpy/_core/_multiarray_umath.cpython-311-x86_64-linux-gnu.so",
                b"\x7fELF",
            ),
        ],
        CompressionMethod::Deflated,
    );
    let outcome = run_zip(&bytes);
    assert_refused(
        &outcome,
        "the archive holds compiled extension modules, which cannot load in the sandbox",
    );
    outcome.assert_stderr_contains("(packages: numpy)");
    outcome.assert_stderr_contains("the snapshot runtime (the default) provides numpy built in");
    assert_not_in_cache("_multiarray_umath.cpython-311-x86_64-linux-gnu.so");
}

#[test]
fn a_clean_archive_built_the_same_way_is_accepted() {
    // The control for every refusal above: the same helpers with nothing hostile work.
    let bytes = zip_with_main(&[("util.py", b"A = 1\n")], CompressionMethod::Stored);
    let outcome = run_zip(&bytes);
    assert_eq!(outcome.success_json(), json!([{"message": "hi"}]));
}
