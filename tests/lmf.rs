//! Integration tests of `mmfuse::lmf`: the PyTorch reference fixture (weights, outputs, MSE
//! gradients, three Adam steps; `scripts/make_lmf_fixture.py`), the backward pass against central
//! finite differences, training (loss decreases, determinism, threads, divergence, early
//! stopping), safetensors round trips and every kind of bad input.
//!
//! Random shapes against the naive reference with derived error bounds are in `lmf_prop.rs`.
// Index loops over modalities read closest to the formulas they check.
#![allow(clippy::needless_range_loop)]

use mmfuse::lmf::{
    gemm_to_torch_layout, torch_to_gemm_layout, Adam, AdamConfig, LmfGradients, LmfModel,
    LmfOptions, Loss, TrainOptions,
};
use mmfuse::{Error, Matrix, Real};
use safetensors::tensor::TensorView;
use safetensors::{Dtype, SafeTensors};
use std::collections::HashMap;

#[path = "support/numerics.rs"]
mod numerics;
use numerics::Rng;

#[path = "support/lmf_reference.rs"]
mod lmf_reference;

#[path = "support/lmf_cases.rs"]
mod lmf_cases;
use lmf_cases::random_case;
use lmf_reference as r;

const FIXTURE_ORDER: [&str; 3] = ["visual", "audio", "text"];

fn fixture(name: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn npy<T: Real>(name: &str) -> Matrix<T> {
    mmfuse::io::read_npy(fixture(name))
        .unwrap()
        .into_matrix(name)
        .unwrap()
}

fn fixture_inputs<T: Real>() -> Vec<Matrix<T>> {
    FIXTURE_ORDER
        .iter()
        .map(|n| npy(&format!("lmf_{n}.npy")))
        .collect()
}

fn fixture_model<T: Real>(file: &str) -> LmfModel<T> {
    LmfModel::load_safetensors(fixture(file), Some(&FIXTURE_ORDER)).unwrap()
}

fn metadata(file: &str, key: &str) -> String {
    let bytes = std::fs::read(fixture(file)).unwrap();
    let (_, meta) = SafeTensors::read_metadata(&bytes).unwrap();
    meta.metadata().as_ref().unwrap()[key].clone()
}

fn views<T: Real>(xs: &[Matrix<T>]) -> Vec<faer::MatRef<'_, T>> {
    xs.iter().map(|x| x.as_mat_ref()).collect()
}

fn to64<T: Real>(v: &[T]) -> Vec<f64> {
    v.iter().map(|x| x.to_f64()).collect()
}

fn max_abs(v: &[f64]) -> f64 {
    v.iter().fold(0.0, |a, b| a.max(b.abs()))
}

/// Asserts `|got - want| <= rel * max|want|` element by element; returns the largest error
/// relative to `max|want|`.
fn assert_close(what: &str, got: &[f64], want: &[f64], rel: f64) -> f64 {
    assert_eq!(got.len(), want.len(), "{what}: length");
    let scale = max_abs(want).max(f64::MIN_POSITIVE);
    let mut worst: f64 = 0.0;
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        let e = (g - w).abs() / scale;
        assert!(
            e <= rel,
            "{what}[{i}]: {g} vs {w} (relative to max {scale}: {e:e})"
        );
        worst = worst.max(e);
    }
    worst
}

// ---------------------------------------------------------------------------------------------
// PyTorch reference fixture

#[test]
fn pytorch_fixture_forward_matches() {
    let model = fixture_model::<f32>("lmf_torch.safetensors");
    assert_eq!(model.modalities(), FIXTURE_ORDER);
    assert_eq!(
        (model.dims(), model.rank(), model.out_dim()),
        (&[5, 3, 4][..], 3, 2)
    );
    let xs = fixture_inputs::<f32>();
    let torch = npy::<f32>("lmf_output.npy");
    let y = model.forward(&views(&xs), &LmfOptions::default()).unwrap();
    assert_eq!(y.shape(), torch.shape());

    // Both PyTorch and mmfuse are within the derived f32 bound of the exact result (the same
    // kinds of sums: dot products of length d + 1, an (M-1)-fold product, a rank sum of length r
    // plus the bias), so they are within twice that bound of each other; the f64 reference's own
    // error is added.
    let refm = r::RefModel::of(&model);
    let xs64: Vec<Vec<f64>> = xs.iter().map(|x| to64(x.as_slice())).collect();
    let f = r::forward(&refm, &xs64, 7);
    let b32 = r::forward_bound(&refm, &f, f32::EPSILON as f64 / 2.0, false);
    let b64 = r::forward_bound(&refm, &f, r::U64, false);
    for i in 0..y.as_slice().len() {
        let (ours, theirs) = (y.as_slice()[i] as f64, torch.as_slice()[i] as f64);
        assert!(
            (ours - f.y[i]).abs() <= b32[i] + b64[i],
            "ours[{i}] vs exact"
        );
        assert!(
            (theirs - f.y[i]).abs() <= b32[i] + b64[i],
            "torch[{i}] vs exact"
        );
        assert!((ours - theirs).abs() <= 2.0 * b32[i], "ours[{i}] vs torch");
    }
    // The criterion: 1e-5 relative.
    let worst = assert_close(
        "forward vs torch",
        &to64(y.as_slice()),
        &to64(torch.as_slice()),
        1e-5,
    );
    eprintln!("fixture forward: max |mmfuse - torch| / max|y| = {worst:e}");

    // The same file as f64 and the pre-scaled path agree too.
    let model64 = fixture_model::<f64>("lmf_torch.safetensors");
    let y64 = model64
        .forward(&views(&fixture_inputs::<f64>()), &LmfOptions::default())
        .unwrap();
    assert_close(
        "f64 forward vs torch",
        y64.as_slice(),
        &to64(torch.as_slice()),
        1e-5,
    );
    let yp = model
        .prescale()
        .forward(&views(&xs), &LmfOptions::default())
        .unwrap();
    assert_close(
        "prescaled vs torch",
        &to64(yp.as_slice()),
        &to64(torch.as_slice()),
        1e-5,
    );
}

