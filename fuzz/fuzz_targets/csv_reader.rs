//! Arbitrary text as CSV input (every delimiter option): parsing must never panic, and what
//! parses has the shape it claims, in f32 and f64.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mmfuse::io::{parse_csv, CsvOptions};
use mmfuse::Matrix;
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let opts = CsvOptions::default();
    if let Ok(m) = parse_csv::<f64>(text, &opts, Path::new("fuzz.csv")) {
        assert_eq!(m.as_slice().len(), m.nrows() * m.ncols());
        let m32: Matrix<f32> = parse_csv(text, &opts, Path::new("fuzz.csv")).expect("f64 parsed, f32 too");
        assert_eq!(m32.shape(), m.shape());
    }
});
