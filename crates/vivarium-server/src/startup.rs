//! Starting and stopping the service: storage, the root user, the sandbox, the executor, the
//! scheduler and the HTTP listener ([`start`]; [`build`] does all but listening, for calling
//! the router in-process), and a graceful shutdown that lets running calls finish.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use vivarium_auth::{generate_password, hash_password};
use vivarium_deps::ProvidedPackage;
use vivarium_runtime::BuiltInterpreter;
use vivarium_runtime::eviction::{self, EvictionPolicy};
use vivarium_runtime::{FetchOptions, Progress};
use vivarium_sandbox::{PrepareOptions, Profile, RuntimeChoice};
use vivarium_store::{
    ActionStatus, BlobLocation, BlobStore, MetadataStore, ObjectBlobStore, SqlStore, StoreError,
    User,
};

use crate::blob_gate::BlobGate;
use crate::catalog::Catalog;
use crate::clock::now_micros;
use crate::config::ServerConfig;
use crate::executor::{Capacity, Executor, RunSettings};
use crate::identity::Authenticator;
use crate::metrics::Metrics;
use crate::profiles::Sandboxes;
use crate::{AppState, blob_sweep, replicas, routes, scheduler, secrets};

/// The organization every fresh installation starts with.
pub const DEFAULT_ORG: &str = "default";
/// Root login used when none is configured.
const DEFAULT_ROOT_EMAIL: &str = "root@localhost";
/// How long shutdown waits for running calls.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(60);

/// A started service.
pub struct RunningServer {
    /// Where it listens (the real port when the configuration asked for port 0).
    pub addr: SocketAddr,
    /// The root login created on this start, with its generated password (printed once).
    pub generated_root: Option<(String, String)>,
    shutdown: oneshot::Sender<()>,
    task: JoinHandle<std::io::Result<()>>,
}

impl RunningServer {
    /// Stops accepting connections, lets requests in flight (and their calls) finish, then returns.
    pub async fn shutdown(self) -> anyhow::Result<()> {
        let _ = self.shutdown.send(());
        self.task
            .await
            .context("the server task failed")?
            .context("the server failed")
    }

    /// Waits until the server stops by itself (it does not, unless it fails).
    pub async fn wait(self) -> anyhow::Result<()> {
        self.task
            .await
            .context("the server task failed")?
            .context("the server failed")
    }
}

/// The service assembled without a listener: its router, and the tasks that run beside it
/// (the scheduler and this replica's heartbeat) on the runtime that built it.
pub struct App {
    /// The HTTP API: serve it on a listener, or call it in-process.
    pub router: axum::Router,
    /// The root login created by this build, with its generated password (shown once).
    pub generated_root: Option<(String, String)>,
    replica: String,
    blob_location: BlobLocation,
    background: Background,
}

impl App {
    /// Stops the scheduler, lets running calls finish (up to a minute), then stops the
    /// heartbeat. The router still answers afterwards, but nothing runs on a schedule.
    pub async fn shutdown(self) {
        self.background.stop().await;
    }
}

/// What runs beside the router: the scheduler, the executor's calls, this replica's
/// heartbeat, the cache's sweeper.
struct Background {
    executor: Arc<Executor>,
    scheduler: JoinHandle<()>,
    heartbeat: JoinHandle<()>,
    cache_sweeper: JoinHandle<()>,
}

impl Background {
    /// No new scheduled runs, running calls finish, then the heartbeat stops (so that other
    /// replicas do not close this one's runs meanwhile).
    async fn stop(self) {
        self.scheduler.abort();
        self.cache_sweeper.abort();
        self.executor.drain(SHUTDOWN_GRACE).await;
        self.heartbeat.abort();
    }
}

