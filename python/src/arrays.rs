//! NumPy arrays in and out: borrowed faer views of contiguous inputs, results moved (not
//! copied) into NumPy.

use mmfuse::Matrix;
use numpy::ndarray::Array2;
use numpy::{Element, IntoPyArray, PyArray1, PyReadonlyArray2, PyUntypedArrayMethods};
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;

/// A borrowed view of a C- or F-contiguous 2-D array: row-major data as it is, column-major
/// data as a faer view with column stride n (the transpose's layout), no copy either way.
pub fn view<'a, T: Element>(
    a: &'a PyReadonlyArray2<'_, T>,
    what: &str,
) -> PyResult<faer::MatRef<'a, T>> {
    let shape = a.shape();
    let (n, d) = (shape[0], shape[1]);
    let s = a.as_slice().map_err(|_| {
        PyTypeError::new_err(format!(
            "{what} must be C- or F-contiguous (and aligned); pass np.ascontiguousarray({what})"
        ))
    })?;
    if s.len() != n * d {
        return Err(PyValueError::new_err(format!(
            "{what}: unexpected buffer size"
        )));
    }
    Ok(if a.is_c_contiguous() {
        faer::MatRef::from_row_major_slice(s, n, d)
    } else {
        faer::MatRef::from_column_major_slice(s, n, d)
    })
}

/// Moves a result matrix into a NumPy array (the buffer is handed over, not copied).
pub fn matrix_to_py<T: Element + Copy>(py: Python<'_>, m: Matrix<T>) -> PyResult<Py<PyAny>> {
    let (n, d) = m.shape();
    let a = Array2::from_shape_vec((n, d), m.into_vec())
        .map_err(|e| PyValueError::new_err(e.to_string()))?;
    Ok(a.into_pyarray(py).into_any().unbind())
}

/// Moves a vector into a 1-D NumPy array.
pub fn vec_to_py<T: Element>(py: Python<'_>, v: Vec<T>) -> Py<PyAny> {
    PyArray1::from_vec(py, v).into_any().unbind()
}
