//! File formats: `.npy`, `.npz`, CSV; atomic writes.
//!
//! - [`read_npy`] / [`parse_npy`] / [`write_npy`]: NumPy's array format, hand-written, robust
//!   against any input (see [`npy`] for the supported dtypes and the decisions taken).
//! - [`read_npz`] / [`parse_npz`] / [`write_npz`]: archives of arrays (`np.savez`,
//!   `np.savez_compressed`), with a bound on decompressed sizes.
//! - [`read_csv`]: numeric text tables.
//! - [`read_matrix`] / [`read_matrix_dyn`]: one matrix from any of these, chosen by extension.
//! - [`write_matrix_npy_rows`]: a `.npy` matrix written while its rows are being computed.
//! - [`write_atomic`]: every writer goes through it; a failed write never leaves a partial file.

pub mod atomic;
pub mod csv;
pub mod npy;
mod npy_header;
mod npy_rows;
pub mod npz;

use std::io::Read;
use std::path::Path;

pub use atomic::{remove_temporary_files, write_atomic, write_atomic_bytes};
pub use csv::{parse_csv, read_csv, CsvOptions, Delimiter, HeaderMode};
pub use npy::{
    encode_npy, parse_npy, read_npy, write_matrix_npy, write_npy, write_npy_array, NpyArray,
    NpyArrayRef, NpyData, NpyDataRef, NpyElement,
};
pub use npy_rows::write_matrix_npy_rows;
pub use npz::{
    encode_npz, parse_npz, parse_npz_with_limit, read_npz, read_npz_with_limit, write_npz,
    DEFAULT_NPZ_LIMIT,
};

use crate::error::{Error, Result};
use crate::matrix::Matrix;
use crate::scalar::Real;

/// A matrix whose float type is the one its file held (integer files give `F64`).
#[derive(Clone, Debug, PartialEq)]
pub enum DynMatrix {
    /// Read from `float32` data.
    F32(Matrix<f32>),
    /// Read from `float64` (or integer, or text) data.
    F64(Matrix<f64>),
}

impl DynMatrix {
    /// `(nrows, ncols)`.
    pub fn shape(&self) -> (usize, usize) {
        match self {
            DynMatrix::F32(m) => m.shape(),
            DynMatrix::F64(m) => m.shape(),
        }
    }

    /// `"float32"` or `"float64"`.
    pub fn dtype_name(&self) -> &'static str {
        match self {
            DynMatrix::F32(_) => "float32",
            DynMatrix::F64(_) => "float64",
        }
    }

    /// Converts to `T` (f64 -> f32 rounds; moves without copying when the type already matches).
    pub fn into_real<T: Real>(self) -> Matrix<T> {
        let (r, c) = self.shape();
        let data = match self {
            DynMatrix::F32(m) => NpyData::F32(m.into_vec()),
            DynMatrix::F64(m) => NpyData::F64(m.into_vec()),
        };
        match (NpyArray {
            shape: vec![r, c],
            data,
        })
        .into_matrix("matrix")
        {
            Ok(m) => m,
            // The shape was taken from a valid matrix.
            Err(_) => unreachable!("a matrix's own shape is consistent"),
        }
    }
}

/// The formats [`read_matrix`] understands.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Format {
    Npy,
    Npz,
    Text(Delimiter),
}

/// Picks the format from the extension (`.npy`, `.npz`, `.csv`, `.tsv`, `.txt`), or, without a
/// known one, from the first bytes of the file.
fn detect(path: &Path) -> Result<Format> {
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase);
    match ext.as_deref() {
        Some("npy") => return Ok(Format::Npy),
        Some("npz") => return Ok(Format::Npz),
        Some("csv") => return Ok(Format::Text(Delimiter::Char(','))),
        Some("tsv") => return Ok(Format::Text(Delimiter::Char('\t'))),
        _ => {}
    }
    let mut head = Vec::with_capacity(4096);
    std::fs::File::open(path)
        .and_then(|f| f.take(4096).read_to_end(&mut head))
        .map_err(|source| Error::Io {
            path: path.to_path_buf(),
            source,
        })?;
    if head.starts_with(npy::NPY_MAGIC) {
        return Ok(Format::Npy);
    }
    if head.starts_with(b"PK\x03\x04") || head.starts_with(b"PK\x05\x06") {
        return Ok(Format::Npz);
    }
    if ext.as_deref() == Some("txt") || std::str::from_utf8(&head).is_ok() {
        // Text: commas if the first data line has one, else whitespace (np.savetxt's default).
        let text = String::from_utf8_lossy(&head);
        let first = text
            .lines()
            .map(str::trim)
            .find(|l| !l.is_empty() && !l.starts_with('#'))
            .unwrap_or("");
        return Ok(Format::Text(if first.contains(',') {
            Delimiter::Char(',')
        } else if first.contains(';') {
            Delimiter::Char(';')
        } else {
            Delimiter::Whitespace
        }));
    }
    Err(Error::Format {
        path: path.to_path_buf(),
        reason: "unknown file format (expected .npy, .npz, .csv, .tsv or .txt)".into(),
    })
}

/// The only array of an `.npz`, or an error listing what is there.
fn single_npz_array(path: &Path) -> Result<NpyArray> {
    let mut arrays = read_npz(path)?;
    if arrays.len() == 1 {
        if let Some((_, a)) = arrays.pop() {
            return Ok(a);
        }
    }
    let names: Vec<String> = arrays.iter().map(|(n, _)| format!("'{n}'")).collect();
    Err(Error::Format {
        path: path.to_path_buf(),
        reason: format!(
            "expected an archive with exactly one array to read as a matrix, found {} ({})",
            arrays.len(),
            names.join(", ")
        ),
    })
}

/// Reads a 2-D array as a matrix, whatever the format (chosen by extension: `.npy`; `.npz` with
/// exactly one array; `.csv` comma-separated; `.tsv` tab-separated; `.txt` commas or
/// whitespace; otherwise sniffed from the content). Elements are converted to `T`.
pub fn read_matrix<T: Real>(path: impl AsRef<Path>) -> Result<Matrix<T>> {
    let path = path.as_ref();
    let what = path.display().to_string();
    match detect(path)? {
        Format::Npy => read_npy(path)?.into_matrix(&what),
        Format::Npz => single_npz_array(path)?.into_matrix(&what),
        Format::Text(d) => read_csv(path, &CsvOptions::with_delimiter(d)),
    }
}

/// Reads a 2-D array as [`read_matrix`] does, keeping the file's float type: `float32` data gives
/// [`DynMatrix::F32`]; `float64`, integer, boolean and text data give [`DynMatrix::F64`].
pub fn read_matrix_dyn(path: impl AsRef<Path>) -> Result<DynMatrix> {
    let path = path.as_ref();
    let what = path.display().to_string();
    let array = match detect(path)? {
        Format::Npy => read_npy(path)?,
        Format::Npz => single_npz_array(path)?,
        Format::Text(d) => {
            return read_csv(path, &CsvOptions::with_delimiter(d)).map(DynMatrix::F64)
        }
    };
    Ok(match array.data {
        NpyData::F32(_) => DynMatrix::F32(array.into_matrix(&what)?),
        _ => DynMatrix::F64(array.into_matrix(&what)?),
    })
}
