//! The LMF parameters ([`LmfModel`]), their two layouts, and the checks on inputs.

use super::init::{xavier_std, Normal};
use crate::error::{Error, Result};
use crate::matrix::Matrix;
use crate::scalar::Real;
use faer::MatRef;
use std::borrow::Cow;

/// A low-rank multimodal fusion layer (docs/design.md section 4):
/// `y = sum_i w_i prod_m ([1, x_m] W_m[i]) + c`.
///
/// Parameters, for modalities `m = 0..M` (in a fixed order, each with a name and a feature size
/// `d_m`), rank `r` and output size `h`:
/// - factor `W_m`, logically of shape `(r, d_m + 1, h)` as in the PyTorch reference (index 0 of
///   the middle axis multiplies the constant 1 prepended to the input). It is stored in the GEMM
///   layout: a `(d_m + 1) x (r h)` row-major [`Matrix`] whose element `(row, i h + k)` is the
///   reference's `W_m[i][row][k]` ([`LmfModel::factor`]; [`LmfModel::factor_torch_layout`] and
///   [`gemm_to_torch_layout`] give the reference layout).
/// - fusion weights `w` (`r`), bias `c` (`h`).
///
/// Inputs are `N x d_m` matrices, one per modality, in the model's order ([`LmfModel::forward`])
/// or by name ([`LmfModel::forward_named`]).
#[derive(Clone, Debug, PartialEq)]
pub struct LmfModel<T: Real> {
    pub(crate) names: Vec<String>,
    pub(crate) dims: Vec<usize>,
    pub(crate) rank: usize,
    pub(crate) out_dim: usize,
    /// GEMM layout, `(d_m + 1) x (r h)`.
    pub(crate) factors: Vec<Matrix<T>>,
    pub(crate) fusion_weights: Vec<T>,
    pub(crate) bias: Vec<T>,
}

/// Converts a factor from the GEMM layout (`(d + 1) x (rank h)` row-major, as [`LmfModel::factor`]
/// stores it) to the PyTorch reference layout (`(rank, d + 1, h)`, C order).
pub fn gemm_to_torch_layout<T: Copy>(
    gemm: &Matrix<T>,
    rank: usize,
    out_dim: usize,
) -> Result<Vec<T>> {
    let (d1, rh) = gemm.shape();
    if rank == 0 || out_dim == 0 || rh != rank * out_dim {
        return Err(Error::Shape(format!(
            "a {d1} x {rh} factor is not in the layout (d + 1) x (rank {rank} * out_dim {out_dim})"
        )));
    }
    let src = gemm.as_slice();
    let mut out = Vec::with_capacity(src.len());
    for i in 0..rank {
        for row in 0..d1 {
            let start = row * rh + i * out_dim;
            out.extend_from_slice(&src[start..start + out_dim]);
        }
    }
    Ok(out)
}

/// Converts a factor from the PyTorch reference layout (`(rank, d + 1, h)`, C order) to the GEMM
/// layout (`(d + 1) x (rank h)`).
pub fn torch_to_gemm_layout<T: Copy + Default>(
    torch: &[T],
    rank: usize,
    d_plus_1: usize,
    out_dim: usize,
) -> Result<Matrix<T>> {
    let expected = rank
        .checked_mul(d_plus_1)
        .and_then(|v| v.checked_mul(out_dim));
    if expected != Some(torch.len()) {
        return Err(Error::Shape(format!(
            "a factor of {} values cannot have shape ({rank}, {d_plus_1}, {out_dim})",
            torch.len()
        )));
    }
    let rh = rank * out_dim;
    let mut out = vec![T::default(); torch.len()];
    for i in 0..rank {
        for row in 0..d_plus_1 {
            let src = (i * d_plus_1 + row) * out_dim;
            let dst = row * rh + i * out_dim;
            out[dst..dst + out_dim].copy_from_slice(&torch[src..src + out_dim]);
        }
    }
    Matrix::from_vec(d_plus_1, rh, out)
}

