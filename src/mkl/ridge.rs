//! Squared loss for fixed beta: kernel ridge regression with a bias,
//!
//! ```text
//! [K_beta + I/C  1] [a]   [y]
//! [1^T          0] [b] = [0],
//! ```
//!
//! solved without forming K_beta: conjugate gradients on A = K_beta + I/C (symmetric positive
//! definite for PSD kernels) for A u = y and A v = 1, then b = 1^T u / 1^T v, a = u - b v
//! (the Schur complement of the bordered system). Each CG step is one pass over the M kernels.

use crate::error::{Error, Result};
use crate::matrix::Matrix;
use rayon::prelude::*;

/// out = (sum_m beta_m K_m + I / C) v.
fn apply(kernels: &[&Matrix<f64>], beta: &[f64], c: f64, v: &[f64], out: &mut [f64]) {
    let n = v.len();
    out.par_iter_mut().enumerate().for_each(|(i, o)| {
        let mut acc = v[i] / c;
        for (k, &b) in kernels.iter().zip(beta) {
            if b != 0.0 {
                let row = &k.as_slice()[i * n..(i + 1) * n];
                acc += b * row.iter().zip(v).map(|(x, y)| x * y).sum::<f64>();
            }
        }
        *o = acc;
    });
}

/// Conjugate gradients for A x = rhs from the initial guess in `x`, to relative residual
/// `rtol`. Returns the number of iterations; `Cancelled` once `stop` is set (checked before
/// every step: one pass over the kernels).
fn cg(
    kernels: &[&Matrix<f64>],
    beta: &[f64],
    c: f64,
    rhs: &[f64],
    x: &mut [f64],
    rtol: f64,
    stop: super::Stop<'_>,
) -> Result<usize> {
    let n = rhs.len();
    let mut ax = vec![0.0; n];
    apply(kernels, beta, c, x, &mut ax);
    let mut r: Vec<f64> = rhs.iter().zip(&ax).map(|(b, a)| b - a).collect();
    let mut p = r.clone();
    let mut rr: f64 = r.iter().map(|v| v * v).sum();
    let target = rtol
        * rtol
        * rhs
            .iter()
            .map(|v| v * v)
            .sum::<f64>()
            .max(f64::MIN_POSITIVE);
    let max_iter = 10 * n + 100;
    for it in 0..max_iter {
        if rr <= target {
            return Ok(it);
        }
        if stop.is_set() {
            return Err(Error::Cancelled(
                "the fit stopped inside a conjugate-gradient solve".into(),
            ));
        }
        apply(kernels, beta, c, &p, &mut ax);
        let pap: f64 = p.iter().zip(&ax).map(|(a, b)| a * b).sum();
        if pap <= 0.0 || !pap.is_finite() {
            return Err(Error::NotPsd(
                "K_beta + I/C is not positive definite (a kernel is indefinite)".into(),
            ));
        }
        let step = rr / pap;
        for i in 0..n {
            x[i] += step * p[i];
            r[i] -= step * ax[i];
        }
        let rr_new: f64 = r.iter().map(|v| v * v).sum();
        let ratio = rr_new / rr;
        for i in 0..n {
            p[i] = r[i] + ratio * p[i];
        }
        rr = rr_new;
    }
    Err(Error::NotConverged(format!(
        "conjugate gradients did not reach relative residual {rtol:e} in {max_iter} steps"
    )))
}

/// The warm-startable state: the two CG solutions.
pub(crate) struct RidgeState {
    pub u: Vec<f64>,
    pub v: Vec<f64>,
}

impl RidgeState {
    pub fn new(n: usize) -> Self {
        RidgeState {
            u: vec![0.0; n],
            v: vec![0.0; n],
        }
    }
}

/// Solves for (a, b); returns them and the CG iterations used.
pub(crate) fn solve(
    kernels: &[&Matrix<f64>],
    beta: &[f64],
    y: &[f64],
    c: f64,
    rtol: f64,
    state: &mut RidgeState,
    stop: super::Stop<'_>,
) -> Result<(Vec<f64>, f64, usize)> {
    let n = y.len();
    let it_u = cg(kernels, beta, c, y, &mut state.u, rtol, stop)?;
    let ones = vec![1.0; n];
    let it_v = cg(kernels, beta, c, &ones, &mut state.v, rtol, stop)?;
    let b = state.u.iter().sum::<f64>() / state.v.iter().sum::<f64>();
    let a: Vec<f64> = state
        .u
        .iter()
        .zip(&state.v)
        .map(|(u, v)| u - b * v)
        .collect();
    Ok((a, b, it_u + it_v))
}
