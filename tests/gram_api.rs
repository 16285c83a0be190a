//! API tests of `mmfuse::gram`: normalisations (training and test kernels), `TrainStats`,
//! `combine` / `combine_into`, the row sources `KernelRows` / `CombinedRows`, kernel specs
//! (`FromStr` / `Display`) and the errors of every entry point.
//!
//! Bounds: `u` is the unit roundoff of the element type T, `u64` that of f64, and
//! `gamma_k(u) = k u / (1 - k u)`. The normalisations compute in f64 and round once to T:
//! `ut` below is the cost of that final rounding (2^-24 for f32, 0 for f64 where it is the
//! identity). Where the data are small integers the kernel values of linear / poly kernels are
//! exact in both types (every partial sum is an integer below 2^24), so only the normalisation
//! arithmetic is left to bound.

use mmfuse::gram::{
    combine, combine_into, cross_gram, gram, normalized_gram, self_similarities, CombinedRows,
    GramOptions, Kernel, KernelRows, Normalization, RowSource, TrainStats,
};
use mmfuse::util::SplitMix64;
use mmfuse::{Error, Matrix, Real};

const U64: f64 = f64::EPSILON / 2.0;
/// Relative allowance for the rounding of the bounds' own evaluation.
const SLACK: f64 = 1.0 + 1e-9;

fn gam(k: usize, u: f64) -> f64 {
    let ku = k as f64 * u;
    ku / (1.0 - ku)
}

fn w<T: Real>(v: T) -> f64 {
    mmfuse_kernels::Float::to_f64(v)
}

fn n<T: Real>(v: f64) -> T {
    mmfuse_kernels::Float::from_f64(v)
}

/// Unit roundoff of T.
fn unit<T: Real>() -> f64 {
    w(T::EPSILON) / 2.0
}

/// Cost of rounding an f64 result to T (0 when T is f64).
fn ut<T: Real>() -> f64 {
    if std::mem::size_of::<T>() == 4 {
        unit::<T>()
    } else {
        0.0
    }
}

/// `n x d`, entries U(-1, 1).
fn random<T: Real>(rows: usize, d: usize, seed: u64) -> Matrix<T> {
    let mut r = SplitMix64::new(seed);
    Matrix::from_vec(
        rows,
        d,
        (0..rows * d).map(|_| n(2.0 * r.next_f64() - 1.0)).collect(),
    )
    .unwrap()
}

/// `n x d`, small integers in -3..=3 (kernels of linear / poly type are exact on them).
fn integers<T: Real>(rows: usize, d: usize, seed: u64) -> Matrix<T> {
    let mut r = SplitMix64::new(seed);
    Matrix::from_vec(
        rows,
        d,
        (0..rows * d)
            .map(|_| n((r.next_u64() % 7) as f64 - 3.0))
            .collect(),
    )
    .unwrap()
}

fn stack<T: Real>(a: &Matrix<T>, b: &Matrix<T>) -> Matrix<T> {
    let mut v = a.as_slice().to_vec();
    v.extend_from_slice(b.as_slice());
    Matrix::from_vec(a.nrows() + b.nrows(), a.ncols(), v).unwrap()
}

fn wide<T: Real>(m: &Matrix<T>) -> Vec<f64> {
    m.as_slice().iter().map(|&v| w(v)).collect()
}

/// k(x, y) evaluated plainly in f64.
fn naive_k(kernel: &Kernel, x: &[f64], y: &[f64]) -> f64 {
    let dot: f64 = x.iter().zip(y).map(|(a, b)| a * b).sum();
    match *kernel {
        Kernel::Linear => dot,
        Kernel::Polynomial {
            gamma,
            degree,
            coef0,
        } => (gamma.unwrap() * dot + coef0).powi(degree as i32),
        Kernel::Rbf { gamma } => {
            (-gamma.unwrap() * x.iter().zip(y).map(|(a, b)| (a - b) * (a - b)).sum::<f64>()).exp()
        }
        Kernel::Laplacian { gamma } => {
            (-gamma.unwrap() * x.iter().zip(y).map(|(a, b)| (a - b).abs()).sum::<f64>()).exp()
        }
        Kernel::Sigmoid { gamma, coef0 } => (gamma.unwrap() * dot + coef0).tanh(),
        Kernel::Cosine => {
            let nx: f64 = x.iter().map(|a| a * a).sum::<f64>().sqrt();
            let ny: f64 = y.iter().map(|a| a * a).sum::<f64>().sqrt();
            if nx == 0.0 || ny == 0.0 {
                0.0
            } else {
                dot / (nx * ny)
            }
        }
    }
}

/// K(X, Y) plainly in f64, row-major.
fn naive_gram<T: Real>(kernel: &Kernel, x: &Matrix<T>, y: &Matrix<T>) -> Vec<f64> {
    let d = x.ncols();
    let (xw, yw) = (wide(x), wide(y));
    let mut out = Vec::new();
    for i in 0..x.nrows() {
        for j in 0..y.nrows() {
            out.push(naive_k(
                kernel,
                &xw[i * d..(i + 1) * d],
                &yw[j * d..(j + 1) * d],
            ));
        }
    }
    out
}

#[track_caller]
fn assert_close(got: f64, want: f64, tol: f64, what: &str) {
    assert!(
        got == want || (got - want).abs() <= tol * SLACK,
        "{what}: got {got:e}, want {want:e}, |diff| {:e} > {:e}",
        (got - want).abs(),
        tol * SLACK
    );
}

fn opts() -> GramOptions {
    GramOptions::default()
}

/// Kernels whose diagonal is positive on our data (trace / unit-diagonal need it).
fn positive_kernels() -> Vec<Kernel> {
    vec![
        Kernel::Linear,
        Kernel::polynomial(0.5, 2, 1.0),
        Kernel::polynomial(0.25, 3, 0.0),
        Kernel::rbf(0.5),
        Kernel::laplacian(0.25),
        Kernel::sigmoid(0.125, 1.0),
        Kernel::Cosine,
    ]
}

// ------------------------------------------------------------------------------------------
// Training normalisations.

/// tr K = n after trace normalisation.
///
/// Bound: the library sums the diagonal (n - 1 additions), divides by n, inverts and multiplies
/// (3 roundings): each entry is `K_ii n / tr K (1 + theta_(n+2))`, then rounded to T (ut); this
/// test sums the n entries in f64 (gamma_(n-1)). So `|sum - n| <= n ((1 + ut)(1 + gamma_(2n+1))
/// - 1)` (all terms positive).
fn trace_case<T: Real>() {
    let (rows, d) = (37, 5);
    let x = random::<T>(rows, d, 1);
    for kernel in positive_kernels() {
        let (k, stats) =
            normalized_gram(x.as_mat_ref(), &kernel, Normalization::Trace, &opts()).unwrap();
        assert_eq!(stats.kind, Normalization::Trace);
        let tr: f64 = (0..rows).map(|i| w(k.get(i, i))).sum();
        let nf = rows as f64;
        let tol = nf * ((1.0 + ut::<T>()) * (1.0 + gam(2 * rows + 1, U64)) - 1.0);
        assert_close(tr, nf, tol, &format!("trace of trace-normalised {kernel}"));
        // And the entries are K / (tr K / n) of the unnormalised K.
        let raw = gram(x.as_mat_ref(), &kernel, &opts()).unwrap();
        let tr_raw: f64 = (0..rows).map(|i| w(raw.get(i, i))).sum();
        for (a, b) in k.as_slice().iter().zip(raw.as_slice()) {
            let want = w(*b) * nf / tr_raw;
            // Library gamma_(n+2) (above), this reference gamma_(n+1), both relative; then ut.
            let tol = want.abs() * ((1.0 + ut::<T>()) * (1.0 + gam(2 * rows + 3, U64)) - 1.0);
            assert_close(w(*a), want, tol, &format!("trace-normalised {kernel}"));
        }
    }
}

