//! The engine's own `unsafe` (the shared output pointer of the tiled assembly and of its
//! streamed hand-over, borrowing contiguous faer views as slices) on tiny inputs with tiny tiles, so that Miri checks every
//! tile, mirror and edge case:
//! `MIRIFLAGS="-Zmiri-tree-borrows -Zmiri-ignore-leaks" cargo +nightly miri test --test miri`.
//! (Tree borrows and ignored leaks because of rayon's crossbeam-epoch, which violates stacked
//! borrows inside its own code and leaks its thread-pool state at exit.)

use mmfuse::gram::{cross_gram, gram, gram_into_streaming, GramOptions, Kernel};
use mmfuse::Matrix;

fn data(n: usize, d: usize, seed: f64) -> Matrix<f64> {
    Matrix::from_vec(
        n,
        d,
        (0..n * d)
            .map(|v| ((v as f64 + seed) * 0.731).sin())
            .collect(),
    )
    .expect("shape")
}

#[test]
fn tiled_symmetric_and_cross_assembly() {
    let x = data(5, 3, 0.0);
    let y = data(4, 3, 1.0);
    let opts = GramOptions {
        tile: 2,
        threads: Some(2),
    };
    for kernel in ["linear", "rbf", "laplacian", "cosine"] {
        let kernel: Kernel = kernel.parse().expect("spec");
        let k = gram(x.as_mat_ref(), &kernel, &opts).expect("gram");
        for i in 0..5 {
            for j in 0..5 {
                assert_eq!(k.get(i, j), k.get(j, i));
            }
        }
        let kc = cross_gram(x.as_mat_ref(), y.as_mat_ref(), &kernel, &opts).expect("cross");
        assert_eq!(kc.shape(), (5, 4));
    }
}

/// The streamed hand-over: the caller reads finished row blocks through the output's base
/// pointer while the workers still write other blocks through it.
#[test]
fn streamed_rows_are_read_while_other_blocks_are_written() {
    let x = data(7, 2, 3.0);
    let opts = GramOptions {
        tile: 2,
        threads: Some(2),
    };
    let kernel = Kernel::rbf(0.5);
    let want = gram(x.as_mat_ref(), &kernel, &opts).expect("gram");
    let mut out = vec![0.0; 49];
    let mut seen = Vec::new();
    gram_into_streaming(x.as_mat_ref(), &kernel, &opts, &mut out, |_, rows| {
        seen.extend_from_slice(rows);
        Ok(())
    })
    .expect("streamed");
    assert_eq!(&seen[..], want.as_slice());
    assert_eq!(&out[..], want.as_slice());
}

#[test]
fn strided_view_is_copied_not_borrowed() {
    let x = data(4, 3, 2.0);
    let xt = Matrix::from_vec(3, 4, {
        let mut v = vec![0.0; 12];
        for i in 0..4 {
            for j in 0..3 {
                v[j * 4 + i] = x.get(i, j);
            }
        }
        v
    })
    .expect("shape");
    let opts = GramOptions {
        tile: 3,
        threads: Some(1),
    };
    let a = gram(x.as_mat_ref(), &Kernel::Linear, &opts).expect("gram");
    let b = gram(xt.as_mat_ref().transpose(), &Kernel::Linear, &opts).expect("gram");
    assert_eq!(a, b);
}

/// LMF's `unsafe` (borrowing a contiguous faer view as a slice in `LmfModel`'s input checks)
/// and the blocked forward and backward passes, on tiny shapes with 1-row blocks.
#[test]
fn lmf_forward_and_backward_tiny() {
    use mmfuse::lmf::{LmfModel, LmfOptions};
    let model = LmfModel::<f64>::new(&[("a", 2), ("b", 1)], 2, 2, 3).expect("model");
    let xa = data(3, 2, 0.5);
    let xb = data(3, 1, 2.0);
    let xs = [xa.as_mat_ref(), xb.as_mat_ref()];
    let opts = LmfOptions {
        block_rows: Some(1),
        threads: None,
    };
    let y = model.forward(&xs, &opts).expect("forward");
    assert_eq!(y.shape(), (3, 2));
    let g = data(3, 2, 1.0);
    let grads = model
        .backward(&xs, g.as_mat_ref(), &opts)
        .expect("backward");
    assert_eq!(grads.inputs.len(), 2);
    // A strided (transposed) view is copied, not borrowed.
    let t = data(2, 3, 0.5);
    let xa_t = t.as_mat_ref().transpose();
    let y_t = model
        .forward(&[xa_t, xb.as_mat_ref()], &opts)
        .expect("strided forward");
    assert_eq!(y_t.shape(), (3, 2));
}

/// The fallible zeroed allocation of Gram outputs (alloc_zeroed + Vec::from_raw_parts).
#[test]
fn zeroed_outputs_are_sound() {
    let x = data(3, 2, 0.0);
    let k = gram(
        x.as_mat_ref(),
        &Kernel::Linear,
        &GramOptions::with_threads(1),
    )
    .expect("gram");
    assert_eq!(k.shape(), (3, 3));
    let empty = Matrix::from_vec(0, 2, Vec::<f64>::new()).expect("empty");
    assert!(gram(
        empty.as_mat_ref(),
        &Kernel::Linear,
        &GramOptions::with_threads(1)
    )
    .is_err());
}
