//! Normalisation of a modality with training statistics: centred by the column means, then
//! divided by one scalar so that the mean squared row norm is 1 (the vector-wise batch norm of
//! interpretable tensor fusion, in inference form). One scalar per modality, not one per
//! feature: the modality's geometry (which features vary most) is kept, only its overall
//! scale is made comparable with the other modalities', which is what block norms compare.

use crate::scalar::Real;

/// The statistics of one modality: `x~ = (x - mean) / scale`.
#[derive(Clone, Debug, PartialEq)]
pub struct ModalityStats<T> {
    /// Column means of the training rows (`d_m`).
    pub mean: Vec<T>,
    /// `sqrt(mean_n ||x_n - mean||^2)` over the training rows; 1 when that is 0 (a constant
    /// modality: its centred rows are all zero anyway).
    pub scale: T,
}

impl<T: Real> ModalityStats<T> {
    /// The identity (mean 0, scale 1): a model that was never trained normalises nothing.
    pub fn identity(d: usize) -> Self {
        ModalityStats {
            mean: vec![T::ZERO; d],
            scale: T::ONE,
        }
    }

    /// The statistics of `n` rows (`x`, row-major `n x d`, finite), accumulated in f64.
    pub(crate) fn fit(x: &[T], n: usize, d: usize) -> Self {
        let mut mean = vec![0.0f64; d];
        for row in x.chunks_exact(d).take(n) {
            for (m, v) in mean.iter_mut().zip(row) {
                *m += v.to_f64();
            }
        }
        let inv = 1.0 / n.max(1) as f64;
        mean.iter_mut().for_each(|m| *m *= inv);
        let mut ss = 0.0f64;
        for row in x.chunks_exact(d).take(n) {
            for (m, v) in mean.iter().zip(row) {
                let c = v.to_f64() - m;
                ss += c * c;
            }
        }
        let scale = (ss * inv).sqrt();
        ModalityStats {
            mean: mean.into_iter().map(T::from_f64).collect(),
            scale: if scale > 0.0 && scale.is_finite() {
                T::from_f64(scale)
            } else {
                T::ONE
            },
        }
    }

    /// Writes the normalised rows of `x` (row-major, `d` columns) into `out`.
    pub(crate) fn apply(&self, x: &[T], out: &mut [T]) {
        let d = self.mean.len();
        let inv = T::ONE / self.scale;
        for (o, xr) in out.chunks_exact_mut(d).zip(x.chunks_exact(d)) {
            for ((ov, &xv), &m) in o.iter_mut().zip(xr).zip(&self.mean) {
                *ov = (xv - m) * inv;
            }
        }
    }
}
