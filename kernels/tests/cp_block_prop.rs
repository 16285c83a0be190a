//! The interaction-block passes (`cp_block_forward`, `cp_block_backward`) on every instruction
//! set of `available_isas()`, f32 and f64: bitwise equal to their scalar twins (same IEEE
//! operations in the same order), and close to the formulas evaluated directly in f64, on
//! random shapes (ranks and output sizes around the vector widths, 1 to 3 members, strides and
//! offsets that are not multiples of anything).
//!
//! Error bound of the direct comparison: every output is a sum of `r` products of `|I| + 1`
//! factors (forward) or one product of `|I| + 1` factors (projection gradients), each rounded
//! once per operation, so the relative error of a term is at most `(|I| + 2) u` and the sum's
//! absolute error at most `(r + |I| + 2) u sum_i |term_i|` (u = unit roundoff); the tests allow
//! 4x that.

// Index loops mirror the formulas (rows, ranks, members) they check.
#![allow(clippy::needless_range_loop, clippy::type_complexity)]

use mmfuse_kernels::{
    available_isas, cp_block_backward_on, cp_block_forward_on, reference, CpPart, CpPartMut, Float,
};
use proptest::prelude::*;

#[derive(Debug)]
struct Case {
    rows: usize,
    rank: usize,
    h: usize,
    strides: Vec<usize>,
    offsets: Vec<usize>,
    proj: Vec<Vec<f64>>,
    w: Vec<f64>,
    g: Vec<f64>,
}

