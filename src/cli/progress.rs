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
