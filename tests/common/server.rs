//! Driving the real `vivarium serve` over HTTP: start it on a free port with its own data
//! folder (and the shared interpreter cache), talk to it with Basic credentials, read its
//! metrics, stop it gracefully (SIGTERM) or not (SIGKILL).

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tempfile::{NamedTempFile, TempDir};

use super::{BIN, CACHE_DIR};

/// The root login every test server is started with.
pub const ROOT_EMAIL: &str = "root@example.com";
/// The root password every test server is started with.
pub const ROOT_PASSWORD: &str = "a-long-root-password-for-tests-7";

/// Longest a start may take: the first start of the suite may download and compile the
/// interpreter.
const STARTUP: Duration = Duration::from_secs(300);
/// Longest a graceful stop may take (the service waits up to 60 s for running calls).
const GRACEFUL_STOP: Duration = Duration::from_secs(90);
/// Longest a request may take before the client gives up.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(120);
/// The line `vivarium serve` prints once it listens.
const SERVING: &str = "Vivarium is serving on http://";

/// HTTP Basic credentials: an email and a password (users) or a token (service accounts).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Creds {
    /// The login.
    pub email: String,
    /// The password or token.
    pub secret: String,
}

impl Creds {
    /// Credentials from their parts.
    pub fn new(email: &str, secret: &str) -> Self {
        Self {
            email: email.to_string(),
            secret: secret.to_string(),
        }
    }

    /// The root user's.
    pub fn root() -> Self {
        Self::new(ROOT_EMAIL, ROOT_PASSWORD)
    }

    /// The `Authorization` header value.
    pub fn header(&self) -> String {
        format!(
            "Basic {}",
            base64(format!("{}:{}", self.email, self.secret).as_bytes())
        )
    }
}

/// Standard base64 with padding.
pub fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// A fresh data folder for one server (kept across restarts by holding it).
pub fn data_dir() -> TempDir {
    tempfile::Builder::new()
        .prefix("vivarium-server-data-")
        .tempdir()
        .expect("temporary data folder")
}

/// How to start a server besides its data folder.
#[derive(Debug, Default, Clone)]
pub struct Options {
    /// Extra command-line arguments after `serve`.
    pub args: Vec<String>,
    /// The contents of the TOML file passed with `--config` (empty by default).
    pub config: Option<String>,
    /// More environment variables of the server process.
    pub env: Vec<(String, String)>,
}

impl Options {
    /// Adds command-line arguments.
    pub fn args(mut self, args: &[&str]) -> Self {
        self.args.extend(args.iter().map(|a| a.to_string()));
        self
    }

    /// Sets an environment variable of the server process.
    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.env.push((key.to_string(), value.to_string()));
        self
    }

    /// Sets the TOML configuration file's contents.
    pub fn config(mut self, toml: &str) -> Self {
        self.config = Some(toml.to_string());
        self
    }
}

/// A running `vivarium serve`. Dropping it stops it (SIGTERM, then SIGKILL if it lingers).
pub struct Server {
    child: Option<Child>,
    /// Where it listens.
    pub addr: SocketAddr,
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    data_dir: PathBuf,
    stdout: Arc<Mutex<String>>,
    stderr: Arc<Mutex<String>>,
    agent: ureq::Agent,
    readers: Vec<thread::JoinHandle<()>>,
    _config_file: NamedTempFile,
}

impl Server {
    /// Starts a server with default settings on `data_dir`.
    pub fn start(data_dir: &Path) -> Self {
        Self::start_with(data_dir, Options::default())
    }

