//! Products with a skinny right-hand side: `X V` and `X^T G` where `V` and `G` have few columns
//! (the block low-rank fusion model's projections: a modality's `d_m x C_m` weights with
//! `C_m = h + r h` per block, 17 columns for the benchmark shape). General GEMMs pack their
//! operands and block for large outputs; here the output row (or the weight row) fits in a
//! few registers, so the kernels keep it there and stream the big operand once, unpacked.
//!
//! - [`matmul_nn`]: `out (rows x c) = x (rows x d) v (d x c)`. Per group of 4 rows and slab of
//!   up to 4 registers of columns, the 4 x slab sums stay in registers while `a` runs over
//!   `0..d`: one load of `v`'s row slab and 4 broadcasts feed `4 x slab` FMAs.
//! - [`matmul_tn`]: `out (d x c) (+)= x^T g` with `x` `rows x d`, `g` `rows x c`. Per group of
//!   4 rows and slab, the 4 rows of `g` stay in registers while `a` runs over `0..d`: `out`'s
//!   row slab is loaded, gets 4 FMAs per register, and is stored (it stays in L1: `d x c`).
//!
//! Each output is one FMA chain in a fixed order (`a` ascending for `matmul_nn`, rows
//! ascending for `matmul_tn`), whatever the instruction set; only the rounding of the FMA
//! differs (pulp's scalar fallback rounds twice), so the tests bound the error instead of
//! comparing bits.

use crate::simd::{ld, st, Lanes};
use pulp::Simd;

/// Registers per column slab.
const SLAB: usize = 4;
/// Rows per group. Measured on AVX2 (16 registers) at the block model's shape (c = 16, two
/// registers per slab): 6 rows per group (12 sums in registers) gave the same step time for
/// `matmul_nn` and a slower one for `matmul_tn` (its 6 x 2 rows of `g` crowd the register
/// file), so 4 on every instruction set.
const ROWS: usize = 4;

/// Length of register `q` of a slab of `nr` registers whose last one holds `last` lanes.
#[inline(always)]
fn lanes_of<S: Simd, T: Lanes<S>>(q: usize, nr: usize, last: usize) -> usize {
    if q + 1 == nr {
        last
    } else {
        T::LANES
    }
}

/// `out = x v` (see the module docs). `out.len()` is `rows c`, `x.len()` `rows d`,
/// `v.len()` `d c`.
#[inline(always)]
pub(crate) fn matmul_nn<S: Simd, T: Lanes<S>>(
    s: S,
    x: &[T],
    d: usize,
    v: &[T],
    c: usize,
    out: &mut [T],
) {
    assert!(c > 0 && d > 0, "skinny: empty product");
    assert_eq!(out.len() % c, 0, "skinny: output length");
    let rows = out.len() / c;
    assert_eq!(x.len(), rows * d, "skinny: x length");
    assert_eq!(v.len(), d * c, "skinny: v length");
    let lanes = T::LANES;
    let mut j0 = 0;
    while j0 < c {
        let width = (c - j0).min(SLAB * lanes);
        let nr = width.div_ceil(lanes);
        let last = width - (nr - 1) * lanes;
        match nr {
            1 => nn_slab::<S, T, 1>(s, x, d, v, c, j0, last, out, rows),
            2 => nn_slab::<S, T, 2>(s, x, d, v, c, j0, last, out, rows),
            3 => nn_slab::<S, T, 3>(s, x, d, v, c, j0, last, out, rows),
            _ => nn_slab::<S, T, 4>(s, x, d, v, c, j0, last, out, rows),
        }
        j0 += width;
    }
}

#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn nn_slab<S: Simd, T: Lanes<S>, const NR: usize>(
    s: S,
    x: &[T],
    d: usize,
    v: &[T],
    c: usize,
    j0: usize,
    last: usize,
    out: &mut [T],
    rows: usize,
) {
    let mut r0 = 0;
    while r0 + ROWS <= rows {
        nn_block::<S, T, ROWS, NR>(s, x, d, v, c, j0, last, out, r0);
        r0 += ROWS;
    }
    while r0 < rows {
        nn_block::<S, T, 1, NR>(s, x, d, v, c, j0, last, out, r0);
        r0 += 1;
    }
}

// Index loops over the (row, register) sums read closest to the layout.
#[allow(clippy::too_many_arguments, clippy::needless_range_loop)]
#[inline(always)]
fn nn_block<S: Simd, T: Lanes<S>, const R: usize, const NR: usize>(
    s: S,
    x: &[T],
    d: usize,
    v: &[T],
    c: usize,
    j0: usize,
    last: usize,
    out: &mut [T],
    r0: usize,
) {
    let zero = T::splat(s, T::ZERO);
    let mut acc = [[zero; NR]; R];
    let xr: [&[T]; R] = core::array::from_fn(|r| &x[(r0 + r) * d..(r0 + r + 1) * d]);
    for a in 0..d {
        let row = &v[a * c + j0..];
        let w: [T::Vec<S>; NR] =
            core::array::from_fn(|q| ld(s, row, q * T::LANES, lanes_of::<S, T>(q, NR, last)));
        for r in 0..R {
            let xv = T::splat(s, xr[r][a]);
            for q in 0..NR {
                acc[r][q] = T::vfma(s, xv, w[q], acc[r][q]);
            }
        }
    }
    for r in 0..R {
        let orow = &mut out[(r0 + r) * c + j0..];
        for q in 0..NR {
            st(
                s,
                orow,
                q * T::LANES,
                lanes_of::<S, T>(q, NR, last),
                acc[r][q],
            );
        }
    }
}

