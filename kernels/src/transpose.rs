//! The mirror of a Gram matrix: `dst = src^T` between two blocks of one row-major matrix.
//!
//! K(X, X) computes only the blocks on and above the diagonal and writes each one's transpose
//! into its mirror position. Element by element, that is one scalar store per entry into rows
//! a whole matrix row apart: measured at n = 4096 (f32, AVX-512 host), 16% of the assembly's
//! time, more than the epilogue. Here the transpose goes through registers instead, a square
//! of one 256-bit register's width at a time (8 x 8 for f32, 4 x 4 for f64: unpacks, shuffles
//! and 128-bit lane permutes), with source rows taken in bands of two squares so that every
//! store run in the destination is a whole 64-byte line. AVX-512 has its own path: squares of
//! one line (16 x 16 f32, 8 x 8 f64) in 512-bit registers, a strip of source columns at a
//! time all the way down the source, so that every destination row of a square gets one whole
//! 64-byte store and a strip writes only 16 (8) destination rows. On an Intel AVX-512 host the
//! AVX2 order (bands of 16 source rows, each touching every destination row of the tile, each
//! line completed from two squares) made the mirror cost 11-14 ms of a 40 ms assembly
//! (f32, n = 4096); the line squares cost 1-3 ms.
//!
//! Optionally the stores are non-temporal (`stream`): the mirrored half of a large K goes to
//! memory without first reading the destination lines into the cache (a plain store must
//! fetch the line it writes into, doubling the traffic of a pass that only writes) and without
//! evicting the tiles still being computed. Worth it only when K is much larger than the last
//! level cache, so the caller decides. A streamed run needs a 16-byte aligned destination;
//! other rows fall back to plain stores.
//!
//! Both paths copy bits: the result is exactly the scalar transpose, whatever the path.

use crate::tile::TileMut;
use pulp::Simd;

/// Source rows per band of the scalar path (a cache line of f32 per destination row).
const SCALAR_BAND: usize = 16;

/// `dst[j][i] = src[i][j]` on the instruction set of `S`: register transposes where `S` has
/// AVX2, the scalar band loop otherwise.
#[inline(always)]
pub(crate) fn transpose_tile<S: Simd, T: RegisterTranspose>(
    _s: S,
    src: &TileMut<'_, T>,
    dst: &mut TileMut<'_, T>,
    stream: bool,
) {
    assert_eq!(dst.nrows(), src.ncols(), "transpose: shape mismatch");
    assert_eq!(dst.ncols(), src.nrows(), "transpose: shape mismatch");
    #[cfg(target_arch = "x86_64")]
    if let Some(v4) = crate::simd::x86_v4(_s) {
        x86::transpose_v4(v4, src, dst, stream);
        return;
    }
    #[cfg(target_arch = "x86_64")]
    if let Some(v3) = crate::simd::x86_v3(_s) {
        x86::transpose(v3, src, dst, stream);
        return;
    }
    scalar_region(src, dst, 0..src.nrows(), 0..src.ncols());
}

/// `dst = src` (same shape) on the instruction set of `S`; with `stream` and AVX2, through
/// non-temporal stores where the destination is 16-byte aligned.
#[inline(always)]
pub(crate) fn copy_tile<S: Simd, T: RegisterTranspose>(
    _s: S,
    src: &TileMut<'_, T>,
    dst: &mut TileMut<'_, T>,
    stream: bool,
) {
    assert_eq!(dst.nrows(), src.nrows(), "copy: shape mismatch");
    assert_eq!(dst.ncols(), src.ncols(), "copy: shape mismatch");
    #[cfg(target_arch = "x86_64")]
    if let Some(v4) = crate::simd::x86_v4(_s) {
        if stream {
            for i in 0..src.nrows() {
                T::stream_row_lines(v4, src.row(i), dst.row_mut(i));
            }
            v4.sse._mm_sfence();
            return;
        }
    }
    #[cfg(target_arch = "x86_64")]
    if let Some(v3) = crate::simd::x86_v3(_s) {
        if stream {
            for i in 0..src.nrows() {
                T::stream_row(v3, src.row(i), dst.row_mut(i));
            }
            v3.sse._mm_sfence();
            return;
        }
    }
    for i in 0..src.nrows() {
        dst.row_mut(i).copy_from_slice(src.row(i));
    }
}