    /// Starts a server on `data_dir` with `options`, and waits until it listens.
    pub fn start_with(data_dir: &Path, options: Options) -> Self {
        super::ensure_shared_runtime();
        let toml = format!("{}\n", options.config.as_deref().unwrap_or_default());
        let config_file = super::write_bytes(toml.as_bytes());
        let mut command = Command::new(BIN);
        command
            .arg("serve")
            .arg("--listen")
            .arg("127.0.0.1:0")
            .arg("--data-dir")
            .arg(data_dir)
            .args(&options.args)
            .env_remove("RUST_LOG")
            .env("VIVARIUM_CACHE_DIR", CACHE_DIR)
            .env("VIVARIUM_ROOT_USER_EMAIL", ROOT_EMAIL)
            .env("VIVARIUM_ROOT_USER_PASSWORD", ROOT_PASSWORD)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .arg("--config")
            .arg(config_file.path())
            .envs(options.env.iter().map(|(k, v)| (k, v)));
        let mut child = command
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {BIN} serve: {e}"));
        let stdout = Arc::new(Mutex::new(String::new()));
        let stderr = Arc::new(Mutex::new(String::new()));
        let (found, address) = mpsc::channel::<String>();
        let mut readers = Vec::new();
        {
            let stdout = stdout.clone();
            let source = child.stdout.take().expect("stdout is piped");
            readers.push(thread::spawn(move || {
                for line in BufReader::new(source).lines() {
                    let Ok(line) = line else { break };
                    if let Some(rest) = line.strip_prefix(SERVING) {
                        let _ = found.send(rest.trim().to_string());
                    }
                    let mut text = stdout.lock().unwrap_or_else(|p| p.into_inner());
                    text.push_str(&line);
                    text.push('\n');
                }
            }));
        }
        {
            let stderr = stderr.clone();
            let mut source = child.stderr.take().expect("stderr is piped");
            readers.push(thread::spawn(move || {
                let mut buffer = [0u8; 8192];
                loop {
                    match source.read(&mut buffer) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => stderr
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .push_str(&String::from_utf8_lossy(&buffer[..n])),
                    }
                }
            }));
        }
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .proxy(None)
            .timeout_global(Some(REQUEST_TIMEOUT))
            .max_redirects(0)
            .build()
            .into();
        let mut server = Self {
            child: Some(child),
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            base: String::new(),
            data_dir: data_dir.to_path_buf(),
            stdout,
            stderr,
            agent,
            readers,
            _config_file: config_file,
        };
        match address.recv_timeout(STARTUP) {
            Ok(address) => {
                server.addr = address
                    .parse()
                    .unwrap_or_else(|e| panic!("bad address {address:?}: {e}"));
                server.base = format!("http://{address}");
            }
            Err(error) => {
                server.kill();
                panic!(
                    "the server did not say it was serving ({error}){}",
                    server.dump()
                );
            }
        }
        server
    }

    /// The data folder it was started on.
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// What it printed on stdout so far.
    pub fn stdout(&self) -> String {
        self.stdout
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// What it printed on stderr so far (its log).
    pub fn stderr(&self) -> String {
        self.stderr
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Its output, for failure messages (the log's tail only).
    pub fn dump(&self) -> String {
        const TAIL: usize = 6000;
        let stderr = self.stderr();
        let mut start = stderr.len().saturating_sub(TAIL);
        while !stderr.is_char_boundary(start) {
            start += 1;
        }
        format!(
            "\n--- server stdout:\n{}\n--- server stderr (tail):\n{}\n---",
            self.stdout(),
            &stderr[start..]
        )
    }

    /// The process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Sends SIGTERM and waits for the process to exit (graceful shutdown).
    pub fn terminate(&mut self) -> ExitStatus {
        self.sigterm();
        self.wait_exit()
    }

    /// Sends SIGTERM without waiting.
    pub fn sigterm(&self) {
        send_sigterm(self.pid().expect("the server is running"));
    }

    /// Waits for the process to exit by itself (after [`Server::sigterm`]).
    pub fn wait_exit(&mut self) -> ExitStatus {
        let mut child = self.child.take().expect("the server is running");
        let started = Instant::now();
        loop {
            if let Some(status) = child.try_wait().expect("waiting for the server") {
                // Its output is complete once the readers saw the end of the pipes.
                for reader in self.readers.drain(..) {
                    let _ = reader.join();
                }
                return status;
            }
            if started.elapsed() > GRACEFUL_STOP {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "the server still ran {GRACEFUL_STOP:?} after SIGTERM{}",
                    self.dump()
                );
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// Sends `POST path` with a JSON `body` from a thread and returns without waiting for the
    /// answer, which never comes when the server is killed mid-request.
    pub fn post_without_waiting(
        &self,
        path: &str,
        auth: &Creds,
        body: &str,
    ) -> thread::JoinHandle<()> {
        let (addr, header, path, body) =
            (self.addr, auth.header(), path.to_string(), body.to_string());
        thread::spawn(move || {
            let Ok(mut stream) = std::net::TcpStream::connect(addr) else {
                return;
            };
            let request = format!(
                "POST {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: {header}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            );
            let _ = std::io::Write::write_all(&mut stream, request.as_bytes());
            let mut sink = Vec::new();
            let _ = stream.read_to_end(&mut sink);
        })
    }

    /// Sends SIGKILL (a crash) and reaps the process.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// The full URL of `path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Sends one request with exactly these headers (beyond what HTTP needs) and body.
    pub fn request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<(&str, Vec<u8>)>,
    ) -> Reply {
        let mut builder = ureq::http::Request::builder()
            .method(method)
            .uri(self.url(path));
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        let description = format!("{method} {path}");
        let result = match body {
            Some((content_type, bytes)) => {
                let request = builder
                    .header("content-type", content_type)
                    .body(bytes)
                    .expect("a well-formed request");
                self.agent.run(request)
            }
            None => {
                let request = builder.body(()).expect("a well-formed request");
                self.agent.run(request)
            }
        };
        let response =
            result.unwrap_or_else(|e| panic!("{description} failed: {e}{}", self.dump()));
        let status = response.status().as_u16();
        let headers = response
            .headers()
            .iter()
            .map(|(name, value)| {
                (
                    name.as_str().to_ascii_lowercase(),
                    String::from_utf8_lossy(value.as_bytes()).into_owned(),
                )
            })
            .collect();
        let body = response
            .into_body()
            .into_with_config()
            .limit(256 * 1024 * 1024)
            .read_to_vec()
            .unwrap_or_else(|e| panic!("{description}: reading the answer failed: {e}"));
        Reply {
            description,
            status,
            headers,
            body,
        }
    }

    /// A request with optional credentials and an optional JSON body.
    pub fn call(
        &self,
        method: &str,
        path: &str,
        auth: Option<&Creds>,
        body: Option<&Value>,
    ) -> Reply {
        let header = auth.map(Creds::header);
        let headers: Vec<(&str, &str)> = header
            .as_deref()
            .map(|h| vec![("authorization", h)])
            .unwrap_or_default();
        let body = body.map(|value| ("application/json", value.to_string().into_bytes()));
        self.request(method, path, &headers, body)
    }

    /// `GET path`.
    pub fn get(&self, path: &str, auth: &Creds) -> Reply {
        self.call("GET", path, Some(auth), None)
    }

    /// `POST path` with a JSON body.
    pub fn post(&self, path: &str, auth: &Creds, body: &Value) -> Reply {
        self.call("POST", path, Some(auth), Some(body))
    }

    /// `PUT path` with a JSON body.
    pub fn put(&self, path: &str, auth: &Creds, body: &Value) -> Reply {
        self.call("PUT", path, Some(auth), Some(body))
    }

    /// `DELETE path` without a body.
    pub fn delete(&self, path: &str, auth: &Creds) -> Reply {
        self.call("DELETE", path, Some(auth), None)
    }

    /// `POST /api/{org}/actions/upload` with a multipart form.
    pub fn upload(&self, org: &str, auth: &Creds, form: &Form) -> Reply {
        let (content_type, body) = form.encode();
        let header = auth.header();
        self.request(
            "POST",
            &format!("/api/{org}/actions/upload"),
            &[("authorization", &header)],
            Some((&content_type, body)),
        )
    }

    /// Uploads an action that must be accepted; answers its id.
    #[track_caller]
    pub fn create_action(&self, org: &str, auth: &Creds, form: &Form) -> String {
        let reply = self.upload(org, auth, form);
        let answer = reply.ok_json();
        answer["uuid"]
            .as_str()
            .unwrap_or_else(|| panic!("no uuid in {answer}"))
            .to_string()
    }

    /// Creates a service account of `org` (as `auth`) and answers its credentials.
    #[track_caller]
    pub fn create_service_account(&self, org: &str, auth: &Creds, email: &str) -> Creds {
        let answer = self
            .post(
                &format!("/api/{org}/service_accounts"),
                auth,
                &json!({ "email": email }),
            )
            .ok_json();
        let token = answer["token"]
            .as_str()
            .unwrap_or_else(|| panic!("no token in {answer}"));
        Creds::new(email, token)
    }

    /// Creates `role` in `org`, grants it `grants` (each `(verb, object)` on action scripts)
    /// and assigns it to `principals`.
    #[track_caller]
    pub fn create_role(
        &self,
        org: &str,
        auth: &Creds,
        role: &str,
        grants: &[(&str, &str)],
        principals: &[&str],
    ) -> Value {
        self.post(&format!("/api/{org}/roles"), auth, &json!({ "role": role }))
            .ok_json();
        self.put(
            &format!("/api/{org}/roles/{role}"),
            auth,
            &json!({ "add": action_grants(grants), "add_users": principals }),
        )
        .ok_json()
    }

    /// Adds a user to `org` with `role` (`admin` or `member`); answers their credentials.
    #[track_caller]
    pub fn create_user(&self, org: &str, auth: &Creds, email: &str, role: &str) -> Creds {
        let password = format!("password-of-{email}");
        self.post(
            &format!("/api/{org}/users"),
            auth,
            &json!({ "email": email, "password": password, "role": role }),
        )
        .ok_json();
        Creds::new(email, &password)
    }

    /// `POST /api/{org}/actions/test/{id}` with `inputs`.
    pub fn test_run(&self, org: &str, auth: &Creds, id: &str, inputs: &Value) -> Reply {
        self.post(
            &format!("/api/{org}/actions/test/{id}"),
            auth,
            &json!({ "inputs": inputs }),
        )
    }

    /// The run history of an action (first page of 100), as root.
    #[track_caller]
    pub fn runs(&self, org: &str, id: &str) -> Value {
        self.get(
            &format!("/api/{org}/actions/{id}/runs?page=1&per_page=100"),
            &Creds::root(),
        )
        .ok_json()
    }

    /// The action's details, as root.
    #[track_caller]
    pub fn action(&self, org: &str, id: &str) -> Value {
        self.get(&format!("/api/{org}/actions/{id}"), &Creds::root())
            .ok_json()
    }

    /// The organization's action list, as root.
    #[track_caller]
    pub fn actions(&self, org: &str) -> Vec<Value> {
        self.get(&format!("/api/{org}/actions"), &Creds::root())
            .ok_json()
            .as_array()
            .expect("the action list is an array")
            .clone()
    }

    /// The current metrics.
    #[track_caller]
    pub fn metrics(&self) -> Metrics {
        let reply = self.request("GET", "/metrics", &[], None);
        reply.expect_status(200);
        Metrics::parse(&reply.text())
    }

    /// Files under the blob folder of `org`'s action ZIPs (none when the folder is absent).
    pub fn blob_files(&self, org: &str) -> Vec<PathBuf> {
        blob_files(&self.data_dir, org)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        send_sigterm(child.id());
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(15) {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
    }
}

fn send_sigterm(pid: u32) {
    let status = Command::new("kill")
        .arg("-TERM")
        .arg(pid.to_string())
        .status()
        .expect("running kill");
    assert!(status.success(), "kill -TERM {pid} failed: {status}");
}

/// Files (recursively) under `<data_dir>/blobs/orgs/<org>/actions`.
pub fn blob_files(data_dir: &Path, org: &str) -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                walk(&path, out);
            } else {
                out.push(path);
            }
        }
    }
    let mut found = Vec::new();
    walk(
        &data_dir
            .join("blobs")
            .join("orgs")
            .join(org)
            .join("actions"),
        &mut found,
    );
    found.sort();
    found
}

/// Grants on action scripts as the role route takes them, from `(verb, object)` pairs.
pub fn action_grants(grants: &[(&str, &str)]) -> Value {
    Value::Array(
        grants
            .iter()
            .map(|(verb, object)| {
                json!({ "resource": "action_scripts", "object": object, "verb": verb })
            })
            .collect(),
    )
}

/// One answer.
#[derive(Debug, Clone)]
pub struct Reply {
    /// `METHOD path`, for messages.
    pub description: String,
    /// The HTTP status.
    pub status: u16,
    /// Headers, names lower-cased.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
}

impl Reply {
    /// The body as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// A header's value.
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The body as JSON.
    #[track_caller]
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("{} answered non-JSON ({e}): {}", self.description, self))
    }

    /// Asserts the status.
    #[track_caller]
    pub fn expect_status(&self, status: u16) -> &Self {
        assert_eq!(
            self.status, status,
            "{} answered {} instead of {status}: {}",
            self.description, self.status, self
        );
        self
    }

    /// Asserts 200 and answers the JSON body.
    #[track_caller]
    pub fn ok_json(&self) -> Value {
        self.expect_status(200);
        self.json()
    }

    /// Asserts an error answer: `status` and exactly `{"code": status, "message": message}`.
    #[track_caller]
    pub fn expect_error(&self, status: u16, message: &str) -> &Self {
        self.expect_status(status);
        assert_eq!(
            self.json(),
            json!({ "code": status, "message": message }),
            "{} answered an unexpected error body",
            self.description
        );
        self
    }

    /// Asserts an error answer with `status` whose message starts with `prefix`; answers the message.
    #[track_caller]
    pub fn expect_error_prefix(&self, status: u16, prefix: &str) -> String {
        self.expect_status(status);
        let body = self.json();
        assert_eq!(body["code"], json!(status), "{}: {body}", self.description);
        let message = body["message"]
            .as_str()
            .unwrap_or_else(|| panic!("{}: no message in {body}", self.description))
            .to_string();
        assert!(
            message.starts_with(prefix),
            "{}: message {message:?} does not start with {prefix:?}",
            self.description
        );
        message
    }
}

