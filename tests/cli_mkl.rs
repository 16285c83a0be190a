//! `mmfuse mkl fit` / `mmfuse mkl predict` end to end: the JSON contract, label mapping,
//! one-vs-rest, and failures that leave no file.

use mmfuse::gram::{cross_gram, gram, GramOptions, Kernel};
use mmfuse::io::write_npy;
use mmfuse::mkl::{MklModel, MklOptions};
use mmfuse::util::SplitMix64;
use mmfuse::Matrix;
use std::path::Path;
use std::process::Command;

fn mmfuse(args: &[&str], dir: &Path) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_mmfuse"))
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run mmfuse")
}

/// Two modalities of 40 points: the first carries the label, the second is noise.
fn setup(dir: &Path, labels: &[f64]) -> (Vec<Matrix<f64>>, Vec<Matrix<f64>>) {
    let n = labels.len();
    let mut rng = SplitMix64::new(5);
    let x1 = Matrix::from_vec(
        n,
        3,
        (0..n * 3)
            .map(|k| rng.next_f64() - 0.5 + if k % 3 == 0 { labels[k / 3] } else { 0.0 })
            .collect(),
    )
    .expect("shape");
    let x2 = Matrix::from_vec(n, 4, (0..n * 4).map(|_| rng.next_f64()).collect()).expect("shape");
    let opts = GramOptions::default();
    let mut train = Vec::new();
    let mut test = Vec::new();
    for (m, x) in [x1, x2].iter().enumerate() {
        let k = gram(x.as_mat_ref(), &Kernel::rbf(1.0), &opts).expect("gram");
        let kt =
            cross_gram(x.as_mat_ref(), x.as_mat_ref(), &Kernel::rbf(1.0), &opts).expect("cross");
        write_npy(dir.join(format!("k{m}.npy")), &[n, n], k.as_slice()).expect("write");
        write_npy(dir.join(format!("t{m}.npy")), &[n, n], kt.as_slice()).expect("write");
        train.push(k);
        test.push(kt);
    }
    write_npy(dir.join("y.npy"), &[n], labels).expect("labels");
    (train, test)
}

#[test]
fn fit_and_predict_binary_with_any_label_values() {
    let dir = tempfile::tempdir().expect("tempdir");
    let labels: Vec<f64> = (0..40)
        .map(|i| if i % 2 == 0 { 3.0 } else { 7.0 })
        .collect();
    let (train, _) = setup(dir.path(), &labels);
    let out = mmfuse(
        &[
            "mkl",
            "fit",
            "--kernel",
            "k0.npy",
            "--kernel",
            "k1.npy",
            "--labels",
            "y.npy",
            "--p",
            "2",
            "--c",
            "1",
            "--out",
            "model.bin",
            "--report",
            "report.json",
        ],
        dir.path(),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("gap"),
        "progress on stderr"
    );
    let model: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("report.json")).expect("report"))
            .expect("json");
    for key in [
        "beta",
        "beta_shares",
        "bias",
        "primal",
        "dual",
        "gap",
        "iterations",
        "smo_iterations",
        "n_support",
        "converged",
        "p",
        "c",
        "loss",
        "classes",
        "per_class",
    ] {
        assert!(model.get(key).is_some(), "report.json lacks `{key}`");
    }
    assert!(
        model.get("coef").is_none(),
        "the report has no coefficients"
    );
    assert_eq!(model["loss"], "hinge");
    let binary = MklModel::load(dir.path().join("model.bin")).expect("binary model");
    assert_eq!(binary.fits[0].coef.len(), 40);
    // Same result as the library.
    let refs: Vec<&Matrix<f64>> = train.iter().collect();
    let lib = MklModel::fit_classifier(&refs, &labels, &MklOptions::default()).expect("fit");
    let beta: Vec<f64> = model["beta"]
        .as_array()
        .expect("beta")
        .iter()
        .map(|v| v.as_f64().expect("number"))
        .collect();
    assert_eq!(beta, lib.fits[0].beta);

    let out = mmfuse(
        &[
            "mkl",
            "predict",
            "--model",
            "model.bin",
            "--kernel",
            "t0.npy",
            "--kernel",
            "t1.npy",
            "--out",
            "scores.npy",
            "--labels-out",
            "pred.npy",
        ],
        dir.path(),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let pred = mmfuse::io::read_npy(dir.path().join("pred.npy"))
        .expect("pred")
        .into_vec_f64("pred")
        .expect("vector");
    assert!(
        pred.iter().all(|v| *v == 3.0 || *v == 7.0),
        "labels mapped back"
    );
    let acc = pred.iter().zip(&labels).filter(|(a, b)| a == b).count();
    assert!(acc >= 36, "training accuracy {acc}/40");
}

