//! Gram (kernel) matrices: K(X, X) and K(X, Y) for six kernels, normalisations, weighted
//! combinations, rows on demand, and kernel PCA.

mod analysis;
mod assemble;
mod centre;
mod combine;
mod input;
mod kpca;
mod normalize;
mod par;
mod rows;
mod side;
mod spec;
mod stream;

pub use analysis::{kernel_target_alignment, median_heuristic_gamma};
pub use assemble::{cross_gram, gram, gram_into, GramOptions};
pub use combine::{combine, combine_into};
pub(crate) use input::check_finite_matrix;
pub use kpca::{fisher_criterion, kernel_pca, KernelPca};
pub use normalize::{normalized_gram, self_similarities, Normalization, TrainStats};
pub use rows::{CombinedRows, KernelRows, RowSource};
pub use side::PreparedData;
pub use spec::{Kernel, DEFAULT_COEF0, DEFAULT_DEGREE};
pub use stream::gram_into_streaming;
