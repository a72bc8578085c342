//! HTTP GETs for the index client: one agent with a total time limit per request, bodies read
//! up to a size limit, and failures sorted into "unreachable" (the index may be skipped when a
//! wheelhouse can stand in), time-outs, HTTP statuses and the rest.

use std::io::ErrorKind;
use std::time::Duration;

use crate::error::DepsError;

/// A body that was received in full.
pub(crate) struct Response {
    /// The response body.
    pub body: Vec<u8>,
    /// The `Content-Type` header, if any.
    pub content_type: Option<String>,
}

/// Why a GET produced no body.
#[derive(Debug)]
pub(crate) enum HttpError {
    /// No connection could be made (refused, unresolvable host, unreachable network).
    Unreachable(String),
    /// The request did not complete within the time limit.
    Timeout,
    /// The server answered with a non-success status.
    Status(u16),
    /// The body is larger than the limit given.
    TooLarge(u64),
    /// Anything else (protocol, TLS, I/O while reading).
    Other(String),
}

impl HttpError {
    /// The user-facing error for a failed GET of `url`.
    pub fn into_deps_error(self, url: &str, timeout: Duration) -> DepsError {
        let url = url.to_string();
        let reason = match self {
            HttpError::Timeout => {
                return DepsError::Timeout {
                    url,
                    seconds: timeout.as_secs(),
                };
            }
            HttpError::Unreachable(reason) => format!("the server cannot be reached ({reason})"),
            HttpError::Status(status) => format!("the server answered HTTP {status}"),
            HttpError::TooLarge(limit) => format!("the response is larger than {limit} bytes"),
            HttpError::Other(reason) => reason,
        };
        DepsError::Download { url, reason }
    }
}

/// An HTTP client with Vivarium's settings.
pub(crate) struct Http {
    agent: ureq::Agent,
    timeout: Duration,
}

impl Http {
    /// A client whose every request must finish within `timeout`.
    pub fn new(timeout: Duration) -> Self {
        let tls = ureq::tls::TlsConfig::builder()
            .root_certs(ureq::tls::RootCerts::PlatformVerifier)
            .build();
        let agent = ureq::Agent::config_builder()
            .tls_config(tls)
            .timeout_global(Some(timeout))
            .http_status_as_error(false)
            .user_agent(concat!("vivarium-deps/", env!("CARGO_PKG_VERSION")))
            .build()
            .into();
        Self { agent, timeout }
    }

    /// The time limit of each request.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// GETs `url` with an optional `Accept` header and reads at most `limit` bytes of body.
    pub fn get(&self, url: &str, accept: Option<&str>, limit: u64) -> Result<Response, HttpError> {
        let mut request = self.agent.get(url);
        if let Some(accept) = accept {
            request = request.header("Accept", accept);
        }
        let mut response = request.call().map_err(classify)?;
        let status = response.status().as_u16();
        if !(200..300).contains(&status) {
            return Err(HttpError::Status(status));
        }
        let content_type = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let body = response
            .body_mut()
            .with_config()
            .limit(limit)
            .read_to_vec()
            .map_err(classify)?;
        Ok(Response { body, content_type })
    }
}

fn classify(error: ureq::Error) -> HttpError {
    match error {
        ureq::Error::Timeout(_) => HttpError::Timeout,
        ureq::Error::HostNotFound => HttpError::Unreachable("host not found".into()),
        ureq::Error::ConnectionFailed => HttpError::Unreachable("connection failed".into()),
        ureq::Error::BodyExceedsLimit(limit) => HttpError::TooLarge(limit),
        ureq::Error::Io(io) => match io.kind() {
            ErrorKind::TimedOut => HttpError::Timeout,
            ErrorKind::ConnectionRefused
            | ErrorKind::ConnectionReset
            | ErrorKind::ConnectionAborted
            | ErrorKind::NotConnected
            | ErrorKind::AddrNotAvailable
            | ErrorKind::NetworkUnreachable
            | ErrorKind::HostUnreachable => HttpError::Unreachable(io.to_string()),
            _ => HttpError::Other(io.to_string()),
        },
        other => HttpError::Other(other.to_string()),
    }
}
