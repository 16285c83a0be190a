//! The block low-rank fusion model (`lmf::blockwise`): forward against the PyTorch fixture
//! (scripts/make_block_lmf_fixture.py), gradients against PyTorch's autograd and against
//! central finite differences in f64 (penalty included, p = 1, 2, inf; MSE, L1, cross-entropy),
//! closed-form block norms against the materialised tensors, files, determinism across thread
//! counts, and bad input.

use mmfuse::blocks::BlockSpec;
use mmfuse::io::{read_npy, NpyData};
use mmfuse::lmf::blockwise::{BlockLmf, BlockTrainOptions, ModalityStats, Optimizer};
use mmfuse::lmf::{LmfModel, LmfOptions, Loss};
use mmfuse::util::SplitMix64;
use mmfuse::{Error, Matrix};
use safetensors::SafeTensors;

const FIX: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures");

/// A fixture array as an `N x d` matrix (1-D arrays become one column).
fn fixture_matrix(name: &str) -> Matrix<f64> {
    let a = read_npy(format!("{FIX}/{name}")).unwrap();
    let values: Vec<f64> = match a.data {
        NpyData::F32(v) => v.into_iter().map(f64::from).collect(),
        NpyData::F64(v) => v,
        NpyData::I64(v) => v.into_iter().map(|x| x as f64).collect(),
    };
    let cols = if a.shape.len() == 2 { a.shape[1] } else { 1 };
    Matrix::from_vec(a.shape[0], cols, values).unwrap()
}

fn fixture_inputs() -> Vec<Matrix<f64>> {
    ["visual", "audio", "text"]
        .iter()
        .map(|m| fixture_matrix(&format!("block_lmf_x_{m}.npy")))
        .collect()
}

fn rel_err(a: f64, b: f64) -> f64 {
    (a - b).abs() / b.abs().max(1e-300)
}

#[test]
fn forward_matches_the_pytorch_fixture() {
    let want = fixture_matrix("block_lmf_output.npy");
    let model = BlockLmf::<f32>::load(format!("{FIX}/block_lmf_torch.safetensors")).unwrap();
    assert_eq!(model.block_names().len(), 7);
    let xs: Vec<Matrix<f32>> = fixture_inputs()
        .iter()
        .map(|x| x.map(|v| v as f32))
        .collect();
    let views: Vec<_> = xs.iter().map(|x| x.as_mat_ref()).collect();
    for arch in mmfuse_kernels::available_isas() {
        let y = model
            .forward_on(arch, &views, &LmfOptions::default())
            .unwrap();
        // Relative to the output scale: each output sums terms of about its size.
        let scale = want.as_slice().iter().fold(0.0f64, |a, v| a.max(v.abs()));
        for (got, exp) in y.as_slice().iter().zip(want.as_slice()) {
            assert!(
                (*got as f64 - exp).abs() <= 1e-5 * scale,
                "{arch:?}: {got} vs {exp}"
            );
        }
    }
    // In f64 (the same f32 parameters, read into f64): to 1e-12.
    let model64 = BlockLmf::<f64>::load(format!("{FIX}/block_lmf_torch.safetensors")).unwrap();
    let xs = fixture_inputs();
    let views: Vec<_> = xs.iter().map(|x| x.as_mat_ref()).collect();
    let y = model64.forward(&views, &LmfOptions::default()).unwrap();
    for (got, exp) in y.as_slice().iter().zip(want.as_slice()) {
        assert!(rel_err(*got, *exp) < 1e-12, "{got} vs {exp}");
    }
    let norms = fixture_matrix("block_lmf_norms.npy");
    for (got, exp) in model64.block_norms().iter().zip(norms.as_slice()) {
        assert!(rel_err(*got, *exp) < 1e-12, "norm {got} vs {exp}");
    }
}

