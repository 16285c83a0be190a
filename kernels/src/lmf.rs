//! Low-rank multimodal fusion (LMF): the element-wise pass that follows the per-modality GEMMs.
//!
//! Layout. For a block of `rows` samples, modality `m` has a buffer `a[m]` of `rows x (rank h)`
//! values, row-major: `a[m][n * rank * h + i * h + k]` is `A_m[i][n, k]`, the rank-`i` projection
//! of sample `n` (one GEMM `Z_m W_m` produced all ranks at once). The pass computes
//!
//! ```text
//! forward:   y[n, k] = sum_i w_i prod_m A_m[i][n, k] + c[k]      (w = 1 when not given)
//! backward:  dA_m[i][n, k] = w_i G[n, k] prod_{m' != m} A_m'[i][n, k]
//!            gp[i, k]     += sum_n G[n, k] prod_m A_m[i][n, k]   (so dw_i = sum_k gp[i, k])
//! ```
//!
//! SIMD runs along `k` (the output features, contiguous inside each rank), so one register holds
//! the same rank of `LANES` consecutive outputs and the rank sum is a chain of FMAs, in rank order
//! (the same order for every instruction set and for the scalar twin). The forward pass works on
//! four registers of outputs at a time: four independent FMA chains hide the FMA latency.
//!
//! The leave-one-out products of the backward pass use prefix and suffix products, never a
//! division (a zero factor would make the quotient 0/0): an ascending sweep stores the prefix
//! products `prod_{m' < m} A_m'` in `M` registers' worth of caller-provided scratch, then a
//! descending sweep multiplies each by the running suffix `w_i G prod_{m' > m} A_m'` and writes
//! the result over `A_m`, which it has just read for the next suffix. That is 2M - 1 + M
//! multiplications per element, and no memory beyond the scratch.
//!
//! Blocked use. The engine (`mmfuse::lmf`) runs its GEMMs per group of ranks, so both passes
//! also take a group's buffers (`rank` is then the group's rank count) and, optionally, one
//! *offset* row per modality, added to every row of its buffer: the factor's row for the constant
//! input `1`, so that the GEMMs need no initial value (no pass to broadcast it into the buffers).
//! `A + offset` is the one addition the GEMM would have done with that initial value. The forward
//! pass can continue a rank sum parked in its output and leave the bias out, so that groups
//! processed one after the other give the bits of a single pass. The backward pass can add the
//! column sums of dA (the gradient of the factor's constant row) while dA is in registers. Two
//! more element-wise passes serve the engine: the Hadamard product over modalities into the
//! first buffer (so that the rank sum reads one buffer, later) and the projection of one or two
//! samples onto a factor (where a GEMM library's set-up would cost more than the arithmetic).
//!
//! Fast paths. With `h` a multiple of the register width (the usual case) and up to four
//! modalities, each pass has a version with the modality count a compile-time constant: rows as
//! slices of whole registers, the modality loops unrolled, the prefix products of the backward
//! pass in registers, sums in registers of compile-time count. The operations and their order
//! are those of the general version (tests check the bits), which handles everything else.
//!
//! No SIMD arithmetic in closures: a closure body does not inherit the target features of pulp's
//! `with_simd` (the few closures here only cut slices).

use crate::simd::Lanes;
use pulp::Simd;

/// Output registers per forward step.
const CHUNKS: usize = 4;

/// Loads `v[off..off + len]` (`len <= LANES`) into a register, the missing lanes zero.
#[inline(always)]
fn ld<S: Simd, T: Lanes<S>>(s: S, v: &[T], off: usize, len: usize) -> T::Vec<S> {
    let src = &v[off..off + len];
    if len == T::LANES {
        T::as_simd(src).0[0]
    } else {
        T::load_partial(s, src)
    }
}

/// Stores the first `len` lanes of `x` into `v[off..off + len]`.
#[inline(always)]
fn st<S: Simd, T: Lanes<S>>(s: S, v: &mut [T], off: usize, len: usize, x: T::Vec<S>) {
    let dst = &mut v[off..off + len];
    if len == T::LANES {
        T::as_mut_simd(dst).0[0] = x;
    } else {
        T::store_partial(s, dst, x);
    }
}

