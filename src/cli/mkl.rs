//! `mmfuse mkl fit` and `mmfuse mkl predict`: a stable contract for other tools.

use clap::{Args, Subcommand, ValueEnum};
use mmfuse::error::{Error, Result};
use mmfuse::gram::{GramOptions, Kernel, Normalization, TrainStats};
use mmfuse::io::{read_matrix, read_npy, write_atomic_bytes, write_npy};
use mmfuse::matrix::Matrix;
use mmfuse::mkl::{fit_with_progress, DataKernel, Loss, MklFit, MklModel, MklOptions};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};

/// `mmfuse mkl ...`.
#[derive(Debug, Args)]
pub struct MklArgs {
    /// fit or predict.
    #[command(subcommand)]
    pub what: MklCommand,
}

/// MKL subcommands.
#[derive(Debug, Subcommand)]
pub enum MklCommand {
    /// Learn kernel weights and a classifier / regressor from precomputed training kernels.
    Fit(MklFitArgs),
    /// Decision values (and labels) for test kernels K_m(X_test, X_train).
    Predict(MklPredictArgs),
}

/// Loss of `mkl fit`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LossArg {
    /// SVM (classification, any two or more label values; one-vs-rest above two).
    Hinge,
    /// Kernel ridge regression (real targets).
    Squared,
}

/// `mmfuse mkl fit`.
#[derive(Debug, Args)]
pub struct MklFitArgs {
    /// A training kernel (n x n .npy/.npz/.csv); repeat once per kernel, in a fixed order.
    #[arg(
        long = "kernel",
        required_unless_present = "data",
        conflicts_with = "data"
    )]
    pub kernels: Vec<PathBuf>,
    /// Data-driven form instead of --kernel: `NAME=PATH[:KERNEL]`, one per modality, e.g.
    /// `visual=V.npy:rbf:gamma=0.1` (n x d data; the kernel spec as in `mmfuse gram`, default
    /// `rbf` with gamma = 1/d; PATH must not contain `:`). The Gram matrices are built and
    /// normalised (--normalize) here, and the training data, kernels and normalisation
    /// statistics are stored in the model so that `predict --data` applies them.
    #[arg(long = "data", value_name = "NAME=PATH[:KERNEL]")]
    pub data: Vec<String>,
    /// Normalisation of the data-driven kernels: none, trace, unit-diag, center.
    #[arg(long, default_value = "trace")]
    pub normalize: String,
    /// Fit even if a kernel has a negative 2 x 2 principal minor (clearly not PSD).
    #[arg(long)]
    pub allow_indefinite: bool,
    /// Labels (hinge: any distinct values) or targets (squared), length n (.npy or .csv).
    #[arg(long)]
    pub labels: PathBuf,
    /// Norm p >= 1 of the weight constraint, or `inf` for the unweighted sum.
    #[arg(long, default_value = "2")]
    pub p: String,
    /// Cost C > 0.
    #[arg(long, default_value_t = 1.0)]
    pub c: f64,
    /// Loss.
    #[arg(long, value_enum, default_value = "hinge")]
    pub loss: LossArg,
    /// Relative duality gap to stop at.
    #[arg(long, default_value_t = 1e-4)]
    pub eps: f64,
    /// Initial SMO tolerance (maximal KKT violation).
    #[arg(long, default_value_t = 1e-3)]
    pub tol: f64,
    /// Maximum outer iterations.
    #[arg(long, default_value_t = 200)]
    pub max_iter: usize,
    /// No progress lines on stderr.
    #[arg(long)]
    pub quiet: bool,
    /// Model file (JSON), written atomically.
    #[arg(long)]
    pub out: PathBuf,
}

/// `mmfuse mkl predict`.
#[derive(Debug, Args)]
pub struct MklPredictArgs {
    /// Model written by `mkl fit`.
    #[arg(long)]
    pub model: PathBuf,
    /// A test kernel K_m(X_test, X_train), n_test x n_train; same order as at training.
    #[arg(
        long = "kernel",
        required_unless_present = "data",
        conflicts_with = "data"
    )]
    pub kernels: Vec<PathBuf>,
    /// Test data for a model fitted with --data: `NAME=PATH`, once per modality (any order).
    #[arg(long = "data", value_name = "NAME=PATH")]
    pub data: Vec<String>,
    /// Decision values (.npy): n_test values, or n_test x classes for one-vs-rest.
    #[arg(long)]
    pub out: PathBuf,
    /// Predicted labels / values (.npy), optional.
    #[arg(long)]
    pub labels_out: Option<PathBuf>,
}