/// Checks modality names (non-empty, no comma since the weights file lists them comma-separated,
/// unique) and feature sizes (>= 1).
pub(crate) fn check_modalities(names: &[String], dims: &[usize]) -> Result<()> {
    if names.is_empty() {
        return Err(Error::param(
            "modalities",
            "at least one modality is needed",
        ));
    }
    for (i, (name, &d)) in names.iter().zip(dims).enumerate() {
        if name.is_empty() {
            return Err(Error::param(
                "modalities",
                format!("modality {i} has an empty name"),
            ));
        }
        if name.contains(',') {
            return Err(Error::param(
                "modalities",
                format!(
                    "modality name `{name}` contains a comma (names are stored comma-separated)"
                ),
            ));
        }
        if names[..i].contains(name) {
            return Err(Error::param(
                "modalities",
                format!("modality `{name}` is given twice"),
            ));
        }
        if d == 0 {
            return Err(Error::param(
                "modalities",
                format!("modality `{name}` has 0 features; it needs at least 1"),
            ));
        }
    }
    Ok(())
}

fn check_sizes(rank: usize, out_dim: usize) -> Result<()> {
    if rank == 0 {
        return Err(Error::param("rank", "must be >= 1"));
    }
    if out_dim == 0 {
        return Err(Error::param("out_dim", "must be >= 1"));
    }
    checked_count::<f32>(&[rank, out_dim], "rank x out_dim").map(|_| ())
}

/// Errors on the first non-finite value of `data` (row-major, `ncols` columns).
pub(crate) fn check_finite_slice<T: Real>(data: &[T], ncols: usize, what: &str) -> Result<()> {
    // `x - x` is 0 for a finite x and NaN otherwise: a branch-free pass the compiler vectorises
    // (an early-exit scan costs about 1 ns per value, 3% of a forward pass at batch 4096); the
    // position is looked for only when there is something to report.
    let all_finite = data
        .chunks(256)
        .all(|c| c.iter().fold(true, |ok, &v| ok & is_finite_fast(v)));
    if all_finite {
        return Ok(());
    }
    if let Some(pos) = data.iter().position(|v| !v.to_f64().is_finite()) {
        return Err(Error::NonFinite {
            what: what.to_string(),
            row: pos / ncols.max(1),
            col: pos % ncols.max(1),
            value: format!("{}", data[pos]),
        });
    }
    Ok(())
}

/// Whether `x` is finite, without a branch or a conversion: `x - x` is 0 for a finite `x` and
/// NaN for an infinity or a NaN, so loops of it vectorise (unlike `to_f64().is_finite()`).
#[inline(always)]
#[allow(clippy::eq_op)]
pub(crate) fn is_finite_fast<T: Real>(x: T) -> bool {
    x - x == T::ZERO
}

/// The rows of a view, contiguous and row-major: borrowed when the view already is, else copied.
pub(crate) fn contiguous<'a, T: Real>(x: MatRef<'a, T>) -> Cow<'a, [T]> {
    let (n, d) = (x.nrows(), x.ncols());
    if n == 0 || d == 0 {
        return Cow::Borrowed(&[]);
    }
    if x.col_stride() == 1 && (n == 1 || x.row_stride() == d as isize) {
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
    }
}

