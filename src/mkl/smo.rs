//! SMO for the hinge-loss SVM dual on a fixed combined kernel K_beta = sum_m beta_m K_m:
//!
//! ```text
//! min_alpha 1/2 alpha^T Q alpha - 1^T alpha,  0 <= alpha_i <= C,  y^T alpha = 0,
//! Q_ij = y_i y_j K_beta(i, j),
//! ```
//!
//! with libsvm's second-order working-set selection (Fan, Chen & Lin, JMLR 2005, WSS 2) and its
//! maximal-violation stopping rule. The per-kernel outputs g_m = K_m a (a_i = y_i alpha_i) are
//! kept up to date at every step, so that a change of beta costs O(n M), not a new pass over the
//! kernels: the gradient is G_i = y_i sum_m beta_m g_m[i] - 1.

use crate::matrix::Matrix;
use mmfuse_kernels::{smo_axpy2_on, smo_second_choice_on, smo_violators_on, SMO_TAU as TAU};

/// The state SMO works on; kept between outer MKL iterations (warm start).
pub(crate) struct SmoState {
    /// Dual variables, 0 <= alpha_i <= C.
    pub alpha: Vec<f64>,
    /// Per-kernel outputs g_m = K_m a, a = y * alpha.
    pub g: Vec<Vec<f64>>,
}

/// Result of one SMO solve.
pub(crate) struct SmoRun {
    /// Iterations done.
    pub iterations: usize,
    /// Final maximal KKT violation m(alpha) - M(alpha).
    pub violation: f64,
    /// Whether the violation reached the tolerance.
    pub converged: bool,
}

impl SmoState {
    /// alpha = 0 (feasible), g_m = 0.
    pub fn new(n: usize, m: usize) -> Self {
        SmoState {
            alpha: vec![0.0; n],
            g: vec![vec![0.0; n]; m],
        }
    }

    /// f = K_beta a.
    pub fn combined_output(&self, beta: &[f64]) -> Vec<f64> {
        let n = self.alpha.len();
        let mut f = vec![0.0; n];
        for (gm, &b) in self.g.iter().zip(beta) {
            if b != 0.0 {
                for (fi, gi) in f.iter_mut().zip(gm) {
                    *fi += b * gi;
                }
            }
        }
        f
    }
}

