//! Classifiers and regressors on top of [`fit`]: labels given as any distinct values (mapped to
//! -1 / +1 for the hinge loss and back), one-vs-rest for more than two classes (one beta per
//! class), regression with the squared loss.

use super::{fit, fit_with_progress, DataKernel, Loss, MklFit, MklOptions};
use crate::error::{Error, Result};
use crate::gram::GramOptions;
use crate::matrix::Matrix;
use faer::MatRef;

/// A trained MKL model.
#[derive(Clone, Debug, PartialEq)]
pub struct MklModel {
    /// Options it was trained with.
    pub options: MklOptions,
    /// Class values, sorted (classification); empty for regression.
    pub classes: Vec<f64>,
    /// One fit for two classes or regression (the positive class is `classes[1]`), one per
    /// class (that class against the rest) for more than two.
    pub fits: Vec<MklFit>,
    /// The data-driven form: one entry per kernel (same order), with the training data, the
    /// kernel and its normalisation, so that prediction can start from test data
    /// ([`MklModel::predict_from_data`]). Empty when trained on precomputed kernels.
    pub data: Vec<DataKernel>,
}

impl MklModel {
    /// Trains a classifier (hinge loss; `options.loss` is ignored) on labels of any two or more
    /// distinct finite values.
    pub fn fit_classifier(
        kernels: &[&Matrix<f64>],
        labels: &[f64],
        options: &MklOptions,
    ) -> Result<Self> {
        Self::fit_classifier_with_progress(kernels, labels, options, &mut |_, _, _| {})
    }

