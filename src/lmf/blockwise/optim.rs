//! The block model's optimisers over its flat parameter vector: Adam (the same update code as
//! the plain LMF's [`crate::lmf::Adam`]) and SGD with momentum (PyTorch's `torch.optim.SGD`,
//! dampening 0, no Nesterov).

use crate::error::{Error, Result};
use crate::lmf::adam::adam_update_flat;
use crate::lmf::AdamConfig;
use crate::scalar::Real;
use std::str::FromStr;

/// Which optimiser trains a block model.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Optimizer {
    /// Adam with the given betas and epsilon (PyTorch's defaults: (0.9, 0.999), 1e-8).
    Adam {
        /// Moment decay rates, each in [0, 1).
        betas: (f64, f64),
        /// Added to the denominator, >= 0.
        eps: f64,
    },
    /// SGD with momentum `m` in [0, 1): `buf = m buf + g` (`buf = g` at the first step),
    /// `p -= lr buf`.
    Sgd {
        /// Momentum, in [0, 1); 0 is plain SGD.
        momentum: f64,
    },
}

impl Default for Optimizer {
    fn default() -> Self {
        Optimizer::Adam {
            betas: (0.9, 0.999),
            eps: 1e-8,
        }
    }
}

impl FromStr for Optimizer {
    type Err = Error;
    /// `adam` (PyTorch's defaults) or `sgd` (momentum 0.9; set it on the value).
    fn from_str(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "adam" => Ok(Optimizer::default()),
            "sgd" => Ok(Optimizer::Sgd { momentum: 0.9 }),
            _ => Err(Error::param(
                "optimizer",
                format!("`{s}` is not one of adam, sgd"),
            )),
        }
    }
}

impl std::fmt::Display for Optimizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Optimizer::Adam { .. } => f.write_str("adam"),
            Optimizer::Sgd { .. } => f.write_str("sgd"),
        }
    }
}

impl Optimizer {
    /// Checks the hyper-parameters' domains (with the learning rate and weight decay).
    pub(crate) fn validate(&self, lr: f64, weight_decay: f64) -> Result<()> {
        match *self {
            Optimizer::Adam { betas, eps } => AdamConfig {
                lr,
                betas,
                eps,
                weight_decay,
            }
            .validate(),
            Optimizer::Sgd { momentum } => {
                if !(lr.is_finite() && lr > 0.0) {
                    return Err(Error::param(
                        "lr",
                        format!("{lr} is not a positive finite number"),
                    ));
                }
                if !(0.0..1.0).contains(&momentum) {
                    return Err(Error::param(
                        "momentum",
                        format!("{momentum} is not in [0, 1)"),
                    ));
                }
                if !(weight_decay.is_finite() && weight_decay >= 0.0) {
                    return Err(Error::param(
                        "weight_decay",
                        format!("{weight_decay} is not a finite number >= 0"),
                    ));
                }
                Ok(())
            }
        }
    }
}

/// An optimiser's state for one flat parameter vector.
pub(crate) struct OptimizerState<T> {
    kind: Optimizer,
    lr: f64,
    weight_decay: f64,
    step: u64,
    /// Adam: first moments; SGD: the momentum buffer.
    m: Vec<T>,
    /// Adam: second moments.
    v: Vec<T>,
    staging: Vec<T>,
}

impl<T: Real> OptimizerState<T> {
    pub(crate) fn new(kind: Optimizer, lr: f64, weight_decay: f64, len: usize) -> Self {
        let v = match kind {
            Optimizer::Adam { .. } => vec![T::ZERO; len],
            Optimizer::Sgd { .. } => Vec::new(),
        };
        OptimizerState {
            kind,
            lr,
            weight_decay,
            step: 0,
            m: vec![T::ZERO; len],
            v,
            staging: vec![T::ZERO; len],
        }
    }

    /// Steps taken.
    pub(crate) fn steps(&self) -> u64 {
        self.step
    }

    /// One update of `params` with `grads`; on a non-finite result the parameters are left
    /// unchanged and `Diverged` is returned.
    pub(crate) fn step(&mut self, params: &mut Vec<T>, grads: &[T]) -> Result<()> {
        self.step += 1;
        let ok = match self.kind {
            Optimizer::Adam { betas, eps } => {
                let c = AdamConfig {
                    lr: self.lr,
                    betas,
                    eps,
                    weight_decay: self.weight_decay,
                };
                adam_update_flat(
                    &c,
                    self.step,
                    params,
                    grads,
                    &mut self.m,
                    &mut self.v,
                    &mut self.staging,
                )
            }
            Optimizer::Sgd { momentum } => sgd_update(
                T::from_f64(self.lr),
                T::from_f64(momentum),
                (self.weight_decay != 0.0).then(|| T::from_f64(self.weight_decay)),
                self.step == 1,
                params,
                grads,
                &mut self.m,
                &mut self.staging,
            ),
        };
        if !ok {
            let what = match grads.iter().position(|v| !v.to_f64().is_finite()) {
                Some(pos) => format!("the gradient is {} at flat index {pos}", grads[pos]),
                None => format!("step {} made a parameter non-finite", self.step),
            };
            return Err(Error::Diverged(format!(
                "{what}; the model keeps its last finite weights (try a smaller learning rate)"
            )));
        }
        std::mem::swap(params, &mut self.staging);
        Ok(())
    }
}

/// PyTorch's SGD step: `g' = g + wd p`; `buf = g'` (first step) or `momentum buf + g'`;
/// `out = p - lr buf`. False if any new value is not finite.
#[allow(clippy::too_many_arguments)]
fn sgd_update<T: Real>(
    lr: T,
    momentum: T,
    weight_decay: Option<T>,
    first: bool,
    p: &[T],
    g: &[T],
    buf: &mut [T],
    out: &mut [T],
) -> bool {
    let mut finite = true;
    for (((&pv, &gv), b), o) in p.iter().zip(g).zip(buf.iter_mut()).zip(out.iter_mut()) {
        let gd = match weight_decay {
            Some(wd) => gv + wd * pv,
            None => gv,
        };
        *b = if first { gd } else { momentum * *b + gd };
        *o = pv - lr * *b;
        finite &= crate::lmf::model::is_finite_fast(*o);
    }
    finite
}