/// `A_m` at element `o` of the row whose buffer starts at `base`: `am[base + o]`, plus
/// `offs[m][o]` when `OFF` (`len` lanes).
#[inline(always)]
fn ld_off<S: Simd, T: Lanes<S>, const OFF: bool>(
    s: S,
    am: &[T],
    offs: &[&[T]],
    m: usize,
    base: usize,
    o: usize,
    len: usize,
) -> T::Vec<S> {
    let v = ld(s, am, base + o, len);
    if OFF {
        T::vadd(s, v, ld(s, offs[m], o, len))
    } else {
        v
    }
}

/// Hadamard product over modalities in place: `a0[n][j] = (a0[n][j] + offsets[0][j]) *
/// prod_{m >= 1} (others[m - 1][n][j] + offsets[m][j])` (no offsets: the plain product), for
/// rows of `width` values; the same operations in the same order as the product of the
/// forward pass, so a forward pass over the result with one modality gives the same bits.
#[inline(always)]
pub(crate) fn hadamard<S: Simd, T: Lanes<S>>(
    s: S,
    a0: &mut [T],
    others: &[&[T]],
    offsets: Option<&[&[T]]>,
    width: usize,
) {
    assert!(width > 0, "lmf: width must be >= 1");
    assert_eq!(a0.len() % width, 0, "lmf: buffer length");
    for o in others {
        assert_eq!(o.len(), a0.len(), "lmf: modality buffer length");
    }
    if let Some(off) = offsets {
        assert_eq!(
            off.len(),
            others.len() + 1,
            "lmf: one offset row per modality"
        );
        for o in off {
            assert_eq!(o.len(), width, "lmf: offset row length");
        }
    }
    if width % T::LANES == 0 {
        let none: &[&[T]] = &[];
        match (others.len(), offsets) {
            (0, None) => return hadamard_fast::<S, T, 0, false>(s, a0, others, none, width),
            (1, None) => return hadamard_fast::<S, T, 1, false>(s, a0, others, none, width),
            (2, None) => return hadamard_fast::<S, T, 2, false>(s, a0, others, none, width),
            (3, None) => return hadamard_fast::<S, T, 3, false>(s, a0, others, none, width),
            (0, Some(o)) => return hadamard_fast::<S, T, 0, true>(s, a0, others, o, width),
            (1, Some(o)) => return hadamard_fast::<S, T, 1, true>(s, a0, others, o, width),
            (2, Some(o)) => return hadamard_fast::<S, T, 2, true>(s, a0, others, o, width),
            (3, Some(o)) => return hadamard_fast::<S, T, 3, true>(s, a0, others, o, width),
            _ => {}
        }
    }
    match offsets {
        None => hadamard_rows::<S, T, false>(s, a0, others, &[], width),
        Some(off) => hadamard_rows::<S, T, true>(s, a0, others, off, width),
    }
}

/// [`hadamard`] for `width` a multiple of the register width and `K` other modalities (0 to 3):
/// whole registers, the modality loop unrolled; same operations in the same order.
#[inline(always)]
fn hadamard_fast<S: Simd, T: Lanes<S>, const K: usize, const OFF: bool>(
    s: S,
    a0: &mut [T],
    others: &[&[T]],
    off: &[&[T]],
    width: usize,
) {
    let wv = width / T::LANES;
    let ov: [&[T::Vec<S>]; K] = core::array::from_fn(|m| T::as_simd(others[m]).0);
    let off0: &[T::Vec<S>] = if OFF { T::as_simd(off[0]).0 } else { &[] };
    let offo: [&[T::Vec<S>]; K] =
        core::array::from_fn(|m| if OFF { T::as_simd(off[m + 1]).0 } else { &[] });
    for (n, row) in T::as_mut_simd(a0).0.chunks_exact_mut(wv).enumerate() {
        let base = n * wv;
        for (j, v) in row.iter_mut().enumerate() {
            let mut p = *v;
            if OFF {
                p = T::vadd(s, p, off0[j]);
            }
            for m in 0..K {
                let mut x = ov[m][base + j];
                if OFF {
                    x = T::vadd(s, x, offo[m][j]);
                }
                p = T::vmul(s, p, x);
            }
            *v = p;
        }
    }
}