fn case() -> impl Strategy<Value = Case> {
    (0usize..7, 1usize..11, 1usize..5, 1usize..4, any::<u64>()).prop_map(
        |(rows, rank, h, members, seed)| {
            let mut s = seed | 1;
            let mut next = move || {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                (s >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0
            };
            let rh = rank * h;
            let mut strides = Vec::new();
            let mut offsets = Vec::new();
            let mut proj = Vec::new();
            for m in 0..members {
                let offset = (m * 3 + rows) % 5;
                let stride = offset + rh + (m + rank) % 4;
                strides.push(stride);
                offsets.push(offset);
                proj.push((0..rows * stride).map(|_| next()).collect());
            }
            let w = (0..rank).map(|_| next()).collect();
            let g = (0..rows * h).map(|_| next()).collect();
            Case {
                rows,
                rank,
                h,
                strides,
                offsets,
                proj,
                w,
                g,
            }
        },
    )
}

fn bits<T: Float>(v: &[T]) -> Vec<u64> {
    v.iter().map(|x| x.to_f64().to_bits()).collect()
}

fn check<T: Float>(c: &Case) -> Result<(), String> {
    let (rows, rank, h) = (c.rows, c.rank, c.h);
    let rh = rank * h;
    let nm = c.proj.len();
    let cast = |v: &[f64]| v.iter().map(|&x| T::from_f64(x)).collect::<Vec<T>>();
    let proj: Vec<Vec<T>> = c.proj.iter().map(|p| cast(p)).collect();
    let w = cast(&c.w);
    let g = cast(&c.g);
    let parts: Vec<CpPart<'_, T>> = (0..nm)
        .map(|m| CpPart {
            proj: &proj[m],
            stride: c.strides[m],
            offset: c.offsets[m],
        })
        .collect();
    let run_backward = |f: &dyn Fn(&mut [CpPartMut<'_, T>], &mut [T], &mut [T])| {
        let mut bufs: Vec<Vec<T>> = (0..nm)
            .map(|m| vec![T::from_f64(7.0); rows * c.strides[m]])
            .collect();
        let mut gw = vec![T::from_f64(0.5); rank];
        let mut scratch = vec![T::ZERO; 3 * rh];
        {
            let mut grads: Vec<CpPartMut<'_, T>> = bufs
                .iter_mut()
                .enumerate()
                .map(|(m, b)| CpPartMut {
                    grad: b,
                    stride: c.strides[m],
                    offset: c.offsets[m],
                })
                .collect();
            f(&mut grads, &mut gw, &mut scratch);
        }
        (bufs, gw)
    };

    let mut want = vec![T::from_f64(0.25); rows * h];
    let mut scratch = vec![T::ZERO; 2 * rh];
    reference::cp_block_forward(&parts, rows, rank, h, &w, &mut want, &mut scratch);
    let (want_g, want_gw) = run_backward(&|grads, gw, scratch| {
        reference::cp_block_backward(&parts, grads, rows, rank, h, &w, &g, gw, scratch)
    });

    // The twin against the formulas in f64.
    // Unit roundoff: 2^-24 (f32) or 2^-53 (f64).
    let u = if std::mem::size_of::<T>() == 4 {
        f32::EPSILON as f64 / 2.0
    } else {
        f64::EPSILON / 2.0
    };
    let at =
        |m: usize, row: usize, j: usize| proj[m][row * c.strides[m] + c.offsets[m] + j].to_f64();
    for row in 0..rows {
        for k in 0..h {
            let terms: Vec<f64> = (0..rank)
                .map(|i| w[i].to_f64() * (0..nm).map(|m| at(m, row, i * h + k)).product::<f64>())
                .collect();
            let exact = 0.25 + terms.iter().sum::<f64>();
            let bound = 4.0
                * (rank + nm + 2) as f64
                * u
                * (0.25 + terms.iter().map(|t| t.abs()).sum::<f64>());
            let got = want[row * h + k].to_f64();
            if (got - exact).abs() > bound {
                return Err(format!(
                    "forward row {row} k {k}: {got} vs {exact} (bound {bound})"
                ));
            }
            for m in 0..nm {
                for i in 0..rank {
                    let others: f64 = (0..nm)
                        .filter(|&o| o != m)
                        .map(|o| at(o, row, i * h + k))
                        .product();
                    let exact = g[row * h + k].to_f64() * w[i].to_f64() * others;
                    let got = want_g[m][row * c.strides[m] + c.offsets[m] + i * h + k].to_f64();
                    let bound = 4.0 * (nm + 2) as f64 * u * exact.abs();
                    if (got - exact).abs() > bound {
                        return Err(format!(
                            "dP member {m} row {row} rank {i} k {k}: {got} vs {exact}"
                        ));
                    }
                }
            }
        }
        // Columns outside the block are untouched.
        for m in 0..nm {
            let s = c.strides[m];
            for j in 0..s {
                let inside = j >= c.offsets[m] && j < c.offsets[m] + rh;
                if !inside && want_g[m][row * s + j].to_f64() != 7.0 {
                    return Err(format!(
                        "member {m} column {j} outside the block was written"
                    ));
                }
            }
        }
    }
    for i in 0..rank {
        let terms: Vec<f64> = (0..rows)
            .flat_map(|row| (0..h).map(move |k| (row, k)))
            .map(|(row, k)| {
                g[row * h + k].to_f64() * (0..nm).map(|m| at(m, row, i * h + k)).product::<f64>()
            })
            .collect();
        let exact = 0.5 + terms.iter().sum::<f64>();
        let bound = 4.0
            * (rows * h + nm + 2) as f64
            * u
            * (0.5 + terms.iter().map(|t| t.abs()).sum::<f64>());
        if (want_gw[i].to_f64() - exact).abs() > bound {
            return Err(format!("dw[{i}]: {:?} vs {exact}", want_gw[i]));
        }
    }

    for arch in available_isas() {
        let mut out = vec![T::from_f64(0.25); rows * h];
        let mut scratch = vec![T::ZERO; 2 * rh];
        cp_block_forward_on(arch, &parts, rows, rank, h, &w, &mut out, &mut scratch);
        if bits(&out) != bits(&want) {
            return Err(format!("{arch:?}: forward differs from the twin"));
        }
        let (got_g, got_gw) = run_backward(&|grads, gw, scratch| {
            cp_block_backward_on(arch, &parts, grads, rows, rank, h, &w, &g, gw, scratch)
        });
        if bits(&got_gw) != bits(&want_gw) || (0..nm).any(|m| bits(&got_g[m]) != bits(&want_g[m])) {
            return Err(format!("{arch:?}: backward differs from the twin"));
        }
    }
    Ok(())
}

proptest! {
    #[test]
    fn cp_block_passes_equal_their_twins_and_the_formulas(c in case()) {
        check::<f32>(&c).map_err(TestCaseError::fail)?;
        check::<f64>(&c).map_err(TestCaseError::fail)?;
    }
}
