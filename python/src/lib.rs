//! `mmfuse._native`: the thin PyO3 layer under the Python package `mmfuse`.
//!
//! Each function converts its arguments (NumPy arrays are borrowed, never copied, when they are
//! C- or F-contiguous float32 / float64), releases the GIL, calls the Rust library and turns its
//! result into NumPy arrays or plain Python values. The estimator logic (scikit-learn's rules,
//! views as column groups, label encoding) lives in the Python package.
//!
//! Errors: every `mmfuse::Error` becomes a Python exception carrying the library's message
//! ([`errors::to_py`]); a Rust panic is caught at the boundary and becomes a `RuntimeError`
//! ([`run::detached`], [`run::interruptible`]); long fits stop on Ctrl-C with
//! `KeyboardInterrupt` ([`run::interruptible`]).

mod arrays;
mod errors;
mod gram;
mod lmf;
mod mkl;
mod run;

use pyo3::prelude::*;

/// The native module `mmfuse._native`.
#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(gram::gram, m)?)?;
    m.add_function(wrap_pyfunction!(gram::self_similarities, m)?)?;
    m.add_function(wrap_pyfunction!(gram::resolve_kernel, m)?)?;
    m.add_function(wrap_pyfunction!(mkl::mkl_fit, m)?)?;
    m.add_function(wrap_pyfunction!(mkl::parse_p, m)?)?;
    m.add_function(wrap_pyfunction!(lmf::lmf_new, m)?)?;
    m.add_function(wrap_pyfunction!(lmf::plain_lmf_new, m)?)?;
    m.add_function(wrap_pyfunction!(lmf::is_block_model, m)?)?;
    m.add_function(wrap_pyfunction!(mfeat, m)?)?;
    m.add_function(wrap_pyfunction!(isa, m)?)?;
    m.add_function(wrap_pyfunction!(panic_for_tests, m)?)?;
    m.add_class::<mkl::MklModel>()?;
    m.add_class::<lmf::Lmf>()?;
    m.add_class::<lmf::PlainLmf>()?;
    Ok(())
}

/// Named NumPy arrays, in order.
type NamedArrays = Vec<(String, Py<PyAny>)>;

/// The bundled UCI Multiple Features data: `(views, labels)` with `views` a list of
/// `(name, array n x d float64)` in the library's order and `labels` float64 digits 0-9.
#[pyfunction]
fn mfeat(py: Python<'_>) -> PyResult<(NamedArrays, Py<PyAny>)> {
    let data = run::detached(py, mmfuse::datasets::mfeat)?;
    let views = data
        .views
        .into_iter()
        .map(|(name, m)| Ok((name, arrays::matrix_to_py(py, m)?)))
        .collect::<PyResult<Vec<_>>>()?;
    Ok((views, arrays::vec_to_py(py, data.labels)))
}

/// The instruction set the engine's own kernels use on this machine: `v4`, `v3` or `scalar`.
#[pyfunction]
fn isa() -> &'static str {
    mmfuse_kernels::isa_name(mmfuse_kernels::arch())
}

/// Test hook: panics inside the same guard every entry point uses, so that the tests can check
/// that a Rust panic becomes a Python `RuntimeError` and never crosses the boundary.
#[pyfunction]
fn panic_for_tests(py: Python<'_>) -> PyResult<()> {
    run::detached(py, || -> mmfuse::Result<()> {
        panic!("panic_for_tests: a deliberate panic inside the native module")
    })
}
