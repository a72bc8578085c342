//! The index client: lists a project's distributions from the wheelhouse and the Simple API
//! (JSON preferred, HTML fallback), and fetches files and core metadata with their announced
//! sha256 verified. Project pages are fetched once per client; if the index cannot be reached
//! and a wheelhouse is configured, the client goes on offline with the wheelhouse alone.

use std::cell::RefCell;
use std::collections::HashMap;
use std::fs;
use std::path::PathBuf;
use std::rc::Rc;

use pep440_rs::Version;
use pep508_rs::PackageName;

use crate::DepsConfig;
use crate::environment::TargetPython;
use crate::error::DepsError;
use crate::hashing::sha256_hex;
use crate::http::{Http, HttpError};
use crate::metadata::{self, MAX_METADATA_BYTES};
use crate::simple::{self, MetadataOffer};
use crate::tags::{DistKind, classify};
use crate::wheelhouse::Wheelhouse;

/// The largest project page read (the biggest PyPI projects list tens of thousands of files).
const MAX_PAGE_BYTES: u64 = 64 * 1024 * 1024;

/// Where a distribution file comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Source {
    /// A file on the index, with its PEP 658 metadata offer.
    Remote {
        /// Absolute download URL.
        url: String,
        /// Whether `<url>.metadata` is offered.
        metadata: MetadataOffer,
    },
    /// A file in the wheelhouse.
    Local(PathBuf),
}

/// One distribution file of a project (yanked files never appear).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct DistFile {
    /// File name.
    pub filename: String,
    /// Version, from the file name.
    pub version: Version,
    /// Wheel (with tags) or sdist.
    pub kind: DistKind,
    /// Where to get it.
    pub source: Source,
    /// sha256 (lowercase hex) announced by the index or computed from the wheelhouse file.
    pub sha256: Option<String>,
    /// `requires-python` announced by the index.
    pub requires_python: Option<String>,
}

/// Lists and fetches distributions for one resolve or install.
pub(crate) struct IndexClient {
    http: Http,
    index_url: String,
    wheelhouse: Option<Wheelhouse>,
    offline: RefCell<Option<String>>,
    max_file_bytes: u64,
    python: TargetPython,
    projects: RefCell<HashMap<PackageName, Rc<Vec<DistFile>>>>,
    computed: RefCell<HashMap<String, String>>,
}

impl IndexClient {
    /// A client for `config`'s index and wheelhouse.
    pub fn new(config: &DepsConfig) -> Result<Self, DepsError> {
        let wheelhouse = config
            .wheelhouse
            .as_deref()
            .map(Wheelhouse::open)
            .transpose()?;
        Ok(Self {
            http: Http::new(config.download_timeout),
            index_url: config.index_url.trim_end_matches('/').to_string(),
            wheelhouse,
            offline: RefCell::new(None),
            max_file_bytes: config.max_layer_bytes.max(1),
            python: config.python,
            projects: RefCell::new(HashMap::new()),
            computed: RefCell::new(HashMap::new()),
        })
    }

    /// The index URL, for messages.
    pub fn index_url(&self) -> &str {
        &self.index_url
    }

    /// Whether a wheelhouse is configured.
    pub fn has_wheelhouse(&self) -> bool {
        self.wheelhouse.is_some()
    }

    /// The distributions of `project` (wheelhouse first, then the index; a file name offered
    /// by both is taken from the wheelhouse). `None` if neither knows the project.
    pub fn project(&self, project: &PackageName) -> Result<Option<Rc<Vec<DistFile>>>, DepsError> {
        if let Some(files) = self.projects.borrow().get(project) {
            return Ok(Some(Rc::clone(files)));
        }
        let mut files = match &self.wheelhouse {
            Some(wheelhouse) => wheelhouse.files_for(project, self.python)?,
            None => Vec::new(),
        };
        let remote = self.index_files(project, !files.is_empty())?;
        if remote.is_none() && files.is_empty() {
            return Ok(None);
        }
        for file in remote.unwrap_or_default() {
            if !files.iter().any(|f| f.filename == file.filename) {
                files.push(file);
            }
        }
        let files = Rc::new(files);
        self.projects
            .borrow_mut()
            .insert(project.clone(), Rc::clone(&files));
        Ok(Some(files))
    }

    /// The index's files of `project`; `None` on 404, or when the index is unreachable and
    /// `have_local` says the wheelhouse can stand in.
    fn index_files(
        &self,
        project: &PackageName,
        have_local: bool,
    ) -> Result<Option<Vec<DistFile>>, DepsError> {
        let url = format!("{}/{project}/", self.index_url);
        let result = match self.offline.borrow().clone() {
            Some(reason) => Err(HttpError::Unreachable(reason)),
            None => self.fetch_page(&url),
        };
        match result {
            Ok(Ok(listed)) => Ok(Some(into_dist_files(project, listed))),
            Ok(Err(reason)) => Err(DepsError::BadIndexPage { url, reason }),
            Err(HttpError::Status(404)) => Ok(None),
            Err(HttpError::Unreachable(reason)) if self.wheelhouse.is_some() => {
                if self.offline.borrow().is_none() {
                    tracing::warn!(%url, %reason, "package index unreachable; using the wheelhouse alone");
                    *self.offline.borrow_mut() = Some(reason.clone());
                }
                if have_local {
                    Ok(None)
                } else {
                    Err(HttpError::Unreachable(reason).into_deps_error(&url, self.http.timeout()))
                }
            }
            Err(error) => Err(error.into_deps_error(&url, self.http.timeout())),
        }
    }

