//! Kernel diagnostics: the median heuristic for the rbf width, and kernel-target alignment.

use super::input::rows_of;
use crate::error::{Error, Result};
use crate::matrix::Matrix;
use crate::scalar::Real;
use faer::MatRef;

/// The median heuristic: `gamma = 1 / median ||x_i - x_j||^2` over pairs i < j, on at most
/// `max_points` evenly spaced rows (the median of a large sample is stable; all pairs of all
/// rows would cost O(n^2 d)). Errors if X has fewer than two rows or all sampled rows coincide.
pub fn median_heuristic_gamma<T: Real>(x: MatRef<'_, T>, max_points: usize) -> Result<f64> {
    let rows = rows_of(x, "X")?;
    let (n, d) = (rows.n, rows.d);
    if n < 2 {
        return Err(Error::Empty(
            "the median heuristic needs at least two points".into(),
        ));
    }
    let m = n.min(max_points.max(2));
    let idx: Vec<usize> = (0..m).map(|k| k * n / m).collect();
    let mut d2 = Vec::with_capacity(m * (m - 1) / 2);
    for (a, &i) in idx.iter().enumerate() {
        for &j in &idx[a + 1..] {
            let (xi, xj) = (
                &rows.data[i * d..(i + 1) * d],
                &rows.data[j * d..(j + 1) * d],
            );
            d2.push(
                xi.iter()
                    .zip(xj)
                    .map(|(p, q)| {
                        let t = p.to_f64() - q.to_f64();
                        t * t
                    })
                    .sum::<f64>(),
            );
        }
    }
    d2.sort_by(|a, b| a.total_cmp(b));
    let med = d2[d2.len() / 2];
    if med <= 0.0 {
        return Err(Error::param(
            "X",
            "the median squared distance is 0 (most points coincide)",
        ));
    }
    Ok(1.0 / med)
}

/// Centred kernel-target alignment (Cortes, Mohri & Rostamizadeh 2012):
/// `<Kc, Yc>_F / (||Kc||_F ||Yc||_F)` with `Kc = H K H`, `Yc = H y y^T H`, in [-1, 1]; higher
/// means the kernel's geometry follows the labels. `y` holds one real target per point
/// (e.g. +-1 labels).
pub fn kernel_target_alignment<T: Real>(k: &Matrix<T>, y: &[f64]) -> Result<f64> {
    let (n, m) = k.shape();
    if n != m {
        return Err(Error::Shape(format!(
            "alignment needs a square kernel, got {n} x {m}"
        )));
    }
    if y.len() != n {
        return Err(Error::Shape(format!(
            "{} targets for a {n} x {n} kernel",
            y.len()
        )));
    }
    if n == 0 {
        return Err(Error::Empty("empty kernel".into()));
    }
    // <H K H, H y y^T H> = yc^T K yc with yc = H y, and ||Yc||_F = ||yc||^2.
    let mean = y.iter().sum::<f64>() / n as f64;
    let yc: Vec<f64> = y.iter().map(|v| v - mean).collect();
    let mut row_means = vec![0.0; n];
    let mut total = 0.0;
    for (i, rm) in row_means.iter_mut().enumerate() {
        *rm = k.row(i).iter().map(|v| v.to_f64()).sum::<f64>() / n as f64;
        total += *rm;
    }
    let grand = total / n as f64;
    let mut num = 0.0;
    let mut kc_norm2 = 0.0;
    for i in 0..n {
        let row = k.row(i);
        let mut acc = 0.0;
        for j in 0..n {
            let kc = row[j].to_f64() - row_means[i] - row_means[j] + grand;
            acc += kc * yc[j];
            kc_norm2 += kc * kc;
        }
        num += yc[i] * acc;
    }
    let y_norm2: f64 = yc.iter().map(|v| v * v).sum();
    if kc_norm2 <= 0.0 || y_norm2 <= 0.0 {
        return Ok(0.0);
    }
    Ok(num / (kc_norm2.sqrt() * y_norm2))
}
