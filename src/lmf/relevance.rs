//! Closed forms for the block low-rank model (the tensor side of the interaction question):
//! the Frobenius norm of a rank-r CP block without forming its tensor, and the lp-MKL relevance
//! of blocks from their norms. The first pieces of the block LMF model; the model, its
//! training and files come next.
//!
//! A block I over modalities m in I with factors U_m (r x d_m x h, row-major: U_m[i][a][k]) and
//! fusion weights w (r) is the tensor W_I[a_1, ..., a_|I|, k] = sum_i w_i prod_m U_m[i][a_m][k].
//! Its squared Frobenius norm needs no tensor:
//!
//! ```text
//! ||W_I||_F^2 = sum_k w^T (prod_{m in I} G_{m,k}) w,   G_{m,k}[i][j] = sum_a U_m[i][a][k] U_m[j][a][k]
//! ```
//!
//! (elementwise product of r x r Gram matrices, per output column k): O(h r^2 sum_m d_m) flops.

use crate::error::{Error, Result};

/// ||W_I||_F^2 of a CP block from its factors (each r x d_m x h, row-major) and fusion weights.
///
/// ```
/// use mmfuse::lmf::relevance::cp_block_norm_sq;
/// // Rank 1, two modalities of 2 features, h = 1: W = w u v^T, ||W||^2 = w^2 |u|^2 |v|^2.
/// let (u, v) = ([1.0, 2.0], [3.0, 4.0]);
/// let n = cp_block_norm_sq(&[&u, &v], &[2, 2], 1, 1, &[0.5])?;
/// assert!((n - 0.25 * 5.0 * 25.0).abs() < 1e-12);
/// # Ok::<(), mmfuse::Error>(())
/// ```
///
/// # Errors
/// `Shape` when a factor's length is not r d_m h or `w` is not of length r; `Empty` for no
/// factors or r = 0 or h = 0.
pub fn cp_block_norm_sq(
    factors: &[&[f64]],
    dims: &[usize],
    rank: usize,
    h: usize,
    w: &[f64],
) -> Result<f64> {
    if factors.is_empty() || rank == 0 || h == 0 {
        return Err(Error::Empty(
            "a block needs at least one factor, rank >= 1 and h >= 1".into(),
        ));
    }
    if factors.len() != dims.len() || w.len() != rank {
        return Err(Error::Shape(format!(
            "{} factors for {} dims, {} fusion weights for rank {rank}",
            factors.len(),
            dims.len(),
            w.len()
        )));
    }
    for (m, (f, &d)) in factors.iter().zip(dims).enumerate() {
        if Some(f.len()) != rank.checked_mul(d).and_then(|x| x.checked_mul(h)) {
            return Err(Error::Shape(format!(
                "factor {m} has {} values, expected r d h = {rank} x {d} x {h}",
                f.len()
            )));
        }
    }
    let mut total = 0.0;
    let mut prod = vec![0.0f64; rank * rank];
    for k in 0..h {
        prod.iter_mut().for_each(|v| *v = 1.0);
        for (f, &d) in factors.iter().zip(dims) {
            for i in 0..rank {
                for j in i..rank {
                    let g: f64 = (0..d)
                        .map(|a| f[(i * d + a) * h + k] * f[(j * d + a) * h + k])
                        .sum();
                    prod[i * rank + j] *= g;
                    if j != i {
                        prod[j * rank + i] *= g;
                    }
                }
            }
        }
        for i in 0..rank {
            for j in 0..rank {
                total += w[i] * prod[i * rank + j] * w[j];
            }
        }
    }
    Ok(total)
}

