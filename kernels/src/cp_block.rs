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
//! The loops run along the `r h` contiguous values of a row, one register of lanes at a time,
//! with multiplications and additions only (no fused operations): every instruction set,
//! and the plain-loop twins in [`crate::reference`], perform the same IEEE operations in the
//! same order and give the same bits. Per row and value `j = i h + k`:
//!
//! - forward: `prod_j = (P_0j P_1j) ...` (members in order), `t_j = w_i prod_j`, then
//!   `out[k] += t_j` for `i` ascending;
//! - backward: `c_j = g_k w_i`, `dP_mj = c_j (prod over m' != m ascending of P_m'j)` (just
//!   `c_j` for a single member), and `acc_j += g_k prod_j` summed over the rows of the call
//!   from zero, then `gw[i] += (acc_{ih} + acc_{ih+1} + ...)` once at the end.
//!
//! Why by hand rather than as plain loops left to the compiler (the previous form): the
//! loops run over `r h` values, 8 at the benchmark shape, too short for the compiler's
//! vector body (it unrolls to 4 registers), so they ran scalar: the backward pass cost as
//! much as the model's two skinny products together on AVX2 (profile of
//! `mmfuse bench lmf --train --blocks pairs --batch 4096 --rank 8`).

use crate::simd::{ld, st, Float, Lanes};
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