/// The scalar transpose of `src[rows][cols]` into `dst[cols][rows]`, in bands of
/// [`SCALAR_BAND`] source rows so that each destination row gets a contiguous run per band.
#[inline(always)]
fn scalar_region<T: Copy>(
    src: &TileMut<'_, T>,
    dst: &mut TileMut<'_, T>,
    rows: core::ops::Range<usize>,
    cols: core::ops::Range<usize>,
) {
    let mut i0 = rows.start;
    while i0 < rows.end {
        let i1 = (i0 + SCALAR_BAND).min(rows.end);
        let band: [&[T]; SCALAR_BAND] =
            core::array::from_fn(|k| if i0 + k < i1 { src.row(i0 + k) } else { &[] });
        let band = &band[..i1 - i0];
        for j in cols.clone() {
            let out = &mut dst.row_mut(j)[i0..i1];
            for (o, r) in out.iter_mut().zip(band) {
                *o = r[j];
            }
        }
        i0 = i1;
    }
}

/// Element types with a register transpose (implemented for f32 and f64).
pub(crate) trait RegisterTranspose: Copy {
    /// Side of the square transposed in one go (lanes of a 256-bit register).
    #[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
    const W: usize;
    /// Transposes the `W x W` square `rows[k][j..j + W]` into `dst` rows `j..j + W` at
    /// columns `at..at + W`.
    /// `dst = src` (same length), non-temporal where aligned (no fence: the caller's).
    #[cfg(target_arch = "x86_64")]
    fn stream_row(simd: pulp::x86::V3, src: &[Self], dst: &mut [Self]);
    #[cfg(target_arch = "x86_64")]
    fn square(
        simd: pulp::x86::V3,
        rows: &[&[Self]],
        j: usize,
        dst: &mut TileMut<'_, Self>,
        at: usize,
        stream: bool,
    );
    /// Two squares, source rows `rows[..W]` and `rows[W..2 W]`, into `dst` columns
    /// `at..at + 2 W`: each destination row's run of `2 W` (64 bytes) stored as its two
    /// halves back to back.
    #[cfg(target_arch = "x86_64")]
    fn square_pair(
        simd: pulp::x86::V3,
        rows: &[&[Self]],
        j: usize,
        dst: &mut TileMut<'_, Self>,
        at: usize,
        stream: bool,
    );
    /// `dst = src` (same length): the elements up to `dst`'s first line boundary plainly,
    /// then whole lines with one non-temporal 64-byte store each, the tail plainly (no fence:
    /// the caller's).
    #[cfg(target_arch = "x86_64")]
    fn stream_row_lines(simd: pulp::x86::V4, src: &[Self], dst: &mut [Self]);
    /// Side of the AVX-512 square: one 64-byte line of elements (16 f32, 8 f64).
    #[cfg(target_arch = "x86_64")]
    const W_LINE: usize;
    /// As [`Self::square`] for the `W_LINE x W_LINE` square on 512-bit registers: every
    /// destination row gets one whole 64-byte store.
    #[cfg(target_arch = "x86_64")]
    fn square_line(
        simd: pulp::x86::V4,
        rows: &[&[Self]],
        j: usize,
        dst: &mut TileMut<'_, Self>,
        at: usize,
        stream: bool,
    );
}

#[cfg(not(target_arch = "x86_64"))]
impl RegisterTranspose for f32 {
    const W: usize = 8;
}
#[cfg(not(target_arch = "x86_64"))]
impl RegisterTranspose for f64 {
    const W: usize = 4;
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::{scalar_region, RegisterTranspose};
    use crate::tile::TileMut;
    use core::arch::x86_64::{__m256, __m256d, __m512, __m512d};
    use pulp::x86::{V3, V4};

    /// Source rows per band: two squares, so each destination run is 2 W elements (64 bytes).
    const SQUARES_PER_BAND: usize = 2;

