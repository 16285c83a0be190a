//! Step 2 of the demo: one rbf kernel per modality (gamma by the median heuristic on the
//! training split, trace-normalised), p-norm MKL for each requested p, and every modality
//! alone, scored on the held-out split.

use super::simulate::{pick, rows, Study};
use mmfuse::error::Result;
use mmfuse::gram::{
    kernel_target_alignment, median_heuristic_gamma, GramOptions, Kernel, Normalization,
};
use mmfuse::matrix::Matrix;
use mmfuse::mkl::{DataKernel, MklModel, MklOptions};
use std::time::Instant;

/// One modality's kernel and how it does alone.
pub(crate) struct ModalityResult {
    pub name: &'static str,
    pub role: &'static str,
    pub d: usize,
    pub gamma: f64,
    /// Kernel-target alignment of the (trace-normalised) training kernel.
    pub alignment: f64,
    /// Held-out accuracy of an SVM on this kernel alone.
    pub accuracy_alone: f64,
}

/// The MKL fit for one p.
pub(crate) struct PResult {
    pub p: f64,
    pub beta: Vec<f64>,
    pub shares: Vec<f64>,
    pub accuracy: f64,
    pub gap: f64,
    pub converged: bool,
    pub iterations: usize,
    pub seconds: f64,
}

/// Everything step 2 produces.
pub(crate) struct MklStudy {
    pub modalities: Vec<ModalityResult>,
    pub per_p: Vec<PResult>,
    /// The training kernels (trace-normalised), for kernel PCA.
    pub train_kernels: Vec<Matrix<f64>>,
    pub y_train: Vec<f64>,
}

fn accuracy(predicted: &[f64], truth: &[f64]) -> f64 {
    let hits = predicted.iter().zip(truth).filter(|(a, b)| a == b).count();
    hits as f64 / truth.len().max(1) as f64
}

/// Runs step 2; `tick` is called once per fit (for the progress bar).
pub(crate) fn run(study: &Study, ps: &[f64], tick: &mut dyn FnMut(&str)) -> Result<MklStudy> {
    let opts = GramOptions::default();
    let y_train = pick(&study.labels, &study.train);
    let y_test = pick(&study.labels, &study.test);
    let mut data = Vec::new();
    let mut train_kernels = Vec::new();
    let mut test_kernels = Vec::new();
    let mut modalities = Vec::new();
    for m in &study.modalities {
        let x_train = rows(&m.x, &study.train);
        let x_test = rows(&m.x, &study.test);
        let gamma = median_heuristic_gamma(x_train.as_mat_ref(), 1000)?;
        let (dk, k) = DataKernel::new(
            m.name,
            x_train,
            &Kernel::rbf(gamma),
            Normalization::Trace,
            &opts,
        )?;
        test_kernels.push(dk.test_kernel(x_test.as_mat_ref(), &opts)?);
        let alignment = kernel_target_alignment(&k, &y_train)?;
        let alone = MklModel::fit_classifier(
            &[&k],
            &y_train,
            &MklOptions {
                p: f64::INFINITY,
                ..MklOptions::default()
            },
        )?;
        let accuracy_alone = accuracy(
            &alone.predict(&[&test_kernels[test_kernels.len() - 1]])?,
            &y_test,
        );
        tick(&format!("{} alone", m.name));
        modalities.push(ModalityResult {
            name: m.name,
            role: m.role,
            d: m.x.ncols(),
            gamma,
            alignment,
            accuracy_alone,
        });
        data.push(dk);
        train_kernels.push(k);
    }
    let train_refs: Vec<&Matrix<f64>> = train_kernels.iter().collect();
    let test_refs: Vec<&Matrix<f64>> = test_kernels.iter().collect();
    let mut per_p = Vec::new();
    for &p in ps {
        let t = Instant::now();
        let model = MklModel::fit_classifier(
            &train_refs,
            &y_train,
            &MklOptions {
                p,
                c: 1.0,
                ..MklOptions::default()
            },
        )?;
        let seconds = t.elapsed().as_secs_f64();
        let fit = &model.fits[0];
        per_p.push(PResult {
            p,
            beta: fit.beta.clone(),
            shares: fit.beta_shares.clone(),
            accuracy: accuracy(&model.predict(&test_refs)?, &y_test),
            gap: fit.gap,
            converged: fit.converged,
            iterations: fit.iterations,
            seconds,
        });
        tick(&format!("MKL p = {}", mmfuse::mkl::p_label(p)));
    }
    Ok(MklStudy {
        modalities,
        per_p,
        train_kernels,
        y_train,
    })
}
