//! Identity and access: organizations, users, service accounts (tokens shown once, stored
//! hashed), roles and their grants.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use serde::Deserialize;
use serde_json::{Value, json};
use vivarium_auth::{generate_token, hash_password, hash_token};
use vivarium_store::{OrgRole, RoleChange, ServiceAccount, User};

use super::Shared;
use crate::error::{ApiError, ApiResult};
use crate::executor::now_micros;
use crate::extract::ApiJson;
use crate::identity::require_admin;
use crate::validate;

/// A new organization.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewOrg {
    name: String,
}

/// `GET /api/organizations` (root only).
pub async fn list_orgs(State(state): State<Shared>, headers: HeaderMap) -> ApiResult<Json<Value>> {
    state
        .authenticator
        .authenticate_root(state.meta.as_ref(), &headers)
        .await?;
    let orgs = state.meta.list_orgs().await?;
    Ok(Json(json!(orgs)))
}

/// `POST /api/organizations` (root only): creates an organization.
pub async fn create_org(
    State(state): State<Shared>,
    headers: HeaderMap,
    ApiJson(body): ApiJson<NewOrg>,
) -> ApiResult<Json<Value>> {
    state
        .authenticator
        .authenticate_root(state.meta.as_ref(), &headers)
        .await?;
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
    Ok(Json(json!(org)))
}

/// A new user of an organization.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewUser {
    email: String,
    password: String,
    #[serde(default = "member")]
    role: OrgRole,
}

fn member() -> OrgRole {
    OrgRole::Member
}

/// Shortest password accepted for a user.
const MIN_PASSWORD_CHARS: usize = 12;

/// `POST /api/{org}/users` (administrators): creates a user, or adds an existing one.
pub async fn create_user(
    State(state): State<Shared>,
    Path(org): Path<String>,
    headers: HeaderMap,
    ApiJson(body): ApiJson<NewUser>,
) -> ApiResult<Json<Value>> {
    require_admin(&state.caller(&headers, &org).await?)?;
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
    state
        .meta
        .set_membership(&org, &email, body.role)
        .await?;
    Ok(Json(json!({ "email": email, "role": body.role })))
}

/// `GET /api/{org}/users` (administrators).
pub async fn list_users(
    State(state): State<Shared>,
    Path(org): Path<String>,
    headers: HeaderMap,
) -> ApiResult<Json<Value>> {
    require_admin(&state.caller(&headers, &org).await?)?;
    Ok(Json(json!(state.meta.list_members(&org).await?)))
}

/// `DELETE /api/{org}/users/{email}` (administrators): ends the membership.
pub async fn delete_user(
    State(state): State<Shared>,
    Path((org, email)): Path<(String, String)>,
    headers: HeaderMap,
) -> ApiResult<Json<Value>> {
    require_admin(&state.caller(&headers, &org).await?)?;
    state.meta.remove_member(&org, &email).await?;
    Ok(Json(
        json!({ "code": 200, "message": "User removed from the organization" }),
    ))
}

/// A new service account.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewServiceAccount {
    email: String,
    #[serde(default)]
    first_name: String,
    #[serde(default)]
    last_name: String,
}

/// `POST /api/{org}/service_accounts` (administrators): answers with the token, shown once.
pub async fn create_service_account(
    State(state): State<Shared>,
    Path(org): Path<String>,
    headers: HeaderMap,
    ApiJson(body): ApiJson<NewServiceAccount>,
) -> ApiResult<Json<Value>> {
    require_admin(&state.caller(&headers, &org).await?)?;
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
    let mut answer = account_json(&account);
    answer["token"] = json!(token);
    Ok(Json(answer))
}

/// `GET /api/{org}/service_accounts` (administrators). Tokens are never shown again.
pub async fn list_service_accounts(
    State(state): State<Shared>,
    Path(org): Path<String>,
    headers: HeaderMap,
) -> ApiResult<Json<Value>> {
    require_admin(&state.caller(&headers, &org).await?)?;
    let accounts = state.meta.list_service_accounts(&org).await?;
    Ok(Json(Value::Array(
        accounts.iter().map(account_json).collect(),
    )))
}

