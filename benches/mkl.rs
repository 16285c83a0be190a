//! Criterion benches of the p-norm MKL solver on the shapes: one rbf kernel, n = 5000
//! (the plain SVM, p = inf), and M = 10 rbf kernels, n = 5000, p = 2, eps 1e-4; plus p = 1 on
//! M = 10, n = 2000. The problems are `mmfuse bench mkl`'s synthetic ones (two overlapping
//! Gaussian classes in 10-D). Run: `cargo bench --bench mkl`. (`mmfuse bench mkl --json` and
//! `benches/peers/mkl_peers.py` give the same figures against scikit-learn in one run.)

use criterion::{criterion_group, criterion_main, Criterion};
use mmfuse::mkl::synthetic_problem;
use mmfuse::mkl::{fit, MklOptions};
use mmfuse::Matrix;
use std::hint::black_box;

fn bench_case(c: &mut Criterion, name: &str, n: usize, m: usize, p: f64) {
    let (kernels, y) = synthetic_problem(n, m, 42).expect("problem");
    let refs: Vec<&Matrix<f64>> = kernels.iter().collect();
    let opts = MklOptions {
        p,
        ..MklOptions::default()
    };
    let mut group = c.benchmark_group("mkl");
    group.sample_size(10);
    group.bench_function(name, |b| {
        b.iter(|| black_box(fit(&refs, &y, &opts).expect("fit")))
    });
    group.finish();
}

fn benches(c: &mut Criterion) {
    bench_case(c, "svm_1_kernel_n5000", 5000, 1, f64::INFINITY);
    bench_case(c, "p2_10_kernels_n5000", 5000, 10, 2.0);
    bench_case(c, "p1_10_kernels_n2000", 2000, 10, 1.0);
}

criterion_group!(mkl, benches);
criterion_main!(mkl);
