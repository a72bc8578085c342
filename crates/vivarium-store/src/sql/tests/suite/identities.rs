//! Organizations, users, memberships and service accounts.

use crate::sql::tests::fixtures::{ACME, GLOBEX, account, two_orgs, user};
use crate::{
    AuditEvent, ConsoleSession, Membership, MetadataStore, OrgRole, Page, StoreError, User,
};

pub(crate) async fn ensure_org_creates_once_and_lists_by_name(store: &dyn MetadataStore) {
    let first = store.ensure_org("globex").await.unwrap();
    assert_eq!(first.name, "globex");
    assert!(
        first.created_at > 1_600_000_000_000_000,
        "microseconds since the epoch: {}",
        first.created_at
    );
    let again = store.ensure_org("globex").await.unwrap();
    assert_eq!(again, first);
    store.ensure_org("acme").await.unwrap();
    store.ensure_org("beta").await.unwrap();

    assert!(store.org_exists("acme").await.unwrap());
    assert!(!store.org_exists("nope").await.unwrap());
    let names: Vec<String> = store
        .list_orgs()
        .await
        .unwrap()
        .into_iter()
        .map(|org| org.name)
        .collect();
    assert_eq!(names, ["acme", "beta", "globex"]);
}

pub(crate) async fn users_are_unique_by_email(store: &dyn MetadataStore) {
    assert!(!store.has_root_user().await.unwrap());
    store.create_user(&user("alice@example.com")).await.unwrap();
    assert!(!store.has_root_user().await.unwrap());
    let root = User {
        is_root: true,
        ..user("root@example.com")
    };
    store.create_user(&root).await.unwrap();
    assert!(store.has_root_user().await.unwrap());

    let duplicate = store
        .create_user(&User {
            password_hash: "other".into(),
            ..user("alice@example.com")
        })
        .await;
    assert!(
        matches!(duplicate, Err(StoreError::Conflict(ref what)) if what.contains("alice@example.com")),
        "{duplicate:?}"
    );
    assert_eq!(
        store.find_user("alice@example.com").await.unwrap(),
        Some(user("alice@example.com"))
    );
    assert_eq!(
        store.find_user("root@example.com").await.unwrap(),
        Some(root)
    );
    assert_eq!(store.find_user("nobody@example.com").await.unwrap(), None);
}

pub(crate) async fn passwords_change_only_for_existing_users(store: &dyn MetadataStore) {
    store.create_user(&user("alice@example.com")).await.unwrap();
    store.create_user(&user("bob@example.com")).await.unwrap();
    store
        .set_user_password("alice@example.com", "new-hash")
        .await
        .unwrap();
    assert_eq!(
        store
            .find_user("alice@example.com")
            .await
            .unwrap()
            .unwrap()
            .password_hash,
        "new-hash"
    );
    assert_eq!(
        store
            .find_user("bob@example.com")
            .await
            .unwrap()
            .unwrap()
            .password_hash,
        "hash-of-bob@example.com"
    );
    let missing = store.set_user_password("nobody@example.com", "x").await;
    assert!(
        matches!(missing, Err(StoreError::NotFound(_))),
        "{missing:?}"
    );
}

pub(crate) async fn memberships_are_scoped_to_their_org(store: &dyn MetadataStore) {
    two_orgs(store).await;
    store.create_user(&user("bob@example.com")).await.unwrap();
    store.create_user(&user("alice@example.com")).await.unwrap();
    store
        .set_membership(ACME, "bob@example.com", OrgRole::Member)
        .await
        .unwrap();
    store
        .set_membership(ACME, "alice@example.com", OrgRole::Admin)
        .await
        .unwrap();

    assert_eq!(
        store.membership(ACME, "alice@example.com").await.unwrap(),
        Some(OrgRole::Admin)
    );
    assert_eq!(
        store.membership(GLOBEX, "alice@example.com").await.unwrap(),
        None
    );
    assert_eq!(
        store.list_members(ACME).await.unwrap(),
        [
            Membership {
                email: "alice@example.com".into(),
                role: OrgRole::Admin
            },
            Membership {
                email: "bob@example.com".into(),
                role: OrgRole::Member
            },
        ]
    );
    assert_eq!(store.list_members(GLOBEX).await.unwrap(), []);

    store
        .set_membership(ACME, "bob@example.com", OrgRole::Admin)
        .await
        .unwrap();
    assert_eq!(
        store.membership(ACME, "bob@example.com").await.unwrap(),
        Some(OrgRole::Admin)
    );
    assert_eq!(store.list_members(ACME).await.unwrap().len(), 2);

    let elsewhere = store.remove_member(GLOBEX, "bob@example.com").await;
    assert!(
        matches!(elsewhere, Err(StoreError::NotFound(_))),
        "{elsewhere:?}"
    );
    assert_eq!(
        store.membership(ACME, "bob@example.com").await.unwrap(),
        Some(OrgRole::Admin)
    );
    store.remove_member(ACME, "bob@example.com").await.unwrap();
    assert_eq!(
        store.membership(ACME, "bob@example.com").await.unwrap(),
        None
    );
    let again = store.remove_member(ACME, "bob@example.com").await;
    assert!(matches!(again, Err(StoreError::NotFound(_))), "{again:?}");
}

