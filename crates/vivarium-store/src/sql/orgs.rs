//! Organizations, users and memberships.

use sqlx::any::AnyRow;

use super::codec::{column, count, flag, flag_value, from_wire_name, wire_name};
use super::errors::{WriteContext, backend, require_one};
use super::{SqlStore, now_micros};
use crate::error::StoreError;
use crate::model::{Membership, Org, OrgRole, User};

/// Creates `org` unless it exists, and returns it as stored.
pub(super) async fn ensure_org(db: &SqlStore, org: &str) -> Result<Org, StoreError> {
    sqlx::query(
        "INSERT INTO orgs (name, created_at) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING",
    )
    .bind(org)
    .bind(now_micros())
    .execute(db.pool())
    .await
    .map_err(backend("creating an organization"))?;
    let row = sqlx::query("SELECT name, created_at, origin_cluster_url FROM orgs WHERE name = $1")
        .bind(org)
        .fetch_one(db.pool())
        .await
        .map_err(backend("reading an organization"))?;
    org_from_row(&row)
}

/// Whether `org` exists.
pub(super) async fn org_exists(db: &SqlStore, org: &str) -> Result<bool, StoreError> {
    let row = sqlx::query("SELECT COUNT(*) AS n FROM orgs WHERE name = $1")
        .bind(org)
        .fetch_one(db.pool())
        .await
        .map_err(backend("reading an organization"))?;
    Ok(count(&row)? > 0)
}

/// Every organization, sorted by name (in Rust, so both databases sort alike).
pub(super) async fn list_orgs(db: &SqlStore) -> Result<Vec<Org>, StoreError> {
    let rows = sqlx::query("SELECT name, created_at, origin_cluster_url FROM orgs")
        .fetch_all(db.pool())
        .await
        .map_err(backend("listing organizations"))?;
    let mut orgs = rows
        .iter()
        .map(org_from_row)
        .collect::<Result<Vec<_>, _>>()?;
    orgs.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(orgs)
}

/// An organization row.
fn org_from_row(row: &AnyRow) -> Result<Org, StoreError> {
    Ok(Org {
        name: column(row, "name")?,
        created_at: column(row, "created_at")?,
        origin_cluster_url: column(row, "origin_cluster_url")?,
    })
}

/// Sets (`Some`) or clears (`None`) the organization's own origin cluster URL; `NotFound`
/// when the organization does not exist.
pub(super) async fn set_origin_cluster_url(
    db: &SqlStore,
    org: &str,
    url: Option<&str>,
) -> Result<(), StoreError> {
    let done = sqlx::query("UPDATE orgs SET origin_cluster_url = $2 WHERE name = $1")
        .bind(org)
        .bind(url)
        .execute(db.pool())
        .await
        .map_err(backend("setting an origin cluster URL"))?;
    require_one(done.rows_affected(), || format!("organization {org:?}"))
}

/// The organization's own origin cluster URL (`None` when it has none, or does not exist).
pub(super) async fn origin_cluster_url(
    db: &SqlStore,
    org: &str,
) -> Result<Option<String>, StoreError> {
    let row = sqlx::query("SELECT origin_cluster_url FROM orgs WHERE name = $1")
        .bind(org)
        .fetch_optional(db.pool())
        .await
        .map_err(backend("reading an origin cluster URL"))?;
    match row {
        Some(row) => column(&row, "origin_cluster_url"),
        None => Ok(None),
    }
}

/// Stores a new user; `Conflict` when the email is taken.
pub(super) async fn create_user(db: &SqlStore, user: &User) -> Result<(), StoreError> {
    let taken = format!("user {:?}", user.email);
    let context = WriteContext {
        doing: "creating a user",
        taken: &taken,
        missing: &taken,
    };
    sqlx::query(
        "INSERT INTO users (email, password_hash, is_root, created_at) VALUES ($1, $2, $3, $4)",
    )
    .bind(&user.email)
    .bind(&user.password_hash)
    .bind(flag_value(user.is_root))
    .bind(user.created_at)
    .execute(db.pool())
    .await
    .map_err(|err| context.classify(err))?;
    Ok(())
}

/// A user by email.
pub(super) async fn find_user(db: &SqlStore, email: &str) -> Result<Option<User>, StoreError> {
    let row =
        sqlx::query("SELECT email, password_hash, is_root, created_at FROM users WHERE email = $1")
            .bind(email)
            .fetch_optional(db.pool())
            .await
            .map_err(backend("reading a user"))?;
    row.as_ref().map(user_from_row).transpose()
}

