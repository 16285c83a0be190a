//! Property tests of `symmetric_block_is_bad_on` on every instruction set of `available_isas()`,
//! against its scalar twin `reference::symmetric_block_is_bad`.
//!
//! The kernel promises the *exact* boolean of the twin, so the tests compare with `==`, on
//! orders 1 to 70 (not multiples of the 4 x 4 register tiles nor of the 32 x 32 blocks MKL
//! uses), on many row / column ranges per matrix (ragged edges, ranges crossing the diagonal,
//! empty and inverted ones), with perturbations aimed at each test's boundary: NaN and
//! infinities on either side of the diagonal, asymmetries a few ulps above and below `tol`,
//! entries a few ulps above and below the minor bound, and non-finite `tol` / `sqrt_diag`.
//! A second test puts one defect at every position of a matrix in turn, so that a lane mix-up
//! in the register transpose cannot hide behind a lucky draw.
//!
//! Case count: 64 per property unless the `PROPTEST_CASES` environment variable says otherwise.

use core::ops::Range;
use mmfuse_kernels::{available_isas, reference, symmetric_block_is_bad_on};
use proptest::prelude::*;

/// 64 cases unless `PROPTEST_CASES` is set (`ProptestConfig::with_cases` would override the
/// environment variable, so it is read here).
fn config() -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(64);
    ProptestConfig {
        cases,
        ..ProptestConfig::default()
    }
}

/// xorshift64: the shape of a case is what proptest shrinks; the values follow from a seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, k: usize) -> usize {
        (self.next() % k as u64) as usize
    }
    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 * (2.0f64).powi(-53)
    }
}

/// The neighbouring float of `x` upwards or downwards (`f64::next_up` needs Rust 1.86, above
/// the crate's MSRV); NaN and the infinity in that direction stay put.
fn next(x: f64, up: bool) -> f64 {
    if x.is_nan() || x == if up { f64::INFINITY } else { f64::NEG_INFINITY } {
        return x;
    }
    if x == 0.0 {
        let tiny = f64::from_bits(1);
        return if up { tiny } else { -tiny };
    }
    let away_from_zero = (x > 0.0) == up;
    let b = x.to_bits();
    f64::from_bits(if away_from_zero { b + 1 } else { b - 1 })
}

/// `x` moved by `k` ulps (up for k > 0).
fn ulps(x: f64, k: i32) -> f64 {
    let mut v = x;
    for _ in 0..k.unsigned_abs() {
        v = next(v, k > 0);
    }
    v
}

/// A symmetric matrix with a positive diagonal and |K_ij| below sqrt(K_ii K_jj) (so clean
/// under the minor test with slack >= 1), its sqrt_diag, and the test parameters.
#[derive(Debug, Clone)]
struct Case {
    n: usize,
    data: Vec<f64>,
    sqrt_diag: Option<Vec<f64>>,
    tol: f64,
    slack: f64,
    ranges: Vec<(Range<usize>, Range<usize>)>,
}

