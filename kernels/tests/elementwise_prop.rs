//! The elementwise kernels (`hadamard_in_place`, `any_cancelled`) on every instruction set of
//! `available_isas()`, f32 and f64, against their scalar twins: bitwise equal (the same IEEE
//! operations in the same order; only the vector width differs), on lengths around the vector
//! widths, with values that hit the refinement test's threshold exactly.

use mmfuse_kernels::{any_cancelled_on, available_isas, hadamard_in_place_on, reference, Float};
use proptest::prelude::*;

fn check<T: Float>(raw: &[(f64, f64, f64)], r: f64, tau: f64) -> Result<(), String> {
    let g: Vec<T> = raw.iter().map(|v| T::from_f64(v.0)).collect();
    let c: Vec<T> = raw.iter().map(|v| T::from_f64(v.1)).collect();
    let a: Vec<T> = raw.iter().map(|v| T::from_f64(v.2)).collect();
    let (r, tau) = (T::from_f64(r), T::from_f64(tau));
    let want_any = reference::any_cancelled(&g, &c, r, tau);
    let mut want_prod = g.clone();
    reference::hadamard_in_place(&mut want_prod, &a);
    for arch in available_isas() {
        let got = any_cancelled_on(arch, &g, &c, r, tau);
        if got != want_any {
            return Err(format!(
                "{arch:?}: any_cancelled {got} vs {want_any} (n {})",
                g.len()
            ));
        }
        let mut prod = g.clone();
        hadamard_in_place_on(arch, &mut prod, &a);
        let bits = |v: &[T]| v.iter().map(|x| x.to_f64().to_bits()).collect::<Vec<_>>();
        if bits(&prod) != bits(&want_prod) {
            return Err(format!("{arch:?}: hadamard differs (n {})", g.len()));
        }
    }
    Ok(())
}

proptest! {
    #[test]
    fn elementwise_kernels_equal_their_twins(
        raw in prop::collection::vec((-2.0f64..2.0, 0.0f64..4.0, -3.0f64..3.0), 0..70),
        r in 0.0f64..4.0,
        tau in prop::sample::select(vec![0.25f64, 0.5, 1e-3]),
    ) {
        check::<f32>(&raw, r, tau).map_err(TestCaseError::fail)?;
        check::<f64>(&raw, r, tau).map_err(TestCaseError::fail)?;
    }
}

/// The threshold itself: `fl(s - 2 g) < tau s` is strict, at every position of a row whose
/// other entries are far from it, on every instruction set.
#[test]
fn any_cancelled_threshold_at_every_position() {
    for n in [1usize, 7, 8, 9, 15, 16, 17, 31, 33, 64] {
        for pos in 0..n {
            // r = c = 1, so s = 2 and the test is 2 - 2 g < 0.5: g = 0.9 is found, g = -1 and
            // g = 0 are not.
            let c = vec![1.0f64; n];
            let mut g = vec![-1.0f64; n];
            for (hit, gv) in [(true, 0.9f64), (false, 0.0)] {
                g[pos] = gv;
                for arch in available_isas() {
                    assert_eq!(
                        any_cancelled_on(arch, &g, &c, 1.0, 0.25),
                        hit,
                        "{arch:?} n {n} pos {pos}"
                    );
                    let gf: Vec<f32> = g.iter().map(|&v| v as f32).collect();
                    let cf: Vec<f32> = c.iter().map(|&v| v as f32).collect();
                    assert_eq!(any_cancelled_on(arch, &gf, &cf, 1.0f32, 0.25f32), hit);
                }
            }
        }
    }
    assert!(!any_cancelled_on(
        available_isas()[0],
        &[] as &[f64],
        &[],
        1.0,
        0.25
    ));
}
