//! Row norms, and the register-blocked L1-distance micro-kernel (the laplacian kernel cannot be
//! written as a GEMM).
//!
//! L1 layout: the right-hand rows are packed transposed into a *panel* (`d` rows of `ny_pad`
//! values, `panel[k * ny_pad + j] = y_j[k]`, zero-padded to a multiple of [`PANEL_PAD`]) so that
//! the inner loop loads contiguous registers of y and broadcasts one x value per row. The block
//! is `MR = 4` rows of x by two registers of y columns: 8 accumulators, 2 loads and 4 broadcasts
//! per 8 (sub, abs, add) triples.

use crate::simd::Lanes;
use crate::tile::TileMut;
use pulp::Simd;

/// Column padding of an L1 panel: a multiple of two registers of every instruction set.
pub const PANEL_PAD: usize = 32;

/// Rows of x per micro-kernel call.
const MR: usize = 4;

/// Padded panel width for `ny` columns.
pub fn panel_width(ny: usize) -> usize {
    ny.div_ceil(PANEL_PAD) * PANEL_PAD
}

/// Packs `ny` rows of length `d` (row-major in `y`) transposed into `panel`
/// (`d x panel_width(ny)`, padding zeroed).
///
/// # Panics
/// If `y.len() != ny * d` or `panel.len() != d * panel_width(ny)`.
pub fn pack_panel<T: Copy + Default>(y: &[T], ny: usize, d: usize, panel: &mut [T]) {
    let w = panel_width(ny);
    assert_eq!(y.len(), ny * d, "pack_panel: y length");
    assert_eq!(panel.len(), d * w, "pack_panel: panel length");
    for (k, prow) in panel.chunks_exact_mut(w.max(1)).enumerate().take(d) {
        for (j, p) in prow.iter_mut().enumerate() {
            *p = if j < ny { y[j * d + k] } else { T::default() };
        }
    }
}

/// Squared Euclidean norm of each row of `x` (`rows x d`, row-major) into `out`.
#[inline(always)]
pub(crate) fn sq_norms<S: Simd, T: Lanes<S>>(s: S, x: &[T], d: usize, out: &mut [T]) {
    assert_eq!(x.len(), out.len() * d, "sq_norms: shape");
    if d == 0 {
        out.fill(T::ZERO);
        return;
    }
    for (row, o) in x.chunks_exact(d).zip(out.iter_mut()) {
        let (head, tail) = T::as_simd(row);
        // Four independent accumulators hide the FMA latency.
        let mut acc = [T::splat(s, T::ZERO); 4];
        let mut chunks = head.chunks_exact(4);
        for c in &mut chunks {
            for q in 0..4 {
                acc[q] = T::vfma(s, c[q], c[q], acc[q]);
            }
        }
        for (q, v) in chunks.remainder().iter().enumerate() {
            acc[q] = T::vfma(s, *v, *v, acc[q]);
        }
        let t = T::load_partial(s, tail);
        acc[0] = T::vfma(s, t, t, acc[0]);
        let sum = T::vadd(s, T::vadd(s, acc[0], acc[1]), T::vadd(s, acc[2], acc[3]));
        *o = T::vsum(s, sum);
    }
}

/// `out[i][j] = sum_k |x_i[k] - y_j[k]|` for the `out.nrows()` rows of `x` (row-major, length d)
/// and the first `out.ncols()` columns of the packed `panel`.
#[inline(always)]
pub(crate) fn l1_tile<S: Simd, T: Lanes<S>>(
    s: S,
    x: &[T],
    d: usize,
    panel: &[T],
    out: &mut TileMut<'_, T>,
) {
    let (nx, ny) = (out.nrows(), out.ncols());
    let w = panel_width(ny);
    assert_eq!(x.len(), nx * d, "l1_tile: x length");
    assert!(panel.len() >= d * w, "l1_tile: panel length");
    let lanes = T::LANES;
    let nr = 2 * lanes;
    // A panel width is a multiple of 32, hence of two registers (lanes <= 16).
    debug_assert_eq!(w % nr, 0);
    if d == 0 {
        for i in 0..nx {
            out.row_mut(i).fill(T::ZERO);
        }
        return;
    }
    let mut i0 = 0;
    while i0 < nx {
        let mr = (nx - i0).min(MR);
        let xs = &x[i0 * d..(i0 + mr) * d];
        let mut j0 = 0;
        while j0 < ny {
            let acc = match mr {
                4 => block::<S, T, 4>(s, xs, d, panel, w, j0),
                3 => block::<S, T, 3>(s, xs, d, panel, w, j0),
                2 => block::<S, T, 2>(s, xs, d, panel, w, j0),
                _ => block::<S, T, 1>(s, xs, d, panel, w, j0),
            };
            let cols = (ny - j0).min(nr);
            for (r, acc_r) in acc.iter().enumerate().take(mr) {
                let dst = &mut out.row_mut(i0 + r)[j0..j0 + cols];
                let (d0, d1) = dst.split_at_mut(cols.min(lanes));
                T::store_partial(s, d0, acc_r[0]);
                if !d1.is_empty() {
                    T::store_partial(s, d1, acc_r[1]);
                }
            }
            j0 += nr;
        }
        i0 += mr;
    }
}

/// One `R x (2 registers)` block of distances, columns `j0..j0 + 2 lanes` of the panel.
#[inline(always)]
fn block<S: Simd, T: Lanes<S>, const R: usize>(
    s: S,
    xs: &[T],
    d: usize,
    panel: &[T],
    w: usize,
    j0: usize,
) -> [[T::Vec<S>; 2]; 4] {
    let zero = T::splat(s, T::ZERO);
    let mut acc = [[zero; 2]; 4];
    let lanes = T::LANES;
    for (k, prow) in panel.chunks_exact(w).take(d).enumerate() {
        let (y, _) = T::as_simd(&prow[j0..j0 + 2 * lanes]);
        let (y0, y1) = (y[0], y[1]);
        for r in 0..R {
            let xv = T::splat(s, xs[r * d + k]);
            acc[r][0] = T::vadd(s, acc[r][0], T::vabs(s, T::vsub(s, xv, y0)));
            acc[r][1] = T::vadd(s, acc[r][1], T::vabs(s, T::vsub(s, xv, y1)));
        }
    }
    acc
}
