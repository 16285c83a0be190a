//! Property tests of the SIMD kernels (`sq_norms_on`, `l1_distance_tile_on`, `apply_epilogue_on`,
//! `transpose_into`) on every instruction set of `available_isas()`, for f32 and f64, against
//! 1. an (almost) exact evaluation of the same formula in f64 / double-double arithmetic on the
//!    very same (already rounded) inputs, with a rigorous rounding-error bound for the kernel, and
//! 2. the scalar reference twins in `mmfuse_kernels::reference`, which obey the same bound.
//!
//! Case count: 64 per property unless the `PROPTEST_CASES` environment variable says otherwise.
//!
//! # Error model and notation (Higham, *Accuracy and Stability of Numerical Algorithms*, ch. 2-3)
//!
//! `u` is the unit roundoff of the kernel's element type T (`eps / 2`: 2^-24 for f32, 2^-53 for
//! f64). Every floating-point operation satisfies `fl(a op b) = (a op b)(1 + d) + e` with
//! `|d| <= u`, `|e| <= eta` (`eta`: underflow; we take the smallest subnormal of T, twice the
//! real bound), `d e = 0`, and `e = 0` for `+` and `-` (a sum or difference that lands in the
//! subnormal range is exact). A fused multiply-add is one operation (one rounding). Multiplying
//! by 2, taking `abs`, `max(0, .)` or negating are exact. Then, with
//! `gamma_n = n u / (1 - n u)`, a product of `n` factors `(1 + d_k)` is `1 + theta` with
//! `|theta| <= gamma_n` (Higham lemma 3.1), and `gamma_k + u + u gamma_k <= gamma_{k+1}`.
//!
//! The bounds hold whether the kernel's `vfma` is fused (AVX2 / AVX-512) or not (pulp's `Scalar`
//! backend computes `mul_add_e` as `a * b + c`, two roundings): each bound below is derived for
//! the worse of the two.
//!
//! The "exact" value is computed from the T inputs in f64 (f32 kernels: its own error is ~2^-29
//! of an f32 ulp) or with double-double sums and products (f64 kernels), then one libm `exp` /
//! `tanh` (glibc: <= 1 ulp / <= 2 ulp of f64). Its own error bound `ref_err` is added to the
//! kernel bound when comparing with it. Each kernel bound `B` holds for the twin too, so
//! `|simd - twin| <= 2 B` by the triangle inequality (that is what "agrees with the reference
//! within the same bound" means below). Bounds are evaluated in f64 and multiplied by
//! `1 + 1e-9` (`SLACK`) to absorb the rounding of their own evaluation.

use mmfuse_kernels::{
    all_finite_on, apply_epilogue_on, available_isas, centre_rows_on, column_abs_dev_sums_on,
    column_sums_on, copy_tile_on, isa_name, l1_distance_tile_on, pack_panel, panel_width,
    reference, sq_norms_on, transpose_into_on, Arch, Epilogue, Float, TileMut,
};
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;

#[path = "../../tests/support/numerics.rs"]
mod numerics;
use numerics::Rng;
use numerics::*; // the struct, not proptest's re-exported `Rng` trait

/// Written around tiles (and into junk panel columns) to detect stray writes.
const SENTINEL: f64 = -12345.0;

/// Per-type constants of the error analysis.
trait Prec: Float {
    const NAME: &'static str;
    /// Unit roundoff `eps / 2`.
    const U: f64;
    /// Underflow error of one operation (smallest subnormal, conservative).
    const ETA: f64;
    /// One ulp of `y` rounded to this type, as in `tests/exp.rs` (spacing above the rounded
    /// value; the subnormal spacing for zero or subnormal values). Nondecreasing in `|y|`.
    fn ulp(y: f64) -> f64;
}

impl Prec for f32 {
    const NAME: &'static str = "f32";
    const U: f64 = f32::EPSILON as f64 / 2.0;
    const ETA: f64 = f32::from_bits(1) as f64;
    fn ulp(y: f64) -> f64 {
        let r = (y as f32).abs();
        if r.is_infinite() {
            return f64::INFINITY;
        }
        if r < f32::MIN_POSITIVE {
            return Self::ETA;
        }
        (f32::from_bits(r.to_bits() + 1) - r) as f64
    }
}

impl Prec for f64 {
    const NAME: &'static str = "f64";
    const U: f64 = U64;
    const ETA: f64 = ETA64;
    fn ulp(y: f64) -> f64 {
        ulp64(y)
    }
}

// ------------------------------------------------------------------------------------------
// Double-double arithmetic for the exact-ish references.

/// `sum_k x_k y_k` in double-double.
fn dot_dd<T: Float>(x: &[T], y: &[T]) -> Dd {
    x.iter().zip(y).fold(Dd::default(), |acc, (a, b)| {
        acc.add(Dd::prod(a.to_f64(), b.to_f64()))
    })
}

/// `sum_k |x_k - y_k|` in double-double (each `x_k - y_k = h + l` exactly by `two_sum`).
fn l1_dd<T: Float>(x: &[T], y: &[T]) -> Dd {
    x.iter().zip(y).fold(Dd::default(), |acc, (a, b)| {
        let (h, l) = two_sum(a.to_f64(), -b.to_f64());
        let (h, l) = if h < 0.0 { (-h, -l) } else { (h, l) };
        acc.add(Dd { hi: h, lo: l })
    })
}

// ------------------------------------------------------------------------------------------
// Test data.

/// Shape of a case: an `nrows x ncols` tile at offset `lead` of its buffer, rows
/// `ncols + pad` apart, points of dimension `d`, data from `seed`.
#[derive(Clone, Debug)]
struct Shape {
    nrows: usize,
    ncols: usize,
    d: usize,
    pad: usize,
    lead: usize,
    seed: u64,
}

fn shape(min_d: usize, max_d: usize) -> impl Strategy<Value = Shape> {
    (
        1usize..=40,
        1usize..=70,
        // Small dimensions are interesting (tails, d < lanes): give them half the weight.
        prop_oneof![min_d..=8, min_d..=max_d],
        prop_oneof![Just(0usize), 1usize..10],
        0usize..4,
        any::<u64>(),
    )
        .prop_map(|(nrows, ncols, d, pad, lead, seed)| Shape {
            nrows,
            ncols,
            d,
            pad,
            lead,
            seed,
        })
}

/// `gamma` log-uniform in [1e-3, 10].
fn gamma_strategy() -> impl Strategy<Value = f64> {
    (-3.0f64..=1.0).prop_map(|e| 10f64.powf(e))
}

/// A buffer holding a tile with sentinels before it, between its rows and after it.
#[derive(Clone, Debug)]
struct TileBuf<T> {
    data: Vec<T>,
    lead: usize,
    nrows: usize,
    ncols: usize,
    stride: usize,
}