/// A user row.
fn user_from_row(row: &AnyRow) -> Result<User, StoreError> {
    Ok(User {
        email: column(row, "email")?,
        password_hash: column(row, "password_hash")?,
        is_root: flag(row, "is_root")?,
        created_at: column(row, "created_at")?,
    })
}

/// Whether any user is root.
pub(super) async fn has_root_user(db: &SqlStore) -> Result<bool, StoreError> {
    let row = sqlx::query("SELECT COUNT(*) AS n FROM users WHERE is_root = 1")
        .fetch_one(db.pool())
        .await
        .map_err(backend("reading users"))?;
    Ok(count(&row)? > 0)
}

/// Replaces a user's password hash; `NotFound` when there is no such user.
pub(super) async fn set_user_password(
    db: &SqlStore,
    email: &str,
    password_hash: &str,
) -> Result<(), StoreError> {
    let mut tx = db.begin().await?;
    let done = sqlx::query("UPDATE users SET password_hash = $2 WHERE email = $1")
        .bind(email)
        .bind(password_hash)
        .execute(&mut *tx)
        .await
        .map_err(backend("changing a password"))?;
    require_one(done.rows_affected(), || format!("user {email:?}"))?;
    sqlx::query("DELETE FROM console_sessions WHERE email = $1")
        .bind(email)
        .execute(&mut *tx)
        .await
        .map_err(backend("ending the user's sessions"))?;
    tx.commit().await.map_err(backend("changing a password"))
}

/// Makes `email` a member of `org` with `role`, replacing any membership it had; `NotFound`
/// when the organization or the user does not exist.
pub(super) async fn set_membership(
    db: &SqlStore,
    org: &str,
    email: &str,
    role: OrgRole,
) -> Result<(), StoreError> {
    let missing = format!("organization {org:?} or user {email:?}");
    let context = WriteContext {
        doing: "setting a membership",
        taken: &missing,
        missing: &missing,
    };
    sqlx::query(
        "INSERT INTO memberships (org, email, role) VALUES ($1, $2, $3)
         ON CONFLICT (org, email) DO UPDATE SET role = excluded.role",
    )
    .bind(org)
    .bind(email)
    .bind(wire_name(&role)?)
    .execute(db.pool())
    .await
    .map_err(|err| context.classify(err))?;
    Ok(())
}

/// `email`'s standing in `org`, if a member.
pub(super) async fn membership(
    db: &SqlStore,
    org: &str,
    email: &str,
) -> Result<Option<OrgRole>, StoreError> {
    let row = sqlx::query("SELECT role FROM memberships WHERE org = $1 AND email = $2")
        .bind(org)
        .bind(email)
        .fetch_optional(db.pool())
        .await
        .map_err(backend("reading a membership"))?;
    row.map(|row| from_wire_name(column(&row, "role")?))
        .transpose()
}

/// The members of `org`, sorted by email.
pub(super) async fn list_members(db: &SqlStore, org: &str) -> Result<Vec<Membership>, StoreError> {
    let rows = sqlx::query("SELECT email, role FROM memberships WHERE org = $1")
        .bind(org)
        .fetch_all(db.pool())
        .await
        .map_err(backend("listing members"))?;
    let mut members = rows
        .iter()
        .map(|row| {
            Ok(Membership {
                email: column(row, "email")?,
                role: from_wire_name(column(row, "role")?)?,
            })
        })
        .collect::<Result<Vec<_>, StoreError>>()?;
    members.sort_by(|a, b| a.email.cmp(&b.email));
    Ok(members)
}

/// Ends `email`'s membership of `org` and takes every role of `org` from it, in one
/// transaction; `NotFound` when it is not a member.
pub(super) async fn remove_member(db: &SqlStore, org: &str, email: &str) -> Result<(), StoreError> {
    let mut tx = db.begin().await?;
    let done = sqlx::query("DELETE FROM memberships WHERE org = $1 AND email = $2")
        .bind(org)
        .bind(email)
        .execute(&mut *tx)
        .await
        .map_err(backend("removing a member"))?;
    require_one(done.rows_affected(), || {
        format!("member {email:?} of organization {org:?}")
    })?;
    super::roles::unassign_everywhere(&mut tx, org, email).await?;
    tx.commit().await.map_err(backend("removing a member"))
}
