//! Adam (Kingma & Ba 2015) exactly as `torch.optim.Adam` computes it with its defaults
//! (`amsgrad=False`, `maximize=False`, the single-tensor CPU path), element by element in the
//! model's type:
//!
//! ```text
//! g     = grad + weight_decay * param                    (only when weight_decay != 0)
//! m     = m + (1 - beta1) (g - m)                        (exp_avg.lerp_(grad, 1 - beta1))
//! v     = v beta2 + (1 - beta2) g g                      (mul_ then addcmul_)
//! denom = sqrt(v) / sqrt(1 - beta2^t) + eps
//! param = param - lr / (1 - beta1^t) * (m / denom)       (addcdiv_)
//! ```
//!
//! with the step count `t` starting at 1 and the bias corrections computed in f64 (Python floats)
//! and rounded to the model's type where they meet a tensor.

use super::backward::LmfGradients;
use super::model::{is_finite_fast, LmfModel};
use crate::error::{Error, Result};
use crate::matrix::Matrix;
use crate::scalar::Real;
use rayon::prelude::*;

/// Hyper-parameters of [`Adam`]; the defaults are PyTorch's.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AdamConfig {
    /// Learning rate, > 0. Default 1e-3.
    pub lr: f64,
    /// Decay rates of the first and second moment estimates, each in [0, 1). Default (0.9, 0.999).
    pub betas: (f64, f64),
    /// Added to the denominator, >= 0. Default 1e-8.
    pub eps: f64,
    /// L2 penalty added to the gradient (not decoupled, as `Adam`, not `AdamW`), >= 0. Default 0.
    pub weight_decay: f64,
}

impl Default for AdamConfig {
    fn default() -> Self {
        AdamConfig {
            lr: 1e-3,
            betas: (0.9, 0.999),
            eps: 1e-8,
            weight_decay: 0.0,
        }
    }
}

impl AdamConfig {
    /// Checks every field's domain.
    pub fn validate(&self) -> Result<()> {
        if !(self.lr.is_finite() && self.lr > 0.0) {
            return Err(Error::param(
                "lr",
                format!("{} is not a positive finite number", self.lr),
            ));
        }
        for (name, b) in [("beta1", self.betas.0), ("beta2", self.betas.1)] {
            if !(0.0..1.0).contains(&b) {
                return Err(Error::param(name, format!("{b} is not in [0, 1)")));
            }
        }
        if !(self.eps.is_finite() && self.eps >= 0.0) {
            return Err(Error::param(
                "eps",
                format!("{} is not a finite number >= 0", self.eps),
            ));
        }
        if !(self.weight_decay.is_finite() && self.weight_decay >= 0.0) {
            return Err(Error::param(
                "weight_decay",
                format!("{} is not a finite number >= 0", self.weight_decay),
            ));
        }
        Ok(())
    }
}

/// Adam's state for one [`LmfModel`]: the step count and the two moment estimates per
/// parameter tensor (factors in the model's order, then the fusion weights, then the bias).
#[derive(Clone, Debug)]
pub struct Adam<T> {
    config: AdamConfig,
    step: u64,
    exp_avg: Vec<Vec<T>>,
    exp_avg_sq: Vec<Vec<T>>,
    /// New parameter values are written here first and swapped in only when all are finite.
    staging: Vec<Vec<T>>,
}

/// The model's parameter tensors, in Adam's order.
fn tensors<T: Real>(model: &LmfModel<T>) -> Vec<&[T]> {
    let mut v: Vec<&[T]> = model.factors.iter().map(|f| f.as_slice()).collect();
    v.push(&model.fusion_weights);
    v.push(&model.bias);
    v
}

impl<T: Real> Adam<T> {
    /// Fresh state (zero moments, step 0) for the parameters of `model`.
    pub fn new(model: &LmfModel<T>, config: AdamConfig) -> Result<Self> {
        config.validate()?;
        let zeros: Vec<Vec<T>> = tensors(model)
            .iter()
            .map(|t| vec![T::ZERO; t.len()])
            .collect();
        Ok(Adam {
            config,
            step: 0,
            exp_avg: zeros.clone(),
            exp_avg_sq: zeros.clone(),
            staging: zeros,
        })
    }

