//! The `mmfuse` command line: see `mmfuse --help`.
fn main() -> std::process::ExitCode {
    mmfuse::cli::main()
}
