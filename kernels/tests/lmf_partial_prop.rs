//! Property tests of the blocked forms of the LMF kernels (`lmf_fuse_partial_on`,
//! `lmf_fuse_backward_partial_on`, `lmf_hadamard_on`) and of their scalar twins: on every
//! instruction set, for f32 and f64, with random offset rows and the ranks cut into random
//! consecutive groups, they give the *same bits* as the plain kernels (`lmf_fuse_on`,
//! `lmf_fuse_backward_on`, whose accuracy `lmf_prop.rs` checks) on the arrays `a[m] + offsets[m]`
//! over all ranks at once: the offset is the one addition the GEMM would have done, the rank sum
//! is the same chain, parked in the output between groups, and the Hadamard product followed by
//! a one-modality pass is the same product followed by the same sum. The column sums of the
//! backward kernel are the row-by-row sums of its dA. The small-batch projection
//! (`lmf_project_rows_on`) is a dot product in any order: within `gamma_d` of the exact value,
//! relative to `sum_k |x_k w_kj|`. And the unrolled paths (up to four modalities, whole
//! registers) give the bits of the general one.
//!
//! Case count: the shared `config()`.

use mmfuse_kernels::{
    available_isas, lmf_fuse_backward_on, lmf_fuse_backward_partial_on, lmf_fuse_on,
    lmf_fuse_partial_on, lmf_hadamard_on, lmf_project_rows_on, lmf_scratch_len, reference, Arch,
    Float,
};
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;

#[path = "../../tests/support/numerics.rs"]
mod numerics;
use numerics::{config, gamma_k, Rng, SLACK, U64};

#[derive(Clone, Debug)]
struct Case {
    seed: u64,
    m: usize,
    rank: usize,
    h: usize,
    rows: usize,
    weighted: bool,
    /// Ranks per group (the last group may have fewer).
    group: usize,
    offsets: bool,
    /// Backward: column sums of dA asked for.
    sums: bool,
}

fn cases() -> impl Strategy<Value = Case> {
    (
        any::<u64>(),
        1usize..=5,
        1usize..=7,
        // Odd sizes (partial registers) and multiples of every register width (the unrolled
        // paths).
        prop_oneof![
            1usize..=20,
            60usize..=70,
            Just(16usize),
            Just(32),
            Just(128)
        ],
        1usize..=5,
        any::<bool>(),
        1usize..=7,
        prop::bool::weighted(0.8),
        prop::bool::weighted(0.8),
    )
        .prop_map(
            |(seed, m, rank, h, rows, weighted, group, offsets, sums)| Case {
                seed,
                m,
                rank,
                h,
                rows,
                weighted,
                group: group.min(rank),
                offsets,
                sums,
            },
        )
}

struct Data<T> {
    /// Per modality, `rows x rank x h`.
    a: Vec<Vec<T>>,
    /// Per modality, `rank x h`.
    off: Vec<Vec<T>>,
    w: Vec<T>,
    c: Vec<T>,
    g: Vec<T>,
}

fn data<T: Float>(cs: &Case) -> Data<T> {
    let mut rng = Rng(cs.seed);
    let rh = cs.rank * cs.h;
    let mut v = |n: usize, scale: f64| -> Vec<T> {
        (0..n).map(|_| T::from_f64(scale * rng.sym())).collect()
    };
    Data {
        a: (0..cs.m).map(|_| v(cs.rows * rh, 1.5)).collect(),
        off: (0..cs.m).map(|_| v(rh, 0.7)).collect(),
        w: v(cs.rank, 1.0),
        c: v(cs.h, 0.5),
        g: v(cs.rows * cs.h, 1.0),
    }
}

/// `a[m] + off[m]` over all ranks (what the plain kernels read).
fn with_offsets<T: Float>(cs: &Case, d: &Data<T>) -> Vec<Vec<T>> {
    let rh = cs.rank * cs.h;
    d.a.iter()
        .zip(&d.off)
        .map(|(a, o)| {
            a.iter()
                .enumerate()
                .map(|(i, &v)| if cs.offsets { v + o[i % rh] } else { v })
                .collect()
        })
        .collect()
}

