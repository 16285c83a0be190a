//! Tiling shared by the forward pass, the backward pass and the training step.
//!
//! A batch of N samples is cut into *blocks* of rows, and the `r h` columns of the projections
//! into *groups* of whole ranks. A tile (block, group) is one faer GEMM per modality,
//! `X_m[block] W_m[1:, group]` (`rows x d_m` times `d_m x group columns`), into a buffer per
//! modality; the factor's row 0 (the constant input 1) is never multiplied: the SIMD passes of
//! `mmfuse-kernels` add it as an *offset* row when they read the buffers (no pass to broadcast
//! an initial value into them). The rank sum of the forward pass is one FMA chain per output in
//! rank order; between groups it waits in the output, so any grouping gives the same bits.
//!
//! Why tiles and not just row blocks: a faer GEMM packs the part of the factor it multiplies on
//! every call, so a thin row block pays for reading the whole factor (`d_m x r h`) for a few
//! rows of work (the first version used 16-row blocks and reached 44% of faer's GEMM rate at
//! batch 256); and cutting the columns gives parallel work to a batch too small for several
//! blocks, down to one sample. So blocks are tall (up to [`MAX_BLOCK`] rows, where the GEMMs'
//! rate levels off) and there are as many as needed to give [`TASKS`] tiles of at least
//! [`TASK_FLOPS`]; groups are about [`GROUP_COLS`] columns.
//!
//! Schedules (`forward.rs`, `backward.rs`): a batch of several blocks runs the blocks in
//! parallel, each block its groups one after the other, fusing each tile while it is in cache;
//! a batch of one block runs its groups in parallel. The backward pass runs contiguous runs of
//! blocks (*chains*) in parallel when there are several blocks, each with its own gradient sums
//! (added in chain order at the end), and the groups of a block in parallel inside.
//!
//! Layouts: faer reads the factor fastest column-major (about 10% over the row-major GEMM
//! layout, whose columns it would gather `r h` values apart), so large batches and the
//! pre-scaled inference model use a column-major copy ([`transposed_factors`]); tiles of at most
//! [`SMALL_ROWS`] rows use the SIMD projection of `mmfuse-kernels` instead of faer (at one
//! sample faer's matrix-vector path costs several times the arithmetic).
//!
//! Determinism: the tiling depends only on the shapes (never on the number of threads), each
//! output element is computed by one task with the same sequential code, and every reduction
//! over samples (gradients, loss) runs in a fixed order (per group in block order, chains in
//! chain order, row chunks in row order). So results are bitwise the same for any number of
//! threads.

use super::LmfOptions;
use crate::error::{Error, Result};
use crate::scalar::Real;
use faer::linalg::matmul::matmul;
use faer::{Accum, MatMut, MatRef, Par};
use mmfuse_kernels::Arch;
use std::any::Any;
use std::cell::RefCell;
use std::ops::Range;

/// Target columns of a group of ranks: wide enough for the GEMMs to run at full speed and to
/// amortise their packing of the block's rows, narrow enough to give a 16 x 128 model four
/// groups (parallel work for a small batch).
const GROUP_COLS: usize = 512;
/// Most rows per block by default.
const MAX_BLOCK: usize = 256;
/// Most bytes of a block's projection buffers (`rows x r h x M` values) by default.
const BLOCK_BYTES: usize = 8 << 20;
/// Parallel tasks worth aiming for per block (or chain of blocks): enough to balance two to
/// four threads.
const TASKS: usize = 4;
/// Fewest GEMM flops per task worth a task of its own (~10 us on one core): below that, rayon's
/// hand-off costs more than it saves.
const TASK_FLOPS: usize = 1 << 19;
/// Fewest GEMM flops per tile for the tiles of a block to run in parallel. Lower than
/// [`TASK_FLOPS`]: a one-sample tile is a matrix-vector product that streams its part of the
/// factors from memory, slow for its flops.
const TILE_FLOPS: usize = 1 << 18;
/// Most rows of a tile projected by the SIMD kernel rather than by faer (see [`project_tile`]).
const SMALL_ROWS: usize = 2;
/// Fewest rows of a tile for which the GEMMs read a column-major copy of the factors when there
/// is one: thinner tiles gain nothing from it (faer would pack the copy's columns for a few
/// rows of work), and up to 12 rows faer reads the row-major factor in place, unpacked.
const COPY_TILE_ROWS: usize = 32;
/// Rows per task of the forward SIMD pass and of the input-gradient GEMMs.
pub(crate) const FUSE_ROWS: usize = 32;
/// Most chains of the backward pass (each holds a copy of the factor gradients).
const MAX_CHAINS: usize = 4;

