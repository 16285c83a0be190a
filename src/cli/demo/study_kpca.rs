//! Step 3 of the demo: kernel PCA of each modality's kernel and of the MKL-combined kernel,
//! a scatter plot of the top two components coloured by class, and two separability scores:
//! Fisher's criterion on the two components and the kernel-target alignment.

use super::study_mkl::MklStudy;
use crate::cli::svg::{Chart, Mark, Series, BLUE, ORANGE};
use mmfuse::error::Result;
use mmfuse::gram::{combine, fisher_criterion, kernel_pca, kernel_target_alignment};
use mmfuse::matrix::Matrix;

/// One kernel's projection and scores.
pub(crate) struct KpcaResult {
    /// `visual`, `audio`, `text` or `combined`.
    pub name: String,
    /// The two leading eigenvalues of the centred kernel.
    pub eigenvalues: Vec<f64>,
    pub fisher: f64,
    pub alignment: f64,
    /// The scatter plot, as SVG text.
    pub svg: String,
}

fn scatter(name: &str, proj: &Matrix<f64>, y: &[f64]) -> String {
    let class = |c: f64| -> Vec<(f64, f64)> {
        (0..proj.nrows())
            .filter(|&i| y[i] == c)
            .map(|i| (proj.get(i, 0), proj.get(i, 1)))
            .collect()
    };
    Chart {
        title: format!("Kernel PCA: {name} kernel"),
        x_label: "component 1".into(),
        y_label: "component 2".into(),
        series: vec![
            Series {
                name: "class -1".into(),
                color: BLUE,
                mark: Mark::Points,
                points: class(-1.0),
            },
            Series {
                name: "class +1".into(),
                color: ORANGE,
                mark: Mark::Points,
                points: class(1.0),
            },
        ],
    }
    .to_svg()
}

/// Runs step 3 on the training kernels, with the combined kernel sum_m beta_m K_m for the
/// given weights.
pub(crate) fn run(mkl: &MklStudy, beta: &[f64], combined_label: &str) -> Result<Vec<KpcaResult>> {
    let combined = combine(&mkl.train_kernels.iter().collect::<Vec<_>>(), beta)?;
    let mut named: Vec<(String, &Matrix<f64>)> = mkl
        .modalities
        .iter()
        .zip(&mkl.train_kernels)
        .map(|(m, k)| (m.name.to_string(), k))
        .collect();
    named.push((combined_label.to_string(), &combined));
    named
        .into_iter()
        .map(|(name, k)| {
            let pca = kernel_pca(k, 2)?;
            Ok(KpcaResult {
                fisher: fisher_criterion(&pca.projections, &mkl.y_train)?,
                alignment: kernel_target_alignment(k, &mkl.y_train)?,
                svg: scatter(&name, &pca.projections, &mkl.y_train),
                eigenvalues: pca.eigenvalues,
                name,
            })
        })
        .collect()
}
