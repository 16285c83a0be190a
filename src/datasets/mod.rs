//! Data sets shipped with the library, and the helpers a study on them needs.
//!
//! - [`mfeat`]: the UCI Multiple Features data set (2,000 handwritten digits, six views),
//!   embedded in the library at compile time: no file is read and nothing is downloaded.
//! - [`MultiView`]: several views (feature matrices) of the same samples, with class labels;
//!   [`MultiView::stratified_split`] draws a seeded, per-class train/test split and
//!   [`MultiView::subset`] takes its rows.
//! - [`Standardizer`] / [`standardize`]: z-scores with the training set's statistics.
//!
//! ```
//! use mmfuse::datasets::{mfeat, standardize};
//!
//! let data = mfeat()?;
//! assert_eq!(data.n_samples(), 2000);
//! assert_eq!(data.n_classes, 10);
//! assert_eq!(data.view_names(), ["fou", "fac", "kar", "pix", "zer", "mor"]);
//! assert_eq!(data.view("fou").map(|m| m.shape()), Some((2000, 76)));
//! assert_eq!(data.view("pix").map(|m| m.shape()), Some((2000, 240)));
//! assert_eq!(data.view("mor").map(|m| m.shape()), Some((2000, 6)));
//! assert_eq!(data.labels[0], 0.0); // digits 0..9 in blocks of 200
//! assert_eq!(data.labels[1999], 9.0);
//!
//! // A stratified 70/30 split (140 + 60 samples of every digit), the same for the same seed.
//! let (train_idx, test_idx) = data.stratified_split(0.3, 42)?;
//! assert_eq!((train_idx.len(), test_idx.len()), (1400, 600));
//! let (train, test) = (data.subset(&train_idx)?, data.subset(&test_idx)?);
//!
//! // Each view z-scored with the training mean and standard deviation.
//! let fou_train = train.view("fou").expect("fou");
//! let fou_test = test.view("fou").expect("fou");
//! let (fou_train, fou_test) = standardize(fou_train, fou_test)?;
//! assert_eq!((fou_train.shape(), fou_test.shape()), ((1400, 76), (600, 76)));
//! # Ok::<(), mmfuse::Error>(())
//! ```

use std::path::Path;

use crate::error::{Error, Result};
use crate::io::npz::parse_npz_with_limit;
use crate::io::NpyArray;
use crate::matrix::Matrix;
use crate::util::SplitMix64;

/// The compressed archive `data/mfeat.npz` (made by `scripts/make_mfeat.py`; see
/// `data/README.md` for its source, licence and content).
static MFEAT_NPZ: &[u8] = include_bytes!("../../data/mfeat.npz");

/// How [`mfeat`]'s archive is named in error messages.
const MFEAT_ORIGIN: &str = "<embedded data/mfeat.npz>";

/// The views of [`mfeat`], in order, with their numbers of features.
pub const MFEAT_VIEWS: [(&str, usize); 6] = [
    ("fou", 76),
    ("fac", 216),
    ("kar", 64),
    ("pix", 240),
    ("zer", 47),
    ("mor", 6),
];

/// Samples in [`mfeat`].
pub const MFEAT_SAMPLES: usize = 2000;

/// Classes (digits) in [`mfeat`].
pub const MFEAT_CLASSES: usize = 10;

/// Bound on what decoding the embedded archive may decompress (it holds about 10.4 MB).
const MFEAT_LIMIT: u64 = 64 << 20;

/// Several views (feature matrices) of the same samples, with a class label per sample.
///
/// Row `i` of every view and `labels[i]` describe the same sample.
#[derive(Clone, Debug, PartialEq)]
pub struct MultiView {
    /// The views, named, each n samples x d features (row-major, f64).
    pub views: Vec<(String, Matrix<f64>)>,
    /// The class of each sample, as `0.0, 1.0, ..., (n_classes - 1) as f64`.
    pub labels: Vec<f64>,
    /// Number of classes; labels lie in `0..n_classes`.
    pub n_classes: usize,
}

