//! The backward pass (docs/design.md section 4), blocked like the forward pass:
//!
//! ```text
//! dc      = sum_rows G
//! dw_i    = sum_{n,k} G[n,k] P_i[n,k],       P_i = prod_m A_m[i]
//! dA_m[i] = w_i G * prod_{m' != m} A_m'[i]   (prefix / suffix products, in the SIMD kernel)
//! dW_m    = [1, X_m]^T dA_m                  (row 0: column sums of dA_m; rows 1..: one GEMM)
//! dX_m    = dA_m W_m[1:]^T                   (one GEMM)
//! ```
//!
//! The projections `A_m` are recomputed per block rather than kept from the forward pass, so
//! memory stays O(block x r h x M) plus one copy of the parameter gradients per chain (see
//! `block.rs`). The training step runs the forward pass, the loss and this backward pass on each
//! block while its buffers are in cache.

use super::block::{
    ensure_bufs, group_chunks, offsets, project_block, project_tile, split_rows, tiles_mut,
    transposed_factors, Bytes, Cached, Fusion, Pass, Plan, COPY_ROWS, FUSE_ROWS,
};
use super::loss::Loss;
use super::model::LmfModel;
use super::LmfOptions;
use crate::error::{Error, Result};
use crate::matrix::Matrix;
use crate::scalar::Real;
use faer::linalg::matmul::matmul;
use faer::prelude::ReborrowMut;
use faer::{Accum, MatMut, MatRef, Par};
use mmfuse_kernels::{self as kernels, Arch};
use rayon::prelude::*;
use std::ops::Range;

/// Gradients of a loss with respect to every parameter of an [`LmfModel`] (and, from
/// [`LmfModel::backward`], every input).
#[derive(Clone, Debug, PartialEq)]
pub struct LmfGradients<T> {
    /// dL/dW_m per modality, in the model's GEMM layout (`(d_m + 1) x (r h)`, element
    /// `(row, i h + k)` for the reference's `[i][row][k]`; see
    /// [`gemm_to_torch_layout`](super::gemm_to_torch_layout)).
    pub factors: Vec<Matrix<T>>,
    /// dL/dw (`r`).
    pub fusion_weights: Vec<T>,
    /// dL/dc (`h`).
    pub bias: Vec<T>,
    /// dL/dX_m (`N x d_m`) per modality; empty when input gradients were not asked for.
    pub inputs: Vec<Matrix<T>>,
}

/// Where the block's dL/dy comes from.
#[derive(Clone, Copy)]
pub(crate) enum GradSource<'a, T> {
    /// Given by the caller (`N x h`, contiguous).
    Given(&'a [T]),
    /// From a loss against targets (`N x h`, contiguous); `scale` from [`Loss::grad_scale`].
    Loss {
        loss: Loss,
        targets: &'a [T],
        scale: T,
    },
}

/// One chain's buffers and partial sums. A training loop keeps one per chain for the whole run
/// (see [`Workspace`]), so a step allocates nothing of the size of the parameters.
#[derive(Default)]
pub(crate) struct ChainWork<T> {
    /// Per modality, `block x r h` (group-major, see `block.rs`): the projections, then dA_m.
    a: Vec<Vec<T>>,
    /// `block x h`: outputs of the block (training step).
    y: Vec<T>,
    /// Per group, `block x h`: the group's part of the outputs (training step).
    yg: Vec<T>,
    /// `block x h`: dL/dy of the block (training step).
    g: Vec<T>,
    /// Per modality, GEMM layout: this chain's factor gradients (the first chain writes into
    /// the caller's output instead).
    dfactors: Vec<Vec<T>>,
    /// `r x h`: sum over samples of G * P_i.
    gp: Vec<T>,
    /// `h`.
    dc: Vec<T>,
    /// Sum of the loss terms (training step).
    loss: f64,
    /// Per group: the registers of the backward kernel.
    scratch: Vec<Vec<T>>,
}

/// Reusable buffers of the backward pass: one [`ChainWork`] per chain.
pub(crate) type Workspace<T> = Vec<ChainWork<T>>;

