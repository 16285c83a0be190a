//! Random LMF problems shared by `tests/lmf.rs` and `tests/lmf_tiling.rs` (each includes it
//! with `#[path = "support/lmf_cases.rs"] mod lmf_cases;` next to `mod numerics;`).

use super::numerics::Rng;
use mmfuse::lmf::LmfModel;
use mmfuse::{Matrix, Real};

/// A model and inputs with random values (bias included) for `dims`, in T.
pub fn random_case<T: Real>(
    dims: &[usize],
    rank: usize,
    h: usize,
    n: usize,
    seed: u64,
) -> (LmfModel<T>, Vec<Matrix<T>>) {
    let names: Vec<(String, usize)> = dims
        .iter()
        .enumerate()
        .map(|(i, &d)| (format!("m{i}"), d))
        .collect();
    let init = LmfModel::<T>::new(&names, rank, h, seed).unwrap();
    let mut rng = Rng(seed ^ 0xabc);
    let bias = (0..h).map(|_| T::from_f64(0.3 * rng.sym())).collect();
    let model = LmfModel::from_parts(
        &names.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>(),
        rank,
        h,
        (0..dims.len())
            .map(|m| init.factor(m).unwrap().clone())
            .collect(),
        init.fusion_weights().to_vec(),
        bias,
    )
    .unwrap();
    let xs = dims
        .iter()
        .map(|&d| {
            Matrix::from_vec(n, d, (0..n * d).map(|_| T::from_f64(rng.sym())).collect()).unwrap()
        })
        .collect();
    (model, xs)
}
