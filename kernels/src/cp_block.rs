//! The elementwise passes of one interaction block of the block low-rank fusion model
//! (mmfuse's `lmf::blockwise`): given each member modality's projections of a row block, the
//! block's contribution to the outputs (forward) and the gradients of those projections and
//! of the block's fusion weights (backward).
//!
//! A block of rank `r` and output size `h` over members `m` reads, per row, `r h` consecutive
//! values of each member's projection buffer (row-major with that buffer's own stride,
//! starting at the block's column offset); value `i h + k` is rank `i`, output `k`:
//!
//! ```text
//! out[k]      += sum_i w[i] prod_m P_m[i h + k]
//! dP_m[i h+k]  = g[k] w[i] prod_{m' != m} P_m'[i h + k]
//! dw[i]       += sum_k g[k] prod_m P_m[i h + k]
//! ```
//!
//! As in [`crate::elementwise`], the loops are written once inside `with_simd`, so pulp compiles
//! them per instruction set with its target features (the products over `r h` contiguous
//! values vectorise); the scalar twins in [`crate::reference`] are the same loops compiled for
//! the baseline, so every instruction set gives the same bits.

use crate::simd::Float;
use pulp::{Simd, WithSimd};

/// One member's projections: the buffer (row-major, `stride` values per row) and the column
/// where the block's `r h` values start in each row.
#[derive(Clone, Copy, Debug)]
pub struct CpPart<'a, T> {
    /// Row-major projections of the row block, `rows x stride`.
    pub proj: &'a [T],
    /// Values per row of `proj`.
    pub stride: usize,
    /// Column of the block's first value in each row.
    pub offset: usize,
}

/// The mutable twin of [`CpPart`]: where a member's projection gradients go.
#[derive(Debug)]
pub struct CpPartMut<'a, T> {
    /// Row-major gradient buffer, `rows x stride`.
    pub grad: &'a mut [T],
    /// Values per row of `grad`.
    pub stride: usize,
    /// Column of the block's first value in each row.
    pub offset: usize,
}

fn check_part(len: usize, stride: usize, offset: usize, rows: usize, rh: usize, what: &str) {
    assert!(
        offset + rh <= stride,
        "cp_block: {what} offset + r h exceeds its stride"
    );
    assert!(
        rows == 0 || len >= (rows - 1) * stride + offset + rh,
        "cp_block: {what} buffer too short for {rows} rows"
    );
}

