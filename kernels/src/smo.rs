//! The per-iteration passes of SMO (sequential minimal optimisation for the SVM dual), as
//! branch-free SIMD loops over dense arrays.
//!
//! An SMO step reads two kernel rows and touches every sample three times: to choose the second
//! variable of the working pair (libsvm's second-order rule), to update the outputs, and to find
//! the next maximal violator. Written as scalar loops with branches these passes cost more
//! than streaming the rows from memory; here every test is a mask and every choice an
//! arg-max carried per lane, so a pass runs at the speed of its loads.
//!
//! Notation (libsvm's, with `y_t = +-1`, outputs `F = scale * out`, gradient `G_t = y_t F_t - 1`):
//! `v_t = -y_t G_t = y_t - scale * out_t`. Whether t may move up (`I_up`) or down (`I_low`) is
//! given by the *penalty* arrays: `up_pen[t]` is 0 for t in `I_up` and `-inf` otherwise,
//! `low_pen[t]` is 0 for t in `I_low` and `+inf` otherwise, so that `v + up_pen` and
//! `v + low_pen` are the keys of the arg-max and the min (`v` is finite: it is a sum of finite
//! kernel entries).
//!
//! Every value is computed with the same operations in the same order as the scalar twins in
//! [`crate::reference`] (no fused multiply-add), and arg-max / arg-min return the *first* index
//! among ties, so the SIMD passes return exactly what the twins return, on every instruction set.

use crate::Arch;
use pulp::{Simd, WithSimd};

/// libsvm's TAU: the curvature used for a pair whose curvature is not positive.
pub const SMO_TAU: f64 = 1e-12;

/// The maximal violators of a first-order pass: `up_max = max_{t in I_up} v_t` at the first
/// index `up_arg` reaching it (`usize::MAX` and `-inf` when `I_up` is empty), and
/// `low_min = min_{t in I_low} v_t` (`+inf` when empty). The KKT violation is
/// `up_max - low_min`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Violators {
    /// max over `I_up` of `v_t`.
    pub up_max: f64,
    /// First index reaching `up_max`, or `usize::MAX`.
    pub up_arg: usize,
    /// min over `I_low` of `v_t`.
    pub low_min: f64,
}

/// The second variable chosen by libsvm's second-order rule: the first `t` in `I_low` with
/// `b_t = up_max - v_t > 0` minimising `-b_t^2 / a_t`, where
/// `a_t = (diag_i + diag[t]) - 2 (kscale * ki[t])` (or [`SMO_TAU`] when that is not positive).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SecondChoice {
    /// The chosen index, or `usize::MAX` when no `t` qualifies.
    pub arg: usize,
    /// Its objective `-b^2 / a` (`+inf` when none).
    pub objective: f64,
}

/// Lane indices 0, 1, 2, ... as f64 (exact below 2^53), for the arg-max of up to 16 lanes.
const IOTA: [f64; 16] = [
    0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0, 11.0, 12.0, 13.0, 14.0, 15.0,
];

#[inline(always)]
fn lanes<S: Simd>() -> usize {
    core::mem::size_of::<S::f64s>() / core::mem::size_of::<f64>()
}

/// Spills a vector to an array (only the first `lanes::<S>()` entries are set).
#[inline(always)]
fn spill<S: Simd>(s: S, v: S::f64s) -> [f64; 16] {
    let mut out = [0.0; 16];
    s.partial_store_f64s(&mut out[..lanes::<S>()], v);
    out
}

/// Reduces per-lane (best, index) pairs to the global first extremum: the best value, and among
/// lanes holding it the smallest index. `better(a, b)` is the strict order (`>` or `<`).
#[inline(always)]
fn reduce_arg<S: Simd>(
    s: S,
    best: S::f64s,
    idx: S::f64s,
    better: impl Fn(f64, f64) -> bool,
) -> (f64, usize) {
    let (b, i) = (spill(s, best), spill(s, idx));
    let (mut vb, mut vi) = (b[0], i[0]);
    for l in 1..lanes::<S>() {
        if better(b[l], vb) || (b[l] == vb && i[l] < vi) {
            vb = b[l];
            vi = i[l];
        }
    }
    (vb, vi as usize)
}

/// The maximal violators (see [`Violators`]) of `v = y - scale * out`.
///
/// # Panics
/// If the slices differ in length.
pub fn smo_violators_on(
    arch: Arch,
    out: &[f64],
    y: &[f64],
    scale: f64,
    up_pen: &[f64],
    low_pen: &[f64],
) -> Violators {
    arch.dispatch(ViolatorsOp {
        out,
        y,
        scale,
        up_pen,
        low_pen,
    })
}

/// [`smo_violators_on`] on the instruction set of [`crate::arch`].
pub fn smo_violators(
    out: &[f64],
    y: &[f64],
    scale: f64,
    up_pen: &[f64],
    low_pen: &[f64],
) -> Violators {
    smo_violators_on(crate::arch(), out, y, scale, up_pen, low_pen)
}

