//! Gram (kernel) matrices: K(X, X) and K(X, Y) for six kernels, normalisations, combinations,
//! and rows on demand.

mod assemble;
mod input;
mod spec;

pub use assemble::{cross_gram, gram, GramOptions};
pub use spec::{Kernel, DEFAULT_COEF0, DEFAULT_DEGREE};
