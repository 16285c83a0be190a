//! `mmfuse lmf train`, `mmfuse lmf forward` and `mmfuse lmf relevance`: low-rank multimodal
//! fusion from .npy files, plain (weights in safetensors, the PyTorch reference layout) or by
//! blocks with lp relevance (`--blocks`, the block model's safetensors file).

use super::progress::bar;
use clap::{ArgGroup, Args, Subcommand, ValueEnum};
use mmfuse::blocks::BlockSpec;
use mmfuse::error::{Error, Result};
use mmfuse::io::{read_matrix, read_npy, write_atomic_bytes, write_npy};
use mmfuse::lmf::blockwise::{
    is_block_model_file, BlockEpochReport, BlockLmf, BlockTrainOptions, Optimizer,
};
use mmfuse::lmf::{LmfModel, LmfOptions, Loss, TrainOptions};
use mmfuse::matrix::Matrix;
use mmfuse::mkl::{p_label, parse_p};
use serde_json::{json, Map, Value};
use std::path::{Path, PathBuf};

/// `mmfuse lmf ...`.
#[derive(Debug, Args)]
pub struct LmfArgs {
    /// train, forward or relevance.
    #[command(subcommand)]
    pub what: LmfCommand,
}

/// LMF subcommands.
#[derive(Debug, Subcommand)]
pub enum LmfCommand {
    /// Train an LMF model (plain, or by blocks with `--blocks`) and save its weights.
    Train(Box<LmfTrainArgs>),
    /// Outputs (or predicted classes) of a saved model, plain or block, for new inputs.
    Forward(LmfForwardArgs),
    /// The relevance of every block of a saved block model, as JSON on stdout.
    Relevance(LmfRelevanceArgs),
}

/// Loss of `lmf train`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LossArg {
    /// Mean squared error (PyTorch's MSELoss, mean over all elements).
    Mse,
    /// Mean absolute error (PyTorch's L1Loss, mean over all elements).
    L1,
    /// Softmax cross-entropy over H classes (PyTorch's CrossEntropyLoss); block models only.
    #[value(alias = "cross-entropy")]
    Xent,
}

impl From<LossArg> for Loss {
    fn from(l: LossArg) -> Loss {
        match l {
            LossArg::Mse => Loss::Mse,
            LossArg::L1 => Loss::L1,
            LossArg::Xent => Loss::CrossEntropy,
        }
    }
}

/// Optimiser of `lmf train`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum OptimizerArg {
    /// Adam (PyTorch's betas and epsilon).
    Adam,
    /// SGD with momentum (--momentum); block models only.
    Sgd,
}

