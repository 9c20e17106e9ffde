//! The command line: `image-policy crd` and `image-policy match`.
//!
//! Every subcommand returns an [`ExitCode`]: 0 when it answered, 2 when its input could not
//! be used (an unreadable or invalid policy file), with the reason on standard error.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use image_policy_crd::{ClusterImagePolicy, Mode};
use kube::{CustomResourceExt, Resource};
use serde::Serialize;

use crate::policy::{DEFAULT_DOCUMENT_KEY, Documents, Entry, ImageName, Problems, Snapshot};

pub mod decision;
pub mod policy_file;
use policy_file::PolicyArgs;

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
    Match(MatchArgs),
    /// Decide, offline from a cluster, whether images or workloads would be admitted.
    ///
    /// Exits 0 when everything would be admitted, 1 when something would be denied, and 2
    /// when the input cannot be used.
    Check(crate::check::CheckArgs),
    /// List the running workloads that a policy file would refuse, and why, before it is
    /// applied. Changes nothing in the cluster.
    ///
    /// Exits 0 when none would be refused, 1 when some would, and 2 when the input cannot be
    /// used.
    Audit(crate::audit::command::AuditArgs),
    /// Check one Sigstore bundle file against an image digest and a key, offline.
    ///
    /// Exits 0 when it verifies, 1 when it does not (saying why), and 2 when the input
    /// cannot be used.
    VerifyBundle(crate::verify_bundle::VerifyBundleArgs),
    /// Run the operator: the policy controller, the admission webhook, health and metrics.
    Run(Box<crate::run::RunArgs>),
}

#[derive(Debug, clap::Args)]
struct MatchArgs {
    #[command(flatten)]
    policy: PolicyArgs,
    /// Also say whether the policy is applied at all in this namespace.
    #[arg(long, value_name = "NAMESPACE")]
    namespace: Option<String>,
    /// Output format.
    #[arg(long, short = 'o', value_enum, default_value_t = Output::Text)]
    output: Output,
    /// Images as written in a pod spec.
    #[arg(required = true, value_name = "IMAGE")]
    images: Vec<String>,
}

/// How results are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Output {
    /// For people.
    Text,
    /// For programs.
    Json,
}

impl Cli {
    /// Runs the chosen subcommand.
    pub fn run(self) -> ExitCode {
        let mut stdout = std::io::stdout().lock();
        let result = match self.command {
            Command::Crd => print_crd(&mut stdout),
            Command::Match(args) => run_match(&args, &mut stdout),
            Command::Run(args) => match crate::run::run(*args) {
                Ok(()) => Ok(()),
                Err(e) => {
                    eprintln!("error: {e:#}");
                    return ExitCode::FAILURE;
                }
            },
            Command::Check(args) => match crate::check::run(&args, &mut stdout) {
                Ok(true) => Ok(()),
                Ok(false) => return ExitCode::from(1),
                Err(e) => Err(e),
            },
            Command::Audit(args) => match crate::audit::command::run(&args, &mut stdout) {
                Ok(true) => Ok(()),
                Ok(false) => return ExitCode::from(1),
                Err(e) => Err(e),
            },
            Command::VerifyBundle(args) => match crate::verify_bundle::run(&args, &mut stdout) {
                Ok(true) => Ok(()),
                Ok(false) => return ExitCode::from(1),
                Err(e) => Err(e),
            },
        };
        match result {
            Ok(()) => ExitCode::SUCCESS,
            Err(CliError::Output(e)) if e.kind() == std::io::ErrorKind::BrokenPipe => {
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::from(2)
            }
        }
    }
}

