use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    chargebridge::cli::run(chargebridge::cli::Cli::parse())
}
