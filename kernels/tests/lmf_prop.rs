//! Property tests of the LMF fusion kernels (`lmf_fuse_on`, `lmf_fuse_backward_on`) on every
//! instruction set of `available_isas()`, for f32 and f64, and of their scalar twins in
//! `mmfuse_kernels::reference`, against an exact-enough f64 evaluation of the same formulas on the
//! very same inputs, with rounding-error bounds:
//!
//! - forward `y = sum_i w_i prod_m a_m + c`: the product has M - 1 roundings, each rank term one
//!   more (the weight) and at most r additions (the bias last), so with `P = prod_m |a_m|`
//!   `|fl(y) - y| <= sum_i |w_i| gamma_{M-1} P_i + gamma_{r+1} (sum_i |w_i| P_i (1 + gamma_{M-1})
//!   + |c|)`; without weights the same with `|w_i| = 1`.
//! - backward `dA_m = w_i g prod_{m' != m} a_m'`: at most M + 1 roundings (prefix product, `w g`,
//!   suffix product, final product), `|err| <= gamma_{M+1} |w_i g| prod_{m' != m} |a_m'|`;
//!   `gp += sum_n g P`: M - 1 roundings in P, one for the product with g, one per row added, plus
//!   the initial value: `|err| <= gamma_{M+rows} sum_n |g| P`.
//!
//! With `u` the unit roundoff of T and `gamma_k = k u / (1 - k u)` (Higham, ch. 3); FMA or not
//! only removes roundings. The f64 evaluation of the exact value is accurate to ~1e-16 relative,
//! which is added for the f64 kernels as a second bound of the same form with u = 2^-53.
//! Case count: the shared `config()`.

use mmfuse_kernels::{
    available_isas, lmf_fuse_backward_on, lmf_fuse_on, lmf_scratch_len, reference, Arch, Float,
};
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;

#[path = "../../tests/support/numerics.rs"]
mod numerics;
use numerics::{config, gamma_k, Rng, SLACK, U64};

trait Prec: Float {
    const U: f64;
}
impl Prec for f32 {
    const U: f64 = f32::EPSILON as f64 / 2.0;
}
impl Prec for f64 {
    const U: f64 = f64::EPSILON / 2.0;
}

#[derive(Clone, Debug)]
struct Case {
    seed: u64,
    m: usize,
    rank: usize,
    h: usize,
    rows: usize,
    weighted: bool,
}

fn cases() -> impl Strategy<Value = Case> {
    (
        any::<u64>(),
        1usize..=20,
        1usize..=6,
        prop_oneof![1usize..=20, 60usize..=70],
        1usize..=6,
        any::<bool>(),
    )
        .prop_map(|(seed, m, rank, h, rows, weighted)| Case {
            seed,
            // 1 to 14 modalities, the counts up to 6 twice as likely.
            m: if m > 6 { m - 6 } else { m },
            rank,
            h,
            rows,
            weighted,
        })
}

struct Data<T> {
    a: Vec<Vec<T>>,
    w: Vec<T>,
    c: Vec<T>,
    g: Vec<T>,
}

fn data<T: Float>(cs: &Case) -> Data<T> {
    let mut rng = Rng(cs.seed);
    let len = cs.rows * cs.rank * cs.h;
    let mut v = |n: usize, scale: f64| -> Vec<T> {
        (0..n).map(|_| T::from_f64(scale * rng.sym())).collect()
    };
    Data {
        a: (0..cs.m).map(|_| v(len, 1.5)).collect(),
        w: v(cs.rank, 1.0),
        c: v(cs.h, 0.5),
        g: v(cs.rows * cs.h, 1.0),
    }
}

fn forward_exact<T: Float>(cs: &Case, d: &Data<T>, u: f64) -> (Vec<f64>, Vec<f64>) {
    let (mut y, mut b) = (vec![0.0; cs.rows * cs.h], vec![0.0; cs.rows * cs.h]);
    let gp = gamma_k(cs.m.saturating_sub(1), u);
    let gs = gamma_k(cs.rank + 1, u);
    for n in 0..cs.rows {
        for k in 0..cs.h {
            let (mut acc, mut direct, mut mag) = (0.0, 0.0, d.c[k].to_f64().abs());
            for i in 0..cs.rank {
                let idx = (n * cs.rank + i) * cs.h + k;
                let (mut p, mut pa) = (1.0, 1.0);
                for am in &d.a {
                    p *= am[idx].to_f64();
                    pa *= am[idx].to_f64().abs();
                }
                let w = if cs.weighted { d.w[i].to_f64() } else { 1.0 };
                acc += w * p;
                direct += w.abs() * gp * pa;
                mag += w.abs() * pa * (1.0 + gp);
            }
            y[n * cs.h + k] = acc + d.c[k].to_f64();
            b[n * cs.h + k] = direct + gs * mag;
        }
    }
    (y, b)
}

fn check(what: &str, got: &[f64], want: &[f64], bound: &[f64]) -> Result<(), TestCaseError> {
    for (i, ((g, w), b)) in got.iter().zip(want).zip(bound).enumerate() {
        prop_assert!(
            (g - w).abs() <= b * SLACK,
            "{}[{}]: {:e} vs {:e} (bound {:e})",
            what,
            i,
            g,
            w,
            b
        );
    }
    Ok(())
}

