//! The skinny products (`skinny_matmul`, `skinny_matmul_tn`, `rows_dot`) on every instruction set of
//! `available_isas()`, f32 and f64, against the products in f64, on random shapes: row counts
//! around the 4-row groups, column counts around the register widths (up to 4 slabs of 4
//! registers), inner sizes from 1.
//!
//! Error bound: each output is a chain of `k` multiply-adds (`k = d` for `x v`, the row count
//! for `x^T g`, plus the initial value when accumulating), so with or without FMA its error is
//! at most `gamma_k sum |terms| <= 1.01 k u sum |terms|` for `k u < 0.01` (Higham, (3.5));
//! the test allows 2x that.

use mmfuse_kernels::{
    available_isas, reference, rows_dot_on, skinny_matmul_on, skinny_matmul_tn_on, Float,
};
use proptest::prelude::*;

fn unit_roundoff<T: Float>() -> f64 {
    if std::mem::size_of::<T>() == 4 {
        f32::EPSILON as f64 / 2.0
    } else {
        f64::EPSILON / 2.0
    }
}

fn values(len: usize, seed: u64) -> Vec<f64> {
    let mut s = seed | 1;
    (0..len)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0
        })
        .collect()
}

fn check<T: Float>(rows: usize, d: usize, c: usize, seed: u64) -> Result<(), String> {
    let cast = |v: &[f64]| v.iter().map(|&x| T::from_f64(x)).collect::<Vec<T>>();
    let x = cast(&values(rows * d, seed));
    let v = cast(&values(d * c, seed ^ 0x55));
    let g = cast(&values(rows * c, seed ^ 0xaa));
    let init = cast(&values(d * c, seed ^ 0x33));
    let u = unit_roundoff::<T>();
    let f = |t: &T| t.to_f64();
    for arch in available_isas() {
        let mut out = vec![T::from_f64(9.0); rows * c];
        skinny_matmul_on(arch, &x, d, &v, c, &mut out);
        for i in 0..rows {
            for j in 0..c {
                let terms: Vec<f64> = (0..d)
                    .map(|a| f(&x[i * d + a]) * f(&v[a * c + j]))
                    .collect();
                let exact: f64 = terms.iter().sum();
                let bound = 2.0 * 1.01 * d as f64 * u * terms.iter().map(|t| t.abs()).sum::<f64>();
                let got = f(&out[i * c + j]);
                if (got - exact).abs() > bound {
                    return Err(format!(
                        "{arch:?} nn {rows}x{d}x{c} ({i},{j}): {got} vs {exact}"
                    ));
                }
            }
        }
        for accumulate in [false, true] {
            let mut out = init.clone();
            skinny_matmul_tn_on(arch, &x, d, &g, c, &mut out, accumulate);
            for a in 0..d {
                for j in 0..c {
                    let mut terms: Vec<f64> = (0..rows)
                        .map(|i| f(&x[i * d + a]) * f(&g[i * c + j]))
                        .collect();
                    if accumulate {
                        terms.push(f(&init[a * c + j]));
                    }
                    let exact: f64 = terms.iter().sum();
                    let k = terms.len().max(1) as f64;
                    let bound = 2.0 * 1.01 * k * u * terms.iter().map(|t| t.abs()).sum::<f64>();
                    let got = f(&out[a * c + j]);
                    if (got - exact).abs() > bound {
                        return Err(format!(
                            "{arch:?} tn {rows}x{d}x{c} acc {accumulate} ({a},{j}): {got} vs {exact}"
                        ));
                    }
                }
            }
        }
    }
    // Dot products of rows (`w` is `c x d`: c outputs per row), with and without accumulating.
    let wt = cast(&values(c * d, seed ^ 0x77));
    let start = cast(&values(rows * c, seed ^ 0x99));
    for arch in available_isas() {
        for accumulate in [false, true] {
            let mut out = start.clone();
            rows_dot_on(arch, &x, d, &wt, c, &mut out, accumulate);
            for i in 0..rows {
                for k in 0..c {
                    let mut terms: Vec<f64> = (0..d)
                        .map(|a| f(&x[i * d + a]) * f(&wt[k * d + a]))
                        .collect();
                    if accumulate {
                        terms.push(f(&start[i * c + k]));
                    }
                    let exact: f64 = terms.iter().sum();
                    // Any summation order of k terms: gamma_k.
                    let bound = 2.0
                        * 1.01
                        * terms.len() as f64
                        * u
                        * terms.iter().map(|t| t.abs()).sum::<f64>();
                    let got = f(&out[i * c + k]);
                    if (got - exact).abs() > bound {
                        return Err(format!(
                            "{arch:?} dot {rows}x{d} h {c} acc {accumulate} ({i},{k}): {got} vs {exact}"
                        ));
                    }
                }
            }
        }
    }
    // The scalar twins meet the same bound (checked against the SIMD results' reference).
    let mut out = vec![T::ZERO; rows * c];
    reference::skinny_matmul(&x, d, &v, c, &mut out);
    let mut out_tn = init.clone();
    reference::skinny_matmul_tn(&x, d, &g, c, &mut out_tn, true);
    for i in 0..rows {
        for j in 0..c {
            let terms: Vec<f64> = (0..d)
                .map(|a| f(&x[i * d + a]) * f(&v[a * c + j]))
                .collect();
            let exact: f64 = terms.iter().sum();
            let bound = 2.0 * 1.01 * d as f64 * u * terms.iter().map(|t| t.abs()).sum::<f64>();
            if (f(&out[i * c + j]) - exact).abs() > bound {
                return Err(format!("twin nn ({i},{j})"));
            }
        }
    }
    Ok(())
}

proptest! {
    #[test]
    fn skinny_products_meet_the_error_bound(
        rows in 0usize..23,
        d in 1usize..40,
        c in prop::sample::select(vec![1usize, 3, 7, 8, 9, 15, 16, 17, 31, 33, 48, 63, 64, 65, 70]),
        seed in any::<u64>(),
    ) {
        check::<f32>(rows, d, c, seed).map_err(TestCaseError::fail)?;
        check::<f64>(rows, d, c, seed).map_err(TestCaseError::fail)?;
    }
}

/// The block model's shapes: 256 rows, d = 300, 17 columns.
#[test]
fn skinny_products_at_the_benchmark_shape() {
    check::<f32>(256, 300, 17, 1).unwrap();
    check::<f64>(260, 128, 17, 2).unwrap();
}
