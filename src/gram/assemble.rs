//! Tiled Gram-matrix assembly (docs/design.md section 2).
//!
//! K is cut into `tile x tile` blocks. For inner-product kernels each block is one faer GEMM
//! written straight into its place in K, followed at once, while the block is in cache, by the
//! SIMD epilogue. For K(X, X) only blocks on and above the diagonal are computed; each
//! off-diagonal block is then transposed into its mirror position by the same task, while still
//! hot, and diagonal blocks copy their upper half onto their lower half, so K is exactly
//! symmetric. The laplacian kernel uses the register-blocked L1 micro-kernel instead of GEMM.
//!
//! rbf is computed from `|x|^2 + |y|^2 - 2 <x, y>`, which cancels when the points are far from
//! the origin relative to their distances. The GEMM therefore reads the data minus a shift per
//! column common to both sides (the column points' mean, coarsely rounded: [`super::centre`]),
//! and entries whose computed squared distance is still below [`TAU`] times
//! `|x'|^2 + |y'|^2` are recomputed from the data in f64 (`sq_dist`) and exp in f64. Every
//! other entry has then lost at most 3 bits to cancellation: with `a = gamma |x - y|^2` the
//! entry's exponent and `u` the unit roundoff, its error relative to the exact K of the given
//! inputs is at most about `8 (d + 4) u a + 2 ulp`, whatever the offset of the data (a worst
//! case; typical errors are a few `sqrt(d) u a`). tests/gram_prop.rs derives the exact bound,
//! `K expm1(E) + 2 ulp(K)` with E the error of the exponent, and checks it on data offset by up
//! to 1e4 times its spread. Refined entries cost O(d) scalar f64 work each: nothing on data
//! whose points are spread around their mean, more on tight clusters far from the mean.
//! Which entries are refined depends only on the tile's own GEMM output, so the result stays
//! bitwise the same for any number of threads.
//!
//! Blocks are spread over rayon tasks. Every entry of K is computed by exactly one task, always
//! with the same sequential code on the same block boundaries, so the result is bitwise the same
//! for any number of threads.

use super::input::{rows_of, Rows};
use super::spec::Kernel;
use crate::error::{Error, Result};
use crate::matrix::Matrix;
use crate::scalar::Real;
use faer::linalg::matmul::matmul;
use faer::{Accum, MatMut, MatRef, Par};
use mmfuse_kernels::{self as kernels, Epilogue, TileMut};
use rayon::prelude::*;
use std::borrow::Cow;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

/// Tuning and threading of an assembly.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GramOptions {
    /// Block size (rows and columns of one task's tile). Default 256.
    pub tile: usize,
    /// Worker threads: `None` uses rayon's global pool (all cores), `Some(t)` a pool of `t`.
    pub threads: Option<usize>,
}

impl Default for GramOptions {
    fn default() -> Self {
        GramOptions {
            tile: 256,
            threads: None,
        }
    }
}

impl GramOptions {
    /// Options with `threads` worker threads.
    pub fn with_threads(threads: usize) -> Self {
        GramOptions {
            threads: Some(threads),
            ..Default::default()
        }
    }

    /// Checks the options: a tile of at least 1 and, if given, at least 1 thread.
    pub fn validate(&self) -> Result<()> {
        if self.tile == 0 {
            return Err(Error::param("tile", "must be >= 1"));
        }
        if self.threads == Some(0) {
            return Err(Error::param("threads", "must be >= 1"));
        }
        Ok(())
    }

    /// Runs `f` on the requested number of threads: the process-wide pool of that size
    /// ([`crate::threads`], built once and reused), or the current pool for `None`.
    pub fn install<R: Send>(&self, f: impl FnOnce() -> R + Send) -> Result<R> {
        crate::threads::install(self.threads, f)
    }
}

/// K(X, X) for the rows of `x` (n x d, any strides). Exactly symmetric; rbf and laplacian have
/// an exact unit diagonal.
///
/// rbf works on a centred copy of X (n x d more memory, checked against the memory cap) and
/// refines entries whose distance cancels, so its accuracy does not depend on how far the data
/// lie from the origin (see the module documentation).
///
/// ```
/// use mmfuse::gram::{gram, GramOptions, Kernel};
/// use mmfuse::Matrix;
///
/// let x = Matrix::from_vec(3, 2, vec![0.0f64, 0.0, 1.0, 0.0, 0.0, 2.0])?;
/// let k = gram(x.as_mat_ref(), &Kernel::rbf(0.5), &GramOptions::default())?;
/// assert_eq!(k.get(0, 0), 1.0);
/// assert!((k.get(0, 1) - (-0.5f64).exp()).abs() < 1e-15);
/// assert_eq!(k.get(1, 2), k.get(2, 1));
/// # Ok::<(), mmfuse::Error>(())
/// ```
pub fn gram<T: Real>(x: MatRef<'_, T>, kernel: &Kernel, opts: &GramOptions) -> Result<Matrix<T>> {
    let n = x.nrows();
    opts.validate()?;
    // Everything, the O(n d) passes over the input included, on the requested threads.
    opts.install(|| {
        // The input is checked before the n x n output is allocated (a bad input costs
        // nothing).
        let rows = rows_of(x, "X")?;
        let kernel = kernel.resolve(rows.d)?;
        let mut k = Matrix::try_zeros_for_output(n, n, "the Gram matrix K(X, X)")?;
        gram_rows_into(&rows, &kernel, opts, k.as_mut_slice())?;
        Ok(k)
    })?
}

