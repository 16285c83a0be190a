//! `mmfuse bench gram`: our assembly against faer's GEMMs on the same shape, in the same run.
//!
//! The baselines are fair to faer: each writes into an output allocated and touched *before*
//! the timer starts and reused by every repetition (a fresh `Mat::zeros` is a single-threaded
//! fill of n x n values, which would inflate every ratio taken against it), after a warm-up
//! run. Two baselines: the full product X Y^T (`gemm_seconds`), and for a symmetric K(X, X)
//! the limit, half a GEMM: faer's `triangular::matmul` writing the upper triangle of X X^T
//! (`half_gemm_seconds`; `fraction_of_limit = half_gemm_seconds / into_seconds`, our
//! `gram_into` into a reused output on the same terms). For a cross
//! kernel the limit is the full GEMM. A caller of the allocating `gram` pays for first touching
//! a fresh K as well (the kernel zeroes every page it maps); on equal terms with it is the same
//! half GEMM into a fresh output from the allocator `gram` uses, allocation included
//! (`fresh_half_gemm_seconds`; `fraction_of_limit_allocating`: above 1, our fresh K is
//! written faster than faer's product alone into a fresh output). All sides alternate
//! within each round, so they see the same machine state; medians and ranges are reported.

use super::gram::Dtype;
use clap::{Args, Subcommand};
use faer::linalg::matmul::matmul;
use faer::linalg::matmul::triangular::{self, BlockStructure};
use faer::{Accum, Mat, MatMut, Par};
use mmfuse::error::{Error, Result};
use mmfuse::gram::{cross_gram, gram, gram_into, GramOptions, Kernel};
use mmfuse::matrix::Matrix;
use mmfuse::scalar::Real;
use mmfuse::util::SplitMix64;
use std::time::Instant;

/// `mmfuse bench ...`.
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// What to time.
    #[command(subcommand)]
    pub what: BenchWhat,
}

/// Benchmarks.
#[derive(Debug, Subcommand)]
pub enum BenchWhat {
    /// Gram assembly vs faer's full GEMM X X^T on random data.
    Gram(BenchGramArgs),
    /// p-norm MKL fit time on synthetic (or given) kernels.
    Mkl(BenchMklArgs),
    /// LMF forward (or training step) throughput on random data.
    Lmf(super::bench_lmf::BenchLmfArgs),
}

/// `mmfuse bench mkl`.
#[derive(Debug, Clone, Args)]
pub struct BenchMklArgs {
    /// Precomputed training kernels (repeat); default: synthetic rbf kernels.
    #[arg(long = "kernel")]
    pub kernels: Vec<std::path::PathBuf>,
    /// Labels for `--kernel` (-1/+1 or any two values).
    #[arg(long)]
    pub labels: Option<std::path::PathBuf>,
    /// Synthetic: number of samples.
    #[arg(long, default_value_t = 5000)]
    pub n: usize,
    /// Synthetic: number of kernels (rbf widths spread over two decades).
    #[arg(long = "num-kernels", default_value_t = 1)]
    pub num_kernels: usize,
    /// Norm p (number or `inf`).
    #[arg(long, default_value = "2")]
    pub p: String,
    /// Cost C.
    #[arg(long, default_value_t = 1.0)]
    pub c: f64,
    /// Relative duality gap.
    #[arg(long, default_value_t = 1e-4)]
    pub eps: f64,
    /// SMO tolerance.
    #[arg(long, default_value_t = 1e-3)]
    pub tol: f64,
    /// Timed runs (median), after one warm-up.
    #[arg(long, default_value_t = 3)]
    pub runs: usize,
    /// Seed of the synthetic data.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// One JSON object instead of text.
    #[arg(long)]
    pub json: bool,
    /// Fit from synthetic data with rows on demand (`fit_from_data`) instead of kernels: one
    /// rbf modality (gamma = 1/d, trace-normalised) per entry of --dims, two overlapping
    /// Gaussian classes (means +-0.15 per coordinate, unit noise). Each run is timed (no
    /// warm-up: a fit this size warms itself up) and the peak RSS is reported.
    #[arg(long)]
    pub from_data: bool,
    /// --from-data: features per modality, comma-separated.
    #[arg(long, default_value = "64")]
    pub dims: String,
    /// --from-data: row cache budget (K/M/G suffixes; default a quarter of the memory cap).
    #[arg(long)]
    pub cache: Option<String>,
    /// --from-data: interaction blocks (none, pairs, all, or a list).
    #[arg(long, default_value = "none")]
    pub interactions: String,
    /// --from-data: f32 (default) or f64 rows.
    #[arg(long, default_value = "f32")]
    pub row_precision: String,
}