#[test]
fn one_vs_rest_and_p_inf() {
    let dir = tempfile::tempdir().expect("tempdir");
    let labels: Vec<f64> = (0..42).map(|i| (i % 3) as f64).collect();
    setup(dir.path(), &labels);
    let out = mmfuse(
        &[
            "mkl", "fit", "--kernel", "k0.npy", "--kernel", "k1.npy", "--labels", "y.npy", "--p",
            "inf", "--quiet", "--out", "m.model", "--report", "m.json",
        ],
        dir.path(),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.stderr.is_empty(), "--quiet");
    let model: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("m.json")).expect("model"))
            .expect("json");
    assert_eq!(model["p"], "inf");
    assert_eq!(model["per_class"].as_array().expect("per_class").len(), 3);
    let out = mmfuse(
        &[
            "mkl", "predict", "--model", "m.model", "--kernel", "t0.npy", "--kernel", "t1.npy",
            "--out", "s.npy",
        ],
        dir.path(),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let s = mmfuse::io::read_npy(dir.path().join("s.npy")).expect("scores");
    assert_eq!(s.shape, vec![42, 3]);
}

#[test]
fn failures_exit_non_zero_and_write_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let labels: Vec<f64> = (0..40)
        .map(|i| if i % 2 == 0 { 1.0 } else { -1.0 })
        .collect();
    setup(dir.path(), &labels);
    write_npy(dir.path().join("one_class.npy"), &[40], &[1.0; 40]).expect("write");
    write_npy(dir.path().join("short.npy"), &[39], &[1.0; 39]).expect("write");
    write_npy(dir.path().join("rect.npy"), &[40, 39], &vec![0.0; 40 * 39]).expect("write");
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["--labels", "one_class.npy"], "class"),
        (vec!["--labels", "short.npy"], "labels"),
        (vec!["--labels", "y.npy", "--p", "0.5"], "p"),
        (vec!["--labels", "y.npy", "--c", "0"], "c"),
        (vec!["--labels", "y.npy", "--kernel", "rect.npy"], "square"),
        (
            vec!["--labels", "y.npy", "--kernel", "missing.npy"],
            "missing.npy",
        ),
    ];
    for (extra, needle) in cases {
        let mut args = vec![
            "mkl",
            "fit",
            "--kernel",
            "k0.npy",
            "--out",
            "bad.model",
            "--report",
            "bad.json",
        ];
        args.extend(extra);
        let out = mmfuse(&args, dir.path());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} should fail");
        assert!(
            err.contains("error:") && err.contains(needle),
            "{args:?}: {err}"
        );
        for file in ["bad.model", "bad.json"] {
            assert!(!dir.path().join(file).exists(), "{args:?} left {file}");
        }
    }
}

