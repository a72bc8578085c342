//! The egress client against real local HTTP and HTTPS servers, with an injected resolver so
//! that names resolve to whatever each SSRF case needs. Nothing here needs the internet.

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::{IpAddr, TcpListener};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{any, get};
use vivarium_egress::{
    Author, CallEgress, Egress, EgressClient, EgressLimits, ErrorCode, GuestRequest, Lookup,
    OperatorEgress,
};

/// Names resolve to what the test says, and to nothing else.
struct FakeDns(HashMap<String, Vec<IpAddr>>);

impl Lookup for FakeDns {
    fn lookup(&self, host: &str) -> Pin<Box<dyn Future<Output = io::Result<Vec<IpAddr>>> + Send>> {
        let answer =
            self.0.get(host).cloned().ok_or_else(|| {
                io::Error::new(io::ErrorKind::NotFound, format!("no such name {host}"))
            });
        Box::pin(std::future::ready(answer))
    }
}

fn dns(entries: &[(&str, &[&str])]) -> Arc<FakeDns> {
    Arc::new(FakeDns(
        entries
            .iter()
            .map(|(name, addresses)| {
                let addresses = addresses.iter().map(|a| a.parse().unwrap()).collect();
                (name.to_string(), addresses)
            })
            .collect(),
    ))
}

/// A local server: what it answers on each path, and how many requests it saw.
struct TestServer {
    port: u16,
    hits: Arc<AtomicUsize>,
}

fn routes(hits: Arc<AtomicUsize>) -> Router {
    let counted = move |handler: Router| {
        let hits = hits.clone();
        handler.layer(axum::middleware::from_fn(
            move |request, next: axum::middleware::Next| {
                let hits = hits.clone();
                async move {
                    hits.fetch_add(1, Ordering::SeqCst);
                    next.run(request).await
                }
            },
        ))
    };
    counted(
        Router::new()
            .route("/echo", any(echo))
            .route(
                "/redirect",
                get(|| async { (StatusCode::FOUND, [("location", "http://127.0.0.1/")]) }),
            )
            .route("/big", get(|| async { vec![b'x'; 4096] }))
            .route(
                "/slow",
                get(|| async {
                    tokio::time::sleep(Duration::from_secs(5)).await;
                    "late"
                }),
            )
            .route(
                "/gzip",
                get(|| async { ([("content-encoding", "gzip")], vec![0x1f, 0x8b, 8, 0]) }),
            ),
    )
}

async fn echo(method: Method, headers: HeaderMap, body: Bytes) -> impl IntoResponse {
    let mut seen: Vec<String> = headers
        .iter()
        .map(|(name, value)| format!("{name}={}", value.to_str().unwrap_or("?")))
        .collect();
    seen.sort();
    format!(
        "{method} {}\n{}",
        String::from_utf8_lossy(&body),
        seen.join("\n")
    )
}

async fn http_server() -> TestServer {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let hits = Arc::new(AtomicUsize::new(0));
    let app = routes(hits.clone());
    tokio::spawn(async move { axum::serve(listener, app).await });
    TestServer { port, hits }
}

/// An HTTPS server for `secure.test` with a certificate from a fresh test CA; returns the
/// server and the CA's PEM.
async fn https_server() -> (TestServer, String) {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let ca = rcgen::CertifiedIssuer::self_signed(ca_params, ca_key).unwrap();
    let leaf_key = rcgen::KeyPair::generate().unwrap();
    let leaf = rcgen::CertificateParams::new(vec!["secure.test".to_string()])
        .unwrap()
        .signed_by(&leaf_key, &ca)
        .unwrap();
    let config = axum_server::tls_rustls::RustlsConfig::from_der(
        vec![leaf.der().to_vec()],
        leaf_key.serialize_der(),
    )
    .await
    .unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let hits = Arc::new(AtomicUsize::new(0));
    let app = routes(hits.clone());
    tokio::spawn(async move {
        axum_server::from_tcp_rustls(listener, config)
            .serve(app.into_make_service())
            .await
    });
    (TestServer { port, hits }, ca.pem())
}

/// The egress of an action allowing `allowed`, with `internal` operator hosts.
fn egress(allowed: &[String], internal: &[String], client: EgressClient) -> Egress {
    egress_with(allowed, internal, client, EgressLimits::DEFAULT)
}

fn egress_with(
    allowed: &[String],
    internal: &[String],
    client: EgressClient,
    limits: EgressLimits,
) -> Egress {
    let operator = OperatorEgress::new(internal, limits).unwrap();
    Egress::for_action(allowed, Author::Action, None, Arc::new(operator), client).unwrap()
}

/// An action allowing `origin`, an internal host whose name `o2.test` resolves to loopback.
fn loopback_internal(origin: &str, limits: EgressLimits) -> Egress {
    let origin = [origin.to_string()];
    egress_with(
        &origin,
        &origin,
        client(dns(&[("o2.test", &["127.0.0.1"])])),
        limits,
    )
}

fn call(egress: &Egress) -> CallEgress {
    egress.for_call(Instant::now() + Duration::from_secs(10))
}