/// The parameters the block engine reads: a model's, or a pre-scaled copy.
pub(crate) struct Fusion<'a, T> {
    /// GEMM layout `(d_m + 1) x (r h)` row-major, per modality. Row 0 (the constant input) is
    /// the offset row of the SIMD passes.
    pub factors: Vec<&'a [T]>,
    /// Per modality, rows 1.. of the factor (`d_m x r h`) as the GEMMs read it: a view of
    /// `factors`, or of a column-major copy (see [`transposed_factors`]).
    pub w1: Vec<MatRef<'a, T>>,
    pub dims: &'a [usize],
    pub rank: usize,
    pub h: usize,
    /// `None`: already folded into a factor (pre-scaled model).
    pub weights: Option<&'a [T]>,
    pub bias: &'a [T],
}

impl<'a, T: Real> Fusion<'a, T> {
    /// The parameters with the GEMMs reading the factors in place (row-major).
    pub fn new(
        factors: Vec<&'a [T]>,
        dims: &'a [usize],
        rank: usize,
        h: usize,
        weights: Option<&'a [T]>,
        bias: &'a [T],
    ) -> Self {
        let rh = rank * h;
        let w1 = factors
            .iter()
            .zip(dims)
            .map(|(w, &d)| MatRef::from_row_major_slice(&w[rh..], d, rh))
            .collect();
        Fusion {
            factors,
            w1,
            dims,
            rank,
            h,
            weights,
            bias,
        }
    }

    pub fn rh(&self) -> usize {
        self.rank * self.h
    }

    /// The same parameters with the GEMMs reading `copies` (from [`transposed_factors`]).
    pub fn with_copies<'b>(&self, copies: &'b [Vec<T>]) -> Fusion<'b, T>
    where
        'a: 'b,
    {
        let rh = self.rh();
        Fusion {
            factors: self.factors.clone(),
            w1: copies
                .iter()
                .zip(self.dims)
                .map(|(c, &d)| MatRef::from_column_major_slice(c, d, rh))
                .collect(),
            dims: self.dims,
            rank: self.rank,
            h: self.h,
            weights: self.weights,
            bias: self.bias,
        }
    }
}

/// Fewest rows for which a pass over a model's factors copies them column-major first (see
/// [`transposed_factors`]): the copy costs about one pass over the factors, the GEMMs gain
/// about 10%, which pays from a few hundred rows on.
pub(crate) const COPY_ROWS: usize = 512;

/// Rows 1.. of every factor, column-major (`d_m x r h`, each column contiguous): what faer's
/// GEMM reads fastest as its right-hand side here (about 10% over the row-major factor, whose
/// columns it would gather with a stride of `r h` values).
pub(crate) fn transposed_factors<T: Real>(f: &Fusion<'_, T>) -> Vec<Vec<T>> {
    use rayon::prelude::*;
    const B: usize = 16;
    let rh = f.rh();
    f.factors
        .iter()
        .zip(f.dims)
        .map(|(w, &d)| {
            let src = &w[rh..];
            let mut out = vec![T::ZERO; d * rh];
            // Blocks of B columns of the source (B rows of the copy), its rows walked a cache line
            // at a time.
            out.par_chunks_mut(B * d).enumerate().for_each(|(b, dst)| {
                let j0 = b * B;
                let nj = dst.len() / d;
                for (k, row) in src.chunks_exact(rh).enumerate() {
                    for (jj, &v) in row[j0..j0 + nj].iter().enumerate() {
                        dst[jj * d + k] = v;
                    }
                }
            });
            out
        })
        .collect()
}

/// Which pass a tiling is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Pass {
    Forward,
    Backward,
}

