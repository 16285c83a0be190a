//! `mmfuse bench lmf`: LMF throughput on random data, forward (inference, pre-scaled model) or
//! training (forward + backward + one Adam step per batch), with faer's GEMMs of the same
//! shapes timed alone in the same run for scale (GFLOP/s count 2 N sum(d_m) r h for the
//! forward pass, twice that for a training step).

use clap::Args;
use faer::linalg::matmul::matmul;
use faer::{Accum, Mat, Par};
use mmfuse::blocks::BlockSpec;
use mmfuse::error::{Error, Result};
use mmfuse::lmf::blockwise::{BlockLmf, BlockOptimizer, ModalityStats, Optimizer};
use mmfuse::lmf::{Adam, LmfModel, LmfOptions, Loss, TrainOptions};
use mmfuse::matrix::Matrix;
use mmfuse::util::SplitMix64;
use std::time::Instant;

/// `mmfuse bench lmf`.
#[derive(Debug, Clone, Args)]
pub struct BenchLmfArgs {
    /// Samples per batch.
    #[arg(long, default_value_t = 4096)]
    pub batch: usize,
    /// Rank r.
    #[arg(long, default_value_t = 4)]
    pub rank: usize,
    /// Output size h.
    #[arg(long, default_value_t = 1)]
    pub out_dim: usize,
    /// Feature counts of the modalities, comma-separated.
    #[arg(long, default_value = "128,64,300")]
    pub dims: String,
    /// Time a training step (forward, MSE loss, backward, Adam) instead of the forward pass.
    #[arg(long)]
    pub train: bool,
    /// Worker threads (default: all cores).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Timed runs (median), after one warm-up.
    #[arg(long, default_value_t = 10)]
    pub runs: usize,
    /// Seed of the data and of the initialisation.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// One JSON object on stdout.
    #[arg(long)]
    pub json: bool,
    /// Blocks of a block LMF model (`pairs`, `all`, `a*b,...` over the modalities m0, m1, ...);
    /// `none` (the default) benchmarks plain LMF. With blocks, `--train` times one step of
    /// the block model on inputs normalised once before timing (forward, loss, backward, the
    /// penalty's gradient, one Adam update), as benches/peers/block_lmf_peers.py does in
    /// PyTorch.
    #[arg(long, default_value = "none")]
    pub blocks: String,
    /// The block model's relevance exponent p.
    #[arg(long, default_value = "1")]
    pub relevance_p: String,
    /// The block model's penalty weight lambda.
    #[arg(long, default_value_t = 0.01)]
    pub reg: f64,
}

fn parse_dims(s: &str) -> Result<Vec<usize>> {
    s.split(',')
        .map(|t| {
            t.trim()
                .parse::<usize>()
                .ok()
                .filter(|&d| d > 0)
                .ok_or_else(|| Error::param("dims", format!("`{t}` is not a feature count >= 1")))
        })
        .collect()
}

