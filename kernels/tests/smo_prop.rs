//! Property tests of the SMO passes (`smo_violators_on`, `smo_axpy2_on`, `smo_second_choice_on`)
//! on every instruction set of `available_isas()`, against their scalar twins in
//! `mmfuse_kernels::reference`.
//!
//! The passes promise *exact* agreement, not a tolerance: each value is computed by the same
//! IEEE operations in the same order on both sides (no fused multiply-add, division where the
//! twin divides), and the arg-max / arg-min return the first index among ties. So the tests
//! compare with `==`, on lengths that are not multiples of any vector width (0 to 70), with
//! values drawn from a small set so that ties are common, and with penalty arrays that empty
//! `I_up` or `I_low` entirely.
//!
//! Case count: 64 per property unless the `PROPTEST_CASES` environment variable says otherwise.

use mmfuse_kernels::{
    available_isas, reference, smo_axpy2_on, smo_second_choice_on, smo_violators_on,
};
use proptest::prelude::*;

/// A problem of length n: labels, outputs (few distinct values: ties), penalties, a kernel row
/// and a positive diagonal.
#[derive(Debug, Clone)]
struct Pass {
    y: Vec<f64>,
    out: Vec<f64>,
    up_pen: Vec<f64>,
    low_pen: Vec<f64>,
    ki: Vec<f64>,
    kj: Vec<f64>,
    diag: Vec<f64>,
    scale: f64,
    kscale: f64,
    diag_i: f64,
    dai: f64,
    daj: f64,
}

fn pass() -> impl Strategy<Value = Pass> {
    (0usize..=70, any::<u64>(), 0u8..4).prop_map(|(n, seed, pen_mode)| {
        // A small deterministic generator: the shape of the case is what proptest shrinks.
        let mut state = seed | 1;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let mut pick = |k: u64| (next() % k) as f64;
        let y: Vec<f64> = (0..n)
            .map(|_| if pick(2) == 0.0 { 1.0 } else { -1.0 })
            .collect();
        // Outputs on a coarse grid (ties) or spread.
        let out: Vec<f64> = (0..n).map(|_| (pick(9) - 4.0) * 0.25).collect();
        let pen = |mode: u8, pick: &mut dyn FnMut(u64) -> f64, inf: f64| -> Vec<f64> {
            (0..n)
                .map(|_| match mode {
                    0 => 0.0,
                    1 => inf,
                    _ => {
                        if pick(3) == 0.0 {
                            inf
                        } else {
                            0.0
                        }
                    }
                })
                .collect()
        };
        let up_pen = pen(
            if pen_mode == 1 { 1 } else { 2 },
            &mut pick,
            f64::NEG_INFINITY,
        );
        let low_pen = pen(if pen_mode == 2 { 1 } else { 2 }, &mut pick, f64::INFINITY);
        let ki: Vec<f64> = (0..n).map(|_| (pick(7) - 3.0) * 0.3).collect();
        let kj: Vec<f64> = (0..n).map(|_| (pick(1000) - 500.0) * 1e-3).collect();
        let diag: Vec<f64> = (0..n).map(|_| 0.5 + pick(3) * 0.25).collect();
        Pass {
            y,
            out,
            up_pen,
            low_pen,
            ki,
            kj,
            diag,
            scale: 0.5 + pick(4) * 0.25,
            kscale: 0.5 + pick(4) * 0.25,
            // diag_i - 2 kscale ki + diag_t can be <= 0 for some t: the TAU branch runs.
            diag_i: 0.1 + pick(3) * 0.4,
            dai: (pick(100) - 50.0) * 0.01,
            daj: (pick(100) - 50.0) * 0.013,
        }
    })
}

proptest! {
    #[test]
    fn violators_equal_the_twin(p in pass()) {
        let want = reference::smo_violators(&p.out, &p.y, p.scale, &p.up_pen, &p.low_pen);
        for arch in available_isas() {
            let got = smo_violators_on(arch, &p.out, &p.y, p.scale, &p.up_pen, &p.low_pen);
            prop_assert_eq!(got, want, "{:?}", arch);
        }
    }

    #[test]
    fn axpy2_equals_the_twin(p in pass()) {
        let mut want = p.out.clone();
        reference::smo_axpy2(&mut want, &p.ki, p.dai, &p.kj, p.daj);
        for arch in available_isas() {
            let mut got = p.out.clone();
            smo_axpy2_on(arch, &mut got, &p.ki, p.dai, &p.kj, p.daj);
            prop_assert_eq!(&got, &want, "{:?}", arch);
        }
    }

    #[test]
    fn second_choice_equals_the_twin(p in pass()) {
        let first = reference::smo_violators(&p.out, &p.y, p.scale, &p.up_pen, &p.low_pen);
        // Also an up_max that leaves no b > 0, and one below every candidate's v.
        for up_max in [first.up_max, 0.0, -10.0, 10.0] {
            if !up_max.is_finite() {
                continue;
            }
            let want = reference::smo_second_choice(
                &p.ki, p.kscale, p.diag_i, &p.diag, &p.out, &p.y, p.scale, &p.low_pen, up_max,
            );
            for arch in available_isas() {
                let got = smo_second_choice_on(
                    arch, &p.ki, p.kscale, p.diag_i, &p.diag, &p.out, &p.y, p.scale, &p.low_pen,
                    up_max,
                );
                prop_assert_eq!(got, want, "{:?} up_max {}", arch, up_max);
            }
        }
    }
}

/// The twins themselves on a hand-checked case: v = y - out = [1, -0.5, 0.5, 1] (ties at 0 and
/// 3), everything in I_up and I_low.
#[test]
fn twins_on_a_hand_checked_case() {
    let y = [1.0, -1.0, 1.0, 1.0];
    let out = [0.0, -0.5, 0.5, 0.0];
    let zeros = [0.0; 4];
    let v = reference::smo_violators(&out, &y, 1.0, &zeros, &zeros);
    assert_eq!((v.up_max, v.up_arg, v.low_min), (1.0, 0, -0.5));
    // Second choice with up_max = 1: b = [0, 1.5, 0.5, 0]; t = 1 and 2 qualify; with ki = 0 and
    // diag = 1: curvature 2, objectives -1.125 and -0.125: t = 1.
    let c = reference::smo_second_choice(&zeros, 1.0, 1.0, &[1.0; 4], &out, &y, 1.0, &zeros, 1.0);
    assert_eq!((c.arg, c.objective), (1, -1.125));
    let empty = reference::smo_violators(&[], &[], 1.0, &[], &[]);
    assert_eq!(empty.up_arg, usize::MAX);
}