#[test]
fn trace_normalisation_gives_trace_n() {
    trace_case::<f32>();
    trace_case::<f64>();
}

/// Unit diagonal: the diagonal is exactly 1 (0 for a zero point of the linear kernel), and the
/// entries are `K_ij / sqrt(K_ii K_jj)` of the unnormalised K.
///
/// Bound: the library computes `1 / sqrt(K_ii)` (2 roundings) for i and j and multiplies twice:
/// `(1 + theta_6)`; the reference `K_ij / sqrt(K_ii K_jj)` costs 3 roundings (the square root
/// halves the product's): `|lib - ref| <= ((1 + ut)(1 + gamma_9) - 1) |ref|`.
fn unit_diag_case<T: Real>() {
    let (rows, d) = (29, 4);
    let mut x = random::<T>(rows, d, 2);
    for j in 0..d {
        x.as_mut_slice()[3 * d + j] = T::ZERO; // a zero point
    }
    for kernel in positive_kernels() {
        let (k, _) =
            normalized_gram(x.as_mat_ref(), &kernel, Normalization::UnitDiag, &opts()).unwrap();
        let raw = gram(x.as_mat_ref(), &kernel, &opts()).unwrap();
        for i in 0..rows {
            let kii = w(raw.get(i, i));
            let want_diag = if kii > 0.0 { 1.0 } else { 0.0 };
            assert_eq!(w(k.get(i, i)), want_diag, "{kernel} diagonal {i}");
            for j in 0..rows {
                if i == j {
                    continue;
                }
                let p = kii * w(raw.get(j, j));
                let want = if p > 0.0 {
                    w(raw.get(i, j)) / p.sqrt()
                } else {
                    0.0
                };
                let tol = want.abs() * ((1.0 + ut::<T>()) * (1.0 + gam(9, U64)) - 1.0);
                assert_close(
                    w(k.get(i, j)),
                    want,
                    tol,
                    &format!("unit-diag {kernel} ({i},{j})"),
                );
            }
        }
    }
}

#[test]
fn unit_diag_normalisation() {
    unit_diag_case::<f32>();
    unit_diag_case::<f64>();
}

/// `H K H` computed naively in f64 (`H = I - 11^T / n`, two plain matrix products).
fn hkh(k: &[f64], n: usize) -> Vec<f64> {
    let h = |i: usize, j: usize| f64::from(u8::from(i == j)) - 1.0 / n as f64;
    let mut a = vec![0.0; n * n];
    for i in 0..n {
        for j in 0..n {
            a[i * n + j] = (0..n).map(|q| h(i, q) * k[q * n + j]).sum();
        }
    }
    let mut out = vec![0.0; n * n];
    for i in 0..n {
        for j in 0..n {
            out[i * n + j] = (0..n).map(|q| a[i * n + q] * h(q, j)).sum();
        }
    }
    out
}

/// Centring: equals `H K H` of the unnormalised K, exactly symmetric, row and column sums 0.
///
/// Bounds (`Km = max |K_ij|`): the library's column means err by <= gamma_n Km, their mean by
/// <= gamma_(2n+1) Km, and `v - m_i - m_j + g` costs 3 roundings of terms <= 4 Km:
/// `e_lib = (2 gamma_n + gamma_(2n+1) + 4 gamma_3) Km`. The naive `H K H` (entries of H rounded
/// twice, two n-term products, `|H| |K| |H| <= 4 Km` since every row of |H| sums to < 2):
/// `e_ref = 4 gamma_(2n+2) Km`. Then the rounding to T: `ut |value|`.
/// Sums: the exact centring of K has zero row sums, so `|sum_j Kc_ij| <= n e_lib +
/// ut sum_j |Kc_ij| + gamma_(n-1) sum_j |Kc_ij|` (the last for this test's own f64 sum).
fn center_case<T: Real + Bits>() {
    let (rows, d) = (31, 6);
    let x = random::<T>(rows, d, 3);
    for kernel in positive_kernels() {
        let (k, stats) =
            normalized_gram(x.as_mat_ref(), &kernel, Normalization::Center, &opts()).unwrap();
        assert_eq!(stats.col_means.len(), rows);
        let raw = gram(x.as_mat_ref(), &kernel, &opts()).unwrap();
        let kw = wide(&raw);
        let km = kw.iter().fold(0.0f64, |m, v| m.max(v.abs()));
        let want = hkh(&kw, rows);
        let u = U64;
        let e_lib = (2.0 * gam(rows, u) + gam(2 * rows + 1, u) + 4.0 * gam(3, u)) * km;
        let e_ref = 4.0 * gam(2 * rows + 2, u) * km;
        for i in 0..rows {
            for j in 0..rows {
                let got = w(k.get(i, j));
                assert_eq!(
                    k.get(i, j).to_bits_u64(),
                    k.get(j, i).to_bits_u64(),
                    "{kernel} centred K not symmetric at ({i},{j})"
                );
                let tol = e_lib + e_ref + ut::<T>() * got.abs();
                assert_close(
                    got,
                    want[i * rows + j],
                    tol,
                    &format!("H K H {kernel} ({i},{j})"),
                );
            }
            let row: Vec<f64> = (0..rows).map(|j| w(k.get(i, j))).collect();
            let abs: f64 = row.iter().map(|v| v.abs()).sum();
            let tol = rows as f64 * e_lib + (ut::<T>() + gam(rows - 1, u)) * abs;
            assert_close(row.iter().sum(), 0.0, tol, &format!("{kernel} row sum {i}"));
            let col: f64 = (0..rows).map(|q| w(k.get(q, i))).sum();
            assert_close(col, 0.0, tol, &format!("{kernel} column sum {i}"));
        }
    }
}

#[test]
fn center_normalisation() {
    center_case::<f32>();
    center_case::<f64>();
}

/// Bit pattern of an f32 or f64, for bitwise comparisons.
trait Bits {
    fn to_bits_u64(self) -> u64;
}
impl Bits for f32 {
    fn to_bits_u64(self) -> u64 {
        self.to_bits() as u64
    }
}
impl Bits for f64 {
    fn to_bits_u64(self) -> u64 {
        self.to_bits()
    }
}

// ------------------------------------------------------------------------------------------
// Test kernels normalised with the training statistics.