impl<T> Bytes for Workspace<T> {
    fn bytes(&self) -> usize {
        let v = |v: &Vec<T>| v.capacity() * std::mem::size_of::<T>();
        self.iter()
            .map(|w| {
                w.a.iter()
                    .chain(&w.dfactors)
                    .chain(&w.scratch)
                    .map(v)
                    .sum::<usize>()
                    + v(&w.y)
                    + v(&w.yg)
                    + v(&w.g)
                    + v(&w.gp)
                    + v(&w.dc)
            })
            .sum()
    }
}

impl<T: Real> ChainWork<T> {
    /// Sizes the buffers (contents unspecified; `run_chain` overwrites what it reads).
    fn ensure(&mut self, f: &Fusion<'_, T>, plan: &Plan, own_factors: bool) {
        let (rh, h) = (f.rh(), f.h);
        ensure_bufs(&mut self.a, f.dims.len(), plan.block * rh);
        self.y.resize(plan.block * h, T::ZERO);
        self.yg.resize(plan.ngroups() * plan.block * h, T::ZERO);
        self.g.resize(plan.block * h, T::ZERO);
        if own_factors {
            self.dfactors.resize_with(f.dims.len(), Vec::new);
            for (v, &d) in self.dfactors.iter_mut().zip(f.dims) {
                v.resize((d + 1) * rh, T::ZERO);
            }
        }
        self.gp.resize(rh, T::ZERO);
        self.dc.resize(h, T::ZERO);
        let regs = kernels::lmf_scratch_len::<T>(f.dims.len());
        self.scratch.resize_with(plan.ngroups(), Vec::new);
        for s in &mut self.scratch {
            s.resize(regs, T::ZERO);
        }
    }
}

/// The parts of a chain's gradient sums that one group's task writes.
struct GroupOut<'a, T> {
    /// Per modality: the group's columns of row 0 (the constant input) of dL/dW_m.
    row0: Vec<&'a mut [T]>,
    /// Per modality: the group's columns of rows 1.. of dL/dW_m (`d_m x cols`).
    rest: Vec<MatMut<'a, T>>,
    /// The group's ranks of `gp`.
    gp: &'a mut [T],
}

/// One group's backward task on a block: its index, tile buffers, gradient sums and kernel
/// scratch.
type GroupJob<'a, 'b, 'c, T> = (
    usize,
    (
        (&'a mut Vec<&'b mut [T]>, &'a mut GroupOut<'c, T>),
        &'a mut Vec<T>,
    ),
);

/// One chain's job: its buffers, blocks, rows of the input gradients and factor gradients
/// (`None`: its own).
type ChainJob<'a, T> = (
    ((&'a mut ChainWork<T>, Range<usize>), Vec<&'a mut [T]>),
    Option<Vec<&'a mut [T]>>,
);

/// Cuts a chain's factor gradients (`dw[m]`, GEMM layout) and `gp` by groups.
fn group_outs<'a, T: Real>(
    plan: &Plan,
    dims: &[usize],
    dw: Vec<&'a mut [T]>,
    gp: &'a mut [T],
) -> Vec<GroupOut<'a, T>> {
    let (ng, rh) = (plan.ngroups(), plan.rank * plan.h);
    let width = plan.group_ranks * plan.h;
    let mut outs: Vec<GroupOut<'a, T>> = gp
        .chunks_mut(width)
        .map(|gp| GroupOut {
            row0: Vec::with_capacity(dims.len()),
            rest: Vec::with_capacity(dims.len()),
            gp,
        })
        .collect();
    debug_assert_eq!(outs.len(), ng);
    for (dw, &d) in dw.into_iter().zip(dims) {
        let (row0, rest) = dw.split_at_mut(rh);
        for (o, chunk) in outs.iter_mut().zip(row0.chunks_mut(width)) {
            o.row0.push(chunk);
        }
        let mut rest = MatMut::from_row_major_slice_mut(rest, d, rh);
        for (g, o) in outs.iter_mut().enumerate() {
            let w = plan.cols(g).len();
            let (head, tail) = rest.split_at_col_mut(w);
            o.rest.push(head);
            rest = tail;
        }
    }
    outs
}

