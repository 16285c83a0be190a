//! Resource limits and interruption (issue 6): an n x n request for n = 10^6 is refused with a
//! message naming the bytes, a memory cap can be set, and a command killed while it works
//! never leaves a partial output file.

use mmfuse::gram::{gram, GramOptions, Kernel};
use mmfuse::io::write_npy;
use mmfuse::lmf::{LmfModel, LmfOptions};
use mmfuse::{Error, Matrix};
use std::process::{Command, Stdio};
use std::time::Duration;

/// One test function: the memory cap is process-wide, and tests in one binary run in parallel.
#[test]
fn huge_requests_are_refused_and_the_cap_applies() {
    // n = 10^6 rows, 1 feature: K would need 8e12 bytes.
    let n = 1_000_000;
    let x = Matrix::from_vec(n, 1, vec![0.5f64; n]).unwrap();
    match gram(x.as_mat_ref(), &Kernel::rbf(1.0), &GramOptions::default()) {
        Err(Error::TooLarge { bytes, .. }) => assert_eq!(bytes, 8_000_000_000_000),
        other => panic!("expected TooLarge, got {other:?}"),
    }
    // A cap of 1 MiB refuses a 512 x 512 f64 matrix (2 MiB) and accepts 256 x 256 (512 KiB).
    mmfuse::limits::set_memory_limit(Some(1 << 20));
    let big = Matrix::from_vec(512, 2, vec![0.25f64; 1024]).unwrap();
    let e = gram(big.as_mat_ref(), &Kernel::rbf(1.0), &GramOptions::default()).unwrap_err();
    assert!(e.to_string().contains("2097152 bytes"), "{e}");
    let small = Matrix::from_vec(256, 2, vec![0.25f64; 512]).unwrap();
    assert!(gram(
        small.as_mat_ref(),
        &Kernel::rbf(1.0),
        &GramOptions::default()
    )
    .is_ok());
    // LMF: a model, and the outputs of a forward pass, are checked against the cap too.
    let model = LmfModel::<f32>::new(&[("a", 1)], 1, 1000, 7).unwrap(); // 8 KB of factors
    let x = Matrix::from_vec(1000, 1, vec![0.5f32; 1000]).unwrap();
    match model.forward(&[x.as_mat_ref()], &LmfOptions::default()) {
        Err(Error::TooLarge { bytes, what, .. }) => {
            assert_eq!(bytes, 4_000_000); // 1000 x 1000 f32 outputs
            assert!(what.contains("outputs"), "{what}");
        }
        other => panic!("expected TooLarge, got {other:?}"),
    }
    match LmfModel::<f32>::new(&[("visual", 300)], 16, 128, 7) {
        Err(Error::TooLarge { bytes, .. }) => assert_eq!(bytes, 16 * 301 * 128 * 4),
        other => panic!("expected TooLarge, got {:?}", other.map(|_| ())),
    }
    mmfuse::limits::set_memory_limit(None);
    assert!(gram(big.as_mat_ref(), &Kernel::rbf(1.0), &GramOptions::default()).is_ok());
    assert!(model
        .forward(&[x.as_mat_ref()], &LmfOptions::default())
        .is_ok());
    // Without a cap, a 4 TB factor is refused by the physical-memory default, not by an abort.
    match LmfModel::<f32>::new(&[("a", 999)], 1000, 1_000_000, 0) {
        Err(Error::TooLarge { bytes, .. }) => assert_eq!(bytes, 4_000_000_000_000),
        other => panic!("expected TooLarge, got {:?}", other.map(|_| ())),
    }
}

#[test]
fn cli_names_the_bytes_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    write_npy(
        dir.path().join("x.npy"),
        &[1_000_000, 1],
        &vec![0.5f32; 1_000_000],
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_mmfuse"))
        .args([
            "gram", "--input", "x.npy", "--kernel", "rbf", "--out", "k.npy",
        ])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("4000000000000 bytes") && err.contains("1000000 x 1000000"),
        "{err}"
    );
    assert!(!dir.path().join("k.npy").exists());
    // --max-memory (and MMFUSE_MAX_MEMORY) cap smaller requests.
    write_npy(dir.path().join("s.npy"), &[600, 2], &vec![0.5f64; 1200]).unwrap();
    for (args, env) in [(vec!["--max-memory", "1M"], None), (vec![], Some("1M"))] {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_mmfuse"));
        cmd.args(&args)
            .args([
                "gram", "--input", "s.npy", "--kernel", "rbf", "--out", "k.npy",
            ])
            .current_dir(dir.path());
        if let Some(v) = env {
            cmd.env("MMFUSE_MAX_MEMORY", v);
        }
        let out = cmd.output().unwrap();
        assert_eq!(out.status.code(), Some(1), "{args:?} {env:?}");
        assert!(String::from_utf8_lossy(&out.stderr).contains("2880000 bytes"));
        assert!(!dir.path().join("k.npy").exists());
    }
    let out = Command::new(env!("CARGO_BIN_EXE_mmfuse"))
        .args([
            "--max-memory",
            "lots",
            "gram",
            "--input",
            "s.npy",
            "--out",
            "k.npy",
        ])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("max_memory"));
}

/// Kills `mmfuse gram` (SIGKILL, and SIGINT as Ctrl-C sends) at several moments of a run that
/// takes about a second: the output path either does not exist or holds the complete matrix,
/// and an interrupted (SIGINT) run leaves no temporary file either.
#[test]
fn killed_commands_leave_no_partial_output() {
    let dir = tempfile::tempdir().unwrap();
    let (n, d) = (3000, 200);
    let data: Vec<f64> = (0..n * d).map(|k| (k % 97) as f64 / 97.0).collect();
    write_npy(dir.path().join("x.npy"), &[n, d], &data).unwrap();
    let mut complete = 0;
    for (k, delay_ms) in [5u64, 30, 80, 150, 300, 600, 1200].iter().enumerate() {
        for signal in [libc::SIGKILL, libc::SIGINT] {
            let out_name = format!("k{k}-{signal}.npy");
            let mut child = Command::new(env!("CARGO_BIN_EXE_mmfuse"))
                .args([
                    "gram", "--input", "x.npy", "--kernel", "rbf", "--out", &out_name,
                ])
                .current_dir(dir.path())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap();
            std::thread::sleep(Duration::from_millis(*delay_ms));
            // SAFETY: plain FFI call sending a signal to our own child process.
            unsafe {
                libc::kill(child.id() as libc::pid_t, signal);
            }
            let _ = child.wait();
            let path = dir.path().join(&out_name);
            if path.exists() {
                let k = mmfuse::io::read_npy(&path).expect("a present output is complete");
                assert_eq!(k.shape, [n, n]);
                complete += 1;
            }
        }
    }
    // What is left: the input, complete outputs, and hidden temporary files of SIGKILLed runs
    // only (SIGINT runs remove theirs: the CLI's Ctrl-C handler).
    let names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    for name in &names {
        let sigint_temp =
            name.starts_with('.') && name.contains(&format!("-{}.npy.tmp", libc::SIGINT));
        assert!(!sigint_temp, "a SIGINT run left {name}");
        assert!(
            name == "x.npy" || name.starts_with('.') || name.starts_with('k'),
            "unexpected file {name}"
        );
    }
    eprintln!("{complete} of 14 killed runs had finished; files left: {names:?}");
}
