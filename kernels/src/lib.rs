//! SIMD micro-kernels of mmfuse: vectorised exp / tanh, Gram tile epilogues, row norms, the
//! L1-distance block, the low-rank multimodal fusion passes, the SMO passes and the symmetry
//! check. Slices in, slices out: no allocation, no threads, no printing. Each kernel has a
//! plain scalar twin in [`mod@reference`].
//!
//! # Instruction sets
//!
//! Every kernel `foo` comes as `foo_on(arch, ..)`, run on the `pulp::Arch` it is given (the
//! tests run each on every one of [`available_isas`]), and `foo(..)`, run on [`arch()`]: the
//! best this CPU has (AVX-512 with pulp's `x86-v4`, AVX2 + FMA, or scalar) unless the
//! environment variable `MMFUSE_ISA` asks for a lower one (`v4`, `v3`, `scalar`). The mmfuse
//! engine uses [`arch()`] too, so `MMFUSE_ISA=scalar` runs the whole engine on the scalar path
//! (faer's GEMMs excepted: faer picks its own). [`isa_name`] names an instruction set.
//!
//! # Writing a kernel
//!
//! One pattern for every kernel:
//!
//! 1. an argument struct `FooOp` implementing `pulp::WithSimd`, whose `with_simd::<S>` is the
//!    kernel: argument checks, the loop over `S`'s registers, the scalar tail. It and all it
//!    calls are `#[inline(always)]`, so that they are compiled inside the function pulp
//!    compiles with `S`'s target features;
//! 2. `pub fn foo_on(arch: Arch, ..)` builds the struct and calls `arch.dispatch(..)`, and
//!    `pub fn foo(..)` is `foo_on(arch(), ..)`;
//! 3. a scalar twin `reference::foo` with the same contract, and property tests comparing
//!    `foo_on` on every instruction set with it.
//!
//! Kernels generic over the element type (`f32` / `f64`) write the body once, generic over
//! `S: Simd` and `T: Lanes<S>`, and their `with_simd` calls it through a per-type entry point
//! of the hidden `SimdKernels` trait (a generic `with_simd::<S>` knows `T: Float` but not
//! `T: Lanes<S>`; the per-type impls do); the `simd_op!` macro writes such a struct and its
//! impl. `f64`-only kernels (SMO) write `with_simd` directly. A kernel that needs instructions
//! pulp's generic `Simd` lacks (the symmetry check's 4 x 4 register transposes and prefetches)
//! keeps the same struct and dispatch, and specialises inside `with_simd`: the crate-internal
//! `simd::x86_v3(s)` gives the AVX2 token when `S` is `V3` or `V4` (decided by the type, so a
//! constant after monomorphisation), and the intrinsic path runs with it (entering it through
//! `V3::vectorize` when it should be compiled as a function of its own, with exactly AVX2's
//! features: measured faster for the symmetry check than inlined under AVX-512); `Scalar`
//! (and odd arguments) take the scalar path.
//!
//! Why this pattern: `Arch::dispatch` with a `WithSimd` body is the only pulp entry point that
//! compiles one body per instruction set with its target features and also covers `Scalar`,
//! so generic kernels need it anyway, and using it for the special ones too leaves exactly one
//! place where an instruction set is chosen: the `arch` argument. Tests then reach every path
//! of every kernel by iterating over [`available_isas`], `MMFUSE_ISA` reaches them for the
//! whole engine, and argument checks and edge handling are written once, shared by the vector
//! and scalar paths, instead of being repeated before a `match` on `Arch`.
#![warn(missing_docs)]

mod columns;
mod cp_block;
mod distance;
mod elementwise;
mod epilogue;
mod exp;
mod lmf;
pub mod reference;
mod simd;
mod skinny;
mod smo;
mod symmetry;
mod tile;
mod transpose;

pub use cp_block::{CpPart, CpPartMut};
pub use distance::{pack_panel, panel_width, PANEL_PAD};
pub use epilogue::Epilogue;
pub use simd::Float;
pub use smo::{
    smo_axpy2, smo_axpy2_on, smo_second_choice, smo_second_choice_on, smo_violators,
    smo_violators_on, SecondChoice, Violators, SMO_TAU,
};
pub use symmetry::{symmetric_block_is_bad, symmetric_block_is_bad_on};
pub use tile::TileMut;

