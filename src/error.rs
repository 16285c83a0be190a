//! The one error type of the crate.
//!
//! Every public entry point returns [`Result<T>`]; messages name the argument and the problem so
//! that a CLI can print them as they are.

use std::path::PathBuf;

/// Everything that can go wrong in mmfuse.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Two arrays whose shapes must agree do not, or an array has the wrong number of dimensions.
    #[error("shape mismatch: {0}")]
    Shape(String),
    /// An input with no rows, no columns or no elements where at least one is needed.
    #[error("empty input: {0}")]
    Empty(String),
    /// A NaN or infinite value where only finite values are allowed.
    #[error("non-finite value ({value}) in {what} at row {row}, column {col}")]
    NonFinite {
        /// Which argument held the value.
        what: String,
        /// Row index (0-based).
        row: usize,
        /// Column index (0-based).
        col: usize,
        /// The offending value, printed.
        value: String,
    },
    /// A scalar parameter outside its domain (gamma <= 0, degree 0, ...).
    #[error("invalid parameter `{name}`: {reason}")]
    InvalidParameter {
        /// Parameter name as the user spells it.
        name: String,
        /// What is wrong and what is allowed.
        reason: String,
    },
    /// A matrix that must be symmetric (a training kernel) is not, beyond the tolerance; the
    /// message names the first pair of entries that differ.
    #[error("not symmetric: {0}")]
    NotSymmetric(String),
    /// A computation was stopped before it finished (another thread found a bad input, or the
    /// caller asked it to stop); nothing it would have returned is valid.
    #[error("cancelled: {0}")]
    Cancelled(String),
    /// A matrix that must be positive semi-definite is clearly not.
    #[error("not positive semi-definite: {0}")]
    NotPsd(String),
    /// An iterative method stopped before reaching its tolerance.
    #[error("not converged: {0}")]
    NotConverged(String),
    /// Training produced a NaN or an infinity (loss, gradient or parameter); the message says
    /// where. The model is left at its last finite weights.
    #[error("training diverged: {0}")]
    Diverged(String),
    /// The result would need more memory than allowed.
    #[error("too large: {what} needs {bytes} bytes (limit {limit} bytes)")]
    TooLarge {
        /// What was to be allocated.
        what: String,
        /// Bytes it would need.
        bytes: u128,
        /// The limit in force.
        limit: u128,
    },
    /// A file could not be opened, read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A file was read but its content is not what its format requires.
    #[error("{}: {reason}", path.display())]
    Format {
        /// The file (or a description of the source when not a file).
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
}

/// `Result` with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// Shorthand for [`Error::InvalidParameter`].
    pub fn param(name: impl Into<String>, reason: impl Into<String>) -> Self {
        Error::InvalidParameter {
            name: name.into(),
            reason: reason.into(),
        }
    }
}
