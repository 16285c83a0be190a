//! Kernel specs, normalisation names and whole command lines: parsing never panics, and what
//! parses round-trips through its printed form.
#![no_main]

// The CLI is part of the binary, not of the library: the target compiles the same module.
#[allow(dead_code)]
#[path = "../../src/cli/mod.rs"]
mod cli;

use clap::Parser;
use cli::{BenchWhat, Cli, Command};
use libfuzzer_sys::fuzz_target;
use mmfuse::gram::{Kernel, Normalization};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // A kernel spec on its own.
    if let Ok(k) = text.parse::<Kernel>() {
        let printed = k.to_string();
        let again: Kernel = printed
            .parse()
            .unwrap_or_else(|e| panic!("`{printed}` (from `{text}`) does not parse back: {e}"));
        assert_eq!(again, k, "round trip of `{text}` via `{printed}`");
        let _ = k.resolve(text.len());
    }
    let _ = text.parse::<Normalization>();
    let _ = mmfuse::limits::parse_bytes(text);
    // A command line: arguments separated by NUL bytes.
    let args = std::iter::once("mmfuse").chain(text.split('\0'));
    if let Ok(cli) = Cli::try_parse_from(args) {
        match cli.command {
            Command::Gram(g) => {
                let _ = g.kernel_spec();
                let _ = g.normalize.parse::<Normalization>();
            }
            Command::Bench(b) => match b.what {
                BenchWhat::Gram(g) => {
                    let _ = g.kernel.parse::<Kernel>();
                }
                BenchWhat::Mkl(m) => {
                    let _ = mmfuse::mkl::parse_p(&m.p);
                }
                BenchWhat::Lmf(_) => {}
            },
            Command::Lmf(_) => {}
            Command::Demo(_) => {}
            Command::Mkl(m) => {
                if let cli::MklCommand::Fit(f) = m.what {
                    let _ = mmfuse::mkl::parse_p(&f.p);
                    for d in &f.data {
                        let _ = cli::parse_data_arg(d);
                    }
                }
            }
        }
    }
});