/// [`gram`] into a caller's buffer: `out` (length n * n, row-major) receives K(X, X), every
/// element overwritten (its previous contents do not matter). For repeated assemblies of the
/// same size, reusing `out` saves allocating and first touching n * n fresh elements on every
/// call (at n = 4096, f32, a 64 MB output: measured a quarter of the whole assembly).
///
/// On an error (bad input, kernel or options, a wrong `out` length) `out` is left untouched.
///
/// ```
/// use mmfuse::gram::{gram, gram_into, GramOptions, Kernel};
/// use mmfuse::Matrix;
///
/// let x = Matrix::from_vec(3, 2, vec![0.0f64, 0.0, 1.0, 0.0, 0.0, 2.0])?;
/// let mut out = vec![f64::NAN; 9];
/// gram_into(x.as_mat_ref(), &Kernel::rbf(0.5), &GramOptions::default(), &mut out)?;
/// let k = gram(x.as_mat_ref(), &Kernel::rbf(0.5), &GramOptions::default())?;
/// assert_eq!(&out[..], k.as_slice());
/// assert!(gram_into(x.as_mat_ref(), &Kernel::Linear, &GramOptions::default(), &mut out[..8]).is_err());
/// # Ok::<(), mmfuse::Error>(())
/// ```
pub fn gram_into<T: Real>(
    x: MatRef<'_, T>,
    kernel: &Kernel,
    opts: &GramOptions,
    out: &mut [T],
) -> Result<()> {
    check_gram_out(x.nrows(), out.len())?;
    opts.validate()?;
    opts.install(|| {
        let rows = rows_of(x, "X")?;
        let kernel = kernel.resolve(rows.d)?;
        gram_rows_into(&rows, &kernel, opts, out)
    })?
}

/// Checks that an output of `len` elements holds K(X, X) for `n` points.
pub(crate) fn check_gram_out(n: usize, len: usize) -> Result<()> {
    if n.checked_mul(n) != Some(len) {
        return Err(Error::Shape(format!(
            "the output of K(X, X) for {n} points needs {n} x {n} elements, got {len}"
        )));
    }
    Ok(())
}

/// K(X, X) of checked rows and a resolved kernel into `out` (n * n), on the current pool (the
/// caller's `opts.install`).
fn gram_rows_into<T: Real>(
    rows: &Rows<'_, T>,
    kernel: &Kernel,
    opts: &GramOptions,
    out: &mut [T],
) -> Result<()> {
    let xc = centre_for(kernel, rows, rows, "X")?;
    let x = Operand::new(rows, xc.as_deref());
    assemble_symmetric(x, kernel, opts.tile, out);
    Ok(())
}

/// K(X, Y): n x m, entry (i, j) = k(x_i, y_j). `gamma: None` resolves to 1/d.
///
/// rbf centres both X and Y by the column means of Y (the training points of
/// `K(X_test, X_train)`), in copies checked against the memory cap, as [`gram`] does.
///
/// ```
/// use mmfuse::gram::{cross_gram, GramOptions, Kernel};
/// use mmfuse::Matrix;
///
/// let x = Matrix::from_vec(2, 2, vec![1.0f32, 0.0, 0.0, 1.0])?;
/// let y = Matrix::from_vec(1, 2, vec![1.0f32, 1.0])?;
/// let k = cross_gram(x.as_mat_ref(), y.as_mat_ref(), &Kernel::Linear, &GramOptions::default())?;
/// assert_eq!(k.shape(), (2, 1));
/// assert_eq!(k.as_slice(), &[1.0, 1.0]);
/// # Ok::<(), mmfuse::Error>(())
/// ```
pub fn cross_gram<T: Real>(
    x: MatRef<'_, T>,
    y: MatRef<'_, T>,
    kernel: &Kernel,
    opts: &GramOptions,
) -> Result<Matrix<T>> {
    opts.validate()?;
    opts.install(|| {
        let xr = rows_of(x, "X")?;
        let yr = rows_of(y, "Y")?;
        if xr.d != yr.d {
            return Err(Error::Shape(format!(
                "X has {} features but Y has {}",
                xr.d, yr.d
            )));
        }
        let kernel = kernel.resolve(xr.d)?;
        let mut k = Matrix::try_zeros_for_output(xr.n, yr.n, "the cross Gram matrix K(X, Y)")?;
        // Both sides shifted by the column means of Y (see `super::centre`).
        let yc = centre_for(&kernel, &yr, &yr, "Y")?;
        let xc = centre_for(&kernel, &xr, &yr, "X")?;
        let (x, y) = (
            Operand::new(&xr, xc.as_deref()),
            Operand::new(&yr, yc.as_deref()),
        );
        assemble_cross(x, y, &kernel, opts.tile, k.as_mut_slice());
        Ok(k)
    })?
}

