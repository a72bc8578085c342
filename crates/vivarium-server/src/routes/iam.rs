//! Identity and access: organizations, users, service accounts (tokens shown once, stored
//! hashed), roles and their grants.

use axum::extract::{Path, Query, State};
use axum::{Extension, Json};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use vivarium_auth::{generate_token, hash_password, hash_token};
use vivarium_store::{Membership, Org, OrgRole, Role, RoleChange, ServiceAccount, User};

use super::Shared;
use super::answers::{DataList, StatusMessage};
use super::extract::ApiJson;
use super::paths::{AccountEmailPath, MemberEmailPath, OrgPath, RoleNamePath};
use crate::clock::now_micros;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::identity::{Caller, require_admin};
use crate::secrets::check_origin_cluster_url;
use crate::validate;

/// A new organization.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewOrg {
    name: String,
}

/// `GET /api/organizations` (root only).
#[utoipa::path(
    get,
    path = "/api/organizations",
    tag = "iam",
    operation_id = "list_organizations",
    summary = "List organizations (root only)",
    responses(
        (status = 200, description = "Every organization, by name", body = Vec<Org>),
        (status = 403, description = "The caller is not the root user", body = ErrorBody),
    ),
)]
pub async fn list_orgs(State(state): State<Shared>) -> ApiResult<Json<Vec<Org>>> {
    Ok(Json(state.meta.list_orgs().await?))
}

/// `POST /api/organizations` (root only): creates an organization.
#[utoipa::path(
    post,
    path = "/api/organizations",
    tag = "iam",
    operation_id = "create_organization",
    summary = "Create an organization (root only)",
    request_body = NewOrg,
    responses(
        (status = 200, description = "The new organization", body = Org),
        (status = 400, description = "Malformed JSON, or an invalid or reserved name", body = ErrorBody),
        (status = 403, description = "The caller is not the root user", body = ErrorBody),
        (status = 409, description = "The organization exists", body = ErrorBody),
        (status = 422, description = "The JSON has unknown fields or wrong types", body = ErrorBody),
    ),
)]
pub async fn create_org(
    State(state): State<Shared>,
    ApiJson(body): ApiJson<NewOrg>,
) -> ApiResult<Json<Org>> {
    validate::identifier("organization", &body.name)?;
    if body.name == "organizations" {
        return Err(ApiError::bad_request(
            "\"organizations\" is reserved; choose another name",
        ));
    }
    if state.meta.org_exists(&body.name).await? {
        return Err(ApiError::conflict(format!(
            "organization {} already exists",
            body.name
        )));
    }
    let org = state.meta.ensure_org(&body.name).await?;
    Ok(Json(org))
}

/// The settings of an organization that the root user may change.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OrgSettings {
    /// The URL of the cluster the organization's actions belong to, given to their runs as
    /// `ORIGIN_CLUSTER_URL` instead of the service's `origin_cluster_url`; null (or absent) to
    /// use the service's.
    #[serde(default)]
    #[schema(example = "https://o2.example.com")]
    origin_cluster_url: Option<String>,
}

/// `PUT /api/organizations/{org}` (root only): replaces an organization's settings.
#[utoipa::path(
    put,
    path = "/api/organizations/{org}",
    tag = "iam",
    operation_id = "update_organization",
    summary = "Change an organization's settings (root only)",
    params(
        OrgPath,
    ),
    request_body = OrgSettings,
    responses(
        (status = 200, description = "The organization as it now is", body = Org),
        (status = 400, description = "origin_cluster_url is not an http or https URL with a host, or holds credentials", body = ErrorBody),
        (status = 403, description = "The caller is not the root user", body = ErrorBody),
        (status = 404, description = "No such organization", body = ErrorBody),
        (status = 422, description = "The JSON has unknown fields or wrong types", body = ErrorBody),
    ),
)]
pub async fn update_org(
    State(state): State<Shared>,
    Path(OrgPath { org }): Path<OrgPath>,
    ApiJson(body): ApiJson<OrgSettings>,
) -> ApiResult<Json<Org>> {
    let url = body
        .origin_cluster_url
        .as_deref()
        .map(check_origin_cluster_url)
        .transpose()
        .map_err(ApiError::bad_request)?;
    state
        .meta
        .set_origin_cluster_url(&org, url.as_deref())
        .await?;
    let updated = state
        .meta
        .list_orgs()
        .await?
        .into_iter()
        .find(|found| found.name == org)
        .ok_or_else(|| ApiError::not_found(format!("organization {org}")))?;
    tracing::info!(%org, origin_cluster_url = ?updated.origin_cluster_url, "organization settings changed");
    Ok(Json(updated))
}