/// Why a command could not answer.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// The policy file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not YAML or JSON of a ClusterImagePolicy.
    #[error("{path} is not a ClusterImagePolicy manifest: {detail}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// What the parser said, with its position.
        detail: String,
    },
    /// The policy does not compile.
    #[error("{path}: the policy is invalid:\n{}", list(.problems))]
    Invalid {
        /// The file.
        path: PathBuf,
        /// Every problem found.
        problems: Problems,
    },
    /// Some other input file (manifest, CA, docker config) is unusable.
    #[error("{path}: {detail}")]
    Input {
        /// The file.
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

fn list(problems: &Problems) -> String {
    let lines: Vec<String> = problems
        .0
        .iter()
        .map(|p| format!("  {p} ({})", p.reason))
        .collect();
    lines.join("\n")
}

fn print_crd(out: &mut impl Write) -> Result<(), CliError> {
    out.write_all(crd_yaml().as_bytes())?;
    Ok(())
}

pub(crate) fn read_file(path: &Path) -> Result<Vec<u8>, CliError> {
    std::fs::read(path).map_err(|source| CliError::Read {
        path: path.into(),
        source,
    })
}

/// The CRD as checked in under `charts/image-policy-webhook/crds/`.
pub fn crd_yaml() -> String {
    // Serializing a value built from our own types cannot fail; an empty document would be
    // caught by the drift test.
    serde_yaml::to_string(&ClusterImagePolicy::crd()).unwrap_or_default()
}

/// Reads and compiles a policy manifest, warning of fields the CRD does not know.
pub fn load_policy(policy: &PolicyArgs) -> Result<Snapshot, CliError> {
    load_policy_with(policy, &[])
}

/// Reads and compiles a policy file as [`load_policy`] does, with the trusted roots that its
/// `spec.verification.trustedRoots` name read from files instead of ConfigMaps: `roots` pairs
/// a root's name with the file of its `trusted_root.json`. A name the policy does not declare
/// is an input error, so that a typo cannot leave a root unread unnoticed.
pub fn load_policy_with(
    policy: &PolicyArgs,
    roots: &[(String, PathBuf)],
) -> Result<Snapshot, CliError> {
    let read = read_policy(policy)?;
    let documents = root_documents(&read, roots)?;
    compile_policy(policy, &read, &documents)
}

/// Compiles a policy read from `policy`'s file, with its trusted roots' documents; the
/// problems are an error naming the file.
pub fn compile_policy(
    policy: &PolicyArgs,
    read: &ClusterImagePolicy,
    documents: &Documents,
) -> Result<Snapshot, CliError> {
    Snapshot::compile_with(read, documents).map_err(|problems| CliError::Invalid {
        path: policy.file.clone(),
        problems,
    })
}

/// Reads a policy file: a ClusterImagePolicy manifest, warning of (or with `--strict`
/// refusing) the fields the CRD does not know.
pub fn read_policy(policy: &PolicyArgs) -> Result<ClusterImagePolicy, CliError> {
    let path = policy.file.as_path();
    let text = std::fs::read_to_string(path).map_err(|source| CliError::Read {
        path: path.into(),
        source,
    })?;
    let parse_error = |detail: String| CliError::Parse {
        path: path.into(),
        detail,
    };
    // The kind first, so that a Deployment given by mistake is named as such rather than
    // reported as a ClusterImagePolicy with missing fields.
    let types: kube::core::TypeMeta =
        serde_yaml::from_str(&text).map_err(|e| parse_error(e.to_string()))?;
    let expected = (
        ClusterImagePolicy::api_version(&()),
        ClusterImagePolicy::kind(&()),
    );
    if (types.api_version.as_str(), types.kind.as_str()) != (&*expected.0, &*expected.1) {
        return Err(parse_error(format!(
            "found {}/{}, expected {}/{}",
            types.api_version, types.kind, expected.0, expected.1
        )));
    }
    policy_file::screen(path, &text, policy.strict)?;
    serde_yaml::from_str(&text).map_err(|e| parse_error(e.to_string()))
}

/// The ConfigMap data the policy's trusted roots would be read from, made of `roots`' files.
pub fn root_documents(
    policy: &ClusterImagePolicy,
    roots: &[(String, PathBuf)],
) -> Result<Documents, CliError> {
    let declared = &policy.spec.verification.trusted_roots;
    let mut documents = Documents::new();
    for (name, file) in roots {
        let Some(root) = declared.iter().find(|r| &r.name == name) else {
            let names: Vec<&str> = declared.iter().map(|r| r.name.as_str()).collect();
            return Err(CliError::Input {
                path: file.clone(),
                detail: format!(
                    "--trusted-root {name}: the policy declares no trusted root of that name \
                     (it declares: {})",
                    if names.is_empty() {
                        "none".to_owned()
                    } else {
                        names.join(", ")
                    }
                ),
            });
        };
        let key = root
            .config_map_ref
            .key
            .clone()
            .unwrap_or_else(|| DEFAULT_DOCUMENT_KEY.to_owned());
        documents
            .entry(root.config_map_ref.name.clone())
            .or_default()
            .insert(key, read_text(file)?);
    }
    Ok(documents)
}

/// A file that must be UTF-8 text.
pub(crate) fn read_text(path: &Path) -> Result<String, CliError> {
    String::from_utf8(read_file(path)?).map_err(|_| CliError::Input {
        path: path.into(),
        detail: "not UTF-8 text".into(),
    })
}

/// Parses `--trusted-root NAME=FILE`.
pub fn trusted_root_arg(value: &str) -> Result<(String, PathBuf), String> {
    match value.split_once('=') {
        Some((name, file)) if !name.is_empty() && !file.is_empty() => {
            Ok((name.to_owned(), PathBuf::from(file)))
        }
        _ => Err(format!("{value:?} is not NAME=FILE")),
    }
}

/// What `match` says of one image.
#[derive(Debug, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
struct ImageReport {
    image: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    canonical: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    excluded_namespace: Option<String>,
    matches: Vec<MatchReport>,
    /// Set when the matched entries name different keys: every key that admits the image.
    #[serde(skip_serializing_if = "Option::is_none")]
    any_of: Option<Vec<String>>,
    /// `Enforce`, or `Warn`: what the policy would refuse is admitted with a warning.
    mode: &'static str,
}

#[derive(Debug, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
struct MatchReport {
    entry: usize,
    pattern: String,
    keys: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    secret_ref: Option<String>,
}

fn run_match(args: &MatchArgs, out: &mut impl Write) -> Result<(), CliError> {
    let snapshot = load_policy(&args.policy)?;
    let excluded = args
        .namespace
        .as_deref()
        .filter(|ns| snapshot.is_excluded(ns));
    let reports: Vec<ImageReport> = args
        .images
        .iter()
        .map(|i| report(&snapshot, i, excluded))
        .collect();
    write_reports(out, args.output, &reports, write_text)?;
    Ok(())
}

/// Writes reports as pretty JSON, or each as text with `text`.
pub(crate) fn write_reports<T: Serialize, W: Write>(
    out: &mut W,
    output: Output,
    reports: &[T],
    text: fn(&T, &mut W) -> std::io::Result<()>,
) -> std::io::Result<()> {
    match output {
        Output::Json => {
            serde_json::to_writer_pretty(&mut *out, reports)?;
            writeln!(out)
        }
        Output::Text => reports.iter().try_for_each(|r| text(r, out)),
    }
}

fn report(snapshot: &Snapshot, written: &str, excluded: Option<&str>) -> ImageReport {
    let mut report = ImageReport {
        image: written.to_owned(),
        canonical: None,
        error: None,
        excluded_namespace: excluded.map(str::to_owned),
        matches: Vec::new(),
        any_of: None,
        mode: snapshot.mode().as_str(),
    };
    match ImageName::parse(written) {
        Err(e) => report.error = Some(e.to_string()),
        Ok(image) => {
            report.canonical = Some(image.canonical());
            let entries = snapshot.matching(&image);
            report.any_of = any_of(snapshot, &entries);
            report.mode = snapshot.mode_of(&entries).as_str();
            report.matches = entries
                .into_iter()
                .map(|entry| MatchReport {
                    entry: entry.index,
                    pattern: entry.pattern.to_string(),
                    keys: snapshot.keys_of(entry).map(|k| k.name.clone()).collect(),
                    secret_ref: entry.secret_ref.as_ref().map(|s| match &s.namespace {
                        Some(ns) => format!("{ns}/{}", s.name),
                        None => s.name.clone(),
                    }),
                })
                .collect();
        }
    }
    report
}

/// The names of [`Snapshot::any_of`].
pub(crate) fn any_of(snapshot: &Snapshot, entries: &[&Entry]) -> Option<Vec<String>> {
    let keys = snapshot.any_of(entries)?;
    Some(keys.into_iter().map(|k| k.name.clone()).collect())
}

/// The line that says an image matched entries with different keys.
pub(crate) fn any_of_line(keys: &[String]) -> String {
    format!(
        "any of these keys admits it: {} (its matched entries name different keys)",
        keys.join(", ")
    )
}

fn write_text(report: &ImageReport, out: &mut impl Write) -> std::io::Result<()> {
    match &report.canonical {
        Some(canonical) if canonical != &report.image => {
            writeln!(out, "{} ({canonical})", report.image)?
        }
        _ => writeln!(out, "{}", report.image)?,
    }
    if let Some(ns) = &report.excluded_namespace {
        writeln!(out, "  namespace {ns} is excluded: not checked")?;
    }
    let warn = report.mode == Mode::Warn.as_str();
    if let Some(error) = &report.error {
        let verdict = if warn {
            "admitted with a warning (Warn mode)"
        } else {
            "denied"
        };
        return writeln!(out, "  {error}: {verdict}");
    }
    if report.matches.is_empty() && warn {
        return writeln!(
            out,
            "  matches no entry: admitted with a warning (Warn mode), or with the original's warning when allowUnmatchedImages is true"
        );
    }
    if report.matches.is_empty() {
        return writeln!(
            out,
            "  matches no entry: denied, or admitted with a warning when allowUnmatchedImages is true"
        );
    }
    for m in &report.matches {
        write!(
            out,
            "  images[{}] {} keys: {}",
            m.entry,
            m.pattern,
            m.keys.join(", ")
        )?;
        match &m.secret_ref {
            Some(secret) => writeln!(out, " secretRef: {secret}")?,
            None => writeln!(out)?,
        }
    }
    if let Some(keys) = &report.any_of {
        writeln!(out, "  {}", any_of_line(keys))?;
    }
    if warn {
        writeln!(
            out,
            "  Warn mode: if it does not verify, it is admitted with a warning"
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests;
