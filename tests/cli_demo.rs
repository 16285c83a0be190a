//! `mmfuse demo` end to end at a small size: the report folder is written and its numbers are
//! sane.

use std::process::Command;

#[test]
fn demo_writes_a_sane_report() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("demo");
    let status = Command::new(env!("CARGO_BIN_EXE_mmfuse"))
        .args(["demo", "--n", "200", "--seed", "3", "--quiet", "--out"])
        .arg(&out)
        .output()
        .expect("run mmfuse demo");
    assert!(
        status.status.success(),
        "demo failed: {}",
        String::from_utf8_lossy(&status.stderr)
    );
    assert!(status.stderr.is_empty(), "--quiet prints nothing on stderr");
    let report = std::fs::read_to_string(out.join("report.md")).expect("report.md");
    assert!(report.contains("| visual |") && report.contains("| text |"));
    let results: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("results.json")).expect("results.json"))
            .expect("valid JSON");
    let mods = results["modalities"].as_array().expect("modalities");
    assert_eq!(mods.len(), 3);
    for m in mods {
        assert_eq!(m["symmetric"], true);
        assert_eq!(m["unit_diagonal"], true);
        // rbf Gram matrices are PSD; with distinct points strictly positive definite.
        assert!(m["min_eigenvalue"].as_f64().expect("eig") > -1e-10);
        let a = m["alignment"].as_f64().expect("alignment");
        assert!((-1.0..=1.0).contains(&a));
    }
    assert_eq!(results["noise_modality_lowest_alignment"], true);
    assert!(results["throughput"]["gflops"].as_f64().expect("gflops") > 0.0);
}

#[test]
fn demo_rejects_tiny_n() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = Command::new(env!("CARGO_BIN_EXE_mmfuse"))
        .args(["demo", "--n", "2", "--quiet", "--out"])
        .arg(dir.path().join("d"))
        .output()
        .expect("run");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("error:"));
    assert!(!dir.path().join("d").exists());
}
