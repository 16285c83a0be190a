//! Times the SMO passes and the symmetry check on every instruction set of this CPU (best of
//! several runs), to compare implementations: `cargo run --release -p mmfuse-kernels --example
//! smo_symmetry_timing [REPS_SCALE]`. Not a benchmark suite: one size each, numbers printed, no assertions
//! beyond the results agreeing with the scalar twins.

use mmfuse_kernels::{
    available_isas, isa_name, reference, smo_axpy2_on, smo_second_choice_on, smo_violators_on,
    symmetric_block_is_bad_on,
};
use std::hint::black_box;
use std::time::{Duration, Instant};

/// xorshift64, uniform in [0, 1).
struct Rng(u64);
impl Rng {
    fn unit(&mut self) -> f64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 11) as f64 * (2.0f64).powi(-53)
    }
}

/// Best of `reps` runs of `f`.
fn best(reps: usize, mut f: impl FnMut()) -> Duration {
    (0..reps)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed()
        })
        .min()
        .unwrap()
}

fn main() {
    // An optional argument multiplies the repetitions (on a busy machine, the best of more runs
    // is closer to the quiet one).
    let scale: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(1);
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);

    // SMO passes over n samples (as one iteration of the MKL solver touches them).
    let n = 200_000;
    let out: Vec<f64> = (0..n).map(|_| rng.unit() - 0.5).collect();
    let y: Vec<f64> = (0..n)
        .map(|_| if rng.unit() < 0.5 { -1.0 } else { 1.0 })
        .collect();
    let up: Vec<f64> = (0..n)
        .map(|_| {
            if rng.unit() < 0.7 {
                0.0
            } else {
                f64::NEG_INFINITY
            }
        })
        .collect();
    let low: Vec<f64> = (0..n)
        .map(|_| if rng.unit() < 0.7 { 0.0 } else { f64::INFINITY })
        .collect();
    let ki: Vec<f64> = (0..n).map(|_| rng.unit()).collect();
    let kj: Vec<f64> = (0..n).map(|_| rng.unit()).collect();
    let diag: Vec<f64> = (0..n).map(|_| 1.0 + rng.unit()).collect();
    let want_v = reference::smo_violators(&out, &y, 0.7, &up, &low);
    let reps = 200 * scale;
    println!("SMO passes, n = {n}, best of {reps} (microseconds):");
    for arch in available_isas() {
        let name = isa_name(arch);
        let tv = best(reps, || {
            let v = smo_violators_on(arch, black_box(&out), &y, 0.7, &up, &low);
            assert_eq!(v, want_v);
        });
        let mut o = out.clone();
        let ta = best(reps, || {
            smo_axpy2_on(arch, black_box(&mut o), &ki, 1e-9, &kj, -1e-9);
        });
        let ts = best(reps, || {
            let c = smo_second_choice_on(
                arch,
                black_box(&ki),
                0.9,
                1.5,
                &diag,
                &out,
                &y,
                0.7,
                &low,
                want_v.up_max,
            );
            black_box(c);
        });
        println!(
            "  {name:>6}: violators {:8.1}  axpy2 {:8.1}  second_choice {:8.1}",
            tv.as_secs_f64() * 1e6,
            ta.as_secs_f64() * 1e6,
            ts.as_secs_f64() * 1e6
        );
    }

    // The symmetry / PSD-minor check of a clean n x n matrix in 128 x 128 blocks of the lower
    // triangle (how MKL validates its kernels).
    let n = 3000;
    let mut k = vec![0.0f64; n * n];
    for i in 0..n {
        for j in 0..i {
            let v = rng.unit() - 0.5;
            k[i * n + j] = v;
            k[j * n + i] = v;
        }
        k[i * n + i] = n as f64;
    }
    let sd: Vec<f64> = (0..n).map(|i| k[i * n + i].sqrt()).collect();
    let b = 128;
    let reps = 20 * scale;
    println!("symmetric_block_is_bad, n = {n} in {b} x {b} blocks, best of {reps} (ms):");
    for arch in available_isas() {
        let name = isa_name(arch);
        let run = |sqrt_diag: Option<&[f64]>| {
            best(reps, || {
                let mut bad = false;
                for r in (0..n).step_by(b) {
                    for c in (0..=r).step_by(b) {
                        bad |= symmetric_block_is_bad_on(
                            arch,
                            black_box(&k),
                            n,
                            r..(r + b).min(n),
                            c..(c + b).min(n),
                            1e-12,
                            sqrt_diag,
                            1.0,
                        );
                    }
                }
                assert!(!bad);
            })
        };
        let (with, without) = (run(Some(&sd)), run(None));
        println!(
            "  {name:>6}: with minors {:7.2}  symmetry only {:7.2}",
            with.as_secs_f64() * 1e3,
            without.as_secs_f64() * 1e3
        );
    }
}
