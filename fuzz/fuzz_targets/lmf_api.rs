//! LMF forward and backward on arbitrary shapes and values (any number of modalities, rank,
//! output size, batch, block size, NaN and infinities): never a panic; on success the shapes
//! are right, and finite moderate inputs give finite outputs and gradients.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mmfuse::lmf::{LmfModel, LmfOptions};
use mmfuse::Matrix;

#[path = "decode.rs"]
mod decode;
use decode::take;

fuzz_target!(|input: &[u8]| {
    let mut data = input;
    let [mm, r, h, n, blk, seed] = take::<6>(&mut data);
    let (mm, r, h, n) = (mm as usize % 4, r as usize % 5, h as usize % 6, n as usize % 20);
    let dims: Vec<usize> = (0..mm).map(|_| take::<1>(&mut data)[0] as usize % 7).collect();
    let names: Vec<String> = (0..mm).map(|m| format!("m{m}")).collect();
    let spec: Vec<(&str, usize)> = names.iter().map(|s| s.as_str()).zip(dims.iter().copied()).collect();
    let Ok(model) = LmfModel::<f32>::new(&spec, r, h, seed as u64) else {
        return;
    };
    let mut finite = true;
    let mut values = |len: usize| -> Vec<f32> {
        (0..len)
            .map(|_| {
                let v = f32::from_le_bytes(take::<4>(&mut data));
                finite &= v.is_finite() && v.abs() < 1e3;
                v
            })
            .collect()
    };
    let xs: Vec<Matrix<f32>> = dims.iter().map(|&d| Matrix::from_vec(n, d, values(n * d)).unwrap()).collect();
    let g = Matrix::from_vec(n, h, values(n * h)).unwrap();
    let opts = LmfOptions { block_rows: (blk > 0).then_some(blk as usize % 9 + 1), threads: None };
    let views: Vec<_> = xs.iter().map(|x| x.as_mat_ref()).collect();
    if let Ok(y) = model.forward(&views, &opts) {
        assert_eq!(y.shape(), (n, h));
        if finite {
            assert!(y.as_slice().iter().all(|v| v.is_finite()));
        }
    }
    if let Ok(grads) = model.backward(&views, g.as_mat_ref(), &opts) {
        assert_eq!(grads.inputs.len(), mm);
        if finite {
            assert!(grads.bias.iter().all(|v| v.is_finite()));
        }
    }
});