/// The element loop of [`hadamard`] (shapes checked).
#[inline(always)]
fn hadamard_rows<S: Simd, T: Lanes<S>, const OFF: bool>(
    s: S,
    a0: &mut [T],
    others: &[&[T]],
    off: &[&[T]],
    width: usize,
) {
    let lanes = T::LANES;
    for (n, row) in a0.chunks_exact_mut(width).enumerate() {
        let base = n * width;
        let mut j = 0;
        while j < width {
            let len = (width - j).min(lanes);
            let mut p = ld(s, row, j, len);
            if OFF {
                p = T::vadd(s, p, ld(s, off[0], j, len));
            }
            for (m, am) in others.iter().enumerate() {
                let v = ld(s, am, base + j, len);
                let v = if OFF {
                    T::vadd(s, v, ld(s, off[m + 1], j, len))
                } else {
                    v
                };
                p = T::vmul(s, p, v);
            }
            st(s, row, j, len, p);
            j += len;
        }
    }
}

/// Rows of the factor streamed together by [`project_rows`].
const PROJECT_K: usize = 8;

/// Projection of a few rows for the engine's smallest batches: `out[n][j] = sum_k x[n][k]
/// w[k * ldw + j]` (`out`: `rows x width` row-major, `x`: `rows x d` row-major, `w`: `d` rows of
/// at least `width` values, `ldw` apart), each sum in `k` order with FMAs from zero. A GEMM
/// library's matrix-vector path spends several times the arithmetic in set-up and reductions at
/// one or two rows; here two rows share each load of `w`.
///
/// The factor is read [`PROJECT_K`] rows at a time, each of them contiguously across the
/// columns: a column-by-column walk would step `ldw` values (8 KiB for a 16 x 128 model) from
/// one load to the next, a new page each time, where no hardware prefetcher follows. The partial
/// sums wait in `out` between the row groups (stored and reloaded exactly: the same chain).
#[inline(always)]
pub(crate) fn project_rows<S: Simd, T: Lanes<S>>(
    s: S,
    x: &[T],
    d: usize,
    w: &[T],
    ldw: usize,
    width: usize,
    out: &mut [T],
) {
    assert!(width > 0 && d > 0, "lmf: empty projection");
    assert_eq!(out.len() % width, 0, "lmf: output length");
    let rows = out.len() / width;
    assert_eq!(x.len(), rows * d, "lmf: input length");
    assert!(
        ldw >= width && w.len() >= (d - 1) * ldw + width,
        "lmf: factor too short"
    );
    let mut r0 = 0;
    while r0 < rows {
        let (o0, rest) = out[r0 * width..].split_at_mut(width);
        let x0 = &x[r0 * d..(r0 + 1) * d];
        if rows - r0 >= 2 {
            let x1 = &x[(r0 + 1) * d..(r0 + 2) * d];
            project_strip::<S, T, true>(s, [x0, x1], w, ldw, [o0, &mut rest[..width]]);
            r0 += 2;
        } else {
            project_strip::<S, T, false>(s, [x0, x0], w, ldw, [o0, &mut []]);
            r0 += 1;
        }
    }
}

/// [`project_rows`] for one row (`PAIR` false: `x[1]`, `out[1]` unused) or two.
#[inline(always)]
fn project_strip<S: Simd, T: Lanes<S>, const PAIR: bool>(
    s: S,
    x: [&[T]; 2],
    w: &[T],
    ldw: usize,
    mut out: [&mut [T]; 2],
) {
    let (d, width, lanes) = (x[0].len(), out[0].len(), T::LANES);
    let mut k0 = 0;
    while k0 < d {
        let ks = k0..(k0 + PROJECT_K).min(d);
        let mut j = 0;
        // Whole chunks of registers (compile-time sizes keep the sums in registers), then one
        // register at a time, the last one possibly partial. Each sum is a chain of FMAs; eight
        // independent chains (eight registers of one row, or four of two) keep both FMA units
        // busy despite their latency.
        if PAIR {
            while j + 4 * lanes <= width {
                project_chunk::<S, T, PAIR, 4>(s, x, w, ldw, ks.clone(), j, lanes, &mut out);
                j += 4 * lanes;
            }
        } else {
            while j + 8 * lanes <= width {
                project_chunk::<S, T, PAIR, 8>(s, x, w, ldw, ks.clone(), j, lanes, &mut out);
                j += 8 * lanes;
            }
        }
        while j < width {
            let len = (width - j).min(lanes);
            project_chunk::<S, T, PAIR, 1>(s, x, w, ldw, ks.clone(), j, len, &mut out);
            j += len;
        }
        k0 = ks.end;
    }
}

