//! Scalar reference twins of every SIMD kernel: plain loops, standard-library `exp` / `tanh`,
//! no blocking. Tests, benches and fuzz targets compare the fast kernels against these.

use crate::distance::panel_width;
use crate::epilogue::Epilogue;
use crate::simd::Float;
use crate::tile::TileMut;

/// exp, element by element, with the standard library.
pub fn exp<T: Float>(x: &mut [T]) {
    for v in x {
        *v = T::from_f64(v.to_f64().exp());
    }
}

/// tanh, element by element, with the standard library.
pub fn tanh<T: Float>(x: &mut [T]) {
    for v in x {
        *v = T::from_f64(v.to_f64().tanh());
    }
}

/// Squared row norms, summed left to right.
pub fn sq_norms<T: Float>(x: &[T], d: usize, out: &mut [T]) {
    assert_eq!(x.len(), out.len() * d);
    for (i, o) in out.iter_mut().enumerate() {
        let mut acc = T::ZERO;
        for k in 0..d {
            let v = x[i * d + k];
            acc += v * v;
        }
        *o = acc;
    }
}

/// The epilogue, element by element, in the element type (`powi` by repeated multiplication,
/// exp and tanh from the standard library).
// Rows of a strided tile are handed out one index at a time (no row iterator).
#[allow(clippy::needless_range_loop)]
pub fn apply_epilogue<T: Float>(
    tile: &mut TileMut<'_, T>,
    ep: &Epilogue<T>,
    row_aux: &[T],
    col_aux: &[T],
) {
    for i in 0..tile.nrows() {
        let row = tile.row_mut(i);
        for (j, v) in row.iter_mut().enumerate() {
            let g = *v;
            *v = match *ep {
                Epilogue::Identity => g,
                Epilogue::Poly {
                    gamma,
                    coef0,
                    degree,
                } => {
                    let b = gamma * g + coef0;
                    let mut p = b;
                    for _ in 1..degree {
                        p = p * b;
                    }
                    p
                }
                Epilogue::Sigmoid { gamma, coef0 } => {
                    T::from_f64((gamma * g + coef0).to_f64().tanh())
                }
                Epilogue::Rbf { gamma } => {
                    let mut d2 = row_aux[i] + col_aux[j] - T::from_f64(2.0) * g;
                    if d2 < T::ZERO {
                        d2 = T::ZERO;
                    }
                    T::from_f64((-(gamma * d2)).to_f64().exp())
                }
                Epilogue::Cosine => g * row_aux[i] * col_aux[j],
                Epilogue::ExpNeg { gamma } => T::from_f64((-(gamma * g)).to_f64().exp()),
            };
        }
    }
}

/// L1 distances between rows of `x` and the columns of a packed panel, by a plain triple loop.
pub fn l1_tile<T: Float>(x: &[T], d: usize, panel: &[T], out: &mut TileMut<'_, T>) {
    let w = panel_width(out.ncols());
    for i in 0..out.nrows() {
        let row = out.row_mut(i);
        for (j, o) in row.iter_mut().enumerate() {
            let mut acc = T::ZERO;
            for k in 0..d {
                acc += (x[i * d + k] - panel[k * w + j]).abs();
            }
            *o = acc;
        }
    }
}

