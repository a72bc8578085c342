//! Dependencies through the service: resolved and installed at upload time from an offline
//! wheelhouse, shown with the action, imported by its runs; a bad set fails the upload and
//! stores nothing.

use crate::common::api::Api;
use crate::common::client::Creds;
use crate::common::files::data_dir;
use crate::common::forms::Form;
use crate::common::process::{Options, Server};
use crate::common::wheels::{CLOSED_INDEX, pyproject, wheel, wheelhouse};
use crate::common::zips::zip_entries;
use serde_json::json;

const ORG: &str = "default";
const ACCOUNT: &str = "runner@example.com";
const GREET_MAIN: &str = "import greeting, helper\n\ndef main(data, logger):\n    return [{'greeting': greeting.greet(data[0]['who']), 'helper': helper.VERSION}]\n";

fn server_with(house: &std::path::Path, data: &std::path::Path) -> Server {
    let config = format!(
        "package_index = \"{CLOSED_INDEX}\"\nwheelhouse = {:?}\n",
        house.display().to_string()
    );
    let server = Server::start_with(data, Options::default().config(&config));
    let root = Creds::root();
    server.create_runner(ORG, &root, ACCOUNT);
    server
}

fn action_form(name: &str, dependencies: &[&str]) -> Form {
    let project = pyproject(dependencies);
    let zip = zip_entries(
        &[
            ("main.py", GREET_MAIN.as_bytes()),
            ("pyproject.toml", project.as_bytes()),
        ],
        zip::CompressionMethod::Deflated,
    );
    Form::new()
        .text("name", name)
        .text("execution_details", "service")
        .text("service_account", ACCOUNT)
        .file("file", "action.zip", &zip)
}

#[test]
fn dependencies_are_installed_at_upload_and_imported_by_runs() {
    let house = wheelhouse(&[
        wheel("greeting", "1.0", &["helper>=2"], "py3-none-any"),
        wheel("helper", "2.1", &[], "py3-none-any"),
    ]);
    let data = data_dir();
    let server = server_with(house.path(), data.path());
    let root = Creds::root();

    let answer = server
        .upload(ORG, &root, &action_form("greeter", &["greeting"]))
        .ok_json();
    let id = answer["uuid"].as_str().expect("uuid").to_string();
    let locked: Vec<&str> = answer["dependencies"]
        .as_array()
        .expect("dependencies")
        .iter()
        .filter_map(|p| p["name"].as_str())
        .collect();
    assert_eq!(locked, ["greeting", "helper"], "{answer}");
    assert_eq!(
        server.action(ORG, &id)["dependencies"],
        answer["dependencies"]
    );

    let run = server
        .test_run(ORG, &root, &id, &json!([{"who": "the service"}]))
        .ok_json();
    assert_eq!(run["outcome"], json!("ok"), "{run}");
    assert_eq!(
        run["result"],
        json!([{"greeting": "hello the service from greeting", "helper": "2.1"}])
    );
}

#[test]
fn a_bad_dependency_set_fails_the_upload_and_stores_nothing() {
    let house = wheelhouse(&[wheel(
        "fastmath",
        "1.0",
        &[],
        "cp312-cp312-manylinux_2_17_x86_64",
    )]);
    let data = data_dir();
    let server = server_with(house.path(), data.path());
    let reply = server.upload(ORG, &Creds::root(), &action_form("fast", &["fastmath"]));
    reply.expect_status(400);
    let message = reply.json()["message"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(
        message
            .starts_with("the action's dependencies were refused: fastmath: no pure-Python wheel"),
        "{message}"
    );
    assert!(server.actions(ORG).is_empty());
    assert!(server.blob_files(ORG).is_empty());
}
