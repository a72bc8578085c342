//! Service configuration: documented defaults, overridden by a TOML file, then by
//! `VIVARIUM_*` environment variables, then by command-line flags.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Serialize};
use vivarium_egress::{EgressClient, EgressLimits, OperatorEgress, SystemLookup};
use vivarium_runtime::eviction::EvictionPolicy;
use vivarium_sandbox::{Limits, RuntimeChoice, StateQuotas};
use vivarium_store::{BadBlobLocation, BlobLocation};

use crate::throttle::SignInLimits;

/// Everything the service can be told. Field names are the TOML keys and, upper-cased with a
/// `VIVARIUM_` prefix, the environment variables (`VIVARIUM_LISTEN`, `VIVARIUM_DATA_DIR`, ...).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    /// Address to listen on. Default `127.0.0.1:5080` (localhost only).
    pub listen: SocketAddr,
    /// Folder for the database and the blobs. Default `./vivarium-data`.
    pub data_dir: PathBuf,
    /// Metadata database URL: `sqlite://...` or `postgres://...` (shared by replicas).
    /// Default: SQLite at `{data_dir}/vivarium.db`.
    pub database_url: Option<String>,
    /// Where ZIPs and dependency wheels are kept: a folder, or `s3://bucket/prefix` (shared by
    /// replicas; endpoint, region and credentials from the `AWS_*` environment variables).
    /// Default `{data_dir}/blobs`.
    pub blob_store: Option<String>,
    /// Interpreter, compile and extraction cache. Default: the user's cache folder, the one
    /// `vivarium run` uses (`~/.cache/vivarium` on Linux), so the interpreter is built once
    /// per user; `{data_dir}/cache` when the user has none.
    pub cache_dir: Option<PathBuf>,
    /// Largest size of the cache's swept folders (compiled modules, snapshots, bytecode,
    /// extracted actions, dependency layers) in bytes; past it the least recently used
    /// entries go first (never one used in the last hour). Default 10 GiB.
    pub cache_max_bytes: u64,
    /// Cache entries unused for this long are evicted whatever the size. Default `30days`.
    #[serde(with = "humantime_duration")]
    pub cache_max_idle: Duration,
    /// How old a ZIP or wheel no action references must be before the hourly sweep removes
    /// it (it may be an upload's, stored and not yet recorded). Default `1h`.
    #[serde(with = "humantime_duration")]
    pub blob_sweep_min_age: Duration,
    /// Which interpreter runs actions: `snapshot` (built from source on first need,
    /// pre-initialized, warm pool) or `pinned` (the prebuilt CPython 3.12). Default `snapshot`.
    pub runtime: String,
    /// Fresh instances the snapshot runtime keeps ready. Default 8.
    pub warm_pool_size: usize,
    /// Sandbox calls running at once. Default: the number of CPU cores.
    pub max_concurrent_runs: usize,
    /// Runs that may wait on an outbound request at once besides the running ones, having
    /// given their slot back (so a slow peer does not hold up runnable calls). Default: four
    /// times `max_concurrent_runs`.
    pub max_runs_waiting_on_network: Option<usize>,
    /// Runs allowed to wait for a slot; beyond it the service answers 429. Default 64.
    pub run_queue_capacity: usize,
    /// Runs one organization may have running or waiting at once. Default 32.
    pub per_org_max_runs: usize,
    /// Largest request body in bytes (uploads included). Default 64 MiB.
    pub max_body_bytes: usize,
    /// Fuel per run. Default 2e10.
    pub run_fuel: u64,
    /// Memory per run in bytes. Default 256 MiB.
    pub run_memory_bytes: u64,
    /// Wall-clock limit per run. Default `10s`.
    #[serde(with = "humantime_duration")]
    pub run_timeout: Duration,
    /// Log bytes kept per run. Default 256 KiB.
    pub run_log_bytes: usize,
    /// Result bytes per run. Default 16 MiB.
    pub run_result_bytes: usize,
    /// Input bytes per run. Default 16 MiB.
    pub run_input_bytes: usize,
    /// Disk a run's scratch folder `/tmp` may take, in bytes (counted as `du` counts).
    /// Default 64 MiB.
    pub run_scratch_bytes: u64,
    /// Files, folders and links a run's scratch folder may hold. Default 1,000.
    pub run_scratch_files: u64,
    /// How often the scheduler looks for due actions. Default `1s`.
    #[serde(with = "humantime_duration")]
    pub scheduler_interval: Duration,
    /// This replica's name in the shared database. Default: generated at each start.
    pub replica_id: Option<String>,
    /// How often this replica records that it is alive. Default `5s`.
    #[serde(with = "humantime_duration")]
    pub heartbeat_interval: Duration,
    /// After how long without a heartbeat a replica counts as stopped, and the runs it left
    /// "running" are closed as errored by another replica. Default `30s`.
    #[serde(with = "humantime_duration")]
    pub replica_timeout: Duration,
    /// The Simple API index pyproject.toml dependencies are resolved against.
    /// Default: the public Python package index.
    pub package_index: String,
    /// A folder of pure-Python wheels consulted before the index (air-gapped deployments).
    pub wheelhouse: Option<PathBuf>,
    /// Origins (`scheme://host[:port]`, IP literals allowed) whose names may resolve to
    /// private addresses, such as the observability platform's own API. An action must
    /// still allow them; metadata addresses stay blocked. Default: none.
    pub egress_internal_hosts: Vec<String>,
    /// PEM root certificates trusted for actions' https requests besides the system's (an
    /// internal CA). Default: none.
    pub egress_ca_file: Option<PathBuf>,
    /// The caps on every run's outbound requests (a table: `connect_timeout`,
    /// `request_timeout`, `request_body_bytes`, `response_body_bytes`, `header_bytes`,
    /// `requests_per_call`, `bytes_per_call`, `fuel_per_request`). Default: see the README.
    pub egress: EgressLimits,
    /// The quotas of every action's durable state (a table: `keys_per_action`,
    /// `value_bytes`, `bytes_per_action`, `key_bytes`). Default: see the README.
    pub state: StateQuotas,
    /// The throttle on failed sign-ins (a table: `failures_per_account`,
    /// `failures_per_address`, `window`). Default: see the README.
    pub sign_in: SignInLimits,
    /// The URL of the cluster actions belong to (OpenObserve's `ORIGIN_CLUSTER_URL`): given
    /// to every run in that variable, and reachable by it. An organization's own
    /// `origin_cluster_url` (`PUT /api/organizations/{org}`) wins. Default: none.
    pub origin_cluster_url: Option<String>,
    /// The key secrets are sealed with: the standard base64 of 32 random bytes. Never shown
    /// (`Debug` prints `***`). Default: `secrets_key_file`.
    pub secrets_key: Option<KeyText>,
    /// A file holding the key as base64, instead of `secrets_key`. Default, with an embedded
    /// database: `{data_dir}/secrets.key`, generated (mode 0600) on first start. Replicas of
    /// a shared database must all be given the same key, so one of the two must be set then.
    pub secrets_key_file: Option<PathBuf>,
    /// Keys that sealed secrets before a rotation (base64 each): they still open them, and
    /// every secret one of them sealed is sealed again with the current key at start, after
    /// which they can be removed. Default: none.
    pub secrets_previous_keys: Vec<KeyText>,
    /// Email of the root user created on first start.
    pub root_user_email: Option<String>,
    /// Password of the root user created on first start (generated and printed once if unset).
    pub root_user_password: Option<String>,
    /// How long a console sign-in lasts. Default `8h`.
    #[serde(with = "humantime_duration")]
    pub console_session_ttl: Duration,
    /// Whether the console's cookies are marked Secure (sent over HTTPS only): set it when
    /// the service is reached through TLS (a terminating proxy). Default `false`.
    pub console_secure_cookies: bool,
}