/// `C` registers of columns from `j` (the last one `len` lanes) of the rows of [`project_strip`]:
/// adds the factor rows `ks` to the sums parked in `out` (starting from zero at row 0).
// Index loops over the (row, register) sums read closest to the layout.
#[allow(clippy::too_many_arguments, clippy::needless_range_loop)]
#[inline(always)]
fn project_chunk<S: Simd, T: Lanes<S>, const PAIR: bool, const C: usize>(
    s: S,
    x: [&[T]; 2],
    w: &[T],
    ldw: usize,
    ks: core::ops::Range<usize>,
    j: usize,
    len: usize,
    out: &mut [&mut [T]; 2],
) {
    let lanes = T::LANES;
    let zero = T::splat(s, T::ZERO);
    let mut acc = [[zero; C]; 2];
    let rows = if PAIR { 2 } else { 1 };
    if ks.start > 0 {
        for r in 0..rows {
            for c in 0..C {
                let l = if c + 1 == C { len } else { lanes };
                acc[r][c] = ld(s, out[r], j + c * lanes, l);
            }
        }
    }
    if len == lanes {
        // Whole registers: one bounds check per factor row, not one per register.
        for k in ks {
            let v = [T::splat(s, x[0][k]), T::splat(s, x[1][k])];
            let wrow: &[T::Vec<S>; C] = T::as_simd(&w[k * ldw + j..k * ldw + j + C * lanes])
                .0
                .try_into()
                .expect("C registers");
            for c in 0..C {
                for r in 0..rows {
                    acc[r][c] = T::vfma(s, v[r], wrow[c], acc[r][c]);
                }
            }
        }
    } else {
        for k in ks {
            let v = [T::splat(s, x[0][k]), T::splat(s, x[1][k])];
            let wrow = &w[k * ldw + j..];
            for c in 0..C {
                let l = if c + 1 == C { len } else { lanes };
                let wv = ld(s, wrow, c * lanes, l);
                for r in 0..rows {
                    acc[r][c] = T::vfma(s, v[r], wv, acc[r][c]);
                }
            }
        }
    }
    for r in 0..rows {
        for c in 0..C {
            let l = if c + 1 == C { len } else { lanes };
            st(s, out[r], j + c * lanes, l, acc[r][c]);
        }
    }
}

/// Checks the shapes shared by both passes and returns the number of rows.
fn check_shapes(nm: usize, rank: usize, h: usize, rows_len: usize) -> usize {
    assert!(nm > 0, "lmf: at least one modality is needed");
    assert!(rank > 0 && h > 0, "lmf: rank and output size must be >= 1");
    assert_eq!(rows_len % h, 0, "lmf: output / gradient length");
    rows_len / h
}

/// Forward pass, `out[n, k] = sum_i w_i prod_m A_m[n, i, k] + bias[k]` (see the module docs), over a
/// group of ranks: the projections are `a[m] + offsets[m]`
/// (`offsets[m]`: `rank x h`, the same for every row: the factor's constant row, so that the
/// GEMMs need no initial value), the rank sum starts from `out` when `accumulate` (from zero
/// otherwise), and `bias` is added last when given. Cutting the ranks into consecutive groups,
/// the first call without `accumulate`, the last with the bias, gives the bits of one call over
/// all ranks: the FMA chain is the same, only parked in `out` between groups.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
pub(crate) fn fuse_partial<S: Simd, T: Lanes<S>>(
    s: S,
    a: &[&[T]],
    offsets: Option<&[&[T]]>,
    rank: usize,
    h: usize,
    weights: Option<&[T]>,
    bias: Option<&[T]>,
    accumulate: bool,
    out: &mut [T],
) {
    let rows = check_shapes(a.len(), rank, h, out.len());
    for am in a {
        assert_eq!(am.len(), rows * rank * h, "lmf: modality buffer length");
    }
    if let Some(off) = offsets {
        assert_eq!(off.len(), a.len(), "lmf: one offset row per modality");
        for o in off {
            assert_eq!(o.len(), rank * h, "lmf: offset row length");
        }
    }
    if let Some(b) = bias {
        assert_eq!(b.len(), h, "lmf: bias length");
    }
    if let Some(w) = weights {
        assert_eq!(w.len(), rank, "lmf: fusion weights length");
    }
    // Whole registers per rank (the usual case, `h` a multiple of the register width) and up to
    // four modalities: a version with the modalities unrolled and no partial registers.
    if h % T::LANES == 0 {
        let fast = FastFuse {
            rank,
            h,
            weights,
            bias,
            accumulate,
        };
        let none: &[&[T]] = &[];
        let done = match (a.len(), offsets) {
            (1, None) => fast.run::<S, 1, false>(s, a, none, out),
            (2, None) => fast.run::<S, 2, false>(s, a, none, out),
            (3, None) => fast.run::<S, 3, false>(s, a, none, out),
            (4, None) => fast.run::<S, 4, false>(s, a, none, out),
            (1, Some(o)) => fast.run::<S, 1, true>(s, a, o, out),
            (2, Some(o)) => fast.run::<S, 2, true>(s, a, o, out),
            (3, Some(o)) => fast.run::<S, 3, true>(s, a, o, out),
            (4, Some(o)) => fast.run::<S, 4, true>(s, a, o, out),
            _ => false,
        };
        if done {
            return;
        }
    }
    // Two instantiations, so that the element loop of the common case carries no offset loads.
    let k = Fuse {
        a,
        rank,
        h,
        weights,
        bias,
        accumulate,
    };
    match offsets {
        None => k.run::<S, false>(s, &[], out),
        Some(off) => k.run::<S, true>(s, off, out),
    }
}

