//! Small cases that exercise every `unsafe` block of the kernels crate (`TileMut` raw views,
//! strided rows, the transpose) and the scalar kernels; fast enough for Miri:
//! `cargo +nightly miri test -p mmfuse-kernels --test miri`.

use mmfuse_kernels::{
    apply_epilogue, l1_distance_tile, pack_panel, panel_width, sq_norms, transpose_into_on, Arch,
    Epilogue, TileMut,
};

#[test]
fn strided_tiles_from_raw_parts_stay_in_their_rows() {
    // A 4 x 6 matrix; two 2 x 3 tiles side by side, used through raw views at the same time.
    let mut m: Vec<f64> = (0..24).map(|v| v as f64).collect();
    let ptr = m.as_mut_ptr();
    // SAFETY: the tiles cover columns 0..3 and 3..6 of rows 0..2: disjoint, inside `m`.
    let mut left = unsafe { TileMut::from_raw_parts(ptr, 2, 3, 6) };
    let mut right = unsafe { TileMut::from_raw_parts(ptr.add(3), 2, 3, 6) };
    for i in 0..2 {
        left.row_mut(i).fill(-1.0);
        right.row_mut(i).iter_mut().for_each(|v| *v *= 2.0);
    }
    assert_eq!(&m[..6], &[-1.0, -1.0, -1.0, 6.0, 8.0, 10.0]);
    assert_eq!(
        &m[12..],
        &(12..24).map(|v| v as f64).collect::<Vec<_>>()[..]
    );
}

#[test]
fn transpose_between_blocks_of_one_matrix() {
    let n = 19; // not a multiple of the 16 x 16 blocking
    let mut m: Vec<f32> = (0..n * n).map(|v| v as f32).collect();
    let ptr = m.as_mut_ptr();
    // SAFETY: upper-right 9 x 10 block (rows 0..9, cols 9..19) and lower-left 10 x 9 block
    // (rows 9..19, cols 0..9) are disjoint and inside the n x n matrix.
    let src = unsafe { TileMut::from_raw_parts(ptr.add(9), 9, 10, n) };
    let mut dst = unsafe { TileMut::from_raw_parts(ptr.add(9 * n), 10, 9, n) };
    transpose_into_on(Arch::Scalar, &src, &mut dst, false);
    for i in 0..9 {
        for j in 9..n {
            assert_eq!(m[j * n + i], m[i * n + j]);
        }
    }
}

#[test]
fn kernels_on_tiny_strided_tiles() {
    let (nx, ny, d) = (5, 7, 3);
    let x: Vec<f64> = (0..nx * d).map(|v| (v as f64 * 0.37).sin()).collect();
    let y: Vec<f64> = (0..ny * d).map(|v| (v as f64 * 0.11).cos()).collect();
    let mut panel = vec![0.0; d * panel_width(ny)];
    pack_panel(&y, ny, d, &mut panel);
    let stride = ny + 2;
    let mut buf = vec![f64::NAN; nx * stride];
    let mut tile = TileMut::from_slice(&mut buf, nx, ny, stride);
    l1_distance_tile(&x, d, &panel, &mut tile);
    for i in 0..nx {
        for j in 0..ny {
            let want: f64 = (0..d).map(|k| (x[i * d + k] - y[j * d + k]).abs()).sum();
            assert!((tile.row(i)[j] - want).abs() <= 1e-15);
        }
    }
    apply_epilogue(&mut tile, &Epilogue::ExpNeg { gamma: 0.5 }, &[], &[]);
    let mut xn = vec![0.0; nx];
    sq_norms(&x, d, &mut xn);
    let mut yn = vec![0.0; ny];
    sq_norms(&y, d, &mut yn);
    apply_epilogue(&mut tile, &Epilogue::Rbf { gamma: 0.1 }, &xn, &yn);
    apply_epilogue(
        &mut tile,
        &Epilogue::Poly {
            gamma: 0.5,
            coef0: 1.0,
            degree: 3,
        },
        &[],
        &[],
    );
    apply_epilogue(
        &mut tile,
        &Epilogue::Sigmoid {
            gamma: 0.5,
            coef0: 0.0,
        },
        &[],
        &[],
    );
    // Padding between rows untouched.
    for i in 0..nx - 1 {
        assert!(buf[i * stride + ny].is_nan() && buf[i * stride + ny + 1].is_nan());
    }
}