/// A key as the configuration gives it (base64 text). It reads and writes as a plain string,
/// but `Debug` shows `***`, so that printing the configuration never shows a key.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct KeyText(String);

impl KeyText {
    /// The key text, for reading the key.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl From<String> for KeyText {
    fn from(text: String) -> Self {
        Self(text)
    }
}

impl std::fmt::Debug for KeyText {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("***")
    }
}

const MIB: usize = 1024 * 1024;

/// Every key (the fields' serde names, read off the defaults), so that other `VIVARIUM_*`
/// variables (the CLI's, the tests') are not mistaken for configuration.
fn keys() -> Vec<String> {
    match serde_json::to_value(ServerConfig::default()) {
        Ok(serde_json::Value::Object(fields)) => fields.keys().cloned().collect(),
        _ => Vec::new(),
    }
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 5080)),
            data_dir: PathBuf::from("vivarium-data"),
            database_url: None,
            blob_store: None,
            cache_dir: None,
            cache_max_bytes: EvictionPolicy::DEFAULT.max_bytes,
            cache_max_idle: EvictionPolicy::DEFAULT.max_idle,
            blob_sweep_min_age: Duration::from_secs(3600),
            runtime: RuntimeChoice::default().name().to_string(),
            warm_pool_size: 8,
            max_concurrent_runs: std::thread::available_parallelism().map_or(2, usize::from),
            max_runs_waiting_on_network: None,
            run_queue_capacity: 64,
            per_org_max_runs: 32,
            max_body_bytes: 64 * MIB,
            run_fuel: Limits::DEFAULT.fuel,
            run_memory_bytes: Limits::DEFAULT.memory_bytes,
            run_timeout: Limits::DEFAULT.timeout,
            run_log_bytes: 256 * 1024,
            run_result_bytes: Limits::DEFAULT.result_bytes,
            run_input_bytes: Limits::DEFAULT.input_bytes,
            run_scratch_bytes: Limits::DEFAULT.scratch_bytes,
            run_scratch_files: Limits::DEFAULT.scratch_files,
            scheduler_interval: Duration::from_secs(1),
            replica_id: None,
            heartbeat_interval: Duration::from_secs(5),
            replica_timeout: Duration::from_secs(30),
            package_index: vivarium_deps::DEFAULT_INDEX_URL.to_string(),
            wheelhouse: None,
            egress_internal_hosts: Vec::new(),
            egress_ca_file: None,
            egress: EgressLimits::DEFAULT,
            state: StateQuotas::DEFAULT,
            sign_in: SignInLimits::DEFAULT,
            origin_cluster_url: None,
            secrets_key: None,
            secrets_key_file: None,
            secrets_previous_keys: Vec::new(),
            root_user_email: None,
            root_user_password: None,
            console_session_ttl: Duration::from_secs(8 * 3600),
            console_secure_cookies: false,
        }
    }
}

