//! The forward pass: blocked GEMMs plus the SIMD fusion pass, and the pre-scaled inference model.

use super::block::{block_rows, project, Bufs, Fusion, Pass};
use super::model::{checked_count, LmfModel};
use super::LmfOptions;
use crate::error::Result;
use crate::matrix::Matrix;
use crate::scalar::Real;
use faer::MatRef;
use mmfuse_kernels::{self as kernels, Arch};
use rayon::prelude::*;

/// Runs the fusion of one block: projections, then the SIMD pass into `out` (`rows x h`).
pub(crate) fn fuse_block<T: Real>(
    arch: Arch,
    f: &Fusion<'_, T>,
    xs: &[&[T]],
    r0: usize,
    bufs: &mut Bufs<T>,
    out: &mut [T],
) {
    let rows = out.len() / f.h;
    let rh = f.rh();
    project(f, xs, r0, rows, &mut bufs.a);
    let a: Vec<&[T]> = bufs.a.iter().map(|v| &v[..rows * rh]).collect();
    kernels::lmf_fuse_on(arch, &a, f.rank, f.h, f.weights, f.bias, out);
}

/// `out` (`n x h`, row-major) = the fusion of the `n` samples of `xs` (checked, contiguous).
pub(crate) fn forward_into<T: Real>(
    arch: Arch,
    f: &Fusion<'_, T>,
    xs: &[&[T]],
    n: usize,
    opts: &LmfOptions,
    out: &mut [T],
) {
    let h = f.h;
    let rh = f.rh();
    let nm = f.factors.len();
    let block = block_rows::<T>(opts, Pass::Forward, nm, rh, n);
    if block >= n {
        // One block: no task to spread, so no rayon round trip (it matters at batch 1).
        let mut bufs = Bufs::new(nm, n, rh, h);
        fuse_block(arch, f, xs, 0, &mut bufs, out);
        return;
    }
    out.par_chunks_mut(block * h).enumerate().for_each_init(
        || Bufs::new(nm, block, rh, h),
        |bufs, (b, out_blk)| fuse_block(arch, f, xs, b * block, bufs, out_blk),
    );
}

fn run_forward<T: Real>(
    arch: Arch,
    model: &LmfModel<T>,
    f: &Fusion<'_, T>,
    xs: &[MatRef<'_, T>],
    opts: &LmfOptions,
) -> Result<Matrix<T>> {
    opts.validate()?;
    let (rows, n) = model.check_inputs(xs)?;
    let slices: Vec<&[T]> = rows.iter().map(|r| &r[..]).collect();
    checked_count(&[n, f.h], "the outputs")?;
    let mut out = Matrix::zeros_for_output(n, f.h);
    opts.install(|| forward_into(arch, f, &slices, n, opts, out.as_mut_slice()))?;
    Ok(out)
}

impl<T: Real> LmfModel<T> {
    pub(crate) fn fusion(&self) -> Fusion<'_, T> {
        Fusion {
            factors: self.factors.iter().map(|f| f.as_slice()).collect(),
            dims: &self.dims,
            rank: self.rank,
            h: self.out_dim,
            weights: Some(&self.fusion_weights),
            bias: &self.bias,
        }
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
        self.forward_on(Arch::new(), xs, opts)
    }

    /// [`LmfModel::forward`] with the SIMD pass on a given instruction set (tests compare every
    /// one of `mmfuse_kernels::available_isas()`).
    pub fn forward_on(
        &self,
        arch: Arch,
        xs: &[MatRef<'_, T>],
        opts: &LmfOptions,
    ) -> Result<Matrix<T>> {
        run_forward(arch, self, &self.fusion(), xs, opts)
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
        PrescaledLmf {
            model: LmfModel {
                factors,
                fusion_weights: vec![T::ONE; self.rank],
                ..self.clone()
            },
        }
    }
}

/// An [`LmfModel`] prepared for inference: the fusion weights are folded into the first factor,
/// so the forward pass skips the weighting (see [`LmfModel::prescale`]).
#[derive(Clone, Debug, PartialEq)]
pub struct PrescaledLmf<T: Real> {
    /// Factor 0 scaled by the fusion weights, fusion weights all ones.
    model: LmfModel<T>,
}

impl<T: Real> PrescaledLmf<T> {
    fn fusion(&self) -> Fusion<'_, T> {
        Fusion {
            weights: None,
            ..self.model.fusion()
        }
    }

    /// Outputs for inputs in the model's order; same checks as [`LmfModel::forward`].
    pub fn forward(&self, xs: &[MatRef<'_, T>], opts: &LmfOptions) -> Result<Matrix<T>> {
        self.forward_on(Arch::new(), xs, opts)
    }

    /// [`PrescaledLmf::forward`] with the SIMD pass on a given instruction set.
    pub fn forward_on(
        &self,
        arch: Arch,
        xs: &[MatRef<'_, T>],
        opts: &LmfOptions,
    ) -> Result<Matrix<T>> {
        run_forward(arch, &self.model, &self.fusion(), xs, opts)
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