/// `mmfuse lmf train`.
///
/// `--blocks none` (the default) trains the plain LMF model; any other spec trains a block
/// model with lp relevance. The block-only flags (--relevance-p, --reg, --momentum, --optimizer
/// sgd) are an error with a plain model.
#[derive(Debug, Args)]
pub struct LmfTrainArgs {
    /// A modality's inputs, `NAME=PATH` (N x d_m, .npy/.npz/.csv); repeat once per modality.
    /// The order given here is the model's modality order.
    #[arg(long = "input", required = true, value_name = "NAME=PATH")]
    pub inputs: Vec<String>,
    /// Targets, N values or N x H; with --loss xent, N class labels 0..H-1 (an N-vector or
    /// N x 1, integers or integer-valued floats).
    #[arg(long)]
    pub target: PathBuf,
    /// Interaction blocks: none (the default: the plain LMF model), pairs, all, or a list such
    /// as `visual*audio,visual*audio*text`; anything but none trains a block model (one block
    /// per modality plus these). With a block model --init and no --blocks, the file's blocks;
    /// given with such an --init, it must name the file's blocks.
    #[arg(long, value_name = "SPEC")]
    pub blocks: Option<String>,
    /// Rank r >= 1 (taken from --init when given there).
    #[arg(long)]
    pub rank: Option<usize>,
    /// Output size H >= 1 (default: the target's width, or with --loss xent the number of
    /// classes, max label + 1, at least 2; taken from --init when given there).
    #[arg(long)]
    pub out_dim: Option<usize>,
    /// Epochs.
    #[arg(long, default_value_t = 10)]
    pub epochs: usize,
    /// Mini-batch size.
    #[arg(long, default_value_t = 32)]
    pub batch: usize,
    /// Learning rate.
    #[arg(long, default_value_t = 1e-3)]
    pub lr: f64,
    /// Weight decay (L2 added to the gradient, as torch.optim.Adam and SGD).
    #[arg(long, default_value_t = 0.0)]
    pub weight_decay: f64,
    /// Loss (xent: block models only; the targets are class labels).
    #[arg(long, value_enum, default_value = "mse")]
    pub loss: LossArg,
    /// Block models: the relevance exponent p >= 1 (1, 4/3, 2, inf, ...) of the penalty
    /// lambda (sum_I ||W_I||_F^q)^(2/q), q = 2p/(p+1), and of the reported relevance. Default
    /// 1 (a group lasso over blocks); taken from --init when given there. An error with
    /// --blocks none.
    #[arg(long, value_name = "P")]
    pub relevance_p: Option<String>,
    /// Block models: the penalty weight lambda >= 0. Default 1e-3. An error with --blocks none.
    #[arg(long, value_name = "LAMBDA", allow_negative_numbers = true)]
    pub reg: Option<f64>,
    /// Optimiser: adam (the default) or sgd (block models only).
    #[arg(long, value_enum, default_value = "adam")]
    pub optimizer: OptimizerArg,
    /// SGD momentum in [0, 1) (default 0.9); only with --optimizer sgd.
    #[arg(long, value_name = "M", allow_negative_numbers = true)]
    pub momentum: Option<f64>,
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
    /// Start from these weights (safetensors) instead of a fresh initialisation: a plain LMF
    /// file, or a block model file (then its blocks, rank, H, p and normalisation statistics
    /// are kept).
    #[arg(long)]
    pub init: Option<PathBuf>,
    /// Write the trained weights here (safetensors, written atomically).
    #[arg(long)]
    pub save: PathBuf,
    /// Write the per-epoch history here (JSON): {"train_loss": [...], "val_loss": [...]};
    /// block models add the per-epoch penalty and relevance, and the final relevance and
    /// block norms.
    #[arg(long)]
    pub history: Option<PathBuf>,
    /// Worker threads (default: all cores).
    #[arg(long)]
    pub threads: Option<usize>,
    /// No progress bar and no summary.
    #[arg(long)]
    pub quiet: bool,
}

/// `mmfuse lmf forward`.
#[derive(Debug, Args)]
#[command(group(ArgGroup::new("outputs").required(true).multiple(true).args(["out", "classes"])))]
pub struct LmfForwardArgs {
    /// Weights written by `lmf train` (plain or block model) or exported from PyTorch
    /// (safetensors).
    #[arg(long)]
    pub weights: PathBuf,
    /// A modality's inputs, `NAME=PATH`; every modality of the model exactly once, any order
    /// (an input named `visual` uses the tensor `visual_factor`).
    #[arg(long = "input", required = true, value_name = "NAME=PATH")]
    pub inputs: Vec<String>,
    /// Outputs (.npy, N x H float32), written atomically.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Predicted classes (.npy, N int64): the index of each row's largest output, the first on
    /// ties (for a model trained with --loss xent; needs H >= 2). Written atomically.
    #[arg(long, value_name = "PATH")]
    pub classes: Option<PathBuf>,
    /// Worker threads (default: all cores).
    #[arg(long)]
    pub threads: Option<usize>,
}

