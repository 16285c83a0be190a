//! mmfuse: a multimodal fusion engine.
//!
//! - [`gram`]: Gram (kernel) matrices K(X, X) and K(X, Y) for the linear, polynomial, rbf,
//!   laplacian, sigmoid and cosine kernels in f32 and f64, built from cache-blocked faer GEMM
//!   tiles with SIMD epilogues (the `mmfuse-kernels` crate), in parallel with rayon, exploiting
//!   symmetry; normalisations with training statistics, weighted combinations, rows on demand,
//!   kernel PCA.
//! - [`mkl`]: p-norm multiple kernel learning (SVM or kernel ridge, any p >= 1 including 1 and
//!   inf), from precomputed kernels or per-modality data.
//! - [`lmf`]: low-rank multimodal fusion: batched forward and backward, Adam training,
//!   safetensors weights in the PyTorch layout.
//! - [`io`]: NumPy `.npy` / `.npz` and CSV files, written atomically.
//! - [`datasets`]: data shipped in the library (the UCI Multiple Features digits, six views),
//!   stratified splits, standardisation with training statistics.
//!
//! Conventions: a data matrix is n samples x d features, row-major (NumPy's C order). Inputs are
//! faer views ([`faer::MatRef`], any strides); results are [`Matrix`] (row-major `Vec` + shape).
//! Every public function checks its input and returns [`Result`]; none panics on bad input.
//!
//! ```
//! use mmfuse::gram::{combine, cross_gram, gram, GramOptions, Kernel, Normalization, TrainStats};
//! use mmfuse::Matrix;
//!
//! // Two modalities of the same 4 training samples, and 2 test samples of the first.
//! let visual = Matrix::from_vec(4, 3, vec![0.1f64, 0.2, 0.3, 0.0, 0.1, 0.9, 0.5, 0.5, 0.5, 1.0, 0.0, 0.0])?;
//! let audio = Matrix::from_vec(4, 2, vec![1.0f64, 0.0, 0.0, 1.0, 0.5, 0.5, 0.2, 0.8])?;
//! let opts = GramOptions::default();
//!
//! // One trace-normalised kernel per modality, combined with weights beta.
//! let mut kv = gram(visual.as_mat_ref(), &Kernel::rbf(0.5), &opts)?;
//! let stats_v = TrainStats::from_gram(&kv, Normalization::Trace)?;
//! stats_v.apply_train(&mut kv)?;
//! let mut ka = gram(audio.as_mat_ref(), &"poly:degree=2".parse::<Kernel>()?, &opts)?;
//! TrainStats::from_gram(&ka, Normalization::Trace)?.apply_train(&mut ka)?;
//! let k = combine(&[&kv, &ka], &[0.7, 0.3])?;
//! assert_eq!(k.shape(), (4, 4));
//!
//! // A test kernel K(X_test, X_train) is normalised with the training statistics.
//! let test = Matrix::from_vec(2, 3, vec![0.1f64, 0.2, 0.25, 0.9, 0.1, 0.0])?;
//! let mut kt = cross_gram(test.as_mat_ref(), visual.as_mat_ref(), &Kernel::rbf(0.5), &opts)?;
//! stats_v.apply_cross(&mut kt, None)?;
//! assert_eq!(kt.shape(), (2, 4));
//! # Ok::<(), mmfuse::Error>(())
//! ```
#![warn(missing_docs)]

pub mod blocks;
pub mod datasets;
pub mod error;
pub mod gram;
pub mod io;
pub mod limits;
pub mod lmf;
pub mod matrix;
pub mod mkl;
pub mod scalar;
pub mod threads;
pub mod util;

pub use error::{Error, Result};

/// The README's Rust examples, compiled and run as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
pub use matrix::Matrix;
pub use scalar::Real;
