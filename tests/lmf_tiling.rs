//! The tiling of the LMF engine (`src/lmf/block.rs`) on shapes the random cases of
//! `lmf_prop.rs` (at most 40 rows, 5 x 70 columns) do not reach: several groups of ranks, several
//! blocks, the column-major copy of the factors (batches of 512 rows and more), the
//! group-parallel single block, and chains of blocks in the backward pass. Each case checks the
//! forward pass (model and pre-scaled), the backward pass and the loss gradients against the
//! naive f64 reference of `support/lmf_reference.rs` with its derived bounds, and that one and
//! two threads give the same bits.

use mmfuse::lmf::{LmfModel, LmfOptions, Loss};
use mmfuse::{Matrix, Real};

#[path = "support/numerics.rs"]
mod numerics;
use numerics::{Rng, SLACK};

#[path = "support/lmf_reference.rs"]
mod lmf_reference;

#[path = "support/lmf_cases.rs"]
mod lmf_cases;
use lmf_cases::random_case;
use lmf_reference as r;

const U32: f64 = f32::EPSILON as f64 / 2.0;

fn case(
    dims: &[usize],
    rank: usize,
    h: usize,
    n: usize,
    seed: u64,
) -> (LmfModel<f32>, Vec<Matrix<f32>>) {
    random_case::<f32>(dims, rank, h, n, seed)
}

fn to64<T: Real>(v: &[T]) -> Vec<f64> {
    v.iter().map(|x| x.to_f64()).collect()
}

fn check(what: &str, got: &[f64], want: &[f64], bound_t: &[f64], bound_64: &[f64]) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        let b = (bound_t[i] + bound_64[i]) * SLACK;
        assert!(
            (g - w).abs() <= b,
            "{what}[{i}]: {g:e} vs {w:e}, error {:e} > bound {b:e}",
            (g - w).abs()
        );
    }
}

