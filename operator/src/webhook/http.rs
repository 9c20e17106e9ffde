//! The webhook's HTTP routes: admission reviews in, one log line and one metric per decision,
//! and for a refusal or a Warn-mode admission the record of its Events ([`super::events`]).

use std::time::Instant;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header};

use super::decision::{Decision, Outcome, Reason};
use super::events::{EventSink, Record};
use super::review::Request as Review;
use super::{Answer, Webhook};
use crate::server::Handler;
use crate::telemetry::{DecisionLabel, Metrics};

/// The path the original Image Policy Webhook's webhook configuration calls, kept so that its
/// configurations work unchanged (docs/contract.md §5).
pub const ADMISSION_PATH: &str = "/signing-policy-check";
/// The same handler under a name that says what it does for policies.
pub const POLICY_PATH: &str = "/validate-clusterimagepolicy";
/// The mutating webhook: each verified image pinned to its digest.
pub const PIN_PATH: &str = "/pin-digests";

/// Routes requests to the webhook, and records what it decided.
pub struct Routes {
    webhook: Webhook,
    metrics: Metrics,
    events: Option<EventSink>,
}

impl Routes {
    /// Routes for `webhook`, recording into `metrics`, with no Events.
    pub fn new(webhook: Webhook, metrics: Metrics) -> Self {
        Routes {
            webhook,
            metrics,
            events: None,
        }
    }

    /// The same, leaving the record of each Event to publish in `events`.
    pub fn with_events(self, events: EventSink) -> Self {
        Routes {
            events: Some(events),
            ..self
        }
    }
}

impl Handler for Routes {
    async fn handle(&self, request: Request<Bytes>) -> Response<Bytes> {
        let path = request.uri().path();
        let pinning = path == PIN_PATH;
        if path != ADMISSION_PATH && path != POLICY_PATH && !pinning {
            return plain(StatusCode::NOT_FOUND, "not found");
        }
        if request.method() != Method::POST {
            return plain(StatusCode::METHOD_NOT_ALLOWED, "POST an AdmissionReview");
        }
        let start = Instant::now();
        let answer = if pinning {
            self.webhook.pin(request.body()).await
        } else {
            self.webhook.handle(request.body()).await
        };
        match &answer {
            // What the mutating webhook admits, the validating one decides and records again:
            // only its pins are recorded here, and what it refuses.
            Answer::Decided {
                review,
                decision,
                pins,
                ..
            } if pinning && decision.allowed => self.record_pins(review, pins),
            Answer::Decided {
                review, decision, ..
            } => self.record(review, request.body(), decision, start),
            Answer::Rejected(error) => {
                tracing::warn!(target: "image-policy.webhook", error = %error, "Bad admission request");
            }
        }
        let content_type = if answer.status() == 200 {
            "application/json"
        } else {
            "text/plain; charset=utf-8"
        };
        let status =
            StatusCode::from_u16(answer.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut response = Response::new(Bytes::from(answer.into_body()));
        *response.status_mut() = status;
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            header::HeaderValue::from_static(content_type),
        );
        response
    }
}

impl Routes {
    fn record_pins(&self, review: &Review, pins: &[super::pin::Pin]) {
        if pins.is_empty() {
            return;
        }
        self.metrics.pinned(kind_label(&review.kind), pins.len());
        let object = format_args!("{}/{}/{}", review.namespace, review.kind, review.name);
        let images = Pinned(pins);
        tracing::info!(
            target: "image-policy.webhook",
            uid = %review.uid,
            object = %object,
            operation = %review.operation,
            dry_run = review.dry_run,
            images = ?images,
            "Pinned"
        );
    }