/// Runs SMO to maximal violation <= `tol` (or `max_iter` steps) on K_beta, from `state`;
/// stops early when `stop` is set (see `fit_with_progress` and `fit_cancellable`).
///
/// Each step is three dense passes over the samples, SIMD kernels of `mmfuse-kernels`: the
/// second-order choice of j on the row of i, the update of the outputs with the rows of i and j,
/// and the first-order choice of the next i (with the violation for the stopping rule). There is
/// no shrinking: with precomputed kernels a step streams two whole kernel rows from memory
/// anyway (every per-kernel output g_m is kept exact on every sample, as MKL needs), and once
/// the passes are branch-free vector loops, restricting them to an active set through an index
/// list costs more than it saves (measured on one rbf kernel, n = 5000, 1556 steps: the
/// earlier scalar version with libsvm's shrinking took about 50 ms, these passes 25-35 ms). With one kernel the rows come straight from the kernel and the
/// outputs are g_0 itself (K_beta = b K_0, F = b g_0); with several, the rows and F are
/// combined with beta.
#[allow(clippy::too_many_arguments)]
pub(crate) fn solve(
    kernels: &[&Matrix<f64>],
    beta: &[f64],
    y: &[f64],
    c: f64,
    tol: f64,
    max_iter: usize,
    state: &mut SmoState,
    stop: super::Stop<'_>,
) -> SmoRun {
    let n = y.len();
    let arch = mmfuse_kernels::arch();
    let active_kernels: Vec<(usize, f64)> = beta
        .iter()
        .copied()
        .enumerate()
        .filter(|&(_, b)| b != 0.0)
        .collect();
    // One kernel with a non-zero weight b: K_beta = b K and F = b g, no copies needed.
    let single = (kernels.len() == 1 && active_kernels.len() == 1).then(|| active_kernels[0].1);
    // Diagonal of K_beta.
    let diag: Vec<f64> = (0..n)
        .map(|i| {
            active_kernels
                .iter()
                .map(|&(m, b)| b * kernels[m].get(i, i))
                .sum()
        })
        .collect();
    // F = K_beta a (several kernels); the passes read v = y - scale * out with out = g_0 and
    // scale = b for one kernel, out = F and scale = 1 for several.
    let mut f = if single.is_some() {
        Vec::new()
    } else {
        state.combined_output(beta)
    };
    let scale = single.unwrap_or(1.0);
    let mut row_i = vec![0.0; if single.is_some() { 0 } else { n }];
    let mut row_j = vec![0.0; if single.is_some() { 0 } else { n }];
    let (mut up_pen, mut low_pen) = (vec![0.0; n], vec![0.0; n]);
    for t in 0..n {
        set_penalties(t, &state.alpha, y, c, &mut up_pen, &mut low_pen);
    }
    let mut viol = {
        let out: &[f64] = if single.is_some() { &state.g[0] } else { &f };
        smo_violators_on(arch, out, y, scale, &up_pen, &low_pen)
    };
    let mut iterations = 0;
    while iterations < max_iter {
        if viol.up_arg == usize::MAX || viol.up_max - viol.low_min <= tol || stop.is_set() {
            break;
        }
        let i = viol.up_arg;
        // K_beta(i, t) = kscale * ki[t].
        let (ki, kscale) = match single {
            Some(b) => (kernels[0].row(i), b),
            None => {
                combined_row(kernels, &active_kernels, i, &mut row_i);
                (&row_i[..], 1.0)
            }
        };
        let out: &[f64] = if single.is_some() { &state.g[0] } else { &f };
        let choice = smo_second_choice_on(
            arch,
            ki,
            kscale,
            diag[i],
            &diag,
            out,
            y,
            scale,
            &low_pen,
            viol.up_max,
        );
        if choice.arg == usize::MAX {
            break;
        }
        let j = choice.arg;
        let k_ij = kscale * ki[j];
        // G_t = y_t F_t - 1 = -y_t v_t.
        let grad = |t: usize| y[t] * (scale * out[t]) - 1.0;
        let (gi, gj) = (grad(i), grad(j));
        iterations += 1;
        let alpha = &mut state.alpha;
        let (old_ai, old_aj) = (alpha[i], alpha[j]);
        two_variable_step(alpha, y, &diag, k_ij, (gi, gj), c, i, j);
        let (dai, daj) = ((alpha[i] - old_ai) * y[i], (alpha[j] - old_aj) * y[j]);
        set_penalties(i, alpha, y, c, &mut up_pen, &mut low_pen);
        set_penalties(j, alpha, y, c, &mut up_pen, &mut low_pen);
        // Every kernel's output, on every sample, including kernels of weight 0: s_m = a^T g_m
        // enters the dual norm ||s||_{p*} and the beta update whatever beta_m is.
        for (k, gm) in kernels.iter().zip(state.g.iter_mut()) {
            smo_axpy2_on(arch, gm, k.row(i), dai, k.row(j), daj);
        }
        if single.is_none() {
            combined_row(kernels, &active_kernels, j, &mut row_j);
            smo_axpy2_on(arch, &mut f, &row_i, dai, &row_j, daj);
        }
        let out: &[f64] = if single.is_some() { &state.g[0] } else { &f };
        viol = smo_violators_on(arch, out, y, scale, &up_pen, &low_pen);
    }
    let violation = viol.up_max - viol.low_min;
    SmoRun {
        iterations,
        violation,
        converged: violation <= tol,
    }
}

/// The penalties of sample t for the passes (see `mmfuse_kernels::Violators`): 0 or -inf for
/// I_up, 0 or +inf for I_low.
#[inline]
pub(crate) fn set_penalties(
    t: usize,
    alpha: &[f64],
    y: &[f64],
    c: f64,
    up: &mut [f64],
    low: &mut [f64],
) {
    up[t] = if in_up(alpha[t], y[t], c) {
        0.0
    } else {
        f64::NEG_INFINITY
    };
    low[t] = if in_low(alpha[t], y[t], c) {
        0.0
    } else {
        f64::INFINITY
    };
}

