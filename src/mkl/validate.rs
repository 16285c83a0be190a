//! The one pass over each training kernel that MKL makes before solving: every entry finite,
//! K symmetric to a tolerance, and (unless indefinite kernels are allowed) no negative 2 x 2
//! principal minor.
//!
//! The pass reads the strictly lower triangle as rows and the upper triangle through a
//! transposed copy of each 32 x 32 mirror block in L1, so that every load is a run of a cache
//! line or more. Blocks are visited in 128 x 128 groups: a group and its mirror (256 KiB) stay in
//! L2 while their 16 sub-blocks are compared, and each group reads rows in 1 KiB runs, which keeps
//! TLB misses and prefetcher restarts four times rarer than 32-wide strips. Block rows run in
//! parallel (the pass is bound by memory bandwidth). The fast pass only says *whether* a block
//! row is bad; the error reported is then found by a plain scan in row order, so it is the first
//! in row order whatever the thread count.

use crate::error::{Error, Result};

/// Relative slack of the 2 x 2 minor test |K_ij| <= sqrt(K_ii K_jj).
pub(crate) const MINOR_SLACK: f64 = 1.0 + 1e-6;
/// Transpose block (L1).
const SUB: usize = 32;
/// Group of blocks kept in L2.
const GROUP: usize = 128;

pub(crate) fn non_finite(what: &str, row: usize, col: usize, v: f64) -> Error {
    Error::NonFinite {
        what: what.to_string(),
        row,
        col,
        value: format!("{v}"),
    }
}

/// Checks the off-diagonal pairs of the n x n row-major `data`: finite, |K_ij - K_ji| <= tol,
/// and with `sqrt_diag`, |K_ij| <= sqrt(K_ii) sqrt(K_jj) (1 + 1e-6) + tol (a PSD matrix has no
/// negative 2 x 2 principal minor; the slack covers rounding in how K was computed).
pub(crate) fn check_symmetric_finite(
    data: &[f64],
    n: usize,
    tol: f64,
    sqrt_diag: Option<&[f64]>,
    what: &str,
) -> Result<()> {
    use rayon::prelude::*;
    let first_bad = (0..n.div_ceil(GROUP)).into_par_iter().find_map_first(|bi| {
        let i0 = bi * GROUP;
        let i1 = (i0 + GROUP).min(n);
        let mut mirror = [[0.0f64; SUB]; SUB];
        for j0 in (0..i1).step_by(GROUP) {
            let j1 = (j0 + GROUP).min(i1);
            for si0 in (i0..i1).step_by(SUB) {
                let si1 = (si0 + SUB).min(i1);
                for sj0 in (j0..j1.min(si1)).step_by(SUB) {
                    let sj1 = (sj0 + SUB).min(j1);
                    let block = Block { si0, si1, sj0, sj1 };
                    if block_is_bad(data, n, &block, tol, sqrt_diag, &mut mirror) {
                        return Some(first_error(data, n, i0, i1, tol, sqrt_diag, what));
                    }
                }
            }
        }
        None
    });
    match first_bad {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// Rows si0..si1, columns sj0..sj1 of the strictly lower triangle.
struct Block {
    si0: usize,
    si1: usize,
    sj0: usize,
    sj1: usize,
}

/// Whether any pair in the block fails a check (branch-free accumulation: the common case is
/// a clean matrix).
fn block_is_bad(
    data: &[f64],
    n: usize,
    b: &Block,
    tol: f64,
    sqrt_diag: Option<&[f64]>,
    mirror: &mut [[f64; SUB]; SUB],
) -> bool {
    // The mirror block K[sj0..sj1][si0..si1], transposed into L1 by contiguous reads of its rows.
    for j in b.sj0..b.sj1 {
        let seg = &data[j * n + b.si0..j * n + b.si1];
        for (ii, &v) in seg.iter().enumerate() {
            mirror[ii][j - b.sj0] = v;
        }
    }
    let mut bad = false;
    for i in b.si0..b.si1 {
        // Strictly below the diagonal only.
        let jend = b.sj1.min(i);
        if jend <= b.sj0 {
            continue;
        }
        let row = &data[i * n + b.sj0..i * n + jend];
        let mrow = &mirror[i - b.si0][..jend - b.sj0];
        for (&a, &m) in row.iter().zip(mrow) {
            let diff = (a - m).abs();
            bad |= diff.is_nan() | (diff > tol);
        }
        if let Some(sd) = sqrt_diag {
            let bound_i = sd[i] * MINOR_SLACK;
            for (&a, &sj) in row.iter().zip(&sd[b.sj0..jend]) {
                bad |= a.abs() > bound_i * sj + tol;
            }
        }
    }
    bad
}

/// The first failing pair of rows i0..i1 in row order (only called when one exists).
fn first_error(
    data: &[f64],
    n: usize,
    i0: usize,
    i1: usize,
    tol: f64,
    sqrt_diag: Option<&[f64]>,
    what: &str,
) -> Error {
    for i in i0..i1 {
        for j in 0..i {
            let (a, b) = (data[i * n + j], data[j * n + i]);
            if !a.is_finite() {
                return non_finite(what, i, j, a);
            }
            if !b.is_finite() {
                return non_finite(what, j, i, b);
            }
            if (a - b).abs() > tol {
                return Error::Shape(format!(
                    "{what} is not symmetric: K[{i}][{j}] = {a} but K[{j}][{i}] = {b}"
                ));
            }
            if let Some(sd) = sqrt_diag {
                if a.abs() > sd[i] * MINOR_SLACK * sd[j] + tol {
                    return Error::NotPsd(format!(
                        "{what} is not positive semi-definite: K[{i}][{j}]^2 = {:e} > \
                         K[{i}][{i}] K[{j}][{j}] = {:e} (a negative 2 x 2 minor); to fit \
                         anyway, set allow_indefinite (CLI: --allow-indefinite)",
                        a * a,
                        sd[i] * sd[i] * sd[j] * sd[j]
                    ));
                }
            }
        }
    }
    // The fast pass and this scan apply the same tests; unreachable unless they diverge.
    Error::Shape(format!(
        "{what}: inconsistent validation of rows {i0}..{i1}"
    ))
}