/// `mmfuse bench gram`.
#[derive(Debug, Clone, Args)]
pub struct BenchGramArgs {
    /// Time on this data file (.npy/.npz/.csv) instead of random data; sets n and d.
    #[arg(long)]
    pub input: Option<std::path::PathBuf>,
    /// Number of points.
    #[arg(long, default_value_t = 4096)]
    pub n: usize,
    /// Number of features.
    #[arg(long, default_value_t = 300)]
    pub d: usize,
    /// Cross kernel K(X, Y) with Y of M points instead of the symmetric K(X, X).
    #[arg(long)]
    pub m: Option<usize>,
    /// Kernel name or spec (`rbf`, `rbf:gamma=0.01`, ...); gamma defaults to 1/d.
    #[arg(long, default_value = "rbf")]
    pub kernel: String,
    /// Element type.
    #[arg(long, value_enum, default_value = "f32")]
    pub dtype: Dtype,
    /// Worker threads (default: all cores).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Tile size.
    #[arg(long, default_value_t = 256)]
    pub tile: usize,
    /// Timed runs (the median is reported), after one warm-up run.
    #[arg(long, default_value_t = 7)]
    pub runs: usize,
    /// Seed of the random data.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// One JSON object per line instead of text.
    #[arg(long)]
    pub json: bool,
}

/// One measurement.
#[derive(Debug, Clone)]
pub struct GramBenchResult {
    /// Rows of X.
    pub n: usize,
    /// Columns of X.
    pub d: usize,
    /// Rows of Y for a cross kernel.
    pub m: Option<usize>,
    /// Kernel spec.
    pub kernel: String,
    /// "f32" / "f64".
    pub dtype: &'static str,
    /// Threads used.
    pub threads: usize,
    /// Median seconds of our assembly.
    pub seconds: f64,
    /// Effective GFLOP/s: n^2 d (symmetric) or 2 n m d (cross) per second.
    pub gflops: f64,
    /// Fastest and slowest of our runs.
    pub seconds_range: (f64, f64),
    /// Median seconds of faer's full product X X^T (or X Y^T) into a preallocated, touched
    /// output.
    pub gemm_seconds: f64,
    /// GFLOP/s of that product (2 n m d flops).
    pub gemm_gflops: f64,
    /// gemm_seconds / seconds.
    pub ratio_vs_gemm: f64,
    /// Symmetric only: median seconds of faer's `triangular::matmul` writing the upper half of
    /// X X^T into a preallocated, touched output (the limit for a symmetric Gram matrix).
    pub half_gemm_seconds: Option<f64>,
    /// Symmetric only: median seconds of the same triangular product into a fresh output,
    /// allocated (as `gram` allocates K: calloc, huge pages advised) inside the timer: the
    /// baseline on equal terms with a call that allocates its result.
    pub fresh_half_gemm_seconds: Option<f64>,
    /// Symmetric only: median seconds of `gram_into` writing into an output allocated and
    /// touched before the timer and reused, as the faer baselines' outputs are.
    pub into_seconds: Option<f64>,
    /// Fastest and slowest of those runs.
    pub into_seconds_range: Option<(f64, f64)>,
    /// The limit over our time on equal terms: half_gemm_seconds / into_seconds (symmetric),
    /// gemm_seconds / seconds (cross: our allocating `cross_gram`).
    pub fraction_of_limit: f64,
    /// Both sides allocating: fresh_half_gemm_seconds / seconds (cross: gemm_seconds /
    /// seconds). What a caller that does not reuse an output sees.
    pub fraction_of_limit_allocating: f64,
    /// The instruction set the SIMD kernels ran on: "v4" (AVX-512), "v3" (AVX2 + FMA) or
    /// "scalar".
    pub isa: &'static str,
}

