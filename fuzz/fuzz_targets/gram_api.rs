//! The Gram API on arbitrary shapes, kernels, parameters and values (NaN, infinities,
//! subnormals, huge numbers included): never a panic; on success K(X, X) is n x n and exactly
//! symmetric, K(X, Y) is n x m, and results do not depend on the thread count.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mmfuse::gram::{cross_gram, gram, GramOptions, Kernel};
use mmfuse::Matrix;
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

fn take<const N: usize>(data: &mut &[u8]) -> [u8; N] {
    let mut out = [0u8; N];
    for (o, b) in out.iter_mut().zip(data.iter()) {
        *o = *b;
    }
    *data = &data[N.min(data.len())..];
    out
}

fuzz_target!(|input: &[u8]| {
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
        (0..len).map(|_| f64::from_le_bytes(take::<8>(&mut data)) % 1e6).collect()
    };
    let x = values(n * d);
    let y = values(m * d);
    let (Ok(x), Ok(y)) = (Matrix::from_vec(n, d, x), Matrix::from_vec(m, d, y)) else {
        return;
    };
    let one = GramOptions { tile: 1 + t as usize % 17, threads: None };
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