/// The data-driven form: `fit --data NAME=PATH:KERNEL` builds and normalises the kernels and
/// stores data, kernels and statistics in the model; `predict --data` (modalities in any
/// order) gives exactly what the library gives from the same data.
#[test]
fn data_driven_fit_and_predict() {
    use mmfuse::gram::Normalization;
    use mmfuse::mkl::DataKernel;
    let dir = tempfile::tempdir().expect("tempdir");
    let n = 40;
    let labels: Vec<f64> = (0..n).map(|i| if i % 2 == 0 { 0.0 } else { 1.0 }).collect();
    let mut rng = SplitMix64::new(9);
    let mut make = |rows: usize, cols: usize, signal: bool| -> Matrix<f64> {
        Matrix::from_vec(
            rows,
            cols,
            (0..rows * cols)
                .map(|k| {
                    let lift = if signal && k % cols == 0 {
                        labels[(k / cols) % n]
                    } else {
                        0.0
                    };
                    rng.next_f64() - 0.5 + lift
                })
                .collect(),
        )
        .expect("shape")
    };
    let (v_train, a_train) = (make(n, 3, true), make(n, 2, false));
    let (v_test, a_test) = (make(7, 3, true), make(7, 2, false));
    for (name, x) in [
        ("v_train", &v_train),
        ("a_train", &a_train),
        ("v_test", &v_test),
        ("a_test", &a_test),
    ] {
        write_npy(
            dir.path().join(format!("{name}.npy")),
            &[x.nrows(), x.ncols()],
            x.as_slice(),
        )
        .expect("write");
    }
    write_npy(dir.path().join("y.npy"), &[n], &labels).expect("labels");
    for normalize in ["trace", "unit-diag", "center"] {
        let out = mmfuse(
            &[
                "mkl",
                "fit",
                "--data",
                "visual=v_train.npy:rbf:gamma=0.5",
                "--data",
                "audio=a_train.npy:poly:degree=2",
                "--normalize",
                normalize,
                "--labels",
                "y.npy",
                "--p",
                "2",
                "--quiet",
                "--out",
                "model.st",
                "--report",
                "report.json",
            ],
            dir.path(),
        );
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let out = mmfuse(
            &[
                "mkl",
                "predict",
                "--model",
                "model.st",
                "--data",
                "audio=a_test.npy",
                "--data",
                "visual=v_test.npy",
                "--out",
                "scores.npy",
                "--labels-out",
                "labels.npy",
            ],
            dir.path(),
        );
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let scores = mmfuse::io::read_npy(dir.path().join("scores.npy"))
            .expect("scores")
            .into_vec_f64("scores")
            .expect("f64");

        // The same through the library.
        let how: Normalization = normalize.parse().expect("normalisation");
        let opts = GramOptions::default();
        let (dv, kv) = DataKernel::new(
            "visual",
            v_train.clone(),
            &"rbf:gamma=0.5".parse().unwrap(),
            how,
            &opts,
        )
        .expect("visual");
        let (da, ka) = DataKernel::new(
            "audio",
            a_train.clone(),
            &"poly:degree=2".parse().unwrap(),
            how,
            &opts,
        )
        .expect("audio");
        let model = MklModel::fit_classifier(&[&kv, &ka], &labels, &MklOptions::default())
            .expect("fit")
            .with_data(vec![dv, da])
            .expect("data");
        let expected = model
            .decision_function_from_data(
                &[
                    ("visual", v_test.as_mat_ref()),
                    ("audio", a_test.as_mat_ref()),
                ],
                &opts,
            )
            .expect("predict");
        assert_eq!(scores, expected[0], "{normalize}");
        // The binary model holds the data-driven form exactly (bitwise the library's model).
        let back = MklModel::load(dir.path().join("model.st")).expect("binary model");
        assert_eq!(back, model, "{normalize}");
        assert_eq!(
            back.data[1].kernel.to_string(),
            "poly:gamma=0.5,degree=2,coef0=1"
        );
        let text = std::fs::read_to_string(dir.path().join("report.json")).expect("report");
        let v: serde_json::Value = serde_json::from_str(&text).expect("json");
        assert_eq!(v["modalities"][0], "visual");
    }

    // Wrong test data: a missing, unknown or repeated modality, a feature count that differs,
    // test kernels for a data model, and --kernel mixed with --data.
    for (args, needle) in [
        (vec!["--data", "visual=v_test.npy"], "audio"),
        (
            vec![
                "--data",
                "visual=v_test.npy",
                "--data",
                "audio=a_test.npy",
                "--data",
                "text=a_test.npy",
            ],
            "text",
        ),
        (
            vec!["--data", "visual=a_test.npy", "--data", "audio=a_test.npy"],
            "features",
        ),
        (
            vec![
                "--data",
                "visual=v_test.npy",
                "--data",
                "visual=v_test.npy",
                "--data",
                "audio=a_test.npy",
            ],
            "twice",
        ),
        (
            vec!["--kernel", "v_test.npy", "--kernel", "a_test.npy"],
            "--data",
        ),
    ] {
        let mut all = vec!["mkl", "predict", "--model", "model.st", "--out", "bad.npy"];
        all.extend(args.iter().copied());
        let out = mmfuse(&all, dir.path());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} accepted");
        assert!(err.contains(needle), "{args:?}: {err}");
        assert!(!dir.path().join("bad.npy").exists());
    }
    let out = mmfuse(
        &[
            "mkl",
            "fit",
            "--data",
            "visual=v_train.npy",
            "--kernel",
            "x.npy",
            "--labels",
            "y.npy",
            "--out",
            "m2.json",
        ],
        dir.path(),
    );
    assert!(!out.status.success());
    assert!(!dir.path().join("m2.json").exists());
    for bad in [
        "visual",
        "=v_train.npy",
        "visual=",
        "visual=v_train.npy:rbf:gamma=-1",
        "visual=v_train.npy:nope",
    ] {
        let out = mmfuse(
            &[
                "mkl", "fit", "--data", bad, "--labels", "y.npy", "--out", "m3.json",
            ],
            dir.path(),
        );
        assert!(!out.status.success(), "--data {bad} accepted");
        assert!(!dir.path().join("m3.json").exists());
    }
}

