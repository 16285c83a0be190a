//! End-to-end tests of `mmfuse gram` and `mmfuse bench gram`: the binary is run on files written
//! with `mmfuse::io`, and its output is compared with the library's result for the same
//! computation (bitwise: the command runs exactly the library calls). Failures must exit
//! non-zero, print `error: ...` naming the problem, and leave no output (nor temporary) file.

use mmfuse::gram::{
    cross_gram, normalized_gram, self_similarities, GramOptions, Kernel, Normalization, TrainStats,
};
use mmfuse::io::{encode_npy, read_npy, write_npy, NpyData};
use mmfuse::util::SplitMix64;
use mmfuse::{Matrix, Real};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn mmfuse(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_mmfuse"))
        .args(args)
        .output()
        .expect("cannot run the mmfuse binary")
}

/// `rows x d` data, U(-1, 1), written as f64 or f32 `.npy`.
fn data(rows: usize, d: usize, seed: u64) -> Vec<f64> {
    let mut r = SplitMix64::new(seed);
    (0..rows * d).map(|_| 2.0 * r.next_f64() - 1.0).collect()
}

fn write_f64(path: &Path, rows: usize, d: usize, v: &[f64]) {
    write_npy(path, &[rows, d], v).unwrap();
}

fn write_f32(path: &Path, rows: usize, d: usize, v: &[f64]) {
    let v32: Vec<f32> = v.iter().map(|&a| a as f32).collect();
    write_npy(path, &[rows, d], &v32).unwrap();
}

fn matrix<T: Real>(rows: usize, d: usize, v: &[f64]) -> Matrix<T> {
    Matrix::from_vec(
        rows,
        d,
        v.iter()
            .map(|&a| mmfuse_kernels::Float::from_f64(a))
            .collect(),
    )
    .unwrap()
}

fn p(path: &Path) -> &str {
    path.to_str().unwrap()
}

