//! Classifiers and regressors on top of [`fit`]: labels given as any distinct values (mapped to
//! -1 / +1 for the hinge loss and back), one-vs-rest for more than two classes (one beta per
//! class), regression with the squared loss.

use super::{fit, fit_with_progress, Loss, MklFit, MklOptions};
use crate::error::{Error, Result};
use crate::matrix::Matrix;

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
        })
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
