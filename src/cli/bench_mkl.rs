//! `mmfuse bench mkl`: the MKL fit time on synthetic or given kernels.

use super::bench::BenchMklArgs;
use super::mkl::parse_p;
use crate::error::{Error, Result};
use crate::gram::{gram, GramOptions, Kernel, Normalization, TrainStats};
use crate::io::{read_matrix, read_npy};
use crate::matrix::Matrix;
use crate::mkl::{fit, Loss, MklOptions};
use crate::util::SplitMix64;
use std::time::Instant;

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

pub(crate) fn run(a: &BenchMklArgs) -> Result<()> {
    let p = parse_p(&a.p)?;
    if a.runs == 0 {
        return Err(Error::param("runs", "must be >= 1"));
    }
    let (kernels, y) = if a.kernels.is_empty() {
        synthetic_problem(a.n, a.num_kernels.max(1), a.seed)?
    } else {
        let labels = a
            .labels
            .as_ref()
            .ok_or_else(|| Error::param("labels", "--kernel needs --labels"))?;
        let ks = a
            .kernels
            .iter()
            .map(read_matrix::<f64>)
            .collect::<Result<Vec<_>>>()?;
        let raw = read_npy(labels)?.into_vec_f64("labels")?;
        let mut classes = raw.clone();
        classes.sort_by(|a, b| a.total_cmp(b));
        classes.dedup();
        if classes.len() != 2 {
            return Err(Error::param(
                "labels",
                "bench mkl needs exactly two classes",
            ));
        }
        let y = raw
            .iter()
            .map(|&v| if v == classes[1] { 1.0 } else { -1.0 })
            .collect();
        (ks, y)
    };
    let refs: Vec<&Matrix<f64>> = kernels.iter().collect();
    let opts = MklOptions {
        p,
        c: a.c,
        loss: Loss::Hinge,
        eps: a.eps,
        tol: a.tol,
        ..MklOptions::default()
    };
    let mut last = fit(&refs, &y, &opts)?; // warm-up
    let mut times = Vec::new();
    for _ in 0..a.runs {
        let t = Instant::now();
        last = fit(&refs, &y, &opts)?;
        times.push(t.elapsed().as_secs_f64());
    }
    times.sort_by(|a, b| a.total_cmp(b));
    let seconds = times[times.len() / 2];
    let out = serde_json::json!({
        "bench": "mkl", "n": y.len(), "kernels": refs.len(), "p": if p.is_finite() { serde_json::json!(p) } else { serde_json::json!("inf") },
        "c": a.c, "eps": a.eps, "tol": a.tol, "threads": rayon::current_num_threads(),
        "seconds": seconds, "dual": last.dual, "primal": last.primal, "gap": last.gap,
        "iterations": last.iterations, "smo_iterations": last.smo_iterations,
        "n_support": last.n_support, "converged": last.converged, "beta": last.beta,
    });
    if a.json {
        println!("{out}");
    } else {
        println!(
            "mkl n={} M={} p={}: {:.4} s, {} outer / {} SMO iterations, dual {:.6}, gap {:.2e}, {} SVs",
            y.len(), refs.len(), a.p, seconds, last.iterations, last.smo_iterations, last.dual, last.gap, last.n_support
        );
    }
    Ok(())
}
