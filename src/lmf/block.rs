//! Row blocking shared by the forward pass, the backward pass and the training step.
//!
//! A batch of N samples is cut into blocks of `block` rows (the last one shorter). For each
//! block and modality, one GEMM writes `A_m = [1, X_m] W_m` (`rows x r h`) into a buffer whose
//! initial value is row 0 of `W_m` broadcast, so the constant column of `[1, X_m]` is never
//! materialised; the SIMD pass of `mmfuse-kernels` then reads the M buffers while they are in
//! cache. The block size depends only on the shapes (never on the number of threads), and each
//! output element is computed by one task with the same sequential code, so results are bitwise
//! the same for any number of threads.
//!
//! Reductions over samples (the parameter gradients, the loss) go through a fixed number of
//! *chains*: `min(blocks, MAX_CHAINS)` contiguous runs of blocks, each accumulated sequentially in
//! its own buffers, then added in chain order. The partition depends only on N and the block
//! size, so the sums are also independent of the thread count.

use super::LmfOptions;
use crate::error::{Error, Result};
use crate::scalar::Real;
use faer::linalg::matmul::matmul;
use faer::{Accum, MatMut, MatRef, Par};
use std::ops::Range;

/// Bytes of the M projection buffers of one forward block that should stay in L2.
const FORWARD_BUDGET: usize = 256 * 1024;
/// Fewest rows per forward block by default (the GEMMs lose efficiency on thinner blocks).
const FORWARD_MIN: usize = 16;
/// Bytes of the projection buffers of one backward block. Larger than the forward budget: the
/// backward pass also adds `X^T dA` into the whole `(d + 1) x r h` gradient of each factor once
/// per block, so a block must have enough rows (the GEMM's inner dimension) to pay for reading
/// and writing that gradient.
const BACKWARD_BUDGET: usize = 1024 * 1024;
/// Fewest rows per backward block by default.
const BACKWARD_MIN: usize = 64;
/// Most rows per block by default.
const MAX_BLOCK: usize = 1024;
/// Number of independent accumulators for reductions over samples (see the module docs). Each
/// holds a copy of the parameter gradients, so this bounds the extra memory of a backward pass;
/// four keep two cores busy with some slack for uneven chains.
pub(crate) const MAX_CHAINS: usize = 4;

/// Which pass a block size is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Pass {
    Forward,
    Backward,
}

/// The parameters the block engine reads: a model's, or a pre-scaled copy.
pub(crate) struct Fusion<'a, T> {
    /// GEMM layout `(d_m + 1) x (r h)` row-major, per modality.
    pub factors: Vec<&'a [T]>,
    pub dims: &'a [usize],
    pub rank: usize,
    pub h: usize,
    /// `None`: already folded into a factor (pre-scaled model).
    pub weights: Option<&'a [T]>,
    pub bias: &'a [T],
}

impl<T> Fusion<'_, T> {
    pub fn rh(&self) -> usize {
        self.rank * self.h
    }
}

/// Rows per block for `n` samples: the caller's choice, or the budget of the pass divided by
/// the bytes of one row of the M projection buffers, within the pass's limits.
pub(crate) fn block_rows<T>(
    opts: &LmfOptions,
    pass: Pass,
    modalities: usize,
    rh: usize,
    n: usize,
) -> usize {
    let auto = || {
        let per_row = (modalities * rh * std::mem::size_of::<T>()).max(1);
        let (budget, min) = match pass {
            Pass::Forward => (FORWARD_BUDGET, FORWARD_MIN),
            Pass::Backward => (BACKWARD_BUDGET, BACKWARD_MIN),
        };
        (budget / per_row).clamp(min, MAX_BLOCK)
    };
    opts.block_rows.unwrap_or_else(auto).clamp(1, n.max(1))
}

/// Block index ranges of the chains (see the module docs).
pub(crate) fn chains(nblocks: usize) -> Vec<Range<usize>> {
    let k = nblocks.clamp(1, MAX_CHAINS);
    (0..k)
        .map(|c| c * nblocks / k..(c + 1) * nblocks / k)
        .collect()
}

