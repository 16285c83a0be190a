//! A `.npy` matrix written row block by row block as its producer hands the rows over, for a
//! producer that overlaps the writing with computing the rest (`mmfuse gram`).

use std::io::{self, Write};
use std::path::Path;

use crate::error::{Error, Result};
use crate::io::atomic::write_atomic;
use crate::io::npy::npy_header;
use crate::scalar::Real;

/// Bytes written between two requests to start writeback ([`start_writeback`]): the disk then
/// works through the file while the producer is still computing, and the final fsync of
/// [`write_atomic`] waits only for the tail.
const SYNC_EVERY_BYTES: usize = 4 << 20;

/// Writes an `nrows x ncols` matrix of `T` (the dtype of the file: `<f4` or `<f8`) to a `.npy`
/// file at `path`, atomically ([`write_atomic`]: a temporary file, fsync, rename), with the
/// rows given in order by `produce`: it receives a sink and calls it with consecutive chunks of
/// whole rows, row-major, until all `nrows * ncols` elements are given. The bytes are those
/// `np.save` writes for the same array.
///
/// An error from `produce` (or from the sink, which reports write errors on `path`) is
/// returned and the file is not created; so is a producer that gives too few or too many
/// elements ([`Error::Shape`]).
///
/// ```
/// use mmfuse::io::{read_npy, write_matrix_npy_rows};
/// let path = std::env::temp_dir().join(format!("mmfuse-doc-rows-{}.npy", std::process::id()));
/// write_matrix_npy_rows::<f32>(&path, 3, 2, |sink| {
///     sink(&[1.0, 2.0])?;
///     sink(&[3.0, 4.0, 5.0, 6.0])
/// })?;
/// let a = read_npy(&path)?.into_matrix::<f32>("a")?;
/// assert_eq!(a.shape(), (3, 2));
/// assert_eq!(a.as_slice(), &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
/// # std::fs::remove_file(&path).unwrap();
/// # Ok::<(), mmfuse::Error>(())
/// ```
pub fn write_matrix_npy_rows<T: Real>(
    path: impl AsRef<Path>,
    nrows: usize,
    ncols: usize,
    produce: impl FnOnce(&mut dyn FnMut(&[T]) -> Result<()>) -> Result<()>,
) -> Result<()> {
    let path = path.as_ref();
    let total = nrows
        .checked_mul(ncols)
        .ok_or_else(|| Error::Shape(format!("a {nrows} x {ncols} matrix overflows usize")))?;
    // `Real` is sealed to f32 and f64.
    let wide = std::mem::size_of::<T>() == 8;
    let header = npy_header(if wide { "<f8" } else { "<f4" }, &[nrows, ncols]);
    let mut failure: Option<Error> = None;
    let written = write_atomic(path, |w| {
        w.write_all(&header)?;
        let mut given = 0usize;
        let mut unsynced = 0usize;
        let mut bytes = Vec::new();
        let mut sink = |chunk: &[T]| -> Result<()> {
            let io_err = |source| Error::Io {
                path: path.to_path_buf(),
                source,
            };
            given += chunk.len();
            if given > total || chunk.len() % ncols.max(1) != 0 {
                return Err(Error::Shape(format!(
                    "the rows given for a {nrows} x {ncols} matrix do not fit it"
                )));
            }
            if cfg!(target_endian = "little") {
                // The elements' memory is the file's bytes: one write, no copy.
                w.write_all(le_bytes(chunk)).map_err(io_err)?;
            } else {
                for part in chunk.chunks(1 << 14) {
                    bytes.clear();
                    put_le(part, wide, &mut bytes);
                    w.write_all(&bytes).map_err(io_err)?;
                }
            }
            unsynced += std::mem::size_of_val(chunk);
            if unsynced >= SYNC_EVERY_BYTES {
                w.flush().map_err(io_err)?;
                start_writeback(w.get_ref()).map_err(io_err)?;
                unsynced = 0;
            }
            Ok(())
        };
        let produced = produce(&mut sink).and_then(|()| {
            if given == total {
                Ok(())
            } else {
                Err(Error::Shape(format!(
                    "{given} elements were given for a {nrows} x {ncols} matrix"
                )))
            }
        });
        produced.map_err(|e| {
            failure = Some(e);
            io::Error::other("the producer failed")
        })
    });
    match failure {
        Some(e) => Err(e),
        None => written,
    }
}

