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

/// Curvature floor for non-PSD or degenerate pairs (libsvm's TAU).
const TAU: f64 = 1e-12;

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

/// How many steps between two shrinking passes (libsvm's min(n, 1000)).
const SHRINK_EVERY: usize = 1000;

/// Runs SMO to maximal violation <= `tol` (or `max_iter` steps) on K_beta, from `state`.
///
/// libsvm's shrinking: every [`SHRINK_EVERY`] steps, variables at a bound whose gradient says
/// they will stay there leave the active set, and the selection passes only visit the active
/// set. The per-kernel outputs g_m are still updated for every sample (a streaming pass over
/// the two kernel rows, which is needed anyway), so the gradient of a shrunk variable is never
/// stale: when the active set reaches the tolerance, the whole set is checked from g before
/// stopping. With a single kernel the gradient is read from g directly and the rows come
/// straight from the kernel (no combined-row copy).
pub(crate) fn solve(
    kernels: &[&Matrix<f64>],
    beta: &[f64],
    y: &[f64],
    c: f64,
    tol: f64,
    max_iter: usize,
    state: &mut SmoState,
) -> SmoRun {
    let n = y.len();
    let active_kernels: Vec<(usize, f64)> = beta
        .iter()
        .copied()
        .enumerate()
        .filter(|&(_, b)| b != 0.0)
        .collect();
    // One kernel with a non-zero weight b: K_beta = b K and f = b g, no copies needed.
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
    // f = K_beta a, valid on the active set (several kernels only); G_t = y_t f_t - 1.
    let mut f = if single.is_some() {
        Vec::new()
    } else {
        state.combined_output(beta)
    };
    let mut row_i = vec![0.0; if single.is_some() { 0 } else { n }];
    let mut row_j = vec![0.0; if single.is_some() { 0 } else { n }];
    let mut active: Vec<usize> = (0..n).collect();
    let mut unshrunk = false;
    let mut countdown = SHRINK_EVERY.min(n);
    let mut iterations = 0;
    let mut violation = f64::INFINITY;
    while iterations < max_iter {
        let alpha = &state.alpha;
        let g0 = &state.g[0];
        let grad = |t: usize| match single {
            Some(b) => y[t] * (b * g0[t]) - 1.0,
            None => y[t] * f[t] - 1.0,
        };
        countdown -= 1;
        if countdown == 0 {
            countdown = SHRINK_EVERY.min(n);
            let (gmax1, gmax2) = bound_violations(&active, alpha, y, c, &grad);
            if !unshrunk && gmax1 + gmax2 <= 10.0 * tol {
                // Close to the end: bring every variable back once, as libsvm does.
                unshrunk = true;
                active = (0..n).collect();
                if single.is_none() {
                    f = state.combined_output(beta);
                }
                continue;
            }
            let grad = |t: usize| match single {
                Some(b) => y[t] * (b * g0[t]) - 1.0,
                None => y[t] * f[t] - 1.0,
            };
            active.retain(|&t| !stays_at_bound(t, alpha, y, c, grad(t), gmax1, gmax2));
        }
        let grad = |t: usize| match single {
            Some(b) => y[t] * (b * g0[t]) - 1.0,
            None => y[t] * f[t] - 1.0,
        };
        // i: maximal violator in I_up; the stopping rule needs the minimum over I_low too.
        let mut gmax = f64::NEG_INFINITY;
        let mut i_sel = usize::MAX;
        let mut gmin = f64::INFINITY;
        for &t in &active {
            let v = -y[t] * grad(t);
            if in_up(alpha[t], y[t], c) && v > gmax {
                gmax = v;
                i_sel = t;
            }
            if in_low(alpha[t], y[t], c) && v < gmin {
                gmin = v;
            }
        }
        violation = gmax - gmin;
        if i_sel == usize::MAX || violation <= tol {
            if active.len() < n {
                // Optimal on the active set: check the whole set before stopping.
                active = (0..n).collect();
                if single.is_none() {
                    f = state.combined_output(beta);
                }
                countdown = SHRINK_EVERY.min(n);
                continue;
            }
            break;
        }
        let i = i_sel;
        // K_beta(i, t) = scale * ki[t] on the active set.
        let (ki, scale) = match single {
            Some(b) => (kernels[0].row(i), b),
            None => {
                combined_row_on(kernels, &active_kernels, &active, i, &mut row_i);
                (&row_i[..], 1.0)
            }
        };
        // j: second-order choice in I_low among t with -y_t G_t < gmax, maximising
        // b_it^2 / a_it; ratios are compared by cross-multiplication (no division per sample;
        // a_it >= TAU > 0, and the first candidate always wins against the 0 / 1 start).
        let (mut best_b2, mut best_a) = (0.0f64, 1.0f64);
        let mut j_sel = usize::MAX;
        for &t in &active {
            if !in_low(alpha[t], y[t], c) {
                continue;
            }
            let b_it = gmax + y[t] * grad(t);
            if b_it > 0.0 {
                // Curvature along the pair: K_ii + K_tt - 2 K_it (for either sign of y_t).
                let a_it = diag[i] + diag[t] - 2.0 * scale * ki[t];
                let a_it = if a_it > 0.0 { a_it } else { TAU };
                let b2 = b_it * b_it;
                if b2 * best_a >= best_b2 * a_it {
                    best_b2 = b2;
                    best_a = a_it;
                    j_sel = t;
                }
            }
        }
        if j_sel == usize::MAX {
            break;
        }
        let j = j_sel;
        let k_ij = scale * ki[j];
        let (gi, gj) = (grad(i), grad(j));
        iterations += 1;
        let alpha = &mut state.alpha;
        let (old_ai, old_aj) = (alpha[i], alpha[j]);
        two_variable_step(alpha, y, &diag, k_ij, (gi, gj), c, i, j);
        let (dai, daj) = ((alpha[i] - old_ai) * y[i], (alpha[j] - old_aj) * y[j]);
        if single.is_none() {
            combined_row_on(kernels, &active_kernels, &active, j, &mut row_j);
            for &t in &active {
                f[t] += row_i[t] * dai + row_j[t] * daj;
            }
        }
        // Every kernel's output, on every sample, including kernels of weight 0: s_m = a^T g_m
        // enters the dual norm ||s||_{p*} and the beta update whatever beta_m is.
        for (k, gm) in kernels.iter().zip(state.g.iter_mut()) {
            axpy2(gm, k.row(i), dai, k.row(j), daj);
        }
    }
    SmoRun {
        iterations,
        violation,
        converged: violation <= tol,
    }
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

/// libsvm's Gmax1 = max over I_up of -y G and Gmax2 = max over I_low of y G, on `active`.
fn bound_violations(
    active: &[usize],
    alpha: &[f64],
    y: &[f64],
    c: f64,
    grad: &dyn Fn(usize) -> f64,
) -> (f64, f64) {
    let (mut gmax1, mut gmax2) = (f64::NEG_INFINITY, f64::NEG_INFINITY);
    for &t in active {
        let yg = y[t] * grad(t);
        if in_up(alpha[t], y[t], c) {
            gmax1 = gmax1.max(-yg);
        }
        if in_low(alpha[t], y[t], c) {
            gmax2 = gmax2.max(yg);
        }
    }
    (gmax1, gmax2)
}

/// libsvm's be_shrunk: a variable at a bound whose gradient pushes it further out of the
/// interior than every current violator.
fn stays_at_bound(
    t: usize,
    alpha: &[f64],
    y: &[f64],
    c: f64,
    g: f64,
    gmax1: f64,
    gmax2: f64,
) -> bool {
    if alpha[t] >= c {
        if y[t] > 0.0 {
            -g > gmax1
        } else {
            -g > gmax2
        }
    } else if alpha[t] <= 0.0 {
        if y[t] > 0.0 {
            g > gmax2
        } else {
            g > gmax1
        }
    } else {
        false
    }
}

/// out[t] = sum_m beta_m K_m(i, t) for t in `active` (other entries untouched).
fn combined_row_on(
    kernels: &[&Matrix<f64>],
    active_kernels: &[(usize, f64)],
    active: &[usize],
    i: usize,
    out: &mut [f64],
) {
    for &t in active {
        out[t] = 0.0;
    }
    for &(m, b) in active_kernels {
        let row = kernels[m].row(i);
        for &t in active {
            out[t] += b * row[t];
        }
    }
}

/// g += a x_i + b x_j, in one streaming pass.
fn axpy2(g: &mut [f64], xi: &[f64], a: f64, xj: &[f64], b: f64) {
    let n = g.len();
    let (xi, xj) = (&xi[..n], &xj[..n]);
    for t in 0..n {
        g[t] += xi[t] * a + xj[t] * b;
    }
}

/// libsvm's two-variable update (Solver::Solve) of alpha_i, alpha_j on Q entries, with
/// K_beta(i, j) = `k_ij` and gradient entries `gi`, `gj`; keeps y^T alpha and the box.
#[allow(clippy::too_many_arguments)]
fn two_variable_step(
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
