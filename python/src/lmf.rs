//! Low-rank multimodal fusion from Python: block LMF (the library's `BlockLmf<f32>`) and plain
//! LMF (`LmfModel<f32>`), each one model object trained in place, with the CLI's safetensors
//! files.

use crate::arrays::{matrix_to_py, view};
use crate::errors::to_py;
use crate::run;
use mmfuse::blocks::BlockSpec;
use mmfuse::lmf::blockwise::{BlockLmf, BlockTrainOptions, Optimizer};
use mmfuse::lmf::{LmfModel, LmfOptions, Loss, TrainOptions};
use mmfuse::Matrix;
use numpy::PyReadonlyArray2;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyTuple};

/// A block LMF model (float32), picklable through its safetensors bytes.
#[pyclass(module = "mmfuse._native", name = "Lmf")]
pub struct Lmf {
    inner: BlockLmf<f32>,
}

/// A new block LMF model: `modalities` as `(name, d)`, `blocks` a spec (`none`: unimodal
/// blocks only, `pairs`, `all`, `a*b,...`), rank, outputs, relevance exponent p and seed (the
/// library's initialisation).
#[pyfunction]
pub fn lmf_new(
    modalities: Vec<(String, usize)>,
    blocks: &str,
    rank: usize,
    out_dim: usize,
    p: &str,
    seed: u64,
) -> PyResult<Lmf> {
    let spec: BlockSpec = blocks.parse().map_err(to_py)?;
    let p = mmfuse::mkl::parse_p(p).map_err(to_py)?;
    let named: Vec<(&str, usize)> = modalities.iter().map(|(n, d)| (n.as_str(), *d)).collect();
    let inner = BlockLmf::new(&named, &spec, rank, out_dim, p, seed).map_err(to_py)?;
    Ok(Lmf { inner })
}

fn named_views<'a>(
    views: &'a [(String, PyReadonlyArray2<'_, f32>)],
) -> PyResult<Vec<(&'a str, faer::MatRef<'a, f32>)>> {
    views
        .iter()
        .map(|(n, x)| Ok((n.as_str(), view(x, n)?)))
        .collect()
}

fn exec(threads: Option<usize>) -> LmfOptions {
    LmfOptions {
        threads,
        ..LmfOptions::default()
    }
}