fn read_vector(path: &Path, what: &str) -> Result<Vec<f64>> {
    match path.extension().and_then(|e| e.to_str()) {
        Some("npy") => read_npy(path)?.into_vec_f64(what),
        _ => {
            let m: Matrix<f64> = read_matrix(path)?;
            if m.ncols() != 1 && m.nrows() != 1 {
                return Err(Error::Shape(format!(
                    "{what} must be a vector, got {} x {}",
                    m.nrows(),
                    m.ncols()
                )));
            }
            Ok(m.into_vec())
        }
    }
}

fn num(v: f64) -> Value {
    if v.is_finite() {
        json!(v)
    } else if v > 0.0 {
        json!("inf")
    } else {
        json!(null)
    }
}

fn fit_json(f: &MklFit) -> Value {
    json!({
        "beta": f.beta, "beta_shares": f.beta_shares, "coef": f.coef, "bias": f.bias,
        "primal": f.primal, "dual": f.dual, "gap": f.gap, "iterations": f.iterations,
        "smo_iterations": f.smo_iterations, "n_support": f.n_support, "converged": f.converged,
    })
}

/// `NAME=PATH[:KERNEL]` of `--data` (the kernel defaults to rbf, gamma = 1/d).
pub fn parse_data_arg(arg: &str) -> Result<(String, PathBuf, Kernel)> {
    let (name, rest) = arg
        .split_once('=')
        .ok_or_else(|| Error::param("data", format!("expected NAME=PATH[:KERNEL], got `{arg}`")))?;
    let name = name.trim();
    if name.is_empty() {
        return Err(Error::param(
            "data",
            format!("empty modality name in `{arg}`"),
        ));
    }
    let (path, spec) = match rest.split_once(':') {
        Some((path, spec)) => (path, spec),
        None => (rest, "rbf"),
    };
    if path.is_empty() {
        return Err(Error::param("data", format!("empty path in `{arg}`")));
    }
    Ok((name.to_string(), PathBuf::from(path), spec.parse()?))
}

fn data_json(d: &DataKernel) -> Value {
    json!({
        "name": d.name, "kernel": d.kernel.to_string(), "normalize": d.stats.kind.to_string(),
        "trace_mean": d.stats.trace_mean, "diag": d.stats.diag, "col_means": d.stats.col_means,
        "grand_mean": d.stats.grand_mean,
        "train": { "rows": d.train.nrows(), "cols": d.train.ncols(), "values": d.train.as_slice() },
    })
}

/// The model file: the contract keys at the top level (for one-vs-rest, each holds one entry
/// per class), plus `per_class` with every fit, `classes`, and the options.
pub fn model_json(m: &MklModel) -> Value {
    let per: Vec<Value> = m.fits.iter().map(fit_json).collect();
    let mut top = if m.fits.len() == 1 {
        per[0].clone()
    } else {
        let keys = [
            "beta",
            "beta_shares",
            "coef",
            "bias",
            "primal",
            "dual",
            "gap",
            "iterations",
            "smo_iterations",
            "n_support",
            "converged",
        ];
        let mut o = serde_json::Map::new();
        for k in keys {
            o.insert(
                k.into(),
                Value::Array(per.iter().map(|v| v[k].clone()).collect()),
            );
        }
        Value::Object(o)
    };
    let o = top.as_object_mut().expect("object");
    o.insert("format".into(), json!("mmfuse-mkl-1"));
    o.insert("p".into(), num(m.options.p));
    o.insert("c".into(), json!(m.options.c));
    o.insert(
        "loss".into(),
        json!(match m.options.loss {
            Loss::Hinge => "hinge",
            Loss::Squared => "squared",
        }),
    );
    o.insert("eps".into(), json!(m.options.eps));
    o.insert("tol".into(), json!(m.options.tol));
    o.insert("classes".into(), json!(m.classes));
    o.insert("per_class".into(), Value::Array(per));
    if !m.data.is_empty() {
        o.insert(
            "data".into(),
            Value::Array(m.data.iter().map(data_json).collect()),
        );
    }
    top
}

fn bad(path: &Path, why: &str) -> Error {
    Error::Format {
        path: path.to_path_buf(),
        reason: format!("not an mmfuse MKL model: {why}"),
    }
}

