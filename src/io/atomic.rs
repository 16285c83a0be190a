//! Atomic file replacement: write to a temporary file next to the target, fsync, rename.
//!
//! Readers of the target see either the old content or the complete new content, never a
//! partial file; a failed or panicking write leaves the target untouched and no temporary file
//! behind. (A symlink at the target is replaced by a regular file, not written through.)

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use crate::error::{Error, Result};

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// Temporary files being written right now, so that an interrupted command (the CLI's Ctrl-C
/// handler) can remove them: see [`remove_temporary_files`].
static ACTIVE: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

fn active() -> std::sync::MutexGuard<'static, Vec<PathBuf>> {
    // A panic while holding the lock leaves a plain list behind: still usable.
    ACTIVE.lock().unwrap_or_else(|e| e.into_inner())
}

/// Removes every temporary file that a [`write_atomic`] call in this process is writing now.
/// For an interrupt handler: the destinations are untouched (they are only ever replaced by a
/// rename), so after this nothing partial is left. (A process killed with SIGKILL cannot run
/// it; its hidden `.{name}.tmp-*` files stay, and the destinations are still never partial.)
pub fn remove_temporary_files() {
    for path in active().drain(..) {
        let _ = fs::remove_file(path);
    }
}

/// Removes the temporary file when dropped, unless disarmed after a successful rename.
struct TempGuard {
    path: PathBuf,
    armed: bool,
}

impl Drop for TempGuard {
    fn drop(&mut self) {
        active().retain(|p| p != &self.path);
        if self.armed {
            let _ = fs::remove_file(&self.path);
        }
    }
}

/// Replaces the file at `path` with what `write` writes, atomically.
///
/// `write` receives a buffered writer on a temporary file `.{name}.tmp-{pid}-{n}` in the target's
/// directory (it is also `Seek`, for formats such as zip). When it returns `Ok`, the data is
/// flushed and fsynced and the temporary file is renamed over `path` (keeping the permissions of
/// a file already there). When it returns an error or panics, the temporary file is removed and
/// `path` is left as it was. Errors, including those `write` returns, are reported as
/// [`Error::Io`] on `path`.
///
/// ```
/// use std::io::Write;
/// let path = std::env::temp_dir().join(format!("mmfuse-doc-atomic-{}.json", std::process::id()));
/// mmfuse::io::write_atomic(&path, |w| w.write_all(b"{\"ok\": true}\n"))?;
/// assert_eq!(std::fs::read_to_string(&path).unwrap(), "{\"ok\": true}\n");
/// # std::fs::remove_file(&path).unwrap();
/// # Ok::<(), mmfuse::Error>(())
/// ```
pub fn write_atomic<F>(path: impl AsRef<Path>, write: F) -> Result<()>
where
    F: FnOnce(&mut BufWriter<File>) -> io::Result<()>,
{
    let path = path.as_ref();
    let err = |source| Error::Io {
        path: path.to_path_buf(),
        source,
    };
    let name = path.file_name().ok_or_else(|| {
        err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "the path does not name a file",
        ))
    })?;
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(name);
    tmp_name.push(format!(".tmp-{}-{n}", std::process::id()));
    let tmp = dir.join(tmp_name);

    // Registered before it exists, so that an interrupt can never miss it.
    active().push(tmp.clone());
    let mut guard = TempGuard {
        path: tmp,
        armed: true,
    };
    let file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&guard.path)
        .map_err(err)?;
    if let Ok(meta) = fs::metadata(path) {
        if meta.is_file() {
            // Best effort: a replaced file keeps its mode.
            let _ = file.set_permissions(meta.permissions());
        }
    }
    let mut w = BufWriter::with_capacity(1 << 16, file);
    write(&mut w).map_err(err)?;
    let file = w.into_inner().map_err(|e| err(e.into_error()))?;
    file.sync_all().map_err(err)?;
    drop(file);
    fs::rename(&guard.path, path).map_err(err)?;
    guard.armed = false;
    // Make the rename itself durable; not every platform or filesystem allows syncing a directory.
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// Replaces the file at `path` with `bytes`, atomically (see [`write_atomic`]).
pub fn write_atomic_bytes(path: impl AsRef<Path>, bytes: &[u8]) -> Result<()> {
    write_atomic(path, |w| w.write_all(bytes))
}
