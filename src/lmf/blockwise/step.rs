//! One training step at a time, for callers with their own loop (streaming data, custom
//! schedules, benchmarks): [`BlockOptimizer`] holds the optimiser's state,
//! [`BlockLmf::normalize`] applies the model's statistics once, and
//! [`BlockLmf::step_normalized`] runs forward, loss, backward, penalty and one update on
//! normalised inputs. [`BlockLmf::train`] is this loop with batching, validation and history.

use super::api::check_lambda;
use super::model::BlockLmf;
use super::optim::{Optimizer, OptimizerState};
use crate::error::Result;
use crate::lmf::loss::Loss;
use crate::lmf::model::{check_input_shapes, check_inputs, check_inputs_finite};
use crate::lmf::LmfOptions;
use crate::matrix::Matrix;
use crate::scalar::Real;
use faer::MatRef;

/// The state of an optimiser for one model's parameters.
pub struct BlockOptimizer<T: Real> {
    pub(crate) state: OptimizerState<T>,
    grads: Vec<T>,
}

impl<T: Real> BlockOptimizer<T> {
    /// A fresh optimiser (step 0) for `model`'s parameters.
    ///
    /// # Errors
    /// `InvalidParameter` for a learning rate, weight decay or optimiser setting outside its
    /// domain.
    pub fn new(
        model: &BlockLmf<T>,
        optimizer: Optimizer,
        lr: f64,
        weight_decay: f64,
    ) -> Result<Self> {
        optimizer.validate(lr, weight_decay)?;
        Ok(BlockOptimizer {
            state: OptimizerState::new(optimizer, lr, weight_decay, model.num_params()),
            grads: vec![T::ZERO; model.num_params()],
        })
    }

    /// Steps taken.
    pub fn steps(&self) -> u64 {
        self.state.steps()
    }
}

impl<T: Real> BlockLmf<T> {
    /// The inputs normalised with the model's statistics, `(x - mean) / scale` per modality.
    ///
    /// # Errors
    /// The input checks of [`BlockLmf::forward`].
    pub fn normalize(&self, xs: &[MatRef<'_, T>]) -> Result<Vec<Matrix<T>>> {
        let (rows, n) = check_inputs(&self.names, self.dims(), xs)?;
        rows.iter()
            .zip(&self.stats)
            .map(|(x, s)| {
                let d = s.mean.len();
                let mut out = vec![T::ZERO; n * d];
                s.apply(x, &mut out);
                Matrix::from_vec(n, d, out)
            })
            .collect()
    }

    /// One training step on a batch of inputs already normalised ([`BlockLmf::normalize`]):
    /// the objective `loss + penalty(lambda)`, its gradient, and one update by `optimizer`.
    /// Returns `(loss, penalty)` before the update.
    ///
    /// # Errors
    /// As [`BlockLmf::loss_and_gradients`]; `Shape` when `optimizer` was made for another model;
    /// `Diverged` when the loss, a gradient or a parameter is not finite (the parameters are
    /// then unchanged).
    pub fn step_normalized(
        &mut self,
        optimizer: &mut BlockOptimizer<T>,
        xs: &[MatRef<'_, T>],
        targets: MatRef<'_, T>,
        loss: Loss,
        lambda: f64,
        opts: &LmfOptions,
    ) -> Result<(f64, f64)> {
        opts.validate()?;
        check_lambda(lambda)?;
        if optimizer.grads.len() != self.num_params() {
            return Err(crate::error::Error::Shape(format!(
                "the optimiser was made for {} parameters; the model has {}",
                optimizer.grads.len(),
                self.num_params()
            )));
        }
        // Inputs are scanned for NaN and infinities only when the loss is not finite (a
        // non-finite input always makes it so): the scan would cost a few percent of a step.
        let (rows, n) = check_input_shapes(&self.names, self.dims(), xs)?;
        let t = self.check_targets(targets, n, loss)?;
        let slices: Vec<&[T]> = rows.iter().map(|r| &r[..]).collect();
        let grads = &mut optimizer.grads;
        let model: &BlockLmf<T> = self;
        let (value, pen) = opts
            .install(|| model.objective(&slices, n, loss, t.as_targets(), lambda, true, grads))?;
        if !value.is_finite() {
            check_inputs_finite(&self.names, self.dims(), &rows)?;
            return Err(crate::error::Error::Diverged(format!(
                "the {loss} loss is {value}; the model keeps its weights"
            )));
        }
        let (state, grads) = (&mut optimizer.state, &optimizer.grads);
        let params = &mut self.params;
        opts.install(|| state.step(params, grads))??;
        Ok((value, pen))
    }
}
