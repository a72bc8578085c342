//! The action catalog: creating, replacing, changing, pausing and deleting actions, with every
//! rule checked before anything is stored. An upload's ZIP is inspected, its pyproject.toml
//! dependencies resolved and installed (so that a bad set fails the upload, not the first
//! run), its wheels shared with the other replicas, and its bytes stored by digest; a failure
//! at any step leaves what was stored before untouched. Callers check permissions first; the
//! catalog knows nothing of HTTP.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;
use vivarium_deps::DepsConfig;
use vivarium_egress::Allowlist;
use vivarium_package::PackageLimits;
use vivarium_store::{
    Action, ActionStatus, BlobKey, BlobStore, ExecutionKind, MetadataStore, StoreError,
};

use crate::blob_gate::BlobGate;
use crate::clock::now_micros;
use crate::scheduler::{Schedule, next_run};
use crate::shared_wheels;
use crate::validate::{self, Checked, Invalid};

/// Why a catalog operation was refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    /// The request breaks a rule.
    #[error(transparent)]
    Invalid(#[from] Invalid),
    /// The action (named) does not exist in the organization.
    #[error("{0} not found")]
    NotFound(String),
    /// The metadata or blob store failed, or refused a duplicate.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Installing the dependencies or sharing their wheels failed on our side.
    #[error("{0:#}")]
    Internal(anyhow::Error),
}

/// What a catalog operation answers.
pub type CatalogResult<T> = Result<T, CatalogError>;

/// An uploaded ZIP as it arrived.
#[derive(Debug, Clone, Default)]
pub struct Upload {
    /// The bytes of the file part.
    pub bytes: Bytes,
    /// The file name the part carried, if any.
    pub part_name: Option<String>,
    /// The `filename` field, which wins over the part's name when not blank.
    pub filename: Option<String>,
}

/// A new action's settings, as text the way the upload form carries them.
#[derive(Debug, Clone, Default)]
pub struct NewAction {
    /// Its name.
    pub name: Option<String>,
    /// Who owns it; defaults to the uploader.
    pub owner: Option<String>,
    /// Free text.
    pub description: Option<String>,
    /// `service`, `once` or `repeat`.
    pub execution_details: Option<String>,
    /// Cron expression (UTC).
    pub cron_expr: Option<String>,
    /// A JSON object of strings.
    pub environment_variables: Option<String>,
    /// A JSON list of allowed-host entries.
    pub allowed_hosts: Option<String>,
    /// Email of the service account its runs use.
    pub service_account: Option<String>,
}

/// A change of an existing action's settings; `None` keeps a setting as it is.
#[derive(Debug, Clone, Default)]
pub struct SettingsChange {
    /// A new name.
    pub name: Option<String>,
    /// A new description.
    pub description: Option<String>,
    /// New environment variables, replacing the old ones.
    pub environment_variables: Option<BTreeMap<String, String>>,
    /// New allowed hosts, replacing the old ones.
    pub allowed_hosts: Option<Vec<String>>,
    /// A new cron expression.
    pub cron_expr: Option<String>,
    /// Another service account.
    pub service_account: Option<String>,
    /// The execution type, which must be the action's own (it cannot change).
    pub execution_details: Option<String>,
}

impl NewAction {
    /// The settings a replacing upload sends along, as a change: blank text fields keep the
    /// action's settings.
    pub fn as_change(&self) -> Checked<SettingsChange> {
        let non_blank =
            |field: &Option<String>| field.clone().filter(|text| !text.trim().is_empty());
        Ok(SettingsChange {
            name: non_blank(&self.name),
            description: self.description.clone(),
            environment_variables: self
                .environment_variables
                .as_deref()
                .map(validate::environment_json)
                .transpose()?,
            allowed_hosts: self
                .allowed_hosts
                .as_deref()
                .map(validate::allowed_hosts_json)
                .transpose()?,
            cron_expr: self.cron_expr.clone(),
            service_account: non_blank(&self.service_account),
            execution_details: non_blank(&self.execution_details),
        })
    }
}

/// Where the catalog keeps actions and how it prepares their dependencies.
pub struct Catalog {
    meta: Arc<dyn MetadataStore>,
    blobs: Arc<dyn BlobStore>,
    cache_dir: PathBuf,
    deps: DepsConfig,
    internal_hosts: Allowlist,
    gate: Arc<BlobGate>,
}

/// A validated ZIP ready to store.
struct Package {
    bytes: Bytes,
    digest: String,
    file_name: String,
}

