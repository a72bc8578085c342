//! The parameters of the routes' paths, each described once: handlers extract the ones they
//! need by name (`Path<OrgPath>`, `Path<ActionIdPath>`, ...) and their documentation lists the
//! same types.

use serde::Deserialize;
use utoipa::IntoParams;

/// `{org}`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct OrgPath {
    /// The organization.
    pub org: String,
}

/// `{id}`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct ActionIdPath {
    /// The action's id.
    pub id: String,
}

/// `{run_id}`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct RunIdPath {
    /// The run's id.
    pub run_id: String,
}

/// `{name}` of a secret.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct SecretNamePath {
    /// The secret's name, the environment variable it becomes (`^[A-Z][A-Z0-9_]*$`).
    pub name: String,
}

/// `{email}` of a service account.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct AccountEmailPath {
    /// The email of the service account.
    pub email: String,
}

/// `{email}` of a member.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct MemberEmailPath {
    /// The email of the member.
    pub email: String,
}

/// `{role}`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct RoleNamePath {
    /// The role's name.
    pub role: String,
}

/// `{key}` of an action's state.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct StateKeyPath {
    /// The state key (percent-encoded in the path when it holds `/`).
    pub key: String,
}
