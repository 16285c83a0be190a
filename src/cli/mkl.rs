//! `mmfuse mkl fit` and `mmfuse mkl predict`: a stable contract for other tools.

use super::progress::FitProgress;
use clap::{Args, Subcommand, ValueEnum};
use mmfuse::blocks::BlockSpec;
use mmfuse::error::{Error, Result};
use mmfuse::gram::{GramOptions, Kernel, Normalization};
use mmfuse::io::{read_matrix, read_npy, write_atomic_bytes, write_npy};
use mmfuse::matrix::Matrix;
use mmfuse::mkl::{
    fit_from_data, fit_with_progress, BlockKernels, DataKernel, DataModality, Loss, MklFit,
    MklModel, MklOptions, RowFitStats, RowOptions, RowPrecision, RowProgress,
};
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
    /// A training kernel (n x n .npy/.npz/.csv), `PATH` or `NAME=PATH`; repeat once per
    /// kernel, in a fixed order. Names are needed for --interactions.
    #[arg(
        long = "kernel",
        value_name = "[NAME=]PATH",
        required_unless_present = "data",
        conflicts_with = "data"
    )]
    pub kernels: Vec<String>,
    /// Data-driven form instead of --kernel: `NAME=PATH[:KERNEL]`, one per modality, e.g.
    /// `visual=V.npy:rbf:gamma=0.1` (n x d data; the kernel spec as in `mmfuse gram`, default
    /// `rbf` with gamma = 1/d; PATH must not contain `:`). The Gram matrices are built and
    /// normalised (--normalize) here, and the training data, kernels and normalisation
    /// statistics are stored in the model so that `predict --data` applies them.
    #[arg(long = "data", value_name = "NAME=PATH[:KERNEL]")]
    pub data: Vec<String>,
    /// Normalisation of the data-driven kernels: none, trace (the default), unit-diag, center.
    /// Not with --interactions, which centres and trace-normalises every block itself.
    #[arg(long)]
    pub normalize: Option<String>,
    /// Interaction blocks besides one block per modality: none (the default), pairs, all, or
    /// a list such as `visual*audio,visual*audio*text`. The block kernels are products of the
    /// modality kernels, each centred with its training statistics, then every block is
    /// trace-normalised; needs --data or named --kernel NAME=PATH.
    #[arg(long, default_value = "none")]
    pub interactions: String,
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
    /// How to fit --data: auto, dense or rows (see `SolverArg`).
    #[arg(long, value_enum, default_value = "auto")]
    pub solver: SolverArg,
    /// Row cache of `--solver rows`, e.g. `2G`, `500M` (default: a quarter of the memory cap).
    #[arg(long, value_name = "SIZE")]
    pub cache: Option<String>,
    /// Precision of the rows of `--solver rows`.
    #[arg(long, value_enum, default_value = "f32")]
    pub row_precision: RowPrecisionArg,
    /// Turn shrinking off (`--solver rows`).
    #[arg(long)]
    pub no_shrinking: bool,
    /// No progress lines on stderr.
    #[arg(long)]
    pub quiet: bool,
    /// Model file (binary: one safetensors file, any extension), written atomically; read by
    /// `mkl predict --model` and by `MklModel::load`.
    #[arg(long)]
    pub out: PathBuf,
    /// Fit report (JSON): weights, shares, objectives, gap, iteration counts, p, C, loss,
    /// classes, per-class fits; no coefficients or training data.
    #[arg(long, value_name = "PATH")]
    pub report: Option<PathBuf>,
}

/// Solver of `mkl fit --data`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum SolverArg {
    /// `rows` when the dense kernels (one n x n f64 matrix per kernel or block) would take more
    /// than a quarter of the memory cap, else `dense`; precomputed kernels and the squared
    /// loss always use `dense`.
    Auto,
    /// Build every n x n kernel, then fit (exact f64, fastest while the kernels fit in memory).
    Dense,
    /// No n x n matrix: kernel rows computed on demand from the data, an LRU cache (--cache)
    /// and shrinking (hinge loss only; docs/design.md section 10).
    Rows,
}

/// Precision of `mkl fit --solver rows`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum RowPrecisionArg {
    /// f32 rows and cache (half the memory per row).
    F32,
    /// f64 throughout.
    F64,
}

/// `mmfuse mkl predict`.
#[derive(Debug, Args)]
pub struct MklPredictArgs {
    /// Model written by `mkl fit`.
    #[arg(long)]
    pub model: PathBuf,
    /// A test kernel K_m(X_test, X_train), n_test x n_train, `PATH` (same order as at
    /// training) or `NAME=PATH` (a model with interaction blocks matches names to modalities).
    #[arg(
        long = "kernel",
        value_name = "[NAME=]PATH",
        required_unless_present = "data",
        conflicts_with = "data"
    )]
    pub kernels: Vec<String>,
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
        "beta": f.beta, "beta_shares": f.beta_shares, "bias": f.bias,
        "primal": f.primal, "dual": f.dual, "gap": f.gap, "iterations": f.iterations,
        "smo_iterations": f.smo_iterations, "n_support": f.n_support, "converged": f.converged,
    })
}