/// One side of a Gram matrix as the tiles read it: the rows of the data and, for rbf, the same
/// rows minus the shift common to both sides (the GEMM's input, see [`super::centre`]).
#[derive(Clone, Copy)]
pub(crate) struct Operand<'a, T> {
    /// Row-major `n x d`, as given.
    pub data: &'a [T],
    /// `data - shift`, rounded to T (rbf only).
    pub centred: Option<&'a [T]>,
    pub n: usize,
    pub d: usize,
}

impl<'a, T: Real> Operand<'a, T> {
    pub fn new(rows: &'a Rows<'_, T>, centred: Option<&'a [T]>) -> Self {
        Operand {
            data: &rows.data,
            centred,
            n: rows.n,
            d: rows.d,
        }
    }

    /// What the GEMM (and the norms of the epilogue) read.
    fn gemm(&self) -> &'a [T] {
        self.centred.unwrap_or(self.data)
    }
}

/// For rbf, `rows` minus the shift of `cols` (the column points; see [`super::centre`]), in a
/// new buffer checked against the memory cap; `None` for the other kernels.
pub(crate) fn centre_for<T: Real>(
    kernel: &Kernel,
    rows: &Rows<'_, T>,
    cols: &Rows<'_, T>,
    what: &str,
) -> Result<Option<Vec<T>>> {
    if !matches!(kernel, Kernel::Rbf { .. }) {
        return Ok(None);
    }
    let shift = super::centre::shift_of(&cols.data, cols.n, cols.d);
    let what = format!("the centred copy of {what} (rbf)");
    super::centre::centred(rows, &shift, &what).map(Some)
}

/// Refinement threshold: an rbf entry whose computed squared distance `t^` is below
/// `TAU fl(|x'|^2 + |y'|^2)` (centred points) is recomputed from the data. The GEMM's error on
/// `t` is at most `gamma_(d+2) (|x'|^2 + |y'|^2 + 2 sum_k |x'_k y'_k|)
/// <= 2 gamma_(d+2) (|x'|^2 + |y'|^2)`, so the entries kept have `|t^ - t| <~ (2 / TAU)
/// gamma_(d+2) t`: at most 3 bits lost to cancellation beyond the GEMM's own `gamma_(d+2)`.
pub(crate) const TAU: f64 = 0.25;

/// The per-kernel work shared by all tiles: epilogue and per-point auxiliary values.
pub(crate) struct Plan<'a, T: Clone> {
    pub epilogue: Epilogue<T>,
    /// Squared norms (rbf, of the centred points) or reciprocal norms (cosine) of the row
    /// points; empty otherwise. Borrowed when a prepared side ([`super::side`]) has them.
    pub row_aux: Cow<'a, [T]>,
    /// Same for the column points.
    pub col_aux: Cow<'a, [T]>,
    /// L1 kernel: no GEMM, distances instead.
    pub l1: bool,
    /// rbf: gamma (f64, as given), to refine entries where `t` cancels (see [`TAU`]).
    pub refine_gamma: Option<f64>,
}

/// The epilogue for a resolved kernel.
pub(crate) fn epilogue_of<T: Real>(kernel: &Kernel) -> Epilogue<T> {
    let g = |g: Option<f64>| T::from_f64(g.expect("resolved kernel has gamma"));
    match *kernel {
        Kernel::Linear => Epilogue::Identity,
        Kernel::Polynomial {
            gamma,
            degree,
            coef0,
        } => Epilogue::Poly {
            gamma: g(gamma),
            coef0: T::from_f64(coef0),
            degree,
        },
        Kernel::Sigmoid { gamma, coef0 } => Epilogue::Sigmoid {
            gamma: g(gamma),
            coef0: T::from_f64(coef0),
        },
        Kernel::Rbf { gamma } => Epilogue::Rbf { gamma: g(gamma) },
        Kernel::Laplacian { gamma } => Epilogue::ExpNeg { gamma: g(gamma) },
        Kernel::Cosine => Epilogue::Cosine,
    }
}

