//! The run pipeline: admission (bounded queue, per-organization cap) -> the service account's
//! permission, checked before anything is instantiated -> the action's package from the
//! extraction cache or the blob store -> the sandbox, off the async workers -> the outcome,
//! recorded with its logs -> the answer to the trigger. Every run is listed among the runs
//! in flight ([`LiveRuns`]) from admission to its record, so its logs can be watched live.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;
use sha2::{Digest, Sha256};
use vivarium_auth::{Keyring, ResourceKind, Verb};
use vivarium_deps::{DepsConfig, Lock};
use vivarium_egress::{Allowlist, Author, Egress, EgressClient, OperatorEgress};
use vivarium_package::{ACTIONS_DIR, PackageLimits};
use vivarium_sandbox::{
    ActionEnv, Call, Input, Limits, Outcome, OutcomeKind, ResultShape, Sandbox, SandboxError,
    StateAccess, StateQuotas, StateWrite,
};
use vivarium_store::{
    Action, ActionStatus, BlobKey, BlobStore, CommitFailure, ExecutionKind, MetadataStore, Refusal,
    Run, RunJournal, RunOutcome, RunWrite, SecretRecord, StoreError, Trigger,
};

use crate::action_state::StoreStateReader;
use crate::clock::now_micros;
use crate::live::{LiveHandle, LiveRunInfo, LiveRuns};
use crate::mask::SecretMask;
use crate::metrics::{Metrics, RunLabels};
use crate::profiles::Sandboxes;
use crate::running_mark::RunningMark;
use crate::secrets::{self, RunSecrets, SecretUnreadable};
use crate::shared_wheels;
use crate::slots::Slots;

