//! Checking and borrowing input data: shape, emptiness, finiteness, contiguity.

use crate::error::{Error, Result};
use crate::scalar::Real;
use faer::MatRef;
use std::borrow::Cow;

/// Row-major contiguous rows of a data matrix (borrowed when the view already is, else copied).
pub(crate) struct Rows<'a, T: Clone> {
    pub data: Cow<'a, [T]>,
    pub n: usize,
    pub d: usize,
}

/// Checks `x` (non-empty, finite) and returns its rows contiguously. `what` names the argument
/// in error messages.
pub(crate) fn rows_of<'a, T: Real>(x: MatRef<'a, T>, what: &str) -> Result<Rows<'a, T>> {
    let (n, d) = (x.nrows(), x.ncols());
    if n == 0 || d == 0 {
        return Err(Error::Empty(format!(
            "{what} is {n} x {d}; it needs at least one row and one column"
        )));
    }
    let contiguous = x.col_stride() == 1 && (n == 1 || x.row_stride() == d as isize);
    let data: Cow<'a, [T]> = if contiguous {
        // SAFETY: with column stride 1 and row stride d (or a single row), the view's n * d
        // elements are exactly the contiguous range starting at `as_ptr`, valid for 'a.
        Cow::Borrowed(unsafe { std::slice::from_raw_parts(x.as_ptr(), n * d) })
    } else {
        let mut v = Vec::with_capacity(n * d);
        for i in 0..n {
            for j in 0..d {
                v.push(x[(i, j)]);
            }
        }
        Cow::Owned(v)
    };
    check_finite(&data, d, what)?;
    Ok(Rows { data, n, d })
}

/// Errors on the first NaN or infinity in a row-major buffer with `d` columns.
///
/// The common case (all finite) is one branch-free vector pass per chunk
/// (`mmfuse_kernels::all_finite_on`: a search for the first bad element would not
/// vectorise), over the chunks in
/// parallel on the current rayon pool for large data ([`super::par`]); the first bad element
/// is then looked for in the first bad chunk only, so the error is the same however split.
pub(crate) fn check_finite<T: Real>(data: &[T], d: usize, what: &str) -> Result<()> {
    const CHUNK: usize = 1 << 14;
    let finite = |v: &T| mmfuse_kernels::Float::to_f64(*v).is_finite();
    let arch = mmfuse_kernels::arch();
    let has_bad = |c: &[T]| !mmfuse_kernels::all_finite_on(arch, c);
    let first_bad_chunk = if super::par::worth_it(data.len()) {
        use rayon::prelude::*;
        data.par_chunks(CHUNK).position_first(has_bad)
    } else {
        data.chunks(CHUNK).position(has_bad)
    };
    if let Some(pos) = first_bad_chunk.map(|c| {
        let start = c * CHUNK;
        start
            + data[start..]
                .iter()
                .position(|v| !finite(v))
                .expect("the chunk has a non-finite element")
    }) {
        return Err(Error::NonFinite {
            what: what.to_string(),
            row: pos / d.max(1),
            col: pos % d.max(1),
            value: format!("{}", data[pos]),
        });
    }
    Ok(())
}

/// Errors on the first NaN or infinity of a matrix.
pub(crate) fn check_finite_matrix<T: Real>(m: &crate::matrix::Matrix<T>, what: &str) -> Result<()> {
    check_finite(m.as_slice(), m.ncols(), what)
}