    /// The hyper-parameters.
    pub fn config(&self) -> &AdamConfig {
        &self.config
    }

    /// Number of steps taken.
    pub fn steps(&self) -> u64 {
        self.step
    }

    /// One update of `model` with `grads` (from [`LmfModel::backward`],
    /// [`LmfModel::param_gradients`] or [`LmfModel::loss_and_gradients`] of the same model).
    ///
    /// If a gradient or an updated parameter is not finite, the model is left unchanged and an
    /// [`Error::Diverged`] is returned (the moment estimates have then been updated and should be
    /// discarded with the optimiser). Runs in parallel on the current rayon pool (element-wise:
    /// the result does not depend on the number of threads).
    pub fn step(&mut self, model: &mut LmfModel<T>, grads: &LmfGradients<T>) -> Result<()> {
        let shapes_match = grads.factors.len() == model.factors.len()
            && grads
                .factors
                .iter()
                .zip(&model.factors)
                .all(|(g, p)| g.shape() == p.shape())
            && grads.fusion_weights.len() == model.fusion_weights.len()
            && grads.bias.len() == model.bias.len()
            && self.exp_avg.len() == model.factors.len() + 2
            && self
                .exp_avg
                .iter()
                .zip(tensors(model))
                .all(|(m, p)| m.len() == p.len());
        if !shapes_match {
            return Err(Error::Shape(
                "the gradients or the optimiser state do not match the model's parameters".into(),
            ));
        }
        let mut g_tensors: Vec<&[T]> = grads.factors.iter().map(|f| f.as_slice()).collect();
        g_tensors.push(&grads.fusion_weights);
        g_tensors.push(&grads.bias);
        self.step += 1;
        let k = Coeffs::new(&self.config, self.step);
        let params = tensors(model);
        let mut bad = None;
        for (i, (((p, g), (m, v)), out)) in params
            .iter()
            .zip(&g_tensors)
            .zip(self.exp_avg.iter_mut().zip(self.exp_avg_sq.iter_mut()))
            .zip(self.staging.iter_mut())
            .enumerate()
        {
            if !update_par(&k, p, g, m, v, out) && bad.is_none() {
                bad = Some(i);
            }
        }
        if let Some(i) = bad {
            // A non-finite gradient makes its updated values non-finite too; name the cause.
            let what = match g_tensors[i].iter().position(|v| !v.to_f64().is_finite()) {
                Some(pos) => format!(
                    "the gradient of {} is {} at flat index {pos}",
                    tensor_name(model, i),
                    g_tensors[i][pos]
                ),
                None => format!(
                    "Adam step {} made {} non-finite",
                    self.step,
                    tensor_name(model, i)
                ),
            };
            return Err(Error::Diverged(format!(
                "{what}; the model keeps its last finite weights"
            )));
        }
        // All finite: swap the staged values in (no copy; the old values become the next staging).
        let nf = model.factors.len();
        for (f, s) in model.factors.iter_mut().zip(&mut self.staging) {
            let (r, cols) = f.shape();
            let staged = Matrix::from_vec(r, cols, std::mem::take(s)).expect("same length");
            *s = std::mem::replace(f, staged).into_vec();
        }
        std::mem::swap(&mut model.fusion_weights, &mut self.staging[nf]);
        std::mem::swap(&mut model.bias, &mut self.staging[nf + 1]);
        Ok(())
    }
}

/// Per-step constants in the model's type.
struct Coeffs<T> {
    one_minus_beta1: T,
    beta2: T,
    one_minus_beta2: T,
    bc2_sqrt: T,
    eps: T,
    neg_step_size: T,
    weight_decay: Option<T>,
}

