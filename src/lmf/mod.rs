//! Low-rank multimodal fusion (Liu et al., "Efficient Low-rank Multimodal Fusion with
//! Modality-Specific Factors", ACL 2018), docs/design.md section 4.
//!
//! For modalities `m = 1..M` with inputs `X_m` (`N x d_m`), rank `r` and output size `h`:
//!
//! ```text
//! A_m[i] = [1, X_m] W_m[i]          (N x h for each rank i; W_m is (r, d_m + 1, h))
//! y      = sum_i w_i prod_m A_m[i] + c
//! ```
//!
//! - [`LmfModel`]: the parameters (PyTorch's Xavier-normal initialisation from a seed), the
//!   forward pass ([`LmfModel::forward`], [`LmfModel::forward_named`]), the backward pass
//!   ([`LmfModel::backward`]: every parameter and every input), the fused loss + gradient step
//!   ([`LmfModel::loss_and_gradients`]) and training ([`LmfModel::train`] with [`TrainOptions`]).
//! - [`PrescaledLmf`]: an inference copy with the fusion weights folded into a factor.
//! - [`Adam`]: `torch.optim.Adam`'s update; [`Loss`]: MSE and L1 as PyTorch's defaults.
//! - Weights files: safetensors in the PyTorch reference layout
//!   ([`LmfModel::save_safetensors`], [`LmfModel::load_safetensors`]; see [`weights`]).
//!
//! How it is computed: the batch is processed in tiles of (row block, group of ranks), in
//! parallel with rayon; per tile and modality one faer GEMM gives the tile's ranks at once
//! (`W_m` stored as `(d_m + 1) x (r h)`; the constant column is never materialised: the SIMD
//! passes add the factor's row 0 as an offset), then the SIMD passes of `mmfuse-kernels` do the
//! Hadamard product over modalities and the weighted rank sum while the tile is in cache (see
//! `block.rs` for the tiling and the schedules). Memory beyond inputs and outputs is
//! O(block x r h x M) (the training step and the backward pass: times at most 4 chains, each
//! with a partial copy of the parameter gradients; large batches and the pre-scaled model: plus
//! one column-major copy of the factors). Results are bitwise the same for any number of
//! threads.
//!
//! ```
//! use mmfuse::lmf::{LmfModel, LmfOptions, TrainOptions};
//! use mmfuse::Matrix;
//!
//! // 64 samples of two modalities and a target that the model can fit: y = x_v0 * x_a0.
//! let n = 64;
//! let mut rng = mmfuse::util::SplitMix64::new(1);
//! let mut draw = |len: usize| (0..len).map(|_| rng.next_f64() as f32 - 0.5).collect::<Vec<_>>();
//! let visual = Matrix::from_vec(n, 3, draw(n * 3))?;
//! let audio = Matrix::from_vec(n, 2, draw(n * 2))?;
//! let y: Vec<f32> = (0..n).map(|i| visual.get(i, 0) * audio.get(i, 0)).collect();
//! let target = Matrix::from_vec(n, 1, y)?;
//!
//! let mut model = LmfModel::<f32>::new(&[("visual", 3), ("audio", 2)], 4, 1, 7)?;
//! let opts = TrainOptions { epochs: 30, batch_size: 16, lr: 1e-2, ..TrainOptions::default() };
//! let inputs = [("visual", visual.as_mat_ref()), ("audio", audio.as_mat_ref())];
//! let history = model.train_named(&inputs, target.as_mat_ref(), &opts, |report| {
//!     // A CLI would advance a progress bar here.
//!     assert!(report.train_loss.is_finite());
//! })?;
//! assert!(history.train_loss.last() < history.train_loss.first());
//!
//! let pred = model.forward_named(&inputs, &LmfOptions::default())?;
//! assert_eq!(pred.shape(), (n, 1));
//!
//! // Save, load (the modality order travels in the file's metadata), same outputs.
//! let name = format!("mmfuse-doc-lmf-mod-{}.safetensors", std::process::id());
//! let path = std::env::temp_dir().join(name);
//! model.save_safetensors(&path)?;
//! let loaded = LmfModel::<f32>::load_safetensors(&path, None)?;
//! assert_eq!(loaded.forward_named(&inputs, &LmfOptions::default())?, pred);
//! # std::fs::remove_file(&path).unwrap();
//! # Ok::<(), mmfuse::Error>(())
//! ```

mod adam;
mod backward;
mod block;
pub mod blockwise;
mod forward;
mod init;
mod loss;
mod model;
pub mod relevance;
mod train;
pub mod weights;

pub use adam::{Adam, AdamConfig};
pub use backward::LmfGradients;
pub use forward::PrescaledLmf;
pub use loss::Loss;
pub use model::{gemm_to_torch_layout, torch_to_gemm_layout, LmfModel};
pub use train::{EpochReport, TrainHistory, TrainOptions};

/// Execution options of the forward and backward passes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LmfOptions {
    /// Rows per block. `None` (the default) picks it from the shapes: at most 256 rows and
    /// 8 MiB of projection buffers (`block x r h x M` values), and for the forward pass cut
    /// further until a block has four tiles (block x group of ranks) worth a task each. Results
    /// depend on the block size (through summation order) but never on the number of threads.
    pub block_rows: Option<usize>,
    /// Worker threads: `None` runs on the current rayon pool (the global one: all cores);
    /// `Some(t)` on the process-wide pool of `t` threads ([`crate::threads`]: built on first
    /// use, then reused, so small calls pay no thread start-up).
    pub threads: Option<usize>,
}

impl LmfOptions {
    /// Options with `threads` worker threads.
    pub fn with_threads(threads: usize) -> Self {
        LmfOptions {
            threads: Some(threads),
            ..Default::default()
        }
    }
}
