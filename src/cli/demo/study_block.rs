//! The demo's block LMF step, on the LMF study's data: the block low-rank fusion model
//! (`mmfuse::lmf::blockwise`, unimodal and pair blocks, p = 1) trained on the same split as
//! plain LMF, its validation loss, and its relevance per block beside the kernel side's on the
//! same data and the same blocks.
//!
//! The kernel side here is MKL with the squared loss over centred linear kernels per modality
//! and their pair products: the same function class as the block model (a linear map per
//! modality, a bilinear one per pair, on centred and scaled inputs), with the penalties
//! matched. MKL minimises `1/2 (sum_I ||w_I||^q)^(2/q) + C/2 sum_i r_i^2`, which divided by
//! `C n / 2` is the block model's `mean r^2 + lambda (sum_I ||W_I||^q)^(2/q)` with
//! `lambda = 1 / (C n)`. So the two differ only in the rank limit and in how they are solved
//! (a certified convex solver against mini-batch Adam on a non-convex factorisation), and their
//! relevances should agree; the chart shows whether they do.

use super::simulate::{pick, rows, Study};
use crate::cli::bars::{BarChart, BarSeries};
use crate::cli::svg::{BLUE, ORANGE};
use mmfuse::blocks::BlockSpec;
use mmfuse::error::{Error, Result};
use mmfuse::gram::{cross_gram, gram, GramOptions, Kernel};
use mmfuse::lmf::blockwise::{BlockEpochReport, BlockLmf, BlockTrainOptions, Optimizer};
use mmfuse::lmf::Loss;
use mmfuse::matrix::Matrix;
use mmfuse::mkl::{BlockKernels, MklModel, MklOptions};
use std::time::Instant;

/// The relevance exponent of both sides.
pub(crate) const P: f64 = 1.0;
/// MKL's cost; the block model's penalty weight is `1 / (C n_train)`.
pub(crate) const C: f64 = 1.0;
/// Block model training: at least `EPOCHS` epochs and `MIN_STEPS` optimiser steps (the
/// relevance of a small training split settles only after about as many steps as that of the
/// default 420 rows), mini-batches of `BATCH`, Adam's learning rate.
pub(crate) const EPOCHS: usize = 100;
pub(crate) const MIN_STEPS: usize = 700;
pub(crate) const BATCH: usize = 64;
pub(crate) const LR: f64 = 1e-2;

/// The number of epochs for `n_train` training rows: 100 for the default 420.
pub(crate) fn epochs_for(n_train: usize) -> usize {
    let steps_per_epoch = n_train.div_ceil(BATCH).max(1);
    EPOCHS.max(MIN_STEPS.div_ceil(steps_per_epoch))
}

/// What the step produces.
pub(crate) struct BlockStudy {
    pub rank: usize,
    pub epochs: usize,
    /// The block model's penalty weight lambda = 1 / (C n_train).
    pub reg: f64,
    pub blocks: Vec<String>,
    pub train_loss: Vec<f64>,
    pub val_loss: Vec<f64>,
    /// The block model's relevance shares and block norms, in block order.
    pub relevance: Vec<f64>,
    pub norms: Vec<f64>,
    pub seconds: f64,
    /// The kernel side: relevance shares in block order, held-out MSE, duality gap, seconds.
    pub mkl_relevance: Vec<f64>,
    pub mkl_val_mse: f64,
    pub mkl_gap: f64,
    pub mkl_seconds: f64,
    /// Spearman's rank correlation of the two relevance vectors (average ranks for ties) and
    /// their largest difference.
    pub spearman: f64,
    pub max_share_gap: f64,
    pub svg: String,
}

impl BlockStudy {
    /// The block model's validation MSE after the last epoch.
    pub fn final_val(&self) -> f64 {
        self.val_loss.last().copied().unwrap_or(f64::NAN)
    }
}

