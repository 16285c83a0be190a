//! The one pass over each training kernel that MKL makes before solving: every entry finite,
//! K symmetric to a tolerance, and (unless indefinite kernels are allowed) no negative 2 x 2
//! principal minor.
//!
//! The pass compares the strictly lower triangle with its mirror with
//! `mmfuse_kernels::symmetric_block_is_bad_on`, which transposes the mirror 4 x 4 in AVX2
//! registers (this crate is compiled for baseline x86-64; the kernel picks the instruction set at
//! run time), one 128 x 128 block at a time. Within a block the kernel walks bands of 8 rows:
//! each row of the block is one 1 KiB run, and the mirror a strip one cache line wide down 128
//! rows, prefetched ahead. At 128 x 128 a block's rows and its mirror's span 256 pages, well
//! within the second-level TLB, where a whole-width band would walk the mirror down thousands of
//! pages (measured: about 1.3x slower at n = 5000). Block rows run in parallel when asked (the
//! pass is bound by memory bandwidth). The fast pass only says *whether* a block row is bad; the
//! error reported is then found by a plain scan in row order, so it is the first in row order
//! whatever the thread count.

use crate::error::{Error, Result};
use mmfuse_kernels::symmetric_block_is_bad_on;

/// Relative slack of the 2 x 2 minor test |K_ij| <= sqrt(K_ii K_jj).
pub(crate) const MINOR_SLACK: f64 = 1.0 + 1e-6;
/// Rows of a block row (the unit of parallel work) and columns of a block.
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
/// `parallel`: the 128-row groups in parallel with rayon, else in order on the calling thread.
pub(crate) fn check_symmetric_finite(
    data: &[f64],
    n: usize,
    tol: f64,
    sqrt_diag: Option<&[f64]>,
    what: &str,
    parallel: bool,
) -> Result<()> {
    use rayon::prelude::*;
    let arch = mmfuse_kernels::arch();
    let check_group = |bi: usize| {
        let i0 = bi * GROUP;
        let i1 = (i0 + GROUP).min(n);
        for j0 in (0..i1).step_by(GROUP) {
            let j1 = (j0 + GROUP).min(i1);
            let bad = symmetric_block_is_bad_on(
                arch,
                data,
                n,
                i0..i1,
                j0..j1,
                tol,
                sqrt_diag,
                MINOR_SLACK,
            );
            if bad {
                return Some(first_error(data, n, i0, i1, tol, sqrt_diag, what));
            }
        }
        None
    };
    let groups = 0..n.div_ceil(GROUP);
    let first_bad = if parallel {
        groups.into_par_iter().find_map_first(check_group)
    } else {
        groups.into_iter().find_map(check_group)
    };
    match first_bad {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// The first failing pair of rows i0..i1 in row order (only called when one exists). The tests
/// are the kernel's, in the same form: `!(x <= limit)`, so that NaN fails here too.
#[allow(clippy::neg_cmp_op_on_partial_ord)]
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
            if !((a - b).abs() <= tol) {
                return Error::NotSymmetric(format!(
                    "{what}: K[{i}][{j}] = {a} but K[{j}][{i}] = {b}"
                ));
            }
            if let Some(sd) = sqrt_diag {
                if !(a.abs() <= sd[i] * MINOR_SLACK * sd[j] + tol) {
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
