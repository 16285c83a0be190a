//! `mmfuse lmf train` / `mmfuse lmf forward` / `mmfuse bench lmf` end to end: the file
//! contracts, agreement with the library and with the PyTorch fixture, and failures that exit
//! non-zero without leaving output files.

use mmfuse::io::{read_npy, write_npy};
use mmfuse::lmf::{LmfModel, LmfOptions};
use mmfuse::util::SplitMix64;
use mmfuse::Matrix;
use std::path::Path;
use std::process::{Command, Output};

fn mmfuse(args: &[&str], dir: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_mmfuse"))
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run mmfuse")
}

fn ok(out: &Output) {
    assert!(
        out.status.success(),
        "failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn random(rows: usize, cols: usize, rng: &mut SplitMix64) -> Matrix<f32> {
    Matrix::from_vec(
        rows,
        cols,
        (0..rows * cols)
            .map(|_| rng.next_f64() as f32 - 0.5)
            .collect(),
    )
    .expect("shape")
}

fn save(dir: &Path, name: &str, m: &Matrix<f32>) {
    write_npy(dir.join(name), &[m.nrows(), m.ncols()], m.as_slice()).expect("write");
}

/// Three modalities of 48 rows and a 2-column target that depends on two of them.
fn setup(dir: &Path) -> Vec<Matrix<f32>> {
    let mut rng = SplitMix64::new(11);
    let (v, a, t) = (
        random(48, 5, &mut rng),
        random(48, 3, &mut rng),
        random(48, 4, &mut rng),
    );
    let y: Vec<f32> = (0..48)
        .flat_map(|i| [v.get(i, 0) * a.get(i, 1), v.get(i, 2) + 0.5])
        .collect();
    save(dir, "v.npy", &v);
    save(dir, "a.npy", &a);
    save(dir, "t.npy", &t);
    save(dir, "y.npy", &Matrix::from_vec(48, 2, y).expect("shape"));
    vec![v, a, t]
}

const TRAIN: &[&str] = &[
    "lmf",
    "train",
    "--input",
    "visual=v.npy",
    "--input",
    "audio=a.npy",
    "--input",
    "text=t.npy",
    "--target",
    "y.npy",
    "--rank",
    "3",
    "--epochs",
    "4",
    "--batch",
    "8",
    "--lr",
    "0.01",
    "--seed",
    "5",
    "--quiet",
];

#[test]
fn train_then_forward_matches_the_library() {
    let dir = tempfile::tempdir().expect("tempdir");
    let xs = setup(dir.path());
    let mut args = TRAIN.to_vec();
    args.extend([
        "--val-fraction",
        "0.25",
        "--save",
        "m.safetensors",
        "--history",
        "h.json",
    ]);
    ok(&mmfuse(&args, dir.path()));
    let history: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("h.json")).expect("history"))
            .expect("json");
    let train = history["train_loss"].as_array().expect("train_loss");
    assert_eq!(train.len(), 4);
    assert_eq!(history["val_loss"].as_array().expect("val_loss").len(), 4);
    assert!(train[3].as_f64() < train[0].as_f64(), "{history}");

    // forward, inputs in another order: the same outputs as the library's.
    ok(&mmfuse(
        &[
            "lmf",
            "forward",
            "--weights",
            "m.safetensors",
            "--input",
            "text=t.npy",
            "--input",
            "visual=v.npy",
            "--input",
            "audio=a.npy",
            "--out",
            "out.npy",
        ],
        dir.path(),
    ));
    let out = read_npy(dir.path().join("out.npy")).expect("out");
    assert_eq!(out.shape, [48, 2]);
    let got = out.into_matrix::<f32>("out").expect("f32");
    let model =
        LmfModel::<f32>::load_safetensors(dir.path().join("m.safetensors"), None).expect("load");
    assert_eq!(model.modalities(), ["visual", "audio", "text"]);
    assert_eq!((model.rank(), model.out_dim()), (3, 2));
    let expected = model
        .forward(
            &xs.iter().map(|x| x.as_mat_ref()).collect::<Vec<_>>(),
            &LmfOptions::default(),
        )
        .expect("forward");
    assert_eq!(got, expected);

    // --init continues from saved weights; the same seed and options give the same file.
    let mut again = TRAIN.to_vec();
    again.extend(["--init", "m.safetensors", "--save", "m2.safetensors"]);
    ok(&mmfuse(&again, dir.path()));
    let mut twice = TRAIN.to_vec();
    twice.extend(["--init", "m.safetensors", "--save", "m3.safetensors"]);
    ok(&mmfuse(&twice, dir.path()));
    assert_eq!(
        std::fs::read(dir.path().join("m2.safetensors")).unwrap(),
        std::fs::read(dir.path().join("m3.safetensors")).unwrap(),
        "training is deterministic for a seed"
    );
}