/// Trains the block model and fits the kernel side on `study` (training split for training,
/// held-out split for validation); `on_epoch` is called after every epoch of the block model.
pub(crate) fn run(
    study: &Study,
    rank: usize,
    seed: u64,
    on_epoch: &mut dyn FnMut(&BlockEpochReport),
) -> Result<BlockStudy> {
    let names: Vec<&str> = study.modalities.iter().map(|m| m.name).collect();
    let n_train = study.train.len();
    let reg = 1.0 / (C * n_train as f64);
    let epochs = epochs_for(n_train);

    // The tensor side. Training rows first, then the held-out rows: the trainer validates on
    // the last rows.
    let order: Vec<usize> = study.train.iter().chain(&study.test).copied().collect();
    let n = order.len();
    let inputs: Vec<Matrix<f64>> = study
        .modalities
        .iter()
        .map(|m| rows(&m.x, &order))
        .collect();
    let target = Matrix::from_vec(n, 1, pick(&study.target, &order))?;
    let dims: Vec<(&str, usize)> = study
        .modalities
        .iter()
        .map(|m| (m.name, m.x.ncols()))
        .collect();
    let mut model = BlockLmf::<f64>::new(&dims, &BlockSpec::Pairs, rank, 1, P, seed)?;
    let opts = BlockTrainOptions {
        epochs,
        batch_size: BATCH,
        lr: LR,
        loss: Loss::Mse,
        reg,
        optimizer: Optimizer::default(),
        seed,
        // floor(fraction * n) must be exactly the held-out count.
        validation_fraction: (study.test.len() as f64 + 0.5) / n as f64,
        ..BlockTrainOptions::default()
    };
    let views: Vec<_> = inputs.iter().map(|x| x.as_mat_ref()).collect();
    let t = Instant::now();
    let history = model.train(&views, target.as_mat_ref(), &opts, |r| on_epoch(r))?;
    let seconds = t.elapsed().as_secs_f64();
    let rel = model.relevance()?;

    // The kernel side on the same split and blocks.
    let t = Instant::now();
    let go = GramOptions::default();
    let mut raw = Vec::new();
    let mut cross = Vec::new();
    for m in &study.modalities {
        let (tr, te) = (rows(&m.x, &study.train), rows(&m.x, &study.test));
        raw.push(gram(tr.as_mat_ref(), &Kernel::Linear, &go)?);
        cross.push(cross_gram(
            te.as_mat_ref(),
            tr.as_mat_ref(),
            &Kernel::Linear,
            &go,
        )?);
    }
    let refs: Vec<&Matrix<f64>> = raw.iter().collect();
    let (bk, ks) = BlockKernels::fit(&names, &refs, &BlockSpec::Pairs)?;
    let y_train = pick(&study.target, &study.train);
    let mkl = MklModel::fit_regressor(
        &ks.iter().collect::<Vec<_>>(),
        &y_train,
        &MklOptions {
            p: P,
            c: C,
            ..MklOptions::default()
        },
    )?
    .with_blocks(bk)?;
    let test_blocks = mkl.block_test_kernels(&cross.iter().collect::<Vec<_>>())?;
    let pred = mkl.predict(&test_blocks.iter().collect::<Vec<_>>())?;
    let y_test = pick(&study.target, &study.test);
    let mkl_val_mse = pred
        .iter()
        .zip(&y_test)
        .map(|(a, b)| (a - b).powi(2))
        .sum::<f64>()
        / y_test.len().max(1) as f64;
    let mkl_seconds = t.elapsed().as_secs_f64();
    let mkl_rel = mkl.relevance();
    // Both sides resolve the same spec over the same names: the same blocks in the same order.
    if !mkl_rel.iter().map(|(b, _)| b).eq(rel.blocks.iter()) {
        return Err(Error::Shape(format!(
            "the kernel side's blocks {:?} differ from the block model's {:?}",
            mkl_rel.iter().map(|(b, _)| b).collect::<Vec<_>>(),
            rel.blocks
        )));
    }
    let mkl_relevance: Vec<f64> = mkl_rel.into_iter().map(|(_, s)| s).collect();

    let max_share_gap = rel
        .shares
        .iter()
        .zip(&mkl_relevance)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f64::max);
    let svg = BarChart {
        title: format!(
            "Relevance per block (p = {}): MKL (kernel side) vs block LMF",
            mmfuse::mkl::p_label(P)
        ),
        y_label: "relevance (share)".into(),
        categories: rel.blocks.clone(),
        series: vec![
            BarSeries {
                name: "MKL, centred linear kernels".into(),
                color: BLUE,
                values: mkl_relevance.clone(),
            },
            BarSeries {
                name: format!("block LMF, rank {rank}"),
                color: ORANGE,
                values: rel.shares.clone(),
            },
        ],
        y_range: (0.0, 1.0),
    }
    .to_svg();
    Ok(BlockStudy {
        rank,
        epochs,
        reg,
        spearman: spearman(&rel.shares, &mkl_relevance),
        max_share_gap,
        blocks: rel.blocks,
        train_loss: history.train_loss,
        val_loss: history.val_loss,
        relevance: rel.shares,
        norms: rel.norms,
        seconds,
        mkl_relevance,
        mkl_val_mse,
        mkl_gap: mkl.fits[0].gap,
        mkl_seconds,
        svg,
    })
}

