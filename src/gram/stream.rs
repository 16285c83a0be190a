//! K(X, X) handed out row block by row block as it completes, so that a consumer (the CLI's
//! file writer) overlaps its work with the assembly (docs/design.md, "Symmetric K").

use super::assemble::{
    assemble_symmetric_raw, centre_for, check_gram_out, GramOptions, Operand, RowWatch,
};
use super::input::rows_of;
use super::spec::Kernel;
use crate::error::{Error, Result};
use crate::scalar::Real;
use faer::MatRef;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;

/// [`gram_into`](super::gram_into), handing the rows of K to `on_rows` in order while the rest
/// is still being computed: `on_rows(first_row, rows)` receives consecutive whole rows
/// (`rows.len()` a multiple of n), from row 0 to row n - 1, each exactly once, and each slice
/// is final (the same bits `gram_into` writes). It runs on the calling thread while the
/// assembly's workers go on, so a consumer that writes to a file or a socket overlaps that with
/// the computation.
///
/// Rows complete roughly in order because blocks are computed row block by row block; a row
/// block needs its own blocks and the mirrors of the blocks above it, so the first rows arrive
/// after about 2/n_blocks of the work, and the last ones at the end.
///
/// If `on_rows` returns an error, the assembly stops claiming new blocks and that error is
/// returned; `out` is then incomplete. Errors found before the assembly starts (bad input,
/// kernel, options, `out` length) leave `out` untouched and never call `on_rows`.
///
/// ```
/// use mmfuse::gram::{gram, gram_into_streaming, GramOptions, Kernel};
/// use mmfuse::Matrix;
///
/// let data: Vec<f32> = (0..300 * 4).map(|v| ((v * 7) % 11) as f32 / 11.0).collect();
/// let x = Matrix::from_vec(300, 4, data)?;
/// let opts = GramOptions { tile: 64, threads: Some(2) };
/// let mut out = vec![0.0f32; 300 * 300];
/// let mut seen = Vec::new();
/// gram_into_streaming(x.as_mat_ref(), &Kernel::rbf(0.5), &opts, &mut out, |first, rows| {
///     assert_eq!(first * 300, seen.len());
///     seen.extend_from_slice(rows);
///     Ok(())
/// })?;
/// let k = gram(x.as_mat_ref(), &Kernel::rbf(0.5), &opts)?;
/// assert_eq!(&seen[..], k.as_slice());
/// assert_eq!(&out[..], k.as_slice());
/// # Ok::<(), mmfuse::Error>(())
/// ```
pub fn gram_into_streaming<T: Real>(
    x: MatRef<'_, T>,
    kernel: &Kernel,
    opts: &GramOptions,
    out: &mut [T],
    mut on_rows: impl FnMut(usize, &[T]) -> Result<()>,
) -> Result<()> {
    let n = x.nrows();
    check_gram_out(n, out.len())?;
    opts.validate()?;
    // The O(n d) passes over the input on the requested threads too.
    let (rows, kernel, xc) = opts.install(|| -> Result<_> {
        let rows = rows_of(x, "X")?;
        let kernel = kernel.resolve(rows.d)?;
        let xc = centre_for(&kernel, &rows, &rows, "X")?;
        Ok((rows, kernel, xc))
    })??;
    let x = Operand::new(&rows, xc.as_deref());
    let tile = opts.tile;
    let nt = n.div_ceil(tile);
    let base = OutPtr(out.as_mut_ptr());
    let stop = AtomicBool::new(false);
    let (tx, rx) = mpsc::channel::<usize>();
    std::thread::scope(|s| {
        let stop = &stop;
        let kernel = &kernel;
        let assembly = s.spawn(move || {
            let tx = tx; // moved in: the channel closes when the assembly returns
            let done = |b: usize| {
                // The receiver lives until the channel closes; a failed send cannot happen.
                let _ = tx.send(b);
            };
            let watch = RowWatch { done: &done, stop };
            // SAFETY: `out` (n * n elements) stays exclusively borrowed by this function until
            // the scope ends; the only other access is the reads below, of row blocks the
            // assembly has reported final.
            opts.install(|| unsafe {
                assemble_symmetric_raw(x, kernel, tile, base.get(), Some(&watch))
            })
        });
        let mut ready = vec![false; nt];
        let mut next = 0;
        let mut failure: Option<Error> = None;
        for b in rx {
            ready[b] = true;
            while next < nt && ready[next] {
                let r0 = next * tile;
                let r1 = (r0 + tile).min(n);
                if failure.is_none() {
                    // SAFETY: rows r0..r1 are inside `out` and final: the assembly reported
                    // their block done (the channel orders this read after its last write),
                    // and no task writes to them again.
                    let slice = unsafe {
                        std::slice::from_raw_parts(base.get().add(r0 * n), (r1 - r0) * n)
                    };
                    if let Err(e) = on_rows(r0, slice) {
                        stop.store(true, Ordering::Relaxed);
                        failure = Some(e);
                    }
                }
                next += 1;
            }
        }
        let assembled = match assembly.join() {
            Ok(r) => r,
            Err(panic) => std::panic::resume_unwind(panic),
        };
        match failure {
            Some(e) => Err(e),
            None => assembled,
        }
    })
}

/// The output's base pointer, sent to the assembly thread.
#[derive(Clone, Copy)]
struct OutPtr<T>(*mut T);
// SAFETY: the assembly writes through it only to blocks it owns and the caller reads only rows
// reported final (see `gram_into_streaming`); T itself is Send.
unsafe impl<T: Send> Send for OutPtr<T> {}
unsafe impl<T: Send> Sync for OutPtr<T> {}

impl<T> OutPtr<T> {
    /// The pointer (a method, so closures capture the Send wrapper, not the raw field).
    fn get(self) -> *mut T {
        self.0
    }
}