/// A kernel that is clearly not PSD is refused with a message naming the way out; with
/// --allow-indefinite the fit runs.
#[test]
fn indefinite_kernel_needs_the_opt_in() {
    let dir = tempfile::tempdir().expect("tempdir");
    let n = 6;
    let mut k = vec![0.0; n * n];
    for i in 0..n {
        k[i * n + i] = 1.0;
    }
    k[1] = 3.0;
    k[n] = 3.0;
    write_npy(dir.path().join("k.npy"), &[n, n], &k).expect("write");
    let y: Vec<f64> = (0..n).map(|i| (i % 2) as f64).collect();
    write_npy(dir.path().join("y.npy"), &[n], &y).expect("write");
    let base = [
        "mkl", "fit", "--kernel", "k.npy", "--labels", "y.npy", "--quiet", "--out", "m.json",
    ];
    let out = mmfuse(&base, dir.path());
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("not positive semi-definite") && err.contains("--allow-indefinite"),
        "{err}"
    );
    assert!(!dir.path().join("m.json").exists());
    let mut forced = base.to_vec();
    forced.push("--allow-indefinite");
    let out = mmfuse(&forced, dir.path());
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `--interactions`: block kernels from data or from named precomputed kernels; the report has
/// `blocks`, `beta`, `beta_shares` and `relevance`; predict applies the same blocks (named test
/// kernels matched by name); bad specs fail with no output.
#[test]
fn interactions_from_data_and_named_kernels() {
    let dir = tempfile::tempdir().expect("tempdir");
    let labels: Vec<f64> = (0..40)
        .map(|i| if i % 2 == 0 { 1.0 } else { -1.0 })
        .collect();
    setup(dir.path(), &labels);
    let mut rng = SplitMix64::new(3);
    for (name, rows) in [("v", 40), ("a", 40), ("vt", 6), ("at", 6)] {
        let d = if name.starts_with('v') { 3 } else { 2 };
        let values: Vec<f64> = (0..rows * d).map(|_| rng.next_f64()).collect();
        write_npy(dir.path().join(format!("{name}.npy")), &[rows, d], &values).expect("write");
    }
    let ok = |args: &[&str]| {
        let out = mmfuse(args, dir.path());
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    ok(&[
        "mkl",
        "fit",
        "--data",
        "v=v.npy",
        "--data",
        "a=a.npy:laplacian",
        "--labels",
        "y.npy",
        "--interactions",
        "pairs",
        "--p",
        "4/3",
        "--quiet",
        "--out",
        "m.mkl",
        "--report",
        "r.json",
    ]);
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("r.json")).expect("report"))
            .expect("json");
    assert_eq!(report["blocks"], serde_json::json!(["v", "a", "v*a"]));
    assert_eq!(report["beta"].as_array().expect("beta").len(), 3);
    let rel = report["relevance"].as_object().expect("relevance");
    let total: f64 = rel.values().map(|v| v.as_f64().expect("share")).sum();
    assert!(
        (total - 1.0).abs() < 1e-12 && rel.contains_key("v*a"),
        "{rel:?}"
    );
    ok(&[
        "mkl", "predict", "--model", "m.mkl", "--data", "a=at.npy", "--data", "v=vt.npy", "--out",
        "s.npy",
    ]);
    // Named precomputed kernels; predict matches test kernels to modalities by name.
    ok(&[
        "mkl",
        "fit",
        "--kernel",
        "vis=k0.npy",
        "--kernel",
        "aud=k1.npy",
        "--labels",
        "y.npy",
        "--interactions",
        "vis*aud",
        "--quiet",
        "--out",
        "k.mkl",
        "--report",
        "k.json",
    ]);
    ok(&[
        "mkl",
        "predict",
        "--model",
        "k.mkl",
        "--kernel",
        "aud=t1.npy",
        "--kernel",
        "vis=t0.npy",
        "--out",
        "ks.npy",
    ]);
    let model = MklModel::load(dir.path().join("k.mkl")).expect("model");
    assert_eq!(model.kernel_names(), ["vis", "aud", "vis*aud"]);
    for (args, needle) in [
        (
            vec![
                "--data",
                "v=v.npy",
                "--data",
                "a=a.npy",
                "--interactions",
                "v*x",
            ],
            "unknown modality `x`",
        ),
        (
            vec![
                "--data",
                "v=v.npy",
                "--data",
                "a=a.npy",
                "--interactions",
                "v*v",
            ],
            "twice",
        ),
        (
            vec![
                "--data",
                "v=v.npy",
                "--data",
                "a=a.npy",
                "--interactions",
                "v",
            ],
            "block of one",
        ),
        (
            vec![
                "--data",
                "v=v.npy",
                "--data",
                "a=a.npy",
                "--interactions",
                "v*a,a*v",
            ],
            "listed twice",
        ),
        (
            vec![
                "--kernel",
                "k0.npy",
                "--kernel",
                "k1.npy",
                "--interactions",
                "pairs",
            ],
            "named kernels",
        ),
        (
            vec![
                "--data",
                "v=v.npy",
                "--data",
                "a=a.npy",
                "--interactions",
                "pairs",
                "--normalize",
                "trace",
            ],
            "--normalize",
        ),
    ] {
        let mut all = vec![
            "mkl", "fit", "--labels", "y.npy", "--quiet", "--out", "bad.mkl", "--report",
            "bad.json",
        ];
        all.extend(args.iter().copied());
        let out = mmfuse(&all, dir.path());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} accepted");
        assert!(err.contains(needle), "{args:?}: {err}");
        assert!(!dir.path().join("bad.mkl").exists() && !dir.path().join("bad.json").exists());
    }
    // A spec whose block kernels exceed the memory cap: with the dense solver asked for, the
    // error names the bytes; `--solver auto` (the default) takes the rows solver instead.
    let fit_big = |solver: &str| {
        mmfuse(
            &[
                "--max-memory",
                "20K",
                "mkl",
                "fit",
                "--solver",
                solver,
                "--data",
                "v=v.npy",
                "--data",
                "a=a.npy",
                "--labels",
                "y.npy",
                "--interactions",
                "pairs",
                "--quiet",
                "--out",
                "big.mkl",
            ],
            dir.path(),
        )
    };
    let out = fit_big("dense");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("block kernels") && err.contains("bytes"),
        "{err}"
    );
    assert!(!dir.path().join("big.mkl").exists());
    let out = fit_big("auto");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(dir.path().join("big.mkl").exists());
}