/// `out = x^T g` (or `out += x^T g` when `accumulate`; see the module docs). `x.len()` is
/// `rows d`, `g.len()` `rows c`, `out.len()` `d c`.
#[inline(always)]
pub(crate) fn matmul_tn<S: Simd, T: Lanes<S>>(
    s: S,
    x: &[T],
    d: usize,
    g: &[T],
    c: usize,
    out: &mut [T],
    accumulate: bool,
) {
    assert!(c > 0 && d > 0, "skinny: empty product");
    assert_eq!(g.len() % c, 0, "skinny: g length");
    let rows = g.len() / c;
    assert_eq!(x.len(), rows * d, "skinny: x length");
    assert_eq!(out.len(), d * c, "skinny: output length");
    if !accumulate {
        out.fill(T::ZERO);
    }
    let lanes = T::LANES;
    let mut j0 = 0;
    while j0 < c {
        let width = (c - j0).min(SLAB * lanes);
        let nr = width.div_ceil(lanes);
        let last = width - (nr - 1) * lanes;
        match nr {
            1 => tn_slab::<S, T, 1>(s, x, d, g, c, j0, last, out, rows),
            2 => tn_slab::<S, T, 2>(s, x, d, g, c, j0, last, out, rows),
            3 => tn_slab::<S, T, 3>(s, x, d, g, c, j0, last, out, rows),
            _ => tn_slab::<S, T, 4>(s, x, d, g, c, j0, last, out, rows),
        }
        j0 += width;
    }
}

#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn tn_slab<S: Simd, T: Lanes<S>, const NR: usize>(
    s: S,
    x: &[T],
    d: usize,
    g: &[T],
    c: usize,
    j0: usize,
    last: usize,
    out: &mut [T],
    rows: usize,
) {
    let mut r0 = 0;
    while r0 + ROWS <= rows {
        tn_block::<S, T, ROWS, NR>(s, x, d, g, c, j0, last, out, r0);
        r0 += ROWS;
    }
    while r0 < rows {
        tn_block::<S, T, 1, NR>(s, x, d, g, c, j0, last, out, r0);
        r0 += 1;
    }
}

#[allow(clippy::too_many_arguments, clippy::needless_range_loop)]
#[inline(always)]
fn tn_block<S: Simd, T: Lanes<S>, const R: usize, const NR: usize>(
    s: S,
    x: &[T],
    d: usize,
    g: &[T],
    c: usize,
    j0: usize,
    last: usize,
    out: &mut [T],
    r0: usize,
) {
    let gv: [[T::Vec<S>; NR]; R] = core::array::from_fn(|r| {
        let row = &g[(r0 + r) * c + j0..];
        core::array::from_fn(|q| ld(s, row, q * T::LANES, lanes_of::<S, T>(q, NR, last)))
    });
    let xr: [&[T]; R] = core::array::from_fn(|r| &x[(r0 + r) * d..(r0 + r + 1) * d]);
    for a in 0..d {
        let orow = &mut out[a * c + j0..];
        let mut acc: [T::Vec<S>; NR] =
            core::array::from_fn(|q| ld(s, orow, q * T::LANES, lanes_of::<S, T>(q, NR, last)));
        for r in 0..R {
            let xv = T::splat(s, xr[r][a]);
            for q in 0..NR {
                acc[q] = T::vfma(s, xv, gv[r][q], acc[q]);
            }
        }
        for q in 0..NR {
            st(s, orow, q * T::LANES, lanes_of::<S, T>(q, NR, last), acc[q]);
        }
    }
}

/// `out[i][k] (+)= sum_a x[i][a] w[k][a]` for `x` `rows x d`, `w` `h x d`, `out` `rows x h`
/// (row-major): dot products of contiguous rows, the products of a skinny `v = w^T` whose
/// columns are too few to fill a register (a block model's unimodal weights, h = 1). Four
/// accumulators over `a` (then the tail, possibly partial), summed pairwise, then across lanes.
#[inline(always)]
pub(crate) fn rows_dot<S: Simd, T: Lanes<S>>(
    s: S,
    x: &[T],
    d: usize,
    w: &[T],
    h: usize,
    out: &mut [T],
    accumulate: bool,
) {
    assert!(d > 0 && h > 0, "skinny: empty product");
    assert_eq!(out.len() % h, 0, "skinny: output length");
    let rows = out.len() / h;
    assert_eq!(x.len(), rows * d, "skinny: x length");
    assert_eq!(w.len(), h * d, "skinny: w length");
    let lanes = T::LANES;
    let zero = T::splat(s, T::ZERO);
    for i in 0..rows {
        let xr = &x[i * d..(i + 1) * d];
        for k in 0..h {
            let wr = &w[k * d..(k + 1) * d];
            let mut acc = [zero; 4];
            let mut a = 0;
            while a + 4 * lanes <= d {
                for (q, accq) in acc.iter_mut().enumerate() {
                    let o = a + q * lanes;
                    *accq = T::vfma(s, ld(s, xr, o, lanes), ld(s, wr, o, lanes), *accq);
                }
                a += 4 * lanes;
            }
            while a < d {
                let len = (d - a).min(lanes);
                acc[0] = T::vfma(s, ld(s, xr, a, len), ld(s, wr, a, len), acc[0]);
                a += len;
            }
            let sum = T::vadd(s, T::vadd(s, acc[0], acc[1]), T::vadd(s, acc[2], acc[3]));
            let dot = T::vsum(s, sum);
            let o = &mut out[i * h + k];
            *o = if accumulate { *o + dot } else { dot };
        }
    }
}