/// Auxiliary per-point values the epilogue needs: squared norms (rbf), reciprocal norms
/// (cosine, 0 for a zero row), nothing otherwise. Large data by row chunks in parallel on the
/// current rayon pool (each norm the same however split: [`super::par`]).
pub(crate) fn aux_of<T: Real>(kernel: &Kernel, data: &[T], n: usize, d: usize) -> Vec<T> {
    match kernel {
        Kernel::Rbf { .. } | Kernel::Cosine => {
            let mut norms = vec![T::ZERO; n];
            if super::par::worth_it(n * d) {
                let rows = super::par::chunk_rows(d);
                norms
                    .par_chunks_mut(rows)
                    .zip(data.par_chunks(rows * d))
                    .for_each(|(out, x)| kernels::sq_norms(x, d, out));
            } else {
                kernels::sq_norms(data, d, &mut norms);
            }
            if let Kernel::Cosine = kernel {
                for v in &mut norms {
                    let s = v.to_f64();
                    *v = if s > 0.0 {
                        T::from_f64(1.0 / s.sqrt())
                    } else {
                        T::ZERO
                    };
                }
            }
            norms
        }
        _ => Vec::new(),
    }
}

/// A raw pointer to K shared by the tasks; each task writes only its own blocks.
#[derive(Clone, Copy)]
struct SharedOut<T> {
    ptr: *mut T,
    /// Row stride of K.
    ld: usize,
}
// SAFETY: tasks use the pointer only for disjoint blocks (see `tile_mut`).
unsafe impl<T: Send> Send for SharedOut<T> {}
unsafe impl<T: Send> Sync for SharedOut<T> {}

impl<T> SharedOut<T> {
    /// The block `rows x cols` at (i0, j0).
    ///
    /// # Safety
    /// The block must lie inside K, and no other live view may access any of its elements.
    unsafe fn tile_mut<'a>(
        &self,
        i0: usize,
        j0: usize,
        rows: usize,
        cols: usize,
    ) -> TileMut<'a, T> {
        // SAFETY: in bounds and exclusive by the caller's contract.
        unsafe { TileMut::from_raw_parts(self.ptr.add(i0 * self.ld + j0), rows, cols, self.ld) }
    }

    /// The same block as a faer view, for the GEMM to write into.
    ///
    /// # Safety
    /// As for `tile_mut`.
    unsafe fn mat_mut<'a>(&self, i0: usize, j0: usize, rows: usize, cols: usize) -> MatMut<'a, T> {
        // SAFETY: as above; row stride ld, column stride 1.
        unsafe {
            MatMut::from_raw_parts_mut(
                self.ptr.add(i0 * self.ld + j0),
                rows,
                cols,
                self.ld as isize,
                1,
            )
        }
    }
}

/// Computes block K[i0..i0+rows, j0..j0+cols] = k(x_i, y_j) in place in `out`, at row
/// `at.0`, column `at.1` of `out` (`(i0, j0)` when `out` is K itself, `(0, 0)` for a
/// scratch tile).
///
/// `upper_only`: only the entries above the diagonal of the block matter (a diagonal block of
/// K(X, X), whose lower half and diagonal are overwritten; then `x` is `y`, `i0 == j0` and
/// `rows == cols`); entries elsewhere are not refined, and part of them not even computed
/// ([`inner_products_upper`]), only finite.
///
/// # Safety
/// The block must lie inside the matrix behind `out`, and no other thread may access it during
/// the call.
unsafe fn compute_block<T: Real>(
    plan: &Plan<'_, T>,
    (x, y): (Operand<'_, T>, Operand<'_, T>),
    (i0, rows): (usize, usize),
    (j0, cols): (usize, usize),
    (out, at): (&SharedOut<T>, (usize, usize)),
    upper_only: bool,
) {
    let d = x.d;
    let xs = &x.gemm()[i0 * d..(i0 + rows) * d];
    let ys = &y.gemm()[j0 * d..(j0 + cols) * d];
    let mut refine = Vec::new();
    if plan.l1 {
        let mut panel = vec![T::ZERO; d * kernels::panel_width(cols)];
        kernels::pack_panel(ys, cols, d, &mut panel);
        // SAFETY: exclusive block inside K (caller's contract); the only view alive.
        let mut tile = unsafe { out.tile_mut(at.0, at.1, rows, cols) };
        kernels::l1_distance_tile(xs, d, &panel, &mut tile);
    } else {
        // SAFETY: as above (the block at `at` is exclusively ours, inside `out`).
        unsafe {
            if upper_only {
                debug_assert!(i0 == j0 && rows == cols);
                inner_products_upper(out, at, xs, d, rows);
            } else {
                inner_products(out, at, (xs, rows), (ys, cols), d);
            }
        }
    }
    let (ra, ca) = if plan.epilogue.needs_aux() {
        (&plan.row_aux[i0..i0 + rows], &plan.col_aux[j0..j0 + cols])
    } else {
        (&[][..], &[][..])
    };
    // SAFETY: as above; the GEMM's view is gone.
    let mut tile = unsafe { out.tile_mut(at.0, at.1, rows, cols) };
    if plan.refine_gamma.is_some() {
        cancelled(&tile, ra, ca, upper_only, &mut refine);
    }
    kernels::apply_epilogue(&mut tile, &plan.epilogue, ra, ca);
    if let Some(gamma) = plan.refine_gamma {
        for &(i, j) in &refine {
            let xi = &x.data[(i0 + i) * d..(i0 + i + 1) * d];
            let yj = &y.data[(j0 + j) * d..(j0 + j + 1) * d];
            tile.row_mut(i)[j] = T::from_f64((-gamma * sq_dist(xi, yj)).exp());
        }
    }
}

