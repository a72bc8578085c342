//! The service's OpenAPI document, served without credentials at `GET /api/openapi.json`.
//!
//! The routes and their answers document themselves: each handler carries a
//! `#[utoipa::path]` annotation, its request and answer types derive `ToSchema`, and
//! [`crate::routes::api`] registers each route with its documentation in one list. This module
//! holds what is not one route's: the document's description, tags and security scheme, and
//! the rules that add the answers every route of a kind shares (401, 413, 415, 429).

use axum::Extension;
use axum::http::header;
use axum::response::IntoResponse;
use bytes::Bytes;
use utoipa::openapi::path::Operation;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{
    Content, HeaderBuilder, Ref, RefOr, Response, ResponseBuilder, Type, schema::ObjectBuilder,
};
use utoipa::{Modify, OpenApi, PartialSchema, ToSchema};

use crate::error::ErrorBody;

/// The name of the HTTP Basic security scheme in the document.
pub const BASIC_AUTH: &str = "basic";

const DESCRIPTION: &str = "Vivarium runs user-written Python actions (ZIPs holding `main.py`) \
inside CPython compiled to WebAssembly, each call in a fresh sandbox with its own fuel, memory \
and time limits, behind an OpenObserve-compatible actions API. Organizations isolate tenants: \
every route under `/api/{org}` takes HTTP Basic credentials (`email:password` for users, \
`email:token` for service accounts) and checks the caller's organization membership and role \
grants; actions run by hand, for the alert engine, as Logs-page transforms or on a cron \
schedule (UTC), and every run is kept with its outcome, logs and resource use. Every error \
answers `{\"code\": <HTTP status>, \"message\": \"...\"}`, and timestamps are microseconds \
since the Unix epoch.";

/// The document's parts that belong to no route.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Vivarium",
        version = env!("CARGO_PKG_VERSION"),
        description = DESCRIPTION,
    ),
    modifiers(&SecuritySchemes),
    security(("basic" = [])),
    tags(
        (name = "actions", description = "Upload, read, change, download, pause and delete actions."),
        (name = "triggers", description = "Run an action: by hand, for the alert engine, or as a Logs-page transform."),
        (name = "runs", description = "The run history of an action: outcomes, resource use, logs and tracebacks."),
        (name = "state", description = "An action's durable state, which its runs change through vivarium.state: read it, store or remove one key, clear it."),
        (name = "secrets", description = "Secrets of an organization and of one action, given to runs as environment variables: stored sealed, never shown again, masked in run logs."),
        (name = "iam", description = "Organizations, users, service accounts (tokens shown once), roles and their grants."),
        (name = "operations", description = "Health, readiness, Prometheus metrics and this document; no credentials needed."),
    ),
)]
pub struct ApiDoc;

/// Registers the HTTP Basic scheme the document's security requirements name.
struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let scheme = HttpBuilder::new()
            .scheme(HttpAuthScheme::Basic)
            .description(Some(
                "HTTP Basic credentials: `email:password` for users (the root user included), \
                 `email:token` for service accounts.",
            ))
            .build();
        openapi
            .components
            .get_or_insert_with(Default::default)
            .add_security_scheme(BASIC_AUTH, SecurityScheme::Http(scheme));
    }
}

/// The finished document as JSON, written once and shared by the router with [`document`].
#[derive(Clone)]
pub struct Document(Bytes);

impl Document {
    /// The document the routes derived, with the answers they share added. (An OpenAPI
    /// document, with its string keys only, always serializes; `null` stands for the
    /// impossible failure.)
    pub fn new(mut openapi: utoipa::openapi::OpenApi) -> Self {
        add_shared_answers(&mut openapi);
        let json = serde_json::to_vec(&openapi).unwrap_or_else(|_| b"null".to_vec());
        Self(Bytes::from(json))
    }
}

