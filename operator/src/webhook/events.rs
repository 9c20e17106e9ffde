//! Kubernetes Events of admissions (docs/contract.md §6): each refusal of a workload, and each
//! admission only because of Warn mode, is recorded on the `ClusterImagePolicy` and on the
//! object's controller (a Pod's ReplicaSet, a Job's CronJob), where `kubectl describe` shows
//! it.
//!
//! Admission never waits on the API server for this. [`Record::of`] takes from a decision
//! what its Events say, and [`EventSink::record`] queues it without waiting: when the queue
//! is full the record is dropped and counted (`image_policy_events_dropped_total`). One task,
//! [`publish`], drains the queue through kube-runtime's [`Recorder`], which turns repeats
//! (the same reason about the same objects: a controller retrying a refused Pod) into the
//! series of one Event instead of new Events. It keeps the policy's Events, about a
//! cluster-scoped object, in `default`, which the API server accepts for them (from
//! Kubernetes 1.21 on, kubernetes/kubernetes#100125) and where `kubectl describe
//! clusterimagepolicy` finds them. A publication that fails is counted and logged, never
//! retried.

use std::time::{Duration, Instant};

use image_policy_crd::{ClusterImagePolicy, POLICY_NAME};
use k8s_openapi::api::core::v1::ObjectReference;
use kube::Resource as _;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use tokio::sync::mpsc;

use super::decision::{Decision, Outcome};
use super::review::{ControllerRef, Metadata, Request};
use super::words;
use crate::telemetry::{EventDropped, Metrics};

/// How many records wait for the publisher at most; more are dropped.
pub const QUEUE_CAPACITY: usize = 256;

/// The Events' reporting controller (`reportingController`); the instance is the replica.
pub const REPORTER: &str = "image-policy";

/// The API server's limit on an Event's note, in bytes.
pub const NOTE_LIMIT: usize = 1024;

/// The longest one publication may take: the queue waits meanwhile, admission does not.
pub const PUBLISH_TIMEOUT: Duration = Duration::from_secs(10);

/// After how many publications kube-runtime's [`Recorder`] is replaced by a new one. It keeps
/// every Event of the last 6 minutes to grow their series, without a bound of its own: refusals
/// about ever new objects must not grow memory without bound (a replaced one's next repeat is
/// a new Event).
pub const RECORDER_RENEWAL: usize = 4096;

/// How often a failed publication is logged at `warn` at most; the others at `debug`.
pub const WARN_INTERVAL: Duration = Duration::from_secs(60);

/// What the Events of one decision say, owned so that admission hands it off and forgets it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// Refused; else admitted only because of Warn mode.
    pub refused: bool,
    /// The request's namespace.
    pub namespace: String,
    /// The object's kind (`request.kind.kind`).
    pub kind: String,
    /// Its name, or its `generateName` while it has none.
    pub name: String,
    /// The images refused (or waived) in order; for a refusal of every image (the policy
    /// not loaded yet, or invalid), every image checked.
    pub images: Vec<String>,
    /// The denial, word for word; in Warn mode, the one it would have been.
    pub message: String,
    /// The decision's reason label (`NotSigned`, `Unmatched`, `PolicyInvalid`, ...).
    pub reason: &'static str,
    /// The `metadata.uid` of the policy decided with; `None` while none is known.
    pub policy_uid: Option<String>,
    /// The object's controller.
    pub controller: Option<ControllerRef>,
}