    /// The AVX2 path: the rows before the destination's first line boundary (streamed only)
    /// through the scalar loop, the rest by [`region`].
    #[inline(always)]
    pub(super) fn transpose<T: RegisterTranspose>(
        simd: V3,
        src: &TileMut<'_, T>,
        dst: &mut TileMut<'_, T>,
        stream: bool,
    ) {
        let (m, n) = (src.nrows(), src.ncols());
        // Streamed, the bands start where the destination's lines do (the first `head`
        // source rows, up to the first line boundary, go through the scalar loop): a band's
        // 64-byte runs then fill whole lines, which the write-combining buffers send out
        // whole, instead of every run straddling two lines whose halves are written by two
        // bands far apart in time.
        let head = if stream { line_head(dst).min(m) } else { 0 };
        scalar_region(src, dst, 0..head, 0..n);
        region(simd, src, dst, head..m, 0..n, stream);
        if stream {
            // Non-temporal stores are weakly ordered: fence them before the caller (or another
            // thread, after the caller's synchronisation) reads the destination.
            simd.sse._mm_sfence();
        }
    }

    /// The AVX-512 path. Source columns are taken in strips of one line of elements
    /// (`W_LINE`), and each strip all the way down the source in squares of `W_LINE` rows:
    /// every destination row of a square gets one whole 64-byte store (streamed: a full line
    /// for the write-combining buffer at once), and a strip's stores go to only `W_LINE`
    /// destination rows, contiguous along each. Measured on an Intel AVX-512 host (f32,
    /// n = 4096, 256 x 256 tiles): the mirror of K(X, X) went from 11-14 ms to 1-3 ms on top
    /// of the copy of the upper blocks, against the AVX2 squares in bands of 16 rows, which
    /// touch 256 destination rows per band and complete each line from two squares (README,
    /// "Gram at the limit"). The ragged edges go to [`region`], then the scalar loop.
    #[inline(always)]
    pub(super) fn transpose_v4<T: RegisterTranspose>(
        simd: V4,
        src: &TileMut<'_, T>,
        dst: &mut TileMut<'_, T>,
        stream: bool,
    ) {
        let w = T::W_LINE;
        let (m, n) = (src.nrows(), src.ncols());
        let head = if stream { line_head(dst).min(m) } else { 0 };
        let m_sq = head + (m - head) / w * w;
        let n_sq = n - n % w;
        scalar_region(src, dst, 0..head, 0..n);
        let mut j = 0;
        while j < n_sq {
            let mut i0 = head;
            while i0 < m_sq {
                // At most 16 rows (f32). A loop: `array::from_fn` was an out-of-line call
                // per square.
                let mut rows: [&[T]; 16] = [&[]; 16];
                for (k, r) in rows[..w].iter_mut().enumerate() {
                    *r = src.row(i0 + k);
                }
                T::square_line(simd, &rows[..w], j, dst, i0, stream);
                i0 += w;
            }
            j += w;
        }
        region(*simd, src, dst, head..m_sq, n_sq..n, stream);
        region(*simd, src, dst, m_sq..m, 0..n, stream);
        if stream {
            // As in `transpose`.
            simd.sse._mm_sfence();
        }
    }