/// `GET /api/openapi.json`: this service's OpenAPI document.
#[utoipa::path(
    get,
    path = "/api/openapi.json",
    tag = "operations",
    operation_id = "openapi_document",
    summary = "The OpenAPI document",
    security(),
    responses(
        (status = 200, description = "The OpenAPI document of every route", body = serde_json::Value),
    ),
)]
pub async fn document(Extension(document): Extension<Document>) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], document.0)
}

/// A shared answer: its component name, its description, and the header it carries.
struct SharedAnswer {
    status: &'static str,
    name: &'static str,
    description: &'static str,
    header: Option<(&'static str, &'static str)>,
}

const UNAUTHORIZED: SharedAnswer = SharedAnswer {
    status: "401",
    name: "Unauthorized",
    description: "No valid credentials (none, malformed, or not matching a user or a service \
                  account of the organization)",
    header: Some(("WWW-Authenticate", "`Basic realm=\"vivarium\"`")),
};

const PAYLOAD_TOO_LARGE: SharedAnswer = SharedAnswer {
    status: "413",
    name: "PayloadTooLarge",
    description: "The request body is larger than the service accepts (`max_body_bytes`)",
    header: None,
};

const UNSUPPORTED_MEDIA_TYPE: SharedAnswer = SharedAnswer {
    status: "415",
    name: "UnsupportedMediaType",
    description: "The Content-Type is not `application/json`",
    header: None,
};

const TOO_MANY_RUNS: SharedAnswer = SharedAnswer {
    status: "429",
    name: "TooManyRuns",
    description: "Too many runs are running or waiting, for the service or for the \
                  organization; retry after the time given",
    header: Some(("Retry-After", "Seconds after which a retry may succeed")),
};

/// The tag of the routes that run an action, which may answer 429.
pub const TRIGGERS_TAG: &str = "triggers";

/// Adds the answers every route of a kind gives, by rule: 401 to each route that takes
/// credentials, 413 to each that takes a body, 415 to each that takes JSON, 429 to each that
/// runs an action.
fn add_shared_answers(openapi: &mut utoipa::openapi::OpenApi) {
    let components = openapi.components.get_or_insert_with(Default::default);
    let (name, schema) = (ErrorBody::name(), ErrorBody::schema());
    components.schemas.entry(name.to_string()).or_insert(schema);
    for answer in [
        &UNAUTHORIZED,
        &PAYLOAD_TOO_LARGE,
        &UNSUPPORTED_MEDIA_TYPE,
        &TOO_MANY_RUNS,
    ] {
        components
            .responses
            .insert(answer.name.to_string(), RefOr::T(response(answer)));
    }
    for item in openapi.paths.paths.values_mut() {
        let operations = [
            &mut item.get,
            &mut item.put,
            &mut item.post,
            &mut item.delete,
        ];
        for operation in operations.into_iter().flatten() {
            for answer in shared_answers_of(operation) {
                let reference = Ref::from_response_name(answer.name);
                operation
                    .responses
                    .responses
                    .entry(answer.status.to_string())
                    .or_insert(RefOr::Ref(reference));
            }
        }
    }
}

/// Which shared answers `operation` gives.
fn shared_answers_of(operation: &Operation) -> Vec<&'static SharedAnswer> {
    let public = operation.security.as_ref().is_some_and(Vec::is_empty);
    let body = match &operation.request_body {
        Some(RefOr::T(body)) => Some(body),
        _ => None,
    };
    let runs = operation
        .tags
        .iter()
        .flatten()
        .any(|tag| tag == TRIGGERS_TAG);
    let mut answers = Vec::new();
    if !public {
        answers.push(&UNAUTHORIZED);
    }
    if body.is_some() {
        answers.push(&PAYLOAD_TOO_LARGE);
    }
    let json_only = |body: &&utoipa::openapi::request_body::RequestBody| {
        body.content.len() == 1 && body.content.contains_key("application/json")
    };
    if body.is_some_and(|body| json_only(&body)) {
        answers.push(&UNSUPPORTED_MEDIA_TYPE);
    }
    if runs {
        answers.push(&TOO_MANY_RUNS);
    }
    answers
}

