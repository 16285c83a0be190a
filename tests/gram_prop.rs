//! Property tests of the Gram engine (`mmfuse::gram::{gram, cross_gram}`) for every kernel, f32
//! and f64, against a naive double loop evaluated (almost) exactly, with error bounds derived
//! from floating-point analysis; plus exact structural properties (bitwise symmetry, exact unit
//! diagonal, range, positive semi-definiteness), bitwise determinism across thread counts,
//! `cross_gram(X, X)` against `gram(X)`, and strided / transposed input views.
//!
//! Case count: 64 per property (4 for the default-tile boundary) unless the `PROPTEST_CASES`
//! environment variable says otherwise.
//!
//! # Error model (Higham, *Accuracy and Stability of Numerical Algorithms*, ch. 2-3)
//!
//! `u` is the unit roundoff of the element type T (`eps / 2`: 2^-24 for f32, 2^-53 for f64),
//! `gamma_k = k u / (1 - k u)`. Every operation is `fl(a op b) = (a op b)(1 + d) + e`, `|d| <= u`,
//! `|e| <= eta` (underflow; `eta` = smallest subnormal of T, twice the real bound), `e = 0` for
//! sums and differences. A product of `k` factors `(1 + d_i)^(+-1)` is `1 + theta`,
//! `|theta| <= gamma_k`, and `gamma_a + gamma_b + gamma_a gamma_b <= gamma_(a+b)` (Higham lemma
//! 3.3). Fused multiply-adds may or may not be used (faer's GEMM micro-kernels, pulp's scalar
//! fallback): each bound below is derived for the worse of the two.
//!
//! The kernel parameters (gamma, coef0) are f64 and the engine rounds them to T: `pr` below is
//! the number of roundings this costs, 1 for f32 and 0 for f64 (an f64 parameter is exact).
//!
//! The reference is the kernel of the very same (already rounded to T) inputs with the f64
//! parameters, evaluated in double-double arithmetic (about 106 bits: sums, products, quotient,
//! square root, exp and tanh) and rounded once to f64. Its own error `ref_err` (half an ulp of
//! f64 and O(u64^2) terms) is added to the engine's bound. All bounds are evaluated in f64 and
//! multiplied by `1 + 1e-9` to absorb the rounding of their own evaluation.
//!
//! The bounds are tight: the largest observed error is 0.4 to 0.98 of the bound depending on the
//! kernel (measured over 300 cases), and adding 3 ulp to the engine's results makes the linear,
//! poly, rbf and laplacian checks fail in both types, sigmoid and cosine in f32 (in f64 their
//! worst case is legitimately above 3 ulp: tanh alone may err by 4 ulp, cosine rounds 4 times
//! after the GEMM).

use mmfuse::gram::{cross_gram, gram, GramOptions, Kernel};
use mmfuse::{Matrix, Real};
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;

#[path = "support/numerics.rs"]
mod numerics;
use numerics::Rng;
use numerics::*; // the struct, not proptest's re-exported `Rng` trait

/// Per-type constants of the error analysis.
trait Prec: Real {
    const NAME: &'static str;
    /// Unit roundoff `eps / 2`.
    const U: f64;
    /// Underflow error of one operation.
    const ETA: f64;
    /// Roundings of an f64 kernel parameter converted to T.
    const PR: usize;
    /// Exact widening.
    fn to64(self) -> f64;
    /// Rounding narrowing.
    fn of64(v: f64) -> Self;
    /// Bit pattern (for bitwise comparisons).
    fn bits(self) -> u64;
    /// One ulp of `y` rounded to T (the subnormal spacing near 0).
    fn ulp(y: f64) -> f64;
}

impl Prec for f32 {
    const NAME: &'static str = "f32";
    const U: f64 = f32::EPSILON as f64 / 2.0;
    const ETA: f64 = f32::from_bits(1) as f64;
    const PR: usize = 1;
    fn to64(self) -> f64 {
        self as f64
    }
    fn of64(v: f64) -> Self {
        v as f32
    }
    fn bits(self) -> u64 {
        self.to_bits() as u64
    }
    fn ulp(y: f64) -> f64 {
        let r = (y as f32).abs();
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
    const PR: usize = 0;
    fn to64(self) -> f64 {
        self
    }
    fn of64(v: f64) -> Self {
        v
    }
    fn bits(self) -> u64 {
        self.to_bits()
    }
    fn ulp(y: f64) -> f64 {
        ulp64(y)
    }
}

// ------------------------------------------------------------------------------------------
// Double-double arithmetic for the reference.

/// `1 / n!` for n = 0..=27 in double-double (each within a few n u64^2 relative).
fn inv_factorials() -> &'static [Dd; 28] {
    static TABLE: std::sync::OnceLock<[Dd; 28]> = std::sync::OnceLock::new();
    TABLE.get_or_init(|| {
        let mut t = [Dd::new(1.0); 28];
        for n in 1..28 {
            t[n] = t[n - 1].div(Dd::new(n as f64));
        }
        t
    })
}

/// `e^a` in double-double: `a = k ln 2 + r`, `|r| <= ln2 / 2 + tiny`, Taylor series of `e^r` to
/// degree 27 (truncation < 1e-35 relative) in Horner form, scaled by `2^k` (exact unless the
/// result is subnormal). Relative error a few hundred u64^2 (each of the 27 Horner steps errs by
/// a few u64^2), far below one ulp of f64.
fn exp_dd(a: Dd) -> Dd {
    if a.hi < -740.0 {
        // Result below 2^-1067: subnormal in f64, where libm's error (<= 1 subnormal ulp) is
        // covered by the eta64 term of every reference error.
        return Dd::new(a.hi.exp());
    }
    const LN2: Dd = Dd {
        hi: std::f64::consts::LN_2,
        lo: 2.319_046_813_846_299_6e-17,
    };
    let k = (a.hi / LN2.hi).round();
    let r = a.add(LN2.mul(Dd::new(-k)));
    let c = inv_factorials();
    let mut p = c[27];
    for cn in c[..27].iter().rev() {
        p = p.mul(r).add(*cn);
    }
    // 2^k as two factors, each in the normal range (2^k itself may be subnormal).
    let (k1, k2) = (k as i32 / 2, k as i32 - k as i32 / 2);
    let (s1, s2) = (2f64.powi(k1), 2f64.powi(k2));
    Dd {
        hi: p.hi * s1 * s2,
        lo: p.lo * s1 * s2,
    }
}

/// `tanh z` in double-double: its odd Taylor series to z^13 for |z| < 1/64 (truncation
/// < 1e-28 relative), else `sign(z) (1 - e) / (1 + e)` with `e = e^(-2|z|)` (the subtraction
/// loses at most a factor 1 / (1 - e) < 40 of the relative accuracy of e).
fn tanh_dd(z: Dd) -> Dd {
    let neg = z.hi < 0.0;
    let az = if neg { z.neg() } else { z };
    let t = if az.hi < 1.0 / 64.0 {
        // tanh z = z - z^3/3 + 2z^5/15 - 17z^7/315 + 62z^9/2835 - 1382z^11/155925
        //          + 21844z^13/6081075 - ...
        let z2 = az.mul(az);
        let coef = [
            (1.0, 1.0),
            (-1.0, 3.0),
            (2.0, 15.0),
            (-17.0, 315.0),
            (62.0, 2835.0),
            (-1382.0, 155_925.0),
            (21844.0, 6_081_075.0),
        ];
        let mut p = Dd::default();
        for &(num, den) in coef.iter().rev() {
            p = p.mul(z2).add(Dd::new(num).div(Dd::new(den)));
        }
        p.mul(az)
    } else {
        let e = exp_dd(Dd::new(-2.0).mul(az));
        Dd::new(1.0).add(e.neg()).div(Dd::new(1.0).add(e))
    };
    if neg {
        t.neg()
    } else {
        t
    }
}

