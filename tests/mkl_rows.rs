//! MKL from data with rows on demand (`fit_from_data`, docs/design.md section 10) against the
//! dense path on the same kernels: same optimum within the duality gap, same predictions, and
//! the solver's machinery (tiny caches, shrinking on and off, cancellation) changing nothing.

use mmfuse::blocks::BlockSpec;
use mmfuse::gram::{GramOptions, Kernel, Normalization};
use mmfuse::mkl::{
    fit_from_data, BlockKernels, DataKernel, DataModality, MklModel, MklOptions, RowOptions,
    RowPrecision,
};
use mmfuse::{Error, Matrix};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

/// Three modalities; the label depends on the first, on the second weakly and on a product
/// of the first and third (so that `pairs` has something to find).
fn problem(n: usize, seed: u64) -> (Vec<Matrix<f64>>, Vec<f64>) {
    problem_with_dims(n, [5, 3, 4], seed)
}

/// [`problem`] with other feature counts (each at least 2).
fn problem_with_dims(n: usize, dims: [usize; 3], seed: u64) -> (Vec<Matrix<f64>>, Vec<f64>) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let xs: Vec<Matrix<f64>> = dims
        .iter()
        .map(|&d| {
            Matrix::from_vec(
                n,
                d,
                (0..n * d).map(|_| rng.random_range(-1.0..1.0)).collect(),
            )
            .unwrap()
        })
        .collect();
    let labels = (0..n)
        .map(|i| {
            let s = xs[0].get(i, 0)
                + 0.3 * xs[1].get(i, 1)
                + 1.5 * xs[0].get(i, 1) * xs[2].get(i, 0)
                + 0.2 * rng.random_range(-1.0..1.0);
            if s > 0.0 {
                1.0
            } else {
                -1.0
            }
        })
        .collect();
    (xs, labels)
}

fn kernels() -> [Kernel; 3] {
    [Kernel::rbf(0.5), Kernel::Linear, Kernel::rbf(0.3)]
}

const NAMES: [&str; 3] = ["visual", "audio", "text"];

fn views<'a>(xs: &'a [Matrix<f64>]) -> Vec<DataModality<'a>> {
    xs.iter()
        .zip(NAMES)
        .zip(kernels())
        .map(|((x, name), kernel)| DataModality {
            name,
            data: x.as_mat_ref(),
            kernel,
        })
        .collect()
}

fn tight() -> MklOptions {
    MklOptions {
        eps: 1e-6,
        tol: 1e-5,
        ..MklOptions::default()
    }
}

fn f64_rows() -> RowOptions {
    RowOptions {
        precision: RowPrecision::F64,
        ..RowOptions::default()
    }
}

/// The dense reference: n x n kernels, `MklModel::fit_classifier`, then the data-driven form.
fn dense(
    xs: &[Matrix<f64>],
    labels: &[f64],
    normalization: Normalization,
    spec: &BlockSpec,
    opts: &MklOptions,
) -> MklModel {
    let go = GramOptions::default();
    let norm = if *spec == BlockSpec::None {
        normalization
    } else {
        Normalization::None
    };
    let (data, ks): (Vec<DataKernel>, Vec<Matrix<f64>>) = xs
        .iter()
        .zip(NAMES)
        .zip(kernels())
        .map(|((x, name), k)| DataKernel::new(name, x.clone(), &k, norm, &go).unwrap())
        .unzip();
    if *spec == BlockSpec::None {
        let refs: Vec<&Matrix<f64>> = ks.iter().collect();
        MklModel::fit_classifier(&refs, labels, opts)
            .unwrap()
            .with_data(data)
            .unwrap()
    } else {
        let refs: Vec<&Matrix<f64>> = ks.iter().collect();
        let (bk, blocks) = BlockKernels::fit(&NAMES, &refs, spec).unwrap();
        let brefs: Vec<&Matrix<f64>> = blocks.iter().collect();
        MklModel::fit_classifier(&brefs, labels, opts)
            .unwrap()
            .with_blocks(bk)
            .unwrap()
            .with_data(data)
            .unwrap()
    }
}

fn test_set(xs: &[Matrix<f64>]) -> Vec<(&str, faer::MatRef<'_, f64>)> {
    NAMES
        .iter()
        .copied()
        .zip(xs.iter().map(|x| x.as_mat_ref()))
        .collect()
}

