//! Shared by the property tests of both crates (`tests/*.rs` include it with
//! `#[path = "support/numerics.rs"] mod numerics;`, `kernels/tests/*.rs` with
//! `#[path = "../../tests/support/numerics.rs"]`): floating-point error-analysis constants,
//! double-double arithmetic for near-exact references, a seeded generator, and the proptest
//! configuration.
#![allow(dead_code)] // each test file uses its own subset

use proptest::test_runner::Config as ProptestConfig;

/// Relative allowance for the rounding of the bounds' own f64 evaluation.
pub const SLACK: f64 = 1.0 + 1e-9;
/// Unit roundoff of f64 (of the references).
pub const U64: f64 = f64::EPSILON / 2.0;
/// Underflow error of one f64 operation (smallest subnormal, conservative).
pub const ETA64: f64 = f64::from_bits(1);

/// `gamma_k = k u / (1 - k u)`: the relative error bound of k successive roundings.
pub fn gamma_k(k: usize, u: f64) -> f64 {
    let ku = k as f64 * u;
    assert!(ku < 1.0);
    ku / (1.0 - ku)
}

/// Spacing of f64 numbers just above `|y|`.
pub fn ulp64(y: f64) -> f64 {
    let a = y.abs();
    if a.is_infinite() {
        return f64::INFINITY;
    }
    if a < f64::MIN_POSITIVE {
        return ETA64;
    }
    f64::from_bits(a.to_bits() + 1) - a
}

/// `a + b = s + e` exactly (Knuth).
pub fn two_sum(a: f64, b: f64) -> (f64, f64) {
    let s = a + b;
    let bb = s - a;
    (s, (a - (s - bb)) + (b - bb))
}

/// `a + b = s + e` exactly when `|a| >= |b|` (Dekker).
pub fn fast_two_sum(a: f64, b: f64) -> (f64, f64) {
    let s = a + b;
    (s, b - (s - a))
}

/// An unevaluated sum `hi + lo`, `|lo| <= ulp(hi) / 2`: about 106 significant bits.
#[derive(Clone, Copy, Debug, Default)]
pub struct Dd {
    pub hi: f64,
    pub lo: f64,
}

impl Dd {
    pub fn new(v: f64) -> Dd {
        Dd { hi: v, lo: 0.0 }
    }
    /// `a b` (exact but for underflow of the low part).
    pub fn prod(a: f64, b: f64) -> Dd {
        let p = a * b;
        Dd {
            hi: p,
            lo: a.mul_add(b, -p),
        }
    }
    pub fn add(self, o: Dd) -> Dd {
        let (s, e) = two_sum(self.hi, o.hi);
        let (hi, lo) = fast_two_sum(s, e + self.lo + o.lo);
        Dd { hi, lo }
    }
    pub fn add_f64(self, b: f64) -> Dd {
        let (s, e) = two_sum(self.hi, b);
        let (hi, lo) = fast_two_sum(s, e + self.lo);
        Dd { hi, lo }
    }
    pub fn neg(self) -> Dd {
        Dd {
            hi: -self.hi,
            lo: -self.lo,
        }
    }
    pub fn mul(self, o: Dd) -> Dd {
        let p = Dd::prod(self.hi, o.hi);
        let (hi, lo) = fast_two_sum(p.hi, p.lo + (self.hi * o.lo + self.lo * o.hi));
        Dd { hi, lo }
    }
    /// `self / o` (one Newton correction of the f64 quotient).
    pub fn div(self, o: Dd) -> Dd {
        let q1 = self.hi / o.hi;
        let r = self.add(o.mul(Dd::new(q1)).neg());
        let q2 = r.hi / o.hi;
        let (hi, lo) = fast_two_sum(q1, q2);
        Dd { hi, lo }
    }
    /// Square root of a non-negative value (one Newton correction).
    pub fn sqrt(self) -> Dd {
        if self.hi <= 0.0 {
            return Dd::default();
        }
        let s = self.hi.sqrt();
        let r = self.add(Dd::prod(s, s).neg());
        let (hi, lo) = fast_two_sum(s, r.hi / (2.0 * s));
        Dd { hi, lo }
    }
    /// Rounded to f64.
    pub fn value(self) -> f64 {
        self.hi + self.lo
    }
}

/// The largest sech^2 on [|z| - e, |z| + e] (tanh's derivative bound near z).
pub fn sech2_max(z: f64, e: f64) -> f64 {
    let m = (z.abs() - e).max(0.0);
    let ch = m.cosh();
    1.0 / (ch * ch)
}

/// SplitMix64: seeded bulk data inside proptest cases, so shrunk failures reproduce.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in [-1, 1).
    pub fn sym(&mut self) -> f64 {
        ((self.next() >> 11) as f64) * (2.0f64).powi(-52) - 1.0
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// 64 cases per property unless `PROPTEST_CASES` is set (`ProptestConfig::with_cases` would
/// override the environment variable, so it is read here).
pub fn config() -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(64);
    ProptestConfig {
        cases,
        ..ProptestConfig::default()
    }
}