fn case() -> impl Strategy<Value = Case> {
    let n = prop_oneof![1usize..=70, Just(32), Just(33), Just(64), Just(36), Just(8)];
    (n, any::<u64>(), 0usize..5, 0usize..8, 0usize..4).prop_map(
        |(n, seed, defects, tol_kind, minor_kind)| {
            let mut rng = Rng(seed | 1);
            let diag: Vec<f64> = (0..n).map(|_| 0.25 + 4.0 * rng.unit()).collect();
            let sd: Vec<f64> = diag.iter().map(|d| d.sqrt()).collect();
            let mut data = vec![0.0; n * n];
            for i in 0..n {
                data[i * n + i] = diag[i];
                for j in 0..i {
                    let v = (2.0 * rng.unit() - 1.0) * sd[i] * sd[j];
                    data[i * n + j] = v;
                    data[j * n + i] = v;
                }
            }
            let tol = [0.0, 1e-12, 1e-8, 1e-3, 0.5, 1e-300, f64::INFINITY, f64::NAN][tol_kind];
            let slack = [1.0 + 1e-6, 1.0, 0.5, 1.0 + 1e-6][minor_kind];
            let mut sqrt_diag = (minor_kind != 3).then(|| sd.clone());
            // Occasionally a non-finite or too-small sqrt_diag entry.
            if let (Some(s), true) = (sqrt_diag.as_mut(), n > 0 && rng.below(8) == 0) {
                s[rng.below(n)] = [f64::NAN, f64::INFINITY, 0.0][rng.below(3)];
            }
            for _ in 0..defects {
                if n < 2 {
                    break;
                }
                let i = 1 + rng.below(n - 1);
                let j = rng.below(i);
                // The entry changed: lower K_ij or upper K_ji.
                let (at, other) = if rng.below(2) == 0 {
                    (i * n + j, j * n + i)
                } else {
                    (j * n + i, i * n + j)
                };
                let a = data[other];
                let t = if tol.is_finite() { tol } else { 1e-3 };
                let bound = sd[i] * slack * sd[j] + t;
                match rng.below(8) {
                    0 => data[at] = f64::NAN,
                    1 => data[at] = f64::INFINITY,
                    2 => data[at] = f64::NEG_INFINITY,
                    3 => {
                        data[at] = f64::INFINITY;
                        data[other] = f64::INFINITY;
                    }
                    // Asymmetry within a few ulps of tol, either side.
                    4 | 5 => data[at] = ulps(a + t, rng.below(7) as i32 - 3),
                    // Both entries within a few ulps of the minor bound, either sign.
                    6 => {
                        let sign = if rng.below(2) == 0 { 1.0 } else { -1.0 };
                        let v = sign * ulps(bound, rng.below(7) as i32 - 3);
                        data[at] = v;
                        data[other] = v;
                    }
                    _ => data[at] = a + 10.0 * t + 1.0,
                }
            }
            let mut ranges = vec![(0..n, 0..n)];
            for _ in 0..12 {
                let (r0, c0) = (rng.below(n + 1), rng.below(n + 1));
                let r1 = r0 + rng.below(n + 1 - r0);
                let c1 = c0 + rng.below(n + 1 - c0);
                ranges.push((r0..r1, c0..c1));
            }
            // Square blocks on and below the diagonal, as MKL's validation calls it (at 128).
            for bs in [16, 24, 32] {
                for b0 in (0..n).step_by(bs) {
                    for j0 in (0..=b0).step_by(bs) {
                        ranges.push((b0..(b0 + bs).min(n), j0..(j0 + bs).min(n)));
                    }
                }
            }
            // Inverted ranges (empty).
            ranges.push((n..n / 2, 0..n));
            ranges.push((0..n, n / 2..n / 3));
            Case {
                n,
                data,
                sqrt_diag,
                tol,
                slack,
                ranges,
            }
        },
    )
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn equals_the_twin(c in case()) {
        let sd = c.sqrt_diag.as_deref();
        for (rows, cols) in &c.ranges {
            let want = reference::symmetric_block_is_bad(
                &c.data, c.n, rows.clone(), cols.clone(), c.tol, sd, c.slack,
            );
            for arch in available_isas() {
                let got = symmetric_block_is_bad_on(
                    arch, &c.data, c.n, rows.clone(), cols.clone(), c.tol, sd, c.slack,
                );
                prop_assert_eq!(got, want, "{:?} rows {:?} cols {:?}", arch, rows, cols);
            }
        }
    }
}

/// One defect at a time at every position (i, j) of the lower triangle (on either side of the
/// diagonal, of each kind): found over the whole matrix and over the 4-row band and column
/// range holding it, missed by ranges that exclude its row or column.
#[test]
fn every_position_is_checked() {
    for n in [13usize, 37] {
        let sd: Vec<f64> = (0..n).map(|i| 1.0 + (i % 5) as f64 * 0.25).collect();
        let mut clean = vec![0.0; n * n];
        for i in 0..n {
            for j in 0..n {
                // Symmetric, and within the minor bound with room to spare.
                clean[i * n + j] = 0.5 * sd[i] * sd[j] * (((i + j) % 7) as f64 / 7.0);
            }
        }
        let (tol, slack) = (1e-9, 1.0 + 1e-6);
        for arch in available_isas() {
            assert!(!symmetric_block_is_bad_on(
                arch,
                &clean,
                n,
                0..n,
                0..n,
                tol,
                Some(&sd),
                slack
            ));
        }
        for i in 1..n {
            for j in 0..i {
                for kind in 0..4 {
                    let mut m = clean.clone();
                    match kind {
                        0 => m[i * n + j] = f64::NAN,
                        1 => m[j * n + i] = f64::NAN,
                        2 => m[j * n + i] += 1e-6,
                        _ => {
                            let v = -2.0 * sd[i] * sd[j];
                            m[i * n + j] = v;
                            m[j * n + i] = v;
                        }
                    }
                    let band = (i / 4 * 4)..(i / 4 * 4 + 4).min(n);
                    let hit = [(0..n, 0..n), (band, j..j + 1), (i..n, 0..j + 1)];
                    let miss = [
                        (0..i, 0..n),
                        (i + 1..n, 0..n),
                        (0..n, 0..j),
                        (0..n, j + 1..n),
                    ];
                    for arch in available_isas() {
                        for (rows, cols) in &hit {
                            let got = symmetric_block_is_bad_on(
                                arch,
                                &m,
                                n,
                                rows.clone(),
                                cols.clone(),
                                tol,
                                Some(&sd),
                                slack,
                            );
                            assert!(
                                got,
                                "{arch:?} n {n} ({i}, {j}) kind {kind} {rows:?} {cols:?}"
                            );
                        }
                        for (rows, cols) in &miss {
                            let got = symmetric_block_is_bad_on(
                                arch,
                                &m,
                                n,
                                rows.clone(),
                                cols.clone(),
                                tol,
                                Some(&sd),
                                slack,
                            );
                            assert!(
                                !got,
                                "{arch:?} n {n} ({i}, {j}) kind {kind} {rows:?} {cols:?}"
                            );
                        }
                    }
                }
            }
        }
    }
}