pub(crate) fn run(a: &BenchLmfArgs) -> Result<()> {
    let spec: BlockSpec = a.blocks.parse()?;
    if spec != BlockSpec::None {
        return run_blocks(a, &spec);
    }
    let dims = parse_dims(&a.dims)?;
    if a.batch == 0 || a.runs == 0 {
        return Err(Error::param("batch", "--batch and --runs must be >= 1"));
    }
    let names: Vec<String> = (0..dims.len()).map(|m| format!("m{m}")).collect();
    let spec: Vec<(&str, usize)> = names
        .iter()
        .map(|n| n.as_str())
        .zip(dims.iter().copied())
        .collect();
    let mut model = LmfModel::<f32>::new(&spec, a.rank, a.out_dim, a.seed)?;
    let mut rng = SplitMix64::new(a.seed ^ 0x5eed);
    let mut draw = |rows: usize, cols: usize| {
        Matrix::from_vec(
            rows,
            cols,
            (0..rows * cols)
                .map(|_| rng.next_f64() as f32 - 0.5)
                .collect(),
        )
    };
    let inputs: Vec<Matrix<f32>> = dims
        .iter()
        .map(|&d| draw(a.batch, d))
        .collect::<Result<_>>()?;
    let target = draw(a.batch, a.out_dim)?;
    let views: Vec<_> = inputs.iter().map(|x| x.as_mat_ref()).collect();
    if a.threads == Some(0) {
        return Err(Error::param("threads", "must be >= 1"));
    }
    // The process-wide pool of that size, so that thread start-up is not timed.
    let pool = mmfuse::threads::pool(a.threads.unwrap_or_else(rayon::current_num_threads))?;
    let threads = pool.current_num_threads();
    let exec = LmfOptions::default();
    let mut times = Vec::with_capacity(a.runs);
    pool.install(|| -> Result<()> {
        if a.train {
            let mut adam = Adam::new(&model, TrainOptions::default().adam())?;
            for run in 0..=a.runs {
                let t = Instant::now();
                let (_, grads) =
                    model.loss_and_gradients(&views, target.as_mat_ref(), Loss::Mse, &exec)?;
                adam.step(&mut model, &grads)?;
                if run > 0 {
                    times.push(t.elapsed().as_secs_f64());
                }
            }
        } else {
            let fast = model.prescale();
            for run in 0..=a.runs {
                let t = Instant::now();
                std::hint::black_box(fast.forward(&views, &exec)?);
                if run > 0 {
                    times.push(t.elapsed().as_secs_f64());
                }
            }
        }
        Ok(())
    })?;
    times.sort_by(|x, y| x.total_cmp(y));
    let seconds = times[times.len() / 2];
    // The same GEMMs alone (X_m times an r h-column factor, per modality), on the same pool:
    // the forward pass cannot beat them, and should get close.
    let rh = a.rank * a.out_dim;
    let factors: Vec<Mat<f32>> = dims
        .iter()
        .map(|&d| Mat::from_fn(d, rh, |i, j| ((i * 7 + j * 3) % 11) as f32 * 0.01))
        .collect();
    let mut outs: Vec<Mat<f32>> = dims.iter().map(|_| Mat::zeros(a.batch, rh)).collect();
    let par = Par::rayon(threads);
    let mut gemm_times = Vec::with_capacity(a.runs);
    pool.install(|| {
        for run in 0..=a.runs {
            let t = Instant::now();
            for ((x, w), out) in views.iter().zip(&factors).zip(outs.iter_mut()) {
                matmul(out.as_mut(), Accum::Replace, *x, w.as_ref(), 1.0f32, par);
            }
            if run > 0 {
                gemm_times.push(t.elapsed().as_secs_f64());
            }
        }
    });
    gemm_times.sort_by(|x, y| x.total_cmp(y));
    let gemm_seconds = gemm_times[gemm_times.len() / 2];
    let flops = 2.0 * a.batch as f64 * dims.iter().sum::<usize>() as f64 * rh as f64;
    // Training does the forward GEMMs, then one more of the same size per modality (dW: the
    // step needs no input gradients, so no dX GEMM).
    let flops = if a.train { 2.0 * flops } else { flops };
    let gflops = flops / seconds.max(1e-12) / 1e9;
    let gemm_gflops = 2.0 * a.batch as f64 * dims.iter().sum::<usize>() as f64 * rh as f64
        / gemm_seconds.max(1e-12)
        / 1e9;
    let sps = a.batch as f64 / seconds.max(1e-12);
    let mode = if a.train { "train" } else { "forward" };
    if a.json {
        println!(
            "{}",
            serde_json::json!({
                "bench": "lmf", "mode": mode, "batch": a.batch, "rank": a.rank,
                "out_dim": a.out_dim, "dims": dims, "threads": threads,
                "seconds_per_batch": seconds, "samples_per_second": sps,
                "gflops": gflops, "gemm_seconds": gemm_seconds, "gemm_gflops": gemm_gflops,
                "fraction_of_gemm_gflops": gflops / gemm_gflops,
            })
        );
    } else {
        println!(
            "lmf {mode} batch={} rank={} out_dim={} dims={:?} threads={threads}: {seconds:.6} s per batch, {sps:.0} samples/s, {gflops:.1} GFLOP/s | faer GEMMs alone {gemm_gflops:.1} GFLOP/s ({:.0}%)",
            a.batch, a.rank, a.out_dim, dims, 100.0 * gflops / gemm_gflops
        );
    }
    Ok(())
}

