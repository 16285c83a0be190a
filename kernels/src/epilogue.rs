//! Gram tile epilogues: turn a tile of inner products (or L1 distances) into kernel values, in
//! place, while the tile is still in cache.

use crate::exp::{exp_vec, exp_vec_nonpositive, tanh_vec, ExpConsts, ExpPoly};
use crate::simd::{Float, Lanes};
use crate::tile::TileMut;
use pulp::Simd;

/// What to apply to each element `g` of a tile, with `r_i` / `c_j` the per-row / per-column
/// auxiliary values passed next to the tile.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Epilogue<T> {
    /// `g` unchanged (linear kernel).
    Identity,
    /// `(gamma g + coef0)^degree`.
    Poly {
        /// Scale of the inner product.
        gamma: T,
        /// Offset.
        coef0: T,
        /// Integer power, >= 1.
        degree: u32,
    },
    /// `tanh(gamma g + coef0)`.
    Sigmoid {
        /// Scale of the inner product.
        gamma: T,
        /// Offset.
        coef0: T,
    },
    /// `exp(-gamma max(0, r_i + c_j - 2 g))` with `r`, `c` the squared row norms.
    Rbf {
        /// Width parameter.
        gamma: T,
    },
    /// `g r_i c_j` with `r`, `c` the reciprocal row norms (0 for a zero row).
    Cosine,
    /// `exp(-gamma g)`, for tiles holding L1 distances (laplacian kernel).
    ExpNeg {
        /// Width parameter.
        gamma: T,
    },
}

impl<T> Epilogue<T> {
    /// Whether the epilogue reads the per-row / per-column auxiliary values.
    pub fn needs_aux(&self) -> bool {
        matches!(self, Epilogue::Rbf { .. } | Epilogue::Cosine)
    }
}

/// Applies `ep` to every element of `tile`; SIMD along each row.
///
/// No closures here or below: a closure body is a separate function that does not inherit the
/// target features of pulp's `with_simd`, so its intrinsics would become calls (measured: 13x
/// slower on AVX2).
// Rows of a strided tile are handed out one index at a time (no row iterator).
#[allow(clippy::needless_range_loop)]
#[inline(always)]
pub(crate) fn apply_tile<S: Simd, T: ExpPoly<S> + ExpConsts>(
    s: S,
    tile: &mut TileMut<'_, T>,
    ep: &Epilogue<T>,
    row_aux: &[T],
    col_aux: &[T],
) {
    if ep.needs_aux() {
        assert_eq!(row_aux.len(), tile.nrows(), "row_aux length");
        assert_eq!(col_aux.len(), tile.ncols(), "col_aux length");
    }
    let rbf_in_range = match *ep {
        Epilogue::Rbf { gamma } => rbf_exponents_in_range(gamma, row_aux, col_aux),
        _ => false,
    };
    for i in 0..tile.nrows() {
        let row = tile.row_mut(i);
        match *ep {
            Epilogue::Identity => {}
            Epilogue::Poly {
                gamma,
                coef0,
                degree,
            } => map_row(
                s,
                row,
                PolyOp {
                    gamma,
                    coef0,
                    degree,
                },
            ),
            Epilogue::Sigmoid { gamma, coef0 } => map_row(s, row, SigmoidOp { gamma, coef0 }),
            Epilogue::Rbf { gamma } => {
                rbf_row::<S, T>(s, row, row_aux[i], col_aux, gamma, rbf_in_range)
            }
            Epilogue::Cosine => cosine_row::<S, T>(s, row, row_aux[i], col_aux),
            Epilogue::ExpNeg { gamma } => map_row(s, row, ExpNegOp { neg_gamma: -gamma }),
        }
    }
}

/// An element-wise vector function (a closure that keeps the target features).
pub(crate) trait VecMap<S: Simd, T: Lanes<S>>: Copy {
    fn apply(self, s: S, v: T::Vec<S>) -> T::Vec<S>;
}

