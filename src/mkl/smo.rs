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

/// Runs SMO to maximal violation <= `tol` (or `max_iter` steps) on K_beta, from `state`.
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
    let active: Vec<(usize, f64)> = beta
        .iter()
        .copied()
        .enumerate()
        .filter(|&(_, b)| b != 0.0)
        .collect();
    // Diagonal of K_beta.
    let diag: Vec<f64> = (0..n)
        .map(|i| active.iter().map(|&(m, b)| b * kernels[m].get(i, i)).sum())
        .collect();
    // Gradient G_i = y_i f_i - 1.
    let f = state.combined_output(beta);
    let mut grad: Vec<f64> = (0..n).map(|i| y[i] * f[i] - 1.0).collect();
    let alpha = &mut state.alpha;
    let mut row_i = vec![0.0; n];
    let mut row_j = vec![0.0; n];
    let combined_row = |i: usize, out: &mut [f64]| {
        out.fill(0.0);
        for &(m, b) in &active {
            for (o, k) in out.iter_mut().zip(kernels[m].row(i)) {
                *o += b * k;
            }
        }
    };
    let mut iterations = 0;
    let mut violation = f64::INFINITY;
    while iterations < max_iter {
        // i: maximal violator in I_up.
        let mut gmax = f64::NEG_INFINITY;
        let mut i_sel = usize::MAX;
        let mut gmin = f64::INFINITY; // min over I_low of -y G (for the stopping rule)
        for t in 0..n {
            let v = -y[t] * grad[t];
            let up = if y[t] > 0.0 {
                alpha[t] < c
            } else {
                alpha[t] > 0.0
            };
            let low = if y[t] > 0.0 {
                alpha[t] > 0.0
            } else {
                alpha[t] < c
            };
            if up && v > gmax {
                gmax = v;
                i_sel = t;
            }
            if low && v < gmin {
                gmin = v;
            }
        }
        violation = gmax - gmin;
        if i_sel == usize::MAX || violation <= tol {
            break;
        }
        let i = i_sel;
        combined_row(i, &mut row_i);
        // j: second-order choice in I_low among t with -y_t G_t < gmax.
        let mut best = f64::INFINITY;
        let mut j_sel = usize::MAX;
        for t in 0..n {
            let low = if y[t] > 0.0 {
                alpha[t] > 0.0
            } else {
                alpha[t] < c
            };
            if !low {
                continue;
            }
            let b_it = gmax + y[t] * grad[t];
            if b_it > 0.0 {
                // Curvature along the pair: K_ii + K_tt - 2 K_it (for either sign of y_t).
                let a_it = diag[i] + diag[t] - 2.0 * row_i[t];
                let a_it = if a_it > 0.0 { a_it } else { TAU };
                let obj = -(b_it * b_it) / a_it;
                if obj <= best {
                    best = obj;
                    j_sel = t;
                }
            }
        }
        if j_sel == usize::MAX {
            break;
        }
        let j = j_sel;
        combined_row(j, &mut row_j);
        iterations += 1;
        // Two-variable update (libsvm's Solver::Solve), on Q entries.
        let q_ij = y[i] * y[j] * row_i[j];
        let (old_ai, old_aj) = (alpha[i], alpha[j]);
        if y[i] != y[j] {
            let quad = (diag[i] + diag[j] + 2.0 * q_ij).max(TAU);
            let delta = (-grad[i] - grad[j]) / quad;
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
            let delta = (grad[i] - grad[j]) / quad;
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
        let (dai, daj) = ((alpha[i] - old_ai) * y[i], (alpha[j] - old_aj) * y[j]);
        // G_t += y_t (K_beta(t, i) da_i + K_beta(t, j) da_j); g_m += K_m(:, i) da_i + ...
        for t in 0..n {
            grad[t] += y[t] * (row_i[t] * dai + row_j[t] * daj);
        }
        // Every kernel's output, including those of weight 0: s_m = a^T g_m enters the dual
        // norm ||s||_{p*} and the beta update whatever beta_m is, so g_m must follow a.
        for (k, gm) in kernels.iter().zip(state.g.iter_mut()) {
            let (ki, kj) = (k.row(i), k.row(j));
            for ((g, a), b) in gm.iter_mut().zip(ki).zip(kj) {
                *g += a * dai + b * daj;
            }
        }
    }
    SmoRun {
        iterations,
        violation,
        converged: violation <= tol,
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
