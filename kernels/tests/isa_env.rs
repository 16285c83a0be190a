//! `MMFUSE_ISA`: `arch()` reads it once, so each request is checked in a child process (this
//! test binary run again on its ignored `child` test, with the variable set before anything
//! in the child reads it).

use mmfuse_kernels::{arch, available_isas, isa_name};
use std::process::Command;

/// Runs `child` in a fresh process with `MMFUSE_ISA=request` and returns what it reports.
fn isa_in_child(request: &str) -> String {
    let out = Command::new(std::env::current_exe().expect("test binary path"))
        .args([
            "--exact",
            "child",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("MMFUSE_ISA", request)
        .env("MMFUSE_ISA_CHILD", "1")
        .output()
        .expect("run the test binary");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "child failed: {stdout}");
    stdout
        .lines()
        .find_map(|l| l.split("isa=").nth(1)?.split_whitespace().next())
        .unwrap_or_else(|| panic!("no isa= line in {stdout}"))
        .to_owned()
}

/// The child's side: prints the instruction set `arch()` picked.
#[test]
#[ignore = "run by the other tests in a child process"]
fn child() {
    if std::env::var_os("MMFUSE_ISA_CHILD").is_some() {
        println!("isa={}", isa_name(arch()));
    }
}

#[test]
fn scalar_request_runs_scalar() {
    assert_eq!(isa_in_child("scalar"), "scalar");
}

#[test]
fn requests_fall_back_to_the_best_available() {
    let best = isa_name(*available_isas().last().unwrap());
    // What a request gets: itself when available, the best available otherwise.
    let expect = |want: &str| {
        if available_isas().iter().any(|&a| isa_name(a) == want) {
            want.to_owned()
        } else {
            best.to_owned()
        }
    };
    assert_eq!(isa_in_child("v3"), expect("v3"));
    assert_eq!(isa_in_child(" V4 "), expect("v4"));
    assert_eq!(isa_in_child("avx9000"), best);
    assert_eq!(isa_in_child(""), best);
}