/// [`crate::lmf_fuse_partial_on`] by plain loops: the projections `a[m] + offsets[m]`, the rank sum
/// continued from `out` when `accumulate`, the bias added when given.
#[allow(clippy::too_many_arguments)]
pub fn lmf_fuse_partial<T: Float>(
    a: &[&[T]],
    offsets: Option<&[&[T]]>,
    rank: usize,
    h: usize,
    weights: Option<&[T]>,
    bias: Option<&[T]>,
    accumulate: bool,
    out: &mut [T],
) {
    assert!(!a.is_empty() && rank > 0 && h > 0 && out.len() % h == 0);
    let rows = out.len() / h;
    for am in a {
        assert_eq!(am.len(), rows * rank * h);
    }
    let value = |m: usize, n: usize, j: usize| match offsets {
        Some(off) => a[m][n * rank * h + j] + off[m][j],
        None => a[m][n * rank * h + j],
    };
    for n in 0..rows {
        for k in 0..h {
            let mut acc = if accumulate { out[n * h + k] } else { T::ZERO };
            for i in 0..rank {
                let j = i * h + k;
                let mut p = value(0, n, j);
                for m in 1..a.len() {
                    p = p * value(m, n, j);
                }
                acc += match weights {
                    Some(w) => w[i] * p,
                    None => p,
                };
            }
            out[n * h + k] = match bias {
                Some(b) => acc + b[k],
                None => acc,
            };
        }
    }
}

/// [`crate::lmf_fuse_backward_partial_on`] by plain loops: [`lmf_fuse_backward`] on the
/// projections `a[m] + offsets[m]`, then the column sums of `dA_m` added into `dsum[m]` row by
/// row.
#[allow(clippy::too_many_arguments)]
pub fn lmf_fuse_backward_partial<T: Float>(
    a: &mut [&mut [T]],
    offsets: Option<&[&[T]]>,
    rank: usize,
    h: usize,
    weights: &[T],
    grad: &[T],
    gp: &mut [T],
    dsum: Option<&mut [&mut [T]]>,
) {
    let rh = rank * h;
    if let Some(off) = offsets {
        for (am, o) in a.iter_mut().zip(off) {
            for row in am.chunks_exact_mut(rh) {
                for (v, &c) in row.iter_mut().zip(o.iter()) {
                    *v += c;
                }
            }
        }
    }
    lmf_fuse_backward(a, rank, h, weights, grad, gp);
    if let Some(ds) = dsum {
        for (am, d) in a.iter().zip(ds.iter_mut()) {
            for row in am.chunks_exact(rh) {
                for (acc, &v) in d.iter_mut().zip(row) {
                    *acc += v;
                }
            }
        }
    }
}

/// [`crate::lmf_project_rows_on`] by plain loops (`acc + x w`, two roundings per term).
pub fn lmf_project_rows<T: Float>(
    x: &[T],
    d: usize,
    w: &[T],
    ldw: usize,
    width: usize,
    out: &mut [T],
) {
    assert!(width > 0 && d > 0 && out.len() % width == 0);
    for (n, row) in out.chunks_exact_mut(width).enumerate() {
        for (j, o) in row.iter_mut().enumerate() {
            let mut acc = T::ZERO;
            for k in 0..d {
                acc += x[n * d + k] * w[k * ldw + j];
            }
            *o = acc;
        }
    }
}

/// [`crate::lmf_hadamard_on`] by plain loops.
pub fn lmf_hadamard<T: Float>(
    a0: &mut [T],
    others: &[&[T]],
    offsets: Option<&[&[T]]>,
    width: usize,
) {
    assert!(width > 0 && a0.len() % width == 0);
    for (i, v) in a0.iter_mut().enumerate() {
        let j = i % width;
        let mut p = match offsets {
            Some(off) => *v + off[0][j],
            None => *v,
        };
        for (m, am) in others.iter().enumerate() {
            p = p * match offsets {
                Some(off) => am[i] + off[m + 1][j],
                None => am[i],
            };
        }
        *v = p;
    }
}

/// LMF forward ([`crate::lmf_fuse`]) by plain loops: per sample, per output, the product over
/// modalities then the rank sum in rank order (`acc + w_i p`, two roundings), the bias last.
pub fn lmf_fuse<T: Float>(
    a: &[&[T]],
    rank: usize,
    h: usize,
    weights: Option<&[T]>,
    bias: &[T],
    out: &mut [T],
) {
    assert!(!a.is_empty() && rank > 0 && h > 0 && out.len() % h == 0);
    let rows = out.len() / h;
    for am in a {
        assert_eq!(am.len(), rows * rank * h);
    }
    for n in 0..rows {
        for k in 0..h {
            let mut acc = T::ZERO;
            for i in 0..rank {
                let idx = (n * rank + i) * h + k;
                let mut p = a[0][idx];
                for am in &a[1..] {
                    p = p * am[idx];
                }
                acc += match weights {
                    Some(w) => w[i] * p,
                    None => p,
                };
            }
            out[n * h + k] = acc + bias[k];
        }
    }
}