/// Relative error of `exp_dd` / `tanh_dd` before the final rounding to f64 (generous: the
/// Horner steps, the reduction with a double-double ln 2, the cancellation in 1 - e).
const DD_FN_REL: f64 = 4096.0 * U64 * U64;

// ------------------------------------------------------------------------------------------
// The reference and the bounds.

/// Exact-ish quantities of one pair of points (x, y) of dimension d.
#[derive(Clone, Copy, Debug)]
struct Pair {
    d: usize,
    /// <x, y>.
    g: Dd,
    /// sum_k |x_k y_k| (the condition of the inner product).
    s: f64,
    /// |x|^2, |y|^2.
    r: Dd,
    c: Dd,
    /// |x - y|^2 from the exact differences.
    t: Dd,
    /// |x - y|_1 from the exact differences.
    l: Dd,
    /// The same for the centred points the engine's rbf GEMM reads (see [`Centred`]).
    cen: Centred,
}

/// rbf: quantities of the centred points `x' = fl_T(x - mu)`, `y' = fl_T(y - mu)` (`mu` the
/// engine's shift, [`engine_shift`]) that the GEMM reads.
#[derive(Clone, Copy, Debug, Default)]
struct Centred {
    /// |x'|^2, |y'|^2.
    r: Dd,
    c: Dd,
    /// sum_k |x'_k y'_k| (rounded up).
    s: f64,
    /// |x' - y'|^2.
    t: Dd,
    /// |x'|, |y'| (rounded up).
    nx: f64,
    ny: f64,
}

fn centred_pair(x: &[f64], y: &[f64], r: Dd, c: Dd) -> Centred {
    let p = pair(x, y, r, c, Centred::default());
    let up = 1.0 + 4.0 * U64;
    Centred {
        r,
        c,
        s: p.s,
        t: p.t,
        nx: r.value().sqrt() * up,
        ny: c.value().sqrt() * up,
    }
}

fn pair(x: &[f64], y: &[f64], r: Dd, c: Dd, cen: Centred) -> Pair {
    let mut g = Dd::default();
    let mut s = Dd::default();
    let mut t = Dd::default();
    let mut l = Dd::default();
    for (&a, &b) in x.iter().zip(y) {
        let p = Dd::prod(a, b);
        g = g.add(p);
        s = s.add(Dd::prod(a.abs(), b.abs()));
        let (h, lo) = two_sum(a, -b);
        let diff = Dd { hi: h, lo };
        t = t.add(diff.mul(diff));
        l = l.add(if h < 0.0 { diff.neg() } else { diff });
    }
    Pair {
        d: x.len(),
        g,
        // Rounded up by one part in 2^52 so that it is an upper bound.
        s: s.value() * (1.0 + 2.0 * U64),
        r,
        c,
        t,
        l,
        cen,
    }
}

fn sq_norm(x: &[f64]) -> Dd {
    x.iter()
        .fold(Dd::default(), |acc, &a| acc.add(Dd::prod(a, a)))
}

/// The reference value of one entry, its own error bound, and the engine's error bound.
#[derive(Clone, Copy, Debug)]
struct Expect {
    want: f64,
    ref_err: f64,
    bound: f64,
}

impl Expect {
    fn tol(&self) -> f64 {
        (self.bound + self.ref_err) * SLACK
    }
}