/// `TrainStats::from_gram(K_train)` applied to `cross_gram(X_test, X_train)` equals the
/// test-by-train block of the normalised kernel of the stacked data [train; test], where that
/// identity holds:
/// - trace: K_test / (tr K_train / m) (the stacked trace would include the test points);
/// - unit diagonal: K_tj / sqrt(k(t, t) k(j, j)): exactly the stacked normalisation;
/// - centring: Kc_test = K_test - 1 m_train^T - rowmean(K_test) 1^T + mean(K_train).
///
/// Integer data and the linear / polynomial kernels: every kernel value is exact (in f32 and
/// f64, the GEMM and the naive f64 loop alike), so only the normalisation arithmetic errs:
/// - trace: library `v (1 / (tr / m))` (3 roundings; tr exact), reference `v / (tr / m)` (2):
///   `gamma_5 |ref|`, plus ut;
/// - unit diagonal: library gamma_6 (two reciprocal square roots, two products), reference
///   gamma_3: `gamma_9 |ref|`, plus ut;
/// - centring: means of exact integers (1 rounding each), the mean of the m rounded column
///   means (gamma_(m+1) with their errors), 3 roundings of terms <= 4 Km, for both library and
///   reference: `2 (2 u + gamma_(m+1) + 4 gamma_3) Km`, plus ut.
fn cross_exact_case<T: Real + Bits>() {
    let (m, t, d) = (23, 9, 5);
    let train = integers::<T>(m, d, 4);
    let test = integers::<T>(t, d, 5);
    let both = stack(&train, &test);
    for kernel in [
        Kernel::Linear,
        Kernel::polynomial(0.5, 2, 1.0),
        Kernel::polynomial(0.25, 3, 0.0),
    ] {
        let full = naive_gram(&kernel, &both, &both); // (m + t) x (m + t), exact
        let s = m + t;
        let kf = |i: usize, j: usize| full[i * s + j];
        let k_train = gram(train.as_mat_ref(), &kernel, &opts()).unwrap();
        let k_test = cross_gram(test.as_mat_ref(), train.as_mat_ref(), &kernel, &opts()).unwrap();
        // The kernels themselves are exact.
        for i in 0..m {
            for j in 0..m {
                assert_eq!(w(k_train.get(i, j)), kf(i, j), "{kernel} K_train exact");
            }
        }
        for i in 0..t {
            for j in 0..m {
                assert_eq!(w(k_test.get(i, j)), kf(m + i, j), "{kernel} K_test exact");
            }
        }
        let test_self = self_similarities(test.as_mat_ref(), &kernel).unwrap();
        for (i, v) in test_self.iter().enumerate() {
            assert_eq!(*v, kf(m + i, m + i), "{kernel} self-similarity {i}");
        }
        let km = full.iter().fold(0.0f64, |a, v| a.max(v.abs()));
        let u = U64;
        for how in [
            Normalization::Trace,
            Normalization::UnitDiag,
            Normalization::Center,
        ] {
            let stats = TrainStats::from_gram(&k_train, how).unwrap();
            let mut kt = k_test.clone();
            stats.apply_cross(&mut kt, Some(&test_self)).unwrap();
            let tr: f64 = (0..m).map(|j| kf(j, j)).sum();
            let cm: Vec<f64> = (0..m)
                .map(|j| (0..m).map(|i| kf(i, j)).sum::<f64>() / m as f64)
                .collect();
            let grand = cm.iter().sum::<f64>() / m as f64;
            for i in 0..t {
                let rowmean = (0..m).map(|j| kf(m + i, j)).sum::<f64>() / m as f64;
                for (j, &cmj) in cm.iter().enumerate() {
                    let v = kf(m + i, j);
                    let (want, tol) = match how {
                        Normalization::Trace => {
                            let r = v / (tr / m as f64);
                            (r, r.abs() * ((1.0 + ut::<T>()) * (1.0 + gam(5, u)) - 1.0))
                        }
                        Normalization::UnitDiag => {
                            let p = kf(m + i, m + i) * kf(j, j);
                            let r = if p > 0.0 { v / p.sqrt() } else { 0.0 };
                            (r, r.abs() * ((1.0 + ut::<T>()) * (1.0 + gam(9, u)) - 1.0))
                        }
                        _ => {
                            let r = v - cmj - rowmean + grand;
                            let e = 2.0 * (2.0 * u + gam(m + 1, u) + 4.0 * gam(3, u)) * km;
                            (r, e + ut::<T>() * (r.abs() + e))
                        }
                    };
                    assert_close(
                        w(kt.get(i, j)),
                        want,
                        tol,
                        &format!("{how} test kernel {kernel} ({i},{j})"),
                    );
                }
            }
            if how == Normalization::UnitDiag {
                // The same arithmetic as the stacked normalisation: bitwise equal to it.
                let (ks, _) = normalized_gram(both.as_mat_ref(), &kernel, how, &opts()).unwrap();
                for i in 0..t {
                    for j in 0..m {
                        assert_eq!(
                            kt.get(i, j).to_bits_u64(),
                            ks.get(m + i, j).to_bits_u64(),
                            "unit-diag {kernel}: test kernel != stacked rows at ({i},{j})"
                        );
                    }
                }
            }
        }
        // A unit-diagonal test kernel needs the test self-similarities.
        let stats = TrainStats::from_gram(&k_train, Normalization::UnitDiag).unwrap();
        let mut kt = k_test.clone();
        assert!(matches!(
            stats.apply_cross(&mut kt, None),
            Err(Error::InvalidParameter { ref name, .. }) if name == "test_self"
        ));
        assert!(matches!(
            stats.apply_cross(&mut kt, Some(&test_self[1..])),
            Err(Error::Shape(_))
        ));
        // Statistics for m training points refuse a test kernel with another number of columns.
        let stats = TrainStats::from_gram(&k_train, Normalization::Center).unwrap();
        let mut wrong = Matrix::filled(t, m - 1, T::ZERO);
        assert!(matches!(
            stats.apply_cross(&mut wrong, None),
            Err(Error::Shape(_))
        ));
    }
}

#[test]
fn cross_normalisation_matches_stacked_data() {
    cross_exact_case::<f32>();
    cross_exact_case::<f64>();
}

/// The same identities for kernels that are not exact (random data), against the formulas
/// applied to the library's own K_train and K_test (same bounds, with the sums now inexact:
/// trace gamma_(2m+3), centring `2 (2 gamma_(m+1) + gamma_(2m+1) + 4 gamma_3) Km`).
fn cross_random_case<T: Real>() {
    let (m, t, d) = (27, 8, 7);
    let train = random::<T>(m, d, 6);
    let test = random::<T>(t, d, 7);
    for kernel in positive_kernels() {
        let k_train = gram(train.as_mat_ref(), &kernel, &opts()).unwrap();
        let k_test = cross_gram(test.as_mat_ref(), train.as_mat_ref(), &kernel, &opts()).unwrap();
        let test_self = self_similarities(test.as_mat_ref(), &kernel).unwrap();
        let (ktr, kte) = (wide(&k_train), wide(&k_test));
        let km = ktr.iter().chain(&kte).fold(0.0f64, |a, v| a.max(v.abs()));
        let u = U64;
        for how in [
            Normalization::Trace,
            Normalization::UnitDiag,
            Normalization::Center,
        ] {
            let stats = TrainStats::from_gram(&k_train, how).unwrap();
            let mut kt = k_test.clone();
            stats.apply_cross(&mut kt, Some(&test_self)).unwrap();
            let tr: f64 = (0..m).map(|j| ktr[j * m + j]).sum();
            let cm: Vec<f64> = (0..m)
                .map(|j| (0..m).map(|i| ktr[i * m + j]).sum::<f64>() / m as f64)
                .collect();
            let grand = cm.iter().sum::<f64>() / m as f64;
            for i in 0..t {
                let rowmean = (0..m).map(|j| kte[i * m + j]).sum::<f64>() / m as f64;
                for j in 0..m {
                    let v = kte[i * m + j];
                    let (want, tol) = match how {
                        Normalization::Trace => {
                            let r = v / (tr / m as f64);
                            (
                                r,
                                r.abs() * ((1.0 + ut::<T>()) * (1.0 + gam(2 * m + 3, u)) - 1.0),
                            )
                        }
                        Normalization::UnitDiag => {
                            let p = test_self[i] * ktr[j * m + j];
                            let r = if p > 0.0 { v / p.sqrt() } else { 0.0 };
                            (r, r.abs() * ((1.0 + ut::<T>()) * (1.0 + gam(9, u)) - 1.0))
                        }
                        _ => {
                            let r = v - cm[j] - rowmean + grand;
                            let e = 2.0
                                * (2.0 * gam(m + 1, u) + gam(2 * m + 1, u) + 4.0 * gam(3, u))
                                * km;
                            (r, e + ut::<T>() * (r.abs() + e))
                        }
                    };
                    assert_close(
                        w(kt.get(i, j)),
                        want,
                        tol,
                        &format!("{how} test kernel {kernel} ({i},{j})"),
                    );
                }
            }
        }
    }
}

