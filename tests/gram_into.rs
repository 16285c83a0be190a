//! `gram_into` (K(X, X) into a caller's buffer) and the large-K path of the symmetric
//! assembly: from 32 MB of output on, both halves of K go out through non-temporal stores
//! (`STREAM_MIRROR_BYTES` in src/gram/assemble.rs); and `gram_into_streaming`, which hands the
//! rows over as they complete. All must give exactly `gram`'s bits.

use mmfuse::gram::{gram, gram_into, gram_into_streaming, GramOptions, Kernel};
use mmfuse::util::SplitMix64;
use mmfuse::{Error, Matrix};

fn data(n: usize, d: usize, seed: u64) -> Matrix<f32> {
    let mut rng = SplitMix64::new(seed);
    let v = (0..n * d)
        .map(|_| rng.next_f64() as f32 * 2.0 - 1.0)
        .collect();
    Matrix::from_vec(n, d, v).unwrap()
}

#[test]
fn gram_into_equals_gram_bitwise_for_every_kernel_and_overwrites_everything() {
    let x = data(301, 7, 1); // off the tile (256) and vector widths
    let opts = GramOptions::with_threads(2);
    for spec in ["linear", "poly", "rbf", "laplacian", "sigmoid", "cosine"] {
        let kernel: Kernel = spec.parse().unwrap();
        let k = gram(x.as_mat_ref(), &kernel, &opts).unwrap();
        let mut out = vec![f32::NAN; 301 * 301];
        gram_into(x.as_mat_ref(), &kernel, &opts, &mut out).unwrap();
        let same = out
            .iter()
            .zip(k.as_slice())
            .all(|(a, b)| a.to_bits() == b.to_bits());
        assert!(same, "{spec}: gram_into differs from gram");
    }
}

#[test]
fn gram_into_errors_leave_the_output_untouched() {
    let x = data(10, 3, 2);
    let opts = GramOptions::default();
    let mut short = vec![7.0f32; 99];
    let e = gram_into(x.as_mat_ref(), &Kernel::rbf(0.5), &opts, &mut short).unwrap_err();
    assert!(matches!(e, Error::Shape(_)), "{e}");
    assert!(e.to_string().contains("10 x 10"), "{e}");
    assert!(short.iter().all(|&v| v == 7.0));
    let mut bad = x.clone();
    bad.as_mut_slice()[4] = f32::NAN;
    let mut out = vec![7.0f32; 100];
    assert!(gram_into(bad.as_mat_ref(), &Kernel::rbf(0.5), &opts, &mut out).is_err());
    let no_tile = GramOptions {
        tile: 0,
        threads: None,
    };
    assert!(gram_into(x.as_mat_ref(), &Kernel::rbf(0.5), &no_tile, &mut out).is_err());
    assert!(
        out.iter().all(|&v| v == 7.0),
        "an error wrote into the output"
    );
}

/// n = 2900 f32 is 33.6 MB of K: the streamed path. Exactly symmetric, unit diagonal, each
/// sampled entry within the rbf bound of an f64 evaluation, equal to `gram_into`'s bits, and
/// the same for 1 and 2 threads.
#[test]
fn large_k_goes_through_streaming_stores_exactly() {
    let (n, d) = (2900, 5);
    let x = data(n, d, 3);
    let kernel = Kernel::rbf(0.5);
    let k2 = gram(x.as_mat_ref(), &kernel, &GramOptions::with_threads(2)).unwrap();
    let k1 = gram(x.as_mat_ref(), &kernel, &GramOptions::with_threads(1)).unwrap();
    assert!(k1
        .as_slice()
        .iter()
        .zip(k2.as_slice())
        .all(|(a, b)| a.to_bits() == b.to_bits()));
    let mut out = vec![0.0f32; n * n];
    gram_into(
        x.as_mat_ref(),
        &kernel,
        &GramOptions::with_threads(2),
        &mut out,
    )
    .unwrap();
    assert!(out
        .iter()
        .zip(k2.as_slice())
        .all(|(a, b)| a.to_bits() == b.to_bits()));
    let s = k2.as_slice();
    for i in 0..n {
        assert_eq!(s[i * n + i], 1.0);
    }
    let mut rng = SplitMix64::new(9);
    for _ in 0..20_000 {
        let (i, j) = (
            (rng.next_u64() % n as u64) as usize,
            (rng.next_u64() % n as u64) as usize,
        );
        assert_eq!(s[i * n + j].to_bits(), s[j * n + i].to_bits(), "({i}, {j})");
        let xi = &x.as_slice()[i * d..(i + 1) * d];
        let xj = &x.as_slice()[j * d..(j + 1) * d];
        let t: f64 = xi
            .iter()
            .zip(xj)
            .map(|(a, b)| (*a as f64 - *b as f64).powi(2))
            .sum();
        let exact = (-0.5 * t).exp();
        // The module's bound, 8 (d + 4) u a + 2 ulp, with a = 0.5 t and u = 2^-24.
        let a = 0.5 * t;
        let bound = exact * 8.0 * (d as f64 + 4.0) * (f32::EPSILON as f64 / 2.0) * a
            + 2.0 * f32::EPSILON as f64 * exact.max(f32::MIN_POSITIVE as f64);
        let err = (s[i * n + j] as f64 - exact).abs();
        assert!(
            err <= bound * 1.01,
            "({i}, {j}): {} vs {exact}, err {err:e} > {bound:e}",
            s[i * n + j]
        );
    }
}

