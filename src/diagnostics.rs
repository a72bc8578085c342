//! Vivarium's own diagnostics on stderr, in the same shapes as the action's log lines: plain
//! text for a person (coloured only on a terminal), or with `--json-logs` one JSON object per
//! line with `level`, `logger`, `message` and `time`, plus the event's fields.

use std::fmt;
use std::io::IsTerminal;

use serde_json::{Map, Value};
use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

/// Installs the subscriber. `RUST_LOG` overrides the default level (info for Vivarium's own
/// crates, warnings for libraries).
pub fn init(json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new(
            "warn,vivarium=info,vivarium_runtime=info,vivarium_package=info,vivarium_server=info",
        )
    });
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if json {
        builder.event_format(JsonLine).init();
    } else {
        builder
            .with_ansi(std::io::stderr().is_terminal())
            .with_target(false)
            .without_time()
            .init();
    }
}

/// Formats an event as the JSON log line shape the guest's records use.
struct JsonLine;

impl<S, N> FormatEvent<S, N> for JsonLine
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        _: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let metadata = event.metadata();
        let mut fields = FieldMap(Map::new());
        event.record(&mut fields);
        let mut line = Map::new();
        line.insert("level".into(), Value::from(metadata.level().as_str()));
        line.insert("logger".into(), Value::from(metadata.target()));
        let message = fields.0.remove("message").unwrap_or(Value::from(""));
        line.insert("message".into(), message);
        line.insert("time".into(), Value::from(now_rfc3339()));
        line.extend(fields.0);
        writeln!(writer, "{}", Value::Object(line))
    }
}

struct FieldMap(Map<String, Value>);

impl Visit for FieldMap {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.0
            .insert(field.name().into(), Value::from(format!("{value:?}")));
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().into(), Value::from(value));
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.0.insert(field.name().into(), Value::from(value));
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.0.insert(field.name().into(), Value::from(value));
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.0.insert(field.name().into(), Value::from(value));
    }
}

fn now_rfc3339() -> String {
    humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string()
}