#[test]
fn cross_normalisation_random_data() {
    cross_random_case::<f32>();
    cross_random_case::<f64>();
}

/// `TrainStats::from_data` (no stored K: self-similarities in f64, column means from row blocks
/// of `cross_gram`) equals `from_gram` within rounding.
///
/// Integer data: every kernel value and self-similarity is exact, and the column means are
/// accumulated over the same rows in the same order, so the statistics are equal exactly.
/// Random data, linear kernel (`S_ij = sum_k |x_ik x_jk|`, `N_i = |x_i|^2`): the GEMM entries of
/// `gram` and of the `cross_gram` blocks are both within gamma_d(u) S_ij of the exact value,
/// the f64 self-similarities within gamma_d(u64) N_i, and the test's f64 sums of m terms add
/// gamma_m(u64) relative:
/// - trace mean: `(gamma_d(u) + gamma_(d+m+1)(u64)) mean(N)`;
/// - diagonal: `(gamma_d(u) + gamma_d(u64)) N_i`;
/// - column means: `mean_i(2 gamma_d(u) S_ij) + 2 gamma_(m+1)(u64) mean_i |K_ij|`, the grand
///   mean the mean of those plus `2 gamma_(2m+1)(u64) max |K|`.
fn from_data_case<T: Real>() {
    let tile_opts = GramOptions {
        tile: 8,
        threads: None,
    };
    let (m, d) = (30, 5);
    // Exact case.
    let x = integers::<T>(m, d, 8);
    for kernel in [
        Kernel::Linear,
        Kernel::polynomial(0.5, 2, 1.0),
        Kernel::rbf(0.25),
        Kernel::laplacian(0.5),
    ] {
        let k = gram(x.as_mat_ref(), &kernel, &tile_opts).unwrap();
        for how in [
            Normalization::None,
            Normalization::Trace,
            Normalization::UnitDiag,
            Normalization::Center,
        ] {
            let a = TrainStats::from_gram(&k, how).unwrap();
            let b = TrainStats::from_data(x.as_mat_ref(), &kernel, how, &tile_opts).unwrap();
            assert_eq!(a, b, "{kernel} {how}: from_data != from_gram on exact data");
        }
    }
    // Rounding case.
    let x = random::<T>(m, d, 9);
    let xw = wide(&x);
    let u = unit::<T>();
    let norms: Vec<f64> = (0..m)
        .map(|i| xw[i * d..(i + 1) * d].iter().map(|v| v * v).sum())
        .collect();
    let s =
        |i: usize, j: usize| -> f64 { (0..d).map(|q| (xw[i * d + q] * xw[j * d + q]).abs()).sum() };
    let kernel = Kernel::Linear;
    let k = gram(x.as_mat_ref(), &kernel, &opts()).unwrap();
    let km = k.as_slice().iter().fold(0.0f64, |a, v| a.max(w(*v).abs()));
    let a = TrainStats::from_gram(&k, Normalization::Trace).unwrap();
    let b =
        TrainStats::from_data(x.as_mat_ref(), &kernel, Normalization::Trace, &tile_opts).unwrap();
    let mean_n = norms.iter().sum::<f64>() / m as f64;
    assert_close(
        a.trace_mean,
        b.trace_mean,
        (gam(d, u) + gam(d + m + 1, U64)) * mean_n,
        "trace mean",
    );
    let a = TrainStats::from_gram(&k, Normalization::UnitDiag).unwrap();
    let b = TrainStats::from_data(x.as_mat_ref(), &kernel, Normalization::UnitDiag, &tile_opts)
        .unwrap();
    for (i, (&da, &db)) in a.diag.iter().zip(&b.diag).enumerate() {
        assert_close(da, db, (gam(d, u) + gam(d, U64)) * norms[i], "diagonal");
    }
    let a = TrainStats::from_gram(&k, Normalization::Center).unwrap();
    let b =
        TrainStats::from_data(x.as_mat_ref(), &kernel, Normalization::Center, &tile_opts).unwrap();
    let mut tol_sum = 0.0;
    for j in 0..m {
        let tol = (0..m).map(|i| 2.0 * gam(d, u) * s(i, j)).sum::<f64>() / m as f64
            + 2.0 * gam(m + 1, U64) * (0..m).map(|i| w(k.get(i, j)).abs()).sum::<f64>() / m as f64;
        tol_sum += tol;
        assert_close(a.col_means[j], b.col_means[j], tol, "column mean");
    }
    assert_close(
        a.grand_mean,
        b.grand_mean,
        tol_sum / m as f64 + 2.0 * gam(2 * m + 1, U64) * km,
        "grand mean",
    );
}

#[test]
fn train_stats_from_data_equals_from_gram() {
    from_data_case::<f32>();
    from_data_case::<f64>();
}

#[test]
fn train_stats_errors() {
    let k = Matrix::filled(2, 3, 1.0f64);
    assert!(matches!(
        TrainStats::from_gram(&k, Normalization::Trace),
        Err(Error::Shape(_))
    ));
    let k = Matrix::<f64>::filled(0, 0, 0.0);
    assert!(matches!(
        TrainStats::from_gram(&k, Normalization::Trace),
        Err(Error::Empty(_))
    ));
    // A zero trace cannot be normalised.
    let k = Matrix::filled(2, 2, 0.0f64);
    assert!(matches!(
        TrainStats::from_gram(&k, Normalization::Trace),
        Err(Error::InvalidParameter { ref name, .. }) if name == "normalize"
    ));
    // Statistics of a 3 x 3 matrix do not apply to a 2 x 2 one.
    let k3 = Matrix::from_vec(3, 3, vec![2.0f64, 0.0, 0.0, 0.0, 2.0, 0.0, 0.0, 0.0, 2.0]).unwrap();
    let stats = TrainStats::from_gram(&k3, Normalization::Center).unwrap();
    let mut k2 = Matrix::filled(2, 2, 1.0f64);
    assert!(matches!(stats.apply_train(&mut k2), Err(Error::Shape(_))));
}

#[test]
fn normalization_parse_and_display() {
    for how in [
        Normalization::None,
        Normalization::Trace,
        Normalization::UnitDiag,
        Normalization::Center,
    ] {
        assert_eq!(how.to_string().parse::<Normalization>().unwrap(), how);
    }
    assert_eq!(
        "centre".parse::<Normalization>().unwrap(),
        Normalization::Center
    );
    assert_eq!(
        "unit_diag".parse::<Normalization>().unwrap(),
        Normalization::UnitDiag
    );
    match "zscore".parse::<Normalization>() {
        Err(Error::InvalidParameter { name, reason }) => {
            assert_eq!(name, "normalize");
            assert!(reason.contains("zscore"), "{reason}");
        }
        other => panic!("expected InvalidParameter, got {other:?}"),
    }
}

