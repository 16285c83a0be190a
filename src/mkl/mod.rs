//! p-norm multiple kernel learning (Kloft, Brefeld, Sonnenburg & Zien, JMLR 2011), docs/design.md
//! section 3: one weight beta_m >= 0 per kernel under ||beta||_p <= 1, learnt together with an
//! SVM (hinge loss) or kernel ridge regression (squared loss) by alternating a fixed-beta solve
//! (SMO, warm-started; or conjugate gradients) with the closed-form beta update, until the
//! relative duality gap is below `eps`.
//!
//! [`fit`] is the solver on -1/+1 labels (hinge) or real targets (squared); [`MklModel`] adds
//! label mapping and one-vs-rest multiclass.

mod beta;
mod blocks;
mod data;
mod file;
mod model;
mod pnorm;
mod ridge;
mod scale;
mod simplex;
mod smo;
mod synthetic;
mod validate;

pub use blocks::BlockKernels;
pub use data::DataKernel;
pub use file::{FORMAT, FORMAT_VERSION, METADATA_KEY};
pub use model::{MklModel, PREDICT_BLOCK};
pub use pnorm::{p_label, parse_p, parse_p_list};
pub use scale::{
    fit_from_data, CacheStats, DataModality, RowFitStats, RowOptions, RowPrecision, RowProgress,
    SolverStats,
};
pub use synthetic::synthetic_problem;

use crate::error::{Error, Result};
use crate::matrix::Matrix;
use beta::{closed_form_update, dual_exponent, pnorm};
use std::sync::atomic::{AtomicBool, Ordering};
use validate::{check_symmetric_finite, non_finite};

/// The loss of the fixed-beta problem.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Loss {
    /// max(0, 1 - y f): a support vector machine; labels -1 / +1.
    Hinge,
    /// 1/2 (f - y)^2: kernel ridge regression; real targets.
    Squared,
}

/// Options of [`fit`].
#[derive(Clone, Debug, PartialEq)]
pub struct MklOptions {
    /// Norm of the weight constraint, p >= 1; `f64::INFINITY` gives the unweighted sum kernel.
    pub p: f64,
    /// Cost C > 0 of the loss (C = 1/lambda in the lambda-form).
    pub c: f64,
    /// Loss.
    pub loss: Loss,
    /// Stop when the relative duality gap (P - D) / |P| is at most this.
    pub eps: f64,
    /// Initial SMO tolerance on the maximal KKT violation (tightened when the gap needs it).
    pub tol: f64,
    /// Maximum number of outer (beta) iterations.
    pub max_iter: usize,
    /// Maximum number of SMO steps per fixed-beta solve.
    pub max_smo_iter: usize,
    /// Fit even if a kernel is clearly not positive semi-definite (a 2 x 2 principal minor
    /// below zero: K_ij^2 > K_ii K_jj). Off by default: such a kernel is usually a bug
    /// upstream (a distance instead of a similarity, a bad normalisation). With it on, the
    /// SMO clamps non-positive curvatures as libsvm does, and the lp-MKL theory (convexity,
    /// the duality gap as a bound) no longer holds.
    pub allow_indefinite: bool,
}

impl Default for MklOptions {
    fn default() -> Self {
        MklOptions {
            p: 2.0,
            c: 1.0,
            loss: Loss::Hinge,
            eps: 1e-4,
            tol: 1e-3,
            max_iter: 200,
            max_smo_iter: 10_000_000,
            allow_indefinite: false,
        }
    }
}

/// A fitted model: f(x) = sum_i coef_i sum_m beta_m k_m(x_i, x) + bias.
///
/// It is the iterate with the smallest relative gap (the last one when converged, except that
/// an earlier p = 1 trial point can be better); `gap_history` lists every iteration.
#[derive(Clone, Debug, PartialEq)]
pub struct MklFit {
    /// Kernel weights, ||beta||_p = 1.
    pub beta: Vec<f64>,
    /// The same weights as shares summing to 1.
    pub beta_shares: Vec<f64>,
    /// Signed coefficients a (hinge: a_i = y_i alpha_i).
    pub coef: Vec<f64>,
    /// Bias b.
    pub bias: f64,
    /// Primal objective.
    pub primal: f64,
    /// Dual objective.
    pub dual: f64,
    /// Relative duality gap (P - D) / |P|.
    pub gap: f64,
    /// Outer iterations.
    pub iterations: usize,
    /// SMO steps (or CG steps for the squared loss) in total.
    pub smo_iterations: usize,
    /// Number of non-zero coefficients.
    pub n_support: usize,
    /// Whether the gap reached `eps`.
    pub converged: bool,
    /// Relative gap after each outer iteration.
    pub gap_history: Vec<f64>,
}

