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
/// anyway (every per-kernel output g_m of a kernel in K_beta is kept exact on every sample, as
/// MKL needs), and once the passes are branch-free vector loops, restricting them to an active
/// set through an index list costs more than it saves (measured on one rbf kernel, n = 5000,
/// 1556 steps: the earlier scalar version with libsvm's shrinking took about 50 ms, these
/// passes 25-35 ms). With one kernel the rows come straight from the kernel and the outputs
/// are g_0 itself (K_beta = b K_0, F = b g_0); with several, the rows and F are combined with
/// beta, and the outputs of kernels of weight 0 are updated once at the end (`Touched`).
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
    // Kernels of weight 0: their outputs g_m are not needed by the steps, only by the beta
    // update after the solve (s_m = a^T g_m enters ||s||_{p*} whatever beta_m is), so they
    // are brought up to date once at the end from the net change of each touched a_t.
    let mut touched = (active_kernels.len() < kernels.len()).then(|| Touched::new(&state.alpha));
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
        // The outputs of the kernels that weigh in K_beta, every step; those of weight 0
        // (p = 1 zeroes kernels) are caught up once after the loop.
        for &(m, _) in &active_kernels {
            let k = kernels[m];
            smo_axpy2_on(arch, &mut state.g[m], k.row(i), dai, k.row(j), daj);
        }
        if let Some(t) = touched.as_mut() {
            t.mark(i);
            t.mark(j);
        }
        if single.is_none() {
            combined_row(kernels, &active_kernels, j, &mut row_j);
            smo_axpy2_on(arch, &mut f, &row_i, dai, &row_j, daj);
        }
        let out: &[f64] = if single.is_some() { &state.g[0] } else { &f };
        viol = smo_violators_on(arch, out, y, scale, &up_pen, &low_pen);
    }
    if let Some(t) = touched {
        t.catch_up(arch, kernels, beta, &state.alpha, y, &mut state.g);
    }
    let violation = viol.up_max - viol.low_min;
    SmoRun {
        iterations,
        violation,
        converged: violation <= tol,
    }
}

/// The samples whose alpha a solve moved, and their alphas before it: what the outputs of
/// the kernels of weight 0 need to catch up.
struct Touched {
    start: Vec<f64>,
    seen: Vec<bool>,
    list: Vec<usize>,
}

impl Touched {
    fn new(alpha: &[f64]) -> Self {
        Touched {
            start: alpha.to_vec(),
            seen: vec![false; alpha.len()],
            list: Vec::new(),
        }
    }

    #[inline]
    fn mark(&mut self, t: usize) {
        if !self.seen[t] {
            self.seen[t] = true;
            self.list.push(t);
        }
    }

    /// g_m += sum_t (a_t - a_t^start) K_m(t, .) for every kernel of weight 0, two rows per
    /// pass, the kernels in parallel. At most one pass per touched sample (<= 2 per step,
    /// <= n in all), instead of one per step.
    fn catch_up(
        mut self,
        arch: mmfuse_kernels::Arch,
        kernels: &[&Matrix<f64>],
        beta: &[f64],
        alpha: &[f64],
        y: &[f64],
        g: &mut [Vec<f64>],
    ) {
        use rayon::prelude::*;
        self.list.sort_unstable();
        let moves: Vec<(usize, f64)> = self
            .list
            .iter()
            .map(|&t| (t, (alpha[t] - self.start[t]) * y[t]))
            .filter(|&(_, d)| d != 0.0)
            .collect();
        g.par_iter_mut()
            .zip(kernels.par_iter())
            .zip(beta.par_iter())
            .filter(|(_, &b)| b == 0.0)
            .for_each(|((gm, k), _)| {
                for pair in moves.chunks(2) {
                    let (t, d) = pair[0];
                    let (u, e) = pair.get(1).copied().unwrap_or((t, 0.0));
                    smo_axpy2_on(arch, gm, k.row(t), d, k.row(u), e);
                }
            });
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicBool;

    /// A small PSD kernel: `X X^T + 0.1 I` of random points.
    fn kernel(n: usize, seed: u64) -> Matrix<f64> {
        let mut s = seed | 1;
        let mut next = move || {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s >> 11) as f64 / (1u64 << 53) as f64 - 0.5
        };
        let x: Vec<f64> = (0..n * 3).map(|_| next()).collect();
        let mut k = vec![0.0; n * n];
        for i in 0..n {
            for j in 0..n {
                let dot: f64 = (0..3).map(|a| x[i * 3 + a] * x[j * 3 + a]).sum();
                k[i * n + j] = dot + if i == j { 0.1 } else { 0.0 };
            }
        }
        Matrix::from_vec(n, n, k).unwrap()
    }

    /// The outputs of kernels of weight 0 are not updated step by step but caught up at the end
    /// of each solve: after solves with changing zero patterns (warm-started), every g_m equals
    /// K_m a computed directly, to rounding (checked to fail without the catch-up).
    #[test]
    fn weight_zero_outputs_are_exact_after_each_solve() {
        let n = 40;
        let ks: Vec<Matrix<f64>> = (0..3).map(|m| kernel(n, 11 + m)).collect();
        let refs: Vec<&Matrix<f64>> = ks.iter().collect();
        let y: Vec<f64> = (0..n)
            .map(|i| if i % 3 == 0 { 1.0 } else { -1.0 })
            .collect();
        let mut state = SmoState::new(n, 3);
        let never = AtomicBool::new(false);
        for beta in [
            [1.0, 0.0, 0.0],
            [0.5, 0.5, 0.0],
            [0.0, 0.2, 0.8],
            [0.3, 0.3, 0.4],
        ] {
            let run = solve(
                &refs,
                &beta,
                &y,
                1.0,
                1e-6,
                100_000,
                &mut state,
                super::super::Stop::on(&never),
            );
            assert!(run.converged);
            for (m, k) in ks.iter().enumerate() {
                for i in 0..n {
                    let want: f64 = (0..n).map(|t| k.get(i, t) * y[t] * state.alpha[t]).sum();
                    let got = state.g[m][i];
                    assert!(
                        (got - want).abs() <= 1e-12 * (1.0 + want.abs()),
                        "beta {beta:?} m {m} i {i}: {got} vs {want}"
                    );
                }
            }
        }
    }
}
