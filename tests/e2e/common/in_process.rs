//! The service's router built in-process ([`vivarium_server::build`]): the same storage,
//! sandbox and routes as `vivarium serve`, but no listener and no process. For rules whose
//! answer is all there is to check: validation, refusals and their messages. What needs a
//! process (signals, restarts, sockets, metrics scraped over HTTP) drives the binary instead.

use std::path::Path;

use axum::body::Body;
use serde_json::json;
use tempfile::TempDir;
use tower::ServiceExt;
use vivarium_server::{App, ServerConfig};

use super::api::Api;
use super::client::{ROOT_EMAIL, ROOT_PASSWORD, Reply};
use super::files::{data_dir, write_bytes};
use super::{CACHE_DIR, ensure_shared_runtime};

/// The service's router on a fresh data folder and the shared interpreter cache, with the
/// test root login, driven by a runtime of its own. Dropping it stops the service's tasks.
pub struct InProcess {
    runtime: tokio::runtime::Runtime,
    app: Option<App>,
    data: TempDir,
}

impl InProcess {
    /// The service with default settings.
    pub fn start() -> Self {
        Self::start_with("")
    }

    /// The service with `toml` as its configuration file, read as `vivarium serve --config`
    /// reads it (then the environment, as for the binary). Fails the test when the service
    /// cannot be built, the interpreter included.
    pub fn start_with(toml: &str) -> Self {
        ensure_shared_runtime();
        let data = data_dir();
        let file = write_bytes(format!("{toml}\n").as_bytes());
        let overrides = json!({
            "data_dir": data.path(),
            "cache_dir": CACHE_DIR,
            "root_user_email": ROOT_EMAIL,
            "root_user_password": ROOT_PASSWORD,
        });
        let config = ServerConfig::load(Some(file.path()), overrides)
            .unwrap_or_else(|e| panic!("the test configuration {toml:?} is refused: {e}"));
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .expect("a Tokio runtime");
        let app = runtime
            .block_on(vivarium_server::build(config))
            .unwrap_or_else(|e| panic!("building the service in-process failed: {e:#}"));
        Self {
            runtime,
            app: Some(app),
            data,
        }
    }
}

impl Api for InProcess {
    fn request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<(&str, Vec<u8>)>,
    ) -> Reply {
        let mut builder = axum::http::Request::builder().method(method).uri(path);
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        let body = match body {
            Some((content_type, bytes)) => {
                builder = builder
                    .header("content-type", content_type)
                    .header("content-length", bytes.len());
                Body::from(bytes)
            }
            None => Body::empty(),
        };
        let request = builder.body(body).expect("a well-formed request");
        let router = self
            .app
            .as_ref()
            .expect("the service runs until dropped")
            .router
            .clone();
        let description = format!("{method} {path}");
        self.runtime.block_on(async move {
            let Ok(response) = router.oneshot(request).await;
            let (status, headers) = (response.status(), response.headers().clone());
            let body = axum::body::to_bytes(response.into_body(), usize::MAX)
                .await
                .unwrap_or_else(|e| panic!("{description}: reading the answer failed: {e}"))
                .to_vec();
            Reply::new(description, status, &headers, body)
        })
    }

    fn data_dir(&self) -> &Path {
        self.data.path()
    }
}

impl Drop for InProcess {
    fn drop(&mut self) {
        if let Some(app) = self.app.take() {
            self.runtime.block_on(app.shutdown());
        }
    }
}