impl MklFit {
    /// Decision values (hinge) or predictions (squared) for test kernels K_m(X_test, X_train)
    /// (n_test x n_train each, in the order of the training kernels).
    pub fn decision_function(&self, test_kernels: &[&Matrix<f64>]) -> Result<Vec<f64>> {
        if test_kernels.len() != self.beta.len() {
            return Err(Error::Shape(format!(
                "{} test kernels for a model of {} kernels",
                test_kernels.len(),
                self.beta.len()
            )));
        }
        let n_train = self.coef.len();
        let n_test = test_kernels[0].nrows();
        for (m, k) in test_kernels.iter().enumerate() {
            if k.shape() != (n_test, n_train) {
                return Err(Error::Shape(format!(
                    "test kernel {m} is {} x {}, expected {n_test} x {n_train} (test x train)",
                    k.nrows(),
                    k.ncols()
                )));
            }
            crate::gram::check_finite_matrix(k, &format!("test kernel {m}"))?;
        }
        let mut out = vec![self.bias; n_test];
        for (k, &b) in test_kernels.iter().zip(&self.beta) {
            if b == 0.0 {
                continue;
            }
            for (t, o) in out.iter_mut().enumerate() {
                *o += b * k
                    .row(t)
                    .iter()
                    .zip(&self.coef)
                    .map(|(x, a)| x * a)
                    .sum::<f64>();
            }
        }
        Ok(out)
    }
}

/// Checks the training problem except the entries off the diagonal (see [`check_entries`]):
/// kernels square, same size, with a finite non-negative diagonal; labels +-1 with both classes
/// (hinge) or finite (squared); p >= 1, C > 0, eps > 0, tol > 0.
fn validate(kernels: &[&Matrix<f64>], y: &[f64], o: &MklOptions) -> Result<usize> {
    let first = kernels
        .first()
        .ok_or_else(|| Error::Empty("MKL needs at least one kernel".into()))?;
    let n = first.nrows();
    if n < 2 {
        return Err(Error::Empty(format!(
            "MKL needs at least 2 samples, got {n}"
        )));
    }
    for (m, k) in kernels.iter().enumerate() {
        if k.nrows() != k.ncols() {
            return Err(Error::Shape(format!(
                "kernel {m} is {} x {}, not square",
                k.nrows(),
                k.ncols()
            )));
        }
        if k.nrows() != n {
            return Err(Error::Shape(format!(
                "kernel {m} is {0} x {0} but kernel 0 is {n} x {n}",
                k.nrows()
            )));
        }
        let what = format!("kernel {m}");
        let data = k.as_slice();
        for i in 0..n {
            let v = data[i * n + i];
            if !v.is_finite() {
                return Err(non_finite(&what, i, i, v));
            }
            if v < 0.0 {
                return Err(Error::NotPsd(format!(
                    "{what} has a negative diagonal entry K[{i}][{i}] = {v}"
                )));
            }
        }
    }
    if y.len() != n {
        return Err(Error::Shape(format!("{} labels for {n} samples", y.len())));
    }
    if let Some(i) = y.iter().position(|v| !v.is_finite()) {
        return Err(Error::NonFinite {
            what: "labels".into(),
            row: i,
            col: 0,
            value: format!("{}", y[i]),
        });
    }
    if o.loss == Loss::Hinge {
        if let Some(i) = y.iter().position(|&v| v != 1.0 && v != -1.0) {
            return Err(Error::param(
                "labels",
                format!("hinge loss needs labels -1 / +1, label {i} is {}", y[i]),
            ));
        }
        if !(y.contains(&1.0) && y.contains(&-1.0)) {
            return Err(Error::param("labels", "only one class present"));
        }
    }
    if o.p.is_nan() || o.p < 1.0 {
        return Err(Error::param("p", format!("must be >= 1, got {}", o.p)));
    }
    for (name, v) in [("c", o.c), ("eps", o.eps), ("tol", o.tol)] {
        if !(v.is_finite() && v > 0.0) {
            return Err(Error::param(
                name,
                format!("must be finite and > 0, got {v}"),
            ));
        }
    }
    if o.max_iter == 0 {
        return Err(Error::param("max_iter", "must be >= 1"));
    }
    Ok(n)
}

