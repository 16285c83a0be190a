//! The forward pass: blocked GEMMs plus the SIMD fusion pass, and the pre-scaled inference model.

use super::block::{
    ensure_bufs, group_chunks, offsets, project_tile, tiles_mut, transposed_factors, Cached,
    Fusion, Pass, Plan, COPY_ROWS, FUSE_ROWS,
};
use super::model::{checked_count, LmfModel};
use super::LmfOptions;
use crate::error::Result;
use crate::matrix::Matrix;
use crate::scalar::Real;
use faer::MatRef;
use mmfuse_kernels::{self as kernels, Arch};
use rayon::prelude::*;
use std::ops::Range;

/// A batch that is a single block: the groups' tiles in parallel, each one's GEMMs followed by
/// the Hadamard product over modalities into its first buffer while they are in cache; then the
/// rank sum over that one buffer, in parallel over row chunks.
fn single_block<T: Real>(arch: Arch, f: &Fusion<'_, T>, plan: &Plan, xs: &[&[T]], out: &mut [T]) {
    let n = plan.n;
    let mut bufs = Cached::<Vec<Vec<T>>>::take();
    ensure_bufs(&mut bufs, f.factors.len(), n * f.rh());
    {
        let mut tiles = tiles_mut(&mut bufs, plan, n);
        let task = |(g, tile): (usize, &mut Vec<&mut [T]>)| {
            let cols = plan.cols(g);
            project_tile(arch, f, xs, 0..n, cols.clone(), tile);
            let (first, others) = tile.split_at_mut(1);
            let others: Vec<&[T]> = others.iter().map(|v| &v[..]).collect();
            let off = offsets(f, plan, g);
            kernels::lmf_hadamard_on(arch, first[0], &others, Some(&off), cols.len());
        };
        if plan.parallel && tiles.len() > 1 {
            tiles.par_iter_mut().enumerate().for_each(task);
        } else {
            tiles.iter_mut().enumerate().for_each(task);
        }
    }
    let products = group_chunks(&bufs[0], plan, n);
    let sum = |sub: Range<usize>, out: &mut [T]| {
        let ng = products.len();
        for (g, p) in products.iter().enumerate() {
            let ranks = plan.ranks(g);
            let w = ranks.len() * f.h;
            kernels::lmf_fuse_partial_on(
                arch,
                &[&p[sub.start * w..sub.end * w]],
                None,
                ranks.len(),
                f.h,
                f.weights.map(|w| &w[ranks.clone()]),
                (g + 1 == ng).then_some(f.bias),
                g > 0,
                out,
            );
        }
    };
    if plan.parallel && n >= 2 * FUSE_ROWS {
        out.par_chunks_mut(FUSE_ROWS * f.h)
            .enumerate()
            .for_each(|(c, o)| sum(c * FUSE_ROWS..c * FUSE_ROWS + o.len() / f.h, o));
    } else {
        sum(0..n, out);
    }
}

/// One block of a batch of several (run by one task): group after group, the tile's GEMMs into
/// `bufs` (one group's width), then the SIMD pass continuing the rank sum in `out`
/// (`rows.len() x h`) while the tile is in cache.
fn block_by_groups<T: Real>(
    arch: Arch,
    f: &Fusion<'_, T>,
    plan: &Plan,
    xs: &[&[T]],
    rows: Range<usize>,
    bufs: &mut Vec<Vec<T>>,
    out: &mut [T],
) {
    let nr = rows.len();
    let ng = plan.ngroups();
    ensure_bufs(bufs, f.factors.len(), plan.block * plan.cols(0).len());
    for g in 0..ng {
        let cols = plan.cols(g);
        let w = cols.len();
        let mut tile: Vec<&mut [T]> = bufs.iter_mut().map(|b| &mut b[..nr * w]).collect();
        project_tile(arch, f, xs, rows.clone(), cols, &mut tile);
        let a: Vec<&[T]> = tile.iter().map(|v| &v[..]).collect();
        let ranks = plan.ranks(g);
        kernels::lmf_fuse_partial_on(
            arch,
            &a,
            Some(&offsets(f, plan, g)),
            ranks.len(),
            f.h,
            f.weights.map(|w| &w[ranks.clone()]),
            (g + 1 == ng).then_some(f.bias),
            g > 0,
            out,
        );
    }
}