    /// The AVX2 squares over source rows `rows` x columns `cols`: a strip of `W` source
    /// columns at a time, down the source in bands of `2 W` rows (then `W`), so that a strip
    /// writes `W` destination rows, one whole 64-byte run per band in each; whole squares
    /// only, the ragged right and bottom edges through the scalar loop. No fence (the
    /// caller's). Strip by strip rather than band by band (each band across all columns,
    /// touching every destination row): on the Intel AVX-512 host with the AVX2 path forced,
    /// `gram_into` f32 4096 x 300 went from 37-48 to 31 ms and 8192 x 64 from 84-89 to
    /// 54-57 ms (README, "Gram at the limit"; the AVX2-only Zen 3 host was not available).
    #[inline(always)]
    fn region<T: RegisterTranspose>(
        simd: V3,
        src: &TileMut<'_, T>,
        dst: &mut TileMut<'_, T>,
        rows: core::ops::Range<usize>,
        cols: core::ops::Range<usize>,
        stream: bool,
    ) {
        let w = T::W;
        let m_sq = rows.start + rows.len() / w * w;
        let n_sq = cols.start + cols.len() / w * w;
        let band = SQUARES_PER_BAND * w;
        let mut j = cols.start;
        while j < n_sq {
            let mut i0 = rows.start;
            while i0 < m_sq {
                let rows_here = if i0 + band <= m_sq { band } else { w };
                // At most 2 W = 16 rows (a loop, as in `transpose_v4`).
                let mut band_rows: [&[T]; 16] = [&[]; 16];
                for (k, r) in band_rows[..rows_here].iter_mut().enumerate() {
                    *r = src.row(i0 + k);
                }
                if rows_here == band {
                    T::square_pair(simd, &band_rows[..band], j, dst, i0, stream);
                } else {
                    T::square(simd, &band_rows[..w], j, dst, i0, stream);
                }
                i0 += rows_here;
            }
            j += w;
        }
        scalar_region(src, dst, rows.start..m_sq, n_sq..cols.end);
        scalar_region(src, dst, m_sq..rows.end, cols);
    }

    /// Elements from `p` to its first 64-byte line boundary (0 when `p` is not aligned to
    /// its element: then no store is ever line-aligned).
    #[inline(always)]
    fn line_head_of<T>(p: *const T) -> usize {
        const LINE: usize = 64;
        let (size, addr) = (core::mem::size_of::<T>(), p as usize);
        if addr % size != 0 {
            return 0;
        }
        (LINE - addr % LINE) % LINE / size
    }

    /// Elements from the start of `dst`'s rows to their first 64-byte line boundary, when
    /// every row has the same offset within its lines (the row stride a whole number of
    /// lines); 0 otherwise.
    #[inline(always)]
    fn line_head<T>(dst: &TileMut<'_, T>) -> usize {
        const LINE: usize = 64;
        let size = core::mem::size_of::<T>();
        let addr = dst.addr();
        if dst.nrows() > 1 && (dst.row_stride() * size) % LINE != 0 || addr % size != 0 {
            return 0;
        }
        (LINE - addr % LINE) % LINE / size
    }

    /// `row[j..j + 8]` (safe: a bounds-checked array, reinterpreted by value).
    #[inline(always)]
    fn load_f32(row: &[f32], j: usize) -> __m256 {
        pulp::cast(*row[j..].first_chunk::<8>().expect("8 elements"))
    }

    /// `row[j..j + 4]`.
    #[inline(always)]
    fn load_f64(row: &[f64], j: usize) -> __m256d {
        pulp::cast(*row[j..].first_chunk::<4>().expect("4 elements"))
    }

    /// `row[j..j + 16]` in one 512-bit register.
    #[inline(always)]
    fn load_line_f32(row: &[f32], j: usize) -> __m512 {
        pulp::cast(*row[j..].first_chunk::<16>().expect("16 elements"))
    }

    /// `row[j..j + 8]` in one 512-bit register.
    #[inline(always)]
    fn load_line_f64(row: &[f64], j: usize) -> __m512d {
        pulp::cast(*row[j..].first_chunk::<8>().expect("8 elements"))
    }

    /// Stores `v` (16 f32, 64 bytes) at `out[..16]`: one non-temporal store when asked and
    /// `out` starts a line, a plain one otherwise.
    #[inline(always)]
    fn store_line_f32(simd: V4, out: &mut [f32], v: __m512, stream: bool) {
        let out = out.first_chunk_mut::<16>().expect("16 elements");
        let p = out.as_mut_ptr();
        if stream && (p as usize) % 64 == 0 {
            // SAFETY: `p` points to 16 writable f32 (`out`), 64-byte aligned as checked.
            unsafe { simd.avx512f._mm512_stream_ps(p, v) };
        } else {
            *out = pulp::cast(v);
        }
    }

