use std::process::ExitCode;

use clap::Parser;

// mimalloc: fewer allocator stalls across worker threads and a smaller, flatter
// RSS than glibc's per-thread arenas under load (see BENCHMARKS.md).

fn main() -> ExitCode {
    chargebridge::cli::run(chargebridge::cli::Cli::parse())
}
