//! Driving the `vivarium` command line: one invocation with its arguments, environment and
//! input, run to completion under a watchdog, and what it printed.

use std::ffi::OsStr;
use std::io::{Read, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::files::{write_action, write_json};
use super::{BIN, CACHE_DIR, clip, ensure_shared_runtime, wait_or_kill};

/// Longest a single invocation may take before the test kills it and fails. Generous: the first
/// invocation of the suite may download the interpreter and compile it.
const WATCHDOG: Duration = Duration::from_secs(300);

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
        let Some(status) = wait_or_kill(&mut child, WATCHDOG) else {
            panic!(
                "`{}` still ran after {WATCHDOG:?}; killed it",
                self.description
            );
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
        format!(
            "\n--- command: {}\n--- exit: {:?} after {:?}\n--- stdout:\n{}\n--- stderr:\n{}\n---",
            self.description,
            self.code,
            self.elapsed,
            clip(&self.stdout, MAX),
            clip(&self.stderr, MAX)
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

/// Writes an action whose `main.py` is `source` and runs it on `records` with extra arguments.
pub fn run_source(source: &str, records: &Value, extra: &[&str]) -> Outcome {
    let action = write_action(&[("main.py", source)]);
    run_on(action.path(), records, extra)
}
