//! Test support: real wheels built on the fly, and a small Simple-API index (PEP 691 JSON and
//! PEP 503 HTML, PEP 658 metadata files) served on 127.0.0.1 that counts its requests.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::{Cursor, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use sha2::{Digest, Sha256};
use vivarium_deps::{DepsConfig, TargetPython};
use zip::write::SimpleFileOptions;

/// sha256 as lowercase hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

fn urlsafe_b64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..=chunk.len() {
            out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    out
}

/// A wheel to build: a package folder `<name>/__init__.py`, `<name>-<v>.dist-info/{METADATA,
/// WHEEL,RECORD}`, plus whatever extra entries a test adds.
#[derive(Clone)]
pub struct Wheel {
    pub name: String,
    pub version: String,
    pub tag: String,
    pub requires_dist: Vec<String>,
    pub requires_python: Option<String>,
    pub files: Vec<(String, Vec<u8>)>,
    pub symlinks: Vec<(String, String)>,
    pub bad_record: bool,
}

/// A wheel of `name` `version` tagged `py3-none-any`.
pub fn wheel(name: &str, version: &str) -> Wheel {
    Wheel {
        name: name.to_string(),
        version: version.to_string(),
        tag: "py3-none-any".to_string(),
        requires_dist: Vec::new(),
        requires_python: None,
        files: Vec::new(),
        symlinks: Vec::new(),
        bad_record: false,
    }
}

impl Wheel {
    pub fn requires(mut self, requirement: &str) -> Self {
        self.requires_dist.push(requirement.to_string());
        self
    }

    pub fn requires_python(mut self, spec: &str) -> Self {
        self.requires_python = Some(spec.to_string());
        self
    }

    pub fn tag(mut self, tag: &str) -> Self {
        self.tag = tag.to_string();
        self
    }

    pub fn file(mut self, path: &str, contents: &[u8]) -> Self {
        self.files.push((path.to_string(), contents.to_vec()));
        self
    }

    pub fn symlink(mut self, path: &str, target: &str) -> Self {
        self.symlinks.push((path.to_string(), target.to_string()));
        self
    }

    pub fn with_bad_record(mut self) -> Self {
        self.bad_record = true;
        self
    }

    /// The distribution name as wheel file names spell it.
    pub fn dist(&self) -> String {
        self.name.replace('-', "_")
    }

    pub fn filename(&self) -> String {
        format!("{}-{}-{}.whl", self.dist(), self.version, self.tag)
    }

    pub fn dist_info(&self) -> String {
        format!("{}-{}.dist-info", self.dist(), self.version)
    }

    pub fn metadata(&self) -> String {
        let mut text = format!(
            "Metadata-Version: 2.1\nName: {}\nVersion: {}\n",
            self.name, self.version
        );
        for requirement in &self.requires_dist {
            text.push_str(&format!("Requires-Dist: {requirement}\n"));
        }
        if let Some(spec) = &self.requires_python {
            text.push_str(&format!("Requires-Python: {spec}\n"));
        }
        text.push_str("\nA test package.\n");
        text
    }

    /// The entries (path, contents) of the wheel, RECORD excluded.
    fn entries(&self) -> Vec<(String, Vec<u8>)> {
        let mut entries = vec![(
            format!("{}/__init__.py", self.dist()),
            format!("__version__ = \"{}\"\n", self.version).into_bytes(),
        )];
        entries.extend(self.files.iter().cloned());
        entries.push((
            format!("{}/METADATA", self.dist_info()),
            self.metadata().into_bytes(),
        ));
        let wheel = format!(
            "Wheel-Version: 1.0\nGenerator: vivarium-tests\nRoot-Is-Purelib: true\nTag: {}\n",
            self.tag
        );
        entries.push((format!("{}/WHEEL", self.dist_info()), wheel.into_bytes()));
        entries
    }

    /// The wheel's bytes: a real ZIP (deflated) with a correct (or deliberately wrong) RECORD.
    pub fn build(&self) -> Vec<u8> {
        let mut writer = zip::ZipWriter::new(Cursor::new(Vec::new()));
        let options =
            SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated);
        let mut record = String::new();
        for (path, contents) in self.entries() {
            writer.start_file(path.as_str(), options).unwrap();
            writer.write_all(&contents).unwrap();
            let digest = if self.bad_record {
                urlsafe_b64(&Sha256::digest(b"something else"))
            } else {
                urlsafe_b64(&Sha256::digest(&contents))
            };
            record.push_str(&format!("{path},sha256={digest},{}\n", contents.len()));
        }
        for (path, target) in &self.symlinks {
            writer
                .add_symlink(path.as_str(), target.as_str(), options)
                .unwrap();
        }
        record.push_str(&format!("{}/RECORD,,\n", self.dist_info()));
        writer
            .start_file(format!("{}/RECORD", self.dist_info()), options)
            .unwrap();
        writer.write_all(record.as_bytes()).unwrap();
        writer.finish().unwrap().into_inner()
    }
}