fn get_request(url: &str) -> GuestRequest {
    GuestRequest {
        method: "GET".into(),
        url: url.into(),
        headers: Vec::new(),
        body: Vec::new(),
        timeout: None,
    }
}

fn client(lookup: Arc<FakeDns>) -> EgressClient {
    EgressClient::new(None, lookup).unwrap()
}

#[tokio::test]
async fn an_internal_host_is_reached_with_host_from_the_url_and_hop_headers_dropped() {
    let server = http_server().await;
    let origin = format!("http://o2.test:{}", server.port);
    let egress = loopback_internal(&origin, EgressLimits::DEFAULT);
    let request = GuestRequest {
        method: "POST".into(),
        url: format!("{origin}/echo"),
        headers: vec![
            ("Host".into(), b"169.254.169.254".to_vec()),
            ("Connection".into(), b"close, X-Hop".to_vec()),
            ("X-Hop".into(), b"1".to_vec()),
            ("Content-Type".into(), b"application/json".to_vec()),
        ],
        body: b"{\"a\":1}".to_vec(),
        timeout: None,
    };
    let (reply, record) = call(&egress).exchange(&request).await;
    let response = reply.unwrap();
    assert_eq!(response.status, 200);
    let body = String::from_utf8(response.body).unwrap();
    assert!(body.starts_with("POST {\"a\":1}"), "{body}");
    assert!(
        body.contains(&format!("host=o2.test:{}", server.port)),
        "{body}"
    );
    assert!(!body.contains("x-hop"), "{body}");
    assert!(!body.contains("accept-encoding"), "{body}");
    assert!(body.contains("content-type=application/json"), "{body}");
    assert_eq!(record.outcome(), "allowed");
    assert_eq!(record.rule.as_deref(), Some(origin.as_str()));
    assert_eq!(record.traffic.sent, 7);
    assert!(record.message().contains("-> 200"), "{}", record.message());
}