#[derive(Clone, Copy)]
struct PolyOp<T> {
    gamma: T,
    coef0: T,
    degree: u32,
}
impl<S: Simd, T: Lanes<S>> VecMap<S, T> for PolyOp<T> {
    #[inline(always)]
    fn apply(self, s: S, v: T::Vec<S>) -> T::Vec<S> {
        powi::<S, T>(s, affine::<S, T>(s, v, self.gamma, self.coef0), self.degree)
    }
}

#[derive(Clone, Copy)]
struct SigmoidOp<T> {
    gamma: T,
    coef0: T,
}
impl<S: Simd, T: ExpPoly<S> + ExpConsts> VecMap<S, T> for SigmoidOp<T> {
    #[inline(always)]
    fn apply(self, s: S, v: T::Vec<S>) -> T::Vec<S> {
        tanh_vec::<S, T>(s, affine::<S, T>(s, v, self.gamma, self.coef0))
    }
}

#[derive(Clone, Copy)]
struct ExpNegOp<T> {
    neg_gamma: T,
}
impl<S: Simd, T: ExpPoly<S> + ExpConsts> VecMap<S, T> for ExpNegOp<T> {
    #[inline(always)]
    fn apply(self, s: S, v: T::Vec<S>) -> T::Vec<S> {
        exp_vec::<S, T>(s, T::vmul(s, v, T::splat(s, self.neg_gamma)))
    }
}

#[derive(Clone, Copy)]
struct ExpOp;
impl<S: Simd, T: ExpPoly<S> + ExpConsts> VecMap<S, T> for ExpOp {
    #[inline(always)]
    fn apply(self, s: S, v: T::Vec<S>) -> T::Vec<S> {
        exp_vec::<S, T>(s, v)
    }
}

#[derive(Clone, Copy)]
struct TanhOp;
impl<S: Simd, T: ExpPoly<S> + ExpConsts> VecMap<S, T> for TanhOp {
    #[inline(always)]
    fn apply(self, s: S, v: T::Vec<S>) -> T::Vec<S> {
        tanh_vec::<S, T>(s, v)
    }
}

#[inline(always)]
fn affine<S: Simd, T: Lanes<S>>(s: S, v: T::Vec<S>, gamma: T, coef0: T) -> T::Vec<S> {
    T::vfma(s, v, T::splat(s, gamma), T::splat(s, coef0))
}

/// `v^degree` by binary powering (at most 2 log2(degree) multiplications).
#[inline(always)]
fn powi<S: Simd, T: Lanes<S>>(s: S, v: T::Vec<S>, degree: u32) -> T::Vec<S> {
    let mut result = T::splat(s, T::ONE);
    let mut base = v;
    let mut d = degree;
    let mut first = true;
    while d > 0 {
        if d & 1 == 1 {
            // Skip the multiplication by 1 so degree 1 returns v exactly.
            result = if first {
                base
            } else {
                T::vmul(s, result, base)
            };
            first = false;
        }
        d >>= 1;
        if d > 0 {
            base = T::vmul(s, base, base);
        }
    }
    result
}

/// Applies a vector map to a row: full registers, then one partial register for the tail.
#[inline(always)]
fn map_row<S: Simd, T: Lanes<S>, F: VecMap<S, T>>(s: S, row: &mut [T], f: F) {
    let (head, tail) = T::as_mut_simd(row);
    for v in head {
        *v = f.apply(s, *v);
    }
    if !tail.is_empty() {
        let v = f.apply(s, T::load_partial(s, tail));
        T::store_partial(s, tail, v);
    }
}

/// Whether every exponent `-gamma max(0, r_i + c_j - 2 g_ij)` of a tile is provably in the
/// domain of [`exp_vec_nonpositive`], from the norms alone: `|g| <= sqrt(r c) <= (r + c) / 2`
/// (Cauchy-Schwarz), so the squared distance is at most `2 (r + c)`; computed, at most a factor
/// `1 + gamma_d + 3u` more (the GEMM's and the norms' rounding), which the margin of 2 covers
/// for any d below 1e7 in f32. Typical data (gamma = 1/d, points within a few spreads of their
/// mean) give a bound of a few units, far inside; narrow kernels fall back to the full exp.
fn rbf_exponents_in_range<T: ExpConsts + Float>(gamma: T, row_aux: &[T], col_aux: &[T]) -> bool {
    let max = |v: &[T]| v.iter().fold(0.0f64, |m, x| m.max(x.to_f64()));
    let bound = 2.0 * gamma.to_f64() * (max(row_aux) + max(col_aux));
    bound.is_finite() && bound <= 0.5 * -T::NORMAL_MIN_ARG.to_f64()
}