/// `out[row][k] += sum_i w[i] prod_m parts[m][row][i h + k]` for `rows` rows; `scratch` holds
/// at least `r h` values.
#[inline(always)]
pub(crate) fn forward_loop<T: Float>(
    parts: &[CpPart<'_, T>],
    rows: usize,
    rank: usize,
    h: usize,
    w: &[T],
    out: &mut [T],
    scratch: &mut [T],
) {
    let rh = rank * h;
    assert!(!parts.is_empty(), "cp_block: no members");
    assert_eq!(w.len(), rank, "cp_block: fusion weights");
    assert!(out.len() >= rows * h, "cp_block: outputs");
    assert!(scratch.len() >= rh, "cp_block: scratch");
    for p in parts {
        check_part(p.proj.len(), p.stride, p.offset, rows, rh, "projection");
    }
    let prod = &mut scratch[..rh];
    for row in 0..rows {
        let first = &parts[0];
        let start = row * first.stride + first.offset;
        prod.copy_from_slice(&first.proj[start..start + rh]);
        for p in &parts[1..] {
            let start = row * p.stride + p.offset;
            for (x, &y) in prod.iter_mut().zip(&p.proj[start..start + rh]) {
                *x = *x * y;
            }
        }
        let o = &mut out[row * h..row * h + h];
        for (i, &wi) in w.iter().enumerate() {
            for (ok, &v) in o.iter_mut().zip(&prod[i * h..i * h + h]) {
                *ok += wi * v;
            }
        }
    }
}

/// The backward pass of [`forward_loop`]: writes every member's projection gradients (the
/// block's columns of `grads[m]`) and adds the fusion weights' gradients to `gw`. `g` is
/// `rows x h`; `scratch` holds at least `(members + 1) r h` values.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
pub(crate) fn backward_loop<T: Float>(
    parts: &[CpPart<'_, T>],
    grads: &mut [CpPartMut<'_, T>],
    rows: usize,
    rank: usize,
    h: usize,
    w: &[T],
    g: &[T],
    gw: &mut [T],
    scratch: &mut [T],
) {
    let rh = rank * h;
    let nm = parts.len();
    assert!(nm > 0, "cp_block: no members");
    assert_eq!(grads.len(), nm, "cp_block: one gradient buffer per member");
    assert_eq!(w.len(), rank, "cp_block: fusion weights");
    assert_eq!(gw.len(), rank, "cp_block: fusion weight gradients");
    assert!(g.len() >= rows * h, "cp_block: output gradients");
    assert!(scratch.len() >= (nm + 1) * rh, "cp_block: scratch");
    for p in parts {
        check_part(p.proj.len(), p.stride, p.offset, rows, rh, "projection");
    }
    for p in grads.iter() {
        check_part(p.grad.len(), p.stride, p.offset, rows, rh, "gradient");
    }
    // prefix[m] = prod_{m' < m} P_m' (prefix[0] = 1), in scratch rows 0..=nm.
    let (prefix, _) = scratch.split_at_mut((nm + 1) * rh);
    for row in 0..rows {
        let gk = &g[row * h..row * h + h];
        prefix[..rh].iter_mut().for_each(|v| *v = T::ONE);
        for (m, p) in parts.iter().enumerate() {
            let start = row * p.stride + p.offset;
            let (done, next) = prefix.split_at_mut((m + 1) * rh);
            for ((x, &a), &b) in next[..rh]
                .iter_mut()
                .zip(&done[m * rh..])
                .zip(&p.proj[start..start + rh])
            {
                *x = a * b;
            }
        }
        // dw[i] += sum_k g[k] prod[i h + k].
        let prod = &prefix[nm * rh..(nm + 1) * rh];
        for (i, gwi) in gw.iter_mut().enumerate() {
            let mut s = T::ZERO;
            for (&gv, &v) in gk.iter().zip(&prod[i * h..i * h + h]) {
                s += gv * v;
            }
            *gwi += s;
        }
        // Members from the last to the first, with the suffix product kept in the slot of
        // prefix[nm] (no longer needed once dw is done): dP_m = g w prefix[m] suffix[m + 1].
        let (pre, suffix) = prefix.split_at_mut(nm * rh);
        let suffix = &mut suffix[..rh];
        suffix.iter_mut().for_each(|v| *v = T::ONE);
        for m in (0..nm).rev() {
            let q = &mut grads[m];
            let start = row * q.stride + q.offset;
            let dst = &mut q.grad[start..start + rh];
            let pm = &pre[m * rh..(m + 1) * rh];
            for (i, &wi) in w.iter().enumerate() {
                let seg = i * h..i * h + h;
                for (((d, &a), &b), &gv) in dst[seg.clone()]
                    .iter_mut()
                    .zip(&pm[seg.clone()])
                    .zip(&suffix[seg.clone()])
                    .zip(gk)
                {
                    *d = gv * wi * (a * b);
                }
            }
            if m > 0 {
                let p = &parts[m];
                let start = row * p.stride + p.offset;
                for (s, &v) in suffix.iter_mut().zip(&p.proj[start..start + rh]) {
                    *s = *s * v;
                }
            }
        }
    }
}

pub(crate) struct CpForwardOp<'a, 'b, T> {
    pub parts: &'a [CpPart<'b, T>],
    pub rows: usize,
    pub rank: usize,
    pub h: usize,
    pub w: &'a [T],
    pub out: &'a mut [T],
    pub scratch: &'a mut [T],
}

impl<T: Float> WithSimd for CpForwardOp<'_, '_, T> {
    type Output = ();
    #[inline(always)]
    fn with_simd<S: Simd>(self, _s: S) {
        forward_loop(
            self.parts,
            self.rows,
            self.rank,
            self.h,
            self.w,
            self.out,
            self.scratch,
        )
    }
}

pub(crate) struct CpBackwardOp<'a, 'b, 'c, T> {
    pub parts: &'a [CpPart<'b, T>],
    pub grads: &'a mut [CpPartMut<'c, T>],
    pub rows: usize,
    pub rank: usize,
    pub h: usize,
    pub w: &'a [T],
    pub g: &'a [T],
    pub gw: &'a mut [T],
    pub scratch: &'a mut [T],
}

impl<T: Float> WithSimd for CpBackwardOp<'_, '_, '_, T> {
    type Output = ();
    #[inline(always)]
    fn with_simd<S: Simd>(self, _s: S) {
        backward_loop(
            self.parts,
            self.grads,
            self.rows,
            self.rank,
            self.h,
            self.w,
            self.g,
            self.gw,
            self.scratch,
        )
    }
}
