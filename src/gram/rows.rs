//! Rows of a kernel matrix on demand, without the full n x n matrix (an n = 100k f64 Gram
//! matrix is 80 GB): the solvers ask for the rows they need.

use super::assemble::{assemble_cross, aux_of, centre_for, GramOptions, Operand};
use super::input::{rows_of, Rows};
use super::normalize::{Normalization, TrainStats};
use super::spec::Kernel;
use crate::error::{Error, Result};
use crate::matrix::Matrix;
use crate::scalar::Real;
use faer::MatRef;
use std::borrow::Cow;

/// Anything that can produce rows of an n x n kernel matrix.
pub trait RowSource<T: Real>: Sync {
    /// Number of points (rows and columns).
    fn n(&self) -> usize;

    /// Writes rows `idx` into `out` (row-major, `idx.len() x n`).
    fn rows_into(&self, idx: &[usize], out: &mut [T]) -> Result<()>;

    /// Rows `idx` as a matrix.
    fn rows(&self, idx: &[usize]) -> Result<Matrix<T>> {
        let mut out = Matrix::try_zeros_for_output(idx.len(), self.n(), "kernel rows")?;
        self.rows_into(idx, out.as_mut_slice())?;
        Ok(out)
    }

    /// The diagonal K_ii.
    fn diagonal(&self) -> Result<Vec<T>>;
}

fn check_request(idx: &[usize], n: usize, out_len: usize) -> Result<()> {
    if let Some(&bad) = idx.iter().find(|&&i| i >= n) {
        return Err(Error::Shape(format!(
            "row {bad} requested of a {n} x {n} kernel"
        )));
    }
    if out_len != idx.len() * n {
        return Err(Error::Shape(format!(
            "output buffer of {out_len} values for {} rows of length {n}",
            idx.len()
        )));
    }
    Ok(())
}

/// A precomputed (square) matrix is a row source.
impl<T: Real> RowSource<T> for Matrix<T> {
    fn n(&self) -> usize {
        self.nrows()
    }
    fn rows_into(&self, idx: &[usize], out: &mut [T]) -> Result<()> {
        let n = self.nrows();
        if self.ncols() != n {
            return Err(Error::Shape("a row source must be square".into()));
        }
        check_request(idx, n, out.len())?;
        for (o, &i) in out.chunks_exact_mut(n.max(1)).zip(idx) {
            o.copy_from_slice(self.row(i));
        }
        Ok(())
    }
    fn diagonal(&self) -> Result<Vec<T>> {
        Ok((0..self.nrows().min(self.ncols()))
            .map(|i| self.get(i, i))
            .collect())
    }
}

/// K(X, X) computed row block by row block from the data (same tiled kernels as
/// [`super::gram`]), optionally normalised with the statistics of the full matrix (computed once
/// at construction in O(n) memory). Rows agree with [`super::gram`] to rounding (not bitwise:
/// the GEMM blocking differs). For rbf the source also keeps the centred copy of X that the
/// GEMM reads (n x d more, see [`super::gram`]), made once at construction with the shift of
/// [`super::gram`]; entries where the distance cancels are refined the same way.
pub struct KernelRows<T: Real> {
    x: Vec<T>,
    /// rbf: X minus its shift (the GEMM's input).
    xc: Option<Vec<T>>,
    n: usize,
    d: usize,
    kernel: Kernel,
    stats: TrainStats,
    self_sim: Vec<f64>,
    opts: GramOptions,
}

impl<T: Real> KernelRows<T> {
    /// A row source for K(X, X) with the given kernel and normalisation.
    pub fn new(
        x: MatRef<'_, T>,
        kernel: &Kernel,
        normalization: Normalization,
        opts: &GramOptions,
    ) -> Result<Self> {
        opts.validate()?;
        // The O(n d) passes over the input on the requested threads.
        let (rows, kernel, stats, self_sim, xc) = opts.install(|| -> Result<_> {
            let rows = rows_of(x, "X")?;
            let kernel = kernel.resolve(rows.d)?;
            let stats = TrainStats::from_data(x, &kernel, normalization, opts)?;
            let self_sim = super::normalize::self_similarities(x, &kernel)?;
            let xc = centre_for(&kernel, &rows, &rows, "X")?;
            Ok((rows, kernel, stats, self_sim, xc))
        })??;
        Ok(KernelRows {
            xc,
            x: rows.data.into_owned(),
            n: rows.n,
            d: rows.d,
            kernel,
            stats,
            self_sim,
            opts: *opts,
        })
    }

    /// The normalisation statistics (to normalise test kernels the same way).
    pub fn stats(&self) -> &TrainStats {
        &self.stats
    }
}

impl<T: Real> RowSource<T> for KernelRows<T> {
    fn n(&self) -> usize {
        self.n
    }

