//! Elementwise kernels whose best SIMD form is what the compiler makes of the plain loop once it
//! is compiled with the instruction set's features: the loop is written once, inside
//! `with_simd` (so pulp compiles it per instruction set, AVX-512 and AVX2 included, with the
//! target features enabled), and the scalar twin in [`crate::reference`] is the same loop
//! compiled for the baseline. Same IEEE operations in the same order: bitwise the same results.

use crate::simd::Float;
use pulp::{Simd, WithSimd};

/// `out[i] *= a[i]`.
#[inline(always)]
pub(crate) fn hadamard_loop<T: Float>(out: &mut [T], a: &[T]) {
    assert_eq!(out.len(), a.len(), "hadamard: lengths");
    for (x, y) in out.iter_mut().zip(a) {
        *x = *x * *y;
    }
}

/// The refinement test of the centred rbf Gram tiles on one row: whether any
/// `fl(s - 2 g) < tau s` with `s = fl(r + c_j)`, `g = row[j]`; branch-free, so that it
/// vectorises (no fused operations: Rust does not contract them).
#[inline(always)]
pub(crate) fn any_cancelled_loop<T: Float>(row: &[T], cs: &[T], r: T, tau: T) -> bool {
    assert_eq!(row.len(), cs.len(), "any_cancelled: lengths");
    row.iter().zip(cs).fold(false, |acc, (&g, &c)| {
        let s = r + c;
        acc | (s - (g + g) < tau * s)
    })
}

pub(crate) struct HadamardOp<'a, T> {
    pub out: &'a mut [T],
    pub a: &'a [T],
}

impl<T: Float> WithSimd for HadamardOp<'_, T> {
    type Output = ();
    #[inline(always)]
    fn with_simd<S: Simd>(self, _s: S) {
        hadamard_loop(self.out, self.a)
    }
}

pub(crate) struct AnyCancelledOp<'a, T> {
    pub row: &'a [T],
    pub cs: &'a [T],
    pub r: T,
    pub tau: T,
}

impl<T: Float> WithSimd for AnyCancelledOp<'_, T> {
    type Output = bool;
    #[inline(always)]
    fn with_simd<S: Simd>(self, _s: S) -> bool {
        any_cancelled_loop(self.row, self.cs, self.r, self.tau)
    }
}
