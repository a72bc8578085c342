//! How a request can fail, named as WASI 0.3's `wasi:http` `error-code` names it, so that a
//! later move to components changes only the transport.

use std::fmt;

/// A `wasi:http` error code (the subset the host produces).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    /// The name could not be resolved.
    DnsError,
    /// Resolving the name took longer than the connect timeout.
    DnsTimeout,
    /// The policy refused the destination's address (private, reserved or metadata).
    DestinationIpProhibited,
    /// The destination refused the connection.
    ConnectionRefused,
    /// The connection closed before the exchange finished.
    ConnectionTerminated,
    /// No connection within the connect timeout.
    ConnectionTimeout,
    /// The call's request budget (count or bytes) is spent.
    ConnectionLimitReached,
    /// The TLS handshake failed.
    TlsProtocolError,
    /// The server's certificate did not verify.
    TlsCertificateError,
    /// The policy refused the origin or the method.
    HttpRequestDenied,
    /// The method is not a valid token.
    HttpRequestMethodInvalid,
    /// The URL is not an http or https URL with a host.
    HttpRequestUriInvalid,
    /// The request body is over its cap.
    HttpRequestBodySize,
    /// The request headers are over their cap or invalid.
    HttpRequestHeaderSize,
    /// The response headers are over their cap.
    HttpResponseHeaderSize,
    /// The response body is over its cap.
    HttpResponseBodySize,
    /// No complete response within the request's timeout.
    HttpResponseTimeout,
    /// The server spoke something other than HTTP/1.1.
    HttpProtocolError,
    /// Anything else (a bug of the host, never of the guest).
    InternalError,
}

impl ErrorCode {
    /// The `wasi:http` name of the code.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::DnsError => "DNS-error",
            Self::DnsTimeout => "DNS-timeout",
            Self::DestinationIpProhibited => "destination-IP-prohibited",
            Self::ConnectionRefused => "connection-refused",
            Self::ConnectionTerminated => "connection-terminated",
            Self::ConnectionTimeout => "connection-timeout",
            Self::ConnectionLimitReached => "connection-limit-reached",
            Self::TlsProtocolError => "TLS-protocol-error",
            Self::TlsCertificateError => "TLS-certificate-error",
            Self::HttpRequestDenied => "HTTP-request-denied",
            Self::HttpRequestMethodInvalid => "HTTP-request-method-invalid",
            Self::HttpRequestUriInvalid => "HTTP-request-URI-invalid",
            Self::HttpRequestBodySize => "HTTP-request-body-size",
            Self::HttpRequestHeaderSize => "HTTP-request-header-size",
            Self::HttpResponseHeaderSize => "HTTP-response-header-size",
            Self::HttpResponseBodySize => "HTTP-response-body-size",
            Self::HttpResponseTimeout => "HTTP-response-timeout",
            Self::HttpProtocolError => "HTTP-protocol-error",
            Self::InternalError => "internal-error",
        }
    }

    /// What kind of failure the code is, which decides the exception the guest raises.
    pub fn class(self) -> FailureClass {
        match self {
            Self::HttpRequestDenied
            | Self::DestinationIpProhibited
            | Self::ConnectionLimitReached
            | Self::HttpRequestBodySize
            | Self::HttpRequestHeaderSize
            | Self::HttpRequestUriInvalid
            | Self::HttpRequestMethodInvalid => FailureClass::Refused,
            Self::DnsError => FailureClass::NameNotResolved,
            Self::DnsTimeout | Self::ConnectionTimeout | Self::HttpResponseTimeout => {
                FailureClass::TimedOut
            }
            Self::ConnectionRefused
            | Self::ConnectionTerminated
            | Self::TlsProtocolError
            | Self::TlsCertificateError => FailureClass::ConnectionFailed,
            Self::HttpResponseHeaderSize
            | Self::HttpResponseBodySize
            | Self::HttpProtocolError
            | Self::InternalError => FailureClass::Other,
        }
    }

    /// Whether the policy (rather than the network or the peer) refused the request.
    pub fn is_refusal(self) -> bool {
        self.class() == FailureClass::Refused
    }
}

/// The kinds of failure a guest library tells apart: each becomes its own exception
/// (`ConnectionRefusedError`, `socket.gaierror`, `TimeoutError`, `ConnectionError`, `OSError`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureClass {
    /// The egress policy refused the request.
    Refused,
    /// The name could not be resolved.
    NameNotResolved,
    /// No connection or no complete response in time.
    TimedOut,
    /// The connection was refused, cut or its TLS failed.
    ConnectionFailed,
    /// Anything else.
    Other,
}

impl FailureClass {
    /// The name the guest's `vivarium.http` maps to an exception class.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Refused => "refused",
            Self::NameNotResolved => "name_not_resolved",
            Self::TimedOut => "timed_out",
            Self::ConnectionFailed => "connection_failed",
            Self::Other => "other",
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A failed request: its code, a message for the action's author (which rule refused it and
/// how to allow it, or what the network did), and the reason counted in the metrics.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct Failure {
    /// The `wasi:http` code.
    pub code: ErrorCode,
    /// What happened and what to do about it.
    pub message: String,
    /// A short, fixed label for the metrics (`not_allowed`, `private_address`, ...).
    pub reason: &'static str,
}

impl Failure {
    /// A failure with `code`, `reason` and `message`.
    pub fn new(code: ErrorCode, reason: &'static str, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            reason,
        }
    }
}
