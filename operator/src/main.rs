//! The `image-policy` binary.

use std::process::ExitCode;

use clap::Parser;
use image_policy::cli::Cli;

fn main() -> ExitCode {
    Cli::parse().run()
}
