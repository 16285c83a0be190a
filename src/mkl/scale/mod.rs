//! MKL from data without n x n matrices (docs/design.md section 10): the kernels are never
//! stored. SMO runs on the combined kernel K_beta with its rows computed on demand from the
//! data by the Gram tile code, normalised on the fly with training statistics, kept in an LRU
//! cache under one byte budget (f32 by default), with libsvm's shrinking; after each fixed-beta
//! solve the per-block outputs g_b = K_b a, which give s_b = a^T K_b a exactly and the next warm
//! start, come from one tiled product over the support vectors.
//!
//! [`fit_from_data`] is the entry point (hinge loss; one-vs-rest above two classes). Its model
//! is an ordinary data-driven [`MklModel`]: it saves, loads and predicts as one fitted on dense
//! kernels does.

mod cache;
mod pass;
mod solver;
mod source;

pub use cache::CacheStats;
pub use solver::SolverStats;

use super::{outer_loop, smo, FixedBetaSolver, Loss, MklModel, MklOptions, Solved};
use crate::blocks::BlockSpec;
use crate::error::{Error, Result};
use crate::gram::{Kernel, Normalization, PreparedData, TrainStats};
use crate::matrix::Matrix;
use crate::mkl::{BlockKernels, DataKernel};
use crate::scalar::Real;
use faer::MatRef;
use pass::block_products;
use solver::FixedBeta;
use source::{BlockSource, DataSource, ModalitySource, TileScratch, Transform};
use std::cell::Cell;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

/// Precision of the rows computed on demand and held in the cache.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum RowPrecision {
    /// f32 data, tiles and cache (half the memory per row, twice the GEMM rate).
    #[default]
    F32,
    /// f64 throughout.
    F64,
}

/// Options of [`fit_from_data`] besides the MKL options.
#[derive(Clone, Debug, Default)]
pub struct RowOptions {
    /// Byte budget of the row cache, shared by all kernels; `None`: a quarter of the memory cap
    /// ([`crate::limits::memory_limit`]). It must hold at least two rows of n values.
    pub cache_bytes: Option<u64>,
    /// Precision of rows and cache.
    pub precision: RowPrecision,
    /// Turn libsvm's shrinking off (on by default: it is what makes rows short at large n).
    pub no_shrinking: bool,
    /// Worker threads (`None`: the current rayon pool).
    pub threads: Option<usize>,
    /// Set from another thread to stop the fit (it then returns `Error::Cancelled`).
    pub cancel: Option<Arc<AtomicBool>>,
}

/// One modality of a fit from data.
#[derive(Clone, Copy, Debug)]
pub struct DataModality<'a> {
    /// Its name (block names join these with `*`).
    pub name: &'a str,
    /// Training data, n x d.
    pub data: MatRef<'a, f64>,
    /// Its kernel (`gamma: None` resolves to 1/d).
    pub kernel: Kernel,
}

/// Progress of [`fit_from_data`] after an outer iteration.
#[derive(Clone, Copy, Debug)]
pub struct RowProgress<'a> {
    /// Which binary problem (0 for two classes; the class index for one-vs-rest).
    pub problem: usize,
    /// Outer iteration.
    pub iteration: usize,
    /// Relative duality gap.
    pub gap: f64,
    /// Current weights.
    pub beta: &'a [f64],
    /// The row cache's counters so far (all problems).
    pub cache: CacheStats,
}

/// What a fit from data did, besides the model.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RowFitStats {
    /// The solver's counters (cache, shrinking), over all binary problems.
    pub solver: SolverStats,
    /// The cache budget used, in bytes.
    pub cache_bytes: u64,
    /// Precision of rows and cache.
    pub precision: &'static str,
    /// Training points whose rows the model keeps (the support vectors when the
    /// normalisation allows it, else all; see [`fit_from_data`]).
    pub stored_rows: usize,
}

