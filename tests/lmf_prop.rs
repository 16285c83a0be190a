//! Property tests of the LMF engine (`mmfuse::lmf`): the blocked GEMM + SIMD forward pass, the
//! pre-scaled inference path and the backward pass, for f32 and f64, on every instruction set of
//! `mmfuse_kernels::available_isas()`, against the naive f64 loops of
//! `tests/support/lmf_reference.rs`, with the rounding-error bounds derived there (see its module
//! docs for the derivation). Shapes are random: 1 to 5 modalities, feature sizes 1 to 9, rank 1 to
//! 5, output sizes below and above every SIMD width (and above four registers, the forward
//! kernel's widest step), 1 to 40 rows, block sizes from 1 row (every block boundary) to the
//! automatic choice.
//!
//! Case count: the shared `config()` (64 unless `PROPTEST_CASES` says otherwise).

use mmfuse::lmf::{LmfModel, LmfOptions};
use mmfuse::{Matrix, Real};
use mmfuse_kernels::{available_isas, Arch};
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;

#[path = "support/numerics.rs"]
mod numerics;
use numerics::{config, Rng};

#[path = "support/lmf_reference.rs"]
mod lmf_reference;
use lmf_reference as r;

trait Prec: Real {
    const NAME: &'static str;
    /// Unit roundoff.
    const U: f64;
}
impl Prec for f32 {
    const NAME: &'static str = "f32";
    const U: f64 = f32::EPSILON as f64 / 2.0;
}
impl Prec for f64 {
    const NAME: &'static str = "f64";
    const U: f64 = f64::EPSILON / 2.0;
}

#[derive(Clone, Debug)]
struct Case {
    seed: u64,
    dims: Vec<usize>,
    rank: usize,
    h: usize,
    n: usize,
    block: Option<usize>,
}

fn cases() -> impl Strategy<Value = Case> {
    (
        any::<u64>(),
        prop::collection::vec(1usize..=9, 1..=5),
        1usize..=5,
        prop_oneof![1usize..=20, 60usize..=70],
        prop_oneof![Just(1usize), 1usize..=40],
        prop::option::of(1usize..=9),
    )
        .prop_map(|(seed, dims, rank, h, n, block)| Case {
            seed,
            dims,
            rank,
            h,
            n,
            block,
        })
}

/// The case's model (PyTorch initialisation, then a random bias) and inputs, in T.
struct Data<T: Real> {
    model: LmfModel<T>,
    xs: Vec<Matrix<T>>,
    /// The same inputs widened to f64.
    xs64: Vec<Vec<f64>>,
}

fn data<T: Real>(c: &Case) -> Data<T> {
    let names: Vec<(String, usize)> = c
        .dims
        .iter()
        .enumerate()
        .map(|(i, &d)| (format!("m{i}"), d))
        .collect();
    let init = LmfModel::<T>::new(&names, c.rank, c.h, c.seed).unwrap();
    let mut rng = Rng(c.seed ^ 0x5eed);
    let bias: Vec<T> = (0..c.h).map(|_| T::from_f64(0.5 * rng.sym())).collect();
    let model = LmfModel::from_parts(
        &names.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>(),
        c.rank,
        c.h,
        (0..c.dims.len())
            .map(|m| init.factor(m).unwrap().clone())
            .collect(),
        init.fusion_weights().to_vec(),
        bias,
    )
    .unwrap();
    let xs: Vec<Matrix<T>> = c
        .dims
        .iter()
        .map(|&d| {
            let v = (0..c.n * d).map(|_| T::from_f64(rng.sym())).collect();
            Matrix::from_vec(c.n, d, v).unwrap()
        })
        .collect();
    let xs64 = xs
        .iter()
        .map(|x| x.as_slice().iter().map(|v| v.to_f64()).collect())
        .collect();
    Data { model, xs, xs64 }
}

fn opts(c: &Case) -> LmfOptions {
    LmfOptions {
        block_rows: c.block,
        threads: None,
    }
}

/// Largest `|got - want| / bound` (0 when all equal), erroring when any exceeds 1.
fn check(what: &str, got: &[f64], want: &[f64], bound: &[f64]) -> Result<f64, TestCaseError> {
    prop_assert_eq!(got.len(), want.len(), "{}: length", what);
    let mut worst: f64 = 0.0;
    for (idx, ((&g, &w), &b)) in got.iter().zip(want).zip(bound).enumerate() {
        let err = (g - w).abs();
        prop_assert!(
            err <= b * numerics::SLACK,
            "{}: element {}: got {:e}, reference {:e}, error {:e} > bound {:e}",
            what,
            idx,
            g,
            w,
            err,
            b
        );
        if err > 0.0 {
            worst = worst.max(err / b);
        }
    }
    Ok(worst)
}

fn to64<T: Real>(v: &[T]) -> Vec<f64> {
    v.iter().map(|x| x.to_f64()).collect()
}

fn sum_bounds(a: &[f64], b: &[f64]) -> Vec<f64> {
    a.iter().zip(b).map(|(x, y)| x + y).collect()
}