/// The argument checks shared by the vector passes and their twins in [`crate::reference`].
pub(crate) fn check_forward<T>(
    parts: &[CpPart<'_, T>],
    rows: usize,
    rank: usize,
    h: usize,
    w: &[T],
    out: &[T],
    scratch: &[T],
) {
    let rh = rank * h;
    assert!(!parts.is_empty(), "cp_block: no members");
    assert_eq!(w.len(), rank, "cp_block: fusion weights");
    assert!(out.len() >= rows * h, "cp_block: outputs");
    assert!(scratch.len() >= 2 * rh, "cp_block: scratch");
    for p in parts {
        check_part(p.proj.len(), p.stride, p.offset, rows, rh, "projection");
    }
}

/// The argument checks of the backward pass (see [`check_forward`]).
#[allow(clippy::too_many_arguments)]
pub(crate) fn check_backward<T>(
    parts: &[CpPart<'_, T>],
    grads: &[CpPartMut<'_, T>],
    rows: usize,
    rank: usize,
    h: usize,
    w: &[T],
    g: &[T],
    gw: &[T],
    scratch: &[T],
) {
    let rh = rank * h;
    assert!(!parts.is_empty(), "cp_block: no members");
    assert_eq!(
        grads.len(),
        parts.len(),
        "cp_block: one gradient buffer per member"
    );
    assert_eq!(w.len(), rank, "cp_block: fusion weights");
    assert_eq!(gw.len(), rank, "cp_block: fusion weight gradients");
    assert!(g.len() >= rows * h, "cp_block: output gradients");
    assert!(scratch.len() >= 3 * rh, "cp_block: scratch");
    for p in parts {
        check_part(p.proj.len(), p.stride, p.offset, rows, rh, "projection");
    }
    for p in grads {
        check_part(p.grad.len(), p.stride, p.offset, rows, rh, "gradient");
    }
}

/// `wexp[i h + k] = w[i]`: the fusion weights spread over the `r h` values of a row.
#[inline(always)]
fn spread_weights<T: Copy>(w: &[T], h: usize, wexp: &mut [T]) {
    for (chunk, &wi) in wexp.chunks_exact_mut(h).zip(w) {
        chunk.fill(wi);
    }
}

/// The register of `parts[m]`'s values `j0..j0 + len` in row `row`.
#[inline(always)]
fn part_at<S: Simd, T: Lanes<S>>(
    s: S,
    p: &CpPart<'_, T>,
    row: usize,
    j0: usize,
    len: usize,
) -> T::Vec<S> {
    ld(s, p.proj, row * p.stride + p.offset + j0, len)
}

/// `out[row][k] += sum_i w[i] prod_m parts[m][row][i h + k]` for `rows` rows (the order of
/// operations is in the module docs); `scratch` holds at least `2 r h` values.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
pub(crate) fn forward_loop<S: Simd, T: Lanes<S>>(
    s: S,
    parts: &[CpPart<'_, T>],
    rows: usize,
    rank: usize,
    h: usize,
    w: &[T],
    out: &mut [T],
    scratch: &mut [T],
) {
    check_forward(parts, rows, rank, h, w, out, scratch);
    let rh = rank * h;
    let (wexp, rest) = scratch.split_at_mut(rh);
    let t = &mut rest[..rh];
    spread_weights(w, h, wexp);
    let (first, others) = parts.split_first().expect("checked: members");
    for row in 0..rows {
        let mut j0 = 0;
        while j0 < rh {
            let len = (rh - j0).min(T::LANES);
            let mut prod = part_at(s, first, row, j0, len);
            for p in others {
                prod = T::vmul(s, prod, part_at(s, p, row, j0, len));
            }
            st(s, t, j0, len, T::vmul(s, ld(s, wexp, j0, len), prod));
            j0 += len;
        }
        let o = &mut out[row * h..row * h + h];
        for ti in t.chunks_exact(h) {
            for (ok, &v) in o.iter_mut().zip(ti) {
                *ok += v;
            }
        }
    }
}

/// The backward pass of [`forward_loop`]: writes every member's projection gradients (the
/// block's columns of `grads[m]`) and adds the fusion weights' gradients to `gw`. `g` is
/// `rows x h`; `scratch` holds at least `3 r h` values.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
pub(crate) fn backward_loop<S: Simd, T: Lanes<S>>(
    s: S,
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
    check_backward(parts, grads, rows, rank, h, w, g, gw, scratch);
    let rh = rank * h;
    let (wexp, rest) = scratch.split_at_mut(rh);
    let (gexp, rest) = rest.split_at_mut(rh);
    let acc = &mut rest[..rh];
    spread_weights(w, h, wexp);
    acc.fill(T::ZERO);
    for row in 0..rows {
        let gk = &g[row * h..row * h + h];
        if h > 1 {
            for chunk in gexp.chunks_exact_mut(h) {
                chunk.copy_from_slice(gk);
            }
        }
        let mut j0 = 0;
        while j0 < rh {
            let len = (rh - j0).min(T::LANES);
            let gv = if h == 1 {
                T::splat(s, gk[0])
            } else {
                ld(s, gexp, j0, len)
            };
            let coef = T::vmul(s, gv, ld(s, wexp, j0, len));
            let mut prod = part_at(s, &parts[0], row, j0, len);
            for p in &parts[1..] {
                prod = T::vmul(s, prod, part_at(s, p, row, j0, len));
            }
            let a = T::vadd(s, ld(s, acc, j0, len), T::vmul(s, gv, prod));
            st(s, acc, j0, len, a);
            for (m, q) in grads.iter_mut().enumerate() {
                let mut others: Option<T::Vec<S>> = None;
                for (_, p) in parts.iter().enumerate().filter(|&(m2, _)| m2 != m) {
                    let v = part_at(s, p, row, j0, len);
                    others = Some(match others {
                        None => v,
                        Some(o) => T::vmul(s, o, v),
                    });
                }
                let d = match others {
                    None => coef,
                    Some(o) => T::vmul(s, coef, o),
                };
                st(s, q.grad, row * q.stride + q.offset + j0, len, d);
            }
            j0 += len;
        }
    }
    for (gwi, ai) in gw.iter_mut().zip(acc.chunks_exact(h)) {
        let mut sum = T::ZERO;
        for &v in ai {
            sum += v;
        }
        *gwi += sum;
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
    fn with_simd<S: Simd>(self, s: S) {
        T::cp_forward(
            s,
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
    fn with_simd<S: Simd>(self, s: S) {
        T::cp_backward(
            s,
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