/// The pass over every entry of every kernel (after [`validate`] checked the shapes and the
/// diagonals): finite, symmetric to 1e-8 of the largest diagonal entry, and (unless
/// `allow_indefinite`) no negative 2 x 2 principal minor. `parallel`: the blocks of one kernel
/// in parallel with rayon (when nothing else runs), else on the calling thread.
fn check_entries(kernels: &[&Matrix<f64>], o: &MklOptions, parallel: bool) -> Result<()> {
    for (m, k) in kernels.iter().enumerate() {
        let (n, data) = (k.nrows(), k.as_slice());
        // For a PSD matrix |K_ij| <= sqrt(K_ii K_jj) <= max_i K_ii: the diagonal sets the scale
        // of the symmetry tolerance without a pass over the whole matrix.
        let scale = (0..n).map(|i| data[i * n + i]).fold(0.0f64, f64::max);
        let sqrt_diag: Vec<f64> = (0..n).map(|i| data[i * n + i].sqrt()).collect();
        let minors = (!o.allow_indefinite).then_some(&sqrt_diag[..]);
        let tol = 1e-8 * scale.max(f64::MIN_POSITIVE);
        check_symmetric_finite(data, n, tol, minors, &format!("kernel {m}"), parallel)?;
    }
    Ok(())
}

/// Primal and dual objectives at coefficients `a` (with per-kernel s_m = a^T K_m a), bias `b`
/// and combined output f = K_beta a.
fn objectives(
    o: &MklOptions,
    beta: &[f64],
    s: &[f64],
    a: &[f64],
    f: &[f64],
    b: f64,
    y: &[f64],
) -> (f64, f64) {
    let reg: f64 = 0.5 * beta.iter().zip(s).map(|(bm, sm)| bm * sm).sum::<f64>();
    let s_pos: Vec<f64> = s.iter().map(|v| v.max(0.0)).collect();
    let snorm = pnorm(&s_pos, dual_exponent(o.p));
    match o.loss {
        Loss::Hinge => {
            let loss: f64 = f
                .iter()
                .zip(y)
                .map(|(fi, yi)| (1.0 - yi * (fi + b)).max(0.0))
                .sum();
            let sum_alpha: f64 = a.iter().zip(y).map(|(ai, yi)| ai * yi).sum();
            (reg + o.c * loss, sum_alpha - 0.5 * snorm)
        }
        Loss::Squared => {
            let loss: f64 = f.iter().zip(y).map(|(fi, yi)| (fi + b - yi).powi(2)).sum();
            let ya: f64 = a.iter().zip(y).map(|(ai, yi)| ai * yi).sum();
            let aa: f64 = a.iter().map(|v| v * v).sum();
            (reg + 0.5 * o.c * loss, ya - aa / (2.0 * o.c) - 0.5 * snorm)
        }
    }
}

/// Fits lp-norm MKL on precomputed training kernels (n x n each) and targets `y`
/// (hinge: -1 / +1; squared: real values).
///
/// For p > 1 the weights follow the closed-form update after each fixed-beta solve; p = inf is
/// one solve on the sum kernel. For p = 1, where that update stalls, the weights follow the
/// spectral projected gradient on the simplex (module `simplex`): Barzilai-Borwein steps on
/// J(beta) with gradient -1/2 s, projection onto the simplex, non-monotone line search.
pub fn fit(kernels: &[&Matrix<f64>], y: &[f64], opts: &MklOptions) -> Result<MklFit> {
    fit_with_progress(kernels, y, opts, &mut |_, _, _| {})
}

/// p = 1: after this many trial points without a better gap, the fixed-beta solves are
/// tightened and the projected gradient restarts.
const STALL_EVALUATIONS: usize = 10;

/// A fixed-beta solution: coefficients a, bias b, per-kernel outputs g_m = K_m a, and
/// s_m = a^T g_m.
pub(crate) struct Solved {
    pub a: Vec<f64>,
    pub b: f64,
    pub g: Vec<Vec<f64>>,
    pub s: Vec<f64>,
}