/// `out` (`n x h`, row-major) = the fusion of the `n` samples of `xs` (checked, contiguous).
///
/// Both schedules compute every tile with the same GEMM and every output row with the same
/// sequence of kernel operations, so they give the same bits; the choice only follows the
/// tiling (never the number of threads).
pub(crate) fn forward_into<T: Real>(
    arch: Arch,
    f: &Fusion<'_, T>,
    xs: &[&[T]],
    n: usize,
    opts: &LmfOptions,
    out: &mut [T],
) {
    let plan = Plan::new::<T>(opts, Pass::Forward, f.dims, f.rank, f.h, n);
    if plan.nblocks() == 1 {
        single_block(arch, f, &plan, xs, out);
        return;
    }
    out.par_chunks_mut(plan.block * f.h)
        .enumerate()
        .for_each_init(Cached::<Vec<Vec<T>>>::take, |bufs, (b, out_blk)| {
            block_by_groups(arch, f, &plan, xs, plan.rows(b), bufs, out_blk)
        });
}

/// [`forward_into`] for a model's parameters: with the factors copied column-major first when
/// the batch is large enough to pay for the copy (see [`transposed_factors`]).
pub(crate) fn forward_model<T: Real>(
    arch: Arch,
    f: &Fusion<'_, T>,
    xs: &[&[T]],
    n: usize,
    opts: &LmfOptions,
    out: &mut [T],
) {
    if n >= COPY_ROWS {
        let copies = transposed_factors(f);
        forward_into(arch, &f.with_copies(&copies), xs, n, opts, out);
    } else {
        forward_into(arch, f, xs, n, opts, out);
    }
}