/// One group's backward on one block: dA_m in place of the projections (SIMD kernel, with the
/// group's `gp`), then the factor gradients: row 0 gets the column sums of dA_m, rows 1.. the
/// GEMM `X_m[rows]^T dA_m` (written by the chain's first block, added by the others).
#[allow(clippy::too_many_arguments)]
fn backward_tile<T: Real>(
    arch: Arch,
    f: &Fusion<'_, T>,
    plan: &Plan,
    xs: &[&[T]],
    rows: &Range<usize>,
    g: usize,
    tile: &mut [&mut [T]],
    grad: &[T],
    out: &mut GroupOut<'_, T>,
    scratch: &mut [T],
    first: bool,
) {
    let weights = f
        .weights
        .expect("backward runs on a model with fusion weights");
    let ranks = plan.ranks(g);
    let (nr, w) = (rows.len(), ranks.len() * f.h);
    let off = offsets(f, plan, g);
    // Row 0 of the factor gradients multiplies the constant 1: the column sums of dA_m, which
    // the kernel adds while it has them in registers (from zero on the chain's first block).
    if first {
        for r in out.row0.iter_mut() {
            r.fill(T::ZERO);
        }
    }
    kernels::lmf_fuse_backward_partial_on(
        arch,
        tile,
        Some(&off),
        ranks.len(),
        f.h,
        &weights[ranks],
        grad,
        out.gp,
        Some(&mut out.row0),
        scratch,
    );
    let accum = if first { Accum::Replace } else { Accum::Add };
    for (m, (da, &d)) in tile.iter().zip(f.dims).enumerate() {
        let x = MatRef::from_row_major_slice(&xs[m][rows.start * d..rows.end * d], nr, d);
        matmul(
            out.rest[m].rb_mut(),
            accum,
            x.transpose(),
            MatRef::from_row_major_slice(&da[..nr * w], nr, w),
            T::ONE,
            Par::Seq,
        );
    }
}

/// The block's tiles (see `project_block`), each followed, when `outputs` is given, by its
/// group's part of the outputs (the rank sum over the group's ranks, no bias) into the group's
/// `block x h` piece of `outputs`, while the tile is in cache. The training step adds the parts
/// in group order (and the bias) instead of running the forward pass over all the buffers again:
/// its outputs can differ from [`LmfModel::forward`]'s in the last bits (another summation
/// order), never between runs or thread counts.
fn project_with_outputs<T: Real>(
    arch: Arch,
    f: &Fusion<'_, T>,
    plan: &Plan,
    xs: &[&[T]],
    rows: Range<usize>,
    a: &mut [Vec<T>],
    outputs: Option<&mut [T]>,
) {
    let Some(outputs) = outputs else {
        return project_block(arch, f, plan, xs, rows, a);
    };
    let (nr, h) = (rows.len(), f.h);
    let mut tiles = tiles_mut(a, plan, nr);
    let mut parts: Vec<&mut [T]> = outputs
        .chunks_mut(plan.block * h)
        .map(|c| &mut c[..nr * h])
        .collect();
    let task = |(g, (tile, part)): (usize, (&mut Vec<&mut [T]>, &mut &mut [T]))| {
        project_tile(arch, f, xs, rows.clone(), plan.cols(g), tile);
        let ranks = plan.ranks(g);
        let bufs: Vec<&[T]> = tile.iter().map(|v| &v[..]).collect();
        kernels::lmf_fuse_partial_on(
            arch,
            &bufs,
            Some(&offsets(f, plan, g)),
            ranks.len(),
            h,
            f.weights.map(|w| &w[ranks.clone()]),
            None,
            false,
            part,
        );
    };
    if plan.parallel && tiles.len() > 1 {
        tiles
            .par_iter_mut()
            .zip(parts.par_iter_mut())
            .enumerate()
            .for_each(task);
    } else {
        tiles
            .iter_mut()
            .zip(parts.iter_mut())
            .enumerate()
            .for_each(task);
    }
}

/// The groups' `nr x h` output parts in `outputs` (see [`project_with_outputs`]).
fn group_rows<'a, T>(outputs: &'a [T], plan: &Plan, nr: usize) -> Vec<&'a [T]> {
    outputs
        .chunks(plan.block * plan.h)
        .map(|c| &c[..nr * plan.h])
        .collect()
}