impl std::fmt::Display for Reply {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        const MAX: usize = 3000;
        let text = self.text();
        let mut end = text.len().min(MAX);
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        write!(
            f,
            "{} -> {} {}",
            self.description,
            self.status,
            &text[..end]
        )
    }
}

/// A multipart/form-data body, written by hand.
#[derive(Debug, Clone, Default)]
pub struct Form {
    parts: Vec<(String, Option<String>, Vec<u8>)>,
}

/// The boundary between parts; never found in the test payloads.
const BOUNDARY: &str = "vivarium-test-boundary-Zq81mXf0Kd4PwB";

impl Form {
    /// An empty form.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a text field.
    pub fn text(mut self, name: &str, value: &str) -> Self {
        self.parts
            .push((name.to_string(), None, value.as_bytes().to_vec()));
        self
    }

    /// Adds a file field.
    pub fn file(mut self, name: &str, file_name: &str, bytes: &[u8]) -> Self {
        self.parts.push((
            name.to_string(),
            Some(file_name.to_string()),
            bytes.to_vec(),
        ));
        self
    }

    /// Drops every field named `name`.
    pub fn without(mut self, name: &str) -> Self {
        self.parts.retain(|(n, _, _)| n != name);
        self
    }

    /// Replaces (or adds) the text field `name`.
    pub fn set(self, name: &str, value: &str) -> Self {
        self.without(name).text(name, value)
    }

