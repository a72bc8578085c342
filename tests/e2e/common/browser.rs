//! A real browser for the console's tests: Debian's `chromium`, driven through
//! `chromedriver` over WebDriver, headless, with a fresh profile each time. Without them the
//! tests fail, saying what to install: they never pass without a browser.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};
use tempfile::TempDir;

use super::wait_for;

/// Where the tests save a screenshot of each page they visit.
pub fn screenshot_dir() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .map_or_else(|| PathBuf::from("target"), Path::to_path_buf)
        .join("console-screenshots")
}

/// The first of `candidates` that exists, or the one on the `PATH` named `name`.
fn find_program(variable: &str, candidates: &[&str], name: &str) -> PathBuf {
    if let Ok(given) = std::env::var(variable) {
        return PathBuf::from(given);
    }
    let found = candidates
        .iter()
        .map(PathBuf::from)
        .find(|path| path.exists())
        .or_else(|| {
            std::env::var_os("PATH").and_then(|paths| {
                std::env::split_paths(&paths)
                    .map(|dir| dir.join(name))
                    .find(|path| path.exists())
            })
        });
    found.unwrap_or_else(|| {
        panic!(
            "the console's browser tests need {name}: install Debian's chromium and \
             chromium-driver (apt-get install chromium chromium-driver), or point {variable} at it"
        )
    })
}

/// A headless Chromium session, with the chromedriver that drives it.
pub struct Browser {
    /// The WebDriver session.
    pub client: Client,
    driver: Child,
    _profile: TempDir,
}

impl Browser {
    /// Starts chromedriver and opens a session in a fresh profile.
    pub async fn start() -> Self {
        let driver_path = find_program(
            "VIVARIUM_CHROMEDRIVER",
            &["/usr/bin/chromedriver", "/usr/lib/chromium/chromedriver"],
            "chromedriver",
        );
        let chromium = find_program(
            "VIVARIUM_CHROMIUM",
            &["/usr/bin/chromium", "/usr/bin/chromium-browser"],
            "chromium",
        );
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .expect("a free port for chromedriver")
            .port();
        let driver = Command::new(&driver_path)
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", driver_path.display()));
        let url = format!("http://127.0.0.1:{port}");
        wait_for(Duration::from_secs(30), "chromedriver to listen", || {
            ureq::get(&format!("{url}/status")).call().ok().map(|_| ())
        });
        let profile = tempfile::tempdir().expect("a profile folder");
        let mut capabilities = serde_json::Map::new();
        capabilities.insert(
            "goog:chromeOptions".to_string(),
            json!({
                "binary": chromium,
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    "--disable-quic", "--no-first-run", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync", "--window-size=1280,960",
                    format!("--user-data-dir={}", profile.path().display()),
                ],
            }),
        );
        // Two TLS back ends are linked into the tests, so rustls needs to be told which one
        // to use (chromedriver is plain HTTP; the client insists on a provider anyway).
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
        let client = ClientBuilder::rustls()
            .expect("a WebDriver client")
            .capabilities(capabilities)
            .connect(&url)
            .await
            .unwrap_or_else(|e| panic!("cannot open a Chromium session through chromedriver: {e}"));
        Self {
            client,
            driver,
            _profile: profile,
        }
    }

    /// Opens `url`.
    pub async fn goto(&self, url: &str) {
        self.client
            .goto(url)
            .await
            .unwrap_or_else(|e| panic!("opening {url}: {e}"));
    }

    /// Waits for the element `css` and types `text` into it.
    pub async fn type_into(&self, css: &str, text: &str) {
        self.element(css)
            .await
            .send_keys(text)
            .await
            .unwrap_or_else(|e| panic!("typing into {css}: {e}"));
    }

    /// Waits for the element `css` and clicks it.
    pub async fn click(&self, css: &str) {
        self.element(css)
            .await
            .click()
            .await
            .unwrap_or_else(|e| panic!("clicking {css}: {e}"));
    }

    /// The element `css`, once it is there.
    pub async fn element(&self, css: &str) -> fantoccini::elements::Element {
        let found = self
            .client
            .wait()
            .at_most(Duration::from_secs(30))
            .for_element(Locator::Css(css))
            .await;
        match found {
            Ok(element) => element,
            Err(e) => panic!(
                "waiting for {css}: {e}; the page reads:\n{}",
                self.page_text().await
            ),
        }
    }

    /// The text of the element `css`.
    pub async fn text(&self, css: &str) -> String {
        self.element(css)
            .await
            .text()
            .await
            .unwrap_or_else(|e| panic!("reading {css}: {e}"))
    }

    /// Runs `script` in the page with `args`, answering its return value.
    pub async fn run(&self, script: &str, args: Vec<Value>) -> Value {
        self.client
            .execute(script, args)
            .await
            .unwrap_or_else(|e| panic!("running {script}: {e}"))
    }

    /// The page's visible text, for failure messages.
    pub async fn page_text(&self) -> String {
        match self
            .client
            .execute(
                "return document.body ? document.body.innerText : ''",
                vec![],
            )
            .await
        {
            Ok(Value::String(text)) => text,
            other => format!("{other:?}"),
        }
    }

    /// Waits until `probe` (a script returning a value, or null while not yet) answers.
    pub async fn until(&self, what: &str, probe: &str) -> Value {
        for _ in 0..600 {
            let value = self.run(probe, vec![]).await;
            if !value.is_null() && value != Value::Bool(false) {
                return value;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!(
            "waited 30 s for {what}; the page reads:\n{}",
            self.page_text().await
        )
    }

    /// Signs in at `base` as `email`.
    pub async fn sign_in(&self, base: &str, email: &str, password: &str) {
        self.goto(&format!("{base}/console/sign-in")).await;
        self.type_into("#email", email).await;
        self.type_into("#password", password).await;
        self.click("#sign-in").await;
        self.until(
            "the sign-in to go through",
            "return !location.pathname.startsWith('/console/sign-in') || null",
        )
        .await;
    }

    /// Saves a screenshot of the page as `name`.png under [`screenshot_dir`].
    pub async fn screenshot(&self, name: &str) {
        let png = self
            .client
            .screenshot()
            .await
            .unwrap_or_else(|e| panic!("a screenshot of {name}: {e}"));
        let dir = screenshot_dir();
        std::fs::create_dir_all(&dir).expect("the screenshot folder");
        std::fs::write(dir.join(format!("{name}.png")), png).expect("writing a screenshot");
    }

    /// Ends the session (chromedriver stops when the browser is dropped).
    pub async fn close(self) {
        let _ = self.client.clone().close().await;
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

/// Runs a browser test's steps on a runtime of its own.
pub fn with_browser<F, Fut>(steps: F)
where
    F: FnOnce(Browser) -> Fut,
    Fut: std::future::Future<Output = Browser>,
{
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime for the browser");
    runtime.block_on(async {
        let browser = Browser::start().await;
        steps(browser).await.close().await;
    });
}