/// `fit --solver rows`: kernel rows on demand; the report's `solver` object; the model predicts
/// as any data-driven model; misuse fails without writing anything.
#[test]
fn rows_solver_from_the_command_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let n = 60;
    let mut rng = SplitMix64::new(21);
    let labels: Vec<f64> = (0..n).map(|i| (i % 2) as f64).collect();
    let x: Vec<f64> = (0..n * 3)
        .map(|k| rng.next_f64() - 0.5 + if k % 3 == 0 { labels[k / 3] } else { 0.0 })
        .collect();
    write_npy(dir.path().join("x.npy"), &[n, 3], &x).expect("write");
    write_npy(dir.path().join("y.npy"), &[n], &labels).expect("labels");
    let fit = |extra: &[&str]| {
        let mut args = vec![
            "mkl",
            "fit",
            "--data",
            "v=x.npy:rbf:gamma=0.5",
            "--labels",
            "y.npy",
            "--quiet",
            "--out",
            "model.st",
            "--report",
            "report.json",
        ];
        args.extend_from_slice(extra);
        mmfuse(&args, dir.path())
    };
    let out = fit(&[
        "--solver",
        "rows",
        "--cache",
        "1M",
        "--row-precision",
        "f64",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("report.json")).unwrap())
            .unwrap();
    assert_eq!(report["solver"]["kind"], "rows");
    assert_eq!(report["solver"]["precision"], "f64");
    assert_eq!(report["solver"]["cache_bytes"], 1 << 20);
    assert!(report["solver"]["cache_misses"].as_u64().unwrap() > 0);
    assert!(report["converged"].as_bool().unwrap());
    let out = mmfuse(
        &[
            "mkl", "predict", "--model", "model.st", "--data", "v=x.npy", "--out", "s.npy",
        ],
        dir.path(),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::remove_file(dir.path().join("model.st")).unwrap();
    std::fs::remove_file(dir.path().join("report.json")).unwrap();
    for bad in [
        &["--solver", "rows", "--cache", "100"][..],
        &["--solver", "rows", "--loss", "squared"][..],
        &["--cache", "1M", "--loss", "squared"][..],
    ] {
        let out = fit(bad);
        assert!(!out.status.success(), "{bad:?} succeeded");
        assert!(
            !dir.path().join("model.st").exists(),
            "{bad:?} wrote a model"
        );
        assert!(
            !dir.path().join("report.json").exists(),
            "{bad:?} wrote a report"
        );
    }
}
