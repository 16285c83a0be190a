//! Naive f64 reference of low-rank multimodal fusion for the LMF tests (`tests/lmf.rs`,
//! `tests/lmf_prop.rs` include it with `#[path = "support/lmf_reference.rs"] mod lmf_reference;`):
//! per sample, per rank, per output loops in the PyTorch layout, with no blocking, no GEMM and no
//! SIMD; plus the rigorous rounding-error bounds of the engine's forward and backward passes.
//!
//! # Error model (Higham, *Accuracy and Stability of Numerical Algorithms*, ch. 2-3)
//!
//! `u` is the unit roundoff of the type computed in (2^-24 for f32, 2^-53 for f64) and
//! `gamma_k = k u / (1 - k u)`; a value that went through at most k roundings, in any order of
//! summation, is within `gamma_k` (relative) of the exact sum of absolute values of its terms.
//! Underflow is ignored: test values are O(1) and products of at most 5 of them stay far above
//! the smallest normal number. FMA or not (faer's micro-kernels, pulp's scalar backend without
//! FMA) only lowers the number of roundings, so the bounds are written for unfused operations.
//!
//! ## Forward, per output element (n, k); `z = [1, x_n]` for modality m
//! 1. `A_m[i] = sum_j z_j W_m[i][j][k]` is a dot product of length d_m + 1 (the GEMM's initial
//!    value `W_m[i][0][k]` is the j = 0 term): `|fl(A) - A| <= E_m := gamma_{d_m+1} S_m`, with
//!    `S_m = sum_j |z_j W_m[i][j][k]|`.
//! 2. `P_i = prod_m A_m[i]`: M - 1 multiplications of perturbed factors, so
//!    `fl(P) = (1 + theta_{M-1}) prod_m (A_m + e_m)` and
//!    `|fl(P) - P| <= bP_i := (1 + gamma_{M-1}) prod_m (|A_m| + E_m) - prod_m |A_m|`
//!    (expand the product; the bound grows with every |A_m|, so upper bounds of |A_m| may be used).
//! 3. `y = sum_i w_i P_i + c`: each term `w_i fl(P_i)` goes through one multiplication and at
//!    most r additions (the bias last), so
//!    `|fl(y) - y| <= sum_i |w_i| bP_i + gamma_{r+1} (sum_i |w_i| (|P_i| + bP_i) + |c|)`.
//!
//! Pre-scaled model (`w_i` folded into factor 0 once, one rounding per element): factor 0's
//! dot product carries one more rounding, `E_0 = gamma_{d_0+2} |w_i| S_0`, its |A_0| is scaled by
//! |w_i|, and the rank sum has no multiplication (gamma_{r+1} still bounds it).
//!
//! ## Backward, with G = dL/dy given exactly
//! - `dA_m[i] = w_i G prod_{m' != m} A_m'[i]`: M - 2 multiplications among the factors, `w_i G`,
//!   and the final multiplication: at most M + 1 roundings, so with `L_m = prod_{m' != m} |A_m'|`
//!   `|fl(dA_m) - dA_m| <= D_m := |w_i G| ((1 + gamma_{M+1}) prod_{m' != m} (|A_m'| + E_m') - L_m)`
//!   and `|dA_m| <= |w_i G| L_m`.
//! - `dW_m[j][i][k] = sum_n z_nj dA_m[n][i][k]` (a sum of N products in any order: blocks, chains):
//!   `err <= sum_n |z_nj| D_m + gamma_N sum_n |z_nj| (|dA_m| + D_m)`.
//! - `dX_m[n][j] = sum_{i,k} dA_m W_m[i][j+1][k]` (length r h):
//!   `err <= sum |W| D_m + gamma_{rh} sum |W| (|dA_m| + D_m)`.
//! - `dw_i = sum_{n,k} G P_i` (per-element accumulation over rows and chains, then over k):
//!   `err <= sum |G| bP_i + gamma_{N+h+1} sum |G| (|P_i| + bP_i)`.
//! - `dc_k = sum_n G[n][k]`: `err <= gamma_N sum_n |G[n][k]|`.
//!
//! The reference itself is computed in f64 with the same kinds of loops, so it obeys the same
//! bounds with u = 2^-53; a comparison engine-vs-reference uses the sum of both bounds, and the
//! true |A_m| are bounded above by `|A_ref| + gamma_{d_m+1}(2^-53) S_m`.
#![allow(dead_code)] // each test file uses its own subset
#![allow(clippy::needless_range_loop)] // index loops read closest to the formulas

use mmfuse::lmf::LmfModel;
use mmfuse::Real;

/// `gamma_k = k u / (1 - k u)`.
pub fn gamma(k: usize, u: f64) -> f64 {
    let ku = k as f64 * u;
    assert!(ku < 1.0);
    ku / (1.0 - ku)
}

/// Unit roundoff of f64.
pub const U64: f64 = f64::EPSILON / 2.0;