impl Catalog {
    /// A catalog over the stores; dependency layers are installed under `cache_dir` with
    /// `deps`, allowed hosts may name the operator's `internal_hosts`, and blobs are stored
    /// and released in the order `gate` keeps with the blob sweep.
    pub fn new(
        meta: Arc<dyn MetadataStore>,
        blobs: Arc<dyn BlobStore>,
        cache_dir: PathBuf,
        deps: DepsConfig,
        internal_hosts: Allowlist,
        gate: Arc<BlobGate>,
    ) -> Self {
        Self {
            meta,
            blobs,
            cache_dir,
            deps,
            internal_hosts,
            gate,
        }
    }

    /// The action `id` of `org`.
    pub async fn find(&self, org: &str, id: &str) -> CatalogResult<Action> {
        self.meta
            .get_action(org, id)
            .await?
            .ok_or_else(|| CatalogError::NotFound(format!("action {id}")))
    }

    /// Creates an action from its settings and ZIP, uploaded by `uploader`.
    pub async fn create(
        &self,
        org: &str,
        uploader: &str,
        settings: NewAction,
        upload: Upload,
    ) -> CatalogResult<Action> {
        let name = settings.name.clone().unwrap_or_default();
        validate::action_name(&name)?;
        let execution = settings
            .execution_details
            .as_deref()
            .map(parse_execution)
            .transpose()?
            .ok_or_else(|| {
                Invalid::of(
                    "execution_details",
                    "Missing mandatory fields: execution_details",
                )
            })?;
        let cron_expr = check_schedule(execution, settings.cron_expr.as_deref())?;
        let environment_variables =
            validate::environment_json(settings.environment_variables.as_deref().unwrap_or(""))?;
        let allowed_hosts = validate::allowed_hosts(
            &validate::allowed_hosts_json(settings.allowed_hosts.as_deref().unwrap_or(""))?,
            &self.internal_hosts,
        )?;
        let service_account = settings
            .service_account
            .clone()
            .filter(|s| !s.trim().is_empty())
            .ok_or_else(|| {
                Invalid::of(
                    "service_account",
                    "Missing mandatory fields: service_account",
                )
            })?;
        let service_account = self.check_service_account(org, &service_account).await?;
        let package = validate_package(upload)?;
        let referencing = self.gate.referencing(org).await;
        let dependency_lock = self.resolve_dependencies(org, &package).await?;
        let now = now_micros();
        let action = Action {
            id: uuid::Uuid::now_v7().to_string(),
            org: org.to_string(),
            name,
            description: settings.description.clone().unwrap_or_default(),
            execution,
            next_run_at: next_run(execution, cron_expr.as_deref(), now),
            dependency_lock,
            cron_expr,
            environment_variables,
            allowed_hosts,
            zip_file_name: package.file_name.clone(),
            zip_digest: package.digest.clone(),
            zip_size: package.bytes.len() as i64,
            service_account,
            owner: settings
                .owner
                .filter(|owner| !owner.trim().is_empty())
                .unwrap_or_else(|| uploader.to_string()),
            created_by: uploader.to_string(),
            created_at: now,
            updated_at: now,
            last_run_at: None,
            last_successful_at: None,
            status: ActionStatus::Ready,
            paused: false,
        };
        self.store_zip(org, &package).await?;
        let inserted = self.meta.insert_action(&action).await;
        drop(referencing);
        if let Err(error) = inserted {
            self.release_zip(org, &package.digest).await;
            return Err(error.into());
        }
        tracing::info!(%org, id = %action.id, name = %action.name, "action created");
        Ok(action)
    }

    /// Replaces the ZIP of action `id` (and the settings sent along); an unknown id is the
    /// upload form's "Invalid ID".
    pub async fn replace(
        &self,
        org: &str,
        id: &str,
        change: SettingsChange,
        upload: Upload,
    ) -> CatalogResult<Action> {
        let Some(mut action) = self.meta.get_action(org, id).await? else {
            return Err(Invalid::new("Invalid ID").into());
        };
        self.apply(org, &mut action, change).await?;
        let package = validate_package(upload)?;
        let referencing = self.gate.referencing(org).await;
        action.dependency_lock = self.resolve_dependencies(org, &package).await?;
        let previous_digest = std::mem::replace(&mut action.zip_digest, package.digest.clone());
        action.zip_file_name = package.file_name.clone();
        action.zip_size = package.bytes.len() as i64;
        self.store_zip(org, &package).await?;
        let updated = self.meta.update_action(&action).await;
        drop(referencing);
        if let Err(error) = updated {
            self.release_zip(org, &package.digest).await;
            return Err(error.into());
        }
        self.release_zip(org, &previous_digest).await;
        tracing::info!(%org, %id, "action ZIP replaced");
        Ok(action)
    }

