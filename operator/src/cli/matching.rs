//! `image-policy match`: which entries of a policy match each image, with which keys it
//! would be checked, which attestations it needs and in which mode, without asking a
//! registry. For a policy's author: it answers from the policy file alone. With `-f`, for
//! each image of each Pod and workload of a manifest, and where it is written: which
//! container, or which image volume.

use std::io::Write;

use image_policy_crd::Mode;
use serde::Serialize;

use super::error::CliError;
use super::input::load_policy;
use super::manifest::Subjects;
use super::output::{Output, any_of, any_of_line, write_reports};
use super::policy_file::PolicyArgs;
use crate::policy::{ImageName, Snapshot};
use crate::workload::{ContainerImage, ContainerList};

/// Arguments of `image-policy match`.
#[derive(Debug, clap::Args)]
pub struct MatchArgs {
    #[command(flatten)]
    policy: PolicyArgs,
    /// Also say whether the policy is applied at all in this namespace.
    #[arg(long, value_name = "NAMESPACE")]
    namespace: Option<String>,
    /// Output format.
    #[arg(long, short = 'o', value_enum, default_value_t = Output::Text)]
    output: Output,
    #[command(flatten)]
    subjects: Subjects,
}

/// What `match` says of one image.
#[derive(Debug, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
struct ImageReport {
    /// The manifest's workload it is in (`Kind/name`), with `-f`.
    #[serde(skip_serializing_if = "Option::is_none")]
    workload: Option<String>,
    /// The container it is the image of, with `-f`.
    #[serde(skip_serializing_if = "Option::is_none")]
    container: Option<String>,
    /// The image volume that mounts it, with `-f`.
    #[serde(skip_serializing_if = "Option::is_none")]
    image_volume: Option<String>,
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

/// One entry an image matches, as printed: its position, pattern, keys, registry credential
/// and the attestations it requires.
#[derive(Debug, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
struct MatchReport {
    entry: usize,
    pattern: String,
    keys: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    secret_ref: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    attestations: Vec<AttestationReport>,
}

/// An attestation an entry requires, as printed: every image the entry matches needs it.
#[derive(Debug, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
struct AttestationReport {
    name: String,
    predicate_type: String,
    /// Its signers, any of them.
    keys: Vec<String>,
    /// Its conditions' expressions, each of which must be true.
    conditions: Vec<String>,
}

/// Runs `match`.
pub fn run(args: &MatchArgs, out: &mut impl Write) -> Result<(), CliError> {
    let snapshot = load_policy(&args.policy)?;
    let excluded = args
        .namespace
        .as_deref()
        .filter(|ns| snapshot.is_excluded(ns));
    let reports: Vec<ImageReport> = match &args.subjects.manifest {
        Some(path) => super::manifest::workloads(path)?
            .into_iter()
            .flat_map(|(workload, images)| {
                images
                    .into_iter()
                    .map(move |place| (workload.clone(), place))
            })
            .map(|(workload, place)| {
                let report = report(&snapshot, &place.image, excluded);
                placed(report, workload, place)
            })
            .collect(),
        None => args
            .subjects
            .images
            .iter()
            .map(|i| report(&snapshot, i, excluded))
            .collect(),
    };
    write_reports(out, args.output, &reports, write_text)?;
    Ok(())
}

/// `report` of an image of a manifest's `workload`, written at `place`.
fn placed(report: ImageReport, workload: String, place: ContainerImage) -> ImageReport {
    let (container, image_volume) = match place.list {
        ContainerList::ImageVolumes => (None, Some(place.name)),
        _ => (Some(place.name), None),
    };
    ImageReport {
        workload: Some(workload),
        container,
        image_volume,
        ..report
    }
}

fn report(snapshot: &Snapshot, written: &str, excluded: Option<&str>) -> ImageReport {
    let mut report = ImageReport {
        workload: None,
        container: None,
        image_volume: None,
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
                    attestations: snapshot
                        .attestations_of(&[entry])
                        .into_iter()
                        .map(|need| AttestationReport {
                            name: need.requirement.name.clone(),
                            predicate_type: need.requirement.predicate_type.clone(),
                            keys: need.signers.iter().map(|k| k.name.clone()).collect(),
                            conditions: need
                                .requirement
                                .conditions
                                .iter()
                                .map(|c| c.expression.clone())
                                .collect(),
                        })
                        .collect(),
                })
                .collect();
        }
    }
    report
}

fn write_text(report: &ImageReport, out: &mut impl Write) -> std::io::Result<()> {
    if let Some(workload) = &report.workload {
        write!(out, "{workload} ")?;
    }
    match (&report.container, &report.image_volume) {
        (Some(container), _) => write!(out, "container {container:?}: ")?,
        (None, Some(volume)) => write!(out, "image volume {volume:?}: ")?,
        (None, None) => {}
    }
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
        let keys = match m.keys.as_slice() {
            [] => "none (admitted by its attestations)".to_owned(),
            keys => keys.join(", "),
        };
        write!(out, "  images[{}] {} keys: {keys}", m.entry, m.pattern)?;
        match &m.secret_ref {
            Some(secret) => writeln!(out, " secretRef: {secret}")?,
            None => writeln!(out)?,
        }
        for a in &m.attestations {
            writeln!(
                out,
                "    requires the attestation {:?} ({}) signed by {}",
                a.name,
                a.predicate_type,
                a.keys.join(" or ")
            )?;
            for condition in &a.conditions {
                writeln!(out, "      where {condition}")?;
            }
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