    /// Stores `v` (8 f64, 64 bytes) at `out[..8]`, as [`store_line_f32`].
    #[inline(always)]
    fn store_line_f64(simd: V4, out: &mut [f64], v: __m512d, stream: bool) {
        let out = out.first_chunk_mut::<8>().expect("8 elements");
        let p = out.as_mut_ptr();
        if stream && (p as usize) % 64 == 0 {
            // SAFETY: `p` points to 8 writable f64 (`out`), 64-byte aligned as checked.
            unsafe { simd.avx512f._mm512_stream_pd(p, v) };
        } else {
            *out = pulp::cast(v);
        }
    }

    /// Stores `v` (8 f32) at `out[..8]`: streamed when asked and the address allows it.
    #[inline(always)]
    fn store_f32(simd: V3, out: &mut [f32], v: __m256, stream: bool) {
        let out = out.first_chunk_mut::<8>().expect("8 elements");
        let p = out.as_mut_ptr();
        if stream && (p as usize) % 32 == 0 {
            // SAFETY: `p` points to 8 writable f32 (`out`), 32-byte aligned as checked.
            unsafe { simd.avx._mm256_stream_ps(p, v) };
        } else if stream && (p as usize) % 16 == 0 {
            let lo = simd.avx._mm256_castps256_ps128(v);
            let hi = simd.avx._mm256_extractf128_ps::<1>(v);
            // SAFETY: `p` and `p + 4` point to 4 writable f32 each (`out`), 16-byte aligned.
            unsafe {
                simd.sse._mm_stream_ps(p, lo);
                simd.sse._mm_stream_ps(p.add(4), hi);
            }
        } else {
            *out = pulp::cast(v);
        }
    }

    /// Stores `v` (4 f64) at `out[..4]`: streamed when asked and the address allows it.
    #[inline(always)]
    fn store_f64(simd: V3, out: &mut [f64], v: __m256d, stream: bool) {
        let out = out.first_chunk_mut::<4>().expect("4 elements");
        let p = out.as_mut_ptr();
        if stream && (p as usize) % 32 == 0 {
            // SAFETY: `p` points to 4 writable f64 (`out`), 32-byte aligned as checked.
            unsafe { simd.avx._mm256_stream_pd(p, v) };
        } else if stream && (p as usize) % 16 == 0 {
            let lo = simd.avx._mm256_castpd256_pd128(v);
            let hi = simd.avx._mm256_extractf128_pd::<1>(v);
            // SAFETY: `p` and `p + 2` point to 2 writable f64 each (`out`), 16-byte aligned.
            unsafe {
                simd.sse2._mm_stream_pd(p, lo);
                simd.sse2._mm_stream_pd(p.add(2), hi);
            }
        } else {
            *out = pulp::cast(v);
        }
    }

    /// The `W x W` square `rows[k][j..j + W]` transposed: element `l` is column `j + l`.
    #[inline(always)]
    fn regs_f32(simd: V3, rows: &[&[f32]], j: usize) -> [__m256; 8] {
        let avx = simd.avx;
        let r = [
            load_f32(rows[0], j),
            load_f32(rows[1], j),
            load_f32(rows[2], j),
            load_f32(rows[3], j),
            load_f32(rows[4], j),
            load_f32(rows[5], j),
            load_f32(rows[6], j),
            load_f32(rows[7], j),
        ];
        // Pairs of rows interleaved: t0 = r0[0] r1[0] r0[1] r1[1] | r0[4] r1[4] r0[5] r1[5].
        let t0 = avx._mm256_unpacklo_ps(r[0], r[1]);
        let t1 = avx._mm256_unpackhi_ps(r[0], r[1]);
        let t2 = avx._mm256_unpacklo_ps(r[2], r[3]);
        let t3 = avx._mm256_unpackhi_ps(r[2], r[3]);
        let t4 = avx._mm256_unpacklo_ps(r[4], r[5]);
        let t5 = avx._mm256_unpackhi_ps(r[4], r[5]);
        let t6 = avx._mm256_unpacklo_ps(r[6], r[7]);
        let t7 = avx._mm256_unpackhi_ps(r[6], r[7]);
        // Quadruples: u0 = column 0 of rows 0..4 | column 4 of rows 0..4.
        let u0 = avx._mm256_shuffle_ps::<0x44>(t0, t2);
        let u1 = avx._mm256_shuffle_ps::<0xEE>(t0, t2);
        let u2 = avx._mm256_shuffle_ps::<0x44>(t1, t3);
        let u3 = avx._mm256_shuffle_ps::<0xEE>(t1, t3);
        let u4 = avx._mm256_shuffle_ps::<0x44>(t4, t6);
        let u5 = avx._mm256_shuffle_ps::<0xEE>(t4, t6);
        let u6 = avx._mm256_shuffle_ps::<0x44>(t5, t7);
        let u7 = avx._mm256_shuffle_ps::<0xEE>(t5, t7);
        // Halves joined: c[l] is column j + l of the square.
        [
            avx._mm256_permute2f128_ps::<0x20>(u0, u4),
            avx._mm256_permute2f128_ps::<0x20>(u1, u5),
            avx._mm256_permute2f128_ps::<0x20>(u2, u6),
            avx._mm256_permute2f128_ps::<0x20>(u3, u7),
            avx._mm256_permute2f128_ps::<0x31>(u0, u4),
            avx._mm256_permute2f128_ps::<0x31>(u1, u5),
            avx._mm256_permute2f128_ps::<0x31>(u2, u6),
            avx._mm256_permute2f128_ps::<0x31>(u3, u7),
        ]
    }