/// A new user of an organization.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewUser {
    email: String,
    password: String,
    #[serde(default = "member")]
    #[schema(value_type = OrgRole, default = "member")]
    role: OrgRole,
}

fn member() -> OrgRole {
    OrgRole::Member
}

/// Shortest password accepted for a user.
const MIN_PASSWORD_CHARS: usize = 12;

/// `POST /api/{org}/users` (administrators): creates a user, or adds an existing one.
#[utoipa::path(
    post,
    path = "/api/{org}/users",
    tag = "iam",
    operation_id = "create_user",
    summary = "Create a user, or add an existing one",
    params(
        OrgPath,
    ),
    request_body = NewUser,
    responses(
        (status = 200, description = "The member and their standing", body = Membership),
        (status = 400, description = "Malformed JSON, an invalid email, or a password under 12 characters for a new user", body = ErrorBody),
        (status = 403, description = "The caller does not administer the organization", body = ErrorBody),
        (status = 404, description = "No such organization", body = ErrorBody),
        (status = 422, description = "The JSON has unknown fields or wrong types", body = ErrorBody),
    ),
)]
pub async fn create_user(
    State(state): State<Shared>,
    Path(OrgPath { org }): Path<OrgPath>,
    Extension(caller): Extension<Caller>,
    ApiJson(body): ApiJson<NewUser>,
) -> ApiResult<Json<Membership>> {
    require_admin(&caller)?;
    let email = validate::email(&body.email)?;
    if state.meta.find_user(&email).await?.is_none() {
        if body.password.chars().count() < MIN_PASSWORD_CHARS {
            return Err(ApiError::bad_request(format!(
                "the password must be at least {MIN_PASSWORD_CHARS} characters"
            )));
        }
        let password = body.password.clone();
        let password_hash = tokio::task::spawn_blocking(move || hash_password(&password))
            .await
            .map_err(ApiError::internal)?
            .map_err(ApiError::internal)?;
        let user = User {
            email: email.clone(),
            password_hash,
            is_root: false,
            created_at: now_micros(),
        };
        state.meta.create_user(&user).await?;
    }
    state.meta.set_membership(&org, &email, body.role).await?;
    Ok(Json(Membership {
        email,
        role: body.role,
    }))
}

/// `GET /api/{org}/users` (administrators).
#[utoipa::path(
    get,
    path = "/api/{org}/users",
    tag = "iam",
    operation_id = "list_users",
    summary = "List the organization's members",
    params(
        OrgPath,
    ),
    responses(
        (status = 200, description = "The members and their standing", body = Vec<Membership>),
        (status = 403, description = "The caller does not administer the organization", body = ErrorBody),
        (status = 404, description = "No such organization", body = ErrorBody),
    ),
)]
pub async fn list_users(
    State(state): State<Shared>,
    Path(OrgPath { org }): Path<OrgPath>,
    Extension(caller): Extension<Caller>,
) -> ApiResult<Json<Vec<Membership>>> {
    require_admin(&caller)?;
    Ok(Json(state.meta.list_members(&org).await?))
}