/// Spearman's rank correlation with average ranks for ties (the Pearson correlation of the
/// ranks); NaN when either vector is constant.
pub(crate) fn spearman(a: &[f64], b: &[f64]) -> f64 {
    fn ranks(v: &[f64]) -> Vec<f64> {
        let mut idx: Vec<usize> = (0..v.len()).collect();
        idx.sort_by(|&i, &j| v[i].total_cmp(&v[j]));
        let mut r = vec![0.0; v.len()];
        let mut i = 0;
        while i < idx.len() {
            let mut j = i;
            while j + 1 < idx.len() && v[idx[j + 1]] == v[idx[i]] {
                j += 1;
            }
            for &k in &idx[i..=j] {
                r[k] = (i + j) as f64 / 2.0 + 1.0;
            }
            i = j + 1;
        }
        r
    }
    let (ra, rb) = (ranks(a), ranks(b));
    let n = a.len().min(b.len()) as f64;
    let (ma, mb) = (ra.iter().sum::<f64>() / n, rb.iter().sum::<f64>() / n);
    let cov: f64 = ra.iter().zip(&rb).map(|(x, y)| (x - ma) * (y - mb)).sum();
    let va: f64 = ra.iter().map(|x| (x - ma).powi(2)).sum();
    let vb: f64 = rb.iter().map(|y| (y - mb).powi(2)).sum();
    cov / (va * vb).sqrt()
}

#[cfg(test)]
mod tests {
    use super::super::simulate::simulate;
    use super::super::study_lmf::{self, LmfSettings};
    use super::*;

    #[test]
    fn spearman_with_ties() {
        assert!((spearman(&[1.0, 2.0, 3.0], &[30.0, 20.0, 10.0]) + 1.0).abs() < 1e-15);
        let want = 1.5 / (1.5f64 * 2.0).sqrt();
        assert!((spearman(&[0.0, 0.0, 5.0], &[1.0, 2.0, 3.0]) - want).abs() < 1e-15);
    }

    /// Generalisation on the demo's LMF data (the default demo's sizes: 600 samples, 420 for
    /// training): the block model's validation MSE is below the mean predictor's and below
    /// plain LMF's (the demo's default settings), for the demo's seed and four more. Over
    /// seeds 42 and 0..20 the block model's validation MSE is at most 0.26 of the mean
    /// predictor's (asserted: below half), plain LMF's at least 2.03 times the mean
    /// predictor's and at least 9.7 times the block model's.
    #[test]
    fn block_lmf_generalises_on_the_demo_data() {
        // MMFUSE_DEMO_SEEDS=k checks seeds 42 and 0..k-1 (and prints the numbers).
        let k: u64 = std::env::var("MMFUSE_DEMO_SEEDS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(4);
        for seed in std::iter::once(42u64).chain(0..k) {
            let study = simulate(600, seed);
            let plain = study_lmf::run(
                &study,
                &LmfSettings {
                    rank: 4,
                    epochs: 20,
                    batch: 32,
                    lr: 1e-3,
                    seed,
                },
                &mut |_| {},
            )
            .unwrap();
            let block = run(&study, 4, seed, &mut |_| {}).unwrap();
            let (b, base) = (block.final_val(), plain.baseline_mse);
            let p = plain.val_loss.last().copied().unwrap();
            println!(
                "seed {seed}: block {b:.4}, mean predictor {base:.4}, plain LMF {p:.4}, MKL {:.4}",
                block.mkl_val_mse
            );
            assert!(
                b < 0.5 * base,
                "seed {seed}: block {b} vs mean predictor {base}"
            );
            assert!(b < p, "seed {seed}: block {b} vs plain LMF {p}");
        }
    }
}