/// Ranks of each group.
fn groups(cs: &Case) -> Vec<std::ops::Range<usize>> {
    (0..cs.rank)
        .step_by(cs.group)
        .map(|i| i..(i + cs.group).min(cs.rank))
        .collect()
}

/// Group `ranks` of a `rows x rank x h` array, as its own `rows x ranks x h` array.
fn cut<T: Float>(cs: &Case, v: &[T], ranks: &std::ops::Range<usize>) -> Vec<T> {
    let (rh, h) = (cs.rank * cs.h, cs.h);
    v.chunks_exact(rh)
        .flat_map(|row| row[ranks.start * h..ranks.end * h].iter().copied())
        .collect()
}

fn bits<T: Float>(v: &[T]) -> Vec<u64> {
    v.iter().map(|x| x.to_f64().to_bits()).collect()
}

fn forward_case<T: Float>(cs: &Case, arch: Arch) -> Result<(), TestCaseError> {
    let d = data::<T>(cs);
    let full = with_offsets(cs, &d);
    let full_refs: Vec<&[T]> = full.iter().map(|v| &v[..]).collect();
    let w = cs.weighted.then_some(&d.w[..]);
    for simd in [true, false] {
        let mut want = vec![T::ZERO; cs.rows * cs.h];
        if simd {
            lmf_fuse_on(arch, &full_refs, cs.rank, cs.h, w, &d.c, &mut want);
        } else {
            reference::lmf_fuse(&full_refs, cs.rank, cs.h, w, &d.c, &mut want);
        }
        let mut got = vec![T::ZERO; cs.rows * cs.h];
        let gs = groups(cs);
        for (gi, ranks) in gs.iter().enumerate() {
            let a: Vec<Vec<T>> = d.a.iter().map(|v| cut(cs, v, ranks)).collect();
            let a: Vec<&[T]> = a.iter().map(|v| &v[..]).collect();
            let off: Vec<&[T]> = d
                .off
                .iter()
                .map(|o| &o[ranks.start * cs.h..ranks.end * cs.h])
                .collect();
            let off = cs.offsets.then_some(&off[..]);
            let wg = w.map(|w| &w[ranks.clone()]);
            let bias = (gi + 1 == gs.len()).then_some(&d.c[..]);
            let n = ranks.len();
            if simd {
                lmf_fuse_partial_on(arch, &a, off, n, cs.h, wg, bias, gi > 0, &mut got);
            } else {
                reference::lmf_fuse_partial(&a, off, n, cs.h, wg, bias, gi > 0, &mut got);
            }
        }
        prop_assert_eq!(bits(&got), bits(&want), "{:?} simd={} forward", arch, simd);
    }
    Ok(())
}

fn hadamard_case<T: Float>(cs: &Case, arch: Arch) -> Result<(), TestCaseError> {
    let d = data::<T>(cs);
    let full = with_offsets(cs, &d);
    let full_refs: Vec<&[T]> = full.iter().map(|v| &v[..]).collect();
    let w = cs.weighted.then_some(&d.w[..]);
    let rh = cs.rank * cs.h;
    let off: Vec<&[T]> = d.off.iter().map(|v| &v[..]).collect();
    let off = cs.offsets.then_some(&off[..]);
    let others: Vec<&[T]> = d.a[1..].iter().map(|v| &v[..]).collect();
    let (mut simd, mut twin) = (d.a[0].clone(), d.a[0].clone());
    lmf_hadamard_on(arch, &mut simd, &others, off, rh);
    reference::lmf_hadamard(&mut twin, &others, off, rh);
    prop_assert_eq!(bits(&simd), bits(&twin), "{:?} hadamard vs twin", arch);
    let mut want = vec![T::ZERO; cs.rows * cs.h];
    lmf_fuse_on(arch, &full_refs, cs.rank, cs.h, w, &d.c, &mut want);
    let mut got = vec![T::ZERO; cs.rows * cs.h];
    lmf_fuse_on(arch, &[&simd[..]], cs.rank, cs.h, w, &d.c, &mut got);
    prop_assert_eq!(bits(&got), bits(&want), "{:?} hadamard then fuse", arch);
    Ok(())
}