/// `DELETE /api/{org}/users/{email}` (administrators): ends the membership.
#[utoipa::path(
    delete,
    path = "/api/{org}/users/{email}",
    tag = "iam",
    operation_id = "delete_user",
    summary = "Remove a member",
    params(
        OrgPath,
        MemberEmailPath,
    ),
    responses(
        (status = 200, description = "The membership and the user's role assignments in the organization ended", body = StatusMessage),
        (status = 403, description = "The caller does not administer the organization", body = ErrorBody),
        (status = 404, description = "No such organization or member", body = ErrorBody),
    ),
)]
pub async fn delete_user(
    State(state): State<Shared>,
    Path(OrgPath { org }): Path<OrgPath>,
    Path(MemberEmailPath { email }): Path<MemberEmailPath>,
    Extension(caller): Extension<Caller>,
) -> ApiResult<Json<StatusMessage>> {
    require_admin(&caller)?;
    state.meta.remove_member(&org, &email).await?;
    Ok(Json(StatusMessage::done(
        "User removed from the organization",
    )))
}

/// A new service account.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewServiceAccount {
    email: String,
    #[serde(default)]
    first_name: String,
    #[serde(default)]
    last_name: String,
}

/// `POST /api/{org}/service_accounts` (administrators): answers with the token, shown once.
#[utoipa::path(
    post,
    path = "/api/{org}/service_accounts",
    tag = "iam",
    operation_id = "create_service_account",
    summary = "Create a service account",
    params(
        OrgPath,
    ),
    request_body = NewServiceAccount,
    responses(
        (status = 200, description = "The service account with its token, shown this once", body = NewServiceAccountAnswer),
        (status = 400, description = "Malformed JSON, or an invalid email", body = ErrorBody),
        (status = 403, description = "The caller does not administer the organization", body = ErrorBody),
        (status = 404, description = "No such organization", body = ErrorBody),
        (status = 409, description = "A service account with this email exists in the organization", body = ErrorBody),
        (status = 422, description = "The JSON has unknown fields or wrong types", body = ErrorBody),
    ),
)]
pub async fn create_service_account(
    State(state): State<Shared>,
    Path(OrgPath { org }): Path<OrgPath>,
    Extension(caller): Extension<Caller>,
    ApiJson(body): ApiJson<NewServiceAccount>,
) -> ApiResult<Json<NewServiceAccountAnswer>> {
    require_admin(&caller)?;
    let email = validate::email(&body.email)?;
    let token = generate_token();
    let account = ServiceAccount {
        org: org.clone(),
        email,
        first_name: body.first_name,
        last_name: body.last_name,
        token_hash: hash_token(&token).0,
        created_at: now_micros(),
    };
    state.meta.create_service_account(&account).await?;
    tracing::info!(%org, email = %account.email, "service account created");
    Ok(Json(NewServiceAccountAnswer {
        account: ServiceAccountInfo::of(&account),
        token,
    }))
}

/// `GET /api/{org}/service_accounts` (administrators). Tokens are never shown again.
#[utoipa::path(
    get,
    path = "/api/{org}/service_accounts",
    tag = "iam",
    operation_id = "list_service_accounts",
    summary = "List service accounts",
    params(
        OrgPath,
    ),
    responses(
        (status = 200, description = "The organization's service accounts in OpenObserve's `{\"data\": [...]}` envelope (tokens are never shown again)", body = DataList<ServiceAccountInfo>),
        (status = 403, description = "The caller does not administer the organization", body = ErrorBody),
        (status = 404, description = "No such organization", body = ErrorBody),
    ),
)]
pub async fn list_service_accounts(
    State(state): State<Shared>,
    Path(OrgPath { org }): Path<OrgPath>,
    Extension(caller): Extension<Caller>,
) -> ApiResult<Json<DataList<ServiceAccountInfo>>> {
    require_admin(&caller)?;
    let accounts = state.meta.list_service_accounts(&org).await?;
    Ok(Json(DataList {
        data: accounts.iter().map(ServiceAccountInfo::of).collect(),
    }))
}