    impl RegisterTranspose for f32 {
        const W: usize = 8;

        #[inline(always)]
        fn stream_row(simd: V3, src: &[f32], dst: &mut [f32]) {
            assert_eq!(src.len(), dst.len(), "copy: length mismatch");
            let full = src.len() - src.len() % 8;
            let mut j = 0;
            while j < full {
                store_f32(simd, &mut dst[j..], load_f32(src, j), true);
                j += 8;
            }
            dst[full..].copy_from_slice(&src[full..]);
        }

        #[inline(always)]
        fn square(
            simd: V3,
            rows: &[&[f32]],
            j: usize,
            dst: &mut TileMut<'_, f32>,
            at: usize,
            stream: bool,
        ) {
            let c = regs_f32(simd, rows, j);
            for (l, &v) in c.iter().enumerate() {
                store_f32(simd, &mut dst.row_mut(j + l)[at..], v, stream);
            }
        }

        #[inline(always)]
        fn square_pair(
            simd: V3,
            rows: &[&[f32]],
            j: usize,
            dst: &mut TileMut<'_, f32>,
            at: usize,
            stream: bool,
        ) {
            let (c0, c1) = (regs_f32(simd, &rows[..8], j), regs_f32(simd, &rows[8..], j));
            for l in 0..8 {
                let out = &mut dst.row_mut(j + l)[at..];
                store_f32(simd, out, c0[l], stream);
                store_f32(simd, &mut out[8..], c1[l], stream);
            }
        }

        const W_LINE: usize = 16;

        #[inline(always)]
        fn stream_row_lines(simd: V4, src: &[f32], dst: &mut [f32]) {
            assert_eq!(src.len(), dst.len(), "copy: length mismatch");
            let head = line_head_of(dst.as_ptr()).min(dst.len());
            dst[..head].copy_from_slice(&src[..head]);
            let full = head + (dst.len() - head) / 16 * 16;
            let mut j = head;
            while j < full {
                store_line_f32(simd, &mut dst[j..], load_line_f32(src, j), true);
                j += 16;
            }
            dst[full..].copy_from_slice(&src[full..]);
        }

