//! The command line: every subcommand of `image-policy`, one file each below `cli/`
//! ([`crd`], [`matching`] for `match`, [`check`], [`audit`], [`verify_bundle`], [`run`]),
//! with what they share beside them: [`error`] (why a command could not answer), [`input`]
//! (the policy file and the other files read), [`output`] (text or JSON), [`policy_file`]
//! (the fields of a policy file the CRD does not know) and [`decision`] (the flags `check`
//! and `audit` decide with). This file only parses the arguments and turns each answer into
//! an exit code; the files below it import nothing from it.
//!
//! Every subcommand returns an [`ExitCode`]: 0 when it answered (and, for `check`, `audit`
//! and `verify-bundle`, found nothing refused or unverified), 1 when it found something, 2
//! when its input could not be used (an unreadable or invalid policy file, say), with the
//! reason on standard error.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

pub mod audit;
pub mod check;
pub mod crd;
pub mod decision;
pub mod error;
pub mod input;
pub mod manifest;
pub mod matching;
pub mod output;
pub mod policy_file;
pub mod run;
pub mod verify_bundle;
pub mod yaml;

use error::CliError;

/// Admits container images into Kubernetes only when a trusted key signed them with cosign.
#[derive(Debug, Parser)]
#[command(name = "image-policy", version, about)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Print the ClusterImagePolicy CustomResourceDefinition as YAML.
    Crd,
    /// Show which entries of a policy match each image, and with which keys it is checked.
    Match(matching::MatchArgs),
    /// Decide, offline from a cluster, whether images or workloads would be admitted.
    ///
    /// Exits 0 when everything would be admitted, 1 when something would be denied, and 2
    /// when the input cannot be used.
    Check(check::CheckArgs),
    /// List the running workloads that a policy file would refuse, and why, before it is
    /// applied. Changes nothing in the cluster.
    ///
    /// Exits 0 when none would be refused, 1 when some would, and 2 when the input cannot be
    /// used.
    Audit(audit::AuditArgs),
    /// Check one Sigstore bundle file against an image digest and a key, offline.
    ///
    /// Exits 0 when it verifies, 1 when it does not (saying why), and 2 when the input
    /// cannot be used.
    VerifyBundle(verify_bundle::VerifyBundleArgs),
    /// Run the operator: the policy controller, the admission webhook, health and metrics.
    Run(Box<run::RunArgs>),
}

impl Cli {
    /// Runs the chosen subcommand.
    pub fn run(self) -> ExitCode {
        let mut stdout = std::io::stdout().lock();
        let found = match self.command {
            Command::Crd => crd::run(&mut stdout).map(|()| true),
            Command::Match(args) => matching::run(&args, &mut stdout).map(|()| true),
            Command::Check(args) => check::run(&args, &mut stdout),
            Command::Audit(args) => audit::run(&args, &mut stdout),
            Command::VerifyBundle(args) => verify_bundle::run(&args, &mut stdout),
            Command::Run(args) => {
                return match run::run(*args) {
                    Ok(()) => ExitCode::SUCCESS,
                    Err(e) => {
                        eprintln!("error: {e:#}");
                        ExitCode::FAILURE
                    }
                };
            }
        };
        exit_code(found)
    }
}

/// 0 for a command that answered and found nothing refused, 1 for one that found something
/// (`Ok(false)`), 2 for input it could not use. A reader that closed the pipe early (`|
/// head`) is no failure.
fn exit_code(found: Result<bool, CliError>) -> ExitCode {
    match found {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(CliError::Output(e)) if e.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}

#[cfg(test)]
mod tests;