/// A model's parameters in f64, PyTorch layout: `factors[m][(i * (d + 1) + j) * h + k]`.
#[derive(Clone, Debug)]
pub struct RefModel {
    pub dims: Vec<usize>,
    pub rank: usize,
    pub h: usize,
    pub factors: Vec<Vec<f64>>,
    pub w: Vec<f64>,
    pub c: Vec<f64>,
}

impl RefModel {
    pub fn of<T: Real>(m: &LmfModel<T>) -> RefModel {
        RefModel {
            dims: m.dims().to_vec(),
            rank: m.rank(),
            h: m.out_dim(),
            factors: (0..m.dims().len())
                .map(|i| {
                    m.factor_torch_layout(i)
                        .unwrap()
                        .iter()
                        .map(|v| v.to_f64())
                        .collect()
                })
                .collect(),
            w: m.fusion_weights().iter().map(|v| v.to_f64()).collect(),
            c: m.bias().iter().map(|v| v.to_f64()).collect(),
        }
    }

    pub fn wt(&self, m: usize, i: usize, j: usize, k: usize) -> f64 {
        self.factors[m][(i * (self.dims[m] + 1) + j) * self.h + k]
    }
}

/// Forward results and the magnitudes the bounds need, indexed `[m][(n * r + i) * h + k]`.
pub struct Fwd {
    pub n: usize,
    pub y: Vec<f64>,
    pub a: Vec<Vec<f64>>,
    /// `S_m = sum_j |z_j W_m[i][j][k]|`.
    pub s: Vec<Vec<f64>>,
}

/// The naive forward pass: `xs[m]` row-major `n x d_m` in f64.
pub fn forward(model: &RefModel, xs: &[Vec<f64>], n: usize) -> Fwd {
    let (r, h) = (model.rank, model.h);
    let nm = model.dims.len();
    let mut a = vec![vec![0.0; n * r * h]; nm];
    let mut s = vec![vec![0.0; n * r * h]; nm];
    let mut y = vec![0.0; n * h];
    for row in 0..n {
        for i in 0..r {
            for k in 0..h {
                let idx = (row * r + i) * h + k;
                for m in 0..nm {
                    let d = model.dims[m];
                    let mut acc = model.wt(m, i, 0, k);
                    let mut abs = acc.abs();
                    for j in 0..d {
                        let t = xs[m][row * d + j] * model.wt(m, i, j + 1, k);
                        acc += t;
                        abs += t.abs();
                    }
                    a[m][idx] = acc;
                    s[m][idx] = abs;
                }
            }
        }
        for k in 0..h {
            let mut acc = 0.0;
            for i in 0..r {
                let idx = (row * r + i) * h + k;
                let mut p = a[0][idx];
                for am in &a[1..] {
                    p *= am[idx];
                }
                acc += model.w[i] * p;
            }
            y[row * h + k] = acc + model.c[k];
        }
    }
    Fwd { n, y, a, s }
}

/// Upper bound of the true |A_m| at `idx` (the reference's value plus its own error bound).
fn abar(model: &RefModel, f: &Fwd, m: usize, idx: usize) -> f64 {
    f.a[m][idx].abs() + gamma(model.dims[m] + 1, U64) * f.s[m][idx]
}

/// `(bP_i, Pbar_i)` at `idx` for unit roundoff `u` (see the module docs); `prescale_w`:
/// `Some(|w_i|)` for the pre-scaled model.
fn prod_bound(
    model: &RefModel,
    f: &Fwd,
    idx: usize,
    u: f64,
    prescale_w: Option<f64>,
) -> (f64, f64) {
    let nm = model.dims.len();
    let mut with_err = 1.0 + gamma(nm - 1, u);
    let mut exact = 1.0;
    for m in 0..nm {
        let mut a = abar(model, f, m, idx);
        let mut e = gamma(model.dims[m] + 1, u) * f.s[m][idx];
        if m == 0 {
            if let Some(w) = prescale_w {
                a *= w;
                e = gamma(model.dims[0] + 2, u) * w * f.s[0][idx];
            }
        }
        with_err *= a + e;
        exact *= a;
    }
    (with_err - exact, exact)
}

/// Bound on |fl(y) - y| of the forward pass in a type of unit roundoff `u`, per element.
pub fn forward_bound(model: &RefModel, f: &Fwd, u: f64, prescaled: bool) -> Vec<f64> {
    let (r, h) = (model.rank, model.h);
    let mut out = vec![0.0; f.n * h];
    for row in 0..f.n {
        for k in 0..h {
            let (mut direct, mut magnitude) = (0.0, model.c[k].abs());
            for i in 0..r {
                let idx = (row * r + i) * h + k;
                let wa = model.w[i].abs();
                if prescaled {
                    let (bp, pbar) = prod_bound(model, f, idx, u, Some(wa));
                    direct += bp;
                    magnitude += pbar + bp;
                } else {
                    let (bp, pbar) = prod_bound(model, f, idx, u, None);
                    direct += wa * bp;
                    magnitude += wa * (pbar + bp);
                }
            }
            out[row * h + k] = direct + gamma(r + 1, u) * magnitude;
        }
    }
    out
}

