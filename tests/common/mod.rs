//! Helpers shared by the end-to-end tests: they drive the real `vivarium` binary.
//!
//! Every invocation uses one shared cache folder under `CARGO_TARGET_TMPDIR`, so the interpreter
//! is downloaded and compiled once for the whole suite (the binary locks around both, so tests
//! running in parallel may hit a cold cache safely).

// Each test binary uses a different subset of these helpers.
#![allow(dead_code)]

pub mod server;
pub mod wheels;

use std::ffi::OsStr;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;
use tempfile::TempDir;
use zip::write::SimpleFileOptions;

/// The cache folder every test shares. Never delete or modify it from a test.
pub const CACHE_DIR: &str = concat!(env!("CARGO_TARGET_TMPDIR"), "/vivarium-cache");

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_vivarium");

/// Longest a single invocation may take before the test kills it and fails. Generous: the first
/// invocation of the suite may download the interpreter and compile it.
const WATCHDOG: Duration = Duration::from_secs(300);

/// The fixtures folder of the workspace.
pub fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures")
}

/// The seed action folder.
pub fn uppercase_distinct() -> PathBuf {
    fixtures().join("actions").join("uppercase_distinct")
}

/// The seed records file.
pub fn k8s_logs() -> PathBuf {
    fixtures().join("records").join("k8s_logs.json")
}

/// One prepared invocation of the binary.
pub struct Invocation {
    command: Command,
    stdin: Vec<u8>,
    description: String,
}

/// Starts an invocation of `vivarium` with the shared cache.
pub fn vivarium() -> Invocation {
    ensure_shared_runtime();
    vivarium_with_cache(Path::new(CACHE_DIR))
}

/// Makes sure the shared cache holds the interpreter the tests run (the pre-initialized one
/// built from source, unless `VIVARIUM_RUNTIME=pinned`), before any test's watchdog starts:
/// on a fresh machine the first test binary builds it (about ten minutes), the others wait on
/// the build's lock. Once per test process.
pub fn ensure_shared_runtime() {
    static READY: std::sync::Once = std::sync::Once::new();
    READY.call_once(|| {
        if std::env::var("VIVARIUM_RUNTIME").is_ok_and(|runtime| runtime.trim() == "pinned") {
            return;
        }
        let output = Command::new(BIN)
            .args(["runtime", "build"])
            .env("VIVARIUM_CACHE_DIR", CACHE_DIR)
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("cannot start {BIN}: {e}"));
        assert!(
            output.status.success(),
            "`vivarium runtime build` failed:\n{}\n{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    });
}

/// Starts an invocation of `vivarium` with a cache of the caller's choice.
pub fn vivarium_with_cache(cache: &Path) -> Invocation {
    let mut command = Command::new(BIN);
    command
        .env("VIVARIUM_CACHE_DIR", cache)
        .env_remove("RUST_LOG")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    Invocation {
        command,
        stdin: Vec::new(),
        description: "vivarium".into(),
    }
}

impl Invocation {
    /// Adds one argument.
    pub fn arg(mut self, arg: impl AsRef<OsStr>) -> Self {
        self.description
            .push_str(&format!(" {}", arg.as_ref().to_string_lossy()));
        self.command.arg(arg);
        self
    }

    /// Adds several arguments.
    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        for arg in args {
            self = self.arg(arg);
        }
        self
    }

    /// Sets an environment variable of the `vivarium` process itself (not of the action).
    pub fn host_env(mut self, key: &str, value: &str) -> Self {
        self.command.env(key, value);
        self
    }

    /// Feeds these bytes on standard input.
    pub fn stdin(mut self, bytes: impl Into<Vec<u8>>) -> Self {
        self.stdin = bytes.into();
        self
    }

    /// Runs the binary to completion (killing it after a generous watchdog delay).
    pub fn output(mut self) -> Outcome {
        let started = Instant::now();
        let mut child = self
            .command
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {BIN}: {e}"));
        let mut stdin = child.stdin.take().expect("stdin is piped");
        let input = std::mem::take(&mut self.stdin);
        // The binary may exit without reading its input: a broken pipe is fine.
        let writer = thread::spawn(move || {
            let _ = stdin.write_all(&input);
        });
        let stdout = drain(child.stdout.take().expect("stdout is piped"));
        let stderr = drain(child.stderr.take().expect("stderr is piped"));
        let status = loop {
            if let Some(status) = child.try_wait().expect("waiting for vivarium") {
                break status;
            }
            if started.elapsed() > WATCHDOG {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "`{}` still ran after {WATCHDOG:?}; killed it",
                    self.description
                );
            }
            thread::sleep(Duration::from_millis(10));
        };
        let elapsed = started.elapsed();
        let _ = writer.join();
        let stdout = stdout.join().expect("stdout reader");
        let stderr = stderr.join().expect("stderr reader");
        Outcome {
            code: status.code(),
            stdout: String::from_utf8_lossy(&stdout).into_owned(),
            stderr: String::from_utf8_lossy(&stderr).into_owned(),
            elapsed,
            description: self.description,
        }
    }
}

