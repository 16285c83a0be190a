//! Gram matrices as another Rust system would build them: two modalities, one kernel each,
//! trace-normalised with training statistics, combined with weights, and a test kernel
//! normalised the same way. Run: `cargo run --release --example gram_matrices`.

use mmfuse::gram::{
    combine, cross_gram, gram, kernel_target_alignment, median_heuristic_gamma, GramOptions,
    Kernel, Normalization, TrainStats,
};
use mmfuse::util::SplitMix64;
use mmfuse::Matrix;

fn random(rows: usize, cols: usize, rng: &mut SplitMix64) -> mmfuse::Result<Matrix<f32>> {
    Matrix::from_vec(
        rows,
        cols,
        (0..rows * cols)
            .map(|_| rng.next_f64() as f32 - 0.5)
            .collect(),
    )
}

fn main() -> mmfuse::Result<()> {
    let mut rng = SplitMix64::new(7);
    let (n_train, n_test) = (500, 100);
    let image = random(n_train, 64, &mut rng)?;
    let sound = random(n_train, 16, &mut rng)?;
    let image_test = random(n_test, 64, &mut rng)?;
    let labels: Vec<f64> = (0..n_train)
        .map(|i| if image.get(i, 0) > 0.0 { 1.0 } else { -1.0 })
        .collect();

    let opts = GramOptions::default(); // all cores; GramOptions::with_threads(1) for one
                                       // rbf with gamma from the median heuristic, and a degree-2 polynomial kernel.
    let rbf = Kernel::rbf(median_heuristic_gamma(image.as_mat_ref(), 1000)?);
    let poly: Kernel = "poly:degree=2,coef0=1".parse()?;

    let mut k_image = gram(image.as_mat_ref(), &rbf, &opts)?; // f32, exactly symmetric
    let image_stats = TrainStats::from_gram(&k_image, Normalization::Trace)?;
    image_stats.apply_train(&mut k_image)?;
    let mut k_sound = gram(sound.as_mat_ref(), &poly, &opts)?;
    TrainStats::from_gram(&k_sound, Normalization::Trace)?.apply_train(&mut k_sound)?;

    let combined = combine(&[&k_image, &k_sound], &[0.8, 0.2])?;
    println!(
        "K_image {:?}, K_sound {:?}, combined {:?}",
        k_image.shape(),
        k_sound.shape(),
        combined.shape()
    );
    let k64 = k_image.map(f64::from);
    println!(
        "alignment of the image kernel with the labels: {:+.4}",
        kernel_target_alignment(&k64, &labels)?
    );

    // A test kernel K(X_test, X_train), normalised with the training statistics.
    let mut k_test = cross_gram(image_test.as_mat_ref(), image.as_mat_ref(), &rbf, &opts)?;
    image_stats.apply_cross(&mut k_test, None)?;
    println!(
        "test kernel {:?}, first entry {:.5}",
        k_test.shape(),
        k_test.get(0, 0)
    );

    // Bad input is an error, never a panic.
    let err = gram(image.as_mat_ref(), &Kernel::rbf(-1.0), &opts).unwrap_err();
    println!("gamma = -1 is refused: {err}");
    Ok(())
}