/// `out[at..][i][j] = <x_i, y_j>` for the `rows x cols` block, by one sequential faer GEMM.
///
/// # Safety
/// As for [`compute_block`]: the block at `at` lies inside `out`, accessed by no one else.
unsafe fn inner_products<T: Real>(
    out: &SharedOut<T>,
    at: (usize, usize),
    (xs, rows): (&[T], usize),
    (ys, cols): (&[T], usize),
    d: usize,
) {
    let lhs = MatRef::from_row_major_slice(xs, rows, d);
    let rhs = MatRef::from_row_major_slice(ys, cols, d).transpose();
    // SAFETY: caller's contract; the view is dropped at the end of the statement.
    matmul(
        unsafe { out.mat_mut(at.0, at.1, rows, cols) },
        Accum::Replace,
        lhs,
        rhs,
        T::ONE,
        Par::Seq,
    );
}

/// Below this many rows a diagonal block's inner products are one square GEMM. Halving a
/// block of `2h` rows skips a quarter of its products (the lower-left `h x h`); below
/// 2 * 64 rows the smaller GEMMs lose what the skipped quarter saves.
const UPPER_SPLIT_MIN: usize = 128;

/// [`inner_products`] of the diagonal block X_b X_b^T (`rows x rows`), where only the entries
/// on and above the diagonal matter (the caller mirrors the strict upper half over the
/// lower): the block is split in halves, the upper-right quarter is one GEMM, the two diagonal
/// quarters recurse, and the lower-left quarter is zeroed instead of computed (it must hold
/// finite values for the epilogue, which runs over the whole block). At a 256-row tile this
/// skips 3/8 of each diagonal block's products; the entries computed are bitwise those of
/// the square GEMM (each is one dot product in faer's fixed order over d).
///
/// # Safety
/// As for [`inner_products`].
unsafe fn inner_products_upper<T: Real>(
    out: &SharedOut<T>,
    at: (usize, usize),
    xs: &[T],
    d: usize,
    rows: usize,
) {
    if rows < UPPER_SPLIT_MIN {
        // SAFETY: caller's contract.
        return unsafe { inner_products(out, at, (xs, rows), (xs, rows), d) };
    }
    // A multiple of 16: halves stay on whole SIMD widths of both types where rows allows.
    let h = (rows / 2).next_multiple_of(16).min(rows);
    let (top, bottom) = xs.split_at(h * d);
    // SAFETY: the four quarters are disjoint parts of the caller's block.
    unsafe {
        inner_products_upper(out, at, top, d, h);
        inner_products(out, (at.0, at.1 + h), (top, h), (bottom, rows - h), d);
        inner_products_upper(out, (at.0 + h, at.1 + h), bottom, d, rows - h);
        let mut lower_left = out.tile_mut(at.0 + h, at.1, rows - h, h);
        for i in 0..rows - h {
            lower_left.row_mut(i).fill(T::ZERO);
        }
    }
}

/// Collects into `out` the entries (i, j) of a tile of centred inner products `g` whose squared
/// distance as the epilogue computes it, `t^ = fl(s - 2 g)` with `s = fl(r_i + c_j)`, is below
/// `TAU s` ([`TAU`]); with `upper_only`, only entries with j > i. One branch-free pass per row
/// (the common case: nothing found), a second one to list a row's entries.
fn cancelled<T: Real>(
    tile: &TileMut<'_, T>,
    ra: &[T],
    ca: &[T],
    upper_only: bool,
    out: &mut Vec<(usize, usize)>,
) {
    let tau = T::from_f64(TAU);
    let arch = kernels::arch();
    for (i, &r) in ra.iter().enumerate() {
        let from = if upper_only { i + 1 } else { 0 };
        let row = &tile.row(i)[from.min(ca.len())..];
        let cs = &ca[from.min(ca.len())..];
        // The branch-free pass (mmfuse-kernels, compiled per instruction set); the common
        // case is that nothing is found.
        if kernels::any_cancelled_on(arch, row, cs, r, tau) {
            for (j, (&g, &c)) in row.iter().zip(cs).enumerate() {
                if is_cancelled(g, r, c, tau) {
                    out.push((i, from + j));
                }
            }
        }
    }
}

