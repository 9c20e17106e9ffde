//! `image-policy verify-bundle`: one Sigstore bundle file checked against an image digest and
//! a key, offline, exactly as admission checks a bundle it finds in a registry
//! ([`crate::verify::bundle`]). For a platform engineer holding a bundle: exit 0 when it
//! verifies, 1 when it does not (with the reason), 2 when the input cannot be used.

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;

use crate::cli::{CliError, read_file, read_text};
use crate::policy::{NamedKey, PublicKey, Transparency, TrustRoot};
use crate::verify::Failure;
use crate::verify::bundle::{self, BundleVerdict};
use crate::verify::registry::is_sha256_digest;
use crate::webhook::words::explanation;

/// Arguments of `image-policy verify-bundle`.
#[derive(Debug, clap::Args)]
pub struct VerifyBundleArgs {
    /// The bundle (`.sigstore.json`, v0.1 to v0.3).
    #[arg(long, value_name = "FILE")]
    bundle: PathBuf,
    /// The image digest it must sign: `sha256:<64 hex digits>`.
    #[arg(long, value_name = "DIGEST")]
    digest: String,
    /// The public key (PEM) that must verify it.
    #[arg(long, value_name = "FILE")]
    key: PathBuf,
    /// The trusted_root.json its transparency log entry is verified against; the built-in
    /// Sigstore public-good root when absent.
    #[arg(long, value_name = "FILE")]
    trusted_root: Option<PathBuf>,
    /// Require a transparency log entry that verifies against the trusted root.
    #[arg(long)]
    require_tlog: bool,
}

/// Runs `verify-bundle`; `Ok(true)` when the bundle verifies.
pub fn run(args: &VerifyBundleArgs, out: &mut impl Write) -> Result<bool, CliError> {
    let input = |path: &PathBuf, detail: String| CliError::Input {
        path: path.clone(),
        detail,
    };
    if !is_sha256_digest(&args.digest) {
        return Err(CliError::Input {
            path: "--digest".into(),
            detail: format!("{:?} is not sha256:<64 lowercase hex digits>", args.digest),
        });
    }
    let bundle = read_file(&args.bundle)?;
    let pem = read_text(&args.key)?;
    let key = PublicKey::from_pem(&pem).map_err(|e| input(&args.key, e.to_string()))?;
    let mut named = NamedKey::new(args.key.display().to_string(), key);
    if args.require_tlog {
        let root = match &args.trusted_root {
            None => TrustRoot::public_good(),
            Some(path) => {
                let text = read_text(path)?;
                let root = TrustRoot::parse(&path.display().to_string(), &text);
                if let Err(why) = root.verifier() {
                    return Err(input(path, why.to_owned()));
                }
                Arc::new(root)
            }
        };
        named.transparency = Transparency::Required(root);
    }
    let verdict = bundle::check(&bundle, &args.digest, &[&named]);
    if let BundleVerdict::Unreadable(why) = &verdict {
        return Err(input(&args.bundle, format!("not a Sigstore bundle: {why}")));
    }
    match Failure::of_bundle(&args.digest, verdict) {
        None => {
            writeln!(
                out,
                "Verified: {} signs {} with the key {}",
                args.bundle.display(),
                args.digest,
                args.key.display()
            )?;
            Ok(true)
        }
        Some(failure) => {
            let why =
                explanation(&failure).unwrap_or_else(|| "Its signature does not verify.".into());
            writeln!(out, "Not verified: {why}")?;
            Ok(false)
        }
    }
}
