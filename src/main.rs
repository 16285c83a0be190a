//! The `mmfuse` command line: see `mmfuse --help`. The CLI lives in the binary, not in the
//! library: `mmfuse` the crate has no clap or JSON types in its public API.
mod cli;

fn main() -> std::process::ExitCode {
    cli::main()
}
