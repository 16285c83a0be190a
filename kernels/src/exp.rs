//! Vectorised `exp` and `tanh` for f32 and f64.
//!
//! # exp
//! Range reduction `x = n ln2 + r`, `n = round(x log2 e)`, `|r| <= ln2 / 2`, with ln 2 split in a
//! high part (few mantissa bits, so `n * ln2_hi` is exact) and a low part (Cody & Waite), then a
//! polynomial for `e^r` and a scaling by `2^n` built from the exponent bits. `2^n` is applied as
//! two factors `2^(n/2) 2^(n - n/2)` so that results in the subnormal range are rounded once,
//! correctly, instead of flushing to zero.
//! - f32: Cephes `expf` polynomial `1 + r + r^2 P5(r)`.
//! - f64: Taylor polynomial of degree 13 (truncation error < 5e-18 relative on |r| <= ln2/2).
//!
//! Measured maximum relative error against correctly rounded results (test `exp_accuracy`, dense
//! sweep of the whole finite range): f32 <= 2 ulp (2.4e-7), f64 <= 2 ulp (4.5e-16) for normal
//! results; in the subnormal range the absolute error is at most one subnormal ulp.
//! Special values: `exp(NaN) = NaN`, `exp(-inf) = 0`, `exp(+inf) = +inf`, overflow gives `+inf`,
//! underflow below the smallest subnormal gives `+0`.
//!
//! # tanh
//! `tanh(z) = sign(z) (1 - e) / (1 + e)` with `e = exp(-2|z|)` for `|z| >= 0.625`; below, the
//! Cephes odd polynomial (f32) or rational function (f64), which keep the relative error small
//! near 0 where the exp form would cancel. `tanh(NaN) = NaN`, `tanh(+-inf) = +-1`.

// The polynomial coefficients are kept digit for digit as published (Cephes), even where the
// literal has more digits than the type holds.
#![allow(clippy::excessive_precision)]

use crate::simd::Lanes;
use pulp::Simd;

/// Per-type constants of the exp / tanh approximations.
pub(crate) trait ExpConsts: Sized {
    const LOG2E: Self;
    const LN2_HI: Self;
    const LN2_LO: Self;
    /// Largest x with finite exp(x).
    const MAX_ARG: Self;
    /// Below this exp(x) rounds to +0.
    const MIN_ARG: Self;
    /// From this x on, `n = round(x log2 e)` has `2^n` normal (f32: -87 > -126 ln 2; f64:
    /// -708 > -1022 ln 2): the domain of [`exp_vec_nonpositive`].
    const NORMAL_MIN_ARG: Self;
}

impl ExpConsts for f32 {
    const LOG2E: f32 = core::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_359_4; // 0.693359375, 9 significant bits
    const LN2_LO: f32 = -2.121_944_4e-4;
    const MAX_ARG: f32 = 88.722_83;
    const MIN_ARG: f32 = -103.972_08;
    const NORMAL_MIN_ARG: f32 = -87.0;
}

impl ExpConsts for f64 {
    const LOG2E: f64 = core::f64::consts::LOG2_E;
    const LN2_HI: f64 = 6.931_457_519_531_25e-1;
    const LN2_LO: f64 = 1.428_606_820_309_417_232_12e-6;
    const MAX_ARG: f64 = 709.782_712_893_384;
    const MIN_ARG: f64 = -745.133_219_101_941_2;
    const NORMAL_MIN_ARG: f64 = -708.0;
}

/// `e^r` for `|r| <= ln2 / 2` (plus a little slack), per type.
pub(crate) trait ExpPoly<S: Simd>: Lanes<S> {
    fn exp_reduced(s: S, r: Self::Vec<S>) -> Self::Vec<S>;
    /// tanh for |z| < 0.625.
    fn tanh_small(s: S, z: Self::Vec<S>) -> Self::Vec<S>;
}

impl<S: Simd> ExpPoly<S> for f32 {
    #[inline(always)]
    fn exp_reduced(s: S, r: S::f32s) -> S::f32s {
        // Cephes expf: e^r = 1 + r + r^2 P(r).
        let mut p = s.splat_f32s(1.987_569_1e-4);
        p = s.mul_add_e_f32s(p, r, s.splat_f32s(1.398_2e-3));
        p = s.mul_add_e_f32s(p, r, s.splat_f32s(8.333_452e-3));
        p = s.mul_add_e_f32s(p, r, s.splat_f32s(4.166_579_6e-2));
        p = s.mul_add_e_f32s(p, r, s.splat_f32s(1.666_666_5e-1));
        p = s.mul_add_e_f32s(p, r, s.splat_f32s(5.000_000_1e-1));
        let r2 = s.mul_f32s(r, r);
        s.add_f32s(s.mul_add_e_f32s(p, r2, r), s.splat_f32s(1.0))
    }

    #[inline(always)]
    fn tanh_small(s: S, z: S::f32s) -> S::f32s {
        // Cephes tanhf: z + z^3 P(z^2).
        let z2 = s.mul_f32s(z, z);
        let mut p = s.splat_f32s(-5.704_988_7e-3);
        p = s.mul_add_e_f32s(p, z2, s.splat_f32s(2.063_908_8e-2));
        p = s.mul_add_e_f32s(p, z2, s.splat_f32s(-5.373_971_6e-2));
        p = s.mul_add_e_f32s(p, z2, s.splat_f32s(1.333_144_2e-1));
        p = s.mul_add_e_f32s(p, z2, s.splat_f32s(-3.333_328_2e-1));
        s.mul_add_e_f32s(s.mul_f32s(p, z2), z, z)
    }
}

