//! The caps on an action's outbound requests, with their documented defaults and maxima.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// What one call may send and receive. Every field has a default ([`EgressLimits::DEFAULT`])
/// and a ceiling the operator cannot raise it past ([`EgressLimits::MAX`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EgressLimits {
    /// Time to resolve the name and open the connection (TLS included). Default 5 s.
    #[serde(with = "humantime_serde")]
    pub connect_timeout: Duration,
    /// Time for one whole exchange when the action gives none (never past the call's own
    /// deadline, and never longer than this even when the action asks). Default 30 s.
    #[serde(with = "humantime_serde")]
    pub request_timeout: Duration,
    /// Largest request body. Default 8 MiB.
    pub request_body_bytes: usize,
    /// Largest response body. Default 8 MiB.
    pub response_body_bytes: usize,
    /// Largest request or response header section (names, values and separators). Default
    /// 64 KiB.
    pub header_bytes: usize,
    /// Requests one call may make. Default 32.
    pub requests_per_call: u32,
    /// Body bytes one call may send and receive in all. Default 32 MiB.
    pub bytes_per_call: u64,
    /// Fuel each request costs the call, on top of the instructions the guest runs. Default
    /// 1e6 (about a millisecond of interpreted Python).
    pub fuel_per_request: u64,
}

const MIB: usize = 1024 * 1024;

impl EgressLimits {
    /// The defaults.
    pub const DEFAULT: Self = Self {
        connect_timeout: Duration::from_secs(5),
        request_timeout: Duration::from_secs(30),
        request_body_bytes: 8 * MIB,
        response_body_bytes: 8 * MIB,
        header_bytes: 64 * 1024,
        requests_per_call: 32,
        bytes_per_call: 32 * MIB as u64,
        fuel_per_request: 1_000_000,
    };

    /// The ceilings.
    pub const MAX: Self = Self {
        connect_timeout: Duration::from_secs(30),
        request_timeout: Duration::from_secs(300),
        request_body_bytes: 64 * MIB,
        response_body_bytes: 64 * MIB,
        header_bytes: MIB,
        requests_per_call: 1000,
        bytes_per_call: 256 * MIB as u64,
        fuel_per_request: 1_000_000_000,
    };

    /// Checks every field against its ceiling, naming the first one over it.
    pub fn validate(&self) -> Result<(), String> {
        let over = |name: &str, value: String, max: String| {
            Err(format!(
                "egress limit {name} is {value}, over its maximum {max}"
            ))
        };
        let max = Self::MAX;
        if self.connect_timeout > max.connect_timeout || self.connect_timeout.is_zero() {
            return over(
                "connect_timeout",
                format!("{:?}", self.connect_timeout),
                format!("{:?} (and above zero)", max.connect_timeout),
            );
        }
        if self.request_timeout > max.request_timeout || self.request_timeout.is_zero() {
            return over(
                "request_timeout",
                format!("{:?}", self.request_timeout),
                format!("{:?} (and above zero)", max.request_timeout),
            );
        }
        let sizes = [
            (
                "request_body_bytes",
                self.request_body_bytes,
                max.request_body_bytes,
            ),
            (
                "response_body_bytes",
                self.response_body_bytes,
                max.response_body_bytes,
            ),
            ("header_bytes", self.header_bytes, max.header_bytes),
        ];
        for (name, value, ceiling) in sizes {
            if value > ceiling {
                return over(name, value.to_string(), ceiling.to_string());
            }
        }
        if self.requests_per_call > max.requests_per_call {
            return over(
                "requests_per_call",
                self.requests_per_call.to_string(),
                max.requests_per_call.to_string(),
            );
        }
        if self.bytes_per_call > max.bytes_per_call {
            return over(
                "bytes_per_call",
                self.bytes_per_call.to_string(),
                max.bytes_per_call.to_string(),
            );
        }
        if self.fuel_per_request > max.fuel_per_request {
            return over(
                "fuel_per_request",
                self.fuel_per_request.to_string(),
                max.fuel_per_request.to_string(),
            );
        }
        Ok(())
    }
}

impl Default for EgressLimits {
    fn default() -> Self {
        Self::DEFAULT
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_defaults_are_within_the_ceilings() {
        assert_eq!(EgressLimits::DEFAULT.validate(), Ok(()));
        assert_eq!(EgressLimits::MAX.validate(), Ok(()));
    }

    #[test]
    fn a_limit_over_its_ceiling_is_named() {
        let limits = EgressLimits {
            response_body_bytes: EgressLimits::MAX.response_body_bytes + 1,
            ..EgressLimits::DEFAULT
        };
        assert!(
            limits
                .validate()
                .unwrap_err()
                .contains("response_body_bytes")
        );
        let limits = EgressLimits {
            connect_timeout: Duration::ZERO,
            ..EgressLimits::DEFAULT
        };
        assert!(limits.validate().unwrap_err().contains("connect_timeout"));
    }

    #[test]
    fn limits_read_from_toml_style_values() {
        let limits: EgressLimits =
            serde_json::from_str(r#"{"connect_timeout": "2s", "requests_per_call": 4}"#).unwrap();
        assert_eq!(limits.connect_timeout, Duration::from_secs(2));
        assert_eq!(limits.requests_per_call, 4);
        assert_eq!(
            limits.request_timeout,
            EgressLimits::DEFAULT.request_timeout
        );
    }
}
