//! Whether a block of a square matrix's strictly lower triangle fails the checks MKL makes
//! before solving: every entry finite, `|K_ij - K_ji| <= tol` and, when the square roots of the
//! diagonal are given, `|K_ij| <= (sqrt(K_ii) slack) sqrt(K_jj) + tol` (no negative 2 x 2
//! principal minor).
//!
//! Each pair compares an element of a row with one of a column, so a plain loop either reads
//! the column strided or transposes it through memory first; both cost several times the
//! matrix read. On AVX2 (and AVX-512, which runs the same 256-bit code: the pass is bound by
//! memory bandwidth, not by vector width) the mirror is transposed in registers instead, 4 x 4
//! at a time: four 4-wide loads of the rows `j..j + 4` at columns `i..i + 4`, four unpacks and
//! four lane permutes give the columns to compare with four loads of the rows `i..i + 4`.
//! Rows go in bands of 8, so that each cache line of the mirror is used whole as soon as it
//! arrives, and the mirror is prefetched a few rows ahead (see `x86::block`). Tiles that
//! straddle the diagonal or the block's ragged edges go through the scalar loop. As every
//! kernel of the crate, it is dispatched by `Arch::dispatch`; its `with_simd` takes the
//! register-transpose path when `crate::simd::x86_v3` gives it the AVX2 token.
//!
//! The answer is a boolean, and both paths give exactly the scalar answer: each test is the
//! same IEEE operations in the same order (the bound as a product, a product and a sum, never a
//! fused multiply-add), each written as "not (x <= limit)" so that NaN anywhere counts as bad.

use core::ops::Range;
use pulp::{Arch, Simd, WithSimd};

/// The matrix and the tests, shared by every path.
#[derive(Clone, Copy)]
struct Check<'a> {
    data: &'a [f64],
    n: usize,
    tol: f64,
    sqrt_diag: Option<&'a [f64]>,
    slack: f64,
}

/// Whether any pair `(i, j)` with `i` in `rows`, `j` in `cols` and `j < i` (the strictly lower
/// triangle) of the `n x n` row-major matrix `data` fails a check: `K_ij` or `K_ji` not finite,
/// `!(|K_ij - K_ji| <= tol)`, or, with `sqrt_diag`,
/// `!(|K_ij| <= (sqrt_diag[i] * slack) * sqrt_diag[j] + tol)` (evaluated left to right, no
/// fused multiply-add). NaN anywhere, `tol` and `sqrt_diag` included, counts as a failure.
/// Empty or inverted ranges check nothing.
///
/// ```
/// let k = [4.0, 1.0, 1.0, 9.0]; // 2 x 2, symmetric, PSD
/// let sd = [2.0, 3.0];
/// let check = |k: &[f64]| {
///     mmfuse_kernels::symmetric_block_is_bad(k, 2, 0..2, 0..2, 1e-12, Some(&sd), 1.0)
/// };
/// assert!(!check(&k));
/// assert!(check(&[4.0, 1.0, 1.5, 9.0])); // asymmetric
/// assert!(check(&[4.0, 7.0, 7.0, 9.0])); // |7| > 2 * 3: a negative 2 x 2 minor
/// ```
///
/// # Panics
/// If `data.len() < n * n`, `rows.end > n`, `cols.end > n`, or `sqrt_diag` is shorter than `n`.
pub fn symmetric_block_is_bad(
    data: &[f64],
    n: usize,
    rows: Range<usize>,
    cols: Range<usize>,
    tol: f64,
    sqrt_diag: Option<&[f64]>,
    slack: f64,
) -> bool {
    symmetric_block_is_bad_on(crate::arch(), data, n, rows, cols, tol, sqrt_diag, slack)
}

/// [`symmetric_block_is_bad`] on a given instruction set.
#[allow(clippy::too_many_arguments)]
pub fn symmetric_block_is_bad_on(
    arch: Arch,
    data: &[f64],
    n: usize,
    rows: Range<usize>,
    cols: Range<usize>,
    tol: f64,
    sqrt_diag: Option<&[f64]>,
    slack: f64,
) -> bool {
    arch.dispatch(SymmetryOp {
        c: Check {
            data,
            n,
            tol,
            sqrt_diag,
            slack,
        },
        rows,
        cols,
    })
}