// ------------------------------------------------------------------------------------------
// combine / combine_into.

/// `sum_m beta_m K_m` against the naive f64 sum.
///
/// Bound: the library rounds each weight to T (ut) and accumulates with fused multiply-adds in
/// T, the term of K_m passing through at most M roundings: `|err| <= gamma_(M+1)(u) sum_m
/// |beta_m K_m,ij|` (one more for the weight; in f64 the weights are exact and this covers the
/// reference's own f64 sum, gamma_M(u64) <= gamma_(M+1)(u)).
fn combine_case<T: Real>() {
    let (r, c) = (13, 21);
    let mats: Vec<Matrix<T>> = (0..3).map(|s| random::<T>(r, c, 20 + s)).collect();
    let refs: Vec<&Matrix<T>> = mats.iter().collect();
    let beta = [0.7, -1.3, 0.1];
    let out = combine(&refs, &beta).unwrap();
    let u = unit::<T>();
    for idx in 0..r * c {
        let want: f64 = mats
            .iter()
            .zip(&beta)
            .map(|(k, b)| b * w(k.as_slice()[idx]))
            .sum();
        let abs: f64 = mats
            .iter()
            .zip(&beta)
            .map(|(k, b)| (b * w(k.as_slice()[idx])).abs())
            .sum();
        assert_close(w(out.as_slice()[idx]), want, gam(4, u) * abs, "combine");
    }
    // combine_into overwrites whatever was there, with the same result.
    let mut into = Matrix::filled(r, c, n::<T>(123.0));
    combine_into(&refs, &beta, &mut into).unwrap();
    assert_eq!(into, out);
    // A single weight 1: the matrix itself, exactly.
    assert_eq!(combine(&refs[..1], &[1.0]).unwrap(), mats[0]);
}

#[test]
fn combine_matches_naive_sum() {
    combine_case::<f32>();
    combine_case::<f64>();
}

#[test]
fn combine_errors() {
    let a = Matrix::filled(2, 2, 1.0f64);
    let b = Matrix::filled(2, 3, 1.0f64);
    assert!(matches!(
        combine(&[&a, &b], &[1.0, 1.0]),
        Err(Error::Shape(_))
    ));
    assert!(matches!(combine(&[&a, &a], &[1.0]), Err(Error::Shape(_))));
    assert!(matches!(combine(&[&a], &[1.0, 2.0]), Err(Error::Shape(_))));
    for bad in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
        match combine(&[&a, &a], &[1.0, bad]) {
            Err(Error::InvalidParameter { name, .. }) => assert_eq!(name, "beta"),
            other => panic!("weight {bad}: expected InvalidParameter, got {other:?}"),
        }
    }
    assert!(matches!(combine::<f64>(&[], &[]), Err(Error::Empty(_))));
    let mut out = Matrix::filled(3, 3, 0.0f64);
    assert!(matches!(
        combine_into(&[&a], &[1.0], &mut out),
        Err(Error::Shape(_))
    ));
    let mut out = Matrix::filled(2, 2, 0.0f64);
    assert!(matches!(
        combine_into(&[&a, &a], &[1.0], &mut out),
        Err(Error::Shape(_))
    ));
}

// ------------------------------------------------------------------------------------------
// Row sources.

/// Kernels for the row-source tests (positive diagonal, so every normalisation applies).
fn row_kernels() -> Vec<Kernel> {
    vec![
        Kernel::Linear,
        Kernel::polynomial(0.5, 2, 1.0),
        Kernel::rbf(0.25),
        Kernel::laplacian(0.5),
        Kernel::Cosine,
    ]
}

/// Tolerance between a `KernelRows` row entry `a` and the same entry `b` of the full
/// normalised matrix, for integer data, when the raw entries of the two paths may differ by
/// `eps` relative (see [`raw_rows_err`]).
///
/// A raw relative difference `eps` moves a trace-normalised or unit-diagonal entry by
/// `eps |value|`, and a centred entry by at most `4 eps Km` (the entry, its row mean, the column
/// mean and the grand mean, each within `eps Km`; Km the largest raw |K|). The f64 arithmetic of
/// the two normalisations (for centring, the row mean of the rows path against the column mean
/// of the full matrix: the same values, possibly summed in another order, `gamma_n(u64) Km`
/// each, and 3 roundings of terms <= 4 Km) adds `2 (gamma_n + 4 gamma_3)(u64) Km`, and the final
/// rounding to T `ut` of each value.
fn rows_tol<T: Real>(a: f64, b: f64, km: f64, nn: usize, eps: f64, how: Normalization) -> f64 {
    let moved = match how {
        Normalization::Center => 4.0 * eps * km,
        _ => eps * (a.abs() + b.abs()),
    };
    moved + 2.0 * (gam(nn, U64) + 4.0 * gam(3, U64)) * km + ut::<T>() * (a.abs() + b.abs())
}

/// Relative difference between the raw entries of `gram(X)` and of the `cross_gram` row blocks
/// behind `KernelRows` and `TrainStats::from_data`, on integer data.
///
/// Both compute every entry with the same epilogue from the same exact inner products /
/// distances / norms, so they are bitwise equal, with one exception: the cosine kernel.
/// `gram` mirrors its upper triangle, `fl(fl(g r_i) r_j)` for i < j, while a cross block
/// computes `fl(fl(g r_j) r_i)` below the diagonal: the same product rounded in another order,
/// apart by <= gamma_4(u) of it; and `gram` sets the diagonal to exactly 1 where a cross block
/// has `g r_i r_i`, `r_i` the reciprocal norm rounded once to T after an f64 square root and
/// division (relative `u + gamma_2(u64)`), i.e. within `(1 + u + gamma_2(u64))^2 (1 + u)^2 - 1`
/// of 1. gamma_5(u) bounds both (|K| <= 1).
fn raw_rows_err<T: Real>(kernel: &Kernel) -> f64 {
    if *kernel == Kernel::Cosine {
        gam(5, unit::<T>())
    } else {
        0.0
    }
}