const TRAIL: usize = 3;

impl<T: Prec> TileBuf<T> {
    fn new(
        nrows: usize,
        ncols: usize,
        pad: usize,
        lead: usize,
        mut f: impl FnMut(usize, usize) -> T,
    ) -> Self {
        let stride = ncols + pad;
        let span = if nrows == 0 {
            0
        } else {
            (nrows - 1) * stride + ncols
        };
        let mut b = TileBuf {
            data: vec![T::from_f64(SENTINEL); lead + span + TRAIL],
            lead,
            nrows,
            ncols,
            stride,
        };
        for i in 0..nrows {
            for j in 0..ncols {
                let k = b.idx(i, j);
                b.data[k] = f(i, j);
            }
        }
        b
    }
    fn idx(&self, i: usize, j: usize) -> usize {
        self.lead + i * self.stride + j
    }
    fn at(&self, i: usize, j: usize) -> T {
        self.data[self.idx(i, j)]
    }
    fn tile(&mut self) -> TileMut<'_, T> {
        TileMut::from_slice(
            &mut self.data[self.lead..],
            self.nrows,
            self.ncols,
            self.stride,
        )
    }
    fn in_tile(&self, k: usize) -> bool {
        if k < self.lead || self.stride == 0 {
            return false;
        }
        let o = k - self.lead;
        o / self.stride < self.nrows && o % self.stride < self.ncols
    }
    /// Every element outside the tile still holds the sentinel.
    fn check_untouched(&self, what: &str) -> Result<(), String> {
        for (k, v) in self.data.iter().enumerate() {
            if !self.in_tile(k) && v.to_f64() != SENTINEL {
                return Err(format!(
                    "{what}: wrote {v:?} outside the tile at buffer index {k} (lead {}, {}x{}, \
                     row stride {})",
                    self.lead, self.nrows, self.ncols, self.stride
                ));
            }
        }
        Ok(())
    }
}

/// `n x d` row-major points, entries `10 scale U(-1, 1)` rounded to T; each row is zero with
/// probability `zero_rows` / 16.
fn points<T: Prec>(rng: &mut Rng, n: usize, d: usize, scale: f64, zero_rows: u64) -> Vec<T> {
    let mut x = Vec::with_capacity(n * d);
    for _ in 0..n {
        let zero = rng.below(16) < zero_rows;
        for _ in 0..d {
            let v = 10.0 * scale * rng.sym();
            x.push(T::from_f64(if zero { 0.0 } else { v }));
        }
    }
    x
}

/// Points with entries `U(-1, 1) 2^(k - U{0..20})`: magnitudes spread over 20 binades around
/// `2^k`, for the tiny / huge tests.
fn spread_points<T: Prec>(rng: &mut Rng, n: usize, d: usize, k: i32) -> Vec<T> {
    (0..n * d)
        .map(|_| {
            let e = k - rng.below(21) as i32;
            T::from_f64(rng.sym() * 2f64.powi(e))
        })
        .collect()
}

/// `|a - b| <= tol` (or equal, which also covers equal infinities).
fn close(got: f64, want: f64, tol: f64) -> bool {
    got == want || (got - want).abs() <= tol * SLACK
}

fn run(r: Result<(), String>) -> Result<(), TestCaseError> {
    r.map_err(TestCaseError::fail)
}

// ------------------------------------------------------------------------------------------
// sq_norms.

/// Checks `sq_norms_on` (every ISA) and `reference::sq_norms` on the `n x d` points `x`.
///
/// Bound: the true value is `S = sum_k x_k^2`, a sum of `d` non-negative terms. Whatever the
/// order (the SIMD kernel uses 4 x LANES partial sums, a tree reduction and a separate tail;
/// the twin goes left to right), each term `x_k^2` sees at most `d` roundings: that of its
/// product (alone, or fused with an addition by an FMA) and those of the at most `d - 1`
/// additions merging two partial sums of non-zero terms on its way to the root of the summation
/// tree (additions of the zero-initialised accumulators and of zero padding lanes are exact). So
/// the computed value is `sum_k x_k^2 (1 + theta_k)`, `|theta_k| <= gamma_d`, and
/// `|err| <= gamma_d S` (the standard bound for any summation order, Higham (4.4)). Underflow:
/// each of the `d` products / FMAs may add `eta`, later magnified by at most `1 + gamma_d`:
/// `B = gamma_d S + d eta (1 + gamma_d)`.
/// Reference: double-double sum of exact products, rounded once: `ref_err <= 2 u64 S + d eta64`
/// (the `d eta64` for low parts of `x_k^2` lost to underflow).
fn check_sq_norms<T: Prec>(x: &[T], n: usize, d: usize) -> Result<(), String> {
    let g = gamma_k(d, T::U);
    let exact: Vec<(f64, f64, f64)> = (0..n)
        .map(|i| {
            let row = &x[i * d..(i + 1) * d];
            let s = dot_dd(row, row).value();
            let ref_err = 2.0 * U64 * s + d as f64 * ETA64;
            let b = g * (s + ref_err) + d as f64 * T::ETA * (1.0 + g);
            (s, ref_err, b)
        })
        .collect();
    let mut twin = vec![T::from_f64(SENTINEL); n];
    reference::sq_norms(x, d, &mut twin);
    for (i, (&tw, &(s, ref_err, b))) in twin.iter().zip(&exact).enumerate() {
        if !close(tw.to_f64(), s, b + ref_err) {
            return Err(format!(
                "reference::sq_norms {} d = {d}, row {i}: got {tw:?}, exact {s:e}, bound {:e}",
                T::NAME,
                b + ref_err
            ));
        }
    }
    for arch in available_isas() {
        let mut out = vec![T::from_f64(SENTINEL); n];
        sq_norms_on(arch, x, d, &mut out);
        for i in 0..n {
            let (s, ref_err, b) = exact[i];
            let got = out[i].to_f64();
            if !close(got, s, b + ref_err) || !close(got, twin[i].to_f64(), 2.0 * b) {
                return Err(format!(
                    "sq_norms {} on {arch:?}, d = {d}, row {i} = {:?}: got {got:e}, exact {s:e} \
                     (bound {:e}), twin {:?} (bound {:e})",
                    T::NAME,
                    &x[i * d..(i + 1) * d],
                    b + ref_err,
                    twin[i],
                    2.0 * b
                ));
            }
        }
    }
    Ok(())
}

// ------------------------------------------------------------------------------------------
// L1 distance tile.

