//! SIMD micro-kernels of mmfuse: vectorised exp / tanh, Gram tile epilogues, row norms, the
//! L1-distance block and the low-rank multimodal fusion pass. Slices in, slices out: no
//! allocation, no threads. Each public function detects the instruction set once per call
//! (`pulp::Arch`: AVX-512 with `x86-v4`, AVX2 + FMA, or scalar) and runs a kernel compiled for
//! it. Each has a plain scalar twin in [`reference`].
#![warn(missing_docs)]

mod distance;
mod epilogue;
mod exp;
mod lmf;
pub mod reference;
mod simd;
mod tile;

pub use distance::{pack_panel, panel_width, PANEL_PAD};
pub use epilogue::Epilogue;
pub use simd::Float;
pub use tile::{transpose_into, TileMut};

pub use pulp::Arch;
use pulp::{Simd, WithSimd};

/// Per-type entry points of the generic kernels (implementation detail of the dispatch: a
/// generic `with_simd::<S>` body can only call a kernel for a *concrete* element type).
#[doc(hidden)]
pub trait SimdKernels: Sized {
    fn exp_slice<S: Simd>(s: S, x: &mut [Self]);
    fn tanh_slice<S: Simd>(s: S, x: &mut [Self]);
    fn epilogue<S: Simd>(
        s: S,
        tile: &mut TileMut<'_, Self>,
        ep: &Epilogue<Self>,
        row_aux: &[Self],
        col_aux: &[Self],
    );
    fn sq_norms<S: Simd>(s: S, x: &[Self], d: usize, out: &mut [Self]);
    fn l1_tile<S: Simd>(s: S, x: &[Self], d: usize, panel: &[Self], out: &mut TileMut<'_, Self>);
    fn lmf_fuse<S: Simd>(
        s: S,
        a: &[&[Self]],
        rank: usize,
        h: usize,
        weights: Option<&[Self]>,
        bias: &[Self],
        out: &mut [Self],
    );
    #[allow(clippy::too_many_arguments)]
    fn lmf_fuse_backward<S: Simd>(
        s: S,
        a: &mut [&mut [Self]],
        rank: usize,
        h: usize,
        weights: &[Self],
        grad: &[Self],
        gp: &mut [Self],
        scratch: &mut [Self],
    );
}

macro_rules! impl_simd_kernels {
    ($t:ty) => {
        impl SimdKernels for $t {
            #[inline(always)]
            fn exp_slice<S: Simd>(s: S, x: &mut [$t]) {
                epilogue::exp_slice::<S, $t>(s, x)
            }
            #[inline(always)]
            fn tanh_slice<S: Simd>(s: S, x: &mut [$t]) {
                epilogue::tanh_slice::<S, $t>(s, x)
            }
            #[inline(always)]
            fn epilogue<S: Simd>(
                s: S,
                tile: &mut TileMut<'_, $t>,
                ep: &Epilogue<$t>,
                row_aux: &[$t],
                col_aux: &[$t],
            ) {
                epilogue::apply_tile::<S, $t>(s, tile, ep, row_aux, col_aux)
            }
            #[inline(always)]
            fn sq_norms<S: Simd>(s: S, x: &[$t], d: usize, out: &mut [$t]) {
                distance::sq_norms::<S, $t>(s, x, d, out)
            }
            #[inline(always)]
            fn l1_tile<S: Simd>(s: S, x: &[$t], d: usize, panel: &[$t], out: &mut TileMut<'_, $t>) {
                distance::l1_tile::<S, $t>(s, x, d, panel, out)
            }
            #[inline(always)]
            fn lmf_fuse<S: Simd>(
                s: S,
                a: &[&[$t]],
                rank: usize,
                h: usize,
                weights: Option<&[$t]>,
                bias: &[$t],
                out: &mut [$t],
            ) {
                lmf::fuse::<S, $t>(s, a, rank, h, weights, bias, out)
            }
            #[inline(always)]
            fn lmf_fuse_backward<S: Simd>(
                s: S,
                a: &mut [&mut [$t]],
                rank: usize,
                h: usize,
                weights: &[$t],
                grad: &[$t],
                gp: &mut [$t],
                scratch: &mut [$t],
            ) {
                lmf::fuse_backward::<S, $t>(s, a, rank, h, weights, grad, gp, scratch)
            }
        }
    };
}
impl_simd_kernels!(f32);
impl_simd_kernels!(f64);

/// Declares a struct holding a kernel's arguments and its `WithSimd` impl, which calls the
/// per-type entry point of [`SimdKernels`] with the instruction set pulp picked.
macro_rules! simd_op {
    ($name:ident<$($lt:lifetime),*> { $($arg:ident : $ty:ty),* } => $method:ident) => {
        struct $name<$($lt,)* T> { $($arg: $ty),* }
        impl<$($lt,)* T: Float> WithSimd for $name<$($lt,)* T> {
            type Output = ();
            #[inline(always)]
            fn with_simd<S: Simd>(self, s: S) {
                let $name { $($arg),* } = self;
                T::$method(s, $($arg),*)
            }
        }
    };
}

simd_op!(ExpOp<'a> { x: &'a mut [T] } => exp_slice);
simd_op!(TanhOp<'a> { x: &'a mut [T] } => tanh_slice);
simd_op!(EpilogueOp<'a, 'b> {
    tile: &'a mut TileMut<'b, T>,
    ep: &'a Epilogue<T>,
    row_aux: &'a [T],
    col_aux: &'a [T]
} => epilogue);
simd_op!(SqNormsOp<'a> { x: &'a [T], d: usize, out: &'a mut [T] } => sq_norms);
simd_op!(L1Op<'a, 'b> { x: &'a [T], d: usize, panel: &'a [T], out: &'a mut TileMut<'b, T> } => l1_tile);
simd_op!(LmfFuseOp<'a, 'b> {
    a: &'a [&'b [T]],
    rank: usize,
    h: usize,
    weights: Option<&'a [T]>,
    bias: &'a [T],
    out: &'a mut [T]
} => lmf_fuse);
simd_op!(LmfBackwardOp<'a, 'b> {
    a: &'a mut [&'b mut [T]],
    rank: usize,
    h: usize,
    weights: &'a [T],
    grad: &'a [T],
    gp: &'a mut [T],
    scratch: &'a mut [T]
} => lmf_fuse_backward);