/// Fits lp-norm MKL (hinge loss) from per-modality data without forming any n x n matrix.
///
/// The kernels and their normalisation are those of the dense data-driven form
/// ([`DataKernel`], or [`BlockKernels`] with `blocks` other than `none`, in which case
/// `normalization` must be `None`: every block is centred and trace-normalised), computed
/// from the data: the statistics (the diagonal; for centring the column means of K, one tiled
/// pass of K 1 / n) first, then rows on demand. Labels: any two or more distinct values
/// (one-vs-rest above two), as [`MklModel::fit_classifier`].
///
/// The model stores only the support vectors' rows of each modality when the normalisation
/// allows it (none, trace, unit diagonal, no interaction blocks): a centred kernel of a test
/// point needs its mean over every training point, so models with centring or interaction
/// blocks keep all training rows.
///
/// ```
/// use mmfuse::gram::{Kernel, Normalization};
/// use mmfuse::mkl::{fit_from_data, DataModality, MklOptions, RowOptions};
/// use mmfuse::blocks::BlockSpec;
/// use mmfuse::Matrix;
/// let n = 40;
/// let x = Matrix::from_vec(n, 2, (0..2 * n).map(|k| ((k * 37 % 11) as f64) / 11.0).collect())?;
/// let labels: Vec<f64> = (0..n).map(|i| if x.get(i, 0) > 0.5 { 1.0 } else { 0.0 }).collect();
/// let views = [DataModality { name: "v", data: x.as_mat_ref(), kernel: Kernel::rbf(1.0) }];
/// let (model, stats) = fit_from_data(&views, Normalization::Trace, &BlockSpec::None, &labels,
///     &MklOptions::default(), &RowOptions::default(), &mut |_| {})?;
/// let predicted = model.predict_from_data(&[("v", x.as_mat_ref())], &Default::default())?;
/// assert!(predicted.iter().zip(&labels).filter(|(p, l)| p == l).count() >= 36);
/// assert!(stats.stored_rows <= n);
/// # Ok::<(), mmfuse::Error>(())
/// ```
///
/// # Errors
/// No modalities, names empty or repeated, data empty, non-finite or with differing row
/// counts; bad kernel parameters or options (as [`super::fit`]); the squared loss (not
/// implemented from data: precomputed kernels only); a cache below two rows; data and cache
/// together above the memory cap (`TooLarge`, naming the bytes); a kernel with a negative
/// 2 x 2 principal minor among 256 sampled points (`NotPsd`, unless `allow_indefinite`);
/// `Cancelled` when `rows.cancel` is set.
pub fn fit_from_data(
    modalities: &[DataModality<'_>],
    normalization: Normalization,
    blocks: &BlockSpec,
    labels: &[f64],
    options: &MklOptions,
    rows: &RowOptions,
    progress: &mut (dyn FnMut(&RowProgress<'_>) + Send),
) -> Result<(MklModel, RowFitStats)> {
    let mut run = move || match rows.precision {
        RowPrecision::F32 => fit_generic::<f32>(
            modalities,
            normalization,
            blocks,
            labels,
            options,
            rows,
            progress,
        ),
        RowPrecision::F64 => fit_generic::<f64>(
            modalities,
            normalization,
            blocks,
            labels,
            options,
            rows,
            progress,
        ),
    };
    match rows.threads {
        None => run(),
        Some(t) => crate::threads::install(Some(t), run)?,
    }
}

fn check_options(o: &MklOptions) -> Result<()> {
    if o.loss == Loss::Squared {
        return Err(Error::param(
            "loss",
            "the squared loss is not implemented for fits from data with rows on demand; use \
             precomputed kernels (MklModel::fit_regressor, `mkl fit --solver dense`), which \
             hold M n^2 f64 values",
        ));
    }
    if o.p.is_nan() || o.p < 1.0 {
        return Err(Error::param("p", format!("must be >= 1, got {}", o.p)));
    }
    for (name, v) in [("c", o.c), ("eps", o.eps), ("tol", o.tol)] {
        if !(v.is_finite() && v > 0.0) {
            return Err(Error::param(
                name,
                format!("must be finite and > 0, got {v}"),
            ));
        }
    }
    if o.max_iter == 0 {
        return Err(Error::param("max_iter", "must be >= 1"));
    }
    Ok(())
}

/// The classes and the -1/+1 problems of `labels` (one for two classes, one per class above).
fn problems(labels: &[f64]) -> Result<(Vec<f64>, Vec<Vec<f64>>)> {
    if let Some(i) = labels.iter().position(|v| !v.is_finite()) {
        return Err(Error::NonFinite {
            what: "labels".into(),
            row: i,
            col: 0,
            value: format!("{}", labels[i]),
        });
    }
    let mut classes = labels.to_vec();
    classes.sort_by(|a, b| a.total_cmp(b));
    classes.dedup();
    if classes.len() < 2 {
        return Err(Error::param(
            "labels",
            format!("need at least two classes, found {}", classes.len()),
        ));
    }
    let positives = if classes.len() == 2 {
        vec![classes[1]]
    } else {
        classes.clone()
    };
    let ys = positives
        .iter()
        .map(|&pos| {
            labels
                .iter()
                .map(|&l| if l == pos { 1.0 } else { -1.0 })
                .collect()
        })
        .collect();
    Ok((classes, ys))
}

fn fit_generic<T: Real>(
    modalities: &[DataModality<'_>],
    normalization: Normalization,
    spec: &BlockSpec,
    labels: &[f64],
    options: &MklOptions,
    rows: &RowOptions,
    progress: &mut (dyn FnMut(&RowProgress<'_>) + Send),
) -> Result<(MklModel, RowFitStats)> {
    check_options(options)?;
    let first = modalities
        .first()
        .ok_or_else(|| Error::Empty("MKL from data needs at least one modality".into()))?;
    let n = first.data.nrows();
    if n < 2 {
        return Err(Error::Empty(format!(
            "MKL needs at least 2 samples, got {n}"
        )));
    }
    let names: Vec<&str> = modalities.iter().map(|m| m.name).collect();
    if let Some(m) = modalities.iter().find(|m| m.name.is_empty()) {
        return Err(Error::param(
            "data",
            format!(
                "a modality needs a non-empty name (one of {} x {})",
                m.data.nrows(),
                m.data.ncols()
            ),
        ));
    }
    for m in modalities {
        if m.data.nrows() != n {
            return Err(Error::Shape(format!(
                "modality `{}` has {} rows, `{}` {n}",
                m.name,
                m.data.nrows(),
                first.name
            )));
        }
    }
    let interactions = *spec != BlockSpec::None;
    if interactions && normalization != Normalization::None {
        return Err(Error::param(
            "normalize",
            "with interaction blocks every block is centred and trace-normalised; pass \
             Normalization::None",
        ));
    }
    let resolved = spec.resolve(&names)?;
    if labels.len() != n {
        return Err(Error::Shape(format!(
            "{} labels for {n} samples",
            labels.len()
        )));
    }
    let (classes, ys) = problems(labels)?;
    // Memory: the data in T (with rbf's shifted copy), the cache, O(n) vectors per block.
    let data_values: usize = modalities
        .iter()
        .map(|m| {
            let copies = if matches!(m.kernel, Kernel::Rbf { .. }) {
                2
            } else {
                1
            };
            m.data.ncols() * copies
        })
        .sum::<usize>()
        .saturating_mul(n);
    let data_bytes = data_values.saturating_mul(std::mem::size_of::<T>()) as u64;
    let (limit, source) = crate::limits::memory_limit();
    let cache_bytes = rows.cache_bytes.unwrap_or((limit / 4) as u64);
    let total = data_bytes as u128
        + cache_bytes as u128
        + (n as u128) * 8 * (4 + 2 * resolved.len() as u128);
    if total > limit {
        return Err(Error::TooLarge {
            what: format!(
                "MKL from data: the prepared data ({data_bytes} bytes) and the row cache \
                 ({cache_bytes} bytes) of {n} points (the cap is {source}; lower --cache or \
                 raise --max-memory)"
            ),
            bytes: total,
            limit,
        });
    }
    // Prepared data and statistics.
    let mut mods = Vec::with_capacity(modalities.len());
    for m in modalities {
        let x: Vec<T> = (0..n)
            .flat_map(|i| (0..m.data.ncols()).map(move |j| (i, j)))
            .map(|(i, j)| T::from_f64(m.data[(i, j)]))
            .collect();
        if let Some(p) = (0..n * m.data.ncols()).find(|&p| {
            let d = m.data.ncols();
            !m.data[(p / d, p % d)].is_finite()
        }) {
            let d = m.data.ncols();
            return Err(Error::NonFinite {
                what: format!("training data of modality `{}`", m.name),
                row: p / d,
                col: p % d,
                value: format!("{}", m.data[(p / d, p % d)]),
            });
        }
        let xm = Matrix::from_vec(n, m.data.ncols(), x)?;
        let prep = PreparedData::new(xm.as_mat_ref(), &m.kernel)?;
        mods.push(ModalitySource::new(m.name, prep, Transform::None));
    }
    let never = AtomicBool::new(false);
    let cancel: &AtomicBool = rows.cancel.as_deref().unwrap_or(&never);
    let mut src = DataSource {
        blocks: DataSource::<T>::block_sources(&resolved, &vec![1.0; resolved.len()]),
        modalities: mods,
        n,
    };
    let centre = interactions || normalization == Normalization::Center;
    let all: Vec<usize> = (0..n).collect();
    if centre {
        // Column means of every raw modality kernel: one pass of K 1 / n per modality.
        let raw = DataSource {
            modalities: std::mem::take(&mut src.modalities),
            blocks: (0..modalities.len())
                .map(|m| BlockSource {
                    name: modalities[m].name.to_string(),
                    members: vec![m],
                    scale: 1.0,
                })
                .collect(),
            n,
        };
        let ones = vec![1.0 / n as f64; n];
        let means = block_products(
            &raw,
            &all,
            &all,
            &ones,
            &vec![true; modalities.len()],
            cancel,
        )?;
        src.modalities = raw.modalities;
        for (m, cm) in src.modalities.iter_mut().zip(means) {
            let grand = cm.iter().sum::<f64>() / n as f64;
            m.transform = Transform::Center {
                col_means: cm,
                grand,
            };
        }
    }
    let mut train_stats = Vec::with_capacity(modalities.len());
    for m in &mut src.modalities {
        let mut st = empty_stats(if interactions {
            Normalization::None
        } else {
            normalization
        });
        match st.kind {
            Normalization::None => {}
            Normalization::Trace => {
                let mean = m.self_sim.iter().sum::<f64>() / n as f64;
                if !(mean.is_finite() && mean > 0.0) {
                    return Err(Error::param(
                        "normalize",
                        format!(
                            "trace normalisation of modality `{}` needs a positive trace, got mean {mean}",
                            m.name
                        ),
                    ));
                }
                st.trace_mean = mean;
                m.transform = Transform::Scale(1.0 / mean);
            }
            Normalization::UnitDiag => {
                st.diag = m.self_sim.clone();
                m.transform = Transform::UnitDiag;
            }
            Normalization::Center => {
                if let Transform::Center { col_means, grand } = &m.transform {
                    st.col_means = col_means.clone();
                    st.grand_mean = *grand;
                }
            }
        }
        train_stats.push(st);
    }
    let mut scaling = Vec::new();
    if interactions {
        for b in 0..src.blocks.len() {
            let tr = (0..n).map(|i| src.block_diag(b, i)).sum::<f64>() / n as f64;
            if !(tr.is_finite() && tr > 0.0) {
                return Err(Error::param(
                    "interactions",
                    format!(
                        "block `{}` has no positive trace after centring (a constant kernel?)",
                        src.blocks[b].name
                    ),
                ));
            }
            src.blocks[b].scale = 1.0 / tr;
            let mut st = empty_stats(Normalization::Trace);
            st.trace_mean = tr;
            scaling.push(st);
        }
    }
    if !options.allow_indefinite {
        check_sampled_minors(&src)?;
    }
    // The binary problems.
    let budget = usize::try_from(cache_bytes).unwrap_or(usize::MAX);
    let shared = Cell::new(SolverStats::default());
    let mut fits = Vec::with_capacity(ys.len());
    for (problem, y) in ys.iter().enumerate() {
        let mut inner = RowInner {
            src: &src,
            y,
            opts: options,
            alpha: vec![0.0; n],
            f: vec![0.0; n],
            g: vec![vec![0.0; n]; src.blocks.len()],
            last_beta: None,
            steps: 0,
            budget,
            shrinking: !rows.no_shrinking,
            cancel,
            stats: &shared,
        };
        let mut report = |iteration: usize, gap: f64, beta: &[f64]| {
            progress(&RowProgress {
                problem,
                iteration,
                gap,
                beta,
                cache: shared.get().cache,
            })
        };
        let opts = MklOptions {
            loss: Loss::Hinge,
            ..options.clone()
        };
        fits.push(outer_loop(
            &mut inner,
            src.blocks.len(),
            y,
            &opts,
            super::Stop::on(cancel),
            &mut report,
        )?);
    }
    let opts = MklOptions {
        loss: Loss::Hinge,
        ..options.clone()
    };
    // The model, as the dense data-driven path builds it.
    let data: Vec<DataKernel> = modalities
        .iter()
        .zip(&src.modalities)
        .zip(train_stats)
        .map(|((m, s), stats)| DataKernel {
            name: m.name.to_string(),
            kernel: *s.prep.kernel(),
            train: Matrix::from_mat_ref(m.data),
            stats,
        })
        .collect();
    let mut model = MklModel {
        options: opts,
        classes,
        fits,
        data: Vec::new(),
        blocks: None,
    };
    if interactions {
        let centring = src
            .modalities
            .iter()
            .map(|m| {
                let mut st = empty_stats(Normalization::Center);
                if let Transform::Center { col_means, grand } = &m.transform {
                    st.col_means = col_means.clone();
                    st.grand_mean = *grand;
                }
                st
            })
            .collect();
        model = model.with_blocks(BlockKernels {
            modalities: names.iter().map(|s| s.to_string()).collect(),
            blocks: resolved,
            centring,
            scaling,
        })?;
    }
    let keep_all = interactions || normalization == Normalization::Center;
    let (model, stored_rows) = if keep_all {
        (model.with_data(data)?, n)
    } else {
        keep_support_vectors(model, data)?
    };
    Ok((
        model,
        RowFitStats {
            solver: shared.get(),
            cache_bytes,
            precision: if std::mem::size_of::<T>() == 4 {
                "f32"
            } else {
                "f64"
            },
            stored_rows,
        },
    ))
}

fn empty_stats(kind: Normalization) -> TrainStats {
    TrainStats {
        kind,
        trace_mean: 1.0,
        diag: Vec::new(),
        col_means: Vec::new(),
        grand_mean: 0.0,
    }
}

/// Keeps only the training rows that some fit uses (a non-zero coefficient), with the
/// coefficients and per-point statistics cut alike.
fn keep_support_vectors(
    mut model: MklModel,
    mut data: Vec<DataKernel>,
) -> Result<(MklModel, usize)> {
    let n = model.fits[0].coef.len();
    let keep: Vec<usize> = (0..n)
        .filter(|&i| model.fits.iter().any(|f| f.coef[i] != 0.0))
        .collect();
    // At least one row, so that the model stays a well-formed data-driven model.
    let keep = if keep.is_empty() { vec![0] } else { keep };
    for f in &mut model.fits {
        f.coef = keep.iter().map(|&i| f.coef[i]).collect();
    }
    for d in &mut data {
        let cols = d.train.ncols();
        let mut rows = Vec::with_capacity(keep.len() * cols);
        for &i in &keep {
            rows.extend_from_slice(d.train.row(i));
        }
        d.train = Matrix::from_vec(keep.len(), cols, rows)?;
        if d.stats.kind == Normalization::UnitDiag {
            d.stats.diag = keep.iter().map(|&i| d.stats.diag[i]).collect();
        }
    }
    let stored = keep.len();
    Ok((model.with_data(data)?, stored))
}

/// The PSD screen of the dense path's entry check, on a sample: every 2 x 2 principal minor
/// among 256 points spread over the training set (all of them when n <= 256), per block, and
/// finite entries with a non-negative diagonal.
fn check_sampled_minors<T: Real>(src: &DataSource<T>) -> Result<()> {
    let n = src.n;
    let s = n.min(256);
    let ids: Vec<usize> = (0..s).map(|k| k * n / s).collect();
    let need = vec![true; src.modalities.len()];
    let prep: Vec<Option<PreparedData<T>>> = src
        .modalities
        .iter()
        .map(|m| Some(m.prep.gather(&ids)))
        .collect();
    let mut scratch = TileScratch::new(src.modalities.len());
    src.modality_tiles(&need, (&ids, &prep), (&ids, &prep), s, &mut scratch);
    for (b, blk) in src.blocks.iter().enumerate() {
        src.block_tile(b, &mut scratch);
        let k = |i: usize, j: usize| scratch.block[i * s + j].to_f64();
        for i in 0..s {
            let kii = k(i, i);
            if !kii.is_finite() || kii < 0.0 {
                return Err(Error::NotPsd(format!(
                    "block `{}` has the diagonal entry K[{}][{}] = {kii}",
                    blk.name, ids[i], ids[i]
                )));
            }
            for j in i + 1..s {
                let (kij, kjj) = (k(i, j), k(j, j));
                if !kij.is_finite() {
                    return Err(Error::NonFinite {
                        what: format!("kernel of block `{}`", blk.name),
                        row: ids[i],
                        col: ids[j],
                        value: format!("{kij}"),
                    });
                }
                let tol = 1e-5 * (kii * kjj).max(f64::MIN_POSITIVE);
                if kij * kij > kii * kjj + tol {
                    return Err(Error::NotPsd(format!(
                        "block `{}` is not positive semi-definite: the 2 x 2 minor of points {} \
                         and {} is {} (K_ij = {kij}, K_ii = {kii}, K_jj = {kjj}); checked on 256 \
                         sampled points; allow_indefinite fits anyway",
                        blk.name,
                        ids[i],
                        ids[j],
                        kii * kjj - kij * kij
                    )));
                }
            }
        }
    }
    Ok(())
}

/// The fixed-beta solver on rows from the data, with its warm-start state.
struct RowInner<'a, T: Real> {
    src: &'a DataSource<T>,
    y: &'a [f64],
    opts: &'a MklOptions,
    alpha: Vec<f64>,
    /// F = K_beta (y alpha) for `last_beta`.
    f: Vec<f64>,
    /// g_b = K_b (y alpha) per block, from the last pass.
    g: Vec<Vec<f64>>,
    last_beta: Option<Vec<f64>>,
    steps: usize,
    budget: usize,
    shrinking: bool,
    cancel: &'a AtomicBool,
    stats: &'a Cell<SolverStats>,
}

impl<T: Real> FixedBetaSolver for RowInner<'_, T> {
    fn steps(&self) -> usize {
        self.steps
    }

    fn solve(&mut self, beta: &[f64], tol: f64) -> Result<Solved> {
        let n = self.y.len();
        if self.last_beta.as_deref() != Some(beta) {
            // Warm start for new weights: F from the per-block outputs of the last pass.
            for (t, f) in self.f.iter_mut().enumerate() {
                *f = beta.iter().zip(&self.g).map(|(b, g)| b * g[t]).sum();
            }
        }
        let fixed = FixedBeta {
            src: self.src,
            y: self.y,
            beta,
            c: self.opts.c,
            tol,
            max_iter: self.opts.max_smo_iter,
            cache_bytes: self.budget,
            shrinking: self.shrinking,
            cancel: self.cancel,
        };
        let mut stats = self.stats.get();
        let run = fixed.solve(&mut self.alpha, &mut self.f, &mut stats)?;
        self.stats.set(stats);
        self.steps += run.iterations;
        if !run.converged && run.iterations >= self.opts.max_smo_iter {
            return Err(Error::NotConverged(format!(
                "SMO reached max_smo_iter = {} with KKT violation {:.3e}",
                self.opts.max_smo_iter, run.violation
            )));
        }
        let a: Vec<f64> = self
            .alpha
            .iter()
            .zip(self.y)
            .map(|(al, y)| al * y)
            .collect();
        let active: Vec<usize> = beta
            .iter()
            .enumerate()
            .filter(|(_, &b)| b != 0.0)
            .map(|(m, _)| m)
            .collect();
        if self.src.blocks.len() == 1 && active.len() == 1 {
            // One kernel: its output is F / beta, no pass needed.
            let b0 = beta[0];
            self.g[0] = self.f.iter().map(|f| f / b0).collect();
        } else {
            let sv: Vec<usize> = (0..n).filter(|&t| a[t] != 0.0).collect();
            let coef: Vec<f64> = sv.iter().map(|&t| a[t]).collect();
            let all: Vec<usize> = (0..n).collect();
            let want = vec![true; self.src.blocks.len()];
            self.g = block_products(self.src, &all, &sv, &coef, &want, self.cancel)?;
            for (t, f) in self.f.iter_mut().enumerate() {
                *f = beta.iter().zip(&self.g).map(|(b, g)| b * g[t]).sum();
            }
        }
        self.last_beta = Some(beta.to_vec());
        let grad: Vec<f64> = (0..n).map(|i| self.y[i] * self.f[i] - 1.0).collect();
        let b = smo::bias(self.y, &grad, &self.alpha, self.opts.c);
        let s = self
            .g
            .iter()
            .map(|gm| gm.iter().zip(&a).map(|(x, y)| x * y).sum())
            .collect();
        Ok(Solved {
            a,
            b,
            g: self.g.clone(),
            s,
        })
    }
}
