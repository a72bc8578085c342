//! Secrets through the real `vivarium serve`: who may list, store and delete them, how names
//! and values are checked, that no answer, log line or database byte holds a value, what a
//! run sees (the action's variables, then the organization's secrets, then the action's, and
//! the origin cluster URL), that values are masked in what a run leaves behind, and that a
//! key rotation seals everything again while a wrong key names the secret it cannot open.

use std::time::Duration;

use crate::common::api::Api;
use crate::common::client::{Creds, base64};
use crate::common::files::data_dir;
use crate::common::forms::service_action;
use crate::common::process::{Options, Server};
use crate::common::wait_for;
use crate::common::zips::zip_main;
use serde_json::{Value, json};

const ORG: &str = "default";
const RUNNER: &str = "runner@example.com";

/// An action that reports what it sees of its environment, prints its token (plain and in
/// base64) and, when asked, fails with the token in its error.
const REPORTER: &str = r#"
import base64, os

NAMES = ("MODE", "SHORT", "ORIGIN_CLUSTER_TOKEN", "ORIGIN_CLUSTER_URL", "API_TOKEN")

def main(data, logger):
    token = os.environ.get("ORIGIN_CLUSTER_TOKEN", "")
    print("token is", token)
    logger.info("encoded %s", base64.b64encode(token.encode()).decode())
    logger.info("short %s", os.environ.get("SHORT"))
    if data and data[0].get("fail"):
        raise ValueError("refused with " + token)
    return [{
        "names": sorted(name for name in NAMES if name in os.environ),
        "mode": os.environ.get("MODE"),
        "url": os.environ.get("ORIGIN_CLUSTER_URL"),
        "token_matches": bool(data) and token == data[0].get("expect"),
        "api_token_matches": bool(data) and os.environ.get("API_TOKEN") == data[0].get("api"),
    }]
"#;

/// Gives `RUNNER` GET on every action script of `org`.
fn add_runner(server: &Server, org: &str) {
    let root = Creds::root();
    server.create_runner(org, &root, RUNNER);
}

/// Uploads the reporter action with `environment` as its variables; answers its id.
fn reporter(server: &Server, org: &str, environment: &Value) -> String {
    let form = service_action("reporter", &zip_main(REPORTER), RUNNER)
        .text("environment_variables", &environment.to_string());
    server.create_action(org, &Creds::root(), &form)
}

/// `PUT` of a secret's value at `path`.
fn put_secret(
    server: &Server,
    path: &str,
    auth: &Creds,
    value: &str,
) -> crate::common::client::Reply {
    server.put(path, auth, &json!({ "value": value }))
}

/// The log messages of a run answer or record.
fn messages(run: &Value) -> Vec<String> {
    run["logs"]
        .as_array()
        .unwrap_or_else(|| panic!("no logs in {run}"))
        .iter()
        .map(|line| line["message"].as_str().unwrap_or_default().to_string())
        .collect()
}

/// The stored record of the run an answer names.
fn stored_run(server: &Server, org: &str, id: &str, answer: &Value) -> Value {
    let run_id = answer["run_id"].as_str().expect("a run id");
    server
        .get(
            &format!("/api/{org}/actions/{id}/runs/{run_id}"),
            &Creds::root(),
        )
        .ok_json()
}

/// Every file of the SQLite database (the WAL included), concatenated.
fn database_bytes(server: &Server) -> Vec<u8> {
    let mut bytes = Vec::new();
    for entry in std::fs::read_dir(server.data_dir()).expect("the data folder") {
        let path = entry.expect("an entry").path();
        let is_database = path
            .file_name()
            .and_then(|name| name.to_str())
            .is_some_and(|name| name.starts_with("vivarium.db"));
        if is_database {
            bytes.extend(std::fs::read(&path).expect("a database file"));
        }
    }
    assert!(!bytes.is_empty(), "no database in {:?}", server.data_dir());
    bytes
}

/// Waits until the server's log holds `text` (its stderr is read while it runs).
#[track_caller]
fn logged(server: &Server, text: &str) {
    wait_for(Duration::from_secs(10), text, || {
        server.stderr().contains(text).then_some(())
    });
}

/// Whether `haystack` holds the bytes of `needle`.
fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|window| window == needle.as_bytes())
}