/// The refinement test of one entry: `fl(s - 2 g) < tau s` with `s = fl(r + c)` (no fused
/// operations: Rust does not contract, so every instruction set gives the same answer).
#[inline(always)]
fn is_cancelled<T: Real>(g: T, r: T, c: T, tau: T) -> bool {
    let s = r + c;
    s - (g + g) < tau * s
}

/// `|x - y|^2` from the data, in f64: each difference in f64 (exact for f32 inputs unless
/// their exponents are more than 29 apart; rounded once for f64), then squares and sums in f64
/// over 4 interleaved accumulators. Relative error `<= gamma_(d+2)(u64)`.
pub(crate) fn sq_dist<T: Real>(x: &[T], y: &[T]) -> f64 {
    let mut acc = [0.0f64; 4];
    let (cx, cy) = (x.chunks_exact(4), y.chunks_exact(4));
    let (rx, ry) = (cx.remainder(), cy.remainder());
    for (a, b) in cx.zip(cy) {
        for q in 0..4 {
            let t = a[q].to_f64() - b[q].to_f64();
            acc[q] += t * t;
        }
    }
    for (q, (a, b)) in rx.iter().zip(ry).enumerate() {
        let t = a.to_f64() - b.to_f64();
        acc[q] += t * t;
    }
    (acc[0] + acc[1]) + (acc[2] + acc[3])
}

fn plan_for<T: Real>(
    kernel: &Kernel,
    x: Operand<'_, T>,
    y: Option<Operand<'_, T>>,
) -> Plan<'static, T> {
    let row_aux = aux_of(kernel, x.gemm(), x.n, x.d);
    let col_aux = match y {
        Some(y) => aux_of(kernel, y.gemm(), y.n, y.d),
        None => row_aux.clone(),
    };
    plan_with_aux(kernel, Cow::Owned(row_aux), Cow::Owned(col_aux))
}

/// The plan of a resolved kernel with the epilogue's per-point values of both sides given.
pub(crate) fn plan_with_aux<'a, T: Real>(
    kernel: &Kernel,
    row_aux: Cow<'a, [T]>,
    col_aux: Cow<'a, [T]>,
) -> Plan<'a, T> {
    Plan {
        epilogue: epilogue_of(kernel),
        row_aux,
        col_aux,
        l1: matches!(kernel, Kernel::Laplacian { .. }),
        refine_gamma: match *kernel {
            Kernel::Rbf { gamma } => Some(gamma.expect("resolved kernel has gamma")),
            _ => None,
        },
    }
}

/// Fills `out` (n x n) with K(X, X).
pub(crate) fn assemble_symmetric<T: Real>(
    x: Operand<'_, T>,
    kernel: &Kernel,
    tile: usize,
    out: &mut [T],
) {
    assert_eq!(out.len(), x.n * x.n);
    // SAFETY: `out` is n * n elements, exclusively borrowed for the call.
    unsafe { assemble_symmetric_raw(x, kernel, tile, out.as_mut_ptr(), None) }
}

/// Who is told when rows of K(X, X) are final, and asked whether to stop
/// ([`assemble_symmetric_raw`]).
pub(crate) struct RowWatch<'a> {
    /// Called with a row block's index `bi` (rows `bi * tile..`) once no task writes to those
    /// rows again; from a worker thread, each block once, in no particular order.
    pub done: &'a (dyn Fn(usize) + Sync),
    /// Once set, tasks claim no new blocks: the assembly returns early with K incomplete.
    pub stop: &'a AtomicBool,
}

