//! What `check` and `audit` decide images with, besides the policy file: the operator's own
//! flags of the same names, and the trusted roots read from files instead of ConfigMaps.

use std::path::PathBuf;

use super::error::CliError;
use crate::verify::Verifier;
use crate::verify::args::VerifierArgs;
use crate::webhook::admit::Settings;

/// The flags of a decision, shared by `check` and `audit`.
#[derive(Debug, clap::Args)]
pub struct DecisionArgs {
    /// Admit images that match no pattern, with a warning, instead of denying them.
    #[arg(long)]
    pub allow_unmatched_images: bool,
    #[command(flatten)]
    verifier: VerifierArgs,
    /// The trusted_root.json of a root the policy declares in `spec.verification.trustedRoots`,
    /// read from FILE instead of its ConfigMap (repeatable). `audit` reads the ConfigMaps from
    /// the cluster; `check` cannot, so without it a key that needs such a root verifies
    /// nothing there, as in a cluster where its ConfigMap is missing.
    #[arg(long, value_name = "NAME=FILE", value_parser = trusted_root_arg)]
    pub trusted_root: Vec<(String, PathBuf)>,
}

impl DecisionArgs {
    /// The settings of the decision.
    pub fn settings(&self) -> Settings {
        Settings {
            allow_unmatched_images: self.allow_unmatched_images,
        }
    }

    /// The verifier the flags describe; an unusable CA file is an input error.
    pub fn verifier(&self) -> Result<Verifier, CliError> {
        let input_error = |detail: String| CliError::Input {
            path: "--ca-file".into(),
            detail,
        };
        let config = self
            .verifier
            .config()
            .map_err(|e| input_error(e.to_string()))?;
        Verifier::new(config).map_err(|e| input_error(e.to_string()))
    }
}

/// A `--trusted-root` value that is not `NAME=FILE`; clap prints it after the flag.
#[derive(Debug, thiserror::Error)]
#[error("{0:?} is not NAME=FILE")]
pub struct NotNameFile(String);

/// Parses `--trusted-root NAME=FILE`.
fn trusted_root_arg(value: &str) -> Result<(String, PathBuf), NotNameFile> {
    match value.split_once('=') {
        Some((name, file)) if !name.is_empty() && !file.is_empty() => {
            Ok((name.to_owned(), PathBuf::from(file)))
        }
        _ => Err(NotNameFile(value.to_owned())),
    }
}