/// dL/dX_m for the rows `sub` of the block (relative to it; its buffers hold dA for `nr` rows):
/// `dx[m] = sum_g dA_m[g] W_m[1:, g]^T`, the groups in order.
fn input_grads<T: Real>(
    f: &Fusion<'_, T>,
    plan: &Plan,
    a: &[Vec<T>],
    nr: usize,
    sub: Range<usize>,
    dx: &mut [&mut [T]],
) {
    for (m, (out, &d)) in dx.iter_mut().zip(f.dims).enumerate() {
        let mut out = MatMut::from_row_major_slice_mut(&mut out[..sub.len() * d], sub.len(), d);
        let w = f.w1[m];
        for (g, da) in group_chunks(&a[m], plan, nr).into_iter().enumerate() {
            let cols = plan.cols(g);
            let cw = cols.len();
            matmul(
                out.rb_mut(),
                if g == 0 { Accum::Replace } else { Accum::Add },
                MatRef::from_row_major_slice(&da[sub.start * cw..sub.end * cw], sub.len(), cw),
                w.subcols(cols.start, cw).transpose(),
                T::ONE,
                Par::Seq,
            );
        }
    }
}

/// Runs one chain of blocks: its sums start from scratch in `work` (`gp`, `dc`, `loss`) and in
/// `dw` (the factor gradients, GEMM layout, per modality; `None`: the chain's own
/// `work.dfactors`). `dx[m]` are this chain's rows of dL/dX_m (empty slices when the input
/// gradients are not wanted).
#[allow(clippy::too_many_arguments)]
fn run_chain<T: Real>(
    arch: Arch,
    f: &Fusion<'_, T>,
    plan: &Plan,
    xs: &[&[T]],
    blocks: Range<usize>,
    src: GradSource<'_, T>,
    dx: &mut [&mut [T]],
    dw: Option<Vec<&mut [T]>>,
    work: &mut ChainWork<T>,
) {
    let h = f.h;
    let ChainWork {
        a,
        y,
        yg,
        g,
        dfactors,
        gp,
        dc,
        loss: loss_sum,
        scratch,
    } = work;
    let dw = dw.unwrap_or_else(|| dfactors.iter_mut().map(|v| &mut v[..]).collect());
    gp.fill(T::ZERO);
    dc.fill(T::ZERO);
    *loss_sum = 0.0;
    let mut outs = group_outs(plan, f.dims, dw, gp);
    let chain_r0 = plan.rows(blocks.start).start;
    let first_block = blocks.start;
    for b in blocks {
        let rows = plan.rows(b);
        let nr = rows.len();
        let with_outputs = matches!(src, GradSource::Loss { .. });
        project_with_outputs(
            arch,
            f,
            plan,
            xs,
            rows.clone(),
            a,
            with_outputs.then_some(&mut *yg),
        );
        // dL/dy of the block.
        let grad: &[T] = match src {
            GradSource::Given(all) => &all[rows.start * h..rows.end * h],
            GradSource::Loss {
                loss,
                targets,
                scale,
            } => {
                let (y, g) = (&mut y[..nr * h], &mut g[..nr * h]);
                let t = &targets[rows.start * h..rows.end * h];
                let parts = group_rows(yg, plan, nr);
                let part = |(c, (y, g)): (usize, (&mut [T], &mut [T]))| {
                    let r0 = c * FUSE_ROWS;
                    let sub = r0 * h..r0 * h + y.len();
                    // The groups' sums in group order, then the bias.
                    y.copy_from_slice(&parts[0][sub.clone()]);
                    for p in &parts[1..] {
                        for (acc, &v) in y.iter_mut().zip(&p[sub.clone()]) {
                            *acc += v;
                        }
                    }
                    for row in y.chunks_exact_mut(h) {
                        for (acc, &b) in row.iter_mut().zip(f.bias) {
                            *acc += b;
                        }
                    }
                    loss.block(y, &t[sub], scale, g)
                };
                // Partial sums per row chunk, added in order: the same for any thread count.
                let parts: Vec<f64> = if plan.parallel && nr >= 2 * FUSE_ROWS {
                    y.par_chunks_mut(FUSE_ROWS * h)
                        .zip(g.par_chunks_mut(FUSE_ROWS * h))
                        .enumerate()
                        .map(part)
                        .collect()
                } else {
                    y.chunks_mut(FUSE_ROWS * h)
                        .zip(g.chunks_mut(FUSE_ROWS * h))
                        .enumerate()
                        .map(part)
                        .collect()
                };
                *loss_sum += parts.iter().sum::<f64>();
                g
            }
        };
        for row in grad.chunks_exact(h) {
            for (acc, &v) in dc.iter_mut().zip(row) {
                *acc += v;
            }
        }
        let first = b == first_block;
        {
            let mut tiles = tiles_mut(a, plan, nr);
            let task = |(gi, ((tile, out), scr)): GroupJob<'_, '_, '_, T>| {
                backward_tile(arch, f, plan, xs, &rows, gi, tile, grad, out, scr, first)
            };
            if plan.parallel && tiles.len() > 1 {
                tiles
                    .par_iter_mut()
                    .zip(outs.par_iter_mut())
                    .zip(scratch.par_iter_mut())
                    .enumerate()
                    .for_each(task);
            } else {
                tiles
                    .iter_mut()
                    .zip(outs.iter_mut())
                    .zip(scratch.iter_mut())
                    .enumerate()
                    .for_each(task);
            }
        }
        if dx.iter().any(|d| !d.is_empty()) {
            let lr0 = rows.start - chain_r0;
            // This block's rows of each dX_m, cut into row chunks.
            let mut parts: Vec<Vec<&mut [T]>> =
                (0..nr.div_ceil(FUSE_ROWS)).map(|_| Vec::new()).collect();
            for (dxm, &d) in dx.iter_mut().zip(f.dims) {
                let blk = &mut dxm[lr0 * d..(lr0 + nr) * d];
                for (p, chunk) in parts.iter_mut().zip(blk.chunks_mut(FUSE_ROWS * d)) {
                    p.push(chunk);
                }
            }
            let a = &a[..];
            let task = |(c, part): (usize, &mut Vec<&mut [T]>)| {
                let r0 = c * FUSE_ROWS;
                input_grads(f, plan, a, nr, r0..(r0 + FUSE_ROWS).min(nr), part)
            };
            if plan.parallel && parts.len() > 1 {
                parts.par_iter_mut().enumerate().for_each(task);
            } else {
                parts.iter_mut().enumerate().for_each(task);
            }
        }
    }
}

