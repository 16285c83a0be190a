//! Progress bars on stderr (indicatif) for the long commands.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// A bar of `len` steps labelled `step`, hidden when `quiet` (indicatif also hides it by
/// itself when stderr is not a terminal, so pipelines and CI logs stay clean).
pub(crate) fn bar(quiet: bool, len: usize, step: &str) -> ProgressBar {
    let target = if quiet {
        ProgressDrawTarget::hidden()
    } else {
        ProgressDrawTarget::stderr()
    };
    let pb = ProgressBar::with_draw_target(Some(len as u64), target);
    pb.set_style(
        ProgressStyle::with_template("{prefix:>18} [{bar:30}] {pos}/{len} {msg} ({elapsed})")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    pb.set_prefix(step.to_string());
    pb
}

/// Where an MKL fit reports its outer iterations: on a terminal, a bar (the iteration out of
/// `max_iter`, with the gap and the cache hit rate in its message); elsewhere (logs, pipes,
/// tests), one line per iteration, since a hidden bar would leave a log without them; nothing
/// when quiet.
pub(crate) enum FitProgress {
    Bar(ProgressBar),
    Lines,
    Quiet,
}

impl FitProgress {
    pub(crate) fn new(quiet: bool, max_iter: usize, label: &str) -> Self {
        use std::io::IsTerminal;
        if quiet {
            FitProgress::Quiet
        } else if std::io::stderr().is_terminal() {
            FitProgress::Bar(bar(false, max_iter, label))
        } else {
            FitProgress::Lines
        }
    }

    /// Reports outer iteration `iteration`; `line` is the text (made only when shown).
    pub(crate) fn report(&self, iteration: usize, line: impl FnOnce() -> String) {
        match self {
            FitProgress::Bar(pb) => {
                pb.set_position(iteration as u64);
                pb.set_message(line());
            }
            FitProgress::Lines => eprintln!("{}", line()),
            FitProgress::Quiet => {}
        }
    }

    /// Removes the bar (the fit's summary follows on stdout or in the report).
    pub(crate) fn finish(&self) {
        if let FitProgress::Bar(pb) = self {
            pb.finish_and_clear();
        }
    }
}

impl Drop for FitProgress {
    /// A fit that fails leaves no half-drawn bar above its error message.
    fn drop(&mut self) {
        self.finish();
    }
}
