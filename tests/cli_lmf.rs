//! `mmfuse lmf train` / `mmfuse lmf forward` / `mmfuse bench lmf` end to end: the file
//! contracts, agreement with the library and with the PyTorch fixture, and failures that exit
//! non-zero without leaving output files.

use mmfuse::io::{read_npy, write_npy};
use mmfuse::lmf::blockwise::BlockLmf;
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

// ---------------------------------------------------------------------------------------------
// Block models (`--blocks`), `lmf relevance`, cross-entropy and classes.

const BLOCKS: [&str; 6] = ["v", "a", "t", "v*a", "v*t", "a*t"];

/// y = v0 * a0 (an interaction only) with a noise modality t, 300 rows; also class labels
/// (v0 * a0 > 0) as a 1-D int64 .npy and as an N x 1 float .npy.
fn block_setup(dir: &Path) -> Vec<Matrix<f32>> {
    let n = 300;
    let mut rng = SplitMix64::new(21);
    let (v, a, t) = (
        random(n, 3, &mut rng),
        random(n, 2, &mut rng),
        random(n, 2, &mut rng),
    );
    let y: Vec<f32> = (0..n).map(|i| 4.0 * v.get(i, 0) * a.get(i, 0)).collect();
    let labels: Vec<i64> = y.iter().map(|&v| i64::from(v > 0.0)).collect();
    save(dir, "v.npy", &v);
    save(dir, "a.npy", &a);
    save(dir, "t.npy", &t);
    save(dir, "y.npy", &Matrix::from_vec(n, 1, y).expect("shape"));
    write_npy(dir.join("labels.npy"), &[n], &labels).expect("labels");
    let float_labels: Vec<f32> = labels.iter().map(|&c| c as f32).collect();
    save(
        dir,
        "labels_f.npy",
        &Matrix::from_vec(n, 1, float_labels).expect("shape"),
    );
    vec![v, a, t]
}

const BLOCK_TRAIN: &[&str] = &[
    "lmf", "train", "--input", "v=v.npy", "--input", "a=a.npy", "--input", "t=t.npy", "--batch",
    "32", "--seed", "3",
];

/// `args` with rank 4, 12 epochs and learning rate 0.02 unless they set them.
fn defaults(mut args: Vec<&str>) -> Vec<&str> {
    for (flag, value) in [("--rank", "4"), ("--epochs", "12"), ("--lr", "0.02")] {
        if !args.contains(&flag) {
            args.extend([flag, value]);
        }
    }
    args
}

fn json_file(path: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(path).expect("read")).expect("json")
}

fn shares_sum_to_one(v: &serde_json::Value) {
    let obj = v.as_object().expect("an object block -> share");
    assert_eq!(obj.len(), BLOCKS.len(), "{v}");
    for b in BLOCKS {
        assert!(obj[b].as_f64().expect("share") >= 0.0, "{v}");
    }
    let sum: f64 = obj.values().map(|s| s.as_f64().unwrap()).sum();
    assert!((sum - 1.0).abs() < 1e-9, "shares sum to {sum}: {v}");
}