#[test]
fn pytorch_fixture_needs_an_order_without_metadata() {
    let err =
        LmfModel::<f32>::load_safetensors(fixture("lmf_torch.safetensors"), None).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, Error::Format { .. }), "{err:?}");
    assert!(
        msg.contains("no `modalities` metadata") && msg.contains("explicitly"),
        "{msg}"
    );
    // The names it lists are the file's.
    for n in FIXTURE_ORDER {
        assert!(msg.contains(n), "{msg}");
    }
    // Another order of the same names loads; outputs for named inputs are the same bits up to
    // the order of the product (commutative but rounded): compare to 1e-6.
    let other = LmfModel::<f32>::load_safetensors(
        fixture("lmf_torch.safetensors"),
        Some(&["text", "visual", "audio"]),
    )
    .unwrap();
    assert_eq!(other.modalities(), ["text", "visual", "audio"]);
    let xs = fixture_inputs::<f32>();
    let named: Vec<(&str, faer::MatRef<'_, f32>)> =
        FIXTURE_ORDER.iter().copied().zip(views(&xs)).collect();
    let a = fixture_model::<f32>("lmf_torch.safetensors")
        .forward_named(&named, &LmfOptions::default())
        .unwrap();
    let b = other.forward_named(&named, &LmfOptions::default()).unwrap();
    assert_close("reordered", &to64(b.as_slice()), &to64(a.as_slice()), 1e-6);
}

#[test]
fn pytorch_fixture_mse_gradients_match() {
    let model = fixture_model::<f32>("lmf_torch.safetensors");
    let xs = fixture_inputs::<f32>();
    let target = npy::<f32>("lmf_target.npy");
    let (loss, grads) = model
        .loss_and_gradients(
            &views(&xs),
            target.as_mat_ref(),
            Loss::Mse,
            &LmfOptions::default(),
        )
        .unwrap();
    let torch_loss: f64 = metadata("lmf_grads.safetensors", "loss").parse().unwrap();
    assert!(
        (loss - torch_loss).abs() <= 1e-6 * torch_loss,
        "loss {loss} vs {torch_loss}"
    );
    // The gradient file has the parameters' names and shapes: it loads as a "model".
    let torch = fixture_model::<f32>("lmf_grads.safetensors");
    let mut worst: f64 = 0.0;
    for m in 0..3 {
        let ours = grads.factor_torch_layout(m, 3, 2).unwrap();
        let theirs = torch.factor_torch_layout(m).unwrap();
        worst = worst.max(assert_close(
            &format!("d{}_factor", FIXTURE_ORDER[m]),
            &to64(&ours),
            &to64(&theirs),
            1e-5,
        ));
    }
    worst = worst.max(assert_close(
        "dfusion_weights",
        &to64(&grads.fusion_weights),
        &to64(torch.fusion_weights()),
        1e-5,
    ));
    worst = worst.max(assert_close(
        "dfusion_bias",
        &to64(&grads.bias),
        &to64(torch.bias()),
        1e-5,
    ));
    eprintln!("fixture gradients: max relative (to tensor max) difference {worst:e}");

    // backward() with PyTorch's dL/dy gives the same parameter gradients as the fused step.
    let y = model.forward(&views(&xs), &LmfOptions::default()).unwrap();
    let scale = 2.0f32 / 14.0;
    let g: Vec<f32> = y
        .as_slice()
        .iter()
        .zip(target.as_slice())
        .map(|(a, b)| scale * (a - b))
        .collect();
    let g = Matrix::from_vec(7, 2, g).unwrap();
    let full = model
        .backward(&views(&xs), g.as_mat_ref(), &LmfOptions::default())
        .unwrap();
    assert_eq!(full.factors, grads.factors);
    assert_eq!(full.fusion_weights, grads.fusion_weights);
    assert_eq!(full.bias, grads.bias);
}

#[test]
fn pytorch_fixture_three_adam_steps_match() {
    let mut model = fixture_model::<f32>("lmf_torch.safetensors");
    let xs = fixture_inputs::<f32>();
    let target = npy::<f32>("lmf_target.npy");
    let cfg = AdamConfig {
        lr: 1e-2,
        ..AdamConfig::default()
    };
    let mut adam = Adam::new(&model, cfg).unwrap();
    let torch_losses: Vec<f64> = metadata("lmf_adam3.safetensors", "losses")
        .split(',')
        .map(|v| v.parse().unwrap())
        .collect();
    for want in &torch_losses {
        let (loss, grads) = model
            .loss_and_gradients(
                &views(&xs),
                target.as_mat_ref(),
                Loss::Mse,
                &LmfOptions::default(),
            )
            .unwrap();
        assert!(
            (loss - want).abs() <= 1e-6 * want,
            "loss {loss} vs torch {want}"
        );
        adam.step(&mut model, &grads).unwrap();
    }
    assert_eq!(adam.steps(), 3);
    let torch = fixture_model::<f32>("lmf_adam3.safetensors");
    let mut worst: f64 = 0.0;
    for m in 0..3 {
        worst = worst.max(assert_close(
            FIXTURE_ORDER[m],
            &to64(&model.factor_torch_layout(m).unwrap()),
            &to64(&torch.factor_torch_layout(m).unwrap()),
            1e-5,
        ));
    }
    worst = worst.max(assert_close(
        "fusion_weights",
        &to64(model.fusion_weights()),
        &to64(torch.fusion_weights()),
        1e-5,
    ));
    worst = worst.max(assert_close(
        "fusion_bias",
        &to64(model.bias()),
        &to64(torch.bias()),
        1e-5,
    ));
    eprintln!("fixture after 3 Adam steps: max relative (to tensor max) difference {worst:e}");
}

// ---------------------------------------------------------------------------------------------
// Backward against finite differences

