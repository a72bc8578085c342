//! The HTTP client that enforces a [`Permit`]: it resolves the name on the host, keeps only
//! the addresses the policy allows, and connects only to those (the connection's resolver
//! answers with exactly the checked list, so the name is never looked up twice: no DNS
//! rebinding). No proxy, no redirects, no decompression, no retries, HTTP/1.1 only, and a
//! fresh connection per request, so that nothing is shared between calls or tenants.

use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;

use crate::error::{ErrorCode, Failure};
use crate::exchange::{GuestRequest, GuestResponse, incoming_headers, method, outgoing_headers};
use crate::limits::EgressLimits;
use crate::policy::{Permit, check_address};

/// A name lookup, replaceable so that tests can make a name resolve to anything.
pub trait Lookup: Send + Sync {
    /// The addresses `host` resolves to (A and AAAA).
    fn lookup(&self, host: &str) -> Pin<Box<dyn Future<Output = io::Result<Vec<IpAddr>>> + Send>>;
}

/// The system resolver (`getaddrinfo`, through tokio).
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemLookup;

impl Lookup for SystemLookup {
    fn lookup(&self, host: &str) -> Pin<Box<dyn Future<Output = io::Result<Vec<IpAddr>>> + Send>> {
        let host = host.to_string();
        Box::pin(async move {
            let found = tokio::net::lookup_host((host.as_str(), 0)).await?;
            Ok(found.map(|address| address.ip()).collect())
        })
    }
}

/// Sends permitted requests. Cheap to clone; the TLS configuration is built once.
#[derive(Clone)]
pub struct EgressClient {
    tls: Arc<rustls::ClientConfig>,
    lookup: Arc<dyn Lookup>,
}

impl std::fmt::Debug for EgressClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EgressClient").finish_non_exhaustive()
    }
}

/// The outcome of a request that reached the network, for the audit line.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Traffic {
    /// Body bytes sent.
    pub sent: u64,
    /// Body bytes received.
    pub received: u64,
}

impl EgressClient {
    /// A client that trusts the platform's roots plus `extra_roots_pem` (PEM certificates:
    /// an operator's internal CA, or a test's), resolving names with `lookup`.
    pub fn new(extra_roots_pem: Option<&[u8]>, lookup: Arc<dyn Lookup>) -> Result<Self, String> {
        let extra: Vec<CertificateDer<'static>> = match extra_roots_pem {
            Some(pem) => CertificateDer::pem_slice_iter(pem)
                .collect::<Result<_, _>>()
                .map_err(|e| format!("the extra TLS roots are not PEM certificates: {e}"))?,
            None => Vec::new(),
        };
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let verifier = verifier(extra, &provider)?;
        let mut tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("TLS versions: {e}"))?
            .dangerous()
            .with_custom_certificate_verifier(verifier)
            .with_no_client_auth();
        tls.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Self {
            tls: Arc::new(tls),
            lookup,
        })
    }

    /// Sends `request` as `permit` allows, within `timeout` and `limits`, reading at most
    /// `body_room` bytes of response body (the call's remaining byte budget, capped by the
    /// per-response limit).
    pub async fn send(
        &self,
        permit: &Permit,
        request: &GuestRequest,
        limits: &EgressLimits,
        timeout: Duration,
        body_room: usize,
    ) -> Result<(GuestResponse, Traffic), Failure> {
        let method = method(request)?;
        let headers = outgoing_headers(request, limits.header_bytes)?;
        let addresses = self.addresses(permit, limits.connect_timeout).await?;
        let client = self.client_for(permit, addresses, limits)?;
        let exchange = async {
            let response = client
                .request(method, permit.url.clone())
                .headers(headers)
                .body(request.body.clone())
                .send()
                .await
                .map_err(|e| classify_error(&e, permit))?;
            read_response(response, limits, body_room).await
        };
        let (response, received) =
            tokio::time::timeout(timeout, exchange)
                .await
                .map_err(|_| {
                    Failure::new(
                        ErrorCode::HttpResponseTimeout,
                        "timeout",
                        format!(
                            "no complete response from {} within {:.1} s",
                            permit.host,
                            timeout.as_secs_f64()
                        ),
                    )
                })??;
        let traffic = Traffic {
            sent: request.body.len() as u64,
            received,
        };
        Ok((response, traffic))
    }

    /// The permitted addresses of the permit's host: the IP literal itself, or what the name
    /// resolves to, less what the policy forbids; none left is a refusal.
    async fn addresses(
        &self,
        permit: &Permit,
        connect_timeout: Duration,
    ) -> Result<Vec<SocketAddr>, Failure> {
        if let Ok(literal) = permit.host.parse::<IpAddr>() {
            check_address(permit, literal)?;
            return Ok(vec![SocketAddr::new(literal, permit.port)]);
        }
        let found = tokio::time::timeout(connect_timeout, self.lookup.lookup(&permit.host))
            .await
            .map_err(|_| {
                Failure::new(
                    ErrorCode::DnsTimeout,
                    "dns_timeout",
                    format!(
                        "resolving {} took longer than {connect_timeout:?}",
                        permit.host
                    ),
                )
            })?
            .map_err(|e| {
                Failure::new(
                    ErrorCode::DnsError,
                    "dns_error",
                    format!("{} could not be resolved: {e}", permit.host),
                )
            })?;
        let mut refusal = None;
        let allowed: Vec<SocketAddr> = found
            .iter()
            .filter_map(|ip| match check_address(permit, *ip) {
                Ok(()) => Some(SocketAddr::new(*ip, permit.port)),
                Err(failure) => {
                    refusal.get_or_insert(failure);
                    None
                }
            })
            .collect();
        match (allowed.is_empty(), refusal) {
            (false, _) => Ok(allowed),
            (true, Some(refusal)) => Err(Failure::new(
                refusal.code,
                refusal.reason,
                format!(
                    "{} resolves only to forbidden addresses: {}",
                    permit.host, refusal.message
                ),
            )),
            (true, None) => Err(Failure::new(
                ErrorCode::DnsError,
                "dns_error",
                format!("{} resolves to no address", permit.host),
            )),
        }
    }

    /// A client for one request: it resolves the permit's host to `addresses` and nothing
    /// else to anything.
    fn client_for(
        &self,
        permit: &Permit,
        addresses: Vec<SocketAddr>,
        limits: &EgressLimits,
    ) -> Result<reqwest::Client, Failure> {
        reqwest::Client::builder()
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .retry(reqwest::retry::never())
            .referer(false)
            .pool_max_idle_per_host(0)
            .connect_timeout(limits.connect_timeout)
            .tls_backend_preconfigured((*self.tls).clone())
            .dns_resolver(Arc::new(CheckedAddresses {
                host: permit.host.clone(),
                addresses,
            }))
            .build()
            .map_err(|e| {
                Failure::new(
                    ErrorCode::InternalError,
                    "internal",
                    format!("HTTP client: {e}"),
                )
            })
    }
}