/// [`assemble_symmetric`] into the n x n matrix at `out`, telling `watch` which row blocks are
/// final as they complete.
///
/// Blocks (bi, bj), bi <= bj, are claimed from one counter in row-major order, so row blocks
/// complete roughly in order (row block b needs its own blocks (b, b..) and the mirrors of
/// (..b, b)); which thread computes a block does not change it, so K is bitwise the same for
/// any number of threads and any schedule.
///
/// # Safety
/// `out` must be valid for reads and writes of n * n elements for the call, and nothing else
/// may access them during it except reads of a row block after `watch.done` reported it.
pub(crate) unsafe fn assemble_symmetric_raw<T: Real>(
    x: Operand<'_, T>,
    kernel: &Kernel,
    tile: usize,
    out: *mut T,
    watch: Option<&RowWatch<'_>>,
) {
    let n = x.n;
    let plan = plan_for(kernel, x, None);
    let nt = n.div_ceil(tile);
    let blocks: Vec<(usize, usize)> = (0..nt)
        .flat_map(|bi| (bi..nt).map(move |bj| (bi, bj)))
        .collect();
    let shared = SharedOut { ptr: out, ld: n };
    let arch = kernels::arch();
    let stream = n * n * std::mem::size_of::<T>() >= STREAM_MIRROR_BYTES;
    // Row block b is final after nt blocks: its own (b, b..nt) and the mirrors of (0..b, b).
    let pending: Vec<AtomicUsize> = (0..nt).map(|_| AtomicUsize::new(nt)).collect();
    let finished = |b: usize| {
        // AcqRel: the last task to finish a row block has seen every other task's writes to it
        // (and their streaming stores, fenced by the copy kernels) before it reports.
        if pending[b].fetch_sub(1, Ordering::AcqRel) == 1 {
            if let Some(w) = watch {
                (w.done)(b);
            }
        }
    };
    let next = AtomicUsize::new(0);
    let workers = rayon::current_num_threads().clamp(1, blocks.len().max(1));
    // Each task computes its block into a contiguous scratch tile, not in place: K's rows are
    // n elements apart, and for n a multiple of a large power of two (4096 f32: 16 KB) every
    // row of an in-place tile falls into the same few sets of the L2 cache (by the set
    // arithmetic about 64 KB of a 256 KB tile can stay in a 1 MB L2). Measured (AVX-512,
    // 2 threads, into a reused K): the same at 4096 x 300, 0.41 -> 0.53 of the limit at
    // 8192 x 64 (README, "Gram at the limit"). From the scratch,
    // the block goes to K twice, as itself and transposed into its mirror, both with
    // streaming stores when K is large (see STREAM_MIRROR_BYTES).
    (0..workers).into_par_iter().for_each(|_| {
        let mut scratch = vec![T::ZERO; tile * tile];
        loop {
            if watch.is_some_and(|w| w.stop.load(Ordering::Relaxed)) {
                return;
            }
            let Some(&(bi, bj)) = blocks.get(next.fetch_add(1, Ordering::Relaxed)) else {
                return;
            };
            let (i0, j0) = (bi * tile, bj * tile);
            let (rows, cols) = (tile.min(n - i0), tile.min(n - j0));
            let local = SharedOut {
                ptr: scratch.as_mut_ptr(),
                ld: cols,
            };
            // SAFETY: the scratch holds tile * tile >= rows * cols elements, row stride cols,
            // and belongs to this worker alone.
            unsafe {
                compute_block(
                    &plan,
                    (x, x),
                    (i0, rows),
                    (j0, cols),
                    (&local, (0, 0)),
                    bi == bj,
                )
            };
            if bi == bj {
                // SAFETY: as above, the scratch's rows x rows block.
                unsafe { mirror_diagonal_block(&local, 0, rows, false) };
                // SAFETY: as above; the mirror's views are gone.
                let mut t = unsafe { local.tile_mut(0, 0, rows, rows) };
                fix_diagonal(kernel, &plan, i0, &mut t);
            }
            // SAFETY: as above; no other view of the scratch is alive.
            let block = unsafe { local.tile_mut(0, 0, rows, cols) };
            // SAFETY: block (bi, bj) with bi <= bj, and its mirror (bj, bi), are touched by
            // this worker only: the counter hands out each upper block once, and mirrors of
            // distinct upper blocks are distinct lower blocks. Both lie inside the n x n matrix
            // at `out` (caller's contract), whose row blocks are read by others only once
            // reported final, i.e. after this worker's last write to them.
            let mut upper = unsafe { shared.tile_mut(i0, j0, rows, cols) };
            kernels::copy_tile_on(arch, &block, &mut upper, stream);
            if bi != bj {
                // SAFETY: as above; the mirror does not overlap `upper` (bi != bj).
                let mut lower = unsafe { shared.tile_mut(j0, i0, cols, rows) };
                kernels::transpose_into_on(arch, &block, &mut lower, stream);
                finished(bj);
            }
            finished(bi);
        }
    });
}

/// From this size of K on, both halves are written with non-temporal stores: K is then
/// well beyond the last-level cache, so a plain store would first read each destination line
/// from memory only to overwrite it, and would evict the tiles being computed. Below it, K
/// may stay in cache for the caller, and plain stores are faster.
const STREAM_MIRROR_BYTES: usize = 32 << 20;