/// `mmfuse lmf relevance`.
#[derive(Debug, Args)]
pub struct LmfRelevanceArgs {
    /// A block model file written by `lmf train --blocks ...`.
    #[arg(long)]
    pub weights: PathBuf,
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

/// The library's name of a parameter replaced by the flag's (`interactions` -> `blocks`).
fn renamed(e: Error, from: &str, to: &str) -> Error {
    match e {
        Error::InvalidParameter { name, reason } if name == from => Error::InvalidParameter {
            name: to.to_string(),
            reason,
        },
        other => other,
    }
}

/// Whether `path` is a block model file (false when it cannot be read: the loader says why).
fn is_block_file(path: &Path) -> bool {
    std::fs::read(path).is_ok_and(|bytes| is_block_model_file(&bytes))
}

pub(crate) fn run(a: LmfArgs) -> Result<()> {
    match a.what {
        LmfCommand::Train(t) => run_train(*t),
        LmfCommand::Forward(f) => run_forward(f),
        LmfCommand::Relevance(r) => run_relevance(r),
    }
}

/// Plain LMF (`--blocks none` or no `--blocks`, no block model `--init`) or a block model.
fn run_train(a: LmfTrainArgs) -> Result<()> {
    let spec: Option<BlockSpec> = a
        .blocks
        .as_deref()
        .map(|s| s.parse().map_err(|e| renamed(e, "interactions", "blocks")))
        .transpose()?;
    let init_is_block = a.init.as_deref().is_some_and(is_block_file);
    match (spec, init_is_block) {
        (Some(BlockSpec::None), true) => Err(Error::param(
            "blocks",
            format!(
                "{} is a block model file; --blocks none trains a plain LMF model (omit --blocks \
                 to continue the block model with its own blocks)",
                a.init.as_deref().unwrap_or(Path::new("")).display()
            ),
        )),
        (Some(BlockSpec::None) | None, false) => {
            check_plain_flags(&a)?;
            run_train_plain(a)
        }
        (spec, _) => run_train_block(a, spec),
    }
}

/// The block-only flags are an error with a plain model.
fn check_plain_flags(a: &LmfTrainArgs) -> Result<()> {
    let block_only = |flag: &str, what: &str| {
        Error::param(
            flag,
            format!(
                "{what} only for a block model (--blocks pairs, all, or a list such as a*b); the \
                 plain LMF model (--blocks none, the default) has no blocks and trains with Adam"
            ),
        )
    };
    if a.relevance_p.is_some() {
        return Err(block_only("relevance-p", "a relevance exponent is"));
    }
    if a.reg.is_some() {
        return Err(block_only("reg", "the block penalty is"));
    }
    if a.momentum.is_some() {
        return Err(block_only("momentum", "SGD momentum is"));
    }
    if a.optimizer == OptimizerArg::Sgd {
        return Err(block_only("optimizer", "sgd is"));
    }
    Ok(())
}

/// A target of N values stored as 1 x N is N x 1, whichever way the file stores it.
fn as_column<T: mmfuse::scalar::Real>(m: Matrix<T>, n: usize) -> Result<Matrix<T>> {
    if m.nrows() == 1 && m.ncols() == n && n != 1 {
        Matrix::from_vec(n, 1, m.into_vec())
    } else {
        Ok(m)
    }
}

/// Cross-entropy targets: N class labels (an N-vector or N x 1), each an integer >= 0, as an
/// N x 1 f32 matrix, and the number of classes they imply (max label + 1, at least 2). Read in
/// f64 so that a label such as 1.0000001 is refused, not rounded to 1.
fn read_labels(path: &Path, n: usize) -> Result<(Matrix<f32>, usize)> {
    let what = path.display().to_string();
    let not_labels = |shape: String| {
        Error::Shape(format!(
            "--loss xent: the target must be N class labels (an N-vector or N x 1), got shape \
             {shape} in {what}"
        ))
    };
    let values: Vec<f64> = if path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("npy"))
    {
        // .npy: a 1-D array too.
        let array = read_npy(path)?;
        if !matches!(array.shape[..], [_] | [_, 1] | [1, _]) {
            return Err(not_labels(format!("{:?}", array.shape)));
        }
        array.into_vec_f64(&what)?
    } else {
        let m = as_column(read_matrix::<f64>(path)?, n)?;
        if m.ncols() != 1 {
            return Err(not_labels(format!("{} x {}", m.nrows(), m.ncols())));
        }
        m.into_vec()
    };
    // f32 holds every integer up to 2^24 exactly.
    const MAX_LABEL: f64 = (1u32 << 24) as f64;
    let mut max = 0.0f64;
    for (i, &v) in values.iter().enumerate() {
        if !(v.fract() == 0.0 && (0.0..MAX_LABEL).contains(&v)) {
            return Err(Error::param(
                "target",
                format!(
                    "--loss xent: row {i} of {what}: class label {v} is not a class index (an \
                     integer >= 0, below 2^24)"
                ),
            ));
        }
        max = max.max(v);
    }
    let classes = (max as usize + 1).max(2);
    let labels: Vec<f32> = values.iter().map(|&v| v as f32).collect();
    Ok((Matrix::from_vec(labels.len(), 1, labels)?, classes))
}

