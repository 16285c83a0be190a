//! The block model's checked front ends: forward, classes, loss and gradients.

use super::model::BlockLmf;
use super::pass::{self, PassModel, Targets};
use super::penalty::{add_penalty_gradient, block_norms_sq, penalty_value};
use crate::error::{Error, Result};
use crate::lmf::loss::{class_labels, Loss};
use crate::lmf::model::{
    check_finite_slice, check_inputs, checked_count, contiguous, order_by_name,
};
use crate::lmf::LmfOptions;
use crate::matrix::Matrix;
use crate::scalar::Real;
use faer::MatRef;
use std::borrow::Cow;

/// Checked targets: contiguous values or class labels.
pub(crate) enum CheckedTargets<'a, T: Clone> {
    Values(Cow<'a, [T]>),
    Labels(Vec<usize>),
}

impl<T: Real> CheckedTargets<'_, T> {
    pub(crate) fn as_targets(&self) -> Targets<'_, T> {
        match self {
            CheckedTargets::Values(v) => Targets::Values(v),
            CheckedTargets::Labels(l) => Targets::Labels(l),
        }
    }
}

impl<T: Real> BlockLmf<T> {
    pub(crate) fn pass_model(&self, normalised: bool) -> PassModel<'_, T> {
        PassModel {
            layout: &self.layout,
            params: &self.params,
            stats: (!normalised).then_some(&self.stats[..]),
        }
    }

    /// Checks targets for `loss` against `n` rows: `n x h` finite values (MSE, L1) or `n x 1`
    /// class labels in `0..h` (cross-entropy).
    pub(crate) fn check_targets<'a>(
        &self,
        targets: MatRef<'a, T>,
        n: usize,
        loss: Loss,
    ) -> Result<CheckedTargets<'a, T>> {
        let h = self.out_dim();
        if loss == Loss::CrossEntropy {
            return Ok(CheckedTargets::Labels(class_labels(targets, n, h)?));
        }
        if targets.nrows() != n || targets.ncols() != h {
            return Err(Error::Shape(format!(
                "targets are {} x {}; expected {n} x {h} (rows of the inputs x out_dim)",
                targets.nrows(),
                targets.ncols()
            )));
        }
        let data = contiguous(targets);
        check_finite_slice(&data, h, "targets")?;
        Ok(CheckedTargets::Values(data))
    }

    /// Outputs `y` (`N x h`) for raw inputs in the model's order (`xs[m]` is `N x d_m`; the
    /// model normalises them with its statistics).
    ///
    /// # Errors
    /// Wrong number of inputs, feature sizes that differ from the model's, row counts that
    /// differ, no rows, a NaN or infinity in an input, invalid options.
    pub fn forward(&self, xs: &[MatRef<'_, T>], opts: &LmfOptions) -> Result<Matrix<T>> {
        self.forward_on(mmfuse_kernels::arch(), xs, opts)
    }

    /// [`BlockLmf::forward`] with the SIMD passes on a given instruction set.
    pub fn forward_on(
        &self,
        arch: mmfuse_kernels::Arch,
        xs: &[MatRef<'_, T>],
        opts: &LmfOptions,
    ) -> Result<Matrix<T>> {
        opts.validate()?;
        let (rows, n) = check_inputs(&self.names, self.dims(), xs)?;
        let slices: Vec<&[T]> = rows.iter().map(|r| &r[..]).collect();
        checked_count::<T>(&[n, self.out_dim()], "the outputs")?;
        let mut out = Matrix::zeros_for_output(n, self.out_dim());
        let pm = self.pass_model(false);
        opts.install(|| pass::forward(arch, &pm, &slices, n, out.as_mut_slice()))?;
        Ok(out)
    }

    /// [`BlockLmf::forward`] with inputs given by modality name, in any order (each once).
    pub fn forward_named(
        &self,
        named: &[(&str, MatRef<'_, T>)],
        opts: &LmfOptions,
    ) -> Result<Matrix<T>> {
        self.forward(&order_by_name(&self.names, named)?, opts)
    }

    /// The predicted class of each row: the index of its largest output (the first on ties),
    /// for a model trained with cross-entropy.
    ///
    /// # Errors
    /// As [`BlockLmf::forward`].
    pub fn predict_classes(&self, xs: &[MatRef<'_, T>], opts: &LmfOptions) -> Result<Vec<usize>> {
        let y = self.forward(xs, opts)?;
        Ok((0..y.nrows())
            .map(|i| {
                let row = y.row(i);
                let mut best = 0;
                for (k, v) in row.iter().enumerate() {
                    if *v > row[best] {
                        best = k;
                    }
                }
                best
            })
            .collect())
    }

    /// The penalty `lambda (sum_I ||W_I||_F^q)^(2/q)`, `q = 2p / (p + 1)`, at the current
    /// parameters.
    pub fn penalty(&self, lambda: f64) -> f64 {
        penalty_value(&block_norms_sq(&self.layout, &self.params), self.p, lambda)
    }

    /// The training objective on raw inputs, `loss(y, targets) + penalty(lambda)`, and its
    /// gradient with respect to every parameter (flat layout, as [`BlockLmf::params`]), the
    /// normalisation statistics held fixed. Targets are `N x h` (MSE, L1) or `N x 1` class
    /// labels (cross-entropy).
    ///
    /// # Errors
    /// As [`BlockLmf::forward`]; targets of the wrong shape, non-finite, or labels that are not
    /// integers in `0..h`; lambda negative or not finite.
    pub fn loss_and_gradients(
        &self,
        xs: &[MatRef<'_, T>],
        targets: MatRef<'_, T>,
        loss: Loss,
        lambda: f64,
        opts: &LmfOptions,
    ) -> Result<(f64, Vec<T>)> {
        opts.validate()?;
        check_lambda(lambda)?;
        let (rows, n) = check_inputs(&self.names, self.dims(), xs)?;
        let t = self.check_targets(targets, n, loss)?;
        let slices: Vec<&[T]> = rows.iter().map(|r| &r[..]).collect();
        let mut grads = vec![T::ZERO; self.layout.len];
        let (data, pen) = opts.install(|| {
            self.objective(&slices, n, loss, t.as_targets(), lambda, false, &mut grads)
        })?;
        Ok((data + pen, grads))
    }

    /// The mean loss and the penalty over `n` checked rows; the gradient of their sum into
    /// `grads`.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn objective(
        &self,
        xs: &[&[T]],
        n: usize,
        loss: Loss,
        targets: Targets<'_, T>,
        lambda: f64,
        normalised: bool,
        grads: &mut [T],
    ) -> (f64, f64) {
        let pm = self.pass_model(normalised);
        let arch = mmfuse_kernels::arch();
        let sum = pass::loss_and_gradients(arch, &pm, xs, n, loss, targets, grads);
        let count = if loss == Loss::CrossEntropy {
            n
        } else {
            n * self.out_dim()
        };
        let pen = add_penalty_gradient(&self.layout, &self.params, self.p, lambda, grads);
        (sum / count as f64, pen)
    }
}

/// Checks a penalty weight (finite, >= 0).
pub(crate) fn check_lambda(lambda: f64) -> Result<()> {
    if !(lambda.is_finite() && lambda >= 0.0) {
        return Err(Error::param(
            "reg",
            format!("the penalty weight lambda must be finite and >= 0, got {lambda}"),
        ));
    }
    Ok(())
}