/// The tiling of one pass over `n` samples (see the module docs).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Plan {
    pub n: usize,
    /// Rows per block (the last block may be shorter).
    pub block: usize,
    pub rank: usize,
    pub h: usize,
    /// Ranks per group (the last group may have fewer).
    pub group_ranks: usize,
    /// Backward pass: contiguous runs of blocks with their own gradient sums.
    pub chains: usize,
    /// Whether the tiles of a full block are worth running in parallel (enough work each).
    pub parallel: bool,
}

impl Plan {
    /// The tiling for these shapes: `opts.block_rows` when given, else blocks of at most
    /// [`MAX_BLOCK`] rows and [`BLOCK_BYTES`], cut further while a block has fewer than
    /// [`TASKS`] tiles of at least [`TASK_FLOPS`].
    pub fn new<T>(
        opts: &LmfOptions,
        pass: Pass,
        dims: &[usize],
        rank: usize,
        h: usize,
        n: usize,
    ) -> Self {
        let n = n.max(1);
        let rh = rank * h;
        let per_group = (GROUP_COLS / h.max(1)).clamp(1, rank.max(1));
        let groups = rank.div_ceil(per_group).max(1);
        // Balanced groups: 16 ranks of 200 columns are 4 groups of 4, not 2, 2, 2, ... of 3.
        let group_ranks = rank.div_ceil(groups).max(1);
        let groups = rank.div_ceil(group_ranks).max(1);
        let block = match opts.block_rows {
            Some(b) => b.clamp(1, n),
            None => {
                let per_row = (dims.len() * rh * std::mem::size_of::<T>()).max(1);
                let cap = (BLOCK_BYTES / per_row).clamp(1, MAX_BLOCK);
                let mut blocks = n.div_ceil(cap);
                // Flops of one row of one group: the forward GEMMs.
                let row_flops = 2 * dims.iter().sum::<usize>() * group_ranks * h;
                let by_work = (n * row_flops / TASK_FLOPS).max(1);
                let wanted = TASKS.div_ceil(groups);
                if pass == Pass::Forward {
                    blocks = blocks.max(wanted.min(by_work).min(n));
                }
                n.div_ceil(blocks)
            }
        };
        let nblocks = n.div_ceil(block);
        let chains = match pass {
            Pass::Forward => 1,
            Pass::Backward => {
                // Chains run their blocks without waiting for each other, where the groups of
                // one block meet three times per block (projections, outputs, gradients); a
                // chain costs one copy of the factor gradients, added once at the end, which is
                // little next to a block's GEMMs. So several blocks make chains (the groups
                // inside still share out idle threads), one block relies on its groups.
                let row_flops = 2 * dims.iter().sum::<usize>() * rh;
                let by_work = (n * row_flops / TASK_FLOPS).max(1);
                let wanted = if nblocks >= 2 {
                    MAX_CHAINS
                } else {
                    TASKS.div_ceil(groups)
                };
                wanted.min(MAX_CHAINS).min(nblocks).min(by_work).max(1)
            }
        };
        let tile_flops = 2 * block * dims.iter().sum::<usize>() * group_ranks * h;
        Plan {
            n,
            block,
            rank,
            h,
            group_ranks,
            chains,
            parallel: tile_flops >= TILE_FLOPS,
        }
    }

    pub fn nblocks(&self) -> usize {
        self.n.div_ceil(self.block)
    }

    /// Rows of block `b`.
    pub fn rows(&self, b: usize) -> Range<usize> {
        b * self.block..((b + 1) * self.block).min(self.n)
    }

    pub fn ngroups(&self) -> usize {
        self.rank.div_ceil(self.group_ranks)
    }

    /// Ranks of group `g`.
    pub fn ranks(&self, g: usize) -> Range<usize> {
        g * self.group_ranks..((g + 1) * self.group_ranks).min(self.rank)
    }

    /// Columns (of the `r h`) of group `g`.
    pub fn cols(&self, g: usize) -> Range<usize> {
        let r = self.ranks(g);
        r.start * self.h..r.end * self.h
    }

    /// Block index ranges of the chains: contiguous, in order.
    pub fn chain_blocks(&self) -> Vec<Range<usize>> {
        let (nb, k) = (self.nblocks(), self.chains);
        (0..k).map(|c| c * nb / k..(c + 1) * nb / k).collect()
    }
}