fn drain(mut source: impl Read + Send + 'static) -> thread::JoinHandle<Vec<u8>> {
    thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = source.read_to_end(&mut bytes);
        bytes
    })
}

/// What one invocation produced.
#[derive(Debug)]
pub struct Outcome {
    /// The exit status (`None` when killed by a signal).
    pub code: Option<i32>,
    /// Standard output, decoded lossily.
    pub stdout: String,
    /// Standard error, decoded lossily.
    pub stderr: String,
    /// Wall-clock time of the invocation.
    pub elapsed: Duration,
    /// The command line, for failure messages.
    pub description: String,
}

impl Outcome {
    /// A dump of everything, to append to assertion messages.
    pub fn dump(&self) -> String {
        const MAX: usize = 4000;
        let clip = |text: &str| -> String {
            if text.len() <= MAX {
                text.to_string()
            } else {
                let mut end = MAX;
                while !text.is_char_boundary(end) {
                    end -= 1;
                }
                format!("{}... [{} more bytes]", &text[..end], text.len() - end)
            }
        };
        format!(
            "\n--- command: {}\n--- exit: {:?} after {:?}\n--- stdout:\n{}\n--- stderr:\n{}\n---",
            self.description,
            self.code,
            self.elapsed,
            clip(&self.stdout),
            clip(&self.stderr)
        )
    }

    /// Asserts the exit status.
    #[track_caller]
    pub fn assert_code(&self, expected: i32) -> &Self {
        assert_eq!(
            self.code,
            Some(expected),
            "unexpected exit status{}",
            self.dump()
        );
        self
    }

    /// Asserts a successful run and returns its result document.
    #[track_caller]
    pub fn success_json(&self) -> Value {
        self.assert_code(0);
        self.stdout_json()
    }

    /// Parses standard output as JSON.
    #[track_caller]
    pub fn stdout_json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON: {e}{}", self.dump()))
    }

    /// Asserts a failed run: the status, an empty stdout, and `needle` in stderr.
    #[track_caller]
    pub fn assert_failure(&self, expected: i32, needle: &str) -> &Self {
        self.assert_code(expected);
        assert!(
            self.stdout.is_empty(),
            "stdout must be empty on failure{}",
            self.dump()
        );
        self.assert_stderr_contains(needle)
    }

    /// Asserts that stderr contains `needle`.
    #[track_caller]
    pub fn assert_stderr_contains(&self, needle: &str) -> &Self {
        assert!(
            self.stderr.contains(needle),
            "stderr lacks {needle:?}{}",
            self.dump()
        );
        self
    }

    /// The non-empty lines of stderr.
    pub fn stderr_lines(&self) -> Vec<&str> {
        self.stderr
            .lines()
            .filter(|l| !l.trim().is_empty())
            .collect()
    }

    /// Every stderr line parsed as JSON (for `--json-logs`); panics on a line that is not.
    #[track_caller]
    pub fn stderr_json_lines(&self) -> Vec<Value> {
        self.stderr_lines()
            .into_iter()
            .map(|line| {
                serde_json::from_str(line).unwrap_or_else(|e| {
                    panic!("stderr line {line:?} is not JSON: {e}{}", self.dump())
                })
            })
            .collect()
    }
}

/// Runs `action` on the records in `input` with extra arguments.
pub fn run(action: &Path, input: &Path, extra: &[&str]) -> Outcome {
    vivarium()
        .arg("run")
        .arg(action)
        .arg("--input")
        .arg(input)
        .args(extra)
        .output()
}

/// Runs `action` on `records` (written to a temporary file) with extra arguments.
pub fn run_on(action: &Path, records: &Value, extra: &[&str]) -> Outcome {
    let input = write_json(records);
    run(action, input.path(), extra)
}

/// Writes a JSON document to a temporary file.
pub fn write_json(value: &Value) -> tempfile::NamedTempFile {
    write_bytes(value.to_string().as_bytes())
}

/// Writes bytes to a temporary file.
pub fn write_bytes(bytes: &[u8]) -> tempfile::NamedTempFile {
    let mut file = tempfile::NamedTempFile::new().expect("temporary file");
    file.write_all(bytes).expect("writing a temporary file");
    file.flush().expect("flushing a temporary file");
    file
}

/// Writes bytes to `name` inside a fresh temporary folder (for names that matter, like x.zip).
pub fn write_named(name: &str, bytes: &[u8]) -> (TempDir, PathBuf) {
    let dir = TempDir::new().expect("temporary folder");
    let path = dir.path().join(name);
    std::fs::write(&path, bytes).expect("writing a temporary file");
    (dir, path)
}

/// Writes a one-off action folder: `(relative path, contents)` pairs, parents created.
pub fn write_action(files: &[(&str, &str)]) -> TempDir {
    let dir = TempDir::new().expect("temporary folder");
    for (name, contents) in files {
        let path = dir.path().join(name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).expect("creating a folder");
        }
        std::fs::write(&path, contents).expect("writing an action file");
    }
    dir
}