impl<T: Real> LmfGradients<T> {
    /// Zero gradients shaped like `f`'s parameters (no input gradients).
    pub(crate) fn zeros_for(f: &Fusion<'_, T>) -> Self {
        LmfGradients {
            factors: f
                .dims
                .iter()
                .map(|&d| Matrix::zeros_for_output(d + 1, f.rh()))
                .collect(),
            fusion_weights: vec![T::ZERO; f.rank],
            bias: vec![T::ZERO; f.h],
            inputs: Vec::new(),
        }
    }
}

/// The parameter gradients over `n` samples into `out` (shaped like the parameters; its
/// `inputs` untouched), with dL/dX_m written into `dx[m]` (`n x d_m`) when given. Returns the
/// sum of the loss terms when `src` is a loss (0 otherwise). `ws` is reused between calls.
#[allow(clippy::too_many_arguments)]
pub(crate) fn backward_into<T: Real>(
    arch: Arch,
    f: &Fusion<'_, T>,
    xs: &[&[T]],
    n: usize,
    opts: &LmfOptions,
    src: GradSource<'_, T>,
    dx: Option<&mut [Matrix<T>]>,
    ws: &mut Workspace<T>,
    out: &mut LmfGradients<T>,
) -> f64 {
    let h = f.h;
    let nm = f.factors.len();
    let plan = Plan::new::<T>(opts, Pass::Backward, f.dims, f.rank, h, n);
    let chain_blocks = plan.chain_blocks();
    let nchains = chain_blocks.len();
    let row_ranges: Vec<Range<usize>> = chain_blocks
        .iter()
        .map(|c| plan.rows(c.start).start..plan.rows(c.end - 1).end)
        .collect();
    // dx_parts[c][m]: chain c's rows of dL/dX_m.
    let mut dx_parts: Vec<Vec<&mut [T]>> = (0..nchains).map(|_| Vec::with_capacity(nm)).collect();
    match dx {
        Some(dx) => {
            for (mat, &d) in dx.iter_mut().zip(f.dims) {
                for (part, piece) in
                    dx_parts
                        .iter_mut()
                        .zip(split_rows(mat.as_mut_slice(), d, &row_ranges))
                {
                    part.push(piece);
                }
            }
        }
        None => {
            for part in &mut dx_parts {
                part.resize_with(nm, || &mut []);
            }
        }
    }
    if ws.len() < nchains {
        ws.resize_with(nchains, ChainWork::default);
    }
    for (c, w) in ws[..nchains].iter_mut().enumerate() {
        w.ensure(f, &plan, c > 0);
    }
    // The first chain sums the factor gradients straight into `out`, the others into their own
    // buffers (added to `out` in chain order below).
    let mut targets: Vec<Option<Vec<&mut [T]>>> = (0..nchains).map(|_| None).collect();
    targets[0] = Some(out.factors.iter_mut().map(|m| m.as_mut_slice()).collect());
    let jobs: Vec<_> = ws[..nchains]
        .iter_mut()
        .zip(chain_blocks)
        .zip(dx_parts)
        .zip(targets)
        .collect();
    let job = |(((work, blocks), mut part), dw): ChainJob<'_, T>| {
        run_chain(arch, f, &plan, xs, blocks, src, &mut part, dw, work)
    };
    if nchains == 1 {
        jobs.into_iter().for_each(job);
    } else {
        jobs.into_par_iter().for_each(job);
    }
    // Add the chains in order (deterministic).
    let chains = &ws[..nchains];
    for (m, dst) in out.factors.iter_mut().enumerate() {
        for c in &chains[1..] {
            for (a, &v) in dst.as_mut_slice().iter_mut().zip(&c.dfactors[m]) {
                *a += v;
            }
        }
    }
    out.bias.copy_from_slice(&chains[0].dc);
    let mut gp = chains[0].gp.clone();
    let mut loss = chains[0].loss;
    for c in &chains[1..] {
        for (a, &v) in out.bias.iter_mut().zip(&c.dc) {
            *a += v;
        }
        for (a, &v) in gp.iter_mut().zip(&c.gp) {
            *a += v;
        }
        loss += c.loss;
    }
    for (dw, row) in out.fusion_weights.iter_mut().zip(gp.chunks_exact(h)) {
        let mut acc = T::ZERO;
        for &v in row {
            acc += v;
        }
        *dw = acc;
    }
    loss
}

