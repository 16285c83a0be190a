//! Inputs that fuzz targets reported, kept as regression tests (issue 6). Each decodes its
//! bytes exactly as its target does (see `fuzz/fuzz_targets/`).

use mmfuse::gram::{cross_gram, gram, GramOptions, Kernel};
use mmfuse::Matrix;

fn take<const N: usize>(data: &mut &[u8]) -> [u8; N] {
    let mut out = [0u8; N];
    for (o, b) in out.iter_mut().zip(data.iter()) {
        *o = *b;
    }
    *data = &data[N.min(data.len())..];
    out
}

/// `gram_api`'s decoding: shapes, kernel, parameters and values from the bytes.
fn gram_case(input: &[u8]) -> (Matrix<f64>, Matrix<f64>, Kernel, usize) {
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
    let x = Matrix::from_vec(n, d, values(n * d)).unwrap();
    let y = Matrix::from_vec(m, d, values(m * d)).unwrap();
    (x, y, kernel, 1 + t as usize % 17)
}

/// gram_api, leak-169c9cda: LeakSanitizer reported 64 bytes from glibc's thread-exit TLS
/// registration after `GramOptions::with_threads(2)` built (and dropped) a pool per call. Not an
/// mmfuse leak (the harness now uses persistent pools); kept to check that such an input,
/// with per-call pools of 1 and 2 threads, gives bitwise the same result or the same error.
#[test]
fn gram_api_leak_169c9cda() {
    let bytes = include_bytes!("fixtures/fuzz/gram_api-leak-169c9cda");
    let (x, y, kernel, tile) = gram_case(bytes);
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
