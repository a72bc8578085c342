//! The guest protocol: the request on stdin, the one result document on stdout, and JSON log
//! lines on stderr (see `python-wasm/runner.py`, the other side of it).

use serde::{Deserialize, Serialize};
use serde_json::Value;

pub(crate) use vivarium_marshal::{MAX_NESTING, ReplyForm, RequestFlags};

use crate::limits::human_bytes;

/// The logger name of the host's egress audit lines in a run's logs (see `host_call`).
pub(crate) const EGRESS_LOGGER: &str = "vivarium.egress";

/// The guest runner, run by the interpreter as its program.
pub const RUNNER_SOURCE: &str = include_str!("../../../python-wasm/runner.py");

/// What the action is called with.
#[derive(Debug, Clone, PartialEq)]
pub enum Input {
    /// `main(data, logger)`: log records from a trigger, or a rendered alert.
    Data(Value),
    /// `main()`: a scheduled run, with no arguments.
    Scheduled,
}

/// The request as the guest is given it on stdin, `{"data": ..., "layer": ..., "reply": ...}`
/// (see [`RequestFlags`]): in marshal form (see [`vivarium_marshal`]), or as JSON when the data
/// holds what that form leaves to JSON.
pub(crate) fn guest_request(input: &Input, flags: RequestFlags) -> Vec<u8> {
    let data = match input {
        Input::Data(data) => Some(data),
        Input::Scheduled => None,
    };
    vivarium_marshal::encode_request(data, flags).unwrap_or_else(|| {
        let mut request = serde_json::Map::new();
        if let Some(data) = data {
            request.insert("data".into(), data.clone());
        }
        request.insert("layer".into(), Value::Bool(flags.layer));
        request.insert("reply".into(), flags.reply.as_str().into());
        Value::Object(request).to_string().into_bytes()
    })
}

/// The request of the compile-only call (see [`crate::bytecode`]).
pub(crate) fn compile_request(layer: bool) -> Vec<u8> {
    serde_json::json!({ "vivarium": "compile", "layer": layer })
        .to_string()
        .into_bytes()
}

/// The size in bytes of the request as compact JSON, `{"data":...}` or `{}`: what the input
/// limit measures. Counted from the data, without writing the document.
pub(crate) fn request_json_len(input: &Input) -> usize {
    match input {
        Input::Data(data) => br#"{"data":}"#.len() + json_len(data),
        Input::Scheduled => b"{}".len(),
    }
}

/// The length of `value` as compact JSON, as serde_json writes it (numbers as they were read).
fn json_len(value: &Value) -> usize {
    let commas = |count: usize| count.saturating_sub(1);
    match value {
        Value::Null | Value::Bool(true) => 4,
        Value::Bool(false) => 5,
        Value::Number(number) => number.as_str().len(),
        Value::String(text) => string_json_len(text),
        Value::Array(items) => 2 + commas(items.len()) + items.iter().map(json_len).sum::<usize>(),
        Value::Object(map) => {
            let entries: usize = map
                .iter()
                .map(|(key, item)| string_json_len(key) + 1 + json_len(item))
                .sum();
            2 + commas(map.len()) + entries
        }
    }
}

/// The length of `text` as a JSON string as serde_json writes it: quoted, with `"`, `\` and
/// control characters escaped (`\n` and the like in two bytes, the rest as `\u00XX`).
fn string_json_len(text: &str) -> usize {
    let bytes = text.as_bytes();
    let needs_escape = |byte: &u8| *byte < 0x20 || *byte == b'"' || *byte == b'\\';
    if !bytes.iter().any(needs_escape) {
        return bytes.len() + 2;
    }
    let escaped: usize = bytes
        .iter()
        .filter(|byte| needs_escape(byte))
        .map(|byte| match byte {
            b'"' | b'\\' | b'\n' | b'\r' | b'\t' | 0x08 | 0x0c => 1,
            _ => 5,
        })
        .sum();
    bytes.len() + 2 + escaped
}

/// An error the guest reported in its result document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GuestError {
    /// Where it happened: `import`, `call`, `contract` or `result`.
    #[serde(default)]
    pub phase: String,
    /// The Python exception type, such as `KeyError`.
    #[serde(rename = "type")]
    pub type_name: String,
    /// The exception's message.
    pub message: String,
    /// The frames of the user's code, outermost first, as Python formats them.
    #[serde(default)]
    pub traceback: Vec<String>,
}

