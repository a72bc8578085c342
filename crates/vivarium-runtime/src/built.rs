//! The interpreter built from source by the project's own recipe (`python-wasm/build.sh`):
//! CPython for wasm32-wasip1 as a reactor module with the Vivarium shim, and its standard
//! library. Built once per machine into `cache_dir/python-src/`, on first need or by
//! `vivarium runtime build` (and `cargo xtask build-python`).

use std::collections::HashMap;
use std::fs::{self, File};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::error::RuntimeError;
use crate::fetch::Progress;

/// The recipe, embedded so that the binary can build the interpreter wherever it runs.
const RECIPE: &str = include_str!("../../../python-wasm/build.sh");
/// The files the recipe reads beside itself, by their path relative to it, in the order its
/// digest takes them: the C sources it links with libpython (the reactor shim, WASI stubs,
/// the C++ exception stand-ins of the numpy and pandas reactors) and the pandas profile's
/// Python stand-ins.
const RECIPE_FILES: &[(&str, &str)] = &[
    (
        "shim/vivarium_reactor.c",
        include_str!("../../../python-wasm/shim/vivarium_reactor.c"),
    ),
    (
        "shim/wasi_netdb_stubs.c",
        include_str!("../../../python-wasm/shim/wasi_netdb_stubs.c"),
    ),
    (
        "shim/cxx_exceptions.c",
        include_str!("../../../python-wasm/shim/cxx_exceptions.c"),
    ),
    (
        "standins/ctypes/__init__.py",
        include_str!("../../../python-wasm/standins/ctypes/__init__.py"),
    ),
    (
        "standins/mmap.py",
        include_str!("../../../python-wasm/standins/mmap.py"),
    ),
];
/// The default reactor module's file name in the build output.
const REACTOR_FILE: &str = "vivarium-python.wasm";
/// The numpy reactor's: the same interpreter with numpy's extension modules built in.
const NUMPY_REACTOR_FILE: &str = "vivarium-python-numpy.wasm";
/// The pandas reactor's: the numpy reactor with pandas' extension modules built in too.
const PANDAS_REACTOR_FILE: &str = "vivarium-python-pandas.wasm";
/// The standard library folder in the build output.
const STDLIB_DIR: &str = "lib/python3.13";
/// What to tell an operator whose machine cannot build the interpreter.
const BUILD_NEEDS: &str = "the build needs bash, curl, sha256sum, tar, xz, make, gcc and python3 \
     (Debian: apt-get install -y bash curl coreutils tar xz-utils make gcc python3) and reaches \
     deb.debian.org and the Python package index; run `vivarium runtime build` to see its whole \
     log, or set runtime = \"pinned\" to use the prebuilt interpreter instead";

/// A verified from-source build on local disk.
#[derive(Debug, Clone)]
pub struct BuiltInterpreter {
    /// The default reactor module (exports `vivarium_init` and `vivarium_run`).
    pub reactor: Reactor,
    /// The numpy reactor: the same interpreter and exports, with numpy's extension modules
    /// built in (numpy's Python files are in the standard library folder of both).
    pub numpy_reactor: Reactor,
    /// The numpy version the numpy reactor provides.
    pub numpy_version: String,
    /// The pandas reactor: the numpy reactor with pandas' extension modules built in too.
    pub pandas_reactor: Reactor,
    /// The pandas version the pandas reactor provides.
    pub pandas_version: String,
    /// The folder in [`Self::stdlib`] (relative to it) holding the pandas profile's stand-ins
    /// for modules WASI cannot have (`ctypes`, `mmap`); only that profile puts it on its path.
    pub standins: String,
    /// The standard library, mounted read-only at `/usr/local/lib/python3.13`.
    pub stdlib: PathBuf,
    /// CPython's own regression tests (`Lib/test`), for conformance runs.
    pub tests: PathBuf,
    /// The CPython version built.
    pub version: String,
    /// The digest of the recipe that made the build: it names the standard library's
    /// content too, which a snapshot imports from (a recipe can change it and no reactor).
    pub recipe_sha256: String,
}

/// One reactor module of a build.
#[derive(Debug, Clone)]
pub struct Reactor {
    /// The module's file.
    pub path: PathBuf,
    /// Its SHA-256 as the build recorded it, lowercase hex.
    pub sha256: String,
}

