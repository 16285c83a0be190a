//! Per-column statistics and the centred copy of row-major data: the O(n d) passes before an
//! rbf assembly (the shift of docs/design.md section 2).
//!
//! Plain loops, compiled per instruction set by pulp's dispatch so that the compiler
//! vectorises them across columns (the conversions to f64 included). Each column accumulates
//! in row order and nothing is fused, so every instruction set gives the bits of the scalar
//! loop ([`crate::reference`] twins, compared in the property tests).

use crate::Float;
use core::mem::MaybeUninit;
use pulp::{Simd, WithSimd};

/// `acc[k] += data[i][k]` (in f64) for every row i (of `acc.len()` columns), in row order;
/// with `mean`, `acc[k] += |data[i][k] - mean[k]|` instead.
pub(crate) struct ColumnSums<'a, T> {
    pub data: &'a [T],
    pub mean: Option<&'a [f64]>,
    pub acc: &'a mut [f64],
}

impl<T: Float> WithSimd for ColumnSums<'_, T> {
    type Output = ();
    #[inline(always)]
    fn with_simd<S: Simd>(self, _s: S) {
        let ColumnSums { data, mean, acc } = self;
        let d = acc.len();
        assert!(d > 0 && data.len() % d == 0, "column_sums: bad shape");
        match mean {
            None => {
                for row in data.chunks_exact(d) {
                    for (a, v) in acc.iter_mut().zip(row) {
                        *a += v.to_f64();
                    }
                }
            }
            Some(mean) => {
                let mean = &mean[..d];
                for row in data.chunks_exact(d) {
                    for ((a, v), m) in acc.iter_mut().zip(row).zip(mean) {
                        *a += (v.to_f64() - m).abs();
                    }
                }
            }
        }
    }
}

/// `out[i][k] = T(src[i][k] - shift[k])` (the difference in f64, rounded once), every
/// element of `out` written.
pub(crate) struct CentreRows<'a, T> {
    pub src: &'a [T],
    pub shift: &'a [f64],
    pub out: &'a mut [MaybeUninit<T>],
}

impl<T: Float> WithSimd for CentreRows<'_, T> {
    type Output = ();
    #[inline(always)]
    fn with_simd<S: Simd>(self, _s: S) {
        let CentreRows { src, shift, out } = self;
        let d = shift.len();
        assert!(
            d > 0 && src.len() == out.len() && src.len() % d == 0,
            "centre_rows: bad shape"
        );
        for (orow, row) in out.chunks_exact_mut(d).zip(src.chunks_exact(d)) {
            for (o, (v, s)) in orow.iter_mut().zip(row.iter().zip(shift)) {
                o.write(T::from_f64(v.to_f64() - s));
            }
        }
    }
}

/// Whether every element is finite (no NaN, no infinity): one branch-free pass.
pub(crate) struct AllFinite<'a, T> {
    pub data: &'a [T],
}

impl<T: Float> WithSimd for AllFinite<'_, T> {
    type Output = bool;
    #[inline(always)]
    fn with_simd<S: Simd>(self, _s: S) -> bool {
        // A fold, not a search: no early exit, so the loop vectorises.
        self.data
            .iter()
            .fold(true, |ok, &v| ok & v.to_f64().is_finite())
    }
}
