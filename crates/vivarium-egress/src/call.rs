//! The egress of one call: its policy, its budget (requests and bytes, counted across the
//! call), its deadline, and an audit record of every request, allowed or refused.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::allowlist::{Allowlist, Author, RuleError};
use crate::client::{EgressClient, Traffic};
use crate::error::{ErrorCode, Failure};
use crate::exchange::{GuestRequest, GuestResponse};
use crate::policy::{ActionEgress, OperatorEgress};

/// An action's egress: its policy and the client that enforces it.
#[derive(Debug, Clone)]
pub struct Egress {
    /// Where the action may send requests.
    pub policy: Arc<ActionEgress>,
    /// The client that sends them.
    pub client: EgressClient,
}

impl Egress {
    /// The egress of an action allowed `allowed_hosts` by `author` (the action's owner in the
    /// service; on the command line, whoever runs it, who is also the operator), in a cluster
    /// at `origin_cluster_url`, under the operator's settings.
    pub fn for_action(
        allowed_hosts: &[String],
        author: Author,
        origin_cluster_url: Option<&str>,
        operator: Arc<OperatorEgress>,
        client: EgressClient,
    ) -> Result<Self, RuleError> {
        let allowlist = match author {
            Author::Action => Allowlist::parse_action(allowed_hosts, &operator.internal_hosts)?,
            Author::Operator => Allowlist::parse(allowed_hosts, Author::Operator)?,
        };
        let policy = ActionEgress::new(allowlist, origin_cluster_url, operator)?;
        Ok(Self {
            policy: Arc::new(policy),
            client,
        })
    }

    /// The egress of one call of the action, which must end by `deadline`.
    pub fn for_call(&self, deadline: Instant) -> CallEgress {
        CallEgress::new(self.policy.clone(), self.client.clone(), deadline)
    }
}

/// Characters of a method the audit keeps (a guest may send any text as its method).
const MOST_METHOD_CHARS: usize = 16;

/// What one call may still do, and what it did.
#[derive(Debug)]
pub struct CallEgress {
    policy: Arc<ActionEgress>,
    client: EgressClient,
    deadline: Instant,
    requests: u32,
    bytes: u64,
}

/// One request as the audit sees it: never its path, query or body, which may carry secrets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditRecord {
    /// The method as the guest gave it.
    pub method: String,
    /// `scheme://host[:port]`, or `<not a URL>` ([`origin_of`]).
    pub origin: String,
    /// The response status, when one came back.
    pub status: Option<u16>,
    /// Body bytes sent and received.
    pub traffic: Traffic,
    /// Time from the host call to its answer.
    pub elapsed: Duration,
    /// The rule that allowed it, when one did.
    pub rule: Option<String>,
    /// Why it failed, when it did.
    pub failure: Option<Failure>,
}

impl AuditRecord {
    /// The audit line written into the run's logs.
    pub fn message(&self) -> String {
        let ms = self.elapsed.as_secs_f64() * 1000.0;
        let traffic = format!(
            "sent {} B, received {} B, {ms:.1} ms",
            self.traffic.sent, self.traffic.received
        );
        let rule = self
            .rule
            .as_deref()
            .map_or(String::new(), |rule| format!(", allowed by {rule}"));
        match (&self.failure, self.status) {
            (None, Some(status)) => {
                format!(
                    "{} {} -> {status}, {traffic}{rule}",
                    self.method, self.origin
                )
            }
            (Some(failure), _) if failure.code.is_refusal() => format!(
                "{} {} refused ({}, {}): {}",
                self.method, self.origin, failure.code, failure.reason, failure.message
            ),
            (Some(failure), _) => format!(
                "{} {} failed ({}), {traffic}{rule}: {}",
                self.method, self.origin, failure.code, failure.message
            ),
            (None, None) => format!(
                "{} {} -> no status, {traffic}{rule}",
                self.method, self.origin
            ),
        }
    }

    /// The metrics' outcome label: `allowed`, `refused` or `failed`.
    pub fn outcome(&self) -> &'static str {
        match &self.failure {
            None => "allowed",
            Some(failure) if failure.code.is_refusal() => "refused",
            Some(_) => "failed",
        }
    }
}