/// Checks `l1_distance_tile_on` (every ISA) and `reference::l1_tile` between the `nx` rows of
/// `x` and the `ny` rows of `y` (packed with `pack_panel`; with `junk_panel_row`, the panel slice
/// passed is one padded row longer than needed, filled with sentinels, which must be ignored).
///
/// Bound: `L = sum_k |x_k - y_k|`. Each `|x_k - y_k|` is one rounded subtraction (`abs` exact),
/// `(x_k - y_k)(1 + d_k)`, then the `d` non-negative terms are summed (left to right in both
/// kernels; any order gives the same bound): the first through `d - 1` additions (adding it to
/// the zero accumulator is exact), the k-th (k >= 2) through `d - k + 1`. Every term carries at
/// most `d` factors `(1 + d)`, so `|err| <= gamma_d L`. No underflow term: sums and differences
/// that underflow are exact. (This is tighter than `(d + 1) u L`.)
/// Reference: double-double sum of the exact differences: `ref_err <= 2 u64 L`.
#[allow(clippy::too_many_arguments)]
fn check_l1<T: Prec>(
    x: &[T],
    y: &[T],
    nx: usize,
    ny: usize,
    d: usize,
    pad: usize,
    lead: usize,
    junk_panel_row: bool,
) -> Result<(), String> {
    let w = panel_width(ny);
    let mut panel = vec![T::from_f64(SENTINEL); (d + usize::from(junk_panel_row)) * w];
    pack_panel(y, ny, d, &mut panel[..d * w]);
    let g = gamma_k(d, T::U);
    let exact: Vec<(f64, f64, f64)> = (0..nx * ny)
        .map(|ij| {
            let (i, j) = (ij / ny, ij % ny);
            let l = l1_dd(&x[i * d..(i + 1) * d], &y[j * d..(j + 1) * d]).value();
            let ref_err = 2.0 * U64 * l;
            (l, ref_err, g * (l + ref_err))
        })
        .collect();
    let garbage = T::from_f64(-777.0);
    let mut twin = TileBuf::new(nx, ny, pad, lead, |_, _| garbage);
    reference::l1_tile(x, d, &panel, &mut twin.tile());
    twin.check_untouched("reference::l1_tile")?;
    for i in 0..nx {
        for j in 0..ny {
            let (l, ref_err, b) = exact[i * ny + j];
            if !close(twin.at(i, j).to_f64(), l, b + ref_err) {
                return Err(format!(
                    "reference::l1_tile {} ({i},{j}) d = {d}: got {:?}, exact {l:e}",
                    T::NAME,
                    twin.at(i, j)
                ));
            }
        }
    }
    for arch in available_isas() {
        let mut out = TileBuf::new(nx, ny, pad, lead, |_, _| garbage);
        l1_distance_tile_on(arch, x, d, &panel, &mut out.tile());
        out.check_untouched(&format!("l1_distance_tile {} on {arch:?}", T::NAME))?;
        for i in 0..nx {
            for j in 0..ny {
                let (l, ref_err, b) = exact[i * ny + j];
                let got = out.at(i, j).to_f64();
                let tw = twin.at(i, j).to_f64();
                if !close(got, l, b + ref_err) || !close(got, tw, 2.0 * b) {
                    return Err(format!(
                        "l1_distance_tile {} on {arch:?}, {nx}x{ny} tile, d = {d}, ({i},{j}): \
                         got {got:e}, exact {l:e} (bound {:e}), twin {tw:e} (bound {:e})",
                        T::NAME,
                        b + ref_err,
                        2.0 * b
                    ));
                }
            }
        }
    }
    Ok(())
}

// ------------------------------------------------------------------------------------------
// Epilogues.

/// Exact value of one epilogue element, its own error bound, and the kernel's error bound.
#[derive(Clone, Copy, Debug)]
struct Expect {
    want: f64,
    ref_err: f64,
    bound: f64,
}