fn kernel_rows_case<T: Real>() {
    let (nn, d) = (41, 4);
    let x = integers::<T>(nn, d, 30);
    let idx = [0usize, 40, 7, 7, 19, 3];
    for kernel in row_kernels() {
        for how in [
            Normalization::None,
            Normalization::Trace,
            Normalization::UnitDiag,
            Normalization::Center,
        ] {
            for tile in [5usize, 256] {
                let o = GramOptions {
                    tile,
                    threads: None,
                };
                let (full, stats) = normalized_gram(x.as_mat_ref(), &kernel, how, &o).unwrap();
                let src = KernelRows::new(x.as_mat_ref(), &kernel, how, &o).unwrap();
                assert_eq!(src.n(), nn);
                // The largest magnitude of the raw and of the normalised matrix.
                let raw = gram(x.as_mat_ref(), &kernel, &o).unwrap();
                let km = full
                    .as_slice()
                    .iter()
                    .chain(raw.as_slice())
                    .fold(0.0f64, |m, v| m.max(w(*v).abs()));
                let st = src.stats();
                assert_eq!(
                    (st.kind, st.trace_mean, &st.diag),
                    (stats.kind, stats.trace_mean, &stats.diag),
                    "{kernel} {how}: statistics"
                );
                // Column means of raw entries `eps` apart (relative), then f64 sums.
                let eps = raw_rows_err::<T>(&kernel);
                for (a, b) in st.col_means.iter().zip(&stats.col_means) {
                    let tol = (eps + 2.0 * gam(nn, U64)) * km;
                    assert_close(*a, *b, tol, &format!("{kernel} {how}: column mean"));
                }
                let tol = (eps + 2.0 * gam(2 * nn, U64)) * km;
                assert_close(st.grand_mean, stats.grand_mean, tol, "grand mean");
                let rows = src.rows(&idx).unwrap();
                assert_eq!(rows.shape(), (idx.len(), nn));
                for (r, &i) in idx.iter().enumerate() {
                    for j in 0..nn {
                        let (a, b) = (w(rows.get(r, j)), w(full.get(i, j)));
                        let tol = rows_tol::<T>(a, b, km, nn, eps, how);
                        assert_close(
                            a,
                            b,
                            tol,
                            &format!("{kernel} {how} tile {tile} row {i} col {j}"),
                        );
                    }
                    // Entries the full matrix has exactly, the rows have exactly too.
                    let exact_one = how == Normalization::UnitDiag
                        || (how == Normalization::None
                            && (kernel.unit_self_similarity() || kernel == Kernel::Cosine));
                    if exact_one {
                        assert_eq!(w(rows.get(r, i)), 1.0, "{kernel} {how}: row {i} diagonal");
                    }
                }
                // rows_into into a caller's buffer: the same values.
                let mut buf = vec![T::ZERO; 2 * nn];
                src.rows_into(&idx[..2], &mut buf).unwrap();
                assert_eq!(&buf[..], &rows.as_slice()[..2 * nn]);
                let diag = src.diagonal().unwrap();
                for (i, &di) in diag.iter().enumerate() {
                    let (a, b) = (w(di), w(full.get(i, i)));
                    // Trace: the diagonal is self_sim / mean (1 rounding) against K_ii (1 / mean)
                    // (2 roundings): gamma_3(u64) on top of the row tolerance.
                    let tol = rows_tol::<T>(a, b, km, nn, eps, how) + gam(3, U64) * b.abs();
                    assert_close(a, b, tol, &format!("{kernel} {how} diagonal {i}"));
                }
                // Errors: a row out of range, a buffer of the wrong length.
                assert!(matches!(src.rows(&[nn]), Err(Error::Shape(_))));
                let mut short = vec![T::ZERO; nn - 1];
                assert!(matches!(
                    src.rows_into(&[0], &mut short),
                    Err(Error::Shape(_))
                ));
                assert_eq!(src.rows(&[]).unwrap().shape(), (0, nn));
            }
        }
    }
}

#[test]
fn kernel_rows_match_full_matrix() {
    kernel_rows_case::<f32>();
    kernel_rows_case::<f64>();
}

/// Random (non-integer) data: rows of `KernelRows` agree with `gram` to the GEMM's rounding
/// (different blockings): both within gamma_d(u) S_ij of the exact inner product, so within
/// 2 gamma_d(u) S_ij of each other (linear kernel, no normalisation).
fn kernel_rows_random_case<T: Real>() {
    let (nn, d) = (50, 37);
    let x = random::<T>(nn, d, 31);
    let xw = wide(&x);
    let full = gram(x.as_mat_ref(), &Kernel::Linear, &opts()).unwrap();
    let src = KernelRows::new(
        x.as_mat_ref(),
        &Kernel::Linear,
        Normalization::None,
        &GramOptions {
            tile: 16,
            threads: Some(2),
        },
    )
    .unwrap();
    let idx: Vec<usize> = (0..nn).rev().step_by(3).collect();
    let rows = src.rows(&idx).unwrap();
    let u = unit::<T>();
    for (r, &i) in idx.iter().enumerate() {
        for j in 0..nn {
            let s: f64 = (0..d).map(|q| (xw[i * d + q] * xw[j * d + q]).abs()).sum();
            assert_close(
                w(rows.get(r, j)),
                w(full.get(i, j)),
                2.0 * gam(d, u) * s,
                "linear row",
            );
        }
    }
}

#[test]
fn kernel_rows_random_data() {
    kernel_rows_random_case::<f32>();
    kernel_rows_random_case::<f64>();
}

/// `CombinedRows` equals the rows of `combine` of the full (normalised) matrices: the same
/// fused multiply-add sequence on inputs that differ by the row tolerance above, so
/// `|diff| <= sum_m |beta_m| (1 + u) tol_m + 2 gamma_(M+1)(u) sum_m |beta_m K_m|`.
fn combined_rows_case<T: Real>() {
    let (nn, d) = (26, 3);
    let x = integers::<T>(nn, d, 40);
    let specs = [
        (Kernel::rbf(0.25), Normalization::None),
        (Kernel::Linear, Normalization::Trace),
        (Kernel::polynomial(0.5, 2, 1.0), Normalization::Center),
    ];
    let beta = vec![0.5, 0.25, 2.0];
    let mut fulls = Vec::new();
    let mut srcs = Vec::new();
    for (k, how) in &specs {
        fulls.push(normalized_gram(x.as_mat_ref(), k, *how, &opts()).unwrap().0);
        srcs.push(KernelRows::new(x.as_mat_ref(), k, *how, &opts()).unwrap());
    }
    // A precomputed matrix is a row source too.
    let pre = gram(x.as_mat_ref(), &Kernel::laplacian(0.5), &opts()).unwrap();
    let mut all_beta = beta.clone();
    all_beta.push(-1.5);
    let mut sources: Vec<&dyn RowSource<T>> = srcs.iter().map(|s| s as &dyn RowSource<T>).collect();
    sources.push(&pre);
    let comb = CombinedRows::new(sources.clone(), all_beta.clone()).unwrap();
    let mut mats: Vec<&Matrix<T>> = fulls.iter().collect();
    mats.push(&pre);
    let want = combine(&mats, &all_beta).unwrap();
    let idx = [25usize, 0, 13];
    let rows = comb.rows(&idx).unwrap();
    let u = unit::<T>();
    let m = all_beta.len();
    let tol_of = |i: usize, j: usize, a: f64| -> f64 {
        let mut t = 0.0;
        let mut abs = 0.0;
        for (q, mat) in mats.iter().enumerate() {
            let km = mat
                .as_slice()
                .iter()
                .fold(0.0f64, |mm, v| mm.max(w(*v).abs()));
            let v = w(mat.get(i, j));
            abs += (all_beta[q] * v).abs();
            if q < specs.len() {
                t += all_beta[q].abs()
                    * (1.0 + u)
                    * rows_tol::<T>(v, v, km, nn, 0.0, Normalization::None);
            }
        }
        t + 2.0 * gam(m + 1, u) * abs + ut::<T>() * a.abs()
    };
    for (r, &i) in idx.iter().enumerate() {
        for j in 0..nn {
            let a = w(rows.get(r, j));
            assert_close(
                a,
                w(want.get(i, j)),
                tol_of(i, j, a),
                &format!("combined row {i} col {j}"),
            );
        }
    }
    let diag = comb.diagonal().unwrap();
    for (i, &di) in diag.iter().enumerate() {
        let a = w(di);
        let tol = tol_of(i, i, a) + 2.0 * gam(3, U64) * a.abs();
        assert_close(a, w(want.get(i, i)), tol, &format!("combined diagonal {i}"));
    }
    assert!(matches!(comb.rows(&[nn]), Err(Error::Shape(_))));
    // Errors of the constructor.
    assert!(matches!(
        CombinedRows::<T>::new(vec![], vec![]),
        Err(Error::Empty(_))
    ));
    assert!(matches!(
        CombinedRows::new(sources.clone(), beta.clone()),
        Err(Error::Shape(_))
    ));
    let mut bad = all_beta.clone();
    bad[1] = f64::NAN;
    assert!(matches!(
        CombinedRows::new(sources.clone(), bad),
        Err(Error::InvalidParameter { ref name, .. }) if name == "beta"
    ));
    let other = gram(
        integers::<T>(nn - 1, d, 41).as_mat_ref(),
        &Kernel::Linear,
        &opts(),
    )
    .unwrap();
    let mut mixed = sources.clone();
    mixed.push(&other);
    let mut mixed_beta = all_beta.clone();
    mixed_beta.push(1.0);
    assert!(matches!(
        CombinedRows::new(mixed, mixed_beta),
        Err(Error::Shape(_))
    ));
}