/// [`symmetric_block_is_bad_on`]'s arguments, for pulp's dispatch.
struct SymmetryOp<'a> {
    c: Check<'a>,
    rows: Range<usize>,
    cols: Range<usize>,
}

impl WithSimd for SymmetryOp<'_> {
    type Output = bool;

    #[inline(always)]
    fn with_simd<S: Simd>(self, _s: S) -> bool {
        let SymmetryOp { c, rows, cols } = self;
        let n = c.n;
        let size = n.checked_mul(n).expect("n * n overflows");
        assert!(c.data.len() >= size, "data shorter than n * n");
        assert!(rows.end <= n && cols.end <= n, "range beyond n");
        if let Some(sd) = c.sqrt_diag {
            assert!(sd.len() >= n, "sqrt_diag shorter than n");
        }
        // Only rows below the first column have pairs in the strictly lower triangle.
        let rows = rows.start.max(cols.start.saturating_add(1))..rows.end;
        if rows.is_empty() || cols.is_empty() {
            return false;
        }
        // The vector path leaves finiteness to the symmetry test, which implies it only for a
        // finite tol (inf - x and NaN are never <= a finite tol); a non-finite tol is a caller's
        // oddity, not worth a second vector test.
        //
        // AVX-512 runs the AVX2 code (compiled with AVX-512 enabled): 512-bit registers would
        // only need wider transposes for a pass that waits on memory either way.
        #[cfg(target_arch = "x86_64")]
        if let Some(v3) = crate::simd::x86_v3(_s) {
            if c.tol.is_finite() {
                return x86::block_is_bad(v3, c, rows, cols);
            }
        }
        scalar_block(&c, rows, cols)
    }
}

