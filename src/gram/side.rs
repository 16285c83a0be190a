//! A data matrix prepared once as one side of many kernel blocks: its rows, the shifted copy the
//! rbf GEMM reads ([`super::centre`]) and the epilogue's per-point values (squared or
//! reciprocal norms). Rows on demand and tiled kernel products (MKL beyond memory,
//! docs/design.md section 10) ask for thousands of blocks K(X[I], X[J]); with the sides
//! prepared, each block costs only its GEMM and epilogue, computed by the tile code of
//! [`super::gram`] and [`super::cross_gram`] (`compute_block`), so an entry of a block equals
//! the same entry of `cross_gram` up to the GEMM's summation order.

use super::assemble::{assemble_cross_planned, aux_of, plan_with_aux, Operand};
use super::input::{rows_of, Rows};
use super::spec::Kernel;
use crate::error::{Error, Result};
use crate::scalar::Real;
use faer::MatRef;
use std::borrow::Cow;

/// One side of kernel blocks: the rows of a data matrix with what the tiles read, prepared once.
#[derive(Clone, Debug)]
pub struct PreparedData<T: Real> {
    kernel: Kernel,
    data: Vec<T>,
    /// rbf: `data - shift`, the GEMM's input.
    centred: Option<Vec<T>>,
    /// The epilogue's per-point values of what the GEMM reads (empty when not needed).
    aux: Vec<T>,
    /// rbf: the per-column shift (of the training data), to prepare other data alike.
    shift: Option<Vec<f64>>,
    n: usize,
    d: usize,
}

impl<T: Real> PreparedData<T> {
    /// Prepares training data `x` (n x d, finite, non-empty) for `kernel` (resolved here for d
    /// features); rbf shifts by the data's own rounded column means, as [`super::gram`] does.
    pub fn new(x: MatRef<'_, T>, kernel: &Kernel) -> Result<Self> {
        let rows = rows_of(x, "X")?;
        let kernel = kernel.resolve(rows.d)?;
        let shift = matches!(kernel, Kernel::Rbf { .. })
            .then(|| super::centre::shift_of(&rows.data, rows.n, rows.d));
        Self::with_shift(rows, kernel, shift)
    }

    /// Prepares other data (test points, say) as the columns' partner of `self`: same kernel,
    /// same rbf shift, as [`super::cross_gram`] shifts both sides by the training points'.
    pub fn like(&self, x: MatRef<'_, T>) -> Result<Self> {
        let rows = rows_of(x, "X")?;
        if rows.d != self.d {
            return Err(Error::Shape(format!(
                "data with {} features for a kernel prepared on {} features",
                rows.d, self.d
            )));
        }
        Self::with_shift(rows, self.kernel, self.shift.clone())
    }

    fn with_shift(rows: Rows<'_, T>, kernel: Kernel, shift: Option<Vec<f64>>) -> Result<Self> {
        crate::limits::check_alloc::<T>(rows.n, rows.d, "prepared kernel data")?;
        let centred = match &shift {
            Some(s) => Some(super::centre::centred(
                &rows,
                s,
                "the centred copy of X (rbf)",
            )?),
            None => None,
        };
        let aux = aux_of(
            &kernel,
            centred.as_deref().unwrap_or(&rows.data),
            rows.n,
            rows.d,
        );
        Ok(PreparedData {
            kernel,
            centred,
            aux,
            shift,
            n: rows.n,
            d: rows.d,
            data: rows.data.into_owned(),
        })
    }

    /// The rows `idx` (any order, repeats allowed), with their prepared values copied, not
    /// recomputed: a block of the gathered side equals the same entries of the whole side.
    ///
    /// # Panics
    /// Never for indices below [`PreparedData::n`]; an index out of range panics (crate-internal
    /// callers pass active-set indices).
    pub(crate) fn gather(&self, idx: &[usize]) -> Self {
        let d = self.d;
        let pick = |src: &[T], width: usize| {
            let mut out = Vec::with_capacity(idx.len() * width);
            for &i in idx {
                out.extend_from_slice(&src[i * width..(i + 1) * width]);
            }
            out
        };
        PreparedData {
            kernel: self.kernel,
            data: pick(&self.data, d),
            centred: self.centred.as_ref().map(|c| pick(c, d)),
            aux: if self.aux.is_empty() {
                Vec::new()
            } else {
                pick(&self.aux, 1)
            },
            shift: self.shift.clone(),
            n: idx.len(),
            d,
        }
    }

    /// Number of points.
    pub fn n(&self) -> usize {
        self.n
    }

    /// Number of features.
    pub fn d(&self) -> usize {
        self.d
    }

    /// The resolved kernel.
    pub fn kernel(&self) -> &Kernel {
        &self.kernel
    }

    /// The rows, row-major n x d.
    pub fn data(&self) -> &[T] {
        &self.data
    }

    /// k(x_i, x_i) of every point in f64 (as [`super::self_similarities`]).
    pub fn self_similarities(&self) -> Vec<f64> {
        self.data
            .chunks_exact(self.d)
            .map(|r| {
                self.kernel
                    .self_similarity(r.iter().map(|v| v.to_f64() * v.to_f64()).sum())
            })
            .collect()
    }

    fn operand(&self) -> (Rows<'_, T>, Option<&[T]>) {
        (
            Rows {
                data: Cow::Borrowed(&self.data),
                n: self.n,
                d: self.d,
            },
            self.centred.as_deref(),
        )
    }

    /// K(self, cols) into `out` (self.n x cols.n, row-major), in blocks of `row_tile x
    /// col_tile` over the current rayon pool (one block: on the calling thread). Both sides
    /// must come from the same training preparation (same kernel and shift).
    pub(crate) fn block_into(
        &self,
        cols: &PreparedData<T>,
        (row_tile, col_tile): (usize, usize),
        out: &mut [T],
    ) {
        debug_assert_eq!(self.kernel, cols.kernel);
        debug_assert_eq!(self.d, cols.d);
        debug_assert_eq!(out.len(), self.n * cols.n);
        if self.n == 0 || cols.n == 0 {
            return;
        }
        let plan = plan_with_aux(
            &self.kernel,
            Cow::Borrowed(&self.aux),
            Cow::Borrowed(&cols.aux),
        );
        let ((xr, xc), (yr, yc)) = (self.operand(), cols.operand());
        let (x, y) = (Operand::new(&xr, xc), Operand::new(&yr, yc));
        assemble_cross_planned(&plan, (x, y), (row_tile.max(1), col_tile.max(1)), out);
    }
}