/// LMF backward ([`crate::lmf_fuse_backward`]) by plain loops, with the same prefix / suffix
/// products (no division).
pub fn lmf_fuse_backward<T: Float>(
    a: &mut [&mut [T]],
    rank: usize,
    h: usize,
    weights: &[T],
    grad: &[T],
    gp: &mut [T],
) {
    assert!(!a.is_empty() && rank > 0 && h > 0 && grad.len() % h == 0);
    let rows = grad.len() / h;
    let nm = a.len();
    let mut pre = vec![T::ZERO; nm];
    for n in 0..rows {
        for i in 0..rank {
            for k in 0..h {
                let idx = (n * rank + i) * h + k;
                let g = grad[n * h + k];
                let mut p = T::ONE;
                for m in 0..nm {
                    pre[m] = p;
                    p = p * a[m][idx];
                }
                gp[i * h + k] += g * p;
                let mut suf = g * weights[i];
                for m in (0..nm).rev() {
                    let am = a[m][idx];
                    a[m][idx] = pre[m] * suf;
                    suf = suf * am;
                }
            }
        }
    }
}

/// Twin of [`crate::smo_violators_on`]: `v_t = y_t - scale * out_t`; the first index of the
/// maximum of `v + up_pen`, that maximum, and the minimum of `v + low_pen`.
pub fn smo_violators(
    out: &[f64],
    y: &[f64],
    scale: f64,
    up_pen: &[f64],
    low_pen: &[f64],
) -> crate::Violators {
    let (mut up_max, mut up_arg, mut low_min) = (f64::NEG_INFINITY, usize::MAX, f64::INFINITY);
    for t in 0..out.len() {
        let v = y[t] - scale * out[t];
        if v + up_pen[t] > up_max {
            up_max = v + up_pen[t];
            up_arg = t;
        }
        low_min = low_min.min(v + low_pen[t]);
    }
    crate::Violators {
        up_max,
        up_arg,
        low_min,
    }
}

/// Twin of [`crate::smo_axpy2_on`].
pub fn smo_axpy2(out: &mut [f64], ki: &[f64], dai: f64, kj: &[f64], daj: f64) {
    for t in 0..out.len() {
        out[t] += ki[t] * dai + kj[t] * daj;
    }
}

/// Twin of [`crate::smo_second_choice_on`]: libsvm's second-order rule, a plain loop.
#[allow(clippy::too_many_arguments)]
pub fn smo_second_choice(
    ki: &[f64],
    kscale: f64,
    diag_i: f64,
    diag: &[f64],
    out: &[f64],
    y: &[f64],
    scale: f64,
    low_pen: &[f64],
    up_max: f64,
) -> crate::SecondChoice {
    let (mut arg, mut objective) = (usize::MAX, f64::INFINITY);
    for t in 0..out.len() {
        if low_pen[t] == f64::INFINITY {
            continue;
        }
        let b = up_max - (y[t] - scale * out[t]);
        if b > 0.0 {
            let curv = (diag_i + diag[t]) - 2.0 * (kscale * ki[t]);
            let curv = if curv > 0.0 { curv } else { crate::SMO_TAU };
            let obj = -(b * b / curv);
            if obj < objective {
                objective = obj;
                arg = t;
            }
        }
    }
    crate::SecondChoice { arg, objective }
}