/// Pairs of `rows` x `cols` below the diagonal, one at a time (the scalar instruction set, and
/// the edges of the vector path). Branch-free within a row: the common case is a clean matrix.
// `!(x <= limit)` rather than `x > limit`: NaN must fail.
#[allow(clippy::neg_cmp_op_on_partial_ord)]
#[inline(always)]
fn scalar_block(c: &Check<'_>, rows: Range<usize>, cols: Range<usize>) -> bool {
    let n = c.n;
    for i in rows {
        let jend = cols.end.min(i);
        if jend <= cols.start {
            continue;
        }
        let row = &c.data[i * n + cols.start..i * n + jend];
        let mut bad = false;
        for (j, &a) in (cols.start..jend).zip(row) {
            let b = c.data[j * n + i];
            bad |= !(a.is_finite() & b.is_finite()) | !((a - b).abs() <= c.tol);
        }
        if let Some(sd) = c.sqrt_diag {
            let bound_i = sd[i] * c.slack;
            for (&a, &sj) in row.iter().zip(&sd[cols.start..jend]) {
                bad |= !(a.abs() <= bound_i * sj + c.tol);
            }
        }
        if bad {
            return true;
        }
    }
    false
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::{scalar_block, Check};
    use core::arch::x86_64::{__m256d, _CMP_NLE_UQ, _MM_HINT_T0};
    use core::ops::Range;
    use pulp::x86::V3;

    /// How many rows ahead the mirror is prefetched (n = 5000, 128 x 128 blocks, Zen 3: 8 to 24
    /// equally good, about 1.8x faster than no prefetch; 128, a block's whole strip up front,
    /// no better than none).
    const PREFETCH_ROWS: usize = 16;

    /// The register-transpose path, compiled as a function of its own with exactly AVX2 + FMA
    /// enabled (pulp's `V3::vectorize`), also when called from the AVX-512 dispatch. Inlined
    /// into `with_simd` instead, the check with the minor test ran about 15% slower under
    /// AVX-512 and 3% under AVX2 (n = 3000, `examples/smo_symmetry_timing.rs`).
    pub(super) fn block_is_bad(
        simd: V3,
        c: Check<'_>,
        rows: Range<usize>,
        cols: Range<usize>,
    ) -> bool {
        struct Body<'a> {
            simd: V3,
            c: Check<'a>,
            rows: Range<usize>,
            cols: Range<usize>,
        }
        impl pulp::NullaryFnOnce for Body<'_> {
            type Output = bool;
            #[inline(always)]
            fn call(self) -> bool {
                match self.c.sqrt_diag {
                    Some(sd) => block::<true>(self.simd, &self.c, sd, self.rows, self.cols),
                    None => block::<false>(self.simd, &self.c, &[], self.rows, self.cols),
                }
            }
        }
        simd.vectorize(Body {
            simd,
            c,
            rows,
            cols,
        })
    }

    /// 4 consecutive elements (safe: a bounds-checked array, reinterpreted by value).
    #[inline(always)]
    fn load4(s: &[f64]) -> __m256d {
        pulp::cast(*s.first_chunk::<4>().expect("4 elements"))
    }

    /// 8 consecutive elements as two registers.
    #[inline(always)]
    fn load8(s: &[f64]) -> [__m256d; 2] {
        pulp::cast(*s.first_chunk::<8>().expect("8 elements"))
    }

    /// Prefetches the 8 elements from `data[at]` into L1 (they may straddle two lines). A hint
    /// only, never dereferenced: safe whatever the address.
    #[inline(always)]
    fn prefetch(simd: V3, data: &[f64], at: usize) {
        let p = data.as_ptr().wrapping_add(at) as *const i8;
        simd.sse._mm_prefetch::<_MM_HINT_T0>(p);
        simd.sse._mm_prefetch::<_MM_HINT_T0>(p.wrapping_add(7 * 8));
    }

    /// Lanes where row `a` (`K[i][j..j + 4]`) fails against its mirror `bt` (`K[j..j + 4][i]`):
    /// not-less-or-equal, unordered, so true where a test fails or a NaN shows up.
    #[inline(always)]
    fn row_fails<const MINOR: bool>(
        simd: V3,
        a: __m256d,
        bt: __m256d,
        bound_i: __m256d,
        sdj: __m256d,
        tol: __m256d,
    ) -> __m256d {
        let avx = simd.avx;
        let sign = avx._mm256_set1_pd(-0.0);
        let diff = avx._mm256_andnot_pd(sign, avx._mm256_sub_pd(a, bt));
        let f = avx._mm256_cmp_pd::<_CMP_NLE_UQ>(diff, tol);
        if MINOR {
            // Product, product, sum, each rounded: the scalar loop's bound, bit for bit.
            let bound = avx._mm256_add_pd(avx._mm256_mul_pd(bound_i, sdj), tol);
            let abs_a = avx._mm256_andnot_pd(sign, a);
            avx._mm256_or_pd(f, avx._mm256_cmp_pd::<_CMP_NLE_UQ>(abs_a, bound))
        } else {
            f
        }
    }

    /// Lanes failing in the 4 x 4 tile rows `a` (`K[i + k][j..j + 4]`) against the mirror rows
    /// `m` (`K[j + l][i..i + 4]`), transposed in registers.
    #[inline(always)]
    fn tile_fails<const MINOR: bool>(
        simd: V3,
        a: [__m256d; 4],
        m: [__m256d; 4],
        bound_i: [__m256d; 4],
        sdj: __m256d,
        tol: __m256d,
    ) -> __m256d {
        let avx = simd.avx;
        let lo01 = avx._mm256_unpacklo_pd(m[0], m[1]); // m0[0] m1[0] m0[2] m1[2]
        let hi01 = avx._mm256_unpackhi_pd(m[0], m[1]); // m0[1] m1[1] m0[3] m1[3]
        let lo23 = avx._mm256_unpacklo_pd(m[2], m[3]);
        let hi23 = avx._mm256_unpackhi_pd(m[2], m[3]);
        // Column k of the mirror tile, K[j..j + 4][i + k]: the mirror of row k.
        let t0 = avx._mm256_permute2f128_pd::<0x20>(lo01, lo23);
        let t1 = avx._mm256_permute2f128_pd::<0x20>(hi01, hi23);
        let t2 = avx._mm256_permute2f128_pd::<0x31>(lo01, lo23);
        let t3 = avx._mm256_permute2f128_pd::<0x31>(hi01, hi23);
        let f0 = row_fails::<MINOR>(simd, a[0], t0, bound_i[0], sdj, tol);
        let f1 = row_fails::<MINOR>(simd, a[1], t1, bound_i[1], sdj, tol);
        let f2 = row_fails::<MINOR>(simd, a[2], t2, bound_i[2], sdj, tol);
        let f3 = row_fails::<MINOR>(simd, a[3], t3, bound_i[3], sdj, tol);
        // A tree, so that a running OR over tiles is one dependent step per tile.
        avx._mm256_or_pd(avx._mm256_or_pd(f0, f1), avx._mm256_or_pd(f2, f3))
    }

    /// `(sqrt_diag[i + k] * slack)` for the 4 rows from `i`, rounded once per row as the scalar
    /// loop does (unused without the minor test).
    #[inline(always)]
    fn bounds<const MINOR: bool>(simd: V3, c: &Check<'_>, sd: &[f64], i: usize) -> [__m256d; 4] {
        let avx = simd.avx;
        if MINOR {
            [
                avx._mm256_set1_pd(sd[i] * c.slack),
                avx._mm256_set1_pd(sd[i + 1] * c.slack),
                avx._mm256_set1_pd(sd[i + 2] * c.slack),
                avx._mm256_set1_pd(sd[i + 3] * c.slack),
            ]
        } else {
            [avx._mm256_setzero_pd(); 4]
        }
    }

    /// Rows `rows` in bands of 8 (then 4): the columns of whole 4-wide tiles strictly below the
    /// band's diagonal in registers, the rest (a ragged column edge, the triangle next to the
    /// diagonal, fewer than 4 rows left) by the scalar loop. Returns after the first band with
    /// a failure.
    ///
    /// A band of 8 rows reads the mirror as a strip 8 columns (64 bytes) wide, so each cache
    /// line of the upper triangle is used whole while it is in L1 (or by two neighbouring bands
    /// when rows are not 64-byte aligned), and each row of the lower triangle is one sequential
    /// run. The strip walks down rows `8 n` bytes apart (a page or more for n >= 512), which
    /// hardware prefetchers do not follow, so it is prefetched by hand `PREFETCH_ROWS` rows
    /// ahead.
    ///
    /// No intrinsic inside a closure (`array::from_fn` and the like): a closure is a function of
    /// its own, compiled without AVX, so the intrinsics in it would become calls.
    #[inline(always)]
    fn block<const MINOR: bool>(
        simd: V3,
        c: &Check<'_>,
        sd: &[f64],
        rows: Range<usize>,
        cols: Range<usize>,
    ) -> bool {
        let avx = simd.avx;
        let (data, n) = (c.data, c.n);
        let tol = avx._mm256_set1_pd(c.tol);
        // Whole tiles: columns j..j + 4 with j + 3 < i, below every row of a band from row i.
        let tiles_end = |i: usize| {
            let jlim = cols.end.min(i);
            if jlim > cols.start {
                cols.start + (jlim - cols.start) / 4 * 4
            } else {
                cols.start
            }
        };
        let row = |i: usize, jv_end: usize| {
            pulp::as_arrays::<4, f64>(&data[i * n + cols.start..i * n + jv_end]).0
        };
        let mut i = rows.start;
        while i + 8 <= rows.end {
            let jv_end = tiles_end(i);
            let a: [&[[f64; 4]]; 8] = [
                row(i, jv_end),
                row(i + 1, jv_end),
                row(i + 2, jv_end),
                row(i + 3, jv_end),
                row(i + 4, jv_end),
                row(i + 5, jv_end),
                row(i + 6, jv_end),
                row(i + 7, jv_end),
            ];
            let sd_cols = if MINOR {
                pulp::as_arrays::<4, f64>(&sd[cols.start..jv_end]).0
            } else {
                &[]
            };
            let (blo, bhi) = (
                bounds::<MINOR>(simd, c, sd, i),
                bounds::<MINOR>(simd, c, sd, i + 4),
            );
            for j in cols.start..(cols.start + PREFETCH_ROWS).min(jv_end) {
                prefetch(simd, data, j * n + i);
            }
            let mut bad = avx._mm256_setzero_pd();
            for (t, j) in (cols.start..jv_end).step_by(4).enumerate() {
                let jp = j + PREFETCH_ROWS;
                if jp + 4 <= jv_end {
                    prefetch(simd, data, jp * n + i);
                    prefetch(simd, data, (jp + 1) * n + i);
                    prefetch(simd, data, (jp + 2) * n + i);
                    prefetch(simd, data, (jp + 3) * n + i);
                }
                let [m0l, m0h] = load8(&data[j * n + i..]);
                let [m1l, m1h] = load8(&data[(j + 1) * n + i..]);
                let [m2l, m2h] = load8(&data[(j + 2) * n + i..]);
                let [m3l, m3h] = load8(&data[(j + 3) * n + i..]);
                let sdj = if MINOR { pulp::cast(sd_cols[t]) } else { tol };
                let alo = [
                    pulp::cast(a[0][t]),
                    pulp::cast(a[1][t]),
                    pulp::cast(a[2][t]),
                    pulp::cast(a[3][t]),
                ];
                let ahi = [
                    pulp::cast(a[4][t]),
                    pulp::cast(a[5][t]),
                    pulp::cast(a[6][t]),
                    pulp::cast(a[7][t]),
                ];
                let flo = tile_fails::<MINOR>(simd, alo, [m0l, m1l, m2l, m3l], blo, sdj, tol);
                let fhi = tile_fails::<MINOR>(simd, ahi, [m0h, m1h, m2h, m3h], bhi, sdj, tol);
                bad = avx._mm256_or_pd(bad, avx._mm256_or_pd(flo, fhi));
            }
            if avx._mm256_movemask_pd(bad) != 0 || scalar_block(c, i..i + 8, jv_end..cols.end) {
                return true;
            }
            i += 8;
        }
        // At most one band of 4 left: not worth prefetching.
        if i + 4 <= rows.end {
            let jv_end = tiles_end(i);
            let a = [
                row(i, jv_end),
                row(i + 1, jv_end),
                row(i + 2, jv_end),
                row(i + 3, jv_end),
            ];
            let sd_cols = if MINOR {
                pulp::as_arrays::<4, f64>(&sd[cols.start..jv_end]).0
            } else {
                &[]
            };
            let b = bounds::<MINOR>(simd, c, sd, i);
            let mut bad = avx._mm256_setzero_pd();
            for (t, j) in (cols.start..jv_end).step_by(4).enumerate() {
                let m = [
                    load4(&data[j * n + i..]),
                    load4(&data[(j + 1) * n + i..]),
                    load4(&data[(j + 2) * n + i..]),
                    load4(&data[(j + 3) * n + i..]),
                ];
                let sdj = if MINOR { pulp::cast(sd_cols[t]) } else { tol };
                let at = [
                    pulp::cast(a[0][t]),
                    pulp::cast(a[1][t]),
                    pulp::cast(a[2][t]),
                    pulp::cast(a[3][t]),
                ];
                bad = avx._mm256_or_pd(bad, tile_fails::<MINOR>(simd, at, m, b, sdj, tol));
            }
            if avx._mm256_movemask_pd(bad) != 0 || scalar_block(c, i..i + 4, jv_end..cols.end) {
                return true;
            }
            i += 4;
        }
        scalar_block(c, i..rows.end, cols)
    }
}
