//! Running library code from Python: the GIL released, panics caught, Ctrl-C honoured.

use crate::errors::to_py;
use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;
use std::any::Any;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::sync::mpsc::{channel, RecvTimeoutError};
use std::time::Duration;

/// How often the waiting thread looks for a pending signal (Ctrl-C) during a long call.
const SIGNAL_POLL: Duration = Duration::from_millis(50);

/// The payload of the unwinding that stops an interrupted computation (never a real panic:
/// it is raised with `resume_unwind`, so no panic message is printed).
struct Interrupted;

/// A stop request, checked by the computation at its progress points (after every MKL outer
/// iteration, after every LMF epoch).
pub struct Stop(AtomicBool);

impl Stop {
    /// Unwinds out of the computation when a stop was requested; [`interruptible`] catches it.
    pub fn check(&self) {
        if self.0.load(Ordering::Relaxed) {
            std::panic::resume_unwind(Box::new(Interrupted));
        }
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
/// seen). When a handler raises (Ctrl-C: `KeyboardInterrupt`) the worker is asked to stop; it
/// does at its next [`Stop::check`], and that exception is returned. Errors and panics as in
/// [`detached`].
pub fn interruptible<R: Send>(
    py: Python<'_>,
    f: impl FnOnce(&Stop) -> mmfuse::Result<R> + Send,
) -> PyResult<R> {
    let stop = Stop(AtomicBool::new(false));
    let mut pending: Option<PyErr> = None;
    let outcome = std::thread::scope(|s| {
        let (tx, rx) = channel::<()>();
        // A `Receiver` is `Send` but not `Sync`; the closures given to `detach` borrow it.
        let rx = Mutex::new(rx);
        let recv = |timeout: Option<Duration>| {
            let rx = rx.lock().unwrap_or_else(|e| e.into_inner());
            match timeout {
                Some(t) => !matches!(rx.recv_timeout(t), Err(RecvTimeoutError::Timeout)),
                None => {
                    let _ = rx.recv();
                    true
                }
            }
        };
        let stop = &stop;
        let worker = s.spawn(move || {
            let r = catch_unwind(AssertUnwindSafe(|| f(stop)));
            // The receiver lives until the worker is joined below.
            let _ = tx.send(());
            r
        });
        loop {
            let finished = py.detach(|| recv(Some(SIGNAL_POLL)));
            if finished {
                break;
            }
            if let Err(e) = py.check_signals() {
                pending = Some(e);
                stop.0.store(true, Ordering::Relaxed);
                py.detach(|| recv(None));
                break;
            }
        }
        worker.join()
    });
    if let Some(e) = pending {
        return Err(e);
    }
    match outcome {
        Ok(Ok(Ok(v))) => Ok(v),
        Ok(Ok(Err(e))) => Err(to_py(e)),
        Ok(Err(payload)) | Err(payload) => Err(panic_error(payload.as_ref())),
    }
}