    fn record(&self, review: &Review, body: &[u8], decision: &Decision, start: Instant) {
        let elapsed = start.elapsed();
        let label = if decision.waived() {
            DecisionLabel::Warned
        } else if decision.allowed {
            DecisionLabel::Allowed
        } else {
            DecisionLabel::Denied
        };
        self.metrics.admission(
            kind_label(&review.kind),
            operation_label(&review.operation),
            label,
            decision.reason.as_str(),
            elapsed,
        );
        if decision.reason == Reason::NotChecked {
            return;
        }
        self.record_events(review, body, decision);
        // Written only when the line is: `namespace/kind/name` and the images as a list.
        let object = format_args!("{}/{}/{}", review.namespace, review.kind, review.name);
        let images = Images(&decision.outcomes);
        // The denial, or in Warn mode the one it would have been, word for word.
        let waived = decision.waived_denial();
        let error = decision.message.as_deref().or(waived.as_deref());
        if let Some(note) = &decision.note {
            tracing::info!(target: "image-policy.webhook", uid = %review.uid, object = %object, "{note}");
            return;
        }
        // One event per message, each a literal: written as it is, with nothing to format.
        macro_rules! decided {
            ($msg:literal) => {
                tracing::info!(
                    target: "image-policy.webhook",
                    uid = review.uid.as_str(),
                    object = %object,
                    operation = review.operation.as_str(),
                    dry_run = review.dry_run,
                    images = ?images,
                    reason = decision.reason.as_str(),
                    error = error,
                    elapsed_ms = elapsed.as_secs_f64() * 1e3,
                    $msg
                )
            };
        }
        match label {
            DecisionLabel::Allowed => decided!("Admitted"),
            DecisionLabel::Denied => decided!("Denied"),
            DecisionLabel::Warned => decided!("Admitted in Warn mode"),
        }
    }

    /// Queues the Events of a refusal or a Warn-mode admission, with the uid of the policy in
    /// force; never waits.
    fn record_events(&self, review: &Review, body: &[u8], decision: &Decision) {
        let Some(events) = &self.events else {
            return;
        };
        if let Some(mut record) = Record::of(review, body, decision) {
            record.policy_uid = self.webhook.policy_uid();
            events.record(record);
        }
    }
}

/// The images of a decision, written as a list of strings (`["a", "b"]`), as `Debug` writes a
/// list of strings.
struct Images<'a>(&'a [(String, Outcome)]);

impl std::fmt::Debug for Images<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("[")?;
        for (i, (image, _)) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            // What `Debug` writes as it is (printable ASCII but `"` and `\`), written in one
            // piece: an image as it is written in a pod, always but in a refusal of nonsense.
            if image
                .bytes()
                .all(|b| matches!(b, b' '..=b'~') && b != b'"' && b != b'\\')
            {
                f.write_str("\"")?;
                f.write_str(image)?;
                f.write_str("\"")?;
            } else {
                write!(f, "{image:?}")?;
            }
        }
        f.write_str("]")
    }
}

/// The images pinned, written as a list of strings (`["a:1@sha256:…"]`).
struct Pinned<'a>(&'a [super::pin::Pin]);

impl std::fmt::Debug for Pinned<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.0.iter().map(super::pin::Pin::pinned))
            .finish()
    }
}

/// The metric label of a kind: the kinds decided here, or `Other`, so the set stays bounded.
fn kind_label(kind: &str) -> &'static str {
    crate::workload::KINDS
        .into_iter()
        .chain(["ClusterImagePolicy"])
        .find(|k| *k == kind)
        .unwrap_or("Other")
}

fn operation_label(operation: &str) -> &'static str {
    ["CREATE", "UPDATE", "DELETE", "CONNECT"]
        .into_iter()
        .find(|o| *o == operation)
        .unwrap_or("Other")
}

fn plain(status: StatusCode, text: &'static str) -> Response<Bytes> {
    let mut response = Response::new(Bytes::from_static(text.as_bytes()));
    *response.status_mut() = status;
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn images_are_written_as_a_list_of_strings() {
        let outcomes = vec![
            ("busybox".to_owned(), Outcome::Warned("w".into())),
            ("a\"b".to_owned(), Outcome::Warned("w".into())),
        ];
        assert_eq!(
            format!("{:?}", Images(&outcomes)),
            format!("{:?}", vec!["busybox", "a\"b"])
        );
        assert_eq!(format!("{:?}", Images(&[])), "[]");
        // Written in one piece or through `Debug`, the same text as `Debug` of the list.
        let outcomes: Vec<_> = ["r/a:1", "r/b@sha256:00", "a\\b", "tab\there", "é", "\u{7f}"]
            .into_iter()
            .map(|image| (image.to_owned(), Outcome::Warned("w".into())))
            .collect();
        let images: Vec<&str> = outcomes.iter().map(|(i, _)| i.as_str()).collect();
        assert_eq!(format!("{:?}", Images(&outcomes)), format!("{images:?}"));
    }
}
