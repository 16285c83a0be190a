//! The training loop: mini-batches (seeded shuffle or in order), the fused loss + gradient step,
//! Adam, per-epoch history, optional validation split and early stopping.

use super::adam::{Adam, AdamConfig};
use super::backward::{loss_step, LmfGradients};
use super::block::run_in;
use super::forward::forward_model;
use super::loss::Loss;
use super::model::LmfModel;
use super::LmfOptions;
use crate::error::{Error, Result};
use crate::scalar::Real;
use crate::util::SplitMix64;
use faer::MatRef;
use std::time::Instant;

/// Options of [`LmfModel::train`]. The defaults are PyTorch's for Adam and the losses.
#[derive(Clone, Debug, PartialEq)]
pub struct TrainOptions {
    /// Passes over the training rows, >= 1. Default 10.
    pub epochs: usize,
    /// Rows per mini-batch, >= 1 (the last batch of an epoch may be smaller). Default 32.
    pub batch_size: usize,
    /// Adam's learning rate. Default 1e-3.
    pub lr: f64,
    /// Loss. Default MSE.
    pub loss: Loss,
    /// Seed of the per-epoch shuffles. Default 0.
    pub seed: u64,
    /// Shuffle the training rows every epoch (Fisher-Yates over SplitMix64(seed)); otherwise
    /// batches follow the row order. Default true.
    pub shuffle: bool,
    /// Adam's L2 penalty added to the gradient. Default 0.
    pub weight_decay: f64,
    /// Adam's moment decay rates. Default (0.9, 0.999).
    pub betas: (f64, f64),
    /// Adam's epsilon. Default 1e-8.
    pub eps: f64,
    /// Share of the rows held out for validation, in [0, 1): the *last*
    /// `floor(fraction * N)` rows in the given order (as Keras' `validation_split`), never
    /// shuffled into training. Default 0 (no validation).
    pub validation_fraction: f64,
    /// Early stopping: stop after this many epochs without a strictly lower validation loss, and
    /// end with the weights of the best validation epoch. Needs a validation split. Default None.
    pub patience: Option<usize>,
    /// Block size and threads of every forward / backward pass.
    pub exec: LmfOptions,
}

impl Default for TrainOptions {
    fn default() -> Self {
        TrainOptions {
            epochs: 10,
            batch_size: 32,
            lr: 1e-3,
            loss: Loss::Mse,
            seed: 0,
            shuffle: true,
            weight_decay: 0.0,
            betas: (0.9, 0.999),
            eps: 1e-8,
            validation_fraction: 0.0,
            patience: None,
            exec: LmfOptions::default(),
        }
    }
}

impl TrainOptions {
    /// The Adam part of the options.
    pub fn adam(&self) -> AdamConfig {
        AdamConfig {
            lr: self.lr,
            betas: self.betas,
            eps: self.eps,
            weight_decay: self.weight_decay,
        }
    }