impl<T: Real> LmfModel<T> {
    /// Gradients of a loss with respect to every parameter and every input, given
    /// `grad_output = dL/dy` (`N x h`) for the inputs `xs` (model order, as for
    /// [`LmfModel::forward`]).
    ///
    /// ```
    /// use mmfuse::lmf::{LmfModel, LmfOptions};
    /// use mmfuse::Matrix;
    ///
    /// let model = LmfModel::<f64>::new(&[("a", 2), ("b", 1)], 2, 1, 3)?;
    /// let xa = Matrix::from_vec(1, 2, vec![0.5, -1.0])?;
    /// let xb = Matrix::from_vec(1, 1, vec![2.0])?;
    /// let g = Matrix::from_vec(1, 1, vec![1.0])?;
    /// let xs = [xa.as_mat_ref(), xb.as_mat_ref()];
    /// let grads = model.backward(&xs, g.as_mat_ref(), &LmfOptions::default())?;
    /// assert_eq!(grads.bias, vec![1.0]); // dy/dc = 1
    /// assert_eq!(grads.inputs[0].shape(), (1, 2));
    /// # Ok::<(), mmfuse::Error>(())
    /// ```
    pub fn backward(
        &self,
        xs: &[MatRef<'_, T>],
        grad_output: MatRef<'_, T>,
        opts: &LmfOptions,
    ) -> Result<LmfGradients<T>> {
        self.backward_impl(mmfuse_kernels::arch(), xs, grad_output, opts, true)
    }

    /// [`LmfModel::backward`] with the SIMD passes on a given instruction set.
    pub fn backward_on(
        &self,
        arch: Arch,
        xs: &[MatRef<'_, T>],
        grad_output: MatRef<'_, T>,
        opts: &LmfOptions,
    ) -> Result<LmfGradients<T>> {
        self.backward_impl(arch, xs, grad_output, opts, true)
    }

    /// [`LmfModel::backward`] without the input gradients (`inputs` is left empty): two GEMMs
    /// per modality and block instead of three.
    pub fn param_gradients(
        &self,
        xs: &[MatRef<'_, T>],
        grad_output: MatRef<'_, T>,
        opts: &LmfOptions,
    ) -> Result<LmfGradients<T>> {
        self.backward_impl(mmfuse_kernels::arch(), xs, grad_output, opts, false)
    }

    fn backward_impl(
        &self,
        arch: Arch,
        xs: &[MatRef<'_, T>],
        grad_output: MatRef<'_, T>,
        opts: &LmfOptions,
        want_inputs: bool,
    ) -> Result<LmfGradients<T>> {
        opts.validate()?;
        let (rows, n) = self.check_inputs(xs)?;
        let g = self.check_output_like(grad_output, n, "grad_output")?;
        let slices: Vec<&[T]> = rows.iter().map(|r| &r[..]).collect();
        let mut dx: Vec<Matrix<T>> = if want_inputs {
            self.dims
                .iter()
                .map(|&d| Matrix::zeros_for_output(n, d))
                .collect()
        } else {
            Vec::new()
        };
        let f = self.fusion();
        let mut grads = LmfGradients::zeros_for(&f);
        opts.install(|| {
            let dx = if want_inputs { Some(&mut dx[..]) } else { None };
            let src = GradSource::Given(&g);
            let mut ws = Cached::<Workspace<T>>::take();
            if n >= COPY_ROWS {
                let copies = transposed_factors(&f);
                let fc = f.with_copies(&copies);
                backward_into(arch, &fc, &slices, n, opts, src, dx, &mut ws, &mut grads);
            } else {
                backward_into(arch, &f, &slices, n, opts, src, dx, &mut ws, &mut grads);
            }
        })?;
        grads.inputs = dx;
        Ok(grads)
    }

    /// The loss of the model's outputs against `targets` (`N x h`) and its gradients with respect
    /// to the parameters (`inputs` left empty), in one blocked pass (forward, loss, backward on
    /// each block while it is in cache). This is the training step without the optimiser.
    pub fn loss_and_gradients(
        &self,
        xs: &[MatRef<'_, T>],
        targets: MatRef<'_, T>,
        loss: Loss,
        opts: &LmfOptions,
    ) -> Result<(f64, LmfGradients<T>)> {
        opts.validate()?;
        loss.check_elementwise()?;
        let (rows, n) = self.check_inputs(xs)?;
        let t = self.check_output_like(targets, n, "targets")?;
        let slices: Vec<&[T]> = rows.iter().map(|r| &r[..]).collect();
        let f = self.fusion();
        let mut grads = LmfGradients::zeros_for(&f);
        let value = opts.install(|| {
            let mut ws = Cached::<Workspace<T>>::take();
            loss_step(
                mmfuse_kernels::arch(),
                &f,
                &slices,
                &t,
                n,
                loss,
                opts,
                &mut ws,
                &mut grads,
            )
        })?;
        Ok((value, grads))
    }
}

/// The mean loss and the parameter gradients (into `out`) over `n` checked, contiguous samples.
#[allow(clippy::too_many_arguments)]
pub(crate) fn loss_step<T: Real>(
    arch: Arch,
    f: &Fusion<'_, T>,
    xs: &[&[T]],
    targets: &[T],
    n: usize,
    loss: Loss,
    opts: &LmfOptions,
    ws: &mut Workspace<T>,
    out: &mut LmfGradients<T>,
) -> f64 {
    let count = n * f.h;
    let src = GradSource::Loss {
        loss,
        targets,
        scale: loss.grad_scale::<T>(count),
    };
    let sum = if n >= COPY_ROWS {
        let copies = transposed_factors(f);
        backward_into(
            arch,
            &f.with_copies(&copies),
            xs,
            n,
            opts,
            src,
            None,
            ws,
            out,
        )
    } else {
        backward_into(arch, f, xs, n, opts, src, None, ws, out)
    };
    sum / count as f64
}

impl<T: Real> LmfGradients<T> {
    /// Gradient of factor `m` in the PyTorch reference layout `(r, d_m + 1, h)`.
    pub fn factor_torch_layout(&self, m: usize, rank: usize, out_dim: usize) -> Result<Vec<T>> {
        let f = self.factors.get(m).ok_or_else(|| {
            Error::param(
                "modality",
                format!("index {m} is out of range ({} factors)", self.factors.len()),
            )
        })?;
        super::model::gemm_to_torch_layout(f, rank, out_dim)
    }
}
