//! Turning fuzzer bytes into typed inputs, shared by the fuzz targets and by
//! `tests/fuzz_regressions.rs` (which replays their findings with exactly the same decoding).
#![allow(dead_code)]

use mmfuse::gram::Kernel;
use mmfuse::Matrix;

/// The next N bytes (zero-padded at the end of the input), consumed.
pub fn take<const N: usize>(data: &mut &[u8]) -> [u8; N] {
    let mut out = [0u8; N];
    for (o, b) in out.iter_mut().zip(data.iter()) {
        *o = *b;
    }
    *data = &data[N.min(data.len())..];
    out
}

/// `gram_api`'s case: X (n x d), Y (m x d), a kernel with arbitrary parameters, a tile size.
pub struct GramCase {
    pub x: Matrix<f64>,
    pub y: Matrix<f64>,
    pub kernel: Kernel,
    pub tile: usize,
}

/// Shapes below 40 x 12, any kernel and parameters, values reduced mod 1e6 (NaN and
/// infinities stay).
pub fn gram_case(input: &[u8]) -> GramCase {
    let mut data = input;
    let [a, b, c, k, t] = take::<5>(&mut data);
    let (n, m, d) = (a as usize % 40, b as usize % 40, c as usize % 12);
    let gamma = f64::from_le_bytes(take::<8>(&mut data));
    let coef0 = f64::from_le_bytes(take::<8>(&mut data));
    let degree = u32::from(take::<1>(&mut data)[0] % 6);
    let kernel = match k % 6 {
        0 => Kernel::Linear,
        1 => Kernel::polynomial(gamma, degree, coef0),
        2 => Kernel::rbf(gamma),
        3 => Kernel::laplacian(gamma),
        4 => Kernel::sigmoid(gamma, coef0),
        _ => Kernel::Cosine,
    };
    let mut values = |len: usize| -> Vec<f64> {
        (0..len)
            .map(|_| f64::from_le_bytes(take::<8>(&mut data)) % 1e6)
            .collect()
    };
    let x = values(n * d);
    let y = values(m * d);
    GramCase {
        x: Matrix::from_vec(n, d, x).expect("n x d values"),
        y: Matrix::from_vec(m, d, y).expect("m x d values"),
        kernel,
        tile: 1 + t as usize % 17,
    }
}