/// [`smo_violators_on`]'s arguments, for pulp's dispatch. The first-order pass: arg-max and
/// min carried per lane, reduced at the end.
struct ViolatorsOp<'a> {
    out: &'a [f64],
    y: &'a [f64],
    scale: f64,
    up_pen: &'a [f64],
    low_pen: &'a [f64],
}

impl WithSimd for ViolatorsOp<'_> {
    type Output = Violators;

    #[inline(always)]
    fn with_simd<S: Simd>(self, s: S) -> Violators {
        let n = self.out.len();
        assert!(
            self.y.len() == n && self.up_pen.len() == n && self.low_pen.len() == n,
            "smo violators: lengths"
        );
        let l = lanes::<S>();
        let split = n - n % l;
        let (out_h, _) = S::as_simd_f64s(&self.out[..split]);
        let (y_h, _) = S::as_simd_f64s(&self.y[..split]);
        let (up_h, _) = S::as_simd_f64s(&self.up_pen[..split]);
        let (low_h, _) = S::as_simd_f64s(&self.low_pen[..split]);
        let scale = s.splat_f64s(self.scale);
        let step = s.splat_f64s(l as f64);
        let mut idx = S::as_simd_f64s(&IOTA[..l]).0[0];
        let mut best = s.splat_f64s(f64::NEG_INFINITY);
        let mut best_idx = s.splat_f64s(f64::MAX);
        let mut low = s.splat_f64s(f64::INFINITY);
        for c in 0..out_h.len() {
            let v = s.sub_f64s(y_h[c], s.mul_f64s(scale, out_h[c]));
            let up_key = s.add_f64s(v, up_h[c]);
            let gt = s.greater_than_f64s(up_key, best);
            best = s.select_f64s(gt, up_key, best);
            best_idx = s.select_f64s(gt, idx, best_idx);
            low = s.min_f64s(low, s.add_f64s(v, low_h[c]));
            idx = s.add_f64s(idx, step);
        }
        let (mut up_max, mut up_arg) = reduce_arg(s, best, best_idx, |a, b| a > b);
        let mut low_min = s.reduce_min_f64s(low);
        for t in split..n {
            let v = self.y[t] - self.scale * self.out[t];
            let up_key = v + self.up_pen[t];
            if up_key > up_max {
                up_max = up_key;
                up_arg = t;
            }
            low_min = low_min.min(v + self.low_pen[t]);
        }
        if up_max == f64::NEG_INFINITY {
            up_arg = usize::MAX;
        }
        Violators {
            up_max,
            up_arg,
            low_min,
        }
    }
}

/// `out += ki * dai + kj * daj` (as `out + ((ki * dai) + (kj * daj))`): the update of one
/// kernel's outputs after an SMO step.
///
/// # Panics
/// If the slices differ in length.
pub fn smo_axpy2_on(arch: Arch, out: &mut [f64], ki: &[f64], dai: f64, kj: &[f64], daj: f64) {
    arch.dispatch(Axpy2Op {
        out,
        ki,
        dai,
        kj,
        daj,
    })
}

/// [`smo_axpy2_on`] on the instruction set of [`crate::arch`].
pub fn smo_axpy2(out: &mut [f64], ki: &[f64], dai: f64, kj: &[f64], daj: f64) {
    smo_axpy2_on(crate::arch(), out, ki, dai, kj, daj)
}

/// [`smo_axpy2_on`]'s arguments, for pulp's dispatch.
struct Axpy2Op<'a> {
    out: &'a mut [f64],
    ki: &'a [f64],
    dai: f64,
    kj: &'a [f64],
    daj: f64,
}

impl WithSimd for Axpy2Op<'_> {
    type Output = ();
    #[inline(always)]
    fn with_simd<S: Simd>(self, s: S) {
        let n = self.out.len();
        assert!(
            self.ki.len() == n && self.kj.len() == n,
            "smo axpy2: lengths"
        );
        let split = n - n % lanes::<S>();
        let (out_h, out_t) = self.out.split_at_mut(split);
        let (out_h, _) = S::as_mut_simd_f64s(out_h);
        let (ki_h, _) = S::as_simd_f64s(&self.ki[..split]);
        let (kj_h, _) = S::as_simd_f64s(&self.kj[..split]);
        let (dai, daj) = (s.splat_f64s(self.dai), s.splat_f64s(self.daj));
        for c in 0..out_h.len() {
            let inc = s.add_f64s(s.mul_f64s(ki_h[c], dai), s.mul_f64s(kj_h[c], daj));
            out_h[c] = s.add_f64s(out_h[c], inc);
        }
        for (k, o) in out_t.iter_mut().enumerate() {
            *o += self.ki[split + k] * self.dai + self.kj[split + k] * self.daj;
        }
    }
}

