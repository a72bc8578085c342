//! One whole, buffered HTTP exchange as the guest hands it over and gets it back, and the
//! header rules applied on the way out: the host sets `Host` and `Content-Length` itself and
//! drops hop-by-hop and forbidden headers.

use std::time::Duration;

use http::{HeaderMap, HeaderName, HeaderValue, Method};

use crate::error::{ErrorCode, Failure};

/// A request as the guest's library built it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GuestRequest {
    /// The method token.
    pub method: String,
    /// The absolute URL.
    pub url: String,
    /// Headers in order, values as bytes.
    pub headers: Vec<(String, Vec<u8>)>,
    /// The whole body.
    pub body: Vec<u8>,
    /// The library's own timeout, if it set one.
    pub timeout: Option<Duration>,
}

/// The response handed back to the guest: status line, headers in order and the whole body
/// (de-chunked, never decompressed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GuestResponse {
    /// The status code.
    pub status: u16,
    /// The reason phrase (the canonical one for the code).
    pub reason: String,
    /// Headers in order, without `Transfer-Encoding` (the body is whole).
    pub headers: Vec<(String, Vec<u8>)>,
    /// The body as received.
    pub body: Vec<u8>,
}

/// Headers the host never forwards: connection management is the host's, `Host` comes from
/// the URL, `Content-Length` from the body, and proxies are never used.
const DROPPED: &[&str] = &[
    "connection",
    "content-length",
    "host",
    "keep-alive",
    "proxy-authorization",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// The method, parsed.
pub(crate) fn method(request: &GuestRequest) -> Result<Method, Failure> {
    Method::from_bytes(request.method.as_bytes()).map_err(|_| {
        Failure::new(
            ErrorCode::HttpRequestMethodInvalid,
            "bad_method",
            format!("{:?} is not an HTTP method", request.method),
        )
    })
}

/// The headers to send: valid, within `cap` bytes in all, without the dropped ones nor the
/// ones the request's own `Connection` header names.
pub(crate) fn outgoing_headers(request: &GuestRequest, cap: usize) -> Result<HeaderMap, Failure> {
    let size: usize = request
        .headers
        .iter()
        .map(|(name, value)| name.len() + value.len() + 4)
        .sum();
    if size > cap {
        return Err(Failure::new(
            ErrorCode::HttpRequestHeaderSize,
            "request_headers_too_large",
            format!("the request's headers are {size} bytes, over the {cap}-byte limit"),
        ));
    }
    let named_by_connection: Vec<String> = request
        .headers
        .iter()
        .filter(|(name, _)| name.eq_ignore_ascii_case("connection"))
        .flat_map(|(_, value)| {
            String::from_utf8_lossy(value)
                .split(',')
                .map(|n| n.trim().to_ascii_lowercase())
                .collect::<Vec<_>>()
        })
        .collect();
    let mut headers = HeaderMap::new();
    for (name, value) in &request.headers {
        let lower = name.to_ascii_lowercase();
        if DROPPED.contains(&lower.as_str()) || named_by_connection.contains(&lower) {
            continue;
        }
        let invalid = |what: &str| {
            Failure::new(
                ErrorCode::HttpRequestHeaderSize,
                "bad_header",
                format!("header {name:?} has an invalid {what}"),
            )
        };
        let name = HeaderName::from_bytes(lower.as_bytes()).map_err(|_| invalid("name"))?;
        let value = HeaderValue::from_bytes(value).map_err(|_| invalid("value"))?;
        headers.append(name, value);
    }
    Ok(headers)
}

/// The response's headers for the guest, within `cap` bytes.
pub(crate) fn incoming_headers(
    headers: &HeaderMap,
    cap: usize,
) -> Result<Vec<(String, Vec<u8>)>, Failure> {
    let mut size = 0;
    let mut kept = Vec::with_capacity(headers.len());
    for (name, value) in headers {
        size += name.as_str().len() + value.len() + 4;
        if size > cap {
            return Err(Failure::new(
                ErrorCode::HttpResponseHeaderSize,
                "response_headers_too_large",
                format!("the response's headers are over the {cap}-byte limit"),
            ));
        }
        if name == http::header::TRANSFER_ENCODING {
            continue;
        }
        kept.push((name.as_str().to_string(), value.as_bytes().to_vec()));
    }
    Ok(kept)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(headers: &[(&str, &str)]) -> GuestRequest {
        GuestRequest {
            method: "POST".into(),
            url: "https://api.example.com/".into(),
            headers: headers
                .iter()
                .map(|(n, v)| (n.to_string(), v.as_bytes().to_vec()))
                .collect(),
            body: Vec::new(),
            timeout: None,
        }
    }

    #[test]
    fn hop_by_hop_host_and_length_headers_are_dropped() {
        let sent = outgoing_headers(
            &request(&[
                ("Host", "127.0.0.1"),
                ("Connection", "keep-alive, X-Secret-Hop"),
                ("X-Secret-Hop", "1"),
                ("Transfer-Encoding", "chunked"),
                ("Content-Length", "99"),
                ("Proxy-Authorization", "Basic eA=="),
                ("Content-Type", "application/json"),
                ("Authorization", "Basic dTpw"),
            ]),
            1024,
        )
        .unwrap();
        let names: Vec<&str> = sent.keys().map(HeaderName::as_str).collect();
        assert_eq!(names, ["content-type", "authorization"]);
    }

    #[test]
    fn header_caps_and_validity_are_enforced() {
        let big = "x".repeat(2000);
        let failure = outgoing_headers(&request(&[("X-Big", &big)]), 1024).unwrap_err();
        assert_eq!(failure.code, ErrorCode::HttpRequestHeaderSize);
        let failure = outgoing_headers(&request(&[("Bad Name", "1")]), 1024).unwrap_err();
        assert!(failure.message.contains("invalid name"));
        let failure =
            outgoing_headers(&request(&[("X-Ok", "a\r\nInjected: 1")]), 1024).unwrap_err();
        assert!(failure.message.contains("invalid value"));
    }

    #[test]
    fn a_bad_method_is_named() {
        let mut bad = request(&[]);
        bad.method = "PO ST".into();
        assert_eq!(
            method(&bad).unwrap_err().code,
            ErrorCode::HttpRequestMethodInvalid
        );
    }
}