/// k(x, y) for the pair `p` and the engine's error bound for type T, each bound derived next to
/// its formula.
fn expect<T: Prec>(kernel: &Kernel, p: &Pair) -> Expect {
    let (u, eta, pr, d) = (T::U, T::ETA, T::PR, p.d);
    let df = d as f64;
    let g = p.g.value();
    let s = p.s;
    // The reference's double-double inner product: every one of the d additions and products
    // errs by <= 4 u64^2 of the running |sum| <= s, plus underflow of low parts.
    let e_gref = 4.0 * df * U64 * U64 * s + df * ETA64;
    match *kernel {
        Kernel::Linear => {
            // GEMM: |g^ - g| <= gamma_d s (any summation tree: each product x_k y_k goes through
            // its own rounding and at most d - 1 additions, Higham (3.5)), plus d eta for
            // products that underflow.
            Expect {
                want: g,
                ref_err: U64 * g.abs() + e_gref,
                bound: gamma_k(d, u) * s + df * eta,
            }
        }
        Kernel::Polynomial {
            gamma,
            degree,
            coef0,
        } => {
            let gm = gamma.unwrap();
            let (a, e_z) = affine_err::<T>(gm, coef0, s, d);
            // Power: any multiplication tree for b^p (binary powering) gives b^^p (1 + theta),
            // |theta| <= gamma_(p-1); with |b^| <= bb := |b| + e_z and the mean value theorem,
            // |b^^p - b^p| <= p e_z bb^(p-1), so
            //   |err| <= p e_z bb^(p-1) + gamma_(p-1) bb^p + 2 p eta.
            let bdd = Dd::new(gm).mul(p.g).add_f64(coef0);
            let mut pw = bdd;
            for _ in 1..degree {
                pw = pw.mul(bdd);
            }
            let want = pw.value();
            let b = bdd.value().abs();
            let bb = b + e_z;
            let pf = degree as f64;
            let pi = degree as i32;
            let bound = pf * e_z * bb.powi(pi - 1)
                + gamma_k(degree as usize - 1, u) * bb.powi(pi)
                + 2.0 * pf * eta;
            // Reference: b errs by <= |gm| e_gref + 8 u64^2 a + eta64, each double-double
            // product adds <= 8 u64^2 relative, final rounding u64.
            let e_r = gm.abs() * e_gref + 8.0 * U64 * U64 * a + ETA64;
            let ref_err = U64 * want.abs()
                + pf * e_r * (b + e_r).powi(pi - 1)
                + 8.0 * pf * U64 * U64 * (b + e_r).powi(pi)
                + 2.0 * pf * ETA64;
            Expect {
                want,
                ref_err,
                bound,
            }
        }
        Kernel::Sigmoid { gamma, coef0 } => {
            let gm = gamma.unwrap();
            let (a, e_z) = affine_err::<T>(gm, coef0, s, d);
            // Reference: z in double-double (error e_zr), tanh in double-double, rounded once.
            let zdd = Dd::new(gm).mul(p.g).add_f64(coef0);
            let z = zdd.value();
            let e_zr = gm.abs() * e_gref + 8.0 * U64 * U64 * a + ETA64;
            let want = tanh_dd(zdd).value();
            let ref_err = e_zr * sech2_max(z, e_zr) + (U64 + DD_FN_REL) * want.abs() + ETA64;
            // tanh' = sech^2 <= 1, decreasing in |z|: |tanh z^ - tanh z| <= e_z sech2_max; the
            // engine's tanh adds <= 4 ulp of its result (kernels/src/exp.rs).
            let sl = sech2_max(z, e_z + e_zr);
            let hi = (want.abs() + e_z * sl + ref_err).min(1.0);
            Expect {
                want,
                ref_err,
                bound: e_z * sl + 4.0 * T::ulp(hi),
            }
        }
        Kernel::Rbf { gamma } => {
            let gm = gamma.unwrap();
            let t = p.t.value().max(0.0);
            let pc = &p.cen;
            let (r, c) = (pc.r.value(), pc.c.value());
            // The engine computes t = |x - y|^2 on the centred points x' = fl_T(x - mu),
            // y' = fl_T(y - mu) (one shift mu per column, common to both; src/gram/centre.rs).
            //
            // Centring: x - mu is computed in f64 and rounded to T, x'_k = (x_k - mu_k)(1 + th)
            // with |th| <= nu := gamma_(pr+1)(u) (f32: u + u64 (1 + u); f64: u), so the
            // differences D'_k = x'_k - y'_k of the centred points are off the exact D_k by
            // <= nu (|x_k - mu_k| + |y_k - mu_k|) <= nu / (1 - nu) (|x'_k| + |y'_k|), and by
            // the triangle inequality in R^d, |D' - D| <= delta := nu / (1 - nu) (|x'| + |y'|):
            //   |t' - t| = ||D'| - |D|| (|D'| + |D|) <= delta (2 sqrt(t) + delta).
            // (Usually th = 0: the shift is rounded so that x - mu is exact.)
            //
            // GEMM on the centred points: r^ = |x'|^2 (1 + theta_d), c^ likewise (sums of
            // non-negative terms), g^ = g' + dg with |dg| <= gamma_d s'; t^ = fl(fl(r^ + c^)
            // - 2 g^) (2 g^ exact, fused or not). Then
            //   t^ - t' = [(r^ + c^)(1 + d1)(1 + d2) - (r' + c')] - 2 [g^ (1 + d2) - g'],
            // |first| <= gamma_(d+2) (r' + c'), |second| <= 2 s' (u + (1 + u) gamma_d)
            // <= gamma_(d+1) 2 s', so |t^ - t'| <= gamma_(d+2) M with M = r' + c' + 2 s'.
            // max(0, .) is 1-Lipschitz (t >= 0). The argument a^ = fl(t^+ (-gm_T)) with
            // gm_T = gm (1 + dp) (pr roundings):
            //   |a^ - a| <= gm [(1 + gamma_(pr+1)) (gamma_(d+2) M + |t' - t|)
            //                   + gamma_(pr+1) t] =: E,
            // plus underflow of the 2d products of the norms and of the GEMM and of the last
            // product. Then |exp(a^) - K| <= K expm1(E), and the engine's exp errs by <= 2 ulp
            // of exp(a^) <= K e^E. Relative to K the error is expm1(E) + 2 ulp: E is the
            // absolute error of the exponent a = gm t.
            let m = r + c + 2.0 * pc.s;
            let nu = gamma_k(pr + 1, u);
            let delta = nu / (1.0 - nu) * (pc.nx + pc.ny);
            let e_c = delta * (2.0 * t.sqrt() + delta);
            let e_g = gamma_k(d + 2, u) * m + (4.0 * df + 4.0) * eta;
            let e_a =
                gm * ((1.0 + gamma_k(pr + 1, u)) * (e_g + e_c) + gamma_k(pr + 1, u) * t) + eta;
            // Refinement: where t^ < TAU fl(r^ + c^), the engine recomputes t~ = |x - y|^2 from
            // the data in f64 (differences exact or rounded once, squares and sums:
            // t~ = t (1 + theta_(d+2)(u64))), a = fl64(gm t~) and exp in f64 (glibc: < 1 ulp
            // of f64), rounded once to T (<= 1/2 ulp of T): |a~ - a| <= gm t gamma_(d+3)(u64)
            // =: E_r and the final error is below K expm1(E_r) + 2 ulp(K e^(E_r)) again.
            // The engine must have refined when t' + e_g < TAU (r' + c') (1 - gamma_(d+1)):
            // then t^ <= t' + e_g < TAU (r' + c')(1 - gamma_(d+1)) <= TAU fl(r^ + c^). Else
            // either bound may apply.
            let e_r = gm * t * gamma_k(d + 3, U64) + ETA64;
            let must_refine = pc.t.value() + e_g < TAU * (r + c) * (1.0 - gamma_k(d + 1, u));
            let e_a = if must_refine { e_r } else { e_a.max(e_r) };
            // Reference: t in double-double (<= 4 (d + 1) u64^2 t), times gm (8 u64^2), exp in
            // double-double, rounded once to f64 (<= u64 K, eta64 if subnormal).
            let want = exp_dd(Dd::new(-gm).mul(p.t)).value();
            let e_ar = gm * (4.0 * df + 12.0) * U64 * U64 * t + ETA64;
            let ref_err = want * e_ar.exp_m1() + (U64 + DD_FN_REL) * want + ETA64;
            Expect {
                want,
                ref_err,
                bound: want * e_a.exp_m1() + 2.0 * T::ulp(want * (e_a + e_ar).exp()),
            }
        }
        Kernel::Laplacian { gamma } => {
            let gm = gamma.unwrap();
            // Engine: each |x_k - y_k| is one rounded subtraction, then d - 1 additions (the
            // first into the zero accumulator is exact): l^ = l (1 + theta_d) (kernels' L1
            // micro-kernel, any order); sums and differences never underflow inexactly.
            // a^ = fl(l^ (-gm_T)): |a^ - a| <= gm gamma_(d+pr+1) l + eta =: E; then as for rbf
            // K expm1(E) + 2 ulp(K e^E).
            let l = p.l.value();
            let want = exp_dd(Dd::new(-gm).mul(p.l)).value();
            let e_ar = gm * (4.0 * df + 12.0) * U64 * U64 * l + ETA64;
            let ref_err = want * e_ar.exp_m1() + (U64 + DD_FN_REL) * want + ETA64;
            let e_a = gm * gamma_k(d + pr + 1, u) * l + eta;
            Expect {
                want,
                ref_err,
                bound: want * e_a.exp_m1() + 2.0 * T::ulp(want * (e_a + e_ar).exp()),
            }
        }
        Kernel::Cosine => {
            let (r, c) = (p.r.value(), p.c.value());
            if r == 0.0 || c == 0.0 {
                // The engine's reciprocal norm of a zero row is 0: the entry is exactly 0.
                return Expect {
                    want: 0.0,
                    ref_err: 0.0,
                    bound: 0.0,
                };
            }
            let want = p.g.div(p.r.mul(p.c).sqrt()).value();
            // Engine: r^ = r (1 + theta_d); its reciprocal norm 1 / sqrt(r^) computed in f64
            // (sqrt and division: relative gamma_2(u64)) and rounded to T (pr roundings):
            //   1/sqrt(r^) = (1/sqrt(r)) (1 + theta_d)^(-1/2), |(1 + theta_d)^(-1/2) - 1| <= rho
            //   with rho = (1 - gamma_d)^(-1/2) - 1,
            // so the reciprocal norms err by eps_n = (1 + rho)(1 + gamma_2(u64))(1 + pr u) - 1
            // relative. K^ = fl(fl(g^ ri) cj) = (g + dg) ri cj (1 + d4)(1 + d5):
            //   |K^ - K| <= (gamma_d s (1 + F) + |g| F) / (|x| |y|),
            //   F = (1 + eps_n)^2 (1 + u)^2 - 1,
            // plus underflow (2 eta (1 + cj)). Note s / (|x| |y|) <= 1 (Cauchy-Schwarz).
            let gd = gamma_k(d, u);
            let rho = 1.0 / (1.0 - gd).sqrt() - 1.0;
            let eps_n = (1.0 + rho) * (1.0 + gamma_k(2, U64)) * (1.0 + pr as f64 * u) - 1.0;
            let f = (1.0 + eps_n).powi(2) * (1.0 + u).powi(2) - 1.0;
            let nxy = (r * c).sqrt();
            let bound = (gd * s * (1.0 + f) + g.abs() * f) / nxy
                + df * eta / nxy
                + 2.0 * eta * (1.0 + 1.0 / c.sqrt());
            // Reference: double-double quotient and square root (O(u64^2)), rounded once.
            Expect {
                want,
                ref_err: (U64 + DD_FN_REL) * want.abs() + e_gref / nxy + 3.0 * ETA64,
                bound,
            }
        }
    }
}

