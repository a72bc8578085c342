//! The service's API as the tests call it, over whichever transport: a `vivarium serve`
//! process ([`super::process::Server`]) or the router in-process
//! ([`super::in_process::InProcess`]). A transport sends one request; everything else is
//! written once here.

use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use super::client::{Creds, Reply};
use super::forms::Form;

/// Calls of the service's HTTP API.
pub trait Api {
    /// Sends one request with exactly these headers (beyond what HTTP needs) and body; fails
    /// the test when no answer comes.
    fn request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<(&str, Vec<u8>)>,
    ) -> Reply;

    /// The data folder the service keeps its database and blobs in.
    fn data_dir(&self) -> &Path;

    /// A request with optional credentials and an optional JSON body.
    fn call(&self, method: &str, path: &str, auth: Option<&Creds>, body: Option<&Value>) -> Reply {
        let header = auth.map(Creds::header);
        let headers: Vec<(&str, &str)> = header
            .as_deref()
            .map(|h| vec![("authorization", h)])
            .unwrap_or_default();
        let body = body.map(|value| ("application/json", value.to_string().into_bytes()));
        self.request(method, path, &headers, body)
    }

    /// `GET path`.
    fn get(&self, path: &str, auth: &Creds) -> Reply {
        self.call("GET", path, Some(auth), None)
    }

    /// `POST path` with a JSON body.
    fn post(&self, path: &str, auth: &Creds, body: &Value) -> Reply {
        self.call("POST", path, Some(auth), Some(body))
    }

    /// `PUT path` with a JSON body.
    fn put(&self, path: &str, auth: &Creds, body: &Value) -> Reply {
        self.call("PUT", path, Some(auth), Some(body))
    }

    /// `DELETE path` without a body.
    fn delete(&self, path: &str, auth: &Creds) -> Reply {
        self.call("DELETE", path, Some(auth), None)
    }

    /// `POST /api/{org}/actions/upload` with a multipart form.
    fn upload(&self, org: &str, auth: &Creds, form: &Form) -> Reply {
        let (content_type, body) = form.encode();
        let header = auth.header();
        self.request(
            "POST",
            &format!("/api/{org}/actions/upload"),
            &[("authorization", &header)],
            Some((&content_type, body)),
        )
    }

    /// Uploads an action that must be accepted; answers its id.
    #[track_caller]
    fn create_action(&self, org: &str, auth: &Creds, form: &Form) -> String {
        let reply = self.upload(org, auth, form);
        let answer = reply.ok_json();
        answer["uuid"]
            .as_str()
            .unwrap_or_else(|| panic!("no uuid in {answer}"))
            .to_string()
    }

    /// Creates a service account of `org` (as `auth`) and answers its credentials.
    #[track_caller]
    fn create_service_account(&self, org: &str, auth: &Creds, email: &str) -> Creds {
        let answer = self
            .post(
                &format!("/api/{org}/service_accounts"),
                auth,
                &json!({ "email": email }),
            )
            .ok_json();
        let token = answer["token"]
            .as_str()
            .unwrap_or_else(|| panic!("no token in {answer}"));
        Creds::new(email, token)
    }

    /// Creates `role` in `org`, grants it `grants` (each `(verb, object)` on action scripts)
    /// and assigns it to `principals`.
    #[track_caller]
    fn create_role(
        &self,
        org: &str,
        auth: &Creds,
        role: &str,
        grants: &[(&str, &str)],
        principals: &[&str],
    ) -> Value {
        self.post(&format!("/api/{org}/roles"), auth, &json!({ "role": role }))
            .ok_json();
        self.put(
            &format!("/api/{org}/roles/{role}"),
            auth,
            &json!({ "add": action_grants(grants), "add_users": principals }),
        )
        .ok_json()
    }

    /// Creates the service account `email` in `org` (as `auth`) with the role `runners`,
    /// granting GET on every action script (what running an action as it needs); answers its
    /// credentials.
    #[track_caller]
    fn create_runner(&self, org: &str, auth: &Creds, email: &str) -> Creds {
        let account = self.create_service_account(org, auth, email);
        self.create_role(org, auth, "runners", &[("GET", "_all")], &[email]);
        account
    }

    /// Adds a user to `org` with `role` (`admin` or `member`); answers their credentials.
    #[track_caller]
    fn create_user(&self, org: &str, auth: &Creds, email: &str, role: &str) -> Creds {
        let password = format!("password-of-{email}");
        self.post(
            &format!("/api/{org}/users"),
            auth,
            &json!({ "email": email, "password": password, "role": role }),
        )
        .ok_json();
        Creds::new(email, &password)
    }

    /// `POST /api/{org}/actions/test/{id}` with `inputs`.
    fn test_run(&self, org: &str, auth: &Creds, id: &str, inputs: &Value) -> Reply {
        self.post(
            &format!("/api/{org}/actions/test/{id}"),
            auth,
            &json!({ "inputs": inputs }),
        )
    }

    /// The run history of an action (first page of 100), as root.
    #[track_caller]
    fn runs(&self, org: &str, id: &str) -> Value {
        self.get(
            &format!("/api/{org}/actions/{id}/runs?page=1&per_page=100"),
            &Creds::root(),
        )
        .ok_json()
    }

    /// The action's details, as root.
    #[track_caller]
    fn action(&self, org: &str, id: &str) -> Value {
        self.get(&format!("/api/{org}/actions/{id}"), &Creds::root())
            .ok_json()
    }

    /// The organization's action list, as root.
    #[track_caller]
    fn actions(&self, org: &str) -> Vec<Value> {
        self.get(&format!("/api/{org}/actions"), &Creds::root())
            .ok_json()
            .as_array()
            .expect("the action list is an array")
            .clone()
    }

    /// Files under the blob folder of `org`'s action ZIPs (none when the folder is absent).
    fn blob_files(&self, org: &str) -> Vec<PathBuf> {
        blob_files(self.data_dir(), org)
    }
}

/// Files (recursively) under `<data_dir>/blobs/orgs/<org>/actions`.
pub fn blob_files(data_dir: &Path, org: &str) -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                walk(&path, out);
            } else {
                out.push(path);
            }
        }
    }
    let mut found = Vec::new();
    walk(
        &data_dir
            .join("blobs")
            .join("orgs")
            .join(org)
            .join("actions"),
        &mut found,
    );
    found.sort();
    found
}

/// Grants on action scripts as the role route takes them, from `(verb, object)` pairs.
pub fn action_grants(grants: &[(&str, &str)]) -> Value {
    Value::Array(
        grants
            .iter()
            .map(|(verb, object)| {
                json!({ "resource": "action_scripts", "object": object, "verb": verb })
            })
            .collect(),
    )
}
