//! Criterion benches of Gram assembly: every kernel at the reference shape
//! (n = 4096, d = 300) in f32 and f64, the memory-bound shape (n = 8192, d = 64), and faer's plain
//! full GEMM X X^T on the same shapes for the ratio. Run: `cargo bench --bench gram`.
//! (`mmfuse bench gram` prints the same comparison as one line / JSON.)

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use faer::linalg::matmul::matmul;
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
    group.bench_function("faer_full_gemm", |b| {
        b.iter(|| {
            let mut out = Mat::<T>::zeros(n, n);
            matmul(
                out.as_mut(),
                Accum::Replace,
                x.as_mat_ref(),
                x.as_mat_ref().transpose(),
                T::ONE,
                Par::rayon(0),
            );
            black_box(out)
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

criterion_group!(benches, gram_benches);
criterion_main!(benches);
