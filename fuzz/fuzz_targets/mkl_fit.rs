//! MKL on tiny arbitrary kernels, labels and options (non-symmetric, indefinite, NaN, one
//! class, any p and C): never a panic or a hang; on success beta >= 0 with ||beta||_p = 1 and
//! finite coefficients.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mmfuse::mkl::{fit, Loss, MklOptions};
use mmfuse::Matrix;

#[path = "decode.rs"]
mod decode;
use decode::take;

fuzz_target!(|input: &[u8]| {
    let mut data = input;
    let [n, mm, flags, pc, cc] = take::<5>(&mut data);
    let (n, mm) = (n as usize % 7, mm as usize % 4);
    let symmetrise = flags & 1 == 1;
    let p = [1.0, 4.0 / 3.0, 2.0, 3.0, f64::INFINITY, 0.5, f64::NAN][pc as usize % 7];
    let c = [1.0, 0.1, 10.0, 0.0, -1.0, 1e6][cc as usize % 6];
    let loss = if flags & 2 == 0 { Loss::Hinge } else { Loss::Squared };
    let mut kernels = Vec::new();
    for _ in 0..mm {
        let mut k: Vec<f64> = (0..n * n).map(|_| (take::<1>(&mut data)[0] as i8) as f64 / 16.0).collect();
        if symmetrise {
            // B B^T from the bytes: symmetric PSD, the case the solver must get right.
            let b = k.clone();
            for i in 0..n {
                for j in 0..n {
                    k[i * n + j] = (0..n).map(|t| b[i * n + t] * b[j * n + t]).sum();
                }
            }
        }
        kernels.push(Matrix::from_vec(n, n, k).unwrap());
    }
    let y: Vec<f64> = (0..n)
        .map(|_| {
            let v = take::<1>(&mut data)[0];
            match loss {
                Loss::Hinge => if v % 2 == 0 { 1.0 } else { -1.0 },
                Loss::Squared => v as f64 / 32.0,
            }
        })
        .collect();
    let refs: Vec<&Matrix<f64>> = kernels.iter().collect();
    let opts = MklOptions {
        p,
        c,
        loss,
        max_iter: 30,
        max_smo_iter: 20_000,
        allow_indefinite: flags & 4 != 0,
        ..MklOptions::default()
    };
    if let Ok(f) = fit(&refs, &y, &opts) {
        assert!(f.beta.iter().all(|&b| b >= 0.0), "{:?}", f.beta);
        assert!(f.coef.iter().all(|v| v.is_finite()));
    }
});
