//! `gram`, `self_similarities`, `resolve_kernel`: Gram matrices of NumPy arrays.

use crate::arrays::{matrix_to_py, vec_to_py, view};
use crate::errors::to_py;
use crate::run;
use mmfuse::gram::{
    cross_gram, gram as gram_xx, self_similarities as self_sim, GramOptions, Kernel, Normalization,
    TrainStats,
};
use mmfuse::Real;
use numpy::{Element, PyReadonlyArray2};
use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;

/// Parses a kernel spec (`rbf`, `rbf:gamma=0.1`, `poly:degree=2,coef0=0`, ...).
pub fn parse_kernel(spec: &str) -> PyResult<Kernel> {
    spec.parse::<Kernel>().map_err(to_py)
}

/// Parses a normalisation name (`None` is no normalisation).
pub fn parse_normalization(s: Option<&str>) -> PyResult<Normalization> {
    match s {
        None => Ok(Normalization::None),
        Some(s) => s.parse().map_err(to_py),
    }
}

/// Gram options for a thread count (`None`: all cores).
pub fn options(threads: Option<usize>) -> GramOptions {
    GramOptions {
        threads,
        ..GramOptions::default()
    }
}

fn dtype_error(what: &str, obj: &Bound<'_, PyAny>) -> PyErr {
    let dtype = obj
        .getattr("dtype")
        .map(|d| d.to_string())
        .unwrap_or_else(|_| obj.get_type().to_string());
    PyTypeError::new_err(format!(
        "{what} must be a 2-D float32 or float64 NumPy array, got {dtype} (object, complex and \
         other dtypes are not supported)"
    ))
}

fn compute<T: Real + Element>(
    py: Python<'_>,
    x: &Bound<'_, PyAny>,
    y: Option<&Bound<'_, PyAny>>,
    kernel: Kernel,
    how: Normalization,
    opts: GramOptions,
) -> PyResult<Py<PyAny>> {
    let xa: PyReadonlyArray2<'_, T> = x.extract().map_err(|_| dtype_error("X", x))?;
    let ya: Option<PyReadonlyArray2<'_, T>> =
        match y {
            None => None,
            Some(y) => Some(y.extract().map_err(|_| {
                PyTypeError::new_err("Y must be a 2-D array of the same dtype as X")
            })?),
        };
    let xv = view(&xa, "X")?;
    let yv = match &ya {
        None => None,
        Some(a) => Some(view(a, "Y")?),
    };
    let k = run::detached(py, move || match yv {
        None => {
            let mut k = gram_xx(xv, &kernel, &opts)?;
            if how != Normalization::None {
                TrainStats::from_gram(&k, how)?.apply_train(&mut k)?;
            }
            Ok(k)
        }
        Some(yv) => {
            let mut k = cross_gram(xv, yv, &kernel, &opts)?;
            if how != Normalization::None {
                let stats = TrainStats::from_data(yv, &kernel, how, &opts)?;
                let test_self = self_sim(xv, &kernel)?;
                stats.apply_cross(&mut k, Some(&test_self))?;
            }
            Ok(k)
        }
    })?;
    matrix_to_py(py, k)
}

/// K(X, X), or K(X, Y) with `y`, as a NumPy array of the input's dtype.
///
/// `x` (and `y`) must be 2-D float32 or float64 arrays, C- or F-contiguous (borrowed, not
/// copied); `kernel` is a spec such as `rbf:gamma=0.1`; `normalize` one of `none`, `trace`,
/// `unit-diag`, `center` (with `y`: with the statistics of K(Y, Y), as `mmfuse gram
/// --against`). The GIL is released while the matrix is computed.
#[pyfunction]
#[pyo3(signature = (x, y=None, kernel="rbf", normalize=None, threads=None))]
pub fn gram(
    py: Python<'_>,
    x: &Bound<'_, PyAny>,
    y: Option<&Bound<'_, PyAny>>,
    kernel: &str,
    normalize: Option<&str>,
    threads: Option<usize>,
) -> PyResult<Py<PyAny>> {
    let kernel = parse_kernel(kernel)?;
    let how = parse_normalization(normalize)?;
    let opts = options(threads);
    if x.extract::<PyReadonlyArray2<'_, f32>>().is_ok() {
        compute::<f32>(py, x, y, kernel, how, opts)
    } else {
        compute::<f64>(py, x, y, kernel, how, opts)
    }
}

/// k(x_i, x_i) for every row of a float64 array, computed in f64 (for unit-diagonal
/// normalisation of tiles).
#[pyfunction]
#[pyo3(signature = (x, kernel="rbf"))]
pub fn self_similarities(
    py: Python<'_>,
    x: PyReadonlyArray2<'_, f64>,
    kernel: &str,
) -> PyResult<Py<PyAny>> {
    let kernel = parse_kernel(kernel)?;
    let xv = view(&x, "X")?;
    let v = run::detached(py, move || self_sim(xv, &kernel))?;
    Ok(vec_to_py(py, v))
}

/// The kernel spec with its defaults filled in for `d` features (gamma = 1/d), e.g.
/// `rbf:gamma=0.01` for `rbf` and d = 100.
#[pyfunction]
pub fn resolve_kernel(spec: &str, d: usize) -> PyResult<String> {
    Ok(parse_kernel(spec)?.resolve(d).map_err(to_py)?.to_string())
}