/// The epilogue `ep` applied to the exact inputs `g` (tile element), `r` (row aux), `c` (column
/// aux), and the error bounds, each derived next to its formula.
fn epilogue_exact<T: Prec>(ep: &Epilogue<T>, g: T, r: f64, c: f64) -> Expect {
    let (u, eta) = (T::U, T::ETA);
    let g = g.to_f64();
    match *ep {
        // Nothing computed: exact.
        Epilogue::Identity => Expect {
            want: g,
            ref_err: 0.0,
            bound: 0.0,
        },
        Epilogue::Poly {
            gamma: gm,
            coef0,
            degree,
        } => {
            let (gm, c0, p) = (gm.to_f64(), coef0.to_f64(), degree as i32);
            // Base b = gm g + c0, with A = |gm g| + |c0|. Fused: fl(b) = b (1 + d) + e, error
            // <= u |b| + eta. Unfused (twin, pulp Scalar): (gm g (1 + d1) + e1 + c0)(1 + d2),
            // error <= u (1 + u) |gm g| + u |b| + eta (1 + u) <= gamma_2 A + 2 eta. So
            // |b^ - b| <= e_b := gamma_2 A + 2 eta for both.
            let a = (gm * g).abs() + c0.abs();
            let e_b = gamma_k(2, u) * a + 2.0 * eta;
            // Power: any multiplication tree for b^p (the kernel's binary powering, the twin's
            // repeated products) gives b^^p (1 + theta), |theta| <= gamma_{p-1}: by induction,
            // the product of computed b^i and b^j carries (i - 1) + (j - 1) + 1 factors. With
            // |b^| <= bb := |b| + e_b and the mean value theorem |b^^p - b^p| <= p e_b bb^(p-1):
            //   |err| <= p e_b bb^(p-1) + gamma_{p-1} bb^p + 2 p eta
            // (underflow: each of the < 2p multiplications adds <= eta, not magnified since
            // underflow only happens while |values| < 1).
            let b_dd = Dd::prod(gm, g).add_f64(c0);
            let mut pw = b_dd;
            for _ in 1..p {
                pw = pw.mul(b_dd);
            }
            let want = pw.value();
            let b = b_dd.value().abs();
            let bb = b + e_b;
            let pf = p as f64;
            let bound = pf * e_b * bb.powi(p - 1)
                + gamma_k((p - 1) as usize, u) * bb.powi(p)
                + 2.0 * pf * eta;
            // Reference: b in double-double has error <= 2 u64^2 A + eta64 (low part of gm g),
            // each double-double product adds <= 8 u64^2 relative, final rounding u64.
            let e_r = 2.0 * U64 * U64 * a + ETA64;
            let ref_err = U64 * want.abs()
                + pf * e_r * (b + e_r).powi(p - 1)
                + 8.0 * pf * U64 * U64 * (b + e_r).powi(p)
                + 2.0 * pf * ETA64;
            Expect {
                want,
                ref_err,
                bound,
            }
        }
        Epilogue::Sigmoid { gamma: gm, coef0 } => {
            let (gm, c0) = (gm.to_f64(), coef0.to_f64());
            // Argument z = gm g + c0: as for Poly, |z^ - z| <= e_z := gamma_2 A + 2 eta.
            let a = (gm * g).abs() + c0.abs();
            let e_z = gamma_k(2, u) * a + 2.0 * eta;
            // Reference: z in double-double, rounded (u64 |z| + 2 u64^2 A + eta64), glibc tanh
            // (<= 2 ulp of f64).
            let z = Dd::prod(gm, g).add_f64(c0).value();
            let e_zr = U64 * z.abs() + 2.0 * U64 * U64 * a + ETA64;
            let want = z.tanh();
            let ref_err = e_zr * sech2_max(z, e_zr) + 2.0 * ulp64(want);
            // tanh' = sech^2 <= 1, decreasing in |z|: |tanh z^ - tanh z| <= e_z s with s the
            // largest sech^2 on [|z| - e_z, |z| + e_z]; the kernel's tanh adds <= 4 ulp of
            // tanh(z^) (kernels/src/exp.rs, tests/exp.rs), and |tanh z^| <= |tanh z| + e_z s.
            let s = sech2_max(z, e_z + e_zr);
            let hi = (want.abs() + e_z * s + ref_err).min(1.0);
            Expect {
                want,
                ref_err,
                bound: e_z * s + 4.0 * T::ulp(hi),
            }
        }
        Epilogue::Rbf { gamma: gm } => {
            let gm = gm.to_f64();
            // t = r + c - 2g, K = exp(-gm max(0, t)), M = r + c + 2|g| (r, c >= 0).
            // Kernel and twin: s = fl(r + c) = (r + c)(1 + d1); t^ = fl(s - 2g) (2g exact, fused
            // or not) = (s - 2g)(1 + d2); so t^ - t = (r + c) d1 (1 + d2) + t d2 and
            // |t^ - t| <= u (1 + u)(r + c) + u |t| <= gamma_2 M. max(0, .) is 1-Lipschitz.
            // a^ = fl(-gm t^+) = -gm t^+ (1 + d3) + e3:
            //   |a^ - a| <= gm (gamma_2 M + u (t+ + gamma_2 M)) + eta <= gm gamma_3 M + eta =: E
            // (t+ <= M, gamma_2 (1 + u) + u <= gamma_3): the 3u relative error in r + c + 2|g|.
            // Then |exp(a^) - K| <= K expm1(E) (condition of exp: its argument's absolute error),
            // plus the kernel's exp error <= 2 ulp(exp(a^)) <= 2 ulp(K e^E).
            let m = r + c + 2.0 * g.abs();
            let t = Dd::new(r).add_f64(c).add_f64(-2.0 * g).value().max(0.0);
            // Reference: t in double-double rounded (u64 |t| + 4 u64^2 M), gm t rounded (u64),
            // glibc exp (<= 1 ulp).
            let want = (-(gm * t)).exp();
            let e_ar = gm * (2.0 * U64 * t + 4.0 * U64 * U64 * m) + ETA64;
            let ref_err = want * e_ar.exp_m1() + ulp64(want * e_ar.exp());
            let e_a = gm * gamma_k(3, u) * m + eta;
            Expect {
                want,
                ref_err,
                bound: want * e_a.exp_m1() + 2.0 * T::ulp(want * (e_a + e_ar).exp()),
            }
        }
        Epilogue::Cosine => {
            // fl(fl(g r) c) = g r c (1 + d1)(1 + d2) + e1 c (1 + d2) + e2:
            //   |err| <= gamma_2 |g r c| + eta (1 + u) |c| + eta.
            // Reference: double-double product, rounded: <= 2 u64 |grc| + 3 eta64.
            let want = Dd::prod(g, r).mul(Dd::new(c)).value();
            Expect {
                want,
                ref_err: 2.0 * U64 * want.abs() + 3.0 * ETA64,
                bound: gamma_k(2, u) * want.abs() + eta * (1.0 + u) * c.abs() + eta,
            }
        }
        Epilogue::ExpNeg { gamma: gm } => {
            let gm = gm.to_f64();
            // a^ = fl(g (-gm)) = a (1 + d) + e: |a^ - a| <= u gm |g| + eta =: E, then as for Rbf
            // K expm1(E) + 2 ulp(K e^E).
            // Reference: gm g rounded to f64 (exact for f32 inputs), glibc exp (<= 1 ulp).
            let want = (-(gm * g)).exp();
            let e_ar = U64 * gm * g.abs() + ETA64;
            let ref_err = want * e_ar.exp_m1() + ulp64(want * e_ar.exp());
            let e_a = u * gm * g.abs() + eta;
            Expect {
                want,
                ref_err,
                bound: want * e_a.exp_m1() + 2.0 * T::ulp(want * (e_a + e_ar).exp()),
            }
        }
    }
}

/// Applies `ep` to (copies of) `input` with the twin and on every ISA, checking the results
/// against the exact values (bound `B + ref_err`), against each other (`2 B`), and that nothing
/// outside the tile is written.
fn check_epilogue<T: Prec>(
    input: &TileBuf<T>,
    ep: Epilogue<T>,
    row_aux: &[T],
    col_aux: &[T],
) -> Result<(), String> {
    let (nr, nc) = (input.nrows, input.ncols);
    let aux = |v: &[T], k: usize| v.get(k).map_or(0.0, |a| a.to_f64());
    let exact: Vec<Expect> = (0..nr * nc)
        .map(|ij| {
            let (i, j) = (ij / nc, ij % nc);
            epilogue_exact(&ep, input.at(i, j), aux(row_aux, i), aux(col_aux, j))
        })
        .collect();
    let describe = |i: usize, j: usize| {
        format!(
            "{} {ep:?}, {nr}x{nc} tile (stride {}), ({i},{j}): g = {:?}, r = {:?}, c = {:?}",
            T::NAME,
            input.stride,
            input.at(i, j),
            row_aux.get(i),
            col_aux.get(j)
        )
    };
    let mut twin = input.clone();
    reference::apply_epilogue(&mut twin.tile(), &ep, row_aux, col_aux);
    twin.check_untouched(&format!("reference::apply_epilogue {ep:?}"))?;
    for i in 0..nr {
        for j in 0..nc {
            let e = exact[i * nc + j];
            let got = twin.at(i, j).to_f64();
            if !close(got, e.want, e.bound + e.ref_err) {
                return Err(format!(
                    "reference twin, {}: got {got:e}, exact {:e}, |err| {:e} > bound {:e}",
                    describe(i, j),
                    e.want,
                    (got - e.want).abs(),
                    e.bound + e.ref_err
                ));
            }
        }
    }
    for arch in available_isas() {
        let mut out = input.clone();
        apply_epilogue_on(arch, &mut out.tile(), &ep, row_aux, col_aux);
        out.check_untouched(&format!("apply_epilogue {} {ep:?} on {arch:?}", T::NAME))?;
        for i in 0..nr {
            for j in 0..nc {
                let e = exact[i * nc + j];
                let got = out.at(i, j).to_f64();
                let tw = twin.at(i, j).to_f64();
                if !close(got, e.want, e.bound + e.ref_err) || !close(got, tw, 2.0 * e.bound) {
                    return Err(format!(
                        "{arch:?}, {}: got {got:e}, exact {:e} (|err| {:e}, bound {:e}), twin \
                         {tw:e} (|diff| {:e}, bound {:e})",
                        describe(i, j),
                        e.want,
                        (got - e.want).abs(),
                        e.bound + e.ref_err,
                        (got - tw).abs(),
                        2.0 * e.bound
                    ));
                }
            }
        }
    }
    Ok(())
}