pub use pulp::Arch;
use pulp::{Simd, WithSimd};
use std::sync::OnceLock;

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
    fn transpose<S: Simd>(s: S, src: &TileMut<'_, Self>, dst: &mut TileMut<'_, Self>, stream: bool);
    fn copy_tile<S: Simd>(s: S, src: &TileMut<'_, Self>, dst: &mut TileMut<'_, Self>, stream: bool);
    fn l1_tile<S: Simd>(s: S, x: &[Self], d: usize, panel: &[Self], out: &mut TileMut<'_, Self>);
    #[allow(clippy::too_many_arguments)]
    fn lmf_fuse<S: Simd>(
        s: S,
        a: &[&[Self]],
        offsets: Option<&[&[Self]]>,
        rank: usize,
        h: usize,
        weights: Option<&[Self]>,
        bias: Option<&[Self]>,
        accumulate: bool,
        out: &mut [Self],
    );
    #[allow(clippy::too_many_arguments)]
    fn lmf_project_rows<S: Simd>(
        s: S,
        x: &[Self],
        d: usize,
        w: &[Self],
        ldw: usize,
        width: usize,
        out: &mut [Self],
    );
    fn skinny_nn<S: Simd>(s: S, x: &[Self], d: usize, v: &[Self], c: usize, out: &mut [Self]);
    #[allow(clippy::too_many_arguments)]
    fn skinny_tn<S: Simd>(
        s: S,
        x: &[Self],
        d: usize,
        g: &[Self],
        c: usize,
        out: &mut [Self],
        accumulate: bool,
    );
    #[allow(clippy::too_many_arguments)]
    fn rows_dot<S: Simd>(
        s: S,
        x: &[Self],
        d: usize,
        w: &[Self],
        h: usize,
        out: &mut [Self],
        accumulate: bool,
    );
    fn lmf_hadamard<S: Simd>(
        s: S,
        a0: &mut [Self],
        others: &[&[Self]],
        offsets: Option<&[&[Self]]>,
        width: usize,
    );
    #[allow(clippy::too_many_arguments)]
    fn cp_forward<S: Simd>(
        s: S,
        parts: &[CpPart<'_, Self>],
        rows: usize,
        rank: usize,
        h: usize,
        w: &[Self],
        out: &mut [Self],
        scratch: &mut [Self],
    );
    #[allow(clippy::too_many_arguments)]
    fn cp_backward<S: Simd>(
        s: S,
        parts: &[CpPart<'_, Self>],
        grads: &mut [CpPartMut<'_, Self>],
        rows: usize,
        rank: usize,
        h: usize,
        w: &[Self],
        g: &[Self],
        gw: &mut [Self],
        scratch: &mut [Self],
    );
    #[allow(clippy::too_many_arguments)]
    fn lmf_fuse_backward<S: Simd>(
        s: S,
        a: &mut [&mut [Self]],
        offsets: Option<&[&[Self]]>,
        rank: usize,
        h: usize,
        weights: &[Self],
        grad: &[Self],
        gp: &mut [Self],
        dsum: Option<&mut [&mut [Self]]>,
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
            fn transpose<S: Simd>(
                s: S,
                src: &TileMut<'_, $t>,
                dst: &mut TileMut<'_, $t>,
                stream: bool,
            ) {
                transpose::transpose_tile::<S, $t>(s, src, dst, stream)
            }
            #[inline(always)]
            fn copy_tile<S: Simd>(
                s: S,
                src: &TileMut<'_, $t>,
                dst: &mut TileMut<'_, $t>,
                stream: bool,
            ) {
                transpose::copy_tile::<S, $t>(s, src, dst, stream)
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
                offsets: Option<&[&[$t]]>,
                rank: usize,
                h: usize,
                weights: Option<&[$t]>,
                bias: Option<&[$t]>,
                accumulate: bool,
                out: &mut [$t],
            ) {
                lmf::fuse_partial::<S, $t>(s, a, offsets, rank, h, weights, bias, accumulate, out)
            }
            #[inline(always)]
            fn lmf_project_rows<S: Simd>(
                s: S,
                x: &[$t],
                d: usize,
                w: &[$t],
                ldw: usize,
                width: usize,
                out: &mut [$t],
            ) {
                lmf::project_rows::<S, $t>(s, x, d, w, ldw, width, out)
            }
            #[inline(always)]
            fn skinny_nn<S: Simd>(s: S, x: &[$t], d: usize, v: &[$t], c: usize, out: &mut [$t]) {
                skinny::matmul_nn::<S, $t>(s, x, d, v, c, out)
            }
            #[inline(always)]
            fn skinny_tn<S: Simd>(
                s: S,
                x: &[$t],
                d: usize,
                g: &[$t],
                c: usize,
                out: &mut [$t],
                accumulate: bool,
            ) {
                skinny::matmul_tn::<S, $t>(s, x, d, g, c, out, accumulate)
            }
            #[inline(always)]
            fn rows_dot<S: Simd>(
                s: S,
                x: &[$t],
                d: usize,
                w: &[$t],
                h: usize,
                out: &mut [$t],
                accumulate: bool,
            ) {
                skinny::rows_dot::<S, $t>(s, x, d, w, h, out, accumulate)
            }
            #[inline(always)]
            fn lmf_hadamard<S: Simd>(
                s: S,
                a0: &mut [$t],
                others: &[&[$t]],
                offsets: Option<&[&[$t]]>,
                width: usize,
            ) {
                lmf::hadamard::<S, $t>(s, a0, others, offsets, width)
            }
            #[inline(always)]
            fn cp_forward<S: Simd>(
                s: S,
                parts: &[CpPart<'_, $t>],
                rows: usize,
                rank: usize,
                h: usize,
                w: &[$t],
                out: &mut [$t],
                scratch: &mut [$t],
            ) {
                cp_block::forward_loop::<S, $t>(s, parts, rows, rank, h, w, out, scratch)
            }
            #[inline(always)]
            fn cp_backward<S: Simd>(
                s: S,
                parts: &[CpPart<'_, $t>],
                grads: &mut [CpPartMut<'_, $t>],
                rows: usize,
                rank: usize,
                h: usize,
                w: &[$t],
                g: &[$t],
                gw: &mut [$t],
                scratch: &mut [$t],
            ) {
                cp_block::backward_loop::<S, $t>(s, parts, grads, rows, rank, h, w, g, gw, scratch)
            }
            #[inline(always)]
            fn lmf_fuse_backward<S: Simd>(
                s: S,
                a: &mut [&mut [$t]],
                offsets: Option<&[&[$t]]>,
                rank: usize,
                h: usize,
                weights: &[$t],
                grad: &[$t],
                gp: &mut [$t],
                dsum: Option<&mut [&mut [$t]]>,
                scratch: &mut [$t],
            ) {
                lmf::fuse_backward_partial::<S, $t>(
                    s, a, offsets, rank, h, weights, grad, gp, dsum, scratch,
                )
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
simd_op!(TransposeOp<'a, 'b, 'c> {
    src: &'a TileMut<'b, T>,
    dst: &'a mut TileMut<'c, T>,
    stream: bool
} => transpose);
simd_op!(CopyTileOp<'a, 'b, 'c> {
    src: &'a TileMut<'b, T>,
    dst: &'a mut TileMut<'c, T>,
    stream: bool
} => copy_tile);
simd_op!(SqNormsOp<'a> { x: &'a [T], d: usize, out: &'a mut [T] } => sq_norms);
simd_op!(L1Op<'a, 'b> { x: &'a [T], d: usize, panel: &'a [T], out: &'a mut TileMut<'b, T> } => l1_tile);
simd_op!(LmfFuseOp<'a, 'b> {
    a: &'a [&'b [T]],
    offsets: Option<&'a [&'b [T]]>,
    rank: usize,
    h: usize,
    weights: Option<&'a [T]>,
    bias: Option<&'a [T]>,
    accumulate: bool,
    out: &'a mut [T]
} => lmf_fuse);
simd_op!(LmfProjectOp<'a> {
    x: &'a [T],
    d: usize,
    w: &'a [T],
    ldw: usize,
    width: usize,
    out: &'a mut [T]
} => lmf_project_rows);
simd_op!(SkinnyNnOp<'a> { x: &'a [T], d: usize, v: &'a [T], c: usize, out: &'a mut [T] } => skinny_nn);
simd_op!(SkinnyTnOp<'a> {
    x: &'a [T],
    d: usize,
    g: &'a [T],
    c: usize,
    out: &'a mut [T],
    accumulate: bool
} => skinny_tn);
simd_op!(RowsDotOp<'a> {
    x: &'a [T],
    d: usize,
    w: &'a [T],
    h: usize,
    out: &'a mut [T],
    accumulate: bool
} => rows_dot);
simd_op!(LmfHadamardOp<'a, 'b, 'c> {
    a0: &'a mut [T],
    others: &'a [&'b [T]],
    offsets: Option<&'a [&'c [T]]>,
    width: usize
} => lmf_hadamard);
simd_op!(LmfBackwardOp<'a, 'b, 'c, 'd> {
    a: &'a mut [&'b mut [T]],
    offsets: Option<&'a [&'c [T]]>,
    rank: usize,
    h: usize,
    weights: &'a [T],
    grad: &'a [T],
    gp: &'a mut [T],
    dsum: Option<&'a mut [&'d mut [T]]>,
    scratch: &'a mut [T]
} => lmf_fuse_backward);

