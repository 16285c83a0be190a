//! MKL from Python: the data-driven fit (modality data, kernels built and normalised here, as
//! `mmfuse mkl fit --data`) and the model it returns.

use crate::arrays::{matrix_to_py, vec_to_py, view};
use crate::errors::to_py;
use crate::run;
use mmfuse::blocks::BlockSpec;
use mmfuse::error::Error;
use mmfuse::gram::{GramOptions, Kernel, Normalization};
use mmfuse::mkl::{fit_cancellable, BlockKernels, DataKernel, Loss, MklOptions};
use mmfuse::Matrix;
use numpy::{PyReadonlyArray1, PyReadonlyArray2};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyTuple};

/// A fitted MKL model (the library's `MklModel`), picklable through its binary format.
#[pyclass(module = "mmfuse._native", name = "MklModel", frozen)]
pub struct MklModel {
    inner: mmfuse::mkl::MklModel,
}

/// p as the library parses it (a number >= 1, a fraction such as `4/3`, or `inf`).
#[pyfunction]
pub fn parse_p(p: &str) -> PyResult<f64> {
    mmfuse::mkl::parse_p(p).map_err(to_py)
}

/// How the modality kernels are normalised: the default is trace without interactions and none
/// with them (the blocks centre and trace-normalise), as in `mmfuse mkl fit --data`.
fn normalization(normalize: Option<&str>, interactions: bool) -> mmfuse::Result<Normalization> {
    match (normalize, interactions) {
        (Some(s), true) if s.parse::<Normalization>()? != Normalization::None => Err(Error::param(
            "normalize",
            "with interactions every block is centred and trace-normalised; leave normalize=None",
        )),
        (_, true) => Ok(Normalization::None),
        (Some(s), false) => s.parse(),
        (None, false) => Ok(Normalization::Trace),
    }
}

/// Fits MKL on modality data.
///
/// `views` is a list of `(name, X_m, kernel spec)` (X_m an n x d_m float64 array); `y` holds
/// class codes (`classify`: any distinct values, one-vs-rest above two) or real targets
/// (kernel ridge regression). `interactions` is a block spec (`none`, `pairs`, `all`,
/// `a*b,...`). Runs on a worker thread with the GIL released; Ctrl-C stops it after the current
/// outer iteration with `KeyboardInterrupt`.
#[pyfunction]
#[pyo3(signature = (views, y, classify, interactions="none", normalize=None, p="2", c=1.0,
    eps=1e-4, tol=1e-3, max_iter=200, allow_indefinite=false, threads=None, solver="auto",
    cache=None))]