/// `x[i] = exp(x[i])`. Maximum error 2 ulp; `exp(NaN) = NaN`, `exp(-inf) = 0`, subnormal results
/// rounded, not flushed.
///
/// ```
/// let mut x = [0.0f32, 1.0, f32::NEG_INFINITY];
/// mmfuse_kernels::exp_inplace(&mut x);
/// assert_eq!(x[0], 1.0);
/// assert!((x[1] - core::f32::consts::E).abs() <= 2.0 * f32::EPSILON * core::f32::consts::E);
/// assert_eq!(x[2], 0.0);
/// ```
pub fn exp_inplace<T: Float>(x: &mut [T]) {
    exp_inplace_on(Arch::new(), x)
}

/// [`exp_inplace`] on a given instruction set (tests compare every available one).
pub fn exp_inplace_on<T: Float>(arch: Arch, x: &mut [T]) {
    arch.dispatch(ExpOp { x })
}

/// `x[i] = tanh(x[i])`.
pub fn tanh_inplace<T: Float>(x: &mut [T]) {
    tanh_inplace_on(Arch::new(), x)
}

/// [`tanh_inplace`] on a given instruction set.
pub fn tanh_inplace_on<T: Float>(arch: Arch, x: &mut [T]) {
    arch.dispatch(TanhOp { x })
}

/// Applies a Gram epilogue to every element of `tile`.
///
/// `row_aux` / `col_aux` are, for [`Epilogue::Rbf`], the squared norms of the tile's row / column
/// points, and for [`Epilogue::Cosine`] their reciprocal norms; other epilogues ignore them.
///
/// # Panics
/// If the auxiliary slices needed by `ep` do not match the tile's shape.
pub fn apply_epilogue<T: Float>(
    tile: &mut TileMut<'_, T>,
    ep: &Epilogue<T>,
    row_aux: &[T],
    col_aux: &[T],
) {
    apply_epilogue_on(Arch::new(), tile, ep, row_aux, col_aux)
}

/// [`apply_epilogue`] on a given instruction set.
pub fn apply_epilogue_on<T: Float>(
    arch: Arch,
    tile: &mut TileMut<'_, T>,
    ep: &Epilogue<T>,
    row_aux: &[T],
    col_aux: &[T],
) {
    arch.dispatch(EpilogueOp {
        tile,
        ep,
        row_aux,
        col_aux,
    })
}

/// Squared Euclidean norm of each row of `x` (`out.len()` rows of length `d`, row-major).
///
/// # Panics
/// If `x.len() != out.len() * d`.
pub fn sq_norms<T: Float>(x: &[T], d: usize, out: &mut [T]) {
    sq_norms_on(Arch::new(), x, d, out)
}

/// [`sq_norms`] on a given instruction set.
pub fn sq_norms_on<T: Float>(arch: Arch, x: &[T], d: usize, out: &mut [T]) {
    arch.dispatch(SqNormsOp { x, d, out })
}

/// L1 distances `out[i][j] = sum_k |x_i[k] - y_j[k]|` between the `out.nrows()` rows of `x`
/// (row-major, length `d`) and the `out.ncols()` points packed in `panel` by [`pack_panel`].
///
/// # Panics
/// If `x` or `panel` are too short for the tile.
pub fn l1_distance_tile<T: Float>(x: &[T], d: usize, panel: &[T], out: &mut TileMut<'_, T>) {
    l1_distance_tile_on(Arch::new(), x, d, panel, out)
}

/// [`l1_distance_tile`] on a given instruction set.
pub fn l1_distance_tile_on<T: Float>(
    arch: Arch,
    x: &[T],
    d: usize,
    panel: &[T],
    out: &mut TileMut<'_, T>,
) {
    arch.dispatch(L1Op { x, d, panel, out })
}