    /// GETs a project page as JSON (or HTML when that is what the index serves) and parses
    /// it; the inner error says why a page that arrived cannot be read.
    fn fetch_page(&self, url: &str) -> Result<Result<Vec<simple::ListedFile>, String>, HttpError> {
        let response = match self.http.get(url, Some(simple::ACCEPT), MAX_PAGE_BYTES) {
            Err(HttpError::Status(406)) => self.http.get(url, Some("text/html"), MAX_PAGE_BYTES)?,
            other => other?,
        };
        let json = simple::is_json(response.content_type.as_deref());
        let body = String::from_utf8_lossy(&response.body);
        Ok(simple::parse_page(url, &body, json))
    }

    /// The bytes of `file`, checked against its announced sha256.
    pub fn fetch(&self, file: &DistFile) -> Result<Vec<u8>, DepsError> {
        let bytes = match &file.source {
            Source::Local(path) => fs::read(path).map_err(DepsError::io("reading", path))?,
            Source::Remote { url, .. } => self.download(url, self.max_file_bytes)?,
        };
        let actual = sha256_hex(&bytes);
        if let Some(expected) = &file.sha256
            && expected != &actual
        {
            return Err(DepsError::HashMismatch {
                file: file.filename.clone(),
                expected: expected.clone(),
                actual,
            });
        }
        self.computed
            .borrow_mut()
            .insert(file.filename.clone(), actual);
        Ok(bytes)
    }

    /// The sha256 of `file`: announced, or computed (downloading the file if need be).
    pub fn sha256(&self, file: &DistFile) -> Result<String, DepsError> {
        if let Some(sha256) = &file.sha256 {
            return Ok(sha256.clone());
        }
        if let Some(sha256) = self.computed.borrow().get(&file.filename) {
            return Ok(sha256.clone());
        }
        self.fetch(file)?;
        self.computed
            .borrow()
            .get(&file.filename)
            .cloned()
            .ok_or_else(|| DepsError::bad_wheel(&file.filename, "its sha256 could not be computed"))
    }

    /// The core metadata text of the wheel `file` of `project`: the PEP 658 file when the
    /// index offers one, else the wheel's own `*.dist-info/METADATA`.
    pub fn metadata(&self, project: &PackageName, file: &DistFile) -> Result<String, DepsError> {
        if let Source::Remote {
            url,
            metadata: MetadataOffer::Present(expected),
        } = &file.source
        {
            match self.metadata_file(url, expected.as_deref(), &file.filename) {
                Ok(Some(text)) => return Ok(text),
                Ok(None) => {}
                Err(error) => return Err(error),
            }
        }
        let bytes = self.fetch(file)?;
        metadata::from_wheel(&file.filename, &bytes, project)
    }

    /// GETs `<url>.metadata`; `None` if the index does not have it after all.
    fn metadata_file(
        &self,
        url: &str,
        expected: Option<&str>,
        filename: &str,
    ) -> Result<Option<String>, DepsError> {
        let metadata_url = format!("{url}.metadata");
        let bytes = match self.http.get(&metadata_url, None, MAX_METADATA_BYTES) {
            Ok(response) => response.body,
            Err(HttpError::Status(404)) => return Ok(None),
            Err(error) => return Err(error.into_deps_error(&metadata_url, self.http.timeout())),
        };
        let actual = sha256_hex(&bytes);
        if let Some(expected) = expected
            && expected != actual
        {
            return Err(DepsError::HashMismatch {
                file: format!("{filename}.metadata"),
                expected: expected.to_string(),
                actual,
            });
        }
        Ok(Some(String::from_utf8_lossy(&bytes).into_owned()))
    }

    /// Finds the file named `filename` of `project` (for installing a lock).
    pub fn find_file(
        &self,
        project: &PackageName,
        filename: &str,
    ) -> Result<Option<DistFile>, DepsError> {
        if let Some(files) = self.projects.borrow().get(project)
            && let Some(file) = files.iter().find(|f| f.filename == filename)
        {
            return Ok(Some(file.clone()));
        }
        if let Some(path) = self.wheelhouse.as_ref().and_then(|w| w.find(filename))
            && let Some((version, kind)) = classify(filename, project)
        {
            return Ok(Some(DistFile {
                filename: filename.to_string(),
                version,
                kind,
                source: Source::Local(path.to_path_buf()),
                sha256: None,
                requires_python: None,
            }));
        }
        Ok(self
            .project(project)?
            .and_then(|files| files.iter().find(|f| f.filename == filename).cloned()))
    }

    fn download(&self, url: &str, limit: u64) -> Result<Vec<u8>, DepsError> {
        self.http
            .get(url, None, limit)
            .map(|response| response.body)
            .map_err(|error| error.into_deps_error(url, self.http.timeout()))
    }
}

/// Keeps the non-yanked files of `project` whose names parse as its wheels or sdists.
fn into_dist_files(project: &PackageName, listed: Vec<simple::ListedFile>) -> Vec<DistFile> {
    listed
        .into_iter()
        .filter(|file| !file.yanked)
        .filter_map(|file| {
            let (version, kind) = classify(&file.filename, project)?;
            Some(DistFile {
                filename: file.filename,
                version,
                kind,
                source: Source::Remote {
                    url: file.url,
                    metadata: file.metadata,
                },
                sha256: file.sha256,
                requires_python: file.requires_python,
            })
        })
        .collect()
}
