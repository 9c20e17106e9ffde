//! `image-policy check`: the whole admission decision for images or manifests, offline from a
//! cluster, for CI pipelines and debugging. It decides as the webhook does
//! ([`crate::webhook::admit`]) and prints docs/contract.md §2's exact messages.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use futures::future::BoxFuture;
use image_policy_crd::{Mode, SecretRef};
use serde::Serialize;
use tokio::sync::watch;

use super::decision::DecisionArgs;
use super::error::CliError;
use super::input::{load_policy_with, read_file};
use super::manifest::{self, Subjects};
use super::output::{Output, any_of, any_of_line, write_reports};
use super::policy_file::PolicyArgs;
use crate::policy::{ImageName, PolicyState};
use crate::verify::DockerConfig;
use crate::webhook::Webhook;
use crate::webhook::admit::mounted_as;
use crate::webhook::credentials::{CredentialSource, Owner, Sources};
use crate::webhook::decision::Outcome;
use crate::webhook::words;
use crate::workload::{ContainerImage, ImageVolumes};

/// Arguments of `image-policy check`.
#[derive(Debug, clap::Args)]
pub struct CheckArgs {
    #[command(flatten)]
    policy: PolicyArgs,
    #[command(flatten)]
    decision: DecisionArgs,
    /// A docker config.json with registry credentials.
    #[arg(long, value_name = "FILE")]
    docker_config: Option<PathBuf>,
    /// Output format.
    #[arg(long, short = 'o', value_enum, default_value_t = Output::Text)]
    output: Output,
    #[command(flatten)]
    subjects: Subjects,
}

/// One image's result, as printed.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Report {
    #[serde(skip_serializing_if = "Option::is_none")]
    workload: Option<String>,
    image: String,
    /// The image volumes of its workload that mount it, if any.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    image_volumes: Vec<String>,
    admitted: bool,
    reason: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    message: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    digest: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    key: Option<String>,
    /// Set when the image's matched entries name different keys: every key that admits it.
    #[serde(skip_serializing_if = "Option::is_none")]
    any_of: Option<Vec<String>>,
    /// The image's mode (`Enforce` or `Warn`): in Warn a denial is a warning, and the image is
    /// admitted.
    mode: &'static str,
}

/// Runs `check`; `Ok(true)` when everything would be admitted.
pub fn run(args: &CheckArgs, out: &mut impl Write) -> Result<bool, CliError> {
    let snapshot = load_policy_with(&args.policy, &args.decision.trusted_root)?;
    let subjects = match &args.subjects.manifest {
        Some(path) => manifest_subjects(path)?,
        None => args
            .subjects
            .images
            .iter()
            .map(|image| Subject {
                workload: None,
                image: image.clone(),
                volumes: Vec::new(),
            })
            .collect(),
    };
    let verifier = args.decision.verifier()?;
    let plain = verifier.registry().plain_http().clone();
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
    let settings = args.decision.settings();
    let snapshot = Arc::new(snapshot);
    let images = subjects.iter().map(|s| s.image.clone()).collect();
    let outcomes = runtime.block_on(async {
        // Built in the runtime: the watch channel's receiver is only read by `judge`'s caller.
        let (_policy, rx) = watch::channel(PolicyState::Active(snapshot.clone()));
        let source = Arc::new(ConfigFile(credentials));
        let webhook = Webhook::new(rx, verifier, source, settings);
        webhook
            .admission()
            .judge(&snapshot, Owner::none(), images)
            .await
    });
    let reports: Vec<Report> = subjects
        .into_iter()
        .zip(outcomes)
        .map(|(subject, (_, o))| {
            let Subject {
                workload,
                image,
                volumes,
            } = subject;
            let (any_of, mode) = match ImageName::parse_with(&image, &plain) {
                Ok(parsed) => {
                    let entries = snapshot.matching(&parsed);
                    (any_of(&snapshot, &entries), snapshot.mode_of(&entries))
                }
                Err(_) => (None, snapshot.mode()),
            };
            let o = mounted_as(o, &volumes);
            Report {
                any_of,
                mode: mode.as_str(),
                image_volumes: volumes,
                ..report(workload, image, o)
            }
        })
        .collect();
    write_reports(out, args.output, &reports, write_text)?;
    Ok(reports.iter().all(|r| r.admitted))
}

/// The credentials of `--docker-config`, for every image.
struct ConfigFile(Option<DockerConfig>);

impl CredentialSource for ConfigFile {
    fn gather<'a>(&'a self, _: Owner<'a>, _: &'a [&'a SecretRef]) -> BoxFuture<'a, Sources> {
        let sources = self.0.clone().map(Sources::config).unwrap_or_default();
        Box::pin(async move { sources })
    }
}

/// One image to decide: the workload of the manifest it is in (`Kind/name`), and the image
/// volumes of that workload that mount it.
struct Subject {
    workload: Option<String>,
    image: String,
    volumes: Vec<String>,
}

/// The images of every workload in a multi-document manifest, each once per workload in the
/// order a review of it decides them, with the image volumes that mount it: what the webhook
/// would decide for each, in its words.
fn manifest_subjects(path: &Path) -> Result<Vec<Subject>, CliError> {
    let mut out = Vec::new();
    for (workload, images) in manifest::workloads(path)? {
        let volumes = ImageVolumes::of(&images);
        let mut seen = std::collections::HashSet::new();
        for ContainerImage { image, .. } in images {
            if seen.insert(image.clone()) {
                out.push(Subject {
                    workload: Some(workload.clone()),
                    volumes: volumes.mounting(&image).to_vec(),
                    image,
                });
            }
        }
    }
    Ok(out)
}

/// The report of one image's outcome; a waived denial's message is the warning kubectl
/// would print, the denial's words and why it is admitted all the same.
fn report(workload: Option<String>, image: String, outcome: Outcome) -> Report {
    let (admitted, reason) = (outcome.admitted(), outcome.reason().as_str());
    let mut report = Report {
        workload,
        image,
        image_volumes: Vec::new(),
        admitted,
        reason,
        message: None,
        digest: None,
        key: None,
        any_of: None,
        mode: Mode::Enforce.as_str(),
    };
    match outcome {
        Outcome::Admitted { digest, key } => {
            report.digest = Some(digest);
            report.key = Some(key);
        }
        Outcome::Warned(message) | Outcome::Denied { message, .. } => {
            report.message = Some(message)
        }
        Outcome::Waived { message, .. } => report.message = Some(words::waived(&message)),
    }
    report
}

fn write_text(r: &Report, out: &mut impl Write) -> std::io::Result<()> {
    if let Some(workload) = &r.workload {
        write!(out, "{workload}: ")?;
    }
    match (&r.message, &r.digest, &r.key) {
        (Some(message), _, _) if r.admitted => writeln!(out, "Warning: {message}")?,
        (Some(message), _, _) => writeln!(out, "Denied: {message}")?,
        (None, Some(digest), Some(key)) => writeln!(
            out,
            "Admitted: {} ({digest} verified with key {key})",
            r.image
        )?,
        _ => writeln!(out, "Admitted: {}", r.image)?,
    }
    match &r.any_of {
        Some(keys) => writeln!(out, "  Note: {}", any_of_line(keys)),
        None => Ok(()),
    }
}
