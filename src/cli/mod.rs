//! The `mmfuse` command line (feature `cli`). The argument structs are public so that other
//! tools (and the fuzz targets) can parse command lines exactly as the binary does.

mod bench;
mod bench_lmf;
mod bench_mkl;
mod demo;
mod gram;
mod lmf;
mod mkl;
mod progress;
mod svg;

use crate::error::Error;
use clap::{Parser, Subcommand};
use std::process::ExitCode;

pub use bench::{bench_gram, BenchArgs, BenchGramArgs, BenchMklArgs, BenchWhat, GramBenchResult};
pub use bench_lmf::BenchLmfArgs;
pub use bench_mkl::synthetic_problem;
pub use demo::DemoArgs;
pub use gram::{Dtype, GramArgs};
pub use lmf::{LmfArgs, LmfCommand, LmfForwardArgs, LmfTrainArgs};
pub use mkl::{
    model_from_json, model_json, parse_p, MklArgs, MklCommand, MklFitArgs, MklPredictArgs,
};

/// mmfuse: Gram matrices, p-norm multiple kernel learning and low-rank multimodal fusion.
#[derive(Debug, Parser)]
#[command(name = "mmfuse", version, about, long_about = None)]
pub struct Cli {
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
    /// Low-rank multimodal fusion: train (Adam) and run models, weights in safetensors.
    Lmf(LmfArgs),
    /// The end-to-end study on simulated three-modality data (writes a report folder).
    Demo(DemoArgs),
}

/// Parses `std::env::args`, runs the command, prints errors as `error: ...` on stderr and
/// returns exit code 0 on success, 1 on a failed command, 2 on bad usage (clap's).
pub fn main() -> ExitCode {
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
    match cli.command {
        Command::Gram(a) => gram::run(a),
        Command::Bench(a) => bench::run(a),
        Command::Demo(a) => demo::run(a),
        Command::Mkl(a) => mkl::run(a),
        Command::Lmf(a) => lmf::run(a),
    }
}
