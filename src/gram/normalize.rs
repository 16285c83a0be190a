//! Normalisations of Gram matrices, so that no kernel dominates a combination by scale:
//! trace (K / (tr K / n)), unit diagonal (K_ij / sqrt(K_ii K_jj)) and centring (H K H,
//! H = I - 11^T / n).
//!
//! A training Gram matrix is normalised with its own statistics, which are kept
//! ([`TrainStats`]); a test kernel K(X_test, X_train) must be normalised with those same
//! statistics, plus, for the unit diagonal, the test points' self-similarities k(x, x).

use super::assemble::GramOptions;
use super::spec::Kernel;
use crate::error::{Error, Result};
use crate::matrix::Matrix;
use crate::scalar::Real;
use faer::MatRef;
use std::fmt;
use std::str::FromStr;

/// Which normalisation to apply.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Normalization {
    /// Leave K as it is.
    #[default]
    None,
    /// Divide by the mean of the diagonal, tr K / n (so tr K = n afterwards).
    Trace,
    /// K_ij / sqrt(K_ii K_jj) (0 where K_ii K_jj <= 0); every diagonal entry becomes 1.
    UnitDiag,
    /// Centre in feature space: H K H with H = I - 11^T / n.
    Center,
}

impl FromStr for Normalization {
    type Err = Error;
    /// `none`, `trace`, `unit-diag` (or `unit_diag`, `unitdiag`), `center` (or `centre`).
    fn from_str(s: &str) -> Result<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "none" => Ok(Normalization::None),
            "trace" => Ok(Normalization::Trace),
            "unit-diag" | "unit_diag" | "unitdiag" => Ok(Normalization::UnitDiag),
            "center" | "centre" => Ok(Normalization::Center),
            other => Err(Error::param(
                "normalize",
                format!("unknown normalisation `{other}` (none, trace, unit-diag, center)"),
            )),
        }
    }
}

impl fmt::Display for Normalization {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Normalization::None => "none",
            Normalization::Trace => "trace",
            Normalization::UnitDiag => "unit-diag",
            Normalization::Center => "center",
        })
    }
}

/// The training statistics a normalisation needs, to apply it again to test kernels.
#[derive(Clone, Debug, PartialEq)]
pub struct TrainStats {
    /// The normalisation.
    pub kind: Normalization,
    /// Trace: tr K / n of the training matrix.
    pub trace_mean: f64,
    /// Unit diagonal: k(x_j, x_j) of the training points.
    pub diag: Vec<f64>,
    /// Centring: column means of the training matrix.
    pub col_means: Vec<f64>,
    /// Centring: mean of all entries of the training matrix.
    pub grand_mean: f64,
}

impl TrainStats {
    fn empty(kind: Normalization) -> Self {
        TrainStats {
            kind,
            trace_mean: 1.0,
            diag: Vec::new(),
            col_means: Vec::new(),
            grand_mean: 0.0,
        }
    }

    /// Statistics of a square training Gram matrix.
    pub fn from_gram<T: Real>(k: &Matrix<T>, kind: Normalization) -> Result<Self> {
        let n = check_square(k)?;
        let mut s = TrainStats::empty(kind);
        match kind {
            Normalization::None => {}
            Normalization::Trace => {
                let tr: f64 = (0..n).map(|i| k.get(i, i).to_f64()).sum();
                s.trace_mean = checked_trace_mean(tr, n)?;
            }
            Normalization::UnitDiag => s.diag = (0..n).map(|i| k.get(i, i).to_f64()).collect(),
            Normalization::Center => {
                let mut means = vec![0.0f64; n];
                for i in 0..n {
                    for (m, v) in means.iter_mut().zip(k.row(i)) {
                        *m += v.to_f64();
                    }
                }
                for m in &mut means {
                    *m /= n as f64;
                }
                s.grand_mean = means.iter().sum::<f64>() / n as f64;
                s.col_means = means;
            }
        }
        Ok(s)
    }