fn run_forward<T: Real>(
    arch: Arch,
    model: &LmfModel<T>,
    f: &Fusion<'_, T>,
    xs: &[MatRef<'_, T>],
    opts: &LmfOptions,
    copy_factors: bool,
) -> Result<Matrix<T>> {
    opts.validate()?;
    let (rows, n) = model.check_inputs(xs)?;
    let slices: Vec<&[T]> = rows.iter().map(|r| &r[..]).collect();
    checked_count::<T>(&[n, f.h], "the outputs")?;
    let mut out = Matrix::zeros_for_output(n, f.h);
    opts.install(|| {
        if copy_factors {
            forward_model(arch, f, &slices, n, opts, out.as_mut_slice())
        } else {
            forward_into(arch, f, &slices, n, opts, out.as_mut_slice())
        }
    })?;
    Ok(out)
}

impl<T: Real> LmfModel<T> {
    pub(crate) fn fusion(&self) -> Fusion<'_, T> {
        Fusion::new(
            self.factors.iter().map(|f| f.as_slice()).collect(),
            &self.dims,
            self.rank,
            self.out_dim,
            Some(&self.fusion_weights),
            &self.bias,
        )
    }

    /// Outputs `y` (`N x h`) for inputs in the model's order (`xs[m]` is `N x d_m`, any strides;
    /// an input whose rows are not contiguous is copied once).
    ///
    /// Errors: wrong number of inputs, feature sizes that differ from the model's, row counts that
    /// differ, no rows, a NaN or infinity in an input, invalid options.
    ///
    /// ```
    /// use mmfuse::lmf::{LmfModel, LmfOptions};
    /// use mmfuse::Matrix;
    ///
    /// let model = LmfModel::<f32>::new(&[("visual", 3), ("audio", 2)], 4, 2, 0)?;
    /// let v = Matrix::from_vec(2, 3, vec![0.1f32, 0.2, 0.3, 0.4, 0.5, 0.6])?;
    /// let a = Matrix::from_vec(2, 2, vec![1.0f32, 0.0, 0.0, 1.0])?;
    /// let y = model.forward(&[v.as_mat_ref(), a.as_mat_ref()], &LmfOptions::default())?;
    /// assert_eq!(y.shape(), (2, 2));
    /// # Ok::<(), mmfuse::Error>(())
    /// ```
    pub fn forward(&self, xs: &[MatRef<'_, T>], opts: &LmfOptions) -> Result<Matrix<T>> {
        self.forward_on(mmfuse_kernels::arch(), xs, opts)
    }

    /// [`LmfModel::forward`] with the SIMD pass on a given instruction set (tests compare every
    /// one of `mmfuse_kernels::available_isas()`).
    pub fn forward_on(
        &self,
        arch: Arch,
        xs: &[MatRef<'_, T>],
        opts: &LmfOptions,
    ) -> Result<Matrix<T>> {
        run_forward(arch, self, &self.fusion(), xs, opts, true)
    }

    /// [`LmfModel::forward`] with inputs given by modality name, in any order (each exactly once).
    pub fn forward_named(
        &self,
        named: &[(&str, MatRef<'_, T>)],
        opts: &LmfOptions,
    ) -> Result<Matrix<T>> {
        self.forward(&self.order_inputs(named)?, opts)
    }

    /// The inference form of this model: the fusion weights folded into the first factor once
    /// (`W_0[i] <- w_i W_0[i]`), so the rank sum is a plain sum. Its outputs differ from
    /// [`LmfModel::forward`]'s by the one rounding of each product `w_i W_0[i][row][k]`.
    pub fn prescale(&self) -> PrescaledLmf<T> {
        let mut factors = self.factors.clone();
        let rh = self.rank * self.out_dim;
        for row in factors[0].as_mut_slice().chunks_exact_mut(rh) {
            for (i, seg) in row.chunks_exact_mut(self.out_dim).enumerate() {
                let w = self.fusion_weights[i];
                for v in seg {
                    *v *= w;
                }
            }
        }
        // Same names, shapes and bias; ones as fusion weights document what the factors mean.
        let model = LmfModel {
            factors,
            fusion_weights: vec![T::ONE; self.rank],
            ..self.clone()
        };
        let copies = transposed_factors(&model.fusion());
        PrescaledLmf { model, copies }
    }
}

/// An [`LmfModel`] prepared for inference: the fusion weights are folded into the first factor,
/// so the forward pass skips the weighting (see [`LmfModel::prescale`]).
#[derive(Clone, Debug, PartialEq)]
pub struct PrescaledLmf<T: Real> {
    /// Factor 0 scaled by the fusion weights, fusion weights all ones.
    model: LmfModel<T>,
    /// Rows 1.. of the factors, column-major: the layout the GEMMs read fastest, made once here
    /// (a [`LmfModel`] makes it per call, for large batches only).
    copies: Vec<Vec<T>>,
}

impl<T: Real> PrescaledLmf<T> {
    fn fusion(&self) -> Fusion<'_, T> {
        let mut f = self.model.fusion().with_copies(&self.copies);
        f.weights = None;
        f
    }

    /// Outputs for inputs in the model's order; same checks as [`LmfModel::forward`].
    pub fn forward(&self, xs: &[MatRef<'_, T>], opts: &LmfOptions) -> Result<Matrix<T>> {
        self.forward_on(mmfuse_kernels::arch(), xs, opts)
    }

    /// [`PrescaledLmf::forward`] with the SIMD pass on a given instruction set.
    pub fn forward_on(
        &self,
        arch: Arch,
        xs: &[MatRef<'_, T>],
        opts: &LmfOptions,
    ) -> Result<Matrix<T>> {
        run_forward(arch, &self.model, &self.fusion(), xs, opts, false)
    }

    /// Outputs for inputs given by modality name.
    pub fn forward_named(
        &self,
        named: &[(&str, MatRef<'_, T>)],
        opts: &LmfOptions,
    ) -> Result<Matrix<T>> {
        self.forward(&self.model.order_inputs(named)?, opts)
    }

    /// Modality names, in order.
    pub fn modalities(&self) -> &[String] {
        self.model.modalities()
    }

    /// Feature sizes, in the modality order.
    pub fn dims(&self) -> &[usize] {
        self.model.dims()
    }

    /// Output size `h`.
    pub fn out_dim(&self) -> usize {
        self.model.out_dim()
    }
}