/// The certificate verifier: the system's roots (through the platform verifier) plus `extra`;
/// on a machine without system roots, the Mozilla roots compiled in (`webpki-roots`) plus
/// `extra`, so that a bare machine still verifies public hosts.
fn verifier(
    extra: Vec<CertificateDer<'static>>,
    provider: &Arc<rustls::crypto::CryptoProvider>,
) -> Result<Arc<dyn rustls::client::danger::ServerCertVerifier>, String> {
    match rustls_platform_verifier::Verifier::new_with_extra_roots(extra.clone(), provider.clone())
    {
        Ok(platform) => Ok(Arc::new(platform)),
        Err(error) => {
            tracing::warn!(%error, "no system TLS roots; actions' https requests trust the compiled-in Mozilla roots");
            let mut roots = rustls::RootCertStore::empty();
            roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
            for certificate in extra {
                roots
                    .add(certificate)
                    .map_err(|e| format!("an extra TLS root is not a usable certificate: {e}"))?;
            }
            rustls::client::WebPkiServerVerifier::builder_with_provider(
                Arc::new(roots),
                provider.clone(),
            )
            .build()
            .map(|verifier| verifier as Arc<dyn rustls::client::danger::ServerCertVerifier>)
            .map_err(|e| format!("the TLS verifier could not be made: {e}"))
        }
    }
}

/// The resolver of one request's connection: the checked addresses of its host, nothing for
/// any other name.
struct CheckedAddresses {
    host: String,
    addresses: Vec<SocketAddr>,
}

impl Resolve for CheckedAddresses {
    fn resolve(&self, name: Name) -> Resolving {
        let answer = if name.as_str().eq_ignore_ascii_case(&self.host) {
            Ok(Box::new(self.addresses.clone().into_iter()) as Addrs)
        } else {
            Err(io::Error::other(format!(
                "{} was not checked by the egress policy",
                name.as_str()
            ))
            .into())
        };
        Box::pin(std::future::ready(answer))
    }
}

/// Reads the status, headers and body within the limits; returns the body length too.
async fn read_response(
    mut response: reqwest::Response,
    limits: &EgressLimits,
    body_room: usize,
) -> Result<(GuestResponse, u64), Failure> {
    let status = response.status();
    let headers = incoming_headers(response.headers(), limits.header_bytes)?;
    let cap = limits.response_body_bytes.min(body_room);
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|e| {
        Failure::new(
            ErrorCode::ConnectionTerminated,
            "connection_terminated",
            format!("the response body was cut off: {}", chain(&e)),
        )
    })? {
        if body.len() + chunk.len() > cap {
            return Err(Failure::new(
                ErrorCode::HttpResponseBodySize,
                "response_too_large",
                format!(
                    "the response body is over {cap} bytes (the per-response limit or what is left of the call's byte budget)"
                ),
            ));
        }
        body.extend_from_slice(&chunk);
    }
    let received = body.len() as u64;
    let response = GuestResponse {
        status: status.as_u16(),
        reason: status.canonical_reason().unwrap_or("").to_string(),
        headers,
        body,
    };
    Ok((response, received))
}