impl MultiView {
    /// Checks that every view has one row per label, that every label is an integer in
    /// `0..n_classes`, and that view names are unique.
    pub fn new(
        views: Vec<(String, Matrix<f64>)>,
        labels: Vec<f64>,
        n_classes: usize,
    ) -> Result<Self> {
        for (k, (name, m)) in views.iter().enumerate() {
            if m.nrows() != labels.len() {
                return Err(Error::Shape(format!(
                    "view '{name}' has {} rows but there are {} labels",
                    m.nrows(),
                    labels.len()
                )));
            }
            if views[..k].iter().any(|(other, _)| other == name) {
                return Err(Error::param(
                    "views",
                    format!("the name '{name}' appears twice"),
                ));
            }
        }
        if let Some(i) = labels
            .iter()
            .position(|&l| !(l >= 0.0 && l.fract() == 0.0 && l < n_classes as f64))
        {
            return Err(Error::param(
                "labels",
                format!(
                    "label {} of sample {i} is not an integer in 0..{n_classes}",
                    labels[i]
                ),
            ));
        }
        Ok(MultiView {
            views,
            labels,
            n_classes,
        })
    }

    /// Number of samples.
    pub fn n_samples(&self) -> usize {
        self.labels.len()
    }

    /// The view called `name`, if there is one.
    pub fn view(&self, name: &str) -> Option<&Matrix<f64>> {
        self.views.iter().find(|(n, _)| n == name).map(|(_, m)| m)
    }

    /// The names of the views, in order.
    pub fn view_names(&self) -> Vec<&str> {
        self.views.iter().map(|(n, _)| n.as_str()).collect()
    }

    /// Number of samples of each class (index = class).
    pub fn class_counts(&self) -> Vec<usize> {
        let mut counts = vec![0; self.n_classes];
        for &l in &self.labels {
            // Labels are checked integers in 0..n_classes (see `new`); a hand-edited label
            // out of range is skipped rather than trusted.
            if let Some(c) = counts.get_mut(l as usize) {
                *c += 1;
            }
        }
        counts
    }

    /// A stratified train/test split: in every class, `round(test_fraction * n_class)` samples
    /// go to the test set and the others to the training set, chosen by a Fisher-Yates shuffle
    /// of that class's samples with [`SplitMix64`] seeded once with `seed` (classes in order
    /// 0, 1, ...). The same data, fraction and seed always give the same split.
    ///
    /// Returns `(train_idx, test_idx)`, each sorted in increasing order (so both follow the
    /// data's order; shuffle them yourself if an algorithm needs it). For [`mfeat`] and a
    /// fraction of 0.3: 140 + 60 samples per class, 1400 + 600 in all.
    ///
    /// Errors: `test_fraction` not in (0, 1), or a class that would get no training or no test
    /// sample.
    pub fn stratified_split(
        &self,
        test_fraction: f64,
        seed: u64,
    ) -> Result<(Vec<usize>, Vec<usize>)> {
        if !(test_fraction > 0.0 && test_fraction < 1.0) {
            return Err(Error::param(
                "test_fraction",
                format!("{test_fraction} is not in (0, 1)"),
            ));
        }
        let mut by_class: Vec<Vec<usize>> = vec![Vec::new(); self.n_classes];
        for (i, &l) in self.labels.iter().enumerate() {
            match by_class.get_mut(l as usize) {
                Some(members) if l >= 0.0 && l.fract() == 0.0 => members.push(i),
                _ => {
                    return Err(Error::param(
                        "labels",
                        format!(
                            "label {l} of sample {i} is not an integer in 0..{}",
                            self.n_classes
                        ),
                    ))
                }
            }
        }
        let mut rng = SplitMix64::new(seed);
        let mut train = Vec::with_capacity(self.n_samples());
        let mut test = Vec::new();
        for (class, mut members) in by_class.into_iter().enumerate() {
            let n = members.len();
            let n_test = (test_fraction * n as f64).round() as usize;
            if n_test == 0 || n_test >= n {
                return Err(Error::param(
                    "test_fraction",
                    format!(
                        "{test_fraction} of the {n} samples of class {class} leaves \
                         {n_test} for testing and {} for training; both need at least one",
                        n.saturating_sub(n_test)
                    ),
                ));
            }
            for i in (1..n).rev() {
                members.swap(i, below(&mut rng, i + 1));
            }
            test.extend_from_slice(&members[..n_test]);
            train.extend_from_slice(&members[n_test..]);
        }
        train.sort_unstable();
        test.sort_unstable();
        Ok((train, test))
    }

    /// The samples `idx` (in that order, repeats allowed) of every view, with their labels.
    ///
    /// Errors: an index out of range.
    pub fn subset(&self, idx: &[usize]) -> Result<MultiView> {
        let n = self.n_samples();
        if let Some(&bad) = idx.iter().find(|&&i| i >= n) {
            return Err(Error::param(
                "idx",
                format!("sample index {bad} is out of range (there are {n} samples)"),
            ));
        }
        let views = self
            .views
            .iter()
            .map(|(name, m)| Ok((name.clone(), select_rows(m, idx)?)))
            .collect::<Result<Vec<_>>>()?;
        Ok(MultiView {
            views,
            labels: idx.iter().map(|&i| self.labels[i]).collect(),
            n_classes: self.n_classes,
        })
    }
}

