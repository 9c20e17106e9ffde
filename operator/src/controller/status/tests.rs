use image_policy_crd::ClusterImagePolicyStatus;
use k8s_openapi::jiff::Timestamp;

use super::*;

const P256: &str = include_str!("../../../tests/data/keys/p256.pub");

fn policy(name: &str, generation: i64, key: &str, secret: Option<&str>) -> ClusterImagePolicy {
    let mut image =
        serde_json::json!({"namePattern": "registry.example.org/*", "keys": [{"name": "k"}]});
    if let Some(secret) = secret {
        image["secretRef"] = serde_json::json!({"name": secret});
    }
    serde_json::from_value(serde_json::json!({
        "apiVersion": "signing.apps.tanzu.vmware.com/v1beta1",
        "kind": "ClusterImagePolicy",
        "metadata": {"name": name, "generation": generation},
        "spec": {"verification": {"keys": [{"name": "k", "publicKey": key}],
            "images": [image, {"namePattern": "", "keys": [{"name": "k"}]}]}}
    }))
    .expect("policy")
}

/// A valid policy: the second, empty pattern removed.
fn valid(name: &str, generation: i64, secret: Option<&str>) -> ClusterImagePolicy {
    let mut p = policy(name, generation, P256, secret);
    p.spec.verification.images.truncate(1);
    p
}

fn time(seconds: i64) -> Time {
    Time(Timestamp::from_second(seconds).expect("time"))
}

fn assessed(policy: &ClusterImagePolicy, enforced: Option<&Snapshot>) -> Assessment {
    assess(policy, Snapshot::compile(policy).as_ref(), enforced, &[])
}

#[test]
fn a_valid_image_policy_is_active_with_its_counts() {
    let p = valid(POLICY_NAME, 3, None);
    let a = assessed(&p, None);
    assert_eq!(
        a,
        Assessment {
            ready: true,
            reason: Reason::PolicyActive,
            message: "Enforcing 1 key and 1 pattern".into(),
            keys: 1,
            patterns: 1,
        }
    );
    let s = status(&p, a, time(100));
    let c = &s.conditions[0];
    assert_eq!(
        (c.type_.as_str(), c.status.as_str(), c.reason.as_str()),
        ("Ready", "True", "PolicyActive")
    );
    assert_eq!(c.observed_generation, Some(3));
    assert_eq!(c.last_transition_time, time(100));
    assert_eq!((s.keys, s.patterns), (Some(1), Some(1)));
}

#[test]
fn the_ready_message_says_where_warn_mode_applies() {
    let message = |policy_mode: Option<&str>, entry_modes: [Option<&str>; 2]| {
        let mut p = valid(POLICY_NAME, 1, None);
        let mut second = p.spec.verification.images[0].clone();
        second.name_pattern = "registry.example.org/new/*".into();
        p.spec.verification.images.push(second);
        p.spec.verification.mode = policy_mode.map(str::to_owned);
        for (entry, mode) in p.spec.verification.images.iter_mut().zip(entry_modes) {
            entry.mode = mode.map(str::to_owned);
        }
        let a = assessed(&p, None);
        assert!(a.ready && a.reason == Reason::PolicyActive, "{a:?}");
        a.message
    };
    let enforced = "Enforcing 1 key and 2 patterns";
    assert_eq!(message(None, [None, None]), enforced);
    assert_eq!(message(Some("Enforce"), [None, Some("Enforce")]), enforced);
    let head =
        "Enforcing 1 key and 2 patterns; Warn mode (a refusal is admitted with a warning) for";
    assert_eq!(
        message(Some("Warn"), [None, None]),
        format!("{head} every image")
    );
    assert_eq!(
        message(Some("Warn"), [Some("Enforce"), None]),
        format!("{head} every image that no entry in Enforce (images[0]) matches")
    );
    assert_eq!(
        message(None, [None, Some("Warn")]),
        format!("{head} the images of images[1] that no entry in Enforce matches")
    );
}