/// `gram_into_streaming` hands over every row once, in order, as whole rows, with `gram`'s
/// bits, for any tile (one or many row blocks, a ragged last one) and thread count.
#[test]
fn streaming_hands_over_all_rows_in_order_with_grams_bits() {
    let x = data(203, 9, 4);
    for spec in ["rbf", "laplacian", "cosine"] {
        let kernel: Kernel = spec.parse().unwrap();
        for (tile, threads) in [(256, 2), (16, 1), (16, 2), (7, 2)] {
            let opts = GramOptions {
                tile,
                threads: Some(threads),
            };
            let k = gram(x.as_mat_ref(), &kernel, &opts).unwrap();
            let mut out = vec![f32::NAN; 203 * 203];
            let mut seen: Vec<f32> = Vec::new();
            let mut calls = 0;
            gram_into_streaming(x.as_mat_ref(), &kernel, &opts, &mut out, |first, rows| {
                assert_eq!(
                    first * 203,
                    seen.len(),
                    "{spec} tile {tile}: rows out of order"
                );
                assert_eq!(rows.len() % 203, 0, "{spec} tile {tile}: not whole rows");
                seen.extend_from_slice(rows);
                calls += 1;
                Ok(())
            })
            .unwrap();
            assert_eq!(calls, 203usize.div_ceil(tile), "{spec} tile {tile}");
            let bits = |v: &[f32]| v.iter().map(|a| a.to_bits()).collect::<Vec<_>>();
            assert_eq!(
                bits(&seen),
                bits(k.as_slice()),
                "{spec} tile {tile}: handed rows"
            );
            assert_eq!(bits(&out), bits(k.as_slice()), "{spec} tile {tile}: output");
        }
    }
}

/// An error from the consumer stops the assembly and is returned as it was; errors found
/// before the assembly never call the consumer and leave the output untouched.
#[test]
fn streaming_stops_on_the_consumers_error_and_checks_first() {
    let x = data(200, 5, 5);
    let opts = GramOptions {
        tile: 10,
        threads: Some(2),
    };
    let mut out = vec![0.0f32; 200 * 200];
    let mut calls = 0;
    let e = gram_into_streaming(
        x.as_mat_ref(),
        &Kernel::rbf(0.5),
        &opts,
        &mut out,
        |_, _| {
            calls += 1;
            Err(Error::param("consumer", "refused"))
        },
    )
    .unwrap_err();
    assert!(e.to_string().contains("refused"), "{e}");
    assert_eq!(calls, 1, "the consumer is not called again after its error");

    let mut short = vec![7.0f32; 5];
    let mut called = false;
    let e = gram_into_streaming(
        x.as_mat_ref(),
        &Kernel::Linear,
        &opts,
        &mut short,
        |_, _| {
            called = true;
            Ok(())
        },
    )
    .unwrap_err();
    assert!(matches!(e, Error::Shape(_)), "{e}");
    let mut bad = x.clone();
    bad.as_mut_slice()[17] = f32::INFINITY;
    let mut out = vec![7.0f32; 200 * 200];
    assert!(gram_into_streaming(
        bad.as_mat_ref(),
        &Kernel::Linear,
        &opts,
        &mut out,
        |_, _| {
            called = true;
            Ok(())
        }
    )
    .is_err());
    assert!(!called && out.iter().all(|&v| v == 7.0) && short.iter().all(|&v| v == 7.0));
}