/// Central differences of `phi(theta) = sum G * y(theta)` in f64. `y` is linear in every single
/// parameter and input value (each factor enters the product once), so the central difference
/// is the derivative exactly, up to rounding: `|err| <~ eps * sum|G y| / step`.
#[test]
fn backward_matches_central_differences() {
    let (model, xs) = random_case::<f64>(&[3, 1, 4], 3, 5, 6, 11);
    let mut rng = Rng(5);
    let g: Vec<f64> = (0..6 * 5).map(|_| rng.sym()).collect();
    let gm = Matrix::from_vec(6, 5, g.clone()).unwrap();
    let opts = LmfOptions {
        block_rows: Some(4),
        threads: None,
    };
    let grads = model.backward(&views(&xs), gm.as_mat_ref(), &opts).unwrap();
    let phi = |model: &LmfModel<f64>, xs: &[Matrix<f64>]| -> f64 {
        let y = model.forward(&views(xs), &opts).unwrap();
        y.as_slice().iter().zip(&g).map(|(a, b)| a * b).sum()
    };
    let step = 1e-3;
    let tol = |exact: f64| 1e-9 * (1.0 + exact.abs());
    let names = ["m0", "m1", "m2"];
    // Factors, in the GEMM layout.
    for m in 0..3 {
        let f = model.factor(m).unwrap();
        for idx in 0..f.as_slice().len() {
            let shifted = |delta: f64| {
                let factors: Vec<Matrix<f64>> = (0..3)
                    .map(|mm| {
                        let mut v = model.factor(mm).unwrap().clone();
                        if mm == m {
                            v.as_mut_slice()[idx] += delta;
                        }
                        v
                    })
                    .collect();
                LmfModel::from_parts(
                    &names,
                    3,
                    5,
                    factors,
                    model.fusion_weights().to_vec(),
                    model.bias().to_vec(),
                )
                .unwrap()
            };
            let fd = (phi(&shifted(step), &xs) - phi(&shifted(-step), &xs)) / (2.0 * step);
            let an = grads.factors[m].as_slice()[idx];
            assert!((fd - an).abs() <= tol(an), "dW_{m}[{idx}]: fd {fd} vs {an}");
        }
    }
    // Fusion weights and bias.
    for i in 0..3 {
        let shifted = |delta: f64| {
            let mut w = model.fusion_weights().to_vec();
            w[i] += delta;
            let factors = (0..3).map(|m| model.factor(m).unwrap().clone()).collect();
            LmfModel::from_parts(&names, 3, 5, factors, w, model.bias().to_vec()).unwrap()
        };
        let fd = (phi(&shifted(step), &xs) - phi(&shifted(-step), &xs)) / (2.0 * step);
        let an = grads.fusion_weights[i];
        assert!((fd - an).abs() <= tol(an), "dw[{i}]: fd {fd} vs {an}");
    }
    for k in 0..5 {
        let shifted = |delta: f64| {
            let mut c = model.bias().to_vec();
            c[k] += delta;
            let factors = (0..3).map(|m| model.factor(m).unwrap().clone()).collect();
            LmfModel::from_parts(&names, 3, 5, factors, model.fusion_weights().to_vec(), c).unwrap()
        };
        let fd = (phi(&shifted(step), &xs) - phi(&shifted(-step), &xs)) / (2.0 * step);
        let an = grads.bias[k];
        assert!((fd - an).abs() <= tol(an), "dc[{k}]: fd {fd} vs {an}");
    }
    // Inputs.
    for m in 0..3 {
        for idx in 0..xs[m].as_slice().len() {
            let shifted = |delta: f64| {
                let mut v = xs.to_vec();
                v[m].as_mut_slice()[idx] += delta;
                v
            };
            let fd = (phi(&model, &shifted(step)) - phi(&model, &shifted(-step))) / (2.0 * step);
            let an = grads.inputs[m].as_slice()[idx];
            assert!((fd - an).abs() <= tol(an), "dX_{m}[{idx}]: fd {fd} vs {an}");
        }
    }
}