/// Why a run was not performed (a run that was performed, whatever its outcome, is a
/// [`RunReport`]). The HTTP edge maps each to its status; the scheduler logs it.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// Too many runs are running or waiting, for the service or for the organization.
    #[error("{message}")]
    Busy {
        /// What is full.
        message: String,
        /// Seconds after which a retry may succeed.
        retry_after_secs: u64,
    },
    /// The input is larger than a run accepts.
    #[error("{0}")]
    InputTooLarge(String),
    /// The action's stored settings no longer pass the rules in force (its owner must fix
    /// them), or the sandbox refused the call's set-up.
    #[error("{0}")]
    Unrunnable(String),
    /// A stored secret of the run does not open with the configured keys.
    #[error(transparent)]
    Secret(#[from] SecretUnreadable),
    /// The action's package or dependency layer could not be prepared on this replica.
    #[error("preparing the action failed: {0:#}")]
    Preparation(anyhow::Error),
    /// The metadata store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// One run to perform.
#[derive(Debug, Clone)]
pub struct RunRequest {
    /// The action, as stored.
    pub action: Action,
    /// What started it.
    pub trigger: Trigger,
    /// The caller's trace id, if any.
    pub trace_id: Option<String>,
    /// What `main` receives.
    pub input: Input,
    /// What the trigger expects back.
    pub shape: ResultShape,
}

/// A finished run: the stored record and the value `main` returned.
#[derive(Debug, Clone)]
pub struct RunReport {
    /// As stored in the run history.
    pub run: Run,
    /// What `main` returned, on success.
    pub result: Option<Value>,
}

/// Sizing of the executor.
#[derive(Debug, Clone, Copy)]
pub struct Capacity {
    /// Sandbox calls running guest code at once.
    pub concurrent: usize,
    /// Calls that may wait on the network at once besides them, having given their slot
    /// back.
    pub waiting_on_network: usize,
    /// Runs that may wait for a slot.
    pub queue: usize,
    /// Runs one organization may have admitted at once.
    pub per_org: usize,
}

/// What every run is given: where packages and layers are cached, the limits, and where
/// dependencies come from.
#[derive(Debug, Clone)]
pub struct RunSettings {
    /// Extraction and dependency-layer cache of this replica.
    pub cache_dir: PathBuf,
    /// Per-run limits.
    pub limits: Limits,
    /// How dependency layers missing from the cache are installed.
    pub deps: DepsConfig,
    /// This replica's name in the shared database, recorded on the actions it runs.
    pub replica: String,
    /// The operator's egress settings, applied to every action's allowed hosts.
    pub egress: Arc<OperatorEgress>,
    /// The client that sends actions' requests.
    pub egress_client: EgressClient,
    /// Opens the secrets runs are given.
    pub keyring: Arc<Keyring>,
    /// The service's origin cluster URL, for organizations without their own.
    pub origin_cluster_url: Option<String>,
    /// The quotas of every action's durable state.
    pub state_quotas: StateQuotas,
}

/// Runs actions for every trigger.
pub struct Executor {
    sandboxes: Sandboxes,
    meta: Arc<dyn MetadataStore>,
    journal: RunJournal,
    blobs: Arc<dyn BlobStore>,
    settings: RunSettings,
    capacity: Capacity,
    slots: Slots,
    admitted: AtomicUsize,
    per_org: Mutex<HashMap<String, usize>>,
    metrics: Arc<Metrics>,
    live: LiveRuns,
}

impl Executor {
    /// An executor over the profiles' sandboxes and the stores. Its runs' writes go through a
    /// [`RunJournal`] started on the current Tokio runtime, so this is called from within one.
    pub fn new(
        sandboxes: Sandboxes,
        meta: Arc<dyn MetadataStore>,
        blobs: Arc<dyn BlobStore>,
        settings: RunSettings,
        capacity: Capacity,
        metrics: Arc<Metrics>,
    ) -> Self {
        Self {
            sandboxes,
            journal: RunJournal::start(meta.clone()),
            meta,
            blobs,
            settings,
            capacity,
            slots: Slots::new(capacity.concurrent, capacity.waiting_on_network),
            admitted: AtomicUsize::new(0),
            per_org: Mutex::default(),
            metrics,
            live: LiveRuns::default(),
        }
    }

    /// The operator's internal hosts, which an action's allowed hosts may name.
    pub fn internal_hosts(&self) -> &Allowlist {
        &self.settings.egress.internal_hosts
    }

    /// Brings the gauges read from live state up to date (called at each scrape).
    pub fn refresh_metrics(&self) {
        let instances = i64::try_from(self.sandboxes.instantiations()).unwrap_or(i64::MAX);
        self.metrics.instances.set(instances);
        let admitted = i64::try_from(self.admitted.load(Ordering::SeqCst)).unwrap_or(i64::MAX);
        self.metrics
            .queued
            .set((admitted - self.metrics.running.get()).max(0));
    }

    /// Waits until no run is admitted, or `grace` has passed (for a graceful shutdown).
    pub async fn drain(&self, grace: Duration) {
        let deadline = Instant::now() + grace;
        while self.admitted.load(Ordering::SeqCst) > 0 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Performs one run end to end and records it. A permission refusal is a recorded run
    /// with outcome `permission_denied`, not an error.
    pub async fn run(&self, request: RunRequest) -> Result<RunReport, RunError> {
        let live = self.register(&request);
        self.run_registered(request, live).await
    }

    /// Lists `request` among the runs in flight, with the id and start time its record will
    /// have, so that a trigger can watch it before it starts ([`Self::run_registered`]).
    pub fn register(&self, request: &RunRequest) -> LiveHandle {
        self.live.register(LiveRunInfo {
            id: uuid::Uuid::now_v7().to_string(),
            org: request.action.org.clone(),
            action_id: request.action.id.clone(),
            trigger: request.trigger,
            started_at: now_micros(),
        })
    }

    /// The runs in flight on this replica.
    pub fn live(&self) -> &LiveRuns {
        &self.live
    }

    /// [`Self::run`] for a run already registered as `live`; its watchers see its lines as
    /// they are logged, then its record, or why it was not performed.
    pub async fn run_registered(
        &self,
        request: RunRequest,
        live: LiveHandle,
    ) -> Result<RunReport, RunError> {
        let performed = self.perform(&request, &live).await;
        match &performed {
            Ok(report) => live.ended(&report.run),
            Err(error) => live.failed(error.to_string()),
        }
        performed
    }

    async fn perform(
        &self,
        request: &RunRequest,
        live: &LiveHandle,
    ) -> Result<RunReport, RunError> {
        let _admission = self.admit(&request.action.org)?;
        vivarium_sandbox::check_input_size(&request.input, &self.settings.limits)
            .map_err(|e| RunError::InputTooLarge(e.to_string()))?;
        let action = &request.action;
        let info = live.info();
        // The secrets are read alongside the permission but opened only once it holds.
        let may_run = self.meta.principal_may(
            &action.org,
            &action.service_account,
            Verb::Get,
            ResourceKind::ActionScripts,
            Some(&action.id),
        );
        let (allowed, stored) = tokio::try_join!(may_run, self.stored_secrets(action))?;
        if !allowed {
            return self.record_refusal(request, info).await;
        }
        let mark = RunningMark::arm(
            &self.journal,
            RunWrite::Started {
                org: action.org.clone(),
                action_id: action.id.clone(),
                replica: self.settings.replica.clone(),
            },
        );
        let outcome = match self.prepare(action, stored).await {
            Ok(prepared) => self.execute(request, prepared, live).await,
            Err(error) => Err(error),
        };
        mark.settle().await?;
        match outcome {
            Ok((outcome, mask)) => self.record_outcome(request, info, outcome, &mask).await,
            Err(error) => {
                let reset = self
                    .meta
                    .set_action_status(&action.org, &action.id, ActionStatus::Errored)
                    .await;
                if let Err(reset) = reset {
                    tracing::error!(%reset, "could not mark the action errored");
                }
                Err(error)
            }
        }
    }

    fn admit(&self, org: &str) -> Result<Admission<'_>, RunError> {
        let total = self.capacity.concurrent + self.capacity.queue;
        if self.admitted.fetch_add(1, Ordering::SeqCst) >= total {
            self.admitted.fetch_sub(1, Ordering::SeqCst);
            self.metrics.rejected.inc();
            return Err(RunError::Busy {
                message: format!("{total} runs are already running or waiting; retry shortly"),
                retry_after_secs: 1,
            });
        }
        let mut per_org = self.per_org.lock().unwrap_or_else(|p| p.into_inner());
        let count = per_org.entry(org.to_string()).or_default();
        if *count >= self.capacity.per_org {
            drop(per_org);
            self.admitted.fetch_sub(1, Ordering::SeqCst);
            self.metrics.rejected.inc();
            return Err(RunError::Busy {
                message: format!(
                    "organization {org} already has {} runs running or waiting; retry shortly",
                    self.capacity.per_org
                ),
                retry_after_secs: 1,
            });
        }
        *count += 1;
        Ok(Admission {
            executor: self,
            org: org.to_string(),
        })
    }

    async fn record_refusal(
        &self,
        request: &RunRequest,
        info: &LiveRunInfo,
    ) -> Result<RunReport, RunError> {
        let action = &request.action;
        let message = format!(
            "service account {} has no GET permission on action script {}; grant it through a role",
            action.service_account, action.id
        );
        tracing::warn!(org = %action.org, action = %action.id, "run refused: {message}");
        let mut run = base_run(
            request,
            info,
            RunOutcome::Refused(Refusal::PermissionDenied),
        );
        run.error_type = Some("PermissionDenied".into());
        run.error_message = Some(message);
        self.record(&run, ActionStatus::Errored).await?;
        self.count(&run);
        Ok(RunReport { run, result: None })
    }

    /// Everything a run of `action` needs before it takes a sandbox slot: its folder, its
    /// dependency layer (a cold install must not hold a slot), its environment with the
    /// secrets opened, and where it may send requests.
    async fn prepare(&self, action: &Action, stored: StoredSecrets) -> Result<Prepared, RunError> {
        let folder = self
            .materialize(action)
            .await
            .map_err(RunError::Preparation)?;
        let lock = action
            .dependency_lock
            .as_deref()
            .map(serde_json::from_str::<Lock>)
            .transpose()
            .map_err(|e| RunError::Preparation(e.into()))?;
        let layer = match &lock {
            Some(lock) => Some(
                self.dependency_layer(action, lock)
                    .await
                    .map_err(RunError::Preparation)?,
            ),
            None => None,
        };
        let provided = lock.as_ref().map_or(&[][..], |lock| &lock.provided[..]);
        let profile = self
            .sandboxes
            .profile_of(&action.zip_digest, &folder, provided)
            .await;
        let sandbox = self
            .sandboxes
            .get(profile)
            .await
            .map_err(|e| RunError::Preparation(e.into()))?;
        let origin = stored
            .origin_cluster_url
            .or_else(|| self.settings.origin_cluster_url.clone());
        let run_secrets = secrets::for_run(&self.settings.keyring, &stored.sealed, origin)?;
        let env = run_env(action, &run_secrets)?;
        let egress = self.egress_of(action, run_secrets.origin_cluster_url.as_deref())?;
        Ok(Prepared {
            sandbox,
            folder,
            layer,
            env,
            egress,
            mask: run_secrets.mask,
        })
    }

    /// The action's extracted folder: from the local cache, else fetched from the blob store,
    /// checked against its digest and extracted.
    async fn materialize(&self, action: &Action) -> anyhow::Result<PathBuf> {
        let folder = self
            .settings
            .cache_dir
            .join(ACTIONS_DIR)
            .join(&action.zip_digest);
        if folder.is_dir() {
            vivarium_runtime::eviction::touch(&folder);
            return Ok(folder);
        }
        let bytes = self
            .blobs
            .get(&BlobKey::action_zip(&action.org, &action.zip_digest))
            .await?;
        let digest = hex::encode(Sha256::digest(&bytes));
        anyhow::ensure!(
            digest == action.zip_digest,
            "stored ZIP of action {} is corrupt: digest {digest}, expected {}",
            action.id,
            action.zip_digest
        );
        let cache = self.settings.cache_dir.clone();
        let folder = tokio::task::spawn_blocking(move || {
            vivarium_package::extract_zip(&bytes, &cache, &PackageLimits::default())
        })
        .await??;
        Ok(folder.root)
    }

    /// The action's dependency layer, installed from its recorded `lock` when this replica's
    /// cache does not have it yet, with the wheels the shared blob store keeps for it.
    async fn dependency_layer(&self, action: &Action, lock: &Lock) -> anyhow::Result<PathBuf> {
        if lock.python != self.settings.deps.python {
            tracing::warn!(
                org = %action.org,
                action = %action.id,
                locked_for = %lock.python,
                runtime = %self.settings.deps.python,
                "the action's dependencies were resolved for another Python; upload it again to resolve them for this one"
            );
        }
        let layer = vivarium_deps::layer_path(lock, &self.settings.cache_dir);
        if layer.is_dir() {
            vivarium_runtime::eviction::touch(&layer);
            return Ok(layer);
        }
        shared_wheels::fetch_missing(&self.blobs, &action.org, lock, &self.settings.cache_dir)
            .await?;
        let (cache, deps, lock) = (
            self.settings.cache_dir.clone(),
            self.settings.deps.clone(),
            lock.clone(),
        );
        let layer =
            tokio::task::spawn_blocking(move || vivarium_deps::install(&lock, &cache, &deps))
                .await??;
        Ok(layer)
    }

    /// What a run of `action` is given besides its own environment variables, as stored:
    /// its organization's and its own secrets, still sealed, and its organization's origin
    /// cluster URL; both read at once.
    async fn stored_secrets(&self, action: &Action) -> Result<StoredSecrets, StoreError> {
        let (sealed, origin_cluster_url) = tokio::try_join!(
            self.meta.secrets_for_run(&action.org, &action.id),
            self.meta.origin_cluster_url(&action.org)
        )?;
        Ok(StoredSecrets {
            sealed,
            origin_cluster_url,
        })
    }

    /// Runs the prepared action in the sandbox once a slot is free; answers the outcome with
    /// the mask that hides the run's secrets in it.
    async fn execute(
        &self,
        request: &RunRequest,
        prepared: Prepared,
        live: &LiveHandle,
    ) -> Result<(Outcome, SecretMask), RunError> {
        let slot = self
            .slots
            .take(&request.action.org)
            .await
            .map_err(|e| RunError::Preparation(e.into()))?;
        self.metrics.running.inc();
        let (input, shape, limits) = (request.input.clone(), request.shape, self.settings.limits);
        let Prepared {
            sandbox,
            folder,
            layer,
            env,
            egress,
            mask,
        } = prepared;
        let reader =
            StoreStateReader::new(self.meta.clone(), &request.action.org, &request.action.id);
        let state = StateAccess {
            reader: Arc::new(reader),
            quotas: self.settings.state_quotas,
        };
        let log_sink = live.sink(mask.clone());
        let started = Instant::now();
        let outcome = tokio::task::spawn_blocking(move || {
            let call = Call {
                action_dir: Path::new(&folder),
                input,
                env: &env,
                limits,
                shape,
                dependency_layer: layer.as_deref(),
                egress: Some(&egress),
                cpu_slot: Some(slot.cpu.clone()),
                state: Some(state),
                log_sink: Some(log_sink),
            };
            let outcome = sandbox.run(&call);
            drop(slot);
            outcome
        })
        .await;
        self.metrics.running.dec();
        self.metrics
            .run_duration
            .observe(started.elapsed().as_secs_f64());
        match outcome {
            Ok(Ok(outcome)) => Ok((outcome, mask)),
            Ok(Err(error @ SandboxError::InputTooLarge { .. })) => {
                Err(RunError::InputTooLarge(error.to_string()))
            }
            Ok(Err(error)) => Err(RunError::Unrunnable(error.to_string())),
            Err(join) => Err(RunError::Preparation(join.into())),
        }
    }

    /// Where the action's runs may send requests: its allowed hosts and its cluster's origin
    /// (`origin_cluster_url`), under the operator's settings.
    fn egress_of(
        &self,
        action: &Action,
        origin_cluster_url: Option<&str>,
    ) -> Result<Egress, RunError> {
        Egress::for_action(
            &action.allowed_hosts,
            Author::Action,
            origin_cluster_url,
            self.settings.egress.clone(),
            self.settings.egress_client.clone(),
        )
        .map_err(|e| {
            RunError::Unrunnable(format!(
                "the action's allowed hosts are no longer valid ({e}); correct them with PUT /api/{}/actions/{}",
                action.org, action.id
            ))
        })
    }

    async fn record_outcome(
        &self,
        request: &RunRequest,
        info: &LiveRunInfo,
        outcome: Outcome,
        mask: &SecretMask,
    ) -> Result<RunReport, RunError> {
        let mut run = base_run(request, info, outcome.kind.into());
        run.duration_ms = outcome.duration.as_secs_f64() * 1000.0;
        run.fuel_used = i64::try_from(outcome.fuel_used).unwrap_or(i64::MAX);
        run.peak_memory_bytes = i64::try_from(outcome.peak_memory_bytes).unwrap_or(i64::MAX);
        run.scratch_bytes = i64::try_from(outcome.scratch.bytes).unwrap_or(i64::MAX);
        run.scratch_files = i64::try_from(outcome.scratch.files).unwrap_or(i64::MAX);
        run.logs = outcome.logs.clone();
        run.logs_truncated = outcome.logs_truncated;
        run.output_count = outcome
            .result
            .as_ref()
            .and_then(Value::as_array)
            .map(|a| a.len() as i64);
        if let Some(error) = &outcome.error {
            run.error_type = Some(error.type_name.clone());
            run.error_message = Some(error.message.clone());
            run.traceback = error.traceback.clone();
        }
        mask.mask_run(&mut run);
        let status = match (outcome.kind, request.action.execution) {
            (OutcomeKind::Ok, ExecutionKind::Once) => ActionStatus::Completed,
            (OutcomeKind::Ok, _) => ActionStatus::Ready,
            _ => ActionStatus::Errored,
        };
        let writes = match outcome.kind {
            OutcomeKind::Ok => outcome.state_writes.as_slice(),
            _ => &[],
        };
        let committed = self.record_with_state(&mut run, status, writes).await?;
        self.count(&run);
        self.metrics.fuel.inc_by(outcome.fuel_used);
        self.metrics.count_egress(&outcome.egress);
        Ok(RunReport {
            run,
            result: committed.then_some(outcome.result).flatten(),
        })
    }

    /// Records `run` with its state `writes`, in one transaction. When the store refuses the
    /// writes (a compare-and-set conflict, a quota passed at commit), nothing of them is
    /// applied and the run is recorded as failed with outcome `state_conflict`; answers
    /// whether the writes were committed.
    async fn record_with_state(
        &self,
        run: &mut Run,
        status: ActionStatus,
        writes: &[StateWrite],
    ) -> Result<bool, RunError> {
        if writes.is_empty() {
            self.record(run, status).await?;
            return Ok(true);
        }
        let quotas = &self.settings.state_quotas;
        let now = now_micros();
        match self
            .meta
            .record_run_with_state(run, status, writes, quotas, now)
            .await?
        {
            Ok(changed) => {
                run.state_changes = changed;
                Ok(true)
            }
            Err(refusal) => {
                run.outcome = RunOutcome::Uncommitted(CommitFailure::StateConflict);
                run.error_type = Some("StateConflict".into());
                run.error_message = Some(format!(
                    "the run's state writes were not committed, so the run changed nothing: {refusal}"
                ));
                run.output_count = None;
                self.record(run, ActionStatus::Errored).await?;
                Ok(false)
            }
        }
    }

    /// Records `run` and moves its action to `status`, committed with whatever other runs'
    /// writes are queued; answers once the record is durable.
    async fn record(&self, run: &Run, status: ActionStatus) -> Result<(), StoreError> {
        let run = Box::new(run.clone());
        self.journal
            .commit(RunWrite::Finished { run, status })
            .await
    }

    fn count(&self, run: &Run) {
        let labels = RunLabels {
            outcome: run.outcome.to_string(),
            trigger: run.trigger.to_string(),
        };
        self.metrics.runs.get_or_create(&labels).inc();
    }
}

/// A run's secrets and origin cluster URL as stored, read before its permission is known and
/// opened only after.
struct StoredSecrets {
    sealed: Vec<SecretRecord>,
    /// The organization's own, if it set one.
    origin_cluster_url: Option<String>,
}

/// What [`Executor::prepare`] readies for a run.
struct Prepared {
    /// The sandbox of the action's profile.
    sandbox: Sandbox,
    folder: PathBuf,
    layer: Option<PathBuf>,
    env: ActionEnv,
    egress: Egress,
    mask: SecretMask,
}

/// A run's place in the queue and in its organization's share, given back on drop.
struct Admission<'a> {
    executor: &'a Executor,
    org: String,
}