/// A fixed-beta solver with its warm-start state: precomputed kernels ([`Inner`]) or rows
/// from the data (module `scale`).
pub(crate) trait FixedBetaSolver {
    /// Solves the fixed-beta problem to tolerance `tol` from the previous solution.
    fn solve(&mut self, beta: &[f64], tol: f64) -> Result<Solved>;
    /// SMO (or CG) steps so far.
    fn steps(&self) -> usize;
}

/// The fixed-beta solvers with their warm-start state.
struct Inner<'k> {
    kernels: &'k [&'k Matrix<f64>],
    y: &'k [f64],
    opts: &'k MklOptions,
    smo: smo::SmoState,
    ridge: ridge::RidgeState,
    steps: usize,
    /// Set when the entry check failed or the caller cancelled: SMO stops at its next step.
    stop: Stop<'k>,
}

impl FixedBetaSolver for Inner<'_> {
    fn steps(&self) -> usize {
        self.steps
    }

    fn solve(&mut self, beta: &[f64], tol: f64) -> Result<Solved> {
        let (kernels, y, opts) = (self.kernels, self.y, self.opts);
        let n = y.len();
        let (a, b, g) = match opts.loss {
            Loss::Hinge => {
                let run = smo::solve(
                    kernels,
                    beta,
                    y,
                    opts.c,
                    tol,
                    opts.max_smo_iter,
                    &mut self.smo,
                    self.stop,
                );
                self.steps += run.iterations;
                if !run.converged && run.iterations >= opts.max_smo_iter {
                    return Err(Error::NotConverged(format!(
                        "SMO reached max_smo_iter = {} with KKT violation {:.3e}",
                        opts.max_smo_iter, run.violation
                    )));
                }
                let f = self.smo.combined_output(beta);
                let grad: Vec<f64> = (0..n).map(|i| y[i] * f[i] - 1.0).collect();
                let b = smo::bias(y, &grad, &self.smo.alpha, opts.c);
                let a: Vec<f64> = self
                    .smo
                    .alpha
                    .iter()
                    .zip(y)
                    .map(|(al, yi)| al * yi)
                    .collect();
                (a, b, self.smo.g.clone())
            }
            Loss::Squared => {
                let rtol = (tol * 1e-3).max(1e-13);
                let (a, b, steps) =
                    ridge::solve(kernels, beta, y, opts.c, rtol, &mut self.ridge, self.stop)?;
                self.steps += steps;
                let g: Vec<Vec<f64>> = kernels
                    .iter()
                    .map(|k| {
                        (0..n)
                            .map(|i| k.row(i).iter().zip(&a).map(|(x, y)| x * y).sum())
                            .collect()
                    })
                    .collect();
                (a, b, g)
            }
        };
        let s = g
            .iter()
            .map(|gm| gm.iter().zip(&a).map(|(x, y)| x * y).sum())
            .collect();
        Ok(Solved { a, b, g, s })
    }
}

/// The fixed-beta dual value at a solution: the objective J(beta) whose gradient in beta is
/// -1/2 s (hinge: 1^T alpha - 1/2 sum beta_m s_m; squared: y^T a - |a|^2/(2C) - 1/2 sum
/// beta_m s_m).
fn fixed_beta_dual(o: &MklOptions, beta: &[f64], sol: &Solved, y: &[f64]) -> f64 {
    let quad: f64 = 0.5 * beta.iter().zip(&sol.s).map(|(b, s)| b * s).sum::<f64>();
    let ya: f64 = sol.a.iter().zip(y).map(|(a, y)| a * y).sum();
    match o.loss {
        Loss::Hinge => ya - quad,
        Loss::Squared => {
            let aa: f64 = sol.a.iter().map(|v| v * v).sum();
            ya - aa / (2.0 * o.c) - quad
        }
    }
}

/// [`fit`], calling `progress(iteration, relative_gap, beta)` after every outer iteration
/// (for p = 1: after every trial point of the line search).
pub fn fit_with_progress(
    kernels: &[&Matrix<f64>],
    y: &[f64],
    opts: &MklOptions,
    progress: &mut dyn FnMut(usize, f64, &[f64]),
) -> Result<MklFit> {
    fit_stoppable(kernels, y, opts, None, progress)
}