#[test]
fn another_name_is_never_enforced_and_lists_every_problem() {
    let p = policy("other", 1, "broken", None);
    let a = assessed(&p, None);
    assert!(!a.ready);
    assert_eq!(a.reason, Reason::InvalidName);
    assert!(
        a.message.starts_with("metadata.name: ")
            && a.message
                .contains("only a ClusterImagePolicy named \"image-policy\" is enforced"),
        "{}",
        a.message
    );
    assert!(
        a.message.contains("spec.verification.keys[0].publicKey: "),
        "{}",
        a.message
    );
    assert!(
        a.message
            .contains("spec.verification.images[1].namePattern: "),
        "{}",
        a.message
    );
    assert_eq!((a.keys, a.patterns), (0, 0));

    let valid_other = valid("other", 1, None);
    assert_eq!(assessed(&valid_other, None).reason, Reason::InvalidName);
}

#[test]
fn an_invalid_image_policy_says_what_is_enforced_instead() {
    let last = Snapshot::compile(&valid(POLICY_NAME, 4, None)).expect("valid");
    let broken = policy(POLICY_NAME, 5, "broken", None);

    let kept = assessed(&broken, Some(&last));
    assert!(!kept.ready);
    assert_eq!(
        kept.reason,
        Reason::InvalidKey,
        "the first problem's reason"
    );
    let key = kept.message.find("spec.verification.keys[0].publicKey: ");
    let pattern = kept
        .message
        .find("; spec.verification.images[1].namePattern: ");
    assert_eq!(key, Some(0), "{}", kept.message);
    assert!(pattern.is_some(), "every problem: {}", kept.message);
    assert!(
        kept.message
            .ends_with("; the last valid version (generation 4) is still enforced"),
        "{}",
        kept.message
    );
    assert_eq!(
        (kept.keys, kept.patterns),
        (1, 1),
        "counts of what is enforced"
    );

    let none = assessed(&broken, None);
    assert!(
        none.message.ends_with(
            "; no valid version is enforced, so every workload is denied until the policy is fixed"
        ),
        "{}",
        none.message
    );
    assert_eq!((none.keys, none.patterns), (0, 0));
}

#[test]
fn a_missing_secret_is_reported_but_the_policy_stays_enforced() {
    let p = valid(POLICY_NAME, 1, Some("pull"));
    let compiled = Snapshot::compile(&p);
    let uses = secret_uses(compiled.as_ref().expect("valid"), "image-policy-system");
    assert_eq!(
        uses,
        [SecretUse {
            path: "spec.verification.images[0].secretRef".into(),
            namespace: "image-policy-system".into(),
            name: "pull".into(),
        }]
    );
    let missing: Vec<Problem> = uses.iter().map(SecretUse::not_found).collect();
    let a = assess(&p, compiled.as_ref(), None, &missing);
    assert!(!a.ready);
    assert_eq!(a.reason, Reason::SecretNotFound);
    assert_eq!(
        a.message,
        "spec.verification.images[0].secretRef: Secret image-policy-system/pull does not exist; create it or fix the reference; \
         the policy is enforced all the same (enforcing 1 key and 1 pattern): images that need these registry credentials are verified with the other credential sources"
    );
    assert_eq!((a.keys, a.patterns), (1, 1));
    assert!(
        assess(&p, compiled.as_ref(), None, &[]).ready,
        "creating the Secret clears it"
    );
}

fn with_status(mut p: ClusterImagePolicy, s: ClusterImagePolicyStatus) -> ClusterImagePolicy {
    p.status = Some(s);
    p
}