/// The MSE and L1 losses' gradients against central differences of the loss itself (MSE is
/// quadratic in each single value, so its central difference is exact up to rounding; L1 is
/// piecewise linear, exact away from a kink, which a small step does not cross here).
#[test]
fn loss_gradients_match_central_differences() {
    let (model, xs) = random_case::<f64>(&[2, 3], 2, 3, 5, 3);
    let mut rng = Rng(8);
    let t = Matrix::from_vec(5, 3, (0..15).map(|_| rng.sym()).collect()).unwrap();
    let opts = LmfOptions::default();
    for loss in [Loss::Mse, Loss::L1] {
        let (value, grads) = model
            .loss_and_gradients(&views(&xs), t.as_mat_ref(), loss, &opts)
            .unwrap();
        let y = model.forward(&views(&xs), &opts).unwrap();
        assert_eq!(value, loss.eval(y.as_mat_ref(), t.as_mat_ref()).unwrap());
        let step = 1e-6;
        for i in 0..2 {
            let shifted = |delta: f64| {
                let mut w = model.fusion_weights().to_vec();
                w[i] += delta;
                let factors = (0..2).map(|m| model.factor(m).unwrap().clone()).collect();
                let m =
                    LmfModel::from_parts(&["m0", "m1"], 2, 3, factors, w, model.bias().to_vec())
                        .unwrap();
                let y = m.forward(&views(&xs), &opts).unwrap();
                loss.eval(y.as_mat_ref(), t.as_mat_ref()).unwrap()
            };
            let fd = (shifted(step) - shifted(-step)) / (2.0 * step);
            let an = grads.fusion_weights[i];
            assert!(
                (fd - an).abs() <= 1e-8 * (1.0 + an.abs()),
                "{loss} dw[{i}]: {fd} vs {an}"
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Determinism, threads, blocking

#[test]
fn one_and_two_threads_give_identical_bits() {
    let (model, xs) = random_case::<f32>(&[7, 3, 5], 4, 19, 101, 21);
    let mut rng = Rng(3);
    let g = Matrix::from_vec(101, 19, (0..101 * 19).map(|_| rng.sym() as f32).collect()).unwrap();
    let t = Matrix::from_vec(101, 19, (0..101 * 19).map(|_| rng.sym() as f32).collect()).unwrap();
    let run = |threads: usize| {
        // Small blocks: 26 blocks over 8 chains, so that both threads have work.
        let opts = LmfOptions {
            block_rows: Some(4),
            threads: Some(threads),
        };
        let y = model.forward(&views(&xs), &opts).unwrap();
        let p = model.prescale().forward(&views(&xs), &opts).unwrap();
        let b = model.backward(&views(&xs), g.as_mat_ref(), &opts).unwrap();
        let l = model
            .loss_and_gradients(&views(&xs), t.as_mat_ref(), Loss::Mse, &opts)
            .unwrap();
        let mut trained = model.clone();
        let topts = TrainOptions {
            epochs: 2,
            batch_size: 40,
            exec: opts,
            validation_fraction: 0.2,
            ..TrainOptions::default()
        };
        let h = trained
            .train(&views(&xs), t.as_mat_ref(), &topts, |_| {})
            .unwrap();
        (y, p, b, l, trained, h)
    };
    let (one, two) = (run(1), run(2));
    assert_eq!(one.0, two.0, "forward");
    assert_eq!(one.1, two.1, "prescaled forward");
    assert_eq!(one.2, two.2, "backward");
    assert_eq!(one.3 .0.to_bits(), two.3 .0.to_bits(), "loss");
    assert_eq!(one.3 .1, two.3 .1, "loss gradients");
    assert_eq!(one.4, two.4, "trained model");
    assert_eq!(one.5, two.5, "history");
}

/// Adam's update runs in parallel chunks for large tensors: still the same bits.
#[test]
fn parallel_adam_update_is_thread_independent() {
    let (model, xs) = random_case::<f32>(&[300, 10], 8, 8, 40, 2);
    assert!(model.factor(0).unwrap().as_slice().len() > 1 << 14);
    let mut rng = Rng(6);
    let t = Matrix::from_vec(40, 8, (0..320).map(|_| rng.sym() as f32).collect()).unwrap();
    let run = |threads: usize| {
        let mut m = model.clone();
        let opts = TrainOptions {
            epochs: 2,
            batch_size: 16,
            exec: LmfOptions::with_threads(threads),
            ..TrainOptions::default()
        };
        let h = m.train(&views(&xs), t.as_mat_ref(), &opts, |_| {}).unwrap();
        (m, h)
    };
    assert_eq!(run(1), run(2));
}

/// Shapes where the automatic block size is its minimum (16 rows): batch sizes on both sides of
/// one and two blocks, against the naive reference with the derived bound.
#[test]
fn automatic_blocks_around_their_boundaries() {
    for n in [1, 15, 16, 17, 32, 33] {
        let (model, xs) = random_case::<f32>(&[9, 4, 6], 16, 128, n, n as u64);
        let refm = r::RefModel::of(&model);
        let xs64: Vec<Vec<f64>> = xs.iter().map(|x| to64(x.as_slice())).collect();
        let f = r::forward(&refm, &xs64, n);
        let bound = r::forward_bound(&refm, &f, f32::EPSILON as f64 / 2.0, false);
        let y = model.forward(&views(&xs), &LmfOptions::default()).unwrap();
        let b64 = r::forward_bound(&refm, &f, r::U64, false);
        for (i, &v) in y.as_slice().iter().enumerate() {
            let b = bound[i] + b64[i];
            assert!((v as f64 - f.y[i]).abs() <= b, "n = {n}, element {i}");
        }
        let one = model
            .forward(&views(&xs), &LmfOptions::with_threads(1))
            .unwrap();
        assert_eq!(one, y, "n = {n}: threads");
    }
}

#[test]
fn initialisation_is_seeded_and_xavier_scaled() {
    let dims = [("visual", 128usize), ("audio", 64), ("text", 300)];
    let a = LmfModel::<f32>::new(&dims, 16, 32, 9).unwrap();
    assert_eq!(a, LmfModel::<f32>::new(&dims, 16, 32, 9).unwrap());
    assert_ne!(a, LmfModel::<f32>::new(&dims, 16, 32, 10).unwrap());
    for (m, &(_, d)) in dims.iter().enumerate() {
        let v = to64(a.factor(m).unwrap().as_slice());
        let std = (2.0 / (((d + 1) * 32 + 16 * 32) as f64)).sqrt();
        let mean = v.iter().sum::<f64>() / v.len() as f64;
        let var = v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / v.len() as f64;
        // Tens of thousands of samples: the sample std is within a few percent.
        assert!(
            (var.sqrt() / std - 1.0).abs() < 0.03,
            "{m}: {} vs {std}",
            var.sqrt()
        );
        assert!(mean.abs() < 0.05 * std, "{m}: mean {mean}");
    }
    assert!(a.bias().iter().all(|&b| b == 0.0));
    assert_eq!(a.num_params(), (129 + 65 + 301) * 16 * 32 + 16 + 32);
}

#[test]
fn layouts_convert_both_ways() {
    let (r_, d1, h) = (3, 4, 5);
    let torch: Vec<f64> = (0..r_ * d1 * h).map(|v| v as f64).collect();
    let gemm = torch_to_gemm_layout(&torch, r_, d1, h).unwrap();
    assert_eq!(gemm.shape(), (d1, r_ * h));
    // torch[i][row][k] is gemm[row][i * h + k].
    let (i, row, k) = (1, 2, 3);
    assert_eq!(gemm.get(row, i * h + k), torch[(i * d1 + row) * h + k]);
    assert_eq!(gemm_to_torch_layout(&gemm, r_, h).unwrap(), torch);
    assert!(torch_to_gemm_layout(&torch, r_, d1 + 1, h).is_err());
    assert!(gemm_to_torch_layout(&gemm, r_ + 1, h).is_err());
}

#[test]
fn inputs_by_name_in_any_order_and_strided_views() {
    let (model, xs) = random_case::<f64>(&[3, 2, 4], 2, 3, 5, 1);
    let opts = LmfOptions::default();
    let y = model.forward(&views(&xs), &opts).unwrap();
    let named = [
        ("m2", xs[2].as_mat_ref()),
        ("m0", xs[0].as_mat_ref()),
        ("m1", xs[1].as_mat_ref()),
    ];
    assert_eq!(model.forward_named(&named, &opts).unwrap(), y);
    // Column-major copies of the inputs (non-contiguous rows).
    let t: Vec<faer::Mat<f64>> = xs
        .iter()
        .map(|x| faer::Mat::from_fn(x.nrows(), x.ncols(), |i, j| x.get(i, j)))
        .collect();
    let tv: Vec<_> = t.iter().map(|m| m.as_ref()).collect();
    assert_eq!(model.forward(&tv, &opts).unwrap(), y);
}

// ---------------------------------------------------------------------------------------------
// Training

/// A learnable problem: targets from a "teacher" LMF of the same shapes.
fn teacher_problem(n: usize, seed: u64) -> (Vec<Matrix<f32>>, Matrix<f32>) {
    let (teacher, xs) = random_case::<f32>(&[6, 3, 5], 4, 3, n, seed);
    let y = teacher
        .forward(&views(&xs), &LmfOptions::default())
        .unwrap();
    (xs, y)
}

#[test]
fn adam_training_decreases_the_loss() {
    let (xs, y) = teacher_problem(400, 77);
    for loss in [Loss::Mse, Loss::L1] {
        let mut model = LmfModel::<f32>::new(&[("m0", 6), ("m1", 3), ("m2", 5)], 4, 3, 1).unwrap();
        let opts = TrainOptions {
            epochs: 40,
            batch_size: 32,
            lr: 1e-2,
            loss,
            validation_fraction: 0.25,
            ..TrainOptions::default()
        };
        let mut reports = Vec::new();
        let hist = model
            .train(&views(&xs), y.as_mat_ref(), &opts, |r| {
                reports.push(r.clone())
            })
            .unwrap();
        assert_eq!(reports.len(), 40);
        assert_eq!(hist.train_loss.len(), 40);
        assert_eq!(hist.val_loss.len(), 40);
        assert_eq!(hist.steps, 40 * 300usize.div_ceil(32) as u64);
        assert_eq!(reports[39].batches, 10);
        assert_eq!(reports[39].val_loss, Some(hist.val_loss[39]));
        let (first, last) = (hist.train_loss[0], hist.train_loss[39]);
        assert!(last < 0.2 * first, "{loss}: train loss {first} -> {last}");
        assert!(
            hist.val_loss[39] < 0.3 * hist.val_loss[0],
            "{loss}: val {:?}",
            hist.val_loss
        );
        // The recorded validation loss is the model's loss on the last 100 rows.
        let val: Vec<Matrix<f32>> = xs
            .iter()
            .map(|x| {
                Matrix::from_vec(100, x.ncols(), x.as_slice()[300 * x.ncols()..].to_vec()).unwrap()
            })
            .collect();
        let yv = Matrix::from_vec(100, 3, y.as_slice()[300 * 3..].to_vec()).unwrap();
        let pred = model.forward(&views(&val), &LmfOptions::default()).unwrap();
        let v = loss.eval(pred.as_mat_ref(), yv.as_mat_ref()).unwrap();
        assert_eq!(v, hist.val_loss[39]);
        eprintln!(
            "{loss}: train {first:.4} -> {last:.5}, val {:.4} -> {:.5}",
            hist.val_loss[0], hist.val_loss[39]
        );
    }
}

#[test]
fn training_is_deterministic_for_a_seed() {
    let (xs, y) = teacher_problem(90, 5);
    let run = |seed: u64, shuffle: bool| {
        let mut model = LmfModel::<f32>::new(&[("m0", 6), ("m1", 3), ("m2", 5)], 4, 3, 2).unwrap();
        let opts = TrainOptions {
            epochs: 3,
            batch_size: 16,
            seed,
            shuffle,
            ..TrainOptions::default()
        };
        let h = model
            .train(&views(&xs), y.as_mat_ref(), &opts, |_| {})
            .unwrap();
        (model, h)
    };
    assert_eq!(run(1, true), run(1, true));
    assert_ne!(run(1, true).0, run(2, true).0);
    // Without shuffling the seed plays no part.
    assert_eq!(run(1, false), run(2, false));
    assert_ne!(run(1, false).0, run(1, true).0);
}

/// Training step by step through the public pieces (fused loss + gradients, Adam) gives the same
/// model as `train` without shuffling.
#[test]
fn train_equals_manual_loop_without_shuffle() {
    let (xs, y) = teacher_problem(50, 8);
    let mut a = LmfModel::<f32>::new(&[("m0", 6), ("m1", 3), ("m2", 5)], 4, 3, 3).unwrap();
    let mut b = a.clone();
    let opts = TrainOptions {
        epochs: 2,
        batch_size: 20,
        shuffle: false,
        weight_decay: 0.01,
        ..TrainOptions::default()
    };
    a.train(&views(&xs), y.as_mat_ref(), &opts, |_| {}).unwrap();
    let mut adam = Adam::new(&b, opts.adam()).unwrap();
    for _ in 0..2 {
        for r0 in (0..50).step_by(20) {
            let r1 = (r0 + 20).min(50);
            let bx: Vec<Matrix<f32>> = xs
                .iter()
                .map(|x| {
                    let d = x.ncols();
                    Matrix::from_vec(r1 - r0, d, x.as_slice()[r0 * d..r1 * d].to_vec()).unwrap()
                })
                .collect();
            let by = Matrix::from_vec(r1 - r0, 3, y.as_slice()[r0 * 3..r1 * 3].to_vec()).unwrap();
            let (_, g) = b
                .loss_and_gradients(
                    &views(&bx),
                    by.as_mat_ref(),
                    Loss::Mse,
                    &LmfOptions::default(),
                )
                .unwrap();
            adam.step(&mut b, &g).unwrap();
        }
    }
    assert_eq!(a, b);
}

#[test]
fn divergence_stops_with_the_last_finite_weights() {
    let (xs, y) = teacher_problem(64, 9);
    let mut model = LmfModel::<f32>::new(&[("m0", 6), ("m1", 3), ("m2", 5)], 4, 3, 4).unwrap();
    // Adam moves every parameter by about lr per step: 1e15 makes the cubic products overflow
    // float32 on the next forward pass.
    let opts = TrainOptions {
        epochs: 5,
        batch_size: 64,
        lr: 1e15,
        ..TrainOptions::default()
    };
    let mut epochs_seen = 0;
    let err = model
        .train(&views(&xs), y.as_mat_ref(), &opts, |_| epochs_seen += 1)
        .unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, Error::Diverged(_)), "{err:?}");
    assert!(
        msg.contains("diverged") && msg.contains("last finite weights"),
        "{msg}"
    );
    assert!(msg.contains("epoch 2, batch 1"), "{msg}");
    assert_eq!(epochs_seen, 1);
    // The model holds the finite weights after the first step, and still runs.
    for m in 0..3 {
        assert!(model
            .factor(m)
            .unwrap()
            .as_slice()
            .iter()
            .all(|v| v.is_finite()));
    }
    assert!(model.fusion_weights().iter().all(|v| v.is_finite()));
    assert!(model.forward(&views(&xs), &LmfOptions::default()).is_ok());
}

#[test]
fn adam_refuses_non_finite_gradients_and_keeps_the_model() {
    let (model0, _) = random_case::<f64>(&[2], 1, 1, 1, 1);
    let mut model = model0.clone();
    let mut adam = Adam::new(&model, AdamConfig::default()).unwrap();
    let grads = LmfGradients {
        factors: vec![Matrix::from_vec(3, 1, vec![0.0, f64::NAN, 0.0]).unwrap()],
        fusion_weights: vec![0.0],
        bias: vec![0.0],
        inputs: vec![],
    };
    let err = adam.step(&mut model, &grads).unwrap_err();
    assert!(err.to_string().contains("m0_factor"), "{err}");
    assert_eq!(model, model0);
    // Wrong shapes are a shape error.
    let bad = LmfGradients {
        factors: vec![Matrix::from_vec(2, 1, vec![0.0, 0.0]).unwrap()],
        ..grads
    };
    assert!(matches!(adam.step(&mut model, &bad), Err(Error::Shape(_))));
}

#[test]
fn early_stopping_restores_the_best_epoch() {
    // Unlearnable targets (noise): the validation loss soon stops improving.
    let (xs, _) = teacher_problem(120, 10);
    let mut rng = Rng(4);
    let noise = Matrix::from_vec(120, 3, (0..360).map(|_| rng.sym() as f32).collect()).unwrap();
    let mut model = LmfModel::<f32>::new(&[("m0", 6), ("m1", 3), ("m2", 5)], 4, 3, 5).unwrap();
    let opts = TrainOptions {
        epochs: 300,
        batch_size: 8,
        lr: 2e-2,
        validation_fraction: 0.5,
        patience: Some(3),
        ..TrainOptions::default()
    };
    let hist = model
        .train(&views(&xs), noise.as_mat_ref(), &opts, |_| {})
        .unwrap();
    assert!(hist.stopped_early, "{} epochs", hist.val_loss.len());
    let best = hist.best_epoch.unwrap();
    assert_eq!(hist.val_loss.len(), best + 3);
    let min = hist.val_loss.iter().cloned().fold(f64::INFINITY, f64::min);
    assert_eq!(hist.val_loss[best - 1], min);
    // The model is the best epoch's: its validation loss is the recorded minimum.
    let val: Vec<Matrix<f32>> = xs
        .iter()
        .map(|x| Matrix::from_vec(60, x.ncols(), x.as_slice()[60 * x.ncols()..].to_vec()).unwrap())
        .collect();
    let yv = Matrix::from_vec(60, 3, noise.as_slice()[180..].to_vec()).unwrap();
    let pred = model.forward(&views(&val), &LmfOptions::default()).unwrap();
    assert_eq!(
        Loss::Mse.eval(pred.as_mat_ref(), yv.as_mat_ref()).unwrap(),
        min
    );
}

// ---------------------------------------------------------------------------------------------
// Weights files

#[test]
fn save_load_round_trip_is_bit_exact() {
    let dir = tempfile::tempdir().unwrap();
    let (model, xs) = random_case::<f32>(&[5, 3, 4], 3, 2, 4, 12);
    let path = dir.path().join("m.safetensors");
    model.save_safetensors(&path).unwrap();
    let back = LmfModel::<f32>::load_safetensors(&path, None).unwrap();
    assert_eq!(back, model);
    let opts = LmfOptions::default();
    assert_eq!(
        back.forward(&views(&xs), &opts).unwrap(),
        model.forward(&views(&xs), &opts).unwrap()
    );
    // Bytes in memory; metadata order; the file is a valid safetensors file with our names.
    let bytes = model.to_safetensors_bytes().unwrap();
    assert_eq!(std::fs::read(&path).unwrap(), bytes);
    assert_eq!(
        LmfModel::<f32>::from_safetensors_bytes(&bytes, None).unwrap(),
        model
    );
    assert_eq!(
        model.to_safetensors_bytes().unwrap(),
        bytes,
        "same model, same bytes"
    );
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let mut names = st.names();
    names.sort_unstable();
    assert_eq!(
        names,
        [
            "fusion_bias",
            "fusion_weights",
            "m0_factor",
            "m1_factor",
            "m2_factor"
        ]
    );
    assert_eq!(st.tensor("m0_factor").unwrap().shape(), [3, 6, 2]);
    assert_eq!(st.tensor("fusion_weights").unwrap().shape(), [1, 3]);
    assert_eq!(st.tensor("fusion_bias").unwrap().shape(), [1, 2]);
    // f64 models are stored as f32: a round trip rounds each value once.
    let (m64, _) = random_case::<f64>(&[2], 2, 2, 1, 3);
    let back = LmfModel::<f64>::from_safetensors_bytes(&m64.to_safetensors_bytes().unwrap(), None)
        .unwrap();
    assert_eq!(back, m64.cast::<f32>().cast::<f64>());
    // No temporary file is left behind.
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
}

#[test]
fn failed_save_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (model, _) = random_case::<f32>(&[2], 1, 1, 1, 1);
    let path = dir.path().join("missing-dir").join("m.safetensors");
    assert!(matches!(
        model.save_safetensors(&path),
        Err(Error::Io { .. })
    ));
    assert!(!path.exists());
    // Saving over an existing file replaces it whole.
    let path = dir.path().join("m.safetensors");
    std::fs::write(&path, b"old").unwrap();
    model.save_safetensors(&path).unwrap();
    assert_eq!(
        LmfModel::<f32>::load_safetensors(&path, None).unwrap(),
        model
    );
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
}

/// A safetensors file from `(name, dtype, shape, little-endian bytes)`.
fn st_file(tensors: &[(&str, Dtype, Vec<usize>, Vec<u8>)], modalities: Option<&str>) -> Vec<u8> {
    let views: Vec<(String, TensorView<'_>)> = tensors
        .iter()
        .map(|(n, dt, shape, b)| {
            (
                n.to_string(),
                TensorView::new(*dt, shape.clone(), b).unwrap(),
            )
        })
        .collect();
    let meta = modalities.map(|m| HashMap::from([("modalities".to_string(), m.to_string())]));
    safetensors::serialize(views, meta).unwrap()
}

fn f32s(n: usize, v: f32) -> Vec<u8> {
    (0..n).flat_map(|_| v.to_le_bytes()).collect()
}

/// A valid two-modality file (a: d = 2, b: d = 1; r = 2, h = 3), with one entry replaced.
fn variant(replace: Option<(&str, Dtype, Vec<usize>, Vec<u8>)>, drop: Option<&str>) -> Vec<u8> {
    let mut t: Vec<(&str, Dtype, Vec<usize>, Vec<u8>)> = vec![
        ("a_factor", Dtype::F32, vec![2, 3, 3], f32s(18, 0.5)),
        ("b_factor", Dtype::F32, vec![2, 2, 3], f32s(12, 0.25)),
        ("fusion_weights", Dtype::F32, vec![1, 2], f32s(2, 1.0)),
        ("fusion_bias", Dtype::F32, vec![1, 3], f32s(3, 0.0)),
    ];
    if let Some(rep) = replace {
        match t.iter_mut().find(|e| e.0 == rep.0) {
            Some(slot) => *slot = rep,
            None => t.push(rep),
        }
    }
    if let Some(name) = drop {
        t.retain(|e| e.0 != name);
    }
    st_file(&t, Some("a,b"))
}

fn load_err(bytes: &[u8], order: Option<&[&str]>) -> String {
    match LmfModel::<f32>::from_safetensors_bytes(bytes, order) {
        Ok(_) => panic!("loaded a bad file"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn bad_weights_files_are_refused_clearly() {
    // The base file is valid.
    let ok = LmfModel::<f32>::from_safetensors_bytes(&variant(None, None), None).unwrap();
    assert_eq!((ok.dims(), ok.rank(), ok.out_dim()), (&[2, 1][..], 2, 3));

    type BadCase<'a> = (Vec<u8>, Option<&'a [&'a str]>, &'a str);
    let cases: Vec<BadCase<'_>> = vec![
        (
            variant(
                Some(("a_factor", Dtype::F64, vec![2, 3, 3], vec![0; 144])),
                None,
            ),
            None,
            "dtype F64; expected F32",
        ),
        (
            variant(
                Some(("a_factor", Dtype::F32, vec![6, 3], f32s(18, 0.5))),
                None,
            ),
            None,
            "`a_factor` has shape [6, 3]",
        ),
        (
            variant(
                Some(("a_factor", Dtype::F32, vec![3, 3, 2], f32s(18, 0.5))),
                None,
            ),
            None,
            "`a_factor` has shape [3, 3, 2]",
        ),
        (
            variant(
                Some(("a_factor", Dtype::F32, vec![2, 1, 3], f32s(6, 0.5))),
                None,
            ),
            None,
            "features + 1 (>= 2)",
        ),
        (
            variant(
                Some(("fusion_weights", Dtype::F32, vec![2], f32s(2, 1.0))),
                None,
            ),
            None,
            "`fusion_weights` has shape [2]",
        ),
        (
            variant(Some(("fusion_bias", Dtype::F32, vec![1, 0], vec![])), None),
            None,
            "`fusion_bias` has shape [1, 0]",
        ),
        (
            variant(None, Some("fusion_bias")),
            None,
            "missing tensor `fusion_bias`",
        ),
        (
            variant(Some(("extra", Dtype::F32, vec![1], f32s(1, 0.0))), None),
            None,
            "unexpected tensor `extra`",
        ),
        (
            variant(
                Some(("c_factor", Dtype::F32, vec![2, 2, 3], f32s(12, 0.0))),
                None,
            ),
            None,
            "`c_factor` is not in the file's `modalities` metadata",
        ),
        (
            variant(None, Some("b_factor")),
            None,
            "names modality `b` but the file has no tensor `b_factor`",
        ),
        (
            variant(
                Some(("b_factor", Dtype::F32, vec![2, 2, 3], f32s(12, f32::NAN))),
                None,
            ),
            None,
            "non-finite value (NaN)",
        ),
        (
            variant(
                Some((
                    "fusion_weights",
                    Dtype::F32,
                    vec![1, 2],
                    f32s(2, f32::INFINITY),
                )),
                None,
            ),
            None,
            "non-finite value (inf)",
        ),
        (
            variant(None, None),
            Some(&["a"]),
            "`b_factor` is not in the given order",
        ),
        (
            variant(None, None),
            Some(&["a", "b", "c"]),
            "names modality `c`",
        ),
        (variant(None, None), Some(&["a", "b", "a"]), "given twice"),
        (
            b"not a safetensors file at all".to_vec(),
            None,
            "not a valid safetensors file",
        ),
        (
            variant(None, None)[..40].to_vec(),
            None,
            "not a valid safetensors file",
        ),
        (vec![], None, "not a valid safetensors file"),
    ];
    for (bytes, order, want) in cases {
        let msg = load_err(&bytes, order);
        assert!(msg.contains(want), "expected `{want}` in: {msg}");
    }
    // No metadata and no order.
    let t = [
        ("a_factor", Dtype::F32, vec![1, 2, 1], f32s(2, 1.0)),
        ("fusion_weights", Dtype::F32, vec![1, 1], f32s(1, 1.0)),
        ("fusion_bias", Dtype::F32, vec![1, 1], f32s(1, 0.0)),
    ];
    let msg = load_err(&st_file(&t, None), None);
    assert!(msg.contains("no `modalities` metadata"), "{msg}");
    assert!(LmfModel::<f32>::from_safetensors_bytes(&st_file(&t, None), Some(&["a"])).is_ok());
    // A missing file is an I/O error naming it.
    let err = LmfModel::<f32>::load_safetensors("/nonexistent/m.safetensors", None).unwrap_err();
    assert!(
        matches!(err, Error::Io { .. }) && err.to_string().contains("/nonexistent/m.safetensors")
    );
}

/// Corrupted files (random bytes changed, truncations) give errors or valid models, never a
/// panic.
#[test]
fn corrupted_weights_files_never_panic() {
    let good = variant(None, None);
    let mut rng = Rng(99);
    for case in 0..3000 {
        let mut bytes = good.clone();
        for _ in 0..1 + rng.below(4) {
            let pos = rng.below(bytes.len() as u64) as usize;
            bytes[pos] = rng.next() as u8;
        }
        if case % 5 == 0 {
            bytes.truncate(rng.below(bytes.len() as u64) as usize);
        }
        if let Ok(m) = LmfModel::<f32>::from_safetensors_bytes(&bytes, None) {
            // Whatever loaded is a usable model.
            assert!(m.num_params() > 0);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Bad inputs and parameters

#[test]
fn bad_model_shapes_are_refused() {
    let e = |r: mmfuse::Result<LmfModel<f32>>| r.unwrap_err().to_string();
    assert!(e(LmfModel::new(&[("a", 2)], 0, 1, 0)).contains("`rank`: must be >= 1"));
    assert!(e(LmfModel::new(&[("a", 2)], 1, 0, 0)).contains("`out_dim`: must be >= 1"));
    assert!(e(LmfModel::new::<&str>(&[], 1, 1, 0)).contains("at least one modality"));
    assert!(e(LmfModel::new(&[("a", 2), ("a", 3)], 1, 1, 0)).contains("`a` is given twice"));
    assert!(e(LmfModel::new(&[("a", 0)], 1, 1, 0)).contains("`a` has 0 features"));
    assert!(e(LmfModel::new(&[("", 1)], 1, 1, 0)).contains("empty name"));
    assert!(e(LmfModel::new(&[("a,b", 1)], 1, 1, 0)).contains("comma"));
    // Absurd sizes are refused before any allocation or overflowing arithmetic.
    assert!(e(LmfModel::new(&[("a", usize::MAX)], 2, 2, 0)).contains("too large"));
    assert!(e(LmfModel::new(&[("a", 1)], usize::MAX, 2, 0)).contains("too large"));
    assert!(e(LmfModel::new(&[("a", 1 << 40)], 1 << 20, 1 << 20, 0)).contains("too large"));
    let f = || vec![Matrix::filled(3, 2, 0.5f32)];
    assert!(e(LmfModel::from_parts(
        &["a"],
        1,
        2,
        f(),
        vec![1.0, 2.0],
        vec![0.0; 2]
    ))
    .contains("2 fusion weights for rank 1"));
    assert!(e(LmfModel::from_parts(
        &["a"],
        1,
        2,
        f(),
        vec![1.0],
        vec![0.0; 3]
    ))
    .contains("bias of length 3"));
    assert!(e(LmfModel::from_parts(
        &["a"],
        2,
        2,
        f(),
        vec![1.0; 2],
        vec![0.0; 2]
    ))
    .contains("factor of `a` is 3 x 2"));
    assert!(e(LmfModel::from_parts(
        &["a", "b"],
        1,
        2,
        f(),
        vec![1.0],
        vec![0.0; 2]
    ))
    .contains("2 modality names but 1 factors"));
    assert!(e(LmfModel::from_parts(
        &["a"],
        1,
        2,
        f(),
        vec![f32::NAN],
        vec![0.0; 2]
    ))
    .contains("fusion weights"));
}

#[test]
fn bad_inputs_are_refused_clearly() {
    let (model, xs) = random_case::<f32>(&[3, 2], 2, 2, 4, 1);
    let opts = LmfOptions::default();
    let v = views(&xs);
    let err = |r: mmfuse::Result<Matrix<f32>>| r.unwrap_err().to_string();

    assert!(err(model.forward(&v[..1], &opts))
        .contains("1 inputs given; the model has 2 modalities (m0, m1)"));
    let wide = Matrix::filled(4, 5, 0.0f32);
    assert!(err(model.forward(&[v[0], wide.as_mat_ref()], &opts))
        .contains("input `m1` has 5 features but the model expects 2"));
    let short = Matrix::filled(3, 2, 0.0f32);
    assert!(err(model.forward(&[v[0], short.as_mat_ref()], &opts))
        .contains("row counts differ: `m0` has 4 rows, `m1` has 3"));
    let e0 = Matrix::filled(0, 3, 0.0f32);
    let e1 = Matrix::filled(0, 2, 0.0f32);
    assert!(err(model.forward(&[e0.as_mat_ref(), e1.as_mat_ref()], &opts)).contains("no rows"));
    let mut nan = xs[1].clone();
    nan.as_mut_slice()[3] = f32::NAN;
    let e = model.forward(&[v[0], nan.as_mat_ref()], &opts).unwrap_err();
    assert!(
        matches!(&e, Error::NonFinite { row: 1, col: 1, .. }),
        "{e:?}"
    );
    assert!(e.to_string().contains("input `m1`"));

    // By name: missing, unknown, twice.
    assert!(err(model.forward_named(&[("m0", v[0])], &opts)).contains("missing modality m1"));
    assert!(
        err(model.forward_named(&[("m0", v[0]), ("m1", v[1]), ("x", v[1])], &opts))
            .contains("unknown modality `x`")
    );
    assert!(
        err(model.forward_named(&[("m0", v[0]), ("m0", v[0])], &opts))
            .contains("`m0` is given twice")
    );

    // Options.
    let zero_block = LmfOptions {
        block_rows: Some(0),
        threads: None,
    };
    assert!(err(model.forward(&v, &zero_block)).contains("block_rows"));
    assert!(err(model.forward(&v, &LmfOptions::with_threads(0))).contains("threads"));

    // Output gradients and targets.
    let g_bad = Matrix::filled(4, 3, 0.0f32);
    assert!(model
        .backward(&v, g_bad.as_mat_ref(), &opts)
        .unwrap_err()
        .to_string()
        .contains("grad_output is 4 x 3; expected 4 x 2"));
    let mut t = Matrix::filled(4, 2, 0.0f32);
    t.as_mut_slice()[5] = f32::INFINITY;
    let e = model
        .loss_and_gradients(&v, t.as_mat_ref(), Loss::Mse, &opts)
        .unwrap_err();
    assert!(
        matches!(&e, Error::NonFinite { row: 2, col: 1, .. }) && e.to_string().contains("targets"),
        "{e:?}"
    );
    let mut m2 = model.clone();
    let e = m2
        .train(&v, t.as_mat_ref(), &TrainOptions::default(), |_| {})
        .unwrap_err();
    assert!(e.to_string().contains("targets"), "{e}");
    let t3 = Matrix::filled(4, 3, 0.0f32);
    let e = m2
        .train(&v, t3.as_mat_ref(), &TrainOptions::default(), |_| {})
        .unwrap_err();
    assert!(
        e.to_string().contains("targets is 4 x 3; expected 4 x 2"),
        "{e}"
    );
    assert_eq!(m2, model, "failed calls leave the model alone");
}

#[test]
fn bad_training_options_are_refused() {
    let (model, xs) = random_case::<f32>(&[3], 1, 1, 10, 1);
    let t = Matrix::filled(10, 1, 0.0f32);
    let check = |opts: TrainOptions, want: &str| {
        let mut m = model.clone();
        let e = m
            .train(&views(&xs), t.as_mat_ref(), &opts, |_| {})
            .unwrap_err();
        assert!(e.to_string().contains(want), "expected `{want}` in: {e}");
    };
    let d = TrainOptions::default;
    check(TrainOptions { epochs: 0, ..d() }, "`epochs`");
    check(
        TrainOptions {
            batch_size: 0,
            ..d()
        },
        "`batch_size`",
    );
    check(TrainOptions { lr: 0.0, ..d() }, "`lr`");
    check(
        TrainOptions {
            lr: f64::NAN,
            ..d()
        },
        "`lr`",
    );
    check(
        TrainOptions {
            betas: (1.0, 0.999),
            ..d()
        },
        "`beta1`",
    );
    check(
        TrainOptions {
            betas: (0.9, -0.1),
            ..d()
        },
        "`beta2`",
    );
    check(TrainOptions { eps: -1.0, ..d() }, "`eps`");
    check(
        TrainOptions {
            weight_decay: -1.0,
            ..d()
        },
        "`weight_decay`",
    );
    check(
        TrainOptions {
            validation_fraction: 1.0,
            ..d()
        },
        "`validation_fraction`",
    );
    check(
        TrainOptions {
            validation_fraction: 0.05,
            ..d()
        },
        "leaves 0 validation",
    );
    check(
        TrainOptions {
            patience: Some(2),
            ..d()
        },
        "needs a validation split",
    );
    check(
        TrainOptions {
            patience: Some(0),
            validation_fraction: 0.5,
            ..d()
        },
        "`patience`",
    );
    assert!("mse".parse::<Loss>().is_ok() && "L1".parse::<Loss>().is_ok());
    assert!("huber"
        .parse::<Loss>()
        .unwrap_err()
        .to_string()
        .contains("not one of mse, l1"));
}
