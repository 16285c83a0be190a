//! `mmfuse lmf train` and `mmfuse lmf forward`: low-rank multimodal fusion from .npy files,
//! weights in safetensors (the PyTorch reference layout).

use super::progress::bar;
use clap::{Args, Subcommand, ValueEnum};
use mmfuse::error::{Error, Result};
use mmfuse::io::{read_matrix, write_atomic_bytes, write_npy};
use mmfuse::lmf::{LmfModel, LmfOptions, Loss, TrainOptions};
use mmfuse::matrix::Matrix;
use std::path::PathBuf;

/// `mmfuse lmf ...`.
#[derive(Debug, Args)]
pub struct LmfArgs {
    /// train or forward.
    #[command(subcommand)]
    pub what: LmfCommand,
}

/// LMF subcommands.
#[derive(Debug, Subcommand)]
pub enum LmfCommand {
    /// Train an LMF model (Adam) and save its weights.
    Train(LmfTrainArgs),
    /// Outputs of a saved model for new inputs.
    Forward(LmfForwardArgs),
}

/// Loss of `lmf train`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LossArg {
    /// Mean squared error (PyTorch's MSELoss, mean over all elements).
    Mse,
    /// Mean absolute error (PyTorch's L1Loss, mean over all elements).
    L1,
}

/// `mmfuse lmf train`.
#[derive(Debug, Args)]
pub struct LmfTrainArgs {
    /// A modality's inputs, `NAME=PATH` (N x d_m, .npy/.npz/.csv); repeat once per modality.
    /// The order given here is the model's modality order.
    #[arg(long = "input", required = true, value_name = "NAME=PATH")]
    pub inputs: Vec<String>,
    /// Targets, N values or N x H.
    #[arg(long)]
    pub target: PathBuf,
    /// Rank r >= 1 (taken from --init when given there).
    #[arg(long)]
    pub rank: Option<usize>,
    /// Output size H >= 1 (default: the target's width; taken from --init when given there).
    #[arg(long)]
    pub out_dim: Option<usize>,
    /// Epochs.
    #[arg(long, default_value_t = 10)]
    pub epochs: usize,
    /// Mini-batch size.
    #[arg(long, default_value_t = 32)]
    pub batch: usize,
    /// Adam learning rate.
    #[arg(long, default_value_t = 1e-3)]
    pub lr: f64,
    /// Adam weight decay (L2 added to the gradient, as torch.optim.Adam).
    #[arg(long, default_value_t = 0.0)]
    pub weight_decay: f64,
    /// Loss.
    #[arg(long, value_enum, default_value = "mse")]
    pub loss: LossArg,
    /// Seed of the initialisation and of the shuffles.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Shuffle the training rows every epoch.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub shuffle: bool,
    /// Fraction of the rows (the last ones) held out for the validation loss.
    #[arg(long, default_value_t = 0.0)]
    pub val_fraction: f64,
    /// Stop after this many epochs without a better validation loss (keeps the best weights).
    #[arg(long)]
    pub patience: Option<usize>,
    /// Start from these weights (safetensors) instead of a fresh initialisation.
    #[arg(long)]
    pub init: Option<PathBuf>,
    /// Write the trained weights here (safetensors, written atomically).
    #[arg(long)]
    pub save: PathBuf,
    /// Write the per-epoch losses here: {"train_loss": [...], "val_loss": [...]}.
    #[arg(long)]
    pub history: Option<PathBuf>,
    /// Worker threads (default: all cores).
    #[arg(long)]
    pub threads: Option<usize>,
    /// No progress bar.
    #[arg(long)]
    pub quiet: bool,
}

/// `mmfuse lmf forward`.
#[derive(Debug, Args)]
pub struct LmfForwardArgs {
    /// Weights written by `lmf train` or exported from PyTorch (safetensors).
    #[arg(long)]
    pub weights: PathBuf,
    /// A modality's inputs, `NAME=PATH`; every modality of the model exactly once, any order
    /// (an input named `visual` uses the tensor `visual_factor`).
    #[arg(long = "input", required = true, value_name = "NAME=PATH")]
    pub inputs: Vec<String>,
    /// Outputs (.npy, N x H float32), written atomically.
    #[arg(long)]
    pub out: PathBuf,
    /// Worker threads (default: all cores).
    #[arg(long)]
    pub threads: Option<usize>,
}

/// `NAME=PATH` inputs, read as f32 matrices; names must be distinct and non-empty.
pub(crate) fn read_inputs(args: &[String]) -> Result<Vec<(String, Matrix<f32>)>> {
    let mut out: Vec<(String, Matrix<f32>)> = Vec::new();
    for arg in args {
        let (name, path) = arg
            .split_once('=')
            .ok_or_else(|| Error::param("input", format!("expected NAME=PATH, got `{arg}`")))?;
        let name = name.trim();
        if name.is_empty() || path.is_empty() {
            return Err(Error::param(
                "input",
                format!("expected NAME=PATH, got `{arg}`"),
            ));
        }
        if out.iter().any(|(n, _)| n == name) {
            return Err(Error::param(
                "input",
                format!("modality `{name}` given twice"),
            ));
        }
        out.push((name.to_string(), read_matrix::<f32>(path)?));
    }
    Ok(out)
}

