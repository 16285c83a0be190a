//! Step 4 of the demo: low-rank multimodal fusion regression on the three modalities (Adam,
//! MSE, mini-batches), with the training split for training and the held-out split for the
//! per-epoch validation loss. The step fails loudly if the training loss does not go down.

use super::simulate::{pick, rows, Study};
use crate::cli::svg::{Chart, Mark, Series, BLUE, ORANGE};
use mmfuse::error::{Error, Result};
use mmfuse::lmf::{EpochReport, LmfModel, LmfOptions, Loss, TrainOptions};
use mmfuse::matrix::Matrix;
use std::time::Instant;

/// Settings of step 4 (from the command line).
pub(crate) struct LmfSettings {
    pub rank: usize,
    pub epochs: usize,
    pub batch: usize,
    pub lr: f64,
    pub seed: u64,
}

/// What step 4 produces.
pub(crate) struct LmfStudy {
    pub train_loss: Vec<f64>,
    pub val_loss: Vec<f64>,
    /// Variance of the validation targets: the MSE of always predicting their mean.
    pub baseline_mse: f64,
    pub seconds: f64,
    pub svg: String,
    /// The trained model, for the throughput measurement.
    pub model: LmfModel<f32>,
}

/// Runs step 4; `on_epoch` is called after every epoch.
pub(crate) fn run(
    study: &Study,
    s: &LmfSettings,
    on_epoch: &mut dyn FnMut(&EpochReport),
) -> Result<LmfStudy> {
    // Training rows first, then the held-out rows: the trainer validates on the last rows.
    let order: Vec<usize> = study.train.iter().chain(&study.test).copied().collect();
    let n = order.len();
    let n_val = study.test.len();
    let inputs: Vec<Matrix<f32>> = study
        .modalities
        .iter()
        .map(|m| rows(&m.x, &order).map(|v| v as f32))
        .collect();
    let target: Vec<f32> = pick(&study.target, &order)
        .iter()
        .map(|&v| v as f32)
        .collect();
    let target = Matrix::from_vec(n, 1, target)?;
    let dims: Vec<(&str, usize)> = study
        .modalities
        .iter()
        .map(|m| (m.name, m.x.ncols()))
        .collect();
    let mut model = LmfModel::<f32>::new(&dims, s.rank, 1, s.seed)?;
    let opts = TrainOptions {
        epochs: s.epochs,
        batch_size: s.batch,
        lr: s.lr,
        loss: Loss::Mse,
        seed: s.seed,
        shuffle: true,
        // floor(fraction * n) must be exactly n_val.
        validation_fraction: (n_val as f64 + 0.5) / n as f64,
        exec: LmfOptions::default(),
        ..TrainOptions::default()
    };
    let views: Vec<_> = inputs.iter().map(|x| x.as_mat_ref()).collect();
    let t = Instant::now();
    let history = model.train(&views, target.as_mat_ref(), &opts, |r| on_epoch(r))?;
    let seconds = t.elapsed().as_secs_f64();
    let (first, last) = (
        history.train_loss[0],
        history.train_loss[history.train_loss.len() - 1],
    );
    // NaN never counts as a decrease.
    if history.train_loss.len() >= 2 && last.partial_cmp(&first) != Some(std::cmp::Ordering::Less) {
        return Err(Error::NotConverged(format!(
            "LMF training loss did not decrease: epoch 1 {first:.4e}, epoch {} {last:.4e}",
            history.train_loss.len()
        )));
    }
    let vt: Vec<f64> = pick(&study.target, &study.test);
    let mean = vt.iter().sum::<f64>() / vt.len().max(1) as f64;
    let baseline_mse = vt.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / vt.len().max(1) as f64;
    let epochs = |v: &[f64]| -> Vec<(f64, f64)> {
        v.iter()
            .enumerate()
            .map(|(e, &l)| ((e + 1) as f64, l))
            .collect()
    };
    let svg = Chart {
        title: format!("LMF regression (rank {}), MSE per epoch", s.rank),
        x_label: "epoch".into(),
        y_label: "mean squared error".into(),
        series: vec![
            Series {
                name: "train".into(),
                color: BLUE,
                mark: Mark::Line,
                points: epochs(&history.train_loss),
            },
            Series {
                name: "validation".into(),
                color: ORANGE,
                mark: Mark::Line,
                points: epochs(&history.val_loss),
            },
        ],
    }
    .to_svg();
    Ok(LmfStudy {
        train_loss: history.train_loss,
        val_loss: history.val_loss,
        baseline_mse,
        seconds,
        svg,
        model,
    })
}

/// LMF forward throughput of `model` on `batch` random samples: samples per second (median of
/// 5 timed runs after one warm-up).
pub(crate) fn forward_throughput(model: &LmfModel<f32>, batch: usize, seed: u64) -> Result<f64> {
    let mut rng = mmfuse::util::SplitMix64::new(seed);
    let inputs: Vec<Matrix<f32>> = model
        .dims()
        .iter()
        .map(|&d| {
            Matrix::from_vec(
                batch,
                d,
                (0..batch * d)
                    .map(|_| rng.next_f64() as f32 - 0.5)
                    .collect(),
            )
        })
        .collect::<Result<_>>()?;
    let views: Vec<_> = inputs.iter().map(|x| x.as_mat_ref()).collect();
    let fast = model.prescale();
    let opts = LmfOptions::default();
    fast.forward(&views, &opts)?;
    let mut times = Vec::new();
    for _ in 0..5 {
        let t = Instant::now();
        std::hint::black_box(fast.forward(&views, &opts)?);
        times.push(t.elapsed().as_secs_f64());
    }
    times.sort_by(|a, b| a.total_cmp(b));
    Ok(batch as f64 / times[2].max(1e-12))
}
