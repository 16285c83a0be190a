//! `Float`: the two element types (f32, f64), and `Lanes<S>`: their SIMD vectors under one name,
//! so that each micro-kernel is written once, generically, and instantiated for both types and
//! every instruction set pulp dispatches to.
//!
//! Everything here is `#[inline(always)]`: it must be inlined into the `WithSimd::with_simd` body
//! that pulp compiles with the target features enabled, or it would run without them.

use core::fmt::Debug;
use pulp::Simd;

mod sealed {
    pub trait Sealed {}
    impl Sealed for f32 {}
    impl Sealed for f64 {}
}

/// A floating-point element type the kernels are instantiated for: `f32` or `f64` (sealed).
pub trait Float:
    crate::SimdKernels
    + sealed::Sealed
    + Copy
    + Send
    + Sync
    + Debug
    + PartialOrd
    + Default
    + 'static
    + core::ops::Add<Output = Self>
    + core::ops::Sub<Output = Self>
    + core::ops::Mul<Output = Self>
    + core::ops::Div<Output = Self>
    + core::ops::Neg<Output = Self>
    + core::ops::AddAssign
{
    /// 0.
    const ZERO: Self;
    /// 1.
    const ONE: Self;
    /// Widening (exact) conversion to f64.
    fn to_f64(self) -> f64;
    /// Rounding conversion from f64.
    fn from_f64(v: f64) -> Self;
    /// Absolute value.
    fn abs(self) -> Self;
    /// `self * a + b`, fused (one rounding).
    fn mul_add(self, a: Self, b: Self) -> Self;

    #[doc(hidden)]
    type Vec<S: Simd>: Copy;
    #[doc(hidden)]
    type Mask<S: Simd>: Copy;
}

impl Float for f32 {
    const ZERO: Self = 0.0;
    const ONE: Self = 1.0;
    #[inline(always)]
    fn to_f64(self) -> f64 {
        self as f64
    }
    #[inline(always)]
    fn from_f64(v: f64) -> Self {
        v as f32
    }
    #[inline(always)]
    fn abs(self) -> Self {
        f32::abs(self)
    }
    #[inline(always)]
    fn mul_add(self, a: Self, b: Self) -> Self {
        f32::mul_add(self, a, b)
    }
    type Vec<S: Simd> = S::f32s;
    type Mask<S: Simd> = S::m32s;
}

impl Float for f64 {
    const ZERO: Self = 0.0;
    const ONE: Self = 1.0;
    #[inline(always)]
    fn to_f64(self) -> f64 {
        self
    }
    #[inline(always)]
    fn from_f64(v: f64) -> Self {
        v
    }
    #[inline(always)]
    fn abs(self) -> Self {
        f64::abs(self)
    }
    #[inline(always)]
    fn mul_add(self, a: Self, b: Self) -> Self {
        f64::mul_add(self, a, b)
    }
    type Vec<S: Simd> = S::f64s;
    type Mask<S: Simd> = S::m64s;
}