/// What the prepared `runtime` in `cache_dir` provides built in (numpy and pandas, on the
/// snapshot runtime), for resolving dependencies.
fn provided_packages(runtime: RuntimeChoice, cache_dir: &Path) -> Vec<ProvidedPackage> {
    let built = match runtime {
        RuntimeChoice::Snapshot => BuiltInterpreter::find(cache_dir),
        RuntimeChoice::Pinned => None,
    };
    built
        .iter()
        .flat_map(Profile::provided_by)
        .map(|(name, version)| ProvidedPackage {
            name: name.to_string(),
            version,
        })
        .collect()
}

/// How often the cache and the blob store are swept.
const SWEEP_INTERVAL: Duration = Duration::from_secs(3600);

/// Before serving, the blobs interrupted writes left: with an embedded database this process
/// is the only writer, and no upload is in flight yet, so every unreferenced ZIP goes at once;
/// with a shared one, only those older than `blob_sweep_min_age` (another replica may be
/// between storing a ZIP and recording its action). A failed sweep is logged, not fatal.
async fn sweep_blobs_at_start(
    meta: &dyn MetadataStore,
    blobs: &dyn BlobStore,
    gate: &BlobGate,
    config: &ServerConfig,
) {
    let min_age = if config.embedded_database() {
        Duration::ZERO
    } else {
        config.blob_sweep_min_age
    };
    log_blob_sweep(blob_sweep::sweep_blobs(meta, blobs, gate, min_age).await);
}

fn log_blob_sweep(swept: Result<blob_sweep::BlobsSwept, StoreError>) {
    match swept {
        Ok(swept) if swept.zips + swept.wheels + swept.staging > 0 => tracing::info!(
            zips = swept.zips,
            wheels = swept.wheels,
            staging_files = swept.staging,
            "blob store swept"
        ),
        Ok(_) => {}
        Err(error) => tracing::warn!(%error, "the blob sweep failed"),
    }
}

/// At start, evicts from the cache what `policy` lets go (see [`vivarium_runtime::eviction`]);
/// then every [`SWEEP_INTERVAL`], does that again and removes from the blob store the ZIPs
/// and wheels no action references that are older than `blob_min_age` (see [`blob_sweep`];
/// the start's blob sweep is [`sweep_blobs_at_start`]'s, before serving).
async fn keep_tidy(
    cache_dir: PathBuf,
    policy: EvictionPolicy,
    meta: Arc<dyn MetadataStore>,
    blobs: Arc<dyn BlobStore>,
    gate: Arc<BlobGate>,
    blob_min_age: Duration,
) {
    let start = tokio::time::Instant::now();
    let mut ticks = tokio::time::interval_at(start + SWEEP_INTERVAL, SWEEP_INTERVAL);
    loop {
        sweep_cache(&cache_dir, policy).await;
        ticks.tick().await;
        let swept = blob_sweep::sweep_blobs(meta.as_ref(), blobs.as_ref(), &gate, blob_min_age);
        log_blob_sweep(swept.await);
    }
}

/// One eviction pass over the cache, on a blocking thread (it walks the folders).
async fn sweep_cache(cache_dir: &Path, policy: EvictionPolicy) {
    let dir = cache_dir.to_path_buf();
    match tokio::task::spawn_blocking(move || eviction::sweep(&dir, &policy)).await {
        Ok(swept) if swept.evicted > 0 => tracing::info!(
            evicted = swept.evicted,
            freed_bytes = swept.freed_bytes,
            kept_bytes = swept.kept_bytes,
            "cache swept"
        ),
        Ok(_) => {}
        Err(error) => tracing::warn!(%error, "the cache sweep failed"),
    }
}

/// Opens storage, prepares the sandbox, and starts serving on `config.listen`.
pub async fn start(config: ServerConfig) -> anyhow::Result<RunningServer> {
    let listen = config.listen;
    let app = build(config).await?;
    let (listener, addr) = match bind(listen).await {
        Ok(bound) => bound,
        Err(error) => {
            app.shutdown().await;
            return Err(error);
        }
    };
    let (router, background) = (app.router, app.background);
    let (shutdown, stop) = oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        let served = axum::serve(
            listener,
            router.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(async move {
            let _ = stop.await;
        })
        .await;
        background.stop().await;
        served
    });
    let (replica, blobs) = (app.replica, app.blob_location);
    tracing::info!(%addr, %replica, %blobs, "vivarium is serving");
    Ok(RunningServer {
        addr,
        generated_root: app.generated_root,
        shutdown,
        task,
    })
}

