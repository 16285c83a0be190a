//! Criterion benches of low-rank multimodal fusion on the shapes (modalities of 128, 64
//! and 300 features, f32): the forward pass of the pre-scaled inference model at r = 16, h = 128
//! (batch 1, 256, 4096) and r = 4, h = 32 (batch 1, 32), and the training step (forward, MSE,
//! backward, one Adam step) at r = 16, h = 128 (batch 256, 4096); with faer's GEMMs of the same
//! shapes alone (`X_m W_m` for every modality, batch x sum(d_m) x r h) for scale.
//! Run: `cargo bench --bench lmf` (`mmfuse bench lmf` prints one case as a line or JSON, and
//! `benches/peers/lmf_peers.py` compares with the PyTorch reference module).

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use faer::linalg::matmul::matmul;
use faer::{Accum, Mat, Par};
use mmfuse::lmf::{Adam, LmfModel, LmfOptions, Loss, TrainOptions};
use mmfuse::util::SplitMix64;
use mmfuse::Matrix;
use std::hint::black_box;

const DIMS: [usize; 3] = [128, 64, 300];

fn model(rank: usize, h: usize) -> LmfModel<f32> {
    let spec = [("visual", DIMS[0]), ("audio", DIMS[1]), ("text", DIMS[2])];
    LmfModel::new(&spec, rank, h, 7).expect("model")
}

/// Uniform in [-0.5, 0.5), as `mmfuse bench lmf`.
fn data(rows: usize, cols: usize, seed: u64) -> Matrix<f32> {
    let mut rng = SplitMix64::new(seed);
    let v = (0..rows * cols)
        .map(|_| rng.next_f64() as f32 - 0.5)
        .collect();
    Matrix::from_vec(rows, cols, v).expect("shape")
}

fn inputs(batch: usize) -> Vec<Matrix<f32>> {
    DIMS.iter()
        .enumerate()
        .map(|(m, &d)| data(batch, d, m as u64))
        .collect()
}

/// faer's GEMMs of the forward pass alone, on all threads (as `mmfuse bench lmf`).
fn bench_gemm(
    group: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    xs: &[Matrix<f32>],
    rh: usize,
) {
    let factors: Vec<Mat<f32>> = DIMS
        .iter()
        .map(|&d| Mat::from_fn(d, rh, |i, j| ((i * 7 + j * 3) % 11) as f32 * 0.01))
        .collect();
    let mut outs: Vec<Mat<f32>> = xs.iter().map(|x| Mat::zeros(x.nrows(), rh)).collect();
    group.bench_function("faer_gemms", |b| {
        b.iter(|| {
            for ((x, w), out) in xs.iter().zip(&factors).zip(outs.iter_mut()) {
                matmul(
                    out.as_mut(),
                    Accum::Replace,
                    x.as_mat_ref(),
                    w.as_ref(),
                    1.0f32,
                    Par::rayon(0),
                );
            }
            black_box(&outs);
        })
    });
}

fn forward(c: &mut Criterion, rank: usize, h: usize, batch: usize) {
    let fast = model(rank, h).prescale();
    let xs = inputs(batch);
    let views: Vec<_> = xs.iter().map(|x| x.as_mat_ref()).collect();
    let mut group = c.benchmark_group(format!("lmf_forward_r{rank}_h{h}"));
    group.throughput(Throughput::Elements(batch as u64));
    if batch >= 256 {
        group.sample_size(20);
    }
    let opts = LmfOptions::default();
    group.bench_with_input(BenchmarkId::new("mmfuse", batch), &batch, |b, _| {
        b.iter(|| black_box(fast.forward(&views, &opts).expect("forward")))
    });
    if batch >= 256 {
        bench_gemm(&mut group, &xs, rank * h);
    }
    group.finish();
}

fn train_step(c: &mut Criterion, rank: usize, h: usize, batch: usize) {
    let mut m = model(rank, h);
    let xs = inputs(batch);
    let views: Vec<_> = xs.iter().map(|x| x.as_mat_ref()).collect();
    let target = data(batch, h, 99);
    let mut adam = Adam::new(&m, TrainOptions::default().adam()).expect("adam");
    let mut group = c.benchmark_group(format!("lmf_train_step_r{rank}_h{h}"));
    group.throughput(Throughput::Elements(batch as u64));
    group.sample_size(10);
    let opts = LmfOptions::default();
    group.bench_with_input(BenchmarkId::new("mmfuse", batch), &batch, |b, _| {
        b.iter(|| {
            let (loss, grads) = m
                .loss_and_gradients(&views, target.as_mat_ref(), Loss::Mse, &opts)
                .expect("gradients");
            adam.step(&mut m, &grads).expect("step");
            black_box(loss)
        })
    });
    group.finish();
}

fn lmf_benches(c: &mut Criterion) {
    for batch in [1, 256, 4096] {
        forward(c, 16, 128, batch);
    }
    for batch in [1, 32] {
        forward(c, 4, 32, batch);
    }
    for batch in [256, 4096] {
        train_step(c, 16, 128, batch);
    }
}

criterion_group!(benches, lmf_benches);
criterion_main!(benches);
