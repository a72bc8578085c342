//! Identities and roles over HTTP: their validation, and what deleting or changing them does
//! to logins and to the runs of actions bound to them.

use crate::common::api::Api;
use crate::common::client::Creds;
use crate::common::files::data_dir;
use crate::common::forms::service_action;
use crate::common::process::Server;
use crate::common::zips::zip_main;
use serde_json::{Value, json};

const ORG: &str = "default";
const ECHO: &str = "def main(data, logger):\n    return data\n";

#[test]
fn users_are_validated_promoted_and_removed() {
    let data = data_dir();
    let server = Server::start(data.path());
    let root = Creds::root();
    let users = format!("/api/{ORG}/users");

    server
        .post(
            &users,
            &root,
            &json!({"email": "short@example.com", "password": "elevenchars", "role": "member"}),
        )
        .expect_error(400, "the password must be at least 12 characters");
    server
        .post(
            &users,
            &root,
            &json!({"email": "not-an-email", "password": "long-enough-password", "role": "member"}),
        )
        .expect_error(400, "\"not-an-email\" is not a valid email address");
    server
        .post(
            &users,
            &root,
            &json!({"email": "x@example.com", "password": "long-enough-password", "role": "owner"}),
        )
        .expect_error_prefix(422, "invalid JSON body: ");

    let member = server.create_user(ORG, &root, "member@example.com", "member");
    let listed = server.get(&users, &root).ok_json();
    let entry = listed
        .as_array()
        .expect("a list")
        .iter()
        .find(|u| u["email"] == json!("member@example.com"))
        .cloned()
        .unwrap_or_else(|| panic!("the member is not listed: {listed}"));
    assert_eq!(entry["role"], json!("member"), "{listed}");
    assert!(entry.get("password").is_none() && entry.get("password_hash").is_none());
    server
        .get(&format!("/api/{ORG}/roles"), &member)
        .expect_error(403, "Unauthorized Access");

    // Adding an existing user again changes their standing (their password stays).
    let promoted = server
        .post(
            &users,
            &root,
            &json!({"email": "member@example.com", "password": "ignored-for-existing", "role": "admin"}),
        )
        .ok_json();
    assert_eq!(
        promoted,
        json!({"email": "member@example.com", "role": "admin"})
    );
    server.get(&format!("/api/{ORG}/roles"), &member).ok_json();
    server
        .get(
            &format!("/api/{ORG}/roles"),
            &Creds::new("member@example.com", "ignored-for-existing"),
        )
        .expect_error(401, "Unauthorized Access");
    // An organization administrator is not root.
    server
        .get("/api/organizations", &member)
        .expect_error(403, "Unauthorized Access");

    // Removed from the organization: known, but refused there.
    let removed = server
        .delete(&format!("{users}/member@example.com"), &root)
        .ok_json();
    assert_eq!(
        removed,
        json!({"code": 200, "message": "User removed from the organization"})
    );
    server
        .get(&format!("/api/{ORG}/actions"), &member)
        .expect_error(403, "Unauthorized Access");
    server
        .delete(&format!("{users}/member@example.com"), &root)
        .expect_status(404);

    // Logins ignore case.
    server
        .get(
            &format!("/api/{ORG}/actions"),
            &Creds::new("ROOT@Example.COM", &root.secret),
        )
        .ok_json();
}