/// Squared norms (double-double, rounded to T) of the `n` rows of `x`.
fn sq_norms_exact<T: Prec>(x: &[T], n: usize, d: usize) -> Vec<T> {
    (0..n)
        .map(|i| {
            let row = &x[i * d..(i + 1) * d];
            T::from_f64(dot_dd(row, row).value())
        })
        .collect()
}

/// Reciprocal norms (0 for a zero row), scaled against overflow, rounded to T.
fn inv_norms<T: Prec>(x: &[T], n: usize, d: usize) -> Vec<T> {
    (0..n)
        .map(|i| {
            let row = &x[i * d..(i + 1) * d];
            let m = row.iter().fold(0.0f64, |m, v| m.max(v.to_f64().abs()));
            if m == 0.0 {
                return T::ZERO;
            }
            let s: f64 = row.iter().map(|v| (v.to_f64() / m).powi(2)).sum();
            T::from_f64(1.0 / (m * s.sqrt()))
        })
        .collect()
}

/// All epilogues on tiles of exact inputs: `g` = inner products (L1 distances for `ExpNeg`) of
/// rows of x and y computed in double-double and rounded to T, with y_j = x_(j mod nrows) plus
/// noise of relative size `closeness` (so that rbf / laplacian values span (0, 1]).
fn epilogue_case<T: Prec>(
    sh: &Shape,
    scale: f64,
    closeness: f64,
    gm: f64,
    coef0: f64,
) -> Result<(), String> {
    let (nr, nc, d) = (sh.nrows, sh.ncols, sh.d);
    let mut rng = Rng(sh.seed);
    let x: Vec<T> = points(&mut rng, nr, d, scale, 1);
    let mut y: Vec<T> = Vec::with_capacity(nc * d);
    for j in 0..nc {
        let src = j % nr;
        let zero = rng.below(16) == 0;
        for k in 0..d {
            let v = x[src * d + k].to_f64() + 10.0 * scale * closeness * rng.sym();
            y.push(T::from_f64(if zero { 0.0 } else { v }));
        }
    }
    let dots = TileBuf::new(nr, nc, sh.pad, sh.lead, |i, j| {
        T::from_f64(dot_dd(&x[i * d..(i + 1) * d], &y[j * d..(j + 1) * d]).value())
    });
    let l1 = TileBuf::new(nr, nc, sh.pad, sh.lead, |i, j| {
        T::from_f64(l1_dd(&x[i * d..(i + 1) * d], &y[j * d..(j + 1) * d]).value())
    });
    let (gm, coef0) = (T::from_f64(gm), T::from_f64(coef0));
    check_epilogue(&dots, Epilogue::Identity, &[], &[])?;
    for degree in 1..=5 {
        check_epilogue(
            &dots,
            Epilogue::Poly {
                gamma: gm,
                coef0,
                degree,
            },
            &[],
            &[],
        )?;
    }
    check_epilogue(&dots, Epilogue::Sigmoid { gamma: gm, coef0 }, &[], &[])?;
    let (rn, cn) = (sq_norms_exact(&x, nr, d), sq_norms_exact(&y, nc, d));
    check_epilogue(&dots, Epilogue::Rbf { gamma: gm }, &rn, &cn)?;
    let (ri, ci) = (inv_norms(&x, nr, d), inv_norms(&y, nc, d));
    check_epilogue(&dots, Epilogue::Cosine, &ri, &ci)?;
    check_epilogue(&l1, Epilogue::ExpNeg { gamma: gm }, &[], &[])
}

/// sq_norms, L1 and the scale-free epilogues (identity, cosine) on points whose magnitudes
/// spread over 20 binades below `2^k`: underflow (tiny k) and large exponents (huge k).
fn extreme_case<T: Prec>(sh: &Shape, k: i32) -> Result<(), String> {
    let (nr, nc, d) = (sh.nrows, sh.ncols, sh.d);
    let mut rng = Rng(sh.seed);
    let x: Vec<T> = spread_points(&mut rng, nr, d, k);
    let y: Vec<T> = spread_points(&mut rng, nc, d, k);
    check_sq_norms(&x, nr, d)?;
    check_l1(&x, &y, nr, nc, d, sh.pad, sh.lead, sh.seed & 1 == 1)?;
    let dots = TileBuf::new(nr, nc, sh.pad, sh.lead, |i, j| {
        T::from_f64(dot_dd(&x[i * d..(i + 1) * d], &y[j * d..(j + 1) * d]).value())
    });
    check_epilogue(&dots, Epilogue::Identity, &[], &[])?;
    let (ri, ci) = (inv_norms(&x, nr, d), inv_norms(&y, nc, d));
    check_epilogue(&dots, Epilogue::Cosine, &ri, &ci)
}

/// `transpose_into_on` (plain and streamed) and `copy_tile_on` on every instruction set
/// against a naive transpose / copy, bit for bit, padding untouched, source unmodified.
fn transpose_case<T: Prec>(sh: &Shape, dst_pad: usize) -> Result<(), String> {
    transpose_case_at::<T>(sh, dst_pad, 3 - sh.lead)
}