#[test]
fn block_train_forward_relevance_and_init() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let xs = block_setup(d);
    let mut args = BLOCK_TRAIN.to_vec();
    args.extend([
        "--blocks",
        "pairs",
        "--target",
        "y.npy",
        "--val-fraction",
        "0.2",
        "--relevance-p",
        "1",
        "--reg",
        "1e-3",
        "--save",
        "b.safetensors",
        "--history",
        "h.json",
    ]);
    let out = mmfuse(&defaults(args), d);
    ok(&out);
    // The summary (stderr, not --quiet) names the relevance of every block.
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("relevance (p = 1)"), "{err}");
    for b in BLOCKS {
        assert!(err.contains(&format!("{b} 0.")), "{b} missing: {err}");
    }

    let h = json_file(&d.join("h.json"));
    assert_eq!(h["blocks"], serde_json::json!(BLOCKS));
    assert_eq!(h["p"], "1");
    for key in ["train_loss", "val_loss", "penalty", "relevance"] {
        assert_eq!(h[key].as_array().expect(key).len(), 12, "{key}: {h}");
    }
    h["relevance"]
        .as_array()
        .unwrap()
        .iter()
        .for_each(shares_sum_to_one);
    shares_sum_to_one(&h["final_relevance"]);
    assert_eq!(h["norms"].as_object().expect("norms").len(), 6);
    assert!(h["best_epoch"]
        .as_u64()
        .is_some_and(|e| (1..=12).contains(&e)));
    assert_eq!(h["stopped_early"], false);
    let train = h["train_loss"].as_array().unwrap();
    assert!(train[11].as_f64() < train[0].as_f64(), "{h}");
    let finals = h["final_relevance"].as_object().unwrap();
    let top = BLOCKS
        .iter()
        .max_by(|x, y| {
            finals[**x]
                .as_f64()
                .unwrap()
                .total_cmp(&finals[**y].as_f64().unwrap())
        })
        .unwrap();
    assert_eq!(*top, "v*a", "the planted interaction leads: {h}");

    // forward, inputs in another order: the library's outputs, bit for bit.
    ok(&mmfuse(
        &[
            "lmf",
            "forward",
            "--weights",
            "b.safetensors",
            "--input",
            "t=t.npy",
            "--input",
            "v=v.npy",
            "--input",
            "a=a.npy",
            "--out",
            "out.npy",
        ],
        d,
    ));
    let got = read_npy(d.join("out.npy"))
        .expect("out")
        .into_matrix::<f32>("out")
        .expect("f32");
    let model = BlockLmf::<f32>::load(d.join("b.safetensors")).expect("load");
    assert_eq!(model.block_names(), BLOCKS);
    let refs: Vec<_> = xs.iter().map(|x| x.as_mat_ref()).collect();
    let want = model
        .forward(&refs, &LmfOptions::default())
        .expect("forward");
    assert_eq!(got, want);

    // relevance: the library's, and the history's final relevance.
    let out = mmfuse(&["lmf", "relevance", "--weights", "b.safetensors"], d);
    ok(&out);
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one JSON object");
    assert_eq!(r["blocks"], serde_json::json!(BLOCKS));
    assert_eq!(r["p"], "1");
    shares_sum_to_one(&r["relevance"]);
    let lib = BlockLmf::<f64>::load(d.join("b.safetensors"))
        .expect("load f64")
        .relevance()
        .expect("relevance");
    for (i, b) in lib.blocks.iter().enumerate() {
        assert_eq!(r["relevance"][b].as_f64(), Some(lib.shares[i]), "{b}");
        assert_eq!(r["beta"][b].as_f64(), Some(lib.beta[i]), "{b}");
        assert_eq!(r["norms"][b].as_f64(), Some(lib.norms[i]), "{b}");
        let hist = h["final_relevance"][b].as_f64().unwrap();
        assert!(
            (hist - lib.shares[i]).abs() < 1e-6,
            "{b}: {hist} vs {}",
            lib.shares[i]
        );
    }

    // --init continues a block model: its blocks (no --blocks, or the same), deterministic.
    let cont = |blocks: Option<&str>, save: &str| {
        let mut args = BLOCK_TRAIN.to_vec();
        args.extend(["--target", "y.npy", "--epochs", "2", "--quiet"]);
        args.extend(["--init", "b.safetensors", "--save", save]);
        if let Some(b) = blocks {
            args.extend(["--blocks", b]);
        }
        mmfuse(&defaults(args), d)
    };
    ok(&cont(None, "c1.safetensors"));
    ok(&cont(Some("a*t, v*a , v*t"), "c2.safetensors"));
    assert_eq!(
        std::fs::read(d.join("c1.safetensors")).unwrap(),
        std::fs::read(d.join("c2.safetensors")).unwrap(),
        "training is deterministic for a seed"
    );
    let c1 = BlockLmf::<f32>::load(d.join("c1.safetensors")).expect("load");
    assert_eq!(c1.stats(), model.stats(), "the file's statistics are kept");
    assert_ne!(c1.params(), model.params());
    for (blocks, needle) in [(Some("all"), "blocks"), (Some("none"), "block model file")] {
        let out = cont(blocks, "bad.safetensors");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success() && err.contains(needle),
            "{blocks:?}: {err}"
        );
        assert!(!d.join("bad.safetensors").exists());
    }
    let mut args = BLOCK_TRAIN.to_vec();
    args.extend([
        "--target",
        "y.npy",
        "--init",
        "b.safetensors",
        "--relevance-p",
        "2",
    ]);
    args.extend(["--save", "bad.safetensors"]);
    let out = mmfuse(&defaults(args), d);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("p = 1"));
    assert!(!d.join("bad.safetensors").exists());
}

