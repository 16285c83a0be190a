//! Block norms and the lp penalty, in closed form from the factors (never the tensors).
//!
//! For an interaction block I with factors `U_{I,m}` and fusion weights `w` (see
//! `lmf::relevance` for the derivation), per output column `k` and member `m` the `r x r` Gram
//! matrix `G_{m,k}[i][j] = <U_{I,m}[i][:, k], U_{I,m}[j][:, k]>` gives
//!
//! ```text
//! n_I^2 = ||W_I||_F^2 = sum_k w^T (prod_m G_{m,k}) w
//! d n_I^2 / d U_{I,m}[i][a][k] = 2 w_i sum_j w_j (prod_{m' != m} G_{m',k})[i][j] U_{I,m}[j][a][k]
//! d n_I^2 / d w_i              = 2 sum_k sum_j (prod_m G_{m,k})[i][j] w_j
//! ```
//!
//! and a unimodal block's `n^2` is its sum of squares. The penalty
//! `R = lambda (sum_I n_I^q)^(2/q)`, `q = 2p / (p + 1)`, has
//! `dR / d(n_I^2) = lambda S^(2/q - 1) n_I^(q - 2)` with `S = sum_J n_J^q`; for `q < 2` (finite
//! p) a block at exactly zero gets the subgradient 0. Everything here runs in f64: O(h r^2 sum
//! d_m) per block, small next to a training step's GEMMs.

use super::layout::Layout;
use crate::scalar::Real;

/// `q = 2p / (p + 1)` (2 for p = inf).
pub(crate) fn q_of(p: f64) -> f64 {
    if p.is_infinite() {
        2.0
    } else {
        2.0 * p / (p + 1.0)
    }
}

/// Per member, the `h x r x r` Gram matrices of interaction block `b` (index `(k r + i) r + j`).
fn grams<T: Real>(l: &Layout, params: &[T], b: usize) -> Vec<Vec<f64>> {
    let (r, h) = (l.rank, l.h);
    let rh = r * h;
    l.blocks[b]
        .members
        .iter()
        .zip(&l.col_offset[b])
        .map(|(&m, &off)| {
            let c = l.cols[m];
            let v = &params[l.v_range(m)];
            let mut g = vec![0.0f64; h * r * r];
            // Per row, the block's values regrouped by output (`col[k r + i]`), in f64, so the
            // inner loop is a contiguous multiply-add the compiler vectorises.
            let mut col = vec![0.0f64; rh];
            for row in v.chunks_exact(c) {
                for (j, x) in row[off..off + rh].iter().enumerate() {
                    col[(j % h) * r + j / h] = x.to_f64();
                }
                for k in 0..h {
                    let ck = &col[k * r..(k + 1) * r];
                    for (i, &x) in ck.iter().enumerate() {
                        let gi = &mut g[(k * r + i) * r..(k * r + i + 1) * r];
                        for (gij, &y) in gi.iter_mut().zip(ck) {
                            *gij += x * y;
                        }
                    }
                }
            }
            g
        })
        .collect()
}

/// `prod` over the members except `skip` (None: all) of the Gram matrices.
fn gram_product(g: &[Vec<f64>], skip: Option<usize>) -> Vec<f64> {
    let mut out = vec![1.0f64; g[0].len()];
    for (m, gm) in g.iter().enumerate() {
        if Some(m) != skip {
            for (o, v) in out.iter_mut().zip(gm) {
                *o *= v;
            }
        }
    }
    out
}

/// `sum_k w^T P_k w` for `h` stacked `r x r` matrices `P`.
fn quad(p: &[f64], w: &[f64], r: usize) -> f64 {
    p.chunks_exact(r * r)
        .map(|pk| {
            (0..r)
                .map(|i| w[i] * (0..r).map(|j| pk[i * r + j] * w[j]).sum::<f64>())
                .sum::<f64>()
        })
        .sum()
}

fn weights<T: Real>(l: &Layout, params: &[T], b: usize) -> Vec<f64> {
    l.w_range(b)
        .map(|rg| params[rg].iter().map(|v| v.to_f64()).collect())
        .unwrap_or_default()
}

/// Squared Frobenius norm of every block, in block order.
pub(crate) fn block_norms_sq<T: Real>(l: &Layout, params: &[T]) -> Vec<f64> {
    norms_and_grams(l, params).0
}