/// [`transpose_case`] with the destinations starting `dst_lead` elements into their buffers.
fn transpose_case_at<T: Prec>(sh: &Shape, dst_pad: usize, dst_lead: usize) -> Result<(), String> {
    let (m, n) = (sh.nrows, sh.ncols);
    let mut rng = Rng(sh.seed);
    let mut src = TileBuf::new(m, n, sh.pad, sh.lead, |_, _| T::from_f64(rng.sym() * 100.0));
    let before = src.clone();
    for arch in available_isas() {
        for stream in [false, true] {
            let what = format!("{} {} stream={stream}", T::NAME, isa_name(arch));
            let mut dst = TileBuf::new(n, m, dst_pad, dst_lead, |_, _| T::from_f64(-777.0));
            let mut copy = TileBuf::new(m, n, dst_pad, dst_lead, |_, _| T::from_f64(-777.0));
            {
                let s = src.tile();
                transpose_into_on(arch, &s, &mut dst.tile(), stream);
                copy_tile_on(arch, &s, &mut copy.tile(), stream);
            }
            dst.check_untouched("transpose_into dst")?;
            copy.check_untouched("copy_tile dst")?;
            if src
                .data
                .iter()
                .zip(&before.data)
                .any(|(a, b)| a.to_f64().to_bits() != b.to_f64().to_bits())
            {
                return Err(format!("{what}: transpose or copy modified its source"));
            }
            for i in 0..m {
                for j in 0..n {
                    let want = src.at(i, j).to_f64().to_bits();
                    if dst.at(j, i).to_f64().to_bits() != want {
                        return Err(format!(
                            "{what} transpose {m}x{n}: dst[{j}][{i}] = {:?} != src[{i}][{j}] = {:?}",
                            dst.at(j, i),
                            src.at(i, j)
                        ));
                    }
                    if copy.at(i, j).to_f64().to_bits() != want {
                        return Err(format!("{what} copy {m}x{n}: [{i}][{j}] differs"));
                    }
                }
            }
        }
    }
    // The plain reference twin agrees too.
    let mut dst = TileBuf::new(n, m, dst_pad, dst_lead, |_, _| T::from_f64(-777.0));
    {
        let s = src.tile();
        reference::transpose_into(&s, &mut dst.tile());
    }
    for i in 0..m {
        for j in 0..n {
            if dst.at(j, i).to_f64().to_bits() != src.at(i, j).to_f64().to_bits() {
                return Err(format!("reference transpose {m}x{n} wrong at [{j}][{i}]"));
            }
        }
    }
    Ok(())
}

/// Destination rows a whole number of 64-byte lines apart, at every offset within a line: the
/// streamed transpose then starts its bands at the first line boundary (the rows before it
/// through the scalar loop), for any number of source rows, fewer than the head included.
#[test]
fn transpose_with_line_multiple_strides_at_every_offset() {
    // Up to three line-wide squares (AVX-512: 16 f32 / 8 f64) each way, with ragged edges.
    for m in [1usize, 3, 8, 11, 12, 16, 17, 29, 40, 57] {
        for n in [1usize, 7, 8, 20, 33, 48] {
            let sh = Shape {
                nrows: m,
                ncols: n,
                d: 0,
                pad: 1,
                lead: 0,
                seed: (m * 100 + n) as u64,
            };
            for extra_lines in 0..2 {
                for lead in 0..16 {
                    let pad32 = (16 - m % 16) % 16 + 16 * extra_lines;
                    transpose_case_at::<f32>(&sh, pad32, lead).unwrap();
                    let pad64 = (8 - m % 8) % 8 + 8 * extra_lines;
                    transpose_case_at::<f64>(&sh, pad64, lead % 8).unwrap();
                }
            }
        }
    }
}

