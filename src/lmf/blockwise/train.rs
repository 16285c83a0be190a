//! Training the block model: normalisation statistics from the training rows, mini-batches
//! (seeded shuffle), Adam or SGD with momentum, the lp penalty, per-epoch history with the
//! relevance, a validation split and early stopping.

use super::api::check_lambda;
use super::model::BlockLmf;
use super::optim::{Optimizer, OptimizerState};
use super::pass::{self, Targets};
use super::stats::ModalityStats;
use crate::error::{Error, Result};
use crate::lmf::loss::{softmax_row_loss, Loss};
use crate::lmf::model::{check_inputs, order_by_name};
use crate::lmf::LmfOptions;
use crate::scalar::Real;
use crate::util::SplitMix64;
use faer::MatRef;
use std::time::Instant;

/// Options of [`BlockLmf::train`].
#[derive(Clone, Debug, PartialEq)]
pub struct BlockTrainOptions {
    /// Passes over the training rows, >= 1. Default 50.
    pub epochs: usize,
    /// Rows per mini-batch, >= 1. Default 64.
    pub batch_size: usize,
    /// Learning rate. Default 1e-2.
    pub lr: f64,
    /// Loss: MSE (default), L1, or softmax cross-entropy (targets `N x 1` class labels).
    pub loss: Loss,
    /// The penalty weight lambda of `lambda (sum_I ||W_I||_F^q)^(2/q)`, >= 0. Default 1e-3.
    pub reg: f64,
    /// Adam (default, PyTorch's betas and epsilon) or SGD with momentum.
    pub optimizer: Optimizer,
    /// L2 penalty added to every gradient (factors, fusion weights, bias), >= 0. Default 0.
    pub weight_decay: f64,
    /// Seed of the per-epoch shuffles. Default 0.
    pub seed: u64,
    /// Shuffle the training rows every epoch. Default true.
    pub shuffle: bool,
    /// Share of the rows held out for validation, in [0, 1): the last `floor(fraction N)` rows.
    /// Default 0.
    pub validation_fraction: f64,
    /// Early stopping after this many epochs without a lower validation loss, ending with the
    /// best epoch's weights. Needs a validation split. Default None.
    pub patience: Option<usize>,
    /// Threads (and nothing else: the chunking of a batch is fixed).
    pub exec: LmfOptions,
}

impl Default for BlockTrainOptions {
    fn default() -> Self {
        BlockTrainOptions {
            epochs: 50,
            batch_size: 64,
            lr: 1e-2,
            loss: Loss::Mse,
            reg: 1e-3,
            optimizer: Optimizer::default(),
            weight_decay: 0.0,
            seed: 0,
            shuffle: true,
            validation_fraction: 0.0,
            patience: None,
            exec: LmfOptions::default(),
        }
    }
}

impl BlockTrainOptions {
    /// Checks every option's domain.
    pub fn validate(&self) -> Result<()> {
        if self.epochs == 0 {
            return Err(Error::param("epochs", "must be >= 1"));
        }
        if self.batch_size == 0 {
            return Err(Error::param("batch_size", "must be >= 1"));
        }
        check_lambda(self.reg)?;
        self.optimizer.validate(self.lr, self.weight_decay)?;
        if !(0.0..1.0).contains(&self.validation_fraction) {
            return Err(Error::param(
                "validation_fraction",
                format!("{} is not in [0, 1)", self.validation_fraction),
            ));
        }
        match self.patience {
            Some(0) => return Err(Error::param("patience", "must be >= 1")),
            Some(_) if self.validation_fraction == 0.0 => {
                return Err(Error::param(
                    "patience",
                    "early stopping needs a validation split (validation_fraction > 0)",
                ))
            }
            _ => {}
        }
        self.exec.validate()
    }
}

/// What [`BlockLmf::train`] reports after each epoch.
#[derive(Clone, Debug, PartialEq)]
pub struct BlockEpochReport {
    /// 1-based epoch number.
    pub epoch: usize,
    /// Epochs planned.
    pub epochs: usize,
    /// Mean training loss of the epoch (batch losses weighted by batch size; without the
    /// penalty).
    pub train_loss: f64,
    /// Validation loss after the epoch, when there is a validation split.
    pub val_loss: Option<f64>,
    /// The penalty at the end of the epoch.
    pub penalty: f64,
    /// Relevance shares of the blocks at the end of the epoch, in block order.
    pub relevance: Vec<f64>,
    /// Wall-clock seconds of the epoch.
    pub seconds: f64,
}

/// The history of a training run.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct BlockTrainHistory {
    /// Block names (the order of every relevance vector).
    pub blocks: Vec<String>,
    /// Per epoch: the training loss.
    pub train_loss: Vec<f64>,
    /// Per epoch: the validation loss (empty without a split).
    pub val_loss: Vec<f64>,
    /// Per epoch: the penalty.
    pub penalty: Vec<f64>,
    /// Per epoch: the relevance shares.
    pub relevance: Vec<Vec<f64>>,
    /// Epoch (1-based) with the lowest validation loss.
    pub best_epoch: Option<usize>,
    /// Whether early stopping ended the run.
    pub stopped_early: bool,
    /// Optimiser steps taken.
    pub steps: u64,
}

