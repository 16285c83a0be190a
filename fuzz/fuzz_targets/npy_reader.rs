//! Arbitrary bytes into the `.npy` parser: it must never panic, and whatever it accepts must
//! convert (or fail cleanly) and re-encode to a file that parses to the same array.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use mmfuse::io::{parse_npy, NpyData};

fuzz_target!(|data: &[u8]| {
    let Ok(array) = parse_npy(data, Path::new("fuzz.npy")) else {
        return;
    };
    assert_eq!(
        array
            .shape
            .iter()
            .try_fold(1usize, |a, &d| a.checked_mul(d)),
        Some(array.len())
    );
    // Writing back what was read and reading it again gives the same array (bit for bit:
    // compare the encodings, since NaN != NaN).
    let encoded = array.view().expect("a parsed array is consistent").encode();
    let again = parse_npy(&encoded, Path::new("again.npy")).expect("re-encoded array parses");
    assert_eq!(again.shape, array.shape);
    assert_eq!(again.view().unwrap().encode(), encoded);
    if let NpyData::I64(_) = array.data {
        assert_eq!(again.dtype_name(), "int64");
    }
    let shape = array.shape.clone();
    let m = array.clone().into_matrix::<f64>("fuzz");
    assert_eq!(m.is_ok(), shape.len() == 2);
    let _ = array.clone().into_matrix::<f32>("fuzz");
    let v = array.into_vec_f64("fuzz");
    assert_eq!(v.is_ok(), matches!(shape[..], [_] | [_, 1] | [1, _]));
});
