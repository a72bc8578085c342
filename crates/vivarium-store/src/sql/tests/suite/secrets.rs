//! Secrets and the organizations' origin cluster URL.

use crate::sql::tests::fixtures::{ACME, GLOBEX, action, sealed, secret, two_orgs};
use crate::{MetadataStore, SecretInfo, SecretRecord, StoreError};

/// The names a listing shows.
async fn names(store: &dyn MetadataStore, org: &str, action_id: &str) -> Vec<String> {
    store
        .list_secrets(org, action_id)
        .await
        .unwrap()
        .into_iter()
        .map(|info| info.name)
        .collect()
}

pub(crate) async fn secrets_are_put_replaced_listed_and_deleted(store: &dyn MetadataStore) {
    two_orgs(store).await;
    store
        .insert_action(&action(ACME, "a1", "etl", 100))
        .await
        .unwrap();
    store
        .put_secret(&secret(ACME, "", "TOKEN", "org-v1", 1_000))
        .await
        .unwrap();
    store
        .put_secret(&secret(ACME, "", "API_KEY", "org-key", 1_100))
        .await
        .unwrap();
    store
        .put_secret(&secret(ACME, "a1", "TOKEN", "action-v1", 1_200))
        .await
        .unwrap();

    assert_eq!(names(store, ACME, "").await, ["API_KEY", "TOKEN"]);
    assert_eq!(names(store, ACME, "a1").await, ["TOKEN"]);
    assert!(names(store, GLOBEX, "").await.is_empty());
    assert!(names(store, GLOBEX, "a1").await.is_empty());

    // Replacing keeps the creation time and moves the update time.
    let replaced = SecretRecord {
        created_at: 9_999,
        ..secret(ACME, "", "TOKEN", "org-v2", 2_000)
    };
    store.put_secret(&replaced).await.unwrap();
    assert_eq!(
        store.list_secrets(ACME, "").await.unwrap(),
        [
            SecretInfo {
                name: "API_KEY".into(),
                created_at: 1_100,
                updated_at: 1_100
            },
            SecretInfo {
                name: "TOKEN".into(),
                created_at: 1_000,
                updated_at: 2_000
            },
        ]
    );
    let org_token = store
        .secrets_for_run(ACME, "a1")
        .await
        .unwrap()
        .into_iter()
        .find(|s| s.action_id.is_empty() && s.name == "TOKEN")
        .expect("the organization's token");
    assert_eq!(org_token.sealed, sealed("org-v2"));

    assert!(!store.delete_secret(GLOBEX, "", "TOKEN").await.unwrap());
    assert!(store.delete_secret(ACME, "", "TOKEN").await.unwrap());
    assert!(!store.delete_secret(ACME, "", "TOKEN").await.unwrap());
    assert_eq!(names(store, ACME, "").await, ["API_KEY"]);
    assert_eq!(names(store, ACME, "a1").await, ["TOKEN"]);
}

pub(crate) async fn secrets_need_their_org_and_action(store: &dyn MetadataStore) {
    two_orgs(store).await;
    store
        .insert_action(&action(ACME, "a1", "etl", 100))
        .await
        .unwrap();
    let no_org = store
        .put_secret(&secret("ghost", "", "TOKEN", "x", 1))
        .await;
    assert!(
        matches!(no_org, Err(StoreError::NotFound(ref what)) if what.contains("ghost")),
        "{no_org:?}"
    );
    let no_action = store
        .put_secret(&secret(ACME, "nope", "TOKEN", "x", 1))
        .await;
    assert!(
        matches!(no_action, Err(StoreError::NotFound(ref what)) if what.contains("nope")),
        "{no_action:?}"
    );
    let elsewhere = store
        .put_secret(&secret(GLOBEX, "a1", "TOKEN", "x", 1))
        .await;
    assert!(
        matches!(elsewhere, Err(StoreError::NotFound(_))),
        "{elsewhere:?}"
    );
    assert!(store.all_secrets().await.unwrap().is_empty());
}