fn backward_case<T: Float>(cs: &Case, arch: Arch) -> Result<(), TestCaseError> {
    let d = data::<T>(cs);
    let full = with_offsets(cs, &d);
    let (rh, h) = (cs.rank * cs.h, cs.h);
    for simd in [true, false] {
        // Plain kernel over all ranks on a + offsets.
        let mut want = full.clone();
        let mut want_gp = vec![T::ZERO; rh];
        {
            let mut a: Vec<&mut [T]> = want.iter_mut().map(|v| &mut v[..]).collect();
            if simd {
                let mut scratch = vec![T::ZERO; lmf_scratch_len::<T>(cs.m)];
                lmf_fuse_backward_on(
                    arch,
                    &mut a,
                    cs.rank,
                    h,
                    &d.w,
                    &d.g,
                    &mut want_gp,
                    &mut scratch,
                );
            } else {
                reference::lmf_fuse_backward(&mut a, cs.rank, h, &d.w, &d.g, &mut want_gp);
            }
        }
        // Blocked form, group by group, on a and the offsets.
        for ranks in groups(cs) {
            let mut a: Vec<Vec<T>> = d.a.iter().map(|v| cut(cs, v, &ranks)).collect();
            let off: Vec<&[T]> = d
                .off
                .iter()
                .map(|o| &o[ranks.start * h..ranks.end * h])
                .collect();
            let off = cs.offsets.then_some(&off[..]);
            let mut gp = vec![T::ZERO; ranks.len() * h];
            // Column sums from a random start (the kernel adds to them).
            let start: Vec<T> = (0..ranks.len() * h)
                .map(|j| T::from_f64(0.25 * (j % 5) as f64))
                .collect();
            let mut sums = vec![start.clone(); cs.m];
            {
                let mut refs: Vec<&mut [T]> = a.iter_mut().map(|v| &mut v[..]).collect();
                let mut srefs: Vec<&mut [T]> = sums.iter_mut().map(|v| &mut v[..]).collect();
                let dsum = cs.sums.then_some(&mut srefs[..]);
                let wg = &d.w[ranks.clone()];
                if simd {
                    let mut scratch = vec![T::ZERO; lmf_scratch_len::<T>(cs.m)];
                    lmf_fuse_backward_partial_on(
                        arch,
                        &mut refs,
                        off,
                        ranks.len(),
                        h,
                        wg,
                        &d.g,
                        &mut gp,
                        dsum,
                        &mut scratch,
                    );
                } else {
                    reference::lmf_fuse_backward_partial(
                        &mut refs,
                        off,
                        ranks.len(),
                        h,
                        wg,
                        &d.g,
                        &mut gp,
                        dsum,
                    );
                }
            }
            for (m, got) in a.iter().enumerate() {
                // Sums of the expected dA_m, row by row in order, from the same start.
                let want_da = cut(cs, &want[m], &ranks);
                let mut want_sum = start.clone();
                if cs.sums {
                    for row in want_da.chunks_exact(ranks.len() * h) {
                        for (acc, &v) in want_sum.iter_mut().zip(row) {
                            *acc += v;
                        }
                    }
                }
                prop_assert_eq!(
                    bits(&sums[m]),
                    bits(&want_sum),
                    "{:?} simd={} column sums {}",
                    arch,
                    simd,
                    m
                );
                prop_assert_eq!(
                    bits(got),
                    bits(&cut(cs, &want[m], &ranks)),
                    "{:?} simd={} dA_{} ranks {:?}",
                    arch,
                    simd,
                    m,
                    ranks
                );
            }
            prop_assert_eq!(
                bits(&gp),
                bits(&want_gp[ranks.start * h..ranks.end * h]),
                "{:?} simd={} gp",
                arch,
                simd
            );
        }
    }
    Ok(())
}