/// Copies the strict upper triangle of the `rows x rows` diagonal block at (i0, i0) onto its
/// lower triangle: in bands of `MIRROR_BAND` rows, the part of the band right of its diagonal
/// square is transposed (by the register kernel) below it, and the small squares on the
/// diagonal element by element.
///
/// # Safety
/// The block must lie inside K, and no other live view may access any of its elements.
unsafe fn mirror_diagonal_block<T: Real>(out: &SharedOut<T>, i0: usize, rows: usize, stream: bool) {
    const MIRROR_BAND: usize = 16;
    let arch = kernels::arch();
    let mut r0 = 0;
    while r0 < rows {
        let r1 = (r0 + MIRROR_BAND).min(rows);
        if r1 < rows {
            // SAFETY: rows r0..r1 x columns r1..rows and rows r1..rows x columns r0..r1 of the
            // block are disjoint (one is right of the band's square, the other below it), and
            // inside the block (caller's contract); no other view is alive.
            let (right, mut below) = unsafe {
                (
                    out.tile_mut(i0 + r0, i0 + r1, r1 - r0, rows - r1),
                    out.tile_mut(i0 + r1, i0 + r0, rows - r1, r1 - r0),
                )
            };
            kernels::transpose_into_on(arch, &right, &mut below, stream);
        }
        // SAFETY: the band's diagonal square, inside the block; the views above are gone.
        let mut sq = unsafe { out.tile_mut(i0 + r0, i0 + r0, r1 - r0, r1 - r0) };
        for i in 1..r1 - r0 {
            for j in 0..i {
                let v = sq.row(j)[i];
                sq.row_mut(i)[j] = v;
            }
        }
        r0 = r1;
    }
}

/// Sets the diagonal of a diagonal block to its exact value where it is known exactly: 1 for
/// rbf and laplacian (k(x, x) = 1), 1 for cosine where the norm is non-zero.
fn fix_diagonal<T: Real>(kernel: &Kernel, plan: &Plan<'_, T>, i0: usize, t: &mut TileMut<'_, T>) {
    for i in 0..t.nrows() {
        match kernel {
            Kernel::Rbf { .. } | Kernel::Laplacian { .. } => t.row_mut(i)[i] = T::ONE,
            Kernel::Cosine if plan.row_aux[i0 + i] != T::ZERO => t.row_mut(i)[i] = T::ONE,
            _ => {}
        }
    }
}

/// Fills `out` (n x m) with K(X, Y).
pub(crate) fn assemble_cross<T: Real>(
    x: Operand<'_, T>,
    y: Operand<'_, T>,
    kernel: &Kernel,
    tile: usize,
    out: &mut [T],
) {
    let (n, m) = (x.n, y.n);
    assert_eq!(out.len(), n * m);
    let plan = plan_for(kernel, x, Some(y));
    let (nti, ntj) = (n.div_ceil(tile), m.div_ceil(tile));
    let shared = SharedOut {
        ptr: out.as_mut_ptr(),
        ld: m,
    };
    (0..nti * ntj).into_par_iter().for_each(|b| {
        let (bi, bj) = (b / ntj, b % ntj);
        let (i0, j0) = (bi * tile, bj * tile);
        let (rows, cols) = (tile.min(n - i0), tile.min(m - j0));
        // SAFETY: each block index b is handled by one task; blocks are disjoint and inside out.
        unsafe {
            compute_block(
                &plan,
                (x, y),
                (i0, rows),
                (j0, cols),
                (&shared, (i0, j0)),
                false,
            )
        };
    });
}

/// Fills `out` (x.n x y.n, row-major) with K(X, Y) for a prepared plan, in blocks of
/// `row_tile x col_tile` spread over rayon tasks (the tile code of [`assemble_cross`]; rows on
/// demand use one row tile and wide column tiles).
pub(crate) fn assemble_cross_planned<T: Real>(
    plan: &Plan<'_, T>,
    (x, y): (Operand<'_, T>, Operand<'_, T>),
    (row_tile, col_tile): (usize, usize),
    out: &mut [T],
) {
    let (n, m) = (x.n, y.n);
    assert_eq!(out.len(), n * m);
    assert!(row_tile >= 1 && col_tile >= 1);
    assert!(plan.row_aux.len() >= n || !plan.epilogue.needs_aux());
    assert!(plan.col_aux.len() >= m || !plan.epilogue.needs_aux());
    let (nti, ntj) = (n.div_ceil(row_tile), m.div_ceil(col_tile));
    let shared = SharedOut {
        ptr: out.as_mut_ptr(),
        ld: m,
    };
    let one = |b: usize| {
        let (bi, bj) = (b / ntj, b % ntj);
        let (i0, j0) = (bi * row_tile, bj * col_tile);
        let (rows, cols) = (row_tile.min(n - i0), col_tile.min(m - j0));
        // SAFETY: each block index b is handled by one call; blocks are disjoint and inside
        // `out` (n x m, alive for the whole function).
        unsafe {
            compute_block(
                plan,
                (x, y),
                (i0, rows),
                (j0, cols),
                (&shared, (i0, j0)),
                false,
            )
        };
    };
    if nti * ntj == 1 {
        one(0);
    } else {
        (0..nti * ntj).into_par_iter().for_each(one);
    }
}