/// Cuts a block buffer (`rows x r h`, group-major: group `g` is a contiguous `rows x cols(g)`
/// row-major matrix) into its groups.
pub(crate) fn group_chunks<'a, T>(buf: &'a [T], plan: &Plan, rows: usize) -> Vec<&'a [T]> {
    buf[..rows * plan.rank * plan.h]
        .chunks(rows * plan.group_ranks * plan.h)
        .collect()
}

/// [`group_chunks`], mutable.
pub(crate) fn group_chunks_mut<'a, T>(
    buf: &'a mut [T],
    plan: &Plan,
    rows: usize,
) -> Vec<&'a mut [T]> {
    buf[..rows * plan.rank * plan.h]
        .chunks_mut(rows * plan.group_ranks * plan.h)
        .collect()
}

/// Per group, the M buffers of a block (`bufs[m]` cut by [`group_chunks_mut`]).
pub(crate) fn tiles_mut<'a, T>(
    bufs: &'a mut [Vec<T>],
    plan: &Plan,
    rows: usize,
) -> Vec<Vec<&'a mut [T]>> {
    let mut tiles: Vec<Vec<&mut [T]>> = (0..plan.ngroups())
        .map(|_| Vec::with_capacity(bufs.len()))
        .collect();
    for buf in bufs.iter_mut() {
        for (tile, chunk) in tiles.iter_mut().zip(group_chunks_mut(buf, plan, rows)) {
            tile.push(chunk);
        }
    }
    tiles
}

/// One tile's GEMMs: `tile[m] = X_m[rows] W_m[1:, cols]` (`rows.len() x cols.len()`, row-major)
/// for every modality, without the constant row (added later as an offset). Up to
/// [`SMALL_ROWS`] rows, the SIMD projection of `mmfuse-kernels` on the row-major factor instead
/// of faer: at one sample, faer's matrix-vector path takes several times as long (set-up and a
/// horizontal reduction per column).
pub(crate) fn project_tile<T: Real>(
    arch: Arch,
    f: &Fusion<'_, T>,
    xs: &[&[T]],
    rows: Range<usize>,
    cols: Range<usize>,
    tile: &mut [&mut [T]],
) {
    let (nr, nc, rh) = (rows.len(), cols.len(), f.rh());
    if nr <= SMALL_ROWS {
        for ((buf, x), (w, &d)) in tile.iter_mut().zip(xs).zip(f.factors.iter().zip(f.dims)) {
            mmfuse_kernels::lmf_project_rows_on(
                arch,
                &x[rows.start * d..rows.end * d],
                d,
                &w[rh + cols.start..],
                rh,
                nc,
                &mut buf[..nr * nc],
            );
        }
        return;
    }
    for (m, (buf, x)) in tile.iter_mut().zip(xs).enumerate() {
        let d = f.dims[m];
        let w = if nr >= COPY_TILE_ROWS {
            f.w1[m]
        } else {
            MatRef::from_row_major_slice(&f.factors[m][rh..], d, rh)
        };
        matmul(
            MatMut::from_row_major_slice_mut(&mut buf[..nr * nc], nr, nc),
            Accum::Replace,
            MatRef::from_row_major_slice(&x[rows.start * d..rows.end * d], nr, d),
            w.subcols(cols.start, nc),
            T::ONE,
            Par::Seq,
        );
    }
}

/// All tiles of the block `rows` into `bufs` (M buffers of at least `rows x r h`), the groups in
/// parallel.
pub(crate) fn project_block<T: Real>(
    arch: Arch,
    f: &Fusion<'_, T>,
    plan: &Plan,
    xs: &[&[T]],
    rows: Range<usize>,
    bufs: &mut [Vec<T>],
) {
    let mut tiles = tiles_mut(bufs, plan, rows.len());
    if tiles.len() == 1 || !plan.parallel {
        for (g, tile) in tiles.iter_mut().enumerate() {
            project_tile(arch, f, xs, rows.clone(), plan.cols(g), tile);
        }
    } else {
        use rayon::prelude::*;
        tiles
            .par_iter_mut()
            .enumerate()
            .for_each(|(g, tile)| project_tile(arch, f, xs, rows.clone(), plan.cols(g), tile));
    }
}