/// Low-rank multimodal fusion, the pass after the per-modality GEMMs: for a block of
/// `rows = out.len() / out_dim` samples,
/// `out[n][k] = sum_i weights[i] prod_m a[m][n][i][k] + bias[k]`, with `a[m]` the `rows x rank x
/// out_dim` projections of modality `m` (row-major: element `(n * rank + i) * out_dim + k`).
/// `weights: None` means all ones (a model whose fusion weights were folded into a factor).
/// The rank sum runs in rank order, the bias is added last.
///
/// ```
/// // One sample, two modalities, rank 2, one output.
/// let (a0, a1) = ([2.0f64, 3.0], [5.0f64, 7.0]);
/// let mut y = [0.0f64];
/// mmfuse_kernels::lmf_fuse(&[&a0[..], &a1[..]], 2, 1, Some(&[1.0, -1.0]), &[0.5], &mut y);
/// assert_eq!(y[0], 2.0 * 5.0 - 3.0 * 7.0 + 0.5);
/// ```
///
/// # Panics
/// If `a` is empty, `rank` or `out_dim` is 0, or a length does not match.
pub fn lmf_fuse<T: Float>(
    a: &[&[T]],
    rank: usize,
    out_dim: usize,
    weights: Option<&[T]>,
    bias: &[T],
    out: &mut [T],
) {
    lmf_fuse_on(Arch::new(), a, rank, out_dim, weights, bias, out)
}

/// [`lmf_fuse`] on a given instruction set.
pub fn lmf_fuse_on<T: Float>(
    arch: Arch,
    a: &[&[T]],
    rank: usize,
    out_dim: usize,
    weights: Option<&[T]>,
    bias: &[T],
    out: &mut [T],
) {
    arch.dispatch(LmfFuseOp {
        a,
        rank,
        h: out_dim,
        weights,
        bias,
        out,
    })
}

/// Scratch length [`lmf_fuse_backward`] needs for `modalities` modalities: one register of the
/// widest instruction set (64 bytes) per modality.
pub fn lmf_scratch_len<T: Float>(modalities: usize) -> usize {
    modalities * (64 / core::mem::size_of::<T>())
}

/// Backward of [`lmf_fuse`] for one block, given `grad = dL/dout` (`rows x out_dim`):
/// overwrites every `a[m]` with `dA_m[n][i][k] = weights[i] grad[n][k] prod_{m' != m}
/// a[m'][n][i][k]` (leave-one-out products from prefix and suffix products, no division) and
/// adds `sum_n grad[n][k] prod_m a[m][n][i][k]` into `gp[i][k]` (`rank x out_dim`; the fusion
/// weights' gradient is then `dw_i = sum_k gp[i][k]`). `scratch` needs
/// [`lmf_scratch_len`]`(a.len())` elements.
///
/// ```
/// let (mut a0, mut a1) = ([2.0f64], [5.0f64]);
/// let mut gp = [0.0f64];
/// let mut scratch = vec![0.0f64; mmfuse_kernels::lmf_scratch_len::<f64>(2)];
/// mmfuse_kernels::lmf_fuse_backward(
///     &mut [&mut a0[..], &mut a1[..]], 1, 1, &[3.0], &[1.0], &mut gp, &mut scratch,
/// );
/// assert_eq!((a0[0], a1[0], gp[0]), (3.0 * 5.0, 3.0 * 2.0, 10.0));
/// ```
///
/// # Panics
/// If `a` is empty, `rank` or `out_dim` is 0, a length does not match, or `scratch` is short.
pub fn lmf_fuse_backward<T: Float>(
    a: &mut [&mut [T]],
    rank: usize,
    out_dim: usize,
    weights: &[T],
    grad: &[T],
    gp: &mut [T],
    scratch: &mut [T],
) {
    lmf_fuse_backward_on(Arch::new(), a, rank, out_dim, weights, grad, gp, scratch)
}

/// [`lmf_fuse_backward`] on a given instruction set.
#[allow(clippy::too_many_arguments)]
pub fn lmf_fuse_backward_on<T: Float>(
    arch: Arch,
    a: &mut [&mut [T]],
    rank: usize,
    out_dim: usize,
    weights: &[T],
    grad: &[T],
    gp: &mut [T],
    scratch: &mut [T],
) {
    arch.dispatch(LmfBackwardOp {
        a,
        rank,
        h: out_dim,
        weights,
        grad,
        gp,
        scratch,
    })
}

/// Every instruction set this CPU can run, best last: always `Arch::Scalar`, then AVX2 + FMA
/// and AVX-512 where available. Tests run each kernel on all of them.
pub fn available_isas() -> Vec<Arch> {
    let mut v = vec![Arch::Scalar];
    #[cfg(any(target_arch = "x86", target_arch = "x86_64"))]
    {
        if let Some(s) = pulp::x86::V3::try_new() {
            v.push(Arch::V3(s));
        }
        if let Some(s) = pulp::x86::V4::try_new() {
            v.push(Arch::V4(s));
        }
    }
    v
}