#[test]
fn the_transition_time_moves_only_when_status_or_reason_change() {
    let p = valid(POLICY_NAME, 1, None);
    let first = status(&p, assessed(&p, None), time(100));

    // Same status and reason, new generation and message: the time stays.
    let mut edited = with_status(valid(POLICY_NAME, 2, None), first.clone());
    edited.spec.verification.images[0].name_pattern = "other.example.org/*".into();
    edited
        .spec
        .verification
        .images
        .push(edited.spec.verification.images[0].clone());
    let again = status(&edited, assessed(&edited, None), time(200));
    let c = &again.conditions[0];
    assert_eq!(c.last_transition_time, time(100));
    assert_eq!(c.observed_generation, Some(2));
    assert_eq!(c.message, "Enforcing 1 key and 2 patterns");

    // False/InvalidKey: it moves.
    let last = Snapshot::compile(&p).expect("valid");
    let broken = with_status(policy(POLICY_NAME, 3, "broken", None), again);
    let failed = status(&broken, assessed(&broken, Some(&last)), time(300));
    assert_eq!(failed.conditions[0].last_transition_time, time(300));

    // Still False, another reason: it moves again.
    let mut unknown = with_status(valid(POLICY_NAME, 4, None), failed.clone());
    unknown.spec.verification.images[0].keys[0].name = "nope".into();
    let other_reason = status(&unknown, assessed(&unknown, Some(&last)), time(400));
    assert_eq!(other_reason.conditions[0].reason, "UnknownKey");
    assert_eq!(other_reason.conditions[0].last_transition_time, time(400));

    // Still False/InvalidKey with another message: it stays.
    let broken_again = with_status(policy(POLICY_NAME, 5, "still broken", None), failed);
    let same = status(
        &broken_again,
        assessed(&broken_again, Some(&last)),
        time(500),
    );
    assert_eq!(same.conditions[0].last_transition_time, time(300));
}

#[test]
fn an_unchanged_status_is_not_written_again() {
    let p = valid(POLICY_NAME, 1, None);
    let desired = status(&p, assessed(&p, None), time(100));
    assert!(!is_current(None, &desired));
    let stored = with_status(p, desired.clone());
    let recomputed = status(&stored, assessed(&stored, None), time(999));
    assert_eq!(
        recomputed, desired,
        "a later reconcile computes the same status"
    );
    assert!(is_current(stored.status.as_ref(), &recomputed));

    // Another writer's condition is neither compared nor a reason to write.
    let mut foreign = desired.clone();
    foreign.conditions.insert(
        0,
        Condition {
            type_: "Audited".into(),
            ..desired.conditions[0].clone()
        },
    );
    assert!(is_current(Some(&foreign), &desired));
    let mut stale = desired.clone();
    stale.keys = Some(7);
    assert!(!is_current(Some(&stale), &desired));
}

#[test]
fn another_writers_condition_first_does_not_pass_for_ready() {
    let p = valid(POLICY_NAME, 1, None);
    let desired = status(&p, assessed(&p, None), time(100));
    let mut written = desired.clone();
    written.conditions.insert(
        0,
        Condition {
            type_: "Audited".into(),
            status: "True".into(),
            reason: "Reviewed".into(),
            message: "reviewed".into(),
            observed_generation: None,
            last_transition_time: time(50),
        },
    );
    let stored = with_status(p, written);
    assert_eq!(
        ready_condition(stored.status.as_ref()),
        desired.conditions.first()
    );
    // Ready's own status and reason are unchanged: its transition time stays, and only Ready
    // is written, so that server-side apply leaves Audited to its owner.
    let recomputed = status(&stored, assessed(&stored, None), time(999));
    assert_eq!(recomputed, desired);
    assert!(is_current(stored.status.as_ref(), &recomputed));
}

#[test]
fn long_messages_are_cut_on_a_character_boundary() {
    let cut = truncate("é".repeat(MAX_MESSAGE_BYTES));
    assert!(cut.len() <= MAX_MESSAGE_BYTES);
    assert!(cut.ends_with("..."));
    assert_eq!(truncate("short".into()), "short");
}