    /// Statistics of K(Y, Y) computed from the training data without storing K(Y, Y): the
    /// diagonal from the norms, the column means (centring only) block of rows by block of
    /// rows, in O(tile x m) memory.
    pub fn from_data<T: Real>(
        y: MatRef<'_, T>,
        kernel: &Kernel,
        kind: Normalization,
        opts: &GramOptions,
    ) -> Result<Self> {
        let m = y.nrows();
        let mut s = TrainStats::empty(kind);
        match kind {
            Normalization::None => {}
            Normalization::Trace => {
                let diag = self_similarities(y, kernel)?;
                s.trace_mean = checked_trace_mean(diag.iter().sum(), m)?;
            }
            Normalization::UnitDiag => s.diag = self_similarities(y, kernel)?,
            Normalization::Center => {
                let mut means = vec![0.0f64; m];
                let block = opts.tile.max(1);
                let mut i0 = 0;
                while i0 < m {
                    let i1 = (i0 + block).min(m);
                    let kb = super::cross_gram(y.subrows(i0, i1 - i0), y, kernel, opts)?;
                    for i in 0..kb.nrows() {
                        for (acc, v) in means.iter_mut().zip(kb.row(i)) {
                            *acc += v.to_f64();
                        }
                    }
                    i0 = i1;
                }
                for v in &mut means {
                    *v /= m as f64;
                }
                s.grand_mean = means.iter().sum::<f64>() / m as f64;
                s.col_means = means;
            }
        }
        Ok(s)
    }

    /// Normalises the training matrix these statistics came from, in place.
    pub fn apply_train<T: Real>(&self, k: &mut Matrix<T>) -> Result<()> {
        let n = check_square(k)?;
        self.check_len(n, "training Gram matrix")?;
        match self.kind {
            Normalization::UnitDiag => {
                let d = self.diag.clone();
                self.apply_cross(k, Some(&d))?;
                // k(x, x) / k(x, x) is 1 exactly where it is defined.
                for (i, &di) in d.iter().enumerate() {
                    if di > 0.0 {
                        k.as_mut_slice()[i * n + i] = T::ONE;
                    }
                }
                Ok(())
            }
            Normalization::Center => {
                let n = k.nrows();
                let cm = &self.col_means;
                let g = self.grand_mean;
                let data = k.as_mut_slice();
                for i in 0..n {
                    for (j, v) in data[i * n..(i + 1) * n].iter_mut().enumerate() {
                        *v = T::from_f64(v.to_f64() - cm[i] - cm[j] + g);
                    }
                }
                // Keep exact symmetry (the expression is symmetric, but be explicit).
                for i in 0..n {
                    for j in 0..i {
                        data[i * n + j] = data[j * n + i];
                    }
                }
                Ok(())
            }
            _ => self.apply_cross(k, None),
        }
    }

    /// Normalises a test kernel K(X_test, X_train) (rows: test points, columns: the training
    /// points these statistics came from). `test_self` holds k(x_t, x_t) for the test points;
    /// it is required for [`Normalization::UnitDiag`] only (see [`self_similarities`]).
    pub fn apply_cross<T: Real>(&self, k: &mut Matrix<T>, test_self: Option<&[f64]>) -> Result<()> {
        let m = k.ncols();
        self.apply_rows(k.as_mut_slice(), m, test_self)
    }