/// Uniform in `0..n` (n >= 1), by Lemire's multiply-shift (bias below 2^-50 for n < 2^14).
fn below(rng: &mut SplitMix64, n: usize) -> usize {
    ((u128::from(rng.next_u64()) * n as u128) >> 64) as usize
}

/// The rows `idx` of `m` (checked by the caller).
fn select_rows(m: &Matrix<f64>, idx: &[usize]) -> Result<Matrix<f64>> {
    let d = m.ncols();
    let mut data = Vec::with_capacity(idx.len() * d);
    for &i in idx {
        data.extend_from_slice(m.row(i));
    }
    Matrix::from_vec(idx.len(), d, data)
}

/// The UCI Multiple Features data set (R. Duin; UCI Machine Learning Repository, CC BY 4.0):
/// 2,000 handwritten digits, 200 of each of 0-9, described by six views.
///
/// | view | features | content |
/// | --- | --- | --- |
/// | `fou` | 76 | Fourier coefficients of the character shapes |
/// | `fac` | 216 | profile correlations |
/// | `kar` | 64 | Karhunen-Loève coefficients |
/// | `pix` | 240 | pixel averages in 2 x 3 windows |
/// | `zer` | 47 | Zernike moments |
/// | `mor` | 6 | morphological features |
///
/// The views come in this order ([`MFEAT_VIEWS`]); samples in the original order, so the labels
/// are 0.0 for samples 0..200, 1.0 for 200..400, ..., 9.0 for 1800..2000. Values are the
/// published ones, unscaled (standardise them with [`standardize`] for an rbf kernel).
///
/// The data are embedded in the library at compile time (`data/mfeat.npz`, 2.7 MB, deflated;
/// `data/README.md` gives the attribution, the licence and how the file was made), so this
/// works from any directory and downloads nothing. Each call decodes the archive anew (about
/// 10 MB of f64, a few tens of milliseconds): keep the result rather than calling it in a loop.
///
/// ```
/// let data = mmfuse::datasets::mfeat()?;
/// for (name, d) in mmfuse::datasets::MFEAT_VIEWS {
///     assert_eq!(data.view(name).map(|m| m.shape()), Some((2000, d)));
/// }
/// assert!(data.class_counts().iter().all(|&c| c == 200));
/// # Ok::<(), mmfuse::Error>(())
/// ```
pub fn mfeat() -> Result<MultiView> {
    let origin = Path::new(MFEAT_ORIGIN);
    let mut arrays = parse_npz_with_limit(MFEAT_NPZ, origin, MFEAT_LIMIT)?;
    let format_error = |reason: String| Error::Format {
        path: origin.to_path_buf(),
        reason,
    };
    let mut take = |name: &str| -> Result<NpyArray> {
        let i = arrays
            .iter()
            .position(|(n, _)| n == name)
            .ok_or_else(|| format_error(format!("no array '{name}'")))?;
        Ok(arrays.swap_remove(i).1)
    };
    let mut views = Vec::with_capacity(MFEAT_VIEWS.len());
    for (name, d) in MFEAT_VIEWS {
        let array = take(name)?;
        if array.dtype_name() != "float64" || array.shape != [MFEAT_SAMPLES, d] {
            return Err(format_error(format!(
                "'{name}' is {} {:?}, expected float64 [{MFEAT_SAMPLES}, {d}]",
                array.dtype_name(),
                array.shape
            )));
        }
        views.push((name.to_string(), array.into_matrix::<f64>(name)?));
    }
    let labels = take("labels")?.into_vec_f64("labels")?;
    if labels.len() != MFEAT_SAMPLES {
        return Err(format_error(format!(
            "{} labels, expected {MFEAT_SAMPLES}",
            labels.len()
        )));
    }
    MultiView::new(views, labels, MFEAT_CLASSES)
}

/// Column statistics of a training matrix, for z-scores: `(x - mean) / std`.
///
/// `std` is the population standard deviation (divisor n, as scikit-learn's `StandardScaler`).
/// A column that is constant in the training data gets `std = 1`, so it is only centred (it is
/// 0 on the training rows and keeps its offset on test rows).
#[derive(Clone, Debug, PartialEq)]
pub struct Standardizer {
    /// Training mean of each column.
    pub mean: Vec<f64>,
    /// Training standard deviation of each column (1 for a constant column).
    pub std: Vec<f64>,
}