/// The SIMD operations the micro-kernels need, for one element type, on one instruction set.
///
/// `V` is a register of `LANES` elements. The methods mirror pulp's `*_f32s` / `*_f64s` methods;
/// `exp` and `tanh` are ours (pulp has no transcendental functions).
pub(crate) trait Lanes<S: Simd>: Float {
    const LANES: usize;
    fn as_simd(slice: &[Self]) -> (&[Self::Vec<S>], &[Self]);
    fn as_mut_simd(slice: &mut [Self]) -> (&mut [Self::Vec<S>], &mut [Self]);
    fn splat(s: S, v: Self) -> Self::Vec<S>;
    fn load_partial(s: S, v: &[Self]) -> Self::Vec<S>;
    fn store_partial(s: S, dst: &mut [Self], v: Self::Vec<S>);
    fn vadd(s: S, a: Self::Vec<S>, b: Self::Vec<S>) -> Self::Vec<S>;
    fn vsub(s: S, a: Self::Vec<S>, b: Self::Vec<S>) -> Self::Vec<S>;
    fn vmul(s: S, a: Self::Vec<S>, b: Self::Vec<S>) -> Self::Vec<S>;
    fn vdiv(s: S, a: Self::Vec<S>, b: Self::Vec<S>) -> Self::Vec<S>;
    /// `a * b + c`: one rounding on SIMD backends (FMA); pulp's scalar fallback rounds twice
    /// (fused multiply-add in software would be far slower), so bounds assume two.
    fn vfma(s: S, a: Self::Vec<S>, b: Self::Vec<S>, c: Self::Vec<S>) -> Self::Vec<S>;
    /// Maximum; returns `b` where either is NaN (x86 semantics, relied on nowhere).
    fn vmax(s: S, a: Self::Vec<S>, b: Self::Vec<S>) -> Self::Vec<S>;
    fn vmin(s: S, a: Self::Vec<S>, b: Self::Vec<S>) -> Self::Vec<S>;
    fn vabs(s: S, a: Self::Vec<S>) -> Self::Vec<S>;
    fn vsum(s: S, a: Self::Vec<S>) -> Self;
    fn less_than(s: S, a: Self::Vec<S>, b: Self::Vec<S>) -> Self::Mask<S>;
    fn greater_than(s: S, a: Self::Vec<S>, b: Self::Vec<S>) -> Self::Mask<S>;
    /// Lanes where `a == a`, i.e. not NaN.
    fn is_not_nan(s: S, a: Self::Vec<S>) -> Self::Mask<S>;
    fn select(s: S, m: Self::Mask<S>, t: Self::Vec<S>, f: Self::Vec<S>) -> Self::Vec<S>;
    /// The sign bit of `a` copied onto `magnitude` (whose sign bit must be clear).
    fn with_sign_of(s: S, magnitude: Self::Vec<S>, a: Self::Vec<S>) -> Self::Vec<S>;
    /// `2^n` for vectors of integral values `n` (as floats) in the normal exponent range.
    fn exp2_int(s: S, n: Self::Vec<S>) -> Self::Vec<S>;
    /// Round to the nearest integer, ties to even, for |x| < 2^(mantissa bits - 1).
    #[inline(always)]
    fn round(s: S, x: Self::Vec<S>) -> Self::Vec<S> {
        // Adding 1.5 * 2^p pushes the fraction bits out of the mantissa, so the FPU's own
        // round-to-nearest-even does the rounding; subtracting gives the integer back exactly.
        // (pulp 0.22.3's V4 `round_f32x16` is wrong, so we do not use it.)
        let magic = Self::splat(s, Self::ROUND_MAGIC);
        Self::vsub(s, Self::vadd(s, x, magic), magic)
    }
    /// 1.5 * 2^(mantissa bits).
    const ROUND_MAGIC: Self;
}

/// `len <= LANES` values of `v` from `off` as one register (full load when `len == LANES`,
/// else a partial one: the other lanes are zero).
#[inline(always)]
pub(crate) fn ld<S: Simd, T: Lanes<S>>(s: S, v: &[T], off: usize, len: usize) -> T::Vec<S> {
    let src = &v[off..off + len];
    if len == T::LANES {
        T::as_simd(src).0[0]
    } else {
        T::load_partial(s, src)
    }
}

/// The first `len <= LANES` lanes of `x` into `v` from `off`.
#[inline(always)]
pub(crate) fn st<S: Simd, T: Lanes<S>>(s: S, v: &mut [T], off: usize, len: usize, x: T::Vec<S>) {
    let dst = &mut v[off..off + len];
    if len == T::LANES {
        T::as_mut_simd(dst).0[0] = x;
    } else {
        T::store_partial(s, dst, x);
    }
}

