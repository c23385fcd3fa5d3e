//! Progress of long CLI runs: an indicatif bar when the stream it goes to is
//! a terminal, otherwise a plain line every [`PLAIN_EVERY`] (logs and CI
//! keep readable text). Used by `demo`, `import`, `export` and `sim`;
//! `bench` can use it the same way:
//!
//! ```ignore
//! let mut p = Progress::stderr("sets", Some(total));
//! for i in 0..total {
//!     p.update(Some(i + 1), || format!("{} sets, {} failed", i + 1, failed));
//! }
//! p.finish();
//! ```

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Gap between two plain progress lines.
pub const PLAIN_EVERY: Duration = Duration::from_secs(1);

/// Gap between two updates of a bar's message (formatting it costs).
const BAR_EVERY: Duration = Duration::from_millis(100);

/// Where progress goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    /// Standard error (most commands: stdout carries their output).
    Stderr,
    /// Standard output (`sim`, whose progress is part of its report).
    Stdout,
}

/// A progress display: a bar on a terminal, plain lines otherwise.
pub struct Progress {
    /// The bar, when the stream is a terminal.
    bar: Option<ProgressBar>,
    /// Where plain lines go.
    stream: Stream,
    /// A prefix for plain lines (`"sim: "`, or empty).
    prefix: String,
    /// When the last plain line or bar message was written.
    last: Option<Instant>,
    /// Minimum gap between plain lines.
    every: Duration,
}

impl Progress {
    /// Progress on stderr; `total` gives the bar a length (a spinner without).
    pub fn stderr(label: &str, total: Option<u64>) -> Progress {
        Progress::new(Stream::Stderr, label, total, "")
    }

    /// Progress on stdout, plain lines prefixed with `prefix`.
    pub fn stdout(label: &str, total: Option<u64>, prefix: &str) -> Progress {
        Progress::new(Stream::Stdout, label, total, prefix)
    }

    fn new(stream: Stream, label: &str, total: Option<u64>, prefix: &str) -> Progress {
        let terminal = match stream {
            Stream::Stderr => std::io::stderr().is_terminal(),
            Stream::Stdout => std::io::stdout().is_terminal(),
        };
        let bar = terminal.then(|| {
            let target = match stream {
                Stream::Stderr => ProgressDrawTarget::stderr(),
                Stream::Stdout => ProgressDrawTarget::stdout(),
            };
            let bar = match total {
                Some(t) => ProgressBar::with_draw_target(Some(t), target).with_style(
                    ProgressStyle::with_template("{prefix} [{elapsed_precise}] {bar:30.cyan/blue} {pos}/{len} {msg}")
                        .unwrap_or_else(|_| ProgressStyle::default_bar()),
                ),
                None => ProgressBar::with_draw_target(None, target).with_style(
                    ProgressStyle::with_template("{prefix} [{elapsed_precise}] {spinner} {msg}")
                        .unwrap_or_else(|_| ProgressStyle::default_spinner()),
                ),
            };
            bar.set_prefix(label.to_owned());
            bar.enable_steady_tick(Duration::from_millis(200));
            bar
        });
        Progress { bar, stream, prefix: prefix.to_owned(), last: Some(Instant::now()), every: PLAIN_EVERY }
    }

    /// Plain lines at most every `every` (default [`PLAIN_EVERY`]).
    pub fn every(mut self, every: Duration) -> Progress {
        self.every = every;
        self
    }

    /// Moves to `pos` (when known) and describes the state with `line`,
    /// which is only called when it will be shown: as the bar's message,
    /// or as a plain line at most every [`PLAIN_EVERY`].
    pub fn update(&mut self, pos: Option<u64>, line: impl FnOnce() -> String) {
        if let (Some(bar), Some(p)) = (&self.bar, pos) {
            bar.set_position(p);
        }
        let gap = if self.bar.is_some() { BAR_EVERY } else { self.every };
        if self.last.is_some_and(|t| t.elapsed() < gap) {
            return;
        }
        self.last = Some(Instant::now());
        match &self.bar {
            Some(bar) => bar.set_message(line()),
            None => self.print(&line()),
        }
    }

    /// Sets the bar's length (once known).
    pub fn set_total(&self, total: u64) {
        if let Some(bar) = &self.bar {
            bar.set_length(total);
        }
    }

    /// A line shown whatever the pace (a phase starts): above the bar, or plain.
    pub fn event(&mut self, text: &str) {
        match &self.bar {
            Some(bar) => bar.println(text),
            None => self.print(text),
        }
    }

    fn print(&self, text: &str) {
        let line = format!("{}{text}", self.prefix);
        match self.stream {
            Stream::Stderr => eprintln!("{line}"),
            Stream::Stdout => println!("{line}"),
        }
    }

    /// Removes the bar (plain lines stay as they are).
    /// True when it draws a bar or spinner (stderr or stdout is a terminal).
    pub fn is_bar(&self) -> bool {
        self.bar.is_some()
    }

    pub fn finish(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.finish();
    }
}