/// Forward, pre-scaled forward, backward and loss gradients against the reference; 1 vs 2
/// threads bit for bit.
fn run(dims: &[usize], rank: usize, h: usize, n: usize, seed: u64) {
    let (model, xs) = case(dims, rank, h, n, seed);
    let views: Vec<_> = xs.iter().map(|x| x.as_mat_ref()).collect();
    let xs64: Vec<Vec<f64>> = xs.iter().map(|x| to64(x.as_slice())).collect();
    let refm = r::RefModel::of(&model);
    let f = r::forward(&refm, &xs64, n);
    let opts = LmfOptions::default();
    let shape = format!("dims {dims:?} r {rank} h {h} n {n}");

    let y = model.forward(&views, &opts).unwrap();
    let b64 = r::forward_bound(&refm, &f, r::U64, false);
    check(
        &format!("{shape}: forward"),
        &to64(y.as_slice()),
        &f.y,
        &r::forward_bound(&refm, &f, U32, false),
        &b64,
    );
    let fast = model.prescale();
    let yp = fast.forward(&views, &opts).unwrap();
    check(
        &format!("{shape}: prescaled forward"),
        &to64(yp.as_slice()),
        &f.y,
        &r::forward_bound(&refm, &f, U32, true),
        &b64,
    );

    let mut rng = Rng(seed ^ 0x9);
    let g: Vec<f32> = (0..n * h).map(|_| rng.sym() as f32).collect();
    let g64 = to64(&g);
    let gm = Matrix::from_vec(n, h, g).unwrap();
    let got = model.backward(&views, gm.as_mat_ref(), &opts).unwrap();
    let want = r::backward(&refm, &xs64, &f, &g64);
    let bt = r::backward_bound(&refm, &xs64, &f, &g64, U32);
    let b6 = r::backward_bound(&refm, &xs64, &f, &g64, r::U64);
    for m in 0..dims.len() {
        check(
            &format!("{shape}: dW_{m}"),
            &to64(&got.factor_torch_layout(m, rank, h).unwrap()),
            &want.factors[m],
            &bt.factors[m],
            &b6.factors[m],
        );
        check(
            &format!("{shape}: dX_{m}"),
            &to64(got.inputs[m].as_slice()),
            &want.inputs[m],
            &bt.inputs[m],
            &b6.inputs[m],
        );
    }
    check(
        &format!("{shape}: dw"),
        &to64(&got.fusion_weights),
        &want.w,
        &bt.w,
        &b6.w,
    );
    check(
        &format!("{shape}: dc"),
        &to64(&got.bias),
        &want.c,
        &bt.c,
        &b6.c,
    );

    // The loss gradients: MSE against targets, whose gradient the reference backward takes as
    // given (computed from the reference outputs; the engine's outputs differ by their rounding,
    // so the comparison is relative, not against the bounds).
    let t: Vec<f32> = (0..n * h).map(|_| rng.sym() as f32).collect();
    let tm = Matrix::from_vec(n, h, t.clone()).unwrap();
    let (loss, lg) = model
        .loss_and_gradients(&views, tm.as_mat_ref(), Loss::Mse, &opts)
        .unwrap();
    let count = (n * h) as f64;
    let gref: Vec<f64> =
        f.y.iter()
            .zip(&t)
            .map(|(y, &t)| 2.0 * (y - t as f64) / count)
            .collect();
    let lref =
        f.y.iter()
            .zip(&t)
            .map(|(y, &t)| (y - t as f64).powi(2))
            .sum::<f64>()
            / count;
    assert!(
        (loss - lref).abs() <= 1e-5 * lref,
        "{shape}: loss {loss} vs {lref}"
    );
    let wl = r::backward(&refm, &xs64, &f, &gref);
    let close = |what: &str, got: &[f64], want: &[f64]| {
        let scale = want.iter().fold(0.0f64, |a, b| a.max(b.abs()));
        for (i, (g, w)) in got.iter().zip(want).enumerate() {
            assert!(
                (g - w).abs() <= 1e-4 * scale,
                "{shape}: {what}[{i}]: {g:e} vs {w:e}"
            );
        }
    };
    for m in 0..dims.len() {
        close(
            &format!("loss dW_{m}"),
            &to64(&lg.factor_torch_layout(m, rank, h).unwrap()),
            &wl.factors[m],
        );
    }
    close("loss dw", &to64(&lg.fusion_weights), &wl.w);
    close("loss dc", &to64(&lg.bias), &wl.c);

    // Threads: the same bits.
    let one = LmfOptions::with_threads(1);
    let two = LmfOptions::with_threads(2);
    assert_eq!(
        model.forward(&views, &one).unwrap(),
        y,
        "{shape}: forward, 1 thread"
    );
    assert_eq!(
        model.forward(&views, &two).unwrap(),
        y,
        "{shape}: forward, 2 threads"
    );
    assert_eq!(
        fast.forward(&views, &one).unwrap(),
        yp,
        "{shape}: prescaled, 1 thread"
    );
    assert_eq!(
        model.backward(&views, gm.as_mat_ref(), &one).unwrap(),
        got,
        "{shape}: backward, 1 thread"
    );
    let (l1, g1) = model
        .loss_and_gradients(&views, tm.as_mat_ref(), Loss::Mse, &one)
        .unwrap();
    assert_eq!(
        (l1.to_bits(), g1),
        (loss.to_bits(), lg),
        "{shape}: loss, 1 thread"
    );
}

/// Two groups of ranks, three blocks, the column-major copy of the factors.
#[test]
fn groups_blocks_and_factor_copy() {
    run(&[5, 3, 7], 8, 100, 600, 1);
}

/// One block of four groups worth running in parallel, and one sample (matrix-vector tiles).
#[test]
fn group_parallel_single_block_and_one_sample() {
    run(&[3, 2, 4], 16, 128, 64, 2);
    run(&[3, 2, 4], 16, 128, 1, 3);
}

/// One group, enough work for four chains of blocks in the backward pass.
#[test]
fn backward_chains() {
    run(&[100, 50], 4, 8, 2000, 4);
}