/// The weights written by the PyTorch reference module (no order metadata) run through
/// `lmf forward`, the input names giving the order, and agree with PyTorch's outputs.
#[test]
fn forward_of_pytorch_weights() {
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let dir = tempfile::tempdir().expect("tempdir");
    let arg = |name: &str| {
        format!(
            "{name}={}",
            fixtures.join(format!("lmf_{name}.npy")).display()
        )
    };
    let weights = fixtures.join("lmf_torch.safetensors");
    let (v, a, t) = (arg("visual"), arg("audio"), arg("text"));
    ok(&mmfuse(
        &[
            "lmf",
            "forward",
            "--weights",
            weights.to_str().unwrap(),
            "--input",
            &v,
            "--input",
            &a,
            "--input",
            &t,
            "--out",
            "y.npy",
        ],
        dir.path(),
    ));
    let got = read_npy(dir.path().join("y.npy"))
        .expect("y")
        .into_matrix::<f64>("y")
        .expect("f64");
    let want = read_npy(fixtures.join("lmf_output.npy"))
        .expect("torch")
        .into_matrix::<f64>("t")
        .expect("f64");
    let (got, want) = (got.as_slice(), want.as_slice());
    assert_eq!(got.len(), want.len());
    let scale = want.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    for (g, w) in got.iter().zip(want) {
        assert!((g - w).abs() <= 1e-5 * scale, "{g} vs {w}");
    }
}

#[test]
fn failures_exit_non_zero_and_write_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    setup(dir.path());
    let mut rng = SplitMix64::new(3);
    save(dir.path(), "short.npy", &random(40, 5, &mut rng));
    let mut nan = random(48, 5, &mut rng);
    nan.as_mut_slice()[17] = f32::NAN;
    save(dir.path(), "nan.npy", &nan);
    let mut y_inf = random(48, 2, &mut rng);
    y_inf.as_mut_slice()[3] = f32::INFINITY;
    save(dir.path(), "y_inf.npy", &y_inf);
    std::fs::write(
        dir.path().join("junk.safetensors"),
        b"not a safetensors file",
    )
    .unwrap();
    let mut args = TRAIN.to_vec();
    args.extend(["--save", "m.safetensors"]);
    ok(&mmfuse(&args, dir.path()));

    let train_cases: Vec<(Vec<&str>, &str)> = vec![
        (
            vec![
                "--input",
                "visual=short.npy",
                "--target",
                "y.npy",
                "--rank",
                "2",
            ],
            "rows",
        ),
        (
            vec![
                "--input",
                "visual=nan.npy",
                "--target",
                "y.npy",
                "--rank",
                "2",
            ],
            "NaN",
        ),
        (
            vec![
                "--input",
                "visual=v.npy",
                "--target",
                "y_inf.npy",
                "--rank",
                "2",
            ],
            "inf",
        ),
        (
            vec![
                "--input",
                "visual=v.npy",
                "--target",
                "y.npy",
                "--rank",
                "0",
            ],
            "rank",
        ),
        (
            vec![
                "--input",
                "visual=v.npy",
                "--target",
                "y.npy",
                "--rank",
                "2",
                "--out-dim",
                "3",
            ],
            "target",
        ),
        (vec!["--input", "visual=v.npy", "--target", "y.npy"], "rank"),
        (
            vec![
                "--input",
                "visual=v.npy",
                "--input",
                "visual=a.npy",
                "--target",
                "y.npy",
                "--rank",
                "2",
            ],
            "twice",
        ),
        (
            vec!["--input", "visual", "--target", "y.npy", "--rank", "2"],
            "NAME=PATH",
        ),
        (
            vec![
                "--input",
                "visual=v.npy",
                "--target",
                "y.npy",
                "--init",
                "junk.safetensors",
            ],
            "junk",
        ),
        (
            vec![
                "--input",
                "visual=v.npy",
                "--target",
                "y.npy",
                "--init",
                "m.safetensors",
            ],
            "audio",
        ),
        (
            vec![
                "--input",
                "visual=v.npy",
                "--target",
                "y.npy",
                "--rank",
                "2",
                "--batch",
                "0",
            ],
            "batch",
        ),
    ];
    for (case, needle) in train_cases {
        let mut all = vec![
            "lmf",
            "train",
            "--quiet",
            "--epochs",
            "2",
            "--save",
            "bad.safetensors",
        ];
        all.extend(case.iter().copied());
        let out = mmfuse(&all, dir.path());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{case:?} accepted");
        assert!(err.contains(needle), "{case:?}: {err}");
        assert!(
            !dir.path().join("bad.safetensors").exists(),
            "{case:?} wrote a model"
        );
    }
    let forward_cases: Vec<(Vec<&str>, &str)> = vec![
        (
            vec!["--input", "visual=v.npy", "--input", "audio=a.npy"],
            "text",
        ),
        (
            vec![
                "--input",
                "visual=v.npy",
                "--input",
                "audio=a.npy",
                "--input",
                "text=t.npy",
                "--input",
                "depth=t.npy",
            ],
            "depth",
        ),
        (
            vec![
                "--input",
                "visual=a.npy",
                "--input",
                "audio=v.npy",
                "--input",
                "text=t.npy",
            ],
            "features",
        ),
        (
            vec![
                "--input",
                "visual=short.npy",
                "--input",
                "audio=a.npy",
                "--input",
                "text=t.npy",
            ],
            "rows",
        ),
    ];
    for (case, needle) in forward_cases {
        let mut all = vec![
            "lmf",
            "forward",
            "--weights",
            "m.safetensors",
            "--out",
            "bad.npy",
        ];
        all.extend(case.iter().copied());
        let out = mmfuse(&all, dir.path());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{case:?} accepted");
        assert!(
            err.to_lowercase().contains(&needle.to_lowercase()),
            "{case:?}: {err}"
        );
        assert!(!dir.path().join("bad.npy").exists());
    }
    let out = mmfuse(
        &[
            "lmf",
            "forward",
            "--weights",
            "junk.safetensors",
            "--input",
            "visual=v.npy",
            "--out",
            "bad.npy",
        ],
        dir.path(),
    );
    assert!(!out.status.success());
    assert!(!dir.path().join("bad.npy").exists());
}