/// The argument `z = gm <x, y> + coef0` of poly and sigmoid: returns `A = |gm| s + |coef0|` and
/// the engine's error bound `e_z` on `z`.
///
/// `gm_T = gm (1 + dp)`, `c0_T = c0 (1 + dc)` (pr roundings), `g^ = g + dg`, `|dg| <= gamma_d s`:
/// `|gm_T g^ - gm g| <= |gm| (pr u |g| + (1 + pr u) gamma_d s) <= |gm| gamma_(d+pr) s`. Then the
/// fused `fl(gm_T g^ + c0_T)` costs one more rounding, the unfused `fl(fl(gm_T g^) + c0_T)` two
/// on the product and one on c0:
///   `|z^ - z| <= gamma_(d+pr+2) |gm| s + gamma_(pr+2) |c0|`,
/// plus underflow: the d GEMM products and the epilogue's product and sum, each <= eta.
fn affine_err<T: Prec>(gm: f64, c0: f64, s: f64, d: usize) -> (f64, f64) {
    let (u, pr) = (T::U, T::PR);
    let a = gm.abs() * s + c0.abs();
    let e = gamma_k(d + pr + 2, u) * gm.abs() * s
        + gamma_k(pr + 2, u) * c0.abs()
        + (d as f64 + 3.0) * T::ETA * (1.0 + gm.abs());
    (a, e)
}

/// The engine's refinement threshold (src/gram/assemble.rs, `TAU`).
const TAU: f64 = 0.25;

/// The engine's rbf shift of the column points (src/gram/centre.rs, `shift_of`, replicated
/// operation for operation): per column, the mean (f64, row order) rounded to a multiple of
/// `q = 2^(floor(log2(mad)) - 4)`, mad the mean absolute deviation; the first value when mad is
/// 0; the mean when q is not normal or `|mean / q| >= 2^52`.
fn engine_shift<T: Prec>(p: &Points<T>) -> Vec<f64> {
    let (n, d) = (p.n, p.d);
    let mut mean = vec![0.0f64; d];
    for i in 0..n {
        for (m, v) in mean.iter_mut().zip(p.row(i)) {
            *m += v;
        }
    }
    for m in &mut mean {
        *m /= n as f64;
    }
    let mut mad = vec![0.0f64; d];
    for i in 0..n {
        for ((a, v), m) in mad.iter_mut().zip(p.row(i)).zip(&mean) {
            *a += (v - m).abs();
        }
    }
    (0..d)
        .map(|k| {
            let a = mad[k] / n as f64;
            if a == 0.0 {
                return p.wide[k];
            }
            let q = 2f64.powi(a.log2().floor() as i32 - 4);
            if q.is_normal() && (mean[k] / q).abs() < 2f64.powi(52) {
                (mean[k] / q).round() * q
            } else {
                mean[k]
            }
        })
        .collect()
}

/// The centred points as the engine's GEMM reads them: `fl_T(x - mu)` (in f64, rounded to T),
/// widened back to f64.
fn centre<T: Prec>(p: &Points<T>, mu: &[f64]) -> Vec<f64> {
    (0..p.n * p.d)
        .map(|q| T::of64(p.wide[q] - mu[q % p.d]).to64())
        .collect()
}

// ------------------------------------------------------------------------------------------
// Test data.

/// Data points: row-major `n x d` in T, and the same values widened to f64.
#[derive(Clone, Debug)]
struct Points<T> {
    n: usize,
    d: usize,
    data: Vec<T>,
    wide: Vec<f64>,
}

impl<T: Prec> Points<T> {
    fn from_f64(n: usize, d: usize, v: Vec<f64>) -> Self {
        let data: Vec<T> = v.iter().map(|&a| T::of64(a)).collect();
        let wide = data.iter().map(|a| a.to64()).collect();
        Points { n, d, data, wide }
    }
    fn row(&self, i: usize) -> &[f64] {
        &self.wide[i * self.d..(i + 1) * self.d]
    }
    fn matrix(&self) -> Matrix<T> {
        Matrix::from_vec(self.n, self.d, self.data.clone()).unwrap()
    }
}

/// `n x d` points, entries `10 scale U(-1, 1)`; a row is zero with probability 1/16, a copy of
/// an earlier row with probability 1/8, and, when `near` is given, a copy of one of its rows
/// (probability 1/4) or one of its rows plus noise of relative size 1e-3 (probability 1/4).
fn points(rng: &mut Rng, n: usize, d: usize, scale: f64, near: Option<&[f64]>) -> Vec<f64> {
    let mut v: Vec<f64> = Vec::with_capacity(n * d);
    for i in 0..n {
        let kind = rng.below(16);
        let near_row = near.map(|nr| {
            let rows = nr.len() / d;
            let k = rng.below(rows as u64) as usize;
            &nr[k * d..(k + 1) * d]
        });
        for k in 0..d {
            let fresh = 10.0 * scale * rng.sym();
            let val = match (kind, near_row) {
                (0, _) => 0.0,
                (1 | 2, _) if i > 0 => v[(i - 1) * d + k],
                (3..=6, Some(nr)) => nr[k],
                (7..=10, Some(nr)) => nr[k] + 1e-2 * scale * rng.sym(),
                _ => fresh,
            };
            v.push(val);
        }
    }
    v
}

/// Parameters of one case.
#[derive(Clone, Debug)]
struct Case {
    n: usize,
    m: usize,
    d: usize,
    tile: usize,
    seed: u64,
    /// Data scale 2^k.
    k: i32,
    /// log10 of the kernel widths relative to the data's natural scale.
    lg: f64,
    coef0: f64,
}

/// Sizes: 1, primes, around SIMD widths (4, 8, 16 lanes; L1 panels of 2 registers and 32
/// columns) and the small tile sizes used, or anything up to 40.
fn dim() -> impl Strategy<Value = usize> {
    prop_oneof![
        prop::sample::select(vec![
            1usize, 2, 3, 4, 5, 7, 8, 9, 13, 15, 16, 17, 31, 32, 33, 37
        ]),
        1usize..=40,
    ]
}

/// Feature counts: as above plus GEMM-depth sizes up to 257.
fn feat() -> impl Strategy<Value = usize> {
    prop_oneof![
        prop::sample::select(vec![
            1usize, 2, 3, 4, 5, 7, 8, 9, 15, 16, 17, 31, 32, 33, 63, 64, 65, 127, 129, 257
        ]),
        1usize..=24,
    ]
}

