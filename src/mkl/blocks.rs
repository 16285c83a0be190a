//! Interaction blocks on the kernel side (docs/design.md section 8): the kernel of a block of
//! modalities is the elementwise product of the modality kernels, each centred in feature space
//! with its training statistics first; every block, unimodal or interaction, is then
//! trace-normalised with its training statistics, so that lp-MKL weighs blocks on one scale.
//!
//! Why centre: an uncentred kernel such as rbf contains the constant function, so a product of
//! uncentred kernels would also contain each modality's main effect and the interaction block
//! would get credit for it. After centring (K~ = H K H) a product block holds only what the
//! modalities explain together (a functional-ANOVA split for independent modalities).

use crate::blocks::{Block, BlockSpec};
use crate::error::{Error, Result};
use crate::gram::{Normalization, TrainStats};
use crate::matrix::Matrix;
use rayon::prelude::*;

/// Elements per parallel task of the elementwise products: fixed, so that results do not
/// depend on the number of threads (they would not anyway: each element is one product chain).
const CHUNK: usize = 1 << 14;

/// How to turn modality kernels into block kernels, with the training statistics needed to do
/// the same to test kernels.
#[derive(Clone, Debug, PartialEq)]
pub struct BlockKernels {
    /// Modality names, in the order of the modality kernels.
    pub modalities: Vec<String>,
    /// The blocks (unimodal first, then interactions; see [`BlockSpec::resolve`]).
    pub blocks: Vec<Block>,
    /// Per modality: the centring statistics of its raw training kernel.
    pub centring: Vec<TrainStats>,
    /// Per block: the trace statistics of its (centred, multiplied) training kernel.
    pub scaling: Vec<TrainStats>,
}

impl BlockKernels {
    /// The block kernels of raw (un-normalised) modality training kernels, n x n each, in the
    /// order of `modalities`, and the statistics to build test block kernels.
    ///
    /// ```
    /// use mmfuse::blocks::BlockSpec;
    /// use mmfuse::gram::{gram, GramOptions, Kernel};
    /// use mmfuse::mkl::BlockKernels;
    /// use mmfuse::Matrix;
    /// let v = Matrix::from_vec(4, 1, vec![0.0f64, 1.0, 2.0, 3.0])?;
    /// let a = Matrix::from_vec(4, 1, vec![1.0f64, 0.0, 1.0, 0.0])?;
    /// let o = GramOptions::default();
    /// let (kv, ka) = (gram(v.as_mat_ref(), &Kernel::rbf(0.5), &o)?, gram(a.as_mat_ref(), &Kernel::rbf(0.5), &o)?);
    /// let (bk, ks) = BlockKernels::fit(&["visual", "audio"], &[&kv, &ka], &BlockSpec::Pairs)?;
    /// assert_eq!(bk.names(), ["visual", "audio", "visual*audio"]);
    /// assert_eq!(ks.len(), 3);
    /// // Every block has mean diagonal 1 (trace normalised).
    /// assert!(ks.iter().all(|k| ((0..4).map(|i| k.get(i, i)).sum::<f64>() / 4.0 - 1.0).abs() < 1e-12));
    /// # Ok::<(), mmfuse::Error>(())
    /// ```
    ///
    /// # Errors
    /// A bad spec or modality names (see [`BlockSpec::resolve`]); kernels that are not square,
    /// not all of one size, or non-finite; a block whose centred kernel has no positive trace
    /// (a constant kernel); and `TooLarge`, before anything is allocated, when the block
    /// kernels and the centred copies would exceed the memory cap.
    pub fn fit(
        modalities: &[&str],
        kernels: &[&Matrix<f64>],
        spec: &BlockSpec,
    ) -> Result<(Self, Vec<Matrix<f64>>)> {
        if modalities.len() != kernels.len() {
            return Err(Error::Shape(format!(
                "{} modality names for {} kernels",
                modalities.len(),
                kernels.len()
            )));
        }
        let blocks = spec.resolve(modalities)?;
        let n = kernels[0].nrows();
        for (k, name) in kernels.iter().zip(modalities) {
            if k.shape() != (n, n) {
                return Err(Error::Shape(format!(
                    "the kernel of modality `{name}` is {} x {}, expected {n} x {n}",
                    k.nrows(),
                    k.ncols()
                )));
            }
            crate::gram::check_finite_matrix(k, &format!("kernel of modality `{name}`"))?;
        }
        if n == 0 {
            return Err(Error::Empty("the modality kernels have no rows".into()));
        }
        // The centred copies and the block kernels, all n x n f64, checked at once.
        crate::limits::check_alloc::<f64>(
            (kernels.len() + blocks.len()).saturating_mul(n),
            n,
            &format!(
                "{} block kernels and {} centred modality kernels",
                blocks.len(),
                kernels.len()
            ),
        )?;
        let mut centring = Vec::with_capacity(kernels.len());
        let mut centred = Vec::with_capacity(kernels.len());
        for k in kernels {
            let stats = TrainStats::from_gram(k, Normalization::Center)?;
            let mut kc = (*k).clone();
            stats.apply_train(&mut kc)?;
            centring.push(stats);
            centred.push(kc);
        }
        let mut scaling = Vec::with_capacity(blocks.len());
        let mut out = Vec::with_capacity(blocks.len());
        for b in &blocks {
            let mut k = product(&centred, &b.members)?;
            let stats = TrainStats::from_gram(&k, Normalization::Trace).map_err(|_| {
                Error::param(
                    "interactions",
                    format!(
                        "block `{}` has no positive trace after centring (a constant kernel?)",
                        b.name
                    ),
                )
            })?;
            stats.apply_train(&mut k)?;
            scaling.push(stats);
            out.push(k);
        }
        Ok((
            BlockKernels {
                modalities: modalities.iter().map(|s| s.to_string()).collect(),
                blocks,
                centring,
                scaling,
            },
            out,
        ))
    }

