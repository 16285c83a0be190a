//! The Gram API on arbitrary shapes, kernels, parameters and values (NaN, infinities,
//! subnormals, huge numbers included): never a panic; on success K(X, X) is n x n and exactly
//! symmetric, K(X, Y) is n x m, and results do not depend on the thread count.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mmfuse::gram::{cross_gram, gram, GramOptions};
use std::sync::OnceLock;

/// One persistent pool per thread count. (Options with `threads: Some(t)` build a pool per
/// call; its exiting threads' TLS destructors show up as 64-byte "leaks" under LeakSanitizer,
/// the first finding of this target, which was in the harness, not in mmfuse.)
fn pool(threads: usize) -> &'static rayon::ThreadPool {
    static POOLS: [OnceLock<rayon::ThreadPool>; 2] = [OnceLock::new(), OnceLock::new()];
    POOLS[threads - 1].get_or_init(|| {
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .expect("thread pool")
    })
}

#[path = "decode.rs"]
mod decode;

fuzz_target!(|input: &[u8]| {
    let decode::GramCase { x, y, kernel, tile } = decode::gram_case(input);
    let (n, m) = (x.nrows(), y.nrows());
    let one = GramOptions { tile, threads: None };
    let k1 = pool(1).install(|| gram(x.as_mat_ref(), &kernel, &one));
    let k2 = pool(2).install(|| gram(x.as_mat_ref(), &kernel, &one));
    match (&k1, &k2) {
        (Ok(k1), Ok(k2)) => {
            assert_eq!(k1.shape(), (n, n));
            for i in 0..n {
                for j in 0..i {
                    assert_eq!(k1.get(i, j).to_bits(), k1.get(j, i).to_bits());
                }
            }
            let same = k1.as_slice().iter().zip(k2.as_slice()).all(|(p, q)| p.to_bits() == q.to_bits());
            assert!(same, "1 and 2 threads differ");
        }
        (Err(_), Err(_)) => {}
        _ => panic!("1 and 2 threads disagree on success"),
    }
    let x32 = x.map(|v| v as f32);
    let _ = pool(2).install(|| gram(x32.as_mat_ref(), &kernel, &one));
    if let Ok(kc) = pool(2).install(|| cross_gram(x.as_mat_ref(), y.as_mat_ref(), &kernel, &one)) {
        assert_eq!(kc.shape(), (n, m));
    }
});
