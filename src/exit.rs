//! Exit statuses: one per failure class, so scripts can tell a bad package from a timeout.

use vivarium_sandbox::{OutcomeKind, SandboxError};

/// Every exit status `vivarium` uses; [`Exit::ALL`] describes each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// The action ran and returned a valid result.
    Success = 0,
    /// An unexpected internal failure.
    Internal = 1,
    /// Bad command-line arguments.
    Usage = 2,
    /// The input file is unusable.
    BadInput = 3,
    /// The action package was refused.
    BadPackage = 4,
    /// The interpreter could not be had.
    RuntimeUnavailable = 5,
    /// The action's dependencies were refused.
    BadDependencies = 6,
    /// The state file could not be read or written.
    BadStateFile = 7,
    /// The action raised an exception.
    ScriptError = 10,
    /// The action has no callable `main` of the right arity.
    BadAction = 11,
    /// `main` returned something that is not JSON records.
    BadResult = 12,
    /// The result is over the result limit.
    ResultTooLarge = 13,
    /// The fuel limit was reached.
    OutOfFuel = 14,
    /// The memory limit was reached.
    OutOfMemory = 15,
    /// The time limit was reached.
    Timeout = 16,
    /// The interpreter itself failed.
    RuntimeFault = 17,
    /// The run's state writes were refused at commit.
    StateConflict = 18,
}

impl Exit {
    /// Every status, with what `vivarium run --help` says of it.
    pub const ALL: [(Exit, &'static str); 17] = [
        (Self::Success, "the action ran and returned a valid result"),
        (Self::Internal, "internal error"),
        (
            Self::Usage,
            "bad arguments (including --env keys and out-of-range limits)",
        ),
        (
            Self::BadInput,
            "bad input file (missing, not JSON, not an array, too large)",
        ),
        (
            Self::BadPackage,
            "action package refused (not a ZIP, unsafe entry, no main.py, over a limit)",
        ),
        (
            Self::RuntimeUnavailable,
            "interpreter unavailable (download, verification or compilation failed)",
        ),
        (
            Self::BadDependencies,
            "dependencies refused (pyproject.toml unreadable, conflicting, not pure Python, ...)",
        ),
        (
            Self::BadStateFile,
            "the state file cannot be read (not JSON of the expected form) or written",
        ),
        (
            Self::ScriptError,
            "script_error: the action raised an exception",
        ),
        (
            Self::BadAction,
            "bad_action: no callable main(data, logger)",
        ),
        (
            Self::BadResult,
            "bad_result: main returned something that is not JSON records",
        ),
        (
            Self::ResultTooLarge,
            "result_too_large: the result is over the result limit",
        ),
        (Self::OutOfFuel, "out_of_fuel: the fuel limit was reached"),
        (
            Self::OutOfMemory,
            "out_of_memory: the memory limit was reached",
        ),
        (Self::Timeout, "timeout: the time limit was reached"),
        (
            Self::RuntimeFault,
            "runtime_fault: the interpreter itself failed",
        ),
        (
            Self::StateConflict,
            "state_conflict: the state writes were refused at commit (a compare-and-set \
             conflict or a quota); nothing was stored and the result is withheld",
        ),
    ];

    /// The status for a call that ended with `kind`.
    pub fn for_outcome(kind: OutcomeKind) -> Self {
        match kind {
            OutcomeKind::Ok => Self::Success,
            OutcomeKind::ScriptError => Self::ScriptError,
            OutcomeKind::BadAction => Self::BadAction,
            OutcomeKind::BadResult => Self::BadResult,
            OutcomeKind::ResultTooLarge => Self::ResultTooLarge,
            OutcomeKind::OutOfFuel => Self::OutOfFuel,
            OutcomeKind::OutOfMemory => Self::OutOfMemory,
            OutcomeKind::Timeout => Self::Timeout,
            OutcomeKind::RuntimeFault => Self::RuntimeFault,
        }
    }

    /// The status for a call that could not start.
    pub fn for_setup_error(error: &SandboxError) -> Self {
        match error {
            SandboxError::LimitOutOfRange { .. }
            | SandboxError::InvalidEnvKey { .. }
            | SandboxError::InvalidEnvValue { .. }
            | SandboxError::EgressNeedsSnapshot => Self::Usage,
            SandboxError::InputTooLarge { .. } => Self::BadInput,
            SandboxError::ActionFolder { .. } => Self::BadPackage,
            SandboxError::Setup(_) => Self::Internal,
        }
    }
}

/// The table printed at the end of `vivarium run --help`, from [`Exit::ALL`].
pub fn exit_status_help() -> String {
    let mut help = String::from("Exit status:");
    for (code, meaning) in Exit::ALL {
        help.push_str(&format!("\n  {:>2}  {meaning}", code as u8));
    }
    help
}

/// A failure before or around a call, with its exit status and a message for the user.
#[derive(Debug)]
pub struct Failure {
    /// The exit status.
    pub code: Exit,
    /// What went wrong and what to do.
    pub message: String,
}

impl Failure {
    /// A failure with `code` and the full chain of `error`'s causes.
    pub fn new(code: Exit, error: impl Into<anyhow::Error>) -> Self {
        Self {
            code,
            message: format!("{:#}", error.into()),
        }
    }

    /// Prints the failure on stderr, as JSON when asked.
    pub fn report(&self, json: bool) {
        if json {
            let line = serde_json::json!({
                "level": "ERROR", "logger": "vivarium", "message": self.message, "exit_status": self.code as u8,
            });
            eprintln!("{line}");
        } else {
            eprintln!("error: {}", self.message);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_outcome_has_its_own_status_described_by_its_name() {
        let mut seen = std::collections::HashSet::new();
        for kind in OutcomeKind::ALL {
            let code = Exit::for_outcome(kind);
            assert!(
                seen.insert(code as u8),
                "{kind} shares status {}",
                code as u8
            );
            let (_, meaning) = Exit::ALL
                .iter()
                .find(|(listed, _)| *listed == code)
                .unwrap_or_else(|| panic!("{kind}'s status is not described"));
            if kind != OutcomeKind::Ok {
                assert!(meaning.starts_with(&format!("{kind}:")), "{meaning}");
            }
        }
    }

    #[test]
    fn the_help_lists_every_status_once_in_order() {
        let codes: Vec<u8> = Exit::ALL.iter().map(|(code, _)| *code as u8).collect();
        assert!(codes.windows(2).all(|pair| pair[0] < pair[1]), "{codes:?}");
        assert!(exit_status_help().contains("\n  18  state_conflict:"));
    }
}