/// The bytes of `v` in memory (the file's bytes on a little-endian machine).
fn le_bytes<T: Real>(v: &[T]) -> &[u8] {
    // SAFETY: T is f32 or f64 (Real is sealed): plain data without padding, every byte
    // initialised; u8 has alignment 1, and the length is the slice's size in bytes.
    unsafe { std::slice::from_raw_parts(v.as_ptr().cast::<u8>(), std::mem::size_of_val(v)) }
}

/// Starts writing the file's dirty pages to disk without waiting for them (Linux:
/// `sync_file_range(SYNC_FILE_RANGE_WRITE)`; elsewhere a blocking `fdatasync`). The final
/// fsync of [`write_atomic`] still makes everything durable.
fn start_writeback(f: &std::fs::File) -> io::Result<()> {
    #[cfg(target_os = "linux")]
    {
        use std::os::fd::AsRawFd;
        // SAFETY: a valid open descriptor for the call; offset 0 and length 0 mean the whole
        // file; the call only schedules writeback and touches no memory of ours.
        let r = unsafe { libc::sync_file_range(f.as_raw_fd(), 0, 0, libc::SYNC_FILE_RANGE_WRITE) };
        if r == 0 {
            Ok(())
        } else {
            Err(io::Error::last_os_error())
        }
    }
    #[cfg(not(target_os = "linux"))]
    {
        f.sync_data()
    }
}

/// Appends the little-endian bytes of `v` (f64 when `wide`, else f32) to `out`.
fn put_le<T: Real>(v: &[T], wide: bool, out: &mut Vec<u8>) {
    if wide {
        for x in v {
            out.extend_from_slice(&x.to_f64().to_le_bytes());
        }
    } else {
        // Exact: T is f32 here, and f32 -> f64 -> f32 round-trips.
        for x in v {
            out.extend_from_slice(&(x.to_f64() as f32).to_le_bytes());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::io::{encode_npy, read_npy};

    #[test]
    fn bytes_are_np_saves_and_bad_producers_leave_no_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k.npy");
        let v: Vec<f64> = (0..12).map(|i| i as f64 / 7.0).collect();
        write_matrix_npy_rows::<f64>(&path, 4, 3, |sink| {
            sink(&v[..3])?;
            sink(&v[3..])
        })
        .unwrap();
        assert_eq!(
            std::fs::read(&path).unwrap(),
            encode_npy(&[4, 3], &v).unwrap()
        );
        let v32: Vec<f32> = v.iter().map(|&x| x as f32).collect();
        write_matrix_npy_rows::<f32>(&path, 4, 3, |sink| sink(&v32)).unwrap();
        assert_eq!(
            std::fs::read(&path).unwrap(),
            encode_npy(&[4, 3], &v32).unwrap()
        );

        let other = dir.path().join("other.npy");
        let short = write_matrix_npy_rows::<f32>(&other, 4, 3, |sink| sink(&v32[..9]));
        assert!(matches!(short, Err(Error::Shape(_))), "{short:?}");
        let long = write_matrix_npy_rows::<f32>(&other, 4, 3, |sink| {
            sink(&v32)?;
            sink(&v32[..3])
        });
        assert!(matches!(long, Err(Error::Shape(_))), "{long:?}");
        let ragged = write_matrix_npy_rows::<f32>(&other, 4, 3, |sink| sink(&v32[..4]));
        assert!(matches!(ragged, Err(Error::Shape(_))), "{ragged:?}");
        let failed = write_matrix_npy_rows::<f32>(&other, 4, 3, |_| {
            Err(Error::param("producer", "gave up"))
        });
        assert!(failed.unwrap_err().to_string().contains("gave up"));
        // Nothing half-written: only the complete file, no temporary ones.
        let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(names.len(), 1);
        assert_eq!(read_npy(&path).unwrap().shape, [4, 3]);
    }
}