/// Reads what [`model_json`] wrote.
pub fn model_from_json(v: &Value, path: &Path) -> Result<MklModel> {
    if v["format"] != "mmfuse-mkl-1" {
        return Err(bad(path, "missing format mmfuse-mkl-1"));
    }
    let f64_of = |x: &Value, what: &str| -> Result<f64> {
        match x {
            Value::String(s) if s == "inf" => Ok(f64::INFINITY),
            _ => x
                .as_f64()
                .ok_or_else(|| bad(path, &format!("`{what}` is not a number"))),
        }
    };
    let vec_of = |x: &Value, what: &str| -> Result<Vec<f64>> {
        x.as_array()
            .ok_or_else(|| bad(path, &format!("`{what}` is not an array")))?
            .iter()
            .map(|e| f64_of(e, what))
            .collect()
    };
    let loss = match v["loss"].as_str() {
        Some("hinge") => Loss::Hinge,
        Some("squared") => Loss::Squared,
        _ => return Err(bad(path, "`loss` must be hinge or squared")),
    };
    let options = MklOptions {
        p: f64_of(&v["p"], "p")?,
        c: f64_of(&v["c"], "c")?,
        loss,
        eps: f64_of(&v["eps"], "eps")?,
        tol: f64_of(&v["tol"], "tol")?,
        ..MklOptions::default()
    };
    let per = v["per_class"]
        .as_array()
        .ok_or_else(|| bad(path, "`per_class` is missing"))?;
    let mut fits = Vec::new();
    for f in per {
        let beta = vec_of(&f["beta"], "beta")?;
        let coef = vec_of(&f["coef"], "coef")?;
        if beta.is_empty() || coef.is_empty() {
            return Err(bad(path, "empty beta or coef"));
        }
        fits.push(MklFit {
            beta_shares: vec_of(&f["beta_shares"], "beta_shares")?,
            beta,
            coef,
            bias: f64_of(&f["bias"], "bias")?,
            primal: f64_of(&f["primal"], "primal")?,
            dual: f64_of(&f["dual"], "dual")?,
            gap: f64_of(&f["gap"], "gap")?,
            iterations: f["iterations"].as_u64().unwrap_or(0) as usize,
            smo_iterations: f["smo_iterations"].as_u64().unwrap_or(0) as usize,
            n_support: f["n_support"].as_u64().unwrap_or(0) as usize,
            converged: f["converged"].as_bool().unwrap_or(false),
            gap_history: Vec::new(),
        });
    }
    if fits.is_empty() {
        return Err(bad(path, "no fits"));
    }
    let (nb, nc) = (fits[0].beta.len(), fits[0].coef.len());
    if fits
        .iter()
        .any(|f| f.beta.len() != nb || f.coef.len() != nc)
    {
        return Err(bad(path, "fits of different sizes"));
    }
    let model = MklModel {
        options,
        classes: vec_of(&v["classes"], "classes")?,
        fits,
        data: Vec::new(),
    };
    let Some(entries) = v.get("data") else {
        return Ok(model);
    };
    let entries = entries
        .as_array()
        .ok_or_else(|| bad(path, "`data` is not an array"))?;
    let mut data = Vec::new();
    for e in entries {
        let name = e["name"]
            .as_str()
            .ok_or_else(|| bad(path, "a data entry has no name"))?;
        let kernel: Kernel = e["kernel"]
            .as_str()
            .ok_or_else(|| bad(path, "a data entry has no kernel"))?
            .parse()?;
        let kind: Normalization = e["normalize"]
            .as_str()
            .ok_or_else(|| bad(path, "a data entry has no normalize"))?
            .parse()?;
        let rows = e["train"]["rows"].as_u64().unwrap_or(0) as usize;
        let cols = e["train"]["cols"].as_u64().unwrap_or(0) as usize;
        let values = vec_of(&e["train"]["values"], "train values")?;
        if rows.checked_mul(cols) != Some(values.len()) || rows * cols == 0 {
            return Err(bad(
                path,
                &format!("training data of `{name}` has a bad shape"),
            ));
        }
        data.push(DataKernel {
            name: name.to_string(),
            kernel,
            train: Matrix::from_vec(rows, cols, values)?,
            stats: TrainStats {
                kind,
                trace_mean: f64_of(&e["trace_mean"], "trace_mean")?,
                diag: vec_of(&e["diag"], "diag")?,
                col_means: vec_of(&e["col_means"], "col_means")?,
                grand_mean: f64_of(&e["grand_mean"], "grand_mean")?,
            },
        });
    }
    model.with_data(data).map_err(|e| bad(path, &e.to_string()))
}

pub(crate) fn run(a: MklArgs) -> Result<()> {
    match a.what {
        MklCommand::Fit(f) => run_fit(f),
        MklCommand::Predict(p) => run_predict(p),
    }
}