/// `out[i] *= a[i]` (the elementwise product of kernel matrices for interaction blocks).
///
/// # Panics
/// If the slices differ in length.
pub fn hadamard_in_place<T: Float>(out: &mut [T], a: &[T]) {
    hadamard_in_place_on(arch(), out, a)
}

/// [`hadamard_in_place`] on a given instruction set.
pub fn hadamard_in_place_on<T: Float>(arch: Arch, out: &mut [T], a: &[T]) {
    arch.dispatch(elementwise::HadamardOp { out, a })
}

/// `out (rows x c) = x (rows x d) v (d x c)`, all row-major and contiguous, for a skinny `v`
/// (few columns: the sums of 4 rows x up to 4 registers of columns stay in registers while `x`
/// streams by once, unpacked). Each output is one FMA chain over `a = 0..d`.
///
/// ```
/// let x = [1.0f32, 2.0, 3.0, 4.0]; // 2 x 2
/// let v = [1.0f32, 0.0, 1.0, 0.0, 1.0, 1.0]; // 2 x 3
/// let mut out = [0.0f32; 6];
/// mmfuse_kernels::skinny_matmul(&x, 2, &v, 3, &mut out);
/// assert_eq!(out, [1.0, 2.0, 3.0, 3.0, 4.0, 7.0]);
/// ```
///
/// # Panics
/// If `d` or `c` is 0, `c` does not divide `out.len()`, or `x`, `v` have other lengths than
/// `rows d`, `d c`.
pub fn skinny_matmul<T: Float>(x: &[T], d: usize, v: &[T], c: usize, out: &mut [T]) {
    skinny_matmul_on(arch(), x, d, v, c, out)
}

