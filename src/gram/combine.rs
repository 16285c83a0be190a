//! Weighted sums of Gram matrices, sum_m beta_m K_m.

use crate::error::{Error, Result};
use crate::matrix::Matrix;
use crate::scalar::Real;
use rayon::prelude::*;

/// `sum_m beta[m] * kernels[m]`. All matrices must have the same shape; `beta` must be finite
/// and have one weight per matrix (weights may be negative or zero; MKL's are >= 0).
///
/// ```
/// use mmfuse::{gram::combine, Matrix};
/// let a = Matrix::from_vec(1, 2, vec![1.0f64, 2.0])?;
/// let b = Matrix::from_vec(1, 2, vec![10.0f64, 20.0])?;
/// let c = combine(&[&a, &b], &[0.5, 0.1])?;
/// assert_eq!(c.as_slice(), &[1.5, 3.0]);
/// # Ok::<(), mmfuse::Error>(())
/// ```
pub fn combine<T: Real>(kernels: &[&Matrix<T>], beta: &[f64]) -> Result<Matrix<T>> {
    let first = kernels
        .first()
        .ok_or_else(|| Error::Empty("combine needs at least one kernel".into()))?;
    let mut out =
        Matrix::try_zeros_for_output(first.nrows(), first.ncols(), "the combined kernel")?;
    combine_into(kernels, beta, &mut out)?;
    Ok(out)
}

/// [`combine`] into an existing matrix (overwritten), to reuse its memory across iterations.
pub fn combine_into<T: Real>(
    kernels: &[&Matrix<T>],
    beta: &[f64],
    out: &mut Matrix<T>,
) -> Result<()> {
    if kernels.len() != beta.len() {
        return Err(Error::Shape(format!(
            "{} kernels but {} weights",
            kernels.len(),
            beta.len()
        )));
    }
    if let Some((m, b)) = beta.iter().enumerate().find(|(_, b)| !b.is_finite()) {
        return Err(Error::param("beta", format!("weight {m} is {b}")));
    }
    for (m, k) in kernels.iter().enumerate() {
        if k.shape() != out.shape() {
            return Err(Error::Shape(format!(
                "kernel {m} is {} x {}, expected {} x {}",
                k.nrows(),
                k.ncols(),
                out.nrows(),
                out.ncols()
            )));
        }
    }
    let ncols = out.ncols().max(1);
    let weights: Vec<T> = beta.iter().map(|&b| T::from_f64(b)).collect();
    out.as_mut_slice()
        .par_chunks_mut(ncols * 64)
        .enumerate()
        .for_each(|(c, chunk)| {
            let start = c * ncols * 64;
            chunk.fill(T::ZERO);
            for (k, &w) in kernels.iter().zip(&weights) {
                let src = &k.as_slice()[start..start + chunk.len()];
                for (o, &s) in chunk.iter_mut().zip(src) {
                    *o = w.mul_add(s, *o);
                }
            }
        });
    Ok(())
}