/// The code of a transport error, found in its chain of causes.
fn classify_error(error: &reqwest::Error, permit: &Permit) -> Failure {
    let detail = chain(error);
    let failure = |code, reason, what: &str| {
        Failure::new(code, reason, format!("{what} {}: {detail}", permit.host))
    };
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(cause) = source {
        // rustls reports through an io::Error whose inner error is the rustls one.
        let inner_tls = cause
            .downcast_ref::<io::Error>()
            .and_then(io::Error::get_ref)
            .and_then(|inner| inner.downcast_ref::<rustls::Error>());
        if let Some(tls) = cause.downcast_ref::<rustls::Error>().or(inner_tls) {
            return match tls {
                rustls::Error::InvalidCertificate(_) => failure(
                    ErrorCode::TlsCertificateError,
                    "tls_certificate",
                    "the TLS certificate did not verify for",
                ),
                _ => failure(
                    ErrorCode::TlsProtocolError,
                    "tls_protocol",
                    "TLS failed with",
                ),
            };
        }
        if let Some(io) = cause.downcast_ref::<io::Error>() {
            match io.kind() {
                io::ErrorKind::ConnectionRefused => {
                    return failure(
                        ErrorCode::ConnectionRefused,
                        "connection_refused",
                        "the connection was refused by",
                    );
                }
                io::ErrorKind::TimedOut => {
                    return failure(
                        ErrorCode::ConnectionTimeout,
                        "connect_timeout",
                        "no connection in time to",
                    );
                }
                _ => {}
            }
        }
        source = cause.source();
    }
    // Some layers between reqwest and rustls keep only the message of the TLS error.
    if detail.contains("invalid peer certificate") {
        return failure(
            ErrorCode::TlsCertificateError,
            "tls_certificate",
            "the TLS certificate did not verify for",
        );
    }
    if error.is_timeout() {
        return failure(
            ErrorCode::ConnectionTimeout,
            "connect_timeout",
            "no connection in time to",
        );
    }
    if error.is_connect() {
        return failure(
            ErrorCode::ConnectionRefused,
            "connection_refused",
            "could not connect to",
        );
    }
    failure(
        ErrorCode::HttpProtocolError,
        "protocol",
        "the exchange failed with",
    )
}

/// An error and its causes, in one line.
fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::allowlist::{Allowlist, Author};
    use crate::policy::{ActionEgress, OperatorEgress};

    struct Answer(Vec<IpAddr>);

    impl Lookup for Answer {
        fn lookup(
            &self,
            _host: &str,
        ) -> Pin<Box<dyn Future<Output = io::Result<Vec<IpAddr>>> + Send>> {
            Box::pin(std::future::ready(Ok(self.0.clone())))
        }
    }

    fn permit(internal: bool) -> Permit {
        let internal_hosts: &[&str] = if internal { &["https://api.test"] } else { &[] };
        let internal_hosts: Vec<String> = internal_hosts.iter().map(ToString::to_string).collect();
        let operator = OperatorEgress::new(&internal_hosts, crate::EgressLimits::DEFAULT).unwrap();
        let allowlist = Allowlist::parse(&["https://api.test"], Author::Action).unwrap();
        let policy = ActionEgress::new(allowlist, None, Arc::new(operator)).unwrap();
        policy.decide("GET", "https://api.test/x").unwrap()
    }

    async fn addresses(answer: &[&str], internal: bool) -> Result<Vec<SocketAddr>, Failure> {
        let lookup = Answer(answer.iter().map(|a| a.parse().unwrap()).collect());
        let client = EgressClient::new(None, Arc::new(lookup)).unwrap();
        client
            .addresses(&permit(internal), Duration::from_secs(1))
            .await
    }

    #[tokio::test]
    async fn only_the_permitted_addresses_of_a_mixed_answer_are_kept() {
        let kept = addresses(
            &["10.0.0.1", "93.184.216.34", "::1", "2606:4700::1111"],
            false,
        )
        .await
        .unwrap();
        let kept: Vec<String> = kept.iter().map(ToString::to_string).collect();
        assert_eq!(kept, ["93.184.216.34:443", "[2606:4700::1111]:443"]);
        let internal = addresses(&["10.0.0.1", "169.254.169.254"], true)
            .await
            .unwrap();
        assert_eq!(internal, [SocketAddr::from(([10, 0, 0, 1], 443))]);
        let refused = addresses(&["127.0.0.1", "fd00::1"], false)
            .await
            .unwrap_err();
        assert_eq!(refused.code, ErrorCode::DestinationIpProhibited);
        assert!(
            refused
                .message
                .contains("resolves only to forbidden addresses")
        );
    }
}
