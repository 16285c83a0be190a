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
//! No closures here: a closure body does not inherit the target features of pulp's `with_simd`.

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

/// Checks the shapes shared by both passes and returns the number of rows.
fn check_shapes(nm: usize, rank: usize, h: usize, rows_len: usize) -> usize {
    assert!(nm > 0, "lmf: at least one modality is needed");
    assert!(rank > 0 && h > 0, "lmf: rank and output size must be >= 1");
    assert_eq!(rows_len % h, 0, "lmf: output / gradient length");
    rows_len / h
}

/// Forward pass: `out[n, k] = sum_i w_i prod_m a[m][n, i, k] + bias[k]` (see the module docs).
#[inline(always)]
pub(crate) fn fuse<S: Simd, T: Lanes<S>>(
    s: S,
    a: &[&[T]],
    rank: usize,
    h: usize,
    weights: Option<&[T]>,
    bias: &[T],
    out: &mut [T],
) {
    let rows = check_shapes(a.len(), rank, h, out.len());
    for am in a {
        assert_eq!(am.len(), rows * rank * h, "lmf: modality buffer length");
    }
    assert_eq!(bias.len(), h, "lmf: bias length");
    if let Some(w) = weights {
        assert_eq!(w.len(), rank, "lmf: fusion weights length");
    }
    let lanes = T::LANES;
    let rh = rank * h;
    for n in 0..rows {
        let base = n * rh;
        let orow = &mut out[n * h..(n + 1) * h];
        let mut k0 = 0;
        while k0 + CHUNKS * lanes <= h {
            let acc = fuse_chunks::<S, T, CHUNKS>(s, a, base + k0, rank, h, weights, lanes);
            for (c, v) in acc.iter().enumerate() {
                let off = k0 + c * lanes;
                let y = T::vadd(s, *v, ld(s, bias, off, lanes));
                st(s, orow, off, lanes, y);
            }
            k0 += CHUNKS * lanes;
        }
        while k0 < h {
            let len = (h - k0).min(lanes);
            let acc = fuse_chunks::<S, T, 1>(s, a, base + k0, rank, h, weights, len);
            let y = T::vadd(s, acc[0], ld(s, bias, k0, len));
            st(s, orow, k0, len, y);
            k0 += len;
        }
    }
}

/// `C` registers of `sum_i w_i prod_m A_m[i]` starting at element `off` of rank 0; the last
/// register holds `len` lanes (the others are full).
#[inline(always)]
fn fuse_chunks<S: Simd, T: Lanes<S>, const C: usize>(
    s: S,
    a: &[&[T]],
    off: usize,
    rank: usize,
    h: usize,
    weights: Option<&[T]>,
    len: usize,
) -> [T::Vec<S>; C] {
    let lanes = T::LANES;
    let zero = T::splat(s, T::ZERO);
    let mut acc = [zero; C];
    for i in 0..rank {
        let o = off + i * h;
        let mut p = [zero; C];
        for (c, pc) in p.iter_mut().enumerate() {
            let l = if c + 1 == C { len } else { lanes };
            *pc = ld(s, a[0], o + c * lanes, l);
        }
        for am in &a[1..] {
            for (c, pc) in p.iter_mut().enumerate() {
                let l = if c + 1 == C { len } else { lanes };
                *pc = T::vmul(s, *pc, ld(s, am, o + c * lanes, l));
            }
        }
        match weights {
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
    acc
}

/// Backward pass: overwrites each `a[m]` with `dA_m` and adds `G * prod_m A_m` into `gp`
/// (`rank x h`), see the module docs. `scratch` holds at least `a.len()` registers.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
pub(crate) fn fuse_backward<S: Simd, T: Lanes<S>>(
    s: S,
    a: &mut [&mut [T]],
    rank: usize,
    h: usize,
    weights: &[T],
    grad: &[T],
    gp: &mut [T],
    scratch: &mut [T],
) {
    let rows = check_shapes(a.len(), rank, h, grad.len());
    for am in a.iter() {
        assert_eq!(am.len(), rows * rank * h, "lmf: modality buffer length");
    }
    assert_eq!(weights.len(), rank, "lmf: fusion weights length");
    assert_eq!(gp.len(), rank * h, "lmf: gp length");
    let nm = a.len();
    let (regs, _) = T::as_mut_simd(scratch);
    assert!(regs.len() >= nm, "lmf: scratch too short");
    let lanes = T::LANES;
    let rh = rank * h;
    for n in 0..rows {
        let base = n * rh;
        let grow = &grad[n * h..(n + 1) * h];
        let mut k0 = 0;
        while k0 < h {
            let len = (h - k0).min(lanes);
            let g = ld(s, grow, k0, len);
            for (i, &wi) in weights.iter().enumerate() {
                let off = base + i * h + k0;
                // Ascending sweep: regs[m] = prod_{m' < m} A_m'; ends with the full product.
                let mut pre = T::splat(s, T::ONE);
                for m in 0..nm {
                    regs[m] = pre;
                    pre = T::vmul(s, pre, ld(s, a[m], off, len));
                }
                let go = i * h + k0;
                let acc = T::vfma(s, g, pre, ld(s, gp, go, len));
                st(s, gp, go, len, acc);
                // Descending sweep: suffix = w_i G prod_{m' > m} A_m'.
                let mut suf = T::vmul(s, g, T::splat(s, wi));
                for m in (0..nm).rev() {
                    let am = ld(s, a[m], off, len);
                    st(s, a[m], off, len, T::vmul(s, regs[m], suf));
                    if m > 0 {
                        suf = T::vmul(s, suf, am);
                    }
                }
            }
            k0 += len;
        }
    }
}