fn forward_case<T: Prec>(cs: &Case, arch: Arch) -> Result<(), TestCaseError> {
    let d = data::<T>(cs);
    let (want, b_t) = forward_exact(cs, &d, T::U);
    let (_, b_64) = forward_exact(cs, &d, U64);
    let bound: Vec<f64> = b_t.iter().zip(&b_64).map(|(a, b)| a + b).collect();
    let a: Vec<&[T]> = d.a.iter().map(|v| &v[..]).collect();
    let w = cs.weighted.then_some(&d.w[..]);
    let mut simd = vec![T::ZERO; cs.rows * cs.h];
    lmf_fuse_on(arch, &a, cs.rank, cs.h, w, &d.c, &mut simd);
    let mut twin = vec![T::ZERO; cs.rows * cs.h];
    reference::lmf_fuse(&a, cs.rank, cs.h, w, &d.c, &mut twin);
    let to64 = |v: &[T]| v.iter().map(|x| x.to_f64()).collect::<Vec<_>>();
    check(&format!("{arch:?} forward"), &to64(&simd), &want, &bound)?;
    check("twin forward", &to64(&twin), &want, &bound)
}

fn backward_case<T: Prec>(cs: &Case, arch: Arch) -> Result<(), TestCaseError> {
    let d = data::<T>(cs);
    let (r, h) = (cs.rank, cs.h);
    // Exact values and bounds.
    let mut da = vec![vec![0.0; cs.rows * r * h]; cs.m];
    let mut da_b = vec![vec![0.0; cs.rows * r * h]; cs.m];
    let mut gp = vec![0.0; r * h];
    let mut gp_b = vec![0.0; r * h];
    for n in 0..cs.rows {
        for i in 0..r {
            for k in 0..h {
                let idx = (n * r + i) * h + k;
                let g = d.g[n * h + k].to_f64();
                let wg = d.w[i].to_f64() * g;
                let mut p = g;
                let mut pa = g.abs();
                for am in &d.a {
                    p *= am[idx].to_f64();
                    pa *= am[idx].to_f64().abs();
                }
                gp[i * h + k] += p;
                gp_b[i * h + k] += pa;
                for m in 0..cs.m {
                    let (mut loo, mut la) = (wg, wg.abs());
                    for (mm, am) in d.a.iter().enumerate() {
                        if mm != m {
                            loo *= am[idx].to_f64();
                            la *= am[idx].to_f64().abs();
                        }
                    }
                    da[m][idx] = loo;
                    da_b[m][idx] = la;
                }
            }
        }
    }
    let scale_da = gamma_k(cs.m + 1, T::U) + gamma_k(cs.m + 1, U64);
    let scale_gp = gamma_k(cs.m + cs.rows, T::U) + gamma_k(cs.m + cs.rows, U64);
    let to64 = |v: &[T]| v.iter().map(|x| x.to_f64()).collect::<Vec<_>>();
    for (name, simd) in [("simd", true), ("twin", false)] {
        let mut bufs = d.a.clone();
        let mut gpv = vec![T::ZERO; r * h];
        {
            let mut a: Vec<&mut [T]> = bufs.iter_mut().map(|v| &mut v[..]).collect();
            if simd {
                let mut scratch = vec![T::ZERO; lmf_scratch_len::<T>(cs.m)];
                lmf_fuse_backward_on(arch, &mut a, r, h, &d.w, &d.g, &mut gpv, &mut scratch);
            } else {
                reference::lmf_fuse_backward(&mut a, r, h, &d.w, &d.g, &mut gpv);
            }
        }
        for m in 0..cs.m {
            let b: Vec<f64> = da_b[m].iter().map(|v| v * scale_da).collect();
            check(
                &format!("{arch:?} {name} dA_{m}"),
                &to64(&bufs[m]),
                &da[m],
                &b,
            )?;
        }
        let b: Vec<f64> = gp_b.iter().map(|v| v * scale_gp).collect();
        check(&format!("{arch:?} {name} gp"), &to64(&gpv), &gp, &b)?;
    }
    Ok(())
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn lmf_fuse_within_bound_every_isa(cs in cases()) {
        for arch in available_isas() {
            forward_case::<f32>(&cs, arch)?;
            forward_case::<f64>(&cs, arch)?;
        }
    }

    #[test]
    fn lmf_fuse_backward_within_bound_every_isa(cs in cases()) {
        for arch in available_isas() {
            backward_case::<f32>(&cs, arch)?;
            backward_case::<f64>(&cs, arch)?;
        }
    }
}

/// A zero factor gives exact zeros where the product vanishes, and the leave-one-out product of
/// the zero factor itself stays the product of the others (no division, no NaN).
#[test]
fn zero_factors_give_exact_leave_one_out_products() {
    for arch in available_isas() {
        let (mut a0, mut a1, mut a2) = (vec![0.0f32; 20], vec![3.0f32; 20], vec![-2.0f32; 20]);
        let mut gp = vec![0.0f32; 20];
        let mut scratch = vec![0.0f32; lmf_scratch_len::<f32>(3)];
        let g = vec![1.0f32; 20];
        lmf_fuse_backward_on(
            arch,
            &mut [&mut a0[..], &mut a1[..], &mut a2[..]],
            1,
            20,
            &[0.5],
            &g,
            &mut gp,
            &mut scratch,
        );
        assert!(a0.iter().all(|&v| v == 0.5 * 3.0 * -2.0), "{arch:?}");
        assert!(a1.iter().chain(&a2).all(|&v| v == 0.0), "{arch:?}");
        assert!(gp.iter().all(|&v| v == 0.0), "{arch:?}");
    }
}

#[test]
#[should_panic(expected = "scratch too short")]
fn short_scratch_panics() {
    let (mut a, mut b) = ([1.0f64; 4], [1.0f64; 4]);
    lmf_fuse_backward_on(
        Arch::Scalar,
        &mut [&mut a[..], &mut b[..]],
        1,
        4,
        &[1.0],
        &[1.0; 4],
        &mut [0.0; 4],
        &mut [0.0; 1],
    );
}
