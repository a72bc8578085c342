//! Roles, their grants and assignments.

use vivarium_auth::{Grant, GrantForm, O2Grant, O2Permission, ObjectScope, ResourceKind, Verb};

use crate::sql::tests::fixtures::{ACME, GLOBEX, account, grant, one, two_orgs, user};
use crate::{MetadataStore, OrgRole, Role, RoleChange, StoreError};

/// `grants` as granted in Vivarium's form.
fn given(grants: &[Grant]) -> Vec<GrantForm> {
    grants.iter().cloned().map(GrantForm::from).collect()
}

/// A change adding `grants` and assigning the role to `emails`.
fn assign(grants: &[Grant], emails: &[&str]) -> RoleChange {
    RoleChange {
        add: given(grants),
        add_users: emails.iter().map(|email| email.to_string()).collect(),
        ..RoleChange::default()
    }
}

pub(crate) async fn roles_are_scoped_to_their_org(store: &dyn MetadataStore) {
    two_orgs(store).await;
    let created = store.create_role(ACME, "ops", 500).await.unwrap();
    assert_eq!(
        created,
        Role {
            name: "ops".into(),
            permissions: vec![],
            principals: vec![],
            created_at: 500
        }
    );
    let duplicate = store.create_role(ACME, "ops", 600).await;
    assert!(
        matches!(duplicate, Err(StoreError::Conflict(_))),
        "{duplicate:?}"
    );
    store.create_role(ACME, "audit", 700).await.unwrap();
    store.create_role(GLOBEX, "ops", 800).await.unwrap();
    store
        .update_role(
            GLOBEX,
            "ops",
            &assign(&[grant(Verb::Delete, ObjectScope::All)], &["x@example.com"]),
        )
        .await
        .unwrap();

    assert_eq!(
        store.get_role(ACME, "ops").await.unwrap(),
        Some(created.clone())
    );
    assert_eq!(store.get_role(GLOBEX, "audit").await.unwrap(), None);
    let names: Vec<String> = store
        .list_roles(ACME)
        .await
        .unwrap()
        .into_iter()
        .map(|role| role.name)
        .collect();
    assert_eq!(names, ["audit", "ops"]);
    assert_eq!(store.list_roles(GLOBEX).await.unwrap().len(), 1);

    let update_elsewhere = store
        .update_role(GLOBEX, "audit", &assign(&[], &["x@example.com"]))
        .await;
    assert!(
        matches!(update_elsewhere, Err(StoreError::NotFound(_))),
        "{update_elsewhere:?}"
    );
    let delete_elsewhere = store.delete_role(GLOBEX, "audit").await;
    assert!(
        matches!(delete_elsewhere, Err(StoreError::NotFound(_))),
        "{delete_elsewhere:?}"
    );
    store.delete_role(GLOBEX, "ops").await.unwrap();
    assert_eq!(store.get_role(ACME, "ops").await.unwrap(), Some(created));
    let again = store.delete_role(GLOBEX, "ops").await;
    assert!(matches!(again, Err(StoreError::NotFound(_))), "{again:?}");
    let no_org = store.create_role("ghost", "ops", 1).await;
    assert!(
        matches!(no_org, Err(StoreError::NotFound(ref what)) if what.contains("ghost")),
        "{no_org:?}"
    );
}

pub(crate) async fn role_updates_are_sorted_and_deduplicated(store: &dyn MetadataStore) {
    two_orgs(store).await;
    store.create_role(ACME, "ops", 500).await.unwrap();
    let first = RoleChange {
        add: given(&[
            grant(Verb::Put, ObjectScope::All),
            grant(Verb::Get, one("b")),
            grant(Verb::Get, one("a")),
            grant(Verb::Get, ObjectScope::All),
            grant(Verb::Get, ObjectScope::All),
        ]),
        add_users: vec![
            "zed@example.com".into(),
            "amy@example.com".into(),
            "amy@example.com".into(),
        ],
        ..RoleChange::default()
    };
    let role = store.update_role(ACME, "ops", &first).await.unwrap();
    let expected = Role {
        name: "ops".into(),
        permissions: given(&[
            grant(Verb::Get, ObjectScope::All),
            grant(Verb::Put, ObjectScope::All),
            grant(Verb::Get, one("a")),
            grant(Verb::Get, one("b")),
        ]),
        principals: vec!["amy@example.com".into(), "zed@example.com".into()],
        created_at: 500,
    };
    assert_eq!(role, expected);
    assert_eq!(store.get_role(ACME, "ops").await.unwrap(), Some(expected));

    let repeated = store.update_role(ACME, "ops", &first).await.unwrap();
    assert_eq!(repeated.permissions.len(), 4);
    assert_eq!(repeated.principals.len(), 2);
}