/// One file the index serves.
#[derive(Clone)]
pub struct Served {
    pub filename: String,
    pub bytes: Vec<u8>,
    /// The sha256 announced on the page (None: no hash announced).
    pub announced_sha256: Option<String>,
    pub requires_python: Option<String>,
    pub yanked: bool,
    /// The PEP 658 metadata file, if offered.
    pub metadata: Option<String>,
}

impl Served {
    /// A wheel served with its true hash and a PEP 658 metadata file.
    pub fn wheel(wheel: &Wheel) -> Self {
        let bytes = wheel.build();
        Self {
            filename: wheel.filename(),
            announced_sha256: Some(sha256_hex(&bytes)),
            bytes,
            requires_python: wheel.requires_python.clone(),
            yanked: false,
            metadata: Some(wheel.metadata()),
        }
    }

    /// Any other file (sdist, platform wheel) with its true hash and no metadata file.
    pub fn raw(filename: &str, bytes: &[u8]) -> Self {
        Self {
            filename: filename.to_string(),
            bytes: bytes.to_vec(),
            announced_sha256: Some(sha256_hex(bytes)),
            requires_python: None,
            yanked: false,
            metadata: None,
        }
    }
}

#[derive(Default)]
struct State {
    projects: BTreeMap<String, Vec<Served>>,
    html_only: bool,
    broken_json: bool,
    requests: Vec<String>,
    html_pages: usize,
    json_pages: usize,
}

/// A Simple-API index on 127.0.0.1 for one test; stops when dropped.
pub struct Index {
    port: u16,
    state: Arc<Mutex<State>>,
    stop: Arc<AtomicBool>,
}

impl Index {
    pub fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let state = Arc::new(Mutex::new(State::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let (thread_state, thread_stop) = (Arc::clone(&state), Arc::clone(&stop));
        thread::spawn(move || {
            for stream in listener.incoming() {
                if thread_stop.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(stream) = stream else { continue };
                let state = Arc::clone(&thread_state);
                thread::spawn(move || handle(stream, &state));
            }
        });
        Self { port, state, stop }
    }

    /// The Simple API base URL.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/simple", self.port)
    }

    /// A config using this index only, with short time-outs and no progress output.
    pub fn config(&self) -> DepsConfig {
        DepsConfig {
            index_url: self.url(),
            download_timeout: Duration::from_secs(20),
            ..DepsConfig::default()
        }
    }

    /// [`Index::config`], resolving for `python`.
    pub fn config_for(&self, python: TargetPython) -> DepsConfig {
        DepsConfig {
            python,
            ..self.config()
        }
    }

    /// Serves a built wheel (true hash, PEP 658 metadata) under its project.
    pub fn add(&self, wheel: &Wheel) -> &Self {
        self.add_file(&wheel.name, Served::wheel(wheel))
    }

    pub fn add_file(&self, project: &str, served: Served) -> &Self {
        let key = normalize(project);
        self.state
            .lock()
            .unwrap()
            .projects
            .entry(key)
            .or_default()
            .push(served);
        self
    }

    /// Makes the index ignore `Accept` and answer HTML only (a PEP 503-only index).
    pub fn set_html_only(&self, html_only: bool) {
        self.state.lock().unwrap().html_only = html_only;
    }

    /// Makes project pages invalid PEP 691 JSON.
    pub fn set_broken_json(&self, broken: bool) {
        self.state.lock().unwrap().broken_json = broken;
    }

    /// Paths requested so far.
    pub fn requests(&self) -> Vec<String> {
        self.state.lock().unwrap().requests.clone()
    }

    /// How many requests asked for wheel files (not metadata, not pages).
    pub fn wheel_downloads(&self) -> usize {
        self.requests()
            .iter()
            .filter(|p| p.starts_with("/files/") && p.ends_with(".whl"))
            .count()
    }

    pub fn html_pages(&self) -> usize {
        self.state.lock().unwrap().html_pages
    }

    pub fn json_pages(&self) -> usize {
        self.state.lock().unwrap().json_pages
    }
}

impl Drop for Index {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

pub fn normalize(name: &str) -> String {
    let mut out = String::new();
    for c in name.to_ascii_lowercase().chars() {
        if matches!(c, '-' | '_' | '.') {
            if !out.ends_with('-') {
                out.push('-');
            }
        } else {
            out.push(c);
        }
    }
    out
}

fn handle(mut stream: TcpStream, state: &Mutex<State>) {
    stream.set_read_timeout(Some(Duration::from_secs(10))).ok();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") && head.len() < 64 * 1024 {
        match stream.read(&mut byte) {
            Ok(1) => head.push(byte[0]),
            _ => return,
        }
    }
    let head = String::from_utf8_lossy(&head).to_string();
    let path = head.split_whitespace().nth(1).unwrap_or("/").to_string();
    let accept = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("accept")
                .then(|| v.trim().to_string())
        })
        .unwrap_or_default();
    let (status, content_type, body) = respond(&path, &accept, state);
    let header = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let _ = stream.write_all(header.as_bytes());
    let _ = stream.write_all(&body);
    let _ = stream.flush();
}