impl Standardizer {
    /// The statistics of `train`'s columns.
    ///
    /// Errors: no rows, or a non-finite value.
    pub fn fit(train: &Matrix<f64>) -> Result<Self> {
        let (n, d) = train.shape();
        if n == 0 {
            return Err(Error::Empty(
                "standardisation needs at least one training row".into(),
            ));
        }
        for i in 0..n {
            if let Some(j) = train.row(i).iter().position(|v| !v.is_finite()) {
                return Err(Error::NonFinite {
                    what: "the training matrix".into(),
                    row: i,
                    col: j,
                    value: format!("{}", train.get(i, j)),
                });
            }
        }
        let mut mean = vec![0.0; d];
        let mut lo = train.row(0).to_vec();
        let mut hi = lo.clone();
        for i in 0..n {
            for (j, &v) in train.row(i).iter().enumerate() {
                mean[j] += v;
                lo[j] = lo[j].min(v);
                hi[j] = hi[j].max(v);
            }
        }
        for m in &mut mean {
            *m /= n as f64;
        }
        let mut var = vec![0.0; d];
        for i in 0..n {
            for (j, &v) in train.row(i).iter().enumerate() {
                let e = v - mean[j];
                var[j] += e * e;
            }
        }
        let std = var
            .iter()
            .enumerate()
            .map(|(j, &s)| {
                // Exactly constant columns only: rounding in the mean would otherwise leave a
                // tiny non-zero deviation and blow the column up.
                if lo[j] == hi[j] || s == 0.0 {
                    1.0
                } else {
                    (s / n as f64).sqrt()
                }
            })
            .collect();
        Ok(Standardizer { mean, std })
    }

    /// Number of columns.
    pub fn ncols(&self) -> usize {
        self.mean.len()
    }

    /// Applies the z-score in place.
    ///
    /// Errors: a column count other than the training one.
    pub fn apply(&self, m: &mut Matrix<f64>) -> Result<()> {
        if m.ncols() != self.ncols() {
            return Err(Error::Shape(format!(
                "standardisation fitted on {} columns, applied to {}",
                self.ncols(),
                m.ncols()
            )));
        }
        let d = self.ncols();
        if d == 0 {
            return Ok(());
        }
        for row in m.as_mut_slice().chunks_exact_mut(d) {
            for ((v, mu), s) in row.iter_mut().zip(&self.mean).zip(&self.std) {
                *v = (*v - mu) / s;
            }
        }
        Ok(())
    }

    /// A z-scored copy of `m`.
    pub fn transform(&self, m: &Matrix<f64>) -> Result<Matrix<f64>> {
        let mut out = m.clone();
        self.apply(&mut out)?;
        Ok(out)
    }
}