/// The response component of a shared answer, in the error shape.
fn response(answer: &SharedAnswer) -> Response {
    let mut builder = ResponseBuilder::new()
        .description(answer.description)
        .content(
            "application/json",
            Content::new(Some(Ref::from_schema_name(ErrorBody::name()))),
        );
    if let Some((name, description)) = answer.header {
        let schema = ObjectBuilder::new().schema_type(Type::String);
        let header = HeaderBuilder::new()
            .schema(Some(schema))
            .description(Some(description))
            .build();
        builder = builder.header(name, header);
    }
    builder.build()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use serde_json::{Value, json};

    use super::*;

    /// The routes anyone may call.
    const PUBLIC: &[&str] = &[
        "/healthz",
        "/readyz",
        "/metrics",
        "/config",
        "/api/openapi.json",
    ];

    const METHODS: &[&str] = &["get", "put", "post", "delete", "patch", "head", "options"];

    fn document() -> Value {
        let finished = Document::new(crate::routes::api().into_openapi());
        serde_json::from_slice(&finished.0).expect("the document is JSON")
    }

    /// Every (method, path, operation) of the document.
    fn operations(doc: &Value) -> Vec<(String, String, Value)> {
        let mut found = Vec::new();
        for (path, item) in doc["paths"].as_object().expect("paths") {
            for method in METHODS {
                if let Some(operation) = item.get(*method) {
                    found.push((method.to_string(), path.clone(), operation.clone()));
                }
            }
        }
        found
    }

    #[test]
    fn the_document_is_valid_openapi_3_1_and_every_reference_resolves() {
        let text = serde_json::to_string(&document()).expect("the document serializes");
        let spec = oas3::from_json(text).expect("the document parses as OpenAPI 3.1");
        spec.validate_version()
            .expect("a supported OpenAPI version");
        let mut operations = 0;
        for (path, method, operation) in spec.operations() {
            operation
                .request_body(&spec)
                .unwrap_or_else(|e| panic!("{method} {path}: its request body: {e}"));
            operation
                .parameters(&spec)
                .unwrap_or_else(|e| panic!("{method} {path}: its parameters: {e}"));
            let declared = operation.responses.as_ref().map_or(0, |r| r.len());
            assert_eq!(
                operation.responses(&spec).len(),
                declared,
                "{method} {path}: a response reference does not resolve"
            );
            operations += 1;
        }
        assert!(operations > 40, "only {operations} operations");
    }

    #[test]
    fn the_routes_o2_clients_call_are_documented() {
        let doc = document();
        let documented: BTreeSet<(String, String)> = operations(&doc)
            .into_iter()
            .map(|(method, path, _)| (method, path))
            .collect();
        for (method, path) in [
            ("post", "/api/{org}/actions/upload"),
            ("put", "/api/{org}/actions/{id}"),
            ("get", "/api/{org}/actions/pause/{id}"),
            ("get", "/api/{org}/actions/resume/{id}"),
            ("post", "/api/{org}/actions/{id}/webhook"),
            ("get", "/api/{org}/service_accounts"),
            ("get", "/config"),
        ] {
            assert!(
                documented.contains(&(method.to_string(), path.to_string())),
                "{method} {path} is not documented"
            );
        }
        assert!(
            documented.len() > 40,
            "only {} operations",
            documented.len()
        );
    }

    #[test]
    fn operations_have_unique_ids_tags_and_success_responses() {
        let doc = document();
        let tags: BTreeSet<&str> = doc["tags"]
            .as_array()
            .expect("tags")
            .iter()
            .map(|tag| tag["name"].as_str().expect("tag name"))
            .collect();
        assert_eq!(
            tags,
            BTreeSet::from([
                "actions",
                "triggers",
                "runs",
                "state",
                "secrets",
                "iam",
                "operations"
            ])
        );
        let mut ids = BTreeSet::new();
        for (method, path, operation) in operations(&doc) {
            let id = operation["operationId"].as_str().expect("operationId");
            assert!(ids.insert(id.to_string()), "duplicate operationId {id}");
            let op_tags = operation["tags"].as_array().expect("tags of the operation");
            assert!(
                op_tags
                    .iter()
                    .all(|tag| tags.contains(tag.as_str().unwrap_or_default())),
                "{method} {path} has an undeclared tag"
            );
            assert!(
                operation["responses"].get("200").is_some(),
                "{method} {path} documents no 200"
            );
            for name in path
                .split('/')
                .filter_map(|s| s.strip_prefix('{')?.strip_suffix('}'))
            {
                let declared = operation["parameters"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|p| p["in"] == "path" && p["name"] == name && p["required"] == true);
                assert!(
                    declared,
                    "{method} {path} does not declare path parameter {name}"
                );
            }
        }
    }

    /// A response, or the shared response component it refers to.
    fn resolve<'a>(doc: &'a Value, response: &'a Value) -> &'a Value {
        match response["$ref"].as_str() {
            Some(reference) => {
                let name = reference
                    .strip_prefix("#/components/responses/")
                    .unwrap_or_else(|| panic!("unexpected response reference {reference}"));
                &doc["components"]["responses"][name]
            }
            None => response,
        }
    }

    #[test]
    fn errors_use_the_error_shape() {
        let doc = document();
        for (method, path, operation) in operations(&doc) {
            for (status, response) in operation["responses"].as_object().expect("responses") {
                if !status.starts_with('4') {
                    continue;
                }
                let response = resolve(&doc, response);
                assert!(
                    response["description"]
                        .as_str()
                        .is_some_and(|d| !d.is_empty()),
                    "{method} {path} answers {status} without a description"
                );
                let reference = response["content"]["application/json"]["schema"]["$ref"]
                    .as_str()
                    .unwrap_or_default();
                assert!(
                    reference == "#/components/schemas/ErrorBody"
                        || reference == "#/components/schemas/RunFailureBody",
                    "{method} {path} answers {status} with {reference:?}"
                );
            }
        }
        let error = &doc["components"]["schemas"]["ErrorBody"];
        assert_eq!(error["properties"]["code"]["type"], "integer");
        assert_eq!(error["properties"]["message"]["type"], "string");
        assert_eq!(error["required"], json!(["code", "message"]));
    }

    #[test]
    fn authenticated_routes_answer_401_and_their_statuses() {
        let doc = document();
        let statuses = |method: &str, path: &str| -> BTreeSet<String> {
            doc["paths"][path][method]["responses"]
                .as_object()
                .expect("responses")
                .keys()
                .cloned()
                .collect()
        };
        for (method, path, _) in operations(&doc) {
            if !PUBLIC.contains(&path.as_str()) {
                assert!(statuses(&method, &path).contains("401"), "{method} {path}");
            }
        }
        let has = |method: &str, path: &str, wanted: &[&str]| {
            let found = statuses(method, path);
            for status in wanted {
                assert!(found.contains(*status), "{method} {path} lacks {status}");
            }
        };
        has(
            "post",
            "/api/{org}/actions/upload",
            &["400", "403", "404", "409", "413"],
        );
        has(
            "put",
            "/api/{org}/actions/{id}",
            &["400", "409", "413", "415", "422"],
        );
        has(
            "post",
            "/api/{org}/actions/{id}/alert",
            &["403", "422", "429"],
        );
        has(
            "post",
            "/api/{org}/actions/{id}/webhook",
            &["400", "403", "413", "422", "429"],
        );
        assert!(
            !statuses("post", "/api/{org}/actions/{id}/webhook").contains("415"),
            "the webhook entry takes any Content-Type"
        );
        has(
            "post",
            "/api/{org}/actions/test/{id}",
            &["403", "404", "422", "429"],
        );
        has(
            "post",
            "/api/{org}/actions/{id}/transform",
            &["403", "422", "429"],
        );
        has("post", "/api/{org}/roles", &["409"]);
        for path in [
            "/api/{org}/actions/test/{id}",
            "/api/{org}/actions/{id}/alert",
            "/api/{org}/actions/{id}/webhook",
            "/api/{org}/actions/{id}/transform",
        ] {
            let retry = resolve(&doc, &doc["paths"][path]["post"]["responses"]["429"]);
            assert!(retry["headers"].get("Retry-After").is_some(), "{path}");
        }
        let unauthorized = resolve(
            &doc,
            &doc["paths"]["/api/{org}/actions"]["get"]["responses"]["401"],
        );
        assert!(unauthorized["headers"].get("WWW-Authenticate").is_some());
    }

    #[test]
    fn upload_takes_a_multipart_form_with_a_binary_file() {
        let doc = document();
        let body = &doc["paths"]["/api/{org}/actions/upload"]["post"]["requestBody"];
        let schema = &body["content"]["multipart/form-data"]["schema"];
        let reference = schema["$ref"].as_str().expect("a schema reference");
        let name = reference.rsplit('/').next().unwrap_or_default();
        let form = &doc["components"]["schemas"][name];
        let fields: BTreeSet<&str> = form["properties"]
            .as_object()
            .expect("form fields")
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(
            fields,
            BTreeSet::from([
                "name",
                "owner",
                "file",
                "filename",
                "execution_details",
                "description",
                "cron_expr",
                "environment_variables",
                "allowed_hosts",
                "service_account",
                "id",
            ])
        );
        let file = &form["properties"]["file"];
        assert_eq!(file["type"], "string");
        assert_eq!(file["format"], "binary");
        assert_eq!(form["required"], json!(["file"]));
        let execution = &doc["components"]["schemas"]["ExecutionKind"];
        assert_eq!(execution["enum"], json!(["service", "once", "repeat"]));
    }

    #[test]
    fn basic_auth_guards_every_route_but_the_public_ones() {
        let doc = document();
        let scheme = &doc["components"]["securitySchemes"][BASIC_AUTH];
        assert_eq!(scheme["type"], "http");
        assert_eq!(scheme["scheme"], "basic");
        assert_eq!(doc["security"], json!([{ BASIC_AUTH: [] }]));
        for (method, path, operation) in operations(&doc) {
            let security = operation.get("security");
            if PUBLIC.contains(&path.as_str()) {
                assert_eq!(security, Some(&json!([])), "{method} {path} must be public");
            } else {
                assert!(
                    security.is_none(),
                    "{method} {path} must keep the document's Basic requirement"
                );
            }
        }
    }

    #[test]
    fn info_names_the_service_and_its_version() {
        let doc = document();
        assert_eq!(doc["info"]["title"], "Vivarium");
        assert_eq!(doc["info"]["version"], env!("CARGO_PKG_VERSION"));
        assert!(
            doc["info"]["description"]
                .as_str()
                .unwrap_or_default()
                .len()
                > 100
        );
        assert!(
            doc["openapi"]
                .as_str()
                .unwrap_or_default()
                .starts_with("3.")
        );
    }

    #[test]
    fn every_schema_reference_resolves() {
        fn walk(value: &Value, doc: &Value, count: &mut usize) {
            match value {
                Value::Object(map) => {
                    if let Some(Value::String(reference)) = map.get("$ref") {
                        let (kind, name) = reference
                            .strip_prefix("#/components/")
                            .and_then(|rest| rest.split_once('/'))
                            .unwrap_or_else(|| panic!("unexpected reference {reference}"));
                        assert!(
                            doc["components"][kind].get(name).is_some(),
                            "dangling reference {reference}"
                        );
                        *count += 1;
                    }
                    map.values().for_each(|v| walk(v, doc, count));
                }
                Value::Array(items) => items.iter().for_each(|v| walk(v, doc, count)),
                _ => {}
            }
        }
        let doc = document();
        let mut count = 0;
        walk(&doc, &doc, &mut count);
        assert!(count > 50, "only {count} references");
    }
}