impl GramBenchResult {
    /// The JSON line of `--json`.
    pub fn to_json(&self) -> String {
        serde_json::json!({
            "bench": "gram",
            "n": self.n,
            "d": self.d,
            "m": self.m,
            "mode": if self.m.is_some() { "cross" } else { "symmetric" },
            "kernel": self.kernel,
            "dtype": self.dtype,
            "threads": self.threads,
            "seconds": self.seconds,
            "gflops": self.gflops,
            "seconds_min": self.seconds_range.0,
            "seconds_max": self.seconds_range.1,
            "gemm_seconds": self.gemm_seconds,
            "gemm_gflops": self.gemm_gflops,
            "ratio_vs_gemm": self.ratio_vs_gemm,
            "half_gemm_seconds": self.half_gemm_seconds,
            "fresh_half_gemm_seconds": self.fresh_half_gemm_seconds,
            "into_seconds": self.into_seconds,
            "into_seconds_min": self.into_seconds_range.map(|r| r.0),
            "into_seconds_max": self.into_seconds_range.map(|r| r.1),
            "fraction_of_limit": self.fraction_of_limit,
            "fraction_of_limit_allocating": self.fraction_of_limit_allocating,
            "isa": self.isa,
        })
        .to_string()
    }
}

pub(crate) fn run(a: BenchArgs) -> Result<()> {
    match a.what {
        BenchWhat::Mkl(m) => super::bench_mkl::run(&m),
        BenchWhat::Lmf(l) => super::bench_lmf::run(&l),
        BenchWhat::Gram(g) => {
            let r = bench_gram(&g)?;
            if g.json {
                println!("{}", r.to_json());
            } else {
                let half = match (r.half_gemm_seconds, r.fresh_half_gemm_seconds) {
                    (Some(h), Some(f)) => {
                        format!(" | faer half GEMM {h:.4} s (into a fresh output {f:.4} s)")
                    }
                    _ => String::new(),
                };
                let into = match (r.into_seconds, r.into_seconds_range) {
                    (Some(t), Some((lo, hi))) => {
                        format!(" | into a reused output {t:.4} s ({lo:.4}-{hi:.4})")
                    }
                    _ => String::new(),
                };
                println!(
                    "gram {} {} n={} d={}{} threads={} isa={}: {:.4} s ({:.4}-{:.4}), {:.1} GFLOP/s{into} | faer GEMM {:.4} s, {:.1} GFLOP/s{half} | ratio_vs_gemm {:.2} | fraction_of_limit {:.2} (allocating {:.2})",
                    r.kernel,
                    r.dtype,
                    r.n,
                    r.d,
                    r.m.map(|m| format!(" m={m}")).unwrap_or_default(),
                    r.threads,
                    r.isa,
                    r.seconds,
                    r.seconds_range.0,
                    r.seconds_range.1,
                    r.gflops,
                    r.gemm_seconds,
                    r.gemm_gflops,
                    r.ratio_vs_gemm,
                    r.fraction_of_limit,
                    r.fraction_of_limit_allocating
                );
            }
            Ok(())
        }
    }
}

