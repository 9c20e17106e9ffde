//! Events about the cluster-scoped policy, published as kube-runtime's [`Recorder`] publishes
//! those of namespaced objects, but kept in `kube-system`.
//!
//! An Event is namespaced; one about a cluster-scoped object has no namespace in `regarding`.
//! kube-runtime's Recorder keeps it in `default`, which API servers before Kubernetes 1.21
//! refuse for an events.k8s.io Event (`involvedObject.namespace: Invalid value: "": does not
//! match event.namespace`: they accept `kube-system` only; kubernetes/kubernetes#100125 added
//! `default`). `kubectl describe` looks for the Events of a cluster-scoped object in every
//! namespace, so these are kept in `kube-system`, which every version accepts. Repeats are
//! aggregated as the Recorder does: the same type, reason, action and objects within
//! [`SERIES_TTL`] of the last one add to the first Event's series instead of making another.
//!
//! [`Recorder`]: kube::runtime::events::Recorder

use std::collections::HashMap;

use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::api::events::v1::{Event as K8sEvent, EventSeries};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::runtime::events::{Event, EventType, Reporter};

/// Where the Events of cluster-scoped objects are kept.
pub const NAMESPACE: &str = "kube-system";

/// How long after its last repeat an Event's series may still grow (kube-runtime's own).
pub const SERIES_TTL: SignedDuration = SignedDuration::from_mins(6);

/// How many series are remembered at most: refusals about ever new objects (Pods of random
/// names, say) must not grow memory without bound. Past it the quietest is forgotten, and
/// its next repeat is a new Event.
pub const MAX_SERIES: usize = 4096;

/// Publishes Events about cluster-scoped objects, one at a time (`&mut self`).
pub struct ClusterRecorder {
    client: kube::Client,
    series: Series,
}

impl ClusterRecorder {
    /// A recorder writing as `reporter`.
    pub fn new(client: kube::Client, reporter: Reporter) -> Self {
        ClusterRecorder {
            client,
            series: Series::new(reporter),
        }
    }

    /// Creates `event` about `regarding` in [`NAMESPACE`], or, for a repeat, patches the
    /// series of the Event created first.
    pub async fn publish(
        &mut self,
        event: &Event,
        regarding: &ObjectReference,
    ) -> Result<(), kube::Error> {
        let now = Timestamp::now();
        self.series.forget_before(now);
        let key = Key::of(event, regarding);
        let next = self.series.next(&key, event, regarding, now);
        let events: Api<K8sEvent> = Api::namespaced(self.client.clone(), NAMESPACE);
        match &next.metadata.name {
            Some(name) if next.series.is_some() => {
                events
                    .patch(name, &PatchParams::default(), &Patch::Merge(&next))
                    .await?;
            }
            _ => {
                events.create(&PostParams::default(), &next).await?;
            }
        }
        self.series.remember(key, next);
        Ok(())
    }
}

/// The Events written, by what makes a repeat: pure, so that the rules are tested without an
/// API server.
#[derive(Debug)]
struct Series {
    reporter: Reporter,
    written: HashMap<Key, K8sEvent>,
}

/// What two Events share when one repeats the other.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Key {
    type_: EventType,
    reason: String,
    action: String,
    regarding: Reference,
    related: Option<Reference>,
}

/// An object reference's identity.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Reference {
    api_version: Option<String>,
    kind: Option<String>,
    namespace: Option<String>,
    name: Option<String>,
    uid: Option<String>,
}

impl Key {
    fn of(event: &Event, regarding: &ObjectReference) -> Self {
        Key {
            type_: event.type_,
            reason: event.reason.clone(),
            action: event.action.clone(),
            regarding: Reference::of(regarding),
            related: event.secondary.as_ref().map(Reference::of),
        }
    }
}

impl Reference {
    fn of(reference: &ObjectReference) -> Self {
        Reference {
            api_version: reference.api_version.clone(),
            kind: reference.kind.clone(),
            namespace: reference.namespace.clone(),
            name: reference.name.clone(),
            uid: reference.uid.clone(),
        }
    }
}

impl Series {
    fn new(reporter: Reporter) -> Self {
        Series {
            reporter,
            written: HashMap::new(),
        }
    }

    /// Forgets the Events last seen [`SERIES_TTL`] or more before `now`.
    fn forget_before(&mut self, now: Timestamp) {
        self.written.retain(|_, event| {
            last_seen(event).is_some_and(|last| now.duration_since(last) < SERIES_TTL)
        });
    }

    /// The Event to write for `event` at `now`: the one written before for `key`, one more in
    /// its series, or a new one.
    fn next(
        &self,
        key: &Key,
        event: &Event,
        regarding: &ObjectReference,
        now: Timestamp,
    ) -> K8sEvent {
        if let Some(written) = self.written.get(key) {
            let count = written.series.as_ref().map_or(2, |s| s.count + 1);
            return K8sEvent {
                series: Some(EventSeries {
                    count,
                    last_observed_time: MicroTime(now),
                }),
                ..written.clone()
            };
        }
        let controller = &self.reporter.controller;
        let name = regarding.name.as_deref().unwrap_or(controller);
        K8sEvent {
            action: Some(event.action.clone()),
            reason: Some(event.reason.clone()),
            note: event.note.clone(),
            type_: Some(
                match event.type_ {
                    EventType::Normal => "Normal",
                    EventType::Warning => "Warning",
                }
                .to_owned(),
            ),
            event_time: Some(MicroTime(now)),
            regarding: Some(regarding.clone()),
            related: event.secondary.clone(),
            reporting_controller: Some(controller.clone()),
            reporting_instance: Some(
                self.reporter
                    .instance
                    .clone()
                    .unwrap_or_else(|| controller.clone()),
            ),
            metadata: ObjectMeta {
                name: Some(format!("{name}.{:x}", now.as_nanosecond())),
                namespace: Some(NAMESPACE.to_owned()),
                ..ObjectMeta::default()
            },
            ..K8sEvent::default()
        }
    }

