//! Seeded initialisation as in the PyTorch reference: Xavier-normal (Glorot) weights.

use crate::util::SplitMix64;

/// Standard normal samples from SplitMix64 by the Box-Muller transform, both values of each
/// pair used (so the stream of samples is fixed by the seed alone).
pub(crate) struct Normal {
    rng: SplitMix64,
    spare: Option<f64>,
}

impl Normal {
    pub(crate) fn new(seed: u64) -> Self {
        Normal {
            rng: SplitMix64::new(seed),
            spare: None,
        }
    }

    /// One N(0, 1) sample.
    pub(crate) fn sample(&mut self) -> f64 {
        if let Some(v) = self.spare.take() {
            return v;
        }
        // u1 in (0, 1] so that ln(u1) is finite.
        let u1 = 1.0 - self.rng.next_f64();
        let u2 = self.rng.next_f64();
        let radius = (-2.0 * u1.ln()).sqrt();
        let angle = std::f64::consts::TAU * u2;
        self.spare = Some(radius * angle.sin());
        radius * angle.cos()
    }
}

/// PyTorch's `xavier_normal_` standard deviation, gain 1: `sqrt(2 / (fan_in + fan_out))` with
/// the fans of `torch.nn.init._calculate_fan_in_and_fan_out` for a tensor of shape `shape`
/// (`fan_in = shape[1] * receptive`, `fan_out = shape[0] * receptive`, `receptive` the product of
/// the remaining dimensions). At least two dimensions.
pub(crate) fn xavier_std(shape: &[usize]) -> f64 {
    debug_assert!(shape.len() >= 2);
    let receptive: usize = shape[2..].iter().product();
    let fan_in = (shape[1] * receptive) as f64;
    let fan_out = (shape[0] * receptive) as f64;
    (2.0 / (fan_in + fan_out)).sqrt()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fans_follow_pytorch() {
        // (r, d + 1, h) = (4, 6, 3): fan_in = 6 * 3, fan_out = 4 * 3.
        assert_eq!(xavier_std(&[4, 6, 3]), (2.0f64 / 30.0).sqrt());
        // fusion weights (1, r): fan_in = r, fan_out = 1.
        assert_eq!(xavier_std(&[1, 4]), (2.0f64 / 5.0).sqrt());
    }

    #[test]
    fn normal_samples_have_unit_moments() {
        let mut g = Normal::new(7);
        let n = 200_000;
        let (mut s1, mut s2) = (0.0, 0.0);
        for _ in 0..n {
            let v = g.sample();
            assert!(v.is_finite());
            s1 += v;
            s2 += v * v;
        }
        let mean = s1 / n as f64;
        let var = s2 / n as f64 - mean * mean;
        // Standard errors: 1/sqrt(n) = 0.0022 for the mean, sqrt(2/n) = 0.0032 for the variance.
        assert!(mean.abs() < 0.012, "mean {mean}");
        assert!((var - 1.0).abs() < 0.016, "variance {var}");
    }
}