/// `GET /api/{org}/service_accounts/{email}` (administrators).
#[utoipa::path(
    get,
    path = "/api/{org}/service_accounts/{email}",
    tag = "iam",
    operation_id = "get_service_account",
    summary = "Read a service account",
    params(
        OrgPath,
        AccountEmailPath,
    ),
    responses(
        (status = 200, description = "The service account", body = ServiceAccountInfo),
        (status = 403, description = "The caller does not administer the organization", body = ErrorBody),
        (status = 404, description = "No such organization or service account", body = ErrorBody),
    ),
)]
pub async fn get_service_account(
    State(state): State<Shared>,
    Path(OrgPath { org }): Path<OrgPath>,
    Path(AccountEmailPath { email }): Path<AccountEmailPath>,
    Extension(caller): Extension<Caller>,
) -> ApiResult<Json<ServiceAccountInfo>> {
    require_admin(&caller)?;
    let account = state
        .meta
        .get_service_account(&org, &email)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("service account {email}")))?;
    Ok(Json(ServiceAccountInfo::of(&account)))
}

/// Query of a token rotation.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct Rotate {
    #[serde(default, rename = "rotateToken")]
    rotate_token: bool,
}

/// `PUT /api/{org}/service_accounts/{email}?rotateToken=true` (administrators): a new token,
/// shown once; the old one stops working at once.
#[utoipa::path(
    put,
    path = "/api/{org}/service_accounts/{email}",
    tag = "iam",
    operation_id = "rotate_service_account_token",
    summary = "Issue a new token",
    params(
        OrgPath,
        AccountEmailPath,
        Rotate,
    ),
    responses(
        (status = 200, description = "The new token, shown this once; the old one stopped working", body = TokenRotation),
        (status = 400, description = "rotateToken=true is missing, or the query is invalid", body = ErrorBody),
        (status = 403, description = "The caller does not administer the organization", body = ErrorBody),
        (status = 404, description = "No such organization or service account", body = ErrorBody),
    ),
)]
pub async fn rotate_service_account(
    State(state): State<Shared>,
    Path(OrgPath { org }): Path<OrgPath>,
    Path(AccountEmailPath { email }): Path<AccountEmailPath>,
    query: Result<Query<Rotate>, axum::extract::rejection::QueryRejection>,
    Extension(caller): Extension<Caller>,
) -> ApiResult<Json<TokenRotation>> {
    let Query(query) =
        query.map_err(|e| ApiError::bad_request(format!("invalid query: {}", e.body_text())))?;
    require_admin(&caller)?;
    if !query.rotate_token {
        return Err(ApiError::bad_request(
            "nothing to change: pass ?rotateToken=true to issue a new token",
        ));
    }
    let token = generate_token();
    state
        .meta
        .set_service_account_token(&org, &email, &hash_token(&token).0)
        .await?;
    tracing::info!(%org, %email, "service account token rotated");
    Ok(Json(TokenRotation { email, token }))
}

/// `DELETE /api/{org}/service_accounts/{email}` (administrators).
#[utoipa::path(
    delete,
    path = "/api/{org}/service_accounts/{email}",
    tag = "iam",
    operation_id = "delete_service_account",
    summary = "Delete a service account",
    params(
        OrgPath,
        AccountEmailPath,
    ),
    responses(
        (status = 200, description = "The service account is deleted", body = StatusMessage),
        (status = 403, description = "The caller does not administer the organization", body = ErrorBody),
        (status = 404, description = "No such organization or service account", body = ErrorBody),
    ),
)]
pub async fn delete_service_account(
    State(state): State<Shared>,
    Path(OrgPath { org }): Path<OrgPath>,
    Path(AccountEmailPath { email }): Path<AccountEmailPath>,
    Extension(caller): Extension<Caller>,
) -> ApiResult<Json<StatusMessage>> {
    require_admin(&caller)?;
    state.meta.delete_service_account(&org, &email).await?;
    Ok(Json(StatusMessage::done("Service account deleted")))
}