        #[inline(always)]
        fn square_line(
            simd: V4,
            rows: &[&[f32]],
            j: usize,
            dst: &mut TileMut<'_, f32>,
            at: usize,
            stream: bool,
        ) {
            let f = simd.avx512f;
            // A loop, not `array::from_fn`: its closure would be a function of its own,
            // compiled without AVX-512, with the 16 registers passed back through memory
            // (measured: 2 % of an f64 assembly in `try_from_fn`).
            let mut r = [f._mm512_setzero_ps(); 16];
            for (k, v) in r.iter_mut().enumerate() {
                *v = load_line_f32(rows[k], j);
            }
            // Within each 128-bit lane L (columns 4L..4L + 4) as in the AVX2 square:
            // t[2k] = r2k[4L] r2k+1[4L] r2k[4L+1] r2k+1[4L+1], t[2k+1] the same for 4L+2, 4L+3.
            let mut t = [r[0]; 16];
            for k in 0..8 {
                t[2 * k] = f._mm512_unpacklo_ps(r[2 * k], r[2 * k + 1]);
                t[2 * k + 1] = f._mm512_unpackhi_ps(r[2 * k], r[2 * k + 1]);
            }
            // u[4q + m], lane L: column 4L + m of rows 4q..4q + 4.
            let mut u = [r[0]; 16];
            for q in 0..4 {
                u[4 * q] = f._mm512_shuffle_ps::<0x44>(t[4 * q], t[4 * q + 2]);
                u[4 * q + 1] = f._mm512_shuffle_ps::<0xEE>(t[4 * q], t[4 * q + 2]);
                u[4 * q + 2] = f._mm512_shuffle_ps::<0x44>(t[4 * q + 1], t[4 * q + 3]);
                u[4 * q + 3] = f._mm512_shuffle_ps::<0xEE>(t[4 * q + 1], t[4 * q + 3]);
            }
            // The 4 x 4 transpose of lanes, for each m: column 4L + m wants lane L of
            // u[m], u[4 + m], u[8 + m], u[12 + m] as its lanes 0..4.
            let mut c = [r[0]; 16];
            for m in 0..4 {
                let (a0, a1, a2, a3) = (u[m], u[4 + m], u[8 + m], u[12 + m]);
                let even01 = f._mm512_shuffle_f32x4::<0x88>(a0, a1); // a0L0 a0L2 a1L0 a1L2
                let odd01 = f._mm512_shuffle_f32x4::<0xDD>(a0, a1); // a0L1 a0L3 a1L1 a1L3
                let even23 = f._mm512_shuffle_f32x4::<0x88>(a2, a3);
                let odd23 = f._mm512_shuffle_f32x4::<0xDD>(a2, a3);
                c[m] = f._mm512_shuffle_f32x4::<0x88>(even01, even23);
                c[8 + m] = f._mm512_shuffle_f32x4::<0xDD>(even01, even23);
                c[4 + m] = f._mm512_shuffle_f32x4::<0x88>(odd01, odd23);
                c[12 + m] = f._mm512_shuffle_f32x4::<0xDD>(odd01, odd23);
            }
            for (l, &v) in c.iter().enumerate() {
                store_line_f32(simd, &mut dst.row_mut(j + l)[at..], v, stream);
            }
        }
    }

    /// The `W x W` square `rows[k][j..j + W]` transposed: element `l` is column `j + l`.
    #[inline(always)]
    fn regs_f64(simd: V3, rows: &[&[f64]], j: usize) -> [__m256d; 4] {
        let avx = simd.avx;
        let r = [
            load_f64(rows[0], j),
            load_f64(rows[1], j),
            load_f64(rows[2], j),
            load_f64(rows[3], j),
        ];
        let lo01 = avx._mm256_unpacklo_pd(r[0], r[1]); // r0[0] r1[0] r0[2] r1[2]
        let hi01 = avx._mm256_unpackhi_pd(r[0], r[1]); // r0[1] r1[1] r0[3] r1[3]
        let lo23 = avx._mm256_unpacklo_pd(r[2], r[3]);
        let hi23 = avx._mm256_unpackhi_pd(r[2], r[3]);
        [
            avx._mm256_permute2f128_pd::<0x20>(lo01, lo23),
            avx._mm256_permute2f128_pd::<0x20>(hi01, hi23),
            avx._mm256_permute2f128_pd::<0x31>(lo01, lo23),
            avx._mm256_permute2f128_pd::<0x31>(hi01, hi23),
        ]
    }

    impl RegisterTranspose for f64 {
        const W: usize = 4;

