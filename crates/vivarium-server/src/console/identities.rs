//! The identities page (administrators): service accounts, roles with their grants and
//! holders, and users. It shows no token: a new or rotated token is shown once, by the
//! script, from the API's answer.

use askama::Template;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Uri};
use vivarium_auth::{ResourceKind, Verb};
use vivarium_store::{Membership, Role};

use super::page::{Chrome, PageResult, Section, Viewer, render, when};
use crate::identity::require_admin;
use crate::routes::Shared;

/// A service account as the page lists it (never its token).
struct AccountRow {
    email: String,
    name: String,
    created_at: String,
}

/// One grant of a role: how it reads, and the JSON that removes it.
struct GrantRow {
    text: String,
    json: String,
}

/// A role as the page shows it.
struct RoleRow {
    name: String,
    grants: Vec<GrantRow>,
    holders: Vec<String>,
}

#[derive(Template)]
#[template(path = "identities.html")]
struct IdentitiesPage {
    chrome: Chrome,
    accounts: Vec<AccountRow>,
    roles: Vec<RoleRow>,
    users: Vec<Membership>,
    resources: Vec<String>,
    verbs: Vec<String>,
}

/// Every verb a grant may name, for the grant form.
const VERBS: [Verb; 5] = [Verb::Get, Verb::Post, Verb::Put, Verb::Delete, Verb::List];
/// Every kind of resource a grant may name.
const RESOURCES: [ResourceKind; 2] = [ResourceKind::ActionScripts, ResourceKind::Streams];

/// `GET /console/orgs/{org}/identities`.
pub(super) async fn page(
    State(state): State<Shared>,
    Path(org): Path<String>,
    headers: HeaderMap,
    uri: Uri,
) -> PageResult {
    let viewer = Viewer::of(&state, &headers, &uri, &org).await?;
    require_admin(&viewer.caller).map_err(|e| {
        viewer.refused(
            e,
            "manage the identities of this organization (administrators only)",
        )
    })?;
    let meta = state.meta.as_ref();
    let accounts = meta
        .list_service_accounts(&org)
        .await?
        .into_iter()
        .map(|account| AccountRow {
            name: format!("{} {}", account.first_name, account.last_name)
                .trim()
                .to_string(),
            created_at: when(account.created_at),
            email: account.email,
        })
        .collect();
    let roles = meta
        .list_roles(&org)
        .await?
        .into_iter()
        .map(role_row)
        .collect();
    let users = meta.list_members(&org).await?;
    Ok(render(&IdentitiesPage {
        chrome: viewer.chrome(Section::Identities),
        accounts,
        roles,
        users,
        resources: RESOURCES.iter().map(ToString::to_string).collect(),
        verbs: VERBS.iter().map(ToString::to_string).collect(),
    }))
}

fn role_row(role: Role) -> RoleRow {
    let grants = role
        .permissions
        .iter()
        .map(|grant| {
            let json = serde_json::to_string(grant).unwrap_or_default();
            GrantRow {
                text: grant_text(&json),
                json,
            }
        })
        .collect();
    RoleRow {
        name: role.name,
        grants,
        holders: role.principals,
    }
}

/// A grant as people read it: `GET on action_scripts/_all` (either form's JSON fields).
fn grant_text(json: &str) -> String {
    let value: serde_json::Value = serde_json::from_str(json).unwrap_or_default();
    let field = |name: &str| {
        value
            .get(name)
            .and_then(|v| v.as_str())
            .unwrap_or_default()
            .to_string()
    };
    if value.get("verb").is_some() {
        format!(
            "{} on {}/{}",
            field("verb"),
            field("resource"),
            field("object")
        )
    } else {
        format!("{} on {}", field("permission"), field("object"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grants_read_in_both_forms() {
        assert_eq!(
            grant_text(r#"{"resource":"action_scripts","object":"_all","verb":"GET"}"#),
            "GET on action_scripts/_all"
        );
        assert_eq!(
            grant_text(r#"{"object":"action_scripts:_all_acme","permission":"AllowGet"}"#),
            "AllowGet on action_scripts:_all_acme"
        );
    }
}