impl Reactor {
    /// The `file` the build recorded in `outputs`, if it did and the file is there.
    fn recorded(
        out: &Path,
        outputs: &HashMap<String, serde_json::Value>,
        file: &str,
    ) -> Option<Self> {
        let sha256 = outputs.get(file)?.get("sha256")?.as_str()?.to_string();
        let path = out.join(file);
        path.is_file().then_some(Self { path, sha256 })
    }

    /// The module's bytes, after checking them against the recorded digest.
    pub fn read_verified(&self) -> Result<Vec<u8>, RuntimeError> {
        let bytes = fs::read(&self.path).map_err(RuntimeError::io("reading", &self.path))?;
        let actual = hex::encode(Sha256::digest(&bytes));
        if actual != self.sha256 {
            return Err(RuntimeError::Mismatch {
                what: format!(
                    "the built interpreter {} (run `vivarium runtime build` again)",
                    self.path.display()
                ),
                expected: self.sha256.clone(),
                actual,
                size: bytes.len() as u64,
            });
        }
        Ok(bytes)
    }
}

/// The parts of `build-info.json` read here.
#[derive(Deserialize)]
struct BuildInfo {
    cpython_version: String,
    /// The digest of the recipe that made the build (absent before recipes recorded it).
    #[serde(default)]
    recipe_sha256: String,
    /// Per output file, its `sha256` and `bytes` (and plain notes for folders).
    outputs: HashMap<String, serde_json::Value>,
    /// What the numpy reactor provides.
    numpy: NumpyInfo,
    /// What the pandas reactor provides.
    pandas: PandasInfo,
}

/// The `pandas` part of `build-info.json`.
#[derive(Deserialize)]
struct PandasInfo {
    version: String,
    /// The stand-ins' folder, relative to the standard library folder.
    standins: String,
}

/// The `numpy` part of `build-info.json`.
#[derive(Deserialize)]
struct NumpyInfo {
    version: String,
}

impl BuiltInterpreter {
    /// Where the build's outputs live under `cache_dir`.
    pub fn location(cache_dir: &Path) -> PathBuf {
        cache_dir.join("python-src").join("out")
    }

    /// The build in `cache_dir`, if one finished there.
    pub fn find(cache_dir: &Path) -> Option<Self> {
        let out = Self::location(cache_dir);
        let info: BuildInfo =
            serde_json::from_slice(&fs::read(out.join("build-info.json")).ok()?).ok()?;
        if info.recipe_sha256 != recipe_sha256() {
            return None;
        }
        let recipe_sha256 = info.recipe_sha256;
        let found = Self {
            reactor: Reactor::recorded(&out, &info.outputs, REACTOR_FILE)?,
            numpy_reactor: Reactor::recorded(&out, &info.outputs, NUMPY_REACTOR_FILE)?,
            numpy_version: info.numpy.version,
            pandas_reactor: Reactor::recorded(&out, &info.outputs, PANDAS_REACTOR_FILE)?,
            pandas_version: info.pandas.version,
            standins: info.pandas.standins,
            stdlib: out.join(STDLIB_DIR),
            tests: out.join("test"),
            version: info.cpython_version,
            recipe_sha256,
        };
        found.stdlib.is_dir().then_some(found)
    }

    /// The build in `cache_dir`, running the recipe first when there is none (about ten
    /// minutes on two cores, once per machine; concurrent callers wait for one build).
    pub fn ensure(cache_dir: &Path, progress: Progress) -> Result<Self, RuntimeError> {
        if let Some(found) = Self::find(cache_dir) {
            return Ok(found);
        }
        let root = cache_dir.join("python-src");
        fs::create_dir_all(&root).map_err(RuntimeError::io("creating", &root))?;
        let _lock = crate::lock_exclusive(&root.join(".build.lock"))?;
        if let Some(found) = Self::find(cache_dir) {
            return Ok(found);
        }
        run_recipe(&root, progress)?;
        Self::find(cache_dir).ok_or_else(|| RuntimeError::Build {
            reason: format!(
                "the recipe finished but {} holds no complete build",
                Self::location(cache_dir).display()
            ),
            needs: BUILD_NEEDS,
        })
    }
}

/// The digest the recipe records of itself: its script, then its C sources in
/// [`RECIPE_FILES`] order. A build whose record differs was made by another recipe (its
/// configuration or shim may differ), so it is built again (the steps that did not change
/// are reused).
fn recipe_sha256() -> String {
    let mut digest = Sha256::new();
    digest.update(RECIPE);
    for (_, text) in RECIPE_FILES {
        digest.update(text);
    }
    hex::encode(digest.finalize())
}

