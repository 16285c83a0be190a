//! `mmfuse::Error` to Python exceptions, with the library's message unchanged.

use mmfuse::Error;
use pyo3::exceptions::{PyMemoryError, PyOSError, PyRuntimeError, PyValueError};
use pyo3::PyErr;

/// The Python exception for a library error: `ValueError` for bad input (shapes, empty or
/// non-finite data, parameters, non-symmetric or indefinite kernels, malformed files),
/// `MemoryError` for a result over the memory cap, `OSError` for a file that cannot be read or
/// written, `RuntimeError` for a fit that did not converge, diverged or was cancelled.
pub fn to_py(e: Error) -> PyErr {
    let msg = e.to_string();
    match e {
        Error::TooLarge { .. } => PyMemoryError::new_err(msg),
        Error::Io { .. } => PyOSError::new_err(msg),
        Error::NotConverged(_) | Error::Diverged(_) | Error::Cancelled(_) => {
            PyRuntimeError::new_err(msg)
        }
        _ => PyValueError::new_err(msg),
    }
}