impl Record {
    /// The record of a decision on the review `body`: for a workload refused or admitted
    /// only because of Warn mode, not in a dry run (nothing is created); `None` for anything
    /// else. What it names of the object's metadata is read from `body` here, for these few
    /// decisions only. The policy's uid is left for the caller to add.
    pub fn of(review: &Request, body: &[u8], decision: &Decision) -> Option<Record> {
        if review.dry_run || review.kind == "ClusterImagePolicy" {
            return None;
        }
        let refused = !decision.allowed;
        let message = if refused {
            decision.message.clone()?
        } else {
            decision.waived_denial()?
        };
        let images: Vec<String> = decision
            .outcomes
            .iter()
            .filter(|(_, outcome)| match outcome {
                Outcome::Denied { .. } => refused,
                Outcome::Waived { .. } => !refused,
                Outcome::Admitted { .. } | Outcome::Warned(_) => false,
            })
            .map(|(image, _)| image.clone())
            .collect();
        // A refusal of every image (no policy loaded yet, or an invalid one) names every
        // image the request had checked: those admission read from it, not read again.
        let images = if images.is_empty() {
            review.checked_images().to_vec()
        } else {
            images
        };
        let Metadata {
            generate_name,
            controller,
        } = Request::metadata(body);
        let name = if review.name.is_empty() {
            generate_name
        } else {
            review.name.clone()
        };
        Some(Record {
            refused,
            namespace: review.namespace.clone(),
            kind: review.kind.clone(),
            name,
            images,
            message,
            reason: decision.reason.as_str(),
            policy_uid: None,
            controller,
        })
    }

    /// The Events to publish, each with the object it is about: the policy's, when its uid
    /// is known, related to the controller (else to the object itself); and the
    /// controller's, when the object has one, related to the policy.
    pub fn events(&self) -> Vec<(Event, ObjectReference)> {
        let policy = self.policy_uid.as_deref().map(policy_reference);
        let controller = self
            .controller
            .as_ref()
            .map(|c| self.controller_reference(c));
        let mut events = Vec::with_capacity(2);
        if let Some(policy) = &policy {
            let related = controller
                .clone()
                .unwrap_or_else(|| self.object_reference());
            events.push((self.event(Some(related)), policy.clone()));
        }
        if let Some(controller) = controller {
            events.push((self.event(policy), controller));
        }
        events
    }

    /// The note: the object, the images, the reason and the denial, within [`NOTE_LIMIT`].
    pub fn note(&self) -> String {
        let object = words::event_object(&self.kind, &self.namespace, &self.name);
        let note = words::event_note(
            self.refused,
            &object,
            &self.images,
            self.reason,
            &self.message,
        );
        truncated(note, NOTE_LIMIT)
    }

    fn event(&self, secondary: Option<ObjectReference>) -> Event {
        let reason = if self.refused {
            words::REFUSED_EVENT
        } else {
            words::WARNED_EVENT
        };
        Event {
            type_: EventType::Warning,
            reason: reason.to_owned(),
            note: Some(self.note()),
            action: words::EVENT_ACTION.to_owned(),
            secondary,
        }
    }

    fn controller_reference(&self, controller: &ControllerRef) -> ObjectReference {
        ObjectReference {
            api_version: Some(controller.api_version.clone()),
            kind: Some(controller.kind.clone()),
            name: Some(controller.name.clone()),
            namespace: self.namespace_of(),
            uid: Some(controller.uid.clone()),
            ..ObjectReference::default()
        }
    }

    /// The object, as the request names it (by its `generateName` while it has no name).
    fn object_reference(&self) -> ObjectReference {
        ObjectReference {
            kind: Some(self.kind.clone()),
            name: Some(self.name.clone()).filter(|n| !n.is_empty()),
            namespace: self.namespace_of(),
            ..ObjectReference::default()
        }
    }

    fn namespace_of(&self) -> Option<String> {
        Some(self.namespace.clone()).filter(|n| !n.is_empty())
    }
}

/// The policy `image-policy` of uid `uid`. Cluster-scoped: no namespace, so the [`Recorder`]
/// keeps its Events in `default`, where `kubectl describe clusterimagepolicy` finds them by
/// uid.
fn policy_reference(uid: &str) -> ObjectReference {
    ObjectReference {
        api_version: Some(ClusterImagePolicy::api_version(&()).into_owned()),
        kind: Some(ClusterImagePolicy::kind(&()).into_owned()),
        name: Some(POLICY_NAME.to_owned()),
        uid: Some(uid.to_owned()),
        ..ObjectReference::default()
    }
}

