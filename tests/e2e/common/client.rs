//! The HTTP client of the tests: Basic credentials, one request over a socket, and the
//! answer with its assertions.

use std::time::Duration;

use serde_json::{Value, json};

/// The root login every test server is started with.
pub const ROOT_EMAIL: &str = "root@example.com";
/// The root password every test server is started with.
pub const ROOT_PASSWORD: &str = "a-long-root-password-for-tests-7";

/// Longest a request may take before the client gives up.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(120);

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
    use ::base64::Engine;
    ::base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// An HTTP client for one service's base URL: no proxy, no redirects, every status an answer.
pub struct HttpClient {
    agent: ureq::Agent,
    /// `http://127.0.0.1:PORT`.
    base: String,
}

impl HttpClient {
    /// A client for `base` (`http://host:port`).
    pub fn new(base: String) -> Self {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .proxy(None)
            .timeout_global(Some(REQUEST_TIMEOUT))
            .max_redirects(0)
            .build()
            .into();
        Self { agent, base }
    }

    /// Sends one request with exactly these headers (beyond what HTTP needs) and body; an
    /// error is a failure to get an answer at all.
    pub fn send(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<(&str, Vec<u8>)>,
    ) -> Result<Reply, String> {
        let mut builder = ureq::http::Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base));
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
        let response = result.map_err(|e| format!("{description} failed: {e}"))?;
        let (status, headers) = (response.status(), response.headers().clone());
        let body = response
            .into_body()
            .into_with_config()
            .limit(256 * 1024 * 1024)
            .read_to_vec()
            .map_err(|e| format!("{description}: reading the answer failed: {e}"))?;
        Ok(Reply::new(description, status, &headers, body))
    }
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
    /// An answer to `description` from its parts (header names lower-cased).
    pub fn new(
        description: String,
        status: ureq::http::StatusCode,
        headers: &ureq::http::HeaderMap,
        body: Vec<u8>,
    ) -> Self {
        let headers = headers
            .iter()
            .map(|(name, value)| {
                (
                    name.as_str().to_ascii_lowercase(),
                    String::from_utf8_lossy(value.as_bytes()).into_owned(),
                )
            })
            .collect();
        Self {
            description,
            status: status.as_u16(),
            headers,
            body,
        }
    }

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

    /// Asserts an error answer: `status` and exactly `{"code": status, "message": message}`,
    /// plus the `field` it concerns when the service names one (a string).
    #[track_caller]
    pub fn expect_error(&self, status: u16, message: &str) -> &Self {
        self.expect_status(status);
        let mut body = self.json();
        if let Some(fields) = body.as_object_mut()
            && let Some(field) = fields.remove("field")
        {
            assert!(
                field.is_string(),
                "{}: field {field} is not a name",
                self.description
            );
        }
        assert_eq!(
            body,
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
        write!(
            f,
            "{} -> {} {}",
            self.description,
            self.status,
            super::clip(&self.text(), MAX)
        )
    }
}
