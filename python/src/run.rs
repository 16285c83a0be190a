//! Running library code from Python: the GIL released, panics caught, Ctrl-C honoured.

use crate::errors::to_py;
use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;
use std::any::Any;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{channel, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How often the waiting thread looks for a pending signal (Ctrl-C) during a long call.
const SIGNAL_POLL: Duration = Duration::from_millis(50);

/// The payload of the unwinding that stops an interrupted computation (never a real panic:
/// it is raised with `resume_unwind`, so no panic message is printed).
struct Interrupted;

/// A stop request, checked by the computation at its progress points (after every MKL outer
/// iteration, after every LMF epoch).
pub struct Stop(Arc<AtomicBool>);

impl Stop {
    /// Unwinds out of the computation when a stop was requested; [`interruptible`] catches it.
    pub fn check(&self) {
        if self.0.load(Ordering::Relaxed) {
            std::panic::resume_unwind(Box::new(Interrupted));
        }
    }

    /// The flag itself, for library calls that poll a cancel flag inside their inner loops
    /// (`RowOptions::cancel`): they return `Error::Cancelled`, whose result is dropped.
    pub fn flag(&self) -> Arc<AtomicBool> {
        Arc::clone(&self.0)
    }
}

/// The message of a panic payload.
fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "(no message)".to_string()
    }
}

/// The Python error for a caught panic.
fn panic_error(payload: &(dyn Any + Send)) -> PyErr {
    PyRuntimeError::new_err(format!(
        "internal error in mmfuse's native code (a Rust panic, caught): {}; please report it",
        panic_message(payload)
    ))
}

/// Runs `f` with the GIL released; a library error becomes its Python exception and a panic a
/// `RuntimeError`. For calls that are short (a Gram matrix) or cannot stop early.
pub fn detached<R: Send>(
    py: Python<'_>,
    f: impl FnOnce() -> mmfuse::Result<R> + Send,
) -> PyResult<R> {
    match py.detach(|| catch_unwind(AssertUnwindSafe(f))) {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(to_py(e)),
        Err(payload) => Err(panic_error(payload.as_ref())),
    }
}

/// Runs `f` on a worker thread while the calling thread, with the GIL released, waits for it
/// and every 50 ms briefly takes the GIL to run Python's signal handlers
/// (`Python::check_signals`: only the main thread gets signals, so this is where Ctrl-C is
/// seen). When a handler raises (Ctrl-C: `KeyboardInterrupt`), that exception is returned at
/// once and the worker is asked to stop: it unwinds at its next [`Stop::check`] (the library's
/// progress points: after an MKL outer iteration, after an LMF epoch) and its result is
/// dropped. Until then it keeps its thread and its owned data; it never touches Python.
/// Errors and panics as in [`detached`].
pub fn interruptible<R: Send + 'static>(
    py: Python<'_>,
    f: impl FnOnce(&Stop) -> mmfuse::Result<R> + Send + 'static,
) -> PyResult<R> {
    let stop = Arc::new(Stop(Arc::new(AtomicBool::new(false))));
    let (tx, rx) = channel();
    let worker_stop = Arc::clone(&stop);
    std::thread::Builder::new()
        .name("mmfuse-fit".into())
        .spawn(move || {
            let r = catch_unwind(AssertUnwindSafe(|| f(&worker_stop)));
            // The receiver is gone when the caller was interrupted: nothing to report then.
            let _ = tx.send(r);
        })
        .map_err(|e| PyRuntimeError::new_err(format!("cannot start a worker thread: {e}")))?;
    // A `Receiver` is `Send` but not `Sync`; the closure given to `detach` borrows it.
    let rx = Mutex::new(rx);
    loop {
        let got = py.detach(|| {
            let rx = rx.lock().unwrap_or_else(|e| e.into_inner());
            match rx.recv_timeout(SIGNAL_POLL) {
                Ok(r) => Some(Some(r)),
                Err(RecvTimeoutError::Timeout) => None,
                Err(RecvTimeoutError::Disconnected) => Some(None),
            }
        });
        match got {
            Some(Some(Ok(Ok(v)))) => return Ok(v),
            Some(Some(Ok(Err(e)))) => return Err(to_py(e)),
            Some(Some(Err(payload))) => return Err(panic_error(payload.as_ref())),
            Some(None) => {
                return Err(PyRuntimeError::new_err(
                    "internal error: the worker thread ended without a result",
                ))
            }
            None => {}
        }
        if let Err(e) = py.check_signals() {
            stop.0.store(true, Ordering::Relaxed);
            return Err(e);
        }
    }
}