    /// Checks every option's domain.
    pub fn validate(&self) -> Result<()> {
        if self.epochs == 0 {
            return Err(Error::param("epochs", "must be >= 1"));
        }
        if self.batch_size == 0 {
            return Err(Error::param("batch_size", "must be >= 1"));
        }
        self.loss.check_elementwise()?;
        self.adam().validate()?;
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

/// What [`LmfModel::train`] reports to its progress callback after each epoch.
#[derive(Clone, Debug, PartialEq)]
pub struct EpochReport {
    /// 1-based epoch number.
    pub epoch: usize,
    /// Epochs planned ([`TrainOptions::epochs`]).
    pub epochs: usize,
    /// Mean training loss of the epoch: the batch losses weighted by batch size, i.e. the mean
    /// over all training elements of the loss at the moment each batch was seen.
    pub train_loss: f64,
    /// Loss on the validation rows after the epoch, when there is a validation split.
    pub val_loss: Option<f64>,
    /// Mini-batches (optimiser steps) in the epoch.
    pub batches: usize,
    /// Wall-clock seconds the epoch took.
    pub seconds: f64,
}

/// Per-epoch losses of a training run.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TrainHistory {
    /// [`EpochReport::train_loss`] of every epoch run.
    pub train_loss: Vec<f64>,
    /// Validation loss of every epoch run (empty without a validation split).
    pub val_loss: Vec<f64>,
    /// Epoch (1-based) with the lowest validation loss, when there is a validation split.
    pub best_epoch: Option<usize>,
    /// Whether early stopping ended the run before [`TrainOptions::epochs`].
    pub stopped_early: bool,
    /// Optimiser steps taken.
    pub steps: u64,
}

/// Reusable gather buffers of one shuffled batch.
struct Batch<T> {
    xs: Vec<Vec<T>>,
    t: Vec<T>,
}

impl<T: Real> LmfModel<T> {
    /// Trains the model in place with Adam on `targets` (`N x h`) for inputs in the model's order
    /// (as for [`LmfModel::forward`]); `progress` is called after every epoch.
    ///
    /// Each mini-batch is one fused pass per row block (forward, loss, backward, see
    /// [`LmfModel::loss_and_gradients`]) followed by one Adam step. The run is deterministic for
    /// given options (seed included), whatever the number of threads.
    ///
    /// Errors: the input checks of [`LmfModel::forward`]; targets of the wrong shape or with a
    /// NaN or infinity; invalid options; a validation split that leaves no training or no
    /// validation row; and [`Error::Diverged`] when a loss, a gradient or an updated parameter is
    /// not finite. On divergence the model is left at its last finite weights (those before the
    /// failing step) and the error names the epoch and batch; the epochs completed before it
    /// have been reported to `progress`.
    pub fn train<F: FnMut(&EpochReport)>(
        &mut self,
        xs: &[MatRef<'_, T>],
        targets: MatRef<'_, T>,
        opts: &TrainOptions,
        mut progress: F,
    ) -> Result<TrainHistory> {
        opts.validate()?;
        let (rows, n) = self.check_inputs(xs)?;
        let targets = self.check_output_like(targets, n, "targets")?;
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
        let h = self.out_dim;
        let dims = self.dims.clone();
        let xs_all: Vec<&[T]> = rows.iter().map(|r| &r[..]).collect();
        let pool = opts.exec.pool()?;
        let pool = pool.as_deref();
        let arch = mmfuse_kernels::arch();
        let mut adam = Adam::new(self, opts.adam())?;
        // Reused by every step: the gradients and the backward pass's per-chain buffers.
        let mut grads = LmfGradients::zeros_for(&self.fusion());
        let mut workspace = Vec::new();
        let mut rng = SplitMix64::new(opts.seed);
        let mut perm: Vec<usize> = (0..n_train).collect();
        let mut batch = Batch {
            xs: dims
                .iter()
                .map(|&d| Vec::with_capacity(opts.batch_size.min(n_train) * d))
                .collect(),
            t: Vec::with_capacity(opts.batch_size.min(n_train) * h),
        };
        let mut val_out = vec![T::ZERO; n_val * h];
        let mut history = TrainHistory::default();
        let mut best: Option<LmfModel<T>> = None;
        let mut since_best = 0usize;
        for epoch in 1..=opts.epochs {
            let start = Instant::now();
            if opts.shuffle {
                for (i, p) in perm.iter_mut().enumerate() {
                    *p = i;
                }
                for i in (1..n_train).rev() {
                    // Multiply-high maps 64 random bits onto 0..=i (bias below 2^-40 here).
                    let j = ((rng.next_u64() as u128 * (i as u128 + 1)) >> 64) as usize;
                    perm.swap(i, j);
                }
            }
            let mut loss_sum = 0.0;
            let mut batches = 0;
            for (b, r0) in (0..n_train).step_by(opts.batch_size).enumerate() {
                let r1 = (r0 + opts.batch_size).min(n_train);
                let nb = r1 - r0;
                let (bx, bt): (Vec<&[T]>, &[T]) = if opts.shuffle {
                    gather(&mut batch, &perm[r0..r1], &xs_all, &dims, &targets, h);
                    (batch.xs.iter().map(|v| &v[..]).collect(), &batch.t[..])
                } else {
                    (
                        xs_all
                            .iter()
                            .zip(&dims)
                            .map(|(x, &d)| &x[r0 * d..r1 * d])
                            .collect(),
                        &targets[r0 * h..r1 * h],
                    )
                };
                let model: &LmfModel<T> = self;
                let (ws, out) = (&mut workspace, &mut grads);
                let loss = run_in(pool, || {
                    let f = model.fusion();
                    loss_step(arch, &f, &bx, bt, nb, opts.loss, &opts.exec, ws, out)
                });
                if !loss.is_finite() {
                    return Err(Error::Diverged(format!(
                        "epoch {epoch}, batch {}: the {} loss is {loss}; the model keeps its last \
                         finite weights",
                        b + 1,
                        opts.loss
                    )));
                }
                let (adam, model) = (&mut adam, &mut *self);
                run_in(pool, || adam.step(model, &grads)).map_err(|e| match e {
                    Error::Diverged(msg) => {
                        Error::Diverged(format!("epoch {epoch}, batch {}: {msg}", b + 1))
                    }
                    other => other,
                })?;
                loss_sum += loss * nb as f64;
                batches += 1;
            }
            let train_loss = loss_sum / n_train as f64;
            let val_loss = if n_val > 0 {
                let xv: Vec<&[T]> = xs_all
                    .iter()
                    .zip(&dims)
                    .map(|(x, &d)| &x[n_train * d..])
                    .collect();
                let f = self.fusion();
                run_in(pool, || {
                    forward_model(arch, &f, &xv, n_val, &opts.exec, &mut val_out)
                });
                let mut sum = 0.0;
                for (&y, &t) in val_out.iter().zip(&targets[n_train * h..]) {
                    sum += opts.loss.term(y.to_f64() - t.to_f64());
                }
                let v = sum / (n_val * h) as f64;
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
            history.train_loss.push(train_loss);
            history.steps = adam.steps();
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
                    // The snapshot is only needed when early stopping will restore it.
                    if opts.patience.is_some() {
                        best = Some(self.clone());
                    }
                } else {
                    since_best += 1;
                    if opts.patience.is_some_and(|p| since_best >= p) {
                        stop = epoch < opts.epochs;
                    }
                }
            }
            progress(&EpochReport {
                epoch,
                epochs: opts.epochs,
                train_loss,
                val_loss,
                batches,
                seconds: start.elapsed().as_secs_f64(),
            });
            if stop {
                history.stopped_early = true;
                break;
            }
        }
        if let Some(snapshot) = best {
            *self = snapshot;
        }
        Ok(history)
    }

    /// [`LmfModel::train`] with inputs given by modality name.
    pub fn train_named<F: FnMut(&EpochReport)>(
        &mut self,
        named: &[(&str, MatRef<'_, T>)],
        targets: MatRef<'_, T>,
        opts: &TrainOptions,
        progress: F,
    ) -> Result<TrainHistory> {
        let xs = self.order_inputs(named)?;
        self.train(&xs, targets, opts, progress)
    }
}

/// Copies the rows `idx` of every input and of the targets into the batch buffers.
fn gather<T: Real>(
    batch: &mut Batch<T>,
    idx: &[usize],
    xs: &[&[T]],
    dims: &[usize],
    targets: &[T],
    h: usize,
) {
    for ((buf, x), &d) in batch.xs.iter_mut().zip(xs).zip(dims) {
        buf.clear();
        for &i in idx {
            buf.extend_from_slice(&x[i * d..(i + 1) * d]);
        }
    }
    batch.t.clear();
    for &i in idx {
        batch.t.extend_from_slice(&targets[i * h..(i + 1) * h]);
    }
}
