//! `image-policy verify-bundle`: one Sigstore bundle file checked against an image digest and
//! a key or a keyless identity, offline, exactly as admission checks a bundle it finds in a
//! registry ([`crate::verify::bundle`]). For a platform engineer holding a bundle: exit 0 when
//! it verifies, 1 when it does not (with the reason), 2 when the input cannot be used. With
//! `--condition` (repeatable), the bundle is read as an attestation of `--predicate-type` and
//! each condition is evaluated on it as admission evaluates a required attestation's
//! ([`crate::policy::condition`]): exit 0 only when it verifies and every condition is true.

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;

use super::error::CliError;
use super::input::{read_file, read_text};
use crate::policy::condition::{
    Condition, EvaluationError, Limits, SignerFacts, ThreadError, Variables, on_large_stack,
};
use crate::policy::{Identity, Matcher, NamedKey, PublicKey, Transparency, TrustRoot};
use crate::verify::bundle::attested::{Attested, check_attestation};
use crate::verify::bundle::{self, COSIGN_SIGN_PREDICATE, Predicate};
use crate::verify::registry::is_sha256_digest;
use crate::verify::{Failure, Rejection};
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
    /// The public key (PEM) that must verify it; or give a keyless identity.
    #[arg(long, value_name = "FILE", required_unless_present_any = ["certificate_identity", "certificate_identity_regexp"])]
    key: Option<PathBuf>,
    /// Keyless: the certificate's subject (URI or email SAN), exactly.
    #[arg(long, value_name = "SUBJECT", conflicts_with_all = ["key", "certificate_identity_regexp"])]
    certificate_identity: Option<String>,
    /// Keyless: a regular expression the whole subject must match (unlike cosign's, anchored
    /// at both ends, as a policy's subjectRegExp).
    #[arg(long, value_name = "REGEXP", conflicts_with = "key")]
    certificate_identity_regexp: Option<String>,
    /// Keyless: the certificate's OIDC issuer, exactly.
    #[arg(long, value_name = "ISSUER", conflicts_with_all = ["key", "certificate_oidc_issuer_regexp"])]
    certificate_oidc_issuer: Option<String>,
    /// Keyless: a regular expression the whole issuer must match.
    #[arg(long, value_name = "REGEXP", conflicts_with = "key")]
    certificate_oidc_issuer_regexp: Option<String>,
    /// The trusted_root.json that verifies the transparency log entry, and a keyless
    /// certificate and timestamps; the built-in Sigstore public-good root when absent.
    #[arg(long, value_name = "FILE")]
    trusted_root: Option<PathBuf>,
    /// Require a transparency log entry that verifies against the trusted root (always
    /// required for a keyless identity).
    #[arg(long)]
    require_tlog: bool,
    /// The predicate type a DSSE statement must have: cosign's signature one by default (what
    /// admission accepts); `any` accepts any in-toto statement, to inspect attestations.
    #[arg(long, value_name = "URI", default_value = COSIGN_SIGN_PREDICATE)]
    predicate_type: String,
    /// A CEL condition the attestation must meet, as a policy's
    /// `attestations[].conditions[].expression` (repeatable); `image.reference` is the digest.
    #[arg(long = "condition", value_name = "EXPR")]
    conditions: Vec<String>,
}