fn run_fit(a: MklFitArgs) -> Result<()> {
    let p = mmfuse::mkl::parse_p(&a.p)?;
    let mut modalities = Vec::new();
    let kernels = if a.data.is_empty() {
        a.kernels
            .iter()
            .map(read_matrix::<f64>)
            .collect::<Result<Vec<_>>>()?
    } else {
        let how: Normalization = a.normalize.parse()?;
        let mut ks = Vec::new();
        for arg in &a.data {
            let (name, path, kernel) = parse_data_arg(arg)?;
            if modalities.iter().any(|d: &DataKernel| d.name == name) {
                return Err(Error::param(
                    "data",
                    format!("modality `{name}` given twice"),
                ));
            }
            let x: Matrix<f64> = read_matrix(&path)?;
            let (d, k) = DataKernel::new(&name, x, &kernel, how, &GramOptions::default())?;
            modalities.push(d);
            ks.push(k);
        }
        ks
    };
    let y = read_vector(&a.labels, "labels")?;
    let refs: Vec<&Matrix<f64>> = kernels.iter().collect();
    let opts = MklOptions {
        p,
        c: a.c,
        loss: match a.loss {
            LossArg::Hinge => Loss::Hinge,
            LossArg::Squared => Loss::Squared,
        },
        eps: a.eps,
        tol: a.tol,
        max_iter: a.max_iter,
        allow_indefinite: a.allow_indefinite,
        ..MklOptions::default()
    };
    let quiet = a.quiet;
    let mut progress = |it: usize, gap: f64, beta: &[f64]| {
        if !quiet {
            let b: Vec<String> = beta.iter().map(|v| format!("{v:.4}")).collect();
            eprintln!("iter {it:>4}  gap {gap:.3e}  beta [{}]", b.join(", "));
        }
    };
    let model = match opts.loss {
        Loss::Squared => {
            let f = fit_with_progress(&refs, &y, &opts, &mut progress)?;
            MklModel {
                options: opts,
                classes: Vec::new(),
                fits: vec![f],
                data: Vec::new(),
            }
        }
        Loss::Hinge => MklModel::fit_classifier_with_progress(&refs, &y, &opts, &mut progress)?,
    };
    let model = if modalities.is_empty() {
        model
    } else {
        model.with_data(modalities)?
    };
    let text = serde_json::to_string_pretty(&model_json(&model)).unwrap_or_default();
    write_atomic_bytes(&a.out, text.as_bytes())
}

fn run_predict(a: MklPredictArgs) -> Result<()> {
    let bytes = std::fs::read(&a.model).map_err(|e| Error::Io {
        path: a.model.clone(),
        source: e,
    })?;
    let v: Value = serde_json::from_slice(&bytes).map_err(|e| bad(&a.model, &e.to_string()))?;
    let model = model_from_json(&v, &a.model)?;
    let kernels = if a.data.is_empty() {
        if !model.data.is_empty() {
            return Err(Error::param(
                "data",
                "this model was fitted with --data: give the test data with --data NAME=PATH",
            ));
        }
        a.kernels
            .iter()
            .map(read_matrix::<f64>)
            .collect::<Result<Vec<_>>>()?
    } else {
        let mut test = Vec::new();
        for arg in &a.data {
            let (name, rest) = arg
                .split_once('=')
                .ok_or_else(|| Error::param("data", format!("expected NAME=PATH, got `{arg}`")))?;
            test.push((name.trim().to_string(), read_matrix::<f64>(rest)?));
        }
        let views: Vec<(&str, faer::MatRef<'_, f64>)> = test
            .iter()
            .map(|(name, x)| (name.as_str(), x.as_mat_ref()))
            .collect();
        model.test_kernels(&views, &GramOptions::default())?
    };
    let refs: Vec<&Matrix<f64>> = kernels.iter().collect();
    let scores = model.decision_function(&refs)?;
    let n_test = scores[0].len();
    let labels = model.predict(&refs)?;
    if scores.len() == 1 {
        write_npy(&a.out, &[n_test], &scores[0])?;
    } else {
        let k = scores.len();
        let mut flat = vec![0.0; n_test * k];
        for (c, col) in scores.iter().enumerate() {
            for (t, v) in col.iter().enumerate() {
                flat[t * k + c] = *v;
            }
        }
        write_npy(&a.out, &[n_test, k], &flat)?;
    }
    if let Some(path) = &a.labels_out {
        write_npy(path, &[n_test], &labels)?;
    }
    Ok(())
}
