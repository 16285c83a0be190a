//! The `mmfuse` command line (feature `cli`). It is a module of the binary, not of the library:
//! the library's API has no clap or JSON types. The `cli_args` fuzz target compiles this same
//! module (`#[path]`) to parse command lines exactly as the binary does.

mod bars;
mod bench;
mod bench_lmf;
mod bench_mkl;
mod demo;
mod gram;
mod lmf;
mod mkl;
mod png;
mod progress;
mod svg;

use clap::{Parser, Subcommand};
use mmfuse::error::Error;
use std::process::ExitCode;

pub use bench::BenchArgs;
pub use demo::DemoArgs;
pub use gram::GramArgs;
pub use lmf::LmfArgs;
pub use mkl::MklArgs;
// What the `cli_args` fuzz target (which compiles this module itself) reaches beyond `Cli`.
#[allow(unused_imports)]
pub use bench::BenchWhat;
#[allow(unused_imports)]
pub use mkl::{parse_data_arg, MklCommand};

/// mmfuse: Gram matrices, p-norm multiple kernel learning and low-rank multimodal fusion.
#[derive(Debug, Parser)]
#[command(name = "mmfuse", version, about, long_about = None)]
pub struct Cli {
    /// Refuse any matrix larger than this (bytes, or with a K/M/G/T suffix such as 8G); the
    /// default is MMFUSE_MAX_MEMORY if set, else the physical memory.
    #[arg(long, global = true, value_name = "BYTES")]
    pub max_memory: Option<String>,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Compute a kernel (Gram) matrix K(X, X) or K(X, Y) from .npy / .npz / .csv data.
    Gram(GramArgs),
    /// Time the engine against faer's plain GEMM on synthetic data.
    Bench(BenchArgs),
    /// p-norm multiple kernel learning: fit weights and a model, predict.
    Mkl(MklArgs),
    /// Low-rank multimodal fusion, plain or by blocks with relevance: train, run, relevance.
    Lmf(LmfArgs),
    /// The end-to-end study on simulated three-modality data (writes a report folder).
    Demo(DemoArgs),
}

/// Parses `std::env::args`, runs the command, prints errors as `error: ...` on stderr and
/// returns exit code 0 on success, 1 on a failed command, 2 on bad usage (clap's).
pub fn main() -> ExitCode {
    // Ctrl-C (SIGINT, and SIGTERM): remove the temporary files of writes in progress, then
    // exit 130. Outputs are only ever replaced by a rename, so none is left partial.
    let _ = ctrlc::set_handler(|| {
        mmfuse::io::remove_temporary_files();
        eprintln!("interrupted: no output was written");
        std::process::exit(130);
    });
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(e.exit_code().clamp(0, 255) as u8);
        }
    };
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(1)
        }
    }
}

/// Runs a parsed command line.
pub fn run(cli: Cli) -> Result<(), Error> {
    if let Some(cap) = &cli.max_memory {
        mmfuse::limits::set_memory_limit(Some(mmfuse::limits::parse_bytes(cap)?));
    }
    match cli.command {
        Command::Gram(a) => gram::run(a),
        Command::Bench(a) => bench::run(a),
        Command::Demo(a) => demo::run(a),
        Command::Mkl(a) => mkl::run(a),
        Command::Lmf(a) => lmf::run(a),
    }
}