impl<S: Simd> Lanes<S> for f32 {
    const LANES: usize = S::F32_LANES;
    const ROUND_MAGIC: f32 = 12582912.0; // 1.5 * 2^23
    #[inline(always)]
    fn as_simd(slice: &[f32]) -> (&[S::f32s], &[f32]) {
        S::as_simd_f32s(slice)
    }
    #[inline(always)]
    fn as_mut_simd(slice: &mut [f32]) -> (&mut [S::f32s], &mut [f32]) {
        S::as_mut_simd_f32s(slice)
    }
    #[inline(always)]
    fn splat(s: S, v: f32) -> S::f32s {
        s.splat_f32s(v)
    }
    #[inline(always)]
    fn load_partial(s: S, v: &[f32]) -> S::f32s {
        s.partial_load_f32s(v)
    }
    #[inline(always)]
    fn store_partial(s: S, dst: &mut [f32], v: S::f32s) {
        s.partial_store_f32s(dst, v)
    }
    #[inline(always)]
    fn vadd(s: S, a: S::f32s, b: S::f32s) -> S::f32s {
        s.add_f32s(a, b)
    }
    #[inline(always)]
    fn vsub(s: S, a: S::f32s, b: S::f32s) -> S::f32s {
        s.sub_f32s(a, b)
    }
    #[inline(always)]
    fn vmul(s: S, a: S::f32s, b: S::f32s) -> S::f32s {
        s.mul_f32s(a, b)
    }
    #[inline(always)]
    fn vdiv(s: S, a: S::f32s, b: S::f32s) -> S::f32s {
        s.div_f32s(a, b)
    }
    #[inline(always)]
    fn vfma(s: S, a: S::f32s, b: S::f32s, c: S::f32s) -> S::f32s {
        s.mul_add_e_f32s(a, b, c)
    }
    #[inline(always)]
    fn vmax(s: S, a: S::f32s, b: S::f32s) -> S::f32s {
        s.max_f32s(a, b)
    }
    #[inline(always)]
    fn vmin(s: S, a: S::f32s, b: S::f32s) -> S::f32s {
        s.min_f32s(a, b)
    }
    #[inline(always)]
    fn vabs(s: S, a: S::f32s) -> S::f32s {
        s.abs_f32s(a)
    }
    #[inline(always)]
    fn vsum(s: S, a: S::f32s) -> f32 {
        s.reduce_sum_f32s(a)
    }
    #[inline(always)]
    fn less_than(s: S, a: S::f32s, b: S::f32s) -> S::m32s {
        s.less_than_f32s(a, b)
    }
    #[inline(always)]
    fn greater_than(s: S, a: S::f32s, b: S::f32s) -> S::m32s {
        s.greater_than_f32s(a, b)
    }
    #[inline(always)]
    fn is_not_nan(s: S, a: S::f32s) -> S::m32s {
        s.equal_f32s(a, a)
    }
    #[inline(always)]
    fn select(s: S, m: S::m32s, t: S::f32s, f: S::f32s) -> S::f32s {
        s.select_f32s(m, t, f)
    }
    #[inline(always)]
    fn with_sign_of(s: S, magnitude: S::f32s, a: S::f32s) -> S::f32s {
        let sign = s.and_f32s(a, s.splat_f32s(-0.0));
        s.or_f32s(magnitude, sign)
    }
    #[inline(always)]
    fn exp2_int(s: S, n: S::f32s) -> S::f32s {
        // n + magic has n (two's complement) in its low mantissa bits; add the exponent
        // bias and shift it into the exponent field.
        let t = s.transmute_u32s_f32s(s.add_f32s(n, s.splat_f32s(12582912.0)));
        let biased = s.sub_u32s(t, s.splat_u32s(12582912.0f32.to_bits().wrapping_sub(127)));
        s.transmute_f32s_u32s(s.wrapping_dyn_shl_u32s(biased, s.splat_u32s(23)))
    }
}