#[test]
fn secret_routes_check_rights_and_inputs_and_never_show_a_value() {
    let data = data_dir();
    let server = Server::start(data.path());
    let root = Creds::root();
    add_runner(&server, ORG);
    let id = reporter(&server, ORG, &json!({}));
    let admin = server.create_user(ORG, &root, "admin@example.com", "admin");
    let nobody = server.create_user(ORG, &root, "nobody@example.com", "member");
    let viewer = server.create_user(ORG, &root, "viewer@example.com", "member");
    let editor = server.create_user(ORG, &root, "editor@example.com", "member");
    server.create_role(ORG, &root, "viewers", &[("GET", &id)], &[&viewer.email]);
    server.create_role(
        ORG,
        &root,
        "editors",
        &[("GET", &id), ("PUT", &id)],
        &[&editor.email],
    );
    let org_secrets = format!("/api/{ORG}/secrets");
    let action_secrets = format!("/api/{ORG}/actions/{id}/secrets");

    // The organization's secrets are for its administrators.
    for caller in [&nobody, &viewer, &editor] {
        server
            .get(&org_secrets, caller)
            .expect_error(403, "Unauthorized Access");
        put_secret(&server, &format!("{org_secrets}/TOKEN"), caller, "value")
            .expect_error(403, "Unauthorized Access");
        server
            .delete(&format!("{org_secrets}/TOKEN"), caller)
            .expect_error(403, "Unauthorized Access");
    }
    let saved = put_secret(
        &server,
        &format!("{org_secrets}/TOKEN"),
        &admin,
        "org-wide-value",
    );
    assert_eq!(
        saved.ok_json(),
        json!({"code": 200, "message": "Secret saved"})
    );

    // An action's: GET on it to list them, PUT on it to change them.
    server
        .get(&action_secrets, &nobody)
        .expect_error(403, "Unauthorized Access");
    server.get(&action_secrets, &viewer).ok_json();
    put_secret(
        &server,
        &format!("{action_secrets}/API_TOKEN"),
        &viewer,
        "value",
    )
    .expect_error(403, "Unauthorized Access");
    server
        .delete(&format!("{action_secrets}/API_TOKEN"), &viewer)
        .expect_error(403, "Unauthorized Access");
    let distinctive = "Zebra-Quartz-Plaintext-7f3a9c";
    put_secret(
        &server,
        &format!("{action_secrets}/API_TOKEN"),
        &editor,
        distinctive,
    )
    .ok_json();
    put_secret(
        &server,
        &format!("{action_secrets}/SPARE"),
        &editor,
        "spare",
    )
    .ok_json();
    assert_eq!(
        server
            .delete(&format!("{action_secrets}/SPARE"), &editor)
            .ok_json(),
        json!({"code": 200, "message": "Secret deleted"})
    );
    server
        .delete(&format!("{action_secrets}/SPARE"), &editor)
        .expect_error(404, "secret SPARE not found");
    server
        .get(&format!("/api/{ORG}/actions/no-such-id/secrets"), &root)
        .expect_error(404, "action no-such-id not found");
    put_secret(
        &server,
        &format!("/api/{ORG}/actions/no-such-id/secrets/API_TOKEN"),
        &root,
        "value",
    )
    .expect_error(404, "action no-such-id not found");

    // Names and values are checked, with what to do.
    put_secret(&server, &format!("{org_secrets}/api_token"), &root, "value").expect_error(
        400,
        "secret name \"api_token\" is not valid: it becomes an environment variable, so use an uppercase letter followed by uppercase letters, digits or '_' (such as API_TOKEN)",
    );
    put_secret(&server, &format!("{org_secrets}/ORIGIN_CLUSTER_URL"), &root, "https://x")
        .expect_error(
            400,
            "ORIGIN_CLUSTER_URL is not a secret: the root user sets it for the organization with PUT /api/organizations/{org}, the operator for the service with origin_cluster_url",
        );
    put_secret(&server, &format!("{org_secrets}/TOKEN"), &root, "").expect_error(
        400,
        "the secret's value is empty: give the secret as a non-empty string in \"value\"",
    );
    put_secret(&server, &format!("{org_secrets}/TOKEN"), &root, "a\0b").expect_error(
        400,
        "the secret's value contains a NUL character, which an environment variable cannot hold; remove it",
    );
    put_secret(
        &server,
        &format!("{org_secrets}/TOKEN"),
        &root,
        &"x".repeat(64 * 1024 + 1),
    )
    .expect_error(
        400,
        "the secret's value is 65537 bytes; at most 64 KiB are accepted: keep a token or a key here, not a file",
    );
    server
        .put(&format!("{org_secrets}/TOKEN"), &root, &json!({"value": 5}))
        .expect_error_prefix(422, "invalid JSON body: ");
    server
        .put(
            &format!("{org_secrets}/TOKEN"),
            &root,
            &json!({"value": "v", "shown": true}),
        )
        .expect_error_prefix(422, "invalid JSON body: ");

    // Listings show names and times only; nothing ever shows a value.
    let listed = server.get(&org_secrets, &root).ok_json();
    let entries = listed["data"].as_array().expect("a data list");
    assert_eq!(entries.len(), 1, "{listed}");
    assert_eq!(entries[0]["name"], json!("TOKEN"));
    let keys: Vec<&str> = entries[0]
        .as_object()
        .expect("an object")
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(keys, ["name", "created_at", "updated_at"], "{listed}");
    let own = server.get(&action_secrets, &viewer).ok_json();
    assert_eq!(own["data"].as_array().map(Vec::len), Some(1), "{own}");
    assert_eq!(own["data"][0]["name"], json!("API_TOKEN"));
    let everything = [
        listed.to_string(),
        own.to_string(),
        server.action(ORG, &id).to_string(),
        json!(server.actions(ORG)).to_string(),
        server.get("/api/organizations", &root).text(),
    ]
    .join("\n");
    assert!(!everything.contains(distinctive), "{everything}");
    assert!(!everything.contains("org-wide-value"), "{everything}");
    assert!(
        !server.stderr().contains(distinctive),
        "the value reached the log{}",
        server.dump()
    );

    // The database holds neither the value nor its base64; the key is not next to it in any
    // readable form but its own file, which only the owner may read.
    let stored = database_bytes(&server);
    assert!(!contains(&stored, distinctive));
    assert!(!contains(&stored, &base64(distinctive.as_bytes())));
    assert!(contains(&stored, "API_TOKEN"), "the secret was not stored");
    let key_file = data.path().join("secrets.key");
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(&key_file)
            .expect("the key file")
            .permissions(),
    );
    assert_eq!(mode & 0o777, 0o600);
    logged(&server, "secrets.key");

    // Deleting the action takes its secrets with it (the store's suite checks the rows).
    server
        .delete(&format!("/api/{ORG}/actions/{id}"), &root)
        .ok_json();
    server
        .get(&action_secrets, &root)
        .expect_error(404, &format!("action {id} not found"));
}