#[test]
fn gradients_match_pytorch_autograd() {
    let bytes = std::fs::read(format!("{FIX}/block_lmf_grads.safetensors")).unwrap();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let (_, header) = SafeTensors::read_metadata(&bytes).unwrap();
    let meta = header.metadata().clone().unwrap();
    let model = BlockLmf::<f64>::load(format!("{FIX}/block_lmf_torch.safetensors")).unwrap();
    let xs = fixture_inputs();
    let views: Vec<_> = xs.iter().map(|x| x.as_mat_ref()).collect();
    let lam: f64 = meta["lam"].parse().unwrap();
    for (prefix, loss, target_file) in [
        ("mse", Loss::Mse, "block_lmf_target.npy"),
        ("xent", Loss::CrossEntropy, "block_lmf_labels.npy"),
    ] {
        let t = fixture_matrix(target_file);
        let t = if loss == Loss::CrossEntropy {
            Matrix::from_vec(t.nrows() * t.ncols(), 1, t.into_vec()).unwrap()
        } else {
            t
        };
        let (value, grads) = model
            .loss_and_gradients(&views, t.as_mat_ref(), loss, lam, &LmfOptions::default())
            .unwrap();
        let want_value: f64 = meta[&format!("{prefix}_loss")].parse().unwrap();
        assert!(
            rel_err(value, want_value) < 1e-12,
            "{prefix}: {value} vs {want_value}"
        );
        // Compare tensor by tensor through a model holding the gradients as parameters.
        // A model holding the gradients as parameters: its accessors read them by tensor.
        let mut gmodel = model.clone();
        gmodel.params_mut().copy_from_slice(&grads);
        let mut checked = 0;
        for name in st.names() {
            let Some(tensor) = name.strip_prefix(&format!("{prefix}/")) else {
                continue;
            };
            let view = st.tensor(name).unwrap();
            let want: Vec<f64> = view
                .data()
                .chunks_exact(8)
                .map(|c| f64::from_le_bytes(c.try_into().unwrap()))
                .collect();
            let got: Vec<f64> = if tensor == "bias" {
                gmodel.bias().to_vec()
            } else if let Some(block) = tensor.strip_suffix(".fusion_weights") {
                gmodel.fusion_weights(block).unwrap().to_vec()
            } else {
                let (block, m) = tensor.rsplit_once('.').unwrap();
                gmodel.factor(block, m).unwrap()
            };
            let scale = want.iter().fold(1e-12f64, |a, v| a.max(v.abs()));
            for (g, w) in got.iter().zip(&want) {
                assert!(
                    (g - w).abs() <= 1e-10 * scale,
                    "{prefix} {tensor}: {g} vs {w}"
                );
            }
            checked += 1;
        }
        assert_eq!(
            checked,
            3 + 3 * 2 + 3 + 3 + 1 + 1,
            "{prefix}: every tensor compared"
        );
    }
}

struct Problem {
    xs: Vec<Matrix<f64>>,
    targets: Matrix<f64>,
    labels: Matrix<f64>,
}

fn problem(n: usize, dims: &[usize], h: usize, seed: u64) -> Problem {
    let mut rng = SplitMix64::new(seed);
    let mut draw = |len: usize, off: f64| -> Vec<f64> {
        (0..len).map(|_| rng.next_f64() * 2.0 - 1.0 + off).collect()
    };
    let xs = dims
        .iter()
        .map(|&d| Matrix::from_vec(n, d, draw(n * d, 0.7)).unwrap())
        .collect();
    let targets = Matrix::from_vec(n, h, draw(n * h, 0.0)).unwrap();
    let labels =
        Matrix::from_vec(n, 1, (0..n).map(|i| ((i * 7 + 3) % h) as f64).collect()).unwrap();
    Problem {
        xs,
        targets,
        labels,
    }
}