impl CallEgress {
    /// The egress of a call under `policy` that must end by `deadline`.
    pub fn new(policy: Arc<ActionEgress>, client: EgressClient, deadline: Instant) -> Self {
        Self {
            policy,
            client,
            deadline,
            requests: 0,
            bytes: 0,
        }
    }

    /// The caps this call's requests are held to.
    pub fn limits(&self) -> crate::EgressLimits {
        self.policy.operator().limits
    }

    /// Fuel each request costs the call.
    pub fn fuel_per_request(&self) -> u64 {
        self.policy.operator().limits.fuel_per_request
    }

    /// Performs one exchange if the policy and the call's budget allow it.
    pub async fn exchange(
        &mut self,
        request: &GuestRequest,
    ) -> (Result<GuestResponse, Failure>, AuditRecord) {
        let started = Instant::now();
        let mut record = AuditRecord {
            method: request.method.chars().take(MOST_METHOD_CHARS).collect(),
            origin: origin_of(&request.url),
            status: None,
            traffic: Traffic::default(),
            elapsed: Duration::ZERO,
            rule: None,
            failure: None,
        };
        let result = self.permitted_exchange(request, &mut record).await;
        record.elapsed = started.elapsed();
        match &result {
            Ok(response) => record.status = Some(response.status),
            Err(failure) => record.failure = Some(failure.clone()),
        }
        (result, record)
    }

    async fn permitted_exchange(
        &mut self,
        request: &GuestRequest,
        record: &mut AuditRecord,
    ) -> Result<GuestResponse, Failure> {
        let permit = self.policy.decide(&request.method, &request.url)?;
        record.rule = Some(permit.rule.clone());
        let limits = self.policy.operator().limits;
        let body_room = self.spend(request, &limits)?;
        let timeout = self.timeout(request.timeout, limits.request_timeout)?;
        let (response, traffic) = self
            .client
            .send(&permit, request, &limits, timeout, body_room)
            .await?;
        self.bytes += traffic.received;
        record.traffic = traffic;
        Ok(response)
    }

    /// Counts the request against the call's budget; returns the room left for its
    /// response body.
    fn spend(
        &mut self,
        request: &GuestRequest,
        limits: &crate::EgressLimits,
    ) -> Result<usize, Failure> {
        if self.requests >= limits.requests_per_call {
            return Err(Failure::new(
                ErrorCode::ConnectionLimitReached,
                "too_many_requests",
                format!(
                    "this call already made {} requests, the most one call may make (egress requests_per_call)",
                    limits.requests_per_call
                ),
            ));
        }
        let sent = request.body.len();
        if sent > limits.request_body_bytes {
            return Err(Failure::new(
                ErrorCode::HttpRequestBodySize,
                "request_too_large",
                format!(
                    "the request body is {sent} bytes, over the {}-byte limit (egress request_body_bytes)",
                    limits.request_body_bytes
                ),
            ));
        }
        let after = self.bytes + sent as u64;
        if after > limits.bytes_per_call {
            return Err(Failure::new(
                ErrorCode::ConnectionLimitReached,
                "too_many_bytes",
                format!(
                    "this call's requests would move more than {} bytes (egress bytes_per_call)",
                    limits.bytes_per_call
                ),
            ));
        }
        self.requests += 1;
        self.bytes = after;
        Ok(usize::try_from(limits.bytes_per_call - after).unwrap_or(usize::MAX))
    }

    /// The request's timeout: its own, capped by the limit and by what is left of the call.
    fn timeout(&self, asked: Option<Duration>, limit: Duration) -> Result<Duration, Failure> {
        let left = self.deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(Failure::new(
                ErrorCode::HttpResponseTimeout,
                "timeout",
                "the call's time limit is already reached",
            ));
        }
        Ok(asked.unwrap_or(limit).min(limit).min(left))
    }
}

/// The `scheme://host[:port]` of `url` for the audit: never its path or query, which may hold
/// secrets (a Slack webhook's path is its credential).
pub fn origin_of(url: &str) -> String {
    url::Url::parse(url).map_or_else(
        |_| "<not a URL>".to_string(),
        |url| url.origin().ascii_serialization(),
    )
}