impl<T: Real> Coeffs<T> {
    /// The constants of step `step` (1-based) under `c`.
    fn new(c: &AdamConfig, step: u64) -> Self {
        let t = step as f64;
        let bias_correction1 = 1.0 - c.betas.0.powf(t);
        let bias_correction2 = 1.0 - c.betas.1.powf(t);
        Coeffs {
            one_minus_beta1: T::from_f64(1.0 - c.betas.0),
            beta2: T::from_f64(c.betas.1),
            one_minus_beta2: T::from_f64(1.0 - c.betas.1),
            bc2_sqrt: T::from_f64(bias_correction2.sqrt()),
            eps: T::from_f64(c.eps),
            neg_step_size: T::from_f64(-(c.lr / bias_correction1)),
            weight_decay: (c.weight_decay != 0.0).then(|| T::from_f64(c.weight_decay)),
        }
    }
}

/// One Adam update (step `step`, 1-based) of a flat parameter vector `p` with gradient `g` and
/// moments `m`, `v`: the same formulas and code as [`Adam::step`], for models that keep their
/// parameters in one vector (the block model). Writes the new values to `out`; false if any
/// is not finite.
pub(crate) fn adam_update_flat<T: Real>(
    c: &AdamConfig,
    step: u64,
    p: &[T],
    g: &[T],
    m: &mut [T],
    v: &mut [T],
    out: &mut [T],
) -> bool {
    update_par(&Coeffs::new(c, step), p, g, m, v, out)
}

/// Elements per parallel task of the update (element-wise, so the result does not depend on the
/// split).
const CHUNK: usize = 1 << 14;

/// [`update`] over chunks in parallel.
fn update_par<T: Real>(
    k: &Coeffs<T>,
    p: &[T],
    g: &[T],
    m: &mut [T],
    v: &mut [T],
    out: &mut [T],
) -> bool {
    if p.len() <= CHUNK {
        return update(k, p, g, m, v, out);
    }
    p.par_chunks(CHUNK)
        .zip(g.par_chunks(CHUNK))
        .zip(m.par_chunks_mut(CHUNK))
        .zip(v.par_chunks_mut(CHUNK))
        .zip(out.par_chunks_mut(CHUNK))
        .map(|((((p, g), m), v), o)| update(k, p, g, m, v, o))
        .reduce(|| true, |a, b| a && b)
}

/// Updates the moments of one tensor and writes its new values to `out`; false if any is not
/// finite.
///
/// Written as straight loops over equal-length slices, without branches, so that the compiler
/// vectorises them (a training step of a 16 x 128 model spends a tenth of its time here when
/// scalar); the operations and their order are those of the formulas above, element by element.
/// The loops run inside pulp's dispatch to the engine's instruction set (`mmfuse_kernels::arch`,
/// the best available unless `MMFUSE_ISA` asks for less), so that they are compiled
/// (and vectorised) for AVX2 / AVX-512 where the CPU has them, not for the baseline's SSE2.
fn update<T: Real>(
    k: &Coeffs<T>,
    p: &[T],
    g: &[T],
    m: &mut [T],
    v: &mut [T],
    out: &mut [T],
) -> bool {
    mmfuse_kernels::arch().dispatch(UpdateOp { k, p, g, m, v, out })
}

/// [`update`]'s arguments, for pulp's dispatch.
struct UpdateOp<'a, T> {
    k: &'a Coeffs<T>,
    p: &'a [T],
    g: &'a [T],
    m: &'a mut [T],
    v: &'a mut [T],
    out: &'a mut [T],
}

impl<T: Real> pulp::WithSimd for UpdateOp<'_, T> {
    type Output = bool;

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _simd: S) -> bool {
        let UpdateOp { k, p, g, m, v, out } = self;
        update_loops(k, p, g, m, v, out)
    }
}

