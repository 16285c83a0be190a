//! The demo's real-data study: the UCI Multiple Features digits shipped with mmfuse (2,000
//! samples, 10 classes, six views). An SVM per view, the average of the six kernels, and MKL
//! (one-vs-rest, C = 10) without and with pair interactions for p in {1, 4/3, 2}: held-out
//! accuracy, relevance per view and per block, timings.

use crate::cli::bars::{BarChart, BarSeries, GREEN};
use crate::cli::svg::{BLUE, ORANGE};
use mmfuse::blocks::BlockSpec;
use mmfuse::datasets::{mfeat, standardize};
use mmfuse::error::Result;
use mmfuse::gram::{combine, cross_gram, gram, GramOptions, Kernel};
use mmfuse::matrix::Matrix;
use mmfuse::mkl::{p_label, BlockKernels, MklModel, MklOptions};
use std::time::Instant;

/// The seed of the stratified 70/30 split (the one `tests/datasets.rs` measures on).
pub(crate) const SPLIT_SEED: u64 = 12;
/// The SVM cost used throughout.
const C: f64 = 10.0;

/// One MKL configuration's result.
pub(crate) struct MfeatFit {
    pub p: f64,
    pub interactions: bool,
    pub accuracy: f64,
    /// Relevance per block (averaged over the 10 one-vs-rest fits), in block order.
    pub relevance: Vec<(String, f64)>,
    pub seconds: f64,
}

/// The study's outcome.
pub(crate) struct MfeatStudy {
    pub n_train: usize,
    pub n_test: usize,
    /// (view, features, accuracy of an SVM on the view alone, seconds).
    pub views: Vec<(String, usize, f64, f64)>,
    pub average_accuracy: f64,
    pub fits: Vec<MfeatFit>,
    pub kernel_seconds: f64,
    pub svg: String,
}

fn accuracy(pred: &[f64], truth: &[f64]) -> f64 {
    pred.iter().zip(truth).filter(|(a, b)| a == b).count() as f64 / truth.len() as f64
}

/// Runs the study for the given values of p.
pub(crate) fn run(ps: &[f64], tick: &mut dyn FnMut(&str)) -> Result<MfeatStudy> {
    let data = mfeat()?;
    let (tr, te) = data.stratified_split(0.3, SPLIT_SEED)?;
    let (train, test) = (data.subset(&tr)?, data.subset(&te)?);
    let opts = GramOptions::default();
    let t = Instant::now();
    let mut train_k = Vec::new();
    let mut test_k = Vec::new();
    let mut names = Vec::new();
    for ((name, xtr), (_, xte)) in train.views.iter().zip(&test.views) {
        let (xtr, xte) = standardize(xtr, xte)?;
        let kernel = Kernel::rbf(1.0 / xtr.ncols() as f64);
        train_k.push(gram(xtr.as_mat_ref(), &kernel, &opts)?);
        test_k.push(cross_gram(
            xte.as_mat_ref(),
            xtr.as_mat_ref(),
            &kernel,
            &opts,
        )?);
        names.push(name.clone());
    }
    let kernel_seconds = t.elapsed().as_secs_f64();
    tick("kernels");
    let svm = MklOptions {
        p: f64::INFINITY,
        c: C,
        ..MklOptions::default()
    };
    let mut views = Vec::new();
    for (k, ((name, x), (ktr, kte))) in train
        .views
        .iter()
        .zip(train_k.iter().zip(&test_k))
        .enumerate()
    {
        let t = Instant::now();
        let model = MklModel::fit_classifier(&[ktr], &train.labels, &svm)?;
        let acc = accuracy(&model.predict(&[kte])?, &test.labels);
        views.push((name.clone(), x.ncols(), acc, t.elapsed().as_secs_f64()));
        tick(&format!("SVM on view {}", k + 1));
    }
    let w = vec![1.0 / train_k.len() as f64; train_k.len()];
    let avg_tr = combine(&train_k.iter().collect::<Vec<_>>(), &w)?;
    let avg_te = combine(&test_k.iter().collect::<Vec<_>>(), &w)?;
    let model = MklModel::fit_classifier(&[&avg_tr], &train.labels, &svm)?;
    let average_accuracy = accuracy(&model.predict(&[&avg_te])?, &test.labels);
    tick("average kernel");

    let name_refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let tr_refs: Vec<&Matrix<f64>> = train_k.iter().collect();
    let te_refs: Vec<&Matrix<f64>> = test_k.iter().collect();
    let mut fits = Vec::new();
    for spec in [BlockSpec::None, BlockSpec::Pairs] {
        let (bk, blocks) = BlockKernels::fit(&name_refs, &tr_refs, &spec)?;
        let test_blocks = bk.test_kernels(&te_refs)?;
        for &p in ps {
            let t = Instant::now();
            // A relative gap of 1e-3: enough for accuracy and shares to three digits, and it
            // keeps p = 1 over 21 blocks x 10 classes to seconds.
            let o = MklOptions {
                p,
                c: C,
                eps: 1e-3,
                ..MklOptions::default()
            };
            let model =
                MklModel::fit_classifier(&blocks.iter().collect::<Vec<_>>(), &train.labels, &o)?
                    .with_blocks(bk.clone())?;
            let acc = accuracy(
                &model.predict(&test_blocks.iter().collect::<Vec<_>>())?,
                &test.labels,
            );
            fits.push(MfeatFit {
                p,
                interactions: spec != BlockSpec::None,
                accuracy: acc,
                relevance: model.relevance(),
                seconds: t.elapsed().as_secs_f64(),
            });
            tick(&format!(
                "MKL p = {}{}",
                p_label(p),
                if spec == BlockSpec::None {
                    ""
                } else {
                    " with pairs"
                }
            ));
        }
    }
    let colors = [BLUE, ORANGE, GREEN];
    let series = fits
        .iter()
        .filter(|f| !f.interactions)
        .zip(colors.iter().cycle())
        .map(|(f, c)| BarSeries {
            name: format!("p = {}", p_label(f.p)),
            color: c,
            values: f.relevance.iter().map(|(_, s)| *s).collect(),
        })
        .collect();
    let svg = BarChart {
        title: "Multiple Features: relevance per view (MKL, 10 classes)".into(),
        y_label: "weight share (mean over classes)".into(),
        categories: names.clone(),
        series,
        // Shares of six views: half the axis is enough and keeps the bars readable.
        y_range: (0.0, 0.5),
    }
    .to_svg();
    Ok(MfeatStudy {
        n_train: train.n_samples(),
        n_test: test.n_samples(),
        views,
        average_accuracy,
        fits,
        kernel_seconds,
        svg,
    })
}
