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
            "model.json",
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
        serde_json::from_slice(&std::fs::read(dir.path().join("model.json")).expect("model"))
            .expect("json");
    for key in [
        "beta",
        "beta_shares",
        "coef",
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
    ] {
        assert!(model.get(key).is_some(), "model.json lacks `{key}`");
    }
    assert_eq!(model["loss"], "hinge");
    assert_eq!(model["coef"].as_array().expect("coef").len(), 40);
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
            "model.json",
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
            "inf", "--quiet", "--out", "m.json",
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
            "mkl", "predict", "--model", "m.json", "--kernel", "t0.npy", "--kernel", "t1.npy",
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
        let mut args = vec!["mkl", "fit", "--kernel", "k0.npy", "--out", "bad.json"];
        args.extend(extra);
        let out = mmfuse(&args, dir.path());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} should fail");
        assert!(
            err.contains("error:") && err.contains(needle),
            "{args:?}: {err}"
        );
        assert!(
            !dir.path().join("bad.json").exists(),
            "{args:?} left a model file"
        );
    }
}