/// The loops of [`update`] (inlined into each instruction set's version).
#[inline(always)]
fn update_loops<T: Real>(
    k: &Coeffs<T>,
    p: &[T],
    g: &[T],
    m: &mut [T],
    v: &mut [T],
    out: &mut [T],
) -> bool {
    let len = p.len();
    let (g, m, v, out) = (&g[..len], &mut m[..len], &mut v[..len], &mut out[..len]);
    let (c1, b2, c2) = (k.one_minus_beta1, k.beta2, k.one_minus_beta2);
    let (bc2, eps, ns) = (k.bc2_sqrt, k.eps, k.neg_step_size);
    // Two loops rather than one with a branch per element: the weight-decay test is hoisted
    // out of the hot loop so that each loop vectorises.
    match k.weight_decay {
        Some(wd) => {
            for i in 0..len {
                let g = g[i] + wd * p[i];
                step_one(
                    p[i],
                    g,
                    &mut m[i],
                    &mut v[i],
                    &mut out[i],
                    c1,
                    b2,
                    c2,
                    bc2,
                    eps,
                    ns,
                );
            }
        }
        None => {
            for i in 0..len {
                step_one(
                    p[i],
                    g[i],
                    &mut m[i],
                    &mut v[i],
                    &mut out[i],
                    c1,
                    b2,
                    c2,
                    bc2,
                    eps,
                    ns,
                );
            }
        }
    }
    let mut finite = true;
    for &o in out.iter() {
        finite &= is_finite_fast(o);
    }
    finite
}

/// Adam's update of one element (see the module docs).
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn step_one<T: Real>(
    p: T,
    g: T,
    m: &mut T,
    v: &mut T,
    o: &mut T,
    one_minus_beta1: T,
    beta2: T,
    one_minus_beta2: T,
    bc2_sqrt: T,
    eps: T,
    neg_step_size: T,
) {
    // lerp with weight < 0.5: start + weight * (end - start).
    *m = *m + one_minus_beta1 * (g - *m);
    *v = *v * beta2 + one_minus_beta2 * g * g;
    // The type's own square root: correctly rounded, as PyTorch's.
    let denom = faer::traits::math_utils::sqrt(v) / bc2_sqrt + eps;
    *o = p + neg_step_size * (*m / denom);
}

fn tensor_name<T: Real>(model: &LmfModel<T>, i: usize) -> String {
    let nf = model.factors.len();
    if i < nf {
        format!("{}_factor", model.names[i])
    } else if i == nf {
        "fusion_weights".into()
    } else {
        "fusion_bias".into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two steps on one scalar parameter, against the formulas evaluated by hand in f64.
    #[test]
    fn two_steps_by_hand() {
        let factor = Matrix::from_vec(2, 1, vec![0.5f64, -0.25]).unwrap();
        let mut model =
            LmfModel::from_parts(&["a"], 1, 1, vec![factor], vec![2.0], vec![0.0]).unwrap();
        let cfg = AdamConfig {
            lr: 0.1,
            weight_decay: 0.01,
            ..AdamConfig::default()
        };
        let mut adam = Adam::new(&model, cfg).unwrap();
        let grads = |g: f64| LmfGradients {
            factors: vec![Matrix::from_vec(2, 1, vec![g, 0.0]).unwrap()],
            fusion_weights: vec![0.0],
            bias: vec![0.0],
            inputs: vec![],
        };
        let (mut p, mut m, mut v) = (0.5f64, 0.0f64, 0.0f64);
        for (t, g) in [(1, 0.3f64), (2, -0.7)] {
            adam.step(&mut model, &grads(g)).unwrap();
            let g = g + 0.01 * p;
            m = 0.9 * m + 0.1 * g;
            v = 0.999 * v + 0.001 * g * g;
            let mhat = m / (1.0 - 0.9f64.powi(t));
            let vhat = v / (1.0 - 0.999f64.powi(t));
            p -= 0.1 * mhat / (vhat.sqrt() + 1e-8);
            let got = model.factor(0).unwrap().get(0, 0);
            // Same formula, different association of the roundings: a few ulp.
            assert!((got - p).abs() <= 1e-15, "step {t}: {got} vs {p}");
        }
    }
}
