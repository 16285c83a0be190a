//! Translating the data before the GEMM of the rbf kernel (issue 11, part 4).
//!
//! The rbf kernel goes through the GEMM as `t = |x|^2 + |y|^2 - 2 <x, y>`, whose rounding error
//! is a few `u (|x|^2 + |y|^2)` (u the unit roundoff of the element type): on data far from the
//! origin relative to its spread, `t` cancels catastrophically (f32, 500 x 50 entries
//! 100 + 0.1 N(0, 1), gamma = 1: 53 % relative error in K; 3e-7 once centred). The kernel is translation invariant, so the tiles compute
//! it on `x - mu`, `y - mu` for one shift `mu` per column, common to both sides:
//!
//! - `mu` is the column mean of the *column points* (the data for `gram(X)`, `Y` for
//!   `cross_gram(X, Y)`: the training points in `K(X_test, X_train)`), so that rows of
//!   `K(X, X)` computed on demand (`KernelRows`, `TrainStats::from_data`: cross blocks against
//!   all of X) use exactly the shift of `gram(X)`.
//! - Each mean is rounded to a multiple of a power of two `q` between 1/32 and 1/16 of the
//!   column's mean absolute deviation: that moves the centre by at most 1/32 of the spread
//!   (harmless), and makes `x - mu` exact in most cases. `x_k` and `mu_k` are then both multiples
//!   of `min(ulp(x_k), q)`, so the difference is exact whenever it has at most 24 (f32) / 53
//!   (f64) significant bits at that spacing: for every point within about `|x_k|` of the mean
//!   when `q >= ulp(x_k)`, and within `2^19` spreads when `q < ulp(x_k)`. In particular integer
//!   data stays integer data once its spread is at least 16, so its GEMM stays exact. Otherwise
//!   `x_k - mu_k` is computed in f64 and rounded once to the element type: relative error
//!   `<= u + u64 (1 + u)` (f32) or `u` (f64).
//! - A column with no spread is shifted by its first value (then `x_k - mu_k = 0` exactly).
//!
//! The centred copy costs `n x d` elements per operand (checked against the memory cap,
//! [`crate::limits`]) and three O(n d) passes (mean, deviation, copy), about 1 % of the
//! O(n^2 d) assembly (within the measurement noise). With the refinement scan of
//! `assemble::cancelled`, rbf on random data (2 threads, AVX-512 host) costs +0 % (f32,
//! n = 4096, d = 300), +5 % (f32, 8192 x 64) and +3 % (f64, 4096 x 300) over the plain GEMM
//! path.
//!
//! f64 is centred too: for the cost above, on data offset by up to 1e4 spreads its worst
//! relative error drops from 1.7e-7 to 1.4e-14 (and from 8e-10 to 1.5e-15 on the f32 example).
//!
//! Only rbf is centred: the laplacian kernel has no GEMM (its differences `x_k - y_k` are
//! rounded once each, whatever the offset: measured 1.4e-7 relative in f32 on the example
//! above, before and after), and the other kernels are not translation invariant.

use super::input::Rows;
use crate::error::Result;
use crate::scalar::Real;

/// The per-column shift of `data` (`n x d`, row-major, n >= 1): the column mean (f64, summed
/// by blocks of rows, [`column_sums`], divided by n) rounded to a multiple of
/// `q = 2^(floor(log2(mad)) - 4)`, mad the column's mean absolute deviation from that mean
/// (f64, summed alike); the first value of the
/// column when mad is 0 or the rounding is out of range (q not normal, or `mean / q >= 2^52`,
/// then the mean itself).
pub(crate) fn shift_of<T: Real>(data: &[T], n: usize, d: usize) -> Vec<f64> {
    debug_assert_eq!(data.len(), n * d);
    let arch = mmfuse_kernels::arch();
    let mut mean = column_sums(data, n, d, |rows, acc| {
        mmfuse_kernels::column_sums_on(arch, rows, acc)
    });
    for m in &mut mean {
        *m /= n as f64;
    }
    let mad = column_sums(data, n, d, |rows, acc| {
        mmfuse_kernels::column_abs_dev_sums_on(arch, rows, &mean, acc)
    });
    mean.iter()
        .zip(&mad)
        .enumerate()
        .map(|(k, (&m, &a))| {
            let a = a / n as f64;
            if a == 0.0 {
                return data[k].to_f64();
            }
            let q = 2f64.powi(a.log2().floor() as i32 - 4);
            if q.is_normal() && (m / q).abs() < 2f64.powi(52) {
                (m / q).round() * q
            } else {
                m
            }
        })
        .collect()
}