/// Whether t is in I_up (alpha_t can move so that y_t alpha_t grows).
#[inline]
fn in_up(alpha: f64, y: f64, c: f64) -> bool {
    if y > 0.0 {
        alpha < c
    } else {
        alpha > 0.0
    }
}

/// Whether t is in I_low (alpha_t can move so that y_t alpha_t shrinks).
#[inline]
fn in_low(alpha: f64, y: f64, c: f64) -> bool {
    if y > 0.0 {
        alpha > 0.0
    } else {
        alpha < c
    }
}

/// out = sum_m beta_m K_m(i, .) over the kernels of non-zero weight.
fn combined_row(
    kernels: &[&Matrix<f64>],
    active_kernels: &[(usize, f64)],
    i: usize,
    out: &mut [f64],
) {
    out.fill(0.0);
    for &(m, b) in active_kernels {
        for (o, &k) in out.iter_mut().zip(kernels[m].row(i)) {
            *o += b * k;
        }
    }
}

/// libsvm's two-variable update (Solver::Solve) of alpha_i, alpha_j on Q entries, with
/// K_beta(i, j) = `k_ij` and gradient entries `gi`, `gj`; keeps y^T alpha and the box.
#[allow(clippy::too_many_arguments)]
pub(crate) fn two_variable_step(
    alpha: &mut [f64],
    y: &[f64],
    diag: &[f64],
    k_ij: f64,
    (gi, gj): (f64, f64),
    c: f64,
    i: usize,
    j: usize,
) {
    let q_ij = y[i] * y[j] * k_ij;
    if y[i] != y[j] {
        let quad = (diag[i] + diag[j] + 2.0 * q_ij).max(TAU);
        let delta = (-gi - gj) / quad;
        let diff = alpha[i] - alpha[j];
        alpha[i] += delta;
        alpha[j] += delta;
        if diff > 0.0 {
            if alpha[j] < 0.0 {
                alpha[j] = 0.0;
                alpha[i] = diff;
            }
        } else if alpha[i] < 0.0 {
            alpha[i] = 0.0;
            alpha[j] = -diff;
        }
        if diff > 0.0 {
            if alpha[i] > c {
                alpha[i] = c;
                alpha[j] = c - diff;
            }
        } else if alpha[j] > c {
            alpha[j] = c;
            alpha[i] = c + diff;
        }
    } else {
        let quad = (diag[i] + diag[j] - 2.0 * q_ij).max(TAU);
        let delta = (gi - gj) / quad;
        let sum = alpha[i] + alpha[j];
        alpha[i] -= delta;
        alpha[j] += delta;
        if sum > c {
            if alpha[i] > c {
                alpha[i] = c;
                alpha[j] = sum - c;
            }
        } else if alpha[j] < 0.0 {
            alpha[j] = 0.0;
            alpha[i] = sum;
        }
        if sum > c {
            if alpha[j] > c {
                alpha[j] = c;
                alpha[i] = sum - c;
            }
        } else if alpha[i] < 0.0 {
            alpha[i] = 0.0;
            alpha[j] = sum;
        }
    }
}

/// The bias b of f = K_beta a + b at an SMO solution (libsvm's rho = -b): the mean of -y_i G_i
/// over free variables, or the middle of the feasible interval when none is free.
pub(crate) fn bias(y: &[f64], grad: &[f64], alpha: &[f64], c: f64) -> f64 {
    let (mut ub, mut lb) = (f64::INFINITY, f64::NEG_INFINITY);
    let (mut sum, mut free) = (0.0, 0usize);
    for t in 0..y.len() {
        let yg = y[t] * grad[t];
        if alpha[t] >= c {
            if y[t] < 0.0 {
                ub = ub.min(yg);
            } else {
                lb = lb.max(yg);
            }
        } else if alpha[t] <= 0.0 {
            if y[t] > 0.0 {
                ub = ub.min(yg);
            } else {
                lb = lb.max(yg);
            }
        } else {
            free += 1;
            sum += yg;
        }
    }
    let rho = if free > 0 {
        sum / free as f64
    } else {
        (ub + lb) / 2.0
    };
    -rho
}
