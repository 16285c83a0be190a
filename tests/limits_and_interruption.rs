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

/// `mkl::fit_cancellable` stops inside a fixed-beta SMO solve, not at the end of it: a fit
/// whose first solve alone takes 20 s (measured: tolerances at 1e-300 and a large C run it to
/// the 10^7 steps of `max_smo_iter`) returns
/// `Cancelled` soon after the flag is set from another thread, an unset flag changes nothing
/// (the same fit as `mkl::fit`), and the squared loss stops too.
#[test]
fn mkl_fits_stop_within_an_smo_solve_when_cancelled() {
    use mmfuse::mkl::{fit, fit_cancellable, MklOptions};
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::Instant;

    let n = 1500;
    let mut s = 7u64;
    let mut next = move || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        (s >> 11) as f64 / (1u64 << 53) as f64 - 0.5
    };
    let x = Matrix::from_vec(n, 8, (0..n * 8).map(|_| next()).collect()).unwrap();
    // Labels that no smooth boundary separates: many bounded support vectors, a long solve.
    let y: Vec<f64> = (0..n)
        .map(|i| {
            if (x.get(i, 0) * x.get(i, 1) + 0.3 * next()) > 0.0 {
                1.0
            } else {
                -1.0
            }
        })
        .collect();
    let rbf = gram(
        x.as_mat_ref(),
        &Kernel::Rbf { gamma: Some(4.0) },
        &GramOptions::default(),
    )
    .unwrap();
    let hard = MklOptions {
        c: 1e4,
        eps: 1e-300,
        tol: 1e-300,
        max_iter: 1_000_000,
        ..MklOptions::default()
    };
    let stop = AtomicBool::new(false);
    let (result, waited) = std::thread::scope(|scope| {
        scope.spawn(|| {
            std::thread::sleep(Duration::from_millis(300));
            stop.store(true, Ordering::Relaxed);
        });
        let start = Instant::now();
        let mut outer = 0;
        let r = fit_cancellable(&[&rbf], &y, &hard, &stop, &mut |_, _, _| outer += 1);
        (r.map(|_| outer), start.elapsed())
    });
    assert!(matches!(result, Err(Error::Cancelled(_))), "{result:?}");
    assert!(waited < Duration::from_secs(2), "stopped after {waited:?}");

    let easy = MklOptions::default();
    let never = AtomicBool::new(false);
    let a = fit(&[&rbf], &y, &easy).unwrap();
    let b = fit_cancellable(&[&rbf], &y, &easy, &never, &mut |_, _, _| {}).unwrap();
    assert_eq!(a, b);

    // The squared loss polls the flag in its conjugate-gradient steps.
    let ridge = MklOptions {
        loss: mmfuse::mkl::Loss::Squared,
        ..MklOptions::default()
    };
    let set = AtomicBool::new(true);
    let r = fit_cancellable(&[&rbf], &y, &ridge, &set, &mut |_, _, _| {});
    assert!(matches!(r, Err(Error::Cancelled(_))), "{r:?}");
}