impl<T: Real> LmfModel<T> {
    /// A model with PyTorch's initialisation, deterministic for a seed: each factor
    /// `(r, d_m + 1, h)` Xavier-normal with `fan_in = (d_m + 1) h`, `fan_out = r h`; the fusion
    /// weights `(1, r)` Xavier-normal with `fan_in = r`, `fan_out = 1`; the bias 0. Samples are
    /// drawn in the order factors (model order, reference layout C order), then fusion weights,
    /// from one Box-Muller stream over SplitMix64(seed).
    ///
    /// `modalities` lists `(name, d_m)` in the order inputs will be given.
    ///
    /// ```
    /// let model = mmfuse::lmf::LmfModel::<f32>::new(&[("visual", 4), ("audio", 2)], 3, 2, 42)?;
    /// assert_eq!(model.factor(0)?.shape(), (5, 6)); // (d + 1) x (r h)
    /// assert_eq!(model.fusion_weights().len(), 3);
    /// assert!(model.bias().iter().all(|&b| b == 0.0));
    /// # Ok::<(), mmfuse::Error>(())
    /// ```
    pub fn new<S: AsRef<str>>(
        modalities: &[(S, usize)],
        rank: usize,
        out_dim: usize,
        seed: u64,
    ) -> Result<Self> {
        let names: Vec<String> = modalities
            .iter()
            .map(|(n, _)| n.as_ref().to_string())
            .collect();
        let dims: Vec<usize> = modalities.iter().map(|&(_, d)| d).collect();
        check_modalities(&names, &dims)?;
        check_sizes(rank, out_dim)?;
        let mut normal = Normal::new(seed);
        let mut factors = Vec::with_capacity(dims.len());
        for &d in &dims {
            let shape = [rank, d.saturating_add(1), out_dim];
            // Checked first, so that the fan products below cannot overflow.
            let count = checked_count::<T>(&shape, "factor")?;
            let std = xavier_std(&shape);
            let torch: Vec<T> = (0..count)
                .map(|_| T::from_f64(std * normal.sample()))
                .collect();
            factors.push(torch_to_gemm_layout(&torch, rank, d + 1, out_dim)?);
        }
        let std = xavier_std(&[1, rank]);
        let fusion_weights = (0..rank)
            .map(|_| T::from_f64(std * normal.sample()))
            .collect();
        Ok(LmfModel {
            names,
            dims,
            rank,
            out_dim,
            factors,
            fusion_weights,
            bias: vec![T::ZERO; out_dim],
        })
    }

    /// A model from given parameters: `factors[m]` in the GEMM layout (`(d_m + 1) x (r h)`, see
    /// [`LmfModel`]), `fusion_weights` (`r`), `bias` (`h`). Every value must be finite.
    pub fn from_parts<S: AsRef<str>>(
        names: &[S],
        rank: usize,
        out_dim: usize,
        factors: Vec<Matrix<T>>,
        fusion_weights: Vec<T>,
        bias: Vec<T>,
    ) -> Result<Self> {
        let names: Vec<String> = names.iter().map(|n| n.as_ref().to_string()).collect();
        check_sizes(rank, out_dim)?;
        if factors.len() != names.len() {
            return Err(Error::Shape(format!(
                "{} modality names but {} factors",
                names.len(),
                factors.len()
            )));
        }
        let rh = rank * out_dim;
        let mut dims = Vec::with_capacity(names.len());
        for (name, f) in names.iter().zip(&factors) {
            let (d1, cols) = f.shape();
            if cols != rh || d1 < 2 {
                return Err(Error::Shape(format!(
                    "factor of `{name}` is {d1} x {cols}; expected (d + 1) x {rh} with d >= 1 \
                     (rank {rank} * out_dim {out_dim})"
                )));
            }
            dims.push(d1 - 1);
        }
        check_modalities(&names, &dims)?;
        if fusion_weights.len() != rank {
            return Err(Error::Shape(format!(
                "{} fusion weights for rank {rank}",
                fusion_weights.len()
            )));
        }
        if bias.len() != out_dim {
            return Err(Error::Shape(format!(
                "bias of length {} for out_dim {out_dim}",
                bias.len()
            )));
        }
        for (name, f) in names.iter().zip(&factors) {
            check_finite_slice(
                f.as_slice(),
                rh,
                &format!("factor of `{name}` (GEMM layout)"),
            )?;
        }
        check_finite_slice(&fusion_weights, rank, "fusion weights")?;
        check_finite_slice(&bias, out_dim, "bias")?;
        Ok(LmfModel {
            names,
            dims,
            rank,
            out_dim,
            factors,
            fusion_weights,
            bias,
        })
    }

    /// Modality names, in the model's order.
    pub fn modalities(&self) -> &[String] {
        &self.names
    }

    /// Feature size `d_m` of each modality, in the model's order.
    pub fn dims(&self) -> &[usize] {
        &self.dims
    }

    /// Rank `r`.
    pub fn rank(&self) -> usize {
        self.rank
    }

    /// Output size `h`.
    pub fn out_dim(&self) -> usize {
        self.out_dim
    }