#[tokio::test]
async fn a_name_resolving_to_a_private_address_is_refused_before_any_connection() {
    let server = http_server().await;
    let origin = format!("http://api.test:{}", server.port);
    for addresses in [
        &["127.0.0.1"][..],
        &["10.0.0.1", "127.0.0.1"],
        &["::ffff:127.0.0.1"],
    ] {
        let egress = egress(
            std::slice::from_ref(&origin),
            &[],
            client(dns(&[("api.test", addresses)])),
        );
        let (reply, record) = call(&egress)
            .exchange(&get_request(&format!("{origin}/echo")))
            .await;
        let failure = reply.unwrap_err();
        assert_eq!(
            failure.code,
            ErrorCode::DestinationIpProhibited,
            "{addresses:?}"
        );
        assert!(
            failure.message.contains("egress_internal_hosts"),
            "{}",
            failure.message
        );
        assert_eq!(record.outcome(), "refused");
    }
    assert_eq!(server.hits.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn metadata_addresses_are_refused_even_for_internal_hosts() {
    let origin = "http://o2.test:8080".to_string();
    let egress = egress(
        std::slice::from_ref(&origin),
        std::slice::from_ref(&origin),
        client(dns(&[("o2.test", &["169.254.169.254"])])),
    );
    let (reply, _) = call(&egress)
        .exchange(&get_request(&format!("{origin}/")))
        .await;
    let failure = reply.unwrap_err();
    assert_eq!(failure.code, ErrorCode::DestinationIpProhibited);
    assert_eq!(failure.reason, "metadata_address");
}

#[tokio::test]
async fn a_name_resolving_to_nothing_is_a_dns_error() {
    let egress = egress(&["https://nowhere.test".into()], &[], client(dns(&[])));
    let (reply, record) = call(&egress)
        .exchange(&get_request("https://nowhere.test/"))
        .await;
    assert_eq!(reply.unwrap_err().code, ErrorCode::DnsError);
    assert_eq!(record.outcome(), "failed");
    let empty = egress_with(
        &["https://empty.test".into()],
        &[],
        client(dns(&[("empty.test", &[])])),
        EgressLimits::DEFAULT,
    );
    let (reply, _) = call(&empty)
        .exchange(&get_request("https://empty.test/"))
        .await;
    assert_eq!(reply.unwrap_err().code, ErrorCode::DnsError);
}

#[tokio::test]
async fn redirects_are_handed_back_not_followed() {
    let server = http_server().await;
    let origin = format!("http://o2.test:{}", server.port);
    let egress = loopback_internal(&origin, EgressLimits::DEFAULT);
    let (reply, _) = call(&egress)
        .exchange(&get_request(&format!("{origin}/redirect")))
        .await;
    let response = reply.unwrap();
    assert_eq!(response.status, 302);
    assert!(
        response
            .headers
            .iter()
            .any(|(n, v)| n == "location" && v == b"http://127.0.0.1/")
    );
    assert_eq!(server.hits.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn bodies_are_not_decompressed_and_are_capped() {
    let server = http_server().await;
    let origin = format!("http://o2.test:{}", server.port);
    let limits = EgressLimits {
        response_body_bytes: 1024,
        ..EgressLimits::DEFAULT
    };
    let egress = loopback_internal(&origin, limits);
    let (reply, _) = call(&egress)
        .exchange(&get_request(&format!("{origin}/gzip")))
        .await;
    let response = reply.unwrap();
    assert_eq!(response.body, [0x1f, 0x8b, 8, 0]);
    assert!(
        response
            .headers
            .iter()
            .any(|(n, v)| n == "content-encoding" && v == b"gzip")
    );
    let (reply, _) = call(&egress)
        .exchange(&get_request(&format!("{origin}/big")))
        .await;
    assert_eq!(reply.unwrap_err().code, ErrorCode::HttpResponseBodySize);
}

#[tokio::test]
async fn a_slow_response_times_out_at_the_request_timeout() {
    let server = http_server().await;
    let origin = format!("http://o2.test:{}", server.port);
    let egress = loopback_internal(&origin, EgressLimits::DEFAULT);
    let mut request = get_request(&format!("{origin}/slow"));
    request.timeout = Some(Duration::from_millis(200));
    let started = Instant::now();
    let (reply, _) = call(&egress).exchange(&request).await;
    assert_eq!(reply.unwrap_err().code, ErrorCode::HttpResponseTimeout);
    assert!(started.elapsed() < Duration::from_secs(4));
    // The call's own deadline caps the request too.
    let mut short = egress.for_call(Instant::now() + Duration::from_millis(200));
    let (reply, _) = short
        .exchange(&get_request(&format!("{origin}/slow")))
        .await;
    assert_eq!(reply.unwrap_err().code, ErrorCode::HttpResponseTimeout);
}

#[tokio::test]
async fn a_closed_port_is_connection_refused() {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let origin = format!("http://o2.test:{port}");
    let egress = loopback_internal(&origin, EgressLimits::DEFAULT);
    let (reply, _) = call(&egress)
        .exchange(&get_request(&format!("{origin}/")))
        .await;
    assert_eq!(reply.unwrap_err().code, ErrorCode::ConnectionRefused);
}

#[tokio::test]
async fn https_verifies_against_the_extra_root_and_fails_without_it() {
    let (server, ca_pem) = https_server().await;
    let origin = format!("https://secure.test:{}", server.port);
    let lookup = dns(&[("secure.test", &["127.0.0.1"])]);
    let trusted = EgressClient::new(Some(ca_pem.as_bytes()), lookup.clone()).unwrap();
    let egress_ok = egress(
        std::slice::from_ref(&origin),
        std::slice::from_ref(&origin),
        trusted,
    );
    let (reply, _) = call(&egress_ok)
        .exchange(&get_request(&format!("{origin}/echo")))
        .await;
    assert_eq!(reply.unwrap().status, 200);
    let untrusted = egress(
        std::slice::from_ref(&origin),
        std::slice::from_ref(&origin),
        client(lookup),
    );
    let (reply, _) = call(&untrusted)
        .exchange(&get_request(&format!("{origin}/echo")))
        .await;
    let failure = reply.unwrap_err();
    assert_eq!(
        failure.code,
        ErrorCode::TlsCertificateError,
        "{}",
        failure.message
    );
}

#[tokio::test]
async fn the_call_budget_caps_requests_and_bytes() {
    let server = http_server().await;
    let origin = format!("http://o2.test:{}", server.port);
    let limits = EgressLimits {
        requests_per_call: 2,
        bytes_per_call: 5000,
        ..EgressLimits::DEFAULT
    };
    let egress = loopback_internal(&origin, limits);
    let mut call = call(&egress);
    let (first, _) = call.exchange(&get_request(&format!("{origin}/big"))).await;
    assert_eq!(first.unwrap().body.len(), 4096);
    // 4096 of 5000 bytes are spent: the next 4096-byte body does not fit.
    let (second, _) = call.exchange(&get_request(&format!("{origin}/big"))).await;
    assert_eq!(second.unwrap_err().code, ErrorCode::HttpResponseBodySize);
    let (third, record) = call.exchange(&get_request(&format!("{origin}/echo"))).await;
    let failure = third.unwrap_err();
    assert_eq!(failure.code, ErrorCode::ConnectionLimitReached);
    assert!(failure.message.contains("requests_per_call"));
    assert_eq!(record.outcome(), "refused");
}

#[tokio::test]
async fn an_unlisted_host_and_an_ip_literal_never_reach_the_network() {
    let server = http_server().await;
    let egress = egress(
        &["https://hooks.slack.com".into()],
        &[],
        client(dns(&[("evil.test", &["127.0.0.1"])])),
    );
    for url in [
        format!("http://evil.test:{}/echo", server.port),
        format!("http://127.0.0.1:{}/echo", server.port),
        format!("http://hooks.slack.com@127.0.0.1:{}/echo", server.port),
        format!("http://[::ffff:7f00:1]:{}/echo", server.port),
    ] {
        let (reply, record) = call(&egress).exchange(&get_request(&url)).await;
        let failure = reply.unwrap_err();
        assert_eq!(failure.code, ErrorCode::HttpRequestDenied, "{url}");
        assert!(record.message().contains("refused"), "{}", record.message());
    }
    assert_eq!(server.hits.load(Ordering::SeqCst), 0);
}