fn project_case<T: Float>(
    seed: u64,
    rows: usize,
    d: usize,
    width: usize,
    pad: usize,
    u: f64,
    arch: Arch,
) -> Result<(), TestCaseError> {
    let mut rng = Rng(seed);
    let ldw = width + pad;
    let x: Vec<T> = (0..rows * d).map(|_| T::from_f64(rng.sym())).collect();
    let w: Vec<T> = (0..d * ldw).map(|_| T::from_f64(rng.sym())).collect();
    let (mut simd, mut twin) = (vec![T::ZERO; rows * width], vec![T::ZERO; rows * width]);
    lmf_project_rows_on(arch, &x, d, &w, ldw, width, &mut simd);
    reference::lmf_project_rows(&x, d, &w, ldw, width, &mut twin);
    for n in 0..rows {
        for j in 0..width {
            let (mut exact, mut mag) = (0.0, 0.0);
            for k in 0..d {
                let t = x[n * d + k].to_f64() * w[k * ldw + j].to_f64();
                exact += t;
                mag += t.abs();
            }
            let bound = (gamma_k(d, u) + gamma_k(d, U64)) * mag * SLACK;
            for (name, v) in [("simd", &simd), ("twin", &twin)] {
                let got = v[n * width + j].to_f64();
                prop_assert!(
                    (got - exact).abs() <= bound,
                    "{:?} {} [{}][{}]: {:e} vs {:e} (bound {:e})",
                    arch,
                    name,
                    n,
                    j,
                    got,
                    exact,
                    bound
                );
            }
        }
    }
    Ok(())
}