    /// Number of trainable values: `sum_m (d_m + 1) r h + r + h`.
    pub fn num_params(&self) -> usize {
        self.factors
            .iter()
            .map(|f| f.as_slice().len())
            .sum::<usize>()
            + self.rank
            + self.out_dim
    }

    /// Position of a modality in the model's order.
    pub fn modality_index(&self, name: &str) -> Result<usize> {
        self.names.iter().position(|n| n == name).ok_or_else(|| {
            Error::param(
                "modality",
                format!(
                    "unknown modality `{name}` (the model has {})",
                    self.names.join(", ")
                ),
            )
        })
    }

    /// Factor `m` in the GEMM layout: `(d_m + 1) x (r h)`, element `(row, i h + k)` is
    /// `W_m[i][row][k]`.
    pub fn factor(&self, m: usize) -> Result<&Matrix<T>> {
        self.factors.get(m).ok_or_else(|| self.no_modality(m))
    }

    /// Factor `m` in the PyTorch reference layout `(r, d_m + 1, h)`, C order.
    pub fn factor_torch_layout(&self, m: usize) -> Result<Vec<T>> {
        gemm_to_torch_layout(self.factor(m)?, self.rank, self.out_dim)
    }

    /// Fusion weights `w` (`r`).
    pub fn fusion_weights(&self) -> &[T] {
        &self.fusion_weights
    }

    /// Bias `c` (`h`).
    pub fn bias(&self) -> &[T] {
        &self.bias
    }

    /// The same model in another element type (f64 -> f32 rounds each value).
    pub fn cast<U: Real>(&self) -> LmfModel<U> {
        let conv = |v: &[T]| {
            v.iter()
                .map(|x| U::from_f64(x.to_f64()))
                .collect::<Vec<U>>()
        };
        LmfModel {
            names: self.names.clone(),
            dims: self.dims.clone(),
            rank: self.rank,
            out_dim: self.out_dim,
            factors: self
                .factors
                .iter()
                .map(|f| f.map(|x| U::from_f64(x.to_f64())))
                .collect(),
            fusion_weights: conv(&self.fusion_weights),
            bias: conv(&self.bias),
        }
    }

    fn no_modality(&self, m: usize) -> Error {
        Error::param(
            "modality",
            format!(
                "index {m} is out of range (the model has {} modalities)",
                self.names.len()
            ),
        )
    }

    /// Orders inputs given by name into the model's order. Every modality must be given exactly
    /// once; unknown names are refused.
    pub fn order_inputs<'a>(&self, named: &[(&str, MatRef<'a, T>)]) -> Result<Vec<MatRef<'a, T>>> {
        order_by_name(&self.names, named)
    }

    /// Checks inputs in the model's order (count, feature sizes, equal row counts, at least one
    /// row, finite values) and returns their rows contiguously with the row count.
    pub(crate) fn check_inputs<'a>(
        &self,
        xs: &[MatRef<'a, T>],
    ) -> Result<(Vec<Cow<'a, [T]>>, usize)> {
        check_inputs(&self.names, &self.dims, xs)
    }

    /// Checks a matrix that must be `n x h` and finite (targets, output gradients), returning its
    /// rows contiguously.
    pub(crate) fn check_output_like<'a>(
        &self,
        y: MatRef<'a, T>,
        n: usize,
        what: &str,
    ) -> Result<Cow<'a, [T]>> {
        if y.nrows() != n || y.ncols() != self.out_dim {
            return Err(Error::Shape(format!(
                "{what} is {} x {}; expected {n} x {} (rows of the inputs x out_dim)",
                y.nrows(),
                y.ncols(),
                self.out_dim
            )));
        }
        let data = contiguous(y);
        check_finite_slice(&data, self.out_dim, what)?;
        Ok(data)
    }
}

