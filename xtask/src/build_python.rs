//! `cargo xtask build-python`: builds CPython for wasm32-wasip1 from source with
//! `python-wasm/build.sh` (the reactor `vivarium-python.wasm`, the command `python.wasm`, the
//! byte-compiled standard library and CPython's tests), streaming the recipe's output.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};

/// The cache folder the project uses everywhere: `VIVARIUM_CACHE_DIR`, else the user's cache
/// folder (`$XDG_CACHE_HOME/vivarium`, else `~/.cache/vivarium`).
fn cache_dir() -> anyhow::Result<PathBuf> {
    let non_empty = |name: &str| std::env::var_os(name).filter(|value| !value.is_empty());
    if let Some(dir) = non_empty("VIVARIUM_CACHE_DIR") {
        return Ok(PathBuf::from(dir));
    }
    if let Some(dir) = non_empty("XDG_CACHE_HOME") {
        return Ok(PathBuf::from(dir).join("vivarium"));
    }
    let home = non_empty("HOME")
        .context("no cache folder: set VIVARIUM_CACHE_DIR (or HOME), or pass --out and --work")?;
    Ok(PathBuf::from(home).join(".cache/vivarium"))
}

/// Runs `python-wasm/build.sh OUT WORK`; without `--out`/`--work`, both live under
/// `<cache>/python-src/`.
pub fn run(root: &Path, out: Option<PathBuf>, work: Option<PathBuf>) -> anyhow::Result<()> {
    let (out, work) = match (out, work) {
        (Some(out), Some(work)) => (out, work),
        (out, work) => {
            let base = cache_dir()?.join("python-src");
            (
                out.unwrap_or_else(|| base.join("out")),
                work.unwrap_or_else(|| base.join("work")),
            )
        }
    };
    let script = root.join("python-wasm/build.sh");
    if !script.is_file() {
        bail!("{} is missing", script.display());
    }
    eprintln!(
        "$ bash {} {} {}",
        script.display(),
        out.display(),
        work.display()
    );
    // The child inherits stdout and stderr, so its progress lines stream as they come.
    let status = Command::new("bash")
        .arg(&script)
        .arg(&out)
        .arg(&work)
        .current_dir(root)
        .status()
        .with_context(|| format!("could not start bash {}", script.display()))?;
    if !status.success() {
        bail!("{} failed ({status})", script.display());
    }
    eprintln!("CPython for wasm32-wasip1 is in {}", out.display());
    Ok(())
}