/// Z-scores `train` and `test` column by column with the TRAINING mean and standard deviation
/// ([`Standardizer`]; a column constant in `train` is only centred). Returns the standardised
/// `(train, test)`.
///
/// ```
/// use mmfuse::datasets::standardize;
/// use mmfuse::Matrix;
///
/// let train = Matrix::from_vec(2, 2, vec![1.0, 5.0, 3.0, 5.0])?; // column 1 is constant
/// let test = Matrix::from_vec(1, 2, vec![2.0, 7.0])?;
/// let (tr, te) = standardize(&train, &test)?;
/// assert_eq!(tr.as_slice(), &[-1.0, 0.0, 1.0, 0.0]);
/// assert_eq!(te.as_slice(), &[0.0, 2.0]);
/// # Ok::<(), mmfuse::Error>(())
/// ```
pub fn standardize(train: &Matrix<f64>, test: &Matrix<f64>) -> Result<(Matrix<f64>, Matrix<f64>)> {
    let z = Standardizer::fit(train)?;
    Ok((z.transform(train)?, z.transform(test)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toy(labels: Vec<f64>, n_classes: usize) -> MultiView {
        let n = labels.len();
        let x = Matrix::from_vec(n, 2, (0..2 * n).map(|v| v as f64).collect()).unwrap();
        MultiView::new(vec![("x".into(), x)], labels, n_classes).unwrap()
    }

    #[test]
    fn new_checks_rows_labels_and_names() {
        let x = Matrix::from_vec(2, 1, vec![0.0, 1.0]).unwrap();
        assert!(matches!(
            MultiView::new(vec![("a".into(), x.clone())], vec![0.0], 2),
            Err(Error::Shape(_))
        ));
        for bad in [2.0, -1.0, 0.5, f64::NAN] {
            assert!(MultiView::new(vec![("a".into(), x.clone())], vec![0.0, bad], 2).is_err());
        }
        assert!(MultiView::new(
            vec![("a".into(), x.clone()), ("a".into(), x.clone())],
            vec![0.0, 1.0],
            2
        )
        .is_err());
    }

    #[test]
    fn split_rejects_bad_fractions_and_tiny_classes() {
        let data = toy(vec![0.0, 0.0, 0.0, 1.0, 1.0, 1.0], 2);
        for f in [0.0, 1.0, -0.1, 1.5, f64::NAN, f64::INFINITY] {
            assert!(data.stratified_split(f, 1).is_err(), "{f}");
        }
        // 0.1 of 3 rounds to no test sample.
        assert!(data.stratified_split(0.1, 1).is_err());
        // An empty class.
        assert!(toy(vec![0.0, 0.0, 0.0], 2)
            .stratified_split(0.5, 1)
            .is_err());
        let (tr, te) = data.stratified_split(0.34, 7).unwrap();
        assert_eq!((tr.len(), te.len()), (4, 2));
    }

    #[test]
    fn split_is_a_partition_and_varies_with_the_seed() {
        let data = toy((0..300).map(|i| (i % 3) as f64).collect(), 3);
        let (tr, te) = data.stratified_split(0.3, 5).unwrap();
        let mut all: Vec<usize> = tr.iter().chain(&te).copied().collect();
        all.sort_unstable();
        assert_eq!(all, (0..300).collect::<Vec<_>>());
        assert_eq!(te.len(), 90);
        assert_ne!(data.stratified_split(0.3, 6).unwrap().1, te);
    }

    #[test]
    fn subset_takes_rows_and_checks_indices() {
        let data = toy(vec![0.0, 1.0, 0.0], 2);
        let s = data.subset(&[2, 0, 2]).unwrap();
        assert_eq!(
            s.view("x").unwrap().as_slice(),
            &[4.0, 5.0, 0.0, 1.0, 4.0, 5.0]
        );
        assert_eq!(s.labels, vec![0.0, 0.0, 0.0]);
        assert!(data.subset(&[3]).is_err());
        assert!(data.subset(&[]).unwrap().views[0].1.shape() == (0, 2));
    }

    #[test]
    fn standardizer_statistics_and_errors() {
        let train = Matrix::from_vec(3, 2, vec![1.0, 0.1, 2.0, 0.1, 3.0, 0.1]).unwrap();
        let z = Standardizer::fit(&train).unwrap();
        assert_eq!(z.mean[0], 2.0);
        assert!((z.std[0] - (2.0f64 / 3.0).sqrt()).abs() < 1e-15);
        // (0.1 + 0.1 + 0.1) / 3 is not 0.1 exactly: the constant column still gets std 1, and
        // its z-scores stay tiny instead of becoming +-1.
        assert_ne!(z.mean[1], 0.1);
        assert_eq!(z.std[1], 1.0);
        let t = z.transform(&train).unwrap();
        assert!((0..3).all(|i| t.get(i, 1).abs() < 1e-15));
        let col0_mean: f64 = (0..3).map(|i| t.get(i, 0)).sum::<f64>() / 3.0;
        let col0_var: f64 = (0..3).map(|i| t.get(i, 0).powi(2)).sum::<f64>() / 3.0;
        assert!(col0_mean.abs() < 1e-15 && (col0_var - 1.0).abs() < 1e-14);
        assert!(matches!(
            z.transform(&Matrix::from_vec(1, 3, vec![0.0; 3]).unwrap()),
            Err(Error::Shape(_))
        ));
        let empty = Matrix::from_vec(0, 2, vec![]).unwrap();
        assert!(matches!(Standardizer::fit(&empty), Err(Error::Empty(_))));
        let nan = Matrix::from_vec(1, 1, vec![f64::NAN]).unwrap();
        assert!(matches!(
            Standardizer::fit(&nan),
            Err(Error::NonFinite { .. })
        ));
    }

    #[test]
    fn mfeat_decodes() {
        let data = mfeat().unwrap();
        assert_eq!(data.n_samples(), MFEAT_SAMPLES);
        assert_eq!(data.class_counts(), vec![200; MFEAT_CLASSES]);
    }
}