#[pymethods]
impl Lmf {
    /// Trains in place (`BlockLmf::train_named`) on float32 inputs `(name, X_m)` and targets
    /// (`n x h` values, or `n x 1` class labels for `loss="xent"`); returns the history as a
    /// dict (`train_loss`, `val_loss`, `penalty`, `relevance` per epoch, `blocks`,
    /// `best_epoch`, `stopped_early`, `steps`). Ctrl-C stops it after the current epoch with
    /// `KeyboardInterrupt`.
    #[pyo3(signature = (views, targets, epochs=50, batch_size=64, lr=1e-2, loss="mse",
        reg=1e-3, optimizer="adam", momentum=0.9, weight_decay=0.0, seed=0, shuffle=true,
        validation_fraction=0.0, patience=None, threads=None))]
    #[allow(clippy::too_many_arguments)]
    fn train<'py>(
        &mut self,
        py: Python<'py>,
        views: Vec<(String, PyReadonlyArray2<'_, f32>)>,
        targets: PyReadonlyArray2<'_, f32>,
        epochs: usize,
        batch_size: usize,
        lr: f64,
        loss: &str,
        reg: f64,
        optimizer: &str,
        momentum: f64,
        weight_decay: f64,
        seed: u64,
        shuffle: bool,
        validation_fraction: f64,
        patience: Option<usize>,
        threads: Option<usize>,
    ) -> PyResult<Bound<'py, PyDict>> {
        // The worker owns copies of the inputs and of the model (it may outlive an interrupted
        // call); the trained model replaces this one when training returns.
        let owned: Vec<(String, Matrix<f32>)> = views
            .iter()
            .map(|(n, x)| Ok((n.clone(), Matrix::from_mat_ref(view(x, n)?))))
            .collect::<PyResult<_>>()?;
        let t = Matrix::from_mat_ref(view(&targets, "targets")?);
        let loss: Loss = loss.parse().map_err(to_py)?;
        let optimizer = match optimizer.parse::<Optimizer>().map_err(to_py)? {
            Optimizer::Sgd { .. } => Optimizer::Sgd { momentum },
            adam => adam,
        };
        let opts = BlockTrainOptions {
            epochs,
            batch_size,
            lr,
            loss,
            reg,
            optimizer,
            weight_decay,
            seed,
            shuffle,
            validation_fraction,
            patience,
            exec: exec(threads),
        };
        let mut model = self.inner.clone();
        let (model, h) = run::interruptible(py, move |stop| {
            let named: Vec<(&str, faer::MatRef<'_, f32>)> = owned
                .iter()
                .map(|(n, x)| (n.as_str(), x.as_mat_ref()))
                .collect();
            let h = model.train_named(&named, t.as_mat_ref(), &opts, |_| stop.check())?;
            Ok((model, h))
        })?;
        self.inner = model;
        let d = PyDict::new(py);
        d.set_item("blocks", h.blocks)?;
        d.set_item("train_loss", h.train_loss)?;
        d.set_item("val_loss", h.val_loss)?;
        d.set_item("penalty", h.penalty)?;
        d.set_item("relevance", h.relevance)?;
        d.set_item("best_epoch", h.best_epoch)?;
        d.set_item("stopped_early", h.stopped_early)?;
        d.set_item("steps", h.steps)?;
        Ok(d)
    }

    /// Outputs (`n x h` float32) for inputs given by name, any order.
    #[pyo3(signature = (views, threads=None))]
    fn forward(
        &self,
        py: Python<'_>,
        views: Vec<(String, PyReadonlyArray2<'_, f32>)>,
        threads: Option<usize>,
    ) -> PyResult<Py<PyAny>> {
        let named = named_views(&views)?;
        let model = &self.inner;
        let y = run::detached(py, || model.forward_named(&named, &exec(threads)))?;
        matrix_to_py(py, y)
    }

    /// The lp relevance: a dict with `blocks`, `shares`, `beta`, `norms`.
    fn relevance<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let r = self.inner.relevance().map_err(to_py)?;
        let d = PyDict::new(py);
        d.set_item("blocks", r.blocks)?;
        d.set_item("shares", r.shares)?;
        d.set_item("beta", r.beta)?;
        d.set_item("norms", r.norms)?;
        Ok(d)
    }

    /// Modality names, in input order.
    #[getter]
    fn modalities(&self) -> Vec<String> {
        self.inner.modalities().to_vec()
    }

    /// Feature counts, in input order.
    #[getter]
    fn dims(&self) -> Vec<usize> {
        self.inner.dims().to_vec()
    }

    /// Block names.
    #[getter]
    fn blocks(&self) -> Vec<String> {
        self.inner
            .block_names()
            .iter()
            .map(|s| s.to_string())
            .collect()
    }

    /// Rank of the interaction blocks.
    #[getter]
    fn rank(&self) -> usize {
        self.inner.rank()
    }

    /// Number of outputs h.
    #[getter]
    fn out_dim(&self) -> usize {
        self.inner.out_dim()
    }

    /// The relevance exponent p.
    #[getter]
    fn p(&self) -> f64 {
        self.inner.p()
    }

    /// The safetensors bytes of the weights file (`mmfuse lmf train --blocks ... --save`).
    fn to_bytes<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyBytes>> {
        let b = self.inner.to_bytes().map_err(to_py)?;
        Ok(PyBytes::new(py, &b))
    }

    /// A model from safetensors bytes of a block model file.
    #[staticmethod]
    fn from_bytes(data: &[u8]) -> PyResult<Self> {
        let inner = BlockLmf::from_bytes(data).map_err(to_py)?;
        Ok(Lmf { inner })
    }

    /// Writes the weights file (atomically), readable by `mmfuse lmf forward --weights`.
    fn save(&self, path: std::path::PathBuf) -> PyResult<()> {
        self.inner.save(path).map_err(to_py)
    }

    /// Reads a block model file written by `save` or `mmfuse lmf train --blocks ...`.
    #[staticmethod]
    fn load(path: std::path::PathBuf) -> PyResult<Self> {
        let inner = BlockLmf::load(path).map_err(to_py)?;
        Ok(Lmf { inner })
    }

    /// Pickling goes through the safetensors bytes.
    fn __reduce__<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyTuple>> {
        let ctor = py.get_type::<Lmf>().getattr("from_bytes")?;
        let args = PyTuple::new(py, [self.to_bytes(py)?])?;
        PyTuple::new(py, [ctor, args.into_any()])
    }
}

/// A plain LMF model (float32; the PyTorch reference layout in its files).
#[pyclass(module = "mmfuse._native", name = "PlainLmf")]
pub struct PlainLmf {
    inner: LmfModel<f32>,
}

/// A new plain LMF model (`LmfModel::new`: factors `(r, d_m + 1, h)`, PyTorch's Xavier-normal
/// initialisation from `seed`).
#[pyfunction]
pub fn plain_lmf_new(
    modalities: Vec<(String, usize)>,
    rank: usize,
    out_dim: usize,
    seed: u64,
) -> PyResult<PlainLmf> {
    let named: Vec<(&str, usize)> = modalities.iter().map(|(n, d)| (n.as_str(), *d)).collect();
    let inner = LmfModel::new(&named, rank, out_dim, seed).map_err(to_py)?;
    Ok(PlainLmf { inner })
}

/// Whether safetensors bytes are a block LMF model file (else: a plain LMF file).
#[pyfunction]
pub fn is_block_model(data: &[u8]) -> bool {
    mmfuse::lmf::blockwise::is_block_model_file(data)
}

