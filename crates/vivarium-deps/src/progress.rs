//! Progress on stderr for people watching a terminal: a spinner while resolving, a bar while
//! installing. Hidden unless `DepsConfig::progress` is set and stderr is a terminal, so servers
//! and tests print nothing.

use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// A spinner or bar that may be hidden.
pub(crate) struct Progress {
    bar: ProgressBar,
}

impl Progress {
    /// A spinner (for resolving) when `enabled` and stderr is a terminal.
    pub fn spinner(enabled: bool, message: &str) -> Self {
        let bar = ProgressBar::with_draw_target(None, target(enabled));
        bar.set_style(ProgressStyle::default_spinner());
        bar.set_message(message.to_string());
        if !bar.is_hidden() {
            bar.enable_steady_tick(Duration::from_millis(120));
        }
        Self { bar }
    }

    /// A bar over `total` steps (for installing) when `enabled` and stderr is a terminal.
    pub fn bar(enabled: bool, total: u64, message: &str) -> Self {
        let bar = ProgressBar::with_draw_target(Some(total), target(enabled));
        let style = ProgressStyle::with_template("{bar:30} {pos}/{len} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar());
        bar.set_style(style);
        bar.set_message(message.to_string());
        Self { bar }
    }

    /// Replaces the message.
    pub fn message(&self, message: &str) {
        self.bar.set_message(message.to_string());
    }

    /// Advances the bar by one step.
    pub fn step(&self) {
        self.bar.inc(1);
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.bar.finish_and_clear();
    }
}

fn target(enabled: bool) -> ProgressDrawTarget {
    if enabled && std::io::stderr().is_terminal() {
        ProgressDrawTarget::stderr()
    } else {
        ProgressDrawTarget::hidden()
    }
}