/// A service account as shown: never its token.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = ServiceAccount)]
pub struct ServiceAccountInfo {
    /// Its email, unique within the organization.
    email: String,
    /// Display name part.
    first_name: String,
    /// Display name part.
    last_name: String,
    /// When it was created (µs since the epoch).
    created_at: i64,
}

impl ServiceAccountInfo {
    fn of(account: &ServiceAccount) -> Self {
        Self {
            email: account.email.clone(),
            first_name: account.first_name.clone(),
            last_name: account.last_name.clone(),
            created_at: account.created_at,
        }
    }
}

/// A new service account with its token, shown this once.
#[derive(Debug, Serialize, ToSchema)]
pub struct NewServiceAccountAnswer {
    /// The account.
    #[serde(flatten)]
    account: ServiceAccountInfo,
    /// The token (the Basic password of `email:token`); it is never shown again.
    token: String,
}

/// A rotated token, shown this once; the old token stopped working.
#[derive(Debug, Serialize, ToSchema)]
pub struct TokenRotation {
    /// The service account.
    email: String,
    /// Its new token.
    token: String,
}

/// A new role.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewRole {
    role: String,
}

/// `POST /api/{org}/roles` (administrators).
#[utoipa::path(
    post,
    path = "/api/{org}/roles",
    tag = "iam",
    operation_id = "create_role",
    summary = "Create a role",
    params(
        OrgPath,
    ),
    request_body = NewRole,
    responses(
        (status = 200, description = "The new role, without grants or principals", body = Role),
        (status = 400, description = "Malformed JSON, or an invalid name", body = ErrorBody),
        (status = 403, description = "The caller does not administer the organization", body = ErrorBody),
        (status = 404, description = "No such organization", body = ErrorBody),
        (status = 409, description = "The role exists", body = ErrorBody),
        (status = 422, description = "The JSON has unknown fields or wrong types", body = ErrorBody),
    ),
)]
pub async fn create_role(
    State(state): State<Shared>,
    Path(OrgPath { org }): Path<OrgPath>,
    Extension(caller): Extension<Caller>,
    ApiJson(body): ApiJson<NewRole>,
) -> ApiResult<Json<Role>> {
    require_admin(&caller)?;
    validate::identifier("role", &body.role)?;
    let role = state
        .meta
        .create_role(&org, &body.role, now_micros())
        .await?;
    Ok(Json(role))
}

/// `GET /api/{org}/roles` (administrators).
#[utoipa::path(
    get,
    path = "/api/{org}/roles",
    tag = "iam",
    operation_id = "list_roles",
    summary = "List roles",
    params(
        OrgPath,
    ),
    responses(
        (status = 200, description = "The organization's roles with their grants and principals", body = Vec<Role>),
        (status = 403, description = "The caller does not administer the organization", body = ErrorBody),
        (status = 404, description = "No such organization", body = ErrorBody),
    ),
)]
pub async fn list_roles(
    State(state): State<Shared>,
    Path(OrgPath { org }): Path<OrgPath>,
    Extension(caller): Extension<Caller>,
) -> ApiResult<Json<Vec<Role>>> {
    require_admin(&caller)?;
    Ok(Json(state.meta.list_roles(&org).await?))
}

/// `GET /api/{org}/roles/{role}` (administrators).
#[utoipa::path(
    get,
    path = "/api/{org}/roles/{role}",
    tag = "iam",
    operation_id = "get_role",
    summary = "Read a role",
    params(
        OrgPath,
        RoleNamePath,
    ),
    responses(
        (status = 200, description = "The role with its grants and principals", body = Role),
        (status = 403, description = "The caller does not administer the organization", body = ErrorBody),
        (status = 404, description = "No such organization or role", body = ErrorBody),
    ),
)]
pub async fn get_role(
    State(state): State<Shared>,
    Path(OrgPath { org }): Path<OrgPath>,
    Path(RoleNamePath { role }): Path<RoleNamePath>,
    Extension(caller): Extension<Caller>,
) -> ApiResult<Json<Role>> {
    require_admin(&caller)?;
    let found = state
        .meta
        .get_role(&org, &role)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("role {role}")))?;
    Ok(Json(found))
}