/// libsvm's second-order choice of the second variable (see [`SecondChoice`]), given the first
/// variable's row `ki` of the kernel (times `kscale`), its diagonal entry `diag_i` and the
/// first-order maximum `up_max`; `v = y - scale * out` as in [`Violators`].
///
/// # Panics
/// If the slices differ in length.
#[allow(clippy::too_many_arguments)]
pub fn smo_second_choice_on(
    arch: Arch,
    ki: &[f64],
    kscale: f64,
    diag_i: f64,
    diag: &[f64],
    out: &[f64],
    y: &[f64],
    scale: f64,
    low_pen: &[f64],
    up_max: f64,
) -> SecondChoice {
    arch.dispatch(SecondChoiceOp {
        ki,
        kscale,
        diag_i,
        diag,
        out,
        y,
        scale,
        low_pen,
        up_max,
    })
}

/// [`smo_second_choice_on`] on the instruction set of [`crate::arch`].
#[allow(clippy::too_many_arguments)]
pub fn smo_second_choice(
    ki: &[f64],
    kscale: f64,
    diag_i: f64,
    diag: &[f64],
    out: &[f64],
    y: &[f64],
    scale: f64,
    low_pen: &[f64],
    up_max: f64,
) -> SecondChoice {
    smo_second_choice_on(
        crate::arch(),
        ki,
        kscale,
        diag_i,
        diag,
        out,
        y,
        scale,
        low_pen,
        up_max,
    )
}

/// [`smo_second_choice_on`]'s arguments, for pulp's dispatch.
struct SecondChoiceOp<'a> {
    ki: &'a [f64],
    kscale: f64,
    diag_i: f64,
    diag: &'a [f64],
    out: &'a [f64],
    y: &'a [f64],
    scale: f64,
    low_pen: &'a [f64],
    up_max: f64,
}

impl WithSimd for SecondChoiceOp<'_> {
    type Output = SecondChoice;
    #[inline(always)]
    fn with_simd<S: Simd>(self, s: S) -> SecondChoice {
        let n = self.out.len();
        assert!(
            self.ki.len() == n
                && self.diag.len() == n
                && self.y.len() == n
                && self.low_pen.len() == n,
            "smo second choice: lengths"
        );
        let l = lanes::<S>();
        let split = n - n % l;
        let (ki_h, _) = S::as_simd_f64s(&self.ki[..split]);
        let (diag_h, _) = S::as_simd_f64s(&self.diag[..split]);
        let (out_h, _) = S::as_simd_f64s(&self.out[..split]);
        let (y_h, _) = S::as_simd_f64s(&self.y[..split]);
        let (low_h, _) = S::as_simd_f64s(&self.low_pen[..split]);
        let (kscale, scale) = (s.splat_f64s(self.kscale), s.splat_f64s(self.scale));
        let (diag_i, up_max) = (s.splat_f64s(self.diag_i), s.splat_f64s(self.up_max));
        let (zero, two, tau) = (s.splat_f64s(0.0), s.splat_f64s(2.0), s.splat_f64s(SMO_TAU));
        let inf = s.splat_f64s(f64::INFINITY);
        let step = s.splat_f64s(l as f64);
        let mut idx = S::as_simd_f64s(&IOTA[..l]).0[0];
        let mut best = inf;
        let mut best_idx = s.splat_f64s(f64::MAX);
        for c in 0..out_h.len() {
            let v = s.sub_f64s(y_h[c], s.mul_f64s(scale, out_h[c]));
            let b = s.sub_f64s(up_max, v);
            let curv = s.sub_f64s(
                s.add_f64s(diag_i, diag_h[c]),
                s.mul_f64s(two, s.mul_f64s(kscale, ki_h[c])),
            );
            let curv = s.select_f64s(s.greater_than_f64s(curv, zero), curv, tau);
            let obj = s.neg_f64s(s.div_f64s(s.mul_f64s(b, b), curv));
            // Candidates: in I_low (penalty 0) with b > 0.
            let ok = s.and_m64s(
                s.greater_than_f64s(b, zero),
                s.less_than_f64s(low_h[c], inf),
            );
            let key = s.select_f64s(ok, obj, inf);
            let lt = s.less_than_f64s(key, best);
            best = s.select_f64s(lt, key, best);
            best_idx = s.select_f64s(lt, idx, best_idx);
            idx = s.add_f64s(idx, step);
        }
        let (mut objective, mut arg) = reduce_arg(s, best, best_idx, |a, b| a < b);
        for t in split..n {
            if self.low_pen[t] < f64::INFINITY {
                let v = self.y[t] - self.scale * self.out[t];
                let b = self.up_max - v;
                if b > 0.0 {
                    let curv = (self.diag_i + self.diag[t]) - 2.0 * (self.kscale * self.ki[t]);
                    let curv = if curv > 0.0 { curv } else { SMO_TAU };
                    let obj = -(b * b / curv);
                    if obj < objective {
                        objective = obj;
                        arg = t;
                    }
                }
            }
        }
        if objective == f64::INFINITY {
            arg = usize::MAX;
        }
        SecondChoice { arg, objective }
    }
}