/// A learning rate that blows up: the command stops, says so, exits non-zero, and keeps the
/// last finite weights.
#[test]
fn divergence_is_reported_and_the_last_finite_weights_kept() {
    let dir = tempfile::tempdir().expect("tempdir");
    setup(dir.path());
    let out = mmfuse(
        &[
            "lmf",
            "train",
            "--input",
            "visual=v.npy",
            "--input",
            "audio=a.npy",
            "--target",
            "y.npy",
            "--rank",
            "2",
            "--epochs",
            "50",
            "--lr",
            "1e30",
            "--quiet",
            "--save",
            "d.safetensors",
            "--history",
            "h.json",
        ],
        dir.path(),
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("diverged") && err.contains("last finite weights"),
        "{err}"
    );
    let model = LmfModel::<f32>::load_safetensors(dir.path().join("d.safetensors"), None)
        .expect("the last finite weights load");
    assert!(model.fusion_weights().iter().all(|v| v.is_finite()));
}

#[test]
fn bench_lmf_json_has_the_contract_keys() {
    let dir = tempfile::tempdir().expect("tempdir");
    for extra in [&[][..], &["--train"]] {
        let mut args = vec![
            "bench",
            "lmf",
            "--batch",
            "64",
            "--rank",
            "2",
            "--out-dim",
            "3",
            "--dims",
            "5,7",
            "--runs",
            "2",
            "--json",
        ];
        args.extend(extra.iter().copied());
        let out = mmfuse(&args, dir.path());
        ok(&out);
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one JSON object");
        for key in [
            "batch",
            "rank",
            "out_dim",
            "dims",
            "threads",
            "seconds_per_batch",
            "samples_per_second",
        ] {
            assert!(!v[key].is_null(), "missing {key}: {v}");
        }
        assert_eq!(v["dims"], serde_json::json!([5, 7]));
        assert!(v["samples_per_second"].as_f64().unwrap() > 0.0);
    }
    let out = mmfuse(&["bench", "lmf", "--dims", "5,0"], dir.path());
    assert!(!out.status.success());
}
