//! Why a command could not answer: [`CliError`], shared by every subcommand, and printed by
//! [`super::Cli::run`] as `error: ...` with exit code 2.

use std::path::PathBuf;

use super::policy_file;
use crate::policy::Problems;

/// Why a command could not answer.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// A file (the policy, a manifest, a bundle, a key...) could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file that could not be read.
        path: PathBuf,
        /// What the operating system said (not found, permission denied...).
        source: std::io::Error,
    },
    /// The file is not YAML or JSON of a ClusterImagePolicy.
    #[error("{path} is not a ClusterImagePolicy manifest: {detail}")]
    Parse {
        /// The file given as the policy.
        path: PathBuf,
        /// What the parser said, with its position.
        detail: String,
    },
    /// The policy does not compile.
    #[error("{path}: the policy is invalid:\n{}", list(.problems))]
    Invalid {
        /// The policy file.
        path: PathBuf,
        /// Every problem found.
        problems: Problems,
    },
    /// Some other input (a manifest, CA or docker config file, a flag, the cluster) is
    /// unusable.
    #[error("{path}: {detail}")]
    Input {
        /// The file, or what stands in for it (`--digest`, `the cluster`).
        path: PathBuf,
        /// What is wrong with it.
        detail: String,
    },
    /// `--strict`, and the policy file has fields that the CRD does not know.
    #[error(transparent)]
    Strict(#[from] policy_file::Refusal),
    /// Writing the answer failed.
    #[error("cannot write output: {0}")]
    Output(#[from] std::io::Error),
}

/// The problems of an invalid policy, one indented line each with its reason.
fn list(problems: &Problems) -> String {
    let lines: Vec<String> = problems
        .0
        .iter()
        .map(|p| format!("  {p} ({})", p.reason))
        .collect();
    lines.join("\n")
}