/// `bench lmf --blocks SPEC`: the block model's forward pass or training step.
fn run_blocks(a: &BenchLmfArgs, spec: &BlockSpec) -> Result<()> {
    let dims = parse_dims(&a.dims)?;
    if a.batch == 0 || a.runs == 0 {
        return Err(Error::param("batch", "--batch and --runs must be >= 1"));
    }
    if a.threads == Some(0) {
        return Err(Error::param("threads", "must be >= 1"));
    }
    let p = mmfuse::mkl::parse_p(&a.relevance_p)?;
    let names: Vec<String> = (0..dims.len()).map(|m| format!("m{m}")).collect();
    let modalities: Vec<(&str, usize)> = names
        .iter()
        .map(|n| n.as_str())
        .zip(dims.iter().copied())
        .collect();
    let mut model = BlockLmf::<f32>::new(&modalities, spec, a.rank, a.out_dim, p, a.seed)?;
    let mut rng = SplitMix64::new(a.seed ^ 0x5eed);
    let mut draw = |rows: usize, cols: usize| {
        Matrix::from_vec(
            rows,
            cols,
            (0..rows * cols)
                .map(|_| rng.next_f64() as f32 - 0.5)
                .collect(),
        )
    };
    let raw: Vec<Matrix<f32>> = dims
        .iter()
        .map(|&d| draw(a.batch, d))
        .collect::<Result<_>>()?;
    let target = draw(a.batch, a.out_dim)?;
    // Statistics of the batch itself, applied once: the step runs on normalised inputs.
    let stats = raw
        .iter()
        .map(|x| {
            let (n, d) = x.shape();
            let mean: Vec<f64> = (0..d)
                .map(|j| (0..n).map(|i| x.get(i, j) as f64).sum::<f64>() / n as f64)
                .collect();
            let ss: f64 = (0..n)
                .flat_map(|i| (0..d).map(move |j| (i, j)))
                .map(|(i, j)| (x.get(i, j) as f64 - mean[j]).powi(2))
                .sum();
            ModalityStats {
                mean: mean.iter().map(|&v| v as f32).collect(),
                scale: ((ss / n as f64).sqrt() as f32).max(f32::MIN_POSITIVE),
            }
        })
        .collect();
    model.set_stats(stats)?;
    let raw_views: Vec<_> = raw.iter().map(|x| x.as_mat_ref()).collect();
    let inputs = model.normalize(&raw_views)?;
    let views: Vec<_> = inputs.iter().map(|x| x.as_mat_ref()).collect();
    let pool = mmfuse::threads::pool(a.threads.unwrap_or_else(rayon::current_num_threads))?;
    let threads = pool.current_num_threads();
    let exec = LmfOptions::default();
    let mut times = Vec::with_capacity(a.runs);
    pool.install(|| -> Result<()> {
        if a.train {
            let mut opt = BlockOptimizer::new(&model, Optimizer::default(), 1e-3, 0.0)?;
            for run in 0..=a.runs {
                let t = Instant::now();
                model.step_normalized(
                    &mut opt,
                    &views,
                    target.as_mat_ref(),
                    Loss::Mse,
                    a.reg,
                    &exec,
                )?;
                if run > 0 {
                    times.push(t.elapsed().as_secs_f64());
                }
            }
        } else {
            for run in 0..=a.runs {
                let t = Instant::now();
                std::hint::black_box(model.forward(&raw_views, &exec)?);
                if run > 0 {
                    times.push(t.elapsed().as_secs_f64());
                }
            }
        }
        Ok(())
    })?;
    times.sort_by(|x, y| x.total_cmp(y));
    let seconds = times[times.len() / 2];
    // GEMM flops: per modality 2 N d_m C_m (projections), twice that for a training step.
    let cols: Vec<usize> = model
        .dims()
        .iter()
        .enumerate()
        .map(|(m, _)| {
            model
                .blocks()
                .iter()
                .filter(|b| b.members.contains(&m))
                .map(|b| {
                    if b.is_interaction() {
                        a.rank * a.out_dim
                    } else {
                        a.out_dim
                    }
                })
                .sum()
        })
        .collect();
    let flops: f64 = dims
        .iter()
        .zip(&cols)
        .map(|(&d, &c)| 2.0 * a.batch as f64 * d as f64 * c as f64)
        .sum::<f64>()
        * if a.train { 2.0 } else { 1.0 };
    // The same GEMMs alone, on the same pool.
    let factors: Vec<Mat<f32>> = dims
        .iter()
        .zip(&cols)
        .map(|(&d, &c)| Mat::from_fn(d, c, |i, j| ((i * 7 + j * 3) % 11) as f32 * 0.01))
        .collect();
    let mut outs: Vec<Mat<f32>> = cols.iter().map(|&c| Mat::zeros(a.batch, c)).collect();
    let par = Par::rayon(threads);
    let mut gemm_times = Vec::with_capacity(a.runs);
    pool.install(|| {
        for run in 0..=a.runs {
            let t = Instant::now();
            for ((x, w), out) in views.iter().zip(&factors).zip(outs.iter_mut()) {
                matmul(out.as_mut(), Accum::Replace, *x, w.as_ref(), 1.0f32, par);
            }
            if run > 0 {
                gemm_times.push(t.elapsed().as_secs_f64());
            }
        }
    });
    gemm_times.sort_by(|x, y| x.total_cmp(y));
    let gemm_seconds = gemm_times[gemm_times.len() / 2];
    let gemm_flops: f64 = dims
        .iter()
        .zip(&cols)
        .map(|(&d, &c)| 2.0 * a.batch as f64 * d as f64 * c as f64)
        .sum();
    let gflops = flops / seconds.max(1e-12) / 1e9;
    let gemm_gflops = gemm_flops / gemm_seconds.max(1e-12) / 1e9;
    let sps = a.batch as f64 / seconds.max(1e-12);
    let mode = if a.train { "train" } else { "forward" };
    if a.json {
        println!(
            "{}",
            serde_json::json!({
                "bench": "lmf", "mode": mode, "blocks": spec.to_string(),
                "block_names": model.block_names(), "batch": a.batch, "rank": a.rank,
                "out_dim": a.out_dim, "dims": dims, "threads": threads, "p": a.relevance_p,
                "reg": a.reg, "seconds_per_batch": seconds, "samples_per_second": sps,
                "seconds_min": times[0], "seconds_max": times[times.len() - 1],
                "gflops": gflops, "gemm_seconds": gemm_seconds, "gemm_gflops": gemm_gflops,
                "fraction_of_gemm_gflops": gflops / gemm_gflops,
                "isa": mmfuse_kernels::isa_name(mmfuse_kernels::arch()),
            })
        );
    } else {
        println!(
            "block lmf {mode} blocks={spec} batch={} rank={} out_dim={} dims={:?} threads={threads}: {seconds:.6} s per batch, {sps:.0} samples/s, {gflops:.1} GFLOP/s | faer GEMMs alone {gemm_gflops:.1} GFLOP/s",
            a.batch, a.rank, a.out_dim, dims
        );
    }
    Ok(())
}
