//! The actions service: a multi-tenant HTTP API (OpenObserve-compatible action routes),
//! identities and roles, triggers, the scheduler, run history, metrics and health.
//!
//! Data flows one way: a trigger arrives at a route, the caller is authenticated and
//! authorized, the [`executor::Executor`] checks the action's service account, prepares the
//! package and its dependencies, runs the sandbox and records the outcome. Uploads go through
//! the [`catalog::Catalog`]. Both know nothing of HTTP: the routes parse, call them, and map
//! their typed errors to statuses in one place (`error`).

mod action_state;
pub mod blob_gate;
pub mod blob_sweep;
pub mod catalog;
pub mod clock;
pub mod config;
mod console;
mod error;
pub mod executor;
mod identity;
pub mod live;
pub mod mask;
mod metrics;
mod openapi;
pub mod profiles;
mod replicas;
mod routes;
mod running_mark;
pub mod scheduler;
pub mod secrets;
mod sessions;
mod shared_wheels;
mod slots;
mod startup;
pub mod throttle;
mod validate;

use std::sync::Arc;

use vivarium_auth::Keyring;
use vivarium_store::{BlobStore, MetadataStore};

pub use config::ServerConfig;
pub use error::ApiError;
pub use startup::{App, RunningServer, build, start};

/// What every handler shares.
pub struct AppState {
    /// Metadata: organizations, identities, roles, actions, runs.
    pub meta: Arc<dyn MetadataStore>,
    /// Action ZIPs.
    pub blobs: Arc<dyn BlobStore>,
    /// Creates, changes and deletes actions.
    pub catalog: catalog::Catalog,
    /// Runs actions.
    pub executor: Arc<executor::Executor>,
    /// Checks credentials.
    pub authenticator: identity::Authenticator,
    /// Seals the secrets the routes store (runs open them through the executor's).
    pub keyring: Arc<Keyring>,
    /// Prometheus metrics.
    pub metrics: Arc<metrics::Metrics>,
    /// The configuration in force.
    pub config: ServerConfig,
}
