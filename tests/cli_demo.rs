//! `mmfuse demo` end to end at a small size (`--n 200 --epochs 5`, without the real-data study,
//! which `.ci/run` runs with the full demo in release): the report folder is written and its
//! numbers are sane (block LMF included: its keys, its chart, its validation loss).

use std::path::Path;
use std::process::Command;

fn run_demo(out: &Path, extra: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_mmfuse"))
        .args([
            "demo",
            "--n",
            "200",
            "--epochs",
            "5",
            "--seed",
            "3",
            "--quiet",
            "--no-real-data",
            "--out",
        ])
        .arg(out)
        .args(extra)
        .output()
        .expect("run mmfuse demo")
}

/// ||v||_p for finite p >= 1, or the max for p = inf.
fn pnorm(v: &[f64], p: f64) -> f64 {
    if p.is_infinite() {
        v.iter().fold(0.0f64, |m, &x| m.max(x))
    } else {
        v.iter().map(|x| x.powf(p)).sum::<f64>().powf(1.0 / p)
    }
}

#[test]
fn demo_writes_a_sane_report() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("demo");
    let status = run_demo(&out, &[]);
    assert!(
        status.status.success(),
        "demo failed: {}",
        String::from_utf8_lossy(&status.stderr)
    );
    assert!(status.stderr.is_empty(), "--quiet prints nothing on stderr");
    let stdout = String::from_utf8_lossy(&status.stdout);
    assert!(
        stdout.contains("MKL p=4/3") && stdout.contains("LMF rank 4"),
        "{stdout}"
    );
    let results: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("results.json")).expect("results.json"))
            .expect("valid JSON");

    // Modalities and their single-kernel SVMs.
    let mods = results["modalities"].as_array().expect("modalities");
    let names: Vec<&str> = mods.iter().map(|m| m["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["visual", "audio", "text"]);
    for m in mods {
        let a = m["alignment"].as_f64().expect("alignment");
        assert!((-1.0..=1.0).contains(&a));
        let acc = m["accuracy_alone"].as_f64().expect("accuracy");
        assert!((0.0..=1.0).contains(&acc));
    }

    // MKL: beta on the p-sphere, shares on the simplex, the noise modality lowest.
    let mkl = results["mkl"].as_array().expect("mkl");
    assert_eq!(mkl.len(), 4, "default p list 1, 4/3, 2, inf");
    for r in mkl {
        let p = match &r["p"] {
            serde_json::Value::String(s) if s == "inf" => f64::INFINITY,
            v => v.as_f64().expect("p"),
        };
        let beta: Vec<f64> = serde_json::from_value(r["beta"].clone()).expect("beta");
        let shares: Vec<f64> = serde_json::from_value(r["beta_shares"].clone()).expect("shares");
        assert!(beta.iter().all(|&b| b >= 0.0), "p = {p}: {beta:?}");
        assert!(
            (pnorm(&beta, p) - 1.0).abs() < 1e-9,
            "p = {p}: ||beta||_p != 1: {beta:?}"
        );
        assert!(
            (shares.iter().sum::<f64>() - 1.0).abs() < 1e-12,
            "{shares:?}"
        );
        assert_eq!(r["converged"], true, "p = {p}");
        if p.is_finite() {
            assert!(
                beta[2] <= beta[0] && beta[2] <= beta[1],
                "p = {p}: {beta:?}"
            );
        }
        let acc = r["accuracy"].as_f64().expect("accuracy");
        assert!(acc > 0.6, "p = {p}: held-out accuracy {acc}");
    }
    assert_eq!(results["noise_modality_lowest_weight"], true);

    // Kernel PCA of the three kernels and the combined one, each with its figure.
    let kpca = results["kpca"].as_array().expect("kpca");
    assert_eq!(kpca.len(), 4);
    let mut figures: Vec<String> = kpca
        .iter()
        .map(|k| {
            let ev: Vec<f64> = serde_json::from_value(k["eigenvalues"].clone()).expect("eig");
            assert!(ev[0] >= ev[1], "eigenvalues sorted: {ev:?}");
            assert!(k["fisher"].as_f64().expect("fisher") >= 0.0);
            k["figure"].as_str().expect("figure").to_string()
        })
        .collect();

    // LMF: the training loss went down.
    let lmf = &results["lmf"];
    let train: Vec<f64> = serde_json::from_value(lmf["train_loss"].clone()).expect("train");
    let val: Vec<f64> = serde_json::from_value(lmf["val_loss"].clone()).expect("val");
    assert_eq!(train.len(), 5);
    assert_eq!(val.len(), 5);
    assert!(train[4] < train[0], "{train:?}");
    assert_eq!(lmf["train_loss_decreased"], true);
    figures.push(lmf["figure"].as_str().expect("figure").to_string());

    // Block LMF on the same data (pairs, p = 1) beside the kernel side on the same blocks: both
    // relevance vectors on the simplex, visual first on both sides, the block model's
    // validation MSE below the mean predictor's and plain LMF's.
    let block = &lmf["block"];
    let blocks: Vec<String> = serde_json::from_value(block["blocks"].clone()).expect("blocks");
    assert_eq!(
        blocks,
        [
            "visual",
            "audio",
            "text",
            "visual*audio",
            "visual*text",
            "audio*text"
        ]
    );
    for rel in [&block["relevance"], &block["kernel_side"]["relevance"]] {
        let rel: Vec<f64> = serde_json::from_value(rel.clone()).expect("relevance");
        assert_eq!(rel.len(), 6);
        assert!(rel.iter().all(|&r| (0.0..=1.0).contains(&r)), "{rel:?}");
        assert!((rel.iter().sum::<f64>() - 1.0).abs() < 1e-9, "{rel:?}");
        let top = (0..6).max_by(|&a, &b| rel[a].total_cmp(&rel[b])).unwrap();
        assert_eq!(blocks[top], "visual", "{rel:?}");
    }
    let block_val: Vec<f64> = serde_json::from_value(block["val_loss"].clone()).expect("val");
    assert_eq!(
        block_val.len() as u64,
        block["epochs"].as_u64().expect("epochs")
    );
    assert!(block_val.iter().all(|v| v.is_finite()));
    let vm = &lmf["validation_mse"];
    let (mean_mse, plain_mse, block_mse) = (
        vm["mean_predictor"].as_f64().expect("mean predictor"),
        vm["plain_lmf"].as_f64().expect("plain"),
        vm["block_lmf"].as_f64().expect("block"),
    );
    assert_eq!(mean_mse, lmf["baseline_mse"].as_f64().unwrap());
    assert_eq!(plain_mse, val[4]);
    assert_eq!(block_mse, *block_val.last().unwrap());
    assert!(vm["kernel_side"].as_f64().expect("kernel side") > 0.0);
    assert!(
        block_mse < mean_mse && block_mse < plain_mse,
        "block {block_mse}, mean predictor {mean_mse}, plain LMF {plain_mse}"
    );
    assert_eq!(block["below_mean_predictor"], true);
    assert_eq!(block["below_plain_lmf"], true);
    let rho = block["agreement"]["spearman"].as_f64().expect("spearman");
    assert!((-1.0..=1.0).contains(&rho));
    let gap = block["agreement"]["max_share_gap"].as_f64().expect("gap");
    assert!((0.0..=1.0).contains(&gap));
    let fig = block["figure"].as_str().expect("figure");
    let svg = std::fs::read_to_string(out.join(fig)).expect("lmf_relevance.svg");
    let doc = roxmltree::Document::parse(&svg).expect("lmf_relevance.svg parses");
    // Two series of six bars.
    assert_eq!(
        doc.descendants()
            .filter(|n| n.has_tag_name("rect") && n.children().any(|c| c.has_tag_name("title")))
            .count(),
        12
    );
    let png = std::fs::read(out.join(block["figure_png"].as_str().expect("png"))).expect("png");
    assert_eq!(&png[1..4], b"PNG");
    assert!(stdout.contains("block LMF rank 4"), "{stdout}");

    // Interactions: the planted pair is the most relevant block at p = 1; the bar chart exists
    // as SVG and PNG.
    let it = &results["interactions"];
    let blocks: Vec<String> = serde_json::from_value(it["blocks"].clone()).expect("blocks");
    assert_eq!(blocks.len(), 10, "4 modalities + 6 pairs: {blocks:?}");
    let fits = it["fits"].as_array().expect("fits");
    assert_eq!(fits.len(), 3);
    let rel: Vec<f64> = serde_json::from_value(fits[0]["relevance"].clone()).expect("relevance");
    let top = (0..rel.len())
        .max_by(|&a, &b| rel[a].total_cmp(&rel[b]))
        .unwrap();
    assert_eq!(blocks[top], "audio*text", "{blocks:?} {rel:?}");
    let png = std::fs::read(out.join("interactions.png")).expect("interactions.png");
    assert_eq!(&png[1..4], b"PNG");
    let bars = std::fs::read_to_string(out.join("interactions.svg")).expect("svg");
    roxmltree::Document::parse(&bars).expect("interactions.svg parses");
    let md = std::fs::read_to_string(out.join("report.md")).expect("report.md");
    assert!(md.contains("](interactions.svg)"));
    assert!(md.contains("](lmf_relevance.svg)") && md.contains("**Interpretation.**"));
    assert!(results["mfeat"].is_null(), "--no-real-data");

    // Throughput.
    let tp = &results["throughput"];
    assert!(tp["gram"]["gflops"].as_f64().expect("gflops") > 0.0);
    assert!(
        tp["lmf_forward"]["samples_per_second"]
            .as_f64()
            .expect("sps")
            > 0.0
    );

    // Every figure is a well-formed SVG document, embedded in the report.
    let report = std::fs::read_to_string(out.join("report.md")).expect("report.md");
    for f in &figures {
        let text = std::fs::read_to_string(out.join(f)).unwrap_or_else(|_| panic!("{f} missing"));
        let doc = roxmltree::Document::parse(&text).unwrap_or_else(|e| panic!("{f}: {e}"));
        assert_eq!(doc.root_element().tag_name().name(), "svg", "{f}");
        assert!(
            doc.descendants()
                .filter(|n| n.has_tag_name("circle"))
                .count()
                > 0,
            "{f}"
        );
        assert!(
            report.contains(&format!("]({f})")),
            "{f} not embedded in report.md"
        );
    }
    assert!(report.contains("| visual |") && report.contains("| text |"));
}

#[test]
fn demo_rejects_bad_options_and_writes_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    for (extra, needle) in [
        (&["--n", "2"][..], "n"),
        (&["--p", "0.5"], "p"),
        (&["--p", "1,x"], "p"),
        (&["--rank", "0"], "rank"),
        (&["--epochs", "0"], "epochs"),
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_mmfuse"))
            .args(["demo", "--quiet", "--out"])
            .arg(dir.path().join("d"))
            .args(extra)
            .output()
            .expect("run mmfuse demo");
        assert!(!out.status.success(), "{extra:?} accepted");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("error:") && err.contains(needle),
            "{extra:?}: {err}"
        );
        assert!(!err.contains("multiple times"), "{extra:?}: {err}");
        assert!(!dir.path().join("d").exists(), "{extra:?} left a folder");
    }
}