    /// Changes the settings of action `id`.
    pub async fn update(
        &self,
        org: &str,
        id: &str,
        change: SettingsChange,
    ) -> CatalogResult<Action> {
        let mut action = self.find(org, id).await?;
        self.apply(org, &mut action, change).await?;
        self.meta.update_action(&action).await?;
        Ok(action)
    }

    /// Pauses or resumes a scheduled action; a resumed one fires from the next time its
    /// schedule names.
    pub async fn set_paused(&self, org: &str, id: &str, paused: bool) -> CatalogResult<Action> {
        let mut action = self.find(org, id).await?;
        if action.execution == ExecutionKind::Service {
            return Err(Invalid::new(
                "only scheduled actions (once, repeat) can be paused or resumed",
            )
            .into());
        }
        action.paused = paused;
        if !paused && action.status != ActionStatus::Completed {
            action.next_run_at =
                next_run(action.execution, action.cron_expr.as_deref(), now_micros());
        }
        action.updated_at = now_micros();
        self.meta.update_action(&action).await?;
        Ok(action)
    }

    /// Deletes action `id` and, when no other action uses it, its ZIP.
    pub async fn delete(&self, org: &str, id: &str) -> CatalogResult<()> {
        let action = self.find(org, id).await?;
        self.meta.delete_action(org, id).await?;
        self.release_zip(org, &action.zip_digest).await;
        tracing::info!(%org, %id, "action deleted");
        Ok(())
    }

    /// The stored ZIP of `action`.
    pub async fn zip(&self, action: &Action) -> CatalogResult<Bytes> {
        Ok(self
            .blobs
            .get(&BlobKey::action_zip(&action.org, &action.zip_digest))
            .await?)
    }

    /// Applies a settings change after checking every rule; the execution type cannot change.
    async fn apply(
        &self,
        org: &str,
        action: &mut Action,
        change: SettingsChange,
    ) -> CatalogResult<()> {
        let requested = change.execution_details.as_deref().map(parse_execution);
        if requested
            .transpose()?
            .is_some_and(|kind| kind != action.execution)
        {
            return Err(Invalid::of(
                "execution_details",
                "Execution type of an action cannot be changed",
            )
            .into());
        }
        if let Some(name) = change.name {
            validate::action_name(&name)?;
            action.name = name;
        }
        if let Some(vars) = change.environment_variables {
            validate::environment(&vars)?;
            action.environment_variables = vars;
        }
        if let Some(entries) = change.allowed_hosts {
            action.allowed_hosts = validate::allowed_hosts(&entries, &self.internal_hosts)?;
        }
        if let Some(account) = change.service_account {
            action.service_account = self.check_service_account(org, &account).await?;
        }
        if let Some(description) = change.description {
            action.description = description;
        }
        if let Some(cron) = change.cron_expr {
            action.cron_expr = check_schedule(action.execution, Some(&cron))?;
            action.next_run_at =
                next_run(action.execution, action.cron_expr.as_deref(), now_micros());
        }
        action.updated_at = now_micros();
        Ok(())
    }

    /// Resolves and installs the dependencies the package's pyproject.toml declares (unless
    /// it brings a `dependencies/` folder) and shares their wheels. Returns the lock as JSON,
    /// `None` when there is nothing to install.
    async fn resolve_dependencies(
        &self,
        org: &str,
        package: &Package,
    ) -> CatalogResult<Option<String>> {
        let (bytes, cache, deps) = (
            package.bytes.clone(),
            self.cache_dir.clone(),
            self.deps.clone(),
        );
        let lock = tokio::task::spawn_blocking(move || -> CatalogResult<_> {
            let folder =
                vivarium_package::extract_zip(&bytes, &cache, &PackageLimits::default())
                    .map_err(|e| Invalid::of("file", format!("the action ZIP was refused: {e}")))?;
            let refused = |e: vivarium_deps::DepsError| {
                Invalid::of(
                    "file",
                    format!("the action's dependencies were refused: {e}"),
                )
            };
            let Some(lock) =
                vivarium_deps::lock_for_action(&folder.root, &cache, &deps).map_err(refused)?
            else {
                return Ok(None);
            };
            vivarium_deps::install(&lock, &cache, &deps).map_err(refused)?;
            Ok(Some(lock))
        })
        .await
        .map_err(|e| CatalogError::Internal(e.into()))??;
        let Some(lock) = lock else {
            return Ok(None);
        };
        shared_wheels::publish(&self.blobs, org, &lock, &self.cache_dir)
            .await
            .map_err(CatalogError::Internal)?;
        serde_json::to_string(&lock)
            .map(Some)
            .map_err(|e| CatalogError::Internal(e.into()))
    }