fn respond(
    path: &str,
    accept: &str,
    state: &Mutex<State>,
) -> (&'static str, &'static str, Vec<u8>) {
    let mut state = state.lock().unwrap();
    state.requests.push(path.to_string());
    let not_found = ("404 Not Found", "text/plain", b"not found".to_vec());
    if let Some(project) = path
        .strip_prefix("/simple/")
        .and_then(|p| p.strip_suffix('/'))
    {
        let Some(files) = state.projects.get(project).cloned() else {
            return not_found;
        };
        if state.broken_json {
            return (
                "200 OK",
                "application/vnd.pypi.simple.v1+json",
                b"{\"files\": 3}".to_vec(),
            );
        }
        if accept.contains("application/vnd.pypi.simple.v1+json") && !state.html_only {
            state.json_pages += 1;
            return (
                "200 OK",
                "application/vnd.pypi.simple.v1+json",
                json_page(project, &files),
            );
        }
        state.html_pages += 1;
        return (
            "200 OK",
            "text/html; charset=utf-8",
            html_page(project, &files),
        );
    }
    if let Some(name) = path.strip_prefix("/files/") {
        let all = state.projects.values().flatten();
        for served in all {
            if served.filename == name {
                return ("200 OK", "application/octet-stream", served.bytes.clone());
            }
            if format!("{}.metadata", served.filename) == name
                && let Some(metadata) = &served.metadata
            {
                return ("200 OK", "text/plain", metadata.clone().into_bytes());
            }
        }
    }
    not_found
}

fn json_page(project: &str, files: &[Served]) -> Vec<u8> {
    let files: Vec<serde_json::Value> = files
        .iter()
        .map(|f| {
            let mut hashes = serde_json::Map::new();
            if let Some(h) = &f.announced_sha256 {
                hashes.insert("sha256".into(), h.clone().into());
            }
            let metadata = match &f.metadata {
                Some(m) => serde_json::json!({"sha256": sha256_hex(m.as_bytes())}),
                None => serde_json::json!(false),
            };
            serde_json::json!({
                "filename": f.filename,
                "url": format!("../../files/{}", f.filename),
                "hashes": hashes,
                "requires-python": f.requires_python,
                "core-metadata": metadata,
                "yanked": f.yanked,
            })
        })
        .collect();
    serde_json::to_vec(&serde_json::json!({
        "meta": {"api-version": "1.1"},
        "name": project,
        "files": files,
    }))
    .unwrap()
}

fn html_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn html_page(project: &str, files: &[Served]) -> Vec<u8> {
    let mut page = format!("<!DOCTYPE html>\n<html><body><h1>Links for {project}</h1>\n");
    for f in files {
        let fragment = f
            .announced_sha256
            .as_ref()
            .map(|h| format!("#sha256={h}"))
            .unwrap_or_default();
        let mut attrs = String::new();
        if let Some(rp) = &f.requires_python {
            attrs.push_str(&format!(" data-requires-python=\"{}\"", html_escape(rp)));
        }
        if let Some(m) = &f.metadata {
            attrs.push_str(&format!(
                " data-dist-info-metadata=\"sha256={}\"",
                sha256_hex(m.as_bytes())
            ));
        }
        if f.yanked {
            attrs.push_str(" data-yanked=\"\"");
        }
        page.push_str(&format!(
            "<a href=\"/files/{}{fragment}\"{attrs}>{}</a><br/>\n",
            f.filename, f.filename
        ));
    }
    page.push_str("</body></html>\n");
    page.into_bytes()
}

/// A port on 127.0.0.1 where nothing listens (connections are refused).
pub fn closed_port_url() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    format!("http://127.0.0.1:{port}/simple")
}

/// Every path under `dir`, relative, sorted.
pub fn tree(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path: PathBuf = entry.unwrap().path();
        let rel = path
            .strip_prefix(root)
            .unwrap()
            .to_string_lossy()
            .to_string();
        if path.is_dir() {
            out.push(format!("{rel}/"));
            walk(root, &path, out);
        } else {
            out.push(rel);
        }
    }
}

/// Names in `cache_root/layers` (layers and any leftover staging folders).
pub fn layer_entries(cache_root: &Path) -> Vec<String> {
    match std::fs::read_dir(cache_root.join("layers")) {
        Ok(entries) => {
            let mut names: Vec<String> = entries
                .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
                .collect();
            names.sort();
            names
        }
        Err(_) => Vec::new(),
    }
}

/// Lets a test delete a cache folder that holds read-only layers.
pub fn make_removable(dir: &Path) {
    use std::os::unix::fs::PermissionsExt;
    if let Ok(entries) = std::fs::read_dir(dir) {
        let _ = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755));
        for entry in entries.flatten() {
            if entry.path().is_dir() {
                make_removable(&entry.path());
            }
        }
    }
}

/// A temporary cache root that can be deleted even though it holds read-only layers.
pub struct Cache(tempfile::TempDir);

impl Cache {
    pub fn new() -> Self {
        Self(tempfile::tempdir().unwrap())
    }

    pub fn path(&self) -> &Path {
        self.0.path()
    }
}

impl Drop for Cache {
    fn drop(&mut self) {
        make_removable(self.0.path());
    }
}