impl Drop for Admission<'_> {
    fn drop(&mut self) {
        self.executor.admitted.fetch_sub(1, Ordering::SeqCst);
        let mut per_org = self
            .executor
            .per_org
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if let Some(count) = per_org.get_mut(&self.org) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                per_org.remove(&self.org);
            }
        }
    }
}

/// The environment the guest sees: the action's variables, overridden by the run's secrets
/// and origin cluster URL.
fn run_env(action: &Action, run_secrets: &RunSecrets) -> Result<ActionEnv, RunError> {
    let vars = action
        .environment_variables
        .iter()
        .chain(&run_secrets.env)
        .map(|(key, value)| (key.clone(), value.clone()));
    ActionEnv::new(vars).map_err(|e| RunError::Unrunnable(e.to_string()))
}

fn base_run(request: &RunRequest, info: &LiveRunInfo, outcome: RunOutcome) -> Run {
    let input_count = match &request.input {
        Input::Data(Value::Array(items)) => items.len() as i64,
        Input::Data(_) => 1,
        Input::Scheduled => 0,
    };
    Run {
        id: info.id.clone(),
        org: request.action.org.clone(),
        action_id: request.action.id.clone(),
        trigger: request.trigger,
        trace_id: request.trace_id.clone(),
        started_at: info.started_at,
        duration_ms: 0.0,
        fuel_used: 0,
        peak_memory_bytes: 0,
        outcome,
        error_type: None,
        error_message: None,
        traceback: Vec::new(),
        logs: Vec::new(),
        logs_truncated: false,
        input_count,
        output_count: None,
        state_changes: Vec::new(),
        scratch_bytes: 0,
        scratch_files: 0,
    }
}