    /// The content type and the body.
    pub fn encode(&self) -> (String, Vec<u8>) {
        let mut body = Vec::new();
        for (name, file_name, bytes) in &self.parts {
            body.extend_from_slice(format!("--{BOUNDARY}\r\n").as_bytes());
            match file_name {
                Some(file_name) => body.extend_from_slice(
                    format!(
                        "Content-Disposition: form-data; name=\"{name}\"; filename=\"{file_name}\"\r\nContent-Type: application/zip\r\n\r\n"
                    )
                    .as_bytes(),
                ),
                None => body.extend_from_slice(
                    format!("Content-Disposition: form-data; name=\"{name}\"\r\n\r\n").as_bytes(),
                ),
            }
            body.extend_from_slice(bytes);
            body.extend_from_slice(b"\r\n");
        }
        body.extend_from_slice(format!("--{BOUNDARY}--\r\n").as_bytes());
        (format!("multipart/form-data; boundary={BOUNDARY}"), body)
    }
}

/// The upload form of a `service` action run as `service_account`.
pub fn service_action(name: &str, zip: &[u8], service_account: &str) -> Form {
    Form::new()
        .text("name", name)
        .text("execution_details", "service")
        .text("service_account", service_account)
        .text("filename", &format!("{name}.zip"))
        .file("file", &format!("{name}.zip"), zip)
}

