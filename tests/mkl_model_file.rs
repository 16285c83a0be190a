//! The binary MKL model file (`MklModel::save` / `load`, docs/design.md section 3): fit, save,
//! load, predict gives bitwise the same scores for every kind of model; the same model always
//! gives the same bytes; truncated, corrupted and foreign files are clear errors, never panics.
//! The models written here are also the MKL seeds of the `safetensors_reader` fuzz target
//! (`fuzz/seeds/safetensors_reader/mkl_*.safetensors`; rewritten with
//! `MMFUSE_WRITE_FUZZ_SEEDS=1 cargo test --test mkl_model_file`).

use mmfuse::gram::{GramOptions, Kernel, Normalization};
use mmfuse::mkl::{DataKernel, MklModel, MklOptions};
use mmfuse::util::SplitMix64;
use mmfuse::{Error, Matrix};
use std::path::Path;

fn data(rng: &mut SplitMix64, n: usize, d: usize, labels: &[f64], signal: f64) -> Matrix<f64> {
    Matrix::from_vec(
        n,
        d,
        (0..n * d)
            .map(|k| {
                rng.next_f64() - 0.5
                    + if k % d == 0 {
                        signal * labels[k / d]
                    } else {
                        0.0
                    }
            })
            .collect(),
    )
    .unwrap()
}

