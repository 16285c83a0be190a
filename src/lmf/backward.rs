//! The backward pass (DESIGN.md section 4), blocked like the forward pass:
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

use super::block::{block_rows, chains, project, split_rows, Bufs, Fusion, Pass};
use super::loss::Loss;
use super::model::LmfModel;
use super::LmfOptions;
use crate::error::{Error, Result};
use crate::matrix::Matrix;
use crate::scalar::Real;
use faer::linalg::matmul::matmul;
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

/// One chain's partial sums and block buffers. A training loop keeps one per chain for the
/// whole run (see [`Workspace`]), so a step allocates nothing of the size of the parameters.
pub(crate) struct ChainWork<T> {
    /// Per modality, GEMM layout.
    dfactors: Vec<Vec<T>>,
    /// `r x h`: sum over samples of G * P_i.
    gp: Vec<T>,
    /// `h`.
    dc: Vec<T>,
    /// Sum of the loss terms (training step).
    loss: f64,
    bufs: Bufs<T>,
}

/// Reusable buffers of the backward pass: one [`ChainWork`] per chain.
pub(crate) type Workspace<T> = Vec<ChainWork<T>>;

impl<T: Real> ChainWork<T> {
    fn new() -> Self {
        ChainWork {
            dfactors: Vec::new(),
            gp: Vec::new(),
            dc: Vec::new(),
            loss: 0.0,
            bufs: Bufs::new(0, 0, 0, 0),
        }
    }

    /// Sizes the buffers (contents unspecified; `run_chain` overwrites all of them).
    fn ensure(&mut self, dims: &[usize], block: usize, rh: usize, h: usize) {
        self.dfactors.resize_with(dims.len(), Vec::new);
        for (v, &d) in self.dfactors.iter_mut().zip(dims) {
            v.resize((d + 1) * rh, T::ZERO);
        }
        self.gp.resize(rh, T::ZERO);
        self.dc.resize(h, T::ZERO);
        self.bufs.ensure(dims.len(), block, rh, h);
    }
}

