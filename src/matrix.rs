//! `Matrix<T>`: the owned, row-major, dense matrix that the engine returns.
//!
//! Inputs are taken as faer views ([`faer::MatRef`]); owned results are `Matrix<T>` (a `Vec` in
//! NumPy's C order plus its shape), which borrows as a faer view with [`Matrix::as_mat_ref`].

use crate::error::{Error, Result};
use crate::scalar::Real;
use faer::{MatMut, MatRef};

/// A dense row-major matrix: element (i, j) is `data[i * ncols + j]`.
#[derive(Clone, Debug, PartialEq)]
pub struct Matrix<T> {
    nrows: usize,
    ncols: usize,
    data: Vec<T>,
}

impl<T: Copy> Matrix<T> {
    /// Wraps `data` (row-major, length `nrows * ncols`).
    pub fn from_vec(nrows: usize, ncols: usize, data: Vec<T>) -> Result<Self> {
        let expected = nrows.checked_mul(ncols).ok_or_else(|| {
            Error::Shape(format!("{nrows} x {ncols} overflows the address space"))
        })?;
        if data.len() != expected {
            return Err(Error::Shape(format!(
                "buffer of length {} cannot be a {nrows} x {ncols} matrix (needs {expected})",
                data.len()
            )));
        }
        Ok(Matrix { nrows, ncols, data })
    }

    /// A matrix with every element equal to `value`.
    pub fn filled(nrows: usize, ncols: usize, value: T) -> Self {
        Matrix {
            nrows,
            ncols,
            data: vec![value; nrows * ncols],
        }
    }

    /// Number of rows.
    pub fn nrows(&self) -> usize {
        self.nrows
    }

    /// Number of columns.
    pub fn ncols(&self) -> usize {
        self.ncols
    }

    /// `(nrows, ncols)`.
    pub fn shape(&self) -> (usize, usize) {
        (self.nrows, self.ncols)
    }

    /// The row-major buffer.
    pub fn as_slice(&self) -> &[T] {
        &self.data
    }

    /// The row-major buffer, mutable.
    pub fn as_mut_slice(&mut self) -> &mut [T] {
        &mut self.data
    }

    /// Gives the buffer back.
    pub fn into_vec(self) -> Vec<T> {
        self.data
    }

    /// Row `i` as a slice. Panics if `i >= nrows` (an indexing error, like slice indexing).
    pub fn row(&self, i: usize) -> &[T] {
        &self.data[i * self.ncols..(i + 1) * self.ncols]
    }

    /// Element (i, j). Panics when out of bounds, like slice indexing.
    pub fn get(&self, i: usize, j: usize) -> T {
        assert!(i < self.nrows && j < self.ncols, "index out of bounds");
        self.data[i * self.ncols + j]
    }

    /// Element-wise conversion to another type.
    pub fn map<U: Copy>(&self, f: impl FnMut(T) -> U) -> Matrix<U> {
        Matrix {
            nrows: self.nrows,
            ncols: self.ncols,
            data: self.data.iter().copied().map(f).collect(),
        }
    }
}

impl<T: Real> Matrix<T> {
    /// [`Matrix::try_zeros_for_output`] for buffers the size of data already in memory.
    pub(crate) fn zeros_for_output(nrows: usize, ncols: usize) -> Self {
        let m = Matrix::filled(nrows, ncols, T::ZERO);
        advise_huge_pages(&m.data);
        m
    }

