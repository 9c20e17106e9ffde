use super::*;
use crate::verify::FailureKind;
use crate::webhook::decision::Reason;

/// A Pod created by a ReplicaSet (generateName, a controller ownerReference), as the API
/// server sends it.
const POD: &[u8] = include_bytes!("../../../tests/data/admission/connaisseur/02_pod.json");
/// A Pod sent in a dry run (`kubectl run --dry-run=server`).
const DRY_RUN: &[u8] = include_bytes!(
    "../../../tests/data/admission/other/kube-review_pod_dryrun_with_kyverno_response.json"
);

fn denied(image: &str) -> Outcome {
    Outcome::Denied {
        message: format!("The image: {image} is not signed."),
        reason: Reason::Failed(FailureKind::NotSigned),
    }
}

fn verified() -> Outcome {
    Outcome::Admitted {
        digest: "sha256:d".into(),
        key: "k".into(),
    }
}

fn pod() -> Request {
    Request::parse(POD).unwrap()
}

fn record() -> Record {
    let decision = Decision::of(vec![
        ("v:1".into(), verified()),
        ("r/a:1".into(), denied("r/a:1")),
    ]);
    Record::of(&pod(), POD, &decision).unwrap()
}

#[test]
fn a_refused_pod_is_recorded_with_its_name_images_words_and_controller() {
    let record = record();
    assert!(record.refused);
    assert_eq!(record.namespace, "test-connaisseur");
    assert_eq!(record.kind, "Pod");
    assert_eq!(
        record.name, "charlie-deployment-76fbf58b7d-",
        "its generateName"
    );
    assert_eq!(record.images, ["r/a:1"], "the refused image only");
    assert_eq!(record.message, "The image: r/a:1 is not signed.");
    assert_eq!(record.reason, "NotSigned");
    assert_eq!(record.policy_uid, None);
    assert_eq!(
        record.controller,
        Some(ControllerRef {
            api_version: "apps/v1".into(),
            kind: "ReplicaSet".into(),
            name: "charlie-deployment-76fbf58b7d".into(),
            uid: "090d26f8-1812-11ea-b3fc-02897404852e".into(),
        })
    );
    assert_eq!(
        record.note(),
        "Refused Pod test-connaisseur/charlie-deployment-76fbf58b7d- with image r/a:1 \
         (NotSigned): The image: r/a:1 is not signed."
    );
}

#[test]
fn warn_mode_is_recorded_with_the_denial_it_waived() {
    let waived = denied("r/a:1").under(image_policy_crd::Mode::Warn);
    let decision = Decision::of(vec![("r/a:1".into(), waived)]);
    let record = Record::of(&pod(), POD, &decision).unwrap();
    assert!(!record.refused);
    assert_eq!(record.message, "The image: r/a:1 is not signed.");
    assert_eq!(record.images, ["r/a:1"]);
    let (event, _) = Record {
        policy_uid: Some("u".into()),
        ..record
    }
    .events()
    .remove(0);
    assert_eq!(event.reason, words::WARNED_EVENT);
    assert!(
        event
            .note
            .unwrap()
            .starts_with("Admitted Pod test-connaisseur/charlie-deployment-76fbf58b7d- with image r/a:1 in Warn mode (NotSigned): ")
    );
}

#[test]
fn nothing_is_recorded_for_an_admission_a_dry_run_or_a_policy() {
    let admitted = Decision::of(vec![("v:1".into(), verified())]);
    assert_eq!(Record::of(&pod(), POD, &admitted), None);
    let unmatched = Decision::of(vec![("u:1".into(), Outcome::Warned("w".into()))]);
    assert_eq!(
        Record::of(&pod(), POD, &unmatched),
        None,
        "allowUnmatchedImages"
    );
    let refused = Decision::of(vec![("r/a:1".into(), denied("r/a:1"))]);
    let dry_run = Request::parse(DRY_RUN).unwrap();
    assert!(dry_run.dry_run);
    assert_eq!(
        Record::of(&dry_run, DRY_RUN, &refused),
        None,
        "nothing is created"
    );
    let mut policy = pod();
    policy.kind = "ClusterImagePolicy".into();
    let invalid = Decision::denied(Reason::InvalidPolicy, "invalid".into());
    assert_eq!(Record::of(&policy, POD, &invalid), None);
}

#[test]
fn a_refusal_of_every_image_names_every_image_checked() {
    let decision = Decision::denied(Reason::PolicyLoading, words::POLICY_LOADING.into());
    let record = Record::of(&pod(), POD, &decision).unwrap();
    assert_eq!(record.images, pod().images_to_check().unwrap().unwrap());
    assert!(!record.images.is_empty());
    assert_eq!(record.reason, "PolicyLoading");
}