/// The lp-MKL relevance of blocks from their Frobenius norms (not squared):
/// beta_I = ||W_I||^(2/(p+1)) / (sum_J ||W_J||^(2p/(p+1)))^(1/p), so ||beta||_p = 1 (p = inf:
/// every beta 1). Returns (beta, shares summing to 1). All-zero norms give zero weights and
/// equal shares.
///
/// ```
/// use mmfuse::lmf::relevance::relevance_from_norms;
/// let (beta, shares) = relevance_from_norms(&[3.0, 0.0, 1.0], 1.0)?;
/// // p = 1: beta is proportional to the norms.
/// assert!((shares[0] - 0.75).abs() < 1e-12 && shares[1] == 0.0);
/// assert!((beta.iter().sum::<f64>() - 1.0).abs() < 1e-12);
/// # Ok::<(), mmfuse::Error>(())
/// ```
///
/// # Errors
/// `InvalidParameter` for p < 1 or NaN, or a negative or non-finite norm; `Empty` for no norms.
pub fn relevance_from_norms(norms: &[f64], p: f64) -> Result<(Vec<f64>, Vec<f64>)> {
    if norms.is_empty() {
        return Err(Error::Empty("no block norms".into()));
    }
    if p.is_nan() || p < 1.0 {
        return Err(Error::param("p", format!("must be >= 1 (or inf), got {p}")));
    }
    if let Some(bad) = norms.iter().find(|v| !(v.is_finite() && **v >= 0.0)) {
        return Err(Error::param(
            "norms",
            format!("block norms must be finite and >= 0, got {bad}"),
        ));
    }
    let n = norms.len() as f64;
    let beta: Vec<f64> = if p.is_infinite() {
        vec![1.0; norms.len()]
    } else {
        let denom = norms
            .iter()
            .map(|v| v.powf(2.0 * p / (p + 1.0)))
            .sum::<f64>()
            .powf(1.0 / p);
        if denom == 0.0 {
            vec![0.0; norms.len()]
        } else {
            norms
                .iter()
                .map(|v| v.powf(2.0 / (p + 1.0)) / denom)
                .collect()
        }
    };
    let sum: f64 = beta.iter().sum();
    let shares = if sum > 0.0 {
        beta.iter().map(|b| b / sum).collect()
    } else {
        vec![1.0 / n; norms.len()]
    };
    Ok((beta, shares))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::util::SplitMix64;

    /// The block tensor materialised, and its squared Frobenius norm summed entry by entry.
    fn materialised_norm_sq(
        factors: &[Vec<f64>],
        dims: &[usize],
        r: usize,
        h: usize,
        w: &[f64],
    ) -> f64 {
        let entries: usize = dims.iter().product();
        let mut total = 0.0;
        for k in 0..h {
            for e in 0..entries {
                // Multi-index of entry e over the modalities.
                let mut idx = Vec::with_capacity(dims.len());
                let mut rest = e;
                for &d in dims.iter().rev() {
                    idx.push(rest % d);
                    rest /= d;
                }
                idx.reverse();
                let v: f64 = (0..r)
                    .map(|i| {
                        w[i] * factors
                            .iter()
                            .zip(dims)
                            .zip(&idx)
                            .map(|((f, &d), &a)| f[(i * d + a) * h + k])
                            .product::<f64>()
                    })
                    .sum();
                total += v * v;
            }
        }
        total
    }

    #[test]
    fn closed_form_equals_the_materialised_tensor() {
        let mut rng = SplitMix64::new(7);
        for (dims, r, h) in [
            (vec![3usize], 2usize, 1usize),
            (vec![2, 3], 3, 2),
            (vec![4, 1, 3], 4, 3),
            (vec![2, 2, 2, 2], 5, 1),
        ] {
            let factors: Vec<Vec<f64>> = dims
                .iter()
                .map(|&d| (0..r * d * h).map(|_| rng.next_f64() * 2.0 - 1.0).collect())
                .collect();
            let w: Vec<f64> = (0..r).map(|_| rng.next_f64() - 0.5).collect();
            let refs: Vec<&[f64]> = factors.iter().map(Vec::as_slice).collect();
            let got = cp_block_norm_sq(&refs, &dims, r, h, &w).unwrap();
            let want = materialised_norm_sq(&factors, &dims, r, h, &w);
            assert!(
                (got - want).abs() <= 1e-12 * want.max(1e-300),
                "{dims:?} r {r} h {h}: {got} vs {want}"
            );
        }
    }

    #[test]
    fn relevance_is_on_the_p_sphere() {
        for p in [1.0, 4.0 / 3.0, 2.0, 3.0] {
            let (beta, shares) = relevance_from_norms(&[0.5, 2.0, 0.0, 1.0], p).unwrap();
            let norm = beta.iter().map(|b| b.powf(p)).sum::<f64>().powf(1.0 / p);
            assert!((norm - 1.0).abs() < 1e-12, "p = {p}: {beta:?}");
            assert!((shares.iter().sum::<f64>() - 1.0).abs() < 1e-12);
            assert_eq!(beta[2], 0.0);
        }
        let (beta, _) = relevance_from_norms(&[1.0, 2.0], f64::INFINITY).unwrap();
        assert_eq!(beta, [1.0, 1.0]);
        assert!(relevance_from_norms(&[1.0], 0.5).is_err());
        assert!(relevance_from_norms(&[-1.0], 2.0).is_err());
        assert!(relevance_from_norms(&[], 2.0).is_err());
        assert!(cp_block_norm_sq(&[&[1.0]], &[2], 1, 1, &[1.0]).is_err());
    }
}