    /// A zero matrix for the engine to fill. Large buffers come fresh from the OS (calloc:
    /// no zeroing pass) and, on Linux, are marked for transparent huge pages before the first
    /// write: filling a 64 MB Gram matrix otherwise spends ~15% of its time in 4 KB page faults.
    ///
    /// The size is checked against the memory cap first ([`crate::limits`]), and an allocator
    /// refusal is an error too: a request the machine cannot serve never aborts the process.
    pub(crate) fn try_zeros_for_output(nrows: usize, ncols: usize, what: &str) -> Result<Self> {
        crate::limits::check_alloc::<T>(nrows, ncols, what)?;
        let len = nrows * ncols; // no overflow: check_alloc bounds the bytes by isize::MAX
        let data = if len == 0 || std::mem::size_of::<T>() == 0 {
            Vec::new()
        } else {
            let layout = std::alloc::Layout::array::<T>(len)
                .map_err(|_| too_large::<T>(nrows, ncols, what))?;
            // SAFETY: the layout has a non-zero size (len > 0, T is f32 or f64).
            let ptr = unsafe { std::alloc::alloc_zeroed(layout) } as *mut T;
            if ptr.is_null() {
                return Err(too_large::<T>(nrows, ncols, what));
            }
            // SAFETY: `ptr` was allocated by the global allocator with the layout of
            // `[T; len]`, is non-null, and all-zero bits are a valid T (T: Real is f32 or
            // f64, whose zero bit pattern is 0.0), so all `len` elements are initialised.
            unsafe { Vec::from_raw_parts(ptr, len, len) }
        };
        advise_huge_pages(&data);
        Ok(Matrix { nrows, ncols, data })
    }

    /// A zero matrix to fill (with [`crate::gram::gram_into`], say), checked against the
    /// memory cap ([`crate::limits`]) and with an allocator refusal as an error, never an
    /// abort; `what` names it in the error. Large buffers come fresh from the OS, unzeroed
    /// and untouched until written.
    ///
    /// ```
    /// let m = mmfuse::Matrix::<f32>::try_zeros(2, 3, "a scratch matrix")?;
    /// assert_eq!(m.as_slice(), &[0.0; 6]);
    /// assert!(mmfuse::Matrix::<f64>::try_zeros(usize::MAX, 2, "K").is_err());
    /// # Ok::<(), mmfuse::Error>(())
    /// ```
    pub fn try_zeros(nrows: usize, ncols: usize, what: &str) -> Result<Self> {
        Self::try_zeros_for_output(nrows, ncols, what)
    }

    /// Copies any faer view (whatever its strides) into a row-major matrix.
    pub fn from_mat_ref(view: MatRef<'_, T>) -> Self {
        let (nrows, ncols) = (view.nrows(), view.ncols());
        let mut data = Vec::with_capacity(nrows * ncols);
        for i in 0..nrows {
            for j in 0..ncols {
                data.push(view[(i, j)]);
            }
        }
        Matrix { nrows, ncols, data }
    }

    /// Borrows as a faer view (row-major strides).
    pub fn as_mat_ref(&self) -> MatRef<'_, T> {
        MatRef::from_row_major_slice(&self.data, self.nrows, self.ncols)
    }

    /// Borrows as a mutable faer view (row-major strides).
    pub fn as_mat_mut(&mut self) -> MatMut<'_, T> {
        MatMut::from_row_major_slice_mut(&mut self.data, self.nrows, self.ncols)
    }
}

/// Asks the kernel to back the 2 MB-aligned interior of `data` with huge pages (best effort: a
/// refusal only costs speed). Only worth it, and only done, for buffers of 4 MB or more.
#[cfg(target_os = "linux")]
fn advise_huge_pages<T>(data: &[T]) {
    const HUGE: usize = 2 << 20;
    let bytes = std::mem::size_of_val(data);
    if bytes < 2 * HUGE {
        return;
    }
    let start = data.as_ptr() as usize;
    let aligned = start.next_multiple_of(HUGE);
    let end = (start + bytes) / HUGE * HUGE;
    if end > aligned {
        // SAFETY: madvise only changes how the kernel backs pages of our own live allocation
        // (the range lies inside `data`); MADV_HUGEPAGE never changes the memory's contents.
        unsafe {
            libc::madvise(
                aligned as *mut libc::c_void,
                end - aligned,
                libc::MADV_HUGEPAGE,
            );
        }
    }
}

#[cfg(not(target_os = "linux"))]
fn advise_huge_pages<T>(_data: &[T]) {}

/// The allocator refused an `n x m` buffer of `T`.
fn too_large<T>(n: usize, m: usize, what: &str) -> crate::Error {
    crate::Error::TooLarge {
        what: format!("{what} ({n} x {m}; the allocator refused)"),
        bytes: (n as u128) * (m as u128) * std::mem::size_of::<T>() as u128,
        limit: crate::limits::memory_limit().0,
    }
}
