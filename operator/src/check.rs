//! `image-policy check`: the whole admission decision for images or manifests, offline from a
//! cluster, for CI pipelines and debugging. It prints SPEC §2's exact messages.

use std::io::Write;
use std::path::{Path, PathBuf};

use futures::future::join_all;
use serde::Serialize;

use crate::cli::{CliError, Output, load_policy, read_file, write_reports};
use crate::decide::{Classified, Outcome, classify, verify_matched};
use crate::policy::{ImageName, Snapshot};
use crate::verify::args::VerifierArgs;
use crate::verify::{Credential, DockerConfig, Verifier};
use crate::workload::images_of;

/// Arguments of `image-policy check`.
#[derive(Debug, clap::Args)]
pub struct CheckArgs {
    /// A ClusterImagePolicy manifest (YAML or JSON).
    #[arg(long, value_name = "FILE")]
    policy: PathBuf,
    /// Admit images that match no pattern, with a warning, instead of denying them.
    #[arg(long)]
    allow_unmatched_images: bool,
    #[command(flatten)]
    verifier: VerifierArgs,
    /// A docker config.json with registry credentials.
    #[arg(long, value_name = "FILE")]
    docker_config: Option<PathBuf>,
    /// Output format.
    #[arg(long, short = 'o', value_enum, default_value_t = Output::Text)]
    output: Output,
    /// Read Pods and workloads from this manifest (multi-document YAML) instead of images.
    #[arg(
        short = 'f',
        long = "filename",
        value_name = "MANIFEST.yaml",
        conflicts_with = "images"
    )]
    manifest: Option<PathBuf>,
    /// Images as written in a pod spec.
    #[arg(value_name = "IMAGE", required_unless_present = "manifest")]
    images: Vec<String>,
}

/// One image's result, as printed.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Report {
    #[serde(skip_serializing_if = "Option::is_none")]
    workload: Option<String>,
    image: String,
    admitted: bool,
    reason: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    message: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    digest: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    key: Option<String>,
}

/// Runs `check`; `Ok(true)` when everything would be admitted.
pub fn run(args: &CheckArgs, out: &mut impl Write) -> Result<bool, CliError> {
    let snapshot = load_policy(&args.policy)?;
    let subjects = match &args.manifest {
        Some(path) => manifest_images(path)?,
        None => args.images.iter().map(|i| (None, i.clone())).collect(),
    };
    let verifier = verifier(args)?;
    let credentials = match &args.docker_config {
        Some(path) => {
            Some(
                DockerConfig::from_json(&read_file(path)?).map_err(|e| CliError::Input {
                    path: path.clone(),
                    detail: e.to_string(),
                })?,
            )
        }
        None => None,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| CliError::Input {
            path: "runtime".into(),
            detail: e.to_string(),
        })?;
    let outcomes = runtime.block_on(decide_all(
        &snapshot,
        &verifier,
        credentials.as_ref(),
        &subjects,
        args,
    ));
    let reports: Vec<Report> = subjects
        .into_iter()
        .zip(outcomes)
        .map(|((workload, image), o)| report(workload, image, o))
        .collect();
    write_reports(out, args.output, &reports, write_text)?;
    Ok(reports.iter().all(|r| r.admitted))
}

/// Decides every image; distinct images are verified concurrently.
async fn decide_all(
    snapshot: &Snapshot,
    verifier: &Verifier,
    config: Option<&DockerConfig>,
    subjects: &[(Option<String>, String)],
    args: &CheckArgs,
) -> Vec<Outcome> {
    join_all(subjects.iter().map(|(_, written)| async move {
        match classify(snapshot, written, args.allow_unmatched_images) {
            Classified::Decided(outcome) => outcome,
            Classified::Matched { image, entries } => {
                let credentials = credentials_for(config, &image);
                verify_matched(verifier, snapshot, written, &image, &entries, &credentials).await
            }
        }
    }))
    .await
}

fn credentials_for(config: Option<&DockerConfig>, image: &ImageName) -> Vec<Credential> {
    let reference = image.reference();
    config
        .map(|c| {
            c.lookup(reference.domain(), reference.path())
                .into_iter()
                .cloned()
                .collect()
        })
        .unwrap_or_default()
}

fn verifier(args: &CheckArgs) -> Result<Verifier, CliError> {
    let input_error = |detail: String| CliError::Input {
        path: "--ca-file".into(),
        detail,
    };
    let config = args.verifier.config().map_err(input_error)?;
    Verifier::new(config).map_err(input_error)
}

/// `(workload, image)` for every container of every workload in a multi-document manifest.
fn manifest_images(path: &Path) -> Result<Vec<(Option<String>, String)>, CliError> {
    let text = read_file(path)?;
    let input_error = |detail: String| CliError::Input {
        path: path.into(),
        detail,
    };
    let mut out = Vec::new();
    for (n, document) in serde_yaml::Deserializer::from_slice(&text).enumerate() {
        let value: serde_json::Value = serde::Deserialize::deserialize(document)
            .map_err(|e| input_error(format!("document {}: {e}", n + 1)))?;
        if value.is_null() {
            continue;
        }
        let kind = value
            .get("kind")
            .and_then(|k| k.as_str())
            .unwrap_or_default();
        let name = value
            .pointer("/metadata/name")
            .and_then(|k| k.as_str())
            .unwrap_or("<unnamed>");
        let workload = format!("{kind}/{name}");
        let images =
            images_of(kind, &value).map_err(|e| input_error(format!("{workload}: {e}")))?;
        for image in images.unwrap_or_default() {
            out.push((Some(workload.clone()), image.image));
        }
    }
    if out.is_empty() {
        return Err(input_error(
            "no Pod or workload with containers found".into(),
        ));
    }
    Ok(out)
}

fn report(workload: Option<String>, image: String, outcome: Outcome) -> Report {
    let (admitted, reason) = (outcome.admitted(), outcome.label());
    let mut report = Report {
        workload,
        image,
        admitted,
        reason,
        message: None,
        digest: None,
        key: None,
    };
    match outcome {
        Outcome::Admitted { digest, key } => {
            report.digest = Some(digest);
            report.key = Some(key);
        }
        Outcome::Warned(message) | Outcome::Denied { message, .. } => {
            report.message = Some(message)
        }
    }
    report
}

fn write_text(r: &Report, out: &mut impl Write) -> std::io::Result<()> {
    if let Some(workload) = &r.workload {
        write!(out, "{workload}: ")?;
    }
    match (&r.message, &r.digest, &r.key) {
        (Some(message), _, _) if r.admitted => writeln!(out, "Warning: {message}"),
        (Some(message), _, _) => writeln!(out, "Denied: {message}"),
        (None, Some(digest), Some(key)) => writeln!(
            out,
            "Admitted: {} ({digest} verified with key {key})",
            r.image
        ),
        _ => writeln!(out, "Admitted: {}", r.image),
    }
}
