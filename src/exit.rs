//! Exit statuses: one per failure class, so scripts can tell a bad package from a timeout.

use vivarium_sandbox::{OutcomeKind, SandboxError};

/// Every exit status `vivarium` uses, with what it means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// The action ran and returned a valid result.
    Success = 0,
    /// An unexpected internal failure.
    Internal = 1,
    /// Bad command-line arguments (including a bad `--env` key or an out-of-range limit).
    Usage = 2,
    /// The input file is missing, not JSON, not an array, or too large.
    BadInput = 3,
    /// The action package was refused (not a ZIP, unsafe entry, no main.py, over a limit).
    BadPackage = 4,
    /// The interpreter could not be fetched, verified or compiled.
    RuntimeUnavailable = 5,
    /// The action's pyproject.toml dependencies could not be resolved or installed.
    BadDependencies = 6,
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
}

impl Exit {
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
}

impl Exit {
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

/// The table printed at the end of `vivarium run --help`.
pub const EXIT_STATUS_HELP: &str = "\
Exit status:
   0  the action ran and returned a valid result
   1  internal error
   2  bad arguments (including --env keys and out-of-range limits)
   3  bad input file (missing, not JSON, not an array, too large)
   4  action package refused (not a ZIP, unsafe entry, no main.py, over a limit)
   5  interpreter unavailable (download, verification or compilation failed)
   6  dependencies refused (pyproject.toml unreadable, conflicting, not pure Python, ...)
  10  script_error: the action raised an exception
  11  bad_action: no callable main(data, logger)
  12  bad_result: main returned something that is not JSON records
  13  result_too_large: the result is over the result limit
  14  out_of_fuel: the fuel limit was reached
  15  out_of_memory: the memory limit was reached
  16  timeout: the time limit was reached
  17  runtime_fault: the interpreter itself failed";

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
    fn every_outcome_has_its_own_status_listed_in_help() {
        let mut seen = std::collections::HashSet::new();
        for kind in OutcomeKind::ALL {
            let code = Exit::for_outcome(kind) as u8;
            assert!(seen.insert(code), "{kind} shares status {code}");
            if kind != OutcomeKind::Ok {
                assert!(
                    EXIT_STATUS_HELP.contains(&format!("{code:>4}  {kind}:")),
                    "{kind} missing from help"
                );
            }
        }
    }
}