/// Number of elements of a tensor of `T`, refused (as [`Error::TooLarge`], naming the bytes)
/// when it overflows or when its bytes exceed the memory cap of [`crate::limits`], before
/// anything is allocated.
pub(crate) fn checked_count<T>(shape: &[usize], what: &str) -> Result<usize> {
    let elem = std::mem::size_of::<T>();
    let count = shape
        .iter()
        .try_fold(1usize, |acc, &s| acc.checked_mul(s))
        .filter(|&c| c <= isize::MAX as usize / elem.max(1));
    let Some(count) = count else {
        return Err(Error::TooLarge {
            what: format!("{what} of shape {shape:?}"),
            bytes: shape
                .iter()
                .fold(elem as u128, |acc, &s| acc.saturating_mul(s as u128)),
            limit: isize::MAX as u128,
        });
    };
    crate::limits::check_alloc::<T>(count, 1, &format!("{what} of shape {shape:?}"))?;
    Ok(count)
}

/// Orders inputs given by name into the model's order. Every modality must be given exactly
/// once; unknown names are refused.
pub(crate) fn order_by_name<'a, T: Real>(
    names: &[String],
    named: &[(&str, MatRef<'a, T>)],
) -> Result<Vec<MatRef<'a, T>>> {
    let mut slots: Vec<Option<MatRef<'a, T>>> = vec![None; names.len()];
    for (name, x) in named {
        let idx = names.iter().position(|n| n == name).ok_or_else(|| {
            Error::param(
                "inputs",
                format!(
                    "unknown modality `{name}` (the model has {})",
                    names.join(", ")
                ),
            )
        })?;
        if slots[idx].is_some() {
            return Err(Error::param(
                "inputs",
                format!("modality `{name}` is given twice"),
            ));
        }
        slots[idx] = Some(*x);
    }
    let missing: Vec<&str> = names
        .iter()
        .zip(&slots)
        .filter(|(_, s)| s.is_none())
        .map(|(n, _)| n.as_str())
        .collect();
    if !missing.is_empty() {
        return Err(Error::param(
            "inputs",
            format!(
                "missing modality {} (the model has {})",
                missing.join(", "),
                names.join(", ")
            ),
        ));
    }
    Ok(slots.into_iter().flatten().collect())
}

/// Checks inputs in the model's order (count, feature sizes, equal row counts, at least one
/// row, finite values) and returns their rows contiguously with the row count.
pub(crate) fn check_inputs<'a, T: Real>(
    names: &[String],
    dims: &[usize],
    xs: &[MatRef<'a, T>],
) -> Result<(Vec<Cow<'a, [T]>>, usize)> {
    let (rows, n) = check_input_shapes(names, dims, xs)?;
    check_inputs_finite(names, dims, &rows)?;
    Ok((rows, n))
}

/// [`check_inputs`] without the scan for non-finite values (for callers that find them
/// another way).
pub(crate) fn check_input_shapes<'a, T: Real>(
    names: &[String],
    dims: &[usize],
    xs: &[MatRef<'a, T>],
) -> Result<(Vec<Cow<'a, [T]>>, usize)> {
    if xs.len() != names.len() {
        return Err(Error::Shape(format!(
            "{} inputs given; the model has {} modalities ({})",
            xs.len(),
            names.len(),
            names.join(", ")
        )));
    }
    let n = xs[0].nrows();
    for ((x, name), &d) in xs.iter().zip(names).zip(dims) {
        if x.ncols() != d {
            return Err(Error::Shape(format!(
                "input `{name}` has {} features but the model expects {d}",
                x.ncols()
            )));
        }
        if x.nrows() != n {
            return Err(Error::Shape(format!(
                "row counts differ: `{}` has {n} rows, `{name}` has {}",
                names[0],
                x.nrows()
            )));
        }
    }
    if n == 0 {
        return Err(Error::Empty("the inputs have no rows".into()));
    }
    let rows = xs.iter().map(|x| contiguous(*x)).collect();
    Ok((rows, n))
}

/// Errors on the first non-finite value of checked inputs (see [`check_input_shapes`]).
pub(crate) fn check_inputs_finite<T: Real>(
    names: &[String],
    dims: &[usize],
    rows: &[Cow<'_, [T]>],
) -> Result<()> {
    for ((data, name), &d) in rows.iter().zip(names).zip(dims) {
        check_finite_slice(data, d, &format!("input `{name}`"))?;
    }
    Ok(())
}
