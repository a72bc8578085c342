//! The guest's log lines as it writes them, for watching a call in flight: the kept bytes of
//! its stderr, cut at each newline and read as the recorded logs are read.

use std::sync::Arc;

use crate::protocol::{LogLine, parse_log_line};

/// Receives each log line of a call as soon as the guest has written it whole. The lines
/// are those the recorded logs will hold (the bytes within the log limit); the host's own
/// lines (the egress audit, the truncation marker) appear only in the record.
pub trait LogSink: Send + Sync + std::fmt::Debug {
    /// One more line of the call's logs.
    fn line(&self, line: LogLine);
}

/// Cuts a byte stream into lines for a [`LogSink`], holding back the unfinished tail.
pub(crate) struct LineSplitter {
    partial: Vec<u8>,
    sink: Arc<dyn LogSink>,
}

impl LineSplitter {
    /// A splitter that hands its lines to `sink`.
    pub(crate) fn new(sink: Arc<dyn LogSink>) -> Self {
        Self {
            partial: Vec::new(),
            sink,
        }
    }

    /// Takes more bytes; every line they complete goes to the sink.
    pub(crate) fn feed(&mut self, bytes: &[u8]) {
        self.partial.extend_from_slice(bytes);
        while let Some(end) = self.partial.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = self.partial.drain(..=end).collect();
            if let Some(parsed) = parse_log_line(&String::from_utf8_lossy(&line)) {
                self.sink.line(parsed);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;

    #[derive(Default, Debug)]
    struct Collected(Mutex<Vec<LogLine>>);

    impl LogSink for Collected {
        fn line(&self, line: LogLine) {
            self.0.lock().unwrap().push(line);
        }
    }

    #[test]
    fn lines_are_handed_over_when_complete_and_read_as_records() {
        let collected = Arc::new(Collected::default());
        let mut splitter = LineSplitter::new(collected.clone());
        splitter.feed(br#"{"level": "INFO", "logger": "action", "mes"#);
        assert!(collected.0.lock().unwrap().is_empty());
        splitter.feed(b"sage\": \"one\"}\n\nplain text\npartial");
        let lines = collected.0.lock().unwrap().clone();
        assert_eq!(
            lines
                .iter()
                .map(|l| (l.level.as_str(), l.message.as_str()))
                .collect::<Vec<_>>(),
            [("INFO", "one"), ("RAW", "plain text")]
        );
    }
}