#[pymethods]
impl PlainLmf {
    /// Trains in place (`LmfModel::train_named`, Adam) on float32 inputs and `n x h` targets;
    /// returns the history (`train_loss`, `val_loss`, `best_epoch`, `stopped_early`, `steps`).
    /// Ctrl-C: `KeyboardInterrupt`, as [`Lmf::train`].
    #[pyo3(signature = (views, targets, epochs=50, batch_size=64, lr=1e-2, loss="mse",
        weight_decay=0.0, seed=0, shuffle=true, validation_fraction=0.0, patience=None,
        threads=None))]
    #[allow(clippy::too_many_arguments)]
    fn train<'py>(
        &mut self,
        py: Python<'py>,
        views: Vec<(String, PyReadonlyArray2<'_, f32>)>,
        targets: PyReadonlyArray2<'_, f32>,
        epochs: usize,
        batch_size: usize,
        lr: f64,
        loss: &str,
        weight_decay: f64,
        seed: u64,
        shuffle: bool,
        validation_fraction: f64,
        patience: Option<usize>,
        threads: Option<usize>,
    ) -> PyResult<Bound<'py, PyDict>> {
        let owned: Vec<(String, Matrix<f32>)> = views
            .iter()
            .map(|(n, x)| Ok((n.clone(), Matrix::from_mat_ref(view(x, n)?))))
            .collect::<PyResult<_>>()?;
        let t = Matrix::from_mat_ref(view(&targets, "targets")?);
        let opts = TrainOptions {
            epochs,
            batch_size,
            lr,
            loss: loss.parse().map_err(to_py)?,
            seed,
            shuffle,
            weight_decay,
            validation_fraction,
            patience,
            exec: exec(threads),
            ..TrainOptions::default()
        };
        let mut model = self.inner.clone();
        let (model, h) = run::interruptible(py, move |stop| {
            let named: Vec<(&str, faer::MatRef<'_, f32>)> = owned
                .iter()
                .map(|(n, x)| (n.as_str(), x.as_mat_ref()))
                .collect();
            let h = model.train_named(&named, t.as_mat_ref(), &opts, |_| stop.check())?;
            Ok((model, h))
        })?;
        self.inner = model;
        let d = PyDict::new(py);
        d.set_item("train_loss", h.train_loss)?;
        d.set_item("val_loss", h.val_loss)?;
        d.set_item("best_epoch", h.best_epoch)?;
        d.set_item("stopped_early", h.stopped_early)?;
        d.set_item("steps", h.steps)?;
        Ok(d)
    }

    /// Outputs (`n x h` float32) for inputs given by name, any order (the path of `mmfuse lmf
    /// forward`).
    #[pyo3(signature = (views, threads=None))]
    fn forward(
        &self,
        py: Python<'_>,
        views: Vec<(String, PyReadonlyArray2<'_, f32>)>,
        threads: Option<usize>,
    ) -> PyResult<Py<PyAny>> {
        let named = named_views(&views)?;
        let model = &self.inner;
        let y = run::detached(py, || model.forward_named(&named, &exec(threads)))?;
        matrix_to_py(py, y)
    }

    /// Modality names, in input order.
    #[getter]
    fn modalities(&self) -> Vec<String> {
        self.inner.modalities().to_vec()
    }

    /// Feature counts, in input order.
    #[getter]
    fn dims(&self) -> Vec<usize> {
        self.inner.dims().to_vec()
    }

    /// Rank.
    #[getter]
    fn rank(&self) -> usize {
        self.inner.rank()
    }

    /// Number of outputs h.
    #[getter]
    fn out_dim(&self) -> usize {
        self.inner.out_dim()
    }

    /// The safetensors bytes in the PyTorch reference layout (`mmfuse lmf train --save`).
    fn to_bytes<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyBytes>> {
        let b = self.inner.to_safetensors_bytes().map_err(to_py)?;
        Ok(PyBytes::new(py, &b))
    }

    /// A model from safetensors bytes; `order` gives the modality order of a file without one
    /// (a PyTorch `state_dict` saved by `safetensors.torch.save_file`).
    #[staticmethod]
    #[pyo3(signature = (data, order=None))]
    fn from_bytes(data: &[u8], order: Option<Vec<String>>) -> PyResult<Self> {
        let order_refs: Option<Vec<&str>> = order
            .as_ref()
            .map(|o| o.iter().map(String::as_str).collect());
        let inner = LmfModel::from_safetensors_bytes(data, order_refs.as_deref()).map_err(to_py)?;
        Ok(PlainLmf { inner })
    }

    /// Writes the weights file (atomically), as `mmfuse lmf train --save`.
    fn save(&self, path: std::path::PathBuf) -> PyResult<()> {
        self.inner.save_safetensors(path).map_err(to_py)
    }

    /// Pickling goes through the safetensors bytes.
    fn __reduce__<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyTuple>> {
        let ctor = py.get_type::<PlainLmf>().getattr("from_bytes")?;
        let args = PyTuple::new(py, [self.to_bytes(py)?])?;
        PyTuple::new(py, [ctor, args.into_any()])
    }
}
