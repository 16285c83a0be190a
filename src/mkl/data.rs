//! Kernels built from raw per-modality data, for MKL's data-driven form: each modality keeps
//! its training rows, its kernel (with defaults such as gamma = 1/d filled in) and the
//! normalisation statistics of its training Gram matrix, so that a test kernel
//! K_m(X_test, X_train) is built and normalised exactly as the training one was.

use crate::error::{Error, Result};
use crate::gram::{
    check_finite_matrix, cross_gram, self_similarities, GramOptions, Kernel, Normalization,
    TrainStats,
};
use crate::matrix::Matrix;
use faer::MatRef;

/// One modality of the data-driven form: a name, its training data and how its kernel is made.
#[derive(Clone, Debug, PartialEq)]
pub struct DataKernel {
    /// Name of the modality (for matching test data to it).
    pub name: String,
    /// The kernel, resolved for the training data's feature count (no defaults left open).
    pub kernel: Kernel,
    /// The training data, n x d, row-major.
    pub train: Matrix<f64>,
    /// Normalisation statistics of the training Gram matrix.
    pub stats: TrainStats,
}

impl DataKernel {
    /// Builds the modality from training data and returns it with its normalised training
    /// Gram matrix (n x n). Errors: empty or non-finite data, bad kernel parameters, a
    /// normalisation that cannot apply (e.g. trace normalisation of a zero kernel).
    pub fn new(
        name: &str,
        train: Matrix<f64>,
        kernel: &Kernel,
        normalization: Normalization,
        opts: &GramOptions,
    ) -> Result<(Self, Matrix<f64>)> {
        if name.is_empty() {
            return Err(Error::param("name", "a modality needs a non-empty name"));
        }
        let kernel = kernel.resolve(train.ncols())?;
        let what = format!("training data of modality `{name}`");
        if train.nrows() == 0 || train.ncols() == 0 {
            return Err(Error::Empty(format!(
                "{what} is {} x {}",
                train.nrows(),
                train.ncols()
            )));
        }
        check_finite_matrix(&train, &what)?;
        let mut k = crate::gram::gram(train.as_mat_ref(), &kernel, opts)?;
        let stats = TrainStats::from_gram(&k, normalization)?;
        stats.apply_train(&mut k)?;
        Ok((
            DataKernel {
                name: name.to_string(),
                kernel,
                train,
                stats,
            },
            k,
        ))
    }

    /// The normalised test kernel K(X_test, X_train), n_test x n_train, for test data with the
    /// training data's feature count.
    pub fn test_kernel(&self, test: MatRef<'_, f64>, opts: &GramOptions) -> Result<Matrix<f64>> {
        if test.ncols() != self.train.ncols() {
            return Err(Error::Shape(format!(
                "test data of modality `{}` has {} features, the training data {}",
                self.name,
                test.ncols(),
                self.train.ncols()
            )));
        }
        let mut k = cross_gram(test, self.train.as_mat_ref(), &self.kernel, opts)?;
        let test_self = match self.stats.kind {
            Normalization::UnitDiag => Some(self_similarities(test, &self.kernel)?),
            _ => None,
        };
        self.stats.apply_cross(&mut k, test_self.as_deref())?;
        Ok(k)
    }
}
