//! The fixture ZIPs that the README and docs use, built reproducibly from their folders.

use std::fs;
use std::io::{Cursor, Write};
use std::path::{Path, PathBuf};

use anyhow::Context;
use zip::write::SimpleFileOptions;

/// Fixture folders that are also shipped zipped, next to the folder, as the user guide packs them.
pub const ZIPPED: &[&str] = &["uppercase_distinct"];

/// Rewrites every fixture ZIP from its folder.
pub fn rebuild_all(root: &Path) -> anyhow::Result<()> {
    for name in ZIPPED {
        let folder = root.join("fixtures/actions").join(name);
        let target = folder.with_extension("zip");
        fs::write(&target, zip_folder(&folder)?)
            .with_context(|| format!("writing {}", target.display()))?;
        eprintln!("wrote {}", target.display());
    }
    Ok(())
}

/// A deterministic ZIP of `folder`: sorted entries under one top-level folder named like it,
/// fixed timestamps and permissions, so the bytes change only when the sources do.
pub fn zip_folder(folder: &Path) -> anyhow::Result<Vec<u8>> {
    let prefix = folder
        .file_name()
        .and_then(|n| n.to_str())
        .context("fixture folder has no name")?;
    let options = SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated)
        .last_modified_time(zip::DateTime::default())
        .unix_permissions(0o644);
    let mut writer = zip::ZipWriter::new(Cursor::new(Vec::new()));
    for path in files_under(folder)? {
        let relative = path
            .strip_prefix(folder)?
            .to_string_lossy()
            .replace('\\', "/");
        writer.start_file(format!("{prefix}/{relative}"), options)?;
        writer.write_all(&fs::read(&path)?)?;
    }
    Ok(writer.finish()?.into_inner())
}

fn files_under(folder: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    let mut pending = vec![folder.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in fs::read_dir(&dir).with_context(|| format!("reading {}", dir.display()))? {
            let path = entry?.path();
            if path.file_name().is_some_and(|n| n == "__pycache__") {
                continue;
            }
            if path.is_dir() {
                pending.push(path);
            } else {
                files.push(path);
            }
        }
    }
    files.sort();
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn committed_fixture_zips_match_their_folders() {
        let root = crate::workspace_root();
        for name in ZIPPED {
            let folder = root.join("fixtures/actions").join(name);
            let committed = fs::read(folder.with_extension("zip")).unwrap();
            assert!(
                committed == zip_folder(&folder).unwrap(),
                "fixtures/actions/{name}.zip is stale: run `cargo xtask fixtures` and commit it"
            );
        }
    }
}