/// `NAME=PATH` or `PATH` of `--kernel`: named when the text before the first `=` is a plain
/// name (letters, digits, `_`, `-`; no path separators or dots).
fn split_named(arg: &str) -> (Option<&str>, &str) {
    match arg.split_once('=') {
        Some((name, path))
            if !name.is_empty()
                && !path.is_empty()
                && name
                    .chars()
                    .all(|c| c.is_alphanumeric() || c == '_' || c == '-') =>
        {
            (Some(name), path)
        }
        _ => (None, arg),
    }
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

/// The fit report (`--report`): the keys of the model without its large arrays (no
/// coefficients, no training data). For one-vs-rest each top-level fit key holds one entry per
/// class; `per_class` has every fit whole.
pub fn report_json(m: &MklModel) -> Value {
    let per: Vec<Value> = m.fits.iter().map(fit_json).collect();
    let mut top = if m.fits.len() == 1 {
        per[0].clone()
    } else {
        let keys = [
            "beta",
            "beta_shares",
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
    let mut o = serde_json::Map::new();
    o.insert("format".into(), json!("mmfuse-mkl-report-1"));
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
    o.insert("classes".into(), json!(m.classes));
    if !m.data.is_empty() {
        o.insert(
            "modalities".into(),
            json!(m.data.iter().map(|d| d.name.as_str()).collect::<Vec<_>>()),
        );
    }
    let names = m.kernel_names();
    o.insert("blocks".into(), json!(names));
    let relevance: serde_json::Map<String, Value> = m
        .relevance()
        .into_iter()
        .map(|(name, share)| (name, json!(share)))
        .collect();
    o.insert("relevance".into(), Value::Object(relevance));
    if let Some(t) = top.as_object_mut() {
        o.append(t);
    }
    // Per class, the relevance of each block too (its weight share in that class's fit).
    let per = per
        .into_iter()
        .zip(&m.fits)
        .map(|(mut v, f)| {
            let r: serde_json::Map<String, Value> = names
                .iter()
                .zip(&f.beta_shares)
                .map(|(n, s)| (n.clone(), json!(s)))
                .collect();
            if let Some(o) = v.as_object_mut() {
                o.insert("relevance".into(), Value::Object(r));
            }
            v
        })
        .collect();
    o.insert("per_class".into(), Value::Array(per));
    Value::Object(o)
}

pub(crate) fn run(a: MklArgs) -> Result<()> {
    match a.what {
        MklCommand::Fit(f) => run_fit(f),
        MklCommand::Predict(p) => run_predict(p),
    }
}

fn run_fit(a: MklFitArgs) -> Result<()> {
    let p = mmfuse::mkl::parse_p(&a.p)?;
    let spec: BlockSpec = a.interactions.parse()?;
    let interactions = spec != BlockSpec::None;
    if a.solver == SolverArg::Rows || a.cache.is_some() {
        if a.data.is_empty() {
            return Err(Error::param(
                "solver",
                "--solver rows and --cache need --data (rows are computed from the data)",
            ));
        }
        if a.loss == LossArg::Squared {
            return Err(Error::param(
                "solver",
                "--solver rows fits the hinge loss only; the squared loss needs --solver dense",
            ));
        }
    }
    if !a.data.is_empty() && a.loss == LossArg::Hinge && a.solver != SolverArg::Dense {
        let parsed = read_modalities(&a.data)?;
        if use_rows(&a, &spec, &parsed)? {
            return run_fit_rows(a, p, spec, parsed);
        }
        // Small enough for the dense path (which reads the data again: small by definition).
    }
    let mut modalities = Vec::new();
    let mut names: Vec<String> = Vec::new();
    let kernels = if a.data.is_empty() {
        let mut ks = Vec::new();
        for arg in &a.kernels {
            let (name, path) = split_named(arg);
            if interactions && name.is_none() {
                return Err(Error::param(
                    "interactions",
                    format!(
                        "interaction blocks need named kernels (--kernel NAME=PATH), got `{arg}`"
                    ),
                ));
            }
            if let Some(n) = name {
                if names.iter().any(|x| x == n) {
                    return Err(Error::param("kernel", format!("kernel `{n}` given twice")));
                }
                names.push(n.to_string());
            }
            ks.push(read_matrix::<f64>(path)?);
        }
        if a.normalize.is_some() {
            return Err(Error::param(
                "normalize",
                "--normalize applies to --data (precomputed kernels are used as given)",
            ));
        }
        ks
    } else {
        let how: Normalization = match (&a.normalize, interactions) {
            (Some(_), true) => return Err(Error::param(
                "normalize",
                "with --interactions every block is centred and trace-normalised; drop --normalize",
            )),
            (_, true) => Normalization::None,
            (Some(s), false) => s.parse()?,
            (None, false) => Normalization::Trace,
        };
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
            names.push(name);
            modalities.push(d);
            ks.push(k);
        }
        ks
    };
    // Interaction blocks: the fit weighs block kernels built from the modality kernels.
    let (blocks, kernels) = if interactions {
        let refs: Vec<&Matrix<f64>> = kernels.iter().collect();
        let name_refs: Vec<&str> = names.iter().map(String::as_str).collect();
        let (bk, ks) = BlockKernels::fit(&name_refs, &refs, &spec)?;
        drop(kernels);
        (Some(bk), ks)
    } else {
        (None, kernels)
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
    let shown = FitProgress::new(a.quiet, opts.max_iter, "mkl fit");
    let mut progress = |it: usize, gap: f64, beta: &[f64]| {
        shown.report(it, || {
            let b: Vec<String> = beta.iter().map(|v| format!("{v:.4}")).collect();
            format!("iter {it:>4}  gap {gap:.3e}  beta [{}]", b.join(", "))
        });
    };
    let model = match opts.loss {
        Loss::Squared => {
            let f = fit_with_progress(&refs, &y, &opts, &mut progress)?;
            MklModel {
                options: opts,
                classes: Vec::new(),
                fits: vec![f],
                data: Vec::new(),
                blocks: None,
            }
        }
        Loss::Hinge => MklModel::fit_classifier_with_progress(&refs, &y, &opts, &mut progress)?,
    };
    shown.finish();
    let model = match blocks {
        Some(b) => model.with_blocks(b)?,
        None => model,
    };
    let model = if modalities.is_empty() {
        model
    } else {
        model.with_data(modalities)?
    };
    // The report first: if it cannot be written, no model appears either.
    let bytes = model.to_bytes()?;
    if let Some(report) = &a.report {
        let text = serde_json::to_string_pretty(&report_json(&model)).unwrap_or_default();
        write_atomic_bytes(report, text.as_bytes())?;
    }
    write_atomic_bytes(&a.out, &bytes)
}

/// The modalities of `--data`: names, data, kernels.
struct Modalities {
    names: Vec<String>,
    xs: Vec<Matrix<f64>>,
    kernels: Vec<Kernel>,
}

fn read_modalities(args: &[String]) -> Result<Modalities> {
    let mut m = Modalities {
        names: Vec::new(),
        xs: Vec::new(),
        kernels: Vec::new(),
    };
    for arg in args {
        let (name, path, kernel) = parse_data_arg(arg)?;
        if m.names.contains(&name) {
            return Err(Error::param(
                "data",
                format!("modality `{name}` given twice"),
            ));
        }
        m.xs.push(read_matrix(&path)?);
        m.names.push(name);
        m.kernels.push(kernel);
    }
    Ok(m)
}

/// Whether `--solver auto` (or `rows`) fits from rows on demand: the dense path holds one
/// n x n f64 matrix per kernel (with interactions: per modality and per block), and auto
/// switches when those would take more than a quarter of the memory cap.
fn use_rows(a: &MklFitArgs, spec: &BlockSpec, m: &Modalities) -> Result<bool> {
    match a.solver {
        SolverArg::Rows => return Ok(true),
        SolverArg::Dense => return Ok(false),
        SolverArg::Auto => {}
    }
    if a.cache.is_some() {
        return Ok(true);
    }
    let n = m.xs.first().map_or(0, |x| x.nrows()) as u128;
    let refs: Vec<&str> = m.names.iter().map(String::as_str).collect();
    let kernels = match spec {
        BlockSpec::None => refs.len(),
        _ => refs.len() + spec.resolve(&refs)?.len(),
    } as u128;
    let (limit, _) = mmfuse::limits::memory_limit();
    Ok(kernels * n * n * 8 > limit / 4)
}

/// `mkl fit --data` with rows on demand.
fn run_fit_rows(a: MklFitArgs, p: f64, spec: BlockSpec, m: Modalities) -> Result<()> {
    let how: Normalization =
        match (&a.normalize, spec != BlockSpec::None) {
            (Some(_), true) => return Err(Error::param(
                "normalize",
                "with --interactions every block is centred and trace-normalised; drop --normalize",
            )),
            (_, true) => Normalization::None,
            (Some(s), false) => s.parse()?,
            (None, false) => Normalization::Trace,
        };
    let views: Vec<DataModality<'_>> = m
        .names
        .iter()
        .zip(&m.xs)
        .zip(&m.kernels)
        .map(|((name, x), kernel)| DataModality {
            name,
            data: x.as_mat_ref(),
            kernel: *kernel,
        })
        .collect();
    let y = read_vector(&a.labels, "labels")?;
    let opts = MklOptions {
        p,
        c: a.c,
        loss: Loss::Hinge,
        eps: a.eps,
        tol: a.tol,
        max_iter: a.max_iter,
        allow_indefinite: a.allow_indefinite,
        ..MklOptions::default()
    };
    let rows = RowOptions {
        cache_bytes: a
            .cache
            .as_deref()
            .map(mmfuse::limits::parse_bytes)
            .transpose()?,
        precision: match a.row_precision {
            RowPrecisionArg::F32 => RowPrecision::F32,
            RowPrecisionArg::F64 => RowPrecision::F64,
        },
        no_shrinking: a.no_shrinking,
        threads: None,
        // Ctrl-C ends the process (see cli::main): nothing to cancel from here.
        cancel: None,
    };
    let shown = FitProgress::new(a.quiet, opts.max_iter, "mkl fit (rows)");
    let mut progress = |r: &RowProgress<'_>| {
        shown.report(r.iteration, || {
            let b: Vec<String> = r.beta.iter().map(|v| format!("{v:.4}")).collect();
            format!(
                "problem {} iter {:>4}  gap {:.3e}  cache hit rate {:.3}  beta [{}]",
                r.problem,
                r.iteration,
                r.gap,
                r.cache.hit_rate(),
                b.join(", ")
            )
        });
    };
    let fitted = fit_from_data(&views, how, &spec, &y, &opts, &rows, &mut progress);
    shown.finish();
    let (model, stats) = fitted?;
    let bytes = model.to_bytes()?;
    if let Some(report) = &a.report {
        let mut r = report_json(&model);
        if let Value::Object(map) = &mut r {
            map.insert("solver".into(), rows_json(&stats));
        }
        let text = serde_json::to_string_pretty(&r).unwrap_or_default();
        write_atomic_bytes(report, text.as_bytes())?;
    }
    write_atomic_bytes(&a.out, &bytes)
}

/// The `solver` object of a rows fit's report.
pub fn rows_json(s: &RowFitStats) -> Value {
    let c = &s.solver.cache;
    json!({
        "kind": "rows",
        "precision": s.precision,
        "cache_bytes": s.cache_bytes,
        "cache_hits": c.hits,
        "cache_misses": c.misses,
        "cache_evictions": c.evictions,
        "cache_hit_rate": num(c.hit_rate()),
        "cache_max_rows": c.max_rows,
        "shrinks": s.solver.shrinks,
        "reconstructions": s.solver.reconstructions,
        "min_active": s.solver.min_active,
        "stored_rows": s.stored_rows,
    })
}

fn run_predict(a: MklPredictArgs) -> Result<()> {
    let model = MklModel::load(&a.model)?;
    let kernels = if a.data.is_empty() {
        if !model.data.is_empty() {
            return Err(Error::param(
                "data",
                "this model was fitted with --data: give the test data with --data NAME=PATH",
            ));
        }
        let mut named = Vec::new();
        let mut plain = Vec::new();
        for arg in &a.kernels {
            let (name, path) = split_named(arg);
            let k = read_matrix::<f64>(path)?;
            match name {
                Some(n) => named.push((n.to_string(), k)),
                None => plain.push(k),
            }
        }
        let given = match (&model.blocks, named.is_empty(), plain.is_empty()) {
            // Named test kernels of a model with blocks: matched to its modalities by name.
            (Some(b), false, true) => {
                let mut ordered = Vec::new();
                for m in &b.modalities {
                    let mut hits = named.iter().filter(|(n, _)| n == m);
                    let (_, k) = hits.next().ok_or_else(|| {
                        Error::param("kernel", format!("no test kernel for modality `{m}`"))
                    })?;
                    if hits.next().is_some() {
                        return Err(Error::param(
                            "kernel",
                            format!("modality `{m}` given twice"),
                        ));
                    }
                    ordered.push(k.clone());
                }
                if let Some((n, _)) = named.iter().find(|(n, _)| !b.modalities.contains(n)) {
                    return Err(Error::param(
                        "kernel",
                        format!("the model has no modality `{n}`"),
                    ));
                }
                ordered
            }
            (_, true, _) => plain,
            (_, false, true) => named.into_iter().map(|(_, k)| k).collect(),
            (_, false, false) => {
                return Err(Error::param(
                    "kernel",
                    "give every test kernel as NAME=PATH or none",
                ))
            }
        };
        model.block_test_kernels(&given.iter().collect::<Vec<_>>())?
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