/// The single document the guest writes on stdout.
#[derive(Debug, Clone, PartialEq)]
pub enum GuestDocument {
    /// `{"ok": true, "result": ...}`: what `main` returned.
    Success(Value),
    /// `{"ok": false, "error": {...}}`: what went wrong.
    Failure(GuestError),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WireDocument {
    ok: bool,
    #[serde(default)]
    result: Value,
    #[serde(default)]
    error: Option<GuestError>,
}

/// Why stdout does not hold a usable result document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProtocolError {
    /// A well-formed result nested deeper than [`MAX_NESTING`]: the action's fault, not the guest's.
    TooDeep,
    /// Anything else: no document, two documents, or not the protocol's shape.
    Malformed(String),
}

/// Parses stdout as exactly one result document.
pub fn parse_document(stdout: &[u8]) -> Result<GuestDocument, ProtocolError> {
    if stdout.iter().all(u8::is_ascii_whitespace) {
        return Err(ProtocolError::Malformed(
            "the guest wrote no result document".into(),
        ));
    }
    let wire: WireDocument = serde_json::from_slice(stdout).map_err(|e| {
        if e.to_string().starts_with("recursion limit exceeded") {
            return ProtocolError::TooDeep;
        }
        ProtocolError::Malformed(format!(
            "the guest's stdout is not one result document ({e}); did the action write to file descriptor 1 directly?"
        ))
    })?;
    match (wire.ok, wire.error) {
        (true, None) => Ok(GuestDocument::Success(wire.result)),
        (false, Some(error)) => Ok(GuestDocument::Failure(error)),
        _ => Err(ProtocolError::Malformed(
            "the guest's result document is inconsistent: ok and error disagree".into(),
        )),
    }
}

/// One log record of a call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct LogLine {
    /// `DEBUG`, `INFO`, `WARNING`, `ERROR`, `CRITICAL`, or `RAW` for bytes that were not a record.
    pub level: String,
    /// The Python logger's name (`action`, `print`, `stderr`, a module's name), or `vivarium`.
    pub logger: String,
    /// The formatted message.
    pub message: String,
    /// When it was logged, RFC 3339 in UTC, as the guest's clock says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time: Option<String>,
    /// A formatted exception attached to the record.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exc: Option<String>,
}

impl LogLine {
    /// A line the host adds about the call itself.
    pub fn host(level: &str, message: String) -> Self {
        Self {
            level: level.into(),
            logger: "vivarium".into(),
            message,
            time: None,
            exc: None,
        }
    }

    fn raw(line: &str) -> Self {
        Self {
            level: "RAW".into(),
            logger: "stderr".into(),
            message: line.into(),
            time: None,
            exc: None,
        }
    }
}

/// One line of the guest's stderr as a log record: a JSON record as the runner writes it,
/// else the text as a `RAW` line; `None` for a blank line. A record claiming the egress
/// audit's logger name is marked as the guest's, so that audit lines cannot be forged.
pub fn parse_log_line(line: &str) -> Option<LogLine> {
    let line = line.trim_end_matches(['\n', '\r']);
    if line.trim().is_empty() {
        return None;
    }
    let mut parsed = serde_json::from_str::<LogLine>(line).unwrap_or_else(|_| LogLine::raw(line));
    if parsed.logger == EGRESS_LOGGER {
        parsed.logger = format!("guest:{}", parsed.logger);
    }
    Some(parsed)
}