/// The unrolled paths (up to four modalities, whole registers) against the general one: a fifth
/// modality of ones (offset 0) changes no value (every product with it is exact) but sends the
/// kernels down the general path, so the results must be the same bits.
fn fast_vs_general_case<T: Float>(
    seed: u64,
    rows: usize,
    rank: usize,
    h: usize,
    arch: Arch,
) -> Result<(), TestCaseError> {
    let cs = Case {
        seed,
        m: 4,
        rank,
        h,
        rows,
        weighted: true,
        group: rank,
        offsets: true,
        sums: true,
    };
    let d = data::<T>(&cs);
    let rh = rank * h;
    let ones = vec![T::ONE; rows * rh];
    let zero_off = vec![T::ZERO; rh];
    let a4: Vec<&[T]> = d.a.iter().map(|v| &v[..]).collect();
    let mut a5 = a4.clone();
    a5.push(&ones);
    let o4: Vec<&[T]> = d.off.iter().map(|v| &v[..]).collect();
    let mut o5 = o4.clone();
    o5.push(&zero_off);
    // Forward, continuing a sum already in the output.
    let start: Vec<T> = (0..rows * h)
        .map(|i| T::from_f64(0.1 * (i % 7) as f64))
        .collect();
    let (mut y4, mut y5) = (start.clone(), start);
    lmf_fuse_partial_on(
        arch,
        &a4,
        Some(&o4),
        rank,
        h,
        Some(&d.w),
        Some(&d.c),
        true,
        &mut y4,
    );
    lmf_fuse_partial_on(
        arch,
        &a5,
        Some(&o5),
        rank,
        h,
        Some(&d.w),
        Some(&d.c),
        true,
        &mut y5,
    );
    prop_assert_eq!(bits(&y4), bits(&y5), "{:?} forward", arch);
    // Hadamard.
    let (mut p4, mut p5) = (d.a[0].clone(), d.a[0].clone());
    lmf_hadamard_on(arch, &mut p4, &a4[1..], Some(&o4), rh);
    lmf_hadamard_on(arch, &mut p5, &a5[1..], Some(&o5), rh);
    prop_assert_eq!(bits(&p4), bits(&p5), "{:?} hadamard", arch);
    // Backward with column sums.
    let run = |nm: usize| {
        let mut bufs: Vec<Vec<T>> = d.a.clone();
        if nm == 5 {
            bufs.push(ones.clone());
        }
        let mut sums = vec![vec![T::ZERO; rh]; nm];
        let mut gp = vec![T::ZERO; rh];
        let mut scratch = vec![T::ZERO; lmf_scratch_len::<T>(nm)];
        {
            let mut refs: Vec<&mut [T]> = bufs.iter_mut().map(|v| &mut v[..]).collect();
            let mut srefs: Vec<&mut [T]> = sums.iter_mut().map(|v| &mut v[..]).collect();
            let off = if nm == 5 { &o5[..] } else { &o4[..] };
            lmf_fuse_backward_partial_on(
                arch,
                &mut refs,
                Some(off),
                rank,
                h,
                &d.w,
                &d.g,
                &mut gp,
                Some(&mut srefs),
                &mut scratch,
            );
        }
        (bufs, sums, gp)
    };
    let (b4, s4, g4) = run(4);
    let (b5, s5, g5) = run(5);
    for m in 0..4 {
        prop_assert_eq!(bits(&b4[m]), bits(&b5[m]), "{:?} dA_{}", arch, m);
        prop_assert_eq!(bits(&s4[m]), bits(&s5[m]), "{:?} column sums {}", arch, m);
    }
    prop_assert_eq!(bits(&g4), bits(&g5), "{:?} gp", arch);
    Ok(())
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn unrolled_paths_give_the_bits_of_the_general_path(
        seed in any::<u64>(),
        rows in 1usize..=5,
        rank in 1usize..=4,
        h in prop_oneof![Just(16usize), Just(32), Just(64), Just(128)],
    ) {
        for arch in available_isas() {
            fast_vs_general_case::<f32>(seed, rows, rank, h, arch)?;
            fast_vs_general_case::<f64>(seed, rows, rank, h, arch)?;
        }
    }

    #[test]
    fn project_rows_within_bound_every_isa(
        seed in any::<u64>(),
        rows in 1usize..=5,
        d in 1usize..=40,
        width in prop_oneof![1usize..=70, Just(64usize), Just(512)],
        pad in 0usize..=9,
    ) {
        for arch in available_isas() {
            project_case::<f32>(seed, rows, d, width, pad, f32::EPSILON as f64 / 2.0, arch)?;
            project_case::<f64>(seed, rows, d, width, pad, f64::EPSILON / 2.0, arch)?;
        }
    }

    #[test]
    fn partial_forward_gives_the_bits_of_one_pass(cs in cases()) {
        for arch in available_isas() {
            forward_case::<f32>(&cs, arch)?;
            forward_case::<f64>(&cs, arch)?;
        }
    }

    #[test]
    fn hadamard_then_one_modality_gives_the_bits_of_one_pass(cs in cases()) {
        for arch in available_isas() {
            hadamard_case::<f32>(&cs, arch)?;
            hadamard_case::<f64>(&cs, arch)?;
        }
    }

    #[test]
    fn partial_backward_gives_the_bits_of_one_pass(cs in cases()) {
        for arch in available_isas() {
            backward_case::<f32>(&cs, arch)?;
            backward_case::<f64>(&cs, arch)?;
        }
    }
}

#[test]
#[should_panic(expected = "offset row length")]
fn short_offset_row_panics() {
    let a = [1.0f32; 4];
    let off = [0.0f32; 3];
    let mut y = [0.0f32; 2];
    lmf_fuse_partial_on(
        Arch::Scalar,
        &[&a[..]],
        Some(&[&off[..]]),
        2,
        2,
        None,
        None,
        false,
        &mut y,
    );
}