/// Runs one Gram benchmark.
pub fn bench_gram(a: &BenchGramArgs) -> Result<GramBenchResult> {
    if a.n == 0 || a.d == 0 || a.m == Some(0) {
        return Err(Error::Empty("bench needs n, d (and m) >= 1".into()));
    }
    if a.runs == 0 {
        return Err(Error::param("runs", "must be >= 1"));
    }
    let kernel: Kernel = a.kernel.parse()?;
    let opts = GramOptions {
        tile: a.tile,
        threads: a.threads,
    };
    opts.validate()?;
    match a.dtype {
        Dtype::F32 => bench_typed::<f32>(a, &kernel, &opts),
        Dtype::F64 => bench_typed::<f64>(a, &kernel, &opts),
    }
}

/// A `rows x d` matrix of uniform values in [-1, 1).
fn random_matrix<T: Real>(rows: usize, d: usize, rng: &mut SplitMix64) -> Result<Matrix<T>> {
    Matrix::from_vec(
        rows,
        d,
        (0..rows * d)
            .map(|_| T::from_f64(rng.next_f64() * 2.0 - 1.0))
            .collect(),
    )
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn range(v: &[f64]) -> (f64, f64) {
    v.iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &x| {
            (lo.min(x), hi.max(x))
        })
}

fn bench_typed<T: Real>(
    a: &BenchGramArgs,
    kernel: &Kernel,
    opts: &GramOptions,
) -> Result<GramBenchResult> {
    if let Some(path) = &a.input {
        let x: Matrix<T> = mmfuse::io::read_matrix(path)?;
        let a = BenchGramArgs {
            input: None,
            n: x.nrows(),
            d: x.ncols(),
            ..a.clone()
        };
        return bench_on::<T>(&a, kernel, opts, x);
    }
    let mut rng = SplitMix64::new(a.seed);
    let x = random_matrix::<T>(a.n, a.d, &mut rng)?;
    bench_on(a, kernel, opts, x)
}

