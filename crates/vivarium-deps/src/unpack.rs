//! Unpacks one wheel into a layer folder as a purelib install: entries at the archive root go
//! to the layer root, `*.data/purelib` and `*.data/platlib` contents too, other `*.data`
//! parts (scripts, headers, data) are left out. Entries that could escape the folder
//! (absolute paths, `..`, backslashes, symbolic links) refuse the whole wheel; files are
//! checked against the wheel's `RECORD`; every byte written counts against the layer budget.

use std::collections::HashMap;
use std::fs::{self, File};
use std::io::{Cursor, Read, Write};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use zip::ZipArchive;

use crate::error::DepsError;
use crate::hashing::urlsafe_b64;
use crate::record;

/// The bytes a layer may still take.
pub(crate) struct Budget {
    used: u64,
    limit: u64,
}

impl Budget {
    /// A budget of `limit` bytes.
    pub fn new(limit: u64) -> Self {
        Self { used: 0, limit }
    }

    /// Takes `bytes` from the budget, or fails naming `package`.
    fn take(&mut self, bytes: u64, package: &str) -> Result<(), DepsError> {
        self.used = self.used.saturating_add(bytes);
        if self.used > self.limit {
            return Err(DepsError::LayerTooLarge {
                package: package.to_string(),
                limit: self.limit,
            });
        }
        Ok(())
    }
}

/// Where one entry goes.
enum Placement {
    /// A folder or file under the layer root, at this relative path.
    Layer(PathBuf),
    /// Not installed (scripts, headers, data).
    Skip,
}

/// The wheel being unpacked: its file name, package and hashes of written files.
struct Unpacking<'a> {
    wheel: &'a str,
    package: &'a str,
    dest: &'a Path,
    written: HashMap<String, String>,
}

/// Unpacks the wheel `wheel` (of `package`) from `bytes` into `dest`.
pub(crate) fn unpack(
    wheel: &str,
    package: &str,
    bytes: &[u8],
    dest: &Path,
    budget: &mut Budget,
) -> Result<(), DepsError> {
    let mut archive = ZipArchive::new(Cursor::new(bytes))
        .map_err(|e| DepsError::bad_wheel(wheel, format!("it is not a readable ZIP ({e})")))?;
    let mut state = Unpacking {
        wheel,
        package,
        dest,
        written: HashMap::new(),
    };
    for index in 0..archive.len() {
        let mut entry = archive.by_index(index).map_err(|e| {
            DepsError::bad_wheel(wheel, format!("entry {index} cannot be read ({e})"))
        })?;
        let name = entry
            .name()
            .map_err(|e| {
                DepsError::bad_wheel(wheel, format!("entry {index} has a bad name ({e})"))
            })?
            .into_owned();
        if entry.is_symlink() {
            return Err(state.unsafe_entry(&name, "is a symbolic link"));
        }
        let placement = state.placement(&name)?;
        match placement {
            Placement::Skip => {}
            Placement::Layer(rel) if entry.is_dir() => state.make_dir(&rel)?,
            Placement::Layer(rel) => state.write_file(&name, &rel, &mut entry, budget)?,
        }
    }
    let record = record_text(&mut archive, wheel)?;
    state.check_record(record.as_deref())
}