/// [`fit_with_progress`] that a caller can stop from another thread: once `cancel` is set the
/// fit stops within one SMO step (hinge loss) or one conjugate-gradient step (squared loss)
/// and returns `Error::Cancelled`, or the entry check's error
/// when the kernels hold a bad value. Set it from a signal handler or a watchdog: Ctrl-C in a
/// Python session ends a fit at n = 15,000 within a fraction of a second, where waiting for
/// the end of an outer iteration (one full SMO solve) can take many seconds.
///
/// ```
/// use mmfuse::mkl::{fit_cancellable, MklOptions};
/// use mmfuse::Matrix;
/// use std::sync::atomic::AtomicBool;
///
/// let k = Matrix::from_vec(2, 2, vec![1.0, 0.2, 0.2, 1.0])?;
/// let stop = AtomicBool::new(true);
/// let err = fit_cancellable(&[&k], &[1.0, -1.0], &MklOptions::default(), &stop, &mut |_, _, _| {});
/// assert!(matches!(err, Err(mmfuse::Error::Cancelled(_))));
/// # Ok::<(), mmfuse::Error>(())
/// ```
pub fn fit_cancellable(
    kernels: &[&Matrix<f64>],
    y: &[f64],
    opts: &MklOptions,
    cancel: &AtomicBool,
    progress: &mut dyn FnMut(usize, f64, &[f64]),
) -> Result<MklFit> {
    fit_stoppable(kernels, y, opts, Some(cancel), progress)
}

/// What stops a running fit at its next SMO step (and at the next outer iteration): the
/// entry check running beside the solver sets `check` when it finds a bad value; `caller`
/// is the flag of [`fit_cancellable`] or of the rows solver's options.
#[derive(Clone, Copy)]
pub(crate) struct Stop<'a> {
    check: &'a AtomicBool,
    caller: Option<&'a AtomicBool>,
}

impl<'a> Stop<'a> {
    /// A stop on one flag.
    pub(crate) fn on(flag: &'a AtomicBool) -> Self {
        Stop {
            check: flag,
            caller: None,
        }
    }

    /// Whether either flag is set.
    #[inline]
    pub(crate) fn is_set(&self) -> bool {
        self.check.load(Ordering::Relaxed) || self.caller.is_some_and(|c| c.load(Ordering::Relaxed))
    }
}

/// [`fit_with_progress`] with an optional caller's stop flag.
pub(crate) fn fit_stoppable(
    kernels: &[&Matrix<f64>],
    y: &[f64],
    opts: &MklOptions,
    caller: Option<&AtomicBool>,
    progress: &mut dyn FnMut(usize, f64, &[f64]),
) -> Result<MklFit> {
    let n = validate(kernels, y, opts)?;
    // The pass over every kernel entry runs beside the solver: it reads all M n^2 values once
    // (at n = 5000 about as long as a whole single-kernel SMO solve), while the solver is
    // sequential and reads a few rows per step. The solver stops early if the pass finds a bad
    // entry, and the pass's error is what the caller gets, so results and errors are the same
    // as checking first; only `progress` may have been called before such an error.
    let check = AtomicBool::new(false);
    let stop = Stop {
        check: &check,
        caller,
    };
    if rayon::current_num_threads() < 2 {
        check_entries(kernels, opts, true)?;
        return solve_checked(kernels, y, opts, n, stop, progress);
    }
    let mut entries = Ok(());
    let fitted = rayon::in_place_scope(|scope| {
        scope.spawn(|_| {
            entries = check_entries(kernels, opts, false);
            if entries.is_err() {
                check.store(true, Ordering::Relaxed);
            }
        });
        solve_checked(kernels, y, opts, n, stop, progress)
    });
    entries?;
    fitted
}

/// The alternating solver of [`fit_with_progress`] on a validated problem of n samples; stops
/// with an error (replaced by the entry check's error when that is what set it) when `stop`
/// is set.
fn solve_checked(
    kernels: &[&Matrix<f64>],
    y: &[f64],
    opts: &MklOptions,
    n: usize,
    stop: Stop<'_>,
    progress: &mut dyn FnMut(usize, f64, &[f64]),
) -> Result<MklFit> {
    let mut inner = Inner {
        kernels,
        y,
        opts,
        smo: smo::SmoState::new(n, kernels.len()),
        ridge: ridge::RidgeState::new(n),
        steps: 0,
        stop,
    };
    outer_loop(&mut inner, kernels.len(), y, opts, stop, progress)
}