impl<S: Simd> Lanes<S> for f64 {
    const LANES: usize = S::F64_LANES;
    const ROUND_MAGIC: f64 = 6755399441055744.0; // 1.5 * 2^52
    #[inline(always)]
    fn as_simd(slice: &[f64]) -> (&[S::f64s], &[f64]) {
        S::as_simd_f64s(slice)
    }
    #[inline(always)]
    fn as_mut_simd(slice: &mut [f64]) -> (&mut [S::f64s], &mut [f64]) {
        S::as_mut_simd_f64s(slice)
    }
    #[inline(always)]
    fn splat(s: S, v: f64) -> S::f64s {
        s.splat_f64s(v)
    }
    #[inline(always)]
    fn load_partial(s: S, v: &[f64]) -> S::f64s {
        s.partial_load_f64s(v)
    }
    #[inline(always)]
    fn store_partial(s: S, dst: &mut [f64], v: S::f64s) {
        s.partial_store_f64s(dst, v)
    }
    #[inline(always)]
    fn vadd(s: S, a: S::f64s, b: S::f64s) -> S::f64s {
        s.add_f64s(a, b)
    }
    #[inline(always)]
    fn vsub(s: S, a: S::f64s, b: S::f64s) -> S::f64s {
        s.sub_f64s(a, b)
    }
    #[inline(always)]
    fn vmul(s: S, a: S::f64s, b: S::f64s) -> S::f64s {
        s.mul_f64s(a, b)
    }
    #[inline(always)]
    fn vdiv(s: S, a: S::f64s, b: S::f64s) -> S::f64s {
        s.div_f64s(a, b)
    }
    #[inline(always)]
    fn vfma(s: S, a: S::f64s, b: S::f64s, c: S::f64s) -> S::f64s {
        s.mul_add_e_f64s(a, b, c)
    }
    #[inline(always)]
    fn vmax(s: S, a: S::f64s, b: S::f64s) -> S::f64s {
        s.max_f64s(a, b)
    }
    #[inline(always)]
    fn vmin(s: S, a: S::f64s, b: S::f64s) -> S::f64s {
        s.min_f64s(a, b)
    }
    #[inline(always)]
    fn vabs(s: S, a: S::f64s) -> S::f64s {
        s.abs_f64s(a)
    }
    #[inline(always)]
    fn vsum(s: S, a: S::f64s) -> f64 {
        s.reduce_sum_f64s(a)
    }
    #[inline(always)]
    fn less_than(s: S, a: S::f64s, b: S::f64s) -> S::m64s {
        s.less_than_f64s(a, b)
    }
    #[inline(always)]
    fn greater_than(s: S, a: S::f64s, b: S::f64s) -> S::m64s {
        s.greater_than_f64s(a, b)
    }
    #[inline(always)]
    fn is_not_nan(s: S, a: S::f64s) -> S::m64s {
        s.equal_f64s(a, a)
    }
    #[inline(always)]
    fn select(s: S, m: S::m64s, t: S::f64s, f: S::f64s) -> S::f64s {
        s.select_f64s(m, t, f)
    }
    #[inline(always)]
    fn with_sign_of(s: S, magnitude: S::f64s, a: S::f64s) -> S::f64s {
        let sign = s.and_f64s(a, s.splat_f64s(-0.0));
        s.or_f64s(magnitude, sign)
    }
    #[inline(always)]
    fn exp2_int(s: S, n: S::f64s) -> S::f64s {
        // As for f32; the shift by 52 is a multiplication because pulp's portable trait
        // has no 64-bit shift (vpmullq on AVX-512, scalar on AVX2).
        let t = s.transmute_u64s_f64s(s.add_f64s(n, s.splat_f64s(6755399441055744.0)));
        let biased = s.sub_u64s(
            t,
            s.splat_u64s(6755399441055744.0f64.to_bits().wrapping_sub(1023)),
        );
        s.transmute_f64s_u64s(s.mul_u64s(biased, s.splat_u64s(1u64 << 52)))
    }
}

/// The AVX2 + FMA token when the instruction set pulp dispatched to is `V3` or `V4` (AVX-512
/// includes AVX2), `None` on `Scalar`: how a kernel that needs instructions pulp's generic
/// [`Simd`] lacks (shuffles, permutes, prefetch) specialises inside its
/// `WithSimd::with_simd::<S>`. Decided by the concrete type `S`, so after monomorphisation it
/// is a constant and the other branch is compiled out; the intrinsics called with the token
/// must be `#[inline(always)]` so that they land in the body pulp compiled with `S`'s target
/// features.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
pub(crate) fn x86_v3<S: Simd>(s: S) -> Option<pulp::x86::V3> {
    use core::any::Any;
    let s: &dyn Any = &s;
    if let Some(&v3) = s.downcast_ref::<pulp::x86::V3>() {
        return Some(v3);
    }
    s.downcast_ref::<pulp::x86::V4>().map(|v4| **v4)
}

/// The AVX-512 token when the instruction set pulp dispatched to is `V4`, `None` otherwise:
/// as [`x86_v3`], for the kernels with a path of their own on 512-bit registers.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
pub(crate) fn x86_v4<S: Simd>(s: S) -> Option<pulp::x86::V4> {
    use core::any::Any;
    let s: &dyn Any = &s;
    s.downcast_ref::<pulp::x86::V4>().copied()
}

#[cfg(all(test, target_arch = "x86_64"))]
mod tests {
    use pulp::Arch;

    /// The special kernels' token: there exactly when pulp dispatches to V3 or V4.
    #[test]
    fn x86_v3_token_follows_the_dispatch() {
        struct Probe;
        impl pulp::WithSimd for Probe {
            type Output = bool;
            #[inline(always)]
            fn with_simd<S: pulp::Simd>(self, s: S) -> bool {
                super::x86_v3(s).is_some()
            }
        }
        for arch in crate::available_isas() {
            let want = !matches!(arch, Arch::Scalar);
            assert_eq!(arch.dispatch(Probe), want, "{}", crate::isa_name(arch));
        }
    }
}
