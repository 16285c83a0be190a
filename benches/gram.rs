//! Criterion benches of Gram assembly: every kernel at the reference shape (n = 4096, d = 300)
//! in f32 and f64, the memory-bound shape (n = 8192, d = 64), and on the same shapes faer's
//! full GEMM X X^T and the limit for a symmetric result, half a GEMM (`triangular::matmul`,
//! upper triangle). faer writes into an output allocated and touched once, outside the timed
//! loop, and reused (a fresh `Mat::zeros` per iteration would time a single-threaded fill).
//! Run: `cargo bench --bench gram`. (`mmfuse bench gram` prints the same comparison as one
//! line / JSON, with the instruction set.)

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use faer::linalg::matmul::matmul;
use faer::linalg::matmul::triangular::{self, BlockStructure};
use faer::{Accum, Mat, Par};
use mmfuse::gram::{gram, GramOptions, Kernel};
use mmfuse::util::SplitMix64;
use mmfuse::{Matrix, Real};
use std::hint::black_box;

fn data<T: Real>(n: usize, d: usize) -> Matrix<T> {
    let mut rng = SplitMix64::new(7);
    Matrix::from_vec(
        n,
        d,
        (0..n * d)
            .map(|_| T::from_f64(rng.next_f64() * 2.0 - 1.0))
            .collect(),
    )
    .expect("shape")
}

fn bench_shape<T: Real>(c: &mut Criterion, n: usize, d: usize, kernels: &[&str]) {
    let x = data::<T>(n, d);
    let mut group = c.benchmark_group(format!("gram_{}_n{n}_d{d}", T::DTYPE_SHORT));
    group.sample_size(10);
    group.throughput(Throughput::Elements((n * n * d) as u64));
    let opts = GramOptions::default();
    for name in kernels {
        let kernel: Kernel = name.parse().expect("kernel");
        group.bench_with_input(BenchmarkId::new("mmfuse", name), &kernel, |b, k| {
            b.iter(|| black_box(gram(x.as_mat_ref(), k, &opts).expect("gram")))
        });
    }
    let mut out = Mat::<T>::zeros(n, n);
    group.bench_function("faer_full_gemm", |b| {
        b.iter(|| {
            matmul(
                out.as_mut(),
                Accum::Replace,
                x.as_mat_ref(),
                x.as_mat_ref().transpose(),
                T::ONE,
                Par::rayon(0),
            );
            black_box(&out);
        })
    });
    group.bench_function("faer_half_gemm", |b| {
        b.iter(|| {
            triangular::matmul(
                out.as_mut(),
                BlockStructure::TriangularUpper,
                Accum::Replace,
                x.as_mat_ref(),
                BlockStructure::Rectangular,
                x.as_mat_ref().transpose(),
                BlockStructure::Rectangular,
                T::ONE,
                Par::rayon(0),
            );
            black_box(&out);
        })
    });
    group.finish();
}

/// The latency of a small call with `threads: Some(2)`: today's shared pool (built once per
/// thread count, `mmfuse::threads`) against what every such call paid before, a pool built and
/// dropped per call (emulated here: build a pool, run the same call on it).
fn small_call(c: &mut Criterion) {
    let x = data::<f64>(64, 16);
    let kernel = Kernel::rbf(0.1);
    let mut group = c.benchmark_group("gram_small_n64_d16_threads2");
    let opts = GramOptions::with_threads(2);
    group.bench_function("shared_pool", |b| {
        b.iter(|| black_box(gram(x.as_mat_ref(), &kernel, &opts).expect("gram")))
    });
    group.bench_function("pool_per_call", |b| {
        b.iter(|| {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(2)
                .build()
                .expect("pool");
            let inner = GramOptions::default();
            black_box(pool.install(|| gram(x.as_mat_ref(), &kernel, &inner).expect("gram")))
        })
    });
    group.finish();
}

fn gram_benches(c: &mut Criterion) {
    let all = ["linear", "poly", "rbf", "laplacian", "sigmoid", "cosine"];
    bench_shape::<f32>(c, 4096, 300, &all);
    bench_shape::<f64>(c, 4096, 300, &["linear", "rbf", "laplacian"]);
    bench_shape::<f32>(c, 8192, 64, &["rbf"]);
}

criterion_group!(benches, small_call, gram_benches);
criterion_main!(benches);
