//! The rows solver's memory stays within its cap (issue 14): with the memory cap at 64 MB, a
//! fit whose dense kernels would take 2 x 128 MB runs with the default row cache (a quarter of
//! the cap), and the process's peak resident memory (Linux `VmHWM`, reset just before the fit
//! through `/proc/self/clear_refs`) grows by less than the cache plus 16 MB, well below the cap. A test binary of its own, with one test, so that no other
//! test's allocations share the process while it measures.

use mmfuse::blocks::BlockSpec;
use mmfuse::gram::{Kernel, Normalization};
use mmfuse::mkl::{fit_from_data, DataModality, MklOptions, RowOptions};
use mmfuse::Matrix;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// The process's peak resident set in bytes since the last reset, or None off Linux.
fn peak_rss() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// Resets the peak to the current resident set (Linux >= 4.0); false where that is refused.
fn reset_peak() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

#[test]
fn a_fit_from_rows_stays_far_below_the_dense_kernels_memory() {
    if peak_rss().is_none() || !reset_peak() {
        eprintln!("skipped: no /proc/self peak-memory counters here");
        return;
    }
    let n = 4000;
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let xs: Vec<Matrix<f64>> = [6usize, 4]
        .iter()
        .map(|&d| {
            Matrix::from_vec(
                n,
                d,
                (0..n * d).map(|_| rng.random_range(-1.0..1.0)).collect(),
            )
            .unwrap()
        })
        .collect();
    let y: Vec<f64> = (0..n)
        .map(|i| {
            let s = xs[0].get(i, 0) + 0.8 * xs[1].get(i, 1) * xs[0].get(i, 2);
            if s + 0.2 * rng.random_range(-1.0..1.0) > 0.0 {
                1.0
            } else {
                -1.0
            }
        })
        .collect();
    let views: Vec<DataModality<'_>> = xs
        .iter()
        .zip(["a", "b"])
        .map(|(x, name)| DataModality {
            name,
            data: x.as_mat_ref(),
            kernel: Kernel::rbf(0.5),
        })
        .collect();
    let cap: u64 = 64 << 20;
    mmfuse::limits::set_memory_limit(Some(cap));
    let budget = cap / 4;
    let rows = RowOptions::default();
    let opts = MklOptions {
        eps: 1e-2,
        ..MklOptions::default()
    };
    assert!(reset_peak());
    let before = peak_rss().unwrap();
    let (model, stats) = fit_from_data(
        &views,
        Normalization::Trace,
        &BlockSpec::None,
        &y,
        &opts,
        &rows,
        &mut |_| {},
    )
    .unwrap();
    let grew = peak_rss().unwrap().saturating_sub(before);
    let dense_kernel = (n * n * 8) as u64;
    // What the fit may hold besides the cache: O(n) solver vectors per kernel, the model's
    // support-vector rows, the allocator's slack; 16 MB is far more than those and far less
    // than one 128 MB dense kernel (two of them for the dense path).
    assert!(
        grew < budget + (16 << 20) && grew < cap,
        "peak resident memory grew by {grew} bytes during the fit (cap {cap}, cache budget \
         {budget}, one dense kernel {dense_kernel})"
    );
    assert_eq!(stats.cache_bytes, budget);
    assert!(stats.solver.cache.misses > 0 && model.fits[0].gap <= opts.eps);
}
