//! Roles: their grants and the principals (users and service accounts) holding them.

use std::collections::BTreeMap;

use sqlx::AnyConnection;
use sqlx::any::AnyRow;
use vivarium_auth::{Grant, GrantForm, O2Grant, O2Permission};

use super::SqlStore;
use super::codec::{column, from_wire_name, wire_name};
use super::errors::{WriteContext, backend, require_one};
use crate::error::StoreError;
use crate::model::{Role, RoleChange};

/// Stores a new role with no grants and no principals; `Conflict` when the name is taken in
/// `org`, `NotFound` when the organization does not exist.
pub(super) async fn create(
    db: &SqlStore,
    org: &str,
    name: &str,
    created_at: i64,
) -> Result<Role, StoreError> {
    let taken = format!("role {name:?} in organization {org:?}");
    let missing = format!("organization {org:?}");
    let context = WriteContext {
        doing: "creating a role",
        taken: &taken,
        missing: &missing,
    };
    sqlx::query("INSERT INTO roles (org, name, created_at) VALUES ($1, $2, $3)")
        .bind(org)
        .bind(name)
        .bind(created_at)
        .execute(db.pool())
        .await
        .map_err(|err| context.classify(err))?;
    Ok(Role {
        name: name.to_string(),
        permissions: Vec::new(),
        principals: Vec::new(),
        created_at,
    })
}

/// A role of `org` with its grants and principals.
pub(super) async fn get(db: &SqlStore, org: &str, name: &str) -> Result<Option<Role>, StoreError> {
    let mut conn = db.conn().await?;
    Ok(load(&mut conn, org, Some(name)).await?.pop())
}

/// The roles of `org`, sorted by name.
pub(super) async fn list(db: &SqlStore, org: &str) -> Result<Vec<Role>, StoreError> {
    let mut conn = db.conn().await?;
    load(&mut conn, org, None).await
}

/// Deletes a role; its grants and assignments go with it (foreign keys cascade). `NotFound`
/// when absent from `org`.
pub(super) async fn delete(db: &SqlStore, org: &str, name: &str) -> Result<(), StoreError> {
    let done = sqlx::query("DELETE FROM roles WHERE org = $1 AND name = $2")
        .bind(org)
        .bind(name)
        .execute(db.pool())
        .await
        .map_err(backend("deleting a role"))?;
    require_one(done.rows_affected(), || not_found(org, name))
}

/// Applies `change` in one transaction (additions first, then removals, so something both
/// added and removed ends up absent) and returns the role as committed.
pub(super) async fn update(
    db: &SqlStore,
    org: &str,
    name: &str,
    change: &RoleChange,
) -> Result<Role, StoreError> {
    let mut tx = db.begin().await?;
    if !exists(&mut tx, org, name).await? {
        return Err(StoreError::NotFound(not_found(org, name)));
    }
    for form in &change.add {
        write_grant(&mut tx, ADD_GRANT, org, name, form).await?;
    }
    for email in &change.add_users {
        write_principal(&mut tx, ADD_PRINCIPAL, org, name, email).await?;
    }
    for form in &change.remove {
        write_grant(&mut tx, REMOVE_GRANT, org, name, form).await?;
    }
    for email in &change.remove_users {
        write_principal(&mut tx, REMOVE_PRINCIPAL, org, name, email).await?;
    }
    let role = load(&mut tx, org, Some(name)).await?.pop();
    tx.commit().await.map_err(backend("updating a role"))?;
    role.ok_or_else(|| StoreError::NotFound(not_found(org, name)))
}

/// Every grant of every role of `org` assigned to `email`, sorted, each once.
pub(super) async fn grants_of(
    db: &SqlStore,
    org: &str,
    email: &str,
) -> Result<Vec<Grant>, StoreError> {
    let rows = sqlx::query(
        "SELECT DISTINCT g.resource, g.object, g.verb
         FROM role_grants g JOIN role_principals p ON p.org = g.org AND p.role = g.role
         WHERE p.org = $1 AND p.email = $2",
    )
    .bind(org)
    .bind(email)
    .fetch_all(db.pool())
    .await
    .map_err(backend("reading grants"))?;
    let mut grants = rows
        .iter()
        .map(grant_from_row)
        .collect::<Result<Vec<_>, _>>()?;
    grants.sort();
    grants.dedup();
    Ok(grants)
}