#[allow(clippy::too_many_arguments)]
pub fn mkl_fit(
    py: Python<'_>,
    views: Vec<(String, PyReadonlyArray2<'_, f64>, String)>,
    y: PyReadonlyArray1<'_, f64>,
    classify: bool,
    interactions: &str,
    normalize: Option<&str>,
    p: &str,
    c: f64,
    eps: f64,
    tol: f64,
    max_iter: usize,
    allow_indefinite: bool,
    threads: Option<usize>,
    solver: &str,
    cache: Option<u64>,
) -> PyResult<MklModel> {
    // The worker owns its data (it may outlive an interrupted call): the copies are the
    // modalities' training rows, which the model keeps anyway.
    let mut data = Vec::with_capacity(views.len());
    for (name, x, spec) in &views {
        data.push((
            name.clone(),
            Matrix::from_mat_ref(view(x, name)?),
            spec.clone(),
        ));
    }
    let y = y
        .as_slice()
        .map_err(|_| PyValueError::new_err("y must be contiguous"))?
        .to_vec();
    let interactions = interactions.to_string();
    let normalize = normalize.map(str::to_string);
    let p = p.to_string();
    let solver = solver.to_string();
    let inner = run::interruptible(py, move |stop| {
        mmfuse::threads::install(threads, || {
            let spec: BlockSpec = interactions.parse()?;
            let with_blocks = spec != BlockSpec::None;
            let how = normalization(normalize.as_deref(), with_blocks)?;
            let p = mmfuse::mkl::parse_p(&p)?;
            let opts = MklOptions {
                p,
                c,
                loss: if classify { Loss::Hinge } else { Loss::Squared },
                eps,
                tol,
                max_iter,
                allow_indefinite,
                ..MklOptions::default()
            };
            if use_rows(&solver, cache, classify, &data, &spec)? {
                return fit_rows(&data, how, &spec, &y, &opts, cache, stop);
            }
            let names: Vec<String> = data.iter().map(|(n, _, _)| n.clone()).collect();
            let mut modalities = Vec::with_capacity(data.len());
            let mut kernels = Vec::with_capacity(data.len());
            for (name, x, spec) in data {
                let kernel: Kernel = spec.parse()?;
                let (d, k) = DataKernel::new(&name, x, &kernel, how, &GramOptions::default())?;
                modalities.push(d);
                kernels.push(k);
                stop.check();
            }
            let (blocks, kernels) = if with_blocks {
                let refs: Vec<&Matrix<f64>> = kernels.iter().collect();
                let names: Vec<&str> = names.iter().map(String::as_str).collect();
                let (bk, ks) = BlockKernels::fit(&names, &refs, &spec)?;
                (Some(bk), ks)
            } else {
                (None, kernels)
            };
            let refs: Vec<&Matrix<f64>> = kernels.iter().collect();
            // The stop flag reaches the SMO's inner loop (Ctrl-C ends a fit within one step,
            // not one outer iteration); `check` turns the Cancelled error into the interrupt.
            let flag = stop.flag();
            let mut progress = |_: usize, _: f64, _: &[f64]| stop.check();
            let model = if classify {
                mmfuse::mkl::MklModel::fit_classifier_cancellable(
                    &refs,
                    &y,
                    &opts,
                    &flag,
                    &mut progress,
                )
            } else {
                fit_cancellable(&refs, &y, &opts, &flag, &mut progress).map(|f| {
                    mmfuse::mkl::MklModel {
                        options: opts,
                        classes: Vec::new(),
                        fits: vec![f],
                        data: Vec::new(),
                        blocks: None,
                    }
                })
            };
            stop.check();
            let model = model?;
            let model = match blocks {
                Some(b) => model.with_blocks(b)?,
                None => model,
            };
            model.with_data(modalities)
        })?
    })?;
    Ok(MklModel { inner })
}

/// Whether a fit runs on kernel rows computed on demand (`mmfuse::mkl::fit_from_data`):
/// `solver="rows"`, or `"auto"` with a `cache` given or dense kernels (one n x n f64 matrix per
/// modality and block) above a quarter of the memory cap; classification only.
fn use_rows(
    solver: &str,
    cache: Option<u64>,
    classify: bool,
    data: &[(String, Matrix<f64>, String)],
    spec: &BlockSpec,
) -> mmfuse::Result<bool> {
    let rows = match solver {
        "rows" => true,
        "dense" => false,
        "auto" => {
            let n = data.first().map_or(0, |(_, x, _)| x.nrows()) as u128;
            let names: Vec<&str> = data.iter().map(|(n, _, _)| n.as_str()).collect();
            let kernels = match spec {
                BlockSpec::None => names.len(),
                _ => names.len() + spec.resolve(&names)?.len(),
            } as u128;
            let (limit, _) = mmfuse::limits::memory_limit();
            cache.is_some() || kernels * n * n * 8 > limit / 4
        }
        other => {
            return Err(mmfuse::Error::param(
                "solver",
                format!("must be \"auto\", \"dense\" or \"rows\", got {other:?}"),
            ))
        }
    };
    if rows && !classify {
        if solver == "rows" || cache.is_some() {
            return Err(mmfuse::Error::param(
                "solver",
                "kernel rows on demand fit classifiers only (the hinge loss); MKLRegressor \
                 needs solver=\"dense\" and cache=None",
            ));
        }
        return Ok(false);
    }
    Ok(rows)
}

/// The fit on rows on demand, cancelled through the stop flag.
fn fit_rows(
    data: &[(String, Matrix<f64>, String)],
    how: Normalization,
    spec: &BlockSpec,
    y: &[f64],
    opts: &MklOptions,
    cache: Option<u64>,
    stop: &run::Stop,
) -> mmfuse::Result<mmfuse::mkl::MklModel> {
    let kernels = data
        .iter()
        .map(|(_, _, s)| s.parse::<Kernel>())
        .collect::<mmfuse::Result<Vec<_>>>()?;
    let views: Vec<mmfuse::mkl::DataModality<'_>> = data
        .iter()
        .zip(&kernels)
        .map(|((name, x, _), kernel)| mmfuse::mkl::DataModality {
            name,
            data: x.as_mat_ref(),
            kernel: *kernel,
        })
        .collect();
    let rows = mmfuse::mkl::RowOptions {
        cache_bytes: cache,
        cancel: Some(stop.flag()),
        ..Default::default()
    };
    let (model, _) = mmfuse::mkl::fit_from_data(&views, how, spec, y, opts, &rows, &mut |_| {})?;
    Ok(model)
}

/// Borrowed views of named test data.
fn test_views<'a>(
    views: &'a [(String, PyReadonlyArray2<'_, f64>)],
) -> PyResult<Vec<(&'a str, faer::MatRef<'a, f64>)>> {
    views
        .iter()
        .map(|(n, x)| Ok((n.as_str(), view(x, n)?)))
        .collect()
}