/// Runs one chain of blocks into `work` (whose sums it starts from scratch). `dx[m]` are this
/// chain's rows of dL/dX_m (empty slices when the input gradients are not wanted).
#[allow(clippy::too_many_arguments)]
fn run_chain<T: Real>(
    arch: Arch,
    f: &Fusion<'_, T>,
    xs: &[&[T]],
    n: usize,
    block: usize,
    blocks: Range<usize>,
    src: GradSource<'_, T>,
    dx: &mut [&mut [T]],
    work: &mut ChainWork<T>,
) {
    let (rank, h, rh) = (f.rank, f.h, f.rh());
    let weights = f
        .weights
        .expect("backward runs on a model with fusion weights");
    let ChainWork {
        dfactors,
        gp,
        dc,
        loss: loss_sum,
        bufs,
    } = work;
    gp.fill(T::ZERO);
    dc.fill(T::ZERO);
    *loss_sum = 0.0;
    for dw in dfactors.iter_mut() {
        dw[..rh].fill(T::ZERO);
    }
    let chain_r0 = blocks.start * block;
    let first_block = blocks.start;
    for b in blocks {
        let r0 = b * block;
        let rows = block.min(n - r0);
        project(f, xs, r0, rows, &mut bufs.a);
        let Bufs { a, y, g, scratch } = &mut *bufs;
        let grad: &[T] = match src {
            GradSource::Given(all) => &all[r0 * h..(r0 + rows) * h],
            GradSource::Loss {
                loss,
                targets,
                scale,
            } => {
                let (y, g) = (&mut y[..rows * h], &mut g[..rows * h]);
                let a_ro: Vec<&[T]> = a.iter().map(|v| &v[..rows * rh]).collect();
                kernels::lmf_fuse_on(arch, &a_ro, rank, h, Some(weights), f.bias, y);
                *loss_sum += loss.block(y, &targets[r0 * h..(r0 + rows) * h], scale, g);
                g
            }
        };
        for row in grad.chunks_exact(h) {
            for (acc, &v) in dc.iter_mut().zip(row) {
                *acc += v;
            }
        }
        {
            let mut a_rw: Vec<&mut [T]> = a.iter_mut().map(|v| &mut v[..rows * rh]).collect();
            kernels::lmf_fuse_backward_on(arch, &mut a_rw, rank, h, weights, grad, gp, scratch);
        }
        // The first block of the chain writes the gradient rows 1.. instead of adding to them
        // (so the buffers never need zeroing).
        let accum = if b == first_block {
            Accum::Replace
        } else {
            Accum::Add
        };
        for (m, (dw, &d)) in dfactors.iter_mut().zip(f.dims).enumerate() {
            let da = &a[m][..rows * rh];
            // Row 0 multiplies the constant 1: the column sums of dA_m.
            for row in da.chunks_exact(rh) {
                for (acc, &v) in dw[..rh].iter_mut().zip(row) {
                    *acc += v;
                }
            }
            let da_view = MatRef::from_row_major_slice(da, rows, rh);
            let x_blk = MatRef::from_row_major_slice(&xs[m][r0 * d..(r0 + rows) * d], rows, d);
            matmul(
                MatMut::from_row_major_slice_mut(&mut dw[rh..], d, rh),
                accum,
                x_blk.transpose(),
                da_view,
                T::ONE,
                Par::Seq,
            );
            if !dx[m].is_empty() {
                let lr0 = r0 - chain_r0;
                matmul(
                    MatMut::from_row_major_slice_mut(
                        &mut dx[m][lr0 * d..(lr0 + rows) * d],
                        rows,
                        d,
                    ),
                    Accum::Replace,
                    da_view,
                    MatRef::from_row_major_slice(&f.factors[m][rh..], d, rh).transpose(),
                    T::ONE,
                    Par::Seq,
                );
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
                .map(|&d| Matrix::filled(d + 1, f.rh(), T::ZERO))
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
    let (h, rh) = (f.h, f.rh());
    let nm = f.factors.len();
    let block = block_rows::<T>(opts, Pass::Backward, nm, rh, n);
    let nblocks = n.div_ceil(block);
    let chain_blocks = chains(nblocks);
    let nchains = chain_blocks.len();
    let row_ranges: Vec<Range<usize>> = chain_blocks
        .iter()
        .map(|c| c.start * block..(c.end * block).min(n))
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
        ws.resize_with(nchains, ChainWork::new);
    }
    let rows_max = row_ranges.iter().map(|r| r.len()).max().unwrap_or(0);
    for w in ws[..nchains].iter_mut() {
        w.ensure(f.dims, block.min(rows_max), rh, h);
    }
    if nchains == 1 {
        let mut part = dx_parts.pop().unwrap_or_default();
        run_chain(
            arch,
            f,
            xs,
            n,
            block,
            chain_blocks[0].clone(),
            src,
            &mut part,
            &mut ws[0],
        );
    } else {
        ws[..nchains]
            .par_iter_mut()
            .zip(chain_blocks)
            .zip(dx_parts)
            .for_each(|((work, blocks), mut part)| {
                run_chain(arch, f, xs, n, block, blocks, src, &mut part, work)
            });
    }
    // Add the chains in order (deterministic).
    let chains = &ws[..nchains];
    for (m, dst) in out.factors.iter_mut().enumerate() {
        let dst = dst.as_mut_slice();
        dst.copy_from_slice(&chains[0].dfactors[m]);
        for c in &chains[1..] {
            for (a, &v) in dst.iter_mut().zip(&c.dfactors[m]) {
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
        self.backward_impl(Arch::new(), xs, grad_output, opts, true)
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
        self.backward_impl(Arch::new(), xs, grad_output, opts, false)
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
            backward_into(
                arch,
                &f,
                &slices,
                n,
                opts,
                src,
                dx,
                &mut Vec::new(),
                &mut grads,
            );
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
        let (rows, n) = self.check_inputs(xs)?;
        let t = self.check_output_like(targets, n, "targets")?;
        let slices: Vec<&[T]> = rows.iter().map(|r| &r[..]).collect();
        let f = self.fusion();
        let mut grads = LmfGradients::zeros_for(&f);
        let value = opts.install(|| {
            let mut ws = Vec::new();
            loss_step(
                Arch::new(),
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
    backward_into(arch, f, xs, n, opts, src, None, ws, out) / count as f64
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