/// The documented answers on small hand-checked cases, for the twin and every instruction set.
#[test]
fn hand_checked_cases() {
    let sd = [2.0, 3.0];
    let cases: [([f64; 4], f64, bool, bool); 7] = [
        // matrix, tol, with minors, bad
        ([4.0, 1.0, 1.0, 9.0], 0.0, true, false),
        ([4.0, 1.0, 1.5, 9.0], 0.5, true, false), // |diff| = tol exactly
        ([4.0, 1.0, 1.5, 9.0], 0.25, true, true),
        ([4.0, 6.0, 6.0, 9.0], 0.0, true, false), // |K_01| = sqrt(4 * 9) exactly
        ([4.0, 7.0, 7.0, 9.0], 0.0, true, true),
        ([4.0, 7.0, 7.0, 9.0], 0.0, false, false), // minors not tested
        (
            [4.0, f64::INFINITY, f64::INFINITY, 9.0],
            f64::INFINITY,
            false,
            true,
        ),
    ];
    for (m, tol, minors, bad) in cases {
        let sdo = minors.then_some(&sd[..]);
        assert_eq!(
            reference::symmetric_block_is_bad(&m, 2, 0..2, 0..2, tol, sdo, 1.0),
            bad
        );
        for arch in available_isas() {
            let got = symmetric_block_is_bad_on(arch, &m, 2, 0..2, 0..2, tol, sdo, 1.0);
            assert_eq!(got, bad, "{arch:?} {m:?} tol {tol}");
        }
    }
}

/// The minor bound is `(sqrt_diag[i] * slack) * sqrt_diag[j] + tol`, rounded after each
/// operation: entries exactly at that bound and at the bounds a fused multiply-add or the other
/// association would give (chosen where those differ) get the twin's answer in every lane of
/// the register tiles of a band of 8 rows (rows 8..16, columns 0..8: two tiles side by side,
/// two deep) and of a lone band of 4 (rows 8..12).
#[test]
fn minor_bound_rounds_like_the_twin() {
    let n = 16;
    let mut rng = Rng(0x5EED_1234_ABCD_0001);
    let mut differing = 0;
    for i in 8..16 {
        for j in 0..8 {
            let mut found = 0;
            while found < 6 {
                let (x, y) = (0.5 + rng.unit(), 0.5 + rng.unit());
                let slack = 1.0 + 1e-6 * rng.unit();
                let tol = [1e-8, 1e-3, 0.3][rng.below(3)];
                let bound = x * slack * y + tol;
                let fused = (x * slack).mul_add(y, tol);
                let other = x * (slack * y) + tol;
                if fused == bound && other == bound {
                    continue;
                }
                found += 1;
                differing += 1;
                let mut sd = vec![1.0; n];
                sd[i] = x;
                sd[j] = y;
                for a in [bound, fused, other] {
                    let mut m = vec![0.0; n * n];
                    m[i * n + j] = a;
                    m[j * n + i] = a;
                    let want =
                        reference::symmetric_block_is_bad(&m, n, 0..n, 0..n, tol, Some(&sd), slack);
                    assert_eq!(want, a > bound);
                    for arch in available_isas() {
                        for rows in [8..16, 8..12, 12..16] {
                            if !rows.contains(&i) {
                                continue;
                            }
                            let got = symmetric_block_is_bad_on(
                                arch,
                                &m,
                                n,
                                rows.clone(),
                                0..8,
                                tol,
                                Some(&sd),
                                slack,
                            );
                            assert_eq!(
                                got, want,
                                "{arch:?} {rows:?} ({i}, {j}) a {a:e} bound {bound:e}"
                            );
                        }
                    }
                }
            }
        }
    }
    assert_eq!(differing, 64 * 6);
}