/// The column passes before an rbf assembly (`column_sums_on`, `column_abs_dev_sums_on`,
/// `centre_rows_on`, `all_finite_on`) on every instruction set: bitwise their scalar twins
/// (each column sums in row order, nothing fused), on widths off the vector widths; the
/// finiteness check with one NaN or infinity anywhere.
fn columns_case<T: Prec>(sh: &Shape, bad: u64) -> Result<(), String> {
    let (n, d) = (sh.nrows, sh.ncols);
    let mut rng = Rng(sh.seed);
    let data: Vec<T> = points(&mut rng, n, d, 3.0, 0)
        .into_iter()
        .map(|v: T| T::from_f64(v.to_f64() + 40.0))
        .collect();
    let mean: Vec<f64> = (0..d).map(|k| 40.0 + k as f64 * 0.25).collect();
    let shift: Vec<f64> = (0..d).map(|k| 39.5 + k as f64 * 0.125).collect();
    let mut want_sum = vec![0.5f64; d];
    reference::column_sums(&data, None, &mut want_sum);
    let mut want_dev = vec![0.0f64; d];
    reference::column_sums(&data, Some(&mean), &mut want_dev);
    let mut want_centred = vec![T::ZERO; n * d];
    reference::centre_rows(&data, &shift, &mut want_centred);
    let mut bad_data = data.clone();
    let at = (bad as usize) % (n * d);
    bad_data[at] = T::from_f64(if bad % 2 == 0 {
        f64::NAN
    } else {
        f64::NEG_INFINITY
    });
    let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    for arch in available_isas() {
        let isa = isa_name(arch);
        let mut sum = vec![0.5f64; d];
        column_sums_on(arch, &data, &mut sum);
        if bits(&sum) != bits(&want_sum) {
            return Err(format!("{} {isa} column_sums {n}x{d} differ", T::NAME));
        }
        let mut dev = vec![0.0f64; d];
        column_abs_dev_sums_on(arch, &data, &mean, &mut dev);
        if bits(&dev) != bits(&want_dev) {
            return Err(format!(
                "{} {isa} column_abs_dev_sums {n}x{d} differ",
                T::NAME
            ));
        }
        let mut out = vec![core::mem::MaybeUninit::<T>::uninit(); n * d];
        centre_rows_on(arch, &data, &shift, &mut out);
        // SAFETY: centre_rows_on writes every element of `out` (its contract).
        let out: Vec<T> = out
            .into_iter()
            .map(|v| unsafe { v.assume_init() })
            .collect();
        if out
            .iter()
            .zip(&want_centred)
            .any(|(a, b)| a.to_f64().to_bits() != b.to_f64().to_bits())
        {
            return Err(format!("{} {isa} centre_rows {n}x{d} differ", T::NAME));
        }
        if !all_finite_on(arch, &data) || all_finite_on(arch, &bad_data) {
            return Err(format!("{} {isa} all_finite wrong (bad at {at})", T::NAME));
        }
        if reference::all_finite(&bad_data) {
            return Err("reference all_finite wrong".into());
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn sq_norms_matches_exact_and_twin_f32(sh in shape(0, 300), k in -4i32..=1) {
        let mut rng = Rng(sh.seed);
        let x: Vec<f32> = points(&mut rng, sh.nrows, sh.d, 2f64.powi(k), 1);
        run(check_sq_norms(&x, sh.nrows, sh.d))?;
    }

    #[test]
    fn sq_norms_matches_exact_and_twin_f64(sh in shape(0, 300), k in -4i32..=1) {
        let mut rng = Rng(sh.seed);
        let x: Vec<f64> = points(&mut rng, sh.nrows, sh.d, 2f64.powi(k), 1);
        run(check_sq_norms(&x, sh.nrows, sh.d))?;
    }

    #[test]
    fn l1_tile_matches_exact_and_twin_f32(sh in shape(0, 300), k in -4i32..=1, junk in any::<bool>()) {
        let mut rng = Rng(sh.seed);
        let x: Vec<f32> = points(&mut rng, sh.nrows, sh.d, 2f64.powi(k), 1);
        let y: Vec<f32> = points(&mut rng, sh.ncols, sh.d, 2f64.powi(k), 1);
        run(check_l1(&x, &y, sh.nrows, sh.ncols, sh.d, sh.pad, sh.lead, junk))?;
    }

    #[test]
    fn l1_tile_matches_exact_and_twin_f64(sh in shape(0, 300), k in -4i32..=1, junk in any::<bool>()) {
        let mut rng = Rng(sh.seed);
        let x: Vec<f64> = points(&mut rng, sh.nrows, sh.d, 2f64.powi(k), 1);
        let y: Vec<f64> = points(&mut rng, sh.ncols, sh.d, 2f64.powi(k), 1);
        run(check_l1(&x, &y, sh.nrows, sh.ncols, sh.d, sh.pad, sh.lead, junk))?;
    }

    #[test]
    fn epilogues_match_exact_and_twin_f32(
        sh in shape(1, 300),
        k in -4i32..=0,
        closeness in (-4.0f64..=0.0).prop_map(|e| 10f64.powf(e)),
        gm in gamma_strategy(),
        coef0 in prop_oneof![Just(0.0), Just(1.0), -3.0f64..3.0],
    ) {
        run(epilogue_case::<f32>(&sh, 2f64.powi(k), closeness, gm, coef0))?;
    }

    #[test]
    fn epilogues_match_exact_and_twin_f64(
        sh in shape(1, 300),
        k in -4i32..=0,
        closeness in (-4.0f64..=0.0).prop_map(|e| 10f64.powf(e)),
        gm in gamma_strategy(),
        coef0 in prop_oneof![Just(0.0), Just(1.0), -3.0f64..3.0],
    ) {
        run(epilogue_case::<f64>(&sh, 2f64.powi(k), closeness, gm, coef0))?;
    }

    /// f32: 2^-70 .. 2^55 (x^2 underflows below ~2^-75; d x^2 stays below 2^128).
    #[test]
    fn tiny_and_huge_magnitudes_f32(sh in shape(0, 300), k in prop_oneof![-70i32..=-40, 30i32..=55]) {
        run(extreme_case::<f32>(&sh, k))?;
    }

    /// f64: 2^-540 .. 2^500.
    #[test]
    fn tiny_and_huge_magnitudes_f64(sh in shape(0, 300), k in prop_oneof![-540i32..=-480, 440i32..=500]) {
        run(extreme_case::<f64>(&sh, k))?;
    }

    #[test]
    fn column_passes_match_twins(sh in shape(0, 0), bad in any::<u64>()) {
        run(columns_case::<f32>(&sh, bad))?;
        run(columns_case::<f64>(&sh, bad))?;
    }

    #[test]
    fn transpose_matches_naive(sh in shape(0, 0), dst_pad in prop_oneof![Just(0usize), 1usize..10]) {
        run(transpose_case::<f64>(&sh, dst_pad))?;
        run(transpose_case::<f32>(&sh, dst_pad))?;
    }
}

// ------------------------------------------------------------------------------------------
// Edge cases.

fn for_each_type(
    f32_case: impl Fn() -> Result<(), String>,
    f64_case: impl Fn() -> Result<(), String>,
) {
    f32_case().unwrap();
    f64_case().unwrap();
}

#[test]
fn zero_dimension_gives_zeros() {
    fn case<T: Prec>() -> Result<(), String> {
        let n = 5;
        let mut out = vec![T::from_f64(SENTINEL); n];
        reference::sq_norms::<T>(&[], 0, &mut out);
        assert!(out.iter().all(|v| v.to_f64() == 0.0));
        for arch in available_isas() {
            let mut out = vec![T::from_f64(SENTINEL); n];
            sq_norms_on::<T>(arch, &[], 0, &mut out);
            if out.iter().any(|v| v.to_f64() != 0.0) {
                return Err(format!("sq_norms d = 0 on {arch:?}: {out:?}"));
            }
            for (nx, ny) in [(1, 1), (3, 5), (6, 33)] {
                let mut t = TileBuf::new(nx, ny, 2, 1, |_, _| T::from_f64(7.0));
                l1_distance_tile_on::<T>(arch, &[], 0, &[], &mut t.tile());
                t.check_untouched("l1 d = 0")?;
                for i in 0..nx {
                    for j in 0..ny {
                        if t.at(i, j).to_f64() != 0.0 {
                            return Err(format!(
                                "l1 d = 0 on {arch:?}: ({i},{j}) = {:?}",
                                t.at(i, j)
                            ));
                        }
                    }
                }
            }
        }
        // Also through the property checkers (exact 0 expected, bound 0).
        check_sq_norms::<T>(&[], 3, 0)?;
        check_l1::<T>(&[], &[], 4, 9, 0, 1, 2, false)
    }
    for_each_type(case::<f32>, case::<f64>);
}

#[test]
fn one_by_one_tiles() {
    fn case<T: Prec>() -> Result<(), String> {
        let f = T::from_f64;
        let one = |g: f64| TileBuf::new(1, 1, 0, 1, |_, _| f(g));
        // Values with exactly representable results.
        let cases: [(Epilogue<T>, f64, f64, f64, f64); 7] = [
            (Epilogue::Identity, -3.5, 0.0, 0.0, -3.5),
            (
                Epilogue::Poly {
                    gamma: f(0.5),
                    coef0: f(1.0),
                    degree: 3,
                },
                2.0,
                0.0,
                0.0,
                8.0,
            ),
            (
                Epilogue::Sigmoid {
                    gamma: f(2.0),
                    coef0: f(0.0),
                },
                0.0,
                0.0,
                0.0,
                0.0,
            ),
            (Epilogue::Rbf { gamma: f(3.0) }, 1.5, 1.5, 1.5, 1.0),
            (Epilogue::Cosine, 6.0, 0.5, 0.25, 0.75),
            (Epilogue::ExpNeg { gamma: f(0.7) }, 0.0, 0.0, 0.0, 1.0),
            (
                Epilogue::Poly {
                    gamma: f(1.0),
                    coef0: f(-1.0),
                    degree: 5,
                },
                3.0,
                0.0,
                0.0,
                32.0,
            ),
        ];
        for (ep, g, r, c, want) in cases {
            let (ra, ca) = ([f(r)], [f(c)]);
            check_epilogue(&one(g), ep, &ra, &ca)?;
            for arch in available_isas() {
                let mut t = one(g);
                apply_epilogue_on(arch, &mut t.tile(), &ep, &ra, &ca);
                if t.at(0, 0).to_f64() != want {
                    return Err(format!(
                        "{ep:?} on {arch:?}: got {:?}, want {want}",
                        t.at(0, 0)
                    ));
                }
            }
        }
        // 1x1 L1 and d = 1 norms.
        let x = [f(-1.25)];
        let y = [f(2.0)];
        check_l1(&x, &y, 1, 1, 1, 0, 0, true)?;
        check_sq_norms(&x, 1, 1)?;
        for arch in available_isas() {
            let mut out = [f(SENTINEL)];
            sq_norms_on(arch, &x, 1, &mut out);
            assert_eq!(out[0].to_f64(), 1.5625);
            let mut panel = vec![f(SENTINEL); panel_width(1)];
            pack_panel(&y, 1, 1, &mut panel);
            let mut t = TileBuf::new(1, 1, 0, 0, |_, _| f(0.0));
            l1_distance_tile_on(arch, &x, 1, &panel, &mut t.tile());
            assert_eq!(t.at(0, 0).to_f64(), 3.25);
        }
        Ok(())
    }
    for_each_type(case::<f32>, case::<f64>);
}

/// Identical points: r_i = c_i = g_ii, so t = fl(r + c) - 2 g = 0 exactly and exp(-gamma 0) = 1;
/// inconsistent inputs with r + c < 2 g are clamped to t = 0, also giving exactly 1.
#[test]
fn rbf_identical_points_give_exactly_one() {
    fn case<T: Prec>() -> Result<(), String> {
        let mut rng = Rng(42);
        for &(n, d) in &[(1usize, 1usize), (5, 3), (13, 64), (40, 300)] {
            let x: Vec<T> = points(&mut rng, n, d, 1.0, 0);
            for arch in available_isas() {
                // Norms from the kernel itself, used as both the norms and the inner products.
                let mut norms = vec![T::ZERO; n];
                sq_norms_on(arch, &x, d, &mut norms);
                for gm in [1e-3, 1.0, 10.0, 1e6] {
                    let ep = Epilogue::Rbf {
                        gamma: T::from_f64(gm),
                    };
                    let mut t = TileBuf::new(n, n, 1, 2, |i, j| {
                        if i == j {
                            norms[i]
                        } else {
                            // r + c < 2 g: negative t, clamped.
                            T::from_f64(norms[i].to_f64().max(norms[j].to_f64()) * 1.5 + 1.0)
                        }
                    });
                    apply_epilogue_on(arch, &mut t.tile(), &ep, &norms, &norms);
                    t.check_untouched("rbf identical")?;
                    for i in 0..n {
                        for j in 0..n {
                            if t.at(i, j).to_f64() != 1.0 {
                                return Err(format!(
                                    "{} rbf gamma {gm} on {arch:?}, n {n} d {d}: ({i},{j}) = {:?}",
                                    T::NAME,
                                    t.at(i, j)
                                ));
                            }
                        }
                    }
                }
            }
        }
        Ok(())
    }
    for_each_type(case::<f32>, case::<f64>);
}

/// A zero reciprocal norm (zero row or column) makes the cosine exactly 0.
#[test]
fn cosine_with_zero_reciprocal_norms_is_zero() {
    fn case<T: Prec>() -> Result<(), String> {
        let mut rng = Rng(7);
        let (n, m) = (11, 37);
        let row_inv: Vec<T> = (0..n)
            .map(|i| {
                T::from_f64(if i % 3 == 0 {
                    0.0
                } else {
                    0.5 + rng.sym().abs()
                })
            })
            .collect();
        let col_inv: Vec<T> = (0..m)
            .map(|j| {
                T::from_f64(if j % 4 == 1 {
                    0.0
                } else {
                    0.5 + rng.sym().abs()
                })
            })
            .collect();
        let input = TileBuf::new(n, m, 3, 1, |_, _| T::from_f64(1e3 * rng.sym()));
        check_epilogue(&input, Epilogue::Cosine, &row_inv, &col_inv)?;
        for arch in available_isas() {
            let mut t = input.clone();
            apply_epilogue_on(arch, &mut t.tile(), &Epilogue::Cosine, &row_inv, &col_inv);
            for (i, ri) in row_inv.iter().enumerate() {
                for (j, cj) in col_inv.iter().enumerate() {
                    let zero = ri.to_f64() == 0.0 || cj.to_f64() == 0.0;
                    if zero && t.at(i, j).to_f64() != 0.0 {
                        return Err(format!("cosine on {arch:?}: ({i},{j}) = {:?}", t.at(i, j)));
                    }
                }
            }
        }
        Ok(())
    }
    for_each_type(case::<f32>, case::<f64>);
}

/// `Poly` of degree 1 is the affine map itself, with no further rounding: `fma(g, gamma, coef0)`
/// where the instruction set fuses (AVX2 / AVX-512), `gamma * g + coef0` on pulp's `Scalar`
/// backend (whose `mul_add_e` is unfused) and in the twin.
#[test]
fn poly_degree_one_is_the_affine_map() {
    fn case<T: Prec>() -> Result<(), String> {
        let mut rng = Rng(3);
        let (n, m) = (9, 45);
        let (gm, c0) = (T::from_f64(0.3), T::from_f64(-1.7));
        let ep = Epilogue::Poly {
            gamma: gm,
            coef0: c0,
            degree: 1,
        };
        let input = TileBuf::new(n, m, 2, 3, |_, _| T::from_f64(10.0 * rng.sym()));
        let mut twin = input.clone();
        reference::apply_epilogue(&mut twin.tile(), &ep, &[], &[]);
        for arch in available_isas() {
            let mut t = input.clone();
            apply_epilogue_on(arch, &mut t.tile(), &ep, &[], &[]);
            t.check_untouched("poly degree 1")?;
            for i in 0..n {
                for j in 0..m {
                    let g = input.at(i, j);
                    let want = if matches!(arch, Arch::Scalar) {
                        gm * g + c0
                    } else {
                        g.mul_add(gm, c0)
                    };
                    if t.at(i, j).to_f64() != want.to_f64() {
                        return Err(format!(
                            "{} poly degree 1 on {arch:?}: g = {g:?}: got {:?}, want {want:?}",
                            T::NAME,
                            t.at(i, j)
                        ));
                    }
                    if twin.at(i, j).to_f64() != (gm * g + c0).to_f64() {
                        return Err(format!("twin poly degree 1: g = {g:?}"));
                    }
                }
            }
        }
        Ok(())
    }
    for_each_type(case::<f32>, case::<f64>);
}