#[test]
fn block_xent_and_classes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let xs = block_setup(d);
    let refs: Vec<_> = xs.iter().map(|x| x.as_mat_ref()).collect();
    for (labels, save) in [
        ("labels.npy", "x.safetensors"),
        ("labels_f.npy", "xf.safetensors"),
    ] {
        let mut args = BLOCK_TRAIN.to_vec();
        args.extend(["--blocks", "v*a", "--loss", "xent", "--target", labels]);
        args.extend(["--quiet", "--save", save, "--history", "xh.json"]);
        args.extend(["--optimizer", "sgd", "--momentum", "0.5", "--lr", "0.2"]);
        ok(&mmfuse(&defaults(args), d));
        let h = json_file(&d.join("xh.json"));
        assert_eq!(
            h["val_loss"],
            serde_json::Value::Null,
            "no validation split"
        );
        assert_eq!(h["loss"], "xent");
        assert_eq!(h["optimizer"], "sgd");
        let train = h["train_loss"].as_array().unwrap();
        assert!(train[11].as_f64() < train[0].as_f64(), "{h}");
    }
    assert_eq!(
        std::fs::read(d.join("x.safetensors")).unwrap(),
        std::fs::read(d.join("xf.safetensors")).unwrap(),
        "int64 and float labels train the same model"
    );
    let model = BlockLmf::<f32>::load(d.join("x.safetensors")).expect("load");
    assert_eq!(model.out_dim(), 2, "H = max label + 1");
    assert_eq!(model.block_names(), ["v", "a", "t", "v*a"]);
    ok(&mmfuse(
        &[
            "lmf",
            "forward",
            "--weights",
            "x.safetensors",
            "--input",
            "v=v.npy",
            "--input",
            "a=a.npy",
            "--input",
            "t=t.npy",
            "--classes",
            "c.npy",
        ],
        d,
    ));
    let classes = read_npy(d.join("c.npy")).expect("classes");
    assert_eq!(classes.shape, [300]);
    assert_eq!(classes.dtype_name(), "int64");
    let got: Vec<usize> = classes
        .into_vec_f64("c")
        .expect("values")
        .into_iter()
        .map(|v| v as usize)
        .collect();
    let want = model
        .predict_classes(&refs, &LmfOptions::default())
        .expect("classes");
    assert_eq!(got, want);
    let labels = read_npy(d.join("labels.npy"))
        .unwrap()
        .into_vec_f64("l")
        .unwrap();
    let right = got
        .iter()
        .zip(&labels)
        .filter(|(g, l)| **g as f64 == **l)
        .count();
    assert!(right > 200, "{right} of 300 right");
    assert!(!d.join("out.npy").exists(), "--out not given, not written");
}