/// exp(-gamma max(0, rn + cn - 2 g)) for one register; `in_range`: the exponent is known to
/// lie in the domain of [`exp_vec_nonpositive`] (same bits, fewer operations).
#[inline(always)]
fn rbf_vec<S: Simd, T: ExpPoly<S> + ExpConsts>(
    s: S,
    g: T::Vec<S>,
    cn: T::Vec<S>,
    rn: T::Vec<S>,
    neg_gamma: T::Vec<S>,
    in_range: bool,
) -> T::Vec<S> {
    // squared distance, clamped at 0 against cancellation: |x|^2 + |y|^2 - 2 <x, y>
    let d2 = T::vmax(
        s,
        T::vfma(s, g, T::splat(s, T::from_f64(-2.0)), T::vadd(s, rn, cn)),
        T::splat(s, T::ZERO),
    );
    let x = T::vmul(s, d2, neg_gamma);
    if in_range {
        exp_vec_nonpositive::<S, T>(s, x)
    } else {
        exp_vec::<S, T>(s, x)
    }
}

#[inline(always)]
fn rbf_row<S: Simd, T: ExpPoly<S> + ExpConsts>(
    s: S,
    row: &mut [T],
    row_norm: T,
    col_norms: &[T],
    gamma: T,
    in_range: bool,
) {
    // The test is hoisted: one loop per case, each with a branch-free body.
    if in_range {
        rbf_row_loop::<S, T, true>(s, row, row_norm, col_norms, gamma);
    } else {
        rbf_row_loop::<S, T, false>(s, row, row_norm, col_norms, gamma);
    }
}

#[inline(always)]
fn rbf_row_loop<S: Simd, T: ExpPoly<S> + ExpConsts, const IN_RANGE: bool>(
    s: S,
    row: &mut [T],
    row_norm: T,
    col_norms: &[T],
    gamma: T,
) {
    let rn = T::splat(s, row_norm);
    let neg_gamma = T::splat(s, -gamma);
    let (head, tail) = T::as_mut_simd(row);
    let (cn_head, cn_tail) = T::as_simd(col_norms);
    for (v, cn) in head.iter_mut().zip(cn_head) {
        *v = rbf_vec::<S, T>(s, *v, *cn, rn, neg_gamma, IN_RANGE);
    }
    if !tail.is_empty() {
        let v = rbf_vec::<S, T>(
            s,
            T::load_partial(s, tail),
            T::load_partial(s, cn_tail),
            rn,
            neg_gamma,
            IN_RANGE,
        );
        T::store_partial(s, tail, v);
    }
}

#[inline(always)]
fn cosine_row<S: Simd, T: Lanes<S>>(s: S, row: &mut [T], row_inv: T, col_inv: &[T]) {
    let ri = T::splat(s, row_inv);
    let (head, tail) = T::as_mut_simd(row);
    let (c_head, c_tail) = T::as_simd(col_inv);
    for (v, c) in head.iter_mut().zip(c_head) {
        *v = T::vmul(s, T::vmul(s, *v, ri), *c);
    }
    if !tail.is_empty() {
        let v = T::vmul(
            s,
            T::vmul(s, T::load_partial(s, tail), ri),
            T::load_partial(s, c_tail),
        );
        T::store_partial(s, tail, v);
    }
}

/// exp over a slice.
#[inline(always)]
pub(crate) fn exp_slice<S: Simd, T: ExpPoly<S> + ExpConsts>(s: S, x: &mut [T]) {
    map_row(s, x, ExpOp);
}

/// tanh over a slice.
#[inline(always)]
pub(crate) fn tanh_slice<S: Simd, T: ExpPoly<S> + ExpConsts>(s: S, x: &mut [T]) {
    map_row(s, x, TanhOp);
}