/// Gradients in f64, PyTorch layout for the factors.
pub struct Grads {
    pub factors: Vec<Vec<f64>>,
    pub w: Vec<f64>,
    pub c: Vec<f64>,
    pub inputs: Vec<Vec<f64>>,
}

/// The naive backward pass for `grad = dL/dy` (`n x h`): leave-one-out products computed
/// directly (product over m' != m), sums in sample order.
pub fn backward(model: &RefModel, xs: &[Vec<f64>], f: &Fwd, grad: &[f64]) -> Grads {
    let (r, h, n) = (model.rank, model.h, f.n);
    let nm = model.dims.len();
    let mut g = Grads {
        factors: model.factors.iter().map(|v| vec![0.0; v.len()]).collect(),
        w: vec![0.0; r],
        c: vec![0.0; h],
        inputs: model.dims.iter().map(|&d| vec![0.0; n * d]).collect(),
    };
    for row in 0..n {
        for k in 0..h {
            let gk = grad[row * h + k];
            g.c[k] += gk;
            for i in 0..r {
                let idx = (row * r + i) * h + k;
                let mut p = 1.0;
                for am in &f.a {
                    p *= am[idx];
                }
                g.w[i] += gk * p;
                for m in 0..nm {
                    let mut loo = model.w[i] * gk;
                    for (mm, am) in f.a.iter().enumerate() {
                        if mm != m {
                            loo *= am[idx];
                        }
                    }
                    let d = model.dims[m];
                    g.factors[m][(i * (d + 1)) * h + k] += loo;
                    for j in 0..d {
                        g.factors[m][(i * (d + 1) + j + 1) * h + k] += xs[m][row * d + j] * loo;
                        g.inputs[m][row * d + j] += loo * model.wt(m, i, j + 1, k);
                    }
                }
            }
        }
    }
    g
}

/// Bounds on the backward pass's errors in a type of unit roundoff `u`, same layout as [`Grads`].
pub fn backward_bound(model: &RefModel, xs: &[Vec<f64>], f: &Fwd, grad: &[f64], u: f64) -> Grads {
    let (r, h, n) = (model.rank, model.h, f.n);
    let nm = model.dims.len();
    // Per modality and (n, i, k): D_m and |dA_m| + D_m.
    let mut dd = vec![vec![0.0; n * r * h]; nm];
    let mut dmag = vec![vec![0.0; n * r * h]; nm];
    let mut out = Grads {
        factors: model.factors.iter().map(|v| vec![0.0; v.len()]).collect(),
        w: vec![0.0; r],
        c: vec![0.0; h],
        inputs: model.dims.iter().map(|&d| vec![0.0; n * d]).collect(),
    };
    let mut wsum_direct = vec![0.0; r];
    let mut wsum_mag = vec![0.0; r];
    let mut csum = vec![0.0; h];
    for row in 0..n {
        for k in 0..h {
            let gk = grad[row * h + k].abs();
            csum[k] += gk;
            for i in 0..r {
                let idx = (row * r + i) * h + k;
                let (bp, pbar) = prod_bound(model, f, idx, u, None);
                wsum_direct[i] += gk * bp;
                wsum_mag[i] += gk * (pbar + bp);
                let wg = model.w[i].abs() * gk;
                for m in 0..nm {
                    let (mut with_err, mut exact) = (1.0 + gamma(nm + 1, u), 1.0);
                    for mm in 0..nm {
                        if mm != m {
                            let a = abar(model, f, mm, idx);
                            with_err *= a + gamma(model.dims[mm] + 1, u) * f.s[mm][idx];
                            exact *= a;
                        }
                    }
                    let d_err = wg * (with_err - exact);
                    dd[m][idx] = d_err;
                    dmag[m][idx] = wg * exact + d_err;
                }
            }
        }
    }
    for i in 0..r {
        out.w[i] = wsum_direct[i] + gamma(n + h + 1, u) * wsum_mag[i];
    }
    for k in 0..h {
        out.c[k] = gamma(n, u) * csum[k];
    }
    for m in 0..nm {
        let d = model.dims[m];
        for i in 0..r {
            for k in 0..h {
                for j in 0..=d {
                    let (mut direct, mut mag) = (0.0, 0.0);
                    for row in 0..n {
                        let idx = (row * r + i) * h + k;
                        let z = if j == 0 {
                            1.0
                        } else {
                            xs[m][row * d + j - 1].abs()
                        };
                        direct += z * dd[m][idx];
                        mag += z * dmag[m][idx];
                    }
                    out.factors[m][(i * (d + 1) + j) * h + k] = direct + gamma(n, u) * mag;
                }
            }
        }
        for row in 0..n {
            for j in 0..d {
                let (mut direct, mut mag) = (0.0, 0.0);
                for i in 0..r {
                    for k in 0..h {
                        let idx = (row * r + i) * h + k;
                        let wa = model.wt(m, i, j + 1, k).abs();
                        direct += wa * dd[m][idx];
                        mag += wa * dmag[m][idx];
                    }
                }
                out.inputs[m][row * d + j] = direct + gamma(r * h, u) * mag;
            }
        }
    }
    out
}