/// Runs `verify-bundle`; `Ok(true)` when the bundle verifies.
pub fn run(args: &VerifyBundleArgs, out: &mut impl Write) -> Result<bool, CliError> {
    if !is_sha256_digest(&args.digest) {
        return Err(CliError::Input {
            path: "--digest".into(),
            detail: format!("{:?} is not sha256:<64 lowercase hex digits>", args.digest),
        });
    }
    let conditions = args
        .conditions
        .iter()
        .map(|expression| {
            Condition::compile(expression, None).map_err(|e| CliError::Input {
                path: "--condition".into(),
                detail: format!("{expression}: {e}"),
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let bundle = read_file(&args.bundle)?;
    let (signer, by) = signer(args)?;
    let predicate = match args.predicate_type.as_str() {
        COSIGN_SIGN_PREDICATE => Predicate::Signature,
        "any" => Predicate::Any,
        other => Predicate::Exactly(other.to_owned()),
    };
    if !conditions.is_empty() {
        return attestation(args, &bundle, (&signer, &by), &predicate, &conditions, out);
    }
    let verdict = bundle::check_with(&bundle, &args.digest, &[&signer], &predicate);
    if let Err(Rejection::Unreadable { why, .. }) = &verdict {
        return Err(CliError::Input {
            path: args.bundle.clone(),
            detail: format!("not a Sigstore bundle: {why}"),
        });
    }
    match Failure::of_bundle(verdict) {
        None => {
            writeln!(
                out,
                "Verified: {} signs {} {by}",
                args.bundle.display(),
                args.digest
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

/// The bundle read as an attestation of `predicate` signed by `signer`, and `conditions`
/// evaluated on it; `Ok(true)` when it verifies and every condition is true.
fn attestation(
    args: &VerifyBundleArgs,
    bundle: &[u8],
    (signer, by): (&NamedKey, &str),
    predicate: &Predicate,
    conditions: &[Condition],
    out: &mut impl Write,
) -> Result<bool, CliError> {
    let attested = match check_attestation(bundle, &args.digest, predicate, &[signer]) {
        Ok(Some(attested)) => attested,
        Ok(None) => {
            writeln!(
                out,
                "Not verified: it holds no in-toto statement of the type {}.",
                args.predicate_type
            )?;
            return Ok(false);
        }
        Err(Rejection::Unreadable { why, .. }) => {
            return Err(CliError::Input {
                path: args.bundle.clone(),
                detail: format!("not a Sigstore bundle: {why}"),
            });
        }
        Err(rejection) => {
            let failure = Failure::Rejected(rejection.counted());
            let why =
                explanation(&failure).unwrap_or_else(|| "Its signature does not verify.".into());
            writeln!(out, "Not verified: {why}")?;
            return Ok(false);
        }
    };
    writeln!(
        out,
        "Verified: {} attests {} {by}",
        args.bundle.display(),
        args.digest
    )?;
    let results =
        evaluate(&attested, signer, &args.digest, conditions).map_err(|e| CliError::Input {
            path: "--condition".into(),
            detail: e.to_string(),
        })?;
    let mut all = true;
    for (condition, result) in conditions.iter().zip(results) {
        let expression = &condition.expression;
        match result {
            Ok(true) => writeln!(out, "Condition holds: {expression}")?,
            Ok(false) => {
                all = false;
                writeln!(out, "Condition fails: {expression}")?;
            }
            Err(why) => {
                all = false;
                writeln!(
                    out,
                    "Condition fails: {expression}: it cannot be evaluated: {why}"
                )?;
            }
        }
    }
    Ok(all)
}

/// Each of `conditions` on the statement of `attested`, signed by `signer`, about `digest`,
/// now.
fn evaluate(
    attested: &Attested,
    signer: &NamedKey,
    digest: &str,
    conditions: &[Condition],
) -> Result<Vec<Result<bool, EvaluationError>>, ThreadError> {
    let facts = match &attested.vouched.certificate {
        Some((subject, issuer)) => SignerFacts::Keyless {
            name: signer.name.clone(),
            issuer: issuer.clone(),
            subject: subject.clone(),
        },
        None => SignerFacts::Key {
            name: signer.name.clone(),
        },
    };
    let statement: serde_json::Value =
        serde_json::from_slice(&attested.statement).unwrap_or_default();
    let now = chrono::Utc::now();
    on_large_stack(|| {
        let variables = Variables::new(&statement, (digest, digest), &facts, now);
        // Each condition is bounded by its own time limit; this only bounds them all.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        conditions
            .iter()
            .map(|c| c.evaluate(&variables, Limits::ADMISSION, deadline))
            .collect()
    })
}

/// The signer the arguments name, and how to say it: `with the key FILE` or `as IDENTITY`.
fn signer(args: &VerifyBundleArgs) -> Result<(NamedKey, String), CliError> {
    let input = |path: &str, detail: String| CliError::Input {
        path: path.into(),
        detail,
    };
    let root = || -> Result<Arc<TrustRoot>, CliError> {
        let Some(path) = &args.trusted_root else {
            return Ok(TrustRoot::public_good());
        };
        let root = TrustRoot::parse(&path.display().to_string(), &read_text(path)?);
        match root.verifier() {
            Ok(_) => Ok(Arc::new(root)),
            Err(why) => Err(input(&path.display().to_string(), why.to_string())),
        }
    };
    if let Some(path) = &args.key {
        let key = PublicKey::from_pem(&read_text(path)?)
            .map_err(|e| input(&path.display().to_string(), e.to_string()))?;
        let mut named = NamedKey::new(path.display().to_string(), key);
        if args.require_tlog {
            named.transparency = Transparency::Required(root()?);
        }
        return Ok((named, format!("with the key {}", path.display())));
    }
    let matcher =
        |flag: &str, exact: &Option<String>, pattern: &Option<String>| match (exact, pattern) {
            (Some(value), _) => Ok(Matcher::exact(value)),
            (None, Some(pattern)) => Matcher::pattern(pattern)
                .map_err(|why| input(flag, format!("{pattern:?} is {why}"))),
            (None, None) => Err(input(
                flag,
                format!("a keyless identity needs {flag} or {flag}-regexp"),
            )),
        };
    let identity = Identity::new(
        matcher(
            "--certificate-identity",
            &args.certificate_identity,
            &args.certificate_identity_regexp,
        )?,
        matcher(
            "--certificate-oidc-issuer",
            &args.certificate_oidc_issuer,
            &args.certificate_oidc_issuer_regexp,
        )?,
        root()?,
    );
    let by = format!("as {identity}");
    Ok((NamedKey::keyless("identity", identity), by))
}