/// Both fits are eps-optimal for one convex problem: their objectives agree within the gaps
/// (P_rows >= D_dense and P_dense >= D_rows, up to the gap of each), and so do the weights
/// and decision values to the accuracy the gap allows.
fn assert_same_optimum(a: &MklModel, b: &MklModel, test: &[(&str, faer::MatRef<'_, f64>)]) {
    for (fa, fb) in a.fits.iter().zip(&b.fits) {
        assert!(fa.converged && fb.converged, "{} {}", fa.gap, fb.gap);
        let scale = fa.primal.abs().max(1.0);
        assert!(
            fa.primal + 1e-5 * scale >= fb.dual,
            "{} < {}",
            fa.primal,
            fb.dual
        );
        assert!(
            fb.primal + 1e-5 * scale >= fa.dual,
            "{} < {}",
            fb.primal,
            fa.dual
        );
        assert!(
            (fa.primal - fb.primal).abs() <= 1e-4 * scale,
            "{} vs {}",
            fa.primal,
            fb.primal
        );
        for (x, y) in fa.beta.iter().zip(&fb.beta) {
            assert!((x - y).abs() < 2e-2, "beta {:?} vs {:?}", fa.beta, fb.beta);
        }
    }
    let go = GramOptions::default();
    let da = a.decision_function_from_data(test, &go).unwrap();
    let db = b.decision_function_from_data(test, &go).unwrap();
    for (ca, cb) in da.iter().zip(&db) {
        let big = ca.iter().fold(1.0f64, |m, v| m.max(v.abs()));
        for (x, y) in ca.iter().zip(cb) {
            assert!((x - y).abs() < 2e-2 * big, "decision {x} vs {y}");
        }
    }
    assert_eq!(
        a.predict_from_data(test, &go).unwrap().len(),
        b.predict_from_data(test, &go).unwrap().len()
    );
}

fn fit(
    xs: &[Matrix<f64>],
    labels: &[f64],
    normalization: Normalization,
    spec: &BlockSpec,
    opts: &MklOptions,
    rows: &RowOptions,
) -> mmfuse::Result<(MklModel, mmfuse::mkl::RowFitStats)> {
    fit_from_data(
        &views(xs),
        normalization,
        spec,
        labels,
        opts,
        rows,
        &mut |_| {},
    )
}

#[test]
fn matches_dense_for_each_normalisation() {
    let (xs, labels) = problem(160, 1);
    let (xt, _) = problem(50, 2);
    for norm in [
        Normalization::None,
        Normalization::Trace,
        Normalization::UnitDiag,
        Normalization::Center,
    ] {
        let reference = dense(&xs, &labels, norm, &BlockSpec::None, &tight());
        let (model, stats) =
            fit(&xs, &labels, norm, &BlockSpec::None, &tight(), &f64_rows()).unwrap();
        assert_same_optimum(&model, &reference, &test_set(&xt));
        if norm == Normalization::Center {
            assert_eq!(stats.stored_rows, 160);
        } else {
            // Only the support vectors are kept, and predictions do not change for it.
            assert_eq!(stats.stored_rows, model.fits[0].n_support, "{norm:?}");
            assert_eq!(model.data[0].train.nrows(), stats.stored_rows);
        }
        assert_eq!(stats.precision, "f64");
    }
}

#[test]
fn matches_dense_with_interaction_blocks() {
    let (xs, labels) = problem(150, 3);
    let (xt, _) = problem(40, 4);
    let reference = dense(
        &xs,
        &labels,
        Normalization::None,
        &BlockSpec::Pairs,
        &tight(),
    );
    let (model, _) = fit(
        &xs,
        &labels,
        Normalization::None,
        &BlockSpec::Pairs,
        &tight(),
        &f64_rows(),
    )
    .unwrap();
    assert_eq!(model.kernel_names(), reference.kernel_names());
    assert_same_optimum(&model, &reference, &test_set(&xt));
    // A normalisation on top of the blocks' own is refused, not silently ignored.
    let err = fit(
        &xs,
        &labels,
        Normalization::Trace,
        &BlockSpec::Pairs,
        &tight(),
        &f64_rows(),
    )
    .unwrap_err();
    assert!(err.to_string().contains("Normalization::None"), "{err}");
}

#[test]
fn f32_rows_reach_the_same_optimum_within_their_rounding() {
    let (xs, labels) = problem(160, 5);
    let (xt, _) = problem(30, 6);
    let opts = MklOptions {
        eps: 1e-4,
        tol: 1e-3,
        ..MklOptions::default()
    };
    let reference = dense(&xs, &labels, Normalization::Trace, &BlockSpec::None, &opts);
    let (model, stats) = fit(
        &xs,
        &labels,
        Normalization::Trace,
        &BlockSpec::None,
        &opts,
        &RowOptions::default(),
    )
    .unwrap();
    assert_eq!(stats.precision, "f32");
    let (fa, fb) = (&model.fits[0], &reference.fits[0]);
    // f32 rows perturb the kernel by about 1e-7 relative: the objectives agree to the gap.
    let scale = fb.primal.abs();
    assert!(
        (fa.primal - fb.primal).abs() <= 1e-3 * scale,
        "{} {}",
        fa.primal,
        fb.primal
    );
    let go = GramOptions::default();
    let pa = model.predict_from_data(&test_set(&xt), &go).unwrap();
    let pb = reference.predict_from_data(&test_set(&xt), &go).unwrap();
    let same = pa.iter().zip(&pb).filter(|(a, b)| a == b).count();
    assert!(same >= 28, "{same} of 30 predictions agree");
}

#[test]
fn tiny_cache_and_shrinking_change_nothing_but_the_counters() {
    let (xs, labels) = problem(300, 7);
    let (xt, _) = problem(30, 8);
    let opts = tight();
    let roomy = f64_rows();
    // Two rows of 300 f64 values: every other fetch evicts.
    let tiny = RowOptions {
        cache_bytes: Some(2 * 300 * 8),
        ..f64_rows()
    };
    let no_shrink = RowOptions {
        no_shrinking: true,
        ..f64_rows()
    };
    let (a, sa) = fit(
        &xs,
        &labels,
        Normalization::Trace,
        &BlockSpec::None,
        &opts,
        &roomy,
    )
    .unwrap();
    let (b, sb) = fit(
        &xs,
        &labels,
        Normalization::Trace,
        &BlockSpec::None,
        &opts,
        &tiny,
    )
    .unwrap();
    let (c, sc) = fit(
        &xs,
        &labels,
        Normalization::Trace,
        &BlockSpec::None,
        &opts,
        &no_shrink,
    )
    .unwrap();
    assert!(sb.solver.cache.evictions > 0, "{:?}", sb.solver);
    // The budget is in bytes: rows cut to a shrunk active set are shorter, so more fit.
    assert!(
        sb.solver.cache.max_rows * sb.solver.min_active <= 2 * 300,
        "{:?}",
        sb.solver
    );
    assert!(
        sa.solver.shrinks > 0,
        "shrinking never cut the active set: {:?}",
        sa.solver
    );
    assert!(sa.solver.min_active < 300);
    assert_eq!(sc.solver.shrinks, 0);
    assert!(sa.solver.cache.hits > 0);
    let test = test_set(&xt);
    assert_same_optimum(&a, &b, &test);
    assert_same_optimum(&a, &c, &test);
}

#[test]
fn one_vs_rest_matches_dense() {
    let (xs, labels) = problem(150, 9);
    let (xt, _) = problem(30, 10);
    // Three classes from the first feature.
    let labels: Vec<f64> = (0..150)
        .map(|i| {
            let v = xs[0].get(i, 0);
            if v < -0.3 {
                0.0
            } else if v < 0.3 {
                1.0
            } else {
                2.0
            }
        })
        .zip(&labels)
        .map(|(c, _)| c)
        .collect();
    let reference = dense(
        &xs,
        &labels,
        Normalization::Trace,
        &BlockSpec::None,
        &tight(),
    );
    let mut seen = Vec::new();
    let (model, _) = fit_from_data(
        &views(&xs),
        Normalization::Trace,
        &BlockSpec::None,
        &labels,
        &tight(),
        &f64_rows(),
        &mut |p| seen.push((p.problem, p.iteration, p.gap)),
    )
    .unwrap();
    assert_eq!(model.classes, vec![0.0, 1.0, 2.0]);
    assert_eq!(model.fits.len(), 3);
    assert_same_optimum(&model, &reference, &test_set(&xt));
    // Progress came for every problem, iterations counting from the first.
    for p in 0..3 {
        assert!(seen.iter().any(|s| s.0 == p), "no progress for problem {p}");
    }
    // The stored rows are the union of the problems' support vectors.
    let union = (0..150)
        .filter(|&i| reference.fits.iter().any(|f| f.coef[i] != 0.0))
        .count();
    assert!(model.data[0].train.nrows() <= 150);
    assert!(model.data[0].train.nrows() + 5 >= union.min(150) / 2);
}

#[test]
fn model_round_trips_through_its_file() {
    let (xs, labels) = problem(120, 11);
    let (model, _) = fit(
        &xs,
        &labels,
        Normalization::UnitDiag,
        &BlockSpec::None,
        &MklOptions::default(),
        &RowOptions::default(),
    )
    .unwrap();
    let back = MklModel::from_bytes(&model.to_bytes().unwrap()).unwrap();
    assert_eq!(back, model);
}

#[test]
fn refuses_what_it_cannot_do() {
    let (xs, labels) = problem(100, 12);
    let opts = MklOptions::default();
    // The squared loss.
    let sq = MklOptions {
        loss: mmfuse::mkl::Loss::Squared,
        ..opts.clone()
    };
    let e = fit(
        &xs,
        &labels,
        Normalization::Trace,
        &BlockSpec::None,
        &sq,
        &f64_rows(),
    )
    .unwrap_err();
    assert!(e.to_string().contains("squared loss"), "{e}");
    // A cache below two rows.
    let small = RowOptions {
        cache_bytes: Some(100 * 8 + 7),
        ..f64_rows()
    };
    let e = fit(
        &xs,
        &labels,
        Normalization::Trace,
        &BlockSpec::None,
        &opts,
        &small,
    )
    .unwrap_err();
    assert!(e.to_string().contains("two kernel rows"), "{e}");
    // A cache above the memory cap.
    let huge = RowOptions {
        cache_bytes: Some(u64::MAX / 2),
        ..f64_rows()
    };
    let e = fit(
        &xs,
        &labels,
        Normalization::Trace,
        &BlockSpec::None,
        &opts,
        &huge,
    )
    .unwrap_err();
    assert!(matches!(e, Error::TooLarge { .. }), "{e}");
    // Shapes, NaN, one class, nothing at all.
    let short = Matrix::from_vec(99, 3, vec![0.0; 297]).unwrap();
    let mut bad = views(&xs);
    bad[1].data = short.as_mat_ref();
    let e = fit_from_data(
        &bad,
        Normalization::Trace,
        &BlockSpec::None,
        &labels,
        &opts,
        &f64_rows(),
        &mut |_| {},
    )
    .unwrap_err();
    assert!(matches!(e, Error::Shape(_)), "{e}");
    let mut nan = xs.clone();
    let d = nan[2].ncols();
    nan[2].as_mut_slice()[7 * d + 1] = f64::NAN;
    let e = fit(
        &nan,
        &labels,
        Normalization::Trace,
        &BlockSpec::None,
        &opts,
        &f64_rows(),
    )
    .unwrap_err();
    assert!(matches!(e, Error::NonFinite { row: 7, col: 1, .. }), "{e}");
    let e = fit(
        &xs,
        &vec![1.0; 100],
        Normalization::Trace,
        &BlockSpec::None,
        &opts,
        &f64_rows(),
    )
    .unwrap_err();
    assert!(e.to_string().contains("two classes"), "{e}");
    let e = fit_from_data(
        &[],
        Normalization::Trace,
        &BlockSpec::None,
        &labels,
        &opts,
        &f64_rows(),
        &mut |_| {},
    )
    .unwrap_err();
    assert!(matches!(e, Error::Empty(_)), "{e}");
    let e = fit(
        &xs,
        &labels[..50],
        Normalization::Trace,
        &BlockSpec::None,
        &opts,
        &f64_rows(),
    )
    .unwrap_err();
    assert!(matches!(e, Error::Shape(_)), "{e}");
}

#[test]
fn a_set_cancel_flag_stops_the_fit() {
    let (xs, labels) = problem(100, 13);
    let flag = Arc::new(AtomicBool::new(true));
    let rows = RowOptions {
        cancel: Some(flag),
        ..RowOptions::default()
    };
    let e = fit(
        &xs,
        &labels,
        Normalization::Trace,
        &BlockSpec::None,
        &MklOptions::default(),
        &rows,
    )
    .unwrap_err();
    assert!(matches!(e, Error::Cancelled(_)), "{e}");
}

#[test]
fn results_do_not_depend_on_the_thread_count() {
    let (xs, labels) = problem(200, 14);
    let one = RowOptions {
        threads: Some(1),
        ..RowOptions::default()
    };
    let two = RowOptions {
        threads: Some(2),
        ..RowOptions::default()
    };
    let opts = MklOptions::default();
    let (a, _) = fit(
        &xs,
        &labels,
        Normalization::None,
        &BlockSpec::Pairs,
        &opts,
        &one,
    )
    .unwrap();
    let (b, _) = fit(
        &xs,
        &labels,
        Normalization::None,
        &BlockSpec::Pairs,
        &opts,
        &two,
    )
    .unwrap();
    assert_eq!(a.fits, b.fits);
}

#[test]
fn prediction_in_row_blocks_equals_one_whole_test_kernel() {
    let (xs, labels) = problem(200, 15);
    let n_test = 2 * mmfuse::mkl::PREDICT_BLOCK + 37;
    let (xt, _) = problem(n_test, 16);
    for (norm, spec) in [
        (Normalization::UnitDiag, BlockSpec::None),
        (Normalization::None, BlockSpec::Pairs),
    ] {
        let (model, _) = fit(
            &xs,
            &labels,
            norm,
            &spec,
            &MklOptions::default(),
            &RowOptions::default(),
        )
        .unwrap();
        let test = test_set(&xt);
        let go = GramOptions::default();
        let blocked = model.decision_function_from_data(&test, &go).unwrap();
        let whole = model.test_kernels(&test, &go).unwrap();
        let expect = model
            .decision_function(&whole.iter().collect::<Vec<_>>())
            .unwrap();
        assert_eq!(blocked, expect);
        assert_eq!(blocked[0].len(), n_test);
    }
}

proptest::proptest! {
    // Two fits per case (dense and rows) at tight tolerances: a fixed, moderate case count.
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(16))]

    /// Random shapes (sample counts and feature counts off any block size), normalisations,
    /// blocks, cache budgets (down to two rows) and shrinking on or off: the rows solver
    /// reaches the dense solver's optimum.
    #[test]
    fn rows_and_dense_agree_on_random_shapes(
        n in 12usize..90,
        d0 in 2usize..9,
        d1 in 2usize..5,
        d2 in 2usize..7,
        norm in 0usize..4,
        pairs in proptest::bool::ANY,
        tiny_cache in proptest::bool::ANY,
        no_shrinking in proptest::bool::ANY,
        seed in 0u64..1000,
    ) {
        let (xs, mut labels) = problem_with_dims(n, [d0, d1, d2], seed);
        // Both classes, whatever the draw.
        labels[0] = 1.0;
        labels[1] = -1.0;
        let (xt, _) = problem_with_dims(17, [d0, d1, d2], seed + 1);
        // Blocks are centred and trace-normalised by construction (no other normalisation).
        let normalization = if pairs {
            Normalization::None
        } else {
            [
                Normalization::None,
                Normalization::Trace,
                Normalization::UnitDiag,
                Normalization::Center,
            ][norm]
        };
        let spec = if pairs { BlockSpec::Pairs } else { BlockSpec::None };
        let rows = RowOptions {
            // Two f64 rows of every kernel the solver reads (3 modalities, 3 pairs).
            cache_bytes: tiny_cache.then_some((2 * 6 * n * 8) as u64),
            no_shrinking,
            ..f64_rows()
        };
        let want = dense(&xs, &labels, normalization, &spec, &tight());
        let (got, _) = fit(&xs, &labels, normalization, &spec, &tight(), &rows).unwrap();
        assert_same_optimum(&got, &want, &test_set(&xt));
    }
}
