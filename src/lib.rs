//! mmfuse: multimodal fusion engine.
#![warn(missing_docs)]

pub mod error;
pub mod gram;
pub mod io;
pub mod matrix;
pub mod scalar;
pub mod util;

#[cfg(feature = "cli")]
pub mod cli;

pub use error::{Error, Result};
pub use matrix::Matrix;
pub use scalar::Real;
