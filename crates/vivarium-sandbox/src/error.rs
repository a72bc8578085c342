//! Failures to set up a call: the call never started, so there is no outcome to report.

/// A call could not be prepared. Anything that happens once the guest runs is an
/// [`crate::Outcome`] instead.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    /// A requested limit is zero or above its ceiling.
    #[error("the {name} limit {value} is out of range: it must be above zero and at most {max}")]
    LimitOutOfRange {
        /// Which limit.
        name: &'static str,
        /// The value asked for.
        value: String,
        /// The ceiling.
        max: String,
    },
    /// An environment variable key does not follow the naming rule.
    #[error(
        "environment variable key {key:?} is not allowed: keys must be uppercase letters, digits \
         and underscores, starting with a letter (like API_TOKEN)"
    )]
    InvalidEnvKey {
        /// The key given.
        key: String,
    },
    /// An environment variable value cannot be passed to the guest.
    #[error("environment variable {key} has a value with a NUL byte, which cannot be passed on")]
    InvalidEnvValue {
        /// The key whose value is bad.
        key: String,
    },
    /// The request is larger than the input limit.
    #[error(
        "the input is {size} but the limit is {limit}; send fewer records per call or raise the input limit"
    )]
    InputTooLarge {
        /// Size of the encoded request.
        size: String,
        /// The limit in force.
        limit: String,
    },
    /// The action folder cannot be mounted.
    #[error("the action folder {path} cannot be opened: {reason}")]
    ActionFolder {
        /// The folder.
        path: std::path::PathBuf,
        /// Why.
        reason: String,
    },
    /// The action may make requests, but the pinned interpreter has no host calls.
    #[error(
        "egress needs the snapshot runtime: this action has allowed hosts, but the pinned interpreter cannot make requests; set runtime = \"snapshot\" (the default)"
    )]
    EgressNeedsSnapshot,
    /// The engine or linker could not be set up (a bug or an unusable interpreter module).
    #[error("the sandbox could not be set up: {0}")]
    Setup(String),
}