#[test]
fn runs_see_secrets_over_variables_and_the_origin_cluster_with_values_masked() {
    let data = data_dir();
    let server = Server::start_with(
        data.path(),
        Options::default().config("origin_cluster_url = \"https://service.example.com\"\n"),
    );
    let root = Creds::root();
    add_runner(&server, ORG);
    let id = reporter(
        &server,
        ORG,
        &json!({"MODE": "from-variables", "ORIGIN_CLUSTER_TOKEN": "variable-token-loses"}),
    );
    let token = "action-token-wins-4711";
    for (path, value) in [
        (format!("/api/{ORG}/secrets/MODE"), "from-org-secret"),
        (format!("/api/{ORG}/secrets/SHORT"), "abc"),
        (
            format!("/api/{ORG}/secrets/ORIGIN_CLUSTER_TOKEN"),
            "org-token-loses",
        ),
        (
            format!("/api/{ORG}/actions/{id}/secrets/ORIGIN_CLUSTER_TOKEN"),
            token,
        ),
    ] {
        put_secret(&server, &path, &root, value).ok_json();
    }

    let answer = server
        .test_run(ORG, &root, &id, &json!([{ "expect": token }]))
        .ok_json();
    assert_eq!(answer["outcome"], json!("ok"), "{answer}");
    let seen = &answer["result"][0];
    assert_eq!(
        seen["names"],
        json!([
            "MODE",
            "ORIGIN_CLUSTER_TOKEN",
            "ORIGIN_CLUSTER_URL",
            "SHORT"
        ])
    );
    assert_eq!(seen["mode"], json!("from-org-secret"));
    assert_eq!(seen["url"], json!("https://service.example.com"));
    assert_eq!(seen["token_matches"], json!(true), "{answer}");
    for run in [answer.clone(), stored_run(&server, ORG, &id, &answer)] {
        let logged = messages(&run);
        assert!(logged.iter().any(|m| m == "token is ***"), "{logged:?}");
        assert!(logged.iter().any(|m| m == "encoded ***"), "{logged:?}");
        assert!(logged.iter().any(|m| m == "short abc"), "{logged:?}");
        assert!(!run.to_string().contains(token), "{run}");
        assert!(
            !run.to_string().contains(&base64(token.as_bytes())),
            "{run}"
        );
    }

    // A failure's message and traceback are masked too.
    let failed = server
        .test_run(ORG, &root, &id, &json!([{ "fail": true }]))
        .ok_json();
    assert_eq!(failed["outcome"], json!("script_error"), "{failed}");
    assert_eq!(failed["error"]["message"], json!("refused with ***"));
    let record = stored_run(&server, ORG, &id, &failed);
    assert_eq!(record["error_message"], json!("refused with ***"));
    for text in [failed.to_string(), record.to_string()] {
        assert!(!text.contains(token), "{text}");
    }

    // An organization's own origin cluster URL wins over the service's, until cleared.
    let org_url = "https://org.example.com/o2";
    let admin = server.create_user(ORG, &root, "admin@example.com", "admin");
    let settings = format!("/api/organizations/{ORG}");
    server
        .put(&settings, &admin, &json!({ "origin_cluster_url": org_url }))
        .expect_error(403, "Unauthorized Access");
    server
        .put(&settings, &root, &json!({ "origin_cluster_url": "ftp://org.example.com" }))
        .expect_error(
            400,
            "origin_cluster_url \"ftp://org.example.com\" must be an http or https URL with a host, such as https://o2.example.com",
        );
    server
        .put(
            "/api/organizations/nowhere",
            &root,
            &json!({ "origin_cluster_url": org_url }),
        )
        .expect_error(404, "organization \"nowhere\" not found");
    let updated = server
        .put(&settings, &root, &json!({ "origin_cluster_url": org_url }))
        .ok_json();
    assert_eq!(updated["name"], json!(ORG));
    assert_eq!(updated["origin_cluster_url"], json!(org_url));
    let listed = server.get("/api/organizations", &root).ok_json();
    assert!(
        listed
            .as_array()
            .expect("a list")
            .iter()
            .any(|org| org["name"] == json!(ORG) && org["origin_cluster_url"] == json!(org_url)),
        "{listed}"
    );
    let answer = server.test_run(ORG, &root, &id, &json!([{}])).ok_json();
    assert_eq!(answer["result"][0]["url"], json!(org_url), "{answer}");
    server
        .put(&settings, &root, &json!({ "origin_cluster_url": null }))
        .ok_json();
    let answer = server.test_run(ORG, &root, &id, &json!([{}])).ok_json();
    assert_eq!(
        answer["result"][0]["url"],
        json!("https://service.example.com")
    );

    // Another organization sees none of these secrets: its token is absent, not empty.
    server
        .post("/api/organizations", &root, &json!({ "name": "globex" }))
        .ok_json();
    add_runner(&server, "globex");
    let other = reporter(&server, "globex", &json!({}));
    let answer = server
        .test_run("globex", &root, &other, &json!([{}]))
        .ok_json();
    assert_eq!(
        answer["result"][0]["names"],
        json!(["ORIGIN_CLUSTER_URL"]),
        "{answer}"
    );
}