pub(crate) async fn memberships_need_an_existing_org_and_user(store: &dyn MetadataStore) {
    two_orgs(store).await;
    store.create_user(&user("alice@example.com")).await.unwrap();
    let no_org = store
        .set_membership("ghost", "alice@example.com", OrgRole::Member)
        .await;
    assert!(
        matches!(no_org, Err(StoreError::NotFound(ref what)) if what.contains("ghost")),
        "{no_org:?}"
    );
    let no_user = store
        .set_membership(ACME, "nobody@example.com", OrgRole::Member)
        .await;
    assert!(
        matches!(no_user, Err(StoreError::NotFound(ref what)) if what.contains("nobody")),
        "{no_user:?}"
    );
    assert_eq!(store.list_members(ACME).await.unwrap(), []);
}

pub(crate) async fn service_accounts_are_scoped_to_their_org(store: &dyn MetadataStore) {
    two_orgs(store).await;
    store
        .create_service_account(&account(ACME, "z-bot@example.com"))
        .await
        .unwrap();
    store
        .create_service_account(&account(ACME, "a-bot@example.com"))
        .await
        .unwrap();
    store
        .create_service_account(&account(GLOBEX, "z-bot@example.com"))
        .await
        .unwrap();
    let duplicate = store
        .create_service_account(&account(ACME, "z-bot@example.com"))
        .await;
    assert!(
        matches!(duplicate, Err(StoreError::Conflict(_))),
        "{duplicate:?}"
    );

    assert_eq!(
        store
            .get_service_account(ACME, "z-bot@example.com")
            .await
            .unwrap(),
        Some(account(ACME, "z-bot@example.com"))
    );
    assert_eq!(
        store
            .get_service_account(GLOBEX, "z-bot@example.com")
            .await
            .unwrap(),
        Some(account(GLOBEX, "z-bot@example.com"))
    );
    assert_eq!(
        store
            .get_service_account(GLOBEX, "a-bot@example.com")
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        store.list_service_accounts(ACME).await.unwrap(),
        [
            account(ACME, "a-bot@example.com"),
            account(ACME, "z-bot@example.com")
        ]
    );
    assert_eq!(
        store.list_service_accounts(GLOBEX).await.unwrap(),
        [account(GLOBEX, "z-bot@example.com")]
    );
}

pub(crate) async fn service_account_changes_stay_in_their_org(store: &dyn MetadataStore) {
    two_orgs(store).await;
    store
        .create_service_account(&account(ACME, "bot@example.com"))
        .await
        .unwrap();
    store
        .create_service_account(&account(GLOBEX, "bot@example.com"))
        .await
        .unwrap();

    store
        .set_service_account_token(GLOBEX, "bot@example.com", "rotated")
        .await
        .unwrap();
    assert_eq!(
        store
            .get_service_account(GLOBEX, "bot@example.com")
            .await
            .unwrap()
            .unwrap()
            .token_hash,
        "rotated"
    );
    assert_eq!(
        store
            .get_service_account(ACME, "bot@example.com")
            .await
            .unwrap(),
        Some(account(ACME, "bot@example.com"))
    );
    let missing = store
        .set_service_account_token(ACME, "ghost@example.com", "x")
        .await;
    assert!(
        matches!(missing, Err(StoreError::NotFound(_))),
        "{missing:?}"
    );

    store
        .delete_service_account(GLOBEX, "bot@example.com")
        .await
        .unwrap();
    assert_eq!(
        store
            .get_service_account(GLOBEX, "bot@example.com")
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        store
            .get_service_account(ACME, "bot@example.com")
            .await
            .unwrap(),
        Some(account(ACME, "bot@example.com"))
    );
    let again = store
        .delete_service_account(GLOBEX, "bot@example.com")
        .await;
    assert!(matches!(again, Err(StoreError::NotFound(_))), "{again:?}");
    let no_org = store
        .create_service_account(&account("ghost", "bot@example.com"))
        .await;
    assert!(
        matches!(no_org, Err(StoreError::NotFound(ref what)) if what.contains("ghost")),
        "{no_org:?}"
    );
}