/// Every parameter's gradient against central differences of the objective, in f64.
#[test]
fn gradients_match_finite_differences() {
    let dims = [3usize, 2, 4];
    let names = [("v", 3usize), ("a", 2), ("t", 4)];
    let pr = problem(9, &dims, 2, 11);
    let views: Vec<_> = pr.xs.iter().map(|x| x.as_mat_ref()).collect();
    for (spec, p, loss, lam) in [
        (BlockSpec::All, 1.0, Loss::Mse, 0.05),
        (BlockSpec::Pairs, 2.0, Loss::CrossEntropy, 0.1),
        (BlockSpec::Pairs, f64::INFINITY, Loss::L1, 0.02),
        (BlockSpec::All, 4.0 / 3.0, Loss::Mse, 0.0),
    ] {
        let mut model = BlockLmf::<f64>::new(&names, &spec, 3, 2, p, 5).unwrap();
        // Non-trivial statistics, held fixed by the objective.
        let stats = pr
            .xs
            .iter()
            .map(|x| ModalityStats {
                mean: (0..x.ncols()).map(|j| 0.1 * j as f64 + 0.5).collect(),
                scale: 1.7,
            })
            .collect();
        model.set_stats(stats).unwrap();
        let t = if loss == Loss::CrossEntropy {
            &pr.labels
        } else {
            &pr.targets
        };
        let opts = LmfOptions::default();
        let (_, grads) = model
            .loss_and_gradients(&views, t.as_mat_ref(), loss, lam, &opts)
            .unwrap();
        let f = |m: &BlockLmf<f64>| {
            m.loss_and_gradients(&views, t.as_mat_ref(), loss, lam, &opts)
                .unwrap()
                .0
        };
        for (j, &analytic) in grads.iter().enumerate() {
            let h = 1e-6;
            let mut plus = model.clone();
            plus.params_mut()[j] += h;
            let mut minus = model.clone();
            minus.params_mut()[j] -= h;
            let fd = (f(&plus) - f(&minus)) / (2.0 * h);
            assert!(
                (fd - analytic).abs() <= 1e-6 * (1.0 + fd.abs()),
                "{spec} p {p} {loss}: parameter {j}: analytic {analytic} vs finite difference {fd}"
            );
        }
    }
}

/// The closed-form block norms against the norms of the tensors built from the factors.
#[test]
fn block_norms_equal_the_materialised_tensors() {
    for (seed, rank, h) in [(1u64, 1usize, 1usize), (2, 3, 2), (3, 5, 3)] {
        let names = [("v", 3usize), ("a", 2), ("t", 4)];
        let model = BlockLmf::<f64>::new(&names, &BlockSpec::All, rank, h, 1.0, seed).unwrap();
        let norms = model.block_norms();
        for (b, block) in model.blocks().iter().enumerate() {
            let dims: Vec<usize> = block.members.iter().map(|&m| names[m].1).collect();
            let factors: Vec<Vec<f64>> = block
                .members
                .iter()
                .map(|&m| model.factor(&block.name, names[m].0).unwrap())
                .collect();
            let mut ss = 0.0;
            if !block.is_interaction() {
                ss = factors[0].iter().map(|v| v * v).sum();
            } else {
                let w = model.fusion_weights(&block.name).unwrap();
                // Every index tuple (a_1, ..., a_|I|, k).
                let total: usize = dims.iter().product::<usize>() * h;
                for flat in 0..total {
                    let mut rest = flat;
                    let k = rest % h;
                    rest /= h;
                    let mut idx = vec![0usize; dims.len()];
                    for (j, &d) in dims.iter().enumerate().rev() {
                        idx[j] = rest % d;
                        rest /= d;
                    }
                    let entry: f64 = (0..rank)
                        .map(|i| {
                            w[i] * (0..dims.len())
                                .map(|j| factors[j][(i * dims[j] + idx[j]) * h + k])
                                .product::<f64>()
                        })
                        .sum();
                    ss += entry * entry;
                }
            }
            assert!(
                rel_err(norms[b], ss.sqrt()) < 1e-12,
                "{}: {} vs {}",
                block.name,
                norms[b],
                ss.sqrt()
            );
        }
    }
}

