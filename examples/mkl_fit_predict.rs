//! p-norm multiple kernel learning from another Rust program: per-modality data, kernels built
//! and normalised by the data-driven form, a 2-norm MKL classifier, its weights, and prediction
//! from test data. Run: `cargo run --release --example mkl_fit_predict`.

use mmfuse::gram::{GramOptions, Kernel, Normalization};
use mmfuse::mkl::{DataKernel, MklModel, MklOptions};
use mmfuse::util::SplitMix64;
use mmfuse::Matrix;

/// n samples: the label shifts the first feature of the "strong" modality; "noise" is noise.
fn data(n: usize, seed: u64) -> mmfuse::Result<(Matrix<f64>, Matrix<f64>, Vec<f64>)> {
    let mut rng = SplitMix64::new(seed);
    let labels: Vec<f64> = (0..n).map(|i| if i % 3 == 0 { 7.0 } else { 3.0 }).collect();
    let strong = Matrix::from_vec(
        n,
        5,
        (0..n * 5)
            .map(|k| {
                rng.next_f64() - 0.5
                    + if k % 5 == 0 && labels[k / 5] == 7.0 {
                        0.8
                    } else {
                        0.0
                    }
            })
            .collect(),
    )?;
    let noise = Matrix::from_vec(n, 20, (0..n * 20).map(|_| rng.next_f64()).collect())?;
    Ok((strong, noise, labels))
}

fn main() -> mmfuse::Result<()> {
    let (strong, noise, labels) = data(300, 1)?;
    let (strong_test, noise_test, labels_test) = data(100, 2)?;
    let opts = GramOptions::default();

    // One kernel per modality, trace-normalised; the statistics travel with the model.
    let (dk_strong, k_strong) = DataKernel::new(
        "strong",
        strong,
        &Kernel::rbf(0.5),
        Normalization::Trace,
        &opts,
    )?;
    let (dk_noise, k_noise) =
        DataKernel::new("noise", noise, &"rbf".parse()?, Normalization::Trace, &opts)?;

    let mkl = MklOptions {
        p: 2.0,
        c: 1.0,
        ..MklOptions::default()
    };
    let model = MklModel::fit_classifier(&[&k_strong, &k_noise], &labels, &mkl)?
        .with_data(vec![dk_strong, dk_noise])?;
    let fit = &model.fits[0];
    println!(
        "beta {:.4?} (shares {:.3?}), gap {:.1e}, converged {}, {} support vectors",
        fit.beta, fit.beta_shares, fit.gap, fit.converged, fit.n_support
    );

    // Prediction from test data, by modality name (any order).
    let predicted = model.predict_from_data(
        &[
            ("noise", noise_test.as_mat_ref()),
            ("strong", strong_test.as_mat_ref()),
        ],
        &opts,
    )?;
    let hits = predicted
        .iter()
        .zip(&labels_test)
        .filter(|(a, b)| a == b)
        .count();
    println!(
        "held-out accuracy {:.3} (labels are 3 and 7)",
        hits as f64 / labels_test.len() as f64
    );
    assert!(
        fit.beta[1] < fit.beta[0],
        "the noise modality should weigh less"
    );
    Ok(())
}
