//! How `match`, `check` and `audit` print: text for people or JSON for programs
//! ([`Output`]), and the note shared by `match` and `check` on an image whose matched entries
//! name different keys.

use std::io::Write;

use clap::ValueEnum;
use serde::Serialize;

use crate::policy::{Entry, Snapshot};

/// How results are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Output {
    /// For people.
    Text,
    /// For programs.
    Json,
}

/// Writes reports as pretty JSON, or each as text with `text`.
pub(super) fn write_reports<T: Serialize, W: Write>(
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

/// The names of [`Snapshot::any_of`].
pub(super) fn any_of(snapshot: &Snapshot, entries: &[&Entry]) -> Option<Vec<String>> {
    let keys = snapshot.any_of(entries)?;
    Some(keys.into_iter().map(|k| k.name.clone()).collect())
}

/// The line that says an image matched entries with different keys.
pub(super) fn any_of_line(keys: &[String]) -> String {
    format!(
        "any of these keys admits it: {} (its matched entries name different keys)",
        keys.join(", ")
    )
}