impl Unpacking<'_> {
    fn unsafe_entry(&self, name: &str, reason: &str) -> DepsError {
        DepsError::UnsafeWheel {
            wheel: self.wheel.to_string(),
            entry: name.escape_debug().to_string(),
            reason: reason.to_string(),
        }
    }

    /// Checks an entry name and decides where it goes.
    fn placement(&self, name: &str) -> Result<Placement, DepsError> {
        let parts = self.safe_components(name)?;
        let Some(first) = parts.first() else {
            return Ok(Placement::Skip);
        };
        if first.ends_with(".data") && parts.len() > 1 {
            return Ok(match parts[1] {
                "purelib" | "platlib" if parts.len() > 2 => {
                    Placement::Layer(parts[2..].iter().collect())
                }
                _ => Placement::Skip,
            });
        }
        Ok(Placement::Layer(parts.iter().collect()))
    }

    /// The `/`-separated components of a name, refusing anything that could escape.
    fn safe_components<'n>(&self, name: &'n str) -> Result<Vec<&'n str>, DepsError> {
        if name.contains('\0') || name.chars().any(char::is_control) {
            return Err(self.unsafe_entry(name, "has control characters in its name"));
        }
        if name.contains('\\') {
            return Err(self.unsafe_entry(name, "uses backslashes in its path"));
        }
        if name.starts_with('/') {
            return Err(self.unsafe_entry(name, "is an absolute path"));
        }
        let parts: Vec<&str> = name
            .split('/')
            .filter(|p| !p.is_empty() && *p != ".")
            .collect();
        if parts.contains(&"..") {
            return Err(self.unsafe_entry(name, "climbs out of the layer with `..`"));
        }
        if parts
            .first()
            .is_some_and(|p| p.len() == 2 && p.ends_with(':'))
        {
            return Err(self.unsafe_entry(name, "is an absolute (drive) path"));
        }
        Ok(parts)
    }

    fn make_dir(&self, rel: &Path) -> Result<(), DepsError> {
        let path = self.dest.join(rel);
        fs::create_dir_all(&path).map_err(DepsError::io("creating", &path))
    }

    /// Writes one file, hashing it and charging the budget as bytes arrive.
    fn write_file(
        &mut self,
        name: &str,
        rel: &Path,
        reader: &mut impl Read,
        budget: &mut Budget,
    ) -> Result<(), DepsError> {
        let path = self.dest.join(rel);
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).map_err(DepsError::io("creating", parent))?;
        }
        let mut file = File::create(&path).map_err(DepsError::io("creating", &path))?;
        let mut hasher = Sha256::new();
        let mut buffer = vec![0u8; 64 * 1024];
        loop {
            let read = reader.read(&mut buffer).map_err(|e| {
                DepsError::bad_wheel(self.wheel, format!("entry {name} cannot be read ({e})"))
            })?;
            if read == 0 {
                break;
            }
            budget.take(read as u64, self.package)?;
            hasher.update(&buffer[..read]);
            file.write_all(&buffer[..read])
                .map_err(DepsError::io("writing", &path))?;
        }
        self.written
            .insert(name.to_string(), urlsafe_b64(&hasher.finalize()));
        Ok(())
    }

    /// Compares written files with the sha256 the RECORD lists for them.
    fn check_record(&self, record: Option<&str>) -> Result<(), DepsError> {
        let Some(record) = record else {
            tracing::debug!(
                wheel = self.wheel,
                "wheel has no RECORD; file hashes not checked"
            );
            return Ok(());
        };
        for (path, expected) in record::sha256_rows(record) {
            if let Some(actual) = self.written.get(&path)
                && *actual != expected
            {
                return Err(DepsError::bad_wheel(
                    self.wheel,
                    format!(
                        "{path} does not match its RECORD hash (RECORD says sha256={expected}, \
                         the file has sha256={actual})"
                    ),
                ));
            }
        }
        Ok(())
    }
}

/// The text of the wheel's top-level `*.dist-info/RECORD`, if it has one.
fn record_text(
    archive: &mut ZipArchive<Cursor<&[u8]>>,
    wheel: &str,
) -> Result<Option<String>, DepsError> {
    let name = archive
        .file_names()
        .filter_map(Result::ok)
        .find(|name| {
            name.strip_suffix("/RECORD")
                .is_some_and(|dir| dir.ends_with(".dist-info") && !dir.contains('/'))
        })
        .map(|name| name.to_string());
    let Some(name) = name else {
        return Ok(None);
    };
    let mut text = String::new();
    archive
        .by_name(&name)
        .map_err(|e| DepsError::bad_wheel(wheel, format!("{name} cannot be read ({e})")))?
        .take(crate::metadata::MAX_METADATA_BYTES)
        .read_to_string(&mut text)
        .map_err(|e| DepsError::bad_wheel(wheel, format!("{name} cannot be read ({e})")))?;
    Ok(Some(text))
}
