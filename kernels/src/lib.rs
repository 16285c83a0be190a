//! SIMD micro-kernels of mmfuse: vectorised exp / tanh, Gram tile epilogues, row norms and the
//! L1-distance block. Slices in, slices out: no allocation, no threads. Each public function
//! detects the instruction set once per call (`pulp::Arch`: AVX-512 with `x86-v4`, AVX2 + FMA, or
//! scalar) and runs a kernel compiled for it. Each has a plain scalar twin in [`reference`].
#![warn(missing_docs)]

mod distance;
mod epilogue;
mod exp;
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
