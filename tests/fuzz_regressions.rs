//! Inputs that fuzz targets reported, kept as regression tests (issue 6). Each decodes its
//! bytes exactly as its target does (see `fuzz/fuzz_targets/`).

use mmfuse::gram::{cross_gram, gram, GramOptions};

#[path = "../fuzz/fuzz_targets/decode.rs"]
mod decode;

/// gram_api, leak-169c9cda: LeakSanitizer reported 64 bytes from glibc's thread-exit TLS
/// registration after `GramOptions::with_threads(2)` built (and dropped) a pool per call. Not an
/// mmfuse leak (the harness now uses persistent pools); kept to check that such an input,
/// with per-call pools of 1 and 2 threads, gives bitwise the same result or the same error.
#[test]
fn gram_api_leak_169c9cda() {
    let bytes = include_bytes!("fixtures/fuzz/gram_api-leak-169c9cda");
    let decode::GramCase { x, y, kernel, tile } = decode::gram_case(bytes);
    let one = GramOptions {
        tile,
        ..GramOptions::with_threads(1)
    };
    let two = GramOptions {
        tile,
        ..GramOptions::with_threads(2)
    };
    match (
        gram(x.as_mat_ref(), &kernel, &one),
        gram(x.as_mat_ref(), &kernel, &two),
    ) {
        (Ok(a), Ok(b)) => {
            assert!(a
                .as_slice()
                .iter()
                .zip(b.as_slice())
                .all(|(p, q)| p.to_bits() == q.to_bits()));
        }
        (Err(a), Err(b)) => assert_eq!(a.to_string(), b.to_string()),
        (a, b) => panic!("thread counts disagree: {a:?} vs {b:?}"),
    }
    let _ = cross_gram(x.as_mat_ref(), y.as_mat_ref(), &kernel, &one);
}
