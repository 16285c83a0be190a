//! `mmfuse bench mkl`: the MKL fit time on synthetic or given kernels.

use super::bench::BenchMklArgs;
use mmfuse::error::{Error, Result};
use mmfuse::io::{read_matrix, read_npy};
use mmfuse::matrix::Matrix;
use mmfuse::mkl::parse_p;
use mmfuse::mkl::{fit, Loss, MklOptions};
use std::time::Instant;

pub(crate) fn run(a: &BenchMklArgs) -> Result<()> {
    let p = parse_p(&a.p)?;
    if a.runs == 0 {
        return Err(Error::param("runs", "must be >= 1"));
    }
    let (kernels, y) = if a.kernels.is_empty() {
        mmfuse::mkl::synthetic_problem(a.n, a.num_kernels.max(1), a.seed)?
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
