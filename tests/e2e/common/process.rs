//! A real `vivarium serve` process: started on a free port with its own data folder (and the
//! shared interpreter cache) and the test root login, its output kept, stopped gracefully
//! (SIGTERM) or not (SIGKILL).

use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::thread;
use std::time::Duration;

use tempfile::NamedTempFile;

use super::api::Api;
use super::client::{Creds, HttpClient, ROOT_EMAIL, ROOT_PASSWORD, Reply};
use super::{BIN, CACHE_DIR, wait_or_kill};

/// Longest a start may take: the first start of the suite may download and compile the
/// interpreter.
const STARTUP: Duration = Duration::from_secs(300);
/// Longest a graceful stop may take (the service waits up to 60 s for running calls).
const GRACEFUL_STOP: Duration = Duration::from_secs(90);
/// The line `vivarium serve` prints once it listens.
const SERVING: &str = "Vivarium is serving on http://";

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
    data_dir: PathBuf,
    stdout: Arc<Mutex<String>>,
    stderr: Arc<Mutex<String>>,
    client: HttpClient,
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
        let config_file = super::files::write_bytes(toml.as_bytes());
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
        let mut server = Self {
            child: Some(child),
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            data_dir: data_dir.to_path_buf(),
            stdout,
            stderr,
            client: HttpClient::new(String::new()),
            readers,
            _config_file: config_file,
        };
        match address.recv_timeout(STARTUP) {
            Ok(address) => {
                server.addr = address
                    .parse()
                    .unwrap_or_else(|e| panic!("bad address {address:?}: {e}"));
                server.client = HttpClient::new(format!("http://{address}"));
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
        let Some(status) = wait_or_kill(&mut child, GRACEFUL_STOP) else {
            panic!(
                "the server still ran {GRACEFUL_STOP:?} after SIGTERM{}",
                self.dump()
            );
        };
        // Its output is complete once the readers saw the end of the pipes.
        for reader in self.readers.drain(..) {
            let _ = reader.join();
        }
        status
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
}

impl Api for Server {
    fn request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<(&str, Vec<u8>)>,
    ) -> Reply {
        self.client
            .send(method, path, headers, body)
            .unwrap_or_else(|e| panic!("{e}{}", self.dump()))
    }

    fn data_dir(&self) -> &Path {
        &self.data_dir
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        send_sigterm(child.id());
        wait_or_kill(&mut child, Duration::from_secs(15));
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