#[test]
fn service_accounts_and_roles_are_validated_and_their_removal_takes_effect() {
    let data = data_dir();
    let server = Server::start(data.path());
    let root = Creds::root();
    let runner = server.create_service_account(ORG, &root, "runner@example.com");
    server
        .post(
            &format!("/api/{ORG}/service_accounts"),
            &root,
            &json!({"email": "runner@example.com"}),
        )
        .expect_status(409);
    server
        .post(
            &format!("/api/{ORG}/service_accounts"),
            &root,
            &json!({"email": "no at sign"}),
        )
        .expect_error(400, "\"no at sign\" is not a valid email address");
    server
        .get(
            &format!("/api/{ORG}/service_accounts/ghost@example.com"),
            &root,
        )
        .expect_error(404, "service account ghost@example.com not found");

    // Role validation.
    let roles = format!("/api/{ORG}/roles");
    server
        .post(&roles, &root, &json!({"role": "bad name"}))
        .expect_error(
            400,
            "role name \"bad name\" is not valid: use 1 to 64 letters, digits, '_' or '-'",
        );
    server
        .post(&roles, &root, &json!({"role": "runners"}))
        .ok_json();
    server
        .post(&roles, &root, &json!({"role": "runners"}))
        .expect_status(409);
    server
        .put(
            &format!("{roles}/runners"),
            &root,
            &json!({"add": [{"resource": "action_scripts", "object": "some-id", "verb": "LIST"}]}),
        )
        .expect_error(
            400,
            "LIST applies to all objects of a kind; grant it with object \"_all\", not \"some-id\"",
        );
    server
        .put(
            &format!("{roles}/runners"),
            &root,
            &json!({"add_users": ["ghost@example.com"]}),
        )
        .expect_error(
            400,
            "ghost@example.com is neither a service account nor a user of organization default",
        );
    server
        .put(
            &format!("{roles}/runners"),
            &root,
            &json!({"add": [{"resource": "action_scripts", "object": "_all", "verb": "EXECUTE"}]}),
        )
        .expect_error_prefix(422, "invalid JSON body: ");
    server
        .get(&format!("{roles}/nope"), &root)
        .expect_error(404, "role nope not found");
    let unchanged = server.get(&format!("{roles}/runners"), &root).ok_json();
    assert_eq!(
        unchanged["permissions"],
        json!([]),
        "refused changes change nothing"
    );
    assert_eq!(unchanged["principals"], json!([]));

    // Grants, then their removal, take effect on the next run.
    server
        .put(
            &format!("{roles}/runners"),
            &root,
            &json!({
                "add": [
                    {"resource": "action_scripts", "object": "_all", "verb": "GET"},
                    {"resource": "action_scripts", "object": "_all", "verb": "LIST"},
                ],
                "add_users": ["runner@example.com"],
            }),
        )
        .ok_json();
    let id = server.create_action(
        ORG,
        &root,
        &service_action("echo", &zip_main(ECHO), "runner@example.com"),
    );
    let run = || server.test_run(ORG, &root, &id, &json!([{"n": 1}]));
    assert_eq!(run().ok_json()["outcome"], json!("ok"));
    let role = server
        .put(
            &format!("{roles}/runners"),
            &root,
            &json!({"remove": [{"resource": "action_scripts", "object": "_all", "verb": "GET"}]}),
        )
        .ok_json();
    assert_eq!(
        role["permissions"],
        json!([{"resource": "action_scripts", "object": "_all", "verb": "LIST"}])
    );
    assert_eq!(run().json()["outcome"], json!("permission_denied"));
    server
        .put(
            &format!("{roles}/runners"),
            &root,
            &json!({"add": [{"resource": "action_scripts", "object": "_all", "verb": "GET"}]}),
        )
        .ok_json();
    assert_eq!(run().ok_json()["outcome"], json!("ok"));
    server
        .get(&format!("/api/{ORG}/actions"), &runner)
        .ok_json();

    // Deleting the service account: its token stops working and it leaves its roles; an
    // account created again under the same email starts with nothing.
    let deleted = server
        .delete(
            &format!("/api/{ORG}/service_accounts/runner@example.com"),
            &root,
        )
        .ok_json();
    assert_eq!(
        deleted,
        json!({"code": 200, "message": "Service account deleted"})
    );
    server
        .get(&format!("/api/{ORG}/actions"), &runner)
        .expect_error(401, "Unauthorized Access");
    let role = server.get(&format!("{roles}/runners"), &root).ok_json();
    assert_eq!(role["principals"], json!([]), "{role}");
    assert_eq!(run().json()["outcome"], json!("permission_denied"));
    let again = server.create_service_account(ORG, &root, "runner@example.com");
    assert_ne!(again.secret, runner.secret);
    assert_eq!(run().json()["outcome"], json!("permission_denied"));
    server
        .get(&format!("/api/{ORG}/actions"), &again)
        .expect_error(403, "Unauthorized Access");

    // Deleting a role takes its grants away.
    server
        .put(
            &format!("{roles}/runners"),
            &root,
            &json!({"add_users": ["runner@example.com"]}),
        )
        .ok_json();
    assert_eq!(run().ok_json()["outcome"], json!("ok"));
    let gone = server.delete(&format!("{roles}/runners"), &root).ok_json();
    assert_eq!(gone, json!({"code": 200, "message": "Role deleted"}));
    server
        .get(&format!("{roles}/runners"), &root)
        .expect_error(404, "role runners not found");
    assert_eq!(run().json()["outcome"], json!("permission_denied"));
    assert_eq!(server.get(&roles, &root).ok_json(), Value::Array(vec![]));
}