/// `GET /api/{org}/service_accounts/{email}` (administrators).
pub async fn get_service_account(
    State(state): State<Shared>,
    Path((org, email)): Path<(String, String)>,
    headers: HeaderMap,
) -> ApiResult<Json<Value>> {
    require_admin(&state.caller(&headers, &org).await?)?;
    let account = state
        .meta
        .get_service_account(&org, &email)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("service account {email}")))?;
    Ok(Json(account_json(&account)))
}

/// Query of a token rotation.
#[derive(Debug, Deserialize)]
pub struct Rotate {
    #[serde(default, rename = "rotateToken")]
    rotate_token: bool,
}

/// `PUT /api/{org}/service_accounts/{email}?rotateToken=true` (administrators): a new token,
/// shown once; the old one stops working at once.
pub async fn rotate_service_account(
    State(state): State<Shared>,
    Path((org, email)): Path<(String, String)>,
    Query(query): Query<Rotate>,
    headers: HeaderMap,
) -> ApiResult<Json<Value>> {
    require_admin(&state.caller(&headers, &org).await?)?;
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
    Ok(Json(json!({ "email": email, "token": token })))
}

/// `DELETE /api/{org}/service_accounts/{email}` (administrators).
pub async fn delete_service_account(
    State(state): State<Shared>,
    Path((org, email)): Path<(String, String)>,
    headers: HeaderMap,
) -> ApiResult<Json<Value>> {
    require_admin(&state.caller(&headers, &org).await?)?;
    state.meta.delete_service_account(&org, &email).await?;
    Ok(Json(
        json!({ "code": 200, "message": "Service account deleted" }),
    ))
}

fn account_json(account: &ServiceAccount) -> Value {
    json!({
        "email": account.email,
        "first_name": account.first_name,
        "last_name": account.last_name,
        "created_at": account.created_at,
    })
}

/// A new role.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewRole {
    role: String,
}

/// `POST /api/{org}/roles` (administrators).
pub async fn create_role(
    State(state): State<Shared>,
    Path(org): Path<String>,
    headers: HeaderMap,
    ApiJson(body): ApiJson<NewRole>,
) -> ApiResult<Json<Value>> {
    require_admin(&state.caller(&headers, &org).await?)?;
    validate::identifier("role", &body.role)?;
    let role = state
        .meta
        .create_role(&org, &body.role, now_micros())
        .await?;
    Ok(Json(json!(role)))
}

/// `GET /api/{org}/roles` (administrators).
pub async fn list_roles(
    State(state): State<Shared>,
    Path(org): Path<String>,
    headers: HeaderMap,
) -> ApiResult<Json<Value>> {
    require_admin(&state.caller(&headers, &org).await?)?;
    Ok(Json(json!(state.meta.list_roles(&org).await?)))
}

/// `GET /api/{org}/roles/{role}` (administrators).
pub async fn get_role(
    State(state): State<Shared>,
    Path((org, role)): Path<(String, String)>,
    headers: HeaderMap,
) -> ApiResult<Json<Value>> {
    require_admin(&state.caller(&headers, &org).await?)?;
    let found = state
        .meta
        .get_role(&org, &role)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("role {role}")))?;
    Ok(Json(json!(found)))
}

/// `PUT /api/{org}/roles/{role}` (administrators): grants and revokes permissions, assigns
/// and unassigns users and service accounts, all at once.
pub async fn update_role(
    State(state): State<Shared>,
    Path((org, role)): Path<(String, String)>,
    headers: HeaderMap,
    ApiJson(mut change): ApiJson<RoleChange>,
) -> ApiResult<Json<Value>> {
    require_admin(&state.caller(&headers, &org).await?)?;
    for emails in [&mut change.add_users, &mut change.remove_users] {
        emails.iter_mut().for_each(|email| *email = email.trim().to_lowercase());
    }
    for grant in change.add.iter() {
        grant
            .validate()
            .map_err(|e| ApiError::bad_request(e.to_string()))?;
    }
    for email in &change.add_users {
        ensure_principal(&state, &org, email).await?;
    }
    let updated = state.meta.update_role(&org, &role, &change).await?;
    Ok(Json(json!(updated)))
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
pub async fn delete_role(
    State(state): State<Shared>,
    Path((org, role)): Path<(String, String)>,
    headers: HeaderMap,
) -> ApiResult<Json<Value>> {
    require_admin(&state.caller(&headers, &org).await?)?;
    state.meta.delete_role(&org, &role).await?;
    Ok(Json(json!({ "code": 200, "message": "Role deleted" })))
}