/// The alternating solver over any fixed-beta solver of `mm` kernels: fixed-beta solves, the
/// duality gap, the beta updates (closed form; p = 1: projected gradient), tightening.
pub(crate) fn outer_loop(
    inner: &mut dyn FixedBetaSolver,
    mm: usize,
    y: &[f64],
    opts: &MklOptions,
    stop: Stop<'_>,
    progress: &mut dyn FnMut(usize, f64, &[f64]),
) -> Result<MklFit> {
    let n = y.len();
    let p = opts.p;
    let mut beta = if p.is_infinite() {
        vec![1.0; mm]
    } else {
        vec![(mm as f64).powf(-1.0 / p); mm]
    };
    let mut tol = opts.tol;
    let mut history = Vec::new();
    // p = 1: the projected-gradient state (None until the first point is evaluated, and again
    // after the solves were tightened).
    let mut spg: Option<simplex::Spg> = None;
    let mut best: Option<MklFit> = None;
    // p = 1: evaluations since the best gap last improved.
    let mut since_best = 0usize;
    for iter in 1..=opts.max_iter {
        let sol = inner.solve(&beta, tol)?;
        if stop.is_set() {
            return Err(Error::Cancelled(
                "the fit stopped: the kernel entry check running beside it failed, or it was \
                 cancelled"
                    .into(),
            ));
        }
        let f: Vec<f64> = (0..n)
            .map(|i| beta.iter().zip(&sol.g).map(|(bm, gm)| bm * gm[i]).sum())
            .collect();
        let (primal, dual) = objectives(opts, &beta, &sol.s, &sol.a, &f, sol.b, y);
        let gap = (primal - dual) / primal.abs().max(f64::MIN_POSITIVE);
        history.push(gap);
        progress(iter, gap, &beta);
        let converged = gap <= opts.eps;
        if best.as_ref().is_none_or(|b| gap < b.gap) || converged || iter == opts.max_iter {
            let n_support = sol.a.iter().filter(|v| **v != 0.0).count();
            let total: f64 = beta.iter().sum();
            let candidate = MklFit {
                beta_shares: beta.iter().map(|b| b / total).collect(),
                beta: beta.clone(),
                coef: sol.a.clone(),
                bias: sol.b,
                primal,
                dual,
                gap,
                iterations: iter,
                smo_iterations: inner.steps(),
                n_support,
                converged,
                gap_history: Vec::new(),
            };
            // At the end, report the best point seen (p = 1 trial points can be worse than
            // earlier ones), with the totals of the whole run.
            let keep_old = best.as_ref().is_some_and(|b| b.gap <= gap);
            if !keep_old {
                best = Some(candidate);
                since_best = 0;
            }
        } else {
            since_best += 1;
        }
        if converged || iter == opts.max_iter {
            let mut out = best.take().expect("set above");
            out.iterations = iter;
            out.smo_iterations = inner.steps();
            out.gap_history = history;
            return Ok(out);
        }
        // If the fixed-beta solve is the limit (p = inf: beta never changes; otherwise the gap
        // stopped shrinking), tighten it; SMO resumes from its current alpha.
        let stalled = history.len() >= 2 && history[history.len() - 2] - gap < 0.1 * gap.abs();
        let tighten = p.is_infinite() || (p > 1.0 && stalled);
        if tighten {
            tol = (tol * 0.1).max(1e-9);
        }
        if p == 1.0 && since_best >= STALL_EVALUATIONS {
            // The gap is no longer improving: the fixed-beta solves are too inexact for the
            // steps. Tighten them and restart the projected gradient (its memory of J values
            // came from looser solves) from the current point.
            tol = (tol * 0.1).max(1e-9);
            spg = None;
            since_best = 0;
        } else if p == 1.0 {
            let j_value = fixed_beta_dual(opts, &beta, &sol, y);
            beta = match spg.as_mut() {
                None => {
                    let (state, next) = simplex::Spg::start(&beta, &sol.s, j_value);
                    spg = Some(state);
                    next
                }
                Some(state) => match state.step(&beta, &sol.s, j_value) {
                    simplex::SpgStep::Next(next) => next,
                    simplex::SpgStep::Tighten(back) => {
                        tol = (tol * 0.1).max(1e-9);
                        spg = None;
                        back
                    }
                },
            };
        } else {
            beta = closed_form_update(&beta, &sol.s, p);
        }
    }
    Err(Error::NotConverged("no iteration ran".into()))
}
