//! Training losses: mean squared error and mean absolute error, as PyTorch's `MSELoss` and
//! `L1Loss` with the default `reduction='mean'` (mean over all N x h elements).

use crate::error::{Error, Result};
use crate::scalar::Real;
use faer::MatRef;
use std::str::FromStr;

/// A loss over predictions `y` and targets `t`, both `N x h`, averaged over all elements.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Loss {
    /// `mean((y - t)^2)`; gradient `2 (y - t) / (N h)`.
    #[default]
    Mse,
    /// `mean(|y - t|)`; gradient `sign(y - t) / (N h)` with `sign(0) = 0` (as PyTorch).
    L1,
}

impl FromStr for Loss {
    type Err = Error;
    /// `"mse"` or `"l1"` (case-insensitive).
    fn from_str(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "mse" => Ok(Loss::Mse),
            "l1" => Ok(Loss::L1),
            _ => Err(Error::param("loss", format!("`{s}` is not one of mse, l1"))),
        }
    }
}

impl std::fmt::Display for Loss {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Loss::Mse => "mse",
            Loss::L1 => "l1",
        })
    }
}

impl Loss {
    /// The loss of predictions against targets (same shape, at least one element), accumulated in
    /// f64.
    ///
    /// ```
    /// use mmfuse::lmf::Loss;
    /// use mmfuse::Matrix;
    /// let y = Matrix::from_vec(1, 2, vec![1.0f32, 3.0])?;
    /// let t = Matrix::from_vec(1, 2, vec![0.0f32, 3.0])?;
    /// assert_eq!(Loss::Mse.eval(y.as_mat_ref(), t.as_mat_ref())?, 0.5);
    /// assert_eq!(Loss::L1.eval(y.as_mat_ref(), t.as_mat_ref())?, 0.5);
    /// # Ok::<(), mmfuse::Error>(())
    /// ```
    pub fn eval<T: Real>(&self, pred: MatRef<'_, T>, target: MatRef<'_, T>) -> Result<f64> {
        if pred.nrows() != target.nrows() || pred.ncols() != target.ncols() {
            return Err(Error::Shape(format!(
                "predictions are {} x {} but targets are {} x {}",
                pred.nrows(),
                pred.ncols(),
                target.nrows(),
                target.ncols()
            )));
        }
        let count = pred.nrows() * pred.ncols();
        if count == 0 {
            return Err(Error::Empty("the loss of no elements".into()));
        }
        let mut sum = 0.0;
        for i in 0..pred.nrows() {
            for j in 0..pred.ncols() {
                sum += self.term(pred[(i, j)].to_f64() - target[(i, j)].to_f64());
            }
        }
        Ok(sum / count as f64)
    }

    /// One element's contribution to the sum, for a difference `y - t` computed in f64.
    #[inline]
    pub(crate) fn term(&self, diff: f64) -> f64 {
        match self {
            Loss::Mse => diff * diff,
            Loss::L1 => diff.abs(),
        }
    }

    /// The factor of the element gradient for `count` elements, as PyTorch computes it: `2 /
    /// count` (MSE) or `1 / count` (L1), rounded to T.
    pub(crate) fn grad_scale<T: Real>(&self, count: usize) -> T {
        match self {
            Loss::Mse => T::from_f64(2.0 / count as f64),
            Loss::L1 => T::from_f64(1.0 / count as f64),
        }
    }

    /// Adds the loss terms of a block of predictions to the returned sum and writes the
    /// gradient `dL/dy` (with the factor from [`Loss::grad_scale`]) into `grad`.
    pub(crate) fn block<T: Real>(&self, pred: &[T], target: &[T], scale: T, grad: &mut [T]) -> f64 {
        let mut sum = 0.0;
        for ((g, &y), &t) in grad.iter_mut().zip(pred).zip(target) {
            let d = y - t;
            sum += self.term(y.to_f64() - t.to_f64());
            *g = match self {
                // PyTorch's mse_loss_backward: norm * (input - target) * grad_output (= 1).
                Loss::Mse => scale * d,
                Loss::L1 => {
                    if d > T::ZERO {
                        scale
                    } else if d < T::ZERO {
                        -scale
                    } else {
                        // sign(0) = 0, and NaN stays NaN (caught by the divergence check).
                        d * scale
                    }
                }
            };
        }
        sum
    }
}
