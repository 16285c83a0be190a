//! Classifiers and regressors on top of [`fit`]: labels given as any distinct values (mapped to
//! -1 / +1 for the hinge loss and back), one-vs-rest for more than two classes (one beta per
//! class), regression with the squared loss.

use super::{fit, fit_stoppable, BlockKernels, DataKernel, Loss, MklFit, MklOptions};
use crate::error::{Error, Result};
use crate::gram::GramOptions;
use crate::matrix::Matrix;
use faer::MatRef;
use std::sync::atomic::AtomicBool;

/// Test rows per block of [`MklModel::decision_function_from_data`].
pub const PREDICT_BLOCK: usize = 1024;

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
    /// ([`MklModel::predict_from_data`]). Empty when trained on precomputed kernels. With
    /// [`MklModel::blocks`], one entry per *modality* (its kernel not normalised: the blocks
    /// centre and scale it).
    pub data: Vec<DataKernel>,
    /// Interaction blocks: the kernels the fit weighs are block kernels built from the
    /// modality kernels (one weight per block). `None`: one weight per given kernel.
    pub blocks: Option<BlockKernels>,
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
        Self::fit_classifier_stoppable(kernels, labels, options, None, progress)
    }

    /// [`MklModel::fit_classifier_with_progress`] that stops within one SMO step once `cancel`
    /// is set, with `Error::Cancelled` (see [`super::fit_cancellable`]).
    pub fn fit_classifier_cancellable(
        kernels: &[&Matrix<f64>],
        labels: &[f64],
        options: &MklOptions,
        cancel: &AtomicBool,
        progress: &mut dyn FnMut(usize, f64, &[f64]),
    ) -> Result<Self> {
        Self::fit_classifier_stoppable(kernels, labels, options, Some(cancel), progress)
    }

    fn fit_classifier_stoppable(
        kernels: &[&Matrix<f64>],
        labels: &[f64],
        options: &MklOptions,
        cancel: Option<&AtomicBool>,
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
                fit_stoppable(kernels, &y, &opts, cancel, progress)
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(MklModel {
            options: opts,
            classes,
            fits,
            data: Vec::new(),
            blocks: None,
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
            blocks: None,
        })
    }

    /// Attaches the interaction blocks whose kernels the model was fitted on (same order as
    /// the kernels), so that it builds test block kernels from modality test kernels (call it
    /// before [`MklModel::with_data`]).
    pub fn with_blocks(mut self, blocks: BlockKernels) -> Result<Self> {
        let nk = self.fits.first().map_or(0, |f| f.beta.len());
        let n = self.fits.first().map_or(0, |f| f.coef.len());
        if blocks.blocks.len() != nk || blocks.scaling.len() != nk {
            return Err(Error::Shape(format!(
                "{} blocks for a model of {nk} kernels",
                blocks.blocks.len()
            )));
        }
        if blocks.centring.len() != blocks.modalities.len()
            || blocks.centring.iter().any(|c| c.col_means.len() != n)
        {
            return Err(Error::Shape(format!(
                "the blocks' centring statistics are not for {} modalities of {n} training points",
                blocks.modalities.len()
            )));
        }
        self.blocks = Some(blocks);
        Ok(self)
    }

    /// The names of what the weights are for: the blocks, else the data-driven modalities,
    /// else `kernel0`, `kernel1`, ...
    pub fn kernel_names(&self) -> Vec<String> {
        if let Some(b) = &self.blocks {
            return b.names().iter().map(|s| s.to_string()).collect();
        }
        if !self.data.is_empty() {
            return self.data.iter().map(|d| d.name.clone()).collect();
        }
        let nk = self.fits.first().map_or(0, |f| f.beta.len());
        (0..nk).map(|i| format!("kernel{i}")).collect()
    }

    /// Relevance of each block (or kernel): its weight share, averaged over the fits (one per
    /// class for one-vs-rest; the one fit otherwise), as (name, share) pairs summing to 1.
    pub fn relevance(&self) -> Vec<(String, f64)> {
        let nf = self.fits.len().max(1) as f64;
        self.kernel_names()
            .into_iter()
            .enumerate()
            .map(|(k, name)| {
                let s: f64 = self.fits.iter().map(|f| f.beta_shares[k]).sum();
                (name, s / nf)
            })
            .collect()
    }

    /// The kernels the fits weigh, for test kernels K_m(X_test, X_train) given per modality:
    /// the test block kernels when the model has blocks, else the given kernels unchanged.
    pub fn block_test_kernels(&self, test_kernels: &[&Matrix<f64>]) -> Result<Vec<Matrix<f64>>> {
        match &self.blocks {
            Some(b) => b.test_kernels(test_kernels),
            None => Ok(test_kernels.iter().map(|k| (*k).clone()).collect()),
        }
    }

    /// Attaches the data-driven modalities the training kernels were built from (same order),
    /// so that the model predicts from test data.
    pub fn with_data(mut self, data: Vec<DataKernel>) -> Result<Self> {
        let nk = match &self.blocks {
            Some(b) => b.modalities.len(),
            None => self.fits.first().map_or(0, |f| f.beta.len()),
        };
        let n = self.fits.first().map_or(0, |f| f.coef.len());
        if data.len() != nk {
            return Err(Error::Shape(format!(
                "{} modalities for a model of {nk} {}",
                data.len(),
                if self.blocks.is_some() {
                    "modalities"
                } else {
                    "kernels"
                }
            )));
        }
        if let Some(b) = &self.blocks {
            for (d, name) in data.iter().zip(&b.modalities) {
                if &d.name != name {
                    return Err(Error::Shape(format!(
                        "modality `{}` where the blocks expect `{name}`",
                        d.name
                    )));
                }
                if d.stats.kind != crate::gram::Normalization::None {
                    return Err(Error::param(
                        "normalize",
                        format!(
                            "modality `{}`: with interaction blocks the modality kernels are \
                             centred and trace-normalised by the blocks; build them with \
                             Normalization::None",
                            d.name
                        ),
                    ));
                }
            }
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

    /// The test kernels the fits weigh (normalised modality kernels K_m(X_test, X_train), or
    /// the test block kernels of a model with blocks) for test data given by modality name
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
        let per_modality = self
            .data
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
            .collect::<Result<Vec<_>>>()?;
        match &self.blocks {
            Some(b) => b.test_kernels(&per_modality.iter().collect::<Vec<_>>()),
            None => Ok(per_modality),
        }
    }

    /// [`MklModel::decision_function`] from test data (see [`MklModel::test_kernels`]), in
    /// blocks of [`PREDICT_BLOCK`] test rows: memory O(block x stored training rows) per
    /// kernel whatever the number of test points. Every normalisation of a test kernel row
    /// uses only that row and training statistics, so the blocks give exactly the values of
    /// one whole test kernel.
    pub fn decision_function_from_data(
        &self,
        test: &[(&str, MatRef<'_, f64>)],
        opts: &GramOptions,
    ) -> Result<Vec<Vec<f64>>> {
        let n_test = test.first().map_or(0, |(_, x)| x.nrows());
        if n_test <= PREDICT_BLOCK || test.iter().any(|(_, x)| x.nrows() != n_test) {
            // One block (or mismatched rows, which test_kernels reports).
            let ks = self.test_kernels(test, opts)?;
            return self.decision_function(&ks.iter().collect::<Vec<_>>());
        }
        let mut out = vec![Vec::with_capacity(n_test); self.fits.len()];
        for start in (0..n_test).step_by(PREDICT_BLOCK) {
            let rows = PREDICT_BLOCK.min(n_test - start);
            let part: Vec<(&str, MatRef<'_, f64>)> = test
                .iter()
                .map(|(name, x)| (*name, x.subrows(start, rows)))
                .collect();
            let ks = self.test_kernels(&part, opts)?;
            for (o, d) in out
                .iter_mut()
                .zip(self.decision_function(&ks.iter().collect::<Vec<_>>())?)
            {
                o.extend(d);
            }
        }
        Ok(out)
    }

    /// [`MklModel::predict`] from test data (see [`MklModel::decision_function_from_data`]).
    pub fn predict_from_data(
        &self,
        test: &[(&str, MatRef<'_, f64>)],
        opts: &GramOptions,
    ) -> Result<Vec<f64>> {
        let scores = self.decision_function_from_data(test, opts)?;
        Ok(self.labels_from_scores(scores))
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
        Ok(self.labels_from_scores(scores))
    }

    /// Labels (or regression values) from decision values, one column per fit.
    fn labels_from_scores(&self, scores: Vec<Vec<f64>>) -> Vec<f64> {
        if self.classes.is_empty() {
            return scores.into_iter().next().unwrap_or_default();
        }
        if self.classes.len() == 2 {
            return scores[0]
                .iter()
                .map(|&s| {
                    if s >= 0.0 {
                        self.classes[1]
                    } else {
                        self.classes[0]
                    }
                })
                .collect();
        }
        let n = scores[0].len();
        (0..n)
            .map(|t| {
                let best = (0..scores.len())
                    .max_by(|&a, &b| scores[a][t].total_cmp(&scores[b][t]))
                    .unwrap_or(0);
                self.classes[best]
            })
            .collect()
    }
}