fn tile() -> impl Strategy<Value = usize> {
    prop::sample::select(vec![1usize, 3, 8, 16, 17, 256])
}

fn case() -> impl Strategy<Value = Case> {
    (
        dim(),
        dim(),
        feat(),
        tile(),
        any::<u64>(),
        -3i32..=2,
        -2.0f64..=1.0,
        prop_oneof![Just(0.0f64), -2.0f64..2.0],
    )
        .prop_map(|(n, m, d, tile, seed, k, lg, coef0)| Case {
            n,
            m,
            d,
            tile,
            seed,
            k,
            lg,
            coef0,
        })
}

/// The data of a case: X (n x d) and Y (m x d, many rows near rows of X).
fn data<T: Prec>(c: &Case) -> (Points<T>, Points<T>) {
    let mut rng = Rng(c.seed);
    let scale = 2f64.powi(c.k);
    let x = Points::<T>::from_f64(c.n, c.d, points(&mut rng, c.n, c.d, scale, None));
    let y = Points::<T>::from_f64(c.m, c.d, points(&mut rng, c.m, c.d, scale, Some(&x.wide)));
    (x, y)
}

/// Every kernel with parameters scaled to the data (entries have variance s2 = (10 scale)^2 / 3,
/// so |x - y|^2 ~ 2 d s2, |x - y|_1 ~ 1.1 d sqrt(s2), <x, y> ~ sqrt(d) s2).
fn kernels(c: &Case) -> Vec<Kernel> {
    let scale = 2f64.powi(c.k);
    let s2 = (10.0 * scale).powi(2) / 3.0;
    let w = 10f64.powf(c.lg);
    let d = c.d as f64;
    let mut v = vec![Kernel::Linear, Kernel::Cosine];
    for degree in 1..=4 {
        v.push(Kernel::polynomial(w / (d.sqrt() * s2), degree, c.coef0));
    }
    v.push(Kernel::rbf(w / (d * s2)));
    v.push(Kernel::laplacian(w / (d * s2.sqrt())));
    v.push(Kernel::sigmoid(w / (d.sqrt() * s2), c.coef0));
    v
}

// ------------------------------------------------------------------------------------------
// Checks.

fn fail(msg: String) -> TestCaseError {
    TestCaseError::fail(msg)
}

/// Pair statistics of X x Y, so that the reference of every kernel reuses them.
struct PairTable {
    pairs: Vec<Pair>,
}

impl PairTable {
    /// For `gram(X)` pass `y = x`; for `cross_gram(X, Y)` the shift of rbf comes from Y.
    fn new<T: Prec>(x: &Points<T>, y: &Points<T>) -> Self {
        let rn: Vec<Dd> = (0..x.n).map(|i| sq_norm(x.row(i))).collect();
        let cn: Vec<Dd> = (0..y.n).map(|j| sq_norm(y.row(j))).collect();
        let mu = engine_shift(y);
        let (xc, yc) = (centre::<T>(x, &mu), centre::<T>(y, &mu));
        let d = x.d.max(1);
        let rc: Vec<Dd> = xc.chunks_exact(d).map(sq_norm).collect();
        let cc: Vec<Dd> = yc.chunks_exact(d).map(sq_norm).collect();
        let mut pairs = Vec::with_capacity(x.n * y.n);
        for (i, &ri) in rn.iter().enumerate() {
            for (j, &cj) in cn.iter().enumerate() {
                let (xi, yj) = (&xc[i * d..(i + 1) * d], &yc[j * d..(j + 1) * d]);
                let cen = centred_pair(xi, yj, rc[i], cc[j]);
                pairs.push(pair(x.row(i), y.row(j), ri, cj, cen));
            }
        }
        PairTable { pairs }
    }
    fn expected<T: Prec>(&self, kernel: &Kernel) -> Vec<Expect> {
        self.pairs.iter().map(|p| expect::<T>(kernel, p)).collect()
    }
}

/// Every entry of `k` within its bound of the reference.
fn check_against<T: Prec>(
    k: &Matrix<T>,
    want: &[Expect],
    what: &str,
    kernel: &Kernel,
) -> Result<(), TestCaseError> {
    let m = k.ncols();
    for (idx, (&got, e)) in k.as_slice().iter().zip(want).enumerate() {
        let got = got.to64();
        if !(got == e.want || (got - e.want).abs() <= e.tol()) {
            return Err(fail(format!(
                "{what} {} {kernel}: entry ({}, {}) = {got:e}, reference {:e}, |err| {:e} > \
                 bound {:e} ({:.2} ulp)",
                T::NAME,
                idx / m,
                idx % m,
                e.want,
                (got - e.want).abs(),
                e.tol(),
                e.tol() / T::ulp(e.want)
            )));
        }
    }
    Ok(())
}

/// Bitwise symmetry, exact unit diagonal and range [0, 1] for rbf / laplacian.
fn check_structure<T: Prec>(k: &Matrix<T>, kernel: &Kernel) -> Result<(), TestCaseError> {
    let n = k.nrows();
    for i in 0..n {
        for j in 0..i {
            if k.get(i, j).bits() != k.get(j, i).bits() {
                return Err(fail(format!(
                    "{} {kernel}: K[{i}][{j}] = {:?} != K[{j}][{i}] = {:?}",
                    T::NAME,
                    k.get(i, j),
                    k.get(j, i)
                )));
            }
        }
    }
    if kernel.unit_self_similarity() {
        for i in 0..n {
            if k.get(i, i).to64() != 1.0 {
                return Err(fail(format!(
                    "{} {kernel}: diagonal K[{i}][{i}] = {:?}, not exactly 1",
                    T::NAME,
                    k.get(i, i)
                )));
            }
        }
        if let Some(v) = k
            .as_slice()
            .iter()
            .find(|v| !(0.0..=1.0).contains(&v.to64()))
        {
            return Err(fail(format!(
                "{} {kernel}: value {v:?} outside [0, 1]",
                T::NAME
            )));
        }
    }
    Ok(())
}

/// gram and cross_gram of a case against the reference, for every kernel.
fn matches_reference<T: Prec>(c: &Case) -> Result<(), TestCaseError> {
    let (x, y) = data::<T>(c);
    check_reference(&x, &y, &kernels(c), c.tile)
}

/// gram(X) and cross_gram(X, Y) against the reference for the given kernels.
fn check_reference<T: Prec>(
    x: &Points<T>,
    y: &Points<T>,
    kernels: &[Kernel],
    tile: usize,
) -> Result<(), TestCaseError> {
    let (xm, ym) = (x.matrix(), y.matrix());
    let opts = GramOptions {
        tile,
        threads: None,
    };
    let sym = PairTable::new(x, x);
    let cross = PairTable::new(x, y);
    for kernel in kernels {
        let k = gram(xm.as_mat_ref(), kernel, &opts).map_err(|e| fail(e.to_string()))?;
        check_structure(&k, kernel)?;
        check_against(&k, &sym.expected::<T>(kernel), "gram", kernel)?;
        let k = cross_gram(xm.as_mat_ref(), ym.as_mat_ref(), kernel, &opts)
            .map_err(|e| fail(e.to_string()))?;
        assert_eq!(k.shape(), (x.n, y.n));
        if kernel.unit_self_similarity() {
            if let Some(v) = k
                .as_slice()
                .iter()
                .find(|v| !(0.0..=1.0).contains(&v.to64()))
            {
                return Err(fail(format!(
                    "cross {} {kernel}: value {v:?} outside [0, 1]",
                    T::NAME
                )));
            }
        }
        check_against(&k, &cross.expected::<T>(kernel), "cross_gram", kernel)?;
    }
    Ok(())
}

