//! Strided views of a rectangular block inside a larger row-major matrix.
//!
//! A Gram tile is `nrows x ncols` elements inside an `n x n` matrix, rows `row_stride` apart.
//! Several threads fill disjoint tiles of the same matrix at once, so a tile cannot be a
//! `&mut [T]` spanning from its first to its last element (that slice would cover the other
//! tiles' elements in between). `TileMut` only ever hands out its own rows.

use core::marker::PhantomData;
use core::ptr::NonNull;

/// Mutable view of `nrows x ncols` elements, row `i` starting at `ptr + i * row_stride`.
pub struct TileMut<'a, T> {
    ptr: NonNull<T>,
    nrows: usize,
    ncols: usize,
    row_stride: usize,
    _marker: PhantomData<&'a mut [T]>,
}

// SAFETY: a TileMut is a unique borrow of its rows (like `&mut [T]`), so it may move to another
// thread when T may.
unsafe impl<T: Send> Send for TileMut<'_, T> {}

impl<'a, T> TileMut<'a, T> {
    /// A tile over a slice: row `i` is `data[i * row_stride..i * row_stride + ncols]`.
    ///
    /// # Panics
    /// If `ncols > row_stride` (when `nrows > 1`) or the slice is too short.
    pub fn from_slice(data: &'a mut [T], nrows: usize, ncols: usize, row_stride: usize) -> Self {
        assert!(nrows <= 1 || ncols <= row_stride, "rows would overlap");
        let needed = if nrows == 0 {
            0
        } else {
            (nrows - 1) * row_stride + ncols
        };
        assert!(data.len() >= needed, "slice too short for the tile");
        TileMut {
            // SAFETY: a slice pointer is never null.
            ptr: unsafe { NonNull::new_unchecked(data.as_mut_ptr()) },
            nrows,
            ncols,
            row_stride,
            _marker: PhantomData,
        }
    }

    /// A tile over raw memory.
    ///
    /// # Safety
    /// For the lifetime `'a`, for every `i < nrows`, the `ncols` elements starting at
    /// `ptr.add(i * row_stride)` must be valid, initialised, and accessed through this view only.
    /// Rows must not overlap (`ncols <= row_stride` when `nrows > 1`). `ptr` must be non-null and
    /// aligned even when the tile is empty.
    pub unsafe fn from_raw_parts(
        ptr: *mut T,
        nrows: usize,
        ncols: usize,
        row_stride: usize,
    ) -> Self {
        debug_assert!(nrows <= 1 || ncols <= row_stride);
        TileMut {
            // SAFETY: non-null by the caller's contract.
            ptr: unsafe { NonNull::new_unchecked(ptr) },
            nrows,
            ncols,
            row_stride,
            _marker: PhantomData,
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

    /// Elements from the start of one row to the start of the next.
    pub fn row_stride(&self) -> usize {
        self.row_stride
    }

    /// Address of the first element (for alignment decisions; not for access).
    pub fn addr(&self) -> usize {
        self.ptr.as_ptr() as usize
    }

    /// Row `i`.
    ///
    /// # Panics
    /// If `i >= nrows`.
    #[inline(always)]
    pub fn row_mut(&mut self, i: usize) -> &mut [T] {
        assert!(i < self.nrows, "row index out of bounds");
        // SAFETY: row i is `ncols` valid elements owned by this view (constructor contract), and
        // the returned borrow ties up `self` so no other row can be handed out meanwhile.
        unsafe {
            core::slice::from_raw_parts_mut(self.ptr.as_ptr().add(i * self.row_stride), self.ncols)
        }
    }

    /// Row `i`, read-only.
    ///
    /// # Panics
    /// If `i >= nrows`.
    #[inline(always)]
    pub fn row(&self, i: usize) -> &[T] {
        assert!(i < self.nrows, "row index out of bounds");
        // SAFETY: as in `row_mut`, shared.
        unsafe {
            core::slice::from_raw_parts(self.ptr.as_ptr().add(i * self.row_stride), self.ncols)
        }
    }

    /// Reborrows for a shorter lifetime.
    pub fn rb_mut(&mut self) -> TileMut<'_, T> {
        TileMut {
            ptr: self.ptr,
            nrows: self.nrows,
            ncols: self.ncols,
            row_stride: self.row_stride,
            _marker: PhantomData,
        }
    }
}
