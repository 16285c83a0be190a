//! The simulated study: three modalities of one set of samples, with a binary label and a
//! real-valued target whose signal is spread unevenly and non-linearly across them.

use mmfuse::matrix::Matrix;
use mmfuse::util::SplitMix64;

/// One simulated modality.
pub(crate) struct Modality {
    pub name: &'static str,
    pub role: &'static str,
    pub x: Matrix<f64>,
}

/// The simulated data set.
pub(crate) struct Study {
    pub modalities: Vec<Modality>,
    /// Binary labels -1 / +1.
    pub labels: Vec<f64>,
    /// Regression target.
    pub target: Vec<f64>,
    /// Indices of the training split (70%, shuffled with the seed) and of the test split.
    pub train: Vec<usize>,
    pub test: Vec<usize>,
}

/// Standard normal by Box-Muller.
pub(crate) fn normal(rng: &mut SplitMix64) -> f64 {
    let u1 = rng.next_f64().max(f64::MIN_POSITIVE);
    let u2 = rng.next_f64();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

/// Three modalities: visual (128 features) carries a strong class shift on its first 8
/// features, audio (64) a weak one, text (300) is pure noise; in addition the sign of
/// visual[8] * audio[8] equals the label, an interaction that neither modality shows alone.
/// The regression target is built the same way: a strong visual term, a weak audio term and
/// the visual x audio interaction, plus a little noise; text does not enter it.
pub(crate) fn simulate(n: usize, seed: u64) -> Study {
    let mut rng = SplitMix64::new(seed);
    let labels: Vec<f64> = (0..n)
        .map(|i| if i % 2 == 0 { 1.0 } else { -1.0 })
        .collect();
    let mut make = |d: usize, shift: f64, dims: usize| {
        let mut data = Vec::with_capacity(n * d);
        for yi in &labels {
            for k in 0..d {
                let mean = if k < dims { shift * yi } else { 0.0 };
                data.push(mean + normal(&mut rng));
            }
        }
        Matrix::from_vec(n, d, data).expect("n x d values")
    };
    let mut visual = make(128, 0.45, 8);
    let mut audio = make(64, 0.3, 8);
    let text = make(300, 0.0, 0);
    for (i, yi) in labels.iter().enumerate() {
        // |v8| and |a8| stay random; their signs are chosen so that sign(v8 * a8) = y.
        let (v, a) = (visual.get(i, 8).abs(), audio.get(i, 8).abs());
        let s = if normal(&mut rng) > 0.0 { 1.0 } else { -1.0 };
        visual.as_mut_slice()[i * 128 + 8] = s * v;
        audio.as_mut_slice()[i * 64 + 8] = s * yi * a;
    }
    let target: Vec<f64> = (0..n)
        .map(|i| {
            let v_bar = visual.row(i)[..8].iter().sum::<f64>() / 8.0;
            let a_bar = audio.row(i)[..8].iter().sum::<f64>() / 8.0;
            1.0 * v_bar
                + 0.3 * a_bar
                + 0.4 * visual.get(i, 8) * audio.get(i, 8)
                + 0.1 * normal(&mut rng)
        })
        .collect();
    let mut order: Vec<usize> = (0..n).collect();
    for i in (1..n).rev() {
        let j = (rng.next_u64() % (i as u64 + 1)) as usize;
        order.swap(i, j);
    }
    let n_train = (n * 7).div_ceil(10);
    let test = order.split_off(n_train);
    Study {
        modalities: vec![
            Modality {
                name: "visual",
                role: "strong signal",
                x: visual,
            },
            Modality {
                name: "audio",
                role: "weak signal",
                x: audio,
            },
            Modality {
                name: "text",
                role: "pure noise",
                x: text,
            },
        ],
        labels,
        target,
        train: order,
        test,
    }
}

/// The rows `idx` of `x`.
pub(crate) fn rows(x: &Matrix<f64>, idx: &[usize]) -> Matrix<f64> {
    let d = x.ncols();
    let mut out = Vec::with_capacity(idx.len() * d);
    for &i in idx {
        out.extend_from_slice(x.row(i));
    }
    Matrix::from_vec(idx.len(), d, out).expect("rows of x")
}

/// The entries `idx` of `v`.
pub(crate) fn pick(v: &[f64], idx: &[usize]) -> Vec<f64> {
    idx.iter().map(|&i| v[i]).collect()
}
