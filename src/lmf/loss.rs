//! Training losses: mean squared error and mean absolute error, as PyTorch's `MSELoss` and
//! `L1Loss` with the default `reduction='mean'` (mean over all N x h elements), and softmax
//! cross-entropy over h classes as `CrossEntropyLoss` (mean over the N rows; the block model
//! only).

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
    /// Softmax cross-entropy: `mean_n (logsumexp(y_n) - y_n[t_n])` for class labels `t_n` in
    /// `0..h` (targets `N x 1`, integer values); gradient `(softmax(y_n) - onehot(t_n)) / N`.
    /// Needs h >= 2. Only the block model (`lmf::blockwise`) trains with it.
    CrossEntropy,
}

impl FromStr for Loss {
    type Err = Error;
    /// `"mse"`, `"l1"` or `"xent"` (also `"cross-entropy"`; case-insensitive).
    fn from_str(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "mse" => Ok(Loss::Mse),
            "l1" => Ok(Loss::L1),
            "xent" | "cross-entropy" | "cross_entropy" => Ok(Loss::CrossEntropy),
            _ => Err(Error::param(
                "loss",
                format!("`{s}` is not one of mse, l1, xent"),
            )),
        }
    }
}

impl std::fmt::Display for Loss {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Loss::Mse => "mse",
            Loss::L1 => "l1",
            Loss::CrossEntropy => "xent",
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
        if *self == Loss::CrossEntropy {
            let labels = class_labels(target, pred.nrows(), pred.ncols())?;
            let h = pred.ncols();
            let mut row = vec![T::ZERO; h];
            let mut sum = 0.0;
            for (i, &c) in labels.iter().enumerate() {
                for (k, v) in row.iter_mut().enumerate() {
                    *v = pred[(i, k)];
                }
                sum += softmax_row_loss(&row, c, None);
            }
            return Ok(sum / labels.len() as f64);
        }
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
            Loss::Mse | Loss::CrossEntropy => diff * diff,
            Loss::L1 => diff.abs(),
        }
    }

    /// The factor of the element gradient for `count` elements, as PyTorch computes it: `2 /
    /// count` (MSE) or `1 / count` (L1), rounded to T.
    pub(crate) fn grad_scale<T: Real>(&self, count: usize) -> T {
        match self {
            Loss::Mse => T::from_f64(2.0 / count as f64),
            Loss::L1 | Loss::CrossEntropy => T::from_f64(1.0 / count as f64),
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
                // (Cross-entropy is not elementwise: `Loss::check_elementwise` keeps it away.)
                Loss::Mse | Loss::CrossEntropy => scale * d,
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

impl Loss {
    /// Errors for a loss that is not elementwise (cross-entropy), for the plain LMF model.
    pub(crate) fn check_elementwise(&self) -> Result<()> {
        if *self == Loss::CrossEntropy {
            return Err(Error::param(
                "loss",
                "softmax cross-entropy (xent) is implemented for the block model \
                 (lmf::blockwise, `--blocks`); the plain LMF model trains with mse or l1",
            ));
        }
        Ok(())
    }
}

/// The class labels of an `N x 1` target matrix for `h` classes: integer values in `0..h`.
pub(crate) fn class_labels<T: Real>(
    target: MatRef<'_, T>,
    n: usize,
    h: usize,
) -> Result<Vec<usize>> {
    if h < 2 {
        return Err(Error::param(
            "loss",
            format!("softmax cross-entropy needs h >= 2 classes (outputs), got {h}"),
        ));
    }
    if target.nrows() != n || target.ncols() != 1 {
        return Err(Error::Shape(format!(
            "cross-entropy targets must be {n} x 1 class labels, got {} x {}",
            target.nrows(),
            target.ncols()
        )));
    }
    if n == 0 {
        return Err(Error::Empty("the loss of no rows".into()));
    }
    (0..n)
        .map(|i| {
            let v = target[(i, 0)].to_f64();
            if v.fract() == 0.0 && v >= 0.0 && v < h as f64 {
                Ok(v as usize)
            } else {
                Err(Error::param(
                    "targets",
                    format!("row {i}: class label {v} is not an integer in 0..{h}"),
                ))
            }
        })
        .collect()
}

/// `logsumexp(y) - y[label]` of one row, in f64; with `grad`, also writes
/// `scale (softmax(y) - onehot(label))` into it.
pub(crate) fn softmax_row_loss<T: Real>(
    y: &[T],
    label: usize,
    grad: Option<(&mut [T], f64)>,
) -> f64 {
    let max = y.iter().fold(f64::NEG_INFINITY, |a, v| a.max(v.to_f64()));
    let sum: f64 = y.iter().map(|v| (v.to_f64() - max).exp()).sum();
    let lse = max + sum.ln();
    if let Some((g, scale)) = grad {
        for (k, (gk, v)) in g.iter_mut().zip(y).enumerate() {
            let p = (v.to_f64() - lse).exp();
            let onehot = if k == label { 1.0 } else { 0.0 };
            *gk = T::from_f64(scale * (p - onehot));
        }
    }
    lse - y[label].to_f64()
}