#[test]
fn combined_rows_match_combine() {
    combined_rows_case::<f32>();
    combined_rows_case::<f64>();
}

// ------------------------------------------------------------------------------------------
// Kernel specs.

#[test]
fn kernel_spec_round_trip() {
    let kernels = [
        Kernel::Linear,
        Kernel::Cosine,
        Kernel::Rbf { gamma: None },
        Kernel::rbf(0.1),
        Kernel::rbf(1e-300),
        Kernel::rbf(3.0e17),
        Kernel::Laplacian { gamma: None },
        Kernel::laplacian(0.123_456_789_012_345_67),
        Kernel::Polynomial {
            gamma: None,
            degree: 3,
            coef0: 1.0,
        },
        Kernel::polynomial(0.5, 2, 0.0),
        Kernel::polynomial(2.0, 7, -1.25),
        Kernel::polynomial(1.0 / 3.0, 1, 1e-7),
        Kernel::Sigmoid {
            gamma: None,
            coef0: -0.5,
        },
        Kernel::sigmoid(0.01, 0.0),
    ];
    for k in kernels {
        let s = k.to_string();
        let back: Kernel = s
            .parse()
            .unwrap_or_else(|e| panic!("`{s}` does not parse: {e}"));
        assert_eq!(back, k, "round trip of `{s}`");
    }
    // Aliases, spaces, case, defaults.
    assert_eq!(
        "gaussian".parse::<Kernel>().unwrap(),
        Kernel::Rbf { gamma: None }
    );
    assert_eq!(
        " polynomial : degree = 2 , coef0 = 0 "
            .parse::<Kernel>()
            .unwrap(),
        Kernel::Polynomial {
            gamma: None,
            degree: 2,
            coef0: 0.0
        }
    );
    assert_eq!("RBF:gamma=0.5".parse::<Kernel>().unwrap(), Kernel::rbf(0.5));
    assert_eq!(
        "sigmoid".parse::<Kernel>().unwrap(),
        Kernel::Sigmoid {
            gamma: None,
            coef0: 1.0
        }
    );
}

#[track_caller]
fn parse_error(spec: &str, param: &str, mentions: &str) {
    match spec.parse::<Kernel>() {
        Err(Error::InvalidParameter { name, reason }) => {
            assert_eq!(name, param, "`{spec}`: {reason}");
            assert!(
                reason.contains(mentions),
                "`{spec}`: reason `{reason}` lacks `{mentions}`"
            );
        }
        other => panic!("`{spec}`: expected InvalidParameter, got {other:?}"),
    }
}

#[test]
fn kernel_spec_errors_name_the_parameter() {
    parse_error("gauss", "kernel", "gauss");
    parse_error("", "kernel", "unknown kernel");
    parse_error("rbf:width=1", "kernel", "width");
    parse_error("rbf:gamma", "kernel", "gamma");
    parse_error("linear:gamma=1", "kernel", "gamma");
    parse_error("cosine:coef0=1", "kernel", "coef0");
    parse_error("rbf:degree=2", "kernel", "degree");
    parse_error("laplacian:coef0=0", "kernel", "coef0");
    parse_error("sigmoid:degree=2", "kernel", "degree");
    parse_error("rbf:gamma=abc", "gamma", "abc");
    parse_error("poly:coef0=x", "coef0", "x");
    parse_error("poly:degree=2.5", "degree", "2.5");
    parse_error("poly:degree=-1", "degree", "-1");
    parse_error("poly:degree=0", "degree", "0");
    parse_error("rbf:gamma=0", "gamma", "0");
    parse_error("rbf:gamma=-1", "gamma", "-1");
    parse_error("rbf:gamma=NaN", "gamma", "NaN");
    parse_error("laplacian:gamma=inf", "gamma", "inf");
    parse_error("sigmoid:coef0=inf", "coef0", "inf");
}

// ------------------------------------------------------------------------------------------
// Bad input to gram / cross_gram.

#[track_caller]
fn expect_param<T: std::fmt::Debug>(r: mmfuse::Result<T>, param: &str) {
    match r {
        Err(Error::InvalidParameter { name, .. }) => assert_eq!(name, param),
        other => panic!("expected InvalidParameter({param}), got {other:?}"),
    }
}