/// The plain LMF model, exactly as before block models existed.
fn run_train_plain(a: LmfTrainArgs) -> Result<()> {
    if a.loss == LossArg::Xent {
        // The library's reason, before the class labels are read as (unusable) targets.
        TrainOptions {
            loss: Loss::CrossEntropy,
            ..TrainOptions::default()
        }
        .validate()?;
    }
    let inputs = read_inputs(&a.inputs)?;
    let n = inputs[0].1.nrows();
    let target = as_column(read_matrix::<f32>(&a.target)?, n)?;
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
        loss: a.loss.into(),
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

/// A block model: fresh from `--blocks`, or continued from a block model `--init`.
fn run_train_block(a: LmfTrainArgs, spec: Option<BlockSpec>) -> Result<()> {
    let optimizer = match (a.optimizer, a.momentum) {
        (OptimizerArg::Adam, Some(_)) => {
            return Err(Error::param(
                "momentum",
                "only with --optimizer sgd (the default optimiser, adam, has none)",
            ))
        }
        (OptimizerArg::Adam, None) => Optimizer::default(),
        (OptimizerArg::Sgd, m) => Optimizer::Sgd {
            momentum: m.unwrap_or(0.9),
        },
    };
    let p = a
        .relevance_p
        .as_deref()
        .map(|s| parse_p(s).map_err(|e| renamed(e, "p", "relevance-p")))
        .transpose()?;
    let loss = Loss::from(a.loss);
    let opts = BlockTrainOptions {
        epochs: a.epochs,
        batch_size: a.batch,
        lr: a.lr,
        loss,
        reg: a.reg.unwrap_or(1e-3),
        optimizer,
        weight_decay: a.weight_decay,
        seed: a.seed,
        shuffle: a.shuffle,
        validation_fraction: a.val_fraction,
        patience: a.patience,
        exec: exec(a.threads)?,
    };
    // Every option checked before any file is read.
    opts.validate()?;
    let inputs = read_inputs(&a.inputs)?;
    let n = inputs[0].1.nrows();
    let (target, classes) = if loss == Loss::CrossEntropy {
        let (t, k) = read_labels(&a.target, n)?;
        (t, Some(k))
    } else {
        (as_column(read_matrix::<f32>(&a.target)?, n)?, None)
    };
    let mut model = match &a.init {
        Some(path) => load_init_block(path, spec.as_ref(), &a, p)?,
        None => {
            let spec = spec.ok_or_else(|| Error::param("blocks", "required without --init"))?;
            let rank = a
                .rank
                .ok_or_else(|| Error::param("rank", "required without --init"))?;
            let out_dim = a.out_dim.unwrap_or(classes.unwrap_or(target.ncols()));
            let dims: Vec<(&str, usize)> = inputs
                .iter()
                .map(|(n, x)| (n.as_str(), x.ncols()))
                .collect();
            BlockLmf::<f32>::new(&dims, &spec, rank, out_dim, p.unwrap_or(1.0), a.seed).map_err(
                |e| {
                    renamed(
                        renamed(e, "interactions", "blocks"),
                        "relevance_p",
                        "relevance-p",
                    )
                },
            )?
        }
    };
    let named: Vec<(&str, faer::MatRef<'_, f32>)> = inputs
        .iter()
        .map(|(n, x)| (n.as_str(), x.as_mat_ref()))
        .collect();
    let blocks: Vec<String> = model.block_names().iter().map(|s| s.to_string()).collect();
    let pb = bar(a.quiet, a.epochs, "block LMF training");
    let mut reports: Vec<BlockEpochReport> = Vec::new();
    let result = model.train_named(&named, target.as_mat_ref(), &opts, |r| {
        let top = (0..r.relevance.len()).max_by(|&i, &j| r.relevance[i].total_cmp(&r.relevance[j]));
        let top = top
            .map(|i| format!(" top {} {:.2}", blocks[i], r.relevance[i]))
            .unwrap_or_default();
        pb.set_message(match r.val_loss {
            Some(v) => format!("train {:.5} val {v:.5}{top}", r.train_loss),
            None => format!("train {:.5}{top}", r.train_loss),
        });
        pb.inc(1);
        reports.push(r.clone());
    });
    pb.finish_and_clear();
    let write_history =
        |best_epoch: Option<usize>, stopped_early: bool, steps: Option<u64>| match &a.history {
            Some(path) => {
                let text =
                    block_history_json(&model, &reports, best_epoch, stopped_early, steps, &opts)
                        .to_string();
                write_atomic_bytes(path, text.as_bytes())
            }
            None => Ok(()),
        };
    match result {
        Ok(history) => {
            write_history(
                history.best_epoch,
                history.stopped_early,
                Some(history.steps),
            )?;
            model.save(&a.save)?;
            if !a.quiet {
                eprintln!(
                    "trained {} epochs ({} {} steps): train loss {:.5e} -> {:.5e}, penalty \
                     {:.3e}{}{}",
                    history.train_loss.len(),
                    history.steps,
                    opts.optimizer,
                    history.train_loss.first().copied().unwrap_or(f64::NAN),
                    history.train_loss.last().copied().unwrap_or(f64::NAN),
                    model.penalty(opts.reg),
                    match history.best_epoch {
                        Some(e) => format!(
                            ", best validation loss {:.5e} at epoch {e}",
                            history.val_loss[e - 1]
                        ),
                        None => String::new(),
                    },
                    if history.stopped_early {
                        " (stopped early)"
                    } else {
                        ""
                    }
                );
                let rel = model.relevance()?;
                let parts: Vec<String> = rel
                    .blocks
                    .iter()
                    .zip(&rel.shares)
                    .map(|(b, s)| format!("{b} {s:.4}"))
                    .collect();
                eprintln!(
                    "relevance (p = {}): {}",
                    p_label(model.p()),
                    parts.join(", ")
                );
            }
            Ok(())
        }
        Err(Error::Diverged(why)) => {
            // The model holds its last finite weights: keep them, say so, and fail.
            let best = reports
                .iter()
                .filter_map(|r| r.val_loss.map(|v| (r.epoch, v)))
                .min_by(|x, y| x.1.total_cmp(&y.1))
                .map(|(e, _)| e);
            write_history(best, false, None)?;
            model.save(&a.save)?;
            Err(Error::Diverged(format!(
                "{why}; the last finite weights were saved to {}",
                a.save.display()
            )))
        }
        Err(e) => Err(e),
    }
}

/// The block model of `--init`: its blocks must be those of `--blocks` when given, and its
/// rank, output size and p those of the flags when given.
fn load_init_block(
    path: &Path,
    spec: Option<&BlockSpec>,
    a: &LmfTrainArgs,
    p: Option<f64>,
) -> Result<BlockLmf<f32>> {
    if !is_block_file(path) && std::fs::metadata(path).is_ok() {
        return Err(Error::param(
            "init",
            format!(
                "{} is not a block model file (plain LMF weights?); a block model (--blocks {}) \
                 starts fresh (no --init) or from a block model file",
                path.display(),
                a.blocks.as_deref().unwrap_or("")
            ),
        ));
    }
    let m = BlockLmf::<f32>::load(path)?;
    if let Some(spec) = spec {
        let names: Vec<&str> = m.modalities().iter().map(String::as_str).collect();
        let want = spec
            .resolve(&names)
            .map_err(|e| renamed(e, "interactions", "blocks"))?;
        let want: Vec<&str> = want.iter().map(|b| b.name.as_str()).collect();
        if want != m.block_names() {
            return Err(Error::param(
                "blocks",
                format!(
                    "the --init model has the blocks {}; --blocks {spec} gives {} (omit --blocks \
                     to keep the file's)",
                    m.block_names().join(", "),
                    want.join(", ")
                ),
            ));
        }
    }
    if a.rank.is_some_and(|r| r != m.rank())
        || a.out_dim.is_some_and(|h| h != m.out_dim())
        || p.is_some_and(|p| p != m.p())
    {
        return Err(Error::param(
            "init",
            format!(
                "the weights have rank {}, output size {} and p = {}, not the --rank / --out-dim \
                 / --relevance-p given",
                m.rank(),
                m.out_dim(),
                p_label(m.p())
            ),
        ));
    }
    Ok(m)
}

/// `{block: value}` in block order (the object's keys are sorted; `blocks` gives the order).
fn by_block(blocks: &[String], values: &[f64]) -> Value {
    Value::Object(
        blocks
            .iter()
            .zip(values)
            .map(|(b, v)| (b.clone(), json!(v)))
            .collect::<Map<String, Value>>(),
    )
}

/// The history file of a block model: per-epoch arrays and the final relevance and norms.
fn block_history_json(
    model: &BlockLmf<f32>,
    reports: &[BlockEpochReport],
    best_epoch: Option<usize>,
    stopped_early: bool,
    steps: Option<u64>,
    opts: &BlockTrainOptions,
) -> Value {
    let blocks: Vec<String> = model.block_names().iter().map(|s| s.to_string()).collect();
    let val: Option<Vec<f64>> = reports.iter().map(|r| r.val_loss).collect();
    let rel = model.relevance().ok();
    json!({
        "blocks": blocks,
        "p": p_label(model.p()),
        "reg": opts.reg,
        "loss": opts.loss.to_string(),
        "optimizer": opts.optimizer.to_string(),
        "train_loss": reports.iter().map(|r| r.train_loss).collect::<Vec<_>>(),
        "val_loss": if opts.validation_fraction > 0.0 { json!(val) } else { Value::Null },
        "penalty": reports.iter().map(|r| r.penalty).collect::<Vec<_>>(),
        "relevance": reports.iter().map(|r| by_block(&blocks, &r.relevance)).collect::<Vec<_>>(),
        "final_relevance": rel.as_ref().map(|r| by_block(&blocks, &r.shares)),
        "norms": by_block(&blocks, &model.block_norms()),
        "best_epoch": best_epoch,
        "stopped_early": stopped_early,
        "steps": steps,
    })
}

fn run_forward(a: LmfForwardArgs) -> Result<()> {
    let inputs = read_inputs(&a.inputs)?;
    let order: Vec<&str> = inputs.iter().map(|(n, _)| n.as_str()).collect();
    let named: Vec<(&str, faer::MatRef<'_, f32>)> = inputs
        .iter()
        .map(|(n, x)| (n.as_str(), x.as_mat_ref()))
        .collect();
    let y = if is_block_file(&a.weights) {
        BlockLmf::<f32>::load(&a.weights)?.forward_named(&named, &exec(a.threads)?)?
    } else {
        // The file's own modality order when it has one (so outputs are bitwise those of the
        // saved model); files exported from PyTorch carry none, and then the order of the
        // inputs given here is the model's.
        let model = LmfModel::<f32>::load_safetensors(&a.weights, None)
            .or_else(|_| LmfModel::<f32>::load_safetensors(&a.weights, Some(&order)))?;
        model.forward_named(&named, &exec(a.threads)?)?
    };
    let classes = match &a.classes {
        Some(_) => Some(argmax_rows(&y)?),
        None => None,
    };
    if let Some(out) = &a.out {
        write_npy(out, &[y.nrows(), y.ncols()], y.as_slice())?;
    }
    if let (Some(path), Some(c)) = (&a.classes, classes) {
        write_npy(path, &[c.len()], &c)?;
    }
    Ok(())
}

/// The index of each row's largest output, the first on ties (as
/// `BlockLmf::predict_classes`).
fn argmax_rows(y: &Matrix<f32>) -> Result<Vec<i64>> {
    if y.ncols() < 2 {
        return Err(Error::param(
            "classes",
            format!(
                "the model has {} output; classes need H >= 2 (a model trained with --loss xent)",
                y.ncols()
            ),
        ));
    }
    Ok((0..y.nrows())
        .map(|i| {
            let row = y.row(i);
            let mut best = 0;
            for (k, v) in row.iter().enumerate() {
                if *v > row[best] {
                    best = k;
                }
            }
            best as i64
        })
        .collect())
}

fn run_relevance(a: LmfRelevanceArgs) -> Result<()> {
    let bytes = std::fs::read(&a.weights).map_err(|source| Error::Io {
        path: a.weights.clone(),
        source,
    })?;
    // (The `cli_args` fuzz target compiles this module without the safetensors crate: a plain
    // file is told by the plain loader.)
    if !is_block_model_file(&bytes) && LmfModel::<f32>::load_safetensors(&a.weights, None).is_ok() {
        return Err(Error::param(
            "weights",
            format!(
                "{} is a plain LMF weights file: plain LMF has no blocks; \
                 train with --blocks pairs (or all, or a list such as visual*audio) to get the \
                 relevance of each block",
                a.weights.display()
            ),
        ));
    }
    // f64: the file's values exactly (f32 files convert without rounding).
    let model = BlockLmf::<f64>::load(&a.weights)?;
    let rel = model.relevance()?;
    let v = json!({
        "blocks": rel.blocks,
        "p": p_label(model.p()),
        "relevance": by_block(&rel.blocks, &rel.shares),
        "beta": by_block(&rel.blocks, &rel.beta),
        "norms": by_block(&rel.blocks, &rel.norms),
    });
    let text = serde_json::to_string_pretty(&v)
        .map_err(|e| Error::param("weights", format!("JSON: {e}")))?;
    println!("{text}");
    Ok(())
}
