//! The optional local wheelhouse: a folder of `.whl` (and sdist) files named per the wheel
//! spec, consulted before the index and usable with no network at all. Hashes are computed
//! from the files themselves.

use std::fs;
use std::path::{Path, PathBuf};

use pep508_rs::PackageName;

use crate::environment::TargetPython;
use crate::error::DepsError;
use crate::hashing::sha256_hex_of_reader;
use crate::index::{DistFile, Source};
use crate::tags::{DistKind, classify};

/// The files of a wheelhouse folder, listed once.
pub(crate) struct Wheelhouse {
    files: Vec<(String, PathBuf)>,
}

impl Wheelhouse {
    /// Lists `dir` (not recursively). A missing folder is an error: it was configured.
    pub fn open(dir: &Path) -> Result<Self, DepsError> {
        let entries = fs::read_dir(dir).map_err(DepsError::io("listing the wheelhouse", dir))?;
        let mut files = Vec::new();
        for entry in entries {
            let entry = entry.map_err(DepsError::io("listing the wheelhouse", dir))?;
            let path = entry.path();
            if path.is_file()
                && let Some(name) = entry.file_name().to_str()
            {
                files.push((name.to_string(), path));
            }
        }
        files.sort();
        Ok(Self { files })
    }

    /// The distributions of `project` in the wheelhouse, with sha256 computed for wheels that
    /// fit the sandbox running `python` (the only ones that may end up in a lock for it).
    pub fn files_for(
        &self,
        project: &PackageName,
        python: TargetPython,
    ) -> Result<Vec<DistFile>, DepsError> {
        let mut found = Vec::new();
        for (filename, path) in &self.files {
            let Some((version, kind)) = classify(filename, project) else {
                continue;
            };
            let sha256 = match &kind {
                DistKind::Wheel(wheel) if wheel.fits_sandbox(python) => Some(hash_file(path)?),
                _ => None,
            };
            found.push(DistFile {
                filename: filename.clone(),
                version,
                kind,
                source: Source::Local(path.clone()),
                sha256,
                requires_python: None,
            });
        }
        Ok(found)
    }

    /// The path of the file named `filename`, if the wheelhouse has it.
    pub fn find(&self, filename: &str) -> Option<&Path> {
        self.files
            .iter()
            .find(|(name, _)| name == filename)
            .map(|(_, path)| path.as_path())
    }
}

fn hash_file(path: &Path) -> Result<String, DepsError> {
    let file = fs::File::open(path).map_err(DepsError::io("opening", path))?;
    sha256_hex_of_reader(file).map_err(DepsError::io("reading", path))
}
