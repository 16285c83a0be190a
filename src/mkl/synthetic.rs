//! A synthetic MKL problem for benchmarks and examples: the same kernels from the same seed on
//! every machine, so that the CLI bench, the criterion bench and the peer scripts time one task.

use crate::error::Result;
use crate::gram::{gram, GramOptions, Kernel, Normalization, TrainStats};
use crate::matrix::Matrix;
use crate::util::SplitMix64;

/// Two overlapping Gaussian classes in 10 dimensions (means +-0.5 on every axis, unit noise),
/// labels alternating, and `m` trace-normalised rbf kernels with gamma spread over two decades
/// around 1/d.
pub fn synthetic_problem(n: usize, m: usize, seed: u64) -> Result<(Vec<Matrix<f64>>, Vec<f64>)> {
    let d = 10;
    let mut rng = SplitMix64::new(seed);
    let y: Vec<f64> = (0..n)
        .map(|i| if i % 2 == 0 { 1.0 } else { -1.0 })
        .collect();
    let mut data = Vec::with_capacity(n * d);
    for yi in &y {
        for _ in 0..d {
            let u1 = rng.next_f64().max(f64::MIN_POSITIVE);
            let u2 = rng.next_f64();
            let z = (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos();
            data.push(0.5 * yi + z);
        }
    }
    let x = Matrix::from_vec(n, d, data)?;
    let kernels = (0..m)
        .map(|k| {
            let spread = if m == 1 {
                0.0
            } else {
                k as f64 / (m - 1) as f64 * 2.0 - 1.0
            };
            let gamma = 10f64.powf(spread) / d as f64;
            let mut km = gram(x.as_mat_ref(), &Kernel::rbf(gamma), &GramOptions::default())?;
            TrainStats::from_gram(&km, Normalization::Trace)?.apply_train(&mut km)?;
            Ok(km)
        })
        .collect::<Result<Vec<_>>>()?;
    Ok((kernels, y))
}