/// Takes every role of `org` from `email` (when the member or service account goes).
pub(super) async fn unassign_everywhere(
    conn: &mut AnyConnection,
    org: &str,
    email: &str,
) -> Result<(), StoreError> {
    sqlx::query("DELETE FROM role_principals WHERE org = $1 AND email = $2")
        .bind(org)
        .bind(email)
        .execute(conn)
        .await
        .map_err(backend("removing role assignments"))?;
    Ok(())
}

/// Adds a grant to a role, keeping one copy per form.
const ADD_GRANT: &str = "INSERT INTO role_grants (org, role, resource, object, verb, form)
     VALUES ($1, $2, $3, $4, $5, $6)
     ON CONFLICT (org, role, resource, object, verb, form) DO NOTHING";

/// Removes a grant of one form from a role, if present.
const REMOVE_GRANT: &str = "DELETE FROM role_grants
     WHERE org = $1 AND role = $2 AND resource = $3 AND object = $4 AND verb = $5
       AND form = $6";

/// The `form` of a grant written in Vivarium's form; OpenObserve's keep their permission's
/// name (`AllowGet`, ..., `AllowAll`).
const VIVARIUM_FORM: &str = "vivarium";

/// Assigns a role, keeping one assignment.
const ADD_PRINCIPAL: &str = "INSERT INTO role_principals (org, role, email) VALUES ($1, $2, $3)
     ON CONFLICT (org, role, email) DO NOTHING";

/// Takes a role from a principal, if assigned.
const REMOVE_PRINCIPAL: &str =
    "DELETE FROM role_principals WHERE org = $1 AND role = $2 AND email = $3";

/// Runs `statement` (one of the grant statements) for each grant `form` stands for, tagged
/// with the form.
async fn write_grant(
    conn: &mut AnyConnection,
    statement: &'static str,
    org: &str,
    role: &str,
    form: &GrantForm,
) -> Result<(), StoreError> {
    let grants = form.grants(org).map_err(|err| {
        StoreError::Backend(format!("an unchecked grant reached the store: {err}"))
    })?;
    let tag = match form {
        GrantForm::Vivarium(_) => VIVARIUM_FORM.to_string(),
        GrantForm::OpenObserve(o2) => wire_name(&o2.permission)?,
    };
    for grant in grants {
        sqlx::query(statement)
            .bind(org)
            .bind(role)
            .bind(wire_name(&grant.resource)?)
            .bind(wire_name(&grant.object)?)
            .bind(wire_name(&grant.verb)?)
            .bind(&tag)
            .execute(&mut *conn)
            .await
            .map_err(|err| role_gone(org, role, "changing a role's grants", err))?;
    }
    Ok(())
}

/// Runs `statement` (one of the principal statements) for one email.
async fn write_principal(
    conn: &mut AnyConnection,
    statement: &'static str,
    org: &str,
    role: &str,
    email: &str,
) -> Result<(), StoreError> {
    sqlx::query(statement)
        .bind(org)
        .bind(role)
        .bind(email)
        .execute(conn)
        .await
        .map_err(|err| role_gone(org, role, "changing a role's principals", err))?;
    Ok(())
}

/// Whether `org` has a role `name`.
async fn exists(conn: &mut AnyConnection, org: &str, name: &str) -> Result<bool, StoreError> {
    let row = sqlx::query("SELECT COUNT(*) AS n FROM roles WHERE org = $1 AND name = $2")
        .bind(org)
        .bind(name)
        .fetch_one(conn)
        .await
        .map_err(backend("reading a role"))?;
    Ok(super::codec::count(&row)? > 0)
}