fn bench_on<T: Real>(
    a: &BenchGramArgs,
    kernel: &Kernel,
    opts: &GramOptions,
    x: Matrix<T>,
) -> Result<GramBenchResult> {
    let mut rng = SplitMix64::new(a.seed ^ 0x5EED);
    let y = match a.m {
        Some(m) => Some(random_matrix(m, a.d, &mut rng)?),
        None => None,
    };
    let cols = y.as_ref().map_or(a.n, |y| y.nrows());
    type Runs = (Vec<f64>, Vec<f64>, Vec<f64>, Vec<f64>, Vec<f64>, usize);
    let (ours, ours_into, gemm, half, fresh, threads) = opts.install(|| -> Result<Runs> {
        let threads = rayon::current_num_threads();
        let inner = GramOptions {
            threads: None,
            ..*opts
        };
        let run_ours = || -> Result<f64> {
            let t = Instant::now();
            let k = match &y {
                None => gram(x.as_mat_ref(), kernel, &inner)?,
                Some(y) => cross_gram(x.as_mat_ref(), y.as_mat_ref(), kernel, &inner)?,
            };
            let s = t.elapsed().as_secs_f64();
            std::hint::black_box(&k);
            Ok(s)
        };
        // gram_into's output, allocated and touched here like the baselines' (symmetric only).
        let mut into_out = vec![T::ZERO; if y.is_none() { a.n * a.n } else { 0 }];
        let mut run_ours_into = || -> Result<Option<f64>> {
            if into_out.is_empty() {
                return Ok(None);
            }
            let t = Instant::now();
            gram_into(x.as_mat_ref(), kernel, &inner, &mut into_out)?;
            let s = t.elapsed().as_secs_f64();
            std::hint::black_box(&into_out);
            Ok(Some(s))
        };
        let rhs = y.as_ref().unwrap_or(&x);
        // Outputs allocated and touched (zero-filled) here, before any timer, and reused.
        let mut full_out = Mat::<T>::zeros(a.n, cols);
        let mut half_out = Mat::<T>::zeros(if y.is_none() { a.n } else { 0 }, cols);
        let mut run_gemm = || -> f64 {
            let t = Instant::now();
            matmul(
                full_out.as_mut(),
                Accum::Replace,
                x.as_mat_ref(),
                rhs.as_mat_ref().transpose(),
                T::ONE,
                Par::rayon(threads),
            );
            let s = t.elapsed().as_secs_f64();
            std::hint::black_box(&full_out);
            s
        };
        let upper_half = |out: MatMut<'_, T>| {
            triangular::matmul(
                out,
                BlockStructure::TriangularUpper,
                Accum::Replace,
                x.as_mat_ref(),
                BlockStructure::Rectangular,
                x.as_mat_ref().transpose(),
                BlockStructure::Rectangular,
                T::ONE,
                Par::rayon(threads),
            )
        };
        let mut run_half = || -> Option<f64> {
            if half_out.nrows() == 0 {
                return None;
            }
            let t = Instant::now();
            upper_half(half_out.as_mut());
            let s = t.elapsed().as_secs_f64();
            std::hint::black_box(&half_out);
            Some(s)
        };
        // Row-major like `gram`'s K, from the same allocation path; dropped after the timer.
        let run_fresh_half = || -> Result<Option<f64>> {
            if y.is_some() {
                return Ok(None);
            }
            let t = Instant::now();
            let mut k = Matrix::<T>::try_zeros(a.n, a.n, "the fresh half GEMM's output")?;
            upper_half(MatMut::from_row_major_slice_mut(k.as_mut_slice(), a.n, a.n));
            let s = t.elapsed().as_secs_f64();
            std::hint::black_box(&k);
            Ok(Some(s))
        };
        // Warm-up of every side (code, page tables, caches).
        run_ours()?;
        run_ours_into()?;
        run_gemm();
        run_half();
        run_fresh_half()?;
        let mut ours = Vec::new();
        let mut ours_into = Vec::new();
        let mut gemm = Vec::new();
        let mut half = Vec::new();
        let mut fresh = Vec::new();
        // Alternate so that all sides see the same machine state (frequency, other load).
        for _ in 0..a.runs {
            ours.push(run_ours()?);
            ours_into.extend(run_ours_into()?);
            gemm.push(run_gemm());
            half.extend(run_half());
            fresh.extend(run_fresh_half()?);
        }
        Ok((ours, ours_into, gemm, half, fresh, threads))
    })??;
    let seconds_range = range(&ours);
    let seconds = median(ours);
    let gemm_seconds = median(gemm);
    let half_gemm_seconds = (!half.is_empty()).then(|| median(half));
    let fresh_half_gemm_seconds = (!fresh.is_empty()).then(|| median(fresh));
    let into_seconds_range = (!ours_into.is_empty()).then(|| range(&ours_into));
    let into_seconds = (!ours_into.is_empty()).then(|| median(ours_into));
    let (n, d) = (a.n as f64, a.d as f64);
    let flops = match a.m {
        None => n * n * d,
        Some(m) => 2.0 * n * m as f64 * d,
    };
    let gemm_flops = 2.0 * n * cols as f64 * d;
    Ok(GramBenchResult {
        n: a.n,
        d: a.d,
        m: a.m,
        kernel: kernel.to_string(),
        dtype: T::DTYPE_SHORT,
        threads,
        seconds,
        seconds_range,
        gflops: flops / seconds / 1e9,
        gemm_seconds,
        gemm_gflops: gemm_flops / gemm_seconds / 1e9,
        ratio_vs_gemm: gemm_seconds / seconds,
        half_gemm_seconds,
        fresh_half_gemm_seconds,
        into_seconds,
        into_seconds_range,
        fraction_of_limit: half_gemm_seconds.unwrap_or(gemm_seconds)
            / into_seconds.unwrap_or(seconds),
        fraction_of_limit_allocating: fresh_half_gemm_seconds.unwrap_or(gemm_seconds) / seconds,
        isa: isa_name(),
    })
}

/// The instruction set the engine's SIMD kernels run on in this process (`MMFUSE_ISA` can force
/// a lower one).
pub fn isa_name() -> &'static str {
    mmfuse_kernels::isa_name(mmfuse_kernels::arch())
}