/// Runs a command that must succeed.
#[track_caller]
fn ok(args: &[&str]) {
    let out = mmfuse(args);
    assert!(
        out.status.success(),
        "mmfuse {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The output file as f64 values, with its dtype and shape.
fn read_out(path: &Path) -> (&'static str, Vec<usize>, Vec<f64>) {
    let a = read_npy(path).unwrap();
    let dtype = a.dtype_name();
    let vals = match &a.data {
        NpyData::F32(v) => v.iter().map(|&x| x as f64).collect(),
        NpyData::F64(v) => v.clone(),
        other => panic!("unexpected output data {other:?}"),
    };
    (dtype, a.shape.clone(), vals)
}

/// The library's K(X, X) (or K(X, Y) with test-kernel normalisation), as the command computes
/// it.
fn library<T: Real>(
    x: &Matrix<T>,
    y: Option<&Matrix<T>>,
    kernel: &Kernel,
    how: Normalization,
) -> Vec<f64> {
    let opts = GramOptions::default();
    let k = match y {
        None => {
            normalized_gram(x.as_mat_ref(), kernel, how, &opts)
                .unwrap()
                .0
        }
        Some(y) => {
            let mut k = cross_gram(x.as_mat_ref(), y.as_mat_ref(), kernel, &opts).unwrap();
            if how != Normalization::None {
                let stats = TrainStats::from_data(y.as_mat_ref(), kernel, how, &opts).unwrap();
                let ts = self_similarities(x.as_mat_ref(), kernel).unwrap();
                stats.apply_cross(&mut k, Some(&ts)).unwrap();
            }
            k
        }
    };
    k.as_slice()
        .iter()
        .map(|&v| mmfuse_kernels::Float::to_f64(v))
        .collect()
}

#[track_caller]
fn assert_same(got: &[f64], want: &[f64], what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (i, (a, b)) in got.iter().zip(want).enumerate() {
        assert_eq!(
            a.to_bits(),
            b.to_bits(),
            "{what}: element {i}: {a:e} != {b:e}"
        );
    }
}

fn names(dir: &Path) -> BTreeSet<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect()
}

#[test]
fn gram_rbf_matches_library() {
    let dir = tempfile::tempdir().unwrap();
    let (x_path, out) = (dir.path().join("X.npy"), dir.path().join("K.npy"));
    let (n, d) = (37, 6);
    let xv = data(n, d, 1);
    write_f64(&x_path, n, d, &xv);
    ok(&[
        "gram",
        "--input",
        p(&x_path),
        "--kernel",
        "rbf",
        "--gamma",
        "0.5",
        "--out",
        p(&out),
    ]);
    let (dtype, shape, k) = read_out(&out);
    assert_eq!((dtype, shape), ("float64", vec![n, n]));
    let x = matrix::<f64>(n, d, &xv);
    assert_same(
        &k,
        &library(&x, None, &Kernel::rbf(0.5), Normalization::None),
        "rbf",
    );
    // No temporary file left next to the output.
    assert_eq!(
        names(dir.path()),
        ["K.npy", "X.npy"].map(String::from).into()
    );
    // Small tiles: the file is written in five row blocks as they complete, with the same bits.
    ok(&[
        "gram",
        "--input",
        p(&x_path),
        "--gamma",
        "0.5",
        "--tile",
        "8",
        "--threads",
        "2",
        "--out",
        p(&out),
    ]);
    let (_, _, tiled) = read_out(&out);
    assert_same(&tiled, &k, "rbf in row blocks of 8");
}

#[test]
fn gram_against_every_normalisation() {
    let dir = tempfile::tempdir().unwrap();
    let (x_path, y_path) = (dir.path().join("test.npy"), dir.path().join("train.npy"));
    let (n, m, d) = (11, 29, 4);
    let (xv, yv) = (data(n, d, 2), data(m, d, 3));
    write_f64(&x_path, n, d, &xv);
    write_f64(&y_path, m, d, &yv);
    let (x, y) = (matrix::<f64>(n, d, &xv), matrix::<f64>(m, d, &yv));
    for (name, how) in [
        ("none", Normalization::None),
        ("trace", Normalization::Trace),
        ("unit-diag", Normalization::UnitDiag),
        ("center", Normalization::Center),
    ] {
        for (spec, kernel) in [
            ("laplacian", Kernel::Laplacian { gamma: None }),
            ("linear", Kernel::Linear),
        ] {
            // Symmetric.
            let out = dir.path().join(format!("K_{name}_{spec}.npy"));
            ok(&[
                "gram",
                "--input",
                p(&y_path),
                "--kernel",
                spec,
                "--normalize",
                name,
                "--out",
                p(&out),
            ]);
            let (_, shape, k) = read_out(&out);
            assert_eq!(shape, vec![m, m]);
            assert_same(
                &k,
                &library(&y, None, &kernel, how),
                &format!("{spec} {name}"),
            );
            // Cross, normalised with the training statistics.
            let out = dir.path().join(format!("Kx_{name}_{spec}.npy"));
            ok(&[
                "gram",
                "--input",
                p(&x_path),
                "--against",
                p(&y_path),
                "--kernel",
                spec,
                "--normalize",
                name,
                "--out",
                p(&out),
            ]);
            let (_, shape, k) = read_out(&out);
            assert_eq!(shape, vec![n, m]);
            assert_same(
                &k,
                &library(&x, Some(&y), &kernel, how),
                &format!("--against {spec} {name}"),
            );
        }
    }
}

#[test]
fn gram_dtypes() {
    let dir = tempfile::tempdir().unwrap();
    let (n, d) = (20, 5);
    let xv = data(n, d, 4);
    let x64 = dir.path().join("x64.npy");
    let x32 = dir.path().join("x32.npy");
    write_f64(&x64, n, d, &xv);
    write_f32(&x32, n, d, &xv);
    let kernel = Kernel::rbf(0.25);
    let want32 = library(
        &matrix::<f32>(n, d, &xv),
        None,
        &kernel,
        Normalization::None,
    );
    let want64 = library(
        &matrix::<f64>(n, d, &xv),
        None,
        &kernel,
        Normalization::None,
    );
    let run = |input: &Path, dtype: Option<&str>, name: &str| {
        let out = dir.path().join(name);
        let mut args = vec![
            "gram",
            "--input",
            p(input),
            "--kernel",
            "rbf:gamma=0.25",
            "--out",
            p(&out),
        ];
        if let Some(t) = dtype {
            args.extend(["--dtype", t]);
        }
        ok(&args);
        read_out(&out)
    };
    // --dtype f32 on f64 input: computed and written in f32.
    let (dtype, _, k) = run(&x64, Some("f32"), "a.npy");
    assert_eq!(dtype, "float32");
    assert_same(&k, &want32, "--dtype f32 on f64 input");
    // The default follows the input.
    let (dtype, _, k) = run(&x32, None, "b.npy");
    assert_eq!(dtype, "float32");
    assert_same(&k, &want32, "f32 input");
    let (dtype, _, k) = run(&x64, None, "c.npy");
    assert_eq!(dtype, "float64");
    assert_same(&k, &want64, "f64 input");
    // --dtype f64 on f32 input: the f32 values widened.
    let (dtype, _, k) = run(&x32, Some("f64"), "d.npy");
    assert_eq!(dtype, "float64");
    let widened: Vec<f64> = xv.iter().map(|&a| a as f32 as f64).collect();
    assert_same(
        &k,
        &library(
            &matrix::<f64>(n, d, &widened),
            None,
            &kernel,
            Normalization::None,
        ),
        "--dtype f64 on f32 input",
    );
}

#[test]
fn gram_kernel_flags_and_specs() {
    let dir = tempfile::tempdir().unwrap();
    let (n, d) = (15, 3);
    let xv = data(n, d, 5);
    let x_path = dir.path().join("X.npy");
    write_f64(&x_path, n, d, &xv);
    let x = matrix::<f64>(n, d, &xv);
    let cases: [(&[&str], Kernel); 5] = [
        (
            &["--kernel", "poly", "--degree", "2", "--coef0", "0"],
            Kernel::Polynomial {
                gamma: None,
                degree: 2,
                coef0: 0.0,
            },
        ),
        (&["--kernel", "rbf:gamma=0.1"], Kernel::rbf(0.1)),
        (
            &["--kernel", "sigmoid", "--gamma", "0.3", "--coef0", "-1"],
            Kernel::sigmoid(0.3, -1.0),
        ),
        (&["--kernel", "cosine"], Kernel::Cosine),
        // The flag overrides the spec's value.
        (
            &["--kernel", "poly:degree=3,gamma=2", "--degree", "1"],
            Kernel::polynomial(2.0, 1, 1.0),
        ),
    ];
    for (i, (flags, kernel)) in cases.iter().enumerate() {
        let out = dir.path().join(format!("K{i}.npy"));
        let mut args = vec!["gram", "--input", p(&x_path), "--out", p(&out)];
        args.extend_from_slice(flags);
        ok(&args);
        let (_, _, k) = read_out(&out);
        assert_same(
            &k,
            &library(&x, None, kernel, Normalization::None),
            &format!("{flags:?}"),
        );
    }
}

#[test]
fn gram_csv_input() {
    let dir = tempfile::tempdir().unwrap();
    let (n, d) = (9, 4);
    let xv = data(n, d, 6);
    let csv = dir.path().join("X.csv");
    let text: String = (0..n)
        .map(|i| {
            let row: Vec<String> = (0..d).map(|j| format!("{:?}", xv[i * d + j])).collect();
            row.join(",") + "\n"
        })
        .collect();
    std::fs::write(&csv, text).unwrap();
    let out = dir.path().join("K.npy");
    ok(&[
        "gram",
        "--input",
        p(&csv),
        "--kernel",
        "laplacian",
        "--gamma",
        "0.7",
        "--out",
        p(&out),
    ]);
    let (dtype, shape, k) = read_out(&out);
    assert_eq!((dtype, shape), ("float64", vec![n, n]));
    assert_same(
        &k,
        &library(
            &matrix::<f64>(n, d, &xv),
            None,
            &Kernel::laplacian(0.7),
            Normalization::None,
        ),
        "csv",
    );
}

/// A `.npy` (version 1.0) with the given header dict and data bytes, padded as numpy pads.
fn npy_bytes(header: &str, data: &[u8]) -> Vec<u8> {
    let mut h = header.as_bytes().to_vec();
    let unpadded = 10 + h.len() + 1;
    h.extend(std::iter::repeat_n(b' ', (64 - unpadded % 64) % 64));
    h.push(b'\n');
    let mut out = b"\x93NUMPY\x01\x00".to_vec();
    out.extend_from_slice(&(h.len() as u16).to_le_bytes());
    out.extend_from_slice(&h);
    out.extend_from_slice(data);
    out
}

/// Runs `mmfuse gram` expecting failure: non-zero exit, `error:` and every word of `mentions`
/// on stderr, and nothing new in the directory (no output, no temporary file).
#[track_caller]
fn fails(dir: &Path, args: &[&str], mentions: &[&str]) {
    let before = names(dir);
    let out = mmfuse(args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "mmfuse {args:?} succeeded");
    assert!(
        stderr.contains("error:"),
        "mmfuse {args:?}: stderr lacks `error:`: {stderr}"
    );
    for m in mentions {
        assert!(
            stderr.contains(m),
            "mmfuse {args:?}: stderr lacks `{m}`: {stderr}"
        );
    }
    assert_eq!(names(dir), before, "mmfuse {args:?} left files behind");
}

#[test]
fn gram_failures_leave_no_file() {
    let dir = tempfile::tempdir().unwrap();
    let dp = dir.path();
    let (n, d) = (6, 3);
    let xv = data(n, d, 7);
    let good = dp.join("good.npy");
    write_f64(&good, n, d, &xv);
    let out_path: PathBuf = dp.join("out.npy");
    let out = p(&out_path);
    let g = p(&good);

    // Missing input file.
    let missing = dp.join("missing.npy");
    fails(
        dp,
        &["gram", "--input", p(&missing), "--out", out],
        &["missing.npy"],
    );

    // Malformed .npy files.
    let valid = encode_npy(&[n, d], &xv).unwrap();
    let mut wrong_magic = valid.clone();
    wrong_magic[1] = b'X';
    let truncated = valid[..valid.len() - 5].to_vec();
    let f8: Vec<u8> = xv.iter().flat_map(|v| v.to_be_bytes()).collect();
    let big = npy_bytes(
        &format!("{{'descr': '>f8', 'fortran_order': False, 'shape': ({n}, {d}), }}"),
        &f8,
    );
    let object = npy_bytes(
        &format!("{{'descr': '|O', 'fortran_order': False, 'shape': ({n}, {d}), }}"),
        &[0u8; 48],
    );
    for (name, bytes, mention) in [
        ("magic.npy", wrong_magic, "magic"),
        ("truncated.npy", truncated, "truncated"),
        ("big.npy", big, "big-endian"),
        ("object.npy", object, "object"),
    ] {
        let path = dp.join(name);
        std::fs::write(&path, bytes).unwrap();
        fails(
            dp,
            &["gram", "--input", p(&path), "--out", out],
            &[name, mention],
        );
        // Also as the --against file.
        fails(
            dp,
            &["gram", "--input", g, "--against", p(&path), "--out", out],
            &[name, mention],
        );
    }

    // NaN in the input (and in --against): named by row and column.
    let mut bad = xv.clone();
    bad[d + 2] = f64::NAN;
    let nan = dp.join("nan.npy");
    write_f64(&nan, n, d, &bad);
    fails(
        dp,
        &["gram", "--input", p(&nan), "--out", out],
        &["NaN", "row 1", "column 2"],
    );
    fails(
        dp,
        &["gram", "--input", g, "--against", p(&nan), "--out", out],
        &["NaN", "row 1", "column 2"],
    );

    // Parameters.
    fails(
        dp,
        &["gram", "--input", g, "--gamma", "0", "--out", out],
        &["gamma"],
    );
    fails(
        dp,
        &[
            "gram",
            "--input",
            g,
            "--kernel",
            "rbf:gamma=-2",
            "--out",
            out,
        ],
        &["gamma"],
    );
    fails(
        dp,
        &[
            "gram", "--input", g, "--kernel", "poly", "--degree", "0", "--out", out,
        ],
        &["degree"],
    );
    fails(
        dp,
        &[
            "gram", "--input", g, "--kernel", "linear", "--gamma", "1", "--out", out,
        ],
        &["gamma", "linear"],
    );
    fails(
        dp,
        &[
            "gram", "--input", g, "--kernel", "rbf", "--degree", "2", "--out", out,
        ],
        &["degree"],
    );
    fails(
        dp,
        &["gram", "--input", g, "--kernel", "gauss", "--out", out],
        &["gauss"],
    );
    fails(
        dp,
        &["gram", "--input", g, "--normalize", "zscore", "--out", out],
        &["zscore"],
    );
    fails(
        dp,
        &["gram", "--input", g, "--tile", "0", "--out", out],
        &["tile"],
    );
    fails(
        dp,
        &["gram", "--input", g, "--threads", "0", "--out", out],
        &["threads"],
    );

    // --against with another number of features.
    let other = dp.join("other.npy");
    write_f64(&other, 4, d + 1, &data(4, d + 1, 8));
    fails(
        dp,
        &["gram", "--input", g, "--against", p(&other), "--out", out],
        &["features"],
    );

    // A failure does not touch an existing output either.
    std::fs::write(&out_path, b"previous").unwrap();
    fails(
        dp,
        &["gram", "--input", g, "--gamma", "0", "--out", out],
        &["gamma"],
    );
    assert_eq!(std::fs::read(&out_path).unwrap(), b"previous");
}

#[test]
fn bench_gram_json() {
    let out = mmfuse(&[
        "bench", "gram", "--n", "64", "--d", "8", "--runs", "1", "--json",
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "bench failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<&str> = stdout.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "expected one JSON line, got {stdout:?}");
    let v: serde_json::Value = serde_json::from_str(lines[0]).unwrap();
    for key in [
        "n",
        "d",
        "kernel",
        "dtype",
        "threads",
        "seconds",
        "gflops",
        "gemm_seconds",
        "ratio_vs_gemm",
    ] {
        assert!(v.get(key).is_some(), "key `{key}` missing from {v}");
    }
    assert_eq!(v["n"], 64);
    assert_eq!(v["d"], 8);
    assert_eq!(v["dtype"], "f32");
    assert!(v["kernel"].as_str().unwrap().starts_with("rbf"));
    assert!(v["threads"].as_u64().unwrap() >= 1);
    for key in [
        "seconds",
        "gflops",
        "gemm_seconds",
        "ratio_vs_gemm",
        "half_gemm_seconds",
        "fresh_half_gemm_seconds",
        "into_seconds",
        "fraction_of_limit",
        "fraction_of_limit_allocating",
    ] {
        let x = v[key].as_f64().unwrap_or_else(|| panic!("{key} in {v}"));
        assert!(x.is_finite() && x > 0.0, "{key} = {x}");
    }
    let ratio = |num: &str, den: &str| v[num].as_f64().unwrap() / v[den].as_f64().unwrap();
    let close = |a: f64, b: f64| (a - b).abs() <= 1e-9 * b;
    assert!(close(
        v["fraction_of_limit"].as_f64().unwrap(),
        ratio("half_gemm_seconds", "into_seconds")
    ));
    assert!(close(
        v["fraction_of_limit_allocating"].as_f64().unwrap(),
        ratio("fresh_half_gemm_seconds", "seconds")
    ));
}