/// [`skinny_matmul`] on a given instruction set.
pub fn skinny_matmul_on<T: Float>(arch: Arch, x: &[T], d: usize, v: &[T], c: usize, out: &mut [T]) {
    arch.dispatch(SkinnyNnOp { x, d, v, c, out })
}

/// `out (d x c) = x^T g`, or `out += x^T g` when `accumulate`, with `x` `rows x d` and `g`
/// `rows x c` (row-major, contiguous; `g` skinny: 4 of its rows stay in registers while `out`'s
/// rows, in L1 for small `d c`, are updated). Each output is one FMA chain over the rows in
/// order.
///
/// # Panics
/// If `d` or `c` is 0, `c` does not divide `g.len()`, or `x`, `out` have other lengths than
/// `rows d`, `d c`.
pub fn skinny_matmul_tn<T: Float>(
    x: &[T],
    d: usize,
    g: &[T],
    c: usize,
    out: &mut [T],
    accumulate: bool,
) {
    skinny_matmul_tn_on(arch(), x, d, g, c, out, accumulate)
}

/// [`skinny_matmul_tn`] on a given instruction set.
pub fn skinny_matmul_tn_on<T: Float>(
    arch: Arch,
    x: &[T],
    d: usize,
    g: &[T],
    c: usize,
    out: &mut [T],
    accumulate: bool,
) {
    arch.dispatch(SkinnyTnOp {
        x,
        d,
        g,
        c,
        out,
        accumulate,
    })
}

/// `out[i][k] = sum_a x[i][a] w[k][a]` (or `+=` when `accumulate`) for `x` `rows x d`, `w`
/// `h x d`, `out` `rows x h`, row-major: dot products of contiguous rows, for a right-hand side
/// too narrow to fill a register. The summation order depends on the register width, so
/// instruction sets agree to rounding, not bitwise.
///
/// # Panics
/// If `d` or `h` is 0, `h` does not divide `out.len()`, or `x`, `w` have other lengths than
/// `rows d`, `h d`.
pub fn rows_dot<T: Float>(x: &[T], d: usize, w: &[T], h: usize, out: &mut [T], accumulate: bool) {
    rows_dot_on(arch(), x, d, w, h, out, accumulate)
}

/// [`rows_dot`] on a given instruction set.
pub fn rows_dot_on<T: Float>(
    arch: Arch,
    x: &[T],
    d: usize,
    w: &[T],
    h: usize,
    out: &mut [T],
    accumulate: bool,
) {
    arch.dispatch(RowsDotOp {
        x,
        d,
        w,
        h,
        out,
        accumulate,
    })
}