/// A listener on `listen`, and the address it got (the real port when `listen` asked for 0).
async fn bind(listen: SocketAddr) -> anyhow::Result<(tokio::net::TcpListener, SocketAddr)> {
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;
    let addr = listener.local_addr()?;
    Ok((listener, addr))
}

/// Opens storage, creates the root user on first use, prepares the sandbox, and starts the
/// scheduler and the heartbeat: everything [`start`] does but listening. `config.listen` is
/// not used.
pub async fn build(config: ServerConfig) -> anyhow::Result<App> {
    let limits = config
        .run_limits()
        .context("invalid run limits in the configuration")?;
    let egress = config
        .operator_egress()
        .map_err(anyhow::Error::msg)
        .context("invalid egress settings in the configuration")?;
    let egress_client = config.egress_client().map_err(anyhow::Error::msg)?;
    std::fs::create_dir_all(&config.data_dir).with_context(|| {
        format!(
            "cannot create the data folder {}",
            config.data_dir.display()
        )
    })?;
    check_replica_timing(&config)?;
    config
        .sign_in
        .validate()
        .map_err(anyhow::Error::msg)
        .context("invalid sign-in throttle in the configuration")?;
    let origin_cluster_url = secrets::configured_origin(&config)?;
    let keyring = Arc::new(secrets::keyring(&config)?);
    let meta: Arc<dyn MetadataStore> = Arc::new(SqlStore::connect(&config.database_url()).await?);
    let blob_location = config.blob_location()?;
    let blobs: Arc<dyn BlobStore> = Arc::new(ObjectBlobStore::open(&blob_location).await?);
    meta.ensure_org(DEFAULT_ORG).await?;
    recover_interrupted_runs(meta.as_ref(), &config).await?;
    let gate = Arc::new(BlobGate::default());
    sweep_blobs_at_start(meta.as_ref(), blobs.as_ref(), &gate, &config).await;
    let replica = config
        .replica_id
        .clone()
        .unwrap_or_else(replicas::generated_id);
    replicas::beat(meta.as_ref(), &replica, config.replica_timeout).await?;
    let generated_root = ensure_root_user(meta.as_ref(), &config).await?;
    secrets::reseal_all(meta.as_ref(), &keyring).await?;

    let cache_dir = config.cache_dir();
    let options = PrepareOptions {
        runtime: config.runtime_choice().map_err(anyhow::Error::msg)?,
        fetch: FetchOptions {
            progress: Progress::Bar,
            ..FetchOptions::default()
        },
        pool_size: config.warm_pool_size,
        max_concurrent_calls: config.max_concurrent_runs + config.runs_waiting_on_network(),
        ..PrepareOptions::default()
    };
    let sandbox = {
        let (cache_dir, options) = (cache_dir.clone(), options.clone());
        tokio::task::spawn_blocking(move || vivarium_sandbox::prepare(&cache_dir, &options))
            .await??
    };
    tracing::info!(runtime = sandbox.runtime_name(), "the sandbox is ready");
    let deps = config.deps_config(provided_packages(options.runtime, &cache_dir));
    let sandboxes = Sandboxes::new(sandbox, cache_dir.clone(), options);
    let metrics = Arc::new(Metrics::default());
    let capacity = Capacity {
        concurrent: config.max_concurrent_runs,
        waiting_on_network: config.runs_waiting_on_network(),
        queue: config.run_queue_capacity,
        per_org: config.per_org_max_runs,
    };
    let executor = Arc::new(Executor::new(
        sandboxes,
        meta.clone(),
        blobs.clone(),
        RunSettings {
            cache_dir,
            limits,
            deps: deps.clone(),
            replica: replica.clone(),
            egress: Arc::new(egress),
            egress_client,
            keyring: keyring.clone(),
            origin_cluster_url,
            state_quotas: config.state,
        },
        capacity,
        metrics.clone(),
    ));
    let scheduler = tokio::spawn(scheduler::run_scheduler(
        meta.clone(),
        executor.clone(),
        config.scheduler_interval,
    ));
    let heartbeat = tokio::spawn(replicas::keep_alive(
        meta.clone(),
        replica.clone(),
        config.heartbeat_interval,
        config.replica_timeout,
    ));
    let cache_sweeper = tokio::spawn(keep_tidy(
        config.cache_dir(),
        config.cache_eviction(),
        meta.clone(),
        blobs.clone(),
        gate.clone(),
        config.blob_sweep_min_age,
    ));

    let catalog = Catalog::new(
        meta.clone(),
        blobs.clone(),
        config.cache_dir(),
        deps,
        executor.internal_hosts().clone(),
        gate,
    );
    let state = Arc::new(AppState {
        meta,
        blobs,
        catalog,
        executor: executor.clone(),
        authenticator: Authenticator::new(config.sign_in),
        keyring,
        metrics,
        config,
    });
    Ok(App {
        router: routes::router(state),
        generated_root,
        replica,
        blob_location,
        background: Background {
            executor,
            scheduler,
            heartbeat,
            cache_sweeper,
        },
    })
}