#[pymethods]
impl MklModel {
    /// Decision values (one column per fit: one for two classes or regression, one per class
    /// for one-vs-rest) for test data given as `(name, X_m)` per modality, any order.
    #[pyo3(signature = (views, threads=None))]
    fn decision_function(
        &self,
        py: Python<'_>,
        views: Vec<(String, PyReadonlyArray2<'_, f64>)>,
        threads: Option<usize>,
    ) -> PyResult<Py<PyAny>> {
        let named = test_views(&views)?;
        let opts = crate::gram::options(threads);
        let scores = run::detached(py, || {
            let cols = self.inner.decision_function_from_data(&named, &opts)?;
            let n = cols.first().map_or(0, Vec::len);
            let mut out = Vec::with_capacity(n * cols.len());
            for i in 0..n {
                out.extend(cols.iter().map(|c| c[i]));
            }
            Matrix::from_vec(n, cols.len(), out)
        })?;
        matrix_to_py(py, scores)
    }

    /// The library's predictions (class codes or values) for test data, as `predict_from_data`.
    #[pyo3(signature = (views, threads=None))]
    fn predict(
        &self,
        py: Python<'_>,
        views: Vec<(String, PyReadonlyArray2<'_, f64>)>,
        threads: Option<usize>,
    ) -> PyResult<Py<PyAny>> {
        let named = test_views(&views)?;
        let opts = crate::gram::options(threads);
        let v = run::detached(py, || self.inner.predict_from_data(&named, &opts))?;
        Ok(vec_to_py(py, v))
    }

    /// The fitted values as a dict: `classes`, `blocks` (what the weights are for), `relevance`
    /// (list of (block, share), averaged over the fits), and per fit `beta`, `beta_shares`,
    /// `bias`, `gap`, `primal`, `dual`, `iterations`, `smo_iterations`, `n_support`,
    /// `converged`, `gap_history`.
    fn summary<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let m = &self.inner;
        let d = PyDict::new(py);
        d.set_item("classes", m.classes.clone())?;
        d.set_item("blocks", m.kernel_names())?;
        d.set_item("relevance", m.relevance())?;
        let fits = &m.fits;
        d.set_item(
            "beta",
            fits.iter().map(|f| f.beta.clone()).collect::<Vec<_>>(),
        )?;
        d.set_item(
            "beta_shares",
            fits.iter()
                .map(|f| f.beta_shares.clone())
                .collect::<Vec<_>>(),
        )?;
        d.set_item("bias", fits.iter().map(|f| f.bias).collect::<Vec<_>>())?;
        d.set_item("gap", fits.iter().map(|f| f.gap).collect::<Vec<_>>())?;
        d.set_item("primal", fits.iter().map(|f| f.primal).collect::<Vec<_>>())?;
        d.set_item("dual", fits.iter().map(|f| f.dual).collect::<Vec<_>>())?;
        d.set_item(
            "iterations",
            fits.iter().map(|f| f.iterations).collect::<Vec<_>>(),
        )?;
        d.set_item(
            "smo_iterations",
            fits.iter().map(|f| f.smo_iterations).collect::<Vec<_>>(),
        )?;
        d.set_item(
            "n_support",
            fits.iter().map(|f| f.n_support).collect::<Vec<_>>(),
        )?;
        d.set_item(
            "converged",
            fits.iter().map(|f| f.converged).collect::<Vec<_>>(),
        )?;
        d.set_item(
            "gap_history",
            fits.iter()
                .map(|f| f.gap_history.clone())
                .collect::<Vec<_>>(),
        )?;
        d.set_item(
            "modalities",
            m.data.iter().map(|x| x.name.clone()).collect::<Vec<_>>(),
        )?;
        d.set_item(
            "kernels",
            m.data
                .iter()
                .map(|x| x.kernel.to_string())
                .collect::<Vec<_>>(),
        )?;
        Ok(d)
    }

    /// The library's binary model (the bytes `MklModel::save` writes, `mmfuse mkl predict
    /// --model` reads).
    fn to_bytes<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyBytes>> {
        let b = self.inner.to_bytes().map_err(to_py)?;
        Ok(PyBytes::new(py, &b))
    }

    /// A model from the library's binary format.
    #[staticmethod]
    fn from_bytes(data: &[u8]) -> PyResult<Self> {
        let inner = mmfuse::mkl::MklModel::from_bytes(data).map_err(to_py)?;
        Ok(MklModel { inner })
    }

    /// Writes the model file (atomically), as `mmfuse mkl fit --out`.
    fn save(&self, path: std::path::PathBuf) -> PyResult<()> {
        self.inner.save(path).map_err(to_py)
    }

    /// Reads a model file written by `save` or `mmfuse mkl fit --out`.
    #[staticmethod]
    fn load(path: std::path::PathBuf) -> PyResult<Self> {
        let inner = mmfuse::mkl::MklModel::load(path).map_err(to_py)?;
        Ok(MklModel { inner })
    }

    /// Pickling goes through the binary format.
    fn __reduce__<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyTuple>> {
        let ctor = py.get_type::<MklModel>().getattr("from_bytes")?;
        let args = PyTuple::new(py, [self.to_bytes(py)?])?;
        PyTuple::new(py, [ctor, args.into_any()])
    }

    /// Bitwise equality of two models.
    fn __eq__(&self, other: &Bound<'_, PyAny>) -> bool {
        other
            .cast::<MklModel>()
            .is_ok_and(|o| o.get().inner == self.inner)
    }
}