    /// [`MklModel::fit_classifier`], calling `progress(iteration, gap, beta)` after every
    /// outer iteration of every binary problem.
    pub fn fit_classifier_with_progress(
        kernels: &[&Matrix<f64>],
        labels: &[f64],
        options: &MklOptions,
        progress: &mut dyn FnMut(usize, f64, &[f64]),
    ) -> Result<Self> {
        if let Some(i) = labels.iter().position(|v| !v.is_finite()) {
            return Err(Error::NonFinite {
                what: "labels".into(),
                row: i,
                col: 0,
                value: format!("{}", labels[i]),
            });
        }
        let mut classes = labels.to_vec();
        classes.sort_by(|a, b| a.total_cmp(b));
        classes.dedup();
        if classes.len() < 2 {
            return Err(Error::param(
                "labels",
                format!("need at least two classes, found {}", classes.len()),
            ));
        }
        let opts = MklOptions {
            loss: Loss::Hinge,
            ..options.clone()
        };
        let positives: Vec<f64> = if classes.len() == 2 {
            vec![classes[1]]
        } else {
            classes.clone()
        };
        let fits = positives
            .iter()
            .map(|&pos| {
                let y: Vec<f64> = labels
                    .iter()
                    .map(|&l| if l == pos { 1.0 } else { -1.0 })
                    .collect();
                fit_with_progress(kernels, &y, &opts, progress)
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(MklModel {
            options: opts,
            classes,
            fits,
            data: Vec::new(),
        })
    }

    /// Trains a regressor (squared loss; `options.loss` is ignored).
    pub fn fit_regressor(
        kernels: &[&Matrix<f64>],
        targets: &[f64],
        options: &MklOptions,
    ) -> Result<Self> {
        let opts = MklOptions {
            loss: Loss::Squared,
            ..options.clone()
        };
        let f = fit(kernels, targets, &opts)?;
        Ok(MklModel {
            options: opts,
            classes: Vec::new(),
            fits: vec![f],
            data: Vec::new(),
        })
    }

    /// Attaches the data-driven modalities the training kernels were built from (same order),
    /// so that the model predicts from test data.
    pub fn with_data(mut self, data: Vec<DataKernel>) -> Result<Self> {
        let nk = self.fits.first().map_or(0, |f| f.beta.len());
        let n = self.fits.first().map_or(0, |f| f.coef.len());
        if data.len() != nk {
            return Err(Error::Shape(format!(
                "{} modalities for a model of {nk} kernels",
                data.len()
            )));
        }
        for d in &data {
            if d.train.nrows() != n {
                return Err(Error::Shape(format!(
                    "modality `{}` has {} training rows, the model {n}",
                    d.name,
                    d.train.nrows()
                )));
            }
        }
        self.data = data;
        Ok(self)
    }

    /// The normalised test kernels K_m(X_test, X_train) for test data given by modality name
    /// (any order; every modality of the model exactly once).
    pub fn test_kernels(
        &self,
        test: &[(&str, MatRef<'_, f64>)],
        opts: &GramOptions,
    ) -> Result<Vec<Matrix<f64>>> {
        if self.data.is_empty() {
            return Err(Error::param(
                "data",
                "this model was trained on precomputed kernels; give test kernels instead",
            ));
        }
        for (name, _) in test {
            if !self.data.iter().any(|d| d.name == *name) {
                return Err(Error::param(
                    "data",
                    format!("the model has no modality `{name}`"),
                ));
            }
        }
        let mut n_test = None;
        self.data
            .iter()
            .map(|d| {
                let mut found = test.iter().filter(|(name, _)| *name == d.name);
                let (_, x) = found.next().ok_or_else(|| {
                    Error::param(
                        "data",
                        format!("test data for modality `{}` is missing", d.name),
                    )
                })?;
                if found.next().is_some() {
                    return Err(Error::param(
                        "data",
                        format!("modality `{}` given twice", d.name),
                    ));
                }
                if *n_test.get_or_insert(x.nrows()) != x.nrows() {
                    return Err(Error::Shape(format!(
                        "test data of modality `{}` has {} rows, the others {}",
                        d.name,
                        x.nrows(),
                        n_test.unwrap_or(0)
                    )));
                }
                d.test_kernel(*x, opts)
            })
            .collect()
    }

    /// [`MklModel::decision_function`] from test data (see [`MklModel::test_kernels`]).
    pub fn decision_function_from_data(
        &self,
        test: &[(&str, MatRef<'_, f64>)],
        opts: &GramOptions,
    ) -> Result<Vec<Vec<f64>>> {
        let ks = self.test_kernels(test, opts)?;
        self.decision_function(&ks.iter().collect::<Vec<_>>())
    }

    /// [`MklModel::predict`] from test data (see [`MklModel::test_kernels`]).
    pub fn predict_from_data(
        &self,
        test: &[(&str, MatRef<'_, f64>)],
        opts: &GramOptions,
    ) -> Result<Vec<f64>> {
        let ks = self.test_kernels(test, opts)?;
        self.predict(&ks.iter().collect::<Vec<_>>())
    }

    /// Decision values: one column per fit (n_test rows), from test kernels K_m(X_test, X_train).
    pub fn decision_function(&self, test_kernels: &[&Matrix<f64>]) -> Result<Vec<Vec<f64>>> {
        self.fits
            .iter()
            .map(|f| f.decision_function(test_kernels))
            .collect()
    }

    /// Predicted labels (classification: the class of the largest decision value, or the sign
    /// for two classes) or values (regression).
    pub fn predict(&self, test_kernels: &[&Matrix<f64>]) -> Result<Vec<f64>> {
        let scores = self.decision_function(test_kernels)?;
        if self.classes.is_empty() {
            return Ok(scores.into_iter().next().unwrap_or_default());
        }
        if self.classes.len() == 2 {
            return Ok(scores[0]
                .iter()
                .map(|&s| {
                    if s >= 0.0 {
                        self.classes[1]
                    } else {
                        self.classes[0]
                    }
                })
                .collect());
        }
        let n = scores[0].len();
        Ok((0..n)
            .map(|t| {
                let best = (0..scores.len())
                    .max_by(|&a, &b| scores[a][t].total_cmp(&scores[b][t]))
                    .unwrap_or(0);
                self.classes[best]
            })
            .collect())
    }
}