#[test]
fn files_round_trip_bitwise_and_refuse_plain_lmf_files() {
    let names = [("v", 3usize), ("a", 2), ("t", 4)];
    let pr = problem(40, &[3, 2, 4], 1, 4);
    let views: Vec<_> = pr.xs.iter().map(|x| x.as_mat_ref()).collect();
    let mut model = BlockLmf::<f32>::new(&names, &BlockSpec::Pairs, 3, 1, 1.0, 9).unwrap();
    let xs32: Vec<Matrix<f32>> = pr.xs.iter().map(|x| x.map(|v| v as f32)).collect();
    let v32: Vec<_> = xs32.iter().map(|x| x.as_mat_ref()).collect();
    let t32 = pr.targets.map(|v| v as f32);
    let opts = BlockTrainOptions {
        epochs: 3,
        batch_size: 16,
        ..Default::default()
    };
    model.train(&v32, t32.as_mat_ref(), &opts, |_| {}).unwrap();
    let bytes = model.to_bytes().unwrap();
    assert_eq!(bytes, model.to_bytes().unwrap(), "same model, same bytes");
    let back = BlockLmf::<f32>::from_bytes(&bytes).unwrap();
    assert_eq!(back, model);
    let y0 = model.forward(&v32, &LmfOptions::default()).unwrap();
    let y1 = back.forward(&v32, &LmfOptions::default()).unwrap();
    assert_eq!(y0, y1);
    // Read into f64: the same values.
    let wide = BlockLmf::<f64>::from_bytes(&bytes).unwrap();
    assert_eq!(wide.params().len(), model.params().len());
    let _ = views;
    // Truncations are errors, never panics.
    for cut in (0..bytes.len()).step_by(7) {
        assert!(BlockLmf::<f32>::from_bytes(&bytes[..cut]).is_err());
    }
    // A plain LMF file is recognised and refused with a pointer to the plain loader.
    let plain = LmfModel::<f32>::new(&names, 2, 1, 0).unwrap();
    let dir = std::env::temp_dir().join(format!("mmfuse-blk-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("plain.safetensors");
    plain.save_safetensors(&path).unwrap();
    let plain_bytes = std::fs::read(&path).unwrap();
    assert!(!mmfuse::lmf::blockwise::is_block_model_file(&plain_bytes));
    assert!(mmfuse::lmf::blockwise::is_block_model_file(&bytes));
    let err = BlockLmf::<f32>::from_bytes(&plain_bytes)
        .unwrap_err()
        .to_string();
    assert!(err.contains("plain LMF"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn training_is_the_same_for_any_thread_count() {
    let names = [("v", 5usize), ("a", 3), ("t", 4)];
    let pr = problem(700, &[5, 3, 4], 1, 8);
    let xs: Vec<Matrix<f32>> = pr.xs.iter().map(|x| x.map(|v| v as f32)).collect();
    let views: Vec<_> = xs.iter().map(|x| x.as_mat_ref()).collect();
    let t = pr.targets.map(|v| v as f32);
    let run = |threads: usize, optimizer: Optimizer| {
        let mut model = BlockLmf::<f32>::new(&names, &BlockSpec::Pairs, 4, 1, 1.0, 2).unwrap();
        let opts = BlockTrainOptions {
            epochs: 3,
            batch_size: 300,
            optimizer,
            validation_fraction: 0.2,
            exec: LmfOptions::with_threads(threads),
            ..Default::default()
        };
        let hist = model.train(&views, t.as_mat_ref(), &opts, |_| {}).unwrap();
        (model, hist)
    };
    for optimizer in [Optimizer::default(), Optimizer::Sgd { momentum: 0.9 }] {
        let (m1, h1) = run(1, optimizer);
        let (m2, h2) = run(2, optimizer);
        assert_eq!(m1, m2, "{optimizer}");
        assert_eq!(h1, h2, "{optimizer}");
        assert_eq!(h1.relevance.len(), 3);
        assert_eq!(h1.val_loss.len(), 3);
    }
}

#[test]
fn bad_input_is_a_clear_error() {
    let names = [("v", 3usize), ("a", 2)];
    let err = |r: Result<BlockLmf<f32>, Error>| r.unwrap_err().to_string();
    assert!(err(BlockLmf::new(&names, &"v*x".parse().unwrap(), 2, 1, 1.0, 0)).contains("x"));
    assert!(err(BlockLmf::new(&names, &BlockSpec::Pairs, 0, 1, 1.0, 0)).contains("rank"));
    assert!(err(BlockLmf::new(&names, &BlockSpec::Pairs, 2, 1, 0.5, 0)).contains(">= 1"));
    let model = BlockLmf::<f32>::new(&names, &BlockSpec::Pairs, 2, 2, 1.0, 0).unwrap();
    let v = Matrix::filled(4, 3, 0.5f32);
    let a = Matrix::filled(4, 2, 0.5f32);
    let views = [v.as_mat_ref(), a.as_mat_ref()];
    let opts = LmfOptions::default();
    // Negative lambda.
    let t = Matrix::filled(4, 2, 0.0f32);
    let e = model
        .loss_and_gradients(&views, t.as_mat_ref(), Loss::Mse, -1.0, &opts)
        .unwrap_err()
        .to_string();
    assert!(e.contains("lambda"), "{e}");
    // Labels outside 0..h.
    let labels = Matrix::from_vec(4, 1, vec![0.0f32, 1.0, 2.0, 0.0]).unwrap();
    let e = model
        .loss_and_gradients(&views, labels.as_mat_ref(), Loss::CrossEntropy, 0.0, &opts)
        .unwrap_err()
        .to_string();
    assert!(e.contains("class label 2"), "{e}");
    let half = Matrix::from_vec(4, 1, vec![0.0f32, 0.5, 1.0, 0.0]).unwrap();
    assert!(model
        .loss_and_gradients(&views, half.as_mat_ref(), Loss::CrossEntropy, 0.0, &opts)
        .is_err());
    // Wrong feature count, NaN input.
    let wide = Matrix::filled(4, 5, 0.5f32);
    assert!(model
        .forward(&[v.as_mat_ref(), wide.as_mat_ref()], &opts)
        .is_err());
    let mut nan = Matrix::filled(4, 3, 0.5f32);
    nan.as_mut_slice()[5] = f32::NAN;
    assert!(model
        .forward(&[nan.as_mat_ref(), a.as_mat_ref()], &opts)
        .is_err());
    // Options.
    let mut m = model.clone();
    let bad = BlockTrainOptions {
        reg: f64::NAN,
        ..Default::default()
    };
    assert!(m.train(&views, t.as_mat_ref(), &bad, |_| {}).is_err());
    let bad = BlockTrainOptions {
        optimizer: Optimizer::Sgd { momentum: 1.0 },
        ..Default::default()
    };
    assert!(m.train(&views, t.as_mat_ref(), &bad, |_| {}).is_err());
    assert_eq!(m, model, "a refused run changes nothing");
    // xent needs h >= 2.
    let one = BlockLmf::<f32>::new(&names, &BlockSpec::Pairs, 2, 1, 1.0, 0).unwrap();
    let l1 = Matrix::filled(4, 1, 0.0f32);
    assert!(one
        .loss_and_gradients(&views, l1.as_mat_ref(), Loss::CrossEntropy, 0.0, &opts)
        .unwrap_err()
        .to_string()
        .contains("h >= 2"));
    // The plain model refuses cross-entropy.
    let plain = LmfModel::<f32>::new(&names, 2, 2, 0).unwrap();
    assert!(plain
        .loss_and_gradients(&views, labels.as_mat_ref(), Loss::CrossEntropy, &opts)
        .unwrap_err()
        .to_string()
        .contains("block model"));
}