    /// The service account's stored (lower-cased) email, refused when the organization has
    /// none by that email.
    async fn check_service_account(&self, org: &str, email: &str) -> CatalogResult<String> {
        let email = email.trim().to_lowercase();
        if self.meta.get_service_account(org, &email).await?.is_some() {
            return Ok(email);
        }
        Err(Invalid::of(
            "service_account",
            format!(
                "service account {email} does not exist in organization {org}; create it first"
            ),
        )
        .into())
    }

    async fn store_zip(&self, org: &str, package: &Package) -> CatalogResult<()> {
        self.blobs
            .put(
                &BlobKey::action_zip(org, &package.digest),
                package.bytes.clone(),
            )
            .await?;
        Ok(())
    }

    /// Deletes a ZIP blob once no action of the organization uses it any more.
    async fn release_zip(&self, org: &str, digest: &str) {
        let _removing = self.gate.removing(org).await;
        match self.meta.count_zip_users(org, digest).await {
            Ok(0) => {
                if let Err(error) = self.blobs.delete(&BlobKey::action_zip(org, digest)).await {
                    tracing::warn!(%error, %digest, "could not delete an unused ZIP");
                }
            }
            Ok(_) => {}
            Err(error) => tracing::warn!(%error, %digest, "could not count the users of a ZIP"),
        }
    }
}

/// An execution type from its wire name.
fn parse_execution(text: &str) -> Checked<ExecutionKind> {
    text.trim()
        .parse()
        .map_err(|_| Invalid::of("execution_details", "Invalid execution details"))
}

/// The ZIP checked by the package rules, with the name to keep for it.
fn validate_package(upload: Upload) -> Checked<Package> {
    if upload.bytes.is_empty() {
        return Err(Invalid::of("file", "File is missing or empty"));
    }
    let manifest = vivarium_package::inspect_zip(&upload.bytes, &PackageLimits::default())
        .map_err(|e| Invalid::of("file", format!("the action ZIP was refused: {e}")))?;
    let file_name = upload
        .filename
        .filter(|f| !f.trim().is_empty())
        .or(upload.part_name)
        .unwrap_or_else(|| "action.zip".into());
    Ok(Package {
        bytes: upload.bytes,
        digest: manifest.digest,
        file_name,
    })
}

/// The cron expression a scheduled action keeps: `None` for a real-time action, and for a
/// `once` action saved without one (O2's "Once": it runs right after it is saved).
fn check_schedule(execution: ExecutionKind, cron_expr: Option<&str>) -> Checked<Option<String>> {
    let expression = cron_expr.unwrap_or_default().trim();
    match execution {
        ExecutionKind::Service => Ok(None),
        ExecutionKind::Once if expression.is_empty() => Ok(None),
        ExecutionKind::Once | ExecutionKind::Repeat => {
            Schedule::parse(expression).map_err(|e| Invalid::of("cron_expr", e))?;
            Ok(Some(expression.to_string()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_once_action_may_come_without_a_schedule_and_a_repeating_one_may_not() {
        assert_eq!(check_schedule(ExecutionKind::Once, None).unwrap(), None);
        assert_eq!(
            check_schedule(ExecutionKind::Once, Some("  ")).unwrap(),
            None
        );
        assert_eq!(
            check_schedule(ExecutionKind::Once, Some(" 0 3 * * * ")).unwrap(),
            Some("0 3 * * *".to_string())
        );
        let refused = check_schedule(ExecutionKind::Repeat, None).unwrap_err();
        assert!(refused.message.contains("required"), "{refused}");
        assert_eq!(
            check_schedule(ExecutionKind::Service, Some("* * * * *")).unwrap(),
            None
        );
    }

    #[test]
    fn execution_types_parse_from_their_wire_names() {
        assert_eq!(parse_execution(" once ").unwrap(), ExecutionKind::Once);
        assert_eq!(
            parse_execution("Cron Job").unwrap_err().message,
            "Invalid execution details"
        );
    }

    #[test]
    fn an_empty_file_is_refused_with_o2s_message() {
        let refused = validate_package(Upload::default()).err().map(|e| e.message);
        assert_eq!(refused.as_deref(), Some("File is missing or empty"));
    }
}
