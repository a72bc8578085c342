//! Upload forms: a multipart/form-data body written by hand, and the usual `service` action.

/// A multipart/form-data body, written by hand.
#[derive(Debug, Clone, Default)]
pub struct Form {
    parts: Vec<(String, Option<String>, Vec<u8>)>,
}

/// The boundary between parts; never found in the test payloads.
const BOUNDARY: &str = "vivarium-test-boundary-Zq81mXf0Kd4PwB";

impl Form {
    /// An empty form.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a text field.
    pub fn text(mut self, name: &str, value: &str) -> Self {
        self.parts
            .push((name.to_string(), None, value.as_bytes().to_vec()));
        self
    }

    /// Adds a file field.
    pub fn file(mut self, name: &str, file_name: &str, bytes: &[u8]) -> Self {
        self.parts.push((
            name.to_string(),
            Some(file_name.to_string()),
            bytes.to_vec(),
        ));
        self
    }

    /// Drops every field named `name`.
    pub fn without(mut self, name: &str) -> Self {
        self.parts.retain(|(n, _, _)| n != name);
        self
    }

    /// Replaces (or adds) the text field `name`.
    pub fn set(self, name: &str, value: &str) -> Self {
        self.without(name).text(name, value)
    }

    /// The content type and the body.
    pub fn encode(&self) -> (String, Vec<u8>) {
        let mut body = Vec::new();
        for (name, file_name, bytes) in &self.parts {
            body.extend_from_slice(format!("--{BOUNDARY}\r\n").as_bytes());
            match file_name {
                Some(file_name) => body.extend_from_slice(
                    format!(
                        "Content-Disposition: form-data; name=\"{name}\"; filename=\"{file_name}\"\r\nContent-Type: application/zip\r\n\r\n"
                    )
                    .as_bytes(),
                ),
                None => body.extend_from_slice(
                    format!("Content-Disposition: form-data; name=\"{name}\"\r\n\r\n").as_bytes(),
                ),
            }
            body.extend_from_slice(bytes);
            body.extend_from_slice(b"\r\n");
        }
        body.extend_from_slice(format!("--{BOUNDARY}--\r\n").as_bytes());
        (format!("multipart/form-data; boundary={BOUNDARY}"), body)
    }
}

/// The upload form of a `service` action run as `service_account`.
pub fn service_action(name: &str, zip: &[u8], service_account: &str) -> Form {
    Form::new()
        .text("name", name)
        .text("execution_details", "service")
        .text("service_account", service_account)
        .text("filename", &format!("{name}.zip"))
        .file("file", &format!("{name}.zip"), zip)
}