/// The forward pass for `h` a multiple of the register width and `M` modalities (1 to 4): the
/// rows as slices of registers, the modality loop unrolled, no partial loads. Same operations in
/// the same order as [`Fuse`].
struct FastFuse<'a, T> {
    rank: usize,
    h: usize,
    weights: Option<&'a [T]>,
    bias: Option<&'a [T]>,
    accumulate: bool,
}

impl<T> FastFuse<'_, T> {
    /// Runs the pass (shapes checked by the caller); returns true.
    #[inline(always)]
    fn run<S: Simd, const M: usize, const OFF: bool>(
        &self,
        s: S,
        a: &[&[T]],
        off: &[&[T]],
        out: &mut [T],
    ) -> bool
    where
        T: Lanes<S>,
    {
        let hv = self.h / T::LANES;
        let rhv = self.rank * hv;
        let av: [&[T::Vec<S>]; M] = core::array::from_fn(|m| T::as_simd(a[m]).0);
        let ov: [&[T::Vec<S>]; M] =
            core::array::from_fn(|m| if OFF { T::as_simd(off[m]).0 } else { &[] });
        let bias = self.bias.map(|b| T::as_simd(b).0);
        for (n, orow) in out.chunks_exact_mut(self.h).enumerate() {
            let orow = T::as_mut_simd(orow).0;
            let rows: [&[T::Vec<S>]; M] = core::array::from_fn(|m| &av[m][n * rhv..(n + 1) * rhv]);
            // Whole chunks, then single registers: compile-time sizes keep the sums in registers.
            let mut kv = 0;
            while kv + CHUNKS <= hv {
                self.chunk::<S, M, OFF, CHUNKS>(s, &rows, &ov, bias, kv, orow);
                kv += CHUNKS;
            }
            while kv < hv {
                self.chunk::<S, M, OFF, 1>(s, &rows, &ov, bias, kv, orow);
                kv += 1;
            }
        }
        true
    }

    /// The `C` output registers from `kv` of one row (`rows[m]`: its registers of modality `m`).
    #[inline(always)]
    fn chunk<S: Simd, const M: usize, const OFF: bool, const C: usize>(
        &self,
        s: S,
        rows: &[&[T::Vec<S>]; M],
        ov: &[&[T::Vec<S>]; M],
        bias: Option<&[T::Vec<S>]>,
        kv: usize,
        orow: &mut [T::Vec<S>],
    ) where
        T: Lanes<S>,
    {
        let hv = self.h / T::LANES;
        let zero = T::splat(s, T::ZERO);
        let mut acc = [zero; C];
        if self.accumulate {
            acc.copy_from_slice(&orow[kv..kv + C]);
        }
        for i in 0..self.rank {
            let o = i * hv + kv;
            let mut p = [zero; C];
            for (cc, pc) in p.iter_mut().enumerate() {
                let mut v = rows[0][o + cc];
                if OFF {
                    v = T::vadd(s, v, ov[0][o + cc]);
                }
                for m in 1..M {
                    let mut x = rows[m][o + cc];
                    if OFF {
                        x = T::vadd(s, x, ov[m][o + cc]);
                    }
                    v = T::vmul(s, v, x);
                }
                *pc = v;
            }
            match self.weights {
                Some(w) => {
                    let wi = T::splat(s, w[i]);
                    for cc in 0..C {
                        acc[cc] = T::vfma(s, wi, p[cc], acc[cc]);
                    }
                }
                None => {
                    for cc in 0..C {
                        acc[cc] = T::vadd(s, acc[cc], p[cc]);
                    }
                }
            }
        }
        for cc in 0..C {
            orow[kv + cc] = match bias {
                Some(b) => T::vadd(s, acc[cc], b[kv + cc]),
                None => acc[cc],
            };
        }
    }
}