pub(crate) async fn role_updates_add_and_remove_in_one_change(store: &dyn MetadataStore) {
    two_orgs(store).await;
    store.create_role(ACME, "ops", 500).await.unwrap();
    let streams = Grant {
        resource: ResourceKind::Streams,
        object: ObjectScope::All,
        verb: Verb::List,
    };
    let setup = assign(
        &[
            grant(Verb::Get, ObjectScope::All),
            grant(Verb::Put, ObjectScope::All),
        ],
        &["amy@example.com", "zed@example.com"],
    );
    store.update_role(ACME, "ops", &setup).await.unwrap();

    let change = RoleChange {
        add: given(&[streams.clone(), grant(Verb::Delete, one("x"))]),
        remove: given(&[
            grant(Verb::Put, ObjectScope::All),
            grant(Verb::Post, ObjectScope::All),
            grant(Verb::Delete, one("x")),
        ]),
        add_users: vec!["bob@example.com".into()],
        remove_users: vec!["zed@example.com".into(), "nobody@example.com".into()],
    };
    let role = store.update_role(ACME, "ops", &change).await.unwrap();
    assert_eq!(
        role.permissions,
        given(&[grant(Verb::Get, ObjectScope::All), streams])
    );
    assert_eq!(role.principals, ["amy@example.com", "bob@example.com"]);
    assert_eq!(store.get_role(ACME, "ops").await.unwrap(), Some(role));
}

pub(crate) async fn concurrent_role_updates_all_apply(store: &dyn MetadataStore) {
    two_orgs(store).await;
    store.create_role(ACME, "ops", 500).await.unwrap();
    let emails: Vec<String> = (0..12).map(|i| format!("user{i:02}@example.com")).collect();
    let updates = emails.iter().map(|email| {
        let change = assign(&[grant(Verb::Get, one(email))], &[email.as_str()]);
        async move { store.update_role(ACME, "ops", &change).await }
    });
    for outcome in futures_util::future::join_all(updates).await {
        outcome.unwrap();
    }
    let role = store.get_role(ACME, "ops").await.unwrap().unwrap();
    assert_eq!(role.principals, emails);
    assert_eq!(role.permissions.len(), 12);
}

pub(crate) async fn grants_of_unions_the_roles_of_a_principal(store: &dyn MetadataStore) {
    two_orgs(store).await;
    store.create_role(ACME, "readers", 1).await.unwrap();
    store.create_role(ACME, "writers", 2).await.unwrap();
    store.create_role(ACME, "others", 3).await.unwrap();
    store.create_role(GLOBEX, "admins", 4).await.unwrap();
    store
        .update_role(
            ACME,
            "readers",
            &assign(&[grant(Verb::Get, ObjectScope::All)], &["amy@example.com"]),
        )
        .await
        .unwrap();
    let writes = [
        grant(Verb::Put, ObjectScope::All),
        grant(Verb::Get, ObjectScope::All),
    ];
    store
        .update_role(
            ACME,
            "writers",
            &assign(&writes, &["amy@example.com", "bob@example.com"]),
        )
        .await
        .unwrap();
    store
        .update_role(
            ACME,
            "others",
            &assign(&[grant(Verb::Delete, one("a1"))], &["bob@example.com"]),
        )
        .await
        .unwrap();
    store
        .update_role(
            GLOBEX,
            "admins",
            &assign(&[grant(Verb::Post, ObjectScope::All)], &["amy@example.com"]),
        )
        .await
        .unwrap();

    assert_eq!(
        store.grants_of(ACME, "amy@example.com").await.unwrap(),
        [
            grant(Verb::Get, ObjectScope::All),
            grant(Verb::Put, ObjectScope::All)
        ]
    );
    assert_eq!(
        store.grants_of(ACME, "bob@example.com").await.unwrap(),
        [
            grant(Verb::Get, ObjectScope::All),
            grant(Verb::Put, ObjectScope::All),
            grant(Verb::Delete, one("a1"))
        ]
    );
    assert_eq!(
        store.grants_of(GLOBEX, "amy@example.com").await.unwrap(),
        [grant(Verb::Post, ObjectScope::All)]
    );
    assert_eq!(
        store.grants_of(GLOBEX, "bob@example.com").await.unwrap(),
        []
    );
    assert_eq!(
        store.grants_of(ACME, "nobody@example.com").await.unwrap(),
        []
    );
}

pub(crate) async fn deleting_a_role_drops_its_grants_and_assignments(store: &dyn MetadataStore) {
    two_orgs(store).await;
    store.create_role(ACME, "ops", 1).await.unwrap();
    store
        .update_role(
            ACME,
            "ops",
            &assign(&[grant(Verb::Get, ObjectScope::All)], &["amy@example.com"]),
        )
        .await
        .unwrap();
    store.delete_role(ACME, "ops").await.unwrap();

    assert_eq!(store.get_role(ACME, "ops").await.unwrap(), None);
    assert_eq!(store.grants_of(ACME, "amy@example.com").await.unwrap(), []);
    let recreated = store.create_role(ACME, "ops", 2).await.unwrap();
    assert_eq!(
        store.get_role(ACME, "ops").await.unwrap(),
        Some(recreated.clone())
    );
    assert_eq!(recreated.permissions, []);
    assert_eq!(recreated.principals, Vec::<String>::new());
}

