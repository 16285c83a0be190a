//! Arbitrary bytes as an LMF weights file and as an MKL model file (both safetensors): loading
//! must never panic (LMF with or without an explicit modality order); whatever loads must save
//! to bytes that load to the same model, and an LMF model must run a forward pass on a small
//! batch without panicking. Seeds: LMF files and MKL models (`mkl_*.safetensors`, written by
//! `tests/mkl_model_file.rs`), truncated and corrupted by the fuzzer.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mmfuse::lmf::{LmfModel, LmfOptions};
use mmfuse::mkl::MklModel;
use mmfuse::Matrix;

fuzz_target!(|data: &[u8]| {
    if let Ok(model) = MklModel::from_bytes(data) {
        let bytes = model.to_bytes().expect("a loaded MKL model saves");
        let again = MklModel::from_bytes(&bytes).expect("saved MKL bytes load");
        assert_eq!(again.to_bytes().unwrap(), bytes);
    }
    let orders: [Option<&[&str]>; 3] = [None, Some(&["visual", "audio", "text"]), Some(&["a"])];
    for order in orders {
        let Ok(model) = LmfModel::<f32>::from_safetensors_bytes(data, order) else {
            continue;
        };
        let bytes = model.to_safetensors_bytes().expect("a loaded model saves");
        let again = LmfModel::<f32>::from_safetensors_bytes(&bytes, None).expect("saved bytes load");
        assert_eq!(again.modalities(), model.modalities());
        assert_eq!(again.to_safetensors_bytes().unwrap(), bytes);
        // Keep the forward pass small: it is the shapes that matter here.
        if model.dims().iter().sum::<usize>() * model.rank() * model.out_dim() > 1 << 16 {
            continue;
        }
        let inputs: Vec<Matrix<f32>> = model
            .dims()
            .iter()
            .map(|&d| Matrix::from_vec(3, d, vec![0.5; 3 * d]).unwrap())
            .collect();
        let views: Vec<_> = inputs.iter().map(|x| x.as_mat_ref()).collect();
        let y = model.forward(&views, &LmfOptions::default()).expect("forward of a loaded model");
        assert_eq!(y.shape(), (3, model.out_dim()));
    }
});