        #[inline(always)]
        fn stream_row(simd: V3, src: &[f64], dst: &mut [f64]) {
            assert_eq!(src.len(), dst.len(), "copy: length mismatch");
            let full = src.len() - src.len() % 4;
            let mut j = 0;
            while j < full {
                store_f64(simd, &mut dst[j..], load_f64(src, j), true);
                j += 4;
            }
            dst[full..].copy_from_slice(&src[full..]);
        }

        #[inline(always)]
        fn square(
            simd: V3,
            rows: &[&[f64]],
            j: usize,
            dst: &mut TileMut<'_, f64>,
            at: usize,
            stream: bool,
        ) {
            let c = regs_f64(simd, rows, j);
            for (l, &v) in c.iter().enumerate() {
                store_f64(simd, &mut dst.row_mut(j + l)[at..], v, stream);
            }
        }

        #[inline(always)]
        fn square_pair(
            simd: V3,
            rows: &[&[f64]],
            j: usize,
            dst: &mut TileMut<'_, f64>,
            at: usize,
            stream: bool,
        ) {
            let (c0, c1) = (regs_f64(simd, &rows[..4], j), regs_f64(simd, &rows[4..], j));
            for l in 0..4 {
                let out = &mut dst.row_mut(j + l)[at..];
                store_f64(simd, out, c0[l], stream);
                store_f64(simd, &mut out[4..], c1[l], stream);
            }
        }

        const W_LINE: usize = 8;

        #[inline(always)]
        fn stream_row_lines(simd: V4, src: &[f64], dst: &mut [f64]) {
            assert_eq!(src.len(), dst.len(), "copy: length mismatch");
            let head = line_head_of(dst.as_ptr()).min(dst.len());
            dst[..head].copy_from_slice(&src[..head]);
            let full = head + (dst.len() - head) / 8 * 8;
            let mut j = head;
            while j < full {
                store_line_f64(simd, &mut dst[j..], load_line_f64(src, j), true);
                j += 8;
            }
            dst[full..].copy_from_slice(&src[full..]);
        }

        #[inline(always)]
        fn square_line(
            simd: V4,
            rows: &[&[f64]],
            j: usize,
            dst: &mut TileMut<'_, f64>,
            at: usize,
            stream: bool,
        ) {
            let f = simd.avx512f;
            // A loop, not `array::from_fn` (see the f32 square).
            let mut r = [f._mm512_setzero_pd(); 8];
            for (k, v) in r.iter_mut().enumerate() {
                *v = load_line_f64(rows[k], j);
            }
            // t[2q + m], lane L (columns 2L, 2L + 1): column 2L + m of rows 2q, 2q + 1.
            let mut t = [r[0]; 8];
            for q in 0..4 {
                t[2 * q] = f._mm512_unpacklo_pd(r[2 * q], r[2 * q + 1]);
                t[2 * q + 1] = f._mm512_unpackhi_pd(r[2 * q], r[2 * q + 1]);
            }
            // The 4 x 4 transpose of lanes, for each m: column 2L + m wants lane L of
            // t[m], t[2 + m], t[4 + m], t[6 + m] as its lanes 0..4.
            let mut c = [r[0]; 8];
            for m in 0..2 {
                let (a0, a1, a2, a3) = (t[m], t[2 + m], t[4 + m], t[6 + m]);
                let even01 = f._mm512_shuffle_f64x2::<0x88>(a0, a1);
                let odd01 = f._mm512_shuffle_f64x2::<0xDD>(a0, a1);
                let even23 = f._mm512_shuffle_f64x2::<0x88>(a2, a3);
                let odd23 = f._mm512_shuffle_f64x2::<0xDD>(a2, a3);
                c[m] = f._mm512_shuffle_f64x2::<0x88>(even01, even23);
                c[4 + m] = f._mm512_shuffle_f64x2::<0xDD>(even01, even23);
                c[2 + m] = f._mm512_shuffle_f64x2::<0x88>(odd01, odd23);
                c[6 + m] = f._mm512_shuffle_f64x2::<0xDD>(odd01, odd23);
            }
            for (l, &v) in c.iter().enumerate() {
                store_line_f64(simd, &mut dst.row_mut(j + l)[at..], v, stream);
            }
        }
    }
}