pub(crate) async fn a_run_sees_its_orgs_secrets_and_its_own(store: &dyn MetadataStore) {
    two_orgs(store).await;
    for id in ["a1", "a2"] {
        store
            .insert_action(&action(ACME, id, id, 100))
            .await
            .unwrap();
    }
    store
        .insert_action(&action(GLOBEX, "g1", "g1", 100))
        .await
        .unwrap();
    for record in [
        secret(ACME, "a1", "TOKEN", "a1-token", 1),
        secret(ACME, "", "TOKEN", "org-token", 1),
        secret(ACME, "a2", "OTHER", "a2-other", 1),
        secret(ACME, "", "BASE", "org-base", 1),
        secret(GLOBEX, "", "TOKEN", "globex-token", 1),
        secret(GLOBEX, "g1", "TOKEN", "g1-token", 1),
    ] {
        store.put_secret(&record).await.unwrap();
    }
    let seen: Vec<(String, String, String)> = store
        .secrets_for_run(ACME, "a1")
        .await
        .unwrap()
        .into_iter()
        .map(|s| (s.action_id, s.name, s.sealed.ciphertext))
        .collect();
    assert_eq!(
        seen,
        [
            ("".into(), "BASE".into(), "ciphertext-org-base".into()),
            ("".into(), "TOKEN".into(), "ciphertext-org-token".into()),
            ("a1".into(), "TOKEN".into(), "ciphertext-a1-token".into()),
        ]
    );
    let everything: Vec<(String, String, String)> = store
        .all_secrets()
        .await
        .unwrap()
        .into_iter()
        .map(|s| (s.org, s.action_id, s.name))
        .collect();
    assert_eq!(everything.len(), 6);
    assert_eq!(
        everything[0],
        (ACME.to_string(), String::new(), "BASE".to_string())
    );
    assert_eq!(
        everything[5],
        (GLOBEX.to_string(), "g1".to_string(), "TOKEN".to_string())
    );
}

pub(crate) async fn deleting_an_action_deletes_its_secrets(store: &dyn MetadataStore) {
    two_orgs(store).await;
    store
        .insert_action(&action(ACME, "a1", "etl", 100))
        .await
        .unwrap();
    store
        .put_secret(&secret(ACME, "a1", "TOKEN", "a1", 1))
        .await
        .unwrap();
    store
        .put_secret(&secret(ACME, "", "TOKEN", "org", 1))
        .await
        .unwrap();
    let elsewhere = store.delete_action(GLOBEX, "a1").await;
    assert!(
        matches!(elsewhere, Err(StoreError::NotFound(_))),
        "{elsewhere:?}"
    );
    assert_eq!(names(store, ACME, "a1").await, ["TOKEN"]);

    store.delete_action(ACME, "a1").await.unwrap();
    let left: Vec<String> = store
        .all_secrets()
        .await
        .unwrap()
        .into_iter()
        .map(|s| format!("{}/{}", s.action_id, s.name))
        .collect();
    assert_eq!(left, ["/TOKEN"]);
}

pub(crate) async fn resealing_is_compare_and_set(store: &dyn MetadataStore) {
    two_orgs(store).await;
    let stored = secret(ACME, "", "TOKEN", "old-key", 1_000);
    store.put_secret(&stored).await.unwrap();
    let resealed = SecretRecord {
        sealed: sealed("new-key"),
        ..stored.clone()
    };
    assert!(
        store
            .reseal_secret(&resealed, &stored.sealed)
            .await
            .unwrap()
    );
    assert_eq!(
        store.all_secrets().await.unwrap(),
        std::slice::from_ref(&resealed)
    );

    // A second replica resealing from the same old value finds it gone and changes nothing.
    let late = SecretRecord {
        sealed: sealed("late"),
        ..stored.clone()
    };
    assert!(!store.reseal_secret(&late, &stored.sealed).await.unwrap());
    assert_eq!(store.all_secrets().await.unwrap(), [resealed]);
    let missing = secret(ACME, "", "NOPE", "x", 1);
    assert!(
        !store
            .reseal_secret(&missing, &missing.sealed)
            .await
            .unwrap()
    );
}

pub(crate) async fn origin_cluster_urls_are_set_cleared_and_listed(store: &dyn MetadataStore) {
    two_orgs(store).await;
    assert_eq!(store.origin_cluster_url(ACME).await.unwrap(), None);
    store
        .set_origin_cluster_url(ACME, Some("https://o2.example.com"))
        .await
        .unwrap();
    assert_eq!(
        store.origin_cluster_url(ACME).await.unwrap().as_deref(),
        Some("https://o2.example.com")
    );
    assert_eq!(store.origin_cluster_url(GLOBEX).await.unwrap(), None);
    let listed: Vec<(String, Option<String>)> = store
        .list_orgs()
        .await
        .unwrap()
        .into_iter()
        .map(|org| (org.name, org.origin_cluster_url))
        .collect();
    assert_eq!(
        listed,
        [
            (ACME.to_string(), Some("https://o2.example.com".to_string())),
            (GLOBEX.to_string(), None),
        ]
    );
    assert_eq!(
        store
            .ensure_org(ACME)
            .await
            .unwrap()
            .origin_cluster_url
            .as_deref(),
        Some("https://o2.example.com")
    );

    store.set_origin_cluster_url(ACME, None).await.unwrap();
    assert_eq!(store.origin_cluster_url(ACME).await.unwrap(), None);
    let missing = store
        .set_origin_cluster_url("ghost", Some("https://x"))
        .await;
    assert!(
        matches!(missing, Err(StoreError::NotFound(ref what)) if what.contains("ghost")),
        "{missing:?}"
    );
    assert_eq!(store.origin_cluster_url("ghost").await.unwrap(), None);
}