#[test]
fn the_policy_and_the_controller_each_get_an_event_related_to_the_other() {
    let record = Record {
        policy_uid: Some("policy-uid".into()),
        ..record()
    };
    let events = record.events();
    assert_eq!(events.len(), 2);
    let (on_policy, policy) = &events[0];
    assert_eq!(
        policy,
        &ObjectReference {
            api_version: Some("signing.apps.tanzu.vmware.com/v1beta1".into()),
            kind: Some("ClusterImagePolicy".into()),
            name: Some("image-policy".into()),
            uid: Some("policy-uid".into()),
            ..ObjectReference::default()
        },
        "cluster-scoped: no namespace"
    );
    let (on_controller, controller) = &events[1];
    assert_eq!(
        controller,
        &ObjectReference {
            api_version: Some("apps/v1".into()),
            kind: Some("ReplicaSet".into()),
            name: Some("charlie-deployment-76fbf58b7d".into()),
            namespace: Some("test-connaisseur".into()),
            uid: Some("090d26f8-1812-11ea-b3fc-02897404852e".into()),
            ..ObjectReference::default()
        }
    );
    assert_eq!(on_policy.secondary.as_ref(), Some(controller));
    assert_eq!(on_controller.secondary.as_ref(), Some(policy));
    for (event, _) in &events {
        assert_eq!(event.type_, EventType::Warning);
        assert_eq!(event.reason, "Refused");
        assert_eq!(event.action, "Admission");
        assert_eq!(event.note, Some(record.note()));
    }
}

#[test]
fn without_a_controller_the_policys_event_relates_to_the_object_and_without_a_policy_none() {
    let bare = Record {
        policy_uid: Some("policy-uid".into()),
        controller: None,
        ..record()
    };
    let events = bare.events();
    assert_eq!(events.len(), 1);
    assert_eq!(
        events[0].0.secondary,
        Some(ObjectReference {
            kind: Some("Pod".into()),
            name: Some("charlie-deployment-76fbf58b7d-".into()),
            namespace: Some("test-connaisseur".into()),
            ..ObjectReference::default()
        })
    );
    // The policy not loaded yet: only the controller hears of it.
    let unknown = record().events();
    assert_eq!(unknown.len(), 1);
    assert_eq!(unknown[0].1.kind.as_deref(), Some("ReplicaSet"));
    assert_eq!(unknown[0].0.secondary, None);
    let neither = Record {
        controller: None,
        ..record()
    };
    assert!(neither.events().is_empty());
}

#[test]
fn a_long_note_is_cut_to_the_apis_limit_on_a_character_boundary() {
    // Twenty images refused, each with a long second sentence, and names in several scripts.
    let images: Vec<(String, Outcome)> = (0..20)
        .map(|i| {
            let image = format!("registry.example.org/équipe-ü/app-{i}:v1");
            let outcome = Outcome::Denied {
                message: format!("The image: {image} is not signed. 署名が見つかりません。"),
                reason: Reason::Failed(FailureKind::NotSigned),
            };
            (image, outcome)
        })
        .collect();
    let record = Record::of(&pod(), POD, &Decision::of(images)).unwrap();
    let note = record.note();
    assert!(note.len() <= NOTE_LIMIT, "{}", note.len());
    assert!(note.len() > NOTE_LIMIT - 4, "{}", note.len());
    assert!(note.ends_with('…'), "{note}");
    assert!(note.starts_with("Refused Pod test-connaisseur/"), "{note}");
    for limit in 0..40 {
        let cut = truncated("aé署😀b".repeat(3), limit);
        assert!(cut.len() <= limit.max("…".len()), "{limit}: {cut}");
    }
    assert_eq!(truncated("short".into(), NOTE_LIMIT), "short");
    assert_eq!(
        truncated("x".repeat(NOTE_LIMIT), NOTE_LIMIT).len(),
        NOTE_LIMIT
    );
}

#[test]
fn a_full_queue_drops_and_counts_without_waiting() {
    let metrics = Metrics::new();
    let (sink, mut records) = EventSink::new(1, metrics.clone());
    // Not in a runtime: recording cannot wait for anything.
    assert!(sink.record(record()));
    assert!(!sink.record(record()), "the queue holds one");
    assert!(!sink.clone().record(record()));
    let text = metrics.encode().unwrap();
    assert!(
        text.contains("image_policy_events_dropped_total{cause=\"queue_full\"} 2\n"),
        "{text}"
    );
    assert_eq!(records.try_recv().ok(), Some(record()));
    assert!(sink.record(record()), "room again");
    drop(records);
    assert!(!sink.record(record()), "closed: dropped as well");
}

#[test]
fn failures_warn_once_a_minute_at_most() {
    let mut failures = Failures::default();
    let start = Instant::now();
    assert!(failures.warns(start));
    assert!(!failures.warns(start + Duration::from_secs(1)));
    assert!(!failures.warns(start + Duration::from_secs(59)));
    assert!(failures.warns(start + WARN_INTERVAL));
    assert!(!failures.warns(start + WARN_INTERVAL + Duration::from_secs(30)));
}
