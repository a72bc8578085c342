//! Per-call resource limits: what one action call may use before it is stopped.

use std::time::Duration;

use crate::error::SandboxError;

/// The caps applied to one call. Every field has a documented default ([`Limits::DEFAULT`])
/// and a ceiling no caller can exceed ([`Limits::MAX`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// WebAssembly fuel (roughly one unit per instruction executed). Starting the interpreter
    /// and importing `json` and `logging` costs about 8e8.
    pub fuel: u64,
    /// Linear memory the interpreter may grow to, in bytes.
    pub memory_bytes: u64,
    /// Wall-clock time for the whole call, sleeping included.
    pub timeout: Duration,
    /// Size of the request document (the records) in bytes.
    pub input_bytes: usize,
    /// Size of the result document in bytes.
    pub result_bytes: usize,
    /// Log output kept per call, in bytes; the rest is dropped with a marker.
    pub log_bytes: usize,
    /// Disk the call's scratch folder (`/tmp`) may take, in bytes of blocks as `du` counts.
    pub scratch_bytes: u64,
    /// Files, folders and links the call's scratch folder may hold.
    pub scratch_files: u64,
}

const MIB: u64 = 1024 * 1024;

impl Limits {
    /// Defaults: 2e10 fuel, 256 MiB memory, 10 s, 16 MiB in, 16 MiB out, 1 MiB of logs, a
    /// scratch folder of 64 MiB and 1,000 files.
    pub const DEFAULT: Limits = Limits {
        fuel: 20_000_000_000,
        memory_bytes: 256 * MIB,
        timeout: Duration::from_secs(10),
        input_bytes: 16 * MIB as usize,
        result_bytes: 16 * MIB as usize,
        log_bytes: MIB as usize,
        scratch_bytes: 64 * MIB,
        scratch_files: 1_000,
    };

    /// Ceilings: 1e12 fuel, 4 GiB memory (all a 32-bit guest can address), 15 minutes,
    /// 256 MiB in, 256 MiB out, 64 MiB of logs, a scratch folder of 4 GiB and 100,000 files.
    pub const MAX: Limits = Limits {
        fuel: 1_000_000_000_000,
        memory_bytes: 4096 * MIB,
        timeout: Duration::from_secs(15 * 60),
        input_bytes: 256 * MIB as usize,
        result_bytes: 256 * MIB as usize,
        log_bytes: 64 * MIB as usize,
        scratch_bytes: 4096 * MIB,
        scratch_files: 100_000,
    };

    /// Checks every field against [`Limits::MAX`] and against zero.
    pub fn validate(&self) -> Result<(), SandboxError> {
        let checks = [
            (
                "fuel",
                self.fuel,
                Self::MAX.fuel,
                self.fuel.to_string(),
                Self::MAX.fuel.to_string(),
            ),
            (
                "memory",
                self.memory_bytes,
                Self::MAX.memory_bytes,
                human_bytes(self.memory_bytes),
                human_bytes(Self::MAX.memory_bytes),
            ),
            (
                "timeout",
                self.timeout.as_millis() as u64,
                Self::MAX.timeout.as_millis() as u64,
                format!("{:?}", self.timeout),
                format!("{:?}", Self::MAX.timeout),
            ),
            size_check("input size", self.input_bytes, Self::MAX.input_bytes),
            size_check("result size", self.result_bytes, Self::MAX.result_bytes),
            size_check("log size", self.log_bytes, Self::MAX.log_bytes),
            (
                "scratch size",
                self.scratch_bytes,
                Self::MAX.scratch_bytes,
                human_bytes(self.scratch_bytes),
                human_bytes(Self::MAX.scratch_bytes),
            ),
            (
                "scratch files",
                self.scratch_files,
                Self::MAX.scratch_files,
                self.scratch_files.to_string(),
                Self::MAX.scratch_files.to_string(),
            ),
        ];
        for (name, value, max, shown, shown_max) in checks {
            if value == 0 || value > max {
                return Err(SandboxError::LimitOutOfRange {
                    name,
                    value: shown,
                    max: shown_max,
                });
            }
        }
        Ok(())
    }
}

impl Default for Limits {
    fn default() -> Self {
        Self::DEFAULT
    }
}

fn size_check(
    name: &'static str,
    value: usize,
    max: usize,
) -> (&'static str, u64, u64, String, String) {
    (
        name,
        value as u64,
        max as u64,
        human_bytes(value as u64),
        human_bytes(max as u64),
    )
}

/// Bytes as a person reads them: `256 MiB`, `1.5 KiB`, `12 bytes`.
pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if bytes < 1024 {
        return format!("{bytes} bytes");
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if value.fract() == 0.0 {
        format!("{value:.0} {}", UNITS[unit])
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_within_the_ceilings() {
        Limits::DEFAULT.validate().unwrap();
        Limits::MAX.validate().unwrap();
    }

    #[test]
    fn a_limit_above_its_ceiling_is_refused_by_name() {
        let limits = Limits {
            memory_bytes: 8192 * MIB,
            ..Limits::DEFAULT
        };
        let message = limits.validate().unwrap_err().to_string();
        assert!(
            message.contains("memory") && message.contains("4 GiB"),
            "{message}"
        );
    }

    #[test]
    fn a_zero_limit_is_refused() {
        let limits = Limits {
            fuel: 0,
            ..Limits::DEFAULT
        };
        assert!(matches!(
            limits.validate(),
            Err(SandboxError::LimitOutOfRange { name: "fuel", .. })
        ));
    }

    #[test]
    fn sizes_read_like_a_person_writes_them() {
        assert_eq!(human_bytes(256 * MIB), "256 MiB");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(12), "12 bytes");
    }
}