/// Arguments of the forward pass shared by its two instantiations.
struct Fuse<'a, 'b, T> {
    a: &'a [&'b [T]],
    rank: usize,
    h: usize,
    weights: Option<&'a [T]>,
    bias: Option<&'a [T]>,
    accumulate: bool,
}

impl<T> Fuse<'_, '_, T> {
    #[inline(always)]
    fn run<S: Simd, const OFF: bool>(&self, s: S, off: &[&[T]], out: &mut [T])
    where
        T: Lanes<S>,
    {
        let (h, lanes) = (self.h, T::LANES);
        let rh = self.rank * h;
        for (n, orow) in out.chunks_exact_mut(h).enumerate() {
            let base = n * rh;
            let mut k0 = 0;
            while k0 + CHUNKS * lanes <= h {
                let mut acc = [T::splat(s, T::ZERO); CHUNKS];
                if self.accumulate {
                    for (c, v) in acc.iter_mut().enumerate() {
                        *v = ld(s, orow, k0 + c * lanes, lanes);
                    }
                }
                self.chunks::<S, CHUNKS, OFF>(s, off, base, k0, lanes, &mut acc);
                for (c, v) in acc.iter().enumerate() {
                    self.store(s, orow, k0 + c * lanes, lanes, *v);
                }
                k0 += CHUNKS * lanes;
            }
            while k0 < h {
                let len = (h - k0).min(lanes);
                let mut acc = [T::splat(s, T::ZERO); 1];
                if self.accumulate {
                    acc[0] = ld(s, orow, k0, len);
                }
                self.chunks::<S, 1, OFF>(s, off, base, k0, len, &mut acc);
                self.store(s, orow, k0, len, acc[0]);
                k0 += len;
            }
        }
    }

    /// Writes `len` lanes of `acc` (plus the bias, when given) to `orow[k0..]`.
    #[inline(always)]
    fn store<S: Simd>(&self, s: S, orow: &mut [T], k0: usize, len: usize, acc: T::Vec<S>)
    where
        T: Lanes<S>,
    {
        let y = match self.bias {
            Some(b) => T::vadd(s, acc, ld(s, b, k0, len)),
            None => acc,
        };
        st(s, orow, k0, len, y);
    }

    /// Adds `sum_i w_i prod_m A_m[i]` for the `C` registers of outputs from `k0` of the row whose
    /// buffers start at `base` into `acc`; the last register holds `len` lanes (the others full).
    #[inline(always)]
    fn chunks<S: Simd, const C: usize, const OFF: bool>(
        &self,
        s: S,
        off: &[&[T]],
        base: usize,
        k0: usize,
        len: usize,
        acc: &mut [T::Vec<S>; C],
    ) where
        T: Lanes<S>,
    {
        let (a, h, lanes) = (self.a, self.h, T::LANES);
        let zero = T::splat(s, T::ZERO);
        for i in 0..self.rank {
            let o = i * h + k0;
            let mut p = [zero; C];
            for (m, am) in a.iter().enumerate() {
                for (c, pc) in p.iter_mut().enumerate() {
                    let l = if c + 1 == C { len } else { lanes };
                    let v = ld_off::<S, T, OFF>(s, am, off, m, base, o + c * lanes, l);
                    *pc = if m == 0 { v } else { T::vmul(s, *pc, v) };
                }
            }
            match self.weights {
                Some(w) => {
                    let wi = T::splat(s, w[i]);
                    for c in 0..C {
                        acc[c] = T::vfma(s, wi, p[c], acc[c]);
                    }
                }
                None => {
                    for c in 0..C {
                        acc[c] = T::vadd(s, acc[c], p[c]);
                    }
                }
            }
        }
    }
}