/// [`crate::symmetric_block_is_bad`], pair by pair: every `(i, j)` with `i` in `rows`, `j` in
/// `cols`, `j < i`, each test spelled out.
// `!(x <= limit)` rather than `x > limit`: NaN must fail.
#[allow(clippy::neg_cmp_op_on_partial_ord)]
pub fn symmetric_block_is_bad(
    data: &[f64],
    n: usize,
    rows: core::ops::Range<usize>,
    cols: core::ops::Range<usize>,
    tol: f64,
    sqrt_diag: Option<&[f64]>,
    slack: f64,
) -> bool {
    assert!(data.len() >= n * n && rows.end <= n && cols.end <= n);
    for i in rows {
        for j in cols.clone() {
            if j >= i {
                continue;
            }
            let (a, b) = (data[i * n + j], data[j * n + i]);
            if !a.is_finite() || !b.is_finite() {
                return true;
            }
            if !((a - b).abs() <= tol) {
                return true;
            }
            if let Some(sd) = sqrt_diag {
                let bound = sd[i] * slack * sd[j] + tol;
                if !(a.abs() <= bound) {
                    return true;
                }
            }
        }
    }
    false
}

/// Scalar twin of [`crate::hadamard_in_place`].
pub fn hadamard_in_place<T: Float>(out: &mut [T], a: &[T]) {
    crate::elementwise::hadamard_loop(out, a)
}

/// Scalar twin of [`crate::any_cancelled`].
pub fn any_cancelled<T: Float>(row: &[T], cs: &[T], r: T, tau: T) -> bool {
    crate::elementwise::any_cancelled_loop(row, cs, r, tau)
}

