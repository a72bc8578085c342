//! Core metadata (`METADATA`, RFC 822 style headers): the fields resolution needs
//! (`Requires-Dist`, `Requires-Python`, `Name`, `Version`), read from a PEP 658 metadata file
//! or from the `*.dist-info/METADATA` entry of a wheel.

use std::io::{Cursor, Read};
use std::str::FromStr;

use pep508_rs::PackageName;

use crate::error::DepsError;

/// The largest METADATA file read (long descriptions included).
pub(crate) const MAX_METADATA_BYTES: u64 = 16 * 1024 * 1024;

/// The core metadata fields resolution uses.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct CoreMetadata {
    /// `Name`, as written.
    pub name: Option<String>,
    /// `Version`, as written.
    pub version: Option<String>,
    /// Every `Requires-Dist`, as written (PEP 508 with markers).
    pub requires_dist: Vec<String>,
    /// `Requires-Python`, if declared.
    pub requires_python: Option<String>,
}

/// Reads the header fields of a METADATA text (the body, after the first blank line, is the
/// description and is ignored).
pub(crate) fn parse(text: &str) -> CoreMetadata {
    let mut metadata = CoreMetadata::default();
    for (key, value) in headers(text) {
        match key.to_ascii_lowercase().as_str() {
            "name" => metadata.name = Some(value),
            "version" => metadata.version = Some(value),
            "requires-dist" => metadata.requires_dist.push(value),
            "requires-python" => metadata.requires_python = Some(value),
            _ => {}
        }
    }
    metadata
}

/// The `(key, value)` header pairs, with continuation lines folded in.
fn headers(text: &str) -> Vec<(String, String)> {
    let mut pairs: Vec<(String, String)> = Vec::new();
    for line in text.lines() {
        let line = line.strip_suffix('\r').unwrap_or(line);
        if line.trim().is_empty() {
            break;
        }
        if line.starts_with([' ', '\t']) {
            if let Some((_, value)) = pairs.last_mut() {
                value.push(' ');
                value.push_str(line.trim());
            }
            continue;
        }
        if let Some((key, value)) = line.split_once(':') {
            pairs.push((key.trim().to_string(), value.trim().to_string()));
        }
    }
    pairs
}

/// Reads the METADATA text of the wheel `wheel` (file name) of `project` from its bytes.
pub(crate) fn from_wheel(
    wheel: &str,
    bytes: &[u8],
    project: &PackageName,
) -> Result<String, DepsError> {
    let mut archive = zip::ZipArchive::new(Cursor::new(bytes))
        .map_err(|e| DepsError::bad_wheel(wheel, format!("it is not a readable ZIP ({e})")))?;
    let entry = metadata_entry(&archive, project)
        .ok_or_else(|| DepsError::bad_wheel(wheel, "it has no *.dist-info/METADATA"))?;
    let file = archive
        .by_name(&entry)
        .map_err(|e| DepsError::bad_wheel(wheel, format!("{entry} cannot be read ({e})")))?;
    let mut raw = Vec::new();
    file.take(MAX_METADATA_BYTES)
        .read_to_end(&mut raw)
        .map_err(|e| DepsError::bad_wheel(wheel, format!("{entry} cannot be read ({e})")))?;
    Ok(String::from_utf8_lossy(&raw).into_owned())
}

/// The name of the `<dist>.dist-info/METADATA` entry, preferring the one of `project`.
fn metadata_entry<R: Read + std::io::Seek>(
    archive: &zip::ZipArchive<R>,
    project: &PackageName,
) -> Option<String> {
    let candidates: Vec<String> = archive
        .file_names()
        .filter_map(Result::ok)
        .filter_map(|name| {
            let dir = name.strip_suffix("/METADATA")?;
            (dir.ends_with(".dist-info") && !dir.contains('/')).then(|| name.to_string())
        })
        .collect();
    let of_project = candidates.iter().find(|name| {
        let dist = name.split(['-', '/']).next().unwrap_or_default();
        PackageName::from_str(dist).is_ok_and(|n| &n == project)
    });
    of_project.or(candidates.first()).cloned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_header_fields() {
        let text = "Metadata-Version: 2.1\r\nName: Demo_Pkg\nVersion: 1.0\n\
                    Requires-Dist: six>=1.5\nRequires-Dist: idna ;\n  python_version >= \"3.8\"\n\
                    Requires-Python: >=3.8\nProvides-Extra: fast\n\nRequires-Dist: not-a-header\n";
        let metadata = parse(text);
        assert_eq!(metadata.name.as_deref(), Some("Demo_Pkg"));
        assert_eq!(metadata.version.as_deref(), Some("1.0"));
        assert_eq!(
            metadata.requires_dist,
            vec!["six>=1.5", "idna ; python_version >= \"3.8\""]
        );
        assert_eq!(metadata.requires_python.as_deref(), Some(">=3.8"));
    }
}