/// Backward pass: overwrites each `a[m]` with `dA_m` and adds `G * prod_m A_m` into `gp`
/// (`rank x h`), see the module docs, with the projections `A_m = a[m] + offsets[m]` when
/// offsets are given (as [`fuse_partial`]), and, when `dsum` is given, the column sums of `dA_m`
/// over the rows added into `dsum[m]` (`rank x h`; the gradient of the factor's constant row,
/// summed here while `dA_m` is in registers rather than in a second pass). `scratch` holds at
/// least `a.len()` registers.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
pub(crate) fn fuse_backward_partial<S: Simd, T: Lanes<S>>(
    s: S,
    a: &mut [&mut [T]],
    offsets: Option<&[&[T]]>,
    rank: usize,
    h: usize,
    weights: &[T],
    grad: &[T],
    gp: &mut [T],
    dsum: Option<&mut [&mut [T]]>,
    scratch: &mut [T],
) {
    let rows = check_shapes(a.len(), rank, h, grad.len());
    for am in a.iter() {
        assert_eq!(am.len(), rows * rank * h, "lmf: modality buffer length");
    }
    if let Some(off) = offsets {
        assert_eq!(off.len(), a.len(), "lmf: one offset row per modality");
        for o in off {
            assert_eq!(o.len(), rank * h, "lmf: offset row length");
        }
    }
    if let Some(d) = &dsum {
        assert_eq!(d.len(), a.len(), "lmf: one column-sum row per modality");
        for o in d.iter() {
            assert_eq!(o.len(), rank * h, "lmf: column-sum row length");
        }
    }
    assert_eq!(weights.len(), rank, "lmf: fusion weights length");
    assert_eq!(gp.len(), rank * h, "lmf: gp length");
    let (regs, _) = T::as_mut_simd(scratch);
    assert!(regs.len() >= a.len(), "lmf: scratch too short");
    // The usual cases (whole registers per rank, up to four modalities, offsets and column sums
    // both or neither) unrolled; the rest element by element with partial registers.
    if h % T::LANES == 0 {
        let k = FastBackward { h, weights, grad };
        let (none, mut no_sums): (&[&[T]], [&mut [T]; 0]) = (&[], []);
        match (a.len(), offsets, dsum) {
            (1, None, None) => k.run::<S, 1, false>(s, a, none, gp, &mut no_sums),
            (2, None, None) => k.run::<S, 2, false>(s, a, none, gp, &mut no_sums),
            (3, None, None) => k.run::<S, 3, false>(s, a, none, gp, &mut no_sums),
            (4, None, None) => k.run::<S, 4, false>(s, a, none, gp, &mut no_sums),
            (1, Some(o), Some(d)) => k.run::<S, 1, true>(s, a, o, gp, d),
            (2, Some(o), Some(d)) => k.run::<S, 2, true>(s, a, o, gp, d),
            (3, Some(o), Some(d)) => k.run::<S, 3, true>(s, a, o, gp, d),
            (4, Some(o), Some(d)) => k.run::<S, 4, true>(s, a, o, gp, d),
            (_, offsets, dsum) => general_backward(s, a, offsets, h, weights, grad, gp, dsum, regs),
        }
    } else {
        general_backward(s, a, offsets, h, weights, grad, gp, dsum, regs)
    }
}

/// The backward pass for `h` a multiple of the register width and `M` modalities (1 to 4), with
/// (`OFF`) or without both offsets and column sums: registers instead of scratch memory, the
/// modality loops unrolled, each rank's outputs swept contiguously. Same operations in the same
/// order as [`backward_rows`].
struct FastBackward<'a, T> {
    h: usize,
    weights: &'a [T],
    grad: &'a [T],
}