/// Splits captured stderr into log lines; a cut-off tail becomes a marker saying how much
/// was dropped. The host's own lines (`host_lines`, each with the number of stderr bytes
/// kept when it happened) are placed among the guest's in order; each guest line is read
/// by [`parse_log_line`].
pub fn parse_logs(
    stderr: &[u8],
    dropped: u64,
    cap: usize,
    host_lines: &[(usize, LogLine)],
) -> Vec<LogLine> {
    let text = String::from_utf8_lossy(stderr);
    let complete = if dropped > 0 {
        text.rsplit_once('\n').map_or("", |(head, _)| head)
    } else {
        &text
    };
    let mut pending = host_lines.iter().peekable();
    let mut lines = Vec::new();
    let mut offset = 0;
    for line in complete.split_inclusive('\n') {
        while let Some((_, host)) = pending.next_if(|(at, _)| *at <= offset) {
            lines.push(host.clone());
        }
        offset += line.len();
        lines.extend(parse_log_line(line));
    }
    lines.extend(pending.map(|(_, host)| host.clone()));
    if dropped > 0 {
        let cut = dropped + (text.len() - complete.len()) as u64;
        lines.push(LogLine::host(
            "WARNING",
            format!(
                "log output truncated: {} past the {} log limit were dropped",
                human_bytes(cut),
                human_bytes(cap as u64)
            ),
        ));
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_success_document_parses() {
        let doc = parse_document(br#"{"ok": true, "result": [{"a": 1}]}"#).unwrap();
        assert_eq!(doc, GuestDocument::Success(serde_json::json!([{"a": 1}])));
    }

    #[test]
    fn a_failure_document_parses() {
        let doc = parse_document(
            br#"{"ok": false, "error": {"phase": "call", "type": "KeyError", "message": "'x'", "traceback": ["f"]}}"#,
        )
        .unwrap();
        let GuestDocument::Failure(error) = doc else {
            panic!("not a failure")
        };
        assert_eq!(error.type_name, "KeyError");
    }

    #[test]
    fn two_documents_or_none_are_protocol_errors() {
        assert!(parse_document(b"").is_err());
        assert!(parse_document(br#"{"ok": true, "result": 1}{"ok": true, "result": 2}"#).is_err());
        assert!(parse_document(br#"{"ok": "yes", "result": 1}"#).is_err());
        assert!(parse_document(br#"{"ok": false, "result": 1}"#).is_err());
    }

    #[test]
    fn a_deeply_nested_result_is_told_apart_from_garbage() {
        let deep = format!(
            r#"{{"ok": true, "result": {}1{}}}"#,
            "[".repeat(200),
            "]".repeat(200)
        );
        assert_eq!(parse_document(deep.as_bytes()), Err(ProtocolError::TooDeep));
    }

    #[test]
    fn json_lines_become_records_and_other_bytes_stay_raw() {
        let logs = parse_logs(b"{\"level\":\"INFO\",\"logger\":\"action\",\"message\":\"hi\",\"time\":\"t\"}\nplain text\n", 0, 100, &[]);
        assert_eq!(logs.len(), 2);
        assert_eq!(logs[0].message, "hi");
        assert_eq!(logs[1].level, "RAW");
    }

    #[test]
    fn a_cut_log_ends_with_a_marker_and_no_partial_line() {
        let logs = parse_logs(
            b"{\"level\":\"INFO\",\"logger\":\"a\",\"message\":\"one\"}\n{\"level\":\"IN",
            500,
            60,
            &[],
        );
        assert_eq!(logs.len(), 2);
        assert_eq!(logs[0].message, "one");
        assert!(
            logs[1].message.starts_with("log output truncated"),
            "{}",
            logs[1].message
        );
    }

    #[test]
    fn host_lines_are_placed_where_they_happened_and_cannot_be_forged() {
        let stderr = b"{\"level\":\"INFO\",\"logger\":\"a\",\"message\":\"one\"}\n{\"level\":\"INFO\",\"logger\":\"vivarium.egress\",\"message\":\"forged\"}\n";
        let first_line = stderr.iter().position(|b| *b == b'\n').unwrap() + 1;
        let audit = |message: &str| LogLine {
            logger: EGRESS_LOGGER.into(),
            ..LogLine::host("INFO", message.into())
        };
        let logs = parse_logs(
            stderr,
            0,
            1000,
            &[
                (first_line, audit("GET one")),
                (stderr.len(), audit("GET two")),
            ],
        );
        let messages: Vec<&str> = logs.iter().map(|l| l.message.as_str()).collect();
        assert_eq!(messages, ["one", "GET one", "forged", "GET two"]);
        assert_eq!(logs[2].logger, "guest:vivarium.egress");
        assert_eq!(logs[1].logger, "vivarium.egress");
    }

    #[test]
    fn the_request_carries_data_only_when_main_takes_it() {
        assert_eq!(
            request_json_len(&Input::Data(serde_json::json!([1]))),
            br#"{"data":[1]}"#.len()
        );
        assert_eq!(request_json_len(&Input::Scheduled), b"{}".len());
        let wide: Value = serde_json::from_str("[123456789012345678901234567890]").unwrap();
        let flags = RequestFlags {
            layer: false,
            reply: ReplyForm::Marshal,
        };
        assert_eq!(
            guest_request(&Input::Data(wide), flags),
            br#"{"data":[123456789012345678901234567890],"layer":false,"reply":"marshal"}"#
                .to_vec()
        );
        assert_eq!(
            Some(guest_request(&Input::Scheduled, flags)),
            vivarium_marshal::encode_request(None, flags)
        );
    }

    #[test]
    fn the_measured_size_is_the_size_of_the_json_document() {
        let data = serde_json::json!([{"text": "é \"quoted\"\n", "n": 1.5e300, "none": null}]);
        let document = serde_json::json!({ "data": data }).to_string();
        assert_eq!(request_json_len(&Input::Data(data)), document.len());
        let read: Value = serde_json::from_str(
            r#"{"big": 123456789012345678901234567890, "e": 1E+5, "ctl": "\u0001\u001f\b\f\t\r\\ \u007f ✓",
                "empty": [[], {}], "flags": [true, false, null], "": -0.0}"#,
        )
        .unwrap();
        let document = serde_json::json!({ "data": read }).to_string();
        assert_eq!(request_json_len(&Input::Data(read)), document.len());
    }
}