/// A ZIP holding one `main.py` with `source`.
pub fn zip_main(source: &str) -> Vec<u8> {
    super::zip_entries(
        &[("main.py", source.as_bytes())],
        zip::CompressionMethod::Deflated,
    )
}

/// A parsed Prometheus text exposition.
#[derive(Debug, Clone)]
pub struct Metrics {
    /// The raw text.
    pub text: String,
    samples: Vec<(String, BTreeMap<String, String>, f64)>,
}

impl Metrics {
    /// Parses the exposition (comments skipped).
    pub fn parse(text: &str) -> Self {
        let mut samples = Vec::new();
        for line in text.lines() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let Some((series, value)) = line.rsplit_once(' ') else {
                continue;
            };
            let Ok(value) = value.parse::<f64>() else {
                continue;
            };
            let (name, labels) = match series.split_once('{') {
                Some((name, rest)) => (name, parse_labels(rest.trim_end_matches('}'))),
                None => (series, BTreeMap::new()),
            };
            samples.push((name.to_string(), labels, value));
        }
        Self {
            text: text.to_string(),
            samples,
        }
    }

    /// The sample `name` with exactly `labels`, if present.
    pub fn get(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let wanted: BTreeMap<String, String> = labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        self.samples
            .iter()
            .find(|(n, l, _)| n == name && *l == wanted)
            .map(|(_, _, v)| *v)
    }

    /// The sample, or 0 when absent (counters not yet incremented).
    pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.get(name, labels).unwrap_or(0.0)
    }

    /// Guest instances created since start.
    #[track_caller]
    pub fn instances(&self) -> f64 {
        self.get("vivarium_sandbox_instances_created", &[])
            .unwrap_or_else(|| panic!("no instance gauge in:\n{}", self.text))
    }

    /// `vivarium_runs_total{outcome, trigger}`.
    pub fn runs(&self, outcome: &str, trigger: &str) -> f64 {
        self.value(
            "vivarium_runs_total",
            &[("outcome", outcome), ("trigger", trigger)],
        )
    }
}

fn parse_labels(text: &str) -> BTreeMap<String, String> {
    let mut labels = BTreeMap::new();
    let mut rest = text;
    while let Some((key, after)) = rest.split_once("=\"") {
        let mut value = String::new();
        let mut chars = after.char_indices();
        let mut end = after.len();
        while let Some((i, c)) = chars.next() {
            match c {
                '\\' => {
                    if let Some((_, escaped)) = chars.next() {
                        value.push(match escaped {
                            'n' => '\n',
                            other => other,
                        });
                    }
                }
                '"' => {
                    end = i + 1;
                    break;
                }
                other => value.push(other),
            }
        }
        labels.insert(key.trim_start_matches(',').trim().to_string(), value);
        rest = &after[end..];
    }
    labels
}

/// Polls `probe` until it answers `Some`, failing with `what` after `timeout`.
#[track_caller]
pub fn wait_for<T>(timeout: Duration, what: &str, mut probe: impl FnMut() -> Option<T>) -> T {
    let started = Instant::now();
    loop {
        if let Some(value) = probe() {
            return value;
        }
        assert!(
            started.elapsed() < timeout,
            "gave up after {timeout:?} waiting for {what}"
        );
        thread::sleep(Duration::from_millis(100));
    }
}