impl<S: Simd> ExpPoly<S> for f64 {
    #[inline(always)]
    fn exp_reduced(s: S, r: S::f64s) -> S::f64s {
        // Taylor series to degree 13, Horner form, coefficients 1/k!.
        const INV_FACT: [f64; 14] = [
            1.0,
            1.0,
            0.5,
            1.666_666_666_666_666_6e-1,
            4.166_666_666_666_666_4e-2,
            8.333_333_333_333_333e-3,
            1.388_888_888_888_888_9e-3,
            1.984_126_984_126_984e-4,
            2.480_158_730_158_73e-5,
            2.755_731_922_398_589e-6,
            2.755_731_922_398_589_3e-7,
            2.505_210_838_544_172e-8,
            2.087_675_698_786_81e-9,
            1.605_904_383_682_161_3e-10,
        ];
        let mut p = s.splat_f64s(INV_FACT[13]);
        let mut k = 12;
        while k > 0 {
            p = s.mul_add_e_f64s(p, r, s.splat_f64s(INV_FACT[k]));
            k -= 1;
        }
        s.mul_add_e_f64s(p, r, s.splat_f64s(1.0))
    }

    #[inline(always)]
    fn tanh_small(s: S, z: S::f64s) -> S::f64s {
        // Cephes tanh: z + z^3 P(z^2) / Q(z^2).
        let z2 = s.mul_f64s(z, z);
        let mut p = s.splat_f64s(-9.643_991_794_250_523e-1);
        p = s.mul_add_e_f64s(p, z2, s.splat_f64s(-9.928_772_310_019_186e1));
        p = s.mul_add_e_f64s(p, z2, s.splat_f64s(-1.614_687_684_417_084_5e3));
        let mut q = s.add_f64s(z2, s.splat_f64s(1.128_116_784_916_329_3e2));
        q = s.mul_add_e_f64s(q, z2, s.splat_f64s(2.235_488_390_601_004_6e3));
        q = s.mul_add_e_f64s(q, z2, s.splat_f64s(4.844_063_053_251_255e3));
        let ratio = s.div_f64s(s.mul_f64s(p, z2), q);
        s.mul_add_e_f64s(ratio, z, z)
    }
}

/// Vector exp. See the module docs for accuracy and special values.
#[inline(always)]
pub(crate) fn exp_vec<S: Simd, T: ExpPoly<S> + ExpConsts>(s: S, x: T::Vec<S>) -> T::Vec<S> {
    let xc = T::vmin(
        s,
        T::vmax(s, x, T::splat(s, T::MIN_ARG)),
        T::splat(s, T::MAX_ARG),
    );
    let n = T::round(s, T::vmul(s, xc, T::splat(s, T::LOG2E)));
    let neg_n = T::vsub(s, T::splat(s, T::ZERO), n);
    let r = T::vfma(s, neg_n, T::splat(s, T::LN2_HI), xc);
    let r = T::vfma(s, neg_n, T::splat(s, T::LN2_LO), r);
    let y = T::exp_reduced(s, r);
    // 2^n = 2^n1 2^n2 with n1 = round(n / 2): both halves stay in the normal range.
    let n1 = T::round(s, T::vmul(s, n, T::splat(s, T::from_f64(0.5))));
    let n2 = T::vsub(s, n, n1);
    let y = T::vmul(s, T::vmul(s, y, T::exp2_int(s, n1)), T::exp2_int(s, n2));
    // Special cases, from the unclamped argument.
    let y = T::select(
        s,
        T::greater_than(s, x, T::splat(s, T::MAX_ARG)),
        T::splat(s, T::from_f64(f64::INFINITY)),
        y,
    );
    let y = T::select(
        s,
        T::less_than(s, x, T::splat(s, T::MIN_ARG)),
        T::splat(s, T::ZERO),
        y,
    );
    T::select(s, T::is_not_nan(s, x), y, x)
}

/// [`exp_vec`] for arguments known to lie in `[T::NORMAL_MIN_ARG, 0]` (no NaN): the same bits,
/// with about 40 % fewer operations. There the clamps and the special-case selects of
/// `exp_vec` change nothing, and its two-factor scaling `(y 2^n1) 2^n2` equals `y 2^n`: `y =
/// e^r` is in [0.7, 1.42], so `y 2^n1` (n1 = round(n / 2) >= -63) is normal and exact, and
/// both forms round the same exact product `y 2^n` once (`2^n` itself is normal here).
/// Outside the domain the result is wrong, not merely less accurate: callers must prove it.
#[inline(always)]
pub(crate) fn exp_vec_nonpositive<S: Simd, T: ExpPoly<S> + ExpConsts>(
    s: S,
    x: T::Vec<S>,
) -> T::Vec<S> {
    let n = T::round(s, T::vmul(s, x, T::splat(s, T::LOG2E)));
    let neg_n = T::vsub(s, T::splat(s, T::ZERO), n);
    let r = T::vfma(s, neg_n, T::splat(s, T::LN2_HI), x);
    let r = T::vfma(s, neg_n, T::splat(s, T::LN2_LO), r);
    T::vmul(s, T::exp_reduced(s, r), T::exp2_int(s, n))
}

/// Vector tanh. See the module docs.
#[inline(always)]
pub(crate) fn tanh_vec<S: Simd, T: ExpPoly<S> + ExpConsts>(s: S, z: T::Vec<S>) -> T::Vec<S> {
    let a = T::vabs(s, z);
    let e = exp_vec::<S, T>(s, T::vmul(s, a, T::splat(s, T::from_f64(-2.0))));
    let one = T::splat(s, T::ONE);
    let big = T::vdiv(s, T::vsub(s, one, e), T::vadd(s, one, e));
    let big = T::with_sign_of(s, big, z);
    let small = T::tanh_small(s, z);
    T::select(
        s,
        T::less_than(s, a, T::splat(s, T::from_f64(0.625))),
        small,
        big,
    )
}