impl ServerConfig {
    /// Defaults, then `file` (if given), then the environment, then `overrides` (flags).
    pub fn load(
        file: Option<&Path>,
        overrides: impl Serialize,
    ) -> Result<Self, Box<figment::Error>> {
        let mut figment = Figment::from(Serialized::defaults(ServerConfig::default()));
        if let Some(file) = file {
            figment = figment.merge(Toml::file_exact(file));
        }
        let keys = keys();
        let env = Env::prefixed("VIVARIUM_").filter(move |key| {
            keys.iter()
                .any(|known| key.as_str().eq_ignore_ascii_case(known))
        });
        figment
            .merge(env)
            .merge(Serialized::defaults(overrides))
            .extract()
            .map_err(Box::new)
    }

    /// The database URL in force.
    pub fn database_url(&self) -> String {
        self.database_url.clone().unwrap_or_else(|| {
            format!(
                "sqlite://{}?mode=rwc",
                self.data_dir.join("vivarium.db").display()
            )
        })
    }

    /// The blob store in force.
    pub fn blob_location(&self) -> Result<BlobLocation, BadBlobLocation> {
        match &self.blob_store {
            Some(given) => given.parse(),
            None => Ok(BlobLocation::Folder(self.data_dir.join("blobs"))),
        }
    }

    /// Whether the metadata database is a file of this process (SQLite) rather than a
    /// server other replicas may share.
    pub fn embedded_database(&self) -> bool {
        self.database_url().starts_with("sqlite:")
    }

    /// The cache folder in force.
    pub fn cache_dir(&self) -> PathBuf {
        self.cache_dir.clone().unwrap_or_else(|| {
            vivarium_runtime::cache_dir(None).unwrap_or_else(|_| self.data_dir.join("cache"))
        })
    }