/// The O(n d) passes before an assembly (finiteness check, column means and deviations, the
/// centred copy, norms) split over the pool from 2^16 input elements on (src/gram/par.rs):
/// K is bitwise the same for 1, 2 and 3 threads on data that large, far from the origin (so
/// the shift matters), and the first non-finite element reported is the same.
#[test]
fn parallel_prelude_changes_no_bit_and_reports_the_first_bad_element() {
    let (n, d) = (700, 100); // 70,000 elements: above the split threshold
    let mut x = data(n, d, 5);
    for (q, v) in x.as_mut_slice().iter_mut().enumerate() {
        *v += 40.0 + (q % d) as f32; // offset per column
    }
    let y = data(333, d, 6);
    let x64 = Matrix::from_vec(n, d, x.as_slice().iter().map(|&v| f64::from(v)).collect()).unwrap();
    for spec in ["rbf", "cosine", "linear"] {
        let kernel: Kernel = spec.parse().unwrap();
        let run = |t: usize| {
            let o = GramOptions::with_threads(t);
            (
                gram(x.as_mat_ref(), &kernel, &o).unwrap(),
                mmfuse::gram::cross_gram(y.as_mat_ref(), x.as_mat_ref(), &kernel, &o).unwrap(),
                gram(x64.as_mat_ref(), &kernel, &o).unwrap(),
            )
        };
        let one = run(1);
        for t in [2, 3] {
            let other = run(t);
            let same32 = |a: &Matrix<f32>, b: &Matrix<f32>| {
                a.as_slice()
                    .iter()
                    .zip(b.as_slice())
                    .all(|(p, q)| p.to_bits() == q.to_bits())
            };
            assert!(
                same32(&one.0, &other.0),
                "{spec} gram f32: 1 and {t} threads differ"
            );
            assert!(
                same32(&one.1, &other.1),
                "{spec} cross_gram: 1 and {t} threads differ"
            );
            let same64 = one
                .2
                .as_slice()
                .iter()
                .zip(other.2.as_slice())
                .all(|(p, q)| p.to_bits() == q.to_bits());
            assert!(same64, "{spec} gram f64: 1 and {t} threads differ");
        }
    }
    let mut bad = x.clone();
    bad.as_mut_slice()[650 * d + 37] = f32::NAN;
    bad.as_mut_slice()[680 * d + 2] = f32::INFINITY;
    for t in [1, 2] {
        let e = gram(
            bad.as_mat_ref(),
            &Kernel::rbf(0.5),
            &GramOptions::with_threads(t),
        )
        .unwrap_err();
        match e {
            Error::NonFinite { row, col, .. } => assert_eq!((row, col), (650, 37), "{t} threads"),
            other => panic!("{t} threads: unexpected error {other}"),
        }
    }
}

/// Diagonal blocks of 128 rows or more are computed as triangles (the lower-left quarter of
/// each split skipped, src/gram/assemble.rs `inner_products_upper`): K must have exactly the
/// bits of an assembly whose tiles (64) are too small to split, for depths below and above
/// the GEMM's inner blocking, both types, every GEMM kernel, and diagonal blocks of even,
/// odd and non-multiple-of-16 sizes (n = 300: tiles of 256 and 44; n = 650: ... and 138).
#[test]
fn triangular_diagonal_blocks_give_the_square_blocks_bits() {
    /// Both assemblies of `x` with `kernel` agree bit for bit (`bits` reads a value's bits).
    fn same<T: mmfuse::scalar::Real>(x: &Matrix<T>, kernel: &Kernel, bits: fn(T) -> u64) -> bool {
        let small = GramOptions {
            tile: 64,
            threads: Some(2),
        };
        let split = gram(x.as_mat_ref(), kernel, &GramOptions::with_threads(2)).unwrap();
        let square = gram(x.as_mat_ref(), kernel, &small).unwrap();
        split
            .as_slice()
            .iter()
            .zip(square.as_slice())
            .all(|(&a, &b)| bits(a) == bits(b))
    }
    for (n, d) in [(300, 7), (300, 700), (650, 33)] {
        let x = data(n, d, 11);
        let x64 = x.map(f64::from);
        for spec in ["linear", "poly", "rbf", "sigmoid", "cosine"] {
            let kernel: Kernel = spec.parse().unwrap();
            assert!(
                same(&x, &kernel, |v| u64::from(v.to_bits())),
                "f32 {spec} n {n} d {d}"
            );
            assert!(same(&x64, &kernel, f64::to_bits), "f64 {spec} n {n} d {d}");
        }
    }
}