/// `PUT /api/{org}/roles/{role}` (administrators): grants and revokes permissions, assigns
/// and unassigns users and service accounts, all at once. Grants come in Vivarium's form
/// (`{"resource", "object", "verb"}`) or OpenObserve's role editor's (`{"object":
/// "action_scripts:_all_<org>", "permission": "AllowAll"}`), and read back as they came.
#[utoipa::path(
    put,
    path = "/api/{org}/roles/{role}",
    tag = "iam",
    operation_id = "update_role",
    summary = "Change a role's grants and holders",
    params(
        OrgPath,
        RoleNamePath,
    ),
    request_body = RoleChange,
    responses(
        (status = 200, description = "The role as it now is", body = Role),
        (status = 400, description = "Malformed JSON; a meaningless grant (LIST on one object, a bad object id, an OpenObserve object of another organization or of an unknown kind); or an email that is neither a member nor a service account of the organization", body = ErrorBody),
        (status = 403, description = "The caller does not administer the organization", body = ErrorBody),
        (status = 404, description = "No such organization or role", body = ErrorBody),
        (status = 422, description = "The JSON names an unknown resource or verb, or has wrong types", body = ErrorBody),
    ),
)]
pub async fn update_role(
    State(state): State<Shared>,
    Path(OrgPath { org }): Path<OrgPath>,
    Path(RoleNamePath { role }): Path<RoleNamePath>,
    Extension(caller): Extension<Caller>,
    ApiJson(mut change): ApiJson<RoleChange>,
) -> ApiResult<Json<Role>> {
    require_admin(&caller)?;
    for emails in [&mut change.add_users, &mut change.remove_users] {
        emails
            .iter_mut()
            .for_each(|email| *email = email.trim().to_lowercase());
    }
    for form in change.add.iter().chain(&change.remove) {
        form.grants(&org)
            .map_err(|e| ApiError::bad_request(e.to_string()))?;
    }
    for email in &change.add_users {
        ensure_principal(&state, &org, email).await?;
    }
    let updated = state.meta.update_role(&org, &role, &change).await?;
    Ok(Json(updated))
}

async fn ensure_principal(state: &Shared, org: &str, email: &str) -> ApiResult<()> {
    let is_account = state.meta.get_service_account(org, email).await?.is_some();
    let is_member = state.meta.membership(org, email).await?.is_some();
    if is_account || is_member {
        return Ok(());
    }
    Err(ApiError::bad_request(format!(
        "{email} is neither a service account nor a user of organization {org}"
    )))
}

/// `DELETE /api/{org}/roles/{role}` (administrators).
#[utoipa::path(
    delete,
    path = "/api/{org}/roles/{role}",
    tag = "iam",
    operation_id = "delete_role",
    summary = "Delete a role",
    params(
        OrgPath,
        RoleNamePath,
    ),
    responses(
        (status = 200, description = "The role is deleted", body = StatusMessage),
        (status = 403, description = "The caller does not administer the organization", body = ErrorBody),
        (status = 404, description = "No such organization or role", body = ErrorBody),
    ),
)]
pub async fn delete_role(
    State(state): State<Shared>,
    Path(OrgPath { org }): Path<OrgPath>,
    Path(RoleNamePath { role }): Path<RoleNamePath>,
    Extension(caller): Extension<Caller>,
) -> ApiResult<Json<StatusMessage>> {
    require_admin(&caller)?;
    state.meta.delete_role(&org, &role).await?;
    Ok(Json(StatusMessage::done("Role deleted")))
}