/// `cross_gram(X, X)` and `gram(X)` are both within B of the same exact values, so within 2B of
/// each other (triangle inequality); the tiles differ on purpose.
fn cross_of_self<T: Prec>(c: &Case) -> Result<(), TestCaseError> {
    let (x, _) = data::<T>(c);
    let xm = x.matrix();
    let table = PairTable::new(&x, &x);
    for kernel in kernels(c) {
        let ks = gram(xm.as_mat_ref(), &kernel, &GramOptions::default())
            .map_err(|e| fail(e.to_string()))?;
        let opts = GramOptions {
            tile: c.tile,
            threads: None,
        };
        let kc = cross_gram(xm.as_mat_ref(), xm.as_mat_ref(), &kernel, &opts)
            .map_err(|e| fail(e.to_string()))?;
        for (idx, e) in table.expected::<T>(&kernel).iter().enumerate() {
            let (a, b) = (ks.as_slice()[idx].to64(), kc.as_slice()[idx].to64());
            let tol = 2.0 * e.bound * SLACK;
            if !(a == b || (a - b).abs() <= tol) {
                return Err(fail(format!(
                    "{} {kernel}: gram[{}][{}] = {a:e} but cross_gram(X, X) = {b:e}, |diff| \
                     {:e} > 2B = {tol:e}",
                    T::NAME,
                    idx / c.n,
                    idx % c.n,
                    (a - b).abs()
                )));
            }
        }
    }
    Ok(())
}

/// The rbf Gram matrix is PSD up to rounding.
///
/// The exact K is PSD. The computed K^ = K + E with |E_ij| <= B_ij (the bounds above; 0 on the
/// diagonal, which is exact), so by Weyl lambda_min(K^) >= -||E||_2 >= -||E||_F >= -n max B_ij.
/// The eigenvalues are computed in f64 by faer's self-adjoint EVD, backward stable: they are
/// exact for K^ + F with ||F||_2 <= p(n) u64 ||K^||_2; we take p(n) = n and ||K^||_2 <=
/// ||K^||_F. So lambda_min >= -(n max B_ij + n u64 ||K^||_F).
fn rbf_psd<T: Prec>(c: &Case) -> Result<(), TestCaseError> {
    let (x, _) = data::<T>(c);
    let n = x.n;
    let kernel = kernels(c)
        .into_iter()
        .find(|k| matches!(k, Kernel::Rbf { .. }))
        .unwrap();
    let opts = GramOptions {
        tile: c.tile,
        threads: None,
    };
    let k = gram(x.matrix().as_mat_ref(), &kernel, &opts).map_err(|e| fail(e.to_string()))?;
    let bmax = PairTable::new(&x, &x)
        .expected::<T>(&kernel)
        .iter()
        .map(|e| e.tol())
        .fold(0.0f64, f64::max);
    let kf = faer::Mat::<f64>::from_fn(n, n, |i, j| k.get(i, j).to64());
    let frob = k
        .as_slice()
        .iter()
        .map(|v| v.to64().powi(2))
        .sum::<f64>()
        .sqrt();
    let eig = kf
        .self_adjoint_eigenvalues(faer::Side::Lower)
        .map_err(|e| fail(format!("EVD failed: {e:?}")))?;
    let lmin = eig.iter().copied().fold(f64::INFINITY, f64::min);
    let thr = n as f64 * bmax + n as f64 * U64 * frob;
    if lmin < -thr {
        return Err(fail(format!(
            "{} {kernel} n = {n}: lambda_min = {lmin:e} < -{thr:e} (n max B = {:e})",
            T::NAME,
            n as f64 * bmax
        )));
    }
    Ok(())
}

/// threads Some(1) and Some(2) give bitwise identical results, for two tile sizes (the case's,
/// drawn from 1, 3, 8, 16, 17, 256, and 7), symmetric and cross, all kernels.
fn deterministic<T: Prec>(c: &Case) -> Result<(), TestCaseError> {
    let (x, y) = data::<T>(c);
    let (xm, ym) = (x.matrix(), y.matrix());
    for kernel in kernels(c) {
        for tile in [c.tile, 7] {
            let run = |threads: usize| -> Result<(Matrix<T>, Matrix<T>), TestCaseError> {
                let o = GramOptions {
                    tile,
                    threads: Some(threads),
                };
                Ok((
                    gram(xm.as_mat_ref(), &kernel, &o).map_err(|e| fail(e.to_string()))?,
                    cross_gram(xm.as_mat_ref(), ym.as_mat_ref(), &kernel, &o)
                        .map_err(|e| fail(e.to_string()))?,
                ))
            };
            let (s1, c1) = run(1)?;
            let (s2, c2) = run(2)?;
            for (what, a, b) in [("gram", &s1, &s2), ("cross_gram", &c1, &c2)] {
                if let Some(idx) = (0..a.as_slice().len())
                    .find(|&i| a.as_slice()[i].bits() != b.as_slice()[i].bits())
                {
                    return Err(fail(format!(
                        "{what} {} {kernel} tile {tile}: entry {idx} is {:?} with 1 thread, {:?} \
                         with 2",
                        T::NAME,
                        a.as_slice()[idx],
                        b.as_slice()[idx]
                    )));
                }
            }
        }
    }
    Ok(())
}

fn same_bits<T: Prec>(a: &Matrix<T>, b: &Matrix<T>, what: &str) -> Result<(), TestCaseError> {
    if a.shape() != b.shape()
        || a.as_slice()
            .iter()
            .zip(b.as_slice())
            .any(|(p, q)| p.bits() != q.bits())
    {
        return Err(fail(format!(
            "{what} {}: differs from the row-major input",
            T::NAME
        )));
    }
    Ok(())
}

