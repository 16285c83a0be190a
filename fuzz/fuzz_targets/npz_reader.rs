//! Arbitrary bytes into the `.npz` (zip) reader: it must never panic nor allocate beyond the
//! decompression budget, and the arrays it returns must be consistent.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use mmfuse::io::parse_npz_with_limit;

/// Far below libFuzzer's default 2 GB malloc limit.
const LIMIT: u64 = 64 << 20;

fuzz_target!(|data: &[u8]| {
    let Ok(arrays) = parse_npz_with_limit(data, Path::new("fuzz.npz"), LIMIT) else {
        return;
    };
    let mut total = 0u64;
    for (_, array) in arrays {
        assert_eq!(
            array
                .shape
                .iter()
                .try_fold(1usize, |a, &d| a.checked_mul(d)),
            Some(array.len())
        );
        total += array.view().expect("consistent").encode().len() as u64;
        let _ = array.clone().into_matrix::<f64>("fuzz");
        let _ = array.into_vec_f64("fuzz");
    }
    assert!(total <= LIMIT);
});