#[cfg(test)]
mod tests {
    use super::*;
    use pulp::WithSimd;

    /// Both exps over `xs`, on one instruction set: (full, non-positive fast path).
    struct BothExps<'a, T>(&'a [T]);
    macro_rules! both_exps {
        ($t:ty) => {
            impl WithSimd for BothExps<'_, $t> {
                type Output = (Vec<$t>, Vec<$t>);
                #[inline(always)]
                fn with_simd<S: Simd>(self, s: S) -> Self::Output {
                    let lanes = <$t as Lanes<S>>::LANES;
                    let mut full = Vec::with_capacity(self.0.len());
                    let mut fast = Vec::with_capacity(self.0.len());
                    for chunk in self.0.chunks(lanes) {
                        let x = <$t as Lanes<S>>::load_partial(s, chunk);
                        let mut a = vec![0.0; chunk.len()];
                        let mut b = vec![0.0; chunk.len()];
                        <$t as Lanes<S>>::store_partial(s, &mut a, exp_vec::<S, $t>(s, x));
                        let y = exp_vec_nonpositive::<S, $t>(s, x);
                        <$t as Lanes<S>>::store_partial(s, &mut b, y);
                        full.extend(a);
                        fast.extend(b);
                    }
                    (full, fast)
                }
            }
        };
    }
    both_exps!(f32);
    both_exps!(f64);

    fn same_bits<T: Float>(lo: f64, count: usize)
    where
        for<'a> BothExps<'a, T>: WithSimd<Output = (Vec<T>, Vec<T>)>,
    {
        // A dense sweep of [lo, 0], both ends and signed zero included.
        let mut xs: Vec<T> = (0..=count)
            .map(|k| T::from_f64(lo * k as f64 / count as f64))
            .collect();
        xs.extend([T::from_f64(lo), T::from_f64(-0.0), T::from_f64(-1e-30)]);
        for arch in crate::available_isas() {
            let (full, fast) = arch.dispatch(BothExps(&xs));
            for ((x, a), b) in xs.iter().zip(&full).zip(&fast) {
                assert_eq!(
                    a.to_f64().to_bits(),
                    b.to_f64().to_bits(),
                    "{arch:?}: exp({}) = {} (full) but {} (fast)",
                    x.to_f64(),
                    a.to_f64(),
                    b.to_f64()
                );
            }
        }
    }

    #[test]
    fn nonpositive_exp_is_bitwise_the_full_exp_on_its_domain() {
        same_bits::<f32>(f32::NORMAL_MIN_ARG as f64, 400_000);
        same_bits::<f64>(f64::NORMAL_MIN_ARG, 400_000);
    }

    /// The rbf epilogue with and without the fast path gives the same bits, and the range test
    /// takes the fast path for ordinary data and refuses it for narrow kernels.
    #[test]
    fn rbf_fast_path_is_taken_when_proven_and_changes_no_bit() {
        struct Rows<'a>(&'a mut [f32], f32, &'a [f32], f32, bool);
        impl WithSimd for Rows<'_> {
            type Output = ();
            #[inline(always)]
            fn with_simd<S: Simd>(self, s: S) {
                rbf_row::<S, f32>(s, self.0, self.1, self.2, self.3, self.4)
            }
        }
        let cols: Vec<f32> = (0..37).map(|j| 0.5 + j as f32 * 0.37).collect();
        let g: Vec<f32> = (0..37).map(|j| (j as f32 * 0.7).sin() * 2.0).collect();
        let (r, gamma) = (3.0f32, 0.2f32);
        assert!(rbf_exponents_in_range(gamma, &[r], &cols));
        assert!(!rbf_exponents_in_range(100.0f32, &[r], &cols));
        assert!(!rbf_exponents_in_range(gamma, &[f32::INFINITY], &cols));
        for arch in crate::available_isas() {
            let (mut a, mut b) = (g.clone(), g.clone());
            arch.dispatch(Rows(&mut a, r, &cols, gamma, false));
            arch.dispatch(Rows(&mut b, r, &cols, gamma, true));
            let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&a), bits(&b), "{arch:?}");
        }
    }
}