struct Case {
    name: &'static str,
    model: MklModel,
    /// Test data by modality (data-driven models) or test kernels (precomputed ones).
    test_data: Vec<(&'static str, Matrix<f64>)>,
    test_kernels: Vec<Matrix<f64>>,
}

/// A binary classifier on precomputed kernels, a 3-class one-vs-rest data-driven model (one
/// normalisation per modality kind), and a regressor at p = inf.
fn cases() -> Vec<Case> {
    let opts = GramOptions::default();
    let mut rng = SplitMix64::new(17);
    let n = 36;
    let labels3: Vec<f64> = (0..n).map(|i| (i % 3) as f64).collect();
    let mut out = Vec::new();

    // Data-driven, three classes, three normalisations.
    let mut mods = Vec::new();
    let mut train_k = Vec::new();
    let mut test_data = Vec::new();
    for (name, d, kernel, how) in [
        ("visual", 3, "rbf:gamma=0.5", Normalization::Trace),
        ("audio", 2, "poly:degree=2", Normalization::UnitDiag),
        ("text", 4, "laplacian", Normalization::Center),
    ] {
        let x = data(&mut rng, n, d, &labels3, 1.0);
        let kernel: Kernel = kernel.parse().unwrap();
        let (dk, k) = DataKernel::new(name, x, &kernel, how, &opts).unwrap();
        mods.push(dk);
        train_k.push(k);
        test_data.push((name, data(&mut rng, 9, d, &labels3, 1.0)));
    }
    let refs: Vec<&Matrix<f64>> = train_k.iter().collect();
    let model = MklModel::fit_classifier(&refs, &labels3, &MklOptions::default())
        .unwrap()
        .with_data(mods)
        .unwrap();
    out.push(Case {
        name: "ovr_data",
        model,
        test_data,
        test_kernels: Vec::new(),
    });

    // Precomputed kernels, two classes with labels 3 and 7, p = 4/3.
    let labels2: Vec<f64> = (0..n).map(|i| if i % 2 == 0 { 3.0 } else { 7.0 }).collect();
    let x = data(&mut rng, n, 3, &labels2, 0.2);
    let xt = data(&mut rng, 5, 3, &labels2, 0.2);
    let mut ks = Vec::new();
    let mut kts = Vec::new();
    for g in [0.1, 1.0] {
        let k = Kernel::rbf(g);
        ks.push(mmfuse::gram::gram(x.as_mat_ref(), &k, &opts).unwrap());
        kts.push(mmfuse::gram::cross_gram(xt.as_mat_ref(), x.as_mat_ref(), &k, &opts).unwrap());
    }
    let o = MklOptions {
        p: 4.0 / 3.0,
        c: 3.5,
        ..MklOptions::default()
    };
    let model = MklModel::fit_classifier(&ks.iter().collect::<Vec<_>>(), &labels2, &o).unwrap();
    out.push(Case {
        name: "binary_kernels",
        model,
        test_data: Vec::new(),
        test_kernels: kts.clone(),
    });

    // Regression at p = inf.
    let targets: Vec<f64> = (0..n).map(|i| (i as f64 * 0.37).sin()).collect();
    let o = MklOptions {
        p: f64::INFINITY,
        ..MklOptions::default()
    };
    let model = MklModel::fit_regressor(&ks.iter().collect::<Vec<_>>(), &targets, &o).unwrap();
    out.push(Case {
        name: "regressor_inf",
        model,
        test_data: Vec::new(),
        test_kernels: kts,
    });
    out
}

fn scores(c: &Case, m: &MklModel) -> Vec<Vec<f64>> {
    if c.test_data.is_empty() {
        m.decision_function(&c.test_kernels.iter().collect::<Vec<_>>())
            .unwrap()
    } else {
        let views: Vec<_> = c
            .test_data
            .iter()
            .map(|(n, x)| (*n, x.as_mat_ref()))
            .collect();
        m.decision_function_from_data(&views, &GramOptions::default())
            .unwrap()
    }
}

fn bits(v: &[Vec<f64>]) -> Vec<u64> {
    v.iter().flatten().map(|x| x.to_bits()).collect()
}

#[test]
fn save_load_predict_is_bitwise() {
    let dir = tempfile::tempdir().unwrap();
    for c in cases() {
        let path = dir.path().join(format!("{}.model", c.name));
        c.model.save(&path).unwrap();
        let back = MklModel::load(&path).unwrap();
        assert_eq!(back, c.model, "{}: the model round-trips", c.name);
        assert_eq!(
            bits(&scores(&c, &back)),
            bits(&scores(&c, &c.model)),
            "{}: bitwise scores",
            c.name
        );
        // Deterministic bytes: the same model saves to the same file.
        assert_eq!(back.to_bytes().unwrap(), std::fs::read(&path).unwrap());
        assert_eq!(c.model.to_bytes().unwrap(), c.model.to_bytes().unwrap());
        if std::env::var_os("MMFUSE_WRITE_FUZZ_SEEDS").is_some() {
            let seeds = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/seeds/safetensors_reader");
            std::fs::write(
                seeds.join(format!("mkl_{}.safetensors", c.name)),
                c.model.to_bytes().unwrap(),
            )
            .unwrap();
        }
    }
}

/// The committed fuzz seeds are models this version reads.
#[test]
fn fuzz_seeds_load() {
    let seeds = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/seeds/safetensors_reader");
    let mut found = 0;
    for e in std::fs::read_dir(seeds).unwrap() {
        let path = e.unwrap().path();
        if path
            .file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with("mkl_")
        {
            MklModel::load(&path).unwrap();
            found += 1;
        }
    }
    assert!(
        found >= 3,
        "MKL seeds of the safetensors fuzz target: {found}"
    );
}

fn format_error(bytes: &[u8]) -> String {
    match MklModel::from_bytes(bytes) {
        Err(e @ Error::Format { .. }) => e.to_string(),
        Err(e) => panic!("not a Format error: {e:?}"),
        Ok(_) => panic!("accepted"),
    }
}

/// Every truncation is an error naming the file; so are the files of another kind.
#[test]
fn truncated_and_foreign_files_are_clear_errors() {
    for c in cases() {
        let bytes = c.model.to_bytes().unwrap();
        for len in (0..bytes.len()).step_by(7).chain([bytes.len() - 1]) {
            let e = format_error(&bytes[..len]);
            assert!(e.contains("not an mmfuse MKL model"), "{len}: {e}");
        }
    }
    // The JSON model of mmfuse 0.1.
    let e = format_error(br#"{"format": "mmfuse-mkl-1", "beta": [1.0]}"#);
    assert!(
        e.contains("JSON model") && e.contains("mmfuse-mkl-1"),
        "{e}"
    );
    // An LMF weights file is a valid safetensors file but not a model.
    let lmf = mmfuse::lmf::LmfModel::<f32>::new(&[("a", 2)], 2, 1, 1).unwrap();
    let e = format_error(&lmf.to_safetensors_bytes().unwrap());
    assert!(e.contains("mmfuse_mkl"), "{e}");
    // A missing file is an Io error naming it.
    let e = MklModel::load("/nonexistent/model.bin").unwrap_err();
    assert!(matches!(e, Error::Io { .. }) && e.to_string().contains("/nonexistent"));
}

/// Edits of the metadata: an unknown version, classes that do not match the fits, a
/// non-finite coefficient, an extra tensor. Each is refused with a message saying what.
#[test]
fn inconsistent_files_are_refused() {
    let c = &cases()[1];
    let bytes = c.model.to_bytes().unwrap();
    // Same-length edits of the JSON in the header keep the file a valid safetensors file.
    let edit = |from: &str, to: &str| -> Vec<u8> {
        assert_eq!(from.len(), to.len());
        let at = bytes
            .windows(from.len())
            .position(|w| w == from.as_bytes())
            .unwrap_or_else(|| panic!("{from} not in the file"));
        let mut b = bytes.clone();
        b[at..at + to.len()].copy_from_slice(to.as_bytes());
        b
    };
    let e = format_error(&edit(r#"\"format_version\":1"#, r#"\"format_version\":7"#));
    assert!(e.contains("version 7"), "{e}");
    let e = format_error(&edit(r#"\"loss\":\"hinge\""#, r#"\"loss\":\"hingf\""#));
    assert!(e.contains("loss"), "{e}");
    let e = format_error(&edit("[3.0,7.0]", "[3.0,7,8]"));
    assert!(e.contains("3 classes but 1 fits"), "{e}");

    // A NaN coefficient (the first 8 data bytes of `fit0.coef`).
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let coef = st.tensor("fit0.coef").unwrap();
    let offset = coef.data().as_ptr() as usize - bytes.as_ptr() as usize;
    let mut b = bytes.clone();
    b[offset..offset + 8].copy_from_slice(&f64::NAN.to_le_bytes());
    let e = format_error(&b);
    assert!(e.contains("non-finite"), "{e}");
}

/// Random byte flips anywhere: an error or a model that re-saves consistently, never a panic.
#[test]
fn corrupted_bytes_never_panic() {
    let mut rng = SplitMix64::new(3);
    for c in cases() {
        let bytes = c.model.to_bytes().unwrap();
        for _ in 0..300 {
            let mut b = bytes.clone();
            for _ in 0..1 + (rng.next_f64() * 3.0) as usize {
                let at = (rng.next_f64() * b.len() as f64) as usize % b.len();
                b[at] ^= 1 << ((rng.next_f64() * 8.0) as u32 % 8);
            }
            if let Ok(m) = MklModel::from_bytes(&b) {
                let again = m.to_bytes().unwrap();
                assert_eq!(MklModel::from_bytes(&again).unwrap(), m);
            }
        }
    }
}