/// `note` cut to at most `limit` bytes on a character boundary, ending with `…` when cut.
fn truncated(mut note: String, limit: usize) -> String {
    const MORE: &str = "…";
    if note.len() <= limit {
        return note;
    }
    let mut end = limit.saturating_sub(MORE.len());
    while !note.is_char_boundary(end) {
        end = end.saturating_sub(1);
    }
    note.truncate(end);
    note.push_str(MORE);
    note
}

/// Where admission leaves its records: a bounded queue that never makes it wait. Cheap to
/// clone.
#[derive(Debug, Clone)]
pub struct EventSink {
    queue: mpsc::Sender<Record>,
    metrics: Metrics,
}

impl EventSink {
    /// A sink, and the other end of its queue for [`publish`]; at most `capacity` records
    /// (at least one) wait in it.
    pub fn new(capacity: usize, metrics: Metrics) -> (EventSink, mpsc::Receiver<Record>) {
        let (queue, records) = mpsc::channel(capacity.max(1));
        (EventSink { queue, metrics }, records)
    }

    /// Queues `record` without waiting, and says whether it was; a record that finds the
    /// queue full (or closed) is dropped and counted.
    pub fn record(&self, record: Record) -> bool {
        let queued = self.queue.try_send(record).is_ok();
        if !queued {
            self.metrics.event_dropped(EventDropped::QueueFull);
        }
        queued
    }
}

/// Publishes every record queued, as replica `instance`, until the queue closes: one at a
/// time, each within [`PUBLISH_TIMEOUT`]. A failure is counted and logged, not retried.
pub async fn publish(
    client: kube::Client,
    instance: String,
    mut records: mpsc::Receiver<Record>,
    metrics: Metrics,
) {
    let reporter = Reporter {
        controller: REPORTER.to_owned(),
        instance: Some(instance),
    };
    let mut recorder = Recorder::new(client.clone(), reporter.clone());
    let mut published_by_it = 0;
    let mut failures = Failures::default();
    while let Some(record) = records.recv().await {
        for (event, regarding) in record.events() {
            published_by_it += 1;
            if published_by_it > RECORDER_RENEWAL {
                recorder = Recorder::new(client.clone(), reporter.clone());
                published_by_it = 1;
            }
            let publish = recorder.publish(&event, &regarding);
            let published = tokio::time::timeout(PUBLISH_TIMEOUT, publish).await;
            let error = match published {
                Ok(Ok(())) => continue,
                Ok(Err(e)) => e.to_string(),
                Err(_) => format!("no answer within {PUBLISH_TIMEOUT:?}"),
            };
            metrics.event_dropped(EventDropped::PublishFailed);
            failures.log(&record, &regarding, &error, Instant::now());
        }
    }
}

/// Logs failed publications: at `warn` once per [`WARN_INTERVAL`] at most, at `debug`
/// otherwise, so that an API server refusing every Event (no RBAC for them, say) does not
/// flood the log.
#[derive(Debug, Default)]
struct Failures {
    last_warned: Option<Instant>,
}

impl Failures {
    /// Whether a failure at `now` is logged at `warn`; if so, the next one within
    /// [`WARN_INTERVAL`] is not.
    fn warns(&mut self, now: Instant) -> bool {
        let due = self
            .last_warned
            .is_none_or(|last| now.saturating_duration_since(last) >= WARN_INTERVAL);
        if due {
            self.last_warned = Some(now);
        }
        due
    }

    fn log(&mut self, record: &Record, regarding: &ObjectReference, error: &str, now: Instant) {
        let object = format_args!("{}/{}/{}", record.namespace, record.kind, record.name);
        let on = format_args!(
            "{}/{}",
            regarding.kind.as_deref().unwrap_or_default(),
            regarding.name.as_deref().unwrap_or_default()
        );
        if self.warns(now) {
            tracing::warn!(target: "image-policy.events", object = %object, on = %on, error, "Event not published");
        } else {
            tracing::debug!(target: "image-policy.events", object = %object, on = %on, error, "Event not published");
        }
    }
}

#[cfg(test)]
mod tests;