/// Writes an action whose `main.py` is `source` and runs it on `records` with extra arguments.
pub fn run_source(source: &str, records: &Value, extra: &[&str]) -> Outcome {
    let action = write_action(&[("main.py", source)]);
    run_on(action.path(), records, extra)
}

/// Builds a ZIP (deflated) of every file under `dir`, with names under `prefix/` when given.
/// Folder entries are written too, as zip tools do.
pub fn zip_dir(dir: &Path, prefix: Option<&str>) -> Vec<u8> {
    let mut files = Vec::new();
    collect(dir, dir, &mut files);
    files.sort();
    let mut writer = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let options = SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated)
        .unix_permissions(0o644);
    let name = |relative: &str| match prefix {
        Some(prefix) => format!("{prefix}/{relative}"),
        None => relative.to_string(),
    };
    if let Some(prefix) = prefix {
        writer
            .add_directory(format!("{prefix}/"), options)
            .expect("adding a folder entry");
    }
    for (relative, is_dir) in files {
        if is_dir {
            writer
                .add_directory(format!("{}/", name(&relative)), options)
                .expect("adding a folder entry");
        } else {
            writer
                .start_file(name(&relative), options)
                .expect("starting a ZIP entry");
            let bytes = std::fs::read(dir.join(&relative)).expect("reading an action file");
            writer.write_all(&bytes).expect("writing a ZIP entry");
        }
    }
    writer.finish().expect("finishing the ZIP").into_inner()
}

fn collect(root: &Path, dir: &Path, out: &mut Vec<(String, bool)>) {
    for entry in std::fs::read_dir(dir).expect("listing a folder") {
        let path = entry.expect("listing a folder").path();
        let relative = path
            .strip_prefix(root)
            .expect("under the root")
            .components()
            .map(|c| c.as_os_str().to_string_lossy().into_owned())
            .collect::<Vec<_>>()
            .join("/");
        if path.is_dir() {
            out.push((relative, true));
            collect(root, &path, out);
        } else {
            out.push((relative, false));
        }
    }
}

/// Builds a ZIP from in-memory `(name, contents)` pairs, stored or deflated as asked.
pub fn zip_entries(entries: &[(&str, &[u8])], method: zip::CompressionMethod) -> Vec<u8> {
    let mut writer = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let options = SimpleFileOptions::default()
        .compression_method(method)
        .unix_permissions(0o644);
    for (name, contents) in entries {
        writer
            .start_file(*name, options)
            .expect("starting a ZIP entry");
        writer.write_all(contents).expect("writing a ZIP entry");
    }
    writer.finish().expect("finishing the ZIP").into_inner()
}

/// A minimal valid `main.py`.
pub const IDENTITY_MAIN: &str = "def main(data, logger):\n    return data\n";

/// Makes sure the shared cache holds the interpreter and its compiled module (a trivial run).
pub fn warm_shared_cache() {
    let action = write_action(&[("main.py", IDENTITY_MAIN)]);
    let outcome = run_on(
        action.path(),
        &serde_json::json!([{"warm": true}]),
        &["--runtime", "pinned"],
    );
    assert_eq!(
        outcome.success_json(),
        serde_json::json!([{"warm": true}]),
        "warming the shared cache failed{}",
        outcome.dump()
    );
}

/// Files of the shared cache's sub-folder `sub` whose names end with one of `suffixes`.
pub fn shared_cache_files(sub: &str, suffixes: &[&str]) -> Vec<PathBuf> {
    let dir = Path::new(CACHE_DIR).join(sub);
    let mut found: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("listing {}: {e}", dir.display()))
        .map(|entry| entry.expect("listing the cache").path())
        .filter(|path| {
            let name = path.file_name().unwrap_or_default().to_string_lossy();
            !name.starts_with('.') && suffixes.iter().any(|s| name.ends_with(s))
        })
        .collect();
    found.sort();
    found
}

/// The interpreter installed in the shared cache (warm it first).
pub fn shared_interpreter() -> PathBuf {
    let found = shared_cache_files("runtime", &[".wasm"]);
    assert_eq!(
        found.len(),
        1,
        "one interpreter in the shared cache: {found:?}"
    );
    found.into_iter().next().unwrap()
}

/// A private cache folder (under the target's temporary folder) holding a copy of the shared
/// cache's interpreter and, when asked, of its compiled module and digest. The shared cache is
/// only read.
pub fn private_cache(with_compiled: bool) -> TempDir {
    warm_shared_cache();
    let dir = tempfile::Builder::new()
        .prefix("private-cache-")
        .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
        .expect("temporary cache folder");
    let copy = |sub: &str, suffixes: &[&str]| {
        let target = dir.path().join(sub);
        std::fs::create_dir_all(&target).expect("creating a cache sub-folder");
        for file in shared_cache_files(sub, suffixes) {
            std::fs::copy(&file, target.join(file.file_name().unwrap()))
                .expect("copying a cache file");
        }
    };
    copy("runtime", &[".wasm"]);
    if with_compiled {
        copy("compiled", &[".cwasm", ".cwasm.sha256"]);
    }
    dir
}