    /// [`TrainStats::apply_cross`] on a row-major buffer of rows of length `m`.
    pub(crate) fn apply_rows<T: Real>(
        &self,
        data: &mut [T],
        m: usize,
        test_self: Option<&[f64]>,
    ) -> Result<()> {
        let nt = data.len().checked_div(m).unwrap_or(0);
        self.check_len(m, "columns of the test kernel")?;
        match self.kind {
            Normalization::None => {}
            Normalization::Trace => {
                let inv = 1.0 / self.trace_mean;
                for v in data.iter_mut() {
                    *v = T::from_f64(v.to_f64() * inv);
                }
            }
            Normalization::UnitDiag => {
                let ts = test_self.ok_or_else(|| {
                    Error::param(
                        "test_self",
                        "unit-diagonal normalisation of a test kernel needs k(x, x) of the test points",
                    )
                })?;
                if ts.len() != nt {
                    return Err(Error::Shape(format!(
                        "{} test self-similarities for a test kernel with {nt} rows",
                        ts.len()
                    )));
                }
                let inv_col: Vec<f64> = self.diag.iter().map(|&d| inv_sqrt(d)).collect();
                for (t, &kt) in ts.iter().enumerate() {
                    let ri = inv_sqrt(kt);
                    for (v, c) in data[t * m..(t + 1) * m].iter_mut().zip(&inv_col) {
                        *v = T::from_f64(v.to_f64() * ri * c);
                    }
                }
            }
            Normalization::Center => {
                for t in 0..nt {
                    let row = &mut data[t * m..(t + 1) * m];
                    let row_mean = row.iter().map(|v| v.to_f64()).sum::<f64>() / m as f64;
                    for (v, cm) in row.iter_mut().zip(&self.col_means) {
                        *v = T::from_f64(v.to_f64() - row_mean - cm + self.grand_mean);
                    }
                }
            }
        }
        Ok(())
    }

    fn check_len(&self, m: usize, what: &str) -> Result<()> {
        let expected = match self.kind {
            Normalization::UnitDiag => self.diag.len(),
            Normalization::Center => self.col_means.len(),
            _ => return Ok(()),
        };
        if expected != m {
            return Err(Error::Shape(format!(
                "{what}: {m}, but the normalisation statistics are for {expected} training points"
            )));
        }
        Ok(())
    }
}

/// 1 / sqrt(d), or 0 where d <= 0 (a point with zero self-similarity is left at 0).
fn inv_sqrt(d: f64) -> f64 {
    if d > 0.0 {
        1.0 / d.sqrt()
    } else {
        0.0
    }
}

fn checked_trace_mean(tr: f64, n: usize) -> Result<f64> {
    let mean = tr / n as f64;
    if !(mean.is_finite() && mean > 0.0) {
        return Err(Error::param(
            "normalize",
            format!("trace normalisation needs a positive trace, got tr K = {tr}"),
        ));
    }
    Ok(mean)
}

fn check_square<T: Real>(k: &Matrix<T>) -> Result<usize> {
    let (n, m) = k.shape();
    if n != m {
        return Err(Error::Shape(format!(
            "a training Gram matrix must be square, got {n} x {m}"
        )));
    }
    if n == 0 {
        return Err(Error::Empty("Gram matrix has no rows".into()));
    }
    Ok(n)
}

/// k(x_i, x_i) for every row of `x`, computed in f64 from the squared norms.
pub fn self_similarities<T: Real>(x: MatRef<'_, T>, kernel: &Kernel) -> Result<Vec<f64>> {
    let rows = super::input::rows_of(x, "X")?;
    let kernel = kernel.resolve(rows.d)?;
    Ok(rows
        .data
        .chunks_exact(rows.d)
        .map(|r| kernel.self_similarity(r.iter().map(|v| v.to_f64() * v.to_f64()).sum()))
        .collect())
}

/// Computes K(X, X) and normalises it; returns the matrix and its statistics.
pub fn normalized_gram<T: Real>(
    x: MatRef<'_, T>,
    kernel: &Kernel,
    how: Normalization,
    opts: &GramOptions,
) -> Result<(Matrix<T>, TrainStats)> {
    let mut k = super::gram(x, kernel, opts)?;
    let stats = TrainStats::from_gram(&k, how)?;
    stats.apply_train(&mut k)?;
    Ok((k, stats))
}
