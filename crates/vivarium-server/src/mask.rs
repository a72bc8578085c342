//! Hiding secret values in what a run leaves behind: its logs, its error and its traceback
//! are kept and answered with every secret value, and its base64, replaced by `***`.

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};
use vivarium_sandbox::LogLine;
use vivarium_store::Run;

/// What a masked value is replaced with.
pub const MASKED: &str = "***";

/// Values shorter than this many characters are not masked: replacing every `on` or `42` in
/// a run's logs would hide more than it protects.
pub const MIN_MASKED_CHARS: usize = 4;

/// The values to hide, with their standard base64 (padded and not). `Debug` never shows them.
#[derive(Clone, Default)]
pub struct SecretMask {
    /// Every text to replace, each once.
    needles: Vec<String>,
}

impl SecretMask {
    /// A mask hiding each of `values` that is at least [`MIN_MASKED_CHARS`] characters long,
    /// and its standard base64.
    pub fn new<'a>(values: impl IntoIterator<Item = &'a str>) -> Self {
        let mut needles = Vec::new();
        for value in values {
            if value.chars().count() < MIN_MASKED_CHARS {
                continue;
            }
            needles.push(value.to_string());
            needles.push(STANDARD.encode(value));
            needles.push(STANDARD_NO_PAD.encode(value));
        }
        needles.sort();
        needles.dedup();
        Self { needles }
    }

    /// Whether the mask hides nothing.
    pub fn is_empty(&self) -> bool {
        self.needles.is_empty()
    }

    /// `text` with every occurrence of a hidden value replaced by `***`. Occurrences that
    /// overlap or touch (of one value or of several) become a single `***`, so no part of
    /// any of them is left.
    pub fn mask(&self, text: &str) -> String {
        let mut spans = self.spans(text);
        if spans.is_empty() {
            return text.to_string();
        }
        spans.sort_unstable();
        let mut masked = String::with_capacity(text.len());
        let mut written = 0;
        let mut spans = spans.into_iter().peekable();
        while let Some((start, mut end)) = spans.next() {
            while let Some(&(next_start, next_end)) = spans.peek() {
                if next_start > end {
                    break;
                }
                end = end.max(next_end);
                spans.next();
            }
            masked.push_str(&text[written..start]);
            masked.push_str(MASKED);
            written = end;
        }
        masked.push_str(&text[written..]);
        masked
    }

    /// Masks every text of a log record that the action wrote, in place.
    pub fn mask_line(&self, line: &mut LogLine) {
        for text in [&mut line.logger, &mut line.message] {
            *text = self.mask(text);
        }
        if let Some(exc) = &mut line.exc {
            *exc = self.mask(exc);
        }
    }

    /// Masks what a run keeps of the action's output: its logs, its error and its traceback.
    pub fn mask_run(&self, run: &mut Run) {
        if self.is_empty() {
            return;
        }
        run.logs.iter_mut().for_each(|line| self.mask_line(line));
        for text in [&mut run.error_type, &mut run.error_message]
            .into_iter()
            .flatten()
        {
            *text = self.mask(text);
        }
        run.traceback
            .iter_mut()
            .for_each(|line| *line = self.mask(line));
    }

    /// The byte ranges of every occurrence of every needle in `text`, overlapping ones
    /// included.
    fn spans(&self, text: &str) -> Vec<(usize, usize)> {
        let mut spans = Vec::new();
        for needle in &self.needles {
            let mut from = 0;
            while let Some(found) = text[from..].find(needle.as_str()) {
                let start = from + found;
                spans.push((start, start + needle.len()));
                from = start + text[start..].chars().next().map_or(1, char::len_utf8);
            }
        }
        spans
    }
}

impl std::fmt::Debug for SecretMask {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SecretMask({} texts: ***)", self.needles.len())
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_value_and_its_base64_are_masked_wherever_they_occur() {
        let mask = SecretMask::new(["s3cr3t-token"]);
        assert_eq!(
            mask.mask("token=s3cr3t-token; again s3cr3t-token."),
            "token=***; again ***."
        );
        let encoded = STANDARD.encode("s3cr3t-token");
        assert_eq!(mask.mask(&format!("b64 {encoded} end")), "b64 *** end");
        let unpadded = STANDARD_NO_PAD.encode("s3cr3t-token");
        assert_eq!(mask.mask(&format!("raw {unpadded}")), "raw ***");
        assert_eq!(mask.mask("nothing to hide"), "nothing to hide");
    }

    #[test]
    fn overlapping_and_adjacent_values_leave_nothing_behind() {
        let mask = SecretMask::new(["abcdef", "defghi"]);
        assert_eq!(mask.mask("x abcdefghi y"), "x *** y");
        assert_eq!(mask.mask("abcdefabcdef"), "***");
        let nested = SecretMask::new(["password", "pass"]);
        assert_eq!(nested.mask("my password, my pass"), "my ***, my ***");
        let repeated = SecretMask::new(["aaaa"]);
        assert_eq!(repeated.mask("aaaaa!"), "***!");
    }

    #[test]
    fn short_values_are_left_alone() {
        let mask = SecretMask::new(["abc", "", "on"]);
        assert!(mask.is_empty());
        assert_eq!(mask.mask("abc on YWJj"), "abc on YWJj");
        let counted_in_characters = SecretMask::new(["ééé"]);
        assert!(counted_in_characters.is_empty());
        assert_eq!(SecretMask::new(["éééé"]).mask("<éééé>"), "<***>");
    }

    #[test]
    fn a_run_keeps_no_secret_in_its_logs_error_or_traceback() {
        let mask = SecretMask::new(["hunter2-value"]);
        let mut run: Run = serde_json::from_value(json!({
            "id": "r1", "org": "o", "action_id": "a", "trigger": "manual", "trace_id": null,
            "started_at": 1, "duration_ms": 1.0, "fuel_used": 1, "peak_memory_bytes": 1,
            "outcome": "script_error", "error_type": "ValueError",
            "error_message": "bad token hunter2-value",
            "traceback": ["File \"main.py\", line 2: raise ValueError('hunter2-value')"],
            "logs": [{"level": "INFO", "logger": "print", "message": "token=hunter2-value",
                      "exc": "Traceback: hunter2-value"}],
            "logs_truncated": false, "input_count": 0, "output_count": null,
        }))
        .unwrap();
        mask.mask_run(&mut run);
        let shown = serde_json::to_string(&run).unwrap();
        assert!(!shown.contains("hunter2"), "{shown}");
        assert_eq!(run.error_message.as_deref(), Some("bad token ***"));
        assert_eq!(run.logs[0].message, "token=***");
        assert_eq!(run.logs[0].exc.as_deref(), Some("Traceback: ***"));
        assert!(run.traceback[0].ends_with("ValueError('***')"));
    }

    #[test]
    fn debug_output_hides_the_values() {
        let shown = format!("{:?}", SecretMask::new(["hunter2-value"]));
        assert!(!shown.contains("hunter2"), "{shown}");
    }
}