#[test]
fn failed_sign_ins_are_throttled_per_account_without_telling_users_apart() {
    let data = data_dir();
    let server = Server::start(data.path());
    let root = Creds::root();
    let actions = format!("/api/{ORG}/actions");
    server.get(&actions, &root).expect_status(200);
    let victim = server.create_user(ORG, &root, "victim@example.com", "admin");
    let guesses = [
        Creds::new("victim@example.com", "not-the-password"),
        Creds::new("nobody@example.com", "not-the-password"),
    ];
    for guess in &guesses {
        for _ in 0..10 {
            server
                .get(&actions, guess)
                .expect_error(401, "Unauthorized Access");
        }
        let throttled = server.get(&actions, guess);
        throttled.expect_error_prefix(429, "too many failed sign-ins for this account");
        let seconds: u64 = throttled
            .header("retry-after")
            .and_then(|value| value.parse().ok())
            .unwrap_or_else(|| panic!("no Retry-After: {}", throttled.text()));
        assert!((1..=900).contains(&seconds), "Retry-After {seconds}");
    }
    // The right password is refused too while the account is throttled (no password is
    // checked); a client whose password was verified before keeps working.
    server
        .get(&actions, &victim)
        .expect_error_prefix(429, "too many failed sign-ins");
    server.get(&actions, &root).expect_status(200);
}

#[test]
fn administrators_read_who_changed_what_in_the_audit_log() {
    let data = data_dir();
    let server = Server::start(data.path());
    let root = Creds::root();
    let bot = server.create_service_account(ORG, &root, "bot@example.com");
    let rotated = server
        .put(
            &format!("/api/{ORG}/service_accounts/bot@example.com?rotateToken=true"),
            &root,
            &json!({}),
        )
        .ok_json();
    let member = server.create_user(ORG, &root, "member@example.com", "member");
    let echo = service_action("echo", &zip_main(ECHO), "bot@example.com");
    let id = server.create_action(ORG, &root, &echo);
    server
        .delete(
            &format!("/api/{ORG}/service_accounts/bot@example.com"),
            &member,
        )
        .expect_error(403, "Unauthorized Access");
    server
        .delete(
            &format!("/api/{ORG}/service_accounts/bot@example.com"),
            &root,
        )
        .expect_status(200);
    // A run is no change: the run history records it, the audit log does not.
    server.test_run(ORG, &root, &id, &json!([{"a": 1}]));

    let audit = format!("/api/{ORG}/audit");
    server
        .get(&audit, &member)
        .expect_error(403, "Unauthorized Access");
    let log = server.get(&audit, &root).ok_json();
    let seen: Vec<(String, String, u64)> = log["events"]
        .as_array()
        .unwrap_or_else(|| panic!("no events: {log}"))
        .iter()
        .map(|event| {
            (
                event["operation"].as_str().unwrap_or_default().to_string(),
                event["actor"].as_str().unwrap_or_default().to_string(),
                event["status"].as_u64().unwrap_or_default(),
            )
        })
        .collect();
    let expected = [
        ("delete_service_account", "root@example.com", 200),
        ("delete_service_account", "member@example.com", 403),
        ("upload_action", "root@example.com", 200),
        ("create_user", "root@example.com", 200),
        ("rotate_service_account_token", "root@example.com", 200),
        ("create_service_account", "root@example.com", 200),
    ];
    let expected: Vec<(String, String, u64)> = expected
        .iter()
        .map(|(op, actor, status)| (op.to_string(), actor.to_string(), *status))
        .collect();
    assert_eq!(seen, expected, "{log}");
    let event = &log["events"][0];
    assert_eq!(
        event["path"],
        json!(format!("/api/{ORG}/service_accounts/bot@example.com"))
    );
    assert_eq!(event["method"], json!("DELETE"));
    assert_eq!(event["actor_kind"], json!("root"));
    let text = log.to_string();
    let token = rotated["token"].as_str().unwrap_or_default();
    assert!(!token.is_empty() && !text.contains(token) && !text.contains(&bot.secret));
    assert!(
        !text.contains("password-of-"),
        "no body reaches the log: {log}"
    );
    server
        .get(&format!("{audit}?per_page=0"), &root)
        .expect_error(400, "page starts at 1 and per_page is between 1 and 500");
}