/// Rows per block of a column sum, at least (the blocks' partial sums are then added).
const SUM_BLOCK_ROWS: usize = 256;
/// At most this many blocks (their partial sums take `d` f64 each).
const SUM_BLOCKS: usize = 32;

/// Per-column sums over the `n` rows of `data` (`d` columns, row-major): the rows are cut into
/// blocks that depend on `n` alone (at least [`SUM_BLOCK_ROWS`] rows, at most [`SUM_BLOCKS`]
/// blocks), `add(rows, acc)` sums each block's rows in order into a zeroed `acc` (a vector
/// pass of mmfuse-kernels), and the blocks' sums are added in block order. The blocks run in
/// parallel on the current rayon pool for large data ([`super::par`]); the result does not
/// depend on the number of threads. (Split by rows, not columns: two threads each summing
/// half of every row took twice the time of one thread's pass over all of it, 0.4 ms per
/// pass at n = 4096, d = 300 on the Intel host.)
fn column_sums<T: Real>(
    data: &[T],
    n: usize,
    d: usize,
    add: impl Fn(&[T], &mut [f64]) + Sync,
) -> Vec<f64> {
    let blocks = n.div_ceil(SUM_BLOCK_ROWS).clamp(1, SUM_BLOCKS);
    let mut sums = vec![0.0f64; d];
    if blocks == 1 {
        add(data, &mut sums);
        return sums;
    }
    let per = n.div_ceil(blocks);
    let one = |(b, acc): (usize, &mut [f64])| {
        let (r0, r1) = ((b * per).min(n), ((b + 1) * per).min(n));
        add(&data[r0 * d..r1 * d], acc);
    };
    let mut partial = vec![0.0f64; blocks * d];
    if super::par::worth_it(n * d) {
        use rayon::prelude::*;
        partial.par_chunks_mut(d).enumerate().for_each(one);
    } else {
        partial.chunks_mut(d).enumerate().for_each(one);
    }
    for p in partial.chunks_exact(d) {
        for (s, v) in sums.iter_mut().zip(p) {
            *s += v;
        }
    }
    sums
}

/// `data - shift` (per column), each value computed in f64 and rounded once to T, in a new
/// buffer checked against the memory cap (`what` names the operand in the error). Large data
/// is written by row chunks in parallel on the current rayon pool ([`super::par`]).
pub(crate) fn centred<T: Real>(rows: &Rows<'_, T>, shift: &[f64], what: &str) -> Result<Vec<T>> {
    crate::limits::check_alloc::<T>(rows.n, rows.d, what)?;
    let (n, d) = (rows.n, rows.d);
    // Every element below is written only if `shift` covers every column.
    assert_eq!(shift.len(), d, "one shift per column");
    let mut out: Vec<T> = Vec::with_capacity(n * d);
    let arch = mmfuse_kernels::arch();
    let fill = |(dst, src): (&mut [std::mem::MaybeUninit<T>], &[T])| {
        mmfuse_kernels::centre_rows_on(arch, src, shift, dst)
    };
    let chunk = super::par::chunk_rows(d) * d;
    let spare = &mut out.spare_capacity_mut()[..n * d];
    if super::par::worth_it(n * d) {
        use rayon::prelude::*;
        spare
            .par_chunks_mut(chunk)
            .zip(rows.data.par_chunks(chunk))
            .for_each(fill);
    } else {
        fill((spare, &rows.data));
    }
    // SAFETY: the first n * d elements were all written above: the chunks of `spare` and of
    // the data (both n * d long, cut at the same multiples of d) pair up one to one, and
    // `centre_rows_on` writes every element of its output (its contract; it panics on a
    // length mismatch rather than leave any unwritten).
    unsafe { out.set_len(n * d) };
    Ok(out)
}