    fn rows_into(&self, idx: &[usize], out: &mut [T]) -> Result<()> {
        check_request(idx, self.n, out.len())?;
        if idx.is_empty() {
            return Ok(());
        }
        let d = self.d;
        let mut gathered = Vec::with_capacity(idx.len() * d);
        for &i in idx {
            gathered.extend_from_slice(&self.x[i * d..(i + 1) * d]);
        }
        let sub_c = self.xc.as_ref().map(|xc| {
            let mut g = Vec::with_capacity(idx.len() * d);
            for &i in idx {
                g.extend_from_slice(&xc[i * d..(i + 1) * d]);
            }
            g
        });
        let sub = Rows {
            data: Cow::Owned(gathered),
            n: idx.len(),
            d,
        };
        let all = Rows {
            data: Cow::Borrowed(&self.x[..]),
            n: self.n,
            d,
        };
        let (xo, yo) = (
            Operand::new(&sub, sub_c.as_deref()),
            Operand::new(&all, self.xc.as_deref()),
        );
        self.opts
            .install(|| assemble_cross(xo, yo, &self.kernel, self.opts.tile, out))?;
        // Exact values where the full matrix has them exactly (as `assemble::fix_diagonal`
        // sets them): 1 for rbf and laplacian, and 1 for cosine where the point's reciprocal
        // norm (the epilogue's, computed the same way) is non-zero.
        let cosine_inv = match self.kernel {
            Kernel::Cosine => aux_of(&self.kernel, &sub.data, sub.n, d),
            _ => Vec::new(),
        };
        for (r, &i) in idx.iter().enumerate() {
            let cosine_one = cosine_inv.get(r).is_some_and(|&v| v != T::ZERO);
            if self.kernel.unit_self_similarity() || cosine_one {
                out[r * self.n + i] = T::ONE;
            }
        }
        if self.stats.kind != Normalization::None {
            let test_self: Vec<f64> = idx.iter().map(|&i| self.self_sim[i]).collect();
            self.stats.apply_rows(out, self.n, Some(&test_self))?;
            if self.stats.kind == Normalization::UnitDiag {
                for (r, &i) in idx.iter().enumerate() {
                    if self.self_sim[i] > 0.0 {
                        out[r * self.n + i] = T::ONE;
                    }
                }
            }
        }
        Ok(())
    }

    fn diagonal(&self) -> Result<Vec<T>> {
        let mut out = vec![T::ZERO; self.n];
        let mut row = Vec::new();
        for (i, o) in out.iter_mut().enumerate() {
            // Centring has no closed form for the diagonal: ask for the entry itself (O(n d)
            // per entry, done once by a solver); the other cases are functions of k(x_i, x_i).
            match self.stats.kind {
                Normalization::Center => {
                    row.resize(self.n, T::ZERO);
                    self.rows_into(&[i], &mut row)?;
                    *o = row[i];
                }
                Normalization::UnitDiag => {
                    *o = if self.self_sim[i] > 0.0 {
                        T::ONE
                    } else {
                        T::ZERO
                    }
                }
                Normalization::Trace => *o = T::from_f64(self.self_sim[i] / self.stats.trace_mean),
                Normalization::None => *o = T::from_f64(self.self_sim[i]),
            }
        }
        Ok(out)
    }
}

/// `sum_m beta_m K_m` over row sources, row by row (the combined matrix is never stored).
pub struct CombinedRows<'a, T: Real> {
    sources: Vec<&'a dyn RowSource<T>>,
    beta: Vec<f64>,
    n: usize,
}

impl<'a, T: Real> CombinedRows<'a, T> {
    /// Combines `sources` (all of the same size) with weights `beta`.
    pub fn new(sources: Vec<&'a dyn RowSource<T>>, beta: Vec<f64>) -> Result<Self> {
        let n = sources
            .first()
            .ok_or_else(|| Error::Empty("no kernels to combine".into()))?
            .n();
        if sources.len() != beta.len() {
            return Err(Error::Shape(format!(
                "{} kernels but {} weights",
                sources.len(),
                beta.len()
            )));
        }
        if let Some(m) = sources.iter().position(|s| s.n() != n) {
            return Err(Error::Shape(format!(
                "kernel {m} is {0} x {0}, kernel 0 is {n} x {n}",
                sources[m].n()
            )));
        }
        if let Some(b) = beta.iter().find(|b| !b.is_finite()) {
            return Err(Error::param("beta", format!("non-finite weight {b}")));
        }
        Ok(CombinedRows { sources, beta, n })
    }
}

impl<T: Real> RowSource<T> for CombinedRows<'_, T> {
    fn n(&self) -> usize {
        self.n
    }
    fn rows_into(&self, idx: &[usize], out: &mut [T]) -> Result<()> {
        check_request(idx, self.n, out.len())?;
        out.fill(T::ZERO);
        let mut buf = vec![T::ZERO; out.len()];
        for (src, &b) in self.sources.iter().zip(&self.beta) {
            src.rows_into(idx, &mut buf)?;
            let w = T::from_f64(b);
            for (o, v) in out.iter_mut().zip(&buf) {
                *o = w.mul_add(*v, *o);
            }
        }
        Ok(())
    }
    fn diagonal(&self) -> Result<Vec<T>> {
        let mut out = vec![T::ZERO; self.n];
        for (src, &b) in self.sources.iter().zip(&self.beta) {
            let w = T::from_f64(b);
            for (o, v) in out.iter_mut().zip(src.diagonal()?) {
                *o = w.mul_add(v, *o);
            }
        }
        Ok(out)
    }
}