/// The offset rows (factor row 0) of group `g`, per modality.
pub(crate) fn offsets<'a, T>(f: &Fusion<'a, T>, plan: &Plan, g: usize) -> Vec<&'a [T]> {
    let cols = plan.cols(g);
    f.factors.iter().map(|w| &w[cols.clone()]).collect()
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

// ---------------------------------------------------------------------------------------------
// Reusable buffers

/// Most bytes of buffers a thread keeps for the next call (see [`Cached`]).
const CACHE_BYTES: usize = 64 << 20;

thread_local! {
    /// Buffers of earlier calls on this thread, by type.
    static CACHE: RefCell<Vec<(usize, Box<dyn Any>)>> = const { RefCell::new(Vec::new()) };
}

/// A value taken from the calling thread's cache (or new) and given back to the cache of the
/// thread that drops it: block buffers are megabytes, and a fresh allocation per call costs a
/// zeroing pass or page faults over all of them (15% of a forward pass at batch 256). The cache
/// holds at most [`CACHE_BYTES`] per thread; contents are unspecified when taken.
pub(crate) struct Cached<W: Any + Default + Bytes> {
    value: Option<W>,
}

/// Heap bytes held by a cached value.
pub(crate) trait Bytes {
    fn bytes(&self) -> usize;
}

impl<T> Bytes for Vec<Vec<T>> {
    fn bytes(&self) -> usize {
        self.iter()
            .map(|v| v.capacity() * std::mem::size_of::<T>())
            .sum()
    }
}

impl<W: Any + Default + Bytes> Cached<W> {
    pub fn take() -> Self {
        let found = CACHE.with(|c| {
            let mut c = c.borrow_mut();
            let pos = c.iter().position(|(_, b)| b.is::<W>())?;
            c.swap_remove(pos).1.downcast::<W>().ok()
        });
        Cached {
            value: Some(found.map(|b| *b).unwrap_or_default()),
        }
    }
}

impl<W: Any + Default + Bytes> std::ops::Deref for Cached<W> {
    type Target = W;
    fn deref(&self) -> &W {
        self.value.as_ref().expect("present until dropped")
    }
}

impl<W: Any + Default + Bytes> std::ops::DerefMut for Cached<W> {
    fn deref_mut(&mut self) -> &mut W {
        self.value.as_mut().expect("present until dropped")
    }
}

impl<W: Any + Default + Bytes> Drop for Cached<W> {
    fn drop(&mut self) {
        let Some(v) = self.value.take() else { return };
        let bytes = v.bytes();
        if bytes > CACHE_BYTES {
            return;
        }
        // `try_with`: the thread may be shutting down.
        let _ = CACHE.try_with(|c| {
            let mut c = c.borrow_mut();
            c.push((bytes, Box::new(v)));
            // Keep the newest within the budget.
            while c.iter().map(|(b, _)| b).sum::<usize>() > CACHE_BYTES {
                c.remove(0);
            }
        });
    }
}

/// Resizes `bufs` to `count` buffers of at least `len` values (existing contents kept).
pub(crate) fn ensure_bufs<T: Real>(bufs: &mut Vec<Vec<T>>, count: usize, len: usize) {
    bufs.resize_with(count, Vec::new);
    for b in bufs.iter_mut() {
        if b.len() < len {
            b.resize(len, T::ZERO);
        }
    }
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

    /// The shared pool of the requested number of threads ([`crate::threads`], built once
    /// per thread count and reused), or None for the current pool.
    pub(crate) fn pool(&self) -> Result<Option<std::sync::Arc<rayon::ThreadPool>>> {
        self.threads.map(crate::threads::pool).transpose()
    }

    /// Runs `f` on the requested number of threads (rayon's global pool when `threads` is None).
    pub(crate) fn install<R: Send>(&self, f: impl FnOnce() -> R + Send) -> Result<R> {
        Ok(run_in(self.pool()?.as_deref(), f))
    }
}

/// Runs `f` in `pool`, or in the current (global) pool.
pub(crate) fn run_in<R: Send>(pool: Option<&rayon::ThreadPool>, f: impl FnOnce() -> R + Send) -> R {
    match pool {
        Some(p) => p.install(f),
        None => f(),
    }
}