/// Scalar twin of [`crate::cp_block_forward`]: the plain loops, in the order of operations
/// the vector pass follows (`cp_block` module docs).
#[allow(clippy::needless_range_loop)]
pub fn cp_block_forward<T: Float>(
    parts: &[crate::CpPart<'_, T>],
    rows: usize,
    rank: usize,
    h: usize,
    w: &[T],
    out: &mut [T],
    scratch: &mut [T],
) {
    crate::cp_block::check_forward(parts, rows, rank, h, w, out, scratch);
    let at = |p: &crate::CpPart<'_, T>, row: usize, j: usize| p.proj[row * p.stride + p.offset + j];
    for row in 0..rows {
        for i in 0..rank {
            for k in 0..h {
                let j = i * h + k;
                let mut prod = at(&parts[0], row, j);
                for p in &parts[1..] {
                    prod = prod * at(p, row, j);
                }
                out[row * h + k] += w[i] * prod;
            }
        }
    }
}

/// Scalar twin of [`crate::cp_block_backward`]: the plain loops, in the order of operations
/// the vector pass follows (`cp_block` module docs).
#[allow(clippy::too_many_arguments, clippy::needless_range_loop)]
pub fn cp_block_backward<T: Float>(
    parts: &[crate::CpPart<'_, T>],
    grads: &mut [crate::CpPartMut<'_, T>],
    rows: usize,
    rank: usize,
    h: usize,
    w: &[T],
    g: &[T],
    gw: &mut [T],
    scratch: &mut [T],
) {
    crate::cp_block::check_backward(parts, grads, rows, rank, h, w, g, gw, scratch);
    let at = |p: &crate::CpPart<'_, T>, row: usize, j: usize| p.proj[row * p.stride + p.offset + j];
    let mut acc = vec![T::ZERO; rank * h];
    for row in 0..rows {
        for i in 0..rank {
            for k in 0..h {
                let j = i * h + k;
                let gk = g[row * h + k];
                let coef = gk * w[i];
                let mut prod = at(&parts[0], row, j);
                for p in &parts[1..] {
                    prod = prod * at(p, row, j);
                }
                acc[j] += gk * prod;
                for (m, q) in grads.iter_mut().enumerate() {
                    let mut others: Option<T> = None;
                    for (m2, p) in parts.iter().enumerate() {
                        if m2 != m {
                            let v = at(p, row, j);
                            others = Some(others.map_or(v, |o| o * v));
                        }
                    }
                    q.grad[row * q.stride + q.offset + j] = others.map_or(coef, |o| coef * o);
                }
            }
        }
    }
    for i in 0..rank {
        let mut sum = T::ZERO;
        for k in 0..h {
            sum += acc[i * h + k];
        }
        gw[i] += sum;
    }
}

/// Scalar twin of [`crate::skinny_matmul`]: the plain triple loop, one chain over `a` per
/// output (multiply then add: two roundings).
pub fn skinny_matmul<T: Float>(x: &[T], d: usize, v: &[T], c: usize, out: &mut [T]) {
    let rows = out.len() / c;
    assert_eq!(x.len(), rows * d);
    assert_eq!(v.len(), d * c);
    for i in 0..rows {
        for j in 0..c {
            let mut acc = T::ZERO;
            for a in 0..d {
                acc += x[i * d + a] * v[a * c + j];
            }
            out[i * c + j] = acc;
        }
    }
}

/// Scalar twin of [`crate::skinny_matmul_tn`]: one chain over the rows per output.
pub fn skinny_matmul_tn<T: Float>(
    x: &[T],
    d: usize,
    g: &[T],
    c: usize,
    out: &mut [T],
    accumulate: bool,
) {
    let rows = g.len() / c;
    assert_eq!(x.len(), rows * d);
    assert_eq!(out.len(), d * c);
    for a in 0..d {
        for j in 0..c {
            let mut acc = if accumulate { out[a * c + j] } else { T::ZERO };
            for i in 0..rows {
                acc += x[i * d + a] * g[i * c + j];
            }
            out[a * c + j] = acc;
        }
    }
}

/// Scalar twin of [`crate::rows_dot`]: one chain over `a` per output.
pub fn rows_dot<T: Float>(x: &[T], d: usize, w: &[T], h: usize, out: &mut [T], accumulate: bool) {
    let rows = out.len() / h;
    assert_eq!(x.len(), rows * d);
    assert_eq!(w.len(), h * d);
    for i in 0..rows {
        for k in 0..h {
            let mut acc = T::ZERO;
            for a in 0..d {
                acc += x[i * d + a] * w[k * d + a];
            }
            out[i * h + k] = if accumulate {
                out[i * h + k] + acc
            } else {
                acc
            };
        }
    }
}

/// [`crate::transpose_into`]: `dst[j][i] = src[i][j]`, element by element.
///
/// # Panics
/// If `dst` is not `src.ncols() x src.nrows()`.
pub fn transpose_into<T: Copy>(src: &TileMut<'_, T>, dst: &mut TileMut<'_, T>) {
    assert_eq!(dst.nrows(), src.ncols(), "transpose: shape mismatch");
    assert_eq!(dst.ncols(), src.nrows(), "transpose: shape mismatch");
    for i in 0..src.nrows() {
        for j in 0..src.ncols() {
            dst.row_mut(j)[i] = src.row(i)[j];
        }
    }
}

/// [`crate::column_sums_on`] (with `mean: None`) and [`crate::column_abs_dev_sums_on`] by an
/// element loop: column by column, each summed over the rows in order.
pub fn column_sums<T: Float>(data: &[T], mean: Option<&[f64]>, acc: &mut [f64]) {
    let d = acc.len();
    for (k, a) in acc.iter_mut().enumerate() {
        for row in data.chunks_exact(d) {
            let v = row[k].to_f64();
            *a += match mean {
                None => v,
                Some(m) => (v - m[k]).abs(),
            };
        }
    }
}

/// [`crate::centre_rows_on`] element by element.
pub fn centre_rows<T: Float>(src: &[T], shift: &[f64], out: &mut [T]) {
    for (q, (o, v)) in out.iter_mut().zip(src).enumerate() {
        *o = T::from_f64(v.to_f64() - shift[q % shift.len()]);
    }
}

/// [`crate::all_finite_on`] element by element.
pub fn all_finite<T: Float>(data: &[T]) -> bool {
    data.iter().all(|v| v.to_f64().is_finite())
}