/// With an embedded (SQLite) database this process is the only one running actions, so an
/// action still marked running was interrupted by a crash: it is marked errored at once. On a
/// shared database other replicas may be running those actions; the heartbeats close the runs
/// of replicas that stopped instead ([`replicas`]).
async fn recover_interrupted_runs(
    meta: &dyn MetadataStore,
    config: &ServerConfig,
) -> anyhow::Result<()> {
    if !config.embedded_database() {
        return Ok(());
    }
    let interrupted = meta.reset_running_actions(ActionStatus::Errored).await?;
    if interrupted > 0 {
        tracing::warn!(
            interrupted,
            "actions left running by an earlier crash were marked errored"
        );
    }
    Ok(())
}

/// A replica must beat more often than the others wait for it, or live replicas would have
/// their runs closed under them.
fn check_replica_timing(config: &ServerConfig) -> anyhow::Result<()> {
    if config.heartbeat_interval.is_zero() || config.replica_timeout < config.heartbeat_interval * 2
    {
        anyhow::bail!(
            "replica_timeout ({}) must be at least twice heartbeat_interval ({}), which must not be zero",
            humantime::format_duration(config.replica_timeout),
            humantime::format_duration(config.heartbeat_interval)
        );
    }
    Ok(())
}

/// Creates the root user on first start: from the configuration, or with a generated password
/// that is returned so that it can be shown once.
async fn ensure_root_user(
    meta: &dyn MetadataStore,
    config: &ServerConfig,
) -> anyhow::Result<Option<(String, String)>> {
    if meta.has_root_user().await? {
        return Ok(None);
    }
    let email = config
        .root_user_email
        .clone()
        .unwrap_or_else(|| DEFAULT_ROOT_EMAIL.to_string())
        .trim()
        .to_lowercase();
    let (password, generated) = match &config.root_user_password {
        Some(password) => (password.clone(), false),
        None => (generate_password(), true),
    };
    let hash = {
        let password = password.clone();
        tokio::task::spawn_blocking(move || hash_password(&password)).await??
    };
    let created = meta
        .create_user(&User {
            email: email.clone(),
            password_hash: hash,
            is_root: true,
            created_at: now_micros(),
        })
        .await;
    if let Err(StoreError::Conflict(_)) = created {
        // Another replica sharing the database created it a moment ago.
        return Ok(None);
    }
    created?;
    tracing::info!(%email, "root user created");
    Ok(generated.then_some((email, password)))
}