    /// When cache entries are evicted.
    pub fn cache_eviction(&self) -> EvictionPolicy {
        EvictionPolicy {
            max_bytes: self.cache_max_bytes,
            max_idle: self.cache_max_idle,
            ..EvictionPolicy::DEFAULT
        }
    }

    /// The interpreter in force.
    pub fn runtime_choice(&self) -> Result<RuntimeChoice, String> {
        self.runtime.parse()
    }

    /// How dependencies are resolved and installed: for the Python of the runtime in force,
    /// which provides `provided` built in.
    pub fn deps_config(
        &self,
        provided: Vec<vivarium_deps::ProvidedPackage>,
    ) -> vivarium_deps::DepsConfig {
        let (major, minor, patch) = self.runtime_choice().unwrap_or_default().python_version();
        vivarium_deps::DepsConfig {
            index_url: self.package_index.clone(),
            wheelhouse: self.wheelhouse.clone(),
            python: vivarium_deps::TargetPython::new(major, minor, patch),
            provided,
            ..vivarium_deps::DepsConfig::default()
        }
    }

    /// Runs that may wait on the network besides the running ones.
    pub fn runs_waiting_on_network(&self) -> usize {
        self.max_runs_waiting_on_network
            .unwrap_or(4 * self.max_concurrent_runs)
    }

    /// The operator's egress settings, checked.
    pub fn operator_egress(&self) -> Result<OperatorEgress, String> {
        OperatorEgress::new(&self.egress_internal_hosts, self.egress)
    }

    /// The client actions' requests go through, trusting `egress_ca_file` besides the
    /// system's roots.
    pub fn egress_client(&self) -> Result<EgressClient, String> {
        let extra_roots = self
            .egress_ca_file
            .as_deref()
            .map(|path| {
                std::fs::read(path).map_err(|e| format!("egress_ca_file {}: {e}", path.display()))
            })
            .transpose()?;
        EgressClient::new(extra_roots.as_deref(), Arc::new(SystemLookup))
    }

    /// The per-run limits, checked against their ceilings.
    pub fn run_limits(&self) -> Result<Limits, vivarium_sandbox::SandboxError> {
        let limits = Limits {
            fuel: self.run_fuel,
            memory_bytes: self.run_memory_bytes,
            timeout: self.run_timeout,
            input_bytes: self.run_input_bytes,
            result_bytes: self.run_result_bytes,
            log_bytes: self.run_log_bytes,
            scratch_bytes: self.run_scratch_bytes,
            scratch_files: self.run_scratch_files,
        };
        limits.validate()?;
        Ok(limits)
    }
}

/// Durations as people write them (`10s`, `1m30s`) in files and the environment.
mod humantime_duration {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(duration: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&humantime::format_duration(*duration).to_string())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
        let text = String::deserialize(deserializer)?;
        humantime::parse_duration(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_keys_are_the_fields_unset_ones_included() {
        let keys = keys();
        for key in [
            "listen",
            "secrets_key",
            "origin_cluster_url",
            "egress",
            "state",
        ] {
            assert!(keys.iter().any(|k| k == key), "{key} missing from {keys:?}");
        }
    }

    #[test]
    fn defaults_listen_on_localhost_with_embedded_storage() {
        let config = ServerConfig::load(None, serde_json::json!({})).unwrap();
        assert!(config.listen.ip().is_loopback());
        assert!(config.database_url().starts_with("sqlite://"));
        config.run_limits().unwrap();
    }

    #[test]
    fn a_file_is_overridden_by_flags() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("vivarium.toml");
        std::fs::write(
            &file,
            "listen = \"127.0.0.1:7000\"\nrun_timeout = \"3s\"\nper_org_max_runs = 5\n",
        )
        .unwrap();
        let config = ServerConfig::load(
            Some(&file),
            serde_json::json!({ "listen": "127.0.0.1:7001" }),
        )
        .unwrap();
        assert_eq!(config.listen.port(), 7001);
        assert_eq!(config.run_timeout, Duration::from_secs(3));
        assert_eq!(config.per_org_max_runs, 5);
    }