/// Squared norms, and the Gram matrices of the interaction blocks (empty for unimodal ones).
fn norms_and_grams<T: Real>(l: &Layout, params: &[T]) -> (Vec<f64>, Vec<Vec<Vec<f64>>>) {
    let mut all = Vec::with_capacity(l.blocks.len());
    let norms = (0..l.blocks.len())
        .map(|b| {
            if l.blocks[b].is_interaction() {
                let g = grams(l, params, b);
                let n2 = quad(&gram_product(&g, None), &weights(l, params, b), l.rank);
                all.push(g);
                n2
            } else {
                all.push(Vec::new());
                let m = l.blocks[b].members[0];
                params[l.u_range(m)]
                    .iter()
                    .map(|v| v.to_f64() * v.to_f64())
                    .sum()
            }
        })
        .collect();
    (norms, all)
}

/// The penalty `lambda (sum_I n_I^q)^(2/q)` for squared norms `n2`.
pub(crate) fn penalty_value(n2: &[f64], p: f64, lambda: f64) -> f64 {
    if lambda == 0.0 {
        return 0.0;
    }
    let q = q_of(p);
    let s: f64 = n2.iter().map(|&v| v.max(0.0).powf(q / 2.0)).sum();
    lambda * s.powf(2.0 / q)
}

/// Adds the gradient of the penalty to `grads` (same layout as `params`) and returns the
/// penalty's value.
pub(crate) fn add_penalty_gradient<T: Real>(
    l: &Layout,
    params: &[T],
    p: f64,
    lambda: f64,
    grads: &mut [T],
) -> f64 {
    if lambda == 0.0 {
        return 0.0;
    }
    let (n2, all_grams) = norms_and_grams(l, params);
    let q = q_of(p);
    let s: f64 = n2.iter().map(|&v| v.max(0.0).powf(q / 2.0)).sum();
    let value = lambda * s.powf(2.0 / q);
    let (r, h) = (l.rank, l.h);
    let rh = r * h;
    for (b, &nb2) in n2.iter().enumerate() {
        // dR / d(n_b^2).
        let coef = if q == 2.0 {
            lambda
        } else if nb2 > 0.0 {
            lambda * s.powf(2.0 / q - 1.0) * nb2.powf(q / 2.0 - 1.0)
        } else {
            0.0
        };
        if coef == 0.0 {
            continue;
        }
        let block = &l.blocks[b];
        if !block.is_interaction() {
            let range = l.u_range(block.members[0]);
            for (g, &v) in grads[range.clone()].iter_mut().zip(&params[range]) {
                *g += T::from_f64(2.0 * coef * v.to_f64());
            }
            continue;
        }
        let g = &all_grams[b];
        let w = weights(l, params, b);
        // d/dw.
        let all = gram_product(g, None);
        let wr = l.w_range(b).expect("interaction block");
        for (i, gw) in grads[wr].iter_mut().enumerate() {
            let d: f64 = (0..h)
                .map(|k| (0..r).map(|j| all[(k * r + i) * r + j] * w[j]).sum::<f64>())
                .sum();
            *gw += T::from_f64(2.0 * coef * d);
        }
        // d/dU per member: row a of the gradient is 2 coef w_i sum_j Q[k][i][j] w_j U[j][a][k].
        for (mi, (&m, &off)) in block.members.iter().zip(&l.col_offset[b]).enumerate() {
            let qm = gram_product(g, Some(mi));
            // A[k][i][j] = coef 2 w_i Q[k][i][j] w_j, so that dU row = A^T-style mix of the row.
            let mut a = vec![0.0f64; h * r * r];
            for k in 0..h {
                for i in 0..r {
                    for j in 0..r {
                        let idx = (k * r + i) * r + j;
                        a[idx] = 2.0 * coef * w[i] * qm[idx] * w[j];
                    }
                }
            }
            let c = l.cols[m];
            let range = l.v_range(m);
            let mut col = vec![0.0f64; rh];
            for (gr, pr) in grads[range.clone()]
                .chunks_exact_mut(c)
                .zip(params[range].chunks_exact(c))
            {
                for (j, x) in pr[off..off + rh].iter().enumerate() {
                    col[(j % h) * r + j / h] = x.to_f64();
                }
                let gseg = &mut gr[off..off + rh];
                for k in 0..h {
                    let ck = &col[k * r..(k + 1) * r];
                    for i in 0..r {
                        let ak = &a[(k * r + i) * r..(k * r + i + 1) * r];
                        let d: f64 = ak.iter().zip(ck).map(|(x, y)| x * y).sum();
                        gseg[i * h + k] += T::from_f64(d);
                    }
                }
            }
        }
    }
    value
}