/// Forward and pre-scaled forward on one ISA against the reference; the worst error/bound ratio.
fn forward_case<T: Prec>(c: &Case, arch: Arch) -> Result<f64, TestCaseError> {
    let d = data::<T>(c);
    let refm = r::RefModel::of(&d.model);
    let f = r::forward(&refm, &d.xs64, c.n);
    let views: Vec<_> = d.xs.iter().map(|x| x.as_mat_ref()).collect();
    let mut worst: f64 = 0.0;
    for prescaled in [false, true] {
        let y = if prescaled {
            d.model.prescale().forward_on(arch, &views, &opts(c))
        } else {
            d.model.forward_on(arch, &views, &opts(c))
        }
        .map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(y.shape(), (c.n, c.h));
        let bound = sum_bounds(
            &r::forward_bound(&refm, &f, T::U, prescaled),
            &r::forward_bound(&refm, &f, r::U64, false),
        );
        let what = format!("{} {:?} forward (prescaled: {prescaled})", T::NAME, arch);
        worst = worst.max(check(&what, &to64(y.as_slice()), &f.y, &bound)?);
    }
    Ok(worst)
}

/// Backward on one ISA against the reference; the worst error/bound ratio.
fn backward_case<T: Prec>(c: &Case, arch: Arch) -> Result<f64, TestCaseError> {
    let d = data::<T>(c);
    let refm = r::RefModel::of(&d.model);
    let f = r::forward(&refm, &d.xs64, c.n);
    let mut rng = Rng(c.seed ^ 0x9);
    let g: Vec<T> = (0..c.n * c.h).map(|_| T::from_f64(rng.sym())).collect();
    let g64 = to64(&g);
    let gm = Matrix::from_vec(c.n, c.h, g).unwrap();
    let views: Vec<_> = d.xs.iter().map(|x| x.as_mat_ref()).collect();
    let got = d
        .model
        .backward_on(arch, &views, gm.as_mat_ref(), &opts(c))
        .map_err(|e| TestCaseError::fail(e.to_string()))?;
    let want = r::backward(&refm, &d.xs64, &f, &g64);
    let b_t = r::backward_bound(&refm, &d.xs64, &f, &g64, T::U);
    let b_64 = r::backward_bound(&refm, &d.xs64, &f, &g64, r::U64);
    let name = |p: &str| format!("{} {:?} backward {p}", T::NAME, arch);
    let mut worst: f64 = 0.0;
    for m in 0..c.dims.len() {
        let torch = got.factor_torch_layout(m, c.rank, c.h).unwrap();
        worst = worst.max(check(
            &name(&format!("dW_{m}")),
            &to64(&torch),
            &want.factors[m],
            &sum_bounds(&b_t.factors[m], &b_64.factors[m]),
        )?);
        worst = worst.max(check(
            &name(&format!("dX_{m}")),
            &to64(got.inputs[m].as_slice()),
            &want.inputs[m],
            &sum_bounds(&b_t.inputs[m], &b_64.inputs[m]),
        )?);
    }
    worst = worst.max(check(
        &name("dw"),
        &to64(&got.fusion_weights),
        &want.w,
        &sum_bounds(&b_t.w, &b_64.w),
    )?);
    worst = worst.max(check(
        &name("dc"),
        &to64(&got.bias),
        &want.c,
        &sum_bounds(&b_t.c, &b_64.c),
    )?);
    Ok(worst)
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn forward_within_bound_every_isa(c in cases()) {
        for arch in available_isas() {
            forward_case::<f32>(&c, arch)?;
            forward_case::<f64>(&c, arch)?;
        }
    }

    #[test]
    fn backward_within_bound_every_isa(c in cases()) {
        for arch in available_isas() {
            backward_case::<f32>(&c, arch)?;
            backward_case::<f64>(&c, arch)?;
        }
    }

    /// The default instruction set gives the same bits as the explicit one it stands for:
    /// `mmfuse_kernels::arch()`, the best available unless `MMFUSE_ISA` asks for less.
    #[test]
    fn default_isa_is_kernels_arch(c in cases()) {
        let d = data::<f32>(&c);
        let views: Vec<_> = d.xs.iter().map(|x| x.as_mat_ref()).collect();
        let a = d.model.forward(&views, &opts(&c)).unwrap();
        let b = d.model.forward_on(mmfuse_kernels::arch(), &views, &opts(&c)).unwrap();
        prop_assert_eq!(a, b);
    }
}

/// How tight the bounds are: the worst error / bound ratio over seeded cases, per type and pass
/// (printed with `--nocapture`; the ratio must stay <= 1, and a ratio far below 1 would mean a
/// loose bound).
#[test]
fn bound_tightness_report() {
    let mut rng = Rng(2024);
    let mut worst = [[0.0f64; 2]; 2]; // [type][forward, backward]
    for _ in 0..60 {
        let nm = 1 + rng.below(5) as usize;
        let c = Case {
            seed: rng.next(),
            dims: (0..nm).map(|_| 1 + rng.below(9) as usize).collect(),
            rank: 1 + rng.below(5) as usize,
            h: 1 + rng.below(70) as usize,
            n: 1 + rng.below(40) as usize,
            block: None,
        };
        let best = *available_isas().last().unwrap();
        let run = |res: Result<f64, TestCaseError>| res.unwrap_or_else(|e| panic!("{c:?}: {e}"));
        worst[0][0] = worst[0][0].max(run(forward_case::<f32>(&c, best)));
        worst[0][1] = worst[0][1].max(run(backward_case::<f32>(&c, best)));
        worst[1][0] = worst[1][0].max(run(forward_case::<f64>(&c, best)));
        worst[1][1] = worst[1][1].max(run(backward_case::<f64>(&c, best)));
    }
    eprintln!(
        "worst error/bound: f32 forward {:.3}, f32 backward {:.3}, f64 forward {:.3}, f64 backward {:.3}",
        worst[0][0], worst[0][1], worst[1][0], worst[1][1]
    );
    for w in worst.iter().flatten() {
        assert!(*w <= 1.0);
    }
}