/// Writes the embedded recipe under `root` and runs it, showing its steps.
fn run_recipe(root: &Path, progress: Progress) -> Result<(), RuntimeError> {
    let recipe = root.join("recipe");
    fs::create_dir_all(&recipe).map_err(RuntimeError::io("creating", &recipe))?;
    let script = recipe.join("build.sh");
    fs::write(&script, RECIPE).map_err(RuntimeError::io("writing", &script))?;
    for (name, text) in RECIPE_FILES {
        let path = recipe.join(name);
        if let Some(folder) = path.parent() {
            fs::create_dir_all(folder).map_err(RuntimeError::io("creating", folder))?;
        }
        fs::write(&path, text).map_err(RuntimeError::io("writing", &path))?;
    }
    let (out, work) = (root.join("out"), root.join("work"));
    for dir in [&out, &work] {
        fs::create_dir_all(dir).map_err(RuntimeError::io("creating", dir))?;
    }
    let log_path = root.join("build.log");
    let log = File::create(&log_path).map_err(RuntimeError::io("creating", &log_path))?;
    let mut child = Command::new("bash")
        .arg(&script)
        .arg(&out)
        .arg(&work)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(log)
        .spawn()
        .map_err(|e| RuntimeError::Build {
            reason: format!("cannot start bash: {e}"),
            needs: BUILD_NEEDS,
        })?;
    let bar = spinner(progress);
    if let Some(stdout) = child.stdout.take() {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(step) = line.strip_prefix("==> ") {
                bar.set_message(step.to_string());
                tracing::info!("{step}");
            }
        }
    }
    let status = child
        .wait()
        .map_err(RuntimeError::io("waiting for", &script))?;
    bar.finish_and_clear();
    if !status.success() {
        return Err(RuntimeError::Build {
            reason: format!(
                "the recipe failed ({status}); its log is {}: {}",
                log_path.display(),
                last_lines(&log_path, 5)
            ),
            needs: BUILD_NEEDS,
        });
    }
    Ok(())
}

/// A spinner on standard error showing the recipe's current step, or nothing when quiet.
fn spinner(progress: Progress) -> indicatif::ProgressBar {
    if progress == Progress::Quiet {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new_spinner();
    bar.set_prefix("building CPython for WebAssembly from source (once, about 10 min)");
    if let Ok(style) =
        indicatif::ProgressStyle::with_template("{spinner} {prefix}: {msg} [{elapsed}]")
    {
        bar.set_style(style);
    }
    bar.enable_steady_tick(std::time::Duration::from_millis(200));
    bar
}

/// The last `count` lines of a log, for an error message.
fn last_lines(path: &Path, count: usize) -> String {
    let text = fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(count)..].join(" | ")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A complete-looking build in a fresh cache, recorded as made by `recipe`.
    fn fake_build(recipe: &str) -> tempfile::TempDir {
        let cache = tempfile::tempdir().unwrap();
        let out = BuiltInterpreter::location(cache.path());
        fs::create_dir_all(out.join(STDLIB_DIR)).unwrap();
        fs::write(out.join(REACTOR_FILE), b"\0asm").unwrap();
        fs::write(out.join(NUMPY_REACTOR_FILE), b"\0asm").unwrap();
        fs::write(out.join(PANDAS_REACTOR_FILE), b"\0asm").unwrap();
        let info = serde_json::json!({
            "cpython_version": "3.13.5",
            "recipe_sha256": recipe,
            "outputs": {
                REACTOR_FILE: {"sha256": "00", "bytes": 4},
                NUMPY_REACTOR_FILE: {"sha256": "01", "bytes": 4},
                PANDAS_REACTOR_FILE: {"sha256": "02", "bytes": 4},
            },
            "numpy": {"version": "2.4.6"},
            "pandas": {"version": "3.1.1", "standins": "vivarium-standins"},
        });
        fs::write(out.join("build-info.json"), info.to_string()).unwrap();
        cache
    }

    #[test]
    fn a_build_is_used_only_when_this_recipe_made_it() {
        assert!(BuiltInterpreter::find(fake_build(&recipe_sha256()).path()).is_some());
        assert!(BuiltInterpreter::find(fake_build("another recipe").path()).is_none());
        assert!(BuiltInterpreter::find(fake_build("").path()).is_none());
    }
}