/// Non-contiguous views of X and Y give bitwise the results of their row-major copies.
fn views<T: Prec>(c: &Case) -> Result<(), TestCaseError> {
    let (x, y) = data::<T>(c);
    let (n, m, d) = (x.n, y.n, x.d);
    let (xm, ym) = (x.matrix(), y.matrix());
    // Column-major owned faer matrices.
    let xc = faer::Mat::<T>::from_fn(n, d, |i, j| xm.get(i, j));
    let yc = faer::Mat::<T>::from_fn(m, d, |i, j| ym.get(i, j));
    // Transposed views of row-major X^T (row stride 1, column stride n).
    let xt: Vec<T> = (0..d * n).map(|q| xm.get(q % n, q / n)).collect();
    let yt: Vec<T> = (0..d * m).map(|q| ym.get(q % m, q / m)).collect();
    let xtv = faer::MatRef::from_row_major_slice(&xt, d, n).transpose();
    let ytv = faer::MatRef::from_row_major_slice(&yt, d, m).transpose();
    // Row stride d + 3 (the first d columns of a wider row-major matrix).
    let wide = |p: &Matrix<T>| {
        let (r, cc) = p.shape();
        Matrix::from_vec(
            r,
            cc + 3,
            (0..r * (cc + 3))
                .map(|q| {
                    if q % (cc + 3) < cc {
                        p.get(q / (cc + 3), q % (cc + 3))
                    } else {
                        T::of64(f64::NAN)
                    }
                })
                .collect(),
        )
        .unwrap()
    };
    let (xw, yw) = (wide(&xm), wide(&ym));
    // Reversed rows (negative row stride) of a row-reversed copy.
    let rev = |p: &Matrix<T>| {
        let (r, cc) = p.shape();
        Matrix::from_vec(
            r,
            cc,
            (0..r).rev().flat_map(|i| p.row(i).to_vec()).collect(),
        )
        .unwrap()
    };
    let (xr, yr) = (rev(&xm), rev(&ym));
    let opts = GramOptions {
        tile: c.tile,
        threads: None,
    };
    for kernel in kernels(c) {
        let want_s = gram(xm.as_mat_ref(), &kernel, &opts).map_err(|e| fail(e.to_string()))?;
        let want_c = cross_gram(xm.as_mat_ref(), ym.as_mat_ref(), &kernel, &opts)
            .map_err(|e| fail(e.to_string()))?;
        let cases = [
            ("column-major", xc.as_ref(), yc.as_ref()),
            ("transposed", xtv, ytv),
            (
                "row stride d + 3",
                xw.as_mat_ref().subcols(0, d),
                yw.as_mat_ref().subcols(0, d),
            ),
            (
                "reversed rows",
                xr.as_mat_ref().reverse_rows(),
                yr.as_mat_ref().reverse_rows(),
            ),
        ];
        for (what, xv, yv) in cases {
            let ks = gram(xv, &kernel, &opts).map_err(|e| fail(e.to_string()))?;
            same_bits(&ks, &want_s, &format!("gram, {what} view, {kernel}"))?;
            let kc = cross_gram(xv, yv, &kernel, &opts).map_err(|e| fail(e.to_string()))?;
            same_bits(&kc, &want_c, &format!("cross_gram, {what} views, {kernel}"))?;
            // Mixed: a view against the row-major copy.
            let kc =
                cross_gram(xv, ym.as_mat_ref(), &kernel, &opts).map_err(|e| fail(e.to_string()))?;
            same_bits(
                &kc,
                &want_c,
                &format!("cross_gram, {what} X view, {kernel}"),
            )?;
        }
    }
    Ok(())
}