pub(crate) async fn removing_a_member_drops_their_assignments_in_that_org(
    store: &dyn MetadataStore,
) {
    two_orgs(store).await;
    store.create_user(&user("amy@example.com")).await.unwrap();
    for org in [ACME, GLOBEX] {
        store
            .set_membership(org, "amy@example.com", OrgRole::Member)
            .await
            .unwrap();
        store.create_role(org, "ops", 1).await.unwrap();
        let change = assign(
            &[grant(Verb::Get, ObjectScope::All)],
            &["amy@example.com", "bob@example.com"],
        );
        store.update_role(org, "ops", &change).await.unwrap();
    }
    store.remove_member(ACME, "amy@example.com").await.unwrap();

    assert_eq!(
        store
            .get_role(ACME, "ops")
            .await
            .unwrap()
            .unwrap()
            .principals,
        ["bob@example.com"]
    );
    assert_eq!(store.grants_of(ACME, "amy@example.com").await.unwrap(), []);
    assert_eq!(
        store
            .get_role(GLOBEX, "ops")
            .await
            .unwrap()
            .unwrap()
            .principals,
        ["amy@example.com", "bob@example.com"]
    );
    assert_eq!(
        store.grants_of(GLOBEX, "amy@example.com").await.unwrap(),
        [grant(Verb::Get, ObjectScope::All)]
    );
}

pub(crate) async fn deleting_a_service_account_drops_its_assignments_in_that_org(
    store: &dyn MetadataStore,
) {
    two_orgs(store).await;
    for org in [ACME, GLOBEX] {
        store
            .create_service_account(&account(org, "bot@example.com"))
            .await
            .unwrap();
        store.create_role(org, "runner", 1).await.unwrap();
        let change = assign(
            &[grant(Verb::Get, ObjectScope::All)],
            &["bot@example.com", "amy@example.com"],
        );
        store.update_role(org, "runner", &change).await.unwrap();
    }
    store
        .delete_service_account(ACME, "bot@example.com")
        .await
        .unwrap();

    assert_eq!(
        store
            .get_role(ACME, "runner")
            .await
            .unwrap()
            .unwrap()
            .principals,
        ["amy@example.com"]
    );
    assert_eq!(store.grants_of(ACME, "bot@example.com").await.unwrap(), []);
    assert_eq!(
        store.grants_of(GLOBEX, "bot@example.com").await.unwrap(),
        [grant(Verb::Get, ObjectScope::All)]
    );
}

pub(crate) async fn openobserve_grants_read_back_as_written_and_grant_their_verbs(
    store: &dyn MetadataStore,
) {
    two_orgs(store).await;
    store.create_role(ACME, "o2", 1).await.unwrap();
    let all = GrantForm::OpenObserve(O2Grant {
        object: format!("action_scripts:_all_{ACME}"),
        permission: O2Permission::AllowAll,
    });
    let get_one = GrantForm::OpenObserve(O2Grant {
        object: "action_scripts:a1".into(),
        permission: O2Permission::AllowGet,
    });
    let vivarium_get = GrantForm::from(grant(Verb::Get, ObjectScope::All));
    let change = RoleChange {
        add: vec![all.clone(), get_one.clone(), vivarium_get.clone()],
        add_users: vec!["amy@example.com".into()],
        ..RoleChange::default()
    };
    let role = store.update_role(ACME, "o2", &change).await.unwrap();
    let mut expected = vec![all.clone(), get_one.clone(), vivarium_get.clone()];
    expected.sort();
    assert_eq!(role.permissions, expected);
    assert_eq!(store.get_role(ACME, "o2").await.unwrap(), Some(role));
    let every_verb = [Verb::Get, Verb::Post, Verb::Put, Verb::Delete, Verb::List];
    let mut verbs_on_all: Vec<Grant> = every_verb
        .iter()
        .map(|&verb| grant(verb, ObjectScope::All))
        .chain([grant(Verb::Get, one("a1"))])
        .collect();
    verbs_on_all.sort();
    assert_eq!(
        store.grants_of(ACME, "amy@example.com").await.unwrap(),
        verbs_on_all
    );

    let remove_all = RoleChange {
        remove: vec![all],
        ..RoleChange::default()
    };
    let role = store.update_role(ACME, "o2", &remove_all).await.unwrap();
    let mut left = vec![get_one, vivarium_get];
    left.sort();
    assert_eq!(
        role.permissions, left,
        "the GET granted in Vivarium's form stays"
    );
    assert_eq!(
        store.grants_of(ACME, "amy@example.com").await.unwrap(),
        [
            grant(Verb::Get, ObjectScope::All),
            grant(Verb::Get, one("a1"))
        ]
    );
}
