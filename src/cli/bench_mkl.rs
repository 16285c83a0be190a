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
    if a.from_data {
        return run_from_data(a, p);
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

/// Two overlapping Gaussian classes per modality (alternating labels; means +-0.15 per
/// coordinate, unit noise), from a splitmix64 stream and Box-Muller: reproducible anywhere.
pub(crate) fn synthetic_modalities(
    n: usize,
    dims: &[usize],
    seed: u64,
) -> Result<(Vec<Matrix<f64>>, Vec<f64>)> {
    let y: Vec<f64> = (0..n)
        .map(|i| if i % 2 == 0 { 1.0 } else { -1.0 })
        .collect();
    let mut state = seed;
    let mut uniform = move || {
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        ((z >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    };
    let xs = dims
        .iter()
        .map(|&d| {
            let v = (0..n * d)
                .map(|k| {
                    let (u1, u2) = (uniform(), uniform());
                    let g = (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos();
                    g + 0.15 * y[k / d]
                })
                .collect();
            Matrix::from_vec(n, d, v)
        })
        .collect::<Result<Vec<_>>>()?;
    Ok((xs, y))
}

/// Peak resident memory of this process (Linux `VmHWM`), bytes; 0 where unknown.
pub(crate) fn peak_rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        })
        .map_or(0, |kb| kb * 1024)
}

fn run_from_data(a: &BenchMklArgs, p: f64) -> Result<()> {
    use mmfuse::blocks::BlockSpec;
    use mmfuse::gram::{Kernel, Normalization};
    use mmfuse::mkl::{fit_from_data, DataModality, RowOptions, RowPrecision};
    let dims = a
        .dims
        .split(',')
        .map(|t| {
            t.trim()
                .parse::<usize>()
                .ok()
                .filter(|&d| d > 0)
                .ok_or_else(|| Error::param("dims", format!("`{t}` is not a positive integer")))
        })
        .collect::<Result<Vec<_>>>()?;
    let spec: BlockSpec = a.interactions.parse()?;
    let (xs, y) = synthetic_modalities(a.n, &dims, a.seed)?;
    let names: Vec<String> = (0..dims.len()).map(|m| format!("m{m}")).collect();
    let views: Vec<DataModality<'_>> = xs
        .iter()
        .zip(&names)
        .map(|(x, name)| DataModality {
            name,
            data: x.as_mat_ref(),
            kernel: Kernel::Rbf { gamma: None },
        })
        .collect();
    let rows = RowOptions {
        cache_bytes: a
            .cache
            .as_deref()
            .map(mmfuse::limits::parse_bytes)
            .transpose()?,
        precision: match a.row_precision.as_str() {
            "f32" => RowPrecision::F32,
            "f64" => RowPrecision::F64,
            other => {
                return Err(Error::param(
                    "row_precision",
                    format!("f32 or f64, got `{other}`"),
                ))
            }
        },
        ..RowOptions::default()
    };
    let norm = if spec == BlockSpec::None {
        Normalization::Trace
    } else {
        Normalization::None
    };
    let opts = MklOptions {
        p,
        c: a.c,
        loss: Loss::Hinge,
        eps: a.eps,
        tol: a.tol,
        ..MklOptions::default()
    };
    let mut times = Vec::new();
    let mut last = None;
    for _ in 0..a.runs {
        let t = Instant::now();
        last = Some(fit_from_data(
            &views,
            norm,
            &spec,
            &y,
            &opts,
            &rows,
            &mut |_| {},
        )?);
        times.push(t.elapsed().as_secs_f64());
    }
    let (model, stats) = last.ok_or_else(|| Error::param("runs", "must be >= 1"))?;
    times.sort_by(|a, b| a.total_cmp(b));
    let seconds = times[times.len() / 2];
    let f = &model.fits[0];
    let c = &stats.solver.cache;
    let out = serde_json::json!({
        "bench": "mkl", "from_data": true, "n": a.n, "dims": dims, "interactions": a.interactions,
        "blocks": model.kernel_names(), "isa": mmfuse_kernels::isa_name(mmfuse_kernels::arch()),
        "p": if p.is_finite() { serde_json::json!(p) } else { serde_json::json!("inf") },
        "c": a.c, "eps": a.eps, "tol": a.tol, "threads": rayon::current_num_threads(),
        "seconds": seconds, "seconds_min": times[0], "seconds_max": times[times.len() - 1],
        "dual": f.dual, "primal": f.primal, "gap": f.gap, "converged": f.converged,
        "iterations": f.iterations, "smo_iterations": f.smo_iterations, "n_support": f.n_support,
        "beta": f.beta, "cache_bytes": stats.cache_bytes, "precision": stats.precision,
        "cache_hits": c.hits, "cache_misses": c.misses, "cache_hit_rate": c.hit_rate(),
        "cache_evictions": c.evictions, "shrinks": stats.solver.shrinks,
        "reconstructions": stats.solver.reconstructions, "min_active": stats.solver.min_active,
        "peak_rss_bytes": peak_rss_bytes(),
    });
    if a.json {
        println!("{out}");
    } else {
        println!(
            "mkl from data n={} dims={:?} blocks={}: {:.3} s, {} outer / {} SMO iterations, dual {:.6}, gap {:.2e}, {} SVs, cache hit rate {:.3}, peak RSS {:.0} MB",
            a.n, dims, model.kernel_names().len(), seconds, f.iterations, f.smo_iterations, f.dual, f.gap, f.n_support, c.hit_rate(), peak_rss_bytes() as f64 / 1e6
        );
    }
    Ok(())
}
