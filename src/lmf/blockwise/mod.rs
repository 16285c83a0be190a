//! Block low-rank fusion with lp relevance (docs/design.md section 9): the tensor side of the
//! question "which modalities, and which combinations of them, count".
//!
//! Plain LMF mixes every interaction order in one tensor through its constant-1 slot, so it
//! cannot say which order matters. [`BlockLmf`] keeps them apart, with the blocks of the kernel
//! side ([`crate::blocks::BlockSpec`]):
//!
//! ```text
//! f_m(x) = x~_m W_m                                          unimodal block, W_m: d_m x h
//! f_I(x) = sum_{i<r} w_{I,i} prod_{m in I} (x~_m U_{I,m}[i])   interaction block, U: (r, d_m, h)
//! y      = sum_blocks f + b
//! ```
//!
//! with each modality normalised by training statistics (`x~ = (x - mean) / scale`, mean
//! squared norm 1: [`ModalityStats`]). Each block is a low-rank tensor `W_I` whose Frobenius
//! norm comes in closed form from the factors' Gram matrices, never the tensor; training
//! minimises `loss + lambda (sum_I ||W_I||_F^q)^(2/q)` with `q = 2p/(p+1)` (p = 1: a group
//! lasso over blocks), and the relevance of block I is the closed-form lp-MKL weight
//! `beta_I = ||W_I||^(2/(p+1)) / (sum_J ||W_J||^(2p/(p+1)))^(1/p)`, reported as shares
//! ([`BlockLmf::relevance`]).
//!
//! How it is computed: the parameters live in one flat vector laid out so that each modality's
//! weights for all its blocks form one `d_m x C_m` matrix; a batch is cut into chunks of 128
//! rows run in parallel, and per chunk one GEMM per modality gives every block's projections,
//! the SIMD block passes of `mmfuse-kernels` combine them (forward) and give their gradients
//! (backward), and one more GEMM per modality gives the weight gradients. No tensor is ever
//! formed. Chunk results are summed in chunk order: bitwise the same for any thread count.
//!
//! ```
//! use mmfuse::blocks::BlockSpec;
//! use mmfuse::lmf::blockwise::{BlockLmf, BlockTrainOptions};
//! use mmfuse::Matrix;
//!
//! // y = v0 * a0: an interaction only.
//! let n = 400;
//! let mut rng = mmfuse::util::SplitMix64::new(3);
//! let mut draw = |len: usize| (0..len).map(|_| rng.next_f64() * 2.0 - 1.0).collect::<Vec<f64>>();
//! let (v, a, t) = (draw(n * 3), draw(n * 2), draw(n * 2));
//! let y: Vec<f64> = (0..n).map(|i| v[i * 3] * a[i * 2]).collect();
//! let v = Matrix::from_vec(n, 3, v)?;
//! let a = Matrix::from_vec(n, 2, a)?;
//! let t = Matrix::from_vec(n, 2, t)?;
//! let y = Matrix::from_vec(n, 1, y)?;
//!
//! let mut model = BlockLmf::<f64>::new(&[("v", 3), ("a", 2), ("t", 2)], &BlockSpec::Pairs, 4, 1, 1.0, 0)?;
//! let opts = BlockTrainOptions { epochs: 40, reg: 1e-3, ..Default::default() };
//! let xs = [v.as_mat_ref(), a.as_mat_ref(), t.as_mat_ref()];
//! let history = model.train(&xs, y.as_mat_ref(), &opts, |_| {})?;
//! assert!(history.train_loss.last() < history.train_loss.first());
//! let rel = model.relevance()?;
//! let best = (0..rel.shares.len()).max_by(|&i, &j| rel.shares[i].total_cmp(&rel.shares[j])).unwrap();
//! assert_eq!(rel.blocks[best], "v*a");
//! # Ok::<(), mmfuse::Error>(())
//! ```

mod api;
mod file;
mod layout;
mod model;
mod optim;
mod pass;
mod penalty;
mod stats;
mod step;
mod train;

pub use file::{is_block_model_file, FORMAT, FORMAT_VERSION, METADATA_KEY};
pub use model::{BlockLmf, Relevance};
pub use optim::Optimizer;
pub use stats::ModalityStats;
pub use step::BlockOptimizer;
pub use train::{BlockEpochReport, BlockTrainHistory, BlockTrainOptions};
