//! Low-rank multimodal fusion embedded in a Rust program: train on three modalities with Adam,
//! save the weights (safetensors, PyTorch layout), load them back and run the pre-scaled
//! inference path. Run: `cargo run --release --example lmf_train_infer`.

use mmfuse::lmf::{LmfModel, LmfOptions, Loss, TrainOptions};
use mmfuse::util::SplitMix64;
use mmfuse::Matrix;

fn main() -> mmfuse::Result<()> {
    let n = 512;
    let mut rng = SplitMix64::new(3);
    let mut draw = |cols: usize| -> mmfuse::Result<Matrix<f32>> {
        Matrix::from_vec(
            n,
            cols,
            (0..n * cols).map(|_| rng.next_f64() as f32 - 0.5).collect(),
        )
    };
    let (visual, audio, text) = (draw(16)?, draw(8)?, draw(32)?);
    // A target with a cross-modal product: what LMF's multiplicative form captures.
    let y: Vec<f32> = (0..n)
        .map(|i| {
            visual.get(i, 0) + 0.5 * audio.get(i, 1) + 2.0 * visual.get(i, 2) * audio.get(i, 3)
        })
        .collect();
    let target = Matrix::from_vec(n, 1, y)?;

    let mut model = LmfModel::<f32>::new(&[("visual", 16), ("audio", 8), ("text", 32)], 4, 1, 42)?;
    let opts = TrainOptions {
        epochs: 30,
        batch_size: 32,
        lr: 3e-3,
        loss: Loss::Mse,
        seed: 42,
        validation_fraction: 0.2,
        ..TrainOptions::default()
    };
    let inputs = [
        ("visual", visual.as_mat_ref()),
        ("audio", audio.as_mat_ref()),
        ("text", text.as_mat_ref()),
    ];
    let history = model.train_named(&inputs, target.as_mat_ref(), &opts, |r| {
        if r.epoch % 10 == 0 {
            println!(
                "epoch {:>2}: train {:.5}, validation {:.5}",
                r.epoch,
                r.train_loss,
                r.val_loss.unwrap_or(f64::NAN)
            );
        }
    })?;
    assert!(history.train_loss.last() < history.train_loss.first());

    let path =
        std::env::temp_dir().join(format!("mmfuse-example-{}.safetensors", std::process::id()));
    model.save_safetensors(&path)?;
    let loaded = LmfModel::<f32>::load_safetensors(&path, None)?;
    std::fs::remove_file(&path).ok();

    // Inference: fusion weights folded into the factors once.
    let fast = loaded.prescale();
    let y_hat = fast.forward_named(&inputs, &LmfOptions::default())?;
    let y_ref = model.forward_named(&inputs, &LmfOptions::default())?;
    let max_diff = y_hat
        .as_slice()
        .iter()
        .zip(y_ref.as_slice())
        .fold(0.0f32, |m, (a, b)| m.max((a - b).abs()));
    println!(
        "{} outputs; pre-scaled vs trained model max |diff| {max_diff:.2e}",
        y_hat.nrows()
    );
    Ok(())
}