/// Copies the rows `rows` (row-major, `d` columns) of `x` normalised by `stats`.
fn normalised_rows<T: Real>(
    x: &[T],
    d: usize,
    rows: std::ops::Range<usize>,
    stats: &ModalityStats<T>,
) -> Vec<T> {
    let mut out = vec![T::ZERO; rows.len() * d];
    stats.apply(&x[rows.start * d..rows.end * d], &mut out);
    out
}

impl<T: Real> BlockLmf<T> {
    /// Trains the model in place on raw inputs in the model's order and `targets` (`N x h`
    /// values for MSE and L1, `N x 1` class labels for cross-entropy); `progress` is called after
    /// every epoch.
    ///
    /// The first training fits the normalisation statistics on the training rows (the rows
    /// before the validation split); later calls keep them. Each mini-batch is one parallel
    /// pass (forward, loss, backward per chunk of rows) plus the penalty's gradient in closed
    /// form, then one optimiser step. Deterministic for given options (seed included), whatever
    /// the number of threads.
    ///
    /// # Errors
    /// The checks of [`BlockLmf::forward`] and [`BlockLmf::loss_and_gradients`]; invalid
    /// options; a validation split that leaves no training or no validation row;
    /// [`Error::Diverged`] when a loss, a gradient or a parameter becomes non-finite (the model
    /// keeps its last finite weights).
    pub fn train<F: FnMut(&BlockEpochReport)>(
        &mut self,
        xs: &[MatRef<'_, T>],
        targets: MatRef<'_, T>,
        opts: &BlockTrainOptions,
        mut progress: F,
    ) -> Result<BlockTrainHistory> {
        opts.validate()?;
        let (rows, n) = check_inputs(&self.names, self.dims(), xs)?;
        let checked = self.check_targets(targets, n, opts.loss)?;
        let n_val = (opts.validation_fraction * n as f64).floor() as usize;
        if opts.validation_fraction > 0.0 && (n_val == 0 || n_val >= n) {
            return Err(Error::param(
                "validation_fraction",
                format!(
                    "{} of {n} rows leaves {n_val} validation and {} training rows; both need \
                     at least one",
                    opts.validation_fraction,
                    n - n_val
                ),
            ));
        }
        let n_train = n - n_val;
        let dims = self.dims().to_vec();
        let h = self.out_dim();
        if !self.stats_fitted {
            let stats = rows
                .iter()
                .zip(&dims)
                .map(|(x, &d)| ModalityStats::fit(x, n_train, d))
                .collect();
            self.set_stats(stats)?;
        }
        let train_x: Vec<Vec<T>> = (0..dims.len())
            .map(|m| normalised_rows(&rows[m], dims[m], 0..n_train, &self.stats[m]))
            .collect();
        let val_x: Vec<Vec<T>> = (0..dims.len())
            .map(|m| normalised_rows(&rows[m], dims[m], n_train..n, &self.stats[m]))
            .collect();
        let pool = opts.exec.pool()?;
        let pool = pool.as_deref();
        let mut optim =
            OptimizerState::new(opts.optimizer, opts.lr, opts.weight_decay, self.layout.len);
        let mut grads = vec![T::ZERO; self.layout.len];
        let mut rng = SplitMix64::new(opts.seed);
        let mut perm: Vec<usize> = (0..n_train).collect();
        let bs = opts.batch_size.min(n_train);
        let mut bx: Vec<Vec<T>> = dims.iter().map(|&d| Vec::with_capacity(bs * d)).collect();
        let mut bt_values: Vec<T> = Vec::with_capacity(bs * h);
        let mut bt_labels: Vec<usize> = Vec::with_capacity(bs);
        let mut val_out = vec![T::ZERO; n_val * h];
        let mut history = BlockTrainHistory {
            blocks: self.block_names().iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        };
        let mut best: Option<Vec<T>> = None;
        let mut since_best = 0usize;
        for epoch in 1..=opts.epochs {
            let start = Instant::now();
            if opts.shuffle {
                for (i, p) in perm.iter_mut().enumerate() {
                    *p = i;
                }
                for i in (1..n_train).rev() {
                    let j = ((rng.next_u64() as u128 * (i as u128 + 1)) >> 64) as usize;
                    perm.swap(i, j);
                }
            }
            let mut loss_sum = 0.0;
            for (b, r0) in (0..n_train).step_by(opts.batch_size).enumerate() {
                let r1 = (r0 + opts.batch_size).min(n_train);
                let idx = &perm[r0..r1];
                let nb = idx.len();
                for ((buf, x), &d) in bx.iter_mut().zip(&train_x).zip(&dims) {
                    buf.clear();
                    for &i in idx {
                        buf.extend_from_slice(&x[i * d..(i + 1) * d]);
                    }
                }
                let bt = match &checked {
                    super::api::CheckedTargets::Values(t) => {
                        bt_values.clear();
                        for &i in idx {
                            bt_values.extend_from_slice(&t[i * h..(i + 1) * h]);
                        }
                        Targets::Values(&bt_values[..])
                    }
                    super::api::CheckedTargets::Labels(l) => {
                        bt_labels.clear();
                        bt_labels.extend(idx.iter().map(|&i| l[i]));
                        Targets::Labels(&bt_labels[..])
                    }
                };
                let slices: Vec<&[T]> = bx.iter().map(|v| &v[..]).collect();
                let model: &BlockLmf<T> = self;
                let g = &mut grads;
                let (loss, _) = crate::lmf::block::run_in(pool, || {
                    model.objective(&slices, nb, opts.loss, bt, opts.reg, true, g)
                });
                if !loss.is_finite() {
                    return Err(Error::Diverged(format!(
                        "epoch {epoch}, batch {}: the {} loss is {loss}; the model keeps its last \
                         finite weights",
                        b + 1,
                        opts.loss
                    )));
                }
                optim.step(&mut self.params, &grads).map_err(|e| match e {
                    Error::Diverged(msg) => {
                        Error::Diverged(format!("epoch {epoch}, batch {}: {msg}", b + 1))
                    }
                    other => other,
                })?;
                loss_sum += loss * nb as f64;
                history.steps += 1;
            }
            let train_loss = loss_sum / n_train as f64;
            let val_loss = if n_val > 0 {
                let xv: Vec<&[T]> = val_x.iter().map(|v| &v[..]).collect();
                let pm = self.pass_model(true);
                let arch = mmfuse_kernels::arch();
                crate::lmf::block::run_in(pool, || {
                    pass::forward(arch, &pm, &xv, n_val, &mut val_out)
                });
                let v = eval_loss(opts.loss, &val_out, h, &checked, n_train);
                if !v.is_finite() {
                    return Err(Error::Diverged(format!(
                        "epoch {epoch}: the validation {} loss is {v}; the model keeps its last \
                         finite weights",
                        opts.loss
                    )));
                }
                Some(v)
            } else {
                None
            };
            let relevance = self.relevance()?.shares;
            let penalty = self.penalty(opts.reg);
            history.train_loss.push(train_loss);
            history.penalty.push(penalty);
            history.relevance.push(relevance.clone());
            let mut stop = false;
            if let Some(v) = val_loss {
                history.val_loss.push(v);
                let improved = match history.best_epoch {
                    None => true,
                    Some(e) => v < history.val_loss[e - 1],
                };
                if improved {
                    history.best_epoch = Some(epoch);
                    since_best = 0;
                    if opts.patience.is_some() {
                        best = Some(self.params.clone());
                    }
                } else {
                    since_best += 1;
                    if opts.patience.is_some_and(|p| since_best >= p) {
                        stop = epoch < opts.epochs;
                    }
                }
            }
            progress(&BlockEpochReport {
                epoch,
                epochs: opts.epochs,
                train_loss,
                val_loss,
                penalty,
                relevance,
                seconds: start.elapsed().as_secs_f64(),
            });
            if stop {
                history.stopped_early = true;
                break;
            }
        }
        if let Some(params) = best {
            self.params = params;
        }
        Ok(history)
    }

    /// [`BlockLmf::train`] with inputs given by modality name.
    pub fn train_named<F: FnMut(&BlockEpochReport)>(
        &mut self,
        named: &[(&str, MatRef<'_, T>)],
        targets: MatRef<'_, T>,
        opts: &BlockTrainOptions,
        progress: F,
    ) -> Result<BlockTrainHistory> {
        let xs = order_by_name(&self.names, named)?;
        self.train(&xs, targets, opts, progress)
    }
}

/// The mean loss of outputs `y` (`rows x h`) against the targets from row `first` on.
fn eval_loss<T: Real>(
    loss: Loss,
    y: &[T],
    h: usize,
    targets: &super::api::CheckedTargets<'_, T>,
    first: usize,
) -> f64 {
    let rows = y.len() / h;
    match targets {
        super::api::CheckedTargets::Labels(l) => {
            let sum: f64 = y
                .chunks_exact(h)
                .zip(&l[first..])
                .map(|(row, &c)| softmax_row_loss(row, c, None))
                .sum();
            sum / rows as f64
        }
        super::api::CheckedTargets::Values(t) => {
            let sum: f64 = y
                .iter()
                .zip(&t[first * h..])
                .map(|(&a, &b)| loss.term(a.to_f64() - b.to_f64()))
                .sum();
            sum / (rows * h) as f64
        }
    }
}