impl<T> FastBackward<'_, T> {
    #[inline(always)]
    fn run<S: Simd, const M: usize, const OFF: bool>(
        &self,
        s: S,
        a: &mut [&mut [T]],
        off: &[&[T]],
        gp: &mut [T],
        dsum: &mut [&mut [T]],
    ) where
        T: Lanes<S>,
    {
        let hv = self.h / T::LANES;
        let rhv = self.weights.len() * hv;
        let one = T::splat(s, T::ONE);
        let ov: [&[T::Vec<S>]; M] =
            core::array::from_fn(|m| if OFF { T::as_simd(off[m]).0 } else { &[] });
        let gpv = T::as_mut_simd(gp).0;
        let mut a_it = a.iter_mut();
        let av: [&mut [T::Vec<S>]; M] =
            core::array::from_fn(|_| T::as_mut_simd(a_it.next().expect("M buffers")).0);
        let mut d_it = dsum.iter_mut();
        let dv: [&mut [T::Vec<S>]; M] = core::array::from_fn(|_| match d_it.next() {
            Some(d) if OFF => T::as_mut_simd(d).0,
            _ => &mut [],
        });
        let gv = T::as_simd(self.grad).0;
        for (n, grow) in gv.chunks_exact(hv).enumerate() {
            let base = n * rhv;
            for (i, &wi) in self.weights.iter().enumerate() {
                let w = T::splat(s, wi);
                for (kv, &g) in grow.iter().enumerate() {
                    let o = i * hv + kv;
                    let mut x = [one; M];
                    for m in 0..M {
                        x[m] = av[m][base + o];
                        if OFF {
                            x[m] = T::vadd(s, x[m], ov[m][o]);
                        }
                    }
                    // Prefix products pre[m] = prod_{m' < m} A_m', then the full product.
                    let mut pre = [one; M];
                    let mut p = one;
                    for m in 0..M {
                        pre[m] = p;
                        p = T::vmul(s, p, x[m]);
                    }
                    gpv[o] = T::vfma(s, g, p, gpv[o]);
                    // Suffix w_i G prod_{m' > m} A_m'.
                    let mut suf = T::vmul(s, g, w);
                    for m in (0..M).rev() {
                        let d = T::vmul(s, pre[m], suf);
                        av[m][base + o] = d;
                        if OFF {
                            dv[m][o] = T::vadd(s, dv[m][o], d);
                        }
                        if m > 0 {
                            suf = T::vmul(s, suf, x[m]);
                        }
                    }
                }
            }
        }
    }
}

/// The element loop of [`fuse_backward_partial`] for any shape (checked): partial registers,
/// prefix products in `regs`.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn general_backward<S: Simd, T: Lanes<S>>(
    s: S,
    a: &mut [&mut [T]],
    offsets: Option<&[&[T]]>,
    h: usize,
    weights: &[T],
    grad: &[T],
    gp: &mut [T],
    mut dsum: Option<&mut [&mut [T]]>,
    regs: &mut [T::Vec<S>],
) {
    match offsets {
        None => backward_rows::<S, T, false>(s, a, &[], h, weights, grad, gp, &mut dsum, regs),
        Some(off) => backward_rows::<S, T, true>(s, a, off, h, weights, grad, gp, &mut dsum, regs),
    }
}

/// The element loop of [`general_backward`].
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn backward_rows<S: Simd, T: Lanes<S>, const OFF: bool>(
    s: S,
    a: &mut [&mut [T]],
    offs: &[&[T]],
    h: usize,
    weights: &[T],
    grad: &[T],
    gp: &mut [T],
    dsum: &mut Option<&mut [&mut [T]]>,
    regs: &mut [T::Vec<S>],
) {
    let nm = a.len();
    let lanes = T::LANES;
    let rh = weights.len() * h;
    for (n, grow) in grad.chunks_exact(h).enumerate() {
        let base = n * rh;
        let mut k0 = 0;
        while k0 < h {
            let len = (h - k0).min(lanes);
            let g = ld(s, grow, k0, len);
            for (i, &wi) in weights.iter().enumerate() {
                let o = i * h + k0;
                // Ascending sweep: regs[m] = prod_{m' < m} A_m'; ends with the full product.
                let mut pre = T::splat(s, T::ONE);
                for m in 0..nm {
                    regs[m] = pre;
                    pre = T::vmul(s, pre, ld_off::<S, T, OFF>(s, a[m], offs, m, base, o, len));
                }
                let acc = T::vfma(s, g, pre, ld(s, gp, o, len));
                st(s, gp, o, len, acc);
                // Descending sweep: suffix = w_i G prod_{m' > m} A_m'.
                let mut suf = T::vmul(s, g, T::splat(s, wi));
                for m in (0..nm).rev() {
                    let am = ld_off::<S, T, OFF>(s, a[m], offs, m, base, o, len);
                    let d = T::vmul(s, regs[m], suf);
                    st(s, a[m], base + o, len, d);
                    if let Some(ds) = dsum.as_deref_mut() {
                        let sum = T::vadd(s, ld(s, ds[m], o, len), d);
                        st(s, ds[m], o, len, sum);
                    }
                    if m > 0 {
                        suf = T::vmul(s, suf, am);
                    }
                }
            }
            k0 += len;
        }
    }
}