/// One interaction block of the block low-rank fusion model on `rows` rows: adds
/// `sum_i w[i] prod_m P_m[i h + k]` to `out[row][k]`, where each member's `P_m` is `r h`
/// consecutive values of its projection row starting at its [`CpPart::offset`].
/// `scratch` holds at least `2 r h` values.
///
/// # Panics
/// On buffers too short for `rows`, offsets past a stride, `w` not of length `rank`, or no
/// members.
pub fn cp_block_forward<T: Float>(
    parts: &[CpPart<'_, T>],
    rows: usize,
    rank: usize,
    h: usize,
    w: &[T],
    out: &mut [T],
    scratch: &mut [T],
) {
    cp_block_forward_on(arch(), parts, rows, rank, h, w, out, scratch)
}

/// [`cp_block_forward`] on a given instruction set.
#[allow(clippy::too_many_arguments)]
pub fn cp_block_forward_on<T: Float>(
    arch: Arch,
    parts: &[CpPart<'_, T>],
    rows: usize,
    rank: usize,
    h: usize,
    w: &[T],
    out: &mut [T],
    scratch: &mut [T],
) {
    arch.dispatch(cp_block::CpForwardOp {
        parts,
        rows,
        rank,
        h,
        w,
        out,
        scratch,
    })
}

/// The backward pass of [`cp_block_forward`] for output gradients `g` (`rows x h`): writes each
/// member's projection gradients `g[k] w[i] prod_{m' != m} P_m'[i h + k]` into the block's
/// columns of `grads[m]` and adds `sum_k g[k] prod_m P_m[i h + k]` (summed over the rows) to
/// `gw[i]`. `scratch` holds at least `3 r h` values.
///
/// # Panics
/// As [`cp_block_forward`], and when `grads` does not have one buffer per member.
#[allow(clippy::too_many_arguments)]
pub fn cp_block_backward<T: Float>(
    parts: &[CpPart<'_, T>],
    grads: &mut [CpPartMut<'_, T>],
    rows: usize,
    rank: usize,
    h: usize,
    w: &[T],
    g: &[T],
    gw: &mut [T],
    scratch: &mut [T],
) {
    cp_block_backward_on(arch(), parts, grads, rows, rank, h, w, g, gw, scratch)
}

/// [`cp_block_backward`] on a given instruction set.
#[allow(clippy::too_many_arguments)]
pub fn cp_block_backward_on<T: Float>(
    arch: Arch,
    parts: &[CpPart<'_, T>],
    grads: &mut [CpPartMut<'_, T>],
    rows: usize,
    rank: usize,
    h: usize,
    w: &[T],
    g: &[T],
    gw: &mut [T],
    scratch: &mut [T],
) {
    arch.dispatch(cp_block::CpBackwardOp {
        parts,
        grads,
        rows,
        rank,
        h,
        w,
        g,
        gw,
        scratch,
    })
}

/// Whether any entry of one row of a centred Gram tile needs the exact refinement of the rbf
/// kernel: `fl(s - 2 g) < tau s` with `s = fl(r + c_j)`, `g = row[j]` (`r` the row point's
/// centred squared norm, `cs` the column points'). The same IEEE operations on every
/// instruction set, so the answer never depends on it.
///
/// # Panics
/// If `row` and `cs` differ in length.
pub fn any_cancelled<T: Float>(row: &[T], cs: &[T], r: T, tau: T) -> bool {
    any_cancelled_on(arch(), row, cs, r, tau)
}

/// [`any_cancelled`] on a given instruction set.
pub fn any_cancelled_on<T: Float>(arch: Arch, row: &[T], cs: &[T], r: T, tau: T) -> bool {
    arch.dispatch(elementwise::AnyCancelledOp { row, cs, r, tau })
}

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
    exp_inplace_on(arch(), x)
}

/// [`exp_inplace`] on a given instruction set (tests compare every available one).
pub fn exp_inplace_on<T: Float>(arch: Arch, x: &mut [T]) {
    arch.dispatch(ExpOp { x })
}

/// `x[i] = tanh(x[i])`.
pub fn tanh_inplace<T: Float>(x: &mut [T]) {
    tanh_inplace_on(arch(), x)
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
    apply_epilogue_on(arch(), tile, ep, row_aux, col_aux)
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

/// Writes the transpose of `src` into `dst` (`dst[j][i] = src[i][j]`): the mirror of a
/// symmetric Gram matrix, in registers (see the `transpose` module). Bits are copied, so the
/// result is the same on every instruction set.
///
/// ```
/// use mmfuse_kernels::{transpose_into, TileMut};
/// let mut a = [1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0]; // 2 x 3
/// let mut b = [0.0f32; 6]; // 3 x 2
/// let src = TileMut::from_slice(&mut a, 2, 3, 3);
/// transpose_into(&src, &mut TileMut::from_slice(&mut b, 3, 2, 2));
/// assert_eq!(b, [1.0, 4.0, 2.0, 5.0, 3.0, 6.0]);
/// ```
///
/// # Panics
/// If `dst` is not `src.ncols() x src.nrows()`.
pub fn transpose_into<T: Float>(src: &TileMut<'_, T>, dst: &mut TileMut<'_, T>) {
    transpose_into_on(arch(), src, dst, false)
}

/// [`transpose_into`] on a given instruction set; with `stream`, the vector path writes with
/// non-temporal stores where the destination is 16-byte aligned (for a destination much
/// larger than the cache, that is not read again soon), and fences them before returning.
///
/// # Panics
/// If `dst` is not `src.ncols() x src.nrows()`.
pub fn transpose_into_on<T: Float>(
    arch: Arch,
    src: &TileMut<'_, T>,
    dst: &mut TileMut<'_, T>,
    stream: bool,
) {
    arch.dispatch(TransposeOp { src, dst, stream })
}

/// `dst = src` between tiles of the same shape; with `stream`, the vector path writes with
/// non-temporal stores where the destination is 16-byte aligned (see [`transpose_into_on`]),
/// and fences them before returning.
///
/// # Panics
/// If the shapes differ.
pub fn copy_tile_on<T: Float>(
    arch: Arch,
    src: &TileMut<'_, T>,
    dst: &mut TileMut<'_, T>,
    stream: bool,
) {
    arch.dispatch(CopyTileOp { src, dst, stream })
}

/// Column sums in f64 of row-major data with `acc.len()` columns: `acc[k] += data[i][k]` for
/// every row i, in row order, on a given instruction set.
/// Bitwise the same on every instruction set ([`reference::column_sums`]).
///
/// ```
/// let data = [1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0]; // 2 rows x 3
/// let mut acc = [0.0f64; 3];
/// mmfuse_kernels::column_sums_on(mmfuse_kernels::arch(), &data, &mut acc);
/// assert_eq!(acc, [5.0, 7.0, 9.0]);
/// ```
///
/// # Panics
/// If `acc` is empty or `data.len()` is not a multiple of `acc.len()`.
pub fn column_sums_on<T: Float>(arch: Arch, data: &[T], acc: &mut [f64]) {
    arch.dispatch(columns::ColumnSums {
        data,
        mean: None,
        acc,
    })
}

/// As [`column_sums_on`] for the absolute deviations: `acc[k] += |data[i][k] - mean[k]|`
/// (in f64), every row in order.
///
/// # Panics
/// As [`column_sums_on`], and if `mean` has fewer than `acc.len()` values.
pub fn column_abs_dev_sums_on<T: Float>(arch: Arch, data: &[T], mean: &[f64], acc: &mut [f64]) {
    arch.dispatch(columns::ColumnSums {
        data,
        mean: Some(mean),
        acc,
    })
}

/// `out[i][k] = T(src[i][k] - shift[k])` for row-major rows of `shift.len()` columns, the
/// difference computed in f64 and rounded once; every element of `out` is written. Bitwise the
/// same on every instruction set ([`reference::centre_rows`]).
///
/// # Panics
/// If `shift` is empty, the lengths differ, or they are not a multiple of `shift.len()`.
pub fn centre_rows_on<T: Float>(
    arch: Arch,
    src: &[T],
    shift: &[f64],
    out: &mut [core::mem::MaybeUninit<T>],
) {
    arch.dispatch(columns::CentreRows { src, shift, out })
}

/// Whether every element of `data` is finite, in one branch-free pass.
pub fn all_finite_on<T: Float>(arch: Arch, data: &[T]) -> bool {
    arch.dispatch(columns::AllFinite { data })
}

/// Squared Euclidean norm of each row of `x` (`out.len()` rows of length `d`, row-major).
///
/// # Panics
/// If `x.len() != out.len() * d`.
pub fn sq_norms<T: Float>(x: &[T], d: usize, out: &mut [T]) {
    sq_norms_on(arch(), x, d, out)
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
    l1_distance_tile_on(arch(), x, d, panel, out)
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
    lmf_fuse_on(arch(), a, rank, out_dim, weights, bias, out)
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
        offsets: None,
        rank,
        h: out_dim,
        weights,
        bias: Some(bias),
        accumulate: false,
        out,
    })
}

/// [`lmf_fuse`] over one group of ranks of a larger fusion, with the projections given without
/// their constant term: `A_m = a[m] + offsets[m]` (`offsets[m]`: `rank x out_dim`, the same for
/// every sample: the factor's row for the constant input, which the GEMMs then need not add),
/// the rank sum continued from `out` when `accumulate` (started from zero otherwise), and `bias`
/// added last when given:
/// `out[n][k] = (accumulate ? out[n][k] : 0) + sum_i weights[i] prod_m A_m[n][i][k] (+ bias[k])`.
///
/// Calling it for consecutive groups of ranks (the first without `accumulate`, the last with the
/// bias) gives the same bits as one [`lmf_fuse`] over all ranks of the arrays `a[m] + offsets[m]`:
/// the sum is the same chain in rank order, parked in `out` between groups.
///
/// ```
/// // One sample, one modality, ranks {0} then {1}, one output.
/// let mut y = [0.0f64];
/// let off = [1.0f64];
/// mmfuse_kernels::lmf_fuse_partial_on(
///     mmfuse_kernels::arch(), &[&[2.0][..]], Some(&[&off[..]]), 1, 1, Some(&[1.0]), None,
///     false, &mut y,
/// );
/// mmfuse_kernels::lmf_fuse_partial_on(
///     mmfuse_kernels::arch(), &[&[4.0][..]], None, 1, 1, Some(&[-1.0]), Some(&[0.5]),
///     true, &mut y,
/// );
/// assert_eq!(y[0], (2.0 + 1.0) - 4.0 + 0.5);
/// ```
///
/// # Panics
/// As [`lmf_fuse`], or if `offsets` does not hold one `rank x out_dim` row per modality.
#[allow(clippy::too_many_arguments)]
pub fn lmf_fuse_partial_on<T: Float>(
    arch: Arch,
    a: &[&[T]],
    offsets: Option<&[&[T]]>,
    rank: usize,
    out_dim: usize,
    weights: Option<&[T]>,
    bias: Option<&[T]>,
    accumulate: bool,
    out: &mut [T],
) {
    arch.dispatch(LmfFuseOp {
        a,
        offsets,
        rank,
        h: out_dim,
        weights,
        bias,
        accumulate,
        out,
    })
}

/// [`lmf_fuse_partial_on`] on the instruction set of [`arch`].
#[allow(clippy::too_many_arguments)]
pub fn lmf_fuse_partial<T: Float>(
    a: &[&[T]],
    offsets: Option<&[&[T]]>,
    rank: usize,
    out_dim: usize,
    weights: Option<&[T]>,
    bias: Option<&[T]>,
    accumulate: bool,
    out: &mut [T],
) {
    lmf_fuse_partial_on(
        arch(),
        a,
        offsets,
        rank,
        out_dim,
        weights,
        bias,
        accumulate,
        out,
    )
}

/// The projections of a few samples (`rows = out.len() / width`) onto `width` columns of a
/// row-major factor: `out[n][j] = sum_k x[n][k] w[k * ldw + j]` (`x`: `rows x d` row-major, `w`:
/// `d` rows `ldw` apart), each sum in `k` order with FMAs from zero. For the smallest batches,
/// where a GEMM library's set-up and reductions cost several times the arithmetic.
///
/// ```
/// let x = [1.0f32, 2.0];
/// let w = [1.0f32, 10.0, 0.0, 3.0, 30.0, 0.0]; // 2 rows of 3, 2 columns used
/// let mut out = [0.0f32; 2];
/// mmfuse_kernels::lmf_project_rows_on(mmfuse_kernels::arch(), &x, 2, &w, 3, 2, &mut out);
/// assert_eq!(out, [7.0, 70.0]);
/// ```
///
/// # Panics
/// If `d` or `width` is 0, `width` does not divide `out.len()`, `x` is not `rows x d`, or `w` is
/// too short.
pub fn lmf_project_rows_on<T: Float>(
    arch: Arch,
    x: &[T],
    d: usize,
    w: &[T],
    ldw: usize,
    width: usize,
    out: &mut [T],
) {
    arch.dispatch(LmfProjectOp {
        x,
        d,
        w,
        ldw,
        width,
        out,
    })
}

/// [`lmf_project_rows_on`] on the instruction set of [`arch`].
pub fn lmf_project_rows<T: Float>(
    x: &[T],
    d: usize,
    w: &[T],
    ldw: usize,
    width: usize,
    out: &mut [T],
) {
    lmf_project_rows_on(arch(), x, d, w, ldw, width, out)
}

/// The Hadamard product over modalities of [`lmf_fuse_partial_on`]'s projections, in place in
/// the first modality's buffer: for rows of `width` values,
/// `a0[n][j] = (a0[n][j] + offsets[0][j]) * prod_{m >= 1} (others[m - 1][n][j] + offsets[m][j])`
/// (without offsets, the plain product). Same operations in the same order as the product
/// inside [`lmf_fuse_partial_on`], so fusing the result as a single modality (no offsets) gives
/// the same bits as fusing the modalities: the engine runs this while a tile's GEMM outputs are
/// still in cache, and the rank sum later over one buffer instead of M.
///
/// ```
/// let mut a0 = [2.0f32, 3.0];
/// let a1 = [5.0f32, 7.0];
/// let off = ([1.0f32, 0.0], [0.0f32, 1.0]);
/// mmfuse_kernels::lmf_hadamard_on(
///     mmfuse_kernels::arch(), &mut a0, &[&a1[..]], Some(&[&off.0[..], &off.1[..]]), 2,
/// );
/// assert_eq!(a0, [3.0 * 5.0, 3.0 * 8.0]);
/// ```
///
/// # Panics
/// If `width` is 0 or does not divide the buffer length, a buffer's length differs from `a0`'s,
/// or `offsets` does not hold one row of `width` values per modality.
pub fn lmf_hadamard_on<T: Float>(
    arch: Arch,
    a0: &mut [T],
    others: &[&[T]],
    offsets: Option<&[&[T]]>,
    width: usize,
) {
    arch.dispatch(LmfHadamardOp {
        a0,
        others,
        offsets,
        width,
    })
}

/// [`lmf_hadamard_on`] on the instruction set of [`arch`].
pub fn lmf_hadamard<T: Float>(
    a0: &mut [T],
    others: &[&[T]],
    offsets: Option<&[&[T]]>,
    width: usize,
) {
    lmf_hadamard_on(arch(), a0, others, offsets, width)
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
    lmf_fuse_backward_on(arch(), a, rank, out_dim, weights, grad, gp, scratch)
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
        offsets: None,
        rank,
        h: out_dim,
        weights,
        grad,
        gp,
        dsum: None,
        scratch,
    })
}

/// [`lmf_fuse_backward`] for projections given without their constant term, `A_m = a[m] +
/// offsets[m]` (as [`lmf_fuse_partial_on`]); `a[m]` is overwritten with `dA_m` all the same.
/// When `dsum` is given, the column sums of `dA_m` over the rows are added into `dsum[m]`
/// (`rank x out_dim`, row by row in order: the gradient of the factor's constant row).
/// Same bits as [`lmf_fuse_backward`] on the arrays `a[m] + offsets[m]`, followed by the
/// row-by-row sums.
///
/// # Panics
/// As [`lmf_fuse_backward`], or if `offsets` or `dsum` does not hold one `rank x out_dim` row
/// per modality.
#[allow(clippy::too_many_arguments)]
pub fn lmf_fuse_backward_partial_on<T: Float>(
    arch: Arch,
    a: &mut [&mut [T]],
    offsets: Option<&[&[T]]>,
    rank: usize,
    out_dim: usize,
    weights: &[T],
    grad: &[T],
    gp: &mut [T],
    dsum: Option<&mut [&mut [T]]>,
    scratch: &mut [T],
) {
    arch.dispatch(LmfBackwardOp {
        a,
        offsets,
        rank,
        h: out_dim,
        weights,
        grad,
        gp,
        dsum,
        scratch,
    })
}

/// [`lmf_fuse_backward_partial_on`] on the instruction set of [`arch`].
#[allow(clippy::too_many_arguments)]
pub fn lmf_fuse_backward_partial<T: Float>(
    a: &mut [&mut [T]],
    offsets: Option<&[&[T]]>,
    rank: usize,
    out_dim: usize,
    weights: &[T],
    grad: &[T],
    gp: &mut [T],
    dsum: Option<&mut [&mut [T]]>,
    scratch: &mut [T],
) {
    lmf_fuse_backward_partial_on(
        arch(),
        a,
        offsets,
        rank,
        out_dim,
        weights,
        grad,
        gp,
        dsum,
        scratch,
    )
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

/// The instruction set the engine runs its kernels on: the best this CPU supports
/// ([`Arch::new`]), unless the environment variable `MMFUSE_ISA` asks for a lower one.
///
/// `MMFUSE_ISA` (case-insensitive, surrounding spaces ignored) is read once, on the first call:
/// - `scalar`: pulp's portable scalar path;
/// - `v3`: AVX2 + FMA (x86-64-v3);
/// - `v4`: AVX-512 (x86-64-v4).
///
/// A request above what this CPU supports gets the best it does support (`v4` on an AVX2-only
/// CPU runs `v3`; `v3` or `v4` on a CPU without AVX2, or on another architecture, runs
/// `scalar`). An unset, empty or unknown value gets the best available, silently (this crate
/// never prints; compare [`isa_name`]`(arch())` with the request to detect it). The convenience
/// functions of this crate (the ones without an `arch` argument) and the mmfuse engine use this;
/// the `*_on` functions run on the instruction set they are given.
pub fn arch() -> Arch {
    static ARCH: OnceLock<Arch> = OnceLock::new();
    *ARCH.get_or_init(|| arch_for(std::env::var("MMFUSE_ISA").ok().as_deref()))
}

/// The instruction set [`arch`] picks for a value of `MMFUSE_ISA`.
fn arch_for(request: Option<&str>) -> Arch {
    let best = Arch::new();
    let request = request.map(|r| r.trim().to_ascii_lowercase());
    match request.as_deref() {
        Some("scalar") => Arch::Scalar,
        #[cfg(any(target_arch = "x86", target_arch = "x86_64"))]
        Some("v3") => match best {
            Arch::V4(simd) => Arch::V3(*simd),
            other => other,
        },
        // "v4" is the best there is; anything else is ignored.
        _ => best,
    }
}

/// The short name of an instruction set: `"v4"` (AVX-512, x86-64-v4), `"v3"` (AVX2 + FMA,
/// x86-64-v3) or `"scalar"` (pulp's portable fallback, also the only one off x86-64).
pub fn isa_name(arch: Arch) -> &'static str {
    match arch {
        #[cfg(any(target_arch = "x86", target_arch = "x86_64"))]
        Arch::V4(_) => "v4",
        #[cfg(any(target_arch = "x86", target_arch = "x86_64"))]
        Arch::V3(_) => "v3",
        _ => "scalar",
    }
}