#[test]
fn block_bad_input_exits_non_zero_and_writes_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    block_setup(d);
    let n = 300;
    let bad = |name: &str, f: &dyn Fn(usize) -> f32| {
        let v: Vec<f32> = (0..n).map(f).collect();
        save(d, name, &Matrix::from_vec(n, 1, v).expect("shape"));
    };
    bad("frac.npy", &|i| if i == 7 { 0.5 } else { (i % 2) as f32 });
    bad("neg.npy", &|i| if i == 7 { -1.0 } else { (i % 2) as f32 });
    bad("five.npy", &|i| if i == 7 { 5.0 } else { (i % 2) as f32 });
    save(
        d,
        "wide.npy",
        &Matrix::from_vec(n, 2, vec![1.0f32; 2 * n]).unwrap(),
    );
    // A plain model and a block model to run forward / relevance on.
    let mut plain = BLOCK_TRAIN.to_vec();
    plain.extend(["--target", "y.npy", "--epochs", "1", "--quiet"]);
    plain.extend(["--save", "plain.safetensors"]);
    ok(&mmfuse(&defaults(plain.clone()), d));
    let mut block = plain.clone();
    block.pop();
    block.extend(["blk.safetensors", "--blocks", "pairs"]);
    ok(&mmfuse(&defaults(block), d));

    let cases: Vec<(Vec<&str>, &str)> = vec![
        (
            vec!["--blocks", "v*x", "--target", "y.npy"],
            "unknown modality `x`",
        ),
        (vec!["--blocks", "v*x", "--target", "y.npy"], "blocks"),
        (vec!["--blocks", "v", "--target", "y.npy"], "blocks"),
        (
            vec!["--blocks", "pairs", "--rank", "0", "--target", "y.npy"],
            "rank",
        ),
        (
            vec!["--blocks", "pairs", "--reg", "-1", "--target", "y.npy"],
            "reg",
        ),
        (
            vec![
                "--blocks",
                "pairs",
                "--relevance-p",
                "0.5",
                "--target",
                "y.npy",
            ],
            "relevance-p",
        ),
        (
            vec![
                "--blocks",
                "pairs",
                "--relevance-p",
                "x",
                "--target",
                "y.npy",
            ],
            "relevance-p",
        ),
        (
            vec![
                "--blocks",
                "pairs",
                "--optimizer",
                "sgd",
                "--momentum",
                "1",
                "--target",
                "y.npy",
            ],
            "momentum",
        ),
        (
            vec![
                "--blocks",
                "pairs",
                "--optimizer",
                "sgd",
                "--momentum",
                "-0.1",
                "--target",
                "y.npy",
            ],
            "momentum",
        ),
        (
            vec![
                "--blocks",
                "pairs",
                "--momentum",
                "0.5",
                "--target",
                "y.npy",
            ],
            "--optimizer sgd",
        ),
        (
            vec![
                "--blocks", "pairs", "--loss", "xent", "--target", "frac.npy",
            ],
            "class label 0.5",
        ),
        (
            vec!["--blocks", "pairs", "--loss", "xent", "--target", "neg.npy"],
            "class label -1",
        ),
        (
            vec![
                "--blocks",
                "pairs",
                "--loss",
                "xent",
                "--out-dim",
                "3",
                "--target",
                "five.npy",
            ],
            "class label 5",
        ),
        (
            vec![
                "--blocks", "pairs", "--loss", "xent", "--target", "wide.npy",
            ],
            "class labels",
        ),
        (
            vec![
                "--blocks",
                "pairs",
                "--target",
                "y.npy",
                "--init",
                "plain.safetensors",
            ],
            "not a block model",
        ),
        // The block-only flags with a plain model, and xent (the library's reason).
        (
            vec!["--relevance-p", "2", "--target", "y.npy"],
            "relevance-p",
        ),
        (
            vec!["--blocks", "none", "--reg", "0.1", "--target", "y.npy"],
            "reg",
        ),
        (vec!["--momentum", "0.5", "--target", "y.npy"], "momentum"),
        (vec!["--optimizer", "sgd", "--target", "y.npy"], "optimizer"),
        (
            vec!["--loss", "xent", "--target", "labels.npy"],
            "block model",
        ),
    ];
    for (case, needle) in cases {
        let mut all = BLOCK_TRAIN.to_vec();
        all.extend([
            "--quiet",
            "--save",
            "bad.safetensors",
            "--history",
            "bad.json",
        ]);
        all.extend(case.iter().copied());
        let out = mmfuse(&defaults(all), d);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{case:?} accepted");
        assert_eq!(out.status.code(), Some(1), "{case:?}: {err}");
        assert!(err.contains(needle), "{case:?}: {err}");
        assert!(!err.contains("panicked"), "{case:?}: {err}");
        assert!(
            !d.join("bad.safetensors").exists(),
            "{case:?} wrote a model"
        );
        assert!(!d.join("bad.json").exists(), "{case:?} wrote a history");
    }

    let forward_cases: Vec<(Vec<&str>, &str)> = vec![
        (
            vec![
                "--input", "v=v.npy", "--input", "a=a.npy", "--out", "bad.npy",
            ],
            "t",
        ),
        (
            vec![
                "--input", "v=a.npy", "--input", "a=v.npy", "--input", "t=t.npy", "--out",
                "bad.npy",
            ],
            "features",
        ),
        (
            vec![
                "--input", "v=v.npy", "--input", "a=a.npy", "--input", "t=t.npy", "--input",
                "w=t.npy", "--out", "bad.npy",
            ],
            "w",
        ),
        (
            vec![
                "--input",
                "v=v.npy",
                "--input",
                "a=a.npy",
                "--input",
                "t=t.npy",
                "--classes",
                "bad.npy",
            ],
            "H >= 2",
        ),
    ];
    for (case, needle) in forward_cases {
        let mut all = vec!["lmf", "forward", "--weights", "blk.safetensors"];
        all.extend(case.iter().copied());
        let out = mmfuse(&all, d);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{case:?} accepted");
        assert!(err.contains(needle), "{case:?}: {err}");
        assert!(!d.join("bad.npy").exists(), "{case:?} wrote outputs");
    }

    // relevance of a plain model, and of a file that is not a model.
    let out = mmfuse(&["lmf", "relevance", "--weights", "plain.safetensors"], d);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("plain LMF has no blocks; train with --blocks"),
        "{err}"
    );
    assert!(out.stdout.is_empty());
    std::fs::write(d.join("junk.safetensors"), b"junk").unwrap();
    let out = mmfuse(&["lmf", "relevance", "--weights", "junk.safetensors"], d);
    assert!(!out.status.success());
    assert!(out.stdout.is_empty());
}

/// A learning rate that blows up a block model: the command says so, exits non-zero and keeps
/// the last finite weights and the history so far.
#[test]
fn block_divergence_keeps_the_last_finite_weights() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    block_setup(d);
    let mut args = BLOCK_TRAIN.to_vec();
    args.extend([
        "--blocks", "pairs", "--target", "y.npy", "--lr", "1e30", "--quiet",
    ]);
    args.extend(["--save", "d.safetensors", "--history", "dh.json"]);
    let out = mmfuse(&defaults(args), d);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("diverged") && err.contains("last finite weights"),
        "{err}"
    );
    let model = BlockLmf::<f32>::load(d.join("d.safetensors")).expect("the last weights load");
    assert!(model.params().iter().all(|v| v.is_finite()));
    let h = json_file(&d.join("dh.json"));
    assert_eq!(h["blocks"], serde_json::json!(BLOCKS));
}