/// The base64 of 32 bytes all `fill`, as a key's configuration line.
fn key_line(setting: &str, fill: u8) -> String {
    format!("{setting} = \"{}\"\n", base64(&[fill; 32]))
}

/// Runs the reporter and answers whether it saw `API_TOKEN` as `value`.
fn sees_api_token(server: &Server, id: &str, value: &str) -> bool {
    let answer = server
        .test_run(ORG, &Creds::root(), id, &json!([{ "api": value }]))
        .ok_json();
    assert_eq!(answer["result"][0]["url"], Value::Null, "{answer}");
    answer["result"][0]["api_token_matches"] == json!(true)
}

#[test]
fn a_key_rotation_reseals_every_secret_and_a_wrong_key_names_the_secret() {
    let data = data_dir();
    let (old, new) = (key_line("secrets_key", 1), key_line("secrets_key", 2));
    let previous = format!("secrets_previous_keys = [\"{}\"]\n", base64(&[1; 32]));
    let value = "rotated-api-token-value";

    let mut server = Server::start_with(data.path(), Options::default().config(&old));
    add_runner(&server, ORG);
    let id = reporter(&server, ORG, &json!({}));
    put_secret(
        &server,
        &format!("/api/{ORG}/secrets/API_TOKEN"),
        &Creds::root(),
        value,
    )
    .ok_json();
    assert!(sees_api_token(&server, &id, value));
    assert!(
        !data.path().join("secrets.key").exists(),
        "a configured key needs no key file"
    );
    server.terminate();

    // The new key with the old one as previous: everything is sealed again at start.
    let mut server = Server::start_with(
        data.path(),
        Options::default().config(&format!("{new}{previous}")),
    );
    logged(&server, "sealed again with the current one");
    assert!(sees_api_token(&server, &id, value));
    server.terminate();

    // So the old key can go.
    let mut server = Server::start_with(data.path(), Options::default().config(&new));
    assert!(sees_api_token(&server, &id, value));
    server.terminate();

    // A wrong key fails the run with a message naming the secret and the settings.
    let server = Server::start_with(data.path(), Options::default().config(&old));
    let message = server
        .test_run(ORG, &Creds::root(), &id, &json!([{}]))
        .expect_error_prefix(
            500,
            "secret API_TOKEN of organization default cannot be opened: it was sealed with key ",
        );
    assert!(
        message.ends_with(
            "check secrets_key, secrets_key_file and secrets_previous_keys in the service's configuration"
        ),
        "{message}"
    );
    logged(&server, "cannot be sealed with the current key");
    assert!(!server.stderr().contains(value), "{}", server.dump());
}