/// Per-task buffers of the block engine.
pub(crate) struct Bufs<T> {
    /// `block x r h` per modality: the projections A_m, then (backward) dA_m.
    pub a: Vec<Vec<T>>,
    /// `block x h`: outputs of the block (training step).
    pub y: Vec<T>,
    /// `block x h`: dL/dy of the block (training step).
    pub g: Vec<T>,
    /// Prefix products of the backward kernel.
    pub scratch: Vec<T>,
}

impl<T: Real> Bufs<T> {
    pub fn new(modalities: usize, block: usize, rh: usize, h: usize) -> Self {
        let mut b = Bufs {
            a: Vec::new(),
            y: Vec::new(),
            g: Vec::new(),
            scratch: Vec::new(),
        };
        b.ensure(modalities, block, rh, h);
        b
    }

    /// Resizes the buffers for these shapes, keeping the allocations when they fit (a training
    /// loop reuses one set per chain for every step). Contents are unspecified afterwards.
    pub fn ensure(&mut self, modalities: usize, block: usize, rh: usize, h: usize) {
        self.a.resize_with(modalities, Vec::new);
        for a in &mut self.a {
            a.resize(block * rh, T::ZERO);
        }
        self.y.resize(block * h, T::ZERO);
        self.g.resize(block * h, T::ZERO);
        self.scratch
            .resize(mmfuse_kernels::lmf_scratch_len::<T>(modalities), T::ZERO);
    }
}

/// `A_m = [1, X_m[r0..r0 + rows]] W_m` into `a[m][..rows * r h]` for every modality (`xs[m]` is
/// the contiguous row-major `N x d_m` input).
pub(crate) fn project<T: Real>(
    f: &Fusion<'_, T>,
    xs: &[&[T]],
    r0: usize,
    rows: usize,
    a: &mut [Vec<T>],
) {
    let rh = f.rh();
    for ((buf, x), (w, &d)) in a.iter_mut().zip(xs).zip(f.factors.iter().zip(f.dims)) {
        let buf = &mut buf[..rows * rh];
        // Row 0 of W_m is the product of the constant 1 with the factor: the GEMM's initial value.
        for row in buf.chunks_exact_mut(rh) {
            row.copy_from_slice(&w[..rh]);
        }
        matmul(
            MatMut::from_row_major_slice_mut(buf, rows, rh),
            Accum::Add,
            MatRef::from_row_major_slice(&x[r0 * d..(r0 + rows) * d], rows, d),
            MatRef::from_row_major_slice(&w[rh..], d, rh),
            T::ONE,
            Par::Seq,
        );
    }
}

/// Cuts `data` (row-major, `ncols` columns) into the pieces holding the row ranges `ranges`
/// (consecutive, in order, starting at row 0).
pub(crate) fn split_rows<'a, T>(
    mut data: &'a mut [T],
    ncols: usize,
    ranges: &[Range<usize>],
) -> Vec<&'a mut [T]> {
    let mut out = Vec::with_capacity(ranges.len());
    for r in ranges {
        let (head, tail) = data.split_at_mut((r.end - r.start) * ncols);
        out.push(head);
        data = tail;
    }
    out
}

impl LmfOptions {
    pub(crate) fn validate(&self) -> Result<()> {
        if self.block_rows == Some(0) {
            return Err(Error::param("block_rows", "must be >= 1"));
        }
        if self.threads == Some(0) {
            return Err(Error::param("threads", "must be >= 1"));
        }
        Ok(())
    }

    /// A pool of the requested number of threads (None: rayon's global pool).
    pub(crate) fn pool(&self) -> Result<Option<rayon::ThreadPool>> {
        match self.threads {
            None => Ok(None),
            Some(t) => rayon::ThreadPoolBuilder::new()
                .num_threads(t)
                .build()
                .map(Some)
                .map_err(|e| Error::param("threads", format!("cannot start {t}: {e}"))),
        }
    }

    /// Runs `f` on the requested number of threads (rayon's global pool when `threads` is None).
    pub(crate) fn install<R: Send>(&self, f: impl FnOnce() -> R + Send) -> Result<R> {
        Ok(run_in(self.pool()?.as_ref(), f))
    }
}

/// Runs `f` in `pool`, or in the current (global) pool.
pub(crate) fn run_in<R: Send>(pool: Option<&rayon::ThreadPool>, f: impl FnOnce() -> R + Send) -> R {
    match pool {
        Some(p) => p.install(f),
        None => f(),
    }
}