    /// Block names, in block order.
    pub fn names(&self) -> Vec<&str> {
        self.blocks.iter().map(|b| b.name.as_str()).collect()
    }

    /// The test block kernels from raw modality cross kernels K_m(X_test, X_train) (same order
    /// as at training), centred and scaled with the training statistics.
    pub fn test_kernels(&self, cross: &[&Matrix<f64>]) -> Result<Vec<Matrix<f64>>> {
        if cross.len() != self.modalities.len() {
            return Err(Error::Shape(format!(
                "{} test kernels for {} modalities",
                cross.len(),
                self.modalities.len()
            )));
        }
        let shape = cross[0].shape();
        for (k, name) in cross.iter().zip(&self.modalities) {
            if k.shape() != shape {
                return Err(Error::Shape(format!(
                    "the test kernel of modality `{name}` is {} x {}, the first {} x {}",
                    k.nrows(),
                    k.ncols(),
                    shape.0,
                    shape.1
                )));
            }
            crate::gram::check_finite_matrix(k, &format!("test kernel of modality `{name}`"))?;
        }
        crate::limits::check_alloc::<f64>(
            (cross.len() + self.blocks.len()).saturating_mul(shape.0),
            shape.1,
            "test block kernels",
        )?;
        let centred = cross
            .iter()
            .zip(&self.centring)
            .map(|(k, stats)| {
                let mut kc = (*k).clone();
                stats.apply_cross(&mut kc, None)?;
                Ok(kc)
            })
            .collect::<Result<Vec<_>>>()?;
        self.blocks
            .iter()
            .zip(&self.scaling)
            .map(|(b, stats)| {
                let mut k = product(&centred, &b.members)?;
                stats.apply_cross(&mut k, None)?;
                Ok(k)
            })
            .collect()
    }
}

/// The elementwise product of the `members` of `kernels` (in member order, left to right).
fn product(kernels: &[Matrix<f64>], members: &[usize]) -> Result<Matrix<f64>> {
    let first = &kernels[members[0]];
    let mut out = first.clone();
    for &m in &members[1..] {
        hadamard_in_place(out.as_mut_slice(), kernels[m].as_slice());
    }
    Ok(out)
}

/// `out[i] *= a[i]`, in parallel over fixed chunks, each a SIMD pass (mmfuse-kernels).
pub(crate) fn hadamard_in_place(out: &mut [f64], a: &[f64]) {
    let arch = mmfuse_kernels::arch();
    out.par_chunks_mut(CHUNK)
        .zip(a.par_chunks(CHUNK))
        .for_each(|(o, a)| mmfuse_kernels::hadamard_in_place_on(arch, o, a));
}