    /// Remembers `event`, written, as the last of its series; at [`MAX_SERIES`], in the place
    /// of the series seen last longest ago.
    fn remember(&mut self, key: Key, event: K8sEvent) {
        if self.written.len() >= MAX_SERIES && !self.written.contains_key(&key) {
            let quietest = self
                .written
                .iter()
                .min_by_key(|(_, e)| last_seen(e))
                .map(|(k, _)| k.clone());
            if let Some(quietest) = quietest {
                self.written.remove(&quietest);
            }
        }
        self.written.insert(key, event);
    }
}

/// When an Event written was last seen: its series' last repeat, or its own time.
fn last_seen(event: &K8sEvent) -> Option<Timestamp> {
    event
        .series
        .as_ref()
        .map(|s| s.last_observed_time.0)
        .or(event.event_time.as_ref().map(|t| t.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reporter() -> Reporter {
        Reporter {
            controller: "image-policy".into(),
            instance: Some("pod-a".into()),
        }
    }

    fn policy() -> ObjectReference {
        ObjectReference {
            kind: Some("ClusterImagePolicy".into()),
            name: Some("image-policy".into()),
            uid: Some("u".into()),
            ..ObjectReference::default()
        }
    }

    fn event(related: &str) -> Event {
        Event {
            type_: EventType::Warning,
            reason: "Refused".into(),
            note: Some(format!("Refused Pod n/{related}-")),
            action: "Admission".into(),
            secondary: Some(ObjectReference {
                kind: Some("ReplicaSet".into()),
                name: Some(related.into()),
                namespace: Some("n".into()),
                ..ObjectReference::default()
            }),
        }
    }

    /// Writes `event` at `now` as publish does after the API server accepted it.
    fn write(series: &mut Series, event: &Event, now: Timestamp) -> K8sEvent {
        series.forget_before(now);
        let key = Key::of(event, &policy());
        let next = series.next(&key, event, &policy(), now);
        series.remember(key, next.clone());
        next
    }

    #[test]
    fn a_first_event_is_new_in_kube_system_about_the_cluster_scoped_object() {
        let mut series = Series::new(reporter());
        let now = Timestamp::now();
        let first = write(&mut series, &event("rs"), now);
        assert_eq!(first.metadata.namespace.as_deref(), Some("kube-system"));
        let name = first.metadata.name.clone().unwrap();
        assert!(name.starts_with("image-policy."), "{name}");
        assert_eq!(
            first.regarding,
            Some(policy()),
            "no namespace: kubectl finds it"
        );
        assert_eq!(first.series, None);
        assert_eq!(first.event_time, Some(MicroTime(now)));
        assert_eq!(first.type_.as_deref(), Some("Warning"));
        assert_eq!(first.reason.as_deref(), Some("Refused"));
        assert_eq!(first.action.as_deref(), Some("Admission"));
        assert_eq!(first.note.as_deref(), Some("Refused Pod n/rs-"));
        assert_eq!(first.reporting_controller.as_deref(), Some("image-policy"));
        assert_eq!(first.reporting_instance.as_deref(), Some("pod-a"));
        assert_eq!(first.related, event("rs").secondary);
    }

    #[test]
    fn repeats_grow_the_first_events_series_until_it_is_quiet_for_the_ttl() {
        let mut series = Series::new(reporter());
        let start = Timestamp::now();
        let at = |minutes: i64| start + SignedDuration::from_mins(minutes);
        let first = write(&mut series, &event("rs"), at(0));
        let second = write(&mut series, &event("rs"), at(5));
        assert_eq!(second.metadata.name, first.metadata.name);
        assert_eq!(second.event_time, first.event_time, "immutable");
        assert_eq!(second.note, first.note, "immutable");
        let count = |e: &K8sEvent| e.series.as_ref().map(|s| (s.count, s.last_observed_time.0));
        assert_eq!(count(&second), Some((2, at(5))));
        // Within the TTL of the last repeat, not of the first Event.
        let third = write(&mut series, &event("rs"), at(10));
        assert_eq!(count(&third), Some((3, at(10))));
        // Another controller is another Event.
        let other = write(&mut series, &event("rs-2"), at(10));
        assert_eq!(other.series, None);
        assert_ne!(other.metadata.name, first.metadata.name);
        // Quiet for the TTL: a new Event.
        let later = write(&mut series, &event("rs"), at(16));
        assert_eq!(later.series, None);
        assert_ne!(later.metadata.name, first.metadata.name);
        assert_eq!(series.written.len(), 1, "the quiet ones are forgotten");
    }

    #[test]
    fn past_the_bound_the_quietest_series_is_forgotten() {
        let mut series = Series::new(reporter());
        let start = Timestamp::now();
        for n in 0..MAX_SERIES {
            let at = start + SignedDuration::from_millis(i64::try_from(n).unwrap());
            write(&mut series, &event(&format!("rs-{n}")), at);
        }
        // The first one repeats: now the quietest is the second.
        let later = start + SignedDuration::from_secs(10);
        write(&mut series, &event("rs-0"), later);
        write(&mut series, &event("new"), later);
        assert_eq!(series.written.len(), MAX_SERIES);
        let related = |name: &str| {
            series
                .written
                .keys()
                .any(|k| k.related.as_ref().and_then(|r| r.name.as_deref()) == Some(name))
        };
        assert!(related("rs-0") && related("new") && !related("rs-1"));
    }
}