/// The roles of `org` (only `name` when given) with their grants and principals, sorted by
/// name, each role's grants and principals sorted.
async fn load(
    conn: &mut AnyConnection,
    org: &str,
    name: Option<&str>,
) -> Result<Vec<Role>, StoreError> {
    let mut roles = load_bare(conn, org, name).await?;
    for row in fetch_for(conn, GRANTS_OF_ROLES, org, name).await? {
        if let Some(role) = roles.get_mut(&column::<String>(&row, "role")?) {
            role.permissions.push(form_from_row(org, &row)?);
        }
    }
    for row in fetch_for(conn, PRINCIPALS_OF_ROLES, org, name).await? {
        if let Some(role) = roles.get_mut(&column::<String>(&row, "role")?) {
            role.principals.push(column(&row, "email")?);
        }
    }
    Ok(roles.into_values().map(sorted).collect())
}

/// The roles themselves, without grants or principals, by name.
async fn load_bare(
    conn: &mut AnyConnection,
    org: &str,
    name: Option<&str>,
) -> Result<BTreeMap<String, Role>, StoreError> {
    let rows = sqlx::query(
        "SELECT name, created_at FROM roles WHERE org = $1 AND ($2 IS NULL OR name = $2)",
    )
    .bind(org)
    .bind(name)
    .fetch_all(&mut *conn)
    .await
    .map_err(backend("reading roles"))?;
    let mut roles = BTreeMap::new();
    for row in rows {
        let role_name: String = column(&row, "name")?;
        let created_at = column(&row, "created_at")?;
        let role = Role {
            name: role_name.clone(),
            permissions: Vec::new(),
            principals: Vec::new(),
            created_at,
        };
        roles.insert(role_name, role);
    }
    Ok(roles)
}

/// The grants of the roles of `org` (or of role `$2` only).
const GRANTS_OF_ROLES: &str = "SELECT role, resource, object, verb, form FROM role_grants
     WHERE org = $1 AND ($2 IS NULL OR role = $2)";

/// The principals of the roles of `org` (or of role `$2` only).
const PRINCIPALS_OF_ROLES: &str =
    "SELECT role, email FROM role_principals WHERE org = $1 AND ($2 IS NULL OR role = $2)";

/// The rows `sql` (one of the per-role queries) yields for the roles of `org`, or only `name`.
async fn fetch_for(
    conn: &mut AnyConnection,
    sql: &'static str,
    org: &str,
    name: Option<&str>,
) -> Result<Vec<AnyRow>, StoreError> {
    sqlx::query(sql)
        .bind(org)
        .bind(name)
        .fetch_all(&mut *conn)
        .await
        .map_err(backend("reading roles"))
}

/// A role with its grants and principals in order, each once.
fn sorted(mut role: Role) -> Role {
    role.permissions.sort();
    role.permissions.dedup();
    role.principals.sort();
    role.principals.dedup();
    role
}

/// A grant from its `resource`, `object` and `verb` columns.
fn grant_from_row(row: &AnyRow) -> Result<Grant, StoreError> {
    Ok(Grant {
        resource: from_wire_name(column(row, "resource")?)?,
        object: from_wire_name(column(row, "object")?)?,
        verb: from_wire_name(column(row, "verb")?)?,
    })
}

/// A grant row of `org` in the form it was granted in: one grant in Vivarium's form, or the
/// OpenObserve grant it is one verb of (the rows of one are folded when sorted).
fn form_from_row(org: &str, row: &AnyRow) -> Result<GrantForm, StoreError> {
    let grant = grant_from_row(row)?;
    let form: String = column(row, "form")?;
    if form == VIVARIUM_FORM {
        return Ok(GrantForm::Vivarium(grant));
    }
    let permission: O2Permission = from_wire_name(form)?;
    let o2 = O2Grant::new(org, grant.resource, &grant.object, permission);
    Ok(GrantForm::OpenObserve(o2))
}

/// A failed write to a role's grants or principals: `NotFound` when the role went meanwhile
/// (a concurrent delete breaking the foreign key), else a backend failure.
fn role_gone(org: &str, role: &str, doing: &str, err: sqlx::Error) -> StoreError {
    let missing = not_found(org, role);
    WriteContext {
        doing,
        taken: &missing,
        missing: &missing,
    }
    .classify(err)
}

/// How a missing role is named.
fn not_found(org: &str, name: &str) -> String {
    format!("role {name:?} in organization {org:?}")
}