    #[test]
    #[allow(clippy::result_large_err)] // figment's Jail fixes the closure's error type
    fn the_environment_overrides_the_file_and_flags_override_both() {
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "vivarium.toml",
                "listen = \"127.0.0.1:7000\"\nrun_fuel = 5\n",
            )?;
            jail.set_env("VIVARIUM_LISTEN", "127.0.0.1:7002");
            jail.set_env("VIVARIUM_ROOT_USER_PASSWORD", "from-the-environment");
            jail.set_env("VIVARIUM_PACKAGE_INDEX", "https://not.a.config.key/simple");
            let file = jail.directory().join("vivarium.toml");
            let config = ServerConfig::load(Some(&file), serde_json::json!({}))
                .map_err(|e| e.to_string())?;
            assert_eq!(config.listen.port(), 7002);
            assert_eq!(config.run_fuel, 5);
            assert_eq!(
                config.root_user_password.as_deref(),
                Some("from-the-environment")
            );
            let flagged = ServerConfig::load(
                Some(&file),
                serde_json::json!({ "listen": "127.0.0.1:7003" }),
            )
            .map_err(|e| e.to_string())?;
            assert_eq!(flagged.listen.port(), 7003);
            Ok(())
        });
    }

    #[test]
    fn blob_store_takes_a_folder_or_an_s3_url_and_refuses_other_schemes() {
        let defaults = ServerConfig::default();
        assert_eq!(
            defaults.blob_location().unwrap(),
            BlobLocation::Folder(PathBuf::from("vivarium-data").join("blobs"))
        );
        assert!(defaults.embedded_database());
        let shared = ServerConfig::load(
            None,
            serde_json::json!({
                "blob_store": "s3://vivarium-prod/eu",
                "database_url": "postgres://vivarium@db/vivarium",
            }),
        )
        .unwrap();
        assert_eq!(
            shared.blob_location().unwrap(),
            BlobLocation::S3 {
                bucket: "vivarium-prod".into(),
                prefix: "eu".into()
            }
        );
        assert!(!shared.embedded_database());
        let wrong = ServerConfig::load(None, serde_json::json!({ "blob_store": "ftp://x/y" }))
            .unwrap()
            .blob_location()
            .unwrap_err();
        assert!(
            wrong.to_string().contains("ftp:// is not supported"),
            "{wrong}"
        );
    }

    #[test]
    #[allow(clippy::result_large_err)] // figment's Jail fixes the closure's error type
    fn secrets_keys_are_read_from_the_environment_and_never_printed() {
        figment::Jail::expect_with(|jail| {
            let (key, old) = (
                "q3Jm0mYl4iR1Qx5Yk6oW0b2Vf8n9sT1uC4eD7gH2jK0=",
                "Zm9yLXRlc3RzLW9ubHktMzItYnl0ZXMtb2Yta2V5ISE=",
            );
            jail.set_env("VIVARIUM_SECRETS_KEY", key);
            jail.set_env("VIVARIUM_SECRETS_PREVIOUS_KEYS", format!("[\"{old}\"]"));
            jail.set_env("VIVARIUM_ORIGIN_CLUSTER_URL", "https://o2.example.com");
            let config =
                ServerConfig::load(None, serde_json::json!({})).map_err(|e| e.to_string())?;
            assert_eq!(config.secrets_key.as_ref().map(KeyText::expose), Some(key));
            assert_eq!(
                config
                    .secrets_previous_keys
                    .iter()
                    .map(KeyText::expose)
                    .collect::<Vec<_>>(),
                [old]
            );
            assert_eq!(
                config.origin_cluster_url.as_deref(),
                Some("https://o2.example.com")
            );
            let printed = format!("{config:?} {config:#?}");
            assert!(
                !printed.contains(key) && !printed.contains(old),
                "{printed}"
            );
            assert!(printed.contains("secrets_key: Some(***)"), "{printed}");
            Ok(())
        });
    }

    #[test]
    fn an_unknown_key_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("vivarium.toml");
        std::fs::write(&file, "lisen = \"127.0.0.1:7000\"\n").unwrap();
        let error = ServerConfig::load(Some(&file), serde_json::json!({})).unwrap_err();
        assert!(error.to_string().contains("lisen"), "{error}");
    }
}