fn exec(threads: Option<usize>) -> Result<LmfOptions> {
    if threads == Some(0) {
        return Err(Error::param("threads", "must be >= 1"));
    }
    Ok(LmfOptions {
        threads,
        ..LmfOptions::default()
    })
}

pub(crate) fn run(a: LmfArgs) -> Result<()> {
    match a.what {
        LmfCommand::Train(t) => run_train(t),
        LmfCommand::Forward(f) => run_forward(f),
    }
}

fn run_train(a: LmfTrainArgs) -> Result<()> {
    let inputs = read_inputs(&a.inputs)?;
    let target_m: Matrix<f32> = read_matrix(&a.target)?;
    let n = inputs[0].1.nrows();
    // A vector of N values is N x 1 whichever way the file stores it.
    let target = if target_m.nrows() == 1 && target_m.ncols() == n && n != 1 {
        Matrix::from_vec(n, 1, target_m.into_vec())?
    } else {
        target_m
    };
    let mut model = match &a.init {
        Some(path) => {
            let order: Vec<&str> = inputs.iter().map(|(n, _)| n.as_str()).collect();
            let m = LmfModel::<f32>::load_safetensors(path, Some(&order))?;
            if a.rank.is_some_and(|r| r != m.rank()) || a.out_dim.is_some_and(|h| h != m.out_dim())
            {
                return Err(Error::param(
                    "init",
                    format!(
                        "the weights have rank {} and output size {}, not the --rank / --out-dim given",
                        m.rank(),
                        m.out_dim()
                    ),
                ));
            }
            m
        }
        None => {
            let rank = a
                .rank
                .ok_or_else(|| Error::param("rank", "required without --init"))?;
            let out_dim = a.out_dim.unwrap_or(target.ncols());
            let dims: Vec<(&str, usize)> = inputs
                .iter()
                .map(|(n, x)| (n.as_str(), x.ncols()))
                .collect();
            LmfModel::<f32>::new(&dims, rank, out_dim, a.seed)?
        }
    };
    let opts = TrainOptions {
        epochs: a.epochs,
        batch_size: a.batch,
        lr: a.lr,
        loss: match a.loss {
            LossArg::Mse => Loss::Mse,
            LossArg::L1 => Loss::L1,
        },
        seed: a.seed,
        shuffle: a.shuffle,
        weight_decay: a.weight_decay,
        validation_fraction: a.val_fraction,
        patience: a.patience,
        exec: exec(a.threads)?,
        ..TrainOptions::default()
    };
    let named: Vec<(&str, faer::MatRef<'_, f32>)> = inputs
        .iter()
        .map(|(n, x)| (n.as_str(), x.as_mat_ref()))
        .collect();
    let pb = bar(a.quiet, a.epochs, "LMF training");
    let mut train_loss = Vec::new();
    let mut val_loss = Vec::new();
    let result = model.train_named(&named, target.as_mat_ref(), &opts, |r| {
        train_loss.push(r.train_loss);
        if let Some(v) = r.val_loss {
            val_loss.push(v);
        }
        pb.set_message(match r.val_loss {
            Some(v) => format!("train {:.5} val {v:.5}", r.train_loss),
            None => format!("train {:.5}", r.train_loss),
        });
        pb.inc(1);
    });
    pb.finish_and_clear();
    let write_history = |train: &[f64], val: &[f64]| -> Result<()> {
        if let Some(path) = &a.history {
            let text = serde_json::json!({ "train_loss": train, "val_loss": val }).to_string();
            write_atomic_bytes(path, text.as_bytes())?;
        }
        Ok(())
    };
    match result {
        Ok(history) => {
            write_history(&history.train_loss, &history.val_loss)?;
            model.save_safetensors(&a.save)?;
            if !a.quiet {
                eprintln!(
                    "trained {} epochs ({} Adam steps): train loss {:.5e} -> {:.5e}{}",
                    history.train_loss.len(),
                    history.steps,
                    history.train_loss.first().copied().unwrap_or(f64::NAN),
                    history.train_loss.last().copied().unwrap_or(f64::NAN),
                    if history.stopped_early {
                        " (stopped early)"
                    } else {
                        ""
                    }
                );
            }
            Ok(())
        }
        Err(Error::Diverged(why)) => {
            // The model holds its last finite weights: keep them, say so, and fail.
            write_history(&train_loss, &val_loss)?;
            model.save_safetensors(&a.save)?;
            Err(Error::Diverged(format!(
                "{why}; the last finite weights were saved to {}",
                a.save.display()
            )))
        }
        Err(e) => Err(e),
    }
}

fn run_forward(a: LmfForwardArgs) -> Result<()> {
    let inputs = read_inputs(&a.inputs)?;
    let order: Vec<&str> = inputs.iter().map(|(n, _)| n.as_str()).collect();
    // The file's own modality order when it has one (so outputs are bitwise those of the saved
    // model); files exported from PyTorch carry none, and then the order of the inputs given
    // here is the model's.
    let model = LmfModel::<f32>::load_safetensors(&a.weights, None)
        .or_else(|_| LmfModel::<f32>::load_safetensors(&a.weights, Some(&order)))?;
    let named: Vec<(&str, faer::MatRef<'_, f32>)> = inputs
        .iter()
        .map(|(n, x)| (n.as_str(), x.as_mat_ref()))
        .collect();
    let y = model.forward_named(&named, &exec(a.threads)?)?;
    write_npy(&a.out, &[y.nrows(), y.ncols()], y.as_slice())
}