fn bad_input_case<T: Real>() {
    let o = opts();
    let x = random::<T>(4, 3, 50);
    let y = random::<T>(5, 3, 51);
    let rbf = Kernel::rbf(0.5);
    // Empty.
    let e0 = Matrix::<T>::filled(0, 3, T::ZERO);
    let e1 = Matrix::<T>::filled(3, 0, T::ZERO);
    for e in [&e0, &e1] {
        assert!(matches!(
            gram(e.as_mat_ref(), &rbf, &o),
            Err(Error::Empty(_))
        ));
        assert!(matches!(
            cross_gram(e.as_mat_ref(), y.as_mat_ref(), &rbf, &o),
            Err(Error::Empty(_))
        ));
        assert!(matches!(
            cross_gram(x.as_mat_ref(), e.as_mat_ref(), &rbf, &o),
            Err(Error::Empty(_))
        ));
    }
    // Mismatched widths.
    let y4 = random::<T>(5, 4, 52);
    assert!(matches!(
        cross_gram(x.as_mat_ref(), y4.as_mat_ref(), &rbf, &o),
        Err(Error::Shape(_))
    ));
    // Non-finite values, named by argument, row and column.
    for bad in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
        let mut xb = x.clone();
        xb.as_mut_slice()[2 * 3 + 1] = n(bad);
        for kernel in [Kernel::Linear, rbf, Kernel::laplacian(1.0), Kernel::Cosine] {
            match gram(xb.as_mat_ref(), &kernel, &o) {
                Err(Error::NonFinite { what, row, col, .. }) => {
                    assert_eq!((what.as_str(), row, col), ("X", 2, 1))
                }
                other => panic!("{bad} in X: expected NonFinite, got {other:?}"),
            }
            match cross_gram(xb.as_mat_ref(), y.as_mat_ref(), &kernel, &o) {
                Err(Error::NonFinite { what, row, col, .. }) => {
                    assert_eq!((what.as_str(), row, col), ("X", 2, 1))
                }
                other => panic!("{bad} in X: expected NonFinite, got {other:?}"),
            }
            let mut yb = y.clone();
            yb.as_mut_slice()[4 * 3 + 2] = n(bad);
            match cross_gram(x.as_mat_ref(), yb.as_mat_ref(), &kernel, &o) {
                Err(Error::NonFinite { what, row, col, .. }) => {
                    assert_eq!((what.as_str(), row, col), ("Y", 4, 2))
                }
                other => panic!("{bad} in Y: expected NonFinite, got {other:?}"),
            }
            // A non-contiguous view reports the row and column of the view.
            let fm = faer::Mat::<T>::from_fn(4, 3, |i, j| xb.get(i, j));
            match gram(fm.as_ref(), &kernel, &o) {
                Err(Error::NonFinite { row, col, .. }) => assert_eq!((row, col), (2, 1)),
                other => panic!("{bad} in a column-major X: expected NonFinite, got {other:?}"),
            }
        }
        // The message names the value, the row and the column.
        let msg = gram(xb.as_mat_ref(), &rbf, &o).unwrap_err().to_string();
        assert!(msg.contains("row 2") && msg.contains("column 1"), "{msg}");
    }
    // Parameters.
    for g in [0.0, -1.0, f64::NAN, f64::INFINITY] {
        expect_param(gram(x.as_mat_ref(), &Kernel::rbf(g), &o), "gamma");
        expect_param(
            cross_gram(x.as_mat_ref(), y.as_mat_ref(), &Kernel::laplacian(g), &o),
            "gamma",
        );
        expect_param(gram(x.as_mat_ref(), &Kernel::sigmoid(g, 0.0), &o), "gamma");
        expect_param(
            gram(x.as_mat_ref(), &Kernel::polynomial(g, 2, 0.0), &o),
            "gamma",
        );
    }
    expect_param(
        gram(x.as_mat_ref(), &Kernel::polynomial(1.0, 0, 0.0), &o),
        "degree",
    );
    expect_param(
        cross_gram(
            x.as_mat_ref(),
            y.as_mat_ref(),
            &Kernel::polynomial(1.0, 0, 0.0),
            &o,
        ),
        "degree",
    );
    expect_param(
        gram(x.as_mat_ref(), &Kernel::sigmoid(1.0, f64::NAN), &o),
        "coef0",
    );
    let tile0 = GramOptions {
        tile: 0,
        threads: None,
    };
    expect_param(gram(x.as_mat_ref(), &rbf, &tile0), "tile");
    expect_param(
        cross_gram(x.as_mat_ref(), y.as_mat_ref(), &rbf, &tile0),
        "tile",
    );
    let threads0 = GramOptions {
        tile: 256,
        threads: Some(0),
    };
    expect_param(gram(x.as_mat_ref(), &rbf, &threads0), "threads");
    expect_param(
        cross_gram(x.as_mat_ref(), y.as_mat_ref(), &rbf, &threads0),
        "threads",
    );
    expect_param(
        KernelRows::new(x.as_mat_ref(), &rbf, Normalization::None, &tile0).map(|_| ()),
        "tile",
    );
    // The default gamma is 1/d.
    let k = gram(x.as_mat_ref(), &Kernel::Rbf { gamma: None }, &o).unwrap();
    let k3 = gram(x.as_mat_ref(), &Kernel::rbf(1.0 / 3.0), &o).unwrap();
    assert_eq!(k, k3);
}

#[test]
fn bad_input_is_an_error_not_a_panic() {
    bad_input_case::<f32>();
    bad_input_case::<f64>();
}

/// Kernel PCA of a linear kernel is PCA: the eigenvalues of the centred K = X X^T are those of
/// X_c^T X_c, and the projections are X_c's coordinates on the principal axes (up to sign,
/// fixed by the convention). Bad input is an error.
#[test]
fn kernel_pca_of_a_linear_kernel_is_pca() {
    use mmfuse::gram::{fisher_criterion, kernel_pca};
    // 6 points in 2-D with distinct principal variances.
    let pts = [
        [2.0, 0.1],
        [-1.5, 0.3],
        [0.5, -0.4],
        [3.0, 0.2],
        [-2.5, -0.1],
        [-1.5, -0.1],
    ];
    let x = Matrix::from_vec(6, 2, pts.iter().flatten().copied().collect()).unwrap();
    let k = gram(
        x.as_mat_ref(),
        &Kernel::Linear,
        &GramOptions::with_threads(1),
    )
    .unwrap();
    let pca = kernel_pca(&k, 2).unwrap();
    // Scatter matrix of the centred points, and its eigenvalues in closed form.
    let mean = [
        pts.iter().map(|p| p[0]).sum::<f64>() / 6.0,
        pts.iter().map(|p| p[1]).sum::<f64>() / 6.0,
    ];
    let (mut a, mut b, mut c) = (0.0, 0.0, 0.0);
    for p in &pts {
        let (u, v) = (p[0] - mean[0], p[1] - mean[1]);
        a += u * u;
        b += u * v;
        c += v * v;
    }
    let disc = ((a - c) * (a - c) + 4.0 * b * b).sqrt();
    let expected = [(a + c + disc) / 2.0, (a + c - disc) / 2.0];
    for (got, want) in pca.eigenvalues.iter().zip(expected) {
        assert!(
            (got - want).abs() <= 1e-12 * want.max(1.0),
            "{got} vs {want}"
        );
    }
    // Projections: ||proj_k||^2 = lambda_k, columns orthogonal, pairwise distances kept.
    let col = |c: usize| {
        (0..6)
            .map(|i| pca.projections.get(i, c))
            .collect::<Vec<_>>()
    };
    let (p0, p1) = (col(0), col(1));
    let dot = |u: &[f64], v: &[f64]| u.iter().zip(v).map(|(a, b)| a * b).sum::<f64>();
    assert!((dot(&p0, &p0) - expected[0]).abs() < 1e-10);
    assert!((dot(&p1, &p1) - expected[1]).abs() < 1e-10);
    assert!(dot(&p0, &p1).abs() < 1e-10);
    for i in 0..6 {
        for j in 0..6 {
            let d_in = (pts[i][0] - pts[j][0]).powi(2) + (pts[i][1] - pts[j][1]).powi(2);
            let d_out = (p0[i] - p0[j]).powi(2) + (p1[i] - p1[j]).powi(2);
            assert!((d_in - d_out).abs() < 1e-10, "{i} {j}");
        }
    }
    // Deterministic signs: the largest-magnitude entry of each axis is positive.
    for p in [&p0, &p1] {
        let big = p
            .iter()
            .copied()
            .fold(0.0f64, |m, v| if v.abs() > m.abs() { v } else { m });
        assert!(big > 0.0);
    }
    // Fisher's criterion: well separated classes score higher than mixed ones.
    let labels = [1.0, -1.0, 1.0, 1.0, -1.0, -1.0];
    let mixed = [1.0, 1.0, -1.0, -1.0, 1.0, -1.0];
    let good = fisher_criterion(&pca.projections, &labels).unwrap();
    let bad = fisher_criterion(&pca.projections, &mixed).unwrap();
    assert!(good > bad && bad >= 0.0, "{good} {bad}");

    // Bad input.
    let rect = Matrix::from_vec(2, 3, vec![0.0; 6]).unwrap();
    assert!(matches!(kernel_pca(&rect, 1), Err(Error::Shape(_))));
    assert!(matches!(
        kernel_pca(&k, 0),
        Err(Error::InvalidParameter { .. })
    ));
    assert!(matches!(
        kernel_pca(&k, 7),
        Err(Error::InvalidParameter { .. })
    ));
    let mut nan = k.clone();
    nan.as_mut_slice()[3] = f64::NAN;
    assert!(matches!(kernel_pca(&nan, 1), Err(Error::NonFinite { .. })));
    let empty = Matrix::from_vec(0, 0, Vec::<f64>::new()).unwrap();
    assert!(matches!(kernel_pca(&empty, 1), Err(Error::Empty(_))));
    assert!(fisher_criterion(&pca.projections, &labels[..5]).is_err());
    assert!(fisher_criterion(&pca.projections, &[1.0; 6]).is_err());
}