/// A sixteenth of [`config`]'s cases (at least 2), for the large cases.
fn config_large() -> ProptestConfig {
    let c = config();
    ProptestConfig {
        cases: (c.cases / 16).max(2),
        ..c
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn gram_matches_reference_f32(c in case()) {
        matches_reference::<f32>(&c)?;
    }

    #[test]
    fn gram_matches_reference_f64(c in case()) {
        matches_reference::<f64>(&c)?;
    }

    #[test]
    fn cross_of_self_matches_gram_f32(c in case()) {
        cross_of_self::<f32>(&c)?;
    }

    #[test]
    fn cross_of_self_matches_gram_f64(c in case()) {
        cross_of_self::<f64>(&c)?;
    }

    #[test]
    fn rbf_gram_is_psd_f32(c in case(), n in 1usize..=64) {
        rbf_psd::<f32>(&Case { n, ..c })?;
    }

    #[test]
    fn rbf_gram_is_psd_f64(c in case(), n in 1usize..=64) {
        rbf_psd::<f64>(&Case { n, ..c })?;
    }

    #[test]
    fn deterministic_across_threads_f32(c in case(), n in 1usize..=60) {
        deterministic::<f32>(&Case { n, ..c })?;
    }

    #[test]
    fn deterministic_across_threads_f64(c in case(), n in 1usize..=60) {
        deterministic::<f64>(&Case { n, ..c })?;
    }

    #[test]
    fn strided_and_transposed_views_f32(c in case()) {
        views::<f32>(&c)?;
    }

    #[test]
    fn strided_and_transposed_views_f64(c in case()) {
        views::<f64>(&c)?;
    }
}

/// The case's X and Y plus one offset per column, common to both: `+-10 scale 10^(lo v)`,
/// `v` uniform in [0, 1) per column, so up to `10^lo` (lo <= 4) times the spread `10 scale` of
/// the entries; then rounded to T.
fn offset_data<T: Prec>(c: &Case, lo: f64) -> (Points<T>, Points<T>) {
    let (x, y) = data::<T>(c);
    let mut rng = Rng(c.seed ^ 0x000F_F5E7);
    let scale = 2f64.powi(c.k);
    let off: Vec<f64> = (0..c.d)
        .map(|_| {
            let sign = if rng.below(2) == 0 { 1.0 } else { -1.0 };
            sign * 10.0 * scale * 10f64.powf(lo * 0.5 * (rng.sym() + 1.0))
        })
        .collect();
    let shift = |p: &Points<T>| {
        let v = (0..p.n * p.d).map(|q| p.wide[q] + off[q % p.d]).collect();
        Points::<T>::from_f64(p.n, p.d, v)
    };
    (shift(&x), shift(&y))
}

/// Offset data, rbf and laplacian (the translation-invariant kernels, the only ones whose
/// accuracy should not depend on the offset): gram and cross_gram within the bounds of
/// [`expect`] (relative to each entry: `K expm1(E) + 2 ulp`, E the error of the exponent), exact
/// symmetry and unit diagonal, and bitwise the same for 1 and 2 threads.
fn offset_matches_reference<T: Prec>(c: &Case, lo: f64) -> Result<(), TestCaseError> {
    let (x, y) = offset_data::<T>(c, lo);
    let ks: Vec<Kernel> = kernels(c)
        .into_iter()
        .filter(|k| matches!(k, Kernel::Rbf { .. } | Kernel::Laplacian { .. }))
        .collect();
    check_reference(&x, &y, &ks, c.tile)?;
    let (xm, ym) = (x.matrix(), y.matrix());
    for kernel in &ks {
        let run = |threads: usize| {
            let o = GramOptions {
                tile: c.tile,
                threads: Some(threads),
            };
            (
                gram(xm.as_mat_ref(), kernel, &o).unwrap(),
                cross_gram(xm.as_mat_ref(), ym.as_mat_ref(), kernel, &o).unwrap(),
            )
        };
        let ((s1, c1), (s2, c2)) = (run(1), run(2));
        for (what, a, b) in [("gram", &s1, &s2), ("cross_gram", &c1, &c2)] {
            if a.as_slice()
                .iter()
                .zip(b.as_slice())
                .any(|(p, q)| p.bits() != q.bits())
            {
                return Err(fail(format!(
                    "{what} {} {kernel}, offset data: 1 and 2 threads differ",
                    T::NAME
                )));
            }
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn offset_data_matches_reference_f32(c in case(), lo in 0.0f64..=4.0) {
        offset_matches_reference::<f32>(&c, lo)?;
    }

    #[test]
    fn offset_data_matches_reference_f64(c in case(), lo in 0.0f64..=4.0) {
        offset_matches_reference::<f64>(&c, lo)?;
    }
}

/// Sizes around the default tile (256): the last tile row / column of width 1, 0 (exact fit),
/// 255.
fn large_case() -> impl Strategy<Value = Case> {
    (
        case(),
        prop::sample::select(vec![255usize, 256, 257]),
        prop::sample::select(vec![1usize, 255, 257]),
        1usize..=6,
    )
        .prop_map(|(c, n, m, d)| Case {
            n,
            m,
            d,
            tile: 256,
            ..c
        })
}

proptest! {
    #![proptest_config(config_large())]

    #[test]
    fn default_tile_boundary_f32(c in large_case()) {
        matches_reference::<f32>(&c)?;
    }

    #[test]
    fn default_tile_boundary_f64(c in large_case()) {
        matches_reference::<f64>(&c)?;
    }
}

/// The double-double reference functions agree with libm (<= 1 ulp exp, <= 2 ulp tanh, glibc)
/// to within those libm errors plus half an ulp (the reference's own rounding).
#[test]
fn reference_functions_match_libm() {
    let mut rng = Rng(7);
    for _ in 0..20_000 {
        let a = -745.0 * (rng.sym() * 0.5 + 0.5).powi(3);
        let e = exp_dd(Dd::new(a)).value();
        assert!(
            (e - a.exp()).abs() <= 1.5 * ulp64(e) + ETA64,
            "exp({a:e}) = {e:e}"
        );
        let z = 30.0 * rng.sym().powi(5);
        let t = tanh_dd(Dd::new(z)).value();
        assert!(
            (t - z.tanh()).abs() <= 2.5 * ulp64(t),
            "tanh({z:e}) = {t:e} vs {:e}",
            z.tanh()
        );
    }
    assert_eq!(exp_dd(Dd::new(0.0)).value(), 1.0);
    assert_eq!(tanh_dd(Dd::new(0.0)).value(), 0.0);
    assert_eq!(exp_dd(Dd::new(1.0)).value(), std::f64::consts::E);
}

// ------------------------------------------------------------------------------------------
// Data far from the origin (issue 11, part 4).

/// A standard normal deviate (Box-Muller on two uniforms of the test generator).
fn normal(rng: &mut Rng) -> f64 {
    // (0, 1]: avoids ln 0.
    let u1 = 1.0 - 0.5 * (rng.sym() + 1.0);
    let u2 = 0.5 * (rng.sym() + 1.0);
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

/// Largest relative error `|K^ - K| / K` of `k` (n x m) against the f64 double loop of the
/// kernel on the *same* f32/f64 inputs (widened exactly to f64): rbf `exp(-gm sum (x_k -
/// y_k)^2)`, laplacian `exp(-gm sum |x_k - y_k|)`. The f64 loop errs by about `(d + 3) u64`
/// relative in the exponent's argument, `a (d + 3) u64 + u64` relative in K (a <= 40 here):
/// below 1e-12, negligible against the 1e-5 asserted.
fn max_rel_err<T: Prec>(k: &Matrix<T>, x: &Points<T>, y: &Points<T>, kernel: &Kernel) -> f64 {
    let mut worst = 0.0f64;
    for i in 0..x.n {
        for j in 0..y.n {
            let (a, b) = (x.row(i), y.row(j));
            let want = match *kernel {
                Kernel::Rbf { gamma } => {
                    let t: f64 = a.iter().zip(b).map(|(p, q)| (p - q) * (p - q)).sum();
                    (-gamma.unwrap() * t).exp()
                }
                Kernel::Laplacian { gamma } => {
                    let l: f64 = a.iter().zip(b).map(|(p, q)| (p - q).abs()).sum();
                    (-gamma.unwrap() * l).exp()
                }
                _ => unreachable!(),
            };
            let got = k.get(i, j).to64();
            worst = worst.max((got - want).abs() / want);
        }
    }
    worst
}

/// The case of the issue: 500 x 50 points, entries 100 + 0.1 N(0, 1), gamma = 1 for rbf; the
/// laplacian with gamma = 1 / (d 0.1) (distances ~ 1.1 d 0.1). f32 and f64, `gram` and
/// `cross_gram` (against 300 more such points). Within 1e-5 relative of the f64 loop.
fn far_from_origin_case<T: Prec>() -> Vec<(String, f64)> {
    let (n, m, d) = (500, 300, 50);
    let mut rng = Rng(20_240_611);
    let mut gen = |rows: usize| -> Points<T> {
        let v = (0..rows * d)
            .map(|_| 100.0 + 0.1 * normal(&mut rng))
            .collect();
        Points::<T>::from_f64(rows, d, v)
    };
    let (x, y) = (gen(n), gen(m));
    let mut out = Vec::new();
    for kernel in [Kernel::rbf(1.0), Kernel::laplacian(1.0 / (d as f64 * 0.1))] {
        let opts = GramOptions::default();
        let k = gram(x.matrix().as_mat_ref(), &kernel, &opts).unwrap();
        out.push((
            format!("gram {} {kernel}", T::NAME),
            max_rel_err(&k, &x, &x, &kernel),
        ));
        let k = cross_gram(
            x.matrix().as_mat_ref(),
            y.matrix().as_mat_ref(),
            &kernel,
            &opts,
        )
        .unwrap();
        out.push((
            format!("cross_gram {} {kernel}", T::NAME),
            max_rel_err(&k, &x, &y, &kernel),
        ));
    }
    out
}

#[test]
fn far_from_origin_within_1e5_relative() {
    let mut errs = far_from_origin_case::<f32>();
    errs.extend(far_from_origin_case::<f64>());
    for (what, e) in &errs {
        eprintln!("{what}: max relative error {e:.3e}");
    }
    for (what, e) in &errs {
        assert!(*e <= 1e-5, "{what}: max relative error {e:e} > 1e-5");
    }
}

/// Random offsets up to 1e4 times the spread (the property tests' data, [`offset_data`]: zero,
/// repeated and near-duplicate rows included), rbf and laplacian at the widths of
/// [`kernels`] for lg = 0 and lg = 0.6 (exponents a = gm t around 2 and 8), f32 and f64,
/// `gram` and `cross_gram`: within 1e-5 relative of the f64 loop on the same inputs.
fn random_offsets_case<T: Prec>() -> f64 {
    let mut worst = 0.0f64;
    for (seed, d) in [(11u64, 5usize), (12, 50), (13, 200)] {
        for lo in [0.0, 1.0, 2.0, 3.0, 4.0] {
            for lg in [0.0, 0.6] {
                let c = Case {
                    n: 150,
                    m: 100,
                    d,
                    tile: 256,
                    seed,
                    k: 0,
                    lg,
                    coef0: 0.0,
                };
                let (x, y) = offset_data::<T>(&c, lo);
                let opts = GramOptions::default();
                for kernel in kernels(&c)
                    .into_iter()
                    .filter(|k| matches!(k, Kernel::Rbf { .. } | Kernel::Laplacian { .. }))
                {
                    let k = gram(x.matrix().as_mat_ref(), &kernel, &opts).unwrap();
                    let e1 = max_rel_err(&k, &x, &x, &kernel);
                    let k = cross_gram(
                        x.matrix().as_mat_ref(),
                        y.matrix().as_mat_ref(),
                        &kernel,
                        &opts,
                    )
                    .unwrap();
                    let e2 = max_rel_err(&k, &x, &y, &kernel);
                    eprintln!(
                        "{} {kernel} d {d} offsets <= 1e{lo} spreads: gram {e1:.2e}, cross {e2:.2e}",
                        T::NAME
                    );
                    worst = worst.max(e1).max(e2);
                }
            }
        }
    }
    worst
}

#[test]
fn random_offsets_within_1e5_relative() {
    for (name, e) in [
        ("f32", random_offsets_case::<f32>()),
        ("f64", random_offsets_case::<f64>()),
    ] {
        eprintln!("{name}: max relative error {e:.3e}");
        assert!(e <= 1e-5, "{name}: max relative error {e:e} > 1e-5");
    }
}