fn session(secret_hash: &str, email: &str, created_at: i64, expires_at: i64) -> ConsoleSession {
    ConsoleSession {
        secret_hash: secret_hash.to_string(),
        email: email.to_string(),
        created_at,
        expires_at,
    }
}

pub(crate) async fn sessions_hold_until_they_expire_or_end(store: &dyn MetadataStore) {
    store.create_user(&user("ada@acme.io")).await.unwrap();
    let first = session("h1", "ada@acme.io", 100, 200);
    store.create_session(&first).await.unwrap();
    assert_eq!(store.find_session("h1", 150).await.unwrap(), Some(first));
    assert_eq!(store.find_session("h1", 200).await.unwrap(), None);
    assert_eq!(store.find_session("nope", 150).await.unwrap(), None);

    let second = session("h2", "ada@acme.io", 300, 400);
    store.create_session(&second).await.unwrap();
    assert_eq!(store.find_session("h1", 0).await.unwrap(), None, "swept");
    store.delete_session("h2").await.unwrap();
    assert_eq!(store.find_session("h2", 350).await.unwrap(), None);
    store.delete_session("h2").await.unwrap();

    let orphan = store
        .create_session(&session("h3", "nobody@acme.io", 300, 400))
        .await;
    assert!(matches!(orphan, Err(StoreError::NotFound(_))), "{orphan:?}");
}

pub(crate) async fn a_new_password_ends_the_users_sessions(store: &dyn MetadataStore) {
    store.create_user(&user("bob@acme.io")).await.unwrap();
    store.create_user(&user("eve@acme.io")).await.unwrap();
    store
        .create_session(&session("other", "eve@acme.io", 100, 200))
        .await
        .unwrap();
    store
        .create_session(&session("h1", "bob@acme.io", 100, 200))
        .await
        .unwrap();
    store
        .set_user_password("bob@acme.io", "$argon2id$other")
        .await
        .unwrap();
    assert_eq!(store.find_session("h1", 150).await.unwrap(), None);
    assert!(store.find_session("other", 150).await.unwrap().is_some());
}

pub(crate) async fn audit_events_list_newest_first_per_org(store: &dyn MetadataStore) {
    let event = |org: &str, id: &str, at: i64| AuditEvent {
        id: id.into(),
        org: org.into(),
        at,
        actor: "admin@example.com".into(),
        actor_kind: "admin".into(),
        operation: "rotate_service_account_token".into(),
        method: "PUT".into(),
        path: format!("/api/{org}/service_accounts/bot@example.com"),
        status: 200,
    };
    for (org, id, at) in [
        (ACME, "a1", 10),
        (ACME, "a2", 30),
        (GLOBEX, "g1", 20),
        (ACME, "a3", 20),
    ] {
        store.record_audit(&event(org, id, at)).await.unwrap();
    }
    let page = |offset, limit| Page { offset, limit };
    let ids = |events: Vec<AuditEvent>| events.into_iter().map(|e| e.id).collect::<Vec<_>>();
    assert_eq!(
        ids(store.list_audit(ACME, page(0, 10)).await.unwrap()),
        ["a2", "a3", "a1"]
    );
    assert_eq!(
        ids(store.list_audit(ACME, page(1, 1)).await.unwrap()),
        ["a3"]
    );
    let globex = store.list_audit(GLOBEX, page(0, 10)).await.unwrap();
    assert_eq!(globex, [event(GLOBEX, "g1", 20)]);
    let taken = store.record_audit(&event(ACME, "a1", 40)).await;
    assert!(taken.is_err(), "ids are unique within an organization");
}
